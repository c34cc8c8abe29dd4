//! A collector that misbehaves on request, one way per `mode`, so tests can
//! prove the host contains each failure and keeps serving.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

use checkhost_sdk::{Collector, Request, RunContext, Transport, TransportError, Value, json, log};
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema)]
pub struct Config {
    pub mode: String,
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub bytes: usize,
    #[serde(default)]
    pub name: String,
}

pub struct Hostile;

const PAGE: usize = 4096;
/// Pages `remember` writes in each array: every other one, so the dirty pages
/// form far more separate regions (128) than one page-map scan reports (32),
/// and the reset has to resume its scan to find them all.
const REMEMBERED_PAGES: usize = 64;
const REMEMBER_BYTES: usize = 2 * REMEMBERED_PAGES * PAGE;

/// Initialised data: lives in the component's memory image.
static IMAGE: [AtomicU8; REMEMBER_BYTES] = [const { AtomicU8::new(7) }; REMEMBER_BYTES];
/// Zero-initialised data: lives past the image.
static ZEROED: [AtomicU8; REMEMBER_BYTES] = [const { AtomicU8::new(0) }; REMEMBER_BYTES];

/// Counts the pages an earlier run of this instance's memory left changed,
/// then changes them: a fresh instance must always report zero.
fn remember() -> Value {
    let stale = |cells: &[AtomicU8], fresh: u8| {
        cells
            .iter()
            .step_by(PAGE)
            .filter(|c| c.load(Ordering::Relaxed) != fresh)
            .count()
    };
    let seen = stale(&IMAGE, 7) + stale(&ZEROED, 0);
    let mut written = 0;
    for cells in [&IMAGE, &ZEROED] {
        for cell in cells.iter().step_by(2 * PAGE) {
            cell.store(0xAA, Ordering::Relaxed);
            written += 1;
        }
    }
    json!({ "stale": seen, "written": written })
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = [depth; 64];
    recurse(depth + 1) + std::hint::black_box(frame)[0]
}

impl Collector for Hostile {
    const ID: &'static str = "hostile";
    const DISPLAY_NAME: &'static str = "Hostile";
    const DESCRIPTION: &'static str = "Misbehaves on purpose";
    const STRATEGIES: &'static [&'static str] = &["noop", "http"];
    const ALLOW_MULTIPLE: bool = true;
    type Config = Config;
    type Output = Value;

    fn collect(
        config: Config,
        _: &RunContext,
        transport: &Transport,
    ) -> Result<Value, TransportError> {
        match config.mode.as_str() {
            "noop" => Ok(json!({})),
            "echo" => {
                let response =
                    transport.exec(Request::new("", "").body(config.target.into_bytes()))?;
                Ok(json!({ "echo": String::from_utf8_lossy(&response.body) }))
            }
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "slow-call" => {
                let response = transport.exec(Request::new("GET", config.target))?;
                Ok(json!({ "status": response.status }))
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1024 * 1024]);
                    std::hint::black_box(&hoard);
                }
            }
            "recursion" => Ok(json!({ "depth": recurse(0) })),
            "remember" => Ok(remember()),
            "panic" => panic!("hostile guest panics on purpose"),
            "big-result" => Ok(json!({ "blob": "x".repeat(config.bytes) })),
            "log-flood" => {
                for i in 0.. {
                    log::info(&format!("flood line {i}"));
                }
                Ok(json!({}))
            }
            "stdout-flood" => {
                let mut out = std::io::stdout();
                loop {
                    if writeln!(out, "flooding stdout with a long line of text").is_err() {
                        return Ok(json!({ "stdout": "closed" }));
                    }
                }
            }
            "connect" => match std::net::TcpStream::connect(config.target.as_str()) {
                Ok(_) => Ok(json!({ "connected": true })),
                Err(e) => Err(TransportError::from_io(
                    &format!("connect {}", config.target),
                    &e,
                )),
            },
            "env" => Ok(json!({
                "value": std::env::var(&config.name).ok(),
                "all": std::env::vars().map(|(k, _)| k).collect::<Vec<_>>(),
            })),
            "echo-secret" => {
                let secret = std::env::var(&config.name).unwrap_or_default();
                log::warn(&format!("the secret is {secret}"));
                println!("stdout secret {secret}");
                Err(TransportError::Other(format!(
                    "leaking {secret} in an error"
                )))
            }
            "echo-secret-result" => {
                let secret = std::env::var(&config.name).unwrap_or_default();
                Ok(json!({ "leak": format!("value={secret}"), secret.clone(): 1 }))
            }
            other => Err(TransportError::BadConfig(format!("unknown mode {other}"))),
        }
    }
}

checkhost_sdk::export_collector!(Hostile);
