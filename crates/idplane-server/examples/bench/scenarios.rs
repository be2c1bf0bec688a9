//! The scenarios: what each one seeds, and the request (or round trip) one
//! unit of its load sends. A unit succeeds only on the expected status and
//! a body that shows the work was done (a token, `"active":true`, ...).

use std::path::Path;
use std::process::Command;

use hyper::header;
use serde_json::json;

use crate::fixture::{self, mix};
use crate::http::{Call, Conn, Error, Reply};

const PASSWORD: &str = "load test passphrase that is long enough";
/// Any 43-character token: the double-submit check compares cookie and field.
const CSRF: &str = "benchmark-csrf-token-0123456789abcdefghijkl";
/// RFC 7636 appendix B: a verifier and its S256 challenge.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const REDIRECT: &str = "http://127.0.0.1:9/cb";
const SCIM_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const SCIM_ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// The scenarios on idplane, in the order a run takes them (SCIM lists
/// filter the directory the creations before them left behind).
pub const IDPLANE: &[&str] = &[
    "client-credentials",
    "introspection",
    "refresh",
    "authcode",
    "jwks",
    "signin",
    "evaluation",
    "evaluation-allow",
    "evaluations",
    "users",
    "scim-create",
    "scim-list",
];

pub enum Workload {
    /// The same request every time.
    Fixed {
        call: Call,
        status: u16,
        needle: &'static [u8],
    },
    UserCreations {
        token: String,
        run: String,
    },
    ScimCreations {
        token: String,
        run: String,
    },
    /// A userName lookup (indexed) and a department page (an attribute
    /// scan), alternating.
    ScimLists([Call; 2]),
    Decisions(Decisions),
    AuthCode(Flow),
    /// Refresh-token rotation: each worker holds one family and spends its
    /// newest token on every request.
    Refresh(Flow),
}

pub struct Decisions {
    token: String,
    users: u64,
    /// Items per request: 1 is the `evaluation` endpoint, more a batch.
    items: usize,
    /// Only the action everyone may take (mostly allows), else random
    /// actions on random documents (mostly denies, each one logged).
    allow_mix: bool,
}

/// A signed-in person and a first-party client, for code and refresh flows.
pub struct Flow {
    authorize: Call,
    client_id: String,
    secret: String,
}

/// What a worker carries from one unit to the next.
#[derive(Default)]
pub struct WorkerState {
    refresh_token: Option<String>,
}

/// What seeding needs: a connection to idplane, its root token, and where
/// the CLI and a scratch directory are.
pub struct Seeder<'a> {
    pub conn: Conn,
    pub root: &'a str,
    pub run: String,
    pub idplane: &'a Path,
    pub base_url: String,
    pub scratch: &'a Path,
    /// People and policies in the AuthZEN fixture.
    pub authzen_size: (u64, u64),
    pdp_token: Option<String>,
}

impl<'a> Seeder<'a> {
    pub fn new(conn: Conn, root: &'a str, idplane: &'a Path, scratch: &'a Path) -> Self {
        Self {
            conn,
            root,
            run: uuid::Uuid::now_v7().simple().to_string(),
            idplane,
            base_url: String::new(),
            scratch,
            authzen_size: (10_000, 1_000),
            pdp_token: None,
        }
    }

