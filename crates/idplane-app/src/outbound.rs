//! The one HTTP client for calls the server makes to others: fetching a
//! client's `jwks_uri`, delivering back-channel logout tokens. Bounded in
//! time, never following redirects (a redirect would let a registered URL
//! point the server at an address nobody registered).

use std::sync::OnceLock;
use std::time::Duration;

/// How long one outbound call may take, connection included.
pub const OUTBOUND_TIMEOUT: Duration = Duration::from_secs(5);

/// The shared client, built on first use.
pub(crate) fn client() -> Result<&'static reqwest::Client, reqwest::Error> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client);
    }
    let client = reqwest::Client::builder()
        .timeout(OUTBOUND_TIMEOUT)
        .connect_timeout(OUTBOUND_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("idplane/", env!("CARGO_PKG_VERSION")))
        .build()?;
    Ok(CLIENT.get_or_init(|| client))
}
