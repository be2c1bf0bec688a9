//! Multi-step ceremonies: state kept server-side under a random handle that
//! the client carries (in a cookie or a form), finished at most once.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use idplane_core::{Ctx, PrincipalId};
use idplane_store::ceremonies::{self, Ceremony};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::keyring::random_bytes;
use crate::{App, AppError, Result};

impl App {
    /// Stores `state` for a ceremony of `kind` lasting `ttl`; returns the
    /// handle to give the client.
    pub async fn start_ceremony(
        &self,
        ctx: &Ctx,
        kind: &str,
        principal: Option<PrincipalId>,
        state: &impl Serialize,
        ttl: jiff::SignedDuration,
    ) -> Result<String> {
        let handle = B64.encode(random_bytes::<32>()?);
        let ceremony = Ceremony {
            tenant_id: ctx.tenant,
            kind: kind.to_owned(),
            principal_id: principal,
            state: serde_json::to_string(state).map_err(|e| AppError::Internal(e.to_string()))?,
            expires_at: ctx.now + ttl,
        };
        ceremonies::put(self.store(), &handle_hash(&handle), &ceremony).await?;
        Ok(handle)
    }

    /// Takes the state of a ceremony of `kind` in the context's tenant. A
    /// handle works once; an unknown, expired, foreign or mismatched handle
    /// is [`AppError::Unauthenticated`].
    pub async fn finish_ceremony<T: DeserializeOwned>(
        &self,
        ctx: &Ctx,
        kind: &str,
        handle: &str,
    ) -> Result<(Option<PrincipalId>, T)> {
        let ceremony = ceremonies::take(self.store(), &handle_hash(handle), ctx.now)
            .await?
            .filter(|c| c.kind == kind && c.tenant_id == ctx.tenant)
            .ok_or(AppError::Unauthenticated)?;
        let state =
            serde_json::from_str(&ceremony.state).map_err(|e| AppError::Internal(e.to_string()))?;
        Ok((ceremony.principal_id, state))
    }
}

fn handle_hash(handle: &str) -> String {
    hex::encode(Sha256::digest(handle.as_bytes()))
}
