//! Waiting for many objects: `wait`, `iwait`, `joinall`, `killall`, and the
//! `Waitable` / `AnyGreenlet` trait objects.

mod common;

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{
    DropLog, LONG, Log, PROMPT, Reports, Shutdown, TICK, assert_contains, assert_tick, quiet, timed,
};
use greenlet::{
    AnyGreenlet, Greenlet, GreenletError, KillError, KillOptions, LinkId, WaitError, WaitOptions,
    Waitable, iwait, iwait_with, joinall, joinall_with, killall, killall_with, sleep, spawn, wait,
    wait_with,
};

fn sleeper(ms: u64) -> Greenlet<u64> {
    spawn(move || {
        sleep(Duration::from_millis(ms));
        ms
    })
}

fn values<T: Clone>(gs: &[&Greenlet<T>]) -> Vec<T> {
    gs.iter()
        .map(|g| g.value().expect("finished with a value"))
        .collect()
}

#[greenlet::test]
fn wait_returns_objects_in_the_order_they_became_ready() {
    for _round in 0..2 {
        let gs = [sleeper(30), sleeper(10), sleeper(20)];
        let ready = wait(&gs).expect("no LoopExit");
        assert_eq!(values(&ready), [10, 20, 30]);
        quiet();
    }
}

#[greenlet::test]
fn wait_with_a_count_returns_the_first_ones() {
    let gs = [sleeper(60), sleeper(5), sleeper(30)];
    let ready = wait_with(&gs, WaitOptions::new().count(1)).expect("no LoopExit");
    assert_eq!(values(&ready), [5]);
    assert!(
        !gs[0].is_ready() && !gs[2].is_ready(),
        "the others keep running"
    );
    let ready = wait_with(&gs, WaitOptions::new().count(2)).expect("no LoopExit");
    assert_eq!(values(&ready), [5, 30], "already-ready objects come first");
    let ready = wait_with(&gs, WaitOptions::new().count(10)).expect("no LoopExit");
    assert_eq!(ready.len(), 3, "count above the length means all");
    quiet();
}

#[greenlet::test]
fn wait_with_a_timeout_returns_what_is_ready_by_then() {
    let fast = sleeper(1);
    let slow = spawn(|| -> u64 {
        sleep(LONG);
        0
    });
    let (ready, took) =
        timed(|| wait_with([&fast, &slow], WaitOptions::new().timeout(TICK)).expect("no LoopExit"));
    assert_tick("wait with a 50 ms timeout", took);
    assert_eq!(ready.len(), 1);
    assert!(ready[0] == &fast);
    assert!(!slow.is_ready());
    slow.kill().unwrap();
    quiet();
}

#[greenlet::test]
fn wait_on_ready_objects_returns_them_in_the_given_order() {
    let gs: Vec<_> = (0..4u64).map(|i| spawn(move || i)).collect();
    for g in &gs {
        g.join().unwrap();
    }
    let order = [&gs[2], &gs[0], &gs[3], &gs[1]];
    let ready = wait(order).expect("no LoopExit");
    assert_eq!(values(&ready), [2, 0, 3, 1]);
    quiet();
}

#[greenlet::test]
fn wait_on_nothing_returns_at_once() {
    let none: [&Greenlet<()>; 0] = [];
    let (ready, took) = timed(|| wait(none).expect("no LoopExit"));
    assert!(ready.is_empty());
    assert!(took < PROMPT);
    let g = spawn(|| ());
    let ready = wait_with([&g], WaitOptions::new().count(0)).expect("no LoopExit");
    assert!(ready.is_empty(), "count 0 waits for nothing");
    quiet();
}

#[greenlet::test]
fn wait_on_the_native_stack_is_loop_exit_when_nothing_can_finish() {
    let forever = greenlet::Builder::new()
        .name("forever")
        .spawn(|| sleep(Duration::MAX))
        .expect("spawn");
    let done = spawn(|| ());
    let (r, took) = timed(|| wait([&done, &forever]));
    assert!(took < PROMPT);
    let e = r.expect_err("LoopExit");
    assert_contains(&e.to_string(), &["LoopExit", "forever"]);
    // With a timeout the wait is bounded instead.
    let ready = wait_with(
        [&done, &forever],
        WaitOptions::new().timeout(Duration::from_millis(5)),
    )
    .expect("bounded");
    assert_eq!(ready.len(), 1);
    forever.kill().unwrap();
    quiet();
}

/// A wrapper with its own type, waited on next to plain greenlets.
struct Labelled<'a> {
    label: &'static str,
    inner: &'a Greenlet<u64>,
}

