//! Groups of greenlets (gevent's `gevent.pool`): [`Group`] tracks running
//! greenlets, [`Pool`] also bounds how many run at once.
//!
//! A member leaves its group by itself when it finishes (through a link),
//! so `len` counts the greenlets still running. Members have different
//! result types, so the group holds them type-erased
//! ([`AnyGreenlet`]); the calls that return results
//! ([`Group::spawn`], [`Pool::map`], [`Pool::apply`], ...) keep them typed.
//!
//! **Killing** a group kills every member. **Dropping** the last handle of
//! a group kills nothing and leaks nothing: the members keep running to
//! completion under their hub scope (which kills any left when it ends), and
//! the group's links on them are removed.
//!
//! # Examples
//!
//! ```
//! # use greenlet_core as greenlet;
//! # greenlet::run(|| {
//! use greenlet::pool::Pool;
//!
//! let pool = Pool::new(2); // at most two at a time
//! let squares = pool.map(|i: u64| i * i, 1..=5).unwrap();
//! assert_eq!(squares, [1, 4, 9, 16, 25]);
//! # });
//! ```

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use crate::greenlet::error::{GreenletError, WaitError};
use crate::hub;
use crate::waiter::{LinkId, WaitQueue};
use crate::{AnyGreenlet, Greenlet, KillOptions, WaitOptions};

struct Member {
    key: u64,
    erased: Rc<dyn AnyGreenlet>,
    /// The same handle, typed, for `contains`/`discard`.
    typed: Box<dyn Any>,
    link: LinkId,
    dying: Cell<bool>,
    /// The address of its cell, to recognise it as the current greenlet.
    cell: *const (),
}

struct Inner {
    members: RefCell<Vec<Member>>,
    next_key: Cell<u64>,
    /// `join` waiters, woken when the group becomes empty.
    empty: WaitQueue<()>,
    /// The pool's size (`None` for a group).
    limit: Option<usize>,
    /// Slots handed to woken spawners that have not added their greenlet.
    reserved: Cell<usize>,
    /// Spawners waiting for a free slot, first come first served.
    slots: WaitQueue<()>,
}

impl Inner {
    fn new(limit: Option<usize>) -> Rc<Inner> {
        Rc::new(Inner {
            members: RefCell::new(Vec::new()),
            next_key: Cell::new(0),
            empty: WaitQueue::new(),
            limit,
            reserved: Cell::new(0),
            slots: WaitQueue::new(),
        })
    }

    fn len(&self) -> usize {
        self.members.borrow().len()
    }

    fn free_count(&self) -> usize {
        self.limit.map_or(usize::MAX, |l| {
            l.saturating_sub(self.len() + self.reserved.get())
        })
    }

    /// `true` when the running greenlet is a member (gevent's
    /// `_apply_immediately`: `getcurrent() in self`).
    fn has_current(&self) -> bool {
        let Some(core) = crate::hub::current_core() else {
            return false;
        };
        let cell: *const () = Rc::as_ptr(&core).cast();
        self.members.borrow().iter().any(|m| m.cell == cell)
    }

    fn find<T: 'static, D: 'static>(&self, g: &Greenlet<T, D>) -> Option<usize> {
        self.members
            .borrow()
            .iter()
            .position(|m| m.typed.downcast_ref::<Greenlet<T, D>>() == Some(g))
    }

    /// Tracks `g` (which has no slot to wait for: the caller reserved one,
    /// or there is no limit).
    fn track<T: 'static, D: 'static>(self: &Rc<Self>, g: &Greenlet<T, D>) {
        let key = self.next_key.get();
        self.next_key.set(key + 1);
        let weak: Weak<Inner> = Rc::downgrade(self);
        let link = g.rawlink(move || {
            if let Some(inner) = weak.upgrade() {
                inner.remove(|m| m.key == key);
            }
        });
        self.members.borrow_mut().push(Member {
            key,
            erased: Rc::new(g.clone()),
            typed: Box::new(g.clone()),
            link,
            dying: Cell::new(false),
            cell: Rc::as_ptr(&g.inner).cast(),
        });
    }

    /// Removes the first member matching `pred`; returns it.
    fn remove(&self, pred: impl Fn(&Member) -> bool) -> Option<Member> {
        let member = {
            let mut members = self.members.borrow_mut();
            let pos = members.iter().position(pred)?;
            members.remove(pos)
        };
        self.release_slot();
        if self.len() == 0 && !self.empty.is_empty() {
            self.empty.notify_all(|| ());
        }
        Some(member)
    }

    /// A slot came free: hand it to the first waiting spawner.
    fn release_slot(&self) {
        if self.limit.is_some() && self.free_count() > 0 && self.slots.notify_one(()).is_ok() {
            self.reserved.set(self.reserved.get() + 1);
        }
    }

