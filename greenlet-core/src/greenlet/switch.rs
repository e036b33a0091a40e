//! Stack switching: the only module that touches `generator`.
//!
//! # Design
//!
//! A greenlet runs on a `generator::LocalGenerator<'static, (), ()>`: an
//! asymmetric coroutine that yields back to whoever resumed it. The hub loop
//! runs on the thread's native stack and [`resume`]s greenlets; a greenlet
//! that blocks either [`suspend`]s back to the loop or, when the next ready
//! entry is another greenlet that has already run, [`transfer`]s to it
//! directly (symmetric transfer: the target runs in its place, and the loop
//! gets control back when some greenlet of the chain suspends or finishes;
//! the hub's `current` says which). Either way the chain is one level deep:
//! a generator is never resumed from inside another.
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
//!   generator is never resumed from inside another generator, and
//!   [`transfer`] only from a greenlet stack to a suspended greenlet.
//! * A stack stays in its hub slot from its greenlet's first switch until
//!   the greenlet finishes: [`SwitchRef`]s point into it. It is never pooled
//!   after an overflow (an overflow aborts).
//!
//! Stacks are slots of the hub's stack region (`hub/stacks.rs`), handed to
//! `generator` as `StackMemory` (sizes in bytes, page multiples).

use std::any::Any;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

use generator::{Gn, LocalGenerator, Scope};

use super::state::{Core, Header};

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

impl Stack {
    /// An idle stack on `memory` (a slot of the hub's stack region, see
    /// `hub/stacks.rs`), for greenlets of `size` bytes. The memory goes back
    /// to the region when the stack is dropped.
    pub(crate) fn in_memory(memory: generator::StackMemory, size: usize) -> Stack {
        // The overflow hook must be in place before the stack first runs.
        install_panic_hook();
        // The slot is far larger than the generator's control block and the
        // placeholder closure, so placing them cannot fail.
        let mut generator = Gn::<()>::new_scoped_local_in(memory, |_scope| {});
        // The placeholder body never ran; drop it so the stack is idle.
        generator.cancel();
        Stack { generator, size }
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
            // The body root catches every unwind of user code. Nothing may
            // reach the substrate: after a `transfer` the `resume` that
            // would re-raise it belongs to another greenlet, so it would be
            // lost and leave this scope published on the native stack.
            if let Err(payload) = catch_unwind(AssertUnwindSafe(body)) {
                if is_generator_payload(&*payload) {
                    // `generator` cancelling the stack: its own business.
                    std::panic::resume_unwind(payload);
                }
                std::mem::forget(payload);
                fatal(b"greenlet: internal error: a panic escaped a greenlet's root\n");
            }
            SCOPE.set(ptr::null_mut());
        });
    }

    /// `true` when the caller, which runs on this stack, has at least
    /// `bytes` of it left below its frame (the guard page is below that).
    #[inline]
    pub(crate) fn has_room(&self, bytes: usize) -> bool {
        let marker = 0u8;
        let sp = (&raw const marker).addr();
        sp.saturating_sub(self.generator.stack_bottom()) >= bytes
    }

    /// `true` when no body is loaded or suspended on this stack.
    pub(crate) fn is_idle(&self) -> bool {
        self.generator.is_done()
    }
}

/// A stack is only ever dropped idle (finished or never loaded): dropping
/// one with live frames would unmap memory that those frames (or threads
/// they lent it to with `std::thread::scope`) may still use, and `generator`
/// would either unwind it from the wrong place or, while the thread is
/// panicking, not unwind it at all. That cannot happen through the hub; if
/// it ever does, the process aborts instead of freeing live frames.
impl Drop for Stack {
    fn drop(&mut self) {
        if !self.generator.is_done() {
            fatal(b"greenlet: internal error: a greenlet stack with live frames was dropped\n");
        }
    }
}

