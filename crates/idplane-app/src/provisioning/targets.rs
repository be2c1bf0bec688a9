//! Connected applications: create, read, change and delete the targets a
//! tenant provisions to. The bearer token is sealed under the root key,
//! bound to the target's id; it is never returned, logged or audited.

use idplane_core::audit::AuditEvent;
use idplane_core::directory::{PrincipalKind, name_key, normalize_name};
use idplane_core::{Ctx, PrincipalId, Timestamp, ValidationError};
use idplane_store::provisioning::{self as store, Target as Stored};
use idplane_store::{Conn, WriteTx, jobs as store_jobs};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::mapping::Mapping;
use crate::directory::{check_version, resolve_principal};
use crate::{App, AppError, Field, Result};

/// Longest accepted bearer token.
const MAX_TOKEN_LEN: usize = 4096;

/// Connects an application.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTarget {
    /// Unique per tenant, case-insensitively.
    pub name: String,
    /// The application's SCIM base URL: https, or http on a loopback IP.
    pub base_url: String,
    /// The bearer token idplane presents to it. Write-only.
    pub token: String,
    /// Pushes only the transitive members of this group (id or name);
    /// absent: every user.
    pub group: Option<String>,
    /// Whether groups are pushed too (default true).
    pub push_groups: Option<bool>,
    /// Target SCIM attribute path -> idplane source; absent: the default.
    #[schema(value_type = Option<Object>)]
    pub mapping: Option<Value>,
}

/// Changes a connected application (JSON Merge Patch: absent keeps, null
/// clears: the group to every user, the mapping to the default).
#[derive(Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTarget {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub name: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub base_url: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub token: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub group: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub push_groups: Field<bool>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub mapping: Field<Value>,
}

// The token must not reach logs through a derived Debug.
impl std::fmt::Debug for CreateTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateTarget")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for UpdateTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateTarget").finish_non_exhaustive()
    }
}

/// A connected application as administrators see it (no token).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Target {
    pub id: String,
    pub name: String,
    pub base_url: String,
    /// The group whose transitive members it receives; `null`: every user.
    #[schema(value_type = Option<String>)]
    pub group: Option<PrincipalId>,
    pub push_groups: bool,
    #[schema(value_type = Object)]
    pub mapping: Value,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
    #[schema(value_type = String)]
    pub updated_at: Timestamp,
    pub version: i64,
}

impl From<&Stored> for Target {
    fn from(t: &Stored) -> Self {
        Self {
            id: t.id.clone(),
            name: t.name.clone(),
            base_url: t.base_url.clone(),
            group: t.scope_group,
            push_groups: t.push_groups,
            mapping: t.mapping.clone(),
            created_at: t.created_at,
            updated_at: t.updated_at,
            version: t.version,
        }
    }
}

/// The keyring context a target's token is sealed under.
pub(crate) fn token_context(target_id: &str) -> String {
    format!("provisioning-token:{target_id}")
}

/// The audit target of a connected application.
pub(crate) fn audit_target(target_id: &str) -> String {
    format!("provisioning_target:{target_id}")
}

impl App {
    /// Connects an application.
    pub async fn create_target(&self, ctx: &Ctx, cmd: CreateTarget) -> Result<Target> {
        let mut tx = self.store().write().await?;
        let id = uuid::Uuid::now_v7().to_string();
        let name = normalize_name("name", &cmd.name)?;
        let group = match cmd.group.as_deref() {
            Some(g) => Some(scope_group(&mut tx, ctx, g).await?),
            None => None,
        };
        let mapping = match &cmd.mapping {
            Some(m) => Mapping::from_json(m)?,
            None => Mapping::from_json(&Mapping::default_json())?,
        };
        let t = Stored {
            token_sealed: self.seal_token(&id, &cmd.token)?,
            id,
            tenant_id: ctx.tenant,
            name,
            base_url: check_base_url(&cmd.base_url)?,
            scope_group: group,
            push_groups: cmd.push_groups.unwrap_or(true),
            mapping: mapping.to_json(),
            created_at: ctx.now,
            updated_at: ctx.now,
            version: 1,
        };
        store::insert(&mut tx, &t, &name_key(&t.name)).await?;
        let event = AuditEvent::new(ctx, "provisioning.target.create", Some(audit_target(&t.id)))
            .with_details(json!({
                "name": t.name,
                "base_url": t.base_url,
                "group": t.scope_group.map(|g| g.to_string()),
                "push_groups": t.push_groups,
            }));
        tx.commit(event).await?;
        Ok(Target::from(&t))
    }

