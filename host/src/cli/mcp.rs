//! `checkhost mcp`: the MCP tools over stdio for a local assistant, on the
//! config and database `validate`, `run` and `status` use.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use super::pipeline::{ConfigArgs, DatabaseArg};
use crate::api::client::ApiClient;
use crate::mcp::{Actions, Desk, LocalConfigs, NoDaemon, Uncounted, WriteBudget};
use crate::pipeline::setup::Setup;
use crate::runtime::Runtime;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct McpArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub database: DatabaseArg,
    /// A running daemon for `pause`, `resume`, `run_now` and `notify`.
    #[arg(long, env = "CHECKHOST_SERVER")]
    pub server: Option<String>,
    /// A file holding the daemon's API token (`api.token`).
    #[arg(long, requires = "server")]
    pub token_file: Option<PathBuf>,
}

pub async fn run(args: McpArgs, runtime: Runtime) -> anyhow::Result<ExitCode> {
    let (setup, _) = Setup::load(
        &args.config.config,
        args.config.plugins.as_ref(),
        &runtime,
        None,
        args.config.require_lock,
    )
    .await
    .map_err(anyhow::Error::msg)?;
    let store = Store::open(&setup.database_url(args.database.database.as_deref()))
        .await
        .context("opening the database")?;
    let actions: Arc<dyn Actions> = match &args.server {
        Some(server) => {
            let token = match &args.token_file {
                Some(file) => Some(
                    std::fs::read_to_string(file)
                        .with_context(|| format!("reading the token file {}", file.display()))?
                        .trim()
                        .to_string(),
                ),
                None => None,
            };
            Arc::new(ApiClient::new(server, token))
        }
        None => Arc::new(NoDaemon),
    };
    let desk = Arc::new(Desk {
        configs: Arc::new(LocalConfigs::new(
            args.config.config.clone(),
            args.config.plugins.clone(),
            args.config.require_lock,
            setup,
        )),
        store: Arc::new(store),
        runtime: Arc::new(runtime),
        actions,
        writes: WriteBudget::default(),
        editing: Default::default(),
        calls: Arc::new(Uncounted),
    });
    tracing::info!(config = %args.config.config.display(), "serving MCP on stdio");
    crate::mcp::serve_stdio(desk.clone()).await?;
    desk.store.close().await;
    Ok(ExitCode::SUCCESS)
}
