//! Attribute macros for the [`greenlet`](https://docs.rs/greenlet) crate:
//! `#[greenlet]` on functions and `Run` impls, `#[greenlet::main]`,
//! `#[greenlet::test]`. Use them through `greenlet`, which re-exports them.
//!
//! The crate follows thiserror's split: this file is only the entry points;
//! `parse` reads options, `validate` reports mistakes as spanned errors with a
//! `help:` line, `expand` generates code (and a fallback when the input is
//! wrong, so one mistake gives one error). Generated code reaches the runtime
//! only through the facade's hidden `greenlet::__private` module.
#![forbid(unsafe_code)]

mod expand;
mod parse;
mod validate;

use proc_macro::TokenStream;

/// Calling a `#[greenlet] fn` spawns its body as a new greenlet; on an
/// `impl Run for Type`, the struct runs as one.
///
/// # On a function
///
/// Each call spawns the body as a new greenlet (it does not run it in the
/// caller) and returns the started [`Greenlet<T>`] handle, where `T` is the
/// declared return type:
/// `download(url, 3)` is gevent's `spawn(download, url, 3)`. The arguments
/// are moved into the greenlet, so they must be owned or `'static`; generic
/// type parameters get a `'static` bound. The body runs when the caller next
/// switches (sleeps, joins, waits), exactly like `spawn`.
///
/// ```
/// use greenlet::{greenlet, sleep};
/// use std::time::Duration;
///
/// #[greenlet]
/// fn download(url: String, tries: u32) -> Vec<u8> {
///     sleep(Duration::from_millis(1)); // switches: other greenlets run
///     format!("{url} after {tries} tries").into_bytes()
/// }
///
/// greenlet::run(|| {
///     let g = download("https://example.org".to_string(), 3); // spawned
///     assert_eq!(g.name(), Some("download"));
///     assert_eq!(g.get().unwrap(), b"https://example.org after 3 tries");
/// });
/// ```
///
/// Options (`#[greenlet(option = value, …)]`):
///
/// * `name = "…"`: the greenlet's name (shown by `Display` and in error
///   reports); the function's name by default.
/// * `stack_size = N`: stack size in bytes (at least 16 KiB), any `usize`
///   expression.
/// * `start = "later"`: return the greenlet unstarted (gevent's
///   `Greenlet(f, …)`); call `.start()` or `.start_later(d)`.
/// * `crate = "path"`: where the `greenlet` crate is, for re-exports.
///
/// ```
/// use greenlet::greenlet;
///
/// #[greenlet(name = "parser", stack_size = 64 * 1024, start = "later")]
/// fn parse<T: std::str::FromStr>(text: String) -> Option<T> {
///     text.parse().ok()
/// }
///
/// greenlet::run(|| {
///     let g = parse::<u32>("42".into());
///     assert!(!g.is_started());
///     g.start();
///     assert_eq!(g.get().unwrap(), Some(42));
/// });
/// ```
///
/// Methods taking `self` by value work too (`conn.serve()` spawns); `&self`
/// does not, since the greenlet can outlive the borrow. Inside the body the
/// function's name still means the spawning function, so a recursive call
/// spawns a child greenlet. The arguments live until the body ends and drop
/// in the order of a plain call. Compile errors, each with a hint:
/// `async`/`const`/`unsafe`/`extern` functions, `&self`, borrowed
/// (non-`'static`) arguments or lifetime parameters, `impl Trait` arguments,
/// unknown options. Names starting with `__greenlet` are reserved for the
/// generated code.
///
/// # Panics
///
/// The generated function panics, like `greenlet::spawn`, when called
/// outside a hub scope (`greenlet::run`, `#[greenlet::main]`,
/// `#[greenlet::test]`) or when no greenlet stack can be mapped (not with
/// `start = "later"`).
///
/// # On `impl Run for Type`
///
/// [`Run`] is gevent's `Greenlet` subclass: the struct's fields are its
/// attributes, readable through the handle (which dereferences to the struct)
/// while and after it runs. On the impl, `#[greenlet]` checks it (`run` exists
/// and takes `&self`), infers `type Output` from `run`'s return type, makes
/// `Display` show the struct's name (`<Worker "name" at 0x…: ready>`) and adds
/// inherent helpers on the struct: `spawn(self)`, `spawn_later(self, delay)`
/// and `into_greenlet(self)` (unstarted).
///
/// ```
/// use greenlet::{Run, greenlet, sleep};
/// use std::cell::Cell;
/// use std::time::Duration;
///
/// struct Worker {
///     jobs: u32,
///     done: Cell<u32>,
/// }
///
/// #[greenlet]
/// impl Run for Worker {
///     fn run(&self) -> u32 {
///         for _ in 0..self.jobs {
///             sleep(Duration::ZERO);
///             self.done.set(self.done.get() + 1);
///         }
///         self.done.get()
///     }
/// }
///
/// greenlet::run(|| {
///     let w = Worker { jobs: 3, done: Cell::new(0) }.spawn();
///     assert_eq!(w.jobs, 3); // a field, read from outside
///     assert_eq!(w.get().unwrap(), 3);
///     assert!(w.to_string().starts_with("<Worker at "));
/// });
/// ```
///
/// Options: `class = "…"` (the name `Display` shows), `name = "…"` and
/// `stack_size = N` (for the helpers), `helpers = false` (no helpers, e.g.
/// when the struct has its own `spawn`), `crate = "path"`.
///
/// [`Greenlet<T>`]: https://docs.rs/greenlet/latest/greenlet/struct.Greenlet.html
/// [`Run`]: https://docs.rs/greenlet/latest/greenlet/trait.Run.html
#[proc_macro_attribute]
pub fn greenlet(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::greenlet(attr.into(), item.into()).into()
}

