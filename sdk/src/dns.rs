//! A minimal DNS wire codec (RFC 1035) for plugins that query a nameserver
//! directly over a `wasi:sockets` UDP socket.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Record types a query can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    A,
    Ns,
    Cname,
    Mx,
    Txt,
    Aaaa,
}

impl RecordType {
    pub fn parse(name: &str) -> Option<RecordType> {
        Some(match name.to_ascii_uppercase().as_str() {
            "A" => RecordType::A,
            "NS" => RecordType::Ns,
            "CNAME" => RecordType::Cname,
            "MX" => RecordType::Mx,
            "TXT" => RecordType::Txt,
            "AAAA" => RecordType::Aaaa,
            _ => return None,
        })
    }

    pub fn code(self) -> u16 {
        match self {
            RecordType::A => 1,
            RecordType::Ns => 2,
            RecordType::Cname => 5,
            RecordType::Mx => 15,
            RecordType::Txt => 16,
            RecordType::Aaaa => 28,
        }
    }
}

/// A parsed answer: the response code and the answers of the asked type,
/// rendered as text (`10 mail.example.` for MX).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub id: u16,
    pub rcode: u8,
    pub values: Vec<String>,
}

impl Answer {
    /// `NOERROR`, `NXDOMAIN`, `SERVFAIL`...
    pub fn rcode_name(&self) -> &'static str {
        match self.rcode {
            0 => "NOERROR",
            1 => "FORMERR",
            2 => "SERVFAIL",
            3 => "NXDOMAIN",
            4 => "NOTIMP",
            5 => "REFUSED",
            _ => "UNKNOWN",
        }
    }
}

/// Encodes a recursive query for `name`.
pub fn encode_query(id: u16, name: &str, rtype: RecordType) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(32 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("invalid hostname `{name}`"));
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&rtype.code().to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    Ok(out)
}

/// Decodes a response, keeping the answers of type `rtype`.
pub fn decode_answer(packet: &[u8], rtype: RecordType) -> Result<Answer, String> {
    let mut r = Reader {
        buf: packet,
        pos: 0,
    };
    let id = r.u16()?;
    let flags = r.u16()?;
    let qdcount = r.u16()?;
    let ancount = r.u16()?;
    r.skip(4)?;
    for _ in 0..qdcount {
        r.name()?;
        r.skip(4)?;
    }
    let mut values = Vec::new();
    for _ in 0..ancount {
        r.name()?;
        let kind = r.u16()?;
        r.skip(6)?;
        let len = r.u16()? as usize;
        let start = r.pos;
        if kind == rtype.code() {
            values.push(r.rdata(rtype, len)?);
        }
        r.pos = start + len;
    }
    Ok(Answer {
        id,
        rcode: (flags & 0x000f) as u8,
        values,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        let end = end.ok_or_else(|| "truncated DNS packet".to_string())?;
        let slice = &self.buf[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn skip(&mut self, n: usize) -> Result<(), String> {
        self.take(n).map(|_| ())
    }

    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Reads a possibly compressed name and leaves the cursor after it.
    fn name(&mut self) -> Result<String, String> {
        let mut labels = Vec::new();
        let mut pos = self.pos;
        let mut resume = None;
        for _ in 0..128 {
            let len = *self.buf.get(pos).ok_or("truncated DNS name")? as usize;
            if len & 0xc0 == 0xc0 {
                let low = *self.buf.get(pos + 1).ok_or("truncated DNS pointer")? as usize;
                resume.get_or_insert(pos + 2);
                pos = ((len & 0x3f) << 8) | low;
            } else if len == 0 {
                self.pos = resume.unwrap_or(pos + 1);
                return Ok(labels.join(".") + ".");
            } else {
                let label = self
                    .buf
                    .get(pos + 1..pos + 1 + len)
                    .ok_or("truncated label")?;
                labels.push(String::from_utf8_lossy(label).into_owned());
                pos += 1 + len;
            }
        }
        Err("DNS name compression loop".into())
    }

    fn rdata(&mut self, rtype: RecordType, len: usize) -> Result<String, String> {
        Ok(match rtype {
            RecordType::A => {
                let b = self.take(4)?;
                Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()
            }
            RecordType::Aaaa => {
                let b: [u8; 16] = self.take(16)?.try_into().map_err(|_| "bad AAAA")?;
                Ipv6Addr::from(b).to_string()
            }
            RecordType::Ns | RecordType::Cname => self.name()?,
            RecordType::Mx => {
                let preference = self.u16()?;
                format!("{preference} {}", self.name()?)
            }
            RecordType::Txt => {
                let data = self.take(len)?;
                let mut text = String::new();
                let mut i = 0;
                while i < data.len() {
                    let n = data[i] as usize;
                    let part = data.get(i + 1..i + 1 + n).ok_or("truncated TXT")?;
                    text.push_str(&String::from_utf8_lossy(part));
                    i += 1 + n;
                }
                text
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_query_with_compressed_answers() {
        let query = encode_query(7, "example.test", RecordType::Mx).unwrap();
        let mut packet = query.clone();
        packet[2] = 0x81;
        packet[3] = 0x80;
        packet[7] = 1;
        // answer: name pointer to offset 12, type MX, class IN, ttl, rdata
        packet.extend_from_slice(&[0xc0, 12, 0, 15, 0, 1, 0, 0, 0, 60, 0, 9, 0, 10]);
        packet.extend_from_slice(&[4, b'm', b'a', b'i', b'l', 0xc0, 12]);
        let answer = decode_answer(&packet, RecordType::Mx).unwrap();
        assert_eq!(answer.id, 7);
        assert_eq!(answer.rcode_name(), "NOERROR");
        assert_eq!(answer.values, vec!["10 mail.example.test.".to_string()]);
    }

    #[test]
    fn rejects_truncated_packets_and_bad_names() {
        assert!(decode_answer(&[0, 1, 2], RecordType::A).is_err());
        assert!(encode_query(1, "a..b", RecordType::A).is_err());
    }
}
