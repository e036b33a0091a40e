//! `sleep`, `sleep_unref`, `sleep_secs` and `idle`: fairness of `sleep(0)`,
//! timing bands, timer order, and `LoopExit` for sleeps nothing can end.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{
    LONG, Log, PROMPT, Reports, TICK, TICK_UPPER, assert_band, assert_contains, assert_tick,
    expect_panic, quiet, timed,
};
use greenlet::{hub, idle, sleep, sleep_secs, sleep_unref, spawn};

#[greenlet::test]
fn sleep_zero_interleaves_fairly() {
    for _round in 0..2 {
        let log = Log::new();
        let gs: Vec<_> = (1..=2)
            .map(|i| {
                let l = log.clone();
                spawn(move || {
                    l.push(format!("{i}A"));
                    sleep(Duration::ZERO);
                    l.push(format!("{i}B"));
                })
            })
            .collect();
        for g in &gs {
            g.join().unwrap();
        }
        assert_eq!(log.entries(), ["1A", "2A", "1B", "2B"]);
        quiet();
    }
}

#[greenlet::test]
fn sleep_zero_round_robins_three_greenlets() {
    let log = Log::new();
    let gs: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|name| {
            let l = log.clone();
            spawn(move || {
                for round in 0..3 {
                    l.push(format!("{name}{round}"));
                    sleep(Duration::ZERO);
                }
            })
        })
        .collect();
    for g in &gs {
        g.join().unwrap();
    }
    assert_eq!(
        log.entries(),
        ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"]
    );
    quiet();
}

#[greenlet::test]
fn sleep_zero_on_the_native_stack_runs_each_ready_greenlet_once() {
    let log = Log::new();
    let l = log.clone();
    let g = spawn(move || {
        for i in 0..3 {
            l.push(format!("g{i}"));
            sleep(Duration::ZERO);
        }
    });
    sleep(Duration::ZERO);
    assert_eq!(log.entries(), ["g0"]);
    sleep(Duration::ZERO);
    assert_eq!(log.entries(), ["g0", "g1"]);
    g.join().unwrap();
    assert_eq!(log.entries(), ["g0", "g1", "g2"]);
    quiet();
}

#[greenlet::test]
fn sleep_zero_alone_returns_at_once() {
    let ((), took) = timed(|| {
        for _ in 0..1000 {
            sleep(Duration::ZERO);
        }
    });
    assert!(took < PROMPT);
    quiet();
}

#[greenlet::test]
fn sleep_on_the_native_stack_lasts_at_least_the_duration() {
    for _round in 0..2 {
        let ((), took) = timed(|| sleep(TICK));
        assert_tick("sleep(50ms) on the native stack", took);
        quiet();
    }
}

#[greenlet::test]
fn sleep_in_a_greenlet_lasts_at_least_the_duration() {
    let g = spawn(|| timed(|| sleep(TICK)).1);
    let took = g.get().unwrap();
    assert_tick("sleep(50ms) in a greenlet", took);
    quiet();
}

#[greenlet::test]
fn sleeps_of_several_greenlets_overlap() {
    let t0 = Instant::now();
    let gs: Vec<_> = (0..5).map(|_| spawn(|| sleep(TICK))).collect();
    for g in &gs {
        g.join().unwrap();
    }
    assert_tick("five concurrent 50 ms sleeps", t0.elapsed());
    quiet();
}

#[greenlet::test]
fn timers_fire_in_deadline_order() {
    let log = Log::new();
    let gs: Vec<_> = [30u64, 10, 20, 40, 5]
        .into_iter()
        .map(|ms| {
            let l = log.clone();
            spawn(move || {
                sleep(Duration::from_millis(ms));
                l.push(ms.to_string());
            })
        })
        .collect();
    for g in &gs {
        g.join().unwrap();
    }
    assert_eq!(log.entries(), ["5", "10", "20", "30", "40"]);
    quiet();
}

#[greenlet::test]
fn equal_deadlines_wake_in_the_order_they_slept() {
    let log = Log::new();
    let gs: Vec<_> = (0..5)
        .map(|i| {
            let l = log.clone();
            spawn(move || {
                sleep(Duration::from_millis(10));
                l.push(i.to_string());
            })
        })
        .collect();
    for g in &gs {
        g.join().unwrap();
    }
    assert_eq!(log.entries(), ["0", "1", "2", "3", "4"]);
    quiet();
}

#[greenlet::test]
fn a_stream_of_sleep_zero_does_not_starve_timers() {
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    let t0 = Instant::now();
    let timer = spawn(move || {
        sleep(Duration::from_millis(20));
        f.set(true);
    });
    let f = fired.clone();
    let busy = spawn(move || {
        let mut spins = 0u64;
        while !f.get() && t0.elapsed() < PROMPT {
            spins += 1;
            sleep(Duration::ZERO);
        }
        spins
    });
    let spins = busy.get().unwrap();
    assert!(
        fired.get(),
        "the 20 ms timer never fired under a sleep(0) loop"
    );
    assert!(spins > 0);
    assert_band(
        "timer under sleep(0) pressure",
        t0.elapsed(),
        Duration::from_millis(20),
        TICK_UPPER,
    );
    timer.join().unwrap();
    quiet();
}

#[greenlet::test]
fn sleep_unref_does_not_keep_the_hub_alive() {
    let g = spawn(|| sleep_unref(LONG));
    let ((), took) = timed(hub::join);
    assert!(took < PROMPT, "hub::join waited for an unref'd sleep");
    assert!(!g.is_ready(), "the unref'd sleeper is still asleep");
    assert_eq!(hub::stats().timers, 1);
    g.kill().unwrap();
    quiet();
}

