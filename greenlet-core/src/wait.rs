//! Waiting for many objects: `wait`, `iwait`, `joinall`, `killall`, written
//! once on top of the [`Waitable`] protocol.
//!
//! The common call takes one argument (`joinall(&gs)`, `killall(&gs)`,
//! `wait(&gs)`, `iwait(&gs)`); gevent's keyword arguments are read by name
//! through [`WaitOptions`] and [`KillOptions`] in the `*_with` forms.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

use crate::greenlet::error::{Elapsed, GreenletError, WaitError};
use crate::greenlet::state::LinkId;
use crate::greenlet::{AnyGreenlet, KillOptions, WaitOptions};
use crate::hub::{self, TimerGuard, Waker};
use crate::waiter::Waitable;

/// Yields objects as they become ready (gevent's `iwait`): created by
/// [`iwait`] or [`iwait_with`]. Dropping it unlinks from the objects it did
/// not yield.
///
/// Each item is `Ok(object)`. If the native stack would wait forever, it
/// yields one `Err(WaitError::LoopExit(…))` and ends. When the timeout of
/// [`WaitOptions::timeout`] passes, it just ends (gevent's behaviour).
#[must_use = "iwait is lazy: iterate it to wait"]
pub struct IWait<'a, W: Waitable + ?Sized> {
    objects: Vec<&'a W>,
    links: Vec<Option<LinkId>>,
    fired: Rc<RefCell<VecDeque<usize>>>,
    waker: Rc<Cell<Option<Waker>>>,
    remaining: usize,
    deadline: Option<Instant>,
    begun: bool,
    finished: bool,
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
    /// Links to every object (on the first `next`, so a dropped, unused
    /// iterator costs nothing). An object ready already is taken as fired
    /// without a link, so waiting on finished objects does not switch:
    /// gevent runs the link callbacks of a ready object before any timer
    /// of that loop turn (`with Timeout(0): joinall(dead)` succeeds,
    /// `test__queue.py::TestChannel::test_zero_max_size`).
    fn begin(&mut self) {
        self.begun = true;
        for (i, object) in self.objects.iter().enumerate() {
            if object.is_ready() {
                self.fired.borrow_mut().push_back(i);
                continue;
            }
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
}

impl<'a, W: Waitable + ?Sized> Iterator for IWait<'a, W> {
    type Item = Result<&'a W, WaitError>;

    /// # Switches
    ///
    /// Until an object is ready (or the timeout passes).
    fn next(&mut self) -> Option<Self::Item> {
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
                return Some(Ok(self.objects[i]));
            }
            if self.deadline.is_some_and(|d| hub::now() >= d) {
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
                self.cleanup();
                return Some(Err(WaitError::LoopExit(e)));
            }
        }
    }
}

impl<W: Waitable + ?Sized> Drop for IWait<'_, W> {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Yields each object as it becomes ready (gevent's `iwait(objects)`), in
/// the order they finish. Objects already ready come first, in the order
/// given. [`iwait_with`] takes a timeout and a count.
///
/// # Switches
///
/// Each `next()` waits until an object is ready. If the caller is killed or
/// times out meanwhile, the iterator unlinks itself as it is dropped.
///
/// # Panics
///
/// `next()` inside a hub callback, when it has to wait.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{iwait, sleep, spawn};
/// use std::time::Duration;
///
/// let slow = spawn(|| { sleep(Duration::from_millis(20)); "slow" });
/// let fast = spawn(|| { sleep(Duration::from_millis(1)); "fast" });
/// let order: Vec<_> = iwait([&slow, &fast]).map(|g| g.unwrap().get().unwrap()).collect();
/// assert_eq!(order, ["fast", "slow"]);
/// # });
/// ```
pub fn iwait<'a, W, I>(objects: I) -> IWait<'a, W>
where
    I: IntoIterator<Item = &'a W>,
    W: Waitable + ?Sized + 'a,
{
    iwait_with(objects, WaitOptions::new())
}

