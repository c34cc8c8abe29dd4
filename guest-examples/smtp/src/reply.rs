//! SMTP replies (RFC 5321 §4.2): one or more lines of a three-digit code,
//! `-` on every line but the last, then text. Line length and count are
//! capped so a peer that never ends a reply costs little.

use std::io::BufRead;

use checkhost_sdk::TransportError;
use checkhost_sdk::net::preview;

/// Longest reply line accepted. RFC 5321 allows 512 octets; real servers
/// sometimes send more.
const MAX_LINE: usize = 8 * 1024;
/// Most lines in one reply (an EHLO lists a dozen extensions at most).
const MAX_LINES: usize = 256;

#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub code: u16,
    /// The text of each line, without code and separator.
    pub lines: Vec<String>,
}

impl Reply {
    /// `554 5.7.1 go away`, lines joined with a space.
    pub fn summary(&self) -> String {
        let text = self.lines.join(" ");
        if text.is_empty() {
            self.code.to_string()
        } else {
            format!("{} {text}", self.code)
        }
    }
}

/// Reads one reply. When `greeting` is set, a peer that does not speak
/// SMTP at all is named as such, quoting what it sent.
pub fn read(r: &mut impl BufRead, greeting: bool) -> Result<Reply, TransportError> {
    let what = if greeting {
        "SMTP greeting"
    } else {
        "SMTP reply"
    };
    let mut code = None;
    let mut lines = Vec::new();
    loop {
        let line = read_line(r, what, greeting && code.is_none())?;
        let (line_code, last, text) = parse_line(&line).ok_or_else(|| {
            if greeting && code.is_none() {
                not_smtp(line.as_bytes())
            } else {
                TransportError::Protocol(format!(
                    "malformed {what} line {}",
                    preview(line.as_bytes())
                ))
            }
        })?;
        if *code.get_or_insert(line_code) != line_code {
            return Err(TransportError::Protocol(format!(
                "malformed {what}: a multi-line reply changes code from {} to {line_code}",
                code.unwrap_or_default()
            )));
        }
        lines.push(text.to_string());
        if last {
            return Ok(Reply {
                code: line_code,
                lines,
            });
        }
        if lines.len() >= MAX_LINES {
            return Err(TransportError::Protocol(format!(
                "{what} has more than {MAX_LINES} lines"
            )));
        }
    }
}

/// `250-PIPELINING` → (250, false, "PIPELINING"); a bare `250` is a last line.
fn parse_line(line: &str) -> Option<(u16, bool, &str)> {
    let code = line.get(..3)?;
    if !code.bytes().all(|b| b.is_ascii_digit()) || !(b'2'..=b'5').contains(&code.as_bytes()[0]) {
        return None;
    }
    let code = code.parse().ok()?;
    match line.as_bytes().get(3) {
        None => Some((code, true, "")),
        Some(b' ') => Some((code, true, line.get(4..)?)),
        Some(b'-') => Some((code, false, line.get(4..)?)),
        Some(_) => None,
    }
}

/// One line without its CRLF (a bare LF is tolerated). With `first`, bytes
/// that cannot begin a reply fail at once instead of waiting for a newline.
fn read_line(r: &mut impl BufRead, what: &str, first: bool) -> Result<String, TransportError> {
    let mut line = Vec::new();
    loop {
        let available = r
            .fill_buf()
            .map_err(|e| TransportError::from_io(&format!("read {what}"), &e))?;
        if available.is_empty() {
            return Err(TransportError::Protocol(format!(
                "connection closed while reading the {what}"
            )));
        }
        if first && line.is_empty() && !available[0].is_ascii_digit() {
            return Err(not_smtp(available));
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(end) => (&available[..=end], true),
            None => (available, false),
        };
        if line.len() + chunk.len() > MAX_LINE {
            return Err(TransportError::Protocol(format!(
                "{what} line is longer than {MAX_LINE} bytes"
            )));
        }
        line.extend_from_slice(chunk);
        let used = chunk.len();
        r.consume(used);
        if done {
            while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                line.pop();
            }
            return Ok(String::from_utf8_lossy(&line).into_owned());
        }
    }
}

fn not_smtp(bytes: &[u8]) -> TransportError {
    TransportError::Protocol(format!(
        "not an SMTP server: expected a reply like \"220 …\", got {}",
        preview(bytes)
    ))
}

