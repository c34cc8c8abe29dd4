//! The `redis` strategy: one RESP2 connection to a Redis server (or a
//! compatible one: Valkey, KeyDB…) that authenticates, selects a database
//! and reads `INFO` on connect, then runs commands for the `service`
//! collector.

mod resp;

use std::io::BufReader;
use std::net::TcpStream;
use std::time::Instant;

use checkhost_sdk::net::{self, ms_since};
use checkhost_sdk::service::{self, INFO, QUERY};
use checkhost_sdk::{
    Client, Request, Response, RunContext, Strategy, Timings, TransportError, Value, json,
};
use schemars::JsonSchema;
use serde::Deserialize;

use resp::Reply;

const DEFAULT_PORT: u16 = 6379;

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Host name or address of the server.
    #[schemars(extend("x-templatable" = true))]
    pub host: String,
    /// TCP port; 6379 when absent.
    pub port: Option<u16>,
    /// ACL user (Redis 6+); without it `AUTH` authenticates the default user.
    #[schemars(extend("x-templatable" = true))]
    pub username: Option<String>,
    /// Password sent with `AUTH`, as a secret reference.
    #[schemars(extend("x-secret" = true))]
    pub password: Option<String>,
    /// Database number chosen with `SELECT`; 0 when absent.
    pub database: Option<u32>,
    /// Bound on connecting and on every read and write.
    pub timeout_ms: Option<u32>,
}

pub struct Redis;

impl Strategy for Redis {
    const ID: &'static str = "redis";
    const DISPLAY_NAME: &'static str = "Redis";
    const DESCRIPTION: &'static str = "A Redis connection: AUTH, SELECT and INFO on connect; \
         queries are commands such as `PING` or `GET \"my key\"`";
    type Config = Config;
    type Client = Conn;

    fn result_schema() -> Value {
        json!({
            "oneOf": [
                {
                    "description": "info: what INFO said while connecting",
                    "type": "object",
                    "properties": {
                        "serverVersion": {"type": ["string", "null"], "description": "redis_version"},
                        "mode": {"type": ["string", "null"], "description": "redis_mode: standalone, cluster or sentinel"},
                        "role": {"type": ["string", "null"], "description": "master or slave, from INFO replication"},
                        "os": {"type": ["string", "null"]},
                        "uptimeSeconds": {"type": ["integer", "null"]},
                        "database": {"type": "integer"},
                        "info": {"type": "object", "description": "every field of INFO server"},
                        "infoError": {"type": "string", "description": "why INFO was refused (renamed or disabled)"}
                    }
                },
                {
                    "description": "query: the command's reply",
                    "type": "object",
                    "properties": {
                        "ok": {"type": "boolean"},
                        "reply": {"description": "strings, integers, null and arrays as JSON; an error inside an array as {\"error\": …}"},
                        "error": {"type": "string", "description": "the server's error reply"}
                    },
                    "required": ["ok"]
                }
            ]
        })
    }

    fn connect(config: Config, _ctx: &RunContext) -> Result<Conn, TransportError> {
        if config.username.is_some() && config.password.is_none() {
            return Err(TransportError::BadConfig(
                "`username` needs a `password`".into(),
            ));
        }
        let timeout = service::timeout(config.timeout_ms);
        let connection = net::connect(&config.host, config.port.unwrap_or(DEFAULT_PORT), timeout)?;
        let mut conn = Conn {
            io: BufReader::new(connection.stream),
            timings: connection.timings,
            info: Value::Null,
        };
        let start = Instant::now();
        conn.info = conn.handshake(&config)?;
        conn.timings.wait_ms = Some(ms_since(start));
        Ok(conn)
    }
}

pub struct Conn {
    io: BufReader<TcpStream>,
    timings: Timings,
    info: Value,
}

impl Conn {
    fn send(&mut self, bytes: &[u8], what: &str) -> Result<(), TransportError> {
        net::send(self.io.get_mut(), bytes, what)
    }

