//! Processes: [`Command`] and [`Child`] (gevent's `gevent.subprocess`),
//! [`fork`], [`reinit`], cooperative [`waitpid`] (gevent's `gevent.fork`,
//! `gevent.reinit`, `gevent.os.waitpid`).
//!
//! # Design
//!
//! * **fork.** [`fork`] wraps `fork(2)`. In the child, [`reinit`] runs before
//!   `fork` returns: the hub gets a new poller (the inherited one is leaked,
//!   never deregistered, because parent and child share its epoll set, see
//!   polling#37), live registrations are re-added, thread-safe posts are
//!   dropped, the signal self-pipe is replaced and the child forgets its
//!   parent's children. Both processes keep every greenlet (gevent parity).
//!   Only the forking thread exists in the child.
//! * **Child watching.** Per hub, a table of watched pids (children forked by
//!   [`fork`] on this hub, plus pids someone waits for). While it is not
//!   empty, an internal SIGCHLD watcher (through `crate::signal`'s
//!   self-pipe) reaps them with `waitpid(pid, WNOHANG)`: never
//!   `waitpid(-1)`, so children managed elsewhere (`std::process::Child`) are
//!   left alone. Statuses nobody collected are kept for 60 s (gevent's
//!   `_reap_children`). The watcher is unreferenced while nobody waits and
//!   referenced while a greenlet waits in [`waitpid`], so the hub does not
//!   report [`LoopExit`](crate::LoopExit) while a child may still exit.
//! * **No lost wake-up.** A waiter installs the watcher *before* checking
//!   the child with `WNOHANG`, then parks: a SIGCHLD after the check writes
//!   the pipe, and its callback (run by the loop after the park) wakes it.
//! * **GREENLET_NOWAITPID.** When the environment variable is set to a true
//!   value (`1`, `true`, `yes`, `on`), or [`set_watch_children`]`(false)`
//!   was called on the thread, no SIGCHLD handler is installed and
//!   [`waitpid`] polls the child with `WNOHANG` at growing intervals
//!   (1 ms to 50 ms) instead.
//! * Every syscall here retries `EINTR`.

use std::cell::{Cell, RefCell};
use std::io;
use std::process::ExitStatus;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::hub::reactor::sys;
use crate::hub::{self, TimerGuard, Waker};
use crate::signal::{self, SignalHandle};

mod command;
pub use command::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

/// Statuses nobody collected are dropped after this long (gevent's value).
const KEEP_STATUS: Duration = Duration::from_secs(60);
/// Polling interval bounds without a SIGCHLD watcher.
const POLL_MIN: Duration = Duration::from_millis(1);
const POLL_MAX: Duration = Duration::from_millis(50);

/// The result of [`fork`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "the parent and the child usually do different things"]
pub enum Fork {
    /// In the parent: the child's pid.
    Parent(u32),
    /// In the child.
    Child,
}

/// A reaped status, or the error `waitpid(2)` gave.
type Reaped = Result<ExitStatus, i32>;

struct Watched {
    pid: u32,
    /// Forked by [`fork`] on this hub: kept until collected (or expired).
    forked: bool,
    status: Option<(Reaped, Instant)>,
    waiters: Vec<Waker>,
}

/// This hub's child-watching state.
struct Children {
    /// The process the table belongs to (a forked child starts afresh).
    pid: u32,
    watched: Vec<Watched>,
    /// The SIGCHLD watcher, installed while `watched` is not empty.
    watch: Option<SignalHandle>,
}

thread_local! {
    static CHILDREN: RefCell<Children> = const {
        RefCell::new(Children { pid: 0, watched: Vec::new(), watch: None })
    };
    /// Per-hub override of `GREENLET_NOWAITPID` (`None`: use the variable).
    static WATCH_CHILDREN: Cell<Option<bool>> = const { Cell::new(None) };
}

// ================================================================ syscalls

fn to_pid(pid: u32) -> io::Result<libc::pid_t> {
    match libc::pid_t::try_from(pid) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{pid} is not a process id"),
        )),
    }
}

