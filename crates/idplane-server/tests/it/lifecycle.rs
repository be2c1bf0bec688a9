//! Lifecycle against the real binary: the deprovision route, and the job
//! loop of a running server deprovisioning a contractor whose end date
//! passed while no server ran.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{TestServer, expect_json, s};

#[tokio::test]
async fn the_deprovision_route_removes_access_and_records_it() {
    let srv = TestServer::dev().await;
    let boss = srv
        .create("/api/v1/users", json!({"username": "boss"}))
        .await;
    let leaver = srv
        .create(
            "/api/v1/users",
            json!({"username": "leaver", "attributes": {"manager": boss["id"]}}),
        )
        .await;
    let group = srv.create("/api/v1/groups", json!({"name": "eng"})).await;
    srv.create(
        &format!("/api/v1/groups/{}/members", s(&group["id"])),
        json!({"member": "leaver"}),
    )
    .await;
    let agent = srv
        .create(
            "/api/v1/agents",
            json!({"name": "bot", "owner": "leaver", "purpose": "triage"}),
        )
        .await;
    let id = s(&leaver["id"]);
    for _ in 0..2 {
        let r = srv
            .req(Method::POST, &format!("/api/v1/users/{id}/deprovision"))
            .send()
            .await
            .unwrap();
        let gone = expect_json(r, StatusCode::OK).await;
        assert_eq!(gone["status"], "deprovisioned");
        assert_eq!(gone["active"], false);
    }
    let members = srv
        .get_json(&format!("/api/v1/groups/{}/members", s(&group["id"])))
        .await;
    assert_eq!(members.as_array().unwrap().len(), 0);
    let agent = srv
        .get_json(&format!("/api/v1/agents/{}", s(&agent["id"])))
        .await;
    assert_eq!(agent["owner_id"], boss["id"]);
    assert_eq!(agent["attributes"]["review_required"], true);
    let record = srv
        .get_json(&format!("/api/v1/users/{id}/leaver-record"))
        .await;
    assert_eq!(record["cause"], "admin");
    assert_eq!(record["removed"]["memberships"][0]["group"], "eng");
    let events = srv.audit_query("&action=user.deprovision").await;
    assert_eq!(events.len(), 1, "deprovisioning twice is one leaver");
    // An unknown user is not found.
    let r = srv
        .req(
            Method::POST,
            "/api/v1/users/0190a0a0-0000-7000-8000-000000000000/deprovision",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_job_loop_catches_up_on_an_end_date_passed_while_down() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut srv = TestServer::start(&data, true).await;
    let boss = srv
        .create(
            "/api/v1/users",
            json!({"username": "boss", "email": "boss@example.com"}),
        )
        .await;
    // The server's clock, not the test's: two seconds after it made boss.
    let now: jiff::Timestamp = s(&boss["created_at"]).parse().unwrap();
    let end = now + jiff::SignedDuration::from_secs(2);
    let temp = srv
        .create(
            "/api/v1/users",
            json!({"username": "temp", "user_type": "contractor", "end_date": end.to_string(), "sponsor": "boss"}),
        )
        .await;
    let jobs = srv
        .get_json(&format!(
            "/api/v1/jobs?subject={}&state=pending",
            s(&temp["id"])
        ))
        .await;
    assert_eq!(jobs["items"][0]["kind"], "user.end");
    assert_eq!(srv.terminate().await.code(), Some(0));
    drop(srv);

    // The end date passes while no server runs.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let srv = TestServer::start(&data, true).await;
    let path = format!("/api/v1/users/{}", s(&temp["id"]));
    let mut status = String::new();
    for _ in 0..100 {
        status = s(&srv.get_json(&path).await["status"]);
        if status == "deprovisioned" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "deprovisioned", "{}", srv.stderr());
    let events = srv.audit_query("&action=user.deprovision").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["details"]["cause"], "contractor_end");
    assert_eq!(events[0]["actor"], "system");
    let done = srv
        .get_json(&format!(
            "/api/v1/jobs?subject={}&kind=user.end",
            s(&temp["id"])
        ))
        .await;
    assert_eq!(done["items"][0]["state"], "done");
}
