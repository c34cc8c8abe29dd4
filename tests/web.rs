//! What users see of `checkhost serve` from outside: the status page in a real
//! headless browser (following a status change live, lined up, accessible,
//! the demo's charts), on both engines; the REST API fuzzed against its own
//! OpenAPI document and checked by outside validators. They need
//! `scripts/install-test-tools`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use support::Workspace;
use support::daemon::Daemon;
use support::db::TestDb;

on_both_engines!(
    the_status_page_follows_a_status_change_live_in_a_real_browser,
    the_pages_line_up_fit_a_phone_and_pass_an_accessibility_check,
    the_demo_charts_what_its_collectors_measure,
);

/// The engine's name, for the screenshots' file names.
fn engine(db: &TestDb) -> &'static str {
    match db {
        TestDb::Sqlite(_) => "sqlite",
        TestDb::Postgres { .. } => "postgres",
    }
}

const TOKEN: &str = "web-test-token";

/// The workspace root (`host/..`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Whether the tools are installed; if not, says so loudly and the test
/// returns, except on CI (`CI=true`), where a missing tool fails the test.
fn tools_present(tools: &[PathBuf]) -> bool {
    let missing: Vec<String> = tools
        .iter()
        .filter(|t| !t.exists())
        .map(|t| t.display().to_string())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "SKIPPED: {} missing: run scripts/install-test-tools",
        missing.join(", ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}");
    }
    eprintln!("\n==================== {message} ====================\n");
    false
}

/// An HTTP server whose `/health` answers 200 while `up` is true, else 500.
async fn flip_server(up: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let up = up.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8 * 1024];
                let mut len = 0;
                while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf[len..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => len += n,
                    }
                    if len == buf.len() {
                        return;
                    }
                }
                let head = String::from_utf8_lossy(&buf[..len]);
                let status = match head.split_whitespace().nth(1) {
                    Some("/health") if up.load(Ordering::SeqCst) => "200 OK",
                    Some("/health") => "500 Internal Server Error",
                    _ => "404 Not Found",
                };
                let response =
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = conn.write_all(response.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    port
}

/// System `shop` in environment `prod`, checked by `web` against the flip
/// server every `interval`, unhealthy after one failure.
fn config(port: u16, interval: &str, api: &str) -> String {
    format!(
        r#"{api}
environments:
  - id: prod
systems:
  - id: shop
    environments: [prod]
checks:
  - id: web
    interval: {interval}
    timeout: 2s
    strategy: {{plugin: http, config: {{baseUrl: "http://127.0.0.1:{port}"}}}}
    network: {{allow: ["127.0.0.1/32"]}}
    collectors:
      - plugin: request
        config: {{url: /health}}
        assertions: [{{field: statusCode, operator: equals, value: 200}}]
assignments:
  - {{system: shop, check: web, thresholds: {{mode: consecutive, degraded: 1, unhealthy: 1}}}}
"#
    )
}

