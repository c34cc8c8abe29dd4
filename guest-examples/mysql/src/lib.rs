//! The `mysql` strategy: a MySQL or MariaDB session over the client/server
//! protocol on plain TCP. `connect` reads the server's handshake and logs
//! in with `mysql_native_password` or the `caching_sha2_password` fast
//! path; requests follow `checkhost_sdk::service` (`info`, `query` with
//! COM_QUERY and text-protocol rows). TLS is not supported yet.

mod wire;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use checkhost_sdk::net::{self, ms_since};
use checkhost_sdk::service::{self, INFO, QUERY};
use checkhost_sdk::{
    Client, Request, Response, RunContext, Strategy, Timings, TransportError, Value, json,
};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::wire::{Body, Packet, ServerError};

const DEFAULT_PORT: u16 = 3306;
const DEFAULT_USER: &str = "root";
/// Rows kept in a query reply; the count covers them all.
const MAX_ROWS: usize = 100;
/// Authentication takes a few packets (a switch, caching_sha2's status).
const MAX_AUTH_PACKETS: usize = 8;
/// MySQL allows 4096 columns in a table; a result may join a few.
const MAX_COLUMNS: u64 = 65_535;
/// A CALL answers one result per statement and a final status.
const MAX_RESULTS: usize = 1_000;

/// MySQL or MariaDB over plain TCP. TLS is not supported yet, so
/// `caching_sha2_password` works only for accounts whose password the
/// server has cached (full authentication needs TLS).
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Server host name or address.
    #[schemars(extend("x-templatable" = true))]
    pub host: String,
    /// Server port; 3306 when not set.
    pub port: Option<u16>,
    /// Default database of the session; none when not set.
    #[schemars(extend("x-templatable" = true))]
    pub database: Option<String>,
    /// Account to log in as; `root` when not set.
    #[schemars(extend("x-templatable" = true))]
    pub username: Option<String>,
    /// The account's password; empty when not set.
    #[schemars(extend("x-secret" = true))]
    pub password: Option<String>,
    /// Connect, read and write timeout; 5000 when not set.
    pub timeout_ms: Option<u32>,
}

pub struct Mysql;

impl Strategy for Mysql {
    const ID: &'static str = "mysql";
    const DISPLAY_NAME: &'static str = "MySQL / MariaDB";
    const DESCRIPTION: &'static str =
        "A MySQL or MariaDB session over plain TCP: handshake, login, text-protocol queries";
    type Config = Config;
    type Client = Session;

    fn result_schema() -> Value {
        json!({
            "oneOf": [
                {
                    "description": "info: what the handshake and login learned",
                    "type": "object",
                    "properties": {
                        "serverVersion": {"type": "string"},
                        "connectionId": {"type": "integer"},
                        "authPlugin": {"type": "string"},
                        "serverFlavor": {"enum": ["mariadb", "mysql"]}
                    }
                },
                {
                    "description": "query: the last result with columns, else the last statement's; rows capped at 100, values as text or null",
                    "type": "object",
                    "properties": {
                        "ok": {"type": "boolean"},
                        "columns": {"type": "array", "items": {"type": "string"}},
                        "rows": {"type": "array", "items": {"type": "array", "items": {"type": ["string", "null"]}}},
                        "rowCount": {"type": "integer", "description": "rows returned, or rows affected"},
                        "affectedRows": {"type": "integer", "description": "for statements that return no rows"},
                        "error": {"type": "string", "description": "`code (SQLSTATE): message` when the server refused the query"},
                        "code": {"type": "integer"}
                    }
                }
            ]
        })
    }

    fn connect(config: Config, _ctx: &RunContext) -> Result<Session, TransportError> {
        let user = config.username.unwrap_or_else(|| DEFAULT_USER.into());
        let database = config.database.filter(|d| !d.is_empty());
        if user.contains('\0') || database.as_ref().is_some_and(|d| d.contains('\0')) {
            return Err(TransportError::BadConfig(
                "`username` and `database` cannot contain a NUL character".into(),
            ));
        }
        if user.len() > 255 {
            return Err(TransportError::BadConfig("`username` is too long".into()));
        }
        let timeout = service::timeout(config.timeout_ms);
        let port = config.port.unwrap_or(DEFAULT_PORT);
        let connection = net::connect(&config.host, port, timeout)?;
        let mut session = Session {
            stream: BufReader::new(connection.stream),
            timings: connection.timings,
            timeout,
            server_version: String::new(),
            connection_id: 0,
            auth_plugin: String::new(),
            ready: false,
            broken: false,
        };
        session.login(
            &user,
            database.as_deref(),
            config.password.as_deref().unwrap_or_default(),
        )?;
        session.ready = true;
        Ok(session)
    }
}

