//! The hub: one event loop per OS thread, running greenlets, timers, I/O and
//! callbacks.
//!
//! # Design
//!
//! * **Who runs the loop.** The loop is a plain function on the thread's
//!   native stack (the "main greenlet"). When code on the native stack blocks
//!   (`sleep`, `join`, `get`, `wait`), it calls `park`, which runs the loop
//!   inline until the native stack's own wake-up entry comes up in the ready
//!   queue. When a greenlet blocks, `park` picks the next ready entry itself
//!   (`Hub::next_direct`, the same pick the loop would make, iteration
//!   boundaries included) and, when that is another greenlet that has run
//!   before, switches to it directly (`switch::transfer`): one register swap
//!   instead of two. Anything else (the native stack's turn, a callback, a
//!   first start, a boundary that must wait) goes back to the loop, which
//!   learns from `current` which greenlet returned to it.
//! * **Slots.** Started greenlets live in `slots` (a slab indexed by `u32`;
//!   slot 0 is the native stack). A slot holds the greenlet's body until its
//!   first switch, then its stack until it finishes (running or suspended:
//!   direct switches reach it there), its type-erased core (`Rc<dyn Core>`),
//!   a pending unwind (`Throw`) and a wake `token`.
//! * **Lazy stacks.** A started greenlet gets its stack at its first switch
//!   (from the pool when possible), so spawning many greenlets that run to
//!   completion one after the other maps a single stack. Spawning reserves a
//!   *stack unit* instead (see `stacks.rs`), so running out of memory
//!   mappings is reported at spawn time, before the kernel limit is reached.
//! * **Waking.** A blocked greenlet is woken through a `Waker`: slot plus
//!   token. Waking a `Suspended` slot whose token matches bumps the token and
//!   queues a `Switch`; any other waker for the same wait is then stale and
//!   does nothing. Kills and timeouts set `throw` and wake the slot whatever
//!   its token; `park` raises the throw when the slot resumes.
//! * **One iteration.** Run the entries that were ready at the start of the
//!   iteration (FIFO; entries queued meanwhile wait for the next one, so
//!   `sleep(0)` is fair), then fire expired timers, take cross-thread posts,
//!   and poll for I/O: without blocking when work is ready (then only every
//!   `IO_POLL_INTERVAL` ready entries, or when the ready queue drains, like
//!   tokio's `event_interval` and gevent's callback runs), else until the
//!   next deadline. With no poller (no fd, no [`HubHandle`]) timers are
//!   waited for with `thread::sleep`.
//! * **LoopExit.** If nothing is ready and nothing referenced (timer, fd,
//!   live [`HubHandle`], idle waiter) can make anything ready, the native
//!   stack's wait fails with [`LoopExit`](crate::LoopExit) instead of hanging.
//! * **Callbacks never block.** Links, timer callbacks, posts and signal
//!   dispatch run on the loop's stack with `current == LOOP`; a blocking call
//!   there panics with a message naming the call (gevent's
//!   `BlockingSwitchOutError`); the panic is caught and reported, the loop
//!   goes on.
//!
//! * **Seeing inside.** [`dump`] lists every greenlet and what it waits on
//!   (`park_on` records the wait's target); [`stats`] has the loop counters;
//!   the blocked-hub monitor ([`set_max_blocking_time`]) names a greenlet
//!   that blocks its thread; with the `tracing` feature, spawn, finish, kill
//!   and error are `tracing` events. Every deadline comes from the hub
//!   clock ([`now`]), which tests can [`pause`].
//!
//! # Borrow discipline
//!
//! The hub is a `RefCell` reached through `with_hub`. A borrow is never held
//! across a switch, a callback, the error handler, or a drop that can run user
//! code (greenlet cores, bodies, closures, thrown errors): such values are
//! moved out of the borrow and dropped after it ends.

mod api;
mod clock;
mod dump;
mod handle;
pub(crate) mod io;
mod local;
mod locals;
mod monitor;
#[allow(unsafe_code)] // poller registration and raw syscalls: see the module docs
pub(crate) mod reactor;
mod run;
mod scope;
#[allow(unsafe_code)] // the stack region's raw syscalls: see the module docs
mod stacks;
pub(crate) use stacks::fork_count;

/// Called by [`crate::fork`] before `fork(2)`: completes every process-wide
/// one-time initialisation (`Once`, `OnceLock`) the hub may run later, in
/// the parent. Another thread running one of them at fork time would leave
/// it "in progress" in the child forever: the child's first hub loop or
/// spawn would block on it (found by tests/break_interleave2.rs).
pub(crate) fn before_fork() {
    monitor::before_fork();
    stacks::before_fork();
    crate::greenlet::switch::install_panic_hook();
}
mod teardown;
mod timers;
mod trace;

use std::collections::VecDeque;
use std::panic::resume_unwind;
use std::rc::Rc;
use std::time::{Duration, Instant};

pub use crate::threadpool::threadpool;
pub(crate) use api::drop_payload;
pub use api::{
    ErrorReport, Stats, default_stack_size, idle, join, join_timeout, live_greenlets,
    main_greenlet, reset_error_handler, run_callback, set_default_stack_size, set_error_handler,
    set_stack_cache_limit, sleep, sleep_secs, sleep_unref, stats,
};
pub(crate) use api::{report, warn};
pub use clock::{advance, is_paused, now, pause, resume};
pub(crate) use dump::WaitTarget;
pub use dump::{Dump, GreenletInfo, GreenletState, WaitsOn, dump};
pub(crate) use handle::ClosedWatch;
pub(crate) use handle::reinit_poller;
pub use handle::{HubClosed, HubHandle, handle};
pub(crate) use local::with_hub;
use locals::drop_main_locals;
pub(crate) use locals::{
    GreenletId, LocalAccess, Locals, current_greenlet_id, drop_current_locals, local_get,
    local_insert,
};
pub use monitor::{
    DEFAULT_MAX_BLOCKING_TIME, MAX_BLOCKING_TIME_ENV, dump_on_signal, max_blocking_time,
    set_max_blocking_time,
};
use reactor::{IoTarget, Reactor};
use run::run_loop;
pub(crate) use run::{
    TimerGuard, current_waker, deadline_after, no_scope, park, park_on, park_on_or_panic,
    park_or_panic, park_registering, yield_keeping_throws, yield_now,
};
pub use scope::run;
pub use stacks::max_live_stacks;
pub use stacks::uses_guard_markers;
pub use teardown::destroy;
pub(crate) use timers::TimerId;
use timers::Timers;

