//! Token exchange (RFC 8693): a confidential client trades an access token
//! we issued (the subject token) for a new access token, typically narrower
//! (fewer scopes, another audience) and, with an actor token, naming who
//! acts for the subject (the `act` claim, RFC 8693 §4.1).
//!
//! The rules, all enforced here:
//!
//! - Only our own, live, bearer access tokens are accepted as subject or
//!   actor tokens; a DPoP-bound one cannot be exchanged by someone who need
//!   not prove its key. The actor token must have been issued to the client
//!   asking: a client speaks for itself, not for another.
//! - Scopes only narrow: each requested scope must be in the subject token
//!   and registered for the client; without `scope`, the subject token's
//!   scopes that the client is registered for.
//! - `resource` and `audience` name registered resource servers (audience
//!   values are treated as resource indicators).
//! - The new token never outlives the subject token (nor the actor token).
//! - No refresh token is issued: the exchange is redone when needed.
//! - A delegation is never laundered into a direct token: the subject
//!   token's `act` is kept, nested below a new actor; two chains (subject's
//!   and actor's) cannot be merged and are refused.
//!
//! Errors follow RFC 8693 §2.2.2: invalid or unacceptable subject and actor
//! tokens are `invalid_request`; unacceptable targets `invalid_target`;
//! wider scopes `invalid_scope`.

use idplane_core::audit::AuditEvent;
use idplane_core::directory::Principal;
use idplane_core::{Ctx, PrincipalId, Timestamp};
use idplane_store::principals;
use serde_json::{Map, Value, json};

use super::authorize::Params;
use super::clients::{Client, ClientType, GrantType};
use super::error::{OAuthError, OAuthResult};
use super::grant::{AuthFacts, Grant, parse_scope};
use super::token::{TokenResponse, unauthorized_client};
use super::tokens::ValidToken;
use crate::App;

/// RFC 8693 §3: the token type of access tokens.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// The deepest `act` chain accepted (each exchange with an actor adds one).
pub const MAX_DELEGATION_DEPTH: usize = 5;

/// Who the exchanged token is about.
enum Subject {
    /// A person (or other principal).
    Principal(Box<Principal>),
    /// A client acting for itself (a client credentials token).
    Client(String),
}

impl Subject {
    fn label(&self) -> String {
        match self {
            Self::Principal(p) => format!("user:{}", p.id),
            Self::Client(client_id) => format!("client:{client_id}"),
        }
    }
}

