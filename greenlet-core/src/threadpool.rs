//! Native threads for blocking work (gevent's `gevent.threadpool`, tokio's
//! `spawn_blocking`): [`ThreadPool`], [`ThreadResult`], [`ThreadError`],
//! the hub's default pool ([`hub::threadpool`]) and
//! the shortcuts [`spawn_blocking`] and [`apply`].
//!
//! # Design
//!
//! * **Who runs what.** A pool owns up to `maxsize` native worker threads,
//!   created lazily when a job arrives and no idle worker can take it, and
//!   reused: an idle worker exits after `idle_timeout` (5 s by default,
//!   gevent's `threadpool_idle_task_timeout`). Jobs beyond `maxsize` wait in
//!   the pool's FIFO queue (tokio's behaviour; gevent's `spawn` blocks the
//!   caller instead).
//! * **Shared state.** `PoolInner` is the only state workers touch: a
//!   `Mutex` around the queue and the thread counts, a `Condvar` idle
//!   workers wait on, and the size settings as atomics. The hub side never
//!   holds that lock across a switch.
//! * **Results.** Each job has a `Send` slot (`Arc<Mutex<Slot<T>>>`) the
//!   worker fills, and a hub-local side (`Local`: ready flag, waiting
//!   greenlets, links) registered in this thread's `JOBS` table under a
//!   unique id. After filling the slot, the worker posts `complete(id)`
//!   through the caller's [`HubHandle`](crate::hub::HubHandle): the hub marks
//!   the job ready and wakes its waiters and links. The job holds that
//!   handle until it is done, so a native stack waiting for it never gets
//!   `LoopExit`. A greenlet waiting on the job blocks only itself.
//! * **Kill and timeout.** A waiter that unwinds (kill, [`Timeout`](crate::Timeout))
//!   unregisters its waker; dropping the [`ThreadResult`] removes the `JOBS`
//!   entry, so the later `complete(id)` finds nothing and the value is
//!   dropped with the slot (on the worker thread, or on the hub if the post
//!   ran last). The job itself cannot be interrupted: it runs to its end.
//! * **Panics** in a job are caught on the worker and come back as
//!   [`ThreadError::Panicked`] with the message and location; they are not
//!   printed (gevent keeps the exception in the result too).
//! * **Shutdown.** Dropping a pool (the hub's own at the end of its scope)
//!   wakes idle workers, which exit at once; jobs still queued get
//!   [`ThreadError::Cancelled`]; running jobs finish on their thread, which
//!   then exits. Nothing joins a running job, so scope end never hangs on
//!   one. The hub's handles close when its scope starts ending, so the
//!   worker's post cannot wake a greenlet's destructor that waits on a pool
//!   *during* scope end: such a wait looks at the slot every millisecond
//!   instead.
//! * **fork.** Only the forking thread exists in the child. Each pool
//!   remembers the pid it was made in; used in another process, it leaks
//!   its old state without touching its lock (a vanished worker may hold
//!   it) and starts afresh with the same settings. Jobs pending at the fork
//!   fail in the child with [`ThreadError::Forked`] (their threads are gone).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::greenlet::error::{Elapsed, LoopExit, PanicError};
use crate::greenlet::state::LinkId;
use crate::greenlet::switch;
use crate::hub::{self, TimerGuard, Waker};
use crate::waiter::Waitable;

/// Size of the hub's default pool (gevent's `threadpool_size`).
pub const DEFAULT_MAXSIZE: usize = 10;
/// How long an idle worker waits for a job before it exits (gevent's
/// `threadpool_idle_task_timeout`).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a wait looks at its job while the hub's handles are closed.
const POLL_CLOSED: Duration = Duration::from_millis(1);

// ================================================================ errors

/// Why a job on a [`ThreadPool`] gave no value.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// use greenlet::threadpool::{ThreadError, ThreadPool};
///
/// greenlet::run(|| {
///     let pool = ThreadPool::new(1);
///     let err = pool.apply(|| -> u8 { panic!("boom") }).unwrap_err();
///     match err {
///         ThreadError::Panicked(p) => assert_eq!(p.message(), "boom"),
///         other => panic!("unexpected {other}"),
///     }
/// });
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ThreadError {
    /// The job panicked; the message and location are kept.
    Panicked(PanicError),
    /// The pool was dropped before the job started.
    Cancelled,
    /// No worker thread could be started (the OS error of `pthread_create`).
    Spawn(Arc<io::Error>),
    /// The wait's timeout passed first (the job keeps running).
    Timeout(Elapsed),
    /// On the native stack, nothing could ever finish the wait.
    LoopExit(LoopExit),
    /// The process forked while the job was pending: in the child, its
    /// thread does not exist.
    Forked,
    /// The value was moved out already ([`ThreadResult::take`]).
    ValueTaken,
}

impl fmt::Display for ThreadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThreadError::Panicked(p) => write!(f, "the thread pool job panicked: {p}"),
            ThreadError::Cancelled => {
                f.write_str("the thread pool was dropped before the job started")
            }
            ThreadError::Spawn(e) => write!(f, "cannot start a thread pool worker: {e}"),
            ThreadError::Timeout(e) => write!(f, "waiting for the thread pool job: {e}"),
            ThreadError::LoopExit(e) => e.fmt(f),
            ThreadError::Forked => {
                f.write_str("the process forked while the job ran; its thread is not in this child")
            }
            ThreadError::ValueTaken => f.write_str("the job's value was already taken"),
        }
    }
}

