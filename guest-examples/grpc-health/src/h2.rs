//! HTTP/2 (RFC 9113) on one cleartext connection with prior knowledge
//! (h2c): the client preface and SETTINGS, then one request at a time on a
//! fresh stream, reading frames until that stream ends.

use std::io::{BufReader, ErrorKind, Read, Write};
use std::time::Instant;

use checkhost_sdk::TransportError;
use checkhost_sdk::net::{preview, receive, send};

use crate::hpack;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// SETTINGS_MAX_FRAME_SIZE's default: this client never raises it, so a
/// larger frame from the server is an error.
const MAX_FRAME_SIZE: usize = 16_384;
/// SETTINGS_HEADER_TABLE_SIZE's default, which this client keeps.
const HEADER_TABLE_SIZE: usize = 4_096;
/// A header block (HEADERS and its CONTINUATIONs) larger than this is refused.
const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// All the frames one call may read, on any stream: a health answer is a
/// few hundred bytes.
const MAX_CALL_BYTES: usize = 1024 * 1024;
const MAX_STREAM_ID: u32 = 0x7fff_ffff;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PUSH_PROMISE: u8 = 0x5;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

const SETTINGS_ENABLE_PUSH: u16 = 0x2;
const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;

struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

/// What one request's stream carried.
#[derive(Debug, Default, PartialEq)]
pub struct Reply {
    pub headers: Vec<(String, String)>,
    pub trailers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// A field of the trailers, else of the headers (a trailers-only
    /// response carries everything in its one header block).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.trailers
            .iter()
            .chain(&self.headers)
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

pub struct Connection<S> {
    io: BufReader<S>,
    decoder: hpack::Decoder,
    next_stream: u32,
    peer_max_frame: usize,
    /// Why the server said GOAWAY: no new stream may start.
    closing: Option<String>,
}

impl<S: Read + Write> Connection<S> {
    /// Sends the preface and SETTINGS, and reads the server's SETTINGS: a
    /// peer that answers anything else does not speak HTTP/2.
    pub fn handshake(stream: S) -> Result<Self, TransportError> {
        let mut conn = Connection {
            io: BufReader::new(stream),
            decoder: hpack::Decoder::new(HEADER_TABLE_SIZE),
            next_stream: 1,
            peer_max_frame: MAX_FRAME_SIZE,
            closing: None,
        };
        let mut hello = PREFACE.to_vec();
        // No server push: a health check has no use for promised streams.
        let mut settings = SETTINGS_ENABLE_PUSH.to_be_bytes().to_vec();
        settings.extend_from_slice(&0u32.to_be_bytes());
        frame(&mut hello, SETTINGS, 0, 0, &settings);
        send(conn.io.get_mut(), &hello, "the HTTP/2 preface")?;
        conn.server_preface()?;
        Ok(conn)
    }

    fn server_preface(&mut self) -> Result<(), TransportError> {
        let mut head = [0u8; 9];
        let mut got = 0;
        while got < head.len() {
            match self.io.read(&mut head[got..]) {
                Ok(0) => return Err(not_http2(&head[..got])),
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(TransportError::from_io("read the server's SETTINGS", &e)),
            }
        }
        let (len, kind, flags, stream) = parse_head(&head);
        if kind != SETTINGS
            || flags & ACK != 0
            || stream != 0
            || !len.is_multiple_of(6)
            || len > MAX_FRAME_SIZE
        {
            let mut seen = head.to_vec();
            seen.extend_from_slice(self.io.buffer());
            return Err(not_http2(&seen));
        }
        let mut payload = vec![0; len];
        receive(&mut self.io, &mut payload, "the server's SETTINGS")?;
        self.settings(&Frame {
            kind,
            flags,
            stream,
            payload,
        })
    }

