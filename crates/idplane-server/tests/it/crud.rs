//! Happy paths of the admin API: create, read, update, delete, list.

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestServer, etag, expect_json, expect_problem, s};

#[tokio::test]
async fn tenants_crud() {
    let srv = TestServer::dev().await;
    let created = srv
        .create(
            "/api/v1/tenants",
            json!({"name": "Acme", "display_name": "Acme Inc."}),
        )
        .await;
    assert_eq!(created["name"], "acme", "tenant names are lowercased");
    assert_eq!(created["display_name"], "Acme Inc.");
    assert_eq!(created["version"], 1);

    let r = srv
        .req(Method::GET, "/api/v1/tenants/acme")
        .send()
        .await
        .unwrap();
    assert_eq!(etag(&r), "\"1\"");
    let got = expect_json(r, StatusCode::OK).await;
    assert_eq!(got["id"], created["id"]);

    let list = srv.get_json("/api/v1/tenants").await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"acme") && names.contains(&"default"),
        "{names:?}"
    );

    // Tenants paginate by name.
    for name in ["beta", "gamma", "delta"] {
        srv.create("/api/v1/tenants", json!({"name": name})).await;
    }
    let (all, pages) = all_pages(&srv, "/api/v1/tenants?limit=2").await;
    let names: Vec<String> = all.iter().map(|t| s(&t["name"])).collect();
    assert_eq!(names, ["acme", "beta", "default", "delta", "gamma"]);
    assert_eq!(pages, 3);

    let r = srv
        .req(Method::PATCH, "/api/v1/tenants/acme")
        .header("If-Match", "\"1\"")
        .json(&json!({"display_name": "ACME"}))
        .send()
        .await
        .unwrap();
    assert_eq!(etag(&r), "\"2\"");
    assert_eq!(expect_json(r, StatusCode::OK).await["display_name"], "ACME");

    // The tenant is usable: its own directory, separate from the default one.
    srv.create("/api/v1/tenants/acme/users", json!({"username": "wile"}))
        .await;
    let acme_users = srv.get_json("/api/v1/tenants/acme/users").await;
    assert_eq!(acme_users["items"].as_array().unwrap().len(), 1);
    let default_users = srv.get_json("/api/v1/users?name=wile").await;
    assert!(default_users["items"].as_array().unwrap().is_empty());

    // Duplicate tenant names are a conflict; the default tenant is permanent.
    let r = srv
        .req(Method::POST, "/api/v1/tenants")
        .json(&json!({"name": "acme"}))
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::CONFLICT).await;
    let r = srv
        .req(Method::DELETE, "/api/v1/tenants/default")
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::CONFLICT).await;

    let r = srv
        .req(Method::DELETE, "/api/v1/tenants/acme")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = srv
        .req(Method::GET, "/api/v1/tenants/acme")
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::NOT_FOUND).await;
    let r = srv
        .req(Method::GET, "/api/v1/tenants/acme/users")
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn users_crud_with_etags_and_merge_patch() {
    let srv = TestServer::dev().await;
    let r = srv
        .req(Method::POST, "/api/v1/users")
        .json(&json!({
            "username": "alice", "display_name": "Alice Liddell", "email": "Alice@Example.com",
            "external_id": "hr-1", "attributes": {"dept": "eng"}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(etag(&r), "\"1\"");
    let alice = expect_json(r, StatusCode::CREATED).await;
    assert_eq!(alice["kind"], "user");
    assert_eq!(alice["email"], "alice@example.com");
    assert_eq!(alice["user_type"], "employee");
    assert_eq!(alice["status"], "active");
    assert_eq!(alice["active"], true);
    assert_eq!(alice["attributes"]["dept"], "eng");
    let id = s(&alice["id"]);
    let path = format!("/api/v1/users/{id}");

    // The same user under the explicit tenant path.
    let r = srv
        .req(Method::GET, &format!("/api/v1/tenants/default/users/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(etag(&r), "\"1\"");
    assert_eq!(expect_json(r, StatusCode::OK).await["name"], "alice");

    // If-Match with the current version succeeds and bumps the version.
    let r = srv
        .req(Method::PATCH, &path)
        .header("If-Match", "\"1\"")
        .json(&json!({"display_name": "Alice L."}))
        .send()
        .await
        .unwrap();
    assert_eq!(etag(&r), "\"2\"");
    let updated = expect_json(r, StatusCode::OK).await;
    assert_eq!(updated["display_name"], "Alice L.");
    assert_eq!(
        updated["email"], "alice@example.com",
        "absent fields are kept"
    );

    // A stale version is refused and changes nothing.
    let before = srv.audit_count().await;
    let r = srv
        .req(Method::PATCH, &path)
        .header("If-Match", "\"1\"")
        .json(&json!({"display_name": "Lost update"}))
        .send()
        .await
        .unwrap();
    let p = expect_problem(r, StatusCode::PRECONDITION_FAILED).await;
    assert!(
        s(&p["detail"]).contains('2'),
        "names the current version: {p}"
    );
    let r = srv
        .req(Method::DELETE, &path)
        .header("If-Match", "W/\"1\"")
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::PRECONDITION_FAILED).await;
    assert_eq!(srv.get_json(&path).await["display_name"], "Alice L.");
    assert_eq!(srv.audit_count().await, before);

    // null clears a field (JSON Merge Patch).
    let r = srv
        .req(Method::PATCH, &path)
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"display_name": null, "email": null}"#)
        .send()
        .await
        .unwrap();
    let cleared = expect_json(r, StatusCode::OK).await;
    assert!(cleared.get("display_name").is_none(), "{cleared}");
    assert!(cleared.get("email").is_none(), "{cleared}");
    assert_eq!(cleared["external_id"], "hr-1");
    assert_eq!(cleared["version"], 3);
    let read = srv.get_json(&path).await;
    assert!(
        read.get("display_name").is_none() && read.get("email").is_none(),
        "{read}"
    );

    // Suspend, then delete.
    let r = srv
        .req(Method::PATCH, &path)
        .json(&json!({"status": "suspended"}))
        .send()
        .await
        .unwrap();
    let suspended = expect_json(r, StatusCode::OK).await;
    assert_eq!(suspended["status"], "suspended");
    assert_eq!(suspended["active"], false);
    let r = srv
        .req(Method::DELETE, &path)
        .header("If-Match", "\"4\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = srv.req(Method::GET, &path).send().await.unwrap();
    expect_problem(r, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn contractors_have_a_sponsor_and_an_end_date() {
    let srv = TestServer::dev().await;
    let boss = srv
        .create("/api/v1/users", json!({"username": "boss"}))
        .await;
    let c = srv
        .create(
            "/api/v1/users",
            json!({"username": "temp", "user_type": "contractor", "end_date": "2099-01-01T00:00:00Z", "sponsor": "boss"}),
        )
        .await;
    assert_eq!(c["user_type"], "contractor");
    assert_eq!(c["sponsor_id"], boss["id"]);
    assert_eq!(c["active"], true);
    let list = srv
        .get_json(&format!("/api/v1/users?sponsor_id={}", s(&boss["id"])))
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    // The sponsor cannot be deleted while sponsoring.
    let r = srv
        .req(Method::DELETE, &format!("/api/v1/users/{}", s(&boss["id"])))
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::CONFLICT).await;
}

#[tokio::test]
async fn groups_and_nested_memberships() {
    let srv = TestServer::dev().await;
    let alice = srv
        .create("/api/v1/users", json!({"username": "alice"}))
        .await;
    let eng = srv
        .create(
            "/api/v1/groups",
            json!({"name": "eng", "display_name": "Engineering"}),
        )
        .await;
    let backend = srv
        .create("/api/v1/groups", json!({"name": "backend"}))
        .await;
    assert_eq!(eng["kind"], "group");
    let eng_id = s(&eng["id"]);
    let backend_id = s(&backend["id"]);

    // backend ⊂ eng, alice ∈ backend (by username), and a temporary member.
    let m = srv
        .create(
            &format!("/api/v1/groups/{eng_id}/members"),
            json!({"member": "group:backend"}),
        )
        .await;
    assert_eq!(m["member_id"], backend["id"]);
    assert_eq!(m["kind"], "group");
    assert_eq!(m["active"], true);
    srv.create(
        &format!("/api/v1/groups/{backend_id}/members"),
        json!({"member": "alice"}),
    )
    .await;
    let bob = srv
        .create("/api/v1/users", json!({"username": "bob"}))
        .await;
    let tmp = srv
        .create(
            &format!("/api/v1/groups/{backend_id}/members"),
            json!({"member": s(&bob["id"]), "expires_in": "4h"}),
        )
        .await;
    assert!(tmp["expires_at"].is_string(), "{tmp}");

    let members = srv
        .get_json(&format!("/api/v1/groups/{backend_id}/members"))
        .await;
    let ids: HashSet<String> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| s(&m["member_id"]))
        .collect();
    assert_eq!(ids, HashSet::from([s(&alice["id"]), s(&bob["id"])]));

    // Nested membership shows in alice's access.
    let access = srv
        .get_json(&format!("/api/v1/principals/{}/access", s(&alice["id"])))
        .await;
    let groups: HashSet<String> = access["groups"].as_array().unwrap().iter().map(s).collect();
    assert_eq!(groups, HashSet::from([eng_id.clone(), backend_id.clone()]));

    // Rename the group; remove a member by username.
    let r = srv
        .req(Method::PATCH, &format!("/api/v1/groups/{backend_id}"))
        .json(&json!({"name": "platform", "display_name": "Platform"}))
        .send()
        .await
        .unwrap();
    assert_eq!(etag(&r), "\"2\"");
    assert_eq!(expect_json(r, StatusCode::OK).await["name"], "platform");
    let r = srv
        .req(
            Method::DELETE,
            &format!("/api/v1/groups/{backend_id}/members/bob"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = srv
        .req(
            Method::DELETE,
            &format!("/api/v1/groups/{backend_id}/members/bob"),
        )
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::NOT_FOUND).await;
    let members = srv
        .get_json(&format!("/api/v1/groups/{backend_id}/members"))
        .await;
    assert_eq!(members.as_array().unwrap().len(), 1);

    // Deleting a group removes it and its memberships.
    let r = srv
        .req(Method::DELETE, &format!("/api/v1/groups/{backend_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let members = srv
        .get_json(&format!("/api/v1/groups/{eng_id}/members"))
        .await;
    assert!(members.as_array().unwrap().is_empty(), "{members}");
    let access = srv
        .get_json(&format!("/api/v1/principals/{}/access", s(&alice["id"])))
        .await;
    assert!(access["groups"].as_array().unwrap().is_empty(), "{access}");
}

#[tokio::test]
async fn roles_and_assignments() {
    let srv = TestServer::dev().await;
    srv.create("/api/v1/users", json!({"username": "alice"}))
        .await;
    let role = srv
        .create(
            "/api/v1/roles",
            json!({"name": "payroll-reader", "description": "Reads payroll",
                   "entitlements": [{"resource": "payroll", "permission": "read"},
                                    {"resource": "payroll", "permission": "read"}]}),
        )
        .await;
    assert_eq!(
        role["entitlements"].as_array().unwrap().len(),
        1,
        "entitlements are deduplicated"
    );
    let role_id = s(&role["id"]);

    // By id and by name.
    let r = srv
        .req(Method::GET, &format!("/api/v1/roles/{role_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(etag(&r), "\"1\"");
    expect_json(r, StatusCode::OK).await;
    assert_eq!(
        srv.get_json("/api/v1/roles/payroll-reader").await["id"],
        role["id"]
    );
    let list = srv.get_json("/api/v1/roles").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    let r = srv
        .req(Method::PATCH, "/api/v1/roles/payroll-reader")
        .header("If-Match", "\"1\"")
        .json(&json!({"description": null,
                      "entitlements": [{"resource": "payroll", "permission": "read"},
                                       {"resource": "payroll", "permission": "export"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(etag(&r), "\"2\"");
    let updated = expect_json(r, StatusCode::OK).await;
    assert!(updated["description"].is_null());
    assert_eq!(updated["entitlements"].as_array().unwrap().len(), 2);

    let a = srv
        .create(
            "/api/v1/role-assignments",
            json!({"role": "payroll-reader", "principal": "alice"}),
        )
        .await;
    assert_eq!(a["role_id"], role["id"]);
    assert_eq!(a["active"], true);
    let a_id = s(&a["id"]);
    assert_eq!(
        srv.get_json(&format!("/api/v1/role-assignments/{a_id}"))
            .await["id"],
        a["id"]
    );
    let by_role = srv
        .get_json("/api/v1/role-assignments?role=payroll-reader")
        .await;
    assert_eq!(by_role["items"].as_array().unwrap().len(), 1);
    let by_principal = srv
        .get_json("/api/v1/role-assignments?principal=alice")
        .await;
    assert_eq!(by_principal["items"][0]["id"], a["id"]);

    let r = srv
        .req(Method::DELETE, &format!("/api/v1/role-assignments/{a_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = srv
        .req(Method::GET, &format!("/api/v1/role-assignments/{a_id}"))
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::NOT_FOUND).await;

    // Unassigned, the role can go.
    let r = srv
        .req(Method::DELETE, &format!("/api/v1/roles/{role_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = srv
        .req(Method::GET, "/api/v1/roles/payroll-reader")
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::NOT_FOUND).await;
}

/// Service accounts and agents share one shape: an owner and a purpose.
async fn non_human_crud(srv: &TestServer, collection: &str, kind: &str) {
    let owner = srv.get_json("/api/v1/users?name=owner").await["items"][0].clone();
    let r = srv
        .req(Method::POST, collection)
        .json(
            &json!({"name": format!("{kind}-1"), "owner": "owner", "purpose": "nightly builds",
                      "expires_at": "2099-01-01T00:00:00Z"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(etag(&r), "\"1\"");
    let created = expect_json(r, StatusCode::CREATED).await;
    assert_eq!(created["kind"], kind);
    assert_eq!(created["owner_id"], owner["id"]);
    assert_eq!(created["purpose"], "nightly builds");
    assert!(created.get("user_type").is_none(), "{created}");
    let path = format!("{collection}/{}", s(&created["id"]));
    assert_eq!(srv.get_json(&path).await["name"], format!("{kind}-1"));
    let listed = srv
        .get_json(&format!("{collection}?owner_id={}", s(&owner["id"])))
        .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    let r = srv
        .req(Method::PATCH, &path)
        .header("If-Match", "\"1\"")
        .json(&json!({"purpose": "release builds", "expires_at": null, "display_name": "CI"}))
        .send()
        .await
        .unwrap();
    assert_eq!(etag(&r), "\"2\"");
    let updated = expect_json(r, StatusCode::OK).await;
    assert_eq!(updated["purpose"], "release builds");
    assert!(updated.get("expires_at").is_none(), "{updated}");
    assert_eq!(updated["display_name"], "CI");

    // A user id is not a service account id, and vice versa.
    let r = srv
        .req(Method::GET, &format!("/api/v1/users/{}", s(&created["id"])))
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::NOT_FOUND).await;

    let r = srv.req(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = srv.req(Method::GET, &path).send().await.unwrap();
    expect_problem(r, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn service_accounts_and_agents_crud() {
    let srv = TestServer::dev().await;
    srv.create("/api/v1/users", json!({"username": "owner"}))
        .await;
    non_human_crud(&srv, "/api/v1/service-accounts", "service_account").await;
    non_human_crud(&srv, "/api/v1/agents", "agent").await;
    // The owner cannot be deleted while owning something.
    let owner = srv.get_json("/api/v1/users?name=owner").await["items"][0].clone();
    srv.create(
        "/api/v1/agents",
        json!({"name": "bot", "owner": s(&owner["id"]), "purpose": "triage"}),
    )
    .await;
    let r = srv
        .req(
            Method::DELETE,
            &format!("/api/v1/users/{}", s(&owner["id"])),
        )
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::CONFLICT).await;
}

/// Follows `next_cursor` from `path` (which has a query string) until the end.
async fn all_pages(srv: &TestServer, path: &str) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}&cursor={c}"),
            None => path.to_owned(),
        };
        let page = srv.get_json(&url).await;
        pages += 1;
        assert!(pages < 100, "pagination does not end");
        let batch = page["items"].as_array().unwrap();
        assert!(batch.len() <= 2, "page larger than the limit: {page}");
        items.extend(batch.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    (items, pages)
}

#[tokio::test]
async fn pagination_and_filters() {
    let srv = TestServer::dev().await;
    let mut created = HashSet::new();
    for name in ["Pag-Ann", "pag-bob", "PAG-cy", "pag-dee", "pag-eve"] {
        created.insert(s(&srv
            .create("/api/v1/users", json!({"username": name}))
            .await["id"]));
    }
    srv.create("/api/v1/users", json!({"username": "other"}))
        .await;

    let (items, pages) = all_pages(&srv, "/api/v1/users?limit=2&prefix=PAG").await;
    let ids: Vec<String> = items.iter().map(|u| s(&u["id"])).collect();
    let unique: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), unique.len(), "duplicates across pages: {ids:?}");
    assert_eq!(unique, created);
    assert_eq!(pages, 3);

    let (all, _) = all_pages(&srv, "/api/v1/users?limit=2").await;
    assert_eq!(all.len(), 6);

    // Exact name, case-insensitively; display form kept.
    let found = srv.get_json("/api/v1/users?name=pag-ann").await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    assert_eq!(found["items"][0]["name"], "Pag-Ann");
    let found = srv.get_json("/api/v1/users?name=PAG-ANN").await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1);

    // Status filter.
    let bob = srv.get_json("/api/v1/users?name=pag-bob").await["items"][0].clone();
    let r = srv
        .req(Method::PATCH, &format!("/api/v1/users/{}", s(&bob["id"])))
        .json(&json!({"status": "suspended"}))
        .send()
        .await
        .unwrap();
    expect_json(r, StatusCode::OK).await;
    let suspended = srv.get_json("/api/v1/users?status=suspended").await;
    let names: Vec<&str> = suspended["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["name"].as_str())
        .collect();
    assert_eq!(names, ["pag-bob"]);
    let active = srv.get_json("/api/v1/users?status=active&prefix=pag").await;
    assert_eq!(active["items"].as_array().unwrap().len(), 4);

    // Groups paginate the same way; other kinds are not mixed in.
    for i in 0..3 {
        srv.create("/api/v1/groups", json!({"name": format!("g{i}")}))
            .await;
    }
    let (groups, pages) = all_pages(&srv, "/api/v1/groups?limit=2").await;
    assert_eq!(groups.len(), 3);
    assert_eq!(pages, 2);

    // An unknown filter is an error, not silently ignored.
    let r = srv
        .req(Method::GET, "/api/v1/users?nmae=x")
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn tenants_are_isolated() {
    let srv = TestServer::dev().await;
    srv.create("/api/v1/tenants", json!({"name": "acme"})).await;
    // The same names may exist in both tenants.
    let home = srv
        .create("/api/v1/users", json!({"username": "alice"}))
        .await;
    let xeno = srv
        .create("/api/v1/tenants/acme/users", json!({"username": "alice"}))
        .await;
    assert_ne!(home["id"], xeno["id"]);
    let xeno_group = srv
        .create("/api/v1/tenants/acme/groups", json!({"name": "eng"}))
        .await;
    srv.create("/api/v1/tenants/acme/roles", json!({"name": "r"}))
        .await;
    srv.create("/api/v1/groups", json!({"name": "eng"})).await;
    srv.create("/api/v1/roles", json!({"name": "r"})).await;
    let home_group = srv.get_json("/api/v1/groups?name=eng").await["items"][0].clone();
    let before = srv.audit_count().await;

    let xid = s(&xeno["id"]);
    let xgid = s(&xeno_group["id"]);
    for (method, path, body) in [
        (Method::GET, format!("/api/v1/users/{xid}"), None),
        (
            Method::PATCH,
            format!("/api/v1/users/{xid}"),
            Some(json!({"display_name": "owned"})),
        ),
        (Method::DELETE, format!("/api/v1/users/{xid}"), None),
        (
            Method::GET,
            format!("/api/v1/principals/{xid}/access"),
            None,
        ),
        (Method::GET, format!("/api/v1/groups/{xgid}/members"), None),
        (
            Method::POST,
            format!("/api/v1/groups/{xgid}/members"),
            Some(json!({"member": "alice"})),
        ),
        (
            Method::POST,
            format!("/api/v1/groups/{}/members", s(&home_group["id"])),
            Some(json!({"member": xid})),
        ),
        (
            Method::POST,
            "/api/v1/role-assignments".to_owned(),
            Some(json!({"role": "r", "principal": xid})),
        ),
        (
            Method::POST,
            "/api/v1/service-accounts".to_owned(),
            Some(json!({"name": "sa", "owner": xid, "purpose": "x"})),
        ),
        (
            Method::POST,
            "/api/v1/users".to_owned(),
            Some(
                json!({"username": "c", "user_type": "contractor", "end_date": "2099-01-01T00:00:00Z", "sponsor": xid}),
            ),
        ),
    ] {
        let mut req = srv.req(method.clone(), &path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.unwrap();
        let p = expect_problem(r, StatusCode::NOT_FOUND).await;
        assert!(!s(&p["detail"]).contains("acme"), "{method} {path}: {p}");
    }
    assert_eq!(
        srv.audit_count().await,
        before,
        "a cross-tenant request wrote something"
    );
    let read = srv
        .get_json(&format!("/api/v1/tenants/acme/users/{xid}"))
        .await;
    assert_eq!(read["version"], 1);
    assert!(read.get("display_name").is_none());
    let home_users = srv.get_json("/api/v1/users").await;
    assert_eq!(home_users["items"].as_array().unwrap().len(), 1);
    let home_events = srv.audit().await;
    assert!(
        !home_events
            .iter()
            .any(|e| e["target"] == format!("user:{xid}")),
        "acme's events are not in the default chain"
    );
}
