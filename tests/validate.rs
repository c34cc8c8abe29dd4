//! `checkhost validate` on a corpus of broken configs: each gives exactly
//! one problem naming the exact place; a valid config passes; nothing is
//! ever written.

mod support;

use std::path::Path;

use support::{cache_dir, plugin_dir};

const PLUGINS: &[&str] = &[
    "http",
    "http-request",
    "readme-collector",
    "noop",
    "hostile",
];

fn validate(config: &Path, plugins: &Path) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_checkhost"))
        .arg("validate")
        .arg(config)
        .arg("--plugins")
        .arg(plugins)
        .env("CHECKHOST_CACHE_DIR", cache_dir())
        .env_remove("CHECKHOST_SECRET_NOT_DEFINED_ANYWHERE")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

fn corpus() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/configs")
}

#[test]
fn every_broken_config_gives_one_precise_error() {
    let plugins = plugin_dir(PLUGINS);
    let mut files: Vec<_> = std::fs::read_dir(corpus().join("broken"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 15);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .expect("first line is `# expect: ...`");
        let (code, output) = validate(&file, plugins.path());
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        assert_eq!(code, Some(1), "{name}: {output}");
        let problems: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            problems.len(),
            1,
            "{name}: expected one problem, got:\n{output}"
        );
        assert!(
            problems[0].contains(expect),
            "{name}: expected `{expect}` in:\n{output}"
        );
    }
}

#[test]
fn a_valid_config_passes_and_nothing_is_written() {
    let plugins = plugin_dir(PLUGINS);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("valid.yaml");
    std::fs::copy(corpus().join("valid.yaml"), &config).unwrap();
    let (code, output) = validate(&config, plugins.path());
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("valid"), "{output}");
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        files,
        vec![std::ffi::OsString::from("valid.yaml")],
        "validate wrote files"
    );
}

#[test]
fn the_published_config_schema_matches_the_binary() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_checkhost"))
        .arg("config-schema")
        .output()
        .unwrap();
    let committed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/checkhost.schema.json"),
    )
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        committed.trim(),
        "schemas/checkhost.schema.json is stale: regenerate with `checkhost config-schema`"
    );
}

#[test]
fn skip_secrets_checks_everything_but_their_availability() {
    let plugins = plugin_dir(PLUGINS);
    let run = |file: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_checkhost"))
            .args(["validate", "--skip-secrets"])
            .arg(file)
            .arg("--plugins")
            .arg(plugins.path())
            .env("CHECKHOST_CACHE_DIR", cache_dir())
            .env_remove("CHECKHOST_SECRET_NOT_DEFINED_ANYWHERE")
            .output()
            .unwrap()
    };
    let missing = run(&corpus().join("broken/missing-secret.yaml"));
    assert!(
        missing.status.success(),
        "{}",
        String::from_utf8_lossy(&missing.stdout)
    );
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("1 secret reference(s) not resolved")
    );
    // A malformed reference is still an error.
    let plain = run(&corpus().join("broken/api-plain-token.yaml"));
    assert_eq!(plain.status.code(), Some(1));
}
