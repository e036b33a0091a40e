//! Killing under every circumstance: before start, twice, after death,
//! oneself, while blocked in each kind of wait, a body that swallows the
//! kill (`kill_timeout` gives up, hub teardown leaks it deliberately), and
//! hub teardown (explicit and at thread exit) with greenlets still blocked.
//! Every scenario checks exactly-once links and destructors, and the hub
//! counters back at baseline.

mod reliability_common;

use std::cell::OnceCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use greenlet::{
    AnyGreenlet, Greenlet, GreenletError, KillError, Timeout, WaitError, getcurrent, hub, iwait,
    joinall, kill, sleep, spawn, spawn_later, spawn_raw, wait, with_timeout,
};
use reliability_common::{Baseline, Counter, Log, PROMPT, Reports, assert_band, ms, twice};

#[derive(Debug)]
struct Shutdown;

impl std::fmt::Display for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("shutdown requested")
    }
}

impl std::error::Error for Shutdown {}

/// Link counters of one greenlet: `link`, `rawlink`, `link_value`,
/// `link_exception`.
#[derive(Clone, Default)]
struct Links {
    any: Counter,
    /// `link` callbacks that ran before death (recorded in the callback,
    /// asserted on the test's stack).
    early: Counter,
    raw: Counter,
    value: Counter,
    exception: Counter,
}

impl Links {
    fn attach<T: 'static, D: 'static>(g: &Greenlet<T, D>) -> Links {
        let l = Links::default();
        let (a, early, r, v, e) = (
            l.any.clone(),
            l.early.clone(),
            l.raw.clone(),
            l.value.clone(),
            l.exception.clone(),
        );
        g.link(move |g| {
            if !g.is_ready() {
                early.hit();
            }
            a.hit();
        });
        g.rawlink(move || r.hit());
        g.link_value(move |_| v.hit());
        g.link_exception(move |_| e.hit());
        l
    }

    /// `value` counts `link_value`, which fires for every success, a plain
    /// `GreenletExit` kill included (gevent's semantics).
    #[track_caller]
    fn assert(&self, any: usize, value: usize, exception: usize) {
        assert_eq!(self.early.get(), 0, "a link ran before death");
        assert_eq!(
            (
                self.any.get(),
                self.raw.get(),
                self.value.get(),
                self.exception.get()
            ),
            (any, any, value, exception),
            "(link, rawlink, link_value, link_exception)"
        );
    }
}

fn is_greenlet_exit<T: Clone + std::fmt::Debug>(g: &Greenlet<T>) -> bool {
    matches!(g.get(), Err(GreenletError::Killed(KillError::GreenletExit)))
}

