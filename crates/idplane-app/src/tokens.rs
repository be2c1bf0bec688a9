//! Administrator tokens: random secrets, stored only as SHA-256 hashes,
//! scoped, expiring, revocable; and the one-time bootstrap token that lets
//! the first administrator in.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use idplane_core::audit::AuditEvent;
use idplane_core::directory::{Status, UserType};
use idplane_core::{
    Actor, Ctx, PrincipalId, RequestMeta, TenantId, Timestamp, TokenId, ValidationError,
};
use idplane_store::tokens::{self, StoredToken};
use idplane_store::{Page, Paged, WriteTx};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use crate::directory::principals::{CreateUser, new_user, stage_principal};
use crate::directory::{Expiry, normalize_optional};
use crate::keyring::random_bytes;
use crate::registry::RegistryCache;
use crate::{App, AppError, Result};

/// Every token secret starts with this, so leaked tokens are easy to find
/// with secret scanners.
pub const TOKEN_PREFIX: &str = "idp_";
/// Tokens expire after this long unless asked otherwise.
const DEFAULT_LIFETIME: jiff::SignedDuration = jiff::SignedDuration::from_hours(24 * 90);
/// No token lives longer than this.
const MAX_LIFETIME: jiff::SignedDuration = jiff::SignedDuration::from_hours(24 * 366);
/// The bootstrap token's lifetime.
const BOOTSTRAP_LIFETIME: jiff::SignedDuration = jiff::SignedDuration::from_hours(24);

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read and change everything in its tenants.
    Admin,
    /// Read only.
    Read,
    /// Only ask for authorization decisions (the AuthZEN API): for policy
    /// enforcement points, which need nothing else.
    Pdp,
    /// Only provision users and groups over SCIM: for HR systems and
    /// identity providers that push, which need nothing else.
    Scim,
    /// Only complete the bootstrap, once.
    Bootstrap,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Read => "read",
            Scope::Pdp => "pdp",
            Scope::Scim => "scim",
            Scope::Bootstrap => "bootstrap",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Scope::Admin),
            "read" => Some(Scope::Read),
            "pdp" => Some(Scope::Pdp),
            "scim" => Some(Scope::Scim),
            "bootstrap" => Some(Scope::Bootstrap),
            _ => None,
        }
    }
}

/// Valid `pdp` tokens by secret hash, so decision requests (thousands a
/// second) skip the token lookup. Only decision-only tokens are cached: a
/// token revoked on another node can at worst ask for decisions here until
/// this node next reads the registry generation
/// ([`crate::registry::REGISTRY_POLL`]); on this node, not at all.
pub(crate) type PdpTokenCache = RegistryCache<String, (Caller, Option<Timestamp>)>;

/// Issues a token.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What the token is for, shown in listings and audit.
    pub name: String,
    /// `admin`, `read`, `pdp` (decisions only) or `scim` (provisioning only); `read` by default (least privilege).
    pub scope: Option<Scope>,
    /// Restrict the token to one tenant (its name). Only a token valid for
    /// every tenant may issue one valid for every tenant.
    pub tenant: Option<String>,
    /// Defaults to 90 days; at most 366 days.
    #[serde(flatten)]
    pub expiry: Expiry,
}

/// Completes the bootstrap: creates the first administrator.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBootstrap {
    pub username: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
}

/// A token as listed (never with its secret).
#[derive(Clone, Debug)]
pub struct Token {
    pub stored: StoredToken,
    pub scope: Scope,
}

/// A freshly issued token: the only time its secret is seen.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub token: Token,
    pub secret: String,
}

/// Who a valid bearer token speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub actor: Actor,
    pub scope: Scope,
    /// `None`: every tenant.
    pub tenant: Option<TenantId>,
}

impl Caller {
    /// The dev-mode root.
    pub fn root() -> Self {
        Self {
            actor: Actor::Root,
            scope: Scope::Admin,
            tenant: None,
        }
    }

    /// Whether the caller may act in `tenant` (writing if `write`).
    pub fn may(&self, tenant: TenantId, write: bool) -> bool {
        let tenant_ok = self.tenant.is_none_or(|t| t == tenant);
        let scope_ok = match self.scope {
            Scope::Admin => true,
            Scope::Read => !write,
            Scope::Pdp | Scope::Scim | Scope::Bootstrap => false,
        };
        tenant_ok && scope_ok
    }

    /// Whether the caller may ask for authorization decisions in `tenant`.
    pub fn may_decide(&self, tenant: TenantId) -> bool {
        self.tenant.is_none_or(|t| t == tenant) && matches!(self.scope, Scope::Admin | Scope::Pdp)
    }

    /// Whether the caller may use the SCIM API in `tenant` (writing if `write`).
    pub fn may_provision(&self, tenant: TenantId, write: bool) -> bool {
        self.tenant.is_none_or(|t| t == tenant)
            && match self.scope {
                Scope::Admin | Scope::Scim => true,
                Scope::Read => !write,
                Scope::Pdp | Scope::Bootstrap => false,
            }
    }

