//! `idplane user set-password | reset-factors | unlock | sessions`: the
//! administrator's side of authentication.

use std::io::BufRead;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use idplane_core::directory::PrincipalKind;
use serde_json::{Value, json};

use super::api::Api;
use super::output::{print_json, print_table, str_field, text};
use crate::client::output::outln;

/// How a password is given to `user set-password`.
#[derive(Debug, clap::Args)]
pub struct SetPasswordArgs {
    pub user: String,
    /// Read the password from the first line of standard input; otherwise a
    /// random one is generated and printed once.
    #[arg(long)]
    pub password_stdin: bool,
    /// Let the user keep it (by default they must change it at next sign-in).
    #[arg(long)]
    pub permanent: bool,
}

async fn user_id(api: &Api, reference: &str) -> anyhow::Result<(String, String)> {
    let found = api.principal(PrincipalKind::User, reference).await?;
    let id = str_field(&found, "id").context("the server sent a user without an id")?;
    Ok((id.to_owned(), text(&found, "name")))
}

pub async fn set_password(api: &Api, args: SetPasswordArgs) -> anyhow::Result<()> {
    let (id, name) = user_id(api, &args.user).await?;
    let (password, generated) = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password")?;
        (line.trim_end_matches(['\r', '\n']).to_owned(), false)
    } else {
        let bytes =
            idplane_app::keyring::random_bytes::<15>().map_err(|e| anyhow::anyhow!("{e}"))?;
        (B64.encode(bytes), true)
    };
    let body = json!({"password": password, "temporary": !args.permanent});
    api.client
        .post(&api.path(&format!("/users/{id}/password")), &body)
        .await?;
    if generated {
        outln!("Password of `{name}` set to (shown only now):\n\n  {password}\n");
    } else {
        outln!("Password of `{name}` set.");
    }
    if !args.permanent {
        outln!("They must choose their own at the next sign-in.");
    }
    Ok(())
}

pub async fn reset_factors(api: &Api, user: &str) -> anyhow::Result<()> {
    let (id, name) = user_id(api, user).await?;
    api.client
        .post(&api.path(&format!("/users/{id}/factors/reset")), &json!({}))
        .await?;
    outln!(
        "Removed the authenticator app, recovery codes and passkeys of `{name}`, and ended their sessions."
    );
    Ok(())
}

pub async fn unlock(api: &Api, user: &str) -> anyhow::Result<()> {
    let (id, name) = user_id(api, user).await?;
    api.client
        .post(&api.path(&format!("/users/{id}/unlock")), &json!({}))
        .await?;
    outln!("Lifted the sign-in back-off of `{name}`.");
    Ok(())
}

pub async fn sessions(api: &Api, user: &str, end: bool) -> anyhow::Result<()> {
    let (id, name) = user_id(api, user).await?;
    let path = api.path(&format!("/users/{id}/sessions"));
    if end {
        api.client.delete(&path).await?;
        outln!("Ended every session of `{name}`.");
        return Ok(());
    }
    let sessions = api.client.get(&path).await?;
    if api.json {
        return print_json(&sessions);
    }
    let rows = sessions
        .as_array()
        .into_iter()
        .flatten()
        .map(|s: &Value| {
            vec![
                text(s, "id"),
                text(s, "auth_time"),
                text(s, "acr"),
                s.get("amr")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default(),
                text(s, "source_ip"),
            ]
        })
        .collect();
    print_table(&["SESSION", "SIGNED IN", "ACR", "AMR", "FROM"], rows);
    Ok(())
}
