//! PostgreSQL v3 frontend/backend messages: framing, the few messages the
//! client sends, and parsing of what the backend answers.

use std::io::Read;

use checkhost_sdk::TransportError;
use checkhost_sdk::net;

/// The largest backend message accepted: a bigger length is garbage or a
/// result no health check needs.
pub const MAX_MESSAGE: usize = 16 << 20;

/// Protocol 3.0, the only one servers since 7.4 speak.
const PROTOCOL_VERSION: u32 = 3 << 16;

/// One backend message: its type byte and its body without the length.
pub struct Message {
    pub tag: u8,
    pub body: Vec<u8>,
}

/// Reads one backend message; `what` names it in errors.
pub fn read_message(stream: &mut impl Read, what: &str) -> Result<Message, TransportError> {
    let mut head = [0u8; 5];
    net::receive(stream, &mut head, what)?;
    let [tag, l0, l1, l2, l3] = head;
    let len = u32::from_be_bytes([l0, l1, l2, l3]) as usize;
    if !(4..=MAX_MESSAGE + 4).contains(&len) {
        return Err(TransportError::Protocol(format!(
            "{what}: message `{}` claims {len} bytes",
            tag.escape_ascii()
        )));
    }
    let mut body = vec![0u8; len - 4];
    net::receive(stream, &mut body, what)?;
    Ok(Message { tag, body })
}

/// A frontend message with a type byte.
pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(tag);
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// The StartupMessage: protocol version then name/value pairs.
pub fn startup(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = PROTOCOL_VERSION.to_be_bytes().to_vec();
    for (name, value) in params {
        push_cstr(&mut body, name);
        push_cstr(&mut body, value);
    }
    body.push(0);
    let mut out = (body.len() as u32 + 4).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

pub fn push_cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// Whether `chunk`, the first bytes the server sent after the startup
/// message, can begin a PostgreSQL answer: an authentication request, an
/// error or a protocol-version negotiation with a sane length.
pub fn looks_like_startup_answer(chunk: &[u8]) -> bool {
    let plausible = |tag: u8, len: u32| match tag {
        b'R' => (8..=64 * 1024).contains(&len),
        b'E' => (5..=64 * 1024).contains(&len),
        b'v' => (12..=64 * 1024).contains(&len),
        _ => false,
    };
    match chunk {
        [tag, l0, l1, l2, l3, ..] => plausible(*tag, u32::from_be_bytes([*l0, *l1, *l2, *l3])),
        [tag, ..] => matches!(tag, b'R' | b'E' | b'v'),
        [] => false,
    }
}

/// Reads fields from a message body; every read checks the bounds.
pub struct Body<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Body<'a> {
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Body { buf, what }
    }

    fn malformed(&self) -> TransportError {
        TransportError::Protocol(format!("malformed {}", self.what))
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], TransportError> {
        if n > self.buf.len() {
            return Err(self.malformed());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, TransportError> {
        let [b] = self.array()?;
        Ok(b)
    }

    pub fn i16(&mut self) -> Result<i16, TransportError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub fn i32(&mut self) -> Result<i32, TransportError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], TransportError> {
        let bytes = self.bytes(N)?;
        bytes.try_into().map_err(|_| self.malformed())
    }

    /// A NUL-terminated string, decoded lossily.
    pub fn cstr(&mut self) -> Result<String, TransportError> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.malformed())?;
        let s = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
}

/// The fields of an ErrorResponse the client reports.
#[derive(Debug, Default, PartialEq)]
pub struct ServerError {
    pub code: String,
    pub message: String,
}

pub fn server_error(body: &[u8]) -> Result<ServerError, TransportError> {
    let mut body = Body::new(body, "ErrorResponse");
    let mut error = ServerError::default();
    // Each field costs at least two bytes, so the body's length bounds this.
    loop {
        match body.u8()? {
            0 => return Ok(error),
            b'C' => error.code = body.cstr()?,
            b'M' => error.message = body.cstr()?,
            _ => {
                body.cstr()?;
            }
        }
    }
}

/// A ParameterStatus: name and value.
pub fn parameter(body: &[u8]) -> Result<(String, String), TransportError> {
    let mut body = Body::new(body, "ParameterStatus");
    Ok((body.cstr()?, body.cstr()?))
}

