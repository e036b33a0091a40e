//! The hub's I/O reactor: one `polling::Poller` per hub, created lazily.
//!
//! A hub that never waits on a file descriptor and never hands out a
//! [`HubHandle`](super::HubHandle) has no poller at all: it waits for timers
//! with `thread::sleep`, which costs one syscall instead of the
//! `timerfd`+`epoll_wait` pair `Poller::wait` needs.
//!
//! Sources are registered in oneshot mode (polling's default): after an event
//! fires, the source is disarmed until [`Reactor::rearm`]. Each source has a
//! key (its slab index) and a target that the hub turns into work: a waiter to
//! wake, or a callback to queue.
//!
//! The few raw syscalls the runtime needs around the poller (`fork`, whose
//! child must replace the poller; the signal self-pipe action; `waitpid` and
//! `kill` for child watching) live in [`sys`] below, so that this file and
//! `greenlet/switch.rs` remain the only homes of `unsafe`.
//!
//! # Safety contract
//!
//! `Poller::add` is `unsafe` because a registered descriptor must be deleted
//! from the poller before it is closed. Every `add` here happens in
//! [`Reactor::register`], whose caller passes a `BorrowedFd<'_>` and must
//! call [`Reactor::deregister`] before that borrow ends (the wait guards in
//! `hub::io` do so in `Drop`, which also runs on unwinding), or owns the
//! descriptor for as long as the registration lives (signal self-pipes).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use polling::{Event, Events, Poller};

use super::Waker;

/// What an I/O event turns into.
#[derive(Clone)]
pub(crate) enum IoTarget {
    /// Wake a parked greenlet (or the native stack).
    Wake(Waker),
    /// Queue a callback on the hub; the source stays registered (and is
    /// re-armed by the callback's owner).
    Callback(Rc<dyn Fn()>),
}

impl std::fmt::Debug for IoTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IoTarget::Wake(w) => f.debug_tuple("Wake").field(w).finish(),
            IoTarget::Callback(_) => f.write_str("Callback(..)"),
        }
    }
}

/// Identifies a registered source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SourceId(usize);

#[derive(Debug)]
struct Source {
    fd: RawFd,
    readable: bool,
    writable: bool,
    target: IoTarget,
    /// Counted in `referenced` (keeps the loop alive).
    referenced: bool,
}

/// Lazily created poller plus registered sources.
#[derive(Debug, Default)]
pub(crate) struct Reactor {
    /// Shared with [`super::HubHandle`]s so other threads can `notify` it.
    poller: Option<Arc<Poller>>,
    events: Option<Events>,
    sources: Vec<Option<Source>>,
    free: Vec<usize>,
    registered: usize,
    referenced: usize,
}

impl Reactor {
    pub(crate) const fn new() -> Self {
        Reactor {
            poller: None,
            events: None,
            sources: Vec::new(),
            free: Vec::new(),
            registered: 0,
            referenced: 0,
        }
    }

    /// The poller, created on first use.
    pub(crate) fn poller(&mut self) -> io::Result<&Arc<Poller>> {
        if self.poller.is_none() {
            self.poller = Some(Arc::new(Poller::new()?));
        }
        Ok(self.poller.as_ref().expect("created just above"))
    }

    /// `true` once a poller exists (waits then go through it).
    pub(crate) fn has_poller(&self) -> bool {
        self.poller.is_some()
    }

    /// Registered sources.
    pub(crate) fn len(&self) -> usize {
        self.registered
    }

    /// Registered sources that keep the loop alive.
    pub(crate) fn referenced(&self) -> usize {
        self.referenced
    }

