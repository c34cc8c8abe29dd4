//! The SQLite store through its public API on a real database file:
//! racing evaluations, parallel entities, aggregates and retention.

use std::sync::Arc;

use checkhost::config::{Assignment, EnvSelection, Thresholds};
use checkhost::store::retention::RetentionPolicy;
use checkhost::store::{DAY_MS, HOUR_MS, NewRun, Store};
use serde_json::json;

async fn store(dir: &tempfile::TempDir, systems: &[&str]) -> Arc<Store> {
    let store = Store::open_sqlite(&dir.path().join("store.db"))
        .await
        .unwrap();
    let assignments: Vec<Assignment> = systems
        .iter()
        .map(|s| Assignment {
            system: s.to_string(),
            check: "web".into(),
            environments: EnvSelection::All,
            thresholds: Thresholds::Consecutive {
                degraded: 1,
                unhealthy: 1,
            },
            paused: false,
        })
        .collect();
    store.sync_config(&[], &assignments, 0).await.unwrap();
    Arc::new(store)
}

fn run(system: &str, env: Option<&str>, healthy: bool, latency_ms: f64, at_ms: i64) -> NewRun {
    NewRun {
        system_id: system.into(),
        check_id: "web".into(),
        environment_id: env.map(str::to_string),
        healthy,
        latency_ms,
        result: json!({}),
        error: None,
        at_ms,
    }
}

async fn count(store: &Store, sql: &'static str) -> i64 {
    let row: (i64,) = sqlx::query_as(sql).fetch_one(store.pool()).await.unwrap();
    row.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_racing_evaluations_of_one_entity_write_one_transition() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, &["shop"]).await;
    let mut events = store.subscribe();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .record_run(&run("shop", Some("prod"), false, 10.0, 1_000 + i))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut changes = 0;
    for t in tasks {
        changes += t.await.unwrap().len();
    }
    assert_eq!(changes, 2, "one change for `shop`, one for `shop::prod`");
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM transitions WHERE entity_id = 'shop::prod'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM transitions WHERE entity_id = 'shop'"
        )
        .await,
        1
    );
    assert_eq!(count(&store, "SELECT COUNT(*) FROM runs").await, 8);
    let mut received = 0;
    while events.try_recv().is_ok() {
        received += 1;
    }
    assert_eq!(received, 2, "one event per transition");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_entities_each_get_their_own_transition_in_parallel() {
    let dir = tempfile::tempdir().unwrap();
    let systems: Vec<String> = (0..8).map(|i| format!("s{i}")).collect();
    let names: Vec<&str> = systems.iter().map(String::as_str).collect();
    let store = store(&dir, &names).await;
    let tasks: Vec<_> = systems
        .iter()
        .map(|s| {
            let store = store.clone();
            let s = s.clone();
            tokio::spawn(async move {
                store
                    .record_run(&run(&s, None, false, 5.0, 1_000))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().len(), 1);
    }
    assert_eq!(count(&store, "SELECT COUNT(*) FROM transitions").await, 8);
}

#[tokio::test]
async fn hourly_aggregates_fold_runs_and_roll_into_daily_with_max_p95() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, &["shop"]).await;
    let now = 400 * DAY_MS;
    let day = now - 40 * DAY_MS;
    // Hour one: 1..=20 ms; hour two: 101..=120 ms; one env-less run.
    for i in 1..=20 {
        store
            .record_run(&run("shop", Some("prod"), true, i as f64, day + 60_000 * i))
            .await
            .unwrap();
        store
            .record_run(&run(
                "shop",
                Some("prod"),
                i % 5 != 0,
                100.0 + i as f64,
                day + HOUR_MS + 60_000 * i,
            ))
            .await
            .unwrap();
    }
    store
        .record_run(&run("shop", None, true, 7.0, day + 30))
        .await
        .unwrap();
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM aggregates_hourly").await,
        3
    );
    let (p95_one, p95_two): (f64, f64) =
        sqlx::query_as("SELECT MIN(p95), MAX(p95) FROM aggregates_hourly WHERE env_key = 'prod'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!((p95_one - 19.0).abs() < 1.0, "{p95_one}");
    assert!((p95_two - 119.0).abs() < 3.0, "{p95_two}");

    let report = store
        .retention(RetentionPolicy::default(), now)
        .await
        .unwrap();
    assert_eq!(report.runs_deleted, 41);
    assert_eq!(report.hourly_rolled, 3);
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM aggregates_hourly").await,
        0
    );
    let (total, healthy, unhealthy, min, max, p95): (i64, i64, i64, f64, f64, f64) = sqlx::query_as(
        "SELECT total, healthy, unhealthy, latency_min, latency_max, p95 FROM aggregates_daily WHERE env_key = 'prod'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!((total, healthy, unhealthy), (40, 36, 4));
    assert_eq!((min, max), (1.0, 120.0));
    assert_eq!(p95, p95_two, "a day's p95 is the max of its hourly p95s");
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM aggregates_daily").await,
        2,
        "env-less day kept apart"
    );
}

#[tokio::test]
async fn retention_keeps_the_newest_transition_of_every_entity() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, &["shop"]).await;
    let old = DAY_MS;
    store
        .record_run(&run("shop", None, false, 1.0, old))
        .await
        .unwrap();
    store
        .record_run(&run("shop", None, true, 1.0, old + 1))
        .await
        .unwrap();
    store
        .record_run(&run("shop", None, false, 1.0, old + 2))
        .await
        .unwrap();
    assert_eq!(count(&store, "SELECT COUNT(*) FROM transitions").await, 3);
    store
        .retention(RetentionPolicy::default(), 500 * DAY_MS)
        .await
        .unwrap();
    let (kept, to): (i64, String) =
        sqlx::query_as("SELECT COUNT(*), MAX(to_status) FROM transitions")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!((kept, to.as_str()), (1, "unhealthy"));
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM entity_state WHERE status = 'unhealthy'"
        )
        .await,
        1
    );
}
