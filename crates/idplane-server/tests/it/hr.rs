//! HR import end to end: rules through the API, `idplane hr import
//! --dry-run` then for real against a running server, the refusal of a bad
//! file, and `idplane report leavers`.

use std::process::Output;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestServer, expect_json, idplane, s};

fn cli(server: &TestServer, args: &[&str]) -> Output {
    idplane()
        .args(args)
        .env("IDPLANE_SERVER", &server.base)
        .env("IDPLANE_TOKEN", &server.root)
        .output()
        .unwrap()
}

const MAPPING: &str = r#"
employee_id = "Employee ID"
username = "Login"
email = "Email"
department = "Department"
manager_employee_id = "Manager"

[user_types]
Permanent = "employee"
"#;

#[tokio::test]
async fn hr_import_plans_applies_and_reports_through_the_cli() {
    let server = TestServer::dev().await;
    server
        .create("/api/v1/groups", json!({"name": "sales"}))
        .await;
    let rules = server
        .req(Method::PUT, "/api/v1/lifecycle/rules")
        .json(&json!({"birthright": [
            {"id": "sales", "when": {"department": "Sales"}, "groups": ["sales"]}
        ]}))
        .send()
        .await
        .unwrap();
    expect_json(rules, StatusCode::OK).await;

    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("mapping.toml");
    std::fs::write(&mapping, MAPPING).unwrap();
    let csv = dir.path().join("hr.csv");
    std::fs::write(
        &csv,
        "Employee ID,Login,Email,Department,Manager\n\
         E1,ada,ada@example.com,Sales,\n\
         E2,bob,bob@example.com,Engineering,E1\n",
    )
    .unwrap();
    let (csv_arg, mapping_arg) = (csv.to_str().unwrap(), mapping.to_str().unwrap());

    let dry = cli(
        &server,
        &[
            "hr",
            "import",
            csv_arg,
            "--mapping",
            mapping_arg,
            "--dry-run",
        ],
    );
    let out = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(
        out.contains("2 rows: 2 joiners, 0 movers, 0 leavers"),
        "{out}"
    );
    assert!(out.contains("group:sales"), "{out}");
    assert!(out.contains("Dry run: nothing was changed."), "{out}");
    let users = server.get_json("/api/v1/users?name=ada").await;
    assert_eq!(users["items"], json!([]), "a dry run creates nobody");

    let real = cli(
        &server,
        &["hr", "import", csv_arg, "--mapping", mapping_arg, "--json"],
    );
    assert!(
        real.status.success(),
        "{}",
        String::from_utf8_lossy(&real.stderr)
    );
    let outcome: Value = serde_json::from_slice(&real.stdout).unwrap();
    assert_eq!(outcome["applied"], json!(true));
    let ada = &server.get_json("/api/v1/users?name=ada").await["items"][0];
    let access = server
        .get_json(&format!("/api/v1/principals/{}/access", s(&ada["id"])))
        .await;
    assert_eq!(access["groups"].as_array().unwrap().len(), 1, "{access}");

    // A manager nobody knows refuses the whole file, with its line.
    std::fs::write(
        &csv,
        "Employee ID,Login,Email,Department,Manager\n\
         E1,ada,ada@example.com,Sales,\n\
         E3,cy,cy@example.com,Sales,E404\n",
    )
    .unwrap();
    let bad = cli(
        &server,
        &["hr", "import", csv_arg, "--mapping", mapping_arg],
    );
    assert!(!bad.status.success());
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(out.contains("manager `E404` is neither"), "{out}");
    assert_eq!(
        server.get_json("/api/v1/users?name=cy").await["items"],
        json!([])
    );

    // bob leaves (50 % of the workforce: forced), and the report shows it.
    std::fs::write(
        &csv,
        "Employee ID,Login,Email,Department,Manager\nE1,ada,ada@example.com,Sales,\n",
    )
    .unwrap();
    let left = cli(
        &server,
        &["hr", "import", csv_arg, "--mapping", mapping_arg, "--force"],
    );
    assert!(
        left.status.success(),
        "{}",
        String::from_utf8_lossy(&left.stderr)
    );
    let report = cli(&server, &["report", "leavers", "--json"]);
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report[0]["employee_id"], json!("E2"));
    assert_eq!(report[0]["over_24h"], json!(false));
    let table = cli(&server, &["report", "leavers"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("same day"));
}
