//! The `mqtt` strategy: one MQTT 3.1.1 session (CONNECT/CONNACK, clean
//! session) that reads the broker's version from `$SYS` when it may, then
//! publishes at QoS 1 for the `service` collector.

mod packet;

use std::io::BufReader;
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use checkhost_sdk::net::{self, ms_since};
use checkhost_sdk::service::{self, INFO, QUERY};
use checkhost_sdk::{
    Client, Request, Response, RunContext, Strategy, Timings, TransportError, Value, json,
};
use schemars::JsonSchema;
use serde::Deserialize;

const DEFAULT_PORT: u16 = 1883;
const KEEP_ALIVE_SECS: u16 = 30;
/// Mosquitto publishes its version here as a retained message.
const VERSION_TOPIC: &str = "$SYS/broker/version";
/// The longest wait for that message, whatever the timeout.
const VERSION_WAIT: Duration = Duration::from_secs(1);
/// Unrelated packets skipped while waiting for one answer.
const MAX_SKIPPED: usize = 1_000;

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Host name or address of the broker.
    #[schemars(extend("x-templatable" = true))]
    pub host: String,
    /// TCP port; 1883 when absent.
    pub port: Option<u16>,
    /// Client identifier; `checkhost` and a time-based hex suffix when absent.
    #[schemars(extend("x-templatable" = true))]
    pub client_id: Option<String>,
    /// User name sent in CONNECT.
    #[schemars(extend("x-templatable" = true))]
    pub username: Option<String>,
    /// Password sent in CONNECT (only with `username`), as a secret reference.
    #[schemars(extend("x-secret" = true))]
    pub password: Option<String>,
    /// Subscribe to `$SYS/broker/version` on connect to learn the broker's
    /// version (Mosquitto publishes it), waiting at most a second. On by
    /// default; turn it off for brokers that disconnect clients subscribing
    /// to topics they may not read.
    pub sys_version: Option<bool>,
    /// Bound on connecting and on every read and write.
    pub timeout_ms: Option<u32>,
}

pub struct Mqtt;

impl Strategy for Mqtt {
    const ID: &'static str = "mqtt";
    const DISPLAY_NAME: &'static str = "MQTT";
    const DESCRIPTION: &'static str = "An MQTT 3.1.1 session: CONNECT/CONNACK on connect; the one \
         query is `publish <topic> <payload>`, at QoS 1, answered when the broker acknowledges it";
    type Config = Config;
    type Client = Conn;

    fn result_schema() -> Value {
        json!({
            "oneOf": [
                {
                    "description": "info: what CONNACK and $SYS said",
                    "type": "object",
                    "properties": {
                        "connackCode": {"type": "integer", "const": 0},
                        "sessionPresent": {"type": "boolean"},
                        "protocol": {"const": "MQTT 3.1.1"},
                        "clientId": {"type": "string"},
                        "sysVersion": {"type": ["string", "null"], "description": "the $SYS/broker/version message, e.g. `mosquitto version 2.0.11`"},
                        "serverVersion": {"type": ["string", "null"], "description": "the version number in it"}
                    }
                },
                {
                    "description": "query `publish <topic> <payload>`: the broker's PUBACK; any other query is ok=false with an error",
                    "type": "object",
                    "properties": {
                        "ok": {"type": "boolean"},
                        "packetId": {"type": "integer"},
                        "topic": {"type": "string"},
                        "payloadBytes": {"type": "integer"},
                        "error": {"type": "string"}
                    },
                    "required": ["ok"]
                }
            ]
        })
    }