/// A logged-in session, ready for queries.
pub struct Session {
    /// Buffered because servers send several packets in one segment.
    stream: BufReader<TcpStream>,
    timings: Timings,
    timeout: Duration,
    server_version: String,
    connection_id: u32,
    auth_plugin: String,
    /// Logged in: only then is a goodbye owed, and understood.
    ready: bool,
    /// A transport error left the stream mid-answer: later answers would
    /// belong to earlier queries.
    broken: bool,
}

/// One result while a query answer is read.
#[derive(Default)]
struct ResultSet {
    columns: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
    seen: u64,
    affected: Option<u64>,
}

impl Session {
    fn read(&mut self, what: &str) -> Result<Packet, TransportError> {
        wire::read_packet(&mut self.stream, what)
    }

    /// Sends `payload` from sequence id `seq`.
    fn send(&mut self, seq: u8, payload: &[u8], what: &str) -> Result<(), TransportError> {
        net::send(self.stream.get_mut(), &wire::packet(seq, payload).0, what)
    }

    fn login(
        &mut self,
        user: &str,
        database: Option<&str>,
        password: &str,
    ) -> Result<(), TransportError> {
        let first = self
            .stream
            .fill_buf()
            .map_err(|e| TransportError::from_io("read the server's handshake", &e))?;
        if !wire::looks_like_handshake(first) {
            return Err(TransportError::Protocol(if first.is_empty() {
                "not a MySQL server: it closed the connection without a handshake".into()
            } else {
                format!(
                    "not a MySQL server: expected a handshake packet, got {}",
                    net::preview(first)
                )
            }));
        }
        let greeting = self.read("handshake")?;
        if greeting.payload.first() == Some(&0xFF) {
            let error = wire::server_error(&greeting.payload)?;
            return Err(TransportError::Refused(format!(
                "the server refused the connection: {}",
                error.describe()
            )));
        }
        let handshake = wire::handshake(&greeting.payload)?;
        self.server_version = handshake.server_version;
        self.connection_id = handshake.connection_id;
        let needed = wire::CLIENT_PROTOCOL_41 | wire::CLIENT_SECURE_CONNECTION;
        if handshake.capabilities & needed != needed {
            return Err(TransportError::Protocol(format!(
                "server {} predates the 4.1 protocol",
                self.server_version
            )));
        }
        let mut flags = needed
            | wire::CLIENT_LONG_PASSWORD
            | wire::CLIENT_TRANSACTIONS
            | wire::CLIENT_MULTI_RESULTS
            | wire::CLIENT_PLUGIN_AUTH;
        if database.is_some() {
            flags |= wire::CLIENT_CONNECT_WITH_DB;
        }
        flags &= handshake.capabilities;
        // Answer an unsupported default plugin with the native one: the
        // server switches if the account needs something else.
        let mut plugin = handshake.auth_plugin;
        let auth = match wire::scramble(&plugin, password.as_bytes(), &handshake.scramble) {
            Some(auth) => auth,
            None => {
                plugin = wire::NATIVE.into();
                wire::scramble(&plugin, password.as_bytes(), &handshake.scramble)
                    .unwrap_or_default()
            }
        };
        let response = wire::handshake_response(flags, user, &auth, database, &plugin);
        let mut seq = greeting.seq.wrapping_add(1);
        self.send(seq, &response, "handshake response")?;
        let refused = |why: &str| service::auth_failed(user, why);
        for _ in 0..MAX_AUTH_PACKETS {
            let answer = self.read("authentication answer")?;
            seq = answer.seq.wrapping_add(1);
            let mut body = Body::new(&answer.payload, "authentication answer");
            match body.u8()? {
                0x00 => {
                    self.auth_plugin = plugin;
                    return Ok(());
                }
                0xFF => {
                    let error = wire::server_error(&answer.payload)?;
                    return Err(login_error(&error, user, database));
                }
                // AuthSwitchRequest: another plugin, a fresh nonce.
                0xFE => {
                    plugin = body.cstr();
                    let nonce = body.rest();
                    let auth =
                        wire::scramble(&plugin, password.as_bytes(), nonce).ok_or_else(|| {
                            TransportError::Other(format!(
                                "the account uses the `{plugin}` authentication plugin, which the mysql strategy does not support"
                            ))
                        })?;
                    self.send(seq, &auth, "auth switch response")?;
                }
                // AuthMoreData: caching_sha2_password's verdict on the fast path.
                0x01 if plugin == wire::CACHING_SHA2 => match body.rest() {
                    [3, ..] => {}
                    [4, ..] => {
                        return Err(refused(
                            "caching_sha2_password needs full authentication, which needs TLS, \
                             until the server has cached this account's password (after a login over TLS)",
                        ));
                    }
                    other => {
                        return Err(TransportError::Protocol(format!(
                            "unexpected caching_sha2_password data {}",
                            net::preview(other)
                        )));
                    }
                },
                other => {
                    return Err(TransportError::Protocol(format!(
                        "unexpected packet 0x{other:02x} during authentication"
                    )));
                }
            }
        }
        Err(TransportError::Protocol(format!(
            "authentication took more than {MAX_AUTH_PACKETS} packets"
        )))
    }

