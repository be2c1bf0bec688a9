//! Outbound provisioning end to end: two real servers, the downstream one
//! playing the connected application (its /scim/v2 with a `scim` token),
//! the upstream one pushing to it from its outbox.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestServer, expect_json, idplane, s};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// How long a change may take to reach the application: the job loop runs
/// every 5 s.
const DELIVERY: Duration = Duration::from_secs(15);
/// After an outage: the first retry waits out the scheduler's 30 s back-off.
const AFTER_OUTAGE: Duration = Duration::from_secs(60);

/// The CLI against `server`, as root.
fn cli(server: &TestServer, args: &[&str]) -> String {
    let out = idplane()
        .env("IDPLANE_SERVER", &server.base)
        .env("IDPLANE_TOKEN", &server.root)
        .args(args)
        .output()
        .expect("run idplane");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "idplane {args:?} failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The downstream user whose externalId is `id`, if it has one.
async fn remote_user(down: &TestServer, token: &str, id: &str) -> Option<Value> {
    let filter = format!("externalId eq \"{id}\"");
    let r = down
        .req_as(token, Method::GET, "/scim/v2/Users")
        .query(&[("filter", filter)])
        .send()
        .await
        .expect("send");
    let list = expect_json(r, StatusCode::OK).await;
    list["Resources"]
        .as_array()
        .and_then(|r| r.first())
        .cloned()
}

async fn remote_group(down: &TestServer, token: &str, id: &str) -> Option<Value> {
    let filter = format!("externalId eq \"{id}\"");
    let r = down
        .req_as(token, Method::GET, "/scim/v2/Groups")
        .query(&[("filter", filter)])
        .send()
        .await
        .expect("send");
    let list = expect_json(r, StatusCode::OK).await;
    list["Resources"]
        .as_array()
        .and_then(|r| r.first())
        .cloned()
}

/// Polls `probe` until it returns `Some`, for at most `bound`.
async fn eventually<F, Fut, T>(bound: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {bound:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn patch(server: &TestServer, path: &str, body: Value) -> Value {
    let r = server
        .req(Method::PATCH, path)
        .json(&body)
        .send()
        .await
        .expect("send");
    expect_json(r, StatusCode::OK).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_groups_reach_the_application_through_outages_and_drift() {
    let mut down = TestServer::dev().await;
    let (_, scim) = down
        .token(json!({"name": "upstream idplane", "scope": "scim"}))
        .await;
    let up = TestServer::dev().await;

    // Connect the application with the CLI; the token comes from a file.
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{scim}\n")).unwrap();
    let department = format!("{ENTERPRISE}:department=attributes.department");
    cli(
        &up,
        &[
            "provisioning",
            "target",
            "create",
            "crm",
            "--url",
            &format!("{}/scim/v2", down.base),
            "--token-file",
            token_file.to_str().unwrap(),
            "--map",
            "userName=userName",
            "--map",
            "displayName=displayName",
            "--map",
            "emails=email",
            "--map",
            "active=active",
            "--map",
            &department,
        ],
    );
    let listed = cli(&up, &["provisioning", "target", "list"]);
    assert!(listed.contains("crm"), "{listed}");

    // Joiners and a group upstream.
    let ada = up
        .create(
            "/api/v1/users",
            json!({"username": "ada", "display_name": "Ada Lovelace",
                   "email": "ada@example.com", "attributes": {"department": "R&D"}}),
        )
        .await;
    let bob = up.create("/api/v1/users", json!({"username": "bob"})).await;
    let eng = up.create("/api/v1/groups", json!({"name": "eng"})).await;
    let (ada_id, bob_id, eng_id) = (s(&ada["id"]), s(&bob["id"]), s(&eng["id"]));
    up.create(
        &format!("/api/v1/groups/{eng_id}/members"),
        json!({"member": "ada"}),
    )
    .await;

    let remote_ada = eventually(DELIVERY, "ada pushed", || {
        remote_user(&down, &scim, &ada_id)
    })
    .await;
    assert_eq!(remote_ada["userName"], "ada");
    assert_eq!(remote_ada["displayName"], "Ada Lovelace");
    assert_eq!(remote_ada["emails"][0]["value"], "ada@example.com");
    assert_eq!(remote_ada[ENTERPRISE]["department"], "R&D");
    assert_eq!(remote_ada["active"], true);
    let ada_remote_id = s(&remote_ada["id"]);
    eventually(DELIVERY, "bob pushed", || {
        remote_user(&down, &scim, &bob_id)
    })
    .await;
    // The group names its member by the application's id for her.
    eventually(DELIVERY, "eng pushed with ada", || async {
        let g = remote_group(&down, &scim, &eng_id).await?;
        let members = g["members"].as_array()?;
        (members.len() == 1 && members[0]["value"] == ada_remote_id.as_str()).then_some(())
    })
    .await;

    // An update, and a leaver.
    patch(
        &up,
        &format!("/api/v1/users/{ada_id}"),
        json!({"display_name": "Ada King"}),
    )
    .await;
    let r = up
        .req(Method::POST, &format!("/api/v1/users/{bob_id}/deprovision"))
        .send()
        .await
        .unwrap();
    expect_json(r, StatusCode::OK).await;
    eventually(DELIVERY, "ada updated", || async {
        let u = remote_user(&down, &scim, &ada_id).await?;
        (u["displayName"] == "Ada King").then_some(())
    })
    .await;
    eventually(DELIVERY, "bob deactivated", || async {
        let u = remote_user(&down, &scim, &bob_id).await?;
        (u["active"] == false).then_some(())
    })
    .await;
    // The group lost nobody: ada is still its only member downstream.
    let g = remote_group(&down, &scim, &eng_id).await.unwrap();
    assert_eq!(g["members"].as_array().unwrap().len(), 1, "{g}");

    // The application goes down: the push fails and waits to be retried.
    down.terminate().await;
    patch(
        &up,
        &format!("/api/v1/users/{ada_id}"),
        json!({"display_name": "Ada, Countess of Lovelace"}),
    )
    .await;
    let key = ada_id.clone();
    let failed = eventually(DELIVERY, "the push failed once", || async {
        let jobs = up
            .get_json("/api/v1/jobs?kind=scim.push&state=pending")
            .await;
        jobs["items"]
            .as_array()?
            .iter()
            .find(|j| s(&j["key"]).ends_with(&key) && j["attempts"].as_i64() >= Some(1))
            .cloned()
    })
    .await;
    assert!(
        s(&failed["last_error"]).contains("could not be reached"),
        "{failed}"
    );
    let failures = up.audit_query("&action=provisioning.push").await;
    assert!(
        failures.iter().any(|e| e["details"]["outcome"] == "failed"),
        "a failed push is audited"
    );

    // Back on the same port and data: the backlog is delivered.
    down.restart().await;
    eventually(AFTER_OUTAGE, "the backlog delivered", || async {
        let u = remote_user(&down, &scim, &ada_id).await?;
        (u["displayName"] == "Ada, Countess of Lovelace").then_some(())
    })
    .await;

    // Someone edits the application by hand, and adds a user of their own.
    let r = down
        .req_as(
            &scim,
            Method::PATCH,
            &format!("/scim/v2/Users/{ada_remote_id}"),
        )
        .header("content-type", "application/scim+json")
        .body(
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "displayName", "value": "Hacked"}],
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let r = down
        .req_as(&scim, Method::POST, "/scim/v2/Users")
        .header("content-type", "application/scim+json")
        .body(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "mallory"})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    let report: Value =
        serde_json::from_str(&cli(&up, &["provisioning", "reconcile", "crm", "--json"])).unwrap();
    assert_eq!(report["missing"], json!([]), "{report}");
    let different = report["different"].as_array().unwrap();
    assert_eq!(different.len(), 1, "{report}");
    assert_eq!(different[0]["user_name"], "ada");
    assert_eq!(different[0]["attributes"], json!(["displayName"]));
    let unknown = report["unknown"].as_array().unwrap();
    assert!(
        unknown.iter().any(|u| u["user_name"] == "mallory"),
        "{report}"
    );
    assert_eq!(report["pushes_scheduled"], 0);

    let fixed = cli(&up, &["provisioning", "reconcile", "crm", "--fix"]);
    assert!(fixed.contains("Scheduled 1 push"), "{fixed}");
    eventually(DELIVERY, "the drift repaired", || async {
        let u = remote_user(&down, &scim, &ada_id).await?;
        (u["displayName"] == "Ada, Countess of Lovelace").then_some(())
    })
    .await;
    let again: Value =
        serde_json::from_str(&cli(&up, &["provisioning", "reconcile", "crm", "--json"])).unwrap();
    assert_eq!(again["different"], json!([]), "{again}");
    // Mallory is reported, never touched.
    assert_eq!(again["unknown"].as_array().unwrap().len(), 1, "{again}");

    // Deletions upstream delete the copies, by the remote ids kept.
    for path in [
        format!("/api/v1/groups/{eng_id}"),
        format!("/api/v1/users/{bob_id}"),
    ] {
        let r = up.req(Method::DELETE, &path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{path}");
    }
    eventually(DELIVERY, "eng and bob deleted", || async {
        let gone = remote_group(&down, &scim, &eng_id).await.is_none()
            && remote_user(&down, &scim, &bob_id).await.is_none();
        gone.then_some(())
    })
    .await;

    // Every push is audited with its outcome; the token is nowhere.
    let pushes = up.audit_query("&action=provisioning.push").await;
    for outcome in ["created", "updated", "deactivated", "deleted", "failed"] {
        assert!(
            pushes.iter().any(|e| e["details"]["outcome"] == outcome),
            "no {outcome} push audited"
        );
    }
    assert!(
        !up.audit_query("&action=provisioning.reconcile")
            .await
            .is_empty()
    );
    let seen = [
        up.get_json("/api/v1/provisioning/targets")
            .await
            .to_string(),
        up.get_json("/api/v1/provisioning/targets/crm")
            .await
            .to_string(),
        serde_json::to_string(&up.audit().await).unwrap(),
        up.get_json("/api/v1/jobs?kind=scim.push").await.to_string(),
        up.stderr(),
        listed,
    ];
    for text in seen {
        assert!(!text.contains(&scim), "the target token leaked: {text}");
    }
}

#[tokio::test]
async fn targets_are_checked_and_refusals_dead_letter() {
    let up = TestServer::dev().await;
    for (body, field) in [
        (
            json!({"name": "x", "base_url": "http://app.example/scim/v2", "token": "t"}),
            "base_url",
        ),
        (
            json!({"name": "x", "base_url": "https://app.example/scim/v2", "token": "a b"}),
            "token",
        ),
        (
            json!({"name": "x", "base_url": "https://app.example/scim/v2", "token": "t",
                   "mapping": {"displayName": "displayName"}}),
            "mapping",
        ),
    ] {
        let r = up
            .req(Method::POST, "/api/v1/provisioning/targets")
            .json(&body)
            .send()
            .await
            .unwrap();
        let p = expect_json(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(p.to_string().contains(field), "{p}");
    }

    // An application that refuses what it is sent (here: an endpoint that
    // is not SCIM at all answers 401 to idplane's token): dead at once,
    // with the refusal kept.
    let other = TestServer::dev().await;
    let target = up
        .create(
            "/api/v1/provisioning/targets",
            json!({"name": "Broken", "base_url": format!("{}/scim/v2", other.base),
                   "token": "not-a-valid-token", "push_groups": false}),
        )
        .await;
    assert!(target.get("token").is_none(), "{target}");
    let carol = up
        .create("/api/v1/users", json!({"username": "carol"}))
        .await;
    let carol_id = s(&carol["id"]);
    let dead = eventually(DELIVERY, "the push dead-lettered", || async {
        let jobs = up.get_json("/api/v1/jobs?kind=scim.push&state=dead").await;
        jobs["items"]
            .as_array()?
            .iter()
            .find(|j| s(&j["key"]).ends_with(&carol_id))
            .cloned()
    })
    .await;
    assert_eq!(dead["attempts"], 1, "{dead}");
    assert!(s(&dead["last_error"]).contains("401"), "{dead}");
    let rejected = up.audit_query("&action=provisioning.push").await;
    assert!(
        rejected
            .iter()
            .any(|e| e["details"]["outcome"] == "rejected"),
        "{rejected:?}"
    );

    // Disconnecting keeps nothing pending and is audited.
    cli(&up, &["provisioning", "target", "delete", "broken"]);
    let r = up
        .req(Method::GET, "/api/v1/provisioning/targets/broken")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(
        !up.audit_query("&action=provisioning.target.delete")
            .await
            .is_empty()
    );
}
