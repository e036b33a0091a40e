//! Killing greenlets: before start, while blocked, itself, twice, with an
//! error, without waiting, with a timeout; destructors run on the way out.

mod common;

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{
    DropLog, LONG, Log, PROMPT, Reports, Shutdown, TICK, assert_band, assert_contains, assert_tick,
    quiet, spawn_self, timed,
};
use greenlet::{
    AnyGreenlet, Greenlet, GreenletError, KillError, Timeout, WaitError, getcurrent, hub, iwait,
    kill, sleep, spawn, wait, with_timeout,
};

/// The state gevent's `assertKilled` checks, for a plain `GreenletExit` kill.
#[track_caller]
fn assert_killed<T: Clone + std::fmt::Debug>(g: &Greenlet<T>) {
    assert!(g.is_ready() && g.is_dead() && !g.is_active(), "{g}");
    assert!(g.is_successful(), "GreenletExit is success: {g}");
    assert!(g.exception().is_none());
    assert!(g.value().is_none(), "{:?}", g.try_get());
    assert!(
        matches!(
            g.try_get(),
            Some(Err(GreenletError::Killed(KillError::GreenletExit)))
        ),
        "{:?}",
        g.try_get()
    );
}

#[greenlet::test]
fn kill_before_start_never_runs_the_body() {
    for round in 0..2 {
        let ran = Rc::new(Cell::new(false));
        let links = Log::new();
        let r = ran.clone();
        let g = spawn(move || {
            r.set(true);
            1
        });
        let l = links.clone();
        g.link(move |g| l.push(format!("link ready={}", g.is_ready())));
        let t0 = Instant::now();
        if round == 0 {
            g.kill().unwrap();
        } else {
            g.kill_nowait();
        }
        assert!(t0.elapsed() < PROMPT);
        // Dead at once, before any loop turn.
        assert_killed(&g);
        assert_eq!(hub::stats().greenlets, 0, "its slot is freed at once");
        assert!(g.is_started(), "it was spawned");
        assert!(
            links.is_empty(),
            "links fire on the next loop turn, not inside kill"
        );
        let l = links.clone();
        g.link(move |_| l.push("late link"));
        quiet();
        assert!(
            !ran.get(),
            "the body of a greenlet killed before start never runs"
        );
        assert_eq!(links.entries(), ["link ready=true", "late link"]);
        // Killing again does nothing.
        g.kill().unwrap();
        quiet();
        assert_eq!(links.len(), 2);
        assert_killed(&g);
    }
}

#[greenlet::test]
fn kill_of_an_unstarted_greenlet_prevents_it_from_ever_starting() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let g = Greenlet::new(move || r.set(true));
    let fired = Rc::new(Cell::new(0));
    let f = fired.clone();
    g.rawlink(move || f.set(f.get() + 1));
    g.kill().unwrap();
    assert!(g.is_ready() && g.is_successful());
    assert!(!g.is_started(), "killed before start: never started");
    g.start(); // no-op on a dead greenlet
    quiet();
    assert!(!ran.get());
    assert_eq!(fired.get(), 1);
    assert_eq!(hub::stats().greenlets, 0);
}

#[greenlet::test]
fn kill_cancels_a_pending_start_later() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let g = Greenlet::new(move || r.set(true));
    g.start_later(Duration::from_millis(20));
    assert_eq!(hub::stats().timers, 1);
    g.kill().unwrap();
    assert_eq!(hub::stats().timers, 0, "the start timer is cancelled");
    assert_eq!(hub::stats().greenlets, 0);
    sleep(Duration::from_millis(40));
    assert!(!ran.get());
    assert!(g.is_ready() && g.is_successful());
    quiet();
}

#[greenlet::test]
fn kill_with_before_start_fails_the_greenlet_without_running_it() {
    let reports = Reports::install();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let g = spawn(move || r.set(true));
    g.kill_with(Shutdown("early")).unwrap();
    assert!(g.is_ready() && !g.is_successful());
    quiet();
    assert!(!ran.get());
    let report = reports.take_one();
    assert!(matches!(
        report.error,
        GreenletError::Killed(KillError::Error(_))
    ));
}