use crate::greenlet::error::{Elapsed, KillError};
use crate::greenlet::state::Core;
use crate::greenlet::switch::{RunningInfo, Stack, SwitchRef};

/// Slot of the native stack ("main greenlet").
pub(crate) const MAIN: u32 = 0;
/// Value of `current` while hub code (callbacks) runs on the loop's stack.
pub(crate) const LOOP: u32 = u32::MAX;

/// Ready entries (switches and callbacks) the loop runs at most between two
/// polls of the reactor while greenlets stay ready (tokio's default
/// `event_interval`); when the ready queue drains it polls at once.
const IO_POLL_INTERVAL: u32 = 61;

/// Default greenlet stack size in bytes (virtual; only touched pages are
/// resident, one 4 KiB page for an idle, shallow greenlet).
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;
/// Default number of finished stacks kept for reuse per hub.
pub const DEFAULT_STACK_CACHE_LIMIT: usize = 1024;

/// Wakes one blocked wait: a slot plus the token it had when it blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Waker {
    pub(crate) slot: u32,
    pub(crate) token: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Free,
    /// Blocked; woken by a matching [`Waker`] or a throw.
    Suspended,
    /// In the ready queue.
    Scheduled,
    /// Executing (for `MAIN`: running user code, not the loop).
    Running,
}

/// An unwind to raise in a greenlet when it next resumes.
#[derive(Debug, Clone)]
pub(crate) enum Throw {
    Kill(KillError),
    Timeout { id: u64, elapsed: Elapsed },
}

/// The panic payload used to deliver a [`Throw`] by unwinding.
///
/// It knows the greenlet it unwinds (slot and generation): whoever ends the
/// unwinding drops it (the greenlet root, a `with_timeout` catching its own
/// expiry, or user code that swallows it), and its `Drop` tells the hub that
/// this greenlet is no longer unwinding, so its queued throws can be
/// delivered. That is how "this greenlet is unwinding" is known per greenlet
/// (not through `std::thread::panicking()`, which is per OS thread).
#[derive(Debug)]
pub(crate) struct Unwind {
    /// `None` once the throw was consumed by its rightful catcher.
    throw: Option<Throw>,
    slot: u32,
    generation: u32,
    /// The hub it was raised on ([`Hub::epoch`]): a payload dropped on
    /// another thread, or kept past its hub's end, touches nothing.
    epoch: u64,
}

impl Unwind {
    /// The throw being delivered.
    pub(crate) fn throw(&self) -> &Throw {
        self.throw
            .as_ref()
            .expect("an Unwind holds its throw until it is consumed")
    }

    /// Consumes the throw: the unwinding ended where it was meant to. Takes
    /// the box a caught payload comes in.
    #[allow(clippy::boxed_local)] // payloads arrive boxed from `downcast`
    pub(crate) fn into_throw(mut self: Box<Self>) -> Throw {
        self.throw
            .take()
            .expect("an Unwind holds its throw until it is consumed")
    }
}

impl Drop for Unwind {
    fn drop(&mut self) {
        // A kill dropped without being consumed was swallowed by user code.
        let swallowed = matches!(self.throw, Some(Throw::Kill(_)));
        unwinding_ended(self.epoch, self.slot, self.generation, swallowed);
    }
}

/// Raises `throw` in the running greenlet (or the native stack) `slot`.
pub(crate) fn raise(slot: u32, throw: Throw) -> ! {
    let is_kill = matches!(throw, Throw::Kill(_));
    let (generation, epoch) = with_hub(|h| {
        let epoch = h.epoch;
        let s = &mut h.slots[slot as usize];
        s.unwinding = true;
        s.unwinding_kill = is_kill;
        (s.generation, epoch)
    });
    resume_unwind(Box::new(Unwind {
        throw: Some(throw),
        slot,
        generation,
        epoch,
    }))
}

/// The unwinding of `slot` ended: deliver what queued up meanwhile.
fn unwinding_ended(epoch: u64, slot: u32, generation: u32, swallowed: bool) {
    with_hub(|h| {
        if h.epoch != epoch {
            return; // another thread's hub, or a later one
        }
        let Some(s) = h.slots.get_mut(slot as usize) else {
            return;
        };
        if s.generation != generation || s.state == SlotState::Free || !s.unwinding {
            // Gone, or its unwinding was already settled (see
            // `Hub::settle_unwinding`).
            return;
        }
        s.unwinding = false;
        if swallowed {
            s.swallowed = s.swallowed.saturating_add(1);
            h.needs_kill = true;
        }
        if s.throws.as_ref().is_some_and(|q| !q.is_empty()) {
            h.wake_for_throw(slot);
        }
    });
}

/// The body of a greenlet that has not switched in yet.
pub(crate) type Body = Box<dyn FnOnce()>;

/// Who lives in a slot.
enum Occupant {
    Vacant,
    /// A [`Greenlet`](crate::Greenlet): its cell loads the body.
    Greenlet(Rc<dyn Core>),
    /// A `spawn_raw` greenlet: its body until the first switch.
    Raw(Option<Body>),
}

/// One started greenlet (or the native stack, slot 0). Kept compact: the
/// switch path touches it on every switch.
struct Slot {
    token: u32,
    generation: u32,
    state: SlotState,
    /// Has been switched to at least once (kill before that never runs it).
    ran: bool,
    /// Queued by a throw rather than by its own waker (so withdrawing the
    /// throw can put it back to sleep).
    woken_by_throw: bool,
    /// A throw was raised in it and its unwinding has not ended: new throws
    /// wait in `throws` until it does (a panic inside a destructor that runs
    /// during unwinding would abort the process).
    unwinding: bool,
    /// Kills it caught without re-raising (scope end gives up after a few).
    swallowed: u8,
    /// The throw it unwinds from is a kill.
    unwinding_kill: bool,
    /// Requested stack size in bytes; 0 for the hub default.
    stack_size: u32,
    stack: Option<Stack>,
    occupant: Occupant,
    /// Throws waiting to be raised, in order (kills and timeout expiries
    /// due in the same turn are all delivered, one per switch).
    throws: Option<Box<ThrowQueue>>,
    /// What the greenlet is blocked in, for `LoopExit` messages.
    waiting: &'static str,
    /// The `start_later` timer, cancelled by a kill before start.
    start_timer: Option<TimerId>,
}

