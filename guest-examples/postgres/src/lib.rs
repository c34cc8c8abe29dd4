//! The `postgres` strategy: a PostgreSQL session over the v3 wire protocol
//! on plain TCP. `connect` logs in (trust, cleartext password, MD5 or
//! SCRAM-SHA-256 without channel binding) and waits until the server is
//! ready; requests follow `checkhost_sdk::service` (`info`, `query` with
//! the simple query protocol). TLS (`sslmode`) is not supported yet: no
//! SSLRequest is sent, so use it where plain TCP to the server is acceptable.

mod auth;
mod wire;

use std::collections::BTreeMap;
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

use crate::auth::Scram;
use crate::wire::{Body, Message, ServerError};

const DEFAULT_PORT: u16 = 5432;
const DEFAULT_USER: &str = "postgres";
const DEFAULT_DATABASE: &str = "postgres";
/// Rows kept in a query reply; the count covers them all.
const MAX_ROWS: usize = 100;
/// Authentication takes at most a handful of round trips (SCRAM: three).
const MAX_AUTH_MESSAGES: usize = 8;
/// Between authentication and ReadyForQuery a server sends a few dozen
/// ParameterStatus messages; thousands mean it is not going to be ready.
const MAX_STARTUP_MESSAGES: usize = 10_000;

/// PostgreSQL over plain TCP. TLS (`sslmode`) is not supported yet: the
/// connection and a cleartext password, if the server asks for one, travel
/// unencrypted.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Server host name or address.
    #[schemars(extend("x-templatable" = true))]
    pub host: String,
    /// Server port; 5432 when not set.
    pub port: Option<u16>,
    /// Database to connect to; `postgres` when not set.
    #[schemars(extend("x-templatable" = true))]
    pub database: Option<String>,
    /// Role to log in as; `postgres` when not set.
    #[schemars(extend("x-templatable" = true))]
    pub username: Option<String>,
    /// Password for cleartext, MD5 or SCRAM-SHA-256 authentication.
    #[schemars(extend("x-secret" = true))]
    pub password: Option<String>,
    /// Connect, read and write timeout; 5000 when not set.
    pub timeout_ms: Option<u32>,
}

pub struct Postgres;

impl Strategy for Postgres {
    const ID: &'static str = "postgres";
    const DISPLAY_NAME: &'static str = "PostgreSQL";
    const DESCRIPTION: &'static str =
        "A PostgreSQL session over plain TCP: login, server parameters, simple queries";
    type Config = Config;
    type Client = Session;

    fn result_schema() -> Value {
        json!({
            "oneOf": [
                {
                    "description": "info: what the login learned",
                    "type": "object",
                    "properties": {
                        "serverVersion": {"type": ["string", "null"]},
                        "parameters": {"type": "object", "additionalProperties": {"type": "string"}},
                        "authMethod": {"enum": ["trust", "password", "md5", "scram-sha-256"]},
                        "backendPid": {"type": ["integer", "null"]}
                    }
                },
                {
                    "description": "query: the last result with columns, else the last command's; rows capped at 100, values as text or null",
                    "type": "object",
                    "properties": {
                        "ok": {"type": "boolean"},
                        "columns": {"type": "array", "items": {"type": "string"}},
                        "rows": {"type": "array", "items": {"type": "array", "items": {"type": ["string", "null"]}}},
                        "rowCount": {"type": "integer"},
                        "command": {"type": ["string", "null"]},
                        "error": {"type": "string", "description": "`SQLSTATE: message` when the server refused the query"},
                        "sqlstate": {"type": "string"}
                    }
                }
            ]
        })
    }

    fn connect(config: Config, _ctx: &RunContext) -> Result<Session, TransportError> {
        let user = config.username.unwrap_or_else(|| DEFAULT_USER.into());
        let database = config.database.unwrap_or_else(|| DEFAULT_DATABASE.into());
        let password = config.password;
        for (field, value) in [
            ("username", Some(&user)),
            ("database", Some(&database)),
            ("password", password.as_ref()),
        ] {
            if value.is_some_and(|v| v.contains('\0')) {
                return Err(TransportError::BadConfig(format!(
                    "`{field}` contains a NUL character"
                )));
            }
        }
        let timeout = service::timeout(config.timeout_ms);
        let port = config.port.unwrap_or(DEFAULT_PORT);
        let connection = net::connect(&config.host, port, timeout)?;
        let mut session = Session {
            stream: BufReader::new(connection.stream),
            timings: connection.timings,
            timeout,
            parameters: BTreeMap::new(),
            auth_method: "trust",
            backend_pid: None,
            ready: false,
            broken: false,
        };
        session.start(&user, &database, password.as_deref())?;
        session.ready = true;
        Ok(session)
    }
}