#[greenlet::test]
fn kill_before_start_never_runs_the_body_and_links_fire_once() {
    twice(|| {
        let base = Baseline::take();
        let reports = Reports::install();
        // (how it was created, how it was killed)
        #[derive(Clone, Copy, Debug)]
        enum Make {
            New,
            Spawn,
            StartLater,
            SpawnLater,
        }
        #[derive(Clone, Copy, Debug)]
        enum How {
            Kill,
            Nowait,
            With,
            Module,
            Timeout,
        }
        for make in [Make::New, Make::Spawn, Make::StartLater, Make::SpawnLater] {
            for how in [How::Kill, How::Nowait, How::With, How::Module, How::Timeout] {
                let ran = Counter::new();
                let dropped = Counter::new();
                let (r, guard) = (ran.clone(), dropped.guard());
                let body = move || {
                    let _guard = guard;
                    r.hit();
                    1u8
                };
                let g = match make {
                    Make::New => Greenlet::new(body),
                    Make::Spawn => spawn(body),
                    Make::StartLater => {
                        let g = Greenlet::new(body);
                        g.start_later(ms(1));
                        g
                    }
                    Make::SpawnLater => spawn_later(ms(1), body),
                };
                let links = Links::attach(&g);
                match how {
                    How::Kill => g.kill().expect("dies at once"),
                    How::Nowait => g.kill_nowait(),
                    How::With => g.kill_with(Shutdown).expect("dies at once"),
                    How::Module => kill(&g),
                    How::Timeout => g.kill_timeout(ms(100)).expect("dies at once"),
                }
                let case = format!("{make:?}/{how:?}");
                // Dead at once, without a switch; the unrun body (and what it
                // captured) is dropped at once.
                assert!(g.is_ready() && g.is_dead() && !g.is_active(), "{case}");
                assert_eq!(dropped.get(), 1, "{case}: captures dropped once");
                assert_eq!(hub::stats().greenlets, 0, "{case}");
                assert_eq!(hub::stats().timers, 0, "{case}: start timer cancelled");
                assert_eq!(
                    g.is_started(),
                    matches!(make, Make::Spawn | Make::SpawnLater | Make::StartLater),
                    "{case}"
                );
                links.assert(0, 0, 0); // links fire on the next loop turn
                // Starting it now does nothing.
                g.start();
                assert_eq!(hub::stats().greenlets, 0, "{case}");
                sleep(Duration::ZERO);
                let user_error = matches!(how, How::With);
                links.assert(1, usize::from(!user_error), usize::from(user_error));
                // Outcome.
                assert_eq!(g.value(), None, "{case}");
                if user_error {
                    assert!(!g.is_successful(), "{case}");
                    match g.get() {
                        Err(GreenletError::Killed(KillError::Error(e))) => {
                            assert_eq!(e.to_string(), "shutdown requested");
                        }
                        other => panic!("{case}: {other:?}"),
                    }
                } else {
                    assert!(g.is_successful(), "{case}");
                    assert!(g.exception().is_none(), "{case}");
                    assert!(is_greenlet_exit(&g), "{case}");
                }
                // Killing again, and links added after death: once each.
                g.kill().unwrap();
                let late = Counter::new();
                let l = late.clone();
                g.rawlink(move || l.hit());
                hub::join();
                assert_eq!(late.get(), 1, "{case}");
                links.assert(1, usize::from(!user_error), usize::from(user_error));
                assert_eq!(ran.get(), 0, "{case}: the body never ran");
                assert_eq!(dropped.get(), 1, "{case}");
            }
        }
        // Only kill_with's error is reported (4 creation kinds).
        assert_eq!(reports.count("greenlet"), 4, "{:?}", reports.all());
        drop(reports);
        base.check();
    });
}

#[greenlet::test]
fn kill_twice_and_after_death_change_nothing() {
    twice(|| {
        let base = Baseline::take();
        let reports = Reports::install();

        // Twice while blocked: one unwind, one destructor, one outcome.
        let dropped = Counter::new();
        let guard = dropped.guard();
        let g = spawn(move || {
            let _guard = guard;
            sleep(Duration::from_secs(10));
        });
        let links = Links::attach(&g);
        sleep(Duration::ZERO);
        g.kill().unwrap();
        g.kill().unwrap();
        g.kill_with(Shutdown).unwrap();
        g.kill_nowait();
        assert!(g.is_successful(), "the first kill (GreenletExit) wins");
        hub::join();
        links.assert(1, 1, 0);
        assert_eq!(dropped.get(), 1);

        // Two kills queued before the victim runs again: the first one wins
        // and the victim unwinds once.
        let unwinds = Counter::new();
        let u = unwinds.clone();
        let g = spawn(move || {
            let r = catch_unwind(AssertUnwindSafe(|| sleep(Duration::from_secs(10))));
            if let Err(payload) = r {
                u.hit();
                std::panic::resume_unwind(payload);
            }
        });
        let links = Links::attach(&g);
        sleep(Duration::ZERO);
        g.kill_nowait_with(KillError::new(Shutdown));
        g.kill_nowait();
        g.kill().unwrap();
        assert_eq!(unwinds.get(), 1);
        match g.get() {
            Err(GreenletError::Killed(KillError::Error(e))) => {
                assert_eq!(e.to_string(), "shutdown requested");
            }
            other => panic!("{other:?}"),
        }
        hub::join();
        links.assert(1, 0, 1);
        assert_eq!(reports.count("greenlet"), 1);

        // After death: the value and the panic are kept.
        let ok = spawn(|| 5);
        let bad = spawn(|| -> u8 { panic!("original") });
        let (l_ok, l_bad) = (Links::attach(&ok), Links::attach(&bad));
        ok.join().unwrap();
        bad.join().unwrap();
        for _ in 0..2 {
            ok.kill().unwrap();
            ok.kill_with(Shutdown).unwrap();
            bad.kill().unwrap();
            bad.kill_with(Shutdown).unwrap();
            assert!(ok.kill_timeout(ms(1)).is_ok());
        }
        assert_eq!(ok.get().expect("value kept"), 5);
        match bad.get() {
            Err(GreenletError::Panicked(p)) => assert_eq!(p.message(), "original"),
            other => panic!("{other:?}"),
        }
        hub::join();
        l_ok.assert(1, 1, 0);
        l_bad.assert(1, 0, 1);
        assert_eq!(reports.count("greenlet"), 2, "{:?}", reports.all());
        drop(reports);
        base.check();
    });
}

