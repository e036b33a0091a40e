//! Signal handlers that run in greenlets (gevent's `signal_handler`).
//!
//! # Design
//!
//! * **One self-pipe per hub.** The first [`signal`] call on a thread creates
//!   a non-blocking `UnixStream` pair (the *dispatcher*) and registers its
//!   read end in the hub's poller as a persistent, **unreferenced** callback
//!   source: it never keeps the loop alive by itself. The last
//!   [`SignalHandle::cancel`] deregisters it and closes the pair, so an idle
//!   hub counts no fd for signals.
//! * **OS side.** For each signal number it watches, a dispatcher registers
//!   one action with `signal-hook-registry` (which chains any previous
//!   handler and preserves `errno`), however many watchers share the number:
//!   one signal is one byte, so a delivery can never be split over two loop
//!   wake-ups and run a handler twice. The action runs inside the OS signal
//!   handler, on whatever thread the kernel picked, and does only
//!   async-signal-safe work: `getpid()` and one non-blocking `write(2)` of
//!   the signal number (one byte) into the hub's pipe. A full pipe drops the
//!   byte: a wake-up is already pending, which is how bursts coalesce.
//!   Nothing relies on `EINTR`: the poller (which retries `EINTR` itself)
//!   wakes because the pipe became readable.
//! * **Hub side.** The source's callback runs on the loop's stack. It drains
//!   the pipe, re-arms the (oneshot) registration, then, for every watcher
//!   whose signal was seen, spawns **one** greenlet running the handler (so
//!   the handler may block). A panicking handler is reported through the
//!   hub's error handler with context `"signal handler"`; the hub lives.
//!   Internal watchers (child watching in [`crate::process`](mod@crate::process)) run their
//!   callback on the loop directly instead.
//! * **Ownership.** The dispatcher lives in a thread-local of this module.
//!   Its borrow is never held across a switch or while a handler, a hub call
//!   that may drop user code, or an internal callback runs. The write end is
//!   shared (`Arc`) by the registered actions and stays open until the last
//!   of them is unregistered; the read end is closed only after the
//!   registration left the poller (the reactor's safety contract).
//! * **Hub teardown.** `hub::destroy` drops every registration. The
//!   dispatcher keeps a `Weak` to the callback it registered; once that is
//!   dead the dispatcher is stale: its watchers are inactive and it is torn
//!   down (OS actions unregistered) at the next use.
//! * **fork.** The pipe is shared with the parent after `fork()`. Each
//!   dispatcher's actions write to a [`PipeTarget`]: a descriptor and a pid
//!   in atomics, so the parent's actions do nothing in the child (this also
//!   covers hubs of threads that do not exist in the child).
//!   [`crate::reinit`] (called by [`crate::fork`] in the child) gives the
//!   forking thread's hub a fresh pipe and points the inherited actions at
//!   it, lock-free: the child never calls `signal-hook-registry` for that
//!   (its global lock may be held by a thread that is gone).
//! * **Alternate stack.** Every action is installed with `SA_ONSTACK`, and
//!   a thread that adds a watcher gets an alternate signal stack if it has
//!   none, so the kernel never pushes a signal frame (several KiB with
//!   AVX-512 state) onto a nearly full greenlet stack.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd};
use std::os::raw::c_int;
use std::os::unix::net::UnixStream;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use signal_hook_registry::SigId;

use crate::greenlet::error::{GreenletError, PanicError};
use crate::greenlet::switch;
use crate::hub::reactor::sys::{self, PipeTarget};
use crate::hub::reactor::{AltStackGuard, ensure_altstack};
use crate::hub::{self, SourceId};

thread_local! {
    /// This thread's dispatcher, `None` while no watcher exists.
    static DISPATCHER: RefCell<Option<Dispatcher>> = const { RefCell::new(None) };
    /// An alternate signal stack for a thread that watches signals, in case
    /// its hub scope did not give it one (dropped at thread exit).
    static ALTSTACK: RefCell<Option<AltStackGuard>> = const { RefCell::new(None) };
}

