use checkhost_sdk::{Collector, Request, RunContext, Transport, TransportError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
#[derive(Deserialize, JsonSchema)]
struct Config {
    #[schemars(extend("x-templatable" = true))]
    path: String,
}
#[derive(Serialize, JsonSchema)]
struct Output {
    up: bool,
    status: u32,
}
struct Up;
impl Collector for Up {
    const ID: &'static str = "up";
    const DISPLAY_NAME: &'static str = "Up";
    const DESCRIPTION: &'static str = "Reads `up` from a JSON health endpoint";
    const STRATEGIES: &'static [&'static str] = &["http"];
    type Config = Config;
    type Output = Output;

    fn collect(c: Config, _: &RunContext, t: &Transport) -> Result<Output, TransportError> {
        let res = t.exec(Request::new("GET", c.path))?;
        let (up, status) = (res.json().is_ok_and(|v| v["up"] == true), res.status);
        Ok(Output { up, status })
    }
}

checkhost_sdk::export_collector!(Up);
