//! Greenlet-local storage: gevent's `local`, tokio's `task_local!`, with
//! std's `thread_local!` shape.
//!
//! [`greenlet_local!`](crate::greenlet_local) declares a [`LocalKey`]: every
//! greenlet (and the main greenlet, the native stack) sees its own value,
//! made by the key's initialiser on its first access and dropped when that
//! greenlet ends: when its body returns, panics or is killed, on its own
//! stack, before it is marked dead. The main greenlet's values are dropped
//! when its hub scope's closure ends, before the scope kills what is left.
//!
//! # Cost
//!
//! Nothing on the switch path. The first access in a greenlet allocates its
//! value (an `Rc`) and a small map; each access is one hub borrow, a scan of
//! the greenlet's few keys and an `Rc` clone (measure with
//! `cargo bench --bench sync`).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::hub::{self, LocalAccess};

/// Declares greenlet-local statics ([`LocalKey`]s), like `thread_local!`.
///
/// Each greenlet gets its own value, made by the initialiser expression on
/// its first access and dropped when the greenlet ends (also when it is
/// killed). Use `Cell` or `RefCell` for values that change, as with
/// `thread_local!`.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// use greenlet::{greenlet_local, spawn};
/// use std::cell::{Cell, RefCell};
///
/// greenlet_local! {
///     static REQUEST_ID: Cell<u32> = Cell::new(0);
///     /// Each greenlet's log lines.
///     pub static LOG: RefCell<Vec<String>> = RefCell::new(Vec::new());
/// }
///
/// greenlet::run(|| {
///     REQUEST_ID.set(1);
///     let g = spawn(|| {
///         assert_eq!(REQUEST_ID.get(), 0); // its own value
///         REQUEST_ID.set(2);
///         LOG.with_borrow_mut(|l| l.push("in g".into()));
///         REQUEST_ID.get()
///     });
///     assert_eq!(g.get().unwrap(), 2);
///     assert_eq!(REQUEST_ID.get(), 1);
///     assert!(LOG.with_borrow(|l| l.is_empty()));
/// });
/// ```
#[macro_export]
macro_rules! greenlet_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr; $($rest:tt)*) => {
        $crate::greenlet_local!($(#[$attr])* $vis static $name: $t = $init);
        $crate::greenlet_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr) => {
        $(#[$attr])*
        $vis static $name: $crate::local::LocalKey<$t> = {
            fn __greenlet_local_init() -> $t {
                $init
            }
            $crate::local::LocalKey::new(__greenlet_local_init)
        };
    };
}

/// A greenlet-local key, declared with
/// [`greenlet_local!`](crate::greenlet_local) (std's `LocalKey`, per
/// greenlet instead of per thread).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// use std::cell::Cell;
/// greenlet::greenlet_local!(static DEPTH: Cell<u8> = Cell::new(0));
///
/// greenlet::run(|| {
///     DEPTH.with(|d| d.set(d.get() + 1));
///     assert_eq!(DEPTH.get(), 1);
/// });
/// ```
pub struct LocalKey<T: 'static> {
    init: fn() -> T,
    /// This key's id in the per-greenlet maps; 0 until first used.
    id: AtomicUsize,
}

impl<T: 'static> fmt::Debug for LocalKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKey")
            .field("id", &self.id.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Why a greenlet-local could not be reached: outside a hub scope, or
/// inside a hub callback (a link, timer or signal callback, a post), which
/// belongs to no greenlet.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// use std::cell::Cell;
/// greenlet::greenlet_local!(static N: Cell<u8> = Cell::new(0));
/// assert!(N.try_with(|n| n.get()).is_err()); // no hub scope
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessError {
    in_callback: bool,
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.in_callback {
            f.write_str(
                "greenlet-local accessed inside a hub callback, which belongs to no greenlet",
            )
        } else {
            f.write_str("greenlet-local accessed outside a hub scope")
        }
    }
}

impl std::error::Error for AccessError {}

impl From<LocalAccess> for AccessError {
    fn from(a: LocalAccess) -> Self {
        AccessError {
            in_callback: a == LocalAccess::InCallback,
        }
    }
}

static NEXT_KEY: AtomicUsize = AtomicUsize::new(1);

impl<T: 'static> LocalKey<T> {
    /// A key whose per-greenlet value starts as `init()`. Used by
    /// [`greenlet_local!`](crate::greenlet_local); call that instead.
    #[doc(hidden)]
    pub const fn new(init: fn() -> T) -> LocalKey<T> {
        LocalKey {
            init,
            id: AtomicUsize::new(0),
        }
    }

    fn id(&self) -> usize {
        let id = self.id.load(Ordering::Relaxed);
        if id != 0 {
            return id;
        }
        let fresh = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        match self
            .id
            .compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => fresh,
            Err(won) => won,
        }
    }

    /// The running greenlet's value, made with `make` if it has none.
    fn value(&self, make: impl FnOnce() -> T) -> Result<Rc<T>, AccessError> {
        let id = self.id();
        let found = hub::local_get(id)?;
        let any: Rc<dyn Any> = match found {
            Some(v) => v,
            None => {
                // The initialiser runs outside the hub borrow (it is user
                // code); if it set this very key meanwhile, that value stays.
                let fresh: Rc<dyn Any> = Rc::new(make());
                hub::local_insert(id, fresh)?
            }
        };
        Ok(any
            .downcast::<T>()
            .expect("a greenlet-local key stores values of its own type"))
    }

    /// Calls `f` with the running greenlet's value, made by the key's
    /// initialiser on first access.
    ///
    /// `f` may switch (sleep, wait): the value stays alive, and other
    /// greenlets see their own values meanwhile.
    ///
    /// # Panics
    ///
    /// Outside a hub scope, and inside a hub callback (use
    /// [`try_with`](LocalKey::try_with) there).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// greenlet::greenlet_local!(static NAME: String = String::from("anon"));
    /// greenlet::run(|| assert_eq!(NAME.with(|n| n.len()), 4));
    /// ```
    #[track_caller]
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        match self.try_with(f) {
            Ok(r) => r,
            Err(e) => panic!("greenlet_local: {e}"),
        }
    }

    /// Like [`with`](LocalKey::with), failing instead of panicking.
    ///
    /// # Errors
    ///
    /// [`AccessError`] outside a hub scope or inside a hub callback.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// greenlet::greenlet_local!(static N: u8 = 7);
    /// greenlet::run(|| assert_eq!(N.try_with(|n| *n), Ok(7)));
    /// ```
    pub fn try_with<R>(&'static self, f: impl FnOnce(&T) -> R) -> Result<R, AccessError> {
        let value = self.value(self.init)?;
        Ok(f(&value))
    }

    /// Calls `f` with the value, first setting it to `value` if the running
    /// greenlet has none yet (the initialiser then does not run).
    fn with_initial<R>(&'static self, value: T, f: impl FnOnce(&T, Option<T>) -> R) -> R {
        let mut unused = Some(value);
        let stored = match self.value(|| unused.take().expect("taken once")) {
            Ok(v) => v,
            Err(e) => panic!("greenlet_local: {e}"),
        };
        f(&stored, unused)
    }
}

