use std::marker::PhantomData;

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::collector::checkhost::plugin::transport;
use crate::bindings::collector::exports::checkhost::plugin::collector_plugin as exports;
use crate::bindings::types as wit;
use crate::convert::{migrate_json, parse_config};
use crate::{Migrations, Request, Response, RunContext, TransportError};

/// What to measure over a strategy's connection.
pub trait Collector: 'static {
    const ID: &'static str;
    const DISPLAY_NAME: &'static str;
    const DESCRIPTION: &'static str;
    /// Strategy ids this collector can ride on.
    const STRATEGIES: &'static [&'static str];
    const ALLOW_MULTIPLE: bool = false;
    const CONFIG_VERSION: u32 = 1;

    type Config: DeserializeOwned + JsonSchema;
    /// The result object; its schema is what assertions are checked against.
    type Output: Serialize + JsonSchema;

    fn migrations() -> Migrations {
        Migrations::new()
    }

    /// Measures the target. Return `Err` only when the transport failed;
    /// whatever the target answered belongs in the output.
    fn collect(
        config: Self::Config,
        ctx: &RunContext,
        transport: &Transport,
    ) -> Result<Self::Output, TransportError>;
}

/// The strategy client of the current run, forwarded by the host.
pub struct Transport {
    _private: (),
}

impl Transport {
    pub fn exec(&self, request: Request) -> Result<Response, TransportError> {
        transport::exec(&request.into())
            .map(Into::into)
            .map_err(Into::into)
    }
}

/// Implements the WIT exports for a [`Collector`]; used by [`crate::export_collector!`].
pub struct CollectorAdapter<C>(PhantomData<C>);

impl<C: Collector> exports::Guest for CollectorAdapter<C> {
    fn describe() -> wit::CollectorInfo {
        wit::CollectorInfo {
            id: C::ID.to_string(),
            display_name: C::DISPLAY_NAME.to_string(),
            description: C::DESCRIPTION.to_string(),
            strategies: C::STRATEGIES.iter().map(|s| s.to_string()).collect(),
            allow_multiple: C::ALLOW_MULTIPLE,
            config_schema: crate::schema_json::<C::Config>(),
            config_version: C::CONFIG_VERSION,
            result_schema: crate::schema_json::<C::Output>(),
        }
    }

    fn migrate(from_version: u32, config_json: String) -> Result<String, String> {
        migrate_json(&C::migrations(), from_version, &config_json)
    }

    fn collect(config_json: String, ctx: wit::RunContext) -> wit::CollectorOutput {
        let outcome = parse_config::<C::Config>(&config_json)
            .and_then(|config| C::collect(config, &ctx.into(), &Transport { _private: () }));
        match outcome {
            Ok(output) => match serde_json::to_string(&output) {
                Ok(result_json) => wit::CollectorOutput {
                    result_json,
                    error: None,
                },
                Err(e) => failed(format!("result is not serialisable: {e}")),
            },
            Err(e) => failed(e.to_string()),
        }
    }
}

fn failed(error: String) -> wit::CollectorOutput {
    wit::CollectorOutput {
        result_json: "{}".to_string(),
        error: Some(error),
    }
}

/// Exports a [`Collector`] as this component's `collector` world.
#[macro_export]
macro_rules! export_collector {
    ($ty:ty) => {
        // Exports exist only in the component: a native build (unit tests,
        // `cargo build --workspace`) would fail to link WIT export names.
        #[cfg(target_family = "wasm")]
        const _: () = {
            type Export = $crate::CollectorAdapter<$ty>;
            $crate::bindings::collector::export_collector_world!(Export);
        };
        // Natively the plugin is still type-checked and counted as used.
        #[cfg(not(target_family = "wasm"))]
        const _: () = {
            #[allow(dead_code)]
            fn exported() {
                let _ = <$crate::CollectorAdapter<$ty> as $crate::bindings::collector::exports::checkhost::plugin::collector_plugin::Guest>::describe;
            }
        };
    };
}
