//! A struct that runs as a greenlet: gevent's `Greenlet` subclass with
//! `_run`, whose attributes stay readable from outside.
//!
//! gevent's docs subclass `Greenlet` like this:
//!
//! ```python
//! class MyNoopGreenlet(Greenlet):
//!     def __init__(self, seconds):
//!         Greenlet.__init__(self)
//!         self.seconds = seconds
//!     def _run(self):
//!         gevent.sleep(self.seconds)
//!     def __str__(self):
//!         return 'MyNoopGreenlet(%s)' % self.seconds
//! ```
//!
//! In Rust the attributes are the struct's fields, `_run` is `Run::run`, and
//! the handle dereferences to the struct. Run with
//! `cargo run --example subclass`.

use greenlet::{Run, greenlet, sleep, sleep_secs};
use std::cell::Cell;
use std::error::Error;
use std::time::Duration;

/// The attributes. Fields the body changes while it runs are `Cell`s (or
/// `RefCell`s, never borrowed across a switch): `run` takes `&self` because
/// the handle shares the struct with the running greenlet.
struct MyNoopGreenlet {
    seconds: f64,
    naps: Cell<u32>,
}

// `#[greenlet]` checks the impl, infers `type Output = u32` from `run`, and
// adds `MyNoopGreenlet::spawn`, `spawn_later` and `into_greenlet`.
#[greenlet]
impl Run for MyNoopGreenlet {
    fn run(&self) -> u32 {
        for _ in 0..3 {
            sleep_secs(self.seconds / 3.0).expect("a finite, positive duration");
            self.naps.set(self.naps.get() + 1);
        }
        self.naps.get()
    }
}

/// `class = "…"` overrides the name `Display` shows (gevent's `__str__`).
struct Ticker {
    every: Duration,
    ticks: Cell<u32>,
}

#[greenlet(class = "Metronome", name = "tick")]
impl Run for Ticker {
    fn run(&self) {
        loop {
            sleep(self.every);
            self.ticks.set(self.ticks.get() + 1);
        }
    }
}

#[greenlet::main]
fn main() -> Result<(), Box<dyn Error>> {
    let g = MyNoopGreenlet {
        seconds: 0.09,
        naps: Cell::new(0),
    }
    .spawn();
    println!("spawned:  {g}"); // <MyNoopGreenlet at 0x…: started>
    println!(
        "g.seconds = {} (an attribute, read through the handle)",
        g.seconds
    );

    // Watch a field change while the greenlet runs.
    while !g.is_ready() {
        sleep(Duration::from_millis(20));
        println!("  naps so far: {}", g.naps.get());
    }
    let naps = g.get()?; // the value, or how `run` failed
    assert_eq!(naps, 3, "run naps three times");
    println!("finished: {g}, value {naps}");

    // An unstarted one (gevent's `Ticker(...)` before `start()`).
    let ticker = Ticker {
        every: Duration::from_millis(10),
        ticks: Cell::new(0),
    }
    .into_greenlet();
    println!("created:  {ticker}");
    ticker.start_later(Duration::from_millis(5));
    sleep(Duration::from_millis(60));
    ticker.kill()?;
    let ticks = ticker.ticks.get();
    assert!(ticks >= 1, "the ticker never ticked in 55 ms");
    assert!(ticker.is_dead(), "kill() waits until the greenlet is dead");
    println!("killed:   {ticker} after {ticks} ticks");
    Ok(())
}