#[greenlet::test]
fn self_kill_unwinds_at_the_call() {
    twice(|| {
        let base = Baseline::take();
        let reports = Reports::install();
        #[derive(Clone, Copy, Debug)]
        enum How {
            Kill,
            With,
            Timeout,
        }
        for how in [How::Kill, How::With, How::Timeout] {
            let me: Rc<OnceCell<Greenlet<u8>>> = Rc::new(OnceCell::new());
            let (m, after, dropped) = (Rc::clone(&me), Counter::new(), Counter::new());
            let (a, guard) = (after.clone(), dropped.guard());
            let is_current = Rc::new(std::cell::Cell::new(false));
            let cur = Rc::clone(&is_current);
            let g = Greenlet::new(move || {
                let _guard = guard;
                sleep(Duration::ZERO);
                let this = m.get().expect("set before start").clone();
                cur.set(this.is_current()); // checked by the test
                // A self-kill unwinds at the call: none of these returns.
                match how {
                    How::Kill => this.kill().expect("unreachable"),
                    How::With => this.kill_with(Shutdown).expect("unreachable"),
                    How::Timeout => this.kill_timeout(ms(10)).expect("unreachable"),
                }
                a.hit(); // never reached
                9
            });
            me.set(g.clone()).expect("empty");
            let links = Links::attach(&g);
            g.start();
            g.join().unwrap();
            assert!(
                is_current.get(),
                "{how:?}: the body is the current greenlet"
            );
            assert_eq!(after.get(), 0, "{how:?}: code after a self-kill ran");
            assert_eq!(dropped.get(), 1, "{how:?}");
            assert_eq!(g.value(), None);
            hub::join();
            if matches!(how, How::With) {
                assert!(!g.is_successful());
                links.assert(1, 0, 1);
            } else {
                assert!(is_greenlet_exit(&g), "{how:?}: {:?}", g.get());
                links.assert(1, 1, 0);
            }
        }
        assert_eq!(reports.count("greenlet"), 1);

        // kill_nowait on oneself: runs on until the next switch, then unwinds.
        for via_getcurrent in [false, true] {
            let me: Rc<OnceCell<Greenlet<u8>>> = Rc::new(OnceCell::new());
            let (m, steps) = (Rc::clone(&me), Counter::new());
            let s = steps.clone();
            let g = Greenlet::new(move || {
                s.hit();
                if via_getcurrent {
                    getcurrent().kill_nowait();
                } else {
                    kill(m.get().expect("set"));
                }
                s.hit(); // still runs: nothing switched yet
                sleep(Duration::ZERO);
                s.hit(); // never reached
                1
            });
            me.set(g.clone()).expect("empty");
            g.start();
            g.join().unwrap();
            assert_eq!(steps.get(), 2);
            assert!(is_greenlet_exit(&g));
        }
        drop(reports);
        base.check();
    });
}

