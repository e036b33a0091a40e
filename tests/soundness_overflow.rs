//! Issue 11 §2: a greenlet stack overflow aborts the process with a message
//! naming the greenlet, its spawn site and its stack size; the overflowed
//! stack is never unmapped or reused first. An overflow of a thread's
//! native stack still gets std's message. Every test runs its scenario in a
//! child process and asserts on the exit signal and stderr.

mod soundness_common;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use greenlet::{Builder, Greenlet, hub, sleep, spawn};
use soundness_common::{
    CONTINUED, assert_aborted, in_child, print_spawn_line, run_child, spawn_line,
};

const FOREVER: Duration = Duration::from_secs(3600);

/// Recurses `n` levels with a 1 KiB local per frame; `black_box` keeps the
/// optimiser from turning it into a loop or dropping the array.
#[inline(never)]
fn deep(n: u64) -> u64 {
    let mut buf = [0u8; 1024];
    buf[(n % 1024) as usize] = n as u8;
    let buf = black_box(buf);
    if n == 0 {
        return u64::from(buf[0]);
    }
    deep(n - 1) + u64::from(black_box(buf)[(n % 7) as usize])
}

#[track_caller]
fn assert_overflow_message(stderr: &str, name: &str, line: u32, kib: usize) {
    let expected = format!(
        "greenlet {name} (spawned at tests/soundness_overflow.rs:{line}) overflowed its {kib} KiB stack; raise Builder::stack_size"
    );
    assert!(
        stderr.lines().any(|l| l == expected),
        "expected the line {expected:?} in:\n{stderr}"
    );
    assert!(!stderr.contains(CONTINUED), "{stderr}");
}

#[test]
fn named_greenlet_overflow_aborts_with_name_site_and_size() {
    if in_child() {
        greenlet::run(|| {
            let bystander = spawn(|| {
                for _ in 0..100 {
                    sleep(Duration::ZERO);
                }
            });
            let b = Builder::new().name("deep").stack_size(64 * 1024);
            let (g, line) = (b.spawn(|| deep(u64::MAX)), line!());
            print_spawn_line(line);
            let g: Greenlet<u64> = g.expect("spawned");
            let _ = g.get();
            eprintln!("{CONTINUED}");
            bystander.join().unwrap();
        });
        eprintln!("{CONTINUED}");
        return;
    }
    let out = run_child("named_greenlet_overflow_aborts_with_name_site_and_size");
    let stderr = assert_aborted(&out);
    assert_overflow_message(&stderr, "deep", spawn_line(&stderr), 64);
}

#[test]
fn unnamed_greenlet_overflow_names_it_unnamed() {
    if in_child() {
        greenlet::run(|| {
            hub::set_default_stack_size(128 * 1024);
            let (g, line) = (spawn(|| deep(u64::MAX)), line!());
            print_spawn_line(line);
            let _ = g.get();
        });
        eprintln!("{CONTINUED}");
        return;
    }
    let out = run_child("unnamed_greenlet_overflow_names_it_unnamed");
    let stderr = assert_aborted(&out);
    assert_overflow_message(&stderr, "<unnamed>", spawn_line(&stderr), 128);
}

/// Recurses deeply when dropped (during a kill's unwinding).
struct DeepOnDrop;

impl Drop for DeepOnDrop {
    fn drop(&mut self) {
        black_box(deep(u64::MAX));
    }
}

#[test]
fn overflow_while_unwinding_a_kill_aborts_with_the_message() {
    // Never leaves `thread::panicking()` stuck at true with frames that are
    // not unwound: the process ends with the message instead.
    if in_child() {
        greenlet::run(|| {
            let b = Builder::new().name("unwinder").stack_size(64 * 1024);
            let body = || {
                let _d = DeepOnDrop;
                sleep(FOREVER);
            };
            let (g, line) = (b.spawn(body), line!());
            print_spawn_line(line);
            let g: Greenlet<()> = g.expect("spawned");
            sleep(Duration::ZERO);
            g.kill().unwrap();
            eprintln!("{CONTINUED}");
        });
        eprintln!("{CONTINUED}");
        return;
    }
    let out = run_child("overflow_while_unwinding_a_kill_aborts_with_the_message");
    let stderr = assert_aborted(&out);
    assert_overflow_message(&stderr, "unwinder", spawn_line(&stderr), 64);
}