impl<T: 'static> LocalKey<Cell<T>> {
    /// Sets the running greenlet's value.
    ///
    /// # Panics
    ///
    /// As [`with`](LocalKey::with).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use std::cell::Cell;
    /// greenlet::greenlet_local!(static N: Cell<u8> = Cell::new(0));
    /// greenlet::run(|| { N.set(3); assert_eq!(N.get(), 3) });
    /// ```
    #[track_caller]
    pub fn set(&'static self, value: T) {
        self.with_initial(Cell::new(value), |cell, unused| {
            if let Some(v) = unused {
                cell.set(v.into_inner());
            }
        });
    }

    /// A copy of the running greenlet's value.
    ///
    /// # Panics
    ///
    /// As [`with`](LocalKey::with).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use std::cell::Cell;
    /// greenlet::greenlet_local!(static N: Cell<u8> = Cell::new(5));
    /// greenlet::run(|| assert_eq!(N.get(), 5));
    /// ```
    #[track_caller]
    pub fn get(&'static self) -> T
    where
        T: Copy,
    {
        self.with(Cell::get)
    }

    /// Takes the running greenlet's value, leaving `T::default()`.
    ///
    /// # Panics
    ///
    /// As [`with`](LocalKey::with).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use std::cell::Cell;
    /// greenlet::greenlet_local!(static N: Cell<u8> = Cell::new(5));
    /// greenlet::run(|| { assert_eq!(N.take(), 5); assert_eq!(N.get(), 0) });
    /// ```
    #[track_caller]
    pub fn take(&'static self) -> T
    where
        T: Default,
    {
        self.with(Cell::take)
    }

    /// Replaces the running greenlet's value, returning the old one.
    ///
    /// # Panics
    ///
    /// As [`with`](LocalKey::with).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use std::cell::Cell;
    /// greenlet::greenlet_local!(static N: Cell<u8> = Cell::new(5));
    /// greenlet::run(|| assert_eq!(N.replace(6), 5));
    /// ```
    #[track_caller]
    pub fn replace(&'static self, value: T) -> T {
        self.with(|c| c.replace(value))
    }
}

impl<T: 'static> LocalKey<RefCell<T>> {
    /// Calls `f` with a shared borrow of the running greenlet's value.
    ///
    /// # Panics
    ///
    /// As [`with`](LocalKey::with), and when the value is mutably borrowed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use std::cell::RefCell;
    /// greenlet::greenlet_local!(static V: RefCell<Vec<u8>> = RefCell::new(vec![1]));
    /// greenlet::run(|| assert_eq!(V.with_borrow(|v| v.len()), 1));
    /// ```
    #[track_caller]
    pub fn with_borrow<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        self.with(|c| f(&c.borrow()))
    }

    /// Calls `f` with a mutable borrow of the running greenlet's value.
    ///
    /// # Panics
    ///
    /// As [`with`](LocalKey::with), and when the value is borrowed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use std::cell::RefCell;
    /// greenlet::greenlet_local!(static V: RefCell<Vec<u8>> = RefCell::new(vec![]));
    /// greenlet::run(|| { V.with_borrow_mut(|v| v.push(1)); assert_eq!(V.take(), [1]) });
    /// ```
    #[track_caller]
    pub fn with_borrow_mut<R>(&'static self, f: impl FnOnce(&mut T) -> R) -> R {
        self.with(|c| f(&mut c.borrow_mut()))
    }

    /// Sets the running greenlet's value (the initialiser does not run if
    /// it had none).
    ///
    /// # Panics
    ///
    /// As [`with`](LocalKey::with), and when the value is borrowed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use std::cell::RefCell;
    /// greenlet::greenlet_local!(static S: RefCell<String> = RefCell::new(String::new()));
    /// greenlet::run(|| { S.set("x".into()); assert_eq!(S.take(), "x") });
    /// ```
    #[track_caller]
    pub fn set(&'static self, value: T) {
        self.with_initial(RefCell::new(value), |cell, unused| {
            if let Some(v) = unused {
                *cell.borrow_mut() = v.into_inner();
            }
        });
    }

    /// Takes the running greenlet's value, leaving `T::default()`.
    ///
    /// # Panics
    ///
    /// As [`with`](LocalKey::with), and when the value is borrowed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use std::cell::RefCell;
    /// greenlet::greenlet_local!(static S: RefCell<String> = RefCell::new("a".into()));
    /// greenlet::run(|| { assert_eq!(S.take(), "a"); assert_eq!(S.take(), "") });
    /// ```
    #[track_caller]
    pub fn take(&'static self) -> T
    where
        T: Default,
    {
        self.with(RefCell::take)
    }

    /// Replaces the running greenlet's value, returning the old one.
    ///
    /// # Panics
    ///
    /// As [`with`](LocalKey::with), and when the value is borrowed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use std::cell::RefCell;
    /// greenlet::greenlet_local!(static S: RefCell<u8> = RefCell::new(1));
    /// greenlet::run(|| assert_eq!(S.replace(2), 1));
    /// ```
    #[track_caller]
    pub fn replace(&'static self, value: T) -> T {
        self.with(|c| c.replace(value))
    }
}
