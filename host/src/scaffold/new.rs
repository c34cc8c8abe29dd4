//! `plugin new`: a plugin project from a template, with a test and a README
//! that walks through building and trying it.

use std::path::{Path, PathBuf};

use super::{Kind, Lang, MANIFEST, Manifest, ScaffoldError, valid_name};

/// The contract, copied into Python and JavaScript projects for their
/// binding generators.
const WIT: &str = include_str!("../../../wit/plugin.wit");

/// Where the SDK of the checkout this binary was built from lives.
const BUILT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk");

type Template = &'static [(&'static str, &'static str)];

const RUST_COLLECTOR: Template = &[
    (
        "Cargo.toml",
        include_str!("templates/rust-collector/Cargo.toml"),
    ),
    (
        "src/lib.rs",
        include_str!("templates/rust-collector/src/lib.rs"),
    ),
];
const RUST_STRATEGY: Template = &[
    (
        "Cargo.toml",
        include_str!("templates/rust-strategy/Cargo.toml"),
    ),
    (
        "src/lib.rs",
        include_str!("templates/rust-strategy/src/lib.rs"),
    ),
];
const PYTHON_COLLECTOR: Template = &[
    ("app.py", include_str!("templates/python-collector/app.py")),
    (
        "check.py",
        include_str!("templates/python-collector/check.py"),
    ),
    (
        "test_check.py",
        include_str!("templates/python-collector/test_check.py"),
    ),
    ("wit/plugin.wit", WIT),
];
const JS_COLLECTOR: Template = &[
    ("app.js", include_str!("templates/js-collector/app.js")),
    ("check.js", include_str!("templates/js-collector/check.js")),
    (
        "check.test.js",
        include_str!("templates/js-collector/check.test.js"),
    ),
    (
        "package.json",
        include_str!("templates/js-collector/package.json"),
    ),
    ("wit/plugin.wit", WIT),
];
const PYTHON_STRATEGY: Template = &[
    ("app.py", include_str!("templates/python-strategy/app.py")),
    (
        "strategy_plugin.py",
        include_str!("templates/python-strategy/strategy_plugin.py"),
    ),
    (
        "check.py",
        include_str!("templates/python-strategy/check.py"),
    ),
    (
        "test_check.py",
        include_str!("templates/python-strategy/test_check.py"),
    ),
];
const JS_STRATEGY: Template = &[
    ("app.js", include_str!("templates/js-strategy/app.js")),
    ("check.js", include_str!("templates/js-strategy/check.js")),
    (
        "check.test.js",
        include_str!("templates/js-strategy/check.test.js"),
    ),
    (
        "componentize.mjs",
        include_str!("templates/js-strategy/componentize.mjs"),
    ),
    (
        "package.json",
        include_str!("templates/js-strategy/package.json"),
    ),
];
/// What Python and JavaScript strategies build against: the contract plus
/// a world that adds wasi:sockets, since their toolchains bind only what a
/// world names. `deps/` holds unmodified WASI 0.2.12 WIT (Apache-2.0 WITH
/// LLVM-exception, from wasmtime-wasi 48.0.8's copy; see its README.md).
const SOCKETS_WIT: Template = &[
    ("wit/plugin.wit", WIT),
    (
        "wit/strategy-with-sockets.wit",
        include_str!("templates/wasi-sockets/strategy-with-sockets.wit"),
    ),
    (
        "wit/deps/README.md",
        include_str!("templates/wasi-sockets/deps/README.md"),
    ),
    (
        "wit/deps/sockets.wit",
        include_str!("templates/wasi-sockets/deps/sockets.wit"),
    ),
    (
        "wit/deps/io.wit",
        include_str!("templates/wasi-sockets/deps/io.wit"),
    ),
    (
        "wit/deps/clocks.wit",
        include_str!("templates/wasi-sockets/deps/clocks.wit"),
    ),
];

