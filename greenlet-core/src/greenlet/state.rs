//! The shared greenlet cell: life state, outcome, links.
//!
//! One `Rc` allocation per greenlet holds everything: header, outcome, links,
//! the `Run` data, and the body closure itself until the first switch (an
//! unsized tail field, so spawning allocates once). Handles see it as
//! [`Shared<T, D>`] (`Inner<T, D, dyn Body<T, D>>`), the hub as
//! `Rc<dyn Core>`; the header keeps a `Weak<dyn Core>` to itself so a handle
//! can hand the hub that view.
//!
//! Life: `New` (created, holds no stack) → `Started { slot }` (has a hub slot
//! and a stack; scheduled, running or suspended) → `Dead`. The outcome is
//! written by the body root (value or caught unwind) or by the hub (stack
//! overflow, kill before start) before the life becomes `Dead`.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::{Rc, Weak};

use smallvec::SmallVec;

use super::Greenlet;
use super::error::{GreenletError, KillError, PanicError};
use super::switch::Stack;
use crate::hub::{self, ErrorReport, Throw, Unwind, Waker};

/// Where a greenlet is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Life {
    New,
    /// Has hub slot `slot` while the slot's generation is `generation`.
    Started {
        slot: u32,
        generation: u32,
    },
    Dead,
}

/// What the body produced.
pub(crate) enum Outcome<T> {
    Pending,
    Value(T),
    Error(GreenletError),
    /// The value was moved out by `into_result`.
    Taken,
}

/// Identifies a link so it can be removed with `unlink`.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::spawn;
///
/// let g = spawn(|| 1);
/// let id = g.link(|_| unreachable!("unlinked before it could fire"));
/// assert!(g.unlink(id));
/// g.join().unwrap();
/// # });
/// ```
///
/// Types outside this crate that implement [`Waitable`](crate::Waitable)
/// mint their own ids with [`LinkId::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkId(u64);

impl LinkId {
    /// An id with the given value (unique per object is enough).
    pub const fn new(raw: u64) -> LinkId {
        LinkId(raw)
    }

    /// The id's value.
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// A `link` callback: gets the dead greenlet.
pub(crate) type AnyLink<T, D> = Box<dyn FnOnce(&Greenlet<T, D>)>;

/// A greenlet's links, with the ids `unlink` needs; `None` marks a link
/// that fired or was removed while the links were being fired.
pub(crate) type Links<T, D> = RefCell<SmallVec<[(u32, Option<Link<T, D>>); 1]>>;

/// A callback registered on a greenlet, fired once when it dies.
pub(crate) enum Link<T: 'static, D: 'static> {
    /// A blocked `join`/`get`: no allocation.
    Wake(Waker),
    /// `rawlink` / the waiter protocol.
    Raw(Box<dyn FnOnce()>),
    Any(AnyLink<T, D>),
    /// Fired only on success (a value, or `GreenletExit`).
    Value(AnyLink<T, D>),
    /// Fired only on failure.
    Exception(AnyLink<T, D>),
}

/// The non-generic part of a greenlet. Compact: one is allocated per spawn.
pub(crate) struct Header {
    /// Name, class and stack size when they differ from the defaults
    /// (unnamed, `"Greenlet"`, the hub's size): rare, so behind one pointer.
    options: Option<Box<Options>>,
    pub(crate) life: Cell<Life>,
    pub(crate) was_started: Cell<bool>,
    /// A `Notify` is queued and has not started running yet.
    pub(crate) notify_queued: Cell<bool>,
    /// Links are being fired: removals leave a tombstone.
    notifying: Cell<bool>,
    next_link: Cell<u32>,
    /// Where it was created (`spawn`, `Greenlet::new`, a `#[greenlet]` call).
    pub(crate) spawned_at: &'static std::panic::Location<'static>,
    /// The hub's view of this very cell.
    core: Weak<dyn Core>,
}

impl Header {
    /// The name given with `Builder::name`.
    pub(crate) fn name(&self) -> Option<&str> {
        self.options.as_deref().and_then(|o| o.name.as_deref())
    }

    /// The class name `Display` shows.
    pub(crate) fn class(&self) -> &'static str {
        self.options.as_deref().map_or(DEFAULT_CLASS, |o| o.class)
    }

    /// The stack size asked for with `Builder::stack_size`.
    pub(crate) fn stack_size(&self) -> Option<usize> {
        self.options.as_deref().and_then(|o| o.stack_size)
    }

    /// The hub's view of this greenlet (alive as long as any handle is).
    pub(crate) fn core(&self) -> Rc<dyn Core> {
        self.core
            .upgrade()
            .expect("the greenlet cell is alive while it is borrowed")
    }
}

