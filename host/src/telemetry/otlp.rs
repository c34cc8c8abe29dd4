//! OTLP trace messages written as protobuf straight from a run's instants.
//!
//! Why by hand: tracing may cost a run at most 5 % (issue 26), and building
//! the SDK's span structs, then the generated proto structs from them, made
//! every attribute key and value an owned string twice over: 8–10 % of a
//! run. Here a run's spans are written once, into bytes, with prost's wire
//! primitives; the field numbers are those of `opentelemetry/proto` (trace,
//! common, resource, collector/trace v1), and the tests decode the output
//! with `opentelemetry-proto`'s generated messages.

use std::borrow::Cow;

use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

/// `Span.SpanKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Internal = 1,
    Client = 3,
}

/// `Status`: unset, ok, or an error with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status<'a> {
    Unset,
    Ok,
    Error(Cow<'a, str>),
}

/// An attribute's value (`AnyValue`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Double(f64),
    Strs(Vec<Cow<'a, str>>),
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Value<'a> {
        Value::Str(Cow::Borrowed(s))
    }
}

impl From<String> for Value<'_> {
    fn from(s: String) -> Self {
        Value::Str(Cow::Owned(s))
    }
}

impl<'a> From<Cow<'a, str>> for Value<'a> {
    fn from(s: Cow<'a, str>) -> Value<'a> {
        Value::Str(s)
    }
}

impl From<i64> for Value<'_> {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}

pub type Attribute<'a> = (&'static str, Value<'a>);

/// One span, borrowed from the run it describes.
#[derive(Debug, Clone)]
pub struct Span<'a> {
    pub trace_id: [u8; 16],
    pub id: [u8; 8],
    /// `None`: the trace's root.
    pub parent: Option<[u8; 8]>,
    pub name: Cow<'a, str>,
    pub kind: Kind,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: Vec<Attribute<'a>>,
    pub status: Status<'a>,
}

/// `SpanFlags`: sampled, and "whether the parent is remote is known" (it
/// never is: a run's trace starts at the run).
const SPAN_FLAGS: u32 = 0x01 | 0x100;

fn delimited_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn put_header(tag: u32, len: usize, buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

fn put_bytes(tag: u32, bytes: &[u8], buf: &mut Vec<u8>) {
    put_header(tag, bytes.len(), buf);
    buf.extend_from_slice(bytes);
}

impl Value<'_> {
    fn len(&self) -> usize {
        match self {
            Value::Str(s) => delimited_len(1, s.len()),
            Value::Int(n) => key_len(3) + encoded_len_varint(*n as u64),
            Value::Double(_) => key_len(4) + 8,
            Value::Strs(items) => delimited_len(5, strs_len(items)),
        }
    }

    fn put(&self, buf: &mut Vec<u8>) {
        match self {
            Value::Str(s) => put_bytes(1, s.as_bytes(), buf),
            Value::Int(n) => {
                encode_key(3, WireType::Varint, buf);
                // int64 is sent as its two's complement.
                encode_varint(*n as u64, buf);
            }
            Value::Double(x) => {
                encode_key(4, WireType::SixtyFourBit, buf);
                buf.extend_from_slice(&x.to_le_bytes());
            }
            Value::Strs(items) => {
                put_header(5, strs_len(items), buf);
                for item in items {
                    put_header(1, delimited_len(1, item.len()), buf);
                    put_bytes(1, item.as_bytes(), buf);
                }
            }
        }
    }
}

