//! Spawn greenlets, sleep, join, print results: the first thing to copy.
//!
//! Run with `cargo run --release --example hello`.

use greenlet::{AnyGreenlet, Builder, GreenletError, WaitOptions, joinall_with, sleep, spawn};
use std::error::Error;
use std::time::{Duration, Instant};

#[greenlet::main] // the hub scope: greenlets live until main returns
fn main() -> Result<(), Box<dyn Error>> {
    let started = Instant::now();

    // Three greenlets sleep concurrently on this thread's hub: the whole
    // program takes ~30 ms, not 60.
    let workers: Vec<_> = (1..=3u64)
        .map(|i| {
            spawn(move || {
                sleep(Duration::from_millis(10 * i));
                format!("worker {i} slept {} ms", 10 * i)
            })
        })
        .collect();

    // `get()` blocks this (native) stack and runs the hub meanwhile. It
    // returns the value, or how the greenlet failed (`GreenletError`).
    for (i, w) in (1..=3u64).zip(&workers) {
        let line = w.get()?;
        assert_eq!(
            line,
            format!("worker {i} slept {} ms", 10 * i),
            "wrong worker result"
        );
        println!("{line}");
    }

    // Errors are typed: a panic ends only its own greenlet.
    greenlet::hub::set_error_handler(|report| println!("reported: {report}"));
    let bad = Builder::new()
        .name("bad")
        .spawn(|| -> u32 { panic!("division by zero") })?; // Err if no stack is left
    match bad.get() {
        Err(GreenletError::Panicked(p)) => println!("bad failed: {}", p.message()),
        other => panic!("`bad` should have failed with its panic, got {other:?}"),
    }

    // Killing runs destructors; joinall waits for many at once.
    let sleeper = spawn(|| sleep(Duration::from_secs(60)));
    let quick = spawn(|| 42);
    sleep(Duration::ZERO); // let them start
    sleeper.kill()?; // waits until it is dead
    // Greenlets of different result types mix as `&dyn AnyGreenlet`.
    // `joinall(both)` waits without a limit; gevent's keyword arguments
    // (`timeout=`, `count=`, `raise_error=`) are `WaitOptions`.
    let both: [&dyn AnyGreenlet; 2] = [&sleeper, &quick];
    let done = joinall_with(both, WaitOptions::new().timeout(Duration::from_secs(1)))?;
    let quick = quick.get()?;
    assert!(
        done.len() == 2 && sleeper.is_ready() && quick == 42,
        "wrong joinall result: {} finished, sleeper ready: {}, quick = {quick}",
        done.len(),
        sleeper.is_ready()
    );
    println!(
        "{} finished; sleeper killed: {}; quick = {quick}",
        done.len(),
        sleeper.is_ready()
    );
    println!("total {:?} (the sleeps overlapped)", started.elapsed());
    Ok(())
}
