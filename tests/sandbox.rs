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

/// A swap file for one test, switched off (its pages read back in) on drop.
struct Swap(tempfile::TempDir);

impl Swap {
    /// `None` (after a loud message) where this process may not add swap.
    fn on() -> Option<Swap> {
        // /var/tmp is on the root file system here; /tmp may be a tmpfs,
        // which cannot hold swap.
        let dir = tempfile::tempdir_in("/var/tmp").ok()?;
        let file = dir.path().join("swap");
        let made = std::fs::File::create(&file)
            .and_then(|f| f.set_len(128 << 20))
            .is_ok();
        let run = |cmd: &str, arg: &std::path::Path| {
            std::process::Command::new(cmd)
                .arg(arg)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        // mkswap wants the blocks allocated, not a sparse file.
        let filled = made
            && std::process::Command::new("dd")
                .args(["if=/dev/zero", "bs=1M", "count=128", "status=none"])
                .arg(format!("of={}", file.display()))
                .status()
                .is_ok_and(|s| s.success());
        let _ =
            std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600));
        if filled && run("mkswap", &file) && run("swapon", &file) {
            return Some(Swap(dir));
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "cannot add a swap file under CI: machines of this kind run as root on ext4"
        );
        eprintln!(
            "SKIPPED: cannot add a swap file (needs root and a file system that holds swap); \
             the swapped-out page reset was not tested"
        );
        None
    }
}

impl Drop for Swap {
    fn drop(&mut self) {
        let _ = std::process::Command::new("swapoff")
            .arg(self.0.path().join("swap"))
            .status();
    }
}

