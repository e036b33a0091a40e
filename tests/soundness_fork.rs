//! `fork()` is sound in a multi-threaded process (issue 11 §5): the child
//! takes no lock that existed at fork time, so it never hangs on a lock
//! another thread held, and posts queued at fork time are never run or
//! dropped there (no "hub borrowed re-entrantly").
//!
//! Each test runs in a child process (this binary re-run with
//! `GREENLET_SOUNDNESS_CHILD` naming it) under a time limit; there, one
//! thread works the hub's shared state while the main thread forks 100
//! times, and every forked child must finish its greenlet work and exit 0
//! within 5 s (a hang fails: the child is killed and the test reports it).

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::Command;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use greenlet::{Fork, fork, hub, send_signal, signal, sleep, spawn, waitpid, waitpid_timeout};

const CHILD_VAR: &str = "GREENLET_SOUNDNESS_CHILD";
const FORKS: usize = 100;
const CHILD_LIMIT: Duration = Duration::from_secs(5);

/// Runs test `name` of this binary in a child process with [`CHILD_VAR`]
/// set and asserts it succeeded within 120 s.
fn run_in_child_process(name: &str) {
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, name)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{name}: the test process hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{name} failed in its process ({:?}):\n{text}",
        out.status
    );
}

fn in_child(name: &str) -> bool {
    std::env::var(CHILD_VAR).is_ok_and(|v| v == name)
}

/// Ends a forked child with `code` (1 if `f` panicked) without running
/// exit handlers or flushing stdio (std's locks are not ours to test).
fn child_exit(f: impl FnOnce() -> i32) -> ! {
    let code = catch_unwind(AssertUnwindSafe(f)).unwrap_or(1);
    // SAFETY: (test code) `_exit` ends the process at once; nothing of
    // ours needs to run.
    unsafe { libc::_exit(code) }
}

