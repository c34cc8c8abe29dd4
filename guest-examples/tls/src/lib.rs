//! The `tls` strategy: a full TLS 1.3 or 1.2 handshake (rustls over pure-Rust
//! crypto, so the guest needs no C toolchain) that reports the protocol,
//! cipher and certificate chain the server chose. An untrusted, expired or
//! mismatched certificate is reported, never fatal: judging it is the
//! assertions' job.

mod verify;

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use checkhost_sdk::net::{self, ms_since};
use checkhost_sdk::{Client, Request, Response, RunContext, Strategy, Timings, TransportError};
use rustls::pki_types::ServerName;
use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, ClientConnection, ProtocolVersion, SupportedProtocolVersion};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::verify::ReportingVerifier;

const DEFAULT_TIMEOUT_MS: u32 = 5_000;
/// How many bytes of a non-TLS reply an error message quotes.
const QUOTED_BYTES: usize = 40;

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Host name or address to connect to.
    #[schemars(extend("x-templatable" = true))]
    pub host: String,
    /// TCP port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Name sent as SNI and checked against the certificate; defaults to
    /// `host`. An IP address sends no SNI.
    #[schemars(extend("x-templatable" = true))]
    pub servername: Option<String>,
    /// Connect, read and handshake timeout.
    pub timeout_ms: Option<u32>,
    /// Lowest protocol version offered (default "1.2").
    pub min_version: Option<TlsVersion>,
    /// Highest protocol version offered (default "1.3").
    pub max_version: Option<TlsVersion>,
    /// Application protocols offered by ALPN, most preferred first
    /// (e.g. "h2", "http/1.1"). None are offered when omitted.
    pub alpn: Option<Vec<String>>,
}

fn default_port() -> u16 {
    443
}

/// A TLS protocol version.
#[derive(Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    #[serde(rename = "1.2")]
    V12,
    #[serde(rename = "1.3")]
    V13,
}

impl TlsVersion {
    fn rustls(self) -> &'static SupportedProtocolVersion {
        match self {
            TlsVersion::V12 => &TLS12,
            TlsVersion::V13 => &TLS13,
        }
    }

    fn label(self) -> &'static str {
        match self {
            TlsVersion::V12 => "TLS 1.2",
            TlsVersion::V13 => "TLS 1.3",
        }
    }
}

pub struct Tls;

impl Strategy for Tls {
    const ID: &'static str = "tls";
    const DISPLAY_NAME: &'static str = "TLS";
    const DESCRIPTION: &'static str =
        "A TLS 1.3/1.2 handshake: protocol, cipher and the server's certificate chain";
    type Config = Config;
    type Client = TlsClient;

    fn result_schema() -> serde_json::Value {
        serde_json::json!({
            "description": "Every request answers with the handshake. The status text is the \
                protocol; the body is the certificate chain, DER certificates concatenated leaf \
                first.",
            "type": "object",
            "properties": {
                "headers": {
                    "type": "object",
                    "properties": {
                        "protocol": {"enum": ["TLSv1.3", "TLSv1.2"]},
                        "cipher": {"type": "string", "description": "IANA name, e.g. TLS13_AES_128_GCM_SHA256"},
                        "key-exchange": {"type": "string", "description": "e.g. X25519"},
                        "alpn": {"type": "string", "description": "negotiated application protocol, when any"},
                        "sni": {"type": "string", "description": "server name sent, when one was"},
                        "trusted": {"enum": ["true", "false"], "description": "the chain verifies against the Mozilla roots for the server name"},
                        "verify-error": {"type": "string", "description": "why it does not, when it does not"},
                        "chain-length": {"type": "string"}
                    }
                }
            }
        })
    }

