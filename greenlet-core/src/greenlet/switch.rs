//! Stack switching: the only module that touches `generator`.
//!
//! # Design
//!
//! A greenlet runs on a `generator::LocalGenerator<'static, (), ()>`: an
//! asymmetric coroutine that yields back to whoever resumed it. The hub loop
//! runs on the thread's native stack and is always the resumer, so every
//! switch is *greenlet → loop → greenlet*: one [`resume`] on the loop side and
//! one [`suspend`] on the greenlet side.
//!
//! `generator`'s free `yield_with` is deprecated and panics inside scoped
//! generators, and the body's own `Scope` cannot leave its closure (E0521).
//! So each body publishes a lifetime-erased pointer to its `Scope` in the
//! thread-local [`SCOPE`] when it starts, and [`suspend`] yields through it.
//! While a greenlet is suspended, others overwrite the slot; `suspend` keeps
//! its own copy of the pointer on its own stack and writes it back after every
//! yield.
//!
//! # Invariants
//!
//! * `SCOPE` is non-null exactly while code runs on a greenlet stack, and then
//!   points at the running greenlet's `Scope`, a local of its body closure
//!   (the closure frame outlives every `suspend` made from it). `suspend`
//!   clears it before yielding and restores it after; the body clears it
//!   when it returns.
//! * [`resume`] is only called on the native stack (the hub loop); a
//!   generator is never resumed from inside another generator.
//! * A stack is never pooled after an overflow ([`Resumed::Overflowed`]).
//!
//! Stack sizes are in bytes in our API and in `usize` words in `generator`;
//! [`words_for`] converts, rounding to an **even** word count (an odd count
//! turns on full usage tracking, which makes the whole stack resident).

use std::any::Any;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::ptr;

use generator::{Gn, LocalGenerator, Scope};

/// The scope type every greenlet body gets.
type BodyScope<'s> = Scope<'s, 'static, (), ()>;

thread_local! {
    /// The running greenlet's `Scope`, lifetime-erased; null on the native
    /// stack. See the module invariants.
    static SCOPE: Cell<*mut BodyScope<'static>> = const { Cell::new(ptr::null_mut()) };
}

/// Smallest stack we hand to `generator`, in bytes: the body closure, the
/// greenlet root frame and a panic unwind must fit.
pub(crate) const MIN_STACK_SIZE: usize = 16 * 1024;

/// Converts a stack size in bytes to an even number of `usize` words.
pub(crate) fn words_for(bytes: usize) -> usize {
    let words = bytes.max(MIN_STACK_SIZE) / std::mem::size_of::<usize>();
    words & !1
}

/// One greenlet stack: a generator that is either idle (finished, ready for
/// [`Stack::install`]), loaded with a body, or suspended inside one.
pub(crate) struct Stack {
    generator: LocalGenerator<'static, (), ()>,
    /// Size in bytes this stack was created with (pool buckets by size).
    size: usize,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack").field("size", &self.size).finish()
    }
}

/// What a [`resume`] ended with.
pub(crate) enum Resumed {
    /// The body called [`suspend`]; resume it again later.
    Suspended,
    /// The body returned; the stack can be reused.
    Finished,
    /// The body ran into the guard page. Its frames were not unwound; the
    /// stack must be dropped, never pooled.
    Overflowed,
    /// `generator` raised something else on the resumer (a bug in this
    /// module if it ever happens); the payload is passed on for reporting.
    Failed(Box<dyn Any + Send>),
}

/// Why creating a stack failed.
#[derive(Debug)]
pub(crate) struct AllocError {
    pub(crate) message: String,
}

impl Stack {
    /// Maps a fresh stack of `size` bytes (plus a guard page).
    ///
    /// `generator` panics when `mmap` fails (typically `ENOMEM` once the
    /// process hits `vm.max_map_count`); that panic is caught and returned.
    pub(crate) fn new(size: usize) -> Result<Stack, AllocError> {
        let words = words_for(size);
        // The silent hook keeps the expected allocation panic off stderr; it
        // is restored right after, and only installed on this cold path.
        let made = with_silent_panics(|| {
            catch_unwind(|| Gn::<()>::new_scoped_opt_local(words, |_scope| {}))
        });
        match made {
            Ok(mut generator) => {
                // The placeholder body never ran; drop it so the stack is idle.
                generator.cancel();
                Ok(Stack { generator, size })
            }
            Err(payload) => Err(AllocError {
                message: panic_message(payload.as_ref()),
            }),
        }
    }

    /// Size in bytes this stack was created with.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Loads `body` to run at the next [`resume`]. The closure is stored on
    /// the stack itself (no heap allocation).
    ///
    /// If a body was loaded but never started, it is dropped first.
    #[inline]
    pub(crate) fn install<F: FnOnce() + 'static>(&mut self, body: F) {
        self.generator.scoped_init(move |mut scope: BodyScope<'_>| {
            let erased: *mut BodyScope<'static> = (&raw mut scope).cast();
            SCOPE.set(erased);
            body();
            SCOPE.set(ptr::null_mut());
        });
    }

    /// `true` when no body is loaded or suspended on this stack.
    pub(crate) fn is_idle(&self) -> bool {
        self.generator.is_done()
    }

    /// Forgets this stack without unmapping or unwinding it: used for a body
    /// that refuses to die when the hub is destroyed. Its memory leaks.
    pub(crate) fn leak(self) {
        std::mem::forget(self);
    }
}

