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

/// `plugin lock` pins the files the config uses; a pinned file swapped for
/// another plugin's bytes is refused by digest (validate exits 2, naming
/// the file and both digests), `run` fails only the check that uses it,
/// a file the lock does not pin is not loaded, and `--require-lock`
/// refuses a config without a lock.
#[test]
fn a_lock_pins_the_plugins_and_a_swapped_file_is_refused_by_digest() {
    use checkhost::runtime::ComponentDigest;
    let plugins = plugin_dir(&["noop", "hostile", "http", "http-request", "tcp"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("checkhost.yaml");
    std::fs::write(
        &config,
        r#"
checks:
  - {id: good, strategy: {plugin: noop}, collectors: [{plugin: hostile, config: {mode: noop}}]}
  - {id: web, timeout: 2s, strategy: {plugin: http, config: {baseUrl: "http://127.0.0.1:9"}},
     network: {allow: ["127.0.0.1:9"]}, collectors: [{plugin: request, config: {url: /}}]}
systems: [{id: shop}]
assignments: [{system: shop, check: good}, {system: shop, check: web}]
"#,
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut all: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        all.extend([
            config.as_os_str(),
            "--plugins".as_ref(),
            plugins.path().as_os_str(),
        ]);
        support::checkhost_text(&all)
    };

    let (code, output) = run(&["plugin", "lock"]);
    assert_eq!(code, Some(0), "{output}");
    let lock = std::fs::read_to_string(dir.path().join("checkhost.lock")).unwrap();
    let files: Vec<&str> = lock
        .lines()
        .filter_map(|l| l.strip_prefix("- file: "))
        .collect();
    assert_eq!(
        files,
        [
            "hostile.wasm",
            "http-request.wasm",
            "http.wasm",
            "noop.wasm"
        ],
        "the files the config uses, and no other:\n{lock}"
    );
    let pinned =
        ComponentDigest::of(&std::fs::read(plugins.path().join("http-request.wasm")).unwrap());
    assert!(lock.contains(&pinned.to_string()), "{lock}");
    let (code, output) = validate(&config, plugins.path());
    assert_eq!(code, Some(0), "{output}");

    // The request collector's file now holds another plugin.
    let swapped = std::fs::read(plugins.path().join("hostile.wasm")).unwrap();
    std::fs::write(plugins.path().join("http-request.wasm"), &swapped).unwrap();
    let actual = ComponentDigest::of(&swapped);
    let (code, output) = validate(&config, plugins.path());
    assert_eq!(code, Some(2), "{output}");
    for needle in [
        "http-request.wasm".to_string(),
        "digest".to_string(),
        pinned.to_string(),
        actual.to_string(),
    ] {
        assert!(output.contains(&needle), "`{needle}` missing:\n{output}");
    }

    let db = format!("sqlite://{}", dir.path().join("runs.db").display());
    let (code, output) = run(&["run", "--json", "--database", &db]);
    assert_eq!(code, Some(1), "one check fails, the other runs: {output}");
    let start = output.find('[').expect("a JSON report");
    let reports: serde_json::Value = serde_json::Deserializer::from_str(&output[start..])
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    let report = |check: &str| {
        reports
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["check"] == check)
            .cloned()
            .unwrap_or_else(|| panic!("no report of `{check}`: {output}"))
    };
    assert_eq!(report("good")["healthy"], true, "{output}");
    let error = report("web")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("digest mismatch"), "{error}");

    std::fs::remove_file(dir.path().join("checkhost.lock")).unwrap();
    let (code, output) = run(&["validate", "--require-lock"]);
    assert_ne!(code, Some(0), "{output}");
    assert!(output.contains("--require-lock"), "{output}");
}
