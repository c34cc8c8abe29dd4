//! The `redis` strategy against the local server.

use std::io::{Read, Write};
use std::net::TcpStream;

use checkhost::runtime::RunOutcome;
use serde_json::{Value, json};

use crate::support::servers;
use crate::support::services::{self, Service};

fn redis() -> Option<Service> {
    services::service("CHECKHOST_TEST_REDIS", "redis://127.0.0.1:6379")
}

fn config(svc: &Service, extra: Value) -> Value {
    let mut config = svc.config();
    for (k, v) in extra.as_object().into_iter().flatten() {
        config[k] = v.clone();
    }
    config
}

async fn run(config: Value, queries: &[&str]) -> RunOutcome {
    services::run("redis", config, queries).await
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
    services::assert_connect_error_starts(
        &outcome,
        "connection refused: authentication failed for user `checkhost-test`: WRONGPASS",
    );
    assert!(
        !format!("{outcome:?}").contains("wrong-password"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn closed_port_is_refused() {
    services::assert_closed_port_refused("redis").await;
}

#[tokio::test]
async fn another_protocol_is_not_redis() {
    let ssh = servers::banner("SSH-2.0-x\r\n").await;
    let outcome = run(services::at(ssh), &[]).await;
    services::assert_connect_error(
        &outcome,
        r#"protocol error: not a Redis server: expected a RESP reply, got "SSH-2.0-x\r\n""#,
    );
}

#[tokio::test]
async fn a_silent_server_times_out() {
    services::assert_times_out("redis", servers::silent().await, "timeout").await;
}