    /// Sends one request (HEADERS, then `body` in one DATA frame that ends
    /// the stream) on a new stream and reads until the server ends it.
    pub fn call(
        &mut self,
        headers: &[(&str, &str)],
        body: &[u8],
        deadline: Instant,
    ) -> Result<Reply, TransportError> {
        if let Some(reason) = &self.closing {
            return Err(protocol(reason.clone()));
        }
        let id = self.next_stream;
        if id > MAX_STREAM_ID {
            return Err(protocol("no stream ids left on this connection"));
        }
        self.next_stream = id + 2;
        let block = hpack::encode(headers);
        let mut out = Vec::new();
        let mut chunks = block.chunks(self.peer_max_frame).peekable();
        let mut kind = HEADERS;
        while let Some(chunk) = chunks.next() {
            let flags = if chunks.peek().is_none() {
                END_HEADERS
            } else {
                0
            };
            frame(&mut out, kind, flags, id, chunk);
            kind = CONTINUATION;
        }
        frame(&mut out, DATA, END_STREAM, id, body);
        send(self.io.get_mut(), &out, "the request")?;
        let reply = self.read_reply(id, deadline);
        if let Err(error) = &reply
            && self.closing.is_none()
        {
            // A read may have stopped inside a frame or a header block:
            // the framing and the header table can no longer be trusted.
            self.closing = Some(format!(
                "the connection failed earlier: {}",
                error.message()
            ));
        }
        reply
    }

    fn read_reply(&mut self, id: u32, deadline: Instant) -> Result<Reply, TransportError> {
        let mut reply = Reply::default();
        let mut got_headers = false;
        let mut budget = MAX_CALL_BYTES;
        loop {
            if Instant::now() > deadline {
                return Err(TransportError::Timeout(format!(
                    "stream {id} did not end in time"
                )));
            }
            let frame = self.read_frame(&mut budget)?;
            let ours = frame.stream == id;
            let ends = frame.flags & END_STREAM != 0;
            match frame.kind {
                DATA => {
                    if frame.stream == 0 {
                        return Err(protocol("a DATA frame on stream 0"));
                    }
                    if !frame.payload.is_empty() {
                        // Keeps the connection's receive window open for the
                        // calls to come; a stream's own window outlasts any
                        // health answer.
                        let credit = (frame.payload.len() as u32).to_be_bytes();
                        self.write_frame(WINDOW_UPDATE, 0, 0, &credit)?;
                    }
                    if ours {
                        if !got_headers {
                            return Err(protocol("a DATA frame before the response headers"));
                        }
                        reply.body.extend_from_slice(unpad(&frame)?);
                        if ends {
                            return Ok(reply);
                        }
                    }
                }
                HEADERS => {
                    let fields = self.header_block(frame, &mut budget)?;
                    if ours {
                        if !got_headers {
                            reply.headers = fields;
                            got_headers = true;
                        } else if ends {
                            reply.trailers = fields;
                        } else {
                            return Err(protocol(
                                "a second header block that does not end the stream",
                            ));
                        }
                        if ends {
                            return Ok(reply);
                        }
                    }
                }
                RST_STREAM if ours => {
                    return Err(protocol(format!(
                        "the server reset the stream: {}",
                        error_name(&frame.payload)
                    )));
                }
                SETTINGS => self.settings(&frame)?,
                PUSH_PROMISE => return Err(protocol("PUSH_PROMISE although push is disabled")),
                PING if frame.flags & ACK == 0 => {
                    if frame.payload.len() != 8 {
                        return Err(protocol("a PING frame that is not 8 bytes long"));
                    }
                    self.write_frame(PING, ACK, 0, &frame.payload)?;
                }
                GOAWAY => {
                    let (last, rest) = frame
                        .payload
                        .split_first_chunk::<4>()
                        .ok_or_else(|| protocol("a truncated GOAWAY frame"))?;
                    let last = u32::from_be_bytes(*last) & MAX_STREAM_ID;
                    let (code, debug) = rest.split_at(rest.len().min(4));
                    let mut reason = format!(
                        "the server is closing the connection: GOAWAY {}",
                        error_name(code)
                    );
                    if !debug.is_empty() {
                        let debug = String::from_utf8_lossy(debug);
                        reason.push_str(&format!(
                            " {:?}",
                            debug.chars().take(200).collect::<String>()
                        ));
                    }
                    self.closing = Some(reason.clone());
                    // A graceful GOAWAY still completes the streams it covers.
                    if code != [0; 4] || last < id {
                        return Err(protocol(reason));
                    }
                }
                CONTINUATION => return Err(protocol("a CONTINUATION frame without HEADERS")),
                // PRIORITY, WINDOW_UPDATE (this client's requests are far
                // below any window), PING acks, other streams' RST_STREAM
                // and extension frames need nothing.
                _ => {}
            }
        }
    }