impl std::error::Error for ThreadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ThreadError::Panicked(p) => Some(p),
            ThreadError::Spawn(e) => Some(&**e),
            ThreadError::Timeout(e) => Some(e),
            ThreadError::LoopExit(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ThreadError> for io::Error {
    /// `ErrorKind::TimedOut` for [`ThreadError::Timeout`], the original
    /// error for [`ThreadError::Spawn`], `ErrorKind::Other` otherwise.
    fn from(e: ThreadError) -> Self {
        match e {
            ThreadError::Timeout(_) => io::Error::new(io::ErrorKind::TimedOut, e),
            ThreadError::Spawn(ref inner) => io::Error::new(inner.kind(), e),
            other => io::Error::other(other),
        }
    }
}

// ================================================================ pool state

/// A job: `None` runs it; `Some(error)` completes it with `error` unrun.
type Task = Box<dyn FnOnce(Option<ThreadError>) + Send>;

/// What workers share (see the module docs).
struct PoolInner {
    /// The process this state belongs to.
    pid: u32,
    /// Process-unique: [`ThreadPool::join`] waiters are kept by it.
    id: u64,
    state: Mutex<PoolState>,
    /// Idle workers wait here.
    work: Condvar,
    maxsize: AtomicUsize,
    idle_timeout_ns: AtomicU64,
}

struct PoolState {
    queue: VecDeque<Task>,
    /// Live worker threads.
    threads: usize,
    /// Workers waiting on `work`.
    idle: usize,
    /// Workers created that have not looked at the queue yet: each will
    /// take a job, like an idle one.
    starting: usize,
    /// Set once, by the pool's `Drop`.
    shutdown: bool,
    /// Jobs queued or running; a job leaves before its result is posted.
    in_flight: usize,
}

impl PoolInner {
    fn new(maxsize: usize, idle_timeout: Duration) -> Arc<PoolInner> {
        Arc::new(PoolInner {
            pid: std::process::id(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            state: Mutex::new(PoolState {
                queue: VecDeque::new(),
                threads: 0,
                idle: 0,
                starting: 0,
                shutdown: false,
                in_flight: 0,
            }),
            work: Condvar::new(),
            maxsize: AtomicUsize::new(maxsize),
            idle_timeout_ns: AtomicU64::new(duration_ns(idle_timeout)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // Jobs run outside the lock: nothing can poison it but our own code.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn idle_timeout(&self) -> Duration {
        Duration::from_nanos(self.idle_timeout_ns.load(Ordering::Relaxed))
    }

    /// A worker's life: run queued jobs; wait for more up to the idle
    /// timeout; exit on timeout, shutdown, or when the pool shrank.
    fn work(self: Arc<Self>) {
        let mut st = self.lock();
        st.starting -= 1;
        loop {
            if let Some(task) = st.queue.pop_front() {
                drop(st);
                task(None);
                st = self.lock();
                continue;
            }
            if st.shutdown || st.threads > self.maxsize.load(Ordering::Relaxed) {
                break;
            }
            st.idle += 1;
            let (guard, waited) = self
                .work
                .wait_timeout(st, self.idle_timeout())
                .unwrap_or_else(PoisonError::into_inner);
            st = guard;
            st.idle -= 1;
            if waited.timed_out() && st.queue.is_empty() {
                break;
            }
        }
        st.threads -= 1;
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

// ================================================================ ThreadPool

/// A bounded pool of native threads that run blocking closures for
/// greenlets (gevent's `ThreadPool`).
///
/// [`spawn`](ThreadPool::spawn) queues a `Send` closure and returns a
/// [`ThreadResult`] to wait on cooperatively: the waiting greenlet blocks,
/// the others keep running. At most [`maxsize`](ThreadPool::maxsize) jobs
/// run at once; threads are created on demand and exit after being idle for
/// [`idle_timeout`](ThreadPool::idle_timeout). Each hub has a default pool,
/// [`hub::threadpool`], created on first use.
///
/// Dropping the pool stops it: idle workers exit at once, queued jobs fail
/// with [`ThreadError::Cancelled`], running jobs finish and their threads
/// then exit (the drop does not wait for them).
///
/// The pool is `Send` but not `Sync`: it can move to another thread and
/// serve greenlets of that thread's hub. After [`fork`](crate::fork), a pool
/// used in the child starts with no thread (see the module docs).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// use greenlet::threadpool::ThreadPool;
///
/// greenlet::run(|| {
///     let pool = ThreadPool::new(4);
///     let job = pool.spawn(|| std::fs::metadata("/").is_ok());
///     let squares = pool.map(1..=4u64, |x| x * x).unwrap();
///     assert_eq!(squares, [1, 4, 9, 16]);
///     assert!(job.take().unwrap());
/// });
/// ```
pub struct ThreadPool {
    inner: RefCell<Arc<PoolInner>>,
    /// The handle the latest job posts its completion through, and whether
    /// jobs may still be in flight whose handle closed meanwhile
    /// (`hub::destroy`): their posts fail, so `join` polls.
    last_handle: RefCell<Option<hub::ClosedWatch>>,
    orphans: Cell<bool>,
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("maxsize", &self.maxsize())
            .field("idle_timeout", &self.idle_timeout())
            .finish_non_exhaustive()
    }
}

impl ThreadPool {
    /// A pool running at most `maxsize` jobs at once. No thread is created
    /// until a job comes.
    ///
    /// # Panics
    ///
    /// If `maxsize` is 0 (such a pool could never run anything).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// greenlet::run(|| {
    ///     let pool = greenlet::threadpool::ThreadPool::new(2);
    ///     assert_eq!(pool.maxsize(), 2);
    ///     assert_eq!(pool.size(), 0); // lazily created
    /// });
    /// ```
    #[track_caller]
    pub fn new(maxsize: usize) -> ThreadPool {
        assert!(maxsize > 0, "ThreadPool::new: maxsize must be at least 1");
        ThreadPool {
            inner: RefCell::new(PoolInner::new(maxsize, DEFAULT_IDLE_TIMEOUT)),
            last_handle: RefCell::new(None),
            orphans: Cell::new(false),
        }
    }

    /// This process's state: after a fork, the inherited one is leaked
    /// (never locked: a thread that no longer exists may hold its lock) and
    /// replaced by a fresh one with the same settings.
    fn inner(&self) -> Arc<PoolInner> {
        let mut inner = self.inner.borrow_mut();
        if inner.pid != std::process::id() {
            let fresh = PoolInner::new(inner.maxsize.load(Ordering::Relaxed), inner.idle_timeout());
            std::mem::forget(std::mem::replace(&mut *inner, fresh));
        }
        Arc::clone(&inner)
    }

    /// The most jobs that run at once (gevent's `maxsize`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// let pool = greenlet::threadpool::ThreadPool::new(3);
    /// assert_eq!(pool.maxsize(), 3);
    /// ```
    pub fn maxsize(&self) -> usize {
        self.inner.borrow().maxsize.load(Ordering::Relaxed)
    }

    /// Changes [`maxsize`](ThreadPool::maxsize). Growing starts threads for
    /// queued jobs at once; shrinking lets surplus workers exit when they
    /// finish their current job.
    ///
    /// # Panics
    ///
    /// If `maxsize` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// let pool = greenlet::threadpool::ThreadPool::new(1);
    /// pool.set_maxsize(8);
    /// assert_eq!(pool.maxsize(), 8);
    /// ```
    #[track_caller]
    pub fn set_maxsize(&self, maxsize: usize) {
        assert!(
            maxsize > 0,
            "ThreadPool::set_maxsize: maxsize must be at least 1"
        );
        let inner = self.inner();
        inner.maxsize.store(maxsize, Ordering::Relaxed);
        // Wake idle surplus workers (they exit), start threads for the queue.
        inner.work.notify_all();
        self.start_workers(&inner);
    }

    /// How long an idle worker thread waits for a job before it exits.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::threadpool::{DEFAULT_IDLE_TIMEOUT, ThreadPool};
    /// assert_eq!(ThreadPool::new(1).idle_timeout(), DEFAULT_IDLE_TIMEOUT);
    /// ```
    pub fn idle_timeout(&self) -> Duration {
        self.inner.borrow().idle_timeout()
    }

    /// Sets [`idle_timeout`](ThreadPool::idle_timeout) (gevent's
    /// `idle_task_timeout`); it applies from the next time a worker becomes
    /// idle.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use std::time::Duration;
    /// let pool = greenlet::threadpool::ThreadPool::new(1);
    /// pool.set_idle_timeout(Duration::from_millis(100));
    /// assert_eq!(pool.idle_timeout(), Duration::from_millis(100));
    /// ```
    pub fn set_idle_timeout(&self, timeout: Duration) {
        self.inner()
            .idle_timeout_ns
            .store(duration_ns(timeout), Ordering::Relaxed);
    }

    /// Worker threads alive now (gevent's `size`), busy or idle.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// greenlet::run(|| {
    ///     let pool = greenlet::threadpool::ThreadPool::new(2);
    ///     pool.apply(|| ()).unwrap();
    ///     assert_eq!(pool.size(), 1); // idle, kept for reuse
    /// });
    /// ```
    pub fn size(&self) -> usize {
        self.inner().lock().threads
    }

    /// Jobs queued and not yet started ([`len`](ThreadPool::len) counts
    /// the running ones too).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// let pool = greenlet::threadpool::ThreadPool::new(1);
    /// assert_eq!(pool.queued(), 0);
    /// ```
    pub fn queued(&self) -> usize {
        self.inner().lock().queue.len()
    }

    /// Starts threads while queued jobs outnumber idle workers and the pool
    /// has room.
    fn start_workers(&self, inner: &Arc<PoolInner>) {
        loop {
            let mut st = inner.lock();
            if st.shutdown
                || st.queue.len() <= st.idle + st.starting
                || st.threads >= inner.maxsize.load(Ordering::Relaxed)
            {
                if st.idle > 0 && !st.queue.is_empty() {
                    inner.work.notify_one();
                }
                return;
            }
            st.threads += 1;
            st.starting += 1;
            drop(st);
            let worker = Arc::clone(inner);
            let started = std::thread::Builder::new()
                .name("greenlet-threadpool".to_owned())
                .spawn(move || worker.work());
            if let Err(e) = started {
                let failed = {
                    let mut st = inner.lock();
                    st.threads -= 1;
                    st.starting -= 1;
                    // Nobody will run the queue: fail it. With workers left,
                    // they take it.
                    if st.threads == 0 {
                        std::mem::take(&mut st.queue)
                    } else {
                        VecDeque::new()
                    }
                };
                let e = Arc::new(e);
                for task in failed {
                    task(Some(ThreadError::Spawn(Arc::clone(&e))));
                }
                return;
            }
        }
    }

    /// Queues `f` to run on a worker thread and returns its result handle
    /// at once (gevent's `ThreadPool.spawn`, tokio's `spawn_blocking`).
    ///
    /// The closure runs to its end even if the handle is dropped or its
    /// waiter is killed; a panic in it becomes [`ThreadError::Panicked`].
    ///
    /// # Panics
    ///
    /// Outside a hub scope ([`run`](crate::run)): the result is delivered
    /// through this thread's hub.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// greenlet::run(|| {
    ///     let pool = greenlet::threadpool::ThreadPool::new(2);
    ///     let a = pool.spawn(|| 20);
    ///     let b = pool.spawn(|| 22);
    ///     assert_eq!(a.take().unwrap() + b.take().unwrap(), 42);
    /// });
    /// ```
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> ThreadResult<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if !hub::in_scope() {
            hub::no_scope("ThreadPool::spawn");
        }
        let handle = hub::handle();
        let watch = handle.closed_watch();
        {
            let mut last = self.last_handle.borrow_mut();
            if last.as_ref().is_some_and(|l| !l.same(&watch)) {
                self.orphans.set(true);
            }
            *last = Some(watch.clone());
        }
        let (result, slot, id) = ThreadResult::<T>::new(watch);
        let inner = self.inner();
        let (pool, pool_id) = (Arc::downgrade(&inner), inner.id);
        let task: Task = Box::new(move |cancel| {
            let outcome = match cancel {
                Some(e) => {
                    drop(f);
                    Err(e)
                }
                None => run_job(f),
            };
            *lock_slot(&slot) = Slot::Done(outcome);
            drop(slot);
            // Before the post: a `join` woken by it sees the job gone.
            if let Some(pool) = pool.upgrade() {
                pool.lock().in_flight -= 1;
            }
            // `Err`: the hub closed (its scope ended); nobody waits.
            let _ = handle.post(move || {
                complete(id);
                wake_joiners(pool_id);
            });
        });
        let shut = {
            let mut st = inner.lock();
            if st.shutdown {
                Some(task)
            } else {
                st.queue.push_back(task);
                st.in_flight += 1;
                None
            }
        };
        match shut {
            // Counted out by the task itself: count it in first.
            Some(task) => {
                inner.lock().in_flight += 1;
                task(Some(ThreadError::Cancelled));
            }
            None => self.start_workers(&inner),
        }
        result
    }

    /// Runs `f` on a worker thread and waits for its result (gevent's
    /// `apply`). Only the calling greenlet blocks.
    ///
    /// # Errors
    ///
    /// [`ThreadError::Panicked`] if `f` panicked; [`ThreadError::LoopExit`]
    /// never in practice (a running job keeps the hub alive);
    /// [`ThreadError::Spawn`] if no worker thread could be started.
    ///
    /// # Switches
    ///
    /// Until the job is done. A kill or [`Timeout`](crate::Timeout) ends the
    /// wait by unwinding; the job runs on and its value is dropped.
    ///
    /// # Panics
    ///
    /// Outside a hub scope, or inside a hub callback.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// greenlet::run(|| {
    ///     let pool = greenlet::threadpool::ThreadPool::new(1);
    ///     let len = pool.apply(|| std::fs::read_dir("/").map(|d| d.count())).unwrap();
    ///     assert!(len.unwrap() > 0);
    /// });
    /// ```
    #[track_caller]
    pub fn apply<F, T>(&self, f: F) -> Result<T, ThreadError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawn(f).into_result()
    }

    /// Jobs queued or running (gevent's `len(pool)`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// greenlet::run(|| {
    ///     let pool = greenlet::threadpool::ThreadPool::new(1);
    ///     let job = pool.spawn(|| std::thread::sleep(std::time::Duration::from_millis(10)));
    ///     assert_eq!(pool.len(), 1);
    ///     job.join().unwrap();
    ///     assert_eq!(pool.len(), 0);
    /// });
    /// ```
    pub fn len(&self) -> usize {
        self.inner().lock().in_flight
    }

    /// `true` when no job is queued or running.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// assert!(greenlet::threadpool::ThreadPool::new(1).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until every job spawned on this pool from this thread's hub
    /// has ended (gevent's `ThreadPool.join`). Jobs spawned meanwhile are
    /// waited for too.
    ///
    /// # Errors
    ///
    /// [`ThreadError::LoopExit`] only if nothing could ever end the wait
    /// (never while a job of this hub runs).
    ///
    /// # Switches
    ///
    /// Until the pool is idle. A kill or [`Timeout`](crate::Timeout) ends
    /// the wait by unwinding; the jobs run on.
    ///
    /// # Panics
    ///
    /// Inside a hub callback when it has to wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// greenlet::run(|| {
    ///     let pool = greenlet::threadpool::ThreadPool::new(2);
    ///     for _ in 0..4 {
    ///         drop(pool.spawn(|| std::thread::sleep(std::time::Duration::from_millis(5))));
    ///     }
    ///     pool.join().unwrap();
    ///     assert!(pool.is_empty());
    /// });
    /// ```
    #[track_caller]
    pub fn join(&self) -> Result<(), ThreadError> {
        self.join_inner(None, "ThreadPool::join")
    }

    /// [`join`](ThreadPool::join) giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`ThreadError::Timeout`] if jobs still run; otherwise as
    /// [`join`](ThreadPool::join).
    ///
    /// # Switches
    ///
    /// As [`join`](ThreadPool::join).
    ///
    /// # Panics
    ///
    /// Inside a hub callback when it has to wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use std::time::Duration;
    /// greenlet::run(|| {
    ///     let pool = greenlet::threadpool::ThreadPool::new(1);
    ///     let job = pool.spawn(|| std::thread::sleep(Duration::from_millis(50)));
    ///     assert!(pool.join_timeout(Duration::from_millis(5)).is_err());
    ///     pool.join().unwrap();
    ///     assert!(job.is_ready());
    /// });
    /// ```
    #[track_caller]
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), ThreadError> {
        self.join_inner(Some(timeout), "ThreadPool::join_timeout")
    }

    fn join_inner(&self, timeout: Option<Duration>, what: &'static str) -> Result<(), ThreadError> {
        let deadline = timeout.and_then(hub::deadline_after);
        loop {
            let inner = self.inner();
            if inner.lock().in_flight == 0 {
                self.orphans.set(false);
                return Ok(());
            }
            let w = hub::current_waker(what);
            let pool_id = inner.id;
            drop(inner);
            JOINERS.with_borrow_mut(|j| j.entry(pool_id).or_default().push(w));
            let _joiner = JoinerGuard { pool_id, waker: w };
            let timer = TimerGuard::wake_at(deadline, true, w);
            // Closed handles (scope end, or jobs from before a
            // `hub::destroy`): the posts that wake joiners fail.
            let closed = hub::handle().is_closed()
                || self.orphans.get()
                || self
                    .last_handle
                    .borrow()
                    .as_ref()
                    .is_some_and(hub::ClosedWatch::is_closed);
            let _poll =
                closed.then(|| TimerGuard::wake_at(hub::deadline_after(POLL_CLOSED), true, w));
            hub::park(w, what).map_err(ThreadError::LoopExit)?;
            if timer.fired() && self.inner().lock().in_flight > 0 {
                return Err(ThreadError::Timeout(Elapsed::new(timeout, None)));
            }
        }
    }

    /// Runs `f` on every item, up to [`maxsize`](ThreadPool::maxsize) at
    /// once, and returns the results in the items' order (gevent's `map`).
    ///
    /// # Errors
    ///
    /// The first failed job's error, in item order (as
    /// [`apply`](ThreadPool::apply)); the other jobs still run to their end.
    ///
    /// # Switches
    ///
    /// Until every job is done (unless one fails first).
    ///
    /// # Panics
    ///
    /// Outside a hub scope, or inside a hub callback.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// greenlet::run(|| {
    ///     let pool = greenlet::threadpool::ThreadPool::new(3);
    ///     let words = pool.map(["a", "bb", "ccc"], |w| w.len()).unwrap();
    ///     assert_eq!(words, [1, 2, 3]);
    /// });
    /// ```
    #[track_caller]
    pub fn map<I, F, U>(&self, items: I, f: F) -> Result<Vec<U>, ThreadError>
    where
        I: IntoIterator,
        I::Item: Send + 'static,
        F: Fn(I::Item) -> U + Send + Sync + 'static,
        U: Send + 'static,
    {
        let f = Arc::new(f);
        let jobs: Vec<ThreadResult<U>> = items
            .into_iter()
            .map(|item| {
                let f = Arc::clone(&f);
                self.spawn(move || f(item))
            })
            .collect();
        jobs.into_iter().map(ThreadResult::into_result).collect()
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        let inner = self.inner.get_mut();
        if inner.pid != std::process::id() {
            // Inherited through fork: never lock or free it here.
            std::mem::forget(Arc::clone(inner));
            return;
        }
        let queued = {
            let mut st = inner.lock();
            st.shutdown = true;
            std::mem::take(&mut st.queue)
        };
        inner.work.notify_all();
        for task in queued {
            task(Some(ThreadError::Cancelled));
        }
    }
}

/// Runs a job on the worker, turning a panic into [`ThreadError::Panicked`].
fn run_job<T>(f: impl FnOnce() -> T) -> Result<T, ThreadError> {
    // `in_callback` makes the crate's panic hook record the panic (message,
    // location) for `PanicError::new` instead of printing it.
    switch::in_callback(|| catch_unwind(AssertUnwindSafe(f)))
        .map_err(|payload| ThreadError::Panicked(PanicError::new(payload)))
}

// ================================================================ results

/// A job's value, filled by the worker.
enum Slot<T> {
    Pending,
    Done(Result<T, ThreadError>),
    Taken,
}

fn lock_slot<T>(slot: &Mutex<Slot<T>>) -> MutexGuard<'_, Slot<T>> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A [`Waitable::rawlink`] callback and its id.
type LinkCallback = Box<dyn FnOnce()>;

/// The hub-local side of a job.
#[derive(Default)]
struct Local {
    /// `complete` ran: the slot is filled.
    ready: Cell<bool>,
    /// The process forked while the job was pending (we are the child).
    forked: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
    links: RefCell<Vec<(u64, LinkCallback)>>,
    next_link: Cell<u64>,
}

thread_local! {
    /// Pending jobs of this thread's greenlets, by id.
    static JOBS: RefCell<HashMap<u64, Rc<Local>>> = RefCell::new(HashMap::new());
    /// Greenlets in [`ThreadPool::join`], by pool id.
    static JOINERS: RefCell<HashMap<u64, Vec<Waker>>> = RefCell::new(HashMap::new());
    /// This hub's default pool.
    static HUB_POOL: RefCell<Option<Rc<ThreadPool>>> = const { RefCell::new(None) };
}

/// Job ids: process-wide, never reused.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// On the hub, posted by the worker: job `id` is done.
fn complete(id: u64) {
    let Some(local) = JOBS.with_borrow_mut(|jobs| jobs.remove(&id)) else {
        return; // its handle was dropped
    };
    local.ready.set(true);
    fire(&local);
}

/// On the hub, after a job of pool `pool_id` ended: its joiners look again.
fn wake_joiners(pool_id: u64) {
    let woken = JOINERS.with_borrow_mut(|j| j.remove(&pool_id));
    for w in woken.into_iter().flatten() {
        hub::wake(w);
    }
}

/// Removes a [`ThreadPool::join`] waker when its wait ends.
struct JoinerGuard {
    pool_id: u64,
    waker: Waker,
}

impl Drop for JoinerGuard {
    fn drop(&mut self) {
        let (id, w) = (self.pool_id, self.waker);
        let _ = JOINERS.try_with(|j| {
            let mut j = j.borrow_mut();
            if let Some(list) = j.get_mut(&id) {
                list.retain(|x| *x != w);
                if list.is_empty() {
                    j.remove(&id);
                }
            }
        });
    }
}

/// Wakes the waiters and runs the links of a finished job (on the hub).
fn fire(local: &Local) {
    let waiters = std::mem::take(&mut *local.waiters.borrow_mut());
    for w in waiters {
        hub::wake(w);
    }
    loop {
        let next = {
            let mut links = local.links.borrow_mut();
            if links.is_empty() {
                break;
            }
            links.remove(0)
        };
        (next.1)();
    }
}

/// In a forked child: every pending job's thread is gone.
/// `true` while a job of this thread's greenlets is still running or queued
/// on a pool and its handle is alive: a paused hub clock must not jump over
/// its wait (tokio inhibits auto-advance while `spawn_blocking` tasks run).
pub(crate) fn jobs_pending() -> bool {
    JOBS.try_with(|jobs| jobs.try_borrow().is_ok_and(|j| !j.is_empty()))
        .unwrap_or(false)
}

pub(crate) fn reinit_after_fork() {
    let Ok(pending) = JOBS.try_with(|jobs| std::mem::take(&mut *jobs.borrow_mut())) else {
        return;
    };
    for local in pending.into_values() {
        local.forked.set(true);
        fire(&local);
    }
}

/// At the end of a hub scope (or `hub::destroy`): the default pool goes.
pub(crate) fn release_hub_pool() {
    if let Ok(Some(pool)) = HUB_POOL.try_with(|p| p.borrow_mut().take()) {
        drop(pool);
    }
}

/// Removes a waker when its wait ends (also on unwinding).
struct WaiterGuard<'a> {
    local: &'a Local,
    waker: Waker,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        let w = self.waker;
        self.local.waiters.borrow_mut().retain(|x| *x != w);
    }
}

/// The result of a job on a [`ThreadPool`] (gevent's `AsyncResult` from
/// `ThreadPool.spawn`, tokio's `JoinHandle` from `spawn_blocking`).
///
/// Wait for it with [`take`](ThreadResult::take) /
/// [`into_result`](ThreadResult::into_result) (move the value out),
/// [`get`](ThreadResult::get) (clone it), their `_timeout` forms, or
/// [`join`](ThreadResult::join); or together with greenlets through
/// [`wait`](crate::wait) / [`iwait`](crate::iwait) (it is [`Waitable`]).
/// Dropping it does not stop the job: the value is dropped when the job
/// ends.
///
/// `!Send`: it belongs to the hub that spawned the job.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// use greenlet::{spawn_blocking, spawn, wait};
///
/// greenlet::run(|| {
///     let job = spawn_blocking(|| 6 * 7);
///     let g = spawn(|| "greenlet");
///     let ready = wait([&job as &dyn greenlet::Waitable, &g]).unwrap();
///     assert_eq!(ready.len(), 2);
///     assert_eq!(job.take().unwrap(), 42);
/// });
/// ```
pub struct ThreadResult<T> {
    id: u64,
    local: Rc<Local>,
    slot: Arc<Mutex<Slot<T>>>,
    /// The handle the job posts its completion through: once closed
    /// (scope end, `hub::destroy`), the post fails and the slot is polled.
    watch: hub::ClosedWatch,
}

impl<T> fmt::Debug for ThreadResult<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadResult")
            .field("id", &self.id)
            .field("ready", &self.local.ready.get())
            .finish_non_exhaustive()
    }
}

