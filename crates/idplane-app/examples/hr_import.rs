//! Times an HR import of a generated workforce: the plan (a dry run) and
//! the apply of the first snapshot (every row a joiner, with birthright),
//! then plan and apply of a second snapshot with 2 % movers and 1 % leavers.
//!
//! `cargo run --release -p idplane-app --example hr_import -- [--rows N] [--database-url URL]`
//! (100,000 rows; SQLite in a temporary directory unless a URL is given).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use idplane_app::App;
use idplane_app::directory::groups::CreateGroup;
use idplane_app::directory::roles::CreateRole;
use idplane_app::keyring::Keyring;
use idplane_app::lifecycle::birthright::{BirthrightRule, LifecycleRules};
use idplane_app::lifecycle::hr::HrMapping;
use idplane_core::{Actor, Ctx, RequestMeta, SystemClock};
use idplane_store::{Store, StoreOptions};

/// The server's allocator, so these figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEPARTMENTS: [&str; 4] = ["Sales", "Engineering", "Support", "Finance"];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rows = 100_000usize;
    let mut url = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rows" => rows = args.next().ok_or("--rows N")?.parse()?,
            "--database-url" => url = Some(args.next().ok_or("--database-url URL")?),
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    let dir = tempfile::tempdir()?;
    let url = url.unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        )
    });
    let options = StoreOptions {
        schema: url
            .starts_with("postgres")
            .then(|| format!("bench_{}", uuid::Uuid::now_v7().simple())),
        ..Default::default()
    };
    let store = Store::open(&url, &options).await?;
    let app = App::start(
        store,
        Arc::new(SystemClock),
        Keyring::ephemeral()?,
        Default::default(),
    )
    .await?;
    let tenant = app.default_tenant_id().await?;
    let ctx = app.ctx(tenant, Actor::System, RequestMeta::default());
    rules(&app, &ctx).await?;
    let mapping = mapping();
    println!(
        "{rows} rows on {}",
        url.split(':').next().unwrap_or_default()
    );

    let first = snapshot(rows, 0, 0);
    println!("snapshot 1: {} MB", first.len() / 1_000_000);
    measure(&app, &mapping, &first, "snapshot 1 (all joiners)").await?;
    let second = snapshot(rows, rows / 50, rows / 100);
    measure(
        &app,
        &mapping,
        &second,
        "snapshot 2 (2 % movers, 1 % leavers)",
    )
    .await?;
    Ok(())
}

async fn measure(
    app: &App,
    mapping: &HrMapping,
    csv: &str,
    label: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let tenant = app.default_tenant_id().await?;
    let ctx = app.ctx(tenant, Actor::System, RequestMeta::default());
    let start = Instant::now();
    let plan = app
        .hr_import(&ctx, csv.as_bytes(), mapping, true, false)
        .await?;
    let planned = start.elapsed();
    let ctx = app.ctx(tenant, Actor::System, RequestMeta::default());
    let start = Instant::now();
    let done = app
        .hr_import(&ctx, csv.as_bytes(), mapping, false, false)
        .await?;
    let applied = start.elapsed();
    if !done.applied {
        return Err(format!("{label}: refused: {:?}", done.plan.refused).into());
    }
    println!(
        "{label}: {} joiners, {} movers, {} leavers, {} unchanged; plan {:.2} s, apply {:.2} s (plans again inside)",
        plan.plan.joiners.len(),
        plan.plan.movers.len(),
        plan.plan.leavers.len(),
        plan.plan.unchanged,
        planned.as_secs_f64(),
        applied.as_secs_f64()
    );
    Ok(())
}

async fn rules(app: &App, ctx: &Ctx) -> Result<(), Box<dyn std::error::Error>> {
    let mut birthright = Vec::new();
    for dept in DEPARTMENTS {
        let name = dept.to_ascii_lowercase();
        app.create_group(
            ctx,
            CreateGroup {
                name: name.clone(),
                display_name: None,
                external_id: None,
                attributes: None,
            },
        )
        .await?;
        app.create_role(
            ctx,
            CreateRole {
                name: format!("{name}-app"),
                description: None,
                entitlements: vec![],
            },
        )
        .await?;
        birthright.push(BirthrightRule {
            id: name.clone(),
            description: None,
            when: BTreeMap::from([("department".to_owned(), dept.into())]),
            groups: vec![name.clone()],
            roles: vec![format!("{name}-app")],
        });
    }
    app.set_lifecycle_rules(
        ctx,
        LifecycleRules {
            birthright,
            mover_grace: Some("7d".into()),
            max_leaver_share: None,
        },
    )
    .await?;
    Ok(())
}

fn mapping() -> HrMapping {
    HrMapping {
        employee_id: "Employee ID".into(),
        username: "Login".into(),
        email: Some("Email".into()),
        given_name: Some("First".into()),
        family_name: Some("Last".into()),
        department: Some("Department".into()),
        title: Some("Title".into()),
        manager_employee_id: Some("Manager".into()),
        user_type: Some("Type".into()),
        end_date: Some("End".into()),
        sponsor_employee_id: Some("Sponsor".into()),
        ..HrMapping::default()
    }
}

/// `rows` people; the first `movers` change department, the last `leavers`
/// are missing. Every 20th person is a contractor sponsored by person 0;
/// everyone but person 0 has a manager among the first hundred.
fn snapshot(rows: usize, movers: usize, leavers: usize) -> String {
    let mut csv = String::from(
        "Employee ID,Login,Email,First,Last,Department,Title,Manager,Type,End,Sponsor\n",
    );
    for i in 0..rows - leavers {
        let shift = usize::from(i > 0 && i <= movers);
        let dept = DEPARTMENTS[(i + shift) % DEPARTMENTS.len()];
        let manager = if i == 0 {
            String::new()
        } else {
            format!("E{}", i % 100)
        };
        let (kind, end, sponsor) = if i % 20 == 19 {
            ("contractor", "2027-12-31", "E0")
        } else {
            ("employee", "", "")
        };
        let _ = writeln!(
            csv,
            "E{i},user{i},user{i}@example.com,First{i},Last{i},{dept},Title {},{manager},{kind},{end},{sponsor}",
            i % 37
        );
    }
    csv
}
