//! `idplane role`: roles and role assignments.

use crate::client::output::outln;
use std::collections::HashMap;

use anyhow::Context;
use clap::Subcommand;
use serde_json::{Value, json};

use super::ExpiryArgs;
use super::api::{Api, Names};
use super::directory::{insert_opt, object};
use super::http::{encode, etag};
use super::output::{print_fields, print_json, print_table, str_field, text};

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Create a role.
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// An entitlement, `resource:permission` (repeatable).
        #[arg(long = "entitlement", value_name = "RESOURCE:PERMISSION")]
        entitlements: Vec<String>,
    },
    /// List roles.
    List {
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Show a role (by name or id).
    Get { role: String },
    /// Change a role; only the options given change.
    Update {
        role: String,
        /// Rename the role.
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Add an entitlement, `resource:permission` (repeatable).
        #[arg(long = "add-entitlement", value_name = "RESOURCE:PERMISSION")]
        add: Vec<String>,
        /// Remove an entitlement, `resource:permission` (repeatable).
        #[arg(long = "remove-entitlement", value_name = "RESOURCE:PERMISSION")]
        remove: Vec<String>,
    },
    /// Delete a role (refused while it is assigned).
    Delete { role: String },
    /// Assign a role to a principal (username, `kind:name` such as
    /// `group:eng`, or id), or change the expiry of the assignment.
    Assign {
        /// The role (name or id).
        role: String,
        /// The grantee: a username, `kind:name` (`group:eng`,
        /// `service_account:ci`, `agent:bot`), or an id.
        principal: String,
        #[command(flatten)]
        expiry: ExpiryArgs,
    },
    /// Revoke a role assignment (see `role assignments` for ids).
    Unassign { assignment: String },
    /// List role assignments.
    Assignments {
        /// Only of this role.
        #[arg(long)]
        role: Option<String>,
        /// Only to this principal.
        #[arg(long)]
        principal: Option<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
    },
}

pub async fn run(api: &Api, command: RoleCommand) -> anyhow::Result<()> {
    match command {
        RoleCommand::Create {
            name,
            description,
            entitlements,
        } => {
            let entitlements = entitlements
                .iter()
                .map(|e| parse_entitlement(e))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut body = json!({"name": name, "entitlements": entitlements});
            insert_opt(object(&mut body)?, "description", description);
            let created = api.client.post(&api.path("/roles"), &body).await?;
            show_role(api, &created, "Created")
        }
        RoleCommand::List { limit } => {
            let items = api.client.list(&api.path("/roles"), &[], limit).await?;
            if api.json {
                return print_json(&Value::Array(items));
            }
            if items.is_empty() {
                eprintln!("No roles in tenant `{}`.", api.tenant);
                return Ok(());
            }
            let rows = items
                .iter()
                .map(|r| {
                    vec![
                        text(r, "name"),
                        text(r, "description"),
                        entitlements(r),
                        text(r, "id"),
                    ]
                })
                .collect();
            print_table(&["NAME", "DESCRIPTION", "ENTITLEMENTS", "ID"], rows);
            Ok(())
        }
        RoleCommand::Get { role } => {
            let found = api.client.get(&role_path(api, &role)).await?;
            show_role(api, &found, "")
        }
        RoleCommand::Update {
            role,
            name,
            description,
            add,
            remove,
        } => {
            let current = api.client.get(&role_path(api, &role)).await?;
            let mut body = json!({});
            let map = object(&mut body)?;
            insert_opt(map, "name", name);
            insert_opt(map, "description", description);
            if !add.is_empty() || !remove.is_empty() {
                let mut list: Vec<Value> = current
                    .get("entitlements")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for e in &add {
                    list.push(parse_entitlement(e)?);
                }
                for e in &remove {
                    let gone = parse_entitlement(e)?;
                    list.retain(|x| *x != gone);
                }
                map.insert("entitlements".into(), Value::Array(list));
            }
            anyhow::ensure!(
                !map.is_empty(),
                "nothing to change: give at least one option (see --help)"
            );
            let tag = current.get("version").and_then(Value::as_i64).map(etag);
            let updated = api
                .client
                .patch(&role_path(api, &role), &body, tag.as_deref())
                .await?;
            show_role(api, &updated, "Updated")
        }
        RoleCommand::Delete { role } => {
            api.client.delete(&role_path(api, &role)).await?;
            if !api.json {
                outln!("Deleted role `{role}`.");
            }
            Ok(())
        }
        RoleCommand::Assign {
            role,
            principal,
            expiry,
        } => {
            let mut body = json!({"role": role, "principal": principal});
            expiry.add_to(&mut body);
            let assigned = api
                .client
                .post(&api.path("/role-assignments"), &body)
                .await?;
            if api.json {
                return print_json(&assigned);
            }
            let until = match str_field(&assigned, "expires_at") {
                Some(at) => format!(" until {at}"),
                None => String::new(),
            };
            outln!(
                "Assigned role `{role}` to `{principal}`{until} (assignment {}).",
                text(&assigned, "id")
            );
            Ok(())
        }
        RoleCommand::Unassign { assignment } => {
            api.client
                .delete(&api.path(&format!("/role-assignments/{}", encode(&assignment))))
                .await?;
            if !api.json {
                outln!("Revoked role assignment {assignment}.");
            }
            Ok(())
        }
        RoleCommand::Assignments {
            role,
            principal,
            limit,
        } => {
            let items = api
                .client
                .list(
                    &api.path("/role-assignments"),
                    &[("role", role), ("principal", principal)],
                    limit,
                )
                .await?;
            if api.json {
                return print_json(&Value::Array(items));
            }
            if items.is_empty() {
                eprintln!("No role assignments.");
                return Ok(());
            }
            let roles = role_names(api).await?;
            let mut names = Names::default();
            let mut rows = Vec::new();
            for a in &items {
                let role = str_field(a, "role_id")
                    .map(|id| roles.get(id).cloned().unwrap_or_else(|| id.to_owned()));
                let principal = match str_field(a, "principal_id") {
                    Some(id) => names.principal(api, id).await,
                    None => "-".to_owned(),
                };
                rows.push(vec![
                    role.unwrap_or_else(|| "-".to_owned()),
                    principal,
                    text(a, "expires_at"),
                    text(a, "active"),
                    text(a, "id"),
                ]);
            }
            print_table(&["ROLE", "PRINCIPAL", "EXPIRES AT", "ACTIVE", "ID"], rows);
            Ok(())
        }
    }
}

