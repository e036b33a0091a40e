//! `#[greenlet::main]` with options on the real `main`.
#![deny(warnings)]

use greenlet::{hub, sleep, spawn};
use std::time::Duration;

#[greenlet::main(stack_size = 128 * 1024, stack_cache_limit = 16)]
fn main() {
    assert_eq!(hub::default_stack_size(), 128 * 1024);
    let g = spawn(|| {
        sleep(Duration::from_millis(1));
        "done"
    });
    assert_eq!(g.get().unwrap(), "done");
    // Not waited for: killed when main returns.
    spawn(|| sleep(Duration::from_secs(60)));
}