impl App {
    /// RFC 8693 §2.1–2.2: exchanges `subject_token` (with an optional
    /// `actor_token`) for a new access token issued to `client`. Audited
    /// as `oauth.token_exchange`, naming the subject, the actor and the
    /// client.
    pub async fn exchange_token(
        &self,
        ctx: &Ctx,
        client: &Client,
        params: &Params,
        dpop_jkt: Option<&str>,
    ) -> OAuthResult<TokenResponse> {
        if !client.allows(GrantType::TokenExchange)
            || client.client_type != ClientType::Confidential
        {
            return Err(unauthorized_client());
        }
        params.check()?;
        let subject_token = params
            .get("subject_token")
            .ok_or_else(|| OAuthError::invalid_request("subject_token is required"))?;
        match params.get("subject_token_type") {
            Some(ACCESS_TOKEN_TYPE) => {}
            None => {
                return Err(OAuthError::invalid_request(
                    "subject_token_type is required",
                ));
            }
            Some(other) => {
                return Err(OAuthError::invalid_request(format!(
                    "subject_token_type `{other}` is not supported; use {ACCESS_TOKEN_TYPE}"
                )));
            }
        }
        if let Some(requested) = params.get("requested_token_type")
            && requested != ACCESS_TOKEN_TYPE
        {
            return Err(OAuthError::invalid_request(format!(
                "only {ACCESS_TOKEN_TYPE} can be issued"
            )));
        }
        let subject_token = self
            .exchangeable(ctx, subject_token, "subject_token")
            .await?;
        let actor_token = match (params.get("actor_token"), params.get("actor_token_type")) {
            (None, None) => None,
            (Some(token), Some(ACCESS_TOKEN_TYPE)) => {
                Some(self.exchangeable(ctx, token, "actor_token").await?)
            }
            (Some(_), Some(other)) => {
                return Err(OAuthError::invalid_request(format!(
                    "actor_token_type `{other}` is not supported; use {ACCESS_TOKEN_TYPE}"
                )));
            }
            (Some(_), None) => {
                return Err(OAuthError::invalid_request(
                    "actor_token_type is required with actor_token",
                ));
            }
            (None, Some(_)) => {
                return Err(OAuthError::invalid_request(
                    "actor_token_type was sent without actor_token",
                ));
            }
        };
        if let Some(actor) = &actor_token
            && actor.client_id() != Some(client.client_id.as_str())
        {
            return Err(OAuthError::invalid_request(
                "the actor_token must be one issued to the client making the exchange",
            ));
        }
        let scopes = narrowed_scopes(client, &subject_token, params.get("scope"))?;
        let mut targets = params.resources().to_vec();
        targets.extend(params.get("audience").map(str::to_owned));
        let resources = self.check_resources(ctx, &targets, &scopes).await?;
        let actor = delegation(&subject_token, actor_token.as_ref())?;
        let subject = self.exchanged_subject(ctx, &subject_token).await?;

        let grant = Grant {
            // A client's own token stays about that client (`sub`).
            client_id: match &subject {
                Subject::Client(client_id) => client_id.clone(),
                Subject::Principal(_) => client.client_id.clone(),
            },
            subject: match &subject {
                Subject::Principal(p) => Some(p.id),
                Subject::Client(_) => None,
            },
            session_id: subject_token.claim_str("sid").map(str::to_owned),
            scopes,
            resources,
            auth: auth_facts(&subject_token),
            nonce: None,
            dpop_jkt: dpop_jkt.map(str::to_owned),
            actor,
        };
        // Never outlive the tokens the new one derives from.
        let until = actor_token.as_ref().map_or(subject_token.expires_at, |a| {
            a.expires_at.min(subject_token.expires_at)
        });
        let remaining_secs = (until.as_millisecond() - ctx.now.as_millisecond()) / 1000;
        if remaining_secs < 1 {
            return Err(OAuthError::invalid_request(
                "the subject_token expires too soon to be exchanged",
            ));
        }
        let mut issuing = client.clone();
        issuing.access_token_lifetime_secs = client.access_token_lifetime_secs.min(remaining_secs);
        let person = match &subject {
            Subject::Principal(p) => Some(p.as_ref()),
            Subject::Client(_) => None,
        };
        let access = self
            .mint_access_token(ctx, &issuing, &grant, person, None)
            .await?;
        let mut response = TokenResponse::new(&access, &grant, ctx.now);
        response.issued_token_type = Some(ACCESS_TOKEN_TYPE);
        let event = AuditEvent::new(
            ctx,
            "oauth.token_exchange",
            Some(format!("client:{}", client.client_id)),
        )
        .with_details(json!({
            "subject": subject.label(),
            "actor": grant.actor,
            "jti": access.jti,
            "scope": grant.scope(),
            "audience": grant.resources,
            "expires_at": access.expires_at,
            "subject_jti": subject_token.jti,
            "actor_jti": actor_token.as_ref().map(|a| a.jti.clone()),
            "dpop_bound": grant.dpop_jkt.is_some(),
        }));
        self.record_issued(&access, event).await?;
        Ok(response)
    }

    /// A subject or actor token: live, ours, and not sender-constrained.
    async fn exchangeable(&self, ctx: &Ctx, token: &str, name: &str) -> OAuthResult<ValidToken> {
        let valid = self
            .validate_access_token(ctx.tenant, token)
            .await?
            .ok_or_else(|| {
                OAuthError::invalid_request(format!(
                    "{name} is not an active access token issued here"
                ))
            })?;
        if valid.jkt().is_some() {
            return Err(OAuthError::invalid_request(format!(
                "{name} is bound to a DPoP key and cannot be exchanged"
            )));
        }
        Ok(valid)
    }

    /// Who the subject token is about: the client itself (client
    /// credentials: `sub` is its `client_id`), or a principal that may
    /// still act.
    async fn exchanged_subject(&self, ctx: &Ctx, token: &ValidToken) -> OAuthResult<Subject> {
        let sub = token
            .claim_str("sub")
            .ok_or_else(|| OAuthError::invalid_request("the subject_token names no subject"))?;
        if token.client_id() == Some(sub) {
            return Ok(Subject::Client(sub.to_owned()));
        }
        let id: PrincipalId = sub
            .parse()
            .map_err(|_| OAuthError::invalid_request("the subject_token names no subject"))?;
        let mut conn = self.store().read().await?;
        let person = principals::by_id(&mut conn, ctx.tenant, id)
            .await?
            .filter(|p| p.is_active_at(ctx.now))
            .ok_or_else(|| OAuthError::invalid_grant("the subject may no longer sign in"))?;
        Ok(Subject::Principal(Box::new(person)))
    }
}

