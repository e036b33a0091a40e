//! Panics and misuse: a panic in a body, a link, a hub callback
//! (`HubHandle::post`), a timer-started body (`start_later` /
//! `spawn_later`), a signal handler, and in the error handler itself (falls
//! back to stderr);
//! joining or getting oneself; blocking inside a link or a posted callback;
//! a native stack waiting on nothing (`LoopExit` naming the waiters). The
//! hub keeps running, everything else completes, every error is reported
//! exactly once, and the counters return to baseline.

mod reliability_common;

use std::cell::OnceCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenlet::{
    AnyGreenlet, Builder, Greenlet, GreenletError, Run, Timeout, WaitError, hub, iwait, joinall,
    send_signal, signal, sleep, sleep_unref, spawn, spawn_later, spawn_raw, wait, with_timeout,
};
use reliability_common::{
    Baseline, Counter, Log, PROMPT, Reports, assert_band, in_child, ms, run_child, twice,
};

/// A few well-behaved greenlets, to show the hub keeps serving them.
fn bystanders() -> Vec<Greenlet<u32>> {
    (1..=3u32)
        .map(|i| {
            spawn(move || {
                for _ in 0..3 {
                    sleep(ms(1));
                }
                i * 10
            })
        })
        .collect()
}

#[track_caller]
fn assert_bystanders_done(gs: &[Greenlet<u32>]) {
    let got: Vec<u32> = gs.iter().map(|g| g.get().expect("bystander ok")).collect();
    assert_eq!(got, [10, 20, 30]);
}

#[greenlet::test]
fn panic_in_a_body_ends_only_that_greenlet() {
    twice(|| {
        let base = Baseline::take();
        let reports = Reports::install();
        let others = bystanders();
        let exceptions = Counter::new();
        let e = exceptions.clone();
        let bad = Builder::new()
            .name("bad")
            .spawn(|| -> u32 {
                sleep(ms(1));
                panic!("body boom")
            })
            .expect("one stack");
        // The callback only records; the test checks.
        bad.link_exception(move |g| {
            let err = g.exception().expect("failed");
            if err.to_string().contains("body boom") {
                e.hit();
            }
        });
        let typed = spawn(|| -> u8 { std::panic::panic_any(42u32) });
        match bad.get() {
            Err(GreenletError::Panicked(p)) => assert_eq!(p.message(), "body boom"),
            other => panic!("{other:?}"),
        }
        assert!(bad.is_ready() && !bad.is_successful());
        match typed.get() {
            Err(GreenletError::Panicked(p)) => {
                let payload = p.into_panic();
                assert_eq!(payload.downcast_ref::<u32>(), Some(&42));
            }
            other => panic!("{other:?}"),
        }
        // A raw greenlet and a Run struct panic too.
        spawn_raw(|| panic!("raw boom"));
        struct Job;
        impl Run for Job {
            type Output = u8;
            fn run(&self) -> u8 {
                panic!("run boom")
            }
        }
        let job = Builder::new()
            .name("job")
            .spawn_run(Job)
            .expect("one stack");
        assert!(matches!(job.get(), Err(GreenletError::Panicked(_))));
        assert_bystanders_done(&others);
        hub::join();
        assert_eq!(exceptions.get(), 1);
        assert_eq!(reports.count("greenlet"), 4, "{:?}", reports.all());
        for needle in ["body boom", "raw boom", "run boom", "\"bad\"", "\"job\""] {
            assert_eq!(
                reports.containing(needle),
                1,
                "{needle}: {:?}",
                reports.all()
            );
        }
        drop(reports);
        base.check();
    });
}

#[greenlet::test]
fn panic_in_a_link_is_reported_and_the_other_links_still_run() {
    twice(|| {
        let base = Baseline::take();
        let reports = Reports::install();
        let others = bystanders();
        let log = Log::new();
        let g = Builder::new()
            .name("linked")
            .spawn(|| 5u8)
            .expect("one stack");
        let (l1, l2, l3, l4, l5) = (
            log.clone(),
            log.clone(),
            log.clone(),
            log.clone(),
            log.clone(),
        );
        g.link(move |_| {
            l1.push("any");
            panic!("link boom 1");
        });
        g.link_value(move |g| {
            l2.push(format!("value {}", g.value().expect("a value")));
            panic!("link boom 2");
        });
        g.rawlink(move || {
            l3.push("raw");
            std::panic::panic_any(7u8);
        });
        g.link(move |_| l4.push("last"));
        // Another greenlet's links are not affected.
        let h = spawn(|| ());
        h.rawlink(move || l5.push("other greenlet"));
        g.join().unwrap();
        h.join().unwrap();
        hub::join();
        let mut seen = log.take();
        seen.sort();
        assert_eq!(seen, ["any", "last", "other greenlet", "raw", "value 5"]);
        assert_eq!(reports.count("link callback"), 3, "{:?}", reports.all());
        assert_eq!(reports.containing("\"linked\""), 3, "{:?}", reports.all());
        assert_eq!(reports.len(), 3);
        assert_bystanders_done(&others);
        // Added after death: fires, panics, reported, once.
        g.link(|_| panic!("late link boom"));
        hub::join();
        assert_eq!(reports.containing("late link boom"), 1);
        assert_eq!(reports.len(), 4);
        drop(reports);
        base.check();
    });
}

