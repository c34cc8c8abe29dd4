//! # checkhost-sdk
//!
//! Write checkhost plugins in Rust. A plugin crate is a `cdylib` built for
//! `wasm32-wasip2` that implements [`Strategy`] or [`Collector`] and exports
//! it with [`export_strategy!`] or [`export_collector!`]. Both worlds are
//! always available, so one crate (a test harness, a workspace) may use both.
//!
//! Configs are typed: the JSON Schema the host validates against is generated
//! from the Rust type with `schemars`. Mark string fields rendered per
//! environment with `#[schemars(extend("x-templatable" = true))]` and secret
//! references with `#[schemars(extend("x-secret" = true))]`.
#![doc = include_str!("../README.md")]

mod migrate;
mod schema;
mod types;

pub mod dns;
pub mod http;
pub mod net;
pub mod service;

#[doc(hidden)]
pub mod bindings;
mod convert;
pub mod log;

mod collector;
mod strategy;

pub use collector::{Collector, CollectorAdapter, Transport};
pub use migrate::{Migrations, testing};
pub use schema::schema_json;
pub use strategy::{Client, ClientHandle, Strategy, StrategyAdapter};
pub use types::{
    CheckInfo, EnvironmentInfo, Request, Response, RunContext, SystemInfo, Timings, TransportError,
};

pub use schemars;
pub use serde_json::{self, Value, json};
