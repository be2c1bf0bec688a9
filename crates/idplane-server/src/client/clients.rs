//! `idplane client`: OAuth 2.0 / OpenID Connect clients.

use crate::client::output::outln;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};

use super::api::Api;
use super::http::{encode, etag};
use super::output::{print_fields, print_json, print_table, text};

#[derive(Debug, Subcommand)]
pub enum OAuthClientCommand {
    /// Register a client. A confidential client that authenticates with a
    /// secret gets one, printed only now.
    Create {
        /// The client's name, shown on consent and device pages.
        name: String,
        /// A chosen client_id (a slug); random when absent.
        #[arg(long)]
        client_id: Option<String>,
        /// `confidential` (default) or `public`.
        #[arg(long = "type", value_enum)]
        client_type: Option<TypeArg>,
        #[command(flatten)]
        settings: Box<Settings>,
    },
    /// List clients.
    List {
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Show a client.
    Get { client_id: String },
    /// Change a client; only the options given change (a repeatable option
    /// replaces the whole list).
    Update {
        client_id: String,
        /// Rename the client.
        #[arg(long)]
        name: Option<String>,
        #[arg(long = "type", value_enum)]
        client_type: Option<TypeArg>,
        #[command(flatten)]
        settings: Box<Settings>,
        /// Remove every redirect URI.
        #[arg(long, conflicts_with = "redirect_uris")]
        clear_redirect_uris: bool,
        /// Remove the jwks_uri (and jwks).
        #[arg(long, conflicts_with_all = ["jwks_uri", "jwks_file"])]
        clear_jwks: bool,
        /// Remove the back-channel logout URI.
        #[arg(long, conflicts_with = "backchannel_logout_uri")]
        clear_backchannel_logout_uri: bool,
    },
    /// Delete a client.
    Delete { client_id: String },
    /// Replace a client's secret; the old one stops working at once.
    RotateSecret { client_id: String },
}

/// A client's type.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TypeArg {
    Confidential,
    Public,
}

impl TypeArg {
    fn as_str(self) -> &'static str {
        match self {
            TypeArg::Confidential => "confidential",
            TypeArg::Public => "public",
        }
    }
}

/// Settings shared by `create` and `update`.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// A redirect URI (repeatable).
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    /// A post-logout redirect URI (repeatable).
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    post_logout_redirect_uris: Vec<String>,
    /// A grant type (repeatable): authorization_code, refresh_token,
    /// client_credentials, urn:ietf:params:oauth:grant-type:device_code,
    /// urn:ietf:params:oauth:grant-type:token-exchange.
    #[arg(long = "grant-type", value_name = "GRANT")]
    grant_types: Vec<String>,
    /// A scope the client may ask for (repeatable).
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// client_secret_basic, client_secret_post, private_key_jwt or none.
    #[arg(long)]
    auth_method: Option<String>,
    /// Where the client's public keys are (for private_key_jwt).
    #[arg(long)]
    jwks_uri: Option<String>,
    /// A file holding the client's public JWK Set (for private_key_jwt).
    #[arg(long)]
    jwks_file: Option<PathBuf>,
    /// Whether the client skips consent.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    first_party: Option<bool>,
    /// jwt or opaque.
    #[arg(long)]
    access_token_format: Option<String>,
    /// ES256, RS256 or EdDSA.
    #[arg(long)]
    id_token_alg: Option<String>,
    /// Whether the client must use pushed authorization requests.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    require_par: Option<bool>,
    /// Access token lifetime in seconds.
    #[arg(long, value_name = "SECS")]
    access_token_lifetime: Option<i64>,
    /// Refresh token lifetime in seconds.
    #[arg(long, value_name = "SECS")]
    refresh_token_lifetime: Option<i64>,
    /// Where logout tokens are sent (OpenID Connect Back-Channel Logout):
    /// https, or http on a loopback IP literal.
    #[arg(long, value_name = "URI")]
    backchannel_logout_uri: Option<String>,
    /// Whether the client's access tokens must be DPoP-bound (RFC 9449):
    /// its token requests without a DPoP proof are refused.
    #[arg(long = "dpop-bound", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    dpop_bound_access_tokens: Option<bool>,
}

impl Settings {
    /// Adds the options given to a request body.
    fn add_to(self, map: &mut Map<String, Value>) -> anyhow::Result<()> {
        let mut list = |key: &str, values: Vec<String>| {
            if !values.is_empty() {
                map.insert(key.to_owned(), json!(values));
            }
        };
        list("redirect_uris", self.redirect_uris);
        list("post_logout_redirect_uris", self.post_logout_redirect_uris);
        list("grant_types", self.grant_types);
        list("scopes", self.scopes);
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(v) = value {
                map.insert(key.to_owned(), v);
            }
        };
        put(
            "token_endpoint_auth_method",
            self.auth_method.map(Into::into),
        );
        put("jwks_uri", self.jwks_uri.map(Into::into));
        put("first_party", self.first_party.map(Into::into));
        put(
            "access_token_format",
            self.access_token_format.map(Into::into),
        );
        put(
            "id_token_signed_response_alg",
            self.id_token_alg.map(Into::into),
        );
        put(
            "require_pushed_authorization_requests",
            self.require_par.map(Into::into),
        );
        put(
            "access_token_lifetime_secs",
            self.access_token_lifetime.map(Into::into),
        );
        put(
            "refresh_token_lifetime_secs",
            self.refresh_token_lifetime.map(Into::into),
        );
        put(
            "backchannel_logout_uri",
            self.backchannel_logout_uri.map(Into::into),
        );
        put(
            "dpop_bound_access_tokens",
            self.dpop_bound_access_tokens.map(Into::into),
        );
        if let Some(path) = self.jwks_file {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let jwks: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            map.insert("jwks".into(), jwks);
        }
        Ok(())
    }
}