#[greenlet::test]
fn panic_in_a_posted_hub_callback_is_reported() {
    twice(|| {
        let base = Baseline::take();
        let reports = Reports::install();
        let others = bystanders();
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let handle = hub::handle();
        // From this thread and from another thread.
        let r = std::sync::Arc::clone(&ran);
        handle.post(|| panic!("post boom here")).expect("open");
        handle
            .post(move || {
                r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })
            .expect("open");
        let h2 = handle.clone();
        std::thread::spawn(move || {
            h2.post(|| panic!("post boom there")).expect("open");
        })
        .join()
        .expect("poster thread");
        drop(handle);
        hub::join();
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(reports.count("hub callback"), 2, "{:?}", reports.all());
        assert_eq!(reports.containing("post boom here"), 1);
        assert_eq!(reports.containing("post boom there"), 1);
        assert_bystanders_done(&others);
        drop(reports);
        base.check();
    });
}

#[greenlet::test]
fn panic_in_a_timer_started_body_is_reported() {
    // The public API has no raw timer callback: `start_later` and
    // `spawn_later` bodies are what the timer starts.
    twice(|| {
        let base = Baseline::take();
        let reports = Reports::install();
        let others = bystanders();
        let t0 = Instant::now();
        let a = Greenlet::new(|| -> u8 { panic!("later boom a") });
        a.start_later(ms(20));
        let b = spawn_later(ms(10), || -> u8 { panic!("later boom b") });
        assert!(matches!(b.get(), Err(GreenletError::Panicked(_))));
        assert_band(t0.elapsed(), ms(10), ms(10) + PROMPT);
        assert!(matches!(a.get(), Err(GreenletError::Panicked(_))));
        assert_band(t0.elapsed(), ms(20), ms(20) + PROMPT);
        assert_bystanders_done(&others);
        hub::join();
        assert_eq!(reports.count("greenlet"), 2);
        assert_eq!(reports.containing("later boom"), 2);
        drop(reports);
        base.check();
    });
}

/// Runs the hub until `counter` reaches `n` (at most 5 s).
#[track_caller]
fn wait_for(counter: &Counter, n: usize) {
    let t0 = Instant::now();
    while counter.get() < n {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "waited 5 s for {n} hits"
        );
        sleep(ms(1));
    }
}

#[greenlet::test]
fn panic_in_a_signal_handler_is_reported() {
    // SIGUSR1 is used by no other test of this binary.
    twice(|| {
        let base = Baseline::take();
        let reports = Reports::install();
        let others = bystanders();
        let hits = Counter::new();
        let h = hits.clone();
        let watcher = signal(libc::SIGUSR1, move || {
            h.hit();
            if h.get() == 1 {
                panic!("signal boom");
            }
        })
        .expect("SIGUSR1 can be watched");
        send_signal(std::process::id(), libc::SIGUSR1).expect("signal sent");
        wait_for(&hits, 1);
        // The watcher survives its handler's panic.
        assert!(watcher.is_active());
        send_signal(std::process::id(), libc::SIGUSR1).expect("signal sent");
        wait_for(&hits, 2);
        watcher.cancel();
        assert_bystanders_done(&others);
        hub::join();
        assert_eq!(hits.get(), 2);
        assert_eq!(reports.count("signal handler"), 1, "{:?}", reports.all());
        assert_eq!(reports.containing("signal boom"), 1, "{:?}", reports.all());
        assert_eq!(reports.len(), 1, "{:?}", reports.all());
        drop(reports);
        base.check();
    });
}

