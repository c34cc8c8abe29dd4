//! The state of one guest's store: WASI without filesystem or inherited
//! environment, policed sockets and HTTP, a memory limiter, captured logs.

use std::net::SocketAddr;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::{LogLevel, strategy};
use super::budget::RunBudget;
use super::http_policy::PolicedHttp;
use super::journal::{LogLine, SharedJournal, Violation, journal};
use super::limits::RunLimits;
use super::policy::Denial;
use super::scope::RunScope;
use super::transport::TransportLink;

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
    budget: Arc<RunBudget>,
    /// This guest's number in the run's socket ledger.
    guest: usize,
    /// The collector's place among the run's collectors; `None`: the strategy.
    place: Option<usize>,
    /// Whether the run records a timeline: untraced runs skip the journal.
    pub(crate) traced: bool,
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
            hooks: PolicedHttp::new(scope, plugin),
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
            budget: scope.budget.clone(),
            guest: scope.budget.register_guest(),
            place: None,
            traced: scope.trace.is_some(),
        }
    }

    /// This sandbox runs the collector at `place` of its run.
    pub fn collector_at(mut self, place: usize) -> Sandbox {
        self.place = Some(place);
        self.hooks.sender = Some(place);
        self
    }

    /// Moves what the guest wrote to stdout/stderr into the run's logs.
    /// Names this guest, while `calling`, as the sender of the requests
    /// the strategy makes; `false` when the run is not traced.
    pub(crate) fn mark_caller(&self, calling: bool) -> bool {
        if !self.traced {
            return false;
        }
        let mut journal = super::journal::journal(&self.journal);
        let Some(timeline) = journal.timeline.as_mut() else {
            return false;
        };
        timeline.caller = if calling { self.place } else { None };
        true
    }

    pub fn drain_stdout(&mut self) {
        let bytes = self.stdout.contents();
        if bytes.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&bytes);
        let mut journal = journal(&self.journal);
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        // stdout counts against the same line cap as the log import; what
        // is past it is dropped and said so, not a failure of the run.
        let room = self.limits.max_log_lines.saturating_sub(self.log_lines);
        for line in lines.by_ref().take(room) {
            self.log_lines += 1;
            journal.logs.push(LogLine {
                plugin: self.plugin.clone(),
                level: "stdout",
                // Within the 64 KiB stdout pipe; cut after masking.
                message: line.to_string(),
            });
        }
        let dropped = lines.count();
        if dropped > 0 {
            journal.logs.push(LogLine {
                plugin: self.plugin.clone(),
                level: "warn",
                message: format!(
                    "{dropped} more stdout lines dropped: the log limit is {} lines",
                    self.limits.max_log_lines
                ),
            });
        }
    }

    /// Checks the run's budgets at a host-call boundary.
    fn check_budget(&self) -> wasmtime::Result<()> {
        self.budget
            .check(&self.plugin)
            .map_err(wasmtime::Error::new)
    }

    /// Whether this guest may open one more socket; a refusal fails the run.
    fn admit_socket(&mut self) -> bool {
        use wasmtime_wasi::p2::{TcpSocket, UdpSocket};
        let held = self
            .table
            .iter_mut()
            .filter(|entry| entry.is::<TcpSocket>() || entry.is::<UdpSocket>())
            .count();
        self.budget.admit_socket(self.guest, held + 1, &self.plugin)
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
            // Within the log byte cap; cut after masking.
            message,
        });
        Ok(())
    }
}

fn journal_push_denial(shared: &SharedJournal, denial: Denial) {
    journal(shared).deny(denial);
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

/// Creates a store for one guest with the run's limits applied: it is
/// interrupted once `epoch_ticks` ticks have passed.
pub fn new_store(engine: &wasmtime::Engine, sandbox: Sandbox, epoch_ticks: u64) -> Store<Sandbox> {
    let mut store = Store::new(engine, sandbox);
    store.limiter(|s| &mut s.limiter);
    store.call_hook(|store, _| store.data().check_budget());
    // Woken at each tick the guest's code runs through, to count the ticks
    // it ran (what a check costs) and to interrupt it, as a trap at the
    // deadline would, once the ticks have passed by the clock.
    let ticks = u32::try_from(epoch_ticks).unwrap_or(u32::MAX);
    let interrupt_at =
        std::time::Instant::now().checked_add(super::EPOCH_TICK.saturating_mul(ticks));
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |context| {
        super::journal::journal(&context.data().journal).epoch_ticks += 1;
        if interrupt_at.is_some_and(|at| std::time::Instant::now() >= at) {
            return Err(wasmtime::Trap::Interrupt.into());
        }
        Ok(wasmtime::UpdateDeadline::Continue(1))
    });
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

/// What the socket-creation interfaces need of their host besides
/// creation: WASI's own network error handling.
impl wasmtime_wasi::p2::bindings::sockets::network::Host for Sandbox {
    fn convert_error_code(
        &mut self,
        error: wasmtime_wasi::p2::SocketError,
    ) -> wasmtime::Result<wasmtime_wasi::p2::bindings::sockets::network::ErrorCode> {
        use wasmtime_wasi::sockets::WasiSocketsView;
        self.sockets().convert_error_code(error)
    }

    fn network_error_code(
        &mut self,
        err: wasmtime::component::Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<wasmtime_wasi::p2::bindings::sockets::network::ErrorCode>> {
        use wasmtime_wasi::sockets::WasiSocketsView;
        self.sockets().network_error_code(err)
    }
}

impl wasmtime_wasi::p2::bindings::sockets::network::HostNetwork for Sandbox {
    fn drop(
        &mut self,
        network: wasmtime::component::Resource<wasmtime_wasi::p2::Network>,
    ) -> wasmtime::Result<()> {
        use wasmtime_wasi::p2::bindings::sockets::network::HostNetwork;
        use wasmtime_wasi::sockets::WasiSocketsView;
        HostNetwork::drop(&mut self.sockets(), network)
    }
}

/// Socket creation goes through the run's socket cap, then to WASI's own.
impl wasmtime_wasi::p2::bindings::sockets::tcp_create_socket::Host for Sandbox {
    fn create_tcp_socket(
        &mut self,
        family: wasmtime_wasi::p2::bindings::sockets::network::IpAddressFamily,
    ) -> wasmtime_wasi::p2::SocketResult<wasmtime::component::Resource<wasmtime_wasi::p2::TcpSocket>>
    {
        use wasmtime_wasi::p2::bindings::sockets::network::ErrorCode;
        use wasmtime_wasi::sockets::WasiSocketsView;
        if !self.admit_socket() {
            return Err(ErrorCode::NewSocketLimit.into());
        }
        self.sockets().create_tcp_socket(family)
    }
}

impl wasmtime_wasi::p2::bindings::sockets::udp_create_socket::Host for Sandbox {
    async fn create_udp_socket(
        &mut self,
        family: wasmtime_wasi::p2::bindings::sockets::network::IpAddressFamily,
    ) -> wasmtime_wasi::p2::SocketResult<wasmtime::component::Resource<wasmtime_wasi::p2::UdpSocket>>
    {
        use wasmtime_wasi::p2::bindings::sockets::network::ErrorCode;
        use wasmtime_wasi::sockets::WasiSocketsView;
        if !self.admit_socket() {
            return Err(ErrorCode::NewSocketLimit.into());
        }
        self.sockets().create_udp_socket(family).await
    }
}

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
