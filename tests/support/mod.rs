//! Shared helpers for the black-box tests: where the built guests are, a
//! shared runtime, and real local servers (HTTP, TCP banner, DNS, TLS).
#![allow(dead_code)]

pub mod daemon;
pub mod db;
pub mod mcp;
pub mod otlp;
pub mod servers;
pub mod services;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use checkhost::runtime::bindings::{CheckInfo, RunContext, SystemInfo};
use checkhost::runtime::{
    CollectorRun, NetworkPolicy, Plugin, PolicySpec, RunLimits, RunOutcome, RunSpec, Runtime,
    RuntimeConfig,
};

/// `target/` of this build, found from the test executable (`target/debug/deps/x`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors()
        .nth(3)
        .expect("test executable lives in <target>/<profile>/deps")
        .to_path_buf()
}

/// A built guest component (example or test-only); the suite's command
/// builds them first.
pub fn guest(name: &str) -> PathBuf {
    let file = format!("{name}.wasm");
    let example = target_dir().join("guests").join(&file);
    let path = if example.exists() {
        example
    } else {
        target_dir().join("test-guests").join(&file)
    };
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-guests (scripts/test does it for you)",
        path.display()
    );
    path
}

pub fn cache_dir() -> PathBuf {
    target_dir().join("component-cache")
}

pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Runtime::new(RuntimeConfig {
            cache_dir: Some(cache_dir()),
            instance_slots: 32,
            max_memory_mib: 256,
            ..RuntimeConfig::default()
        })
        .expect("runtime starts")
    })
}

pub async fn load(name: &str) -> Arc<Plugin> {
    runtime()
        .load(guest(name))
        .await
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

pub fn context() -> RunContext {
    RunContext {
        check: CheckInfo {
            id: "probe".into(),
            name: "Probe".into(),
            interval_seconds: 60,
        },
        system: SystemInfo {
            id: "shop".into(),
            name: "Shop".into(),
            metadata: vec![("team".into(), "web".into())],
        },
        environment: None,
    }
}

/// A run of one strategy with collectors, default limits, and a policy
/// that opens loopback, where the tests' servers listen.
pub struct Probe {
    pub strategy: Arc<Plugin>,
    pub strategy_config: serde_json::Value,
    pub collectors: Vec<(Arc<Plugin>, serde_json::Value)>,
    pub env: Vec<(String, String)>,
    pub limits: RunLimits,
    pub policy: PolicySpec,
}

impl Probe {
    pub async fn new(strategy: &str, config: serde_json::Value) -> Probe {
        Probe {
            strategy: load(strategy).await,
            strategy_config: config,
            collectors: Vec::new(),
            env: Vec::new(),
            limits: RunLimits::default(),
            policy: PolicySpec {
                allow: vec!["127.0.0.0/8".into(), "::1".into()],
                deny: Vec::new(),
            },
        }
    }

    /// No allow rules: the default policy a check without `network` gets.
    pub fn default_policy(mut self) -> Probe {
        self.policy = PolicySpec::default();
        self
    }

    pub async fn collector(mut self, name: &str, config: serde_json::Value) -> Probe {
        self.collectors.push((load(name).await, config));
        self
    }

    pub fn timeout_ms(mut self, ms: u64) -> Probe {
        self.limits.timeout_ms = ms;
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Probe {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn deny(mut self, rule: &str) -> Probe {
        self.policy.deny.push(rule.into());
        self
    }

    pub fn spec(&self) -> RunSpec {
        RunSpec {
            strategy: self.strategy.clone(),
            strategy_config: self.strategy_config.to_string(),
            collectors: self
                .collectors
                .iter()
                .map(|(plugin, config)| CollectorRun {
                    plugin: plugin.clone(),
                    config_json: config.to_string(),
                    env: self.env.clone(),
                })
                .collect(),
            context: context(),
            limits: self.limits,
            policy: Arc::new(NetworkPolicy::from_spec(&self.policy).expect("valid policy")),
            secrets: self.env.iter().map(|(_, v)| v.clone()).collect(),
        }
    }

    pub async fn run(&self) -> RunOutcome {
        runtime().run(self.spec()).await
    }
}

/// Runs the real `checkhost` binary.
pub fn checkhost(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_checkhost"))
        .args(args)
        .env("CHECKHOST_CACHE_DIR", cache_dir())
        .output()
        .expect("checkhost binary runs")
}

/// Runs the real `checkhost` binary: its exit code, and its stdout then
/// its stderr as text.
pub fn checkhost_text<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_checkhost"))
        .args(args)
        .env("CHECKHOST_CACHE_DIR", cache_dir())
        .output()
        .expect("checkhost binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// A plugin folder holding copies of the named guests.
pub fn plugin_dir(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in names {
        std::fs::copy(guest(name), dir.path().join(format!("{name}.wasm"))).unwrap();
    }
    dir
}

/// A scratch folder with a config file, a plugin folder and a database.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub plugins: tempfile::TempDir,
    pub db: db::TestDb,
}

impl Workspace {
    /// A workspace on a SQLite file.
    pub fn new(plugins: &[&str]) -> Workspace {
        Workspace::on(db::TestDb::sqlite(), plugins)
    }

    pub fn on(db: db::TestDb, plugins: &[&str]) -> Workspace {
        Workspace {
            dir: tempfile::tempdir().unwrap(),
            plugins: plugin_dir(plugins),
            db,
        }
    }

    pub fn config(&self, yaml: &str) -> PathBuf {
        let path = self.dir.path().join("checkhost.yaml");
        std::fs::write(&path, yaml).unwrap();
        path
    }

    pub fn db_url(&self) -> String {
        self.db.url()
    }

    /// `checkhost run --json` on the current config.
    fn run_command(&self) -> std::process::Command {
        let config = self.dir.path().join("checkhost.yaml");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_checkhost"));
        cmd.arg("run")
            .arg(&config)
            .arg("--plugins")
            .arg(self.plugins.path())
            .arg("--database")
            .arg(self.db_url())
            .arg("--json")
            .env("CHECKHOST_CACHE_DIR", cache_dir());
        cmd
    }

    /// Starts `checkhost run --json` without waiting for it.
    pub fn spawn_run(&self) -> std::process::Child {
        self.run_command()
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("checkhost starts")
    }

    /// `checkhost run --json` on the current config, with extra env vars.
    pub fn run(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (Option<i32>, serde_json::Value, String) {
        let mut cmd = self.run_command();
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("checkhost runs");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let json = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
        (out.status.code(), json, format!("{stdout}\n{stderr}"))
    }

    pub fn status(&self) -> serde_json::Value {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_checkhost"))
            .args(["status", "--json", "--database", &self.db_url()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Status of one entity from `checkhost status --json`.
    pub fn entity(&self, id: &str) -> String {
        let status = self.status();
        status["entities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["entityId"] == id)
            .map(|e| e["status"].as_str().unwrap().to_string())
            .unwrap_or_else(|| "unknown".into())
    }
}