/// Sends `signum` to process `pid` (`kill(2)`).
///
/// `signum` 0 sends nothing and only checks that the process exists and may
/// be signalled. To signal this process, pass [`std::process::id`].
///
/// # Errors
///
/// `ErrorKind::InvalidInput` for pid 0 or a pid above `i32::MAX` (process
/// groups are not addressed by this function); the OS error otherwise
/// (`ESRCH`: no such process, `EPERM`, `EINVAL`: bad signal number).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// use greenlet::send_signal;
///
/// greenlet::run(|| {
///     send_signal(std::process::id(), 0).unwrap(); // we exist
///     assert!(send_signal(0, libc::SIGTERM).is_err());
/// });
/// ```
pub fn send_signal(pid: u32, signum: i32) -> io::Result<()> {
    sys::kill(to_pid(pid)?, signum)
}

// ================================================================ config

/// `GREENLET_NOWAITPID` set to a true value.
fn nowaitpid_env() -> bool {
    static NOWAITPID: OnceLock<bool> = OnceLock::new();
    *NOWAITPID.get_or_init(|| {
        std::env::var("GREENLET_NOWAITPID").is_ok_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
    })
}

/// `true` when this hub watches children through SIGCHLD.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// use greenlet::{set_watch_children, watch_children};
///
/// greenlet::run(|| {
///     set_watch_children(false);
///     assert!(!watch_children());
///     set_watch_children(true);
///     assert!(watch_children());
/// });
/// ```
pub fn watch_children() -> bool {
    WATCH_CHILDREN.get().unwrap_or_else(|| !nowaitpid_env())
}

/// Turns child watching through SIGCHLD on or off for this thread's hub,
/// overriding `GREENLET_NOWAITPID` (gevent's `GEVENT_NOWAITPID` /
/// `config.disable_watch_children`).
///
/// With watching off, [`fork`] installs no SIGCHLD handler and [`waitpid`]
/// polls the child instead (1 ms to 50 ms apart). Turning it off does not
/// forget children already watched.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// greenlet::run(|| {
///     greenlet::set_watch_children(false); // leave SIGCHLD alone
///     assert!(!greenlet::watch_children());
/// });
/// ```
pub fn set_watch_children(enabled: bool) {
    WATCH_CHILDREN.set(Some(enabled));
}

// ================================================================ watching

impl Children {
    fn find(&mut self, pid: u32) -> Option<&mut Watched> {
        self.watched.iter_mut().find(|c| c.pid == pid)
    }

    /// The entry for `pid`, created if missing.
    fn entry(&mut self, pid: u32, forked: bool) -> &mut Watched {
        let i = match self.watched.iter().position(|c| c.pid == pid) {
            Some(i) => i,
            None => {
                self.watched.push(Watched {
                    pid,
                    forked,
                    status: None,
                    waiters: Vec::new(),
                });
                self.watched.len() - 1
            }
        };
        let child = &mut self.watched[i];
        child.forked |= forked;
        child
    }

    /// Removes `pid`; returns its remaining waiters (to wake: they will find
    /// the child gone).
    fn remove(&mut self, pid: u32) -> Vec<Waker> {
        match self.watched.iter().position(|c| c.pid == pid) {
            Some(i) => self.watched.swap_remove(i).waiters,
            None => Vec::new(),
        }
    }

    /// Drops entries that nobody needs any more: collected-never statuses
    /// older than [`KEEP_STATUS`], and waited-for pids that lost their
    /// waiters before exiting.
    fn prune(&mut self, now: Instant) {
        self.watched.retain(|c| {
            !c.waiters.is_empty()
                || match &c.status {
                    Some((_, at)) => now.saturating_duration_since(*at) < KEEP_STATUS,
                    None => c.forked,
                }
        });
    }
}

