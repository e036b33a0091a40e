//! Proptest model tests of the queue and pool primitives: random
//! put/get/kill/timeout sequences against a simple model; every item is
//! delivered exactly once and every counter returns to zero.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use greenlet::pool::Pool;
use greenlet::queue::{Channel, LifoQueue, PriorityQueue, Queue, TryGetError, TryPutError};
use greenlet::{Greenlet, KillOptions, sleep, spawn};
use proptest::prelude::*;

const ZERO: Duration = Duration::ZERO;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ------------------------------------------------ non-blocking, exact model

#[derive(Debug, Clone)]
enum NowaitOp {
    Put(u8),
    Get,
    Peek,
    TaskDone,
    Shutdown,
}

fn nowait_op() -> impl Strategy<Value = NowaitOp> {
    prop_oneof![
        4 => any::<u8>().prop_map(NowaitOp::Put),
        3 => Just(NowaitOp::Get),
        1 => Just(NowaitOp::Peek),
        1 => Just(NowaitOp::TaskDone),
        1 => Just(NowaitOp::Shutdown),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Fifo,
    Lifo,
    Priority,
}

/// The model: a plain Vec and the rules of each order.
struct Model {
    kind: Kind,
    items: Vec<u8>,
    maxsize: Option<usize>,
    unfinished: usize,
    shutdown: bool,
}

impl Model {
    fn take_index(&self) -> Option<usize> {
        if self.items.is_empty() {
            return None;
        }
        Some(match self.kind {
            Kind::Fifo => 0,
            Kind::Lifo => self.items.len() - 1,
            Kind::Priority => {
                let min = *self.items.iter().min().unwrap();
                self.items.iter().position(|&x| x == min).unwrap()
            }
        })
    }
}

fn run_nowait(kind: Kind, maxsize: Option<usize>, ops: &[NowaitOp]) {
    greenlet::run(|| {
        let fifo = Queue::with_maxsize(maxsize);
        let lifo = LifoQueue::with_maxsize(maxsize);
        let prio = PriorityQueue::with_maxsize(maxsize);
        let put = |v| match kind {
            Kind::Fifo => fifo.put_nowait(v),
            Kind::Lifo => lifo.put_nowait(v),
            Kind::Priority => prio.put_nowait(v),
        };
        let get = || match kind {
            Kind::Fifo => fifo.get_nowait(),
            Kind::Lifo => lifo.get_nowait(),
            Kind::Priority => prio.get_nowait(),
        };
        let peek = || match kind {
            Kind::Fifo => fifo.peek_nowait(),
            Kind::Lifo => lifo.peek_nowait(),
            Kind::Priority => prio.peek_nowait(),
        };
        let q_len = || match kind {
            Kind::Fifo => fifo.len(),
            Kind::Lifo => lifo.len(),
            Kind::Priority => prio.len(),
        };
        let mut m = Model {
            kind,
            items: Vec::new(),
            maxsize,
            unfinished: 0,
            shutdown: false,
        };
        for op in ops {
            match *op {
                NowaitOp::Put(v) => {
                    let expect = if m.shutdown {
                        Err(TryPutError::ShutDown(v))
                    } else if m.maxsize.is_some_and(|n| m.items.len() >= n) {
                        Err(TryPutError::Full(v))
                    } else {
                        m.items.push(v);
                        m.unfinished += 1;
                        Ok(())
                    };
                    assert_eq!(put(v), expect);
                }
                NowaitOp::Get => {
                    let expect = match m.take_index() {
                        Some(i) => Ok(m.items.remove(i)),
                        None if m.shutdown => Err(TryGetError::ShutDown),
                        None => Err(TryGetError::Empty),
                    };
                    assert_eq!(get(), expect);
                }
                NowaitOp::Peek => {
                    let expect = match m.take_index() {
                        Some(i) => Ok(m.items[i]),
                        None if m.shutdown => Err(TryGetError::ShutDown),
                        None => Err(TryGetError::Empty),
                    };
                    assert_eq!(peek(), expect);
                }
                NowaitOp::TaskDone => {
                    let r = match kind {
                        Kind::Fifo => fifo.task_done(),
                        Kind::Lifo => lifo.task_done(),
                        Kind::Priority => prio.task_done(),
                    };
                    assert_eq!(r.is_ok(), m.unfinished > 0);
                    m.unfinished = m.unfinished.saturating_sub(1);
                }
                NowaitOp::Shutdown => {
                    match kind {
                        Kind::Fifo => fifo.shutdown(),
                        Kind::Lifo => lifo.shutdown(),
                        Kind::Priority => prio.shutdown(),
                    }
                    m.shutdown = true;
                }
            }
            assert_eq!(q_len(), m.items.len());
        }
        let unfinished = match kind {
            Kind::Fifo => fifo.unfinished_tasks(),
            Kind::Lifo => lifo.unfinished_tasks(),
            Kind::Priority => prio.unfinished_tasks(),
        };
        assert_eq!(unfinished, m.unfinished);
        common::quiet();
    });
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn nowait_ops_match_the_model(
        kind in prop_oneof![Just(Kind::Fifo), Just(Kind::Lifo), Just(Kind::Priority)],
        maxsize in prop_oneof![Just(None), (1usize..5).prop_map(Some)],
        ops in prop::collection::vec(nowait_op(), 1..60),
    ) {
        run_nowait(kind, maxsize, &ops);
    }
}

// ------------------------------------- blocking, with kills and timeouts

#[derive(Debug, Clone)]
enum Op {
    /// A greenlet putting the next value (blocking, or with a timeout).
    Putter(Option<u8>),
    /// A greenlet getting (blocking, or with a timeout in ms).
    Getter(Option<u8>),
    /// Kill the i-th greenlet spawned so far (mod count), without waiting.
    Kill(usize),
    PutNowait,
    GetNowait,
    /// One loop turn, or a short sleep.
    Turn,
    Sleep(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::option::of(0u8..4).prop_map(Op::Putter),
        3 => prop::option::of(0u8..4).prop_map(Op::Getter),
        2 => any::<usize>().prop_map(Op::Kill),
        1 => Just(Op::PutNowait),
        1 => Just(Op::GetNowait),
        2 => Just(Op::Turn),
        1 => (0u8..4).prop_map(Op::Sleep),
    ]
}

/// Shared records: what each greenlet reported.
#[derive(Default)]
struct Records {
    put_ok: RefCell<Vec<u32>>,
    put_err: RefCell<Vec<u32>>,
    got: RefCell<Vec<u32>>,
}

fn ms(n: u8) -> Duration {
    Duration::from_millis(u64::from(n))
}

/// Either a queue or a channel behind one interface.
trait Target: Clone + 'static {
    /// A putter killed while blocked never delivers (a queue); for a
    /// channel, a putter killed after a getter took its item has
    /// delivered it (the rendezvous happened) without seeing `Ok`.
    const KILLED_PUTTER_NEVER_DELIVERS: bool;
    fn put(&self, v: u32, timeout: Option<Duration>) -> bool;
    fn get(&self, timeout: Option<Duration>) -> Option<u32>;
    fn put_nowait(&self, v: u32) -> bool;
    fn get_nowait(&self) -> Option<u32>;
    fn waiters(&self) -> usize;
    /// After every greenlet is gone: everything still inside, and checks.
    fn drain_and_check(&self, put_ok: usize) -> Vec<u32>;
}

