//! Plugin authoring in other languages: the shipped JavaScript and C
//! collectors ride on the Rust `http` strategy like any Rust collector, and
//! `plugin new` projects in every language build and run.

mod support;

use serde_json::json;
use support::{Probe, checkhost, servers};

#[tokio::test]
async fn javascript_collector_finds_keywords_and_patterns() {
    let server = servers::http().await;
    let outcome = Probe::new("http", json!({"baseUrl": format!("http://{server}/")}))
        .await
        .collector(
            "keyword-js",
            json!({"url": "/ok", "keyword": "UP", "caseSensitive": false, "pattern": "\"items\":\\[[0-9,]+\\]"}),
        )
        .await
        .collector("keyword-js", json!({"url": "/ok", "keyword": "down"}))
        .await
        .collector("keyword-js", json!({"url": "/ok"}))
        .await
        .run()
        .await;
    assert_eq!(outcome.failure, None, "{outcome:?}");
    assert_eq!(
        outcome.collectors[0].result,
        json!({"statusCode": 200, "found": true, "matches": 2, "match": "\"items\":[1,2,3]", "bodyBytes": 58})
    );
    assert_eq!(outcome.collectors[1].result["found"], false);
    assert_eq!(outcome.collectors[1].result["matches"], 0);
    assert_eq!(
        outcome.collectors[2].error.as_deref(),
        Some("bad config: give `keyword`, `pattern` or both")
    );
    assert!(
        outcome
            .logs
            .iter()
            .any(|l| l.plugin == "keyword" && l.message.contains("found=true")),
        "{:?}",
        outcome.logs
    );
}

#[tokio::test]
async fn c_collector_reports_a_header_in_any_case() {
    let server = servers::http().await;
    let outcome = Probe::new("http", json!({"baseUrl": format!("http://{server}/")}))
        .await
        .collector("header-c", json!({"url": "/ok", "header": "CONTENT-type"}))
        .await
        .collector(
            "header-c",
            json!({"url": "/ok", "header": "x-missing", "extra": [1, {"a": "}"}]}),
        )
        .await
        .collector("header-c", json!({"url": "/ok"}))
        .await
        .run()
        .await;
    assert_eq!(outcome.failure, None, "{outcome:?}");
    assert_eq!(
        outcome.collectors[0].result,
        json!({"statusCode": 200, "present": true, "count": 1, "value": "application/json"})
    );
    assert_eq!(
        outcome.collectors[1].result,
        json!({"statusCode": 200, "present": false, "count": 0, "value": null})
    );
    assert_eq!(
        outcome.collectors[2].error.as_deref(),
        Some("bad config: `url` and `header` are required")
    );
}

#[tokio::test]
async fn javascript_and_c_collectors_report_a_transport_failure_as_their_error() {
    for (collector, config) in [
        ("keyword-js", json!({"url": "/", "keyword": "x"})),
        ("header-c", json!({"url": "/", "header": "server"})),
    ] {
        let outcome = Probe::new("http", json!({"baseUrl": "http://127.0.0.1:1/"}))
            .await
            .collector(collector, config)
            .await
            .run()
            .await;
        let error = outcome.collectors[0].error.as_deref().unwrap_or_default();
        assert!(error.starts_with("refused: "), "{collector}: {outcome:?}");
    }
}

/// A project from `plugin new`, built by `plugin build`, its own unit test
/// passed; the folder lives as long as the returned guard.
struct Scaffolded {
    _parent: tempfile::TempDir,
    name: String,
    dir: std::path::PathBuf,
}

/// `plugin new`, then `before_build` on the new folder, then `plugin build`
/// and the plugin's own unit test.
fn scaffold(
    kind: &str,
    lang: &str,
    unit_test: &[&str],
    before_build: &dyn Fn(&std::path::Path),
) -> Scaffolded {
    let parent = tempfile::tempdir().unwrap();
    let name = format!("my-{lang}-{kind}");
    let dir = parent.path().join(&name);
    let plugin_new = || {
        checkhost(&[
            "plugin",
            "new",
            &name,
            "--kind",
            kind,
            "--lang",
            lang,
            "--dir",
            parent.path().to_str().unwrap(),
        ])
    };
    assert_success(&plugin_new());
    assert!(dir.join("README.md").is_file());

    let again = plugin_new();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already exists"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    before_build(&dir);
    let build = checkhost_in(&dir, &["plugin", "build"]);
    assert_success(&build);
    let built = String::from_utf8_lossy(&build.stdout);
    assert!(built.contains(&format!("({kind} `{name}`)")), "{built}");

    let tested = std::process::Command::new(unit_test[0])
        .args(&unit_test[1..])
        .current_dir(&dir)
        .env(
            "CARGO_TARGET_DIR",
            support::target_dir().join("scaffold-tests"),
        )
        .output()
        .unwrap();
    assert_success(&tested);
    Scaffolded {
        _parent: parent,
        name,
        dir,
    }
}