    /// The tenant's connected applications.
    pub async fn targets(&self, ctx: &Ctx) -> Result<Vec<Target>> {
        let mut conn = self.store().read().await?;
        let all = store::list(&mut conn, ctx.tenant).await?;
        Ok(all.iter().map(Target::from).collect())
    }

    /// The connected application named by `reference` (its id or name).
    pub async fn target(&self, ctx: &Ctx, reference: &str) -> Result<Target> {
        let mut conn = self.store().read().await?;
        Ok(Target::from(
            &resolve_target(&mut conn, ctx, reference).await?,
        ))
    }

    /// Changes a connected application.
    pub async fn update_target(
        &self,
        ctx: &Ctx,
        reference: &str,
        cmd: UpdateTarget,
        if_match: Option<i64>,
    ) -> Result<Target> {
        let mut tx = self.store().write().await?;
        let current = resolve_target(&mut tx, ctx, reference).await?;
        check_version(if_match, current.version)?;
        let mut changed = Vec::new();
        let mut next = current.clone();
        next.name = normalize_name("name", &cmd.name.require("name", current.name.clone())?)?;
        next.base_url =
            check_base_url(&cmd.base_url.require("base_url", current.base_url.clone())?)?;
        match cmd.token {
            Field::Set(token) => {
                next.token_sealed = self.seal_token(&current.id, &token)?;
                changed.push("token");
            }
            Field::Clear => return Err(ValidationError::new("token", "cannot be null").into()),
            Field::Keep => {}
        }
        next.scope_group = match cmd.group {
            Field::Set(g) => Some(scope_group(&mut tx, ctx, &g).await?),
            Field::Clear => None,
            Field::Keep => current.scope_group,
        };
        next.push_groups = cmd
            .push_groups
            .require("push_groups", current.push_groups)?;
        next.mapping = match cmd.mapping {
            Field::Set(m) => Mapping::from_json(&m)?.to_json(),
            Field::Clear => Mapping::from_json(&Mapping::default_json())?.to_json(),
            Field::Keep => current.mapping.clone(),
        };
        for (field, differs) in [
            ("name", next.name != current.name),
            ("base_url", next.base_url != current.base_url),
            ("group", next.scope_group != current.scope_group),
            ("push_groups", next.push_groups != current.push_groups),
            ("mapping", next.mapping != current.mapping),
        ] {
            if differs {
                changed.push(field);
            }
        }
        if changed.is_empty() {
            return Ok(Target::from(&current));
        }
        next.updated_at = ctx.now;
        next.version = current.version + 1;
        if !store::update(&mut tx, &next, &name_key(&next.name), current.version).await? {
            return Err(AppError::VersionMismatch {
                current: current.version,
            });
        }
        let event = AuditEvent::new(
            ctx,
            "provisioning.target.update",
            Some(audit_target(&next.id)),
        )
        .with_details(json!({"changed": changed}));
        tx.commit(event).await?;
        Ok(Target::from(&next))
    }