impl Target for Queue<u32> {
    const KILLED_PUTTER_NEVER_DELIVERS: bool = true;
    fn put(&self, v: u32, timeout: Option<Duration>) -> bool {
        match timeout {
            Some(t) => Queue::put_timeout(self, v, t).is_ok(),
            None => Queue::put(self, v).is_ok(),
        }
    }
    fn get(&self, timeout: Option<Duration>) -> Option<u32> {
        match timeout {
            Some(t) => Queue::get_timeout(self, t).ok(),
            None => Queue::get(self).ok(),
        }
    }
    fn put_nowait(&self, v: u32) -> bool {
        Queue::put_nowait(self, v).is_ok()
    }
    fn get_nowait(&self) -> Option<u32> {
        Queue::get_nowait(self).ok()
    }
    fn waiters(&self) -> usize {
        self.getters() + self.putters()
    }
    fn drain_and_check(&self, put_ok: usize) -> Vec<u32> {
        assert_eq!(self.unfinished_tasks(), put_ok);
        let left: Vec<u32> = std::iter::from_fn(|| Queue::get_nowait(self).ok()).collect();
        for _ in 0..put_ok {
            self.task_done().unwrap();
        }
        assert_eq!(self.unfinished_tasks(), 0);
        assert!(!self.full() || self.maxsize().is_none());
        left
    }
}