    fn info(&self) -> Value {
        let mariadb = self.server_version.contains("MariaDB");
        // MariaDB prefixes "5.5.5-" so that old replicas accept it.
        let version = match self.server_version.strip_prefix("5.5.5-") {
            Some(rest) if mariadb => rest,
            _ => &self.server_version,
        };
        json!({
            "serverVersion": version,
            "connectionId": self.connection_id,
            "authPlugin": self.auth_plugin,
            "serverFlavor": if mariadb { "mariadb" } else { "mysql" },
        })
    }

    /// Runs `sql` with COM_QUERY: whether the server accepted it, and the reply.
    fn query(&mut self, sql: &str) -> Result<(bool, Value), TransportError> {
        let mut command = vec![0x03];
        command.extend_from_slice(sql.as_bytes());
        self.send(0, &command, "query")?;
        let mut kept: Option<ResultSet> = None;
        for _ in 0..MAX_RESULTS {
            let first = self.read("query answer")?;
            let (result, status) = match first.payload.first() {
                Some(0x00) => {
                    let (affected, status) = wire::ok_packet(&first.payload)?;
                    let result = ResultSet {
                        affected: Some(affected),
                        ..ResultSet::default()
                    };
                    (result, status)
                }
                Some(0xFF) => {
                    let error = wire::server_error(&first.payload)?;
                    return Ok((false, error_reply(&error)));
                }
                Some(0xFB) => {
                    return Err(TransportError::Protocol(
                        "the server asks for a local file, which this client never sends".into(),
                    ));
                }
                _ => match self.result_set(&first.payload)? {
                    Ok(done) => done,
                    Err(error) => return Ok((false, error_reply(&error))),
                },
            };
            // A status after result sets (a CALL's) must not hide their rows.
            if !result.columns.is_empty() || kept.as_ref().is_none_or(|k| k.columns.is_empty()) {
                kept = Some(result);
            }
            if status & wire::SERVER_MORE_RESULTS_EXISTS == 0 {
                let result = kept.unwrap_or_default();
                let mut reply = json!({
                    "ok": true,
                    "columns": result.columns,
                    "rows": result.rows,
                    "rowCount": result.affected.unwrap_or(result.seen),
                });
                if let Some(affected) = result.affected {
                    reply["affectedRows"] = affected.into();
                }
                return Ok((true, reply));
            }
        }
        Err(TransportError::Protocol(format!(
            "the query answered more than {MAX_RESULTS} results"
        )))
    }

