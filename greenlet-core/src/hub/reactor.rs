//! The hub's I/O reactor: one `polling::Poller` per hub, created lazily.
//!
//! A hub that never waits on a file descriptor and never hands out a
//! [`HubHandle`](super::HubHandle) has no poller at all: it waits for timers
//! with `thread::sleep`, which costs one syscall instead of the
//! `timerfd`+`epoll_wait` pair `Poller::wait` needs.
//!
//! # Sources
//!
//! Each registered descriptor is a *source*: a slab entry whose index is the
//! poller key. There are two kinds:
//!
//! * **Callback sources** ([`Reactor::register`]): oneshot (polling's
//!   default); after an event fires the source is disarmed until
//!   [`Reactor::rearm`], and the event queues its [`IoTarget`]. Signal
//!   pipes use them.
//! * **Fd-wait sources** ([`Reactor::add_waiter`], [`Reactor::register_edge`]):
//!   one per descriptor (found through `by_fd`), holding at most one
//!   waiting *reader* and one waiting *writer*. A second waiter in a
//!   direction that is taken gets `ErrorKind::ResourceBusy` (gevent's
//!   `ConcurrentObjectUseError`), never the poller's `EEXIST`. An event
//!   wakes the waiter of each direction it reports (hang-ups and errors
//!   report both) and empties that slot.
//!   - *Transient* ones (made by `io::wait_read` and friends on a borrowed
//!     descriptor) are oneshot and level-triggered with the union of the
//!     waiters' interests; they are re-armed after an event while a waiter
//!     is left and deleted from the poller when the last waiter leaves.
//!   - *Owned* ones (made by a `greenlet::net` socket, which owns the
//!     descriptor) are edge-triggered for both directions and stay in the
//!     poller until the socket releases them ([`Reactor::release_edge`]) just
//!     before it closes the descriptor. Their waiters always try the I/O
//!     call first and wait only after `WouldBlock`, so the next edge is
//!     exactly what they need and a wait costs no `epoll_ctl`. A transient
//!     wait on such a descriptor re-arms it (`EPOLL_CTL_MOD` reports the
//!     current readiness) because it has not tried any I/O.
//!
//! # Read readiness of owned sources
//!
//! Owned sources are registered with `EPOLLRDHUP` as well (a raw
//! `epoll_ctl`: `polling` has no flag for it) and share a [`Readiness`] cell
//! with their socket. Every event the poller reports for the source sets
//! [`READ_EDGE`] when it says readable (whether or not a reader waits), and
//! [`READ_ALWAYS`] for good when it reports a hang-up, an error, urgent data
//! or the read side shut down (`EPOLLRDHUP`); an event seen through
//! `Poller::wait` (whose events do not tell `EPOLLRDHUP` apart) sets
//! `READ_ALWAYS` as well, which turns the hint off for that socket. The
//! socket clears `READ_EDGE` when a read proves the receive queue empty
//! (`WouldBlock`, or a TCP read shorter than its buffer) and, while it is
//! clear, waits for the next edge instead of making a read that would say
//! `WouldBlock`: the edge for any data that arrives after the proof is
//! queued by the kernel and reported by a later poll, which sets the flag
//! again, so no wake-up is lost. This saves one `recv` per request of a
//! request/response server.
//!
//! An fd-wait source counts as registered (`len`, the `fds` counter) and
//! referenced (it keeps the loop alive) only while a waiter waits: an idle
//! socket neither keeps the loop alive nor makes teardown wait.
//!
//! Slab entries are tagged with a generation ([`FdKey`]): a socket that
//! outlives its hub scope (whose teardown [`Reactor::clear`]ed everything)
//! or a stale guard never touches an entry reused by another descriptor.
//!
//! The few raw syscalls the runtime needs around the poller (`fork`, whose
//! child must replace the poller; the signal self-pipe action; `waitpid` and
//! `kill` for child watching) live in [`sys`] below, so that this file and
//! `greenlet/switch.rs` remain the only homes of `unsafe`. So do the
//! `FromRawFd` impls of the `greenlet::net` types ([`raw_fd`]).
//!
//! # Safety contract
//!
//! `Poller::add` is `unsafe` because a registered descriptor must be deleted
//! from the poller before it is closed. Every `add` here happens in
//! [`Reactor::register`], [`Reactor::add_waiter`] or
//! [`Reactor::register_edge`]:
//!
//! * `register`'s caller passes a `BorrowedFd<'_>` and must call
//!   [`Reactor::deregister`] before that borrow ends, or owns the descriptor
//!   for as long as the registration lives (signal self-pipes);
//! * `add_waiter`'s caller passes a `BorrowedFd<'_>` and removes its waiter
//!   ([`Reactor::remove_waiter`], from a guard's `Drop`, which also runs on
//!   unwinding) before the borrow ends; a transient source is deleted when
//!   its last waiter leaves;
//! * `register_edge`'s caller owns the descriptor and calls
//!   [`Reactor::release_edge`] before closing it (the `net` types drop their
//!   registration before their descriptor). A source an owner releases while
//!   a transient waiter still waits (through a borrow of the same
//!   descriptor) becomes transient and leaves with that waiter.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use polling::{Event, Events, PollMode, Poller};

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

/// Identifies a registered callback source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SourceId(usize);

/// Identifies an fd-wait source: slab key plus the generation it was made
/// with (so a stale key never names a reused entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FdKey {
    key: usize,
    generation: u64,
}