impl Waitable for Labelled<'_> {
    fn is_ready(&self) -> bool {
        self.inner.is_ready()
    }

    fn rawlink(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        self.inner.rawlink(callback)
    }

    fn unlink(&self, id: LinkId) -> bool {
        self.inner.unlink(id)
    }
}

#[greenlet::test]
fn waitable_trait_objects_mix_types() {
    let a = sleeper(20);
    let b = spawn(|| {
        sleep(Duration::from_millis(5));
        "b"
    });
    let c = sleeper(10);
    let labelled = Labelled {
        label: "c",
        inner: &c,
    };
    let objects: [&dyn Waitable; 3] = [&a, &b, &labelled];
    let ready = wait(objects).expect("no LoopExit");
    assert_eq!(ready.len(), 3);
    assert!(std::ptr::addr_eq(ready[0], &b as &dyn Waitable));
    assert!(std::ptr::addr_eq(ready[1], &labelled as &dyn Waitable));
    assert!(std::ptr::addr_eq(ready[2], &a as &dyn Waitable));
    assert_eq!(labelled.label, "c");
    quiet();
}

#[greenlet::test]
fn iwait_yields_each_object_as_it_finishes() {
    for _round in 0..2 {
        let slow = sleeper(TICK.as_millis() as u64);
        let fast = sleeper(5);
        let t0 = Instant::now();
        let mut seen = Vec::new();
        for g in iwait([&slow, &fast]) {
            let g = g.expect("no LoopExit");
            seen.push((g.value().expect("value"), slow.is_ready(), t0.elapsed()));
        }
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].0, 5);
        assert!(!seen[0].1, "fast must be yielded before slow finishes");
        assert!(seen[0].2 >= Duration::from_millis(5));
        assert_eq!(seen[1].0, 50);
        assert_tick("iwait's second item", seen[1].2);
        quiet();
    }
}

#[greenlet::test]
fn iwait_with_a_count_stops_early_and_unlinks_the_rest() {
    let gs = [sleeper(40), sleeper(1), sleeper(20)];
    let mut it = iwait_with(&gs, WaitOptions::new().count(2));
    let first = it
        .next()
        .map(|g| g.expect("no LoopExit").value().expect("value"));
    // While iterating, the pending objects carry iwait's link.
    let linked_while_waiting = gs[0].has_links();
    let got: Vec<u64> = first
        .into_iter()
        .chain(it.map(|g| g.expect("no LoopExit").value().expect("value")))
        .collect();
    assert_eq!(got, [1, 20]);
    assert!(linked_while_waiting);
    assert!(!gs[0].is_ready());
    // The abandoned link on gs[0] is gone once the count is reached.
    assert!(
        !gs[0].has_links(),
        "iwait left its link on the unfinished greenlet"
    );
    gs[0].join().unwrap();
    quiet();
}

#[greenlet::test]
fn dropping_iwait_early_unlinks_its_callbacks() {
    let gs = [sleeper(5), sleeper(10), sleeper(15)];
    {
        let mut it = iwait(&gs);
        assert_eq!(
            it.next().map(|g| g.expect("no LoopExit").value()),
            Some(Some(5))
        );
        assert!(gs[1].has_links() && gs[2].has_links(), "iwait links them");
    }
    assert!(!gs[1].is_ready() && !gs[2].is_ready());
    assert!(
        !gs[1].has_links() && !gs[2].has_links(),
        "dropping iwait did not unlink"
    );
    for g in &gs {
        g.join().unwrap();
    }
    quiet();
}

#[greenlet::test]
fn iwait_with_a_timeout_stops_at_the_deadline() {
    let fast = sleeper(1);
    let slow = spawn(|| -> u64 {
        sleep(LONG);
        0
    });
    let t0 = Instant::now();
    let mut it = iwait_with([&fast, &slow], WaitOptions::new().timeout(TICK));
    assert!(it.next().is_some_and(|g| g.is_ok_and(|g| g == &fast)));
    // A timeout just ends the iteration: no `Err` item.
    assert!(it.next().is_none());
    assert_tick("iwait timeout", t0.elapsed());
    assert!(it.next().is_none(), "stays finished");
    drop(it);
    slow.kill().unwrap();
    quiet();
}

#[greenlet::test]
fn iwait_tolerates_the_caller_switching_between_items() {
    let gs = [sleeper(1), sleeper(5), sleeper(10)];
    let mut got = Vec::new();
    for g in iwait(&gs) {
        got.push(g.expect("no LoopExit").value().expect("value"));
        // Everything else finishes while we are away.
        sleep(Duration::from_millis(30));
    }
    assert_eq!(got, [1, 5, 10]);
    quiet();
}

