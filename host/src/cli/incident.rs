//! `checkhost incident open|update|resolve|list`: incidents through a
//! running daemon's API, so they are checked against its configuration,
//! need its token, and reach every node of a cluster.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

#[derive(Debug, Subcommand)]
pub enum IncidentCommand {
    /// Open an incident (or post an announcement with --severity notice).
    Open {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        title: String,
        /// notice, minor, major or critical.
        #[arg(long, default_value = "major")]
        severity: String,
        /// An affected system id; repeat for several; none: all systems.
        #[arg(long = "system")]
        systems: Vec<String>,
        /// The first update, plain text.
        #[arg(long)]
        body: String,
        /// investigating (default), identified, monitoring or update.
        #[arg(long)]
        state: Option<String>,
    },
    /// Add an update to an open incident.
    Update {
        #[command(flatten)]
        server: ServerArgs,
        id: i64,
        #[arg(long)]
        body: String,
        /// identified, monitoring, update (default), investigating.
        #[arg(long)]
        state: Option<String>,
    },
    /// Resolve an open incident.
    Resolve {
        #[command(flatten)]
        server: ServerArgs,
        id: i64,
        #[arg(long)]
        body: Option<String>,
    },
    /// List open incidents (--all: resolved ones too).
    List {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The daemon's address.
    #[arg(
        long,
        env = "CHECKHOST_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    server: String,
    /// A file holding the API token (`api.token`); or set CHECKHOST_API_TOKEN.
    #[arg(long)]
    token_file: Option<PathBuf>,
}

impl ServerArgs {
    fn token(&self) -> anyhow::Result<Option<String>> {
        if let Some(file) = &self.token_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading the token file {}", file.display()))?;
            return Ok(Some(text.trim().to_string()));
        }
        Ok(std::env::var("CHECKHOST_API_TOKEN").ok())
    }

    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let client = crate::api::client::ApiClient::new(&self.server, self.token()?);
        Ok(client.call(method, path, body).await?)
    }
}

pub async fn run(command: IncidentCommand) -> anyhow::Result<ExitCode> {
    let post = reqwest::Method::POST;
    let incident = match command {
        IncidentCommand::Open {
            server,
            title,
            severity,
            systems,
            body,
            state,
        } => {
            let mut request =
                json!({"title": title, "severity": severity, "systems": systems, "body": body});
            if let Some(state) = state {
                request["state"] = json!(state);
            }
            server
                .call(post, "/api/v1/incidents", Some(request))
                .await?
        }
        IncidentCommand::Update {
            server,
            id,
            body,
            state,
        } => {
            let mut request = json!({"body": body});
            if let Some(state) = state {
                request["state"] = json!(state);
            }
            let path = format!("/api/v1/incidents/{id}/updates");
            server.call(post, &path, Some(request)).await?
        }
        IncidentCommand::Resolve { server, id, body } => {
            let path = format!("/api/v1/incidents/{id}/resolve");
            server
                .call(post, &path, Some(json!({"body": body})))
                .await?
        }
        IncidentCommand::List { server, all, json } => {
            let path = format!(
                "/api/v1/incidents?state={}",
                if all { "all" } else { "open" }
            );
            let page = server.call(reqwest::Method::GET, &path, None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page["items"])?);
            } else {
                for i in page["items"].as_array().into_iter().flatten() {
                    println!("{}", line(i));
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    println!("{}", line(&incident));
    Ok(ExitCode::SUCCESS)
}

/// `#3 [major] Payments failing — monitoring: Fix deployed.`
fn line(incident: &Value) -> String {
    let latest = incident["updates"].as_array().and_then(|u| u.last());
    format!(
        "#{} [{}] {}{} — {}: {}",
        incident["id"],
        incident["severity"].as_str().unwrap_or(""),
        incident["title"].as_str().unwrap_or(""),
        if incident["resolvedAtMs"].is_null() {
            ""
        } else {
            " (resolved)"
        },
        latest.and_then(|u| u["state"].as_str()).unwrap_or(""),
        latest.and_then(|u| u["body"].as_str()).unwrap_or(""),
    )
}