#[greenlet::test]
fn killing_a_dead_greenlet_does_nothing() {
    let reports = Reports::install();
    let g = spawn(|| 5);
    let fired = Rc::new(Cell::new(0));
    let f = fired.clone();
    g.rawlink(move || f.set(f.get() + 1));
    g.join().unwrap();
    g.kill().unwrap();
    g.kill_with(Shutdown("late")).unwrap();
    g.kill_nowait();
    kill(&g);
    assert!(g.kill_timeout(Duration::from_millis(1)).is_ok());
    assert_eq!(g.value(), Some(5), "the outcome is unchanged");
    assert!(g.is_successful());
    quiet();
    assert_eq!(fired.get(), 1, "links fire once");
    assert!(reports.is_empty(), "{:?}", reports.all());
}

#[greenlet::test]
fn kill_unwinds_a_sleeping_greenlet_and_runs_its_destructors() {
    // gevent's test_killing_dormant.
    for _round in 0..2 {
        let log = Log::new();
        let l = log.clone();
        let g = spawn(move || {
            let _outer = DropLog::new("outer", &l);
            l.push("start");
            {
                let _inner = DropLog::new("inner", &l);
                sleep(LONG);
                l.push("after sleep");
            }
            l.push("finished");
        });
        sleep(Duration::from_millis(5));
        assert_eq!(log.entries(), ["start"]);
        let (r, took) = timed(|| g.kill());
        r.expect("kill succeeds");
        assert!(took < PROMPT, "the kill ends the 30 s sleep: {took:?}");
        // kill() returns once it is dead: the unwinding is complete.
        assert_eq!(log.entries(), ["start", "drop inner", "drop outer"]);
        assert_killed(&g);
        quiet();
    }
}

#[greenlet::test]
fn kill_unwinds_a_greenlet_waiting_in_the_ready_queue() {
    let count = Rc::new(Cell::new(0));
    let log = Log::new();
    let c = count.clone();
    let l = log.clone();
    let g = spawn(move || {
        let _guard = DropLog::new("spinner", &l);
        loop {
            c.set(c.get() + 1);
            sleep(Duration::ZERO);
        }
    });
    sleep(Duration::ZERO);
    sleep(Duration::ZERO);
    let before = count.get();
    assert!(before >= 2);
    g.kill().unwrap();
    assert_killed(&g);
    assert_eq!(log.entries(), ["drop spinner"]);
    sleep(Duration::ZERO);
    assert_eq!(count.get(), before, "a killed greenlet never runs again");
    quiet();
}

#[greenlet::test]
fn double_kill_is_harmless_and_links_fire_once() {
    let fired = Log::new();
    let g = spawn(|| sleep(LONG));
    let f = fired.clone();
    g.link(move |_| f.push("link"));
    sleep(Duration::ZERO);
    g.kill().unwrap();
    assert_killed(&g);
    g.kill().unwrap();
    assert_killed(&g);
    quiet();
    assert_eq!(fired.entries(), ["link"]);
}

#[greenlet::test]
fn the_first_pending_kill_wins() {
    let reports = Reports::install();
    let g = spawn(|| sleep(LONG));
    sleep(Duration::ZERO);
    g.kill_nowait();
    g.kill_nowait_with(KillError::new(Shutdown("second")));
    g.join().unwrap();
    assert_killed(&g);
    assert!(reports.is_empty(), "{:?}", reports.all());

    let h = spawn(|| sleep(LONG));
    sleep(Duration::ZERO);
    h.kill_nowait_with(KillError::new(Shutdown("first")));
    h.kill_nowait();
    h.join().unwrap();
    assert!(!h.is_successful());
    assert_contains(&h.exception().expect("failed").to_string(), &["first"]);
    assert_eq!(reports.take_one().context, "greenlet");
    quiet();
}

#[greenlet::test]
fn a_greenlet_killing_itself_unwinds_at_the_call() {
    let log = Log::new();
    let l = log.clone();
    let g = spawn_self(move |me: &Greenlet<u8>| {
        let _guard = DropLog::new("self", &l);
        l.push("before");
        me.kill().unwrap();
        l.push("after kill");
        1
    });
    g.join().unwrap();
    assert_eq!(log.entries(), ["before", "drop self"]);
    assert_killed(&g);
    quiet();
}

