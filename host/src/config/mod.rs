//! Configuration as code: the YAML model, loading it with precise errors,
//! and its published JSON Schema.

pub mod dependencies;
pub mod environments;
mod load;
mod model;
mod span;

pub use load::{ConfigError, LoadedConfig, load_config, parse as parse_text};
pub use model::*;
pub use span::{TimeSpan, parse_duration};

/// The JSON Schema of the configuration file, for editors.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(model::ConfigFile)).unwrap_or_default()
}
