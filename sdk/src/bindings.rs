//! Bindings generated from `wit/` for both worlds. A plugin crate exports
//! one of them with `export_strategy!` or `export_collector!`; the world it
//! does not export costs nothing, because wit-bindgen describes only the
//! imports here and the exported world in the export macro's expansion.

pub mod strategy {
    wit_bindgen::generate!({
        path: "../wit",
        world: "strategy",
        pub_export_macro: true,
        export_macro_name: "export_strategy_world",
        default_bindings_module: "::checkhost_sdk::bindings::strategy",
    });
}

pub mod collector {
    wit_bindgen::generate!({
        path: "../wit",
        world: "collector",
        pub_export_macro: true,
        export_macro_name: "export_collector_world",
        default_bindings_module: "::checkhost_sdk::bindings::collector",
        // One set of WIT types for both worlds, so the SDK converts them once.
        with: {
            "checkhost:plugin/types@1.0.0": crate::bindings::strategy::checkhost::plugin::types,
            "checkhost:plugin/log@1.0.0": crate::bindings::strategy::checkhost::plugin::log,
        },
    });
}

pub use strategy::checkhost::plugin::{log, types};