    /// AUTH, SELECT and INFO in one round trip; the replies come back in
    /// order, and the first refusal wins.
    fn handshake(&mut self, config: &Config) -> Result<Value, TransportError> {
        let user = config.username.as_deref().unwrap_or("default");
        let mut batch = Vec::new();
        if let Some(password) = &config.password {
            let mut auth = vec!["AUTH", password.as_str()];
            if let Some(username) = &config.username {
                auth.insert(1, username);
            }
            batch.extend(resp::encode(&auth));
        }
        let database = config.database.map(|db| db.to_string());
        if let Some(db) = &database {
            batch.extend(resp::encode(&["SELECT", db]));
        }
        batch.extend(resp::encode(&["INFO", "server"]));
        batch.extend(resp::encode(&["INFO", "replication"]));
        self.send(&batch, "handshake")?;

        if let Some(password) = &config.password
            && let Reply::Error(message) = resp::read(&mut self.io)?
        {
            // A server without AUTH may quote its arguments back.
            return Err(service::auth_failed(
                user,
                message.replace(password.as_str(), "****"),
            ));
        }
        if let Some(db) = &database
            && let Reply::Error(message) = resp::read(&mut self.io)?
        {
            return Err(refusal(user, &message).unwrap_or_else(|| {
                TransportError::Refused(format!("cannot select database {db}: {message}"))
            }));
        }
        let server = resp::read(&mut self.io)?;
        let replication = resp::read(&mut self.io)?;
        let mut info_error = None;
        for reply in [&server, &replication] {
            if let Reply::Error(message) = reply {
                if let Some(refused) = refusal(user, message) {
                    return Err(refused);
                }
                info_error.get_or_insert_with(|| message.clone());
            }
        }
        let server = server
            .text()
            .map(|t| resp::info_fields(&t))
            .unwrap_or_default();
        let replication = replication
            .text()
            .map(|t| resp::info_fields(&t))
            .unwrap_or_default();
        let field = |fields: &[(String, String)], key: &str| {
            fields
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let mut info = json!({
            "serverVersion": field(&server, "redis_version"),
            "mode": field(&server, "redis_mode"),
            "role": field(&replication, "role"),
            "os": field(&server, "os"),
            "uptimeSeconds": field(&server, "uptime_in_seconds").and_then(|s| s.parse::<u64>().ok()),
            "database": config.database.unwrap_or(0),
            "info": server.into_iter().map(|(k, v)| (k, Value::String(v))).collect::<serde_json::Map<_, _>>(),
        });
        if let (Some(error), Some(obj)) = (info_error, info.as_object_mut()) {
            obj.insert("infoError".into(), Value::String(error));
        }
        Ok(info)
    }

    fn query(&mut self, text: &str) -> Result<Response, TransportError> {
        let args = resp::split_args(text)
            .map_err(|e| TransportError::BadConfig(format!("query `{text}`: {e}")))?;
        if args.is_empty() {
            return Err(TransportError::BadConfig("the query is empty".into()));
        }
        let start = Instant::now();
        self.send(&resp::encode(&args), "command")?;
        let reply = resp::read(&mut self.io)?;
        let timings = Timings {
            wait_ms: Some(ms_since(start)),
            ..self.timings
        };
        Ok(match reply {
            Reply::Error(error) => {
                service::reply(false, &json!({"ok": false, "error": error}), timings)
            }
            reply => service::reply(
                true,
                &json!({"ok": true, "reply": reply.to_json()}),
                timings,
            ),
        })
    }
}

/// Errors that mean the server will not serve this client at all, as
/// opposed to refusing one command.
fn refusal(user: &str, message: &str) -> Option<TransportError> {
    let auth = [
        "NOAUTH",
        "WRONGPASS",
        // Redis before 6, with and without a password set.
        "ERR invalid password",
        "ERR Client sent AUTH",
        // Redis 6+ when the default user has no password.
        "ERR AUTH",
    ];
    let closed = ["DENIED", "ERR max number of clients"];
    if auth.iter().any(|p| message.starts_with(p)) {
        Some(service::auth_failed(user, message))
    } else if closed.iter().any(|p| message.starts_with(p)) {
        Some(TransportError::Refused(message.to_string()))
    } else {
        None
    }
}

impl Client for Conn {
    /// `info` answers what the handshake learned; `query` runs one command.
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

checkhost_sdk::export_strategy!(Redis);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_told_from_command_errors() {
        assert_eq!(
            refusal("app", "WRONGPASS invalid username-password pair or user is disabled."),
            Some(TransportError::Refused(
                "authentication failed for user `app`: WRONGPASS invalid username-password pair or user is disabled.".into()
            ))
        );
        assert!(refusal("default", "NOAUTH Authentication required.").is_some());
        assert!(matches!(
            refusal("default", "DENIED Redis is running in protected mode"),
            Some(TransportError::Refused(m)) if m.starts_with("DENIED")
        ));
        assert_eq!(refusal("default", "ERR unknown command 'INFO'"), None);
    }
}
