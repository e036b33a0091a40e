//! Model tests of the events and locks: random programs of
//! spawn-a-waiter / release / set / clear / kill / sleep (waiters with and
//! without timeouts) run on the hub, checked after every step against a
//! simple model, with every counter back to its start at the end.
//!
//! Semaphores (`Semaphore`, `BoundedSemaphore`, `Lock`, through guards):
//! * permits are conserved: free + held == initial, once hand-offs settled;
//! * no lost wake-up: a free permit means nobody waits;
//! * the queue holds exactly the actors still waiting;
//! * FIFO, no barging: actors acquire in the order they arrived;
//! * a killed or timed-out waiter never holds a permit.
//!
//! `RLock`: the same, one holder at a time, `count()` equal to its depth.
//!
//! `Event` / `AsyncResult`: every actor waiting when `set` runs wakes
//! (exactly once, also if its timeout is due in the same turn), one killed
//! first never does, a set before the wait is not lost, a cleared event
//! blocks again.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use greenlet::event::{AsyncResult, Event};
use greenlet::lock::{BoundedSemaphore, Lock, RLock, Semaphore};
use greenlet::{Greenlet, WaitError, sleep, spawn};
use proptest::prelude::*;

const ZERO: Duration = Duration::ZERO;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Spawned, not yet at its wait, or blocked in it.
    Waiting,
    Holding,
    /// Woken by a set (events).
    Woken,
    TimedOut,
    /// Left (released, or killed).
    Done,
}

#[derive(Debug, Clone)]
enum Op {
    /// A new actor; `Some(ms)`: waits with that timeout.
    Spawn(Option<u8>),
    /// The k-th holder releases (locks), or `set` (events).
    Release(u8),
    /// `clear` (events); a plain turn for locks.
    Clear,
    /// Kill the k-th actor that is still alive.
    Kill(u8),
    Sleep(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::option::weighted(0.3, 1u8..4).prop_map(Op::Spawn),
        3 => any::<u8>().prop_map(Op::Release),
        1 => Just(Op::Clear),
        2 => any::<u8>().prop_map(Op::Kill),
        1 => (0u8..4).prop_map(Op::Sleep),
    ]
}

/// Lets hand-offs, kills and wake-ups run to completion.
fn settle() {
    for _ in 0..6 {
        sleep(ZERO);
    }
}

struct Actor {
    g: Greenlet<()>,
    release: Rc<Event>,
}

type States = Rc<RefCell<Vec<State>>>;

/// Sets the actor's state when it leaves, whichever way.
struct OnExit(States, usize);

impl Drop for OnExit {
    fn drop(&mut self) {
        let mut s = self.0.borrow_mut();
        if matches!(s[self.1], State::Waiting | State::Holding) {
            s[self.1] = State::Done;
        }
    }
}

// ============================================================ semaphores

/// A guard of any type, kept alive until dropped.
trait Held {}
impl<T> Held for T {}

/// What the model needs from a counting lock.
trait Counting: 'static {
    fn make(n: usize) -> Self;
    fn hold(&self, timeout: Option<Duration>) -> Result<Box<dyn Held + '_>, WaitError>;
    fn counter(&self) -> usize;
    fn waiters(&self) -> usize;
}

macro_rules! counting {
    ($ty:ty) => {
        impl Counting for $ty {
            fn make(n: usize) -> Self {
                <$ty>::new(n)
            }
            fn hold(&self, timeout: Option<Duration>) -> Result<Box<dyn Held + '_>, WaitError> {
                match timeout {
                    Some(t) => self.lock_timeout(t).map(|g| Box::new(g) as Box<_>),
                    None => self.lock().map(|g| Box::new(g) as Box<_>),
                }
            }
            fn counter(&self) -> usize {
                <$ty>::counter(self)
            }
            fn waiters(&self) -> usize {
                <$ty>::waiters(self)
            }
        }
    };
}
counting!(Semaphore);
counting!(BoundedSemaphore);

impl Counting for Lock {
    fn make(_: usize) -> Self {
        Lock::new()
    }
    fn hold(&self, timeout: Option<Duration>) -> Result<Box<dyn Held + '_>, WaitError> {
        match timeout {
            Some(t) => self.lock_timeout(t).map(|g| Box::new(g) as Box<_>),
            None => self.lock().map(|g| Box::new(g) as Box<_>),
        }
    }
    fn counter(&self) -> usize {
        Lock::counter(self)
    }
    fn waiters(&self) -> usize {
        Lock::waiters(self)
    }
}

