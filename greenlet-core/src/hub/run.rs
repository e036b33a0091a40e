//! The loop and the blocking primitives: how the native stack runs the hub,
//! how a greenlet is switched in and settled, and how a wait parks.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::dump::WaitTarget;
use super::local;
use super::{
    Direct, ErrorReport, LOOP, MAIN, Mode, Next, SlotLeftovers, SlotState, Step, Throw,
    TimerAction, TimerId, Waker, report, with_hub,
};
use crate::greenlet::error::{GreenletError, LoopExit, PanicError};
use crate::greenlet::state::Core;
use crate::greenlet::switch::{self, RunningInfo, Stack};

// =============================================================== the loop

/// Runs the loop on the native stack. `Ok` when the native stack was woken
/// (or, in `Teardown`, when it is done), `Err` when nothing can wake
/// anything any more.
///
/// Hot path: one hub borrow per switch on this side. It learns which
/// greenlet came back (the one the loop resumed, or one that was
/// transferred to since: `current`), takes its stack out of its slot if it
/// finished, and pops the next entry, in the same borrow. Stacks of started
/// greenlets stay in their slots, so that greenlets can switch to one
/// another directly ([`Hub::next_direct`](super::Hub::next_direct)).
pub(super) fn run_loop(mode: Mode) -> Result<(), ()> {
    with_hub(|h| {
        debug_assert!(!h.in_loop, "the loop is not re-entrant");
        h.maybe_watch();
        h.maybe_register_dump();
        // The native stack ran user code since it last left the loop.
        h.check_stall(MAIN);
        h.loop_entered();
        h.in_loop = true;
        h.current = LOOP;
    });
    let guard = LoopGuard;
    // Throws whose target is gone, dropped outside the borrow.
    let mut unused = Vec::new();
    // A greenlet stack returned to the loop since the last borrow.
    let mut returned = false;
    // What ran last (a slot, or `LOOP` for a callback): the culprit if the
    // monitor flagged this turn.
    let mut last = LOOP;
    let result = loop {
        // One borrow: put the suspended stack back, then pick the next
        // piece of work, going through the iteration boundary (timers,
        // posts, I/O) in the same borrow when the batch is done.
        let next = with_hub(|h| {
            if std::mem::take(&mut returned) {
                let back = h.current;
                last = back;
                let s = &mut h.slots[back as usize];
                if s.stack.as_ref().is_some_and(Stack::is_idle) {
                    let stack = s.stack.take().expect("checked above");
                    return Next::Finished(back, stack);
                }
            }
            if !h.unused_stash.is_empty() {
                // Left by a boundary run on a greenlet stack.
                std::mem::swap(&mut unused, &mut h.unused_stash);
                return Next::Stepped(Step::Run);
            }
            h.check_stall(last);
            h.current = LOOP;
            loop {
                match h.next(mode) {
                    Next::Boundary => {}
                    next => return next,
                }
                let step = h.boundary(mode);
                if !h.unused_stash.is_empty() {
                    // Throws whose target is gone are dropped outside the
                    // borrow before anything else runs.
                    std::mem::swap(&mut unused, &mut h.unused_stash);
                    return Next::Stepped(step);
                }
                if step != Step::Run {
                    return Next::Stepped(step);
                }
            }
        });
        let (slot, to, info) = match next {
            Next::Main => break Ok(()),
            Next::Finished(slot, stack) => {
                finish(slot, Some(stack), None);
                continue;
            }
            Next::Resume(slot, to, info) => (slot, to, info),
            Next::Start(slot, mut stack, body, core) => {
                let core_info = core.clone();
                let loaded = match (body, core) {
                    (Some(body), _) => {
                        stack.install(body);
                        true
                    }
                    (None, Some(core)) => core.install(&mut stack),
                    (None, None) => false,
                };
                if !loaded {
                    // No body (internal error): it ends at once.
                    finish(slot, Some(stack), None);
                    continue;
                }
                let info = core_info
                    .as_ref()
                    .map_or(RunningInfo::NONE, RunningInfo::new);
                let to = with_hub(|h| {
                    let s = &mut h.slots[slot as usize];
                    debug_assert!(s.stack.is_none());
                    s.stack.insert(stack).switch_ref()
                });
                (slot, to, info)
            }
            Next::NoStack(slot, boxed) => {
                let (error, body) = *boxed;
                drop(body);
                finish(slot, None, Some(GreenletError::Spawn(error)));
                continue;
            }
            Next::Notify(core) => {
                last = LOOP;
                let owner = Rc::clone(&core);
                run_callback("link callback", Some(&*owner), move || core.notify_links());
                continue;
            }
            Next::Call(f) => {
                last = LOOP;
                run_callback("hub callback", None, f);
                continue;
            }
            // (Handled inside the borrow above; never returned.)
            Next::Boundary => continue,
            Next::Stepped(step) => {
                unused.clear(); // dropped outside the borrow
                match step {
                    Step::Run => continue,
                    Step::Stuck => break Err(()),
                    Step::Done => break Ok(()),
                }
            }
        };
        last = slot;
        #[cfg(debug_assertions)]
        debug_assert!(!local::is_borrowed(), "hub borrowed across a switch");
        switch::resume(to, info);
        returned = true;
    };
    drop(guard);
    result
}

