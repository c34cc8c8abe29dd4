//! The `smtp` strategy: one plain SMTP session that reads the greeting,
//! says EHLO (HELO when EHLO is refused), optionally authenticates with
//! AUTH PLAIN or LOGIN, then sends single commands for the `service`
//! collector. No STARTTLS: it reports whether the server offers it.

mod reply;

use std::io::BufReader;
use std::net::TcpStream;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use checkhost_sdk::net::{self, ms_since};
use checkhost_sdk::service::{self, INFO, QUERY};
use checkhost_sdk::{
    Client, Request, Response, RunContext, Strategy, Timings, TransportError, Value, json,
};
use schemars::JsonSchema;
use serde::Deserialize;

use reply::Reply;

const DEFAULT_PORT: u16 = 25;
const DEFAULT_HELO: &str = "checkhost.local";

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Host name or address of the mail server.
    #[schemars(extend("x-templatable" = true))]
    pub host: String,
    /// TCP port; 25 when absent (587 for submission).
    pub port: Option<u16>,
    /// The name this client gives in EHLO/HELO; `checkhost.local` when absent.
    #[schemars(extend("x-templatable" = true))]
    pub helo_name: Option<String>,
    /// With `password`: authenticate with AUTH PLAIN or LOGIN, whichever
    /// the server offers. The session is not encrypted.
    #[schemars(extend("x-templatable" = true))]
    pub username: Option<String>,
    /// The password for `username`, as a secret reference.
    #[schemars(extend("x-secret" = true))]
    pub password: Option<String>,
    /// Bound on connecting and on every read and write.
    pub timeout_ms: Option<u32>,
}

pub struct Smtp;

impl Strategy for Smtp {
    const ID: &'static str = "smtp";
    const DISPLAY_NAME: &'static str = "SMTP";
    const DESCRIPTION: &'static str = "An SMTP session: greeting, EHLO and optional AUTH on \
         connect; queries are single commands such as `NOOP` or `VRFY postmaster`";
    type Config = Config;
    type Client = Conn;

    fn result_schema() -> Value {
        json!({
            "oneOf": [
                {
                    "description": "info: what the greeting and EHLO said",
                    "type": "object",
                    "properties": {
                        "banner": {"type": "string", "description": "the greeting's text, lines joined by newlines"},
                        "bannerCode": {"type": "integer"},
                        "greetingHost": {"type": ["string", "null"], "description": "the name the server greets with"},
                        "ehlo": {"type": "boolean", "description": "false when only HELO was accepted"},
                        "extensions": {"type": "array", "items": {"type": "string"}},
                        "starttls": {"type": "boolean"},
                        "maxSize": {"type": ["integer", "null"], "description": "from SIZE"},
                        "auth": {"type": "array", "items": {"type": "string"}, "description": "offered AUTH mechanisms"},
                        "authenticated": {"type": "boolean"},
                        "serverVersion": {"type": ["string", "null"], "description": "only when the greeting states one"}
                    }
                },
                {
                    "description": "query: the reply to one command",
                    "type": "object",
                    "properties": {
                        "ok": {"type": "boolean", "description": "code below 400"},
                        "code": {"type": "integer"},
                        "lines": {"type": "array", "items": {"type": "string"}},
                        "error": {"type": "string", "description": "code and text when the code is 400 or more"}
                    },
                    "required": ["ok", "code", "lines"]
                }
            ]
        })
    }