// ======================================================= registry and fork
//
// `signal-hook-registry` serialises `register`/`unregister` with a global
// lock (and initialises its global data under a `Once`). A thread that is
// inside one of them when another thread forks leaves that lock held in the
// child for ever. The crate counts its own calls in flight; a forked child
// that inherits a non-zero count never calls the registry again (new
// signal numbers are refused with an error, unregistering is skipped and the
// pipe it would have closed is leaked). The signal *handler* side of the
// registry takes no lock, so inherited actions keep working in the child.

/// Registry calls of this crate in flight (any thread).
static REGISTRY_IN_USE: AtomicUsize = AtomicUsize::new(0);
/// The process that last called the registry (0: never).
static REGISTRY_PID: AtomicU32 = AtomicU32::new(0);
/// Set in a forked child whose parent had a registry call in flight.
static REGISTRY_POISONED: AtomicBool = AtomicBool::new(false);

/// Runs `f` (a registry call), counted in [`REGISTRY_IN_USE`]; `None` in a
/// child where the registry's lock may be held by a thread that is gone.
pub(crate) fn registry_call<R>(f: impl FnOnce() -> R) -> Option<R> {
    if REGISTRY_POISONED.load(Ordering::SeqCst) {
        return None;
    }
    REGISTRY_PID.store(std::process::id(), Ordering::SeqCst);
    REGISTRY_IN_USE.fetch_add(1, Ordering::SeqCst);
    let result = f();
    REGISTRY_IN_USE.fetch_sub(1, Ordering::SeqCst);
    Some(result)
}

/// In a forked child (only the forking thread exists): poisons the registry
/// if another thread of the parent was inside it. Lock-free.
fn note_fork() {
    let pid = std::process::id();
    let last = REGISTRY_PID.load(Ordering::SeqCst);
    if last != 0 && last != pid {
        if REGISTRY_IN_USE.load(Ordering::SeqCst) > 0 {
            REGISTRY_POISONED.store(true, Ordering::SeqCst);
        }
        REGISTRY_PID.store(pid, Ordering::SeqCst);
    }
}

/// Unregisters `id`; `false` if that was not possible (poisoned child).
fn unregister(id: SigId) -> bool {
    registry_call(|| signal_hook_registry::unregister(id)).is_some()
}

/// Makes sure this thread has an alternate signal stack (see
/// [`ensure_altstack`]); the one installed here lives until thread exit.
fn ensure_thread_altstack() {
    if sys::has_altstack() {
        return;
    }
    let guard = ensure_altstack();
    let _ = ALTSTACK.try_with(|slot| {
        let old = slot.borrow_mut().replace(guard);
        drop(old);
    });
}

/// What a delivery does.
#[derive(Clone)]
enum Action {
    /// Run the user's handler in a new greenlet.
    Spawn(Rc<dyn Fn()>),
    /// Run an internal callback on the hub (must not block).
    Callback(Rc<dyn Fn()>),
}

/// State shared by a [`SignalHandle`] and its dispatcher entry.
#[derive(Debug)]
struct Shared {
    signum: c_int,
    /// Cleared by `cancel` and when the dispatcher goes stale.
    active: Cell<bool>,
    /// Keeps the loop alive (gevent's `ref`); `false` for user handlers.
    referenced: Cell<bool>,
}

struct Watcher {
    shared: Rc<Shared>,
    action: Action,
}

/// One hub's self-pipe and watchers.
struct Dispatcher {
    /// The process this pipe belongs to (the actions are inert elsewhere).
    pid: u32,
    read: UnixStream,
    /// The write end; `target` holds its raw descriptor for the actions.
    /// `None` once leaked (it could not be unregistered, see `Drop`).
    write: Option<UnixStream>,
    /// Shared with every action registered for this dispatcher.
    target: Arc<PipeTarget>,
    source: SourceId,
    /// The callback given to the hub; dead once the hub dropped the
    /// registration (`hub::destroy`).
    registered: Weak<dyn Fn()>,
    /// Whether `source` is currently referenced.
    referenced: bool,
    /// In registration order.
    watchers: Vec<Watcher>,
    /// One OS-level action per watched signal number, writing into the pipe.
    actions: Vec<(c_int, SigId)>,
    /// An action could not be unregistered: never close the write end.
    leak_write: bool,
}

