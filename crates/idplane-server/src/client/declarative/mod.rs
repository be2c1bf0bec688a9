//! Configuration as code: `idplane apply FILE` and `idplane export`.
//!
//! `export` reads the live state into a [`doc::Document`] and prints it as
//! YAML. `apply` reads the same state, plans the changes that make it match
//! the file ([`plan::plan`], pure), prints them and makes them in order.

mod doc;
mod live;
mod plan;

use crate::client::output::outln;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use anyhow::Context;
use idplane_core::directory::{PrincipalKind, name_key};
use serde_json::Value;

use self::doc::{Document, Field, Tenant};
use self::plan::{Change, Object, Op};
use super::Connection;
use super::api::{Api, collection, tenant_path};
use super::http::{Client, encode, etag};

/// `idplane export`.
pub async fn export(conn: &Connection) -> anyhow::Result<()> {
    let client = Client::from_env(&conn.server)?;
    let selected = conn.selected_tenant();
    let mut doc = Document {
        version: doc::VERSION,
        tenants: Vec::new(),
    };
    match live::tenants(&client).await? {
        Some(all) => {
            if let Some(name) = &selected {
                anyhow::ensure!(
                    all.iter().any(|(n, _)| n == name),
                    "there is no tenant `{name}`"
                );
            }
            for (name, display_name) in all {
                if selected.as_ref().is_none_or(|s| *s == name) {
                    doc.tenants
                        .push(live::tenant(&client, &name, Field::live(display_name)).await?);
                }
            }
        }
        // A token bound to one tenant: export just that one.
        None => {
            let tenant = live::tenant(&client, &conn.tenant(), Field::Unset)
                .await
                .with_context(|| bound_token_hint(selected.is_none()))?;
            doc.tenants.push(tenant);
        }
    }
    for tenant in &mut doc.tenants {
        // Expired grants grant nothing, and could not be created again.
        for group in tenant.groups.iter_mut().flatten() {
            if let Some(members) = &mut group.members {
                members.retain(|m| !m.meta.expired);
            }
        }
        if let Some(assignments) = &mut tenant.assignments {
            assignments.retain(|a| !a.meta.expired);
        }
    }
    crate::client::output::write_out(format_args!("{}", doc::to_yaml(&doc)?));
    Ok(())
}

