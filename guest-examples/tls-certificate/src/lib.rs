//! The `certificate` collector: who issued the server's certificate, how
//! long it stays valid, whether it is trusted, and the protocol and cipher
//! the handshake settled on. An expired or untrusted certificate is a
//! result, not an error.

use std::time::{SystemTime, UNIX_EPOCH};

use checkhost_sdk::{Collector, Request, RunContext, Transport, TransportError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer, X509Certificate};

#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    pub subject: String,
    pub issuer: String,
    /// RFC 3339, UTC.
    pub valid_from: String,
    pub valid_to: String,
    /// Whole days until expiry; negative once expired.
    #[schemars(extend("x-aggregate" = "last", "x-chart" = "gauge", "x-unit" = "days"))]
    pub days_remaining: i64,
    /// The current time lies within the validity period.
    #[schemars(extend("x-aggregate" = "rate", "x-chart" = "boolean"))]
    pub valid: bool,
    pub self_signed: bool,
    pub chain_length: usize,
    /// "TLSv1.3" or "TLSv1.2".
    pub protocol: String,
    /// The negotiated cipher suite's IANA name, e.g. `TLS13_AES_128_GCM_SHA256`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
    /// The server name sent as SNI (none for an IP address); `trusted`
    /// judges the certificate for this name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// The application protocol agreed by ALPN, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpn: Option<String>,
    /// The chain verifies against the Mozilla roots for the server name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted: Option<bool>,
    /// Why the chain is not trusted (unknown issuer, expired, wrong name…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_error: Option<String>,
    /// Time the TLS handshake took, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake_ms: Option<f64>,
}

pub struct Certificate;

impl Collector for Certificate {
    const ID: &'static str = "certificate";
    const DISPLAY_NAME: &'static str = "TLS certificate";
    const DESCRIPTION: &'static str = "Subject, issuer, validity and trust of the server certificate, and the TLS version and cipher";
    const STRATEGIES: &'static [&'static str] = &["tls"];
    type Config = Config;
    type Output = Output;

    fn collect(_: Config, _: &RunContext, transport: &Transport) -> Result<Output, TransportError> {
        let response = transport.exec(Request::new("handshake", ""))?;
        let (_, cert) = X509Certificate::from_der(&response.body)
            .map_err(|e| TransportError::Protocol(format!("certificate is not valid DER: {e}")))?;
        let not_before = cert.validity().not_before.timestamp();
        let not_after = cert.validity().not_after.timestamp();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        let subject = cert.subject().to_string();
        let issuer = cert.issuer().to_string();
        Ok(Output {
            self_signed: subject == issuer,
            subject,
            issuer,
            valid_from: rfc3339(not_before),
            valid_to: rfc3339(not_after),
            days_remaining: (not_after - now).div_euclid(86_400),
            valid: (not_before..=not_after).contains(&now),
            chain_length: response
                .header("chain-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1),
            protocol: response
                .header("protocol")
                .unwrap_or(&response.status_text)
                .to_string(),
            cipher: response.header("cipher").map(str::to_string),
            sni: response.header("sni").map(str::to_string),
            alpn: response.header("alpn").map(str::to_string),
            trusted: response.header("trusted").map(|v| v == "true"),
            verify_error: response.header("verify-error").map(str::to_string),
            handshake_ms: response.timings.tls_ms,
        })
    }
}

/// Formats a Unix timestamp as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days).
fn rfc3339(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

checkhost_sdk::export_collector!(Certificate);

#[cfg(test)]
mod tests {
    #[test]
    fn formats_timestamps_as_rfc3339() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_709_210_096), "2024-02-29T12:34:56Z");
        assert_eq!(super::rfc3339(-1), "1969-12-31T23:59:59Z");
    }
}
