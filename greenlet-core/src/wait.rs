//! Waiting for many objects: `wait`, `iwait`, `joinall`, `killall`, written
//! once on top of the [`Waitable`] protocol.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::greenlet::AnyGreenlet;
use crate::greenlet::error::{Elapsed, GreenletError, KillError, LoopExit};
use crate::greenlet::state::LinkId;
use crate::hub::{self, TimerGuard, Waker};
use crate::waiter::Waitable;

/// Yields objects as they become ready (gevent's `iwait`): created by
/// [`iwait`]. Dropping it unlinks from the objects it did not yield.
///
/// If the native stack would wait forever, iteration ends early and
/// [`loop_exit`](IWait::loop_exit) tells why.
pub struct IWait<'a, W: Waitable + ?Sized> {
    objects: Vec<&'a W>,
    links: Vec<Option<LinkId>>,
    fired: Rc<RefCell<VecDeque<usize>>>,
    waker: Rc<Cell<Option<Waker>>>,
    remaining: usize,
    deadline: Option<Instant>,
    begun: bool,
    finished: bool,
    loop_exit: Option<LoopExit>,
}

impl<W: Waitable + ?Sized> std::fmt::Debug for IWait<'_, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IWait")
            .field("objects", &self.objects.len())
            .field("remaining", &self.remaining)
            .field("finished", &self.finished)
            .finish()
    }
}

impl<'a, W: Waitable + ?Sized> IWait<'a, W> {
    fn begin(&mut self) {
        self.begun = true;
        for (i, object) in self.objects.iter().enumerate() {
            let fired = Rc::clone(&self.fired);
            let waker = Rc::clone(&self.waker);
            let id = object.rawlink(Box::new(move || {
                fired.borrow_mut().push_back(i);
                if let Some(w) = waker.get() {
                    hub::wake(w);
                }
            }));
            self.links[i] = Some(id);
        }
    }

    fn cleanup(&mut self) {
        self.finished = true;
        for (i, link) in self.links.iter_mut().enumerate() {
            if let Some(id) = link.take() {
                self.objects[i].unlink(id);
            }
        }
    }

    /// Why iteration stopped early, if the native stack would have waited
    /// forever.
    pub fn loop_exit(&self) -> Option<&LoopExit> {
        self.loop_exit.as_ref()
    }
}

impl<'a, W: Waitable + ?Sized> Iterator for IWait<'a, W> {
    type Item = &'a W;

    /// # Switches
    ///
    /// Until the next object is ready or the timeout passes. A kill or
    /// [`Timeout`](crate::Timeout) ends the wait by unwinding (links are
    /// removed when the iterator is dropped).
    fn next(&mut self) -> Option<&'a W> {
        if self.finished {
            return None;
        }
        if !self.begun {
            self.begin();
        }
        loop {
            if self.remaining == 0 {
                self.cleanup();
                return None;
            }
            let next = self.fired.borrow_mut().pop_front();
            if let Some(i) = next {
                self.links[i] = None; // fired: nothing to unlink
                self.remaining -= 1;
                return Some(self.objects[i]);
            }
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                self.cleanup();
                return None;
            }
            let w = hub::current_waker("iwait");
            self.waker.set(Some(w));
            let timer = TimerGuard::wake_at(self.deadline, true, w);
            let parked = hub::park(w, "iwait");
            self.waker.set(None);
            drop(timer);
            if let Err(e) = parked {
                self.loop_exit = Some(e);
                self.cleanup();
                return None;
            }
        }
    }
}

impl<W: Waitable + ?Sized> Drop for IWait<'_, W> {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Iterates over `objects` as they become ready, until all (or `count`) are
/// ready or `timeout` passes (gevent's `iwait`).
///
/// # Switches
///
/// Each `next()` call may switch; see [`IWait`].
///
/// # Panics
///
/// `next()` panics inside a hub callback.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{iwait, spawn, sleep};
/// use std::time::Duration;
///
/// let slow = spawn(|| { sleep(Duration::from_millis(20)); "slow" });
/// let fast = spawn(|| { sleep(Duration::from_millis(1)); "fast" });
/// let order: Vec<_> = iwait([&slow, &fast], None, None)
///     .map(|g| g.get().unwrap())
///     .collect();
/// assert_eq!(order, ["fast", "slow"]);
/// # });
/// ```
#[must_use = "iwait is lazy: iterate it to wait"]
pub fn iwait<'a, W, I>(
    objects: I,
    timeout: impl Into<Option<Duration>>,
    count: impl Into<Option<usize>>,
) -> IWait<'a, W>
where
    I: IntoIterator<Item = &'a W>,
    W: Waitable + ?Sized + 'a,
{
    let objects: Vec<&'a W> = objects.into_iter().collect();
    let n = objects.len();
    let remaining = count.into().map_or(n, |c| c.min(n));
    IWait {
        links: vec![None; n],
        objects,
        fired: Rc::new(RefCell::new(VecDeque::new())),
        waker: Rc::new(Cell::new(None)),
        remaining,
        deadline: timeout.into().and_then(hub::deadline_after),
        begun: false,
        finished: false,
        loop_exit: None,
    }
}

