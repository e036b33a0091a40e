//! Hub teardown: kill what is left, let it unwind, free the memory.

use std::rc::Rc;
use std::sync::atomic::Ordering;

use super::{ErrorReport, report};
use super::{Hub, KillStart, MAIN, Mode, Slot, SlotState, kill_slot, run_loop, with_hub};
use crate::greenlet::error::{GreenletError, KillError};
use crate::greenlet::state::Core;

/// Kills every greenlet still alive on this thread's hub, runs them until
/// their destructors finished, and frees the hub's memory. The hub can be
/// used again afterwards (it starts fresh).
///
/// Greenlets get up to three kills. While they unwind, the hub keeps
/// serving timers and fds for destructors that block (a goodbye message, a
/// short sleep), for at most one second in all. A greenlet still alive then
/// (it swallows the unwind in its own `catch_unwind`, or its destructor
/// blocks for longer) is leaked: its stack stays mapped and is counted in
/// [`Stats::leaked_stacks`](super::Stats::leaked_stacks). Called
/// automatically when the thread exits.
///
/// # Switches
///
/// Runs the hub on the calling stack while greenlets unwind.
///
/// # Panics
///
/// When called from a greenlet or a hub callback.
///
/// # Examples
///
/// ```
/// use greenlet_core::{hub, spawn, sleep};
/// use std::time::Duration;
///
/// let g = spawn(|| sleep(Duration::from_secs(60)));
/// sleep(Duration::ZERO);
/// hub::destroy();
/// assert!(g.is_ready());
/// assert_eq!(hub::stats().greenlets, 0);
/// ```
#[track_caller]
pub fn destroy() {
    let (cur, in_loop) = with_hub(|h| (h.current, h.in_loop));
    assert!(
        cur == MAIN && !in_loop,
        "hub::destroy: only the native stack, outside hub callbacks, can destroy the hub"
    );
    destroy_inner(false);
}

/// Ends a hub scope: every greenlet is killed and awaited.
pub(crate) fn end_scope() {
    destroy_inner(false);
}

pub(crate) fn destroy_at_thread_exit() {
    let usable = with_hub(|h| h.current == MAIN && !h.in_loop);
    if usable {
        destroy_inner(true);
    }
}

/// How long teardown waits, in all, for greenlets whose destructors block.
const TEARDOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

fn destroy_inner(thread_exit: bool) {
    let deadline = std::time::Instant::now() + TEARDOWN_WAIT;
    for _round in 0..3 {
        let live: Vec<(u32, Option<Rc<dyn Core>>)> = with_hub(|h| {
            h.slots
                .iter()
                .enumerate()
                .skip(1)
                .filter(|(_, s)| s.state != SlotState::Free)
                .map(|(i, s)| (i as u32, s.core().cloned()))
                .collect()
        });
        if live.is_empty() {
            break;
        }
        for (slot, core) in live {
            match core {
                Some(core) => core.kill_nowait(KillError::GreenletExit),
                None => {
                    // A raw greenlet: cancelled if it never ran, else thrown into.
                    let _: KillStart = kill_slot(slot, KillError::GreenletExit);
                }
            }
        }
        // Let them unwind and run their links; destructors that block get
        // their timers and fds served, up to the deadline.
        let _ = run_loop(Mode::Teardown { deadline });
    }
    // Whatever is still alive refused to die: leak its stack deliberately.
    let leftovers = with_hub(|h| {
        let mut leftovers = Vec::new();
        for i in 1..h.slots.len() {
            if h.slots[i].state == SlotState::Free {
                continue;
            }
            if let Some(stack) = h.slots[i].stack.take() {
                stack.leak();
                h.stacks.leaked += 1;
                h.stacks.allocated -= 1;
            }
            leftovers.push(h.free_slot(i as u32));
        }
        leftovers
    });
    for leftover in leftovers {
        let super::SlotLeftovers { core, throw, body } = leftover;
        drop((throw, body));
        if let Some(core) = core {
            // Its handles must not point at a slot of the old hub: it is
            // over, as far as anyone can observe.
            core.set_error(GreenletError::Killed(KillError::GreenletExit));
            core.on_death();
            report(&ErrorReport {
                context: "hub::destroy",
                greenlet: core.describe_as(super::LOOP),
                error: &GreenletError::Killed(KillError::Error(std::sync::Arc::new(
                    std::io::Error::other(
                        "refused to die after 3 kills (it swallows the unwind); its stack is leaked",
                    ),
                ))),
            });
        }
    }
    // Run what is left (links of the dead), then tear the state down.
    let _ = run_loop(Mode::Teardown {
        deadline: std::time::Instant::now(),
    });
    let old = with_hub(|h| {
        let leaked = h.stacks.leaked;
        let config = h.config;
        if let Some(shared) = &h.shared {
            shared.closed.store(true, Ordering::Release);
        }
        let poller = h.reactor.clear();
        h.return_all_units();
        let old = std::mem::replace(h, Hub::new());
        super::local::reset_throws_pending();
        h.config = config;
        h.stacks.leaked = leaked;
        if thread_exit {
            // The thread-local is never dropped: leave it holding no memory.
            // A late TLS destructor that still uses greenlets re-initialises
            // it without registering another teardown.
            h.torn_down = true;
        } else {
            h.initialized = true;
            let mut main = Slot::free();
            main.state = SlotState::Running;
            main.ran = true;
            h.slots.push(main);
        }
        (old, poller)
    });
    // Timers, queued callbacks, the error handler and pooled stacks of the
    // old state are dropped here, outside the borrow.
    drop(old);
}
