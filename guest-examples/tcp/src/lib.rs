//! The `tcp` strategy: one TCP connection per run over `wasi:sockets`.
//! Requests write their body (if any) and read what the peer sends next.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use checkhost_sdk::{Client, Request, Response, RunContext, Strategy, Timings, TransportError};
use schemars::JsonSchema;
use serde::Deserialize;

const DEFAULT_TIMEOUT_MS: u32 = 5_000;
const MAX_READ: usize = 64 * 1024;

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    #[schemars(extend("x-templatable" = true))]
    pub host: String,
    pub port: u16,
    /// Connect and read timeout.
    pub timeout_ms: Option<u32>,
}

pub struct Tcp;

impl Strategy for Tcp {
    const ID: &'static str = "tcp";
    const DISPLAY_NAME: &'static str = "TCP";
    const DESCRIPTION: &'static str = "A TCP connection; requests send bytes and read the reply";
    type Config = Config;
    type Client = TcpClient;

    fn connect(config: Config, _ctx: &RunContext) -> Result<TcpClient, TransportError> {
        let timeout = Duration::from_millis(config.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS).into());
        let dns_start = Instant::now();
        let addr = resolve(&config.host, config.port)?;
        let dns_ms = ms_since(dns_start);
        let connect_start = Instant::now();
        // `connect_timeout` on wasm32-wasip2 reports success for a refused
        // connection; a blocking connect is exact and the run deadline
        // bounds a slow one.
        let stream = TcpStream::connect(addr)
            .map_err(|e| TransportError::from_io(&format!("connect to {addr}"), &e))?;
        let connect_ms = ms_since(connect_start);
        // Not every WASI host supports socket timeouts; the run deadline
        // still bounds a silent peer.
        let _ = stream.set_read_timeout(Some(timeout));
        Ok(TcpClient {
            stream,
            timings: Timings {
                dns_ms: Some(dns_ms),
                connect_ms: Some(connect_ms),
                ..Timings::default()
            },
        })
    }
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, TransportError> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| TransportError::Dns(format!("cannot resolve `{host}`: {e}")))?
        .next()
        .ok_or_else(|| TransportError::Dns(format!("`{host}` has no address")))
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

pub struct TcpClient {
    stream: TcpStream,
    timings: Timings,
}

impl Client for TcpClient {
    /// `body` is written first when not empty; then up to 64 KiB are read,
    /// returning as soon as the peer has sent something or closed.
    fn exec(&mut self, req: Request) -> Result<Response, TransportError> {
        if !req.body.is_empty() {
            self.stream
                .write_all(&req.body)
                .map_err(|e| TransportError::from_io("send", &e))?;
        }
        let wait = Instant::now();
        let mut buf = vec![0u8; MAX_READ];
        let read = match self.stream.read(&mut buf) {
            Ok(n) => n,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                0
            }
            Err(e) => return Err(TransportError::from_io("read", &e)),
        };
        buf.truncate(read);
        Ok(Response {
            status: 0,
            status_text: String::new(),
            headers: Vec::new(),
            body: buf,
            timings: Timings {
                wait_ms: Some(ms_since(wait)),
                ..self.timings
            },
        })
    }

    fn timings(&self) -> Timings {
        self.timings
    }
}

checkhost_sdk::export_strategy!(Tcp);
