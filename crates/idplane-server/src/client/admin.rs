//! `idplane tenant`, `token`, `events` and `checkpoint`.

use crate::client::output::outln;
use std::collections::HashMap;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use super::Connection;
use super::api::Api;
use super::directory::{insert_opt, object};
use super::http::{encode, status_of};
use super::output::{print_fields, print_json, print_table, str_field, text};

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant (lowercase letters, digits and `-`).
    Create {
        name: String,
        #[arg(long)]
        display_name: Option<String>,
    },
    /// List tenants.
    List,
    /// Show a tenant.
    Get { name: String },
    /// Delete a tenant with its whole directory (its audit chain remains).
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token; its secret is printed only this once. `--tenant`
    /// binds it to one tenant.
    Create {
        /// What the token is for.
        name: String,
        /// What it may do (`read` unless asked).
        #[arg(long)]
        scope: Option<ScopeArg>,
        /// Expire after this long, e.g. `30d`, `12h` (90 days by default, at most 366).
        #[arg(long)]
        expires: Option<String>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token; it stops working at once.
    Revoke { id: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScopeArg {
    Admin,
    Read,
    /// Authorization decisions only (AuthZEN), for policy enforcement points.
    Pdp,
    /// SCIM provisioning only, for HR systems and identity providers that push.
    Scim,
}

/// Filters for `idplane events`.
#[derive(Debug, Args)]
pub struct EventFilter {
    /// e.g. `root`, `token:<id>`, `system`.
    #[arg(long)]
    pub actor: Option<String>,
    /// e.g. `user.create`.
    #[arg(long)]
    pub action: Option<String>,
    /// e.g. `user:<id>`.
    #[arg(long)]
    pub target: Option<String>,
    /// Only events at or after this RFC 3339 instant.
    #[arg(long)]
    pub since: Option<jiff::Timestamp>,
    /// Only events before this RFC 3339 instant.
    #[arg(long)]
    pub until: Option<jiff::Timestamp>,
    /// At most this many (oldest first).
    #[arg(long)]
    pub limit: Option<usize>,
}

pub async fn tenant(api: &Api, command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create { name, display_name } => {
            let mut body = json!({"name": name});
            insert_opt(object(&mut body)?, "display_name", display_name);
            let created = api.client.post("/api/v1/tenants", &body).await?;
            if api.json {
                return print_json(&created);
            }
            outln!("Created tenant `{}`.", text(&created, "name"));
            Ok(())
        }
        TenantCommand::List => {
            let items = api.client.list("/api/v1/tenants", &[], None).await?;
            if api.json {
                return print_json(&Value::Array(items));
            }
            let rows = items
                .iter()
                .map(|t| {
                    vec![
                        text(t, "name"),
                        text(t, "display_name"),
                        text(t, "created_at"),
                        text(t, "id"),
                    ]
                })
                .collect();
            print_table(&["NAME", "DISPLAY NAME", "CREATED", "ID"], rows);
            Ok(())
        }
        TenantCommand::Get { name } => {
            let found = api
                .client
                .get(&format!("/api/v1/tenants/{}", encode(&name)))
                .await?;
            if api.json {
                return print_json(&found);
            }
            print_fields(
                &found,
                &[
                    ("ID", "id"),
                    ("NAME", "name"),
                    ("DISPLAY NAME", "display_name"),
                    ("CREATED", "created_at"),
                    ("UPDATED", "updated_at"),
                    ("VERSION", "version"),
                ],
            );
            Ok(())
        }
        TenantCommand::Delete { name } => {
            api.client
                .delete(&format!("/api/v1/tenants/{}", encode(&name)))
                .await?;
            if !api.json {
                outln!("Deleted tenant `{name}`.");
            }
            Ok(())
        }
    }
}

pub async fn token(api: &Api, conn: &Connection, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            name,
            scope,
            expires,
        } => {
            let mut body = json!({"name": name});
            let map = object(&mut body)?;
            insert_opt(
                map,
                "scope",
                scope.map(|s| match s {
                    ScopeArg::Admin => "admin".to_owned(),
                    ScopeArg::Read => "read".to_owned(),
                    ScopeArg::Pdp => "pdp".to_owned(),
                    ScopeArg::Scim => "scim".to_owned(),
                }),
            );
            // Only an explicit `--tenant` binds the token, not IDPLANE_TENANT.
            insert_opt(map, "tenant", conn.tenant.clone());
            insert_opt(map, "expires_in", expires);
            let issued = api.client.post("/api/v1/tokens", &body).await?;
            if api.json {
                return print_json(&issued);
            }
            let tenant = conn
                .tenant
                .as_deref()
                .map_or_else(|| "every tenant".to_owned(), |t| format!("tenant `{t}`"));
            outln!(
                "Token `{}` ({}): scope {}, valid in {tenant} until {}.\nIts secret, shown only now:\n\n  {}\n",
                text(&issued, "name"),
                text(&issued, "id"),
                text(&issued, "scope"),
                text(&issued, "expires_at"),
                text(&issued, "secret"),
            );
            Ok(())
        }
        TokenCommand::List => {
            let items = api.client.list("/api/v1/tokens", &[], None).await?;
            if api.json {
                return print_json(&Value::Array(items));
            }
            let tenants = tenant_names(api).await;
            let rows = items
                .iter()
                .map(|t| {
                    let tenant = match str_field(t, "tenant_id") {
                        Some(id) => tenants.get(id).cloned().unwrap_or_else(|| id.to_owned()),
                        None => "*".to_owned(),
                    };
                    vec![
                        text(t, "name"),
                        text(t, "scope"),
                        tenant,
                        text(t, "created_by"),
                        text(t, "expires_at"),
                        text(t, "revoked_at"),
                        text(t, "id"),
                    ]
                })
                .collect();
            print_table(
                &[
                    "NAME",
                    "SCOPE",
                    "TENANT",
                    "CREATED BY",
                    "EXPIRES AT",
                    "REVOKED AT",
                    "ID",
                ],
                rows,
            );
            Ok(())
        }
        TokenCommand::Revoke { id } => {
            api.client
                .delete(&format!("/api/v1/tokens/{}", encode(&id)))
                .await?;
            if !api.json {
                outln!("Revoked token {id}.");
            }
            Ok(())
        }
    }
}

