//! Links: run code when a greenlet dies (gevent's `link`, `link_value`,
//! `link_exception`, `rawlink`), and wait for many greenlets at once.
//!
//! Run with `cargo run --release --example links`.

use greenlet::{Greenlet, GreenletError, iwait, sleep, spawn};
use std::time::Duration;

#[greenlet::main]
fn main() {
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
    ok.link(|g| println!("ok finished: successful = {}", g.is_successful()));
    ok.link_value(|v| println!("ok returned {v}"));
    bad.link_exception(|e: &GreenletError| println!("bad failed: {e}"));

    // A link can be removed before it fires.
    let id = ok.rawlink(|| unreachable!("unlinked below"));
    ok.unlink(id);

    // iwait yields greenlets as they finish: bad first (it fails at once).
    let mut order = Vec::new();
    for g in iwait([&ok, &bad], Duration::from_secs(1), None) {
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
}
