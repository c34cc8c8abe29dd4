//! The store through its public API, on a real SQLite file and on the real
//! PostgreSQL: racing evaluations, parallel entities, batches, aggregates,
//! retention, restarts, several writers on one database, and refusals.

mod support;

use std::sync::Arc;
use std::time::Duration;

use checkhost::config::{Assignment, EnvSelection, System, Thresholds};
use checkhost::store::read::{Bucket, SliceFilter};
use checkhost::store::retention::RetentionPolicy;
use checkhost::store::{DAY_MS, FieldSample, HOUR_MS, NewRun, Store};
use serde_json::json;
use support::db::TestDb;

const STRICT: Thresholds = Thresholds::Consecutive {
    degraded: 1,
    unhealthy: 1,
    healthy: 1,
};

fn assignments(systems: &[&str], thresholds: Thresholds) -> Vec<Assignment> {
    systems
        .iter()
        .map(|s| Assignment {
            system: s.to_string(),
            check: "web".into(),
            environments: EnvSelection::All,
            thresholds,
            paused: false,
            notify: Vec::new(),
            flapping: None,
            locations: None,
            depends_on: Vec::new(),
            slo: None,
        })
        .collect()
}

/// The systems, each in the one environment these tests use.
fn systems(ids: &[&str]) -> Vec<System> {
    ids.iter()
        .map(|id| System {
            id: id.to_string(),
            name: None,
            metadata: Default::default(),
            environments: vec!["prod".into()],
            depends_on: Vec::new(),
            slo: None,
        })
        .collect()
}

async fn store(db: &TestDb, systems: &[&str]) -> Arc<Store> {
    let store = Store::open(&db.url()).await.unwrap();
    store
        .sync_config(
            &[],
            &assignments(systems, STRICT),
            &self::systems(systems),
            0,
        )
        .await
        .unwrap();
    Arc::new(store)
}

fn run(system: &str, env: Option<&str>, healthy: bool, latency_ms: f64, at_ms: i64) -> NewRun {
    NewRun {
        system_id: system.into(),
        check_id: "web".into(),
        environment_id: env.map(str::to_string),
        location_id: None,
        healthy,
        latency_ms: Some(latency_ms),
        result: json!({}),
        error: None,
        at_ms,
        fields: Vec::new(),
        origin: None,
        no_probe: false,
    }
}

on_both_engines!(
    an_objective_is_measured_from_the_tiers_and_burns_from_raw_runs,
    a_latency_objective_counts_time_slices_by_their_percentile,
    a_slice_that_keeps_changing_is_marked_flapping_once_then_held,
    a_check_that_cannot_be_prepared_reports_on_the_system_alone,
    a_day_of_history_reports_the_largest_hourly_p95,
    eight_racing_evaluations_of_one_entity_write_one_transition,
    distinct_entities_each_get_their_own_transition_in_parallel,
    a_large_concurrent_load_is_batched_and_every_change_is_one_transition,
    two_writers_on_one_database_write_one_transition,
    hourly_aggregates_fold_runs_and_roll_into_daily_with_max_p95,
    marked_fields_merge_across_writers_and_roll_into_daily,
    retention_keeps_the_newest_transition_of_every_entity,
    state_survives_a_restart,
    paused_assignments_count_for_nothing,
    recovery_waits_for_healthy_successes_in_a_row,
    a_database_from_a_newer_checkhost_is_refused,
);