impl Target for Channel<u32> {
    const KILLED_PUTTER_NEVER_DELIVERS: bool = false;
    fn put(&self, v: u32, timeout: Option<Duration>) -> bool {
        match timeout {
            Some(t) => Channel::put_timeout(self, v, t).is_ok(),
            None => Channel::put(self, v).is_ok(),
        }
    }
    fn get(&self, timeout: Option<Duration>) -> Option<u32> {
        match timeout {
            Some(t) => Channel::get_timeout(self, t).ok(),
            None => Channel::get(self).ok(),
        }
    }
    fn put_nowait(&self, v: u32) -> bool {
        Channel::put_nowait(self, v).is_ok()
    }
    fn get_nowait(&self) -> Option<u32> {
        Channel::get_nowait(self).ok()
    }
    fn waiters(&self) -> usize {
        self.balance().unsigned_abs()
    }
    fn drain_and_check(&self, _put_ok: usize) -> Vec<u32> {
        // Only items given back by killed getters can remain on offer.
        std::iter::from_fn(|| Channel::get_nowait(self).ok()).collect()
    }
}

fn run_blocking<Q: Target>(q: Q, ops: &[Op]) {
    let rec = Rc::new(Records::default());
    let mut next = 0u32;
    let mut gs: Vec<Greenlet<()>> = Vec::new();
    for op in ops {
        match *op {
            Op::Putter(t) => {
                let (q, rec, v) = (q.clone(), rec.clone(), next);
                next += 1;
                gs.push(spawn(move || {
                    if q.put(v, t.map(ms)) {
                        rec.put_ok.borrow_mut().push(v);
                    } else {
                        rec.put_err.borrow_mut().push(v);
                    }
                }));
            }
            Op::Getter(t) => {
                let (q, rec) = (q.clone(), rec.clone());
                gs.push(spawn(move || {
                    if let Some(v) = q.get(t.map(ms)) {
                        rec.got.borrow_mut().push(v);
                    }
                }));
            }
            Op::Kill(i) if !gs.is_empty() => {
                let g = &gs[i % gs.len()];
                g.kill_with_options(KillOptions::new().nowait()).unwrap();
            }
            Op::Kill(_) => {}
            Op::PutNowait => {
                let v = next;
                next += 1;
                if q.put_nowait(v) {
                    rec.put_ok.borrow_mut().push(v);
                }
            }
            Op::GetNowait => {
                if let Some(v) = q.get_nowait() {
                    rec.got.borrow_mut().push(v);
                }
            }
            Op::Turn => sleep(ZERO),
            Op::Sleep(n) => sleep(ms(n)),
        }
    }
    // End: kill what still waits, then account for every item.
    greenlet::killall(&gs).unwrap();
    let put_ok = rec.put_ok.borrow().clone();
    let mut delivered = rec.got.borrow().clone();
    delivered.extend(q.drain_and_check(put_ok.len()));
    assert_eq!(q.waiters(), 0, "no waiter left behind");
    let mut sorted = delivered.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), delivered.len(), "no item delivered twice");
    for v in &put_ok {
        assert!(sorted.contains(v), "{v} was put but never delivered");
    }
    for v in rec.put_err.borrow().iter() {
        assert!(
            !sorted.contains(v),
            "{v}: its put failed, yet it was delivered"
        );
    }
    if Q::KILLED_PUTTER_NEVER_DELIVERS {
        let mut expected = put_ok.clone();
        expected.sort_unstable();
        assert_eq!(sorted, expected, "every item put is delivered exactly once");
    }
    common::quiet();
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn queue_survives_random_kills_and_timeouts(
        maxsize in prop_oneof![Just(0usize), 1usize..4],
        ops in prop::collection::vec(op(), 1..40),
    ) {
        greenlet::run(|| run_blocking(Queue::<u32>::bounded(maxsize), &ops));
    }

    #[test]
    fn channel_survives_random_kills_and_timeouts(
        ops in prop::collection::vec(op(), 1..40),
    ) {
        greenlet::run(|| run_blocking(Channel::<u32>::new(), &ops));
    }
}

