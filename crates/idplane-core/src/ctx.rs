//! The context every use case receives first: who acts, in which tenant, when.

use serde::{Deserialize, Serialize};

use crate::{PrincipalId, TenantId, Timestamp, TokenId};

/// Who performs an action. Recorded in every audit event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    /// The dev-mode root token.
    Root,
    /// An administrator token, possibly bound to a principal.
    Token {
        token_id: TokenId,
        principal_id: Option<PrincipalId>,
    },
    /// A person acting for themselves through a session (self-service).
    User { principal_id: PrincipalId },
    /// An OAuth client that authenticated at a protocol endpoint.
    Client { client_id: String },
    /// The server itself (jobs, bootstrap, checkpoints).
    System,
    /// A caller that has not authenticated (failed authentication).
    Anonymous,
}

impl Actor {
    /// A compact, stable label: `root`, `token:<id>`, `user:<id>`,
    /// `client:<id>`, `system`, `anonymous`.
    pub fn label(&self) -> String {
        match self {
            Actor::Root => "root".to_owned(),
            Actor::Token { token_id, .. } => format!("token:{token_id}"),
            Actor::User { principal_id } => format!("user:{principal_id}"),
            Actor::Client { client_id } => format!("client:{client_id}"),
            Actor::System => "system".to_owned(),
            Actor::Anonymous => "anonymous".to_owned(),
        }
    }

    /// The principal on whose behalf the actor works, if any.
    pub fn on_behalf_of(&self) -> Option<String> {
        match self {
            Actor::Token {
                principal_id: Some(p),
                ..
            } => Some(format!("principal:{p}")),
            _ => None,
        }
    }
}

/// Facts about the request that caused an action.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestMeta {
    pub request_id: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The context of one use case call: tenant, actor, the time, the request.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub tenant: TenantId,
    pub actor: Actor,
    pub now: Timestamp,
    pub request: RequestMeta,
}
