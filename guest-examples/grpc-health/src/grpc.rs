//! gRPC on top of HTTP/2 for one unary call: the length-prefixed message,
//! the hand-encoded protobuf of `grpc.health.v1`, status codes and names.

/// `HealthCheckRequest { string service = 1; }` in a gRPC message frame.
pub fn check_request(service: &str) -> Vec<u8> {
    let mut proto = Vec::new();
    // proto3 leaves a default (empty) string out.
    if !service.is_empty() {
        proto.push(0x0a);
        put_varint(&mut proto, service.len() as u64);
        proto.extend_from_slice(service.as_bytes());
    }
    let mut message = vec![0];
    message.extend_from_slice(&(proto.len() as u32).to_be_bytes());
    message.extend_from_slice(&proto);
    message
}

/// The `status` of a `HealthCheckResponse` in a response body holding one
/// gRPC message.
pub fn check_response(body: &[u8]) -> Result<u64, String> {
    let (&compressed, rest) = body
        .split_first()
        .ok_or("the server ended the call without a response message")?;
    let (length, rest) = rest
        .split_first_chunk::<4>()
        .ok_or("a truncated gRPC message header")?;
    if compressed != 0 {
        return Err("a compressed response although none was asked for".into());
    }
    let length = u32::from_be_bytes(*length) as usize;
    let message = rest
        .get(..length)
        .ok_or("a gRPC message shorter than its length prefix")?;
    if rest.len() > length {
        return Err("more than one message for a unary call".into());
    }
    let mut buf = message;
    let mut status = 0;
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        match (key >> 3, key & 7) {
            (1, 0) => status = varint(&mut buf)?,
            // Fields a newer schema may add are skipped by wire type.
            (_, 0) => {
                varint(&mut buf)?;
            }
            (_, wire) => {
                let skip = match wire {
                    1 => 8,
                    2 => usize::try_from(varint(&mut buf)?).unwrap_or(usize::MAX),
                    5 => 4,
                    _ => return Err(format!("protobuf wire type {wire} in HealthCheckResponse")),
                };
                buf = buf.get(skip..).ok_or("a truncated HealthCheckResponse")?;
            }
        }
    }
    Ok(status)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn varint(buf: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first().ok_or("a truncated protobuf varint")?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("a protobuf varint longer than 10 bytes".into())
}

/// `HealthCheckResponse.ServingStatus` by name; a value this schema does
/// not know is shown as its number.
pub fn serving_status_name(status: u64) -> String {
    match status {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        other => other.to_string(),
    }
}

/// gRPC status code names.
pub fn code_name(code: u32) -> Option<&'static str> {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES.get(code as usize).copied()
}

/// The gRPC status an HTTP status stands for when a response carries no
/// `grpc-status` (gRPC's http-grpc-status-mapping).
pub fn code_from_http(status: u16) -> u32 {
    match status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

/// `grpc-message` is percent-encoded UTF-8; a malformed escape stays as is.
pub fn percent_decode(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        let escaped = tail
            .split_first_chunk::<2>()
            .filter(|(hex, _)| byte == b'%' && hex.iter().all(u8::is_ascii_hexdigit));
        match escaped {
            Some((&[high, low], after)) => {
                out.push(hex_value(high) << 4 | hex_value(low));
                rest = after;
            }
            None => {
                out.push(byte);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(digit: u8) -> u8 {
    char::from(digit)
        .to_digit(16)
        .map_or(0, |value| value as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_length_prefixed_protobuf() {
        assert_eq!(check_request(""), [0, 0, 0, 0, 0]);
        assert_eq!(
            check_request("shop"),
            [0, 0, 0, 0, 6, 0x0a, 4, b's', b'h', b'o', b'p']
        );
        let long = "s".repeat(200);
        let message = check_request(&long);
        assert_eq!(&message[..8], [0, 0, 0, 0, 203, 0x0a, 0xc8, 0x01]);
    }

    #[test]
    fn responses_give_their_status() {
        assert_eq!(check_response(&[0, 0, 0, 0, 2, 0x08, 1]), Ok(1));
        assert_eq!(check_response(&[0, 0, 0, 0, 2, 0x08, 2]), Ok(2));
        // UNKNOWN is proto3's default and left out: an empty message.
        assert_eq!(check_response(&[0, 0, 0, 0, 0]), Ok(0));
        // Unknown fields of every wire type are skipped.
        let message = [
            0x10, 0x96, 0x01, 0x19, 1, 2, 3, 4, 5, 6, 7, 8, 0x22, 2, b'h', b'i', 0x2d, 1, 2, 3, 4,
            0x08, 2,
        ];
        let mut body = vec![0, 0, 0, 0, message.len() as u8];
        body.extend_from_slice(&message);
        assert_eq!(check_response(&body), Ok(2));
    }

    #[test]
    fn malformed_responses_are_errors() {
        for body in [
            &[][..],
            &[0, 0, 0],
            &[1, 0, 0, 0, 2, 0x08, 1],
            &[0, 0, 0, 0, 3, 0x08, 1],
            &[0, 0, 0, 0, 2, 0x08, 1, 0],
            &[0, 0, 0, 0, 2, 0x08, 0x80],
            &[0, 0, 0, 0, 2, 0x0a, 5],
            &[0, 0, 0, 0, 2, 0x0b, 1],
            &[
                0, 0, 0, 0, 11, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
        ] {
            assert!(check_response(body).is_err(), "{body:?}");
        }
    }

    #[test]
    fn names_and_mappings() {
        assert_eq!(serving_status_name(1), "SERVING");
        assert_eq!(serving_status_name(9), "9");
        assert_eq!(code_name(5), Some("NOT_FOUND"));
        assert_eq!(code_name(16), Some("UNAUTHENTICATED"));
        assert_eq!(code_name(17), None);
        assert_eq!(code_from_http(404), 12);
        assert_eq!(code_from_http(503), 14);
        assert_eq!(code_from_http(500), 2);
    }

    #[test]
    fn grpc_messages_are_percent_decoded() {
        assert_eq!(percent_decode("plain text"), "plain text");
        assert_eq!(percent_decode("denied: %E2%9C%97 100%25"), "denied: ✗ 100%");
        assert_eq!(percent_decode("50% %zz %4"), "50% %zz %4");
        assert_eq!(percent_decode("%41%6a"), "Aj");
    }
}