async fn eight_racing_evaluations_of_one_entity_write_one_transition(db: TestDb) {
    let store = store(&db, &["shop"]).await;
    let mut events = store.subscribe();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .record_run(run("shop", Some("prod"), false, 10.0, 1_000 + i))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut changes = 0;
    for t in tasks {
        changes += t.await.unwrap().transitions.len();
    }
    assert_eq!(changes, 2, "one change for `shop`, one for `shop::prod`");
    for entity in ["shop", "shop::prod"] {
        let sql = format!("SELECT COUNT(*) FROM transitions WHERE entity_id = '{entity}'");
        assert_eq!(db.count(&sql).await, 1, "{entity}");
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM runs").await, 8);
    let mut received = Vec::new();
    while let Ok(event) = events.try_recv() {
        received.push(event);
    }
    assert_eq!(received.len(), 8, "one event per committed run");
    let transitions: Vec<_> = received.iter().flat_map(|e| &e.transitions).collect();
    assert_eq!(transitions.len(), 2, "each transition told once");
    assert!(
        transitions
            .iter()
            .all(|t| t.id.is_some() && t.run_id.is_some()),
        "transitions carry their row and run ids: {transitions:?}"
    );
    let ids: Vec<i64> = received.iter().filter_map(|e| e.run_id()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "events come in commit order, ids rising: {ids:?}"
    );
}

async fn distinct_entities_each_get_their_own_transition_in_parallel(db: TestDb) {
    let systems: Vec<String> = (0..8).map(|i| format!("s{i}")).collect();
    let names: Vec<&str> = systems.iter().map(String::as_str).collect();
    let store = store(&db, &names).await;
    let tasks: Vec<_> = systems
        .iter()
        .map(|s| {
            let store = store.clone();
            let s = s.clone();
            tokio::spawn(async move {
                store
                    .record_run(run(&s, None, false, 5.0, 1_000))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().transitions.len(), 1);
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM transitions").await, 8);
}

/// 40 systems × 3 environments, 10 runs each, all in flight at once: the
/// writer batches them, and each slice's alternating pattern (fail, fail,
/// pass, …) yields exactly the transitions the sequence implies.
async fn a_large_concurrent_load_is_batched_and_every_change_is_one_transition(db: TestDb) {
    let systems: Vec<String> = (0..40).map(|i| format!("s{i}")).collect();
    let names: Vec<&str> = systems.iter().map(String::as_str).collect();
    let store = store(&db, &names).await;
    let env_changes = alternating_load(&store, &systems, Duration::ZERO).await;
    assert_alternating_load_stored(&db, env_changes).await;
    assert_eq!(
        db.count("SELECT COUNT(*) FROM entity_state WHERE status = 'unhealthy'")
            .await,
        160,
        "every slice ends failed: 120 environments and 40 rollups"
    );
}

/// Three environments of every system, ten runs each (fail, fail, pass, …),
/// each slice's runs in order while slices interleave freely, `pause`
/// between a slice's runs. Returns the environment transitions reported.
async fn alternating_load(store: &Arc<Store>, systems: &[String], pause: Duration) -> usize {
    let mut tasks = Vec::new();
    for system in systems {
        for env in ["a", "b", "c"] {
            let store = store.clone();
            let system = system.clone();
            tasks.push(tokio::spawn(async move {
                let mut changes = 0;
                for i in 0..10 {
                    let at = 1_000_000 + i;
                    changes += store
                        .record_run(run(&system, Some(env), i % 3 == 2, 1.0, at))
                        .await
                        .unwrap()
                        .transitions
                        .iter()
                        .filter(|t| t.entity_id.contains("::"))
                        .count();
                    tokio::time::sleep(pause).await;
                }
                changes
            }));
        }
    }
    let mut env_changes = 0;
    for t in tasks {
        env_changes += t.await.unwrap();
    }
    env_changes
}

/// What `alternating_load` over 40 systems must leave: per slice
/// F F P F F P F F P F → unhealthy at 0, 3, 6, 9 and healthy at 2, 5, 8:
/// 7 transitions, each reported once and stored once, and every run stored.
async fn assert_alternating_load_stored(db: &TestDb, env_changes: usize) {
    assert_eq!(env_changes, 120 * 7);
    assert_eq!(db.count("SELECT COUNT(*) FROM runs").await, 1200);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM transitions WHERE entity_id LIKE '%::%'")
            .await,
        120 * 7
    );
}

/// Two stores on one database stand for two processes: each has its own
/// writer and cache, and they race on one entity.
async fn two_writers_on_one_database_write_one_transition(db: TestDb) {
    let first = store(&db, &["shop"]).await;
    let second = Arc::new(Store::open(&db.url()).await.unwrap());
    let mut tasks = Vec::new();
    for (i, store) in [first.clone(), second.clone()].into_iter().enumerate() {
        for n in 0..20 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .record_run(run(
                        "shop",
                        Some("prod"),
                        false,
                        1.0,
                        5_000 + n * 2 + i as i64,
                    ))
                    .await
                    .unwrap()
                    .transitions
                    .len()
            }));
        }
    }
    let mut changes = 0;
    for t in tasks {
        changes += t.await.unwrap();
    }
    assert_eq!(changes, 2, "`shop` and `shop::prod` change once");
    assert_eq!(db.count("SELECT COUNT(*) FROM transitions").await, 2);
    assert_eq!(db.count("SELECT COUNT(*) FROM runs").await, 40);
    first.close().await;
    second.close().await;
}