#[test]
fn overflow_while_unwinding_at_scope_end_aborts_with_the_message() {
    if in_child() {
        greenlet::run(|| {
            let b = Builder::new().name("leftover").stack_size(64 * 1024);
            let body = || {
                let _d = DeepOnDrop;
                sleep(FOREVER);
            };
            let (g, line) = (b.spawn(body), line!());
            print_spawn_line(line);
            let _g: Greenlet<()> = g.expect("spawned");
            sleep(Duration::ZERO);
        });
        eprintln!("{CONTINUED}");
        return;
    }
    let out = run_child("overflow_while_unwinding_at_scope_end_aborts_with_the_message");
    let stderr = assert_aborted(&out);
    assert_overflow_message(&stderr, "leftover", spawn_line(&stderr), 64);
}

#[test]
fn native_stack_overflow_after_greenlets_ran_gets_std_message() {
    if std::env::var_os("GREENLET_UNDER_ASAN").is_some() {
        // AddressSanitizer handles a native stack overflow itself (its own
        // SIGSEGV handler reports "stack-overflow"), before std's message.
        eprintln!("skipped under AddressSanitizer");
        return;
    }
    // Once the overflow handler is installed (greenlets ran), an overflow of
    // the thread's own stack still prints std's message and aborts, rather
    // than dying of a bare SIGSEGV.
    if in_child() {
        greenlet::run(|| {
            let gs: Vec<_> = (0..4u64)
                .map(|i| {
                    spawn(move || {
                        sleep(Duration::ZERO);
                        deep(4) + i
                    })
                })
                .collect();
            for g in gs {
                g.get().expect("runs");
            }
            black_box(deep(u64::MAX));
            eprintln!("{CONTINUED}");
        });
        eprintln!("{CONTINUED}");
        return;
    }
    let out = run_child("native_stack_overflow_after_greenlets_ran_gets_std_message");
    let stderr = assert_aborted(&out);
    assert!(stderr.contains("has overflowed its stack"), "{stderr}");
    assert!(
        !stderr.contains("greenlet <unnamed>") && !stderr.contains(CONTINUED),
        "{stderr}"
    );
}

#[test]
fn native_stack_overflow_on_a_spawned_thread_gets_std_message() {
    if std::env::var_os("GREENLET_UNDER_ASAN").is_some() {
        // AddressSanitizer handles a native stack overflow itself (its own
        // SIGSEGV handler reports "stack-overflow"), before std's message.
        eprintln!("skipped under AddressSanitizer");
        return;
    }
    if in_child() {
        let t = std::thread::Builder::new()
            .name("native-deep".into())
            .stack_size(256 * 1024)
            .spawn(|| {
                greenlet::run(|| {
                    spawn(|| sleep(Duration::ZERO)).join().unwrap();
                    black_box(deep(u64::MAX));
                })
            })
            .expect("thread");
        let _ = t.join();
        eprintln!("{CONTINUED}");
        return;
    }
    let out = run_child("native_stack_overflow_on_a_spawned_thread_gets_std_message");
    let stderr = assert_aborted(&out);
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("thread 'native-deep'")
                && l.ends_with("has overflowed its stack")),
        "{stderr}"
    );
    assert!(!stderr.contains(CONTINUED), "{stderr}");
}

/// Incremented by the scoped thread; read by nobody (the process aborts).
static SCOPED_WRITES: AtomicUsize = AtomicUsize::new(0);

