//! `checkhost run | validate | status | retention | config-schema`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::output::{clip, inert, table};
use crate::clock::now_ms;
use crate::pipeline::run::{Pipeline, RunReport, Selection};
use crate::pipeline::setup::{Setup, database_url};
use crate::runtime::Runtime;
use crate::store::Store;
use crate::store::retention::RetentionPolicy;
use crate::telemetry::{FLUSH_AT_EXIT, Traces};

/// Exit code for configuration errors (bad YAML, unknown ids, bad plugins).
const CONFIG_ERROR: u8 = 2;

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// A YAML file, or a folder of them.
    pub config: PathBuf,
    /// Plugin folder; overrides `plugins:` in the config.
    #[arg(long, env = "CHECKHOST_PLUGINS")]
    pub plugins: Option<PathBuf>,
    /// Refuse to start without `checkhost.lock` beside the config.
    #[arg(long)]
    pub require_lock: bool,
}

#[derive(Debug, Args)]
pub struct DatabaseArg {
    /// `sqlite://path` or `postgres://user@host/db`; default: `database:` of
    /// the config, else `sqlite://checkhost.db`.
    #[arg(long, env = "CHECKHOST_DATABASE")]
    pub database: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub database: DatabaseArg,
    #[arg(long)]
    pub system: Option<String>,
    #[arg(long)]
    pub check: Option<String>,
    #[arg(long = "env")]
    pub environment: Option<String>,
    #[arg(long)]
    pub json: bool,
}

fn config_error(message: &str) -> ExitCode {
    eprintln!("error: {}", inert(message));
    ExitCode::from(CONFIG_ERROR)
}

pub async fn validate(
    args: ConfigArgs,
    json: bool,
    skip_secrets: bool,
    runtime: Runtime,
) -> anyhow::Result<ExitCode> {
    let loaded = match Setup::load(
        &args.config,
        args.plugins.as_ref(),
        &runtime,
        None,
        args.require_lock,
    )
    .await
    {
        Ok((setup, _)) => setup,
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"valid": false, "problems": [{"place": args.config.display().to_string(), "message": e}]})
                );
                return Ok(ExitCode::from(1));
            }
            eprintln!("error: {}", inert(&e));
            return Ok(ExitCode::from(1));
        }
    };
    let mut problems = crate::validate::validate(
        &loaded.config.file,
        &loaded.plugins,
        &runtime,
        &loaded.secrets,
    )
    .await;
    if skip_secrets {
        let before = problems.len();
        problems.retain(|p| !p.missing_secret);
        if before > problems.len() && !json {
            eprintln!(
                "note: {} secret reference(s) not resolved here (--skip-secrets)",
                before - problems.len()
            );
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"valid": problems.is_empty(), "problems": problems})
            )?
        );
    } else if problems.is_empty() {
        println!("{}: valid", args.config.display());
    } else {
        for p in &problems {
            println!("{}: {}", args.config.display(), inert(&p.to_string()));
        }
    }
    // A file whose bytes are not the ones the lock pins is a supply-chain
    // refusal, not a mistake in the file: told apart by its exit code.
    let tampered = loaded.plugins.broken().iter().any(|b| b.digest_mismatch);
    Ok(if tampered {
        ExitCode::from(CONFIG_ERROR)
    } else if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub async fn run(args: RunArgs, runtime: Runtime) -> anyhow::Result<ExitCode> {
    let selection = Selection {
        system: args.system,
        check: args.check,
        environment: args.environment,
    };
    let loaded = match Setup::load_selected(
        &args.config.config,
        args.config.plugins.as_ref(),
        &runtime,
        args.config.require_lock,
        &selection,
    )
    .await
    {
        Ok(setup) => setup,
        Err(e) => return Ok(config_error(&e)),
    };
    let selected = crate::pipeline::setup::selected_checks(&loaded.config.file, &selection);
    let blocking = crate::validate::blocking_problems(&loaded, &runtime, Some(&selected)).await;
    if !blocking.is_empty() {
        for p in blocking {
            eprintln!(
                "error: {}: {}",
                args.config.config.display(),
                inert(&p.to_string())
            );
        }
        return Ok(ExitCode::from(CONFIG_ERROR));
    }
    let store = Store::open(&loaded.database_url(args.database.database.as_deref())).await?;
    let traces = Traces::start(&loaded.config.file.traces, |name| std::env::var(name).ok())?;
    let pipeline = Pipeline {
        runtime: &runtime,
        plugins: &loaded.plugins,
        config: &loaded.config.file,
        store: &store,
        secrets: loaded.secrets.clone(),
        concurrency: crate::pipeline::run::RUN_CONCURRENCY,
        start_by: None,
        traces: traces.clone(),
    };
    let total = pipeline.planned_runs(&selection);
    let progress = !args.json && std::io::stderr().is_terminal() && total > 1;
    let done = std::sync::atomic::AtomicUsize::new(0);
    let on_done = |r: &RunReport| {
        let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if progress {
            eprint!("\r[{n}/{total}] {} {}", r.system, r.check);
        }
    };
    let reports = pipeline.run(&selection, &on_done).await;
    store.close().await;
    traces.flush(FLUSH_AT_EXIT).await;
    let reports = reports?;
    if progress {
        eprintln!();
    }
    let all_healthy = reports.iter().all(|r| r.healthy);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        print_reports(&reports);
    }
    Ok(if all_healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_reports(reports: &[RunReport]) {
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            let mut problems = r.failed_assertions();
            if let Some(e) = &r.error {
                problems.insert(0, e.clone());
            }
            vec![
                r.system.clone(),
                r.environment.clone().unwrap_or_else(|| "-".into()),
                r.check.clone(),
                if r.healthy {
                    "healthy".into()
                } else {
                    "unhealthy".into()
                },
                format!("{:.0} ms", r.latency_ms),
                clip(&problems.join("; "), 120),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "system",
                "environment",
                "check",
                "status",
                "latency",
                "failed assertions / error"
            ],
            &rows
        )
    );
}

