//! Child-process helper for the break_* repros (works for `#[ignore]`d
//! tests too: the child is run with `--include-ignored`).
#![allow(dead_code)]

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub(crate) const CHILD_ENV: &str = "BREAK_CHILD";
pub(crate) const SCENARIO_OK: &str = "BREAK SCENARIO OK";

pub(crate) fn in_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Re-runs test `test` in a child; kills it after `limit` (returns `None`
/// then: a hang).
pub(crate) fn run_child(test: &str, limit: Duration) -> Option<Output> {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            test,
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "--include-ignored",
        ])
        .env(CHILD_ENV, "1")
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain both pipes while the child runs: a chatty child (dumps,
    // reports) must not block on a full pipe and pass for a hang.
    fn drain(mut r: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    }
    let out_reader = drain(child.stdout.take().unwrap());
    let err_reader = drain(child.stderr.take().unwrap());
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(Output {
                status,
                stdout: out_reader.join().unwrap(),
                stderr: err_reader.join().unwrap(),
            });
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err_reader.join().unwrap();
            eprintln!(
                "child hung; stderr so far:\n{}",
                String::from_utf8_lossy(&stderr)
            );
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `scenario` in a child; the child must finish the scenario and exit
/// 0 within `limit`.
#[track_caller]
pub(crate) fn child_must_succeed(test: &str, limit: Duration, scenario: impl FnOnce()) {
    if in_child() {
        scenario();
        eprintln!("{SCENARIO_OK}");
        return;
    }
    let out = run_child(test, limit).unwrap_or_else(|| panic!("child hung for {limit:?}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.contains(SCENARIO_OK),
        "child failed: {}\n{stderr}",
        out.status
    );
}

/// The `warn!`/`error!` lines logged in this process (the monitor's stall
/// reports), captured by [`MonitorCapture`] once a test installs it with
/// `log::set_logger` (in a child process: the logger is process-wide).
pub(crate) static MONITOR_LINES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// A `log` logger that keeps warnings and errors in [`MONITOR_LINES`].
pub(crate) struct MonitorCapture;

impl log::Log for MonitorCapture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record<'_>) {
        if record.level() <= log::Level::Warn {
            MONITOR_LINES
                .lock()
                .unwrap()
                .push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}