/// Runs `f` on this hub's table, resetting it first if it belongs to
/// another process (we are a forked child).
fn with_children<R>(f: impl FnOnce(&mut Children) -> R) -> R {
    CHILDREN.with_borrow_mut(|c| {
        let pid = std::process::id();
        if c.pid != pid {
            // Inherited from the parent: not our children. Any waiter here
            // was reset by `reinit`; an un-reinitialised fork just forgets.
            c.pid = pid;
            c.watched.clear();
            if let Some(watch) = c.watch.take() {
                // Cancelling touches only the signal module's state.
                watch.cancel();
            }
        }
        f(c)
    })
}

/// Installs the SIGCHLD watcher if it is missing. The caller then adds its
/// entry and calls [`update_watch`] (which would remove a watcher that
/// watches nothing).
fn ensure_watch() -> io::Result<()> {
    let installed = with_children(|c| c.watch.as_ref().is_some_and(SignalHandle::is_active));
    if installed {
        return Ok(());
    }
    let watch = signal::watch_internal(libc::SIGCHLD, false, Rc::new(on_sigchld))?;
    let old = with_children(|c| c.watch.replace(watch));
    if let Some(old) = old {
        old.cancel();
    }
    Ok(())
}

/// References the watcher while someone waits; removes it when nothing is
/// watched any more.
fn update_watch() {
    let done = with_children(|c| {
        if c.watched.is_empty() {
            return c.watch.take();
        }
        let waiting = c.watched.iter().any(|w| !w.waiters.is_empty());
        if let Some(watch) = &c.watch
            && watch.is_referenced() != waiting
        {
            watch.set_referenced(waiting);
        }
        None
    });
    if let Some(watch) = done {
        watch.cancel();
    }
}

/// SIGCHLD seen (runs on the hub): reap every watched child that exited and
/// wake its waiters.
fn on_sigchld() {
    let wake = with_children(|c| {
        let now = Instant::now();
        let mut wake = Vec::new();
        for child in c.watched.iter_mut().filter(|c| c.status.is_none()) {
            let Ok(pid) = to_pid(child.pid) else { continue };
            let reaped = match sys::waitpid_nohang(pid) {
                Ok(None) => continue,
                Ok(Some(status)) => Ok(status),
                Err(e) => Err(e.raw_os_error().unwrap_or(libc::ECHILD)),
            };
            child.status = Some((reaped, now));
            wake.append(&mut child.waiters);
        }
        c.prune(now);
        wake
    });
    for w in wake {
        hub::wake(w);
    }
    update_watch();
}

/// Takes a status the watcher reaped for `pid`.
fn take_status(pid: u32) -> Option<io::Result<ExitStatus>> {
    let (reaped, others) = with_children(|c| {
        let reaped = c.find(pid).and_then(|child| child.status.take())?;
        Some((reaped.0, c.remove(pid)))
    })?;
    for w in others {
        hub::wake(w);
    }
    update_watch();
    Some(reaped.map_err(io::Error::from_raw_os_error))
}

/// `waitpid(pid, WNOHANG)` by hand, keeping the table right.
fn check_now(pid: u32) -> io::Result<Option<ExitStatus>> {
    let result = sys::waitpid_nohang(to_pid(pid)?);
    if !matches!(result, Ok(None)) {
        let others = with_children(|c| c.remove(pid));
        for w in others {
            hub::wake(w);
        }
        update_watch();
    }
    result
}

/// Removes a waiter when its wait ends (also on unwinding).
struct WaiterGuard {
    pid: u32,
    waker: Waker,
}

impl WaiterGuard {
    fn add(pid: u32, waker: Waker) -> WaiterGuard {
        with_children(|c| c.entry(pid, false).waiters.push(waker));
        update_watch();
        WaiterGuard { pid, waker }
    }
}

impl Drop for WaiterGuard {
    fn drop(&mut self) {
        let (pid, waker) = (self.pid, self.waker);
        if CHILDREN.try_with(|_| ()).is_err() {
            return; // thread exit: the table is gone
        }
        with_children(|c| {
            if let Some(child) = c.find(pid) {
                child.waiters.retain(|w| *w != waker);
            }
            c.prune(Instant::now());
        });
        update_watch();
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what}: timed out"))
}