/// Kills a greenlet blocked in `block` and checks it died at once, ran its
/// destructors once, never ran past the blocking call, and left no timer.
fn kill_while_blocked(what: &str, block: impl FnOnce() + 'static) {
    let dropped = Counter::new();
    let after = Counter::new();
    let (guard, a) = (dropped.guard(), after.clone());
    let g = spawn(move || {
        let _guard = guard;
        block();
        a.hit();
    });
    let links = Links::attach(&g);
    sleep(Duration::ZERO);
    assert!(!g.is_ready(), "{what}: should be blocked");
    let t0 = Instant::now();
    g.kill().unwrap();
    assert!(
        t0.elapsed() < PROMPT,
        "{what}: kill took {:?}",
        t0.elapsed()
    );
    assert!(g.is_ready() && g.is_successful(), "{what}");
    assert!(is_greenlet_exit(&g), "{what}: {:?}", g.get());
    assert_eq!(dropped.get(), 1, "{what}: destructor ran once");
    assert_eq!(after.get(), 0, "{what}: ran past the blocking call");
    sleep(Duration::ZERO);
    links.assert(1, 1, 0);
}

#[greenlet::test]
fn kill_while_blocked_in_sleep_join_get_wait_and_timeouts() {
    twice(|| {
        let base = Baseline::take();
        kill_while_blocked("sleep", || sleep(Duration::from_secs(10)));
        kill_while_blocked("sleep(MAX)", || sleep(Duration::MAX));
        assert_eq!(hub::stats().timers, 0);

        // join / get / join_timeout / get_timeout: the joined greenlet is not
        // affected and finishes normally afterwards.
        for what in [
            "join",
            "get",
            "join_timeout",
            "get_timeout",
            "joinall",
            "wait",
            "iwait",
        ] {
            let other = spawn(|| {
                sleep(ms(20));
                5
            });
            let o = other.clone();
            kill_while_blocked(what, move || match what {
                "join" => drop(o.join()),
                "get" => drop(o.get()),
                "join_timeout" => drop(o.join_timeout(Duration::from_secs(10))),
                "get_timeout" => drop(o.get_timeout(Duration::from_secs(10))),
                "joinall" => drop(joinall([&o])),
                "wait" => drop(wait([&o])),
                _ => drop(iwait([&o]).count()),
            });
            assert!(!other.is_ready(), "{what}");
            assert_eq!(other.get().expect("unaffected"), 5, "{what}");
        }

        // Blocked under timeouts: the scope does not swallow the kill, and
        // the timeout's timer is gone with the victim (no stray expiry).
        kill_while_blocked("with_timeout", || {
            let r = with_timeout(Duration::from_secs(10), || sleep(Duration::from_secs(10)));
            panic!("with_timeout returned {r:?} instead of unwinding the kill");
        });
        kill_while_blocked("Timeout guard", || {
            let _t = Timeout::start_new(ms(20));
            sleep(Duration::from_secs(10));
        });
        assert_eq!(hub::stats().timers, 0);
        let t0 = Instant::now();
        sleep(ms(30)); // a stray 20 ms expiry would interrupt this
        assert!(t0.elapsed() >= ms(30));

        // A user error through a timeout scope reaches the outcome intact.
        let reports = Reports::install();
        let g = spawn(|| {
            let _ = with_timeout(Duration::from_secs(10), || sleep(Duration::from_secs(10)));
            unreachable!("the kill unwinds through the scope");
        });
        sleep(Duration::ZERO);
        g.kill_with(Shutdown).unwrap();
        match g.exception() {
            Some(GreenletError::Killed(KillError::Error(e))) => {
                assert_eq!(e.to_string(), "shutdown requested");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(reports.count("greenlet"), 1);
        drop(reports);
        base.check();
    });
}

/// `kill_timeout` gives up on a body that swallows the kill; the body stops
/// swallowing (on a flag) before the scope ends, since a greenlet that still
/// swallows every kill at `hub::destroy` or scope end aborts the process
/// (`hub_loop::destroy_aborts_on_a_greenlet_that_refuses_to_die`,
/// `scope_end_aborts_on_a_greenlet_that_swallows_kills`).
#[greenlet::test]
fn kill_timeout_on_a_body_that_swallows_the_kill() {
    twice(|| {
        let base = Baseline::take();
        let shots = Counter::new();
        let s = shots.clone();
        let swallow = Rc::new(std::cell::Cell::new(true));
        let sw = Rc::clone(&swallow);
        let g = greenlet::Builder::new()
            .name("stubborn")
            .spawn(move || {
                loop {
                    // Swallows every kill (a misuse the docs warn about)
                    // until told to stop.
                    if let Err(p) = catch_unwind(AssertUnwindSafe(|| sleep(ms(5)))) {
                        s.hit();
                        if !sw.get() {
                            std::panic::resume_unwind(p);
                        }
                    }
                }
            })
            .expect("one stack");
        let links = Links::attach(&g);
        sleep(Duration::ZERO);

        let t0 = Instant::now();
        let r = g.kill_timeout(ms(50));
        assert_band(t0.elapsed(), ms(50), ms(160));
        match r {
            Err(WaitError::Elapsed(e)) => assert_eq!(e.duration(), Some(ms(50))),
            other => panic!("the body swallows the kill: expected Elapsed, got {other:?}"),
        }
        assert_eq!(shots.get(), 1, "shot once per kill");
        assert!(!g.is_ready() && g.is_active());

        match g.kill_timeout(ms(20)) {
            Err(WaitError::Elapsed(e)) => assert_eq!(e.duration(), Some(ms(20))),
            other => panic!("still swallowing: expected Elapsed, got {other:?}"),
        }
        assert_eq!(shots.get(), 2);
        g.kill_nowait();
        sleep(ms(10));
        assert_eq!(shots.get(), 3);
        assert_eq!(hub::stats().greenlets, 1);
        links.assert(0, 0, 0);

        // It stops swallowing: the next kill ends it with the kill's
        // outcome (its catch_unwind re-raises the payload it caught last).
        swallow.set(false);
        let t0 = Instant::now();
        let r = g.kill_timeout(ms(500));
        assert!(t0.elapsed() < ms(160), "{:?}", t0.elapsed());
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(shots.get(), 4);
        assert!(g.is_ready() && !g.is_active());
        assert!(is_greenlet_exit(&g), "{:?}", g.get());
        hub::join();
        links.assert(1, 1, 0);
        let after = shots.get();
        // It is never resumed again.
        sleep(ms(10));
        assert_eq!(shots.get(), after);

        // The hub works afterwards, and nothing leaked.
        assert_eq!(spawn(|| 4).get().expect("hub works"), 4);
        hub::join();
        let s = hub::stats();
        assert!(s.is_quiet(), "{s:?}");
        base.check();
    });
}

/// A greenlet that swallowed kills and was then ended by `hub::destroy`
/// keeps a handle in user hands: it must not alias a greenlet of the fresh
/// hub that reuses its slot. (A greenlet that swallows every kill aborts the
/// process at destroy: it swallows two here, and dies at the third shot.)
#[greenlet::test]
fn handle_of_a_greenlet_ended_by_destroy_is_inert() {
    twice(|| {
        let base = Baseline::take();
        let shots = Counter::new();
        let s = shots.clone();
        let g = spawn(move || {
            loop {
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| sleep(ms(5)))) {
                    s.hit();
                    if s.get() >= 3 {
                        std::panic::resume_unwind(p);
                    }
                }
            }
        });
        sleep(Duration::ZERO);
        let reports = Reports::install();
        hub::destroy();
        assert_eq!(shots.get(), 3, "destroy shot it three times");
        assert!(reports.all().is_empty(), "{:?}", reports.all());
        drop(reports);
        assert_eq!(hub::stats().greenlets, 0);
        assert!(g.is_ready() && g.is_successful(), "{g}");

        let ran = Counter::new();
        let r = ran.clone();
        let fresh = spawn(move || {
            sleep(ms(1));
            r.hit();
            7
        });
        // Killing or waiting on the old handle must not touch `fresh`.
        g.kill_nowait();
        g.kill().expect("killing a dead greenlet is a no-op");
        g.join_timeout(ms(1)).expect("it is dead");
        assert!(!g.is_current());
        assert_eq!(fresh.get().expect("fresh greenlet unaffected"), 7);
        assert_eq!(ran.get(), 1);
        assert!(!g.is_active(), "a dead greenlet should not look alive: {g}");
        hub::join();
        let s = hub::stats();
        assert!(s.is_quiet(), "{s:?}");
        base.check();
    });
}
/// A destructor that switches (sleeps) while the greenlet unwinds, and
/// records how long its sleep really lasted.
struct SlowDrop {
    log: Log,
    pause: Duration,
    slept: Rc<std::cell::Cell<Option<Duration>>>,
}