impl Dispatcher {
    /// A fresh pipe registered (unreferenced) in this thread's hub.
    fn new() -> io::Result<Dispatcher> {
        let (read, write, source, callback) = new_pipe()?;
        let pid = std::process::id();
        Ok(Dispatcher {
            pid,
            target: Arc::new(PipeTarget::new(write.as_raw_fd(), pid)),
            read,
            write: Some(write),
            source,
            registered: Rc::downgrade(&callback),
            referenced: false,
            watchers: Vec::new(),
            actions: Vec::new(),
            leak_write: false,
        })
    }

    /// The registration is still in this thread's hub.
    fn is_live(&self) -> bool {
        self.registered.strong_count() > 0
    }

    /// Reads everything queued; bit `n` of the result is set when signal `n`
    /// was seen.
    fn drain(&self) -> u128 {
        let mut seen = 0u128;
        let mut buf = [0u8; 128];
        loop {
            match (&self.read).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    for &b in &buf[..n] {
                        if b < 128 {
                            seen |= 1 << b;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // WouldBlock: drained.
                Err(_) => break,
            }
        }
        seen
    }

    /// Registers the OS-level action for `signum` unless there is one.
    fn watch(&mut self, signum: c_int) -> io::Result<()> {
        if !self.actions.iter().any(|(n, _)| *n == signum) {
            let id = register_action(signum, &self.target)?;
            self.actions.push((signum, id));
        }
        Ok(())
    }

    /// Unregisters the OS-level action for `signum` if no watcher needs it.
    fn unwatch_unused(&mut self) {
        let watchers = &self.watchers;
        let mut stuck = false;
        self.actions.retain(|(signum, id)| {
            let used = watchers.iter().any(|w| w.shared.signum == *signum);
            if !used && !unregister(*id) {
                // Stays registered and keeps writing into our pipe: harmless
                // (a spurious wake-up), and the pipe outlives it (see Drop).
                stuck = true;
            }
            used
        });
        if stuck {
            self.leak_write = true;
        }
    }

    /// Brings the source's `referenced` flag in line with the watchers.
    fn update_referenced(&mut self) {
        let want = self
            .watchers
            .iter()
            .any(|w| w.shared.active.get() && w.shared.referenced.get());
        if want != self.referenced && self.is_live() {
            self.referenced = want;
            hub::set_fd_referenced(self.source, want);
        }
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        // Make the actions inert, then unregister them: after `unregister`
        // returns none of them runs any more, so nothing writes into a pipe
        // being closed. Where unregistering is impossible (a forked child
        // whose registry lock is held by a thread that is gone), the write
        // end is leaked instead of closed.
        self.target.disable();
        for (_, id) in self.actions.drain(..) {
            if !unregister(id) {
                self.leak_write = true;
            }
        }
        if self.leak_write {
            std::mem::forget(self.write.take());
        }
        for w in self.watchers.drain(..) {
            w.shared.active.set(false);
        }
        if self.is_live() {
            // Leave the poller before `read` is closed (reactor contract).
            hub::deregister_fd(self.source);
        }
    }
}

/// A self-pipe registered in the hub: read end, write end, its source, and
/// the callback (the hub holds it while the registration lives).
type Pipe = (UnixStream, UnixStream, SourceId, Rc<dyn Fn()>);

/// A non-blocking socket pair whose read end is registered (unreferenced)
/// in this thread's hub with [`dispatch`] as its callback.
fn new_pipe() -> io::Result<Pipe> {
    let (read, write) = UnixStream::pair()?;
    read.set_nonblocking(true)?;
    write.set_nonblocking(true)?;
    let callback: Rc<dyn Fn()> = Rc::new(dispatch);
    let source = hub::register_callback_fd(read.as_fd(), true, false, false, Rc::clone(&callback))?;
    Ok((read, write, source, callback))
}

/// Registers the OS-level action for `signum` that writes into `target`.
fn register_action(signum: c_int, target: &Arc<PipeTarget>) -> io::Result<SigId> {
    let byte = u8::try_from(signum).expect("validated signal numbers fit in a byte");
    registry_call(|| sys::register_signal_pipe(signum, Arc::clone(target), byte)).unwrap_or_else(
        || {
            Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "signal: cannot install a handler for {} in this forked child: another \
                     thread was inside signal-hook-registry when the parent forked, so its \
                     lock may stay held for ever (watch the signal before forking)",
                    signal_name(signum)
                ),
            ))
        },
    )
}

