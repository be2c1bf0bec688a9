//! Offline audit tools: they read the database directly, so they work
//! while the server is down and trust nothing the server says.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use idplane_app::audit::{ExportFormat, VerifyFailure, export_line, verify_store};
use idplane_core::audit::Checkpoint;
use idplane_store::audit::AuditFilter;
use idplane_store::{Store, StoreOptions, redact_url};

use crate::cli::{AuditCommand, ExportFormatArg, StoreLocation};

pub async fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify { store, checkpoint } => verify(store, checkpoint).await,
        AuditCommand::Export {
            store,
            since,
            format,
            tenant,
        } => export(store, since, format, tenant)
            .await
            .map(|()| ExitCode::SUCCESS),
    }
}

async fn open(location: StoreLocation) -> anyhow::Result<Store> {
    let url = match (location.data, location.database_url) {
        (Some(dir), _) => {
            let file = dir.join("idplane.db");
            if !file.exists() {
                bail!("no idplane database in {}", dir.display());
            }
            format!("sqlite://{}?mode=rw", file.display())
        }
        (None, Some(url)) => url,
        (None, None) => bail!("give --data DIR or --database-url URL"),
    };
    let options = StoreOptions {
        skip_migrations: true,
        ..Default::default()
    };
    Store::open(&url, &options)
        .await
        .with_context(|| format!("cannot open {}", redact_url(&url)))
}

async fn verify(
    location: StoreLocation,
    checkpoint: Option<std::path::PathBuf>,
) -> anyhow::Result<ExitCode> {
    let checkpoint: Option<Checkpoint> = match checkpoint {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not a checkpoint", path.display()))?,
            )
        }
        None => None,
    };
    let store = open(location).await?;
    match verify_store(&store, checkpoint.as_ref()).await {
        Ok(report) => {
            for (tenant, records) in &report.chains {
                println!("tenant {tenant}: {records} records, chain intact");
            }
            if let Some(cp) = &checkpoint {
                println!(
                    "checkpoint: signature valid; the log reaches record {} of tenant {}",
                    cp.seq, cp.tenant_id
                );
            }
            println!("audit log verified");
            Ok(ExitCode::SUCCESS)
        }
        Err(VerifyFailure::App(e)) => Err(anyhow::anyhow!("{e}")),
        Err(failure) => {
            eprintln!("idplane: audit log verification FAILED: {failure}");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn export(
    location: StoreLocation,
    since: Option<jiff::Timestamp>,
    format: ExportFormatArg,
    tenant: Option<String>,
) -> anyhow::Result<()> {
    let store = open(location).await?;
    let format = match format {
        ExportFormatArg::Jsonl => ExportFormat::Jsonl,
        ExportFormatArg::Ocsf => ExportFormat::Ocsf,
    };
    let mut conn = store.read().await?;
    let tenants = match tenant {
        Some(name) => vec![
            idplane_store::tenants::by_name(&mut conn, &name)
                .await?
                .with_context(|| format!("tenant `{name}` not found"))?
                .id,
        ],
        None => idplane_store::audit::heads(&mut conn)
            .await?
            .into_iter()
            .map(|(t, _)| t)
            .collect(),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for tenant in tenants {
        let mut after = 0;
        loop {
            let filter = AuditFilter {
                since,
                after_seq: Some(after),
                limit: 5000,
                ..Default::default()
            };
            let page = idplane_store::audit::query(&mut conn, tenant, &filter).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for record in &page {
                serde_json::to_writer(&mut out, &export_line(record, format))?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    Ok(())
}