/// A logged-in session, ready for queries.
pub struct Session {
    /// Buffered because servers send several messages in one segment.
    stream: BufReader<TcpStream>,
    timings: Timings,
    timeout: Duration,
    parameters: BTreeMap<String, String>,
    auth_method: &'static str,
    backend_pid: Option<i32>,
    /// Logged in: only then is a goodbye owed, and understood.
    ready: bool,
    /// A transport error left the stream mid-answer: later answers would
    /// belong to earlier queries.
    broken: bool,
}

/// One statement's result while a query answer is read.
#[derive(Default)]
struct ResultSet {
    columns: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
    seen: u64,
    command: Option<String>,
    has_columns: bool,
}

impl Session {
    fn send(&mut self, bytes: &[u8], what: &str) -> Result<(), TransportError> {
        net::send(self.stream.get_mut(), bytes, what)
    }

    fn read(&mut self, what: &str) -> Result<Message, TransportError> {
        wire::read_message(&mut self.stream, what)
    }

    fn start(
        &mut self,
        user: &str,
        database: &str,
        password: Option<&str>,
    ) -> Result<(), TransportError> {
        let startup = wire::startup(&[
            ("user", user),
            ("database", database),
            ("application_name", "checkhost"),
            // Rows come back as UTF-8 whatever the database's encoding.
            ("client_encoding", "UTF8"),
        ]);
        self.send(&startup, "startup message")?;
        let first = self
            .stream
            .fill_buf()
            .map_err(|e| TransportError::from_io("read the answer to the startup message", &e))?;
        if !wire::looks_like_startup_answer(first) {
            return Err(TransportError::Protocol(if first.is_empty() {
                "not a PostgreSQL server: it closed the connection without answering the startup message".into()
            } else {
                format!(
                    "not a PostgreSQL server: expected an authentication request, got {}",
                    net::preview(first)
                )
            }));
        }
        self.authenticate(user, database, password)?;
        self.await_ready(user, database)
    }

    fn authenticate(
        &mut self,
        user: &str,
        database: &str,
        password: Option<&str>,
    ) -> Result<(), TransportError> {
        let refused = |why: &str| service::auth_failed(user, why);
        let needed = || {
            password.ok_or_else(|| refused("the server asks for a password and none is configured"))
        };
        let mut scram: Option<Scram> = None;
        let mut server_signature: Option<String> = None;
        let mut verified = false;
        for _ in 0..MAX_AUTH_MESSAGES {
            let msg = self.read("authentication request")?;
            match msg.tag {
                b'R' => {}
                b'E' => {
                    return Err(startup_error(
                        &wire::server_error(&msg.body)?,
                        user,
                        database,
                    ));
                }
                // A protocol-version negotiation or a notice changes nothing here.
                b'v' | b'N' => continue,
                other => {
                    return Err(TransportError::Protocol(format!(
                        "expected an authentication request, got message `{}`",
                        other.escape_ascii()
                    )));
                }
            }
            let mut body = Body::new(&msg.body, "authentication request");
            match body.i32()? {
                0 => {
                    if scram.is_some() && !verified {
                        return Err(TransportError::Protocol(
                            "the server ended SCRAM authentication without proving it knows the password".into(),
                        ));
                    }
                    return Ok(());
                }
                3 => {
                    self.auth_method = "password";
                    let mut answer = Vec::new();
                    wire::push_cstr(&mut answer, needed()?);
                    self.send(&wire::message(b'p', &answer), "password")?;
                }
                5 => {
                    self.auth_method = "md5";
                    let salt = body.array::<4>()?;
                    let mut answer = Vec::new();
                    wire::push_cstr(&mut answer, &auth::md5_password(user, needed()?, salt));
                    self.send(&wire::message(b'p', &answer), "MD5 password")?;
                }
                10 => {
                    self.auth_method = "scram-sha-256";
                    let mut mechanisms = Vec::new();
                    // The list ends with an empty name; the body bounds it.
                    loop {
                        let name = body.cstr()?;
                        if name.is_empty() {
                            break;
                        }
                        mechanisms.push(name);
                    }
                    if !mechanisms.iter().any(|m| m == "SCRAM-SHA-256") {
                        return Err(TransportError::Other(format!(
                            "the server offers SASL mechanisms {mechanisms:?}; only SCRAM-SHA-256 without channel binding is supported"
                        )));
                    }
                    needed()?;
                    let exchange = Scram::new("").map_err(TransportError::Other)?;
                    let first = exchange.client_first();
                    let mut answer = Vec::new();
                    wire::push_cstr(&mut answer, "SCRAM-SHA-256");
                    answer.extend_from_slice(&(first.len() as i32).to_be_bytes());
                    answer.extend_from_slice(first.as_bytes());
                    self.send(&wire::message(b'p', &answer), "SASL initial response")?;
                    scram = Some(exchange);
                }
                11 => {
                    let exchange = scram.as_ref().ok_or_else(|| {
                        TransportError::Protocol("SASL continue before SASL start".into())
                    })?;
                    let server_first = String::from_utf8_lossy(body.rest()).into_owned();
                    let last = exchange
                        .client_final(needed()?, &server_first)
                        .map_err(TransportError::Protocol)?;
                    self.send(
                        &wire::message(b'p', last.message.as_bytes()),
                        "SASL response",
                    )?;
                    server_signature = Some(last.server_signature);
                }
                12 => {
                    let expected = server_signature.as_deref().ok_or_else(|| {
                        TransportError::Protocol("SASL final before the client's proof".into())
                    })?;
                    let server_final = String::from_utf8_lossy(body.rest()).into_owned();
                    let first = server_final.split(',').next().unwrap_or_default();
                    if let Some(error) = first.strip_prefix("e=") {
                        return Err(refused(error));
                    }
                    if first.strip_prefix("v=") != Some(expected) {
                        return Err(TransportError::Protocol(
                            "the server's SCRAM signature is wrong: it does not know the password"
                                .into(),
                        ));
                    }
                    verified = true;
                }
                code => {
                    return Err(TransportError::Other(format!(
                        "the server asks for {} authentication, which the postgres strategy does not support",
                        method_name(code)
                    )));
                }
            }
        }
        Err(TransportError::Protocol(format!(
            "authentication took more than {MAX_AUTH_MESSAGES} messages"
        )))
    }

