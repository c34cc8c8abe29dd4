//! Traces of runs over OTLP: spans built after each run, sampled, exported in bounded batches.
//!
//! A span per run and per phase is written once the run is over, from the
//! instants it recorded, straight into OTLP protobuf (see `otlp`). Failed
//! runs are always kept. The export queue drops, and counts, what it cannot
//! take rather than slow a run. A run records its instants while traces
//! are on, and pays for spans only when its trace is kept.

mod export;
mod otlp;
mod sampler;

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use export::ExportStats;
use export::{Destination, EXPORT_TIMEOUT, SpanQueue};
use otlp::{Attribute, Envelope, Kind, Span, Status, Value};
pub use sampler::Sampler;

use crate::config::{OtlpProtocol, TracesConfig};
use crate::runtime::ComponentDigest;
use crate::runtime::mask::Masker;
use crate::runtime::timeline::{PhaseKind, Timeline, TraceParent};

/// How long a stopping process waits for its last spans to be exported.
pub const FLUSH_AT_EXIT: Duration = Duration::from_secs(5);

/// Why traces cannot be set up as configured.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TraceSetupError(String);

/// The process's trace exporter, or none: cheap to clone, and a no-op when
/// traces are off.
#[derive(Debug, Clone, Default)]
pub struct Traces(Option<Arc<Tracer>>);

#[derive(Debug)]
struct Tracer {
    sampler: Sampler,
    queue: SpanQueue,
}

/// A run's trace, from the moment the run was asked for.
#[derive(Debug, Clone, Copy)]
pub struct RunTrace {
    pub parent: TraceParent,
    root: [u8; 8],
    /// When the run was asked for, in nanoseconds since the Unix epoch.
    wall_ns: u64,
    started: Instant,
}

impl RunTrace {
    /// The wall-clock time of an instant of this run, in nanoseconds since
    /// the Unix epoch.
    fn at(&self, instant: Instant) -> u64 {
        let since = instant.saturating_duration_since(self.started).as_nanos();
        self.wall_ns
            .saturating_add(u64::try_from(since).unwrap_or(u64::MAX))
    }
}

/// A plugin of a run, as its span attributes name it.
#[derive(Debug, Clone, Copy)]
pub struct PluginUse<'a> {
    pub id: &'a str,
    pub digest: ComponentDigest,
}

/// How a run ended, as far as the process that ran it can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    Healthy,
    Unhealthy,
    /// At a probe, without a transport error: the server judges the rest.
    Ran,
    /// At a probe, with a transport error (or a stopped guest).
    Failed,
}

impl RunEnd {
    fn failed(self) -> bool {
        matches!(self, RunEnd::Unhealthy | RunEnd::Failed)
    }

    fn label(self) -> &'static str {
        match self {
            RunEnd::Healthy => "healthy",
            RunEnd::Unhealthy => "unhealthy",
            RunEnd::Ran => "ran",
            RunEnd::Failed => "failed",
        }
    }
}

impl<'a> PluginUse<'a> {
    pub fn of(plugin: &'a crate::runtime::Plugin) -> PluginUse<'a> {
        PluginUse {
            id: &plugin.info.id,
            digest: plugin.digest,
        }
    }
}

/// What a finished run tells its trace. Everything here is masked again
/// before it becomes an attribute.
#[derive(Debug)]
pub struct FinishedRun<'a> {
    pub system: &'a str,
    pub check: &'a str,
    pub environment: Option<&'a str>,
    pub location: Option<&'a str>,
    /// The stored run, where the run was stored.
    pub run_id: Option<i64>,
    pub end: RunEnd,
    pub error: Option<&'a str>,
    pub strategy: PluginUse<'a>,
    pub collectors: Vec<PluginUse<'a>>,
    pub timeline: Option<&'a Timeline>,
    /// When the assertions were judged, and when the run was stored (or
    /// spooled, at a probe).
    pub judged: Option<(Instant, Instant)>,
    pub persisted: (Instant, Instant),
    pub failed_assertions: usize,
    pub masker: &'a Masker,
}

impl Traces {
    pub fn off() -> Traces {
        Traces(None)
    }

