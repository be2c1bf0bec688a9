//! Passkeys (WebAuthn): registration by a known user, sign-in without a
//! username (discoverable credentials), and their management.
//!
//! Every passkey requires user verification (PIN or biometric on the
//! authenticator), so a passkey alone is multi-factor and phishing-resistant:
//! the browser binds each response to the origin, the authenticator to the
//! relying party id, and webauthn-rs checks both. The user handle stored on
//! the authenticator is the principal's UUID, which is how a discoverable
//! sign-in finds the account.
//!
//! Ceremony state (the challenge) is kept server-side under a single-use
//! handle ([`App::start_ceremony`]), so a response can be used once only.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use idplane_core::audit::AuditEvent;
use idplane_core::directory::{Principal, PrincipalKind, normalize_text};
use idplane_core::{Ctx, PrincipalId, Timestamp, ValidationError};
use idplane_store::passkeys::{self, StoredPasskey};
use idplane_store::principals;
use jiff::SignedDuration;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Webauthn, WebauthnBuilder, WebauthnError,
};

use super::Amr;
use crate::{App, AppError, Result};

/// Ceremony kind of a registration.
pub const REGISTRATION: &str = "passkey-registration";
/// Ceremony kind of a sign-in.
pub const SIGN_IN: &str = "passkey-sign-in";
/// How long the browser has to answer a challenge.
const CEREMONY_TTL: SignedDuration = SignedDuration::from_mins(5);
/// Most passkeys one user may register.
pub const MAX_PASSKEYS: usize = 32;
/// The relying party name shown by authenticators.
const RP_NAME: &str = "idplane";

/// A passkey as its owner sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct PasskeyInfo {
    /// The credential id, base64url without padding.
    pub id: String,
    pub name: String,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>)]
    pub last_used_at: Option<Timestamp>,
    /// Whether the credential may be synced between devices (a synced
    /// passkey) rather than bound to one authenticator.
    pub backup_eligible: bool,
}

impl From<&StoredPasskey> for PasskeyInfo {
    fn from(p: &StoredPasskey) -> Self {
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
            created_at: p.created_at,
            last_used_at: p.last_used_at,
            backup_eligible: p.backup_eligible,
        }
    }
}

/// A successful passkey sign-in.
#[derive(Clone, Debug)]
pub struct PasskeySignIn {
    pub principal: Principal,
    /// The credential used, base64url without padding.
    pub credential_id: String,
    pub user_verified: bool,
    /// `hwk` (device-bound) or `swk` (synced), then `user` and `mfa` when
    /// the authenticator verified the user.
    pub amr: Vec<Amr>,
}

impl App {
    /// The WebAuthn relying party of this deployment: the issuer's host is
    /// the RP id, its origin the only accepted origin.
    fn webauthn(&self) -> Result<Webauthn> {
        let issuer = Url::parse(&self.settings().issuer)
            .map_err(|e| AppError::Internal(format!("issuer is not a URL: {e}")))?;
        let origin = Url::parse(&issuer.origin().ascii_serialization())
            .map_err(|e| AppError::Internal(format!("issuer has no origin: {e}")))?;
        let rp_id = origin
            .domain()
            .ok_or_else(|| AppError::Internal("the issuer's host must be a domain name".into()))?;
        WebauthnBuilder::new(rp_id, &origin)
            .and_then(|b| b.rp_name(RP_NAME).build())
            .map_err(|e| AppError::Internal(format!("WebAuthn configuration: {e}")))
    }

