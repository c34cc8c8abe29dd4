//! The run pipeline through the real binary, real local servers and a real
//! SQLite file: environments, failures, templating, migration, secrets,
//! assertions, thresholds, transitions, rollups and retention.

mod support;

use serde_json::Value;
use support::db::TestDb;
use support::{Probe, Workspace, servers, services};

const PLUGINS: &[&str] = &["http", "http-request", "noop", "hostile"];

on_both_engines!(
    null_empty_and_list_environments_stay_distinct,
    one_environment_failing_leaves_its_sibling_healthy_and_the_rollup_is_worst,
    assertions_record_expected_and_actual_values,
    a_missing_secret_fails_only_the_collector_that_needs_it,
    a_secret_canary_never_reaches_the_database_output_or_logs,
    the_http_auth_token_reaches_the_target_and_nothing_it_leaves_behind,
    consecutive_thresholds_degrade_then_fail_then_recover,
    window_thresholds_count_failures_in_the_last_runs,
    the_first_unhealthy_run_is_a_transition_from_healthy,
    four_processes_flipping_one_entity_write_one_transition,
    a_failed_write_keeps_nothing_of_its_batch_and_says_so,
);

fn reports_by_env(reports: &Value) -> std::collections::BTreeMap<String, Value> {
    reports
        .as_array()
        .unwrap_or_else(|| panic!("not a report list: {reports}"))
        .iter()
        .map(|r| {
            (
                r["environment"].as_str().unwrap_or("-").to_string(),
                r.clone(),
            )
        })
        .collect()
}

/// Environments `staging` → `a`, `production` → `b`; system `shop` in both,
/// system `lonely` in none.
fn envs(a: &str, b: &str) -> String {
    format!(
        "environments:
  - {{id: staging, fields: {{baseUrl: 'http://{a}'}}}}
  - {{id: production, fields: {{baseUrl: 'http://{b}'}}}}
  - {{id: retired}}
systems:
  - {{id: shop, environments: [staging, production]}}
  - {{id: lonely}}
"
    )
}

fn http_check(id: &str, extra: &str) -> String {
    format!(
        "  - id: {id}
    timeout: 5s
    strategy: {{plugin: http, config: {{baseUrl: '{{{{ environment.baseUrl }}}}'}}}}
    network: {{allow: ['127.0.0.0/8']}}
    collectors:
      - plugin: request
        config: {{url: /ok}}
        assertions: [{{field: statusCode, operator: equals, value: 200}}]
{extra}"
    )
}

