//! The command line: argument parsing and dispatch to one module per command.

mod incident;
mod mcp;
pub mod output;
pub mod pipeline;
mod plugin;
mod probe;
mod serve;
mod top;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::runtime::{Runtime, RuntimeConfig};

#[derive(Debug, Parser)]
#[command(
    name = "checkhost",
    version,
    about = "Health checks whose probes run as WebAssembly components"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Where precompiled components are cached (default: ~/.cache/checkhost/components).
    #[arg(long, global = true, env = "CHECKHOST_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// MiB of linear memory the runs in flight may start with, all together;
    /// runs of interpreted guests (Python 12.4, JavaScript 9.1 MiB) wait
    /// for room sooner than native ones (about 1 MiB).
    #[arg(
        long,
        global = true,
        env = "CHECKHOST_GUEST_MEMORY_BUDGET",
        value_name = "MIB",
        default_value_t = crate::runtime::DEFAULT_GUEST_MEMORY_BUDGET_MIB,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub guest_memory_budget: u64,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The daemon: keeps every check running on its interval, reloads on
    /// SIGHUP or file changes, serves /metrics, /healthz and /readyz.
    Serve(ServeArgs),
    /// Run the selected checks once through the whole pipeline into the
    /// database; exit 0 when all are healthy, 1 when any is not, 2 on
    /// configuration errors.
    Run(pipeline::RunArgs),
    /// Check a configuration against the loaded plugins; persists nothing.
    Validate {
        #[command(flatten)]
        config: pipeline::ConfigArgs,
        #[arg(long)]
        json: bool,
        /// Check everything but whether secrets can be resolved here (for
        /// CI machines without production secrets); references must still
        /// be well-formed.
        #[arg(long)]
        skip_secrets: bool,
    },
    /// Current status of every system and environment, and recent transitions.
    Status {
        #[command(flatten)]
        database: pipeline::DatabaseArg,
        #[arg(long)]
        json: bool,
    },
    /// Apply retention: prune raw runs, roll hourly aggregates into daily.
    Retention {
        #[command(flatten)]
        database: pipeline::DatabaseArg,
    },
    /// Open, update, resolve and list incidents through a running daemon.
    #[command(subcommand)]
    Incident(incident::IncidentCommand),
    /// Print the JSON Schema of the configuration file.
    ConfigSchema,
    /// Inspect and try out plugin components.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Run a location's checks for a server (`--server --location
    /// --token-file`), or manage probe tokens.
    Probe(probe::ProbeArgs),
    /// The checks whose guests cost the most, live from a daemon.
    Top(top::TopArgs),
    /// AI tools over MCP on stdio: discover plugins, propose, dry-run and
    /// apply checks, read status; stdout carries only MCP messages.
    Mcp(mcp::McpArgs),
    /// Measure checkhost against a baseline run in the same process.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A YAML file, or a folder of them.
    #[arg(default_value = "checkhost.yaml")]
    pub config: PathBuf,
    /// Plugin folder; overrides `plugins:` in the config.
    #[arg(long, env = "CHECKHOST_PLUGINS")]
    pub plugins: Option<PathBuf>,
    /// `sqlite://path` or `postgres://user@host/db`; default: `database:`
    /// of the config, else `sqlite://checkhost.db`.
    #[arg(long, env = "CHECKHOST_DATABASE")]
    pub database: Option<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// How long runs in flight may take to finish on SIGTERM/SIGINT.
    #[arg(long, default_value = "10s", value_parser = parse_duration_arg)]
    pub grace: std::time::Duration,
    /// Runs at once; at this bound the scheduler waits.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Refuse to start, or to reload, without `checkhost.lock` beside the
    /// config.
    #[arg(long)]
    pub require_lock: bool,
}