impl SlowDrop {
    fn new(log: &Log, pause: Duration) -> (SlowDrop, Rc<std::cell::Cell<Option<Duration>>>) {
        let slept = Rc::new(std::cell::Cell::new(None));
        let d = SlowDrop {
            log: log.clone(),
            pause,
            slept: Rc::clone(&slept),
        };
        (d, slept)
    }
}

impl Drop for SlowDrop {
    fn drop(&mut self) {
        self.log.push("drop start");
        let t0 = Instant::now();
        sleep(self.pause);
        self.slept.set(Some(t0.elapsed()));
        self.log.push("drop end");
    }
}

#[greenlet::test]
fn kills_and_timeouts_during_a_blocking_destructor_do_not_abort() {
    // A kill unwinds the victim; its destructor sleeps. A second kill and
    // an expiring timeout cannot be raised while it unwinds (a panic during
    // a panic aborts); they must not abort, and must not cut the
    // destructor's sleep short either (a `sleep(30 ms)` that silently
    // returns after 5 ms breaks whatever the destructor waits for).
    twice(|| {
        let base = Baseline::take();
        let log = Log::new();
        let (slow, slept) = SlowDrop::new(&log, ms(30));
        let g = spawn(move || {
            let _t = Timeout::start_new(ms(15)); // expires mid-destructor
            let _slow = slow;
            sleep(Duration::from_secs(10));
        });
        let links = Links::attach(&g);
        sleep(Duration::ZERO);
        g.kill_nowait();
        sleep(ms(5)); // now inside the destructor's sleep
        assert_eq!(log.take(), ["drop start"]);
        g.kill_nowait();
        g.kill_with(Shutdown).unwrap(); // waits for the death
        assert_eq!(log.take(), ["drop end"]);
        assert!(
            is_greenlet_exit(&g),
            "the first kill decides: {:?}",
            g.get()
        );
        hub::join();
        links.assert(1, 1, 0);
        base.check();
        let slept = slept.get().expect("the destructor finished");
        assert!(
            slept >= ms(30),
            "sleep(30 ms) in a destructor returned after {slept:?}: cut short by a kill \
             or timeout that could not be raised during the unwind"
        );
    });
}

