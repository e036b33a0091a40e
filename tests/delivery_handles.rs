//! Issue 12 §5: a handle never outlives its slot's generation.
//!
//! Today an unstarted greenlet whose captured value panics on drop, then
//! `kill_nowait`, left a zombie handle (`is_active()`, `join` waiting for
//! itself) whose later `kill_nowait` killed the unrelated greenlet that
//! reused the slot. The outcome is recorded before the body is dropped and
//! every slot access from a handle checks the generation.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use common::{PROMPT, Reports, assert_band, panic_message, quiet, timed};
use greenlet::{Greenlet, GreenletError, KillError, kill, sleep, spawn};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const SOON: Duration = Duration::from_millis(100);

/// Panics when dropped (with a payload the test recognises).
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("captured value panics on drop");
    }
}

/// Spawns greenlets that sleep 20 ms (they take the slot the stale handle
/// pointed to), kills them through the stale handle in every way, and checks
/// they all complete normally.
#[track_caller]
fn stale_handle_kills_nothing<T: std::fmt::Debug + Clone + 'static>(stale: &Greenlet<T>) {
    let fresh: Vec<Greenlet<u32>> = (0..8u32)
        .map(|i| {
            spawn(move || {
                sleep(ms(20));
                i
            })
        })
        .collect();
    sleep(Duration::ZERO); // every fresh greenlet runs (and owns a slot)
    let (_, took) = timed(|| {
        stale.kill_nowait();
        kill(stale);
        stale.kill().unwrap(); // dead already: returns at once
        assert!(stale.kill_timeout(ms(1)).is_ok());
    });
    assert!(took < SOON, "killing a dead handle took {took:?}");
    let (got, took) = timed(|| {
        fresh
            .iter()
            .map(|g| g.get().expect("a fresh greenlet completes normally"))
            .collect::<Vec<_>>()
    });
    assert_eq!(got, (0..8).collect::<Vec<_>>());
    assert_band("fresh greenlets", took, ms(10), ms(160));
    assert!(stale.is_ready() && !stale.is_active());
}

#[greenlet::test]
fn unstarted_greenlet_whose_capture_panics_on_drop_is_dead_after_kill_nowait() {
    for _ in 0..2 {
        let reports = Reports::install();
        let p = PanicOnDrop;
        let g = spawn(move || {
            let _keep = &p;
            1u32
        });
        let caught = catch_unwind(AssertUnwindSafe(|| g.kill_nowait()));
        // The drop panic may surface here or be reported; either way it is
        // the capture's panic and it is seen once.
        let surfaced = match &caught {
            Ok(()) => 0,
            Err(payload) => {
                assert_eq!(
                    panic_message(payload.as_ref()),
                    "captured value panics on drop"
                );
                1
            }
        };
        drop(caught);
        let reported = reports
            .take()
            .iter()
            .filter(|r| r.line.contains("captured value panics on drop"))
            .count();
        assert_eq!(
            surfaced + reported,
            1,
            "the drop panic must surface exactly once (caught {surfaced}, reported {reported})"
        );
        assert!(g.is_ready(), "killed before start: dead at once");
        assert!(!g.is_active(), "a zombie: is_active() after kill_nowait");
        let (_, took) = timed(|| g.join());
        assert!(took < SOON, "join on a dead greenlet took {took:?}");
        let r = g.get();
        assert!(
            matches!(r, Err(GreenletError::Killed(KillError::GreenletExit))),
            "{r:?}"
        );
        stale_handle_kills_nothing(&g);
        drop(reports);
        quiet();
    }
}

/// The same for a greenlet killed before start without a panicking capture,
/// and for one that finished normally: the stale handle never reaches the
/// slot's next occupant.
#[greenlet::test]
fn stale_handles_of_finished_greenlets_never_kill_the_slots_next_occupant() {
    for _ in 0..2 {
        let unstarted = spawn(|| 1u32);
        unstarted.kill_nowait();
        assert!(unstarted.is_ready() && !unstarted.is_active());
        stale_handle_kills_nothing(&unstarted);

        let finished = spawn(|| 2u32);
        assert_eq!(finished.get().expect("finishes"), 2);
        stale_handle_kills_nothing(&finished);
        assert_eq!(finished.get().expect("still its own value"), 2);

        let killed = spawn(|| sleep(common::LONG));
        sleep(Duration::ZERO);
        killed.kill().unwrap();
        stale_handle_kills_nothing(&killed);
        quiet();
    }
}

/// `join` on the zombie must not wait for itself: bounded by [`PROMPT`] in
/// case it regresses into waiting for the slot's next occupant.
#[greenlet::test]
fn join_on_a_killed_unstarted_greenlet_does_not_wait_for_the_slots_next_occupant() {
    let reports = Reports::install();
    let p = PanicOnDrop;
    let g = spawn(move || {
        let _keep = &p;
    });
    let _ = catch_unwind(AssertUnwindSafe(|| g.kill_nowait()));
    let next = spawn(|| sleep(ms(200)));
    sleep(Duration::ZERO);
    let (_, took) = timed(|| g.join());
    assert!(took < SOON, "join waited {took:?} (for the next occupant?)");
    assert!(took < PROMPT);
    assert!(!next.is_ready(), "the next occupant was disturbed");
    next.join().unwrap();
    assert!(next.is_successful() && next.try_get().is_some_and(|r| r.is_ok()));
    drop(reports);
    quiet();
}
