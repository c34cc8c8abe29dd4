//! The sandboxed guest runtime: one engine with a pooling allocator and an
//! epoch ticker, plugins compiled once and linked once, and runs that never
//! take the host down with them.

pub mod bindings;
mod budget;
pub mod digest;
mod execute;
mod failure;
pub mod host_memory;
mod http_policy;
mod journal;
pub mod limits;
mod loader;
pub mod mask;
mod migrate;
pub mod policy;
pub mod result_fields;
mod sandbox;
mod scope;
pub mod text;
pub mod timeline;
mod transport;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use digest::ComponentDigest;
pub use execute::{CollectorOutcome, CollectorRun, GuestStats, RunOutcome, RunSpec};
pub use failure::Failure;
pub use journal::LogLine;
pub use limits::RunLimits;
pub use loader::{LoadError, Plugin, PluginInfo, PluginKind};
pub use migrate::MigrateError;
pub use policy::{NetworkPolicy, PolicySpec};

use sandbox::Sandbox;
use scope::RunScope;

/// Room for 43 runs of two native guests (the default pool holds 32), 7 of
/// a Python collector over a native strategy (see BENCHMARKS.md, "One pass
/// of 300 checks").
pub const DEFAULT_GUEST_MEMORY_BUDGET_MIB: u64 = 96;

pub(crate) const WASM_PAGE_BYTES: u64 = 64 * 1024;

/// How often the epoch advances; CPU deadlines are counted in these ticks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where precompiled components are cached; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// Component instances alive at once (each run uses one per guest).
    /// Runs beyond this wait for a free slot.
    pub instance_slots: u32,
    /// Largest linear memory any run may be allowed (the pool's slot size).
    pub max_memory_mib: u64,
    /// Linear memory the runs in flight may start with, all together: each
    /// run weighs its guests' initial memories, and waits until it fits.
    /// A native guest starts with about 1 MiB, an interpreter with its
    /// image (Python 12.4 MiB, JavaScript 9.1 MiB), so interpreted
    /// collectors run fewer at a time and memory stays bounded whatever the
    /// plugins are written in. A run heavier than the whole budget runs
    /// alone.
    pub guest_memory_budget_mib: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: default_cache_dir(),
            instance_slots: 64,
            max_memory_mib: 256,
            guest_memory_budget_mib: DEFAULT_GUEST_MEMORY_BUDGET_MIB,
        }
    }
}

/// `$XDG_CACHE_HOME/checkhost/components` or `~/.cache/checkhost/components`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("checkhost").join("components"))
}

#[derive(Debug, thiserror::Error)]
#[error("cannot start the wasm runtime: {0:#}")]
pub struct RuntimeError(wasmtime::Error);

