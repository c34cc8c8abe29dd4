//! A collector built against a future major version of the contract; the
//! host must refuse it and name both versions. Only a component build
//! has it: WIT export names do not link natively.
#![cfg(target_family = "wasm")]

wit_bindgen::generate!({
    inline: "
        package checkhost:plugin@2.0.0;
        interface collector-plugin {
            describe: func() -> string;
        }
        world collector {
            export collector-plugin;
        }
    ",
});

struct Future;

impl exports::checkhost::plugin::collector_plugin::Guest for Future {
    fn describe() -> String {
        "from the future".into()
    }
}

export!(Future);
