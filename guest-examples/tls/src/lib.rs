//! The `tls` strategy: a TLS 1.2 handshake far enough to read the server's
//! certificate chain, which TLS 1.2 sends in the clear. No crypto runs in the
//! guest, so it stays small and portable; servers that speak only TLS 1.3
//! answer with a `protocol_version` alert, reported as a TLS error.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use checkhost_sdk::{Client, Request, Response, RunContext, Strategy, Timings, TransportError};
use schemars::JsonSchema;
use serde::Deserialize;

const DEFAULT_TIMEOUT_MS: u32 = 5_000;
/// Certificate chains larger than this are refused as a protocol error.
const MAX_HANDSHAKE_BYTES: usize = 256 * 1024;

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    #[schemars(extend("x-templatable" = true))]
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Name sent as SNI; defaults to `host`.
    #[schemars(extend("x-templatable" = true))]
    pub servername: Option<String>,
    pub timeout_ms: Option<u32>,
}

fn default_port() -> u16 {
    443
}

pub struct Tls;

impl Strategy for Tls {
    const ID: &'static str = "tls";
    const DISPLAY_NAME: &'static str = "TLS";
    const DESCRIPTION: &'static str = "Reads a server's certificate chain from a TLS 1.2 handshake";
    type Config = Config;
    type Client = TlsClient;

    fn connect(config: Config, _ctx: &RunContext) -> Result<TlsClient, TransportError> {
        let timeout = Duration::from_millis(config.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS).into());
        let addr = (config.host.as_str(), config.port)
            .to_socket_addrs()
            .map_err(|e| TransportError::Dns(format!("cannot resolve `{}`: {e}", config.host)))?
            .next()
            .ok_or_else(|| TransportError::Dns(format!("`{}` has no address", config.host)))?;
        let start = Instant::now();
        // `connect_timeout` on wasm32-wasip2 reports success for a refused
        // connection; a blocking connect is exact and the run deadline
        // bounds a slow one.
        let mut stream = TcpStream::connect(addr)
            .map_err(|e| TransportError::from_io(&format!("connect to {addr}"), &e))?;
        let _ = stream.set_read_timeout(Some(timeout));
        let connect_ms = ms_since(start);
        let servername = config.servername.unwrap_or(config.host);
        let tls_start = Instant::now();
        stream
            .write_all(&client_hello(&servername))
            .map_err(|e| TransportError::from_io("send ClientHello", &e))?;
        let chain = read_certificates(&mut stream)?;
        Ok(TlsClient {
            chain,
            timings: Timings {
                connect_ms: Some(connect_ms),
                tls_ms: Some(ms_since(tls_start)),
                ..Timings::default()
            },
        })
    }
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

pub struct TlsClient {
    chain: Vec<Vec<u8>>,
    timings: Timings,
}

impl Client for TlsClient {
    /// Any request answers with the leaf certificate (DER) as body and the
    /// chain length in the `chain-length` header.
    fn exec(&mut self, _req: Request) -> Result<Response, TransportError> {
        Ok(Response {
            status: 0,
            status_text: "TLSv1.2".into(),
            headers: vec![("chain-length".into(), self.chain.len().to_string())],
            body: self.chain.first().cloned().unwrap_or_default(),
            timings: self.timings,
        })
    }

    fn timings(&self) -> Timings {
        self.timings
    }
}

