//! RESP2, the Redis wire format: commands go out as arrays of bulk strings,
//! replies come back typed. Every length a server sends is capped before
//! anything is allocated, so a hostile or broken peer costs little.

use std::io::BufRead;

use checkhost_sdk::net::{preview, receive};
use checkhost_sdk::{TransportError, Value, json};

/// Largest bulk string accepted.
pub const MAX_BULK: usize = 16 * 1024 * 1024;
/// Most elements one array may announce.
pub const MAX_ELEMENTS: usize = 100_000;
/// Deepest nesting of arrays; real replies (XREAD, COMMAND DOCS) stay far below.
pub const MAX_DEPTH: usize = 16;
/// Bytes one whole reply may take, nested elements included.
pub const MAX_REPLY: usize = 32 * 1024 * 1024;
/// Longest simple string, error or length line.
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as JSON: strings, numbers, null and arrays; an error
    /// nested in an array (a failed command inside EXEC) as `{"error": …}`.
    pub fn to_json(&self) -> Value {
        match self {
            Reply::Simple(s) => Value::String(s.clone()),
            Reply::Error(e) => json!({ "error": e }),
            Reply::Integer(n) => Value::from(*n),
            Reply::Bulk(None) | Reply::Array(None) => Value::Null,
            Reply::Bulk(Some(bytes)) => Value::String(String::from_utf8_lossy(bytes).into_owned()),
            Reply::Array(Some(items)) => Value::Array(items.iter().map(Reply::to_json).collect()),
        }
    }

    /// The text of a string reply.
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Simple(s) => Some(s.clone()),
            Reply::Bulk(Some(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        }
    }
}

/// One command as a RESP array of bulk strings.
pub fn encode<S: AsRef<[u8]>>(args: &[S]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        let arg = arg.as_ref();
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one reply. Bytes that are not RESP at all are a protocol error
/// saying this is not a Redis server, quoting what came.
pub fn read(r: &mut impl BufRead) -> Result<Reply, TransportError> {
    let mut budget = MAX_REPLY;
    read_value(r, 0, &mut budget)
}

fn read_value(
    r: &mut impl BufRead,
    depth: usize,
    budget: &mut usize,
) -> Result<Reply, TransportError> {
    let available = r
        .fill_buf()
        .map_err(|e| TransportError::from_io("read Redis reply", &e))?;
    let Some(&kind) = available.first() else {
        return Err(closed());
    };
    if !b"+-:$*".contains(&kind) {
        let what = preview(available);
        return Err(TransportError::Protocol(if depth == 0 {
            format!("not a Redis server: expected a RESP reply, got {what}")
        } else {
            format!("malformed RESP reply: an element starts with {what}")
        }));
    }
    let line = read_line(r, budget)?;
    let rest = line.get(1..).unwrap_or_default();
    match kind {
        b'+' => Ok(Reply::Simple(String::from_utf8_lossy(rest).into_owned())),
        b'-' => Ok(Reply::Error(String::from_utf8_lossy(rest).into_owned())),
        b':' => Ok(Reply::Integer(integer(rest)?)),
        b'$' => {
            let Some(len) = length(rest, MAX_BULK, "bulk string")? else {
                return Ok(Reply::Bulk(None));
            };
            take(budget, len)?;
            let mut data = vec![0u8; len + 2];
            receive(r, &mut data, "a Redis bulk string")?;
            if !data.ends_with(b"\r\n") {
                return Err(malformed("a bulk string does not end with CRLF"));
            }
            data.truncate(len);
            Ok(Reply::Bulk(Some(data)))
        }
        _ => {
            let Some(len) = length(rest, MAX_ELEMENTS, "array")? else {
                return Ok(Reply::Array(None));
            };
            if depth >= MAX_DEPTH {
                return Err(malformed(&format!("arrays nested deeper than {MAX_DEPTH}")));
            }
            // Elements are counted against the budget as they arrive, so an
            // announced length reserves little up front.
            let mut items = Vec::with_capacity(len.min(1024));
            for _ in 0..len {
                items.push(read_value(r, depth + 1, budget)?);
            }
            Ok(Reply::Array(Some(items)))
        }
    }
}

/// One CRLF-terminated line, without the terminator, at most `MAX_LINE`.
fn read_line(r: &mut impl BufRead, budget: &mut usize) -> Result<Vec<u8>, TransportError> {
    let mut line = Vec::new();
    loop {
        let available = r
            .fill_buf()
            .map_err(|e| TransportError::from_io("read Redis reply", &e))?;
        if available.is_empty() {
            return Err(closed());
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(end) => (&available[..=end], true),
            None => (available, false),
        };
        if line.len() + chunk.len() > MAX_LINE {
            return Err(malformed(&format!(
                "a line is longer than {MAX_LINE} bytes"
            )));
        }
        line.extend_from_slice(chunk);
        let used = chunk.len();
        r.consume(used);
        take(budget, used)?;
        if done {
            if !line.ends_with(b"\r\n") {
                return Err(malformed("a line does not end with CRLF"));
            }
            line.truncate(line.len() - 2);
            return Ok(line);
        }
    }
}

fn integer(text: &[u8]) -> Result<i64, TransportError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| malformed(&format!("{} is not an integer", preview(text))))
}

