//! Seeing inside the hub: what each greenlet waits on ([`WaitTarget`]) and
//! [`dump`], one line per greenlet (gevent's `print_run_info`).
//!
//! # Design
//!
//! The switch path touches each `Slot` on every switch, so the slot keeps
//! only what it had: the wait's name (`waiting: &'static str`). Everything
//! else a dump shows lives in a side table, `Hub::meta`, indexed like
//! `slots` and written only at spawn and by [`park_on`](super::park_on) with
//! a rich target: the greenlet's id, its spawn time and the wait's detail
//! (deadline, fd, greenlet). A detail is valid only while the slot's wake
//! token is the one it was recorded under, so a later plain
//! [`park`](super::park) (which does not touch the side table) is never shown
//! with a stale detail.

use std::fmt;
use std::os::fd::RawFd;
use std::panic::Location;
use std::time::{Duration, Instant};

use super::reactor::sys::monotonic_coarse_nanos as coarse_nanos;
use super::{Hub, LOOP, MAIN, SlotState, clock, with_hub};

/// What a parked greenlet waits on: the detail [`dump`] shows.
///
/// `park(w, "queue get")` records `Text("queue get")`; the hub's own waits
/// record the richer forms through `park_on`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WaitTarget {
    /// A wait known only by its name (events, queues, `idle`).
    Text(&'static str),
    /// A timer: `sleep`, `join_timeout` (`None`: no deadline, forever).
    Deadline {
        what: &'static str,
        deadline: Option<Instant>,
    },
    /// A file descriptor and the directions waited for.
    Fd {
        what: &'static str,
        fd: RawFd,
        readable: bool,
        writable: bool,
    },
    /// Another greenlet (`join`, `get`): its slot and generation.
    Join {
        what: &'static str,
        slot: u32,
        generation: u32,
    },
}

impl WaitTarget {
    /// The wait's name.
    pub(crate) fn what(&self) -> &'static str {
        match *self {
            WaitTarget::Text(what)
            | WaitTarget::Deadline { what, .. }
            | WaitTarget::Fd { what, .. }
            | WaitTarget::Join { what, .. } => what,
        }
    }
}

/// Per-slot facts for dumps, kept off the switch path (see module docs).
#[derive(Debug, Clone, Copy)]
pub(super) struct Meta {
    /// Unique per hub, counting from 1 (0: the main greenlet).
    pub(super) id: u64,
    /// When it was spawned: coarse monotonic nanoseconds (0: unknown).
    pub(super) spawned: u64,
    /// The slot's token when `target` was recorded.
    token: u32,
    target: Option<WaitTarget>,
}

impl Meta {
    const EMPTY: Meta = Meta {
        id: 0,
        spawned: 0,
        token: 0,
        target: None,
    };
}

impl Hub {
    fn meta_mut(&mut self, slot: u32) -> &mut Meta {
        let i = slot as usize;
        if self.meta.len() <= i {
            self.meta.resize(i + 1, Meta::EMPTY);
        }
        &mut self.meta[i]
    }

    /// Records a new greenlet in `slot` (at spawn).
    pub(super) fn meta_spawned(&mut self, slot: u32) {
        self.spawn_count += 1;
        let id = self.spawn_count;
        *self.meta_mut(slot) = Meta {
            id,
            spawned: coarse_nanos(),
            token: 0,
            target: None,
        };
    }

    /// The main greenlet's entry: id 0, its age counted from the hub's start.
    pub(super) fn meta_main(&mut self) {
        *self.meta_mut(MAIN) = Meta {
            spawned: coarse_nanos(),
            ..Meta::EMPTY
        };
    }

    /// Records the rich target of the wait `slot` is parking in (its token
    /// is the one the wait's wakers carry).
    pub(super) fn meta_target(&mut self, slot: u32, target: WaitTarget) {
        let token = self.slots[slot as usize].token;
        let m = self.meta_mut(slot);
        m.token = token;
        m.target = Some(target);
    }

    /// One entry per greenlet of this hub (the main greenlet first when it
    /// is blocked), in slot order.
    pub(super) fn dump_entries(&self) -> Vec<GreenletInfo> {
        let now = clock::current();
        let coarse_now = coarse_nanos();
        let mut out = Vec::new();
        for (i, s) in self.slots.iter().enumerate() {
            if s.state == SlotState::Free {
                continue;
            }
            let slot = i as u32;
            let meta = self.meta.get(i).copied().unwrap_or(Meta::EMPTY);
            let state = if slot == self.current || (slot == MAIN && self.current == LOOP) {
                if slot == MAIN && self.in_loop {
                    GreenletState::Suspended
                } else {
                    GreenletState::Running
                }
            } else {
                match (s.state, s.ran) {
                    (_, false) => GreenletState::NotStarted,
                    (SlotState::Scheduled, _) => GreenletState::Ready,
                    _ => GreenletState::Suspended,
                }
            };
            if slot == MAIN && state == GreenletState::Running {
                continue; // the caller itself, running user code
            }
            let (description, name, spawned_at) = match s.core() {
                Some(core) => (
                    core.describe_as(self.current),
                    core.header().name().map(str::to_owned),
                    Some(core.header().spawned_at),
                ),
                None if slot == MAIN => ("main greenlet (the native stack)".to_owned(), None, None),
                None => (format!("<raw greenlet #{i}>"), None, None),
            };
            let waits = (state == GreenletState::Suspended).then(|| {
                let target = match meta.target {
                    Some(t) if meta.token == s.token && t.what() == s.waiting => t,
                    _ => WaitTarget::Text(s.waiting),
                };
                self.describe_target(target, now)
            });
            out.push(GreenletInfo {
                id: meta.id,
                name,
                description,
                spawned_at,
                state,
                age: Duration::from_nanos(match meta.spawned {
                    0 => 0,
                    t => coarse_now.saturating_sub(t),
                }),
                waits_on: waits.flatten(),
                unwinding: s.unwinding,
            });
        }
        out
    }

