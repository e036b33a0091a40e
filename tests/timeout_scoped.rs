//! `Timeout` (new/start/cancel/pending/start_new/drop), the scoped forms
//! (`scope`, `Timeout::run`, `with_timeout`, `with_timeout_value`), and what
//! an expiry interrupts.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use common::{
    DropLog, LONG, Log, PROMPT, Reports, Shutdown, TICK, assert_band, assert_contains, assert_tick,
    quiet, timed,
};
use greenlet::{
    AlreadyPending, GreenletError, Timeout, hub, idle, iwait, joinall, sleep, sleep_unref, spawn,
    wait, with_timeout, with_timeout_value,
};

#[greenlet::test]
fn a_timeout_does_nothing_until_started_and_can_be_cancelled_and_restarted() {
    let t = Timeout::new(Duration::from_millis(20));
    assert!(!t.pending());
    assert_eq!(t.duration(), Some(Duration::from_millis(20)));
    assert_eq!(t.to_string(), "Timeout(20ms)");
    sleep(Duration::from_millis(30)); // not started: nothing happens
    t.start().unwrap();
    assert!(t.pending());
    assert_eq!(hub::stats().timers, 1);
    // Starting a pending timeout is an error value (it panicked before).
    assert_eq!(t.start(), Err(AlreadyPending));
    assert_contains(&AlreadyPending.to_string(), &["already pending"]);
    assert!(t.pending(), "the failed start leaves it pending");
    assert_eq!(hub::stats().timers, 1, "and armed once");
    t.cancel();
    assert!(!t.pending());
    assert_eq!(hub::stats().timers, 0);
    t.cancel(); // no-op
    sleep(Duration::from_millis(30)); // cancelled: not interrupted
    // It can be started again.
    t.start().unwrap();
    assert!(t.pending());
    t.cancel();
    let started = Timeout::start_new(Duration::from_secs(5));
    assert!(started.pending());
    assert_contains(&format!("{started:?}"), &["pending: true"]);
    drop(started);
    quiet();
}

#[greenlet::test]
fn dropping_a_started_timeout_cancels_it() {
    {
        let _t = Timeout::start_new(Duration::from_millis(10));
        assert_eq!(hub::stats().timers, 1);
    }
    assert_eq!(hub::stats().timers, 0, "drop cancels");
    let ((), took) = timed(|| sleep(Duration::from_millis(30)));
    assert!(took >= Duration::from_millis(30), "not interrupted");
    quiet();
}

#[greenlet::test]
fn scope_interrupts_a_blocked_call_after_the_duration() {
    for _round in 0..2 {
        let log = Log::new();
        let l = log.clone();
        let t = Timeout::new(TICK);
        let (r, took) = timed(|| {
            t.scope(|| {
                l.push("before");
                sleep(LONG);
                l.push("after");
            })
        });
        let e = r.expect_err("expired");
        assert_tick("Timeout(50ms).scope(sleep 30 s)", took);
        assert_eq!(e.duration(), Some(TICK));
        assert!(e.error().is_none());
        assert_eq!(e.to_string(), "timed out after 50ms");
        assert_eq!(
            log.entries(),
            ["before"],
            "code after the interrupted call never runs"
        );
        assert!(!t.pending(), "expired");
        quiet();
    }
}

#[greenlet::test]
fn scope_returns_the_value_when_in_time_and_cancels() {
    let t = Timeout::new(Duration::from_secs(5));
    let r = t.scope(|| {
        sleep(Duration::from_millis(1));
        7
    });
    assert_eq!(r.expect("in time"), 7);
    assert!(!t.pending(), "the scope cancels on the way out");
    assert_eq!(hub::stats().timers, 0);
    // A scope on an already-started timeout does not restart it.
    let t = Timeout::start_new(TICK);
    let t0 = Instant::now();
    sleep(Duration::from_millis(20));
    let r = t.scope(|| sleep(LONG));
    assert!(r.is_err());
    assert_tick("scope on a timeout started 20 ms earlier", t0.elapsed());
    quiet();
}

#[greenlet::test]
fn timeout_run_is_a_silent_scope() {
    // gevent's `with Timeout(5, False): data = ...`.
    let data = Timeout::run(Duration::from_millis(10), || {
        sleep(LONG);
        "line"
    })
    .ok();
    assert_eq!(data, None);
    let data = Timeout::run(Duration::from_secs(5), || "line").ok();
    assert_eq!(data, Some("line"));
    quiet();
}

