//! checkhost: a health-check host whose probe logic runs as WebAssembly
//! components. Modules follow the data flow of a run.

pub mod api;
pub mod bench;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod mcp;
pub mod notify;
pub mod oci;
pub mod pipeline;
pub mod probe;
pub mod runtime;
pub mod scaffold;
pub mod serve;
pub mod store;
pub mod telemetry;
pub mod validate;
pub mod web;
