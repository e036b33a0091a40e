//! Ports of gevent's `src/gevent/tests/test__queue.py` to the Rust API
//! (`greenlet::queue`). Each test names the gevent test it ports.
//!
//! Not ported (no equivalent in a typed API): `test_subscript`,
//! `test_init_and_bottleneck_methods`, `test_subclass_assign_queue`,
//! `test_weak_reference`, `test_iterable` (a `StopIteration` item), the
//! `Channel.full()`/`empty()` checks (a channel stores nothing: see
//! `Channel::balance`). `Queue` hands an item straight to the first waiting
//! getter (gevent stores it and wakes the getter, which takes it later), so
//! nobody can take an item meant for a waiting getter.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use common::{Log, TICK, assert_tick, quiet, timed};
use greenlet::event::AsyncResult;
use greenlet::hub;
use greenlet::queue::{
    Channel, GetError, JoinableQueue, LifoQueue, PriorityQueue, PutError, Queue, TryGetError,
    TryPutError,
};
use greenlet::{Timeout, WaitError, joinall, sleep, spawn};

const ZERO: Duration = Duration::ZERO;
const MS: Duration = Duration::from_millis(1);
type Ar = AsyncResult<&'static str>;
/// What `put_nowait` calls made from the hub returned.
type Puts = Rc<RefCell<Vec<Result<(), TryPutError<i32>>>>>;

#[derive(Debug)]
struct RuntimeError;
impl std::fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RuntimeError")
    }
}
impl std::error::Error for RuntimeError {}

// ------------------------------------------------- UsesOnlyOneItemMixin

/// `test__queue.py::UsesOnlyOneItemMixin::test_put_nowait_simple` (Queue):
/// `put_nowait` from the hub's callbacks: the first fits, the second is
/// `Full`.
#[greenlet::test]
fn test_put_nowait_simple() {
    let q = Queue::bounded(1);
    let result: Puts = Rc::default();
    for item in [2, 3] {
        let (q, result) = (q.clone(), result.clone());
        hub::run_callback(move || result.borrow_mut().push(q.put_nowait(item)));
    }
    sleep(ZERO);
    assert_eq!(*result.borrow(), [Ok(()), Err(TryPutError::Full(3))]);
    quiet();
}

/// `test__queue.py::TestChannel::test_put_nowait_simple`: a channel with no
/// getter accepts nothing, even from the hub.
#[greenlet::test]
fn test_put_nowait_simple_channel() {
    let q = Channel::new();
    let result: Puts = Rc::default();
    for item in [2, 3] {
        let (q, result) = (q.clone(), result.clone());
        hub::run_callback(move || result.borrow_mut().push(q.put_nowait(item)));
    }
    sleep(ZERO);
    assert_eq!(
        *result.borrow(),
        [Err(TryPutError::Full(2)), Err(TryPutError::Full(3))]
    );
    quiet();
}

/// `test__queue.py::UsesOnlyOneItemMixin::test_put_nowait_unlock`:
/// `put_nowait` from the main loop wakes a blocked getter.
#[greenlet::test]
fn test_put_nowait_unlock() {
    let q = Queue::new();
    let p = {
        let q = q.clone();
        spawn(move || q.get().unwrap())
    };
    assert!(q.empty() && !q.full());
    sleep(MS);
    assert!(q.empty() && !q.full());
    let result = Rc::new(RefCell::new(Vec::new()));
    {
        let (q, result) = (q.clone(), result.clone());
        hub::run_callback(move || result.borrow_mut().push(q.put_nowait(10)));
    }
    assert!(!p.is_ready());
    sleep(MS);
    assert_eq!(*result.borrow(), [Ok(())]);
    assert!(p.is_ready());
    assert_eq!(p.get().unwrap(), 10);
    assert!(q.empty() && !q.full());
    quiet();
}

