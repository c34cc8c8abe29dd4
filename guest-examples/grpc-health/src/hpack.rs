//! HPACK (RFC 7541), as much as a client needs: requests are encoded as
//! literals without indexing and without Huffman coding, which every server
//! must accept; responses are decoded in full (static and dynamic tables,
//! size updates, Huffman-coded strings).

use std::collections::VecDeque;

/// A header field as bytes: HPACK sizes count octets, and a server may send
/// values that are not UTF-8.
type Field = (Vec<u8>, Vec<u8>);

/// Literal header fields without indexing, new names, no Huffman coding.
pub fn encode(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0);
        encode_string(&mut out, name.as_bytes());
        encode_string(&mut out, value.as_bytes());
    }
    out
}

fn encode_string(out: &mut Vec<u8>, bytes: &[u8]) {
    encode_integer(out, 0, 7, bytes.len());
    out.extend_from_slice(bytes);
}

/// An integer with an N-bit prefix; `flags` fills the first byte's high bits.
fn encode_integer(out: &mut Vec<u8>, flags: u8, prefix_bits: u32, value: usize) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    let mut rest = value - max;
    while rest >= 0x80 {
        out.push((rest & 0x7f) as u8 | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// The decoding context of one connection: header blocks must be decoded
/// in the order they arrive, all of them, to keep the dynamic table in step
/// with the server's encoder.
pub struct Decoder {
    table: VecDeque<Field>,
    size: usize,
    max_size: usize,
    /// The SETTINGS_HEADER_TABLE_SIZE this client announced; a size update
    /// above it is an error.
    limit: usize,
}

impl Decoder {
    pub fn new(limit: usize) -> Decoder {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max_size: limit,
            limit,
        }
    }

    /// The header list of one complete header block.
    pub fn decode(&mut self, block: &[u8]) -> Result<Vec<(String, String)>, String> {
        let mut buf = block;
        let mut fields = Vec::new();
        // Size updates may only open a block (RFC 7541 §4.2).
        let mut at_start = true;
        while let Some(&first) = buf.first() {
            if first & 0x80 != 0 {
                let index = decode_integer(&mut buf, 7)?;
                fields.push(self.entry(index)?);
            } else if first & 0x40 != 0 {
                let field = self.literal(&mut buf, 6)?;
                self.insert(field.clone());
                fields.push(field);
            } else if first & 0x20 != 0 {
                if !at_start {
                    return Err("dynamic table size update after a header field".into());
                }
                let size = decode_integer(&mut buf, 5)?;
                if size > self.limit {
                    return Err(format!(
                        "dynamic table size update to {size}, above the {} announced",
                        self.limit
                    ));
                }
                self.max_size = size;
                self.evict(0);
                continue;
            } else {
                // Without indexing (0000) and never indexed (0001) decode alike.
                fields.push(self.literal(&mut buf, 4)?);
            }
            at_start = false;
        }
        Ok(fields
            .into_iter()
            .map(|(name, value)| {
                (
                    String::from_utf8_lossy(&name).into_owned(),
                    String::from_utf8_lossy(&value).into_owned(),
                )
            })
            .collect())
    }

    fn literal(&self, buf: &mut &[u8], prefix_bits: u32) -> Result<Field, String> {
        let name = match decode_integer(buf, prefix_bits)? {
            0 => decode_string(buf)?,
            index => self.entry(index)?.0,
        };
        Ok((name, decode_string(buf)?))
    }

    fn entry(&self, index: usize) -> Result<Field, String> {
        let found = match index.checked_sub(1) {
            Some(i) if i < STATIC_TABLE.len() => STATIC_TABLE
                .get(i)
                .map(|(name, value)| (name.as_bytes().to_vec(), value.as_bytes().to_vec())),
            Some(i) => self.table.get(i - STATIC_TABLE.len()).cloned(),
            None => None,
        };
        found.ok_or_else(|| format!("header table index {index} is out of range"))
    }

    fn insert(&mut self, field: Field) {
        let size = entry_size(&field);
        if size > self.max_size {
            // An entry larger than the table empties it and is not added (§4.4).
            self.table.clear();
            self.size = 0;
            return;
        }
        self.evict(size);
        self.size += size;
        self.table.push_front(field);
    }

    /// Drops the oldest entries until `room` more octets fit.
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max_size {
            match self.table.pop_back() {
                Some(old) => self.size -= entry_size(&old),
                None => break,
            }
        }
    }
}