#[greenlet::test]
fn destroy_lets_destructors_that_block_run_to_their_end() {
    twice(|| {
        let log = Log::new();
        let (slow, slept) = SlowDrop::new(&log, ms(20));
        let g = spawn(move || {
            let _slow = slow;
            sleep(Duration::from_secs(3600));
        });
        sleep(Duration::ZERO);
        hub::destroy();
        assert_eq!(log.take(), ["drop start", "drop end"]);
        assert!(g.is_ready());
        let s = hub::stats();
        assert!(s.is_quiet(), "{s:?}");
        // The destructor's sleep is waited for; it runs to its end.
        assert!(slept.get().is_some(), "the destructor finished");
    });
}

/// What the child process of
/// [`a_second_kill_during_a_destructor_that_waits_for_a_result_does_not_abort`]
/// runs.
fn destructor_waits_for_a_result_scenario() {
    struct WaitsForResult {
        other: Greenlet<u32>,
        seen: Rc<std::cell::Cell<Option<u32>>>,
    }
    impl Drop for WaitsForResult {
        fn drop(&mut self) {
            // Runs while the greenlet unwinds from its kill.
            let v = self.other.get().expect("other returns a value");
            self.seen.set(Some(v));
        }
    }
    let base = Baseline::take();
    let other = spawn(|| {
        sleep(ms(40));
        17
    });
    let seen = Rc::new(std::cell::Cell::new(None));
    let (o, s) = (other.clone(), Rc::clone(&seen));
    let victim = spawn(move || {
        let _w = WaitsForResult { other: o, seen: s };
        sleep(Duration::from_secs(10));
    });
    sleep(Duration::ZERO);
    victim.kill_nowait();
    sleep(ms(5)); // the victim now waits in `other.get()`, unwinding
    victim.kill_nowait();
    victim.join().unwrap();
    assert_eq!(
        seen.get(),
        Some(17),
        "the destructor's get() saw the real result"
    );
    assert!(other.is_ready());
    base.check();
}