#[greenlet::test]
fn iwait_reports_loop_exit_instead_of_hanging() {
    let forever = spawn(|| sleep(Duration::MAX));
    let quick = spawn(|| ());
    let mut it = iwait([&quick, &forever]);
    assert!(it.next().is_some_and(|g| g.is_ok_and(|g| g == &quick)));
    let (next, took) = timed(|| it.next());
    assert!(took < PROMPT);
    match next {
        Some(Err(WaitError::LoopExit(e))) => assert_eq!(e.operation(), "iwait"),
        other => panic!("expected one Err(LoopExit) item, got {other:?}"),
    }
    assert!(it.next().is_none(), "ends after the LoopExit item");
    drop(it);
    forever.kill().unwrap();
    quiet();
}

#[greenlet::test]
fn iwait_and_wait_work_inside_greenlets() {
    let g = spawn(|| {
        let kids = [sleeper(15), sleeper(5), sleeper(10)];
        let order: Vec<u64> = iwait(&kids)
            .map(|k| k.expect("no LoopExit").value().expect("value"))
            .collect();
        let again = wait(&kids).expect("no LoopExit").len();
        (order, again)
    });
    assert_eq!(g.get().unwrap(), (vec![5, 10, 15], 3));
    quiet();
}

#[greenlet::test]
fn joinall_waits_for_every_greenlet() {
    let gs: Vec<_> = (1..=3u64).map(|i| spawn(move || i * 10)).collect();
    let done = joinall_with(&gs, WaitOptions::new().raise_error()).expect("no failures");
    assert_eq!(done.len(), 3);
    assert_eq!(
        gs.iter()
            .map(|g| g.value().expect("value"))
            .collect::<Vec<_>>(),
        [10, 20, 30]
    );
    quiet();
}

#[greenlet::test]
fn joinall_with_a_timeout_returns_those_that_finished() {
    let fast = sleeper(1);
    let slow = spawn(|| -> u64 {
        sleep(LONG);
        0
    });
    let (done, took) =
        timed(|| joinall_with([&fast, &slow], WaitOptions::new().timeout(TICK)).expect("ok"));
    assert_tick("joinall with a 50 ms timeout", took);
    assert_eq!(done.len(), 1);
    assert!(done[0] == &fast);
    slow.kill().unwrap();
    quiet();
}

#[greenlet::test]
fn joinall_raise_error_returns_the_first_failure_and_others_keep_running() {
    let reports = Reports::install();
    // gevent's test_joinall_exception_order: the earliest failure wins.
    let a = spawn(|| -> u8 {
        sleep(Duration::from_millis(60));
        panic!("first (late)")
    });
    let b = spawn(|| -> u8 { panic!("second (early)") });
    let err = joinall_with([&a, &b], WaitOptions::new().raise_error()).expect_err("a failure");
    assert_eq!(
        err.as_panic().map(|p| p.message().to_owned()).as_deref(),
        Some("second (early)")
    );
    assert!(!a.is_ready(), "the others keep running");
    let done = joinall([&a, &b]).expect("no raise");
    assert_eq!(done.len(), 2);
    assert_eq!(reports.take().len(), 2);

    // An already-failed greenlet fails joinall at once.
    let err = joinall_with([&b], WaitOptions::new().raise_error()).expect_err("b failed");
    assert!(matches!(err, GreenletError::Panicked(_)));
    quiet();
}

#[greenlet::test]
fn joinall_count_works_without_raise_error() {
    let reports = Reports::install();
    let sleeper = spawn(|| {
        loop {
            sleep(Duration::from_millis(100));
        }
    });
    let raiser = spawn(|| panic!("count"));
    let done = joinall_with([&sleeper, &raiser], WaitOptions::new().count(1)).expect("no raise");
    assert_eq!(done.len(), 1);
    assert!(done[0] == &raiser);
    assert!(raiser.is_ready() && !sleeper.is_ready());
    sleeper.kill().unwrap();
    assert!(sleeper.is_ready());
    assert_eq!(reports.take_one().context, "greenlet");
    quiet();
}

#[greenlet::test]
fn joinall_on_an_unstarted_greenlet() {
    let never = Greenlet::new(|| 1);
    let (done, took) =
        timed(|| joinall_with([&never], WaitOptions::new().timeout(TICK)).expect("bounded"));
    assert!(done.is_empty());
    assert_tick("joinall on an unstarted greenlet with a timeout", took);
    let err = joinall([&never]).expect_err("would block forever");
    assert!(matches!(err, GreenletError::LoopExit(_)), "{err:?}");
    quiet();
}

