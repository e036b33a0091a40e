use super::windows_bindings::Windows::Win32::{
    AddVectoredExceptionHandler, GetStdHandle, WriteFile, EXCEPTION_POINTERS,
};
use crate::rt::{guard, ContextStack};
use std::sync::Once;
use windows_sys::Win32::{Foundation::EXCEPTION_STACK_OVERFLOW, System::Console::STD_ERROR_HANDLE};

unsafe extern "system" fn vectored_handler(exception_info: *mut EXCEPTION_POINTERS) -> i32 {
    const EXCEPTION_CONTINUE_SEARCH: i32 = 0;

    let info = &*exception_info;
    let rec = &(*info.ExceptionRecord);
    let context = &*info.ContextRecord;

    #[cfg(target_arch = "x86_64")]
    let fault_sp = context.Rsp as usize;
    #[cfg(target_arch = "aarch64")]
    let fault_sp = context.Sp as usize;

    if rec.ExceptionCode == EXCEPTION_STACK_OVERFLOW as u32 && guard::current().contains(&fault_sp)
    {
        // greenlet-generator: never resume the overflowed generator (upstream
        // rewound the thread context to its parent with `StackErr`, leaving
        // its frames un-unwound). Call the hook or write a message and abort.
        let cur = ContextStack::current().top();
        let guard_start = cur.stack_guard.0 - crate::stack::sys::page_size();
        crate::overflow_hook::overflowed(guard_start, cur.stack_size)
    } else {
        EXCEPTION_CONTINUE_SEARCH
    }
}

/// Write `msg` to stderr without formatting or locking.
pub(crate) fn write_stderr(msg: &[u8]) {
    let mut written = 0u32;
    unsafe {
        let handle = GetStdHandle(STD_ERROR_HANDLE);
        let _ = WriteFile(
            handle,
            Some(msg.as_ptr() as *const std::ffi::c_void),
            msg.len() as u32,
            Some(&mut written),
            None,
        );
    }
}

unsafe fn init() {
    AddVectoredExceptionHandler(1, Some(vectored_handler));
}

pub fn init_once() {
    static INIT_ONCE: Once = Once::new();

    INIT_ONCE.call_once(|| unsafe {
        init();
    })
}
