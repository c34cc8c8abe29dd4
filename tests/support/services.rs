//! The services that run on this machine (PostgreSQL, MariaDB, Redis,
//! Mosquitto…), found through environment variables. A test skips with a
//! loud message when its service does not answer, except under `CI=true`,
//! where it fails.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Where a service listens, with the credentials its URL carried.
#[derive(Debug, Clone)]
pub struct Service {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
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
    let rest = rest.split('/').next()?;
    let (credentials, address) = match rest.rsplit_once('@') {
        Some((credentials, address)) => (Some(credentials), address),
        None => (None, rest),
    };
    let (user, password) = match credentials.map(|c| c.split_once(':')) {
        Some(Some((user, password))) => (Some(user.to_string()), Some(password.to_string())),
        Some(None) => (credentials.map(str::to_string), None),
        None => (None, None),
    };
    let (host, port) = address.rsplit_once(':')?;
    Some(Service {
        host: host.to_string(),
        port: port.parse().ok()?,
        user,
        password,
    })
}

#[test]
fn urls_and_addresses_parse() {
    let s = parse("mysql://root:pw@127.0.0.1:3306/test").unwrap();
    assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 3306));
    assert_eq!(
        (s.user.as_deref(), s.password.as_deref()),
        (Some("root"), Some("pw"))
    );
    let s = parse("127.0.0.1:6379").unwrap();
    assert_eq!((s.port, s.user), (6379, None));
    assert!(parse("redis://nohost").is_none());
}
