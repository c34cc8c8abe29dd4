//! Several `checkhost serve` processes on one PostgreSQL: they split the
//! slices, each slice runs once per interval cluster-wide, and when one node
//! is killed with -9 the others take its slices over.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use support::Workspace;
use support::daemon::Daemon;
use support::db::TestDb;

const SLICES: usize = 60;
const INTERVAL_MS: i64 = 2_000;

/// Accepts every webhook and counts them by idempotency key.
async fn receiver(keys: Arc<Mutex<HashMap<String, usize>>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let keys = keys.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = conn.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_lowercase();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length: usize = text[..end]
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if text.len() < end + 4 + length {
                        continue;
                    }
                    let key = text[..end]
                        .lines()
                        .find_map(|l| l.strip_prefix("idempotency-key:"))
                        .map(|v| v.trim().to_string())
                        .unwrap_or_default();
                    *keys.lock().unwrap().entry(key).or_default() += 1;
                    let _ = conn
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
            });
        }
    });
    port
}

fn config(hook_port: u16) -> String {
    let mut yaml = format!(
        "notifications:
  targets:
    - {{id: hook, url: \"http://127.0.0.1:{hook_port}/hook\", default: true, timeout: 1s}}
checks:
  - id: tick
    interval: {INTERVAL_MS}ms
    timeout: 1s
    strategy: {{plugin: noop}}
    collectors: [{{plugin: hostile, config: {{mode: fail}}}}]
systems:
"
    );
    for i in 0..SLICES {
        yaml.push_str(&format!("  - {{id: s{i}}}\n"));
    }
    yaml.push_str("assignments:\n");
    for i in 0..SLICES {
        yaml.push_str(&format!(
            "  - {{system: s{i}, check: tick, thresholds: {{mode: consecutive, degraded: 1, unhealthy: 1}}}}\n"
        ));
    }
    yaml
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_split_the_slices_and_take_over_from_a_killed_one() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let keys = Arc::new(Mutex::new(HashMap::new()));
    let hook = receiver(keys.clone()).await;
    let ws = Workspace::on(db, &["noop", "hostile"]);
    ws.config(&config(hook));
    let nodes: Vec<Daemon> = (0..3).map(|_| Daemon::start(&ws, &[])).collect();
    tokio::time::sleep(Duration::from_millis(7_000)).await;

    let cluster: serde_json::Value = serde_json::from_str(
        &reqwest::get(nodes[1].url("/api/v1/cluster"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(cluster["engine"], "postgres");
    assert_eq!(cluster["nodes"].as_array().unwrap().len(), 3, "{cluster}");

    // A node's event stream shows the runs of the other nodes too.
    let mut stream = reqwest::get(nodes[1].url("/api/v1/events")).await.unwrap();
    let mut seen = String::new();
    let until = std::time::Instant::now() + Duration::from_millis(3_000);
    while std::time::Instant::now() < until {
        if let Ok(Ok(Some(chunk))) =
            tokio::time::timeout(Duration::from_millis(500), stream.chunk()).await
        {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    drop(stream);
    let elsewhere = nodes[0].reported_runs();
    assert!(
        elsewhere
            .iter()
            .any(|id| seen.contains(&format!("\"id\":{id},"))),
        "node 1's stream carries node 0's runs"
    );

    let mut nodes = nodes.into_iter();
    let mut killed = nodes.next().unwrap();
    let killed_runs = killed.reported_runs().len();
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(9_000)).await;

    let survivors: Vec<Daemon> = nodes.collect();
    let mut ran = vec![killed_runs];
    for node in survivors {
        node.signal("TERM");
        let runs = node.reported_runs().len();
        let (code, log) = node.wait();
        assert_eq!(code, Some(0), "{}", log.join("\n"));
        ran.push(runs);
    }
    assert!(
        ran.iter().all(|r| *r > 0),
        "every node took a share: {ran:?}"
    );

    let status = ws.status();
    let states: Vec<&str> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            if n["stoppedAtMs"].is_null() {
                "gone"
            } else {
                "stopped"
            }
        })
        .collect();
    assert_eq!(
        states.iter().filter(|s| **s == "stopped").count(),
        2,
        "{status}"
    );
    assert_eq!(
        states.iter().filter(|s| **s == "gone").count(),
        1,
        "{status}"
    );

    assert_once_per_interval(&ws, &keys, 6, 2).await;
}

/// What the cluster promises, read from the database and the receiver:
/// every slice ran at least `min_runs` times and within `spread` runs of
/// every other, never twice within half an interval; one transition per
/// system; one webhook per transition.
async fn assert_once_per_interval(
    ws: &Workspace,
    keys: &Arc<Mutex<HashMap<String, usize>>>,
    min_runs: i64,
    spread: i64,
) {
    let counts: Vec<i64> = ws
        .db
        .texts(
            "SELECT CAST(COUNT(*) AS TEXT) FROM runs r JOIN slices s ON s.id = r.slice_id GROUP BY s.id",
        )
        .await
        .iter()
        .map(|c| c.parse().unwrap())
        .collect();
    assert_eq!(counts.len(), SLICES, "every slice ran");
    let (min, max) = (*counts.iter().min().unwrap(), *counts.iter().max().unwrap());
    assert!(min >= min_runs, "one run per interval: {counts:?}");
    assert!(max - min <= spread, "M ± 1: {counts:?}");
    let close = ws
        .db
        .count(&format!(
            "SELECT COUNT(*) FROM runs a JOIN runs b ON a.slice_id = b.slice_id AND b.id > a.id
             AND (b.id >> 20) - (a.id >> 20) < {}",
            INTERVAL_MS / 2
        ))
        .await;
    assert_eq!(close, 0, "no slice ran twice within half an interval");

    // One transition per system, one webhook per transition.
    assert_eq!(
        ws.db
            .count("SELECT COUNT(*) FROM (SELECT entity_id FROM transitions GROUP BY entity_id HAVING COUNT(*) > 1) d")
            .await,
        0,
        "no duplicate transitions"
    );
    assert_eq!(
        ws.db.count("SELECT COUNT(*) FROM transitions").await,
        SLICES as i64
    );
    let keys = keys.lock().unwrap().clone();
    assert_eq!(keys.len(), SLICES, "one key per transition");
    assert!(
        keys.values().all(|n| *n == 1),
        "no webhook delivered twice: {keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_is_a_cluster_of_one() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let keys = Arc::new(Mutex::new(HashMap::new()));
    let hook = receiver(keys.clone()).await;
    let ws = Workspace::on(db, &["noop", "hostile"]);
    ws.config(&config(hook));
    let node = Daemon::start(&ws, &[]);
    tokio::time::sleep(Duration::from_millis(11_000)).await;
    node.signal("TERM");
    let (code, log) = node.wait();
    assert_eq!(code, Some(0), "{}", log.join("\n"));
    assert_once_per_interval(&ws, &keys, 4, 1).await;
}

fn small_config(systems: &[&str]) -> String {
    let mut yaml = String::from(
        "checks:\n  - {id: tick, interval: 500ms, timeout: 1s, strategy: {plugin: noop}, \
         collectors: [{plugin: hostile, config: {mode: noop}}]}\nsystems:\n",
    );
    for s in systems {
        yaml.push_str(&format!("  - {{id: {s}}}\n"));
    }
    yaml.push_str("assignments:\n");
    for s in systems {
        yaml.push_str(&format!("  - {{system: {s}, check: tick}}\n"));
    }
    yaml
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_an_older_configuration_claims_nothing_and_says_so() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let ws = Workspace::on(db, &["noop", "hostile"]);
    ws.config(&small_config(&["a", "b"]));
    let old = Daemon::start(&ws, &[]);
    old.wait_for(Duration::from_secs(20), "the first runs", |d| {
        d.reported_runs().len() >= 3
    });

    let newer = ws.dir.path().join("newer.yaml");
    std::fs::write(&newer, small_config(&["a", "b", "c"])).unwrap();
    let new = Daemon::start_at(&ws, &newer, &[], &[]);
    old.wait_for(Duration::from_secs(10), "the old node to step back", |d| {
        d.log()
            .iter()
            .any(|l| l.contains("older than the one the cluster runs"))
    });
    let before = old.reported_runs().len();
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert!(
        old.reported_runs().len() <= before + 2,
        "the old node claims nothing new (runs in flight may finish)"
    );
    let mut ran_c = 0;
    for _ in 0..100 {
        ran_c = ws
            .db
            .count("SELECT COUNT(*) FROM runs r JOIN slices s ON s.id = r.slice_id WHERE s.system_id = 'c'")
            .await;
        if ran_c > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!new.reported_runs().is_empty(), "the new node runs");
    assert!(ran_c > 0, "the newer configuration's slice runs");

    // A node whose configuration does not validate never joins.
    let broken = ws.dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "checks: [{id: tick, interval: soon, strategy: {plugin: noop}}]\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_checkhost"))
        .arg("serve")
        .arg(&broken)
        .arg("--plugins")
        .arg(ws.plugins.path())
        .args(["--database", &ws.db_url(), "--listen", "127.0.0.1:0"])
        .env("CHECKHOST_CACHE_DIR", support::cache_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broken.yaml:1:31: checks[0].interval"),
        "{stderr}"
    );
    assert_eq!(
        ws.db.count("SELECT COUNT(*) FROM nodes").await,
        2,
        "it never joined"
    );
}

/// Three nodes whose runtimes can admit one run at a time (a 1 MiB guest
/// memory budget) and whose runs take 1.5 s: more due work than the
/// cluster can run. A claim never waits out its lease for admission, so
/// another node never runs the same slice in the same interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_runs_under_a_small_memory_budget_never_run_a_slice_twice() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let ws = Workspace::on(db, &["noop", "hostile"]);
    let mut yaml = String::from(
        "checks:\n  - {id: slow, interval: 2s, timeout: 3s, strategy: {plugin: noop}, \
         collectors: [{plugin: hostile, config: {mode: remember, pause_ms: 1500}}]}\nsystems:\n",
    );
    for i in 0..12 {
        yaml.push_str(&format!("  - {{id: s{i}}}\n"));
    }
    yaml.push_str("assignments:\n");
    for i in 0..12 {
        yaml.push_str(&format!("  - {{system: s{i}, check: slow}}\n"));
    }
    ws.config(&yaml);
    let nodes: Vec<Daemon> = (0..3)
        .map(|_| Daemon::start(&ws, &["--guest-memory-budget", "1"]))
        .collect();
    tokio::time::sleep(Duration::from_secs(14)).await;
    for node in &nodes {
        node.signal("TERM");
    }
    for node in nodes {
        let (code, log) = node.wait();
        assert_eq!(code, Some(0), "{}", log.join("\n"));
    }
    let runs = ws.db.count("SELECT COUNT(*) FROM runs").await;
    assert!(runs >= 12, "the cluster ran: {runs} runs");
    let twice = ws
        .db
        .count(
            "SELECT COUNT(*) FROM runs a JOIN runs b ON a.slice_id = b.slice_id AND b.id > a.id
             AND (b.id >> 20) - (a.id >> 20) < 1000",
        )
        .await;
    assert_eq!(twice, 0, "a slice ran twice within one interval");
}