    fn connect(config: Config, _ctx: &RunContext) -> Result<TlsClient, TransportError> {
        let timeout = Duration::from_millis(config.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS).into());
        let versions = offered_versions(config.min_version, config.max_version)
            .map_err(TransportError::BadConfig)?;
        let offered = versions
            .iter()
            .map(|v| v.label())
            .collect::<Vec<_>>()
            .join(", ");
        let versions: Vec<_> = versions.into_iter().map(TlsVersion::rustls).collect();
        let alpn = alpn_protocols(config.alpn.as_deref().unwrap_or_default())
            .map_err(TransportError::BadConfig)?;
        let servername = config.servername.unwrap_or_else(|| config.host.clone());
        let name = ServerName::try_from(servername.clone()).map_err(|_| {
            TransportError::BadConfig(format!("`{servername}` is not a valid server name"))
        })?;
        let sni = matches!(name, ServerName::DnsName(_)).then_some(servername);

        let provider = Arc::new(rustls_rustcrypto::provider());
        let verifier =
            Arc::new(ReportingVerifier::new(provider.clone()).map_err(TransportError::Other)?);
        let mut tls_config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| TransportError::BadConfig(format!("unsupported TLS versions: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        tls_config.alpn_protocols = alpn;
        let mut conn = ClientConnection::new(Arc::new(tls_config), name)
            .map_err(|e| TransportError::Tls(format!("cannot start the handshake: {e}")))?;

        let connection = net::connect(&config.host, config.port, timeout)?;
        let mut stream = Recording::new(connection.stream);
        let tls_start = Instant::now();
        handshake(&mut conn, &mut stream, tls_start + timeout, &offered)?;
        let tls_ms = ms_since(tls_start);
        // A polite goodbye; the probe has what it came for either way.
        conn.send_close_notify();
        let _ = conn.write_tls(&mut stream);

        let chain = conn.peer_certificates().unwrap_or_default();
        if chain.is_empty() {
            return Err(TransportError::Tls("server sent no certificate".into()));
        }
        let verdict = verifier
            .verdict()
            .unwrap_or_else(|| Err("the server's certificate was not checked".into()));
        let mut headers = vec![
            (
                "protocol".to_string(),
                version_name(conn.protocol_version()).to_string(),
            ),
            (
                "cipher".to_string(),
                conn.negotiated_cipher_suite()
                    .map(|s| suite_name(s.suite()))
                    .unwrap_or_default(),
            ),
        ];
        if let Some(group) = conn.negotiated_key_exchange_group() {
            let group = group.name();
            let name = group
                .as_str()
                .map_or_else(|| format!("{group:?}"), str::to_string);
            headers.push(("key-exchange".into(), name));
        }
        if let Some(alpn) = conn.alpn_protocol() {
            headers.push(("alpn".into(), String::from_utf8_lossy(alpn).into_owned()));
        }
        if let Some(sni) = sni {
            headers.push(("sni".into(), sni));
        }
        headers.push(("trusted".into(), verdict.is_ok().to_string()));
        if let Err(reason) = verdict {
            headers.push(("verify-error".into(), reason));
        }
        headers.push(("chain-length".into(), chain.len().to_string()));
        Ok(TlsClient {
            status_text: version_name(conn.protocol_version()).to_string(),
            headers,
            chain: chain.iter().flat_map(|c| c.iter().copied()).collect(),
            timings: Timings {
                tls_ms: Some(tls_ms),
                ..connection.timings
            },
        })
    }
}

/// Runs the handshake to completion, or until `deadline`: a server that
/// trickles bytes cannot hold the probe longer than its timeout.
fn handshake(
    conn: &mut ClientConnection,
    stream: &mut Recording,
    deadline: Instant,
    offered: &str,
) -> Result<(), TransportError> {
    loop {
        while conn.wants_write() {
            conn.write_tls(stream)
                .map_err(|e| TransportError::from_io("send TLS handshake", &e))?;
        }
        if !conn.is_handshaking() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(TransportError::Timeout(
                "TLS handshake did not finish in time".into(),
            ));
        }
        let read = conn
            .read_tls(stream)
            .map_err(|e| match not_tls(&stream.first) {
                Some(not_tls) => not_tls,
                None => TransportError::from_io("read TLS handshake", &e),
            })?;
        if read == 0 {
            return Err(not_tls(&stream.first).unwrap_or_else(|| {
                TransportError::Tls("server closed the connection during the handshake".into())
            }));
        }
        if let Err(e) = conn.process_new_packets() {
            // Tell the server why we stop, as TLS asks; it may be gone already.
            let _ = conn.write_tls(stream);
            return Err(not_tls(&stream.first).unwrap_or_else(|| handshake_error(&e, offered)));
        }
    }
}

