//! The few MQTT 3.1.1 control packets this strategy needs (CONNECT,
//! CONNACK, SUBSCRIBE, PUBLISH, PUBACK, DISCONNECT), encoded and decoded
//! with every length checked: a packet a broker announces is read only up
//! to a cap, and never allocated from an unchecked length.

use std::io::BufRead;

use checkhost_sdk::TransportError;
use checkhost_sdk::net::{preview, receive};

pub const CONNACK: u8 = 0x20;
pub const PUBLISH: u8 = 0x30;
pub const PUBACK: u8 = 0x40;
pub const SUBACK: u8 = 0x90;
pub const DISCONNECT: [u8; 2] = [0xE0, 0x00];

/// The largest remaining length the protocol can express (§2.2.3).
const MAX_REMAINING: usize = 268_435_455;
/// The largest packet read from a broker: far more than any CONNACK,
/// SUBACK, PUBACK or `$SYS` message needs.
pub const MAX_PACKET: usize = 1024 * 1024;

/// One packet as read: the fixed header's first byte and the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub header: u8,
    pub body: Vec<u8>,
}

impl Packet {
    pub fn kind(&self) -> u8 {
        self.header & 0xF0
    }

    /// The packet identifier that PUBACK and SUBACK start with.
    pub fn id(&self) -> Option<u16> {
        Some(u16::from_be_bytes([
            *self.body.first()?,
            *self.body.get(1)?,
        ]))
    }

    /// Topic and payload of a PUBLISH, skipping the packet id QoS 1 and 2 add.
    pub fn publish(&self) -> Option<(String, &[u8])> {
        let len = usize::from(self.id()?);
        let topic = self.body.get(2..2 + len)?;
        let id_len = if self.header & 0x06 == 0 { 0 } else { 2 };
        let payload = self.body.get(2 + len + id_len..)?;
        Some((String::from_utf8_lossy(topic).into_owned(), payload))
    }
}

/// What a CONNECT carries besides the fixed protocol name and level.
pub struct Connect<'a> {
    pub client_id: &'a str,
    pub keep_alive_secs: u16,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
}

impl Connect<'_> {
    /// A clean-session CONNECT for protocol level 4 (MQTT 3.1.1).
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        if self.password.is_some() && self.username.is_none() {
            return Err("MQTT 3.1.1 sends a password only with a username".into());
        }
        let mut flags = 0x02;
        let mut body = Vec::new();
        string(&mut body, "MQTT", "protocol name")?;
        body.push(4);
        if self.username.is_some() {
            flags |= 0x80;
        }
        if self.password.is_some() {
            flags |= 0x40;
        }
        body.push(flags);
        body.extend_from_slice(&self.keep_alive_secs.to_be_bytes());
        string(&mut body, self.client_id, "client id")?;
        if let Some(username) = self.username {
            string(&mut body, username, "username")?;
        }
        if let Some(password) = self.password {
            string(&mut body, password, "password")?;
        }
        packet(0x10, &body)
    }
}

/// A SUBSCRIBE to one topic filter at QoS 0.
pub fn subscribe(id: u16, filter: &str) -> Result<Vec<u8>, String> {
    let mut body = id.to_be_bytes().to_vec();
    string(&mut body, filter, "topic filter")?;
    body.push(0);
    // The reserved flags of SUBSCRIBE are 0b0010 (§3.8.1).
    packet(0x82, &body)
}

/// A QoS 1 PUBLISH, which the broker acknowledges with a PUBACK.
pub fn publish_qos1(id: u16, topic: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
    check_topic(topic)?;
    let mut body = Vec::new();
    string(&mut body, topic, "topic")?;
    body.extend_from_slice(&id.to_be_bytes());
    body.extend_from_slice(payload);
    packet(0x32, &body)
}

/// A topic name a client may publish to (§4.7): no wildcards, not empty.
pub fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        Err("the topic is empty".into())
    } else if topic.contains(['+', '#']) {
        Err(format!(
            "topic `{topic}` has a wildcard; a publish needs a plain topic"
        ))
    } else if topic.contains('\0') {
        Err("the topic contains a NUL character".into())
    } else {
        Ok(())
    }
}

fn string(out: &mut Vec<u8>, text: &str, what: &str) -> Result<(), String> {
    let len =
        u16::try_from(text.len()).map_err(|_| format!("the {what} is longer than 65535 bytes"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

fn packet(header: u8, body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = vec![header];
    out.extend(remaining_length(body.len())?);
    out.extend_from_slice(body);
    Ok(out)
}

/// The variable-length encoding of §2.2.3: seven bits a byte, low first.
pub fn remaining_length(mut len: usize) -> Result<Vec<u8>, String> {
    if len > MAX_REMAINING {
        return Err(format!("a packet of {len} bytes is too large for MQTT"));
    }
    let mut out = Vec::with_capacity(4);
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            return Ok(out);
        }
    }
}

/// Reads one packet. `what` names it in errors.
pub fn read(r: &mut impl BufRead, what: &str) -> Result<Packet, TransportError> {
    let mut header = [0u8];
    receive(r, &mut header, what)?;
    let mut len = 0usize;
    let mut shift = 0;
    loop {
        let mut byte = [0u8];
        receive(r, &mut byte, what)?;
        len |= usize::from(byte[0] & 0x7F) << shift;
        if byte[0] & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            return Err(TransportError::Protocol(format!(
                "malformed {what}: remaining length over four bytes"
            )));
        }
    }
    if len > MAX_PACKET {
        return Err(TransportError::Protocol(format!(
            "{what} announces {len} bytes, more than the {MAX_PACKET} accepted"
        )));
    }
    let mut body = vec![0u8; len];
    receive(r, &mut body, what)?;
    Ok(Packet {
        header: header[0],
        body,
    })
}