/// A software name and version when the greeting states them plainly, as
/// Exim (`ESMTP Exim 4.96 …`) and Sendmail (`ESMTP Sendmail 8.17.1/8.17.1; …`)
/// do; most servers (Postfix, Exchange) say neither.
pub fn version_in_greeting(text: &str) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().skip(1).collect();
    words.windows(2).find_map(|pair| {
        let [name, version] = pair else { return None };
        let version = version.trim_end_matches([';', ',']);
        let is_name = name.len() >= 3
            && name.starts_with(|c: char| c.is_ascii_uppercase())
            && name.chars().all(|c| c.is_ascii_alphabetic())
            && !["SMTP", "ESMTP", "LMTP"].contains(name);
        let is_version = version.starts_with(|c: char| c.is_ascii_digit())
            && version.contains('.')
            && version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/+".contains(c));
        (is_name && is_version).then(|| format!("{name} {version}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8], greeting: bool) -> Result<Reply, TransportError> {
        read(&mut &bytes[..], greeting)
    }

    #[test]
    fn single_and_multi_line_replies() {
        assert_eq!(
            parse(b"220 mail.test ESMTP ready\r\n", true).unwrap(),
            Reply {
                code: 220,
                lines: vec!["mail.test ESMTP ready".into()]
            }
        );
        // The EHLO example of RFC 5321 §4.3.1 style, with a bare final code.
        let ehlo = parse(
            b"250-mail.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n",
            false,
        )
        .unwrap();
        assert_eq!(ehlo.code, 250);
        assert_eq!(
            ehlo.lines,
            ["mail.test", "PIPELINING", "SIZE 10240000", "8BITMIME"]
        );
        assert_eq!(parse(b"250\n", false).unwrap().lines, [""]);
        assert_eq!(
            parse(b"221 2.0.0 Bye\r\n", false).unwrap().summary(),
            "221 2.0.0 Bye"
        );
    }

    #[test]
    fn replies_are_read_one_at_a_time() {
        let mut input: &[u8] = b"250 2.0.0 Ok\r\n502 5.5.2 Error\r\n";
        assert_eq!(read(&mut input, false).unwrap().code, 250);
        assert_eq!(read(&mut input, false).unwrap().code, 502);
        assert!(input.is_empty());
    }

    #[test]
    fn other_protocols_are_named_with_what_came() {
        assert_eq!(
            parse(b"HTTP/1.1 400 Bad Request\r\n\r\n", true).unwrap_err(),
            TransportError::Protocol(
                "not an SMTP server: expected a reply like \"220 …\", got \"HTTP/1.1 400 Bad Request\\r\\n\\r\\n\"".into()
            )
        );
        assert!(
            parse(b"\x16\x03\x01", true)
                .unwrap_err()
                .message()
                .starts_with("not an SMTP server")
        );
        assert!(
            parse(b"2000 x\r\n", true)
                .unwrap_err()
                .message()
                .starts_with("not an SMTP server")
        );
        assert!(
            parse(b"120 wait\r\n", true)
                .unwrap_err()
                .message()
                .starts_with("not an SMTP server")
        );
    }

    #[test]
    fn broken_replies_are_protocol_errors() {
        let closed = parse(b"250-first\r\n", false).unwrap_err();
        assert_eq!(
            closed.message(),
            "connection closed while reading the SMTP reply"
        );
        assert!(
            parse(b"250-a\r\n251 b\r\n", false)
                .unwrap_err()
                .message()
                .contains("changes code")
        );
        assert!(
            parse(b"250-a\r\nxyz\r\n", false)
                .unwrap_err()
                .message()
                .starts_with("malformed")
        );
        let long = format!("250 {}\r\n", "a".repeat(MAX_LINE));
        assert!(
            parse(long.as_bytes(), false)
                .unwrap_err()
                .message()
                .contains("longer than")
        );
        let endless = "250-x\r\n".repeat(MAX_LINES + 1);
        assert!(
            parse(endless.as_bytes(), false)
                .unwrap_err()
                .message()
                .contains("more than")
        );
    }

    #[test]
    fn versions_only_when_the_greeting_states_them() {
        let version = |t: &str| version_in_greeting(t);
        assert_eq!(
            version("mx.example.org ESMTP Exim 4.96 Tue, 12 Mar 2024 10:00:00 +0000").as_deref(),
            Some("Exim 4.96")
        );
        assert_eq!(
            version("mail.example.org ESMTP Sendmail 8.17.1/8.17.1; Tue, 12 Mar 2024").as_deref(),
            Some("Sendmail 8.17.1/8.17.1")
        );
        assert_eq!(version("mail.test ESMTP ready"), None);
        assert_eq!(version("mx.example.org ESMTP Postfix (Debian/GNU)"), None);
        assert_eq!(
            version("smtp.gmail.com ESMTP 5b1f17b1804b1-42f8 - gsmtp"),
            None
        );
        assert_eq!(version("mail ESMTP ready at 10.0.0.1"), None);
        assert_eq!(
            version("EX01 Microsoft ESMTP MAIL Service ready at Tue, 12 Mar 2024"),
            None
        );
    }
}