/// `test__queue.py::TestChannel::test_put_nowait_unlock`: the same through
/// a channel.
#[greenlet::test]
fn test_put_nowait_unlock_channel() {
    let q = Channel::new();
    let p = {
        let q = q.clone();
        spawn(move || q.get().unwrap())
    };
    sleep(MS);
    assert_eq!(q.balance(), -1);
    let result = Rc::new(RefCell::new(Vec::new()));
    {
        let (q, result) = (q.clone(), result.clone());
        hub::run_callback(move || result.borrow_mut().push(q.put_nowait(10)));
    }
    assert!(!p.is_ready());
    sleep(MS);
    assert_eq!(*result.borrow(), [Ok(())]);
    assert!(p.is_ready());
    assert_eq!(p.get().unwrap(), 10);
    assert_eq!(q.balance(), 0);
    quiet();
}

fn send_last<Q: Clone + 'static>(
    q: Q,
    get: impl Fn(&Q) -> &'static str + 'static,
    put: impl Fn(&Q, &'static str),
) {
    let p = {
        let q = q.clone();
        spawn(move || {
            Timeout::run(Duration::from_millis(100), || assert_eq!(get(&q), "hi2")).unwrap();
            "OK"
        })
    };
    sleep(Duration::from_millis(10));
    put(&q, "hi2");
    sleep(Duration::from_millis(10));
    assert_eq!(p.try_get().unwrap().unwrap(), "OK");
}

/// `test__queue.py::UsesOnlyOneItemMixin::test_send_last` (Queue and
/// Channel): a getter blocked first receives the item put later.
#[greenlet::test]
fn test_send_last() {
    send_last(Queue::new(), |q| q.get().unwrap(), |q, v| q.put(v).unwrap());
    send_last(
        Channel::new(),
        |q| q.get().unwrap(),
        |q, v| q.put(v).unwrap(),
    );
    quiet();
}

// ------------------------------------------------------ TestSimpleQueue

/// `test__queue.py::TestSimpleQueue::test_get_nowait_simple`: `get_nowait`
/// from the hub: the stored item, then `Empty`.
#[greenlet::test]
fn test_get_nowait_simple() {
    let q = Queue::bounded(1);
    q.put(4).unwrap();
    let result = Rc::new(RefCell::new(Vec::new()));
    for _ in 0..2 {
        let (q, result) = (q.clone(), result.clone());
        hub::run_callback(move || result.borrow_mut().push(q.get_nowait()));
    }
    sleep(ZERO);
    assert_eq!(*result.borrow(), [Ok(4), Err(TryGetError::Empty)]);
    quiet();
}

/// `test__queue.py::TestSimpleQueue::test_get_nowait_unlock`: `get_nowait`
/// from the hub on a full queue.
#[greenlet::test]
fn test_get_nowait_unlock() {
    let q = Queue::bounded(1);
    let p = {
        let q = q.clone();
        spawn(move || q.put(5).unwrap())
    };
    assert!(q.empty());
    sleep(ZERO);
    assert!(q.full());
    let result = Rc::new(RefCell::new(Vec::new()));
    {
        let (q, result) = (q.clone(), result.clone());
        hub::run_callback(move || result.borrow_mut().push(q.get_nowait()));
    }
    sleep(ZERO);
    assert!(q.empty());
    assert_eq!(*result.borrow(), [Ok(5)]);
    assert!(p.is_ready() && p.is_dead());
    quiet();
}

/// `test__queue.py::TestChannel::test_get_nowait_unlock_channel`:
/// `get_nowait` from the hub takes a blocked putter's item and releases it.
#[greenlet::test]
fn test_get_nowait_unlock_channel() {
    let q = Channel::new();
    let p = {
        let q = q.clone();
        spawn(move || q.put(5).unwrap())
    };
    sleep(MS);
    assert_eq!(q.balance(), 1);
    let result = Rc::new(RefCell::new(Vec::new()));
    {
        let (q, result) = (q.clone(), result.clone());
        hub::run_callback(move || result.borrow_mut().push(q.get_nowait()));
    }
    sleep(MS);
    assert_eq!(*result.borrow(), [Ok(5)]);
    assert!(p.is_ready() && p.is_dead());
    assert_eq!(q.balance(), 0);
    quiet();
}