    /// A whole header block, decoded: HEADERS without padding and priority,
    /// plus the CONTINUATION frames that must follow it directly.
    fn header_block(
        &mut self,
        frame: Frame,
        budget: &mut usize,
    ) -> Result<Vec<(String, String)>, TransportError> {
        let mut fragment = unpad(&frame)?;
        if frame.flags & PRIORITY != 0 {
            fragment = fragment
                .get(5..)
                .ok_or_else(|| protocol("a HEADERS frame too short for its priority"))?;
        }
        let mut block = fragment.to_vec();
        let mut flags = frame.flags;
        while flags & END_HEADERS == 0 {
            let next = self.read_frame(budget)?;
            if next.kind != CONTINUATION || next.stream != frame.stream {
                return Err(protocol(format!(
                    "a frame of type {} where a CONTINUATION of stream {} belongs",
                    next.kind, frame.stream
                )));
            }
            block.extend_from_slice(&next.payload);
            if block.len() > MAX_HEADER_BLOCK {
                return Err(protocol(format!(
                    "a header block larger than {} KiB",
                    MAX_HEADER_BLOCK / 1024
                )));
            }
            flags = next.flags;
        }
        self.decoder
            .decode(&block)
            .map_err(|e| protocol(format!("cannot decode the response headers (HPACK): {e}")))
    }

    fn settings(&mut self, frame: &Frame) -> Result<(), TransportError> {
        if frame.stream != 0 || !frame.payload.len().is_multiple_of(6) {
            return Err(protocol("a malformed SETTINGS frame"));
        }
        if frame.flags & ACK != 0 {
            return Ok(());
        }
        for setting in frame.payload.chunks_exact(6) {
            let Ok([i0, i1, v0, v1, v2, v3]) = <[u8; 6]>::try_from(setting) else {
                continue;
            };
            let value = u32::from_be_bytes([v0, v1, v2, v3]) as usize;
            if u16::from_be_bytes([i0, i1]) == SETTINGS_MAX_FRAME_SIZE {
                if !(MAX_FRAME_SIZE..=0xff_ffff).contains(&value) {
                    return Err(protocol(format!("SETTINGS_MAX_FRAME_SIZE {value}")));
                }
                self.peer_max_frame = value;
            }
        }
        self.write_frame(SETTINGS, ACK, 0, &[])
    }

    fn read_frame(&mut self, budget: &mut usize) -> Result<Frame, TransportError> {
        let mut head = [0u8; 9];
        receive(&mut self.io, &mut head, "an HTTP/2 frame")?;
        let (len, kind, flags, stream) = parse_head(&head);
        if len > MAX_FRAME_SIZE {
            return Err(protocol(format!(
                "a {len}-byte frame, above the {MAX_FRAME_SIZE}-byte maximum"
            )));
        }
        *budget = budget.checked_sub(head.len() + len).ok_or_else(|| {
            protocol(format!(
                "more than {} KiB for one health check",
                MAX_CALL_BYTES / 1024
            ))
        })?;
        let mut payload = vec![0; len];
        receive(&mut self.io, &mut payload, "an HTTP/2 frame")?;
        Ok(Frame {
            kind,
            flags,
            stream,
            payload,
        })
    }

    fn write_frame(
        &mut self,
        kind: u8,
        flags: u8,
        stream: u32,
        payload: &[u8],
    ) -> Result<(), TransportError> {
        let mut out = Vec::with_capacity(9 + payload.len());
        frame(&mut out, kind, flags, stream, payload);
        send(self.io.get_mut(), &out, "an HTTP/2 frame")
    }
}

/// Length, type, flags and stream of a frame header.
fn parse_head(head: &[u8; 9]) -> (usize, u8, u8, u32) {
    let [l0, l1, l2, kind, flags, s0, s1, s2, s3] = *head;
    (
        u32::from_be_bytes([0, l0, l1, l2]) as usize,
        kind,
        flags,
        u32::from_be_bytes([s0, s1, s2, s3]) & MAX_STREAM_ID,
    )
}

/// Appends one frame; callers keep payloads within the peer's frame size.
fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let [_, l0, l1, l2] = (payload.len() as u32).to_be_bytes();
    out.extend_from_slice(&[l0, l1, l2, kind, flags]);
    out.extend_from_slice(&(stream & MAX_STREAM_ID).to_be_bytes());
    out.extend_from_slice(payload);
}