    pub async fn seed(&mut self, scenario: &str) -> Result<Workload, Error> {
        let (root, run) = (self.root.to_owned(), self.run.clone());
        Ok(match scenario {
            "client-credentials" => {
                let (id, secret) = self.machine_client("cc").await?;
                Workload::Fixed {
                    call: client_credentials("/oauth2/token", &id, &secret, "load"),
                    status: 200,
                    needle: b"access_token",
                }
            }
            "introspection" => {
                let (id, secret) = self.machine_client("introspect").await?;
                let issued = self
                    .conn
                    .send(&client_credentials("/oauth2/token", &id, &secret, "load"))
                    .await?
                    .expect(200)?;
                Workload::Fixed {
                    call: introspection("/oauth2/introspect", &id, &secret, &issued)?,
                    status: 200,
                    needle: b"\"active\":true",
                }
            }
            "refresh" => Workload::Refresh(self.flow("refresh", true).await?),
            "authcode" => Workload::AuthCode(self.flow("authcode", false).await?),
            "jwks" => Workload::Fixed {
                call: Call::get("/oauth2/jwks"),
                status: 200,
                needle: b"\"keys\"",
            },
            "signin" => {
                let username = format!("signin-{run}");
                self.user_with_password(&username).await?;
                Workload::Fixed {
                    call: sign_in(&username),
                    status: 303,
                    needle: b"",
                }
            }
            "evaluation" | "evaluation-allow" | "evaluations" => {
                let token = self.pdp_token().await?;
                Workload::Decisions(Decisions {
                    token,
                    users: self.authzen_size.0,
                    items: if scenario == "evaluations" { 100 } else { 1 },
                    allow_mix: scenario == "evaluation-allow",
                })
            }
            "users" => Workload::UserCreations { token: root, run },
            "scim-create" => Workload::ScimCreations { token: root, run },
            "scim-list" => {
                let lookup = format!("/scim/v2/Users?filter=userName%20eq%20%22nobody-{run}%22");
                let page = "/scim/v2/Users?filter=department%20eq%20%22dept-7%22&count=20";
                Workload::ScimLists([
                    Call::get(lookup).bearer(&root),
                    Call::get(page).bearer(&root),
                ])
            }
            other => return Err(format!("unknown scenario `{other}`").into()),
        })
    }

    /// A confidential client allowed only client credentials.
    async fn machine_client(&mut self, name: &str) -> Result<(String, String), Error> {
        let id = format!("{name}-{}", self.run);
        let registration = json!({
            "client_id": id,
            "name": "load generator",
            "grant_types": ["client_credentials"],
            "scopes": ["load"],
        });
        let secret = self.client(&registration).await?;
        Ok((id, secret))
    }

    async fn flow(&mut self, name: &str, refresh: bool) -> Result<Flow, Error> {
        let username = format!("{name}-{}", self.run);
        self.user_with_password(&username).await?;
        let signed_in = self.conn.send(&sign_in(&username)).await?.expect(303)?;
        let session = signed_in
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("idplane_session="))
            .and_then(|v| v.split(';').next())
            .ok_or("signing in set no session cookie")?
            .to_owned();
        let client_id = format!("{name}-{}", self.run);
        let mut registration = json!({
            "client_id": client_id,
            "name": "load generator",
            "first_party": true,
            "redirect_uris": [REDIRECT],
            "scopes": ["openid"],
        });
        if refresh {
            registration["grant_types"] = json!(["authorization_code", "refresh_token"]);
        }
        let secret = self.client(&registration).await?;
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("response_type", "code"),
                ("client_id", client_id.as_str()),
                ("redirect_uri", REDIRECT),
                ("scope", "openid"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
                ("state", "load"),
            ])
            .finish();
        Ok(Flow {
            authorize: Call::get(format!("/oauth2/authorize?{query}"))
                .header(header::COOKIE, &session),
            client_id,
            secret,
        })
    }

    /// Registers a confidential client; returns its secret.
    async fn client(&mut self, registration: &serde_json::Value) -> Result<String, Error> {
        let call = Call::post("/api/v1/clients")
            .bearer(self.root)
            .json(registration);
        self.conn
            .send(&call)
            .await?
            .expect(201)?
            .field("client_secret")
    }

    async fn user_with_password(&mut self, username: &str) -> Result<(), Error> {
        let create = Call::post("/api/v1/users")
            .bearer(self.root)
            .json(&json!({"username": username}));
        let id = self.conn.send(&create).await?.expect(201)?.field("id")?;
        let password = Call::post(format!("/api/v1/users/{id}/password"))
            .bearer(self.root)
            .json(&json!({"password": PASSWORD, "temporary": false}));
        let reply = self.conn.send(&password).await?;
        if !reply.status.is_success() {
            return Err(format!("setting the password failed: {}", reply.status).into());
        }
        Ok(())
    }

    /// Loads the AuthZEN fixture with `idplane apply` (once) and issues a
    /// token with the `pdp` scope, as a policy enforcement point holds.
    async fn pdp_token(&mut self) -> Result<String, Error> {
        if let Some(token) = &self.pdp_token {
            return Ok(token.clone());
        }
        let (users, policies) = self.authzen_size;
        let document = fixture::write(&self.scratch.join("authzen"), users, policies)?;
        let applied = Command::new(self.idplane)
            .arg("apply")
            .arg(&document)
            .env("IDPLANE_SERVER", &self.base_url)
            .env("IDPLANE_TOKEN", self.root)
            .output()?;
        if !applied.status.success() {
            return Err(format!(
                "idplane apply failed: {}",
                String::from_utf8_lossy(&applied.stderr)
            )
            .into());
        }
        let call = Call::post("/api/v1/tokens")
            .bearer(self.root)
            .json(&json!({"name": format!("bench-pep-{}", self.run), "scope": "pdp"}));
        let token = self.conn.send(&call).await?.expect(201)?.field("secret")?;
        self.pdp_token = Some(token.clone());
        Ok(token)
    }
}

