//! The `smtp` strategy against a small SMTP server run by the tests (this
//! machine has no mail server): it greets, answers EHLO with a multi-line
//! 250, NOOP, AUTH PLAIN/LOGIN for alice/s3cret and QUIT like Postfix
//! does, and 502 to anything else. It records the commands it received.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use checkhost::runtime::RunOutcome;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::net::tcp::OwnedWriteHalf;

use crate::support::servers;
use crate::support::services::{self, at};

#[derive(Clone, Copy)]
struct Fake {
    banner: &'static str,
    starttls: bool,
    /// The AUTH mechanisms offered (PLAIN, LOGIN or both), accepting alice/s3cret.
    auth: Option<&'static str>,
    /// Refuse EHLO like a server from before RFC 1869.
    ehlo: bool,
}

const FAKE: Fake = Fake {
    banner: "220 mail.test ESMTP ready",
    starttls: true,
    auth: None,
    ehlo: true,
};

type Log = Arc<Mutex<Vec<String>>>;

async fn fake(fake: Fake) -> (SocketAddr, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Log::default();
    let received = log.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(session(conn, fake, received.clone()));
        }
    });
    (addr, log)
}

async fn session(conn: tokio::net::TcpStream, fake: Fake, log: Log) {
    let (read, mut write) = conn.into_split();
    let mut lines = BufReader::new(read).lines();
    if !say(&mut write, fake.banner).await || !fake.banner.starts_with("220") {
        return;
    }
    // Where an AUTH LOGIN dialogue is: 1 awaits the user, 2 the password.
    let mut login = 0;
    let mut user = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        log.lock().unwrap().push(line.clone());
        let upper = line.to_ascii_uppercase();
        let answer = match (login, upper.split_whitespace().next().unwrap_or_default()) {
            (1, _) => {
                login = 2;
                user = line;
                "334 UGFzc3dvcmQ6".to_string()
            }
            (2, _) => {
                login = 0;
                if user == "YWxpY2U=" && line == "czNjcmV0" {
                    "235 2.7.0 Authentication successful".into()
                } else {
                    "535 5.7.8 Error: authentication failed".into()
                }
            }
            (_, "EHLO") if fake.ehlo => {
                let auth = fake.auth.map(|m| format!("AUTH {m}"));
                let mut extensions = vec!["mail.test", "PIPELINING", "SIZE 10240000"];
                if fake.starttls {
                    extensions.push("STARTTLS");
                }
                extensions.extend(auth.as_deref());
                extensions.push("8BITMIME");
                let last = extensions.len() - 1;
                let lines: Vec<String> = extensions
                    .iter()
                    .enumerate()
                    .map(|(i, e)| format!("250{}{e}", if i == last { ' ' } else { '-' }))
                    .collect();
                lines.join("\r\n")
            }
            (_, "HELO") => "250 mail.test".into(),
            (_, "NOOP") => "250 2.0.0 Ok".into(),
            (_, "AUTH") if fake.auth.is_some() && upper.starts_with("AUTH PLAIN ") => {
                if line.ends_with(" AGFsaWNlAHMzY3JldA==") {
                    "235 2.7.0 Authentication successful".into()
                } else {
                    "535 5.7.8 Error: authentication failed".into()
                }
            }
            (_, "AUTH") if fake.auth.is_some() && upper == "AUTH LOGIN" => {
                login = 1;
                "334 VXNlcm5hbWU6".into()
            }
            (_, "QUIT") => {
                say(&mut write, "221 2.0.0 Bye").await;
                return;
            }
            _ => "502 5.5.2 Error: command not recognized".into(),
        };
        if !say(&mut write, &answer).await {
            return;
        }
    }
}

async fn say(write: &mut OwnedWriteHalf, line: &str) -> bool {
    write
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .is_ok()
}

async fn run(config: Value, queries: &[&str]) -> RunOutcome {
    services::run("smtp", config, queries).await
}

