//! Creating greenlets: [`Builder`], the spawn family and the constructors.

use std::time::Duration;

use super::error::{GreenletError, SpawnError};
use super::state::{DEFAULT_CLASS, Life, Options, new_cell};
use super::{Greenlet, Run, error};
use crate::hub;

/// Options for a new greenlet: name and stack size (std's `thread::Builder`).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::Builder;
///
/// let g = Builder::new().name("worker").stack_size(64 * 1024).spawn(|| 7)?;
/// assert_eq!(g.name(), Some("worker"));
/// assert_eq!(g.get().unwrap(), 7);
/// # Ok::<(), greenlet::SpawnError>(())
/// # })?;
/// # Ok::<(), greenlet::SpawnError>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a Builder does nothing until you spawn or build"]
pub struct Builder {
    name: Option<Box<str>>,
    stack_size: Option<usize>,
}

impl Builder {
    /// Default options: unnamed, the hub's default stack size.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the greenlet (shown by `Display` and in error reports).
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into().into_boxed_str());
        self
    }

    /// Stack size in bytes (at least 16 KiB; the default is
    /// [`hub::default_stack_size`](crate::hub::default_stack_size)). Only
    /// touched pages cost memory.
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    fn options(&self, class: &'static str) -> Options {
        Options {
            name: self.name.clone(),
            class,
            stack_size: self.stack_size,
        }
    }

    /// Creates a greenlet without starting it (gevent's `Greenlet(f)`).
    /// It holds no stack until [`Greenlet::start`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let g = greenlet::Builder::new().name("later").build(|| 1);
    /// assert!(!g.is_started());
    /// g.start();
    /// assert_eq!(g.get().unwrap(), 1);
    /// # });
    /// ```
    #[track_caller]
    #[must_use = "a built greenlet does not run until started"]
    pub fn build<F, T>(self, f: F) -> Greenlet<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        Greenlet {
            inner: new_cell(self.options(DEFAULT_CLASS), (), move |_: &()| f()),
        }
    }

    /// Spawns `f` as a greenlet, scheduled to run in this loop iteration.
    ///
    /// # Errors
    ///
    /// [`SpawnError`] when no stack can be mapped (the kernel's map-count
    /// limit, ~32k live greenlets by default). Nothing is leaked and existing
    /// greenlets are unaffected.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let g = greenlet::Builder::new().spawn(|| "hi")?;
    /// assert_eq!(g.get().unwrap(), "hi");
    /// # Ok::<(), greenlet::SpawnError>(())
    /// # })?;
    /// # Ok::<(), greenlet::SpawnError>(())
    /// ```
    #[track_caller]
    pub fn spawn<F, T>(self, f: F) -> Result<Greenlet<T>, SpawnError>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        self.spawn_inner(move |_: &()| f(), (), DEFAULT_CLASS, None)
    }

    /// Like [`spawn`](Builder::spawn), starting after `delay`
    /// (gevent's `spawn_later`).
    ///
    /// # Errors
    ///
    /// As [`spawn`](Builder::spawn).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use std::time::Duration;
    /// let g = greenlet::Builder::new().spawn_later(Duration::from_millis(2), || 5)?;
    /// assert_eq!(g.get().unwrap(), 5);
    /// # Ok::<(), greenlet::SpawnError>(())
    /// # })?;
    /// # Ok::<(), greenlet::SpawnError>(())
    /// ```
    #[track_caller]
    pub fn spawn_later<F, T>(self, delay: Duration, f: F) -> Result<Greenlet<T>, SpawnError>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        self.spawn_inner(move |_: &()| f(), (), DEFAULT_CLASS, Some(delay))
    }

    /// Spawns a [`Run`] struct.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Builder::spawn).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::{Builder, Run};
    /// struct Job(u8);
    /// impl Run for Job { type Output = u8; fn run(&self) -> u8 { self.0 * 2 } }
    /// let g = Builder::new().name("job").spawn_run(Job(21))?;
    /// assert_eq!(g.get().unwrap(), 42);
    /// # Ok::<(), greenlet::SpawnError>(())
    /// # })?;
    /// # Ok::<(), greenlet::SpawnError>(())
    /// ```
    #[track_caller]
    pub fn spawn_run<R: Run>(self, run: R) -> Result<Greenlet<R::Output, R>, SpawnError> {
        self.spawn_inner(R::run, run, R::class_name(), None)
    }

    /// Spawns a [`Run`] struct after `delay`.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Builder::spawn).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::{Builder, Run};
    /// use std::time::Duration;
    /// struct Job;
    /// impl Run for Job { type Output = (); fn run(&self) {} }
    /// let g = Builder::new().spawn_run_later(Duration::from_millis(1), Job)?;
    /// g.join().unwrap();
    /// # Ok::<(), greenlet::SpawnError>(())
    /// # })?;
    /// # Ok::<(), greenlet::SpawnError>(())
    /// ```
    #[track_caller]
    pub fn spawn_run_later<R: Run>(
        self,
        delay: Duration,
        run: R,
    ) -> Result<Greenlet<R::Output, R>, SpawnError> {
        self.spawn_inner(R::run, run, R::class_name(), Some(delay))
    }

    /// Creates an unstarted greenlet for a [`Run`] struct.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::{Builder, Run};
    /// struct Job;
    /// impl Run for Job { type Output = u8; fn run(&self) -> u8 { 1 } }
    /// let g = Builder::new().build_run(Job);
    /// g.start();
    /// assert_eq!(g.get().unwrap(), 1);
    /// # });
    /// ```
    #[track_caller]
    #[must_use = "a built greenlet does not run until started"]
    pub fn build_run<R: Run>(self, run: R) -> Greenlet<R::Output, R> {
        Greenlet {
            inner: new_cell(self.options(R::class_name()), run, R::run),
        }
    }

    /// The spawn path: one allocation for the cell (body included; it is
    /// loaded onto a stack at the first switch), then a hub slot and a stack
    /// unit.
    #[track_caller]
    fn spawn_inner<T, D, F>(
        self,
        body: F,
        data: D,
        class: &'static str,
        later: Option<Duration>,
    ) -> Result<Greenlet<T, D>, SpawnError>
    where
        T: 'static,
        D: 'static,
        F: FnOnce(&D) -> T + 'static,
    {
        let inner = new_cell(self.options(class), data, body);
        let (slot, generation) = hub::start(
            Some(inner.header.core()),
            None,
            std::mem::size_of::<F>(),
            self.stack_size,
            later,
        )
        .map_err(|(error, _)| error)?;
        inner.header.life.set(Life::Started { slot, generation });
        inner.header.was_started.set(true);
        Ok(Greenlet { inner })
    }
}

