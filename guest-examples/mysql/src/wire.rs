//! MySQL/MariaDB client/server protocol: packet framing, the handshake,
//! the auth scrambles, and the text-protocol answers to COM_QUERY.

use std::io::Read;

use checkhost_sdk::TransportError;
use checkhost_sdk::net;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The largest payload accepted, fragments joined: a bigger one is garbage
/// or a row no health check needs.
pub const MAX_PAYLOAD: usize = 16 << 20;
/// A fragment this long means the payload continues in the next one.
const MAX_FRAGMENT: usize = 0xFF_FFFF;
/// A real initial handshake is about a hundred bytes.
const MAX_HANDSHAKE: u32 = 64 * 1024;

pub const CLIENT_LONG_PASSWORD: u32 = 1;
pub const CLIENT_CONNECT_WITH_DB: u32 = 8;
pub const CLIENT_PROTOCOL_41: u32 = 0x200;
pub const CLIENT_TRANSACTIONS: u32 = 0x2000;
pub const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
pub const CLIENT_MULTI_RESULTS: u32 = 0x2_0000;
pub const CLIENT_PLUGIN_AUTH: u32 = 0x8_0000;

/// Status flag: another result follows this one (a CALL's result sets).
pub const SERVER_MORE_RESULTS_EXISTS: u16 = 8;

/// utf8mb4_general_ci, known to MySQL 5.5+ and every MariaDB.
const UTF8MB4: u8 = 45;

pub struct Packet {
    pub seq: u8,
    pub payload: Vec<u8>,
}

/// Reads one packet, joining fragments; `what` names it in errors.
pub fn read_packet(stream: &mut impl Read, what: &str) -> Result<Packet, TransportError> {
    let mut payload = Vec::new();
    loop {
        let mut head = [0u8; 4];
        net::receive(stream, &mut head, what)?;
        let [l0, l1, l2, seq] = head;
        let len = u32::from_le_bytes([l0, l1, l2, 0]) as usize;
        let start = payload.len();
        if start + len > MAX_PAYLOAD {
            return Err(TransportError::Protocol(format!(
                "{what}: packet of more than {MAX_PAYLOAD} bytes"
            )));
        }
        payload.resize(start + len, 0);
        net::receive(stream, &mut payload[start..], what)?;
        if len < MAX_FRAGMENT {
            return Ok(Packet { seq, payload });
        }
    }
}

/// `payload` framed as packets from sequence id `seq`; also the next id.
pub fn packet(mut seq: u8, payload: &[u8]) -> (Vec<u8>, u8) {
    let mut out = Vec::with_capacity(payload.len() + 4);
    let mut rest = payload;
    loop {
        let (fragment, tail) = rest.split_at(rest.len().min(MAX_FRAGMENT));
        out.extend_from_slice(&(fragment.len() as u32).to_le_bytes()[..3]);
        out.push(seq);
        out.extend_from_slice(fragment);
        seq = seq.wrapping_add(1);
        rest = tail;
        // A full fragment needs a follower, even an empty one.
        if fragment.len() < MAX_FRAGMENT {
            return (out, seq);
        }
    }
}

/// Whether `chunk`, the first bytes a server sent, can begin a MySQL
/// handshake or a refusal: sequence id 0, a small length, protocol 10 or
/// an ERR packet.
pub fn looks_like_handshake(chunk: &[u8]) -> bool {
    let len = match chunk {
        [l0, l1, l2, ..] => u32::from_le_bytes([*l0, *l1, *l2, 0]),
        _ => return !chunk.is_empty(),
    };
    (1..=MAX_HANDSHAKE).contains(&len)
        && chunk.get(3).is_none_or(|&seq| seq == 0)
        && chunk
            .get(4)
            .is_none_or(|&first| first == 10 || first == 0xFF)
}