/// Signals that [`signal`] refuses, with the reason.
const REFUSED: [(c_int, &str); 6] = [
    (libc::SIGKILL, "cannot be caught or ignored"),
    (libc::SIGSTOP, "cannot be caught or ignored"),
    (
        libc::SIGSEGV,
        "is a synchronous fault signal: a handler that returns faults again, and greenlet \
         stack-overflow detection owns it",
    ),
    (
        libc::SIGBUS,
        "is a synchronous fault signal: a handler that returns faults again, and greenlet \
         stack-overflow detection owns it",
    ),
    (
        libc::SIGILL,
        "is a synchronous fault signal: a handler that returns faults again",
    ),
    (
        libc::SIGFPE,
        "is a synchronous fault signal: a handler that returns faults again",
    ),
];

/// Rejects numbers that are not signals this crate can watch safely.
fn check_signum(signum: c_int) -> io::Result<()> {
    if let Some((_, why)) = REFUSED.iter().find(|(n, _)| *n == signum) {
        return Err(invalid(format!(
            "{} {why}; it cannot be watched",
            signal_name(signum)
        )));
    }
    if signal_hook_registry::FORBIDDEN.contains(&signum) {
        return Err(invalid(format!(
            "{} cannot be watched (signal-hook-registry forbids it)",
            signal_name(signum)
        )));
    }
    let (low, high) = signal_range();
    if !(low..=high).contains(&signum) || !is_signal(signum) {
        return Err(invalid(format!(
            "{signum} is not a signal number (expected {low}..={high})"
        )));
    }
    Ok(())
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("signal: {message}"))
}

/// The lowest and highest signal numbers of this platform.
fn signal_range() -> (c_int, c_int) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        (1, libc::SIGRTMAX())
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        (1, 31)
    }
}

/// `true` for a number the OS treats as a signal (Linux: not one of the
/// real-time signals reserved by the C library below `SIGRTMIN`).
fn is_signal(signum: c_int) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        signum < 32 || signum >= libc::SIGRTMIN()
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = signum;
        true
    }
}

/// Signal names every Unix has (POSIX).
const POSIX_NAMES: [(c_int, &str); 28] = [
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGILL, "SIGILL"),
    (libc::SIGTRAP, "SIGTRAP"),
    (libc::SIGABRT, "SIGABRT"),
    (libc::SIGBUS, "SIGBUS"),
    (libc::SIGFPE, "SIGFPE"),
    (libc::SIGKILL, "SIGKILL"),
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGSEGV, "SIGSEGV"),
    (libc::SIGUSR2, "SIGUSR2"),
    (libc::SIGPIPE, "SIGPIPE"),
    (libc::SIGALRM, "SIGALRM"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGCHLD, "SIGCHLD"),
    (libc::SIGCONT, "SIGCONT"),
    (libc::SIGSTOP, "SIGSTOP"),
    (libc::SIGTSTP, "SIGTSTP"),
    (libc::SIGTTIN, "SIGTTIN"),
    (libc::SIGTTOU, "SIGTTOU"),
    (libc::SIGURG, "SIGURG"),
    (libc::SIGXCPU, "SIGXCPU"),
    (libc::SIGXFSZ, "SIGXFSZ"),
    (libc::SIGVTALRM, "SIGVTALRM"),
    (libc::SIGPROF, "SIGPROF"),
    (libc::SIGWINCH, "SIGWINCH"),
    (libc::SIGSYS, "SIGSYS"),
];

