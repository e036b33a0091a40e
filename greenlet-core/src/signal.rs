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
//! * **fork.** The pipe is shared with the parent after `fork()`. The actions
//!   compare `getpid()` with the pid that registered them, so the parent's
//!   actions do nothing in the child (this also covers hubs of threads that
//!   do not exist in the child). [`crate::reinit`] (called by
//!   [`crate::fork`] in the child) gives the forking thread's hub a fresh
//!   pipe and re-registers its watchers for the child's pid.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::raw::c_int;
use std::os::unix::net::UnixStream;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::rc::{Rc, Weak};
use std::sync::Arc;

use signal_hook_registry::SigId;

use crate::greenlet::error::{GreenletError, PanicError};
use crate::greenlet::switch;
use crate::hub::{self, SourceId};

thread_local! {
    /// This thread's dispatcher, `None` while no watcher exists.
    static DISPATCHER: RefCell<Option<Dispatcher>> = const { RefCell::new(None) };
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
    /// The process that registered the actions (they are inert elsewhere).
    pid: u32,
    read: UnixStream,
    write: Arc<UnixStream>,
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
}

impl Dispatcher {
    /// A fresh pipe registered (unreferenced) in this thread's hub.
    fn new() -> io::Result<Dispatcher> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let callback: Rc<dyn Fn()> = Rc::new(dispatch);
        let source =
            hub::register_callback_fd(read.as_fd(), true, false, false, Rc::clone(&callback))?;
        Ok(Dispatcher {
            pid: std::process::id(),
            read,
            write: Arc::new(write),
            source,
            registered: Rc::downgrade(&callback),
            referenced: false,
            watchers: Vec::new(),
            actions: Vec::new(),
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
            let id = register_action(signum, &self.write, self.pid)?;
            self.actions.push((signum, id));
        }
        Ok(())
    }

