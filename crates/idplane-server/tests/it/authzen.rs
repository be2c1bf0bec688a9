//! Authorization end to end: the AuthZEN interop "Todo" scenario loaded
//! through `idplane apply`, the AuthZEN endpoints and their refusals, and
//! the `idplane policy` commands.

use std::path::{Path, PathBuf};
use std::process::Output;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestServer, expect_json, expect_problem, idplane, s};

/// `examples/authzen-todo` in the repository.
fn todo_example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/authzen-todo")
}

/// The scenario's requests and expected decisions.
fn todo_decisions() -> Vec<(Value, bool)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/authzen-todo/decisions.json");
    let all: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    all["evaluation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["request"].clone(), e["expected"].as_bool().unwrap()))
        .collect()
}

fn cli(server: &TestServer, args: &[&str]) -> Output {
    idplane()
        .args(args)
        .env("IDPLANE_SERVER", &server.base)
        .env("IDPLANE_TOKEN", &server.root)
        .output()
        .unwrap()
}

fn cli_ok(server: &TestServer, args: &[&str]) -> String {
    let out = cli(server, args);
    assert!(
        out.status.success(),
        "`idplane {}` failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn todo_server() -> (TestServer, String) {
    let server = TestServer::dev().await;
    let file = todo_example().join("idplane.yaml");
    let applied = cli_ok(&server, &["apply", file.to_str().unwrap()]);
    assert!(applied.contains("+ policy"), "{applied}");
    assert_eq!(
        cli_ok(&server, &["apply", file.to_str().unwrap()]).trim(),
        "no changes"
    );
    let (_, pdp) = server
        .token(json!({"name": "todo-pep", "scope": "pdp"}))
        .await;
    (server, pdp)
}

async fn post(server: &TestServer, token: &str, path: &str, body: &Value) -> reqwest::Response {
    server
        .req_as(token, Method::POST, path)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_todo_interop_scenario_passes_one_by_one_and_in_batches() {
    let (server, pdp) = todo_server().await;
    let decisions = todo_decisions();
    assert_eq!(decisions.len(), 85);
    for (request, expected) in &decisions {
        let r = post(&server, &pdp, "/access/v1/evaluation", request).await;
        let answer = expect_json(r, StatusCode::OK).await;
        assert_eq!(answer["decision"], *expected, "{request}");
    }

    // The same answers in one batch, each subject given once at the top.
    let mut by_subject: Vec<(Value, Vec<(Value, bool)>)> = Vec::new();
    for (request, expected) in decisions {
        let item = json!({"action": request["action"], "resource": request["resource"]});
        match by_subject
            .iter_mut()
            .find(|(s, _)| *s == request["subject"])
        {
            Some((_, items)) => items.push((item, expected)),
            None => by_subject.push((request["subject"].clone(), vec![(item, expected)])),
        }
    }
    for (subject, items) in by_subject {
        let body = json!({
            "subject": subject,
            "evaluations": items.iter().map(|(i, _)| i.clone()).collect::<Vec<_>>(),
        });
        let r = post(&server, &pdp, "/access/v1/evaluations", &body).await;
        let answer = expect_json(r, StatusCode::OK).await;
        let got: Vec<Value> = answer["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["decision"].clone())
            .collect();
        let want: Vec<Value> = items.iter().map(|(_, d)| json!(d)).collect();
        assert_eq!(got, want, "{subject}");
    }

    // Everything at the top level and no items: one evaluation.
    let rick = "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";
    let body = json!({
        "subject": {"type": "user", "id": rick},
        "action": {"name": "can_delete_todo"},
        "resource": {"type": "todo", "id": "7", "properties": {"ownerID": "morty@the-citadel.com"}},
    });
    let r = post(&server, &pdp, "/access/v1/evaluations", &body).await;
    assert_eq!(
        expect_json(r, StatusCode::OK).await["evaluations"],
        json!([{"decision": true}])
    );

    // Action search: what may Morty do to his own todo?
    let morty = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";
    let body = json!({
        "subject": {"type": "user", "id": morty},
        "resource": {"type": "todo", "id": "1", "properties": {"ownerID": "morty@the-citadel.com"}},
    });
    let r = post(&server, &pdp, "/access/v1/search/action", &body).await;
    let names: Vec<String> = expect_json(r, StatusCode::OK).await["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| s(&r["name"]))
        .collect();
    assert_eq!(
        names,
        [
            "can_create_todo",
            "can_delete_todo",
            "can_read_todos",
            "can_update_todo"
        ]
    );

    // Subject search: who may delete Morty's todo? Admins, and Morty.
    let body = json!({
        "subject": {"type": "user"},
        "action": {"name": "can_delete_todo"},
        "resource": {"type": "todo", "id": "1", "properties": {"ownerID": "morty@the-citadel.com"}},
    });
    let r = post(&server, &pdp, "/access/v1/search/subject", &body).await;
    let found = expect_json(r, StatusCode::OK).await;
    let mut ids: Vec<String> = found["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| s(&r["id"]))
        .collect();
    ids.sort();
    assert_eq!(ids, ["morty", "rick"]);
    assert_eq!(found["page"]["next_token"], "");
}

#[tokio::test]
async fn the_decision_api_refuses_wrong_callers_and_bad_requests() {
    let (server, pdp) = todo_server().await;
    let meta = server.get_json("/.well-known/authzen-configuration").await;
    let issuer = s(&meta["policy_decision_point"]);
    for (key, path) in [
        ("access_evaluation_endpoint", "/access/v1/evaluation"),
        ("access_evaluations_endpoint", "/access/v1/evaluations"),
        ("search_action_endpoint", "/access/v1/search/action"),
        ("search_subject_endpoint", "/access/v1/search/subject"),
    ] {
        assert_eq!(meta[key], format!("{issuer}{path}"), "{key}");
    }

    let good = json!({
        "subject": {"type": "user", "id": "rick"},
        "action": {"name": "can_read_todos"},
        "resource": {"type": "todo", "id": "1"},
    });
    let anonymous = server
        .client
        .post(server.url("/access/v1/evaluation"))
        .json(&good)
        .send()
        .await
        .unwrap();
    expect_problem(anonymous, StatusCode::UNAUTHORIZED).await;
    let (_, read) = server
        .token(json!({"name": "reader", "scope": "read"}))
        .await;
    let r = post(&server, &read, "/access/v1/evaluation", &good).await;
    expect_problem(r, StatusCode::FORBIDDEN).await;
    // A PDP token asks for decisions and nothing else.
    let r = server
        .req_as(&pdp, Method::GET, "/api/v1/users")
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::FORBIDDEN).await;
    let r = post(&server, &pdp, "/access/v1/evaluation", &good).await;
    assert_eq!(expect_json(r, StatusCode::OK).await["decision"], true);

    let bad = [
        json!({"subject": {"type": "user", "id": "rick"}, "action": {"name": "can_fly"},
               "resource": {"type": "todo", "id": "1"}}),
        json!({"subject": {"type": "user", "id": "rick"}, "action": {"name": "can_read_todos"},
               "resource": {"type": "spaceship", "id": "1"}}),
        json!({"subject": {"type": "user", "id": "rick"}, "action": {"name": "can_update_todo"},
               "resource": {"type": "todo", "id": "1", "properties": {"ownerID": 42}}}),
        json!({"subject": {"type": "user", "id": "rick"}, "action": {"name": "can_read_todos"},
               "resource": {"type": "todo", "id": "1"}, "context": {"ip": "10.0.0.1"}}),
    ];
    for body in bad {
        let r = post(&server, &pdp, "/access/v1/evaluation", &body).await;
        expect_problem(r, StatusCode::BAD_REQUEST).await;
    }
    // Malformed and unknown fields are refused before any evaluation.
    let r = server
        .req_as(&pdp, Method::POST, "/access/v1/evaluation")
        .header("content-type", "application/json")
        .body("{\"subject\":")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    let mut extra = good.clone();
    extra["admin"] = json!(true);
    let r = post(&server, &pdp, "/access/v1/evaluation", &extra).await;
    assert!(r.status().is_client_error());
    // Batches over the advertised limit.
    let items: Vec<Value> = (0..257).map(|_| json!({})).collect();
    let mut batch = good.clone();
    batch["evaluations"] = json!(items);
    let r = post(&server, &pdp, "/access/v1/evaluations", &batch).await;
    expect_problem(r, StatusCode::BAD_REQUEST).await;

    // Every deny is in the audit log with its version.
    let denied = json!({
        "subject": {"type": "user", "id": "beth"},
        "action": {"name": "can_create_todo"},
        "resource": {"type": "todo", "id": "1"},
    });
    let r = post(&server, &pdp, "/access/v1/evaluation", &denied).await;
    assert_eq!(expect_json(r, StatusCode::OK).await["decision"], false);
    // Queued for the writer, not awaited by the answer: wait for it.
    let logged = server
        .wait_audit("&action=authz.decision&target=user:beth")
        .await;
    let deny = &logged[0];
    assert_eq!(deny["details"]["decision"], "deny");
    assert_eq!(deny["details"]["version"], 1);
}

#[tokio::test]
async fn policy_commands_test_push_diff_roll_back_and_document() {
    let server = TestServer::dev().await;
    let dir = todo_example().join("policy");
    let dir = dir.to_str().unwrap();
    let tested = cli_ok(&server, &["policy", "test", dir]);
    assert!(tested.contains("3 of 3 tests passed"), "{tested}");

    // A copy whose change breaks a test fails locally, and on push.
    let work = tempfile::tempdir().unwrap();
    let broken = work.path().join("broken");
    copy_dir(Path::new(dir), &broken);
    let policies = broken.join("policies/todo.cedar");
    let text = std::fs::read_to_string(&policies).unwrap();
    std::fs::write(
        &policies,
        text.replace(" && resource.ownerID == principal.email", ""),
    )
    .unwrap();
    let broken = broken.to_str().unwrap();
    let out = cli(&server, &["policy", "test", broken]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL  an editor may not update"));
    let out = cli(
        &server,
        &["policy", "push", broken, "-m", "open up updates"],
    );
    assert!(!out.status.success());

    assert!(cli_ok(&server, &["policy", "push", dir, "-m", "todo v1"]).contains("Version 1"));
    for (name, role) in [("morty", "editor"), ("rick", "admin")] {
        cli_ok(
            &server,
            &[
                "user",
                "create",
                name,
                "--email",
                &format!("{name}@the-citadel.com"),
            ],
        );
        cli_ok(&server, &["role", "create", role]);
        cli_ok(&server, &["role", "assign", role, name]);
    }

    // The impact of a change on given requests, grouped by policy.
    let requests = work.path().join("requests.json");
    let update = |owner: &str| {
        json!({"subject": {"type": "user", "id": "morty"}, "action": {"name": "can_update_todo"},
               "resource": {"type": "todo", "id": "1", "properties": {"ownerID": owner}}})
    };
    let body = json!([
        update("morty@the-citadel.com"),
        update("rick@the-citadel.com")
    ]);
    std::fs::write(&requests, body.to_string()).unwrap();
    let looser = work.path().join("looser");
    copy_dir(Path::new(dir), &looser);
    std::fs::remove_dir_all(looser.join("tests")).unwrap();
    let policies = looser.join("policies/todo.cedar");
    let text = std::fs::read_to_string(&policies).unwrap();
    std::fs::write(
        &policies,
        text.replace(" && resource.ownerID == principal.email", ""),
    )
    .unwrap();
    let diff = cli_ok(
        &server,
        &[
            "policy",
            "diff",
            looser.to_str().unwrap(),
            "--requests",
            requests.to_str().unwrap(),
        ],
    );
    assert!(
        diff.contains("2 requests against version 1: 1 would flip"),
        "{diff}"
    );
    assert!(diff.contains("1  editors-update-own"), "{diff}");
    assert!(
        diff.contains("deny -> allow  user:morty can_update_todo todo:1"),
        "{diff}"
    );

    cli_ok(
        &server,
        &[
            "policy",
            "push",
            looser.to_str().unwrap(),
            "-m",
            "editors update all",
        ],
    );
    let explain = work.path().join("explain.json");
    std::fs::write(&explain, update("rick@the-citadel.com").to_string()).unwrap();
    let explained: Value = serde_json::from_str(&cli_ok(
        &server,
        &["policy", "explain", explain.to_str().unwrap()],
    ))
    .unwrap();
    assert_eq!(explained["decision"], true);
    assert_eq!(explained["version"], 2);
    assert_eq!(
        explained["determining_policies"],
        json!(["editors-update-own"])
    );

    // Roll back: version 1 decides again.
    cli_ok(&server, &["policy", "activate", "1"]);
    let explained: Value = serde_json::from_str(&cli_ok(
        &server,
        &["policy", "explain", explain.to_str().unwrap()],
    ))
    .unwrap();
    assert_eq!(
        (explained["decision"].clone(), explained["version"].clone()),
        (json!(false), json!(1))
    );
    let versions = cli_ok(&server, &["policy", "versions"]);
    assert!(
        versions.contains("editors update all") && versions.contains("todo v1"),
        "{versions}"
    );

    // Documentation from the live version, with the annotations.
    let doc = cli_ok(&server, &["policy", "doc"]);
    assert!(doc.contains("version 1 (todo v1)"), "{doc}");
    assert!(doc.contains("### `editors-update-own` (permit)"), "{doc}");
    assert!(
        doc.contains("**description**: Editors change their own todos"),
        "{doc}"
    );
    assert!(doc.contains("**owner**: todo-team"), "{doc}");

    // Pull writes the files back; they test the same.
    let pulled = work.path().join("pulled");
    cli_ok(&server, &["policy", "pull", pulled.to_str().unwrap()]);
    assert!(
        cli_ok(&server, &["policy", "test", pulled.to_str().unwrap()])
            .contains("3 of 3 tests passed")
    );
    let r = server
        .req(Method::GET, "/api/v1/policy/versions/9")
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::NOT_FOUND).await;
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A bundle of one application, `Docs`, and the given policy files.
fn docs_bundle(policies: Value) -> Value {
    json!({
        "message": "docs",
        "bundle": {
            "schemas": {"Docs": "namespace Docs { entity Doc = { owner: String, classification: Long }; \
                action write appliesTo { principal: [Idplane::User], resource: [Doc] }; }"},
            "policies": policies,
        },
    })
}

#[tokio::test]
async fn policies_nested_too_deep_are_refused_and_the_deepest_allowed_decide() {
    let server = TestServer::dev().await;
    server
        .create("/api/v1/users", json!({"username": "alice"}))
        .await;
    let (_, pdp) = server.token(json!({"name": "pep", "scope": "pdp"})).await;
    let permit = |condition: String| {
        format!(
            "@id(\"p\") permit (principal, action == Docs::Action::\"write\", resource) when {{ {condition} }};"
        )
    };
    // Enough to overflow the parser's stack and abort the process before
    // the nesting bound existed.
    let refused = [
        permit(format!("{}true{}", "(".repeat(3_000), ")".repeat(3_000))),
        permit(vec!["true"; 20_000].join(" && ")),
        permit(format!("{}true", "!".repeat(100_000))),
    ];
    for text in refused {
        let body = docs_bundle(json!({"deep.cedar": text}));
        let r = post(&server, &server.root, "/api/v1/policy/versions", &body).await;
        let problem = expect_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(
            s(&problem["detail"]).contains("deep.cedar: line 1: nested too deeply"),
            "{problem}"
        );
        let health = server.req(Method::GET, "/healthz").send().await.unwrap();
        assert_eq!(health.status(), StatusCode::OK);
    }

    let conditions: Vec<String> = (0..200)
        .map(|i| format!("resource.owner != \"nobody-{i}\""))
        .collect();
    let deepest = docs_bundle(json!({
        "parens.cedar": permit(format!("{}resource.owner == \"deep\"{}", "(".repeat(200), ")".repeat(200))),
        "chain.cedar": permit(format!("resource.classification == 1 && {}", conditions.join(" && "))).replace("\"p\"", "\"chain\""),
    }));
    let r = post(&server, &server.root, "/api/v1/policy/versions", &deepest).await;
    expect_json(r, StatusCode::CREATED).await;
    for (owner, classification, allowed) in [
        ("deep", 2, true),
        ("carol", 1, true),
        ("carol", 2, false),
        ("nobody-199", 1, false),
    ] {
        let request = json!({
            "subject": {"type": "user", "id": "alice"},
            "action": {"name": "write"},
            "resource": {"type": "Doc", "id": "d", "properties": {"owner": owner, "classification": classification}},
        });
        let r = post(&server, &pdp, "/access/v1/evaluation", &request).await;
        let answer = expect_json(r, StatusCode::OK).await;
        let r = post(&server, &server.root, "/api/v1/policy/explain", &request).await;
        let explained = expect_json(r, StatusCode::OK).await;
        assert_eq!(explained["errors"], json!([]), "{explained}");
        assert_eq!(
            answer["decision"], allowed,
            "{owner} {classification}: {answer}"
        );
    }
}