    /// Registers `fd` for a oneshot readiness event.
    ///
    /// The caller must deregister before the descriptor is closed (see the
    /// module's safety contract).
    pub(crate) fn register(
        &mut self,
        fd: BorrowedFd<'_>,
        readable: bool,
        writable: bool,
        referenced: bool,
        target: IoTarget,
    ) -> io::Result<SourceId> {
        let key = match self.free.pop() {
            Some(key) => key,
            None => {
                self.sources.push(None);
                self.sources.len() - 1
            }
        };
        let poller = match self.poller() {
            Ok(p) => Arc::clone(p),
            Err(e) => {
                self.free.push(key);
                return Err(e);
            }
        };
        // SAFETY: the source is deleted from the poller in `deregister` (or
        // when the poller is replaced after a fork) before the descriptor can
        // be closed: callers hold the `BorrowedFd` for the registration's
        // whole life or own the descriptor (module safety contract).
        let added = unsafe { poller.add(fd.as_raw_fd(), Event::new(key, readable, writable)) };
        if let Err(e) = added {
            self.free.push(key);
            return Err(e);
        }
        self.sources[key] = Some(Source {
            fd: fd.as_raw_fd(),
            readable,
            writable,
            target,
            referenced,
        });
        self.registered += 1;
        self.referenced += usize::from(referenced);
        Ok(SourceId(key))
    }

    /// Re-arms a oneshot source after it fired, with a new target.
    pub(crate) fn rearm(&mut self, id: SourceId, target: Option<IoTarget>) -> io::Result<()> {
        let poller = Arc::clone(self.poller()?);
        let source = self.sources[id.0]
            .as_mut()
            .expect("rearm of a registered source");
        if let Some(target) = target {
            source.target = target;
        }
        // SAFETY: `source.fd` is registered and, per the module contract, not
        // closed before `deregister`; the borrow only lives for this call.
        let fd = unsafe { BorrowedFd::borrow_raw(source.fd) };
        poller.modify(fd, Event::new(id.0, source.readable, source.writable))
    }

    /// Changes whether a source keeps the loop alive.
    pub(crate) fn set_referenced(&mut self, id: SourceId, referenced: bool) {
        if let Some(source) = self.sources.get_mut(id.0).and_then(Option::as_mut) {
            if source.referenced != referenced {
                source.referenced = referenced;
                if referenced {
                    self.referenced += 1;
                } else {
                    self.referenced -= 1;
                }
            }
        }
    }

    /// Removes every source whose target matches (O(n); rare paths only).
    pub(crate) fn deregister_where(&mut self, mut matches: impl FnMut(&IoTarget) -> bool) {
        let ids: Vec<SourceId> = (0..self.sources.len())
            .filter(|k| {
                self.sources[*k]
                    .as_ref()
                    .is_some_and(|s| matches(&s.target))
            })
            .map(SourceId)
            .collect();
        for id in ids {
            self.deregister(id);
        }
    }

    /// Removes a source from the poller.
    pub(crate) fn deregister(&mut self, id: SourceId) {
        let Some(source) = self.sources.get_mut(id.0).and_then(Option::take) else {
            return;
        };
        self.free.push(id.0);
        self.registered -= 1;
        self.referenced -= usize::from(source.referenced);
        if let Some(poller) = &self.poller {
            // SAFETY: the descriptor is still open: deregistration happens
            // before the owner closes it (module contract).
            let fd = unsafe { BorrowedFd::borrow_raw(source.fd) };
            // A failure here means the fd is already gone from the set (for
            // example closed behind our back); nothing else to undo.
            let _ = poller.delete(fd);
        }
    }

    /// Waits for events (or `notify`) up to `timeout` and returns the targets
    /// that fired. `None` waits until an event or a notification.
    pub(crate) fn wait(&mut self, timeout: Option<Duration>, fired: &mut Vec<IoTarget>) {
        let Some(poller) = self.poller.clone() else {
            return;
        };
        let events = self.events.get_or_insert_with(Events::new);
        events.clear();
        // `Poller::wait` retries EINTR itself; other errors (EBADF after a
        // descriptor was closed behind our back) are reported and treated
        // like an empty wake-up, so the loop re-evaluates its state.
        if let Err(e) = poller.wait(events, timeout) {
            log::warn!("greenlet: poller wait failed: {e}");
            return;
        }
        for event in events.iter() {
            if let Some(source) = self.sources.get(event.key).and_then(Option::as_ref) {
                fired.push(source.target.clone());
            }
        }
    }