    /// Reserves a slot, waiting for one while the pool is full.
    #[track_caller]
    fn acquire(
        self: &Rc<Self>,
        deadline: Option<Instant>,
        timeout: Option<Duration>,
        what: &'static str,
    ) -> Result<Slot, WaitError> {
        if self.free_count() == 0 {
            // Handed a reserved slot; one handed and then abandoned (kill)
            // passes on to the next waiter.
            self.slots.wait_deadline(deadline, timeout, what, |()| {
                self.reserved.set(self.reserved.get() - 1);
                self.release_slot();
            })?;
        } else {
            self.reserved.set(self.reserved.get() + 1);
        }
        Ok(Slot {
            inner: Rc::clone(self),
            used: false,
        })
    }

    fn join(
        &self,
        timeout: Option<Duration>,
        raise_error: bool,
        what: &'static str,
    ) -> Result<(), GreenletError> {
        let watched: Vec<Rc<dyn AnyGreenlet>> = if raise_error {
            self.members
                .borrow()
                .iter()
                .map(|m| Rc::clone(&m.erased))
                .collect()
        } else {
            Vec::new()
        };
        let waited = if self.len() > 0 {
            let deadline = timeout.and_then(hub::deadline_after);
            self.empty.wait_deadline(deadline, timeout, what, |()| ())
        } else {
            Ok(())
        };
        // gevent checks the members' failures after the wait, timed out or
        // not: a failure wins over the timeout.
        if let Ok(()) | Err(WaitError::Elapsed(_)) = waited {
            for g in watched {
                if let Some(e) = g.exception() {
                    return Err(e);
                }
            }
        }
        Ok(waited?)
    }

    fn kill(&self, options: KillOptions, what: &'static str) -> Result<(), WaitError> {
        let deadline = options.timeout.and_then(hub::deadline_after);
        loop {
            let targets: Vec<Rc<dyn AnyGreenlet>> = self
                .members
                .borrow()
                .iter()
                .filter(|m| !m.dying.replace(true))
                .map(|m| Rc::clone(&m.erased))
                .collect();
            for g in targets {
                g.kill_nowait_with(options.error.clone());
            }
            if !options.block || self.len() == 0 {
                return Ok(());
            }
            // Members added meanwhile are killed on the next round.
            self.empty
                .wait_deadline(deadline, options.timeout, what, |()| ())?;
        }
    }

    fn killone<T: 'static, D: 'static>(
        &self,
        g: &Greenlet<T, D>,
        options: KillOptions,
    ) -> Result<(), WaitError> {
        let fresh = self.find(g).is_some_and(|i| {
            let members = self.members.borrow();
            !members[i].dying.replace(true)
        });
        if fresh {
            g.kill_with_options(options)
        } else {
            Ok(())
        }
    }

    fn discard<T: 'static, D: 'static>(&self, g: &Greenlet<T, D>) -> bool {
        match self.remove(|m| m.typed.downcast_ref::<Greenlet<T, D>>() == Some(g)) {
            Some(m) => {
                m.erased.unlink(m.link);
                true
            }
            None => false,
        }
    }

    fn snapshot(&self) -> Vec<Rc<dyn AnyGreenlet>> {
        self.members
            .borrow()
            .iter()
            .map(|m| Rc::clone(&m.erased))
            .collect()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Detach: the members run on; their links on us go away.
        for m in self.members.get_mut().drain(..) {
            m.erased.unlink(m.link);
        }
    }
}

/// A reserved pool slot; returned to the pool unless used.
struct Slot {
    inner: Rc<Inner>,
    used: bool,
}

impl Slot {
    /// Uses the slot for `g`.
    fn fill<T: 'static, D: 'static>(mut self, g: &Greenlet<T, D>) {
        self.used = true;
        self.inner.reserved.set(self.inner.reserved.get() - 1);
        self.inner.track(g);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.used {
            self.inner.reserved.set(self.inner.reserved.get() - 1);
            self.inner.release_slot();
        }
    }
}

// ================================================================= Group

/// A set of running greenlets (gevent's `pool.Group`): spawn or add them,
/// then [`join`](Group::join) or [`kill`](Group::kill) them together.
///
/// A finished greenlet leaves the group by itself (on the loop turn after
/// it finishes). A `Group` is a handle: clones share the group; see the
/// [module docs](self) for what dropping it does.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::pool::Group;
/// use std::time::Duration;
///
/// let group = Group::new();
/// let a = group.spawn(|| greenlet::sleep(Duration::from_millis(5)));
/// let b = group.spawn(|| "typed result");
/// assert_eq!(group.len(), 2);
/// group.join(None, false).unwrap();
/// assert!(group.is_empty() && a.is_ready());
/// assert_eq!(b.get().unwrap(), "typed result");
/// # });
/// ```
#[derive(Clone)]
pub struct Group {
    inner: Rc<Inner>,
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group").field("len", &self.len()).finish()
    }
}

impl Default for Group {
    fn default() -> Self {
        Group::new()
    }
}

impl Group {
    /// An empty group.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// assert!(greenlet::pool::Group::new().is_empty());
    /// ```
    pub fn new() -> Group {
        Group {
            inner: Inner::new(None),
            _not_send: PhantomData,
        }
    }