/// The three `waitpid` forms.
fn wait_child(pid: u32, timeout: Option<Duration>, what: &'static str) -> io::Result<ExitStatus> {
    to_pid(pid)?;
    if let Some(result) = take_status(pid) {
        return result;
    }
    // Panics inside a hub callback, before anything is registered.
    let mut w = hub::current_waker(what);
    let deadline = timeout.and_then(hub::deadline_after);
    if !watch_children() {
        return poll_child(pid, deadline, what);
    }
    // Before the WNOHANG check: a SIGCHLD after it is then not lost.
    ensure_watch()?;
    loop {
        let waiter = WaiterGuard::add(pid, w);
        if let Some(result) = take_status(pid) {
            return result;
        }
        if let Some(status) = check_now(pid)? {
            return Ok(status);
        }
        if deadline.is_some_and(|d| hub::now() >= d) {
            return Err(timed_out(what));
        }
        let timer = TimerGuard::wake_at(deadline, true, w);
        hub::park(w, what).map_err(io::Error::other)?;
        if timer.fired() {
            // One last look: it may have exited just now.
            return match take_status(pid) {
                Some(result) => result,
                None => check_now(pid)?.ok_or_else(|| timed_out(what)),
            };
        }
        drop(timer);
        drop(waiter);
        // Woken by the watcher: a fresh waker for the next round.
        w = hub::current_waker(what);
    }
}

/// `GREENLET_NOWAITPID`: poll with `WNOHANG`, sleeping in between.
fn poll_child(pid: u32, deadline: Option<Instant>, what: &'static str) -> io::Result<ExitStatus> {
    let mut interval = POLL_MIN;
    loop {
        if let Some(status) = check_now(pid)? {
            return Ok(status);
        }
        let nap = match deadline {
            None => interval,
            Some(d) => {
                let left = d.saturating_duration_since(hub::now());
                if left.is_zero() {
                    return Err(timed_out(what));
                }
                interval.min(left)
            }
        };
        crate::sleep(nap);
        interval = (interval * 2).min(POLL_MAX);
    }
}

/// Waits for child `pid` to exit, blocking only the calling greenlet, and
/// returns its status (gevent's `os.waitpid(pid, 0)`).
///
/// Cooperative for children of this process: those forked by [`fork`] are
/// reaped by the hub when they exit (their status is kept until collected,
/// at most 60 s); others (a `std::process::Command` child, a raw fork) are
/// watched from the moment someone waits. Use it *or* `std`'s
/// `Child::wait` for a given child, not both: whoever reaps first gets the
/// status, the other gets `ECHILD`. Two greenlets waiting for the same pid:
/// one gets the status, the other `ECHILD`. Children are watched per hub:
/// wait for a child on the thread that forked it (another thread's hub may
/// reap it first).
///
/// # Errors
///
/// `ErrorKind::InvalidInput` for pid 0 or above `i32::MAX`; the OS error
/// of `waitpid(2)` (`ECHILD`: not a child of this process, or already
/// reaped); an error wrapping [`LoopExit`](crate::LoopExit) when the native
/// stack would wait forever (never while a SIGCHLD watcher is waiting).
///
/// # Switches
///
/// Unless the child already exited. A kill or [`Timeout`](crate::Timeout)
/// ends the wait by unwinding; the child keeps running and stays watched.
///
/// # Panics
///
/// Inside a hub callback.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// use greenlet::{Fork, fork, waitpid};
///
/// greenlet::run(|| {
///     match fork().unwrap() {
///         Fork::Child => std::process::exit(7),
///         Fork::Parent(pid) => {
///             let status = waitpid(pid).unwrap();
///             assert_eq!(status.code(), Some(7));
///         }
///     }
/// });
/// ```
#[track_caller]
pub fn waitpid(pid: u32) -> io::Result<ExitStatus> {
    wait_child(pid, None, "waitpid")
}