/// Writes `message` to stderr with `write(2)` and aborts: usable anywhere,
/// signal handlers included.
fn fatal(message: &[u8]) -> ! {
    write_stderr(message);
    std::process::abort()
}

/// Async-signal-safe write of `bytes` to stderr (best effort).
fn write_stderr(bytes: &[u8]) {
    // SAFETY: `write(2)` on fd 2 with a valid pointer/length pair; it is
    // async-signal-safe and touches no Rust state.
    unsafe {
        libc::write(libc::STDERR_FILENO, bytes.as_ptr().cast(), bytes.len());
    }
}

/// Who runs on the stack being resumed, for the overflow message (written
/// from a signal handler: no allocation, no locks). Points at the greenlet's
/// cell, which its hub slot keeps alive while the greenlet runs; `None` for
/// raw greenlets. Making one is a pointer copy (the switch path pays no
/// virtual call; only the overflow message does).
#[derive(Clone, Copy)]
pub(crate) struct RunningInfo(Option<std::ptr::NonNull<dyn Core>>);

impl RunningInfo {
    pub(crate) const NONE: RunningInfo = RunningInfo(None);

    #[inline]
    pub(crate) fn new(core: &std::rc::Rc<dyn Core>) -> RunningInfo {
        RunningInfo(Some(std::ptr::NonNull::from(&**core)))
    }
}

thread_local! {
    /// The greenlet being resumed (see [`RunningInfo`]); read by the
    /// overflow handler. `const`-initialised without a destructor, so
    /// reading it is async-signal-safe.
    static RUNNING: Cell<RunningInfo> = const { Cell::new(RunningInfo::NONE) };
}

/// The overflow hook `generator`'s SIGSEGV/SIGBUS handler calls (on the
/// alternate signal stack) when a fault hits the running greenlet's guard
/// page.
fn overflow_hook(_guard_start: usize, stack_size: usize) -> ! {
    overflow_abort(stack_size)
}

/// Writes `greenlet <name> (spawned at file:line) overflowed its N KiB
/// stack; raise Builder::stack_size` and aborts. Async-signal-safe: runs on
/// the alternate signal stack from the overflow handler, so the overflowed
/// stack is never unmapped or reused before the process ends.
pub(crate) fn overflow_abort(stack_size: usize) -> ! {
    let info = RUNNING.get().0;
    // SAFETY: a pointer was set by `resume` from the cell of the greenlet
    // running on this thread; its hub slot holds an `Rc` to the cell for as
    // long as the greenlet is alive, and the greenlet is alive: it is the one
    // that overflowed (execution never returns to free it). `header()` only
    // reads the cell.
    let header = info.map(|core| unsafe { core.as_ref() }.header());
    write_stderr(b"greenlet ");
    match header.and_then(Header::name) {
        Some(name) => write_stderr(name.as_bytes()),
        None => write_stderr(b"<unnamed>"),
    }
    if let Some(at) = header.map(|h| h.spawned_at) {
        write_stderr(b" (spawned at ");
        write_stderr(at.file().as_bytes());
        write_stderr(b":");
        write_decimal(at.line() as usize);
        write_stderr(b")");
    }
    write_stderr(b" overflowed its ");
    write_decimal(stack_size / 1024);
    fatal(b" KiB stack; raise Builder::stack_size\n")
}

/// Writes `n` in decimal without allocating.
fn write_decimal(mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    write_stderr(&digits[i..]);
}

/// A stack's generator as the hub switches to it: a raw pointer to its
/// control block, which lives on the stack memory and never moves (the
/// [`Stack`] that owns it sits in the hub's slot table, which can grow while
/// the greenlet runs). Made under the hub borrow by [`Stack::switch_ref`],
/// used after the borrow by [`resume`] or [`transfer`].
#[derive(Clone, Copy)]
pub(crate) struct SwitchRef {
    raw: generator::RawGenerator<'static, (), ()>,
    /// The stack's size, for the overflow message.
    size: usize,
}

