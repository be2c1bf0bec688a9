//! The audit log over HTTP, and its offline verification after tampering.

use std::path::Path;
use std::process::Output;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;

use crate::support::{TestServer, expect_json, idplane, s};

/// Sends `req` with `x-request-id: rid`, expecting `status`; checks the id
/// comes back and returns the JSON body (`Null` for empty bodies).
async fn tagged(req: RequestBuilder, rid: &str, status: StatusCode) -> Value {
    let r = req.header("x-request-id", rid).send().await.unwrap();
    let echoed = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(echoed.as_deref(), Some(rid), "x-request-id round trip");
    if status == StatusCode::NO_CONTENT {
        assert_eq!(r.status(), status);
        Value::Null
    } else {
        expect_json(r, status).await
    }
}

fn verify(data: &Path, checkpoint: Option<&Path>) -> Output {
    let mut cmd = idplane();
    cmd.arg("audit").arg("verify").arg("--data").arg(data);
    if let Some(cp) = checkpoint {
        cmd.arg("--checkpoint").arg(cp);
    }
    cmd.output().expect("run idplane audit verify")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn sqlite(data: &Path) -> sqlx::SqliteConnection {
    let url = format!("sqlite://{}?mode=rw", data.join("idplane.db").display());
    sqlx::SqliteConnection::connect(&url)
        .await
        .expect("open the database")
}

#[tokio::test]
async fn every_change_is_audited_and_tampering_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut srv = TestServer::start(&data, true).await;
    let created = StatusCode::CREATED;
    let ok = StatusCode::OK;
    let gone = StatusCode::NO_CONTENT;

    // (request id, action, target) of every change made below.
    let mut expected: Vec<(String, String, String)> = Vec::new();
    let mut expect = |rid: &str, action: &str, target: String| {
        expected.push((rid.into(), action.into(), target))
    };

    let token = tagged(
        srv.req(Method::POST, "/api/v1/tokens")
            .json(&json!({"name": "ops", "scope": "admin"})),
        "rid-01",
        created,
    )
    .await;
    let token_id = s(&token["id"]);
    expect("rid-01", "token.create", format!("token:{token_id}"));
    let user = tagged(
        srv.req(Method::POST, "/api/v1/users")
            .json(&json!({"username": "alice"})),
        "rid-02",
        created,
    )
    .await;
    let uid = s(&user["id"]);
    expect("rid-02", "user.create", format!("user:{uid}"));
    tagged(
        srv.req(Method::PATCH, &format!("/api/v1/users/{uid}"))
            .json(&json!({"display_name": "A"})),
        "rid-03",
        ok,
    )
    .await;
    expect("rid-03", "user.update", format!("user:{uid}"));
    let group = tagged(
        srv.req(Method::POST, "/api/v1/groups")
            .json(&json!({"name": "eng"})),
        "rid-04",
        created,
    )
    .await;
    let gid = s(&group["id"]);
    expect("rid-04", "group.create", format!("group:{gid}"));
    tagged(
        srv.req(Method::POST, &format!("/api/v1/groups/{gid}/members"))
            .json(&json!({"member": "alice"})),
        "rid-05",
        created,
    )
    .await;
    expect("rid-05", "group.member.add", format!("group:{gid}"));
    let role = tagged(
        srv.req(Method::POST, "/api/v1/roles")
            .json(&json!({"name": "r"})),
        "rid-06",
        created,
    )
    .await;
    let role_id = s(&role["id"]);
    expect("rid-06", "role.create", format!("role:{role_id}"));
    tagged(
        srv.req(Method::PATCH, "/api/v1/roles/r")
            .json(&json!({"description": "d"})),
        "rid-07",
        ok,
    )
    .await;
    expect("rid-07", "role.update", format!("role:{role_id}"));
    let a = tagged(
        srv.req(Method::POST, "/api/v1/role-assignments")
            .json(&json!({"role": "r", "principal": "group:eng"})),
        "rid-08",
        created,
    )
    .await;
    expect("rid-08", "role.assign", format!("group:{gid}"));
    tagged(
        srv.req(
            Method::DELETE,
            &format!("/api/v1/role-assignments/{}", s(&a["id"])),
        ),
        "rid-09",
        gone,
    )
    .await;
    expect("rid-09", "role.unassign", format!("principal:{gid}"));
    let sa = tagged(
        srv.req(Method::POST, "/api/v1/service-accounts")
            .json(&json!({"name": "ci", "owner": "alice", "purpose": "builds"})),
        "rid-10",
        created,
    )
    .await;
    expect(
        "rid-10",
        "service_account.create",
        format!("service_account:{}", s(&sa["id"])),
    );
    let agent = tagged(
        srv.req(Method::POST, "/api/v1/agents")
            .json(&json!({"name": "bot", "owner": "alice", "purpose": "triage"})),
        "rid-11",
        created,
    )
    .await;
    let agent_target = format!("agent:{}", s(&agent["id"]));
    expect("rid-11", "agent.create", agent_target.clone());
    tagged(
        srv.req(
            Method::DELETE,
            &format!("/api/v1/agents/{}", s(&agent["id"])),
        ),
        "rid-12",
        gone,
    )
    .await;
    expect("rid-12", "agent.delete", agent_target);
    tagged(
        srv.req(
            Method::DELETE,
            &format!("/api/v1/groups/{gid}/members/alice"),
        ),
        "rid-13",
        gone,
    )
    .await;
    expect("rid-13", "group.member.remove", format!("group:{gid}"));
    tagged(srv.req(Method::DELETE, "/api/v1/roles/r"), "rid-14", gone).await;
    expect("rid-14", "role.delete", format!("role:{role_id}"));
    tagged(
        srv.req(Method::DELETE, &format!("/api/v1/groups/{gid}")),
        "rid-15",
        gone,
    )
    .await;
    expect("rid-15", "group.delete", format!("group:{gid}"));
    // By the admin token rather than root.
    let secret = s(&token["secret"]);
    let g2 = tagged(
        srv.req_as(&secret, Method::POST, "/api/v1/groups")
            .json(&json!({"name": "ops"})),
        "rid-16",
        created,
    )
    .await;
    let g2_target = format!("group:{}", s(&g2["id"]));
    // Without a request id, the server assigns one and records it.
    let r = srv
        .req(Method::POST, "/api/v1/groups")
        .json(&json!({"name": "auto"}))
        .send()
        .await
        .unwrap();
    let generated = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap()
        .to_owned();
    let auto = expect_json(r, created).await;
    // A tenant's own chain holds its creation.
    tagged(
        srv.req(Method::POST, "/api/v1/tenants")
            .json(&json!({"name": "acme"})),
        "rid-17",
        created,
    )
    .await;

    let events = srv.audit().await;
    for (rid, action, target) in &expected {
        let matching: Vec<&Value> = events
            .iter()
            .filter(|e| e["request_id"] == rid.as_str())
            .collect();
        assert_eq!(matching.len(), 1, "{rid}: {matching:?}");
        let e = matching[0];
        assert_eq!(e["action"], action.as_str(), "{rid}: {e}");
        assert_eq!(e["target"], target.as_str(), "{rid}: {e}");
        assert_eq!(e["actor"], "root", "{rid}: {e}");
        assert_eq!(e["outcome"], "success", "{rid}: {e}");
        assert_eq!(e["source_ip"], "127.0.0.1", "{rid}: {e}");
    }
    let by_token: Vec<&Value> = events
        .iter()
        .filter(|e| e["request_id"] == "rid-16")
        .collect();
    assert_eq!(by_token.len(), 1);
    assert_eq!(by_token[0]["actor"], format!("token:{token_id}"));
    assert_eq!(by_token[0]["target"], g2_target);
    let auto_event = events
        .iter()
        .find(|e| e["request_id"] == generated.as_str())
        .expect("generated request id");
    assert_eq!(auto_event["target"], format!("group:{}", s(&auto["id"])));
    assert!(
        !events.iter().any(|e| e["request_id"] == "rid-17"),
        "tenant.create is in acme's chain"
    );
    let acme = srv.get_json("/api/v1/tenants/acme/audit").await;
    assert_eq!(acme["items"][0]["action"], "tenant.create");
    assert_eq!(acme["items"][0]["seq"], 1);
    assert_eq!(acme["items"][0]["request_id"], "rid-17");
    // The chain as served links up.
    for pair in events.windows(2) {
        assert_eq!(
            pair[1]["seq"].as_i64().unwrap(),
            pair[0]["seq"].as_i64().unwrap() + 1
        );
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
    }

    // Filters.
    let creates = srv.audit_query("&action=user.create").await;
    assert_eq!(creates.len(), 1);
    assert_eq!(creates[0]["target"], format!("user:{uid}"));
    let by_actor = srv.audit_query(&format!("&actor=token:{token_id}")).await;
    assert_eq!(by_actor.len(), 1, "{by_actor:?}");
    assert_eq!(by_actor[0]["request_id"], "rid-16");
    let root_groups = srv.audit_query("&actor=root&action=group.create").await;
    assert_eq!(root_groups.len(), 2, "{root_groups:?}");
    let by_target = srv.audit_query(&format!("&target=user:{uid}")).await;
    assert_eq!(by_target.len(), 2);
    let page = srv.get_json("/api/v1/audit?limit=2").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let next = page["next_cursor"].as_i64().expect("a next page");
    let page2 = srv
        .get_json(&format!("/api/v1/audit?limit=2&cursor={next}"))
        .await;
    assert_eq!(page2["items"][0]["seq"].as_i64().unwrap(), next + 1);

    // The checkpoint covers the head; keep it outside the data directory.
    let checkpoint = srv.get_json("/api/v1/audit/checkpoint").await;
    let last = events.last().unwrap();
    let head = srv.audit().await.last().unwrap().clone();
    assert_eq!(head["seq"], last["seq"], "reading changed nothing");
    assert_eq!(checkpoint["seq"], last["seq"], "{checkpoint}");
    assert_eq!(checkpoint["hash"], last["hash"], "{checkpoint}");
    assert!(
        checkpoint["signature"]
            .as_str()
            .is_some_and(|sig| sig.len() > 40),
        "{checkpoint}"
    );
    let cp_file = dir.path().join("checkpoint.json");
    std::fs::write(&cp_file, serde_json::to_vec(&checkpoint).unwrap()).unwrap();
    let default_tenant = s(&srv.get_json("/api/v1/tenants/default").await["id"]);
    assert_eq!(checkpoint["tenant_id"], default_tenant.as_str());

    let status = srv.terminate().await;
    assert!(status.success(), "exit status {status}: {}", srv.stderr());

    // Intact.
    let out = verify(&data, None);
    assert!(
        out.status.success(),
        "verify failed on an intact log: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("verified"),
        "{}",
        text(&out.stdout)
    );
    let out = verify(&data, Some(&cp_file));
    assert!(
        out.status.success(),
        "verify --checkpoint failed on an intact log: {}",
        text(&out.stderr)
    );

    // A forged checkpoint (claims a different head) is refused.
    let mut forged = checkpoint.clone();
    forged["seq"] = json!(last["seq"].as_i64().unwrap() - 1);
    let forged_file = dir.path().join("forged.json");
    std::fs::write(&forged_file, serde_json::to_vec(&forged).unwrap()).unwrap();
    let out = verify(&data, Some(&forged_file));
    assert!(!out.status.success(), "verify accepted a forged checkpoint");
    assert!(
        text(&out.stderr).contains("signature"),
        "{}",
        text(&out.stderr)
    );

    // Tamper: rewrite who did something.
    let victim = creates[0]["seq"].as_i64().unwrap();
    let mut db = sqlite(&data).await;
    let original: String =
        sqlx::query_scalar("SELECT actor FROM audit_events WHERE tenant_id = $1 AND seq = $2")
            .bind(&default_tenant)
            .bind(victim)
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(original, "root");
    let changed =
        sqlx::query("UPDATE audit_events SET actor = 'mallory' WHERE tenant_id = $1 AND seq = $2")
            .bind(&default_tenant)
            .bind(victim)
            .execute(&mut db)
            .await
            .unwrap();
    assert_eq!(changed.rows_affected(), 1);
    db.close().await.unwrap();
    let out = verify(&data, None);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "verify passed an altered record");
    assert!(
        err.contains(&format!("record {victim}")),
        "names the record: {err}"
    );
    assert!(err.lines().count() == 1, "one line: {err}");

    // Put it back: intact again.
    let mut db = sqlite(&data).await;
    sqlx::query("UPDATE audit_events SET actor = $1 WHERE tenant_id = $2 AND seq = $3")
        .bind(&original)
        .bind(&default_tenant)
        .bind(victim)
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    let out = verify(&data, Some(&cp_file));
    assert!(
        out.status.success(),
        "verify after restoring: {}",
        text(&out.stderr)
    );

    // Tamper: cut off the newest record and move the head back over it.
    let last_seq = last["seq"].as_i64().unwrap();
    let mut db = sqlite(&data).await;
    let deleted = sqlx::query("DELETE FROM audit_events WHERE tenant_id = $1 AND seq = $2")
        .bind(&default_tenant)
        .bind(last_seq)
        .execute(&mut db)
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 1);
    sqlx::query(
        "UPDATE audit_heads SET seq = $1, hash = (SELECT hash FROM audit_events WHERE tenant_id = $2 AND seq = $1) \
         WHERE tenant_id = $2",
    )
    .bind(last_seq - 1)
    .bind(&default_tenant)
    .execute(&mut db)
    .await
    .unwrap();
    db.close().await.unwrap();
    // The chain alone cannot see a clean truncation; the checkpoint can.
    let out = verify(&data, None);
    assert!(
        out.status.success(),
        "a consistently truncated chain still links: {}",
        text(&out.stderr)
    );
    let out = verify(&data, Some(&cp_file));
    let err = text(&out.stderr);
    assert!(
        !out.status.success(),
        "verify --checkpoint passed a truncated log"
    );
    assert!(
        err.contains(&last_seq.to_string()),
        "names the checkpoint record: {err}"
    );
}

#[tokio::test]
async fn an_export_whose_reader_goes_away_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut srv = TestServer::start(&data, true).await;
    srv.create(
        "/api/v1/tenants/default/users",
        json!({"username": "piper"}),
    )
    .await;
    assert!(srv.terminate().await.success());

    // As `idplane audit export | head -0`: the pipe is closed before the
    // first write, so every write fails with EPIPE.
    let mut child = idplane()
        .args(["audit", "export", "--data"])
        .arg(&data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
}