async fn null_empty_and_list_environments_stay_distinct(db: TestDb) {
    let server = servers::http().await;
    let ws = Workspace::on(db, PLUGINS);
    // The env-less run has no environment.baseUrl: `none` names its target.
    let none =
        http_check("none", "").replace("{{ environment.baseUrl }}", &format!("http://{server}"));
    let checks = [http_check("all", ""), none, http_check("some", "")].join("");
    ws.config(&format!(
        "{}checks:\n{checks}  - id: bare
    strategy: {{plugin: noop}}
    collectors: [{{plugin: hostile, config: {{mode: noop}}}}]
assignments:
  - {{system: shop, check: all, environments: null}}
  - {{system: shop, check: none, environments: []}}
  - {{system: shop, check: some, environments: [production, retired]}}
  - {{system: lonely, check: bare}}
",
        envs(&server.to_string(), &server.to_string())
    ));
    let (code, reports, out) = ws.run(&[], &[]);
    let mut seen: Vec<(String, String)> = reports
        .as_array()
        .unwrap_or_else(|| panic!("{out}"))
        .iter()
        .map(|r| {
            (
                r["check"].as_str().unwrap().to_string(),
                r["environment"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(code, Some(0), "{out}");
    let expected: Vec<(String, String)> = [
        ("all", "production"),
        ("all", "staging"),
        ("bare", "-"),
        ("none", "-"),
        ("some", "production"),
    ]
    .iter()
    .map(|(c, e)| (c.to_string(), e.to_string()))
    .collect();
    assert_eq!(seen, expected);
}

async fn one_environment_failing_leaves_its_sibling_healthy_and_the_rollup_is_worst(db: TestDb) {
    let server = servers::http().await;
    let ws = Workspace::on(db, PLUGINS);
    ws.config(&format!(
        "{}checks:\n{}assignments:\n  - {{system: shop, check: web, thresholds: {{mode: consecutive, degraded: 1, unhealthy: 1}}}}\n",
        envs(&server.to_string(), "127.0.0.1:1"),
        http_check("web", "")
    ));
    let (code, reports, out) = ws.run(&[], &[]);
    assert_eq!(code, Some(1), "{out}");
    let by_env = reports_by_env(&reports);
    assert_eq!(by_env["staging"]["healthy"], true, "{out}");
    assert_eq!(by_env["production"]["healthy"], false);
    assert!(
        by_env["production"]["error"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{out}"
    );
    assert_eq!(ws.entity("shop::staging"), "healthy");
    assert_eq!(ws.entity("shop::production"), "unhealthy");
    assert_eq!(
        ws.entity("shop"),
        "unhealthy",
        "rollup is the worst environment"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_render_per_environment_and_other_fields_stay_verbatim() {
    let staging = servers::http().await;
    let production = servers::http().await;
    let ws = Workspace::new(PLUGINS);
    ws.config(&format!(
        "{}checks:
  - id: echo
    strategy: {{plugin: http, config: {{url: '{{{{ environment.baseUrl }}}}', method: GET, timeout: 5}}}}
    network: {{allow: ['127.0.0.0/8']}}
    collectors:
      - plugin: request
        config: {{url: /echo, headers: {{x-env: '{{{{ environment.id }}}}-{{{{ system.id }}}}-{{{{ environment.missing }}}}!'}}}}
        assertions: [{{jsonPath: '$.body', operator: contains, value: 'x-env:'}}]
  - id: verbatim
    strategy: {{plugin: noop}}
    collectors: [{{plugin: hostile, config: {{mode: echo, target: '{{{{ environment.baseUrl }}}}'}}, assertions: [{{field: echo, operator: equals, value: '{{{{ environment.baseUrl }}}}'}}]}}]
assignments:
  - {{system: shop, check: echo}}
  - {{system: shop, check: verbatim, environments: [staging]}}
",
        envs(&staging.to_string(), &production.to_string())
    ));
    let (code, reports, out) = ws.run(&[], &[]);
    assert_eq!(code, Some(0), "{out}");
    for report in reports
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["check"] == "echo")
    {
        let env = report["environment"].as_str().unwrap();
        let body = report["assertions"][0]["actual"]
            .as_str()
            .unwrap()
            .to_ascii_lowercase();
        assert!(
            body.contains(&format!("x-env: {env}-shop-!")),
            "{env}: {body}"
        );
        let port = if env == "staging" {
            staging.port()
        } else {
            production.port()
        };
        assert!(
            body.contains(&format!("host: 127.0.0.1:{port}")),
            "{env} hit its own server: {body}"
        );
    }
    let verbatim = reports
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["check"] == "verbatim")
        .unwrap();
    assert_eq!(
        verbatim["assertions"][0]["actual"], "{{ environment.baseUrl }}",
        "{out}"
    );
}

async fn assertions_record_expected_and_actual_values(db: TestDb) {
    let server = servers::http().await;
    let ws = Workspace::on(db, PLUGINS);
    ws.config(&format!(
        "{}checks:
  - id: api
    strategy: {{plugin: http, config: {{baseUrl: '{{{{ environment.baseUrl }}}}'}}}}
    network: {{allow: ['127.0.0.0/8']}}
    collectors:
      - plugin: request
        config: {{url: /fail}}
        assertions:
          - {{field: statusCode, operator: equals, value: 201}}
          - {{field: statusCode, operator: greaterThanOrEqual, value: 500}}
          - {{field: headers.content-type, operator: matches, value: '^application/(json|xml)$'}}
assignments:
  - {{system: shop, check: api, environments: [staging]}}
",
        envs(&server.to_string(), &server.to_string())
    ));
    let (code, reports, out) = ws.run(&[], &[]);
    assert_eq!(code, Some(1), "{out}");
    let assertions = &reports[0]["assertions"];
    assert_eq!(assertions[0]["passed"], false);
    assert_eq!(assertions[0]["expected"], 201);
    assert_eq!(assertions[0]["actual"], 500);
    assert_eq!(assertions[1]["passed"], true);
    assert_eq!(assertions[2]["passed"], true);
    let stored = ws.db.texts("SELECT result FROM runs").await;
    let stored: Value = serde_json::from_str(&stored[0]).unwrap();
    assert_eq!(stored["assertions"][0]["actual"], 500);
    assert_eq!(stored["collectors"][0]["result"]["statusCode"], 500);
    assert!(
        stored["collectors"][0]["result"].get("body").is_none(),
        "bodies are not persisted by default"
    );
}

async fn a_missing_secret_fails_only_the_collector_that_needs_it(db: TestDb) {
    let server = servers::http().await;
    let ws = Workspace::on(db, PLUGINS);
    ws.config(&format!(
        "{}checks:
  - id: api
    strategy: {{plugin: http, config: {{baseUrl: '{{{{ environment.baseUrl }}}}'}}}}
    network: {{allow: ['127.0.0.0/8']}}
    collectors:
      - plugin: request
        config: {{url: /ok}}
        secretEnv: {{TOKEN: '${{{{ secrets.NOT_THERE }}}}'}}
      - plugin: request
        config: {{url: /ok}}
        assertions: [{{field: statusCode, operator: equals, value: 200}}]
  - id: authed
    strategy: {{plugin: http, config: {{baseUrl: '{{{{ environment.baseUrl }}}}', auth: {{bearer: '${{{{ secrets.NOR_THIS }}}}'}}}}}}
    network: {{allow: ['127.0.0.0/8']}}
    collectors:
      - plugin: request
        config: {{url: /ok}}
assignments:
  - {{system: shop, check: api, environments: [staging]}}
  - {{system: shop, check: authed, environments: [staging]}}
",
        envs(&server.to_string(), &server.to_string())
    ));
    let (code, reports, out) = ws.run(&[], &[]);
    assert_eq!(code, Some(1), "{out}");
    let report = |check: &str| {
        reports
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["check"] == check)
            .unwrap_or_else(|| panic!("no report for {check}: {out}"))
            .clone()
    };
    // The collector without its secret fails by name; its sibling ran.
    let api = report("api");
    assert_eq!(api["healthy"], false, "{api}");
    assert_eq!(
        api["error"],
        "request: required secret not available: NOT_THERE"
    );
    assert_eq!(api["assertions"][0]["passed"], true, "{api}");
    let stored = ws
        .db
        .texts(
            "SELECT r.result FROM runs r JOIN slices s ON s.id = r.slice_id \
             WHERE s.check_id = 'api'",
        )
        .await;
    let stored: Value = serde_json::from_str(&stored[0]).unwrap();
    assert_eq!(
        stored["collectors"][0]["error"],
        "required secret not available: NOT_THERE"
    );
    assert_eq!(stored["collectors"][1]["result"]["statusCode"], 200);
    // A strategy cannot connect without its `x-secret`: the whole run fails.
    let authed = report("authed");
    assert_eq!(authed["error"], "required secret not available: NOR_THIS");
    assert_eq!(
        ws.db
            .count("SELECT COUNT(*) FROM runs WHERE status = 'unhealthy'")
            .await,
        2
    );
}

async fn a_secret_canary_never_reaches_the_database_output_or_logs(db: TestDb) {
    const CANARY: &str = "canary-d41d8cd98f";
    let ws = Workspace::on(db, PLUGINS);
    ws.config(&format!(
        "{}checks:
  - id: leak
    strategy: {{plugin: noop}}
    collectors:
      - plugin: hostile
        config: {{mode: echo-secret, name: TOKEN}}
        secretEnv: {{TOKEN: '${{{{ secrets.CANARY }}}}'}}
      - plugin: hostile
        config: {{mode: echo-secret-result, name: TOKEN}}
        secretEnv: {{TOKEN: '${{{{ secrets.CANARY }}}}'}}
        assertions: [{{field: leak, operator: contains, value: '****'}}]
assignments:
  - {{system: shop, check: leak}}
",
        envs("127.0.0.1:1", "127.0.0.1:1")
    ));
    let (code, reports, out) = ws.run(
        &[],
        &[
            ("CHECKHOST_SECRET_CANARY", CANARY),
            ("CHECKHOST_LOG", "debug"),
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(!out.contains(CANARY), "canary in output: {out}");
    assert!(out.contains("****"), "{out}");
    assert_eq!(reports[0]["assertions"][0]["passed"], true, "{out}");
    assert_nowhere_stored(&ws, CANARY).await;
}

/// `secret` is in no stored run and in no file of the workspace or the
/// database folder.
async fn assert_nowhere_stored(ws: &Workspace, secret: &str) {
    for row in ws
        .db
        .texts("SELECT result || COALESCE(error, '') FROM runs")
        .await
    {
        assert!(!row.contains(secret), "secret in a stored run: {row}");
    }
    let folders = [Some(ws.dir.path()), ws.db.dir()];
    for entry in folders
        .into_iter()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d).unwrap())
    {
        let path = entry.unwrap().path();
        // SQLite removes its -wal and -shm files when the last connection closes.
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "secret in {}",
            path.display()
        );
    }
}

/// A target that answers 200 only to `Authorization: Bearer <token>`.
async fn guarded_server(token: &'static str) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_lowercase();
                let status = if head.contains(&format!("authorization: bearer {token}")) {
                    "200 OK"
                } else {
                    "401 Unauthorized"
                };
                let _ = conn
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    addr
}

async fn the_http_auth_token_reaches_the_target_and_nothing_it_leaves_behind(db: TestDb) {
    const TOKEN: &str = "bearer-token-5e8f1a";
    let server = guarded_server(TOKEN).await;
    let ws = Workspace::on(db, PLUGINS);
    ws.config(&format!(
        "{}checks:
  - id: api
    strategy:
      plugin: http
      config: {{baseUrl: 'http://{server}', auth: {{bearer: '${{{{ secrets.API_TOKEN }}}}'}}}}
    network: {{allow: ['127.0.0.1/32']}}
    collectors:
      - plugin: request
        config: {{url: /private}}
        assertions: [{{field: statusCode, operator: equals, value: 200}}]
assignments:
  - {{system: shop, check: api, environments: [staging]}}
",
        envs("127.0.0.1:1", "127.0.0.1:1")
    ));
    let (code, reports, out) = ws.run(
        &[],
        &[
            ("CHECKHOST_SECRET_API_TOKEN", TOKEN),
            ("CHECKHOST_LOG", "debug"),
        ],
    );
    assert_eq!(code, Some(0), "the target accepted the token: {out}");
    assert_eq!(reports[0]["healthy"], true, "{out}");
    assert!(!out.contains(TOKEN), "token in the output or logs: {out}");
    assert_nowhere_stored(&ws, TOKEN).await;
}

fn failing_config(server: &str, thresholds: &str) -> String {
    format!(
        "{}checks:\n{}assignments:\n  - {{system: shop, check: web, environments: [staging], thresholds: {thresholds}}}\n",
        envs(server, server),
        http_check("web", "")
    )
}

async fn consecutive_thresholds_degrade_then_fail_then_recover(db: TestDb) {
    let ws = Workspace::on(db, PLUGINS);
    let bad = failing_config(
        "127.0.0.1:1",
        "{mode: consecutive, degraded: 2, unhealthy: 3}",
    );
    ws.config(&bad);
    let mut seen = Vec::new();
    for _ in 0..3 {
        ws.run(&[], &[]);
        seen.push(ws.entity("shop::staging"));
    }
    assert_eq!(seen, ["healthy", "degraded", "unhealthy"]);
    let server = servers::http().await;
    ws.config(&failing_config(
        &server.to_string(),
        "{mode: consecutive, degraded: 2, unhealthy: 3}",
    ));
    let (code, _, out) = ws.run(&[], &[]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(ws.entity("shop::staging"), "healthy");
    let kinds: Vec<String> = ws.status()["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["entityId"] == "shop::staging")
        .map(|t| t["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        ["recovery", "escalation", "escalation"],
        "newest first"
    );
}

async fn window_thresholds_count_failures_in_the_last_runs(db: TestDb) {
    let server = servers::http().await;
    let ws = Workspace::on(db, PLUGINS);
    let window = "{mode: window, size: 4, degraded: 2, unhealthy: 3}";
    let good = failing_config(&server.to_string(), window);
    let bad = failing_config("127.0.0.1:1", window);
    let mut seen = Vec::new();
    for cfg in [&bad, &good, &bad, &bad] {
        ws.config(cfg);
        ws.run(&[], &[]);
        seen.push(ws.entity("shop::staging"));
    }
    assert_eq!(seen, ["healthy", "healthy", "degraded", "unhealthy"]);
}

async fn the_first_unhealthy_run_is_a_transition_from_healthy(db: TestDb) {
    let ws = Workspace::on(db, PLUGINS);
    ws.config(&failing_config(
        "127.0.0.1:1",
        "{mode: consecutive, degraded: 1, unhealthy: 1}",
    ));
    ws.run(&[], &[]);
    let transitions = ws.status()["transitions"].clone();
    let mut entities: Vec<(String, String, String)> = transitions
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["entityId"].as_str().unwrap().into(),
                t["from"].as_str().unwrap().into(),
                t["to"].as_str().unwrap().into(),
            )
        })
        .collect();
    entities.sort();
    assert_eq!(
        entities,
        [
            (
                "shop".to_string(),
                "healthy".to_string(),
                "unhealthy".to_string()
            ),
            (
                "shop::staging".to_string(),
                "healthy".to_string(),
                "unhealthy".to_string()
            )
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_stored_config_is_migrated_before_render() {
    let server = servers::http().await;
    let ws = Workspace::new(PLUGINS);
    ws.config(&format!(
        "{}checks:
  - id: legacy
    strategy: {{plugin: http, config: {{url: '{{{{ environment.baseUrl }}}}', method: GET, timeout: 5}}}}
    network: {{allow: ['127.0.0.0/8']}}
    collectors: [{{plugin: request, config: {{url: /ok}}, assertions: [{{field: statusCode, operator: equals, value: 200}}]}}]
assignments:
  - {{system: shop, check: legacy, environments: [staging]}}
",
        envs(&server.to_string(), &server.to_string())
    ));
    let (code, reports, out) = ws.run(&[], &[]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(reports[0]["healthy"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_sets_the_memory_cap_of_its_guests() {
    let ws = Workspace::new(PLUGINS);
    ws.config(&format!(
        "{}checks:
  - id: hungry
    memoryMib: 16
    strategy: {{plugin: noop}}
    collectors: [{{plugin: hostile, config: {{mode: memory}}}}]
assignments:
  - {{system: shop, check: hungry, environments: [staging]}}
",
        envs("127.0.0.1:1", "127.0.0.1:1")
    ));
    let (code, reports, out) = ws.run(&[], &[]);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(reports[0]["error"], "hostile: memory limit 16 MiB exceeded");
}

/// Four `checkhost run` processes at once on one database, all failing the
/// same entity: exactly one transition per entity, and nobody sees the
/// database locked.
async fn four_processes_flipping_one_entity_write_one_transition(db: TestDb) {
    let ws = Workspace::on(db, PLUGINS);
    ws.config(&failing_config(
        "127.0.0.1:1",
        "{mode: consecutive, degraded: 1, unhealthy: 1}",
    ));
    let runs: Vec<_> = (0..4).map(|_| ws.spawn_run()).collect();
    for child in runs {
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(!text.contains("locked"), "{text}");
    }
    assert_eq!(ws.db.count("SELECT COUNT(*) FROM runs").await, 4);
    for entity in ["shop", "shop::staging"] {
        let sql = format!("SELECT COUNT(*) FROM transitions WHERE entity_id = '{entity}'");
        assert_eq!(ws.db.count(&sql).await, 1, "{entity}");
    }
}

/// A write that fails mid-batch (a full disk, simulated by a trigger that
/// refuses aggregate rows after the run rows went in) leaves nothing of the
/// batch behind, and `run` says the runs were not persisted.
async fn a_failed_write_keeps_nothing_of_its_batch_and_says_so(db: TestDb) {
    let server = servers::http().await;
    let ws = Workspace::on(db, PLUGINS);
    ws.config(&failing_config(
        &server.to_string(),
        "{mode: consecutive, degraded: 1, unhealthy: 1}",
    ));
    let (code, _, out) = ws.run(&[], &[]);
    assert_eq!(code, Some(0), "{out}");
    let refuse = if ws.db.engine() == "sqlite" {
        "CREATE TRIGGER refuse BEFORE INSERT ON aggregates_hourly
         BEGIN SELECT RAISE(ABORT, 'database or disk is full (simulated)'); END;"
    } else {
        "CREATE FUNCTION refuse() RETURNS trigger AS $$
         BEGIN RAISE EXCEPTION 'database or disk is full (simulated)'; END $$ LANGUAGE plpgsql;
         CREATE TRIGGER refuse BEFORE INSERT ON aggregates_hourly
         FOR EACH ROW EXECUTE FUNCTION refuse();"
    };
    ws.db.execute(refuse).await;
    let (code, _, out) = ws.run(&[], &[]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("runs were not persisted"), "{out}");
    assert!(out.contains("disk is full (simulated)"), "{out}");
    assert_eq!(ws.db.count("SELECT COUNT(*) FROM runs").await, 1);
}

#[test]
fn an_unreachable_database_is_named_and_exits_2() {
    let ws = Workspace::new(PLUGINS);
    ws.config(&failing_config("127.0.0.1:1", "{mode: consecutive}"));
    let url = "postgres://checkhost@127.0.0.1:1/nowhere";
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_checkhost"))
        .args(["status", "--database", url])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(url), "{stderr}");
}

/// A database password given as a secret reaches MariaDB through the
/// `mysql` strategy's x-secret field, and a wrong one fails the run by name;
/// neither is in the output, the logs or anything stored.
#[tokio::test]
async fn a_database_password_secret_logs_in_and_nothing_it_leaves_behind() {
    const PASSWORD: &str = "pw-7c41e9b2-secret";
    const WRONG: &str = "pw-wrong-0d93aa";
    let Some(svc) = services::service("CHECKHOST_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")
    else {
        return;
    };
    let account = "'checkhost_secret'@'127.0.0.1'";
    let setup = Probe::new(
        "mysql",
        serde_json::json!({"host": svc.host, "port": svc.port, "username": svc.user.as_deref().unwrap_or("root"), "password": svc.password}),
    )
    .await
    .collector("service", serde_json::json!({"query": format!("CREATE USER IF NOT EXISTS {account} IDENTIFIED BY '{PASSWORD}'")}))
    .await
    .collector("service", serde_json::json!({"query": format!("ALTER USER {account} IDENTIFIED BY '{PASSWORD}'")}))
    .await
    .run()
    .await;
    assert_eq!(setup.error(), None, "{setup:?}");
    assert!(
        setup.collectors.iter().all(|c| c.result["ok"] == true),
        "{setup:?}"
    );

    let ws = Workspace::new(&["mysql", "service"]);
    ws.config(&format!(
        "{}checks:
  - id: db
    strategy:
      plugin: mysql
      config: {{host: {host}, port: {port}, username: checkhost_secret, password: '${{{{ secrets.DB_PASSWORD }}}}'}}
    network: {{allow: ['{host}:{port}']}}
    collectors:
      - plugin: service
        config: {{query: 'SELECT CURRENT_USER()'}}
        assertions: [{{field: ok, operator: isTrue}}]
assignments:
  - {{system: shop, check: db, environments: []}}
",
        envs("127.0.0.1:1", "127.0.0.1:1"),
        host = svc.host,
        port = svc.port,
    ));
    let debug = ("CHECKHOST_LOG", "debug");
    let (code, reports, out) = ws.run(&[], &[("CHECKHOST_SECRET_DB_PASSWORD", PASSWORD), debug]);
    assert_eq!(code, Some(0), "MariaDB accepted the password: {out}");
    assert_eq!(reports[0]["healthy"], true, "{out}");
    assert!(
        !out.contains(PASSWORD),
        "password in the output or logs: {out}"
    );

    let (code, reports, out) = ws.run(&[], &[("CHECKHOST_SECRET_DB_PASSWORD", WRONG), debug]);
    assert_eq!(code, Some(1), "{out}");
    let error = reports[0].to_string();
    assert!(
        error.contains("authentication failed for user `checkhost_secret`"),
        "{error}"
    );
    assert!(
        !out.contains(WRONG),
        "password in the output or logs: {out}"
    );
    assert_nowhere_stored(&ws, PASSWORD).await;
    assert_nowhere_stored(&ws, WRONG).await;
}

/// A plugin folder with a file that does not load, and a check whose
/// migration hangs: `run` fails exactly those checks, by name and within
/// the check's timeout, and runs the others; `validate` reports both.
#[test]
fn a_broken_plugin_or_a_hanging_migration_fails_only_its_own_checks() {
    let ws = Workspace::new(PLUGINS);
    std::fs::write(ws.plugins.path().join("broken.wasm"), b"not wasm at all").unwrap();
    ws.config(
        "systems: [{id: shop}]
checks:
  - id: fine
    strategy: {plugin: noop}
    collectors: [{plugin: hostile, config: {mode: echo, target: ok}}]
  - id: hangs
    timeout: 700ms
    strategy: {plugin: noop}
    collectors: [{plugin: hostile, config: {mode: migrate-hang}}]
  - id: orphan
    strategy: {plugin: broken}
assignments:
  - {system: shop, check: fine}
  - {system: shop, check: hangs}
  - {system: shop, check: orphan}
",
    );
    let started = std::time::Instant::now();
    let (code, reports, out) = ws.run(&[], &[]);
    assert_eq!(code, Some(1), "unhealthy runs, not a refused config: {out}");
    let by_check: std::collections::BTreeMap<&str, &Value> = reports
        .as_array()
        .unwrap_or_else(|| panic!("{out}"))
        .iter()
        .map(|r| (r["check"].as_str().unwrap(), r))
        .collect();
    assert_eq!(by_check["fine"]["healthy"], true, "{out}");
    assert_eq!(by_check["hangs"]["healthy"], false);
    assert_eq!(
        by_check["hangs"]["error"],
        "plugin `hostile` did not finish migrating its config within 700 ms"
    );
    assert_eq!(by_check["orphan"]["healthy"], false);
    let orphan = by_check["orphan"]["error"].as_str().unwrap();
    assert!(
        orphan.starts_with("strategy `broken` did not load: ")
            && orphan.contains("broken.wasm: not a WebAssembly file"),
        "{orphan}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "safety net"
    );

    let config = ws.dir.path().join("checkhost.yaml");
    let out = support::checkhost(&[
        "validate",
        config.to_str().unwrap(),
        "--plugins",
        ws.plugins.path().to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("broken.wasm: not a WebAssembly file"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "checks[hangs].collectors[0].config: plugin `hostile` did not finish migrating"
        ),
        "{stdout}"
    );
}

/// `run` loads only the plugin files its selected checks use, once it
/// knows what each file provides; a file it skips is read when a check
/// needs it.
#[test]
fn run_loads_only_the_plugins_its_selected_checks_use() {
    let ws = Workspace::new(PLUGINS);
    ws.config(
        "systems: [{id: shop}]
checks:
  - id: tick
    strategy: {plugin: noop}
    collectors: [{plugin: hostile, config: {mode: noop}}]
  - id: web
    strategy: {plugin: http, config: {baseUrl: 'http://127.0.0.1:9'}}
    network: {allow: ['127.0.0.1/32']}
    collectors: [{plugin: request, config: {url: /}}]
  - id: odd
    strategy: {plugin: http, config: {baseUrl: 5}}
    collectors: [{plugin: request, config: {url: /}}]
assignments:
  - {system: shop, check: tick}
  - {system: shop, check: web}
  - {system: shop, check: odd}
",
    );
    let debug = [("CHECKHOST_LOG", "checkhost::pipeline=debug")];
    let skipped = |out: &str| {
        out.lines()
            .find(|l| l.contains("left unloaded"))
            .unwrap_or("")
            .to_string()
    };
    // The first run learns what every file provides.
    let (code, _, out) = ws.run(&["--check", "tick"], &debug);
    assert_eq!(code, Some(0), "{out}");
    let (code, _, out) = ws.run(&["--check", "tick"], &debug);
    assert_eq!(code, Some(0), "{out}");
    let line = skipped(&out);
    assert!(
        line.contains("strategy `http`") && line.contains("collector `request`"),
        "the second run leaves the web check's plugins alone: {out}"
    );
    assert!(
        !line.contains("`noop`") && !line.contains("`hostile`"),
        "{line}"
    );
    // `odd` was not selected, so its plugins' schemas did not judge it,
    // whether they were loaded (the first run) or not; selected, they do.
    let (code, _, out) = ws.run(&["--check", "odd"], &[]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("checks[odd].strategy.config.baseUrl"), "{out}");

    // The same size and time, other bytes: `tick` never reads the file...
    let http = ws.plugins.path().join("http.wasm");
    let modified = std::fs::metadata(&http).unwrap().modified().unwrap();
    let size = std::fs::metadata(&http).unwrap().len() as usize;
    std::fs::write(&http, vec![b'x'; size]).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&http)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    let (code, reports, out) = ws.run(&["--check", "tick"], &debug);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(reports[0]["healthy"], true, "{out}");
    // ...and `web`, which needs it, finds it broken.
    let (code, reports, out) = ws.run(&["--check", "web"], &[]);
    assert_eq!(code, Some(1), "{out}");
    let error = reports[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("http.wasm: not a WebAssembly file"), "{out}");
}

/// A target that remembers each request's head: `/ok` answers 200, any
/// other path 500.
async fn recording_server() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let status = if head.starts_with("GET /ok ") {
                    "200 OK"
                } else {
                    "500 Internal Server Error"
                };
                seen.lock().unwrap().push(head);
                let reply = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    (addr, heads)
}

fn span_named<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no span `{name}` in {spans:#?}"))
}

/// A run's trace reaches a real OTLP receiver (HTTP and gRPC) phase by
/// phase, with the run's attributes and no secret; its HTTP request
/// carries the trace to the target; sampling keeps every failed run; an
/// endpoint that is down changes nothing about the runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_traced_phase_by_phase_and_its_request_carries_the_trace() {
    let Some(mut receiver) = support::otlp::Receiver::start() else {
        return;
    };
    const TOKEN: &str = "otlp-canary-7c1d9e";
    let (target, heads) = recording_server().await;
    let ws = Workspace::new(PLUGINS);
    let check = |id: &str, path: &str, propagate: bool| {
        format!(
            "  - id: {id}
    propagateTrace: {propagate}
    strategy: {{plugin: http, config: {{baseUrl: 'http://{target}', auth: {{bearer: '${{{{ secrets.API_TOKEN }}}}'}}}}}}
    network: {{allow: ['127.0.0.0/8']}}
    collectors:
      - plugin: request
        config: {{url: {path}}}
        assertions: [{{field: statusCode, operator: equals, value: 200}}]
"
        )
    };
    ws.config(&format!(
        "environments: [{{id: staging}}]
systems: [{{id: shop, environments: [staging]}}]
checks:
{}{}  - id: leaky
    strategy: {{plugin: http, config: {{baseUrl: 'http://{target}'}}}}
    network: {{allow: ['127.0.0.0/8']}}
    collectors:
      - plugin: hostile
        config: {{mode: echo-secret, name: TOKEN}}
        secretEnv: {{TOKEN: '${{{{ secrets.API_TOKEN }}}}'}}
assignments:
  - {{system: shop, check: api}}
  - {{system: shop, check: broken}}
  - {{system: shop, check: leaky}}
",
        check("api", "/ok", true),
        check("broken", "/fail", false)
    ));
    let endpoint = receiver.http_endpoint();
    let env = |extra: &[(&'static str, &str)]| -> Vec<(String, String)> {
        [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("CHECKHOST_SECRET_API_TOKEN", TOKEN),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let run = |env: Vec<(String, String)>| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (code, reports, out) = ws.run(&[], &env);
        assert_eq!(
            code,
            Some(1),
            "`broken` and `leaky` fail, `api` passes: {out}"
        );
        let by_check = |id: &str| -> Value {
            reports
                .as_array()
                .unwrap_or_else(|| panic!("reports: {out}"))
                .iter()
                .find(|r| r["check"] == id)
                .cloned()
                .unwrap()
        };
        (by_check("api"), by_check("broken"))
    };

    // Sampling off: the failed run is traced all the same, the healthy one not.
    let (api, broken) = run(env(&[("OTEL_TRACES_SAMPLER", "always_off")]));
    let spans = receiver.wait_for("the failed runs' persist spans", |s| {
        s.iter().filter(|s| s["name"] == "persist").count() == 2
    });
    assert!(api.get("traceId").is_none(), "{api}");
    assert_eq!(
        broken["traceId"],
        span_named(&spans, "run broken")["traceId"]
    );
    let leaky = span_named(&spans, "run leaky")["traceId"].clone();
    assert!(
        spans
            .iter()
            .all(|s| s["traceId"] == broken["traceId"] || s["traceId"] == leaky),
        "only the failed runs' traces: {spans:#?}"
    );
    let head = heads.lock().unwrap().clone();
    assert!(
        head.iter()
            .filter(|h| h.starts_with("GET /fail "))
            .all(|h| !h.to_lowercase().contains("traceparent")),
        "`broken` does not propagate its trace: {head:?}"
    );
    receiver.clear();
    heads.lock().unwrap().clear();

    // Always on (the default): every run, phase by phase.
    let (api, _) = run(env(&[(
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "x-tenant=blue",
    )]));
    let trace = api["traceId"]
        .as_str()
        .expect("a traced run has a trace id")
        .to_string();
    let all = receiver.wait_for("both runs' persist spans", |s| {
        s.iter().filter(|s| s["name"] == "persist").count() == 3
    });
    let spans: Vec<Value> = all.into_iter().filter(|s| s["traceId"] == trace).collect();
    let root = span_named(&spans, "run api");
    assert_eq!(root["parentId"], "", "the run is the trace's root");
    assert_eq!(root["service"], "checkhost");
    assert_eq!(root["transport"], "http");
    assert_eq!(root["tenant"], "blue", "OTEL_EXPORTER_OTLP_TRACES_HEADERS");
    let attributes = &root["attributes"];
    assert_eq!(attributes["checkhost.system"], "shop");
    assert_eq!(attributes["checkhost.check"], "api");
    assert_eq!(attributes["checkhost.environment"], "staging");
    assert_eq!(attributes["checkhost.outcome"], "healthy");
    assert_eq!(attributes["checkhost.run_id"], api["runId"]);
    assert_eq!(attributes["checkhost.strategy"], "http");
    assert_eq!(
        attributes["checkhost.collectors"],
        serde_json::json!(["request"])
    );
    for digest in [
        &attributes["checkhost.strategy.digest"],
        &attributes["checkhost.collectors.digests"][0],
    ] {
        assert!(
            digest.as_str().is_some_and(|d| d.starts_with("sha256:")),
            "{attributes}"
        );
    }
    assert_eq!(root["status"]["code"], 1, "OK");
    let root_id = root["spanId"].clone();
    let collect = span_named(&spans, "collect request");
    for child in [
        "queue",
        "instantiate http",
        "connect http",
        "collect request",
        "assertions",
        "persist",
    ] {
        assert_eq!(
            span_named(&spans, child)["parentId"],
            root_id,
            "{child} is the run's"
        );
    }
    assert_eq!(
        span_named(&spans, "instantiate request")["parentId"],
        collect["spanId"],
        "a collector's instantiation is its own"
    );
    // The strategy's own timings of its first answer ride on `connect`.
    let connect = span_named(&spans, "connect http");
    assert!(
        connect["attributes"]["checkhost.timings.wait_ms"].is_number(),
        "{connect}"
    );
    let request = span_named(&spans, "GET");
    assert_eq!(request["kind"], 3, "a client span");
    assert_eq!(
        request["parentId"], collect["spanId"],
        "sent for the collector"
    );
    assert_eq!(request["attributes"]["url.path"], "/ok");
    assert_eq!(request["attributes"]["http.response.status_code"], 200);
    assert_eq!(request["attributes"]["server.port"], target.port());
    for span in &spans {
        assert!(
            span["start"].as_u64() >= root["start"].as_u64()
                && span["end"].as_u64() <= root["end"].as_u64(),
            "{} lies within the run: {span} vs {root}",
            span["name"]
        );
    }
    let sent = heads.lock().unwrap().clone();
    let expected = format!(
        "traceparent: 00-{trace}-{}-01",
        request["spanId"].as_str().unwrap()
    );
    assert!(
        sent.iter()
            .any(|h| h.lines().any(|l| l.to_lowercase() == expected)),
        "the target saw the run's trace, parented by its request span ({expected}): {sent:?}"
    );
    let broken_root = span_named(&receiver.spans(), "run broken").clone();
    assert_eq!(
        broken_root["status"]["code"], 2,
        "a failed run's span is an error"
    );
    assert_eq!(broken_root["attributes"]["checkhost.outcome"], "unhealthy");
    // `leaky`'s collector puts the secret in its error: masked there as
    // the bearer token the requests carried is nowhere.
    let leaky = span_named(&receiver.spans(), "run leaky").clone();
    assert_eq!(leaky["status"]["code"], 2);
    assert!(
        leaky["status"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("leaking")),
        "{leaky}"
    );
    let everything = serde_json::to_string(&receiver.spans()).unwrap();
    assert!(!everything.contains(TOKEN), "a secret reached a span");

    // gRPC carries the same spans.
    receiver.clear();
    let grpc = receiver.grpc_endpoint();
    run(env(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", grpc.as_str()),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=blue%20team"),
    ]));
    let spans = receiver.wait_for("the three runs over gRPC", |s| {
        s.iter().filter(|s| s["name"] == "persist").count() == 3
    });
    assert!(
        spans
            .iter()
            .all(|s| s["transport"] == "grpc" && s["tenant"] == "blue team"),
        "{spans:#?}"
    );

    // An endpoint that is down: the runs are judged and stored as ever.
    receiver.stop();
    let (api, broken) = run(env(&[]));
    assert_eq!(
        (api["healthy"].clone(), broken["healthy"].clone()),
        (Value::Bool(true), Value::Bool(false))
    );
    assert!(api["runId"].as_i64().is_some() && broken["runId"].as_i64().is_some());
}

/// `checkhost bench cold-start` times `run` of one check in fresh processes
/// with every built guest in the folder and with only the two it uses, and
/// prints both, their ratio and the verdict against 50 ms.
#[test]
fn bench_cold_start_times_run_with_all_guests_and_with_only_those_used() {
    let http = support::guest("http");
    let guests = http.parent().expect("the guests folder");
    let files = std::fs::read_dir(guests)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "wasm"))
        })
        .count();
    let (code, out) = support::checkhost_text(&[
        "bench".as_ref(),
        "cold-start".as_ref(),
        "--guests".as_ref(),
        guests.as_os_str(),
        "--runs".as_ref(),
        "1".as_ref(),
    ]);
    assert_eq!(code, Some(0), "{out}");
    let numbers = |prefix: &str| -> Vec<f64> {
        let line = out
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line `{prefix}…` in:\n{out}"));
        line[prefix.len()..]
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter_map(|n| n.parse().ok())
            .collect()
    };
    let all = numbers(&format!("all guests ({files} files)"));
    let used = numbers("only the two plugins used");
    for row in [&all, &used] {
        assert_eq!(row.len(), 3, "wall, CPU, peak RSS: {out}");
        assert!(row.iter().all(|n| *n > 0.0), "{out}");
    }
    let ratio = numbers("ratio all guests / only the two used: wall ");
    assert!((ratio[0] - all[0] / used[0]).abs() < 0.02, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("cold start with all guests: ")
                && (l.ends_with(": met)") || l.ends_with(": not met)"))),
        "{out}"
    );
}