    /// Collects what the server reports after login until ReadyForQuery.
    fn await_ready(&mut self, user: &str, database: &str) -> Result<(), TransportError> {
        for _ in 0..MAX_STARTUP_MESSAGES {
            let msg = self.read("startup parameters")?;
            match msg.tag {
                b'S' => {
                    let (name, value) = wire::parameter(&msg.body)?;
                    self.parameters.insert(name, value);
                }
                b'K' => {
                    self.backend_pid = Some(Body::new(&msg.body, "BackendKeyData").i32()?);
                }
                b'N' | b'v' => {}
                b'E' => {
                    return Err(startup_error(
                        &wire::server_error(&msg.body)?,
                        user,
                        database,
                    ));
                }
                b'Z' => return Ok(()),
                other => {
                    return Err(TransportError::Protocol(format!(
                        "unexpected message `{}` before the server was ready",
                        other.escape_ascii()
                    )));
                }
            }
        }
        Err(TransportError::Protocol(format!(
            "the server was not ready after {MAX_STARTUP_MESSAGES} messages"
        )))
    }

    fn info(&self) -> Value {
        json!({
            "serverVersion": self.parameters.get("server_version"),
            "parameters": self.parameters,
            "authMethod": self.auth_method,
            "backendPid": self.backend_pid,
        })
    }

