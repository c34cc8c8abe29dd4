//! The `lookup` collector: resolve one name for one record type.

use checkhost_sdk::{Collector, Request, RunContext, Transport, TransportError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy, Default, Debug)]
#[serde(rename_all = "UPPERCASE")]
pub enum RecordType {
    #[default]
    A,
    Aaaa,
    Cname,
    Mx,
    Txt,
    Ns,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    #[schemars(extend("x-templatable" = true))]
    pub hostname: String,
    #[serde(default)]
    pub record_type: RecordType,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    pub values: Vec<String>,
    #[schemars(extend("x-aggregate" = "min-max", "x-chart" = "bar"))]
    pub record_count: usize,
    #[schemars(extend("x-aggregate" = "min-max", "x-chart" = "line", "x-unit" = "ms"))]
    pub resolution_time_ms: f64,
}

pub struct Lookup;

impl Collector for Lookup {
    const ID: &'static str = "lookup";
    const DISPLAY_NAME: &'static str = "DNS lookup";
    const DESCRIPTION: &'static str = "Resolves a name and reports the records found";
    const STRATEGIES: &'static [&'static str] = &["dns"];
    const ALLOW_MULTIPLE: bool = true;
    type Config = Config;
    type Output = Output;

    fn collect(
        config: Config,
        _: &RunContext,
        transport: &Transport,
    ) -> Result<Output, TransportError> {
        let rtype = serde_json::to_value(config.record_type)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "A".into());
        let response = transport.exec(Request::new(rtype, config.hostname))?;
        let values: Vec<String> = serde_json::from_slice(&response.body)
            .map_err(|e| TransportError::Protocol(format!("dns strategy answered garbage: {e}")))?;
        Ok(Output {
            record_count: values.len(),
            values,
            resolution_time_ms: response.timings.dns_ms.unwrap_or_default(),
        })
    }
}

checkhost_sdk::export_collector!(Lookup);
