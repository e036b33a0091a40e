//! `#[greenlet::main]` with options on the real `main`.
#![deny(warnings)]

use greenlet::{hub, sleep, spawn};
use std::time::Duration;

#[greenlet::main(stack_size = 128 * 1024, stack_cache_limit = 2)]
fn main() {
    assert_eq!(hub::default_stack_size(), 128 * 1024);
    let g = spawn(|| {
        sleep(Duration::from_millis(1));
        "done"
    });
    assert_eq!(g.get().unwrap(), "done");
    // stack_cache_limit = 2: eight stacks in use at once, then finished;
    // once the loop has waited (it trims then), at most 2 stay cached.
    let eight: Vec<_> = (0..8)
        .map(|_| spawn(|| sleep(Duration::from_millis(1))))
        .collect();
    for g in &eight {
        g.join().unwrap();
    }
    sleep(Duration::from_millis(1));
    let cached = hub::stats().stacks_pooled;
    assert!(cached <= 2, "stack_cache_limit = 2, yet {cached} stacks cached");
    // Not waited for: killed when main returns.
    spawn(|| sleep(Duration::from_secs(60)));
}
