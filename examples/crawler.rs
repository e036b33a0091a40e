//! A crawler on a `Pool` of 10: every fetch runs in the pool (at most ten
//! at once) under a per-job timeout; results and failures are collected in
//! input order with `imap`. The "network" is simulated with sleeps (no
//! sockets), so the example runs anywhere and its outcome is fixed.
//!
//! Run with `cargo run --example crawler`.

use greenlet::pool::Pool;
use greenlet::{GreenletError, sleep, with_timeout};
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

const JOB_TIMEOUT: Duration = Duration::from_millis(50);

#[derive(Debug)]
enum Fetch {
    Page { url: String, bytes: usize },
    NotFound(String),
    TimedOut(String),
}

/// A simulated fetch: every 7th URL is slow (beyond the timeout), every
/// 5th is missing.
fn fetch(i: u32) -> Fetch {
    let url = format!("https://example.test/page/{i}");
    let latency = if i % 7 == 6 {
        500
    } else {
        5 + u64::from(i % 4) * 3
    };
    match with_timeout(JOB_TIMEOUT, || sleep(Duration::from_millis(latency))) {
        Err(_) => Fetch::TimedOut(url),
        Ok(()) if i % 5 == 4 => Fetch::NotFound(url),
        Ok(()) => Fetch::Page {
            bytes: 1000 + i as usize,
            url,
        },
    }
}

fn main() -> Result<(), GreenletError> {
    greenlet::run(|| {
        let pool = Pool::new(10);
        let started = Instant::now();
        let running = Rc::new(Cell::new(0u32));
        let peak = Rc::new(Cell::new(0u32));
        let (r, p) = (running.clone(), peak.clone());
        let outcomes = pool.imap(
            move |i: u32| {
                r.set(r.get() + 1);
                p.set(p.get().max(r.get()));
                let out = fetch(i);
                r.set(r.get() - 1);
                out
            },
            0..40,
        );

        let (mut pages, mut missing, mut timed_out) = (Vec::new(), Vec::new(), Vec::new());
        for outcome in outcomes {
            match outcome? {
                Fetch::Page { url, bytes } => pages.push((url, bytes)),
                Fetch::NotFound(url) => missing.push(url),
                Fetch::TimedOut(url) => timed_out.push(url),
            }
        }
        let elapsed = started.elapsed();
        println!(
            "{} pages, {} not found, {} timed out in {elapsed:?} (peak {} concurrent)",
            pages.len(),
            missing.len(),
            timed_out.len(),
            peak.get()
        );
        println!("first page: {:?}", pages.first());
        println!("timed out: {timed_out:?}");
        // i % 7 == 6 → timeout (6, 13, 20, 27, 34); of the rest, i % 5 == 4
        // → not found (4, 9, 14, 19, 24, 29, 39; 34 timed out first).
        let ok = pages.len() == 28
            && missing.len() == 7
            && timed_out.len() == 5
            && peak.get() == 10
            && pool.is_empty()
            && elapsed < Duration::from_secs(2);
        if !ok {
            println!("unexpected crawl outcome");
            return Ok(());
        }
        println!("crawler: 40 jobs done, failures collected, pool bound held");
        Ok(())
    })
}