fn run_counting<S: Counting>(permits: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    greenlet::run(|| {
        let sem = Rc::new(S::make(permits));
        let states: States = Rc::new(RefCell::new(Vec::new()));
        let acquired = Rc::new(RefCell::new(Vec::new()));
        let mut actors: Vec<Actor> = Vec::new();
        for op in ops {
            match *op {
                Op::Spawn(timeout) => {
                    let id = actors.len();
                    states.borrow_mut().push(State::Waiting);
                    let release = Rc::new(Event::new());
                    let (sem, states, acquired, rel) = (
                        sem.clone(),
                        states.clone(),
                        acquired.clone(),
                        release.clone(),
                    );
                    let g = spawn(move || {
                        let _exit = OnExit(states.clone(), id);
                        let timeout = timeout.map(|ms| Duration::from_millis(u64::from(ms)));
                        let held = sem.hold(timeout);
                        match held {
                            Ok(_guard) => {
                                states.borrow_mut()[id] = State::Holding;
                                acquired.borrow_mut().push(id);
                                rel.wait().unwrap();
                            }
                            Err(WaitError::Elapsed(_)) => {
                                states.borrow_mut()[id] = State::TimedOut;
                            }
                            Err(e) => panic!("{e}"),
                        }
                    });
                    actors.push(Actor { g, release });
                }
                Op::Release(k) => {
                    let holders: Vec<usize> = (0..actors.len())
                        .filter(|&i| states.borrow()[i] == State::Holding)
                        .collect();
                    if !holders.is_empty() {
                        actors[holders[k as usize % holders.len()]].release.set();
                    }
                }
                Op::Clear => {}
                Op::Kill(k) => {
                    let alive: Vec<usize> = (0..actors.len())
                        .filter(|&i| !actors[i].g.is_ready())
                        .collect();
                    if !alive.is_empty() {
                        actors[alive[k as usize % alive.len()]].g.kill_nowait();
                    }
                }
                Op::Sleep(ms) => sleep(Duration::from_millis(u64::from(ms))),
            }
            settle();
            let st = states.borrow();
            let holding = st.iter().filter(|s| **s == State::Holding).count();
            let waiting = st.iter().filter(|s| **s == State::Waiting).count();
            prop_assert_eq!(
                holding + sem.counter(),
                permits,
                "permits conserved: {:?}",
                *st
            );
            prop_assert!(sem.counter() == 0 || sem.waiters() == 0, "lost wake-up");
            prop_assert_eq!(sem.waiters(), waiting, "queue == waiting actors: {:?}", *st);
            let order = acquired.borrow();
            prop_assert!(
                order.windows(2).all(|w| w[0] < w[1]),
                "acquired out of arrival order: {:?}",
                *order
            );
        }
        // Everyone leaves: the counters go back to the start.
        for a in &actors {
            a.g.kill_nowait();
        }
        for a in &actors {
            a.g.join().unwrap();
        }
        prop_assert_eq!(sem.counter(), permits);
        prop_assert_eq!(sem.waiters(), 0);
        prop_assert!(
            states
                .borrow()
                .iter()
                .all(|s| matches!(s, State::Done | State::TimedOut))
        );
        greenlet::hub::join();
        prop_assert!(greenlet::hub::stats().is_quiet());
        Ok(())
    })
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn semaphore_model(permits in 0usize..3, ops in prop::collection::vec(op(), 1..30)) {
        run_counting::<Semaphore>(permits, &ops)?;
    }

    #[test]
    fn bounded_semaphore_model(permits in 1usize..3, ops in prop::collection::vec(op(), 1..30)) {
        run_counting::<BoundedSemaphore>(permits, &ops)?;
    }

    #[test]
    fn lock_model(ops in prop::collection::vec(op(), 1..30)) {
        run_counting::<Lock>(1, &ops)?;
    }

    #[test]
    fn rlock_model(ops in prop::collection::vec((op(), 1usize..4), 1..30)) {
        run_rlock(&ops)?;
    }

    #[test]
    fn event_model(ops in prop::collection::vec(op(), 1..30)) {
        run_flag::<Event>(&ops)?;
    }

    #[test]
    fn async_result_model(ops in prop::collection::vec(op(), 1..30)) {
        run_flag::<AsyncResult<u32>>(&ops)?;
    }
}

