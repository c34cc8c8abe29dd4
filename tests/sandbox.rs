//! Hostile guests: each misbehaviour ends in exactly one clear failure and
//! the host keeps serving the next run. Also: what the loader refuses, and
//! that thousands of runs neither fail nor grow the host.

mod support;

use std::time::{Duration, Instant};

use checkhost::runtime::{Failure, LoadError, PolicySpec, RunOutcome};
use serde_json::json;
use support::{Probe, guest, runtime, servers};

async fn hostile(config: serde_json::Value) -> Probe {
    Probe::new("noop", json!({}))
        .await
        .collector("hostile", config)
        .await
}

/// After any failure the same runtime must still run a healthy guest.
async fn assert_host_still_serves() {
    let outcome = hostile(json!({"mode": "echo", "target": "still here"}))
        .await
        .run()
        .await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    assert_eq!(outcome.collectors[0].result["echo"], "still here");
}

fn failure(outcome: &RunOutcome) -> String {
    outcome
        .failure
        .as_ref()
        .unwrap_or_else(|| panic!("expected a failure, got {outcome:?}"))
        .to_string()
}

#[tokio::test]
async fn infinite_loop_is_stopped_by_the_cpu_deadline() {
    let started = Instant::now();
    let outcome = hostile(json!({"mode": "loop"}))
        .await
        .timeout_ms(300)
        .run()
        .await;
    assert!(
        matches!(
            outcome.failure,
            Some(Failure::CpuBudget(300)) | Some(Failure::Timeout(300))
        ),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "safety net, not a benchmark"
    );
    assert_host_still_serves().await;
}

#[tokio::test]
async fn a_guest_blocked_in_a_slow_host_call_hits_the_wall_clock_deadline() {
    let server = servers::http().await;
    let probe = Probe::new("http", json!({})).await.collector(
        "hostile",
        json!({"mode": "slow-call", "target": format!("http://{server}/slow")}),
    );
    let started = Instant::now();
    let outcome = probe.await.timeout_ms(500).run().await;
    assert_eq!(failure(&outcome), "timeout after 500 ms");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_host_still_serves().await;
}

#[tokio::test]
async fn memory_bomb_hits_the_memory_cap() {
    let outcome = hostile(json!({"mode": "memory"})).await.run().await;
    assert_eq!(failure(&outcome), "hostile: memory limit 64 MiB exceeded");
    assert_host_still_serves().await;
}

/// Pooled memories stay resident between instances (only dirty pages are
/// reset): no run may see what an earlier run wrote, in the memory image or
/// past it. One probe, so every run instantiates the same loaded component
/// and the pool hands it the memory slot the previous run used.
#[tokio::test]
async fn no_run_sees_what_an_earlier_run_left_in_memory() {
    let probe = hostile(json!({"mode": "remember"})).await;
    for run in 0..4 {
        let outcome = probe.run().await;
        assert_eq!(outcome.error(), None, "{outcome:?}");
        let result = &outcome.collectors[0].result;
        assert_eq!(result["written"], 128, "run {run}: {result}");
        assert_eq!(result["stale"], 0, "run {run} saw an earlier run: {result}");
    }
}

#[tokio::test]
async fn unbounded_recursion_is_a_stack_overflow_trap() {
    let outcome = hostile(json!({"mode": "recursion"})).await.run().await;
    let message = failure(&outcome);
    assert!(message.starts_with("guest hostile trapped: "), "{message}");
    assert!(message.contains("stack overflow"), "{message}");
    assert_host_still_serves().await;
}

#[tokio::test]
async fn a_panic_is_a_trap_with_the_panic_message() {
    let outcome = hostile(json!({"mode": "panic"})).await.run().await;
    let message = failure(&outcome);
    assert!(message.starts_with("guest hostile trapped: "), "{message}");
    assert!(
        message.contains("hostile guest panics on purpose"),
        "{message}"
    );
    assert!(
        message.contains("hostile"),
        "backtrace names the guest: {message}"
    );
    assert_host_still_serves().await;
}

#[tokio::test]
async fn a_100_mb_result_cannot_be_built_within_the_memory_cap() {
    let outcome = hostile(json!({"mode": "big-result", "bytes": 100_000_000}))
        .await
        .run()
        .await;
    assert_eq!(failure(&outcome), "hostile: memory limit 64 MiB exceeded");
    assert_host_still_serves().await;
}