/// The class name of greenlets made from closures.
pub(crate) const DEFAULT_CLASS: &str = "Greenlet";

/// Options fixed when a greenlet is created.
pub(crate) struct Options {
    pub(crate) name: Option<Box<str>>,
    pub(crate) class: &'static str,
    pub(crate) stack_size: Option<usize>,
}

/// The hub's type-erased view of a greenlet.
pub(crate) trait Core {
    fn header(&self) -> &Header;
    /// `<Greenlet "name" at 0x…: state>`, as seen from slot `current`
    /// (usable while the hub is borrowed).
    fn describe_as(&self, current: u32) -> String;
    /// Records an outcome decided outside the body (overflow, no stack).
    fn set_error(&self, error: GreenletError);
    /// Marks the greenlet dead: queues its links, reports its error.
    fn on_death(&self);
    /// Fires the links (runs on the hub, `current == LOOP`).
    fn notify_links(self: Rc<Self>);
    /// `kill(block=False)`.
    fn kill_nowait(&self, error: KillError);
    /// Loads the body onto `stack` for the first switch.
    fn install(self: Rc<Self>, stack: &mut Stack) -> bool;
    /// Bytes the body closure takes on the stack.
    fn body_size(&self) -> usize;
}

impl dyn Core {
    /// [`Core::describe_as`] from the running slot.
    pub(crate) fn describe(&self) -> String {
        self.describe_as(hub::current_slot())
    }
}

impl<T, D, F> Core for Inner<T, D, Cell<Option<F>>>
where
    T: 'static,
    D: 'static,
    F: FnOnce(&D) -> T + 'static,
{
    fn header(&self) -> &Header {
        &self.header
    }

    fn describe_as(&self, current: u32) -> String {
        (self as &Shared<T, D>).describe_as(current)
    }

    fn set_error(&self, error: GreenletError) {
        *self.outcome.borrow_mut() = Outcome::Error(error);
    }

    fn on_death(&self) {
        (self as &Shared<T, D>).on_death();
    }

    fn notify_links(self: Rc<Self>) {
        (self as Rc<Shared<T, D>>).notify_links();
    }

    fn kill_nowait(&self, error: KillError) {
        (self as &Shared<T, D>).kill_nowait(error);
    }

    fn install(self: Rc<Self>, stack: &mut Stack) -> bool {
        let shared: Rc<Shared<T, D>> = Rc::clone(&self) as Rc<Shared<T, D>>;
        self.body.install(shared, stack)
    }

    fn body_size(&self) -> usize {
        std::mem::size_of::<F>()
    }
}

/// The body of a greenlet that has not run yet, type-erased: the tail of
/// its cell.
pub(crate) trait Body<T: 'static, D: 'static> {
    /// Loads the body onto `stack` under the greenlet root; `false` if it
    /// was already taken.
    fn install(&self, shared: Rc<Shared<T, D>>, stack: &mut Stack) -> bool;
    /// Drops the body without running it (kill before start).
    fn discard(&self);
}

impl<T: 'static, D: 'static, F: FnOnce(&D) -> T + 'static> Body<T, D> for Cell<Option<F>> {
    fn install(&self, shared: Rc<Shared<T, D>>, stack: &mut Stack) -> bool {
        match self.take() {
            Some(f) => {
                stack.install(root(shared, f));
                true
            }
            None => false,
        }
    }

    fn discard(&self) {
        drop(self.take());
    }
}

/// The shared cell behind a [`Greenlet`] handle; `B` is the body slot.
pub(crate) struct Inner<T: 'static, D: 'static, B: ?Sized + 'static> {
    pub(crate) header: Header,
    pub(crate) outcome: RefCell<Outcome<T>>,
    pub(crate) links: Links<T, D>,
    /// The `Run` struct (or `()`), readable from outside through `Deref`.
    pub(crate) data: D,
    /// The body until its first switch (unsized tail).
    pub(crate) body: B,
}

/// What handles hold: the cell with its body type erased.
pub(crate) type Shared<T, D> = Inner<T, D, dyn Body<T, D>>;

/// Allocates a greenlet cell (one allocation, body included).
#[track_caller]
pub(crate) fn new_cell<T, D, F>(options: Options, data: D, body: F) -> Rc<Shared<T, D>>
where
    T: 'static,
    D: 'static,
    F: FnOnce(&D) -> T + 'static,
{
    let spawned_at = std::panic::Location::caller();
    let cell: Rc<Inner<T, D, Cell<Option<F>>>> =
        Rc::new_cyclic(|weak: &Weak<Inner<T, D, Cell<Option<F>>>>| {
            let core: Weak<dyn Core> = weak.clone();
            Inner {
                header: Header {
                    options: (options.name.is_some()
                        || options.stack_size.is_some()
                        || options.class != DEFAULT_CLASS)
                        .then(|| Box::new(options)),
                    life: Cell::new(Life::New),
                    was_started: Cell::new(false),
                    notify_queued: Cell::new(false),
                    notifying: Cell::new(false),
                    next_link: Cell::new(0),
                    spawned_at,
                    core,
                },
                outcome: RefCell::new(Outcome::Pending),
                links: RefCell::new(SmallVec::new()),
                data,
                body: Cell::new(Some(body)),
            }
        });
    cell
}

