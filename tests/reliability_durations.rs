//! Durations at the edges: negative seconds mean "now", NaN is an error,
//! `Duration::MAX` / +∞ mean "no deadline" (so a native stack waiting on
//! nothing else gets `LoopExit`), and a zero timeout fires at the first
//! switch. Every scenario runs twice and ends with the hub counters back at
//! baseline.

mod reliability_common;

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenlet::{
    Greenlet, GreenletError, InvalidDuration, Timeout, WaitError, duration_from_secs_f64, hub,
    sleep, sleep_secs, spawn, spawn_later, with_timeout,
};
use reliability_common::{Baseline, Counter, Log, NO_HANG, PROMPT, assert_band, ms, twice};

/// The panic message of a caught unwind.
fn message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else {
        String::from("<non-string payload>")
    }
}

#[greenlet::test]
fn negative_seconds_mean_now() {
    twice(|| {
        let base = Baseline::take();
        for s in [-1.0, -0.0, -1e-300, -f64::MAX, f64::NEG_INFINITY] {
            assert_eq!(duration_from_secs_f64(s), Ok(Some(Duration::ZERO)), "{s}");
        }

        // sleep_secs(negative) is a fair yield: it returns at once, after
        // the greenlets that were ready ran.
        let log = Log::new();
        let l = log.clone();
        let g = spawn(move || l.push("g"));
        log.push("before");
        let t = Instant::now();
        sleep_secs(-5.0).expect("negative is valid");
        log.push("after");
        assert!(t.elapsed() < PROMPT, "{:?}", t.elapsed());
        assert_eq!(log.take(), ["before", "g", "after"]);
        assert!(g.is_ready());

        // A timeout of negative seconds is zero: it fires at the first
        // switch, not before.
        let t = Timeout::from_secs_f64(-0.25).expect("negative is valid");
        assert_eq!(t.duration(), Some(Duration::ZERO));
        let step = Cell::new(0);
        let r = t.scope(|| {
            step.set(1);
            sleep(Duration::from_secs(5));
            step.set(2);
        });
        let e = r.expect_err("zero timeout fires at the first switch");
        assert_eq!(e.duration(), Some(Duration::ZERO));
        assert_eq!(step.get(), 1);

        // The same inside a greenlet.
        let inner = spawn(|| {
            let t0 = Instant::now();
            sleep_secs(-1.0).expect("negative is valid");
            let r = Timeout::from_secs_f64(f64::NEG_INFINITY)
                .expect("negative is valid")
                .scope(|| sleep(Duration::from_secs(5)));
            (r.is_err(), t0.elapsed())
        });
        let (fired, took) = inner.get().expect("the greenlet returns");
        assert!(fired);
        assert!(took < PROMPT, "{took:?}");
        drop(t);
        base.check();
    });
}

#[greenlet::test]
fn nan_seconds_are_an_error_and_do_not_switch() {
    twice(|| {
        let base = Baseline::take();
        assert_eq!(duration_from_secs_f64(f64::NAN), Err(InvalidDuration));
        assert_eq!(duration_from_secs_f64(-f64::NAN), Err(InvalidDuration));
        assert!(Timeout::from_secs_f64(f64::NAN).is_err());
        assert_eq!(InvalidDuration.to_string(), "duration in seconds is NaN");

        // On the native stack: an error, and no switch (the ready greenlet
        // has not run).
        let ran = Rc::new(Cell::new(false));
        let r = Rc::clone(&ran);
        let g = spawn(move || r.set(true));
        assert_eq!(sleep_secs(f64::NAN), Err(InvalidDuration));
        assert!(!ran.get(), "sleep_secs(NaN) must not switch");
        assert_eq!(hub::stats().timers, 0);

        // Inside a greenlet: same, its neighbour does not get to run
        // between the two log lines.
        let log = Log::new();
        let (l1, l2) = (log.clone(), log.clone());
        let a = spawn(move || {
            l1.push("a1");
            let r = sleep_secs(f64::NAN);
            l1.push("a2");
            r
        });
        let b = spawn(move || l2.push("b"));
        assert_eq!(a.get().expect("a returns"), Err(InvalidDuration));
        b.join().unwrap();
        g.join().unwrap();
        assert!(ran.get());
        assert_eq!(log.take(), ["a1", "a2", "b"]);
        base.check();
    });
}