#[greenlet::test]
fn a_greenlet_killing_itself_with_an_error_fails_and_is_reported() {
    let reports = Reports::install();
    let log = Log::new();
    let l = log.clone();
    let g = spawn_self(move |me: &Greenlet<u8>| {
        l.push("before");
        me.kill_with(Shutdown("self")).unwrap();
        l.push("after kill");
        1
    });
    let err = g.get().unwrap_err();
    assert!(
        matches!(&err, GreenletError::Killed(KillError::Error(e)) if e.to_string() == "shutdown: self"),
        "{err:?}"
    );
    assert_eq!(log.entries(), ["before"]);
    assert!(!g.is_successful());
    assert_eq!(reports.take_one().context, "greenlet");
    quiet();
}

#[greenlet::test]
fn kill_nowait_on_itself_unwinds_at_the_next_switch() {
    let log = Log::new();
    let l = log.clone();
    let g = spawn_self(move |me: &Greenlet<()>| {
        me.kill_nowait();
        l.push("still running");
        sleep(Duration::ZERO);
        l.push("after switch");
    });
    g.join().unwrap();
    assert_eq!(log.entries(), ["still running"]);
    assert_killed(&g);
    quiet();
}

#[greenlet::test]
fn kill_nowait_neither_switches_nor_waits() {
    let log = Log::new();
    let l = log.clone();
    let victim = spawn(move || {
        let _guard = DropLog::new("victim", &l);
        sleep(LONG);
    });
    sleep(Duration::ZERO);
    let l = log.clone();
    let other = spawn(move || l.push("other ran"));
    victim.kill_nowait();
    assert!(log.is_empty(), "kill_nowait must not switch: {log:?}");
    assert!(!victim.is_ready(), "it dies when it next runs");
    victim.join().unwrap();
    assert_eq!(log.entries(), ["other ran", "drop victim"]);
    assert_killed(&victim);
    other.join().unwrap();
    quiet();
}

#[greenlet::test]
fn module_level_kill_is_asynchronous() {
    let g = spawn(|| sleep(LONG));
    sleep(Duration::ZERO);
    kill(&g);
    assert!(!g.is_ready());
    g.join().unwrap();
    assert_killed(&g);

    // Through a trait object, mixing result types.
    let a = spawn(|| sleep(LONG));
    let b = spawn(|| -> String {
        sleep(LONG);
        String::new()
    });
    sleep(Duration::ZERO);
    let both: [&dyn AnyGreenlet; 2] = [&a, &b];
    for g in both {
        kill(g);
    }
    a.join().unwrap();
    b.join().unwrap();
    assert!(a.is_successful() && b.is_successful());
    quiet();
}

#[greenlet::test]
fn kill_timeout_returns_once_dead() {
    let g = spawn(|| sleep(LONG));
    sleep(Duration::ZERO);
    let (r, took) = timed(|| g.kill_timeout(PROMPT));
    assert!(r.is_ok(), "{r:?}");
    assert!(took < PROMPT);
    assert_killed(&g);
    quiet();
}

/// A body that swallows the first unwind (wrongly) and sleeps again.
fn stubborn(log: &Log) -> impl FnOnce() + 'static {
    let l = log.clone();
    move || {
        // The caught payload is dropped at once: while user code holds it,
        // the greenlet counts as still unwinding and a new kill waits.
        let swallowed = catch_unwind(AssertUnwindSafe(|| sleep(LONG))).is_err();
        l.push(format!("swallowed={swallowed}"));
        let _guard = DropLog::new("stubborn", &l);
        sleep(LONG);
        l.push("woke normally");
    }
}

#[greenlet::test]
fn kill_timeout_gives_up_on_a_greenlet_that_will_not_die() {
    let log = Log::new();
    let g = spawn(stubborn(&log));
    sleep(Duration::ZERO);
    let (r, took) = timed(|| g.kill_timeout(TICK));
    let Err(WaitError::Elapsed(elapsed)) = r else {
        panic!("it swallowed the kill: expected Elapsed, got {r:?}");
    };
    assert_eq!(elapsed.duration(), Some(TICK));
    assert_tick("kill_timeout(50ms)", took);
    assert!(!g.is_ready());
    assert_eq!(log.entries(), ["swallowed=true"]);
    // A second kill is delivered again and this time it dies.
    g.kill().unwrap();
    assert_killed(&g);
    assert_eq!(log.entries(), ["swallowed=true", "drop stubborn"]);
    quiet();
}

