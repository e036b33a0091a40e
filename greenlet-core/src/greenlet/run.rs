//! The `Run` trait: gevent's `Greenlet` subclass with `_run`.

/// A struct that runs as a greenlet, gevent's subclass-with-`_run` pattern.
///
/// The struct's fields stay visible from outside through the handle
/// (`Greenlet<Output, Self>` dereferences to the struct), like the attributes
/// of a gevent `Greenlet` subclass instance. Fields the body changes while it
/// runs use `Cell`/`RefCell`; never hold a `RefCell` borrow across a switch.
///
/// `#[greenlet]` on the `impl Run for …` block validates it, infers `Output`
/// and adds `spawn`/`start_later` helpers; the trait also works by hand:
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{Greenlet, Run};
/// use std::cell::Cell;
///
/// struct Counter {
///     limit: u32,
///     seen: Cell<u32>,
/// }
///
/// impl Run for Counter {
///     type Output = u32;
///     fn run(&self) -> u32 {
///         for _ in 0..self.limit {
///             self.seen.set(self.seen.get() + 1);
///             greenlet::sleep(std::time::Duration::ZERO);
///         }
///         self.seen.get()
///     }
/// }
///
/// let g = Greenlet::spawn_run(Counter { limit: 3, seen: Cell::new(0) });
/// assert_eq!(g.limit, 3); // fields readable from outside
/// assert_eq!(g.get().unwrap(), 3);
/// assert_eq!(g.seen.get(), 3);
/// assert!(g.to_string().starts_with("<Counter at "));
/// # });
/// ```
pub trait Run: Sized + 'static {
    /// What `run` returns: the greenlet's value.
    type Output: 'static;

    /// The greenlet's body (gevent's `_run`).
    ///
    /// # Switches
    ///
    /// Whenever the body calls something that switches.
    fn run(&self) -> Self::Output;

    /// The class name the greenlet's `Display` shows
    /// (`<Worker "name" at 0x…: state>`); the type's own name by default.
    fn class_name() -> &'static str {
        short_type_name::<Self>()
    }
}

/// `my_crate::module::Worker<u8>` → `Worker<u8>`.
pub(crate) fn short_type_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    match base.rfind("::") {
        Some(i) => &full[i + 2..],
        None => full,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_names() {
        struct Worker;
        assert_eq!(super::short_type_name::<Worker>(), "Worker");
        assert_eq!(super::short_type_name::<Vec<u8>>(), "Vec<u8>");
    }
}