/// `idplane apply`.
pub async fn apply(
    conn: &Connection,
    file: &Path,
    dry_run: bool,
    prune: bool,
) -> anyhow::Result<()> {
    let text = if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
        text
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    let mut desired = doc::parse(&text)
        .with_context(|| format!("{} is not a valid idplane document", file.display()))?;
    let base = file.parent().unwrap_or(Path::new("."));
    for tenant in &mut desired.tenants {
        if let Some(policy) = &mut tenant.policy
            && let Some(dir) = policy.directory.take()
        {
            anyhow::ensure!(
                policy.bundle.is_none(),
                "tenant `{}`: give the policy as a directory or inline, not both",
                tenant.name
            );
            policy.bundle = Some(crate::client::policy_files::read(&base.join(dir))?);
        }
    }
    let client = Client::from_env(&conn.server)?;

    if let Some(only) = conn.selected_tenant() {
        for t in &desired.tenants {
            if t.name.trim() != only {
                eprintln!(
                    "note: skipping tenant `{}` (only `{only}` is selected)",
                    t.name
                );
            }
        }
        desired.tenants.retain(|t| t.name.trim() == only);
    }
    let wanted: Vec<String> = desired
        .tenants
        .iter()
        .map(|t| t.name.trim().to_ascii_lowercase())
        .collect();
    let mut live = Document::default();
    match live::tenants(&client).await? {
        Some(all) => {
            for (name, display_name) in all {
                if conn.selected_tenant().is_some_and(|s| s != name) {
                    continue;
                }
                let tenant = if wanted.contains(&name) {
                    live::tenant(&client, &name, Field::live(display_name)).await?
                } else {
                    // Only its name matters: to delete it with --prune.
                    Tenant {
                        name,
                        ..Tenant::default()
                    }
                };
                live.tenants.push(tenant);
            }
        }
        None => {
            // A token bound to one tenant cannot manage tenants themselves.
            for t in &mut desired.tenants {
                t.display_name = Field::Unset;
                let tenant = live::tenant(&client, t.name.trim(), Field::Unset)
                    .await
                    .with_context(|| bound_token_hint(conn.selected_tenant().is_none()))?;
                live.tenants.push(tenant);
            }
        }
    }

    let changes = plan::plan(&desired, &live, prune)?;
    if conn.json {
        // The plan as JSON; made unless --dry-run.
        let secrets = if dry_run {
            Vec::new()
        } else {
            execute_all(&client, &changes, true).await?
        };
        let list: Vec<Value> = changes.iter().map(change_json).collect();
        let mut out = serde_json::json!({"applied": !dry_run, "changes": list});
        if let (false, Some(map)) = (secrets.is_empty(), out.as_object_mut()) {
            // Generated client secrets: shown only now.
            map.insert("client_secrets".into(), Value::Array(secrets));
        }
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if changes.is_empty() {
        outln!("no changes");
        return Ok(());
    }
    let summary = Summary::of(&changes);
    if dry_run {
        for change in &changes {
            outln!("{change}");
        }
        outln!("\nPlan: {summary}. Nothing changed (--dry-run).");
        return Ok(());
    }
    execute_all(&client, &changes, false).await?;
    outln!(
        "\nApplied: {} created, {} updated, {} deleted.",
        summary.create,
        summary.update,
        summary.delete
    );
    Ok(())
}

/// Makes the changes in order, printing each once made (and any client
/// secret generated) unless `quiet`. Returns the generated client secrets
/// as `{tenant, client_id, client_secret}`.
async fn execute_all(
    client: &Client,
    changes: &[Change],
    quiet: bool,
) -> anyhow::Result<Vec<Value>> {
    let mut executor = Executor {
        client,
        created: HashMap::new(),
        secrets: Vec::new(),
    };
    for (done, change) in changes.iter().enumerate() {
        executor.execute(change).await.with_context(|| {
            format!(
                "cannot apply `{change}` ({done} of {} changes made)",
                changes.len()
            )
        })?;
        if !quiet {
            outln!("{change}");
            if let Some(secret) = executor
                .secrets
                .last()
                .filter(|s| {
                    s["client_id"] == change.name.as_str() && s["tenant"] == change.tenant.as_str()
                })
                .and_then(|s| s["client_secret"].as_str())
            {
                outln!("    client_secret (shown only now; store it safely): {secret}");
            }
        }
    }
    Ok(executor.secrets)
}

/// A change for `--json`.
fn change_json(change: &Change) -> Value {
    let op = match change.op {
        Op::Create => "create",
        Op::Update => "update",
        Op::Delete => "delete",
    };
    let mut out = serde_json::json!({
        "op": op,
        "object": change.object.as_str(),
        "tenant": change.tenant,
        "name": change.name,
    });
    if let Some(map) = out.as_object_mut() {
        match (change.object, &change.other) {
            (Object::Member, Some(other)) => {
                map.insert("member".into(), other.clone().into());
            }
            (Object::Assignment, Some(other)) => {
                map.insert("principal".into(), other.clone().into());
            }
            _ => {}
        }
        if !change.fields.is_empty() {
            map.insert("fields".into(), change.fields.clone().into());
        }
    }
    out
}

/// Why reading a tenant failed when the token may not list tenants.
fn bound_token_hint(unselected: bool) -> String {
    let hint = if unselected {
        "; name its tenant with --tenant"
    } else {
        ""
    };
    format!("this token may not list tenants (it is bound to one){hint}")
}

/// How many changes of each kind.
struct Summary {
    create: usize,
    update: usize,
    delete: usize,
}

impl Summary {
    fn of(changes: &[Change]) -> Self {
        let count = |op| changes.iter().filter(|c| c.op == op).count();
        Self {
            create: count(Op::Create),
            update: count(Op::Update),
            delete: count(Op::Delete),
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} to create, {} to update, {} to delete",
            self.create, self.update, self.delete
        )
    }
}

/// Makes changes over the API.
struct Executor<'a> {
    client: &'a Client,
    /// Ids of principals created in this run, by tenant, kind and name key.
    created: HashMap<(String, &'static str, String), String>,
    /// Client secrets generated in this run.
    secrets: Vec<Value>,
}