#[tokio::test]
async fn a_result_over_the_output_cap_is_refused() {
    let outcome = hostile(json!({"mode": "big-result", "bytes": 2_000_000}))
        .await
        .run()
        .await;
    let message = failure(&outcome);
    assert!(
        message.starts_with("hostile: output exceeded 1 MiB"),
        "{message}"
    );
    assert!(outcome.collectors.is_empty(), "no partial result leaks out");
    assert_host_still_serves().await;
}

#[tokio::test]
async fn a_log_flood_is_cut_at_the_line_cap() {
    let outcome = hostile(json!({"mode": "log-flood"})).await.run().await;
    assert_eq!(
        failure(&outcome),
        "hostile: log limit exceeded: more than 1000 lines"
    );
    assert_eq!(outcome.logs.len(), 1000);
    assert_host_still_serves().await;
}

#[tokio::test]
async fn a_stdout_flood_is_capped() {
    let outcome = hostile(json!({"mode": "stdout-flood"})).await.run().await;
    let captured: usize = outcome.logs.iter().map(|l| l.message.len()).sum();
    assert!(captured <= 64 * 1024, "captured {captured} bytes");
    assert!(!outcome.logs.is_empty());
    assert_host_still_serves().await;
}

#[tokio::test]
async fn connecting_to_a_denied_cidr_is_refused_by_policy() {
    let server = servers::banner("hello\r\n").await;
    let outcome = hostile(json!({"mode": "connect", "target": server.to_string()}))
        .await
        .deny("127.0.0.0/8")
        .run()
        .await;
    assert_eq!(
        failure(&outcome),
        format!("connection to {server} denied by network policy (deny rule `127.0.0.0/8`)")
    );
    assert_host_still_serves().await;
}

#[tokio::test]
async fn cloud_metadata_is_denied_by_default() {
    let outcome = hostile(json!({"mode": "connect", "target": "169.254.169.254:80"}))
        .await
        .run()
        .await;
    assert_eq!(
        failure(&outcome),
        "connection to 169.254.169.254:80 denied by network policy \
         (link-local and cloud-metadata addresses are denied unless network.allow names them)"
    );
}

#[tokio::test]
async fn loopback_is_denied_unless_the_policy_names_it() {
    let server = servers::http().await;
    let port = server.port();
    let raw = hostile(json!({"mode": "connect", "target": server.to_string()}))
        .await
        .default_policy()
        .run()
        .await;
    assert_eq!(
        failure(&raw),
        format!(
            "connection to {server} denied by network policy \
             (loopback is denied unless network.allow names it, e.g. `127.0.0.1/32` or `localhost:5432`)"
        )
    );
    let via_http = Probe::new("http", json!({}))
        .await
        .collector(
            "http-request",
            json!({"url": format!("http://localhost:{port}/ok")}),
        )
        .await
        .default_policy()
        .run()
        .await;
    assert!(
        failure(&via_http).contains("(127.0.0.1) denied by network policy (loopback is denied"),
        "{via_http:?}"
    );
    let named = hostile(json!({"mode": "connect", "target": server.to_string()}))
        .await
        .run()
        .await;
    assert_eq!(named.failure, None, "{named:?}");
    let mut by_name = hostile(json!({"mode": "connect", "target": server.to_string()})).await;
    by_name.policy = PolicySpec {
        allow: vec![format!("localhost:{port}")],
        deny: Vec::new(),
    };
    let by_name = by_name.run().await;
    assert_eq!(
        by_name.failure, None,
        "a raw connect under `localhost:{port}`: {by_name:?}"
    );
}

#[tokio::test]
async fn a_name_resolving_to_a_denied_address_is_refused() {
    let server = servers::http().await;
    let port = server.port();
    let raw = hostile(json!({"mode": "connect", "target": format!("localhost:{port}")}))
        .await
        .deny("127.0.0.0/8")
        .run()
        .await;
    assert!(
        failure(&raw).contains("denied by network policy (deny rule `127.0.0.0/8`)"),
        "{raw:?}"
    );

    let via_http = Probe::new("http", json!({}))
        .await
        .collector(
            "http-request",
            json!({"url": format!("http://localhost:{port}/ok")}),
        )
        .await
        .deny("127.0.0.0/8")
        .run()
        .await;
    assert_eq!(
        failure(&via_http),
        format!(
            "connection to localhost:{port} (127.0.0.1) denied by network policy (deny rule `127.0.0.0/8`)"
        )
    );
}