// ================================================================ RLock

fn run_rlock(ops: &[(Op, usize)]) -> Result<(), TestCaseError> {
    greenlet::run(|| {
        let lock = Rc::new(RLock::new());
        let states: States = Rc::new(RefCell::new(Vec::new()));
        let depths = Rc::new(RefCell::new(Vec::new()));
        let acquired = Rc::new(RefCell::new(Vec::new()));
        let mut actors: Vec<Actor> = Vec::new();
        for (op, depth) in ops {
            let depth = *depth;
            match *op {
                Op::Spawn(timeout) => {
                    let id = actors.len();
                    states.borrow_mut().push(State::Waiting);
                    depths.borrow_mut().push(depth);
                    let release = Rc::new(Event::new());
                    let (lock, states, acquired, rel) = (
                        lock.clone(),
                        states.clone(),
                        acquired.clone(),
                        release.clone(),
                    );
                    let g = spawn(move || {
                        let _exit = OnExit(states.clone(), id);
                        let timeout = timeout.map(|ms| Duration::from_millis(u64::from(ms)));
                        let first = match timeout {
                            Some(t) => lock.lock_timeout(t),
                            None => lock.lock(),
                        };
                        match first {
                            Ok(g) => {
                                let mut guards = vec![g];
                                for _ in 1..depth {
                                    guards.push(lock.try_lock().expect("re-entrant"));
                                }
                                states.borrow_mut()[id] = State::Holding;
                                acquired.borrow_mut().push(id);
                                rel.wait().unwrap();
                                // Innermost first, as scopes would.
                                while let Some(g) = guards.pop() {
                                    drop(g);
                                }
                            }
                            Err(WaitError::Elapsed(_)) => {
                                states.borrow_mut()[id] = State::TimedOut;
                            }
                            Err(e) => panic!("{e}"),
                        }
                    });
                    actors.push(Actor { g, release });
                }
                Op::Release(k) => {
                    let holders: Vec<usize> = (0..actors.len())
                        .filter(|&i| states.borrow()[i] == State::Holding)
                        .collect();
                    if !holders.is_empty() {
                        actors[holders[k as usize % holders.len()]].release.set();
                    }
                }
                Op::Clear => {
                    // The main greenlet never holds it: its release fails.
                    prop_assert!(lock.release().is_err());
                }
                Op::Kill(k) => {
                    let alive: Vec<usize> = (0..actors.len())
                        .filter(|&i| !actors[i].g.is_ready())
                        .collect();
                    if !alive.is_empty() {
                        actors[alive[k as usize % alive.len()]].g.kill_nowait();
                    }
                }
                Op::Sleep(ms) => sleep(Duration::from_millis(u64::from(ms))),
            }
            settle();
            let st = states.borrow();
            let holders: Vec<usize> = (0..st.len()).filter(|&i| st[i] == State::Holding).collect();
            let waiting = st.iter().filter(|s| **s == State::Waiting).count();
            prop_assert!(holders.len() <= 1, "two holders: {:?}", *st);
            prop_assert_eq!(lock.is_locked(), holders.len() == 1);
            let want = holders.first().map_or(0, |&h| depths.borrow()[h]);
            prop_assert_eq!(lock.count(), want);
            prop_assert!(holders.is_empty() || lock.waiters() == waiting);
            prop_assert!(lock.is_locked() || lock.waiters() == 0, "lost wake-up");
            let order = acquired.borrow();
            prop_assert!(order.windows(2).all(|w| w[0] < w[1]), "{:?}", *order);
        }
        for a in &actors {
            a.g.kill_nowait();
        }
        for a in &actors {
            a.g.join().unwrap();
        }
        prop_assert!(!lock.is_locked());
        prop_assert_eq!(lock.count(), 0);
        prop_assert_eq!(lock.waiters(), 0);
        greenlet::hub::join();
        prop_assert!(greenlet::hub::stats().is_quiet());
        Ok(())
    })
}

// ======================================================= Event, AsyncResult

trait Flag: 'static {
    fn make() -> Self;
    fn wait_for(&self, timeout: Option<Duration>) -> Result<(), WaitError>;
    fn raise(&self);
    /// `false` when it cannot be cleared.
    fn lower(&self) -> bool;
    fn is_up(&self) -> bool;
    fn waiters(&self) -> Option<usize>;
}