    /// Unregisters the OS-level action for `signum` if no watcher needs it.
    fn unwatch_unused(&mut self) {
        let watchers = &self.watchers;
        self.actions.retain(|(signum, id)| {
            let used = watchers.iter().any(|w| w.shared.signum == *signum);
            if !used {
                signal_hook_registry::unregister(*id);
            }
            used
        });
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
        // Unregister the OS actions first: after `unregister` returns none of
        // them runs any more, so nothing writes into a pipe being closed.
        for (_, id) in self.actions.drain(..) {
            signal_hook_registry::unregister(id);
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

/// Registers the OS-level action for `signum` that writes into `write`.
fn register_action(signum: c_int, write: &Arc<UnixStream>, pid: u32) -> io::Result<SigId> {
    let byte = u8::try_from(signum).expect("validated signal numbers fit in a byte");
    crate::hub::reactor::sys::register_signal_pipe(signum, Arc::clone(write), pid, byte)
}

/// Rejects numbers that are not catchable signals.
fn check_signum(signum: c_int) -> io::Result<()> {
    let name = signal_name(signum);
    if signum == libc::SIGKILL || signum == libc::SIGSTOP {
        return Err(invalid(format!("{name} cannot be caught or ignored")));
    }
    if signal_hook_registry::FORBIDDEN.contains(&signum) {
        return Err(invalid(format!(
            "{name} is a synchronous fault signal; a handler that returns would fault again"
        )));
    }
    let standard = (1..32).contains(&signum);
    let realtime = (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&signum);
    if !standard && !realtime {
        return Err(invalid(format!(
            "{signum} is not a signal number (expected 1..=31 or {}..={})",
            libc::SIGRTMIN(),
            libc::SIGRTMAX()
        )));
    }
    Ok(())
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("signal: {message}"))
}

/// The usual name of `signum` (`"SIGUSR1"`, `"SIGRTMIN+2"`, `"signal 99"`).
pub(crate) fn signal_name(signum: c_int) -> String {
    const NAMES: [(c_int, &str); 31] = [
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
        (libc::SIGSTKFLT, "SIGSTKFLT"),
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
        (libc::SIGIO, "SIGIO"),
        (libc::SIGPWR, "SIGPWR"),
        (libc::SIGSYS, "SIGSYS"),
    ];
    if let Some((_, name)) = NAMES.iter().find(|(n, _)| *n == signum) {
        return (*name).to_owned();
    }
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    if (min..=max).contains(&signum) {
        return match signum - min {
            0 => "SIGRTMIN".to_owned(),
            n => format!("SIGRTMIN+{n}"),
        };
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
        log::warn!("greenlet: cannot re-arm the signal pipe: {e}");
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
/// thread's dispatcher its own pipe and re-register its watchers for the
/// child's pid. A no-op in the process that created the dispatcher.
///
/// On error the watchers that could not be moved are inactive.
pub(crate) fn reinit_after_fork() -> io::Result<()> {
    let pid = std::process::id();
    let old = DISPATCHER.with_borrow_mut(|slot| {
        if slot.as_ref().is_some_and(|d| d.pid != pid || !d.is_live()) {
            slot.take()
        } else {
            None
        }
    });
    let Some(mut old) = old else { return Ok(()) };
    if !old.is_live() || old.watchers.is_empty() {
        return Ok(()); // dropped here: nothing to move
    }
    // On error `old` drops: its watchers end.
    let mut new = Dispatcher::new()?;
    for (_, id) in old.actions.drain(..) {
        signal_hook_registry::unregister(id);
    }
    let mut failure = None;
    for w in std::mem::take(&mut old.watchers) {
        match new.watch(w.shared.signum) {
            Ok(()) => new.watchers.push(w),
            Err(e) => {
                w.shared.active.set(false);
                failure.get_or_insert(e);
            }
        }
    }
    new.update_referenced();
    // Deregisters the inherited pipe from the (new) poller, closes our copies.
    drop(old);
    let unused = new.watchers.is_empty();
    DISPATCHER.with_borrow_mut(|slot| *slot = Some(new));
    if unused {
        drop_if_unused();
    }
    failure.map_or(Ok(()), Err)
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
/// pipe the hub polls, so it never interrupts greenlet code.
///
/// **Unlike gevent, cancelling the last watcher does not restore the default
/// disposition**: the registry's handler stays installed, so the signal is
/// then ignored (a cancelled `SIGINT` watcher leaves Ctrl-C doing nothing).
/// Keep a watcher for signals that must still end the process, and end it
/// from the handler.
///
/// # Errors
///
/// `ErrorKind::InvalidInput` for numbers that cannot be handled: `0`,
/// negative or out of range, `SIGKILL` and `SIGSTOP` (uncatchable), and the
/// synchronous fault signals `SIGILL`, `SIGFPE`, `SIGSEGV`. An I/O error if
/// the pipe cannot be created or registered (out of descriptors).
///
/// # Examples
///
/// ```
/// use greenlet_core::{send_signal, signal, sleep};
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use std::time::Duration;
///
/// let hits = Rc::new(Cell::new(0));
/// let h = hits.clone();
/// let handle = signal(libc::SIGUSR2, move || {
///     sleep(Duration::from_millis(1)); // handlers may block
///     h.set(h.get() + 1);
/// })
/// .unwrap();
/// send_signal(std::process::id(), libc::SIGUSR2).unwrap();
/// while hits.get() == 0 {
///     sleep(Duration::from_millis(1));
/// }
/// handle.cancel();
/// assert!(signal(libc::SIGKILL, || ()).is_err());
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
/// let handle = greenlet_core::signal(libc::SIGWINCH, || ()).unwrap();
/// assert_eq!(handle.signum(), libc::SIGWINCH);
/// assert!(handle.is_active());
/// handle.cancel();
/// assert!(!handle.is_active());
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
    /// let h = greenlet_core::signal(libc::SIGUSR1, || ()).unwrap();
    /// assert_eq!(h.signum(), libc::SIGUSR1);
    /// h.cancel();
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
    /// let h = greenlet_core::signal(libc::SIGUSR1, || ()).unwrap();
    /// assert!(h.is_active());
    /// greenlet_core::hub::destroy();
    /// assert!(!h.is_active());
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
    /// let h = greenlet_core::signal(libc::SIGUSR1, || ()).unwrap();
    /// h.cancel();
    /// h.cancel();
    /// assert!(greenlet_core::hub::stats().is_quiet());
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
    /// let h = greenlet_core::signal(libc::SIGUSR1, || ()).unwrap();
    /// assert!(!h.is_referenced());
    /// h.cancel();
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
    /// use greenlet_core::{hub, send_signal, signal};
    /// use std::time::Duration;
    ///
    /// let h = signal(libc::SIGUSR1, || ()).unwrap();
    /// h.set_referenced(true);
    /// // The watcher now keeps `join` waiting (up to the timeout).
    /// assert!(!hub::join_timeout(Duration::from_millis(5)));
    /// h.set_referenced(false);
    /// assert!(hub::join_timeout(Duration::from_millis(5)));
    /// h.cancel();
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