/// What the child process runs for
/// [`panic_in_the_error_handler_falls_back_to_stderr`]: a handler that
/// panics on every report, and one failure of each kind.
fn error_handler_panics_scenario() {
    let base = Baseline::take();
    let calls = Counter::new();
    let c = calls.clone();
    hub::set_error_handler(move |_| {
        c.hit();
        panic!("handler exploded");
    });
    let others = bystanders();
    let bad = Builder::new()
        .name("handler-target")
        .spawn(|| -> u8 { panic!("body boom for handler") })
        .expect("one stack");
    bad.link(|_| panic!("link boom for handler"));
    let handle = hub::handle();
    handle
        .post(|| panic!("post boom for handler"))
        .expect("open");
    drop(handle);
    let victim = spawn(|| sleep(Duration::from_secs(10)));
    sleep(Duration::ZERO);
    victim
        .kill_with(std::io::Error::other("kill error for handler"))
        .unwrap();
    let signalled = Counter::new();
    let sg = signalled.clone();
    let watcher = signal(libc::SIGUSR2, move || {
        sg.hit();
        panic!("signal boom for handler");
    })
    .expect("SIGUSR2 can be watched");
    send_signal(std::process::id(), libc::SIGUSR2).expect("signal sent");
    wait_for(&signalled, 1);
    watcher.cancel();
    assert!(matches!(bad.get(), Err(GreenletError::Panicked(_))));
    assert_bystanders_done(&others);
    hub::join();
    assert_eq!(calls.get(), 5, "the handler was called for every report");
    hub::reset_error_handler();
    base.check();
}

#[greenlet::test]
fn panic_in_the_error_handler_falls_back_to_stderr() {
    if in_child() {
        error_handler_panics_scenario();
        error_handler_panics_scenario();
        return;
    }
    let out = run_child("panic_in_the_error_handler_falls_back_to_stderr");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed: {}\n{stderr}",
        out.status
    );
    let fallback = "greenlet: the error handler panicked while reporting";
    assert_eq!(stderr.matches(fallback).count(), 10, "{stderr}");
    for what in [
        "signal boom for handler",
        "body boom for handler",
        "link boom for handler",
        "post boom for handler",
        "kill error for handler",
    ] {
        // One fallback line per report: the scenario ran twice.
        let lines = stderr
            .lines()
            .filter(|l| l.contains(fallback) && l.contains(what))
            .count();
        assert_eq!(lines, 2, "fallback lines for {what}: {stderr}");
    }
}

#[greenlet::test]
fn join_or_get_on_yourself_is_an_error_not_a_hang() {
    twice(|| {
        let base = Baseline::take();
        let reports = Reports::install();
        let me: Rc<OnceCell<Greenlet<String>>> = Rc::new(OnceCell::new());
        let m = Rc::clone(&me);
        let g = Builder::new().name("narcissus").build(move || {
            let this = m.get().expect("set before start").clone();
            let mut out = Vec::new();
            // Every wait on yourself returns the same distinct error at
            // once (it was a LoopExit from get and a panic from join).
            match this.get() {
                Err(GreenletError::JoinSelf) => out.push("get"),
                other => panic!("get on self: {other:?}"),
            }
            match this.get_timeout(ms(10)) {
                Err(GreenletError::JoinSelf) => out.push("get_timeout"),
                other => panic!("get_timeout on self: {other:?}"),
            }
            match this.take() {
                Err(GreenletError::JoinSelf) => out.push("take"),
                other => panic!("take on self: {other:?}"),
            }
            match this.join() {
                Err(e @ WaitError::JoinSelf) => {
                    assert!(e.to_string().contains("cannot wait for itself"), "{e}");
                    out.push("join");
                }
                other => panic!("join on self: {other:?}"),
            }
            match this.join_timeout(ms(10)) {
                Err(WaitError::JoinSelf) => out.push("join_timeout"),
                other => panic!("join_timeout on self: {other:?}"),
            }
            assert!(!this.is_ready(), "still running");
            out.join(",")
        });
        me.set(g.clone()).expect("empty");
        let t0 = Instant::now();
        g.start();
        assert_eq!(
            g.get().expect("the body survives its own misuse"),
            "get,get_timeout,take,join,join_timeout"
        );
        assert!(
            t0.elapsed() < PROMPT,
            "no waiting happened: {:?}",
            t0.elapsed()
        );
        assert_eq!(reports.len(), 0);
        drop(reports);
        base.check();
    });
}

