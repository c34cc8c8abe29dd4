//! # checkhost-sdk
//!
//! Write checkhost plugins in Rust. A plugin crate is a `cdylib` built for
//! `wasm32-wasip2` that enables exactly one of the features `strategy` or
//! `collector`, implements [`Strategy`] or [`Collector`], and exports it with
//! [`export_strategy!`] or [`export_collector!`].
//!
//! Configs are typed: the JSON Schema the host validates against is generated
//! from the Rust type with `schemars`. Mark string fields rendered per
//! environment with `#[schemars(extend("x-templatable" = true))]` and secret
//! references with `#[schemars(extend("x-secret" = true))]`.
#![doc = include_str!("../README.md")]

#[cfg(all(feature = "strategy", feature = "collector"))]
compile_error!(
    "checkhost-sdk: enable exactly one of the features `strategy` and `collector`; \
     a component exports a single world"
);

mod migrate;
mod schema;
mod types;

pub mod dns;
pub mod http;

#[cfg(any(feature = "strategy", feature = "collector"))]
#[doc(hidden)]
pub mod bindings;
#[cfg(any(feature = "strategy", feature = "collector"))]
mod convert;
#[cfg(any(feature = "strategy", feature = "collector"))]
pub mod log;

#[cfg(feature = "collector")]
mod collector;
#[cfg(feature = "strategy")]
mod strategy;

#[cfg(feature = "collector")]
pub use collector::{Collector, CollectorAdapter, Transport};
pub use migrate::{Migrations, testing};
pub use schema::schema_json;
#[cfg(feature = "strategy")]
pub use strategy::{Client, ClientHandle, Strategy, StrategyAdapter};
pub use types::{
    CheckInfo, EnvironmentInfo, Request, Response, RunContext, SystemInfo, Timings, TransportError,
};

pub use schemars;
pub use serde_json::{self, Value, json};
