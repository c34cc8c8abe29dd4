//! The runtime's cost against raw wasmtime doing the same guest work: a
//! fresh store per component, instantiate from a pooled `InstancePre`, the
//! calls, drop. The difference is checkhost's own machinery (policy, limits,
//! journal, masking, slot accounting, deadlines).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::{micros, per_call};
use crate::runtime::bindings::{self, LogLevel, Request, Response, RunContext, TransportError};
use crate::runtime::{CollectorRun, NetworkPolicy, RunLimits, RunSpec, Runtime, RuntimeConfig};

pub struct RuntimeReport {
    pub raw_single: Duration,
    pub raw_pair: Duration,
    pub checkhost: Duration,
}

impl RuntimeReport {
    pub fn ratio(&self) -> f64 {
        self.checkhost.as_secs_f64() / self.raw_pair.as_secs_f64()
    }

    pub fn render(&self) -> String {
        format!(
            "raw wasmtime, 1 component (store+instantiate+call+drop): {:>8.1} µs\n\
             raw wasmtime, strategy+collector (same guest work):     {:>8.1} µs\n\
             checkhost run, no-op strategy+collector:                 {:>8.1} µs\n\
             ratio checkhost / raw strategy+collector:                {:>8.2}",
            micros(self.raw_single),
            micros(self.raw_pair),
            micros(self.checkhost),
            self.ratio()
        )
    }
}

/// Store state of the baseline: just enough WASI for the guests to link.
struct Bare {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Bare {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}

impl bindings::strategy::checkhost::plugin::log::Host for Bare {
    async fn log(&mut self, _: LogLevel, _: String) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl bindings::strategy::checkhost::plugin::types::Host for Bare {}

impl bindings::collector::checkhost::plugin::transport::Host for Bare {
    async fn exec(&mut self, _: Request) -> wasmtime::Result<Result<Response, TransportError>> {
        Ok(Err(TransportError::Other(
            "baseline has no transport".into(),
        )))
    }
}

fn bare_store(engine: &Engine) -> Store<Bare> {
    let mut store = Store::new(
        engine,
        Bare {
            wasi: WasiCtx::builder().build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
        },
    );
    store.set_epoch_deadline(u64::MAX / 2);
    store
}

fn context() -> RunContext {
    RunContext {
        check: bindings::CheckInfo {
            id: "bench".into(),
            name: "bench".into(),
            interval_seconds: 0,
        },
        system: bindings::SystemInfo {
            id: "bench".into(),
            name: "bench".into(),
            metadata: Vec::new(),
        },
        environment: None,
    }
}

pub async fn run(guests: &Path, iterations: u32) -> anyhow::Result<RuntimeReport> {
    let strategy_path = guests.join("noop.wasm");
    let collector_path = guests.join("hostile.wasm");
    let config = RuntimeConfig {
        cache_dir: crate::runtime::default_cache_dir(),
        ..RuntimeConfig::default()
    };

    let engine = Engine::new(&crate::runtime::engine_config(&config))?;
    let mut linker: Linker<Bare> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    bindings::strategy::checkhost::plugin::log::add_to_linker::<_, HasSelf<Bare>>(
        &mut linker,
        |s| s,
    )?;
    bindings::strategy::checkhost::plugin::types::add_to_linker::<_, HasSelf<Bare>>(
        &mut linker,
        |s| s,
    )?;
    bindings::collector::checkhost::plugin::transport::add_to_linker::<_, HasSelf<Bare>>(
        &mut linker,
        |s| s,
    )?;
    let load = |p: &Path| {
        Component::from_file(&engine, p)
            .map_err(|e| anyhow::anyhow!("{}: {e:#} (run scripts/build-guests)", p.display()))
    };
    let strategy_pre =
        bindings::strategy::StrategyPre::new(linker.instantiate_pre(&load(&strategy_path)?)?)?;
    let collector_pre =
        bindings::collector::CollectorPre::new(linker.instantiate_pre(&load(&collector_path)?)?)?;
    crate::runtime::start_epoch_ticker(&engine);
    let ctx = context();
    let noop = r#"{"mode":"noop"}"#;

    let raw_single = per_call(iterations, || async {
        let mut store = bare_store(&engine);
        let c = collector_pre.instantiate_async(&mut store).await?;
        c.checkhost_plugin_collector_plugin()
            .call_collect(&mut store, noop, &ctx)
            .await?;
        Ok(())
    })
    .await?;

    let raw_pair = per_call(iterations, || async {
        let mut s_store = bare_store(&engine);
        let s = strategy_pre.instantiate_async(&mut s_store).await?;
        let client = s
            .checkhost_plugin_strategy_plugin()
            .call_connect(&mut s_store, "{}", &ctx)
            .await?
            .map_err(|e| anyhow::anyhow!(e.describe()))?;
        let mut c_store = bare_store(&engine);
        let c = collector_pre.instantiate_async(&mut c_store).await?;
        c.checkhost_plugin_collector_plugin()
            .call_collect(&mut c_store, noop, &ctx)
            .await?;
        client.resource_drop_async(&mut s_store).await?;
        Ok(())
    })
    .await?;

    let runtime = Runtime::new(config)?;
    let strategy = runtime.load(&strategy_path).await?;
    let collector = runtime.load(&collector_path).await?;
    let policy = Arc::new(NetworkPolicy::default());
    let checkhost = per_call(iterations, || async {
        let outcome = runtime
            .run(RunSpec {
                strategy: strategy.clone(),
                strategy_config: "{}".into(),
                collectors: vec![CollectorRun {
                    plugin: collector.clone(),
                    config_json: noop.into(),
                    env: Vec::new(),
                }],
                context: ctx.clone(),
                limits: RunLimits::default(),
                policy: policy.clone(),
                secrets: Vec::new(),
            })
            .await;
        match outcome.error() {
            None => Ok(()),
            Some(e) => Err(anyhow::anyhow!("benchmark run failed: {e}")),
        }
    })
    .await?;

    Ok(RuntimeReport {
        raw_single,
        raw_pair,
        checkhost,
    })
}

/// What one checkhost run of a collector costs, averaged.
#[derive(Debug, Clone, Copy)]
pub struct RunCost {
    pub wall: Duration,
    /// Host CPU while the run's guests and host calls ran.
    pub cpu: Duration,
    /// Wall time spent instantiating the strategy and the collector.
    pub instantiate: Duration,
    pub peak_memory_bytes: usize,
}

pub struct CollectorReport {
    pub name: String,
    pub rust: RunCost,
    pub candidate: RunCost,
}

impl CollectorReport {
    pub fn ratio(&self) -> f64 {
        self.candidate.cpu.as_secs_f64() / self.rust.cpu.as_secs_f64()
    }

