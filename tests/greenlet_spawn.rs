//! Creating and starting greenlets: `spawn`, `Greenlet::new` + `start`,
//! `start_later`, `spawn_later`, `spawn_raw`, `Builder`, `Run` structs,
//! names, `Display`, `getcurrent` and the state predicates.

mod common;

use std::cell::{Cell, OnceCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{Log, Reports, TICK, assert_contains, assert_quiet, assert_tick, quiet, timed};
use greenlet::{
    Builder, Greenlet, GreenletError, Run, getcurrent, hub, sleep, spawn, spawn_later, spawn_raw,
};

#[greenlet::test]
fn spawn_runs_the_body_at_the_first_switch_not_before() {
    for round in 0..2 {
        let log = Log::new();
        let l = log.clone();
        let g = spawn(move || {
            l.push("body");
            round * 10 + 7
        });
        assert!(log.is_empty(), "spawn must not run the body: {log:?}");
        assert!(g.is_started() && g.is_active());
        assert!(!g.is_ready() && !g.is_dead() && !g.is_successful());
        assert_eq!(g.value(), None);
        assert!(g.exception().is_none());
        sleep(Duration::ZERO);
        assert_eq!(log.entries(), ["body"]);
        assert!(g.is_ready() && g.is_successful() && !g.is_active());
        assert_eq!(g.value(), Some(round * 10 + 7));
        quiet();
    }
}

#[greenlet::test]
fn spawned_greenlets_run_in_spawn_order() {
    let log = Log::new();
    let gs: Vec<_> = (0..5)
        .map(|i| {
            let l = log.clone();
            spawn(move || l.push(format!("g{i}")))
        })
        .collect();
    // One trip through the loop runs all five, first spawned first.
    sleep(Duration::ZERO);
    assert_eq!(log.entries(), ["g0", "g1", "g2", "g3", "g4"]);
    assert!(gs.iter().all(Greenlet::is_ready));
    quiet();
}

#[greenlet::test]
fn greenlet_new_does_nothing_until_started_and_start_is_idempotent() {
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    let g = Greenlet::new(move || {
        r.set(r.get() + 1);
        "done"
    });
    assert!(!g.is_started() && !g.is_active() && !g.is_ready() && !g.is_dead());
    assert!(g.try_get().is_none());
    // An unstarted greenlet holds no slot and no stack.
    assert_eq!(hub::stats().greenlets, 0);
    sleep(Duration::ZERO);
    sleep(Duration::from_millis(5));
    assert_eq!(runs.get(), 0, "an unstarted greenlet must never run");

    g.start();
    assert!(g.is_started() && g.is_active() && !g.is_ready());
    assert_eq!(hub::stats().greenlets, 1);
    g.start(); // no-op
    assert_eq!(g.get().unwrap(), "done");
    g.start(); // no-op after death too
    sleep(Duration::ZERO);
    assert_eq!(runs.get(), 1, "the body runs exactly once");
    assert!(g.is_started(), "is_started stays true after finishing");
    quiet();
}

#[greenlet::test]
fn start_later_runs_after_the_delay() {
    let started_at = Rc::new(Cell::new(None));
    let s = started_at.clone();
    let g = Greenlet::new(move || s.set(Some(Instant::now())));
    let t0 = Instant::now();
    g.start_later(TICK);
    assert!(g.is_started() && g.is_active());
    sleep(Duration::ZERO);
    assert!(
        started_at.get().is_none(),
        "start_later must not run at once"
    );
    assert_eq!(hub::stats().timers, 1, "start_later arms one timer");
    g.join().unwrap();
    let ran = started_at.get().expect("body ran");
    assert_tick("start_later(50ms)", ran - t0);
    quiet();
}

#[greenlet::test]
fn spawn_later_runs_after_the_delay() {
    for _round in 0..2 {
        let t0 = Instant::now();
        let g = spawn_later(TICK, Instant::now);
        sleep(Duration::ZERO);
        assert!(!g.is_ready(), "spawn_later must not run at once");
        let ran = g.get().unwrap();
        assert_tick("spawn_later(50ms)", ran - t0);
        quiet();
    }
}

#[greenlet::test]
fn spawn_later_with_zero_delay_is_plain_spawn() {
    let log = Log::new();
    let l = log.clone();
    let g = spawn_later(Duration::ZERO, move || l.push("ran"));
    sleep(Duration::ZERO);
    assert_eq!(log.entries(), ["ran"]);
    assert!(g.is_ready());
    quiet();
}

#[greenlet::test]
fn spawn_raw_runs_without_a_handle() {
    let log = Log::new();
    for i in 0..3 {
        let l = log.clone();
        spawn_raw(move || {
            l.push(format!("raw{i} start {}", getcurrent().is_raw()));
            sleep(Duration::from_millis(1));
            l.push(format!("raw{i} end"));
        });
    }
    assert!(log.is_empty());
    assert_eq!(hub::stats().greenlets, 3);
    quiet();
    assert_eq!(
        log.entries(),
        [
            "raw0 start true",
            "raw1 start true",
            "raw2 start true",
            "raw0 end",
            "raw1 end",
            "raw2 end"
        ]
    );
}

#[greenlet::test]
fn a_panicking_raw_greenlet_is_reported_once() {
    let reports = Reports::install();
    spawn_raw(|| panic!("raw boom"));
    let survivor = spawn(|| 1);
    quiet();
    assert_eq!(survivor.get().unwrap(), 1);
    let r = reports.take_one();
    assert_eq!(r.context, "greenlet");
    assert_contains(&r.greenlet, &["raw greenlet"]);
    assert!(
        matches!(&r.error, GreenletError::Panicked(p) if p.message() == "raw boom"),
        "{r:?}"
    );
}

#[greenlet::test]
fn builder_sets_name_and_stack_size() {
    let g = Builder::new()
        .name("worker")
        .stack_size(64 * 1024)
        .spawn(|| {
            // Use a bit of the small stack.
            let buf = [7u8; 8 * 1024];
            std::hint::black_box(&buf)
                .iter()
                .map(|&b| u32::from(b))
                .sum::<u32>()
        })
        .expect("spawn");
    assert_eq!(g.name(), Some("worker"));
    assert_eq!(g.get().unwrap(), 7 * 8 * 1024);

    let unnamed = spawn(|| ());
    assert_eq!(unnamed.name(), None);

    let built = Builder::new().name("built").build(|| 3);
    assert!(!built.is_started());
    assert_eq!(built.name(), Some("built"));
    built.start();
    assert_eq!(built.get().unwrap(), 3);

    let t0 = Instant::now();
    let later = Builder::new()
        .name("later")
        .spawn_later(TICK, Instant::now)
        .expect("spawn_later");
    assert_tick("Builder::spawn_later", later.get().unwrap() - t0);
    quiet();
}

#[greenlet::test]
fn getcurrent_names_the_running_greenlet() {
    let me = getcurrent();
    assert!(me.is_main() && !me.is_hub() && !me.is_raw());
    assert_eq!(me, getcurrent());
    assert_eq!(me.to_string(), "<main greenlet>");

    let g = Builder::new()
        .name("inner")
        .spawn(|| {
            let cur = getcurrent();
            (cur.clone(), cur.is_main(), cur.is_hub(), cur.name())
        })
        .expect("spawn");
    let (seen, is_main, is_hub, name) = g.get().unwrap();
    assert!(!is_main && !is_hub);
    assert_eq!(name.as_deref(), Some("inner"));
    assert_eq!(seen, g.to_ref());
    assert!(g == seen, "Greenlet == GreenletRef");
    assert!(seen == g, "GreenletRef == Greenlet");
    assert_ne!(seen, getcurrent());

    let other = spawn(getcurrent);
    assert_ne!(
        other.get().unwrap(),
        seen,
        "different greenlets compare unequal"
    );

    // Inside a link: the hub.
    let in_link = Rc::new(Cell::new(None));
    let il = in_link.clone();
    let h = spawn(|| ());
    h.link(move |_| il.set(Some(getcurrent().is_hub())));
    h.join().unwrap();
    sleep(Duration::ZERO);
    assert_eq!(in_link.get(), Some(true));
    quiet();
}

#[greenlet::test]
fn is_current_is_true_only_inside_the_greenlet() {
    let cell: Rc<OnceCell<Greenlet<(bool, bool)>>> = Rc::new(OnceCell::new());
    let c = cell.clone();
    let other = spawn(|| ());
    let o = other.clone();
    let g = spawn(move || {
        let me = c.get().expect("handle published before the first switch");
        (me.is_current(), o.is_current())
    });
    assert!(cell.set(g.clone()).is_ok());
    assert!(!g.is_current(), "main is not the greenlet");
    assert_eq!(g.get().unwrap(), (true, false));
    assert!(!g.is_current(), "a dead greenlet is nobody's current");
    drop(cell);
    quiet();
}

#[greenlet::test]
fn display_shows_class_name_and_state() {
    let g = Builder::new()
        .name("disp")
        .build(|| getcurrent().to_string());
    let s = g.to_string();
    assert!(s.starts_with("<Greenlet \"disp\" at 0x"), "{s}");
    assert!(s.ends_with(": new>"), "{s}");
    assert_eq!(format!("{g:?}"), s, "Debug matches Display");

    g.start();
    assert!(g.to_string().ends_with(": started>"), "{g}");
    let inside = g.get().unwrap();
    assert!(inside.starts_with("<Greenlet \"disp\" at 0x"), "{inside}");
    assert!(inside.ends_with(": running>"), "{inside}");
    assert!(g.to_string().ends_with(": dead>"), "{g}");

    let unnamed = spawn(|| ());
    assert!(
        unnamed.to_string().starts_with("<Greenlet at 0x"),
        "{unnamed}"
    );

    let killed = spawn(|| ());
    killed.kill().unwrap();
    assert!(killed.to_string().ends_with(": dead (killed)>"), "{killed}");

    let reports = Reports::install();
    let failed = spawn(|| panic!("disp boom"));
    failed.join().unwrap();
    let shown = failed.to_string();
    // Dead with an error: labelled as such, not like success or a kill.
    assert!(
        shown.contains(": dead (") && !shown.contains("(killed)"),
        "{shown}"
    );
    assert_eq!(reports.take_one().context, "greenlet");
    quiet();
}

#[greenlet::test]
fn predicates_follow_a_successful_life() {
    // gevent's test_simple_exit.
    let log = Log::new();
    let l = log.clone();
    let g = Greenlet::new(|| {
        sleep(Duration::from_millis(20));
        5
    });
    g.rawlink(move || l.push("linked"));
    let state = |g: &Greenlet<i32>| {
        (
            g.is_active(),
            g.is_started(),
            g.is_ready(),
            g.is_dead(),
            g.is_successful(),
            g.value(),
            g.exception().is_some(),
        )
    };
    assert_eq!(state(&g), (false, false, false, false, false, None, false));
    g.start();
    assert_eq!(state(&g), (true, true, false, false, false, None, false));
    sleep(Duration::from_millis(1));
    assert_eq!(state(&g), (true, true, false, false, false, None, false));
    assert!(log.is_empty());
    g.join().unwrap();
    sleep(Duration::ZERO);
    assert_eq!(state(&g), (false, true, true, true, true, Some(5), false));
    assert_eq!(log.entries(), ["linked"]);
    quiet();
}

#[greenlet::test]
fn predicates_follow_a_failed_life() {
    // gevent's test_error_exit.
    let reports = Reports::install();
    let g = spawn(|| -> u8 {
        sleep(Duration::from_millis(5));
        panic!("error exit")
    });
    sleep(Duration::from_millis(1));
    assert!(g.is_active() && !g.is_ready() && g.exception().is_none());
    g.join().unwrap();
    assert!(!g.is_active() && g.is_ready() && g.is_dead() && !g.is_successful());
    assert_eq!(g.value(), None);
    let e = g.exception().expect("the panic is the exception");
    assert_eq!(
        e.as_panic().map(|p| p.message().to_owned()).as_deref(),
        Some("error exit")
    );
    assert_eq!(reports.take_one().context, "greenlet");
    quiet();
}

#[greenlet::test]
fn a_child_spawned_by_a_finished_greenlet_still_runs() {
    // gevent's test_spawn_is_not_cancelled.
    let log = Log::new();
    let l = log.clone();
    let parent = spawn(move || {
        let l2 = l.clone();
        spawn(move || l2.push("child"));
        l.push("parent done");
    });
    parent.join().unwrap();
    assert_eq!(
        log.entries().first().map(String::as_str),
        Some("parent done")
    );
    quiet();
    assert_eq!(log.entries(), ["parent done", "child"]);
}

#[greenlet::test]
fn greenlets_can_spawn_and_join_children() {
    let g = spawn(|| {
        let kids: Vec<_> = (1..=4u64)
            .map(|i| {
                spawn(move || {
                    sleep(Duration::from_millis(i));
                    i * i
                })
            })
            .collect();
        kids.iter().map(|k| k.get().unwrap()).sum::<u64>()
    });
    assert_eq!(g.get().unwrap(), 1 + 4 + 9 + 16);
    quiet();
}

#[greenlet::test]
fn clones_share_one_greenlet() {
    let g = spawn(|| String::from("shared"));
    let h = g.clone();
    assert_eq!(g, h);
    assert_ne!(g, spawn(String::new));
    assert_eq!(h.get().unwrap(), "shared");
    assert!(g.is_ready(), "finishing is seen through every handle");
    assert_eq!(g.value().as_deref(), Some("shared"));
    quiet();
}

#[greenlet::test]
fn greenlet_spawn_associated_function() {
    let g = Greenlet::spawn(|| 41 + 1);
    assert!(g.is_started());
    assert_eq!(g.get().unwrap(), 42);
    quiet();
}

#[greenlet::test]
fn thousands_of_greenlets_interleave_and_leave_nothing_behind() {
    for _round in 0..2 {
        let total = Rc::new(Cell::new(0u64));
        let gs: Vec<_> = (0..1000u64)
            .map(|i| {
                let t = total.clone();
                spawn(move || {
                    for _ in 0..3 {
                        t.set(t.get() + i);
                        sleep(Duration::ZERO);
                    }
                    i
                })
            })
            .collect();
        assert_eq!(hub::stats().greenlets, 1000);
        let sum: u64 = gs.iter().map(|g| g.get().unwrap()).sum();
        assert_eq!(sum, 999 * 1000 / 2);
        assert_eq!(total.get(), 3 * sum);
        quiet();
    }
}

struct Counter {
    limit: u32,
    seen: Cell<u32>,
}

impl Run for Counter {
    type Output = u32;

    fn run(&self) -> u32 {
        for _ in 0..self.limit {
            self.seen.set(self.seen.get() + 1);
            sleep(Duration::ZERO);
        }
        self.seen.get() * 10
    }
}

struct Named;

impl Run for Named {
    type Output = &'static str;

    fn run(&self) -> &'static str {
        "named"
    }

    fn class_name() -> &'static str {
        "CustomClass"
    }
}

