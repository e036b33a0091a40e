//! Links: run code when a greenlet dies (gevent's `link`, `link_value`,
//! `link_exception`, `rawlink`), and wait for many greenlets at once.
//!
//! Run with `cargo run --release --example links`.

use greenlet::{Greenlet, WaitOptions, iwait_with, sleep, spawn};
use std::error::Error;
use std::time::Duration;

#[greenlet::main]
fn main() -> Result<(), Box<dyn Error>> {
    // The default error handler would print the failing worker's panic;
    // this example reports failures itself, through a link.
    greenlet::hub::set_error_handler(|_| {});

    let ok: Greenlet<u32> = spawn(|| {
        sleep(Duration::from_millis(5));
        7
    });
    let bad: Greenlet<u32> = spawn(|| panic!("disk full"));

    // Links fire exactly once, in the order added, on the loop turn after the
    // greenlet dies (also when added after it died). They run on the hub:
    // they must not block; spawn a greenlet from a link for blocking work.
    // Each gets the greenlet, as in gevent.
    ok.link(|g| println!("ok finished: successful = {}", g.is_successful()));
    // link_value fires on success: a value, or a plain GreenletExit kill
    // (gevent counts that as success too; then there is no value).
    ok.link_value(|g| match g.value() {
        Some(v) => println!("ok returned {v}"),
        None => println!("ok was killed"),
    });
    bad.link_exception(|g| {
        if let Some(e) = g.exception() {
            println!("bad failed: {e}");
        }
    });

    // A link can be removed before it fires.
    let id = ok.rawlink(|| unreachable!("unlinked below"));
    ok.unlink(id);

    // iwait yields greenlets as they finish: bad first (it fails at once).
    // Each item is a Result: an Err only if the wait itself cannot go on.
    let mut order = Vec::new();
    let within = WaitOptions::new().timeout(Duration::from_secs(1));
    for g in iwait_with([&ok, &bad], within) {
        let g = g?;
        match g.get() {
            Ok(v) => println!("iwait: got {v}"),
            Err(e) => println!("iwait: error {e}"),
        }
        order.push(g.is_successful());
    }
    assert_eq!(order, [false, true], "iwait should yield bad, then ok");

    // Let the links that were queued by the last death run.
    greenlet::hub::join();
    let stats = greenlet::hub::stats();
    assert!(stats.is_quiet(), "the hub should be at rest: {stats:?}");
    Ok(())
}
