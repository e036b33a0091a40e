//! A countdown latch written outside the crate, on the public waiter
//! protocol only (`greenlet::waiter::{WaitQueue, Links}` and the `Waitable`
//! trait), and checked under kill and timeout.
//!
//! `CountDownLatch::new(n)`: `count_down()` n times opens it; `wait()`
//! blocks until it is open. Because waiters block in a `WaitQueue`, a
//! waiter killed or timed out while queued simply leaves; the wake-ups of
//! the others are untouched. Because it implements `Waitable` with
//! `Links`, it mixes with greenlets in `greenlet::iwait`.
//!
//!     cargo run --release --example latch

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenlet::waiter::{LinkId, Links, WaitQueue};
use greenlet::{KillOptions, WaitError, Waitable, sleep, spawn};

/// Opens after `n` calls to `count_down`; stays open.
struct CountDownLatch {
    count: Cell<usize>,
    waiters: WaitQueue<()>,
    links: Links,
}

impl CountDownLatch {
    fn new(n: usize) -> CountDownLatch {
        CountDownLatch {
            count: Cell::new(n),
            waiters: WaitQueue::new(),
            links: Links::new(),
        }
    }

    fn count_down(&self) {
        let n = self.count.get();
        if n == 0 {
            return;
        }
        self.count.set(n - 1);
        if n == 1 {
            // Every waiter gets its own wake-up; none can take another's.
            self.waiters.notify_all(|| ());
            self.links.fire();
        }
    }

    fn wait(&self, timeout: Option<Duration>) -> Result<(), WaitError> {
        if self.count.get() == 0 {
            return Ok(());
        }
        // A wake-up handed to a waiter that was killed before it ran is
        // nobody else's: nothing to give back.
        self.waiters.wait(timeout, "CountDownLatch::wait", |()| ())
    }
}

impl Waitable for CountDownLatch {
    fn is_ready(&self) -> bool {
        self.count.get() == 0
    }

    fn rawlink(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        let id = self.links.add(callback);
        if self.is_ready() {
            self.links.fire();
        }
        id
    }

    fn unlink(&self, id: LinkId) -> bool {
        self.links.remove(id)
    }
}

fn check(ok: bool, what: &str) {
    if !ok {
        println!("unexpected: {what}");
        std::process::exit(1);
    }
}

#[greenlet::main]
fn main() {
    let latch = Rc::new(CountDownLatch::new(3));
    let woke = Rc::new(Cell::new(0));

    let waiter = |timeout: Option<Duration>| {
        let (latch, woke) = (latch.clone(), woke.clone());
        spawn(move || {
            let r = latch.wait(timeout);
            if r.is_ok() {
                woke.set(woke.get() + 1);
            }
            r
        })
    };
    let a = waiter(None);
    let killed = waiter(None);
    let timed_out = waiter(Some(Duration::from_millis(20)));
    let b = waiter(None);
    // Killed after its wake-up was handed to it, before it ran.
    let killed_late = waiter(None);
    sleep(Duration::ZERO);
    check(latch.waiters.len() == 5, "five waiters queued");

    // Killed while queued: it leaves the queue.
    killed.kill().expect("kill");
    check(latch.waiters.len() == 4, "the killed waiter left the queue");

    // Timed out while queued, in its time band.
    let t0 = Instant::now();
    let r = timed_out.get().expect("timed_out ran");
    let took = t0.elapsed();
    check(
        matches!(r, Err(WaitError::Elapsed(_))),
        "the timed-out waiter got Elapsed",
    );
    check(
        took >= Duration::from_millis(15) && took < Duration::from_millis(200),
        "the timeout lasted about 20 ms",
    );
    check(
        latch.waiters.len() == 3,
        "the timed-out waiter left the queue",
    );

    // Two workers count down; the last count-down and a kill of a queued
    // waiter happen in the same turn: the victim dies, the others wake,
    // exactly once each.
    let workers: Vec<_> = (1..=2u64)
        .map(|i| {
            let latch = latch.clone();
            spawn(move || {
                sleep(Duration::from_millis(5 * i));
                latch.count_down();
            })
        })
        .collect();
    greenlet::joinall(&workers).expect("workers");
    check(!latch.is_ready(), "two of three count-downs keep it closed");
    latch.count_down();
    killed_late
        .kill_with_options(KillOptions::new().nowait())
        .expect("kill");
    check(a.get().expect("a").is_ok(), "a woke");
    check(b.get().expect("b").is_ok(), "b woke");
    killed_late.join().expect("join");
    check(killed.value().is_none(), "the killed waiter never returned");
    check(woke.get() == 2, "exactly two wake-ups");
    check(latch.waiters.is_empty(), "nobody left in the queue");
    check(latch.wait(None).is_ok(), "an open latch does not block");
    // A latch and a greenlet come out of iwait in readiness order.
    let latch2 = Rc::new(CountDownLatch::new(1));
    let l2 = latch2.clone();
    spawn(move || {
        sleep(Duration::from_millis(15));
        l2.count_down();
    });
    let early = spawn(|| sleep(Duration::from_millis(5)));
    let objects: [&dyn Waitable; 2] = [&*latch2, &early];
    let order: Vec<bool> = greenlet::iwait(objects)
        .map(|o| std::ptr::addr_eq(o.expect("iwait"), &*latch2 as &dyn Waitable))
        .collect();
    check(
        order == [false, true],
        "iwait: the early greenlet, then the latch",
    );

    println!("latch: waiters woke 2, killed 2, timed out 1; all checks passed");
}