/// `test__queue.py::TestSimpleQueue::test_send_first`: put, peek, get
/// without switching.
#[greenlet::test]
fn test_send_first() {
    let q = Queue::new();
    q.put("hi").unwrap();
    assert_eq!(q.peek().unwrap(), "hi");
    assert_eq!(q.get().unwrap(), "hi");
    quiet();
}

/// `test__queue.py::TestSimpleQueue::test_peek_empty`: `peek` on the main
/// greenlet with nothing that could put is `LoopExit`; in a greenlet a
/// timed peek is `Empty` (here `Elapsed`).
#[greenlet::test]
fn test_peek_empty() {
    let q = Queue::<i32>::new();
    assert!(matches!(
        q.peek(),
        Err(GetError::Wait(WaitError::LoopExit(_)))
    ));
    let g = {
        let q = q.clone();
        spawn(move || q.peek_timeout(Duration::from_millis(10)))
    };
    sleep(Duration::from_millis(100));
    assert!(g.get().unwrap().unwrap_err().is_elapsed());
    quiet();
}

/// `test__queue.py::TestSimpleQueue::test_peek_multi_greenlet`: a blocked
/// peeker sees the item, which stays in the queue.
#[greenlet::test]
fn test_peek_multi_greenlet() {
    let q = Queue::new();
    let g = {
        let q = q.clone();
        spawn(move || q.peek())
    };
    sleep(ZERO);
    q.put(1).unwrap();
    assert_eq!(g.get().unwrap().unwrap(), 1);
    assert_eq!(q.peek().unwrap(), 1);
    quiet();
}

/// `test__queue.py::TestSimpleQueue::test_max_size`: a putter blocks at
/// `maxsize` and resumes, exactly once per `get`, in order.
#[greenlet::test]
fn test_max_size() {
    let q = Queue::bounded(2);
    let results = Log::new();
    let p = {
        let (q, results) = (q.clone(), results.clone());
        spawn(move || {
            for item in ["a", "b", "c"] {
                q.put(item).unwrap();
                results.push(item);
            }
            "OK"
        })
    };
    sleep(ZERO);
    assert_eq!(results.entries(), ["a", "b"]);
    assert_eq!(q.get().unwrap(), "a");
    sleep(ZERO);
    assert_eq!(results.entries(), ["a", "b", "c"]);
    assert_eq!(q.get().unwrap(), "b");
    assert_eq!(q.get().unwrap(), "c");
    assert_eq!(p.try_get().unwrap().unwrap(), "OK");
    quiet();
}

/// `test__queue.py::TestSimpleQueue::test_multiple_waiters`: every blocked
/// getter gets one item, one per put.
#[greenlet::test]
fn test_multiple_waiters() {
    let q = Queue::new();
    let sendings = ["1", "2", "3", "4"];
    let evts: Vec<AsyncResult<&str>> = sendings.iter().map(|_| Ar::new()).collect();
    for e in &evts {
        let (q, e) = (q.clone(), e.clone());
        spawn(move || e.set(q.get().unwrap()));
    }
    sleep(Duration::from_millis(10));
    let results = RefCell::new(std::collections::BTreeSet::new());
    let collect = || {
        for e in &evts {
            if let Ok(Ok(x)) = Timeout::run(MS, || e.get()) {
                results.borrow_mut().insert(x);
            }
        }
        results.borrow().len()
    };
    q.put(sendings[0]).unwrap();
    assert_eq!(collect(), 1);
    q.put(sendings[1]).unwrap();
    assert_eq!(collect(), 2);
    q.put(sendings[2]).unwrap();
    q.put(sendings[3]).unwrap();
    assert_eq!(collect(), 4);
    assert_eq!(
        results.into_inner().into_iter().collect::<Vec<_>>(),
        sendings
    );
    quiet();
}