/// Tenant names by id (empty if the token may not list tenants).
async fn tenant_names(api: &Api) -> HashMap<String, String> {
    let tenants = api
        .client
        .list("/api/v1/tenants", &[], None)
        .await
        .unwrap_or_default();
    tenants
        .iter()
        .filter_map(|t| {
            Some((
                str_field(t, "id")?.to_owned(),
                str_field(t, "name")?.to_owned(),
            ))
        })
        .collect()
}

pub async fn events(api: &Api, filter: EventFilter) -> anyhow::Result<()> {
    let query = [
        ("actor", filter.actor),
        ("action", filter.action),
        ("target", filter.target),
        ("since", filter.since.map(|t| t.to_string())),
        ("until", filter.until.map(|t| t.to_string())),
    ];
    let items = api
        .client
        .list(&api.path("/audit"), &query, filter.limit)
        .await?;
    if api.json {
        return print_json(&Value::Array(items));
    }
    if items.is_empty() {
        eprintln!("No matching events.");
        return Ok(());
    }
    let rows = items
        .iter()
        .map(|e| {
            vec![
                text(e, "seq"),
                text(e, "time"),
                text(e, "actor"),
                text(e, "action"),
                text(e, "target"),
                text(e, "outcome"),
            ]
        })
        .collect();
    print_table(
        &["SEQ", "TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME"],
        rows,
    );
    Ok(())
}

/// Always JSON: the file `audit verify --checkpoint` reads.
pub async fn checkpoint(api: &Api) -> anyhow::Result<()> {
    match api.client.get(&api.path("/audit/checkpoint")).await {
        Ok(cp) => print_json(&cp),
        Err(e) if status_of(&e).is_some_and(|s| s.as_u16() == 404) => {
            anyhow::bail!(
                "tenant `{}` has no audit events yet (or does not exist)",
                api.tenant
            )
        }
        Err(e) => Err(e),
    }
}