/// Restores the loop's state when `run_loop` ends, also by unwinding (a
/// panic that escaped a callback's own catch would otherwise leave the hub
/// "inside the loop" forever).
struct LoopGuard;

impl Drop for LoopGuard {
    fn drop(&mut self) {
        with_hub(|h| {
            h.in_loop = false;
            h.current = MAIN;
            h.slots[MAIN as usize].state = SlotState::Running;
        });
    }
}

/// A greenlet is over: free its slot, pool its stack, mark it dead.
fn finish(slot: u32, stack: Option<Stack>, error: Option<GreenletError>) {
    let leftovers = with_hub(|h| {
        h.check_stall(slot);
        h.current = LOOP;
        super::trace::finished(h, slot, error.as_ref());
        if let Some(stack) = stack {
            h.release_stack(stack);
        }
        h.free_slot(slot)
    });
    let SlotLeftovers {
        core,
        throw,
        body,
        locals,
    } = leftovers;
    drop((throw, body));
    super::locals::drop_leftover_locals(locals, slot);
    match core {
        Some(core) => {
            if let Some(error) = error {
                core.set_error(error);
            }
            core.on_death();
        }
        None => {
            if let Some(error) = error {
                report(&ErrorReport {
                    context: "greenlet",
                    greenlet: format!("<raw greenlet #{slot}>"),
                    error: &error,
                });
            }
        }
    }
}

/// Runs a hub callback with `current == LOOP`, catching and reporting panics.
fn run_callback(context: &'static str, owner: Option<&dyn Core>, f: impl FnOnce()) {
    if let Err(payload) = switch::in_callback(|| catch_unwind(AssertUnwindSafe(f))) {
        let error = GreenletError::Panicked(PanicError::new(payload));
        report(&ErrorReport {
            context,
            greenlet: owner.map(|c| c.describe_as(LOOP)).unwrap_or_default(),
            error: &error,
        });
    }
}

// =============================================================== blocking

/// The waker for a wait the current greenlet (or the native stack) is about
/// to make.
///
/// # Panics
///
/// If called from a hub callback (links, timer callbacks, posts, signal
/// dispatch): blocking there would stall every greenlet.
#[inline(always)]
#[track_caller]
pub(crate) fn current_waker(operation: &'static str) -> Waker {
    if !local::in_scope() {
        no_scope(operation);
    }
    let w = with_hub(|h| {
        (h.current != LOOP).then(|| Waker {
            slot: h.current,
            token: h.slots[h.current as usize].token,
        })
    });
    match w {
        Some(w) => w,
        None => blocking_in_hub(operation),
    }
}

/// Panics naming `operation` and the fix: blocking needs a hub scope.
#[cold]
#[track_caller]
pub(crate) fn no_scope(operation: &str) -> ! {
    panic!(
        "{operation}: no hub scope on this thread: call it inside `greenlet::run(|| ...)` \
         (or a `#[greenlet::main]` / `#[greenlet::test]` function)"
    )
}

#[cold]
#[track_caller]
pub(super) fn blocking_in_hub(operation: &'static str) -> ! {
    panic!(
        "{operation}: cannot block inside a hub callback (link, timer or signal callback, \
         or HubHandle::post); spawn a greenlet to do blocking work"
    )
}

/// What a resumed wait found pending.
pub(super) enum Pending {
    Nothing,
    /// Raise it now.
    Throw(Throw),
    /// Woken only by throws that cannot be raised while this greenlet
    /// unwinds (a destructor blocking during a kill): back to its own wait;
    /// the throws stay queued and are delivered when its unwinding ends.
    Deferred,
}

/// Checks the current slot for a queued throw after a switch.
#[inline(always)]
pub(super) fn check_throw(slot: u32) -> Pending {
    if local::throws_pending() == 0 {
        return Pending::Nothing;
    }
    check_throw_slow(slot)
}

