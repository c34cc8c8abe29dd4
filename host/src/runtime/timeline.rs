//! When each phase of a traced run began and ended, and the HTTP requests
//! it sent: recorded into the run's journal only when the run is traced, so
//! an untraced run pays one branch per phase.

use std::time::Instant;

use super::bindings::Timings;

/// The trace a run belongs to, chosen before it starts so that its HTTP
/// requests can carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    /// The head sampling decision, sent as the `traceparent` flag.
    pub sampled: bool,
    /// Whether the run's HTTP requests carry a `traceparent` header.
    pub propagate: bool,
}

impl TraceParent {
    /// The W3C `traceparent` header of a request sent as span `span_id`.
    pub fn header(&self, span_id: [u8; 8]) -> String {
        format!(
            "00-{}-{}-{}",
            hex::encode(self.trace_id),
            hex::encode(span_id),
            if self.sampled { "01" } else { "00" }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseKind {
    Instantiate,
    Connect,
    Collect,
}

/// One phase of one guest.
#[derive(Debug, Clone)]
pub struct Phase {
    pub kind: PhaseKind,
    pub plugin: String,
    /// The collector's place among the run's collectors; `None`: the strategy.
    pub place: Option<usize>,
    pub start: Instant,
    pub end: Instant,
}

/// Requests a run records at most; the rest are only counted, so a guest
/// that floods its target cannot make the host hold a span per request.
pub const MAX_HTTP_CALLS: usize = 256;

/// One HTTP request the run's guests sent through `wasi:http`, until its
/// response headers arrived or it failed.
#[derive(Debug, Clone)]
pub struct HttpCall {
    pub span_id: [u8; 8],
    /// The place of the collector that sent it, itself or through the
    /// strategy; `None`: the strategy on its own.
    pub caller: Option<usize>,
    pub method: String,
    pub scheme: String,
    pub host: String,
    pub port: u16,
    /// The path without its query, which may hold credentials.
    pub path: String,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub start: Instant,
    pub end: Instant,
}

/// What a traced run recorded.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// When the run left the queue and its deadline started.
    pub admitted: Option<Instant>,
    pub phases: Vec<Phase>,
    pub http: Vec<HttpCall>,
    /// Requests beyond `MAX_HTTP_CALLS`, not recorded.
    pub http_dropped: usize,
    /// The strategy's own account of its first answer (DNS, connect, TLS,
    /// wait): the connection's set-up, for a strategy that connects then.
    pub connect_timings: Option<Timings>,
    /// The place of the collector whose transport call is in flight;
    /// transport calls are serialised, so there is at most one.
    pub(crate) caller: Option<usize>,
}

impl Timeline {
    pub fn phase(&mut self, kind: PhaseKind, plugin: &str, place: Option<usize>, start: Instant) {
        self.phases.push(Phase {
            kind,
            plugin: plugin.to_string(),
            place,
            start,
            end: Instant::now(),
        });
    }

    pub fn request(&mut self, call: HttpCall) {
        if self.http.len() < MAX_HTTP_CALLS {
            self.http.push(call);
        } else {
            self.http_dropped += 1;
        }
    }
}

/// A fresh random span id, never all zero (which W3C reserves).
pub fn new_span_id() -> [u8; 8] {
    fastrand::u64(1..).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_beyond_the_cap_are_only_counted() {
        let mut timeline = Timeline::default();
        let now = Instant::now();
        for _ in 0..MAX_HTTP_CALLS + 10 {
            timeline.request(HttpCall {
                span_id: new_span_id(),
                caller: None,
                method: "GET".into(),
                scheme: "http".into(),
                host: "h".into(),
                port: 80,
                path: "/".into(),
                status: None,
                error: None,
                start: now,
                end: now,
            });
        }
        assert_eq!(
            (timeline.http.len(), timeline.http_dropped),
            (MAX_HTTP_CALLS, 10)
        );
    }

    #[test]
    fn traceparent_follows_w3c_layout() {
        let parent = TraceParent {
            trace_id: [0xab; 16],
            sampled: true,
            propagate: true,
        };
        let header = parent.header([0x01; 8]);
        assert_eq!(
            header,
            "00-abababababababababababababababab-0101010101010101-01"
        );
        let unsampled = TraceParent {
            sampled: false,
            ..parent
        };
        assert!(unsampled.header([0x01; 8]).ends_with("-00"));
    }
}