#[greenlet::test]
fn with_timeout_and_with_timeout_value() {
    // gevent's test_with_timeout.
    let short = Duration::from_millis(10);
    let long = Duration::from_millis(40);
    assert!(with_timeout(short, || sleep(long)).is_err());
    let r = with_timeout_value(short, "X", || {
        sleep(long);
        "done"
    });
    assert_eq!(r, "X");
    let r = with_timeout_value(long, "X", || {
        sleep(short);
        "done"
    });
    assert_eq!(r, "done");
    assert_eq!(with_timeout(long, || 5).expect("in time"), 5);
    quiet();
}

#[greenlet::test]
fn timeout_never_never_expires() {
    let t = Timeout::never();
    assert_eq!(t.duration(), None);
    assert_eq!(t.to_string(), "Timeout(never)");
    t.start().unwrap();
    assert!(!t.pending());
    assert_eq!(
        hub::stats().timers,
        0,
        "no timer for a timeout that never expires"
    );
    let r = t.scope(|| {
        sleep(Duration::from_millis(20));
        1
    });
    assert_eq!(r.expect("never expires"), 1);
    quiet();
}

#[greenlet::test]
fn huge_durations_mean_never() {
    let t = Timeout::new(Duration::MAX);
    t.start().unwrap();
    assert!(!t.pending());
    assert_eq!(hub::stats().timers, 0);
    let r = with_timeout(Duration::MAX, || {
        sleep(Duration::from_millis(10));
        2
    });
    assert_eq!(r.expect("never expires"), 2);
    quiet();
}

#[greenlet::test]
fn timeouts_from_seconds() {
    assert!(Timeout::from_secs_f64(f64::NAN).is_err());
    assert_eq!(
        Timeout::from_secs_f64(f64::INFINITY)
            .expect("ok")
            .duration(),
        None
    );
    assert_eq!(
        Timeout::from_secs_f64(-3.0).expect("ok").duration(),
        Some(Duration::ZERO)
    );
    assert_eq!(
        Timeout::from_secs_f64(0.25).expect("ok").duration(),
        Some(Duration::from_millis(250))
    );
    let t = Timeout::from_secs_f64(0.05).expect("ok");
    let (r, took) = timed(|| t.scope(|| sleep(LONG)));
    assert!(r.is_err());
    assert_tick("Timeout::from_secs_f64(0.05)", took);
    quiet();
}

#[greenlet::test]
fn with_error_carries_the_error() {
    let t = Timeout::with_error(Duration::from_millis(5), Shutdown("slow"));
    let e = t.scope(|| sleep(LONG)).expect_err("expired");
    assert_eq!(
        e.error().and_then(|e| e.downcast_ref::<Shutdown>()),
        Some(&Shutdown("slow"))
    );
    // Each cause is printed once: the user error is the source, not part of
    // the message.
    assert_eq!(e.to_string(), "timed out after 5ms");
    let source = std::error::Error::source(&e).expect("the user error is the source");
    assert_eq!(source.to_string(), "shutdown: slow");
    assert_eq!(source.downcast_ref::<Shutdown>(), Some(&Shutdown("slow")));
    quiet();
}

#[greenlet::test]
fn a_zero_timeout_fires_at_the_first_switch() {
    let log = Log::new();
    let l = log.clone();
    let r = with_timeout(Duration::ZERO, || {
        l.push("before");
        sleep(Duration::ZERO);
        l.push("after");
    });
    assert!(r.is_err());
    assert_eq!(log.entries(), ["before"]);
    // Code that never switches is never interrupted.
    assert_eq!(with_timeout(Duration::ZERO, || 5).expect("no switch"), 5);
    quiet();
}

#[greenlet::test]
fn a_timeout_interrupts_a_sleep_zero_loop() {
    // gevent's test__sleep0.
    let spins = std::cell::Cell::new(0u64);
    let (r, took) = timed(|| {
        Timeout::run(Duration::from_millis(10), || {
            loop {
                spins.set(spins.get() + 1);
                sleep(Duration::ZERO);
            }
        })
    });
    assert!(r.is_err());
    assert!(spins.get() > 0);
    assert_band(
        "Timeout(10ms) around a sleep(0) loop",
        took,
        Duration::from_millis(10),
        PROMPT,
    );
    quiet();
}

