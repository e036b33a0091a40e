//! A release smoke run for valgrind memcheck: spawns, joins, kills, times
//! out and panics greenlets, overflows one stack, tears a hub down with
//! greenlets still blocked, and checks the hub counters after each part.
//!
//! Run it the way CI does with `.ci/valgrind.sh`, or plainly with
//! `cargo run --release --example valgrind_smoke`. It exits non-zero if a
//! check fails.
//!
//! Heap leak checkers cannot see into greenlet stacks, so the counters
//! (`hub::stats()`) are checked too; valgrind covers the heap and the
//! runtime's own memory handling around the switches.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenlet::{
    AnyGreenlet, Builder, Greenlet, GreenletError, KillError, Timeout, hub, iwait, joinall,
    killall, sleep, spawn, spawn_later, with_timeout,
};

/// Recurses with a 1 KiB frame until the guard page stops it.
#[inline(never)]
fn deep_recursion(n: u64) -> u64 {
    let buf = std::hint::black_box([n as u8; 1024]);
    if n == 0 {
        return 0;
    }
    deep_recursion(n - 1) + u64::from(std::hint::black_box(buf)[9])
}

/// Spawns the greenlet that overflows its stack. Not inlined: its name is
/// what `.ci/valgrind.supp` matches for the leak an overflow causes (the
/// abandoned frames still hold a reference to the greenlet's cell).
#[inline(never)]
fn spawn_overflowing() -> Greenlet<u64> {
    Builder::new()
        .name("overflow")
        .stack_size(32 * 1024)
        .spawn(|| {
            sleep(Duration::ZERO);
            deep_recursion(10_000_000)
        })
        .expect("one stack")
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs the hub dry and checks every counter is back at rest.
fn check_quiet(part: &str) {
    hub::join();
    let s = hub::stats();
    assert!(s.is_quiet(), "{part}: hub not quiet: {s:?}");
    println!("{part}: ok ({s:?})");
}

fn spawn_and_join() {
    let gs: Vec<Greenlet<u64>> = (0..200u64)
        .map(|i| {
            spawn(move || {
                sleep(if i % 2 == 0 { Duration::ZERO } else { ms(1) });
                i
            })
        })
        .collect();
    let sum: u64 = gs.iter().map(|g| g.get().expect("no failure")).sum();
    assert_eq!(sum, 199 * 200 / 2);
    // Sequential spawns reuse pooled stacks.
    for i in 0..2000u32 {
        assert_eq!(spawn(move || i).get().expect("no failure"), i);
    }
    let names: Vec<String> = (0..8)
        .map(|i| Builder::new().name(format!("named-{i}")).spawn(move || i))
        .map(|g| g.expect("one stack").name().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names.len(), 8);
    check_quiet("spawn and join");
}

fn kills() {
    let drops = Rc::new(Cell::new(0));
    struct Guard(Rc<Cell<u32>>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    // Before start, blocked in sleep, blocked in join, with a user error.
    let unstarted = Greenlet::new({
        let g = Guard(Rc::clone(&drops));
        move || drop(g)
    });
    unstarted.kill();
    let sleeper = spawn({
        let g = Guard(Rc::clone(&drops));
        move || {
            let _g = g;
            sleep(Duration::from_secs(60));
        }
    });
    let s2 = sleeper.clone();
    let joiner = spawn({
        let g = Guard(Rc::clone(&drops));
        move || {
            let _g = g;
            s2.join();
        }
    });
    sleep(Duration::ZERO);
    joiner.kill_with(std::io::Error::other("stop"));
    sleeper.kill();
    sleeper.kill();
    assert_eq!(drops.get(), 3);
    assert!(matches!(
        joiner.exception(),
        Some(GreenletError::Killed(KillError::Error(_)))
    ));

    // Self-kill.
    let me: Rc<Cell<Option<Greenlet<u8>>>> = Rc::new(Cell::new(None));
    let m = Rc::clone(&me);
    let g = Greenlet::new(move || {
        if let Some(this) = m.take() {
            this.kill();
        }
        1
    });
    me.set(Some(g.clone()));
    g.start();
    g.join();
    assert!(g.is_successful() && g.value().is_none());

    // killall over many.
    let many: Vec<Greenlet<()>> = (0..50)
        .map(|_| spawn(|| sleep(Duration::from_secs(60))))
        .collect();
    sleep(Duration::ZERO);
    killall(&many, KillError::GreenletExit, true, None).expect("all die");
    assert!(many.iter().all(Greenlet::is_ready));
    check_quiet("kills");
}

fn timeouts() {
    let t0 = Instant::now();
    assert!(with_timeout(ms(5), || sleep(Duration::from_secs(5))).is_err());
    assert!(t0.elapsed() >= ms(5));
    assert!(with_timeout(Duration::ZERO, || sleep(Duration::ZERO)).is_err());
    let g = spawn(|| {
        let _t = Timeout::start_new(ms(2));
        sleep(Duration::from_secs(5));
    });
    assert!(matches!(g.get(), Err(GreenletError::Timeout(_))));
    // Long enough that two 1 ms waits end first, even under valgrind on a
    // loaded machine.
    let slow = spawn(|| {
        sleep(ms(250));
        1
    });
    assert!(slow.get_timeout(ms(1)).is_err());
    assert!(!slow.join_timeout(ms(1)));
    assert_eq!(slow.get().expect("finishes"), 1);
    let later = spawn_later(ms(3), || 2);
    let set: [&dyn AnyGreenlet; 2] = [&slow, &later];
    assert_eq!(
        joinall(set, None, false, None).expect("no LoopExit").len(),
        2
    );
    assert_eq!(iwait(set, None, None).count(), 2);
    check_quiet("timeouts");
}

fn panics_and_overflow(reports: &Rc<Cell<usize>>) {
    let before = reports.get();
    let bad = spawn(|| -> u8 { panic!("smoke panic") });
    bad.link(|_| panic!("smoke link panic"));
    let h = hub::handle();
    std::thread::spawn({
        let h = h.clone();
        move || h.post(|| panic!("smoke post panic")).expect("hub open")
    })
    .join()
    .expect("poster");
    drop(h);
    assert!(matches!(bad.get(), Err(GreenletError::Panicked(_))));
    let others: Vec<Greenlet<u8>> = (0..4u8)
        .map(|i| {
            spawn(move || {
                sleep(ms(1));
                i
            })
        })
        .collect();
    let overflow = spawn_overflowing();
    assert!(matches!(overflow.get(), Err(GreenletError::StackOverflow)));
    let sum: u8 = others.iter().map(|g| g.get().expect("bystander")).sum();
    assert_eq!(sum, 6);
    hub::join();
    assert_eq!(
        reports.get() - before,
        4,
        "body, link, post, overflow reported"
    );
    check_quiet("panics and overflow");
}

fn teardown() {
    let drops = Rc::new(Cell::new(0u32));
    for _ in 0..20 {
        let d = Rc::clone(&drops);
        spawn(move || {
            struct Guard(Rc<Cell<u32>>);
            impl Drop for Guard {
                fn drop(&mut self) {
                    self.0.set(self.0.get() + 1);
                }
            }
            let _g = Guard(d);
            sleep(Duration::from_secs(3600));
        });
    }
    let stubborn = spawn(|| {
        loop {
            let _ = catch_unwind(AssertUnwindSafe(|| sleep(ms(1))));
        }
    });
    sleep(Duration::ZERO);
    assert!(stubborn.kill_timeout(ms(5)).is_err());
    let leaked = hub::stats().leaked_stacks;
    hub::destroy();
    assert_eq!(drops.get(), 20);
    assert_eq!(hub::stats().leaked_stacks, leaked + 1);
    assert_eq!(spawn(|| 3).get().expect("fresh hub"), 3);
    check_quiet("teardown");
}

fn main() {
    let reports = Rc::new(Cell::new(0usize));
    let t0 = Instant::now();
    // The hub scope: every greenlet ends before `run` returns.
    greenlet::run(|| {
        for round in 0..2 {
            // Count reports instead of printing them (installed per round:
            // `hub::destroy` in `teardown` starts a fresh hub with the
            // default handler).
            let r = Rc::clone(&reports);
            hub::set_error_handler(move |_| r.set(r.get() + 1));
            spawn_and_join();
            kills();
            timeouts();
            panics_and_overflow(&reports);
            teardown();
            println!("round {round} done");
        }
        hub::reset_error_handler();
    });
    // In another thread too, ending its scope with a greenlet still blocked:
    // the scope's end kills it, so its destructor runs.
    std::thread::spawn(|| {
        let dropped = Rc::new(Cell::new(false));
        greenlet::run(|| {
            struct Flag(Rc<Cell<bool>>);
            impl Drop for Flag {
                fn drop(&mut self) {
                    self.0.set(true);
                }
            }
            let flag = Flag(Rc::clone(&dropped));
            let g = spawn(move || {
                let _flag = flag;
                sleep(Duration::from_secs(3600));
            });
            sleep(Duration::ZERO);
            assert!(!g.is_ready());
        });
        assert!(dropped.get(), "the scope's end kills what is left");
    })
    .join()
    .expect("thread with a live greenlet exits cleanly");
    println!("valgrind smoke passed in {:?}", t0.elapsed());
}
