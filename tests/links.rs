//! Links: `link`, `link_value`, `link_exception`, `rawlink`, `unlink`.
//! Exactly once, in the order added, on the loop turn after death, also
//! when added after death; panicking and blocking links are reported.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use common::{DropLog, LONG, Log, Reports, Shutdown, assert_contains, quiet};
use greenlet::{Greenlet, GreenletError, LinkId, Waitable, getcurrent, hub, sleep, spawn};

/// Adds one link of each kind, logging `<tag>:<kind>`.
/// `link_value` gets the greenlet: `<tag>:value <v>` when it returned a
/// value, `<tag>:value none` when it was killed with plain `GreenletExit`
/// (a success without a value, as in gevent).
fn link_all<T: std::fmt::Debug + Clone + 'static>(g: &Greenlet<T>, log: &Log, tag: &'static str) {
    let l = log.clone();
    g.link(move |g| l.push(format!("{tag}:link ready={}", g.is_ready())));
    let l = log.clone();
    g.link_value(move |g| {
        assert!(g.is_ready() && g.is_successful());
        assert!(g.exception().is_none());
        l.push(match g.value() {
            Some(v) => format!("{tag}:value {v:?}"),
            None => format!("{tag}:value none"),
        })
    });
    let l = log.clone();
    g.link_exception(move |g| {
        assert!(g.is_ready() && !g.is_successful());
        assert!(g.value().is_none());
        let e = g.exception().expect("a failed greenlet has an exception");
        l.push(format!(
            "{tag}:exception {}",
            e.as_panic()
                .map_or_else(|| e.to_string(), |p| p.message().to_owned())
        ))
    });
    let l = log.clone();
    g.rawlink(move || l.push(format!("{tag}:raw")));
}

#[greenlet::test]
fn links_fire_once_in_the_order_added_on_the_turn_after_death() {
    for _round in 0..2 {
        let log = Log::new();
        let g = spawn(|| 25);
        link_all(&g, &log, "a");
        sleep(Duration::ZERO); // g runs and dies during this iteration
        assert!(g.is_ready());
        assert!(
            log.is_empty(),
            "links must not run in the iteration of death: {log:?}"
        );
        sleep(Duration::ZERO);
        assert_eq!(log.entries(), ["a:link ready=true", "a:value 25", "a:raw"]);
        sleep(Duration::from_millis(5));
        quiet();
        assert_eq!(log.len(), 3, "exactly once: {log:?}");
    }
}

#[greenlet::test]
fn link_exception_fires_for_failures_only() {
    let reports = Reports::install();
    let log = Log::new();
    let g = spawn(|| -> u8 { panic!("bad") });
    link_all(&g, &log, "p");
    quiet();
    assert_eq!(
        log.entries(),
        ["p:link ready=true", "p:exception bad", "p:raw"]
    );
    assert_eq!(reports.take_one().context, "greenlet");

    // Killed with an error: a failure.
    let log = Log::new();
    let k = spawn(|| -> u8 {
        sleep(LONG);
        1
    });
    link_all(&k, &log, "k");
    sleep(Duration::ZERO);
    k.kill_with(Shutdown("x")).unwrap();
    quiet();
    assert_eq!(
        log.entries(),
        [
            "k:link ready=true",
            "k:exception killed: shutdown: x",
            "k:raw"
        ]
    );
    assert_eq!(reports.take_one().context, "greenlet");
}

/// gevent counts a plain `GreenletExit` kill as success: `link_value` fires
/// (with no value), `link_exception` does not.
#[greenlet::test]
fn a_greenlet_exit_kill_fires_value_links_without_a_value() {
    let log = Log::new();
    let g = spawn(|| -> u8 {
        sleep(LONG);
        1
    });
    link_all(&g, &log, "x");
    sleep(Duration::ZERO);
    g.kill().unwrap();
    quiet();
    assert_eq!(
        log.entries(),
        ["x:link ready=true", "x:value none", "x:raw"]
    );
}

#[greenlet::test]
fn links_fire_for_a_greenlet_killed_before_start() {
    let log = Log::new();
    let g = spawn(|| 1);
    link_all(&g, &log, "n");
    g.kill().unwrap();
    assert!(log.is_empty());
    quiet();
    assert_eq!(
        log.entries(),
        ["n:link ready=true", "n:value none", "n:raw"]
    );

    let log = Log::new();
    let u = Greenlet::new(|| 1);
    link_all(&u, &log, "u");
    u.kill().unwrap();
    quiet();
    assert_eq!(
        log.entries(),
        ["u:link ready=true", "u:value none", "u:raw"]
    );
}