/// `do_receive` of test__queue.py: a `get` under `Timeout(0, RuntimeError())`.
fn do_receive(q: Queue<&'static str>, evt: AsyncResult<&'static str>) {
    match Timeout::with_error(ZERO, RuntimeError).scope(|| q.get()) {
        Ok(result) => evt.set(result.unwrap()),
        Err(elapsed) => {
            assert!(elapsed.error().unwrap().is::<RuntimeError>());
            evt.set("timed out");
        }
    }
}

/// `test__queue.py::TestSimpleQueue::test_waiters_that_cancel`: a getter
/// timed out takes nothing; the next put is there for a later get.
#[greenlet::test]
fn test_waiters_that_cancel() {
    let q = Queue::new();
    let evt = Ar::new();
    {
        let (q, evt) = (q.clone(), evt.clone());
        spawn(move || do_receive(q, evt));
    }
    assert_eq!(evt.get().unwrap(), "timed out");
    q.put("hi").unwrap();
    assert_eq!(q.get().unwrap(), "hi");
    quiet();
}

/// `test__queue.py::TestSimpleQueue::test_senders_that_die`.
#[greenlet::test]
fn test_senders_that_die() {
    let q = Queue::new();
    {
        let q = q.clone();
        spawn(move || q.put("sent").unwrap());
    }
    assert_eq!(q.get().unwrap(), "sent");
    quiet();
}

/// `test__queue.py::TestSimpleQueue::test_two_waiters_one_dies`: the item
/// goes to the getter still waiting.
#[greenlet::test]
fn test_two_waiters_one_dies() {
    let q = Queue::new();
    let dying = Ar::new();
    let waiting = Ar::new();
    {
        let (q, e) = (q.clone(), dying.clone());
        spawn(move || do_receive(q, e));
    }
    {
        let (q, e) = (q.clone(), waiting.clone());
        spawn(move || e.set(q.get().unwrap()));
    }
    sleep(Duration::from_millis(100));
    q.put("hi").unwrap();
    assert_eq!(dying.get().unwrap(), "timed out");
    assert_eq!(waiting.get().unwrap(), "hi");
    quiet();
}

/// `test__queue.py::TestSimpleQueue::test_two_bogus_waiters`: both getters
/// timed out, the item stays in the queue.
#[greenlet::test]
fn test_two_bogus_waiters() {
    let q = Queue::new();
    let (e1, e2) = (Ar::new(), Ar::new());
    for e in [&e1, &e2] {
        let (q, e) = (q.clone(), e.clone());
        spawn(move || do_receive(q, e));
    }
    sleep(Duration::from_millis(100));
    q.put("sent").unwrap();
    assert_eq!(e1.get().unwrap(), "timed out");
    assert_eq!(e2.get().unwrap(), "timed out");
    assert_eq!(q.get().unwrap(), "sent");
    quiet();
}

// ------------------------------------------------------------ TestChannel

/// `test__queue.py::TestChannel::test_zero_max_size`: a channel's putter
/// blocks until a getter takes the item.
#[greenlet::test]
fn test_zero_max_size() {
    let q = Channel::new();
    let (e1, e2) = (Ar::new(), Ar::new());
    let p1 = {
        let (q, e1) = (q.clone(), e1.clone());
        spawn(move || {
            q.put("hi").unwrap();
            e1.set("done");
        })
    };
    sleep(MS);
    assert!(!e1.is_ready());
    let p2 = {
        let (q, e2) = (q.clone(), e2.clone());
        spawn(move || e2.set(q.get().unwrap()))
    };
    assert_eq!(e2.get().unwrap(), "hi");
    assert_eq!(e1.get().unwrap(), "done");
    Timeout::run(ZERO, || joinall([&p1, &p2]).unwrap()).unwrap();
    quiet();
}

