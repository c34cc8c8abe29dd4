//! The `mysql` strategy against the local server.

use checkhost::runtime::RunOutcome;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{servers, services};

const VAR: &str = "CHECKHOST_TEST_MYSQL";
const DEFAULT: &str = "mysql://root@127.0.0.1:3306/test";

/// The strategy config for the local server as its admin, or `None` when
/// it is not there.
fn local() -> Option<Value> {
    let svc = services::service(VAR, DEFAULT)?;
    let mut config = svc.config();
    config["database"] = json!(svc.database.as_deref().unwrap_or("test"));
    config["username"] = json!(svc.user.as_deref().unwrap_or("root"));
    Some(config)
}

async fn run(config: Value, queries: &[&str]) -> RunOutcome {
    services::run("mysql", config, queries).await
}

#[tokio::test]
async fn mysql_answers_select_1_and_its_version() {
    let Some(config) = local() else { return };
    let outcome = run(config, &["SELECT 1", "SELECT VERSION() AS v"]).await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let select = &outcome.collectors[0].result;
    assert_eq!(
        select["reply"],
        json!({"ok": true, "columns": ["1"], "rows": [["1"]], "rowCount": 1}),
        "{select}"
    );
    let version = select["serverVersion"].as_str().unwrap_or_default();
    assert!(
        version.starts_with(|c: char| c.is_ascii_digit()),
        "{select}"
    );
    let reported = &outcome.collectors[1].result["reply"];
    assert_eq!(reported["columns"], json!(["v"]), "{reported}");
    assert_eq!(reported["rows"], json!([[version]]), "{reported}");
    let info = &select["info"];
    let flavor = if version.contains("MariaDB") {
        "mariadb"
    } else {
        "mysql"
    };
    assert_eq!(info["serverFlavor"], flavor, "{info}");
    assert!(
        info["connectionId"].as_u64().unwrap_or_default() > 0,
        "{info}"
    );
    assert!(
        ["mysql_native_password", "caching_sha2_password"]
            .contains(&info["authPlugin"].as_str().unwrap_or_default()),
        "{info}"
    );
}

#[tokio::test]
async fn mysql_sql_error_is_an_answer_and_the_session_goes_on() {
    let Some(config) = local() else { return };
    let database = config["database"].as_str().unwrap_or_default().to_string();
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
        format!("1146 (42S02): Table '{database}.no_such_table' doesn't exist")
    );
    assert_eq!(failed["reply"]["code"], 1146);
    let next = &outcome.collectors[1].result["reply"];
    assert_eq!(next["columns"], json!(["a", "b"]), "{next}");
    assert_eq!(next["rows"], json!([[null, "x"]]), "{next}");
}

/// Runs one statement as the admin and insists the server accepts it.
async fn admin(config: &Value, statement: &str) -> Value {
    let outcome = run(config.clone(), &[statement]).await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let result = &outcome.collectors[0].result;
    assert_eq!(result["ok"], true, "{statement}: {result}");
    result["reply"].clone()
}

#[tokio::test]
async fn mysql_password_login_and_a_wrong_password() {
    let Some(config) = local() else { return };
    let database = config["database"].as_str().unwrap_or_default().to_string();
    let account = "'checkhost_test'@'127.0.0.1'";
    let created = admin(
        &config,
        &format!("CREATE USER IF NOT EXISTS {account} IDENTIFIED BY 'right-password'"),
    )
    .await;
    assert!(created["affectedRows"].is_u64(), "{created}");
    admin(
        &config,
        &format!("GRANT SELECT ON `{database}`.* TO {account}"),
    )
    .await;

    let mut user = config.clone();
    user["username"] = "checkhost_test".into();
    user["password"] = "right-password".into();
    let outcome = run(user.clone(), &["SELECT CURRENT_USER()"]).await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    assert_eq!(
        outcome.collectors[0].result["reply"]["rows"],
        json!([["checkhost_test@127.0.0.1"]])
    );

    let wrong = "wrong-password-do-not-print";
    user["password"] = wrong.into();
    let outcome = run(user, &["SELECT 1"]).await;
    let error = services::assert_connect_error_starts(
        &outcome,
        "connection refused: authentication failed for user `checkhost_test`: \
         Access denied for user 'checkhost_test'@",
    );
    assert!(error.ends_with("(using password: YES)"), "{outcome:?}");
    assert!(!format!("{outcome:?}").contains(wrong), "{outcome:?}");
}

#[tokio::test]
async fn mysql_unknown_database_is_refused_by_name() {
    let Some(mut config) = local() else { return };
    config["database"] = "checkhost_no_such_db".into();
    let outcome = run(config, &[]).await;
    services::assert_connect_error(
        &outcome,
        "connection refused: database `checkhost_no_such_db` does not exist: \
         Unknown database 'checkhost_no_such_db'",
    );
}

#[tokio::test]
async fn mysql_closed_port_is_refused() {
    services::assert_closed_port_refused("mysql").await;
}