    /// Starts registering a passkey for `user` (an active user). Returns the
    /// ceremony handle and the `CreationChallengeResponse` to pass to
    /// `navigator.credentials.create()`. The passkey must be discoverable
    /// and verify the user; passkeys the user already has are excluded.
    pub async fn begin_passkey_registration(
        &self,
        ctx: &Ctx,
        user: PrincipalId,
    ) -> Result<(String, Value)> {
        let principal = self.passkey_owner(ctx, user).await?;
        let mut conn = self.store().read().await?;
        let existing = passkeys::for_principal(&mut conn, ctx.tenant, user).await?;
        drop(conn);
        if existing.len() >= MAX_PASSKEYS {
            return Err(ValidationError::new(
                "passkey",
                format!("a user may have at most {MAX_PASSKEYS} passkeys"),
            )
            .into());
        }
        let exclude = existing
            .iter()
            .map(|p| decode_passkey(p).map(|k| k.cred_id().clone()))
            .collect::<Result<Vec<_>>>()?;
        let display_name = principal.display_name.as_deref().unwrap_or(&principal.name);
        let (ccr, state) = self
            .webauthn()?
            .start_passkey_registration(
                principal.id.as_uuid(),
                &principal.name,
                display_name,
                Some(exclude),
            )
            .map_err(|e| AppError::Internal(format!("WebAuthn registration: {e}")))?;
        let mut options =
            serde_json::to_value(&ccr).map_err(|e| AppError::Internal(e.to_string()))?;
        require_resident_key(&mut options);
        let handle = self
            .start_ceremony(ctx, REGISTRATION, Some(user), &state, CEREMONY_TTL)
            .await?;
        Ok((handle, options))
    }

    /// Finishes a registration begun for `user` with the browser's
    /// `RegisterPublicKeyCredential` and stores the passkey as `name`.
    pub async fn finish_passkey_registration(
        &self,
        ctx: &Ctx,
        user: PrincipalId,
        handle: &str,
        name: &str,
        response: Value,
    ) -> Result<PasskeyInfo> {
        let name = passkey_name(name)?;
        let target = Some(user_target(user));
        let fail = |reason: &str, credential: Option<&str>| {
            AuditEvent::new(ctx, "passkey.register", target.clone())
                .with_details(json!({"name": name, "credential": credential, "reason": reason}))
                .failed()
        };
        let (owner, state) = match self
            .finish_ceremony::<PasskeyRegistration>(ctx, REGISTRATION, handle)
            .await
        {
            Ok(found) => found,
            Err(e) => {
                self.audit_failure(fail("unknown, expired or used ceremony handle", None))
                    .await?;
                return Err(e);
            }
        };
        if owner != Some(user) {
            self.audit_failure(fail("ceremony handle of another user", None))
                .await?;
            return Err(AppError::Unauthenticated);
        }
        self.passkey_owner(ctx, user).await?;
        let reg: RegisterPublicKeyCredential = match serde_json::from_value(response) {
            Ok(reg) => reg,
            Err(_) => {
                self.audit_failure(fail("malformed registration response", None))
                    .await?;
                return Err(ValidationError::new(
                    "credential",
                    "not a WebAuthn registration response",
                )
                .into());
            }
        };
        // `residentKey: "required"` makes a browser fail rather than create
        // a credential that cannot be discovered; one that reports doing so
        // anyway could never sign in, as sign-in names no user.
        if reg.extensions.cred_props.as_ref().and_then(|c| c.rk) == Some(false) {
            let reason = "the authenticator did not create a discoverable passkey";
            self.audit_failure(fail(reason, None)).await?;
            return Err(ValidationError::new("credential", reason).into());
        }
        let passkey = match self.webauthn()?.finish_passkey_registration(&reg, &state) {
            Ok(passkey) => passkey,
            Err(e) => {
                let reason = rejection(&e);
                self.audit_failure(fail(reason, None)).await?;
                return Err(ValidationError::new("credential", reason).into());
            }
        };
        let id = B64.encode(passkey.cred_id());
        let (counter, backup_eligible) = passkey_facts(&passkey)?;
        let stored = StoredPasskey {
            id: id.clone(),
            principal_id: user,
            tenant_id: ctx.tenant,
            name: name.clone(),
            passkey: serde_json::to_string(&passkey)
                .map_err(|e| AppError::Internal(e.to_string()))?,
            counter,
            backup_eligible,
            created_at: ctx.now,
            last_used_at: None,
        };
        let mut tx = self.store().write().await?;
        if passkeys::exists(&mut tx, &id).await? {
            drop(tx);
            self.audit_failure(fail("credential already registered", Some(&id)))
                .await?;
            return Err(
                ValidationError::new("credential", "this passkey is already registered").into(),
            );
        }
        if passkeys::count_for_principal(&mut tx, ctx.tenant, user).await?
            >= i64::try_from(MAX_PASSKEYS).unwrap_or(i64::MAX)
        {
            return Err(ValidationError::new(
                "passkey",
                format!("a user may have at most {MAX_PASSKEYS} passkeys"),
            )
            .into());
        }
        passkeys::insert(&mut tx, &stored).await?;
        let event = AuditEvent::new(ctx, "passkey.register", target.clone()).with_details(json!({
            "name": name,
            "credential": id,
            "backup_eligible": backup_eligible,
        }));
        tx.commit(event).await?;
        Ok(PasskeyInfo::from(&stored))
    }