#[greenlet::test]
fn sleep_unref_still_sleeps_while_something_else_keeps_the_hub_alive() {
    let keeper = spawn(|| sleep(Duration::from_millis(120)));
    let ((), took) = timed(|| sleep_unref(TICK));
    assert_tick("sleep_unref(50ms) with a referenced sleeper alive", took);
    keeper.join().unwrap();
    quiet();
}

#[greenlet::test]
fn sleep_unref_on_the_native_stack_alone_is_loop_exit() {
    let msg = expect_panic("sleep_unref alone", || sleep_unref(LONG));
    assert_contains(&msg, &["sleep_unref", "LoopExit"]);
    quiet();
}

#[greenlet::test]
fn sleeping_forever_on_the_native_stack_alone_is_loop_exit() {
    for _round in 0..2 {
        let (msg, took) = timed(|| expect_panic("sleep(MAX)", || sleep(Duration::MAX)));
        assert!(took < PROMPT);
        assert_contains(&msg, &["sleep", "LoopExit", "no other greenlet is alive"]);
        quiet();
    }
}

#[greenlet::test]
fn loop_exit_names_the_greenlets_that_block() {
    let g = greenlet::Builder::new()
        .name("stuck")
        .spawn(|| sleep(Duration::MAX))
        .expect("spawn");
    let msg = expect_panic("sleep(MAX) with a stuck greenlet", || sleep(Duration::MAX));
    assert_contains(&msg, &["LoopExit", "stuck", "sleep"]);
    g.kill().unwrap();
    quiet();
}

#[greenlet::test]
fn a_greenlet_can_sleep_forever_until_killed() {
    let g = spawn(|| sleep(Duration::MAX));
    sleep(Duration::ZERO);
    assert!(!g.is_ready());
    assert_eq!(hub::stats().timers, 0, "no deadline: no timer");
    g.kill().unwrap();
    assert!(g.is_successful());
    quiet();
}

#[greenlet::test]
fn sleep_secs_follows_gevent_conventions() {
    // NaN is an error and does not switch.
    let log = Log::new();
    let l = log.clone();
    let g = spawn(move || l.push("ran"));
    assert!(sleep_secs(f64::NAN).is_err());
    assert!(log.is_empty(), "a rejected sleep must not switch");
    // Negative means zero: a fair yield.
    let (r, took) = timed(|| sleep_secs(-1.0));
    assert!(r.is_ok());
    assert!(took < PROMPT);
    assert_eq!(
        log.entries(),
        ["ran"],
        "sleep_secs(-1) yields like sleep(0)"
    );
    g.join().unwrap();
    // A positive value sleeps that long.
    let (r, took) = timed(|| sleep_secs(0.05));
    assert!(r.is_ok());
    assert_tick("sleep_secs(0.05)", took);
    quiet();
}

#[greenlet::test]
fn sleep_secs_infinity_sleeps_until_killed() {
    let g = spawn(|| sleep_secs(f64::INFINITY).is_ok());
    sleep(Duration::from_millis(5));
    assert!(!g.is_ready());
    g.kill().unwrap();
    assert!(g.is_successful());
    let msg = expect_panic("sleep_secs(inf) alone", || sleep_secs(f64::INFINITY));
    assert_contains(&msg, &["LoopExit"]);
    quiet();
}

#[greenlet::test]
fn idle_waits_until_nothing_else_is_ready() {
    for _round in 0..2 {
        let log = Log::new();
        let l = log.clone();
        let busy = spawn(move || {
            for i in 0..3 {
                l.push(i.to_string());
                sleep(Duration::ZERO);
            }
        });
        idle();
        log.push("idle");
        busy.join().unwrap();
        assert_eq!(log.entries(), ["0", "1", "2", "idle"]);
        quiet();
    }
}

#[greenlet::test]
fn idle_in_a_greenlet_runs_after_the_busy_ones() {
    let log = Log::new();
    let l = log.clone();
    let idler = spawn(move || {
        idle();
        l.push("idle");
    });
    let busy: Vec<_> = (0..2)
        .map(|g| {
            let l = log.clone();
            spawn(move || {
                for i in 0..2 {
                    l.push(format!("b{g}.{i}"));
                    sleep(Duration::ZERO);
                }
            })
        })
        .collect();
    idler.join().unwrap();
    for b in &busy {
        b.join().unwrap();
    }
    assert_eq!(log.entries(), ["b0.0", "b1.0", "b0.1", "b1.1", "idle"]);
    quiet();
}

#[greenlet::test]
fn idle_does_not_wait_for_timers_that_are_not_due() {
    let sleeper = spawn(|| sleep(Duration::from_secs(10)));
    sleep(Duration::ZERO);
    let ((), took) = timed(idle);
    assert!(took < PROMPT, "idle waited for a far timer: {took:?}");
    assert!(!sleeper.is_ready());
    sleeper.kill().unwrap();
    quiet();
}

#[greenlet::test]
fn sleeping_inside_a_hub_callback_is_refused_and_reported() {
    let reports = Reports::install();
    let g = spawn(|| ());
    let log = Log::new();
    let l = log.clone();
    g.link(move |_| {
        l.push("link start");
        sleep(Duration::from_millis(1));
        l.push("link end");
    });
    g.join().unwrap();
    sleep(Duration::ZERO);
    assert_eq!(log.entries(), ["link start"]);
    let r = reports.take_one();
    assert_eq!(r.context, "link callback");
    assert_contains(
        &r.error.to_string(),
        &["sleep", "cannot block inside a hub callback"],
    );
    quiet();
}