/// Runs `fn main` inside a hub scope (`greenlet::run`).
///
/// The body runs on the thread's own stack, which is the main greenlet: it
/// blocks with `sleep`, `join`, `get`, running the hub meanwhile. When the
/// body returns (or panics), the scope ends: as in gevent (and Go), returning from
/// `main` does not wait for the other greenlets; those still alive are
/// killed with `GreenletExit`, so their destructors run, before `main`
/// returns. End `main` with `greenlet::hub::join()` to wait for them.
///
/// Options: `stack_size = N` (the default stack size in bytes,
/// `hub::set_default_stack_size`), `stack_cache_limit = N` (finished stacks kept for
/// reuse, `hub::set_stack_cache_limit`), `crate = "path"`. `main` may return a
/// `Result`; it cannot be `async` or take arguments.
///
/// ```
/// use greenlet::{sleep, spawn};
/// use std::time::Duration;
///
/// #[greenlet::main(stack_size = 128 * 1024)]
/// fn main() {
///     assert_eq!(greenlet::hub::default_stack_size(), 128 * 1024);
///     let g = spawn(|| { sleep(Duration::from_millis(1)); "done" });
///     println!("{}", g.get().unwrap());
/// }
/// ```
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::main(attr.into(), item.into()).into()
}

/// A `#[test]` that runs inside its own hub scope and checks nothing leaks.
///
/// The body runs in `greenlet::run`, so the test starts on a fresh hub (also
/// when libtest reuses a thread) and whatever it leaves behind is killed
/// before the test returns. After the body returns, the check runs the hub
/// for at most 100 ms so that what the test started can finish; the wait
/// ends as soon as the hub runs dry (`hub::join_timeout`), so a test that
/// cleaned up pays nothing. Then it asserts the hub counters are back to a
/// fresh hub's (`hub::stats().is_quiet()`: no live greenlet, timer, fd or
/// callback, every stack pooled); the message lists the counters. The check
/// is skipped when the body returns an `Err`.
///
/// Options: `leak_check = false` (skip the check), `stack_size = N`,
/// `start_paused = true` (the test runs on virtual time: `hub::pause()` is
/// called first, so sleeps and timeouts jump instead of waiting; tokio's
/// `#[tokio::test(start_paused = true)]`), `crate = "path"`. The leak error
/// lists the live greenlets as `hub::dump()` does. Other attributes (`#[should_panic]`, `#[ignore]`) are
/// kept; do not add `#[test]` as well.
///
/// Rustdoc drops `#[test]` items from doctests, so this example is not run
/// here; the same two tests are compiled and run in the crate's
/// `tests/macros_main_test.rs` (module `doc_example`).
///
/// ```ignore
/// use greenlet::{sleep, spawn};
/// use std::time::Duration;
///
/// #[greenlet::test]
/// fn greenlets_finish() {
///     let g = spawn(|| sleep(Duration::from_millis(1)));
///     g.join();
///     assert!(g.is_successful());
/// }
///
/// #[greenlet::test(leak_check = false)]
/// fn leaves_a_sleeper() {
///     spawn(|| sleep(Duration::from_secs(60))); // killed when the test ends
/// }
///
/// #[greenlet::test(start_paused = true)]
/// fn an_hour_in_no_time() {
///     let t = greenlet::hub::now();
///     sleep(Duration::from_secs(3600));
///     assert_eq!(greenlet::hub::now() - t, Duration::from_secs(3600));
/// }
/// ```
#[proc_macro_attribute]
pub fn test(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::test(attr.into(), item.into()).into()
}
