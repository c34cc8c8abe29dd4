//! The `postgres` strategy against the local PostgreSQL.

use std::net::SocketAddr;
use std::time::Duration;

use checkhost::runtime::RunOutcome;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{servers, services};

const VAR: &str = "CHECKHOST_TEST_POSTGRES";
const DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The strategy config for the local server, or `None` when it is not there.
fn local() -> Option<Value> {
    let svc = services::service(VAR, DEFAULT)?;
    let mut config = svc.config();
    config["database"] = json!(svc.database.as_deref().unwrap_or("postgres"));
    config["username"] = json!(svc.user.as_deref().unwrap_or("postgres"));
    Some(config)
}

async fn run(config: Value, queries: &[&str]) -> RunOutcome {
    services::run("postgres", config, queries).await
}

#[tokio::test]
async fn postgres_answers_select_1_and_its_version() {
    let Some(config) = local() else { return };
    let outcome = run(config, &["SELECT 1", "SHOW server_version"]).await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let select = &outcome.collectors[0].result;
    assert_eq!(select["ok"], true, "{select}");
    assert_eq!(
        select["reply"],
        json!({"ok": true, "columns": ["?column?"], "rows": [["1"]], "rowCount": 1, "command": "SELECT 1"})
    );
    let version = select["serverVersion"].as_str().unwrap_or_default();
    assert!(
        version.starts_with(|c: char| c.is_ascii_digit()),
        "{select}"
    );
    let shown = &outcome.collectors[1].result["reply"];
    assert_eq!(shown["rows"], json!([[version]]), "{shown}");
    let info = &select["info"];
    assert_eq!(info["parameters"]["server_version"], version);
    assert_eq!(info["parameters"]["application_name"], "checkhost");
    assert_eq!(info["parameters"]["client_encoding"], "UTF8");
    assert!(
        info["backendPid"].as_i64().unwrap_or_default() > 0,
        "{info}"
    );
    assert!(
        ["trust", "password", "md5", "scram-sha-256"]
            .contains(&info["authMethod"].as_str().unwrap_or_default()),
        "{info}"
    );
    assert!(select["connectMs"].is_number(), "{select}");
}

#[tokio::test]
async fn postgres_sql_error_is_an_answer_and_the_session_goes_on() {
    let Some(config) = local() else { return };
    let outcome = run(
        config,
        &["SELECT * FROM no_such_table", "SELECT NULL AS a, 'x' AS b"],
    )
    .await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let failed = &outcome.collectors[0].result;
    assert_eq!(failed["ok"], false, "{failed}");
    assert_eq!(
        failed["error"],
        "42P01: relation \"no_such_table\" does not exist"
    );
    assert_eq!(failed["reply"]["sqlstate"], "42P01");
    let next = &outcome.collectors[1].result["reply"];
    assert_eq!(next["columns"], json!(["a", "b"]), "{next}");
    assert_eq!(next["rows"], json!([[null, "x"]]), "{next}");
}

#[tokio::test]
async fn postgres_unknown_database_is_refused_by_name() {
    let Some(mut config) = local() else { return };
    config["database"] = "checkhost_no_such_db".into();
    let outcome = run(config, &[]).await;
    services::assert_connect_error(
        &outcome,
        "connection refused: database `checkhost_no_such_db` does not exist: \
         database \"checkhost_no_such_db\" does not exist",
    );
}

#[tokio::test]
async fn postgres_closed_port_is_refused() {
    services::assert_closed_port_refused("postgres").await;
}

#[tokio::test]
async fn postgres_other_protocol_is_a_protocol_error() {
    let server = servers::banner("SSH-2.0-x\r\n").await;
    let outcome = run(services::at(server), &[]).await;
    services::assert_connect_error(
        &outcome,
        "protocol error: not a PostgreSQL server: expected an authentication request, \
         got \"SSH-2.0-x\\r\\n\"",
    );
}

#[tokio::test]
async fn postgres_silent_server_times_out() {
    services::assert_times_out("postgres", servers::silent().await, "timeout: ").await;
}

/// Reads one frontend message with a type byte: its tag and body.
async fn frontend_message(conn: &mut TcpStream) -> (u8, Vec<u8>) {
    let tag = conn.read_u8().await.unwrap();
    let len = conn.read_u32().await.unwrap() as usize;
    let mut body = vec![0; len - 4];
    conn.read_exact(&mut body).await.unwrap();
    (tag, body)
}

fn backend(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A server that asks for MD5 (`md5`) or SCRAM-SHA-256 and then rejects
/// whatever the client proves, as PostgreSQL does for a wrong password.
/// It reports what the client sent as its last authentication message.
async fn rejecting_server(scram: bool) -> (SocketAddr, tokio::sync::oneshot::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (sent, received) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let len = conn.read_u32().await.unwrap() as usize;
        let mut startup = vec![0; len - 4];
        conn.read_exact(&mut startup).await.unwrap();
        let last = if scram {
            let request = [&10i32.to_be_bytes()[..], b"SCRAM-SHA-256\0\0"].concat();
            conn.write_all(&backend(b'R', &request)).await.unwrap();
            let (_, initial) = frontend_message(&mut conn).await;
            let initial = String::from_utf8_lossy(&initial).into_owned();
            let nonce = initial.split("r=").nth(1).unwrap().to_string();
            let server_first = format!("r={nonce}srv,s=c2FsdA==,i=4096");
            let body = [&11i32.to_be_bytes()[..], server_first.as_bytes()].concat();
            conn.write_all(&backend(b'R', &body)).await.unwrap();
            frontend_message(&mut conn).await.1
        } else {
            let body = [5i32.to_be_bytes(), [1, 2, 3, 4]].concat();
            conn.write_all(&backend(b'R', &body)).await.unwrap();
            frontend_message(&mut conn).await.1
        };
        let error = b"SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed for user \"x\"\0\0";
        conn.write_all(&backend(b'E', error)).await.unwrap();
        let _ = sent.send(String::from_utf8_lossy(&last).into_owned());
    });
    (addr, received)
}

#[tokio::test]
async fn postgres_wrong_password_is_refused_without_showing_it() {
    let password = "hunter2-do-not-print";
    for scram in [false, true] {
        let (server, sent) = rejecting_server(scram).await;
        let config = json!({
            "host": "127.0.0.1",
            "port": server.port(),
            "username": "x",
            "password": password,
        });
        let outcome = run(config, &[]).await;
        services::assert_connect_error(
            &outcome,
            "connection refused: authentication failed for user `x`: \
             password authentication failed for user \"x\"",
        );
        assert!(!format!("{outcome:?}").contains(password), "{outcome:?}");
        let sent = tokio::time::timeout(Duration::from_secs(5), sent)
            .await
            .unwrap()
            .unwrap();
        if scram {
            assert!(sent.starts_with("c=biws,r="), "{sent}");
            assert!(sent.contains("srv,p="), "{sent}");
        } else {
            // "md5" + hex(md5(hex(md5(password + user)) + salt)), NUL-terminated.
            assert_eq!(sent.len(), 36, "{sent}");
            assert!(sent.starts_with("md5"), "{sent}");
        }
        assert!(!sent.contains(password));
    }
}
