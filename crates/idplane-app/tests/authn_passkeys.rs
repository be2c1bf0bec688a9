//! Passkey ceremonies end to end, in process: the server side is the App,
//! the browser and authenticator are webauthn-authenticator-rs's client
//! checks over its `SoftPasskey`.
//!
//! `SoftPasskey` cannot store resident keys and never returns a user handle.
//! [`Device`] adds what a discoverable authenticator does: it remembers the
//! user handle given at registration, offers its credential when the server
//! names none, and returns the handle with the assertion. The user handle is
//! not covered by the signature, so this changes nothing the server checks.
//! `SoftPasskey` has one signature counter for all its credentials and
//! cannot be cloned, so a cloned authenticator is simulated by raising the
//! stored counter above the device's (the server's view of a clone that was
//! used more often).
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly; clippy's in-test allowance covers only #[test] bodies"
)]

mod support;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use idplane_app::authn::Amr;
use idplane_app::authn::passkeys::COUNTER_REGRESSION;
use idplane_app::directory::principals::{CreateUser, UpdateUser};
use idplane_app::{AppError, Field};
use idplane_core::audit::{AuditEvent, AuditRecord, Outcome};
use idplane_core::directory::{Principal, Status};
use idplane_core::{Actor, Ctx, RequestMeta};
use idplane_store::audit::AuditFilter;
use idplane_store::passkeys;
use jiff::SignedDuration;
use serde_json::{Value, json};
use support::Harness;
use webauthn_authenticator_rs::prelude::{
    CreationChallengeResponse, RequestChallengeResponse, Url, WebauthnCError,
};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::{AuthenticatorBackend, WebauthnAuthenticator};

const ORIGIN: &str = "http://localhost:8080";
const EVIL: &str = "http://evil.example";

impl Harness {
    /// The relying party's origin is the issuer.
    async fn at_origin() -> Self {
        Self::start_with(idplane_app::AppSettings {
            issuer: ORIGIN.into(),
            ..Default::default()
        })
        .await
    }

    /// A signed-out browser's context, as the ceremonies run in.
    async fn visitor(&self) -> Ctx {
        self.ctx_as(Actor::Anonymous, RequestMeta::default()).await
    }

    async fn user(&self, name: &str) -> Principal {
        let ctx = self.visitor().await;
        self.app
            .create_user(
                &ctx,
                CreateUser {
                    username: name.into(),
                    display_name: Some(format!("{name} display")),
                    email: None,
                    external_id: None,
                    user_type: None,
                    start_date: None,
                    end_date: None,
                    sponsor: None,
                    status: None,
                    attributes: None,
                },
            )
            .await
            .unwrap()
    }

    /// Registers a passkey on `device` for `user`; returns its credential id.
    async fn register(&self, device: &mut Device, user: &Principal, name: &str) -> String {
        let ctx = self.visitor().await;
        let (handle, options) = self
            .app
            .begin_passkey_registration(&ctx, user.id)
            .await
            .unwrap();
        let response = device.register(&options, ORIGIN).unwrap();
        let info = self
            .app
            .finish_passkey_registration(&ctx, user.id, &handle, name, response)
            .await
            .unwrap();
        assert_eq!(info.name, name);
        info.id
    }

    /// Begins a sign-in and has `device` answer it with `credential`.
    async fn assertion(&self, device: &mut Device, credential: &str) -> (String, Value) {
        let ctx = self.visitor().await;
        let (handle, options) = self.app.begin_passkey_sign_in(&ctx).await.unwrap();
        let response = device.sign_in(&options, credential, ORIGIN).unwrap();
        (handle, response)
    }

