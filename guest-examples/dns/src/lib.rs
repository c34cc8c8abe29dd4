//! The `dns` strategy: lookups through the host's resolver (A/AAAA), or
//! queries of any supported type sent to a named nameserver over UDP.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use checkhost_sdk::dns::{self, RecordType};
use checkhost_sdk::{Client, Request, Response, RunContext, Strategy, Timings, TransportError};
use schemars::JsonSchema;
use serde::Deserialize;

const DEFAULT_TIMEOUT_MS: u32 = 3_000;

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// `ip:port` of a nameserver to ask directly; without it the host's
    /// resolver answers (A and AAAA only).
    pub nameserver: Option<String>,
    pub timeout_ms: Option<u32>,
}

pub struct Dns;

impl Strategy for Dns {
    const ID: &'static str = "dns";
    const DISPLAY_NAME: &'static str = "DNS";
    const DESCRIPTION: &'static str =
        "DNS lookups; request method is the record type, target the name";
    type Config = Config;
    type Client = DnsClient;

    fn connect(config: Config, _ctx: &RunContext) -> Result<DnsClient, TransportError> {
        let nameserver = config
            .nameserver
            .map(|ns| {
                ns.parse::<SocketAddr>().map_err(|_| {
                    TransportError::BadConfig(format!("nameserver `{ns}` is not an ip:port"))
                })
            })
            .transpose()?;
        Ok(DnsClient {
            nameserver,
            timeout: Duration::from_millis(config.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS).into()),
            next_id: 0x4c48,
        })
    }
}

pub struct DnsClient {
    nameserver: Option<SocketAddr>,
    timeout: Duration,
    next_id: u16,
}

impl DnsClient {
    fn query(
        &mut self,
        server: SocketAddr,
        name: &str,
        rtype: RecordType,
    ) -> Result<Vec<String>, TransportError> {
        self.next_id = self.next_id.wrapping_add(1);
        let id = self.next_id;
        let packet = dns::encode_query(id, name, rtype).map_err(TransportError::BadConfig)?;
        let bind = if server.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let socket = UdpSocket::bind(bind).map_err(|e| TransportError::from_io("udp bind", &e))?;
        let _ = socket.set_read_timeout(Some(self.timeout));
        socket
            .send_to(&packet, server)
            .map_err(|e| TransportError::from_io(&format!("send to {server}"), &e))?;
        let mut buf = [0u8; 4096];
        loop {
            let (n, from) = socket.recv_from(&mut buf).map_err(|e| match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    TransportError::Timeout(format!("no answer from {server}"))
                }
                _ => TransportError::from_io(&format!("receive from {server}"), &e),
            })?;
            if from != server {
                continue;
            }
            let answer = dns::decode_answer(&buf[..n], rtype).map_err(TransportError::Protocol)?;
            if answer.id != id {
                continue;
            }
            return match answer.rcode {
                0 => Ok(answer.values),
                _ => Err(TransportError::Dns(format!(
                    "{name}: {}",
                    answer.rcode_name()
                ))),
            };
        }
    }

    fn system_lookup(name: &str, rtype: RecordType) -> Result<Vec<String>, TransportError> {
        let want_v4 = match rtype {
            RecordType::A => true,
            RecordType::Aaaa => false,
            other => {
                return Err(TransportError::BadConfig(format!(
                    "{other:?} records need a `nameserver` in the dns strategy config"
                )));
            }
        };
        let addrs = (name, 0)
            .to_socket_addrs()
            .map_err(|e| TransportError::Dns(format!("{name}: {e}")))?;
        Ok(addrs
            .filter(|a| a.is_ipv4() == want_v4)
            .map(|a| a.ip().to_string())
            .collect())
    }
}

impl Client for DnsClient {
    /// Answers with a JSON array of record values as body.
    fn exec(&mut self, req: Request) -> Result<Response, TransportError> {
        let rtype = RecordType::parse(&req.method).ok_or_else(|| {
            TransportError::BadConfig(format!("unsupported record type `{}`", req.method))
        })?;
        let start = Instant::now();
        let values = match self.nameserver {
            Some(server) => self.query(server, &req.target, rtype)?,
            None => Self::system_lookup(&req.target, rtype)?,
        };
        let body = serde_json::to_vec(&values).unwrap_or_default();
        Ok(Response {
            status: 0,
            status_text: "NOERROR".into(),
            headers: Vec::new(),
            body,
            timings: Timings {
                dns_ms: Some(start.elapsed().as_secs_f64() * 1000.0),
                ..Timings::default()
            },
        })
    }
}

checkhost_sdk::export_strategy!(Dns);