pub async fn run(api: &Api, command: OAuthClientCommand) -> anyhow::Result<()> {
    match command {
        OAuthClientCommand::Create {
            name,
            client_id,
            client_type,
            settings,
        } => {
            let mut map = Map::new();
            map.insert("name".into(), name.into());
            if let Some(id) = client_id {
                map.insert("client_id".into(), id.into());
            }
            if let Some(t) = client_type {
                map.insert("type".into(), t.as_str().into());
            }
            settings.add_to(&mut map)?;
            let created = api
                .client
                .post(&api.path("/clients"), &Value::Object(map))
                .await?;
            show_client(api, &created, "Registered")
        }
        OAuthClientCommand::List { limit } => {
            let items = api.client.list(&api.path("/clients"), &[], limit).await?;
            if api.json {
                return print_json(&Value::Array(items));
            }
            if items.is_empty() {
                eprintln!("No clients in tenant `{}`.", api.tenant);
                return Ok(());
            }
            let rows = items
                .iter()
                .map(|c| {
                    vec![
                        text(c, "client_id"),
                        text(c, "name"),
                        text(c, "type"),
                        text(c, "grant_types"),
                        text(c, "redirect_uris"),
                    ]
                })
                .collect();
            print_table(
                &["CLIENT ID", "NAME", "TYPE", "GRANTS", "REDIRECT URIS"],
                rows,
            );
            Ok(())
        }
        OAuthClientCommand::Get { client_id } => {
            let found = api.client.get(&client_path(api, &client_id)).await?;
            show_client(api, &found, "")
        }
        OAuthClientCommand::Update {
            client_id,
            name,
            client_type,
            settings,
            clear_redirect_uris,
            clear_jwks,
            clear_backchannel_logout_uri,
        } => {
            let path = client_path(api, &client_id);
            let current = api.client.get(&path).await?;
            let mut map = Map::new();
            if let Some(n) = name {
                map.insert("name".into(), n.into());
            }
            if let Some(t) = client_type {
                map.insert("type".into(), t.as_str().into());
            }
            settings.add_to(&mut map)?;
            if clear_redirect_uris {
                map.insert("redirect_uris".into(), json!([]));
            }
            if clear_jwks {
                map.insert("jwks".into(), Value::Null);
                map.insert("jwks_uri".into(), Value::Null);
            }
            if clear_backchannel_logout_uri {
                map.insert("backchannel_logout_uri".into(), Value::Null);
            }
            anyhow::ensure!(
                !map.is_empty(),
                "nothing to change: give at least one option (see --help)"
            );
            let tag = current.get("version").and_then(Value::as_i64).map(etag);
            let updated = api
                .client
                .patch(&path, &Value::Object(map), tag.as_deref())
                .await?;
            show_client(api, &updated, "Updated")
        }
        OAuthClientCommand::Delete { client_id } => {
            api.client.delete(&client_path(api, &client_id)).await?;
            if !api.json {
                outln!("Deleted client `{client_id}`.");
            }
            Ok(())
        }
        OAuthClientCommand::RotateSecret { client_id } => {
            let rotated = api
                .client
                .post(
                    &format!("{}/secret", client_path(api, &client_id)),
                    &json!({}),
                )
                .await?;
            if api.json {
                return print_json(&rotated);
            }
            outln!(
                "Rotated the secret of client `{client_id}`; the old one no longer works.\n\
                 The new secret (shown only now):\n\n  {}\n",
                text(&rotated, "client_secret")
            );
            Ok(())
        }
    }
}

fn client_path(api: &Api, client_id: &str) -> String {
    api.path(&format!("/clients/{}", encode(client_id.trim())))
}

fn show_client(api: &Api, client: &Value, verb: &str) -> anyhow::Result<()> {
    if api.json {
        return print_json(client);
    }
    if !verb.is_empty() {
        outln!(
            "{verb} client `{}` ({}).\n",
            text(client, "name"),
            text(client, "client_id")
        );
    }
    print_fields(
        client,
        &[
            ("CLIENT ID", "client_id"),
            ("NAME", "name"),
            ("TYPE", "type"),
            ("REDIRECT URIS", "redirect_uris"),
            ("POST-LOGOUT URIS", "post_logout_redirect_uris"),
            ("GRANT TYPES", "grant_types"),
            ("SCOPES", "scopes"),
            ("AUTH METHOD", "token_endpoint_auth_method"),
            ("JWKS URI", "jwks_uri"),
            ("FIRST PARTY", "first_party"),
            ("ACCESS TOKENS", "access_token_format"),
            ("ID TOKEN ALG", "id_token_signed_response_alg"),
            ("REQUIRE PAR", "require_pushed_authorization_requests"),
            ("ACCESS TTL (S)", "access_token_lifetime_secs"),
            ("REFRESH TTL (S)", "refresh_token_lifetime_secs"),
            ("BACK-CHANNEL LOGOUT", "backchannel_logout_uri"),
            ("DPOP-BOUND", "dpop_bound_access_tokens"),
            ("SECRET SINCE", "secret_rotated_at"),
            ("CREATED", "created_at"),
            ("UPDATED", "updated_at"),
            ("VERSION", "version"),
        ],
    );
    if let Some(secret) = client.get("client_secret").and_then(Value::as_str) {
        outln!("\nClient secret (shown only now; store it safely):\n\n  {secret}\n");
    }
    Ok(())
}