#[greenlet::test]
fn links_added_after_death_fire_on_the_next_turn_once() {
    let g = spawn(|| "done");
    g.join().unwrap();
    sleep(Duration::ZERO);
    for round in 0..3 {
        let log = Log::new();
        link_all(&g, &log, "late");
        assert!(
            log.is_empty(),
            "round {round}: a late link must not run synchronously"
        );
        sleep(Duration::ZERO);
        assert_eq!(
            log.entries(),
            ["late:link ready=true", "late:value \"done\"", "late:raw"],
            "round {round}"
        );
        quiet();
        assert_eq!(log.len(), 3);
    }
}

#[greenlet::test]
fn link_value_receives_the_greenlet_and_can_take_a_value_that_is_not_clone() {
    #[derive(Debug, PartialEq)]
    struct NotClone {
        name: String,
        n: u32,
    }
    let g = spawn(|| NotClone {
        name: "typed".into(),
        n: 3,
    });
    let seen = Rc::new(RefCell::new(None));
    let s = seen.clone();
    g.link_value(move |g: &Greenlet<NotClone>| {
        // Ready: `take` does not block inside the hub callback.
        let v = g.take().expect("a value");
        *s.borrow_mut() = Some((v.name.clone(), v.n));
    });
    quiet();
    assert_eq!(*seen.borrow(), Some(("typed".to_owned(), 3)));
    // The callback moved it out.
    assert!(matches!(g.take(), Err(GreenletError::ValueTaken)));
    assert!(matches!(g.into_result(), Err(GreenletError::ValueTaken)));
}

#[greenlet::test]
fn unlink_removes_a_link_that_has_not_fired() {
    let log = Log::new();
    let g = spawn(|| ());
    let l = log.clone();
    let a = g.link(move |_| l.push("a"));
    let l = log.clone();
    let b = g.rawlink(move || l.push("b"));
    let l = log.clone();
    let c = g.link_value(move |_| l.push("c"));
    let l = log.clone();
    let d = g.link_exception(move |_| l.push("d"));
    assert_ne!(a, b);
    assert!(g.unlink(b));
    assert!(!g.unlink(b), "already removed");
    assert!(g.unlink(d));
    quiet();
    assert_eq!(log.entries(), ["a", "c"]);
    assert!(!g.unlink(a), "already fired");
    assert!(!g.unlink(c));
}

#[greenlet::test]
fn unlink_drops_the_callback_at_once() {
    let log = Log::new();
    let g = spawn(|| sleep(Duration::from_millis(1)));
    let guard = DropLog::new("callback", &log);
    let id = g.rawlink(move || drop(guard));
    assert!(log.is_empty());
    assert!(g.unlink(id));
    assert_eq!(
        log.entries(),
        ["drop callback"],
        "the unlinked closure is dropped"
    );
    quiet();

    // A fired callback is dropped after it ran, even one that holds the
    // greenlet's own handle (no reference cycle survives).
    let log = Log::new();
    let h = spawn(|| ());
    let weak = Rc::new(Cell::new(0));
    let guard = DropLog::new("holder", &log);
    let me = h.clone();
    let w = weak.clone();
    h.link(move |_| {
        let _keep = (&guard, &me);
        w.set(w.get() + 1);
    });
    quiet();
    assert_eq!(weak.get(), 1);
    assert_eq!(log.entries(), ["drop holder"]);
}

#[greenlet::test]
fn an_early_link_can_unlink_a_later_one() {
    // gevent: notification must not happen after unlink, even once
    // notifying has started.
    // The callback only records; the asserts run here, on the test's stack
    // (a panic inside a callback is caught and reported by the hub).
    let log = Log::new();
    let g = spawn(|| 5);
    let later: Rc<Cell<Option<LinkId>>> = Rc::new(Cell::new(None));
    let (l, lt) = (log.clone(), later.clone());
    g.link(move |g| {
        let unlinked = lt.get().map(|id| g.unlink(id));
        l.push(format!("first unlinked={unlinked:?}"));
    });
    let l = log.clone();
    later.set(Some(g.link(move |_| l.push("second"))));
    let l = log.clone();
    g.rawlink(move || l.push("third"));
    assert!(g.has_links());
    quiet();
    assert_eq!(log.entries(), ["first unlinked=Some(true)", "third"]);
    assert!(!g.has_links(), "every link fired or was removed");
    assert!(
        !g.unlink(later.get().expect("registered")),
        "already removed"
    );
}

#[greenlet::test]
fn a_link_added_by_a_link_fires_once() {
    let log = Log::new();
    let g = spawn(|| 1);
    let l = log.clone();
    g.link(move |g| {
        l.push("first");
        let l2 = l.clone();
        g.link(move |_| l2.push("added by first"));
    });
    let l = log.clone();
    g.link(move |_| l.push("second"));
    quiet();
    assert_eq!(log.entries(), ["first", "second", "added by first"]);
}