    fn describe_target(&self, target: WaitTarget, now: Instant) -> Option<WaitsOn> {
        Some(match target {
            WaitTarget::Text("") => return None,
            WaitTarget::Text(what) => WaitsOn::Other { operation: what },
            WaitTarget::Deadline { what, deadline } => WaitsOn::Timer {
                operation: what,
                remaining: deadline.map(|d| d.saturating_duration_since(now)),
            },
            WaitTarget::Fd {
                what,
                fd,
                readable,
                writable,
            } => WaitsOn::Fd {
                operation: what,
                fd,
                readable,
                writable,
            },
            WaitTarget::Join {
                what,
                slot,
                generation,
            } => {
                let target = self
                    .slots
                    .get(slot as usize)
                    .filter(|s| s.generation == generation && s.state != SlotState::Free);
                WaitsOn::Join {
                    operation: what,
                    id: target.and(self.meta.get(slot as usize)).map_or(0, |m| m.id),
                    description: target
                        .and_then(|s| s.core())
                        .map(|c| c.describe_as(self.current))
                        .unwrap_or_else(|| format!("<greenlet #{slot}>")),
                }
            }
        })
    }
}

/// A greenlet's state as a [`dump`] sees it.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::hub::{self, GreenletState};
/// let g = greenlet::spawn(|| ());
/// assert_eq!(hub::dump().greenlets[0].state, GreenletState::NotStarted);
/// assert_eq!(GreenletState::Ready.to_string(), "ready");
/// g.join().unwrap();
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GreenletState {
    /// Spawned, never switched to yet.
    NotStarted,
    /// In the ready queue.
    Ready,
    /// Running now (the one that called [`dump`], or the hub's current one).
    Running,
    /// Blocked in a wait ([`GreenletInfo::waits_on`] says which).
    Suspended,
}

impl fmt::Display for GreenletState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GreenletState::NotStarted => "not started",
            GreenletState::Ready => "ready",
            GreenletState::Running => "running",
            GreenletState::Suspended => "suspended",
        })
    }
}

/// What a suspended greenlet waits on.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::hub::{self, WaitsOn};
/// let g = greenlet::spawn(greenlet::idle);
/// greenlet::sleep(std::time::Duration::ZERO);
/// let waits = hub::dump().greenlets[0].waits_on.clone();
/// assert_eq!(waits, Some(WaitsOn::Other { operation: "idle" }));
/// assert_eq!(waits.unwrap().to_string(), "idle");
/// g.kill().unwrap();
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitsOn {
    /// A timer (`sleep`, `join_timeout`, `spawn_later`'s start).
    Timer {
        /// The blocking call, e.g. `"sleep"`.
        operation: &'static str,
        /// Time left on the hub clock; `None`: no deadline (forever).
        remaining: Option<Duration>,
    },
    /// A file descriptor (`io::wait_read` and friends).
    Fd {
        /// The blocking call, e.g. `"wait_read"`.
        operation: &'static str,
        /// The descriptor.
        fd: RawFd,
        /// Waiting for it to be readable.
        readable: bool,
        /// Waiting for it to be writable.
        writable: bool,
    },
    /// Another greenlet's end (`join`, `get`). Not named `Greenlet`, so
    /// that compiler messages keep printing the type `Greenlet` unqualified.
    Join {
        /// The blocking call, e.g. `"Greenlet::join"`.
        operation: &'static str,
        /// The target's [`GreenletInfo::id`] (0 when it is gone).
        id: u64,
        /// The target's `Display`.
        description: String,
    },
    /// Anything else, by the name of the blocking call (an event, a queue,
    /// `idle`, a child process).
    Other {
        /// The blocking call, e.g. `"queue get"`.
        operation: &'static str,
    },
}

impl fmt::Display for WaitsOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitsOn::Timer {
                operation,
                remaining: Some(left),
            } => write!(f, "{operation} (timer due in {left:?})"),
            WaitsOn::Timer {
                operation,
                remaining: None,
            } => write!(f, "{operation} (no deadline)"),
            WaitsOn::Fd {
                operation,
                fd,
                readable,
                writable,
            } => {
                let dir = match (readable, writable) {
                    (true, true) => "readable or writable",
                    (false, true) => "writable",
                    _ => "readable",
                };
                write!(f, "{operation} (fd {fd} {dir})")
            }
            WaitsOn::Join {
                operation,
                id,
                description,
            } => write!(f, "{operation} (greenlet #{id} {description})"),
            WaitsOn::Other { operation } => f.write_str(operation),
        }
    }
}

