//! Nested timeouts: each expiry lands at its own scope ("not my timeout" is
//! re-raised), kills and panics pass through scopes, and `cancel` withdraws
//! an expiry that fired but was not delivered yet.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{DropLog, LONG, Log, PROMPT, Reports, TICK, assert_band, assert_tick, quiet, timed};
use greenlet::{
    GreenletError, KillError, Timeout, hub, sleep, spawn, with_timeout, with_timeout_value,
};

#[greenlet::test]
fn the_inner_timeout_lands_at_the_inner_scope() {
    for _round in 0..2 {
        let log = Log::new();
        let outer = Timeout::new(Duration::from_secs(5));
        let inner = Timeout::new(Duration::from_millis(20));
        let (r, took) = timed(|| {
            outer.scope(|| {
                let r = inner.scope(|| {
                    sleep(LONG);
                    log.push("inner body done");
                });
                log.push(format!("inner scope: {}", r.is_ok()));
                "outer body done"
            })
        });
        assert_eq!(
            r.expect("the outer timeout did not fire"),
            "outer body done"
        );
        assert_band(
            "inner 20 ms timeout",
            took,
            Duration::from_millis(20),
            PROMPT,
        );
        assert_eq!(log.entries(), ["inner scope: false"]);
        assert!(!outer.pending() && !inner.pending());
        quiet();
    }
}

#[greenlet::test]
fn the_outer_timeout_passes_through_the_inner_scope() {
    for _round in 0..2 {
        let log = Log::new();
        let outer = Timeout::new(Duration::from_millis(20));
        let inner = Timeout::new(Duration::from_secs(5));
        let r = outer.scope(|| {
            let r = inner.scope(|| {
                let _g = DropLog::new("inner body", &log);
                sleep(LONG);
            });
            log.push(format!("after inner scope: {}", r.is_ok()));
        });
        let e = r.expect_err("the outer timeout fired");
        assert_eq!(e.duration(), Some(Duration::from_millis(20)));
        assert_eq!(
            log.entries(),
            ["drop inner body"],
            "not caught by the inner scope"
        );
        assert!(
            !inner.pending(),
            "the inner scope cancelled its timeout on the way out"
        );
        assert_eq!(hub::stats().timers, 0);
        quiet();
    }
}

#[greenlet::test]
fn nested_with_timeout_value_does_not_swallow_the_outer_timeout() {
    // gevent's test_nested_with_timeout.
    let r = with_timeout(Duration::from_millis(20), || {
        with_timeout_value(Duration::from_millis(80), 1, || {
            sleep(LONG);
            2
        })
    });
    let e = r.expect_err("the outer timeout");
    assert_eq!(e.duration(), Some(Duration::from_millis(20)));
    quiet();
}

#[greenlet::test]
fn after_the_inner_timeout_the_outer_one_still_fires_on_time() {
    let t0 = Instant::now();
    let r = with_timeout(Duration::from_millis(80), || {
        let inner = with_timeout(Duration::from_millis(20), || sleep(LONG));
        assert!(inner.is_err());
        let at = t0.elapsed();
        sleep(LONG);
        at
    });
    assert!(r.is_err(), "the outer timeout fired");
    assert_band(
        "outer 80 ms timeout",
        t0.elapsed(),
        Duration::from_millis(80),
        Duration::from_millis(200),
    );
    quiet();
}

#[greenlet::test]
fn the_middle_of_three_timeouts_lands_at_its_own_scope() {
    let log = Log::new();
    let r = with_timeout(Duration::from_secs(5), || {
        let middle = with_timeout(Duration::from_millis(20), || {
            let innermost = with_timeout(Duration::from_secs(4), || sleep(LONG));
            log.push(format!("innermost returned {}", innermost.is_ok()));
        });
        log.push(format!("middle ok={}", middle.is_ok()));
        middle.map_err(|e| e.duration())
    });
    assert_eq!(
        r.expect("outer untouched"),
        Err(Some(Duration::from_millis(20)))
    );
    assert_eq!(log.entries(), ["middle ok=false"]);
    quiet();
}

#[greenlet::test]
fn not_my_timeout_is_re_raised_by_a_scope_in_a_greenlet() {
    let reports = Reports::install();
    let log = Log::new();
    let l = log.clone();
    let g = spawn(move || {
        let _outer = Timeout::start_new(Duration::from_millis(20));
        let r = with_timeout(Duration::from_secs(5), || sleep(LONG));
        l.push(format!("scope returned {}", r.is_ok()));
    });
    let err = g.get().unwrap_err();
    let GreenletError::Timeout(e) = err else {
        panic!("expected the outer Timeout, got {err:?}");
    };
    assert_eq!(e.duration(), Some(Duration::from_millis(20)));
    assert!(
        log.is_empty(),
        "the inner scope must not catch the outer timeout"
    );
    assert_eq!(reports.take_one().context, "greenlet");
    quiet();
}

#[greenlet::test]
fn a_kill_passes_through_timeout_scopes() {
    let log = Log::new();
    let l = log.clone();
    let g = spawn(move || {
        let r = with_timeout(Duration::from_secs(5), || {
            with_timeout(Duration::from_secs(4), || sleep(LONG))
        });
        l.push(format!("scopes returned {}", r.is_ok()));
    });
    sleep(Duration::ZERO);
    g.kill().unwrap();
    assert!(matches!(
        g.try_get(),
        Some(Err(GreenletError::Killed(KillError::GreenletExit)))
    ));
    assert!(log.is_empty());
    assert_eq!(hub::stats().timers, 0);
    quiet();
}

