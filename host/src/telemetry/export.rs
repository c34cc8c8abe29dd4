//! The OTLP exporter behind a bounded buffer: runs append their encoded
//! spans under a lock without waking anyone, except the run that starts a
//! batch or fills one; one task sends what gathered every second or every
//! full batch, over OTLP/HTTP (protobuf) or OTLP/gRPC. Whatever does not
//! fit or does not arrive is counted, never retried into the runs' way.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};

use super::otlp::Envelope;
use crate::config::OtlpProtocol;

/// Encoded spans that may wait for export: past this a run's spans are
/// dropped (a run writes a few KiB).
const QUEUE_BYTES: usize = 8 << 20;
/// The size of one export request, within a run: well under the 4 MiB a
/// gRPC server takes by default.
const BATCH_BYTES: usize = 256 << 10;
/// How long spans wait for a fuller batch: runs show up within seconds.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// One export request's bound, unless `OTEL_EXPORTER_OTLP_TIMEOUT` says
/// otherwise; after it the request's spans count as failed.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// The gRPC method every OTLP trace export calls.
const GRPC_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

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
    /// The URL requests go to: `…/v1/traces` over HTTP, the collector's
    /// address over gRPC.
    pub url: String,
    pub protocol: OtlpProtocol,
    /// Sent with every request (`OTEL_EXPORTER_OTLP_HEADERS`).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub timeout: Duration,
}

/// Encoded spans of whole runs, in the order they came.
#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    /// Where each run's spans end in `bytes`, and how many they are.
    runs: Vec<(usize, usize)>,
}

/// Spans waiting for the export task, shared with the runs.
#[derive(Debug, Default)]
struct Waiting {
    pending: Mutex<Pending>,
    /// Told when a batch starts (its second is counted from then) or fills.
    wake: Notify,
}

impl Waiting {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&self) -> Pending {
        std::mem::take(&mut *self.lock())
    }

    fn bytes(&self) -> usize {
        self.lock().bytes.len()
    }
}

/// Where export requests go: a collector, or a test's recorder.
pub trait Sink: Send + Sync + 'static {
    fn send(&self, request: Vec<u8>) -> impl Future<Output = Result<(), String>> + Send;
}

/// The sending side of the export task.
#[derive(Debug)]
pub struct SpanQueue {
    waiting: Arc<Waiting>,
    flushes: mpsc::Sender<oneshot::Sender<()>>,
    pub stats: Arc<ExportStats>,
}

impl SpanQueue {
    /// Connects (lazily) to the destination and starts the export task on
    /// the current runtime.
    pub fn start(destination: &Destination, envelope: Envelope) -> Result<SpanQueue, String> {
        Ok(match destination.protocol {
            OtlpProtocol::HttpProtobuf => SpanQueue::with(HttpSink::new(destination)?, envelope),
            OtlpProtocol::Grpc => SpanQueue::with(GrpcSink::new(destination)?, envelope),
        })
    }

    fn with(sink: impl Sink, envelope: Envelope) -> SpanQueue {
        let waiting = Arc::new(Waiting::default());
        let stats = Arc::new(ExportStats::default());
        let (flushes, flush_requests) = mpsc::channel(16);
        let exporter = Exporter {
            sink,
            envelope,
            stats: stats.clone(),
        };
        tokio::spawn(export_loop(exporter, waiting.clone(), flush_requests));
        SpanQueue {
            waiting,
            flushes,
            stats,
        }
    }

    /// Hands over a run's `count` spans, encoded, or counts them dropped
    /// when the buffer is full.
    pub fn send(&self, spans: &[u8], count: usize) {
        let mut pending = self.waiting.lock();
        let before = pending.bytes.len();
        if before + spans.len() > QUEUE_BYTES {
            drop(pending);
            self.stats
                .dropped_queue_full
                .fetch_add(count as u64, Ordering::Relaxed);
            return;
        }
        pending.bytes.extend_from_slice(spans);
        let after = pending.bytes.len();
        pending.runs.push((after, count));
        drop(pending);
        if before == 0 || (before < BATCH_BYTES && after >= BATCH_BYTES) {
            self.waiting.wake.notify_one();
        }
    }

    /// Exports everything queued so far, waiting at most `within`.
    pub async fn flush(&self, within: Duration) {
        let (done, exported) = oneshot::channel();
        let flush = async {
            if self.flushes.send(done).await.is_ok() {
                let _ = exported.await;
            }
        };
        let _ = tokio::time::timeout(within, flush).await;
    }
}

