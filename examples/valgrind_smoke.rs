//! A release smoke run for valgrind memcheck: spawns, joins, kills, times
//! out and panics greenlets, tears a hub down with greenlets still blocked,
//! and checks the hub counters after each part. (A stack overflow aborts the
//! process, so it is not exercised here: see `tests/soundness_overflow.rs`.)
//!
//! Run it the way CI does with `.ci/valgrind.sh`, or plainly with
//! `cargo run --release --example valgrind_smoke`. It exits non-zero if a
//! check fails.
//!
//! Heap leak checkers cannot see into greenlet stacks, so the counters
//! (`hub::stats()`) are checked too; valgrind covers the heap and the
//! runtime's own memory handling around the switches.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenlet::{
    AnyGreenlet, Builder, Greenlet, GreenletError, KillError, Timeout, WaitError, hub, iwait,
    joinall, killall, sleep, spawn, spawn_later, with_timeout,
};

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
    unstarted.kill().expect("never started: dead at once");
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
            s2.join().expect("the joiner is killed first");
        }
    });
    sleep(Duration::ZERO);
    joiner
        .kill_with(std::io::Error::other("stop"))
        .expect("the joiner dies");
    sleeper.kill().expect("the sleeper dies");
    sleeper.kill().expect("killing a dead greenlet is a no-op");
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
            this.kill().expect("a self-kill unwinds at once");
        }
        1
    });
    me.set(Some(g.clone()));
    g.start();
    g.join().expect("it ends by its own kill");
    assert!(g.is_successful() && g.value().is_none());

    // killall over many.
    let many: Vec<Greenlet<()>> = (0..50)
        .map(|_| spawn(|| sleep(Duration::from_secs(60))))
        .collect();
    sleep(Duration::ZERO);
    killall(&many).expect("all die");
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
    assert!(matches!(
        slow.get_timeout(ms(1)),
        Err(GreenletError::Timeout(_))
    ));
    assert!(matches!(
        slow.join_timeout(ms(1)),
        Err(WaitError::Elapsed(_))
    ));
    assert_eq!(slow.get().expect("finishes"), 1);
    let later = spawn_later(ms(3), || 2);
    let set: [&dyn AnyGreenlet; 2] = [&slow, &later];
    assert_eq!(joinall(set).expect("no LoopExit").len(), 2);
    assert_eq!(iwait(set).filter(Result::is_ok).count(), 2);
    check_quiet("timeouts");
}

/// Greenlets switching straight to one another (neighbouring stack slots,
/// closer than memcheck's `--max-stackframe`), one timed out and one killed
/// mid-wait: the direct switch and unwinding across it.
fn transfers() {
    use greenlet::queue::Queue;
    let (ab, ba) = (Queue::<u32>::new(), Queue::<u32>::new());
    let (inbox, outbox) = (ab.clone(), ba.clone());
    let echo = spawn(move || {
        while let Ok(v) = inbox.get() {
            outbox.put(v + 1).expect("unbounded");
        }
    });
    let player = spawn(move || {
        let mut v = 0;
        with_timeout(ms(20), || {
            loop {
                ab.put(v).expect("unbounded");
                v = ba.get().expect("the echo answers");
            }
        })
        .expect_err("only the timeout ends the game");
        v
    });
    let rounds = player.get().expect("timed out inside, not failed");
    assert!(rounds > 0);
    echo.kill().expect("killed while it waits");
    assert!(matches!(echo.get(), Err(ref e) if e.is_greenlet_exit()));
    check_quiet("transfers");
}

fn panics(reports: &Rc<Cell<usize>>) {
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
    let sum: u8 = others.iter().map(|g| g.get().expect("bystander")).sum();
    assert_eq!(sum, 6);
    hub::join();
    assert_eq!(reports.get() - before, 3, "body, link, post reported");
    check_quiet("panics");
}

fn teardown() {
    struct Guard(Rc<Cell<u32>>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let drops = Rc::new(Cell::new(0u32));
    for _ in 0..20 {
        let d = Rc::clone(&drops);
        spawn(move || {
            let _g = Guard(d);
            sleep(Duration::from_secs(3600));
        });
    }
    // A destructor that blocks cooperatively while its greenlet unwinds: a
    // kill with a short timeout gives up on it, the teardown waits for it.
    // (One that swallows every kill instead aborts the process at teardown.)
    struct SlowClose(Rc<Cell<u32>>);
    impl Drop for SlowClose {
        fn drop(&mut self) {
            sleep(ms(50));
            self.0.set(self.0.get() + 1);
        }
    }
    let slow_close = spawn({
        let d = Rc::clone(&drops);
        move || {
            let _c = SlowClose(d);
            sleep(Duration::from_secs(3600));
        }
    });
    sleep(Duration::ZERO);
    assert!(matches!(
        slow_close.kill_timeout(ms(5)),
        Err(WaitError::Elapsed(_))
    ));
    assert!(!slow_close.is_ready(), "its destructor is still sleeping");
    hub::destroy();
    assert_eq!(drops.get(), 21, "every destructor ran, the slow one too");
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
            transfers();
            panics(&reports);
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
