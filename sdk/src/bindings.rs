//! Bindings generated from `wit/` for the one world this build exports.

#[cfg(feature = "strategy")]
wit_bindgen::generate!({
    path: "../wit",
    world: "strategy",
    pub_export_macro: true,
    export_macro_name: "export_strategy_world",
    default_bindings_module: "::checkhost_sdk::bindings",
});

#[cfg(feature = "collector")]
wit_bindgen::generate!({
    path: "../wit",
    world: "collector",
    pub_export_macro: true,
    export_macro_name: "export_collector_world",
    default_bindings_module: "::checkhost_sdk::bindings",
});
