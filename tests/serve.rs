//! `checkhost serve` as operators run it: the real binary on a real SQLite
//! file, driven by signals, file edits and kill -9.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::Workspace;
use support::daemon::Daemon;
use support::db::TestDb;

const PLUGINS: &[&str] = &["noop", "hostile"];

/// `systems` systems, each with one no-op check every `interval`; `failing`
/// makes the collector fail (so every slice has a transition): the hostile
/// guest answers an unknown mode with a transport error.
fn config(systems: usize, interval: &str, failing: bool) -> String {
    let mode = if failing { "fail" } else { "noop" };
    let mut yaml = format!(
        "checks:
  - id: tick
    interval: {interval}
    strategy: {{plugin: noop}}
    collectors: [{{plugin: hostile, config: {{mode: {mode}}}}}]
systems:
"
    );
    for i in 0..systems {
        yaml.push_str(&format!("  - {{id: s{i}}}\n"));
    }
    yaml.push_str("assignments:\n");
    for i in 0..systems {
        yaml.push_str(&format!(
            "  - {{system: s{i}, check: tick, thresholds: {{mode: consecutive, degraded: 1, unhealthy: 1}}}}\n"
        ));
    }
    yaml
}

/// Every run the daemon reported is in the database.
async fn assert_all_stored(ws: &Workspace, reported: &[i64]) {
    let ids: Vec<String> = reported.iter().map(i64::to_string).collect();
    let stored = ws
        .db
        .count(&format!(
            "SELECT COUNT(*) FROM runs WHERE id IN ({})",
            ids.join(",")
        ))
        .await;
    assert_eq!(stored, reported.len() as i64, "a reported run was lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_on_the_interval_with_metrics_and_stops_cleanly_on_sigterm() {
    let ws = Workspace::new(PLUGINS);
    ws.config(&config(3, "500ms", false));
    let daemon = Daemon::start(&ws, &[]);
    daemon.wait_for(Duration::from_secs(20), "nine runs", |d| {
        d.reported_runs().len() >= 9
    });
    let ready = daemon.get("/readyz").unwrap();
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    let metrics = daemon.get("/metrics").unwrap();
    for name in [
        "checkhost_runs_total{check=\"tick\",plugin=\"noop\",outcome=\"healthy\"}",
        "checkhost_scheduler_lag_seconds_bucket",
        "checkhost_run_duration_seconds_count",
        "checkhost_guest_instantiate_seconds_count",
        "checkhost_guest_memory_peak_bytes_bucket",
        "checkhost_guest_cpu_seconds_count",
        "checkhost_runs_in_flight",
        "checkhost_writer_queue_depth",
        "checkhost_batch_commit_seconds_count",
        "checkhost_reload_failures_total 0",
        "checkhost_slices 3",
        "checkhost_guest_pool_memories_in_use",
        "checkhost_guest_pool_warm_resident_bytes",
        "checkhost_guest_memory_budget_bytes 100663296",
        "checkhost_guest_memory_budget_in_use_bytes",
        "checkhost_guest_runs_waiting",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    let warm: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("checkhost_guest_pool_warm_memories "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no warm memory gauge:\n{metrics}"));
    assert!(
        warm >= 1,
        "finished runs leave their slots warm:\n{metrics}"
    );
    daemon.signal("TERM");
    let (code, log) = daemon.wait();
    assert_eq!(code, Some(0), "{}", log.join("\n"));
    let reported = log.iter().filter(|l| l.contains("run recorded")).count() as i64;
    assert_eq!(ws.db.count("SELECT COUNT(*) FROM runs").await, reported);
    // Each slice keeps its grid: no two runs of a slice closer than 400 ms.
    let gaps = ws
        .db
        .count(
            "SELECT COUNT(*) FROM runs a JOIN runs b ON a.slice_id = b.slice_id AND b.id > a.id
             AND (b.id >> 20) - (a.id >> 20) < 400",
        )
        .await;
    assert_eq!(gaps, 0, "a slice ran twice within one interval");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_edit_is_applied_and_a_broken_one_is_refused_while_the_old_one_runs() {
    let ws = Workspace::new(PLUGINS);
    ws.config(&config(1, "300ms", false));
    let daemon = Daemon::start(&ws, &[]);
    daemon.wait_for(Duration::from_secs(20), "a first run", |d| {
        !d.reported_runs().is_empty()
    });
    ws.config(&config(2, "300ms", false));
    daemon.wait_for(Duration::from_secs(20), "the new system to run", |d| {
        d.log()
            .iter()
            .any(|l| l.contains("run recorded") && l.contains("\"system\":\"s1\""))
    });
    ws.config(&config(2, "300ms", false).replace("plugin: noop", "plugin: nowhere"));
    daemon.wait_for(Duration::from_secs(20), "the refusal", |d| {
        d.log().iter().any(|l| l.contains("reload refused"))
    });
    let refusal = daemon
        .log()
        .into_iter()
        .find(|l| l.contains("reload refused"))
        .unwrap();
    assert!(
        refusal.contains("checks[tick].strategy.plugin"),
        "the place is named: {refusal}"
    );
    let metrics = daemon.get("/metrics").unwrap();
    assert!(
        metrics.contains("checkhost_reload_failures_total 1"),
        "{metrics}"
    );
    let before = daemon.reported_runs().len();
    daemon.wait_for(Duration::from_secs(20), "runs to go on", |d| {
        d.reported_runs().len() >= before + 4
    });
    daemon.signal("HUP");
    daemon.wait_for(Duration::from_secs(20), "a second refusal on SIGHUP", |d| {
        d.get("/metrics")
            .is_some_and(|m| m.contains("checkhost_reload_failures_total 2"))
    });
}

/// kill -9 under load, then a restart: every run the daemon reported is in
/// the database, no transition is written twice, and every slice runs
/// again within one interval of the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_reported_run_and_duplicates_no_transition() {
    let ws = Workspace::new(PLUGINS);
    ws.config(&config(40, "1s", true));
    let daemon = Daemon::start(&ws, &[]);
    daemon.wait_for(Duration::from_secs(30), "two rounds", |d| {
        d.reported_runs().len() >= 80
    });
    daemon.signal("KILL");
    let reported = daemon.reported_runs();
    let (code, _) = daemon.wait();
    assert_eq!(code, None, "killed by a signal");
    assert_all_stored(&ws, &reported).await;

    let restarted_at = checkhost::clock::now_ms();
    let daemon = Daemon::start(&ws, &[]);
    let since_restart = format!("FROM runs WHERE (id >> 20) >= {restarted_at}");
    let started = Instant::now();
    while ws
        .db
        .count(&format!("SELECT COUNT(DISTINCT slice_id) {since_restart}"))
        .await
        < 40
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "slices did not resume"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first_after = ws
        .db
        .count(&format!(
            "SELECT MAX(m) FROM (SELECT MIN(id >> 20) - {restarted_at} AS m {since_restart}
             GROUP BY slice_id) AS firsts"
        ))
        .await;
    assert!(
        first_after <= 1_000 + 5_000,
        "a slice waited {first_after} ms after the restart"
    );
    daemon.signal("TERM");
    let (code, log) = daemon.wait();
    assert_eq!(code, Some(0), "{}", log.join("\n"));
    assert_eq!(
        ws.db
            .count("SELECT COUNT(*) FROM transitions WHERE entity_id LIKE 's%'")
            .await,
        40,
        "each failing system changed once, whatever the kill"
    );
}

#[test]
fn an_invalid_config_or_a_taken_port_stops_the_start_with_exit_2() {
    let ws = Workspace::new(PLUGINS);
    ws.config(&config(1, "1s", false).replace("plugin: noop", "plugin: nowhere"));
    let out = Command::new(env!("CARGO_BIN_EXE_checkhost"))
        .arg("serve")
        .arg(ws.dir.path().join("checkhost.yaml"))
        .arg("--plugins")
        .arg(ws.plugins.path())
        .args(["--database", &ws.db_url()])
        .env("CHECKHOST_CACHE_DIR", support::cache_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("checks[tick].strategy.plugin"), "{stderr}");

    ws.config(&config(1, "1s", false));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_checkhost"))
        .arg("serve")
        .arg(ws.dir.path().join("checkhost.yaml"))
        .arg("--plugins")
        .arg(ws.plugins.path())
        .args(["--database", &ws.db_url(), "--listen", &address])
        .env("CHECKHOST_CACHE_DIR", support::cache_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&address), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_no_longer_loads_keeps_its_previous_build() {
    let ws = Workspace::new(PLUGINS);
    ws.config(&config(1, "300ms", false));
    let daemon = Daemon::start(&ws, &[]);
    daemon.wait_for(Duration::from_secs(20), "a first run", |d| {
        !d.reported_runs().is_empty()
    });
    std::fs::write(ws.plugins.path().join("hostile.wasm"), b"not a component").unwrap();
    daemon.wait_for(Duration::from_secs(20), "the failed load", |d| {
        d.log()
            .iter()
            .any(|l| l.contains("plugin failed to load on reload") && l.contains("hostile.wasm"))
    });
    let before = daemon.reported_runs().len();
    daemon.wait_for(Duration::from_secs(20), "runs on the previous build", |d| {
        d.reported_runs().len() >= before + 3
    });
    assert!(
        daemon
            .log()
            .iter()
            .filter(|l| l.contains("run recorded"))
            .all(|l| l.contains("\"healthy\":true")),
        "runs stay healthy"
    );
}

/// Runs SQL as the test database's administrator.
async fn admin_sql(admin_url: String, sql: String) {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut c)
        .await
        .unwrap();
}

/// Stops the daemon cleanly and checks that no batch was dropped and every
/// run it reported is stored.
async fn stop_with_nothing_dropped(ws: &Workspace, daemon: Daemon) {
    daemon.signal("TERM");
    let reported = daemon.reported_runs();
    let (code, log) = daemon.wait();
    assert_eq!(code, Some(0), "{}", log.join("\n"));
    assert!(
        !log.iter().any(|l| l.contains("not persisted")),
        "no run was dropped: {}",
        log.join("\n")
    );
    assert_all_stored(ws, &reported).await;
}

/// PostgreSQL stops taking connections while the daemon runs: /readyz
/// turns red, runs wait, and when the database is back the daemon recovers
/// by itself with every reported run stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_waits_out_a_database_outage_and_recovers() {
    let Some(db) = support::db::TestDb::postgres().await else {
        return;
    };
    let support::db::TestDb::Postgres { admin_url, name } = &db else {
        unreachable!()
    };
    let (admin_url, name) = (admin_url.clone(), name.clone());
    let ws = Workspace::on(db, PLUGINS);
    ws.config(&config(5, "300ms", false));
    let daemon = Daemon::start(&ws, &[]);
    daemon.wait_for(Duration::from_secs(20), "first runs", |d| {
        d.reported_runs().len() >= 5
    });
    let admin = |sql: String| admin_sql(admin_url.clone(), sql);
    admin(format!(
        "ALTER DATABASE {name} ALLOW_CONNECTIONS false;
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';"
    ))
    .await;
    daemon.wait_for(Duration::from_secs(20), "/readyz to turn red", |d| {
        d.get("/readyz")
            .is_some_and(|r| r.starts_with("HTTP/1.1 503"))
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let during = daemon.reported_runs().len();
    admin(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).await;
    daemon.wait_for(Duration::from_secs(30), "recovery", |d| {
        d.get("/readyz")
            .is_some_and(|r| r.starts_with("HTTP/1.1 200"))
            && d.reported_runs().len() >= during + 10
    });
    stop_with_nothing_dropped(&ws, daemon).await;
}

/// PostgreSQL turns read-only under the daemon: writes are held, not
/// dropped, `/readyz` and a metric say `read-only`, and once it is writable
/// again every reported run is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_holds_runs_until_it_is_writable() {
    let Some(db) = support::db::TestDb::postgres().await else {
        return;
    };
    let support::db::TestDb::Postgres { admin_url, name } = &db else {
        unreachable!()
    };
    let (admin_url, name) = (admin_url.clone(), name.clone());
    let ws = Workspace::on(db, PLUGINS);
    ws.config(&config(5, "200ms", false));
    let daemon = Daemon::start(&ws, &[]);
    daemon.wait_for(Duration::from_secs(20), "first runs", |d| {
        d.reported_runs().len() >= 5
    });
    let admin = |sql: String| admin_sql(admin_url.clone(), sql);
    // New sessions start read-only; the daemon's are ended, so it reconnects.
    admin(format!(
        "ALTER DATABASE {name} SET default_transaction_read_only = on;
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';"
    ))
    .await;
    daemon.wait_for(Duration::from_secs(20), "/readyz to say read-only", |d| {
        d.get("/readyz")
            .is_some_and(|r| r.starts_with("HTTP/1.1 503") && r.contains("(read-only)"))
    });
    let metrics = daemon.get("/metrics").unwrap_or_default();
    assert!(
        metrics.contains(r#"checkhost_store_write_failing{reason="read-only"} 1"#),
        "{metrics}"
    );
    let during = daemon.reported_runs().len();
    admin(format!(
        "ALTER DATABASE {name} RESET default_transaction_read_only;
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';"
    ))
    .await;
    daemon.wait_for(Duration::from_secs(30), "recovery", |d| {
        d.get("/readyz")
            .is_some_and(|r| r.starts_with("HTTP/1.1 200"))
            && d.reported_runs().len() >= during + 10
    });
    stop_with_nothing_dropped(&ws, daemon).await;
}

/// A small tmpfs mounted over a folder for one test, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// `None` (after a loud message) where mounting is not permitted,
    /// except under `CI=true`, where the test must run.
    fn mount(dir: &std::path::Path, size: &str) -> Option<Tmpfs> {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status();
        if status.is_ok_and(|s| s.success()) {
            return Some(Tmpfs(dir.to_path_buf()));
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "cannot mount a tmpfs at {} under CI",
            dir.display()
        );
        eprintln!(
            "SKIPPED: cannot mount a tmpfs at {} (needs root): the full-disk test did not run",
            dir.display()
        );
        None
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system under `dir` until it refuses another byte.
fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).and_then(|()| file.flush()).is_ok() {}
    let small = [0u8; 512];
    while file
        .write_all(&small)
        .and_then(|()| file.sync_all())
        .is_ok()
    {}
    path
}

fn status_line(response: &Option<String>) -> &str {
    response
        .as_deref()
        .and_then(|r| r.lines().next())
        .unwrap_or("")
}

/// A full disk never drops a batch: the writer holds it (and, through its
/// bounded queue, what comes behind it), `/readyz` turns red and a metric
/// says why; once there is room again every run is written, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_holds_runs_until_there_is_room_again() {
    let ws = Workspace::new(PLUGINS);
    let support::db::TestDb::Sqlite(db_dir) = &ws.db else {
        unreachable!("Workspace::new is on SQLite")
    };
    let Some(_tmpfs) = Tmpfs::mount(db_dir.path(), "4m") else {
        return;
    };
    ws.config(&config(20, "100ms", false));
    let daemon = Daemon::start(&ws, &[]);
    daemon.wait_for(Duration::from_secs(20), "first runs", |d| {
        d.reported_runs().len() >= 50
    });
    let filler = fill(db_dir.path());
    daemon.wait_for(Duration::from_secs(60), "/readyz to turn red", |d| {
        status_line(&d.get("/readyz")).contains("503")
    });
    let ready = daemon.get("/readyz").unwrap_or_default();
    assert!(
        ready.contains("database not writable (disk-full)"),
        "{ready}"
    );
    let metrics = daemon.get("/metrics").unwrap_or_default();
    assert!(
        metrics.contains(r#"checkhost_store_write_failing{reason="disk-full"} 1"#),
        "{metrics}"
    );
    let held = daemon.reported_runs().len();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        daemon.reported_runs().len(),
        held,
        "nothing is reported recorded while the disk is full"
    );

    std::fs::remove_file(filler).unwrap();
    daemon.wait_for(Duration::from_secs(60), "/readyz to turn green", |d| {
        status_line(&d.get("/readyz")).contains("200")
    });
    daemon.wait_for(Duration::from_secs(20), "runs to go on", |d| {
        d.reported_runs().len() >= held + 100
    });
    let metrics = daemon.get("/metrics").unwrap_or_default();
    assert!(
        !metrics.contains("checkhost_store_write_failing{"),
        "{metrics}"
    );
    stop_with_every_run_stored_once(&ws, daemon).await;
}

/// Stops the daemon cleanly; no batch was dropped, and the database holds
/// exactly the runs it reported over its whole life. Returns the log.
async fn stop_with_every_run_stored_once(ws: &Workspace, daemon: Daemon) -> Vec<String> {
    daemon.signal("TERM");
    let (code, log) = daemon.wait();
    assert_eq!(code, Some(0));
    assert!(
        !log.iter().any(|l| l.contains("not persisted")),
        "no batch was dropped: {:?}",
        log.iter()
            .filter(|l| l.contains("not persisted"))
            .collect::<Vec<_>>()
    );
    let reported: std::collections::BTreeSet<i64> = log
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "run recorded")
        .filter_map(|v| v["fields"]["run_id"].as_i64())
        .collect();
    let stored = ws.db.count("SELECT COUNT(*) FROM runs").await;
    assert_eq!(
        stored,
        reported.len() as i64,
        "every run reported is stored, once"
    );
    log
}

