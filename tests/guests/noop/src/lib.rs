//! A strategy that reaches nothing: its client echoes each request body.
//! Used to measure the runtime's own cost and to host hostile collectors.

use checkhost_sdk::{Client, Request, Response, RunContext, Strategy, TransportError};
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema, Default)]
pub struct Config {
    /// Spin forever in `exec`: a strategy the CPU budget must stop.
    #[serde(default)]
    pub spin: bool,
}

pub struct Noop;

impl Strategy for Noop {
    const ID: &'static str = "noop";
    const DISPLAY_NAME: &'static str = "No-op";
    const DESCRIPTION: &'static str = "Echoes requests without touching the network";
    type Config = Config;
    type Client = Echo;

    fn connect(config: Config, _: &RunContext) -> Result<Echo, TransportError> {
        Ok(Echo { spin: config.spin })
    }
}

pub struct Echo {
    spin: bool,
}

impl Client for Echo {
    fn exec(&mut self, req: Request) -> Result<Response, TransportError> {
        if self.spin {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        Ok(Response {
            status: 200,
            body: req.body,
            ..Response::default()
        })
    }
}

checkhost_sdk::export_strategy!(Noop);