/// Names only some platforms have.
#[cfg(any(target_os = "linux", target_os = "android"))]
const PLATFORM_NAMES: &[(c_int, &str)] = &[
    (libc::SIGSTKFLT, "SIGSTKFLT"),
    (libc::SIGIO, "SIGIO"),
    (libc::SIGPWR, "SIGPWR"),
];
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
const PLATFORM_NAMES: &[(c_int, &str)] = &[
    (libc::SIGIO, "SIGIO"),
    (libc::SIGEMT, "SIGEMT"),
    (libc::SIGINFO, "SIGINFO"),
];
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
)))]
const PLATFORM_NAMES: &[(c_int, &str)] = &[];

/// The usual name of `signum` (`"SIGUSR1"`, `"SIGRTMIN+2"`, `"signal 99"`).
///
/// A portable table (POSIX names plus each platform's own), the same names
/// as `signal_hook::low_level::signal_name`, without that dependency.
pub(crate) fn signal_name(signum: c_int) -> String {
    if let Some((_, name)) = POSIX_NAMES
        .iter()
        .chain(PLATFORM_NAMES)
        .find(|(n, _)| *n == signum)
    {
        return (*name).to_owned();
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
        if (min..=max).contains(&signum) {
            return match signum - min {
                0 => "SIGRTMIN".to_owned(),
                n => format!("SIGRTMIN+{n}"),
            };
        }
    }
    format!("signal {signum}")
}

/// Runs `f` with this thread's dispatcher, creating it if needed and first
/// tearing down one whose hub registration is gone (`hub::destroy`).
fn with_dispatcher<R>(f: impl FnOnce(&mut Dispatcher) -> io::Result<R>) -> io::Result<R> {
    // Stale dispatchers are dropped outside the borrow (their `Drop` calls
    // into the hub and the registry, never back into this module).
    let stale = DISPATCHER.with_borrow_mut(|slot| {
        if slot.as_ref().is_some_and(|d| !d.is_live()) {
            slot.take()
        } else {
            None
        }
    });
    drop(stale);
    let created = DISPATCHER
        .with_borrow(Option::is_none)
        .then(Dispatcher::new)
        .transpose()?;
    DISPATCHER.with_borrow_mut(|slot| {
        if let Some(d) = created {
            *slot = Some(d);
        }
        f(slot.as_mut().expect("created just above"))
    })
}

/// Adds a watcher for `signum` to this thread's hub.
fn add_watcher(signum: c_int, referenced: bool, action: Action) -> io::Result<SignalHandle> {
    check_signum(signum)?;
    // The handler runs with SA_ONSTACK: give this thread a stack for it.
    ensure_thread_altstack();
    let shared = Rc::new(Shared {
        signum,
        active: Cell::new(true),
        referenced: Cell::new(referenced),
    });
    let result = with_dispatcher(|d| {
        d.watch(signum)?;
        d.watchers.push(Watcher {
            shared: Rc::clone(&shared),
            action,
        });
        d.update_referenced();
        Ok(())
    });
    if let Err(e) = result {
        // The dispatcher may have been created for this watcher alone.
        drop_if_unused();
        return Err(e);
    }
    Ok(SignalHandle { shared })
}

/// Tears the dispatcher down when it has no watcher left.
fn drop_if_unused() {
    let unused = DISPATCHER
        .try_with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.as_ref().is_some_and(|d| d.watchers.is_empty()) {
                slot.take()
            } else {
                None
            }
        })
        .ok()
        .flatten();
    drop(unused);
}