async fn hourly_aggregates_fold_runs_and_roll_into_daily_with_max_p95(db: TestDb) {
    let store = store(&db, &["shop"]).await;
    let now = 400 * DAY_MS;
    let day = now - 40 * DAY_MS;
    // Hour one: 1..=20 ms; hour two: 101..=120 ms; one env-less run.
    for i in 1..=20 {
        store
            .record_run(run("shop", Some("prod"), true, i as f64, day + 60_000 * i))
            .await
            .unwrap();
        store
            .record_run(run(
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
        .record_run(run("shop", None, true, 7.0, day + 30))
        .await
        .unwrap();
    assert_eq!(db.count("SELECT COUNT(*) FROM aggregates_hourly").await, 3);
    let prod_hourly = db
        .floats(
            "SELECT p95, latency_min, latency_max FROM aggregates_hourly a
             JOIN slices s ON s.id = a.slice_id WHERE s.env_key = 'prod' ORDER BY bucket",
        )
        .await;
    let (p95_one, p95_two) = (prod_hourly[0].0, prod_hourly[1].0);
    assert!((p95_one - 19.0).abs() < 1.0, "{p95_one}");
    assert!((p95_two - 119.0).abs() < 3.0, "{p95_two}");
    for (p95, min, max) in db
        .floats("SELECT p95, latency_min, latency_max FROM aggregates_hourly")
        .await
    {
        assert!(min <= p95 && p95 <= max, "p95 {p95} outside [{min}, {max}]");
    }

    let report = store
        .retention(RetentionPolicy::default(), now)
        .await
        .unwrap();
    assert_eq!(report.runs_deleted, 41);
    assert_eq!(report.hourly_rolled, 3);
    assert_eq!(db.count("SELECT COUNT(*) FROM aggregates_hourly").await, 0);
    let daily =
        "FROM aggregates_daily a JOIN slices s ON s.id = a.slice_id WHERE s.env_key = 'prod'";
    assert_eq!(
        db.count(&format!(
            "SELECT total * 10000 + healthy * 100 + unhealthy {daily}"
        ))
        .await,
        40 * 10000 + 36 * 100 + 4
    );
    let (p95, min, max) = db
        .floats(&format!("SELECT p95, latency_min, latency_max {daily}"))
        .await[0];
    assert_eq!((min, max), (1.0, 120.0));
    assert_eq!(p95, p95_two, "a day's p95 is the max of its hourly p95s");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM aggregates_daily").await,
        2,
        "env-less day kept apart"
    );
}

fn with_fields(mut run: NewRun, fields: &[(&str, f64)]) -> NewRun {
    run.fields = fields
        .iter()
        .map(|(field, value)| FieldSample {
            collector: "request".into(),
            field: field.to_string(),
            value: *value,
        })
        .collect();
    run
}

/// Marked result fields land in the hourly tier from two writers at once,
/// every aggregate exact, and roll into the daily tier, where a second
/// roll-up of the same day adds to what the first stored.
async fn marked_fields_merge_across_writers_and_roll_into_daily(db: TestDb) {
    let first = store(&db, &["shop"]).await;
    let second = Arc::new(Store::open(&db.url()).await.unwrap());
    let now = 400 * DAY_MS;
    let day = now - 40 * DAY_MS;
    let mut tasks = Vec::new();
    // Hour one: status codes 1..=20 and ok on even ones; hour two: 101..=120.
    for i in 1..=20_i64 {
        for hour in [0, 1] {
            // Both writers fill both hours: a lost update shows in the counts.
            let store = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            tasks.push(tokio::spawn(async move {
                let at = day + hour * HOUR_MS + 60_000 * i;
                let code = (hour * 100 + i) as f64;
                let ok = if i % 2 == 0 { 1.0 } else { 0.0 };
                let r = with_fields(
                    run("shop", Some("prod"), true, 5.0, at),
                    &[("statusCode", code), ("ok", ok)],
                );
                store.record_run(r).await.unwrap();
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let filter = SliceFilter {
        system: Some("shop".into()),
        ..Default::default()
    };
    let hours = first
        .history(&filter, day, day + DAY_MS, Bucket::Hour)
        .await
        .unwrap();
    assert_eq!(hours.len(), 2, "{hours:?}");
    let code = &hours[1].fields["request.statusCode"];
    assert_eq!(
        (code.samples, code.sum, code.min, code.max, code.last),
        (20, 2210.0, 101.0, 120.0, 120.0),
        "{code:?}"
    );
    assert_eq!(code.avg, 110.5);
    assert_eq!(hours[0].fields["request.ok"].avg, 0.5);

    first
        .retention(RetentionPolicy::default(), now)
        .await
        .unwrap();
    assert_eq!(db.count("SELECT COUNT(*) FROM aggregates_hourly").await, 0);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM aggregates_daily WHERE fields LIKE '%request.statusCode%'")
            .await,
        1,
        "the day's row holds the fields"
    );
    // Late runs of the same day, rolled up on their own.
    for i in 1..=2_i64 {
        let r = with_fields(
            run("shop", Some("prod"), true, 5.0, day + 2 * HOUR_MS + i),
            &[("statusCode", 7.0 * i as f64)],
        );
        second.record_run(r).await.unwrap();
    }
    first
        .retention(RetentionPolicy::default(), now)
        .await
        .unwrap();
    let days = first
        .history(&filter, day, day + DAY_MS, Bucket::Day)
        .await
        .unwrap();
    let code = &days[0].fields["request.statusCode"];
    assert_eq!(
        (code.samples, code.sum, code.min, code.max, code.last),
        (42, 210.0 + 2210.0 + 21.0, 1.0, 120.0, 14.0),
        "the newest value is the day's last: {code:?}"
    );
    assert_eq!(days[0].fields["request.ok"].samples, 40);
    first.close().await;
    second.close().await;
}

/// A check that could not be prepared (plugin missing, migration failing)
/// is one env-less run on the system, without latency: the rollup sees it,
/// the aggregates count it but keep its latency out, and once the check's
/// environments run again its slice stops holding the rollup.
async fn a_check_that_cannot_be_prepared_reports_on_the_system_alone(db: TestDb) {
    let store = store(&db, &["shop"]).await;
    let hour = 400 * HOUR_MS;
    let mut broken = run("shop", None, false, 0.0, hour + 1_000);
    broken.latency_ms = None;
    let caused = store.record_run(broken).await.unwrap().transitions;
    let seen: Vec<(&str, Option<&str>, &str)> = caused
        .iter()
        .map(|t| {
            (
                t.entity_id.as_str(),
                t.environment_id.as_deref(),
                t.to.as_str(),
            )
        })
        .collect();
    assert_eq!(seen, [("shop", None, "unhealthy")]);

    let caused = store
        .record_run(run("shop", Some("prod"), true, 10.0, hour + 2_000))
        .await
        .unwrap()
        .transitions;
    let seen: Vec<(&str, &str)> = caused
        .iter()
        .map(|t| (t.entity_id.as_str(), t.kind.as_str()))
        .collect();
    assert_eq!(
        seen,
        [("shop", "recovery")],
        "the environments run again: the env-less slice lets go of the rollup"
    );
    assert!(
        caused[0].own_slice,
        "the recovery is announced: prod did not change, the system did"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM slices WHERE env_key = '' AND counts = false")
            .await,
        1
    );
    assert_eq!(
        db.count("SELECT latency_count * 10 + total FROM aggregates_hourly a JOIN slices s ON s.id = a.slice_id WHERE s.env_key = ''")
            .await,
        1,
        "counted, without latency"
    );
    let filter = SliceFilter {
        system: Some("shop".into()),
        ..Default::default()
    };
    let points = store
        .history(&filter, hour, hour + HOUR_MS, Bucket::Hour)
        .await
        .unwrap();
    assert_eq!(points.len(), 1, "{points:?}");
    let p = &points[0];
    assert_eq!((p.total, p.unhealthy), (2, 1));
    assert_eq!(
        (p.latency_avg_ms, p.latency_min_ms, p.latency_max_ms),
        (10.0, 10.0, 10.0),
        "the unprepared run's latency stays out"
    );
}

/// `flapping: {changes: 3, window: 60m}`: the third change within the hour
/// starts flapping (its notice says so), later ones are held, and a change
/// after the window has calmed down is ordinary again.
async fn a_slice_that_keeps_changing_is_marked_flapping_once_then_held(db: TestDb) {
    use checkhost::config::Flapping;
    use checkhost::store::state::Flap;
    let store = Store::open(&db.url()).await.unwrap();
    let mut config = assignments(&["shop"], STRICT);
    config[0].flapping = Some(Flapping::default());
    store
        .sync_config(&[], &config, &systems(&["shop"]), 0)
        .await
        .unwrap();
    let mut marks = Vec::new();
    let two_hours_later = 2 * HOUR_MS;
    for (at, healthy) in [
        (1_000, false),
        (2_000, true),
        (3_000, false),
        (4_000, true),
        (two_hours_later, false),
    ] {
        let caused = store
            .record_run(run("shop", None, healthy, 1.0, at))
            .await
            .unwrap()
            .transitions;
        assert_eq!(caused.len(), 1, "{caused:?}");
        marks.push(caused[0].flapping);
    }
    assert_eq!(
        marks,
        [None, None, Some(Flap::Started), Some(Flap::Held), None]
    );
    store.close().await;
}

/// One p95 rule (the seed's): a bucket merging stored hours reports the
/// largest of their p95s, in the API as in the daily tier.
async fn a_day_of_history_reports_the_largest_hourly_p95(db: TestDb) {
    let store = store(&db, &["shop"]).await;
    let day = 400 * DAY_MS;
    for i in 0..20 {
        store
            .record_run(run("shop", Some("prod"), true, 10.0, day + 60_000 * i))
            .await
            .unwrap();
    }
    store
        .record_run(run("shop", Some("prod"), true, 1000.0, day + HOUR_MS))
        .await
        .unwrap();
    let filter = SliceFilter {
        system: Some("shop".into()),
        ..Default::default()
    };
    let days = store
        .history(&filter, day, day + DAY_MS, Bucket::Day)
        .await
        .unwrap();
    assert_eq!(days.len(), 1, "{days:?}");
    assert_eq!(
        days[0].latency_p95_ms, 1000.0,
        "the max of the hours' p95s (10 and 1000), not a re-merged sketch's"
    );
    let hours = store
        .history(&filter, day, day + DAY_MS, Bucket::Hour)
        .await
        .unwrap();
    let p95s: Vec<f64> = hours.iter().map(|h| h.latency_p95_ms).collect();
    assert_eq!(p95s, [10.0, 1000.0]);
}

async fn retention_keeps_the_newest_transition_of_every_entity(db: TestDb) {
    let store = store(&db, &["shop"]).await;
    let old = DAY_MS;
    for (healthy, at) in [(false, old), (true, old + 1), (false, old + 2)] {
        store
            .record_run(run("shop", None, healthy, 1.0, at))
            .await
            .unwrap();
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM transitions").await, 3);
    store
        .retention(RetentionPolicy::default(), 500 * DAY_MS)
        .await
        .unwrap();
    assert_eq!(db.count("SELECT COUNT(*) FROM transitions").await, 1);
    assert_eq!(
        db.texts("SELECT to_status FROM transitions").await,
        ["unhealthy"]
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM entity_state WHERE status = 'unhealthy'")
            .await,
        1
    );
}

/// The writer's slice state is loaded from the database the first time a
/// slice is touched: a streak started before a restart continues after it.
async fn state_survives_a_restart(db: TestDb) {
    let thresholds = Thresholds::Consecutive {
        degraded: 2,
        unhealthy: 3,
        healthy: 1,
    };
    let store = Store::open(&db.url()).await.unwrap();
    store
        .sync_config(
            &[],
            &assignments(&["shop"], thresholds),
            &systems(&["shop"]),
            0,
        )
        .await
        .unwrap();
    for at in [1, 2] {
        store
            .record_run(run("shop", None, false, 1.0, at))
            .await
            .unwrap();
    }
    store.close().await;
    let store = Store::open(&db.url()).await.unwrap();
    let changes = store
        .record_run(run("shop", None, false, 1.0, 3))
        .await
        .unwrap();
    assert_eq!(changes.transitions.len(), 1, "{changes:?}");
    assert_eq!(changes.transitions[0].from.as_str(), "degraded");
    assert_eq!(changes.transitions[0].to.as_str(), "unhealthy");
    store.close().await;
}

async fn paused_assignments_count_for_nothing(db: TestDb) {
    let store = Store::open(&db.url()).await.unwrap();
    let mut config = assignments(&["shop"], STRICT);
    config.push(Assignment {
        check: "batch".into(),
        paused: true,
        ..config[0].clone()
    });
    store
        .sync_config(&[], &config, &systems(&["shop"]), 0)
        .await
        .unwrap();
    let mut failing = run("shop", None, false, 1.0, 1);
    failing.check_id = "batch".into();
    assert!(
        store
            .record_run(failing)
            .await
            .unwrap()
            .transitions
            .is_empty()
    );
    let changes = store
        .record_run(run("shop", None, true, 1.0, 2))
        .await
        .unwrap();
    assert!(changes.transitions.is_empty(), "{changes:?}");
    let statuses = store.statuses().await.unwrap();
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].status.as_str(), "healthy");
    store.close().await;
}

async fn a_database_from_a_newer_checkhost_is_refused(db: TestDb) {
    let store = store(&db, &["shop"]).await;
    store
        .record_run(run("shop", None, true, 1.0, 1))
        .await
        .unwrap();
    store.close().await;
    let checksum = if db.engine() == "sqlite" {
        "X'00'"
    } else {
        "'\\x00'::bytea"
    };
    db.execute(&format!(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (9999, 'from the future', TRUE, {checksum}, 1)"
    ))
    .await;
    let error = Store::open(&db.url()).await.err().expect("refused");
    let message = error.to_string();
    assert!(
        message.contains("newer checkhost") && message.contains("9999"),
        "{message}"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM runs").await,
        1,
        "nothing stored is touched"
    );
}

/// A database written by the previous schema (one transaction per run,
/// string-keyed runs and aggregates) keeps its history through the upgrade:
/// a failure streak in progress continues, and stored rows stay.
#[tokio::test]
async fn a_sqlite_database_of_the_first_schema_is_upgraded_with_its_history() {
    let db = TestDb::sqlite();
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/sqlite");
    let migrator = sqlx::migrate::Migrator::new(migrations).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("{}?mode=rwc", db.url()))
        .await
        .unwrap();
    migrator.run_to(1, &pool).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO runs (system_id, check_id, environment_id, status, latency_ms, result, error, created_at)
         VALUES ('shop', 'web', 'prod', 'unhealthy', 3.0, '{}', 'refused', 1000),
                ('shop', 'web', 'prod', 'unhealthy', 4.0, '{}', 'refused', 2000),
                ('shop', 'web', NULL, 'healthy', 5.0, '{}', NULL, 2500);
         INSERT INTO aggregates_hourly (check_id, system_id, environment_id, env_key, bucket, total, healthy,
             unhealthy, latency_sum, latency_min, latency_max, p95, sketch)
         VALUES ('web', 'shop', 'prod', 'prod', 0, 2, 0, 2, 7.0, 3.0, 4.0, 4.18, '{}');
         INSERT INTO entity_state (entity_id, status, updated_at) VALUES ('shop::prod', 'degraded', 2000);",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let store = Store::open(&db.url()).await.unwrap();
    let thresholds = Thresholds::Consecutive {
        degraded: 2,
        unhealthy: 3,
        healthy: 1,
    };
    store
        .sync_config(
            &[],
            &assignments(&["shop"], thresholds),
            &systems(&["shop"]),
            0,
        )
        .await
        .unwrap();
    let changes = store
        .record_run(run("shop", Some("prod"), false, 1.0, HOUR_MS + 3000))
        .await
        .unwrap();
    let prod: Vec<_> = changes
        .transitions
        .iter()
        .filter(|t| t.entity_id == "shop::prod")
        .map(|t| (t.from.as_str(), t.to.as_str()))
        .collect();
    assert_eq!(prod, [("degraded", "unhealthy")], "the streak went on");
    store.close().await;
    assert_eq!(db.count("SELECT COUNT(*) FROM runs").await, 4);
    assert_eq!(db.count("SELECT COUNT(*) FROM slices").await, 2);
    assert_eq!(
        db.floats("SELECT p95, latency_min, latency_max FROM aggregates_hourly WHERE bucket = 0")
            .await,
        [(4.0, 3.0, 4.0)],
        "a stored p95 above the bucket's max is clamped"
    );
}

/// PostgreSQL drops every connection of the store, five times, while 1,200
/// runs are in flight: the writer reconnects and retries, and every run is
/// stored exactly once with exactly its transitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_dropped_mid_load_lose_and_duplicate_nothing() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let systems: Vec<String> = (0..40).map(|i| format!("s{i}")).collect();
    let names: Vec<&str> = systems.iter().map(String::as_str).collect();
    let store = store(&db, &names).await;
    let TestDb::Postgres { name, .. } = &db else {
        unreachable!()
    };
    let killer = {
        let db_url = db.url();
        let name = name.clone();
        tokio::spawn(async move {
            use sqlx::Connection;
            let mut admin = sqlx::PgConnection::connect(&db_url).await.unwrap();
            let mut killed = 0;
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(15)).await;
                killed += sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE datname = $1 AND pid <> pg_backend_pid()",
                )
                .bind(&name)
                .fetch_all(&mut admin)
                .await
                .unwrap()
                .len();
            }
            killed
        })
    };
    let env_changes = alternating_load(&store, &systems, Duration::from_millis(2)).await;
    assert!(killer.await.unwrap() > 0, "connections were dropped");
    assert_alternating_load_stored(&db, env_changes).await;
    assert_eq!(
        db.count("SELECT SUM(total)::bigint FROM aggregates_hourly")
            .await,
        1200
    );
}

