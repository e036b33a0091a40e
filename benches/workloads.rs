//! The project's side of the peer benchmarks in `../shared/peers/` (see the
//! README there): the same workloads as the `generator`, `may`, `tokio`, Go
//! and gevent peers, printed as one `key=value` line in the harness's format,
//! so that `run.sh` can put greenlet next to them in one run.
//!
//! ```sh
//! cargo build --profile bench -p greenlet-benches --bench workloads   # fat LTO
//! cp target/release/deps/workloads-<hash> ${TMPDIR:-/tmp}/greenlet-bench/greenlet-workloads
//! ${TMPDIR:-/tmp}/greenlet-bench/greenlet-workloads switch        # or spawn_join, sleepers
//! ${TMPDIR:-/tmp}/greenlet-bench/greenlet-workloads switch 10000  # smaller n (profiling)
//! ```
//!
//! One hub on one thread (`config=hub1`): compare with `tokio ct`, `may w1`
//! and `go gmp1`. The whole workload is driven from the native stack, which
//! runs the hub loop whenever it blocks in `join`/`get`.
//!
//! | workload | what it does | figure |
//! |---|---|---|
//! | `switch` | two greenlets each `sleep(ZERO)` n = 1,000,000 times (10,000 warm-up first) | `ns_per_switch` = wall / 2n |
//! | `spawn_join` | spawn 100,000 greenlets returning `i % 7`, then `get()` all in order and sum | `ns_per_task`, `bytes_per_task` |
//! | `sleepers` | 100,000 greenlets each `sleep(10 ms)`; join all | `wall_ms`, `bytes_per_task` |
//! | `pingpong` | two greenlets pass a counter back and forth n = 1,000,000 times over two unbounded `queue::Queue`s (10,000 warm-up first) | `ns_per_roundtrip` = wall / n |
//! | `sleepers_1m` | 1,000,000 greenlets each `sleep(10 ms)`; join all (not a peer workload) | `wall_ms`, `bytes_per_task`, `maps_grown` |
//!
//! Memory: `bytes_per_task` = (VmHWM after the run − VmRSS before it) / n,
//! as the peers compute it. `stacks_peak` is the hub's count of mapped
//! stacks with every task started (read in O(1) from `hub::stats()` by a
//! probe greenlet that runs last). `maps_peak` (the process's memory
//! mappings, two per live stack) is counted in a second, *untimed* pass of
//! the same workload: reading `/proc/self/maps` with 200,000 entries takes
//! tens of milliseconds and would distort `wall_ms`.
//!
//! Every started-but-unfinished greenlet holds a stack unit, and the process
//! may hold `(vm.max_map_count − 4096) / 2` of them (30,717 at the default
//! 65530), so `spawn_join` and `sleepers` need `vm.max_map_count=262144`
//! (`MAX_MAP_COUNT=262144 run.sh` sets it as root). Below that, the run
//! prints a line with `error=spawn_failed failed_at=<k>` and exits with
//! status 4 instead of crashing.
//!
//! That budget only exists on kernels without stack guard markers (Linux <
//! 6.13): with them (`hub::uses_guard_markers()`) stacks cost no mapping
//! each and every workload runs at the default `vm.max_map_count`.
//!
//! Two environment knobs exist for experiments (not for the comparison):
//! `GREENLET_BENCH_POOL_LIMIT=<stacks>` (`hub::set_stack_cache_limit`) and
//! `GREENLET_BENCH_STACK_SIZE=<bytes>` (`hub::set_default_stack_size`); the
//! `config` column then reads e.g. `hub1-pool200000`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use greenlet::{Builder, Greenlet, GreenletError, hub, sleep, spawn};

mod net_workloads;

const PEER: &str = "greenlet";

