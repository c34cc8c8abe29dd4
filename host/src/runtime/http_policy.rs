//! `wasi:http` requests leave the sandbox only through here: the host
//! resolves the name, checks every address against the check's policy and
//! caps the request's timeouts at the run's remaining time.
//!
//! Plain HTTP is sent to the address that was checked, so a name cannot be
//! re-resolved to something else between check and connect (DNS rebinding).
//! HTTPS keeps the name for SNI and certificate verification, which is what
//! defeats rebinding there: a rebound name cannot present a valid certificate.
//!
//! In a traced run each request is recorded as a span of its own, and
//! carries that span in a `traceparent` header when the check asks for it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::uri::{Authority, Scheme};
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::budget::RunBudget;
use super::journal::{SharedJournal, journal};
use super::policy::NetworkPolicy;
use super::scope::RunScope;
use super::timeline::{HttpCall, TraceParent, new_span_id};

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>;

pub struct PolicedHttp {
    policy: Arc<NetworkPolicy>,
    journal: SharedJournal,
    budget: Arc<RunBudget>,
    plugin: String,
    deadline: Instant,
    trace: Option<TraceParent>,
    /// The collector place of the guest these hooks serve; `None`: the strategy.
    pub(super) sender: Option<usize>,
}

impl PolicedHttp {
    pub fn new(scope: &RunScope, plugin: &str) -> Self {
        PolicedHttp {
            policy: scope.policy.clone(),
            journal: scope.journal.clone(),
            budget: scope.budget.clone(),
            plugin: plugin.to_string(),
            deadline: scope.deadline,
            trace: scope.trace,
            sender: None,
        }
    }

    /// Starts the span of a request of a traced run, and puts it in the
    /// request's `traceparent` when the check propagates its trace (a
    /// header the guest set itself is left alone).
    fn start_call(&self, request: &mut http::Request<WasiBody>) -> Option<HttpCall> {
        let trace = self.trace?;
        let span_id = new_span_id();
        if trace.propagate
            && !request.headers().contains_key("traceparent")
            && let Ok(value) = http::HeaderValue::from_str(&trace.header(span_id))
        {
            request.headers_mut().insert("traceparent", value);
        }
        let uri = request.uri();
        let https = uri.scheme() == Some(&Scheme::HTTPS);
        // A collector's own request is its own; the strategy's is for the
        // collector whose transport call it serves, if any.
        let caller = self.sender.or_else(|| {
            journal(&self.journal)
                .timeline
                .as_ref()
                .and_then(|t| t.caller)
        });
        let now = Instant::now();
        Some(HttpCall {
            span_id,
            caller,
            method: request.method().to_string(),
            scheme: uri.scheme_str().unwrap_or("http").to_string(),
            host: uri.host().unwrap_or_default().to_string(),
            port: uri.port_u16().unwrap_or(if https { 443 } else { 80 }),
            path: uri.path().to_string(),
            status: None,
            error: None,
            start: now,
            end: now,
        })
    }
}

/// Ends a request's span with its status or error.
fn finish_call(shared: &SharedJournal, mut call: HttpCall, outcome: Result<u16, String>) {
    call.end = Instant::now();
    match outcome {
        Ok(status) => call.status = Some(status),
        Err(error) => call.error = Some(error),
    }
    if let Some(timeline) = journal(shared).timeline.as_mut() {
        timeline.request(call);
    }
}

impl WasiHttpHooks for PolicedHttp {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> SendFuture {
        let policy = self.policy.clone();
        let journal = self.journal.clone();
        let deadline = self.deadline;
        // The connection counts against the run's socket cap for as long
        // as it is open: until its I/O ends, or the request fails.
        let connection = self.budget.open_http(&self.plugin);
        // wasi-http polls the request and its connection in tasks of their
        // own: what they allocate (headers, buffers, TLS) is the run's.
        let charge = self.budget.meter();
        let charged = move |future: IoFuture| -> IoFuture {
            match charge {
                Some(meter) => Box::new(meter.charge(Box::into_pin(future))),
                None => future,
            }
        };
        let call = self.start_call(&mut request);
        let send = async move {
            let sent: Result<_, HttpError> = async {
                let connection = connection.ok_or(HttpError::ConnectionLimitReached)?;
                let request = police(request, &policy, &journal).await?;
                let remaining = deadline.saturating_duration_since(Instant::now());
                let options = cap_timeouts(options, remaining);
                let (response, io) =
                    wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
                let io = async move {
                    let _open = connection;
                    io.await
                };
                Ok((response.map(BodyExt::boxed_unsync), charged(Box::new(io))))
            }
            .await;
            if let Some(call) = call {
                let outcome = match &sent {
                    Ok((response, _)) => Ok(response.status().as_u16()),
                    Err(e) => Err(e.to_string()),
                };
                finish_call(&journal, call, outcome);
            }
            sent
        };
        match charge {
            Some(meter) => Box::new(meter.charge(send)),
            None => Box::new(send),
        }
    }
}

async fn police(
    mut request: http::Request<WasiBody>,
    policy: &NetworkPolicy,
    shared: &SharedJournal,
) -> Result<http::Request<WasiBody>, HttpError> {
    let uri = request.uri().clone();
    let host = uri.host().ok_or(HttpError::HttpRequestUriInvalid)?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let https = uri.scheme() == Some(&Scheme::HTTPS);
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| HttpError::DnsError {
            rcode: Some(e.to_string()),
            info_code: None,
        })?
        .collect();
    let first = *addrs.first().ok_or(HttpError::DestinationNotFound)?;
    for addr in &addrs {
        if let Err(denial) = policy.check_named(&host, *addr) {
            journal(shared).deny(denial);
            return Err(HttpError::DestinationIpProhibited);
        }
    }
    if !https {
        let mut parts = uri.into_parts();
        parts.authority = Some(
            Authority::try_from(first.to_string().as_str())
                .map_err(|_| HttpError::HttpRequestUriInvalid)?,
        );
        *request.uri_mut() =
            http::Uri::from_parts(parts).map_err(|_| HttpError::HttpRequestUriInvalid)?;
    }
    Ok(request)
}

/// A guest may ask for shorter timeouts, never for longer than the run has left.
fn cap_timeouts(options: Option<RequestOptions>, remaining: Duration) -> RequestOptions {
    let cap = |t: Option<Duration>| Some(t.map_or(remaining, |t| t.min(remaining)));
    let options = options.unwrap_or_default();
    RequestOptions {
        connect_timeout: cap(options.connect_timeout),
        first_byte_timeout: cap(options.first_byte_timeout),
        between_bytes_timeout: cap(options.between_bytes_timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_never_exceed_the_remaining_run_time() {
        let remaining = Duration::from_secs(2);
        let capped = cap_timeouts(None, remaining);
        assert_eq!(capped.connect_timeout, Some(remaining));
        let asked = RequestOptions {
            connect_timeout: Some(Duration::from_millis(100)),
            first_byte_timeout: Some(Duration::from_secs(600)),
            between_bytes_timeout: None,
        };
        let capped = cap_timeouts(Some(asked), remaining);
        assert_eq!(capped.connect_timeout, Some(Duration::from_millis(100)));
        assert_eq!(capped.first_byte_timeout, Some(remaining));
        assert_eq!(capped.between_bytes_timeout, Some(remaining));
    }
}