    fn connect(config: Config, _ctx: &RunContext) -> Result<Conn, TransportError> {
        let credentials = match (&config.username, &config.password) {
            (Some(user), Some(password)) => Some((user.as_str(), password.as_str())),
            (None, None) => None,
            _ => {
                return Err(TransportError::BadConfig(
                    "`username` and `password` go together".into(),
                ));
            }
        };
        let helo = config.helo_name.as_deref().unwrap_or(DEFAULT_HELO);
        if helo.is_empty() || helo.contains(char::is_whitespace) {
            return Err(TransportError::BadConfig(format!(
                "`heloName` {helo:?} must be one word"
            )));
        }
        let timeout = service::timeout(config.timeout_ms);
        let connection = net::connect(&config.host, config.port.unwrap_or(DEFAULT_PORT), timeout)?;
        // Built before the greeting so that any failure below still says QUIT.
        let mut conn = Conn {
            io: BufReader::new(connection.stream),
            timings: connection.timings,
            info: Value::Null,
        };
        let start = Instant::now();
        conn.info = conn.handshake(helo, credentials)?;
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
    fn command(&mut self, line: &str, what: &str) -> Result<Reply, TransportError> {
        net::send(self.io.get_mut(), format!("{line}\r\n").as_bytes(), what)?;
        reply::read(&mut self.io, false)
    }

    fn handshake(
        &mut self,
        helo: &str,
        credentials: Option<(&str, &str)>,
    ) -> Result<Value, TransportError> {
        let greeting = reply::read(&mut self.io, true)?;
        if greeting.code >= 400 {
            return Err(TransportError::Refused(format!(
                "the server refused the session: {}",
                greeting.summary()
            )));
        }
        if greeting.code != 220 {
            return Err(TransportError::Protocol(format!(
                "not an SMTP server: expected a 220 greeting, got {}",
                greeting.summary()
            )));
        }
        let first_line = greeting
            .lines
            .first()
            .map(String::as_str)
            .unwrap_or_default();

        let mut ehlo = true;
        let mut hello = self.command(&format!("EHLO {helo}"), "EHLO")?;
        // 5xx: a server too old for EHLO; 4xx is a refusal HELO would meet too.
        if hello.code >= 500 {
            ehlo = false;
            hello = self.command(&format!("HELO {helo}"), "HELO")?;
        }
        if hello.code >= 400 {
            return Err(TransportError::Refused(format!(
                "the server refused {}: {}",
                if ehlo { "EHLO" } else { "EHLO and HELO" },
                hello.summary()
            )));
        }
        let extensions: Vec<String> = if ehlo {
            hello.lines.iter().skip(1).cloned().collect()
        } else {
            Vec::new()
        };
        let facts = Extensions::parse(&extensions);
        if let Some((user, password)) = credentials {
            self.authenticate(user, password, &facts.auth)?;
        }
        Ok(json!({
            "banner": greeting.lines.join("\n"),
            "bannerCode": greeting.code,
            "greetingHost": first_line.split_whitespace().next(),
            "ehlo": ehlo,
            "extensions": extensions,
            "starttls": facts.starttls,
            "maxSize": facts.max_size,
            "auth": facts.auth,
            "authenticated": credentials.is_some(),
            "serverVersion": reply::version_in_greeting(first_line),
        }))
    }

    /// AUTH PLAIN in one step when offered, else the LOGIN dialogue.
    fn authenticate(
        &mut self,
        user: &str,
        password: &str,
        mechanisms: &[String],
    ) -> Result<(), TransportError> {
        let failed = |why: String| service::auth_failed(user, why);
        let offered = |m: &str| mechanisms.iter().any(|x| x == m);
        let answer = if offered("PLAIN") {
            self.command(
                &format!("AUTH PLAIN {}", plain_token(user, password)),
                "AUTH PLAIN",
            )?
        } else if offered("LOGIN") {
            let mut answer = self.command("AUTH LOGIN", "AUTH LOGIN")?;
            for secret in [user, password] {
                if answer.code != 334 {
                    break;
                }
                answer = self.command(&BASE64.encode(secret), "AUTH LOGIN")?;
            }
            answer
        } else if mechanisms.is_empty() {
            return Err(failed(
                "the server offers no AUTH here (many offer it only after STARTTLS, \
                 which this strategy does not negotiate)"
                    .into(),
            ));
        } else {
            return Err(failed(format!(
                "the server offers only {}, not PLAIN or LOGIN",
                mechanisms.join(", ")
            )));
        };
        if answer.code == 235 {
            Ok(())
        } else {
            Err(failed(answer.summary()))
        }
    }

    fn query(&mut self, text: &str) -> Result<Response, TransportError> {
        let line = text.trim();
        if line.is_empty() {
            return Err(TransportError::BadConfig("the query is empty".into()));
        }
        if line.contains(['\r', '\n']) {
            return Err(TransportError::BadConfig(
                "the query must be one command line".into(),
            ));
        }
        let start = Instant::now();
        let answer = self.command(line, "command")?;
        let timings = Timings {
            wait_ms: Some(ms_since(start)),
            ..self.timings
        };
        let ok = answer.code < 400;
        let mut body = json!({"ok": ok, "code": answer.code, "lines": answer.lines});
        if let (false, Some(obj)) = (ok, body.as_object_mut()) {
            obj.insert("error".into(), Value::String(answer.summary()));
        }
        Ok(service::reply(ok, &body, timings))
    }
}

/// What the EHLO keywords this strategy reports say.
#[derive(Debug, PartialEq)]
struct Extensions {
    starttls: bool,
    max_size: Option<u64>,
    /// Offered AUTH mechanisms, upper-cased.
    auth: Vec<String>,
}

impl Extensions {
    fn parse(lines: &[String]) -> Extensions {
        // Keywords are case-insensitive; `AUTH=…` is the pre-RFC 4954 spelling.
        let keyword = |line: &str| {
            line.split([' ', '='])
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase()
        };
        let argument = |name: &str| {
            lines
                .iter()
                .find(|line| keyword(line) == name)
                .map(|line| line.get(name.len() + 1..).unwrap_or_default())
        };
        Extensions {
            starttls: lines.iter().any(|line| keyword(line) == "STARTTLS"),
            max_size: argument("SIZE").and_then(|s| s.trim().parse().ok()),
            auth: argument("AUTH")
                .map(|m| m.split_whitespace().map(str::to_ascii_uppercase).collect())
                .unwrap_or_default(),
        }
    }
}

/// The AUTH PLAIN initial response (RFC 4616): no authorization identity.
fn plain_token(user: &str, password: &str) -> String {
    BASE64.encode(format!("\0{user}\0{password}"))
}

impl Client for Conn {
    /// `info` answers what the greeting and EHLO said; `query` sends one
    /// command line.
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
    /// A polite goodbye; the reply is not awaited, so a dead peer costs nothing.
    fn drop(&mut self) {
        let _ = net::send(self.io.get_mut(), b"QUIT\r\n", "QUIT");
    }
}

checkhost_sdk::export_strategy!(Smtp);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_token_matches_rfc_4616() {
        // RFC 4616 §4: "\0tim\0tanstaaftanstaaf".
        assert_eq!(
            plain_token("tim", "tanstaaftanstaaf"),
            "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"
        );
    }

    #[test]
    fn extensions_give_starttls_size_and_auth() {
        let lines = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            Extensions::parse(&lines(&[
                "PIPELINING",
                "SIZE 10240000",
                "starttls",
                "AUTH PLAIN login",
                "8BITMIME"
            ])),
            Extensions {
                starttls: true,
                max_size: Some(10_240_000),
                auth: vec!["PLAIN".into(), "LOGIN".into()],
            }
        );
        assert_eq!(
            Extensions::parse(&lines(&["SIZE", "AUTH=LOGIN", "STARTTLSX"])),
            Extensions {
                starttls: false,
                max_size: None,
                auth: vec!["LOGIN".into()],
            }
        );
    }
}