    /// Spawns `f` in a new greenlet tracked by the group (gevent's
    /// `Group.spawn`).
    ///
    /// Does not switch: the greenlet starts on a later loop turn.
    ///
    /// # Panics
    ///
    /// As [`spawn`](crate::spawn): outside a hub scope, or when no stack
    /// can be mapped.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let group = greenlet::pool::Group::new();
    /// let g = group.spawn(|| 6 * 7);
    /// assert!(group.contains(&g));
    /// assert_eq!(g.get().unwrap(), 42);
    /// # });
    /// ```
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> Greenlet<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let g = crate::spawn(f);
        self.inner.track(&g);
        g
    }

    /// Tracks `greenlet` (started or not); no-op if it is already a member.
    /// An already finished greenlet leaves again on the next loop turn.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let group = greenlet::pool::Group::new();
    /// let g = greenlet::spawn(|| ());
    /// group.add(&g);
    /// group.add(&g);
    /// assert_eq!(group.len(), 1);
    /// # });
    /// ```
    pub fn add<T: 'static, D: 'static>(&self, greenlet: &Greenlet<T, D>) {
        if self.inner.find(greenlet).is_none() {
            self.inner.track(greenlet);
        }
    }

    /// Stops tracking `greenlet` (it keeps running); `true` if it was a
    /// member.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let group = greenlet::pool::Group::new();
    /// let g = group.spawn(|| ());
    /// assert!(group.discard(&g));
    /// assert!(!group.contains(&g));
    /// # });
    /// ```
    pub fn discard<T: 'static, D: 'static>(&self, greenlet: &Greenlet<T, D>) -> bool {
        self.inner.discard(greenlet)
    }

    /// `true` if `greenlet` is a member.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let group = greenlet::pool::Group::new();
    /// let g = greenlet::spawn(|| ());
    /// assert!(!group.contains(&g));
    /// # });
    /// ```
    pub fn contains<T: 'static, D: 'static>(&self, greenlet: &Greenlet<T, D>) -> bool {
        self.inner.find(greenlet).is_some()
    }

    /// Members (running greenlets, and finished ones whose exit has not
    /// been processed yet).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let group = greenlet::pool::Group::new();
    /// group.spawn(|| ());
    /// assert_eq!(group.len(), 1);
    /// group.join(None, false).unwrap();
    /// assert_eq!(group.len(), 0);
    /// # });
    /// ```
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// `true` with no member.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// assert!(greenlet::pool::Group::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The members now, in the order they were added (a snapshot,
    /// type-erased).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let group = greenlet::pool::Group::new();
    /// group.spawn(|| 1);
    /// group.spawn(|| "two");
    /// assert_eq!(group.iter().filter(|g| !g.is_ready()).count(), 2);
    /// # });
    /// ```
    pub fn iter(&self) -> std::vec::IntoIter<Rc<dyn AnyGreenlet>> {
        self.inner.snapshot().into_iter()
    }

    /// Waits until the group is empty (at least once; gevent's
    /// `Group.join`). With `raise_error`, then returns the error of a
    /// greenlet that was a member when the call began and failed.
    ///
    /// # Errors
    ///
    /// [`GreenletError::Timeout`] when `timeout` passes first;
    /// [`GreenletError::LoopExit`] on the native stack when the members
    /// can never finish; with `raise_error`, the first failed member's
    /// error (among the members when the join began, in the group's order),
    /// which wins over the timeout, as in gevent.
    ///
    /// # Switches
    ///
    /// While the group is not empty.
    ///
    /// # Panics
    ///
    /// Inside a hub callback when it has to wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// greenlet::hub::set_error_handler(|_| ());
    /// let group = greenlet::pool::Group::new();
    /// group.spawn(|| -> () { panic!("boom") });
    /// assert!(group.join(None, true).is_err());
    /// # });
    /// ```
    #[track_caller]
    pub fn join(&self, timeout: Option<Duration>, raise_error: bool) -> Result<(), GreenletError> {
        self.inner.join(timeout, raise_error, "Group::join")
    }

    /// Kills every member with `GreenletExit` and waits until the group is
    /// empty; members added meanwhile are killed too.
    ///
    /// # Errors
    ///
    /// [`WaitError::LoopExit`] on the native stack when a member cannot die.
    ///
    /// # Switches
    ///
    /// Until the members are dead.
    ///
    /// # Panics
    ///
    /// Inside a hub callback when it has to wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let group = greenlet::pool::Group::new();
    /// let g = group.spawn(|| greenlet::sleep(std::time::Duration::from_secs(60)));
    /// group.kill().unwrap();
    /// assert!(group.is_empty() && g.is_dead());
    /// # });
    /// ```
    #[track_caller]
    pub fn kill(&self) -> Result<(), WaitError> {
        self.inner.kill(KillOptions::new(), "Group::kill")
    }

    /// [`kill`](Group::kill) with gevent's options: the error, whether to
    /// wait, and for how long.
    ///
    /// # Errors
    ///
    /// As [`kill`](Group::kill), and [`WaitError::Elapsed`] when the
    /// timeout passes first.
    ///
    /// # Switches
    ///
    /// When blocking, until the members are dead.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::KillOptions;
    /// let group = greenlet::pool::Group::new();
    /// group.spawn(|| greenlet::sleep(std::time::Duration::from_secs(60)));
    /// group.kill_with(KillOptions::new().nowait()).unwrap();
    /// assert_eq!(group.len(), 1); // dying
    /// group.join(None, false).unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn kill_with(&self, options: KillOptions) -> Result<(), WaitError> {
        self.inner.kill(options, "Group::kill")
    }

    /// Kills `greenlet` and waits for it, if it is a member not already
    /// being killed by the group (gevent's `killone`).
    ///
    /// # Errors
    ///
    /// As [`Greenlet::kill`].
    ///
    /// # Switches
    ///
    /// Until it is dead.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let group = greenlet::pool::Group::new();
    /// let g = group.spawn(|| greenlet::sleep(std::time::Duration::from_secs(60)));
    /// group.killone(&g).unwrap();
    /// assert!(g.is_dead());
    /// # });
    /// ```
    #[track_caller]
    pub fn killone<T: 'static, D: 'static>(
        &self,
        greenlet: &Greenlet<T, D>,
    ) -> Result<(), WaitError> {
        self.inner.killone(greenlet, KillOptions::new())
    }

    /// [`killone`](Group::killone) with gevent's `exception`, `block` and
    /// `timeout` ([`KillOptions`]). A member already being killed by the
    /// group is left alone (gevent's `dying` set): it is neither killed
    /// again nor waited for.
    ///
    /// # Errors
    ///
    /// As [`Greenlet::kill_with_options`].
    ///
    /// # Switches
    ///
    /// Unless `nowait`, until it is dead (or the timeout passes).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::KillOptions;
    /// let group = greenlet::pool::Group::new();
    /// let g = group.spawn(|| greenlet::sleep(std::time::Duration::from_secs(60)));
    /// greenlet::sleep(std::time::Duration::ZERO); // g runs and blocks
    /// group.killone_with(&g, KillOptions::new().nowait()).unwrap();
    /// assert!(!g.is_dead()); // the kill is delivered when g next runs
    /// greenlet::sleep(std::time::Duration::ZERO);
    /// assert!(g.is_dead());
    /// # });
    /// ```
    #[track_caller]
    pub fn killone_with<T: 'static, D: 'static>(
        &self,
        greenlet: &Greenlet<T, D>,
        options: KillOptions,
    ) -> Result<(), WaitError> {
        self.inner.killone(greenlet, options)
    }
}