impl Flag for Event {
    fn make() -> Self {
        Event::new()
    }
    fn wait_for(&self, timeout: Option<Duration>) -> Result<(), WaitError> {
        match timeout {
            Some(t) => self.wait_timeout(t),
            None => self.wait(),
        }
    }
    fn raise(&self) {
        self.set();
    }
    fn lower(&self) -> bool {
        self.clear();
        true
    }
    fn is_up(&self) -> bool {
        self.is_set()
    }
    fn waiters(&self) -> Option<usize> {
        Some(Event::waiters(self))
    }
}

impl Flag for AsyncResult<u32> {
    fn make() -> Self {
        AsyncResult::new()
    }
    fn wait_for(&self, timeout: Option<Duration>) -> Result<(), WaitError> {
        let got = match timeout {
            Some(t) => self.get_timeout(t),
            None => self.get(),
        };
        match got {
            Ok(v) => {
                assert_eq!(v, 7);
                Ok(())
            }
            Err(greenlet::GreenletError::Timeout(e)) => Err(WaitError::Elapsed(e)),
            Err(e) => panic!("{e}"),
        }
    }
    fn raise(&self) {
        self.set(7);
    }
    fn lower(&self) -> bool {
        false
    }
    fn is_up(&self) -> bool {
        self.is_ready()
    }
    fn waiters(&self) -> Option<usize> {
        None
    }
}

fn run_flag<F: Flag>(ops: &[Op]) -> Result<(), TestCaseError> {
    greenlet::run(|| {
        let flag = Rc::new(F::make());
        let states: States = Rc::new(RefCell::new(Vec::new()));
        let mut actors: Vec<Greenlet<()>> = Vec::new();
        // The model: what each actor must end as, once decided.
        let mut must: Vec<Option<State>> = Vec::new();
        for op in ops {
            match *op {
                Op::Spawn(timeout) => {
                    let id = actors.len();
                    states.borrow_mut().push(State::Waiting);
                    must.push(flag.is_up().then_some(State::Woken));
                    let (flag, states) = (flag.clone(), states.clone());
                    actors.push(spawn(move || {
                        let _exit = OnExit(states.clone(), id);
                        let timeout = timeout.map(|ms| Duration::from_millis(u64::from(ms)));
                        let r = flag.wait_for(timeout);
                        states.borrow_mut()[id] = match r {
                            Ok(()) => State::Woken,
                            Err(WaitError::Elapsed(_)) => State::TimedOut,
                            Err(e) => panic!("{e}"),
                        };
                    }));
                }
                Op::Release(_) => {
                    // Everyone still waiting now is woken, whatever follows.
                    for (i, s) in states.borrow().iter().enumerate() {
                        if *s == State::Waiting && must[i].is_none() {
                            must[i] = Some(State::Woken);
                        }
                    }
                    flag.raise();
                }
                Op::Clear => {
                    flag.lower();
                }
                Op::Kill(k) => {
                    let alive: Vec<usize> = (0..actors.len())
                        .filter(|&i| !actors[i].is_ready())
                        .collect();
                    if !alive.is_empty() {
                        let i = alive[k as usize % alive.len()];
                        // Settled before: a live actor is blocked in its
                        // wait; woken ones already ran.
                        if states.borrow()[i] == State::Waiting {
                            must[i] = Some(State::Done);
                        }
                        actors[i].kill_nowait();
                    }
                }
                Op::Sleep(ms) => sleep(Duration::from_millis(u64::from(ms))),
            }
            settle();
            let st = states.borrow();
            for (i, s) in st.iter().enumerate() {
                if let (Some(want), true) = (must[i], *s != State::Waiting) {
                    prop_assert_eq!(*s, want, "actor {}: {:?}", i, *st);
                }
                if *s == State::Woken {
                    prop_assert!(must[i] == Some(State::Woken), "woken without a set");
                }
            }
            let waiting = st.iter().filter(|s| **s == State::Waiting).count();
            if let Some(n) = flag.waiters() {
                prop_assert_eq!(n, waiting, "queue == waiting actors: {:?}", *st);
            }
            if flag.is_up() {
                prop_assert_eq!(waiting, 0, "set but someone still waits");
            }
        }
        for g in &actors {
            g.kill_nowait();
        }
        for g in &actors {
            g.join().unwrap();
        }
        prop_assert_eq!(flag.waiters().unwrap_or(0), 0);
        greenlet::hub::join();
        prop_assert!(greenlet::hub::stats().is_quiet());
        Ok(())
    })
}
