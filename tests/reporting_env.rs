//! Claims about reporting that had no test (issue 18): `GREENLET_PANIC_HOOK`
//! also runs the process's panic hook for greenlet panics (by default only
//! the error handler reports them, once), and a hub scope that waits for a
//! slow destructor says so after a second instead of giving up.
//!
//! Each scenario runs in a child process (this binary re-run with one
//! `#[ignore]`d test selected and [`CHILD_ENV`] set) whose stderr the parent
//! reads.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use greenlet::{sleep, spawn};

/// Set in the child process; names the scenario.
const CHILD_ENV: &str = "GREENLET_REPORTING_ENV_CHILD";

fn run_child(name: &str, panic_hook: bool) -> Output {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let mut cmd = Command::new(exe);
    cmd.args([
        name,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, name)
    .env("RUST_BACKTRACE", "0")
    .env_remove("RUST_LOG");
    if panic_hook {
        cmd.env("GREENLET_PANIC_HOOK", "1");
    } else {
        cmd.env_remove("GREENLET_PANIC_HOOK");
    }
    cmd.output().expect("the test binary can be re-run")
}

#[track_caller]
fn stderr_of_passing(name: &str, panic_hook: bool) -> String {
    let out = run_child(name, panic_hook);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child {name} failed ({:?}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    stderr
}

const BOOM: &str = "reporting-env-boom-41c7";

#[test]
#[ignore = "child process of the GREENLET_PANIC_HOOK tests"]
fn child_greenlet_panic() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("child_greenlet_panic") {
        return;
    }
    greenlet::run(|| {
        let g = spawn(|| -> u8 { panic!("{BOOM}") });
        assert!(g.get().is_err());
    });
}

#[test]
fn without_the_env_a_greenlet_panic_is_reported_once_by_the_error_handler() {
    let stderr = stderr_of_passing("child_greenlet_panic", false);
    assert_eq!(stderr.matches(BOOM).count(), 1, "{stderr}");
    // The error handler's line, not std's "thread '…' panicked at".
    assert!(stderr.contains("failed: panicked at"), "{stderr}");
    assert!(
        !stderr.contains("thread '"),
        "std's hook stayed quiet: {stderr}"
    );
}

#[test]
fn with_greenlet_panic_hook_the_process_hook_runs_too() {
    let stderr = stderr_of_passing("child_greenlet_panic", true);
    assert_eq!(stderr.matches(BOOM).count(), 2, "{stderr}");
    assert!(
        stderr.contains("thread '") && stderr.contains(" panicked at tests/reporting_env.rs:"),
        "std's hook ran: {stderr}"
    );
    assert!(stderr.contains("failed: panicked at"), "{stderr}");
}

#[test]
#[ignore = "child process of scope_end_reports_a_destructor_slower_than_a_second"]
fn child_slow_destructor() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("child_slow_destructor") {
        return;
    }
    struct Slow;
    impl Drop for Slow {
        fn drop(&mut self) {
            sleep(Duration::from_millis(1300));
            eprintln!("slow destructor done");
        }
    }
    let started = Instant::now();
    greenlet::run(|| {
        greenlet::Builder::new()
            .name("slowpoke")
            .spawn(|| {
                let _slow = Slow;
                sleep(Duration::from_secs(3600));
            })
            .unwrap();
        sleep(Duration::ZERO);
    });
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1300), "{took:?}");
    eprintln!("scope over after {took:?}");
}

#[test]
fn scope_end_reports_a_destructor_slower_than_a_second_and_waits_for_it() {
    let stderr = stderr_of_passing("child_slow_destructor", false);
    let report = stderr
        .lines()
        .find(|l| l.contains("destructor still running after 1 s"))
        .unwrap_or_else(|| panic!("no slow-destructor report:\n{stderr}"));
    assert!(report.contains("slowpoke"), "{report}");
    assert!(report.contains("tests/reporting_env.rs:"), "{report}");
    assert!(report.contains("waiting in sleep"), "{report}");
    // Reported, then waited for: the destructor finished before the scope.
    let done = stderr
        .find("slow destructor done")
        .expect("destructor finished");
    let over = stderr.find("scope over").expect("scope ended");
    assert!(done < over, "{stderr}");
    assert!(!stderr.contains("refuses to die"), "{stderr}");
}
