//! Signals are sound (issue 11 §4): the fault signals are refused, every
//! handler this crate installs runs on an alternate signal stack
//! (`SA_ONSTACK`), and a burst of signals arriving while a greenlet is a
//! couple of KiB from the end of its stack does not crash the process.
//!
//! The crash-type test runs in a child process (this binary re-run with
//! `GREENLET_SOUNDNESS_CHILD` naming the scenario) and asserts on its exit
//! status and output.

use std::cell::Cell;
use std::io::ErrorKind;
use std::process::Command;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use greenlet::{Builder, signal, sleep};

const CHILD_VAR: &str = "GREENLET_SOUNDNESS_CHILD";

/// Runs test `name` of this binary in a child process with [`CHILD_VAR`]
/// and `envs` set; returns its status and combined output. Fails after 30 s.
fn run_child_with(name: &str, envs: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, name)
        .envs(envs.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{name}: the child hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text)
}

fn in_child(name: &str) -> bool {
    std::env::var(CHILD_VAR).is_ok_and(|v| v == name)
}

/// The flags of the current action of `signum`.
fn action_flags(signum: i32) -> libc::c_int {
    // SAFETY: (test code) all-zero is a valid `sigaction`; a null `act`
    // only reads the current action.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(signum, std::ptr::null(), &mut old), 0);
        old.sa_flags
    }
}

/// `true` when the calling thread has an enabled alternate signal stack.
fn has_altstack() -> bool {
    // SAFETY: (test code) all-zero is a valid `stack_t`; a null `ss` only
    // queries.
    unsafe {
        let mut old: libc::stack_t = std::mem::zeroed();
        assert_eq!(libc::sigaltstack(std::ptr::null(), &mut old), 0);
        old.ss_flags & libc::SS_DISABLE == 0
    }
}

#[test]
fn fault_and_uncatchable_signals_are_refused_with_a_reason() {
    greenlet::run(|| {
        let cases = [
            (libc::SIGSEGV, "SIGSEGV", "synchronous fault"),
            (libc::SIGBUS, "SIGBUS", "synchronous fault"),
            (libc::SIGILL, "SIGILL", "synchronous fault"),
            (libc::SIGFPE, "SIGFPE", "synchronous fault"),
            (libc::SIGKILL, "SIGKILL", "cannot be caught"),
            (libc::SIGSTOP, "SIGSTOP", "cannot be caught"),
        ];
        for (signum, name, why) in cases {
            let e = signal(signum, || ()).expect_err(name);
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{name}: {e}");
            let text = e.to_string();
            assert!(
                text.contains(name) && text.contains(why),
                "{name}: the message must name the signal and why: {text}"
            );
        }
        assert!(greenlet::hub::stats().is_quiet());
    });
}

#[test]
fn installed_handlers_run_on_the_alternate_stack() {
    greenlet::run(|| {
        let signum = libc::SIGRTMIN() + 11;
        let handle = signal(signum, || ()).expect("signal");
        assert_ne!(
            action_flags(signum) & libc::SA_ONSTACK,
            0,
            "the registry's handler was installed without SA_ONSTACK"
        );
        assert!(
            has_altstack(),
            "a thread watching signals has no alternate signal stack"
        );
        // The SIGCHLD watcher goes through the same path.
        match greenlet::fork().expect("fork") {
            // SAFETY: (test code) `_exit` ends the child at once.
            greenlet::Fork::Child => unsafe { libc::_exit(0) },
            greenlet::Fork::Parent(pid) => {
                let status = greenlet::waitpid(pid).expect("waitpid");
                assert!(status.success());
            }
        }
        assert_ne!(
            action_flags(libc::SIGCHLD) & libc::SA_ONSTACK,
            0,
            "the SIGCHLD watcher was installed without SA_ONSTACK"
        );
        handle.cancel();
    });
}

/// The writable mapping that contains `addr`, from `/proc/self/maps`.
fn mapping_of(addr: usize) -> (usize, usize) {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    for line in maps.lines() {
        let range = line.split_whitespace().next().expect("range");
        let (lo, hi) = range.split_once('-').expect("lo-hi");
        let lo = usize::from_str_radix(lo, 16).expect("hex");
        let hi = usize::from_str_radix(hi, 16).expect("hex");
        if (lo..hi).contains(&addr) {
            return (lo, hi);
        }
    }
    panic!("no mapping holds {addr:#x}");
}

