//! Plain TCP for strategies that speak a wire protocol themselves
//! (PostgreSQL, Redis, SMTP…): resolve, connect, time both, and bound
//! every read and write by the strategy's timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::{Timings, TransportError};

/// An open connection and what opening it cost.
pub struct Connection {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub timings: Timings,
}

/// Resolves `host`, connects to the first of its addresses that accepts
/// (a name may resolve to `::1` before `127.0.0.1`, and the network policy
/// may allow only one of them) and sets `timeout` on reads and writes, so a
/// silent peer becomes a `timeout` error. A zero `timeout` is refused:
/// sockets reject it rather than waiting.
pub fn connect(host: &str, port: u16, timeout: Duration) -> Result<Connection, TransportError> {
    if timeout.is_zero() {
        return Err(TransportError::BadConfig(
            "timeoutMs must be at least 1".into(),
        ));
    }
    let dns_start = Instant::now();
    let peers: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| TransportError::Dns(format!("cannot resolve `{host}`: {e}")))?
        .collect();
    let dns_ms = ms_since(dns_start);
    let connect_start = Instant::now();
    let mut last_error = TransportError::Dns(format!("`{host}` has no address"));
    for peer in peers {
        // `connect_timeout` on wasm32-wasip2 reports success for a refused
        // connection; a blocking connect is exact and the run deadline
        // bounds a slow one.
        match TcpStream::connect(peer) {
            Ok(stream) => {
                // A host without socket timeouts still stops the guest at
                // the run's deadline, so failing to set them is not an error.
                let _ = stream.set_read_timeout(Some(timeout));
                let _ = stream.set_write_timeout(Some(timeout));
                return Ok(Connection {
                    stream,
                    peer,
                    timings: Timings {
                        dns_ms: Some(dns_ms),
                        connect_ms: Some(ms_since(connect_start)),
                        ..Timings::default()
                    },
                });
            }
            Err(e) => last_error = TransportError::from_io(&format!("connect to {peer}"), &e),
        }
    }
    Err(last_error)
}

/// Milliseconds since `start`, as timings report them.
pub fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

/// Writes all of `bytes`; `what` names the message in the error.
pub fn send(stream: &mut impl Write, bytes: &[u8], what: &str) -> Result<(), TransportError> {
    stream
        .write_all(bytes)
        .and_then(|()| stream.flush())
        .map_err(|e| TransportError::from_io(&format!("send {what}"), &e))
}

/// Bytes of a peer's answer that [`preview`] shows.
const PREVIEW_BYTES: usize = 48;

/// The start of what a peer sent, quoted and escaped, with `…` when there
/// is more: for errors such as `not a Redis server: … got "SSH-2.0-…"`.
pub fn preview(bytes: &[u8]) -> String {
    let shown = bytes.get(..PREVIEW_BYTES).unwrap_or(bytes);
    let more = if shown.len() < bytes.len() { "…" } else { "" };
    format!("\"{}{more}\"", shown.escape_ascii())
}

/// Reads exactly `buf.len()` bytes. A peer that closes early is a
/// protocol error naming what was expected.
pub fn receive(stream: &mut impl Read, buf: &mut [u8], what: &str) -> Result<(), TransportError> {
    stream.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            TransportError::Protocol(format!("connection closed while reading {what}"))
        } else {
            TransportError::from_io(&format!("read {what}"), &e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_quoted_escaped_and_cut() {
        assert_eq!(preview(b"SSH-2.0-x\r\n"), "\"SSH-2.0-x\\r\\n\"");
        assert_eq!(preview(&[0x16, 0x03, 0x01]), "\"\\x16\\x03\\x01\"");
        assert_eq!(preview(&[b'a'; 48]), format!("\"{}\"", "a".repeat(48)));
        assert_eq!(preview(&[b'a'; 50]), format!("\"{}…\"", "a".repeat(48)));
        assert_eq!(preview(b""), "\"\"");
    }

    #[test]
    fn a_zero_timeout_is_refused_before_connecting() {
        let error = connect("127.0.0.1", 1, Duration::ZERO).err();
        assert_eq!(
            error,
            Some(TransportError::BadConfig(
                "timeoutMs must be at least 1".into()
            ))
        );
    }
}