/// [`iwait`] with a timeout and a count (gevent's `iwait(objects, timeout,
/// count)`): iteration ends after `count` objects, or when the timeout
/// passes.
///
/// # Switches
///
/// As [`iwait`].
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{WaitOptions, iwait_with, sleep, spawn};
/// use std::time::Duration;
///
/// let never = spawn(|| sleep(Duration::from_secs(60)));
/// let first = spawn(|| ());
/// let got: Vec<_> = iwait_with([&never, &first], WaitOptions::new().timeout(Duration::from_millis(5)))
///     .collect::<Result<_, _>>()
///     .unwrap();
/// assert_eq!(got.len(), 1); // `never` did not finish in time
/// never.kill().unwrap();
/// # });
/// ```
pub fn iwait_with<'a, W, I>(objects: I, options: WaitOptions) -> IWait<'a, W>
where
    I: IntoIterator<Item = &'a W>,
    W: Waitable + ?Sized + 'a,
{
    let objects: Vec<&'a W> = objects.into_iter().collect();
    let n = objects.len();
    let remaining = options.count.map_or(n, |c| c.min(n));
    IWait {
        links: vec![None; n],
        objects,
        fired: Rc::new(RefCell::new(VecDeque::new())),
        waker: Rc::new(Cell::new(None)),
        remaining,
        deadline: options.timeout.and_then(hub::deadline_after),
        begun: false,
        finished: false,
    }
}

/// Waits until every object is ready and returns them in the order they
/// became ready (gevent's `wait(objects)`). [`wait_with`] takes a timeout
/// and a count.
///
/// # Errors
///
/// [`WaitError::LoopExit`] if the native stack would wait forever.
///
/// # Switches
///
/// Until they are all ready.
///
/// # Panics
///
/// Inside a hub callback, when it has to wait.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{spawn, wait};
/// let gs: Vec<_> = (0..3).map(|i| spawn(move || i)).collect();
/// assert_eq!(wait(&gs).unwrap().len(), 3);
/// # });
/// ```
pub fn wait<'a, W, I>(objects: I) -> Result<Vec<&'a W>, WaitError>
where
    I: IntoIterator<Item = &'a W>,
    W: Waitable + ?Sized + 'a,
{
    wait_with(objects, WaitOptions::new())
}

/// [`wait`] with a timeout and a count (gevent's `wait(objects, timeout,
/// count)`): returns what is ready after `count` objects or when the
/// timeout passes (possibly fewer, without an error, as gevent does).
///
/// # Errors
///
/// As [`wait`].
///
/// # Switches
///
/// As [`wait`].
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{WaitOptions, sleep, spawn, wait_with};
/// use std::time::Duration;
/// let g = spawn(|| sleep(Duration::from_secs(60)));
/// let ready = wait_with([&g], WaitOptions::new().timeout(Duration::from_millis(5))).unwrap();
/// assert!(ready.is_empty());
/// g.kill().unwrap();
/// # });
/// ```
pub fn wait_with<'a, W, I>(objects: I, options: WaitOptions) -> Result<Vec<&'a W>, WaitError>
where
    I: IntoIterator<Item = &'a W>,
    W: Waitable + ?Sized + 'a,
{
    iwait_with(objects, options).collect()
}

/// Waits for every greenlet to finish (gevent's `joinall(greenlets)`) and
/// returns them in the order they finished. [`joinall_with`] takes a
/// timeout, a count and `raise_error`.
///
/// # Errors
///
/// [`GreenletError::LoopExit`] if the native stack would wait forever (with
/// `raise_error`, also the first failure).
///
/// # Switches
///
/// Until they have all finished.
///
/// # Panics
///
/// Inside a hub callback, when it has to wait.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{joinall, spawn};
/// let gs: Vec<_> = (0..3).map(|i| spawn(move || i * 2)).collect();
/// joinall(&gs).unwrap();
/// assert!(gs.iter().all(|g| g.is_ready()));
/// # });
/// ```
pub fn joinall<'a, G, I>(greenlets: I) -> Result<Vec<&'a G>, GreenletError>
where
    I: IntoIterator<Item = &'a G>,
    G: AnyGreenlet + ?Sized + 'a,
{
    joinall_with(greenlets, WaitOptions::new())
}