/// Reads fields from a payload; every read checks the bounds.
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

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], TransportError> {
        let bytes = self.bytes(N)?;
        bytes.try_into().map_err(|_| self.malformed())
    }

    pub fn u8(&mut self) -> Result<u8, TransportError> {
        let [b] = self.array()?;
        Ok(b)
    }

    pub fn u16(&mut self) -> Result<u16, TransportError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, TransportError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn peek(&self) -> Option<u8> {
        self.buf.first().copied()
    }

    /// A length-encoded integer.
    pub fn lenenc(&mut self) -> Result<u64, TransportError> {
        Ok(match self.u8()? {
            b @ 0..=0xFA => b.into(),
            0xFC => self.u16()?.into(),
            0xFD => {
                let [a, b, c] = self.array()?;
                u32::from_le_bytes([a, b, c, 0]).into()
            }
            0xFE => u64::from_le_bytes(self.array()?),
            _ => return Err(self.malformed()),
        })
    }

    /// A length-encoded string, decoded lossily.
    pub fn lenenc_str(&mut self) -> Result<String, TransportError> {
        let len = usize::try_from(self.lenenc()?).map_err(|_| self.malformed())?;
        Ok(String::from_utf8_lossy(self.bytes(len)?).into_owned())
    }

    /// A NUL-terminated string; the rest when the NUL is missing, as some
    /// servers send the last one of a packet.
    pub fn cstr(&mut self) -> String {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.buf.len());
        let (text, rest) = self.buf.split_at(end);
        self.buf = rest.get(1..).unwrap_or_default();
        String::from_utf8_lossy(text).into_owned()
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// What the initial handshake (protocol 10) tells.
#[derive(Debug, PartialEq)]
pub struct Handshake {
    pub server_version: String,
    pub connection_id: u32,
    pub capabilities: u32,
    pub scramble: Vec<u8>,
    pub auth_plugin: String,
}

pub fn handshake(payload: &[u8]) -> Result<Handshake, TransportError> {
    let mut body = Body::new(payload, "initial handshake");
    let protocol = body.u8()?;
    if protocol != 10 {
        return Err(TransportError::Protocol(format!(
            "handshake protocol {protocol} is not supported (only 10)"
        )));
    }
    let server_version = body.cstr();
    let connection_id = body.u32()?;
    let mut scramble = body.bytes(8)?.to_vec();
    body.bytes(1)?;
    let mut capabilities = u32::from(body.u16()?);
    let mut auth_plugin = String::new();
    if !body.is_empty() {
        let _charset = body.u8()?;
        let _status = body.u16()?;
        capabilities |= u32::from(body.u16()?) << 16;
        let data_len = body.u8()?;
        // Reserved; MariaDB keeps its extended capabilities here.
        body.bytes(10)?;
        if capabilities & CLIENT_SECURE_CONNECTION != 0 {
            let len = usize::from(data_len.saturating_sub(8)).max(13);
            let part = body.bytes(len)?;
            scramble.extend_from_slice(part.strip_suffix(&[0]).unwrap_or(part));
        }
        if capabilities & CLIENT_PLUGIN_AUTH != 0 {
            auth_plugin = body.cstr();
        }
    }
    Ok(Handshake {
        server_version,
        connection_id,
        capabilities,
        scramble,
        auth_plugin,
    })
}

/// HandshakeResponse41 with one auth response of at most 255 bytes.
pub fn handshake_response(
    flags: u32,
    user: &str,
    auth: &[u8],
    database: Option<&str>,
    plugin: &str,
) -> Vec<u8> {
    let mut out = flags.to_le_bytes().to_vec();
    out.extend_from_slice(&(MAX_PAYLOAD as u32).to_le_bytes());
    out.push(UTF8MB4);
    out.extend_from_slice(&[0; 23]);
    out.extend_from_slice(user.as_bytes());
    out.push(0);
    out.push(auth.len() as u8);
    out.extend_from_slice(auth);
    if let Some(database) = database.filter(|_| flags & CLIENT_CONNECT_WITH_DB != 0) {
        out.extend_from_slice(database.as_bytes());
        out.push(0);
    }
    if flags & CLIENT_PLUGIN_AUTH != 0 {
        out.extend_from_slice(plugin.as_bytes());
        out.push(0);
    }
    out
}

/// The plugins whose scramble this client computes.
pub const NATIVE: &str = "mysql_native_password";
pub const CACHING_SHA2: &str = "caching_sha2_password";

/// The auth response `plugin` expects for `password`, or `None` when the
/// plugin is not supported. An empty password answers nothing.
pub fn scramble(plugin: &str, password: &[u8], nonce: &[u8]) -> Option<Vec<u8>> {
    if plugin != NATIVE && plugin != CACHING_SHA2 {
        return None;
    }
    if password.is_empty() {
        return Some(Vec::new());
    }
    // The nonce is 20 bytes; servers may add a terminating NUL.
    let nonce = nonce.get(..20).unwrap_or(nonce);
    Some(if plugin == NATIVE {
        // SHA1(password) XOR SHA1(nonce + SHA1(SHA1(password)))
        let stage1 = Sha1::digest(password);
        let stage2 = Sha1::digest(stage1);
        let mix = Sha1::new()
            .chain_update(nonce)
            .chain_update(stage2)
            .finalize();
        stage1.iter().zip(mix).map(|(a, b)| a ^ b).collect()
    } else {
        // SHA256(password) XOR SHA256(SHA256(SHA256(password)) + nonce)
        let stage1 = Sha256::digest(password);
        let stage2 = Sha256::digest(stage1);
        let mix = Sha256::new()
            .chain_update(stage2)
            .chain_update(nonce)
            .finalize();
        stage1.iter().zip(mix).map(|(a, b)| a ^ b).collect()
    })
}

