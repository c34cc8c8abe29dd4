//! Host-side bindings of the `checkhost:plugin` worlds.
//!
//! The collector world reuses the strategy world's `types` and `log`, so a
//! collector's `transport.exec` request can be handed to the strategy client
//! as is.

pub mod strategy {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "strategy",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

pub mod collector {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "collector",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "checkhost:plugin/types": super::strategy::checkhost::plugin::types,
            "checkhost:plugin/log": super::strategy::checkhost::plugin::log,
        },
    });
}

pub use strategy::checkhost::plugin::types::{
    CheckInfo, CollectorInfo, CollectorOutput, EnvironmentInfo, LogLevel, Request, Response,
    RunContext, StrategyInfo, SystemInfo, Timings, TransportError,
};

/// The contract version this host implements.
pub const CONTRACT_PACKAGE: &str = "checkhost:plugin";
pub const CONTRACT_MAJOR: u64 = 1;
pub const CONTRACT_VERSION: &str = "1.0.0";

impl TransportError {
    /// `refused: connect to 127.0.0.1:1: Connection refused`
    pub fn describe(&self) -> String {
        let (kind, msg) = match self {
            TransportError::Refused(m) => ("connection refused", m),
            TransportError::Dns(m) => ("dns failure", m),
            TransportError::Tls(m) => ("tls failure", m),
            TransportError::Timeout(m) => ("timeout", m),
            TransportError::Protocol(m) => ("protocol error", m),
            TransportError::BadConfig(m) => ("bad config", m),
            TransportError::Denied(m) => ("denied", m),
            TransportError::Other(m) => ("transport error", m),
        };
        format!("{kind}: {msg}")
    }
}
