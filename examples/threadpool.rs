//! Blocking work off the hub: a thread pool for CPU or blocking calls, DNS
//! on the hub's pool, and a subprocess, while a greenlet keeps ticking.
//!
//! Run with `cargo run --release --example threadpool`.

use std::cell::Cell;
use std::error::Error;
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenlet::process::Command;
use greenlet::threadpool::{ThreadError, ThreadPool};
use greenlet::{net, sleep, spawn, spawn_blocking};

#[greenlet::main]
fn main() -> Result<(), Box<dyn Error>> {
    // A greenlet that ticks every 5 ms: it keeps going while the others
    // wait on threads and processes, because only the waiter blocks.
    let ticks = Rc::new(Cell::new(0u32));
    let t = Rc::clone(&ticks);
    let ticker = spawn(move || {
        loop {
            sleep(Duration::from_millis(5));
            t.set(t.get() + 1);
        }
    });

    // A blocking call (here a plain thread sleep) on the hub's default pool.
    let started = Instant::now();
    let slow = spawn_blocking(|| {
        std::thread::sleep(Duration::from_millis(100));
        "slept on a worker thread"
    });
    println!("{}", slow.take()?);
    println!(
        "meanwhile the ticker ticked {} times in {:?}",
        ticks.get(),
        started.elapsed()
    );
    if ticks.get() < 10 {
        println!("unexpected: the hub was blocked");
    }

    // CPU-bound work on a pool of 4, results in order.
    let pool = ThreadPool::new(4);
    let sums = pool.map(1..=8u64, |n| (1..=n * 1_000_000).sum::<u64>())?;
    println!("sums: {:?}", &sums[..3]);

    // A panic in a job comes back as an error.
    match pool.apply(|| -> u32 { panic!("bad input") }) {
        Err(ThreadError::Panicked(p)) => println!("job panicked: {}", p.message()),
        other => println!("unexpected: {other:?}"),
    }

    // DNS on the pool: the hub never blocks in getaddrinfo.
    let addrs: Vec<_> = net::lookup_host("localhost:80")?.collect();
    println!("localhost resolves to {addrs:?}");

    // A subprocess with cooperative pipes.
    let out = Command::new("sh")
        .args(["-c", "sleep 0.05; echo from a child"])
        .output()?;
    print!("child said: {}", String::from_utf8_lossy(&out.stdout));

    ticker.kill()?;
    println!("threadpool example done: {} ticks", ticks.get());
    Ok(())
}