/// An ERR packet: code, SQLSTATE (absent before the handshake) and message.
#[derive(Debug, PartialEq)]
pub struct ServerError {
    pub code: u16,
    pub sqlstate: Option<String>,
    pub message: String,
}

pub fn server_error(payload: &[u8]) -> Result<ServerError, TransportError> {
    let mut body = Body::new(payload, "ERR packet");
    body.u8()?;
    let code = body.u16()?;
    let sqlstate = if body.peek() == Some(b'#') {
        body.u8()?;
        Some(String::from_utf8_lossy(body.bytes(5)?).into_owned())
    } else {
        None
    };
    let message = String::from_utf8_lossy(body.rest()).into_owned();
    Ok(ServerError {
        code,
        sqlstate,
        message,
    })
}

impl ServerError {
    /// `1146 (42S02): Table 'test.x' doesn't exist`.
    pub fn describe(&self) -> String {
        match &self.sqlstate {
            Some(state) => format!("{} ({state}): {}", self.code, self.message),
            None => format!("{}: {}", self.code, self.message),
        }
    }
}

/// An OK packet's affected rows and status flags.
pub fn ok_packet(payload: &[u8]) -> Result<(u64, u16), TransportError> {
    let mut body = Body::new(payload, "OK packet");
    body.u8()?;
    let affected = body.lenenc()?;
    let _last_insert_id = body.lenenc()?;
    Ok((affected, body.u16()?))
}

/// An EOF packet (0xFE and short: a row starting with 0xFE is 9+ bytes).
pub fn is_eof(payload: &[u8]) -> bool {
    payload.first() == Some(&0xFE) && payload.len() < 9
}

/// The status flags of an EOF packet.
pub fn eof_status(payload: &[u8]) -> u16 {
    match payload {
        [_, _, _, s0, s1, ..] => u16::from_le_bytes([*s0, *s1]),
        _ => 0,
    }
}

/// The name of a ColumnDefinition41.
pub fn column_name(payload: &[u8]) -> Result<String, TransportError> {
    let mut body = Body::new(payload, "column definition");
    // catalog, schema, table, original table, then the name.
    for _ in 0..4 {
        body.lenenc_str()?;
    }
    body.lenenc_str()
}

