//! Type-erased greenlets: [`GreenletRef`] ([`getcurrent`]), [`AnyGreenlet`]
//! and the module-level [`kill`].

use std::fmt;
use std::rc::Rc;

use super::Greenlet;
use super::error::{GreenletError, KillError};
use super::state::Core;
use crate::hub;

/// A type-erased handle to some greenlet: what [`getcurrent`] returns.
///
/// It is one of: a [`Greenlet`] (compare it with `==`), the thread's native
/// stack ([`is_main`](GreenletRef::is_main), gevent's main greenlet), hub code
/// ([`is_hub`](GreenletRef::is_hub): a link, timer or signal callback), or a
/// greenlet spawned with [`spawn_raw`](crate::spawn_raw).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::getcurrent;
/// assert!(getcurrent().is_main());
/// # });
/// ```
#[derive(Clone)]
pub struct GreenletRef(RefKind);

#[derive(Clone)]
enum RefKind {
    Main,
    Hub,
    Raw(u32),
    Greenlet(Rc<dyn Core>),
}

impl GreenletRef {
    /// `true` for the native stack.
    pub fn is_main(&self) -> bool {
        matches!(self.0, RefKind::Main)
    }

    /// `true` inside a hub callback.
    pub fn is_hub(&self) -> bool {
        matches!(self.0, RefKind::Hub)
    }

    /// `true` for a greenlet spawned with [`spawn_raw`](crate::spawn_raw).
    pub fn is_raw(&self) -> bool {
        matches!(self.0, RefKind::Raw(_))
    }

    /// The name given with [`Builder::name`](crate::Builder::name), if any.
    pub fn name(&self) -> Option<String> {
        match &self.0 {
            RefKind::Greenlet(core) => core.header().name().map(str::to_owned),
            _ => None,
        }
    }

    /// Kills it without waiting (gevent's `gevent.kill(g)`).
    ///
    /// For the main greenlet (the native stack, see
    /// [`hub::main_greenlet`](crate::hub::main_greenlet)), `GreenletExit` is
    /// raised by unwinding at its current or next blocking call; if nothing
    /// catches it, the hub scope ([`run`](crate::run)) ends its greenlets and
    /// then panics with a message saying the main greenlet was killed.
    ///
    /// # Panics
    ///
    /// For the hub (callbacks) and raw greenlets, which cannot be killed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::{hub, sleep, spawn};
    /// use std::time::Duration;
    ///
    /// let result = std::panic::catch_unwind(|| {
    ///     greenlet::run(|| {
    ///         let main = hub::main_greenlet();
    ///         spawn(move || main.kill_nowait());
    ///         sleep(Duration::from_secs(60)); // interrupted at once
    ///     })
    /// });
    /// assert!(result.is_err());
    /// ```
    #[track_caller]
    pub fn kill_nowait(&self) {
        Killable::kill_nowait_with(self, KillError::GreenletExit);
    }
}

impl PartialEq for GreenletRef {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (RefKind::Main, RefKind::Main) | (RefKind::Hub, RefKind::Hub) => true,
            (RefKind::Raw(a), RefKind::Raw(b)) => a == b,
            (RefKind::Greenlet(a), RefKind::Greenlet(b)) => Rc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for GreenletRef {}

impl<T, D> PartialEq<Greenlet<T, D>> for GreenletRef {
    fn eq(&self, other: &Greenlet<T, D>) -> bool {
        other == self
    }
}

impl fmt::Display for GreenletRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            RefKind::Main => f.write_str("<main greenlet>"),
            RefKind::Hub => f.write_str("<Hub>"),
            RefKind::Raw(slot) => write!(f, "<raw greenlet #{slot}>"),
            RefKind::Greenlet(core) => f.write_str(&core.describe()),
        }
    }
}

