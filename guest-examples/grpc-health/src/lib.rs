//! The `grpc-health` strategy: `grpc.health.v1.Health/Check` over cleartext
//! HTTP/2 with prior knowledge (h2c), spoken by the guest itself over
//! `wasi:sockets`, because the host's `wasi:http` speaks only HTTP/1.1. TLS
//! is not supported yet. `connect` opens the connection and exchanges
//! SETTINGS; every `info` or `query` is one Check call on a new stream of
//! that connection.

mod grpc;
mod h2;
mod hpack;

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use checkhost_sdk::net::{self, ms_since};
use checkhost_sdk::service::{self, INFO, QUERY};
use checkhost_sdk::{
    Client, Request, Response, RunContext, Strategy, Timings, TransportError, Value, json,
};
use schemars::JsonSchema;
use serde::Deserialize;

const PATH: &str = "/grpc.health.v1.Health/Check";
/// Longer service names are refused, so a request always fits one frame.
const MAX_SERVICE_LEN: usize = 1024;
/// Headers that HTTP/2 or gRPC itself sets; metadata may not.
const RESERVED: [&str; 8] = [
    "content-type",
    "te",
    "connection",
    "host",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// The gRPC server's name or address.
    #[schemars(extend("x-templatable" = true))]
    pub host: String,
    /// The server's port; gRPC has no standard one.
    pub port: u16,
    /// The service to check as the server registered it (e.g.
    /// `shop.Cart`); empty, the default, asks about the whole server.
    #[serde(default)]
    #[schemars(extend("x-templatable" = true))]
    pub service: String,
    /// `:authority` of each call, for servers or proxies that route on it;
    /// defaults to `host:port`.
    #[schemars(extend("x-templatable" = true))]
    pub authority: Option<String>,
    /// Metadata sent with each call as HTTP/2 headers (e.g. `x-api-key`).
    /// Names are lowercased; `grpc-*` and HTTP/2's own headers are refused.
    #[serde(default)]
    #[schemars(extend("x-templatable" = true))]
    pub metadata: BTreeMap<String, String>,
    /// Timeout for connecting, each read and each check, in milliseconds
    /// (default 5000); also sent to the server as `grpc-timeout`.
    pub timeout_ms: Option<u32>,
    /// TLS is not supported yet: only `false`, cleartext HTTP/2 (h2c).
    #[serde(default)]
    pub tls: bool,
}

pub struct Plugin;

impl Strategy for Plugin {
    const ID: &'static str = "grpc-health";
    const DISPLAY_NAME: &'static str = "gRPC health";
    const DESCRIPTION: &'static str = "The standard gRPC health check (grpc.health.v1) over cleartext HTTP/2; \
         `info` checks the configured service, a query names another";
    type Config = Config;
    type Client = Conn;

    fn result_schema() -> Value {
        json!({
            "type": "object",
            "description": "One Health/Check call: `info` for the configured service, \
                `query` for the service named by the query text.",
            "properties": {
                "ok": {"type": "boolean", "description": "query only: the call succeeded and the service is SERVING"},
                "error": {"type": "string", "description": "query only, when not ok: the gRPC error or the serving status"},
                "service": {"type": "string", "description": "the service checked; empty for the whole server"},
                "status": {"type": ["string", "null"], "description": "SERVING, NOT_SERVING, UNKNOWN or SERVICE_UNKNOWN; null when the call failed"},
                "grpcStatus": {"type": "integer", "description": "0 when the call succeeded, e.g. 5 for an unknown service, 12 for a server without the health service"},
                "grpcCode": {"type": "string", "description": "grpcStatus by name: OK, NOT_FOUND, UNIMPLEMENTED…"},
                "grpcMessage": {"type": ["string", "null"], "description": "the server's grpc-message"},
                "httpStatus": {"type": "integer"},
                "serverVersion": {"type": "null", "description": "info only: gRPC does not tell it"}
            }
        })
    }

    fn connect(config: Config, _: &RunContext) -> Result<Conn, TransportError> {
        if config.tls {
            return Err(TransportError::BadConfig(
                "tls is not supported yet: grpc-health speaks cleartext HTTP/2 (h2c) only".into(),
            ));
        }
        let metadata = metadata(config.metadata)?;
        let authority = match config.authority {
            Some(authority) => authority,
            None if config.host.contains(':') => format!("[{}]:{}", config.host, config.port),
            None => format!("{}:{}", config.host, config.port),
        };
        if authority.is_empty() || authority.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(TransportError::BadConfig(format!(
                "authority {authority:?} is not a host[:port]"
            )));
        }
        let timeout = service::timeout(config.timeout_ms);
        let opened = net::connect(&config.host, config.port, timeout)?;
        let h2 = h2::Connection::handshake(opened.stream)?;
        Ok(Conn {
            h2,
            service: config.service,
            authority,
            metadata,
            timeout,
            timings: opened.timings,
        })
    }
}