/// A text-protocol row of `columns` values; NULL is `None`.
pub fn text_row(payload: &[u8], columns: usize) -> Result<Vec<Option<String>>, TransportError> {
    let mut body = Body::new(payload, "row");
    let mut values = Vec::new();
    for _ in 0..columns {
        values.push(if body.peek() == Some(0xFB) {
            body.u8()?;
            None
        } else {
            Some(body.lenenc_str()?)
        });
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn scrambles_match_independent_computation() {
        // Computed with Python's hashlib from the formulas in the docs.
        let nonce: Vec<u8> = (1..=20).collect();
        assert_eq!(
            hex(&scramble(NATIVE, b"secret", &nonce).unwrap()),
            "b32bb3a583e1340c0a1108d58b1be49781ad8c2f"
        );
        assert_eq!(
            hex(&scramble(CACHING_SHA2, b"secret", &nonce).unwrap()),
            "746ebe205d56a0707acb3e796e834e0dd7b1d61743b26bd5202c7a623230c7c9"
        );
        let with_nul = [nonce.as_slice(), &[0]].concat();
        assert_eq!(
            scramble(NATIVE, b"secret", &with_nul),
            scramble(NATIVE, b"secret", &nonce)
        );
        assert_eq!(scramble(NATIVE, b"", &nonce), Some(Vec::new()));
        assert_eq!(scramble("client_ed25519", b"secret", &nonce), None);
    }

    fn mariadb_handshake() -> Vec<u8> {
        let mut p = vec![10];
        p.extend_from_slice(b"5.5.5-10.11.6-MariaDB-0+deb12u1\0");
        p.extend_from_slice(&42u32.to_le_bytes());
        p.extend_from_slice(b"abcdefgh\0");
        p.extend_from_slice(&0xF7FEu16.to_le_bytes());
        p.push(45);
        p.extend_from_slice(&2u16.to_le_bytes());
        p.extend_from_slice(&0x81BFu16.to_le_bytes());
        p.push(21);
        p.extend_from_slice(&[0; 10]);
        p.extend_from_slice(b"ijklmnopqrst\0");
        p.extend_from_slice(b"mysql_native_password\0");
        p
    }

    #[test]
    fn handshake_parses_version_scramble_and_plugin() {
        let hs = handshake(&mariadb_handshake()).unwrap();
        assert_eq!(hs.server_version, "5.5.5-10.11.6-MariaDB-0+deb12u1");
        assert_eq!(hs.connection_id, 42);
        assert_eq!(hs.scramble, b"abcdefghijklmnopqrst");
        assert_eq!(hs.auth_plugin, NATIVE);
        assert_ne!(hs.capabilities & CLIENT_PLUGIN_AUTH, 0);
        let full = mariadb_handshake();
        for cut in [1, 10, 40, 60] {
            assert!(handshake(&full[..cut]).is_err(), "{cut}");
        }
        assert!(handshake(b"\x09old").is_err());
    }

    #[test]
    fn only_handshakes_look_like_handshakes() {
        let mut framed = packet(0, &mariadb_handshake()).0;
        assert!(looks_like_handshake(&framed));
        framed[3] = 1;
        assert!(!looks_like_handshake(&framed));
        assert!(looks_like_handshake(
            b"\x17\0\0\0\xff\x6a\x04Host not allowed"
        ));
        assert!(!looks_like_handshake(b"SSH-2.0-x\r\n"));
        assert!(!looks_like_handshake(b"HTTP/1.1 400 Bad Request\r\n"));
        assert!(!looks_like_handshake(b""));
    }

    #[test]
    fn packets_frame_and_join_fragments() {
        let (bytes, next) = packet(3, b"\x03SELECT 1");
        assert_eq!(bytes, b"\x09\0\0\x03\x03SELECT 1".to_vec());
        assert_eq!(next, 4);
        let big = vec![7u8; MAX_PAYLOAD];
        let (bytes, next) = packet(0, &big);
        assert_eq!(next, 2);
        let mut input = bytes.as_slice();
        let read = read_packet(&mut input, "x").unwrap();
        assert_eq!((read.seq, read.payload.len()), (1, MAX_PAYLOAD));
        let (too_big, _) = packet(0, &vec![7u8; MAX_PAYLOAD + 1]);
        assert!(read_packet(&mut too_big.as_slice(), "x").is_err());
        let (exact, next) = packet(0, &vec![1u8; MAX_FRAGMENT]);
        assert_eq!((exact.len(), next), (MAX_FRAGMENT + 8, 2));
        let mut truncated: &[u8] = b"\x09\0\0\0abc";
        assert!(matches!(
            read_packet(&mut truncated, "x"),
            Err(TransportError::Protocol(m)) if m.contains("closed")
        ));
    }

    #[test]
    fn handshake_response_carries_user_auth_db_and_plugin() {
        let flags = CLIENT_PROTOCOL_41
            | CLIENT_SECURE_CONNECTION
            | CLIENT_PLUGIN_AUTH
            | CLIENT_CONNECT_WITH_DB;
        let bytes = handshake_response(flags, "root", &[1, 2], Some("test"), NATIVE);
        assert_eq!(&bytes[..4], &flags.to_le_bytes());
        assert_eq!(
            &bytes[32..],
            b"root\0\x02\x01\x02test\0mysql_native_password\0"
        );
        let no_db =
            handshake_response(flags & !CLIENT_CONNECT_WITH_DB, "u", &[], Some("x"), NATIVE);
        assert_eq!(&no_db[32..], b"u\0\0mysql_native_password\0");
    }

    #[test]
    fn answers_parse() {
        let error = server_error(b"\xff\x15\x04#28000Access denied").unwrap();
        assert_eq!(error.describe(), "1045 (28000): Access denied");
        let early = server_error(b"\xff\x6a\x04Host 'x' is not allowed").unwrap();
        assert_eq!(early.describe(), "1130: Host 'x' is not allowed");
        assert_eq!(ok_packet(b"\0\x03\0\x02\0\0\0").unwrap(), (3, 2));
        assert_eq!(
            ok_packet(b"\0\xfc\x10\x27\0\x08\0\0\0").unwrap(),
            (10_000, 8)
        );
        assert!(ok_packet(b"\0\xfc").is_err());
        assert!(is_eof(b"\xfe\0\0\x0a\0"));
        assert_eq!(eof_status(b"\xfe\0\0\x0a\0"), 10);
        assert!(!is_eof(b"\xfe\x01\x02\x03\x04\x05\x06\x07\x08\x09"));
        let mut column = Vec::new();
        for field in ["def", "", "", "", "VERSION()", ""] {
            column.push(field.len() as u8);
            column.extend_from_slice(field.as_bytes());
        }
        assert_eq!(column_name(&column).unwrap(), "VERSION()");
        assert_eq!(
            text_row(b"\x011\xfb\x00", 3).unwrap(),
            [Some("1".to_string()), None, Some(String::new())]
        );
        assert!(text_row(b"\x051", 1).is_err());
    }
}
