//! The `#[greenlet] fn` forms users write, warning-free.
#![deny(warnings, unreachable_pub, unused_qualifications)]

use greenlet::{Greenlet, greenlet};

#[greenlet]
fn unit() {}

#[greenlet]
fn fallible(text: String) -> Result<u32, std::num::ParseIntError> {
    Ok(text.parse::<u32>()? + 1)
}

#[greenlet]
fn generic<T: Clone, U: From<T>>(value: T) -> (T, U) {
    (value.clone(), U::from(value))
}

#[greenlet]
fn static_refs(text: &'static str, items: &'static [u8]) -> usize {
    text.len() + items.len()
}

/// Higher-ranked borrows in closures and fn pointers are not borrows from the caller.
#[greenlet]
fn callbacks(f: Box<dyn Fn(&str) -> usize>, g: fn(&[u8]) -> usize) -> usize {
    f("abc") + g(b"de")
}

#[greenlet]
fn patterns((a, b): (u8, u8), mut n: u8, _: String) -> u8 {
    n += a;
    n + b
}

#[greenlet(name = "named", stack_size = 32 * 1024, start = "later")]
fn later(x: u8) -> u8 {
    x
}

#[greenlet(stack_size = STACK)]
fn const_stack() {}

const STACK: usize = 128 * 1024;

mod nested {
    #[greenlet::greenlet]
    pub(crate) fn in_module(x: u64) -> u64 {
        x
    }
}

mod runtime {
    pub(crate) use ::greenlet;
}

#[greenlet(crate = "runtime::greenlet")]
fn through_a_reexport() -> u8 {
    2
}

struct Server {
    port: u16,
}

impl Server {
    #[greenlet]
    fn serve(self, requests: u32) -> u32 {
        u32::from(self.port) + requests
    }

    #[greenlet]
    fn boxed(self: Box<Self>) -> u16 {
        self.port
    }
}

#[greenlet::main]
fn main() {
    unit().join().unwrap();
    assert_eq!(fallible("41".into()).get().unwrap(), Ok(42));
    let (a, b): (u8, u32) = generic(3u8).get().unwrap();
    assert_eq!((a, b), (3, 3));
    assert_eq!(static_refs("ab", b"c").get().unwrap(), 3);
    assert_eq!(
        callbacks(Box::new(|s| s.len()), |b| b.len()).get().unwrap(),
        5
    );
    assert_eq!(patterns((1, 2), 3, String::new()).get().unwrap(), 6);
    let g: Greenlet<u8> = later(9);
    assert!(!g.is_started());
    g.start();
    assert_eq!(g.get().unwrap(), 9);
    const_stack().join().unwrap();
    assert_eq!(nested::in_module(4).get().unwrap(), 4);
    assert_eq!(through_a_reexport().get().unwrap(), 2);
    assert_eq!(Server { port: 80 }.serve(1).get().unwrap(), 81);
    assert_eq!(Box::new(Server { port: 8 }).boxed().get().unwrap(), 8);
    greenlet::hub::join();
    assert!(greenlet::hub::stats().is_quiet());
}
