//! Generated code does not depend on what the user's scope defines (names
//! starting with `__greenlet` are reserved for it).
#![deny(warnings)]
#![allow(dead_code, unused_macros)]

struct Builder;
struct Greenlet;
type Result<T> = std::result::Result<T, ()>;
mod std_shadow {}
macro_rules! panic {
    () => {};
}

#[greenlet::greenlet]
fn work(__greenlet_local0: u8, __greenlet_args: u8) -> u8 {
    __greenlet_local0 + __greenlet_args
}

struct Job;

#[greenlet::greenlet]
impl greenlet::Run for Job {
    fn run(&self) -> u8 {
        3
    }
}

#[greenlet::main]
fn main() {
    let __greenlet_result = 1u8;
    assert_eq!(work(1, 2).get().unwrap() + __greenlet_result, 4);
    assert_eq!(Job.spawn().get().unwrap(), 3);
}