impl<T> ThreadResult<T> {
    fn new(watch: hub::ClosedWatch) -> (ThreadResult<T>, Arc<Mutex<Slot<T>>>, u64) {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let local = Rc::new(Local::default());
        JOBS.with_borrow_mut(|jobs| jobs.insert(id, Rc::clone(&local)));
        let slot = Arc::new(Mutex::new(Slot::Pending));
        (
            ThreadResult {
                id,
                local,
                slot: Arc::clone(&slot),
                watch,
            },
            slot,
            id,
        )
    }

    /// `true` once the job has ended and its result reached this hub.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// greenlet::run(|| {
    ///     let job = greenlet::spawn_blocking(|| 1);
    ///     assert!(!job.is_ready()); // the hub has not run yet
    ///     job.join().unwrap();
    ///     assert!(job.is_ready());
    /// });
    /// ```
    pub fn is_ready(&self) -> bool {
        self.local.ready.get()
    }

    /// `true` if the job is done: `complete` ran, or the slot is filled and
    /// the post cannot come (the hub's handles are closed, or we are outside
    /// any scope).
    fn check_done(&self) -> bool {
        if self.local.ready.get() {
            return true;
        }
        // Outside a scope (the handle outlived it) nothing will post either.
        if matches!(*lock_slot(&self.slot), Slot::Done(_))
            && (!hub::in_scope() || self.watch.is_closed())
        {
            self.local.ready.set(true);
            let id = self.id;
            JOBS.with_borrow_mut(|jobs| jobs.remove(&id));
            return true;
        }
        false
    }

