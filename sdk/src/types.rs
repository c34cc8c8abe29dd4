use std::collections::BTreeMap;
use std::fmt;

/// The check being run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckInfo {
    pub id: String,
    pub name: String,
    pub interval_seconds: u32,
}

/// The system under test.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SystemInfo {
    pub id: String,
    pub name: String,
    pub metadata: BTreeMap<String, String>,
}

/// The environment of this run, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvironmentInfo {
    pub id: String,
    pub name: String,
    /// The environment's free-form fields (a JSON object).
    pub fields: serde_json::Value,
}

/// Metadata about the run. It never carries secrets or configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunContext {
    pub check: CheckInfo,
    pub system: SystemInfo,
    pub environment: Option<EnvironmentInfo>,
}

/// One request over a strategy's connection; its meaning is the strategy's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: Option<u32>,
}

impl Request {
    pub fn new(method: impl Into<String>, target: impl Into<String>) -> Self {
        Request {
            method: method.into(),
            target: target.into(),
            ..Request::default()
        }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn timeout_ms(mut self, timeout_ms: Option<u32>) -> Self {
        self.timeout_ms = timeout_ms;
        self
    }
}

/// Time spent in each phase of a request, when known.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    pub dns_ms: Option<f64>,
    pub connect_ms: Option<f64>,
    pub tls_ms: Option<f64>,
    pub wait_ms: Option<f64>,
    pub transfer_ms: Option<f64>,
}

/// What the target answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response {
    pub status: u32,
    pub status_text: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timings: Timings,
}

impl Response {
    /// The first header with this name, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value, TransportError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| TransportError::Protocol(format!("response body is not JSON: {e}")))
    }
}

/// The transport failed: the target could not be talked to at all.
///
/// Answers the target gave (a 500, an expired certificate, no records) are
/// never errors; they are metrics for assertions to judge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    Refused(String),
    Dns(String),
    Tls(String),
    Timeout(String),
    Protocol(String),
    BadConfig(String),
    Denied(String),
    Other(String),
}

impl TransportError {
    pub fn kind(&self) -> &'static str {
        match self {
            TransportError::Refused(_) => "connection refused",
            TransportError::Dns(_) => "dns failure",
            TransportError::Tls(_) => "tls failure",
            TransportError::Timeout(_) => "timeout",
            TransportError::Protocol(_) => "protocol error",
            TransportError::BadConfig(_) => "bad config",
            TransportError::Denied(_) => "denied",
            TransportError::Other(_) => "transport error",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            TransportError::Refused(m)
            | TransportError::Dns(m)
            | TransportError::Tls(m)
            | TransportError::Timeout(m)
            | TransportError::Protocol(m)
            | TransportError::BadConfig(m)
            | TransportError::Denied(m)
            | TransportError::Other(m) => m,
        }
    }

    /// Classifies an I/O error from `std::net` into the matching variant.
    pub fn from_io(context: &str, err: &std::io::Error) -> Self {
        use std::io::ErrorKind;
        let msg = format!("{context}: {err}");
        match err.kind() {
            ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset => {
                TransportError::Refused(msg)
            }
            ErrorKind::TimedOut | ErrorKind::WouldBlock => TransportError::Timeout(msg),
            ErrorKind::PermissionDenied => TransportError::Denied(msg),
            _ => TransportError::Other(msg),
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind(), self.message())
    }
}

impl std::error::Error for TransportError {}