/// The commands the fake received, once QUIT is among them (it comes
/// when the strategy's client is dropped, just after the run).
async fn commands(log: &Log) -> Vec<String> {
    let start = Instant::now();
    loop {
        let seen = log.lock().unwrap().clone();
        if seen.iter().any(|c| c == "QUIT") || start.elapsed() > Duration::from_secs(2) {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn banner_and_extensions() {
    let (addr, log) = fake(FAKE).await;
    let outcome = run(at(addr), &["NOOP"]).await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let result = &outcome.collectors[0].result;
    assert_eq!(
        result["info"],
        json!({
            "banner": "mail.test ESMTP ready",
            "bannerCode": 220,
            "greetingHost": "mail.test",
            "ehlo": true,
            "extensions": ["PIPELINING", "SIZE 10240000", "STARTTLS", "8BITMIME"],
            "starttls": true,
            "maxSize": 10240000,
            "auth": [],
            "authenticated": false,
            "serverVersion": null,
        })
    );
    assert_eq!(result["serverVersion"], Value::Null);
    assert_eq!(result["ok"], true);
    assert_eq!(
        result["reply"],
        json!({"ok": true, "code": 250, "lines": ["2.0.0 Ok"]})
    );
    assert_eq!(
        commands(&log).await,
        ["EHLO checkhost.local", "NOOP", "QUIT"]
    );
}

#[tokio::test]
async fn starttls_is_reported_when_offered_only() {
    let (addr, _) = fake(Fake {
        starttls: false,
        ..FAKE
    })
    .await;
    let outcome = run(at(addr), &[]).await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let info = &outcome.collectors[0].result["info"];
    assert_eq!(info["starttls"], false);
    assert_eq!(
        info["extensions"],
        json!(["PIPELINING", "SIZE 10240000", "8BITMIME"])
    );
}

#[tokio::test]
async fn helo_when_ehlo_is_refused_with_a_named_client() {
    let (addr, log) = fake(Fake {
        ehlo: false,
        banner: "220 old.test Exim 4.96 ready",
        ..FAKE
    })
    .await;
    let mut config = at(addr);
    config["heloName"] = json!("probe.example");
    let outcome = run(config, &[]).await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let result = &outcome.collectors[0].result;
    assert_eq!(result["info"]["ehlo"], false);
    assert_eq!(result["info"]["extensions"], json!([]));
    assert_eq!(result["serverVersion"], "Exim 4.96");
    assert_eq!(
        commands(&log).await,
        ["EHLO probe.example", "HELO probe.example", "QUIT"]
    );
}

#[tokio::test]
async fn an_unknown_command_is_an_answer() {
    let (addr, _) = fake(FAKE).await;
    let outcome = run(at(addr), &["FROB x"]).await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let result = &outcome.collectors[0].result;
    assert_eq!(result["ok"], false);
    assert_eq!(result["error"], "502 5.5.2 Error: command not recognized");
    assert_eq!(result["reply"]["code"], 502);
    assert_eq!(
        result["reply"]["lines"],
        json!(["5.5.2 Error: command not recognized"])
    );
}

#[tokio::test]
async fn auth_plain_with_right_and_wrong_passwords() {
    let (addr, log) = fake(Fake {
        auth: Some("PLAIN LOGIN"),
        ..FAKE
    })
    .await;
    let with = |password: &str| {
        let mut config = at(addr);
        config["username"] = json!("alice");
        config["password"] = json!(password);
        config
    };
    let outcome = run(with("s3cret"), &[]).await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let info = &outcome.collectors[0].result["info"];
    assert_eq!(info["auth"], json!(["PLAIN", "LOGIN"]));
    assert_eq!(info["authenticated"], true);

    let outcome = run(with("wrong-password"), &[]).await;
    services::assert_connect_error(
        &outcome,
        "connection refused: authentication failed for user `alice`: \
         535 5.7.8 Error: authentication failed",
    );
    assert!(!format!("{outcome:?}").contains("wrong-password"));
    let sent = commands(&log).await;
    assert_eq!(
        sent.first().map(String::as_str),
        Some("EHLO checkhost.local")
    );
    assert_eq!(
        sent.get(1).map(String::as_str),
        Some("AUTH PLAIN AGFsaWNlAHMzY3JldA==")
    );
}

#[tokio::test]
async fn auth_login_when_plain_is_not_offered() {
    let (addr, log) = fake(Fake {
        auth: Some("LOGIN"),
        ..FAKE
    })
    .await;
    let mut config = at(addr);
    config["username"] = json!("alice");
    config["password"] = json!("s3cret");
    let outcome = run(config, &[]).await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    assert_eq!(outcome.collectors[0].result["info"]["authenticated"], true);
    assert_eq!(
        commands(&log).await,
        [
            "EHLO checkhost.local",
            "AUTH LOGIN",
            "YWxpY2U=",
            "czNjcmV0",
            "QUIT"
        ]
    );
}

#[tokio::test]
async fn credentials_without_auth_on_offer_are_refused() {
    let (addr, _) = fake(FAKE).await;
    let mut config = at(addr);
    config["username"] = json!("alice");
    config["password"] = json!("s3cret");
    let outcome = run(config, &[]).await;
    services::assert_connect_error_starts(
        &outcome,
        "connection refused: authentication failed for user `alice`: the server offers no AUTH",
    );
}

#[tokio::test]
async fn a_554_greeting_is_refused() {
    let (addr, _) = fake(Fake {
        banner: "554 5.7.1 mail.test no service for you",
        ..FAKE
    })
    .await;
    let outcome = run(at(addr), &[]).await;
    services::assert_connect_error(
        &outcome,
        "connection refused: the server refused the session: \
         554 5.7.1 mail.test no service for you",
    );
}

#[tokio::test]
async fn closed_port_is_refused() {
    services::assert_closed_port_refused("smtp").await;
}

/// An HTTP server only speaks when spoken to, so a real one would be a
/// silent server (next test); this one answers at once, as a proxy or a
/// server that rejects an idle client does.
#[tokio::test]
async fn an_http_reply_is_not_smtp() {
    let http = servers::banner("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await;
    let outcome = run(at(http), &[]).await;
    services::assert_connect_error(
        &outcome,
        "protocol error: not an SMTP server: expected a reply like \"220 …\", \
         got \"HTTP/1.1 400 Bad Request\\r\\nContent-Length: 0\\r\\n\\r\\n\"",
    );
}

#[tokio::test]
async fn a_silent_server_times_out() {
    for addr in [servers::silent().await, servers::http().await] {
        services::assert_times_out("smtp", addr, "timeout: read SMTP greeting").await;
    }
}