/// One greenlet in a [`Dump`].
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{Builder, hub};
/// let g = Builder::new().name("worker").spawn(|| ()).unwrap();
/// let info = &hub::dump().greenlets[0];
/// assert_eq!((info.id, info.name.as_deref()), (1, Some("worker")));
/// assert!(info.to_string().starts_with("#1 <Greenlet \"worker\""));
/// g.join().unwrap();
/// # });
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GreenletInfo {
    /// Unique on its hub for the hub scope's life, counting from 1 in spawn
    /// order; 0 for the main greenlet.
    pub id: u64,
    /// The name given with `Builder::name`.
    pub name: Option<String>,
    /// Its `Display` (gevent's repr).
    pub description: String,
    /// Where it was spawned (`None` for the main greenlet and raw ones).
    pub spawned_at: Option<&'static Location<'static>>,
    /// Its state.
    pub state: GreenletState,
    /// Real time since it was spawned, at the coarse monotonic clock's
    /// resolution (the kernel tick, 1–4 ms; a paused hub clock does not
    /// stop it).
    pub age: Duration,
    /// What it waits on, when suspended in a named wait.
    pub waits_on: Option<WaitsOn>,
    /// It is unwinding from a kill or timeout.
    pub unwinding: bool,
}

/// `#id <description> (spawned at file:line) <state>, age <age>[, waits in <target>]`.
impl fmt::Display for GreenletInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} {}", self.id, self.description)?;
        if let Some(at) = self.spawned_at {
            write!(f, " (spawned at {}:{})", at.file(), at.line())?;
        }
        write!(f, " {}, age {:.3?}", self.state, self.age)?;
        match (&self.waits_on, self.state) {
            (Some(w), _) => write!(f, ", waits in {w}")?,
            (None, GreenletState::Suspended) => f.write_str(", waits in a switch")?,
            _ => {}
        }
        if self.unwinding {
            f.write_str(" while unwinding")?;
        }
        Ok(())
    }
}

/// Every greenlet of one hub at one moment: see [`dump`].
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// let d = greenlet::hub::dump();
/// assert!(d.greenlets.is_empty());
/// assert!(d.to_string().starts_with("hub of thread "));
/// # });
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Dump {
    /// The hub's thread, by name (or id when unnamed).
    pub thread: String,
    /// Its greenlets in slot order.
    pub greenlets: Vec<GreenletInfo>,
}

impl Dump {
    /// One line per greenlet (the lines `LoopExit` and the
    /// `#[greenlet::test]` leak error show).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let g = greenlet::spawn(|| greenlet::sleep(std::time::Duration::from_secs(9)));
    /// greenlet::sleep(std::time::Duration::ZERO);
    /// let lines = greenlet::hub::dump().lines();
    /// assert_eq!(lines.len(), 1);
    /// assert!(lines[0].starts_with("#1 <Greenlet"), "{lines:?}");
    /// assert!(lines[0].contains("waits in sleep (timer due in "), "{lines:?}");
    /// g.kill().unwrap();
    /// # });
    /// ```
    pub fn lines(&self) -> Vec<String> {
        self.greenlets.iter().map(ToString::to_string).collect()
    }
}

/// A header line naming the thread, then one indented line per greenlet.
impl fmt::Display for Dump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "hub of thread {}: {} greenlet(s)",
            self.thread,
            self.greenlets.len()
        )?;
        for g in &self.greenlets {
            write!(f, "\n  {g}")?;
        }
        Ok(())
    }
}

pub(super) fn thread_label() -> String {
    let t = std::thread::current();
    match t.name() {
        Some(name) => format!("{name:?}"),
        None => format!("{:?}", t.id()),
    }
}

/// Every greenlet of this thread's hub: id, name, spawn site, state, age and
/// what it waits on (a timer and its deadline, an fd and direction, another
/// greenlet, an event or queue by name); gevent's `print_run_info`. The
/// caller itself is left out when it is the main greenlet (it is running);
/// a blocked main greenlet is listed.
///
/// To print it for every hub of a process from outside (a hung server), see
/// [`dump_on_signal`](super::dump_on_signal).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{Builder, hub, sleep};
/// use std::time::Duration;
///
/// let g = Builder::new().name("ticker").spawn(|| sleep(Duration::from_secs(60))).unwrap();
/// sleep(Duration::ZERO); // let it start
/// let dump = hub::dump();
/// assert_eq!(dump.greenlets.len(), 1);
/// assert_eq!(dump.greenlets[0].name.as_deref(), Some("ticker"));
/// assert!(matches!(dump.greenlets[0].waits_on, Some(hub::WaitsOn::Timer { .. })));
/// println!("{dump}");
/// g.kill().unwrap();
/// # });
/// ```
pub fn dump() -> Dump {
    Dump {
        thread: thread_label(),
        greenlets: with_hub(|h| h.dump_entries()),
    }
}
