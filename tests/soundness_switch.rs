//! Issue 11 §3: the switch layer never trusts payloads. A greenlet body
//! that panics with one of `generator`'s own payloads (`Error::Done`,
//! `Error::Cancel`, ...) is an ordinary panic of that greenlet: it ends
//! with `GreenletError::Panicked`, no other stack is unmapped under live
//! frames, and the hub goes on. Each scenario runs in a child process (the
//! failure mode was a SIGSEGV or an `unreachable!`).

mod soundness_common;

use std::panic::panic_any;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use greenlet::{GreenletError, hub, sleep, spawn};
use soundness_common::in_child_process;

/// Makes one of `generator`'s payloads.
type MakePayload = fn() -> generator::Error;

/// The payloads `generator` uses internally.
fn payloads() -> Vec<(&'static str, MakePayload)> {
    vec![
        ("Done", || generator::Error::Done),
        ("Cancel", || generator::Error::Cancel),
        ("TypeErr", || generator::Error::TypeErr),
        ("StackErr", || generator::Error::StackErr),
        ("ContextErr", || generator::Error::ContextErr),
    ]
}

/// One payload thrown from a greenlet body while bystanders switch.
fn foreign_payload_round(name: &str, make: MakePayload) {
    let bystanders: Vec<_> = (0..4u64)
        .map(|i| {
            spawn(move || {
                let mut acc = 0;
                for k in 0..6 {
                    sleep(if k % 2 == 0 {
                        Duration::ZERO
                    } else {
                        Duration::from_millis(1)
                    });
                    acc += i;
                }
                acc
            })
        })
        .collect();
    let bad = spawn(move || -> u64 {
        sleep(Duration::ZERO); // mid-flight, other stacks suspended
        panic_any(make())
    });
    match bad.get() {
        Err(GreenletError::Panicked(_)) => {}
        other => panic!("{name}: expected Panicked, got {other:?}"),
    }
    assert!(bad.is_ready() && !bad.is_successful(), "{name}");
    assert!(
        matches!(bad.exception(), Some(GreenletError::Panicked(_))),
        "{name}"
    );
    let got: Vec<u64> = bystanders
        .iter()
        .map(|g| g.get().expect("bystander"))
        .collect();
    assert_eq!(got, [0, 6, 12, 18], "{name}");
    // A joiner on another greenlet sees the same outcome.
    let again = spawn(move || -> u64 { panic_any(make()) });
    let a = again.clone();
    let joiner = spawn(move || matches!(a.get(), Err(GreenletError::Panicked(_))));
    assert!(joiner.get().expect("joiner"), "{name}");
    hub::join();
    assert!(hub::stats().is_quiet(), "{name}: {:?}", hub::stats());
}

#[test]
fn generator_payloads_from_a_body_are_panics_of_that_greenlet() {
    in_child_process(
        "generator_payloads_from_a_body_are_panics_of_that_greenlet",
        || {
            let reports = std::rc::Rc::new(std::cell::Cell::new(0usize));
            let r = std::rc::Rc::clone(&reports);
            greenlet::run(move || {
                hub::set_error_handler(move |_| r.set(r.get() + 1));
                for (name, make) in payloads() {
                    foreign_payload_round(name, make);
                }
                hub::reset_error_handler();
                assert!(hub::stats().is_quiet(), "{:?}", hub::stats());
            });
            // Two panicking greenlets per payload, each reported once.
            assert_eq!(reports.get(), 2 * payloads().len());
            // The next scope on this thread starts clean.
            assert_eq!(greenlet::run(|| spawn(|| 9).get().expect("runs")), 9);
        },
    );
}

static STOP: AtomicBool = AtomicBool::new(false);
static WRITES: AtomicUsize = AtomicUsize::new(0);

#[test]
fn generator_payload_while_a_scoped_thread_borrows_a_suspended_stack() {
    // The crash: greenlet L lends an array on its stack to a
    // `thread::scope` thread and suspends; greenlet P panics with
    // `generator::Error::Done` meanwhile. L's stack must stay mapped and
    // intact until the scoped thread is joined.
    in_child_process(
        "generator_payload_while_a_scoped_thread_borrows_a_suspended_stack",
        || {
            for (name, make) in [
                (
                    "Done",
                    (|| generator::Error::Done) as fn() -> generator::Error,
                ),
                ("Cancel", || generator::Error::Cancel),
            ] {
                STOP.store(false, Ordering::SeqCst);
                WRITES.store(0, Ordering::SeqCst);
                let (lender_ok, panicked) = greenlet::run(move || {
                    let lender = spawn(|| {
                        let shared: [AtomicU64; 512] = std::array::from_fn(|_| AtomicU64::new(0));
                        let mut rounds = 0u64;
                        std::thread::scope(|s| {
                            let arr = &shared;
                            s.spawn(move || {
                                let mut n = 0u64;
                                while !STOP.load(Ordering::SeqCst) {
                                    n += 1;
                                    for cell in arr {
                                        cell.store(n, Ordering::SeqCst);
                                    }
                                    WRITES.fetch_add(1, Ordering::SeqCst);
                                    std::thread::yield_now();
                                }
                            });
                            // Suspended (switched away) while the scoped
                            // thread writes into this stack.
                            while !STOP.load(Ordering::SeqCst) {
                                sleep(Duration::from_millis(2));
                                rounds += 1;
                            }
                        });
                        // The scoped thread is joined: every cell holds its
                        // last value, identical across the array.
                        let last = shared[0].load(Ordering::SeqCst);
                        let consistent = shared.iter().all(|c| c.load(Ordering::SeqCst) == last);
                        consistent && last > 0 && rounds > 0
                    });
                    while WRITES.load(Ordering::SeqCst) < 5 {
                        sleep(Duration::from_millis(1));
                    }
                    let bad = spawn(move || -> () { panic_any(make()) });
                    let panicked = matches!(bad.get(), Err(GreenletError::Panicked(_)));
                    // More switches while the lender is still suspended.
                    for _ in 0..5 {
                        sleep(Duration::from_millis(1));
                    }
                    STOP.store(true, Ordering::SeqCst);
                    let ok = lender.get().expect("lender ends normally");
                    hub::join();
                    assert!(hub::stats().is_quiet(), "{:?}", hub::stats());
                    (ok, panicked)
                });
                assert!(
                    panicked,
                    "{name}: the payload was not a panic of its greenlet"
                );
                assert!(lender_ok, "{name}: the lender's stack was disturbed");
            }
        },
    );
}