    /// Starts a sign-in with a discoverable passkey: no username, user
    /// verification required. Returns the ceremony handle and the
    /// `RequestChallengeResponse` (its `publicKey`) to pass to
    /// `navigator.credentials.get()`.
    pub async fn begin_passkey_sign_in(&self, ctx: &Ctx) -> Result<(String, Value)> {
        let (rcr, state) = self
            .webauthn()?
            .start_discoverable_authentication()
            .map_err(|e| AppError::Internal(format!("WebAuthn authentication: {e}")))?;
        let mut options =
            serde_json::to_value(&rcr).map_err(|e| AppError::Internal(e.to_string()))?;
        // The page chooses: `mediation: "conditional"` for autofill on the
        // username field, or a modal prompt from a button.
        if let Some(o) = options.as_object_mut() {
            o.remove("mediation");
        }
        let handle = self
            .start_ceremony(ctx, SIGN_IN, None, &state, CEREMONY_TTL)
            .await?;
        Ok((handle, options))
    }

    /// Finishes a passkey sign-in with the browser's `PublicKeyCredential`.
    /// The account is the owner of the credential, which must match the
    /// user handle the authenticator returned. Refuses unknown credentials,
    /// inactive users, replays, foreign origins, missing user verification
    /// and signature-counter regressions (a possibly cloned authenticator).
    pub async fn finish_passkey_sign_in(
        &self,
        ctx: &Ctx,
        handle: &str,
        response: Value,
    ) -> Result<PasskeySignIn> {
        let fail = |target: Option<String>, reason: &str, credential: Option<&str>| {
            AuditEvent::new(ctx, "passkey.sign_in", target)
                .with_details(json!({"reason": reason, "credential": credential}))
                .failed()
        };
        let state = match self
            .finish_ceremony::<DiscoverableAuthentication>(ctx, SIGN_IN, handle)
            .await
        {
            Ok((_, state)) => state,
            Err(e) => {
                self.audit_failure(fail(None, "unknown, expired or used ceremony handle", None))
                    .await?;
                return Err(e);
            }
        };
        let Ok(credential) = serde_json::from_value::<PublicKeyCredential>(response) else {
            self.audit_failure(fail(None, "malformed assertion", None))
                .await?;
            return Err(ValidationError::new("credential", "not a WebAuthn assertion").into());
        };
        let webauthn = self.webauthn()?;
        let (user_handle, cred_id) =
            match webauthn.identify_discoverable_authentication(&credential) {
                Ok((uuid, cred_id)) => (uuid, B64.encode(cred_id)),
                Err(_) => {
                    let id = B64.encode(credential.get_credential_id());
                    self.audit_failure(fail(None, "no valid user handle", Some(&id)))
                        .await?;
                    return Err(AppError::Unauthenticated);
                }
            };

        let mut conn = self.store().read().await?;
        let Some(stored) = passkeys::by_id(&mut conn, ctx.tenant, &cred_id).await? else {
            drop(conn);
            self.audit_failure(fail(None, "unknown credential", Some(&cred_id)))
                .await?;
            return Err(AppError::Unauthenticated);
        };
        let target = Some(user_target(stored.principal_id));
        if stored.principal_id.as_uuid() != user_handle {
            drop(conn);
            self.audit_failure(fail(
                target,
                "user handle does not match the credential's owner",
                Some(&cred_id),
            ))
            .await?;
            return Err(AppError::Unauthenticated);
        }
        let principal = principals::by_id(&mut conn, ctx.tenant, stored.principal_id)
            .await?
            .filter(|p| p.kind == PrincipalKind::User && p.is_active_at(ctx.now));
        drop(conn);
        let Some(principal) = principal else {
            self.audit_failure(fail(target, "user is not active", Some(&cred_id)))
                .await?;
            return Err(AppError::Unauthenticated);
        };

        let mut passkey = decode_passkey(&stored)?;
        let result =
            match webauthn.finish_discoverable_authentication_v2(&credential, state, &passkey) {
                Ok(result) => result,
                Err(e) => {
                    self.audit_failure(fail(target, rejection(&e), Some(&cred_id)))
                        .await?;
                    return Err(AppError::Unauthenticated);
                }
            };
        // webauthn-rs already refuses a counter that does not advance; the
        // check is repeated here because it is the one that matters.
        let counter = i64::from(result.counter());
        if stored.counter > 0 && counter <= stored.counter {
            self.audit_failure(fail(target, COUNTER_REGRESSION, Some(&cred_id)))
                .await?;
            return Err(AppError::Unauthenticated);
        }
        if !result.user_verified() {
            self.audit_failure(fail(
                target,
                "user verification was not performed",
                Some(&cred_id),
            ))
            .await?;
            return Err(AppError::Unauthenticated);
        }
        passkey.update_credential(&result);
        let (counter, backup_eligible) = passkey_facts(&passkey)?;
        let serialised =
            serde_json::to_string(&passkey).map_err(|e| AppError::Internal(e.to_string()))?;

        let mut tx = self.store().write().await?;
        // Only if no other sign-in moved the counter (or removed the
        // passkey) meanwhile: two uses racing on one counter value are the
        // signature of a cloned authenticator.
        let updated = StoredPasskey {
            passkey: serialised,
            counter,
            backup_eligible,
            last_used_at: Some(ctx.now),
            ..stored.clone()
        };
        if !passkeys::record_use(&mut tx, &updated, stored.counter).await? {
            drop(tx);
            self.audit_failure(fail(
                target,
                "the credential changed during the sign-in",
                Some(&cred_id),
            ))
            .await?;
            return Err(AppError::Unauthenticated);
        }
        let event = AuditEvent::new(ctx, "passkey.sign_in", target).with_details(json!({
            "credential": cred_id,
            "user_verified": true,
            "phishing_resistant": true,
            "backup_eligible": backup_eligible,
        }));
        tx.commit(event).await?;

        let mut amr = vec![if backup_eligible { Amr::Swk } else { Amr::Hwk }];
        amr.extend([Amr::User, Amr::Mfa]);
        Ok(PasskeySignIn {
            principal,
            credential_id: cred_id,
            user_verified: true,
            amr,
        })
    }

