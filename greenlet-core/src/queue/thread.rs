//! [`thread_channel`]: an unbounded channel whose ends work from OS threads
//! and from greenlets.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::hub::{self, HubHandle, TimerGuard, Waker};

/// A greenlet blocked in `recv`, woken through its hub's [`HubHandle`].
struct GreenWaiter {
    id: u64,
    handle: HubHandle,
    waker: Waker,
}

struct State<T> {
    items: VecDeque<T>,
    senders: usize,
    receiver: bool,
    /// Greenlets blocked in `recv` (on any thread's hub), first come first.
    green: VecDeque<GreenWaiter>,
    next_id: u64,
    /// OS threads blocked in `recv` (outside any hub scope).
    thread_waiters: usize,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    cond: Condvar,
    /// `hub::fork_count()` when the channel was made: in a forked child the
    /// count differs, and the lock is never taken there (a sender thread of
    /// the parent may have held it at fork time, and the state it guards
    /// may be half-updated).
    forks: u64,
}

impl<T> Shared<T> {
    /// `None` in a forked child (the channel is disconnected there).
    fn lock(&self) -> Option<MutexGuard<'_, State<T>>> {
        if hub::fork_count() != self.forks {
            return None;
        }
        // A panic while holding the lock leaves the state consistent (every
        // critical section is a few field updates).
        Some(self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Called by a dropped end in a forked child: the channel (and the
    /// items in it) must never be dropped there; its lock may be held.
    fn leak(self: &Arc<Self>) {
        std::mem::forget(Arc::clone(self));
    }
}

impl<T> State<T> {
    /// Picks the waiter to wake for one item: the first blocked greenlet
    /// (returned, to be posted outside the lock), else the blocked threads.
    fn wake_one(&mut self, cond: &Condvar) -> Option<GreenWaiter> {
        if let Some(w) = self.green.pop_front() {
            return Some(w);
        }
        if self.thread_waiters > 0 {
            // All: a thread that timed out meanwhile must not swallow it.
            cond.notify_all();
        }
        None
    }
}

fn post_wake(w: GreenWaiter) {
    let waker = w.waker;
    // A closed hub has no greenlet left to wake.
    let _ = w.handle.post(move || hub::wake(waker));
}

/// Creates an unbounded channel that crosses threads: the
/// [`ThreadSender`] is `Send + Sync + Clone`, the [`ThreadReceiver`] is
/// `Send`, and both work from plain OS threads and from greenlets, so
/// native threads can feed greenlets and greenlets can answer them.
///
/// A greenlet blocked in [`recv`](ThreadReceiver::recv) blocks only
/// itself: a send from another thread wakes its hub through the
/// [`HubHandle`] post path. Outside a hub scope, `recv` blocks the OS
/// thread (a condition variable). Sending never blocks.
///
/// Disconnection is std's `mpsc`: `recv` fails with [`RecvError`] once
/// every sender is dropped and the channel is drained; `send` fails with
/// [`SendError`] (the item back) once the receiver is dropped.
///
/// While a greenlet waits in `recv`, its hub holds a [`HubHandle`], so the
/// native stack never gets [`LoopExit`](crate::LoopExit) there: a sender
/// may still send. Waiting on a channel whose only senders are held by
/// the waiting thread itself therefore blocks until they are dropped, as
/// with std's channels.
///
/// After [`fork`](crate::fork) (or any `fork(2)`), a channel made before it
/// is disconnected in the child: `send` fails, `recv` and `try_recv` report
/// disconnection, and its ends are leaked there, never dropped. A sender
/// thread of the parent may have held the channel's lock at fork time and
/// does not exist in the child. The parent's channel is unaffected.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// use greenlet::queue::thread_channel;
///
/// greenlet::run(|| {
///     let (to_green, from_thread) = thread_channel::<u32>();
///     let (to_thread, from_green) = thread_channel::<u32>();
///     let worker = std::thread::spawn(move || {
///         for i in 0..3 {
///             to_green.send(i).unwrap();
///         }
///         drop(to_green);
///         from_green.iter().sum::<u32>() // a plain thread receiving
///     });
///     let doubler = greenlet::spawn(move || {
///         for i in from_thread.iter() {
///             to_thread.send(i * 2).unwrap();
///         }
///     });
///     doubler.join().unwrap();
///     assert_eq!(worker.join().unwrap(), 6);
/// });
/// ```
pub fn thread_channel<T: Send>() -> (ThreadSender<T>, ThreadReceiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            senders: 1,
            receiver: true,
            green: VecDeque::new(),
            next_id: 0,
            thread_waiters: 0,
        }),
        cond: Condvar::new(),
        forks: hub::fork_count(),
    });
    (
        ThreadSender {
            shared: Arc::clone(&shared),
        },
        ThreadReceiver { shared },
    )
}

/// The sending end of a [`thread_channel`]: `Send + Sync`, clone it for
/// more senders.
pub struct ThreadSender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> fmt::Debug for ThreadSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadSender").finish_non_exhaustive()
    }
}