/// The closure installed on the stack: runs `body`, catches whatever
/// unwinds out of it, stores the outcome.
fn root<T: 'static, D: 'static>(
    this: Rc<Shared<T, D>>,
    body: impl FnOnce(&D) -> T + 'static,
) -> impl FnOnce() + 'static {
    move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&this.data)));
        // Every payload the runtime did not raise itself is a panic of this
        // greenlet (even `generator`'s own error type: the hub never drops a
        // stack with live frames, so only user code can raise it). The
        // payload is consumed here, before the locals go, so the greenlet is
        // no longer unwinding while their destructors run.
        let mut outcome = match result {
            Ok(value) => Outcome::Value(value),
            Err(payload) => Outcome::Error(classify(payload)),
        };
        // Its greenlet-locals go on its own stack, before it is dead; a
        // `Drop` that panics (or is killed while it blocks) fails a greenlet
        // that had returned a value.
        if let Some(payload) = hub::drop_current_locals() {
            let error = classify(payload);
            // Whatever is dropped here is user data whose `Drop` may panic
            // (the replaced value, or the locals' panic payload when the
            // body had failed already): nothing may unwind out of the root
            // (the stack switch has no one to hand it to).
            let dropped = if matches!(outcome, Outcome::Value(_)) {
                std::mem::replace(&mut outcome, Outcome::Error(error))
            } else {
                Outcome::Error(error)
            };
            drop_caught(dropped);
        }
        *this.outcome.borrow_mut() = outcome;
    }
}

/// Drops `value` (user data) catching a panic from its `Drop`: the greenlet
/// root must not unwind.
pub(crate) fn drop_caught<T>(value: T) {
    if let Err(payload) =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(value)))
    {
        hub::drop_payload(payload);
    }
}

/// Converts a caught unwind into the outcome.
fn classify(payload: Box<dyn Any + Send>) -> GreenletError {
    match payload.downcast::<Unwind>() {
        Ok(unwind) => match unwind.into_throw() {
            Throw::Kill(k) => GreenletError::Killed(k),
            Throw::Timeout { elapsed, .. } => GreenletError::Timeout(elapsed),
        },
        Err(payload) => GreenletError::Panicked(PanicError::new(payload)),
    }
}

impl<T: 'static, D: 'static> Shared<T, D> {
    pub(crate) fn is_dead(&self) -> bool {
        self.header.life.get() == Life::Dead
    }

    /// Adds a link; if already dead, makes sure a notification is queued.
    pub(crate) fn add_link(&self, link: Link<T, D>) -> LinkId {
        let id = self.header.next_link.get();
        self.header.next_link.set(id.wrapping_add(1));
        self.links.borrow_mut().push((id, Some(link)));
        if self.is_dead() && !self.header.notify_queued.get() {
            self.header.notify_queued.set(true);
            hub::schedule_notify(self.header.core());
        }
        LinkId(u64::from(id))
    }

    /// Removes a link that has not fired; `true` if it was found.
    pub(crate) fn remove_link(&self, id: LinkId) -> bool {
        let removed = {
            let mut links = self.links.borrow_mut();
            let pos = links
                .iter()
                .position(|(i, link)| u64::from(*i) == id.0 && link.is_some());
            match pos {
                // While firing, indices must not shift: leave a tombstone.
                Some(pos) if self.header.notifying.get() => links[pos].1.take(),
                Some(pos) => links.remove(pos).1,
                None => None,
            }
        };
        // The removed callback (user code) is dropped outside the borrow.
        removed.is_some()
    }

    fn state_label(&self, current: u32) -> String {
        match self.header.life.get() {
            Life::New => "new".to_owned(),
            Life::Started { slot, .. } => {
                if current == slot {
                    "running".to_owned()
                } else {
                    "started".to_owned()
                }
            }
            Life::Dead => match &*self.outcome.borrow() {
                Outcome::Value(_) | Outcome::Taken => "dead".to_owned(),
                Outcome::Error(e) if e.is_greenlet_exit() => "dead (killed)".to_owned(),
                Outcome::Error(_) => "dead (failed)".to_owned(),
                Outcome::Pending => "dead".to_owned(),
            },
        }
    }

