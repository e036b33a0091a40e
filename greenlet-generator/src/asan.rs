//! Context switches, with AddressSanitizer fiber annotations when the crate
//! is built with `-Zsanitizer=address` (greenlet-generator; `build.rs` sets
//! `cfg(greenlet_asan)` then).
//!
//! ASan tracks one stack per thread. Told nothing, it takes a switch to a
//! generator stack for a stack overflow of sorts: it ignores
//! `__asan_handle_no_return` there, so the shadow of frames an unwind leaves
//! behind stays poisoned and a later generator reusing that memory trips
//! over it. `__sanitizer_start_switch_fiber` before every switch and
//! `__sanitizer_finish_switch_fiber` after it tell ASan which stack runs.

use crate::reg_context::RegContext;
use crate::rt::Context;

/// Saves the registers into `out` and resumes `to` (a context whose
/// registers were saved by a switch, or initialised for a first run).
/// Returns when something switches back to `out`'s context.
#[inline(always)]
pub(crate) fn switch(out: &mut RegContext, to: &Context) {
    #[cfg(greenlet_asan)]
    let fake = fiber::start(to);
    RegContext::swap(out, &to.regs);
    #[cfg(greenlet_asan)]
    fiber::finish(fake);
}

/// [`switch`] from a generator whose body has returned: its stack is never
/// switched back to (so ASan may drop its fake stack).
#[inline(always)]
pub(crate) fn switch_exit(out: &mut RegContext, to: &Context) {
    #[cfg(greenlet_asan)]
    fiber::start_exit(to);
    RegContext::swap(out, &to.regs);
}

/// Called first thing on a generator's new stack.
#[inline(always)]
pub(crate) fn entered() {
    #[cfg(greenlet_asan)]
    fiber::finish(std::ptr::null_mut());
}

#[cfg(greenlet_asan)]
mod fiber {
    use std::cell::Cell;
    use std::ffi::c_void;
    use std::ptr;

    use crate::rt::Context;

    extern "C" {
        fn __sanitizer_start_switch_fiber(
            fake_stack_save: *mut *mut c_void,
            bottom: *const c_void,
            size: usize,
        );
        fn __sanitizer_finish_switch_fiber(
            fake_stack_save: *mut c_void,
            bottom_old: *mut *const c_void,
            size_old: *mut usize,
        );
    }

    thread_local! {
        /// This thread's native stack, `(bottom, size)`, once known.
        static NATIVE: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
    }

    /// The native stack of this thread (the root context's).
    fn native_stack() -> (usize, usize) {
        let known = NATIVE.get();
        if known.1 != 0 {
            return known;
        }
        // SAFETY: `attr` is initialised by `pthread_getattr_np` before it is
        // read and destroyed once; the out-pointers are valid locals.
        unsafe {
            let mut attr = std::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
            if libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) == 0 {
                let mut addr: *mut c_void = ptr::null_mut();
                let mut size = 0usize;
                if libc::pthread_attr_getstack(attr.as_ptr(), &mut addr, &mut size) == 0 {
                    NATIVE.set((addr as usize, size));
                }
                libc::pthread_attr_destroy(attr.as_mut_ptr());
            }
        }
        NATIVE.get()
    }

    /// `to`'s stack as ASan wants it: `(bottom, size)`.
    fn bounds(to: &Context) -> (usize, usize) {
        let (bottom, end) = to.stack_guard;
        if bottom == 0 {
            native_stack()
        } else {
            (bottom, end - bottom)
        }
    }

    /// Announces a switch to `to`'s stack. Returns what [`finish`] needs
    /// when the current stack is resumed.
    #[inline]
    pub(super) fn start(to: &Context) -> *mut c_void {
        let (bottom, size) = bounds(to);
        let mut fake: *mut c_void = ptr::null_mut();
        // SAFETY: a plain call into the ASan runtime (linked whenever
        // `greenlet_asan` is set) with a valid out-pointer.
        unsafe { __sanitizer_start_switch_fiber(&mut fake, bottom as *const c_void, size) };
        fake
    }

    /// [`start`] from a stack that is never resumed: ASan frees its fake
    /// stack in the call, so nothing of this frame is touched after it.
    #[inline]
    pub(super) fn start_exit(to: &Context) {
        let (bottom, size) = bounds(to);
        // SAFETY: as in `start`, with a null save pointer.
        unsafe { __sanitizer_start_switch_fiber(ptr::null_mut(), bottom as *const c_void, size) };
    }

    /// Completes a switch to the current stack.
    #[inline]
    pub(super) fn finish(fake: *mut c_void) {
        let mut bottom: *const c_void = ptr::null();
        let mut size = 0usize;
        // SAFETY: as in `start`; `fake` is what `start` returned on this
        // stack (or null on a stack's first entry).
        unsafe { __sanitizer_finish_switch_fiber(fake, &mut bottom, &mut size) };
    }
}