    /// Reads a result set whose first packet (the column count) is `head`:
    /// the result and the status flags of its last EOF, or the server's
    /// error when it failed midway.
    fn result_set(
        &mut self,
        head: &[u8],
    ) -> Result<Result<(ResultSet, u16), ServerError>, TransportError> {
        let count = Body::new(head, "column count").lenenc()?;
        if count == 0 || count > MAX_COLUMNS {
            return Err(TransportError::Protocol(format!(
                "a result with {count} columns"
            )));
        }
        let mut result = ResultSet::default();
        for _ in 0..count {
            let column = self.read("column definition")?;
            result.columns.push(wire::column_name(&column.payload)?);
        }
        let end = self.read("end of columns")?;
        if !wire::is_eof(&end.payload) {
            return Err(TransportError::Protocol(
                "no EOF packet after the column definitions".into(),
            ));
        }
        // A server may stream rows until the run's deadline; only the
        // first MAX_ROWS are kept.
        loop {
            let row = self.read("row")?;
            if wire::is_eof(&row.payload) {
                return Ok(Ok((result, wire::eof_status(&row.payload))));
            }
            if row.payload.first() == Some(&0xFF) {
                return Ok(Err(wire::server_error(&row.payload)?));
            }
            result.seen += 1;
            if result.rows.len() < MAX_ROWS {
                result
                    .rows
                    .push(wire::text_row(&row.payload, result.columns.len())?);
            }
        }
    }
}

fn error_reply(error: &ServerError) -> Value {
    json!({"ok": false, "error": error.describe(), "code": error.code})
}

/// An ERR packet in answer to the login, as a transport error.
fn login_error(error: &ServerError, user: &str, database: Option<&str>) -> TransportError {
    let message = &error.message;
    match (error.code, database) {
        // ER_ACCESS_DENIED_ERROR
        (1045, _) => service::auth_failed(user, message),
        // ER_BAD_DB_ERROR
        (1049, Some(database)) => service::no_such_database(database, message),
        _ => TransportError::Refused(format!("login refused: {}", error.describe())),
    }
}

impl Client for Session {
    /// `info` answers what the handshake learned; `query` runs `target` as SQL.
    fn exec(&mut self, req: Request) -> Result<Response, TransportError> {
        let start = Instant::now();
        match req.method.as_str() {
            INFO => Ok(service::reply(true, &self.info(), self.timings)),
            QUERY => {
                if self.broken {
                    return Err(TransportError::Other(
                        "the connection is out of step after an earlier transport error".into(),
                    ));
                }
                let timeout = service::request_timeout(&req, self.timeout);
                let _ = self.stream.get_ref().set_read_timeout(Some(timeout));
                let answer = self.query(&req.target);
                let _ = self.stream.get_ref().set_read_timeout(Some(self.timeout));
                let (ok, value) = answer.inspect_err(|_| self.broken = true)?;
                Ok(service::reply(
                    ok,
                    &value,
                    Timings {
                        wait_ms: Some(ms_since(start)),
                        ..self.timings
                    },
                ))
            }
            other => Err(service::unknown_method(other)),
        }
    }

    fn timings(&self) -> Timings {
        self.timings
    }
}

impl Drop for Session {
    /// COM_QUIT, so the server logs a clean disconnect.
    fn drop(&mut self) {
        if !self.ready {
            return;
        }
        let _ = self.stream.get_mut().write_all(&wire::packet(0, &[0x01]).0);
    }
}

checkhost_sdk::export_strategy!(Mysql);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_errors_name_the_user_or_database() {
        let error = |code| ServerError {
            code,
            sqlstate: Some("28000".into()),
            message: "msg".into(),
        };
        assert_eq!(
            login_error(&error(1045), "u", Some("d")),
            TransportError::Refused("authentication failed for user `u`: msg".into())
        );
        assert_eq!(
            login_error(&error(1049), "u", Some("d")),
            TransportError::Refused("database `d` does not exist: msg".into())
        );
        assert_eq!(
            login_error(&error(1044), "u", Some("d")),
            TransportError::Refused("login refused: 1044 (28000): msg".into())
        );
    }

    #[test]
    fn config_schema_marks_secrets_and_templates() {
        let schema: Value = serde_json::from_str(&checkhost_sdk::schema_json::<Config>()).unwrap();
        assert_eq!(schema["properties"]["password"]["x-secret"], true);
        for field in ["host", "database", "username"] {
            assert_eq!(
                schema["properties"][field]["x-templatable"], true,
                "{field}"
            );
        }
    }
}