/// [`joinall`] with gevent's options: a timeout and a count (returns what
/// finished by then), and `raise_error` (stop at the first failure and
/// return its error).
///
/// # Errors
///
/// As [`joinall`].
///
/// # Switches
///
/// As [`joinall`].
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{WaitOptions, hub, joinall_with, spawn};
/// hub::set_error_handler(|_| ());
/// let ok = spawn(|| 1);
/// let bad = spawn(|| -> i32 { panic!("boom") });
/// let r = joinall_with([&ok, &bad], WaitOptions::new().raise_error());
/// assert!(r.is_err());
/// # });
/// ```
pub fn joinall_with<'a, G, I>(
    greenlets: I,
    options: WaitOptions,
) -> Result<Vec<&'a G>, GreenletError>
where
    I: IntoIterator<Item = &'a G>,
    G: AnyGreenlet + ?Sized + 'a,
{
    let mut done = Vec::new();
    for g in iwait_with(greenlets, options) {
        let g = g?;
        if options.raise_error
            && let Some(e) = g.exception()
        {
            return Err(e);
        }
        done.push(g);
    }
    Ok(done)
}

/// Kills every greenlet with `GreenletExit` and waits until all are dead
/// (gevent's `killall(greenlets)`). [`killall_with`] takes gevent's
/// `exception`, `block` and `timeout`.
///
/// # Errors
///
/// [`WaitError::LoopExit`] if the native stack would wait forever (a victim
/// swallowed the kill and blocks forever).
///
/// # Switches
///
/// Until they are all dead.
///
/// # Panics
///
/// Inside a hub callback, when it has to wait.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{killall, sleep, spawn};
/// use std::time::Duration;
/// let gs: Vec<_> = (0..3).map(|_| spawn(|| sleep(Duration::from_secs(60)))).collect();
/// sleep(Duration::ZERO);
/// killall(&gs).unwrap();
/// assert!(gs.iter().all(|g| g.is_ready() && g.is_successful()));
/// # });
/// ```
pub fn killall<'a, G, I>(greenlets: I) -> Result<(), WaitError>
where
    I: IntoIterator<Item = &'a G>,
    G: AnyGreenlet + ?Sized + 'a,
{
    killall_with(greenlets, KillOptions::new())
}

/// [`killall`] with gevent's options: the error to kill with, whether to
/// wait, and for how long.
///
/// # Errors
///
/// [`WaitError::Elapsed`] if some are still alive when the timeout passes;
/// else as [`killall`].
///
/// # Switches
///
/// When blocking, until they are all dead; never otherwise.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{KillOptions, killall_with, sleep, spawn};
/// use std::time::Duration;
/// let gs: Vec<_> = (0..3).map(|_| spawn(|| sleep(Duration::from_secs(60)))).collect();
/// sleep(Duration::ZERO);
/// killall_with(&gs, KillOptions::new().timeout(Duration::from_secs(1))).unwrap();
/// # });
/// ```
pub fn killall_with<'a, G, I>(greenlets: I, options: KillOptions) -> Result<(), WaitError>
where
    I: IntoIterator<Item = &'a G>,
    G: AnyGreenlet + ?Sized + 'a,
{
    let greenlets: Vec<&'a G> = greenlets.into_iter().collect();
    for g in &greenlets {
        g.kill_nowait_with(options.error.clone());
    }
    if !options.block {
        return Ok(());
    }
    let alive: Vec<&'a G> = greenlets.into_iter().filter(|g| !g.is_ready()).collect();
    if alive.is_empty() {
        return Ok(());
    }
    let mut wait = WaitOptions::new();
    if let Some(timeout) = options.timeout {
        wait = wait.timeout(timeout);
    }
    let done = wait_with(alive.iter().copied(), wait)?;
    if done.len() < alive.len() {
        return Err(WaitError::Elapsed(Elapsed::new(options.timeout, None)));
    }
    Ok(())
}