impl<T> Clone for ThreadSender<T> {
    fn clone(&self) -> Self {
        if let Some(mut st) = self.shared.lock() {
            st.senders += 1;
        }
        ThreadSender {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> Drop for ThreadSender<T> {
    fn drop(&mut self) {
        let woken: Vec<GreenWaiter> = {
            let Some(mut st) = self.shared.lock() else {
                self.shared.leak();
                return;
            };
            st.senders -= 1;
            if st.senders > 0 {
                return;
            }
            if st.thread_waiters > 0 {
                self.shared.cond.notify_all();
            }
            st.green.drain(..).collect()
        };
        woken.into_iter().for_each(post_wake);
    }
}

impl<T> ThreadSender<T> {
    /// Sends `item`; never blocks. Works from any thread, greenlet or not.
    ///
    /// # Errors
    ///
    /// [`SendError`] with the item when the receiver was dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// let (tx, rx) = greenlet::queue::thread_channel();
    /// tx.send(1).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// drop(rx);
    /// assert_eq!(tx.send(2), Err(greenlet::queue::SendError(2)));
    /// ```
    pub fn send(&self, item: T) -> Result<(), SendError<T>> {
        let woken = {
            let Some(mut st) = self.shared.lock() else {
                return Err(SendError(item));
            };
            if !st.receiver {
                return Err(SendError(item));
            }
            st.items.push_back(item);
            st.wake_one(&self.shared.cond)
        };
        if let Some(w) = woken {
            post_wake(w);
        }
        Ok(())
    }
}

/// The receiving end of a [`thread_channel`]: `Send`, usable from a plain
/// OS thread (blocks the thread) or from greenlets (blocks only the
/// calling greenlet).
pub struct ThreadReceiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> fmt::Debug for ThreadReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadReceiver").finish_non_exhaustive()
    }
}

impl<T> Drop for ThreadReceiver<T> {
    fn drop(&mut self) {
        let items = {
            let Some(mut st) = self.shared.lock() else {
                self.shared.leak();
                return;
            };
            st.receiver = false;
            std::mem::take(&mut st.items)
        };
        drop(items); // outside the lock
    }
}

/// Unregisters a blocked greenlet on every way out of the wait; if it had
/// been picked to take an item and leaves without one, the next waiter is
/// woken instead (the wake-up is not lost).
struct GreenGuard<'a, T> {
    shared: &'a Shared<T>,
    id: u64,
}

impl<T> Drop for GreenGuard<'_, T> {
    fn drop(&mut self) {
        let woken = {
            let Some(mut st) = self.shared.lock() else {
                return;
            };
            match st.green.iter().position(|w| w.id == self.id) {
                Some(pos) => {
                    st.green.remove(pos);
                    None
                }
                // Picked by a sender: pass the wake-up on if an item waits.
                None if !st.items.is_empty() => st.wake_one(&self.shared.cond),
                None => None,
            }
        };
        if let Some(w) = woken {
            post_wake(w);
        }
    }
}

impl<T> ThreadReceiver<T> {
    /// Takes the next item, waiting until one is sent.
    ///
    /// Inside a hub scope only the calling greenlet (or the native stack,
    /// running the hub meanwhile) waits; elsewhere the OS thread blocks.
    ///
    /// # Errors
    ///
    /// [`RecvError`] once every sender is dropped and the channel is empty.
    ///
    /// # Switches
    ///
    /// Inside a hub scope, while the channel is empty. A kill or
    /// [`Timeout`](crate::Timeout) unwinds out of it leaving no trace.
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
    /// let (tx, rx) = greenlet::queue::thread_channel();
    /// std::thread::spawn(move || tx.send("from a thread").unwrap());
    /// assert_eq!(rx.recv(), Ok("from a thread"));
    /// assert_eq!(rx.recv(), Err(greenlet::queue::RecvError)); // sender gone
    /// # });
    /// ```
    #[track_caller]
    pub fn recv(&self) -> Result<T, RecvError> {
        self.recv_until(None).map_err(|_| RecvError)
    }

