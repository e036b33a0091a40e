//! [`HubHandle`]: the one `Send` way into a hub from other threads.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::{Hub, with_hub};

/// State shared with [`HubHandle`]s on other threads.
///
/// # Invariants
///
/// * `closed` only goes from `false` to `true`, and while the hub lives it
///   is set under the `posts` lock ([`Hub::close_handles`]); [`HubHandle::post`]
///   checks it under the same lock before pushing. So a post that returned
///   `Ok` is in `posts` before the hub closes, and the close takes it: `Ok`
///   means it runs.
/// * `pending` is set under the lock after a push; the hub clears it before
///   taking the queue.
/// * `handles` counts the live [`HubHandle`]s. The one that drops it to
///   zero wakes the hub unless a post is pending (that post's wake-up is
///   still to come, and the hub re-counts after taking it): a hub that
///   went to wait because a handle was alive learns that it is gone.
/// * After `fork()`, the child never touches this value again: a thread of
///   the parent may have held `posts` at the time. The child sets `closed`
///   (an atomic: lock-free), so old handles there fail without locking, and
///   leaks one strong reference so that the queue (and the closures in it)
///   is never dropped there.
pub(super) struct Shared {
    posts: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
    pending: AtomicBool,
    /// The hub's poller; fixed for the life of this value (a forked child
    /// gets a new `Shared` with its new poller).
    poller: Arc<polling::Poller>,
    pub(super) closed: AtomicBool,
    handles: AtomicUsize,
}

impl Shared {
    fn new(poller: Arc<polling::Poller>) -> Shared {
        Shared {
            posts: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
            poller,
            closed: AtomicBool::new(false),
            handles: AtomicUsize::new(0),
        }
    }

    fn notify(&self) {
        // Failing to notify leaves the post queued for the next wake-up.
        let _ = self.poller.notify();
    }

    fn lock_posts(&self) -> std::sync::MutexGuard<'_, Vec<Box<dyn FnOnce() + Send>>> {
        self.posts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Hub {
    /// `true` while a handle exists or a post is waiting.
    pub(super) fn handles_alive(&self) -> bool {
        self.shared.as_ref().is_some_and(|s| {
            // A closed hub takes no more posts: its handles wake nothing.
            !s.closed.load(Ordering::Acquire)
                && (s.handles.load(Ordering::SeqCst) > 0 || s.pending.load(Ordering::SeqCst))
        })
    }

    /// `true` if posts are queued and not yet taken.
    pub(super) fn posts_pending(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|s| s.pending.load(Ordering::Acquire))
    }

    /// `true` when a post may be queued (a relaxed look, for the switch
    /// path; [`take_posts`](Self::take_posts) takes them).
    #[inline(always)]
    pub(super) fn posts_flagged(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|s| s.pending.load(Ordering::Relaxed))
    }

    /// Moves queued posts into the ready queue.
    #[inline(always)]
    pub(super) fn take_posts(&mut self) {
        if let Some(shared) = &self.shared
            && shared.pending.load(Ordering::Relaxed)
        {
            self.take_posts_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn take_posts_slow(&mut self) {
        let Some(shared) = &self.shared else { return };
        if !shared.pending.swap(false, Ordering::SeqCst) {
            return;
        }
        let posts = std::mem::take(&mut *shared.lock_posts());
        for post in posts {
            self.push_call(post);
        }
    }

    /// Closes the handles: from now on [`HubHandle::post`] fails with
    /// [`HubClosed`]. Posts accepted before are moved to the ready queue, so
    /// the loop that runs next (teardown's) runs them: `Ok` means it runs.
    ///
    /// Call it at the start of teardown (scope end, `hub::destroy`, thread
    /// exit), before the loop runs for the last time.
    pub(super) fn close_handles(&mut self) {
        let Some(shared) = &self.shared else { return };
        let posts = {
            let mut queue = shared.lock_posts();
            shared.closed.store(true, Ordering::Release);
            shared.pending.store(false, Ordering::Release);
            std::mem::take(&mut *queue)
        };
        for post in posts {
            self.push_call(post);
        }
    }
}

/// A `Send + Sync` handle to a hub, for other threads (gevent's
/// `loop.run_callback_threadsafe`).
///
/// [`post`](HubHandle::post) queues a closure that runs on the hub's thread
/// as a hub callback (it must not block; spawn a greenlet for that) and wakes
/// the hub if it is waiting. While any handle is alive the hub's native stack
/// never gets [`LoopExit`](crate::LoopExit): a post may still come. Dropping
/// the last handle (on any thread) wakes the hub, so a wait that only a
/// handle kept going ends then.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// use greenlet::hub;
/// use std::time::Duration;
///
/// greenlet::run(|| {
///     let h = hub::handle();
///     let worker = std::thread::spawn(move || {
///         h.post(|| println!("runs on the hub's thread")).unwrap();
///     });
///     worker.join().unwrap();
///     hub::join(); // runs the posted callback, then returns once the handle is gone
/// });
/// ```
pub struct HubHandle {
    shared: Arc<Shared>,
}

impl HubHandle {
    /// A handle on `shared`, counted in `handles`.
    fn counted(shared: Arc<Shared>) -> HubHandle {
        shared.handles.fetch_add(1, Ordering::SeqCst);
        HubHandle { shared }
    }
}

impl Clone for HubHandle {
    fn clone(&self) -> HubHandle {
        HubHandle::counted(Arc::clone(&self.shared))
    }
}

/// The last handle going away wakes the hub: its loop may be waiting only
/// because a handle could still post (a thread that posts and then drops
/// its handle would otherwise leave it waiting for good).
impl Drop for HubHandle {
    fn drop(&mut self) {
        let s = &self.shared;
        if s.handles.fetch_sub(1, Ordering::SeqCst) == 1
            && !s.pending.load(Ordering::SeqCst)
            && !s.closed.load(Ordering::Acquire)
        {
            s.notify();
        }
    }
}

impl fmt::Debug for HubHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubHandle")
            .field("closed", &self.shared.closed.load(Ordering::Relaxed))
            .finish()
    }
}

