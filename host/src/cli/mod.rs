//! The command line: argument parsing and dispatch to one module per command.

mod output;
mod plugin;

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
    /// Inspect and try out plugin components.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
}

pub fn init_logging(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CHECKHOST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn runtime(cli_cache: Option<PathBuf>) -> anyhow::Result<Runtime> {
    let mut config = RuntimeConfig::default();
    if cli_cache.is_some() {
        config.cache_dir = cli_cache;
    }
    Ok(Runtime::new(config)?)
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Plugin(cmd) => plugin::run(cmd, runtime(cli.cache_dir)?).await,
    }
}