    /// [`recv`](ThreadReceiver::recv), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] when `timeout` passes first,
    /// [`RecvTimeoutError::Disconnected`] as [`RecvError`].
    ///
    /// # Switches
    ///
    /// As [`recv`](ThreadReceiver::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::queue::{RecvTimeoutError, thread_channel};
    /// let (_tx, rx) = thread_channel::<u8>();
    /// let r = rx.recv_timeout(std::time::Duration::from_millis(5));
    /// assert_eq!(r, Err(RecvTimeoutError::Timeout));
    /// # });
    /// ```
    #[track_caller]
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.recv_until(Some(timeout))
    }

    /// Takes the next item if one is there; never blocks.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`], or [`TryRecvError::Disconnected`] once
    /// every sender is dropped and the channel is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::queue::{TryRecvError, thread_channel};
    /// let (tx, rx) = thread_channel::<u8>();
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// drop(tx);
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    /// ```
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let Some(mut st) = self.shared.lock() else {
            return Err(TryRecvError::Disconnected);
        };
        match st.items.pop_front() {
            Some(item) => Ok(item),
            None if st.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// An iterator that [`recv`](ThreadReceiver::recv)s until every sender
    /// is dropped and the channel is drained.
    ///
    /// # Switches
    ///
    /// Each `next` as [`recv`](ThreadReceiver::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// let (tx, rx) = greenlet::queue::thread_channel();
    /// std::thread::spawn(move || (0..3).for_each(|i| tx.send(i).unwrap()));
    /// assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2]); // a plain thread
    /// ```
    pub fn iter(&self) -> ThreadIter<'_, T> {
        ThreadIter { rx: self }
    }

    #[track_caller]
    fn recv_until(&self, timeout: Option<Duration>) -> Result<T, RecvTimeoutError> {
        if hub::in_scope() {
            self.recv_green(timeout)
        } else {
            self.recv_thread(timeout)
        }
    }

    fn recv_thread(&self, timeout: Option<Duration>) -> Result<T, RecvTimeoutError> {
        // An OS thread without a hub: std's clock and a condition variable.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let Some(mut st) = self.shared.lock() else {
            return Err(RecvTimeoutError::Disconnected);
        };
        loop {
            if let Some(item) = st.items.pop_front() {
                return Ok(item);
            }
            if st.senders == 0 {
                return Err(RecvTimeoutError::Disconnected);
            }
            st.thread_waiters += 1;
            st = match deadline {
                None => self
                    .shared
                    .cond
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        st.thread_waiters -= 1;
                        return Err(RecvTimeoutError::Timeout);
                    }
                    self.shared
                        .cond
                        .wait_timeout(st, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
            st.thread_waiters -= 1;
        }
    }

    #[track_caller]
    fn recv_green(&self, timeout: Option<Duration>) -> Result<T, RecvTimeoutError> {
        const WHAT: &str = "ThreadReceiver::recv";
        let deadline = timeout.and_then(hub::deadline_after);
        loop {
            let w = hub::current_waker(WHAT);
            let id = {
                let Some(mut st) = self.shared.lock() else {
                    return Err(RecvTimeoutError::Disconnected);
                };
                if let Some(item) = st.items.pop_front() {
                    return Ok(item);
                }
                if st.senders == 0 {
                    return Err(RecvTimeoutError::Disconnected);
                }
                let id = st.next_id;
                st.next_id += 1;
                st.green.push_back(GreenWaiter {
                    id,
                    handle: hub::handle(),
                    waker: w,
                });
                id
            };
            let guard = GreenGuard {
                shared: &self.shared,
                id,
            };
            let timer = TimerGuard::wake_at(deadline, true, w);
            // The handle registered above keeps the hub from LoopExit while
            // we wait (a sender may still send), so `park` returns `Ok`.
            let parked = hub::park(w, WHAT);
            let timed_out = timer.fired();
            drop(timer);
            if let Some(mut st) = self.shared.lock()
                && let Some(item) = st.items.pop_front()
            {
                // Our own wake-up (or one we may take: we are woken).
                st.green.retain(|g| g.id != id);
                drop(st);
                std::mem::forget(guard);
                return Ok(item);
            }
            drop(guard); // unregisters (nothing to pass on: no item)
            if timed_out {
                return Err(RecvTimeoutError::Timeout);
            }
            if parked.is_err() {
                // Not expected (see above); never spin on it.
                return Err(RecvTimeoutError::Disconnected);
            }
        }
    }
}

impl<'a, T> IntoIterator for &'a ThreadReceiver<T> {
    type Item = T;
    type IntoIter = ThreadIter<'a, T>;

    fn into_iter(self) -> ThreadIter<'a, T> {
        self.iter()
    }
}

/// The iterator of [`ThreadReceiver::iter`].
#[derive(Debug)]
pub struct ThreadIter<'a, T> {
    rx: &'a ThreadReceiver<T>,
}

impl<T> Iterator for ThreadIter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

/// [`ThreadSender::send`] failed: the receiver is gone. Holds the item.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SendError<T>(pub T);

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending on a closed channel")
    }
}

impl<T> std::error::Error for SendError<T> {}

/// [`ThreadReceiver::recv`] failed: every sender is gone and the channel is
/// empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvError;

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("receiving on an empty and disconnected channel")
    }
}

impl std::error::Error for RecvError {}

/// Why [`ThreadReceiver::try_recv`] returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// No item now.
    Empty,
    /// Every sender is gone and the channel is empty.
    Disconnected,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receiving on an empty channel"),
            TryRecvError::Disconnected => RecvError.fmt(f),
        }
    }
}

impl std::error::Error for TryRecvError {}

/// Why [`ThreadReceiver::recv_timeout`] returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvTimeoutError {
    /// The timeout passed first.
    Timeout,
    /// Every sender is gone and the channel is empty.
    Disconnected,
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.write_str("timed out waiting on a channel"),
            RecvTimeoutError::Disconnected => RecvError.fmt(f),
        }
    }
}

impl std::error::Error for RecvTimeoutError {}