/// A bulk or array length: `None` for RESP's -1 (nil), an error past `max`.
fn length(text: &[u8], max: usize, what: &str) -> Result<Option<usize>, TransportError> {
    match integer(text)? {
        -1 => Ok(None),
        n => match usize::try_from(n) {
            Ok(n) if n <= max => Ok(Some(n)),
            _ => Err(malformed(&format!(
                "{what} length {n} is outside 0..={max}"
            ))),
        },
    }
}

fn take(budget: &mut usize, bytes: usize) -> Result<(), TransportError> {
    *budget = budget
        .checked_sub(bytes)
        .ok_or_else(|| malformed(&format!("the reply is larger than {MAX_REPLY} bytes")))?;
    Ok(())
}

fn closed() -> TransportError {
    TransportError::Protocol("connection closed while reading a Redis reply".into())
}

fn malformed(what: &str) -> TransportError {
    TransportError::Protocol(format!("malformed RESP reply: {what}"))
}

/// Splits a command line into arguments the way `redis-cli` does:
/// whitespace separates, `"…"` quotes with backslash escapes (`\"`, `\\`,
/// `\n`, `\r`, `\t`, `\xHH`), `'…'` quotes literally (`\'` for a quote).
pub fn split_args(line: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut args = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else {
            return Ok(args);
        };
        let mut arg = Vec::new();
        if first == '"' || first == '\'' {
            chars.next();
            loop {
                let Some(c) = chars.next() else {
                    return Err(format!("unbalanced {first} quote"));
                };
                match c {
                    c if c == first => break,
                    '\\' if first == '"' => {
                        let escaped = chars.next().ok_or("unbalanced \" quote")?;
                        match escaped {
                            'n' => arg.push(b'\n'),
                            'r' => arg.push(b'\r'),
                            't' => arg.push(b'\t'),
                            'x' => {
                                let hex: String = chars.by_ref().take(2).collect();
                                let byte = u8::from_str_radix(&hex, 16)
                                    .map_err(|_| format!("`\\x{hex}` is not a hex byte"))?;
                                arg.push(byte);
                            }
                            other => push_char(&mut arg, other),
                        }
                    }
                    '\\' if chars.peek() == Some(&'\'') => {
                        chars.next();
                        arg.push(b'\'');
                    }
                    other => push_char(&mut arg, other),
                }
            }
            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return Err("a closing quote must be followed by a space".into());
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                push_char(&mut arg, c);
            }
        }
        args.push(arg);
    }
}

fn push_char(out: &mut Vec<u8>, c: char) {
    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
}