#[greenlet::test]
fn run_structs_expose_their_fields_through_the_handle() {
    let g = Greenlet::spawn_run(Counter {
        limit: 3,
        seen: Cell::new(0),
    });
    assert_eq!(g.limit, 3);
    assert_eq!(g.seen.get(), 0);
    sleep(Duration::ZERO);
    assert_eq!(g.seen.get(), 1, "fields change as the body runs");
    assert_eq!(g.get().unwrap(), 30);
    assert_eq!(g.seen.get(), 3);
    assert!(g.to_string().starts_with("<Counter at 0x"), "{g}");

    let unstarted = Greenlet::from_run(Counter {
        limit: 1,
        seen: Cell::new(0),
    });
    assert!(!unstarted.is_started());
    sleep(Duration::ZERO);
    assert_eq!(unstarted.seen.get(), 0);
    unstarted.start();
    assert_eq!(unstarted.get().unwrap(), 10);

    let named = Builder::new()
        .name("n")
        .spawn_run(Named)
        .expect("spawn_run");
    assert!(
        named.to_string().starts_with("<CustomClass \"n\" at 0x"),
        "{named}"
    );
    assert_eq!(named.get().unwrap(), "named");

    let built = Builder::new().build_run(Named);
    assert!(!built.is_started());
    built.start();
    assert_eq!(built.get().unwrap(), "named");

    let (v, took) = timed(|| {
        Builder::new()
            .spawn_run_later(
                TICK,
                Counter {
                    limit: 0,
                    seen: Cell::new(0),
                },
            )
            .expect("spawn_run_later")
            .get()
            .unwrap()
    });
    assert_eq!(v, 0);
    assert_tick("spawn_run_later(50ms)", took);
    quiet();
}