/// The first bytes waiting to be read, for naming what a non-broker sent.
pub fn peek(r: &mut impl BufRead, what: &str) -> Result<String, TransportError> {
    let available = r
        .fill_buf()
        .map_err(|e| TransportError::from_io(&format!("read {what}"), &e))?;
    if available.is_empty() {
        return Err(TransportError::Protocol(format!(
            "connection closed while reading {what}"
        )));
    }
    Ok(preview(available))
}

/// What a CONNACK return code (§3.2.2.3) means.
pub fn connack_meaning(code: u8) -> &'static str {
    match code {
        0 => "connection accepted",
        1 => "unacceptable protocol version",
        2 => "identifier rejected",
        3 => "server unavailable",
        4 => "bad user name or password",
        5 => "not authorized",
        _ => "a reserved return code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_lengths_match_the_spec_table() {
        // MQTT 3.1.1 §2.2.3, table 2.4: the bounds of each byte count.
        let cases: [(usize, &[u8]); 8] = [
            (0, &[0x00]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xFF, 0x7F]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xFF, 0xFF, 0x7F]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
        ];
        for (len, bytes) in cases {
            assert_eq!(remaining_length(len).unwrap(), bytes, "{len}");
        }
        assert!(remaining_length(268_435_456).is_err());
    }

    #[test]
    fn connect_packets_are_byte_exact() {
        let anonymous = Connect {
            client_id: "c1",
            keep_alive_secs: 30,
            username: None,
            password: None,
        };
        assert_eq!(
            anonymous.encode().unwrap(),
            [
                0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 30, 0, 2, b'c', b'1'
            ]
        );
        let with_login = Connect {
            username: Some("u"),
            password: Some("pw"),
            ..anonymous
        };
        assert_eq!(
            with_login.encode().unwrap(),
            [
                0x10, 21, 0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 30, 0, 2, b'c', b'1', 0, 1,
                b'u', 0, 2, b'p', b'w'
            ]
        );
        let password_only = Connect {
            username: None,
            password: Some("pw"),
            ..anonymous
        };
        assert!(password_only.encode().is_err());
    }

    #[test]
    fn subscribe_and_publish_are_byte_exact() {
        assert_eq!(
            subscribe(1, "a/b").unwrap(),
            [0x82, 8, 0, 1, 0, 3, b'a', b'/', b'b', 0]
        );
        assert_eq!(
            publish_qos1(7, "t", b"hi").unwrap(),
            [0x32, 7, 0, 1, b't', 0, 7, b'h', b'i']
        );
        assert!(publish_qos1(1, "a/+", b"").is_err());
        assert!(publish_qos1(1, "", b"").is_err());
    }

    #[test]
    fn packets_read_and_parse() {
        let mut input: &[u8] = &[
            0x20, 2, 1, 0, // CONNACK, session present, accepted
            0x30, 8, 0, 3, b'a', b'/', b'b', b'1', b'.', b'2', // PUBLISH QoS 0
            0x40, 2, 0, 9, // PUBACK 9
        ];
        let connack = read(&mut input, "CONNACK").unwrap();
        assert_eq!(
            (connack.header, connack.body.as_slice()),
            (CONNACK, &[1, 0][..])
        );
        let publish = read(&mut input, "packet").unwrap();
        assert_eq!(publish.kind(), PUBLISH);
        assert_eq!(publish.publish(), Some(("a/b".to_string(), &b"1.2"[..])));
        let puback = read(&mut input, "PUBACK").unwrap();
        assert_eq!((puback.kind(), puback.id()), (PUBACK, Some(9)));
        // A QoS 1 PUBLISH carries a packet id between topic and payload.
        let qos1 = Packet {
            header: 0x32,
            body: vec![0, 1, b't', 0, 5, b'x'],
        };
        assert_eq!(qos1.publish(), Some(("t".to_string(), &b"x"[..])));
    }

    #[test]
    fn hostile_lengths_are_refused_before_allocating() {
        let mut five_bytes: &[u8] = &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F];
        assert!(
            read(&mut five_bytes, "packet")
                .unwrap_err()
                .message()
                .contains("four bytes")
        );
        let mut huge: &[u8] = &[0x30, 0xFF, 0xFF, 0xFF, 0x7F];
        assert!(
            read(&mut huge, "packet")
                .unwrap_err()
                .message()
                .contains("accepted")
        );
        let mut short: &[u8] = &[0x20, 2, 0];
        assert_eq!(
            read(&mut short, "CONNACK").unwrap_err(),
            TransportError::Protocol("connection closed while reading CONNACK".into())
        );
        let truncated = Packet {
            header: 0x30,
            body: vec![0, 9, b'a'],
        };
        assert_eq!(truncated.publish(), None);
    }

    #[test]
    fn foreign_bytes_are_quoted_and_escaped() {
        assert_eq!(
            peek(&mut &b"SSH-2.0-x\r\n"[..], "CONNACK").unwrap(),
            "\"SSH-2.0-x\\r\\n\""
        );
        assert_eq!(
            peek(&mut &[0x16, 0x03, 0x01][..], "CONNACK").unwrap(),
            "\"\\x16\\x03\\x01\""
        );
    }
}