fn entry_size((name, value): &Field) -> usize {
    32 + name.len() + value.len()
}

/// An integer with an N-bit prefix (§5.1), at most four continuation bytes:
/// enough for any size a header block can hold.
fn decode_integer(buf: &mut &[u8], prefix_bits: u32) -> Result<usize, String> {
    let (&first, rest) = buf.split_first().ok_or("truncated integer")?;
    *buf = rest;
    let max = (1usize << prefix_bits) - 1;
    let mut value = usize::from(first) & max;
    if value < max {
        return Ok(value);
    }
    for shift in [0, 7, 14, 21] {
        let (&byte, rest) = buf.split_first().ok_or("truncated integer")?;
        *buf = rest;
        value += usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("integer too large".into())
}

/// A string literal (§5.2), Huffman-coded or raw.
fn decode_string(buf: &mut &[u8]) -> Result<Vec<u8>, String> {
    let huffman = buf.first().is_some_and(|b| b & 0x80 != 0);
    let len = decode_integer(buf, 7)?;
    if len > buf.len() {
        return Err(format!(
            "a {len}-byte string in a header block with {} left",
            buf.len()
        ));
    }
    let (raw, rest) = buf.split_at(len);
    *buf = rest;
    if huffman {
        huffman_decode(raw)
    } else {
        Ok(raw.to_vec())
    }
}

/// The static table (Appendix A).
const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// Bit lengths of the Huffman codes of the 256 octets and EOS (Appendix B).
/// The code is canonical, so the lengths alone define it: codes of one
/// length are consecutive in symbol order, shorter codes sort first.
const HUFFMAN_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, //
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, //
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, //
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, //
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, //
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, //
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, //
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, //
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, //
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, //
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, //
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, //
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, //
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, //
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, //
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, //
    30,
];

const EOS: u16 = 256;
const MAX_CODE_BITS: usize = 30;

/// The canonical code in decoding form: how many codes each length has,
/// and the symbols sorted by (length, symbol).
struct Canonical {
    count: [u32; MAX_CODE_BITS + 1],
    symbols: [u16; 257],
}

const CANONICAL: Canonical = canonical();

const fn canonical() -> Canonical {
    let mut count = [0u32; MAX_CODE_BITS + 1];
    let mut symbol = 0;
    while symbol < 257 {
        count[HUFFMAN_LENGTHS[symbol] as usize] += 1;
        symbol += 1;
    }
    let mut next = [0usize; MAX_CODE_BITS + 1];
    let mut len = 1;
    while len < MAX_CODE_BITS {
        next[len + 1] = next[len] + count[len] as usize;
        len += 1;
    }
    let mut symbols = [0u16; 257];
    symbol = 0;
    while symbol < 257 {
        let len = HUFFMAN_LENGTHS[symbol] as usize;
        symbols[next[len]] = symbol as u16;
        next[len] += 1;
        symbol += 1;
    }
    Canonical { count, symbols }
}

