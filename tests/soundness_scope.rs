//! Issue 11 §1: greenlets never outlive their hub's scope.
//!
//! `greenlet::run` ends every greenlet (killed, destructors run) before it
//! returns, so nothing on a greenlet stack can touch a thread-local after
//! the thread's destructors freed it. A greenlet that swallows its kills,
//! or whose destructor blocks on something nothing can wake, aborts the
//! process with its name and spawn site: those run in a child process
//! (this test binary re-run with `SOUNDNESS_CHILD` set).

mod soundness_common;

use std::cell::{OnceCell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use greenlet::{Builder, Greenlet, SpawnErrorKind, hub, sleep, spawn};
use soundness_common::{
    CONTINUED, assert_aborted, in_child, print_spawn_line, run_child, spawn_line,
};

const FOREVER: Duration = Duration::from_secs(3600);
/// A log shared by the greenlets of one thread.
#[derive(Clone, Default)]
struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    fn push(&self, e: impl Into<String>) {
        self.0.borrow_mut().push(e.into());
    }
    fn entries(&self) -> Vec<String> {
        self.0.borrow().clone()
    }
}

thread_local! {
    static DATA: RefCell<Vec<u64>> = RefCell::new(vec![7; 1000]);
}

/// The guard: borrows a thread-local and writes to it when dropped.
struct Guard<'a>(&'a RefCell<Vec<u64>>, Log);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let mut v = self.0.borrow_mut();
        let intact = v.len() == 1000 && v.iter().all(|&x| x == 7);
        v[0] = 1;
        self.1.push(format!("guard dropped, data intact: {intact}"));
    }
}

/// The repro inside a scope: returns the log and `DATA[0]` read
/// after `run` returned.
fn guard_scenario() -> (Vec<String>, u64, bool) {
    let log = Log::default();
    let l = log.clone();
    let quiet_inside = greenlet::run(move || {
        let l2 = l.clone();
        let _g = spawn(move || {
            DATA.with(|d| {
                let _x = Guard(d, l2);
                sleep(FOREVER);
            })
        });
        sleep(Duration::ZERO);
        l.push("closure returns");
        // One live greenlet (the sleeper) and its timer: not quiet yet.
        hub::stats().greenlets == 1
    });
    log.push("run returned");
    // The scope left nothing behind.
    let quiet_after = greenlet::run(|| hub::stats().is_quiet());
    let first = DATA.with(|d| d.borrow()[0]);
    (log.entries(), first, quiet_inside && quiet_after)
}

const GUARD_LOG: [&str; 3] = [
    "closure returns",
    "guard dropped, data intact: true",
    "run returned",
];

#[test]
fn scope_end_drops_thread_local_guard_on_a_spawned_thread() {
    let (log, first, quiet) = std::thread::spawn(guard_scenario)
        .join()
        .expect("the thread ends normally");
    assert_eq!(log, GUARD_LOG);
    assert_eq!(first, 1, "Guard::drop wrote to the live thread-local");
    assert!(quiet);
}

#[test]
fn scope_end_drops_thread_local_guard_on_the_test_thread() {
    let (log, first, quiet) = guard_scenario();
    assert_eq!(log, GUARD_LOG);
    assert_eq!(first, 1);
    assert!(quiet);
}

thread_local! {
    /// Read from a scoped thread: `Sync`, immutable.
    static SHARED: Vec<u64> = vec![7; 4096];
}

#[test]
fn scope_end_joins_scoped_threads_borrowing_thread_locals() {
    // A greenlet lends a thread-local to a `std::thread::scope` thread and
    // sleeps forever. Scope end kills it: `thread::scope` joins the scoped
    // thread while unwinding, before run() returns and long before the
    // thread's TLS destructors.
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let ev = Arc::clone(&events);
    let outer = std::thread::spawn(move || {
        let ev2 = Arc::clone(&ev);
        greenlet::run(move || {
            let ev3 = Arc::clone(&ev2);
            let _g = spawn(move || {
                SHARED.with(|d| {
                    struct After(Arc<Mutex<Vec<String>>>);
                    impl Drop for After {
                        fn drop(&mut self) {
                            self.0
                                .lock()
                                .expect("log")
                                .push("greenlet past scope".into());
                        }
                    }
                    let _after = After(Arc::clone(&ev3));
                    std::thread::scope(|s| {
                        let ev4 = Arc::clone(&ev3);
                        s.spawn(move || {
                            std::thread::sleep(Duration::from_millis(100));
                            let sum: u64 = d.iter().sum();
                            ev4.lock().expect("log").push(format!("scoped read {sum}"));
                        });
                        sleep(FOREVER);
                    });
                })
            });
            sleep(Duration::from_millis(10));
            ev2.lock().expect("log").push("closure returns".into());
        });
        ev.lock().expect("log").push("run returned".into());
        greenlet::run(|| hub::stats().is_quiet())
    });
    let quiet = outer.join().expect("no crash on the outer thread");
    assert!(quiet);
    assert_eq!(
        *events.lock().expect("log"),
        [
            "closure returns".to_owned(),
            format!("scoped read {}", 7 * 4096),
            "greenlet past scope".to_owned(),
            "run returned".to_owned(),
        ]
    );
}

