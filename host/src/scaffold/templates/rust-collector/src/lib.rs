//! The `{{name}}` collector: fetches a URL over the `http` strategy and
//! reports its status, whether it is the one expected, and how long it took.

use std::time::Instant;

use checkhost_sdk::{Collector, Request, RunContext, Transport, TransportError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Absolute URL, or a path relative to the strategy's `baseUrl`.
    #[schemars(extend("x-templatable" = true))]
    pub url: String,
    /// The status that counts as up.
    #[serde(default = "default_status")]
    pub expect_status: u32,
}

fn default_status() -> u32 {
    200
}

#[derive(Serialize, JsonSchema, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    pub status_code: u32,
    pub up: bool,
    pub response_time_ms: f64,
}

pub struct Plugin;

impl Collector for Plugin {
    const ID: &'static str = "{{name}}";
    const DISPLAY_NAME: &'static str = "{{name}}";
    const DESCRIPTION: &'static str = "Whether a URL answers with the expected status";
    const STRATEGIES: &'static [&'static str] = &["http"];
    type Config = Config;
    type Output = Output;

    fn collect(
        config: Config,
        _: &RunContext,
        transport: &Transport,
    ) -> Result<Output, TransportError> {
        let start = Instant::now();
        let response = transport.exec(Request::new("GET", config.url))?;
        Ok(summarize(response.status, config.expect_status, start))
    }
}

/// Everything the target answered is a metric; assertions judge it.
fn summarize(status_code: u32, expect_status: u32, start: Instant) -> Output {
    Output {
        status_code,
        up: status_code == expect_status,
        response_time_ms: start.elapsed().as_secs_f64() * 1000.0,
    }
}

checkhost_sdk::export_collector!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unexpected_status_is_down_not_an_error() {
        let output = summarize(503, 200, Instant::now());
        assert_eq!(output.status_code, 503);
        assert!(!output.up);
    }

    #[test]
    fn the_url_is_rendered_per_environment() {
        let schema: checkhost_sdk::Value =
            checkhost_sdk::serde_json::from_str(&checkhost_sdk::schema_json::<Config>()).unwrap();
        assert_eq!(schema["properties"]["url"]["x-templatable"], true);
    }
}