    fn connect(config: Config, _ctx: &RunContext) -> Result<Conn, TransportError> {
        let client_id = config.client_id.clone().unwrap_or_else(default_client_id);
        let connect = packet::Connect {
            client_id: &client_id,
            keep_alive_secs: KEEP_ALIVE_SECS,
            username: config.username.as_deref(),
            password: config.password.as_deref(),
        }
        .encode()
        .map_err(TransportError::BadConfig)?;
        let timeout = service::timeout(config.timeout_ms);
        let connection = net::connect(&config.host, config.port.unwrap_or(DEFAULT_PORT), timeout)?;
        let mut conn = Conn {
            io: BufReader::new(connection.stream),
            timings: connection.timings,
            timeout,
            info: Value::Null,
            connected: false,
            next_id: 0,
        };
        let start = Instant::now();
        conn.send(&connect, "CONNECT")?;
        let session_present = conn.connack(config.username.as_deref())?;
        conn.connected = true;
        let sys_version = if config.sys_version.unwrap_or(true) {
            conn.sys_version()?
        } else {
            None
        };
        conn.timings.wait_ms = Some(ms_since(start));
        conn.info = json!({
            "connackCode": 0,
            "sessionPresent": session_present,
            "protocol": "MQTT 3.1.1",
            "clientId": client_id,
            "serverVersion": sys_version.as_deref().map(version_number),
            "sysVersion": sys_version,
        });
        Ok(conn)
    }
}

/// Unique enough between runs, and within what MQTT 3.1.1 says every broker
/// must accept: 1–23 characters, letters and digits only.
fn default_client_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("checkhost{:012x}", nanos & 0xFFFF_FFFF_FFFF)
}

/// `mosquitto version 2.0.11` → `2.0.11`; text without a number as is.
fn version_number(text: &str) -> String {
    text.split_whitespace()
        .find(|word| word.starts_with(|c: char| c.is_ascii_digit()))
        .unwrap_or(text)
        .to_string()
}

pub struct Conn {
    io: BufReader<TcpStream>,
    timings: Timings,
    timeout: Duration,
    info: Value,
    /// Whether CONNACK accepted us, so that DISCONNECT makes sense.
    connected: bool,
    next_id: u16,
}

impl Conn {
    fn send(&mut self, bytes: &[u8], what: &str) -> Result<(), TransportError> {
        net::send(self.io.get_mut(), bytes, what)
    }

    /// Packet identifiers run 1..=65535 (0 is not allowed).
    fn packet_id(&mut self) -> u16 {
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        self.next_id
    }

    /// Reads CONNACK and answers whether a session was present.
    fn connack(&mut self, username: Option<&str>) -> Result<bool, TransportError> {
        let first = packet::peek(&mut self.io, "CONNACK")?;
        let header = self.io.buffer().first().copied();
        if header != Some(packet::CONNACK) {
            return Err(TransportError::Protocol(format!(
                "not an MQTT broker: expected CONNACK, got {first}"
            )));
        }
        let connack = packet::read(&mut self.io, "CONNACK")?;
        let [flags, code] = connack.body[..] else {
            return Err(TransportError::Protocol(format!(
                "malformed CONNACK: {} bytes instead of 2",
                connack.body.len()
            )));
        };
        let meaning = packet::connack_meaning(code);
        match code {
            0 => Ok(flags & 0x01 == 1),
            4 => Err(match username {
                Some(user) => service::auth_failed(user, format!("CONNACK 4 ({meaning})")),
                None => TransportError::Refused(format!(
                    "authentication failed: the broker needs credentials, CONNACK 4 ({meaning})"
                )),
            }),
            5 => Err(TransportError::Refused(format!(
                "not authorized: the broker refused {}, CONNACK 5",
                username.map_or("anonymous clients".to_string(), |u| format!("user `{u}`"))
            ))),
            1..=3 => Err(TransportError::Refused(format!(
                "the broker refused the connection: CONNACK {code} ({meaning})"
            ))),
            _ => Err(TransportError::Protocol(format!(
                "malformed CONNACK: return code {code} is reserved"
            ))),
        }
    }