/// The hub callback of the self-pipe: drain, re-arm, deliver.
fn dispatch() {
    let fired = DISPATCHER.with_borrow(|slot| {
        let d = slot.as_ref().filter(|d| d.is_live())?;
        let seen = d.drain();
        let actions: Vec<(Rc<Shared>, Action)> = d
            .watchers
            .iter()
            .filter(|w| w.shared.active.get() && seen & (1 << w.shared.signum) != 0)
            .map(|w| (Rc::clone(&w.shared), w.action.clone()))
            .collect();
        Some((d.source, actions))
    });
    let Some((source, actions)) = fired else {
        return;
    };
    // Re-arm before delivering, so signals arriving meanwhile wake the loop.
    if let Err(e) = hub::rearm_fd(source) {
        crate::hub::warn(format_args!("greenlet: cannot re-arm the signal pipe: {e}"));
    }
    for (shared, action) in actions {
        deliver(shared, action);
    }
}

/// One delivery of one watcher (outside every borrow).
fn deliver(shared: Rc<Shared>, action: Action) {
    let signum = shared.signum;
    let outcome = catch_unwind(AssertUnwindSafe(|| match action {
        Action::Callback(callback) => callback(),
        Action::Spawn(handler) => crate::spawn_raw(move || run_handler(&shared, &*handler)),
    }));
    if let Err(payload) = outcome {
        report_panic(signum, payload);
    }
}

/// Body of a handler greenlet.
fn run_handler(shared: &Shared, handler: &dyn Fn()) {
    // Cancelled between the delivery and this greenlet's first switch.
    if !shared.active.get() {
        return;
    }
    if let Err(payload) = catch_unwind(AssertUnwindSafe(handler)) {
        // Kills, timeouts and the substrate's own unwinds are not panics of
        // the handler: let the greenlet root deal with them.
        if payload.is::<hub::Unwind>() || switch::is_generator_payload(payload.as_ref()) {
            resume_unwind(payload);
        }
        report_panic(shared.signum, payload);
    }
}

fn report_panic(signum: c_int, payload: Box<dyn std::any::Any + Send>) {
    let error = GreenletError::Panicked(PanicError::new(payload));
    hub::report(&hub::ErrorReport {
        context: "signal handler",
        greenlet: format!("<{} handler>", signal_name(signum)),
        error: &error,
    });
}

/// After `fork()`, in the child, once the hub has a new poller: give this
/// thread's dispatcher its own pipe. A no-op in the process that created
/// the dispatcher.
///
/// Takes no lock that existed at fork time: the actions the parent
/// registered stay registered (they are inherited with the process) and are
/// pointed at the new pipe through their atomic [`PipeTarget`]; the
/// registry is not called. Dispatchers of other threads' hubs keep their
/// parent's pid and stay inert.
///
/// On error the watchers are inactive.
pub(crate) fn reinit_after_fork() -> io::Result<()> {
    note_fork();
    let pid = std::process::id();
    let old = DISPATCHER.with_borrow_mut(|slot| {
        if slot.as_ref().is_some_and(|d| d.pid != pid || !d.is_live()) {
            slot.take()
        } else {
            None
        }
    });
    let Some(mut d) = old else { return Ok(()) };
    if !d.is_live() || d.watchers.is_empty() {
        return Ok(()); // dropped here: nothing to move
    }
    // On error `d` drops: its watchers end.
    let (read, write, source, callback) = new_pipe()?;
    // The inherited read end leaves the (new) poller before it is closed.
    hub::deregister_fd(d.source);
    d.target.retarget(write.as_raw_fd(), pid);
    // Our copies of the inherited pair close here; the parent keeps its own.
    d.read = read;
    d.write = Some(write);
    d.source = source;
    d.registered = Rc::downgrade(&callback);
    d.referenced = false;
    d.pid = pid;
    d.update_referenced();
    DISPATCHER.with_borrow_mut(|slot| *slot = Some(d));
    Ok(())
}