pub async fn status(database: DatabaseArg, json: bool) -> anyhow::Result<ExitCode> {
    let store = Store::open(&database_url(database.database.as_deref(), None))
        .await
        .context("opening the database")?;
    let statuses = store.statuses().await?;
    let transitions = store
        .transitions(&crate::store::read::TransitionQuery {
            limit: 20,
            ..Default::default()
        })
        .await?;
    let nodes = store.nodes().await?;
    let probes = store.probes().await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "entities": statuses, "transitions": transitions, "nodes": nodes,
                "probes": probes,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = statuses
        .iter()
        .map(|s| {
            vec![
                s.entity_id.clone(),
                s.status.to_string(),
                format_ms(s.updated_at_ms),
            ]
        })
        .collect();
    println!("{}", table(&["entity", "status", "since"], &rows));
    if !transitions.is_empty() {
        println!("\nrecent transitions:");
        let rows: Vec<Vec<String>> = transitions
            .iter()
            .map(|t| {
                vec![
                    format_ms(t.at_ms),
                    t.entity_id.clone(),
                    format!("{} -> {}", t.from, t.to),
                    t.kind.as_str().into(),
                    t.check_id.clone(),
                ]
            })
            .collect();
        println!(
            "{}",
            table(&["time", "entity", "change", "kind", "check"], &rows)
        );
    }
    if !nodes.is_empty() {
        println!("\nnodes:");
        let now = crate::clock::now_ms();
        let rows: Vec<Vec<String>> = nodes
            .iter()
            .map(|n| {
                let state = match n.stopped_at_ms {
                    Some(at) => format!("stopped {}", format_ms(at)),
                    None if now - n.heartbeat_at_ms > 5_000 => "gone (no heartbeat)".into(),
                    None => "alive".into(),
                };
                vec![
                    n.id.clone(),
                    state,
                    format!("{:.1} s ago", (now - n.heartbeat_at_ms) as f64 / 1000.0),
                    n.leases.to_string(),
                    n.config_version.clone(),
                ]
            })
            .collect();
        println!(
            "{}",
            table(&["node", "state", "heartbeat", "leases", "config"], &rows)
        );
    }
    if !probes.is_empty() {
        println!("\nprobes:");
        let now = crate::clock::now_ms();
        let rows: Vec<Vec<String>> = probes
            .iter()
            .map(|p| {
                vec![
                    p.id.clone(),
                    p.location_id.clone(),
                    p.version.clone().unwrap_or_else(|| "-".into()),
                    match (p.revoked_at_ms, p.last_seen_ms) {
                        (Some(at), _) => format!("revoked {}", format_ms(at)),
                        (None, Some(seen)) => {
                            format!("{:.1} s ago", (now - seen) as f64 / 1000.0)
                        }
                        (None, None) => "never".into(),
                    },
                    format!(
                        "{} waiting, {} dropped",
                        p.spool_depth.unwrap_or(0),
                        p.spool_dropped.unwrap_or(0)
                    ),
                ]
            })
            .collect();
        println!(
            "{}",
            table(
                &["probe", "location", "version", "last seen", "spool"],
                &rows
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn retention(database: DatabaseArg) -> anyhow::Result<ExitCode> {
    let store = Store::open(&database_url(database.database.as_deref(), None))
        .await
        .context("opening the database")?;
    let report = store
        .retention(RetentionPolicy::default(), now_ms())
        .await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}

fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}
