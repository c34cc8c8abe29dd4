use std::cell::RefCell;
use std::marker::PhantomData;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use crate::bindings::strategy::exports::checkhost::plugin::strategy_plugin as exports;
use crate::bindings::types as wit;
use crate::convert::{migrate_json, parse_config};
use crate::{Migrations, Request, Response, RunContext, Timings, TransportError};

/// How to reach a target. `connect` opens whatever the protocol needs and
/// returns a [`Client`] that collectors use for the rest of the run.
pub trait Strategy: 'static {
    const ID: &'static str;
    const DISPLAY_NAME: &'static str;
    const DESCRIPTION: &'static str;
    /// Bump when the config shape changes, and add a step to `migrations`.
    const CONFIG_VERSION: u32 = 1;

    type Config: DeserializeOwned + JsonSchema;
    type Client: Client;

    fn migrations() -> Migrations {
        Migrations::new()
    }

    /// JSON Schema of what responses carry, for documentation.
    fn result_schema() -> serde_json::Value {
        serde_json::json!({"type": "object"})
    }

    fn connect(config: Self::Config, ctx: &RunContext) -> Result<Self::Client, TransportError>;
}

/// A live connection for one run.
pub trait Client: 'static {
    fn exec(&mut self, request: Request) -> Result<Response, TransportError>;

    fn timings(&self) -> Timings {
        Timings::default()
    }
}

/// The exported `client` resource: any [`Client`] behind the WIT interface.
pub struct ClientHandle(RefCell<Box<dyn Client>>);

impl exports::GuestClient for ClientHandle {
    fn exec(&self, req: wit::Request) -> Result<wit::Response, wit::TransportError> {
        self.0
            .borrow_mut()
            .exec(req.into())
            .map(Into::into)
            .map_err(Into::into)
    }

    fn timings(&self) -> wit::Timings {
        self.0.borrow().timings().into()
    }
}

/// Implements the WIT exports for a [`Strategy`]; used by [`crate::export_strategy!`].
pub struct StrategyAdapter<S>(PhantomData<S>);

impl<S: Strategy> exports::Guest for StrategyAdapter<S> {
    type Client = ClientHandle;

    fn describe() -> wit::StrategyInfo {
        wit::StrategyInfo {
            id: S::ID.to_string(),
            display_name: S::DISPLAY_NAME.to_string(),
            description: S::DESCRIPTION.to_string(),
            config_schema: crate::schema_json::<S::Config>(),
            config_version: S::CONFIG_VERSION,
            result_schema: S::result_schema().to_string(),
        }
    }

    fn migrate(from_version: u32, config_json: String) -> Result<String, String> {
        migrate_json(&S::migrations(), from_version, &config_json)
    }

    fn connect(
        config_json: String,
        ctx: wit::RunContext,
    ) -> Result<exports::Client, wit::TransportError> {
        let config: S::Config = parse_config(&config_json)?;
        let client = S::connect(config, &ctx.into())?;
        Ok(exports::Client::new(ClientHandle(RefCell::new(Box::new(
            client,
        )))))
    }
}

/// Exports a [`Strategy`] as this component's `strategy` world.
#[macro_export]
macro_rules! export_strategy {
    ($ty:ty) => {
        // Exports exist only in the component: a native build (unit tests,
        // `cargo build --workspace`) would fail to link WIT export names.
        #[cfg(target_family = "wasm")]
        const _: () = {
            type Export = $crate::StrategyAdapter<$ty>;
            $crate::bindings::strategy::export_strategy_world!(Export);
        };
        // Natively the plugin is still type-checked and counted as used.
        #[cfg(not(target_family = "wasm"))]
        const _: () = {
            #[allow(dead_code)]
            fn exported() {
                let _ = <$crate::StrategyAdapter<$ty> as $crate::bindings::strategy::exports::checkhost::plugin::strategy_plugin::Guest>::describe;
            }
        };
    };
}