impl Slot {
    const fn free() -> Slot {
        Slot {
            token: 0,
            generation: 0,
            state: SlotState::Free,
            ran: false,
            woken_by_throw: false,
            unwinding: false,
            swallowed: 0,
            unwinding_kill: false,
            stack_size: 0,
            stack: None,
            occupant: Occupant::Vacant,
            throws: None,
            waiting: "",
            start_timer: None,
        }
    }

    fn has_throws(&self) -> bool {
        self.throws.as_ref().is_some_and(|q| !q.is_empty())
    }

    fn core(&self) -> Option<&Rc<dyn Core>> {
        match &self.occupant {
            Occupant::Greenlet(core) => Some(core),
            _ => None,
        }
    }
}

enum TimerAction {
    Wake(Waker),
    Throw {
        slot: u32,
        generation: u32,
        throw: Box<Throw>,
    },
}

/// A greenlet's queued throws. Boxed in its slot (rare; keeps the slot,
/// which the switch path touches, small).
type ThrowQueue = VecDeque<Throw>;

/// Throws that could not be queued (their target is gone), parked to be
/// dropped outside the hub borrow.
type Unused = Vec<Throw>;

/// An entry of the ready queue: 12 bytes, so the switch path pushes and
/// pops small values. Callbacks wait in their own FIFO, `callbacks`, and
/// a `Callback` marker keeps their place in the common order.
#[derive(Debug, Clone, Copy)]
enum Ready {
    Switch(Waker),
    Callback,
}

/// A queued hub callback.
enum Callback {
    /// Fire a dead greenlet's links.
    Notify(Rc<dyn Core>),
    Call(Box<dyn FnOnce()>),
}

/// Per-hub settings.
#[derive(Debug, Clone, Copy)]
struct Config {
    stack_size: usize,
    stack_cache_limit: usize,
}

/// The per-thread event loop. Reached only through [`with_hub`].
pub(crate) struct Hub {
    initialized: bool,
    /// Torn down at thread exit: do not register another teardown.
    torn_down: bool,
    /// The hub is ending and new greenlets keep appearing (links that
    /// respawn): spawning is refused.
    closing: bool,
    /// While the hub ends: a greenlet was spawned or swallowed a kill, so
    /// the teardown loop should come back for another round of kills.
    needs_kill: bool,
    /// Greenlets spawned since the hub started ending.
    spawned_while_ending: usize,
    slots: Vec<Slot>,
    /// Greenlet-local values (`greenlet_local!`) by slot, beside `slots`
    /// rather than in them (the switch path touches slots; it never reads
    /// these): grown on first use, `None` until a greenlet touches one.
    /// See `locals.rs`.
    locals: Vec<Option<Box<Locals>>>,
    free_slots: Vec<u32>,
    /// Started, not yet dead greenlets.
    live: usize,
    /// Identifies this hub among every hub of the process, past and present
    /// (set when it is initialised; unwind payloads carry it).
    epoch: u64,
    /// Slot running now: `MAIN`, a greenlet, or `LOOP` for hub callbacks.
    current: u32,
    in_loop: bool,
    ready: VecDeque<Ready>,
    /// Entries left in the current iteration's batch.
    batch: usize,
    /// Ready entries run since the poller was last asked for events (see
    /// [`IO_POLL_INTERVAL`]).
    since_poll: u32,
    /// Queued callbacks, in the order of their `Ready::Callback` markers.
    callbacks: VecDeque<Callback>,
    timers: Timers<TimerAction>,
    idlers: Vec<Waker>,
    reactor: Reactor,
    shared: Option<std::sync::Arc<handle::Shared>>,
    stacks: stacks::Stacks,
    config: Config,
    error_handler: Option<Rc<api::ErrorHandler>>,
    /// Per-slot facts for dumps, indexed like `slots` (see `dump.rs`).
    meta: Vec<dump::Meta>,
    /// Greenlets spawned on this hub (their ids).
    spawn_count: u64,
    /// Loop counters behind `Stats`.
    counters: monitor::Counters,
    /// The heartbeat shared with the blocked-hub monitor, when it is on.
    beat: Option<std::sync::Arc<monitor::Beat>>,
    /// Registered for the dump signal.
    dump_registered: bool,
    /// A greenlet ran the first half of an iteration boundary (see
    /// [`Hub::next_direct`]) and found nothing to run: the loop goes on with
    /// the waiting half.
    boundary_waits: bool,
    /// Throws a boundary run on a greenlet stack could not queue: the loop
    /// drops them outside the borrow.
    unused_stash: Unused,
    /// Scratch for the I/O targets a boundary run on a greenlet stack polls.
    fired_scratch: Vec<IoTarget>,
}

impl Hub {
    pub(crate) const fn new() -> Hub {
        Hub {
            initialized: false,
            torn_down: false,
            closing: false,
            needs_kill: false,
            spawned_while_ending: 0,
            slots: Vec::new(),
            locals: Vec::new(),
            free_slots: Vec::new(),
            live: 0,
            epoch: 0,
            current: MAIN,
            in_loop: false,
            ready: VecDeque::new(),
            batch: 0,
            since_poll: 0,
            callbacks: VecDeque::new(),
            timers: Timers::new(),
            idlers: Vec::new(),
            reactor: Reactor::new(),
            shared: None,
            stacks: stacks::Stacks::new(),
            config: Config {
                stack_size: DEFAULT_STACK_SIZE,
                stack_cache_limit: DEFAULT_STACK_CACHE_LIMIT,
            },
            error_handler: None,
            meta: Vec::new(),
            spawn_count: 0,
            counters: monitor::Counters::ZERO,
            beat: None,
            dump_registered: false,
            boundary_waits: false,
            unused_stash: Vec::new(),
            fired_scratch: Vec::new(),
        }
    }

