//! The `redis` strategy against the local server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::support::services::{self, Service};
use crate::support::{Probe, servers};

fn redis() -> Option<Service> {
    services::service("CHECKHOST_TEST_REDIS", "redis://127.0.0.1:6379")
}

fn config(svc: &Service, extra: Value) -> Value {
    let mut config = json!({"host": svc.host, "port": svc.port});
    if let Some(password) = &svc.password {
        config["password"] = json!(password);
    }
    if let Some(user) = svc.user.as_deref().filter(|u| !u.is_empty()) {
        config["username"] = json!(user);
    }
    for (k, v) in extra.as_object().into_iter().flatten() {
        config[k] = v.clone();
    }
    config
}

/// Runs the `service` collector once per query (none: one run without).
async fn run(config: Value, queries: &[&str]) -> checkhost::runtime::RunOutcome {
    let mut probe = Probe::new("redis", config).await;
    if queries.is_empty() {
        probe = probe.collector("service", json!({})).await;
    }
    for query in queries {
        probe = probe.collector("service", json!({"query": query})).await;
    }
    probe.run().await
}

/// `redis_version` as a plain `INFO server` over a socket of our own says.
fn raw_version(svc: &Service) -> String {
    let mut conn = TcpStream::connect((svc.host.as_str(), svc.port)).unwrap();
    let mut command = String::new();
    if let Some(password) = &svc.password {
        let user = svc.user.as_deref().unwrap_or("default");
        command += &format!("AUTH {user} {password}\r\n");
    }
    command += "INFO server\r\nQUIT\r\n";
    conn.write_all(command.as_bytes()).unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .expect("INFO server names redis_version")
        .trim()
        .to_string()
}

/// Accepts connections and never writes a byte.
async fn silent() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    addr
}

#[tokio::test]
async fn ping_and_the_server_version() {
    let Some(svc) = redis() else { return };
    let outcome = run(config(&svc, json!({})), &["PING", r#"ECHO "hello world""#]).await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let ping = &outcome.collectors[0].result;
    assert_eq!(ping["ok"], true, "{ping}");
    assert_eq!(ping["reply"], json!({"ok": true, "reply": "PONG"}));
    let version = raw_version(&svc);
    assert_eq!(ping["serverVersion"], version.as_str());
    assert!(
        version.starts_with(|c: char| c.is_ascii_digit()),
        "{version}"
    );
    assert_eq!(ping["info"]["info"]["redis_version"], version.as_str());
    assert_eq!(ping["info"]["mode"], "standalone");
    assert_eq!(ping["info"]["role"], "master");
    assert!(ping["info"]["uptimeSeconds"].is_u64(), "{ping}");
    assert_eq!(ping["info"]["database"], 0);
    let echo = &outcome.collectors[1].result;
    assert_eq!(echo["reply"]["reply"], "hello world");
}

#[tokio::test]
async fn typed_replies_become_json() {
    let Some(svc) = redis() else { return };
    let outcome = run(
        config(&svc, json!({"database": 3})),
        &[
            "CLIENT INFO",
            "EVAL \"return {1, 'two', false, {3}}\" 0",
            "GET checkhost-test:surely-missing",
        ],
    )
    .await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let client = outcome.collectors[0].result["reply"]["reply"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(client.contains(" db=3 "), "{client}");
    assert_eq!(outcome.collectors[0].result["info"]["database"], 3);
    // Lua's false is a nil bulk string.
    assert_eq!(
        outcome.collectors[1].result["reply"]["reply"],
        json!([1, "two", null, [3]])
    );
    assert_eq!(
        outcome.collectors[2].result["reply"],
        json!({"ok": true, "reply": null})
    );
}

#[tokio::test]
async fn a_wrong_command_is_an_answer() {
    let Some(svc) = redis() else { return };
    let outcome = run(config(&svc, json!({})), &["NOSUCHCOMMAND a b"]).await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let result = &outcome.collectors[0].result;
    assert_eq!(result["ok"], false);
    let error = result["error"].as_str().unwrap();
    assert!(
        error.starts_with("ERR unknown command 'NOSUCHCOMMAND'"),
        "{error}"
    );
    assert_eq!(result["reply"]["ok"], false);
}

#[tokio::test]
async fn acl_user_with_right_and_wrong_password() {
    let Some(svc) = redis() else { return };
    // Created through the strategy itself; repeating it changes nothing.
    let outcome = run(
        config(&svc, json!({})),
        &["ACL SETUSER checkhost-test on >right-password ~* +@all"],
    )
    .await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    assert_eq!(outcome.collectors[0].result["reply"]["reply"], "OK");

    let user = |password: &str| json!({"host": svc.host, "port": svc.port, "username": "checkhost-test", "password": password});
    let outcome = run(user("right-password"), &["ACL WHOAMI"]).await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    assert_eq!(
        outcome.collectors[0].result["reply"]["reply"],
        "checkhost-test"
    );

    let outcome = run(user("wrong-password"), &["PING"]).await;
    let error = outcome.connect_error.clone().unwrap_or_default();
    assert!(
        error.starts_with(
            "connection refused: authentication failed for user `checkhost-test`: WRONGPASS"
        ),
        "{outcome:?}"
    );
    assert!(
        !format!("{outcome:?}").contains("wrong-password"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn closed_port_is_refused() {
    let outcome = run(json!({"host": "127.0.0.1", "port": 1}), &[]).await;
    let error = outcome.connect_error.clone().unwrap_or_default();
    assert!(error.starts_with("connection refused"), "{outcome:?}");
}

#[tokio::test]
async fn another_protocol_is_not_redis() {
    let ssh = servers::banner("SSH-2.0-x\r\n").await;
    let outcome = run(json!({"host": "127.0.0.1", "port": ssh.port()}), &[]).await;
    assert_eq!(
        outcome.connect_error.as_deref(),
        Some(r#"protocol error: not a Redis server: expected a RESP reply, got "SSH-2.0-x\r\n""#),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let addr = silent().await;
    let started = std::time::Instant::now();
    let outcome = run(
        json!({"host": "127.0.0.1", "port": addr.port(), "timeoutMs": 500}),
        &[],
    )
    .await;
    let error = outcome.connect_error.clone().unwrap_or_default();
    assert!(error.starts_with("timeout"), "{outcome:?}");
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
}