/// The `key:value` lines of an INFO reply; `# Section` headers are skipped.
pub fn info_fields(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Reply, TransportError> {
        read(&mut &bytes[..])
    }

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(Some(s.as_bytes().to_vec()))
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        // The example from the RESP specification.
        assert_eq!(
            encode(&["LLEN", "mylist"]),
            b"*2\r\n$4\r\nLLEN\r\n$6\r\nmylist\r\n"
        );
        assert_eq!(encode(&["SET", ""]), b"*2\r\n$3\r\nSET\r\n$0\r\n\r\n");
    }

    #[test]
    fn every_reply_type_parses() {
        assert_eq!(parse(b"+PONG\r\n").unwrap(), Reply::Simple("PONG".into()));
        assert_eq!(
            parse(b"-ERR unknown command 'X'\r\n").unwrap(),
            Reply::Error("ERR unknown command 'X'".into())
        );
        assert_eq!(parse(b":-42\r\n").unwrap(), Reply::Integer(-42));
        assert_eq!(parse(b"$6\r\nfoo\r\nb\r\n").unwrap(), bulk("foo\r\nb"));
        assert_eq!(parse(b"$0\r\n\r\n").unwrap(), bulk(""));
        assert_eq!(parse(b"$-1\r\n").unwrap(), Reply::Bulk(None));
        assert_eq!(parse(b"*-1\r\n").unwrap(), Reply::Array(None));
        assert_eq!(parse(b"*0\r\n").unwrap(), Reply::Array(Some(vec![])));
        let nested = parse(b"*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n-WRONGTYPE no\r\n").unwrap();
        assert_eq!(
            nested,
            Reply::Array(Some(vec![
                Reply::Integer(1),
                Reply::Array(Some(vec![bulk("a"), Reply::Bulk(None)])),
                Reply::Error("WRONGTYPE no".into()),
            ]))
        );
        assert_eq!(
            nested.to_json(),
            json!([1, ["a", null], {"error": "WRONGTYPE no"}])
        );
    }

    #[test]
    fn replies_are_read_one_at_a_time() {
        let mut input: &[u8] = b"+OK\r\n$5\r\nhello\r\n";
        assert_eq!(read(&mut input).unwrap(), Reply::Simple("OK".into()));
        assert_eq!(read(&mut input).unwrap(), bulk("hello"));
        assert!(input.is_empty());
    }

    #[test]
    fn other_protocols_are_named_with_what_came() {
        let err = parse(b"SSH-2.0-OpenSSH_9.6\r\n").unwrap_err();
        assert_eq!(
            err,
            TransportError::Protocol(
                "not a Redis server: expected a RESP reply, got \"SSH-2.0-OpenSSH_9.6\\r\\n\""
                    .into()
            )
        );
        let err = parse(b"HTTP/1.1 400 Bad Request\r\n\r\n").unwrap_err();
        assert!(
            err.message()
                .starts_with("not a Redis server: expected a RESP reply, got \"HTTP/1.1 400")
        );
    }

    #[test]
    fn lengths_are_capped_before_allocating() {
        let huge = format!("${}\r\n", MAX_BULK + 1);
        assert!(
            parse(huge.as_bytes())
                .unwrap_err()
                .message()
                .contains("outside")
        );
        let many = format!("*{}\r\n", MAX_ELEMENTS + 1);
        assert!(
            parse(many.as_bytes())
                .unwrap_err()
                .message()
                .contains("outside")
        );
        assert!(parse(b"$-2\r\n").unwrap_err().message().contains("outside"));
        assert!(
            parse(b"$99999999999999999999\r\n")
                .unwrap_err()
                .message()
                .contains("not an integer")
        );
        let deep = "*1\r\n".repeat(MAX_DEPTH + 1);
        assert!(
            parse(deep.as_bytes())
                .unwrap_err()
                .message()
                .contains("nested deeper")
        );
        let long = format!("+{}\r\n", "a".repeat(MAX_LINE));
        assert!(
            parse(long.as_bytes())
                .unwrap_err()
                .message()
                .contains("longer than")
        );
    }

    #[test]
    fn truncated_and_malformed_replies_are_protocol_errors() {
        assert_eq!(parse(b"").unwrap_err(), closed());
        assert_eq!(parse(b"+OK").unwrap_err(), closed());
        assert!(matches!(
            parse(b"$5\r\nab").unwrap_err(),
            TransportError::Protocol(_)
        ));
        assert!(parse(b"$2\r\nabcd").unwrap_err().message().contains("CRLF"));
        assert!(parse(b"+OK\n").unwrap_err().message().contains("CRLF"));
        assert!(
            parse(b"*1\r\nhello\r\n")
                .unwrap_err()
                .message()
                .starts_with("malformed")
        );
    }

    #[test]
    fn arguments_split_like_redis_cli() {
        let split = |s: &str| {
            split_args(s).map(|args| {
                args.into_iter()
                    .map(|a| String::from_utf8(a).unwrap())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(split("  GET   key ").unwrap(), ["GET", "key"]);
        assert_eq!(
            split(r#"SET k "hello world" 'it''s'"#).unwrap_err(),
            "a closing quote must be followed by a space"
        );
        assert_eq!(
            split(r#"SET k "a \"b\"\n\x41" 'x\'y' """#).unwrap(),
            ["SET", "k", "a \"b\"\nA", "x'y", ""]
        );
        assert_eq!(
            split("ECHO \"héllo wörld\"").unwrap(),
            ["ECHO", "héllo wörld"]
        );
        assert_eq!(split("ECHO \"open").unwrap_err(), "unbalanced \" quote");
        assert!(split("ECHO \"\\xZZ\"").unwrap_err().contains("hex"));
        assert!(split("   ").unwrap().is_empty());
    }

    #[test]
    fn info_fields_skip_section_headers() {
        let text = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n\r\n# Replication\r\nrole:master\r\n";
        assert_eq!(
            info_fields(text),
            [
                ("redis_version".to_string(), "7.0.15".to_string()),
                ("redis_mode".into(), "standalone".into()),
                ("role".into(), "master".into()),
            ]
        );
    }
}
