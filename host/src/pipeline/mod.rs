//! The run pipeline, one module per stage, in contract order:
//! environments (`config::environments`) → migrate → secrets → render → execute
//! → assert → mask → persist.

pub mod assert;
pub mod lock;
pub mod plugin_index;
pub mod plugins;
pub mod render;
pub mod run;
pub mod schema_walk;
pub mod secrets;
pub mod setup;
