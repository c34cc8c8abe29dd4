//! checkhost: a health-check host whose probe logic runs as WebAssembly
//! components. Modules follow the data flow of a run.

pub mod cli;
pub mod runtime;
