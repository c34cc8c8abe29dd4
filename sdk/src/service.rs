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

use crate::{Response, Timings};

/// The method that returns what the handshake learned.
pub const INFO: &str = "info";
/// The method that runs one query or command.
pub const QUERY: &str = "query";

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
