//! The REST API, the event stream and webhook delivery of a real
//! `checkhost serve`, on SQLite and PostgreSQL, against real guests, a
//! target whose health the test flips and a webhook receiver that fails.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use support::Workspace;
use support::daemon::Daemon;
use support::db::TestDb;

const TOKEN: &str = "api-token-7d1f0c";
const LEAK: &str = "leaked-secret-9a8b7c";

/// A target whose `/health` answers 200 or 500 as the test says, with a
/// body that carries a secret value.
async fn flip_server(healthy: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let healthy = healthy.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let status = if healthy.load(Ordering::SeqCst) {
                    "200 OK"
                } else {
                    "500 Internal Server Error"
                };
                let body = format!(r#"{{"token":"{LEAK}"}}"#);
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(response.as_bytes()).await;
            });
        }
    });
    port
}

fn env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("CHECKHOST_SECRET_API_TOKEN", TOKEN),
        ("CHECKHOST_SECRET_LEAK", LEAK),
        ("CHECKHOST_SECRET_HOOK_KEY", "hook-signing-key"),
    ]
}

async fn call(
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the daemon answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn get(d: &Daemon, path: &str) -> Value {
    let (status, _, body) = call(reqwest::Method::GET, d.url(path), None).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

async fn post(d: &Daemon, path: &str) -> Value {
    let (status, _, body) = call(reqwest::Method::POST, d.url(path), Some(TOKEN)).await;
    assert_eq!(status, 200, "POST {path}: {body}");
    body
}

/// The error of a refused call: its status, code and field.
async fn refused(
    d: &Daemon,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
) -> (u16, Value) {
    let (status, _, body) = call(method, d.url(path), token).await;
    assert!(status >= 400, "{path} should be refused: {body}");
    assert!(
        body["error"].is_string() && body["message"].is_string(),
        "errors are JSON {{error, message}}: {body}"
    );
    (status, body)
}

async fn wait_until<F, Fut>(limit: Duration, what: &str, mut ok: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !ok().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

on_both_engines!(
    the_api_reads_acts_and_refuses_bad_calls,
    pause_applies_at_once_and_survives_a_restart,
    status_follows_what_is_enabled_through_pauses_and_reloads,
    the_event_stream_resumes_from_last_event_id_without_gaps,
    webhooks_reach_a_flaky_receiver_under_one_key_across_a_crash,
    reminders_repeat_while_unhealthy_and_maintenance_keeps_quiet,
    a_failing_dependency_pages_once_and_its_recovery_releases_what_is_still_down,
    badges_are_public_svg_with_etags_even_when_reads_need_the_token,
    the_system_page_draws_runs_uptime_transitions_and_maintenance,
    incidents_are_posted_shown_escaped_fed_and_resolved,
    the_index_pages_filters_and_searches_many_systems,
);

async fn the_api_reads_acts_and_refuses_bad_calls(db: TestDb) {
    let healthy = Arc::new(AtomicBool::new(true));
    let port = flip_server(healthy.clone()).await;
    let ws = Workspace::on(db, &["http", "http-request"]);
    ws.config(&format!(
        r#"
api: {{token: "${{{{ secrets.API_TOKEN }}}}"}}
environments: [{{id: prod, name: Production}}, {{id: staging}}]
systems: [{{id: shop, name: Web shop, environments: [prod, staging]}}]
checks:
  - id: web
    interval: 1h
    strategy: {{plugin: http, config: {{baseUrl: "http://127.0.0.1:{port}"}}}}
    network: {{allow: ["127.0.0.1/32"]}}
    collectors:
      - plugin: request
        config: {{url: /health}}
        assertions: [{{field: statusCode, operator: equals, value: 200}}]
  - id: leaky
    interval: 1h
    strategy: {{plugin: http, config: {{baseUrl: "http://127.0.0.1:{port}"}}}}
    network: {{allow: ["127.0.0.1/32"]}}
    collectors:
      - plugin: request
        config: {{url: /health}}
        secretEnv: {{LEAK: "${{{{ secrets.LEAK }}}}"}}
        assertions: [{{jsonPath: $.body.token, operator: equals, value: something-else}}]
assignments:
  - {{system: shop, check: web, thresholds: {{mode: consecutive, degraded: 1, unhealthy: 2}}}}
  - {{system: shop, check: leaky, environments: []}}
"#
    ));
    let d = Daemon::start_with_env(&ws, &[], &env());

    let systems = get(&d, "/api/v1/systems").await;
    assert_eq!(systems[0]["id"], "shop");
    assert_eq!(systems[0]["status"], "unknown");
    assert_eq!(systems[0]["environments"][0]["name"], "Production");

    // Actions need the token.
    let (status, body) = refused(
        &d,
        reqwest::Method::POST,
        "/api/v1/assignments/shop/web/run",
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = refused(
        &d,
        reqwest::Method::POST,
        "/api/v1/assignments/shop/web/run",
        Some("wrong"),
    )
    .await;
    assert_eq!(status, 401);

    let first = post(&d, "/api/v1/assignments/shop/web/run").await;
    assert_eq!(first["runs"].as_array().unwrap().len(), 2, "{first}");
    assert!(
        first["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "healthy")
    );
    healthy.store(false, Ordering::SeqCst);
    post(&d, "/api/v1/assignments/shop/web/run").await;
    let third = post(&d, "/api/v1/assignments/shop/web/run").await;
    let caused: Vec<&Value> = third["runs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["transitions"].as_array().unwrap())
        .collect();
    assert!(
        caused
            .iter()
            .any(|t| t["entityId"] == "shop::prod" && t["to"] == "unhealthy"),
        "the second failure makes prod unhealthy: {third}"
    );
    post(&d, "/api/v1/assignments/shop/leaky/run").await;

    let systems = get(&d, "/api/v1/systems").await;
    assert_eq!(systems[0]["status"], "unhealthy");
    assert!(systems[0]["sinceMs"].as_i64().is_some());
    let detail = get(&d, "/api/v1/systems/shop").await;
    let web = &detail["checks"][0];
    assert_eq!(web["id"], "web");
    assert_eq!(web["slices"].as_array().unwrap().len(), 2);
    assert_eq!(web["slices"][0]["lastRun"]["status"], "unhealthy");
    assert_eq!(
        detail["checks"][1]["slices"][0]["environmentId"],
        Value::Null
    );

    // Keyset pages cover every run once, newest first.
    let stored = ws.db.count("SELECT COUNT(*) FROM runs").await;
    assert_eq!(stored, 7);
    let mut seen = Vec::new();
    let mut path = "/api/v1/runs?limit=3".to_string();
    loop {
        let page = get(&d, &path).await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap()),
        );
        match page["nextCursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/runs?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len() as i64, stored, "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats"
    );
    let failing = get(
        &d,
        "/api/v1/runs?environment=prod&status=unhealthy&check=web",
    )
    .await;
    let items = failing["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(
        items
            .iter()
            .all(|r| r["environmentId"] == "prod" && r["status"] == "unhealthy")
    );
    let none = get(&d, "/api/v1/runs?environment=none").await;
    assert!(
        none["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["checkId"] == "leaky")
    );

    let transitions = get(&d, "/api/v1/transitions?entity=shop::prod").await;
    let to: Vec<&str> = transitions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["to"].as_str().unwrap())
        .collect();
    assert_eq!(to, ["unhealthy", "degraded"], "newest first");
    let history = get(&d, "/api/v1/history?system=shop&bucket=day").await;
    let total: i64 = history["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["total"].as_i64().unwrap())
        .sum();
    assert_eq!(total, stored);

    // Secrets never leave: not in runs, the system page or the status page.
    let leaky = get(&d, "/api/v1/runs?check=leaky").await.to_string();
    assert!(leaky.contains("****") && !leaky.contains(LEAK), "{leaky}");
    for path in ["/api/v1/systems/shop", "/", "/systems/shop"] {
        let (status, _, body) = call(reqwest::Method::GET, d.url(path), None).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(!body.to_string().contains(LEAK), "{path} shows a secret");
    }
    let Value::String(page) = call(reqwest::Method::GET, d.url("/"), None).await.2 else {
        panic!("the status page is HTML");
    };
    assert!(
        page.contains(r#"data-entity="shop::prod" data-status="unhealthy""#),
        "the matrix shows prod unhealthy: {page}"
    );
    assert!(page.contains("Latest transitions") && page.contains(r#"<svg class="spark""#));

    // Bad calls: JSON errors that name what is wrong.
    for (path, field) in [
        ("/api/v1/runs?sytem=shop", "sytem"),
        ("/api/v1/runs?limit=0", "limit"),
        ("/api/v1/runs?from=yesterday", "from"),
        ("/api/v1/runs?cursor=abc", "cursor"),
        ("/api/v1/runs?status=sideways", "status"),
        ("/api/v1/history?bucket=week", "bucket"),
    ] {
        let (status, body) = refused(&d, reqwest::Method::GET, path, None).await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some(field)),
            "{path}: {body}"
        );
    }
    let (status, _) = refused(&d, reqwest::Method::GET, "/api/v1/systems/nope", None).await;
    assert_eq!(status, 404);
    let (status, _) = refused(
        &d,
        reqwest::Method::POST,
        "/api/v1/assignments/shop/nope/pause",
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = refused(
        &d,
        reqwest::Method::GET,
        "/api/v1/assignments/shop/web/run",
        None,
    )
    .await;
    assert_eq!(status, 405);
    let big = reqwest::Client::new()
        .post(d.url("/api/v1/assignments/shop/web/pause"))
        .bearer_auth(TOKEN)
        .body(vec![b'x'; 200_000])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status().as_u16(), 413);
    let openapi = get(&d, "/openapi.json").await;
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3.1"));
}

fn ticking_config(interval: &str) -> String {
    format!(
        "
api: {{token: \"${{{{ secrets.API_TOKEN }}}}\"}}
checks:
  - {{id: tick, interval: {interval}, strategy: {{plugin: noop}}, collectors: [{{plugin: hostile, config: {{mode: fail}}}}]}}
systems: [{{id: a}}, {{id: b}}, {{id: c}}]
assignments:
  - {{system: a, check: tick, thresholds: {{mode: consecutive, degraded: 1, unhealthy: 1}}}}
  - {{system: b, check: tick}}
  - {{system: c, check: tick}}
"
    )
}

async fn runs_of(ws: &Workspace, system: &str) -> i64 {
    ws.db
        .count(&format!(
            "SELECT COUNT(*) FROM runs r JOIN slices s ON s.id = r.slice_id WHERE s.system_id = '{system}'"
        ))
        .await
}

async fn pause_applies_at_once_and_survives_a_restart(db: TestDb) {
    let ws = Workspace::on(db, &["noop", "hostile"]);
    ws.config(&ticking_config("300ms"));
    let d = Daemon::start_with_env(&ws, &[], &env());
    wait_until(Duration::from_secs(20), "a's first runs", || async {
        runs_of(&ws, "a").await >= 2
    })
    .await;
    let paused = post(&d, "/api/v1/assignments/a/tick/pause").await;
    assert_eq!(paused["paused"], true);
    // One run may have been in flight.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = runs_of(&ws, "a").await;
    let b_before = runs_of(&ws, "b").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        runs_of(&ws, "a").await,
        before,
        "a paused assignment does not run"
    );
    assert!(runs_of(&ws, "b").await > b_before, "the others go on");
    let detail = get(&d, "/api/v1/systems/a").await;
    assert_eq!(detail["checks"][0]["paused"], true);

    d.signal("TERM");
    let (code, _) = d.wait();
    assert_eq!(code, Some(0));
    let d = Daemon::start_with_env(&ws, &[], &env());
    let detail = get(&d, "/api/v1/systems/a").await;
    assert_eq!(
        detail["checks"][0]["paused"], true,
        "the pause outlives a restart"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        runs_of(&ws, "a").await,
        before,
        "still paused after the restart"
    );

    let resumed = post(&d, "/api/v1/assignments/a/tick/resume").await;
    assert_eq!(resumed["paused"], false);
    wait_until(Duration::from_secs(10), "a to run again", || async {
        runs_of(&ws, "a").await > before
    })
    .await;
}

fn enabled_config(with_bad: bool, environments: &str) -> String {
    let bad = if with_bad {
        "  - {system: shop, check: bad, thresholds: {mode: consecutive, degraded: 1, unhealthy: 1}}\n"
    } else {
        ""
    };
    format!(
        "
api: {{token: \"${{{{ secrets.API_TOKEN }}}}\"}}
environments: [{{id: prod}}, {{id: dev}}]
checks:
  - {{id: bad, interval: 300ms, strategy: {{plugin: noop}}, collectors: [{{plugin: hostile, config: {{mode: fail}}}}]}}
  - {{id: good, interval: 300ms, strategy: {{plugin: noop}}, collectors: [{{plugin: hostile, config: {{mode: noop}}}}]}}
systems: [{{id: shop, environments: {environments}}}]
assignments:
{bad}  - {{system: shop, check: good}}
"
    )
}

/// `(healthyChecks, totalChecks)` of shop and of each of its environments.
async fn check_counts(d: &Daemon) -> (Value, HashMap<String, Value>) {
    let systems = get(d, "/api/v1/systems").await;
    let shop = systems
        .as_array()
        .and_then(|a| a.iter().find(|s| s["id"] == "shop"))
        .unwrap()
        .clone();
    let pair = |v: &Value| Value::from(vec![v["healthyChecks"].clone(), v["totalChecks"].clone()]);
    let envs = shop["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["id"].as_str().unwrap().to_string(), pair(e)))
        .collect();
    (pair(&shop), envs)
}

async fn system_status(d: &Daemon) -> (String, HashMap<String, String>) {
    let systems = get(d, "/api/v1/systems").await;
    let shop = systems
        .as_array()
        .and_then(|a| a.iter().find(|s| s["id"] == "shop"))
        .unwrap_or_else(|| panic!("no shop in {systems}"))
        .clone();
    let envs = shop["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_string(),
                e["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (shop["status"].as_str().unwrap().to_string(), envs)
}

/// A system's status is derived from the slices that are enabled now: a
/// pause, a resume, or a reload that removes an assignment or an
/// environment re-derives it at once, and rollup transitions are the
/// system's own (no environment).
async fn status_follows_what_is_enabled_through_pauses_and_reloads(db: TestDb) {
    let ws = Workspace::on(db, &["noop", "hostile"]);
    ws.config(&enabled_config(true, "[prod, dev]"));
    let d = Daemon::start_with_env(&ws, &[], &env());
    wait_until(
        Duration::from_secs(20),
        "shop to turn unhealthy",
        || async {
            let (status, envs) = system_status(&d).await;
            let good = ws
                .db
                .count("SELECT COUNT(*) FROM slices WHERE check_id = 'good' AND status = 'healthy'")
                .await;
            status == "unhealthy" && good == 2 && envs.values().all(|s| s == "unhealthy")
        },
    )
    .await;
    let transitions = get(&d, "/api/v1/transitions?limit=50").await;
    let items = transitions["items"].as_array().unwrap();
    let rollup = items
        .iter()
        .find(|t| t["entityId"] == "shop")
        .unwrap_or_else(|| panic!("no rollup transition in {transitions}"));
    assert_eq!(rollup["environmentId"], Value::Null, "{rollup}");
    assert!(
        items
            .iter()
            .any(|t| t["entityId"] == "shop::prod" && t["environmentId"] == "prod"),
        "{transitions}"
    );

    let one_of_two = serde_json::json!([1, 2]);
    let (shop, envs) = check_counts(&d).await;
    assert_eq!(shop, one_of_two, "1 of 2 checks healthy");
    assert!(envs.values().all(|c| *c == one_of_two), "{envs:?}");

    // Pausing the failing check recovers the system at once.
    let paused = post(&d, "/api/v1/assignments/shop/bad/pause").await;
    let caused: Vec<(String, String, Value)> = paused["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["entityId"].as_str().unwrap().to_string(),
                t["kind"].as_str().unwrap().to_string(),
                t["environmentId"].clone(),
            )
        })
        .collect();
    assert_eq!(
        caused,
        [
            ("shop".into(), "recovery".into(), Value::Null),
            ("shop::dev".into(), "recovery".into(), Value::from("dev")),
            ("shop::prod".into(), "recovery".into(), Value::from("prod")),
        ],
        "{paused} {:?} {:?}",
        ws.db
            .texts("SELECT system_id || ' ' || check_id || ' ' || env_key || ' ' || status || ' ' || counts FROM slices")
            .await,
        ws.db
            .texts("SELECT entity_id || ' ' || status FROM entity_state")
            .await
    );
    let (status, envs) = system_status(&d).await;
    assert_eq!(status, "healthy");
    assert!(envs.values().all(|s| s == "healthy"), "{envs:?}");
    assert_eq!(check_counts(&d).await.0, serde_json::json!([1, 1]));
    assert_eq!(paused["transitions"][0]["healthyChecks"], 1, "{paused}");
    assert_eq!(paused["transitions"][0]["totalChecks"], 1, "{paused}");

    // Nothing enabled: no status at all.
    let paused = post(&d, "/api/v1/assignments/shop/good/pause").await;
    assert_eq!(paused["transitions"], Value::Array(vec![]), "{paused}");
    let (status, envs) = system_status(&d).await;
    assert_eq!(status, "unknown");
    assert!(envs.values().all(|s| s == "unknown"), "{envs:?}");

    // Resuming brings the stored slice states back, without transitions.
    let resumed = post(&d, "/api/v1/assignments/shop/bad/resume").await;
    assert_eq!(resumed["transitions"], Value::Array(vec![]), "{resumed}");
    assert_eq!(system_status(&d).await.0, "unhealthy");
    post(&d, "/api/v1/assignments/shop/good/resume").await;

    // A reload that drops the failing assignment re-derives the system, and
    // one that drops an environment leaves its entity without status.
    let rollup_recoveries = "SELECT COUNT(*) FROM transitions WHERE entity_id = 'shop' \
                             AND kind = 'recovery' AND environment_id IS NULL";
    let before = ws.db.count(rollup_recoveries).await;
    ws.config(&enabled_config(false, "[prod]"));
    // The reload is applied once the API serves the new configuration (no
    // `dev`): runs may turn the rollup healthy a moment before that, while
    // the re-derivation of the removed environment is still queued.
    wait_until(
        Duration::from_secs(20),
        "the reload to recover shop",
        || async {
            let (status, envs) = system_status(&d).await;
            status == "healthy" && !envs.contains_key("dev")
        },
    )
    .await;
    let (_, envs) = system_status(&d).await;
    assert_eq!(envs.get("prod").map(String::as_str), Some("healthy"));
    assert_eq!(
        ws.db
            .texts("SELECT status FROM entity_state WHERE entity_id = 'shop::dev'")
            .await,
        ["unknown"],
        "a removed environment keeps no status"
    );
    assert_eq!(
        ws.db.count(rollup_recoveries).await,
        before + 1,
        "one ordinary rollup transition for the reload: {:?}",
        ws.db
            .texts(
                "SELECT entity_id || ' ' || from_status || '>' || to_status || ' ' || kind \
                 || ' ' || COALESCE(environment_id, '-') FROM transitions ORDER BY id"
            )
            .await
    );
    assert_eq!(
        ws.db
            .count("SELECT COUNT(*) FROM transitions WHERE entity_id = 'shop::dev' AND to_status = 'unknown'")
            .await,
        0,
        "a removed slice writes no transition of its own"
    );
}

/// Reads SSE events until `enough` says stop; returns `(event, id, data)`.
async fn read_events(
    response: &mut reqwest::Response,
    mut enough: impl FnMut(&[(String, Option<String>, Value)]) -> bool,
) -> Vec<(String, Option<String>, Value)> {
    let mut events = Vec::new();
    let mut buffer = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !enough(&events) {
        assert!(Instant::now() < deadline, "too few events: {events:?}");
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("the stream goes on")
            .unwrap()
            .expect("the stream stays open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut name, mut id, mut data) = (String::new(), None, String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if !name.is_empty() {
                events.push((name, id, serde_json::from_str(&data).unwrap()));
            }
        }
    }
    events
}

async fn the_event_stream_resumes_from_last_event_id_without_gaps(db: TestDb) {
    let ws = Workspace::on(db, &["noop", "hostile"]);
    ws.config(&ticking_config("200ms"));
    let d = Daemon::start_with_env(&ws, &[], &env());
    let client = reqwest::Client::new();
    let mut first = client.get(d.url("/api/v1/events")).send().await.unwrap();
    assert_eq!(
        first.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let events = read_events(&mut first, |e| {
        e.iter().filter(|e| e.0 == "run").count() >= 6
    })
    .await;
    // Transitions follow their run; every message is `<run id>:<n>`.
    for (i, (name, id, data)) in events.iter().enumerate() {
        let run = events[..=i].iter().rev().find(|e| e.0 == "run").unwrap();
        let run_id = run.2["id"].as_i64().unwrap();
        if name == "transition" {
            assert_eq!(data["runId"], run_id, "a transition follows its run");
        }
        let (run_part, n) = id.as_deref().unwrap().split_once(':').unwrap();
        assert_eq!(run_part.parse::<i64>().unwrap(), run_id);
        assert_eq!(n == "0", name == "run", "{id:?}");
    }
    let transition = events
        .iter()
        .find(|e| e.0 == "transition")
        .expect("a's first failure is a transition");
    let last_id = events.last().unwrap().1.clone().unwrap();
    drop(first);

    // A client that saw a run but not its transition gets the transition.
    let run_of_transition = transition.1.as_deref().unwrap().split_once(':').unwrap().0;
    let mut partial = client
        .get(d.url("/api/v1/events"))
        .header("Last-Event-ID", format!("{run_of_transition}:0"))
        .send()
        .await
        .unwrap();
    let rest = read_events(&mut partial, |e| !e.is_empty()).await;
    assert_eq!(rest[0].0, "transition");
    assert_eq!(rest[0].1, transition.1);
    drop(partial);

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut second = client
        .get(d.url("/api/v1/events"))
        .header("Last-Event-ID", &last_id)
        .send()
        .await
        .unwrap();
    let missed: BTreeSet<i64> = ws
        .db
        .texts(&format!(
            "SELECT CAST(id AS TEXT) FROM runs WHERE id > {}",
            last_id.split_once(':').unwrap().0
        ))
        .await
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
    assert!(missed.len() >= 5, "runs happened while the client was away");
    let newest = *missed.last().unwrap();
    let resumed = read_events(&mut second, |e| {
        e.iter()
            .any(|e| e.0 == "run" && e.2["id"].as_i64() >= Some(newest))
    })
    .await;
    let ids: Vec<i64> = resumed
        .iter()
        .filter(|e| e.0 == "run")
        .map(|e| e.2["id"].as_i64().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "in order, none twice: {ids:?}"
    );
    let got: BTreeSet<i64> = ids.iter().copied().filter(|id| *id <= newest).collect();
    assert_eq!(got, missed, "the runs missed while away, all of them");
    let last_run: i64 = last_id.split_once(':').unwrap().0.parse().unwrap();
    assert!(ids[0] > last_run, "nothing seen before is repeated");

    let (status, body) = refused(&d, reqwest::Method::GET, "/api/v1/events?after=-1", None).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("after")));
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Delivery {
    key: String,
    signature: String,
    body: String,
    answered: u16,
}

/// A webhook receiver that answers each key's first attempt with a 500 and
/// its second by hanging past the sender's timeout, then accepts; with
/// `flaky` false it accepts at once.
async fn receiver(log: Arc<Mutex<Vec<Delivery>>>, flaky: bool) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body) = loop {
                    let Ok(n) = conn.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let head = text[..end].to_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if text.len() >= end + 4 + length {
                            break (head, text[end + 4..end + 4 + length].to_string());
                        }
                    }
                };
                let header = |name: &str| {
                    head.lines()
                        .find_map(|l| l.strip_prefix(&format!("{name}:")))
                        .map(|v| v.trim().to_string())
                        .unwrap_or_default()
                };
                let key = header("idempotency-key");
                let attempt = log.lock().unwrap().iter().filter(|d| d.key == key).count();
                let answered = match attempt {
                    0 if flaky => 500,
                    1 if flaky => 0,
                    _ => 200,
                };
                log.lock().unwrap().push(Delivery {
                    key,
                    signature: header("x-checkhost-signature"),
                    body,
                    answered,
                });
                if answered == 0 {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    return;
                }
                let response = format!(
                    "HTTP/1.1 {answered} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = conn.write_all(response.as_bytes()).await;
            });
        }
    });
    port
}

async fn webhooks_reach_a_flaky_receiver_under_one_key_across_a_crash(db: TestDb) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let port = receiver(log.clone(), true).await;
    let ws = Workspace::on(db, &["noop", "hostile"]);
    ws.config(&format!(
        "
api: {{token: \"${{{{ secrets.API_TOKEN }}}}\"}}
notifications:
  targets:
    - {{id: hook, url: \"http://127.0.0.1:{port}/hook\", default: true, timeout: 1s,
       signingSecret: \"${{{{ secrets.HOOK_KEY }}}}\"}}
checks:
  - {{id: tick, interval: 1h, strategy: {{plugin: noop}}, collectors: [{{plugin: hostile, config: {{mode: fail}}}}]}}
systems: [{{id: a, name: System A}}]
assignments:
  - {{system: a, check: tick, thresholds: {{mode: consecutive, degraded: 1, unhealthy: 1}}}}
"
    ));
    let d = Daemon::start_with_env(&ws, &[], &env());
    let run = post(&d, "/api/v1/assignments/a/tick/run").await;
    assert_eq!(run["runs"][0]["transitions"][0]["to"], "unhealthy");
    // Attempt one fails with a 500; attempt two hangs: kill -9 during it.
    let seen = |n: usize| {
        let log = log.clone();
        move || {
            let log = log.clone();
            async move { log.lock().unwrap().len() >= n }
        }
    };
    wait_until(Duration::from_secs(20), "the second attempt", seen(2)).await;
    let mut d = d;
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let d = Daemon::start_with_env(&ws, &[], &env());
    wait_until(
        Duration::from_secs(30),
        "the delivery after the restart",
        seen(3),
    )
    .await;
    wait_until(
        Duration::from_secs(10),
        "the delivery log to say delivered",
        || async {
            let (_, _, body) = call(
                reqwest::Method::GET,
                d.url("/api/v1/notifications/deliveries"),
                None,
            )
            .await;
            body["items"][0]["state"] == "delivered"
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let seen = log.lock().unwrap().clone();
    let keys: HashMap<&str, usize> = seen.iter().fold(HashMap::new(), |mut m, d| {
        *m.entry(d.key.as_str()).or_default() += 1;
        m
    });
    assert_eq!(
        keys.len(),
        1,
        "one transition, one key on every attempt: {seen:?}"
    );
    assert_eq!(
        seen.iter().filter(|d| d.answered == 200).count(),
        1,
        "accepted once: {seen:?}"
    );
    assert!(
        seen.iter().all(|d| d.body == seen[0].body),
        "every retry sends the same bytes"
    );
    for delivery in &seen {
        let (t, v1) = delivery
            .signature
            .strip_prefix("t=")
            .and_then(|s| s.split_once(",v1="))
            .expect("a signature header");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"hook-signing-key").unwrap();
        mac.update(format!("{t}.{}", delivery.body).as_bytes());
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            v1,
            "the HMAC verifies"
        );
    }
    let body: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(body["event"], "transition");
    assert_eq!(body["system"]["name"], "System A");
    assert_eq!(body["transition"]["to"], "unhealthy");
    assert_eq!(body["idempotencyKey"], seen[0].key.as_str());
    assert_eq!(
        (&body["healthyChecks"], &body["totalChecks"]),
        (&Value::from(0), &Value::from(1)),
        "0 of 1 checks healthy: {body}"
    );

    let log_page = get(&d, "/api/v1/notifications/deliveries?target=hook").await;
    let entry = &log_page["items"][0];
    assert_eq!(entry["state"], "delivered");
    assert_eq!(entry["idempotencyKey"], seen[0].key.as_str());
    assert!(entry["attempts"].as_i64().unwrap() >= 2, "{entry}");
    assert_eq!(entry["lastStatusCode"], 200);
    assert_eq!(ws.db.count("SELECT COUNT(*) FROM outbox").await, 1);
}

async fn reminders_repeat_while_unhealthy_and_maintenance_keeps_quiet(db: TestDb) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let port = receiver(log.clone(), false).await;
    let now = chrono::Utc::now();
    let (start, end) = (
        now - chrono::Duration::hours(1),
        now + chrono::Duration::hours(1),
    );
    let ws = Workspace::on(db, &["noop", "hostile"]);
    ws.config(&format!(
        "
api: {{token: \"${{{{ secrets.API_TOKEN }}}}\"}}
notifications:
  targets:
    - {{id: hook, url: \"http://127.0.0.1:{port}/hook\", default: true, minimumReminderInterval: 1s}}
  maintenance:
    - {{id: upgrade, systems: [b], start: \"{}\", end: \"{}\"}}
checks:
  - {{id: tick, interval: 1h, strategy: {{plugin: noop}}, collectors: [{{plugin: hostile, config: {{mode: fail}}}}]}}
systems: [{{id: a}}, {{id: b}}]
assignments:
  - {{system: a, check: tick, thresholds: {{mode: consecutive, degraded: 1, unhealthy: 1}}}}
  - {{system: b, check: tick, thresholds: {{mode: consecutive, degraded: 1, unhealthy: 1}}}}
",
        start.to_rfc3339(),
        end.to_rfc3339()
    ));
    let d = Daemon::start_with_env(&ws, &[], &env());
    post(&d, "/api/v1/assignments/a/tick/run").await;
    post(&d, "/api/v1/assignments/b/tick/run").await;
    wait_until(Duration::from_secs(20), "two reminders for a", || async {
        log.lock().unwrap().len() >= 3
    })
    .await;
    let seen = log.lock().unwrap().clone();
    let bodies: Vec<Value> = seen
        .iter()
        .map(|d| serde_json::from_str(&d.body).unwrap())
        .collect();
    assert!(
        bodies.iter().all(|b| b["system"]["id"] == "a"),
        "b is in maintenance: {bodies:?}"
    );
    assert_eq!(bodies[0]["event"], "transition");
    assert!(bodies[1..].iter().all(|b| b["event"] == "reminder"));
    let keys: BTreeSet<&str> = seen.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys.len(), seen.len(), "each reminder has its own key");

    let quiet = get(
        &d,
        "/api/v1/notifications/deliveries?entity=b&state=suppressed",
    )
    .await;
    let items = quiet["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{quiet}");
    assert_eq!(
        items[0]["reason"],
        "silenced by maintenance window `upgrade`"
    );
    assert_eq!(
        ws.db
            .count("SELECT COUNT(*) FROM outbox WHERE entity_id = 'b'")
            .await,
        1,
        "no reminders while silenced"
    );
}

/// net ← db ← api: net's failure holds the notices of db and api, so the
/// chain pages once, naming what it covers. When net recovers, db (still
/// down) is heard of at last; api stays held while db is down.
async fn a_failing_dependency_pages_once_and_its_recovery_releases_what_is_still_down(db: TestDb) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let port = receiver(log.clone(), false).await;
    // net is up while something listens on its port.
    let net_port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let ws = Workspace::on(db, &["noop", "hostile"]);
    ws.config(&format!(
        "
api: {{token: \"${{{{ secrets.API_TOKEN }}}}\"}}
notifications:
  targets:
    - {{id: hook, url: \"http://127.0.0.1:{port}/hook\", default: true}}
checks:
  - id: reach
    interval: 1h
    network: {{allow: ['127.0.0.0/8']}}
    strategy: {{plugin: noop}}
    collectors: [{{plugin: hostile, config: {{mode: connect, target: '127.0.0.1:{net_port}'}}}}]
  - {{id: down, interval: 1h, strategy: {{plugin: noop}}, collectors: [{{plugin: hostile, config: {{mode: fail}}}}]}}
systems:
  - {{id: net, name: Network}}
  - {{id: db, name: Database, dependsOn: [net]}}
  - {{id: api, name: API}}
assignments:
  - {{system: net, check: reach, thresholds: {{mode: consecutive, degraded: 1, unhealthy: 1}}}}
  - {{system: db, check: down, thresholds: {{mode: consecutive, degraded: 1, unhealthy: 1}}}}
  - {{system: api, check: down, dependsOn: [db], thresholds: {{mode: consecutive, degraded: 1, unhealthy: 1}}}}
"
    ));
    let d = Daemon::start_with_env(&ws, &[], &env());
    for system in ["net", "db", "api"] {
        post(
            &d,
            &format!(
                "/api/v1/assignments/{system}/{}/run",
                if system == "net" { "reach" } else { "down" }
            ),
        )
        .await;
    }
    wait_until(Duration::from_secs(20), "net's notice", || async {
        !log.lock().unwrap().is_empty()
    })
    .await;
    // Time for any notice that should not go out to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let bodies = |log: &Arc<Mutex<Vec<Delivery>>>| -> Vec<Value> {
        log.lock()
            .unwrap()
            .iter()
            .map(|d| serde_json::from_str(&d.body).unwrap())
            .collect()
    };
    let sent = bodies(&log);
    assert_eq!(sent.len(), 1, "one notice for the chain: {sent:?}");
    assert_eq!(sent[0]["system"]["id"], "net");
    assert_eq!(sent[0]["transition"]["to"], "unhealthy");
    let mut covered: Vec<&str> = sent[0]["dependents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    covered.sort();
    assert_eq!(covered, ["API", "Database"], "{}", sent[0]);
    for (entity, cause) in [("db", "net"), ("api", "db")] {
        let held = get(
            &d,
            &format!("/api/v1/notifications/deliveries?entity={entity}&state=suppressed"),
        )
        .await;
        let items = held["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{held}");
        assert_eq!(
            items[0]["reason"],
            format!("held: it depends on `{cause}`, which is unhealthy")
        );
    }

    // net comes back: its recovery goes out, and db's held notice with it,
    // since db is still down. api is still held by db.
    let _listening = std::net::TcpListener::bind(("127.0.0.1", net_port)).unwrap();
    post(&d, "/api/v1/assignments/net/reach/run").await;
    wait_until(
        Duration::from_secs(20),
        "net's recovery and db's notice",
        || async { log.lock().unwrap().len() >= 3 },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent = bodies(&log);
    let said: BTreeSet<(String, String)> = sent
        .iter()
        .map(|b| {
            (
                b["system"]["id"].as_str().unwrap().to_string(),
                b["transition"]["to"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("net", "unhealthy"),
        ("net", "healthy"),
        ("db", "unhealthy"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(said, expected, "{sent:?}");
    assert_eq!(sent.len(), 3, "{sent:?}");
    let api_held = get(
        &d,
        "/api/v1/notifications/deliveries?entity=api&state=suppressed",
    )
    .await;
    assert_eq!(api_held["items"].as_array().unwrap().len(), 1, "{api_held}");
    // The page says so where the operator looks.
    let page = reqwest::get(d.url("/systems/api"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(
            r#">Database</a> <span class="status" data-entity="db" data-status="unhealthy">"#
        ) && page.contains("<strong>Its alerts are held</strong>"),
        "{page}"
    );

    // db is paused: no transition says it stopped being unhealthy, but
    // the sweep finds it so, and api (still down) is heard of at last.
    post(&d, "/api/v1/assignments/db/down/pause").await;
    wait_until(Duration::from_secs(20), "api's released notice", || async {
        log.lock().unwrap().len() >= 4
    })
    .await;
    let sent = bodies(&log);
    assert_eq!(sent[3]["system"]["id"], "api", "{sent:?}");
    assert_eq!(sent[3]["transition"]["to"], "unhealthy", "{sent:?}");
}

/// Each check's guest cost: the API ranks it, `/metrics` labels the
/// costliest up to `metrics.checkLabels` and folds the rest into
/// `check="_other"`, and `checkhost top` shows the costliest first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_each_check_costs_is_ranked_labelled_within_bounds_and_shown_by_top() {
    let ws = Workspace::on(TestDb::sqlite(), &["noop", "hostile"]);
    ws.config(
        "
api: {token: \"${{ secrets.API_TOKEN }}\"}
metrics: {checkLabels: 1}
checks:
  - {id: burn, interval: 1h, timeout: 300ms, strategy: {plugin: noop}, collectors: [{plugin: hostile, config: {mode: loop}}]}
  - {id: cheap, interval: 1h, strategy: {plugin: noop}, collectors: [{plugin: hostile, config: {mode: noop}}]}
  - {id: idle, interval: 1h, strategy: {plugin: noop}, collectors: [{plugin: hostile, config: {mode: noop}}]}
systems: [{id: a}]
assignments:
  - {system: a, check: burn}
  - {system: a, check: cheap}
  - {system: a, check: idle}
",
    );
    let d = Daemon::start_with_env(&ws, &[], &env());
    for check in ["burn", "cheap", "idle", "burn"] {
        post(&d, &format!("/api/v1/assignments/a/{check}/run")).await;
    }
    let cost = get(&d, "/api/v1/cost").await;
    let items = cost["items"].as_array().unwrap();
    let order: Vec<&str> = items.iter().map(|i| i["check"].as_str().unwrap()).collect();
    assert_eq!(order[0], "burn", "{cost}");
    assert_eq!(items[0]["runs"], 2, "{cost}");
    assert_eq!(items[0]["plugin"], "noop", "{cost}");
    // Each run spun until its 300 ms deadline: some 30 ticks of 10 ms.
    assert!(items[0]["cpuMsPerRun"].as_f64().unwrap() > 100.0, "{cost}");
    let ticks = items[0]["epochTicks"].as_u64().unwrap();
    assert!(ticks > 20, "{cost}");
    assert_eq!(order.len(), 3, "{cost}");

    let metrics = reqwest::get(d.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("checkhost_check_runs_total{"))
        .collect();
    assert_eq!(
        series,
        [
            "checkhost_check_runs_total{check=\"burn\",plugin=\"noop\"} 2",
            "checkhost_check_runs_total{check=\"(other)\",plugin=\"noop\"} 2",
        ],
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "checkhost_check_guest_epoch_ticks_total{{check=\"burn\",plugin=\"noop\"}} {ticks}"
        )),
        "{metrics}"
    );

    let out = support::checkhost(&["top", "--once", "--server", &d.url("")]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("CHECK"), "{text}");
    assert!(lines[1].starts_with("burn "), "{text}");
    assert_eq!(lines.len(), 4, "{text}");
}

/// An objective, end to end: `GET /api/v1/slos`, the gauges on `/metrics`
/// and the system page agree on what 2 bad runs in 4 mean against 99 %.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_objective_shows_in_the_api_the_metrics_and_the_page() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let port = receiver(log.clone(), false).await;
    let ws = Workspace::on(TestDb::sqlite(), &["noop", "hostile"]);
    ws.config(&format!(
        "
api: {{token: \"${{{{ secrets.API_TOKEN }}}}\"}}
notifications:
  targets:
    - {{id: hook, url: \"http://127.0.0.1:{port}/hook\", default: true}}
metrics: {{sloEvery: 1s}}
checks:
  - {{id: bad, interval: 1h, strategy: {{plugin: noop}}, collectors: [{{plugin: hostile, config: {{mode: fail}}}}]}}
  - {{id: good, interval: 1h, strategy: {{plugin: noop}}, collectors: [{{plugin: hostile, config: {{mode: noop}}}}]}}
systems: [{{id: shop, name: Shop, slo: {{objective: 99}}}}]
assignments:
  - {{system: shop, check: bad, slo: {{objective: 90, window: 7d, latency: {{percentile: 95, belowMs: 60000}}}}}}
  - {{system: shop, check: good, slo: {{objective: 99.5, window: 7d}}}}
"
    ));
    let d = Daemon::start_with_env(&ws, &[], &env());
    for check in ["bad", "good", "bad", "good"] {
        post(&d, &format!("/api/v1/assignments/shop/{check}/run")).await;
    }
    let slos = get(&d, "/api/v1/slos").await;
    let items = slos["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{slos}");
    let shop = &items[0];
    assert_eq!(shop["id"], "shop");
    assert_eq!(
        (&shop["total"], &shop["good"]),
        (&Value::from(4), &Value::from(2))
    );
    assert_eq!(shop["attainment"], 50.0);
    // Half the runs bad against 1 % allowed: 50 budgets an hour, a page.
    assert_eq!(shop["burnRates"][0]["window"], "5m");
    assert_eq!(shop["burnRates"][0]["rate"], 50.0);
    assert_eq!(shop["alert"], "page");
    assert!(shop["budgetRemaining"].as_f64().unwrap() < 0.0, "{shop}");
    // By latency the failed runs are fast: their one hour is a good slice.
    let fast = &items[1];
    assert_eq!(fast["id"], "shop/bad");
    assert_eq!(
        fast["latency"],
        serde_json::json!({"percentile": 95.0, "belowMs": 60000.0})
    );
    assert_eq!(
        (&fast["total"], &fast["good"]),
        (&Value::from(1), &Value::from(1)),
        "{fast}"
    );
    let good = &items[2];
    assert_eq!(good["id"], "shop/good");
    assert_eq!(good["windowMs"], 7 * 86_400_000_i64);
    assert_eq!(
        (&good["attainment"], &good["budgetRemaining"]),
        (&Value::from(100.0), &Value::from(1.0))
    );
    assert_eq!(good["alert"], Value::Null);

    wait_until(
        Duration::from_secs(10),
        "the objective's gauges",
        || async {
            let metrics = reqwest::get(d.url("/metrics"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            metrics.contains("checkhost_slo_attainment_percent{slo=\"shop\"} 50.0")
                && metrics.contains("checkhost_slo_page{slo=\"shop\"} 1")
                && metrics.contains("checkhost_slo_burn_rate{slo=\"shop\",window=\"1h\"} 50.0")
                && metrics.contains("checkhost_slo_page{slo=\"shop/good\"} 0")
        },
    )
    .await;

    // The page condition notifies once, however often it is evaluated.
    let slo_notices = |log: &Arc<Mutex<Vec<Delivery>>>| -> Vec<Value> {
        log.lock()
            .unwrap()
            .iter()
            .map(|d| serde_json::from_str::<Value>(&d.body).unwrap())
            .filter(|b| b["event"] == "slo")
            .collect()
    };
    wait_until(Duration::from_secs(10), "the objective's page", || async {
        !slo_notices(&log).is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let notices = slo_notices(&log);
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0]["kind"], "page");
    assert_eq!(notices[0]["slo"]["id"], "shop");
    assert_eq!(notices[0]["system"]["name"], "Shop");

    let page = reqwest::get(d.url("/systems/shop"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<td>all checks</td><td>99 % over 30 days</td><td>50.000 %</td>")
            && page.contains("<strong>burning fast</strong>")
            && page.contains(
                "<td>check good</td><td>99.5 % over 7 days</td><td>100.000 %</td><td>100 %</td>"
            )
            && page.contains(
                "<td>check bad</td><td>90 % of hours at p95 &lt; 60000 ms over 7 days</td><td>100.000 %</td>"
            ),
        "{page}"
    );
}

/// A badge: its status, content type, ETag and body, read without a token.
async fn badge(d: &Daemon, path: &str, etag: Option<&str>) -> (u16, String, String, String) {
    let mut request = reqwest::Client::new().get(d.url(path));
    if let Some(etag) = etag {
        request = request.header("If-None-Match", etag);
    }
    let response = request.send().await.expect("the daemon answers");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (status, kind, tag) = (
        response.status().as_u16(),
        header("content-type"),
        header("etag"),
    );
    (status, kind, tag, response.text().await.unwrap())
}

async fn badges_are_public_svg_with_etags_even_when_reads_need_the_token(db: TestDb) {
    let healthy = Arc::new(AtomicBool::new(true));
    let port = flip_server(healthy.clone()).await;
    let ws = Workspace::on(db, &["http", "http-request"]);
    let config = |badges: &str| {
        format!(
            r#"
api: {{token: "${{{{ secrets.API_TOKEN }}}}", reads: token}}
{badges}
environments: [{{id: prod, name: Production}}, {{id: staging}}]
systems: [{{id: shop, name: Web shop, environments: [prod, staging]}}]
checks:
  - id: web
    interval: 1h
    strategy: {{plugin: http, config: {{baseUrl: "http://127.0.0.1:{port}"}}}}
    network: {{allow: ["127.0.0.1/32"]}}
    collectors:
      - plugin: request
        config: {{url: /health}}
        assertions: [{{field: statusCode, operator: equals, value: 200}}]
assignments:
  - {{system: shop, check: web, environments: [prod], thresholds: {{mode: consecutive, degraded: 1, unhealthy: 1}}}}
"#
        )
    };
    ws.config(&config("badges: public"));
    let d = Daemon::start_with_env(&ws, &[], &env());
    healthy.store(false, Ordering::SeqCst);
    post(&d, "/api/v1/assignments/shop/web/run").await;

    let (status, kind, etag, svg) = badge(&d, "/badge/shop/status.svg", None).await;
    assert_eq!((status, kind.as_str()), (200, "image/svg+xml"), "{svg}");
    assert!(
        svg.starts_with("<svg") && svg.contains(">unhealthy</text>"),
        "{svg}"
    );
    assert!(svg.contains(r#"aria-label="Web shop: unhealthy""#), "{svg}");
    assert!(!etag.is_empty());
    let (status, _, _, body) = badge(&d, "/badge/shop/status.svg", Some(&etag)).await;
    assert_eq!(
        (status, body.as_str()),
        (304, ""),
        "an unchanged badge is not sent again"
    );

    let (_, _, _, svg) = badge(&d, "/badge/shop/status.svg?environment=prod", None).await;
    assert!(svg.contains("Web shop · Production: unhealthy"), "{svg}");
    let (_, _, _, svg) = badge(&d, "/badge/shop/uptime.svg?window=7d", None).await;
    assert!(svg.contains("Web shop uptime 7d: 0.00%"), "{svg}");
    let (_, _, _, svg) = badge(&d, "/badge/shop/latency.svg?environment=prod", None).await;
    assert!(svg.contains(" ms</text>"), "{svg}");
    let (_, _, _, svg) = badge(&d, "/badge/shop/latency.svg?environment=staging", None).await;
    assert!(svg.contains(">no data</text>"), "{svg}");

    // A recovery changes the badge, and so its ETag.
    healthy.store(true, Ordering::SeqCst);
    post(&d, "/api/v1/assignments/shop/web/run").await;
    let (status, _, new_etag, svg) = badge(&d, "/badge/shop/status.svg", Some(&etag)).await;
    assert_eq!(status, 200, "{svg}");
    assert!(svg.contains(">healthy</text>") && new_etag != etag, "{svg}");
    let (_, _, _, svg) = badge(&d, "/badge/shop/uptime.svg", None).await;
    assert!(svg.contains("uptime 24h: 50.00%"), "{svg}");

    for (path, want) in [
        ("/badge/nope/status.svg", 404),
        ("/badge/shop/status.svg?environment=nope", 404),
        ("/badge/shop/uptime.svg?window=1y", 400),
        ("/badge/shop/status.svg?window=7d", 400),
    ] {
        let (status, _, _, body) = badge(&d, path, None).await;
        assert_eq!(status, want, "{path}: {body}");
    }
    // The rest of the API still needs the token.
    let (status, _) = refused(&d, reqwest::Method::GET, "/api/v1/systems", None).await;
    assert_eq!(status, 401);

    // Without `badges:`, token reads keep badges off.
    ws.config(&config(""));
    d.signal("HUP");
    wait_until(Duration::from_secs(20), "badges to turn off", || async {
        badge(&d, "/badge/shop/status.svg", None).await.0 == 404
    })
    .await;
}

async fn page(d: &Daemon, path: &str) -> (u16, String) {
    let response = reqwest::get(d.url(path)).await.expect("the daemon answers");
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn the_system_page_draws_runs_uptime_transitions_and_maintenance(db: TestDb) {
    let healthy = Arc::new(AtomicBool::new(true));
    let port = flip_server(healthy.clone()).await;
    let ws = Workspace::on(db, &["http", "http-request"]);
    let now = chrono::Utc::now();
    ws.config(&format!(
        r#"
api: {{token: "${{{{ secrets.API_TOKEN }}}}"}}
notifications:
  maintenance:
    - {{id: upgrade, systems: [shop], environments: [prod], start: "{}", end: "{}"}}
environments: [{{id: prod, name: Production}}]
systems: [{{id: shop, name: Web shop, environments: [prod]}}]
checks:
  - id: web
    name: Health endpoint
    interval: 1h
    strategy: {{plugin: http, config: {{baseUrl: "http://127.0.0.1:{port}"}}}}
    network: {{allow: ["127.0.0.1/32"]}}
    collectors:
      - plugin: request
        config: {{url: /health}}
        assertions: [{{field: statusCode, operator: equals, value: 200}}]
assignments:
  - {{system: shop, check: web, thresholds: {{mode: consecutive, degraded: 1, unhealthy: 1}}, flapping: {{changes: 2, window: 1h}}}}
"#,
        (now - chrono::Duration::hours(1)).to_rfc3339(),
        (now + chrono::Duration::hours(1)).to_rfc3339(),
    ));
    let d = Daemon::start_with_env(&ws, &[], &env());
    for up in [true, true, false, true] {
        healthy.store(up, Ordering::SeqCst);
        post(&d, "/api/v1/assignments/shop/web/run").await;
    }
    let detail = get(&d, "/api/v1/systems/shop").await;
    assert_eq!(
        detail["checks"][0]["slices"][0]["flapping"], true,
        "two changes within the hour: {detail}"
    );
    let (status, html) = page(&d, "/systems/shop").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains(r#"<span class="paused">flapping</span>"#),
        "{html}"
    );
    assert_eq!(html.matches(r#"<rect class="ok""#).count(), 3, "{html}");
    assert_eq!(html.matches(r#"<rect class="bad""#).count(), 1, "{html}");
    assert!(
        html.contains("last 4 runs, 3 healthy, 1 unhealthy; newest"),
        "the bar says what it shows: {html}"
    );
    assert!(
        html.contains(r#"<svg class="chart""#)
            && html.contains("Response time of Health endpoint in prod over 24 h: average"),
        "{html}"
    );
    assert_eq!(
        html.matches("75.00 %").count(),
        3,
        "uptime 24 h, 7 d, 30 d: {html}"
    );
    assert!(
        html.contains("shop::prod: healthy → unhealthy (web)"),
        "{html}"
    );
    assert!(
        html.contains("shop::prod: unhealthy → healthy (web)"),
        "{html}"
    );
    assert!(
        html.contains("Maintenance `upgrade` is open until"),
        "{html}"
    );
    let (_, week) = page(&d, "/systems/shop?window=7d").await;
    assert!(
        week.contains(r#"<strong aria-current="page">7 d</strong>"#),
        "{week}"
    );
    assert!(week.contains("over 7 d: average"), "{week}");

    let (status, missing) = page(&d, "/systems/nope").await;
    assert_eq!(status, 404);
    assert!(
        missing.contains("There is no system `nope`.") && missing.contains("<html"),
        "{missing}"
    );
    let (status, bad) = page(&d, "/systems/shop?window=1y").await;
    assert_eq!(status, 400);
    assert!(bad.contains("`1y` is not a chart window"), "{bad}");
}

async fn incidents_are_posted_shown_escaped_fed_and_resolved(db: TestDb) {
    let ws = Workspace::on(db, &["noop"]);
    ws.config(
        r#"
api: {token: "${{ secrets.API_TOKEN }}"}
systems: [{id: shop, name: Web shop}, {id: billing}]
"#,
    );
    let d = Daemon::start_with_env(&ws, &[], &env());
    let feed = |text: &str| {
        text.parse::<atom_syndication::Feed>()
            .unwrap_or_else(|e| panic!("/feed.atom is not Atom ({e}): {text}"))
    };
    let (status, empty) = page(&d, "/feed.atom").await;
    assert_eq!(status, 200);
    assert!(feed(&empty).entries.is_empty(), "{empty}");

    let create = |body: Value, token: Option<&'static str>| {
        let d = &d;
        async move {
            let mut request = reqwest::Client::new().post(d.url("/api/v1/incidents"));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request
                .header("Content-Type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        }
    };
    let good = serde_json::json!({
        "title": "<script>alert(1)</script> Payments failing",
        "severity": "major",
        "systems": ["shop"],
        "body": "Card payments fail.\nWe are on it.",
    });
    assert_eq!(
        create(good.clone(), None).await.0,
        401,
        "writes need the token"
    );
    let with = |key: &str, value: Value| {
        let mut bad = good.clone();
        bad[key] = value;
        bad
    };
    for (bad, field) in [
        (with("systems", serde_json::json!(["nope"])), "systems[0]"),
        (with("title", Value::from("x".repeat(201))), "title"),
        (with("body", Value::from("y".repeat(10_001))), "body"),
        (with("body", Value::from("  ")), "body"),
        // Not an incident at all: the JSON body is refused as a whole.
        (with("severity", Value::from("huge")), "body"),
    ] {
        let (status, body) = create(bad, Some(TOKEN)).await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some(field)),
            "{body}"
        );
    }
    let (status, incident) = create(good, Some(TOKEN)).await;
    assert_eq!(status, 201, "{incident}");
    let id = incident["id"].as_i64().unwrap();
    assert_eq!(incident["updates"][0]["state"], "investigating");

    let (_, index) = page(&d, "/").await;
    let shown = index
        .find("Payments failing")
        .expect("the open incident is on the page");
    assert!(
        shown < index.find(r#"<table class="matrix""#).unwrap(),
        "above the table"
    );
    assert!(
        index.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;")
            && !index.contains("<script>alert"),
        "a script in a title never runs"
    );
    assert!(
        page(&d, "/systems/shop")
            .await
            .1
            .contains("Payments failing")
    );
    assert!(
        !page(&d, "/systems/billing")
            .await
            .1
            .contains("Payments failing")
    );

    // The CLI goes through the API, with the token from the environment.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_checkhost"))
        .args([
            "incident",
            "update",
            &id.to_string(),
            "--state",
            "monitoring",
        ])
        .args(["--body", "Fix deployed.", "--server", &d.url("")])
        .env("CHECKHOST_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("monitoring: Fix deployed."), "{said}");

    let resolved = post(&d, &format!("/api/v1/incidents/{id}/resolve")).await;
    assert!(resolved["resolvedAtMs"].is_i64(), "{resolved}");
    let (status, _) = refused(
        &d,
        reqwest::Method::POST,
        &format!("/api/v1/incidents/{id}/resolve"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 409, "a resolved incident takes no more updates");
    assert_eq!(
        get(&d, "/api/v1/incidents").await["items"],
        serde_json::json!([])
    );
    let all = get(&d, "/api/v1/incidents?state=all").await;
    assert_eq!(
        all["items"][0]["updates"].as_array().unwrap().len(),
        3,
        "{all}"
    );
    assert!(
        !page(&d, "/").await.1.contains("Payments failing"),
        "resolved: off the front page"
    );

    let (_, history) = page(&d, "/incidents").await;
    for text in [
        "Card payments fail.",
        "Fix deployed.",
        "Resolved.",
        "(resolved)",
    ] {
        assert!(history.contains(text), "{text}: {history}");
    }
    let (_, text) = page(&d, "/feed.atom").await;
    let entries = feed(&text).entries;
    assert_eq!(entries.len(), 1, "{text}");
    assert_eq!(
        entries[0].title.value,
        "[major] <script>alert(1)</script> Payments failing"
    );
    assert!(
        text.contains("&lt;script&gt;"),
        "escaped in the XML: {text}"
    );
}

/// The `<th scope="row">` rows of an index page.
fn index_rows(html: &str) -> usize {
    html.matches(r#"<th scope="row">"#).count()
}

/// The system names of an index page's rows, in order.
fn row_names(html: &str) -> Vec<&str> {
    html.split(r#"<th scope="row"><a href=""#)
        .skip(1)
        .filter_map(|row| row.split_once('>')?.1.split_once("</a>"))
        .map(|(name, _)| name)
        .collect()
}

async fn the_index_pages_filters_and_searches_many_systems(db: TestDb) {
    let ws = Workspace::on(db, &["noop", "hostile"]);
    let mut yaml = String::from(
        "checks:
  - {id: ok, interval: 1s, strategy: {plugin: noop}, collectors: [{plugin: hostile, config: {mode: noop}}]}
  - {id: bad, interval: 1s, strategy: {plugin: noop}, collectors: [{plugin: hostile, config: {mode: fail}}]}
systems:
",
    );
    for i in 0..250 {
        yaml.push_str(&format!("  - {{id: s{i}, name: System {i}}}\n"));
    }
    yaml.push_str("assignments:\n");
    for i in 0..250 {
        let check = if i < 200 { "ok" } else { "bad" };
        yaml.push_str(&format!(
            "  - {{system: s{i}, check: {check}, thresholds: {{mode: consecutive, degraded: 1, unhealthy: 1}}}}\n"
        ));
    }
    ws.config(&yaml);
    let d = Daemon::start_with_env(&ws, &[], &env());
    wait_until(Duration::from_secs(30), "every system measured", || async {
        let systems = get(&d, "/api/v1/systems").await;
        let count = |status: &str| {
            systems
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["status"] == status)
                .count()
        };
        count("healthy") == 200 && count("unhealthy") == 50
    })
    .await;

    let (status, first) = page(&d, "/").await;
    assert_eq!(status, 200);
    assert_eq!(index_rows(&first), 100, "a page holds 100 systems");
    assert!(first.contains("page 1 of 3 (250 systems)"), "{first}");
    assert!(
        first.contains(r#"href="&#x2f;?page=2" rel="next""#),
        "{first}"
    );
    assert!(
        first.contains(">unhealthy</span> (50)"),
        "counts per status"
    );
    let (_, last) = page(&d, "/?page=3").await;
    assert_eq!(index_rows(&last), 50);
    assert_eq!(row_names(&last).len(), 50, "{last}");
    let past = page(&d, "/?page=99").await.1;
    assert_eq!(
        row_names(&past),
        row_names(&last),
        "past the end: the last page"
    );

    let (_, bad) = page(&d, "/?status=unhealthy").await;
    assert_eq!(index_rows(&bad), 50);
    assert!(!bad.contains(r#"data-status="healthy""#) || !bad.contains(">System 0<"));
    assert!(
        bad.contains(">System 200<") && !bad.contains(">System 199<"),
        "{bad}"
    );
    let (_, found) = page(&d, "/?q=system+12").await;
    assert_eq!(index_rows(&found), 11, "System 12 and 120–129");
    let (_, both) = page(&d, "/?q=S24&status=unhealthy&per=5").await;
    assert_eq!(index_rows(&both), 5, "s240–s249 are unhealthy, five a page");
    assert!(both.contains("page 1 of 2 (10 systems)"), "{both}");
    let (_, none) = page(&d, "/?q=nothing-like-this").await;
    assert!(none.contains("No system matches."), "{none}");

    for (path, want) in [
        ("/?bogus=1", 400),
        ("/?status=weird", 400),
        ("/?page=x", 400),
    ] {
        assert_eq!(page(&d, path).await.0, want, "{path}");
    }
}

/// A shop with one environment on a local target whose body carries a
/// secret, a hand-written check with comments, and what an assistant may
/// open of the network.
fn mcp_config(ws: &Workspace, port: u16, hook: u16) -> std::path::PathBuf {
    ws.config(&format!(
        r#"# The shop, watched with an assistant's help.
secrets: {{envPrefix: CHECKHOST_SECRET_}}
api: {{token: "${{{{ secrets.API_TOKEN }}}}"}}
mcp: {{allowNetwork: ["127.0.0.1:{port}"], secrets: [LEAK]}}
notifications:
  targets:
    - {{id: team, url: "http://127.0.0.1:{hook}/hook", signingSecret: "${{{{ secrets.HOOK_KEY }}}}"}}
environments:
  - {{id: staging, fields: {{baseUrl: "http://127.0.0.1:{port}"}}}}
systems:
  - {{id: shop, name: Web shop, environments: [staging]}}
checks:
  # Written by hand; an assistant's edits keep this comment.
  - id: home
    interval: 1h
    strategy: {{plugin: http, config: {{baseUrl: "{{{{ environment.baseUrl }}}}"}}}}
    network: {{allow: ["127.0.0.1:{port}"]}}
    collectors:
      - plugin: request
        config: {{url: /health}}
assignments:
  - {{system: shop, check: home}}
"#
    ))
}

/// The check an assistant proposes: the target's health, with the secret
/// the target echoes handed to the collector.
fn proposal(port: u16) -> Value {
    serde_json::json!({
        "id": "api",
        "name": "Shop API",
        "system": "shop",
        "interval": "1s",
        "timeout": "5s",
        "strategy": {"plugin": "http", "config": {"baseUrl": "{{ environment.baseUrl }}"}},
        "network": {"allow": [format!("127.0.0.1:{port}")]},
        "collectors": [{
            "plugin": "request",
            "config": {"url": "/health"},
            "secretEnv": {"LEAK": "${{ secrets.LEAK }}"},
            "assertions": [
                {"field": "statusCode", "operator": "equals", "value": 200},
                {"field": "responseTimeMs", "operator": "lessThan", "value": 5000},
                {"jsonPath": "$.body.token", "operator": "exists"},
            ],
        }],
    })
}

/// `proposal` with one field replaced: `path` is a JSON pointer.
fn proposal_with(port: u16, path: &str, value: Value) -> Value {
    let mut p = proposal(port);
    *p.pointer_mut(path).unwrap_or_else(|| panic!("{path}")) = value;
    p
}

/// Every answer the tools gave, for the test that no secret leaks.
fn no_secret_in(answers: &[Value]) {
    for answer in answers {
        let text = answer.to_string();
        assert!(
            !text.contains(LEAK) && !text.contains(TOKEN),
            "a secret leaked: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_over_stdio_proposes_dry_runs_applies_and_refuses() {
    let port = flip_server(Arc::new(AtomicBool::new(true))).await;
    let ws = Workspace::new(&["http", "http-request"]);
    let config = mcp_config(&ws, port, support::daemon::free_port());
    let plugins = ws.plugins.path().to_str().unwrap().to_string();
    let db = ws.db_url();
    let args = [
        config.to_str().unwrap(),
        "--plugins",
        &plugins,
        "--database",
        &db,
    ];
    let Some(mut mcp) = support::mcp::Client::stdio(&args, &env()) else {
        return;
    };
    let mut answers = Vec::new();

    let tools = mcp.request(serde_json::json!({"op": "tools"}));
    let names: BTreeSet<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for tool in [
        "capabilities",
        "propose_check",
        "dry_run",
        "apply_check",
        "remove_check",
        "status",
        "history",
        "transitions",
        "runs",
        "pause",
        "resume",
        "run_now",
        "notify",
    ] {
        assert!(names.contains(tool), "{tool} is listed: {names:?}");
    }
    let propose = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "propose_check")
        .unwrap();
    assert!(
        propose["inputSchema"]["properties"]["collectors"].is_object(),
        "{propose}"
    );
    assert_eq!(propose["outputSchema"]["type"], "object", "{propose}");

    let capabilities = mcp.ok("capabilities", serde_json::json!({}));
    let request = capabilities["collectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "request")
        .expect("the request collector is offered");
    let status_code = request["resultFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "statusCode")
        .expect("statusCode is a result field");
    assert_eq!(status_code["type"], "integer", "{status_code}");
    assert_eq!(capabilities["environments"][0]["fields"][0], "baseUrl");
    assert_eq!(capabilities["systems"][0]["id"], "shop");
    answers.push(capabilities);

    let proposed = mcp.ok("propose_check", proposal(port));
    let yaml = proposed["yaml"].as_str().unwrap();
    assert!(
        yaml.contains("id: api") && yaml.contains("system: shop"),
        "{yaml}"
    );
    assert!(
        yaml.contains("${{ secrets.LEAK }}"),
        "the reference, not its value: {yaml}"
    );
    answers.push(proposed);

    // Refused with validate's words, at the proposal's own field.
    for (bad, place, words) in [
        (
            proposal_with(port, "/strategy/plugin", "htp".into()),
            "strategy.plugin",
            "unknown strategy `htp`",
        ),
        (
            proposal_with(
                port,
                "/collectors/0/assertions/0",
                serde_json::json!({"field": "statusCode", "operator": "contains", "value": "20"}),
            ),
            "collectors[0].assertions[0]",
            "statusCode",
        ),
        (
            proposal_with(port, "/system", "shop".into())
                .as_object()
                .map(|p| {
                    let mut p = p.clone();
                    p.insert("environments".into(), serde_json::json!(["prod"]));
                    Value::Object(p)
                })
                .unwrap(),
            "environments[0]",
            "unknown environment `prod`",
        ),
        (
            proposal_with(port, "/interval", "0s".into()),
            "interval",
            "longer than zero",
        ),
        (
            proposal_with(port, "/network/allow/0", "127.0.0.0/8".into()),
            "network.allow[0]",
            "mcp.allowNetwork",
        ),
        (
            proposal_with(
                port,
                "/collectors/0/secretEnv",
                serde_json::json!({"T": "${{ secrets.API_TOKEN }}"}),
            ),
            "collectors[0].secretEnv.T",
            "secret `API_TOKEN` is not one an assistant may use",
        ),
    ] {
        let answer = mcp.call("propose_check", bad);
        assert_eq!(answer["isError"], true, "{answer}");
        let text = answer["text"].as_str().unwrap();
        assert!(
            text.contains(&format!("- {place}")) && text.contains(words),
            "{place}: {text}"
        );
        answers.push(answer);
    }
    let malformed = mcp.call("propose_check", proposal_with(port, "/id", 5.into()));
    assert!(
        malformed["error"]
            .as_str()
            .is_some_and(|e| e.contains("arguments.id")),
        "{malformed}"
    );
    let huge = mcp.call(
        "propose_check",
        proposal_with(port, "/name", "x".repeat(300_000).into()),
    );
    assert!(
        huge["error"].as_str().is_some_and(|e| e.contains("bytes")),
        "{huge}"
    );

    // The dry run reaches the target and stores nothing; the body's secret is masked.
    let dry = mcp.ok("dry_run", proposal(port));
    assert_eq!(dry["healthy"], true, "{dry}");
    assert_eq!(dry["runs"][0]["environment"], "staging");
    let outcomes = dry["runs"][0]["assertions"].as_array().unwrap();
    assert_eq!(outcomes.len(), 3);
    assert!(outcomes.iter().all(|a| a["passed"] == true), "{dry}");
    assert_eq!(
        outcomes[2]["actual"], "****",
        "the secret the target echoes, masked: {dry}"
    );
    answers.push(dry);
    let runs = mcp.ok("runs", serde_json::json!({}));
    assert_eq!(
        runs["runs"].as_array().unwrap().len(),
        0,
        "a dry run stores nothing"
    );

    let applied = mcp.ok("apply_check", proposal(port));
    let diff = applied["diff"].as_str().unwrap();
    assert!(
        diff.contains("+  - id: api") || diff.contains("+- id: api"),
        "{diff}"
    );
    assert_eq!(applied["reload"]["applied"], true, "{applied}");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("# The shop, watched with an assistant's help."),
        "{text}"
    );
    assert!(
        text.contains("# Written by hand; an assistant's edits keep this comment."),
        "{text}"
    );
    let (code, out) = support::checkhost_text(&[
        "validate",
        config.to_str().unwrap(),
        "--plugins",
        &plugins,
        "--skip-secrets",
    ]);
    assert_eq!(code, Some(0), "the edited file validates: {out}");
    answers.push(applied);

    // The daemon's actions need a daemon.
    let pause = mcp.call(
        "pause",
        serde_json::json!({"system": "shop", "check": "api"}),
    );
    assert_eq!(pause["isError"], true);
    assert!(
        pause["text"]
            .as_str()
            .unwrap()
            .contains("needs a running checkhost serve"),
        "{pause}"
    );

    let resources = mcp.request(serde_json::json!({"op": "resources"}));
    let uris: Vec<&str> = resources["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert!(uris.contains(&"checkhost://schema/config"), "{uris:?}");
    assert!(
        uris.contains(&"checkhost://plugins/collectors/request/result-schema"),
        "{uris:?}"
    );
    let schema = mcp.request(serde_json::json!({"op": "read", "uri": "checkhost://schema/config"}));
    assert!(
        schema["text"]
            .as_str()
            .unwrap()
            .contains("checkhost configuration"),
        "{schema}"
    );
    let prompt = mcp.request(serde_json::json!({
        "op": "prompt", "name": "add_check_for_url", "args": {"url": "https://shop.example/health"}
    }));
    assert!(
        prompt["text"]
            .as_str()
            .unwrap()
            .contains("https://shop.example/health"),
        "{prompt}"
    );

    let removed = mcp.ok("remove_check", serde_json::json!({"check": "api"}));
    assert!(
        removed["diff"].as_str().unwrap().contains("-  - id: api"),
        "{removed}"
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        !text.contains("id: api") && text.contains("id: home"),
        "{text}"
    );
    answers.push(removed);
    no_secret_in(&answers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_on_the_daemon_applies_a_check_sees_its_first_run_and_acts() {
    let port = flip_server(Arc::new(AtomicBool::new(true))).await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let hook = receiver(log.clone(), false).await;
    let ws = Workspace::new(&["http", "http-request"]);
    mcp_config(&ws, port, hook);
    let d = Daemon::start_with_env(&ws, &[], &env());

    let (status, _, _) = call(reqwest::Method::POST, d.url("/mcp"), None).await;
    assert_eq!(status, 401, "/mcp needs the token");
    let Some(mut mcp) = support::mcp::Client::http(&d.url("/mcp"), TOKEN) else {
        return;
    };
    let mut answers = Vec::new();
    let applied = mcp.ok("apply_check", proposal(port));
    assert_eq!(applied["reload"]["applied"], true, "{applied}");
    answers.push(applied);

    // Its first run, as `status` tells it.
    let start = Instant::now();
    let first = loop {
        let status = mcp.ok("status", serde_json::json!({"system": "shop"}));
        let run = status["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["check"] == "api")
            .and_then(|c| c.get("lastRun").cloned());
        if let Some(run) = run {
            answers.push(status);
            break run;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no first run: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(first["status"], "healthy", "{first}");
    let explain = mcp.request(serde_json::json!({
        "op": "prompt", "name": "explain_degraded", "args": {"system": "shop"}
    }));
    let explained = explain["text"].as_str().unwrap_or_default();
    assert!(
        explained.contains("`shop`") && explained.contains("\"check\":\"api\""),
        "the prompt brings the system's status along: {explain}"
    );
    answers.push(explain);
    let page = mcp.ok("status", serde_json::json!({"limit": 1}));
    assert_eq!(page["entities"].as_array().unwrap().len(), 1, "{page}");
    let next = mcp.ok(
        "status",
        serde_json::json!({"limit": 1, "after": page["next"]}),
    );
    assert!(
        next["entities"][0]["entity"].as_str() > page["entities"][0]["entity"].as_str(),
        "the next page goes on: {page} then {next}"
    );

    let now = mcp.ok(
        "run_now",
        serde_json::json!({"system": "shop", "check": "api"}),
    );
    assert_eq!(now["answer"]["runs"][0]["status"], "healthy", "{now}");
    let paused = mcp.ok(
        "pause",
        serde_json::json!({"system": "shop", "check": "api"}),
    );
    assert_eq!(paused["answer"]["paused"], true, "{paused}");
    let resumed = mcp.ok(
        "resume",
        serde_json::json!({"system": "shop", "check": "api"}),
    );
    assert_eq!(resumed["answer"]["paused"], false, "{resumed}");
    let unknown = mcp.call(
        "pause",
        serde_json::json!({"system": "shop", "check": "nope"}),
    );
    assert_eq!(unknown["isError"], true, "{unknown}");
    let runs = mcp.ok(
        "runs",
        serde_json::json!({"system": "shop", "check": "api", "withResults": true, "limit": 2}),
    );
    assert_eq!(runs["runs"].as_array().unwrap().len(), 2, "{runs}");
    assert!(runs["next"].is_i64(), "a full page has a cursor: {runs}");
    answers.extend([now, paused, resumed, runs]);

    let sent = mcp.ok(
        "notify",
        serde_json::json!({"target": "team", "text": "Deploying the shop at 14:00"}),
    );
    let key = sent["answer"]["idempotencyKey"]
        .as_str()
        .unwrap()
        .to_string();
    wait_until(Duration::from_secs(20), "the message is delivered", || {
        let log = log.clone();
        async move {
            log.lock()
                .unwrap()
                .iter()
                .any(|d| d.body.contains("Deploying the shop"))
        }
    })
    .await;
    let delivery = log
        .lock()
        .unwrap()
        .iter()
        .find(|d| d.key == key)
        .cloned()
        .expect("under its key");
    let (t, _) = delivery.signature.split_once(',').expect("t=…,v1=…");
    let mut mac = Hmac::<Sha256>::new_from_slice(b"hook-signing-key").unwrap();
    mac.update(format!("{}.{}", &t[2..], delivery.body).as_bytes());
    assert_eq!(
        delivery.signature,
        format!("{t},v1={}", hex::encode(mac.finalize().into_bytes())),
        "signed like every notice"
    );
    let unknown_target = mcp.call(
        "notify",
        serde_json::json!({"target": "nobody", "text": "x"}),
    );
    assert!(
        unknown_target["text"]
            .as_str()
            .unwrap()
            .contains("unknown notification target"),
        "{unknown_target}"
    );

    let metrics = d.get("/metrics").unwrap();
    for line in [
        r#"checkhost_mcp_calls_total{tool="apply_check",outcome="ok"} 1"#,
        r#"checkhost_mcp_calls_total{tool="pause",outcome="refused"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in /metrics");
    }
    no_secret_in(&answers);
}
