//! `checkhost plugin new|build|inspect|test`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::Value;

use super::output::{clip, inert, table};
use crate::oci::OciReference;
use crate::pipeline::lock::{LockedPlugin, PluginLock};
use crate::pipeline::plugins::PluginSet;
use crate::runtime::bindings::{CheckInfo, RunContext, SystemInfo};
use crate::runtime::limits::human_bytes;
use crate::runtime::{
    CollectorRun, NetworkPolicy, PluginKind, PolicySpec, RunLimits, RunSpec, Runtime,
};
use crate::scaffold::{self, Kind, Lang, NewPlugin};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Write a new plugin project (code, a unit test, a README) into ./<name>.
    New {
        /// The plugin id, also the folder and component name.
        name: String,
        #[arg(long, value_enum)]
        kind: Kind,
        #[arg(long, value_enum)]
        lang: Lang,
        /// Parent folder of the new project.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// checkhost's Rust SDK folder, for Rust plugins; defaults to the
        /// checkout this binary was built from.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Build the plugin project in a folder into <folder>/<name>.wasm.
    Build {
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Pin the plugin files the config uses by digest, in checkhost.lock
    /// beside the config (inside a config folder).
    Lock {
        /// A YAML file, or a folder of them.
        #[arg(default_value = "checkhost.yaml")]
        config: PathBuf,
        /// Plugin folder; overrides `plugins:` in the config.
        #[arg(long, env = "CHECKHOST_PLUGINS")]
        plugins: Option<PathBuf>,
    },
    /// Fetch a plugin component from an OCI registry into the plugin folder,
    /// and pin it in the config's checkhost.lock when there is one.
    Pull {
        /// `oci://HOST/REPOSITORY:TAG` or `oci://HOST/REPOSITORY@sha256:…`.
        reference: String,
        /// The config whose plugin folder and lock to use.
        #[arg(default_value = "checkhost.yaml")]
        config: PathBuf,
        /// Plugin folder; overrides `plugins:` in the config.
        #[arg(long, env = "CHECKHOST_PLUGINS")]
        plugins: Option<PathBuf>,
        /// File name in the folder, without `.wasm`; default: the
        /// repository's last segment.
        #[arg(long)]
        name: Option<String>,
    },
    /// Show a component's world, contract version, id and config schema.
    Inspect {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Run one strategy (and its collectors) once against a real target.
    Test {
        strategy: PathBuf,
        /// Collector component; repeat for several.
        #[arg(long = "collector")]
        collectors: Vec<PathBuf>,
        /// `{"strategy": {...}, "collector": {...} | [{...}, ...]}` as JSON or
        /// YAML, inline or `@file`. Configs are taken as v1 and migrated.
        #[arg(long)]
        config: String,
        /// Environment variable for the collectors (`KEY=VAL`), as a resolved secret would be.
        #[arg(long = "env")]
        env: Vec<String>,
        /// Network rules (`10.0.0.0/8`, `host:port`); repeatable.
        #[arg(long = "allow")]
        allow: Vec<String>,
        #[arg(long = "deny")]
        deny: Vec<String>,
        #[arg(long, default_value_t = 30_000)]
        timeout_ms: u64,
        /// Memory cap of each guest, in MiB.
        #[arg(long, default_value_t = 64)]
        memory_mib: u64,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cmd: PluginCommand, runtime: Runtime) -> anyhow::Result<ExitCode> {
    match cmd {
        PluginCommand::Lock { config, plugins } => lock(&runtime, config, plugins).await,
        PluginCommand::Pull {
            reference,
            config,
            plugins,
            name,
        } => pull(&runtime, &reference, config, plugins, name).await,
        PluginCommand::New {
            name,
            kind,
            lang,
            dir,
            sdk,
        } => {
            let plugin = NewPlugin {
                dir: dir.join(&name),
                name,
                kind,
                lang,
                sdk,
            };
            let files = scaffold::new_plugin(&plugin)?;
            println!("wrote a {lang} {kind} in {}:", plugin.dir.display());
            for file in files {
                println!("  {file}");
            }
            println!(
                "next: cd {} && checkhost plugin build",
                plugin.dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Build { dir } => {
            let component = scaffold::build(&dir)?;
            let plugin = runtime.load(&component).await?;
            println!(
                "built {} ({} `{}`)",
                component.display(),
                plugin.info.kind,
                plugin.info.id
            );
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Inspect { file, json } => inspect(&runtime, file, json).await,
        PluginCommand::Test {
            strategy,
            collectors,
            config,
            env,
            allow,
            deny,
            timeout_ms,
            memory_mib,
            json,
        } => {
            let spec = TestSpec {
                strategy,
                collectors,
                config,
                env,
                policy: PolicySpec { allow, deny },
                timeout_ms,
                memory_mib,
            };
            test(&runtime, spec, json).await
        }
    }
}

/// Writes the lock of `config`: every plugin file a check uses, at the
/// digest it has now. Nothing is written while a used plugin is missing or
/// does not load.
async fn lock(
    runtime: &Runtime,
    config: PathBuf,
    plugins: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let refuse = |message: String| {
        eprintln!("error: {}", inert(&message));
        Ok(ExitCode::from(2))
    };
    let loaded = match crate::config::load_config(&config) {
        Ok(loaded) => loaded,
        Err(e) => return refuse(e.to_string()),
    };
    let dir = match crate::pipeline::setup::plugin_dir(&loaded, plugins.as_ref()) {
        Ok(dir) => dir,
        Err(e) => return refuse(e),
    };
    // Every file, whatever an older lock says: locking again re-pins.
    let set = match PluginSet::load_dir(runtime, &dir, None).await {
        Ok(set) => set,
        Err(e) => return refuse(e.to_string()),
    };
    let mut pins = Vec::new();
    let mut missing = Vec::new();
    for check in &loaded.file.checks {
        let used = std::iter::once((PluginKind::Strategy, &check.strategy.plugin)).chain(
            check
                .collectors
                .iter()
                .map(|c| (PluginKind::Collector, &c.plugin)),
        );
        for (kind, id) in used {
            let found = match kind {
                PluginKind::Strategy => set.strategy(id),
                PluginKind::Collector => set.collector(id),
            };
            match found {
                Some(plugin) => pins.push(LockedPlugin {
                    file: plugin
                        .path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    id: id.clone(),
                    kind,
                    digest: plugin.digest,
                    source: None,
                }),
                None => missing.push(format!("checks[{}]: {}", check.id, set.missing(kind, id))),
            }
        }
    }
    if !missing.is_empty() {
        missing.sort();
        missing.dedup();
        return refuse(format!(
            "nothing locked, because a plugin the config uses is missing or broken:\n  {}",
            missing.join("\n  ")
        ));
    }
    pins.sort_by(|a, b| a.file.cmp(&b.file));
    pins.dedup();
    let path = PluginLock::path_for(&config);
    // Where a file came from stays known while its bytes are the same.
    if let Ok(Some(old)) = PluginLock::read(&path) {
        for pin in &mut pins {
            pin.source = old
                .pinned(&pin.file)
                .filter(|o| o.digest == pin.digest)
                .and_then(|o| o.source.clone());
        }
    }
    let lock = PluginLock::new(pins);
    lock.write(&path)?;
    println!(
        "{}: {} plugin files pinned",
        path.display(),
        lock.plugins.len()
    );
    for pin in &lock.plugins {
        println!(
            "  {}  {} {} ({})",
            pin.digest,
            pin.kind,
            inert(&pin.id),
            inert(&pin.file)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A file removed when dropped, unless it was renamed away first.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Pulls a component into the plugin folder: only a component that loads
/// as a plugin, under a name no other plugin file of its id holds, and
/// written whole (a temporary file renamed into place).
async fn pull(
    runtime: &Runtime,
    reference: &str,
    config: PathBuf,
    plugins: Option<PathBuf>,
    name: Option<String>,
) -> anyhow::Result<ExitCode> {
    let refuse = |message: String| {
        eprintln!("error: {}", inert(&message));
        Ok(ExitCode::from(2))
    };
    let reference: OciReference = match reference.parse() {
        Ok(r) => r,
        Err(e) => return refuse(format!("{e}")),
    };
    let dir = match plugins {
        Some(dir) => dir,
        None => match crate::config::load_config(&config)
            .map_err(|e| e.to_string())
            .and_then(|loaded| crate::pipeline::setup::plugin_dir(&loaded, None))
        {
            Ok(dir) => dir,
            Err(e) => return refuse(e),
        },
    };
    let name = name.unwrap_or_else(|| reference.name().to_string());
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return refuse(format!("`{name}` is not a plugin file name: pass --name"));
    }
    let file = format!("{name}.wasm");
    let pulled = match crate::oci::pull(&reference).await {
        Ok(pulled) => pulled,
        Err(e) => return refuse(e.to_string()),
    };
    // A lock that cannot be read stops the pull before anything changes.
    let lock_path = PluginLock::path_for(&config);
    let lock = match PluginLock::read(&lock_path) {
        Ok(lock) => lock,
        Err(e) => return refuse(e.to_string()),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let tmp = TempFile(dir.join(format!(".{name}.pull{}", std::process::id())));
    std::fs::write(&tmp.0, &pulled.bytes)
        .with_context(|| format!("{}: cannot write", tmp.0.display()))?;
    let plugin = match runtime.load_pinned(&tmp.0, Some(pulled.digest)).await {
        Ok(plugin) => plugin,
        Err(e) => return refuse(format!("{reference}: not a checkhost plugin: {e}")),
    };
    let (kind, id) = (plugin.info.kind, plugin.info.id.clone());
    let set = PluginSet::load_dir(runtime, &dir, None).await;
    let clash = set.ok().and_then(|set| {
        let other = match kind {
            PluginKind::Strategy => set.strategy(&id),
            PluginKind::Collector => set.collector(&id),
        }?;
        let other_file = other.path.file_name()?.to_string_lossy().into_owned();
        (other_file != file).then_some(other_file)
    });
    if let Some(other) = clash {
        return refuse(format!(
            "{reference} is {kind} `{id}`, which {other} in {} already provides: \
             remove that file, or pull with --name {}",
            dir.display(),
            other.trim_end_matches(".wasm")
        ));
    }
    let target = dir.join(&file);
    std::fs::rename(&tmp.0, &target)
        .with_context(|| format!("{}: cannot write", target.display()))?;
    println!(
        "{}: {kind} `{}` from {reference} ({})",
        target.display(),
        inert(&id),
        pulled.digest
    );
    match lock {
        Some(mut lock) => {
            lock.pin(LockedPlugin {
                file,
                id,
                kind,
                digest: pulled.digest,
                source: Some(reference.to_string()),
            });
            lock.write(&lock_path)?;
            println!("{}: pinned", lock_path.display());
        }
        None => println!(
            "{}: none, so nothing is pinned; `checkhost plugin lock` pins every plugin the config uses",
            lock_path.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

async fn inspect(runtime: &Runtime, file: PathBuf, json: bool) -> anyhow::Result<ExitCode> {
    let plugin = runtime.load(&file).await?;
    let info = &plugin.info;
    let fields = &plugin.result_fields;
    if json {
        let mut shown = serde_json::to_value(info)?;
        shown["resultFields"] = serde_json::to_value(fields)?;
        shown["initialMemoryBytes"] = plugin.initial_memory_bytes.into();
        shown["digest"] = plugin.digest.to_string().into();
        shown["runLimits"] = serde_json::to_value(RunLimits::default())?;
        shown["maxMessageBytes"] = crate::runtime::text::MAX_MESSAGE_BYTES.into();
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("file:            {}", file.display());
    println!("digest:          {}", plugin.digest);
    println!("world:           {}@{}", info.world, info.contract_version);
    println!("kind:            {}", info.kind);
    println!("id:              {}", inert(&info.id));
    println!("name:            {}", inert(&info.display_name));
    println!("description:     {}", inert(&info.description));
    println!("config version:  {}", info.config_version);
    println!(
        "initial memory:  {:.1} MiB (what a run of it weighs against --guest-memory-budget)",
        plugin.initial_memory_bytes as f64 / (1024.0 * 1024.0)
    );
    let limits = RunLimits::default();
    println!(
        "run limits:      {} linear memory per guest, {} host memory and {} sockets per run, \
         errors cut at {} (a check's memoryMib, hostMemoryMib, maxSockets)",
        human_bytes(limits.memory_bytes()),
        human_bytes(limits.host_memory_bytes()),
        limits.max_sockets,
        human_bytes(crate::runtime::text::MAX_MESSAGE_BYTES),
    );
    if info.kind == PluginKind::Collector {
        println!("strategies:      {}", inert(&info.strategies.join(", ")));
        println!("allow multiple:  {}", info.allow_multiple);
    }
    for f in fields {
        println!(
            "charted field:   {} ({}, {}, {} chart{})",
            inert(&f.name),
            serde_json::to_value(f.kind)?.as_str().unwrap_or(""),
            serde_json::to_value(f.aggregate)?.as_str().unwrap_or(""),
            serde_json::to_value(f.chart)?.as_str().unwrap_or(""),
            f.unit
                .as_deref()
                .map(|u| format!(", in {}", inert(u)))
                .unwrap_or_default(),
        );
    }
    println!(
        "config schema:\n{}",
        serde_json::to_string_pretty(&info.config_schema)?
    );
    println!(
        "result schema:\n{}",
        serde_json::to_string_pretty(&info.result_schema)?
    );
    Ok(ExitCode::SUCCESS)
}

struct TestSpec {
    strategy: PathBuf,
    collectors: Vec<PathBuf>,
    config: String,
    env: Vec<String>,
    policy: PolicySpec,
    timeout_ms: u64,
    memory_mib: u64,
}

async fn test(runtime: &Runtime, spec: TestSpec, json: bool) -> anyhow::Result<ExitCode> {
    // --timeout-ms bounds every guest call of the test, describe and
    // migrate included.
    let call_timeout = std::time::Duration::from_millis(spec.timeout_ms);
    let strategy = runtime
        .load_with_timeout(&spec.strategy, call_timeout)
        .await?;
    if strategy.info.kind != PluginKind::Strategy {
        bail!(
            "{}: is a collector; pass a strategy first",
            spec.strategy.display()
        );
    }
    let config = parse_config_arg(&spec.config)?;
    let strategy_config = runtime
        .migrate_within(
            &strategy,
            config
                .get("strategy")
                .unwrap_or(&Value::Object(Default::default())),
            call_timeout,
        )
        .await?;
    let env = spec
        .env
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--env `{kv}` must be KEY=VALUE"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut collectors = Vec::new();
    for (i, path) in spec.collectors.iter().enumerate() {
        let plugin = runtime.load_with_timeout(path, call_timeout).await?;
        if plugin.info.kind != PluginKind::Collector {
            bail!("{}: is a strategy, not a collector", path.display());
        }
        if !plugin.info.strategies.contains(&strategy.info.id) {
            bail!(
                "collector `{}` does not support strategy `{}` (it supports: {})",
                plugin.info.id,
                strategy.info.id,
                plugin.info.strategies.join(", ")
            );
        }
        let raw = match config.get("collector") {
            Some(Value::Array(items)) => items
                .get(i)
                .cloned()
                .unwrap_or(Value::Object(Default::default())),
            Some(other) => other.clone(),
            None => Value::Object(Default::default()),
        };
        let migrated = runtime.migrate_within(&plugin, &raw, call_timeout).await?;
        collectors.push(CollectorRun {
            plugin: plugin.clone(),
            config_json: migrated.to_string(),
            env: env.clone(),
        });
    }
    let run = RunSpec {
        strategy: strategy.clone(),
        strategy_config: strategy_config.to_string(),
        collectors,
        context: test_context(),
        limits: RunLimits {
            timeout_ms: spec.timeout_ms,
            memory_mib: spec.memory_mib,
            ..RunLimits::default()
        },
        policy: Arc::new(NetworkPolicy::from_spec(&spec.policy)?),
        secrets: env.iter().map(|(_, v)| v.clone()).collect(),
    };
    let outcome = runtime.run(run).await;
    let healthy = outcome.error().is_none();
    if json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        let mut rows = vec![vec![
            strategy.info.id.clone(),
            if outcome.connect_error.is_none() && outcome.failure.is_none() {
                "ok".into()
            } else {
                "error".into()
            },
            format!("{:.1} ms", outcome.duration_ms),
            clip(
                &outcome
                    .failure
                    .as_ref()
                    .map(|f| f.to_string())
                    .or(outcome.connect_error.clone())
                    .unwrap_or_default(),
                100,
            ),
        ]];
        for c in &outcome.collectors {
            rows.push(vec![
                c.id.clone(),
                if c.error.is_none() {
                    "ok".into()
                } else {
                    "error".into()
                },
                String::new(),
                clip(c.error.as_deref().unwrap_or(&c.result.to_string()), 100),
            ]);
        }
        println!(
            "{}",
            table(&["plugin", "status", "time", "result / error"], &rows)
        );
        let stats = &outcome.stats;
        println!(
            "guest memory peak {}, host memory peak {} of {} (hostMemoryMib)",
            human_size(stats.memory_peak_bytes),
            human_size(stats.host_memory_peak_bytes),
            human_bytes(RunLimits::default().host_memory_bytes()),
        );
        for line in &outcome.logs {
            println!(
                "[{} {}] {}",
                inert(&line.plugin),
                line.level,
                inert(&line.message)
            );
        }
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A byte count in the unit that reads best: `812 KiB`, `13.4 MiB`.
fn human_size(bytes: usize) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if bytes as f64 >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB)
    } else {
        format!("{} KiB", bytes.div_ceil(1024))
    }
}

/// Inline JSON/YAML, or `@path` to a file holding it.
fn parse_config_arg(arg: &str) -> anyhow::Result<Value> {
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => arg.to_string(),
    };
    let value: Value =
        serde_yaml_ng::from_str(&text).context("--config is neither JSON nor YAML")?;
    if !value.is_object() {
        bail!("--config must be an object with `strategy` and `collector` keys");
    }
    Ok(value)
}

fn test_context() -> RunContext {
    RunContext {
        check: CheckInfo {
            id: "plugin-test".into(),
            name: "plugin test".into(),
            interval_seconds: 0,
        },
        system: SystemInfo {
            id: "local".into(),
            name: "local".into(),
            metadata: Vec::new(),
        },
        environment: None,
    }
}
