//! The services that run on this machine (PostgreSQL, MariaDB, Redis,
//! Mosquitto…), found through environment variables. A test skips with a
//! loud message when its service does not answer, except under `CI=true`,
//! where it fails. Also what the service strategies' tests share: a run
//! through the `service` collector and the transport errors every strategy
//! must give (closed port, silent server).

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use checkhost::runtime::RunOutcome;
use serde_json::{Value, json};

use super::{Probe, servers};

/// Where a service listens, with the credentials and database its URL carried.
#[derive(Debug, Clone)]
pub struct Service {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    /// The URL's path without its query, such as `test` in `mysql://…/test`.
    pub database: Option<String>,
}

impl Service {
    /// A strategy config for this service: host and port, with the user
    /// and password when the URL had them.
    pub fn config(&self) -> Value {
        let mut config = json!({"host": self.host, "port": self.port});
        if let Some(user) = &self.user {
            config["username"] = json!(user);
        }
        if let Some(password) = &self.password {
            config["password"] = json!(password);
        }
        config
    }
}

/// The service named by environment variable `var` (a URL such as
/// `redis://127.0.0.1:6379` or plain `host:port`), else `default`;
/// `None` after a loud message when nothing answers there outside CI.
pub fn service(var: &str, default: &str) -> Option<Service> {
    let url = std::env::var(var).unwrap_or_else(|_| default.to_string());
    let service = parse(&url).unwrap_or_else(|| panic!("{var}={url} is not host:port or a URL"));
    let answers = (service.host.as_str(), service.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok());
    if answers {
        return Some(service);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true and nothing answers at {url} ({var})");
    }
    eprintln!("\n!!! SKIPPED: nothing answers at {url}; set {var} !!!\n");
    None
}

fn parse(url: &str) -> Option<Service> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (rest, path) = rest.split_once('/').unwrap_or((rest, ""));
    let database = path.split('?').next().filter(|d| !d.is_empty());
    let (credentials, address) = match rest.rsplit_once('@') {
        Some((credentials, address)) => (Some(credentials), address),
        None => (None, rest),
    };
    let (user, password) = match credentials.map(|c| c.split_once(':')) {
        Some(Some((user, password))) => (Some(user.to_string()), Some(password.to_string())),
        Some(None) => (credentials.map(str::to_string), None),
        None => (None, None),
    };
    // `redis://:secret@host` names no user.
    let user = user.filter(|u| !u.is_empty());
    let (host, port) = address.rsplit_once(':')?;
    Some(Service {
        host: host.to_string(),
        port: port.parse().ok()?,
        user,
        password,
        database: database.map(str::to_string),
    })
}

/// `{"host": "127.0.0.1", "port": …}`: a strategy config for a server of
/// the test's own.
pub fn at(server: SocketAddr) -> Value {
    json!({"host": "127.0.0.1", "port": server.port()})
}

/// Runs `strategy` with `config` and the `service` collector once per
/// query; with no queries, once without one (just what connecting learned).
pub async fn run(strategy: &str, config: Value, queries: &[&str]) -> RunOutcome {
    let mut probe = Probe::new(strategy, config).await;
    if queries.is_empty() {
        probe = probe.collector("service", json!({})).await;
    }
    for query in queries {
        probe = probe.collector("service", json!({"query": query})).await;
    }
    probe.run().await
}

/// Asserts that the run could not connect, with exactly `expected`.
pub fn assert_connect_error(outcome: &RunOutcome, expected: &str) {
    assert_eq!(
        outcome.connect_error.as_deref(),
        Some(expected),
        "{outcome:?}"
    );
}

/// Asserts that the run could not connect, with an error that starts with
/// `prefix`; returns the error for further checks.
pub fn assert_connect_error_starts(outcome: &RunOutcome, prefix: &str) -> String {
    let error = outcome.connect_error.clone().unwrap_or_default();
    assert!(error.starts_with(prefix), "{outcome:?}");
    error
}

/// Asserts that `strategy` finds a closed port refused, naming the address.
pub async fn assert_closed_port_refused(strategy: &str) {
    let port = servers::closed_port();
    let outcome = run(strategy, json!({"host": "127.0.0.1", "port": port}), &[]).await;
    assert_connect_error_starts(
        &outcome,
        &format!("connection refused: connect to 127.0.0.1:{port}"),
    );
}

/// Asserts that `strategy`, given 500 ms, gives up on `server` (which
/// accepts and never answers) with an error starting with `prefix`, and
/// near that timeout rather than at the run's own deadline.
pub async fn assert_times_out(strategy: &str, server: SocketAddr, prefix: &str) {
    let mut config = at(server);
    config["timeoutMs"] = json!(500);
    let started = Instant::now();
    let outcome = run(strategy, config, &[]).await;
    assert_connect_error_starts(&outcome, prefix);
    assert!(
        (400.0..3000.0).contains(&outcome.duration_ms),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn urls_and_addresses_parse() {
    let s = parse("mysql://root:pw@127.0.0.1:3306/test").unwrap();
    assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 3306));
    assert_eq!(
        (s.user.as_deref(), s.password.as_deref()),
        (Some("root"), Some("pw"))
    );
    assert_eq!(s.database.as_deref(), Some("test"));
    let s = parse("postgres://postgres@127.0.0.1:5432/?sslmode=disable").unwrap();
    assert_eq!((s.user.as_deref(), s.database), (Some("postgres"), None));
    let s = parse("redis://:pw@127.0.0.1:6379").unwrap();
    assert_eq!((s.user, s.password.as_deref()), (None, Some("pw")));
    let s = parse("127.0.0.1:6379").unwrap();
    assert_eq!((s.port, s.user, s.database), (6379, None, None));
    assert!(parse("redis://nohost").is_none());
}
