//! `plugin build`: each language's component toolchain, installed on first
//! use when a registry has it (the wasm32-wasip2 Rust target, componentize-py,
//! componentize-js).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Kind, Lang, MANIFEST, Manifest, SOCKETS_WORLD, ScaffoldError, valid_name};

const COMPONENTIZE_PY: &str = "componentize-py==0.25.*";

/// Builds the plugin project in `dir` and returns the component's path.
pub fn build(dir: &Path) -> Result<PathBuf, ScaffoldError> {
    let manifest = read_manifest(dir)?;
    let output = dir.join(format!("{}.wasm", manifest.name));
    let world = world(&manifest);
    match manifest.lang {
        Lang::Rust => build_rust(dir, &manifest, &output)?,
        Lang::Python => {
            if !succeeds(Command::new("componentize-py").arg("--version")) {
                eprintln!("installing {COMPONENTIZE_PY} with pip…");
                run(
                    Command::new("python3").args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        COMPONENTIZE_PY,
                    ]),
                    "python3",
                    Lang::Python,
                )?;
            }
            run(
                Command::new("componentize-py")
                    .current_dir(dir)
                    .args(["-d", "wit", "-w", world, "componentize", "app", "-o"])
                    .arg(&output),
                "componentize-py",
                Lang::Python,
            )?;
        }
        Lang::Js => {
            if !dir.join("node_modules").is_dir() {
                run(
                    Command::new("npm").current_dir(dir).args([
                        "install",
                        "--no-audit",
                        "--no-fund",
                        "--loglevel=error",
                    ]),
                    "npm",
                    Lang::Js,
                )?;
            }
            let (tool, componentize) = js_componentizer(manifest.kind);
            run(
                Command::new(tool)
                    .current_dir(dir)
                    .args(componentize)
                    .args(["app.js", "--wit", "wit", "-n", world, "-o"])
                    .arg(&output),
                tool,
                Lang::Js,
            )?;
        }
    }
    Ok(output)
}

/// The WIT world a project builds against.
fn world(manifest: &Manifest) -> &'static str {
    match (manifest.kind, manifest.lang) {
        (Kind::Collector, _) => "collector",
        (Kind::Strategy, Lang::Rust) => "strategy",
        (Kind::Strategy, Lang::Python | Lang::Js) => SOCKETS_WORLD,
    }
}

/// The program and leading arguments that turn `app.js` into a component.
/// Strategies use the project's `componentize.mjs`, componentize-js with a
/// fix for the wasi:sockets bindings it emits (ComponentizeJS#221).
fn js_componentizer(kind: Kind) -> (&'static str, &'static [&'static str]) {
    match kind {
        Kind::Collector => ("npx", &["--no-install", "componentize-js"]),
        Kind::Strategy => ("node", &["componentize.mjs"]),
    }
}

fn read_manifest(dir: &Path) -> Result<Manifest, ScaffoldError> {
    let path = dir.join(MANIFEST);
    let not_a_plugin = |reason: String| ScaffoldError::NotAPlugin {
        dir: dir.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        not_a_plugin(format!(
            "cannot read {MANIFEST} ({e}); create projects with `checkhost plugin new`"
        ))
    })?;
    let manifest: Manifest =
        serde_json::from_str(&text).map_err(|e| not_a_plugin(format!("{MANIFEST}: {e}")))?;
    // The name becomes a file name: nothing may lead outside the project.
    if !valid_name(&manifest.name) {
        return Err(not_a_plugin(format!(
            "{MANIFEST}: name `{}` is not a plugin id",
            manifest.name
        )));
    }
    Ok(manifest)
}

fn build_rust(dir: &Path, manifest: &Manifest, output: &Path) -> Result<(), ScaffoldError> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|source| tool_error("rustup", Lang::Rust, source))?;
    if !String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|t| t == "wasm32-wasip2")
    {
        run(
            Command::new("rustup").args(["target", "add", "wasm32-wasip2"]),
            "rustup",
            Lang::Rust,
        )?;
    }
    let cargo_toml = dir.join("Cargo.toml");
    run(
        Command::new("cargo")
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(&cargo_toml),
        "cargo",
        Lang::Rust,
    )?;
    let target = target_directory(&cargo_toml)?;
    let built = target
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", manifest.name.replace('-', "_")));
    std::fs::copy(&built, output).map_err(|source| ScaffoldError::Io {
        path: built,
        source,
    })?;
    Ok(())
}

/// Where cargo puts this project's artifacts, whatever configures it
/// (`CARGO_TARGET_DIR`, `build.target-dir` in a cargo config, the default).
fn target_directory(cargo_toml: &Path) -> Result<PathBuf, ScaffoldError> {
    let output = Command::new("cargo")
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(cargo_toml)
        .output()
        .map_err(|source| tool_error("cargo", Lang::Rust, source))?;
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
    metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| ScaffoldError::Failed {
            command: "cargo metadata".into(),
            status: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
}

fn tool_error(tool: &str, lang: Lang, source: std::io::Error) -> ScaffoldError {
    let hint = match lang {
        Lang::Rust => "Install Rust with rustup (https://rustup.rs).",
        Lang::Python => "Install Python 3 with pip.",
        Lang::Js => "Install Node.js 20 or newer with npm.",
    };
    ScaffoldError::Tool {
        tool: tool.to_string(),
        lang,
        hint,
        source,
    }
}

fn succeeds(command: &mut Command) -> bool {
    command.output().is_ok_and(|o| o.status.success())
}

/// Runs a toolchain step with its output going to the user's terminal.
fn run(command: &mut Command, tool: &str, lang: Lang) -> Result<(), ScaffoldError> {
    let status = command
        .status()
        .map_err(|source| tool_error(tool, lang, source))?;
    if status.success() {
        return Ok(());
    }
    let args: Vec<String> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    Err(ScaffoldError::Failed {
        command: format!("{tool} {}", args.join(" ")),
        status: status.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(kind: Kind, lang: Lang) -> Manifest {
        Manifest {
            name: "x".into(),
            kind,
            lang,
        }
    }

    #[test]
    fn python_and_javascript_strategies_build_against_the_sockets_world() {
        assert_eq!(world(&manifest(Kind::Strategy, Lang::Rust)), "strategy");
        assert_eq!(world(&manifest(Kind::Collector, Lang::Js)), "collector");
        for lang in [Lang::Python, Lang::Js] {
            assert_eq!(world(&manifest(Kind::Strategy, lang)), SOCKETS_WORLD);
        }
    }
}