/// Watches `signum` for the crate itself: `callback` runs on the hub (it
/// must not block) once per loop wake-up that saw the signal.
pub(crate) fn watch_internal(
    signum: c_int,
    referenced: bool,
    callback: Rc<dyn Fn()>,
) -> io::Result<SignalHandle> {
    add_watcher(signum, referenced, Action::Callback(callback))
}

/// Runs `handler` in a new greenlet each time the process receives `signum`
/// (gevent's `signal_handler(signalnum, handler)`).
///
/// The watcher belongs to this thread's hub and does not keep it alive
/// (gevent's `ref=False`): [`hub::join`] returns even
/// while it is installed. Deliveries coalesce: signals that arrive before
/// the hub gets to them run the handler once. Several watchers may watch the
/// same signal; each runs. Dropping the returned handle leaves the handler
/// installed (like gevent); [`SignalHandle::cancel`] removes it.
/// [`hub::destroy`] removes every watcher of the hub.
///
/// A panic in the handler is reported through the hub's error handler
/// ([`hub::set_error_handler`], context
/// `"signal handler"`) and ends only that greenlet.
///
/// The OS-level handler is installed with `signal-hook-registry`, which
/// chains a handler installed before it; it only writes one byte into a
/// pipe the hub polls, so it never interrupts greenlet code. It runs with
/// `SA_ONSTACK` on the thread's alternate signal stack (one is installed for
/// threads in a hub scope and for the thread calling this), so a signal that
/// arrives while a greenlet's stack is nearly full cannot overflow it.
///
/// **Unlike gevent, cancelling the last watcher does not restore the default
/// disposition**: the registry's handler stays installed, so the signal is
/// then ignored (a cancelled `SIGINT` watcher leaves Ctrl-C doing nothing).
/// Keep a watcher for signals that must still end the process, and end it
/// from the handler.
///
/// # Errors
///
/// `ErrorKind::InvalidInput` for numbers that cannot be watched: `0`,
/// negative or out of range, `SIGKILL` and `SIGSTOP` (uncatchable), and the
/// synchronous fault signals `SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE` (a
/// handler that returns faults again, and greenlet stack-overflow detection
/// owns `SIGSEGV`/`SIGBUS`); the message names the signal and the reason.
/// An I/O error if the pipe cannot be created or registered (out of
/// descriptors), or, in a child forked while another thread was installing
/// a handler, for a signal number not watched before the fork (see
/// [`fork`](crate::fork)).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// use greenlet::{send_signal, signal, sleep};
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use std::time::Duration;
///
/// greenlet::run(|| {
///     let hits = Rc::new(Cell::new(0));
///     let h = hits.clone();
///     let handle = signal(libc::SIGUSR2, move || {
///         sleep(Duration::from_millis(1)); // handlers may block
///         h.set(h.get() + 1);
///     })
///     .unwrap();
///     send_signal(std::process::id(), libc::SIGUSR2).unwrap();
///     while hits.get() == 0 {
///         sleep(Duration::from_millis(1));
///     }
///     handle.cancel();
///     assert!(signal(libc::SIGKILL, || ()).is_err());
/// });
/// ```
pub fn signal(signum: i32, handler: impl Fn() + 'static) -> io::Result<SignalHandle> {
    add_watcher(signum, false, Action::Spawn(Rc::new(handler)))
}

/// A signal watcher installed by [`signal`] (gevent's `signal` object).
///
/// Not `Send`: it belongs to the hub of the thread that created it.
/// Dropping it does **not** cancel the watcher.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// greenlet::run(|| {
///     let handle = greenlet::signal(libc::SIGWINCH, || ()).unwrap();
///     assert_eq!(handle.signum(), libc::SIGWINCH);
///     assert!(handle.is_active());
///     handle.cancel();
///     assert!(!handle.is_active());
/// });
/// ```
pub struct SignalHandle {
    shared: Rc<Shared>,
}

