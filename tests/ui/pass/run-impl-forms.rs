//! The `#[greenlet] impl Run` forms, warning-free.
#![deny(warnings, unreachable_pub, missing_docs)]

use greenlet::{Greenlet, Run, greenlet};
use std::cell::Cell;
use std::time::Duration;

/// A public struct: its generated helpers are documented.
pub struct Job {
    /// Input.
    pub n: u32,
    done: Cell<bool>,
}

#[greenlet]
impl Run for Job {
    fn run(&self) -> u32 {
        self.done.set(true);
        self.n * 2
    }
}

struct Pair<A, B>(A, B);

#[greenlet(class = "PairJob", name = "pair", stack_size = 32 * 1024)]
impl<A: Clone + 'static, B: Clone + 'static> Run for Pair<A, B>
where
    A: PartialEq<B>,
{
    type Output = bool;

    fn run(&self) -> bool {
        self.0 == self.1
    }
}

struct Own;

impl Own {
    fn spawn(&self) -> u8 {
        1
    }
}

#[greenlet(helpers = false)]
impl greenlet::Run for Own {
    fn run(&self) {}
}

#[greenlet::main]
fn main() {
    let g: Greenlet<u32, Job> = Job {
        n: 2,
        done: Cell::new(false),
    }
    .spawn();
    assert_eq!(g.get().unwrap(), 4);
    assert!(g.done.get());
    let p = Pair(1u8, 1u8).spawn_later(Duration::from_millis(1));
    assert!(p.to_string().starts_with("<PairJob \"pair\" at "));
    assert!(p.get().unwrap());
    let u = Pair('a', 'b').into_greenlet();
    u.start();
    assert!(!u.get().unwrap());
    assert_eq!(Own.spawn(), 1);
    Greenlet::spawn_run(Own).join().unwrap();
}
