//! A `checkhost serve` process for black-box tests: started on a free port
//! with its JSON log collected, queried over HTTP, signalled and killed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Workspace;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `checkhost serve --log-format json` whose stderr lines are
/// collected as they come.
pub struct Daemon {
    pub child: Child,
    pub port: u16,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    pub fn start(ws: &Workspace, extra: &[&str]) -> Daemon {
        Self::start_with_env(ws, extra, &[])
    }

    /// Starts with extra environment variables (secrets, say).
    pub fn start_with_env(ws: &Workspace, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        Self::start_at(ws, &ws.dir.path().join("checkhost.yaml"), extra, env)
    }

    /// Starts on another configuration file, with the workspace's plugins
    /// and database.
    pub fn start_at(
        ws: &Workspace,
        config: &std::path::Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        // A free port may be taken by a parallel test before the daemon
        // binds it (and a neighbour's daemon would answer on it): the daemon
        // then exits 2, and is started again on another port.
        for _ in 0..5 {
            let mut daemon = Self::spawn(ws, config, extra, env, free_port());
            let start = Instant::now();
            loop {
                if daemon.child.try_wait().unwrap().is_some() {
                    let log = daemon.log().join("\n");
                    assert!(
                        log.contains("Address already in use"),
                        "the daemon exited:\n{log}"
                    );
                    break;
                }
                if daemon.get("/healthz").is_some() && daemon.child.try_wait().unwrap().is_none() {
                    return daemon;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "timed out waiting for the daemon to serve; log:\n{}",
                    daemon.log().join("\n")
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("the daemon found no free port in 5 tries")
    }

    /// Starts again on this port (a restarted server its probes know).
    pub fn start_on_port(ws: &Workspace, port: u16) -> Daemon {
        let config = ws.dir.path().join("checkhost.yaml");
        let daemon = Self::spawn(ws, &config, &[], &[], port);
        daemon.wait_for(Duration::from_secs(30), "the daemon to serve", |d| {
            d.get("/healthz").is_some()
        });
        daemon
    }

    fn spawn(
        ws: &Workspace,
        config: &std::path::Path,
        extra: &[&str],
        env: &[(&str, &str)],
        port: u16,
    ) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_checkhost"))
            .args(["--log-format", "json", "serve"])
            .arg(config)
            .arg("--plugins")
            .arg(ws.plugins.path())
            .args(["--database", &ws.db_url()])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("CHECKHOST_CACHE_DIR", super::cache_dir())
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("checkhost serve starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Daemon { child, port, lines }
    }

    pub fn get(&self, path: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        write!(
            conn,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        conn.read_to_string(&mut response).ok()?;
        Some(response)
    }

    /// `/metrics` as OpenMetrics, with its exemplars.
    pub async fn open_metrics(&self) -> String {
        reqwest::Client::new()
            .get(self.url("/metrics"))
            .header("Accept", "application/openmetrics-text; version=1.0.0")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Run ids the daemon reported as recorded.
    pub fn reported_runs(&self) -> Vec<i64> {
        self.log()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["fields"]["message"] == "run recorded")
            .filter_map(|v| v["fields"]["run_id"].as_i64())
            .collect()
    }

    pub fn wait_for(&self, limit: Duration, what: &str, ready: impl Fn(&Daemon) -> bool) {
        let start = Instant::now();
        while !ready(self) {
            assert!(
                start.elapsed() < limit,
                "timed out waiting for {what}; log:\n{}",
                self.log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn wait(mut self) -> (Option<i32>, Vec<String>) {
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        (status.code(), self.log())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
