//! SCIM 2.0 end to end: discovery, the request shapes Okta and Microsoft
//! Entra ID send (from their published provisioning guides), filters,
//! PATCH, ETags, Bulk, and the refusals, all as SCIM error messages.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestServer, s};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A server and a `scim`-scope token, as a provisioning client gets one.
async fn setup() -> (TestServer, String) {
    let server = TestServer::dev().await;
    let (_, token) = server
        .token(json!({"name": "okta provisioning", "scope": "scim"}))
        .await;
    (server, token)
}

async fn call(
    server: &TestServer,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Response {
    let mut req = server.req_as(token, method, path);
    if let Some(body) = body {
        req = req
            .header("content-type", "application/scim+json")
            .body(body.to_string());
    }
    req.send().await.expect("send")
}

async fn expect(r: Response, status: StatusCode) -> Value {
    let got = r.status();
    let media = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "body: {text}");
    if text.is_empty() {
        return Value::Null;
    }
    assert_eq!(media.as_deref(), Some("application/scim+json"), "{text}");
    serde_json::from_str(&text).unwrap()
}

/// A SCIM error message with this status and `scimType`.
async fn expect_error(r: Response, status: StatusCode, scim_type: Option<&str>) -> Value {
    let body = expect(r, status).await;
    assert_eq!(body["schemas"], json!([ERROR]), "{body}");
    assert_eq!(body["status"], status.as_u16().to_string(), "{body}");
    assert_eq!(body["scimType"].as_str(), scim_type, "{body}");
    body
}

fn okta_user(user_name: &str) -> Value {
    // Okta's "Create User" request, from its SCIM 2.0 provisioning guide.
    json!({
        "schemas": [USER],
        "userName": user_name,
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": "Test User",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "correct horse battery staple 1",
        "active": true
    })
}

