//! Ending a hub: kill what is left, wait until it has unwound, reset.
//!
//! This runs at the end of every hub scope ([`run`](crate::run)) and for
//! [`destroy`]. The contract (DESIGN.md §0): every greenlet ends — its
//! destructors run — *before* the scope's closure returns, so no greenlet
//! frame outlives the thread-locals or borrows it may hold. Cooperative
//! destructors are waited for however long they block (a report says so
//! after a second); a greenlet that refuses to die (it swallows every kill)
//! or whose destructor blocks on something that can never happen aborts the
//! process with its name and spawn site. Leaking its stack instead would
//! leave frames holding borrows of memory that is freed next.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{ErrorReport, report};
use super::{Hub, KillStart, MAIN, Mode, SlotState, kill_slot, run_loop, with_hub};
use crate::greenlet::error::{GreenletError, KillError};
use crate::greenlet::state::Core;

/// Kills every greenlet still alive on this thread's hub and runs them until
/// their destructors finished and their links ran, as the end of a hub
/// scope ([`run`](crate::run)) does, but inside the scope: afterwards the
/// hub has no greenlet, its [`HubHandle`](super::HubHandle)s are closed
/// (new ones can be made), its fd registrations and signal watchers are
/// gone and its cached stacks are unmapped. The main greenlet's own
/// timeouts and the hub's settings stay.
///
/// # Switches
///
/// Runs the hub on the calling stack while greenlets unwind, for as long as
/// their destructors block.
///
/// # Panics
///
/// When called from a greenlet or a hub callback.
///
/// # Aborts
///
/// As at the end of [`run`](crate::run): when a greenlet refuses to die.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// use greenlet::{hub, sleep, spawn};
/// use std::time::Duration;
///
/// greenlet::run(|| {
///     let g = spawn(|| sleep(Duration::from_secs(60)));
///     sleep(Duration::ZERO);
///     hub::destroy();
///     assert!(g.is_ready());
///     assert_eq!(hub::stats().greenlets, 0);
/// });
/// ```
#[track_caller]
pub fn destroy() {
    let (cur, in_loop) = with_hub(|h| (h.current, h.in_loop));
    assert!(
        cur == MAIN && !in_loop,
        "hub::destroy: only the native stack, outside hub callbacks, can destroy the hub"
    );
    shutdown();
    // The default thread pool goes with the greenlets that used it.
    guarded("the hub's thread pool", crate::threadpool::release_hub_pool);
    refresh();
}

/// Ends a hub scope: every greenlet is killed and awaited, then the hub's
/// memory is released.
pub(crate) fn end_scope() {
    // The main greenlet's body (the scope's closure) is over: its
    // greenlet-locals go first, while its greenlets can still be killed.
    guarded("the main greenlet's locals", super::drop_main_locals);
    shutdown();
    // The default thread pool goes with the greenlets that used it.
    guarded("the hub's thread pool", crate::threadpool::release_hub_pool);
    reset();
}

/// Runs `f` (which drops or kills user values whose `Drop` may panic); a
/// panic is reported and teardown goes on. Nothing may escape a teardown
/// halfway: greenlets would be left alive outside their scope.
fn guarded(what: &str, f: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
        let error = GreenletError::Panicked(crate::greenlet::error::PanicError::new(payload));
        report(&ErrorReport {
            context: "hub scope end",
            greenlet: what.to_owned(),
            error: &error,
        });
    }
}

/// At thread exit: nothing can be alive (greenlets live in scopes), so
/// only memory is released, without initialising the hub again.
pub(crate) fn release_at_thread_exit() {
    if let Some(old) = super::local::take_hub_at_thread_exit() {
        guarded("the hub's leftovers at thread exit", move || drop(old));
    }
}

/// How many kills a greenlet may swallow before scope end gives up on it.
const MAX_SWALLOWED: u8 = 3;
/// Greenlets spawned while the hub ends (by links or destructors) after
/// which spawning is refused: a link that respawns whatever dies would
/// otherwise keep the hub alive forever.
const MAX_SPAWNED_WHILE_ENDING: usize = 10_000;
/// After this long, greenlets still unwinding are reported (once).
const SLOW_REPORT: Duration = Duration::from_secs(1);

/// One live greenlet, as teardown sees it.
struct Live {
    slot: u32,
    generation: u32,
    core: Option<Rc<dyn Core>>,
    unwinding: bool,
    swallowed: u8,
    has_throws: bool,
    waiting: &'static str,
}

fn live_greenlets() -> Vec<Live> {
    with_hub(|h| {
        h.slots
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, s)| s.state != SlotState::Free)
            .map(|(i, s)| Live {
                slot: i as u32,
                generation: s.generation,
                core: s.core().cloned(),
                unwinding: s.unwinding,
                swallowed: s.swallowed,
                has_throws: s.has_throws(),
                waiting: s.waiting,
            })
            .collect()
    })
}