impl Stack {
    /// The handle [`resume`] and [`transfer`] switch through. The stack
    /// must stay in its slot, alive, until the greenlet on it finishes (the
    /// hub only takes a stack out of its slot, or drops it, once it is
    /// idle: see [`Stack`]'s `Drop`).
    #[inline]
    pub(crate) fn switch_ref(&mut self) -> SwitchRef {
        SwitchRef {
            raw: self.generator.raw(),
            size: self.size,
        }
    }
}

/// Switches from the hub loop (native stack) into `to` until a greenlet
/// stack returns to the loop: `to`, or one it [`transfer`]red to (the hub's
/// `current` says which), suspended or finished. `info` names `to` for the
/// overflow message.
#[inline]
pub(crate) fn resume(to: SwitchRef, info: RunningInfo) {
    debug_assert!(
        SCOPE.get().is_null(),
        "resume() must be called from the native stack"
    );
    RUNNING.set(info);
    // The body root catches every unwind, so nothing but the substrate's
    // own errors can come out here. Catching has no measurable cost on the
    // non-panicking path.
    // SAFETY: `to` was made from a stack in its hub slot, under the borrow
    // that scheduled it; the hub never drops a stack with live frames, nor
    // takes one out of its slot while it is not idle, so the control block
    // is alive until it finishes; nothing else holds a reference to it.
    let resumed = catch_unwind(AssertUnwindSafe(|| unsafe { to.raw.resume() }));
    match resumed {
        Ok(_) => {
            // `suspend` clears the published scope before it yields and the
            // body root when it returns: the native stack publishes none.
            debug_assert!(SCOPE.get().is_null(), "a scope left published");
        }
        Err(payload) => {
            // The body left without returning: clear what it published.
            SCOPE.set(ptr::null_mut());
            resume_failed(payload, to.size)
        }
    }
}

/// Switches from the running greenlet straight to `to` (another greenlet's
/// stack, suspended in `suspend` or `transfer`), without going through the
/// loop: the loop gets control back when a greenlet of the chain suspends
/// or finishes. Returns when this greenlet is switched to again.
#[inline]
pub(crate) fn transfer(to: SwitchRef, info: RunningInfo) {
    let scope = SCOPE.get();
    debug_assert!(!scope.is_null(), "transfer() called outside a greenlet");
    RUNNING.set(info);
    // SAFETY: we run on a greenlet stack that the loop resumed from the
    // native stack (greenlets never resume one another; they only transfer,
    // and a transfer keeps the chain one level deep). `to` was made under
    // the borrow that popped its ready entry: its stack sits in its slot,
    // suspended at a `suspend` or `transfer` (the hub hands out a
    // `SwitchRef` only for a scheduled greenlet that has run and is not this
    // one), and stays alive while it runs, like `resume`'s.
    unsafe { to.raw.transfer() };
    // Switched back to: publish our scope again (whoever ran published its
    // own).
    SCOPE.set(scope);
}

/// `resume` came back by unwinding: only the substrate does that (the body
/// root catches everything), and either way the stack cannot be trusted.
#[cold]
fn resume_failed(payload: Box<dyn Any + Send>, stack_size: usize) -> ! {
    match payload.downcast_ref::<generator::Error>() {
        // The body ran into the guard page; its frames were abandoned, never
        // unwound: nothing may free or reuse this stack.
        Some(generator::Error::StackErr) => overflow_abort(stack_size),
        _ => {
            // Never mind the payload's `Drop`: we are about to abort.
            std::mem::forget(payload);
            fatal(b"greenlet: internal error: the stack switch failed\n")
        }
    }
}

/// `true` when the caller runs on a greenlet stack.
#[inline]
pub(crate) fn on_greenlet_stack() -> bool {
    !SCOPE.get().is_null()
}