/// Switches from the hub loop (native stack) into `stack` until its body
/// suspends or finishes.
#[inline]
pub(crate) fn resume(stack: &mut Stack) -> Resumed {
    debug_assert!(
        SCOPE.get().is_null(),
        "resume() must be called from the native stack"
    );
    // `generator` re-raises a stack overflow (and any panic that escaped the
    // body, which our body root prevents) on the resumer. Catching here has
    // no measurable cost on the non-panicking path.
    match catch_unwind(AssertUnwindSafe(|| stack.generator.resume())) {
        Ok(_) => {
            if stack.generator.is_done() {
                Resumed::Finished
            } else {
                Resumed::Suspended
            }
        }
        Err(payload) => {
            // The body left without returning (overflow): it never cleared
            // its published scope.
            SCOPE.set(ptr::null_mut());
            match payload.downcast_ref::<generator::Error>() {
                Some(generator::Error::StackErr) => Resumed::Overflowed,
                _ => Resumed::Failed(payload),
            }
        }
    }
}

/// `true` when the caller runs on a greenlet stack.
#[inline]
pub(crate) fn on_greenlet_stack() -> bool {
    !SCOPE.get().is_null()
}

/// Yields from the running greenlet back to the hub loop that resumed it.
///
/// Returns when the loop resumes this greenlet again. If the stack is being
/// dropped instead, `generator` unwinds from here with its `Cancel` payload,
/// which the greenlet root re-raises.
#[inline]
pub(crate) fn suspend() {
    let scope = SCOPE.get();
    assert!(
        !scope.is_null(),
        "greenlet: suspend() called outside a greenlet"
    );
    // Back on the native stack after the yield: nothing is published there.
    SCOPE.set(ptr::null_mut());
    // SAFETY: `scope` was published by the running body (see `install`) and
    // points at that body's `Scope` local, which lives in the body closure's
    // frame on this very stack: the frame is alive because we are executing
    // on top of it. Only this greenlet uses its scope, and no other reference
    // to it exists while `yield_with` runs (the body does not touch `scope`
    // except through this pointer).
    unsafe { (*scope).yield_with(()) };
    // Resumed: publish our scope again (the slot is null on the loop side).
    SCOPE.set(scope);
}

/// `true` for the payload `generator` uses to unwind a stack it is dropping
/// (or a `done!()`); the greenlet root must re-raise those.
pub(crate) fn is_generator_payload(payload: &(dyn Any + Send)) -> bool {
    payload.is::<generator::Error>()
}

/// Re-raises a payload caught on a greenlet stack.
pub(crate) fn reraise(payload: Box<dyn Any + Send>) -> ! {
    resume_unwind(payload)
}

/// Best-effort text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(e) = payload.downcast_ref::<generator::Error>() {
        format!("generator error: {e:?}")
    } else {
        "Box<dyn Any>".to_owned()
    }
}

thread_local! {
    /// Set while a stack is being created: `generator` reports a failed
    /// `mmap` by panicking, which we catch; keep it off stderr.
    static SILENT: Cell<bool> = const { Cell::new(false) };
    /// Where the last panic on this thread happened (`file:line:col`).
    static LAST_PANIC_LOCATION: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// Installs (once per process) a panic hook in front of the current one.
///
/// A panic inside a greenlet is caught at its root and reported once by the
/// hub's error handler, with the location recorded here; so the previous
/// hook is not called for it, unless the `GREENLET_PANIC_HOOK` environment
/// variable is set (then both run, e.g. to get `RUST_BACKTRACE` output).
/// Panics on the native stack go to the previous hook as usual.
fn install_panic_hook() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let forward_all = std::env::var_os("GREENLET_PANIC_HOOK").is_some();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if SILENT.get() {
                return;
            }
            if let Some(loc) = info.location() {
                // Leaked once per distinct location would grow unbounded;
                // intern through a small per-thread cache instead.
                LAST_PANIC_LOCATION.set(Some(intern(format!(
                    "{}:{}:{}",
                    loc.file(),
                    loc.line(),
                    loc.column()
                ))));
            }
            if forward_all || !on_greenlet_stack() {
                previous(info);
            }
        }));
    });
}

/// Interns a location string (few distinct panic sites per program).
fn intern(text: String) -> &'static str {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static TABLE: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut table = TABLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let set = table.get_or_insert_with(HashSet::new);
    if let Some(existing) = set.get(text.as_str()) {
        return existing;
    }
    if set.len() >= 4096 {
        return "<location not recorded>";
    }
    let leaked: &'static str = Box::leak(text.into_boxed_str());
    set.insert(leaked);
    leaked
}

/// Takes the location of the last panic on this thread.
pub(crate) fn take_panic_location() -> Option<&'static str> {
    LAST_PANIC_LOCATION.take()
}

/// Runs `f` with the panic hook silenced. Used only around stack creation,
/// whose failure `generator` reports by panicking.
fn with_silent_panics<R>(f: impl FnOnce() -> R) -> R {
    install_panic_hook();
    SILENT.set(true);
    let out = f();
    SILENT.set(false);
    out
}