    /// Waits until the job is done (`None`: no timeout).
    fn wait_ready(&self, timeout: Option<Duration>, what: &'static str) -> Result<(), ThreadError> {
        let deadline = timeout.and_then(hub::deadline_after);
        loop {
            if self.check_done() {
                return Ok(());
            }
            if self.local.forked.get() {
                return Err(ThreadError::Forked);
            }
            let w = hub::current_waker(what);
            self.local.waiters.borrow_mut().push(w);
            let _waiter = WaiterGuard {
                local: &self.local,
                waker: w,
            };
            let timer = TimerGuard::wake_at(deadline, true, w);
            // The hub's scope is ending (a destructor waits on the pool):
            // the worker's post would fail, so look at the slot every
            // millisecond instead of waiting for it.
            let _poll = self
                .watch
                .is_closed()
                .then(|| TimerGuard::wake_at(hub::deadline_after(POLL_CLOSED), true, w));
            hub::park(w, what).map_err(ThreadError::LoopExit)?;
            if !self.check_done() && !self.local.forked.get() && timer.fired() {
                return Err(ThreadError::Timeout(Elapsed::new(timeout, None)));
            }
        }
    }

    /// Waits until the job is done, without taking its value.
    ///
    /// # Errors
    ///
    /// [`ThreadError::LoopExit`] (on the native stack, if nothing could
    /// finish it: not while the job runs) or [`ThreadError::Forked`]. How
    /// the job ended is read with [`take`](ThreadResult::take).
    ///
    /// # Switches
    ///
    /// Until the job is done. A kill or [`Timeout`](crate::Timeout) ends the
    /// wait by unwinding; the job runs on.
    ///
    /// # Panics
    ///
    /// Inside a hub callback when it has to wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// greenlet::run(|| {
    ///     let job = greenlet::spawn_blocking(|| ());
    ///     job.join().unwrap();
    ///     assert!(job.is_ready());
    /// });
    /// ```
    #[track_caller]
    pub fn join(&self) -> Result<(), ThreadError> {
        self.wait_ready(None, "ThreadResult::join")
    }

