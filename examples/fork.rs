//! Pre-forked workers: the parent forks children that run greenlets of
//! their own, then waits for them cooperatively while its own greenlets keep
//! running. A template for a pre-fork server.
//!
//! Run with `cargo run --example fork`.
//!
//! `fork` is safe while other threads run (see its docs), but only the
//! forking thread exists in the child. End a child with `std::process::exit`, never by returning into the
//! parent's code path.

use std::error::Error;
use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use greenlet::{Fork, fork, hub, send_signal, sleep, spawn, waitpid, waitpid_timeout};

/// A child's work: a few greenlets; the exit code is how many finished.
fn worker(id: u32) -> i32 {
    let jobs: Vec<_> = (0..4)
        .map(|j| {
            spawn(move || {
                sleep(Duration::from_millis(10 * u64::from(id + j)));
                j
            })
        })
        .collect();
    let finished = jobs.iter().filter(|g| g.get().is_ok()).count();
    println!(
        "  child {} (worker {id}): {finished} jobs done",
        std::process::id()
    );
    i32::try_from(finished).expect("four jobs")
}

#[greenlet::main]
fn main() -> Result<(), Box<dyn Error>> {
    let started = Instant::now();

    // The parent's own greenlet: keeps ticking while children run, and
    // after the forks (its timer is unaffected by them).
    let ticker = spawn(|| {
        let mut ticks = 0;
        loop {
            sleep(Duration::from_millis(20));
            ticks += 1;
            if ticks % 5 == 0 {
                println!("parent tick {ticks}");
            }
        }
    });

    let mut children = Vec::new();
    for id in 0..3 {
        match fork()? {
            Fork::Child => {
                // The child inherited the ticker greenlet; it does not want it.
                // (No `?` in a child: it must not return into the parent's code.)
                ticker.kill().expect("the ticker dies when killed");
                std::process::exit(worker(id));
            }
            Fork::Parent(pid) => children.push((id, pid)),
        }
    }

    // One more child that hangs: give it a deadline, then kill it.
    let stuck = match fork()? {
        Fork::Child => {
            std::thread::sleep(Duration::from_secs(60));
            std::process::exit(0);
        }
        Fork::Parent(pid) => pid,
    };

    // Wait for each worker in its own greenlet: `waitpid` blocks only the
    // greenlet that calls it.
    let waiters: Vec<_> = children
        .into_iter()
        .map(|(id, pid)| spawn(move || (id, pid, waitpid(pid))))
        .collect();
    let mut problems = Vec::new();
    for w in waiters {
        let (id, pid, status) = w.into_result()?; // the waiter greenlet's result
        let status = status?;
        println!("worker {id} (pid {pid}) exited with {:?}", status.code());
        if status.code() != Some(4) {
            problems.push(format!("worker {id} exited with {status:?}, want code 4"));
        }
    }

    match waitpid_timeout(stuck, Duration::from_millis(100)) {
        Err(e) if e.kind() == ErrorKind::TimedOut => {
            println!("pid {stuck} is stuck: SIGTERM");
            send_signal(stuck, libc::SIGTERM)?;
            let status = waitpid(stuck)?;
            println!("pid {stuck} ended by signal {:?}", status.signal());
            if status.signal() != Some(libc::SIGTERM) {
                problems.push(format!("pid {stuck} ended with {status:?}, want SIGTERM"));
            }
        }
        other => problems.push(format!("pid {stuck} did not time out: {other:?}")),
    }

    ticker.kill()?;
    hub::join();
    let clean = hub::stats().is_quiet();
    println!("done in {:?}; hub clean: {clean}", started.elapsed());
    if !clean {
        problems.push("the hub is not clean".to_owned());
    }
    // A wrong result is an error (non-zero exit status).
    if !problems.is_empty() {
        return Err(problems.join("; ").into());
    }
    Ok(())
}
