//! The main greenlet (the native stack running the hub scope) can be
//! killed like gevent's `kill(main)`: `GreenletExit` is raised by
//! unwinding at its current blocking call, the scope still ends every
//! greenlet, and `run` then panics saying the main greenlet was killed.

mod common;

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::Instant;

use common::{LONG, PROMPT, panic_message};
use greenlet::{GreenletRef, getcurrent, hub, kill, sleep, spawn};

fn killed_main(kill_it: impl FnOnce(GreenletRef) + 'static) -> (String, bool, std::time::Duration) {
    let after = Rc::new(Cell::new(false));
    let leftover_dropped = Rc::new(Cell::new(false));
    struct SetOnDrop(Rc<Cell<bool>>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let started = Instant::now();
    let (a, d) = (after.clone(), leftover_dropped.clone());
    let r = catch_unwind(AssertUnwindSafe(move || {
        greenlet::run(move || {
            let main = hub::main_greenlet();
            assert_eq!(main, getcurrent());
            spawn(move || {
                let _guard = SetOnDrop(d);
                sleep(LONG);
            });
            spawn(move || kill_it(main));
            sleep(LONG); // interrupted by the kill
            a.set(true);
        })
    }));
    let took = started.elapsed();
    let message = panic_message(r.expect_err("run reports the kill").as_ref());
    assert!(!after.get(), "code after the killed sleep ran");
    (message, leftover_dropped.get(), took)
}

#[test]
fn greenlet_kill_of_main_interrupts_its_blocking_call() {
    let (message, leftover_dropped, took) = killed_main(|main| kill(&main));
    assert!(
        message.contains("the main greenlet was killed"),
        "{message}"
    );
    assert!(leftover_dropped, "the scope still ended its greenlets");
    assert!(took < PROMPT, "{took:?}");
}

#[test]
fn kill_nowait_on_the_main_ref_does_the_same() {
    let (message, leftover_dropped, took) = killed_main(|main| main.kill_nowait());
    assert!(message.contains("GreenletExit"), "{message}");
    assert!(leftover_dropped);
    assert!(took < PROMPT, "{took:?}");
}

#[test]
fn the_hub_cannot_be_killed() {
    greenlet::run(|| {
        let seen = Rc::new(Cell::new(None));
        let s = seen.clone();
        let g = spawn(|| ());
        g.link(move |_| {
            let hub_ref = getcurrent();
            s.set(Some(
                catch_unwind(AssertUnwindSafe(|| kill(&hub_ref))).is_err(),
            ));
        });
        g.join().unwrap();
        sleep(std::time::Duration::ZERO);
        assert_eq!(seen.get(), Some(true), "killing the hub panics");
    });
}
