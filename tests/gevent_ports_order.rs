//! Ports of gevent's `src/gevent/tests/test__order.py` and
//! `test__sleep0.py`: links run in the order added, `sleep(0)` is fair, and
//! a `Timeout` interrupts a `sleep(0)` loop.

mod common;

use std::time::Duration;

use common::{Log, quiet};
use greenlet::{Timeout, hub, sleep, spawn};

/// `test__order.py::Test::test_greenlet_link` (counts 2, 3, 4, 1000): links
/// run in the order they were added, after the body.
#[greenlet::test]
fn test_greenlet_link() {
    for count in [2, 3, 4, 1000] {
        let lst = Log::new();
        let l = lst.clone();
        let g = spawn(move || l.push("0"));
        for i in 1..count {
            let l = lst.clone();
            g.link(move |_| l.push(i.to_string()));
        }
        // join returns after the links added before it ran (gevent's join
        // is itself a link, the last one).
        g.join().unwrap();
        let expected: Vec<String> = (0..count).map(|i| i.to_string()).collect();
        assert_eq!(lst.entries(), expected);
    }
    quiet();
}

/// `test__order.py::TestSleep0::test`: `sleep(0)` lets every other ready
/// greenlet run first.
#[greenlet::test]
fn test_sleep0() {
    let lst = Log::new();
    for param in ["1", "2"] {
        let l = lst.clone();
        spawn(move || {
            l.push(format!("{param}A"));
            sleep(Duration::ZERO);
            l.push(format!("{param}B"));
        });
    }
    hub::join(); // gevent.wait()
    assert_eq!(lst.entries().join(" "), "1A 2A 1B 2B");
    quiet();
}

/// `test__sleep0.py`: a silent `Timeout` ends a `sleep(0)` loop.
#[greenlet::test]
fn test_sleep0_loop_is_interrupted() {
    let turns = std::cell::Cell::new(0u64);
    let r = Timeout::run(Duration::from_millis(10), || {
        loop {
            sleep(Duration::ZERO);
            turns.set(turns.get() + 1);
        }
    });
    assert!(r.is_err());
    assert!(turns.get() > 0);
    quiet();
}