#[greenlet::test]
fn a_body_that_re_raises_the_kill_dies_killed() {
    let log = Log::new();
    let l = log.clone();
    let g = spawn(move || {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| sleep(LONG))) {
            l.push("cleanup");
            resume_unwind(payload);
        }
        l.push("unreachable");
    });
    sleep(Duration::ZERO);
    g.kill().unwrap();
    assert_eq!(log.entries(), ["cleanup"]);
    assert_killed(&g);
    quiet();
}

#[greenlet::test]
fn killing_a_joiner_leaves_the_joined_greenlet_alone() {
    for _round in 0..2 {
        let target = spawn(|| {
            sleep(Duration::from_millis(40));
            "target"
        });
        let log = Log::new();
        let l = log.clone();
        let t = target.clone();
        let joiner = spawn(move || {
            let _g = DropLog::new("joiner", &l);
            t.join().unwrap();
            l.push("joined");
        });
        sleep(Duration::ZERO);
        joiner.kill().unwrap();
        assert_eq!(log.entries(), ["drop joiner"]);
        assert!(!target.is_ready(), "the target keeps running");
        // A new greenlet may reuse the joiner's slot: the target finishing
        // must not wake it early through a stale link.
        let newcomer = spawn(|| timed(|| sleep(Duration::from_millis(80))).1);
        assert_eq!(target.get().unwrap(), "target");
        let slept = newcomer.get().unwrap();
        assert!(
            slept >= Duration::from_millis(80),
            "woken early after {slept:?}"
        );
        quiet();
    }
}

#[greenlet::test]
fn killing_a_greenlet_blocked_in_get_or_wait() {
    let target = spawn(|| {
        sleep(Duration::from_millis(60));
        3
    });
    let log = Log::new();
    let (t1, l1) = (target.clone(), log.clone());
    let getter = spawn(move || {
        let _g = DropLog::new("getter", &l1);
        let v = t1.get();
        l1.push(format!("got {v:?}"));
    });
    let (t2, l2) = (target.clone(), log.clone());
    let waiter = spawn(move || {
        let _g = DropLog::new("waiter", &l2);
        let r = wait([&t2]).map(|v| v.len());
        l2.push(format!("waited {r:?}"));
    });
    let (t3, l3) = (target.clone(), log.clone());
    let iwaiter = spawn(move || {
        let _g = DropLog::new("iwaiter", &l3);
        let n = iwait([&t3]).count();
        l3.push(format!("iwaited {n}"));
    });
    sleep(Duration::ZERO);
    getter.kill().unwrap();
    waiter.kill().unwrap();
    iwaiter.kill().unwrap();
    assert_eq!(
        log.entries(),
        ["drop getter", "drop waiter", "drop iwaiter"]
    );
    assert_eq!(target.get().unwrap(), 3);
    quiet();
    assert_eq!(log.len(), 3, "no killed waiter ran on: {log:?}");
}

#[greenlet::test]
fn killing_a_greenlet_inside_a_timeout_scope_is_a_kill_not_a_timeout() {
    let log = Log::new();
    let l = log.clone();
    let g = spawn(move || {
        let r = with_timeout(Duration::from_secs(10), || {
            let _g = DropLog::new("scoped", &l);
            sleep(LONG)
        });
        l.push(format!("scope returned {}", r.is_ok()));
    });
    sleep(Duration::ZERO);
    assert_eq!(hub::stats().timers, 2, "the timeout and the sleep");
    g.kill().unwrap();
    assert_eq!(log.entries(), ["drop scoped"]);
    assert_killed(&g);
    assert_eq!(
        hub::stats().timers,
        0,
        "the timeout was cancelled by unwinding"
    );
    quiet();
}