/// The error for a peer whose first bytes are not a TLS record, quoting
/// what it sent instead.
fn not_tls(first: &[u8]) -> Option<TransportError> {
    if first.is_empty() || looks_like_tls(first) {
        return None;
    }
    Some(TransportError::Tls(format!(
        "not a TLS server: expected a TLS record, got {:?}",
        String::from_utf8_lossy(first)
    )))
}

/// A TLS record starts with a content type (20–24) and major version 3.
fn looks_like_tls(first: &[u8]) -> bool {
    matches!(first, [20..=24] | [20..=24, 3, ..])
}

/// A TLS-level failure; an alert is named as the RFCs name it.
fn handshake_error(err: &rustls::Error, offered: &str) -> TransportError {
    match err {
        rustls::Error::AlertReceived(alert) => {
            let name = alert_name(u8::from(*alert));
            let hint = if name == "protocol_version" {
                format!(" (the server accepts none of the offered versions: {offered})")
            } else {
                String::new()
            };
            TransportError::Tls(format!("server sent alert {name}{hint}"))
        }
        other => TransportError::Tls(format!("handshake failed: {other}")),
    }
}

/// The versions to offer, newest first, from the configured bounds.
fn offered_versions(
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
) -> Result<Vec<TlsVersion>, String> {
    let min = min.unwrap_or(TlsVersion::V12);
    let max = max.unwrap_or(TlsVersion::V13);
    if min > max {
        return Err("minVersion is above maxVersion".into());
    }
    Ok([TlsVersion::V13, TlsVersion::V12]
        .into_iter()
        .filter(|v| (min..=max).contains(v))
        .collect())
}

/// ALPN names as sent: each must be 1–255 bytes.
fn alpn_protocols(names: &[String]) -> Result<Vec<Vec<u8>>, String> {
    names
        .iter()
        .map(|name| match name.len() {
            1..=255 => Ok(name.as_bytes().to_vec()),
            _ => Err(format!(
                "ALPN protocol {name:?} must be 1 to 255 bytes long"
            )),
        })
        .collect()
}

fn version_name(version: Option<ProtocolVersion>) -> &'static str {
    match version {
        Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "unknown",
    }
}

fn suite_name(suite: rustls::CipherSuite) -> String {
    suite
        .as_str()
        .map_or_else(|| format!("{suite:?}"), str::to_string)
}

/// The RFC 8446 / RFC 5246 name of an alert description.
fn alert_name(description: u8) -> String {
    let name = match description {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        111 => "certificate_unobtainable",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        114 => "bad_certificate_hash_value",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        other => return format!("#{other}"),
    };
    name.to_string()
}

/// The TCP stream, remembering the first bytes the server sent so that a
/// failed handshake can tell a non-TLS server from a TLS one that refused.
struct Recording {
    stream: std::net::TcpStream,
    first: Vec<u8>,
}

impl Recording {
    fn new(stream: std::net::TcpStream) -> Self {
        Recording {
            stream,
            first: Vec::new(),
        }
    }
}

impl Read for Recording {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stream.read(buf)?;
        let room = QUOTED_BYTES.saturating_sub(self.first.len());
        self.first
            .extend_from_slice(buf.get(..n.min(room)).unwrap_or_default());
        Ok(n)
    }
}

impl Write for Recording {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

pub struct TlsClient {
    status_text: String,
    headers: Vec<(String, String)>,
    chain: Vec<u8>,
    timings: Timings,
}

impl Client for TlsClient {
    /// Any request answers with the handshake: the protocol as status text,
    /// what was negotiated in headers, the certificate chain as body.
    fn exec(&mut self, _req: Request) -> Result<Response, TransportError> {
        Ok(Response {
            status: 0,
            status_text: self.status_text.clone(),
            headers: self.headers.clone(),
            body: self.chain.clone(),
            timings: self.timings,
        })
    }

