//! Regression tests from an adversarial review (each was a bug, now fixed): `hub::destroy()` on the main greenlet silently drops the main
//! greenlet's own pending `Timeout`s. `teardown::reset` replaces the hub with
//! `Hub::new()` (timers, MAIN's queued throws included), but the main stack
//! is still inside `with_timeout`/`Timeout::scope`: its deadline is gone,
//! the code runs past it, and `with_timeout` returns `Ok`. The docs of
//! `destroy` promise only that *greenlets* are killed and the hub "starts
//! fresh, inside the same scope".

use std::time::{Duration, Instant};

use greenlet::{Timeout, hub, sleep, spawn, with_timeout};

#[test]
fn destroy_inside_with_timeout_loses_the_timeout() {
    greenlet::run(|| {
        let _other = spawn(|| sleep(Duration::from_secs(5)));
        let t = Instant::now();
        let r = with_timeout(Duration::from_millis(10), || {
            hub::destroy();
            sleep(Duration::from_millis(200));
        });
        assert!(
            r.is_err(),
            "the 10 ms timeout was lost: with_timeout returned Ok after {:?}",
            t.elapsed()
        );
    });
}

/// Same, with an expiry that was already due (fired on the next turn) when
/// `destroy` ran: `pending()` reports false, and nothing is ever raised.
#[test]
fn destroy_drops_a_due_timeout_of_main() {
    greenlet::run(|| {
        let t = Timeout::new(Duration::from_millis(5));
        let r = t.scope(|| {
            std::thread::sleep(Duration::from_millis(20)); // due now
            hub::destroy();
            sleep(Duration::from_millis(50));
            "ran past the deadline"
        });
        assert!(r.is_err(), "{r:?}");
    });
}