/// The SQLite file is removed under the running daemon, as a clean-up
/// script would: the next write restores it at its path with everything
/// written before, and runs go on into it. A different file put in its
/// place is never written over: writes are held (`file-replaced`) until it
/// is moved away, and then nothing held is lost either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_database_file_is_restored_and_a_replaced_one_is_left_alone() {
    let ws = Workspace::new(PLUGINS);
    let dir = ws
        .db
        .dir()
        .expect("Workspace::new is on SQLite")
        .to_path_buf();
    let file = dir.join("checkhost.db");
    ws.config(&config(5, "100ms", false));
    let daemon = Daemon::start(&ws, &[]);
    daemon.wait_for(Duration::from_secs(20), "first runs", |d| {
        d.reported_runs().len() >= 20
    });
    // The database file last: a daemon quick to restore it would find the
    // restored file's own `-wal` removed by a later step, a second removal.
    for suffix in ["-wal", "-shm", ""] {
        let _ = std::fs::remove_file(dir.join(format!("checkhost.db{suffix}")));
    }
    daemon.wait_for(Duration::from_secs(20), "the file to be restored", |_| {
        file.exists()
    });
    let restored = daemon.reported_runs().len();
    daemon.wait_for(Duration::from_secs(20), "runs after the restore", |d| {
        d.reported_runs().len() >= restored + 20
    });
    assert!(
        status_line(&daemon.get("/readyz")).contains("200"),
        "a restored file takes writes at once"
    );

    // Another database moved over the path, atomically.
    let theirs = b"an operator's own file";
    std::fs::write(dir.join("theirs.tmp"), theirs).unwrap();
    std::fs::rename(dir.join("theirs.tmp"), &file).unwrap();
    daemon.wait_for(
        Duration::from_secs(20),
        "/readyz to say file-replaced",
        |d| {
            let ready = d.get("/readyz").unwrap_or_default();
            status_line(&Some(ready.clone())).contains("503") && ready.contains("(file-replaced)")
        },
    );
    let metrics = daemon.get("/metrics").unwrap_or_default();
    assert!(
        metrics.contains(r#"checkhost_store_write_failing{reason="file-replaced"} 1"#),
        "{metrics}"
    );
    let held = daemon.reported_runs().len();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(daemon.reported_runs().len(), held, "writes are held");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        theirs,
        "their file is untouched"
    );

    std::fs::remove_file(&file).unwrap();
    daemon.wait_for(Duration::from_secs(30), "/readyz to turn green", |d| {
        status_line(&d.get("/readyz")).contains("200")
    });
    daemon.wait_for(Duration::from_secs(20), "runs to go on", |d| {
        d.reported_runs().len() >= held + 20
    });
    let log = stop_with_every_run_stored_once(&ws, daemon).await;
    let restores = log.iter().filter(|l| l.contains("restored it at")).count();
    assert_eq!(restores, 2, "each removal is restored once and logged");
}

