//! Signal handlers that run in greenlets: a status report on SIGUSR1 and a
//! graceful shutdown on SIGTERM / SIGINT. A template for a long-running
//! service.
//!
//! Run with `cargo run --example signals`. It sends itself the signals after
//! a moment so it ends on its own; while it runs you can also try
//! `kill -USR1 <pid>` or Ctrl-C.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use greenlet::{KillOptions, hub, killall_with, send_signal, signal, sleep, spawn};

#[greenlet::main]
fn main() -> std::io::Result<()> {
    let pid = std::process::id();
    println!("pid {pid}: try `kill -USR1 {pid}` or Ctrl-C");

    // Some work: three workers counting jobs.
    let done = Rc::new(Cell::new(0u64));
    let workers: Vec<_> = (0..3)
        .map(|i| {
            let done = done.clone();
            spawn(move || {
                loop {
                    sleep(Duration::from_millis(10 + i * 5));
                    done.set(done.get() + 1);
                }
            })
        })
        .collect();

    // SIGUSR1: report. The handler runs in its own greenlet, so it may block
    // (here it sleeps, as if it wrote to a slow socket).
    let reports = Rc::new(Cell::new(0u32));
    let (d, r) = (done.clone(), reports.clone());
    let status = signal(libc::SIGUSR1, move || {
        sleep(Duration::from_millis(1));
        r.set(r.get() + 1);
        println!("status: {} jobs done, hub {:?}", d.get(), hub::stats());
    })?;

    // SIGTERM and SIGINT: stop the workers (their destructors run) and let
    // `main` return. One greenlet does the shutdown; a second signal while
    // it runs is ignored.
    let stopping = Rc::new(Cell::new(false));
    let workers = Rc::new(workers);
    let shutdown = {
        let stopping = stopping.clone();
        let workers = workers.clone();
        move || {
            if stopping.replace(true) {
                return;
            }
            println!("shutting down");
            killall_with(
                &workers[..],
                KillOptions::new().timeout(Duration::from_secs(1)),
            )
            .expect("workers stop when killed");
        }
    };
    let shutdown = Rc::new(shutdown);
    let term = signal(libc::SIGTERM, {
        let s = shutdown.clone();
        move || s()
    })?;
    let int = signal(libc::SIGINT, move || shutdown())?;

    // Demo driver: what an operator would do from a shell.
    spawn(move || {
        sleep(Duration::from_millis(100));
        send_signal(pid, libc::SIGUSR1).expect("send SIGUSR1");
        sleep(Duration::from_millis(100));
        send_signal(pid, libc::SIGTERM).expect("send SIGTERM");
    });

    // The watchers do not keep the hub alive (gevent's ref=False): `join`
    // returns once the workers and the driver are done.
    hub::join();
    for handle in [&status, &term, &int] {
        handle.cancel();
    }
    let clean = hub::stats().is_quiet();
    println!("stopped after {} jobs; clean: {clean}", done.get());
    // A wrong result is an error (non-zero exit status).
    if reports.get() != 1 || !stopping.get() || done.get() == 0 || !clean {
        return Err(std::io::Error::other(format!(
            "wrong result: {} status reports (want 1), shut down: {}, {} jobs, hub clean: {clean}",
            reports.get(),
            stopping.get(),
            done.get()
        )));
    }
    Ok(())
}