    /// Whether the caller may manage what spans tenants (tenants, tokens).
    pub fn is_global_admin(&self) -> bool {
        self.tenant.is_none() && self.scope == Scope::Admin
    }
}

/// Compares a presented secret with the configured root token in constant time.
pub fn root_token_matches(presented: &str, root: &str) -> bool {
    presented.as_bytes().ct_eq(root.as_bytes()).into()
}

impl App {
    /// Checks a bearer token. Failures are audited (in `audit_tenant`'s
    /// chain) with the source of the request, and all look the same to the
    /// caller.
    pub async fn authenticate(
        &self,
        secret: &str,
        audit_tenant: TenantId,
        request: &RequestMeta,
    ) -> Result<Caller> {
        let now = self.clock().now();
        let hash = hash_secret(secret);
        let epoch = self.registry_epoch(now).await;
        let cache = &self.inner.pdp_tokens;
        if let Some((caller, expires_at)) = cache.get(&hash, epoch)
            && idplane_core::time::in_force(expires_at, now)
        {
            return Ok(caller);
        }
        let found = if secret.starts_with(TOKEN_PREFIX) {
            let mut conn = self.store().read().await?;
            tokens::by_hash(&mut conn, &hash).await?
        } else {
            None
        };
        let reason = match &found {
            None => "unknown token",
            Some(t) if t.revoked_at.is_some() => "revoked token",
            Some(t) if !idplane_core::time::in_force(t.expires_at, now) => "expired token",
            Some(_) => "",
        };
        match found {
            Some(t) if reason.is_empty() => {
                let caller = Caller {
                    actor: Actor::Token {
                        token_id: t.id,
                        principal_id: t.principal_id,
                    },
                    scope: Scope::parse(&t.scope)
                        .ok_or_else(|| AppError::Internal(format!("token scope `{}`", t.scope)))?,
                    tenant: t.tenant_id,
                };
                if caller.scope == Scope::Pdp {
                    cache.insert(hash, epoch, (caller.clone(), t.expires_at));
                }
                Ok(caller)
            }
            found => {
                let ctx = Ctx {
                    tenant: audit_tenant,
                    actor: Actor::Anonymous,
                    now,
                    request: request.clone(),
                };
                let target = found.map(|t| format!("token:{}", t.id));
                self.record(
                    AuditEvent::new(&ctx, "auth.admin_token", target)
                        .failed()
                        .with_details(json!({"reason": reason})),
                )
                .await?;
                Err(AppError::Unauthenticated)
            }
        }
    }

    /// Issues a token. A tenant-bound caller can only issue tokens bound to
    /// its own tenant, and a read-only caller none at all.
    pub async fn issue_token(
        &self,
        ctx: &Ctx,
        caller: &Caller,
        cmd: CreateToken,
    ) -> Result<IssuedToken> {
        let scope = cmd.scope.unwrap_or(Scope::Read);
        if scope == Scope::Bootstrap {
            return Err(ValidationError::new("scope", "must be `admin` or `read`").into());
        }
        let tenant = match cmd.tenant.as_deref() {
            Some(name) => Some(self.tenant(name).await?.id),
            None => None,
        };
        if caller.tenant.is_some() && caller.tenant != tenant {
            return Err(AppError::Forbidden(
                "a tenant-bound token can only issue tokens for its own tenant".into(),
            ));
        }
        let expires_at = cmd
            .expiry
            .resolve(ctx.now)?
            .unwrap_or(ctx.now + DEFAULT_LIFETIME);
        if expires_at > ctx.now + MAX_LIFETIME {
            return Err(
                ValidationError::new("expires_at", "a token lives at most 366 days").into(),
            );
        }
        let name = normalize_optional("name", Some(&cmd.name))?
            .ok_or_else(|| ValidationError::new("name", "must not be empty"))?;
        let principal = match &caller.actor {
            Actor::Token { principal_id, .. } => *principal_id,
            _ => None,
        };
        self.store_token(ctx, name, scope, tenant, principal, expires_at)
            .await
    }

    async fn store_token(
        &self,
        ctx: &Ctx,
        name: String,
        scope: Scope,
        tenant: Option<TenantId>,
        principal: Option<PrincipalId>,
        expires_at: Timestamp,
    ) -> Result<IssuedToken> {
        let mut tx = self.store().write().await?;
        let (issued, event) =
            stage_token(&mut tx, ctx, name, scope, tenant, principal, expires_at).await?;
        tx.commit(event).await?;
        Ok(issued)
    }