/// Metadata as HTTP/2 header fields, or why an entry cannot be one.
fn metadata(entries: BTreeMap<String, String>) -> Result<Vec<(String, String)>, TransportError> {
    entries
        .into_iter()
        .map(|(name, value)| {
            let name = name.to_ascii_lowercase();
            let bad = |why: &str| TransportError::BadConfig(format!("metadata `{name}`: {why}"));
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(bad("names hold only letters, digits, `-`, `_` and `.`"));
            }
            if name.starts_with("grpc-") || RESERVED.contains(&name.as_str()) {
                return Err(bad("this header is set by HTTP/2 or gRPC itself"));
            }
            if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
                return Err(bad("values cannot hold line breaks or NUL"));
            }
            Ok((name, value))
        })
        .collect()
}

pub struct Conn {
    h2: h2::Connection<TcpStream>,
    service: String,
    authority: String,
    metadata: Vec<(String, String)>,
    timeout: Duration,
    timings: Timings,
}

/// What one Check call answered.
#[derive(Debug, PartialEq)]
struct Check {
    service: String,
    status: Option<String>,
    grpc_status: u32,
    grpc_message: Option<String>,
    http_status: u16,
}

impl Check {
    /// Reads a call's reply; a gRPC error is an answer, a reply that is not
    /// gRPC at all is a protocol error.
    fn from_reply(service: &str, reply: &h2::Reply) -> Result<Check, TransportError> {
        let protocol = TransportError::Protocol;
        let http_status = reply
            .headers
            .iter()
            .find(|(name, _)| name == ":status")
            .and_then(|(_, value)| value.parse().ok())
            .ok_or_else(|| protocol("a response without a valid :status".into()))?;
        let (grpc_status, grpc_message) = match reply.field("grpc-status") {
            Some(code) => (
                code.trim()
                    .parse()
                    .map_err(|_| protocol(format!("grpc-status {code:?} is not a number")))?,
                reply
                    .field("grpc-message")
                    .filter(|message| !message.is_empty())
                    .map(grpc::percent_decode),
            ),
            // gRPC maps an HTTP error without grpc-status (a proxy's 503…).
            None if http_status != 200 => (
                grpc::code_from_http(http_status),
                Some(format!("HTTP status {http_status} without grpc-status")),
            ),
            None => {
                let content_type = reply.field("content-type").unwrap_or("none");
                return Err(protocol(format!(
                    "not a gRPC server: HTTP/2 status 200 without grpc-status \
                     (content-type {content_type:?})"
                )));
            }
        };
        let status = if grpc_status == 0 {
            let status = grpc::check_response(&reply.body)
                .map_err(|e| protocol(format!("HealthCheckResponse: {e}")))?;
            Some(grpc::serving_status_name(status))
        } else {
            None
        };
        Ok(Check {
            service: service.to_string(),
            status,
            grpc_status,
            grpc_message,
            http_status,
        })
    }

    fn ok(&self) -> bool {
        self.grpc_status == 0 && self.status.as_deref() == Some("SERVING")
    }

    /// Why the check is not ok, in the server's terms.
    fn error(&self) -> Option<String> {
        if self.grpc_status != 0 {
            let code = match grpc::code_name(self.grpc_status) {
                Some(name) => format!("{name} ({})", self.grpc_status),
                None => format!("gRPC status {}", self.grpc_status),
            };
            return Some(match &self.grpc_message {
                Some(message) => format!("{code}: {message}"),
                None => code,
            });
        }
        let status = self.status.as_deref().filter(|s| *s != "SERVING")?;
        Some(if self.service.is_empty() {
            format!("the server is {status}")
        } else {
            format!("service `{}` is {status}", self.service)
        })
    }

    fn json(&self) -> Value {
        json!({
            "service": self.service,
            "status": self.status,
            "grpcStatus": self.grpc_status,
            "grpcCode": grpc::code_name(self.grpc_status),
            "grpcMessage": self.grpc_message,
            "httpStatus": self.http_status,
        })
    }
}

impl Conn {
    fn check(
        &mut self,
        service: &str,
        timeout: Duration,
    ) -> Result<(Check, Timings), TransportError> {
        if service.len() > MAX_SERVICE_LEN {
            return Err(TransportError::BadConfig(format!(
                "a service name is at most {MAX_SERVICE_LEN} bytes"
            )));
        }
        // gRPC allows at most 8 digits.
        let grpc_timeout = format!("{}m", timeout.as_millis().min(99_999_999));
        let mut headers = vec![
            (":method", "POST"),
            (":scheme", "http"),
            (":path", PATH),
            (":authority", self.authority.as_str()),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("grpc-timeout", grpc_timeout.as_str()),
        ];
        headers.extend(self.metadata.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let start = Instant::now();
        let reply = self
            .h2
            .call(&headers, &grpc::check_request(service), start + timeout)?;
        let timings = Timings {
            wait_ms: Some(ms_since(start)),
            ..self.timings
        };
        Ok((Check::from_reply(service, &reply)?, timings))
    }
}

impl Client for Conn {
    /// `info` checks the configured service; `query` checks the service
    /// its text names. Each is a new stream on the same connection.
    fn exec(&mut self, req: Request) -> Result<Response, TransportError> {
        let timeout = req
            .timeout_ms
            .map_or(self.timeout, |ms| Duration::from_millis(ms.into()));
        match req.method.as_str() {
            INFO => {
                let service = self.service.clone();
                let (check, timings) = self.check(&service, timeout)?;
                let mut body = check.json();
                body["serverVersion"] = Value::Null;
                Ok(service::reply(true, &body, timings))
            }
            QUERY => {
                let (check, timings) = self.check(req.target.trim(), timeout)?;
                let mut body = check.json();
                body["ok"] = check.ok().into();
                if let Some(error) = check.error() {
                    body["error"] = error.into();
                }
                Ok(service::reply(check.ok(), &body, timings))
            }
            other => Err(service::unknown_method(other)),
        }
    }