/// `fork()`, but a panic inside it in the child (say, while re-initialising
/// the hub) ends the child with code 10. Without this the child would unwind
/// into its copy of the test harness, whose main thread does not exist
/// there, and exit 0 when its last thread ends.
fn fork_or_exit() -> Fork {
    let parent = std::process::id();
    match catch_unwind(fork) {
        Ok(forked) => forked.expect("fork"),
        // SAFETY: (test code) `_exit` ends the child at once.
        Err(_) if std::process::id() != parent => unsafe { libc::_exit(10) },
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

/// Forks `FORKS` times; each child runs `child` and must exit 0 within
/// [`CHILD_LIMIT`].
fn fork_repeatedly(mut child: impl FnMut() -> i32) {
    for i in 0..FORKS {
        match fork_or_exit() {
            Fork::Child => child_exit(&mut child),
            Fork::Parent(pid) => match waitpid_timeout(pid, CHILD_LIMIT) {
                Ok(status) => assert_eq!(status.code(), Some(0), "fork {i}: {status:?}"),
                Err(e) => {
                    let _ = send_signal(pid, libc::SIGKILL);
                    let _ = waitpid(pid);
                    panic!("fork {i}: the child did not finish within {CHILD_LIMIT:?} ({e})");
                }
            },
        }
    }
}

/// What every child does on its fresh hub: greenlets, timers, a new handle
/// and its post.
fn greenlet_work() -> i32 {
    let g = spawn(|| {
        sleep(Duration::from_millis(1));
        7
    });
    if g.get().ok() != Some(7) {
        return 2;
    }
    let ran = Arc::new(AtomicBool::new(false));
    let r = Arc::clone(&ran);
    let fresh = hub::handle();
    if fresh.post(move || r.store(true, Ordering::SeqCst)).is_err() {
        return 3;
    }
    let deadline = Instant::now() + CHILD_LIMIT;
    while !ran.load(Ordering::SeqCst) {
        if Instant::now() > deadline {
            return 4;
        }
        sleep(Duration::ZERO);
    }
    0
}

#[test]
fn fork_while_another_thread_posts() {
    const NAME: &str = "fork_while_another_thread_posts";
    if !in_child(NAME) {
        return run_in_child_process(NAME);
    }
    greenlet::run(|| {
        let handle = hub::handle();
        let stop = Arc::new(AtomicBool::new(false));
        let executed = Arc::new(AtomicU64::new(0));
        let (h, s, e) = (handle.clone(), Arc::clone(&stop), Arc::clone(&executed));
        let hammer = std::thread::spawn(move || {
            let mut ok = 0u64;
            while !s.load(Ordering::Relaxed) {
                // At most 1,000 in flight: the hub's backlog (which each
                // child inherits and runs) stays small.
                if ok >= e.load(Ordering::Relaxed) + 1000 {
                    std::thread::yield_now();
                    continue;
                }
                let e = Arc::clone(&e);
                if h.post(move || {
                    e.fetch_add(1, Ordering::Relaxed);
                })
                .is_err()
                {
                    break;
                }
                ok += 1;
            }
            ok
        });
        fork_repeatedly(|| {
            // The parent's handle is closed here, without taking its lock.
            if handle.post(|| ()).is_ok() {
                return 5;
            }
            greenlet_work()
        });
        stop.store(true, Ordering::Relaxed);
        let ok = hammer.join().expect("hammer");
        // Every accepted post runs in the parent.
        let deadline = Instant::now() + CHILD_LIMIT;
        while executed.load(Ordering::Relaxed) < ok {
            assert!(Instant::now() < deadline, "posts lost in the parent");
            sleep(Duration::from_millis(1));
        }
        assert_eq!(executed.load(Ordering::Relaxed), ok);
        println!("{FORKS} forks while {ok} posts were made");
    });
}

#[test]
fn fork_while_another_thread_registers_signals() {
    const NAME: &str = "fork_while_another_thread_registers_signals";
    if !in_child(NAME) {
        return run_in_child_process(NAME);
    }
    greenlet::run(|| {
        let hits = Rc::new(Cell::new(0u32));
        let h = hits.clone();
        let watcher = signal(libc::SIGUSR1, move || h.set(h.get() + 1)).expect("signal");
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let churn = std::thread::spawn(move || {
            greenlet::run(|| {
                let mut rounds = 0u64;
                while !s.load(Ordering::Relaxed) {
                    let a = signal(libc::SIGUSR2, || ()).expect("signal in the churn thread");
                    let b = signal(libc::SIGRTMIN() + 9, || ()).expect("signal");
                    a.cancel();
                    b.cancel();
                    rounds += 1;
                }
                rounds
            })
        });
        fork_repeatedly(|| {
            // A watcher from before the fork works in the child.
            if send_signal(std::process::id(), libc::SIGUSR1).is_err() {
                return 6;
            }
            let deadline = Instant::now() + CHILD_LIMIT;
            while hits.get() == 0 {
                if Instant::now() > deadline {
                    return 7;
                }
                sleep(Duration::from_millis(1));
            }
            // A new signal number: installed, or refused when the registry
            // may be locked by the churn thread; never a hang.
            match signal(libc::SIGRTMIN() + 10, || ()) {
                Ok(h) => h.cancel(),
                Err(e) if e.to_string().contains("forked child") => {}
                Err(_) => return 8,
            }
            watcher.cancel();
            greenlet_work()
        });
        stop.store(true, Ordering::Relaxed);
        let rounds = churn.join().expect("churn thread");
        watcher.cancel();
        println!("{FORKS} forks while another thread did {rounds} register/cancel rounds");
    });
}

/// A post whose capture's `Drop` uses the hub.
struct TouchesHub(Arc<AtomicBool>);

impl Drop for TouchesHub {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
        // Spawning borrows the hub: dropped inside a hub borrow, this panics
        // "hub borrowed re-entrantly".
        let _ = greenlet::Builder::new().spawn(|| ());
    }
}

#[test]
fn queued_post_is_not_dropped_in_the_child() {
    const NAME: &str = "queued_post_is_not_dropped_in_the_child";
    if !in_child(NAME) {
        return run_in_child_process(NAME);
    }
    greenlet::run(|| {
        let handle = hub::handle();
        for _ in 0..10 {
            let dropped = Arc::new(AtomicBool::new(false));
            let ran = Arc::new(AtomicBool::new(false));
            let capture = TouchesHub(Arc::clone(&dropped));
            let r = Arc::clone(&ran);
            // Queued; the hub does not run before the fork.
            handle
                .post(move || {
                    let _keep = &capture;
                    r.store(true, Ordering::SeqCst);
                })
                .expect("post");
            match fork_or_exit() {
                Fork::Child => child_exit(|| {
                    sleep(Duration::from_millis(1));
                    // Neither run nor dropped here.
                    if ran.load(Ordering::SeqCst) || dropped.load(Ordering::SeqCst) {
                        return 9;
                    }
                    greenlet_work()
                }),
                Fork::Parent(pid) => {
                    let status = waitpid_timeout(pid, CHILD_LIMIT).expect("child finished");
                    assert_eq!(status.code(), Some(0), "child: {status:?}");
                    // In the parent it ran (and its capture was dropped).
                    assert!(ran.load(Ordering::SeqCst), "the post did not run");
                    let deadline = Instant::now() + CHILD_LIMIT;
                    while !dropped.load(Ordering::SeqCst) {
                        assert!(Instant::now() < deadline, "capture not dropped");
                        sleep(Duration::from_millis(1));
                    }
                }
            }
        }
    });
}