/// What to write and where.
pub struct NewPlugin {
    pub name: String,
    pub kind: Kind,
    pub lang: Lang,
    /// The folder to create; it must not exist.
    pub dir: PathBuf,
    /// The SDK a Rust plugin depends on; defaults to this checkout's.
    pub sdk: Option<PathBuf>,
}

/// Writes the project and returns the files written, relative to its folder.
pub fn new_plugin(plugin: &NewPlugin) -> Result<Vec<String>, ScaffoldError> {
    if !valid_name(&plugin.name) {
        return Err(ScaffoldError::BadName(plugin.name.clone()));
    }
    let template: &[Template] = match (plugin.lang, plugin.kind) {
        (Lang::Rust, Kind::Collector) => &[RUST_COLLECTOR],
        (Lang::Rust, Kind::Strategy) => &[RUST_STRATEGY],
        (Lang::Python, Kind::Collector) => &[PYTHON_COLLECTOR],
        (Lang::Js, Kind::Collector) => &[JS_COLLECTOR],
        (Lang::Python, Kind::Strategy) => &[PYTHON_STRATEGY, SOCKETS_WIT],
        (Lang::Js, Kind::Strategy) => &[JS_STRATEGY, SOCKETS_WIT],
    };
    if plugin.dir.exists() {
        return Err(ScaffoldError::Exists(plugin.dir.clone()));
    }
    let sdk = match plugin.lang {
        Lang::Rust => sdk_path(plugin.sdk.as_deref())?,
        _ => String::new(),
    };
    let render = |text: &str| {
        text.replace("{{name}}", &plugin.name)
            .replace("{{sdk}}", &sdk)
    };
    let manifest = Manifest {
        name: plugin.name.clone(),
        kind: plugin.kind,
        lang: plugin.lang,
    };
    let mut files: Vec<(String, String)> = template
        .iter()
        .copied()
        .flatten()
        .map(|(path, text)| (path.to_string(), render(text)))
        .collect();
    files.push(("README.md".into(), readme(&manifest)));
    files.push((
        MANIFEST.into(),
        serde_json::to_string_pretty(&manifest).expect("a manifest serialises") + "\n",
    ));
    for (path, text) in &files {
        write(&plugin.dir.join(path), text)?;
    }
    Ok(files.into_iter().map(|(path, _)| path).collect())
}

fn sdk_path(given: Option<&Path>) -> Result<String, ScaffoldError> {
    let sdk = given.unwrap_or(Path::new(BUILT_SDK));
    let manifest = sdk.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(ScaffoldError::NoSdk(sdk.to_path_buf()));
    }
    let absolute = sdk.canonicalize().map_err(|source| ScaffoldError::Io {
        path: sdk.to_path_buf(),
        source,
    })?;
    // TOML strings take forward slashes on every platform.
    Ok(absolute.to_string_lossy().replace('\\', "/"))
}

fn write(path: &Path, text: &str) -> Result<(), ScaffoldError> {
    let io = |source| ScaffoldError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::fs::write(path, text).map_err(io)
}

/// How a Python or JavaScript strategy reaches the network: Rust's standard
/// library imports wasi:sockets by itself, their toolchains do not.
fn sockets_note(m: &Manifest) -> String {
    let world = "\nThe strategy connects through `wasi:sockets`: `wit/strategy-with-sockets.wit`\n\
                 adds those imports to the `strategy` world; `wit/deps/` holds the WASI interfaces.\n";
    match (m.kind, m.lang) {
        (Kind::Strategy, Lang::Python) => world.to_string(),
        (Kind::Strategy, Lang::Js) => format!(
            "{world}`plugin build` runs `componentize.mjs`: componentize-js plus a fix for the\n\
             class it leaves out of the `wasi:sockets` bindings (ComponentizeJS#221).\n"
        ),
        _ => String::new(),
    }
}

