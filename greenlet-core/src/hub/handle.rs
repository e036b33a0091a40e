//! [`HubHandle`]: the one `Send` way into a hub from other threads.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::{Hub, with_hub};

/// State shared with [`HubHandle`]s on other threads.
pub(super) struct Shared {
    posts: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
    pending: AtomicBool,
    poller: Mutex<Option<Arc<polling::Poller>>>,
    pub(super) closed: AtomicBool,
}

impl Shared {
    fn notify(&self) {
        let poller = self
            .poller
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(p) = poller.as_ref() {
            // Failing to notify leaves the post queued for the next wake-up.
            let _ = p.notify();
        }
    }
}

impl Hub {
    /// `true` while a handle exists or a post is waiting.
    pub(super) fn handles_alive(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|s| Arc::strong_count(s) > 1 || s.pending.load(Ordering::Acquire))
    }

    /// `true` if posts are queued and not yet taken.
    pub(super) fn posts_pending(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|s| s.pending.load(Ordering::Acquire))
    }

    /// Moves queued posts into the ready queue.
    #[inline(always)]
    pub(super) fn take_posts(&mut self) {
        if let Some(shared) = &self.shared {
            if shared.pending.load(Ordering::Relaxed) {
                self.take_posts_slow();
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn take_posts_slow(&mut self) {
        let Some(shared) = &self.shared else { return };
        if !shared.pending.swap(false, Ordering::AcqRel) {
            return;
        }
        let posts = std::mem::take(
            &mut *shared
                .posts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
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
/// never gets [`LoopExit`](crate::LoopExit): a post may still come.
///
/// # Examples
///
/// ```
/// use greenlet_core::hub;
/// use std::time::Duration;
///
/// let h = hub::handle();
/// let worker = std::thread::spawn(move || {
///     h.post(|| println!("runs on the hub's thread")).unwrap();
/// });
/// worker.join().unwrap();
/// hub::join(); // runs the posted callback, then returns once the handle is gone
/// ```
#[derive(Clone)]
pub struct HubHandle {
    shared: Arc<Shared>,
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

impl HubHandle {
    /// Queues `f` to run on the hub's thread and wakes the hub.
    ///
    /// # Errors
    ///
    /// [`HubClosed`] if the hub is gone; `f` is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = greenlet_core::hub::handle();
    /// h.post(|| ()).unwrap();
    /// drop(h);
    /// greenlet_core::hub::join();
    /// ```
    pub fn post(&self, f: impl FnOnce() + Send + 'static) -> Result<(), HubClosed> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(HubClosed);
        }
        self.shared
            .posts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Box::new(f));
        self.shared.pending.store(true, Ordering::Release);
        self.shared.notify();
        Ok(())
    }
}

/// A thread-safe handle to this thread's hub.
///
/// # Panics
///
/// If the OS refuses to create the poller (out of file descriptors).
///
/// # Examples
///
/// ```
/// let handle = greenlet_core::hub::handle();
/// std::thread::spawn(move || handle.post(|| ()).unwrap()).join().unwrap();
/// greenlet_core::hub::join();
/// ```
pub fn handle() -> HubHandle {
    with_hub(|h| {
        if h.shared.is_none() {
            let poller = Arc::clone(
                h.reactor
                    .poller()
                    .expect("hub::handle: cannot create the poller"),
            );
            h.shared = Some(Arc::new(Shared {
                posts: Mutex::new(Vec::new()),
                pending: AtomicBool::new(false),
                poller: Mutex::new(Some(poller)),
                closed: AtomicBool::new(false),
            }));
        }
        HubHandle {
            shared: Arc::clone(h.shared.as_ref().expect("created just above")),
        }
    })
}

/// Re-creates the poller after `fork()` in the child (see [`crate::reinit`]).
pub(crate) fn reinit_poller() -> std::io::Result<()> {
    with_hub(|h| {
        let new = h.reactor.reinit()?;
        if let Some(shared) = &h.shared {
            *shared
                .poller
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = new;
            // Posts queued by parent threads are meaningless here.
            shared
                .posts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clear();
            shared.pending.store(false, Ordering::Release);
        }
        Ok(())
    })
}