    /// Disconnects an application: its links go, and its pending pushes
    /// are cancelled (nothing is deleted at the application).
    pub async fn delete_target(&self, ctx: &Ctx, reference: &str) -> Result<()> {
        let mut tx = self.store().write().await?;
        let t = resolve_target(&mut tx, ctx, reference).await?;
        store::delete(&mut tx, ctx.tenant, &t.id).await?;
        let cancelled = store_jobs::cancel_subject(&mut tx, ctx.tenant, &t.id).await?;
        let event = AuditEvent::new(ctx, "provisioning.target.delete", Some(audit_target(&t.id)))
            .with_details(json!({"name": t.name, "pushes_cancelled": cancelled}));
        tx.commit(event).await?;
        Ok(())
    }

    fn seal_token(&self, target_id: &str, token: &str) -> Result<String> {
        let token = token.trim();
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(ValidationError::new(
                "token",
                format!("must be 1 to {MAX_TOKEN_LEN} bytes"),
            )
            .into());
        }
        // RFC 6750 §2.1 b64token: anything else would corrupt the header.
        if !token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~+/=".contains(c))
        {
            return Err(ValidationError::new(
                "token",
                "must be a bearer token (RFC 6750 b64token characters)",
            )
            .into());
        }
        self.keyring()
            .seal(&token_context(target_id), token.as_bytes())
    }

    /// The bearer token of `t`, unsealed.
    pub(crate) fn target_token(&self, t: &Stored) -> Result<String> {
        let bytes = self
            .keyring()
            .open(&token_context(&t.id), &t.token_sealed)?;
        String::from_utf8(bytes)
            .map_err(|_| AppError::Internal(format!("the token of target {} is not text", t.id)))
    }
}

/// The target named by `reference`: its id, or its name.
pub(crate) async fn resolve_target(
    conn: &mut impl Conn,
    ctx: &Ctx,
    reference: &str,
) -> Result<Stored> {
    let found = match store::by_id(conn, ctx.tenant, reference).await? {
        Some(t) => Some(t),
        None => store::by_name(conn, ctx.tenant, &name_key(reference.trim())).await?,
    };
    found.ok_or_else(|| AppError::NotFound(format!("provisioning target `{reference}`")))
}

async fn scope_group(tx: &mut WriteTx, ctx: &Ctx, reference: &str) -> Result<PrincipalId> {
    let reference = if reference.contains(':') || reference.parse::<PrincipalId>().is_ok() {
        reference.to_owned()
    } else {
        format!("group:{reference}")
    };
    let group = resolve_principal(tx, ctx, &reference, PrincipalKind::Group).await?;
    if group.kind != PrincipalKind::Group {
        return Err(
            ValidationError::new("group", format!("`{}` is not a group", group.name)).into(),
        );
    }
    Ok(group.id)
}

/// Checks a SCIM base URL: https, or plain http on a loopback IP literal
/// (tests, development); no user information, query or fragment. Returned
/// without a trailing slash.
fn check_base_url(raw: &str) -> Result<String> {
    let invalid = |m: String| AppError::from(ValidationError::new("base_url", m));
    crate::oidc::clients::validate_backchannel_logout_uri(raw.trim()).map_err(invalid)?;
    let url = url::Url::parse(raw.trim()).map_err(|e| invalid(format!("not a URL: {e}")))?;
    if url.query().is_some() {
        return Err(invalid("must not have a query".into()));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_https_or_loopback_http() {
        assert_eq!(
            check_base_url("https://app.example/scim/v2/").unwrap(),
            "https://app.example/scim/v2"
        );
        assert_eq!(
            check_base_url("http://127.0.0.1:9000/scim/v2").unwrap(),
            "http://127.0.0.1:9000/scim/v2"
        );
        for bad in [
            "http://app.example/scim/v2",
            "ftp://app.example/",
            "https://user:pw@app.example/scim",
            "https://app.example/scim?x=1",
            "https://app.example/scim#f",
            "not a url",
            "http://localhost:9000/scim",
        ] {
            assert!(check_base_url(bad).is_err(), "{bad}");
        }
    }
}
