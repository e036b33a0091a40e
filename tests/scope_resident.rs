//! The documented memory figures: a greenlet's stack is 256 KiB of address
//! space by default (a slot of the hub's stack region, reserved up front, so
//! the process's virtual size does not grow per greenlet), of which an idle,
//! shallow greenlet keeps one 4 KiB page resident (the README's figure; no
//! bottom-of-stack sentinel any more). Measured from `/proc/self/statm` with
//! 2000 sleeping greenlets. One test in its own binary, so no other test
//! thread allocates while it measures.

use std::time::Duration;

use greenlet::{hub, sleep, spawn};

const COUNT: usize = 2000;
const KIB: usize = 1024;

/// `(virtual size, resident size)` of this process in bytes.
fn statm() -> (usize, usize) {
    let text = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let mut fields = text
        .split_whitespace()
        .map(|f| f.parse::<usize>().expect("statm fields are page counts"));
    let size = fields.next().expect("size field");
    let resident = fields.next().expect("resident field");
    let page = page_size();
    (size * page, resident * page)
}

/// The page size, from `/proc/self/smaps` (`KernelPageSize`).
fn page_size() -> usize {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("read /proc/self/smaps");
    smaps
        .lines()
        .find_map(|l| l.strip_prefix("KernelPageSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map(|kb| kb * KIB)
        .expect("KernelPageSize in smaps")
}

#[greenlet::test]
fn idle_greenlets_cost_a_few_kib_resident_of_a_256_kib_stack() {
    assert_eq!(hub::DEFAULT_STACK_SIZE, 256 * KIB);
    assert_eq!(
        hub::default_stack_size(),
        256 * KIB,
        "the default in effect"
    );

    // No cached stacks: every greenlet below maps a fresh one. Warm up the
    // allocator and the hub's tables so the measurement sees stacks only.
    hub::set_stack_cache_limit(0);
    let warm: Vec<_> = (0..COUNT).map(|_| spawn(|| ())).collect();
    warm.iter().for_each(|g| g.join().unwrap());
    drop(warm);
    sleep(Duration::from_millis(1)); // the loop trims the stack cache
    assert_eq!(hub::stats().stacks_allocated, 0, "{:?}", hub::stats());
    let (virt_before, rss_before) = statm();

    let gs: Vec<_> = (0..COUNT).map(|_| spawn(|| sleep(Duration::MAX))).collect();
    sleep(Duration::ZERO); // every greenlet runs up to its sleep
    let s = hub::stats();
    assert_eq!(s.greenlets, COUNT, "{s:?}");
    assert_eq!(s.timers, 0, "sleep(MAX) arms no timer: {s:?}");
    let (virt_after, rss_after) = statm();

    let mapped = virt_after.saturating_sub(virt_before) / COUNT;
    let resident = rss_after.saturating_sub(rss_before) / COUNT;
    eprintln!(
        "{COUNT} idle greenlets: {} KiB newly mapped, {} B resident each",
        mapped / KIB,
        resident
    );
    // The warm-up's slots came back to the region and were reused: no new
    // address space per greenlet (with `mprotect` guards, the guard pages
    // change no size either).
    assert!(
        mapped < 4 * KIB,
        "stacks come from the region, not a mapping each: {mapped} B each"
    );
    // One stack page plus the hub's and the test's per-greenlet bookkeeping
    // (slot, core, handle): well under two pages. Unoptimised builds have
    // much larger frames, and a parking greenlet runs the scheduler's pick
    // of the next greenlet on its own stack (the direct switch): its deepest
    // frames reach into a second page there.
    let bound = if cfg!(debug_assertions) { 10 } else { 6 } * KIB;
    assert!(
        resident < bound,
        "an idle greenlet keeps {resident} B resident (claim: one 4 KiB page \
         optimised, bound {} KiB)",
        bound / KIB
    );

    for g in &gs {
        g.kill_nowait();
    }
    for g in &gs {
        g.join().unwrap();
    }
    hub::set_stack_cache_limit(hub::DEFAULT_STACK_CACHE_LIMIT);
}
