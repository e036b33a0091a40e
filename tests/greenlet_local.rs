//! `greenlet_local!`: a value per greenlet, separate on the main greenlet,
//! dropped exactly once when the greenlet ends (returns, panics, is killed,
//! is killed before it starts), on its own stack, before its links fire;
//! usable in successive hub scopes.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use common::{LONG, quiet};
use greenlet::{getcurrent, greenlet_local, hub, sleep, spawn, spawn_raw};

/// Records its drop (and on which greenlet it ran) in a thread-local log.
struct Probe(&'static str);

thread_local! {
    static DROPS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

impl Drop for Probe {
    fn drop(&mut self) {
        let who = if getcurrent().is_main() {
            "main".to_string()
        } else if getcurrent().is_hub() {
            "hub".to_string()
        } else {
            "greenlet".to_string()
        };
        DROPS.with_borrow_mut(|d| d.push(format!("{} on {who}", self.0)));
    }
}

fn drops() -> Vec<String> {
    DROPS.with_borrow_mut(std::mem::take)
}

greenlet_local! {
    static COUNTER: Cell<u32> = Cell::new(0);
    static NAME: RefCell<String> = RefCell::new(String::from("unset"));
    static PROBE: RefCell<Option<Probe>> = const { RefCell::new(None) };
}

#[greenlet::test]
fn each_greenlet_and_main_see_their_own_values() {
    COUNTER.set(100);
    let gs: Vec<_> = (0..5)
        .map(|i| {
            spawn(move || {
                assert_eq!(COUNTER.get(), 0);
                COUNTER.set(i);
                sleep(Duration::from_millis(u64::from(5 - i)));
                NAME.set(format!("g{i}"));
                sleep(Duration::ZERO);
                (COUNTER.get(), NAME.take())
            })
        })
        .collect();
    for (i, g) in gs.iter().enumerate() {
        assert_eq!(g.get().unwrap(), (i as u32, format!("g{i}")));
    }
    assert_eq!(COUNTER.get(), 100);
    assert_eq!(NAME.with_borrow(|n| n.clone()), "unset");
    assert_eq!(COUNTER.replace(1), 100);
    NAME.with_borrow_mut(|n| n.push('!'));
    assert_eq!(NAME.replace(String::new()), "unset!");
    quiet();
}

#[greenlet::test]
fn values_drop_exactly_once_on_their_own_greenlet_before_links_fire() {
    drops();
    let g = spawn(|| PROBE.set(Some(Probe("returned"))));
    let dropped_at_link = Rc::new(RefCell::new(Vec::new()));
    let d = dropped_at_link.clone();
    g.link(move |_| *d.borrow_mut() = DROPS.with_borrow(|v| v.clone()));
    g.join().unwrap();
    sleep(Duration::ZERO);
    assert_eq!(*dropped_at_link.borrow(), ["returned on greenlet"]);

    hub::set_error_handler(|_| ());
    let p = spawn(|| {
        PROBE.set(Some(Probe("panicked")));
        panic!("boom");
    });
    p.join().unwrap();
    let k = spawn(|| {
        PROBE.set(Some(Probe("killed")));
        sleep(LONG);
    });
    sleep(Duration::ZERO);
    k.kill().unwrap();
    let raw_done = Rc::new(Cell::new(false));
    let r = raw_done.clone();
    spawn_raw(move || {
        PROBE.set(Some(Probe("raw")));
        r.set(true);
    });
    sleep(Duration::ZERO);
    sleep(Duration::ZERO);
    assert!(raw_done.get());
    assert_eq!(
        drops(),
        [
            "returned on greenlet",
            "panicked on greenlet",
            "killed on greenlet",
            "raw on greenlet"
        ]
    );
    // Killed before it started: never touched a local, nothing to drop.
    let never = spawn(|| PROBE.set(Some(Probe("never"))));
    never.kill().unwrap();
    assert!(drops().is_empty());
    hub::reset_error_handler();
    quiet();
}

#[test]
fn main_values_drop_when_the_scope_ends_and_a_second_scope_starts_fresh() {
    drops();
    greenlet::run(|| {
        PROBE.set(Some(Probe("main 1")));
        COUNTER.set(7);
        let g = spawn(|| {
            PROBE.set(Some(Probe("left running")));
            sleep(LONG);
        });
        sleep(Duration::ZERO);
        let _ = g;
    });
    assert_eq!(drops(), ["main 1 on main", "left running on greenlet"]);
    greenlet::run(|| {
        assert_eq!(COUNTER.get(), 0, "a new scope starts fresh");
        PROBE.set(Some(Probe("main 2")));
        let g = spawn(|| COUNTER.get());
        assert_eq!(g.get().unwrap(), 0);
    });
    assert_eq!(drops(), ["main 2 on main"]);
}

#[test]
fn access_outside_a_scope_or_in_a_hub_callback_is_an_error() {
    assert!(COUNTER.try_with(|c| c.get()).is_err());
    let r = std::panic::catch_unwind(|| COUNTER.get());
    assert!(r.is_err());
    greenlet::run(|| {
        let seen = Rc::new(RefCell::new(None));
        let s = seen.clone();
        hub::run_callback(move || {
            *s.borrow_mut() = Some(COUNTER.try_with(|c| c.get()).map_err(|e| e.to_string()));
        });
        sleep(Duration::ZERO);
        let got = seen.borrow_mut().take().unwrap();
        assert!(got.unwrap_err().contains("hub callback"));
    });
}

#[greenlet::test]
fn a_value_set_while_locals_drop_is_dropped_too() {
    struct Resets;
    impl Drop for Resets {
        fn drop(&mut self) {
            // Touches another local while the greenlet's locals drop.
            PROBE.set(Some(Probe("set during drop")));
        }
    }
    greenlet_local!(static RESETS: RefCell<Option<Resets>> = const { RefCell::new(None) });
    drops();
    let g = spawn(|| RESETS.set(Some(Resets)));
    g.join().unwrap();
    assert_eq!(drops(), ["set during drop on greenlet"]);
    quiet();
}
