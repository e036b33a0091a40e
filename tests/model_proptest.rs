//! A model test: random programs of spawn / start / start_later / kill /
//! join_timeout / with_timeout(join) / link / sleep run on the hub, checked
//! against a simple reference model of what each greenlet must end with.
//!
//! Invariants, checked after every operation and at the end:
//! * ready implies exactly one of value / error (`try_get`, `value`,
//!   `exception`, `is_successful` agree), not ready implies none;
//! * a greenlet killed before it first ran never runs its body;
//! * the first kill that reaches a live greenlet decides its outcome, and
//!   nothing after its blocking point runs;
//! * a greenlet never killed runs every step and ends with its scripted value
//!   or panic;
//! * every link fires exactly once (value / exception links only for that
//!   outcome, with the right value), every body's captures are dropped once,
//!   every failure is reported once;
//! * the hub counters are back at baseline.
//!
//! The property runs twice in the same test (the hub is reused).

mod reliability_common;

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenlet::{Greenlet, GreenletError, KillError, hub, sleep, spawn, spawn_later, with_timeout};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reliability_common::{Baseline, Counter, Reports};

#[derive(Debug, Clone, Copy)]
enum Step {
    Sleep(u8),
    Yield,
}

#[derive(Debug, Clone, Copy)]
enum End {
    Return(u16),
    Panic,
}

#[derive(Debug, Clone, Copy)]
enum Create {
    Spawn,
    New,
    StartLater(u8),
    SpawnLater(u8),
}

#[derive(Debug, Clone)]
struct Spec {
    create: Create,
    steps: Vec<Step>,
    end: End,
}

/// Operations of the native stack; greenlet indices are taken modulo the
/// number of greenlets.
#[derive(Debug, Clone, Copy)]
enum Op {
    Start(u8),
    StartLater(u8, u8),
    Kill(u8),
    KillNowait(u8),
    KillWith(u8),
    JoinTimeout(u8, u8),
    TimeoutJoin(u8, u8),
    Link(u8),
    Sleep(u8),
    Yield,
}

#[derive(Debug, Clone)]
struct Program {
    specs: Vec<Spec>,
    ops: Vec<Op>,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![(0u8..=2).prop_map(Step::Sleep), Just(Step::Yield)]
}

fn spec() -> impl Strategy<Value = Spec> {
    let create = prop_oneof![
        3 => Just(Create::Spawn),
        2 => Just(Create::New),
        1 => (0u8..=3).prop_map(Create::StartLater),
        1 => (0u8..=3).prop_map(Create::SpawnLater),
    ];
    let end = prop_oneof![4 => any::<u16>().prop_map(End::Return), 1 => Just(End::Panic)];
    (create, prop::collection::vec(step(), 0..4), end).prop_map(|(create, steps, end)| Spec {
        create,
        steps,
        end,
    })
}

fn op() -> impl Strategy<Value = Op> {
    let i = any::<u8>();
    prop_oneof![
        2 => i.prop_map(Op::Start),
        1 => (i, 0u8..=3).prop_map(|(i, d)| Op::StartLater(i, d)),
        2 => i.prop_map(Op::Kill),
        2 => i.prop_map(Op::KillNowait),
        1 => i.prop_map(Op::KillWith),
        2 => (i, 0u8..=3).prop_map(|(i, d)| Op::JoinTimeout(i, d)),
        2 => (i, 0u8..=3).prop_map(|(i, d)| Op::TimeoutJoin(i, d)),
        2 => i.prop_map(Op::Link),
        1 => (0u8..=2).prop_map(Op::Sleep),
        1 => Just(Op::Yield),
    ]
}