    /// The retained `$SYS/broker/version` message, if the broker sends one
    /// soon. A broker that grants the subscription sends it right after
    /// SUBACK, so the wait after SUBACK is short; one that has no such topic
    /// costs at most `VERSION_WAIT`.
    fn sys_version(&mut self) -> Result<Option<String>, TransportError> {
        let id = self.packet_id();
        let subscribe = packet::subscribe(id, VERSION_TOPIC).map_err(TransportError::Other)?;
        let start = Instant::now();
        self.send(&subscribe, "SUBSCRIBE")?;
        let mut deadline = start + VERSION_WAIT.min(self.timeout);
        let mut version = None;
        for _ in 0..MAX_SKIPPED {
            let Some(left) = deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
            else {
                break;
            };
            let _ = self.io.get_ref().set_read_timeout(Some(left));
            let incoming = match packet::read(&mut self.io, "SUBACK") {
                Ok(incoming) => incoming,
                Err(TransportError::Timeout(_)) => break,
                Err(e) => return Err(e),
            };
            match incoming.kind() {
                packet::SUBACK if incoming.id() == Some(id) => {
                    if incoming.body.get(2).is_none_or(|granted| *granted == 0x80) {
                        break;
                    }
                    let round_trip = start.elapsed();
                    deadline =
                        deadline.min(Instant::now() + round_trip.max(Duration::from_millis(100)));
                }
                packet::PUBLISH => {
                    if let Some((topic, payload)) = incoming.publish()
                        && topic == VERSION_TOPIC
                    {
                        version = Some(String::from_utf8_lossy(payload).trim().to_string());
                        break;
                    }
                }
                _ => {}
            }
        }
        let _ = self.io.get_ref().set_read_timeout(Some(self.timeout));
        Ok(version)
    }

    fn query(&mut self, text: &str) -> Result<Response, TransportError> {
        let text = text.trim();
        let (verb, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        if !verb.eq_ignore_ascii_case("publish") {
            return Ok(refused(
                format!(
                    "unsupported query `{text}`: the only query is `publish <topic> <payload>`"
                ),
                self.timings,
            ));
        }
        let rest = rest.trim_start();
        let (topic, payload) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let payload = payload.trim_start();
        let id = self.packet_id();
        let publish = match packet::publish_qos1(id, topic, payload.as_bytes()) {
            Ok(publish) => publish,
            Err(why) => return Ok(refused(why, self.timings)),
        };
        let start = Instant::now();
        self.send(&publish, "PUBLISH")?;
        for _ in 0..MAX_SKIPPED {
            let incoming = packet::read(&mut self.io, "PUBACK")?;
            if incoming.kind() == packet::PUBACK && incoming.id() == Some(id) {
                let timings = Timings {
                    wait_ms: Some(ms_since(start)),
                    ..self.timings
                };
                return Ok(service::reply(
                    true,
                    &json!({"ok": true, "packetId": id, "topic": topic, "payloadBytes": payload.len()}),
                    timings,
                ));
            }
        }
        Err(TransportError::Protocol(format!(
            "no PUBACK for packet {id} among {MAX_SKIPPED} packets"
        )))
    }
}

/// A query this strategy will not send: an answer, not a transport error.
fn refused(error: String, timings: Timings) -> Response {
    service::reply(false, &json!({"ok": false, "error": error}), timings)
}

impl Client for Conn {
    /// `info` answers what CONNACK and `$SYS` said; `query` publishes.
    fn exec(&mut self, request: Request) -> Result<Response, TransportError> {
        match request.method.as_str() {
            INFO => Ok(service::reply(true, &self.info, self.timings)),
            QUERY => self.query(&request.target),
            other => Err(service::unknown_method(other)),
        }
    }

    fn timings(&self) -> Timings {
        self.timings
    }
}

impl Drop for Conn {
    /// A clean goodbye, so the broker does not publish a will or log an
    /// abrupt disconnect; best effort.
    fn drop(&mut self) {
        if self.connected {
            let _ = net::send(self.io.get_mut(), &packet::DISCONNECT, "DISCONNECT");
        }
    }
}

checkhost_sdk::export_strategy!(Mqtt);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_numbers_come_out_of_sys_text() {
        assert_eq!(version_number("mosquitto version 2.0.11"), "2.0.11");
        assert_eq!(version_number("5.8.1"), "5.8.1");
        assert_eq!(version_number("VerneMQ"), "VerneMQ");
    }

    #[test]
    fn default_client_ids_use_only_what_every_broker_accepts() {
        let id = default_client_id();
        assert!(id.starts_with("checkhost") && id.len() <= 23, "{id}");
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()), "{id}");
    }
}