/// [`waitpid`] giving up after `timeout`.
///
/// # Errors
///
/// `ErrorKind::TimedOut` when the child is still running after `timeout`
/// (it stays watched: wait again later); otherwise as [`waitpid`].
///
/// # Switches
///
/// As [`waitpid`].
///
/// # Panics
///
/// Inside a hub callback.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// use greenlet::{Fork, fork, waitpid, waitpid_timeout};
/// use std::io::ErrorKind;
/// use std::time::Duration;
///
/// greenlet::run(|| {
///     match fork().unwrap() {
///         Fork::Child => {
///             std::thread::sleep(Duration::from_millis(200));
///             std::process::exit(0);
///         }
///         Fork::Parent(pid) => {
///             let e = waitpid_timeout(pid, Duration::from_millis(10)).unwrap_err();
///             assert_eq!(e.kind(), ErrorKind::TimedOut);
///             assert!(waitpid(pid).unwrap().success());
///         }
///     }
/// });
/// ```
#[track_caller]
pub fn waitpid_timeout(pid: u32, timeout: Duration) -> io::Result<ExitStatus> {
    wait_child(pid, Some(timeout), "waitpid_timeout")
}

/// [`waitpid`] without blocking: `Ok(None)` while the child runs (gevent's
/// `os.waitpid(pid, os.WNOHANG)`).
///
/// # Errors
///
/// As [`waitpid`].
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// use greenlet::{Fork, fork, try_waitpid, waitpid};
///
/// greenlet::run(|| {
///     match fork().unwrap() {
///         Fork::Child => {
///             std::thread::sleep(std::time::Duration::from_millis(100));
///             std::process::exit(0);
///         }
///         Fork::Parent(pid) => {
///             assert!(try_waitpid(pid).unwrap().is_none());
///             assert!(waitpid(pid).unwrap().success());
///         }
///     }
/// });
/// ```
pub fn try_waitpid(pid: u32) -> io::Result<Option<ExitStatus>> {
    to_pid(pid)?;
    if let Some(result) = take_status(pid) {
        return result.map(Some);
    }
    check_now(pid)
}

// ================================================================ fork

