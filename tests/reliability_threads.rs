//! Ten OS threads, each with its own hub, running a compact version of every
//! reliability scenario at the same time (twice), each checking its own
//! counters, each inside its own `greenlet::run` scope. Hubs share nothing
//! but the process-wide stack budget and the process-wide signal/panic
//! hooks, which is what this exercises. (Stack overflow aborts the process,
//! so it is no longer one of the scenarios.)

mod reliability_common;

use std::cell::{Cell, OnceCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenlet::{
    Greenlet, GreenletError, KillError, WaitError, hub, sleep, sleep_secs, spawn, with_timeout,
};
use reliability_common::{Baseline, Counter, Reports, assert_band, ms};

const THREADS: usize = 10;

fn spawn_and_join(t: usize) {
    let gs: Vec<_> = (0..20usize)
        .map(|i| {
            spawn(move || {
                sleep(ms(1 + (i % 3) as u64));
                i * t
            })
        })
        .collect();
    let sum: usize = gs.iter().map(|g| g.get().expect("ok")).sum();
    assert_eq!(sum, t * 190);
}

fn kills() {
    // Before start: never runs.
    let ran = Counter::new();
    let r = ran.clone();
    let g = spawn(move || r.hit());
    let fired = Counter::new();
    let f = fired.clone();
    g.rawlink(move || f.hit());
    g.kill().unwrap();
    g.kill().unwrap();
    sleep(Duration::ZERO);
    assert_eq!((ran.get(), fired.get()), (0, 1));

    // Blocked in sleep and in join: destructors run once.
    let dropped = Counter::new();
    let (d1, d2) = (dropped.guard(), dropped.guard());
    let sleeper = spawn(move || {
        let _d = d1;
        sleep(Duration::from_secs(60));
    });
    let s2 = sleeper.clone();
    let joiner = spawn(move || {
        let _d = d2;
        s2.join().unwrap();
    });
    sleep(Duration::ZERO);
    joiner.kill().unwrap();
    sleeper.kill().unwrap();
    sleeper.kill().unwrap();
    assert_eq!(dropped.get(), 2);
    assert!(sleeper.is_successful() && joiner.is_successful());

    // Self-kill: nothing after the call runs.
    let me: Rc<OnceCell<Greenlet<u8>>> = Rc::new(OnceCell::new());
    let (m, after) = (Rc::clone(&me), Counter::new());
    let a = after.clone();
    let g = Greenlet::new(move || {
        m.get().expect("set").kill().unwrap();
        a.hit();
        1
    });
    me.set(g.clone()).expect("empty");
    g.start();
    g.join().unwrap();
    assert_eq!(after.get(), 0);
    assert!(matches!(
        g.get(),
        Err(GreenletError::Killed(KillError::GreenletExit))
    ));
}

fn timeouts() {
    let t0 = Instant::now();
    assert!(with_timeout(ms(5), || sleep(Duration::from_secs(1))).is_err());
    assert_band(t0.elapsed(), ms(5), ms(150));
    let step = Counter::new();
    assert!(
        with_timeout(Duration::ZERO, || {
            step.hit();
            sleep(Duration::ZERO);
            step.hit();
        })
        .is_err()
    );
    assert_eq!(step.get(), 1);
    assert!(sleep_secs(f64::NAN).is_err());
    sleep_secs(-1.0).expect("negative is now");
    let forever = spawn(|| sleep(Duration::MAX));
    assert!(matches!(forever.get(), Err(GreenletError::LoopExit(_))));
    forever.kill().unwrap();
}

fn panics() {
    let reports = Reports::install();
    let bad = spawn(|| -> u8 { panic!("thread body boom") });
    bad.link(|_| panic!("thread link boom"));
    let h = hub::handle();
    h.post(|| panic!("thread post boom")).expect("open");
    drop(h);
    let g = spawn(|| 1u8);
    g.rawlink(|| sleep(ms(1))); // blocking in a link
    assert!(matches!(bad.get(), Err(GreenletError::Panicked(_))));
    g.join().unwrap();
    hub::join();
    assert_eq!(reports.count("greenlet"), 1, "{:?}", reports.all());
    assert_eq!(reports.count("link callback"), 2, "{:?}", reports.all());
    assert_eq!(reports.count("hub callback"), 1, "{:?}", reports.all());

    // join on yourself.
    let me: Rc<OnceCell<Greenlet<bool>>> = Rc::new(OnceCell::new());
    let m = Rc::clone(&me);
    let g = Greenlet::new(move || {
        let this = m.get().expect("set").clone();
        matches!(this.get(), Err(GreenletError::JoinSelf))
            && matches!(this.join(), Err(WaitError::JoinSelf))
    });
    me.set(g.clone()).expect("empty");
    g.start();
    assert!(g.get().expect("returns"));
}

fn teardown() {
    let dropped = Counter::new();
    let d = dropped.guard();
    let _blocked = spawn(move || {
        let _d = d;
        sleep(Duration::from_secs(60));
    });
    // Swallows kills until told to stop: `kill_timeout` gives up on it,
    // `hub::destroy` then ends it (a greenlet that never dies would abort
    // the process at scope end; that is tested in reliability_kill.rs).
    let shots = Counter::new();
    let stop = Rc::new(Cell::new(false));
    let (s, st) = (shots.clone(), Rc::clone(&stop));
    let stubborn = spawn(move || {
        while !st.get() {
            if catch_unwind(AssertUnwindSafe(|| sleep(ms(2)))).is_err() {
                s.hit();
            }
        }
    });
    sleep(Duration::ZERO);
    assert!(stubborn.kill_timeout(ms(10)).is_err());
    assert_eq!(shots.get(), 1);
    stop.set(true);
    let reports = Reports::install();
    hub::destroy();
    assert_eq!(reports.len(), 0, "{:?}", reports.all());
    drop(reports);
    assert_eq!(dropped.get(), 1);
    assert_eq!(shots.get(), 2, "destroy's kill reached it once");
    assert!(stubborn.is_ready());
    assert_eq!(hub::stats().greenlets, 0);
}

fn scenario(t: usize) {
    let base = Baseline::take();
    spawn_and_join(t);
    kills();
    timeouts();
    panics();
    base.check();
    teardown();
    let s = hub::stats();
    assert!(s.is_quiet(), "{s:?}");
}

#[test]
fn ten_threads_each_with_their_own_hub_run_every_scenario_at_once() {
    let t0 = Instant::now();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(THREADS));
    let threads: Vec<_> = (1..=THREADS)
        .map(|t| {
            let barrier = std::sync::Arc::clone(&barrier);
            std::thread::Builder::new()
                .name(format!("hub-{t}"))
                .spawn(move || {
                    barrier.wait();
                    // Each thread has its own scopes: two passes in one
                    // scope, then one more in a fresh scope.
                    greenlet::run(|| {
                        scenario(t);
                        scenario(t);
                    });
                    greenlet::run(|| scenario(t));
                    hub::stats()
                })
                .expect("thread spawns")
        })
        .collect();
    let mut failures = Vec::new();
    for (i, th) in threads.into_iter().enumerate() {
        match th.join() {
            Ok(stats) => assert!(stats.is_quiet(), "thread {}: {stats:?}", i + 1),
            Err(p) => failures.push(format!(
                "thread {}: {}",
                i + 1,
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default()
            )),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
}