/// The column names of a RowDescription.
pub fn row_description(body: &[u8]) -> Result<Vec<String>, TransportError> {
    let mut body = Body::new(body, "RowDescription");
    let count = body.i16()?;
    let mut names = Vec::new();
    for _ in 0..count.max(0) {
        names.push(body.cstr()?);
        // table oid, column number, type oid, type size, type modifier, format
        body.bytes(18)?;
    }
    Ok(names)
}

/// The values of a DataRow in text format; NULL is `None`.
pub fn data_row(body: &[u8]) -> Result<Vec<Option<String>>, TransportError> {
    let mut body = Body::new(body, "DataRow");
    let count = body.i16()?;
    let mut values = Vec::new();
    for _ in 0..count.max(0) {
        let len = body.i32()?;
        values.push(match usize::try_from(len) {
            Ok(len) => Some(String::from_utf8_lossy(body.bytes(len)?).into_owned()),
            Err(_) => None,
        });
    }
    Ok(values)
}

/// The rows a CommandComplete tag reports (`SELECT 3`, `INSERT 0 2`,
/// `UPDATE 5`), when it reports any.
pub fn tag_rows(tag: &str) -> Option<u64> {
    let mut words = tag.split_whitespace();
    words.next()?;
    words.last()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_message_is_length_version_and_pairs() {
        let bytes = startup(&[("user", "u"), ("database", "d")]);
        assert_eq!(
            bytes,
            b"\0\0\0\x1b\0\x03\0\0user\0u\0database\0d\0\0".to_vec()
        );
        assert_eq!(
            message(b'Q', b"SELECT 1\0"),
            b"Q\0\0\0\x0dSELECT 1\0".to_vec()
        );
    }

    #[test]
    fn messages_are_framed_and_lengths_bounded() {
        let mut input: &[u8] = b"Z\0\0\0\x05I";
        let msg = read_message(&mut input, "x").unwrap();
        assert_eq!((msg.tag, msg.body), (b'Z', b"I".to_vec()));
        let mut huge: &[u8] = b"SSH-2.0-x\r\n";
        assert!(matches!(
            read_message(&mut huge, "x"),
            Err(TransportError::Protocol(_))
        ));
        let mut short: &[u8] = b"Z\0\0\0\x03";
        assert!(read_message(&mut short, "x").is_err());
        let mut truncated: &[u8] = b"Z\0\0\0\x09I";
        assert!(matches!(
            read_message(&mut truncated, "x"),
            Err(TransportError::Protocol(m)) if m.contains("closed")
        ));
    }

    #[test]
    fn only_postgres_answers_look_like_postgres() {
        assert!(looks_like_startup_answer(b"R\0\0\0\x08\0\0\0\0"));
        assert!(looks_like_startup_answer(b"E\0\0\0\x50SFATAL"));
        assert!(looks_like_startup_answer(b"R"));
        assert!(!looks_like_startup_answer(b"SSH-2.0-x\r\n"));
        assert!(!looks_like_startup_answer(b"HTTP/1.1 400 Bad Request"));
        assert!(!looks_like_startup_answer(b"R\xff\xff\xff\xff"));
        assert!(!looks_like_startup_answer(b""));
    }

    #[test]
    fn backend_messages_parse() {
        let error = server_error(b"SFATAL\0C28P01\0Mpassword authentication failed\0\0").unwrap();
        assert_eq!(error.code, "28P01");
        assert_eq!(error.message, "password authentication failed");
        assert!(server_error(b"SFATAL\0C28P01").is_err());
        assert_eq!(
            parameter(b"server_version\x0015.2\0").unwrap(),
            ("server_version".into(), "15.2".into())
        );
        let mut description = b"\0\x02".to_vec();
        for name in ["a", "b"] {
            description.extend_from_slice(name.as_bytes());
            description.extend_from_slice(&[0; 19]);
        }
        assert_eq!(row_description(&description).unwrap(), ["a", "b"]);
        assert!(row_description(&description[..10]).is_err());
        assert_eq!(
            data_row(b"\0\x02\0\0\0\x011\xff\xff\xff\xff").unwrap(),
            [Some("1".to_string()), None]
        );
        assert!(data_row(b"\0\x01\0\0\0\x09ab").is_err());
    }

    #[test]
    fn command_tags_give_row_counts() {
        assert_eq!(tag_rows("SELECT 3"), Some(3));
        assert_eq!(tag_rows("INSERT 0 2"), Some(2));
        assert_eq!(tag_rows("CREATE TABLE"), None);
        assert_eq!(tag_rows("BEGIN"), None);
    }
}