/// `shop`'s rollup and `shop::prod`'s status from `GET /api/v1/systems/shop`.
async fn statuses(client: &reqwest::Client, d: &Daemon) -> Option<(String, String)> {
    let body = client
        .get(d.url("/api/v1/systems/shop"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let prod = v["environments"]
        .as_array()?
        .iter()
        .find(|e| e["id"] == "prod")?;
    Some((
        v["status"].as_str()?.to_string(),
        prod["status"].as_str()?.to_string(),
    ))
}

async fn wait_healthy(client: &reqwest::Client, d: &Daemon) {
    let start = Instant::now();
    loop {
        let now = statuses(client, d).await;
        if now
            .as_ref()
            .is_some_and(|(s, p)| s == "healthy" && p == "healthy")
        {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "shop::prod did not become healthy (now {now:?}); log:\n{}",
            d.log().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts the daemon off the async workers (it waits for `/healthz` by
/// sleeping), so the flip server keeps answering.
fn start(ws: &Workspace, env: &[(&str, &str)]) -> Daemon {
    tokio::task::block_in_place(|| Daemon::start_with_env(ws, &[], env))
}

async fn the_status_page_follows_a_status_change_live_in_a_real_browser(db: TestDb) {
    let script = root().join("tests/browser/status-page.mjs");
    if !tools_present(&[
        root().join("tests/browser/node_modules/playwright-core"),
        PathBuf::from("/usr/bin/chromium"),
    ]) {
        return;
    }
    let up = Arc::new(AtomicBool::new(true));
    let port = flip_server(up.clone()).await;
    let ws = Workspace::on(db, &["http", "http-request"]);
    ws.config(&config(port, "1s", ""));
    let daemon = start(&ws, &[]);
    let client = reqwest::Client::new();
    wait_healthy(&client, &daemon).await;

    let artifacts = support::target_dir().join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("status-page.png");
    let _ = std::fs::remove_file(&screenshot);
    let mut browser = tokio::process::Command::new("node")
        .arg(&script)
        .args(["--url", &daemon.url("/")])
        .arg("--screenshot")
        .arg(&screenshot)
        .args(["--expect", r#"{"shop":"healthy","shop::prod":"healthy"}"#])
        .args(["--change", "shop::prod=unhealthy", "--timeout-ms", "20000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (scripts/install-test-tools)");
    let mut stdout = BufReader::new(browser.stdout.take().unwrap()).lines();
    let mut stderr = browser.stderr.take().unwrap();
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });

    let outcome = tokio::time::timeout(Duration::from_secs(45), async {
        let mut seen = Vec::new();
        while let Some(line) = stdout.next_line().await.unwrap() {
            if line == "READY" {
                up.store(false, Ordering::SeqCst);
            }
            seen.push(line);
        }
        (browser.wait().await.unwrap(), seen)
    })
    .await;
    let stderr = tokio::time::timeout(Duration::from_secs(5), stderr)
        .await
        .map(|t| t.unwrap_or_default())
        .unwrap_or_default();
    let log = || daemon.log().join("\n");
    let Ok((status, seen)) = outcome else {
        panic!(
            "the browser script did not finish in 45 s; stderr:\n{stderr}\ndaemon log:\n{}",
            log()
        );
    };
    assert!(
        status.success() && seen == ["READY", "OK"],
        "the browser script failed ({status}); stdout: {seen:?}\nstderr:\n{stderr}\n\
         screenshot: {}\ndaemon log:\n{}",
        screenshot.display(),
        log()
    );
    assert!(
        screenshot.exists(),
        "no screenshot at {}",
        screenshot.display()
    );
    println!("status page screenshot: {}", screenshot.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_holds_to_its_openapi_document_under_fuzzing() {
    let target = support::target_dir();
    if !tools_present(&[target.join("test-tools/venv/bin/schemathesis")]) {
        return;
    }
    let up = Arc::new(AtomicBool::new(true));
    let port = flip_server(up.clone()).await;
    let ws = Workspace::new(&["http", "http-request"]);
    ws.config(&config(
        port,
        "1h",
        "api:\n  token: \"${{ secrets.API_TOKEN }}\"",
    ));
    let daemon = start(&ws, &[("CHECKHOST_SECRET_API_TOKEN", TOKEN)]);
    let client = reqwest::Client::new();

    // Runs and transitions to read: healthy, unhealthy, healthy again.
    for (healthy, want) in [(true, "healthy"), (false, "unhealthy"), (true, "healthy")] {
        up.store(healthy, Ordering::SeqCst);
        let response = client
            .post(daemon.url("/api/v1/assignments/shop/web/run"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["runs"][0]["status"], want, "{body}");
    }

    let started = Instant::now();
    let out = tokio::process::Command::new(root().join("tests/api-fuzz/run"))
        .args([&daemon.url(""), TOKEN])
        .env("CARGO_TARGET_DIR", &target)
        .env("API_FUZZ_PATH", "system=shop check=web")
        .kill_on_drop(true)
        .output()
        .await
        .expect("tests/api-fuzz/run starts");
    let output = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "api-fuzz failed ({}) after {:?}:\n{output}\ndaemon log (errors):\n{}",
        out.status,
        started.elapsed(),
        daemon
            .log()
            .iter()
            .filter(|l| l.contains("\"ERROR\"") || l.contains("\"WARN\""))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!("api-fuzz passed in {:?}", started.elapsed());
}

/// Four systems, one per status: `shop` healthy in two environments,
/// `billing` degraded, `platform` (no environments, the row whose empty
/// cells once shifted the table) unhealthy, `archive` unknown (its only
/// check paused); and a location no probe reports from (its row in the
/// Locations table).
fn looks_config(port: u16) -> String {
    format!(
        r#"
api: {{token: "${{{{ secrets.API_TOKEN }}}}"}}
environments:
  - {{id: staging, name: Staging}}
  - {{id: production, name: Production}}
locations:
  - {{id: eu-west, name: Europe West (Frankfurt and Dublin)}}
systems:
  - {{id: shop, name: Web shop, environments: [staging, production]}}
  - {{id: billing, name: Billing, environments: [production]}}
  - {{id: platform, name: Platform services}}
  - {{id: archive, name: Archive}}
checks:
  - id: web
    name: Health endpoint
    interval: 1s
    timeout: 2s
    strategy: {{plugin: http, config: {{baseUrl: "http://127.0.0.1:{port}"}}}}
    network: {{allow: ["127.0.0.1/32"]}}
    collectors:
      - plugin: request
        config: {{url: /health}}
        assertions: [{{field: statusCode, operator: equals, value: 200}}]
  - id: broken
    name: A path that is not there
    interval: 1s
    timeout: 2s
    strategy: {{plugin: http, config: {{baseUrl: "http://127.0.0.1:{port}"}}}}
    network: {{allow: ["127.0.0.1/32"]}}
    collectors:
      - plugin: request
        config: {{url: /missing}}
        assertions: [{{field: statusCode, operator: equals, value: 200}}]
assignments:
  - {{system: shop, check: web}}
  - {{system: billing, check: broken, thresholds: {{mode: consecutive, degraded: 1, unhealthy: 100000}}}}
  - {{system: platform, check: broken, thresholds: {{mode: consecutive, degraded: 1, unhealthy: 1}}}}
  - {{system: archive, check: web, paused: true}}
"#
    )
}

/// The index and a system page as people see them (an open incident on
/// both), at 1280 and 390 px, in
/// the light and the dark scheme: cells under their headers, nothing wider
/// than the window, status by word and shape, no serious accessibility
/// violation (axe-core), and a screenshot of each in `target/artifacts/`.
async fn the_pages_line_up_fit_a_phone_and_pass_an_accessibility_check(db: TestDb) {
    if !tools_present(&[
        root().join("tests/browser/node_modules/playwright-core"),
        root().join("tests/browser/node_modules/axe-core"),
        PathBuf::from("/usr/bin/chromium"),
    ]) {
        return;
    }
    let up = Arc::new(AtomicBool::new(true));
    let port = flip_server(up).await;
    let engine = engine(&db);
    let ws = Workspace::on(db, &["http", "http-request"]);
    ws.config(&looks_config(port));
    let daemon = start(&ws, &[("CHECKHOST_SECRET_API_TOKEN", TOKEN)]);
    let client = reqwest::Client::new();
    // An open incident, with a long unbroken word, on both pages.
    let incident = serde_json::json!({
        "title": "Card payments failing for some customers",
        "severity": "major",
        "systems": ["shop"],
        "body": format!("We are on it. Trace: {}", "x".repeat(120)),
    });
    let opened = client
        .post(daemon.url("/api/v1/incidents"))
        .bearer_auth(TOKEN)
        .header("Content-Type", "application/json")
        .body(incident.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 201);
    let want = [
        ("shop", "healthy"),
        ("billing", "degraded"),
        ("platform", "unhealthy"),
        ("archive", "unknown"),
    ];
    let started = Instant::now();
    loop {
        let body = client
            .get(daemon.url("/api/v1/systems"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let found = |id: &str| {
            v.as_array()
                .and_then(|systems| systems.iter().find(|s| s["id"] == id))
                .and_then(|s| s["status"].as_str())
                .unwrap_or("")
                .to_string()
        };
        if want.iter().all(|(id, status)| found(id) == *status) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "statuses never reached {want:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let index = format!("index-{engine}={}", daemon.url("/"));
    let system = format!("system-{engine}={}", daemon.url("/systems/shop"));
    let grow = format!("system-{engine}=shop/web/production");
    let artifacts = page_check(&["--page", &index, "--page", &system, "--grow", &grow]).await;
    for name in [
        "index-{engine}-1280-light",
        "index-{engine}-390-dark",
        "system-{engine}-390-light",
    ] {
        let shot = artifacts.join(format!("{}.png", name.replace("{engine}", engine)));
        assert!(shot.exists(), "no screenshot at {}", shot.display());
    }
    println!("page screenshots in {}", artifacts.display());
}

/// Runs `tests/browser/page-check.mjs` on `pages` (its `--page` and
/// `--grow` arguments) at 1280 and 390 px and fails the test with its
/// report unless every check passes; returns where the screenshots are.
async fn page_check(pages: &[&str]) -> PathBuf {
    let artifacts = support::target_dir().join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let out = tokio::process::Command::new("node")
        .arg(root().join("tests/browser/page-check.mjs"))
        .arg("--artifacts")
        .arg(&artifacts)
        .args(["--widths", "1280,390"])
        .args(pages)
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs (scripts/install-test-tools)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.ends_with("OK\n"),
        "the page check failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    artifacts
}

/// Runs a tool and fails the test with its output when it fails.
async fn tool(program: &Path, args: &[&std::ffi::OsStr], what: &str) -> String {
    let out = tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{} does not start: {e}", program.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    text
}

/// What outside tools accept: `openapi-spec-validator` passes the OpenAPI
/// document, `openapi-python-client` generates a client from it whose every
/// module imports, and `promtool check metrics` is clean on `/metrics`
/// (the Prometheus text format; a scraper asking for OpenMetrics gets that).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_document_and_the_metrics_pass_outside_validators() {
    let venv = support::target_dir().join("test-tools/venv/bin");
    let promtool = PathBuf::from("/usr/bin/promtool");
    if !tools_present(&[
        venv.join("openapi-spec-validator"),
        venv.join("openapi-python-client"),
        promtool.clone(),
    ]) {
        return;
    }
    let up = Arc::new(AtomicBool::new(true));
    let port = flip_server(up).await;
    let ws = Workspace::new(&["http", "http-request"]);
    ws.config(&config(port, "1s", ""));
    let daemon = start(&ws, &[]);
    let client = reqwest::Client::new();
    wait_healthy(&client, &daemon).await;
    let dir = tempfile::tempdir().unwrap();

    let document = dir.path().join("openapi.json");
    let body = client
        .get(daemon.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    std::fs::write(&document, body.bytes().await.unwrap()).unwrap();
    tool(
        &venv.join("openapi-spec-validator"),
        &[document.as_os_str()],
        "openapi-spec-validator",
    )
    .await;

    let config = dir.path().join("generate.yaml");
    std::fs::write(&config, "post_hooks: []\n").unwrap();
    let package = dir.path().join("checkhost_client");
    let generated = tool(
        &venv.join("openapi-python-client"),
        &[
            "generate".as_ref(),
            "--path".as_ref(),
            document.as_os_str(),
            "--output-path".as_ref(),
            package.as_os_str(),
            "--meta".as_ref(),
            "none".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
        ],
        "openapi-python-client",
    )
    .await;
    assert!(
        !generated.contains("Warning"),
        "every endpoint and schema generates:\n{generated}"
    );
    let imports = "import importlib, pkgutil, sys\n\
        sys.path.insert(0, sys.argv[1])\n\
        pkg = importlib.import_module('checkhost_client')\n\
        names = [m.name for m in pkgutil.walk_packages(pkg.__path__, 'checkhost_client.')]\n\
        [importlib.import_module(n) for n in names]\n\
        from checkhost_client.api.status import list_systems, get_system\n\
        from checkhost_client.api.runs import list_runs, get_history, list_transitions\n\
        print(len(names))";
    tool(
        &venv.join("python"),
        &["-c".as_ref(), imports.as_ref(), dir.path().as_os_str()],
        "importing the generated client",
    )
    .await;

    let metrics = client
        .get(daemon.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("# TYPE checkhost_runs_total counter"),
        "{metrics}"
    );
    let text = dir.path().join("metrics.txt");
    std::fs::write(&text, &metrics).unwrap();
    let out = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&text).unwrap())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics ({}):\n{said}",
        out.status
    );
    let open = daemon.open_metrics().await;
    assert!(
        open.contains("# TYPE checkhost_runs counter") && open.trim_end().ends_with("# EOF"),
        "{open}"
    );
    // A strict OpenMetrics parser reads it, and the run-duration and
    // guest-CPU buckets carry exemplars that name stored runs.
    let exposition = dir.path().join("metrics.om");
    std::fs::write(&exposition, &open).unwrap();
    let parse = "import sys\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
        text = open(sys.argv[1]).read()\n\
        for family in text_string_to_metric_families(text):\n\
        \x20   for s in family.samples:\n\
        \x20       if s.exemplar is not None:\n\
        \x20           print(family.name, s.exemplar.labels['run_id'])";
    let found = tool(
        &venv.join("python"),
        &["-c".as_ref(), parse.as_ref(), exposition.as_os_str()],
        "parsing /metrics as OpenMetrics",
    )
    .await;
    let runs: serde_json::Value = client
        .get(daemon.url("/api/v1/runs?limit=1000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stored: std::collections::HashSet<String> = runs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].to_string())
        .collect();
    for family in [
        "checkhost_run_duration_seconds",
        "checkhost_guest_cpu_seconds",
    ] {
        let ids: Vec<&str> = found
            .lines()
            .filter_map(|l| l.strip_prefix(family)?.strip_prefix(' '))
            .collect();
        assert!(!ids.is_empty(), "no exemplar on {family}:\n{found}");
        for id in ids {
            assert!(
                stored.contains(id),
                "{family}: exemplar run {id} is not stored"
            );
        }
    }
}

/// Serves the files of `dir` over HTTP/1.1, one request per connection.
async fn static_site(dir: PathBuf) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let dir = dir.clone();
            tokio::spawn(async move {
                let mut conn = BufReader::new(conn);
                let mut request = String::new();
                if conn.read_line(&mut request).await.is_err() {
                    return;
                }
                loop {
                    let mut line = String::new();
                    match conn.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" => break,
                        Ok(_) => {}
                    }
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let file = path
                    .trim_start_matches('/')
                    .split('/')
                    .all(|part| !part.is_empty() && part != "..")
                    .then(|| std::fs::read(dir.join(path.trim_start_matches('/'))).ok())
                    .flatten();
                let (status, body) = match file {
                    Some(body) => ("200 OK", body),
                    None => ("404 Not Found", Vec::new()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let conn = conn.get_mut();
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(&body).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    port
}

/// The shipped demo as a new user meets it: `examples/checkhost.yaml` on
/// its two sites and the production certificate (served here, on free
/// ports, every check each second). The history API returns what the
/// http, json-field and tls collectors measure with their plugins' marks,
/// the system page draws a chart of each, and in Chromium that page lines
/// up, fits a phone, passes axe and is saved as `demo-*.png`.
async fn the_demo_charts_what_its_collectors_measure(db: TestDb) {
    if !tools_present(&[
        root().join("tests/browser/node_modules/playwright-core"),
        root().join("tests/browser/node_modules/axe-core"),
        PathBuf::from("/usr/bin/chromium"),
    ]) {
        return;
    }
    let site = root().join("examples/site");
    let staging = static_site(site.join("staging")).await;
    let production = static_site(site.join("production")).await;
    let tls = support::servers::tls(false).await.port();
    let example = std::fs::read_to_string(root().join("examples/checkhost.yaml")).unwrap();
    let config = example
        .replace("127.0.0.1:18081", &format!("127.0.0.1:{staging}"))
        .replace("127.0.0.1:18082", &format!("127.0.0.1:{production}"))
        .replace("127.0.0.1:18443", &format!("127.0.0.1:{tls}"))
        .replace("port: 18443", &format!("port: {tls}"))
        .replace("interval: 30s", "interval: 1s")
        .replace("interval: 1m", "interval: 1s");
    assert!(
        !config.contains("1808") && !config.contains("18443"),
        "every demo port is replaced:\n{config}"
    );
    let engine = engine(&db);
    let ws = Workspace::on(
        db,
        &[
            "http",
            "http-request",
            "json-field-py",
            "tls",
            "tls-certificate",
            "postgres",
            "redis",
            "service",
        ],
    );
    ws.config(&config);
    let daemon = start(
        &ws,
        &[
            ("CHECKHOST_SECRET_API_TOKEN", "demo-token"),
            ("CHECKHOST_SECRET_ADMIN_TOKEN", TOKEN),
        ],
    );
    let client = reqwest::Client::new();
    // A few runs of each, so the charts have values.
    let wanted = [
        "request.statusCode",
        "request.responseTimeMs",
        "request.bodyLength",
        "json-field.statusCode",
        "json-field.found",
        "certificate.daysRemaining",
        "certificate.valid",
    ];
    let started = Instant::now();
    let history = loop {
        let body = client
            .get(daemon.url("/api/v1/history?system=shop"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let history: serde_json::Value = serde_json::from_str(&body).unwrap();
        let samples = |key: &str| {
            history["points"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["fields"][key]["samples"].as_i64())
                .sum::<i64>()
        };
        if wanted.iter().all(|k| samples(k) >= 3) {
            break history;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the demo's fields were not measured three times each: {body}\nlog:\n{}",
            daemon.log().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let meta = |key: &str| {
        history["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["key"] == key)
            .cloned()
            .unwrap_or_else(|| panic!("no marks for {key}: {history}"))
    };
    let newest = |key: &str| {
        history["points"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find_map(|p| p["fields"].get(key).cloned())
            .unwrap()
    };
    assert_eq!(meta("request.statusCode")["chart"], "bar");
    assert_eq!(meta("request.responseTimeMs")["aggregate"], "min-max");
    assert_eq!(meta("request.responseTimeMs")["unit"], "ms");
    assert_eq!(meta("certificate.daysRemaining")["chart"], "gauge");
    assert_eq!(meta("json-field.found")["kind"], "boolean");
    assert_eq!(newest("request.statusCode")["last"], 200.0);
    assert_eq!(newest("json-field.found")["avg"], 1.0);
    let days = newest("certificate.daysRemaining")["last"]
        .as_f64()
        .unwrap();
    assert!(
        days > 365.0 * 50.0,
        "the test certificate runs to 2099: {days}"
    );

    let page = client
        .get(daemon.url("/systems/shop"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for key in wanted {
        let check = if key.starts_with("certificate") {
            "TLS certificate"
        } else {
            "Health endpoint"
        };
        let label = format!(r#"aria-label="{key} of {check} in production over 24 h: now"#);
        assert!(
            page.contains(&label),
            "no chart `{label}` on the page:\n{page}"
        );
    }
    assert!(
        page.contains(r#"<rect class="meter""#),
        "the certificate's gauge"
    );

    let demo = format!("demo-{engine}={}", daemon.url("/systems/shop"));
    let artifacts = page_check(&["--page", &demo]).await;
    for name in ["1280-light", "390-dark"] {
        let shot = artifacts.join(format!("demo-{engine}-{name}.png"));
        assert!(shot.exists(), "no screenshot at {}", shot.display());
    }
}