    /// The passkeys of `user`, oldest first.
    pub async fn passkeys(&self, ctx: &Ctx, user: PrincipalId) -> Result<Vec<PasskeyInfo>> {
        self.principal(ctx, PrincipalKind::User, user).await?;
        let mut conn = self.store().read().await?;
        let stored = passkeys::for_principal(&mut conn, ctx.tenant, user).await?;
        Ok(stored.iter().map(PasskeyInfo::from).collect())
    }

    /// How many passkeys `user` has.
    pub async fn passkey_count(&self, ctx: &Ctx, user: PrincipalId) -> Result<usize> {
        let mut conn = self.store().read().await?;
        let n = passkeys::count_for_principal(&mut conn, ctx.tenant, user).await?;
        usize::try_from(n).map_err(|e| AppError::Internal(e.to_string()))
    }

    /// Renames one of `user`'s passkeys.
    pub async fn rename_passkey(
        &self,
        ctx: &Ctx,
        user: PrincipalId,
        id: &str,
        name: &str,
    ) -> Result<PasskeyInfo> {
        let name = passkey_name(name)?;
        let mut tx = self.store().write().await?;
        let current = passkeys::by_id(&mut tx, ctx.tenant, id)
            .await?
            .filter(|p| p.principal_id == user)
            .ok_or_else(|| not_found(id))?;
        passkeys::rename(&mut tx, ctx.tenant, user, id, &name).await?;
        let event = AuditEvent::new(ctx, "passkey.rename", Some(user_target(user)))
            .with_details(json!({"credential": id, "from": current.name, "name": name}));
        tx.commit(event).await?;
        Ok(PasskeyInfo {
            name,
            ..PasskeyInfo::from(&current)
        })
    }

