//! Issue 11 §6: no panic escapes the hub loop or hits a hub borrow. A
//! panicking error handler (even with a payload whose `Drop` panics), a
//! closure too large for its stack, and panicking hub callbacks all leave the
//! loop usable: later sleeps on the native stack work and the scope ends
//! normally. Scenarios that used to abort run in a child process.

mod soundness_common;

use std::cell::Cell;
use std::hint::black_box;
use std::panic::{AssertUnwindSafe, catch_unwind, panic_any};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use greenlet::{Builder, SpawnErrorKind, hub, sleep, spawn};
use soundness_common::in_child_process;

const TICK: Duration = Duration::from_millis(50);
const TICK_UPPER: Duration = Duration::from_millis(160);

/// A native-stack sleep of one tick, timed.
#[track_caller]
fn timed_tick() {
    let start = Instant::now();
    sleep(TICK);
    let took = start.elapsed();
    assert!(
        took >= TICK && took < TICK_UPPER,
        "sleep took {took:?}, expected [{TICK:?}, {TICK_UPPER:?})"
    );
}

static HANDLER_CALLS: AtomicUsize = AtomicUsize::new(0);
static PAYLOAD_DROPS: AtomicUsize = AtomicUsize::new(0);

/// A panic payload whose destructor panics.
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        PAYLOAD_DROPS.fetch_add(1, Ordering::SeqCst);
        panic!("the payload's Drop panics");
    }
}

#[test]
fn error_handler_panicking_with_a_panicking_payload_keeps_the_loop_going() {
    in_child_process(
        "error_handler_panicking_with_a_panicking_payload_keeps_the_loop_going",
        || {
            let escaped = catch_unwind(|| {
                greenlet::run(|| {
                    hub::set_error_handler(|_| {
                        HANDLER_CALLS.fetch_add(1, Ordering::SeqCst);
                        panic_any(PanicOnDrop);
                    });
                    let bad = spawn(|| -> u32 { panic!("first greenlet panic") });
                    assert!(bad.get().is_err());
                    // The loop is not left "inside a callback".
                    timed_tick();
                    let bad2 = spawn(|| -> u32 { panic!("second greenlet panic") });
                    sleep(Duration::ZERO);
                    assert!(bad2.get().is_err());
                    timed_tick();
                    let fine = spawn(|| {
                        sleep(Duration::from_millis(1));
                        7
                    });
                    assert_eq!(fine.get().expect("runs"), 7);
                    hub::join();
                    assert!(hub::stats().is_quiet(), "{:?}", hub::stats());
                    hub::reset_error_handler();
                })
            });
            assert!(escaped.is_ok(), "a panic escaped greenlet::run");
            assert_eq!(HANDLER_CALLS.load(Ordering::SeqCst), 2);
            assert_eq!(PAYLOAD_DROPS.load(Ordering::SeqCst), 2);
            // The next scope on this thread works.
            assert_eq!(greenlet::run(|| spawn(|| 1).get().expect("runs")), 1);
        },
    );
}

/// Records, when dropped, whether the hub could be used from its `Drop`
/// (it cannot while the hub is borrowed: that aborts).
struct TouchesHubOnDrop(Rc<Cell<usize>>);

impl Drop for TouchesHubOnDrop {
    fn drop(&mut self) {
        let _ = hub::stats();
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn closure_larger_than_the_stack_is_a_spawn_error() {
    in_child_process("closure_larger_than_the_stack_is_a_spawn_error", || {
        // Moving half a MiB by value needs a roomy native stack.
        let t = std::thread::Builder::new()
            .stack_size(32 * 1024 * 1024)
            .spawn(|| {
                greenlet::run(|| {
                    hub::set_default_stack_size(256 * 1024);
                    let drops = Rc::new(Cell::new(0));
                    let big = Box::new([1u8; 512 * 1024]);

                    let guard = TouchesHubOnDrop(Rc::clone(&drops));
                    let captured = *big;
                    let err = Builder::new()
                        .spawn(move || {
                            let _g = &guard;
                            black_box(captured)[0]
                        })
                        .expect_err("a 512 KiB closure cannot fit a 256 KiB stack");
                    assert_eq!(err.kind(), SpawnErrorKind::BodyTooLarge);
                    assert!(err.to_string().contains("Builder::stack_size"), "{err}");
                    assert_eq!(drops.get(), 1, "the closure was dropped once");

                    let guard = TouchesHubOnDrop(Rc::clone(&drops));
                    let captured = *big;
                    let panicked = catch_unwind(AssertUnwindSafe(|| {
                        spawn(move || {
                            let _g = &guard;
                            black_box(captured)[0]
                        })
                    }))
                    .expect_err("plain spawn panics");
                    let msg = panicked
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panicked.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    assert!(msg.contains("Builder::stack_size"), "{msg}");
                    assert_eq!(drops.get(), 2);

                    // The hub is still usable.
                    let ok = spawn(|| {
                        sleep(Duration::from_millis(1));
                        5
                    });
                    assert_eq!(ok.get().expect("runs"), 5);
                    timed_tick();
                    hub::join();
                    assert!(hub::stats().is_quiet(), "{:?}", hub::stats());
                })
            })
            .expect("thread");
        t.join().expect("no panic escaped the thread");
    });
}

#[test]
fn link_callback_panic_leaves_the_loop_idle() {
    greenlet::run(|| {
        let reports = Rc::new(Cell::new(0usize));
        let r = Rc::clone(&reports);
        hub::set_error_handler(move |rep| {
            if rep.context == "link callback" {
                r.set(r.get() + 1);
            }
        });
        let ran = Rc::new(Cell::new(false));
        let r2 = Rc::clone(&ran);
        let g = spawn(|| 3);
        g.link(move |_| {
            r2.set(true);
            panic!("link callback boom");
        });
        assert_eq!(g.get().expect("runs"), 3);
        hub::join();
        assert!(ran.get(), "the link ran");
        assert_eq!(reports.get(), 1, "reported once");
        let s = hub::stats();
        assert!(s.is_quiet() && s.callbacks == 0, "{s:?}");
        // The loop's state was restored: a native sleep works.
        timed_tick();
        // And again from a greenlet.
        let later = spawn(|| {
            let start = Instant::now();
            sleep(TICK);
            start.elapsed()
        });
        let took = later.get().expect("runs");
        assert!(took >= TICK && took < TICK_UPPER, "{took:?}");
        hub::reset_error_handler();
        hub::join();
        assert!(hub::stats().is_quiet(), "{:?}", hub::stats());
    });
}

#[test]
fn posted_callback_panic_leaves_the_loop_idle() {
    greenlet::run(|| {
        let reports = Rc::new(Cell::new(0usize));
        let r = Rc::clone(&reports);
        hub::set_error_handler(move |_| r.set(r.get() + 1));
        let handle = hub::handle();
        std::thread::spawn(move || {
            handle
                .post(|| panic!("posted callback boom"))
                .expect("hub open");
        })
        .join()
        .expect("poster");
        // Run the callback.
        sleep(Duration::from_millis(5));
        hub::join();
        assert_eq!(reports.get(), 1, "reported once");
        assert!(hub::stats().is_quiet(), "{:?}", hub::stats());
        timed_tick();
        hub::reset_error_handler();
        assert!(hub::stats().is_quiet(), "{:?}", hub::stats());
    });
}