#[test]
fn overflow_with_a_scoped_thread_borrowing_the_stack_aborts() {
    // A `std::thread::scope` thread writes into an array on the greenlet's
    // stack while the greenlet overflows. The stack must never be unmapped
    // and reused under it: the process aborts with the message.
    if in_child() {
        greenlet::run(|| {
            let b = Builder::new().name("lender").stack_size(64 * 1024);
            let body = || {
                let shared: [AtomicU64; 512] = std::array::from_fn(|_| AtomicU64::new(0));
                std::thread::scope(|s| {
                    let arr = &shared;
                    s.spawn(move || {
                        loop {
                            for (i, cell) in arr.iter().enumerate() {
                                cell.store(i as u64 + 1, Ordering::Relaxed);
                            }
                            SCOPED_WRITES.fetch_add(1, Ordering::Relaxed);
                            std::thread::yield_now();
                        }
                    });
                    // Let the scoped thread run, then overflow.
                    while SCOPED_WRITES.load(Ordering::Relaxed) < 10 {
                        std::thread::yield_now();
                    }
                    black_box(deep(u64::MAX));
                });
            };
            let (g, line) = (b.spawn(body), line!());
            print_spawn_line(line);
            let g: Greenlet<()> = g.expect("spawned");
            let _ = g.get();
            eprintln!("{CONTINUED}");
            // Were the stack reused, these greenlets would get its memory.
            let others: Vec<_> = (0..8)
                .map(|_| {
                    Builder::new()
                        .stack_size(64 * 1024)
                        .spawn(|| {
                            let zeros = [0u64; 512];
                            sleep(Duration::from_millis(5));
                            black_box(zeros).iter().all(|&x| x == 0)
                        })
                        .expect("spawned")
                })
                .collect();
            for g in others {
                eprintln!("zeroed array intact: {}", g.get().expect("runs"));
            }
        });
        eprintln!("{CONTINUED}");
        return;
    }
    let out = run_child("overflow_with_a_scoped_thread_borrowing_the_stack_aborts");
    let stderr = assert_aborted(&out);
    assert_overflow_message(&stderr, "lender", spawn_line(&stderr), 64);
    assert!(!stderr.contains("zeroed array intact"), "{stderr}");
}

/// Issue 16: greenlet stacks are slots of one region, each with a guard page
/// (a guard marker on Linux ≥ 6.13, else `mprotect`) between it and the slot
/// below. An overflow in a slot between live neighbours hits its own guard
/// and aborts with the message; the neighbours' frames are never written.
fn overflow_between_region_neighbours(test: &str) {
    if in_child() {
        greenlet::run(|| {
            // Neighbours on both sides: slots are handed out in address
            // order, so the overflowing one sits between parked greenlets.
            let neighbours: Vec<Greenlet<()>> = (0..64)
                .map(|_| {
                    Builder::new()
                        .stack_size(64 * 1024)
                        .spawn(|| sleep(FOREVER))
                        .expect("spawned")
                })
                .collect();
            sleep(Duration::ZERO);
            eprintln!("guard markers: {}", hub::uses_guard_markers());
            let b = Builder::new().name("slot").stack_size(64 * 1024);
            let (g, line) = (b.spawn(|| deep(u64::MAX)), line!());
            let after: Vec<Greenlet<()>> = (0..64)
                .map(|_| {
                    Builder::new()
                        .stack_size(64 * 1024)
                        .spawn(|| sleep(FOREVER))
                        .expect("spawned")
                })
                .collect();
            print_spawn_line(line);
            let g: Greenlet<u64> = g.expect("spawned");
            let _ = g.get();
            eprintln!("{CONTINUED}");
            drop((neighbours, after));
        });
        eprintln!("{CONTINUED}");
        return;
    }
    let out = run_child(test);
    let stderr = assert_aborted(&out);
    let markers = hub::uses_guard_markers();
    assert!(
        stderr.contains(&format!("guard markers: {markers}")),
        "{stderr}"
    );
    assert_overflow_message(&stderr, "slot", spawn_line(&stderr), 64);
}

#[test]
fn overflow_on_a_region_stack_between_live_neighbours_aborts() {
    overflow_between_region_neighbours("overflow_on_a_region_stack_between_live_neighbours_aborts");
}

#[test]
fn overflow_on_a_region_stack_with_mprotect_guards_aborts() {
    // The fallback for kernels without guard markers, forced on any kernel;
    // the child inherits the variable from this process's environment.
    if !in_child() {
        let exe = std::env::current_exe().expect("the test binary knows its path");
        let out = std::process::Command::new(exe)
            .args([
                "overflow_on_a_region_stack_with_mprotect_guards_aborts",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(soundness_common::CHILD_ENV, "1")
            .env("GREENLET_STACK_GUARDS", "mprotect")
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("the test binary can be re-run");
        let stderr = assert_aborted(&out);
        assert!(stderr.contains("guard markers: false"), "{stderr}");
        assert_overflow_message(&stderr, "slot", spawn_line(&stderr), 64);
        return;
    }
    overflow_between_region_neighbours("unused in the child");
}
