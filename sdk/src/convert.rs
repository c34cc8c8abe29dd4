//! Conversions between the generated WIT types and the SDK's own types.

use crate::bindings::types as wit;
use crate::types::*;

impl From<wit::RunContext> for RunContext {
    fn from(c: wit::RunContext) -> Self {
        RunContext {
            check: CheckInfo {
                id: c.check.id,
                name: c.check.name,
                interval_seconds: c.check.interval_seconds,
            },
            system: SystemInfo {
                id: c.system.id,
                name: c.system.name,
                metadata: c.system.metadata.into_iter().collect(),
            },
            environment: c.environment.map(|e| EnvironmentInfo {
                id: e.id,
                name: e.name,
                fields: serde_json::from_str(&e.fields_json)
                    .unwrap_or(serde_json::Value::Object(Default::default())),
            }),
        }
    }
}

impl From<wit::Request> for Request {
    fn from(r: wit::Request) -> Self {
        Request {
            method: r.method,
            target: r.target,
            headers: r.headers,
            body: r.body,
            timeout_ms: r.timeout_ms,
        }
    }
}

impl From<Request> for wit::Request {
    fn from(r: Request) -> Self {
        wit::Request {
            method: r.method,
            target: r.target,
            headers: r.headers,
            body: r.body,
            timeout_ms: r.timeout_ms,
        }
    }
}

impl From<wit::Timings> for Timings {
    fn from(t: wit::Timings) -> Self {
        Timings {
            dns_ms: t.dns_ms,
            connect_ms: t.connect_ms,
            tls_ms: t.tls_ms,
            wait_ms: t.wait_ms,
            transfer_ms: t.transfer_ms,
        }
    }
}

impl From<Timings> for wit::Timings {
    fn from(t: Timings) -> Self {
        wit::Timings {
            dns_ms: t.dns_ms,
            connect_ms: t.connect_ms,
            tls_ms: t.tls_ms,
            wait_ms: t.wait_ms,
            transfer_ms: t.transfer_ms,
        }
    }
}

impl From<wit::Response> for Response {
    fn from(r: wit::Response) -> Self {
        Response {
            status: r.status,
            status_text: r.status_text,
            headers: r.headers,
            body: r.body,
            timings: r.timings.into(),
        }
    }
}

impl From<Response> for wit::Response {
    fn from(r: Response) -> Self {
        wit::Response {
            status: r.status,
            status_text: r.status_text,
            headers: r.headers,
            body: r.body,
            timings: r.timings.into(),
        }
    }
}

impl From<wit::TransportError> for TransportError {
    fn from(e: wit::TransportError) -> Self {
        match e {
            wit::TransportError::Refused(m) => TransportError::Refused(m),
            wit::TransportError::Dns(m) => TransportError::Dns(m),
            wit::TransportError::Tls(m) => TransportError::Tls(m),
            wit::TransportError::Timeout(m) => TransportError::Timeout(m),
            wit::TransportError::Protocol(m) => TransportError::Protocol(m),
            wit::TransportError::BadConfig(m) => TransportError::BadConfig(m),
            wit::TransportError::Denied(m) => TransportError::Denied(m),
            wit::TransportError::Other(m) => TransportError::Other(m),
        }
    }
}

impl From<TransportError> for wit::TransportError {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::Refused(m) => wit::TransportError::Refused(m),
            TransportError::Dns(m) => wit::TransportError::Dns(m),
            TransportError::Tls(m) => wit::TransportError::Tls(m),
            TransportError::Timeout(m) => wit::TransportError::Timeout(m),
            TransportError::Protocol(m) => wit::TransportError::Protocol(m),
            TransportError::BadConfig(m) => wit::TransportError::BadConfig(m),
            TransportError::Denied(m) => wit::TransportError::Denied(m),
            TransportError::Other(m) => wit::TransportError::Other(m),
        }
    }
}

/// Parses a config the host handed over into the plugin's typed config.
pub(crate) fn parse_config<C: serde::de::DeserializeOwned>(
    json: &str,
) -> Result<C, TransportError> {
    serde_json::from_str(json)
        .map_err(|e| TransportError::BadConfig(format!("invalid config: {e}")))
}

/// Runs one migration step on JSON text, as `migrate` in the contract does.
pub(crate) fn migrate_json(
    migrations: &crate::Migrations,
    from_version: u32,
    config_json: &str,
) -> Result<String, String> {
    let config =
        serde_json::from_str(config_json).map_err(|e| format!("config is not JSON: {e}"))?;
    migrations
        .apply(from_version, config)
        .map(|v| v.to_string())
}