#[greenlet::test]
fn a_panicking_link_is_reported_and_the_others_still_run() {
    let reports = Reports::install();
    for outcome_fails in [false, true] {
        let log = Log::new();
        let g = greenlet::Builder::new()
            .name("linked")
            .spawn(move || -> u8 {
                if outcome_fails {
                    panic!("body");
                }
                5
            })
            .expect("spawn");
        let l = log.clone();
        g.link(move |_| {
            l.push("one");
            panic!("link one");
        });
        let l = log.clone();
        g.link(move |_| {
            l.push("two");
            panic!("link two");
        });
        let l = log.clone();
        g.rawlink(move || l.push("three"));
        quiet();
        assert_eq!(log.entries(), ["one", "two", "three"]);
        let mut all = reports.take();
        if outcome_fails {
            let body = all.remove(0);
            assert_eq!(body.context, "greenlet");
        }
        assert_eq!(all.len(), 2, "{all:#?}");
        for (r, msg) in all.iter().zip(["link one", "link two"]) {
            assert_eq!(r.context, "link callback");
            assert_contains(&r.greenlet, &["linked"]);
            assert_contains(&r.error.to_string(), &[msg]);
        }
    }
}

#[greenlet::test]
fn blocking_inside_a_link_is_a_clear_error() {
    let reports = Reports::install();
    let g = spawn(|| ());
    let log = Log::new();
    let l = log.clone();
    g.link(move |_| {
        l.push(format!("in hub: {}", getcurrent().is_hub()));
        sleep(Duration::from_millis(1));
        l.push("after sleep");
    });
    let l = log.clone();
    g.rawlink(move || l.push("next link"));
    quiet();
    assert_eq!(log.entries(), ["in hub: true", "next link"]);
    let r = reports.take_one();
    assert_eq!(r.context, "link callback");
    assert_contains(
        &r.error.to_string(),
        &["cannot block inside a hub callback", "spawn a greenlet"],
    );
}

#[greenlet::test]
fn a_link_may_spawn_a_greenlet_to_do_blocking_work() {
    let log = Log::new();
    let g = spawn(|| 2);
    let l = log.clone();
    g.link_value(move |g| {
        let v = g.value().expect("a value");
        let l = l.clone();
        spawn(move || {
            sleep(Duration::from_millis(1));
            l.push(format!("follow-up {v}"));
        });
    });
    quiet();
    assert_eq!(log.entries(), ["follow-up 2"]);
}

#[greenlet::test]
fn every_greenlet_fires_each_of_its_links_exactly_once() {
    let counts = Rc::new(RefCell::new(vec![0u32; 100]));
    let gs: Vec<_> = (0..100u64)
        .map(|i| {
            let g = spawn(move || {
                sleep(Duration::from_millis(i % 7));
                i
            });
            for _ in 0..2 {
                let c = counts.clone();
                g.link_value(move |g| c.borrow_mut()[g.value().expect("a value") as usize] += 1);
            }
            g
        })
        .collect();
    quiet();
    assert!(gs.iter().all(Greenlet::is_ready));
    assert!(
        counts.borrow().iter().all(|&c| c == 2),
        "{:?}",
        counts.borrow()
    );
    assert_eq!(hub::stats().callbacks, 0);
}

#[greenlet::test]
fn rawlink_through_the_waitable_trait() {
    let g = spawn(|| 1);
    let w: &dyn Waitable = &g;
    let fired = Rc::new(Cell::new(0));
    let f = fired.clone();
    let id = w.rawlink(Box::new(move || f.set(f.get() + 1)));
    let f = fired.clone();
    let removed = w.rawlink(Box::new(move || f.set(f.get() + 100)));
    assert!(w.unlink(removed));
    assert!(!w.is_ready());
    quiet();
    assert!(w.is_ready());
    assert_eq!(fired.get(), 1);
    assert!(!w.unlink(id));
}

#[greenlet::test]
fn links_fire_when_a_timeout_ends_the_greenlet() {
    let reports = Reports::install();
    let log = Log::new();
    let g = spawn(|| -> u8 {
        let _t = greenlet::Timeout::start_new(Duration::from_millis(5));
        sleep(LONG);
        1
    });
    let l = log.clone();
    g.link_exception(move |g| {
        l.push(format!(
            "timeout={}",
            matches!(g.exception(), Some(GreenletError::Timeout(_)))
        ))
    });
    quiet();
    assert_eq!(log.entries(), ["timeout=true"]);
    assert_eq!(reports.take_one().context, "greenlet");
}