#[greenlet::test]
fn a_second_kill_during_a_destructor_that_waits_for_a_result_does_not_abort() {
    // While a greenlet unwinds, a pending kill cannot be raised (a panic
    // during a panic aborts). The second kill must not make the
    // destructor's blocking `get()` return before the result exists either:
    // `get` would then read a pending result and panic inside the unwind,
    // which aborts the whole process. Runs in a child process for that
    // reason.
    if reliability_common::in_child() {
        destructor_waits_for_a_result_scenario();
        destructor_waits_for_a_result_scenario();
        return;
    }
    let out = reliability_common::run_child(
        "a_second_kill_during_a_destructor_that_waits_for_a_result_does_not_abort",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child process failed ({}):\n{stderr}",
        out.status
    );
}

#[greenlet::test]
fn destroy_kills_blocked_greenlets_and_runs_their_destructors() {
    twice(|| {
        let base = Baseline::take();
        let dropped = Counter::new();
        let after = Counter::new();
        let target = spawn(|| sleep(Duration::from_secs(3600)));
        let (g1, a1) = (dropped.guard(), after.clone());
        let sleeper = spawn(move || {
            let _g = g1;
            sleep(Duration::from_secs(3600));
            a1.hit();
        });
        let (g2, a2, t2) = (dropped.guard(), after.clone(), target.clone());
        let joiner = spawn(move || {
            let _g = g2;
            t2.join().unwrap();
            a2.hit();
        });
        let (g3, a3, t3) = (dropped.guard(), after.clone(), target.clone());
        let getter = spawn(move || {
            let _g = g3;
            let _ = with_timeout(Duration::from_secs(3600), || t3.get());
            a3.hit();
        });
        let (g4, a4) = (dropped.guard(), after.clone());
        spawn_raw(move || {
            let _g = g4;
            sleep(Duration::from_secs(3600));
            a4.hit();
        });
        sleep(Duration::ZERO);
        // Scheduled but never run, and waiting for its start timer.
        let (g5, a5) = (dropped.guard(), after.clone());
        let unrun = spawn(move || {
            let _g = g5;
            a5.hit();
        });
        let (g6, a6) = (dropped.guard(), after.clone());
        let later = spawn_later(Duration::from_secs(3600), move || {
            let _g = g6;
            a6.hit();
        });
        // Created, never started: not the hub's business.
        let (g7, a7) = (dropped.guard(), after.clone());
        let unstarted = Greenlet::new(move || {
            let _g = g7;
            a7.hit();
            11
        });
        let all: [&dyn AnyGreenlet; 6] = [&target, &sleeper, &joiner, &getter, &unrun, &later];
        let links: Vec<Counter> = all
            .iter()
            .map(|g| {
                let c = Counter::new();
                let c2 = c.clone();
                g.rawlink(Box::new(move || c2.hit()));
                c
            })
            .collect();
        assert_eq!(hub::stats().greenlets, 7);

        hub::destroy();
        assert_eq!(
            dropped.get(),
            6,
            "every started greenlet's destructors ran once"
        );
        assert_eq!(after.get(), 0, "no body ran past its blocking call");
        assert!(all.iter().all(|g| g.is_ready()));
        assert!(links.iter().all(|c| c.get() == 1), "links fired once each");
        let s = hub::stats();
        assert_eq!(
            (s.greenlets, s.timers, s.callbacks, s.stacks_allocated),
            (0, 0, 0, 0),
            "{s:?}"
        );

        // The unstarted one still works on the fresh hub.
        assert!(!unstarted.is_started());
        unstarted.start();
        assert_eq!(unstarted.get().expect("runs on the new hub"), 11);
        assert_eq!(dropped.get(), 7);
        assert_eq!(after.get(), 1);
        assert!(links.iter().all(|c| c.get() == 1));
        base.check();
    });
}