    /// Removes one of `user`'s passkeys.
    pub async fn remove_passkey(&self, ctx: &Ctx, user: PrincipalId, id: &str) -> Result<()> {
        let mut tx = self.store().write().await?;
        let current = passkeys::by_id(&mut tx, ctx.tenant, id)
            .await?
            .filter(|p| p.principal_id == user)
            .ok_or_else(|| not_found(id))?;
        passkeys::delete(&mut tx, ctx.tenant, user, id).await?;
        let event = AuditEvent::new(ctx, "passkey.remove", Some(user_target(user)))
            .with_details(json!({"credential": id, "name": current.name}));
        tx.commit(event).await?;
        Ok(())
    }

    /// The user who may register a passkey: an active user of the tenant.
    async fn passkey_owner(&self, ctx: &Ctx, user: PrincipalId) -> Result<Principal> {
        let principal = self.principal(ctx, PrincipalKind::User, user).await?;
        if !principal.is_active_at(ctx.now) {
            return Err(AppError::Forbidden("the user is not active".into()));
        }
        Ok(principal)
    }

    async fn audit_failure(&self, event: AuditEvent) -> Result<()> {
        self.audit_writer().record(event).await.map(|_| ())
    }
}

/// The audit reason of a sign-in refused because the signature counter did
/// not advance.
pub const COUNTER_REGRESSION: &str = "counter regression: possible cloned authenticator";

fn user_target(user: PrincipalId) -> String {
    format!("user:{user}")
}

fn not_found(id: &str) -> AppError {
    AppError::NotFound(format!("passkey `{id}`"))
}

fn passkey_name(raw: &str) -> Result<String> {
    normalize_text("name", Some(raw))?
        .ok_or_else(|| ValidationError::new("name", "a passkey needs a name").into())
}

fn decode_passkey(p: &StoredPasskey) -> Result<Passkey> {
    serde_json::from_str(&p.passkey)
        .map_err(|e| AppError::Internal(format!("stored passkey `{}`: {e}", p.id)))
}

/// The signature counter and backup eligibility of a passkey, as stored in
/// its serialised form (webauthn-rs keeps them private).
fn passkey_facts(passkey: &Passkey) -> Result<(i64, bool)> {
    let value = serde_json::to_value(passkey).map_err(|e| AppError::Internal(e.to_string()))?;
    let cred = &value["cred"];
    let counter = cred["counter"]
        .as_i64()
        .ok_or_else(|| AppError::Internal("serialised passkey has no counter".into()))?;
    let backup_eligible = cred["backup_eligible"]
        .as_bool()
        .ok_or_else(|| AppError::Internal("serialised passkey has no backup flag".into()))?;
    Ok((counter, backup_eligible))
}

/// Asks for a discoverable credential (resident key), so that sign-in
/// needs no username. webauthn-rs 0.6 leaves residence to the
/// authenticator; the creation options are the only place to ask for it,
/// and no server-side check depends on it.
fn require_resident_key(options: &mut Value) {
    if let Some(selection) = options
        .pointer_mut("/publicKey/authenticatorSelection")
        .and_then(Value::as_object_mut)
    {
        selection.insert("residentKey".into(), json!("required"));
        selection.insert("requireResidentKey".into(), json!(true));
    }
}

/// Why webauthn-rs refused a response, in words safe to show and audit.
fn rejection(e: &WebauthnError) -> &'static str {
    match e {
        WebauthnError::InvalidRPOrigin | WebauthnError::CredentialCrossOrigin => {
            "the response was made for another origin"
        }
        WebauthnError::InvalidRPIDHash => "the response was made for another relying party",
        WebauthnError::MismatchedChallenge => "the response answers another challenge",
        WebauthnError::InvalidClientDataType => "the response is for another ceremony type",
        WebauthnError::UserNotVerified => "user verification was not performed",
        WebauthnError::UserNotPresent => "user presence was not confirmed",
        WebauthnError::CredentialPossibleCompromise => COUNTER_REGRESSION,
        WebauthnError::CredentialNotFound => "unknown credential",
        WebauthnError::CredentialExcludedFromRequest | WebauthnError::CredentialAlreadyExists => {
            "this passkey is already registered"
        }
        WebauthnError::CredentialInsecureCryptography
        | WebauthnError::CredentialAlteredAlgFromRequest
        | WebauthnError::COSEKeyInvalidAlgorithm => "the passkey uses an unaccepted algorithm",
        WebauthnError::AuthenticationFailure | WebauthnError::SignatureInvalid => {
            "the signature does not verify"
        }
        _ => "the passkey response could not be verified",
    }
}
