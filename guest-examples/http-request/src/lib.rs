//! The `request` collector: one HTTP request over the `http` strategy, with
//! redirects followed on request.

use std::collections::BTreeMap;
use std::time::Instant;

use checkhost_sdk::{Collector, Request, RunContext, Transport, TransportError, Value};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

const MAX_REDIRECTS: usize = 10;

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Absolute URL, or a path relative to the strategy's `baseUrl`.
    #[schemars(extend("x-templatable" = true))]
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    #[schemars(extend("x-templatable" = true))]
    pub headers: BTreeMap<String, String>,
    #[schemars(extend("x-templatable" = true))]
    pub body: Option<String>,
    #[serde(default = "default_true")]
    pub follow_redirects: bool,
    pub timeout_ms: Option<u32>,
}

fn default_method() -> String {
    "GET".into()
}

fn default_true() -> bool {
    true
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    #[schemars(extend("x-aggregate" = "last", "x-chart" = "bar"))]
    pub status_code: u32,
    pub status_text: String,
    #[schemars(extend("x-aggregate" = "min-max", "x-chart" = "line", "x-unit" = "ms"))]
    pub response_time_ms: f64,
    /// Parsed JSON when the body is JSON, text otherwise. Not persisted by
    /// default: it is there for assertions.
    #[schemars(extend("x-persist" = false))]
    pub body: Value,
    #[schemars(extend("x-aggregate" = "average", "x-chart" = "line", "x-unit" = "bytes"))]
    pub body_length: usize,
    /// Not persisted by default either: volatile (`date`) and repeated on
    /// every run, they are there for assertions.
    #[schemars(extend("x-persist" = false))]
    pub headers: BTreeMap<String, String>,
    pub redirects: usize,
}

pub struct HttpRequest;

impl Collector for HttpRequest {
    const ID: &'static str = "request";
    const DISPLAY_NAME: &'static str = "HTTP request";
    const DESCRIPTION: &'static str =
        "Sends one HTTP request and reports status, timing, headers and body";
    const STRATEGIES: &'static [&'static str] = &["http"];
    const ALLOW_MULTIPLE: bool = true;
    type Config = Config;
    type Output = Output;

    fn collect(
        config: Config,
        _: &RunContext,
        transport: &Transport,
    ) -> Result<Output, TransportError> {
        let start = Instant::now();
        let mut request = Request::new(config.method.clone(), config.url.clone())
            .body(config.body.clone().unwrap_or_default())
            .timeout_ms(config.timeout_ms);
        request.headers = config.headers.into_iter().collect();
        let mut redirects = 0;
        let response = loop {
            let response = transport.exec(request.clone())?;
            let location = response.header("location").map(str::to_string);
            match location {
                Some(next) if config.follow_redirects && (300..400).contains(&response.status) => {
                    redirects += 1;
                    if redirects > MAX_REDIRECTS {
                        return Err(TransportError::Protocol(format!(
                            "more than {MAX_REDIRECTS} redirects"
                        )));
                    }
                    request.target = next;
                    if response.status == 303 {
                        request.method = "GET".into();
                        request.body.clear();
                    }
                }
                _ => break response,
            }
        };
        let body = serde_json::from_slice(&response.body).unwrap_or_else(|_| {
            Value::String(String::from_utf8_lossy(&response.body).into_owned())
        });
        Ok(Output {
            status_code: response.status,
            status_text: response.status_text,
            response_time_ms: start.elapsed().as_secs_f64() * 1000.0,
            body_length: response.body.len(),
            body,
            headers: response
                .headers
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            redirects,
        })
    }
}

checkhost_sdk::export_collector!(HttpRequest);
