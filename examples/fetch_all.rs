//! `#[greenlet]` functions plus `joinall` with a timeout: fetch many things
//! at once, keep what arrived in time, kill the stragglers.
//!
//! The "network" is simulated with `sleep` so the example runs anywhere; a
//! real fetcher would block on a socket the same way (the hub switches to
//! other greenlets while it waits). Run with `cargo run --example fetch_all`.

use greenlet::{
    GreenletError, KillOptions, WaitOptions, greenlet, joinall_with, killall_with, sleep,
};
use std::error::Error;
use std::fmt;
use std::time::{Duration, Instant};

/// Why a fetch has no page: the server said no, or the greenlet itself
/// ended without a result (killed, panicked). `From<GreenletError>` lets
/// `get_flat` fold the second kind into this type, so there is one error to
/// match instead of `Ok(Err(..))` / `Err(..)`.
#[derive(Debug, Clone)]
enum FetchError {
    /// The server's answer was an error.
    Http(String),
    /// The fetching greenlet did not return.
    Greenlet(GreenletError),
}

impl From<GreenletError> for FetchError {
    fn from(e: GreenletError) -> Self {
        FetchError::Greenlet(e)
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Http(e) => write!(f, "failed: {e}"),
            FetchError::Greenlet(e) => write!(f, "greenlet error: {e}"),
        }
    }
}

impl Error for FetchError {}

/// Calling `fetch(url, latency)` spawns this body as a greenlet and returns
/// its handle at once (gevent's `spawn(fetch, url, latency)`).
#[greenlet]
fn fetch(url: String, latency: Duration) -> Result<usize, FetchError> {
    sleep(latency); // waiting for the "server": other greenlets run
    if url.ends_with("/missing") {
        return Err(FetchError::Http(format!("{url}: 404")));
    }
    Ok(url.len() * 1000 + latency.as_millis() as usize) // a made-up page size
}

#[greenlet::main]
fn main() -> Result<(), Box<dyn Error>> {
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

    // Wait at most 100 ms for all of them (gevent's `joinall(gs, timeout=0.1)`):
    // returns the ones that finished; only a hub that can never wake fails.
    let done = joinall_with(
        &fetchers,
        WaitOptions::new().timeout(Duration::from_millis(100)),
    )?;
    println!(
        "{} of {} finished within 100 ms ({:?})",
        done.len(),
        fetchers.len(),
        started.elapsed()
    );

    let mut outcomes = String::new();
    for (g, (url, _)) in fetchers.iter().zip(jobs) {
        if !g.is_ready() {
            println!("  {url}: still running");
            outcomes.push('r');
            continue;
        }
        // Finished: `get_flat` returns at once, with the page size or one
        // `FetchError` for both ways of failing.
        match g.get_flat() {
            Ok(bytes) => {
                println!("  {url}: {bytes} bytes");
                outcomes.push('o');
            }
            Err(e @ FetchError::Http(_)) => {
                println!("  {url}: {e}");
                outcomes.push('f');
            }
            Err(e @ FetchError::Greenlet(_)) => {
                println!("  {url}: {e}");
                outcomes.push('e');
            }
        }
    }
    // ok, ok, failed (404), still running (the slow one).
    assert_eq!(
        outcomes, "oofr",
        "wrong outcomes (o: ok, f: failed, e: error, r: running)"
    );

    // Kill the stragglers and wait (at most a second) for them to unwind.
    killall_with(
        &fetchers,
        KillOptions::new().timeout(Duration::from_secs(1)),
    )?;
    let slow = &fetchers[3];
    assert!(slow.is_dead() && slow.is_successful()); // GreenletExit counts as success
    println!("slow one after killall: {slow}");
    println!("total {:?}", started.elapsed());
    Ok(())
}