fn parse_duration_arg(text: &str) -> Result<std::time::Duration, String> {
    crate::config::parse_duration(text)
        .ok_or_else(|| format!("`{text}` is not a duration like 10s or 500ms"))
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Run cycle of a no-op strategy+collector against raw wasmtime.
    Runtime {
        /// Folder of built guests (noop.wasm, hostile.wasm).
        #[arg(long, default_value = "target/test-guests")]
        guests: PathBuf,
        #[arg(long, default_value_t = 5_000)]
        iterations: u32,
        /// Instead: the host cost of runs of this collector component (any
        /// language) against the Rust no-op collector, over the no-op strategy.
        #[arg(long)]
        collector: Option<PathBuf>,
        /// The collector's config for `--collector`.
        #[arg(long, default_value = "{}")]
        collector_config: String,
    },
    /// HTTP checks through the whole pipeline into the store against a
    /// native client, then one pass of `--pass-checks` checks.
    Pipeline {
        /// Folder with the http and request plugins.
        #[arg(long, default_value = "target/guests")]
        guests: PathBuf,
        /// `sqlite` (a temporary file) or a `postgres://` URL, on whose
        /// server a scratch database is made and dropped.
        #[arg(long, default_value = "sqlite")]
        database: String,
        #[arg(long, default_value_t = 5_000)]
        runs: usize,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 1_000)]
        pass_checks: usize,
        /// The hostile test guest (`target/test-guests/hostile.wasm`): also
        /// measure the ordinary checks beside hostile slices at their caps.
        #[arg(long)]
        hostile: Option<PathBuf>,
        /// The share of slices that are hostile, in percent.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=50))]
        hostile_percent: u32,
        /// How long each hostile run holds its caps (its check's timeout),
        /// in milliseconds; then it runs again. Each phase lasts four.
        #[arg(long, default_value_t = 10_000)]
        hostile_hold_ms: u64,
    },
    /// Peak RSS, PSS and CPU of one `checkhost run` pass of HTTP checks with
    /// a collector (any language) against the same pass with the Rust
    /// `request` collector, each in a child process.
    Pass {
        /// Folder with the http and request plugins and the collector.
        #[arg(long, default_value = "target/guests")]
        guests: PathBuf,
        /// Plugin id of the collector measured.
        #[arg(long, default_value = "json-field")]
        collector: String,
        /// Its config; the server answers `{"status":"up"}` at /health.
        #[arg(long, default_value = "{url: /health, field: status}")]
        collector_config: String,
        #[arg(long, default_value_t = 300)]
        checks: usize,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Wall time, CPU and peak RSS of `checkhost run` of one check, each a
    /// fresh process, with a folder of all the guests against a folder of
    /// only the two plugins the check uses.
    ColdStart {
        /// Folder of built guests (http and request among them).
        #[arg(long, default_value = "target/guests")]
        guests: PathBuf,
        /// Measured runs per side, after two warm-ups each.
        #[arg(long, default_value_t = 15)]
        runs: usize,
    },
    /// The daemon under load: no-op slices through the real scheduler and
    /// store; sustained runs/s, scheduling lag, RSS and CPU per run.
    Serve {
        /// Folder of built test guests (noop.wasm, hostile.wasm).
        #[arg(long, default_value = "target/test-guests")]
        guests: PathBuf,
        /// `sqlite` (a temporary file) or a `postgres://` URL.
        #[arg(long, default_value = "sqlite")]
        database: String,
        #[arg(long, default_value_t = 100_000)]
        slices: usize,
        #[arg(long, default_value = "30s", value_parser = parse_duration_arg)]
        interval: std::time::Duration,
        #[arg(long, default_value = "120s", value_parser = parse_duration_arg)]
        duration: std::time::Duration,
    },
    /// `GET /api/v1/systems` over HTTP with N systems × E environments of
    /// stored states, against a plain SELECT of the same rows (p50/p99).
    Api {
        /// Folder of built test guests (noop.wasm, hostile.wasm).
        #[arg(long, default_value = "target/test-guests")]
        guests: PathBuf,
        /// `sqlite` (a temporary file) or a `postgres://` URL.
        #[arg(long, default_value = "sqlite")]
        database: String,
        #[arg(long, default_value_t = 10_000)]
        systems: usize,
        #[arg(long, default_value_t = 3)]
        environments: usize,
        #[arg(long, default_value_t = 200)]
        requests: usize,
    },
    /// Cluster coordination on PostgreSQL: N in-process nodes claiming
    /// no-op slices from the shared schedule, against one node of the local
    /// scheduler; claimed slices/s, statements and CPU per run.
    Cluster {
        /// Folder of built test guests (noop.wasm, hostile.wasm).
        #[arg(long, default_value = "target/test-guests")]
        guests: PathBuf,
        /// A `postgres://` URL, on whose server scratch databases are made.
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
        database: String,
        #[arg(long, default_value_t = 1)]
        nodes: usize,
        #[arg(long, default_value_t = 2_000)]
        slices: usize,
        #[arg(long, default_value = "2s", value_parser = parse_duration_arg)]
        interval: std::time::Duration,
        #[arg(long, default_value = "20s", value_parser = parse_duration_arg)]
        duration: std::time::Duration,
    },
    /// Probe ingest: batches of probe runs over HTTP into a server in this
    /// process, against `bench store` in the same run.
    Probe {
        /// Folder of built test guests (noop.wasm, hostile.wasm).
        #[arg(long, default_value = "target/test-guests")]
        guests: PathBuf,
        /// `sqlite` (a temporary file) or a `postgres://` URL.
        #[arg(long, default_value = "sqlite")]
        database: String,
        #[arg(long, default_value_t = 100_000)]
        runs: usize,
        #[arg(long, default_value_t = 10_000)]
        slices: usize,
        /// Probes posting at once, each one batch after another.
        #[arg(long, default_value_t = 4)]
        probes: usize,
        /// Slices of the `checkhost probe` process measured after the
        /// ingest, idle (every hour) and loaded (every second).
        #[arg(long, default_value_t = 200)]
        process_slices: usize,
        /// Each of its measured windows; `0s` skips the process.
        #[arg(long, default_value = "30s", value_parser = parse_duration_arg)]
        process_window: std::time::Duration,
    },
    /// Record-only store throughput and bytes per run against plain
    /// batched INSERTs of the same rows through the same driver.
    Store {
        /// `sqlite` (a temporary file) or a `postgres://` URL, on whose
        /// server scratch databases are made and dropped.
        #[arg(long, default_value = "sqlite")]
        database: String,
        #[arg(long, default_value_t = 100_000)]
        runs: usize,
        /// Distinct slices the runs spread over.
        #[arg(long, default_value_t = 10_000)]
        slices: usize,
    },
}

