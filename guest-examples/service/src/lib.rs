//! The `service` collector: what a database, cache, broker or mail server
//! said when the strategy connected, and optionally the answer to one query
//! or command, over any strategy that follows `checkhost_sdk::service`.

use std::time::Instant;

use checkhost_sdk::net::ms_since;
use checkhost_sdk::service::{INFO, QUERY};
use checkhost_sdk::{Collector, Request, RunContext, Transport, TransportError, Value};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// One query or command in the service's own language, e.g. `SELECT 1`
    /// for postgres and mysql, `INFO server` for redis, `NOOP` for smtp.
    #[schemars(extend("x-templatable" = true))]
    pub query: Option<String>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    /// The server's version, when its protocol tells it.
    pub server_version: Option<String>,
    /// Everything the strategy learned while connecting.
    pub info: Value,
    #[schemars(extend("x-aggregate" = "average", "x-chart" = "line", "x-unit" = "ms"))]
    pub connect_ms: Option<f64>,
    /// Whether the server accepted the query (true when there is none).
    #[schemars(extend("x-aggregate" = "rate", "x-chart" = "boolean"))]
    pub ok: bool,
    /// The server's reason for refusing the query.
    pub error: Option<String>,
    /// The query's answer, as the strategy reports it.
    pub reply: Option<Value>,
    /// The query's time.
    #[schemars(extend("x-aggregate" = "min-max", "x-chart" = "line", "x-unit" = "ms"))]
    pub response_time_ms: f64,
}

pub struct Service;

impl Collector for Service {
    const ID: &'static str = "service";
    const DISPLAY_NAME: &'static str = "Service";
    const DESCRIPTION: &'static str =
        "Server version and handshake facts, and the answer to an optional query";
    const STRATEGIES: &'static [&'static str] =
        &["postgres", "mysql", "redis", "grpc-health", "smtp", "mqtt"];
    const ALLOW_MULTIPLE: bool = true;
    type Config = Config;
    type Output = Output;

    fn collect(
        config: Config,
        _: &RunContext,
        transport: &Transport,
    ) -> Result<Output, TransportError> {
        let start = Instant::now();
        let info_response = transport.exec(Request::new(INFO, ""))?;
        let info = info_response.json()?;
        let server_version = info
            .get("serverVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        let (ok, error, reply) = match config.query.filter(|q| !q.trim().is_empty()) {
            None => (true, None, None),
            Some(query) => {
                let answer = transport.exec(Request::new(QUERY, query))?;
                let reply = answer.json()?;
                let error = reply
                    .get("error")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                (answer.status == 0, error, Some(reply))
            }
        };
        Ok(Output {
            server_version,
            info,
            connect_ms: info_response.timings.connect_ms,
            ok,
            error,
            reply,
            response_time_ms: ms_since(start),
        })
    }
}

checkhost_sdk::export_collector!(Service);
