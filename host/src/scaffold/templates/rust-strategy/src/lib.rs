//! The `{{name}}` strategy: one TCP connection per run. A request sends its
//! body (if any) and answers with the first bytes the peer sends back.

use std::io::Read;
use std::time::{Duration, Instant};

use checkhost_sdk::net::{self, Connection};
use checkhost_sdk::{Client, Request, Response, RunContext, Strategy, Timings, TransportError};
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    #[schemars(extend("x-templatable" = true))]
    pub host: String,
    pub port: u16,
    /// Connect, read and write timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u32,
}

fn default_timeout_ms() -> u32 {
    5_000
}

pub struct Plugin;

impl Strategy for Plugin {
    const ID: &'static str = "{{name}}";
    const DISPLAY_NAME: &'static str = "{{name}}";
    const DESCRIPTION: &'static str = "A TCP connection; requests send bytes and read the reply";
    type Config = Config;
    type Client = Conn;

    fn connect(config: Config, _: &RunContext) -> Result<Conn, TransportError> {
        let timeout = Duration::from_millis(config.timeout_ms.into());
        Ok(Conn(net::connect(&config.host, config.port, timeout)?))
    }
}

pub struct Conn(Connection);

impl Client for Conn {
    fn exec(&mut self, request: Request) -> Result<Response, TransportError> {
        if !request.body.is_empty() {
            net::send(&mut self.0.stream, &request.body, "request")?;
        }
        let wait = Instant::now();
        let mut reply = vec![0; 4096];
        let read = self
            .0
            .stream
            .read(&mut reply)
            .map_err(|e| TransportError::from_io("read reply", &e))?;
        reply.truncate(read);
        Ok(Response {
            body: reply,
            timings: Timings {
                wait_ms: Some(net::ms_since(wait)),
                ..self.0.timings
            },
            ..Response::default()
        })
    }

    fn timings(&self) -> Timings {
        self.0.timings
    }
}

checkhost_sdk::export_strategy!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_rendered_per_environment_and_the_timeout_defaults() {
        let schema: checkhost_sdk::Value =
            checkhost_sdk::serde_json::from_str(&checkhost_sdk::schema_json::<Config>()).unwrap();
        assert_eq!(schema["properties"]["host"]["x-templatable"], true);
        let config: Config =
            checkhost_sdk::serde_json::from_str(r#"{"host": "db.internal", "port": 5432}"#)
                .unwrap();
        assert_eq!(config.timeout_ms, 5_000);
    }
}
