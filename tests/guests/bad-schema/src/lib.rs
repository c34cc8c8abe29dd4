//! A collector whose schema marks one field both templatable and secret,
//! which the host must refuse at load.

use checkhost_sdk::{Collector, RunContext, Transport, TransportError, Value};
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema)]
pub struct Config {
    #[schemars(extend("x-templatable" = true, "x-secret" = true))]
    pub token: String,
}

pub struct BadSchema;

impl Collector for BadSchema {
    const ID: &'static str = "bad-schema";
    const DISPLAY_NAME: &'static str = "Bad schema";
    const DESCRIPTION: &'static str = "Marks a field both x-templatable and x-secret";
    const STRATEGIES: &'static [&'static str] = &["noop"];
    type Config = Config;
    type Output = Value;

    fn collect(_: Config, _: &RunContext, _: &Transport) -> Result<Value, TransportError> {
        Ok(Value::Null)
    }
}

checkhost_sdk::export_collector!(BadSchema);