/// Asks the kernel to push every private writable mapping of this process
/// out to swap (`MADV_PAGEOUT`); returns how much of it is swapped now, in kB.
fn page_out_this_process() -> u64 {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        if perms != "rw-p" {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        // SAFETY: MADV_PAGEOUT only moves pages to swap; their contents and
        // the mapping stay as they are.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT);
        }
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmSwap:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A page the guest wrote that went out to swap before its instance was
/// dropped is reset like a resident one: the next instance in the slot
/// never reads the earlier run's data back in. (The page-map scan used to
/// look at present pages only.) Real swap, real `MADV_PAGEOUT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_written_page_pushed_out_to_swap_is_still_reset() {
    let Some(_swap) = Swap::on() else {
        return;
    };
    // One plugin, so every run lands in the slot its module last used.
    let mut probe = hostile(json!({"mode": "remember"})).await;
    let warm = probe.run().await;
    assert_eq!(warm.error(), None, "{warm:?}");
    probe.collectors[0].1 = json!({"mode": "remember", "pause_ms": 1500});
    let (written, swapped_kb) = tokio::join!(probe.run(), async {
        // The guest has written its pages and waits in its pause.
        tokio::time::sleep(Duration::from_millis(500)).await;
        page_out_this_process()
    });
    assert_eq!(written.error(), None, "{written:?}");
    assert!(swapped_kb > 0, "nothing went out to swap");
    probe.collectors[0].1 = json!({"mode": "remember"});
    for run in 0..3 {
        let outcome = probe.run().await;
        assert_eq!(outcome.error(), None, "{outcome:?}");
        let result = &outcome.collectors[0].result;
        assert_eq!(
            result["stale"], 0,
            "run {run} read a swapped-out page of an earlier run: {result}"
        );
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
    // 64 KiB of 43-byte lines is over 1,500 lines: the line cap holds too.
    let (kept, note) = outcome.logs.split_at(outcome.logs.len() - 1);
    assert_eq!(kept.len(), 1000, "{:?}", &outcome.logs[..3]);
    assert!(
        note[0]
            .message
            .ends_with("more stdout lines dropped: the log limit is 1000 lines"),
        "{:?}",
        note[0]
    );
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

/// Header fields live in host memory, outside the guest's linear memory:
/// 50,000 of 64 KiB would be 3.2 GB. The run's host-memory budget stops
/// the guest at 64 MiB and the run fails, naming the budget.
#[tokio::test]
async fn host_memory_held_through_http_fields_is_capped() {
    let outcome = hostile(json!({"mode": "fields", "bytes": 50_000}))
        .await
        .run()
        .await;
    assert_eq!(
        failure(&outcome),
        "hostile: host memory budget 64 MiB exceeded"
    );
    let peak = outcome.stats.host_memory_peak_bytes;
    assert!(
        (64 << 20..80 << 20).contains(&peak),
        "peak host memory {peak} bytes"
    );
    assert!(outcome.collectors.is_empty(), "{outcome:?}");
    assert_host_still_serves().await;
}

/// Response headers are parsed by the host in tasks of their own, outside
/// the guest's calls: holding 400 responses of 360 KiB of headers each is
/// still charged to the run, and stopped at its budget.
#[tokio::test]
async fn host_memory_held_through_http_responses_is_capped() {
    let server = servers::http().await;
    let outcome = hostile(json!({"mode": "responses", "target": server.to_string(), "bytes": 400}))
        .await
        .run()
        .await;
    assert_eq!(
        failure(&outcome),
        "hostile: host memory budget 64 MiB exceeded",
        "{:?}",
        outcome.collectors
    );
    assert_host_still_serves().await;
}

/// An ordinary run is charged what it really holds, far below the budget.
#[tokio::test]
async fn an_ordinary_run_holds_little_host_memory() {
    let outcome = hostile(json!({"mode": "echo", "target": "x"}))
        .await
        .run()
        .await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let peak = outcome.stats.host_memory_peak_bytes;
    assert!(peak > 0 && peak < 4 << 20, "peak host memory {peak} bytes");
}

/// A guest that opens sockets until refused, keeps them and reports
/// success anyway still fails: at most `maxSockets` were ever open.
#[tokio::test]
async fn sockets_are_capped_per_run_even_when_the_guest_swallows_the_refusal() {
    let server = servers::silent().await;
    let outcome = hostile(json!({"mode": "sockets", "target": server.to_string(), "bytes": 1000}))
        .await
        .run()
        .await;
    assert_eq!(
        failure(&outcome),
        "hostile: socket limit exceeded: more than 64 open at once"
    );
    let mut few =
        hostile(json!({"mode": "sockets", "target": server.to_string(), "bytes": 1000})).await;
    few.limits.max_sockets = 3;
    let outcome = few.run().await;
    assert_eq!(
        failure(&outcome),
        "hostile: socket limit exceeded: more than 3 open at once"
    );
    // Under the cap nothing is refused.
    let outcome = hostile(json!({"mode": "sockets", "target": server.to_string(), "bytes": 10}))
        .await
        .run()
        .await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    assert_eq!(outcome.collectors[0].result["open"], 10);
    assert_host_still_serves().await;
}

/// A 10 MB error is stored as 4 KiB and says it was cut.
#[tokio::test]
async fn a_huge_error_is_cut_to_4_kib_and_marked() {
    let outcome = hostile(json!({"mode": "huge-error", "bytes": 10_000_000}))
        .await
        .run()
        .await;
    let error = outcome.collectors[0].error.as_deref().unwrap();
    assert!(error.len() < 4096 + 64, "{} bytes", error.len());
    assert!(
        error.starts_with("transport error: EEEE"),
        "{}",
        &error[..40]
    );
    assert!(
        error.ends_with("… [truncated: 10000017 bytes]"),
        "{}",
        &error[error.len() - 60..]
    );
}

/// A migration that blocks in a host call (where epochs cannot reach) or
/// spins ends within its deadline; a 120-step chain migrates, each step in
/// a fresh store; a guest's migration error is cut to size.
#[tokio::test]
async fn migrations_run_under_a_deadline_and_long_chains_work() {
    let plugin = support::load("hostile").await;
    let short = Duration::from_millis(500);
    let started = Instant::now();
    let err = runtime()
        .migrate_within(&plugin, &json!({"mode": "migrate-hang"}), short)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin `hostile` did not finish migrating its config within 500 ms"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "safety net");
    let err = runtime()
        .migrate_within(&plugin, &json!({"mode": "migrate-spin"}), short)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("within 500 ms") || err.contains("cpu budget exceeded after 500 ms"),
        "{err}"
    );
    assert_eq!(plugin.info.config_version, 120);
    let migrated = runtime()
        .migrate(&plugin, &json!({"mode": "noop"}))
        .await
        .unwrap();
    assert_eq!(migrated, json!({"mode": "noop"}));
    let err = runtime()
        .migrate(&plugin, &json!({"mode": "migrate-error"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.len() < 4096 + 200, "{} bytes", err.len());
    assert!(err.contains("… [truncated: "), "{}", &err[err.len() - 60..]);
}

/// A collector asking a spinning strategy reports the CPU budget, not the
/// client's drop failing.
#[tokio::test]
async fn a_strategy_spinning_in_exec_reports_the_cpu_budget() {
    let outcome = Probe::new("noop", json!({"spin": true}))
        .await
        .collector("hostile", json!({"mode": "echo", "target": "x"}))
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
}

/// The host's own interface addresses are as local as loopback: a service
/// bound to 0.0.0.0 is not reachable through them, nor is loopback through
/// a NAT64 or 6to4 spelling.
#[tokio::test]
async fn the_hosts_own_addresses_are_denied_by_default() {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = conn.write_all(b"secret banner\r\n").await;
        }
    });
    let own = if_addrs::get_if_addrs()
        .unwrap()
        .into_iter()
        .map(|i| i.ip())
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
        .expect("a non-loopback IPv4 address on this machine");
    let target = std::net::SocketAddr::new(own, port);
    let outcome = hostile(json!({"mode": "connect", "target": target.to_string()}))
        .await
        .default_policy()
        .run()
        .await;
    assert_eq!(
        failure(&outcome),
        format!(
            "connection to {target} denied by network policy \
             (this host's own addresses are denied unless network.allow names the address itself)"
        )
    );
    for spelling in ["[64:ff9b::7f00:1]", "[2002:7f00:1::1]"] {
        let target = format!("{spelling}:{port}");
        let outcome = hostile(json!({"mode": "connect", "target": target}))
            .await
            .default_policy()
            .run()
            .await;
        assert!(
            failure(&outcome).contains("denied by network policy (loopback is denied"),
            "{spelling}: {outcome:?}"
        );
    }
}