#[tokio::test]
async fn mysql_other_protocol_is_a_protocol_error() {
    let server = servers::banner("SSH-2.0-x\r\n").await;
    let outcome = run(services::at(server), &[]).await;
    services::assert_connect_error(
        &outcome,
        "protocol error: not a MySQL server: expected a handshake packet, \
         got \"SSH-2.0-x\\r\\n\"",
    );
}

#[tokio::test]
async fn mysql_silent_server_times_out() {
    services::assert_times_out("mysql", servers::silent().await, "timeout: ").await;
}

fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    out.push(seq);
    out.extend_from_slice(payload);
    out
}

async fn read_packet(conn: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 4];
    conn.read_exact(&mut head).await.unwrap();
    let mut payload = vec![0; u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize];
    conn.read_exact(&mut payload).await.unwrap();
    (head[3], payload)
}

/// A MySQL 8 greeting offering `caching_sha2_password`.
fn mysql8_greeting() -> Vec<u8> {
    let mut greeting = vec![10];
    greeting.extend_from_slice(b"8.0.36\0");
    greeting.extend_from_slice(&7u32.to_le_bytes());
    greeting.extend_from_slice(b"abcdefgh\0");
    greeting.extend_from_slice(&0xFFFFu16.to_le_bytes());
    greeting.extend_from_slice(&[255, 2, 0]);
    greeting.extend_from_slice(&0xDFFFu16.to_le_bytes());
    greeting.push(21);
    greeting.extend_from_slice(&[0; 10]);
    greeting.extend_from_slice(b"ijklmnopqrst\0caching_sha2_password\0");
    packet(0, &greeting)
}

/// A MySQL 8 server whose account uses `mysql_native_password`: it switches
/// the client over, checks its scramble and answers one query.
#[tokio::test]
async fn mysql_auth_switch_to_native_password_then_a_query() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        conn.write_all(&mysql8_greeting()).await.unwrap();
        let (seq, _) = read_packet(&mut conn).await;
        assert_eq!(seq, 1);
        let nonce: Vec<u8> = (1..=20).collect();
        let switch = [&[0xFE][..], b"mysql_native_password\0", &nonce, &[0]].concat();
        conn.write_all(&packet(2, &switch)).await.unwrap();
        let (seq, scramble) = read_packet(&mut conn).await;
        // SHA1("secret") XOR SHA1(nonce + SHA1(SHA1("secret"))), computed apart.
        let expected = "b32bb3a583e1340c0a1108d58b1be49781ad8c2f";
        let hex: String = scramble.iter().map(|b| format!("{b:02x}")).collect();
        if (seq, hex.as_str()) != (3, expected) {
            let error = b"\xff\x15\x04#28000Access denied for user 'app'";
            conn.write_all(&packet(4, error)).await.unwrap();
            return;
        }
        conn.write_all(&packet(4, b"\0\0\0\x02\0\0\0"))
            .await
            .unwrap();
        let (_, query) = read_packet(&mut conn).await;
        assert_eq!(query, b"\x03SELECT 1");
        let column = b"\x03def\0\0\0\x011\0\x0c\x3f\0\x01\0\0\0\x08\x81\0\0\0\0";
        let eof = b"\xfe\0\0\x02\0";
        for (seq, payload) in [
            (1, &b"\x01"[..]),
            (2, column),
            (3, eof),
            (4, b"\x011"),
            (5, eof),
        ] {
            conn.write_all(&packet(seq, payload)).await.unwrap();
        }
        let mut rest = Vec::new();
        let _ = conn.read_to_end(&mut rest).await;
    });
    let config =
        json!({"host": "127.0.0.1", "port": port, "username": "app", "password": "secret"});
    let outcome = run(config, &["SELECT 1"]).await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let result = &outcome.collectors[0].result;
    assert_eq!(
        result["info"],
        json!({"serverVersion": "8.0.36", "connectionId": 7, "authPlugin": "mysql_native_password", "serverFlavor": "mysql"})
    );
    assert_eq!(
        result["reply"],
        json!({"ok": true, "columns": ["1"], "rows": [["1"]], "rowCount": 1})
    );
}

/// A MySQL 8 server whose account needs caching_sha2_password's full
/// authentication, which without TLS this client cannot give.
#[tokio::test]
async fn mysql_caching_sha2_full_authentication_is_refused_without_tls() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        conn.write_all(&mysql8_greeting()).await.unwrap();
        read_packet(&mut conn).await;
        conn.write_all(&packet(2, &[1, 4])).await.unwrap();
        let mut rest = Vec::new();
        let _ = conn.read_to_end(&mut rest).await;
    });
    let password = "sha2-secret-do-not-print";
    let config =
        json!({"host": "127.0.0.1", "port": port, "username": "app", "password": password});
    let outcome = run(config, &[]).await;
    services::assert_connect_error_starts(
        &outcome,
        "connection refused: authentication failed for user `app`: \
         caching_sha2_password needs full authentication, which needs TLS",
    );
    assert!(!format!("{outcome:?}").contains(password), "{outcome:?}");
}