// ================================================================== Pool

/// A [`Group`] with a bound (gevent's `pool.Pool`): at most `size`
/// members at once; [`spawn`](Pool::spawn) waits while it is full.
///
/// Free slots go to waiting spawners first come, first served; a spawner
/// killed or timed out while waiting takes no slot with it. Besides the
/// group operations it has gevent's mapping helpers: [`map`](Pool::map),
/// [`imap`](Pool::imap) (results in input order),
/// [`imap_unordered`](Pool::imap_unordered) (in completion order),
/// [`apply`](Pool::apply), [`apply_async`](Pool::apply_async).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::pool::Pool;
/// use std::time::Duration;
///
/// let pool = Pool::new(1);
/// let a = pool.spawn(|| greenlet::sleep(Duration::from_millis(5))).unwrap();
/// assert!(pool.full());
/// let b = pool.spawn(|| "waited for a").unwrap(); // blocks until a is done
/// assert!(a.is_ready());
/// assert_eq!(b.get().unwrap(), "waited for a");
/// # });
/// ```
#[derive(Clone)]
pub struct Pool {
    group: Group,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.size())
            .field("len", &self.len())
            .finish()
    }
}

impl Pool {
    /// A pool of at most `size` concurrent greenlets. `size` 0 is a pool
    /// where `spawn` always waits (gevent allows it too).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// let pool = greenlet::pool::Pool::new(10);
    /// assert_eq!((pool.size(), pool.free_count()), (10, 10));
    /// ```
    pub fn new(size: usize) -> Pool {
        Pool {
            group: Group {
                inner: Inner::new(Some(size)),
                _not_send: PhantomData,
            },
        }
    }

    fn inner(&self) -> &Rc<Inner> {
        &self.group.inner
    }

    /// The bound.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// assert_eq!(greenlet::pool::Pool::new(3).size(), 3);
    /// ```
    pub fn size(&self) -> usize {
        self.inner().limit.unwrap_or(usize::MAX)
    }

    /// Slots free now (slots handed to woken spawners count as taken).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let pool = greenlet::pool::Pool::new(2);
    /// pool.spawn(|| ()).unwrap();
    /// assert_eq!(pool.free_count(), 1);
    /// # });
    /// ```
    pub fn free_count(&self) -> usize {
        self.inner().free_count()
    }

    /// `true` when [`spawn`](Pool::spawn) would wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let pool = greenlet::pool::Pool::new(1);
    /// pool.spawn(|| ()).unwrap();
    /// assert!(pool.full());
    /// # });
    /// ```
    pub fn full(&self) -> bool {
        self.free_count() == 0
    }

