//! Bad input is refused with a problem document, and nothing is written.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestServer, expect_json, expect_problem, s};

/// Sends a raw request with the root token.
async fn raw(
    srv: &TestServer,
    method: Method,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    srv.req(method, path)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A refused request: what it is, method, path, content type, body, status.
type Case<'a> = (&'a str, Method, &'a str, &'a str, Vec<u8>, StatusCode);

/// Everything that was written: the audit log and the directory.
async fn snapshot(srv: &TestServer) -> (usize, Value, Value, Value, Value) {
    (
        srv.audit_count().await,
        srv.get_json("/api/v1/tenants?limit=1000").await["items"].clone(),
        srv.get_json("/api/v1/users?limit=1000").await["items"].clone(),
        srv.get_json("/api/v1/groups?limit=1000").await["items"].clone(),
        srv.get_json("/api/v1/service-accounts?limit=1000").await["items"].clone(),
    )
}

#[tokio::test]
async fn malformed_bodies_are_refused_and_write_nothing() {
    let srv = TestServer::dev().await;
    srv.create("/api/v1/users", json!({"username": "alice"}))
        .await;
    let alice_path = format!(
        "/api/v1/users/{}",
        s(&srv.get_json("/api/v1/users").await["items"][0]["id"])
    );
    let before = snapshot(&srv).await;

    let json_ct = "application/json";
    let big = format!(
        r#"{{"username": "big", "display_name": "{}"}}"#,
        "x".repeat(1024 * 1024 + 16)
    )
    .into_bytes();
    let mut bad_utf8 = br#"{"username": "caf"#.to_vec();
    bad_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    bad_utf8.extend_from_slice(br#""}"#);
    let cases: Vec<Case<'_>> = vec![
        (
            "malformed JSON",
            Method::POST,
            "/api/v1/users",
            json_ct,
            br#"{"username": "x""#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "not an object",
            Method::POST,
            "/api/v1/users",
            json_ct,
            b"[1, 2]".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "empty body",
            Method::POST,
            "/api/v1/groups",
            json_ct,
            Vec::new(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "unknown field",
            Method::POST,
            "/api/v1/users",
            json_ct,
            br#"{"username": "x", "is_admin": true}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "unknown field in a patch",
            Method::PATCH,
            &alice_path,
            json_ct,
            br#"{"displayName": "typo"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "body over 1 MiB",
            Method::POST,
            "/api/v1/users",
            json_ct,
            big,
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "text/plain",
            Method::POST,
            "/api/v1/users",
            "text/plain",
            br#"{"username": "x"}"#.to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "form encoded",
            Method::POST,
            "/api/v1/groups",
            "application/x-www-form-urlencoded",
            b"name=x".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "invalid UTF-8",
            Method::POST,
            "/api/v1/users",
            json_ct,
            bad_utf8,
            StatusCode::BAD_REQUEST,
        ),
        (
            "wrong type",
            Method::POST,
            "/api/v1/users",
            json_ct,
            br#"{"username": 42}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "white space in a username",
            Method::POST,
            "/api/v1/users",
            json_ct,
            br#"{"username": "o brien"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "bad email",
            Method::POST,
            "/api/v1/users",
            json_ct,
            br#"{"username": "x", "email": "not-an-email"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "bad status",
            Method::PATCH,
            &alice_path,
            json_ct,
            br#"{"status": "godmode"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "bad tenant name",
            Method::POST,
            "/api/v1/tenants",
            json_ct,
            br#"{"name": "a;drop"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (what, method, path, content_type, body, status) in cases {
        let r = raw(&srv, method, path, content_type, body).await;
        let got = r.status();
        assert_eq!(
            got,
            status,
            "{what}: {}",
            r.text().await.unwrap_or_default()
        );
        let r = raw(&srv, Method::GET, "/healthz", "text/plain", Vec::new()).await;
        assert_eq!(r.status(), StatusCode::OK, "{what}: server still healthy");
    }
    // Each again with the full problem check (cheap, and keeps the table simple).
    let r = raw(&srv, Method::POST, "/api/v1/users", json_ct, b"{".to_vec()).await;
    let p = expect_problem(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(p["type"], "urn:idplane:problem:malformed-json");
    let r = raw(
        &srv,
        Method::POST,
        "/api/v1/users",
        json_ct,
        br#"{"username":"x","admin":1}"#.to_vec(),
    )
    .await;
    let p = expect_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        s(&p["detail"]).contains("admin"),
        "names the unknown field: {p}"
    );
    let r = raw(
        &srv,
        Method::POST,
        "/api/v1/users",
        json_ct,
        format!(r#"{{"username": "{}"}}"#, "y".repeat(1024 * 1024 + 1)).into_bytes(),
    )
    .await;
    expect_problem(r, StatusCode::PAYLOAD_TOO_LARGE).await;
    let r = raw(
        &srv,
        Method::POST,
        "/api/v1/users",
        "text/plain",
        br#"{"username":"x"}"#.to_vec(),
    )
    .await;
    expect_problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let r = raw(
        &srv,
        Method::POST,
        "/api/v1/users",
        json_ct,
        b"{\"username\": \"\xff\"}".to_vec(),
    )
    .await;
    expect_problem(r, StatusCode::BAD_REQUEST).await;

    assert_eq!(
        snapshot(&srv).await,
        before,
        "a refused request wrote something"
    );
}

#[tokio::test]
async fn rule_violations_are_conflicts_or_invalid_and_write_nothing() {
    let srv = TestServer::dev().await;
    srv.create("/api/v1/users", json!({"username": "Alice"}))
        .await;
    srv.create("/api/v1/users", json!({"username": "jos\u{e9}"}))
        .await;
    let a = srv.create("/api/v1/groups", json!({"name": "a"})).await;
    let b = srv.create("/api/v1/groups", json!({"name": "b"})).await;
    let (a_id, b_id) = (s(&a["id"]), s(&b["id"]));
    srv.create(
        &format!("/api/v1/groups/{a_id}/members"),
        json!({"member": "group:b"}),
    )
    .await;
    srv.create(
        "/api/v1/roles",
        json!({"name": "r", "entitlements": [{"resource": "x", "permission": "y"}]}),
    )
    .await;
    srv.create(
        "/api/v1/role-assignments",
        json!({"role": "r", "principal": "alice"}),
    )
    .await;
    let before = snapshot(&srv).await;

    let post = |path: String, body: Value| {
        let req = srv.req(Method::POST, &path).json(&body);
        async move { req.send().await.unwrap() }
    };

    // Duplicate username, case-insensitively.
    let p = expect_problem(
        post("/api/v1/users".into(), json!({"username": "aLICE"})).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(p["type"], "urn:idplane:problem:conflict");
    // Unicode: composed and decomposed forms are the same name.
    expect_problem(
        post("/api/v1/users".into(), json!({"username": "JOSE\u{301}"})).await,
        StatusCode::CONFLICT,
    )
    .await;
    // Duplicate group name.
    expect_problem(
        post("/api/v1/groups".into(), json!({"name": "A"})).await,
        StatusCode::CONFLICT,
    )
    .await;
    // Cycle: b ⊂ a already; a ⊂ b would close it.
    expect_problem(
        post(
            format!("/api/v1/groups/{b_id}/members"),
            json!({"member": "group:a"}),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    // Self-membership, by name and by id.
    expect_problem(
        post(
            format!("/api/v1/groups/{a_id}/members"),
            json!({"member": "group:a"}),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    expect_problem(
        post(
            format!("/api/v1/groups/{b_id}/members"),
            json!({"member": b_id}),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    // Deleting an assigned role.
    let r = srv
        .req(Method::DELETE, "/api/v1/roles/r")
        .send()
        .await
        .unwrap();
    let p = expect_problem(r, StatusCode::CONFLICT).await;
    assert!(s(&p["detail"]).contains("assigned"), "{p}");
    // Contractors need an end date and a sponsor.
    let p = expect_problem(
        post(
            "/api/v1/users".into(),
            json!({"username": "c1", "user_type": "contractor", "sponsor": "alice"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["field"], "end_date", "{p}");
    let p = expect_problem(
        post(
            "/api/v1/users".into(),
            json!({"username": "c2", "user_type": "contractor", "end_date": "2099-01-01T00:00:00Z"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        p["field"]
            .as_str()
            .unwrap_or_default()
            .starts_with("sponsor"),
        "{p}"
    );
    // Service accounts and agents need an owner (and a purpose).
    expect_problem(
        post(
            "/api/v1/service-accounts".into(),
            json!({"name": "sa", "purpose": "ci"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    expect_problem(
        post(
            "/api/v1/agents".into(),
            json!({"name": "bot", "owner": "alice", "purpose": "  "}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    // An owner that is not a user.
    let r = post(
        "/api/v1/service-accounts".into(),
        json!({"name": "sa", "owner": "group:a", "purpose": "ci"}),
    )
    .await;
    assert!(r.status().is_client_error(), "{}", r.status());
    // Expiry in the past.
    expect_problem(
        post(
            "/api/v1/role-assignments".into(),
            json!({"role": "r", "principal": "group:a", "expires_at": "2001-01-01T00:00:00Z"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    assert_eq!(
        snapshot(&srv).await,
        before,
        "a refused request wrote something"
    );
    let members = srv
        .get_json(&format!("/api/v1/groups/{b_id}/members"))
        .await;
    assert!(members.as_array().unwrap().is_empty(), "{members}");
    srv.get_json("/api/v1/roles/r").await;
}

#[tokio::test]
async fn metacharacters_are_stored_and_returned_verbatim() {
    let srv = TestServer::dev().await;
    let username = "robert');DROP_TABLE_users;--";
    let display = "$(rm -rf /) ; DROP TABLE users; --";
    let external = "1' OR '1'='1\"; `id` | cat /etc/passwd & echo %s %n \\x00?";
    let email = "o'brien;--@example.com";
    let attributes = json!({"note": "'; DELETE FROM principals; --", "$(whoami)": "`reboot`", "a\"b": ["%00", "\\"]});
    let user = srv
        .create(
            "/api/v1/users",
            json!({"username": username, "display_name": display, "external_id": external,
                   "email": email, "attributes": attributes}),
        )
        .await;
    let read = srv
        .get_json(&format!("/api/v1/users/{}", s(&user["id"])))
        .await;
    for v in [&user, &read] {
        assert_eq!(v["name"], username);
        assert_eq!(v["display_name"], display);
        assert_eq!(v["external_id"], external);
        assert_eq!(v["email"], email);
        assert_eq!(v["attributes"], attributes);
    }
    // Found again through filters carrying the same characters.
    let r = srv
        .req(Method::GET, "/api/v1/users")
        .query(&[("name", username)])
        .send()
        .await
        .unwrap();
    let found = expect_json(r, StatusCode::OK).await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1, "{found}");
    let r = srv
        .req(Method::GET, "/api/v1/users")
        .query(&[("external_id", external)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_json(r, StatusCode::OK).await["items"][0]["id"],
        user["id"]
    );
    let r = srv
        .req(Method::GET, "/api/v1/users")
        .query(&[("prefix", "robert')")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_json(r, StatusCode::OK).await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let group_name = "g');DELETE_FROM_memberships;--";
    let group = srv
        .create(
            "/api/v1/groups",
            json!({"name": group_name, "display_name": display, "external_id": external}),
        )
        .await;
    assert_eq!(group["name"], group_name);
    srv.create(
        &format!("/api/v1/groups/{}/members", s(&group["id"])),
        json!({"member": username}),
    )
    .await;
    let role_name = "r'--;\"`$(x)`";
    let role = srv
        .create(
            "/api/v1/roles",
            json!({"name": role_name, "description": display,
                   "entitlements": [{"resource": "db';--", "permission": "$(rm)"}]}),
        )
        .await;
    assert_eq!(role["name"], role_name);
    assert_eq!(role["description"], display);
    assert_eq!(role["entitlements"][0]["resource"], "db';--");
    let assigned = srv
        .create(
            "/api/v1/role-assignments",
            json!({"role": role_name, "principal": format!("group:{group_name}")}),
        )
        .await;
    assert_eq!(assigned["role_id"], role["id"]);
    let sa = srv
        .create(
            "/api/v1/service-accounts",
            json!({"name": "sa';--", "display_name": display, "owner": username, "purpose": display}),
        )
        .await;
    assert_eq!(sa["purpose"], display);
    assert_eq!(sa["owner_id"], user["id"]);

    let access = srv
        .get_json(&format!("/api/v1/principals/{}/access", s(&user["id"])))
        .await;
    assert_eq!(access["entitlements"][0]["permission"], "$(rm)");
    // The tables are intact.
    assert_eq!(
        srv.get_json("/api/v1/users").await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let members = srv
        .get_json(&format!("/api/v1/groups/{}/members", s(&group["id"])))
        .await;
    assert_eq!(members[0]["name"], username);
    // The audit log records the names verbatim too.
    let events = srv.audit_query("&action=user.create").await;
    assert_eq!(events[0]["details"]["name"], username);
}

#[tokio::test]
async fn unknown_routes_and_bad_ids_are_404_problems() {
    let srv = TestServer::dev().await;
    let before = srv.audit_count().await;
    for path in [
        "/api/v1/nope",
        "/api/v1/users/not-a-uuid",
        "/api/v1/users/01900000-0000-7000-8000-00000000000g",
        "/api/v1/groups/123/members",
        "/api/v1/role-assignments/xyz",
        "/api/v1/principals/%27%3B--/access",
        "/api/v1/tenants/default/users/not-a-uuid",
        "/api/v1/users/01900000-0000-7000-8000-000000000000",
        "/no/such/page",
    ] {
        let r = srv.req(Method::GET, path).send().await.unwrap();
        expect_problem(r, StatusCode::NOT_FOUND).await;
    }
    let r = srv
        .req(Method::PATCH, "/api/v1/users/not-a-uuid")
        .json(&json!({"display_name": "x"}))
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::NOT_FOUND).await;
    let r = srv
        .req(Method::DELETE, "/api/v1/users")
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::METHOD_NOT_ALLOWED).await;
    assert_eq!(srv.audit_count().await, before);
}
