//! The `banner` collector: what a TCP service says first (SSH, SMTP, FTP...).

use checkhost_sdk::{Collector, Request, RunContext, Transport, TransportError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Bytes to send before reading, e.g. `"HELO checkhost\r\n"`.
    #[schemars(extend("x-templatable" = true))]
    pub send: Option<String>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    pub connected: bool,
    pub connect_ms: Option<f64>,
    pub banner: String,
    pub read_ms: Option<f64>,
}

pub struct Banner;

impl Collector for Banner {
    const ID: &'static str = "banner";
    const DISPLAY_NAME: &'static str = "TCP banner";
    const DESCRIPTION: &'static str = "Connects and reads the first thing the service sends";
    const STRATEGIES: &'static [&'static str] = &["tcp"];
    type Config = Config;
    type Output = Output;

    fn collect(
        config: Config,
        _: &RunContext,
        transport: &Transport,
    ) -> Result<Output, TransportError> {
        let request = Request::new("exchange", "").body(config.send.unwrap_or_default());
        let response = transport.exec(request)?;
        Ok(Output {
            connected: true,
            connect_ms: response.timings.connect_ms,
            banner: String::from_utf8_lossy(&response.body)
                .trim_end()
                .to_string(),
            read_ms: response.timings.wait_ms,
        })
    }
}

checkhost_sdk::export_collector!(Banner);