// ------------------------------------------------------------------ pool

#[derive(Debug, Clone)]
enum PoolOp {
    /// A greenlet spawning a job of this many ms (maybe with a spawn timeout).
    Spawn(u8, Option<u8>),
    Kill(usize),
    Turn,
    Sleep(u8),
}

fn pool_op() -> impl Strategy<Value = PoolOp> {
    prop_oneof![
        4 => (0u8..4, prop::option::of(0u8..3)).prop_map(|(d, t)| PoolOp::Spawn(d, t)),
        2 => any::<usize>().prop_map(PoolOp::Kill),
        2 => Just(PoolOp::Turn),
        1 => (0u8..3).prop_map(PoolOp::Sleep),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn pool_never_exceeds_its_size_and_frees_every_slot(
        size in 1usize..4,
        ops in prop::collection::vec(pool_op(), 1..40),
    ) {
        greenlet::run(|| {
            let pool = Pool::new(size);
            let running = Rc::new(Cell::new(0usize));
            let peak = Rc::new(Cell::new(0usize));
            let mut gs: Vec<Greenlet<()>> = Vec::new();
            for op in &ops {
                match *op {
                    PoolOp::Spawn(d, t) => {
                        let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
                        gs.push(spawn(move || {
                            let job = move || {
                                running.set(running.get() + 1);
                                peak.set(peak.get().max(running.get()));
                                struct Dec(Rc<Cell<usize>>);
                                impl Drop for Dec {
                                    fn drop(&mut self) { self.0.set(self.0.get() - 1); }
                                }
                                let _dec = Dec(running);
                                sleep(ms(d));
                            };
                            let _ = match t {
                                Some(t) => pool.spawn_timeout(job, ms(t)),
                                None => pool.spawn(job),
                            };
                        }));
                    }
                    PoolOp::Kill(i) if !gs.is_empty() => {
                        let g = &gs[i % gs.len()];
                        g.kill_with_options(KillOptions::new().nowait()).unwrap();
                    }
                    PoolOp::Kill(_) => {}
                    PoolOp::Turn => sleep(ZERO),
                    PoolOp::Sleep(n) => sleep(ms(n)),
                }
                assert!(running.get() <= size);
                assert!(pool.len() <= size);
                assert!(pool.len() + pool.free_count() <= size);
            }
            greenlet::killall(&gs).unwrap();
            pool.join(Some(Duration::from_secs(5)), false).unwrap();
            assert!(peak.get() <= size);
            assert_eq!(running.get(), 0);
            assert_eq!((pool.len(), pool.free_count()), (0, size));
            common::quiet();
        });
    }
}

/// The model of the blocking tests, replayed once by hand: FIFO over a
/// fixed schedule (a sanity check that the proptest harness itself works).
#[test]
fn fixed_schedule_is_fifo() {
    greenlet::run(|| {
        let q = Queue::<u32>::bounded(2);
        let mut model = VecDeque::new();
        for v in 0..2 {
            q.put(v).unwrap();
            model.push_back(v);
        }
        let putter = {
            let q = q.clone();
            spawn(move || q.put(2).unwrap())
        };
        sleep(ZERO);
        model.push_back(2);
        let got: Vec<u32> = (0..3).map(|_| q.get().unwrap()).collect();
        putter.join().unwrap();
        assert_eq!(got, Vec::from(model));
        common::quiet();
    });
}

// --------------------------------------------------------- thread_channel

#[derive(Debug, Clone)]
enum ThreadOp {
    /// A greenlet receiving once (blocking, or with a timeout in ms).
    Receiver(Option<u8>),
    /// Kill the i-th receiver greenlet (mod count), without waiting.
    Kill(usize),
    /// Send the next value from the test's own stack.
    Send,
    /// An OS thread sending the next `n` values (joined at the end).
    Thread(u8),
    Turn,
    Sleep(u8),
}

fn thread_op() -> impl Strategy<Value = ThreadOp> {
    prop_oneof![
        3 => prop::option::of(0u8..4).prop_map(ThreadOp::Receiver),
        2 => any::<usize>().prop_map(ThreadOp::Kill),
        2 => Just(ThreadOp::Send),
        1 => (1u8..5).prop_map(ThreadOp::Thread),
        2 => Just(ThreadOp::Turn),
        1 => (0u8..3).prop_map(ThreadOp::Sleep),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..config() })]

    #[test]
    fn thread_channel_delivers_exactly_once_under_kills_and_timeouts(
        ops in prop::collection::vec(thread_op(), 1..30),
    ) {
        use greenlet::queue::{TryRecvError, thread_channel};
        greenlet::run(|| {
            let (tx, rx) = thread_channel::<u32>();
            let rx = Rc::new(rx);
            let got = Rc::new(RefCell::new(Vec::new()));
            let mut next = 0u32;
            let mut receivers: Vec<Greenlet<()>> = Vec::new();
            let mut threads = Vec::new();
            for op in &ops {
                match *op {
                    ThreadOp::Receiver(t) => {
                        let (rx, got) = (rx.clone(), got.clone());
                        receivers.push(spawn(move || {
                            let r = match t {
                                Some(t) => rx.recv_timeout(ms(t)).ok(),
                                None => rx.recv().ok(),
                            };
                            if let Some(v) = r {
                                got.borrow_mut().push(v);
                            }
                        }));
                    }
                    ThreadOp::Kill(i) if !receivers.is_empty() => {
                        let g = &receivers[i % receivers.len()];
                        g.kill_with_options(KillOptions::new().nowait()).unwrap();
                    }
                    ThreadOp::Kill(_) => {}
                    ThreadOp::Send => {
                        tx.send(next).unwrap();
                        next += 1;
                    }
                    ThreadOp::Thread(n) => {
                        let (tx, first) = (tx.clone(), next);
                        next += u32::from(n);
                        threads.push(std::thread::spawn(move || {
                            for v in first..first + u32::from(n) {
                                tx.send(v).unwrap();
                            }
                        }));
                    }
                    ThreadOp::Turn => sleep(ZERO),
                    ThreadOp::Sleep(n) => sleep(ms(n)),
                }
            }
            for t in threads {
                t.join().unwrap();
            }
            drop(tx); // every sender gone: blocked receivers end
            greenlet::joinall(&receivers).unwrap();
            let mut all = got.borrow().clone();
            all.extend(std::iter::from_fn(|| rx.try_recv().ok()));
            assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
            all.sort_unstable();
            assert_eq!(all, (0..next).collect::<Vec<_>>(), "each value exactly once");
            common::quiet();
        });
    }
}