/// A TLS 1.2 ClientHello offering the common ECDHE AEAD suites.
fn client_hello(servername: &str) -> Vec<u8> {
    let suites: &[u16] = &[
        0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0x009c, 0x009d,
    ];
    let mut random = [0u8; 32];
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    for (i, byte) in random.iter_mut().enumerate() {
        *byte = (seed >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(151);
    }

    let mut ext = Vec::new();
    let name = servername.as_bytes();
    let mut sni = Vec::new();
    push_u16(&mut sni, (name.len() + 3) as u16);
    sni.push(0);
    push_u16(&mut sni, name.len() as u16);
    sni.extend_from_slice(name);
    push_ext(&mut ext, 0x0000, &sni);
    push_ext(
        &mut ext,
        0x000a,
        &[0, 6, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18],
    );
    push_ext(&mut ext, 0x000b, &[1, 0]);
    let sigalgs: &[u16] = &[
        0x0403, 0x0503, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601,
    ];
    let mut sig = Vec::new();
    push_u16(&mut sig, (sigalgs.len() * 2) as u16);
    sigalgs.iter().for_each(|s| push_u16(&mut sig, *s));
    push_ext(&mut ext, 0x000d, &sig);
    push_ext(&mut ext, 0x0017, &[]);
    push_ext(&mut ext, 0xff01, &[0]);

    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&random);
    body.push(0);
    push_u16(&mut body, (suites.len() * 2) as u16);
    suites.iter().for_each(|s| push_u16(&mut body, *s));
    body.extend_from_slice(&[1, 0]);
    push_u16(&mut body, ext.len() as u16);
    body.extend_from_slice(&ext);

    let mut handshake = vec![0x01];
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    push_u16(&mut record, handshake.len() as u16);
    record.extend_from_slice(&handshake);
    record
}

fn push_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn push_ext(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    push_u16(out, kind);
    push_u16(out, data.len() as u16);
    out.extend_from_slice(data);
}

/// Reads records until the Certificate handshake message and returns the
/// DER certificates it carries, leaf first.
fn read_certificates(stream: &mut TcpStream) -> Result<Vec<Vec<u8>>, TransportError> {
    let mut handshake = Vec::new();
    loop {
        let mut header = [0u8; 5];
        stream.read_exact(&mut header).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                TransportError::Tls("server closed the connection during the handshake".into())
            }
            _ => TransportError::from_io("read TLS record", &e),
        })?;
        let len = u16::from_be_bytes([header[3], header[4]]) as usize;
        if header[1] != 3 || len > 18 * 1024 {
            return Err(TransportError::Tls("the server does not speak TLS".into()));
        }
        let mut payload = vec![0u8; len];
        stream
            .read_exact(&mut payload)
            .map_err(|e| TransportError::from_io("read TLS record", &e))?;
        match header[0] {
            0x15 => {
                let description = payload.get(1).copied().unwrap_or_default();
                return Err(TransportError::Tls(format!(
                    "server sent alert {}",
                    alert_name(description)
                )));
            }
            0x16 => handshake.extend_from_slice(&payload),
            other => {
                return Err(TransportError::Tls(format!(
                    "unexpected TLS record type {other} before the certificate"
                )));
            }
        }
        if handshake.len() > MAX_HANDSHAKE_BYTES {
            return Err(TransportError::Protocol(
                "certificate chain too large".into(),
            ));
        }
        if let Some(chain) = find_certificate_message(&handshake)? {
            return Ok(chain);
        }
    }
}

fn find_certificate_message(data: &[u8]) -> Result<Option<Vec<Vec<u8>>>, TransportError> {
    let mut pos = 0;
    while pos + 4 <= data.len() {
        let kind = data[pos];
        let len = u32::from_be_bytes([0, data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        let Some(body) = data.get(pos + 4..pos + 4 + len) else {
            return Ok(None);
        };
        if kind == 11 {
            return parse_chain(body).map(Some);
        }
        pos += 4 + len;
    }
    Ok(None)
}

fn parse_chain(body: &[u8]) -> Result<Vec<Vec<u8>>, TransportError> {
    let bad = || TransportError::Protocol("malformed Certificate message".into());
    let mut pos = 3;
    let mut chain = Vec::new();
    while pos + 3 <= body.len() {
        let len = u32::from_be_bytes([0, body[pos], body[pos + 1], body[pos + 2]]) as usize;
        let cert = body.get(pos + 3..pos + 3 + len).ok_or_else(bad)?;
        chain.push(cert.to_vec());
        pos += 3 + len;
    }
    if chain.is_empty() {
        return Err(TransportError::Tls("server sent no certificate".into()));
    }
    Ok(chain)
}

fn alert_name(description: u8) -> String {
    match description {
        40 => "handshake_failure".into(),
        70 => "protocol_version (server may be TLS 1.3 only)".into(),
        80 => "internal_error".into(),
        112 => "unrecognized_name".into(),
        other => format!("#{other}"),
    }
}

checkhost_sdk::export_strategy!(Tls);