/// Spawns `f` as a new greenlet, scheduled to run in this loop iteration
/// (gevent's `spawn`). The greenlet runs when the current one switches
/// (sleeps, joins, waits) or, on the native stack, when it blocks.
///
/// # Panics
///
/// When no stack can be mapped; use [`Builder::spawn`] to get a
/// [`SpawnError`] instead.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// let g = greenlet::spawn(|| 2 + 2);
/// assert_eq!(g.get().unwrap(), 4);
/// # });
/// ```
#[track_caller]
pub fn spawn<F, T>(f: F) -> Greenlet<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    match Builder::new().spawn(f) {
        Ok(g) => g,
        Err(e) => panic!("greenlet::spawn: {e}"),
    }
}

/// Spawns `f` to start after `delay` (gevent's `spawn_later`).
///
/// # Panics
///
/// As [`spawn`].
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use std::time::{Duration, Instant};
/// let t = Instant::now();
/// let g = greenlet::spawn_later(Duration::from_millis(10), || 1);
/// g.join().unwrap();
/// assert!(t.elapsed() >= Duration::from_millis(10));
/// # });
/// ```
#[track_caller]
pub fn spawn_later<F, T>(delay: Duration, f: F) -> Greenlet<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    match Builder::new().spawn_later(delay, f) {
        Ok(g) => g,
        Err(e) => panic!("greenlet::spawn_later: {e}"),
    }
}