/// Kills and runs greenlets until none is left.
fn shutdown() {
    // Close the handles first: posts accepted so far are queued and run by
    // the loop below; later ones fail with `HubClosed` (dropped on the
    // poster's thread).
    with_hub(Hub::close_handles);
    let started = Instant::now();
    let mut reported_slow = false;
    with_hub(|h| h.spawned_while_ending = 0);
    loop {
        let live = live_greenlets();
        if live.is_empty() {
            break;
        }
        with_hub(|h| {
            h.needs_kill = false;
            if h.spawned_while_ending > MAX_SPAWNED_WHILE_ENDING {
                h.closing = true;
            }
        });
        for g in &live {
            if g.unwinding || g.has_throws {
                continue; // already dying; new throws would wait anyway
            }
            if g.swallowed >= MAX_SWALLOWED {
                abort_with(
                    g,
                    "refuses to die: it swallowed every kill (a `catch_unwind` that does not re-raise)",
                );
            }
            // Killing one that never ran drops its closure: user code.
            guarded("an unstarted greenlet's closure", || match &g.core {
                Some(core) => core.kill_nowait(KillError::GreenletExit),
                None => {
                    if let KillStart::Cancelled(leftovers) =
                        kill_slot(g.slot, g.generation, KillError::GreenletExit)
                    {
                        drop(leftovers); // outside the borrow
                    }
                }
            });
        }
        drop(live);
        // Let them unwind (serving the timers and fds their destructors
        // wait on) and run their links.
        let deadline = Instant::now() + SLOW_REPORT;
        let stuck = run_loop(Mode::Teardown { deadline }).is_err();
        if stuck {
            // Nothing can wake anything: a greenlet still unwinding waits
            // for something that will never happen.
            for g in live_greenlets() {
                if g.unwinding {
                    abort_with(
                        &g,
                        "blocks forever while unwinding at the end of its hub scope",
                    );
                }
            }
        }
        if !reported_slow && started.elapsed() >= SLOW_REPORT {
            reported_slow = true;
            for g in live_greenlets().iter().filter(|g| g.unwinding) {
                let error = GreenletError::Killed(KillError::Error(std::sync::Arc::new(
                    std::io::Error::other(format!(
                        "destructor still running after {} s (waiting in {}); the hub scope waits for it",
                        SLOW_REPORT.as_secs(),
                        if g.waiting.is_empty() {
                            "a switch"
                        } else {
                            g.waiting
                        },
                    )),
                )));
                report(&ErrorReport {
                    context: "hub scope end",
                    greenlet: describe(g),
                    error: &error,
                });
            }
        }
    }
    // Run what is left (links of the dead, queued callbacks).
    let _ = run_loop(Mode::Teardown {
        deadline: Instant::now(),
    });
}

fn describe(g: &Live) -> String {
    match &g.core {
        Some(core) => {
            let at = core.header().spawned_at;
            format!(
                "{} (spawned at {}:{})",
                core.describe_as(super::LOOP),
                at.file(),
                at.line()
            )
        }
        None => format!("<raw greenlet #{}>", g.slot),
    }
}

#[cold]
fn abort_with(g: &Live, why: &str) -> ! {
    // The error handler is user code and may be gone; stderr is certain.
    eprintln!(
        "greenlet {} {why}; waiting in {}; aborting (leaking its frames could leave \
         borrows of freed thread-locals behind)",
        describe(g),
        if g.waiting.is_empty() {
            "a switch"
        } else {
            g.waiting
        },
    );
    std::process::abort()
}

/// After [`destroy`]: the hub has no greenlet left; close its handles for
/// good (new ones get a fresh queue), drop its fd registrations (signal
/// watchers too) and unmap cached stacks. Timers and the main greenlet's
/// state stay: the main greenlet may still be inside a `with_timeout`.
fn refresh() {
    let (shared, pool, spare, poller) = with_hub(|h| {
        // fd registrations go (signal watchers included), as with a new
        // loop; greenlets that waited on fds are gone already.
        let poller = h.reactor.clear();
        let pool = std::mem::take(&mut h.stacks.pool);
        let spare = std::mem::take(&mut h.stacks.spare);
        h.stacks.allocated -= pool.len() + spare.len();
        h.unit_released();
        h.closing = false;
        // Every slot is free: hand them out in index order again, as a
        // fresh hub does (teardown kills in slot order).
        h.free_slots.sort_unstable_by(|a, b| b.cmp(a));
        (h.shared.take(), pool, spare, poller)
    });
    guarded("hub::destroy", move || drop((shared, pool, spare, poller)));
}

/// Releases the hub's memory and leaves the scope: what the old hub held
/// (timers, callbacks, the error handler, cached stacks) is dropped after
/// the scope is closed, so a `Drop` there cannot spawn into it, and a
/// panicking one is reported, not propagated.
fn reset() {
    let old = with_hub(|h| {
        debug_assert_eq!(h.live, 0, "reset with live greenlets");
        if let Some(shared) = &h.shared {
            shared.closed.store(true, Ordering::Release);
        }
        let poller = h.reactor.clear();
        h.return_all_units();
        let old = std::mem::replace(h, Hub::new());
        super::local::reset_throws_pending();
        // Ids keep growing across resets: a stale `TimerId` or timeout
        // held from before can never match a timer of the new hub.
        h.timers.continue_after(&old.timers);
        h.torn_down = old.torn_down;
        (old, poller)
    });
    super::local::set_in_scope(false);
    // The next scope starts on real time (`hub::pause` lasts one scope).
    super::clock::reset();
    guarded("the hub's leftovers", move || drop(old));
}
