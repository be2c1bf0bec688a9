//! Effective access through roles assigned to nested groups.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestServer, expect_json, expect_problem, s};

fn entitlements(access: &Value) -> Vec<(String, String)> {
    let mut list: Vec<(String, String)> = access["entitlements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (s(&e["resource"]), s(&e["permission"])))
        .collect();
    list.sort();
    list
}

#[tokio::test]
async fn role_on_a_group_reaches_members_of_nested_groups() {
    let srv = TestServer::dev().await;
    let alice = srv
        .create("/api/v1/users", json!({"username": "alice"}))
        .await;
    let bob = srv
        .create("/api/v1/users", json!({"username": "bob"}))
        .await;
    let eng = srv.create("/api/v1/groups", json!({"name": "eng"})).await;
    let backend = srv
        .create("/api/v1/groups", json!({"name": "backend"}))
        .await;
    srv.create(
        &format!("/api/v1/groups/{}/members", s(&eng["id"])),
        json!({"member": "group:backend"}),
    )
    .await;
    srv.create(
        &format!("/api/v1/groups/{}/members", s(&backend["id"])),
        json!({"member": "alice"}),
    )
    .await;
    srv.create(
        "/api/v1/roles",
        json!({"name": "payroll-reader", "entitlements": [{"resource": "payroll", "permission": "read"}]}),
    )
    .await;
    srv.create(
        "/api/v1/role-assignments",
        json!({"role": "payroll-reader", "principal": "group:eng"}),
    )
    .await;

    let alice_path = format!("/api/v1/principals/{}/access", s(&alice["id"]));
    let access = srv.get_json(&alice_path).await;
    assert_eq!(access["principal_id"], alice["id"]);
    assert_eq!(access["active"], true);
    assert_eq!(
        entitlements(&access),
        [("payroll".to_owned(), "read".to_owned())]
    );
    let roles = access["roles"].as_array().unwrap();
    assert_eq!(roles.len(), 1, "{access}");
    assert_eq!(roles[0]["role_name"], "payroll-reader");
    assert_eq!(roles[0]["via"], eng["id"]);
    // Also under the explicit tenant path.
    let again = srv
        .get_json(&format!(
            "/api/v1/tenants/default/principals/{}/access",
            s(&alice["id"])
        ))
        .await;
    assert_eq!(entitlements(&again), entitlements(&access));

    // A non-member holds nothing; the group itself holds the role directly.
    let bob_access = srv
        .get_json(&format!("/api/v1/principals/{}/access", s(&bob["id"])))
        .await;
    assert!(entitlements(&bob_access).is_empty(), "{bob_access}");
    let eng_access = srv
        .get_json(&format!("/api/v1/principals/{}/access", s(&eng["id"])))
        .await;
    assert_eq!(eng_access["kind"], "group");
    assert_eq!(entitlements(&eng_access).len(), 1);

    // Suspended: no entitlements, no roles, inactive.
    let r = srv
        .req(Method::PATCH, &format!("/api/v1/users/{}", s(&alice["id"])))
        .json(&json!({"status": "suspended"}))
        .send()
        .await
        .unwrap();
    expect_json(r, StatusCode::OK).await;
    let access = srv.get_json(&alice_path).await;
    assert_eq!(access["active"], false);
    assert!(entitlements(&access).is_empty(), "{access}");
    assert!(access["roles"].as_array().unwrap().is_empty(), "{access}");

    // Reactivated: the grant is back (nothing was deleted).
    let r = srv
        .req(Method::PATCH, &format!("/api/v1/users/{}", s(&alice["id"])))
        .json(&json!({"status": "active"}))
        .send()
        .await
        .unwrap();
    expect_json(r, StatusCode::OK).await;
    assert_eq!(entitlements(&srv.get_json(&alice_path).await).len(), 1);

    // Unknown principal.
    let r = srv
        .req(
            Method::GET,
            "/api/v1/principals/01900000-0000-7000-8000-000000000000/access",
        )
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::NOT_FOUND).await;
}