/// The scopes of the new token: requested ones only if the subject token
/// holds them and the client is registered for them.
fn narrowed_scopes(
    client: &Client,
    subject: &ValidToken,
    requested: Option<&str>,
) -> OAuthResult<Vec<String>> {
    let held: Vec<&str> = subject.scopes().filter(|s| !s.is_empty()).collect();
    let requested = parse_scope(requested);
    if requested.is_empty() {
        return Ok(held
            .into_iter()
            .filter(|s| client.scopes.iter().any(|c| c == s))
            .map(str::to_owned)
            .collect());
    }
    for scope in &requested {
        if !held.contains(&scope.as_str()) {
            return Err(OAuthError::invalid_scope(format!(
                "scope `{scope}` is not in the subject_token: an exchange only narrows"
            )));
        }
        if !client.scopes.contains(scope) {
            return Err(OAuthError::invalid_scope(format!(
                "the client may not request scope `{scope}`"
            )));
        }
    }
    Ok(requested)
}

/// The `act` claim of the new token: the actor (its `sub` and the client
/// its token was issued to) with the prior delegation chain nested below
/// it; without an actor, the subject token's own chain.
fn delegation(subject: &ValidToken, actor: Option<&ValidToken>) -> OAuthResult<Option<Value>> {
    let Some(actor) = actor else {
        return Ok(subject.claims.get("act").cloned());
    };
    let sub = actor
        .claim_str("sub")
        .ok_or_else(|| OAuthError::invalid_request("the actor_token names no subject"))?;
    let mut act = Map::new();
    act.insert("sub".into(), sub.into());
    if let Some(client_id) = actor.client_id() {
        act.insert("client_id".into(), client_id.into());
    }
    let prior = match (actor.claims.get("act"), subject.claims.get("act")) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "the subject_token and the actor_token both carry a delegation (act): \
                 the chains cannot be merged",
            ));
        }
        (mine, theirs) => mine.or(theirs),
    };
    if let Some(prior) = prior {
        if depth(prior) >= MAX_DELEGATION_DEPTH {
            return Err(OAuthError::invalid_request(format!(
                "delegation chains are limited to {MAX_DELEGATION_DEPTH} actors"
            )));
        }
        act.insert("act".into(), prior.clone());
    }
    Ok(Some(Value::Object(act)))
}

/// How many actors an `act` chain names.
fn depth(act: &Value) -> usize {
    let mut depth = 0;
    let mut current = Some(act);
    while let Some(Value::Object(level)) = current {
        depth += 1;
        current = level.get("act");
    }
    depth
}

/// How the subject authenticated, carried over from the subject token.
fn auth_facts(token: &ValidToken) -> Option<AuthFacts> {
    let auth_time = token
        .claims
        .get("auth_time")
        .and_then(Value::as_i64)
        .and_then(|t| Timestamp::from_second(t).ok())?;
    let amr = token
        .claims
        .get("amr")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Some(AuthFacts {
        auth_time,
        acr: token.claim_str("acr").unwrap_or_default().to_owned(),
        amr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(claims: Value) -> ValidToken {
        let Value::Object(claims) = claims else {
            panic!("claims are an object")
        };
        ValidToken {
            claims,
            jti: "j".into(),
            expires_at: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn the_actor_becomes_act_with_the_prior_chain_nested() {
        let subject = token(json!({"sub": "alice", "act": {"sub": "svc77"}}));
        let actor = token(json!({"sub": "svc16", "client_id": "svc16"}));
        assert_eq!(
            delegation(&subject, Some(&actor)).unwrap(),
            Some(json!({"sub": "svc16", "client_id": "svc16", "act": {"sub": "svc77"}}))
        );
        let delegated_actor = token(json!({"sub": "svc16", "client_id": "c", "act": {"sub": "x"}}));
        let plain = token(json!({"sub": "alice"}));
        assert_eq!(
            delegation(&plain, Some(&delegated_actor)).unwrap(),
            Some(json!({"sub": "svc16", "client_id": "c", "act": {"sub": "x"}}))
        );
        // Without an actor the subject's chain is kept; two chains are refused.
        assert_eq!(
            delegation(&subject, None).unwrap(),
            Some(json!({"sub": "svc77"}))
        );
        assert_eq!(delegation(&plain, None).unwrap(), None);
        assert!(delegation(&subject, Some(&delegated_actor)).is_err());
    }

    #[test]
    fn delegation_chains_are_bounded() {
        let mut chain = json!({"sub": "a0"});
        for i in 1..MAX_DELEGATION_DEPTH {
            chain = json!({"sub": format!("a{i}"), "act": chain});
        }
        assert_eq!(depth(&chain), MAX_DELEGATION_DEPTH);
        let subject = token(json!({"sub": "alice", "act": chain}));
        let actor = token(json!({"sub": "svc", "client_id": "svc"}));
        assert!(delegation(&subject, Some(&actor)).is_err());
    }
}