#[tokio::test]
async fn a_guest_sees_only_the_environment_it_was_given() {
    let outcome = hostile(json!({"mode": "env", "name": "HOME"}))
        .await
        .env("API_TOKEN", "tok-1234")
        .run()
        .await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    assert_eq!(
        outcome.collectors[0].result["value"],
        serde_json::Value::Null
    );
    assert_eq!(outcome.collectors[0].result["all"], json!(["API_TOKEN"]));
}

#[tokio::test]
async fn an_echoed_secret_is_masked_in_error_logs_and_result() {
    const CANARY: &str = "canary-7f3a9c";
    let outcome = hostile(json!({"mode": "echo-secret", "name": "TOKEN"}))
        .await
        .env("TOKEN", CANARY)
        .run()
        .await;
    let text = serde_json::to_string(&outcome).unwrap();
    assert!(!text.contains(CANARY), "secret leaked: {text}");
    assert_eq!(
        outcome.collectors[0].error.as_deref(),
        Some("transport error: leaking **** in an error")
    );
    assert!(
        outcome
            .logs
            .iter()
            .any(|l| l.message == "the secret is ****"),
        "{:?}",
        outcome.logs
    );
    assert!(
        outcome
            .logs
            .iter()
            .any(|l| l.message == "stdout secret ****"),
        "{:?}",
        outcome.logs
    );

    let outcome = hostile(json!({"mode": "echo-secret-result", "name": "TOKEN"}))
        .await
        .env("TOKEN", CANARY)
        .run()
        .await;
    let text = serde_json::to_string(&outcome).unwrap();
    assert!(!text.contains(CANARY), "secret leaked: {text}");
    assert_eq!(
        outcome.collectors[0].result,
        json!({"leak": "value=****", "****": 1})
    );
}

async fn load_error(path: &std::path::Path) -> LoadError {
    runtime().load(path).await.expect_err("load must fail")
}

#[tokio::test]
async fn the_loader_refuses_what_is_not_a_compatible_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let err = load_error(&core).await.to_string();
    assert!(
        err.contains("core.wasm: is a core WebAssembly module, not a component"),
        "{err}"
    );

    let random = dir.path().join("random.wasm");
    std::fs::write(
        &random,
        (0..4096u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let err = load_error(&random).await.to_string();
    assert!(err.contains("random.wasm: not a WebAssembly file"), "{err}");

    let err = load_error(&guest("not-a-plugin")).await.to_string();
    assert!(
        err.contains("not-a-plugin.wasm: exports neither checkhost:plugin/strategy-plugin"),
        "{err}"
    );
    assert!(
        err.contains("wasi:cli/run@0.2"),
        "names what it found: {err}"
    );

    let err = load_error(&guest("future-major")).await.to_string();
    assert!(
        err.contains(
            "built against checkhost:plugin@2.0.0, but this host implements checkhost:plugin@1.x"
        ),
        "{err}"
    );

    let err = load_error(&guest("bad-schema")).await.to_string();
    assert!(
        err.contains("plugin `bad-schema` has an invalid config schema: field at /properties/token is marked both x-templatable and x-secret"),
        "{err}"
    );
}

/// Starts `runs` slow runs at once on a runtime with the given guest memory
/// budget; returns the most guest memories seen in use at one time, the
/// most runs seen waiting for admission, and each run's outcome.
async fn slow_runs(
    runs: usize,
    budget_mib: u64,
    server: std::net::SocketAddr,
) -> (u64, u64, Vec<RunOutcome>) {
    let runtime = std::sync::Arc::new(
        checkhost::runtime::Runtime::new(checkhost::runtime::RuntimeConfig {
            cache_dir: Some(support::cache_dir()),
            instance_slots: 8,
            guest_memory_budget_mib: budget_mib,
            ..Default::default()
        })
        .unwrap(),
    );
    let mut probe = Probe::new("http", json!({})).await.timeout_ms(300);
    probe.strategy = runtime.load(guest("http")).await.unwrap();
    probe.collectors = vec![(
        runtime.load(guest("hostile")).await.unwrap(),
        json!({"mode": "slow-call", "target": format!("http://{server}/slow")}),
    )];
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (runtime, done) = (runtime.clone(), done.clone());
        tokio::spawn(async move {
            let (mut memories, mut waiting) = (0, 0);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let usage = runtime.pool_usage();
                memories = memories.max(usage.memories_in_use);
                waiting = waiting.max(usage.runs_waiting);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (memories, waiting)
        })
    };
    let outcomes = futures::future::join_all((0..runs).map(|_| runtime.run(probe.spec()))).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (memories, waiting) = sampler.await.unwrap();
    (memories, waiting, outcomes)
}