/// The `ArrayValue` of strings.
fn strs_len(items: &[Cow<'_, str>]) -> usize {
    items
        .iter()
        .map(|s| delimited_len(1, delimited_len(1, s.len())))
        .sum()
}

/// A `KeyValue` message's length.
fn attribute_len((key, value): &Attribute<'_>) -> usize {
    delimited_len(1, key.len()) + delimited_len(2, value.len())
}

/// `KeyValue`s as field `tag` of the message they belong to.
fn put_attributes(tag: u32, attributes: &[Attribute<'_>], buf: &mut Vec<u8>) {
    for attribute in attributes {
        put_header(tag, attribute_len(attribute), buf);
        put_bytes(1, attribute.0.as_bytes(), buf);
        put_header(2, attribute.1.len(), buf);
        attribute.1.put(buf);
    }
}

fn attributes_len(tag: u32, attributes: &[Attribute<'_>]) -> usize {
    attributes
        .iter()
        .map(|a| delimited_len(tag, attribute_len(a)))
        .sum()
}

impl Status<'_> {
    fn parts(&self) -> (&str, u64) {
        match self {
            Status::Unset => ("", 0),
            Status::Ok => ("", 1),
            Status::Error(message) => (message, 2),
        }
    }

    fn len(&self) -> usize {
        let (message, code) = self.parts();
        let message = if message.is_empty() {
            0
        } else {
            delimited_len(2, message.len())
        };
        let code = if code == 0 {
            0
        } else {
            key_len(3) + encoded_len_varint(code)
        };
        message + code
    }

    fn put(&self, buf: &mut Vec<u8>) {
        let (message, code) = self.parts();
        if !message.is_empty() {
            put_bytes(2, message.as_bytes(), buf);
        }
        if code != 0 {
            encode_key(3, WireType::Varint, buf);
            encode_varint(code, buf);
        }
    }
}

impl Span<'_> {
    fn len(&self) -> usize {
        delimited_len(1, 16)
            + delimited_len(2, 8)
            + self.parent.map_or(0, |_| delimited_len(4, 8))
            + delimited_len(5, self.name.len())
            + key_len(6)
            + 1
            + 2 * (key_len(7) + 8)
            + attributes_len(9, &self.attributes)
            + delimited_len(15, self.status.len())
            + key_len(16)
            + 4
    }

    /// Appends this span as an entry of `ScopeSpans.spans`.
    pub fn put(&self, buf: &mut Vec<u8>) {
        put_header(2, self.len(), buf);
        put_bytes(1, &self.trace_id, buf);
        put_bytes(2, &self.id, buf);
        if let Some(parent) = &self.parent {
            put_bytes(4, parent, buf);
        }
        put_bytes(5, self.name.as_bytes(), buf);
        encode_key(6, WireType::Varint, buf);
        encode_varint(self.kind as u64, buf);
        encode_key(7, WireType::SixtyFourBit, buf);
        buf.extend_from_slice(&self.start_ns.to_le_bytes());
        encode_key(8, WireType::SixtyFourBit, buf);
        buf.extend_from_slice(&self.end_ns.to_le_bytes());
        put_attributes(9, &self.attributes, buf);
        put_header(15, self.status.len(), buf);
        self.status.put(buf);
        encode_key(16, WireType::ThirtyTwoBit, buf);
        buf.extend_from_slice(&SPAN_FLAGS.to_le_bytes());
    }
}

/// What every request says of its sender: the `Resource` and the
/// `InstrumentationScope`, encoded once.
#[derive(Debug, Clone)]
pub struct Envelope {
    resource: Vec<u8>,
    scope: Vec<u8>,
}

impl Envelope {
    pub fn new(resource: &[Attribute<'_>], scope_name: &str, scope_version: &str) -> Envelope {
        let mut encoded = Vec::new();
        put_attributes(1, resource, &mut encoded);
        let mut scope = Vec::new();
        put_bytes(1, scope_name.as_bytes(), &mut scope);
        put_bytes(2, scope_version.as_bytes(), &mut scope);
        Envelope {
            resource: encoded,
            scope,
        }
    }

    /// An `ExportTraceServiceRequest` around spans written by
    /// [`Span::put`].
    pub fn request(&self, spans: &[u8]) -> Vec<u8> {
        let scope_spans = delimited_len(1, self.scope.len()) + spans.len();
        let resource_spans = delimited_len(1, self.resource.len()) + delimited_len(2, scope_spans);
        let mut buf = Vec::with_capacity(delimited_len(1, resource_spans));
        put_header(1, resource_spans, &mut buf);
        put_bytes(1, &self.resource, &mut buf);
        put_header(2, scope_spans, &mut buf);
        put_bytes(1, &self.scope, &mut buf);
        buf.extend_from_slice(spans);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value;
    use prost::Message as _;

    fn span(parent: Option<[u8; 8]>, status: Status<'static>) -> Span<'static> {
        Span {
            trace_id: [7; 16],
            id: [3; 8],
            parent,
            name: "run api".into(),
            kind: Kind::Client,
            start_ns: 1_700_000_000_123_456_789,
            end_ns: 1_700_000_000_223_456_789,
            attributes: vec![
                ("checkhost.system", "shop".into()),
                ("checkhost.run_id", Value::Int(-42)),
                ("checkhost.timings.wait_ms", Value::Double(1.5)),
                ("empty", "".into()),
                (
                    "checkhost.collectors",
                    Value::Strs(vec!["request".into(), "".into(), "ünïcode".into()]),
                ),
            ],
            status,
        }
    }

    #[test]
    fn what_is_written_decodes_as_the_generated_messages_say() {
        let envelope = Envelope::new(
            &[("service.name", "checkhost".into())],
            "checkhost",
            "1.2.3",
        );
        let mut spans = Vec::new();
        span(None, Status::Ok).put(&mut spans);
        span(Some([9; 8]), Status::Error("refused".into())).put(&mut spans);
        span(Some([9; 8]), Status::Unset).put(&mut spans);
        let request = ExportTraceServiceRequest::decode(envelope.request(&spans).as_slice())
            .expect("a valid ExportTraceServiceRequest");
        let [resource_spans] = request.resource_spans.as_slice() else {
            panic!("{request:?}")
        };
        let resource = resource_spans.resource.as_ref().unwrap();
        assert_eq!(resource.attributes[0].key, "service.name");
        let [scope_spans] = resource_spans.scope_spans.as_slice() else {
            panic!("{request:?}")
        };
        let scope = scope_spans.scope.as_ref().unwrap();
        assert_eq!(
            (scope.name.as_str(), scope.version.as_str()),
            ("checkhost", "1.2.3")
        );
        let [root, failed, unset] = scope_spans.spans.as_slice() else {
            panic!("{request:?}")
        };
        assert_eq!(root.trace_id, [7; 16]);
        assert_eq!(root.span_id, [3; 8]);
        assert!(root.parent_span_id.is_empty());
        assert_eq!(failed.parent_span_id, [9; 8]);
        assert_eq!(root.name, "run api");
        assert_eq!(root.kind, 3);
        assert_eq!(root.start_time_unix_nano, 1_700_000_000_123_456_789);
        assert_eq!(root.end_time_unix_nano, 1_700_000_000_223_456_789);
        assert_eq!(root.flags, 0x101);
        let value = |key: &str| {
            root.attributes
                .iter()
                .find(|a| a.key == key)
                .and_then(|a| a.value.clone()?.value)
        };
        assert_eq!(
            value("checkhost.system"),
            Some(any_value::Value::StringValue("shop".into()))
        );
        assert_eq!(
            value("checkhost.run_id"),
            Some(any_value::Value::IntValue(-42))
        );
        assert_eq!(
            value("checkhost.timings.wait_ms"),
            Some(any_value::Value::DoubleValue(1.5))
        );
        assert_eq!(
            value("empty"),
            Some(any_value::Value::StringValue(String::new()))
        );
        let Some(any_value::Value::ArrayValue(array)) = value("checkhost.collectors") else {
            panic!("{root:?}")
        };
        let items: Vec<_> = array.values.iter().map(|v| v.value.clone()).collect();
        assert_eq!(
            items,
            ["request", "", "ünïcode"]
                .map(|s| Some(any_value::Value::StringValue(s.into())))
                .to_vec()
        );
        let status = |s: &opentelemetry_proto::tonic::trace::v1::Span| {
            let status = s.status.clone().expect("a status");
            (status.code, status.message)
        };
        assert_eq!(status(root), (1, String::new()));
        assert_eq!(status(failed), (2, "refused".into()));
        assert_eq!(status(unset), (0, String::new()));
    }

    #[test]
    fn an_empty_request_is_still_a_message() {
        let envelope = Envelope::new(&[], "checkhost", "");
        let request = ExportTraceServiceRequest::decode(envelope.request(&[]).as_slice()).unwrap();
        assert!(request.resource_spans[0].scope_spans[0].spans.is_empty());
    }
}
