//! Helpers shared by the soundness suite (`tests/soundness_*.rs`, issue 11):
//! re-running one test in a child process for the crash-type repros, and
//! reading what the child wrote before it died.
#![allow(dead_code)]

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

/// Env var set in the child process of [`run_child`].
pub(crate) const CHILD_ENV: &str = "SOUNDNESS_CHILD";

/// `true` inside a child started by [`run_child`].
pub(crate) fn in_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Re-runs exactly one test of the current test binary in a child process,
/// uncaptured, and returns its output.
pub(crate) fn run_child(test: &str) -> Output {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the test binary can be re-run")
}

/// Asserts the child died of SIGABRT; returns its stderr.
#[track_caller]
pub(crate) fn assert_aborted(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "expected SIGABRT, got {}\n{stderr}",
        out.status
    );
    stderr
}

/// Asserts the child exited successfully; returns its stderr.
#[track_caller]
pub(crate) fn assert_succeeded(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "child failed: {}\n{stderr}",
        out.status
    );
    stderr
}

/// Prints the spawn line for the parent to read back ([`spawn_line`]).
pub(crate) fn print_spawn_line(line: u32) {
    eprintln!("SPAWN_LINE={line}");
}

/// The `SPAWN_LINE=<n>` a child printed before it died.
#[track_caller]
pub(crate) fn spawn_line(stderr: &str) -> u32 {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("SPAWN_LINE="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("the child printed no SPAWN_LINE:\n{stderr}"))
}

/// Printed by a child when code after the crash point ran: must never
/// appear.
pub(crate) const CONTINUED: &str = "CHILD CONTINUED PAST THE CRASH POINT";

/// Printed by a child whose scenario ran to the end.
pub(crate) const SCENARIO_OK: &str = "SOUNDNESS SCENARIO OK";

/// Runs `scenario` in a child process (the test `test` of this binary, re-run
/// with [`CHILD_ENV`] set): for repros whose failure mode is a crash. The
/// scenario asserts on the child's native stack; the parent asserts that the
/// child exited normally after the whole scenario ran.
#[track_caller]
pub(crate) fn in_child_process(test: &str, scenario: impl FnOnce()) {
    if in_child() {
        scenario();
        eprintln!("{SCENARIO_OK}");
        return;
    }
    let out = run_child(test);
    let stderr = assert_succeeded(&out);
    assert!(
        stderr.contains(SCENARIO_OK),
        "the child did not run the scenario to the end:\n{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 passed"),
        "the child did not run exactly this test:\n{stdout}"
    );
}