    /// [`join`](ThreadResult::join) giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`ThreadError::Timeout`] if the job is still running; otherwise as
    /// [`join`](ThreadResult::join).
    ///
    /// # Switches
    ///
    /// As [`join`](ThreadResult::join).
    ///
    /// # Panics
    ///
    /// Inside a hub callback when it has to wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use std::time::Duration;
    /// greenlet::run(|| {
    ///     let job = greenlet::spawn_blocking(|| std::thread::sleep(Duration::from_millis(50)));
    ///     assert!(job.join_timeout(Duration::from_millis(5)).is_err());
    ///     job.join().unwrap();
    /// });
    /// ```
    #[track_caller]
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), ThreadError> {
        self.wait_ready(Some(timeout), "ThreadResult::join_timeout")
    }

    /// Clones the value of a finished job.
    fn read_cloned(&self) -> Result<T, ThreadError>
    where
        T: Clone,
    {
        match &*lock_slot(&self.slot) {
            Slot::Done(Ok(v)) => Ok(v.clone()),
            Slot::Done(Err(e)) => Err(e.clone()),
            // `Pending` cannot be seen once ready: the slot is filled first.
            Slot::Taken | Slot::Pending => Err(ThreadError::ValueTaken),
        }
    }

    /// Moves the value out without requiring `Clone`.
    fn read_taken(&self) -> Result<T, ThreadError> {
        let mut slot = lock_slot(&self.slot);
        match std::mem::replace(&mut *slot, Slot::Taken) {
            Slot::Done(Ok(v)) => Ok(v),
            Slot::Done(Err(e)) => {
                *slot = Slot::Done(Err(e.clone()));
                Err(e)
            }
            Slot::Taken => Err(ThreadError::ValueTaken),
            Slot::Pending => {
                *slot = Slot::Pending;
                Err(ThreadError::ValueTaken)
            }
        }
    }

    /// Waits for the job and moves its value out. Later reads get
    /// [`ThreadError::ValueTaken`].
    ///
    /// # Errors
    ///
    /// How the job failed ([`ThreadError::Panicked`], `Cancelled`,
    /// `Spawn`), or why the wait failed (as [`join`](ThreadResult::join)).
    ///
    /// # Switches
    ///
    /// As [`join`](ThreadResult::join).
    ///
    /// # Panics
    ///
    /// Inside a hub callback when it has to wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::threadpool::ThreadError;
    /// greenlet::run(|| {
    ///     let job = greenlet::spawn_blocking(|| vec![1, 2, 3]);
    ///     assert_eq!(job.take().unwrap(), [1, 2, 3]);
    ///     assert!(matches!(job.take(), Err(ThreadError::ValueTaken)));
    /// });
    /// ```
    #[track_caller]
    pub fn take(&self) -> Result<T, ThreadError> {
        self.wait_ready(None, "ThreadResult::take")?;
        self.read_taken()
    }

    /// [`take`](ThreadResult::take) giving up after `timeout` (the job keeps
    /// running; wait again later).
    ///
    /// # Errors
    ///
    /// [`ThreadError::Timeout`] if the job is still running; otherwise as
    /// [`take`](ThreadResult::take).
    ///
    /// # Switches
    ///
    /// As [`join`](ThreadResult::join).
    ///
    /// # Panics
    ///
    /// Inside a hub callback when it has to wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::threadpool::ThreadError;
    /// use std::time::Duration;
    /// greenlet::run(|| {
    ///     let job = greenlet::spawn_blocking(|| {
    ///         std::thread::sleep(Duration::from_millis(50));
    ///         7
    ///     });
    ///     let e = job.take_timeout(Duration::from_millis(5)).unwrap_err();
    ///     assert!(matches!(e, ThreadError::Timeout(_)));
    ///     assert_eq!(job.take().unwrap(), 7);
    /// });
    /// ```
    #[track_caller]
    pub fn take_timeout(&self, timeout: Duration) -> Result<T, ThreadError> {
        self.wait_ready(Some(timeout), "ThreadResult::take_timeout")?;
        self.read_taken()
    }

    /// Waits for the job and returns a clone of its value (gevent's
    /// `AsyncResult.get()`).
    ///
    /// # Errors
    ///
    /// As [`take`](ThreadResult::take).
    ///
    /// # Switches
    ///
    /// As [`join`](ThreadResult::join).
    ///
    /// # Panics
    ///
    /// Inside a hub callback when it has to wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// greenlet::run(|| {
    ///     let job = greenlet::spawn_blocking(|| String::from("hi"));
    ///     assert_eq!(job.get().unwrap(), "hi");
    ///     assert_eq!(job.get().unwrap(), "hi");
    /// });
    /// ```
    #[track_caller]
    pub fn get(&self) -> Result<T, ThreadError>
    where
        T: Clone,
    {
        self.wait_ready(None, "ThreadResult::get")?;
        self.read_cloned()
    }

    /// [`get`](ThreadResult::get) giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`ThreadError::Timeout`] if the job is still running; otherwise as
    /// [`get`](ThreadResult::get).
    ///
    /// # Switches
    ///
    /// As [`join`](ThreadResult::join).
    ///
    /// # Panics
    ///
    /// Inside a hub callback when it has to wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use std::time::Duration;
    /// greenlet::run(|| {
    ///     let job = greenlet::spawn_blocking(|| 3);
    ///     assert_eq!(job.get_timeout(Duration::from_secs(5)).unwrap(), 3);
    /// });
    /// ```
    #[track_caller]
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, ThreadError>
    where
        T: Clone,
    {
        self.wait_ready(Some(timeout), "ThreadResult::get_timeout")?;
        self.read_cloned()
    }

    /// Waits for the job and returns its result, consuming the handle.
    ///
    /// # Errors
    ///
    /// As [`take`](ThreadResult::take).
    ///
    /// # Switches
    ///
    /// As [`join`](ThreadResult::join).
    ///
    /// # Panics
    ///
    /// Inside a hub callback when it has to wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// greenlet::run(|| {
    ///     let job = greenlet::spawn_blocking(|| std::fs::read("/definitely/missing"));
    ///     assert!(job.into_result().unwrap().is_err());
    /// });
    /// ```
    #[track_caller]
    pub fn into_result(self) -> Result<T, ThreadError> {
        self.take()
    }
}

