//! `#[greenlet]` functions plus `joinall` with a timeout: fetch many things
//! at once, keep what arrived in time, kill the stragglers.
//!
//! The "network" is simulated with `sleep` so the example runs anywhere; a
//! real fetcher would block on a socket the same way (the hub switches to
//! other greenlets while it waits). Run with `cargo run --example fetch_all`.

use greenlet::{KillError, greenlet, joinall, killall, sleep};
use std::time::{Duration, Instant};

/// Calling `fetch(url, latency)` spawns this body as a greenlet and returns
/// its handle at once (gevent's `spawn(fetch, url, latency)`).
#[greenlet]
fn fetch(url: String, latency: Duration) -> Result<usize, String> {
    sleep(latency); // waiting for the "server": other greenlets run
    if url.ends_with("/missing") {
        return Err(format!("{url}: 404"));
    }
    Ok(url.len() * 1000 + latency.as_millis() as usize) // a made-up page size
}

#[greenlet::main]
fn main() {
    let started = Instant::now();
    let jobs = [
        ("https://example.org/", 20),
        ("https://example.org/about", 40),
        ("https://example.org/missing", 30),
        ("https://example.org/slow", 5_000),
    ];
    let fetchers: Vec<_> = jobs
        .iter()
        .map(|&(url, ms)| fetch(url.to_string(), Duration::from_millis(ms)))
        .collect();

    // Wait at most 100 ms for all of them (gevent's `joinall(gs, timeout=0.1)`).
    let done = joinall(&fetchers, Duration::from_millis(100), false, None)
        .expect("without raise_error only LoopExit can fail, and timers are pending");
    println!(
        "{} of {} finished within 100 ms ({:?})",
        done.len(),
        fetchers.len(),
        started.elapsed()
    );

    let mut outcomes = String::new();
    for (g, (url, _)) in fetchers.iter().zip(jobs) {
        match g.try_get() {
            Some(Ok(Ok(bytes))) => {
                println!("  {url}: {bytes} bytes");
                outcomes.push('o');
            }
            Some(Ok(Err(e))) => {
                println!("  {url}: failed: {e}");
                outcomes.push('f');
            }
            Some(Err(e)) => {
                println!("  {url}: greenlet error: {e}");
                outcomes.push('e');
            }
            None => {
                println!("  {url}: still running");
                outcomes.push('r');
            }
        }
    }
    // ok, ok, failed (404), still running (the slow one).
    assert_eq!(
        outcomes, "oofr",
        "wrong outcomes (o: ok, f: failed, e: error, r: running)"
    );

    // Kill the stragglers and wait for them to unwind.
    killall(
        &fetchers,
        KillError::GreenletExit,
        true,
        Duration::from_secs(1),
    )
    .expect("killed greenlets die promptly");
    let slow = &fetchers[3];
    assert!(slow.is_dead() && slow.is_successful()); // GreenletExit counts as success
    println!("slow one after killall: {slow}");
    println!("total {:?}", started.elapsed());
}