#[greenlet::test]
fn blocking_inside_a_link_or_a_posted_callback_is_reported() {
    twice(|| {
        let base = Baseline::take();
        let reports = Reports::install();
        let others = bystanders();
        let pending = spawn(|| {
            sleep(ms(5));
            1u8
        });
        let g = spawn(|| 2u8);
        let after = Counter::new();
        let p = pending.clone();
        let blockers: Vec<Box<dyn FnOnce()>> = vec![
            Box::new(|| sleep(Duration::ZERO)),
            Box::new(|| sleep(ms(1))),
            Box::new(move || p.join().expect("refused by a panic instead")),
            Box::new(|| drop(with_timeout(ms(1), || ()))),
            Box::new(|| Timeout::start_new(ms(1)).cancel()),
            Box::new(hub::join),
            Box::new(greenlet::idle),
        ];
        let n = blockers.len();
        for b in blockers {
            let a = after.clone();
            g.rawlink(move || {
                b();
                a.hit(); // never reached
            });
        }
        let posted_after = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let a = std::sync::Arc::clone(&posted_after);
        hub::handle()
            .post(move || {
                sleep(ms(1));
                a.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })
            .expect("open");
        g.join().unwrap();
        assert_eq!(pending.get().expect("unaffected"), 1);
        assert_bystanders_done(&others);
        hub::join();
        assert_eq!(after.get(), 0);
        assert_eq!(posted_after.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert_eq!(reports.count("link callback"), n, "{:?}", reports.all());
        assert_eq!(reports.count("hub callback"), 1, "{:?}", reports.all());
        assert_eq!(
            reports.containing("cannot block inside a hub callback")
                + reports.containing("cannot start a timeout inside a hub callback")
                + reports.containing("only the native stack"),
            n + 1,
            "{:?}",
            reports.all()
        );
        drop(reports);
        base.check();
    });
}

#[greenlet::test]
fn native_stack_waiting_on_nothing_gets_loop_exit_naming_the_waiters() {
    twice(|| {
        let base = Baseline::take();
        // A deadlock: a joins b, b joins a.
        let cell_a: Rc<OnceCell<Greenlet<()>>> = Rc::new(OnceCell::new());
        let ca = Rc::clone(&cell_a);
        let b = Builder::new()
            .name("bee")
            .build(move || ca.get().expect("set").join().expect("a's death releases b"));
        let b2 = b.clone();
        let a = Builder::new()
            .name("ay")
            .spawn(move || b2.join().expect("killed while joining"))
            .expect("one stack");
        cell_a.set(a.clone()).expect("empty");
        b.start();
        let unref = Builder::new()
            .name("unref-sleeper")
            .spawn(|| sleep_unref(Duration::from_secs(3600)))
            .expect("one stack");

        let t0 = Instant::now();
        let e = match a.get() {
            Err(GreenletError::LoopExit(e)) => e,
            other => panic!("{other:?}"),
        };
        assert!(t0.elapsed() < PROMPT);
        assert_eq!(e.operation(), "Greenlet::get");
        let blocked = e.blocked().join(" | ");
        assert_eq!(e.blocked().len(), 3, "{blocked}");
        for name in ["\"ay\"", "\"bee\"", "\"unref-sleeper\""] {
            assert!(blocked.contains(name), "{name} missing: {blocked}");
        }
        assert!(blocked.contains("Greenlet::join"), "{blocked}");
        assert!(blocked.contains("sleep_unref"), "{blocked}");
        assert!(e.to_string().contains("LoopExit"), "{e}");

        // Every native-stack wait says the same instead of hanging.
        let all: [&dyn AnyGreenlet; 2] = [&a, &b];
        assert!(matches!(wait(all), Err(WaitError::LoopExit(_))));
        assert!(matches!(joinall(all), Err(GreenletError::LoopExit(_))));
        let mut it = iwait(all);
        assert!(matches!(it.next(), Some(Err(WaitError::LoopExit(_)))));
        assert!(it.next().is_none());
        drop(it);
        // hub::join returns: the loop has run dry.
        hub::join();
        assert!(t0.elapsed() < 2 * PROMPT, "{:?}", t0.elapsed());
        match b.join() {
            Err(WaitError::LoopExit(e)) => {
                assert!(e.to_string().contains("LoopExit"), "{e}");
                assert_eq!(e.operation(), "Greenlet::join");
            }
            other => panic!("expected Err(LoopExit), got {other:?}"),
        }

        // Untangle: the greenlets were not harmed and can be killed.
        assert_eq!(hub::stats().greenlets, 3);
        assert!(!a.is_ready() && !b.is_ready() && !unref.is_ready());
        a.kill().unwrap();
        b.join().unwrap(); // a's death released b
        assert!(b.is_successful());
        unref.kill().unwrap();
        base.check();
    });
}