    /// Waits until a slot is free, at most `timeout`; returns
    /// [`free_count`](Pool::free_count) then (gevent's `wait_available`).
    /// The count can be 0 when a spawner queued behind took the slot.
    ///
    /// # Errors
    ///
    /// [`WaitError::Elapsed`] when `timeout` passes first;
    /// [`WaitError::LoopExit`] on the native stack when no member can
    /// finish.
    ///
    /// # Switches
    ///
    /// While the pool is full.
    ///
    /// # Panics
    ///
    /// Inside a hub callback when it has to wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let pool = greenlet::pool::Pool::new(1);
    /// pool.spawn(|| greenlet::sleep(std::time::Duration::from_millis(5))).unwrap();
    /// assert_eq!(pool.wait_available(None).unwrap(), 1);
    /// # });
    /// ```
    #[track_caller]
    pub fn wait_available(&self, timeout: Option<Duration>) -> Result<usize, WaitError> {
        let deadline = timeout.and_then(hub::deadline_after);
        let slot = self
            .inner()
            .acquire(deadline, timeout, "Pool::wait_available")?;
        drop(slot); // back to the pool (or to the next spawner waiting)
        Ok(self.free_count())
    }

    /// Spawns `f` in a new member greenlet, waiting first while the pool is
    /// full.
    ///
    /// # Errors
    ///
    /// [`WaitError::LoopExit`] on the native stack when the pool is full
    /// and no member can finish.
    ///
    /// # Switches
    ///
    /// While the pool is full. A kill or [`Timeout`](crate::Timeout) there
    /// leaves the pool unchanged.
    ///
    /// # Panics
    ///
    /// As [`spawn`](crate::spawn); inside a hub callback when it has to
    /// wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let pool = greenlet::pool::Pool::new(4);
    /// let g = pool.spawn(|| 1 + 1).unwrap();
    /// assert_eq!(g.get().unwrap(), 2);
    /// # });
    /// ```
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> Result<Greenlet<T>, WaitError>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        self.spawn_until(f, None, None)
    }

    /// [`spawn`](Pool::spawn), waiting at most `timeout` for a slot.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Pool::spawn), and [`WaitError::Elapsed`] when
    /// `timeout` passes first (`f` is dropped, never run).
    ///
    /// # Switches
    ///
    /// As [`spawn`](Pool::spawn).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use std::time::Duration;
    /// let pool = greenlet::pool::Pool::new(1);
    /// pool.spawn(|| greenlet::sleep(Duration::from_secs(60))).unwrap();
    /// assert!(pool.spawn_timeout(|| (), Duration::from_millis(5)).is_err());
    /// pool.kill().unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn spawn_timeout<F, T>(&self, f: F, timeout: Duration) -> Result<Greenlet<T>, WaitError>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        self.spawn_until(f, hub::deadline_after(timeout), Some(timeout))
    }

    #[track_caller]
    fn spawn_until<F, T>(
        &self,
        f: F,
        deadline: Option<Instant>,
        timeout: Option<Duration>,
    ) -> Result<Greenlet<T>, WaitError>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let slot = self.inner().acquire(deadline, timeout, "Pool::spawn")?;
        let g = crate::spawn(f);
        slot.fill(&g);
        Ok(g)
    }

    /// Tracks `greenlet`, waiting first while the pool is full; no-op if it
    /// is already a member. Add greenlets that have not started (a started
    /// one may run to completion while this waits).
    ///
    /// # Errors
    ///
    /// As [`spawn`](Pool::spawn).
    ///
    /// # Switches
    ///
    /// While the pool is full.
    ///
    /// # Panics
    ///
    /// Inside a hub callback when it has to wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let pool = greenlet::pool::Pool::new(1);
    /// let g = greenlet::spawn(|| ());
    /// pool.add(&g).unwrap();
    /// assert!(pool.contains(&g) && pool.full());
    /// # });
    /// ```
    #[track_caller]
    pub fn add<T: 'static, D: 'static>(&self, greenlet: &Greenlet<T, D>) -> Result<(), WaitError> {
        if self.contains(greenlet) {
            return Ok(());
        }
        let slot = self.inner().acquire(None, None, "Pool::add")?;
        if self.contains(greenlet) {
            return Ok(()); // added by someone else meanwhile; slot returns
        }
        slot.fill(greenlet);
        Ok(())
    }

    /// [`add`](Pool::add), waiting at most `timeout` for a slot (gevent's
    /// `add(greenlet, timeout=t)`, whose `PoolFull` is `Elapsed` here).
    ///
    /// # Errors
    ///
    /// As [`add`](Pool::add), and [`WaitError::Elapsed`] when `timeout`
    /// passes first; the pool is unchanged then.
    ///
    /// # Switches
    ///
    /// While the pool is full.
    ///
    /// # Panics
    ///
    /// Inside a hub callback when it has to wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use std::time::Duration;
    /// let pool = greenlet::pool::Pool::new(1);
    /// pool.spawn(|| greenlet::sleep(Duration::from_secs(60))).unwrap();
    /// let g = greenlet::spawn(|| ());
    /// assert!(pool.add_timeout(&g, Duration::from_millis(5)).is_err());
    /// assert!(!pool.contains(&g));
    /// pool.kill().unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn add_timeout<T: 'static, D: 'static>(
        &self,
        greenlet: &Greenlet<T, D>,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        if self.contains(greenlet) {
            return Ok(());
        }
        let deadline = hub::deadline_after(timeout);
        let slot = self
            .inner()
            .acquire(deadline, Some(timeout), "Pool::add_timeout")?;
        if !self.contains(greenlet) {
            slot.fill(greenlet);
        }
        Ok(())
    }

    /// Adds `greenlet` if a slot is free now (gevent's
    /// `add(greenlet, blocking=False)`); `false` when the pool is full
    /// (gevent's `PoolFull`). `true` if it already is a member.
    ///
    /// Does not switch.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let pool = greenlet::pool::Pool::new(1);
    /// let (a, b) = (greenlet::spawn(|| ()), greenlet::spawn(|| ()));
    /// assert!(pool.try_add(&a));
    /// assert!(!pool.try_add(&b));
    /// # });
    /// ```
    pub fn try_add<T: 'static, D: 'static>(&self, greenlet: &Greenlet<T, D>) -> bool {
        if self.contains(greenlet) {
            return true;
        }
        if self.full() {
            return false;
        }
        match self.inner().acquire(None, None, "Pool::try_add") {
            Ok(slot) => {
                slot.fill(greenlet);
                true
            }
            Err(_) => false,
        }
    }

    /// As [`Group::discard`]; frees its slot.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let pool = greenlet::pool::Pool::new(1);
    /// let g = pool.spawn(|| ()).unwrap();
    /// assert!(pool.discard(&g));
    /// assert_eq!(pool.free_count(), 1);
    /// # });
    /// ```
    pub fn discard<T: 'static, D: 'static>(&self, greenlet: &Greenlet<T, D>) -> bool {
        self.group.discard(greenlet)
    }

    /// As [`Group::contains`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let pool = greenlet::pool::Pool::new(1);
    /// let g = pool.spawn(|| ()).unwrap();
    /// assert!(pool.contains(&g));
    /// # });
    /// ```
    pub fn contains<T: 'static, D: 'static>(&self, greenlet: &Greenlet<T, D>) -> bool {
        self.group.contains(greenlet)
    }

    /// As [`Group::len`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// assert_eq!(greenlet::pool::Pool::new(1).len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.group.len()
    }

    /// As [`Group::is_empty`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// assert!(greenlet::pool::Pool::new(1).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.group.is_empty()
    }

    /// As [`Group::iter`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let pool = greenlet::pool::Pool::new(2);
    /// pool.spawn(|| ()).unwrap();
    /// assert_eq!(pool.iter().count(), 1);
    /// # });
    /// ```
    pub fn iter(&self) -> std::vec::IntoIter<Rc<dyn AnyGreenlet>> {
        self.group.iter()
    }

    /// As [`Group::join`].
    ///
    /// # Errors
    ///
    /// As [`Group::join`].
    ///
    /// # Switches
    ///
    /// While the pool is not empty.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let pool = greenlet::pool::Pool::new(2);
    /// pool.spawn(|| ()).unwrap();
    /// pool.join(Some(std::time::Duration::from_secs(1)), false).unwrap();
    /// assert!(pool.is_empty());
    /// # });
    /// ```
    #[track_caller]
    pub fn join(&self, timeout: Option<Duration>, raise_error: bool) -> Result<(), GreenletError> {
        self.inner().join(timeout, raise_error, "Pool::join")
    }

    /// As [`Group::kill`].
    ///
    /// # Errors
    ///
    /// As [`Group::kill`].
    ///
    /// # Switches
    ///
    /// Until the members are dead.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let pool = greenlet::pool::Pool::new(2);
    /// pool.spawn(|| greenlet::sleep(std::time::Duration::from_secs(60))).unwrap();
    /// pool.kill().unwrap();
    /// assert_eq!(pool.free_count(), 2);
    /// # });
    /// ```
    #[track_caller]
    pub fn kill(&self) -> Result<(), WaitError> {
        self.inner().kill(KillOptions::new(), "Pool::kill")
    }

    /// As [`Group::kill_with`].
    ///
    /// # Errors
    ///
    /// As [`Group::kill_with`].
    ///
    /// # Switches
    ///
    /// When blocking, until the members are dead.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::KillOptions;
    /// let pool = greenlet::pool::Pool::new(2);
    /// pool.spawn(|| greenlet::sleep(std::time::Duration::from_secs(60))).unwrap();
    /// pool.kill_with(KillOptions::new().timeout(std::time::Duration::from_secs(1))).unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn kill_with(&self, options: KillOptions) -> Result<(), WaitError> {
        self.inner().kill(options, "Pool::kill")
    }

    /// As [`Group::killone`].
    ///
    /// # Errors
    ///
    /// As [`Greenlet::kill`].
    ///
    /// # Switches
    ///
    /// Until it is dead.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let pool = greenlet::pool::Pool::new(2);
    /// let g = pool.spawn(|| greenlet::sleep(std::time::Duration::from_secs(60))).unwrap();
    /// pool.killone(&g).unwrap();
    /// assert!(g.is_dead());
    /// # });
    /// ```
    #[track_caller]
    pub fn killone<T: 'static, D: 'static>(
        &self,
        greenlet: &Greenlet<T, D>,
    ) -> Result<(), WaitError> {
        self.inner().killone(greenlet, KillOptions::new())
    }

    /// As [`Group::killone_with`].
    ///
    /// # Errors
    ///
    /// As [`Greenlet::kill_with_options`].
    ///
    /// # Switches
    ///
    /// Unless `nowait`, until it is dead (or the timeout passes).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::KillOptions;
    /// let pool = greenlet::pool::Pool::new(1);
    /// let g = pool.spawn(|| greenlet::sleep(std::time::Duration::from_secs(60))).unwrap();
    /// pool.killone_with(&g, KillOptions::new().timeout(std::time::Duration::from_secs(1)))
    ///     .unwrap();
    /// assert!(g.is_dead());
    /// # });
    /// ```
    #[track_caller]
    pub fn killone_with<T: 'static, D: 'static>(
        &self,
        greenlet: &Greenlet<T, D>,
        options: KillOptions,
    ) -> Result<(), WaitError> {
        self.inner().killone(greenlet, options)
    }

    /// Runs `f` in the pool and waits for its result (gevent's `apply`).
    ///
    /// Called by a member of this pool, it runs `f` inline, in the caller,
    /// as gevent does: waiting for a slot of its own pool could deadlock
    /// (a pool of one whose member applies). A panic in `f` then unwinds
    /// the caller.
    ///
    /// # Errors
    ///
    /// How the greenlet failed (panic, kill), or the wait for a slot.
    ///
    /// # Switches
    ///
    /// Until `f` has run (inline: only if `f` switches).
    ///
    /// # Panics
    ///
    /// As [`spawn`](Pool::spawn).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let pool = greenlet::pool::Pool::new(2);
    /// assert_eq!(pool.apply(|| 7).unwrap(), 7);
    /// # });
    /// ```
    #[track_caller]
    pub fn apply<F, T>(&self, f: F) -> Result<T, GreenletError>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        if self.inner().has_current() {
            return Ok(f());
        }
        self.spawn(f)?.take()
    }

    /// Runs `f` in the pool without waiting, even when it is full (gevent's
    /// `apply_async`). When a slot is free, `f` runs in a new member
    /// greenlet, returned (its value is `Ok(f())`; it takes the slot at
    /// once, as gevent's `spawn` does). When the pool is full, the returned
    /// greenlet is a helper (not a member) that waits for a slot, runs `f`
    /// as a member, and returns [`apply`](Pool::apply)'s result. Either
    /// way [`get_flat`](Greenlet::get_flat) gives `f`'s value or how it
    /// failed. Killing the pool kills `f`'s member greenlet once it runs;
    /// kill the returned one to cancel a call still waiting for a slot.
    ///
    /// Does not switch.
    ///
    /// # Panics
    ///
    /// As [`spawn`](crate::spawn).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let pool = greenlet::pool::Pool::new(1);
    /// let a = pool.apply_async(|| 1);
    /// let b = pool.apply_async(|| 2);
    /// assert_eq!(a.get_flat::<i32, greenlet::GreenletError>().unwrap(), 1);
    /// assert_eq!(b.take().unwrap().unwrap(), 2);
    /// # });
    /// ```
    #[track_caller]
    pub fn apply_async<F, T>(&self, f: F) -> Greenlet<Result<T, GreenletError>>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        // gevent's `_apply_async_use_greenlet()`: a helper only when full.
        if !self.full() {
            let g = crate::spawn(move || Ok(f()));
            // A slot is free, so this reserves it without waiting.
            if let Ok(slot) = self.inner().acquire(None, None, "Pool::apply_async") {
                slot.fill(&g);
            }
            return g;
        }
        let pool = self.clone();
        crate::spawn(move || pool.apply(f))
    }

    /// Applies `f` to every item in the pool (at most `size` at a time)
    /// and returns the results in input order (gevent's `map`).
    ///
    /// # Errors
    ///
    /// The first failure in input order (the other calls go on running
    /// in the pool), or the wait for a slot.
    ///
    /// # Switches
    ///
    /// Until every call has finished.
    ///
    /// # Panics
    ///
    /// As [`spawn`](Pool::spawn).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let pool = greenlet::pool::Pool::new(3);
    /// let lens = pool.map(|s: &str| s.len(), ["a", "bb", "ccc"]).unwrap();
    /// assert_eq!(lens, [1, 2, 3]);
    /// # });
    /// ```
    #[track_caller]
    pub fn map<I, F, R>(&self, f: F, items: I) -> Result<Vec<R>, GreenletError>
    where
        I: IntoIterator,
        I::Item: 'static,
        F: Fn(I::Item) -> R + 'static,
        R: 'static,
    {
        let f = Rc::new(f);
        let mut running = Vec::new();
        for item in items {
            let f = Rc::clone(&f);
            running.push(self.spawn(move || f(item))?);
        }
        running.iter().map(Greenlet::take).collect()
    }

    /// Like [`map`](Pool::map), lazily: an iterator of the results in
    /// input order, calls running at most `size` at a time (gevent's
    /// `imap`). Calls are started as the iterator is advanced.
    ///
    /// # Switches
    ///
    /// Each `next`, until the next result in order is there.
    ///
    /// # Panics
    ///
    /// As [`spawn`](Pool::spawn), from `next`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use std::time::Duration;
    /// let pool = greenlet::pool::Pool::new(3);
    /// let slow_first = pool.imap(
    ///     |ms: u64| { greenlet::sleep(Duration::from_millis(ms)); ms },
    ///     [20, 1, 5],
    /// );
    /// let out: Vec<u64> = slow_first.map(Result::unwrap).collect();
    /// assert_eq!(out, [20, 1, 5]);
    /// # });
    /// ```
    pub fn imap<I, F, R>(&self, f: F, items: I) -> IMap<I::IntoIter, R>
    where
        I: IntoIterator,
        I::Item: 'static,
        F: Fn(I::Item) -> R + 'static,
        R: 'static,
    {
        IMap::new(self, f, items.into_iter(), true)
    }

    /// Like [`imap`](Pool::imap), with the results in completion order
    /// (gevent's `imap_unordered`).
    ///
    /// # Switches
    ///
    /// Each `next`, until some call has finished.
    ///
    /// # Panics
    ///
    /// As [`spawn`](Pool::spawn), from `next`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use std::time::Duration;
    /// let pool = greenlet::pool::Pool::new(3);
    /// let done = pool.imap_unordered(
    ///     |ms: u64| { greenlet::sleep(Duration::from_millis(ms)); ms },
    ///     [30, 1, 10],
    /// );
    /// let out: Vec<u64> = done.map(Result::unwrap).collect();
    /// assert_eq!(out, [1, 10, 30]);
    /// # });
    /// ```
    pub fn imap_unordered<I, F, R>(&self, f: F, items: I) -> IMap<I::IntoIter, R>
    where
        I: IntoIterator,
        I::Item: 'static,
        F: Fn(I::Item) -> R + 'static,
        R: 'static,
    {
        IMap::new(self, f, items.into_iter(), false)
    }
}