/// The oidc-provider peer's token endpoint, with its one client.
pub fn peer_client_credentials() -> Workload {
    let (id, secret) = crate::peers::OIDC_PROVIDER_CLIENT;
    Workload::Fixed {
        call: client_credentials("/token", id, secret, "read"),
        status: 200,
        needle: b"access_token",
    }
}

/// The oidc-provider peer's introspection of one of its opaque tokens.
pub async fn peer_introspection(conn: &mut Conn) -> Result<Workload, Error> {
    let (id, secret) = crate::peers::OIDC_PROVIDER_CLIENT;
    let issued = conn
        .send(&client_credentials("/token", id, secret, "read"))
        .await?
        .expect(200)?;
    Ok(Workload::Fixed {
        call: introspection("/token/introspection", id, secret, &issued)?,
        status: 200,
        needle: b"\"active\":true",
    })
}

/// The first bound's endpoint: a bare axum handler.
pub fn hello() -> Workload {
    Workload::Fixed {
        call: Call::get("/"),
        status: 200,
        needle: b"hello",
    }
}

/// The second bound's endpoint: a bare axum handler that only signs an
/// ES256 access token, sent the request a client-credentials grant sends.
pub fn signer() -> Workload {
    Workload::Fixed {
        call: client_credentials("/token", "bench", "bench-secret", "read"),
        status: 200,
        needle: b"access_token",
    }
}

fn client_credentials(path: &str, id: &str, secret: &str, scope: &str) -> Call {
    Call::post(path)
        .basic(id, secret)
        .form(&[("grant_type", "client_credentials"), ("scope", scope)])
}

fn introspection(path: &str, id: &str, secret: &str, issued: &Reply) -> Result<Call, Error> {
    let token = issued.field("access_token")?;
    Ok(Call::post(path)
        .basic(id, secret)
        .form(&[("token", token.as_str())]))
}

fn sign_in(username: &str) -> Call {
    Call::post("/login")
        .header(header::COOKIE, &format!("idplane_csrf={CSRF}"))
        .form(&[
            ("csrf", CSRF),
            ("username", username),
            ("password", PASSWORD),
        ])
}

impl Workload {
    /// Per-worker set-up before the clock starts: a refresh-token family.
    pub async fn worker_state(
        &self,
        conn: &mut Conn,
        _worker: usize,
    ) -> Result<WorkerState, Error> {
        let mut state = WorkerState::default();
        if let Workload::Refresh(flow) = self {
            let issued = flow.code_exchange(conn).await?;
            state.refresh_token = Some(issued.field("refresh_token")?);
        }
        Ok(state)
    }

