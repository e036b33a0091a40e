//! Timeouts: interrupt whatever a greenlet is blocked in (gevent's `Timeout`
//! and `with_timeout`).
//!
//! Run with `cargo run --release --example timeouts`.

use greenlet::{GreenletError, Timeout, WaitError, sleep, spawn, with_timeout, with_timeout_value};
use std::error::Error;
use std::time::{Duration, Instant};

fn slow_query() -> &'static str {
    sleep(Duration::from_millis(200)); // stands in for a slow socket read
    "rows"
}

#[greenlet::main]
fn main() -> Result<(), Box<dyn Error>> {
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
        matches!(error, Some(GreenletError::Timeout(_))),
        "the guard's timeout should end the greenlet, got {error:?}"
    );
    println!("guard-style timeout ends the greenlet with: {error:?}");

    // Waiting itself takes a timeout too: `Err(Elapsed)` if the greenlet is
    // still running then (it keeps running; nothing is interrupted).
    let worker = spawn(slow_query);
    let waited = worker.join_timeout(ms(5));
    match &waited {
        Err(WaitError::Elapsed(e)) => println!("join_timeout: {e}"),
        other => panic!("a 200 ms query cannot finish in 5 ms, got {other:?}"),
    }
    let finished = waited.is_ok();
    assert!(!worker.is_ready(), "join_timeout does not stop the worker");
    println!("join_timeout: finished = {finished}");
    // `get_timeout` says so with `GreenletError::Timeout` (gevent's
    // `get(timeout=…)` raises `Timeout`); `is_ready` tells it apart from a
    // greenlet that ended by its own timeout, like the guard above.
    let rows = worker.get_timeout(ms(5));
    assert!(
        matches!(rows, Err(GreenletError::Timeout(_))) && !worker.is_ready(),
        "the worker should still be running, got {rows:?}"
    );
    println!(
        "get_timeout: {rows:?}; still running: {}",
        !worker.is_ready()
    );
    worker.kill()?;
    let stats = greenlet::hub::stats();
    assert!(stats.is_quiet(), "the hub should be at rest: {stats:?}");
    Ok(())
}
