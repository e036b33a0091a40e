//! Issue 16: stack memory goes back when greenlets are done.
//!
//! Greenlet stacks are slots of one process-wide region. A finished
//! greenlet's slot goes back to its hub's free list and its pages are
//! dropped (`MADV_DONTNEED`) when the loop goes idle; at thread exit the
//! hub's slots go back to the process (cleaned), and another thread reuses
//! them. Resident memory comes back each time. Alone in its binary: RSS is
//! process-wide.

use std::time::Duration;

use greenlet::{Greenlet, hub, sleep, spawn};

const N: usize = 5000;
const KIB: usize = 1024;

fn rss() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<usize>().ok())
        .map_or(0, |kb| kb * KIB)
}

fn memory_mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps").map_or(0, |m| m.lines().count())
}

/// `N` greenlets parked at once, then all finished; returns the RSS growth
/// while they were parked.
fn park_and_finish() -> usize {
    let before = rss();
    let gs: Vec<Greenlet<()>> = (0..N)
        .map(|_| spawn(|| sleep(Duration::from_secs(3600))))
        .collect();
    sleep(Duration::ZERO);
    let parked = rss().saturating_sub(before);
    for g in &gs {
        g.kill().unwrap();
    }
    assert!(gs.iter().all(Greenlet::is_dead));
    parked
}

#[test]
fn stack_pages_come_back_when_idle_and_at_thread_exit() {
    // Warm up the allocator and the region's first chunk on this thread.
    greenlet::run(|| {
        hub::set_stack_cache_limit(0);
        park_and_finish();
        sleep(Duration::from_millis(1));
    });
    let base = rss();
    let base_maps = memory_mappings();

    // On threads: each parks N greenlets (~4 KiB resident each), finishes
    // them, and exits; its slots go back to the process.
    for round in 0..3 {
        let parked = std::thread::spawn(|| {
            greenlet::run(|| {
                hub::set_stack_cache_limit(0);
                park_and_finish()
            })
        })
        .join()
        .expect("the thread's hub ran");
        assert!(
            parked >= N * 3 * KIB,
            "round {round}: {parked} B for {N} parked greenlets"
        );
        let after = rss();
        assert!(
            after < base + N * KIB,
            "round {round}: {} KiB still resident after the thread exited (base {} KiB)",
            after / KIB,
            base / KIB
        );
    }

    // On this thread: after the loop idles, the finished greenlets' pages
    // are dropped (no stack cache).
    greenlet::run(|| {
        hub::set_stack_cache_limit(0);
        let parked = park_and_finish();
        assert!(parked >= N * 3 * KIB, "{parked} B for {N} parked greenlets");
        sleep(Duration::from_millis(1)); // the loop waits: it trims
        let after = rss();
        assert!(
            after < base + N * KIB,
            "{} KiB still resident after the loop idled (base {} KiB)",
            after / KIB,
            base / KIB
        );
        hub::set_stack_cache_limit(hub::DEFAULT_STACK_CACHE_LIMIT);
    });

    // The threads' slots were reused: the region did not grow by mappings.
    let grown = memory_mappings().saturating_sub(base_maps);
    assert!(grown < 20, "{grown} mappings more after four hubs");
}
