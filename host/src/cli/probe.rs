//! `checkhost probe`: the probe process, and the tokens the server knows
//! probes by.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::pipeline::DatabaseArg;
use crate::clock::now_ms;
use crate::pipeline::setup::database_url;
use crate::probe::agent::{self, ProbeOptions};
use crate::probe::wire::ProbeToken;
use crate::runtime::Runtime;
use crate::store::Store;
use crate::telemetry::{FLUSH_AT_EXIT, Traces};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ProbeArgs {
    #[command(subcommand)]
    pub command: Option<ProbeCommand>,
    #[command(flatten)]
    pub agent: AgentArgs,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The server, e.g. `https://checkhost.example:8080`; repeat it for
    /// several nodes of a cluster, tried in turn when one cannot be reached.
    #[arg(long, env = "CHECKHOST_PROBE_SERVER", value_delimiter = ',')]
    pub server: Vec<String>,
    /// The location this probe runs checks from.
    #[arg(long, env = "CHECKHOST_PROBE_LOCATION")]
    pub location: Option<String>,
    /// A file holding the probe's token (`checkhost probe token create`).
    #[arg(long, env = "CHECKHOST_PROBE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Where runs wait while the server cannot take them.
    #[arg(long, default_value = "checkhost-probe-spool.db")]
    pub spool: PathBuf,
    /// Runs the spool holds at most; beyond, the oldest are dropped and counted.
    #[arg(long, default_value_t = 100_000)]
    pub spool_max_runs: usize,
    /// Where fetched components are kept (default: beside the spool).
    #[arg(long)]
    pub components: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ProbeCommand {
    /// Create and revoke probe tokens (kept in the database as hashes).
    #[command(subcommand)]
    Token(TokenCommand),
    /// The probes the server knows, with their last heartbeat.
    List {
        #[command(flatten)]
        database: DatabaseArg,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a new token for a probe of LOCATION, once.
    Create {
        #[arg(long)]
        location: String,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Revoke a probe's token: its requests get 401 from now on.
    Revoke {
        /// The probe's id (`p…`, printed with its token and by `probe list`).
        id: String,
        #[command(flatten)]
        database: DatabaseArg,
    },
}

pub async fn run(
    args: ProbeArgs,
    runtime: impl FnOnce() -> anyhow::Result<Runtime>,
) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(ProbeCommand::Token(TokenCommand::Create { location, database })) => {
            if !valid_id(&location) {
                anyhow::bail!("--location `{location}`: ids use letters, digits, `_`, `.` and `-`");
            }
            let store = open(&database).await?;
            let token = ProbeToken::generate().map_err(|e| {
                anyhow::anyhow!("the system gave no randomness to make a token: {e}")
            })?;
            store
                .create_probe(&token.probe, &location, &token.secret_hash(), now_ms())
                .await?;
            store.close().await;
            eprintln!(
                "probe {} of location {location}: the token below is shown once, keep it in a file",
                token.probe
            );
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        Some(ProbeCommand::Token(TokenCommand::Revoke { id, database })) => {
            let store = open(&database).await?;
            let revoked = store.revoke_probe(&id, now_ms()).await?;
            store.close().await;
            if revoked {
                println!("probe {id} revoked");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("no probe {id} with a live token");
                Ok(ExitCode::from(1))
            }
        }
        Some(ProbeCommand::List { database, json }) => {
            let store = open(&database).await?;
            let probes = store.probes().await?;
            store.close().await;
            if json {
                println!("{}", serde_json::to_string_pretty(&probes)?);
            } else {
                for p in probes {
                    println!(
                        "{}\t{}\t{}\tseen {}\tspool {}{}",
                        p.id,
                        p.location_id,
                        p.version.as_deref().unwrap_or("-"),
                        p.last_seen_ms.map_or("never".into(), |t| t.to_string()),
                        p.spool_depth.unwrap_or(0),
                        if p.revoked_at_ms.is_some() {
                            "\trevoked"
                        } else {
                            ""
                        }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        None => agent(args.agent, runtime()?).await,
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

async fn open(database: &DatabaseArg) -> anyhow::Result<Store> {
    let url = database_url(database.database.as_deref(), None);
    Store::open(&url)
        .await
        .with_context(|| format!("opening the database {url}"))
}

async fn agent(args: AgentArgs, runtime: Runtime) -> anyhow::Result<ExitCode> {
    let missing = |flag: &str| anyhow::anyhow!("`checkhost probe` needs {flag}");
    if args.server.is_empty() {
        return Err(missing("--server URL"));
    }
    let location = args.location.ok_or_else(|| missing("--location ID"))?;
    let token_file = args
        .token_file
        .ok_or_else(|| missing("--token-file FILE"))?;
    let text = std::fs::read_to_string(&token_file)
        .with_context(|| format!("reading the token file {}", token_file.display()))?;
    let token = ProbeToken::parse(&text).with_context(|| {
        format!(
            "{}: not a probe token (chp_<id>_<secret>, from `checkhost probe token create`)",
            token_file.display()
        )
    })?;
    let components = args.components.unwrap_or_else(|| {
        let parent = args.spool.parent().map(PathBuf::from).unwrap_or_default();
        parent.join("checkhost-probe-components")
    });
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        super::serve::wait_for_shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let traces = Traces::start(&Default::default(), |name| std::env::var(name).ok())?;
    tracing::info!(servers = ?args.server, %location, probe = %token.probe, "probe starting");
    agent::run(
        ProbeOptions {
            servers: args.server,
            token,
            location,
            components,
            spool: args.spool,
            spool_max_runs: args.spool_max_runs,
            traces: traces.clone(),
        },
        Arc::new(runtime),
        stop,
    )
    .await?;
    traces.flush(FLUSH_AT_EXIT).await;
    Ok(ExitCode::SUCCESS)
}
