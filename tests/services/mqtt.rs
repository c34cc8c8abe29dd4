//! The `mqtt` strategy against the local Mosquitto, and against tiny fake
//! brokers for the CONNACK refusals Mosquitto will not give anonymously.

use std::net::SocketAddr;

use checkhost::runtime::RunOutcome;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::servers;
use crate::support::services::{self, Service};

fn mosquitto() -> Option<Service> {
    services::service("CHECKHOST_TEST_MQTT", "mqtt://127.0.0.1:1883")
}

async fn run(config: Value, queries: &[&str]) -> RunOutcome {
    services::run("mqtt", config, queries).await
}

/// A broker that reads CONNECT and answers CONNACK with `code`.
async fn refusing_broker(code: u8) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut connect = [0u8; 256];
                if conn
                    .read(&mut connect)
                    .await
                    .is_ok_and(|n| n > 0 && connect[0] == 0x10)
                {
                    let _ = conn.write_all(&[0x20, 0x02, 0x00, code]).await;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn connects_and_reads_the_broker_version() {
    let Some(svc) = mosquitto() else { return };
    let mut config = svc.config();
    config["clientId"] = json!("checkhost-test-info");
    let outcome = run(config, &[]).await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let result = &outcome.collectors[0].result;
    let info = &result["info"];
    assert_eq!(info["connackCode"], 0);
    assert_eq!(info["sessionPresent"], false);
    assert_eq!(info["protocol"], "MQTT 3.1.1");
    assert_eq!(info["clientId"], "checkhost-test-info");
    let version = result["serverVersion"].as_str().unwrap_or_default();
    let parts: Vec<&str> = version.split('.').collect();
    assert!(
        parts.len() >= 2 && parts.iter().all(|p| p.parse::<u32>().is_ok()),
        "{result}"
    );
    assert_eq!(
        info["sysVersion"].as_str().unwrap_or_default(),
        format!("mosquitto version {version}")
    );
}

#[tokio::test]
async fn without_sys_the_version_is_unknown() {
    let Some(svc) = mosquitto() else { return };
    let mut config = svc.config();
    config["sysVersion"] = json!(false);
    let outcome = run(config, &[]).await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let result = &outcome.collectors[0].result;
    assert_eq!(result["serverVersion"], Value::Null);
    let client_id = result["info"]["clientId"].as_str().unwrap();
    assert!(
        client_id.starts_with("checkhost")
            && client_id.len() == 21
            && client_id.chars().all(|c| c.is_ascii_alphanumeric()),
        "{client_id}"
    );
}

#[tokio::test]
async fn publish_at_qos_1_is_acknowledged() {
    let Some(svc) = mosquitto() else { return };
    let outcome = run(
        svc.config(),
        &[
            "publish checkhost/test hello broker",
            "publish checkhost/test again",
        ],
    )
    .await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    // Packet id 1 went to the $SYS subscription; each publish takes the next.
    assert_eq!(
        outcome.collectors[0].result["reply"],
        json!({"ok": true, "packetId": 2, "topic": "checkhost/test", "payloadBytes": 12})
    );
    assert_eq!(outcome.collectors[1].result["reply"]["packetId"], 3);
    assert_eq!(outcome.collectors[1].result["ok"], true);
}

#[tokio::test]
async fn other_queries_are_unsupported_answers() {
    let Some(svc) = mosquitto() else { return };
    let outcome = run(svc.config(), &["subscribe a/b", "publish a/# x"]).await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let unsupported = &outcome.collectors[0].result;
    assert_eq!(unsupported["ok"], false);
    assert_eq!(
        unsupported["error"],
        "unsupported query `subscribe a/b`: the only query is `publish <topic> <payload>`"
    );
    let wildcard = &outcome.collectors[1].result;
    assert_eq!(wildcard["ok"], false);
    assert_eq!(
        wildcard["error"],
        "topic `a/#` has a wildcard; a publish needs a plain topic"
    );
}

#[tokio::test]
async fn connack_refusals_are_named() {
    let outcome = run(services::at(refusing_broker(5).await), &[]).await;
    services::assert_connect_error(
        &outcome,
        "connection refused: not authorized: the broker refused anonymous clients, CONNACK 5",
    );
    let mut config = services::at(refusing_broker(4).await);
    config["username"] = json!("alice");
    config["password"] = json!("wrong-password");
    let outcome = run(config, &[]).await;
    services::assert_connect_error(
        &outcome,
        "connection refused: authentication failed for user `alice`: \
         CONNACK 4 (bad user name or password)",
    );
    assert!(!format!("{outcome:?}").contains("wrong-password"));
    let outcome = run(services::at(refusing_broker(3).await), &[]).await;
    services::assert_connect_error(
        &outcome,
        "connection refused: the broker refused the connection: CONNACK 3 (server unavailable)",
    );
}

#[tokio::test]
async fn closed_port_is_refused() {
    services::assert_closed_port_refused("mqtt").await;
}

#[tokio::test]
async fn another_protocol_is_not_mqtt() {
    let ssh = servers::banner("SSH-2.0-x\r\n").await;
    let outcome = run(services::at(ssh), &[]).await;
    services::assert_connect_error(
        &outcome,
        r#"protocol error: not an MQTT broker: expected CONNACK, got "SSH-2.0-x\r\n""#,
    );
}

#[tokio::test]
async fn a_silent_server_times_out() {
    services::assert_times_out("mqtt", servers::silent().await, "timeout: read CONNACK").await;
}