/// Yields per greenlet in `switch` (the peers' `SWITCH_N`).
const SWITCH_N: u64 = 1_000_000;
/// Yields per greenlet before the timed `switch` run.
const SWITCH_WARMUP: u64 = 10_000;
/// Greenlets in `spawn_join`.
const SPAWN_N: usize = 100_000;
/// Greenlets in `sleepers`.
const SLEEP_N: usize = 100_000;
/// How long each sleeper sleeps.
const SLEEP_MS: u64 = 10;
/// The process ends if a workload runs longer than this (like the peers).
const WATCHDOG: Duration = Duration::from_secs(120);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Run by cargo rather than by the harness: `cargo bench` passes `--bench`
    // (say how this binary is meant to be run), `cargo bench -- --test` and
    // `cargo test --benches` want each workload checked once on small counts,
    // like criterion's test mode.
    if args.get(1).is_none_or(|a| a.starts_with("--")) {
        let bench = args.iter().any(|a| a == "--bench");
        let test = args.iter().any(|a| a == "--test");
        if bench && !test {
            eprintln!(
                "greenlet workloads: driven by the peer harness, see BENCHMARKS.md \
                 (usage: workloads <switch|spawn_join|sleepers|sleepers_1m|pingpong|echo> [n] | http_server PORT); nothing to do"
            );
        } else {
            greenlet::run(test_mode);
        }
        return;
    }
    let workload = args.get(1).map_or("", String::as_str);
    let n: Option<u64> = args.get(2).map(|s| match s.parse() {
        Ok(n) if n > 0 => n,
        _ => usage(),
    });
    watchdog(WATCHDOG);
    greenlet::run(|| {
        configure_hub();
        match workload {
            "switch" => switch(n.unwrap_or(SWITCH_N)),
            "spawn_join" => spawn_join(count(n, SPAWN_N)),
            "sleepers" => sleepers(count(n, SLEEP_N)),
            "sleepers_1m" => sleepers_1m(count(n, SLEEP_1M_N)),
            "pingpong" => pingpong(n.unwrap_or(SWITCH_N)),
            "echo" => match n {
                // `echo N`: N round trips per connection (profiling).
                Some(rounds) => net_workloads::echo(100, count(Some(rounds), 0)),
                None => net_workloads::echo_default(),
            },
            "http_server" => net_workloads::http_server(
                n.and_then(|p| u16::try_from(p).ok())
                    .unwrap_or_else(|| usage()),
            ),
            _ => usage(),
        }
    });
}

/// `cargo bench -- --test`: every workload once on small counts, each
/// checking its result and leaving the hub at rest.
fn test_mode() {
    watchdog(Duration::from_secs(60));
    switch(1_000);
    spawn_join(1_000);
    sleepers(100);
    pingpong(1_000);
    net_workloads::echo(10, 100);
    hub::join();
    let stats = hub::stats();
    assert!(stats.is_quiet(), "workloads left work behind: {stats:?}");
    println!("workloads: test mode ok");
}

fn usage() -> ! {
    eprintln!(
        "usage: workloads <switch|spawn_join|sleepers|sleepers_1m|pingpong|echo> [n] | http_server PORT"
    );
    std::process::exit(2);
}

fn count(n: Option<u64>, default: usize) -> usize {
    n.map_or(default, |n| usize::try_from(n).unwrap_or_else(|_| usage()))
}

/// Experiment knobs (environment), off by default. When one is set, the
/// `config` column names it, so the harness's table keeps such runs apart
/// from the default `hub1`.
const KNOBS: [(&str, &str); 2] = [
    ("GREENLET_BENCH_POOL_LIMIT", "pool"),
    ("GREENLET_BENCH_STACK_SIZE", "stack"),
];

/// The `config` column: `hub1`, plus `-pool<N>`/`-stack<N>` for knobs set.
fn config() -> String {
    let mut config = String::from("hub1");
    for (var, tag) in KNOBS {
        if let Ok(v) = std::env::var(var) {
            config.push_str(&format!("-{tag}{v}"));
        }
    }
    config
}

/// Applies the experiment knobs: the hub's pool limit (stacks kept for
/// reuse instead of unmapped) and default stack size in bytes.
fn configure_hub() {
    let knob = |var: &str| {
        std::env::var(var).ok().map(|v| {
            v.parse::<usize>().unwrap_or_else(|_| {
                eprintln!("{var} must be a number of bytes or stacks, got {v:?}");
                std::process::exit(2)
            })
        })
    };
    if let Some(limit) = knob(KNOBS[0].0) {
        hub::set_stack_cache_limit(limit);
    }
    if let Some(bytes) = knob(KNOBS[1].0) {
        hub::set_default_stack_size(bytes);
    }
}

// ------------------------------------------------------------------ switch

/// Two greenlets alternate through the hub with `sleep(ZERO)`. Each yield is
/// one "switch" in the peers' sense (a `may`/`tokio`/Go yield): the yielding
/// greenlet runs the scheduler's pick and switches straight to the other
/// (one register swap; the loop on the native stack is not involved).
fn switch(n: u64) {
    ping_pong_yields(SWITCH_WARMUP);
    let t = Instant::now();
    ping_pong_yields(n);
    let el = t.elapsed();
    let ns = el.as_nanos() as f64;
    Line::new("switch")
        .s("n", n)
        .f("wall_ms", ns / 1e6)
        .f("ns_per_roundtrip", ns / n as f64)
        .f("ns_per_switch", ns / (2 * n) as f64)
        .s("rss_peak_kb", hwm_kb())
        .print();
}

fn ping_pong_yields(k: u64) {
    let body = move || {
        for _ in 0..k {
            sleep(Duration::ZERO);
        }
    };
    let a = spawn(body);
    let b = spawn(body);
    a.join().expect("the yielding greenlet finishes");
    b.join().expect("the yielding greenlet finishes");
}