/// Scope end (the thread's `greenlet::run` returning, or unwinding) kills
/// every greenlet still blocked and runs their destructors and links; the
/// thread then exits with nothing left. Each thread has its own scope.
#[test]
fn scope_end_kills_blocked_greenlets_and_runs_their_destructors() {
    for unwind in [false, true, false] {
        let dropped = Arc::new(AtomicUsize::new(0));
        let linked = Arc::new(AtomicUsize::new(0));
        let live_at_end = Arc::new(AtomicUsize::new(usize::MAX));
        struct Guard(Arc<AtomicUsize>);
        impl Drop for Guard {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let (d, l, live) = (
            Arc::clone(&dropped),
            Arc::clone(&linked),
            Arc::clone(&live_at_end),
        );
        let thread = std::thread::spawn(move || {
            let ended = catch_unwind(AssertUnwindSafe(|| {
                greenlet::run(|| {
                    let target = spawn(|| sleep(Duration::from_secs(3600)));
                    let g1 = Guard(Arc::clone(&d));
                    let sleeper = spawn(move || {
                        let _g = g1;
                        sleep(Duration::from_secs(3600));
                    });
                    let (g2, t2) = (Guard(Arc::clone(&d)), target.clone());
                    let joiner = spawn(move || {
                        let _g = g2;
                        t2.join().unwrap();
                    });
                    for g in [&target, &sleeper, &joiner] {
                        let l = Arc::clone(&l);
                        g.rawlink(move || {
                            l.fetch_add(1, Ordering::SeqCst);
                        });
                    }
                    sleep(Duration::ZERO);
                    // Recorded, checked by the test thread.
                    live.store(hub::stats().greenlets, Ordering::SeqCst);
                    if unwind {
                        panic!("scope body unwinds");
                    }
                    // The scope ends with all three blocked.
                })
            }));
            assert_eq!(
                ended.is_err(),
                unwind,
                "a panicking body is resumed after the kills"
            );
            // Outside the scope: the hub was reset, nothing is alive.
            hub::stats()
        });
        let after = thread
            .join()
            .expect("scope end with live greenlets must not panic");
        assert_eq!(live_at_end.load(Ordering::SeqCst), 3);
        assert_eq!(dropped.load(Ordering::SeqCst), 2, "unwind={unwind}");
        assert_eq!(linked.load(Ordering::SeqCst), 3, "unwind={unwind}");
        assert!(after.is_quiet(), "{after:?}");
    }
}

/// A greenlet that swallows every kill cannot be ended at scope end: the
/// process aborts naming it and its spawn site (leaking its frames could
/// leave borrows of freed thread-locals behind). Runs in a child process.
#[test]
fn scope_end_aborts_on_a_greenlet_that_swallows_kills() {
    if reliability_common::in_child() {
        greenlet::run(|| {
            greenlet::Builder::new()
                .name("swallower")
                .spawn(|| {
                    loop {
                        let _ = catch_unwind(AssertUnwindSafe(|| sleep(ms(5))));
                    }
                })
                .expect("spawn");
            sleep(Duration::ZERO);
        });
        println!("scope ended normally");
        return;
    }
    let out = reliability_common::run_child("scope_end_aborts_on_a_greenlet_that_swallows_kills");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(!stdout.contains("scope ended normally"), "{stdout}");
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGABRT),
            "{:?}\n{stderr}",
            out.status
        );
    }
    assert!(stderr.contains("swallower"), "{stderr}");
    assert!(
        stderr.contains("reliability_kill.rs:"),
        "names the spawn site: {stderr}"
    );
}

#[greenlet::test]
fn destroy_from_a_greenlet_or_a_callback_is_refused() {
    twice(|| {
        let base = Baseline::take();
        let reports = Reports::install();
        let g = spawn(hub::destroy);
        match g.get() {
            Err(GreenletError::Panicked(p)) => {
                assert!(
                    p.message().contains("only the native stack"),
                    "{}",
                    p.message()
                );
            }
            other => panic!("{other:?}"),
        }
        let h = spawn(|| 1);
        h.link(|_| hub::destroy());
        h.join().unwrap();
        hub::join();
        assert_eq!(reports.count("greenlet"), 1);
        assert_eq!(reports.count("link callback"), 1, "{:?}", reports.all());
        drop(reports);
        base.check();
    });
}