    /// Traces as the config says, the `OTEL_*` variables (read through
    /// `env`) filling in what it leaves out. Off when neither names an
    /// endpoint, or `OTEL_SDK_DISABLED=true`, or `OTEL_TRACES_EXPORTER=none`.
    /// Starts the export task, so it must run inside the Tokio runtime.
    pub fn start(
        config: &TracesConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Traces, TraceSetupError> {
        let Some(destination) = destination(config, &env)? else {
            return Ok(Traces::off());
        };
        let sampler = match config.sample_ratio {
            Some(ratio) => Sampler::ratio(ratio),
            None => match env("OTEL_TRACES_SAMPLER") {
                Some(name) => Sampler::from_env(&name, env("OTEL_TRACES_SAMPLER_ARG").as_deref())
                    .map_err(TraceSetupError)?,
                None => Sampler::ratio(1.0),
            },
        };
        let service = env("OTEL_SERVICE_NAME").unwrap_or_else(|| "checkhost".into());
        let version = env!("CARGO_PKG_VERSION");
        let envelope = Envelope::new(
            &[
                ("service.name", service.into()),
                ("service.version", version.into()),
            ],
            "checkhost",
            version,
        );
        let queue = SpanQueue::start(&destination, envelope).map_err(TraceSetupError)?;
        tracing::info!(
            endpoint = %without_credentials(&destination.url),
            protocol = ?destination.protocol,
            "traces on"
        );
        Ok(Traces(Some(Arc::new(Tracer { sampler, queue }))))
    }

    /// Counters of the export, when traces are on.
    pub fn stats(&self) -> Option<Arc<ExportStats>> {
        self.0.as_ref().map(|t| t.queue.stats.clone())
    }

    /// Opens the trace of a run about to be asked for; `None` when traces
    /// are off.
    pub fn begin(&self, propagate: bool) -> Option<RunTrace> {
        let tracer = self.0.as_ref()?;
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&fastrand::u64(..).to_be_bytes());
        trace_id[8..].copy_from_slice(&fastrand::u64(1..).to_be_bytes());
        Some(RunTrace {
            parent: TraceParent {
                trace_id,
                sampled: tracer.sampler.head(&trace_id),
                propagate,
            },
            root: crate::runtime::timeline::new_span_id(),
            wall_ns: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            started: Instant::now(),
        })
    }

    /// Closes a run's trace: its spans are queued for export when the
    /// sampler keeps it. Returns the trace id, for exemplars, when kept.
    pub fn end(&self, trace: &RunTrace, run: &FinishedRun<'_>) -> Option<String> {
        let tracer = self.0.as_ref()?;
        if !tracer.sampler.keep(trace.parent.sampled, !run.end.failed()) {
            return None;
        }
        ENCODED.with_borrow_mut(|encoded| {
            encoded.clear();
            let count = spans(trace, run, encoded);
            tracer.queue.send(encoded, count);
        });
        Some(hex::encode(trace.parent.trace_id))
    }

    /// Exports what is queued, waiting at most `within`: before the
    /// process exits.
    pub async fn flush(&self, within: Duration) {
        if let Some(tracer) = &self.0 {
            tracer.queue.flush(within).await;
        }
    }
}