/// Waits for `objects` to become ready: all of them, or `count`, or until
/// `timeout` passes (gevent's `wait(objects, timeout, count)`). Returns the
/// ready objects in the order they became ready.
///
/// To wait for the whole hub to run dry (gevent's `wait()` without objects),
/// use [`hub::join`](crate::hub::join).
///
/// # Errors
///
/// [`LoopExit`] when the native stack would wait forever.
///
/// # Switches
///
/// Unless nothing needs waiting for. A kill or [`Timeout`](crate::Timeout)
/// ends the wait by unwinding.
///
/// # Panics
///
/// Inside a hub callback.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{spawn, sleep, wait};
/// use std::time::Duration;
///
/// let gs: Vec<_> = (1..=3u64).map(|i| spawn(move || sleep(Duration::from_millis(i)))).collect();
/// let first = wait(&gs, None, 1).unwrap();
/// assert_eq!(first.len(), 1);
/// let all = wait(&gs, Duration::from_secs(5), None).unwrap();
/// assert_eq!(all.len(), 3);
/// # });
/// ```
pub fn wait<'a, W, I>(
    objects: I,
    timeout: impl Into<Option<Duration>>,
    count: impl Into<Option<usize>>,
) -> Result<Vec<&'a W>, LoopExit>
where
    I: IntoIterator<Item = &'a W>,
    W: Waitable + ?Sized + 'a,
{
    let mut it = iwait(objects, timeout, count);
    let ready: Vec<&'a W> = it.by_ref().collect();
    match it.loop_exit.take() {
        Some(e) => Err(e),
        None => Ok(ready),
    }
}

/// Waits for greenlets to finish (gevent's `joinall`): all of them, or
/// `count`, or until `timeout` passes. Returns those that finished.
///
/// With `raise_error`, the first greenlet found failed ends the wait with its
/// error; the others keep running.
///
/// # Errors
///
/// The first failure with `raise_error`; `GreenletError::LoopExit` when the
/// native stack would wait forever.
///
/// # Switches
///
/// As [`wait`].
///
/// # Panics
///
/// Inside a hub callback.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{joinall, spawn, sleep};
/// use std::time::Duration;
///
/// let gs: Vec<_> = (0..3).map(|i| spawn(move || i * 10)).collect();
/// let done = joinall(&gs, None, false, None).unwrap();
/// assert_eq!(done.len(), 3);
///
/// let slow = spawn(|| sleep(Duration::from_secs(60)));
/// let done = joinall([&slow], Duration::from_millis(5), false, None).unwrap();
/// assert!(done.is_empty());
/// slow.kill();
/// # });
/// ```
pub fn joinall<'a, G, I>(
    greenlets: I,
    timeout: impl Into<Option<Duration>>,
    raise_error: bool,
    count: impl Into<Option<usize>>,
) -> Result<Vec<&'a G>, GreenletError>
where
    I: IntoIterator<Item = &'a G>,
    G: AnyGreenlet + ?Sized + 'a,
{
    if !raise_error {
        return wait(greenlets, timeout, count).map_err(GreenletError::LoopExit);
    }
    let mut it = iwait(greenlets, timeout, count);
    let mut done = Vec::new();
    for g in it.by_ref() {
        if let Some(e) = g.exception() {
            return Err(e);
        }
        done.push(g);
    }
    match it.loop_exit.take() {
        Some(e) => Err(GreenletError::LoopExit(e)),
        None => Ok(done),
    }
}

/// Kills greenlets (gevent's `killall`). Greenlets that never ran die without
/// running; the others get `error` at their next switch. With `block`, waits
/// (at most `timeout`) until all are dead.
///
/// # Errors
///
/// `GreenletError::Timeout` if some are still alive after `timeout`;
/// `GreenletError::LoopExit` when the native stack would wait forever.
///
/// # Switches
///
/// With `block`, until they are dead.
///
/// # Panics
///
/// Inside a hub callback with `block`.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{killall, spawn, sleep, KillError};
/// use std::time::Duration;
///
/// let gs: Vec<_> = (0..3).map(|_| spawn(|| sleep(Duration::from_secs(60)))).collect();
/// sleep(Duration::ZERO);
/// killall(&gs, KillError::GreenletExit, true, None).unwrap();
/// assert!(gs.iter().all(|g| g.is_ready()));
/// # });
/// ```
pub fn killall<'a, G, I>(
    greenlets: I,
    error: KillError,
    block: bool,
    timeout: impl Into<Option<Duration>>,
) -> Result<(), GreenletError>
where
    I: IntoIterator<Item = &'a G>,
    G: AnyGreenlet + ?Sized + 'a,
{
    let greenlets: Vec<&'a G> = greenlets.into_iter().collect();
    for g in &greenlets {
        g.kill_nowait_with(error.clone());
    }
    if !block {
        return Ok(());
    }
    let alive: Vec<&'a G> = greenlets.into_iter().filter(|g| !g.is_ready()).collect();
    if alive.is_empty() {
        return Ok(());
    }
    let timeout = timeout.into();
    let done = wait(alive.iter().copied(), timeout, None).map_err(GreenletError::LoopExit)?;
    if done.len() < alive.len() {
        return Err(GreenletError::Timeout(Elapsed::new(timeout, None)));
    }
    Ok(())
}