fn program() -> impl Strategy<Value = Program> {
    (
        prop::collection::vec(spec(), 1..=12),
        prop::collection::vec(op(), 0..=16),
    )
        .prop_map(|(specs, ops)| Program { specs, ops })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillKind {
    Exit,
    With,
}

/// One link set added by `link`/`link_value`/`link_exception`.
struct LinkSet {
    any: Counter,
    value: Counter,
    value_seen: Rc<Cell<Option<u16>>>,
    exception: Counter,
}

/// The reference model of one greenlet next to the real one.
struct Track {
    i: usize,
    g: Greenlet<u16>,
    spec: Spec,
    entered: Counter,
    steps_done: Counter,
    ended: Counter,
    dropped: Counter,
    /// The first kill that reached it while alive, and whether its body had
    /// started by then.
    first_kill: Option<(KillKind, bool)>,
    links: Vec<LinkSet>,
}

fn ms(n: u8) -> Duration {
    Duration::from_millis(u64::from(n))
}

#[derive(Debug)]
struct UserKill(usize);

impl std::fmt::Display for UserKill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "kill {}", self.0)
    }
}

impl std::error::Error for UserKill {}

impl Track {
    fn new(i: usize, spec: &Spec) -> Track {
        let (entered, steps_done, ended, dropped) = (
            Counter::new(),
            Counter::new(),
            Counter::new(),
            Counter::new(),
        );
        let (e, s, d, guard) = (
            entered.clone(),
            steps_done.clone(),
            ended.clone(),
            dropped.guard(),
        );
        let (steps, end) = (spec.steps.clone(), spec.end);
        let body = move || -> u16 {
            let _guard = guard;
            e.hit();
            for step in &steps {
                match step {
                    Step::Sleep(n) => sleep(ms(*n)),
                    Step::Yield => sleep(Duration::ZERO),
                }
                s.hit();
            }
            d.hit();
            match end {
                End::Return(v) => v,
                End::Panic => panic!("scripted panic {i}"),
            }
        };
        let g = match spec.create {
            Create::Spawn => spawn(body),
            Create::New => Greenlet::new(body),
            Create::StartLater(d) => {
                let g = Greenlet::new(body);
                g.start_later(ms(d));
                g
            }
            Create::SpawnLater(d) => spawn_later(ms(d), body),
        };
        let mut t = Track {
            i,
            g,
            spec: spec.clone(),
            entered,
            steps_done,
            ended,
            dropped,
            first_kill: None,
            links: Vec::new(),
        };
        t.add_links();
        t
    }

    fn add_links(&mut self) {
        let set = LinkSet {
            any: Counter::new(),
            value: Counter::new(),
            value_seen: Rc::new(Cell::new(None)),
            exception: Counter::new(),
        };
        let (a, v, seen, x) = (
            set.any.clone(),
            set.value.clone(),
            Rc::clone(&set.value_seen),
            set.exception.clone(),
        );
        self.g.link(move |g| {
            assert!(g.is_ready(), "link before death");
            a.hit();
        });
        self.g.link_value(move |val| {
            v.hit();
            seen.set(Some(*val));
        });
        self.g.link_exception(move |_| x.hit());
        self.links.push(set);
    }

    fn kill(&mut self, kind: KillKind, block: bool) {
        if !self.g.is_ready() && self.first_kill.is_none() {
            self.first_kill = Some((kind, self.entered.get() > 0));
        }
        match (kind, block) {
            (KillKind::Exit, true) => self.g.kill(),
            (KillKind::Exit, false) => self.g.kill_nowait(),
            (KillKind::With, _) => self.g.kill_with(UserKill(self.i)),
        }
        if block {
            assert!(
                self.g.is_ready(),
                "g{}: a blocking kill returned early",
                self.i
            );
        }
    }

