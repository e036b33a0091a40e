//! The thread-local hub.
//!
//! `HUB` is `const`-initialised and wrapped in `ManuallyDrop`, so it has no
//! TLS destructor and stays reachable for the whole life of the thread,
//! including while other thread-local destructors run. Its teardown is driven
//! by a second key, `TEARDOWN`, whose destructor is registered when the hub is
//! first used and calls [`super::destroy`]: that kills the remaining greenlets
//! (their destructors need the hub) and then frees the hub's memory.
//!
//! Every access goes through [`with_hub`], a `RefCell` borrow that must never
//! be held across a switch or across user code (callbacks, user `Drop`s): the
//! closures passed to it only move plain data in and out.

use std::cell::{Cell, RefCell};
use std::mem::ManuallyDrop;

use super::Hub;

thread_local! {
    /// Pending throws (kills, timeouts) on this thread's hub, kept outside
    /// the `RefCell` so the switch path can skip a borrow when it is zero.
    static THROWS_PENDING: Cell<usize> = const { Cell::new(0) };
    /// This thread's hub. Never dropped by TLS teardown (see module docs).
    static HUB: ManuallyDrop<RefCell<Hub>> = const { ManuallyDrop::new(RefCell::new(Hub::new())) };
    /// Its destructor destroys the hub at thread exit.
    static TEARDOWN: Teardown = const { Teardown };
    /// The last [`Timeout`](crate::Timeout) id handed out on this thread
    /// (never reset, so an old timeout cannot withdraw a new one's expiry).
    static TIMEOUT_IDS: Cell<u64> = const { Cell::new(0) };
    /// `true` inside [`super::run`].
    static IN_SCOPE: Cell<bool> = const { Cell::new(false) };
}

/// A fresh timeout id.
pub(crate) fn next_timeout_id() -> u64 {
    let id = TIMEOUT_IDS.get() + 1;
    TIMEOUT_IDS.set(id);
    id
}

/// `true` while this thread is inside a hub scope.
pub(crate) fn in_scope() -> bool {
    IN_SCOPE.get()
}

/// Enters or leaves the hub scope.
pub(crate) fn set_in_scope(value: bool) {
    IN_SCOPE.set(value);
}

struct Teardown;

impl Drop for Teardown {
    fn drop(&mut self) {
        super::teardown::release_at_thread_exit();
    }
}

/// Runs `f` with this thread's hub, initialising it on first use.
///
/// # Panics
///
/// Panics if called re-entrantly (from inside another `with_hub`): that is a
/// bug in this crate, never something a user can cause through the API.
#[inline(always)]
pub(crate) fn with_hub<R>(f: impl FnOnce(&mut Hub) -> R) -> R {
    HUB.with(|cell| {
        let Ok(mut hub) = cell.try_borrow_mut() else {
            reentrant_borrow()
        };
        if !hub.initialized {
            first_use(&mut hub);
        }
        f(&mut hub)
    })
}

#[cold]
#[inline(never)]
fn reentrant_borrow() -> ! {
    panic!("greenlet: hub borrowed re-entrantly (internal error)")
}

/// Initialises this thread's hub (out of line: once per thread).
#[cold]
#[inline(never)]
fn first_use(hub: &mut Hub) {
    hub.initialize();
    if !hub.torn_down {
        // Registering the teardown destructor fails only while this
        // thread's TLS is already being destroyed; the hub is then freed
        // by the destroy that is running.
        let _ = TEARDOWN.try_with(|_| ());
    }
}

/// Runs `f` with this thread's hub if it is reachable (not being destroyed,
/// not borrowed) without initialising it: for destructors that only undo
/// something (a socket leaving the poller), which have nothing to undo
/// otherwise.
pub(crate) fn try_with_hub<R>(f: impl FnOnce(&mut Hub) -> R) -> Option<R> {
    HUB.try_with(|cell| cell.try_borrow_mut().ok().map(|mut hub| f(&mut hub)))
        .ok()
        .flatten()
}

/// Empties this thread's hub for good (thread exit) without initialising
/// it, and returns what it held to be dropped outside the borrow; `None`
/// when it is in use (a loop on the stack) or holds live greenlets.
pub(crate) fn take_hub_at_thread_exit() -> Option<Hub> {
    HUB.with(|cell| {
        let mut hub = cell.try_borrow_mut().ok()?;
        if hub.live != 0 || hub.in_loop {
            return None;
        }
        let mut old = std::mem::replace(&mut *hub, Hub::new());
        // A late TLS destructor that still uses the hub re-initialises it
        // without registering another teardown.
        hub.torn_down = true;
        hub.timers.continue_after(&old.timers);
        old.return_all_units();
        Some(old)
    })
}

/// `true` when the hub is currently borrowed (debug checks in the switch path).
#[cfg(debug_assertions)]
pub(crate) fn is_borrowed() -> bool {
    HUB.with(|cell| cell.try_borrow_mut().is_err())
}

/// Pending throws on this thread's hub.
#[inline]
pub(crate) fn throws_pending() -> usize {
    THROWS_PENDING.get()
}

/// Adjusts the pending-throw count.
pub(crate) fn add_throws_pending(delta: isize) {
    THROWS_PENDING.set(THROWS_PENDING.get().wrapping_add_signed(delta));
}

/// Resets the count (hub teardown starts a fresh hub).
pub(crate) fn reset_throws_pending() {
    THROWS_PENDING.set(0);
}