/// Where spans go, or `None` when traces are off. Each exporter setting
/// is read trace-specific first (`OTEL_EXPORTER_OTLP_TRACES_*`), then
/// general (`OTEL_EXPORTER_OTLP_*`), as OpenTelemetry specifies; the
/// config's endpoint and protocol win over both.
fn destination(
    config: &TracesConfig,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<Destination>, TraceSetupError> {
    let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    // The variable a setting came from, to name it in errors, and its value.
    let setting = |name: &str| -> Option<(String, String)> {
        [
            format!("OTEL_EXPORTER_OTLP_TRACES_{name}"),
            format!("OTEL_EXPORTER_OTLP_{name}"),
        ]
        .into_iter()
        .find_map(|var| set(&var).map(|value| (var, value.trim().to_string())))
    };
    if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        || set("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none")
    {
        return Ok(None);
    }
    let refuse = |message: String| Err(TraceSetupError(message));
    let protocol = match (config.protocol, setting("PROTOCOL")) {
        (Some(protocol), _) => protocol,
        (None, None) => OtlpProtocol::HttpProtobuf,
        (None, Some((var, value))) => match value.as_str() {
            "http/protobuf" => OtlpProtocol::HttpProtobuf,
            "grpc" => OtlpProtocol::Grpc,
            _ => {
                return refuse(format!(
                    "{var} `{value}` is not supported: use http/protobuf or grpc"
                ));
            }
        },
    };
    // A general endpoint is a base, under which OTLP/HTTP puts the signal's
    // path; a traces endpoint is the URL itself.
    let under = |base: &str| match protocol {
        OtlpProtocol::HttpProtobuf => format!("{}/v1/traces", base.trim_end_matches('/')),
        OtlpProtocol::Grpc => base.to_string(),
    };
    let (from, url) = match (&config.endpoint, setting("ENDPOINT")) {
        (Some(base), _) => ("traces.endpoint".to_string(), under(base.trim())),
        (None, Some((var, url))) if var.contains("_TRACES_") => (var, url),
        (None, Some((var, base))) => (var, under(&base)),
        (None, None) => return Ok(None),
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return refuse(format!(
            "{from}: `{url}` is not an http:// or https:// URL of an OTLP collector"
        ));
    }
    let headers = match setting("HEADERS") {
        Some((var, value)) => {
            headers(&value).map_err(|e| TraceSetupError(format!("{var}: {e}")))?
        }
        None => Vec::new(),
    };
    let timeout = match setting("TIMEOUT") {
        Some((var, value)) => match value.parse::<u64>() {
            Ok(ms) if ms > 0 => Duration::from_millis(ms),
            _ => {
                return refuse(format!(
                    "{var} `{value}` is not a timeout: give milliseconds, e.g. 10000"
                ));
            }
        },
        None => EXPORT_TIMEOUT,
    };
    if let Some((var, value)) = setting("COMPRESSION").filter(|(_, v)| v != "none") {
        return refuse(format!(
            "{var} `{value}` is not supported: checkhost sends OTLP uncompressed; \
             unset it or set it to none"
        ));
    }
    for name in ["CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY"] {
        if let Some((var, _)) = setting(name) {
            return refuse(format!(
                "{var} is not supported: an https:// collector's certificate must \
                 chain to the public web roots"
            ));
        }
    }
    Ok(Some(Destination {
        url,
        protocol,
        headers,
        timeout,
    }))
}

/// An endpoint as logs may show it: a `user:password@` it holds is left out.
fn without_credentials(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => "(not a URL)".into(),
    }
}

/// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value` pairs apart by commas, values
/// percent-encoded. Values may be credentials, and a mistyped pair may put
/// one in the key: errors name a pair by its place, never quote it.
fn headers(list: &str) -> Result<Vec<(http::HeaderName, http::HeaderValue)>, String> {
    list.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .enumerate()
        .map(|(i, pair)| {
            let place = i + 1;
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("pair {place} is not key=value"))?;
            let name = http::HeaderName::from_bytes(key.trim().as_bytes())
                .map_err(|_| format!("pair {place} does not start with a header name"))?;
            let value: Vec<u8> = percent_encoding::percent_decode_str(value.trim()).collect();
            let mut value = http::HeaderValue::from_bytes(&value)
                .map_err(|_| format!("the value of pair {place} is not a valid header value"))?;
            value.set_sensitive(true);
            Ok((name, value))
        })
        .collect()
}

