//! The state of one guest's store: WASI without filesystem or inherited
//! environment, policed sockets and HTTP, a memory limiter, captured logs.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::{LogLevel, strategy};
use super::http_policy::PolicedHttp;
use super::limits::{RunLimits, human_bytes};
use super::policy::{Denial, NetworkPolicy};
use super::transport::TransportLink;

/// Why the host stopped a guest; recorded so the outcome can say so
/// precisely instead of reporting the trap the guest saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    Memory { limit: usize },
    LogLines { limit: usize },
    LogBytes { limit: usize },
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::Memory { limit } => {
                write!(f, "memory limit {} exceeded", human_bytes(*limit))
            }
            Violation::LogLines { limit } => {
                write!(f, "log limit exceeded: more than {limit} lines")
            }
            Violation::LogBytes { limit } => {
                write!(f, "log limit exceeded: more than {}", human_bytes(*limit))
            }
        }
    }
}

impl std::error::Error for Violation {}

/// One line a guest logged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    pub plugin: String,
    pub level: &'static str,
    pub message: String,
}

/// What every store of one run records into.
#[derive(Debug, Default)]
pub struct RunJournal {
    pub logs: Vec<LogLine>,
    pub denials: Vec<Denial>,
    pub violation: Option<Violation>,
    /// The largest linear memory any guest of the run asked for.
    pub memory_peak_bytes: usize,
    /// Time spent instantiating the run's guests.
    pub instantiate: std::time::Duration,
}

pub type SharedJournal = Arc<Mutex<RunJournal>>;

pub fn journal(shared: &SharedJournal) -> std::sync::MutexGuard<'_, RunJournal> {
    // A poisoned journal only means another guest's host call panicked; the
    // records are still valid.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Sandbox {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: PolicedHttp,
    limiter: GuestLimiter,
    plugin: String,
    log_lines: usize,
    log_bytes: usize,
    limits: RunLimits,
    stdout: MemoryOutputPipe,
    pub(crate) journal: SharedJournal,
    pub(crate) transport: Option<TransportLink>,
}

/// Everything a store needs that is the same for all guests of one run.
#[derive(Clone)]
pub struct RunScope {
    pub limits: RunLimits,
    pub policy: Arc<NetworkPolicy>,
    pub journal: SharedJournal,
    pub deadline: Instant,
}

impl Sandbox {
    /// A sandbox whose only environment variables are `env`.
    pub fn new(plugin: &str, env: &[(String, String)], scope: &RunScope) -> Sandbox {
        let stdout = MemoryOutputPipe::new(scope.limits.max_log_bytes);
        let mut wasi = WasiCtx::builder();
        wasi.envs(env)
            .stdout(stdout.clone())
            .stderr(stdout.clone())
            .allow_tcp(true)
            .allow_udp(true)
            .allow_ip_name_lookup(true);
        let policy = scope.policy.clone();
        let journal = scope.journal.clone();
        wasi.socket_addr_check(move |addr: SocketAddr, usage: SocketAddrUse| {
            let verdict = match usage {
                SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => {
                    policy.check_addr(addr)
                }
                // Binding a local port is harmless; listening is not a probe's job.
                SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => Ok(()),
                SocketAddrUse::TcpListen | SocketAddrUse::TcpAccept => Err(Denial {
                    target: addr.to_string(),
                    reason: "guests may not accept connections".into(),
                }),
            };
            let allowed = match verdict {
                Ok(()) => true,
                Err(denial) => {
                    journal_push_denial(&journal, denial);
                    false
                }
            };
            Box::pin(async move { allowed })
        });
        Sandbox {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: PolicedHttp::new(scope.policy.clone(), scope.journal.clone(), scope.deadline),
            limiter: GuestLimiter {
                memory: scope.limits.memory_bytes(),
                tables: scope.limits.max_tables,
                instances: scope.limits.max_instances,
                journal: scope.journal.clone(),
            },
            plugin: plugin.to_string(),
            log_lines: 0,
            log_bytes: 0,
            limits: scope.limits,
            stdout,
            journal: scope.journal.clone(),
            transport: None,
        }
    }

    /// Moves what the guest wrote to stdout/stderr into the run's logs.
    pub fn drain_stdout(&mut self) {
        let bytes = self.stdout.contents();
        if bytes.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&bytes);
        let mut journal = journal(&self.journal);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            journal.logs.push(LogLine {
                plugin: self.plugin.clone(),
                level: "stdout",
                message: line.to_string(),
            });
        }
    }

    fn record_log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        self.log_lines += 1;
        self.log_bytes += message.len();
        let violation = if self.log_lines > self.limits.max_log_lines {
            Some(Violation::LogLines {
                limit: self.limits.max_log_lines,
            })
        } else if self.log_bytes > self.limits.max_log_bytes {
            Some(Violation::LogBytes {
                limit: self.limits.max_log_bytes,
            })
        } else {
            None
        };
        let mut journal = journal(&self.journal);
        if let Some(violation) = violation {
            journal.violation.get_or_insert(violation.clone());
            return Err(violation.into());
        }
        journal.logs.push(LogLine {
            plugin: self.plugin.clone(),
            level: level_name(level),
            message,
        });
        Ok(())
    }
}

fn journal_push_denial(shared: &SharedJournal, denial: Denial) {
    journal(shared).denials.push(denial);
}

fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}

/// Creates a store for one guest with the run's limits applied.
pub fn new_store(engine: &wasmtime::Engine, sandbox: Sandbox, epoch_ticks: u64) -> Store<Sandbox> {
    let mut store = Store::new(engine, sandbox);
    store.limiter(|s| &mut s.limiter);
    // A fresh store's deadline is 0: set it before the first call.
    store.set_epoch_deadline(epoch_ticks);
    store.epoch_deadline_trap();
    store
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Sandbox {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl strategy::checkhost::plugin::log::Host for Sandbox {
    async fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        self.record_log(level, message)
    }
}

impl strategy::checkhost::plugin::types::Host for Sandbox {}

struct GuestLimiter {
    memory: usize,
    tables: usize,
    instances: usize,
    journal: SharedJournal,
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        {
            let mut record = journal(&self.journal);
            record.memory_peak_bytes = record.memory_peak_bytes.max(desired);
        }
        if desired > self.memory {
            let violation = Violation::Memory { limit: self.memory };
            journal(&self.journal)
                .violation
                .get_or_insert(violation.clone());
            return Err(violation.into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        self.instances
    }
}