fn assert_success(output: &std::process::Output) {
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A config version this high makes every run migrate through a chain of
/// 119 steps: each needs a store of its own, whatever the language.
const LONG_CHAIN: u32 = 120;

/// Sets the config version a Python or JavaScript scaffold declares.
fn declare_config_version(dir: &std::path::Path, version: u32) {
    for (file, from, to) in [
        (
            "app.py",
            "config_version=1,",
            format!("config_version={version},"),
        ),
        (
            "app.js",
            "configVersion: 1,",
            format!("configVersion: {version},"),
        ),
    ] {
        let path = dir.join(file);
        if let Ok(source) = std::fs::read_to_string(&path) {
            assert!(source.contains(from), "{file} declares its version");
            std::fs::write(&path, source.replace(from, &to)).unwrap();
        }
    }
}

/// `plugin new`, its own unit test, `plugin build` and `plugin test` against
/// a local server, as the generated README walks through. Python and
/// JavaScript collectors declare a long migration chain first, which the
/// test's run goes through.
fn scaffold_builds_and_runs(lang: &str, unit_test: &[&str]) {
    let Scaffolded { name, dir, .. } = &scaffold("collector", lang, unit_test, &|dir| {
        declare_config_version(dir, LONG_CHAIN)
    });
    if lang != "rust" {
        let inspect = checkhost_in(
            dir,
            &["plugin", "inspect", &format!("{name}.wasm"), "--json"],
        );
        assert_success(&inspect);
        let info: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
        assert_eq!(info["configVersion"], LONG_CHAIN, "{info}");
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(servers::http());
    let config = json!({
        "strategy": {"baseUrl": format!("http://{server}/")},
        "collector": {"url": "/fail", "expectStatus": 500},
    });
    let run = checkhost_in(
        dir,
        &[
            "plugin",
            "test",
            support::guest("http").to_str().unwrap(),
            "--collector",
            &format!("{name}.wasm"),
            "--config",
            &config.to_string(),
            "--allow",
            "127.0.0.1",
            "--json",
        ],
    );
    assert_success(&run);
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(
        report["collectors"][0]["result"]["statusCode"], 500,
        "{report}"
    );
    assert_eq!(report["collectors"][0]["result"]["up"], true, "{report}");
}

/// `plugin new --kind strategy`, its unit test, `plugin build`, then
/// `plugin test` against a port that listens and one that refuses.
fn strategy_scaffold_builds_and_connects(lang: &str, unit_test: &[&str]) {
    let Scaffolded { name, dir, .. } = &scaffold("strategy", lang, unit_test, &|_| {});

    // The kernel completes the handshake from the backlog: no accept needed.
    let listening = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listening.local_addr().unwrap().port();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let connect = |port: u16| {
        let config = json!({"strategy": {"host": "127.0.0.1", "port": port, "timeoutMs": 2000}});
        let run = checkhost_in(
            dir,
            &[
                "plugin",
                "test",
                &format!("{name}.wasm"),
                "--config",
                &config.to_string(),
                "--allow",
                "127.0.0.1",
                "--json",
            ],
        );
        let report: serde_json::Value = serde_json::from_slice(&run.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&run.stderr)));
        (run.status.success(), report)
    };

    let (ok, report) = connect(open);
    assert!(ok, "{report}");
    assert_eq!(report["connectError"], serde_json::Value::Null, "{report}");
    assert_eq!(report["failure"], serde_json::Value::Null, "{report}");

    let (ok, report) = connect(closed);
    assert!(!ok, "{report}");
    assert_eq!(
        report["connectError"],
        format!("connection refused: connect to 127.0.0.1:{closed}: connection refused"),
        "{report}"
    );
    drop(listening);
}

fn checkhost_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_checkhost"))
        .args(args)
        .current_dir(dir)
        .env("CHECKHOST_CACHE_DIR", support::cache_dir())
        // Rust plugins share one target folder so their dependencies build once.
        .env(
            "CARGO_TARGET_DIR",
            support::target_dir().join("scaffold-tests"),
        )
        .output()
        .expect("checkhost binary runs")
}

#[test]
fn a_rust_collector_from_plugin_new_builds_and_runs() {
    scaffold_builds_and_runs("rust", &["cargo", "test", "--quiet"]);
}

#[test]
fn a_python_collector_from_plugin_new_builds_and_runs() {
    scaffold_builds_and_runs("python", &["python3", "-m", "unittest", "--quiet"]);
}

#[test]
fn a_javascript_collector_from_plugin_new_builds_and_runs() {
    scaffold_builds_and_runs("js", &["npm", "test", "--silent"]);
}

#[test]
fn a_python_strategy_from_plugin_new_builds_and_connects() {
    strategy_scaffold_builds_and_connects("python", &["python3", "-m", "unittest", "--quiet"]);
}

#[test]
fn a_javascript_strategy_from_plugin_new_builds_and_connects() {
    strategy_scaffold_builds_and_connects("js", &["npm", "test", "--silent"]);
}

#[test]
fn plugin_new_refuses_bad_names() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().to_str().unwrap();
    let bad = checkhost(&[
        "plugin",
        "new",
        "My_Check",
        "--kind",
        "collector",
        "--lang",
        "rust",
        "--dir",
        dir,
    ]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid plugin name `My_Check`"));
    let build = checkhost_in(parent.path(), &["plugin", "build"]);
    assert!(String::from_utf8_lossy(&build.stderr).contains("is not a plugin project"));
    assert_eq!(
        std::fs::read_dir(parent.path()).unwrap().count(),
        0,
        "nothing written"
    );
}