impl fmt::Debug for GreenletRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The greenlet running now (gevent's `getcurrent()`): a [`Greenlet`], the
/// native stack ([`GreenletRef::is_main`]) or hub code ([`GreenletRef::is_hub`]).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{getcurrent, spawn};
/// assert!(getcurrent().is_main());
/// let g = spawn(|| getcurrent().is_main());
/// assert_eq!(g.get().unwrap(), false);
/// # });
/// ```
#[doc(alias = "current")]
pub fn getcurrent() -> GreenletRef {
    let slot = hub::current_slot();
    if slot == hub::MAIN {
        return GreenletRef(RefKind::Main);
    }
    if slot == hub::LOOP {
        return GreenletRef(RefKind::Hub);
    }
    match hub::current_core() {
        Some(core) => GreenletRef(RefKind::Greenlet(core)),
        None => GreenletRef(RefKind::Raw(slot)),
    }
}

/// The main greenlet's handle.
pub(crate) fn main_ref() -> GreenletRef {
    GreenletRef(RefKind::Main)
}

/// What [`joinall`](crate::joinall), [`killall`](crate::killall) and [`kill`]
/// need from a greenlet, object-safe so greenlets with different result types
/// can be mixed (`&[&dyn AnyGreenlet]`).
pub trait AnyGreenlet: crate::Waitable {
    /// The error it finished with, if any (see [`Greenlet::exception`]).
    fn exception(&self) -> Option<GreenletError>;
    /// Kills it without waiting (see [`Greenlet::kill_nowait_with`]).
    fn kill_nowait_with(&self, error: KillError);
}

impl<T, D> AnyGreenlet for Greenlet<T, D> {
    fn exception(&self) -> Option<GreenletError> {
        Greenlet::exception(self)
    }

    fn kill_nowait_with(&self, error: KillError) {
        Greenlet::kill_nowait_with(self, error);
    }
}

impl<G: AnyGreenlet + ?Sized> AnyGreenlet for &G {
    fn exception(&self) -> Option<GreenletError> {
        (**self).exception()
    }

    fn kill_nowait_with(&self, error: KillError) {
        (**self).kill_nowait_with(error);
    }
}

/// Kills `greenlet` with `GreenletExit` without waiting (gevent's module-level
/// `kill`). The current greenlet is not unscheduled.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{kill, spawn, sleep};
/// use std::time::Duration;
/// let g = spawn(|| sleep(Duration::from_secs(60)));
/// sleep(Duration::ZERO);
/// kill(&g);
/// g.join().unwrap();
/// assert!(g.is_successful());
/// # });
/// ```
pub fn kill<G: Killable + ?Sized>(greenlet: &G) {
    greenlet.kill_nowait_with(KillError::GreenletExit);
}

/// What [`kill`] accepts: any greenlet handle, and a [`GreenletRef`] (such
/// as [`hub::main_greenlet`](crate::hub::main_greenlet), gevent's
/// `kill(main)`).
pub trait Killable {
    /// Kills it without waiting.
    ///
    /// # Panics
    ///
    /// For a [`GreenletRef`] to the hub or a raw greenlet, which cannot be
    /// killed.
    fn kill_nowait_with(&self, error: KillError);
}

impl<G: AnyGreenlet + ?Sized> Killable for G {
    fn kill_nowait_with(&self, error: KillError) {
        AnyGreenlet::kill_nowait_with(self, error);
    }
}

impl Killable for GreenletRef {
    #[track_caller]
    fn kill_nowait_with(&self, error: KillError) {
        match &self.0 {
            RefKind::Greenlet(core) => core.kill_nowait(error),
            RefKind::Main => hub::kill_main(error),
            _ => panic!("greenlet::kill: {self} cannot be killed"),
        }
    }
}

impl<T, D> Greenlet<T, D> {
    /// A type-erased handle to this greenlet, comparable with
    /// [`getcurrent`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::{getcurrent, spawn};
    /// let g = spawn(|| getcurrent());
    /// let seen = g.get().unwrap();
    /// assert_eq!(seen, g.to_ref());
    /// # });
    /// ```
    pub fn to_ref(&self) -> GreenletRef {
        GreenletRef(RefKind::Greenlet(self.inner.header.core()))
    }
}

impl<T, D> PartialEq<GreenletRef> for Greenlet<T, D> {
    fn eq(&self, other: &GreenletRef) -> bool {
        match &other.0 {
            RefKind::Greenlet(core) => std::ptr::addr_eq(Rc::as_ptr(core), Rc::as_ptr(&self.inner)),
            _ => false,
        }
    }
}