/// A daemon that started with `checkhost.lock` never reloads without it:
/// deleting the lock must not quietly turn pinning off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_started_with_a_lock_refuses_to_reload_without_it() {
    let ws = Workspace::new(PLUGINS);
    let config = ws.config(&config(1, "300ms", false));
    let out = support::checkhost(&[
        "plugin",
        "lock",
        config.to_str().unwrap(),
        "--plugins",
        ws.plugins.path().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let daemon = Daemon::start(&ws, &[]);
    daemon.wait_for(Duration::from_secs(20), "a first run", |d| {
        !d.reported_runs().is_empty()
    });
    std::fs::remove_file(ws.dir.path().join("checkhost.lock")).unwrap();
    daemon.signal("HUP");
    daemon.wait_for(Duration::from_secs(20), "the refusal", |d| {
        d.log()
            .iter()
            .any(|l| l.contains("reload refused") && l.contains("checkhost.lock"))
    });
    let before = daemon.reported_runs().len();
    daemon.wait_for(Duration::from_secs(20), "runs to go on", |d| {
        d.reported_runs().len() >= before + 2
    });
}

/// A `checkhost probe` process, killed when dropped (a failing test too).
struct ProbeProcess(std::process::Child);

impl Drop for ProbeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `checkhost probe` process of one location talking to these servers,
/// its log kept in a file.
fn start_probe(ws: &Workspace, servers: &[&Daemon], location: &str) -> ProbeProcess {
    start_probe_with_env(ws, servers, location, &[])
}

fn start_probe_with_env(
    ws: &Workspace,
    servers: &[&Daemon],
    location: &str,
    env: &[(&str, &str)],
) -> ProbeProcess {
    let dir = ws.dir.path();
    let out = support::checkhost(&[
        "probe",
        "token",
        "create",
        "--location",
        location,
        "--database",
        &ws.db_url(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = dir.join(format!("{location}.token"));
    std::fs::write(&token, &out.stdout).unwrap();
    let log = std::fs::File::create(dir.join(format!("{location}.log"))).unwrap();
    let servers: Vec<String> = servers.iter().map(|d| d.url("")).collect();
    let child = Command::new(env!("CARGO_BIN_EXE_checkhost"))
        .args([
            "probe",
            "--server",
            &servers.join(","),
            "--location",
            location,
        ])
        .arg("--token-file")
        .arg(&token)
        .arg("--spool")
        .arg(dir.join(format!("{location}-spool.db")))
        .env("CHECKHOST_CACHE_DIR", support::cache_dir())
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("checkhost probe starts");
    ProbeProcess(child)
}

/// When each run a probe made of a location's slice was measured, in
/// order. The server's own `no-probe` runs (no measured time) are not the
/// probe's: a loaded machine can delay a probe's first heartbeat after the
/// restart past the offline window, and the server then records some.
async fn measured(ws: &Workspace, location: &str) -> Vec<i64> {
    ws.db
        .texts(&format!(
            "SELECT CAST(r.measured_at AS TEXT) FROM runs r JOIN slices s ON s.id = r.slice_id
             WHERE s.location_id = '{location}' AND s.system_id = 'shop'
               AND r.measured_at IS NOT NULL
             ORDER BY r.measured_at"
        ))
        .await
        .iter()
        .map(|t| t.parse().unwrap())
        .collect()
}

/// Three locations of one slice each, every 300 ms; no probe ever comes
/// from ap-south. In eu-west, `vault` has a check the server cannot
/// prepare (its migration fails) and one with a collector whose secret is
/// missing.
const PROBE_CONFIG: &str = "locations: [{id: eu-west}, {id: us-east}, {id: ap-south}]
probes: {heartbeat: 300ms}
checks:
  - id: tick
    interval: 300ms
    strategy: {plugin: noop}
    collectors: [{plugin: hostile, config: {mode: noop}}]
  - id: unmigratable
    interval: 300ms
    strategy: {plugin: noop}
    collectors: [{plugin: hostile, config: {mode: migrate-error}}]
  - id: locked
    interval: 300ms
    strategy: {plugin: noop}
    collectors:
      - {plugin: hostile, config: {mode: noop}, secretEnv: {T: '${{ secrets.ABSENT }}'}}
      - {plugin: hostile, config: {mode: echo, target: after}}
systems: [{id: shop}, {id: vault}]
assignments:
  - {system: shop, check: tick, locations: [eu-west, us-east, ap-south]}
  - {system: vault, check: unmigratable, locations: [eu-west], thresholds: {mode: consecutive, degraded: 1, unhealthy: 1}}
  - {system: vault, check: locked, locations: [eu-west], thresholds: {mode: consecutive, degraded: 1, unhealthy: 1}}
";

/// Each run stored once, one per interval throughout: no gap wider than
/// two intervals.
async fn assert_every_run_once(ws: &Workspace, location: &str) {
    let times = measured(ws, location).await;
    let mut unique = times.clone();
    unique.dedup();
    assert_eq!(unique.len(), times.len(), "{location}: a run stored twice");
    let widest = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        widest < 600,
        "{location}: a gap of {widest} ms in {times:?}"
    );
}

on_both_engines!(probes_run_their_locations_and_a_restarted_server_gets_every_run_once,);

async fn probes_run_their_locations_and_a_restarted_server_gets_every_run_once(db: TestDb) {
    let ws = Workspace::on(db, PLUGINS);
    ws.config(PROBE_CONFIG);
    let daemon = Daemon::start(&ws, &[]);
    let port = daemon.port;
    let probes = [
        start_probe(&ws, &[&daemon], "eu-west"),
        start_probe(&ws, &[&daemon], "us-east"),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    while measured(&ws, "eu-west").await.len() < 3 || measured(&ws, "us-east").await.len() < 3 {
        assert!(Instant::now() < deadline, "no probe runs stored");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Each location is an entity of its own, beside the system's rollup.
    for entity in ["shop@eu-west", "shop@us-east"] {
        assert_eq!(ws.entity(entity), "healthy", "{entity}");
    }
    // No probe ever came from ap-south: its slice records degraded
    // `no-probe` runs (not unhealthy, not stale), and the system shows it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while ws
        .db
        .count(
            "SELECT COUNT(*) FROM runs r JOIN slices s ON s.id = r.slice_id
             WHERE s.location_id = 'ap-south' AND r.status = 'degraded'
               AND r.error = 'no probe online in ap-south'",
        )
        .await
        < 2
    {
        assert!(Instant::now() < deadline, "no `no-probe` runs for ap-south");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(ws.entity("shop@ap-south"), "degraded");
    assert_eq!(ws.entity("shop"), "degraded");
    // The system page lists the location's transition.
    let page = reqwest::get(daemon.url("/systems/shop"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("shop@ap-south: healthy → degraded"),
        "no ap-south transition on the page:\n{page}"
    );
    // What the server cannot prepare fails in its location, each interval,
    // rather than going stale; a collector whose secret is missing fails
    // alone, in its place, and its sibling still runs.
    let vault = |check: &str| {
        format!(
            "SELECT COALESCE(r.error, '') || ' | ' || r.result FROM runs r
             JOIN slices s ON s.id = r.slice_id
             WHERE s.system_id = 'vault' AND s.check_id = '{check}'
               AND s.location_id = 'eu-west' AND r.status = 'unhealthy'"
        )
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while ws.db.texts(&vault("unmigratable")).await.len() < 2
        || ws.db.texts(&vault("locked")).await.len() < 2
    {
        assert!(
            Instant::now() < deadline,
            "vault's eu-west slices have no failed runs"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let unmigratable = ws.db.texts(&vault("unmigratable")).await;
    assert!(
        unmigratable[0].contains("refusing to migrate"),
        "{unmigratable:?}"
    );
    let locked = ws.db.texts(&vault("locked")).await;
    let (error, result) = locked[0].split_once(" | ").unwrap();
    assert!(error.contains("ABSENT"), "{error}");
    let result: serde_json::Value = serde_json::from_str(result).unwrap();
    let collectors = result["collectors"].as_array().unwrap();
    assert_eq!(collectors.len(), 2, "{result}");
    assert!(
        collectors[0]["error"].as_str().unwrap().contains("ABSENT"),
        "{result}"
    );
    assert_eq!(collectors[1]["result"]["echo"], "after", "{result}");
    assert_eq!(ws.entity("vault@eu-west"), "unhealthy");
    // The server goes away for several intervals; the probes spool.
    let mut daemon = daemon;
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    let gone = measured(&ws, "eu-west").await.len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let daemon = Daemon::start_on_port(&ws, port);
    let deadline = Instant::now() + Duration::from_secs(30);
    while measured(&ws, "eu-west").await.len() < gone + 8 {
        assert!(Instant::now() < deadline, "spooled runs were not delivered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for location in ["eu-west", "us-east"] {
        let times = measured(&ws, location).await;
        let mut unique = times.clone();
        unique.dedup();
        assert_eq!(unique.len(), times.len(), "{location}: a run stored twice");
        // One run per interval throughout, the outage included: none lost.
        let widest = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        assert!(
            widest < 600,
            "{location}: a gap of {widest} ms in {times:?}"
        );
    }
    // The API lists both probes with their location, online.
    let body = reqwest::get(daemon.url("/api/v1/probes"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut locations: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["locationId"].as_str().unwrap())
        .collect();
    locations.sort();
    assert_eq!(locations, ["eu-west", "us-east"], "{body}");
    // `checkhost status` lists them too, with their spool.
    let status = ws.status();
    assert_eq!(status["probes"].as_array().unwrap().len(), 2, "{status}");
    // A wrong token gets 401; a batch for a slice the probe was not given,
    // a malformed one and an oversized one are refused whole.
    let client = reqwest::Client::new();
    let refused = client
        .get(daemon.url("/api/v1/probe/work"))
        .bearer_auth("chp_p000000000000_0000")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let token = std::fs::read_to_string(ws.dir.path().join("eu-west.token")).unwrap();
    let run = |system: &str, seq: i64| {
        serde_json::json!({"seq": seq, "slice": {"system": system, "check": "tick"},
            "atMs": support_now(), "latencyMs": 1.0, "collectors": []})
    };
    let before = measured(&ws, "eu-west").await.len();
    // Runs are judged one by one: a slice the probe was not given, and a
    // run of its own slice that does not fit the check (no collector
    // result, no error), are refused and counted, and nothing of them is
    // stored. Had the second been, its sequence number would have moved
    // the probe's cursor past all its later runs.
    for body in [
        serde_json::json!({"runs": [run("elsewhere", i64::MAX)]}),
        serde_json::json!({"runs": [run("shop", i64::MAX - 1)]}),
    ] {
        let answer = client
            .post(daemon.url("/api/v1/probe/runs"))
            .bearer_auth(token.trim())
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let reply: serde_json::Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
        assert_eq!(
            (reply["stored"].as_u64(), reply["refused"].as_u64()),
            (Some(0), Some(1)),
            "{reply}"
        );
    }
    // A truncated or oversized batch is refused whole.
    for (body, status) in [
        ("{\"runs\": [".to_string(), 400),
        (
            serde_json::json!({"runs": vec![run("shop", 1); 501]}).to_string(),
            413,
        ),
    ] {
        let answer = client
            .post(daemon.url("/api/v1/probe/runs"))
            .bearer_auth(token.trim())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), status);
    }
    let metrics = reqwest::get(daemon.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "checkhost_probes_online{location=\"eu-west\"} 1",
        "checkhost_probes_online{location=\"ap-south\"} 0",
        "checkhost_probe_batches_refused_total{reason=\"slice\"} 1",
        "checkhost_probe_batches_refused_total{reason=\"malformed\"} 2",
        "checkhost_probe_batches_refused_total{reason=\"size\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while measured(&ws, "eu-west").await.len() < before + 3 {
        assert!(
            Instant::now() < deadline,
            "eu-west's runs stopped being stored after the refused batches"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A heartbeat from a clock a minute ahead: the next batch is refused
    // with 409 (its runs stay in the spool) until the clock is right. The
    // real probes stop first, so none of their heartbeats comes between.
    drop(probes);
    let beat = |clock_ms: i64| {
        client
            .post(daemon.url("/api/v1/probe/heartbeat"))
            .bearer_auth(token.trim())
            .header("content-type", "application/json")
            .body(
                serde_json::json!({"version": "test", "clockMs": clock_ms,
                    "spoolDepth": 0, "spoolDropped": 0})
                .to_string(),
            )
            .send()
    };
    let skewed = beat(support_now() + 60_000).await.unwrap();
    let reply: serde_json::Value = serde_json::from_str(&skewed.text().await.unwrap()).unwrap();
    assert!(reply["clockSkewMs"].as_i64().unwrap() > 59_000, "{reply}");
    let batch = serde_json::json!({"runs": [run("shop", 1)]}).to_string();
    let answer = client
        .post(daemon.url("/api/v1/probe/runs"))
        .bearer_auth(token.trim())
        .header("content-type", "application/json")
        .body(batch)
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let text = answer.text().await.unwrap();
    assert!(status == 409 && text.contains("clock"), "{status}: {text}");
    // Four batches whose bodies never finish hold the node's batch slots:
    // a fifth gets 503 with Retry-After before its body is read, and a
    // slot comes back when one of them goes away.
    let slow = |_| async {
        use tokio::io::AsyncWriteExt;
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let head = format!(
            "POST /api/v1/probe/runs HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
             content-type: application/json\r\ncontent-length: 100000\r\n\r\n{{\"runs\": [",
            token.trim()
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        socket
    };
    // More than the four slots, so each is held whichever get there first.
    let mut held = futures::future::join_all((0..6).map(slow)).await;
    // An empty batch, sent until its status is (or, with `false`, is not)
    // 503 or 10 s pass; the last answer.
    let (client, daemon, token) = (&client, &daemon, &token);
    let empty_batch_until = |busy: bool| async move {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer = client
                .post(daemon.url("/api/v1/probe/runs"))
                .bearer_auth(token.trim())
                .header("content-type", "application/json")
                .body("{\"runs\": []}")
                .send()
                .await
                .unwrap();
            if (answer.status() == 503) == busy || Instant::now() > deadline {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    // The slow requests reach their handlers in their own time.
    let busy = empty_batch_until(true).await;
    // What the slow requests were told, if anything, says why not.
    let told: Vec<String> = held
        .iter()
        .map(|socket| {
            let mut buf = [0u8; 512];
            match socket.try_read(&mut buf) {
                Ok(n) => String::from_utf8_lossy(&buf[..n]).to_string(),
                Err(_) => String::new(),
            }
        })
        .collect();
    assert_eq!(busy.status(), 503, "the held requests were told: {told:?}");
    assert_eq!(busy.headers()["retry-after"], "1");
    // Three left: a slot is free again.
    held.truncate(3);
    assert_ne!(
        empty_batch_until(false).await.status(),
        503,
        "no batch slot came back"
    );
    drop(held);
    let metrics = reqwest::get(daemon.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("checkhost_probe_batches_refused_total{reason=\"busy\"}"),
        "{metrics}"
    );
}

fn support_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Two nodes on one PostgreSQL database: a probe given both fails over
/// when its node is killed, and its runs are stored once, without a gap;
/// the location without a probe gets its `no-probe` runs an interval
/// apart while both nodes watch it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_take_probe_traffic_and_a_probe_fails_over() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let ws = Workspace::on(db, PLUGINS);
    ws.config(PROBE_CONFIG);
    let first = Daemon::start(&ws, &[]);
    let second = Daemon::start(&ws, &[]);
    let _probes = [
        start_probe(&ws, &[&first, &second], "eu-west"),
        start_probe(&ws, &[&second], "us-east"),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    while measured(&ws, "eu-west").await.len() < 3 {
        assert!(Instant::now() < deadline, "no probe runs stored");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut first = first;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let before = measured(&ws, "eu-west").await.len();
    let deadline = Instant::now() + Duration::from_secs(30);
    while measured(&ws, "eu-west").await.len() < before + 8 {
        assert!(
            Instant::now() < deadline,
            "eu-west did not fail over to the other node"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for location in ["eu-west", "us-east"] {
        assert_every_run_once(&ws, location).await;
    }
    // no-probe runs are numbered when recorded: their ids carry the time.
    // The node that records them may be the killed one, until the other
    // sees it gone.
    let no_probe_runs = || async {
        ws.db
            .texts(
                "SELECT CAST(r.id AS TEXT) FROM runs r JOIN slices s ON s.id = r.slice_id
                 WHERE s.location_id = 'ap-south' ORDER BY r.id",
            )
            .await
            .iter()
            .map(|t| t.parse::<i64>().unwrap() >> 20)
            .collect::<Vec<i64>>()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while no_probe_runs().await.len() < 6 {
        assert!(
            Instant::now() < deadline,
            "too few no-probe runs: {:?}",
            no_probe_runs().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let no_probe = no_probe_runs().await;
    let closest = no_probe.windows(2).map(|w| w[1] - w[0]).min().unwrap();
    assert!(
        closest >= 250,
        "two no-probe runs {closest} ms apart: {no_probe:?}"
    );
    drop(second);
}

/// A server that announces a component under one digest and sends other
/// bytes: the probe refuses it, runs nothing of the work and stores no run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_refuses_a_component_whose_bytes_do_not_match_its_digest() {
    use axum::routing::{get, post};
    use checkhost::probe::wire::{
        CollectorWork, ContextWire, HeartbeatReply, PluginRef, RunWork, SliceRef, Task, Work,
        WorkItem,
    };
    use checkhost::runtime::ComponentDigest;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let noop = std::fs::read(support::guest("noop")).unwrap();
    let hostile = std::fs::read(support::guest("hostile")).unwrap();
    let (noop_digest, hostile_digest) = (ComponentDigest::of(&noop), ComponentDigest::of(&hostile));
    let work = Work {
        version: "v1".into(),
        location: "eu-west".into(),
        probe: "p1".into(),
        heartbeat_ms: 200,
        items: vec![WorkItem {
            slice: SliceRef {
                system: "shop".into(),
                check: "tick".into(),
                environment: None,
            },
            interval_ms: 200,
            task: Task::Run(Box::new(RunWork {
                strategy: PluginRef {
                    id: "noop".into(),
                    digest: noop_digest,
                },
                strategy_config: "{}".into(),
                collectors: vec![CollectorWork {
                    plugin: PluginRef {
                        id: "hostile".into(),
                        digest: hostile_digest,
                    },
                    config: r#"{"mode":"noop"}"#.into(),
                    env: Vec::new(),
                }],
                context: ContextWire {
                    check_id: "tick".into(),
                    check_name: "tick".into(),
                    interval_seconds: 1,
                    system_id: "shop".into(),
                    system_name: "shop".into(),
                    system_metadata: Vec::new(),
                    environment: None,
                },
                limits: checkhost::runtime::RunLimits::default(),
                network: Default::default(),
                secrets: Vec::new(),
                failed_collectors: Vec::new(),
                propagate_trace: false,
            })),
        }],
    };
    let posted = Arc::new(AtomicUsize::new(0));
    let work_json = serde_json::to_string(&work).unwrap();
    let app = axum::Router::new()
        .route(
            "/api/v1/probe/heartbeat",
            post(|| async {
                axum::Json(HeartbeatReply {
                    work_version: "v1".into(),
                    server_ms: support_now(),
                    clock_skew_ms: 0,
                })
            }),
        )
        .route("/api/v1/probe/work", get(move || async move { work_json }))
        .route(
            "/api/v1/probe/components/{digest}",
            // The hostile guest's digest, with the no-op guest's bytes.
            get(
                move |axum::extract::Path(digest): axum::extract::Path<String>| {
                    let noop = noop.clone();
                    async move {
                        assert!(
                            digest == noop_digest.to_string()
                                || digest == hostile_digest.to_string()
                        );
                        noop
                    }
                },
            ),
        )
        .route(
            "/api/v1/probe/runs",
            post({
                let posted = posted.clone();
                move || async move {
                    posted.fetch_add(1, Ordering::Relaxed);
                    "{\"stored\":0,\"duplicates\":0}"
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "chp_p1_abc").unwrap();
    let log_path = dir.path().join("probe.log");
    let components = dir.path().join("components");
    let _probe = ProbeProcess(
        Command::new(env!("CARGO_BIN_EXE_checkhost"))
            .args(["probe", "--server", &url, "--location", "eu-west"])
            .arg("--token-file")
            .arg(&token)
            .arg("--spool")
            .arg(dir.path().join("spool.db"))
            .arg("--components")
            .arg(&components)
            .env("CHECKHOST_CACHE_DIR", support::cache_dir())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let refusal = loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(line) = log.lines().find(|l| l.contains("refused")) {
            break line.to_string();
        }
        assert!(Instant::now() < deadline, "no refusal in:\n{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        refusal.contains(&hostile_digest.to_string()) && refusal.contains(&noop_digest.to_string()),
        "the refusal names the announced and the received digest: {refusal}"
    );
    // Several heartbeats later: still nothing run, nothing cached under
    // the digest it does not have.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(posted.load(Ordering::Relaxed), 0);
    let cached: Vec<String> = std::fs::read_dir(&components)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let hex = hostile_digest.to_string().replace("sha256:", "");
    assert!(!cached.iter().any(|name| name.contains(&hex)), "{cached:?}");
}

fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The daemon traces its runs to a real OTLP receiver, its run exemplars
/// name the traces, and when the receiver goes away the runs go on while
/// the dropped spans are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_traces_its_runs_and_counts_what_it_cannot_export() {
    let Some(mut receiver) = support::otlp::Receiver::start() else {
        return;
    };
    let ws = Workspace::new(PLUGINS);
    ws.config(&config(1, "200ms", false));
    let endpoint = receiver.http_endpoint();
    let daemon = Daemon::start_with_env(&ws, &[], &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]);
    receiver.wait_for("three runs", |s| {
        s.iter().filter(|s| s["name"] == "run tick").count() >= 3
    });
    let metrics = daemon.open_metrics().await;
    assert!(
        sample(&metrics, "checkhost_trace_spans_exported_total") > 0.0,
        "{metrics}"
    );
    let exemplar = metrics
        .lines()
        .filter(|l| l.starts_with("checkhost_run_duration_seconds_bucket"))
        .find_map(|l| l.split("trace_id=\"").nth(1)?.split('"').next())
        .unwrap_or_else(|| panic!("no run exemplar names a trace:\n{metrics}"));
    // A bucket's exemplar is its latest run: it may be newer than the spans read.
    receiver.wait_for("the exemplar's trace", |s| {
        s.iter().any(|s| s["traceId"] == exemplar)
    });

    receiver.stop();
    let runs = daemon.reported_runs().len();
    daemon.wait_for(Duration::from_secs(30), "failed exports counted", |d| {
        let metrics = d.get("/metrics").unwrap_or_default();
        sample(
            &metrics,
            "checkhost_trace_spans_dropped_total{reason=\"export_failed\"}",
        ) > 0.0
    });
    assert!(
        daemon.reported_runs().len() > runs,
        "runs go on without the receiver"
    );
    daemon.signal("TERM");
    let (code, log) = daemon.wait();
    assert_eq!(code, Some(0), "{}", log.join("\n"));
}

/// A probe traces the runs it makes: the spans name its location, and say
/// `ran` (the server judges the assertions), with no run id of the server's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_traces_its_runs_with_its_location() {
    let Some(receiver) = support::otlp::Receiver::start() else {
        return;
    };
    let ws = Workspace::new(PLUGINS);
    ws.config(
        "locations: [{id: eu-west}]
probes: {heartbeat: 300ms}
checks:
  - id: tick
    interval: 300ms
    locations: [eu-west]
    strategy: {plugin: noop}
    collectors: [{plugin: hostile, config: {mode: noop}}]
systems: [{id: shop}]
assignments: [{system: shop, check: tick}]
",
    );
    let server = Daemon::start(&ws, &[]);
    let endpoint = receiver.http_endpoint();
    let _probe = start_probe_with_env(
        &ws,
        &[&server],
        "eu-west",
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)],
    );
    let spans = receiver.wait_for("a probe's run", |s| {
        s.iter().any(|s| s["name"] == "run tick")
    });
    let root = spans.iter().find(|s| s["name"] == "run tick").unwrap();
    let attributes = &root["attributes"];
    assert_eq!(attributes["checkhost.location"], "eu-west", "{root}");
    assert_eq!(attributes["checkhost.outcome"], "ran", "{root}");
    assert_eq!(attributes["checkhost.system"], "shop", "{root}");
    assert!(attributes.get("checkhost.run_id").is_none(), "{root}");
    assert!(
        spans
            .iter()
            .any(|s| s["name"] == "collect hostile" && s["parentId"] == root["spanId"]),
        "{spans:#?}"
    );
}
