//! The OTLP exporter behind a bounded queue: runs hand their spans over
//! without waiting, one task batches and exports them, and whatever does
//! not fit or does not arrive is counted, never retried into the runs'
//! way.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use tokio::sync::{mpsc, oneshot};

use crate::config::OtlpProtocol;

/// Runs whose spans may wait for export; past this they are dropped.
const QUEUE_RUNS: usize = 4096;
/// Spans that may wait for export, whatever the runs: past this a run's
/// spans are dropped (a run holds at most a few hundred).
const QUEUE_SPANS: usize = 65_536;
/// Spans sent in one export request.
const MAX_BATCH_SPANS: usize = 512;
/// How long spans wait for a fuller batch: runs show up within seconds.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// One export request's bound, after which its spans count as failed.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// What became of the spans handed to the exporter.
#[derive(Debug, Default)]
pub struct ExportStats {
    pub exported: AtomicU64,
    /// Spans dropped because the queue was full.
    pub dropped_queue_full: AtomicU64,
    /// Spans dropped because their export failed or timed out.
    pub dropped_export_failed: AtomicU64,
}

/// Where and how spans go, resolved from the config and the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    /// `None` lets the exporter read `OTEL_EXPORTER_OTLP_*` itself.
    pub endpoint: Option<String>,
    pub protocol: OtlpProtocol,
}

enum Message {
    Spans(Vec<SpanData>),
    Flush(oneshot::Sender<()>),
}

/// The sending side of the export task.
#[derive(Debug)]
pub struct SpanQueue {
    sender: mpsc::Sender<Message>,
    /// Spans sent and not yet taken by the export task.
    queued: Arc<AtomicUsize>,
    pub stats: Arc<ExportStats>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Spans(spans) => write!(f, "Spans({})", spans.len()),
            Message::Flush(_) => f.write_str("Flush"),
        }
    }
}

impl SpanQueue {
    /// Builds the exporter and starts its task on the current runtime.
    pub fn start(destination: &Destination, resource: &Resource) -> Result<SpanQueue, String> {
        let mut exporter = build_exporter(destination)?;
        exporter.set_resource(resource);
        let (sender, receiver) = mpsc::channel(QUEUE_RUNS);
        let stats = Arc::new(ExportStats::default());
        let queued = Arc::new(AtomicUsize::new(0));
        tokio::spawn(export_loop(
            exporter,
            receiver,
            queued.clone(),
            stats.clone(),
        ));
        Ok(SpanQueue {
            sender,
            queued,
            stats,
        })
    }

    /// Hands a run's spans over, or counts them dropped when the queue is
    /// full or the task is gone.
    pub fn send(&self, spans: Vec<SpanData>) {
        let count = spans.len();
        let waiting = self.queued.fetch_add(count, Ordering::Relaxed);
        if waiting + count > QUEUE_SPANS || self.sender.try_send(Message::Spans(spans)).is_err() {
            self.queued.fetch_sub(count, Ordering::Relaxed);
            self.stats
                .dropped_queue_full
                .fetch_add(count as u64, Ordering::Relaxed);
        }
    }

    /// Exports everything queued so far, waiting at most `within`.
    pub async fn flush(&self, within: Duration) {
        let (done, exported) = oneshot::channel();
        let flush = async {
            if self.sender.send(Message::Flush(done)).await.is_ok() {
                let _ = exported.await;
            }
        };
        let _ = tokio::time::timeout(within, flush).await;
    }
}

async fn export_loop<E: opentelemetry_sdk::trace::SpanExporter>(
    exporter: E,
    mut receiver: mpsc::Receiver<Message>,
    queued: Arc<AtomicUsize>,
    stats: Arc<ExportStats>,
) {
    let mut batch: Vec<SpanData> = Vec::new();
    // When the oldest span waiting must go, however often new ones come.
    let mut due = tokio::time::Instant::now();
    loop {
        let message = if batch.is_empty() {
            receiver.recv().await
        } else {
            match tokio::time::timeout_at(due, receiver.recv()).await {
                Ok(message) => message,
                Err(_) => {
                    export(&exporter, std::mem::take(&mut batch), &stats).await;
                    continue;
                }
            }
        };
        match message {
            None => {
                export(&exporter, batch, &stats).await;
                return;
            }
            Some(Message::Spans(spans)) => {
                queued.fetch_sub(spans.len(), Ordering::Relaxed);
                if batch.is_empty() {
                    due = tokio::time::Instant::now() + FLUSH_EVERY;
                }
                batch.extend(spans);
                while batch.len() >= MAX_BATCH_SPANS {
                    let rest = batch.split_off(MAX_BATCH_SPANS);
                    export(&exporter, std::mem::replace(&mut batch, rest), &stats).await;
                }
            }
            Some(Message::Flush(done)) => {
                export(&exporter, std::mem::take(&mut batch), &stats).await;
                let _ = done.send(());
            }
        }
    }
}