/// Spawns `f` without a handle: no result, no links, the cheapest spawn
/// (gevent's `spawn_raw`). A panic in `f` is reported through the hub's error
/// handler.
///
/// # Panics
///
/// As [`spawn`].
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use std::cell::Cell;
/// use std::rc::Rc;
///
/// let hits = Rc::new(Cell::new(0));
/// let h = hits.clone();
/// greenlet::spawn_raw(move || h.set(h.get() + 1));
/// greenlet::hub::join();
/// assert_eq!(hits.get(), 1);
/// # });
/// ```
#[track_caller]
pub fn spawn_raw<F>(f: F)
where
    F: FnOnce() + 'static,
{
    let body: hub::Body = Box::new(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        // Killed: silent, like GreenletExit (the payload is dropped here,
        // before the locals go, so it is no longer unwinding).
        let panicked = result.err().filter(|p| !p.is::<hub::Unwind>());
        let locals_panicked = hub::drop_current_locals().filter(|p| !p.is::<hub::Unwind>());
        for payload in panicked.into_iter().chain(locals_panicked) {
            let error = GreenletError::Panicked(error::PanicError::new(payload));
            hub::report(&hub::ErrorReport {
                context: "greenlet",
                greenlet: format!("<raw greenlet #{}>", hub::current_slot()),
                error: &error,
            });
            // The payload's own `Drop` may panic: the root must not unwind.
            super::state::drop_caught(error);
        }
    });
    if let Err((e, body)) = hub::start(None, Some(body), std::mem::size_of::<F>(), None, None) {
        drop(body);
        panic!("greenlet::spawn_raw: {e}");
    }
}

impl<T: 'static> Greenlet<T> {
    /// Creates a greenlet that will run `f`, without starting it (gevent's
    /// `Greenlet(f)`); call [`start`](Greenlet::start) or
    /// [`start_later`](Greenlet::start_later). It holds no stack until then.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let g = greenlet::Greenlet::new(|| "done");
    /// g.start();
    /// assert_eq!(g.get().unwrap(), "done");
    /// # });
    /// ```
    #[track_caller]
    #[must_use = "a new greenlet does not run until started"]
    pub fn new<F>(f: F) -> Greenlet<T>
    where
        F: FnOnce() -> T + 'static,
    {
        Builder::new().build(f)
    }

    /// Creates and starts a greenlet: [`spawn`] as an associated function
    /// (gevent's `Greenlet.spawn`).
    ///
    /// # Panics
    ///
    /// As [`spawn`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let g = greenlet::Greenlet::spawn(|| 1);
    /// assert_eq!(g.get().unwrap(), 1);
    /// # });
    /// ```
    #[track_caller]
    pub fn spawn<F>(f: F) -> Greenlet<T>
    where
        F: FnOnce() -> T + 'static,
    {
        spawn(f)
    }
}

impl<R: Run> Greenlet<R::Output, R> {
    /// Creates an unstarted greenlet for a [`Run`] struct.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::{Greenlet, Run};
    /// struct Job;
    /// impl Run for Job { type Output = u8; fn run(&self) -> u8 { 3 } }
    /// let g = Greenlet::from_run(Job);
    /// g.start();
    /// assert_eq!(g.get().unwrap(), 3);
    /// # });
    /// ```
    #[track_caller]
    #[must_use = "a new greenlet does not run until started"]
    pub fn from_run(run: R) -> Self {
        Builder::new().build_run(run)
    }

    /// Spawns a [`Run`] struct.
    ///
    /// # Panics
    ///
    /// As [`spawn`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::{Greenlet, Run};
    /// struct Job;
    /// impl Run for Job { type Output = u8; fn run(&self) -> u8 { 3 } }
    /// assert_eq!(Greenlet::spawn_run(Job).get().unwrap(), 3);
    /// # });
    /// ```
    #[track_caller]
    pub fn spawn_run(run: R) -> Self {
        match Builder::new().spawn_run(run) {
            Ok(g) => g,
            Err(e) => panic!("greenlet::Greenlet::spawn_run: {e}"),
        }
    }
}
