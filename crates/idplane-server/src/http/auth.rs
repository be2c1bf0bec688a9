//! Authentication and authorisation of admin API callers.
//!
//! A handler that takes [`Authed`] runs only for a caller whose bearer token
//! is valid and allowed in the addressed tenant: reads for `read` tokens,
//! everything for `admin` tokens. [`GlobalAuthed`] additionally requires a
//! token that is not bound to one tenant.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use idplane_app::tokens::{Caller, root_token_matches};
use idplane_core::{Ctx, TenantId};

use super::AppState;
use super::extract::{Meta, TenantName};
use super::problem::Problem;

/// An authenticated caller acting in the addressed tenant.
#[derive(Debug)]
pub struct Authed {
    pub caller: Caller,
    pub ctx: Ctx,
}

/// An authenticated caller not bound to a tenant (acting in the default
/// tenant's audit chain).
#[derive(Debug)]
pub struct GlobalAuthed {
    pub caller: Caller,
    pub ctx: Ctx,
}

/// A policy enforcement point asking for decisions: a `pdp` or `admin`
/// token, acting in its own tenant (the default one for an unbound token).
#[derive(Debug)]
pub struct PdpCaller {
    pub ctx: Ctx,
}

/// A caller with any valid token, including the bootstrap token.
#[derive(Debug)]
pub struct AnyCaller {
    pub caller: Caller,
    pub meta: idplane_core::RequestMeta,
}

fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

async fn caller(
    parts: &Parts,
    state: &AppState,
    tenant: TenantId,
    meta: &Meta,
) -> Result<Caller, Problem> {
    let presented = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .unwrap_or_default();
    let caller = match &state.root_token {
        Some(root) if root_token_matches(presented, root) => Caller::root(),
        _ => state.app.authenticate(presented, tenant, &meta.0).await?,
    };
    // Every use of a token is attributable in the request's log lines.
    tracing::Span::current().record("actor", caller.actor.label());
    Ok(caller)
}

impl<S> FromRequestParts<S> for Authed
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let state = AppState::from_ref(state);
        let meta = Meta::from_request_parts(parts, &state).await?;
        let TenantName(name) = TenantName::from_request_parts(parts, &state).await?;
        // Unknown tenants and bad tokens look alike to an anonymous caller,
        // and to a tenant-bound caller an unknown tenant looks like any
        // other tenant it may not enter.
        let tenant = match state.tenant_id(&name).await {
            Ok(id) => id,
            Err(_) => {
                let default = state.tenant_id(idplane_app::DEFAULT_TENANT).await?;
                let caller = caller(parts, &state, default, &meta).await?;
                if caller.tenant.is_some() {
                    return Err(forbidden(&caller));
                }
                return Err(Problem::new(
                    StatusCode::NOT_FOUND,
                    "not-found",
                    format!("tenant `{name}` not found"),
                ));
            }
        };
        let caller = caller(parts, &state, tenant, &meta).await?;
        if !caller.may(tenant, is_write(&parts.method)) {
            return Err(forbidden(&caller));
        }
        let ctx = state.app.ctx(tenant, caller.actor.clone(), meta.0);
        Ok(Authed { caller, ctx })
    }
}

impl<S> FromRequestParts<S> for GlobalAuthed
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let AnyCaller { caller, meta } = AnyCaller::from_request_parts(parts, state).await?;
        let state = AppState::from_ref(state);
        let tenant = state.tenant_id(idplane_app::DEFAULT_TENANT).await?;
        let write = is_write(&parts.method);
        if caller.tenant.is_some() || !caller.may(tenant, write) {
            return Err(forbidden(&caller));
        }
        let ctx = state.app.ctx(tenant, caller.actor.clone(), meta);
        Ok(GlobalAuthed { caller, ctx })
    }
}

impl<S> FromRequestParts<S> for AnyCaller
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let state = AppState::from_ref(state);
        let meta = Meta::from_request_parts(parts, &state).await?;
        let tenant = state.tenant_id(idplane_app::DEFAULT_TENANT).await?;
        let caller = caller(parts, &state, tenant, &meta).await?;
        Ok(AnyCaller {
            caller,
            meta: meta.0,
        })
    }
}

impl<S> FromRequestParts<S> for PdpCaller
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let AnyCaller { caller, meta } = AnyCaller::from_request_parts(parts, state).await?;
        let state = AppState::from_ref(state);
        let tenant = match caller.tenant {
            Some(bound) => bound,
            None => state.tenant_id(idplane_app::DEFAULT_TENANT).await?,
        };
        if !caller.may_decide(tenant) {
            return Err(forbidden(&caller));
        }
        let ctx = state.app.ctx(tenant, caller.actor.clone(), meta);
        Ok(PdpCaller { ctx })
    }
}

fn forbidden(caller: &Caller) -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("this token ({:?} scope) may not do this here", caller.scope).to_lowercase(),
    )
}