#[greenlet::test]
fn killing_a_greenlet_holding_a_started_timeout_cancels_it() {
    let g = spawn(|| {
        let _t = Timeout::start_new(Duration::from_secs(10));
        sleep(LONG);
    });
    sleep(Duration::ZERO);
    g.kill().unwrap();
    assert_killed(&g);
    assert_eq!(hub::stats().timers, 0);
    quiet();
}

#[greenlet::test]
fn many_sleeping_greenlets_can_be_killed() {
    for _round in 0..2 {
        let drops = Log::new();
        let gs: Vec<_> = (0..200)
            .map(|_| {
                let d = drops.clone();
                spawn(move || {
                    let _g = DropLog::new("g", &d);
                    sleep(LONG);
                })
            })
            .collect();
        sleep(Duration::ZERO);
        assert_eq!(hub::stats().timers, 200);
        for g in &gs {
            g.kill().unwrap();
        }
        assert_eq!(drops.count("drop g"), 200);
        assert!(gs.iter().all(Greenlet::is_successful));
        quiet();
    }
}

#[greenlet::test]
fn a_link_may_kill_nowait_but_not_block() {
    let reports = Reports::install();
    let victim = spawn(|| sleep(LONG));
    let trigger = spawn(|| ());
    let v = victim.clone();
    trigger.link(move |_| v.kill_nowait());
    let (_, took) = timed(|| victim.join());
    assert!(took < PROMPT);
    assert_killed(&victim);
    assert!(reports.is_empty(), "{:?}", reports.all());

    // A blocking kill inside a link, on a live victim, is refused loudly.
    let victim = spawn(|| sleep(LONG));
    let trigger = spawn(|| ());
    let v = victim.clone();
    trigger.link(move |_| v.kill().unwrap());
    trigger.join().unwrap();
    sleep(Duration::ZERO);
    let r = reports.take_one();
    assert_eq!(r.context, "link callback");
    assert_contains(
        &r.error.to_string(),
        &["cannot block inside a hub callback"],
    );
    victim.kill().unwrap();
    quiet();
}

/// The main greenlet can be killed since issue 13 (gevent's `kill(main)`);
/// the hub cannot: `getcurrent()` inside a hub callback refuses the kill.
#[greenlet::test]
fn the_hub_cannot_be_killed() {
    let msg = Rc::new(std::cell::RefCell::new(None));
    let m = msg.clone();
    let trigger = spawn(|| ());
    trigger.rawlink(move || {
        // Caught here: a panic in a callback would only be reported.
        let r = catch_unwind(AssertUnwindSafe(|| {
            let hub = getcurrent();
            assert!(hub.is_hub(), "{hub}");
            hub.kill_nowait();
        }));
        *m.borrow_mut() = Some(r.map_err(|p| common::panic_message(p.as_ref())));
    });
    trigger.join().unwrap();
    sleep(Duration::ZERO);
    match msg.borrow_mut().take() {
        Some(Err(text)) => assert_contains(&text, &["cannot be killed"]),
        other => panic!("killing the hub must panic: {other:?}"),
    }
    // A greenlet killing itself through getcurrent(): at the next switch.
    let log = Log::new();
    let l = log.clone();
    let g = spawn(move || {
        getcurrent().kill_nowait();
        l.push("same turn");
        sleep(Duration::ZERO);
        l.push("next turn");
    });
    g.join().unwrap();
    assert_eq!(log.entries(), ["same turn"]);
    assert_killed(&g);
    quiet();
}

#[greenlet::test]
fn kill_waits_for_slow_destructors() {
    // The victim's destructor sleeps: kill() blocks until it is done.
    struct SlowDrop;
    impl Drop for SlowDrop {
        fn drop(&mut self) {
            // Blocking in a destructor while unwinding a kill is allowed.
            sleep(TICK);
        }
    }
    let g = spawn(|| {
        let _slow = SlowDrop;
        sleep(LONG);
    });
    sleep(Duration::ZERO);
    let (r, took) = timed(|| g.kill());
    r.expect("kill succeeds");
    assert_band(
        "kill of a greenlet whose destructor sleeps 50 ms",
        took,
        TICK,
        PROMPT,
    );
    assert_killed(&g);
    quiet();
}
