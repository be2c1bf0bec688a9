//! What every client command shares: the connection, tenant-scoped paths,
//! and finding principals and roles by reference.

use std::collections::HashMap;

use anyhow::Context;
use idplane_core::directory::PrincipalKind;
use serde_json::{Map, Value};

use super::Connection;
use super::http::{Client, encode, status_of};
use super::output::str_field;

/// A connected client acting in one tenant.
#[derive(Debug)]
pub struct Api {
    pub client: Client,
    pub tenant: String,
    pub json: bool,
}

impl Api {
    /// Connects as `IDPLANE_TOKEN` to the server and tenant of `conn`.
    pub fn new(conn: &Connection) -> anyhow::Result<Self> {
        Ok(Self {
            client: Client::from_env(&conn.server)?,
            tenant: conn.tenant(),
            json: conn.json,
        })
    }

    /// The path of a resource of this tenant, e.g. `path("/users")`.
    pub fn path(&self, rest: &str) -> String {
        tenant_path(&self.tenant, rest)
    }

    /// A principal of `kind` by id, name, or `kind:name`.
    pub async fn principal(&self, kind: PrincipalKind, reference: &str) -> anyhow::Result<Value> {
        let reference = reference.trim();
        let name = reference
            .split_once(':')
            .filter(|(k, _)| parse_kind(k) == Some(kind))
            .map_or(reference, |(_, n)| n);
        if uuid::Uuid::parse_str(name).is_ok() {
            return self
                .client
                .get(&self.path(&format!("/{}/{name}", collection(kind))))
                .await;
        }
        let found = self
            .client
            .list(
                &self.path(&format!("/{}", collection(kind))),
                &[("name", Some(name.to_owned()))],
                Some(1),
            )
            .await?;
        found.into_iter().next().with_context(|| {
            format!(
                "no {} named `{name}` in tenant `{}`",
                noun(kind),
                self.tenant
            )
        })
    }

    /// The id of a principal of `kind` by id, name, or `kind:name`.
    pub async fn principal_id(
        &self,
        kind: PrincipalKind,
        reference: &str,
    ) -> anyhow::Result<String> {
        let found = self.principal(kind, reference).await?;
        str_field(&found, "id")
            .map(str::to_owned)
            .context("the server sent a principal without an id")
    }
}

/// The path of a resource of `tenant`.
pub fn tenant_path(tenant: &str, rest: &str) -> String {
    format!("/api/v1/tenants/{}{rest}", encode(tenant))
}

/// The collection of principals of `kind` in the API.
pub fn collection(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::User => "users",
        PrincipalKind::Group => "groups",
        PrincipalKind::ServiceAccount => "service-accounts",
        PrincipalKind::Agent => "agents",
    }
}

/// The word for a principal of `kind`.
pub fn noun(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::User => "user",
        PrincipalKind::Group => "group",
        PrincipalKind::ServiceAccount => "service account",
        PrincipalKind::Agent => "agent",
    }
}

/// A kind as written in references: `user`, `group`, `service_account`
/// (or `service-account`), `agent`.
pub fn parse_kind(text: &str) -> Option<PrincipalKind> {
    PrincipalKind::parse(&text.trim().to_ascii_lowercase().replace('-', "_"))
}

/// Names of principals by id, looked up once each.
#[derive(Debug, Default)]
pub struct Names {
    known: HashMap<String, String>,
}

impl Names {
    /// Remembers the principals in `items` (API views).
    pub fn learn<'a>(&mut self, items: impl IntoIterator<Item = &'a Value>) {
        for item in items {
            if let (Some(id), Some(label)) = (str_field(item, "id"), label(item)) {
                self.known.insert(id.to_owned(), label);
            }
        }
    }

    /// The reference of the user with `id` (its username), or the id.
    pub async fn user(&mut self, api: &Api, id: &str) -> String {
        self.lookup(api, id, &[PrincipalKind::User]).await
    }

    /// The reference (`kind:name`, bare for users) of the principal with
    /// `id`, or the id if it cannot be found.
    pub async fn principal(&mut self, api: &Api, id: &str) -> String {
        let kinds = [
            PrincipalKind::User,
            PrincipalKind::Group,
            PrincipalKind::ServiceAccount,
            PrincipalKind::Agent,
        ];
        self.lookup(api, id, &kinds).await
    }

    async fn lookup(&mut self, api: &Api, id: &str, kinds: &[PrincipalKind]) -> String {
        if let Some(found) = self.known.get(id) {
            return found.clone();
        }
        for kind in kinds {
            let path = api.path(&format!("/{}/{}", collection(*kind), encode(id)));
            match api.client.get(&path).await {
                Ok(found) => {
                    if let Some(label) = label(&found) {
                        self.known.insert(id.to_owned(), label.clone());
                        return label;
                    }
                }
                Err(e) if status_of(&e).is_some() => continue,
                Err(_) => break,
            }
        }
        id.to_owned()
    }
}

/// How a principal view is referred to: bare username for users,
/// `kind:name` otherwise.
fn label(view: &Value) -> Option<String> {
    let name = str_field(view, "name")?;
    let kind = str_field(view, "kind").and_then(PrincipalKind::parse)?;
    Some(reference(kind, name))
}

/// The canonical reference to a principal: a bare username (unless it
/// contains `:`), `kind:name` otherwise.
pub fn reference(kind: PrincipalKind, name: &str) -> String {
    if kind == PrincipalKind::User && !name.contains(':') {
        name.to_owned()
    } else {
        format!("{}:{name}", kind.as_str())
    }
}

/// Parses `key=value` pairs into attributes (values are strings).
pub fn parse_attributes(pairs: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut map = Map::new();
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("`{pair}` is not key=value"))?;
        let key = key.trim();
        anyhow::ensure!(!key.is_empty(), "`{pair}` has an empty key");
        map.insert(key.to_owned(), Value::String(value.to_owned()));
    }
    Ok(map)
}