fn readme(m: &Manifest) -> String {
    let (test, files) = match (m.lang, m.kind) {
        (Lang::Rust, _) => ("cargo test", "`src/lib.rs`"),
        (Lang::Python, Kind::Collector) => (
            "python3 -m unittest",
            "`check.py` (logic) and `app.py` (bindings)",
        ),
        (Lang::Python, Kind::Strategy) => (
            "python3 -m unittest",
            "`check.py` (logic), `app.py` and `strategy_plugin.py` (bindings)",
        ),
        (Lang::Js, _) => (
            "npm install && npm test",
            "`check.js` (logic) and `app.js` (bindings)",
        ),
    };
    let (try_it, config) = match m.kind {
        Kind::Collector => (
            format!(
                "checkhost plugin test <checkhost>/target/guests/http.wasm --collector {name}.wasm",
                name = m.name
            ),
            r#"'{"strategy": {"baseUrl": "http://127.0.0.1:8080/"}, "collector": {"url": "/health"}}'"#,
        ),
        Kind::Strategy => (
            format!("checkhost plugin test {name}.wasm", name = m.name),
            r#"'{"strategy": {"host": "127.0.0.1", "port": 5432}}'"#,
        ),
    };
    format!(
        "# {name}\n\nA checkhost {kind} written in {lang}: see {files}.\n\n\
         ```sh\n\
         {test:<32}# its unit tests\n\
         {build:<32}# writes {name}.wasm\n\
         checkhost plugin inspect {name}.wasm\n\
         {try_it} \\\n    --config {config} \\\n    --allow 127.0.0.1\n\
         ```\n\n\
         `--allow 127.0.0.1` lets the run reach this machine, which the network\n\
         policy refuses unless a check names it. Copy `{name}.wasm` into the\n\
         `plugins:` folder of your configuration to use it in checks.\n{sockets}",
        sockets = sockets_note(m),
        name = m.name,
        build = "checkhost plugin build",
        kind = m.kind,
        lang = match m.lang {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
        },
    )
}

#[cfg(test)]
mod tests {
    use super::super::SOCKETS_WORLD;
    use super::*;

    fn file(template: Template, path: &str) -> &'static str {
        template
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, text)| *text)
            .unwrap_or_else(|| panic!("{path} is in the template"))
    }

    #[test]
    fn the_sockets_world_is_the_one_the_build_names() {
        let world = file(SOCKETS_WIT, "wit/strategy-with-sockets.wit");
        assert!(world.contains(&format!("world {SOCKETS_WORLD} {{")));
        assert!(world.contains("include strategy;"));
    }

    #[test]
    fn every_wasi_package_the_sockets_world_imports_is_shipped() {
        let world = file(SOCKETS_WIT, "wit/strategy-with-sockets.wit");
        let imports = world
            .lines()
            .filter_map(|l| l.trim().strip_prefix("import wasi:")?.strip_suffix(';'))
            .collect::<Vec<_>>();
        assert!(imports.len() >= 8, "{imports:?}");
        for import in imports {
            // `sockets/tcp@0.2.12` is served by `package wasi:sockets@0.2.12;`
            let (package, rest) = import.split_once('/').expect("interface path");
            let version = rest.split_once('@').expect("versioned").1;
            let declaration = format!("package wasi:{package}@{version};");
            assert!(
                SOCKETS_WIT
                    .iter()
                    .any(|(path, text)| path.starts_with("wit/deps/")
                        && text.starts_with(&declaration)),
                "no wit/deps file declares {declaration}"
            );
        }
    }

    #[test]
    fn a_javascript_strategy_readme_explains_its_build_script() {
        let m = Manifest {
            name: "x".into(),
            kind: Kind::Strategy,
            lang: Lang::Js,
        };
        let text = readme(&m);
        assert!(text.contains("componentize.mjs"), "{text}");
        assert!(text.contains("strategy-with-sockets.wit"), "{text}");
        assert!(
            !readme(&Manifest {
                lang: Lang::Rust,
                ..m
            })
            .contains("wasi:sockets")
        );
    }
}