pub struct Runtime {
    engine: Engine,
    linker: Linker<Sandbox>,
    slots: Semaphore,
    instance_slots: u32,
    /// The guest memory budget in 64 KiB pages, one permit per page.
    memory_budget: Semaphore,
    memory_budget_pages: u32,
    /// Runs waiting for admission (pool slots or budget) right now.
    waiting: AtomicU64,
    max_memory_mib: u64,
    cache_dir: Option<PathBuf>,
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> Result<Runtime, RuntimeError> {
        let engine = Engine::new(&engine_config(&config)).map_err(RuntimeError)?;
        let mut linker = Linker::new(&engine);
        // Guests ask for different WASI 0.2 minors; wasmtime serves them all
        // when the real interfaces are linked.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(RuntimeError)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(RuntimeError)?;
        type Data = wasmtime::component::HasSelf<Sandbox>;
        // Socket creation is WASI's own behind the run's socket cap.
        {
            use wasmtime_wasi::p2::bindings::sockets::{tcp_create_socket, udp_create_socket};
            linker.allow_shadowing(true);
            tcp_create_socket::add_to_linker::<_, Data>(&mut linker, |s| s)
                .map_err(RuntimeError)?;
            udp_create_socket::add_to_linker::<_, Data>(&mut linker, |s| s)
                .map_err(RuntimeError)?;
            linker.allow_shadowing(false);
        }
        bindings::strategy::checkhost::plugin::log::add_to_linker::<_, Data>(&mut linker, |s| s)
            .map_err(RuntimeError)?;
        bindings::strategy::checkhost::plugin::types::add_to_linker::<_, Data>(&mut linker, |s| s)
            .map_err(RuntimeError)?;
        bindings::collector::checkhost::plugin::transport::add_to_linker::<_, Data>(
            &mut linker,
            |s| s,
        )
        .map_err(RuntimeError)?;
        start_epoch_ticker(&engine);
        let budget_pages = u32::try_from(
            config
                .guest_memory_budget_mib
                .saturating_mul(1024 * 1024 / WASM_PAGE_BYTES),
        )
        .unwrap_or(u32::MAX)
        .max(1);
        Ok(Runtime {
            engine,
            linker,
            slots: Semaphore::new(config.instance_slots as usize),
            instance_slots: config.instance_slots,
            memory_budget: Semaphore::new(budget_pages as usize),
            memory_budget_pages: budget_pages,
            waiting: AtomicU64::new(0),
            max_memory_mib: config.max_memory_mib,
            cache_dir: config.cache_dir,
        })
    }

    /// Loads one plugin file: compile (or reuse the cached artifact), check
    /// the world and contract version, link, and describe.
    pub async fn load(&self, path: impl Into<PathBuf>) -> Result<Arc<Plugin>, LoadError> {
        self.load_with_timeout(path, DEFAULT_CALL_TIMEOUT).await
    }

    /// Loads one plugin file only if its bytes have the `pinned` digest.
    pub async fn load_pinned(
        &self,
        path: impl Into<PathBuf>,
        pinned: Option<ComponentDigest>,
    ) -> Result<Arc<Plugin>, LoadError> {
        self.loader(DEFAULT_CALL_TIMEOUT)
            .load(&path.into(), pinned)
            .await
            .map(Arc::new)
    }

    /// Loads one plugin, giving its `describe()` `timeout` instead of the
    /// default 10 s.
    pub async fn load_with_timeout(
        &self,
        path: impl Into<PathBuf>,
        timeout: Duration,
    ) -> Result<Arc<Plugin>, LoadError> {
        self.loader(timeout)
            .load(&path.into(), None)
            .await
            .map(Arc::new)
    }

    /// Where compiled components (and what the host remembers of them)
    /// are cached, if anywhere.
    pub fn cache_dir(&self) -> Option<&std::path::Path> {
        self.cache_dir.as_deref()
    }

    fn loader(&self, call_timeout: Duration) -> loader::Loader<'_> {
        loader::Loader {
            engine: &self.engine,
            linker: &self.linker,
            cache_dir: self.cache_dir.as_deref(),
            call_timeout,
            slots: &self.slots,
        }
    }

    /// The largest memory cap a run may ask for.
    pub fn max_memory_mib(&self) -> u64 {
        self.max_memory_mib
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// What the instance pool holds for runs to come, and how much of the
    /// guest memory budget the runs in flight hold.
    pub fn pool_usage(&self) -> PoolUsage {
        let budget_pages = u64::from(self.memory_budget_pages);
        let held_pages = budget_pages.saturating_sub(self.memory_budget.available_permits() as u64);
        let mut usage = PoolUsage {
            budget_bytes: budget_pages * WASM_PAGE_BYTES,
            budget_bytes_in_use: held_pages * WASM_PAGE_BYTES,
            runs_waiting: self.waiting.load(Ordering::Relaxed),
            ..PoolUsage::default()
        };
        if let Some(pool) = self.engine.pooling_allocator_metrics() {
            usage.memories_in_use = pool.memories() as u64;
            usage.warm_memories = u64::from(pool.unused_warm_memories());
            usage.warm_resident_bytes = pool.unused_memory_bytes_resident() as u64;
        }
        usage
    }
}