    /// Replaces the poller after `fork()`: the inherited epoll set is shared
    /// with the parent, so it is leaked (never deregistered, see polling#37)
    /// and every live source is added to a fresh one.
    pub(crate) fn reinit(&mut self) -> io::Result<Option<Arc<Poller>>> {
        let Some(old) = self.poller.take() else {
            return Ok(None);
        };
        // Leak the inherited poller: dropping it would `close` the epoll fd
        // (harmless) but its `Drop` also deletes the timerfd/eventfd from the
        // set the parent still uses.
        std::mem::forget(old);
        self.events = None;
        let poller = Arc::clone(self.poller()?);
        for (key, source) in self.sources.iter().enumerate() {
            if let Some(source) = source {
                // SAFETY: same contract as `register`: registered descriptors
                // stay open until deregistered.
                unsafe {
                    poller.add(source.fd, Event::new(key, source.readable, source.writable))?;
                }
            }
        }
        Ok(Some(poller))
    }

    /// Drops every registration (hub teardown); returns the poller.
    pub(crate) fn clear(&mut self) -> Option<Arc<Poller>> {
        let ids: Vec<SourceId> = (0..self.sources.len())
            .filter(|k| self.sources[*k].is_some())
            .map(SourceId)
            .collect();
        for id in ids {
            self.deregister(id);
        }
        self.events = None;
        self.poller.take()
    }
}

/// Raw process and signal syscalls behind safe wrappers.
pub(crate) mod sys {
    use std::io::{self, Write};
    use std::os::unix::net::UnixStream;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;
    use std::sync::Arc;

    use signal_hook_registry::SigId;

    /// `fork(2)`: `0` in the child, the child's pid in the parent.
    pub(crate) fn fork() -> io::Result<libc::pid_t> {
        // SAFETY: `fork` has no memory-safety preconditions of its own. The
        // child gets a copy of this address space with only the calling
        // thread; locks held by other threads at the time stay locked there,
        // which is a deadlock hazard (documented on `crate::fork`), not
        // undefined behaviour: no Rust object is shared between the two
        // processes (each has its own copy of everything).
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(pid)
        }
    }

    /// `waitpid(pid, WNOHANG)` retrying `EINTR`: `Some(status)` once the
    /// child exited.
    pub(crate) fn waitpid_nohang(pid: libc::pid_t) -> io::Result<Option<ExitStatus>> {
        let mut status: libc::c_int = 0;
        loop {
            // SAFETY: `status` is a valid, writable `c_int` for the whole
            // call; `waitpid` writes nothing else.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == 0 {
                return Ok(None);
            }
            if r > 0 {
                return Ok(Some(ExitStatus::from_raw(status)));
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// `kill(pid, signum)` retrying `EINTR`.
    pub(crate) fn kill(pid: libc::pid_t, signum: libc::c_int) -> io::Result<()> {
        loop {
            // SAFETY: `kill` takes plain integers and touches no memory of ours.
            if unsafe { libc::kill(pid, signum) } == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Installs the OS action for `signum`: in process `pid` only, write
    /// `byte` to the non-blocking self-pipe `write`. Bursts coalesce when the
    /// pipe is full.
    ///
    /// `signum` must have passed the caller's validity check (not
    /// `SIGKILL`/`SIGSTOP`/a `signal_hook_registry::FORBIDDEN` signal), or
    /// the registry panics.
    pub(crate) fn register_signal_pipe(
        signum: libc::c_int,
        write: Arc<UnixStream>,
        pid: u32,
        byte: u8,
    ) -> io::Result<SigId> {
        let bytes = [byte];
        let action = move || {
            // A parent's action inherited by a forked child: not ours.
            if std::process::id() != pid {
                return;
            }
            loop {
                match (&*write).write(&bytes) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // Written, or the pipe is full (a wake-up is pending
                    // already: the burst coalesces), or the hub is gone.
                    _ => break,
                }
            }
        };
        // SAFETY: `register` requires the action to be async-signal-safe and
        // not to panic. The action above calls only `getpid()`
        // (`std::process::id`) and `write(2)` on a non-blocking socket
        // (`<&UnixStream as Write>::write` builds its `io::Error` from
        // `errno` without allocating); it takes no lock, allocates nothing,
        // and touches only data it owns (`bytes`, `pid`) and an `Arc` that is
        // not dropped inside the handler (the registry drops the closure on
        // `unregister`, outside any signal handler). The caller validated
        // `signum` (documented precondition), so `register` does not panic.
        unsafe { signal_hook_registry::register(signum, action) }
    }
}
