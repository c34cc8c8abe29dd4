//! A collector that misbehaves on request, one way per `mode`, so tests can
//! prove the host contains each failure and keeps serving.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

use checkhost_sdk::{
    Collector, Migrations, Request, RunContext, Transport, TransportError, Value, json, log,
};
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
    /// Once at its target (`fields`, `sockets`, `memory-hold`), keep what
    /// it holds until the run's deadline ends it.
    #[serde(default)]
    pub hold: bool,
    /// `remember`: wait this long after writing, so a test can push the
    /// written pages out to swap while the instance still holds them.
    #[serde(default)]
    pub pause_ms: u64,
}

/// Sits in a host call (a sleep) until the host's deadline drops the run.
fn hold_until_stopped() -> ! {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
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

/// A migration step that never returns when asked to: `migrate-hang`
/// blocks in a host call (a sleep), where epoch ticks cannot stop it, and
/// `migrate-spin` spins in guest code.
fn hostile_step(config: Value) -> Result<Value, String> {
    match config.get("mode").and_then(Value::as_str) {
        Some("migrate-hang") => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        Some("migrate-spin") => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        Some("migrate-error") => Err(format!("refusing to migrate: {}", "E".repeat(100_000))),
        _ => Ok(config),
    }
}

/// Terminal escapes: clear the screen, move up and overwrite a row as "ok",
/// set the window title, write the clipboard (OSC 52).
const ESCAPES: &str = "\x1b[2J\x1b[1A\rok\x1b]0;pwned\x07\x1b]52;c;ZXZpbA==\x07";

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
    /// A long chain: the host must migrate it in fresh stores, step by step.
    const CONFIG_VERSION: u32 = 120;
    type Config = Config;
    type Output = Value;

    fn migrations() -> Migrations {
        Migrations::new().step(1, hostile_step)
    }

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
            "memory-hold" => {
                let hoard: Vec<Vec<u8>> =
                    (0..config.bytes).map(|_| vec![1u8; 1024 * 1024]).collect();
                std::hint::black_box(&hoard);
                hold_until_stopped();
            }
            "recursion" => Ok(json!({ "depth": recurse(0) })),
            "remember" => {
                let seen = remember();
                std::thread::sleep(std::time::Duration::from_millis(config.pause_ms));
                Ok(seen)
            }
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
            "fields" => {
                // Header fields live in host memory, not the guest's: hold
                // `bytes` of them, 64 KiB each, and swallow every refusal.
                use wasip2::http::types::Fields;
                let value = vec![b'a'; 64 * 1024];
                let mut held = Vec::new();
                for i in 0..config.bytes {
                    let fields = Fields::new();
                    if fields.append("x-hoard", &value).is_err() {
                        break;
                    }
                    held.push(fields);
                    if i % 1000 == 999 {
                        log::info(&format!("holding {} fields", held.len()));
                    }
                }
                if config.hold {
                    hold_until_stopped();
                }
                Ok(json!({ "held": held.len() }))
            }
            "sockets" => {
                // Open connections to `target` until refused, keep them, and
                // report success anyway.
                let mut open = Vec::new();
                for _ in 0..config.bytes {
                    match std::net::TcpStream::connect(config.target.as_str()) {
                        Ok(stream) => open.push(stream),
                        Err(_) => break,
                    }
                }
                if config.hold {
                    hold_until_stopped();
                }
                Ok(json!({ "open": open.len() }))
            }
            "echo-secret-encoded" => {
                use base64::Engine as _;
                use base64::engine::general_purpose::{STANDARD, URL_SAFE};
                let secret = std::env::var(&config.name).unwrap_or_default();
                let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
                let basic = STANDARD.encode(format!("user:{secret}"));
                Ok(json!({
                    "base64": STANDARD.encode(&secret),
                    "base64url": URL_SAFE.encode(&secret),
                    "hex": hex,
                    "percent": secret.replace('/', "%2F").replace(' ', "%20").replace('+', "%2B"),
                    "authorization": format!("Basic {basic}"),
                }))
            }
            "responses" => {
                // HTTP responses whose headers the host parses and keeps in
                // tasks of its own: hold `bytes` of them from `target`.
                use wasip2::http::outgoing_handler;
                use wasip2::http::types::{Fields, OutgoingRequest, Scheme};
                let mut held = Vec::new();
                for _ in 0..config.bytes {
                    let request = OutgoingRequest::new(Fields::new());
                    let _ = request.set_scheme(Some(&Scheme::Http));
                    let _ = request.set_authority(Some(&config.target));
                    let _ = request.set_path_with_query(Some("/big-headers"));
                    let Ok(response) = outgoing_handler::handle(request, None) else {
                        break;
                    };
                    response.subscribe().block();
                    match response.get() {
                        Some(Ok(Ok(response))) => held.push(response),
                        _ => break,
                    }
                }
                Ok(json!({ "held": held.len() }))
            }
            "huge-error" => Err(TransportError::Other("E".repeat(config.bytes))),
            "escapes" => Err(TransportError::Other(format!("refused {ESCAPES}"))),
            "escapes-result" => Ok(json!({ "status": ESCAPES })),
            other => Err(TransportError::BadConfig(format!("unknown mode {other}"))),
        }
    }
}

checkhost_sdk::export_collector!(Hostile);