/// Exports full batches as they fill, and what gathered a second after a
/// batch began; ends when the queue is dropped.
async fn export_loop<S: Sink>(
    exporter: Exporter<S>,
    waiting: Arc<Waiting>,
    mut flush_requests: mpsc::Receiver<oneshot::Sender<()>>,
) {
    // When the batch being gathered leaves: a second after its first span.
    let mut due: Option<tokio::time::Instant> = None;
    loop {
        if waiting.bytes() >= BATCH_BYTES {
            // Full batches leave at once, the rest when the second is up.
            exporter.export(waiting.take()).await;
            continue;
        }
        if due.is_none() && waiting.bytes() > 0 {
            due = Some(tokio::time::Instant::now() + FLUSH_EVERY);
        }
        let timer = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = waiting.wake.notified() => {}
            () = timer => {
                exporter.export(waiting.take()).await;
                due = None;
            }
            request = flush_requests.recv() => {
                exporter.export(waiting.take()).await;
                due = None;
                match request {
                    Some(done) => {
                        let _ = done.send(());
                    }
                    None => return,
                }
            }
        }
    }
}

struct Exporter<S> {
    sink: S,
    envelope: Envelope,
    stats: Arc<ExportStats>,
}

impl<S: Sink> Exporter<S> {
    /// `pending` in requests of about a batch each, split between runs.
    async fn export(&self, pending: Pending) {
        let (mut start, mut spans) = (0, 0);
        for (i, &(end, count)) in pending.runs.iter().enumerate() {
            spans += count;
            let next = pending.runs.get(i + 1).map(|(next, _)| *next);
            if next.is_none_or(|next| next - start > BATCH_BYTES) {
                self.send(&pending.bytes[start..end], spans).await;
                (start, spans) = (end, 0);
            }
        }
    }

    async fn send(&self, spans: &[u8], count: usize) {
        let count = count as u64;
        let request = self.envelope.request(spans);
        match self.sink.send(request).await {
            Ok(()) => {
                self.stats.exported.fetch_add(count, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(error = %e, spans = count, "trace export failed; spans dropped");
                self.stats
                    .dropped_export_failed
                    .fetch_add(count, Ordering::Relaxed);
            }
        }
    }
}

/// OTLP/HTTP with protobuf bodies, on the daemon's own HTTP client.
struct HttpSink {
    client: reqwest::Client,
    url: reqwest::Url,
    headers: http::HeaderMap,
}

/// A collector's answer is a few bytes; a larger one is not read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

impl HttpSink {
    fn new(destination: &Destination) -> Result<HttpSink, String> {
        let client = reqwest::Client::builder()
            .timeout(destination.timeout)
            .build()
            .map_err(|e| format!("cannot build the OTLP HTTP client: {e}"))?;
        let url = reqwest::Url::parse(&destination.url)
            .map_err(|e| format!("OTLP endpoint `{}`: {e}", destination.url))?;
        let mut headers: http::HeaderMap = destination.headers.iter().cloned().collect();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-protobuf"),
        );
        Ok(HttpSink {
            client,
            url,
            headers,
        })
    }
}

impl Sink for HttpSink {
    async fn send(&self, request: Vec<u8>) -> Result<(), String> {
        let mut response = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(request)
            .send()
            .await
            // The URL may hold credentials: the error leaves it out.
            .map_err(|e| format!("{:#}", e.without_url()))?;
        let status = response.status();
        // The answer is read (up to a bound) so that the connection is kept.
        let mut read = 0;
        while let Ok(Some(chunk)) = response.chunk().await {
            read += chunk.len();
            if read > MAX_RESPONSE_BYTES {
                break;
            }
        }
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the collector answered {status}"))
        }
    }
}

/// OTLP/gRPC: the encoded request goes as it is, under tonic's framing.
struct GrpcSink {
    grpc: tonic::client::Grpc<tonic::transport::Channel>,
    metadata: tonic::metadata::MetadataMap,
}

impl GrpcSink {
    fn new(destination: &Destination) -> Result<GrpcSink, String> {
        let invalid =
            |e: &dyn std::fmt::Display| format!("OTLP endpoint `{}`: {e}", destination.url);
        let mut endpoint = tonic::transport::Endpoint::from_shared(destination.url.clone())
            .map_err(|e| invalid(&e))?
            .timeout(destination.timeout)
            .connect_timeout(destination.timeout);
        if destination.url.starts_with("https://") {
            endpoint = endpoint
                .tls_config(tonic::transport::ClientTlsConfig::new().with_webpki_roots())
                .map_err(|e| invalid(&e))?;
        }
        let headers: http::HeaderMap = destination.headers.iter().cloned().collect();
        Ok(GrpcSink {
            grpc: tonic::client::Grpc::new(endpoint.connect_lazy()),
            metadata: tonic::metadata::MetadataMap::from_headers(headers),
        })
    }
}