/// The iterator of [`Pool::imap`] and [`Pool::imap_unordered`]: yields
/// each call's result, or how it failed. Dropping it early leaves the calls
/// already started running in the pool (kill the pool to stop them); the
/// rest of the input is not consumed.
pub struct IMap<I: Iterator, R: 'static> {
    pool: Pool,
    f: Rc<dyn Fn(I::Item) -> R>,
    items: I,
    running: VecDeque<Greenlet<R>>,
    ordered: bool,
}

impl<I: Iterator, R> fmt::Debug for IMap<I, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IMap")
            .field("running", &self.running.len())
            .field("ordered", &self.ordered)
            .finish()
    }
}

impl<I, R> IMap<I, R>
where
    I: Iterator,
    I::Item: 'static,
    R: 'static,
{
    fn new(pool: &Pool, f: impl Fn(I::Item) -> R + 'static, items: I, ordered: bool) -> Self {
        IMap {
            pool: pool.clone(),
            f: Rc::new(f),
            items,
            running: VecDeque::new(),
            ordered,
        }
    }

    fn start(&mut self, item: I::Item) -> Result<(), WaitError> {
        let f = Rc::clone(&self.f);
        let g = self.pool.spawn(move || f(item))?;
        self.running.push_back(g);
        Ok(())
    }

    /// Starts calls while slots are free, and one (waiting for a slot) if
    /// none runs.
    fn top_up(&mut self) -> Result<(), WaitError> {
        while self.pool.free_count() > 0 {
            match self.items.next() {
                Some(item) => self.start(item)?,
                None => return Ok(()),
            }
        }
        if self.running.is_empty()
            && let Some(item) = self.items.next()
        {
            self.start(item)?;
        }
        Ok(())
    }
}

impl<I, R> Iterator for IMap<I, R>
where
    I: Iterator,
    I::Item: 'static,
    R: 'static,
{
    type Item = Result<R, GreenletError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Err(e) = self.top_up() {
            return Some(Err(e.into()));
        }
        let g = if self.ordered {
            self.running.pop_front()?
        } else {
            if self.running.is_empty() {
                return None;
            }
            let first = crate::wait_with(&self.running, WaitOptions::new().count(1));
            let idx = match first {
                Ok(done) => {
                    let done = done[0].clone();
                    self.running.iter().position(|g| *g == done).unwrap_or(0)
                }
                Err(e) => return Some(Err(e.into())),
            };
            self.running.remove(idx)?
        };
        Some(g.take())
    }
}