    /// The invariants that hold at any time.
    fn check_consistent(&self) {
        let g = &self.g;
        let i = self.i;
        assert!(
            self.entered.get() <= 1 && self.ended.get() <= 1,
            "g{i} ran twice"
        );
        if let Some((_, false)) = self.first_kill {
            assert_eq!(
                self.entered.get(),
                0,
                "g{i}: killed before start, yet it ran"
            );
        }
        assert_eq!(
            g.is_active(),
            g.is_started() && !g.is_ready(),
            "g{i}: is_active"
        );
        match g.try_get() {
            None => {
                assert!(!g.is_ready(), "g{i}");
                assert!(g.value().is_none() && g.exception().is_none(), "g{i}");
                assert!(!g.is_successful(), "g{i}");
                assert_eq!(self.dropped.get(), 0, "g{i}: captures dropped while alive");
            }
            Some(Ok(v)) => {
                assert!(g.is_ready() && g.is_successful(), "g{i}");
                assert_eq!(g.value(), Some(v), "g{i}");
                assert!(g.exception().is_none(), "g{i}");
            }
            Some(Err(e)) => {
                assert!(g.is_ready(), "g{i}");
                assert!(g.value().is_none(), "g{i}");
                let exit = e.is_greenlet_exit();
                assert_eq!(g.exception().is_some(), !exit, "g{i}: {e:?}");
                assert_eq!(g.is_successful(), exit, "g{i}: {e:?}");
            }
        }
    }

    /// The final outcome the model predicts; returns whether it is a
    /// reportable error.
    fn check_final(&self) -> bool {
        let (g, i) = (&self.g, self.i);
        assert!(g.is_ready(), "g{i} still alive at the end");
        assert_eq!(self.dropped.get(), 1, "g{i}: captures dropped once");
        let outcome = g.try_get().expect("ready");
        let reportable;
        match self.first_kill {
            Some((kind, entered_at_kill)) => {
                assert_eq!(self.ended.get(), 0, "g{i}: ran past a kill");
                if !entered_at_kill {
                    assert_eq!(
                        self.entered.get(),
                        0,
                        "g{i}: killed before start, yet it ran"
                    );
                }
                match (kind, &outcome) {
                    (KillKind::Exit, Err(GreenletError::Killed(KillError::GreenletExit))) => {
                        reportable = false;
                    }
                    (KillKind::With, Err(GreenletError::Killed(KillError::Error(e)))) => {
                        assert_eq!(e.to_string(), format!("kill {i}"));
                        reportable = true;
                    }
                    _ => panic!("g{i}: first kill {kind:?}, outcome {outcome:?}"),
                }
            }
            None => {
                assert_eq!(self.entered.get(), 1, "g{i}");
                assert_eq!(self.steps_done.get(), self.spec.steps.len(), "g{i}");
                assert_eq!(self.ended.get(), 1, "g{i}");
                match (self.spec.end, &outcome) {
                    (End::Return(v), Ok(got)) => {
                        assert_eq!(*got, v, "g{i}");
                        reportable = false;
                    }
                    (End::Panic, Err(GreenletError::Panicked(p))) => {
                        assert_eq!(p.message(), format!("scripted panic {i}"));
                        reportable = true;
                    }
                    _ => panic!("g{i}: scripted {:?}, outcome {outcome:?}", self.spec.end),
                }
            }
        }
        for (k, set) in self.links.iter().enumerate() {
            assert_eq!(set.any.get(), 1, "g{i} link set {k}: link");
            let value = outcome.as_ref().ok().copied();
            assert_eq!(
                set.value.get(),
                usize::from(value.is_some()),
                "g{i} link set {k}"
            );
            assert_eq!(set.value_seen.get(), value, "g{i} link set {k}");
            assert_eq!(
                set.exception.get(),
                usize::from(reportable),
                "g{i} link set {k}"
            );
        }
        reportable
    }
}

/// How often each kind of outcome came up, to show the generator reaches
/// every branch of the model.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    killed_before_start: usize,
    killed_while_running: usize,
    returned: usize,
    panicked: usize,
    links_after_death: usize,
    timeouts_fired: usize,
}