pub fn init_logging(cli: &Cli) {
    // The daemon reports each run; one-shot commands speak for themselves.
    let default = match cli.command {
        Command::Serve(_) => "warn,checkhost=info,wasmtime_wasi_http=error",
        _ => "warn,wasmtime_wasi_http=error",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CHECKHOST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn start_runtime(
    cli_cache: Option<PathBuf>,
    guest_memory_budget_mib: u64,
) -> anyhow::Result<Runtime> {
    let mut config = RuntimeConfig {
        guest_memory_budget_mib,
        ..RuntimeConfig::default()
    };
    if cli_cache.is_some() {
        config.cache_dir = cli_cache;
    }
    Ok(Runtime::new(config)?)
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let (cache_dir, budget) = (cli.cache_dir, cli.guest_memory_budget);
    // Only the commands that run guests start the wasm runtime.
    let runtime = || start_runtime(cache_dir.clone(), budget);
    match cli.command {
        Command::Serve(args) => {
            let options = serve::ServeOptions {
                config: args.config,
                plugins: args.plugins,
                database: args.database,
                listen: args.listen,
                grace: args.grace,
                concurrency: args.concurrency,
                require_lock: args.require_lock,
            };
            serve::serve(options, runtime()?).await
        }
        Command::Run(args) => pipeline::run(args, runtime()?).await,
        Command::Validate {
            config,
            json,
            skip_secrets,
        } => pipeline::validate(config, json, skip_secrets, runtime()?).await,
        Command::Status { database, json } => pipeline::status(database, json).await,
        Command::Retention { database } => pipeline::retention(database).await,
        Command::Incident(cmd) => incident::run(cmd).await,
        Command::Top(args) => top::run(args).await,
        Command::Mcp(args) => mcp::run(args, runtime()?).await,
        Command::ConfigSchema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&crate::config::json_schema())?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(cmd) => plugin::run(cmd, runtime()?).await,
        Command::Probe(args) => probe::run(args, runtime).await,
        Command::Bench(BenchCommand::Runtime {
            guests,
            iterations,
            collector: Some(component),
            collector_config,
        }) => {
            let report = crate::bench::runtime::collector(
                &guests,
                &component,
                &collector_config,
                iterations,
            )
            .await?;
            println!("{}", report.render());
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Runtime {
            guests,
            iterations,
            collector: None,
            ..
        }) => {
            let report = crate::bench::runtime::run(&guests, iterations).await?;
            println!("{}", report.render());
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Pipeline {
            guests,
            database,
            runs,
            concurrency,
            pass_checks,
            hostile,
            hostile_percent,
            hostile_hold_ms,
        }) => {
            let hostile = hostile.map(|plugin| crate::bench::pipeline::HostileMix {
                plugin,
                percent: hostile_percent,
                hold: std::time::Duration::from_millis(hostile_hold_ms),
            });
            let report = crate::bench::pipeline::run(
                &guests,
                &database,
                runs,
                concurrency,
                pass_checks,
                hostile,
            )
            .await?;
            println!("{}", report.render());
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Pass {
            guests,
            collector,
            collector_config,
            checks,
            rounds,
        }) => {
            let report = crate::bench::pass::run(crate::bench::pass::PassOptions {
                guests,
                collector,
                collector_config,
                checks,
                rounds,
                guest_memory_budget_mib: budget,
            })
            .await?;
            println!("{}", report.render());
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Serve {
            guests,
            database,
            slices,
            interval,
            duration,
        }) => {
            let report =
                crate::bench::serve::run(&guests, &database, slices, interval, duration).await?;
            println!("{}", report.render());
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Api {
            guests,
            database,
            systems,
            environments,
            requests,
        }) => {
            let report =
                crate::bench::api::run(&guests, &database, systems, environments, requests.max(1))
                    .await?;
            println!("{}", report.render());
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Cluster {
            guests,
            database,
            nodes,
            slices,
            interval,
            duration,
        }) => {
            let report =
                crate::bench::cluster::run(&guests, &database, nodes, slices, interval, duration)
                    .await?;
            println!("{}", report.render());
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Probe {
            guests,
            database,
            runs,
            slices,
            probes,
            process_slices,
            process_window,
        }) => {
            let mut report =
                crate::bench::probe::run(&guests, &database, runs, slices, probes).await?;
            if !process_window.is_zero() {
                report.process =
                    crate::bench::probe::process(&guests, process_slices, process_window).await?;
            }
            println!("{}", report.render());
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::ColdStart { guests, runs }) => {
            let report = crate::bench::cold_start::run(&guests, runs).await?;
            println!("{}", report.render());
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Store {
            database,
            runs,
            slices,
        }) => {
            let report = crate::bench::store::run(&database, runs, slices).await?;
            println!("{}", report.render());
            Ok(ExitCode::SUCCESS)
        }
    }
}