/// Set when the greenlet sits near the end of its stack.
static DEEP: AtomicBool = AtomicBool::new(false);
/// Set by the sender once its burst is over.
static BURST_DONE: AtomicBool = AtomicBool::new(false);

/// Recurses until fewer than `room` bytes of the stack (whose lowest usable
/// address is `low`) are left, then waits there for the burst. Returns the
/// bytes that were left.
#[inline(never)]
fn dive(low: usize, room: usize) -> usize {
    let mut pad = [0u8; 128];
    std::hint::black_box(&mut pad);
    let left = (pad.as_ptr() as usize).saturating_sub(low);
    if left > room {
        let r = dive(low, room);
        std::hint::black_box(&pad);
        return r;
    }
    DEEP.store(true, Ordering::SeqCst);
    while !BURST_DONE.load(Ordering::SeqCst) {
        std::hint::spin_loop();
    }
    left
}

/// Child side of [`signal_burst_near_the_end_of_a_greenlet_stack`].
fn burst_near_stack_end_child() {
    greenlet::run(|| {
        let hits = Rc::new(Cell::new(0u32));
        let h = hits.clone();
        let handle = signal(libc::SIGUSR1, move || h.set(h.get() + 1)).expect("signal");
        // SAFETY: (test code) `pthread_self` has no preconditions.
        let me = unsafe { libc::pthread_self() } as usize;
        let sent = Arc::new(AtomicUsize::new(0));
        let s = Arc::clone(&sent);
        let sender = std::thread::spawn(move || {
            while !DEEP.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            for _ in 0..2000 {
                // SAFETY: (test code) `me` is the greenlet thread, alive
                // until this thread is joined.
                let r = unsafe { libc::pthread_kill(me as libc::pthread_t, libc::SIGUSR1) };
                assert_eq!(r, 0, "pthread_kill");
                s.fetch_add(1, Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_millis(20));
            BURST_DONE.store(true, Ordering::SeqCst);
        });
        let g = Builder::new()
            .stack_size(64 * 1024)
            .spawn(|| {
                let probe = 0u8;
                let here = std::hint::black_box(&probe) as *const u8 as usize;
                let (low, high) = mapping_of(here);
                let left = dive(low, 2048);
                (high - low, left)
            })
            .expect("spawn");
        let (size, left) = g.get().expect("the deep greenlet");
        sender.join().expect("sender");
        let deadline = Instant::now() + Duration::from_secs(5);
        while hits.get() == 0 {
            assert!(Instant::now() < deadline, "the handler never ran");
            sleep(Duration::from_millis(1));
        }
        println!(
            "deep-ok: {} signals while {left} of {size} stack bytes were left; handler ran {} times",
            sent.load(Ordering::SeqCst),
            hits.get()
        );
        handle.cancel();
    });
}

#[test]
fn signal_burst_near_the_end_of_a_greenlet_stack() {
    if std::env::var_os("GREENLET_UNDER_ASAN").is_some() {
        // ASan's redzones change frame sizes, so the measured depth that
        // stops 2 KiB short of the stack end does not hold there.
        eprintln!("skipped under AddressSanitizer");
        return;
    }
    const NAME: &str = "signal_burst_near_the_end_of_a_greenlet_stack";
    if in_child(NAME) {
        burst_near_stack_end_child();
        return;
    }
    // The child finds its stack's end as the start of the stack's memory
    // mapping (`mapping_of`), which needs `mprotect` guards: guard markers
    // (Linux ≥ 6.13) do not split the stack region's mapping.
    let (status, out) = run_child_with(NAME, &[("GREENLET_STACK_GUARDS", "mprotect")]);
    assert!(
        status.success() && out.contains("deep-ok"),
        "the child died under the burst ({status:?}):\n{out}"
    );
    let left: usize = out
        .split("while ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("bytes left in the output");
    assert!(
        left <= 2048,
        "the greenlet was not near its stack end: {left} bytes left"
    );
}