#[greenlet::test]
fn expiry_interrupts_join_get_and_waits_without_touching_the_target() {
    let target = spawn(|| -> u8 {
        sleep(Duration::from_millis(150));
        1
    });
    let ms = Duration::from_millis(10);
    assert!(with_timeout(ms, || target.join()).is_err());
    assert!(with_timeout(ms, || target.get()).is_err());
    assert!(with_timeout(ms, || target.join_timeout(LONG)).is_err());
    assert!(with_timeout(ms, || wait([&target])).is_err());
    assert!(with_timeout(ms, || iwait([&target]).count()).is_err());
    assert!(with_timeout(ms, || joinall([&target])).is_err());
    assert!(!target.is_ready(), "the waited-for greenlet keeps running");
    assert_eq!(target.get().unwrap(), 1);
    quiet();
}

#[greenlet::test]
fn expiry_interrupts_idle() {
    let busy = spawn(|| {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(200) {
            sleep(Duration::ZERO);
        }
    });
    let (r, took) = timed(|| with_timeout(Duration::from_millis(20), idle));
    assert!(r.is_err(), "idle never came while busy spun");
    assert!(took < Duration::from_millis(200));
    busy.kill().unwrap();
    quiet();
}

#[greenlet::test]
fn destructors_run_when_a_timeout_unwinds() {
    let log = Log::new();
    let l = log.clone();
    let r = with_timeout(Duration::from_millis(5), || {
        let _outer = DropLog::new("outer", &l);
        let _inner = DropLog::new("inner", &l);
        sleep(LONG);
    });
    assert!(r.is_err());
    assert_eq!(log.entries(), ["drop inner", "drop outer"]);
    quiet();
}

#[greenlet::test]
fn an_uncaught_timeout_ends_the_greenlet_with_a_timeout_error() {
    for _round in 0..2 {
        let reports = Reports::install();
        let log = Log::new();
        let l = log.clone();
        let g = greenlet::Builder::new()
            .name("slowpoke")
            .spawn(move || -> u8 {
                let _t = Timeout::start_new(TICK);
                let _g = DropLog::new("body", &l);
                sleep(LONG);
                l.push("after");
                1
            })
            .expect("spawn");
        let (r, took) = timed(|| g.get());
        assert_tick("greenlet ended by its 50 ms Timeout", took);
        let GreenletError::Timeout(e) = r.unwrap_err() else {
            panic!("expected GreenletError::Timeout");
        };
        assert_eq!(e.duration(), Some(TICK));
        assert!(!g.is_successful());
        assert!(matches!(g.exception(), Some(GreenletError::Timeout(_))));
        assert_eq!(log.entries(), ["drop body"]);
        let report = reports.take_one();
        assert_eq!(report.context, "greenlet");
        assert_contains(&report.line, &["slowpoke", "timed out after 50ms"]);
        quiet();
    }
}

#[greenlet::test]
fn an_uncaught_timeout_with_an_error_reports_that_error() {
    let reports = Reports::install();
    let g = spawn(|| {
        let t = Timeout::with_error(Duration::from_millis(5), Shutdown("deadline"));
        t.start().unwrap();
        sleep(LONG);
    });
    let GreenletError::Timeout(e) = g.get().unwrap_err() else {
        panic!("expected GreenletError::Timeout");
    };
    assert_eq!(
        e.error().map(ToString::to_string).as_deref(),
        Some("shutdown: deadline")
    );
    let r = reports.take_one();
    assert!(
        matches!(&r.error, GreenletError::Timeout(e) if e.error().is_some()),
        "{r:?}"
    );
    quiet();
}

/// The report of a greenlet ended by a timeout with a user error must name
/// that error: `Elapsed`'s `Display` no longer includes it (it is the
/// `source()`), so the report has to print the source chain.
#[greenlet::test]
fn the_report_of_a_timeout_with_an_error_names_that_error() {
    let reports = Reports::install();
    let g = spawn(|| {
        let t = Timeout::with_error(Duration::from_millis(5), Shutdown("deadline"));
        t.start().unwrap();
        sleep(LONG);
    });
    assert!(g.join().is_ok() && !g.is_successful());
    assert_contains(
        &reports.take_one().line,
        &["timed out after 5ms", "shutdown: deadline"],
    );
    quiet();
}

