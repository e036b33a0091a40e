//! Virtual time: `hub::pause`/`advance`/`resume`/`now` and
//! `#[greenlet::test(start_paused = true)]`. Long waits finish in
//! microseconds of wall time, in the same order as in real time.

use std::cell::RefCell;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenlet::{Timeout, hub, sleep, spawn, spawn_later, with_timeout};

mod common;

/// Nested timeouts (60 s outside, 30 s inside) around long sleeps; returns
/// what happened, with the hub-clock time of each event in units of `unit`.
fn nested_timeouts(unit: Duration) -> Vec<(&'static str, u32)> {
    let log = Rc::new(RefCell::new(Vec::new()));
    let start = hub::now();
    let at = move || ((hub::now() - start).as_secs_f64() / unit.as_secs_f64()).floor() as u32;
    let l = log.clone();
    let outer = with_timeout(unit * 60, move || {
        let inner = with_timeout(unit * 30, || sleep(unit * 100));
        l.borrow_mut().push(("inner expired", at()));
        assert!(inner.is_err());
        let ticker = {
            let l = l.clone();
            spawn(move || {
                for _ in 0..3 {
                    sleep(unit * 10);
                    l.borrow_mut().push(("tick", at()));
                }
            })
        };
        sleep(unit * 100);
        drop(ticker);
        l.borrow_mut().push(("never", at()));
    });
    assert!(outer.is_err());
    log.borrow_mut().push(("outer expired", at()));
    // Let the ticker end (it finished at 60 units already).
    hub::join();
    log.take()
}

#[greenlet::test(start_paused = true)]
fn nested_30s_60s_timeouts_run_in_virtual_time_in_real_time_order() {
    let wall = Instant::now();
    let paused = nested_timeouts(Duration::from_secs(1));
    let took = wall.elapsed();
    assert!(
        took < Duration::from_millis(50),
        "took {took:?} of wall time"
    );
    assert_eq!(
        paused,
        [
            ("inner expired", 30),
            ("tick", 40),
            ("tick", 50),
            ("outer expired", 60),
            ("tick", 60),
        ]
    );
    // The same program in real time (1 unit = 3 ms): same events, same order.
    hub::resume();
    let real = nested_timeouts(Duration::from_millis(3));
    let names = |v: &[(&'static str, u32)]| v.iter().map(|e| e.0).collect::<Vec<_>>();
    assert_eq!(names(&real), names(&paused), "real-time run: {real:?}");
}

#[greenlet::test(start_paused = true)]
fn advance_fires_exactly_the_timers_that_became_due() {
    assert!(hub::is_paused());
    let g = spawn(|| sleep(Duration::from_secs(10)));
    let later = spawn_later(Duration::from_secs(5), || 5);
    sleep(Duration::ZERO);
    hub::advance(Duration::from_secs(4));
    assert!(!g.is_ready() && !later.is_ready());
    hub::advance(Duration::from_secs(1));
    assert!(later.is_ready() && !g.is_ready());
    assert_eq!(later.get().unwrap(), 5);
    hub::advance(Duration::from_secs(5));
    assert!(g.is_ready());
    assert!(g.is_successful());
}

#[greenlet::test(start_paused = true)]
fn the_clock_stands_still_while_greenlets_run() {
    let t = hub::now();
    std::thread::sleep(Duration::from_millis(5));
    spawn(|| ()).join().unwrap();
    assert_eq!(hub::now(), t);
    sleep(Duration::from_millis(1500));
    assert_eq!(hub::now() - t, Duration::from_millis(1500));
}

#[test]
fn resume_keeps_the_virtual_time_reached_and_scope_end_resets_the_clock() {
    greenlet::run(|| {
        let real_start = Instant::now();
        hub::pause();
        let t = hub::now();
        sleep(Duration::from_secs(3600));
        hub::resume();
        assert!(!hub::is_paused());
        let after = hub::now();
        assert!(after >= t + Duration::from_secs(3600));
        // Runs at real speed again.
        sleep(Duration::from_millis(20));
        let moved = hub::now() - after;
        assert!(moved >= Duration::from_millis(20), "{moved:?}");
        assert!(moved < Duration::from_millis(500), "{moved:?}");
        assert!(real_start.elapsed() < Duration::from_secs(5));
        hub::pause();
    });
    // A new scope starts on real time.
    greenlet::run(|| {
        assert!(!hub::is_paused());
        let gap = hub::now().saturating_duration_since(Instant::now());
        assert!(gap < Duration::from_secs(1), "{gap:?}");
    });
}

#[greenlet::test(start_paused = true)]
fn timeout_objects_and_join_timeout_use_the_paused_clock() {
    let wall = Instant::now();
    let start = hub::now();
    let t = Timeout::start_new(Duration::from_secs(30));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        sleep(Duration::from_secs(3600));
    }));
    assert!(r.is_err(), "the Timeout interrupts the sleep");
    drop(t);
    assert_eq!(hub::now() - start, Duration::from_secs(30));
    let g = spawn(|| sleep(Duration::from_secs(120)));
    assert!(!hub::join_timeout(Duration::from_secs(60)));
    assert_eq!(hub::now() - start, Duration::from_secs(90));
    assert!(g.join_timeout(Duration::from_secs(61)).is_ok());
    assert!(g.is_ready());
    assert!(wall.elapsed() < Duration::from_millis(500));
}

