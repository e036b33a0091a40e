//! Timeouts: interrupt whatever a greenlet is blocked in (gevent's `Timeout`
//! and `with_timeout`).
//!
//! Run with `cargo run --release --example timeouts`.

use greenlet::{Timeout, sleep, spawn, with_timeout, with_timeout_value};
use std::time::{Duration, Instant};

fn slow_query() -> &'static str {
    sleep(Duration::from_millis(200)); // stands in for a slow socket read
    "rows"
}

fn main() {
    let ms = Duration::from_millis;

    // with_timeout: Ok(value), or Err(Elapsed) when the deadline passed first.
    let t = Instant::now();
    match with_timeout(ms(20), slow_query) {
        Ok(rows) => println!("got {rows}"),
        Err(e) => println!("{e} (after {:?})", t.elapsed()),
    }

    // gevent's `with Timeout(0.02, False):` is a silent scope: `.ok()`.
    let rows = Timeout::run(ms(20), slow_query).ok();
    println!("silent scope: {rows:?}");

    // A fallback value instead of an error (gevent's `timeout_value=`).
    println!(
        "with fallback: {}",
        with_timeout_value(ms(20), "cached rows", slow_query)
    );

    // Nested timeouts each land at their own scope ("not my timeout").
    let outer = Timeout::new(ms(100));
    let inner = Timeout::new(ms(10));
    let result = outer.scope(|| inner.scope(slow_query));
    println!(
        "nested: inner fired, outer did not: {}",
        matches!(result, Ok(Err(_)))
    );

    // Guard style: start a timeout, and it cancels when dropped. The expiry
    // unwinds through the greenlet, so destructors run on the way out.
    let g = spawn(move || {
        let _deadline = Timeout::start_new(ms(10));
        slow_query()
    });
    println!(
        "guard-style timeout ends the greenlet with: {:?}",
        g.get().err()
    );

    // Waiting itself takes a timeout too.
    let worker = spawn(slow_query);
    println!("join_timeout: finished = {}", worker.join_timeout(ms(5)));
    worker.kill();
    assert!(greenlet::hub::stats().is_quiet());
}