    pub fn render(&self) -> String {
        let row = |name: &str, c: &RunCost| {
            format!(
                "{name:<28} {:>9.1} µs wall {:>9.1} µs host CPU {:>9.1} µs instantiating {:>8.1} MiB guest memory peak",
                micros(c.wall),
                micros(c.cpu),
                micros(c.instantiate),
                c.peak_memory_bytes as f64 / (1024.0 * 1024.0)
            )
        };
        format!(
            "fresh instance per run, no-op strategy, one collector:\n{}\n{}\nratio host CPU {} / Rust no-op: {:.2}",
            row("Rust no-op collector", &self.rust),
            row(&self.name, &self.candidate),
            self.name,
            self.ratio()
        )
    }
}

/// Runs `component` as the only collector over the no-op strategy, and the
/// Rust no-op collector the same way in the same process, for a ratio.
pub async fn collector(
    guests: &Path,
    component: &Path,
    config_json: &str,
    iterations: u32,
) -> anyhow::Result<CollectorReport> {
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: crate::runtime::default_cache_dir(),
        ..RuntimeConfig::default()
    })?;
    let strategy = runtime.load(&guests.join("noop.wasm")).await?;
    let rust = runtime.load(&guests.join("hostile.wasm")).await?;
    let candidate = runtime.load(component).await?;
    let policy = Arc::new(NetworkPolicy::default());
    let measure = async |plugin: &Arc<crate::runtime::Plugin>, config: &str| {
        let spec = || RunSpec {
            strategy: strategy.clone(),
            strategy_config: "{}".into(),
            collectors: vec![CollectorRun {
                plugin: plugin.clone(),
                config_json: config.into(),
                env: Vec::new(),
            }],
            context: context(),
            limits: RunLimits::default(),
            policy: policy.clone(),
            secrets: Vec::new(),
        };
        // CPU, instantiation, peak memory and run count, warm-up runs included.
        let totals = std::cell::Cell::new((Duration::ZERO, Duration::ZERO, 0usize, 0u32));
        let wall = per_call(iterations, || {
            let (spec, runtime, totals) = (spec(), &runtime, &totals);
            async move {
                let outcome = runtime.run(spec).await;
                if let Some(failure) = &outcome.failure {
                    anyhow::bail!("benchmark run failed: {failure}");
                }
                let (cpu, instantiate, peak, runs) = totals.get();
                totals.set((
                    cpu + outcome.stats.cpu,
                    instantiate + outcome.stats.instantiate,
                    peak.max(outcome.stats.memory_peak_bytes),
                    runs + 1,
                ));
                Ok(())
            }
        })
        .await?;
        let (cpu, instantiate, peak, runs) = totals.get();
        anyhow::Ok(RunCost {
            wall,
            cpu: cpu / runs.max(1),
            instantiate: instantiate / runs.max(1),
            peak_memory_bytes: peak,
        })
    };
    let rust_cost = measure(&rust, r#"{"mode":"noop"}"#).await?;
    let candidate_cost = measure(&candidate, config_json).await?;
    Ok(CollectorReport {
        name: candidate.info.id.clone(),
        rust: rust_cost,
        candidate: candidate_cost,
    })
}
