//! First start without dev mode: the one-time bootstrap token.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{TestServer, expect_json, expect_problem, s};

/// The `idp_...` secret after `--token` in the first-start announcement.
fn bootstrap_token(stderr: &str) -> String {
    let line = stderr
        .lines()
        .find(|l| l.contains("--token idp_"))
        .unwrap_or_else(|| panic!("no bootstrap token printed:\n{stderr}"));
    let after = line.split("--token ").nth(1).unwrap();
    after.split_whitespace().next().unwrap().to_owned()
}

#[tokio::test]
async fn bootstrap_token_works_once_and_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut srv = TestServer::start(&data, false).await;
    let stderr = srv.wait_stderr("--token idp_").await;
    let token = bootstrap_token(&stderr);

    // Not an admin token: it reads nothing.
    let r = srv
        .req_as(&token, Method::GET, "/api/v1/users")
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::FORBIDDEN).await;
    // A bad username does not spend it.
    let r = srv
        .req_as(&token, Method::POST, "/api/v1/bootstrap")
        .json(&json!({"username": "has space"}))
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    // Nor does any other field that would be refused after it was spent.
    for body in [
        json!({"username": "admin", "email": "not-an-email"}),
        json!({"username": "admin", "display_name": "bell\u{7}"}),
        json!({"username": "admin", "is_admin": true}),
    ] {
        let r = srv
            .req_as(&token, Method::POST, "/api/v1/bootstrap")
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    }

    let r = srv
        .req_as(&token, Method::POST, "/api/v1/bootstrap")
        .json(&json!({"username": "admin", "email": "admin@example.com"}))
        .send()
        .await
        .unwrap();
    let issued = expect_json(r, StatusCode::CREATED).await;
    let admin = s(&issued["secret"]);
    assert!(admin.starts_with("idp_"), "{issued}");
    assert_eq!(issued["scope"], "admin");
    assert!(
        issued["tenant_id"].is_null(),
        "the first administrator is global: {issued}"
    );

    // The admin token works, globally.
    let users = expect_json(
        srv.req_as(&admin, Method::GET, "/api/v1/users")
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let admin_user = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "admin")
        .cloned()
        .unwrap();
    assert_eq!(issued["principal_id"], admin_user["id"]);
    let r = srv
        .req_as(&admin, Method::POST, "/api/v1/tenants")
        .json(&json!({"name": "acme"}))
        .send()
        .await
        .unwrap();
    expect_json(r, StatusCode::CREATED).await;
    // Changes by it are on behalf of the administrator.
    let audit = expect_json(
        srv.req_as(
            &admin,
            Method::GET,
            "/api/v1/tenants/acme/audit?action=tenant.create",
        )
        .send()
        .await
        .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        audit["items"][0]["actor"],
        format!("token:{}", s(&issued["id"])),
        "{audit}"
    );
    assert_eq!(
        audit["items"][0]["on_behalf_of"],
        format!("principal:{}", s(&admin_user["id"])),
        "{audit}"
    );

    // Second use of the bootstrap token.
    let r = srv
        .req_as(&token, Method::POST, "/api/v1/bootstrap")
        .json(&json!({"username": "admin2"}))
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::UNAUTHORIZED).await;
    // An admin token cannot bootstrap either.
    let r = srv
        .req_as(&admin, Method::POST, "/api/v1/bootstrap")
        .json(&json!({"username": "admin3"}))
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::FORBIDDEN).await;

    // Restart on the same data: no new bootstrap token, the admin token still works.
    let status = srv.terminate().await;
    assert!(status.success(), "exit status {status}");
    drop(srv);
    let srv = TestServer::start(&data, false).await;
    let r = srv
        .req_as(&admin, Method::GET, "/api/v1/tenants/acme")
        .send()
        .await
        .unwrap();
    expect_json(r, StatusCode::OK).await;
    let stderr = srv.stderr();
    assert!(
        !stderr.contains("--token"),
        "a second bootstrap token was printed:\n{stderr}"
    );
    assert!(!stderr.contains("bootstrap token"), "{stderr}");
    let r = srv
        .req_as(&token, Method::POST, "/api/v1/bootstrap")
        .json(&json!({"username": "admin4"}))
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::UNAUTHORIZED).await;
}