#[greenlet::test]
fn timeouts_on_the_native_stack() {
    let (r, took) = timed(|| with_timeout(TICK, || sleep(LONG)));
    assert!(r.is_err());
    assert_tick("with_timeout(50ms) on the native stack", took);

    // A started guard outside any scope unwinds out of the blocking call.
    let log = Log::new();
    let l = log.clone();
    let (r, took) = timed(|| {
        catch_unwind(AssertUnwindSafe(|| {
            let _t = Timeout::start_new(Duration::from_millis(20));
            let _g = DropLog::new("native", &l);
            sleep(LONG);
            l.push("after");
        }))
    });
    assert!(r.is_err(), "the expiry unwinds");
    assert_band(
        "uncaught Timeout(20ms) on the native stack",
        took,
        Duration::from_millis(20),
        PROMPT,
    );
    assert_eq!(log.entries(), ["drop native"]);
    assert_eq!(hub::stats().timers, 0);
    // The native stack keeps working afterwards.
    assert_eq!(spawn(|| 3).get().unwrap(), 3);
    let ((), took) = timed(|| sleep(Duration::from_millis(10)));
    assert!(took >= Duration::from_millis(10));
    quiet();
}

#[greenlet::test]
fn timeouts_of_different_greenlets_are_independent() {
    let a = spawn(|| timed(|| with_timeout(Duration::from_millis(20), || sleep(LONG))).1);
    let b = spawn(|| timed(|| with_timeout(Duration::from_millis(70), || sleep(LONG))).1);
    let c = spawn(|| timed(|| with_timeout(LONG, || sleep(Duration::from_millis(40)))).1);
    let (ta, tb, tc) = (a.get().unwrap(), b.get().unwrap(), c.get().unwrap());
    assert_band(
        "a",
        ta,
        Duration::from_millis(20),
        Duration::from_millis(130),
    );
    assert_band(
        "b",
        tb,
        Duration::from_millis(70),
        Duration::from_millis(180),
    );
    assert_band(
        "c",
        tc,
        Duration::from_millis(40),
        Duration::from_millis(150),
    );
    quiet();
}

#[greenlet::test]
fn a_timeout_that_outlives_its_greenlet_cannot_hit_a_newer_one() {
    // The greenlet starts a timeout and hands it out alive.
    let g = spawn(|| {
        let t = Timeout::new(Duration::from_millis(20));
        t.start().unwrap();
        t
    });
    let t = g.into_result().expect("timeout handed out");
    assert!(t.pending());
    // A new greenlet may take over the old one's slot.
    let newcomer = spawn(|| timed(|| sleep(Duration::from_millis(60))).1);
    let slept = newcomer
        .get()
        .expect("not hit by the other greenlet's timeout");
    assert!(slept >= Duration::from_millis(60), "woken early: {slept:?}");
    drop(t);
    quiet();
}

#[greenlet::test]
fn a_timeout_can_expire_again_after_a_restart() {
    let t = Timeout::new(Duration::from_millis(10));
    for _ in 0..2 {
        let (r, took) = timed(|| t.scope(|| sleep(LONG)));
        assert!(r.is_err());
        assert!(took >= Duration::from_millis(10));
        assert!(!t.pending());
    }
    quiet();
}

#[greenlet::test]
fn an_unreferenced_timeout_does_not_keep_the_hub_alive() {
    let unref = spawn(|| {
        let t = Timeout::new(LONG).unref();
        t.start().unwrap();
        sleep_unref(LONG);
    });
    let ((), took) = timed(hub::join);
    assert!(took < PROMPT, "hub::join waited for an unref'd timeout");
    assert!(!unref.is_ready());
    unref.kill().unwrap();

    // A referenced one does: hub::join waits for it to fire.
    let reports = Reports::install();
    let referenced = spawn(|| {
        let _t = Timeout::start_new(TICK);
        sleep_unref(LONG);
    });
    let t0 = Instant::now();
    hub::join();
    assert_tick(
        "hub::join until a referenced 50 ms timeout fired",
        t0.elapsed(),
    );
    assert!(matches!(
        referenced.exception(),
        Some(GreenletError::Timeout(_))
    ));
    assert_eq!(reports.take_one().context, "greenlet");
    quiet();
}

#[greenlet::test]
fn starting_a_timeout_in_a_hub_callback_is_refused() {
    let reports = Reports::install();
    let g = spawn(|| ());
    g.link(|_| {
        let _t = Timeout::start_new(Duration::from_millis(1));
    });
    g.join().unwrap();
    quiet();
    let r = reports.take_one();
    assert_eq!(r.context, "link callback");
    assert_contains(&r.error.to_string(), &["Timeout::start", "hub callback"]);
}
