//! Tidy: the layering rules of ARCHITECTURE.md, checked mechanically.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail loudly; clippy's in-test allowance covers only #[test] bodies"
)]

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn manifest(krate: &str) -> String {
    std::fs::read_to_string(workspace().join("crates").join(krate).join("Cargo.toml")).unwrap()
}

fn sources(krate: &str) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![workspace().join("crates").join(krate).join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path, text));
            }
        }
    }
    out
}

/// Whether `krate`'s normal (not dev) dependencies name `dependency`.
/// Tests may use anything, e.g. SQL to tamper with a database on purpose.
fn depends_on(krate: &str, dependency: &str) -> bool {
    let manifest = manifest(krate);
    let mut in_dependencies = false;
    manifest.lines().any(|line| {
        let line = line.trim();
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            return false;
        }
        in_dependencies
            && (line.starts_with(&format!("{dependency} "))
                || line.starts_with(&format!("{dependency}.")))
    })
}

#[test]
fn only_the_store_speaks_sql() {
    for krate in ["idplane-core", "idplane-app", "idplane-server"] {
        assert!(
            !depends_on(krate, "sqlx"),
            "{krate} must not depend on sqlx"
        );
    }
    assert!(depends_on("idplane-store", "sqlx"));
}

#[test]
fn only_the_server_knows_http_and_the_cli() {
    for krate in ["idplane-core", "idplane-store", "idplane-app"] {
        for edge in ["axum", "tower", "tower-http", "clap"] {
            assert!(
                !depends_on(krate, edge),
                "{krate} must not depend on {edge}"
            );
        }
    }
    // The use cases may call out (a client's jwks_uri, back-channel
    // logout), through `idplane_app::outbound` only; nothing below them may.
    for krate in ["idplane-core", "idplane-store"] {
        assert!(
            !depends_on(krate, "reqwest"),
            "{krate} must not depend on reqwest"
        );
    }
    for (path, text) in sources("idplane-app") {
        if text.contains("reqwest::Client::builder") {
            assert!(
                path.ends_with("outbound.rs"),
                "{} builds its own HTTP client; use idplane_app::outbound",
                path.display()
            );
        }
    }
}

#[test]
fn dependencies_point_down() {
    assert!(!depends_on("idplane-core", "idplane-store"));
    assert!(!depends_on("idplane-core", "idplane-app"));
    assert!(!depends_on("idplane-store", "idplane-app"));
    assert!(!depends_on("idplane-app", "idplane-server"));
}

#[test]
fn the_core_does_no_io() {
    for (path, text) in sources("idplane-core") {
        for io in ["std::fs", "std::net", "tokio", "std::process"] {
            assert!(!text.contains(io), "{} uses {io}", path.display());
        }
    }
}

#[test]
fn no_commit_without_an_audit_event() {
    // A transaction is committed in two places: WriteTx::commit_all (its own
    // transaction) and the SQLite group committer, whose units end only
    // through Unit::commit, which commit_all calls. In commit_all the audit
    // append precedes both. The one COMMIT written as SQL ends a transaction
    // that holds nothing but audit records (audit::append_transaction).
    let mut commits: Vec<_> = sources("idplane-store")
        .into_iter()
        .filter(|(_, text)| text.contains(".commit().await"))
        .map(|(path, text)| (path.file_name().unwrap().to_owned(), text))
        .collect();
    commits.sort();
    let files: Vec<_> = commits.iter().map(|(name, _)| name.clone()).collect();
    assert_eq!(
        files,
        ["group.rs", "lib.rs"],
        "transactions are committed only by WriteTx"
    );
    let lib = &commits[1].1;
    let append = lib.find("audit::append(&mut self, events)").unwrap();
    assert!(append < lib.find("tx.commit().await").unwrap());
    assert!(append < lib.find("unit.commit(heads).await").unwrap());
    let units_end = sources("idplane-store")
        .iter()
        .map(|(_, text)| text.matches("unit.commit(").count())
        .sum::<usize>();
    assert_eq!(
        units_end, 1,
        "a group unit ends only in WriteTx::commit_all"
    );
    let sql_commits: Vec<_> = sources("idplane-store")
        .into_iter()
        .filter(|(_, text)| text.contains("COMMIT\""))
        .map(|(path, _)| path.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(
        sql_commits,
        ["audit.rs"],
        "COMMIT as SQL only for audit records"
    );
}