#[tokio::test]
async fn discovery_describes_what_is_supported() {
    let (server, token) = setup().await;
    let spc = expect(
        call(
            &server,
            &token,
            Method::GET,
            "/scim/v2/ServiceProviderConfig",
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["bulk"]["maxOperations"], 1000);
    assert_eq!(spc["filter"]["maxResults"], 1000);
    assert_eq!(spc["etag"]["supported"], true);
    let types = expect(
        call(&server, &token, Method::GET, "/scim/v2/ResourceTypes", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(types["totalResults"], 2);
    let user_type = expect(
        call(
            &server,
            &token,
            Method::GET,
            "/scim/v2/ResourceTypes/User",
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(user_type["schema"], USER);
    assert_eq!(user_type["schemaExtensions"][0]["schema"], ENTERPRISE);
    let schemas = expect(
        call(&server, &token, Method::GET, "/scim/v2/Schemas", None).await,
        StatusCode::OK,
    )
    .await;
    let ids: Vec<String> = schemas["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| s(&r["id"]))
        .collect();
    assert!(ids.contains(&ENTERPRISE.to_owned()), "{ids:?}");
    let enterprise = expect(
        call(
            &server,
            &token,
            Method::GET,
            &format!("/scim/v2/Schemas/{ENTERPRISE}"),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(
        enterprise["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "department")
    );
    expect_error(
        call(&server, &token, Method::GET, "/scim/v2/Widgets", None).await,
        StatusCode::NOT_FOUND,
        None,
    )
    .await;
}

#[tokio::test]
async fn okta_user_lifecycle_shapes() {
    let (server, token) = setup().await;
    // Okta first checks whether the user exists.
    let found = expect(
        call(
            &server,
            &token,
            Method::GET,
            "/scim/v2/Users?filter=userName%20eq%20%22test.user%40okta.local%22&startIndex=1&count=100",
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(found["totalResults"], 0);
    assert_eq!(found["Resources"], json!([]));

    let r = call(
        &server,
        &token,
        Method::POST,
        "/scim/v2/Users",
        Some(okta_user("test.user@okta.local")),
    )
    .await;
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let created = expect(r, StatusCode::CREATED).await;
    let id = s(&created["id"]);
    assert!(location.ends_with(&format!("/scim/v2/Users/{id}")));
    assert_eq!(etag, "W/\"1\"");
    assert_eq!(created["meta"]["version"], etag);
    assert_eq!(created["active"], true);
    assert_eq!(created["name"]["givenName"], "Test");
    assert!(created.get("password").is_none(), "write-only");

    // The password Okta pushed is set (hashed, in the same transaction).
    let set = server.audit_query("&action=password.set").await;
    assert_eq!(set.len(), 1);
    assert_eq!(set[0]["target"], format!("user:{id}"));

    // A second create with the same userName is a uniqueness conflict.
    expect_error(
        call(
            &server,
            &token,
            Method::POST,
            "/scim/v2/Users",
            Some(okta_user("TEST.user@okta.local")),
        )
        .await,
        StatusCode::CONFLICT,
        Some("uniqueness"),
    )
    .await;

    // Okta's profile update is a PUT of the whole user.
    let mut put = okta_user("test.user@okta.local");
    put["name"]["givenName"] = json!("Another");
    put.as_object_mut().unwrap().remove("password");
    let replaced = expect(
        call(
            &server,
            &token,
            Method::PUT,
            &format!("/scim/v2/Users/{id}"),
            Some(put),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(replaced["name"]["givenName"], "Another");
    assert_eq!(replaced["meta"]["version"], "W/\"2\"");

    // Okta deactivates with a path-less replace.
    let deactivated = expect(
        call(
            &server,
            &token,
            Method::PATCH,
            &format!("/scim/v2/Users/{id}"),
            Some(json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": false}}]})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(deactivated["active"], false);
    let native = server.get_json(&format!("/api/v1/users/{id}")).await;
    assert_eq!(native["status"], "deprovisioned");
    let ended = server.audit_query("&action=session.end_all").await;
    assert_eq!(
        ended.len(),
        1,
        "deactivation ends sessions and revokes tokens"
    );

    // And reactivates the same way.
    let back = expect(
        call(
            &server,
            &token,
            Method::PATCH,
            &format!("/scim/v2/Users/{id}"),
            Some(json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"id": id, "active": true}}]})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(back["active"], true);
}

#[tokio::test]
async fn okta_group_push_shapes() {
    let (server, token) = setup().await;
    let user = expect(
        call(
            &server,
            &token,
            Method::POST,
            "/scim/v2/Users",
            Some(okta_user("member@okta.local")),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let uid = s(&user["id"]);
    let group = expect(
        call(
            &server,
            &token,
            Method::POST,
            "/scim/v2/Groups",
            Some(json!({"schemas": [GROUP], "displayName": "Test SCIMv2", "members": []})),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let gid = s(&group["id"]);
    assert_eq!(group["displayName"], "Test SCIMv2");
    let path = format!("/scim/v2/Groups/{gid}");
    let added = expect(
        call(
            &server,
            &token,
            Method::PATCH,
            &path,
            Some(json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "add", "path": "members", "value": [{"value": uid, "display": "member@okta.local"}]}
            ]})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(added["members"][0]["value"], uid.as_str());
    assert_eq!(
        added["meta"]["version"], "W/\"2\"",
        "a member change is a new version"
    );
    let user_now = expect(
        call(
            &server,
            &token,
            Method::GET,
            &format!("/scim/v2/Users/{uid}"),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(user_now["groups"][0]["value"], gid.as_str());

    let renamed = expect(
        call(
            &server,
            &token,
            Method::PATCH,
            &path,
            Some(json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "replace", "value": {"id": gid, "displayName": "Renamed Group"}},
                {"op": "remove", "path": format!("members[value eq \"{uid}\"]")}
            ]})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(renamed["displayName"], "Renamed Group");
    assert_eq!(renamed["members"], json!([]));
    let listed = expect(
        call(
            &server,
            &token,
            Method::GET,
            "/scim/v2/Groups?filter=displayName%20eq%20%22renamed%20group%22&excludedAttributes=members",
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed["totalResults"], 1);
    assert!(listed["Resources"][0].get("members").is_none());
    expect(
        call(&server, &token, Method::DELETE, &path, None).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect_error(
        call(&server, &token, Method::GET, &path, None).await,
        StatusCode::NOT_FOUND,
        None,
    )
    .await;
}

#[tokio::test]
async fn entra_shapes() {
    let (server, token) = setup().await;
    // Microsoft Entra's provisioning probe: a filter on a user that does not exist.
    let none = expect(
        call(
            &server,
            &token,
            Method::GET,
            "/scim/v2/Users?filter=userName+eq+%22non-existent%22",
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(none["totalResults"], 0);
    let manager = expect(
        call(
            &server,
            &token,
            Method::POST,
            "/scim/v2/Users",
            Some(json!({"schemas": [USER], "userName": "boss@contoso.com", "active": true})),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    // An attribute idplane does not keep is refused, never silently dropped.
    let refused = expect_error(
        call(
            &server,
            &token,
            Method::POST,
            "/scim/v2/Users",
            Some(json!({"schemas": [USER], "userName": "r", "roles": [{"value": "admin"}]})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        Some("invalidSyntax"),
    )
    .await;
    assert!(s(&refused["detail"]).contains("roles"), "{refused}");
    // Entra's create, from its SCIM guide: the enterprise extension, no
    // password, and an empty `roles` (no value is no attribute).
    let created = expect(
        call(
            &server,
            &token,
            Method::POST,
            "/scim/v2/Users",
            Some(json!({
                "schemas": [USER, ENTERPRISE],
                "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
                "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
                "active": true,
                "emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b@testuser.com"}],
                "meta": {"resourceType": "User"},
                "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
                "roles": [],
                ENTERPRISE: {"employeeNumber": "E-1", "department": "Sales"}
            })),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let id = s(&created["id"]);
    assert_eq!(created[ENTERPRISE]["department"], "Sales");
    // Entra's attribute updates: capitalised ops, string booleans, the
    // manager as a bare id, a value filter for an email that is not there.
    let patched = expect(
        call(
            &server,
            &token,
            Method::PATCH,
            &format!("/scim/v2/Users/{id}"),
            Some(json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "Replace", "path": "displayName", "value": "Ryan Leenay"},
                {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0100"},
                {"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": s(&manager["id"])},
                {"op": "Replace", "path": format!("{ENTERPRISE}:department"), "value": "Engineering"},
            ]})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(patched["displayName"], "Ryan Leenay");
    assert_eq!(patched["phoneNumbers"][0]["value"], "+1 555 0100");
    assert_eq!(patched[ENTERPRISE]["manager"]["value"], manager["id"]);
    assert!(
        s(&patched[ENTERPRISE]["manager"]["$ref"])
            .ends_with(&format!("/scim/v2/Users/{}", s(&manager["id"])))
    );
    assert_eq!(patched[ENTERPRISE]["department"], "Engineering");
    let disabled = expect(
        call(
            &server,
            &token,
            Method::PATCH,
            &format!("/scim/v2/Users/{id}"),
            Some(json!({"schemas": [PATCH_OP], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(disabled["active"], false);
    // Deactivation is the leaver pipeline, caused by SCIM.
    let left = server.audit_query("&action=user.deprovision").await;
    assert!(
        left.iter().any(|e| e["details"]["cause"] == "scim"),
        "{left:?}"
    );

    // Entra's group membership updates name the members in `value`.
    let group = expect(
        call(
            &server,
            &token,
            Method::POST,
            "/scim/v2/Groups",
            Some(json!({"schemas": [GROUP], "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159", "displayName": "displayName", "meta": {"resourceType": "Group"}})),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let gpath = format!("/scim/v2/Groups/{}", s(&group["id"]));
    for (op, expected) in [("Add", 1), ("Remove", 0)] {
        let g = expect(
            call(
                &server,
                &token,
                Method::PATCH,
                &gpath,
                Some(json!({"schemas": [PATCH_OP], "Operations": [{"op": op, "path": "members", "value": [{"value": id}]}]})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(g["members"].as_array().unwrap().len(), expected, "{op}");
    }
}

#[tokio::test]
async fn filters_sorting_paging_and_projection() {
    let (server, token) = setup().await;
    for (name, dept, work) in [
        ("amy", "Sales", true),
        ("bob", "Sales", false),
        ("cat", "Engineering", true),
    ] {
        let mut emails = vec![json!({"value": format!("{name}@home.example"), "type": "home"})];
        if work {
            emails.push(
                json!({"value": format!("{name}@work.example"), "type": "work", "primary": true}),
            );
        }
        expect(
            call(
                &server,
                &token,
                Method::POST,
                "/scim/v2/Users",
                Some(json!({"schemas": [USER, ENTERPRISE], "userName": name, "emails": emails, ENTERPRISE: {"department": dept}})),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
    }
    let names = |page: &Value| -> Vec<String> {
        page["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| s(&r["userName"]))
            .collect()
    };
    let list = |query: &'static str| {
        let server = &server;
        let token = &token;
        async move {
            expect(
                call(
                    server,
                    token,
                    Method::GET,
                    &format!("/scim/v2/Users?{query}"),
                    None,
                )
                .await,
                StatusCode::OK,
            )
            .await
        }
    };
    let page = list(
        "filter=emails%5Btype%20eq%20%22work%22%20and%20primary%20eq%20true%5D&sortBy=userName",
    )
    .await;
    assert_eq!(names(&page), ["amy", "cat"]);
    let page =
        list("filter=department%20eq%20%22sales%22%20and%20not%20(userName%20sw%20%22a%22)").await;
    assert_eq!(names(&page), ["bob"]);
    let page =
        list("sortBy=userName&sortOrder=descending&startIndex=2&count=1&attributes=userName").await;
    assert_eq!(page["totalResults"], 3);
    assert_eq!(page["startIndex"], 2);
    assert_eq!(names(&page), ["bob"]);
    assert!(page["Resources"][0].get("emails").is_none(), "projected");
    let page = list("count=0").await;
    assert_eq!(page["totalResults"], 3);
    assert_eq!(page["Resources"], json!([]));

    // .search carries the same query in a body.
    let found = expect(
        call(
            &server,
            &token,
            Method::POST,
            "/scim/v2/Users/.search",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": "userName eq \"CAT\"",
                "attributes": ["userName"],
            })),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(names(&found), ["cat"]);

    // Hostile and wrong filters: invalidFilter, never a partial answer.
    for bad in [
        "userName%20eq%20%22x%22%20or%201%3D1",
        "userName%20eq%20x",
        "shoeSize%20gt%205",
        "active%20gt%20true",
        "userName%20eq%20%22unterminated",
        "((((((((((((((((((userName%20pr))))))))))))))))))",
    ] {
        let r = call(
            &server,
            &token,
            Method::GET,
            &format!("/scim/v2/Users?filter={bad}"),
            None,
        )
        .await;
        expect_error(r, StatusCode::BAD_REQUEST, Some("invalidFilter")).await;
    }
    let huge = format!("filter=userName%20eq%20%22{}%22", "a".repeat(5000));
    let r = call(
        &server,
        &token,
        Method::GET,
        &format!("/scim/v2/Users?{huge}"),
        None,
    )
    .await;
    expect_error(r, StatusCode::BAD_REQUEST, Some("invalidFilter")).await;
    let r = call(
        &server,
        &token,
        Method::GET,
        "/scim/v2/Users?sortBy=emails",
        None,
    )
    .await;
    expect_error(r, StatusCode::BAD_REQUEST, Some("invalidValue")).await;
}

#[tokio::test]
async fn etags_guard_concurrent_changes() {
    let (server, token) = setup().await;
    let created = expect(
        call(
            &server,
            &token,
            Method::POST,
            "/scim/v2/Users",
            Some(json!({"schemas": [USER], "userName": "etag"})),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let path = format!("/scim/v2/Users/{}", s(&created["id"]));
    let r = server
        .req_as(&token, Method::GET, &path)
        .header("if-none-match", "W/\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let patch = json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "title", "value": "CTO"}]});
    let r = server
        .req_as(&token, Method::PATCH, &path)
        .header("content-type", "application/scim+json")
        .header("if-match", "W/\"7\"")
        .body(patch.to_string())
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::PRECONDITION_FAILED, None).await;
    let r = server
        .req_as(&token, Method::PATCH, &path)
        .header("content-type", "application/scim+json")
        .header("if-match", "W/\"1\"")
        .body(patch.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(expect(r, StatusCode::OK).await["title"], "CTO");
    let r = server
        .req_as(&token, Method::DELETE, &path)
        .header("if-match", "W/\"1\"")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::PRECONDITION_FAILED, None).await;
}

#[tokio::test]
async fn bulk_applies_in_order_with_references() {
    let (server, token) = setup().await;
    let answer = expect(
        call(
            &server,
            &token,
            Method::POST,
            "/scim/v2/Bulk",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                "Operations": [
                    {"method": "POST", "path": "/Users", "bulkId": "u1", "data": {"schemas": [USER], "userName": "bulk1"}},
                    {"method": "POST", "path": "/Groups", "bulkId": "g1", "data": {"schemas": [GROUP], "displayName": "bulk group", "members": [{"value": "bulkId:u1"}]}},
                    {"method": "POST", "path": "/Users", "bulkId": "dup", "data": {"schemas": [USER], "userName": "BULK1"}},
                    {"method": "PATCH", "path": "/Users/bulkId:u1", "data": {"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "title", "value": "x"}]}},
                    {"method": "DELETE", "path": "/Users/bulkId:nope"}
                ]
            })),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let statuses: Vec<String> = answer["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| s(&o["status"]))
        .collect();
    assert_eq!(statuses, ["201", "201", "409", "200", "409"]);
    assert_eq!(
        answer["Operations"][2]["response"]["scimType"],
        "uniqueness"
    );
    let group_location = s(&answer["Operations"][1]["location"]);
    let gid = group_location.rsplit('/').next().unwrap();
    let group = expect(
        call(
            &server,
            &token,
            Method::GET,
            &format!("/scim/v2/Groups/{gid}"),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(group["members"].as_array().unwrap().len(), 1);

    // failOnErrors stops after that many errors.
    let answer = expect(
        call(
            &server,
            &token,
            Method::POST,
            "/scim/v2/Bulk",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                "failOnErrors": 1,
                "Operations": [
                    {"method": "POST", "path": "/Users", "bulkId": "a", "data": {"schemas": [USER], "userName": "bulk1"}},
                    {"method": "POST", "path": "/Users", "bulkId": "b", "data": {"schemas": [USER], "userName": "never"}}
                ]
            })),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(answer["Operations"].as_array().unwrap().len(), 1);
    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"method": "DELETE", "path": format!("/Users/{i}")}))
        .collect();
    let r = call(
        &server,
        &token,
        Method::POST,
        "/scim/v2/Bulk",
        Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": too_many})),
    )
    .await;
    expect_error(r, StatusCode::PAYLOAD_TOO_LARGE, None).await;
}

#[tokio::test]
async fn callers_and_bodies_are_checked() {
    let (server, token) = setup().await;
    let r = call(&server, "not-a-token", Method::GET, "/scim/v2/Users", None).await;
    assert!(r.headers().contains_key("www-authenticate"));
    expect_error(r, StatusCode::UNAUTHORIZED, None).await;
    let (_, pdp) = server.token(json!({"name": "pep", "scope": "pdp"})).await;
    expect_error(
        call(&server, &pdp, Method::GET, "/scim/v2/Users", None).await,
        StatusCode::FORBIDDEN,
        None,
    )
    .await;
    let (_, read) = server
        .token(json!({"name": "auditor", "scope": "read"}))
        .await;
    expect(
        call(&server, &read, Method::GET, "/scim/v2/Users", None).await,
        StatusCode::OK,
    )
    .await;
    expect_error(
        call(
            &server,
            &read,
            Method::POST,
            "/scim/v2/Users",
            Some(json!({"schemas": [USER], "userName": "x"})),
        )
        .await,
        StatusCode::FORBIDDEN,
        None,
    )
    .await;
    // A SCIM token does nothing else.
    let r = server
        .req_as(&token, Method::GET, "/api/v1/users")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let r = server
        .req_as(&token, Method::POST, "/scim/v2/Users")
        .header("content-type", "application/scim+json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, Some("invalidSyntax")).await;
    let r = server
        .req_as(&token, Method::POST, "/scim/v2/Users")
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, None).await;
    for (body, scim_type) in [
        (json!({"userName": "no-schemas"}), "invalidSyntax"),
        (
            json!({"schemas": [USER], "userName": "x", "favourite": 1}),
            "invalidSyntax",
        ),
        (
            json!({"schemas": [USER], "userName": "x", "active": "maybe"}),
            "invalidValue",
        ),
        (
            json!({"schemas": [USER], "userName": "has space"}),
            "invalidValue",
        ),
        (
            json!({"schemas": [USER], "userName": "weak", "password": "short"}),
            "invalidValue",
        ),
        (
            json!({"schemas": [USER], "userName": "c", "userType": "Contractor"}),
            "invalidValue",
        ),
    ] {
        let r = call(
            &server,
            &token,
            Method::POST,
            "/scim/v2/Users",
            Some(body.clone()),
        )
        .await;
        let err = expect_error(r, StatusCode::BAD_REQUEST, Some(scim_type)).await;
        assert!(!s(&err["detail"]).is_empty(), "{body}");
    }
    let big = json!({"schemas": [USER], "userName": "big", "title": "x".repeat(1024 * 1024)});
    let r = call(&server, &token, Method::POST, "/scim/v2/Users", Some(big)).await;
    expect_error(r, StatusCode::PAYLOAD_TOO_LARGE, None).await;
    let r = call(
        &server,
        &token,
        Method::GET,
        "/scim/v2/Users/not-an-id",
        None,
    )
    .await;
    expect_error(r, StatusCode::NOT_FOUND, None).await;
    // Nothing of the refused requests was written.
    let all = expect(
        call(&server, &token, Method::GET, "/scim/v2/Users", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(all["totalResults"], 0, "{all}");
}