#[greenlet::test]
fn a_panic_passes_through_timeout_scopes() {
    let reports = Reports::install();
    let g = spawn(|| -> u8 {
        let r = with_timeout(Duration::from_secs(5), || -> u8 { panic!("inside scope") });
        r.unwrap_or(0)
    });
    let err = g.get().unwrap_err();
    assert_eq!(
        err.as_panic().map(|p| p.message().to_owned()).as_deref(),
        Some("inside scope")
    );
    assert_eq!(reports.take_one().context, "greenlet");
    quiet();
}

#[greenlet::test]
fn cancel_inside_the_scope_withdraws_the_timeout() {
    let t = Timeout::new(Duration::from_millis(10));
    let r = t.scope(|| {
        t.cancel();
        sleep(Duration::from_millis(30));
        "survived"
    });
    assert_eq!(r.expect("cancelled before expiry"), "survived");
    quiet();
}

#[greenlet::test]
fn cancel_withdraws_an_expiry_that_fired_but_was_not_delivered() {
    // Choreography: A starts a 20 ms timeout and sleeps 100 ms; B sleeps
    // 10 ms (an earlier deadline) and then cancels A's timeout. The native
    // stack blocks the thread for 40 ms so both deadlines pass before the
    // loop looks: B is woken first, then A's timeout fires into A. B runs
    // first and cancels; A must then neither be interrupted nor wake early.
    let shared: Rc<RefCell<Option<Timeout>>> = Rc::default();
    let s = shared.clone();
    let a = spawn(move || {
        let t = Timeout::new(Duration::from_millis(20));
        t.start().unwrap();
        *s.borrow_mut() = Some(t);
        timed(|| sleep(Duration::from_millis(100))).1
    });
    let s = shared.clone();
    let b = spawn(move || {
        sleep(Duration::from_millis(10));
        let t = s.borrow_mut().take().expect("A published its timeout");
        let was_pending = t.pending();
        t.cancel();
        was_pending
    });
    sleep(Duration::ZERO); // A and B start and block
    std::thread::sleep(Duration::from_millis(40)); // both deadlines pass
    let _ = b.get();
    let slept = a.get();
    assert_eq!(
        b.get().ok(),
        Some(false),
        "A's timeout had already fired when B cancelled it"
    );
    let slept = slept.expect("A was not interrupted: the withdrawn expiry was delivered");
    assert!(
        slept >= Duration::from_millis(100),
        "A's 100 ms sleep returned after {slept:?}: the withdrawn expiry still woke it"
    );
    quiet();
}

#[greenlet::test]
fn a_withdrawn_expiry_does_not_end_a_join_early() {
    // As above, but A is blocked in `get` on a greenlet that finishes after
    // 100 ms: after B withdraws A's fired timeout, A must keep waiting and
    // get the value.
    let target = spawn(|| {
        sleep(Duration::from_millis(100));
        "target value"
    });
    let shared: Rc<RefCell<Option<Timeout>>> = Rc::default();
    let s = shared.clone();
    let t = target.clone();
    let a = spawn(move || {
        let timeout = Timeout::new(Duration::from_millis(20));
        timeout.start().unwrap();
        *s.borrow_mut() = Some(timeout);
        let r = t.get().map_err(|e| e.to_string());
        (r, t.is_ready())
    });
    let s = shared.clone();
    let b = spawn(move || {
        sleep(Duration::from_millis(10));
        s.borrow_mut()
            .take()
            .expect("A published its timeout")
            .cancel();
    });
    sleep(Duration::ZERO);
    std::thread::sleep(Duration::from_millis(40));
    b.join().unwrap();
    let r = a.get().map_err(|e| e.to_string());
    assert_eq!(r, Ok((Ok("target value"), true)), "A's get ended early");
    quiet();
}

#[greenlet::test]
fn nested_scopes_in_concurrent_greenlets_do_not_interfere() {
    let run = |outer_ms: u64, inner_ms: u64| {
        spawn(move || {
            let t0 = Instant::now();
            let r = with_timeout(Duration::from_millis(outer_ms), || {
                with_timeout(Duration::from_millis(inner_ms), || sleep(LONG)).is_ok()
            });
            (r.map_err(|e| e.duration()), t0.elapsed())
        })
    };
    let inner_first = run(150, 20);
    let outer_first = run(50, 300);
    let (r1, t1) = inner_first.get().unwrap();
    let (r2, t2) = outer_first.get().unwrap();
    assert_eq!(r1, Ok(false), "inner fired and was caught by its own scope");
    assert_band(
        "inner-first greenlet",
        t1,
        Duration::from_millis(20),
        Duration::from_millis(130),
    );
    assert_eq!(r2, Err(Some(TICK)), "outer fired through the inner scope");
    assert_tick("outer-first greenlet", t2);
    quiet();
}

#[greenlet::test]
fn a_scope_reports_its_own_error_value() {
    let inner = Timeout::with_error(Duration::from_millis(10), std::io::Error::other("inner"));
    let outer = Timeout::with_error(Duration::from_secs(5), std::io::Error::other("outer"));
    let r = outer.scope(|| inner.scope(|| sleep(LONG)));
    let inner_err = r.expect("outer did not fire").expect_err("inner fired");
    assert_eq!(inner_err.to_string(), "timed out after 10ms");
    assert_eq!(inner_err.duration(), Some(Duration::from_millis(10)));
    let own = inner_err.error().expect("the scope's own error");
    assert_eq!(own.to_string(), "inner");
    assert_eq!(
        std::error::Error::source(&inner_err).map(ToString::to_string),
        Some("inner".to_owned())
    );
    quiet();
}
