//! The `smtp` strategy (being written: it answers every connect with an error).

use checkhost_sdk::{Client, Request, Response, RunContext, Strategy, TransportError};
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    #[schemars(extend("x-templatable" = true))]
    pub host: String,
    pub port: Option<u16>,
}

pub struct Plugin;

impl Strategy for Plugin {
    const ID: &'static str = "smtp";
    const DISPLAY_NAME: &'static str = "smtp";
    const DESCRIPTION: &'static str = "smtp";
    type Config = Config;
    type Client = Conn;

    fn connect(_: Config, _: &RunContext) -> Result<Conn, TransportError> {
        Err(TransportError::Other("not written yet".into()))
    }
}

pub struct Conn;

impl Client for Conn {
    fn exec(&mut self, _: Request) -> Result<Response, TransportError> {
        Err(TransportError::Other("not written yet".into()))
    }
}

checkhost_sdk::export_strategy!(Plugin);