// -------------------------------------------------------------- spawn_join

fn spawn_join(n: usize) {
    let (el, base, stacks_peak, sum) = {
        warm_up();
        let base = rss_kb();
        let t = Instant::now();
        let gs = spawn_all(n, "spawn_join", |i| move || i % 7);
        let probe = spawn(|| hub::stats().stacks_allocated);
        let mut sum = 0usize;
        for (i, g) in gs.iter().enumerate() {
            match g.get() {
                Ok(v) => sum += v,
                Err(e) => task_failed("spawn_join", n, i, &e),
            }
        }
        let stacks_peak = probe.get().expect("the probe does not fail");
        (t.elapsed(), base, stacks_peak, sum)
    };
    assert_eq!(sum, (0..n).map(|i| i % 7).sum::<usize>());
    let peak_kb = hwm_kb();
    let maps_peak = maps_pass(n, |i| move || i % 7);
    report_tasks("spawn_join", n, el, base, peak_kb)
        .s("sum", sum)
        .s("stacks_peak", stacks_peak)
        .s("maps_peak", maps_peak)
        .print();
}

// ---------------------------------------------------------------- sleepers

fn sleepers(n: usize) {
    let nap = Duration::from_millis(SLEEP_MS);
    let (el, base, stacks_peak) = {
        warm_up();
        let base = rss_kb();
        let t = Instant::now();
        let gs = spawn_all(n, "sleepers", |_| move || sleep(nap));
        let probe = spawn(|| hub::stats().stacks_allocated);
        for (i, g) in gs.iter().enumerate() {
            if let Err(e) = g.join() {
                task_failed("sleepers", n, i, &e.into());
            }
            if let Some(e) = g.exception() {
                task_failed("sleepers", n, i, &e);
            }
        }
        let stacks_peak = probe.get().expect("the probe does not fail");
        (t.elapsed(), base, stacks_peak)
    };
    let peak_kb = hwm_kb();
    let maps_peak = maps_pass(n, |_| move || sleep(nap));
    report_tasks("sleepers", n, el, base, peak_kb)
        .s("sleep_ms", SLEEP_MS)
        .s("stacks_peak", stacks_peak)
        .s("maps_peak", maps_peak)
        .print();
}

// ----------------------------------------------------------------- helpers

/// Starts the hub and maps its first stack before the RSS baseline (the
/// peers start their schedulers first too).
fn warm_up() {
    spawn(|| ()).join().expect("the warm-up greenlet finishes");
}

/// Spawns `n` greenlets made by `make`; on a spawn error prints the
/// harness's failure line and exits.
fn spawn_all<F, T>(n: usize, workload: &str, make: impl Fn(usize) -> F) -> Vec<Greenlet<T>>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    let mut gs = Vec::with_capacity(n);
    for i in 0..n {
        match Builder::new().spawn(make(i)) {
            Ok(g) => gs.push(g),
            Err(e) => {
                eprintln!("greenlet workloads: spawn {i} of {n} failed: {e}");
                fail_line(workload, n, i);
            }
        }
    }
    gs
}

/// A task that got no stack at its first switch (mmap failed).
fn task_failed(workload: &str, n: usize, i: usize, e: &GreenletError) -> ! {
    eprintln!("greenlet workloads: task {i} of {n} failed: {e}");
    fail_line(workload, n, i);
}

fn fail_line(workload: &str, n: usize, failed_at: usize) -> ! {
    let max_map_count = std::fs::read_to_string("/proc/sys/vm/max_map_count").unwrap_or_default();
    Line::new(workload)
        .s("n", n)
        .s("error", "spawn_failed")
        .s("failed_at", failed_at)
        .s("max_map_count", max_map_count.trim())
        .s("max_live_stacks", hub::max_live_stacks())
        .print();
    std::process::exit(4);
}

/// Untimed second pass: the same `n` tasks, with a probe greenlet that
/// counts the process's memory mappings once all of them have started.
fn maps_pass<F, T>(n: usize, make: impl Fn(usize) -> F) -> usize
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    let gs = spawn_all(n, "maps_pass", make);
    let probe = spawn(map_count);
    for g in &gs {
        g.join()
            .expect("the native stack can wait for its greenlets");
    }
    black_box(gs);
    probe.get().expect("the probe does not fail")
}

fn report_tasks(workload: &str, n: usize, el: Duration, base_kb: u64, peak_kb: u64) -> Line {
    let ns = el.as_nanos() as f64;
    let mut line = Line::new(workload);
    line.s("n", n)
        .f("wall_ms", ns / 1e6)
        .f("ns_per_task", ns / n as f64)
        .s("rss_base_kb", base_kb)
        .s("rss_peak_kb", peak_kb)
        .f(
            "bytes_per_task",
            peak_kb.saturating_sub(base_kb) as f64 * 1024.0 / n as f64,
        );
    line
}