/// A DATA or HEADERS payload without its padding.
fn unpad(frame: &Frame) -> Result<&[u8], TransportError> {
    if frame.flags & PADDED == 0 {
        return Ok(&frame.payload);
    }
    let (&pad, rest) = frame
        .payload
        .split_first()
        .ok_or_else(|| protocol("a padded frame without a pad length"))?;
    rest.len()
        .checked_sub(usize::from(pad))
        .and_then(|end| rest.get(..end))
        .ok_or_else(|| protocol("padding longer than its frame"))
}

/// An RST_STREAM or GOAWAY error code (4 bytes) by name.
fn error_name(code: &[u8]) -> String {
    const NAMES: [&str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    let Some(code) = code.first_chunk::<4>().map(|c| u32::from_be_bytes(*c)) else {
        return "without an error code".into();
    };
    match NAMES.get(code as usize) {
        Some(name) => format!("{name} (error code {code})"),
        None => format!("error code {code}"),
    }
}

fn protocol(message: impl Into<String>) -> TransportError {
    TransportError::Protocol(message.into())
}

/// The error for a peer whose first bytes are not a SETTINGS frame, with
/// the start of what it sent (an HTTP/1.1 status line, a banner…).
fn not_http2(seen: &[u8]) -> TransportError {
    if seen.is_empty() {
        return protocol(
            "not an HTTP/2 (gRPC) server: it closed the connection without sending SETTINGS",
        );
    }
    protocol(format!(
        "not an HTTP/2 (gRPC) server: expected a SETTINGS frame, got {}",
        preview(seen)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::time::Duration;

    /// A server that answers with fixed bytes and records what it is sent.
    struct Script {
        input: Cursor<Vec<u8>>,
        sent: Vec<u8>,
    }

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl Write for Script {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.sent.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn server(frames: &[(u8, u8, u32, Vec<u8>)]) -> Script {
        let mut input = Vec::new();
        for (kind, flags, stream, payload) in frames {
            frame(&mut input, *kind, *flags, *stream, payload);
        }
        Script {
            input: Cursor::new(input),
            sent: Vec::new(),
        }
    }

    fn settings() -> (u8, u8, u32, Vec<u8>) {
        // SETTINGS_MAX_CONCURRENT_STREAMS 100, as servers like to say.
        (SETTINGS, 0, 0, vec![0, 3, 0, 0, 0, 100])
    }

    fn deadline() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    /// The frames (type, flags, stream, payload) in what the client sent
    /// after its preface.
    fn sent_frames(sent: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
        let mut rest = &sent[PREFACE.len()..];
        let mut frames = Vec::new();
        while !rest.is_empty() {
            let (len, kind, flags, stream) = parse_head(rest[..9].try_into().unwrap());
            frames.push((kind, flags, stream, rest[9..9 + len].to_vec()));
            rest = &rest[9 + len..];
        }
        frames
    }

    const REQUEST: &[(&str, &str)] = &[(":method", "POST"), (":path", "/x")];

    #[test]
    fn a_call_reads_headers_data_and_trailers_and_answers_pings() {
        let headers = hpack::encode(&[(":status", "200"), ("content-type", "application/grpc")]);
        let (first, second) = headers.split_at(10);
        let mut padded = vec![3];
        padded.extend_from_slice(&[0, 0, 0, 0, 2, 0x08, 1]);
        padded.extend_from_slice(&[0; 3]);
        let trailers = hpack::encode(&[("grpc-status", "0")]);
        let script = server(&[
            settings(),
            (SETTINGS, ACK, 0, vec![]),
            (PING, 0, 0, b"pingpong".to_vec()),
            (WINDOW_UPDATE, 0, 0, vec![0, 0, 1, 0]),
            (HEADERS, 0, 1, first.to_vec()),
            (CONTINUATION, END_HEADERS, 1, second.to_vec()),
            (DATA, PADDED, 1, padded),
            (HEADERS, END_HEADERS | END_STREAM, 1, trailers),
        ]);
        let mut conn = Connection::handshake(script).unwrap();
        let reply = conn.call(REQUEST, b"body", deadline()).unwrap();
        assert_eq!(reply.field(":status"), Some("200"));
        assert_eq!(reply.field("grpc-status"), Some("0"));
        assert_eq!(reply.body, [0, 0, 0, 0, 2, 0x08, 1]);
        assert_eq!(conn.next_stream, 3);

        let sent = &conn.io.get_ref().sent;
        assert!(sent.starts_with(PREFACE));
        let frames = sent_frames(sent);
        let kinds: Vec<(u8, u8, u32)> = frames.iter().map(|f| (f.0, f.1, f.2)).collect();
        assert_eq!(
            kinds,
            [
                (SETTINGS, 0, 0),
                (SETTINGS, ACK, 0),
                (HEADERS, END_HEADERS, 1),
                (DATA, END_STREAM, 1),
                (PING, ACK, 0),
                (WINDOW_UPDATE, 0, 0),
            ]
        );
        assert_eq!(frames[0].3, [0, 2, 0, 0, 0, 0]);
        assert_eq!(
            hpack::Decoder::new(4096).decode(&frames[2].3).unwrap(),
            [
                (":method".into(), "POST".into()),
                (":path".into(), "/x".into())
            ]
        );
        assert_eq!(frames[3].3, b"body");
        assert_eq!(frames[4].3, b"pingpong");
        assert_eq!(frames[5].3, 11u32.to_be_bytes());
    }

    #[test]
    fn a_trailers_only_response_ends_the_call() {
        let block = hpack::encode(&[(":status", "200"), ("grpc-status", "12")]);
        let script = server(&[settings(), (HEADERS, END_HEADERS | END_STREAM, 1, block)]);
        let reply = Connection::handshake(script)
            .unwrap()
            .call(REQUEST, b"", deadline())
            .unwrap();
        assert_eq!(reply.field("grpc-status"), Some("12"));
        assert!(reply.trailers.is_empty() && reply.body.is_empty());
    }

    #[test]
    fn other_streams_and_priority_padding_are_handled() {
        // Stream 1's HEADERS comes padded and with a priority block.
        let mut payload = vec![2, 0, 0, 0, 0, 16];
        payload.extend(hpack::encode(&[(":status", "200"), ("grpc-status", "0")]));
        payload.extend_from_slice(&[0, 0]);
        let script = server(&[
            settings(),
            (RST_STREAM, 0, 7, vec![0, 0, 0, 8]),
            (
                HEADERS,
                END_HEADERS | END_STREAM | PADDED | PRIORITY,
                1,
                payload,
            ),
        ]);
        let reply = Connection::handshake(script)
            .unwrap()
            .call(REQUEST, b"", deadline())
            .unwrap();
        assert_eq!(reply.field(":status"), Some("200"));
    }

    fn call_error(frames: &[(u8, u8, u32, Vec<u8>)]) -> String {
        let mut all = vec![settings()];
        all.extend_from_slice(frames);
        match Connection::handshake(server(&all))
            .unwrap()
            .call(REQUEST, b"", deadline())
        {
            Err(TransportError::Protocol(message)) => message,
            other => panic!("expected a protocol error, got {other:?}"),
        }
    }

    #[test]
    fn resets_goaways_and_bad_frames_are_protocol_errors() {
        assert_eq!(
            call_error(&[(RST_STREAM, 0, 1, vec![0, 0, 0, 7])]),
            "the server reset the stream: REFUSED_STREAM (error code 7)"
        );
        let script = server(&[settings(), (HEADERS, END_HEADERS, 1, vec![0xbf])]);
        let mut conn = Connection::handshake(script).unwrap();
        assert!(conn.call(REQUEST, b"", deadline()).is_err());
        assert_eq!(
            conn.call(REQUEST, b"", deadline()).unwrap_err().message(),
            "the connection failed earlier: cannot decode the response headers (HPACK): \
             header table index 63 is out of range"
        );
        assert_eq!(
            call_error(&[(
                GOAWAY,
                0,
                0,
                [vec![0, 0, 0, 0, 0, 0, 0, 11], b"calm".to_vec()].concat()
            )]),
            "the server is closing the connection: GOAWAY ENHANCE_YOUR_CALM (error code 11) \"calm\""
        );
        assert!(
            call_error(&[(HEADERS, 0, 1, vec![]), (DATA, 0, 1, vec![])]).contains("CONTINUATION")
        );
        assert!(call_error(&[(DATA, 0, 1, vec![1])]).contains("before the response headers"));
        assert!(call_error(&[(PUSH_PROMISE, 0, 1, vec![0; 4])]).contains("push"));
        assert!(call_error(&[(HEADERS, END_HEADERS, 1, vec![0xbf])]).contains("HPACK"));
        let head = hpack::encode(&[(":status", "200")]);
        assert!(
            call_error(&[(HEADERS, END_HEADERS, 1, head), (DATA, PADDED, 1, vec![9])])
                .contains("padding")
        );
        assert!(call_error(&[]).contains("connection closed"));
        // A frame above 16384 bytes is refused before it is read.
        let mut big = Vec::new();
        frame(&mut big, DATA, 0, 1, &vec![0; MAX_FRAME_SIZE + 1]);
        let mut script = server(&[settings()]);
        script.input.get_mut().extend(big);
        let error = Connection::handshake(script)
            .unwrap()
            .call(REQUEST, b"", deadline())
            .unwrap_err();
        assert!(error.message().contains("16385-byte frame"), "{error}");
    }

    #[test]
    fn a_graceful_goaway_finishes_the_stream_then_refuses_new_ones() {
        let block = hpack::encode(&[(":status", "200"), ("grpc-status", "0")]);
        let script = server(&[
            settings(),
            (GOAWAY, 0, 0, vec![0, 0, 0, 1, 0, 0, 0, 0]),
            (HEADERS, END_HEADERS | END_STREAM, 1, block),
        ]);
        let mut conn = Connection::handshake(script).unwrap();
        assert!(conn.call(REQUEST, b"", deadline()).is_ok());
        let error = conn.call(REQUEST, b"", deadline()).unwrap_err();
        assert!(error.message().contains("GOAWAY NO_ERROR"), "{error}");
    }

    #[test]
    fn a_peer_without_settings_is_not_http2() {
        let script = Script {
            input: Cursor::new(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_vec()),
            sent: Vec::new(),
        };
        let error = Connection::handshake(script).err().unwrap();
        assert_eq!(
            error,
            TransportError::Protocol(
                "not an HTTP/2 (gRPC) server: expected a SETTINGS frame, got \
                 \"HTTP/1.1 400 Bad Request\\r\\nContent-Length: 0\\r\\n\\r\\n\""
                    .into()
            )
        );
        let short = Script {
            input: Cursor::new(b"SSH".to_vec()),
            sent: Vec::new(),
        };
        assert!(
            Connection::handshake(short)
                .err()
                .unwrap()
                .message()
                .ends_with("got \"SSH\"")
        );
        let silent = Script {
            input: Cursor::new(Vec::new()),
            sent: Vec::new(),
        };
        assert!(
            Connection::handshake(silent)
                .err()
                .unwrap()
                .message()
                .contains("without sending SETTINGS")
        );
    }

    #[test]
    fn large_header_blocks_are_split_into_continuations() {
        let block = hpack::encode(&[(":status", "200"), ("grpc-status", "0")]);
        let script = server(&[settings(), (HEADERS, END_HEADERS | END_STREAM, 1, block)]);
        let mut conn = Connection::handshake(script).unwrap();
        let big = "v".repeat(20_000);
        let fields = [("x-big", big.as_str())];
        conn.call(&fields, b"", deadline()).unwrap();
        let block_len = hpack::encode(&fields).len();
        let frames = sent_frames(&conn.io.get_ref().sent);
        let kinds: Vec<(u8, u8, usize)> = frames.iter().map(|f| (f.0, f.1, f.3.len())).collect();
        assert_eq!(
            kinds,
            [
                (SETTINGS, 0, 6),
                (SETTINGS, ACK, 0),
                (HEADERS, 0, MAX_FRAME_SIZE),
                (CONTINUATION, END_HEADERS, block_len - MAX_FRAME_SIZE),
                (DATA, END_STREAM, 0),
            ]
        );
    }
}