    async fn events(&self, action: &str) -> Vec<AuditRecord> {
        let ctx = self.visitor().await;
        self.app.audit_writer().flush().await;
        self.app
            .audit_events(
                &ctx,
                &AuditFilter {
                    action: Some(action.into()),
                    limit: 1000,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
    }

    async fn last_event(&self, action: &str) -> AuditRecord {
        self.events(action).await.pop().unwrap()
    }
}

/// A discoverable authenticator behind a browser: `SoftPasskey` plus the
/// user handles it would keep with resident keys.
struct Device {
    soft: SoftPasskey,
    /// (credential id, user handle).
    resident: Vec<(String, Vec<u8>)>,
}

impl Device {
    fn new() -> Self {
        // `true`: the soft token claims user verification (it has no PIN).
        Self {
            soft: SoftPasskey::new(true),
            resident: Vec::new(),
        }
    }

    /// `navigator.credentials.create()` at `origin`, through the browser's
    /// checks.
    fn register(&mut self, options: &Value, origin: &str) -> Result<Value, WebauthnCError> {
        let (ccr, user_handle) = creation_options(options);
        let response = self
            .soft
            .do_registration(Url::parse(origin).unwrap(), ccr)?;
        self.resident.push((response.id.clone(), user_handle));
        Ok(serde_json::to_value(&response).unwrap())
    }

    /// A registration signed by the authenticator for `origin` without the
    /// browser's origin checks: what a phishing relay would submit.
    fn register_unchecked(&mut self, options: &Value, origin: &str) -> Value {
        let (ccr, _) = creation_options(options);
        let response = AuthenticatorBackend::perform_register(
            &mut self.soft,
            Url::parse(origin).unwrap(),
            ccr.public_key,
            60_000,
        )
        .unwrap();
        serde_json::to_value(&response).unwrap()
    }

    /// `navigator.credentials.get()` at `origin` where the user picks
    /// `credential` from the discoverable credentials offered.
    fn sign_in(
        &mut self,
        options: &Value,
        credential: &str,
        origin: &str,
    ) -> Result<Value, WebauthnCError> {
        let rcr = self.request_options(options, credential);
        let response = self
            .soft
            .do_authentication(Url::parse(origin).unwrap(), rcr)?;
        Ok(self.with_user_handle(serde_json::to_value(&response).unwrap(), credential))
    }

    /// An assertion signed for `origin` (and whatever RP id `options`
    /// names) without the browser's checks: what a phishing relay submits.
    fn sign_in_unchecked(&mut self, options: &Value, credential: &str, origin: &str) -> Value {
        let rcr = self.request_options(options, credential);
        let response = AuthenticatorBackend::perform_auth(
            &mut self.soft,
            Url::parse(origin).unwrap(),
            rcr.public_key,
            60_000,
        )
        .unwrap();
        self.with_user_handle(serde_json::to_value(&response).unwrap(), credential)
    }

    fn request_options(&self, options: &Value, credential: &str) -> RequestChallengeResponse {
        let public_key = &options["publicKey"];
        assert_eq!(public_key["userVerification"], "required");
        assert_eq!(
            public_key["allowCredentials"],
            json!([]),
            "a discoverable sign-in names no credential"
        );
        assert!(
            self.resident.iter().any(|(id, _)| id == credential),
            "the device holds the credential"
        );
        let mut options = options.clone();
        options["publicKey"]["allowCredentials"] =
            json!([{"type": "public-key", "id": credential}]);
        serde_json::from_value(options).unwrap()
    }

    fn with_user_handle(&self, mut response: Value, credential: &str) -> Value {
        let (_, handle) = self
            .resident
            .iter()
            .find(|(id, _)| id == credential)
            .unwrap();
        response["response"]["userHandle"] = json!(B64.encode(handle));
        response
    }
}

/// Checks what the server asks for, then adapts the options to
/// `SoftPasskey`, which refuses to be asked for a resident key (the
/// [`Device`] keeps the user handle instead).
fn creation_options(options: &Value) -> (CreationChallengeResponse, Vec<u8>) {
    let public_key = &options["publicKey"];
    let selection = &public_key["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "required");
    assert_eq!(selection["requireResidentKey"], true);
    assert_eq!(selection["userVerification"], "required");
    let user_handle = B64
        .decode(public_key["user"]["id"].as_str().unwrap())
        .unwrap();
    let mut options = options.clone();
    let selection = &mut options["publicKey"]["authenticatorSelection"];
    selection["requireResidentKey"] = json!(false);
    selection.as_object_mut().unwrap().remove("residentKey");
    (serde_json::from_value(options).unwrap(), user_handle)
}

#[tokio::test]
async fn register_list_rename_remove() {
    let h = Harness::at_origin().await;
    let ctx = h.visitor().await;
    let alice = h.user("alice").await;
    let mut device = Device::new();

    let (handle, options) = h
        .app
        .begin_passkey_registration(&ctx, alice.id)
        .await
        .unwrap();
    let public_key = &options["publicKey"];
    assert_eq!(public_key["rp"]["id"], "localhost");
    assert_eq!(public_key["rp"]["name"], "idplane");
    assert_eq!(public_key["user"]["name"], "alice");
    assert_eq!(public_key["user"]["displayName"], "alice display");
    assert_eq!(
        public_key["user"]["id"],
        json!(B64.encode(alice.id.as_uuid().as_bytes())),
        "the user handle is the principal's UUID"
    );
    assert_eq!(public_key["excludeCredentials"], json!([]));
    let response = device.register(&options, ORIGIN).unwrap();
    let laptop = h
        .app
        .finish_passkey_registration(&ctx, alice.id, &handle, "  Laptop ", response)
        .await
        .unwrap();
    assert_eq!(laptop.name, "Laptop", "names are normalised");
    assert!(!laptop.backup_eligible, "the soft token is device-bound");
    assert_eq!(laptop.last_used_at, None);
    assert_eq!(laptop.created_at, ctx.now);
    let event = h.last_event("passkey.register").await;
    assert_eq!(event.event.outcome, Outcome::Success);
    assert_eq!(event.event.target, Some(format!("user:{}", alice.id)));
    assert_eq!(event.event.details["name"], "Laptop");
    assert_eq!(event.event.details["credential"], json!(laptop.id));

    // The second registration excludes the first credential.
    h.clock.advance(SignedDuration::from_mins(1));
    let ctx = h.visitor().await;
    let (handle, options) = h
        .app
        .begin_passkey_registration(&ctx, alice.id)
        .await
        .unwrap();
    assert_eq!(
        options["publicKey"]["excludeCredentials"][0]["id"],
        json!(laptop.id)
    );
    let response = device.register(&options, ORIGIN).unwrap();
    let phone = h
        .app
        .finish_passkey_registration(&ctx, alice.id, &handle, "Phone", response)
        .await
        .unwrap();

    let listed = h.app.passkeys(&ctx, alice.id).await.unwrap();
    assert_eq!(listed, vec![laptop.clone(), phone.clone()]);
    assert_eq!(h.app.passkey_count(&ctx, alice.id).await.unwrap(), 2);

    let renamed = h
        .app
        .rename_passkey(&ctx, alice.id, &laptop.id, "Work laptop")
        .await
        .unwrap();
    assert_eq!(renamed.name, "Work laptop");
    assert!(matches!(
        h.app
            .rename_passkey(&ctx, alice.id, &laptop.id, "   ")
            .await,
        Err(AppError::Invalid(_))
    ));
    let event = h.last_event("passkey.rename").await;
    assert_eq!(event.event.details["from"], "Laptop");
    assert_eq!(event.event.details["name"], "Work laptop");

    h.app
        .remove_passkey(&ctx, alice.id, &phone.id)
        .await
        .unwrap();
    let event = h.last_event("passkey.remove").await;
    assert_eq!(event.event.details["credential"], json!(phone.id));
    assert!(matches!(
        h.app.remove_passkey(&ctx, alice.id, &phone.id).await,
        Err(AppError::NotFound(_))
    ));
    let listed = h.app.passkeys(&ctx, alice.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "Work laptop");
    assert_eq!(h.app.passkey_count(&ctx, alice.id).await.unwrap(), 1);

    // Another user can neither see, rename nor remove alice's passkey.
    let bob = h.user("bob").await;
    assert!(h.app.passkeys(&ctx, bob.id).await.unwrap().is_empty());
    assert!(matches!(
        h.app.rename_passkey(&ctx, bob.id, &laptop.id, "mine").await,
        Err(AppError::NotFound(_))
    ));
    assert!(matches!(
        h.app.remove_passkey(&ctx, bob.id, &laptop.id).await,
        Err(AppError::NotFound(_))
    ));
}

#[tokio::test]
async fn discoverable_sign_in_without_username() {
    let h = Harness::at_origin().await;
    let ctx = h.visitor().await;
    let alice = h.user("alice").await;
    let _bob = h.user("bob").await;
    let mut device = Device::new();
    let first = h.register(&mut device, &alice, "Laptop").await;
    let second = h.register(&mut device, &alice, "Backup key").await;
    h.app.remove_passkey(&ctx, alice.id, &first).await.unwrap();

    h.clock.advance(SignedDuration::from_mins(1));
    let ctx = h.visitor().await;
    let (handle, options) = h.app.begin_passkey_sign_in(&ctx).await.unwrap();
    assert_eq!(options["publicKey"]["rpId"], "localhost");
    assert!(options.get("mediation").is_none(), "the page chooses");
    let response = device.sign_in(&options, &second, ORIGIN).unwrap();
    let signed_in = h
        .app
        .finish_passkey_sign_in(&ctx, &handle, response)
        .await
        .unwrap();
    assert_eq!(signed_in.principal.id, alice.id);
    assert_eq!(signed_in.credential_id, second);
    assert!(signed_in.user_verified);
    assert_eq!(signed_in.amr, vec![Amr::Hwk, Amr::User, Amr::Mfa]);

    let event = h.last_event("passkey.sign_in").await;
    assert_eq!(event.event.outcome, Outcome::Success);
    assert_eq!(event.event.target, Some(format!("user:{}", alice.id)));
    assert_eq!(event.event.details["credential"], json!(second));
    assert_eq!(event.event.details["user_verified"], true);
    assert_eq!(event.event.details["phishing_resistant"], true);

    let listed = h.app.passkeys(&ctx, alice.id).await.unwrap();
    assert_eq!(listed[0].last_used_at, Some(ctx.now));
    let mut conn = h.app.store().read().await.unwrap();
    let stored = passkeys::by_id(&mut conn, ctx.tenant, &second)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.counter > 0, "the counter seen is kept");

    // The removed credential no longer signs in.
    let (handle, response) = h.assertion(&mut device, &first).await;
    assert!(matches!(
        h.app.finish_passkey_sign_in(&ctx, &handle, response).await,
        Err(AppError::Unauthenticated)
    ));
    let event = h.last_event("passkey.sign_in").await;
    assert_eq!(event.event.outcome, Outcome::Failure);
    assert_eq!(event.event.details["reason"], "unknown credential");
}

#[tokio::test]
async fn replayed_assertions_are_refused() {
    let h = Harness::at_origin().await;
    let ctx = h.visitor().await;
    let alice = h.user("alice").await;
    let mut device = Device::new();
    let cred = h.register(&mut device, &alice, "Laptop").await;

    let (handle, response) = h.assertion(&mut device, &cred).await;
    h.app
        .finish_passkey_sign_in(&ctx, &handle, response.clone())
        .await
        .unwrap();
    // The same handle and response again: the handle is spent.
    assert!(matches!(
        h.app
            .finish_passkey_sign_in(&ctx, &handle, response.clone())
            .await,
        Err(AppError::Unauthenticated)
    ));
    // The same response under a fresh handle: it answers another challenge.
    let (fresh, _) = h.app.begin_passkey_sign_in(&ctx).await.unwrap();
    assert!(matches!(
        h.app.finish_passkey_sign_in(&ctx, &fresh, response).await,
        Err(AppError::Unauthenticated)
    ));
    let event = h.last_event("passkey.sign_in").await;
    assert_eq!(event.event.outcome, Outcome::Failure);
    assert_eq!(
        event.event.details["reason"],
        "the response answers another challenge"
    );
}

#[tokio::test]
async fn responses_for_another_origin_or_rp_are_refused() {
    let h = Harness::at_origin().await;
    let ctx = h.visitor().await;
    let alice = h.user("alice").await;
    let mut device = Device::new();

    // A browser refuses outright to use localhost's options at evil.example.
    let (_, options) = h
        .app
        .begin_passkey_registration(&ctx, alice.id)
        .await
        .unwrap();
    assert!(device.register(&options, EVIL).is_err());

    // A registration made at another origin is refused by the server.
    let (handle, options) = h
        .app
        .begin_passkey_registration(&ctx, alice.id)
        .await
        .unwrap();
    let response = device.register_unchecked(&options, EVIL);
    match h
        .app
        .finish_passkey_registration(&ctx, alice.id, &handle, "Phished", response)
        .await
    {
        Err(AppError::Invalid(e)) => assert_eq!(e.field, "credential"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(h.app.passkey_count(&ctx, alice.id).await.unwrap(), 0);
    let event = h.last_event("passkey.register").await;
    assert_eq!(event.event.outcome, Outcome::Failure);
    assert_eq!(
        event.event.details["reason"],
        "the response was made for another origin"
    );

    let cred = h.register(&mut device, &alice, "Laptop").await;

    // An assertion made at another origin.
    let (handle, options) = h.app.begin_passkey_sign_in(&ctx).await.unwrap();
    assert!(device.sign_in(&options, &cred, EVIL).is_err());
    let response = device.sign_in_unchecked(&options, &cred, EVIL);
    assert!(matches!(
        h.app.finish_passkey_sign_in(&ctx, &handle, response).await,
        Err(AppError::Unauthenticated)
    ));
    let event = h.last_event("passkey.sign_in").await;
    assert_eq!(
        event.event.details["reason"],
        "the response was made for another origin"
    );

    // An assertion made at the right origin for another relying party id.
    let (handle, mut options) = h.app.begin_passkey_sign_in(&ctx).await.unwrap();
    options["publicKey"]["rpId"] = json!("evil.example");
    let response = device.sign_in_unchecked(&options, &cred, ORIGIN);
    assert!(matches!(
        h.app.finish_passkey_sign_in(&ctx, &handle, response).await,
        Err(AppError::Unauthenticated)
    ));
    let event = h.last_event("passkey.sign_in").await;
    assert_eq!(
        event.event.details["reason"],
        "the response was made for another relying party"
    );

    // A genuine sign-in still works afterwards.
    let (handle, response) = h.assertion(&mut device, &cred).await;
    h.app
        .finish_passkey_sign_in(&ctx, &handle, response)
        .await
        .unwrap();
}

#[tokio::test]
async fn handles_are_single_use_of_one_kind_user_and_lifetime() {
    let h = Harness::at_origin().await;
    let ctx = h.visitor().await;
    let alice = h.user("alice").await;
    let bob = h.user("bob").await;
    let mut device = Device::new();
    let cred = h.register(&mut device, &alice, "Laptop").await;

    // A registration handle does not finish a sign-in, and vice versa.
    let (reg_handle, _) = h
        .app
        .begin_passkey_registration(&ctx, alice.id)
        .await
        .unwrap();
    let (_, response) = h.assertion(&mut device, &cred).await;
    assert!(matches!(
        h.app
            .finish_passkey_sign_in(&ctx, &reg_handle, response)
            .await,
        Err(AppError::Unauthenticated)
    ));
    let (sign_in_handle, _) = h.app.begin_passkey_sign_in(&ctx).await.unwrap();
    let (_, options) = h
        .app
        .begin_passkey_registration(&ctx, alice.id)
        .await
        .unwrap();
    let response = device.register(&options, ORIGIN).unwrap();
    assert!(matches!(
        h.app
            .finish_passkey_registration(&ctx, alice.id, &sign_in_handle, "x", response)
            .await,
        Err(AppError::Unauthenticated)
    ));

    // A registration begun for alice cannot be finished for bob.
    let (handle, options) = h
        .app
        .begin_passkey_registration(&ctx, alice.id)
        .await
        .unwrap();
    let response = device.register(&options, ORIGIN).unwrap();
    assert!(matches!(
        h.app
            .finish_passkey_registration(&ctx, bob.id, &handle, "x", response.clone())
            .await,
        Err(AppError::Unauthenticated)
    ));
    // ... and the attempt spent the handle.
    assert!(matches!(
        h.app
            .finish_passkey_registration(&ctx, alice.id, &handle, "x", response)
            .await,
        Err(AppError::Unauthenticated)
    ));
    assert_eq!(h.app.passkey_count(&ctx, bob.id).await.unwrap(), 0);

    // A registration handle works once.
    let (handle, options) = h
        .app
        .begin_passkey_registration(&ctx, alice.id)
        .await
        .unwrap();
    let response = device.register(&options, ORIGIN).unwrap();
    h.app
        .finish_passkey_registration(&ctx, alice.id, &handle, "Second", response.clone())
        .await
        .unwrap();
    assert!(matches!(
        h.app
            .finish_passkey_registration(&ctx, alice.id, &handle, "Again", response)
            .await,
        Err(AppError::Unauthenticated)
    ));

    // Handles expire after five minutes.
    let (handle, response) = h.assertion(&mut device, &cred).await;
    h.clock.advance(SignedDuration::from_mins(6));
    let ctx = h.visitor().await;
    assert!(matches!(
        h.app.finish_passkey_sign_in(&ctx, &handle, response).await,
        Err(AppError::Unauthenticated)
    ));
    let event = h.last_event("passkey.sign_in").await;
    assert_eq!(
        event.event.details["reason"],
        "unknown, expired or used ceremony handle"
    );
}

#[tokio::test]
async fn inactive_users_and_foreign_user_handles_are_refused() {
    let h = Harness::at_origin().await;
    let ctx = h.visitor().await;
    let alice = h.user("alice").await;
    let bob = h.user("bob").await;
    let mut device = Device::new();
    let cred = h.register(&mut device, &alice, "Laptop").await;

    // The user handle must name the credential's owner.
    let (handle, mut response) = h.assertion(&mut device, &cred).await;
    response["response"]["userHandle"] = json!(B64.encode(bob.id.as_uuid().as_bytes()));
    assert!(matches!(
        h.app.finish_passkey_sign_in(&ctx, &handle, response).await,
        Err(AppError::Unauthenticated)
    ));
    let event = h.last_event("passkey.sign_in").await;
    assert_eq!(
        event.event.details["reason"],
        "user handle does not match the credential's owner"
    );

    // No user handle at all (not a discoverable credential).
    let (handle, mut response) = h.assertion(&mut device, &cred).await;
    response["response"]["userHandle"] = Value::Null;
    assert!(matches!(
        h.app.finish_passkey_sign_in(&ctx, &handle, response).await,
        Err(AppError::Unauthenticated)
    ));
    let event = h.last_event("passkey.sign_in").await;
    assert_eq!(event.event.details["reason"], "no valid user handle");

    // A malformed response.
    let (handle, _) = h.app.begin_passkey_sign_in(&ctx).await.unwrap();
    assert!(matches!(
        h.app
            .finish_passkey_sign_in(&ctx, &handle, json!({"id": "x"}))
            .await,
        Err(AppError::Invalid(_))
    ));

    // A suspended user cannot sign in, nor register.
    let admin = h.app.ctx(ctx.tenant, Actor::Root, RequestMeta::default());
    h.app
        .update_user(
            &admin,
            alice.id,
            UpdateUser {
                status: Field::Set(Status::Suspended),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let (handle, response) = h.assertion(&mut device, &cred).await;
    assert!(matches!(
        h.app.finish_passkey_sign_in(&ctx, &handle, response).await,
        Err(AppError::Unauthenticated)
    ));
    let event = h.last_event("passkey.sign_in").await;
    assert_eq!(event.event.outcome, Outcome::Failure);
    assert_eq!(event.event.details["reason"], "user is not active");
    assert_eq!(event.event.target, Some(format!("user:{}", alice.id)));
    assert!(matches!(
        h.app.begin_passkey_registration(&ctx, alice.id).await,
        Err(AppError::Forbidden(_))
    ));
}

#[tokio::test]
async fn counter_regression_is_refused_as_a_possible_clone() {
    let h = Harness::at_origin().await;
    let ctx = h.visitor().await;
    let alice = h.user("alice").await;
    let mut device = Device::new();
    let cred = h.register(&mut device, &alice, "Key").await;

    for _ in 0..2 {
        let (handle, response) = h.assertion(&mut device, &cred).await;
        h.app
            .finish_passkey_sign_in(&ctx, &handle, response)
            .await
            .unwrap();
    }
    let mut conn = h.app.store().read().await.unwrap();
    let stored = passkeys::by_id(&mut conn, ctx.tenant, &cred)
        .await
        .unwrap()
        .unwrap();
    drop(conn);
    assert_eq!(
        stored.counter, 2,
        "each sign-in advances the stored counter"
    );

    // A clone of the key was used 100 times: the server has seen counter 100.
    let mut passkey: Value = serde_json::from_str(&stored.passkey).unwrap();
    passkey["cred"]["counter"] = json!(100);
    let clone_seen = passkeys::StoredPasskey {
        passkey: passkey.to_string(),
        counter: 100,
        ..stored.clone()
    };
    let mut tx = h.app.store().write().await.unwrap();
    assert!(
        passkeys::record_use(&mut tx, &clone_seen, stored.counter)
            .await
            .unwrap()
    );
    tx.commit(AuditEvent::new(&ctx, "test.clone_used", None))
        .await
        .unwrap();

    // The original now presents counter 3 <= 100.
    for _ in 0..2 {
        let (handle, response) = h.assertion(&mut device, &cred).await;
        assert!(matches!(
            h.app.finish_passkey_sign_in(&ctx, &handle, response).await,
            Err(AppError::Unauthenticated)
        ));
        let event = h.last_event("passkey.sign_in").await;
        assert_eq!(event.event.outcome, Outcome::Failure);
        assert_eq!(event.event.details["reason"], COUNTER_REGRESSION);
        assert_eq!(event.event.details["credential"], json!(cred));
    }
    let mut conn = h.app.store().read().await.unwrap();
    let after = passkeys::by_id(&mut conn, ctx.tenant, &cred)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.counter, 100, "a refused sign-in changes nothing");
}

#[tokio::test]
async fn registration_refuses_unknown_users_bad_names_and_garbage() {
    let h = Harness::at_origin().await;
    let ctx = h.visitor().await;
    let alice = h.user("alice").await;
    let mut device = Device::new();

    assert!(matches!(
        h.app
            .begin_passkey_registration(&ctx, idplane_core::PrincipalId::generate())
            .await,
        Err(AppError::NotFound(_))
    ));

    let (handle, options) = h
        .app
        .begin_passkey_registration(&ctx, alice.id)
        .await
        .unwrap();
    let response = device.register(&options, ORIGIN).unwrap();
    // A bad name is refused before the handle is spent, so the page can
    // ask again.
    for bad in ["", "   ", &"x".repeat(1025), "tab\there"] {
        assert!(matches!(
            h.app
                .finish_passkey_registration(&ctx, alice.id, &handle, bad, response.clone())
                .await,
            Err(AppError::Invalid(_))
        ));
    }
    h.app
        .finish_passkey_registration(&ctx, alice.id, &handle, "Fine", response)
        .await
        .unwrap();

    // An authenticator that says it made a non-discoverable credential.
    let (handle, options) = h
        .app
        .begin_passkey_registration(&ctx, alice.id)
        .await
        .unwrap();
    let mut response = device.register(&options, ORIGIN).unwrap();
    response["extensions"] = json!({"credProps": {"rk": false}});
    assert!(matches!(
        h.app
            .finish_passkey_registration(&ctx, alice.id, &handle, "x", response)
            .await,
        Err(AppError::Invalid(_))
    ));
    let event = h.last_event("passkey.register").await;
    assert_eq!(
        event.event.details["reason"],
        "the authenticator did not create a discoverable passkey"
    );
    assert_eq!(h.app.passkey_count(&ctx, alice.id).await.unwrap(), 1);

    let (handle, _) = h
        .app
        .begin_passkey_registration(&ctx, alice.id)
        .await
        .unwrap();
    assert!(matches!(
        h.app
            .finish_passkey_registration(&ctx, alice.id, &handle, "x", json!({"nope": 1}))
            .await,
        Err(AppError::Invalid(_))
    ));
    let event = h.last_event("passkey.register").await;
    assert_eq!(event.event.outcome, Outcome::Failure);
    assert_eq!(
        event.event.details["reason"],
        "malformed registration response"
    );
}