fn run_program(p: &Program, tally: &Cell<Tally>) {
    let mut seen = tally.get();
    let base = Baseline::take();
    let reports = Reports::install();
    let mut tracks: Vec<Track> = p
        .specs
        .iter()
        .enumerate()
        .map(|(i, s)| Track::new(i, s))
        .collect();
    let n = tracks.len();
    for op in &p.ops {
        match *op {
            Op::Start(i) => tracks[usize::from(i) % n].g.start(),
            Op::StartLater(i, d) => tracks[usize::from(i) % n].g.start_later(ms(d)),
            Op::Kill(i) => tracks[usize::from(i) % n].kill(KillKind::Exit, true),
            Op::KillNowait(i) => tracks[usize::from(i) % n].kill(KillKind::Exit, false),
            Op::KillWith(i) => tracks[usize::from(i) % n].kill(KillKind::With, true),
            Op::JoinTimeout(i, d) => {
                let g = &tracks[usize::from(i) % n].g;
                let t0 = Instant::now();
                let done = g.join_timeout(ms(d));
                assert_eq!(done, g.is_ready());
                if !done {
                    assert!(t0.elapsed() >= ms(d), "join_timeout returned early");
                }
            }
            Op::TimeoutJoin(i, d) => {
                let g = &tracks[usize::from(i) % n].g;
                let t0 = Instant::now();
                match with_timeout(ms(d), || g.join()) {
                    Ok(()) => assert!(g.is_ready(), "join returned before death"),
                    Err(e) => {
                        seen.timeouts_fired += 1;
                        assert_eq!(e.duration(), Some(ms(d)));
                        assert!(t0.elapsed() >= ms(d), "timeout fired early");
                    }
                }
            }
            Op::Link(i) => {
                let t = &mut tracks[usize::from(i) % n];
                seen.links_after_death += usize::from(t.g.is_ready());
                t.add_links();
            }
            Op::Sleep(d) => sleep(ms(d)),
            Op::Yield => sleep(Duration::ZERO),
        }
        for t in &tracks {
            t.check_consistent();
        }
    }
    // Let every started greenlet finish, then kill the never-started ones.
    hub::join();
    for t in &mut tracks {
        if !t.g.is_ready() {
            assert!(
                !t.g.is_started(),
                "g{}: started but still alive after hub::join",
                t.i
            );
            t.kill(KillKind::Exit, true);
        }
    }
    hub::join();
    let mut reportable = 0;
    for t in &tracks {
        t.check_consistent();
        reportable += usize::from(t.check_final());
        match (t.first_kill, t.spec.end) {
            (Some((_, false)), _) => seen.killed_before_start += 1,
            (Some((_, true)), _) => seen.killed_while_running += 1,
            (None, End::Return(_)) => seen.returned += 1,
            (None, End::Panic) => seen.panicked += 1,
        }
    }
    assert_eq!(reports.count("greenlet"), reportable, "{:?}", reports.all());
    assert_eq!(reports.len(), reportable, "{:?}", reports.all());
    drop(reports);
    drop(tracks);
    base.check();
    tally.set(seen);
}

fn run_property(round: usize) {
    let config = Config {
        cases: 64,
        failure_persistence: None,
        max_shrink_iters: 512,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let tally = Cell::new(Tally::default());
    let result = runner.run(&program(), |p| {
        let outcome = catch_unwind(AssertUnwindSafe(|| run_program(&p, &tally)));
        if let Err(payload) = outcome {
            // Leave a clean hub for the next (shrunk) case.
            hub::reset_error_handler();
            hub::destroy();
            resume_unwind(payload);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("round {round}: {e}");
    }
    let t = tally.get();
    eprintln!("round {round}: {t:?}");
    for (what, n) in [
        ("killed before start", t.killed_before_start),
        ("killed while running", t.killed_while_running),
        ("returned", t.returned),
        ("panicked", t.panicked),
        ("links added after death", t.links_after_death),
        ("timeouts fired", t.timeouts_fired),
    ] {
        assert!(n > 0, "round {round}: no case covered {what}: {t:?}");
    }
}

#[test]
fn random_programs_match_the_model() {
    let t0 = Instant::now();
    run_property(0);
    run_property(1);
    let s = hub::stats();
    assert!(s.is_quiet(), "{s:?}");
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
}