/// Forks the process (gevent's `gevent.fork`, `fork_and_watch`).
///
/// In the child the hub is re-initialised before this returns (see
/// [`reinit`]); in the parent the child is watched so that [`waitpid`]
/// waits for it cooperatively (unless child watching is off:
/// `GREENLET_NOWAITPID`, [`set_watch_children`]).
///
/// Both processes keep every greenlet, timer and registered descriptor of
/// this thread's hub, like gevent: greenlets go on running in both unless
/// the child kills them. **Only the calling thread exists in the child**:
/// hubs of other threads are gone with them.
///
/// End the child with [`std::process::exit`] (or let `main` return);
/// `libc::_exit` skips flushing buffered output. Output buffered before the
/// fork (a partial line on stdout) is in both processes: flush first.
///
/// # Safety of fork in a multi-threaded process
///
/// This function is safe to call while other threads run: in the child, the
/// crate takes **no lock that existed at fork time** (another thread may
/// have held it, and that thread does not exist in the child). The child
/// builds fresh state instead:
///
/// * The hub's poller is replaced; the inherited one is leaked (its epoll
///   set is shared with the parent).
/// * The [`HubHandle`](crate::hub::HubHandle) queue is abandoned, not
///   locked: it is marked closed with an atomic store and leaked. Posts
///   queued by other threads before the fork are neither run nor dropped in
///   the child (their captures' destructors never run there); old handles
///   in the child get [`HubClosed`](crate::hub::HubClosed). A new
///   [`hub::handle`] works normally.
/// * Signal watchers keep the OS actions the parent registered with
///   `signal-hook-registry` (registering again would take its global lock):
///   each action writes to a descriptor held in an atomic, which the child
///   points at a fresh self-pipe. If another thread was inside the registry
///   when the process forked, the child never calls it again: watching a
///   signal number that had no watcher before the fork then fails with an
///   error, and cancelling leaks the action instead of unregistering it.
/// * `GREENLET_NOWAITPID` is read before forking.
///
/// Locks outside this crate are not covered: `std`'s stdout lock, the
/// environment lock, a `Mutex` of your own, or `signal-hook-registry` used
/// directly by another library may be held by a thread that is gone. The
/// C library's allocator is fork-safe on glibc and musl.
///
/// # Errors
///
/// The OS error of `fork(2)` (`EAGAIN`, `ENOMEM`), in the parent; or the
/// error installing the SIGCHLD watcher (nothing is forked then).
///
/// # Panics
///
/// In the child, if the hub cannot be re-initialised (no descriptor left for
/// the new poller): the child cannot run greenlets then.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// use greenlet::{Fork, fork, sleep, spawn, waitpid};
/// use std::time::Duration;
///
/// greenlet::run(|| {
///     let worker = spawn(|| sleep(Duration::from_millis(5)));
///     match fork().unwrap() {
///         Fork::Child => {
///             worker.join(); // the child has its own copy of the greenlet
///             std::process::exit(3);
///         }
///         Fork::Parent(pid) => {
///             worker.join();
///             assert_eq!(waitpid(pid).unwrap().code(), Some(3));
///         }
///     }
/// });
/// ```
pub fn fork() -> io::Result<Fork> {
    // Read the environment now: the child must not (the environment lock,
    // or this `OnceLock`, may be held by another thread at fork time).
    nowaitpid_env();
    // Same for the hub's one-time initialisations (the monitor thread's
    // start, the stack region's probes, the panic hook).
    hub::before_fork();
    let watching = watch_children();
    if watching {
        // Before forking: a child that exits at once is not missed.
        ensure_watch()?;
    }
    let pid = match sys::fork() {
        Ok(pid) => pid,
        Err(e) => {
            update_watch();
            return Err(e);
        }
    };
    if pid == 0 {
        if let Err(e) = reinit() {
            panic!("fork: cannot re-initialise the hub in the child: {e}");
        }
        return Ok(Fork::Child);
    }
    let pid = u32::try_from(pid).expect("fork returns a positive pid in the parent");
    if watching {
        with_children(|c| {
            c.entry(pid, true);
        });
    }
    update_watch();
    Ok(Fork::Parent(pid))
}

/// Prepares this thread's hub to run in a new process (gevent's
/// `gevent.reinit`): call it in the child right after a fork made another
/// way than [`fork`] (which calls it itself).
///
/// It replaces the poller (the inherited one shares its epoll set with the
/// parent: it is leaked, never deregistered) and re-adds every live
/// registration, drops thread-safe posts queued before the fork, gives the
/// signal watchers a fresh self-pipe and forgets the parent's children
/// (greenlets waiting for them get `ECHILD`). Timers and greenlets are
/// kept. Only this thread's hub is re-initialised.
///
/// Calling it in the original process is harmless, but leaks the replaced
/// poller's descriptors.
///
/// # Errors
///
/// The error creating the new poller or pipe (out of descriptors); the hub
/// may then be unusable in this process.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// greenlet::run(|| {
///     // After a fork done by other means, in the child:
///     greenlet::reinit().unwrap();
///     greenlet::sleep(std::time::Duration::from_millis(1));
/// });
/// ```
pub fn reinit() -> io::Result<()> {
    hub::reinit_poller()?;
    // Jobs pending on thread pools lost their threads.
    crate::threadpool::reinit_after_fork();
    let signals = signal::reinit_after_fork();
    // Waiters for the parent's children find them gone.
    let (wake, watch) = CHILDREN.with_borrow_mut(|c| {
        let pid = std::process::id();
        if c.pid == pid || c.pid == 0 {
            return (Vec::new(), None);
        }
        c.pid = pid;
        let wake: Vec<Waker> = c
            .watched
            .drain(..)
            .flat_map(|child| child.waiters)
            .collect();
        (wake, c.watch.take())
    });
    if let Some(watch) = watch {
        watch.cancel();
    }
    for w in wake {
        hub::wake(w);
    }
    signals
}
