//! A real OTLP receiver on loopback (tests/otlp_receiver.py, decoding with
//! opentelemetry-proto in the venv of scripts/install-test-tools): the
//! spans it received, one JSON object each.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Receiver {
    pub http_port: u16,
    pub grpc_port: u16,
    spans: Arc<Mutex<Vec<Value>>>,
    child: Child,
    _stdin: ChildStdin,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Receiver {
    /// Starts a receiver; `None` after a loud message when the venv lacks
    /// it, except under `CI=true`, where that fails the test.
    pub fn start() -> Option<Receiver> {
        let python = super::target_dir().join("test-tools/venv/bin/python");
        let has_proto = Command::new(&python)
            .args(["-c", "import opentelemetry.proto, grpc"])
            .status()
            .is_ok_and(|s| s.success());
        if !has_proto {
            let missing = format!("{} with opentelemetry-proto is missing", python.display());
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true and {missing}");
            }
            eprintln!("\n!!! SKIPPED: {missing}: run scripts/install-test-tools !!!\n");
            return None;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/otlp_receiver.py");
        let mut child = Command::new(&python)
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the OTLP receiver starts");
        let stdin = child.stdin.take().expect("piped stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let ready = lines.next().expect("a first line").expect("readable");
        let ports: Vec<u16> = ready
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("the receiver said {ready:?}"))
            .split_whitespace()
            .map(|p| p.parse().expect("a port"))
            .collect();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = spans.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let span: Value = serde_json::from_str(&line).expect("a JSON span");
                sink.lock().unwrap().push(span);
            }
        });
        Some(Receiver {
            http_port: ports[0],
            grpc_port: ports[1],
            spans,
            child,
            _stdin: stdin,
        })
    }

    pub fn http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Value> {
        self.spans.lock().unwrap().clone()
    }

    /// Forgets the spans received so far.
    pub fn clear(&self) {
        self.spans.lock().unwrap().clear();
    }

    /// Waits until `enough` holds of the spans received, and returns them.
    pub fn wait_for(&self, what: &str, enough: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let spans = self.spans();
            if enough(&spans) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver never got {what}; it has {spans:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the receiver: later exports fail.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