    /// Runs `sql` with the simple query protocol: whether the server
    /// accepted it, and the reply.
    fn query(&mut self, sql: &str) -> Result<(bool, Value), TransportError> {
        let mut text = Vec::with_capacity(sql.len() + 1);
        wire::push_cstr(&mut text, sql);
        self.send(&wire::message(b'Q', &text), "query")?;
        let mut kept: Option<ResultSet> = None;
        let mut current = ResultSet::default();
        let mut error: Option<ServerError> = None;
        loop {
            let msg = self.read("query answer")?;
            match msg.tag {
                b'T' => {
                    current = ResultSet {
                        columns: wire::row_description(&msg.body)?,
                        has_columns: true,
                        ..ResultSet::default()
                    };
                }
                b'D' => {
                    current.seen += 1;
                    if current.rows.len() < MAX_ROWS {
                        current.rows.push(wire::data_row(&msg.body)?);
                    }
                }
                b'C' => {
                    current.command = Some(Body::new(&msg.body, "CommandComplete").cstr()?);
                    keep(&mut kept, std::mem::take(&mut current));
                }
                b'I' => keep(&mut kept, std::mem::take(&mut current)),
                b'E' => error = Some(wire::server_error(&msg.body)?),
                b'S' => {
                    let (name, value) = wire::parameter(&msg.body)?;
                    self.parameters.insert(name, value);
                }
                // COPY FROM STDIN waits for data the client never has.
                b'G' => self.send(
                    &wire::message(b'f', b"checkhost sends no COPY data\0"),
                    "CopyFail",
                )?,
                // Notices, notifications and COPY TO STDOUT data are not results.
                b'N' | b'A' | b'H' | b'd' | b'c' => {}
                b'Z' => break,
                other => {
                    return Err(TransportError::Protocol(format!(
                        "unexpected message `{}` in a query answer",
                        other.escape_ascii()
                    )));
                }
            }
        }
        if let Some(error) = error {
            return Ok((
                false,
                json!({
                    "ok": false,
                    "error": format!("{}: {}", error.code, error.message),
                    "sqlstate": error.code,
                }),
            ));
        }
        let result = kept.unwrap_or_default();
        let row_count = result
            .command
            .as_deref()
            .and_then(wire::tag_rows)
            .unwrap_or(result.seen);
        Ok((
            true,
            json!({
                "ok": true,
                "columns": result.columns,
                "rows": result.rows,
                "rowCount": row_count,
                "command": result.command,
            }),
        ))
    }
}

/// A statement's result replaces the kept one unless it would hide rows
/// behind a later command (`SELECT …; COMMIT`).
fn keep(kept: &mut Option<ResultSet>, done: ResultSet) {
    if done.has_columns || kept.as_ref().is_none_or(|k| !k.has_columns) {
        *kept = Some(done);
    }
}

/// An ErrorResponse before the session is ready, as a transport error.
fn startup_error(error: &ServerError, user: &str, database: &str) -> TransportError {
    let ServerError { code, message } = error;
    match code.as_str() {
        "28P01" | "28000" => service::auth_failed(user, message),
        "3D000" => service::no_such_database(database, message),
        "08P01" => TransportError::Protocol(format!("{code}: {message}")),
        _ => TransportError::Other(format!("{code}: {message}")),
    }
}

fn method_name(code: i32) -> String {
    match code {
        2 => "Kerberos V5".into(),
        6 => "SCM credentials".into(),
        7 | 8 => "GSSAPI".into(),
        9 => "SSPI".into(),
        other => format!("an unknown method ({other})"),
    }
}

impl Client for Session {
    /// `info` answers what the login learned; `query` runs `target` as SQL.
    fn exec(&mut self, req: Request) -> Result<Response, TransportError> {
        let start = Instant::now();
        match req.method.as_str() {
            INFO => Ok(service::reply(true, &self.info(), self.timings)),
            QUERY => {
                if req.target.contains('\0') {
                    return Err(TransportError::BadConfig(
                        "the query contains a NUL character".into(),
                    ));
                }
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
    /// Says goodbye so the server logs a clean disconnect.
    fn drop(&mut self) {
        if !self.ready {
            return;
        }
        let _ = self.stream.get_mut().write_all(&wire::message(b'X', &[]));
    }
}

checkhost_sdk::export_strategy!(Postgres);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_errors_map_to_transport_errors() {
        let error = |code: &str| ServerError {
            code: code.into(),
            message: "msg".into(),
        };
        assert_eq!(
            startup_error(&error("28P01"), "u", "d"),
            TransportError::Refused("authentication failed for user `u`: msg".into())
        );
        assert_eq!(
            startup_error(&error("3D000"), "u", "d"),
            TransportError::Refused("database `d` does not exist: msg".into())
        );
        assert_eq!(
            startup_error(&error("53300"), "u", "d"),
            TransportError::Other("53300: msg".into())
        );
    }

    #[test]
    fn a_later_command_does_not_hide_rows() {
        let rows = |has_columns, command: &str| ResultSet {
            has_columns,
            command: Some(command.into()),
            ..ResultSet::default()
        };
        let mut kept = None;
        keep(&mut kept, rows(false, "BEGIN"));
        keep(&mut kept, rows(true, "SELECT 1"));
        keep(&mut kept, rows(false, "COMMIT"));
        assert_eq!(kept.unwrap().command.as_deref(), Some("SELECT 1"));
        let mut kept = None;
        keep(&mut kept, rows(true, "SELECT 1"));
        keep(&mut kept, rows(true, "SELECT 2"));
        assert_eq!(kept.unwrap().command.as_deref(), Some("SELECT 2"));
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
        assert!(schema["description"].as_str().unwrap().contains("sslmode"));
    }
}