/// What the poller reported for an owned source since its socket last proved
/// the receive queue empty, shared between the source and the socket's
/// registration (see the module docs): [`READ_EDGE`] and [`READ_ALWAYS`] bits.
pub(crate) type Readiness = Rc<Cell<u8>>;

/// A readable edge was reported (or nothing is known yet): try the read.
pub(crate) const READ_EDGE: u8 = 1;
/// Sticky: a hang-up, an error, urgent data or a shut-down read side was
/// reported (or the events could not tell): always try the read.
pub(crate) const READ_ALWAYS: u8 = 2;

/// The interest of an owned source: both directions, edge-triggered, with
/// `EPOLLRDHUP` (and `EPOLLPRI`, as `polling` asks for readable interest).
const OWNED_EVENTS: u32 =
    (libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;

/// Events one raw `epoll_wait` returns at most.
const RAW_EVENTS: usize = 1024;

/// Generations of fd-wait sources; process-wide so that keys of a previous
/// hub scope on the same thread never match.
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// The waiters of one descriptor.
#[derive(Debug)]
struct FdWaiters {
    /// The greenlet waiting until the descriptor is readable.
    reader: Option<Waker>,
    /// The greenlet waiting until the descriptor is writable.
    writer: Option<Waker>,
    /// Owned by a socket: edge-triggered, stays until `release_edge`.
    owned: bool,
    /// The owner's read readiness (owned sources only; see the module docs).
    readiness: Option<Readiness>,
    /// See [`FdKey`].
    generation: u64,
}

impl FdWaiters {
    fn waiting(&self) -> bool {
        self.reader.is_some() || self.writer.is_some()
    }
}

#[derive(Debug)]
enum Kind {
    /// A callback source (see the module docs).
    Target(IoTarget),
    /// An fd-wait source.
    Fd(FdWaiters),
}

#[derive(Debug)]
struct Source {
    fd: RawFd,
    /// Armed interest (for owned fd-wait sources: both, edge-triggered).
    readable: bool,
    writable: bool,
    mode: PollMode,
    kind: Kind,
    /// Counted in `referenced` (keeps the loop alive). For fd-wait sources:
    /// while a waiter waits.
    referenced: bool,
    /// Counted in `registered`. Always for callback sources; for fd-wait
    /// sources while a waiter waits.
    counted: bool,
}

/// Lazily created poller plus registered sources.
#[derive(Debug, Default)]
pub(crate) struct Reactor {
    /// Shared with [`super::HubHandle`]s so other threads can `notify` it.
    poller: Option<Arc<Poller>>,
    /// Reused event buffer of `wait`.
    events: Option<Events>,
    /// Reused event buffer of `wait_with`'s raw path.
    raw_events: Vec<libc::epoll_event>,
    /// The slab of sources; the index is the poller key.
    sources: Vec<Option<Source>>,
    /// Free slab indices.
    free: Vec<usize>,
    /// Fd-wait sources by descriptor: `by_fd[fd]` is the slab key plus
    /// one, 0 for none (descriptors are small integers).
    by_fd: Vec<usize>,
    /// Sources counted by `len` (see [`Source::counted`]).
    registered: usize,
    /// Sources that keep the loop alive.
    referenced: usize,
}

fn busy(reading: bool) -> io::Error {
    let what = if reading { "reading" } else { "writing" };
    io::Error::new(
        io::ErrorKind::ResourceBusy,
        format!(
            "another greenlet is already {what} on this file descriptor \
             (gevent's ConcurrentObjectUseError)"
        ),
    )
}

impl Reactor {
    pub(crate) const fn new() -> Self {
        Reactor {
            poller: None,
            events: None,
            raw_events: Vec::new(),
            sources: Vec::new(),
            free: Vec::new(),
            by_fd: Vec::new(),
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

    /// Registered sources (fd-wait sources only while a waiter waits).
    pub(crate) fn len(&self) -> usize {
        self.registered
    }

    /// Registered sources that keep the loop alive.
    pub(crate) fn referenced(&self) -> usize {
        self.referenced
    }

    fn by_fd(&self, fd: RawFd) -> Option<usize> {
        let index = usize::try_from(fd).ok()?;
        self.by_fd.get(index).and_then(|k| k.checked_sub(1))
    }

    fn set_by_fd(&mut self, fd: RawFd, key: Option<usize>) {
        let Ok(index) = usize::try_from(fd) else {
            return;
        };
        if index >= self.by_fd.len() {
            if key.is_none() {
                return;
            }
            self.by_fd.resize(index + 1, 0);
        }
        self.by_fd[index] = key.map_or(0, |k| k + 1);
    }

    fn alloc_key(&mut self) -> usize {
        match self.free.pop() {
            Some(key) => key,
            None => {
                self.sources.push(None);
                self.sources.len() - 1
            }
        }
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
        let key = self.alloc_key();
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
            mode: PollMode::Oneshot,
            kind: Kind::Target(target),
            referenced,
            counted: true,
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
        if let (Some(target), Kind::Target(old)) = (target, &mut source.kind) {
            *old = target;
        }
        // SAFETY: `source.fd` is registered and, per the module contract, not
        // closed before `deregister`; the borrow only lives for this call.
        let fd = unsafe { BorrowedFd::borrow_raw(source.fd) };
        poller.modify(fd, Event::new(id.0, source.readable, source.writable))
    }

    /// Changes whether a source keeps the loop alive.
    pub(crate) fn set_referenced(&mut self, id: SourceId, referenced: bool) {
        if let Some(source) = self.sources.get_mut(id.0).and_then(Option::as_mut)
            && source.referenced != referenced
        {
            source.referenced = referenced;
            if referenced {
                self.referenced += 1;
            } else {
                self.referenced -= 1;
            }
        }
    }

    /// Removes a source from the poller.
    pub(crate) fn deregister(&mut self, id: SourceId) {
        self.remove_source(id.0);
    }

    fn remove_source(&mut self, key: usize) {
        let Some(source) = self.sources.get_mut(key).and_then(Option::take) else {
            return;
        };
        self.free.push(key);
        self.registered -= usize::from(source.counted);
        self.referenced -= usize::from(source.referenced);
        if let Kind::Fd(_) = source.kind {
            self.set_by_fd(source.fd, None);
        }
        if let Some(poller) = &self.poller {
            // SAFETY: the descriptor is still open: deregistration happens
            // before the owner closes it (module contract).
            let fd = unsafe { BorrowedFd::borrow_raw(source.fd) };
            // A failure here means the fd is already gone from the set (for
            // example closed behind our back); nothing else to undo.
            let _ = poller.delete(fd);
        }
    }

    /// Updates the `registered`/`referenced` counts of fd-wait source `key`
    /// after its waiters changed.
    fn recount(&mut self, key: usize) {
        let Some(source) = self.sources[key].as_mut() else {
            return;
        };
        let Kind::Fd(waiters) = &source.kind else {
            return;
        };
        let waiting = waiters.waiting();
        if waiting != source.counted {
            source.counted = waiting;
            source.referenced = waiting;
            if waiting {
                self.registered += 1;
                self.referenced += 1;
            } else {
                self.registered -= 1;
                self.referenced -= 1;
            }
        }
    }

    /// The fd-wait source `key` names, if it is still the same one.
    fn fd_source(&mut self, key: FdKey) -> Option<&mut Source> {
        self.sources
            .get_mut(key.key)
            .and_then(Option::as_mut)
            .filter(|s| matches!(&s.kind, Kind::Fd(w) if w.generation == key.generation))
    }

    /// `true` if `key` still names a live owned source.
    pub(crate) fn is_live(&self, key: FdKey) -> bool {
        self.sources
            .get(key.key)
            .and_then(Option::as_ref)
            .is_some_and(
                |s| matches!(&s.kind, Kind::Fd(w) if w.generation == key.generation && w.owned),
            )
    }

    /// Applies a source's interest to the poller (`add` when `new`).
    fn arm(&mut self, key: usize, new: bool) -> io::Result<()> {
        let poller = Arc::clone(self.poller()?);
        let source = self.sources[key].as_ref().expect("arming a live source");
        if source.mode == PollMode::Edge {
            return epoll_ctl_owned(&poller, source.fd, key, new);
        }
        let event = Event::new(key, source.readable, source.writable);
        if new {
            // SAFETY: see the module contract: `add_waiter`'s caller holds a
            // borrow of the descriptor until its waiter leaves (and the
            // source leaves with the last transient waiter), and
            // `register_edge`'s caller owns it until `release_edge`.
            unsafe { poller.add_with_mode(source.fd, event, source.mode) }
        } else {
            // SAFETY: the source is registered, so its descriptor is open
            // (module contract); the borrow only lives for this call.
            let fd = unsafe { BorrowedFd::borrow_raw(source.fd) };
            poller.modify_with_mode(fd, event, source.mode)
        }
    }

    /// Adds a new fd-wait source for `fd` in the given state.
    fn new_fd_source(&mut self, fd: RawFd, owned: bool, waiters: FdWaiters) -> io::Result<usize> {
        let key = self.alloc_key();
        let (readable, writable, mode) = if owned {
            (true, true, PollMode::Edge)
        } else {
            (
                waiters.reader.is_some(),
                waiters.writer.is_some(),
                PollMode::Oneshot,
            )
        };
        self.sources[key] = Some(Source {
            fd,
            readable,
            writable,
            mode,
            kind: Kind::Fd(waiters),
            referenced: false,
            counted: false,
        });
        if let Err(e) = self.arm(key, true) {
            self.sources[key] = None;
            self.free.push(key);
            return Err(e);
        }
        self.set_by_fd(fd, Some(key));
        self.recount(key);
        Ok(key)
    }

    /// Registers `fd`, owned by the caller, edge-triggered for both
    /// directions (or adopts a transient source already there). Returns the
    /// key the owner waits with and releases with [`Reactor::release_edge`]
    /// before closing `fd`.
    #[allow(dead_code)] // kept for callers without a readiness cell
    pub(crate) fn register_edge(&mut self, fd: BorrowedFd<'_>) -> io::Result<FdKey> {
        self.register_edge_with(fd, Rc::new(Cell::new(READ_EDGE)))
    }

    /// [`register_edge`](Reactor::register_edge) sharing `readiness` with
    /// the owner (reset to [`READ_EDGE`]: nothing is known of the new
    /// registration; see the module docs).
    pub(crate) fn register_edge_with(
        &mut self,
        fd: BorrowedFd<'_>,
        readiness: Readiness,
    ) -> io::Result<FdKey> {
        readiness.set(READ_EDGE);
        let raw = fd.as_raw_fd();
        if let Some(key) = self.by_fd(raw) {
            let source = self.sources[key]
                .as_mut()
                .expect("by_fd names live sources");
            let Kind::Fd(waiters) = &mut source.kind else {
                unreachable!("by_fd names fd-wait sources only")
            };
            if waiters.owned {
                // Owned by a registration that is not the caller's (the
                // caller has no live key): its socket was closed without
                // releasing (dropped where the hub was unreachable) and the
                // number reused. The kernel dropped the old epoll item with
                // the old file; forget the entry and register afresh.
                self.remove_source(key);
                return self.register_edge_with(fd, readiness);
            }
            let generation = waiters.generation;
            {
                waiters.owned = true;
                waiters.readiness = Some(readiness);
                source.readable = true;
                source.writable = true;
                source.mode = PollMode::Edge;
                self.arm(key, false)?;
            }
            return Ok(FdKey { key, generation });
        }
        let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
        let waiters = FdWaiters {
            reader: None,
            writer: None,
            owned: true,
            readiness: Some(readiness),
            generation,
        };
        let key = self.new_fd_source(raw, true, waiters)?;
        Ok(FdKey { key, generation })
    }

    /// Releases an owned source before its owner closes the descriptor.
    /// Does nothing for a stale key (the hub was torn down since).
    pub(crate) fn release_edge(&mut self, key: FdKey) {
        let Some(source) = self.fd_source(key) else {
            return;
        };
        let Kind::Fd(waiters) = &mut source.kind else {
            return;
        };
        if waiters.waiting() {
            // A transient waiter (through a borrow) is still there: it
            // removes the source when it leaves.
            waiters.owned = false;
            waiters.readiness = None;
            source.mode = PollMode::Oneshot;
            return;
        }
        self.remove_source(key.key);
    }

    /// Makes `w` the waiter of `fd` for reading and/or writing.
    ///
    /// `owned`: the key of the caller's owned source (its waits follow a
    /// `WouldBlock`, so no re-arm is needed); `None` for a transient wait on
    /// a borrowed descriptor, which must not end before
    /// [`Reactor::remove_waiter`] (module contract).
    ///
    /// # Errors
    ///
    /// `ResourceBusy` if another greenlet waits in one of the directions;
    /// the poller's error if the descriptor cannot be registered.
    pub(crate) fn add_waiter(
        &mut self,
        fd: BorrowedFd<'_>,
        owned: Option<FdKey>,
        read: bool,
        write: bool,
        w: Waker,
    ) -> io::Result<FdKey> {
        let raw = fd.as_raw_fd();
        let existing = match owned {
            Some(k) if self.fd_source(k).is_some() => Some(k.key),
            _ => self.by_fd(raw),
        };
        let Some(key) = existing else {
            let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
            let waiters = FdWaiters {
                reader: read.then_some(w),
                writer: write.then_some(w),
                owned: false,
                readiness: None,
                generation,
            };
            let key = self.new_fd_source(raw, false, waiters)?;
            return Ok(FdKey { key, generation });
        };
        let source = self.sources[key]
            .as_mut()
            .expect("by_fd names live sources");
        let Kind::Fd(waiters) = &mut source.kind else {
            unreachable!("by_fd names fd-wait sources only")
        };
        if read && waiters.reader.is_some() {
            return Err(busy(true));
        }
        if write && waiters.writer.is_some() {
            return Err(busy(false));
        }
        if read {
            waiters.reader = Some(w);
        }
        if write {
            waiters.writer = Some(w);
        }
        let generation = waiters.generation;
        let rearm = if waiters.owned {
            // An owner waits after `WouldBlock`: the next edge is what it
            // needs. A transient wait has tried nothing: re-arming reports
            // the current readiness.
            owned.is_none()
        } else {
            source.readable = waiters.reader.is_some();
            source.writable = waiters.writer.is_some();
            true
        };
        self.recount(key);
        if rearm && let Err(e) = self.arm(key, false) {
            self.remove_waiter(FdKey { key, generation }, w);
            return Err(e);
        }
        Ok(FdKey { key, generation })
    }

    /// Removes `w` from the source's waiter slots (if an event did not take
    /// it already); deletes a transient source whose last waiter left, or
    /// narrows its interest.
    pub(crate) fn remove_waiter(&mut self, key: FdKey, w: Waker) {
        let Some(source) = self.fd_source(key) else {
            return;
        };
        let Kind::Fd(waiters) = &mut source.kind else {
            return;
        };
        let mut changed = false;
        if waiters.reader == Some(w) {
            waiters.reader = None;
            changed = true;
        }
        if waiters.writer == Some(w) {
            waiters.writer = None;
            changed = true;
        }
        if waiters.owned {
            self.recount(key.key);
            return;
        }
        if !waiters.waiting() {
            self.remove_source(key.key);
            return;
        }
        let (r, wr) = (waiters.reader.is_some(), waiters.writer.is_some());
        source.readable = r;
        source.writable = wr;
        self.recount(key.key);
        if changed {
            // The poller error has nowhere to go from a guard; the worst
            // case is a spurious wake-up of the waiter left.
            let _ = self.arm(key.key, false);
        }
    }

    /// Turns one event into the targets it fires.
    ///
    /// `always`: the event reported a hang-up, an error, urgent data or a
    /// shut-down read side, or cannot tell (sets [`READ_ALWAYS`]).
    fn dispatch(
        &mut self,
        key: usize,
        readable: bool,
        writable: bool,
        always: bool,
        fired: &mut Vec<IoTarget>,
    ) {
        let Some(source) = self.sources.get_mut(key).and_then(Option::as_mut) else {
            return;
        };
        match &mut source.kind {
            Kind::Target(target) => fired.push(target.clone()),
            Kind::Fd(waiters) => {
                if let Some(readiness) = &waiters.readiness {
                    let mut bits = readiness.get();
                    if readable {
                        bits |= READ_EDGE;
                    }
                    if always {
                        bits |= READ_ALWAYS;
                    }
                    readiness.set(bits);
                }
                if readable && let Some(w) = waiters.reader.take() {
                    fired.push(IoTarget::Wake(w));
                }
                if writable && let Some(w) = waiters.writer.take() {
                    fired.push(IoTarget::Wake(w));
                }
                let owned = waiters.owned;
                let left = (waiters.reader.is_some(), waiters.writer.is_some());
                self.recount(key);
                if !owned && (left.0 || left.1) {
                    // Oneshot: the event disarmed the descriptor; the waiter
                    // left still needs it.
                    let source = self.sources[key].as_mut().expect("live");
                    source.readable = left.0;
                    source.writable = left.1;
                    let _ = self.arm(key, false);
                }
            }
        }
    }

    /// [`wait`](Reactor::wait), or, when `direct` (nothing can `notify` the
    /// poller: the hub has handed out no `HubHandle`), one raw `epoll_wait`
    /// on the poller's descriptor. `Poller::wait` surrounds its
    /// `epoll_wait` with four more syscalls (arming and re-registering its
    /// timerfd, draining and re-arming its notification eventfd); a server
    /// that wakes up for every request or two pays them per request. The
    /// raw path waits with millisecond resolution (rounded up, so timers
    /// never fire early) and skips polling's own events (`usize::MAX`).
    pub(crate) fn wait_with(
        &mut self,
        timeout: Option<Duration>,
        fired: &mut Vec<IoTarget>,
        direct: bool,
    ) {
        if !direct {
            return self.wait(timeout, fired);
        }
        let Some(poller) = self.poller.clone() else {
            return;
        };
        let ms: libc::c_int = match timeout {
            None => -1,
            Some(d) => {
                let ms = d.as_nanos().div_ceil(1_000_000);
                libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
            }
        };
        let buf = &mut self.raw_events;
        buf.clear();
        if buf.capacity() < RAW_EVENTS {
            buf.reserve_exact(RAW_EVENTS);
        }
        let capacity = libc::c_int::try_from(buf.capacity()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `poller` (an `Arc` clone held for this call) owns the epoll
        // descriptor, so it stays open; `buf` has room for `capacity`
        // `epoll_event`s, which the kernel writes (and no more).
        let n = unsafe { libc::epoll_wait(poller.as_raw_fd(), buf.as_mut_ptr(), capacity, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                crate::hub::warn(format_args!("greenlet: epoll_wait failed: {e}"));
            }
            return; // an empty wake-up: the loop re-evaluates its state
        }
        let n = usize::try_from(n).unwrap_or(0).min(buf.capacity());
        // SAFETY: the kernel initialised the first `n` entries (`n` is at
        // most the capacity passed in).
        unsafe { buf.set_len(n) };
        let raw = std::mem::take(&mut self.raw_events);
        for ev in &raw {
            let key = usize::try_from(ev.u64).unwrap_or(usize::MAX);
            if key == usize::MAX {
                continue; // polling's timerfd or notifier
            }
            let flags = ev.events as libc::c_int;
            let readable =
                flags & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLPRI) != 0;
            let writable = flags & (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) != 0;
            let always =
                flags & (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLPRI) != 0;
            self.dispatch(key, readable, writable, always, fired);
        }
        self.raw_events = raw;
    }

    /// Waits for events (or `notify`) up to `timeout` and returns the targets
    /// that fired. `None` waits until an event or a notification.
    pub(crate) fn wait(&mut self, timeout: Option<Duration>, fired: &mut Vec<IoTarget>) {
        let Some(poller) = self.poller.clone() else {
            return;
        };
        let mut events = self.events.take().unwrap_or_default();
        events.clear();
        // `Poller::wait` retries EINTR itself; other errors (EBADF after a
        // descriptor was closed behind our back) are reported and treated
        // like an empty wake-up, so the loop re-evaluates its state.
        if let Err(e) = poller.wait(&mut events, timeout) {
            crate::hub::warn(format_args!("greenlet: poller wait failed: {e}"));
            self.events = Some(events);
            return;
        }
        for event in events.iter() {
            // `polling`'s events do not report `EPOLLRDHUP`: a readable
            // event may be a shut-down read side, so the hint is off.
            self.dispatch(
                event.key,
                event.readable,
                event.writable,
                event.readable,
                fired,
            );
        }
        self.events = Some(events);
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
                if source.mode == PollMode::Edge {
                    epoll_ctl_owned(&poller, source.fd, key, true)?;
                    continue;
                }
                // SAFETY: same contract as `register`: registered descriptors
                // stay open until deregistered.
                unsafe {
                    poller.add_with_mode(
                        source.fd,
                        Event::new(key, source.readable, source.writable),
                        source.mode,
                    )?;
                }
            }
        }
        Ok(Some(poller))
    }

    /// Drops every registration (hub teardown); returns the poller.
    pub(crate) fn clear(&mut self) -> Option<Arc<Poller>> {
        let keys: Vec<usize> = (0..self.sources.len())
            .filter(|k| self.sources[*k].is_some())
            .collect();
        for key in keys {
            self.remove_source(key);
        }
        self.events = None;
        self.poller.take()
    }
}

/// Adds (`new`) or modifies the poller's entry of an owned source's `fd`
/// with [`OWNED_EVENTS`] and `key` (a raw `epoll_ctl`: `polling` cannot ask
/// for `EPOLLRDHUP`). `polling` keeps no state of its own per descriptor on
/// epoll, so its `delete` still removes the entry.
fn epoll_ctl_owned(poller: &Poller, fd: RawFd, key: usize, new: bool) -> io::Result<()> {
    let op = if new {
        libc::EPOLL_CTL_ADD
    } else {
        libc::EPOLL_CTL_MOD
    };
    let mut event = libc::epoll_event {
        events: OWNED_EVENTS,
        u64: key as u64,
    };
    // SAFETY: `event` is a valid `epoll_event` for the whole call; the epoll
    // descriptor is open (`poller` is borrowed). Adding `fd` is the
    // registration the module's safety contract covers: owned sources are
    // deleted (`release_edge`, `clear`) before their owner closes `fd`.
    let r = unsafe { libc::epoll_ctl(poller.as_raw_fd(), op, fd, &mut event) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Gives the calling thread an alternate signal stack unless it has one
/// (`sigaltstack(NULL, &old)` reports `SS_DISABLE`): a private mapping of
/// `max(SIGSTKSZ, AT_MINSIGSTKSZ)` plus 64 KiB, with a guard page below it.
/// Every signal handler this crate installs has `SA_ONSTACK`, so with this
/// stack in place the kernel never pushes a signal frame onto a (possibly
/// nearly full) greenlet stack.
///
/// The guard's `Drop` disables and unmaps the stack only if this call
/// installed it. Keep the guard on the thread that created it (it is not
/// `Send`). If the stack cannot be created (out of memory or mappings), the
/// guard holds nothing and handlers run on the interrupted stack, as before;
/// the failure is logged.
pub(crate) fn ensure_altstack() -> AltStackGuard {
    sys::ensure_altstack().unwrap_or_else(|e| {
        crate::hub::warn(format_args!(
            "greenlet: cannot install an alternate signal stack: {e}"
        ));
        sys::AltStackGuard::empty()
    })
}

pub(crate) use sys::AltStackGuard;

/// Raw process and signal syscalls behind safe wrappers.
pub(crate) mod sys {
    use std::io;
    use std::os::fd::RawFd;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

    use signal_hook_registry::SigId;

    /// `fork(2)`: `0` in the child, the child's pid in the parent.
    pub(crate) fn fork() -> io::Result<libc::pid_t> {
        // SAFETY: `fork` has no memory-safety preconditions of its own. The
        // child gets a copy of this address space with only the calling
        // thread; locks held by other threads at the time stay locked there.
        // That is a deadlock hazard, not undefined behaviour, and the crate
        // avoids it: in the child it takes none of its own locks that
        // existed at fork time (see `crate::fork`). No Rust object is shared
        // between the two processes (each has its own copy of everything).
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

    /// Where a registered signal action writes its byte: a raw descriptor
    /// and the process it is valid in, both atomics, so that a forked child
    /// can point the actions it inherited at a fresh pipe without taking any
    /// lock (see `crate::fork`).
    ///
    /// Invariant (upheld by the owner, `signal::Dispatcher`): `fd` is `-1`
    /// or the write end of a pipe the owner keeps open for as long as it is
    /// stored here; the owner stores `-1` and unregisters every action (or,
    /// when it cannot unregister, leaks the descriptor) before closing it.
    #[derive(Debug)]
    pub(crate) struct PipeTarget {
        fd: AtomicI32,
        pid: AtomicU32,
    }

    impl PipeTarget {
        /// A target writing into `fd` in process `pid`.
        pub(crate) fn new(fd: RawFd, pid: u32) -> PipeTarget {
            PipeTarget {
                fd: AtomicI32::new(fd),
                pid: AtomicU32::new(pid),
            }
        }

        /// Points the actions at `fd` in process `pid` (lock-free: callable
        /// in a forked child).
        pub(crate) fn retarget(&self, fd: RawFd, pid: u32) {
            self.pid.store(0, Ordering::SeqCst);
            self.fd.store(fd, Ordering::SeqCst);
            self.pid.store(pid, Ordering::SeqCst);
        }

        /// Makes the actions inert (before the descriptor is closed).
        pub(crate) fn disable(&self) {
            self.pid.store(0, Ordering::SeqCst);
            self.fd.store(-1, Ordering::SeqCst);
        }

        /// Runs inside the signal handler: async-signal-safe.
        fn write_byte(&self, byte: u8) {
            // A parent's action inherited by a forked child, or disabled.
            if self.pid.load(Ordering::SeqCst) != std::process::id() {
                return;
            }
            let fd = self.fd.load(Ordering::SeqCst);
            if fd < 0 {
                return;
            }
            let buf = [byte];
            loop {
                // SAFETY: `buf` is a valid one-byte buffer for the whole
                // call. `fd` is the open write end of the owner's pipe (type
                // invariant: it is replaced by -1, and the action
                // unregistered, before the pipe closes); a stale descriptor
                // would at worst make `write` fail with EBADF.
                let r = unsafe { libc::write(fd, buf.as_ptr().cast(), 1) };
                if r >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                    // Written, or the pipe is full (a wake-up is pending
                    // already: the burst coalesces), or the hub is gone.
                    break;
                }
            }
        }
    }

    /// Installs the OS action for `signum`: write `byte` into `target`'s
    /// pipe (when it is valid in this process). Bursts coalesce when the pipe
    /// is full. The handler runs on the thread's alternate signal stack
    /// (`SA_ONSTACK`, see [`add_onstack`]).
    ///
    /// `signum` must have passed the caller's validity check (not
    /// `SIGKILL`/`SIGSTOP`/a `signal_hook_registry::FORBIDDEN` signal), or
    /// the registry panics.
    pub(crate) fn register_signal_pipe(
        signum: libc::c_int,
        target: Arc<PipeTarget>,
        byte: u8,
    ) -> io::Result<SigId> {
        let action = move || target.write_byte(byte);
        // SAFETY: `register` requires the action to be async-signal-safe and
        // not to panic. The action calls only `getpid()`
        // (`std::process::id`), atomic loads and `write(2)`; it takes no
        // lock, allocates nothing, and touches only data it owns (`byte`)
        // and an `Arc` that is not dropped inside the handler (the registry
        // drops the closure on `unregister`, outside any signal handler). The
        // caller validated `signum` (documented precondition), so `register`
        // does not panic.
        let id = unsafe { signal_hook_registry::register(signum, action) }?;
        if let Err(e) = add_onstack(signum) {
            signal_hook_registry::unregister(id);
            return Err(e);
        }
        Ok(id)
    }

    /// Re-installs the current action of `signum` with `SA_ONSTACK` added
    /// (same handler, same mask, same other flags), so that it runs on the
    /// thread's alternate signal stack when there is one.
    /// `signal-hook-registry` installs its handler with
    /// `SA_RESTART | SA_SIGINFO` only; without `SA_ONSTACK` the kernel
    /// pushes the signal frame (several KiB with AVX-512 state) onto
    /// whatever stack is running, which may be a nearly full greenlet stack.
    ///
    /// Does nothing for `SIG_DFL`/`SIG_IGN` or when the flag is set already.
    pub(crate) fn add_onstack(signum: libc::c_int) -> io::Result<()> {
        let mut old = empty_sigaction();
        // SAFETY: a null `act` only reads the current action; `old` is a
        // valid, writable `sigaction` for the whole call.
        if unsafe { libc::sigaction(signum, std::ptr::null(), &mut old) } != 0 {
            return Err(io::Error::last_os_error());
        }
        if old.sa_sigaction == libc::SIG_DFL
            || old.sa_sigaction == libc::SIG_IGN
            || old.sa_flags & libc::SA_ONSTACK != 0
        {
            return Ok(());
        }
        old.sa_flags |= libc::SA_ONSTACK;
        // SAFETY: `old` is the action the kernel just gave us (the
        // registry's handler, its mask and flags) with one more flag; the
        // handler stays the same function, so nothing the registry relies on
        // changes. A racing `sigaction` by another thread between the two
        // calls would be overwritten: only this crate and the registry (which
        // installs once per signal, under its lock) touch these signals.
        if unsafe { libc::sigaction(signum, &old, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// `true` if the current action of `signum` has `SA_ONSTACK` (tests).
    #[allow(dead_code)]
    pub(crate) fn has_onstack(signum: libc::c_int) -> bool {
        let mut old = empty_sigaction();
        // SAFETY: as in `add_onstack`: read-only query into a valid struct.
        let r = unsafe { libc::sigaction(signum, std::ptr::null(), &mut old) };
        r == 0 && old.sa_flags & libc::SA_ONSTACK != 0
    }

    fn empty_sigaction() -> libc::sigaction {
        // SAFETY: `sigaction` is a plain C struct (integers, a function
        // address as an integer, a `sigset_t` bit set) for which all-zero
        // bytes are a valid value (`SIG_DFL`, no flags, empty mask).
        unsafe { std::mem::zeroed() }
    }

    /// Linux's `AT_MINSIGSTKSZ` auxiliary vector entry (not in `libc`).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    const AT_MINSIGSTKSZ: libc::c_ulong = 51;

    /// The smallest signal stack the kernel asks for on this CPU.
    fn min_signal_stack() -> usize {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            // SAFETY: `getauxval` reads the auxiliary vector; an unknown key
            // returns 0.
            let min = unsafe { libc::getauxval(AT_MINSIGSTKSZ) };
            usize::try_from(min).unwrap_or(0).max(libc::SIGSTKSZ)
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            libc::SIGSTKSZ
        }
    }

    fn page_size() -> usize {
        // SAFETY: `sysconf` takes an integer and reads no memory of ours.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(size)
            .ok()
            .filter(|s| *s > 0)
            .unwrap_or(4096)
    }

    /// Extra room on the alternate stack above the kernel's minimum: the
    /// registry's handler and our action run there too.
    const ALTSTACK_ROOM: usize = 64 * 1024;

    /// An alternate signal stack installed by [`ensure_altstack`]; see
    /// [`super::ensure_altstack`].
    #[derive(Debug)]
    pub(crate) struct AltStackGuard {
        /// `(base of the mapping, its length)` when this guard installed the
        /// thread's alternate stack, `None` when one existed already.
        mapping: Option<(usize, usize)>,
        /// Per thread: `sigaltstack` is a property of the calling thread.
        _not_send: std::marker::PhantomData<*const ()>,
    }

    impl AltStackGuard {
        /// A guard that installed nothing.
        pub(crate) fn empty() -> AltStackGuard {
            AltStackGuard {
                mapping: None,
                _not_send: std::marker::PhantomData,
            }
        }

        /// `true` if this guard installed (and will remove) the stack.
        #[allow(dead_code)]
        pub(crate) fn installed(&self) -> bool {
            self.mapping.is_some()
        }
    }

    /// `true` when the calling thread has an alternate signal stack.
    pub(crate) fn has_altstack() -> bool {
        current_altstack().is_some_and(|ss| ss.ss_flags & libc::SS_DISABLE == 0)
    }

    fn current_altstack() -> Option<libc::stack_t> {
        // SAFETY: `stack_t` is a plain C struct; all-zero is a valid value.
        let mut old: libc::stack_t = unsafe { std::mem::zeroed() };
        // SAFETY: a null `ss` only queries; `old` is valid and writable.
        let r = unsafe { libc::sigaltstack(std::ptr::null(), &mut old) };
        (r == 0).then_some(old)
    }

    /// Gives the calling thread an alternate signal stack unless it has one.
    pub(crate) fn ensure_altstack() -> io::Result<AltStackGuard> {
        if has_altstack() {
            return Ok(AltStackGuard::empty());
        }
        let page = page_size();
        let usable = (min_signal_stack() + ALTSTACK_ROOM).div_ceil(page) * page;
        let len = usable + page; // + a guard page at the low end
        // SAFETY: an anonymous private mapping at an address of the kernel's
        // choosing; it aliases nothing.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let unmap = |base: *mut libc::c_void| {
            // SAFETY: `base`/`len` is exactly the mapping made above, which
            // nothing else refers to.
            unsafe { libc::munmap(base, len) };
        };
        // SAFETY: the first page of the mapping made above; making it
        // inaccessible turns an overflow of the signal stack into a fault
        // instead of a silent write below it.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
            let e = io::Error::last_os_error();
            unmap(base);
            return Err(e);
        }
        let stack = libc::stack_t {
            // SAFETY: `page < len`: still inside the mapping.
            ss_sp: unsafe { base.cast::<u8>().add(page) }.cast(),
            ss_flags: 0,
            ss_size: usable,
        };
        // SAFETY: `stack` describes `usable` writable bytes of our own
        // mapping, which stays mapped until the guard's `Drop` has disabled
        // the alternate stack again.
        if unsafe { libc::sigaltstack(&stack, std::ptr::null_mut()) } != 0 {
            let e = io::Error::last_os_error();
            unmap(base);
            return Err(e);
        }
        Ok(AltStackGuard {
            mapping: Some((base as usize, len)),
            _not_send: std::marker::PhantomData,
        })
    }

    impl Drop for AltStackGuard {
        fn drop(&mut self) {
            let Some((base, len)) = self.mapping.take() else {
                return;
            };
            // Only if the thread still uses our stack (someone may have
            // replaced it); never unmap a stack the kernel may still use.
            let ours = current_altstack().is_some_and(|ss| {
                ss.ss_flags & libc::SS_DISABLE == 0
                    && ss.ss_sp as usize > base
                    && (ss.ss_sp as usize) < base + len
            });
            if ours {
                let disable = libc::stack_t {
                    ss_sp: std::ptr::null_mut(),
                    ss_flags: libc::SS_DISABLE,
                    ss_size: 0,
                };
                // SAFETY: disabling takes no memory of ours; it fails (EPERM)
                // only while running on the alternate stack, i.e. inside a
                // handler, which `Drop` of a guard never is.
                if unsafe { libc::sigaltstack(&disable, std::ptr::null_mut()) } != 0 {
                    return; // still in use: leak the mapping
                }
            }
            // SAFETY: the mapping made by `ensure_altstack`, no longer the
            // thread's alternate stack; nothing else refers to it.
            unsafe { libc::munmap(base as *mut libc::c_void, len) };
        }
    }

    /// `CLOCK_MONOTONIC_COARSE` in nanoseconds since boot: a vDSO read with
    /// no `rdtsc`, cheap enough for every loop turn, at the kernel tick's
    /// resolution (1–4 ms). Zero if the clock cannot be read.
    #[inline]
    pub(crate) fn monotonic_coarse_nanos() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable `timespec` for the whole call;
        // `clock_gettime` writes nothing else.
        let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
        if r != 0 {
            return 0;
        }
        (ts.tv_sec as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(ts.tv_nsec as u64)
    }
}

/// `FromRawFd` for the `greenlet::net` types (an `unsafe fn` by std's
/// definition, so it lives here with the crate's other `unsafe`).
mod raw_fd {
    use std::os::fd::{FromRawFd, RawFd};

    use crate::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream};

    macro_rules! from_raw_fd {
        ($($ty:ident => $std:ty),* $(,)?) => {$(
            /// Takes over an open socket descriptor (std's contract: `fd`
            /// is open, of the right kind, and owned by nobody else),
            /// switching it to non-blocking mode.
            impl FromRawFd for $ty {
                unsafe fn from_raw_fd(fd: RawFd) -> $ty {
                    // SAFETY: the caller upholds `FromRawFd`'s contract (an
                    // open descriptor of this socket type that nothing else
                    // owns), which is exactly the std type's contract.
                    $ty::from(unsafe { <$std>::from_raw_fd(fd) })
                }
            }
        )*};
    }

    from_raw_fd!(
        TcpStream => std::net::TcpStream,
        TcpListener => std::net::TcpListener,
        UdpSocket => std::net::UdpSocket,
        UnixStream => std::os::unix::net::UnixStream,
        UnixListener => std::os::unix::net::UnixListener,
        UnixDatagram => std::os::unix::net::UnixDatagram,
    );
}
