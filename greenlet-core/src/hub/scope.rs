//! The hub scope: [`run`] owns this thread's hub for the length of a
//! closure; every greenlet ends before it returns.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use super::local;

/// Runs `f` on this thread's hub, then ends every greenlet it left behind
/// (tokio's `Runtime::block_on`, gevent's implicit hub made explicit).
///
/// Greenlets exist only inside a scope: `f` runs on the *main greenlet*
/// (the thread's native stack) and may spawn, sleep, join and wait. When `f`
/// returns or unwinds, every greenlet still alive is killed and waited for
/// (their destructors run, however long they block cooperatively), and the
/// hub is reset: the next scope on this thread starts fresh. So a greenlet
/// never outlives the code that could lend it borrows.
///
/// `#[greenlet::main]` and `#[greenlet::test]` expand to this call.
///
/// # Panics
///
/// When called inside another scope on the same thread (the hub is already
/// there: call the code directly). If `f` panics, the panic is resumed after
/// the greenlets have ended.
///
/// # Aborts
///
/// When a greenlet refuses to die (it swallows every kill in its own
/// `catch_unwind`): the process aborts with its name and spawn site, since
/// leaking its frames could leave borrows of freed thread-locals behind.
///
/// # Switches
///
/// `f` runs the hub whenever it blocks; scope end runs the hub until every
/// greenlet has ended.
///
/// # Examples
///
/// ```
/// use greenlet_core as greenlet;
/// use std::time::Duration;
///
/// let total = greenlet::run(|| {
///     let a = greenlet::spawn(|| 1);
///     let forever = greenlet::spawn(|| greenlet::sleep(Duration::MAX));
///     let b = greenlet::spawn(|| 2);
///     let _ = forever; // killed when the scope ends
///     a.get().unwrap() + b.get().unwrap()
/// });
/// assert_eq!(total, 3);
/// ```
#[track_caller]
pub fn run<R>(f: impl FnOnce() -> R) -> R {
    assert!(
        !local::in_scope(),
        "greenlet::run: this thread is already inside a hub scope; call the code directly"
    );
    crate::greenlet::switch::install_panic_hook();
    // Signal handlers run on an alternate stack, never on a nearly full
    // greenlet stack.
    let _altstack = super::reactor::ensure_altstack();
    local::set_in_scope(true);
    let outcome = catch_unwind(AssertUnwindSafe(f));
    // Teardown reports user panics itself; anything escaping it would leave
    // greenlets alive outside their scope, which must never be observed.
    if catch_unwind(super::teardown::end_scope).is_err() {
        eprintln!("greenlet::run: internal error: the hub scope could not end; aborting");
        std::process::abort();
    }
    local::set_in_scope(false);
    match outcome {
        Ok(value) => value,
        Err(payload) => match payload.downcast::<super::Unwind>() {
            Ok(unwind) => match unwind.into_throw() {
                super::Throw::Kill(kill) => {
                    panic!("greenlet::run: the main greenlet was killed ({kill})")
                }
                super::Throw::Timeout { elapsed, .. } => panic!(
                    "greenlet::run: a Timeout expired on the main greenlet outside any \
                     `with_timeout` ({elapsed})"
                ),
            },
            Err(payload) => resume_unwind(payload),
        },
    }
}
