//! A supervisor: `link_exception` restarts a crashing worker, with backoff,
//! until it succeeds or runs out of attempts.
//!
//! Links run on the hub, where blocking is not allowed, so the restart
//! *spawns* (here: starts an unstarted greenlet after a delay) instead of
//! waiting. Run with `cargo run --example supervisor`.

use greenlet::{greenlet, hub, sleep};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The attempt that succeeded (0: none yet), checked at the end.
static SUCCEEDED_AT: AtomicU32 = AtomicU32::new(0);

const MAX_ATTEMPTS: u32 = 5;

/// A flaky job: crashes on its first two attempts.
/// `start = "later"` returns it unstarted, so the supervisor picks the delay.
#[greenlet(start = "later")]
fn worker(attempt: u32) -> &'static str {
    sleep(Duration::from_millis(10)); // some work
    if attempt < 3 {
        panic!("attempt {attempt}: lost the connection");
    }
    "all records synced"
}

/// Starts attempt `attempt` after `backoff` and supervises it.
fn supervise(attempt: u32, backoff: Duration, started: Instant) {
    let g = worker(attempt);
    // Links get the greenlet (as in gevent): read how it ended from it.
    g.link_exception(move |g| {
        if let Some(error) = g.exception() {
            println!("[{:>4?}] attempt {attempt} crashed: {error}", ms(started));
        }
        if attempt < MAX_ATTEMPTS {
            supervise(attempt + 1, backoff * 2, started); // spawns, never blocks
        } else {
            println!("giving up after {attempt} attempts");
        }
    });
    // Fires on success: a value, or a plain GreenletExit kill (no value).
    g.link_value(move |g| match g.value() {
        Some(value) => {
            println!("[{:>4?}] attempt {attempt} succeeded: {value}", ms(started));
            SUCCEEDED_AT.store(attempt, Ordering::Relaxed);
        }
        None => println!("[{:>4?}] attempt {attempt} was killed", ms(started)),
    });
    g.start_later(backoff);
}

fn ms(since: Instant) -> Duration {
    Duration::from_millis(since.elapsed().as_millis() as u64)
}

#[greenlet::main]
fn main() {
    // The default handler prints each crash with its location; the links
    // above already say what happened, so keep the output short.
    hub::set_error_handler(|_| {});
    let started = Instant::now();
    supervise(1, Duration::from_millis(5), started);
    // Wait for the supervision tree to settle (gevent's `gevent.wait()`).
    hub::join();
    let attempt = SUCCEEDED_AT.load(Ordering::Relaxed);
    assert_eq!(attempt, 3, "the worker should succeed on its third attempt");
    println!("done in {:?}", started.elapsed());
}