#[greenlet::test]
fn joinall_and_killall_mix_result_types() {
    let a = spawn(|| 1u8);
    let b = spawn(|| "two");
    let both: [&dyn AnyGreenlet; 2] = [&a, &b];
    assert_eq!(
        joinall_with(both, WaitOptions::new().raise_error())
            .expect("ok")
            .len(),
        2
    );
    let c = spawn(|| sleep(LONG));
    let d = spawn(|| -> String {
        sleep(LONG);
        String::new()
    });
    sleep(Duration::ZERO);
    let both: [&dyn AnyGreenlet; 2] = [&c, &d];
    killall(both).expect("killed");
    assert!(c.is_successful() && d.is_successful());
    quiet();
}

#[greenlet::test]
fn killall_kills_never_started_greenlets_without_running_them() {
    for _round in 0..2 {
        let ran = Rc::new(Cell::new(0));
        let links = Rc::new(Cell::new(0));
        let gs: Vec<_> = (0..5)
            .map(|_| {
                let r = ran.clone();
                let g = spawn(move || r.set(r.get() + 1));
                let l = links.clone();
                g.rawlink(move || l.set(l.get() + 1));
                g
            })
            .collect();
        killall(&gs).expect("killed");
        assert!(gs.iter().all(|g| g.is_ready() && g.is_successful()));
        quiet();
        assert_eq!(ran.get(), 0, "killed before start: never runs");
        assert_eq!(links.get(), 5, "each link fires once");
    }
}

#[greenlet::test]
fn killall_blocks_until_all_are_dead_and_destructors_ran() {
    let log = Log::new();
    let gs: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|name| {
            let l = log.clone();
            spawn(move || {
                let _g = DropLog::new(name, &l);
                sleep(LONG);
            })
        })
        .collect();
    sleep(Duration::ZERO);
    let (r, took) = timed(|| killall(&gs));
    assert!(r.is_ok());
    assert!(took < PROMPT);
    assert_eq!(log.entries(), ["drop a", "drop b", "drop c"]);
    quiet();
}

#[greenlet::test]
fn killall_without_block_returns_at_once() {
    let log = Log::new();
    let l = log.clone();
    let running = spawn(move || {
        let _g = DropLog::new("running", &l);
        sleep(LONG);
    });
    sleep(Duration::ZERO);
    let unstarted = spawn(|| ());
    killall_with([&running, &unstarted], KillOptions::new().nowait()).expect("nowait");
    assert!(unstarted.is_ready(), "a never-run greenlet dies at once");
    assert!(!running.is_ready(), "a running one dies when it next runs");
    assert!(log.is_empty());
    running.join().unwrap();
    assert_eq!(log.entries(), ["drop running"]);
    quiet();
}

#[greenlet::test]
fn killall_with_a_timeout_gives_up_on_greenlets_that_will_not_die() {
    let stubborn = spawn(|| {
        let _ = catch_unwind(AssertUnwindSafe(|| sleep(LONG)));
        sleep(LONG);
    });
    let normal = spawn(|| sleep(LONG));
    sleep(Duration::ZERO);
    let (r, took) = timed(|| killall_with([&stubborn, &normal], KillOptions::new().timeout(TICK)));
    assert!(matches!(r, Err(WaitError::Elapsed(_))), "{r:?}");
    assert_tick("killall with a 50 ms timeout", took);
    assert!(normal.is_ready() && !stubborn.is_ready());
    stubborn.kill().unwrap();
    quiet();
}

#[greenlet::test]
fn killall_with_an_error_fails_every_greenlet() {
    let reports = Reports::install();
    let gs: Vec<_> = (0..3).map(|_| spawn(|| sleep(LONG))).collect();
    sleep(Duration::ZERO);
    killall_with(
        &gs,
        KillOptions::new().kill_error(KillError::new(Shutdown("all"))),
    )
    .expect("killed");
    for g in &gs {
        assert!(!g.is_successful());
        assert_contains(
            &g.exception().expect("failed").to_string(),
            &["shutdown: all"],
        );
    }
    assert_eq!(reports.take().len(), 3);
    // Killing dead greenlets again is a no-op.
    killall(&gs).expect("no-op");
    assert!(
        gs.iter().all(|g| !g.is_successful()),
        "the outcome is unchanged"
    );
    quiet();
}

#[greenlet::test]
fn killall_from_a_greenlet() {
    let victims: Vec<_> = (0..3).map(|_| spawn(|| sleep(LONG))).collect();
    let v = victims.clone();
    let killer = spawn(move || killall(&v).is_ok());
    assert!(killer.get().unwrap());
    assert!(victims.iter().all(Greenlet::is_ready));
    quiet();
}
