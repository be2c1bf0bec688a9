//! End to end: the `idplane` CLI commands against a real `idplane serve --dev`.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failed expectation is a test failure"
)]

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_idplane");

/// How long the server may take to answer `/healthz`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A dev-mode server, killed (and its data directory removed) on drop.
struct Server {
    child: Child,
    base: String,
    token: String,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free local port: bound, read and released.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl Server {
    async fn start() -> Self {
        let token = "cli-test-root-token".to_owned();
        let http = reqwest::Client::new();
        let mut last_log = String::new();
        // Another process may take the port between picking and binding it:
        // then the server exits, and we try again on another one.
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
            let child = Command::new(BIN)
                .args(["serve", "--dev", "--dev-root-token", &token])
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--data")
                .arg(dir.path().join("data"))
                .env_remove("IDPLANE_DATABASE_URL")
                .env_remove("IDPLANE_CONFIG")
                .env("IDPLANE_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            let mut server = Server {
                child,
                base: format!("http://127.0.0.1:{port}"),
                token: token.clone(),
                dir,
            };
            let deadline = tokio::time::Instant::now() + START_TIMEOUT;
            while server.child.try_wait().unwrap().is_none() {
                let health = http.get(format!("{}/healthz", server.base)).send().await;
                if health.is_ok_and(|r| r.status().is_success()) {
                    return server;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the server did not become healthy: {}",
                    server.log()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            last_log = server.log();
        }
        panic!("the server did not start: {last_log}");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `idplane ARGS` as a client of this server.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("IDPLANE_SERVER", &self.base)
            .env("IDPLANE_TOKEN", &self.token)
            .env_remove("IDPLANE_TENANT")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs a command that must succeed; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        check(self.command(args).output().unwrap(), args)
    }

    /// Runs a command that must fail; its standard error.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.command(args).output().unwrap();
        assert!(
            !out.status.success(),
            "`idplane {}` succeeded",
            args.join(" ")
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// Runs a command with `input` on standard input; its standard output.
    fn ok_with_input(&self, args: &[&str], input: &str) -> String {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        check(child.wait_with_output().unwrap(), args)
    }

    /// Writes `text` to a file in the server's directory; its path.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

fn check(out: Output, args: &[&str]) -> String {
    assert!(
        out.status.success(),
        "`idplane {}` failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn users_are_created_listed_and_refused_with_one_line() {
    let server = Server::start().await;
    let created = server.ok(&[
        "user",
        "create",
        "alice",
        "--email",
        "Alice@Example.com",
        "--attr",
        "team=core",
    ]);
    assert!(created.contains("alice@example.com"), "{created}");
    server.ok(&["user", "create", "bob"]);

    let table = server.ok(&["user", "list"]);
    assert!(table.starts_with("USERNAME"), "{table}");
    assert!(table.contains("alice") && table.contains("bob"), "{table}");

    let listed: serde_json::Value =
        serde_json::from_str(&server.ok(&["user", "list", "--json", "--limit", "1"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let alice: serde_json::Value =
        serde_json::from_str(&server.ok(&["user", "get", "alice", "--json"])).unwrap();
    assert_eq!(alice["attributes"]["team"], "core");

    let error = server.fails(&["user", "create", "alice"]);
    assert_eq!(error.trim().lines().count(), 1, "{error}");
    assert!(error.contains("409"), "{error}");
    let error = server.fails(&["user", "get", "nobody"]);
    assert!(error.contains("no user named `nobody`"), "{error}");
}

#[tokio::test]
async fn a_joiner_waits_for_the_start_date_and_a_leaver_is_deprovisioned() {
    let server = Server::start().await;
    let joiner = server.ok(&[
        "user",
        "create",
        "newbie",
        "--start-date",
        "2099-01-01T00:00:00Z",
        "--json",
    ]);
    let joiner: serde_json::Value = serde_json::from_str(&joiner).unwrap();
    assert_eq!(joiner["start_date"], "2099-01-01T00:00:00Z");
    assert_eq!(joiner["active"], false);
    let cleared = server.ok(&[
        "user",
        "update",
        "newbie",
        "--clear",
        "start-date",
        "--json",
    ]);
    let cleared: serde_json::Value = serde_json::from_str(&cleared).unwrap();
    assert_eq!(cleared["active"], true);

    let gone = server.ok(&["user", "deprovision", "newbie"]);
    assert!(gone.starts_with("Deprovisioned user `newbie`."), "{gone}");
    assert!(gone.contains("deprovisioned"), "{gone}");
    let error = server.fails(&["user", "deprovision", "nobody"]);
    assert!(error.contains("no user named `nobody`"), "{error}");
}

#[tokio::test]
async fn groups_roles_and_effective_access() {
    let server = Server::start().await;
    server.ok(&["user", "create", "alice"]);
    server.ok(&["group", "create", "eng"]);
    server.ok(&["group", "add-member", "eng", "alice", "--expires", "4h"]);
    let members = server.ok(&["group", "members", "eng"]);
    assert!(members.contains("alice"), "{members}");
    server.ok(&[
        "role",
        "create",
        "payroll-reader",
        "--entitlement",
        "payroll:read",
    ]);
    server.ok(&["role", "assign", "payroll-reader", "group:eng"]);
    let access = server.ok(&["user", "access", "alice"]);
    assert!(
        access.contains("payroll-reader") && access.contains("group:eng"),
        "{access}"
    );
    assert!(
        access.contains("payroll") && access.contains("read"),
        "{access}"
    );

    let assignments: serde_json::Value =
        serde_json::from_str(&server.ok(&["role", "assignments", "--json"])).unwrap();
    let id = assignments[0]["id"].as_str().unwrap();
    server.ok(&["role", "unassign", id]);
    server.ok(&["group", "remove-member", "eng", "alice"]);
    let access = server.ok(&["user", "access", "alice", "--json"]);
    assert!(!access.contains("payroll"), "{access}");
}

const DESIRED: &str = r#"
tenants:
  - name: default
    users:
      - {username: alice, email: alice@example.com}
      - {username: bob}
      - {username: carol, user_type: contractor, end_date: "2099-01-01T00:00:00Z", sponsor: alice}
    groups:
      - {name: eng, members: [alice, "group:sre", {member: carol, expires_at: "2099-01-01T00:00:00Z"}]}
      - {name: sre, members: ["service_account:ci"]}
    roles:
      - {name: payroll-reader, entitlements: ["payroll:read"]}
    assignments:
      - {role: payroll-reader, principal: "group:eng"}
    service_accounts:
      - {name: ci, owner: alice, purpose: deploys}
  - name: acme
    users:
      - {username: wile}
"#;

#[tokio::test]
async fn apply_is_idempotent_and_export_round_trips() {
    let server = Server::start().await;
    let file = server.file("desired.yaml", DESIRED);

    let plan = server.ok(&["apply", "--dry-run", &file]);
    assert!(plan.contains("+ user alice\n"), "{plan}");
    assert!(
        server.ok(&["user", "list", "--json"]).trim() == "[]",
        "--dry-run changed something"
    );

    let applied = server.ok(&["apply", &file]);
    for line in [
        "+ tenant acme",
        "+ user carol",
        "+ member group:sre of group eng",
        "+ assignment payroll-reader to group:eng",
        "+ user wile (tenant acme)",
    ] {
        assert!(applied.contains(line), "{line} missing from:\n{applied}");
    }
    assert_eq!(server.ok(&["apply", &file]).trim(), "no changes");

    let exported = server.ok(&["export"]);
    assert!(exported.contains("sponsor: alice"), "{exported}");
    assert_eq!(
        server.ok_with_input(&["apply", "-"], &exported).trim(),
        "no changes"
    );
    assert_eq!(
        server
            .ok_with_input(&["apply", "--prune", "-"], &exported)
            .trim(),
        "no changes"
    );

    // Without --prune nothing is deleted; with it, what the file lacks is.
    let smaller = server.file(
        "smaller.yaml",
        &DESIRED.replace("      - {username: bob}\n", ""),
    );
    assert_eq!(server.ok(&["apply", &smaller]).trim(), "no changes");
    let pruned = server.ok(&["apply", "--prune", &smaller]);
    assert!(pruned.contains("- user bob"), "{pruned}");
    assert!(!server.ok(&["user", "list"]).contains("bob"));
    assert_eq!(
        server.ok(&["apply", "--prune", &smaller]).trim(),
        "no changes"
    );
}

const CLIENTS: &str = r#"
version: 1
tenants:
  - name: default
    clients:
      - client_id: portal
        name: Employee portal
        redirect_uris: [https://portal.example.com/callback]
        scopes: [openid, profile]
        first_party: true
      - client_id: cli
        name: Command line
        type: public
        redirect_uris: ["http://127.0.0.1/callback"]
        grant_types: [authorization_code, refresh_token, "urn:ietf:params:oauth:grant-type:device_code"]
"#;

#[tokio::test]
async fn clients_are_managed_by_cli_and_apply_and_export_without_secrets() {
    let server = Server::start().await;

    // The CLI: create prints the secret once; get does not.
    let created = server.ok(&[
        "client",
        "create",
        "Billing service",
        "--client-id",
        "billing",
        "--grant-type",
        "client_credentials",
        "--scope",
        "billing:read",
    ]);
    let secret = created
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("idp_cs_"))
        .unwrap_or_else(|| panic!("no secret in:\n{created}"))
        .to_owned();
    assert!(!server.ok(&["client", "get", "billing"]).contains(&secret));
    let refused = server.fails(&["client", "create", "Old", "--grant-type", "password"]);
    assert!(refused.contains("not supported"), "{refused}");
    let rotated = server.ok(&["client", "rotate-secret", "billing"]);
    assert!(
        rotated.contains("idp_cs_") && !rotated.contains(&secret),
        "{rotated}"
    );
    let updated = server.ok(&["client", "update", "billing", "--first-party"]);
    assert!(
        updated.contains("FIRST PARTY") && updated.contains("yes"),
        "{updated}"
    );
    assert!(server.ok(&["client", "list"]).contains("billing"));
    server.ok(&["client", "delete", "billing"]);
    assert!(!server.ok(&["client", "list", "--json"]).contains("billing"));

    // apply creates, printing the confidential client's secret once.
    let file = server.file("clients.yaml", CLIENTS);
    let applied = server.ok(&["apply", &file]);
    assert!(applied.contains("+ client portal\n"), "{applied}");
    assert!(applied.contains("+ client cli\n"), "{applied}");
    let secrets: Vec<&str> = applied
        .lines()
        .filter(|l| l.contains("client_secret"))
        .collect();
    assert_eq!(secrets.len(), 1, "{applied}");
    assert!(secrets[0].contains("idp_cs_"), "{applied}");
    assert_eq!(server.ok(&["apply", &file]).trim(), "no changes");

    // export: every setting, never a secret; applying it changes nothing.
    let exported = server.ok(&["export"]);
    assert!(exported.contains("client_id: portal"), "{exported}");
    assert!(
        exported.contains("token_endpoint_auth_method: none"),
        "{exported}"
    );
    assert!(!exported.contains("idp_cs_"), "{exported}");
    assert!(!exported.contains("client_secret:"), "{exported}");
    assert_eq!(
        server
            .ok_with_input(&["apply", "--prune", "-"], &exported)
            .trim(),
        "no changes"
    );

    // A change, then a prune.
    let changed = server.file(
        "changed.yaml",
        &CLIENTS
            .replace("first_party: true", "first_party: false")
            .replace(
                "      - client_id: cli\n        name: Command line\n        type: public\n        redirect_uris: [\"http://127.0.0.1/callback\"]\n        grant_types: [authorization_code, refresh_token, \"urn:ietf:params:oauth:grant-type:device_code\"]\n",
                "",
            ),
    );
    let pruned = server.ok(&["apply", "--prune", &changed]);
    assert!(pruned.contains("~ client portal: first_party"), "{pruned}");
    assert!(pruned.contains("- client cli"), "{pruned}");
    assert_eq!(
        server.ok(&["apply", "--prune", &changed]).trim(),
        "no changes"
    );
}

#[tokio::test]
async fn signing_keys_are_listed_and_rotated() {
    let server = Server::start().await;
    let table = server.ok(&["keys", "list"]);
    assert!(table.starts_with("KID"), "{table}");
    assert_eq!(table.matches("active").count(), 3, "{table}");

    let listed: serde_json::Value =
        serde_json::from_str(&server.ok(&["keys", "list", "--json"])).unwrap();
    let es256 = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["algorithm"] == "ES256")
        .unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();

    let rotated = server.ok(&["keys", "rotate", "--algorithm", "ES256"]);
    assert!(
        rotated.contains("ES256") && !rotated.contains(&es256),
        "{rotated}"
    );
    assert!(!rotated.contains("RS256"), "{rotated}");
    let table = server.ok(&["keys", "list"]);
    let old = table.lines().find(|l| l.starts_with(&es256)).unwrap();
    assert!(old.contains("retired"), "{table}");

    let all: serde_json::Value =
        serde_json::from_str(&server.ok(&["keys", "rotate", "--json"])).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 3, "{all}");
    let refused = server.fails(&["keys", "rotate", "--algorithm", "HS256"]);
    assert!(refused.contains("HS256"), "{refused}");
}