/// `test__queue.py::TestChannel::test_send`: `put` returns only after the
/// getter took the item and ran: the exact interleaving.
#[greenlet::test]
fn test_send() {
    let channel = Channel::new();
    let events = Log::new();
    let g = {
        let (channel, events) = (channel.clone(), events.clone());
        spawn(move || {
            events.push(channel.get().unwrap());
            events.push(channel.get().unwrap());
        })
    };
    events.push("sending");
    channel.put("hello").unwrap();
    events.push("sent hello");
    channel.put("world").unwrap();
    events.push("sent world");
    assert_eq!(
        events.entries(),
        ["sending", "hello", "sent hello", "world", "sent world"]
    );
    g.get().unwrap();
    quiet();
}

/// `test__queue.py::TestChannel::test_wait`: the putter resumes after the
/// getter ran: the exact interleaving.
#[greenlet::test]
fn test_wait() {
    let channel = Channel::new();
    let events = Log::new();
    let g = {
        let (channel, events) = (channel.clone(), events.clone());
        spawn(move || {
            events.push("sending hello");
            channel.put("hello").unwrap();
            events.push("sending world");
            channel.put("world").unwrap();
            events.push("sent world");
        })
    };
    events.push("waiting");
    events.push(channel.get().unwrap());
    events.push(channel.get().unwrap());
    assert_eq!(
        events.entries(),
        [
            "waiting",
            "sending hello",
            "hello",
            "sending world",
            "world"
        ]
    );
    sleep(ZERO);
    assert_eq!(
        events.entries(),
        [
            "waiting",
            "sending hello",
            "hello",
            "sending world",
            "world",
            "sent world"
        ]
    );
    g.get().unwrap();
    quiet();
}

// -------------------------------------------------------------- TestQueue

/// `test__queue.py::TestQueue::test_task_done`.
#[greenlet::test]
fn test_task_done() {
    let channel = JoinableQueue::new();
    {
        let c = channel.clone();
        spawn(move || c.put("X").unwrap());
    }
    assert_eq!(channel.get().unwrap(), "X");
    assert_eq!(channel.unfinished_tasks(), 1);
    channel.task_done().unwrap();
    assert_eq!(channel.unfinished_tasks(), 0);
    quiet();
}

/// `test__queue.py::TestQueue::test_shutdown_all_methods_in_one_thread`
/// (`shutdown(immediate=False)`).
#[greenlet::test]
fn test_shutdown_all_methods_in_one_thread() {
    let q = Queue::new();
    q.put('L').unwrap();
    q.put_nowait('O').unwrap();
    q.shutdown();
    assert!(matches!(q.put('E'), Err(PutError::ShutDown('E'))));
    assert_eq!(q.put_nowait('W'), Err(TryPutError::ShutDown('W')));
    assert_eq!(q.get().unwrap(), 'L');
    q.task_done().unwrap();
    assert_eq!(q.get().unwrap(), 'O');
    q.task_done().unwrap();
    q.join().unwrap();
    assert!(matches!(q.get(), Err(GetError::ShutDown)));
    assert_eq!(q.get_nowait(), Err(TryGetError::ShutDown));
    assert!(matches!(
        q.get_timeout(Duration::from_secs(1)),
        Err(GetError::ShutDown)
    ));
    quiet();
}

/// `test__queue.py::TestQueue::test_shutdown_immediate_all_methods_in_one_thread`
/// (`shutdown(immediate=True)`: the items are dropped, and so are their
/// unfinished tasks).
#[greenlet::test]
fn test_shutdown_immediate_all_methods_in_one_thread() {
    let q = Queue::new();
    q.put('L').unwrap();
    q.put_nowait('O').unwrap();
    q.shutdown_immediate();
    assert!(matches!(q.put('E'), Err(PutError::ShutDown('E'))));
    assert_eq!(q.put_nowait('W'), Err(TryPutError::ShutDown('W')));
    assert!(matches!(q.get(), Err(GetError::ShutDown)));
    assert_eq!(q.get_nowait(), Err(TryGetError::ShutDown));
    assert!(q.task_done().is_err());
    q.join().unwrap();
    quiet();
}