    fn initialize(&mut self) {
        static EPOCHS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        self.initialized = true;
        self.epoch = EPOCHS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut main = Slot::free();
        main.state = SlotState::Running;
        main.ran = true;
        self.slots.push(main);
        self.meta_main();
    }

    // ----------------------------------------------------------- waking

    /// Queues the slot behind `w` if it is still blocked in that wait.
    #[inline]
    fn wake(&mut self, w: Waker) {
        let slot = &mut self.slots[w.slot as usize];
        if slot.state == SlotState::Suspended && slot.token == w.token {
            slot.token = slot.token.wrapping_add(1);
            slot.state = SlotState::Scheduled;
            slot.woken_by_throw = false;
            self.ready.push_back(Ready::Switch(Waker {
                slot: w.slot,
                token: slot.token,
            }));
        } else if slot.woken_by_throw
            && slot.state == SlotState::Scheduled
            && slot.token == w.token.wrapping_add(1)
        {
            // Its own wait completed after a throw had already queued it:
            // the wake-up is real even if the throw is withdrawn or deferred.
            slot.woken_by_throw = false;
        }
    }

    /// `sleep(0)`: queues the running greenlet (or the native stack) at the
    /// back of the ready queue, as its own waker would (a new token: every
    /// waker of an earlier wait stays stale). `None` on the loop's stack
    /// (a hub callback), where nothing may block.
    #[inline]
    fn requeue_current(&mut self) -> Option<u32> {
        let cur = self.current;
        if cur == LOOP {
            return None;
        }
        let s = &mut self.slots[cur as usize];
        s.token = s.token.wrapping_add(1);
        s.state = SlotState::Scheduled;
        s.woken_by_throw = false;
        let token = s.token;
        self.ready
            .push_back(Ready::Switch(Waker { slot: cur, token }));
        Some(cur)
    }

    /// Queues `slot` for a throw if it is blocked, whatever it waits on
    /// (not while it unwinds: see [`Slot::unwinding`]).
    fn wake_for_throw(&mut self, slot: u32) {
        let s = &self.slots[slot as usize];
        if s.state == SlotState::Suspended && !s.unwinding {
            let token = s.token;
            self.wake(Waker { slot, token });
            self.slots[slot as usize].woken_by_throw = true;
        }
    }

    /// Queues a throw for `slot`, behind the ones already pending.
    fn set_throw(&mut self, slot: u32, throw: Throw) {
        let s = &mut self.slots[slot as usize];
        s.throws
            .get_or_insert_with(Default::default)
            .push_back(throw);
        local::add_throws_pending(1);
    }

    /// Called on `slot`'s own stack: if it is marked unwinding but the
    /// thread is not panicking at all, it caught its throw and kept the
    /// payload instead of dropping or re-raising it. It is not unwinding any
    /// more (a kept kill counts as swallowed), so its queued throws can be
    /// delivered. (`thread::panicking()` is per thread: `true` proves
    /// nothing about this greenlet, `false` proves it is not unwinding.)
    fn settle_unwinding(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        if s.unwinding && !std::thread::panicking() {
            s.unwinding = false;
            if s.unwinding_kill {
                s.swallowed = s.swallowed.saturating_add(1);
                self.needs_kill = true;
            }
        }
    }

    /// Takes the next throw to raise in `slot` (running on its own stack),
    /// unless it is unwinding.
    fn take_slot_throw(&mut self, slot: u32) -> Option<Throw> {
        if slot as usize >= self.slots.len() {
            return None;
        }
        self.settle_unwinding(slot);
        let s = &mut self.slots[slot as usize];
        if s.unwinding {
            return None;
        }
        let throw = s.throws.as_mut()?.pop_front();
        if throw.is_some() {
            local::add_throws_pending(-1);
        }
        throw
    }

    /// Removes every throw queued for `slot` (it is over).
    fn drain_throws(&mut self, slot: u32) -> Option<Box<ThrowQueue>> {
        let throws = self.slots[slot as usize].throws.take();
        if let Some(q) = &throws {
            local::add_throws_pending(-(q.len() as isize));
        }
        throws
    }

    fn push_callback(&mut self, callback: Callback) {
        self.callbacks.push_back(callback);
        self.ready.push_back(Ready::Callback);
    }

    pub(super) fn push_call(&mut self, f: Box<dyn FnOnce()>) {
        self.push_callback(Callback::Call(f));
    }

    /// Fires every timer due now. Wakes and throws take effect at once
    /// (queued entries run next iteration); callbacks are queued. Throws
    /// whose target is gone go to `unused_stash`, for the loop to drop
    /// outside the borrow.
    fn fire_timers(&mut self, now: Instant) {
        while let Some(action) = self.timers.pop_expired(now) {
            self.counters.timers_fired += 1;
            match action {
                TimerAction::Wake(w) => self.wake(w),
                TimerAction::Throw {
                    slot,
                    generation,
                    throw,
                } => {
                    let s = &self.slots[slot as usize];
                    if s.generation == generation && s.state != SlotState::Free {
                        self.set_throw(slot, *throw);
                        self.wake_for_throw(slot);
                    } else {
                        self.unused_stash.push(*throw);
                    }
                }
            }
        }
    }

    // ----------------------------------------------------------- slots

