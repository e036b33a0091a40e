//! Ports of gevent's `src/gevent/tests/test__timeout.py` and
//! `test__api_timeout.py` to `greenlet::Timeout`.
//!
//! Not ported: `TestDirectRaise` (a `Timeout` is not raised by hand),
//! `test_expires_non_exception` (a non-error does not type-check),
//! `test_expires_str` / `test_context_manager_str` (a custom error is the
//! `Elapsed`'s `source()`, not part of its message), `test_timeout_calls_update_now`
//! / `test_sleep_calls_update_now` (libev internals), `test_ref` (weakrefs).
//! gevent's `with Timeout(t, False)` (silent) is `Timeout::run(t, f).ok()`.

mod common;

use std::time::Duration;

use common::{Shutdown, assert_band, quiet, timed};
use greenlet::{Timeout, sleep, with_timeout, with_timeout_value};

const DELAY: Duration = Duration::from_millis(20);
const SHOULD_EXPIRE: Duration = Duration::from_millis(10);
const SHOULD_NOT_EXPIRE: Duration = Duration::from_millis(100);
const LONG: Duration = Duration::from_secs(30);

/// `test__timeout.py::Test::test_expires`, `test_expires_false`: a
/// timeout expires, and can be started again after it did.
#[greenlet::test]
fn test_expires() {
    let timeout = Timeout::new(SHOULD_EXPIRE);
    for _ in 0..2 {
        let (r, took) = timed(|| timeout.scope(|| sleep(LONG)));
        let e = r.unwrap_err();
        assert_eq!(e.duration(), Some(SHOULD_EXPIRE));
        assert_band("expiry", took, SHOULD_EXPIRE, Duration::from_millis(120));
        assert!(!timeout.pending());
    }
    quiet();
}

/// `test__timeout.py::Test::test_context_manager`,
/// `test_context_manager_false`: the scope form, loud and silent.
#[greenlet::test]
fn test_context_manager() {
    let timeout = Timeout::new(SHOULD_EXPIRE);
    assert!(timeout.scope(|| sleep(LONG)).is_err());
    // `with Timeout(t, False)`: silent.
    assert_eq!(Timeout::run(SHOULD_EXPIRE, || sleep(LONG)).ok(), None);
    // A custom error comes back in the `Elapsed`, as its `source()` (an
    // error chain prints each cause once; gevent appends it to the message).
    let e = Timeout::with_error(SHOULD_EXPIRE, Shutdown("XXX"))
        .scope(|| sleep(LONG))
        .unwrap_err();
    assert!(e.error().unwrap().to_string().ends_with("XXX"), "{e}");
    let source = std::error::Error::source(&e).unwrap().to_string();
    assert!(source.ends_with("XXX"), "{source}");
    quiet();
}

/// `test__timeout.py::Test::test_cancel`: a cancelled timeout does not
/// fire and is not pending.
#[greenlet::test]
fn test_cancel() {
    let timeout = Timeout::new(SHOULD_EXPIRE);
    timeout.start().unwrap();
    assert!(timeout.pending());
    timeout.cancel();
    sleep(SHOULD_NOT_EXPIRE);
    assert!(!timeout.pending());
    quiet();
}

/// `test__timeout.py::Test::test_with_timeout`.
#[greenlet::test]
fn test_with_timeout() {
    assert!(with_timeout(SHOULD_EXPIRE, || sleep(SHOULD_NOT_EXPIRE)).is_err());
    let r = with_timeout_value(SHOULD_EXPIRE, "X", || {
        sleep(SHOULD_NOT_EXPIRE);
        "slept"
    });
    assert_eq!(r, "X");
    let r = with_timeout_value(SHOULD_NOT_EXPIRE, "X", || {
        sleep(SHOULD_EXPIRE);
        "slept"
    });
    assert_eq!(r, "slept");
    quiet();
}

/// `test__api_timeout.py::Test::test_api`.
#[greenlet::test]
fn test_api() {
    // Nothing happens if the block finishes before the timeout expires.
    let t = Timeout::new(DELAY * 2);
    assert!(!t.pending());
    let r = t.scope(|| {
        assert!(t.pending());
        sleep(DELAY);
    });
    assert!(r.is_ok());
    assert!(!t.pending());
    sleep(DELAY * 2);

    // It fires, and it is this timeout.
    let t = Timeout::new(DELAY);
    let e = t.scope(|| sleep(DELAY * 10)).unwrap_err();
    assert_eq!(e.duration(), Some(DELAY));

    // A customised error.
    let e = Timeout::with_error(DELAY, std::io::Error::other("Operation takes way too long"))
        .scope(|| sleep(DELAY * 10))
        .unwrap_err();
    assert!(e.error().unwrap().is::<std::io::Error>());

    // Cancelled inside the block.
    let timer = Timeout::new(DELAY);
    assert!(
        timer
            .scope(|| {
                timer.cancel();
                sleep(DELAY * 2);
            })
            .is_ok()
    );

    // Silent, and on time.
    let xdelay = Duration::from_millis(100);
    let (r, took) = timed(|| Timeout::run(xdelay, || sleep(xdelay * 2)).ok());
    assert_eq!(r, None);
    assert_band("silent timeout", took, xdelay, xdelay * 2);

    // `Timeout(None)` never fires.
    assert!(Timeout::never().scope(|| sleep(DELAY)).is_ok());
    sleep(DELAY);
    quiet();
}

/// `test__api_timeout.py::Test::test_nested_timeout`: the timeout that
/// fires is the one caught; the other stays as it was.
#[greenlet::test]
fn test_nested_timeout() {
    // Outer silent, shorter: the outer one fires through the inner scope.
    let r = Timeout::run(DELAY, || {
        let inner = Timeout::run(DELAY * 10, || sleep(DELAY * 60));
        unreachable!("should not get there: {inner:?}")
    });
    assert!(r.is_err());

    // t1 shorter: t1 fires while t2 is still pending.
    let t1 = Timeout::new(DELAY);
    let t2 = Timeout::new(DELAY * 20);
    t1.start().unwrap();
    t2.start().unwrap();
    let e = t1.scope(|| sleep(DELAY * 30)).unwrap_err();
    assert_eq!(e.duration(), Some(DELAY));
    assert!(!t1.pending());
    assert!(t2.pending());
    t2.cancel();
    assert!(!t2.pending());

    // t2 (inner) shorter: t2 fires, t1 still pending.
    let t1 = Timeout::new(DELAY * 20);
    let t2 = Timeout::new(DELAY);
    let r = t1.scope(|| {
        let e = t2.scope(|| sleep(DELAY * 30)).unwrap_err();
        assert_eq!(e.duration(), Some(DELAY));
        (t1.pending(), t2.pending())
    });
    assert_eq!(r.unwrap(), (true, false));
    assert!(!t1.pending());
    quiet();
}