impl fmt::Debug for SignalHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalHandle")
            .field("signal", &signal_name(self.shared.signum))
            .field("active", &self.is_active())
            .field("referenced", &self.shared.referenced.get())
            .finish()
    }
}

impl SignalHandle {
    /// The watched signal number.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// greenlet::run(|| {
    ///     let h = greenlet::signal(libc::SIGUSR1, || ()).unwrap();
    ///     assert_eq!(h.signum(), libc::SIGUSR1);
    ///     h.cancel();
    /// });
    /// ```
    pub fn signum(&self) -> i32 {
        self.shared.signum
    }

    /// `true` until [`cancel`](SignalHandle::cancel) (or the hub's
    /// destruction).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// greenlet::run(|| {
    ///     let h = greenlet::signal(libc::SIGUSR1, || ()).unwrap();
    ///     assert!(h.is_active());
    ///     greenlet::hub::destroy();
    ///     assert!(!h.is_active());
    /// });
    /// ```
    pub fn is_active(&self) -> bool {
        if !self.shared.active.get() {
            return false;
        }
        let live = DISPATCHER
            .try_with(|cell| cell.borrow().as_ref().is_some_and(Dispatcher::is_live))
            .unwrap_or(false);
        if !live {
            self.shared.active.set(false);
        }
        live
    }

    /// Stops future deliveries: once this returns, the handler is not
    /// started again (a handler greenlet already running goes on). Calling
    /// it again does nothing. The last cancel on a hub closes its self-pipe.
    /// The signal's default action is not restored (see [`signal`]): it is
    /// ignored from now on unless another watcher exists.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// greenlet::run(|| {
    ///     let h = greenlet::signal(libc::SIGUSR1, || ()).unwrap();
    ///     h.cancel();
    ///     h.cancel();
    ///     assert!(greenlet::hub::stats().is_quiet());
    /// });
    /// ```
    pub fn cancel(&self) {
        if !self.shared.active.replace(false) {
            return;
        }
        let removed = DISPATCHER
            .try_with(|cell| {
                let mut slot = cell.borrow_mut();
                let d = slot.as_mut()?;
                let i = d
                    .watchers
                    .iter()
                    .position(|w| Rc::ptr_eq(&w.shared, &self.shared))?;
                let w = d.watchers.remove(i);
                d.unwatch_unused();
                d.update_referenced();
                Some(w)
            })
            .ok()
            .flatten();
        // The handler (user code) is dropped outside the borrow.
        drop(removed);
        drop_if_unused();
    }

    /// `true` if this watcher keeps the hub alive (gevent's `ref`); `false`
    /// unless changed with [`set_referenced`](SignalHandle::set_referenced).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// greenlet::run(|| {
    ///     let h = greenlet::signal(libc::SIGUSR1, || ()).unwrap();
    ///     assert!(!h.is_referenced());
    ///     h.cancel();
    /// });
    /// ```
    pub fn is_referenced(&self) -> bool {
        self.shared.referenced.get()
    }

    /// Makes the watcher keep the hub alive (`true`) or not (`false`, the
    /// default). While a referenced watcher is active, waits on the native
    /// stack wait for signals instead of failing with
    /// [`LoopExit`](crate::LoopExit).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::{hub, send_signal, signal};
    /// use std::time::Duration;
    ///
    /// greenlet::run(|| {
    ///     let h = signal(libc::SIGUSR1, || ()).unwrap();
    ///     h.set_referenced(true);
    ///     // The watcher now keeps `join` waiting (up to the timeout).
    ///     assert!(!hub::join_timeout(Duration::from_millis(5)));
    ///     h.set_referenced(false);
    ///     assert!(hub::join_timeout(Duration::from_millis(5)));
    ///     h.cancel();
    /// });
    /// ```
    pub fn set_referenced(&self, referenced: bool) {
        self.shared.referenced.set(referenced);
        let _ = DISPATCHER.try_with(|cell| {
            if let Some(d) = cell.borrow_mut().as_mut() {
                d.update_referenced();
            }
        });
    }
}