impl Sink for GrpcSink {
    async fn send(&self, request: Vec<u8>) -> Result<(), String> {
        let mut grpc = self.grpc.clone();
        grpc.ready()
            .await
            .map_err(|e| format!("the collector is not reachable: {e}"))?;
        let mut request = tonic::Request::new(request);
        *request.metadata_mut() = self.metadata.clone();
        grpc.unary(
            request,
            http::uri::PathAndQuery::from_static(GRPC_EXPORT),
            Encoded,
        )
        .await
        .map(drop)
        .map_err(|status| format!("{:?}: {}", status.code(), status.message()))
    }
}

/// A codec for messages already encoded: sends the bytes, ignores the
/// answer's (an `ExportTraceServiceResponse`, partial success at most).
#[derive(Debug, Clone, Copy)]
struct Encoded;

impl tonic::codec::Codec for Encoded {
    type Encode = Vec<u8>;
    type Decode = ();
    type Encoder = Encoded;
    type Decoder = Encoded;

    fn encoder(&mut self) -> Encoded {
        Encoded
    }

    fn decoder(&mut self) -> Encoded {
        Encoded
    }
}

impl tonic::codec::Encoder for Encoded {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut as _;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Encoded {
    type Item = ();
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<()>, tonic::Status> {
        use bytes::Buf as _;
        src.advance(src.remaining());
        Ok(Some(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message as _;

    /// Remembers how many spans each request held.
    #[derive(Debug, Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<usize>>>);

    impl Sink for Recorder {
        async fn send(&self, request: Vec<u8>) -> Result<(), String> {
            let request =
                ExportTraceServiceRequest::decode(request.as_slice()).map_err(|e| e.to_string())?;
            let spans = request.resource_spans[0].scope_spans[0].spans.len();
            self.0.lock().unwrap().push(spans);
            Ok(())
        }
    }

    fn envelope() -> Envelope {
        Envelope::new(&[], "checkhost", "test")
    }

    /// A run of `spans` spans, encoded.
    fn run(spans: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for _ in 0..spans {
            super::super::otlp::Span {
                trace_id: [1; 16],
                id: [2; 8],
                parent: None,
                name: "x".repeat(100).into(),
                kind: super::super::otlp::Kind::Internal,
                start_ns: 0,
                end_ns: 0,
                attributes: Vec::new(),
                status: super::super::otlp::Status::Unset,
            }
            .put(&mut bytes);
        }
        bytes
    }

    #[tokio::test]
    async fn spans_go_out_every_second_however_often_runs_come() {
        let recorder = Recorder::default();
        let queue = SpanQueue::with(recorder.clone(), envelope());
        // A run every 100 ms for 2.5 s: never a full batch, never a pause
        // of a second.
        for _ in 0..25 {
            queue.send(&run(2), 2);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let while_running = recorder.0.lock().unwrap().len();
        assert!(
            while_running >= 2,
            "{while_running} exports in 2.5 s of runs"
        );
        queue.flush(Duration::from_secs(5)).await;
        let exports = recorder.0.lock().unwrap().clone();
        assert_eq!(exports.iter().sum::<usize>(), 50);
        assert_eq!(queue.stats.exported.load(Ordering::Relaxed), 50);
    }

    #[tokio::test]
    async fn full_batches_leave_at_once_split_between_runs_and_an_overfull_queue_drops() {
        let recorder = Recorder::default();
        let queue = SpanQueue::with(recorder.clone(), envelope());
        let one = run(10);
        let runs = BATCH_BYTES / one.len() + 10;
        for _ in 0..runs {
            queue.send(&one, 10);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let sent = recorder.0.lock().unwrap().clone();
        assert_eq!(
            sent.iter().sum::<usize>(),
            runs * 10,
            "the full batch left before its second was up: {sent:?}"
        );
        assert!(
            sent.len() == 2 && sent.iter().all(|spans| spans % 10 == 0),
            "two requests, of whole runs: {sent:?}"
        );
        let huge = vec![0; QUEUE_BYTES + 1];
        queue.send(&huge, 7);
        assert_eq!(queue.stats.dropped_queue_full.load(Ordering::Relaxed), 7);
        queue.flush(Duration::from_secs(5)).await;
        assert_eq!(
            queue.stats.exported.load(Ordering::Relaxed),
            (runs * 10) as u64
        );
    }
}
