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
//! Every program runs in a hub scope of its own (`greenlet::run`). Two
//! fixed-seed runs are reproducible; one run uses a random seed and saves
//! failing cases to `tests/model_proptest.proptest-regressions`, replayed
//! first on later runs. The coverage of each outcome category is checked
//! on hand-written programs, not left to chance.

mod reliability_common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenlet::{
    Greenlet, GreenletError, KillError, WaitError, hub, sleep, spawn, spawn_later, with_timeout,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngAlgorithm, TestRng, TestRunner};
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
    /// `link` callbacks that saw the greenlet not ready yet (recorded in the
    /// callback, asserted on the test's stack: a panic in a callback would
    /// only be reported by the hub).
    early: Counter,
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
            early: Counter::new(),
            value: Counter::new(),
            value_seen: Rc::new(Cell::new(None)),
            exception: Counter::new(),
        };
        let (a, early, v, seen, x) = (
            set.any.clone(),
            set.early.clone(),
            set.value.clone(),
            Rc::clone(&set.value_seen),
            set.exception.clone(),
        );
        self.g.link(move |g| {
            if !g.is_ready() {
                early.hit();
            }
            a.hit();
        });
        self.g.link_value(move |g| {
            v.hit();
            seen.set(g.value());
        });
        self.g.link_exception(move |_| x.hit());
        self.links.push(set);
    }

    fn kill(&mut self, kind: KillKind, block: bool) {
        if !self.g.is_ready() && self.first_kill.is_none() {
            self.first_kill = Some((kind, self.entered.get() > 0));
        }
        let r = match (kind, block) {
            (KillKind::Exit, true) => self.g.kill(),
            (KillKind::Exit, false) => {
                self.g.kill_nowait();
                Ok(())
            }
            (KillKind::With, _) => self.g.kill_with(UserKill(self.i)),
        };
        if let Err(e) = r {
            panic!("g{}: kill failed: {e:?}", self.i);
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
            assert_eq!(set.early.get(), 0, "g{i} link set {k}: link before death");
            let value = outcome.as_ref().ok().copied();
            // gevent's link_value fires for every success, a plain
            // GreenletExit kill included (then there is no value).
            assert_eq!(g.is_successful(), !reportable, "g{i}");
            assert_eq!(
                set.value.get(),
                usize::from(g.is_successful()),
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
                match g.join_timeout(ms(d)) {
                    Ok(()) => assert!(g.is_ready(), "join_timeout returned before death"),
                    Err(WaitError::Elapsed(e)) => {
                        assert!(!g.is_ready(), "Elapsed, yet it is dead");
                        assert_eq!(e.duration(), Some(ms(d)));
                        assert!(t0.elapsed() >= ms(d), "join_timeout returned early");
                    }
                    Err(e) => panic!("join_timeout: {e:?}"),
                }
            }
            Op::TimeoutJoin(i, d) => {
                let g = &tracks[usize::from(i) % n].g;
                let t0 = Instant::now();
                match with_timeout(ms(d), || g.join()) {
                    Ok(Ok(())) => assert!(g.is_ready(), "join returned before death"),
                    Ok(Err(e)) => panic!("join under a Timeout: {e:?}"),
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

/// Where failing cases of the random run are saved (proptest's seed file);
/// they are replayed first on every later run. Commit it when it appears.
const REGRESSIONS: &str = "tests/model_proptest.proptest-regressions";

/// Runs `cases` random programs, each in a hub scope of its own; `seed`
/// fixes the generator (`None`: a fresh random seed, with failures
/// persisted to [`REGRESSIONS`]). Returns what the cases covered.
fn run_property(label: &str, seed: Option<u8>, cases: u32) -> Tally {
    let config = Config {
        cases,
        failure_persistence: match seed {
            Some(_) => None,
            None => Some(Box::new(FileFailurePersistence::Direct(REGRESSIONS))),
        },
        max_shrink_iters: 512,
        ..Config::default()
    };
    let mut runner = match seed {
        Some(seed) => TestRunner::new_with_rng(
            config,
            TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]),
        ),
        None => TestRunner::new(config),
    };
    let tally = Cell::new(Tally::default());
    // The scope ends every greenlet and resets the hub, also when a case
    // fails (so the next, shrunk case starts clean).
    let result = runner.run(&program(), |p| {
        greenlet::run(|| run_program(&p, &tally));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{label}: {e}");
    }
    let t = tally.get();
    eprintln!("{label}: {t:?}");
    t
}

/// A category's name, a program that reaches it, and its count in a tally.
type Coverage = (&'static str, Program, fn(&Tally) -> usize);

/// Hand-written programs, one per outcome category of the model: the
/// categories are covered whatever the random generator picks (and however
/// the machine's timing falls), and each one is checked against the model.
fn coverage_programs() -> Vec<Coverage> {
    let spawn = |steps: Vec<Step>, end: End| Spec {
        create: Create::Spawn,
        steps,
        end,
    };
    vec![
        (
            "killed before start",
            Program {
                specs: vec![Spec {
                    create: Create::New,
                    steps: vec![Step::Yield],
                    end: End::Return(1),
                }],
                ops: vec![Op::Kill(0), Op::Start(0)],
            },
            |t| t.killed_before_start,
        ),
        (
            "killed while running",
            Program {
                specs: vec![spawn(vec![Step::Sleep(2), Step::Sleep(2)], End::Return(2))],
                ops: vec![Op::Yield, Op::KillWith(0)],
            },
            |t| t.killed_while_running,
        ),
        (
            "returned",
            Program {
                specs: vec![spawn(vec![Step::Yield, Step::Sleep(1)], End::Return(3))],
                ops: vec![Op::Link(0)],
            },
            |t| t.returned,
        ),
        (
            "panicked",
            Program {
                specs: vec![spawn(vec![Step::Yield], End::Panic)],
                ops: vec![Op::JoinTimeout(0, 3)],
            },
            |t| t.panicked,
        ),
        (
            "links added after death",
            Program {
                specs: vec![spawn(Vec::new(), End::Return(4))],
                ops: vec![Op::Yield, Op::Yield, Op::Link(0)],
            },
            |t| t.links_after_death,
        ),
        (
            "timeouts fired",
            Program {
                specs: vec![spawn(vec![Step::Sleep(2)], End::Return(5))],
                ops: vec![Op::TimeoutJoin(0, 0)],
            },
            |t| t.timeouts_fired,
        ),
    ]
}

#[test]
fn each_outcome_category_is_covered_and_matches_the_model() {
    for (what, program, count) in coverage_programs() {
        let tally = Cell::new(Tally::default());
        greenlet::run(|| run_program(&program, &tally));
        greenlet::run(|| run_program(&program, &tally)); // a fresh scope again
        assert_eq!(count(&tally.get()), 2, "{what}: {:?}", tally.get());
    }
}

#[test]
fn programs_from_fixed_seeds_match_the_model() {
    let t0 = Instant::now();
    for seed in [1, 2] {
        run_property(&format!("seed {seed}"), Some(seed), 64);
    }
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
}

#[test]
fn random_programs_match_the_model() {
    let t0 = Instant::now();
    run_property("random seed", None, 64);
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
}