fn role_path(api: &Api, role: &str) -> String {
    api.path(&format!("/roles/{}", encode(role.trim())))
}

/// Role names by id.
async fn role_names(api: &Api) -> anyhow::Result<HashMap<String, String>> {
    let roles = api.client.list(&api.path("/roles"), &[], None).await?;
    Ok(roles
        .iter()
        .filter_map(|r| {
            Some((
                str_field(r, "id")?.to_owned(),
                str_field(r, "name")?.to_owned(),
            ))
        })
        .collect())
}

fn show_role(api: &Api, role: &Value, verb: &str) -> anyhow::Result<()> {
    if api.json {
        return print_json(role);
    }
    if !verb.is_empty() {
        outln!("{verb} role `{}`.\n", text(role, "name"));
    }
    let mut shown = role.clone();
    if let Some(map) = shown.as_object_mut() {
        map.insert("entitlement_list".into(), entitlements(role).into());
    }
    print_fields(
        &shown,
        &[
            ("ID", "id"),
            ("NAME", "name"),
            ("DESCRIPTION", "description"),
            ("ENTITLEMENTS", "entitlement_list"),
            ("CREATED", "created_at"),
            ("UPDATED", "updated_at"),
            ("VERSION", "version"),
        ],
    );
    Ok(())
}

/// A role's entitlements as `resource:permission, ...`.
fn entitlements(role: &Value) -> String {
    let list: Vec<String> = role
        .get("entitlements")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| format!("{}:{}", text(e, "resource"), text(e, "permission")))
        .collect();
    if list.is_empty() {
        "-".to_owned()
    } else {
        list.join(", ")
    }
}

/// `resource:permission` (split at the last `:`) as the API's object.
pub fn parse_entitlement(text: &str) -> anyhow::Result<Value> {
    let (resource, permission) = text
        .rsplit_once(':')
        .filter(|(r, p)| !r.trim().is_empty() && !p.trim().is_empty())
        .with_context(|| format!("`{text}` is not resource:permission"))?;
    Ok(json!({"resource": resource.trim(), "permission": permission.trim()}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entitlements_split_at_the_last_colon() {
        assert_eq!(
            parse_entitlement("payroll:read").unwrap(),
            json!({"resource": "payroll", "permission": "read"})
        );
        assert_eq!(
            parse_entitlement("urn:x:write").unwrap(),
            json!({"resource": "urn:x", "permission": "write"})
        );
        assert!(parse_entitlement("payroll").is_err());
        assert!(parse_entitlement("payroll:").is_err());
    }
}
