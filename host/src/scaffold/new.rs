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
    let template = match (plugin.lang, plugin.kind) {
        (Lang::Rust, Kind::Collector) => RUST_COLLECTOR,
        (Lang::Rust, Kind::Strategy) => RUST_STRATEGY,
        (Lang::Python, Kind::Collector) => PYTHON_COLLECTOR,
        (Lang::Js, Kind::Collector) => JS_COLLECTOR,
        (lang, kind) => return Err(ScaffoldError::NoTemplate { lang, kind }),
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

fn readme(m: &Manifest) -> String {
    let (test, files) = match m.lang {
        Lang::Rust => ("cargo test", "`src/lib.rs`"),
        Lang::Python => (
            "python3 -m unittest",
            "`check.py` (logic) and `app.py` (bindings)",
        ),
        Lang::Js => (
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
         `plugins:` folder of your configuration to use it in checks.\n",
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
