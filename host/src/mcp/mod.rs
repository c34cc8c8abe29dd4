//! AI tools over MCP (the official `rmcp` SDK): assistants discover plugins, propose, dry-run and apply checks as config-as-code, read status and act, within the operator's bounds.

mod args;
pub mod daemon;
pub mod desk;
mod edit;
mod proposal;
mod reads;
mod tools;

use std::sync::Arc;

use rmcp::ServiceExt;

pub use desk::{Actions, CallSink, Configs, Desk, LocalConfigs, NoDaemon, Uncounted, WriteBudget};
pub use tools::Tools;

/// Serves MCP on stdin and stdout until the client closes stdin. Only MCP
/// messages go to stdout; logs go to stderr. A line is read up to the
/// SDK's 16 MiB; arguments past `MAX_ARGUMENT_BYTES` are refused with a
/// message by the tools.
pub async fn serve_stdio(desk: Arc<Desk>) -> anyhow::Result<()> {
    let service = Tools::new(desk).serve(rmcp::transport::stdio()).await?;
    service.waiting().await?;
    Ok(())
}