    /// Tokens, without secrets.
    pub async fn tokens(&self, page: &Page) -> Result<Paged<Token>> {
        let mut conn = self.store().read().await?;
        let paged = tokens::list(&mut conn, page).await?;
        let items = paged
            .items
            .into_iter()
            .map(|stored| {
                let scope = Scope::parse(&stored.scope)
                    .ok_or_else(|| AppError::Internal("token scope".into()))?;
                Ok(Token { stored, scope })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Paged {
            items,
            more: paged.more,
        })
    }

    /// Revokes a token; it stops working at once.
    pub async fn revoke_token(&self, ctx: &Ctx, id: TokenId) -> Result<()> {
        let mut tx = self.store().write().await?;
        if tokens::by_id(&mut tx, id).await?.is_none() {
            return Err(AppError::NotFound(format!("token `{id}`")));
        }
        if !tokens::revoke(&mut tx, id, ctx.now).await? {
            return Err(AppError::Conflict(format!(
                "token `{id}` is already revoked"
            )));
        }
        tx.commit(AuditEvent::new(
            ctx,
            "token.revoke",
            Some(format!("token:{id}")),
        ))
        .await?;
        self.inner.pdp_tokens.clear();
        Ok(())
    }

    /// On the very first start, issues the one-time bootstrap token and
    /// returns its secret to be printed once. Later starts return `None`.
    pub async fn first_start_bootstrap(&self) -> Result<Option<String>> {
        let mut conn = self.store().read().await?;
        if tokens::any_with_scope(&mut conn, Scope::Bootstrap.as_str()).await? {
            return Ok(None);
        }
        drop(conn);
        let ctx = self.ctx(
            self.default_tenant_id().await?,
            Actor::System,
            RequestMeta::default(),
        );
        let expires_at = ctx.now + BOOTSTRAP_LIFETIME;
        let issued = self
            .store_token(
                &ctx,
                "bootstrap".into(),
                Scope::Bootstrap,
                None,
                None,
                expires_at,
            )
            .await?;
        Ok(Some(issued.secret))
    }

    /// Exchanges the bootstrap token for the first administrator: creates
    /// the user in the default tenant, issues an admin token bound to it,
    /// and revokes the bootstrap token, all in one transaction: it works
    /// exactly once, and a refused request does not spend it.
    pub async fn complete_bootstrap(
        &self,
        caller: &Caller,
        request: RequestMeta,
        cmd: CompleteBootstrap,
    ) -> Result<IssuedToken> {
        let forbidden = || AppError::Forbidden("only the bootstrap token can do this".into());
        let Actor::Token { token_id, .. } = caller.actor else {
            return Err(forbidden());
        };
        if caller.scope != Scope::Bootstrap {
            return Err(forbidden());
        }
        let ctx = self.ctx(
            self.default_tenant_id().await?,
            caller.actor.clone(),
            request,
        );
        let mut tx = self.store().write().await?;
        // Of two racing requests only one revokes; the other gets nothing.
        if !tokens::revoke(&mut tx, token_id, ctx.now).await? {
            return Err(AppError::Unauthenticated);
        }
        let revoked = AuditEvent::new(
            &ctx,
            "bootstrap.complete",
            Some(format!("token:{token_id}")),
        );
        let user = CreateUser {
            username: cmd.username,
            display_name: cmd.display_name,
            email: cmd.email,
            external_id: None,
            user_type: Some(UserType::Employee),
            start_date: None,
            end_date: None,
            sponsor: None,
            status: Some(Status::Active),
            attributes: None,
        };
        let user = new_user(&mut tx, &ctx, user).await?;
        let created = stage_principal(&mut tx, &ctx, &user, None).await?;
        let name = format!("administrator {}", user.name);
        let expires_at = ctx.now + DEFAULT_LIFETIME;
        let (issued, token_event) = stage_token(
            &mut tx,
            &ctx,
            name,
            Scope::Admin,
            None,
            Some(user.id),
            expires_at,
        )
        .await?;
        let events = [vec![revoked], created, vec![token_event]].concat();
        tx.commit_all(events).await?;
        Ok(issued)
    }
}

/// Stores a new token inside `tx`; returns it with its secret, and the audit
/// event to commit with it.
async fn stage_token(
    tx: &mut WriteTx,
    ctx: &Ctx,
    name: String,
    scope: Scope,
    tenant: Option<TenantId>,
    principal: Option<PrincipalId>,
    expires_at: Timestamp,
) -> Result<(IssuedToken, AuditEvent)> {
    let secret = format!("{TOKEN_PREFIX}{}", B64.encode(random_bytes::<32>()?));
    let stored = StoredToken {
        id: TokenId::generate(),
        tenant_id: tenant,
        name,
        scope: scope.as_str().to_owned(),
        principal_id: principal,
        created_by: ctx.actor.label(),
        created_at: ctx.now,
        expires_at: Some(expires_at),
        revoked_at: None,
    };
    tokens::insert(tx, &stored, &hash_secret(&secret)).await?;
    let event = AuditEvent::new(ctx, "token.create", Some(format!("token:{}", stored.id)))
        .with_details(json!({
            "name": stored.name, "scope": stored.scope, "expires_at": expires_at,
            "tenant": tenant.map(|t| t.to_string()),
        }));
    Ok((
        IssuedToken {
            token: Token { stored, scope },
            secret,
        },
        event,
    ))
}

/// The stored form of a secret: SHA-256, hex. Secrets are 256 random bits,
/// so a fast hash is enough; no password hashing is needed.
fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}