/// base64, URL-safe base64, hex, percent-encoding and a Basic header made
/// from the secret are all masked.
#[tokio::test]
async fn encoded_secrets_are_masked() {
    const SECRET: &str = "canary/7f3a 9c+";
    let outcome = hostile(json!({"mode": "echo-secret-encoded", "name": "TOKEN"}))
        .await
        .env("TOKEN", SECRET)
        .run()
        .await;
    assert_eq!(outcome.error(), None, "{outcome:?}");
    let result = &outcome.collectors[0].result;
    for field in ["base64", "base64url", "hex", "percent"] {
        assert_eq!(result[field], "****", "{field}: {result}");
    }
    let basic = result["authorization"].as_str().unwrap();
    assert!(
        basic.starts_with("Basic ") && basic.contains("****"),
        "{basic}"
    );
    // Only the characters that also encode `user:` and the padding stay.
    assert!(basic.len() <= "Basic ****".len() + 10, "{basic}");
}

/// `plugin test` as a user runs it: guest text with terminal escapes is
/// shown escaped in the table, and stays exact in `--json`.
#[test]
fn plugin_test_shows_guest_escapes_inert() {
    let noop = guest("noop");
    let hostile = guest("hostile");
    for mode in ["escapes", "escapes-result"] {
        let config = format!(r#"{{"strategy": {{}}, "collector": {{"mode": "{mode}"}}}}"#);
        let args = [
            "plugin",
            "test",
            noop.to_str().unwrap(),
            "--collector",
            hostile.to_str().unwrap(),
            "--config",
            config.as_str(),
        ];
        let out = support::checkhost(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !stdout.contains('\x1b') && !stdout.contains('\x07'),
            "{mode}: {stdout:?}"
        );
        assert!(
            stdout.contains("]52;c;ZXZpbA=="),
            "shown, escaped: {stdout}"
        );
        let out = support::checkhost(&[&args[..], &["--json"]].concat());
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let text = json.to_string();
        assert!(
            text.contains("\\u001b]52;c;ZXZpbA==\\u0007"),
            "{mode}: {text}"
        );
    }
}

/// `--timeout-ms` bounds `migrate` too: a hanging migration ends the test
/// with a clear error instead of hanging it.
#[test]
fn plugin_test_bounds_a_hanging_migration() {
    let noop = guest("noop");
    let hostile = guest("hostile");
    let started = Instant::now();
    let out = support::checkhost(&[
        "plugin",
        "test",
        noop.to_str().unwrap(),
        "--collector",
        hostile.to_str().unwrap(),
        "--config",
        r#"{"strategy": {}, "collector": {"mode": "migrate-hang"}}"#,
        "--timeout-ms",
        "700",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("plugin `hostile` did not finish migrating its config within 700 ms"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(20), "safety net");
}

/// The noisy neighbour: while hostile guests sit at every limit at once in
/// this process (host memory, sockets, CPU, linear memory, logs, stdout,
/// error size, a blocked call), 100 ordinary checks beside them stay
/// healthy, and the host's RSS stays under 1.5 GiB (without the host memory
/// budget one fields guest alone would take 3.2 GB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_checks_stay_healthy_beside_guests_at_every_limit() {
    let server = servers::http().await;
    let silent = servers::silent().await;
    let attacks = [
        json!({"mode": "fields", "bytes": 50_000}),
        json!({"mode": "sockets", "target": silent.to_string(), "bytes": 100_000}),
        json!({"mode": "loop"}),
        json!({"mode": "memory"}),
        json!({"mode": "log-flood"}),
        json!({"mode": "stdout-flood"}),
        json!({"mode": "huge-error", "bytes": 10_000_000}),
        json!({"mode": "slow-call", "target": format!("http://{server}/slow")}),
    ];
    let mut hostile_probes = Vec::new();
    for attack in &attacks {
        for _ in 0..2 {
            let strategy = if attack["mode"] == "slow-call" {
                "http"
            } else {
                "noop"
            };
            hostile_probes.push(
                Probe::new(strategy, json!({}))
                    .await
                    .collector("hostile", attack.clone())
                    .await
                    .timeout_ms(3_000),
            );
        }
    }
    let ordinary = std::sync::Arc::new(
        Probe::new("http", json!({}))
            .await
            .collector(
                "http-request",
                json!({"url": format!("http://{server}/ok")}),
            )
            .await
            .timeout_ms(10_000),
    );
    let peak_rss = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(rss_kib()));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak_rss.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let hostile_runs: Vec<_> = hostile_probes
        .into_iter()
        .map(|p| tokio::spawn(async move { p.run().await }))
        .collect();
    let ordinary_runs: Vec<_> = (0..100)
        .map(|_| {
            let p = ordinary.clone();
            tokio::spawn(async move { p.run().await })
        })
        .collect();
    for (i, run) in ordinary_runs.into_iter().enumerate() {
        let outcome = run.await.unwrap();
        assert_eq!(outcome.error(), None, "ordinary run {i}: {outcome:?}");
        assert_eq!(outcome.collectors[0].result["statusCode"], 200);
    }
    for run in hostile_runs {
        // Every hostile run ends, whatever it tried.
        run.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.await.unwrap();
    let peak_mib = peak_rss.load(std::sync::atomic::Ordering::Relaxed) / 1024;
    assert!(peak_mib < 1536, "peak RSS {peak_mib} MiB");
}