    /// `<Class "name" at 0x…: state>`; `current` is the running slot
    /// (passed in, so the hub can format while it is borrowed).
    pub(crate) fn fmt_display(&self, f: &mut fmt::Formatter<'_>, current: u32) -> fmt::Result {
        write!(f, "<{}", self.header.class())?;
        if let Some(name) = self.header.name() {
            write!(f, " \"{name}\"")?;
        }
        write!(
            f,
            " at {:p}: {}>",
            (self as *const Self).cast::<()>(),
            self.state_label(current)
        )
    }

    /// The error to report when this greenlet died, if any (everything but
    /// a value and `GreenletExit`).
    fn reportable_error(&self) -> Option<GreenletError> {
        match &*self.outcome.borrow() {
            Outcome::Error(e) if !e.is_greenlet_exit() => Some(e.clone()),
            _ => None,
        }
    }

    /// gevent's `successful()`: a value, or killed with `GreenletExit`.
    pub(crate) fn is_successful(&self) -> bool {
        match &*self.outcome.borrow() {
            Outcome::Value(_) | Outcome::Taken => true,
            Outcome::Error(e) => e.is_greenlet_exit(),
            Outcome::Pending => false,
        }
    }

    /// Dies without ever running: kill before start. The outcome is
    /// recorded (and the greenlet marked dead) *before* the unrun body is
    /// dropped: its captures' `Drop` may panic, and the handle must not be
    /// left pointing at a freed slot when it does.
    pub(crate) fn die_unstarted(&self, error: KillError) {
        *self.outcome.borrow_mut() = Outcome::Error(GreenletError::Killed(error));
        self.on_death();
        self.body.discard();
    }

    /// Marks the greenlet dead: queues its links, reports its error.
    pub(crate) fn on_death(&self) {
        self.header.life.set(Life::Dead);
        if !self.links.borrow().is_empty() && !self.header.notify_queued.get() {
            self.header.notify_queued.set(true);
            hub::schedule_notify(self.header.core());
        }
        if let Some(error) = self.reportable_error() {
            hub::report(&ErrorReport {
                context: "greenlet",
                greenlet: self.describe(),
                error: &error,
            });
        }
    }

    /// `<Greenlet "name" at 0x…: state>` as seen from the running slot.
    pub(crate) fn describe(&self) -> String {
        self.describe_as(hub::current_slot())
    }

    fn describe_as(&self, current: u32) -> String {
        struct Show<'a, T: 'static, D: 'static>(&'a Shared<T, D>, u32);
        impl<T, D> fmt::Display for Show<'_, T, D> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt_display(f, self.1)
            }
        }
        Show(self, current).to_string()
    }

    /// Fires the links (on the hub).
    fn notify_links(self: Rc<Self>) {
        self.header.notify_queued.set(false);
        self.header.notifying.set(true);
        let handle = Greenlet {
            inner: Rc::clone(&self),
        };
        // Fire in order by index, leaving tombstones (linear in the number
        // of links); early links may add links (fired in this pass) or
        // remove later ones (tombstoned, skipped).
        let mut next_index = 0;
        loop {
            let next = {
                let mut links = self.links.borrow_mut();
                loop {
                    if next_index >= links.len() {
                        links.clear();
                        break None;
                    }
                    let link = links[next_index].1.take();
                    next_index += 1;
                    if link.is_some() {
                        break link;
                    }
                }
            };
            let Some(link) = next else { break };
            let fire = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match link {
                Link::Wake(w) => hub::wake(w),
                Link::Raw(f) => f(),
                Link::Any(f) => f(&handle),
                Link::Value(f) => {
                    if self.is_successful() {
                        f(&handle);
                    }
                }
                Link::Exception(f) => {
                    if !self.is_successful() {
                        f(&handle);
                    }
                }
            }));
            if let Err(payload) = fire {
                let error = GreenletError::Panicked(PanicError::new(payload));
                hub::report(&ErrorReport {
                    context: "link callback",
                    greenlet: self.describe(),
                    error: &error,
                });
            }
        }
        self.header.notifying.set(false);
    }

    /// `kill(block=False)`.
    pub(crate) fn kill_nowait(&self, error: KillError) {
        match self.header.life.get() {
            Life::Dead => {}
            Life::New => self.die_unstarted(error),
            Life::Started { slot, generation } => {
                match hub::kill_slot(slot, generation, error.clone()) {
                    hub::KillStart::Cancelled(leftovers) => {
                        // Outcome first; what the slot held after.
                        self.die_unstarted(error);
                        drop(leftovers);
                    }
                    hub::KillStart::Thrown | hub::KillStart::IsCurrent | hub::KillStart::Gone => {}
                }
            }
        }
    }
}
