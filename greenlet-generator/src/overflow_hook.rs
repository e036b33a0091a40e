//! Stack-overflow hook (greenlet-generator patch, see `PATCHES.md`).
//!
//! When a generator runs into the guard page below its stack, the fault
//! handler calls the hook registered here, or, without one, writes
//! `coroutine has overflowed its stack` to stderr and aborts. The overflowed
//! frames are never unwound and the handler never returns into them.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The function called when a generator overflows its stack.
///
/// Arguments: the start address of the guard page that was hit, and the
/// usable size of the overflowed stack in bytes. It must not return.
pub type OverflowHook = fn(guard_start: usize, stack_size: usize) -> !;

// 0 = no hook; otherwise an `OverflowHook` stored as an address, so the
// signal handler can read it with one lock-free load.
static OVERFLOW_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Register the function called when a generator overflows its stack,
/// replacing any previous one.
///
/// The hook runs **inside the SIGSEGV/SIGBUS handler** (Unix) or the
/// vectored exception handler (Windows), on the thread's alternate signal
/// stack, which is small (a few KiB). It must therefore be
/// async-signal-safe: no allocation, no locks, no `println!`/`eprintln!`,
/// no panicking, no unwinding; write with `libc::write(2, …)` from a stack
/// buffer and end with `libc::abort()` (or `_exit`). The overflowed
/// generator's frames are never unwound, so the process must not continue
/// running it; returning is impossible (`-> !`).
///
/// `guard_start` is the address of the guard page that was hit and
/// `stack_size` the usable size of the overflowed stack in bytes: together
/// they identify the generator whose stack overflowed.
///
/// The hook is process-wide. Registering it before the first generator is
/// created is not required: the handler reads it at fault time.
pub fn set_overflow_hook(hook: OverflowHook) {
    OVERFLOW_HOOK.store(hook as usize, Ordering::Release);
}

/// Remove the hook registered with [`set_overflow_hook`]; overflows go back
/// to the default message and abort.
pub fn clear_overflow_hook() {
    OVERFLOW_HOOK.store(0, Ordering::Release);
}

/// Called by the platform fault handler once it has established that the
/// fault hit the guard page of a running generator's stack. Never returns.
///
/// Async-signal-safe: one atomic load, then either the hook or
/// `write(2)` + `abort()`.
#[cfg_attr(target_os = "fuchsia", allow(dead_code))] // no fault handler there
pub(crate) fn overflowed(guard_start: usize, stack_size: usize) -> ! {
    let hook = OVERFLOW_HOOK.load(Ordering::Acquire);
    if hook != 0 {
        // SAFETY: a non-zero value was stored by `set_overflow_hook` from a
        // valid `OverflowHook`, and fn pointers round-trip through `usize`.
        let hook: OverflowHook = unsafe { std::mem::transmute::<usize, OverflowHook>(hook) };
        hook(guard_start, stack_size);
    }
    write_stderr(b"coroutine has overflowed its stack\n");
    std::process::abort();
}

/// Write `msg` to stderr without allocating or locking.
#[cfg(unix)]
#[cfg_attr(target_os = "fuchsia", allow(dead_code))]
fn write_stderr(msg: &[u8]) {
    // SAFETY: write(2) is async-signal-safe; `msg` is a valid buffer. A short
    // or failed write is ignored: we abort right after.
    unsafe {
        libc::write(libc::STDERR_FILENO, msg.as_ptr().cast(), msg.len());
    }
}

#[cfg(windows)]
fn write_stderr(msg: &[u8]) {
    crate::stack::overflow::write_stderr(msg);
}

#[cfg(not(any(unix, windows)))]
fn write_stderr(_msg: &[u8]) {}