/// `test__queue.py::TestQueue::test_issue_45`: `join` with nothing put
/// returns at once, without switching.
#[greenlet::test]
fn test_issue_45() {
    let q = JoinableQueue::<u8>::new();
    let other = spawn(|| ());
    q.join().unwrap();
    assert!(!other.is_ready(), "join switched");
    quiet();
}

// --------------------------------------- TestGetInterrupt / TestPutInterrupt

/// `timing.py::AbstractGenericGetTestCase` for one blocking call `wait`.
fn generic_get(wait: impl Fn(Option<Duration>) -> bool) {
    // test_raises_timeout_number: the call's own timeout.
    let (elapsed, took) = timed(|| wait(Some(TICK)));
    assert!(elapsed, "the call's own timeout must report Elapsed");
    assert_tick("timed call", took);
    // test_raises_timeout_Timeout: a Timeout around the blocking call.
    let (r, took) = timed(|| Timeout::new(TICK).scope(|| wait(None)));
    let e = r.unwrap_err();
    assert_eq!(e.duration(), Some(TICK));
    assert_tick("Timeout around the call", took);
    // test_raises_timeout_Timeout_exc_customized.
    let (r, took) = timed(|| Timeout::with_error(TICK, RuntimeError).scope(|| wait(None)));
    assert!(r.unwrap_err().error().unwrap().is::<RuntimeError>());
    assert_tick("custom Timeout around the call", took);
    // test_outer_timeout_is_not_lost: an outer 1 ms timeout interrupts a
    // call waiting with its own 1 s timeout, and it is the outer one.
    let (r, took) = timed(|| {
        Timeout::new(MS)
            .unref()
            .scope(|| wait(Some(Duration::from_secs(1))))
    });
    assert_eq!(r.unwrap_err().duration(), Some(MS));
    assert!(took < Duration::from_millis(500), "{took:?}");
}

/// `test__queue.py::TestGetInterrupt*` (Queue, JoinableQueue, LifoQueue,
/// PriorityQueue, Channel): `AbstractGenericGetTestCase` on `get`.
#[greenlet::test]
fn test_get_interrupt() {
    let q = Queue::<u8>::new();
    generic_get(|t| match t {
        Some(t) => q.get_timeout(t).unwrap_err().is_elapsed(),
        None => q.get().is_err(),
    });
    let q = LifoQueue::<u8>::new();
    generic_get(|t| match t {
        Some(t) => q.get_timeout(t).unwrap_err().is_elapsed(),
        None => q.get().is_err(),
    });
    let q = PriorityQueue::<u8>::new();
    generic_get(|t| match t {
        Some(t) => q.get_timeout(t).unwrap_err().is_elapsed(),
        None => q.get().is_err(),
    });
    let q = Channel::<u8>::new();
    generic_get(|t| match t {
        Some(t) => q.get_timeout(t).unwrap_err().is_elapsed(),
        None => q.get().is_err(),
    });
    assert_eq!((q.balance(), 0), (0, 0));
    quiet();
}

/// `test__queue.py::TestPutInterrupt*`: `AbstractGenericGetTestCase` on a
/// `put` to a full queue (a channel with no getter); the queue is unchanged.
#[greenlet::test]
fn test_put_interrupt() {
    let q = Queue::bounded(1);
    q.put(1).unwrap();
    generic_get(|t| match t {
        Some(t) => matches!(
            q.put_timeout(2, t),
            Err(PutError::Wait(2, WaitError::Elapsed(_)))
        ),
        None => q.put(2).is_err(),
    });
    assert_eq!(q.get_nowait(), Ok(1));
    assert_eq!(q.get_nowait(), Err(TryGetError::Empty));
    let q = Channel::new();
    generic_get(|t| match t {
        Some(t) => matches!(
            q.put_timeout(2, t),
            Err(PutError::Wait(2, WaitError::Elapsed(_)))
        ),
        None => q.put(2).is_err(),
    });
    assert_eq!(q.balance(), 0);
    assert_eq!(q.get_nowait(), Err(TryGetError::Empty));
    quiet();
}
