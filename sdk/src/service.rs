//! The convention shared by the service strategies (postgres, mysql, redis,
//! grpc-health, smtp, mqtt) and the `service` collector that rides on them.
//!
//! `connect` opens the connection, greets the server and authenticates, so a
//! wrong password or a server speaking another protocol is a transport
//! error. Then:
//! - `exec(Request::new(INFO, ""))` answers a JSON object of what the
//!   handshake learned (`serverVersion` where the protocol tells it);
//! - `exec(Request::new(QUERY, text))` runs one query or command in the
//!   protocol's own language and answers a JSON object with `ok` (whether
//!   the server accepted it), `error` when it did not, and what it returned.
//!   A refused query is an answer, not a transport error.

use std::time::Duration;

use crate::{Request, Response, Timings, TransportError};

/// The method that returns what the handshake learned.
pub const INFO: &str = "info";
/// The method that runs one query or command.
pub const QUERY: &str = "query";

/// The connect, read and write timeout when a strategy's config sets no
/// `timeoutMs`.
pub const DEFAULT_TIMEOUT_MS: u32 = 5_000;

/// The timeout a config's `timeoutMs` asks for, else the default.
/// [`crate::net::connect`] refuses zero.
pub fn timeout(timeout_ms: Option<u32>) -> Duration {
    Duration::from_millis(timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS).into())
}

/// The read timeout for one request: its own when it sets one other than
/// zero (which std sockets take as none), else the connection's `default`.
pub fn request_timeout(request: &Request, default: Duration) -> Duration {
    request
        .timeout_ms
        .filter(|&ms| ms > 0)
        .map_or(default, |ms| Duration::from_millis(ms.into()))
}

/// The error for a login the server refused, naming the user and the
/// server's reason (never the password).
pub fn auth_failed(user: &str, why: impl std::fmt::Display) -> TransportError {
    TransportError::Refused(format!("authentication failed for user `{user}`: {why}"))
}

/// The error for a login to a database the server does not have.
pub fn no_such_database(database: &str, why: impl std::fmt::Display) -> TransportError {
    TransportError::Refused(format!("database `{database}` does not exist: {why}"))
}

/// The error for a request whose method is neither [`INFO`] nor [`QUERY`].
pub fn unknown_method(method: &str) -> TransportError {
    TransportError::BadConfig(format!(
        "unknown method `{method}`: use `{INFO}` or `{QUERY}`"
    ))
}

/// A response whose body is `value` as JSON: status 0 and "ok" when the
/// server accepted the request, 1 and "error" when it did not.
pub fn reply(ok: bool, value: &serde_json::Value, timings: Timings) -> Response {
    Response {
        status: u32::from(!ok),
        status_text: if ok { "ok" } else { "error" }.to_string(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: value.to_string().into_bytes(),
        timings,
    }
}
