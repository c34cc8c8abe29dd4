//! HTTP over `wasi:http/outgoing-handler`. The host decides whether each
//! request may leave the sandbox, so this is all a plugin needs.

use std::time::{Duration, Instant};

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::streams::StreamError;

use crate::{Response, Timings, TransportError};

/// The parts of an absolute `http(s)://` URL that `wasi:http` wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    pub authority: String,
    pub path_and_query: String,
}

impl Url {
    pub fn parse(url: &str) -> Result<Url, TransportError> {
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(TransportError::BadConfig(format!(
                "url `{url}` must start with http:// or https://"
            )));
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty() {
            return Err(TransportError::BadConfig(format!(
                "url `{url}` has no host"
            )));
        }
        let path_and_query = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        Ok(Url {
            https,
            authority: authority.to_string(),
            path_and_query,
        })
    }

    /// Resolves `target` against this URL: absolute URLs win, a path
    /// replaces this URL's path.
    pub fn join(&self, target: &str) -> Result<Url, TransportError> {
        if target.starts_with("http://") || target.starts_with("https://") {
            return Url::parse(target);
        }
        let path_and_query = if target.is_empty() {
            self.path_and_query.clone()
        } else if target.starts_with('/') {
            target.to_string()
        } else {
            let base = self.path_and_query.split('?').next().unwrap_or("/");
            let dir = &base[..=base.rfind('/').unwrap_or(0)];
            format!("{dir}{target}")
        };
        Ok(Url {
            path_and_query,
            ..self.clone()
        })
    }

    pub fn to_url_string(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority, self.path_and_query)
    }
}

/// Sends one request and reads the whole response.
pub fn send(
    method: &str,
    url: &Url,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Option<Duration>,
) -> Result<Response, TransportError> {
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, value.as_bytes())
            .map_err(|e| TransportError::BadConfig(format!("header `{name}`: {e:?}")))?;
    }
    let request = OutgoingRequest::new(fields);
    let bad = |what: &str| TransportError::BadConfig(format!("invalid {what}"));
    request
        .set_method(&parse_method(method))
        .map_err(|_| bad("method"))?;
    let scheme = if url.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    request
        .set_scheme(Some(&scheme))
        .map_err(|_| bad("scheme"))?;
    request
        .set_authority(Some(&url.authority))
        .map_err(|_| bad("host"))?;
    request
        .set_path_with_query(Some(&url.path_and_query))
        .map_err(|_| bad("path"))?;
    let outgoing_body = request.body().map_err(|_| bad("body"))?;

    let options = RequestOptions::new();
    if let Some(timeout) = timeout {
        let ns = Some(timeout.as_nanos().min(u64::MAX as u128) as u64);
        // The host caps these at the run deadline; unsupported options are
        // not an error, the deadline still applies.
        let _ = options.set_connect_timeout(ns);
        let _ = options.set_first_byte_timeout(ns);
        let _ = options.set_between_bytes_timeout(ns);
    }

    let start = Instant::now();
    let pending = outgoing_handler::handle(request, Some(options)).map_err(map_error)?;
    write_body(&outgoing_body, body)?;
    OutgoingBody::finish(outgoing_body, None).map_err(map_error)?;

    let response = loop {
        match pending.get() {
            Some(result) => break result,
            None => pending.subscribe().block(),
        }
    };
    let response = response
        .map_err(|_| TransportError::Other("response already taken".into()))?
        .map_err(map_error)?;
    let wait_ms = ms_since(start);

    let status = u32::from(response.status());
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let transfer_start = Instant::now();
    let incoming = response
        .consume()
        .map_err(|_| TransportError::Protocol("response body unavailable".into()))?;
    let body = read_body(&incoming)?;
    IncomingBody::finish(incoming);

    Ok(Response {
        status,
        status_text: reason_phrase(status).to_string(),
        headers,
        body,
        timings: Timings {
            wait_ms: Some(wait_ms),
            transfer_ms: Some(ms_since(transfer_start)),
            ..Timings::default()
        },
    })
}

fn write_body(outgoing: &OutgoingBody, body: &[u8]) -> Result<(), TransportError> {
    if body.is_empty() {
        return Ok(());
    }
    let stream = outgoing
        .write()
        .map_err(|_| TransportError::Other("request body unavailable".into()))?;
    for chunk in body.chunks(4096) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(|e| TransportError::Protocol(format!("writing request body: {e:?}")))?;
    }
    Ok(())
}

fn read_body(incoming: &IncomingBody) -> Result<Vec<u8>, TransportError> {
    let stream = incoming
        .stream()
        .map_err(|_| TransportError::Protocol("response body unavailable".into()))?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(body),
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(TransportError::Protocol(format!(
                    "reading response body: {}",
                    e.to_debug_string()
                )));
            }
        }
    }
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

fn parse_method(method: &str) -> Method {
    match method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        other => Method::Other(other.to_string()),
    }
}

fn map_error(code: ErrorCode) -> TransportError {
    let msg = format!("{code:?}");
    match code {
        ErrorCode::DnsTimeout
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout => TransportError::Timeout(msg),
        ErrorCode::DnsError(_) => TransportError::Dns(msg),
        ErrorCode::ConnectionRefused | ErrorCode::ConnectionTerminated => {
            TransportError::Refused(msg)
        }
        ErrorCode::DestinationIpProhibited | ErrorCode::DestinationIpUnroutable => {
            TransportError::Denied(msg)
        }
        ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_) => TransportError::Tls(msg),
        ErrorCode::HttpRequestUriInvalid | ErrorCode::HttpRequestMethodInvalid => {
            TransportError::BadConfig(msg)
        }
        _ => TransportError::Protocol(msg),
    }
}

/// The standard reason phrase for a status code.
pub fn reason_phrase(status: u32) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_joins_urls() {
        let base = Url::parse("https://example.test:8443/api/v1?x=1").unwrap();
        assert!(base.https);
        assert_eq!(base.authority, "example.test:8443");
        assert_eq!(base.join("/health").unwrap().path_and_query, "/health");
        assert_eq!(base.join("status").unwrap().path_and_query, "/api/status");
        assert_eq!(
            base.join("http://other/").unwrap().to_url_string(),
            "http://other/"
        );
        assert_eq!(Url::parse("http://h?q").unwrap().path_and_query, "/?q");
        assert!(matches!(
            Url::parse("ftp://h"),
            Err(TransportError::BadConfig(_))
        ));
    }
}
