//! SIGSEGV/SIGBUS handler that detects generator stack overflows.
//!
//! greenlet-generator patch (see `PATCHES.md`): upstream printed a backtrace
//! and took a `Mutex` inside the handler, kept only the last previous action
//! (SIGBUS's) for both signals, and yielded out of the overflowed generator
//! so the program continued with frames that were never unwound. This
//! version is async-signal-safe and never returns into an overflowed
//! generator:
//!
//! - a fault in the guard page of a generator running on this thread calls
//!   the overflow hook (`crate::set_overflow_hook`), or writes a fixed
//!   message with `write(2)` and aborts;
//! - any other fault restores the previous action of *that* signal and
//!   returns, so the faulting instruction re-executes and the fault goes to
//!   the previous handler (Rust std's handler prints "thread '…' has
//!   overflowed its stack" for a native-stack overflow), or to the default
//!   action.
//!
//! The previous actions are saved in statics written once, before our
//! handler is installed, and only read afterwards: the handler reads them
//! without locking.

use crate::rt::guard;

use libc::{sigaction, sighandler_t, SA_ONSTACK, SA_SIGINFO, SIGBUS, SIGSEGV};
use std::cell::UnsafeCell;
use std::mem::{self, MaybeUninit};
use std::ptr::null_mut;
use std::sync::Once;

/// A `sigaction` written once by [`init`] before our handler is installed
/// for that signal, and only read afterwards.
struct SavedAction(UnsafeCell<MaybeUninit<libc::sigaction>>);

// SAFETY: the cell is written exactly once, inside `INIT_ONCE`, before the
// `sigaction` call that installs the handler reading it; the installing
// syscall orders the write before any signal delivery that runs our handler.
// After that it is only read.
unsafe impl Sync for SavedAction {}

impl SavedAction {
    const fn new() -> Self {
        SavedAction(UnsafeCell::new(MaybeUninit::zeroed()))
    }

    fn as_mut_ptr(&self) -> *mut libc::sigaction {
        self.0.get().cast()
    }
}

static PREV_SIGSEGV: SavedAction = SavedAction::new();
static PREV_SIGBUS: SavedAction = SavedAction::new();

// Signal handler for SIGSEGV and SIGBUS. Every generator stack has a guard
// page (PROT_NONE) below it, so a generator that runs off its stack faults
// here. That case never returns (hook or abort). All other faults go back to
// the action that was installed before ours.
//
// In that second case the handler restores the previous action and returns,
// so the faulting instruction runs again and the fault is delivered to it.
// Returning from this kind of signal handler is technically not defined to
// work when reading the POSIX spec strictly, but in practice all
// implementations allow it (Rust std does the same; see
// https://github.com/rust-lang/rust/issues/26458).
//
// Everything here must be async-signal-safe: no allocation, no locks, no
// formatting. The handler runs on the alternate signal stack (SA_ONSTACK)
// that Rust std sets up for the threads it manages.
//
// A pointer to the exception context is passed as the third argument. Some
// architectures (like powerpc64) have no `ucontext_t` in Rust's libc, and we
// do not use it, so it is a generic pointer.
unsafe extern "C" fn signal_handler(
    signum: libc::c_int,
    info: *mut libc::siginfo_t,
    _ctx: *mut libc::c_void,
) {
    let addr = (*info).si_addr() as usize;

    if let Some((guard_start, stack_size)) = guard::overflowed_guard(addr) {
        // Never returns: the overflowed frames must not run again.
        crate::overflow_hook::overflowed(guard_start, stack_size);
    }

    // Not a generator overflow: hand the fault back to the previous action
    // of this very signal.
    let prev = match signum {
        SIGBUS => PREV_SIGBUS.as_mut_ptr(),
        _ => PREV_SIGSEGV.as_mut_ptr(),
    };
    sigaction(signum, prev, null_mut());
}

#[cold]
unsafe fn init() {
    let mut action: sigaction = mem::zeroed();
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    action.sa_sigaction = signal_handler as *const () as sighandler_t;
    libc::sigemptyset(&mut action.sa_mask);

    for (signal, saved) in [(SIGSEGV, &PREV_SIGSEGV), (SIGBUS, &PREV_SIGBUS)] {
        // Save the previous action first, then install ours: the handler may
        // run (on any thread) as soon as the second call returns, and must
        // find the saved action complete.
        if sigaction(signal, null_mut(), saved.as_mut_ptr()) != 0 {
            // cannot learn the previous action: leave the signal alone
            continue;
        }
        sigaction(signal, &action, null_mut());
    }
}

pub fn init_once() {
    static INIT_ONCE: Once = Once::new();

    INIT_ONCE.call_once(|| unsafe {
        init();
    })
}
