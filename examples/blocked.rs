//! The blocked-hub monitor: a greenlet that calls `std::thread::sleep`
//! stalls every other greenlet of its thread; the monitor says which one.
//!
//! Run with `cargo run --release --example blocked`. The example runs the
//! scenario in a child process (itself, with `BLOCKED_CHILD=1`) so that it
//! can check the report the child writes on stderr.

use greenlet::{Builder, hub, sleep, spawn};
use std::error::Error;
use std::process::Command;
use std::time::{Duration, Instant};

/// A 5 ms ticker and a greenlet that blocks the thread for 200 ms.
fn scenario() {
    // Off by default in release builds: turn it on (or set
    // GREENLET_MAX_BLOCKING_TIME=100ms in the environment).
    hub::set_max_blocking_time(Some(Duration::from_millis(100)));
    greenlet::run(|| {
        let ticker = spawn(|| {
            let mut worst = Duration::ZERO;
            for _ in 0..60 {
                let t = Instant::now();
                sleep(Duration::from_millis(5));
                worst = worst.max(t.elapsed());
            }
            worst
        });
        let offender = Builder::new()
            .name("thumbnailer")
            .spawn(|| std::thread::sleep(Duration::from_millis(200)))
            .expect("spawn");
        offender.join().expect("joined");
        let worst = ticker.get().expect("ticker ran");
        println!("the 5 ms ticker waited up to {worst:?} for its turn");
    });
}

fn main() -> Result<(), Box<dyn Error>> {
    if std::env::var_os("BLOCKED_CHILD").is_some() {
        scenario();
        return Ok(());
    }
    let out = Command::new(std::env::current_exe()?)
        .env("BLOCKED_CHILD", "1")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    println!("the monitor reported:\n{stderr}");
    assert!(out.status.success(), "the child failed: {}", out.status);
    let reports: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("was blocked for"))
        .collect();
    assert_eq!(reports.len(), 1, "one report per incident: {stderr}");
    assert!(
        reports[0].contains("<Greenlet \"thumbnailer\"") && reports[0].contains("blocked.rs:"),
        "the report names the greenlet and its spawn site: {}",
        reports[0]
    );
    println!("monitor named the blocking greenlet");
    Ok(())
}