#[cold]
#[inline(never)]
fn check_throw_slow(slot: u32) -> Pending {
    with_hub(|h| {
        if let Some(throw) = h.take_slot_throw(slot) {
            return Pending::Throw(throw);
        }
        let s = &mut h.slots[slot as usize];
        if s.woken_by_throw && s.has_throws() {
            // Unwinding: un-wake. Restoring the token makes its own wakers
            // valid again; `unwinding_ended` wakes it for the throws.
            s.woken_by_throw = false;
            s.state = SlotState::Suspended;
            s.token = s.token.wrapping_sub(1);
            Pending::Deferred
        } else {
            Pending::Nothing
        }
    })
}

/// Blocks the caller until `w` is woken. `what` names the wait in
/// [`LoopExit`] messages.
///
/// A queued throw (kill, timeout) is raised by unwinding when the caller
/// resumes, unless the caller is itself unwinding from an earlier throw (then
/// it waits for the unwinding to end). On the native stack, returns
/// `Err(LoopExit)` if nothing can ever wake it (the caller's guards then
/// unlink whatever it registered).
pub(crate) fn park(w: Waker, what: &'static str) -> Result<(), LoopExit> {
    park_on(w, WaitTarget::Text(what))
}

/// [`park`] with a richer description of what the caller waits on (a
/// deadline, an fd, a greenlet) for [`dump`](super::dump); `target`'s name
/// is the wait's name.
pub(crate) fn park_on(w: Waker, target: WaitTarget) -> Result<(), LoopExit> {
    let what = target.what();
    let direct = with_hub(|h| h.begin_park(w, target));
    park_switch(w, what, direct)
}

/// [`park`] for a wait that records the current greenlet's waker somewhere
/// (a [`WaitQueue`](crate::waiter::WaitQueue)) just before blocking:
/// `register` gets the waker inside the same hub borrow that parks, so the
/// hot path of every such wait takes one borrow instead of two. `register`
/// must not touch the hub; it is called only once the wait can start (in a
/// hub scope, not in a hub callback).
///
/// # Panics
///
/// As [`current_waker`].
#[inline]
#[track_caller]
pub(crate) fn park_registering(
    what: &'static str,
    register: impl FnOnce(Waker),
) -> Result<(), LoopExit> {
    if !local::in_scope() {
        no_scope(what);
    }
    let parked = with_hub(|h| {
        if h.current == LOOP {
            return None;
        }
        let w = Waker {
            slot: h.current,
            token: h.slots[h.current as usize].token,
        };
        register(w);
        Some((w, h.begin_park(w, WaitTarget::Text(what))))
    });
    let Some((w, direct)) = parked else {
        blocking_in_hub(what)
    };
    park_switch(w, what, direct)
}

impl super::Hub {
    /// The borrow half of a park: marks `w`'s slot suspended on `target`
    /// and picks where it switches to.
    #[inline(always)]
    fn begin_park(&mut self, w: Waker, target: WaitTarget) -> Direct {
        self.settle_unwinding(w.slot);
        let what = target.what();
        if !matches!(target, WaitTarget::Text(_)) {
            self.meta_target(w.slot, target);
        }
        let s = &mut self.slots[w.slot as usize];
        debug_assert_eq!(s.token, w.token, "park with a stale waker");
        s.state = SlotState::Suspended;
        s.waiting = what;
        s.woken_by_throw = false;
        if s.has_throws() {
            // Killed while running (kill_nowait on itself): come back after
            // one trip through the loop and unwind.
            self.wake_for_throw(w.slot);
        }
        if w.slot == MAIN {
            Direct::Loop
        } else {
            self.next_direct(w.slot)
        }
    }
}

/// The switch half of a park: away until `w` is woken, then raises a
/// queued throw.
#[inline(always)]
fn park_switch(w: Waker, what: &'static str, mut direct: Direct) -> Result<(), LoopExit> {
    loop {
        if w.slot == MAIN {
            run_main_loop(what)?;
        } else {
            switch_away(direct);
        }
        match check_throw(w.slot) {
            Pending::Nothing => return Ok(()),
            Pending::Throw(throw) => super::raise(w.slot, throw),
            Pending::Deferred => direct = with_hub(|h| h.next_direct(w.slot)),
        }
    }
}