    fn alloc_slot(&mut self) -> u32 {
        match self.free_slots.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::free());
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 greenlets")
            }
        }
    }

    /// Frees a slot whose greenlet is over. Returns what must be dropped
    /// outside the borrow (its core, an unused throw, an unrun body).
    fn free_slot(&mut self, slot: u32) -> SlotLeftovers {
        let s = &mut self.slots[slot as usize];
        s.state = SlotState::Free;
        s.generation = s.generation.wrapping_add(1);
        s.token = s.token.wrapping_add(1);
        s.ran = false;
        s.waiting = "";
        s.stack_size = 0;
        s.unwinding = false;
        s.swallowed = 0;
        s.unwinding_kill = false;
        s.woken_by_throw = false;
        let start_timer = s.start_timer.take();
        let throw = self.drain_throws(slot);
        let s = &mut self.slots[slot as usize];
        let (core, body) = match std::mem::replace(&mut s.occupant, Occupant::Vacant) {
            Occupant::Greenlet(core) => (Some(core), None),
            Occupant::Raw(body) => (None, body),
            Occupant::Vacant => (None, None),
        };
        let locals = self.locals.get_mut(slot as usize).and_then(Option::take);
        let s = &mut self.slots[slot as usize];
        let leftovers = SlotLeftovers {
            core,
            throw,
            body,
            locals,
        };
        debug_assert!(s.stack.is_none());
        self.free_slots.push(slot);
        self.live -= 1;
        self.unit_released();
        if let Some(t) = start_timer {
            // A start_later timer only holds a waker: nothing user-owned.
            drop(self.timers.remove(t));
        }
        leftovers
    }

    /// The [`dump`] lines of every live greenlet (`LoopExit`, leak reports).
    fn blocked_report(&self) -> Vec<String> {
        self.dump_entries()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn poll_io(&mut self, timeout: Option<Duration>) {
        self.since_poll = 0;
        let mut fired = std::mem::take(&mut self.fired_scratch);
        self.reactor
            .wait_with(timeout, &mut fired, self.shared.is_none());
        for target in fired.drain(..) {
            match target {
                IoTarget::Wake(w) => self.wake(w),
                IoTarget::Callback(cb) => self.push_call(Box::new(move || cb())),
            }
        }
        self.fired_scratch = fired;
    }

    /// The first half of an iteration boundary, which never waits: the
    /// turn ends, due timers fire, posts and (while greenlets are ready)
    /// ready I/O come in. `true` when there is something to run (the next
    /// batch is set); `false` when the loop must wait (the second half of
    /// [`boundary`](Self::boundary)). Runs on the native stack or, through
    /// [`next_direct`](Self::next_direct), on a greenlet's: it runs no user
    /// code. Timers are fired at every boundary; while greenlets stay ready
    /// the poller is asked only every [`IO_POLL_INTERVAL`] entries.
    #[inline]
    fn boundary_turn(&mut self) -> bool {
        let work = self.boundary_has_work();
        self.boundary_turn_with(work)
    }

    /// [`boundary_turn`](Self::boundary_turn) once
    /// [`boundary_has_work`](Self::boundary_has_work) said `work`.
    #[inline(always)]
    fn boundary_turn_with(&mut self, work: bool) -> bool {
        self.turn_ended();
        if work {
            return self.boundary_turn_work();
        }
        self.batch = self.ready.len();
        self.batch > 0
    }

    /// `false` in the common case on the switch path (no timer, post, fd
    /// or idle waiter): the boundary has nothing to do but count the turn
    /// and start the next batch.
    #[inline(always)]
    fn boundary_has_work(&self) -> bool {
        self.timers.len() > 0
            || self.reactor.len() > 0
            || !self.idlers.is_empty()
            || self.posts_flagged()
    }

    /// [`boundary_turn`](Self::boundary_turn) with timers, posts, fds or
    /// idle waiters to look at.
    #[inline(never)]
    fn boundary_turn_work(&mut self) -> bool {
        // Reading the clock costs ~20 ns here (as much as a switch): only
        // when a timer could be due.
        if self.timers.len() > 0 {
            self.fire_timers(clock::current());
        }
        self.take_posts();
        if !self.ready.is_empty() || !self.idlers.is_empty() {
            // While greenlets stay ready, ask the poller for events only
            // every `IO_POLL_INTERVAL` entries (tokio's `event_interval`):
            // a zero-timeout `epoll_wait` costs more than dozens of
            // switches. Readiness is at most that many entries stale.
            if self.reactor.len() > 0
                && (self.ready.is_empty() || self.since_poll >= IO_POLL_INTERVAL)
            {
                self.poll_io(Some(Duration::ZERO));
            }
            if self.ready.is_empty() {
                // The loop is idle: release `idle()` waiters.
                for w in std::mem::take(&mut self.idlers) {
                    self.wake(w);
                }
            }
            self.batch = self.ready.len();
            return true;
        }
        false
    }

    /// The end of one iteration: timers, posts, I/O. Decides what the loop
    /// does next (throws it could not deliver are left in `unused_stash`).
    fn boundary(&mut self, mode: Mode) -> Step {
        // A greenlet may have run the first half already (`next_direct`).
        if !std::mem::take(&mut self.boundary_waits) && self.boundary_turn() {
            return Step::Run;
        }
        let mut timeout = self
            .timers
            .next_deadline()
            .map(|d| d.saturating_duration_since(clock::current()));
        match mode {
            Mode::UntilMain => {
                let alive = self.timers.referenced() > 0
                    || self.reactor.referenced() > 0
                    || self.handles_alive();
                if !alive {
                    // The loop goes idle for good: a good moment to unmap
                    // surplus stacks.
                    self.trim_stacks();
                    return Step::Stuck;
                }
            }
            Mode::Teardown { deadline } => {
                // Wait (for timers and fds, referenced or not) while greenlets
                // are still unwinding, until the deadline.
                if self.live == 0 {
                    self.trim_stacks();
                    return Step::Done;
                }
                if std::mem::take(&mut self.needs_kill) {
                    return Step::Done; // back for another round of kills
                }
                let waitable =
                    self.timers.len() > 0 || self.reactor.len() > 0 || self.handles_alive();
                if !waitable {
                    return Step::Stuck;
                }
                let now = Instant::now();
                if now >= deadline {
                    return Step::Done;
                }
                let left = deadline - now;
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
        }
        if clock::paused()
            && !crate::threadpool::jobs_pending()
            && let Some(deadline) = self.timers.next_deadline()
        {
            // Virtual time: never wait for a timer. Let ready I/O in first,
            // then jump the clock to the next deadline.
            if self.reactor.has_poller() {
                self.poll_io(Some(Duration::ZERO));
            }
            if self.ready.is_empty() {
                clock::jump_to(deadline);
            }
            self.fire_timers(clock::current());
            self.take_posts();
            self.batch = self.ready.len();
            return Step::Run;
        }
        // About to wait: a good moment to unmap surplus stacks.
        self.trim_stacks();
        self.wait_begins();
        if self.reactor.has_poller() {
            self.poll_io(timeout);
        } else if let Some(timeout) = timeout {
            // No poller: nothing but timers can wake us (a HubHandle or an
            // fd would have created one).
            std::thread::sleep(timeout);
        }
        self.wait_ended();
        if self.timers.len() > 0 {
            self.fire_timers(clock::current());
        }
        self.take_posts();
        self.batch = self.ready.len();
        Step::Run
    }

    /// Pops the next piece of work of this iteration's batch, skipping
    /// stale switches. A greenlet's first switch gets its stack here.
    fn next(&mut self, mode: Mode) -> Next {
        loop {
            if self.batch == 0 {
                return Next::Boundary;
            }
            self.batch -= 1;
            self.since_poll = self.since_poll.saturating_add(1);
            let Some(item) = self.ready.pop_front() else {
                return Next::Boundary;
            };
            let w = match item {
                Ready::Switch(w) => w,
                Ready::Callback => {
                    return match self.callbacks.pop_front() {
                        Some(Callback::Notify(core)) => Next::Notify(core),
                        Some(Callback::Call(f)) => Next::Call(f),
                        None => continue,
                    };
                }
            };
            let s = &mut self.slots[w.slot as usize];
            if s.state != SlotState::Scheduled || s.token != w.token {
                continue; // stale: killed, or woken twice
            }
            s.state = SlotState::Running;
            if w.slot == MAIN {
                if mode == Mode::UntilMain {
                    return Next::Main;
                }
                continue;
            }
            s.ran = true;
            self.current = w.slot;
            self.counters.switches += 1;
            if let Some(to) = s.stack.as_mut().map(Stack::switch_ref) {
                let info = s.core().map_or(RunningInfo::NONE, RunningInfo::new);
                return Next::Resume(w.slot, to, info);
            }
            // First switch: a stack; the body is loaded onto it outside
            // the borrow (loading drops nothing of the user's, but keep
            // every move of user data out of the borrow anyway).
            let (body, core) = match &mut s.occupant {
                Occupant::Greenlet(core) => (None, Some(Rc::clone(core))),
                Occupant::Raw(body) => (body.take(), None),
                Occupant::Vacant => (None, None),
            };
            let size = (s.stack_size != 0).then_some(s.stack_size as usize);
            return match self.take_stack(size) {
                Ok(stack) => Next::Start(w.slot, stack, body, core),
                Err(error) => Next::NoStack(w.slot, Box::new((error, body))),
            };
        }
    }

    /// [`next`](Self::next) for the running greenlet `from`, which is about
    /// to block (its slot is no longer `Running`): picks the same entry the
    /// loop would, in the same order and with the same iteration
    /// boundaries, but runs it without going through the loop when it can.
    ///
    /// Only a greenlet that has already run (its stack is in its slot) is
    /// switched to directly, and `from` itself when its own entry comes up.
    /// Anything else stays queued for the loop: the native stack's entry, a
    /// callback (user code must run with `current == LOOP`), a first start
    /// (it takes a stack and loads a body, user data moved outside the
    /// borrow), a boundary that must wait, or one that left throws to drop.
    /// So does everything while the monitor has flagged a stall (its report
    /// is written from the loop, on the native stack), and a boundary when
    /// `from` has less than [`BOUNDARY_STACK_ROOM`] of stack left (the
    /// boundary would otherwise run deeper on it than a park ever did).
    #[inline(always)]
    pub(super) fn next_direct(&mut self, from: u32) -> Direct {
        if self.stall_flagged() {
            return Direct::Loop;
        }
        loop {
            if self.batch == 0 {
                let work = self.boundary_has_work();
                let from_stack = self.slots[from as usize].stack.as_ref();
                if work && !from_stack.is_none_or(|s| s.has_room(BOUNDARY_STACK_ROOM)) {
                    // Parked deep in a small stack: the boundary's work
                    // (timers, polling) runs on the native stack instead,
                    // as it did before direct switches. Never an overflow
                    // that the greenlet's own frames did not cause. (A
                    // boundary without work only counts the turn.)
                    return Direct::Loop;
                }
                if !self.boundary_turn_with(work) {
                    self.boundary_waits = true;
                    return Direct::Loop;
                }
                if !self.unused_stash.is_empty() {
                    return Direct::Loop;
                }
            }
            let Some(&Ready::Switch(w)) = self.ready.front() else {
                // A callback (or, if the batch outlived its entries, a
                // boundary): the loop's.
                return Direct::Loop;
            };
            let s = &mut self.slots[w.slot as usize];
            if s.state != SlotState::Scheduled || s.token != w.token {
                // Stale: skipped, as `next` does.
                self.ready.pop_front();
                self.batch -= 1;
                self.since_poll = self.since_poll.saturating_add(1);
                continue;
            }
            if w.slot == MAIN {
                return Direct::Loop;
            }
            let to = if w.slot == from {
                None
            } else {
                match &mut s.stack {
                    Some(stack) => Some(stack.switch_ref()),
                    None => return Direct::Loop, // first start
                }
            };
            self.ready.pop_front();
            self.batch -= 1;
            self.since_poll = self.since_poll.saturating_add(1);
            s.state = SlotState::Running;
            self.current = w.slot;
            self.counters.switches += 1;
            return match to {
                None => Direct::Stay,
                Some(to) => {
                    let info = s.core().map_or(RunningInfo::NONE, RunningInfo::new);
                    Direct::To(to, info)
                }
            };
        }
    }
}

/// Stack a parking greenlet must have left for [`Hub::next_direct`] to run
/// the first half of an iteration boundary on it (its deepest path, a
/// zero-timeout poll that dispatches events, takes ~2 KiB in unoptimised
/// builds); with less, the loop runs it on the native stack.
const BOUNDARY_STACK_ROOM: usize = 8 * 1024;

/// What the loop does next (decided under one borrow).
enum Next {
    /// The native stack's turn: return from the loop.
    Main,
    /// Switch into this greenlet (its stack stays in its slot).
    Resume(u32, SwitchRef, RunningInfo),
    /// A greenlet's first switch found no stack (rare: boxed to keep
    /// `Next` small).
    NoStack(u32, Box<(crate::SpawnError, Option<Body>)>),
    /// A greenlet's first switch: load its body (raw, or from its core)
    /// onto the stack, put the stack in the slot, then switch in.
    Start(u32, Stack, Option<Body>, Option<Rc<dyn Core>>),
    Notify(Rc<dyn Core>),
    Call(Box<dyn FnOnce()>),
    /// The batch is done: timers, posts, I/O.
    Boundary,
    /// The boundary decided this (`Run` only when it left throws to drop
    /// outside the borrow).
    Stepped(Step),
    /// The greenlet that came back to the loop has finished: its stack,
    /// taken out of its slot.
    Finished(u32, Stack),
}

/// Where a blocking greenlet goes ([`Hub::next_direct`]).
pub(super) enum Direct {
    /// Back to the loop.
    Loop,
    /// Its own ready entry came up: it goes on running.
    Stay,
    /// Straight to this greenlet.
    To(SwitchRef, RunningInfo),
}

/// What [`Hub::free_slot`] hands back to be dropped outside the borrow.
pub(super) struct SlotLeftovers {
    pub(super) core: Option<Rc<dyn Core>>,
    pub(super) throw: Option<Box<ThrowQueue>>,
    pub(super) body: Option<Body>,
    /// Greenlet-local values it still held (a raw greenlet's, or values set
    /// while its locals were being dropped).
    pub(super) locals: Option<Box<Locals>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Return when the native stack's `Switch` entry comes up.
    UntilMain,
    /// Hub teardown: return when nothing is ready and every greenlet is dead,
    /// or nothing can make progress, or the deadline passed.
    Teardown { deadline: Instant },
}

#[derive(PartialEq, Eq)]
enum Step {
    Run,
    Stuck,
    Done,
}

// =============================================================== greenlets

/// Reserves a stack unit and a slot for a greenlet and schedules it: at
/// once, or when `later` passes (`start_later`). `core` is `None` for raw
/// greenlets.
/// The body comes from `core` at the first switch, or from `body` (raw).
///
/// `body_size` is the size of the closure that will be moved onto the
/// stack: one that cannot fit is refused here rather than failing inside
/// the substrate at the first switch. Returns the slot and its generation.
pub(crate) fn start(
    core: Option<Rc<dyn Core>>,
    body: Option<Body>,
    body_size: usize,
    stack_size: Option<usize>,
    later: Option<Duration>,
) -> Result<(u32, u32), (crate::SpawnError, Option<Body>)> {
    if !local::in_scope() {
        return Err((crate::SpawnError::no_scope(), body));
    }
    with_hub(|h| {
        if h.closing {
            return Err((crate::SpawnError::scope_ending(), body));
        }
        h.needs_kill = true;
        h.spawned_while_ending += 1;
        let effective = stack_size
            .unwrap_or(h.config.stack_size)
            .max(crate::greenlet::switch::MIN_STACK_SIZE);
        if effective > MAX_STACK_SIZE {
            let error = crate::SpawnError::new(
                h.live,
                effective,
                stacks::max_live_stacks(),
                format!(
                    "a stack of {effective} bytes is over the {} GiB maximum",
                    MAX_STACK_SIZE >> 30
                ),
            );
            return Err((error, body));
        }
        if body_size.saturating_add(BODY_HEADROOM) > effective {
            return Err((
                crate::SpawnError::body_too_large(body_size, effective),
                body,
            ));
        }
        if let Err(e) = h.reserve_unit(stack_size) {
            return Err((e, body));
        }
        let slot = h.alloc_slot();
        h.live += 1;
        h.meta_spawned(slot);
        let s = &mut h.slots[slot as usize];
        s.occupant = match core {
            Some(core) => Occupant::Greenlet(core),
            None => Occupant::Raw(body),
        };
        s.stack_size = stack_size.map_or(0, |b| u32::try_from(b).unwrap_or(u32::MAX));
        s.ran = false;
        let w = Waker {
            slot,
            token: s.token,
        };
        match later.filter(|d| !d.is_zero()) {
            None => {
                s.state = SlotState::Scheduled;
                h.ready.push_back(Ready::Switch(w));
            }
            Some(d) => {
                s.state = SlotState::Suspended;
                s.waiting = "start_later";
                // No deadline (overflow) means "never": it can still be
                // killed, which frees it.
                let deadline = deadline_after(d);
                h.meta_target(
                    slot,
                    WaitTarget::Deadline {
                        what: "start_later",
                        deadline,
                    },
                );
                if let Some(deadline) = deadline {
                    let id = h.timers.insert(deadline, true, TimerAction::Wake(w));
                    h.slots[slot as usize].start_timer = Some(id);
                }
            }
        }
        trace::spawned(h, slot);
        Ok((slot, h.slots[slot as usize].generation))
    })
}

/// The largest greenlet stack, in bytes (`Builder::stack_size` above it
/// is a [`SpawnError`](crate::SpawnError)).
pub const MAX_STACK_SIZE: usize = 1 << 30;

/// Stack room a body needs beyond its own closure: the greenlet root, the
/// first frames and an unwind.
const BODY_HEADROOM: usize = 8 * 1024;

/// Outcome of [`kill_slot`].
pub(crate) enum KillStart {
    /// Never switched to: its start was cancelled; it is dead now. The
    /// leftovers (its unrun body) must be dropped by the caller *after* it
    /// recorded the outcome.
    Cancelled(SlotLeftovers),
    /// The throw is queued; it dies when it next runs.
    Thrown,
    /// It is the caller itself; the throw is queued.
    IsCurrent,
    /// The slot belongs to another greenlet now (the handle is stale).
    Gone,
}

/// Kills a started greenlet: cancels it if it never ran, else queues the
/// throw and wakes it.
pub(crate) fn kill_slot(slot: u32, generation: u32, error: KillError) -> KillStart {
    with_hub(|h| {
        match h.slots.get(slot as usize) {
            Some(s) if s.generation == generation && s.state != SlotState::Free => {}
            _ => return KillStart::Gone,
        }
        trace::killed(h, slot, &error);
        let s = &h.slots[slot as usize];
        if !s.ran {
            KillStart::Cancelled(h.free_slot(slot))
        } else if h.current == slot {
            h.set_throw(slot, Throw::Kill(error));
            KillStart::IsCurrent
        } else {
            h.set_throw(slot, Throw::Kill(error));
            h.wake_for_throw(slot);
            KillStart::Thrown
        }
    })
}

/// Raises the next queued throw in the running greenlet now, if there is
/// one and it is not unwinding (self-kill).
pub(crate) fn raise_pending_throw() {
    if local::throws_pending() == 0 {
        return;
    }
    let throw = with_hub(|h| {
        let cur = h.current;
        if cur == LOOP {
            None
        } else {
            h.take_slot_throw(cur).map(|t| (cur, t))
        }
    });
    if let Some((slot, throw)) = throw {
        raise(slot, throw);
    }
}

/// Queues a kill for the main greenlet (the native stack).
pub(crate) fn kill_main(error: KillError) {
    with_hub(|h| {
        h.set_throw(MAIN, Throw::Kill(error));
        h.wake_for_throw(MAIN);
    });
}

/// One line per live greenlet: what it is, where it was spawned, what it
/// waits in.
pub(crate) fn live_report() -> Vec<String> {
    with_hub(|h| h.blocked_report())
}

/// `true` inside a hub scope on this thread.
pub(crate) fn in_scope() -> bool {
    local::in_scope()
}

/// `true` while hub code (a callback) runs, where nothing may block.
pub(crate) fn in_callback() -> bool {
    with_hub(|h| h.current == LOOP)
}

/// `true` when the greenlet in `slot` (at `generation`) is running now.
pub(crate) fn is_current(slot: u32, generation: u32) -> bool {
    with_hub(|h| h.current == slot && h.slots[slot as usize].generation == generation)
}

/// The slot running now (`MAIN`, a greenlet, or `LOOP`).
pub(crate) fn current_slot() -> u32 {
    with_hub(|h| h.current)
}

/// The core of the greenlet running now, if it has one.
pub(crate) fn current_core() -> Option<Rc<dyn Core>> {
    with_hub(|h| {
        let cur = h.current;
        if cur == LOOP {
            None
        } else {
            h.slots[cur as usize].core().cloned()
        }
    })
}

/// Queues `core.notify_links()` for the next loop turn.
pub(crate) fn schedule_notify(core: Rc<dyn Core>) {
    with_hub(|h| h.push_callback(Callback::Notify(core)));
}

/// Wakes a waiter (no-op when stale).
#[inline(always)]
pub(crate) fn wake(w: Waker) {
    with_hub(|h| h.wake(w));
}

/// Arms a timeout throw at `deadline` aimed at `slot`.
pub(crate) fn arm_throw(deadline: Instant, referenced: bool, slot: u32, throw: Throw) -> TimerId {
    with_hub(|h| {
        let generation = h.slots[slot as usize].generation;
        h.timers.insert(
            deadline,
            referenced,
            TimerAction::Throw {
                slot,
                generation,
                throw: Box::new(throw),
            },
        )
    })
}

/// Cancels a timer; `true` if it was still pending.
pub(crate) fn cancel_timer(id: TimerId) -> bool {
    let action = with_hub(|h| h.timers.remove(id));
    action.is_some()
}

/// `true` while the timer is pending.
pub(crate) fn timer_pending(id: TimerId) -> bool {
    with_hub(|h| h.timers.contains(id))
}

/// Removes a fired-but-undelivered expiry of timeout `id` from `slot`,
/// and only that one: other queued throws stay.
pub(crate) fn withdraw_timeout_throw(slot: u32, id: u64) {
    let withdrawn = with_hub(|h| {
        let s = h.slots.get_mut(slot as usize)?;
        let queue = s.throws.as_mut()?;
        let pos = queue
            .iter()
            .position(|t| matches!(t, Throw::Timeout { id: pending, .. } if *pending == id))?;
        let throw = queue.remove(pos);
        local::add_throws_pending(-1);
        if s.state == SlotState::Scheduled && s.woken_by_throw && !s.has_throws() {
            // Only throws woke it and none is left: un-wake. Restoring the
            // token makes the queued switch stale and its own wakers valid
            // again.
            s.state = SlotState::Suspended;
            s.woken_by_throw = false;
            s.token = s.token.wrapping_sub(1);
        }
        throw
    });
    drop(withdrawn);
}

/// A fresh id for a [`Timeout`](crate::Timeout): unique for the thread's
/// life, across hub resets.
pub(crate) fn next_timeout_id() -> u64 {
    local::next_timeout_id()
}

// =============================================================== fd callbacks

/// Identifies a persistent fd registration made with [`register_callback_fd`].
pub(crate) use reactor::SourceId;

/// Registers `fd` (oneshot) so that readiness queues `callback` on the hub.
/// The registration stays until [`deregister_fd`]; after each event it is
/// disarmed until [`rearm_fd`]. The caller must deregister before closing
/// `fd` (it typically owns the descriptor for the registration's life).
pub(crate) fn register_callback_fd(
    fd: std::os::fd::BorrowedFd<'_>,
    readable: bool,
    writable: bool,
    referenced: bool,
    callback: Rc<dyn Fn()>,
) -> std::io::Result<SourceId> {
    with_hub(|h| {
        h.reactor.register(
            fd,
            readable,
            writable,
            referenced,
            IoTarget::Callback(callback),
        )
    })
}

/// Re-arms a oneshot registration after its event fired.
pub(crate) fn rearm_fd(id: SourceId) -> std::io::Result<()> {
    with_hub(|h| h.reactor.rearm(id, None))
}

/// Changes whether a registration keeps the loop alive (gevent's `ref`).
pub(crate) fn set_fd_referenced(id: SourceId, referenced: bool) {
    with_hub(|h| h.reactor.set_referenced(id, referenced));
}

/// Removes a registration.
pub(crate) fn deregister_fd(id: SourceId) {
    with_hub(|h| h.reactor.deregister(id));
}

#[cfg(test)]
mod size_tests {
    /// The switch path touches these per switch: keep them compact.
    #[test]
    fn hot_structures_stay_small() {
        eprintln!(
            "Ready {} Slot {} Stack {} GreenletError {}",
            std::mem::size_of::<super::Ready>(),
            std::mem::size_of::<super::Slot>(),
            std::mem::size_of::<super::Stack>(),
            std::mem::size_of::<crate::GreenletError>()
        );
        assert!(std::mem::size_of::<super::Ready>() <= 12);
        assert!(std::mem::size_of::<super::Slot>() <= 96);
        assert!(std::mem::size_of::<super::Stack>() <= 16);
        assert!(std::mem::size_of::<crate::GreenletError>() <= 40);
    }
}