thread_local! {
    /// A run's spans, encoded, before they join the queue: one buffer per
    /// thread, so that a traced run allocates none of its own.
    static ENCODED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Writes the spans of one run into `out` and says how many: the run
/// itself, then its queue wait, each guest's instantiation, the strategy's
/// connect, each collector, every HTTP request (under the collector that
/// asked for it), the assertions and the write to the store.
fn spans(trace: &RunTrace, run: &FinishedRun<'_>, out: &mut Vec<u8>) -> usize {
    let mask = |text| run.masker.masked(text);
    let mut count = 0;
    let mut put = |span: Span<'_>| {
        span.put(out);
        count += 1;
    };
    let span = |id: [u8; 8],
                parent: Option<[u8; 8]>,
                name: Cow<'static, str>,
                kind: Kind,
                (start, end): (Instant, Instant),
                attributes,
                status| {
        Span {
            trace_id: trace.parent.trace_id,
            id,
            parent,
            name,
            kind,
            start_ns: trace.at(start),
            end_ns: trace.at(end.max(start)),
            attributes,
            status,
        }
    };
    let mut root_attributes: Vec<Attribute<'_>> = vec![
        ("checkhost.system", mask(run.system).into()),
        ("checkhost.check", mask(run.check).into()),
        ("checkhost.outcome", run.end.label().into()),
        ("checkhost.strategy", mask(run.strategy.id).into()),
        (
            "checkhost.strategy.digest",
            run.strategy.digest.to_string().into(),
        ),
        (
            "checkhost.collectors",
            Value::Strs(run.collectors.iter().map(|c| mask(c.id)).collect()),
        ),
        (
            "checkhost.collectors.digests",
            Value::Strs(
                run.collectors
                    .iter()
                    .map(|c| c.digest.to_string().into())
                    .collect(),
            ),
        ),
    ];
    if let Some(id) = run.run_id {
        root_attributes.push(("checkhost.run_id", id.into()));
    }
    if let Some(env) = run.environment {
        root_attributes.push(("checkhost.environment", mask(env).into()));
    }
    if let Some(location) = run.location {
        root_attributes.push(("checkhost.location", mask(location).into()));
    }
    if let Some(timeline) = run.timeline.filter(|t| t.http_dropped > 0) {
        root_attributes.push((
            "checkhost.http_requests_not_traced",
            (timeline.http_dropped as i64).into(),
        ));
    }
    let status = match run.error {
        Some(error) => Status::Error(mask(error)),
        None if run.failed_assertions > 0 => {
            Status::Error(format!("{} assertions failed", run.failed_assertions).into())
        }
        None => Status::Ok,
    };
    let root = Some(trace.root);
    let new_id = crate::runtime::timeline::new_span_id;
    put(span(
        trace.root,
        None,
        format!("run {}", mask(run.check)).into(),
        Kind::Internal,
        (trace.started, run.persisted.1),
        root_attributes,
        status,
    ));
    if let Some(timeline) = run.timeline {
        if let Some(admitted) = timeline.admitted {
            put(span(
                new_id(),
                root,
                "queue".into(),
                Kind::Internal,
                (trace.started, admitted),
                Vec::new(),
                Status::Unset,
            ));
        }
        // Collectors first, so instantiations and requests find their parent.
        let mut collect_ids: Vec<(Option<usize>, [u8; 8])> = Vec::new();
        for phase in timeline
            .phases
            .iter()
            .filter(|p| p.kind == PhaseKind::Collect)
        {
            let id = new_id();
            collect_ids.push((phase.place, id));
            put(span(
                id,
                root,
                format!("collect {}", mask(&phase.plugin)).into(),
                Kind::Internal,
                (phase.start, phase.end),
                vec![("checkhost.plugin", mask(&phase.plugin).into())],
                Status::Unset,
            ));
        }
        let collector_span = |place: Option<usize>| {
            place.and_then(|place| {
                collect_ids
                    .iter()
                    .find(|(at, _)| *at == Some(place))
                    .map(|(_, span)| *span)
            })
        };
        for phase in timeline
            .phases
            .iter()
            .filter(|p| p.kind != PhaseKind::Collect)
        {
            let (name, parent, mut attributes) = match phase.kind {
                PhaseKind::Instantiate => (
                    "instantiate",
                    collector_span(phase.place).unwrap_or(trace.root),
                    Vec::new(),
                ),
                _ => ("connect", trace.root, timing_attributes(timeline)),
            };
            attributes.push(("checkhost.plugin", mask(&phase.plugin).into()));
            put(span(
                new_id(),
                Some(parent),
                format!("{name} {}", mask(&phase.plugin)).into(),
                Kind::Internal,
                (phase.start, phase.end),
                attributes,
                Status::Unset,
            ));
        }
        for call in &timeline.http {
            // A guest names its method and scheme: only the standard ones
            // are told, as OpenTelemetry's conventions say.
            let method = known_method(&call.method);
            let scheme = match call.scheme.as_str() {
                scheme @ ("http" | "https") => scheme,
                _ => "_OTHER",
            };
            let mut attributes: Vec<Attribute<'_>> = vec![
                ("http.request.method", method.into()),
                ("url.scheme", scheme.into()),
                ("server.address", mask(&call.host).into()),
                ("server.port", i64::from(call.port).into()),
                ("url.path", mask(&call.path).into()),
            ];
            let status = match (&call.status, &call.error) {
                (Some(code), _) => {
                    attributes.push(("http.response.status_code", i64::from(*code).into()));
                    if *code >= 500 {
                        attributes.push(("error.type", code.to_string().into()));
                        Status::Error(code.to_string().into())
                    } else {
                        Status::Unset
                    }
                }
                (None, Some(error)) => {
                    let error = mask(error);
                    attributes.push(("error.type", error.clone().into()));
                    Status::Error(error)
                }
                (None, None) => Status::Unset,
            };
            put(span(
                call.span_id,
                Some(collector_span(call.caller).unwrap_or(trace.root)),
                if method == "_OTHER" { "HTTP" } else { method }.into(),
                Kind::Client,
                (call.start, call.end),
                attributes,
                status,
            ));
        }
    }
    if let Some(judged) = run.judged {
        put(span(
            new_id(),
            root,
            "assertions".into(),
            Kind::Internal,
            judged,
            vec![(
                "checkhost.assertions.failed",
                (run.failed_assertions as i64).into(),
            )],
            Status::Unset,
        ));
    }
    put(span(
        new_id(),
        root,
        "persist".into(),
        Kind::Internal,
        run.persisted,
        Vec::new(),
        Status::Unset,
    ));
    count
}