    fn timings(&self) -> Timings {
        self.timings
    }
}

checkhost_sdk::export_strategy!(Tls);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_alerts_as_the_rfcs_do() {
        assert_eq!(alert_name(70), "protocol_version");
        assert_eq!(alert_name(40), "handshake_failure");
        assert_eq!(alert_name(112), "unrecognized_name");
        assert_eq!(alert_name(120), "no_application_protocol");
        assert_eq!(alert_name(255), "#255");
        let alert = rustls::AlertDescription::ProtocolVersion;
        assert_eq!(alert_name(u8::from(alert)), "protocol_version");
    }

    #[test]
    fn an_alert_names_the_offered_versions_when_they_do_not_match() {
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::ProtocolVersion);
        assert_eq!(
            handshake_error(&alert, "TLS 1.2"),
            TransportError::Tls(
                "server sent alert protocol_version (the server accepts none of the offered \
                 versions: TLS 1.2)"
                    .into()
            )
        );
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure);
        assert_eq!(
            handshake_error(&alert, "TLS 1.3, TLS 1.2"),
            TransportError::Tls("server sent alert handshake_failure".into())
        );
    }

    #[test]
    fn tells_tls_records_from_other_protocols() {
        // A ServerHello record, an alert record, and a lone first byte.
        assert!(looks_like_tls(&[0x16, 0x03, 0x03, 0x00, 0x7a]));
        assert!(looks_like_tls(&[0x15, 0x03, 0x01]));
        assert!(looks_like_tls(&[0x16]));
        assert!(!looks_like_tls(b"220 smtp ready"));
        assert!(!looks_like_tls(b"HTTP/1.1 400 Bad Request"));
        assert!(!looks_like_tls(&[0x16, 0x02]));
        assert_eq!(not_tls(&[]), None);
        assert_eq!(not_tls(&[0x16, 0x03, 0x03]), None);
        assert_eq!(
            not_tls(b"220 plain smtp\r\n"),
            Some(TransportError::Tls(
                "not a TLS server: expected a TLS record, got \"220 plain smtp\\r\\n\"".into()
            ))
        );
    }

    #[test]
    fn offers_the_versions_between_the_bounds_newest_first() {
        use TlsVersion::{V12, V13};
        assert_eq!(offered_versions(None, None), Ok(vec![V13, V12]));
        assert_eq!(offered_versions(None, Some(V12)), Ok(vec![V12]));
        assert_eq!(offered_versions(Some(V13), None), Ok(vec![V13]));
        assert_eq!(offered_versions(Some(V13), Some(V13)), Ok(vec![V13]));
        assert_eq!(
            offered_versions(Some(V13), Some(V12)),
            Err("minVersion is above maxVersion".into())
        );
        let config: Config = serde_json::from_str(
            r#"{"host": "example.com", "minVersion": "1.2", "maxVersion": "1.3"}"#,
        )
        .unwrap();
        assert_eq!(
            (config.min_version, config.max_version),
            (Some(V12), Some(V13))
        );
        assert_eq!(config.port, 443);
        assert!(serde_json::from_str::<Config>(r#"{"host": "h", "maxVersion": "1.1"}"#).is_err());
    }

    #[test]
    fn alpn_names_must_fit_the_wire_format() {
        let names = ["h2".to_string(), "http/1.1".to_string()];
        assert_eq!(
            alpn_protocols(&names),
            Ok(vec![b"h2".to_vec(), b"http/1.1".to_vec()])
        );
        assert!(alpn_protocols(&[String::new()]).is_err());
        assert!(alpn_protocols(&["x".repeat(256)]).is_err());
    }

    #[test]
    fn names_versions_and_suites_as_openssl_and_iana_do() {
        assert_eq!(version_name(Some(ProtocolVersion::TLSv1_3)), "TLSv1.3");
        assert_eq!(version_name(Some(ProtocolVersion::TLSv1_2)), "TLSv1.2");
        assert_eq!(version_name(None), "unknown");
        assert_eq!(
            suite_name(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256),
            "TLS13_AES_128_GCM_SHA256"
        );
        assert_eq!(
            suite_name(rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        );
    }
}