async fn export<E: opentelemetry_sdk::trace::SpanExporter>(
    exporter: &E,
    batch: Vec<SpanData>,
    stats: &ExportStats,
) {
    if batch.is_empty() {
        return;
    }
    let count = batch.len() as u64;
    match tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(batch)).await {
        Ok(Ok(())) => {
            stats.exported.fetch_add(count, Ordering::Relaxed);
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, spans = count, "trace export failed; spans dropped");
            stats
                .dropped_export_failed
                .fetch_add(count, Ordering::Relaxed);
        }
        Err(_) => {
            tracing::warn!(spans = count, "trace export timed out; spans dropped");
            stats
                .dropped_export_failed
                .fetch_add(count, Ordering::Relaxed);
        }
    }
}

fn build_exporter(destination: &Destination) -> Result<opentelemetry_otlp::SpanExporter, String> {
    let built = match destination.protocol {
        OtlpProtocol::Grpc => {
            let builder = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_protocol(Protocol::Grpc)
                .with_timeout(EXPORT_TIMEOUT);
            match &destination.endpoint {
                Some(endpoint) => builder.with_endpoint(endpoint.clone()).build(),
                None => builder.build(),
            }
        }
        OtlpProtocol::HttpProtobuf => {
            let client = reqwest::Client::builder()
                .timeout(EXPORT_TIMEOUT)
                .build()
                .map_err(|e| format!("cannot build the OTLP HTTP client: {e}"))?;
            let builder = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_http_client(OtlpHttpClient(client))
                .with_timeout(EXPORT_TIMEOUT);
            match &destination.endpoint {
                // As OTEL_EXPORTER_OTLP_ENDPOINT: the signal's path goes under it.
                Some(endpoint) => builder
                    .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
                    .build(),
                None => builder.build(),
            }
        }
    };
    built.map_err(|e| format!("cannot set up OTLP trace export: {e}"))
}

/// The daemon's own HTTP client for OTLP/HTTP, so the exporter brings no
/// second one.
#[derive(Debug)]
struct OtlpHttpClient(reqwest::Client);

/// A collector's answer is a few bytes; a larger one is not read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpHttpClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let mut response = self.0.execute(request).await?;
        let mut answer = http::Response::builder().status(response.status());
        if let Some(headers) = answer.headers_mut() {
            *headers = response.headers().clone();
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(answer.body(Bytes::from(body))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::error::OTelSdkResult;

    /// Remembers how many spans each export held.
    #[derive(Debug, Clone, Default)]
    struct Recorder(Arc<std::sync::Mutex<Vec<usize>>>);

    impl opentelemetry_sdk::trace::SpanExporter for Recorder {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().push(batch.len());
            Ok(())
        }
    }

    fn span() -> SpanData {
        SpanData {
            span_context: opentelemetry::trace::SpanContext::empty_context(),
            parent_span_id: opentelemetry::trace::SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: opentelemetry::trace::SpanKind::Internal,
            name: "run".into(),
            start_time: std::time::SystemTime::UNIX_EPOCH,
            end_time: std::time::SystemTime::UNIX_EPOCH,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: opentelemetry::trace::Status::Unset,
            instrumentation_scope: Default::default(),
        }
    }

    #[tokio::test]
    async fn spans_go_out_every_second_however_often_runs_come() {
        let recorder = Recorder::default();
        let (sender, receiver) = mpsc::channel(QUEUE_RUNS);
        let stats = Arc::new(ExportStats::default());
        let queued = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(export_loop(
            recorder.clone(),
            receiver,
            queued,
            stats.clone(),
        ));
        // A run every 100 ms for 2.5 s: never a batch of 512 spans, never a
        // pause of a second.
        for _ in 0..25 {
            sender.send(Message::Spans(vec![span()])).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let while_running = recorder.0.lock().unwrap().len();
        assert!(
            while_running >= 2,
            "{while_running} exports in 2.5 s of runs"
        );
        drop(sender);
        task.await.unwrap();
        let exports = recorder.0.lock().unwrap().clone();
        assert_eq!(exports.iter().sum::<usize>(), 25);
        assert_eq!(stats.exported.load(Ordering::Relaxed), 25);
    }
}
