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

#[greenlet::main]
fn main() {
    let ms = Duration::from_millis;

    // with_timeout: Ok(value), or Err(Elapsed) when the deadline passed first.
    let t = Instant::now();
    match with_timeout(ms(20), slow_query) {
        Ok(rows) => panic!("the 20 ms timeout should have fired, got {rows:?}"),
        Err(e) => println!("{e} (after {:?})", t.elapsed()),
    }

    // gevent's `with Timeout(0.02, False):` is a silent scope: `.ok()`.
    let rows = Timeout::run(ms(20), slow_query).ok();
    println!("silent scope: {rows:?}");
    assert_eq!(rows, None, "the silent scope should have timed out");

    // A fallback value instead of an error (gevent's `timeout_value=`).
    let rows = with_timeout_value(ms(20), "cached rows", slow_query);
    assert_eq!(rows, "cached rows", "the fallback value should be returned");
    println!("with fallback: {rows}");

    // Nested timeouts each land at their own scope ("not my timeout").
    let outer = Timeout::new(ms(100));
    let inner = Timeout::new(ms(10));
    let result = outer.scope(|| inner.scope(slow_query));
    assert!(
        matches!(result, Ok(Err(_))),
        "the inner timeout should fire, not the outer: {result:?}"
    );
    println!("nested: inner fired, outer did not: true");

    // Guard style: start a timeout, and it cancels when dropped. The expiry
    // unwinds through the greenlet, so destructors run on the way out.
    let g = spawn(move || {
        let _deadline = Timeout::start_new(ms(10));
        slow_query()
    });
    let error = g.get().err();
    assert!(
        matches!(error, Some(greenlet::GreenletError::Timeout(_))),
        "the guard's timeout should end the greenlet, got {error:?}"
    );
    println!("guard-style timeout ends the greenlet with: {error:?}");

    // Waiting itself takes a timeout too.
    let worker = spawn(slow_query);
    let finished = worker.join_timeout(ms(5));
    assert!(!finished, "a 200 ms query cannot finish in 5 ms");
    println!("join_timeout: finished = {finished}");
    worker.kill();
    let stats = greenlet::hub::stats();
    assert!(stats.is_quiet(), "the hub should be at rest: {stats:?}");
}