    /// One unit of load.
    pub async fn run(&self, conn: &mut Conn, state: &mut WorkerState, i: u64) -> Result<(), Error> {
        match self {
            Workload::Fixed {
                call,
                status,
                needle,
            } => {
                let reply = conn.send(call).await?.expect(*status)?;
                if !reply.contains(needle) {
                    return Err(
                        format!("the answer lacks {}", String::from_utf8_lossy(needle)).into(),
                    );
                }
            }
            Workload::UserCreations { token, run } => {
                let body = json!({"username": format!("load-{run}-{i}"), "email": format!("load{i}@example.com")});
                let call = Call::post("/api/v1/users").bearer(token).json(&body);
                conn.send(&call).await?.expect(201)?;
            }
            Workload::ScimCreations { token, run } => {
                let body = json!({
                    "schemas": [SCIM_USER, SCIM_ENTERPRISE],
                    "userName": format!("scim-{run}-{i}"),
                    "name": {"givenName": "Load", "familyName": format!("User {i}")},
                    "emails": [{"value": format!("scim-{run}-{i}@example.com"), "type": "work", "primary": true}],
                    "active": true,
                    SCIM_ENTERPRISE: {"department": format!("dept-{}", i % 50)},
                });
                let call = Call::post("/scim/v2/Users")
                    .bearer(token)
                    .json_as("application/scim+json", &body);
                conn.send(&call).await?.expect(201)?;
            }
            Workload::ScimLists(calls) => {
                conn.send(&calls[(i % 2) as usize]).await?.expect(200)?;
            }
            Workload::Decisions(decisions) => {
                let reply = conn.send(&decisions.call(i)).await?.expect(200)?;
                if !reply.contains(b"\"decision\"") {
                    return Err("an AuthZEN answer without a decision".into());
                }
            }
            Workload::AuthCode(flow) => {
                flow.code_exchange(conn).await?;
            }
            Workload::Refresh(flow) => {
                let spent = state.refresh_token.take().ok_or("no refresh token left")?;
                let call = Call::post("/oauth2/token")
                    .basic(&flow.client_id, &flow.secret)
                    .form(&[("grant_type", "refresh_token"), ("refresh_token", &spent)]);
                let reply = conn.send(&call).await?.expect(200)?;
                state.refresh_token = Some(reply.field("refresh_token")?);
            }
        }
        Ok(())
    }
}

impl Flow {
    /// The authorization request of the signed-in person, then its code
    /// exchanged with PKCE at the token endpoint.
    async fn code_exchange(&self, conn: &mut Conn) -> Result<Reply, Error> {
        let answer = conn.send(&self.authorize).await?;
        let code = answer
            .headers
            .get(header::LOCATION)
            .and_then(|l| url::Url::parse(l.to_str().ok()?).ok())
            .and_then(|l| {
                l.query_pairs()
                    .find(|(k, _)| k == "code")
                    .map(|(_, v)| v.into_owned())
            })
            .ok_or_else(|| format!("the authorization answer ({}) holds no code", answer.status))?;
        let exchange = Call::post("/oauth2/token")
            .basic(&self.client_id, &self.secret)
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ]);
        conn.send(&exchange).await?.expect(200)
    }
}

impl Decisions {
    /// The `i`-th request: a pseudo-random person, action and document.
    fn call(&self, i: u64) -> Call {
        let mut seed = mix(i ^ u64::from(self.allow_mix) << 63);
        let mut draw = |n: u64| {
            seed = mix(seed);
            seed % n
        };
        let user = draw(self.users);
        let item = |draw: &mut dyn FnMut(u64) -> u64, id: u64| {
            let action = if self.allow_mix {
                0
            } else {
                draw(fixture::ACTIONS)
            };
            let level = draw(if self.allow_mix { 9 } else { 10 });
            json!({
                "action": {"name": format!("a{action}")},
                "resource": {"type": "Doc", "id": format!("d{id}"),
                             "properties": {"owner": format!("u{user}"), "level": level}},
            })
        };
        let subject = json!({"type": "user", "id": format!("u{user}")});
        let (path, body) = if self.items == 1 {
            let mut body = item(&mut draw, user);
            body["subject"] = subject;
            ("/access/v1/evaluation", body)
        } else {
            let items: Vec<_> = (0..self.items as u64).map(|n| item(&mut draw, n)).collect();
            (
                "/access/v1/evaluations",
                json!({"subject": subject, "evaluations": items}),
            )
        };
        Call::post(path).bearer(&self.token).json(&body)
    }
}
