//! Stack-overflow handling of greenlet-generator (see `PATCHES.md`).
//!
//! Every case runs in a child process (this binary re-executed with
//! `OVERFLOW_CHILD=<case>`), because an overflow ends the process. The
//! harness is our own `main` (`harness = false`) so that a child runs its
//! case on the real main thread: the native-stack case then gets std's
//! `thread 'main' has overflowed its stack`.

#[cfg(unix)]
fn main() {
    if let Ok(case) = std::env::var(unix::CHILD_ENV) {
        unix::child(&case);
    }
    unix::parent();
}

#[cfg(not(unix))]
fn main() {}

#[cfg(unix)]
mod unix {
    use generator::{Gn, Scope};
    use std::hint::black_box;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Output};

    pub(crate) const CHILD_ENV: &str = "OVERFLOW_CHILD";
    const HOOK_MARKER: &str = "OVERFLOW-HOOK-MARKER";
    // 4096 words = 32 KiB: what the hook must report as the stack size
    const SMALL_WORDS: usize = 4096;
    const SMALL_BYTES: usize = SMALL_WORDS * std::mem::size_of::<usize>();

    /// Recurse until the stack runs out. Not a tail call, and the buffer is
    /// observed, so no build turns it into a loop.
    #[inline(never)]
    fn exhaust(depth: usize) -> usize {
        if depth == usize::MAX {
            return 0;
        }
        let buf = [depth as u8; 256];
        black_box(&buf);
        let r = exhaust(depth + 1);
        black_box(r.wrapping_add(buf[7] as usize))
    }

    /// Async-signal-safe hook: formats into a stack buffer, writes it with
    /// write(2) and aborts.
    fn hook(guard_start: usize, stack_size: usize) -> ! {
        let mut buf = [0u8; 128];
        let mut len = 0;
        let mut put = |bytes: &[u8]| {
            for &b in bytes {
                if len < buf.len() {
                    buf[len] = b;
                    len += 1;
                }
            }
        };
        put(HOOK_MARKER.as_bytes());
        put(b" size=");
        put_decimal(&mut put, stack_size);
        put(b" guard_nonzero=");
        put(if guard_start != 0 { b"1" } else { b"0" });
        put(b"\n");
        // SAFETY: write(2) and abort(3) are async-signal-safe.
        unsafe {
            libc::write(libc::STDERR_FILENO, buf.as_ptr().cast(), len);
            libc::abort();
        }
    }

    fn put_decimal(put: &mut impl FnMut(&[u8]), mut n: usize) {
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
        put(&digits[i..]);
    }

    fn overflow_a_generator() {
        let mut g = Gn::<()>::new_scoped_opt_local(SMALL_WORDS, |_s: Scope<(), ()>| {
            exhaust(0);
        });
        g.resume();
        eprintln!("unreachable: resume returned after an overflow");
    }

    pub(crate) fn child(case: &str) -> ! {
        // no core dumps from the aborts below
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain syscall with a valid struct.
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };

        match case {
            "hook" => {
                generator::set_overflow_hook(hook);
                overflow_a_generator();
            }
            "no_hook" => overflow_a_generator(),
            "nested" => {
                // the inner generator (32 KiB) overflows while resumed from
                // the outer one (256 KiB): the hook must see the inner size
                generator::set_overflow_hook(hook);
                let mut outer = Gn::<()>::new_scoped_opt_local(8 * SMALL_WORDS, |_s| {
                    overflow_a_generator();
                });
                outer.resume();
            }
            "spawned_thread" => {
                // std gives the threads it spawns an alternate signal stack
                generator::set_overflow_hook(hook);
                std::thread::spawn(overflow_a_generator)
                    .join()
                    .expect("join");
            }
            "native" => {
                // creating and running a generator installs our handler
                let mut g = Gn::<()>::new_scoped_opt_local(SMALL_WORDS, |mut s: Scope<(), ()>| {
                    s.yield_with(());
                });
                g.resume();
                g.resume();
                assert!(g.is_done());
                exhaust(0);
            }
            "segv_in_generator" => {
                // a fault inside a generator that is not in its guard page
                // goes to the previous handler and ends as a plain SIGSEGV
                generator::set_overflow_hook(hook);
                let mut g = Gn::<()>::new_scoped_opt_local(SMALL_WORDS, |_s: Scope<(), ()>| {
                    // SAFETY: deliberately not safe: faults on purpose.
                    unsafe { std::ptr::read_volatile(16 as *const usize) };
                });
                g.resume();
            }
            other => panic!("unknown case {other}"),
        }
        eprintln!("unreachable: case {case} returned");
        std::process::exit(3);
    }

    fn run_child(case: &str) -> (Output, String) {
        let exe = std::env::current_exe().expect("current_exe");
        let out = Command::new(exe)
            .env(CHILD_ENV, case)
            .output()
            .expect("spawn child");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out, stderr)
    }

    fn expect_signal(case: &str, out: &Output, stderr: &str, signal: i32) {
        assert_eq!(
            out.status.signal(),
            Some(signal),
            "case {case}: expected death by signal {signal}, got {:?}; stderr:\n{stderr}",
            out.status
        );
    }

    fn hook_is_called_and_aborts() {
        let (out, stderr) = run_child("hook");
        expect_signal("hook", &out, &stderr, libc::SIGABRT);
        let expected = format!("{HOOK_MARKER} size={SMALL_BYTES} guard_nonzero=1");
        assert!(stderr.contains(&expected), "stderr:\n{stderr}");
        assert!(
            !stderr.contains("coroutine has overflowed"),
            "stderr:\n{stderr}"
        );
        assert!(!stderr.contains("unreachable"), "stderr:\n{stderr}");
    }

    fn without_hook_prints_and_aborts() {
        let (out, stderr) = run_child("no_hook");
        expect_signal("no_hook", &out, &stderr, libc::SIGABRT);
        assert!(
            stderr.contains("coroutine has overflowed its stack"),
            "stderr:\n{stderr}"
        );
        assert!(!stderr.contains("unreachable"), "stderr:\n{stderr}");
    }

    fn nested_generator_reports_its_own_stack() {
        let (out, stderr) = run_child("nested");
        expect_signal("nested", &out, &stderr, libc::SIGABRT);
        let expected = format!("{HOOK_MARKER} size={SMALL_BYTES} ");
        assert!(stderr.contains(&expected), "stderr:\n{stderr}");
    }

    fn overflow_on_a_spawned_thread_calls_the_hook() {
        let (out, stderr) = run_child("spawned_thread");
        expect_signal("spawned_thread", &out, &stderr, libc::SIGABRT);
        let expected = format!("{HOOK_MARKER} size={SMALL_BYTES} ");
        assert!(stderr.contains(&expected), "stderr:\n{stderr}");
    }

    fn native_overflow_keeps_std_message() {
        let (out, stderr) = run_child("native");
        expect_signal("native", &out, &stderr, libc::SIGABRT);
        // std 1.95 prints `thread 'main' (<tid>) has overflowed its stack`;
        // older releases had no thread id
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("thread 'main'") && l.ends_with("has overflowed its stack")),
            "stderr:\n{stderr}"
        );
        assert!(
            !stderr.contains("coroutine has overflowed"),
            "stderr:\n{stderr}"
        );
    }

    fn other_faults_go_to_the_previous_handler() {
        let (out, stderr) = run_child("segv_in_generator");
        expect_signal("segv_in_generator", &out, &stderr, libc::SIGSEGV);
        assert!(!stderr.contains(HOOK_MARKER), "stderr:\n{stderr}");
        assert!(!stderr.contains("overflowed"), "stderr:\n{stderr}");
    }

    pub(crate) fn parent() {
        let cases: [(&str, fn()); 6] = [
            ("hook_is_called_and_aborts", hook_is_called_and_aborts),
            (
                "without_hook_prints_and_aborts",
                without_hook_prints_and_aborts,
            ),
            (
                "nested_generator_reports_its_own_stack",
                nested_generator_reports_its_own_stack,
            ),
            (
                "overflow_on_a_spawned_thread_calls_the_hook",
                overflow_on_a_spawned_thread_calls_the_hook,
            ),
            (
                "native_overflow_keeps_std_message",
                native_overflow_keeps_std_message,
            ),
            (
                "other_faults_go_to_the_previous_handler",
                other_faults_go_to_the_previous_handler,
            ),
        ];
        println!("running {} tests", cases.len());
        for (name, case) in cases {
            case();
            println!("test {name} ... ok");
        }
        println!("test result: ok. {} passed", cases.len());
    }
}
