//! The `grpc-health` strategy against a local gRPC server.
//!
//! The servers are Python's grpcio (tests/services/grpc_health_server.py in
//! the venv scripts/install-test-tools makes): one with the health service,
//! one without any. They start once for this module, shared by its tests.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

use checkhost::runtime::RunOutcome;
use serde_json::{Value, json};

use crate::support::{self, servers, services};

struct GrpcServers {
    health: u16,
    bare: u16,
    _process: Process,
}

/// Kills the server when dropped. The shared one lives in a static, which
/// is never dropped: the script also exits when its standard input, held
/// here, closes with the test process.
struct Process {
    child: Child,
    _stdin: ChildStdin,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shared servers; `None` after a loud message when grpcio is not
/// installed, except under `CI=true`, where that fails the test.
fn grpc_servers() -> Option<&'static GrpcServers> {
    static SERVERS: OnceLock<Result<GrpcServers, String>> = OnceLock::new();
    match SERVERS.get_or_init(start) {
        Ok(servers) => Some(servers),
        Err(missing) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true and {missing}")
        }
        Err(missing) => {
            eprintln!("\n!!! SKIPPED: {missing}: run scripts/install-test-tools !!!\n");
            None
        }
    }
}

/// Starts the script; `Err` only when the venv or grpcio is missing.
fn start() -> Result<GrpcServers, String> {
    let python = support::target_dir().join("test-tools/venv/bin/python");
    if !python.exists() {
        return Err(format!("{} is missing", python.display()));
    }
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/services/grpc_health_server.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .args(["0", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} starts: {e}", python.display()));
    let stdin = child.stdin.take().expect("piped stdin");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("the server's first line");
    let process = Process {
        child,
        _stdin: stdin,
    };
    match line.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["ready", health, bare] => Ok(GrpcServers {
            health: health.parse().expect("a port"),
            bare: bare.parse().expect("a port"),
            _process: process,
        }),
        ["missing", module] => Err(format!("Python module `{module}` is missing from the venv")),
        _ => panic!("grpc_health_server.py did not start: {line:?}"),
    }
}

fn strategy(port: u16, extra: Value) -> Value {
    let mut config = json!({"host": "127.0.0.1", "port": port});
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    config
}

async fn run(config: Value, queries: &[&str]) -> RunOutcome {
    services::run("grpc-health", config, queries).await
}

#[tokio::test]
async fn the_whole_server_is_serving() {
    let Some(grpc) = grpc_servers() else { return };
    let outcome = run(strategy(grpc.health, json!({})), &[]).await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let result = &outcome.collectors[0].result;
    assert_eq!(
        result["info"],
        json!({"service": "", "status": "SERVING", "grpcStatus": 0, "grpcCode": "OK",
               "grpcMessage": null, "httpStatus": 200, "serverVersion": null})
    );
    assert_eq!(result["serverVersion"], Value::Null);
    assert_eq!(result["ok"], true);
}

/// One connection, one stream per check: the configured service through
/// `info`, then one query per collector.
#[tokio::test]
async fn not_serving_and_unknown_services_are_answers() {
    let Some(grpc) = grpc_servers() else { return };
    let outcome = run(
        strategy(grpc.health, json!({"service": "db"})),
        &["shop", "db", "nope"],
    )
    .await;
    assert_eq!(outcome.connect_error, None, "{outcome:?}");
    assert_eq!(outcome.failure, None, "{outcome:?}");
    let results: Vec<&Value> = outcome.collectors.iter().map(|c| &c.result).collect();
    assert!(
        outcome.collectors.iter().all(|c| c.error.is_none()),
        "{outcome:?}"
    );
    assert_eq!(results[0]["info"]["status"], "NOT_SERVING");
    assert_eq!(results[0]["info"]["grpcStatus"], 0);

    assert_eq!(
        (&results[0]["ok"], &results[0]["error"]),
        (&json!(true), &Value::Null)
    );
    assert_eq!(results[0]["reply"]["status"], "SERVING");

    assert_eq!(results[1]["ok"], false);
    assert_eq!(results[1]["error"], "service `db` is NOT_SERVING");
    assert_eq!(
        results[1]["reply"],
        json!({"ok": false, "error": "service `db` is NOT_SERVING", "service": "db",
               "status": "NOT_SERVING", "grpcStatus": 0, "grpcCode": "OK",
               "grpcMessage": null, "httpStatus": 200})
    );

    assert_eq!(results[2]["ok"], false);
    assert_eq!(results[2]["error"], "NOT_FOUND (5)");
    assert_eq!(results[2]["reply"]["status"], Value::Null);
    assert_eq!(results[2]["reply"]["grpcStatus"], 5);
}

#[tokio::test]
async fn a_server_without_the_health_service_answers_unimplemented() {
    let Some(grpc) = grpc_servers() else { return };
    let outcome = run(strategy(grpc.bare, json!({})), &["shop"]).await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let result = &outcome.collectors[0].result;
    assert_eq!(result["info"]["status"], Value::Null);
    assert_eq!(result["info"]["grpcStatus"], 12);
    assert_eq!(result["info"]["grpcCode"], "UNIMPLEMENTED");
    assert_eq!(result["info"]["grpcMessage"], "Method not found!");
    assert_eq!(result["ok"], false);
    assert_eq!(result["error"], "UNIMPLEMENTED (12): Method not found!");
}

/// Metadata names are lowercased on the way; the server refuses calls
/// carrying `x-deny` with a message that travels percent-encoded.
#[tokio::test]
async fn metadata_reaches_the_server() {
    let Some(grpc) = grpc_servers() else { return };
    let config = strategy(grpc.health, json!({"metadata": {"X-Deny": "probe"}}));
    let outcome = run(config, &[]).await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let info = &outcome.collectors[0].result["info"];
    assert_eq!(info["grpcStatus"], 7);
    assert_eq!(info["grpcCode"], "PERMISSION_DENIED");
    assert_eq!(info["grpcMessage"], "denied for probe ✗ 100%");
}

#[tokio::test]
async fn a_closed_port_is_refused() {
    services::assert_closed_port_refused("grpc-health").await;
}

#[tokio::test]
async fn an_http1_server_is_not_http2() {
    let server = servers::http().await;
    let outcome = run(services::at(server), &[]).await;
    services::assert_connect_error(
        &outcome,
        "protocol error: not an HTTP/2 (gRPC) server: expected a SETTINGS frame, \
         got \"HTTP/1.1 404 Not Found\\r\\nContent-Type: applicatio…\"",
    );
}

#[tokio::test]
async fn a_silent_server_times_out() {
    services::assert_times_out(
        "grpc-health",
        servers::silent().await,
        "timeout: read the server's SETTINGS",
    )
    .await;
}

#[tokio::test]
async fn tls_is_not_supported_yet() {
    let outcome = run(strategy(1, json!({"tls": true})), &[]).await;
    services::assert_connect_error(
        &outcome,
        "bad config: tls is not supported yet: grpc-health speaks cleartext HTTP/2 (h2c) only",
    );
}