#[greenlet::test]
fn duration_max_and_infinity_mean_no_deadline() {
    twice(|| {
        let base = Baseline::take();
        for s in [f64::INFINITY, f64::MAX, 1e300] {
            assert_eq!(duration_from_secs_f64(s), Ok(None), "{s}");
            assert_eq!(Timeout::from_secs_f64(s).expect("valid").duration(), None);
        }

        // A Timeout of Duration::MAX arms no timer; the scoped forms run the
        // body to completion.
        let t = Timeout::new(Duration::MAX);
        t.start().unwrap();
        assert!(!t.pending());
        assert_eq!(hub::stats().timers, 0);
        drop(t);
        let v = with_timeout(Duration::MAX, || {
            sleep(ms(2));
            7
        });
        assert_eq!(v.expect("never expires"), 7);

        // Waiting with Duration::MAX for something that finishes works.
        let g = spawn(|| {
            sleep(ms(3));
            1
        });
        g.join_timeout(Duration::MAX).expect("finishes");
        assert!(hub::join_timeout(Duration::MAX));
        let g = spawn(|| 2);
        assert_eq!(g.get_timeout(Duration::MAX).expect("finishes"), 2);

        // A greenlet sleeping Duration::MAX holds no timer; a native stack
        // waiting for it has nothing that could wake it: LoopExit, naming
        // the sleeper and what it waits in.
        let sleeper = greenlet::Builder::new()
            .name("forever")
            .spawn(|| -> u8 {
                sleep(Duration::MAX);
                1
            })
            .expect("one stack");
        sleep(Duration::ZERO);
        assert_eq!(hub::stats().timers, 0);
        match sleeper.get() {
            Err(GreenletError::LoopExit(e)) => {
                assert_eq!(e.operation(), "Greenlet::get");
                assert_eq!(e.blocked().len(), 1, "{:?}", e.blocked());
                assert!(e.blocked()[0].contains("forever"), "{:?}", e.blocked());
                assert!(e.blocked()[0].contains("sleep"), "{:?}", e.blocked());
            }
            other => panic!("expected LoopExit, got {other:?}"),
        }
        match sleeper.get_timeout(Duration::MAX) {
            Err(GreenletError::LoopExit(e)) => {
                assert_eq!(e.operation(), "Greenlet::get_timeout");
            }
            other => panic!("expected Err(LoopExit), got {other:?}"),
        }
        // Unit-returning waits return the same LoopExit.
        match sleeper.join() {
            Err(WaitError::LoopExit(e)) => {
                assert_eq!(e.operation(), "Greenlet::join");
                assert!(e.to_string().contains("LoopExit"), "{e}");
                assert!(e.blocked()[0].contains("forever"), "{:?}", e.blocked());
            }
            other => panic!("expected Err(LoopExit), got {other:?}"),
        }
        match sleeper.join_timeout(Duration::MAX) {
            Err(WaitError::LoopExit(e)) => {
                assert_eq!(e.operation(), "Greenlet::join_timeout");
                assert!(e.to_string().contains("LoopExit"), "{e}");
            }
            other => panic!("expected Err(LoopExit), got {other:?}"),
        }
        // The sleeper is unaffected and can still be killed.
        assert!(!sleeper.is_ready());
        sleeper.kill_timeout(Duration::MAX).expect("dies at once");
        assert!(sleeper.is_ready() && sleeper.is_successful());

        // The native stack sleeping forever with nothing else alive.
        for forever in [
            Box::new(|| sleep(Duration::MAX)) as Box<dyn Fn()>,
            Box::new(|| sleep_secs(f64::INFINITY).expect("valid")),
        ] {
            let t0 = Instant::now();
            let p = catch_unwind(AssertUnwindSafe(forever)).expect_err("LoopExit panics");
            let text = message(p.as_ref());
            assert!(
                text.contains("LoopExit") && text.contains("sleep"),
                "{text}"
            );
            // Includes printing the panic (a backtrace when RUST_BACKTRACE
            // is set), so only "did not hang" is checked.
            assert!(t0.elapsed() < NO_HANG, "{:?}", t0.elapsed());
        }

        // start_later / spawn_later with Duration::MAX never start; they
        // can be killed, and their body never runs.
        let ran = Counter::new();
        let (r1, r2) = (ran.clone(), ran.clone());
        let later = Greenlet::new(move || r1.hit());
        later.start_later(Duration::MAX);
        let spawned = spawn_later(Duration::MAX, move || r2.hit());
        assert_eq!(hub::stats().timers, 0);
        // Nothing referenced can start them: the hub runs dry at once.
        let t0 = Instant::now();
        assert!(hub::join_timeout(Duration::from_secs(2)));
        assert!(t0.elapsed() < PROMPT, "{:?}", t0.elapsed());
        assert_eq!(hub::stats().greenlets, 2);
        match later.get() {
            Err(GreenletError::LoopExit(e)) => {
                assert_eq!(e.blocked().len(), 2, "{:?}", e.blocked());
                assert!(
                    e.blocked().iter().all(|b| b.contains("not started")),
                    "{:?}",
                    e.blocked()
                );
            }
            other => panic!("expected LoopExit, got {other:?}"),
        }
        later.kill().unwrap();
        spawned.kill().unwrap();
        assert!(later.is_ready() && spawned.is_ready());
        assert_eq!(ran.get(), 0);
        base.check();
    });
}