#[greenlet::test]
fn links_of_run_structs_see_the_struct() {
    let g = Greenlet::spawn_run(Counter {
        limit: 2,
        seen: Cell::new(0),
    });
    let seen_in_link = Rc::new(Cell::new(None));
    let s = seen_in_link.clone();
    g.link(move |g| s.set(Some((g.limit, g.seen.get()))));
    g.join().unwrap();
    sleep(Duration::ZERO);
    assert_eq!(seen_in_link.get(), Some((2, 2)));
    quiet();
}

#[greenlet::test]
fn counters_track_live_greenlets() {
    assert_quiet();
    let a = spawn(|| sleep(Duration::from_millis(20)));
    let b = spawn(|| sleep(Duration::from_millis(20)));
    let s = hub::stats();
    assert_eq!(s.greenlets, 2);
    assert_eq!(s.timers, 0, "no sleep has started yet");
    sleep(Duration::ZERO);
    let s = hub::stats();
    assert_eq!(s.greenlets, 2);
    assert_eq!(s.timers, 2, "both are sleeping");
    assert!(s.stacks_allocated >= 2 && s.stacks_pooled < s.stacks_allocated);
    a.join().unwrap();
    b.join().unwrap();
    assert_eq!(hub::stats().greenlets, 0);
    quiet();
}