/// A field of `/proc/self/status` in KiB (0 if unreadable).
fn status_kb(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn rss_kb() -> u64 {
    status_kb("VmRSS")
}

fn hwm_kb() -> u64 {
    status_kb("VmHWM")
}

/// Memory mappings of this process now.
fn map_count() -> usize {
    std::fs::read_to_string("/proc/self/maps").map_or(0, |s| s.lines().count())
}

fn watchdog(limit: Duration) {
    std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            std::thread::sleep(limit);
            eprintln!("watchdog: workload exceeded {}s, exiting", limit.as_secs());
            std::process::exit(3);
        })
        .expect("spawn the watchdog thread");
}

/// One output line: `peer=greenlet config=hub1 workload=<w> k=v ...`.
struct Line(Vec<String>);

impl Line {
    fn new(workload: &str) -> Line {
        Line(vec![
            format!("peer={PEER}"),
            format!("config={}", config()),
            format!("workload={workload}"),
        ])
    }

    fn s(&mut self, key: &str, value: impl std::fmt::Display) -> &mut Line {
        self.0.push(format!("{key}={value}"));
        self
    }

    /// Floats with one decimal, as the peers print them.
    fn f(&mut self, key: &str, value: f64) -> &mut Line {
        self.0.push(format!("{key}={value:.1}"));
        self
    }

    fn print(&self) {
        println!("{}", self.0.join(" "));
    }
}

// ---------------------------------------------------------------- pingpong

/// The peers' `pingpong`: A sends a counter to B over one unbounded queue,
/// B answers `v + 1` over another, n round trips (after 10,000 warm-up
/// ones). Each round trip is two hand-offs and two direct switches (the
/// blocking greenlet runs the next one itself).
fn pingpong(n: u64) {
    pingpong_round_trips(SWITCH_WARMUP);
    let t = Instant::now();
    pingpong_round_trips(n);
    let el = t.elapsed();
    let ns = el.as_nanos() as f64;
    Line::new("pingpong")
        .s("n", n)
        .f("wall_ms", ns / 1e6)
        .f("ns_per_roundtrip", ns / n as f64)
        .f("ns_per_switch", ns / (2 * n) as f64)
        .s("rss_peak_kb", hwm_kb())
        .print();
}

fn pingpong_round_trips(k: u64) {
    use greenlet::queue::Queue;
    let a_to_b = Queue::<u64>::new();
    let b_to_a = Queue::<u64>::new();
    let (inbox_b, outbox_b) = (a_to_b.clone(), b_to_a.clone());
    let b = spawn(move || {
        for _ in 0..k {
            let v = inbox_b.get().expect("pingpong: A sends");
            outbox_b.put(v + 1).expect("pingpong: unbounded");
        }
    });
    let a = spawn(move || {
        let mut v = 0u64;
        for _ in 0..k {
            a_to_b.put(v).expect("pingpong: unbounded");
            v = b_to_a.get().expect("pingpong: B answers");
        }
        v
    });
    assert_eq!(black_box(a.get().expect("pingpong: A finishes")), k);
    b.join().expect("pingpong: B finishes");
}
// ------------------------------------------------------------- sleepers_1m

/// Greenlets in `sleepers_1m`.
const SLEEP_1M_N: usize = 1_000_000;

/// One million greenlets each `sleep(10 ms)`, then all joined: the stack
/// region's workload (issue 16). Prints `wall_ms`, `bytes_per_task` (peak RSS
/// over the baseline, per greenlet) and `maps_grown` (the process's memory
/// mappings with every greenlet started, minus the baseline's; counted in
/// the timed run, `/proc/self/maps` stays short with guard markers). With
/// `mprotect` guards (Linux < 6.13) it stops at `hub::max_live_stacks()`
/// with the harness's failure line.
fn sleepers_1m(n: usize) {
    let nap = Duration::from_millis(SLEEP_MS);
    warm_up();
    let base = rss_kb();
    let base_maps = map_count();
    let t = Instant::now();
    let gs = spawn_all(n, "sleepers_1m", |_| move || sleep(nap));
    let probe = spawn(map_count);
    for (i, g) in gs.iter().enumerate() {
        if let Err(e) = g.join() {
            task_failed("sleepers_1m", n, i, &e.into());
        }
        if let Some(e) = g.exception() {
            task_failed("sleepers_1m", n, i, &e);
        }
    }
    let el = t.elapsed();
    let maps_peak = probe.get().expect("the probe does not fail");
    let peak_kb = hwm_kb();
    report_tasks("sleepers_1m", n, el, base, peak_kb)
        .s("sleep_ms", SLEEP_MS)
        .s("maps_grown", maps_peak.saturating_sub(base_maps))
        .s("guard_markers", hub::uses_guard_markers())
        .print();
}
