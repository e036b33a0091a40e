//! Spawning until the process-wide stack budget is used up.
//!
//! The budget only exists with `mprotect` stack guards (kernels without
//! guard markers, Linux < 6.13): `hub::max_live_stacks()`,
//! `(vm.max_map_count - maps - 4096) / 2`. On a kernel with guard markers the
//! test re-runs itself in a child process with `GREENLET_STACK_GUARDS=mprotect`
//! (the fallback, forced), so the budget path is covered on every kernel; the
//! guard-marker side (a million parked greenlets) is `tests/stacks_million.rs`.
//! The budget is process-wide, so this scenario is alone in its test binary:
//! no other test of this process holds stack units while it runs.
//!
//! Past the budget `Builder::spawn` returns `Err(SpawnError)` and the plain
//! forms panic with the same message; the greenlets already alive are
//! unaffected and all finish; the counters return to baseline; the budget is
//! fully returned (the second round reaches the same count).

mod reliability_common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use greenlet::{Builder, Greenlet, hub, sleep, spawn, spawn_raw};
use reliability_common::Baseline;

/// Workers per gate: each worker joins its gate, so killing the gates
/// releases them (many small link lists rather than one huge one).
const PER_GATE: usize = 256;

fn memory_mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps").map_or(0, |m| m.lines().count())
}

fn max_map_count() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// Re-runs this test in a child process with the `mprotect` fallback forced;
/// `true` when the caller is the parent (and the child passed).
fn ran_in_fallback_child() -> bool {
    if !hub::uses_guard_markers() {
        return false;
    }
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let out = std::process::Command::new(exe)
        .args([
            "spawn_until_the_stack_limit_then_recover",
            "--exact",
            "--nocapture",
        ])
        .env("GREENLET_STACK_GUARDS", "mprotect")
        .output()
        .expect("the test binary can be re-run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "fallback child failed:\n{stderr}");
    assert!(stderr.contains("live greenlets (budget"), "{stderr}");
    eprint!("{stderr}");
    true
}

#[greenlet::test]
fn spawn_until_the_stack_limit_then_recover() {
    if ran_in_fallback_child() {
        return;
    }
    assert!(!hub::uses_guard_markers());
    let limit = hub::max_live_stacks();
    assert!(limit > 1000, "implausible budget {limit}");
    let mut first_round = None;
    for round in 0..2 {
        let base = Baseline::take();
        let t0 = Instant::now();
        let mut gates: Vec<Greenlet<()>> = Vec::new();
        let mut workers: Vec<Greenlet<usize>> = Vec::new();
        let error = loop {
            if workers.len().is_multiple_of(PER_GATE) {
                match Builder::new().spawn(|| sleep(Duration::MAX)) {
                    Ok(g) => gates.push(g),
                    Err(e) => break e,
                }
            }
            let gate = gates.last().expect("a gate exists").clone();
            let i = workers.len();
            match Builder::new().spawn(move || {
                gate.join().unwrap();
                i
            }) {
                Ok(g) => workers.push(g),
                Err(e) => break e,
            }
            if workers.len().is_multiple_of(1024) {
                // Let the new ones run up to their join: each maps its stack.
                sleep(Duration::ZERO);
            }
        };
        sleep(Duration::ZERO);
        let spawned = gates.len() + workers.len();
        let at_limit = hub::stats();
        let spawn_time = t0.elapsed();

        // The error names the budget and the sysctl; nothing was spawned
        // past it, and every live greenlet really holds a mapped stack.
        assert_eq!(error.limit(), limit);
        assert_eq!(error.live_stacks(), spawned);
        let text = error.to_string();
        assert!(text.contains("vm.max_map_count"), "{text}");
        assert_eq!(spawned, limit, "round {round}: {at_limit:?}");
        assert_eq!(at_limit.greenlets, spawned);
        assert_eq!(at_limit.stacks_allocated, spawned, "{at_limit:?}");
        assert_eq!(at_limit.stacks_pooled, 0);
        let maps = memory_mappings();
        assert!(maps >= 2 * spawned, "{maps} mappings for {spawned} stacks");
        if let Some(max) = max_map_count() {
            assert!(
                maps < max,
                "{maps} mappings: the kernel limit {max} was reached"
            );
        }

        // The other spawn forms refuse too, by panicking (std parity).
        for (what, f) in [
            ("spawn", Box::new(|| drop(spawn(|| ()))) as Box<dyn Fn()>),
            ("spawn_raw", Box::new(|| spawn_raw(|| ()))),
            ("start", Box::new(|| Greenlet::new(|| ()).start())),
        ] {
            let p = catch_unwind(AssertUnwindSafe(f)).expect_err(what);
            let msg = p.downcast_ref::<String>().cloned().unwrap_or_default();
            assert!(msg.contains("vm.max_map_count"), "{what}: {msg}");
        }
        assert!(Builder::new().spawn(|| ()).is_err());
        assert_eq!(
            hub::stats().greenlets,
            spawned,
            "refusals leave nothing behind"
        );

        // Release everyone: all finish normally, with their own value.
        let t1 = Instant::now();
        for gate in &gates {
            gate.kill().unwrap();
        }
        hub::join();
        assert!(workers.iter().all(Greenlet::is_ready));
        let sum: usize = workers.iter().map(|g| g.get().expect("worker ok")).sum();
        let n = workers.len();
        assert_eq!(sum, n * (n - 1) / 2);
        let release_time = t1.elapsed();
        drop((gates, workers));
        base.check();

        // Spawning works again.
        assert_eq!(spawn(|| 5).get().expect("after the limit"), 5);
        base.check();
        eprintln!(
            "round {round}: {spawned} live greenlets (budget {limit}) in {spawn_time:?}, \
             released in {release_time:?}, {maps} mappings"
        );
        match first_round {
            None => first_round = Some(spawned),
            Some(first) => assert_eq!(spawned, first, "the budget came back in full"),
        }
    }
}