#[test]
fn refuser_aborts_naming_the_greenlet_and_its_spawn_site() {
    if in_child() {
        greenlet::run(|| {
            let body = || {
                loop {
                    // Swallows every kill and sleeps again.
                    let _ = catch_unwind(|| sleep(FOREVER));
                }
            };
            let b = Builder::new().name("stubborn");
            let (g, line): (Result<Greenlet<()>, _>, u32) = (b.spawn(body), line!());
            print_spawn_line(line);
            let _g = g.expect("spawned");
            sleep(Duration::ZERO);
        });
        eprintln!("{CONTINUED}");
        return;
    }
    let out = run_child("refuser_aborts_naming_the_greenlet_and_its_spawn_site");
    let stderr = assert_aborted(&out);
    let line = spawn_line(&stderr);
    assert!(!stderr.contains(CONTINUED), "{stderr}");
    assert!(stderr.contains("stubborn"), "{stderr}");
    assert!(
        stderr.contains(&format!("(spawned at tests/soundness_scope.rs:{line})")),
        "{stderr}"
    );
    assert!(stderr.contains("refuses to die"), "{stderr}");
}

/// Sleeps `ms` in its destructor, then logs.
struct Slow(u64, Log);

impl Drop for Slow {
    fn drop(&mut self) {
        sleep(Duration::from_millis(self.0));
        self.1.push(format!("slow {} done", self.0));
    }
}

fn slow_destructor_scenario(ms: u64) -> (Vec<String>, Duration) {
    let log = Log::default();
    let l = log.clone();
    let start = Instant::now();
    greenlet::run(move || {
        let l2 = l.clone();
        let _g = spawn(move || {
            let _slow = Slow(ms, l2);
            sleep(FOREVER);
        });
        sleep(Duration::ZERO);
    });
    let took = start.elapsed();
    log.push("run returned");
    (log.entries(), took)
}

#[test]
fn scope_end_waits_for_a_slow_cooperative_destructor() {
    let (log, took) = slow_destructor_scenario(300);
    assert_eq!(log, ["slow 300 done", "run returned"]);
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "run() took {took:?}"
    );
    assert!(greenlet::run(|| hub::stats().is_quiet()));
}

#[test]
fn scope_end_waits_for_a_destructor_slower_than_a_second() {
    // Longer than any fixed teardown deadline: it is still waited for (a
    // report says it is slow), never leaked half-dropped.
    let (log, took) = slow_destructor_scenario(1300);
    assert_eq!(log, ["slow 1300 done", "run returned"]);
    assert!(
        took >= Duration::from_millis(1300) && took < Duration::from_secs(5),
        "run() took {took:?}"
    );
    assert!(greenlet::run(|| hub::stats().is_quiet()));
}

/// Joins the other greenlet when dropped.
struct JoinOnDrop(Rc<OnceCell<Greenlet<()>>>);

impl Drop for JoinOnDrop {
    fn drop(&mut self) {
        if let Some(other) = self.0.get() {
            other.join().unwrap();
        }
    }
}

#[test]
fn destructor_blocking_forever_aborts() {
    // Two greenlets whose destructors join each other: at scope end both
    // unwind and wait for the other, and nothing can ever wake them.
    if in_child() {
        greenlet::run(|| {
            let a_cell: Rc<OnceCell<Greenlet<()>>> = Rc::default();
            let b_cell: Rc<OnceCell<Greenlet<()>>> = Rc::default();
            let (wa, wb) = (Rc::clone(&b_cell), Rc::clone(&a_cell));
            let a = Builder::new()
                .name("a")
                .spawn(move || {
                    let _j = JoinOnDrop(wa);
                    sleep(FOREVER);
                })
                .expect("spawned");
            let b = Builder::new()
                .name("b")
                .spawn(move || {
                    let _j = JoinOnDrop(wb);
                    sleep(FOREVER);
                })
                .expect("spawned");
            assert!(a_cell.set(a).is_ok() && b_cell.set(b).is_ok());
            sleep(Duration::ZERO);
        });
        eprintln!("{CONTINUED}");
        return;
    }
    let out = run_child("destructor_blocking_forever_aborts");
    let stderr = assert_aborted(&out);
    assert!(!stderr.contains(CONTINUED), "{stderr}");
    assert!(
        stderr.contains("blocks forever while unwinding"),
        "{stderr}"
    );
    assert!(
        stderr.contains("(spawned at tests/soundness_scope.rs:"),
        "{stderr}"
    );
}

#[test]
fn panicking_scope_kills_leftovers_then_propagates() {
    // What `#[greenlet::main]` / `#[greenlet::test]` expand to.
    let log = Log::default();
    let l = log.clone();
    let caught = catch_unwind(AssertUnwindSafe(move || {
        greenlet::run(move || {
            let l2 = l.clone();
            let _g = spawn(move || {
                DATA.with(|d| {
                    let _x = Guard(d, l2);
                    sleep(FOREVER);
                })
            });
            sleep(Duration::ZERO);
            l.push("closure panics");
            panic!("scope body panicked");
        })
    }));
    log.push("panic caught");
    let payload = caught.expect_err("the panic propagates out of run");
    let msg = payload
        .downcast_ref::<&str>()
        .copied()
        .unwrap_or("<not a &str>");
    assert_eq!(msg, "scope body panicked");
    assert_eq!(
        log.entries(),
        [
            "closure panics",
            "guard dropped, data intact: true",
            "panic caught"
        ]
    );
    assert!(greenlet::run(|| hub::stats().is_quiet()));
    // The next scope on this thread works.
    assert_eq!(greenlet::run(|| spawn(|| 5).get().expect("runs")), 5);
}

#[test]
fn spawning_outside_a_scope_is_an_error() {
    let err = Builder::new()
        .spawn(|| ())
        .expect_err("no hub scope on this thread");
    assert_eq!(err.kind(), SpawnErrorKind::NoScope);
    let panicked = catch_unwind(|| spawn(|| ())).expect_err("plain spawn panics");
    let msg = panicked
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panicked.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    assert!(msg.contains("greenlet::run"), "{msg}");
    // After the failed attempts a scope works as usual.
    assert_eq!(greenlet::run(|| spawn(|| 3).get().expect("runs")), 3);
}
