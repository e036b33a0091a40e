//! Issue 12 §6: each failure is reported once, and readably.
//!
//! Each scenario runs in a child process (this test binary re-run with one
//! `#[ignore]`d child test selected and [`CHILD_ENV`] set) whose stderr the
//! parent reads: a panicking link callback, `HubHandle::post` callback and
//! greenlet body each produce exactly one report; with `RUST_BACKTRACE=1`
//! the report of a greenlet panic carries a backtrace; a `Drop` that panics
//! during a kill-unwind aborts the process, but its message and location
//! reach stderr first.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use greenlet::{GreenletError, hub, sleep, spawn};

/// Set in the child process; names the scenario.
const CHILD_ENV: &str = "GREENLET_DELIVERY_REPORTS_CHILD";

fn in_child(scenario: &str) -> bool {
    std::env::var(CHILD_ENV).is_ok_and(|s| s == scenario)
}

/// Re-runs the `#[ignore]`d child test `name` of this binary and returns its
/// output.
fn run_child(name: &str, backtrace: bool) -> Output {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    Command::new(exe)
        .args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, name)
        .env("RUST_BACKTRACE", if backtrace { "1" } else { "0" })
        .env_remove("RUST_LIB_BACKTRACE")
        .env_remove("GREENLET_PANIC_HOOK")
        .env_remove("RUST_LOG")
        .output()
        .expect("the test binary can be re-run")
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs child `name`, checks it passed, and returns its stderr.
#[track_caller]
fn passing_child(name: &str, backtrace: bool) -> String {
    let out = run_child(name, backtrace);
    let stderr = stderr_of(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child {name} failed ({:?}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("1 passed"),
        "child {name} did not run its test:\n{stdout}"
    );
    stderr
}

#[track_caller]
fn assert_reported_once(stderr: &str, message: &str) {
    let n = stderr.matches(message).count();
    assert_eq!(
        n, 1,
        "{message:?} appears {n} times on stderr, expected exactly one report:\n{stderr}"
    );
}

// ============================================================ link callback

const LINK_BOOM: &str = "link-callback-boom-5e1d";

#[test]
#[ignore = "child process of a_panicking_link_callback_is_reported_once"]
fn child_link_panic() {
    if !in_child("child_link_panic") {
        return;
    }
    greenlet::run(|| {
        let g = spawn(|| 1);
        g.link(|_| panic!("{LINK_BOOM}"));
        let after = spawn(|| 2);
        g.join().unwrap();
        sleep(Duration::from_millis(5));
        assert_eq!(after.get().expect("the hub goes on"), 2);
        hub::join();
    });
}

#[test]
fn a_panicking_link_callback_is_reported_once() {
    let stderr = passing_child("child_link_panic", false);
    assert_reported_once(&stderr, LINK_BOOM);
}

// ============================================================ post callback

const POST_BOOM: &str = "post-callback-boom-a41c";

#[test]
#[ignore = "child process of a_panicking_posted_callback_is_reported_once"]
fn child_post_panic() {
    if !in_child("child_post_panic") {
        return;
    }
    greenlet::run(|| {
        let ran = Arc::new(AtomicBool::new(false));
        let r = Arc::clone(&ran);
        let h = hub::handle();
        std::thread::spawn(move || {
            h.post(move || {
                r.store(true, Ordering::SeqCst);
                panic!("{POST_BOOM}");
            })
            .expect("the hub is open")
        })
        .join()
        .expect("the poster does not panic");
        let t0 = Instant::now();
        while !ran.load(Ordering::SeqCst) && t0.elapsed() < Duration::from_secs(5) {
            sleep(Duration::from_millis(1));
        }
        assert!(ran.load(Ordering::SeqCst), "the posted callback ran");
        hub::join();
    });
}

#[test]
fn a_panicking_posted_callback_is_reported_once() {
    let stderr = passing_child("child_post_panic", false);
    assert_reported_once(&stderr, POST_BOOM);
}

// ============================================================ greenlet body

const BODY_BOOM: &str = "greenlet-body-boom-93b0";

#[test]
#[ignore = "child process of a_panicking_greenlet_body_is_reported_once and the backtrace test"]
fn child_body_panic() {
    if !in_child("child_body_panic") {
        return;
    }
    greenlet::run(|| {
        let g = spawn(|| -> u32 {
            sleep(Duration::from_millis(1));
            panic!("{BODY_BOOM}")
        });
        let r = g.get();
        let backtrace_wanted = std::env::var("RUST_BACKTRACE").is_ok_and(|v| v == "1");
        match r {
            Err(GreenletError::Panicked(p)) => {
                assert_eq!(p.message(), BODY_BOOM);
                assert!(
                    p.location()
                        .is_some_and(|l| l.contains("delivery_reports.rs")),
                    "{:?}",
                    p.location()
                );
                assert_eq!(
                    p.backtrace().is_some(),
                    backtrace_wanted,
                    "PanicError::backtrace() with RUST_BACKTRACE={backtrace_wanted}"
                );
            }
            other => panic!("expected a panic outcome, got {other:?}"),
        }
    });
}

#[test]
fn a_panicking_greenlet_body_is_reported_once() {
    let stderr = passing_child("child_body_panic", false);
    assert_reported_once(&stderr, BODY_BOOM);
    assert!(
        stderr.contains("delivery_reports.rs:"),
        "the report names the panic's location:\n{stderr}"
    );
}

/// A frame line of std's backtrace format: `  12: some::function`.
fn has_frame_line(stderr: &str) -> bool {
    stderr.lines().any(|l| {
        let t = l.trim_start();
        let digits = t.chars().take_while(char::is_ascii_digit).count();
        digits > 0 && t[digits..].starts_with(": ")
    })
}

#[test]
fn with_rust_backtrace_a_greenlet_panic_report_includes_a_backtrace() {
    let stderr = passing_child("child_body_panic", true);
    assert_reported_once(&stderr, BODY_BOOM);
    assert!(
        stderr.contains("stack backtrace") || has_frame_line(&stderr),
        "RUST_BACKTRACE=1: no backtrace in the report:\n{stderr}"
    );
}

// ============================================================ Drop panics during a kill

const DROP_BOOM: &str = "drop-panics-during-kill-c7f2";
/// The line of the `panic!` in [`PanicsInDrop::drop`].
const DROP_BOOM_LINE: u32 = line!() + 6;

struct PanicsInDrop;

impl Drop for PanicsInDrop {
    fn drop(&mut self) {
        panic!("{DROP_BOOM}");
    }
}

#[test]
#[ignore = "child process of a_drop_panicking_during_a_kill_aborts_with_its_message"]
fn child_drop_panic_during_kill() {
    if !in_child("child_drop_panic_during_kill") {
        return;
    }
    greenlet::run(|| {
        let g = spawn(|| {
            let _d = PanicsInDrop;
            sleep(Duration::from_secs(30));
        });
        sleep(Duration::ZERO);
        g.kill().unwrap();
        eprintln!("UNREACHABLE: the process survived a panic in Drop during a kill-unwind");
    });
}

#[test]
fn a_drop_panicking_during_a_kill_aborts_with_its_message() {
    let out = run_child("child_drop_panic_during_kill", false);
    let stderr = stderr_of(&out);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "expected an abort, got {:?}:\n{stderr}",
        out.status
    );
    assert!(!stderr.contains("UNREACHABLE"), "{stderr}");
    assert!(
        stderr.contains(DROP_BOOM),
        "the Drop's panic message must reach stderr before the abort:\n{stderr}"
    );
    let at = format!("delivery_reports.rs:{DROP_BOOM_LINE}:");
    assert!(
        stderr.contains(&at),
        "the Drop's panic location ({at}) must reach stderr before the abort:\n{stderr}"
    );
}