/// The method as OpenTelemetry names it: a standard one, or `_OTHER`.
fn known_method(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("_OTHER")
}

/// The strategy's own account of its connection set-up, in milliseconds.
fn timing_attributes(timeline: &Timeline) -> Vec<Attribute<'static>> {
    let Some(t) = &timeline.connect_timings else {
        return Vec::new();
    };
    [
        ("checkhost.timings.dns_ms", t.dns_ms),
        ("checkhost.timings.connect_ms", t.connect_ms),
        ("checkhost.timings.tls_ms", t.tls_ms),
        ("checkhost.timings.wait_ms", t.wait_ms),
        ("checkhost.timings.transfer_ms", t.transfer_ms),
    ]
    .into_iter()
    .filter_map(|(key, ms)| ms.map(|ms| (key, Value::Double(ms))))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value;
    use prost::Message as _;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn spans_nest_under_the_run_and_carry_no_secret() {
        use crate::runtime::timeline::{HttpCall, Phase};
        let masker = Masker::new(["s3cret".to_string()]);
        let started = Instant::now();
        let at = |ms| started + Duration::from_millis(ms);
        let trace = RunTrace {
            parent: TraceParent {
                trace_id: [1; 16],
                sampled: true,
                propagate: false,
            },
            root: [2; 8],
            wall_ns: 1_700_000_000_000_000_000,
            started,
        };
        let timeline = Timeline {
            admitted: Some(at(1)),
            phases: vec![Phase {
                kind: PhaseKind::Collect,
                plugin: "request".into(),
                place: Some(0),
                start: at(2),
                end: at(6),
            }],
            http: vec![HttpCall {
                span_id: [3; 8],
                caller: Some(0),
                method: "GET".into(),
                scheme: "http".into(),
                host: "example.test".into(),
                port: 80,
                path: "/s3cret/x".into(),
                status: Some(503),
                error: None,
                start: at(3),
                end: at(5),
            }],
            ..Timeline::default()
        };
        let mut timeline = timeline;
        timeline.request(HttpCall {
            span_id: [4; 8],
            method: "BREW".into(),
            scheme: "coffee".into(),
            ..timeline.http[0].clone()
        });
        let digest = ComponentDigest::of(b"guest");
        let run = FinishedRun {
            system: "shop",
            check: "api",
            environment: Some("prod"),
            location: None,
            run_id: Some(7),
            end: RunEnd::Unhealthy,
            error: Some("request: refused by s3cret"),
            strategy: PluginUse { id: "http", digest },
            collectors: vec![PluginUse {
                id: "request",
                digest,
            }],
            timeline: Some(&timeline),
            judged: Some((at(6), at(7))),
            persisted: (at(7), at(9)),
            failed_assertions: 0,
            masker: &masker,
        };
        let mut encoded = Vec::new();
        let count = spans(&trace, &run, &mut encoded);
        let request = Envelope::new(&[], "checkhost", "").request(&encoded);
        let request =
            ExportTraceServiceRequest::decode(request.as_slice()).expect("a valid request");
        let spans = &request.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len(), count);
        assert!(!format!("{spans:?}").contains("s3cret"), "{spans:#?}");
        let named = |name: &str| spans.iter().find(|s| s.name == name).unwrap();
        let root = named("run api");
        assert!(root.parent_span_id.is_empty());
        let status = root.status.clone().unwrap();
        assert_eq!(status.code, 2, "an error");
        assert!(status.message.contains("refused"), "{status:?}");
        assert!(!status.message.contains("s3cret"), "{status:?}");
        let collect = named("collect request");
        assert_eq!(collect.parent_span_id, root.span_id);
        let odd = named("HTTP");
        let told = |key: &str| {
            odd.attributes
                .iter()
                .find(|kv| kv.key == key)
                .and_then(|kv| kv.value.clone()?.value)
        };
        let text = |s: &str| Some(any_value::Value::StringValue(s.into()));
        assert_eq!(told("http.request.method"), text("_OTHER"));
        assert_eq!(told("url.scheme"), text("_OTHER"));
        assert_eq!(told("url.path"), text("/****/x"));
        let request = named("GET");
        assert_eq!(request.kind, 3, "a client span");
        assert_eq!(request.parent_span_id, collect.span_id);
        assert_eq!(request.span_id, [3; 8]);
        assert_eq!(request.status.clone().unwrap().code, 2, "a 503 is an error");
        assert!(spans.iter().all(|s| s.trace_id == [1; 16]));
        for name in ["queue", "assertions", "persist"] {
            assert_eq!(named(name).parent_span_id, root.span_id, "{name}");
        }
        assert_eq!(
            root.start_time_unix_nano, 1_700_000_000_000_000_000,
            "the run starts when it was asked for"
        );
        assert_eq!(
            named("persist").end_time_unix_nano,
            1_700_000_000_009_000_000
        );
        assert!(
            spans
                .iter()
                .all(|s| s.start_time_unix_nano >= root.start_time_unix_nano
                    && s.end_time_unix_nano <= root.end_time_unix_nano)
        );
    }

    #[test]
    fn off_unless_an_endpoint_is_named() {
        let config = TracesConfig::default();
        assert_eq!(destination(&config, &env_of(&[])).unwrap(), None);
        let on = destination(
            &config,
            &env_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/")]),
        )
        .unwrap();
        assert_eq!(
            on,
            Some(Destination {
                url: "http://127.0.0.1:4318/v1/traces".into(),
                protocol: OtlpProtocol::HttpProtobuf,
                headers: Vec::new(),
                timeout: EXPORT_TIMEOUT,
            })
        );
        let disabled = env_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ]);
        assert_eq!(destination(&config, &disabled).unwrap(), None);
    }

    #[test]
    fn trace_settings_win_over_general_ones_and_the_config_over_both() {
        let env = env_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://general:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://traces:4318/custom",
            ),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-general=1"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                " Authorization=Bearer%20k3y , x-tenant=blue,",
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ]);
        let found = destination(&TracesConfig::default(), &env)
            .unwrap()
            .unwrap();
        assert_eq!(
            found.url, "http://traces:4318/custom",
            "a traces URL is used as it is"
        );
        assert_eq!(
            found.headers,
            [("authorization", "Bearer k3y"), ("x-tenant", "blue")].map(|(k, v)| (
                http::HeaderName::from_static(k),
                http::HeaderValue::from_static(v)
            ))
        );
        assert_eq!(found.timeout, Duration::from_millis(2500));

        let config = TracesConfig {
            endpoint: Some("http://collector:4317".into()),
            protocol: Some(OtlpProtocol::Grpc),
            sample_ratio: None,
        };
        let env = env_of(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]);
        let found = destination(&config, &env).unwrap().unwrap();
        assert_eq!(found.protocol, OtlpProtocol::Grpc);
        assert_eq!(found.url, "http://collector:4317", "gRPC has no path");
    }

    #[test]
    fn logs_show_an_endpoint_without_its_credentials() {
        assert_eq!(
            without_credentials("https://u:s3cret@collector:4318/v1/traces"),
            "https://collector:4318/v1/traces"
        );
    }

    #[test]
    fn settings_checkhost_cannot_honour_are_refused_by_name() {
        let refused = |vars: &[(&str, &str)]| {
            let mut vars = vars.to_vec();
            vars.push(("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"));
            destination(&TracesConfig::default(), &env_of(&vars))
                .unwrap_err()
                .to_string()
        };
        for (var, value, says) in [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "http/json"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
                "gzip",
                "uncompressed",
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s", "milliseconds"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.pem", "web roots"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x=1,novalue",
                "pair 2 is not key=value",
            ),
            ("OTEL_EXPORTER_OTLP_HEADERS", "bad key=x", "header name"),
        ] {
            let err = refused(&[(var, value)]);
            assert!(
                err.contains(var) && err.contains(says),
                "{var}={value}: {err}"
            );
        }
        for mistyped in [
            "k=s3cret%0A",
            "Authorization: Bearer s3cret",
            "api-key:s3cret==x",
        ] {
            let err = refused(&[("OTEL_EXPORTER_OTLP_HEADERS", mistyped)]);
            assert!(!err.contains("s3cret"), "a header is never quoted: {err}");
        }
        let err = destination(
            &TracesConfig::default(),
            &env_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{err}");
        assert!(
            destination(
                &TracesConfig::default(),
                &env_of(&[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
                ])
            )
            .is_ok()
        );
    }
}