impl Executor<'_> {
    async fn execute(&mut self, change: &Change) -> anyhow::Result<()> {
        let client = self.client;
        let t = change.tenant.as_str();
        let if_match = change.version.map(etag);
        let if_match = if_match.as_deref();
        match (change.object, change.op) {
            (Object::Tenant, Op::Create) => {
                client.post("/api/v1/tenants", &change.body).await?;
            }
            (Object::Tenant, Op::Update) => {
                client
                    .patch(
                        &format!("/api/v1/tenants/{}", encode(t)),
                        &change.body,
                        None,
                    )
                    .await?;
            }
            (Object::Tenant, Op::Delete) => {
                client
                    .delete(&format!("/api/v1/tenants/{}", encode(t)))
                    .await?
            }
            (
                object @ (Object::User | Object::Group | Object::ServiceAccount | Object::Agent),
                op,
            ) => {
                let kind = object.principal_kind().context("not a principal")?;
                let base = tenant_path(t, &format!("/{}", collection(kind)));
                match op {
                    Op::Create => {
                        let mut body = change.body.clone();
                        // Service accounts and agents are created active.
                        let status = match kind {
                            PrincipalKind::ServiceAccount | PrincipalKind::Agent => {
                                body.as_object_mut().and_then(|m| m.remove("status"))
                            }
                            _ => None,
                        };
                        let created = client.post(&base, &body).await?;
                        let id = created
                            .get("id")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned();
                        if let Some(status) = status.filter(|s| s != "active") {
                            let patch = serde_json::json!({"status": status});
                            client.patch(&format!("{base}/{id}"), &patch, None).await?;
                        }
                        self.created
                            .insert((t.to_owned(), kind.as_str(), name_key(&change.name)), id);
                    }
                    Op::Update => {
                        let id = self.principal_id(change, kind, &change.name).await?;
                        client
                            .patch(&format!("{base}/{id}"), &change.body, if_match)
                            .await?;
                    }
                    Op::Delete => {
                        let id = self.principal_id(change, kind, &change.name).await?;
                        client
                            .delete_if_match(&format!("{base}/{id}"), if_match)
                            .await?;
                    }
                }
            }
            (Object::Role, op) => {
                let role = change.id.clone().unwrap_or_else(|| change.name.clone());
                let path = tenant_path(t, &format!("/roles/{}", encode(&role)));
                match op {
                    Op::Create => {
                        client.post(&tenant_path(t, "/roles"), &change.body).await?;
                    }
                    Op::Update => {
                        client.patch(&path, &change.body, if_match).await?;
                    }
                    Op::Delete => client.delete_if_match(&path, if_match).await?,
                }
            }
            (Object::Member, op) => {
                let group = match &change.id {
                    Some(id) => id.clone(),
                    None => self.lookup(t, PrincipalKind::Group, &change.name).await?,
                };
                let members = tenant_path(t, &format!("/groups/{group}/members"));
                match op {
                    Op::Create | Op::Update => {
                        client.post(&members, &change.body).await?;
                    }
                    Op::Delete => {
                        let member = change
                            .body
                            .get("member_id")
                            .and_then(Value::as_str)
                            .or(change.other.as_deref())
                            .context("no member")?;
                        client
                            .delete(&format!("{members}/{}", encode(member)))
                            .await?;
                    }
                }
            }
            (Object::Policy, _) => {
                client
                    .post(&tenant_path(t, "/policy/versions"), &change.body)
                    .await?;
            }
            (Object::Client, op) => {
                let path = tenant_path(t, &format!("/clients/{}", encode(&change.name)));
                let answer = match op {
                    Op::Create => {
                        client
                            .post(&tenant_path(t, "/clients"), &change.body)
                            .await?
                    }
                    Op::Update => client.patch(&path, &change.body, if_match).await?,
                    Op::Delete => {
                        client.delete_if_match(&path, if_match).await?;
                        Value::Null
                    }
                };
                if let Some(secret) = answer.get("client_secret").and_then(Value::as_str) {
                    self.secrets.push(serde_json::json!({
                        "tenant": t,
                        "client_id": change.name,
                        "client_secret": secret,
                    }));
                }
            }
            (Object::Assignment, Op::Create | Op::Update) => {
                client
                    .post(&tenant_path(t, "/role-assignments"), &change.body)
                    .await?;
            }
            (Object::Assignment, Op::Delete) => {
                let id = change.id.as_deref().context("no assignment id")?;
                client
                    .delete(&tenant_path(
                        t,
                        &format!("/role-assignments/{}", encode(id)),
                    ))
                    .await?;
            }
        }
        Ok(())
    }

    /// The id of a live principal the change is about.
    async fn principal_id(
        &self,
        change: &Change,
        kind: PrincipalKind,
        name: &str,
    ) -> anyhow::Result<String> {
        match &change.id {
            Some(id) => Ok(id.clone()),
            None => self.lookup(&change.tenant, kind, name).await,
        }
    }

    /// The id of a principal created in this run, or found by name.
    async fn lookup(
        &self,
        tenant: &str,
        kind: PrincipalKind,
        name: &str,
    ) -> anyhow::Result<String> {
        if let Some(id) = self
            .created
            .get(&(tenant.to_owned(), kind.as_str(), name_key(name)))
        {
            return Ok(id.clone());
        }
        let api = Api {
            client: self.client.clone(),
            tenant: tenant.to_owned(),
            json: false,
        };
        api.principal_id(kind, name).await
    }
}
