//! The certified peer, started from a folder holding `server.js` and its
//! installed packages (`bench/run.sh` copies ../shared/peers/oidc-provider
//! and runs `npm ci`): one instance minting JWT access tokens, one minting
//! opaque tokens for introspection, both idle while idplane is loaded.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::http::Error;
use crate::load::Server;

/// The client `server.js` registers.
pub const OIDC_PROVIDER_CLIENT: (&str, &str) = (
    "bench-client",
    "bench-secret-0123456789abcdef0123456789abcdef",
);

/// Starts oidc-provider on `addr` with `TOKEN_FORMAT` `jwt` (ES256) or `opaque`.
pub async fn oidc_provider(dir: &Path, addr: SocketAddr, format: &str) -> Result<Server, Error> {
    let mut command = Command::new("node");
    command
        .arg("server.js")
        .current_dir(dir)
        .env("PORT", addr.port().to_string())
        .env("TOKEN_FORMAT", format)
        .env("ALG", "ES256")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let name = format!("oidc-provider ({format})");
    let (server, _) =
        Server::start(&name, command, addr, "/.well-known/openid-configuration").await?;
    Ok(server)
}