/// Decodes a Huffman-coded string one bit at a time: at each length, the
/// codes of that length are the range `first..first + count`.
fn huffman_decode(input: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(input.len() * 8 / 5);
    let (mut code, mut first, mut index, mut len) = (0u32, 0u32, 0u32, 0usize);
    for byte in input {
        for bit in (0..8).rev() {
            code |= u32::from(byte >> bit & 1);
            len += 1;
            let count = *CANONICAL.count.get(len).ok_or("invalid Huffman code")?;
            if code < first + count {
                let symbol = *CANONICAL
                    .symbols
                    .get((index + code - first) as usize)
                    .ok_or("invalid Huffman code")?;
                if symbol == EOS {
                    return Err("EOS inside a Huffman-coded string".into());
                }
                out.push(symbol as u8);
                (code, first, index, len) = (0, 0, 0, 0);
            } else {
                index += count;
                first = (first + count) << 1;
                code <<= 1;
            }
        }
    }
    // What is left must be padding: at most 7 bits, all ones (§5.2).
    if len > 7 || (len > 0 && code >> 1 != (1 << len) - 1) {
        return Err("invalid Huffman padding".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn fields(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    type List = &'static [(&'static str, &'static str)];

    /// Decodes each block in turn and checks the header list, then the
    /// dynamic table's size as the RFC gives it.
    fn sequence(mut decoder: Decoder, steps: &[(&str, List, usize)]) {
        for (block, expected, size) in steps {
            assert_eq!(decoder.decode(&hex(block)).unwrap(), fields(expected));
            assert_eq!(decoder.size, *size, "table size after {block}");
        }
    }

    #[test]
    fn integers_encode_and_decode_as_in_c1() {
        for (value, prefix, bytes) in [
            (10, 5, vec![0x0a]),
            (1337, 5, vec![0x1f, 0x9a, 0x0a]),
            (42, 8, vec![0x2a]),
        ] {
            let mut out = Vec::new();
            encode_integer(&mut out, 0, prefix, value);
            assert_eq!(out, bytes);
            assert_eq!(decode_integer(&mut bytes.as_slice(), prefix), Ok(value));
        }
        let mut endless: &[u8] = &[0x1f, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert!(decode_integer(&mut endless, 5).is_err());
        assert!(decode_integer(&mut [0x1f, 0x9a].as_slice(), 5).is_err());
    }

    #[test]
    fn field_representations_decode_as_in_c2() {
        let mut decoder = Decoder::new(4096);
        let block = hex("400a637573746f6d2d6b65790d637573746f6d2d686561646572");
        assert_eq!(
            decoder.decode(&block).unwrap(),
            fields(&[("custom-key", "custom-header")])
        );
        assert_eq!(decoder.size, 55);
        let mut decoder = Decoder::new(4096);
        assert_eq!(
            decoder
                .decode(&hex("040c2f73616d706c652f70617468"))
                .unwrap(),
            fields(&[(":path", "/sample/path")])
        );
        assert_eq!(
            decoder
                .decode(&hex("100870617373776f726406736563726574"))
                .unwrap(),
            fields(&[("password", "secret")])
        );
        assert_eq!(
            decoder.decode(&hex("82")).unwrap(),
            fields(&[(":method", "GET")])
        );
        assert_eq!(decoder.size, 0);
    }

    const REQUEST_1: List = &[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
    ];
    const REQUEST_2: List = &[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
        ("cache-control", "no-cache"),
    ];
    const REQUEST_3: List = &[
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/index.html"),
        (":authority", "www.example.com"),
        ("custom-key", "custom-value"),
    ];

    #[test]
    fn requests_decode_as_in_c3_and_c4() {
        sequence(
            Decoder::new(4096),
            &[
                ("828684410f7777772e6578616d706c652e636f6d", REQUEST_1, 57),
                ("828684be58086e6f2d6361636865", REQUEST_2, 110),
                (
                    "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
                    REQUEST_3,
                    164,
                ),
            ],
        );
        sequence(
            Decoder::new(4096),
            &[
                ("828684418cf1e3c2e5f23a6ba0ab90f4ff", REQUEST_1, 57),
                ("828684be5886a8eb10649cbf", REQUEST_2, 110),
                (
                    "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
                    REQUEST_3,
                    164,
                ),
            ],
        );
    }

    const RESPONSE_1: List = &[
        (":status", "302"),
        ("cache-control", "private"),
        ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
        ("location", "https://www.example.com"),
    ];
    const RESPONSE_2: List = &[
        (":status", "307"),
        ("cache-control", "private"),
        ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
        ("location", "https://www.example.com"),
    ];
    const RESPONSE_3: List = &[
        (":status", "200"),
        ("cache-control", "private"),
        ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
        ("location", "https://www.example.com"),
        ("content-encoding", "gzip"),
        (
            "set-cookie",
            "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
        ),
    ];

    /// C.5 and C.6 run with a 256-octet table, so entries get evicted.
    #[test]
    fn responses_decode_with_evictions_as_in_c5_and_c6() {
        sequence(
            Decoder::new(256),
            &[
                (
                    "4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d",
                    RESPONSE_1,
                    222,
                ),
                ("4803333037c1c0bf", RESPONSE_2, 222),
                (
                    "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b2076657273696f6e3d31",
                    RESPONSE_3,
                    215,
                ),
            ],
        );
        sequence(
            Decoder::new(256),
            &[
                (
                    "488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3",
                    RESPONSE_1,
                    222,
                ),
                ("4883640effc1c0bf", RESPONSE_2, 222),
                (
                    "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
                    RESPONSE_3,
                    215,
                ),
            ],
        );
    }

    #[test]
    fn size_updates_shrink_the_table_and_are_bounded() {
        let mut decoder = Decoder::new(4096);
        decoder
            .decode(&hex("400a637573746f6d2d6b65790d637573746f6d2d686561646572"))
            .unwrap();
        // A size update to 0 empties the table; index 62 is then gone.
        assert_eq!(decoder.decode(&hex("2082")).unwrap().len(), 1);
        assert_eq!((decoder.size, decoder.table.len()), (0, 0));
        assert!(decoder.decode(&hex("be")).is_err());
        // Above the announced 4096 (0x3f e1 1f = 31 + 4066 = 4097).
        assert!(decoder.decode(&hex("3fe21f")).is_err());
        // Only at the start of a block.
        assert!(decoder.decode(&hex("8220")).is_err());
    }

    #[test]
    fn every_octet_round_trips_through_the_huffman_code() {
        // Encode with the canonical codes, then decode.
        let mut codes = [0u32; 257];
        let (mut code, mut prev) = (0u32, 0u8);
        let mut order: Vec<usize> = (0..257).collect();
        order.sort_by_key(|&s| (HUFFMAN_LENGTHS[s], s));
        for (i, &s) in order.iter().enumerate() {
            if i > 0 {
                code = (code + 1) << (HUFFMAN_LENGTHS[s] - prev);
            }
            prev = HUFFMAN_LENGTHS[s];
            codes[s] = code;
        }
        // Spot checks against Appendix B.
        assert_eq!((codes[b'0' as usize], HUFFMAN_LENGTHS[48]), (0x0, 5));
        assert_eq!((codes[b'a' as usize], HUFFMAN_LENGTHS[97]), (0x3, 5));
        assert_eq!((codes[256], HUFFMAN_LENGTHS[256]), (0x3fffffff, 30));
        let text: Vec<u8> = (0..=255u8).rev().chain(*b"application/grpc").collect();
        let (mut bits, mut count, mut out) = (0u64, 0u32, Vec::new());
        for &b in &text {
            bits = bits << HUFFMAN_LENGTHS[b as usize] | u64::from(codes[b as usize]);
            count += u32::from(HUFFMAN_LENGTHS[b as usize]);
            while count >= 8 {
                count -= 8;
                out.push((bits >> count) as u8);
            }
        }
        if count > 0 {
            out.push((bits << (8 - count)) as u8 | (0xff >> count));
        }
        assert_eq!(huffman_decode(&out).unwrap(), text);
    }

    #[test]
    fn bad_huffman_strings_are_refused() {
        // Eight bits of padding, padding with a zero, and EOS itself.
        assert!(huffman_decode(&[0xff]).is_err());
        assert!(huffman_decode(&[0x1f, 0xfe]).is_err());
        assert!(huffman_decode(&[0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn encoded_fields_decode_back() {
        let list = [
            (":path", "/grpc.health.v1.Health/Check"),
            ("x-long", &"v".repeat(300)[..]),
        ];
        let block = encode(&list);
        assert_eq!(block[0], 0);
        assert_eq!(Decoder::new(4096).decode(&block).unwrap(), fields(&list));
    }

    #[test]
    fn malformed_blocks_are_errors_not_panics() {
        for block in ["80", "ff00", "bf", "41", "4105616263", "0f", "00ff7f"] {
            assert!(Decoder::new(4096).decode(&hex(block)).is_err(), "{block}");
        }
    }
}
