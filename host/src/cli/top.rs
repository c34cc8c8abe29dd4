//! `checkhost top`: the checks whose guests cost the most, live from a
//! daemon's `GET /api/v1/cost`. Refreshed in place on a terminal; `--once`
//! prints one table of the totals since the daemon started.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::Value;

use super::incident::ServerArgs;
use super::output::table;

#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Checks to show.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// How often to refresh.
    #[arg(long, default_value = "2s", value_parser = super::parse_duration_arg)]
    every: Duration,
    /// Print the totals once and exit.
    #[arg(long)]
    once: bool,
}

/// Each check's CPU seconds at a refresh, by (check, plugin).
struct Reading {
    at: Instant,
    cpu: HashMap<(String, String), f64>,
}

/// A check's row: its totals, and its CPU share since the last refresh.
struct Row {
    check: String,
    plugin: String,
    runs: u64,
    cpu_seconds: f64,
    cpu_ms_per_run: f64,
    instantiate_ms_per_run: f64,
    memory_peak_bytes: u64,
    /// Percent of one core over the last interval.
    cpu_share: Option<f64>,
}

pub async fn run(args: TopArgs) -> anyhow::Result<ExitCode> {
    // The API's top by total CPU; a wider read so that a check busy now
    // but cheap so far still shows among the recent ones.
    let path = format!("/api/v1/cost?limit={}", (args.limit * 5).clamp(1, 1000));
    let mut last: Option<Reading> = None;
    let terminal = std::io::stdout().is_terminal();
    loop {
        let answer = args.server.call(reqwest::Method::GET, &path, None).await?;
        let now = Instant::now();
        let mut rows = rows_of(&answer);
        if let Some(before) = &last {
            let wall = now.duration_since(before.at).as_secs_f64().max(1e-3);
            for row in &mut rows {
                // A check not read last time has no interval to share over.
                row.cpu_share = before
                    .cpu
                    .get(&(row.check.clone(), row.plugin.clone()))
                    .map(|then| 100.0 * (row.cpu_seconds - then).max(0.0) / wall);
            }
            rows.sort_by(|a, b| {
                b.cpu_share
                    .partial_cmp(&a.cpu_share)
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
        }
        rows.truncate(args.limit);
        let text = render(&rows, last.is_some());
        if terminal && !args.once {
            // Home and clear, then the table: redrawn in place.
            print!("\x1b[H\x1b[2J");
        }
        println!("{text}");
        if args.once {
            return Ok(ExitCode::SUCCESS);
        }
        last = Some(Reading {
            at: now,
            cpu: rows_of(&answer)
                .into_iter()
                .map(|r| ((r.check, r.plugin), r.cpu_seconds))
                .collect(),
        });
        tokio::time::sleep(args.every).await;
    }
}

fn rows_of(answer: &Value) -> Vec<Row> {
    answer["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| Row {
            check: item["check"].as_str().unwrap_or_default().to_string(),
            plugin: item["plugin"].as_str().unwrap_or_default().to_string(),
            runs: item["runs"].as_u64().unwrap_or(0),
            cpu_seconds: item["cpuSeconds"].as_f64().unwrap_or(0.0),
            cpu_ms_per_run: item["cpuMsPerRun"].as_f64().unwrap_or(0.0),
            instantiate_ms_per_run: item["instantiateMsPerRun"].as_f64().unwrap_or(0.0),
            memory_peak_bytes: item["memoryPeakBytes"].as_u64().unwrap_or(0),
            cpu_share: None,
        })
        .collect()
}

fn render(rows: &[Row], with_share: bool) -> String {
    let mut header = vec![
        "CHECK",
        "PLUGIN",
        "RUNS",
        "CPU",
        "CPU/RUN",
        "START/RUN",
        "MEMORY",
    ];
    if with_share {
        header.insert(3, "CPU NOW");
    }
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut cells = vec![
                r.check.clone(),
                r.plugin.clone(),
                r.runs.to_string(),
                format!("{:.2} s", r.cpu_seconds),
                format!("{:.2} ms", r.cpu_ms_per_run),
                format!("{:.2} ms", r.instantiate_ms_per_run),
                format!("{:.1} MiB", r.memory_peak_bytes as f64 / 1_048_576.0),
            ];
            if with_share {
                cells.insert(
                    3,
                    r.cpu_share
                        .map_or_else(|| "new".to_string(), |share| format!("{share:.1} %")),
                );
            }
            cells
        })
        .collect();
    table(&header, &body)
}