/// The greenlet side of a switch, once its slot is no longer `Running`:
/// straight to the next greenlet, back to the loop, or nowhere (its own
/// entry came up).
#[inline(always)]
fn switch_away(direct: Direct) {
    match direct {
        Direct::To(to, info) => switch::transfer(to, info),
        Direct::Loop => switch::suspend(),
        Direct::Stay => {}
    }
}

/// The native stack's side of a wait: runs the loop until its own entry
/// comes up. Out of line, so that the greenlet side of `park` and
/// `yield_now` (a suspend) stays a small function on the switch path.
#[inline(never)]
fn run_main_loop(what: &'static str) -> Result<(), LoopExit> {
    if run_loop(Mode::UntilMain).is_err() {
        let blocked = with_hub(|h| {
            let s = &mut h.slots[MAIN as usize];
            s.waiting = "";
            // Invalidate wakers registered for this wait.
            s.token = s.token.wrapping_add(1);
            h.blocked_report()
        });
        return Err(LoopExit::new(what, blocked));
    }
    Ok(())
}

/// Like [`park_on`], but turns `LoopExit` into a panic naming the operation.
#[track_caller]
pub(crate) fn park_on_or_panic(w: Waker, target: WaitTarget) {
    if let Err(e) = park_on(w, target) {
        panic!("{e}");
    }
}

/// Like [`park`], but turns `LoopExit` into a panic naming the operation.
#[track_caller]
pub(crate) fn park_or_panic(w: Waker, what: &'static str) {
    if let Err(e) = park(w, what) {
        panic!("{e}");
    }
}

/// Queues the current greenlet at the back of the ready queue and switches:
/// `sleep(Duration::ZERO)`.
#[track_caller]
pub(crate) fn yield_now(what: &'static str) {
    let slot = requeue_and_switch(what);
    // Woken by its own entry, never only by a throw: nothing to defer.
    if let Pending::Throw(throw) = check_throw(slot) {
        super::raise(slot, throw);
    }
}

/// [`yield_now`] for a greenlet (or the native stack) whose operation has
/// already taken effect, e.g. an item handed to a getter that should run
/// first: a kill or timeout that arrives during this yield is not raised
/// here, which would report the finished operation as failed. It stays
/// queued and is raised at the caller's next switch, or withdrawn if its
/// `Timeout` ends first. (gevent resumes such a putter from the same hub
/// callback that served the getter, before timers or kills can run.)
#[track_caller]
pub(crate) fn yield_keeping_throws(what: &'static str) {
    requeue_and_switch(what);
}

/// Queues the caller behind the ready greenlets and switches; returns its
/// slot once its own entry came up.
#[track_caller]
fn requeue_and_switch(what: &'static str) -> u32 {
    if !local::in_scope() {
        no_scope(what);
    }
    let next = with_hub(|h| {
        let slot = h.requeue_current()?;
        let direct = if slot == MAIN {
            Direct::Loop
        } else {
            h.next_direct(slot)
        };
        Some((slot, direct))
    });
    let Some((slot, direct)) = next else {
        blocking_in_hub(what);
    };
    if slot == MAIN {
        // Cannot be stuck: our own entry is queued.
        yield_main();
    } else {
        switch_away(direct);
    }
    slot
}

/// `yield_now` on the native stack: one run of the loop (out of line, see
/// [`run_main_loop`]).
#[inline(never)]
fn yield_main() {
    // Cannot be stuck: our own entry is queued.
    let _ = run_loop(Mode::UntilMain);
}

/// Cancels a timer when dropped (also on unwinding).
pub(crate) struct TimerGuard(Option<TimerId>);

impl TimerGuard {
    /// Arms a timer for `w` at `deadline` (`None` = never).
    pub(crate) fn wake_at(deadline: Option<Instant>, referenced: bool, w: Waker) -> TimerGuard {
        TimerGuard(
            deadline.map(|d| with_hub(|h| h.timers.insert(d, referenced, TimerAction::Wake(w)))),
        )
    }

    /// `true` if the timer fired (it was armed and is no longer pending).
    pub(crate) fn fired(&self) -> bool {
        self.0
            .is_some_and(|id| !with_hub(|h| h.timers.contains(id)))
    }
}

impl Drop for TimerGuard {
    fn drop(&mut self) {
        if let Some(id) = self.0.take() {
            let action = with_hub(|h| h.timers.remove(id));
            drop(action);
        }
    }
}

/// `now + d` on the hub clock ([`clock`](super::clock): virtual while
/// paused), or `None` (no deadline) when it overflows. Every hub deadline
/// is computed here.
pub(crate) fn deadline_after(d: Duration) -> Option<Instant> {
    super::clock::current().checked_add(d)
}