#[greenlet::test(start_paused = true)]
fn fd_waits_with_long_timeouts_time_out_virtually_but_see_real_readiness() {
    let (a, mut b) = UnixStream::pair().unwrap();
    let wall = Instant::now();
    let r = greenlet::io::wait_read(&a, Duration::from_secs(30));
    assert_eq!(r.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    assert!(wall.elapsed() < Duration::from_millis(500));
    b.write_all(b"x").unwrap();
    greenlet::io::wait_read(&a, Duration::from_secs(30)).unwrap();
}

#[test]
#[should_panic(expected = "hub::advance: the hub clock is not paused")]
fn advance_needs_a_paused_clock() {
    greenlet::run(|| hub::advance(Duration::from_secs(1)));
}

#[greenlet::test(start_paused = true)]
fn a_thousand_sleepers_wake_once_each_in_deadline_order() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let start = hub::now();
    // Deadlines 0..1000 s in a scrambled spawn order (7 is coprime to 1000).
    let gs: Vec<_> = (0..1000u64)
        .map(|i| {
            let secs = (i * 7) % 1000 + 1;
            let l = log.clone();
            spawn(move || {
                sleep(Duration::from_secs(secs));
                l.borrow_mut().push((secs, (hub::now() - start).as_secs()));
            })
        })
        .collect();
    let wall = Instant::now();
    for g in &gs {
        g.join().unwrap();
    }
    assert!(
        wall.elapsed() < Duration::from_secs(2),
        "{:?}",
        wall.elapsed()
    );
    let log = log.take();
    let expected: Vec<(u64, u64)> = (1..=1000).map(|s| (s, s)).collect();
    assert_eq!(
        log, expected,
        "each wakes once, at its own virtual deadline"
    );
}

#[greenlet::test(start_paused = true)]
fn a_kill_and_a_timeout_due_at_the_same_virtual_instant_are_both_delivered() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let victim = spawn(move || {
        let r = with_timeout(Duration::from_secs(10), || sleep(Duration::from_secs(60)));
        l.borrow_mut()
            .push(if r.is_err() { "timed out" } else { "finished" });
        sleep(Duration::from_secs(60));
        l.borrow_mut().push("never");
    });
    let v = victim.clone();
    let killer = spawn(move || {
        sleep(Duration::from_secs(10));
        v.kill_nowait();
    });
    let start = hub::now();
    victim.join().unwrap();
    killer.join().unwrap();
    assert_eq!(*log.borrow(), ["timed out"]);
    // Killed with GreenletExit (gevent counts that as a success): it
    // never reached its second sleep's end.
    assert!(victim.is_ready(), "{victim}");
    assert!(
        matches!(
            victim.get(),
            Err(greenlet::GreenletError::Killed(_)) | Ok(())
        ),
        "{:?}",
        victim.get()
    );
    assert_eq!(hub::now() - start, Duration::from_secs(10));
}