async fn recovery_waits_for_healthy_successes_in_a_row(db: TestDb) {
    let thresholds = Thresholds::Consecutive {
        degraded: 1,
        unhealthy: 2,
        healthy: 3,
    };
    let store = Store::open(&db.url()).await.unwrap();
    store
        .sync_config(
            &[],
            &assignments(&["shop"], thresholds),
            &systems(&["shop"]),
            0,
        )
        .await
        .unwrap();
    let mut changes = Vec::new();
    for (at, healthy) in [
        (1, false),
        (2, false),
        (3, true),
        (4, true),
        (5, false),
        (6, true),
        (7, true),
        (8, true),
    ] {
        let recorded = store
            .record_run(run("shop", None, healthy, 1.0, at))
            .await
            .unwrap();
        changes.extend(recorded.transitions.iter().map(|t| (at, t.to.as_str())));
    }
    assert_eq!(
        changes,
        [(1, "degraded"), (2, "unhealthy"), (8, "healthy")],
        "two successes, a failure, then three in a row"
    );
    store.close().await;
}

/// A store with systems `shop` and `other`, each assigned `web`.
async fn objective_store(db: &TestDb) -> Store {
    let store = Store::open(&db.url()).await.unwrap();
    store
        .sync_config(
            &[],
            &assignments(&["shop", "other"], STRICT),
            &systems(&["shop", "other"]),
            0,
        )
        .await
        .unwrap();
    store
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Back-dated runs, figures worked out by hand: attainment and budget over
/// the 30-day window (runs 40 days old left out), burn rates over 5 m,
/// 30 m, 1 h and 6 h, and when the budget runs out; `no-probe` runs and
/// other systems count for nothing.
async fn an_objective_is_measured_from_the_tiers_and_burns_from_raw_runs(db: TestDb) {
    use checkhost::config::{Slo, TimeSpan};
    use checkhost::store::slo::SloDef;
    let store = objective_store(&db).await;
    let now = wall_ms();
    let minute = 60_000;
    // (system, healthy, unhealthy, how long ago)
    let batches: [(&str, i64, i64, i64); 6] = [
        ("shop", 0, 50, 40 * DAY_MS),
        ("shop", 96, 4, 10 * DAY_MS),
        ("shop", 8, 2, 3 * HOUR_MS),
        ("shop", 5, 5, 20 * minute),
        ("shop", 0, 4, 2 * minute),
        ("other", 0, 10, minute),
    ];
    for (system, healthy, unhealthy, ago) in batches {
        for i in 0..healthy + unhealthy {
            let at = now - ago + i;
            let r = run(system, Some("prod"), i < healthy, 10.0, at);
            store.record_run(r).await.unwrap();
        }
    }
    let mut no_probe = run("shop", Some("prod"), false, 10.0, now - minute);
    no_probe.no_probe = true;
    store.record_run(no_probe).await.unwrap();

    let def = SloDef {
        id: "shop".into(),
        system: "shop".into(),
        check: None,
        slo: Slo {
            objective: 80.0,
            window: TimeSpan::from_secs(30 * 86_400),
            latency: None,
        },
    };
    let r = store.slo(&def, now).await.unwrap();
    // 30 days: 100 + 10 + 10 + 4 runs, 15 bad; 20 % of 124 allowed.
    assert_eq!((r.total, r.good), (124, 109));
    let close = |got: f64, want: f64, what: &str| {
        assert!((got - want).abs() < 1e-9, "{what}: {got} against {want}");
    };
    close(r.attainment.unwrap(), 100.0 * 109.0 / 124.0, "attainment");
    close(r.budget_allowed, 24.8, "budget");
    close(
        r.budget_remaining.unwrap(),
        1.0 - 15.0 / 24.8,
        "budget left",
    );
    let burns: Vec<(i64, i64)> = r.burn_rates.iter().map(|b| (b.total, b.bad)).collect();
    assert_eq!(burns, [(4, 4), (14, 9), (14, 9), (24, 11)]);
    let rates: Vec<f64> = r.burn_rates.iter().map(|b| b.rate.unwrap()).collect();
    for (got, want) in
        rates
            .iter()
            .zip([5.0, 9.0 / 14.0 / 0.2, 9.0 / 14.0 / 0.2, 11.0 / 24.0 / 0.2])
    {
        close(*got, want, "burn rate");
    }
    assert_eq!(r.alert, None, "below 14.4 and 6");
    let left = (1.0 - 15.0 / 24.8) * 30.0 * DAY_MS as f64 / (9.0 / 14.0 / 0.2);
    assert_eq!(r.exhausts_at_ms, Some(now + left as i64));

    // The page condition's notices are written when it changes, once: a
    // first quiet evaluation is a baseline.
    let notice = |key: &str| checkhost::store::outbox::Notice {
        target: "hook".into(),
        idempotency_key: key.into(),
        body: "{}".into(),
        content_type: "application/json".into(),
        suppressed: None,
        held_by: None,
    };
    let mut flips = Vec::new();
    for (i, paging) in [false, true, true, false, false].into_iter().enumerate() {
        let key = format!("k{i}");
        flips.push(
            store
                .set_slo_paging("shop", "shop", paging, now + i as i64, || {
                    vec![notice(&key)]
                })
                .await
                .unwrap(),
        );
    }
    assert_eq!(flips, [false, true, false, true, false]);
    assert_eq!(db.count("SELECT COUNT(*) FROM outbox").await, 2);
    store.close().await;
}

/// A latency objective, figures worked out by hand: hours of the window
/// and 5-minute slices of the burn windows are good when their p50 is
/// below 100 ms; slices of the window come from the hourly sketches of
/// every slice of the system merged, burn slices from raw runs; `no-probe`
/// runs and other systems count for nothing.
async fn a_latency_objective_counts_time_slices_by_their_percentile(db: TestDb) {
    use checkhost::config::{LatencyObjective, Slo, TimeSpan};
    use checkhost::store::slo::SloDef;
    let store = objective_store(&db).await;
    let wall = wall_ms();
    // Evaluated at minute 40 of the last hour: the runs 2 and 22 minutes
    // before share its hour.
    let now = wall - wall % HOUR_MS - 20 * 60_000;
    let minute = 60_000;
    // (system, environment, runs at 50 ms, runs at 500 ms, how long ago)
    let batches: [(&str, &str, i64, i64, i64); 7] = [
        ("shop", "prod", 0, 10, 40 * DAY_MS),
        ("shop", "prod", 10, 0, 10 * DAY_MS),
        ("shop", "prod", 6, 4, 3 * HOUR_MS + 2 * minute),
        ("shop", "prod", 5, 0, 22 * minute),
        ("shop", "staging", 0, 5, 22 * minute),
        ("shop", "prod", 0, 4, 2 * minute),
        ("other", "prod", 0, 10, minute),
    ];
    for (system, env, fast, slow, ago) in batches {
        for i in 0..fast + slow {
            let latency = if i < fast { 50.0 } else { 500.0 };
            let r = run(system, Some(env), true, latency, now - ago + i);
            store.record_run(r).await.unwrap();
        }
    }
    // Fast enough to make the last 5 minutes good, were they counted.
    for i in 0..6 {
        let mut no_probe = run("shop", Some("prod"), false, 10.0, now - minute + i);
        no_probe.no_probe = true;
        store.record_run(no_probe).await.unwrap();
    }

    let def = SloDef {
        id: "shop".into(),
        system: "shop".into(),
        check: None,
        slo: Slo {
            objective: 90.0,
            window: TimeSpan::from_secs(30 * 86_400),
            latency: Some(LatencyObjective {
                percentile: 50.0,
                below_ms: 100.0,
            }),
        },
    };
    let r = store.slo(&def, now).await.unwrap();
    // Hours: 10 days ago (all fast: good), 3 h 2 min ago (6 of 10 fast: p50 50 ms,
    // good), the last (5 fast of 14 across both environments: p50 500 ms,
    // bad); 40 days ago is outside the window.
    assert_eq!((r.total, r.good), (3, 2));
    let close = |got: f64, want: f64, what: &str| {
        assert!((got - want).abs() < 1e-9, "{what}: {got} against {want}");
    };
    close(r.attainment.unwrap(), 200.0 / 3.0, "attainment");
    close(r.budget_allowed, 0.3, "budget");
    close(r.budget_remaining.unwrap(), 1.0 - 1.0 / 0.3, "budget left");
    assert_eq!(r.exhausts_at_ms, Some(now), "the budget is spent");
    // 5-minute slices: 2 min ago (all slow: bad), 22 min ago (5 fast of
    // 10: p50 50 ms, good), 3 h 2 min ago (good).
    let burns: Vec<(i64, i64)> = r.burn_rates.iter().map(|b| (b.total, b.bad)).collect();
    assert_eq!(burns, [(1, 1), (2, 1), (2, 1), (3, 1)]);
    let rates: Vec<f64> = r.burn_rates.iter().map(|b| b.rate.unwrap()).collect();
    for (got, want) in rates.iter().zip([10.0, 5.0, 5.0, 10.0 / 3.0]) {
        close(*got, want, "burn rate");
    }
    assert_eq!(r.alert, None, "1 h below 14.4, 6 h below 6");
    assert_eq!(r.objective_label(), "90 % of hours at p50 < 100 ms");

    // Once days are kept only as daily rows, each stands for its hours in
    // the window, no more than it had runs: the day 10 days ago for 10; the
    // day the window starts in for its hours from the window's first on
    // (30 fast runs 5 minutes into the window).
    let from = now - 30 * DAY_MS;
    for i in 0..30 {
        let r = run("shop", Some("prod"), true, 50.0, from + 5 * minute + i);
        store.record_run(r).await.unwrap();
    }
    let rolled = checkhost::store::retention::RetentionPolicy {
        hourly_days: 5,
        ..Default::default()
    };
    store.retention(rolled, now).await.unwrap();
    let r = store.slo(&def, now).await.unwrap();
    let first_day_hours = 24 - from.rem_euclid(DAY_MS) / HOUR_MS;
    assert_eq!(
        (r.total, r.good),
        (12 + first_day_hours, 11 + first_day_hours)
    );
    store.close().await;
}