#[greenlet::test]
fn zero_timeout_fires_at_the_first_switch() {
    twice(|| {
        let base = Baseline::take();
        // No switch, no expiry; the timer is gone afterwards.
        assert_eq!(with_timeout(Duration::ZERO, || 5).expect("no switch"), 5);
        assert_eq!(hub::stats().timers, 0);

        // Code before the first switch runs, code after does not.
        let step = Cell::new(0);
        let r = with_timeout(Duration::ZERO, || {
            step.set(1);
            sleep(Duration::ZERO);
            step.set(2);
        });
        assert!(r.is_err());
        assert_eq!(step.get(), 1);

        // A join under a zero timeout: the join is interrupted; the joined
        // greenlet is unaffected and finishes later.
        let g = spawn(|| {
            sleep(ms(200));
            3
        });
        let t0 = Instant::now();
        assert!(with_timeout(Duration::ZERO, || g.join()).is_err());
        assert!(t0.elapsed() < PROMPT, "{:?}", t0.elapsed());
        assert!(!g.is_ready());
        assert!(matches!(
            g.join_timeout(Duration::ZERO),
            Err(WaitError::Elapsed(_))
        ));
        assert!(matches!(
            g.get_timeout(Duration::ZERO),
            Err(GreenletError::Timeout(_))
        ));
        assert_eq!(g.get().expect("finishes"), 3);

        // In a greenlet: a scoped zero timeout around a long sleep, and an
        // unscoped one that ends the greenlet with GreenletError::Timeout.
        let scoped = spawn(|| {
            let t0 = Instant::now();
            let r = with_timeout(Duration::ZERO, || sleep(Duration::from_secs(5)));
            (r.is_err(), t0.elapsed())
        });
        let (fired, took) = scoped.get().expect("returns");
        assert!(fired);
        assert!(took < PROMPT, "{took:?}");

        let reports = reliability_common::Reports::install();
        let after = Counter::new();
        let a = after.clone();
        let unscoped = spawn(move || {
            let _t = Timeout::start_new(Duration::ZERO);
            sleep(Duration::from_secs(5));
            a.hit();
        });
        let t0 = Instant::now();
        match unscoped.get() {
            Err(GreenletError::Timeout(e)) => assert_eq!(e.duration(), Some(Duration::ZERO)),
            other => panic!("expected Timeout, got {other:?}"),
        }
        assert_band(t0.elapsed(), Duration::ZERO, PROMPT);
        assert_eq!(after.get(), 0);
        assert_eq!(reports.count("greenlet"), 1);
        drop(reports);
        base.check();
    });
}