/// A run waits until the guest memory budget has room for its guests'
/// initial memories; a run heavier than the whole budget runs alone. Its
/// deadline starts once it is admitted, not while it waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_wait_for_room_in_the_guest_memory_budget() {
    let server = servers::http().await;
    let (one_run, _, _) = slow_runs(1, 64, server).await;
    assert!(one_run >= 1, "the sampler saw the run's memories");
    let (together, _, _) = slow_runs(3, 64, server).await;
    assert!(
        together > one_run,
        "with room, the runs overlap: {together} memories at once, {one_run} per run"
    );
    // Two Rust guests start with over 2 MiB, so each run alone is heavier
    // than a 1 MiB budget.
    let (alone, waiting, outcomes) = slow_runs(3, 1, server).await;
    assert_eq!(waiting, 2, "two runs wait while the first runs");
    assert_eq!(
        alone, one_run,
        "in a 1 MiB budget the runs take turns: {alone} memories at once, {one_run} per run"
    );
    // Each waited its turn and still had its whole 300 ms once admitted
    // (the host's deadline or the strategy's read timeout, whichever fires
    // first, ends it).
    for outcome in &outcomes {
        let error = outcome.error().unwrap_or_default();
        assert!(error.contains("timeout"), "{outcome:?}");
        assert!(outcome.duration_ms >= 250.0, "{outcome:?}");
    }
    // Nor does the wait count as the run's duration: the last admitted
    // waited for two others, counted it would be about three times the first.
    let durations: Vec<f64> = outcomes.iter().map(|o| o.duration_ms).collect();
    let (shortest, longest) = durations
        .iter()
        .fold((f64::MAX, 0.0_f64), |(lo, hi), &d| (lo.min(d), hi.max(d)));
    assert!(
        longest < 2.0 * shortest,
        "durations exclude the wait: {durations:?}"
    );
    let queued: Vec<Duration> = outcomes.iter().map(|o| o.stats.queued).collect();
    assert!(
        queued.iter().any(|q| *q >= Duration::from_millis(500)),
        "the last run waited for two before it: {queued:?}"
    );
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// 1,000 sequential and 1,000 concurrent runs (far more than the 32 pool
/// slots) all succeed, and RSS grows by less than 64 MiB once warm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_runs_succeed_without_growing_the_host() {
    let probe = hostile(json!({"mode": "echo", "target": "x"})).await;
    for _ in 0..100 {
        assert_eq!(probe.run().await.error(), None);
    }
    let before = rss_kib();
    for i in 0..1000 {
        let outcome = probe.run().await;
        assert_eq!(outcome.error(), None, "sequential run {i}: {outcome:?}");
    }
    let spec_probe = std::sync::Arc::new(probe);
    let handles: Vec<_> = (0..1000)
        .map(|_| {
            let p = spec_probe.clone();
            tokio::spawn(async move { p.run().await })
        })
        .collect();
    for (i, handle) in handles.into_iter().enumerate() {
        let outcome = handle.await.unwrap();
        assert_eq!(outcome.error(), None, "concurrent run {i}: {outcome:?}");
    }
    let growth_mib = rss_kib().saturating_sub(before) / 1024;
    assert!(
        growth_mib < 64,
        "RSS grew by {growth_mib} MiB over 2,000 runs"
    );
}