/// Yields from the running greenlet back to the hub loop (on the native
/// stack) that resumed it or the greenlet that transferred to it.
///
/// Returns when this greenlet is switched to again: resumed by the loop, or
/// reached by another greenlet's [`transfer`]. If the stack is being
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
    // Switched to again: publish our scope (the loop leaves the slot null;
    // a greenlet that transferred here left its own).
    SCOPE.set(scope);
}

/// `true` for the payload `generator` uses to unwind a stack it is dropping
/// (or a `done!()`). The hub never drops a stack with live frames, so such
/// a payload in a body was raised by user code: a panic like any other.
pub(crate) fn is_generator_payload(payload: &(dyn Any + Send)) -> bool {
    payload.is::<generator::Error>()
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
    /// Set while a hub callback runs under the loop's `catch_unwind`: its
    /// panic is reported by the error handler, so the process hook is not
    /// run for it (one report per failure).
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
    /// The last panic the hook kept off stderr on this thread (the error
    /// handler reports it): `(message, location, backtrace)`.
    static LAST_PANIC: std::cell::RefCell<Option<CaughtPanic>> = const { std::cell::RefCell::new(None) };
}

/// What the panic hook recorded about a panic it did not print.
pub(crate) struct CaughtPanic {
    pub(crate) message: String,
    pub(crate) location: Option<String>,
    /// Captured when `RUST_BACKTRACE` asks for it (std's rule).
    pub(crate) backtrace: Option<std::backtrace::Backtrace>,
}

/// Installs (once per process) a panic hook in front of the current one.
///
/// A panic inside a greenlet or a hub callback is caught and reported once
/// by the hub's error handler, with the message, location and (when
/// `RUST_BACKTRACE` is set) backtrace recorded here; so the previous hook is
/// not called for it, unless the `GREENLET_PANIC_HOOK` environment variable
/// is set (then both run). Panics on the native stack go to the previous
/// hook as usual. A panic that cannot unwind (a destructor that panics
/// during an unwind, which aborts the process) first prints the panic the
/// hook kept back, then goes to the previous hook, so the reason for the
/// abort is on stderr.
pub(crate) fn install_panic_hook() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        generator::set_overflow_hook(overflow_hook);
        let forward_all = std::env::var_os("GREENLET_PANIC_HOOK").is_some();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload_as_str()
                .map_or_else(|| panic_message(info.payload()), str::to_owned);
            let cannot_unwind = message == "panic in a destructor during cleanup"
                || message == "panic in a function that cannot unwind";
            if cannot_unwind {
                // About to abort: show what was kept back, then std's text.
                if let Some(kept) = LAST_PANIC.with_borrow_mut(Option::take) {
                    let _ = std::io::Write::write_all(
                        &mut std::io::stderr(),
                        format!(
                            "greenlet: panicked at {}: {}\n",
                            kept.location.as_deref().unwrap_or("<unknown>"),
                            kept.message
                        )
                        .as_bytes(),
                    );
                }
                previous(info);
                return;
            }
            let caught = on_greenlet_stack() || IN_CALLBACK.get();
            if caught {
                let kept = CaughtPanic {
                    message,
                    location: info
                        .location()
                        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column())),
                    backtrace: Some(std::backtrace::Backtrace::capture())
                        .filter(|b| b.status() == std::backtrace::BacktraceStatus::Captured),
                };
                LAST_PANIC.with_borrow_mut(|slot| *slot = Some(kept));
            }
            if forward_all || !caught {
                previous(info);
            }
        }));
    });
}

/// Takes what the hook recorded about the last caught panic on this thread.
pub(crate) fn take_caught_panic() -> Option<CaughtPanic> {
    LAST_PANIC.with_borrow_mut(Option::take)
}

/// Runs `f` as a hub callback: its panics are reported by the error
/// handler only.
pub(crate) fn in_callback<R>(f: impl FnOnce() -> R) -> R {
    let was = IN_CALLBACK.replace(true);
    let out = f();
    IN_CALLBACK.set(was);
    out
}
