//! Real servers on loopback ports, started by the tests themselves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// An HTTP/1.1 server with a few fixed routes:
/// `/ok` JSON 200, `/fail` 500, `/redirect` 302 → `/ok`, `/slow` never answers,
/// `/echo` returns the request head as the body.
static BIG_HEADERS: std::sync::OnceLock<String> = std::sync::OnceLock::new();

pub async fn http() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut len = 0;
                while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf[len..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => len += n,
                    }
                }
                let head = String::from_utf8_lossy(&buf[..len]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, extra, body) = match path.as_str() {
                    "/ok" => (
                        "200 OK",
                        "",
                        r#"{"status":"up","up":true,"db":{"ok":true},"items":[1,2,3]}"#.to_string(),
                    ),
                    "/fail" => ("500 Internal Server Error", "", "boom".to_string()),
                    "/redirect" => ("302 Found", "Location: /ok\r\n", String::new()),
                    "/slow" => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                    "/echo" => ("200 OK", "", head.clone()),
                    // 90 headers of 4 KiB: 360 KiB of headers, no body.
                    "/big-headers" => (
                        "200 OK",
                        BIG_HEADERS
                            .get_or_init(|| {
                                (0..90)
                                    .map(|i| format!("X-Big-{i}: {}\r\n", "h".repeat(4096)))
                                    .collect()
                            })
                            .as_str(),
                        String::new(),
                    ),
                    _ => ("404 Not Found", "", "no such route".to_string()),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(response.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    addr
}

/// A TCP server that greets every connection with `banner`.
pub async fn banner(banner: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let _ = conn.write_all(banner.as_bytes()).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            });
        }
    });
    addr
}

/// A TCP server that accepts connections, holds them and never writes a
/// byte: what a client's read timeout is for.
pub async fn silent() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    addr
}

/// A loopback port nothing listens on: one the system just handed out
/// and got back.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A DNS server on a loopback UDP port answering from a fixed zone:
/// `www.shop.test` A 10.0.0.1 and 10.0.0.2, `shop.test` MX/TXT/NS, any
/// other name NXDOMAIN.
pub async fn dns() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            if let Some(reply) = dns_reply(&buf[..n]) {
                let _ = socket.send_to(&reply, peer).await;
            }
        }
    });
    addr
}

fn dns_reply(query: &[u8]) -> Option<Vec<u8>> {
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = *query.get(pos)? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(pos..pos + len)?).to_string());
        pos += len;
    }
    let qtype = u16::from_be_bytes([*query.get(pos)?, *query.get(pos + 1)?]);
    let question_end = pos + 4;
    let name = labels.join(".");
    let encode_name = |n: &str| {
        let mut out = Vec::new();
        for l in n.split('.') {
            out.push(l.len() as u8);
            out.extend_from_slice(l.as_bytes());
        }
        out.push(0);
        out
    };
    let answers: Vec<Vec<u8>> = match (name.as_str(), qtype) {
        ("www.shop.test", 1) => vec![vec![10, 0, 0, 1], vec![10, 0, 0, 2]],
        ("shop.test", 15) => vec![[vec![0, 10], encode_name("mail.shop.test")].concat()],
        ("shop.test", 16) => vec![[vec![11], b"v=spf1 -all".to_vec()].concat()],
        ("shop.test", 2) => vec![encode_name("ns1.shop.test")],
        _ => Vec::new(),
    };
    let known = name == "www.shop.test" || name == "shop.test";
    let mut reply = query[..2].to_vec();
    reply.extend_from_slice(&[0x81, if known { 0x80 } else { 0x83 }]);
    reply.extend_from_slice(&[0, 1, 0, answers.len() as u8, 0, 0, 0, 0]);
    reply.extend_from_slice(&query[12..question_end]);
    for rdata in answers {
        reply.extend_from_slice(&[0xc0, 12]);
        reply.extend_from_slice(&qtype.to_be_bytes());
        reply.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        reply.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        reply.extend_from_slice(&rdata);
    }
    Some(reply)
}

/// A TLS server (TLS 1.2 and 1.3) with a self-signed certificate for
/// `localhost`, valid now, or expired in 2021 when `expired` is set.
pub async fn tls(expired: bool) -> SocketAddr {
    use tokio_rustls::rustls::version::{TLS12, TLS13};
    tls_with(expired, &[&TLS13, &TLS12]).await
}

/// A TLS server like [`tls`] that speaks only `versions`, and agrees to
/// ALPN `h2` or `http/1.1` when a client offers them.
pub async fn tls_with(
    expired: bool,
    versions: &[&'static tokio_rustls::rustls::SupportedProtocolVersion],
) -> SocketAddr {
    use tokio_rustls::rustls;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "checkhost test");
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    } else {
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2099, 1, 1);
    }
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(conn).await;
            });
        }
    });
    addr
}