    fn timings(&self) -> Timings {
        self.timings
    }
}

checkhost_sdk::export_strategy!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(headers: &[(&str, &str)], trailers: &[(&str, &str)], body: &[u8]) -> h2::Reply {
        let own = |list: &[(&str, &str)]| {
            list.iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        h2::Reply {
            headers: own(headers),
            trailers: own(trailers),
            body: body.to_vec(),
        }
    }

    const OK_HEADERS: &[(&str, &str)] = &[(":status", "200"), ("content-type", "application/grpc")];

    #[test]
    fn serving_and_not_serving_are_answers() {
        let serving = reply(OK_HEADERS, &[("grpc-status", "0")], &[0, 0, 0, 0, 2, 8, 1]);
        let check = Check::from_reply("shop", &serving).unwrap();
        assert!(check.ok());
        assert_eq!(check.error(), None);
        assert_eq!(
            check.json(),
            json!({"service": "shop", "status": "SERVING", "grpcStatus": 0, "grpcCode": "OK",
                   "grpcMessage": null, "httpStatus": 200})
        );
        let down = reply(OK_HEADERS, &[("grpc-status", "0")], &[0, 0, 0, 0, 2, 8, 2]);
        let check = Check::from_reply("", &down).unwrap();
        assert!(!check.ok());
        assert_eq!(check.error().as_deref(), Some("the server is NOT_SERVING"));
    }

    #[test]
    fn grpc_errors_are_answers_with_their_message() {
        let only = [
            (":status", "200"),
            ("grpc-status", "5"),
            ("grpc-message", "no%20such%20service"),
        ];
        let check = Check::from_reply("nope", &reply(&only, &[], &[])).unwrap();
        assert_eq!((check.status.as_deref(), check.grpc_status), (None, 5));
        assert_eq!(
            check.error().as_deref(),
            Some("NOT_FOUND (5): no such service")
        );
        let proxy = reply(&[(":status", "503")], &[], b"busy");
        let check = Check::from_reply("", &proxy).unwrap();
        assert_eq!(check.grpc_status, 14);
        assert_eq!(
            check.error().as_deref(),
            Some("UNAVAILABLE (14): HTTP status 503 without grpc-status")
        );
    }

    #[test]
    fn replies_that_are_not_grpc_are_protocol_errors() {
        let html = reply(
            &[(":status", "200"), ("content-type", "text/html")],
            &[],
            b"<p>",
        );
        assert_eq!(
            Check::from_reply("", &html).unwrap_err().message(),
            "not a gRPC server: HTTP/2 status 200 without grpc-status (content-type \"text/html\")"
        );
        for bad in [
            reply(&[("grpc-status", "0")], &[], &[]),
            reply(OK_HEADERS, &[("grpc-status", "zero")], &[]),
            reply(OK_HEADERS, &[("grpc-status", "0")], &[]),
        ] {
            assert!(matches!(
                Check::from_reply("", &bad),
                Err(TransportError::Protocol(_))
            ));
        }
    }

    #[test]
    fn metadata_is_lowercased_and_checked() {
        let entries = |list: &[(&str, &str)]| {
            metadata(
                list.iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
            )
        };
        assert_eq!(
            entries(&[("X-Api-Key", "k1")]).unwrap(),
            [("x-api-key".to_string(), "k1".to_string())]
        );
        for bad in [
            [("grpc-timeout", "1S")],
            [("TE", "trailers")],
            [(":path", "/")],
            [("x-key", "a\r\nb")],
            [("", "v")],
        ] {
            assert!(
                matches!(entries(&bad), Err(TransportError::BadConfig(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn config_schema_marks_templatable_fields() {
        let schema: Value =
            checkhost_sdk::serde_json::from_str(&checkhost_sdk::schema_json::<Config>()).unwrap();
        for field in ["host", "service", "authority", "metadata"] {
            assert_eq!(
                schema["properties"][field]["x-templatable"], true,
                "{field}"
            );
        }
        assert_eq!(schema["required"], json!(["host", "port"]));
    }
}