/// Linear-memory slots of the instance pool: in use by runs now, and kept
/// warm between runs for the module that last used them (its image mapped,
/// the pages it wrote kept resident) so its next instance starts cheaply.
/// Also the guest memory budget, the part runs in flight hold, and the runs
/// waiting to be admitted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    pub memories_in_use: u64,
    pub warm_memories: u64,
    pub warm_resident_bytes: u64,
    pub budget_bytes: u64,
    pub budget_bytes_in_use: u64,
    /// Runs waiting for a slot or for room in the budget.
    pub runs_waiting: u64,
}

pub(crate) fn engine_config(config: &RuntimeConfig) -> Config {
    let slots = config.instance_slots;
    let mut pool = PoolingAllocationConfig::default();
    // Components built by other toolchains (Python) hold many core instances,
    // memories and large tables; size every dimension explicitly.
    pool.total_component_instances(slots)
        .total_core_instances(slots * 24)
        .total_memories(slots * 2)
        .total_tables(slots * 8)
        .max_core_instances_per_component(48)
        .max_memories_per_component(4)
        .max_tables_per_component(16)
        .table_elements(64 * 1024)
        .max_memory_size((config.max_memory_mib as usize) * 1024 * 1024)
        .max_core_instance_size(8 * 1024 * 1024)
        .max_component_instance_size(1024 * 1024)
        .table_keep_resident(64 * 1024);
    keep_dirty_pages_resident(&mut pool);
    let mut cfg = Config::new();
    cfg.wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .max_wasm_stack(1024 * 1024)
        .async_stack_size(4 * 1024 * 1024)
        .wasm_backtrace_max_frames(std::num::NonZeroUsize::new(20));
    cfg
}

/// Between instances wasmtime finds a memory's dirty pages with PAGEMAP_SCAN
/// (Linux ≥ 6.7) and copies the image back into just those, so they stay
/// resident and the next run takes no page faults there (up to 4 MiB per
/// memory; the rest goes back to the kernel). Without the scan, keeping
/// memory resident means zeroing a whole prefix on every reuse, which cost
/// more than the page faults it saved (18 % of the HTTP pipeline's CPU for
/// 2 MiB), so memory then goes back to the kernel. See BENCHMARKS.md.
fn keep_dirty_pages_resident(pool: &mut PoolingAllocationConfig) {
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(wasmtime::Enabled::Yes)
            .linear_memory_keep_resident(4 * 1024 * 1024);
    } else {
        pool.linear_memory_keep_resident(0);
    }
}

/// Advances the epoch every tick for as long as the engine lives.
pub(crate) fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("checkhost-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch ticker thread");
}

/// Epoch ticks for a CPU budget of `ms` milliseconds.
pub(crate) fn epoch_ticks(ms: u64) -> u64 {
    ms.div_ceil(EPOCH_TICK.as_millis() as u64) + 1
}

/// How long `describe` and `migrate` may take unless told otherwise.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The scope of host-internal calls (describe, migrate): their own deadline
/// (wall clock and CPU alike), no network at all, host memory charged like
/// a run's; poll the call inside `Charged` with the allocations returned.
pub(crate) fn describe_scope(timeout: Duration) -> (RunScope, Option<host_memory::RunAllocations>) {
    let limits = RunLimits {
        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        ..RunLimits::default()
    };
    let deny_all = PolicySpec {
        allow: Vec::new(),
        deny: vec!["0.0.0.0/0".into(), "::/0".into()],
    };
    let allocations = host_memory::RunAllocations::start();
    let scope = RunScope::new(
        limits,
        Arc::new(NetworkPolicy::from_spec(&deny_all).unwrap_or_default()),
        allocations.as_ref().map(|a| a.meter()),
        std::time::Instant::now() + limits.timeout(),
    );
    (scope, allocations)
}