/// [`HubHandle::post`] failed: the hub's thread has exited or destroyed its hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubClosed;

impl fmt::Display for HubClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the hub is closed")
    }
}

impl std::error::Error for HubClosed {}

/// Tells whether one handle's hub closed it, without keeping the handle
/// alive (a live handle keeps the loop from `LoopExit`). A thread-pool job
/// watches the handle its result is posted through: after
/// [`destroy`](super::destroy) the hub hands out new handles, and the old
/// one refuses the post.
#[derive(Debug, Clone)]
pub(crate) struct ClosedWatch(std::sync::Weak<Shared>);

impl ClosedWatch {
    /// `true` once posts through the watched handle fail.
    pub(crate) fn is_closed(&self) -> bool {
        self.0
            .upgrade()
            .is_none_or(|s| s.closed.load(Ordering::Acquire))
    }

    /// `true` if both watch the same handle.
    pub(crate) fn same(&self, other: &ClosedWatch) -> bool {
        std::sync::Weak::ptr_eq(&self.0, &other.0)
    }
}

impl HubHandle {
    /// A watch on this handle's closing (see [`ClosedWatch`]).
    pub(crate) fn closed_watch(&self) -> ClosedWatch {
        ClosedWatch(Arc::downgrade(&self.shared))
    }

    /// `true` once the hub closed its handles (its scope is ending, or
    /// ended): posts fail from then on.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Queues `f` to run on the hub's thread and wakes the hub.
    ///
    /// `Ok` means `f` runs on the hub: the hub closes its handles when its
    /// scope ends (or it is destroyed, or its thread exits) and runs every
    /// post accepted before that during its teardown. The one exception is
    /// a forked child: posts still queued at `fork()` run only in the
    /// parent (see [`crate::fork`]).
    ///
    /// # Errors
    ///
    /// [`HubClosed`] if the hub is closed; `f` is then dropped on the
    /// calling thread, before this returns.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// greenlet::run(|| {
    ///     let h = greenlet::hub::handle();
    ///     h.post(|| ()).unwrap();
    ///     drop(h);
    ///     greenlet::hub::join();
    /// });
    /// ```
    pub fn post(&self, f: impl FnOnce() + Send + 'static) -> Result<(), HubClosed> {
        // Lock-free fast path; also the only check a forked child makes
        // (the lock may be held by a thread that does not exist there).
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(HubClosed);
        }
        {
            let mut queue = self.shared.lock_posts();
            // Checked under the lock the hub closes under (see `Shared`).
            if self.shared.closed.load(Ordering::Acquire) {
                drop(queue);
                drop(f); // on this thread, outside the lock
                return Err(HubClosed);
            }
            queue.push(Box::new(f));
            self.shared.pending.store(true, Ordering::Release);
        }
        self.shared.notify();
        Ok(())
    }
}

/// A thread-safe handle to this thread's hub.
///
/// # Panics
///
/// Outside a hub scope ([`run`](crate::run)), and if the OS refuses to
/// create the poller (out of file descriptors).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// greenlet::run(|| {
///     let handle = greenlet::hub::handle();
///     std::thread::spawn(move || handle.post(|| ()).unwrap()).join().unwrap();
///     greenlet::hub::join();
/// });
/// ```
#[track_caller]
pub fn handle() -> HubHandle {
    if !super::in_scope() {
        super::no_scope("hub::handle");
    }
    with_hub(|h| {
        if h.shared.is_none() {
            let poller = Arc::clone(
                h.reactor
                    .poller()
                    .expect("hub::handle: cannot create the poller"),
            );
            h.shared = Some(Arc::new(Shared::new(poller)));
        }
        HubHandle::counted(Arc::clone(h.shared.as_ref().expect("created just above")))
    })
}

/// Re-creates the poller after `fork()` in the child (see [`crate::reinit`]).
///
/// Takes no lock that existed at fork time: the inherited [`Shared`] (its
/// posts mutex may be held by a parent thread that does not exist here) is
/// closed with an atomic store and leaked, never locked or dropped. Posts
/// queued in it are neither run nor dropped in the child. The next
/// [`handle`] call creates a fresh one around the new poller.
pub(crate) fn reinit_poller() -> std::io::Result<()> {
    if let Some(old) = with_hub(|h| h.shared.take()) {
        old.closed.store(true, Ordering::Release);
        // Never dropped here: see `Shared`.
        std::mem::forget(old);
    }
    with_hub(|h| h.reactor.reinit()).map(drop)
}

impl Hub {
    /// The state shared with handles, created (with the poller) on first
    /// use; `None` if the OS refuses the poller. For the dump signal, which
    /// keeps only a `Weak` to it (so it does not keep the hub alive).
    pub(super) fn ensure_shared(&mut self) -> Option<Arc<Shared>> {
        if self.shared.is_none() {
            let poller = Arc::clone(self.reactor.poller().ok()?);
            self.shared = Some(Arc::new(Shared::new(poller)));
        }
        self.shared.clone()
    }
}

impl HubHandle {
    /// A handle around shared state kept elsewhere (the dump signal).
    pub(super) fn from_shared(shared: Arc<Shared>) -> HubHandle {
        HubHandle::counted(shared)
    }
}
