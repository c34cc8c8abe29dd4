//! Traces of runs over OTLP: spans built after each run, sampled, exported in bounded batches.
//!
//! A span per run and per phase is built once the run is over, from the
//! instants it recorded. Failed runs are always kept. The export queue
//! drops, and counts, what it cannot take rather than slow a run. The spans
//! are written after the fact, so only the SDK's exporter is used, not its
//! live-span tracer: a run records its instants while traces are on, and
//! pays for spans only when its trace is kept.

mod export;
mod sampler;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;

pub use export::ExportStats;
use export::{Destination, SpanQueue};
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
    scope: InstrumentationScope,
}

/// A run's trace, from the moment the run was asked for.
#[derive(Debug, Clone, Copy)]
pub struct RunTrace {
    pub parent: TraceParent,
    root: [u8; 8],
    wall: SystemTime,
    started: Instant,
}

impl RunTrace {
    /// The wall-clock time of an instant of this run.
    fn at(&self, instant: Instant) -> SystemTime {
        self.wall + instant.saturating_duration_since(self.started)
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
        let resource = Resource::builder_empty()
            .with_service_name(service)
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let queue = SpanQueue::start(&destination, &resource).map_err(TraceSetupError)?;
        tracing::info!(
            endpoint = destination.endpoint.as_deref().unwrap_or("(from OTEL_EXPORTER_OTLP_*)"),
            protocol = ?destination.protocol,
            "traces on"
        );
        Ok(Traces(Some(Arc::new(Tracer {
            sampler,
            queue,
            scope: InstrumentationScope::builder("checkhost")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        }))))
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
            wall: SystemTime::now(),
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
        tracer.queue.send(spans(trace, run, &tracer.scope));
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

/// The endpoint and protocol, or `None` when traces are off.
fn destination(
    config: &TracesConfig,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<Destination>, TraceSetupError> {
    let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        || set("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none")
    {
        return Ok(None);
    }
    let from_env = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .is_some();
    if config.endpoint.is_none() && !from_env {
        return Ok(None);
    }
    let protocol = match config.protocol {
        Some(protocol) => protocol,
        None => match set("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| set("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .as_deref()
            .map(str::trim)
        {
            None | Some("http/protobuf") => OtlpProtocol::HttpProtobuf,
            Some("grpc") => OtlpProtocol::Grpc,
            Some(other) => {
                return Err(TraceSetupError(format!(
                    "OTEL_EXPORTER_OTLP_PROTOCOL `{other}` is not supported: \
                     use http/protobuf or grpc"
                )));
            }
        },
    };
    Ok(Some(Destination {
        endpoint: config.endpoint.clone(),
        protocol,
    }))
}

/// The spans of one run: the run itself, then its queue wait, each
/// guest's instantiation, the strategy's connect, each collector, every
/// HTTP request (under the collector that asked for it), the assertions
/// and the write to the store.
fn spans(trace: &RunTrace, run: &FinishedRun<'_>, scope: &InstrumentationScope) -> Vec<SpanData> {
    let mask = |text: &str| -> Value { Value::String(run.masker.text(text).into()) };
    let ended = run.persisted.1;
    let mut root_attributes = vec![
        KeyValue::new("checkhost.system", mask(run.system)),
        KeyValue::new("checkhost.check", mask(run.check)),
        KeyValue::new("checkhost.outcome", run.end.label()),
        KeyValue::new("checkhost.strategy", mask(run.strategy.id)),
        KeyValue::new("checkhost.strategy.digest", run.strategy.digest.to_string()),
        KeyValue::new(
            "checkhost.collectors",
            Value::Array(
                run.collectors
                    .iter()
                    .map(|c| run.masker.text(c.id).into())
                    .collect::<Vec<opentelemetry::StringValue>>()
                    .into(),
            ),
        ),
        KeyValue::new(
            "checkhost.collectors.digests",
            Value::Array(
                run.collectors
                    .iter()
                    .map(|c| c.digest.to_string().into())
                    .collect::<Vec<opentelemetry::StringValue>>()
                    .into(),
            ),
        ),
    ];
    if let Some(id) = run.run_id {
        root_attributes.push(KeyValue::new("checkhost.run_id", id));
    }
    if let Some(env) = run.environment {
        root_attributes.push(KeyValue::new("checkhost.environment", mask(env)));
    }
    if let Some(location) = run.location {
        root_attributes.push(KeyValue::new("checkhost.location", mask(location)));
    }
    let status = match run.error {
        Some(error) => Status::error(run.masker.text(error)),
        None if run.failed_assertions > 0 => {
            Status::error(format!("{} assertions failed", run.failed_assertions))
        }
        None => Status::Ok,
    };
    let mut out = Vec::new();
    let span = |id: [u8; 8],
                parent: [u8; 8],
                name: Cow<'static, str>,
                kind: SpanKind,
                (start, end): (Instant, Instant),
                attributes: Vec<KeyValue>,
                status: Status| SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(trace.parent.trace_id),
            SpanId::from_bytes(id),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::from_bytes(parent),
        parent_span_is_remote: false,
        span_kind: kind,
        name,
        start_time: trace.at(start),
        end_time: trace.at(end.max(start)),
        attributes,
        dropped_attributes_count: 0,
        events: Default::default(),
        links: Default::default(),
        status,
        instrumentation_scope: scope.clone(),
    };
    let new_id = crate::runtime::timeline::new_span_id;
    out.push(span(
        trace.root,
        [0; 8],
        format!("run {}", run.masker.text(run.check)).into(),
        SpanKind::Internal,
        (trace.started, ended),
        root_attributes,
        status,
    ));
    if let Some(timeline) = run.timeline {
        if timeline.http_dropped > 0 {
            out[0].attributes.push(KeyValue::new(
                "checkhost.http_requests_not_traced",
                timeline.http_dropped as i64,
            ));
        }
        if let Some(admitted) = timeline.admitted {
            out.push(span(
                new_id(),
                trace.root,
                "queue".into(),
                SpanKind::Internal,
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
            out.push(span(
                id,
                trace.root,
                format!("collect {}", run.masker.text(&phase.plugin)).into(),
                SpanKind::Internal,
                (phase.start, phase.end),
                vec![KeyValue::new("checkhost.plugin", mask(&phase.plugin))],
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
            attributes.push(KeyValue::new("checkhost.plugin", mask(&phase.plugin)));
            out.push(span(
                new_id(),
                parent,
                format!("{name} {}", run.masker.text(&phase.plugin)).into(),
                SpanKind::Internal,
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
                "http" | "https" => call.scheme.clone(),
                _ => "_OTHER".into(),
            };
            let mut attributes = vec![
                KeyValue::new("http.request.method", method),
                KeyValue::new("url.scheme", scheme),
                KeyValue::new("server.address", mask(&call.host)),
                KeyValue::new("server.port", i64::from(call.port)),
                KeyValue::new("url.path", mask(&call.path)),
            ];
            let status = match (&call.status, &call.error) {
                (Some(code), _) => {
                    attributes.push(KeyValue::new("http.response.status_code", i64::from(*code)));
                    if *code >= 500 {
                        attributes.push(KeyValue::new("error.type", code.to_string()));
                        Status::error(code.to_string())
                    } else {
                        Status::Unset
                    }
                }
                (None, Some(error)) => {
                    let error = run.masker.text(error);
                    attributes.push(KeyValue::new("error.type", error.clone()));
                    Status::error(error)
                }
                (None, None) => Status::Unset,
            };
            out.push(span(
                call.span_id,
                collector_span(call.caller).unwrap_or(trace.root),
                if method == "_OTHER" { "HTTP" } else { method }.into(),
                SpanKind::Client,
                (call.start, call.end),
                attributes,
                status,
            ));
        }
    }
    if let Some(judged) = run.judged {
        out.push(span(
            new_id(),
            trace.root,
            "assertions".into(),
            SpanKind::Internal,
            judged,
            vec![KeyValue::new(
                "checkhost.assertions.failed",
                run.failed_assertions as i64,
            )],
            Status::Unset,
        ));
    }
    out.push(span(
        new_id(),
        trace.root,
        "persist".into(),
        SpanKind::Internal,
        run.persisted,
        Vec::new(),
        Status::Unset,
    ));
    out
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
fn timing_attributes(timeline: &Timeline) -> Vec<KeyValue> {
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
    .filter_map(|(key, ms)| ms.map(|ms| KeyValue::new(key, ms)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
            wall: SystemTime::now(),
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
        let scope = InstrumentationScope::builder("checkhost").build();
        let spans = spans(&trace, &run, &scope);
        assert!(!format!("{spans:?}").contains("s3cret"), "{spans:#?}");
        let named = |name: &str| spans.iter().find(|s| s.name == name).unwrap();
        let root = named("run api");
        assert_eq!(root.parent_span_id, SpanId::INVALID);
        assert!(
            matches!(&root.status, Status::Error { description } if description.contains("refused"))
        );
        let collect = named("collect request");
        assert_eq!(collect.parent_span_id, root.span_context.span_id());
        let odd = named("HTTP");
        let told = |key: &str| {
            odd.attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(told("http.request.method").as_deref(), Some("_OTHER"));
        assert_eq!(told("url.scheme").as_deref(), Some("_OTHER"));
        let request = named("GET");
        assert_eq!(request.span_kind, SpanKind::Client);
        assert_eq!(request.parent_span_id, collect.span_context.span_id());
        assert_eq!(request.span_context.span_id(), SpanId::from_bytes([3; 8]));
        assert!(
            matches!(request.status, Status::Error { .. }),
            "a 503 is an error"
        );
        assert!(
            spans
                .iter()
                .all(|s| s.span_context.trace_id() == TraceId::from_bytes([1; 16]))
        );
        for name in ["queue", "assertions", "persist"] {
            assert_eq!(
                named(name).parent_span_id,
                root.span_context.span_id(),
                "{name}"
            );
        }
        assert!(
            spans
                .iter()
                .all(|s| s.start_time >= root.start_time && s.end_time <= root.end_time)
        );
    }

    #[test]
    fn off_unless_an_endpoint_is_named() {
        let config = TracesConfig::default();
        assert_eq!(destination(&config, &env_of(&[])).unwrap(), None);
        let on = destination(
            &config,
            &env_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")]),
        )
        .unwrap();
        assert_eq!(
            on,
            Some(Destination {
                endpoint: None,
                protocol: OtlpProtocol::HttpProtobuf
            })
        );
        let disabled = env_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ]);
        assert_eq!(destination(&config, &disabled).unwrap(), None);
    }

    #[test]
    fn config_wins_over_the_environment() {
        let config = TracesConfig {
            endpoint: Some("http://collector:4317".into()),
            protocol: Some(OtlpProtocol::Grpc),
            sample_ratio: None,
        };
        let env = env_of(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]);
        let found = destination(&config, &env).unwrap().unwrap();
        assert_eq!(found.protocol, OtlpProtocol::Grpc);
        assert_eq!(found.endpoint.as_deref(), Some("http://collector:4317"));
        let json = env_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ]);
        let err = destination(&TracesConfig::default(), &json).unwrap_err();
        assert!(err.to_string().contains("http/json"), "{err}");
    }
}