impl<T> Drop for ThreadResult<T> {
    fn drop(&mut self) {
        let id = self.id;
        // Its later `complete` finds nothing (thread exit: the table is gone).
        let _ = JOBS.try_with(|jobs| jobs.borrow_mut().remove(&id));
    }
}

impl<T> Waitable for ThreadResult<T> {
    fn is_ready(&self) -> bool {
        self.local.ready.get() || self.local.forked.get()
    }

    fn rawlink(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        let id = self.local.next_link.get();
        self.local.next_link.set(id + 1);
        self.local.links.borrow_mut().push((id, callback));
        if Waitable::is_ready(self) {
            let local = Rc::clone(&self.local);
            hub::run_callback(move || fire(&local));
        }
        LinkId::new(id)
    }

    fn unlink(&self, id: LinkId) -> bool {
        let mut links = self.local.links.borrow_mut();
        match links.iter().position(|(i, _)| *i == id.get()) {
            Some(i) => {
                let (_, cb) = links.remove(i);
                drop(links);
                drop(cb);
                true
            }
            None => false,
        }
    }
}

// ================================================================ the hub's pool

/// This hub's default thread pool, created on first use with
/// [`DEFAULT_MAXSIZE`] threads (gevent's `get_hub().threadpool`). It is
/// dropped at the end of the hub scope (see [`ThreadPool`] for what happens
/// to jobs still running then); the next scope gets a new one.
///
/// # Panics
///
/// Outside a hub scope ([`run`](crate::run)).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// greenlet::run(|| {
///     let pool = greenlet::hub::threadpool();
///     assert_eq!(pool.apply(|| 1 + 1).unwrap(), 2);
///     assert_eq!(pool.maxsize(), greenlet::threadpool::DEFAULT_MAXSIZE);
/// });
/// ```
#[track_caller]
pub fn threadpool() -> Rc<ThreadPool> {
    if !hub::in_scope() {
        hub::no_scope("hub::threadpool");
    }
    HUB_POOL.with_borrow_mut(|pool| {
        Rc::clone(pool.get_or_insert_with(|| Rc::new(ThreadPool::new(DEFAULT_MAXSIZE))))
    })
}

/// Runs `f` on the hub's default pool and returns its handle at once
/// (tokio's `spawn_blocking`; gevent's `get_hub().threadpool.spawn`).
///
/// # Panics
///
/// Outside a hub scope ([`run`](crate::run)).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// greenlet::run(|| {
///     let job = greenlet::spawn_blocking(|| std::env::temp_dir());
///     assert!(job.take().unwrap().is_absolute());
/// });
/// ```
#[track_caller]
pub fn spawn_blocking<F, T>(f: F) -> ThreadResult<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    threadpool().spawn(f)
}

/// Runs `f` on the hub's default pool and waits for it (gevent's
/// `get_hub().threadpool.apply`).
///
/// # Errors
///
/// As [`ThreadPool::apply`].
///
/// # Switches
///
/// As [`ThreadPool::apply`].
///
/// # Panics
///
/// Outside a hub scope, or inside a hub callback.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// greenlet::run(|| {
///     let n = greenlet::threadpool::apply(|| (1..=10u32).sum::<u32>()).unwrap();
///     assert_eq!(n, 55);
/// });
/// ```
#[track_caller]
pub fn apply<F, T>(f: F) -> Result<T, ThreadError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    threadpool().apply(f)
}
