//! Ports of gevent's `src/gevent/tests/test__pool.py` to the Rust API
//! (`greenlet::pool`). Each test names the gevent test it ports; timings
//! are scaled to this suite's bands.
//!
//! Not ported: `test_init_error` (a negative size does not type-check),
//! `TestPoolUnlimit` (an unbounded pool is a `Group`), `TestErrorInIterator`
//! (a Rust iterator cannot fail), `test_imap_unordered_bounded_queue` (no
//! `maxsize` argument: `imap` starts calls only as it is advanced),
//! `test_async_callback` (no `callback` argument: link the greenlet).
//! Deliberate deviation: `Pool::wait_available(Some(t))` on a full pool is
//! `Err(Elapsed)` where gevent returns the free count 0 (`TestPool0`).

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use common::{Log, Reports, TICK, assert_band, assert_tick, quiet, timed};
use greenlet::event::Event;
use greenlet::pool::Pool;
use greenlet::queue::Queue;
use greenlet::{Greenlet, GreenletError, Timeout, WaitError, sleep, spawn, spawn_later};

const ZERO: Duration = Duration::ZERO;
const MS: Duration = Duration::from_millis(1);

fn sqr(x: u64, wait: Duration) -> u64 {
    sleep(wait);
    x * x
}

fn sqr_random_sleep(x: u64) -> u64 {
    // A fixed pseudo-random sleep of 0..20 ms per item.
    sleep(Duration::from_millis((x * 7919) % 20));
    x * x
}

const SIZES: [usize; 4] = [1, 2, 3, 10];

// --------------------------------------------------- TestCoroutinePool

/// `test__pool.py::TestCoroutinePool::test_apply_async`.
#[greenlet::test]
fn test_apply_async() {
    let done = Rc::new(Event::new());
    let pool = Pool::new(2);
    let d = done.clone();
    let _ = pool.apply_async(move || d.set());
    done.wait().unwrap();
    quiet();
}

/// `test__pool.py::TestCoroutinePool::test_apply`.
#[greenlet::test]
fn test_apply() {
    let pool = Pool::new(2);
    assert_eq!(pool.apply(|| "return value").unwrap(), "return value");
    // `PoolBasicTests::test_apply`.
    assert_eq!(pool.apply(|| ("foo", 1)).unwrap(), ("foo", 1));
    quiet();
}

/// `test__pool.py::TestCoroutinePool::test_apply_raises`: the failure of
/// the applied function comes back to the caller.
#[greenlet::test]
fn test_apply_raises() {
    let reports = Reports::install();
    let pool = Pool::new(1);
    let r = pool.apply(|| -> () { panic!("ExpectedException") });
    let e = r.unwrap_err();
    assert_eq!(e.as_panic().unwrap().message(), "ExpectedException");
    assert_eq!(reports.take().len(), 1);
    quiet();
}

/// `test__pool.py::TestCoroutinePool::test_multiple_coros`: the exact
/// interleaving of a consumer and a producer in a pool of two.
#[greenlet::test]
fn test_multiple_coros() {
    let evt = Rc::new(Event::new());
    let results = Log::new();
    let pool = Pool::new(2);
    let done = {
        let (evt, results) = (evt.clone(), results.clone());
        pool.spawn(move || {
            results.push("cons1");
            evt.wait().unwrap();
            results.push("cons2");
        })
        .unwrap()
    };
    {
        let (evt, results) = (evt.clone(), results.clone());
        let _ = pool.apply_async(move || {
            sleep(MS);
            results.push("prod");
            evt.set();
        });
    }
    done.get().unwrap();
    assert_eq!(results.entries(), ["cons1", "prod", "cons2"]);
    quiet();
}

/// `test__pool.py::TestCoroutinePool::test_reentrant`: a member applying to
/// its own full pool runs inline.
#[greenlet::test]
fn test_reentrant() {
    let pool = Pool::new(1);
    let inner = pool.clone();
    let result = pool.apply(move || inner.apply(|| 5 + 1).unwrap()).unwrap();
    assert_eq!(result, 6);
    let evt = Rc::new(Event::new());
    let e = evt.clone();
    let _ = pool.apply_async(move || e.set());
    evt.wait().unwrap();
    quiet();
}

/// `test__pool.py::TestCoroutinePool::test_stderr_raising`: a member that
/// fails gives its slot back.
#[greenlet::test]
fn test_stderr_raising() {
    let reports = Reports::install();
    let pool = Pool::new(1);
    let waiter = pool
        .spawn(|| -> () { panic!("Raising an error from the crash() function") })
        .unwrap();
    let r = Timeout::run(Duration::from_secs(2), || waiter.get()).unwrap();
    assert!(r.unwrap_err().as_panic().is_some());
    sleep(ZERO);
    assert_eq!(pool.free_count(), 1);
    Timeout::run(Duration::from_millis(100), || {
        pool.apply(|| sleep(ZERO)).unwrap()
    })
    .unwrap();
    pool.join(None, false).unwrap();
    assert_eq!(reports.take().len(), 1);
    quiet();
}

// ------------------------------------------------------ PoolBasicTests

/// `test__pool.py::PoolBasicTests::test_execute_async`: `apply_async` on a
/// pool with room takes a slot at once; once full it queues a helper.
#[greenlet::test]
fn test_execute_async() {
    let p = Pool::new(2);
    assert_eq!(p.free_count(), 2);
    let r = Rc::new(RefCell::new(Vec::new()));
    let push = |v: i32| {
        let r = r.clone();
        move || r.borrow_mut().push(v)
    };
    let first = p.spawn(push(1)).unwrap();
    assert_eq!(p.free_count(), 1);
    first.get().unwrap();
    assert_eq!(*r.borrow(), [1]);
    sleep(ZERO);
    assert_eq!(p.free_count(), 2);

    let _ = p.apply_async(push(2));
    assert_eq!(p.free_count(), 1);
    assert_eq!(*r.borrow(), [1]);
    let _ = p.apply_async(push(3));
    assert_eq!(p.free_count(), 0);
    assert_eq!(*r.borrow(), [1]);
    let _ = p.apply_async(push(4));
    assert_eq!(*r.borrow(), [1]);
    sleep(Duration::from_millis(10));
    let mut got = r.borrow().clone();
    got.sort();
    assert_eq!(got, [1, 2, 3, 4]);
    quiet();
}

/// `test__pool.py::PoolBasicTests::test_discard`: a discarded member's slot
/// is free at once.
#[greenlet::test]
fn test_discard() {
    let p = Pool::new(1);
    let first = p.spawn(|| sleep(Duration::from_secs(1000))).unwrap();
    assert!(p.discard(&first));
    first.kill().unwrap();
    assert!(first.is_dead());
    assert_eq!(p.len(), 0);
    assert_eq!(p.free_count(), 1);
    quiet();
}

/// `test__pool.py::PoolBasicTests::test_add_method`: an `add` interrupted
/// by a `Timeout` leaves the pool unchanged.
#[greenlet::test]
fn test_add_method() {
    let p = Pool::new(1);
    let first = spawn(|| sleep(Duration::from_secs(1000)));
    let second = spawn(|| sleep(Duration::from_secs(1000)));
    assert_eq!((p.free_count(), p.len()), (1, 0));
    p.add(&first).unwrap();
    assert_eq!((p.free_count(), p.len()), (0, 1));
    let (r, took) = timed(|| Timeout::run(Duration::from_millis(100), || p.add(&second)));
    assert!(r.is_err());
    assert_band(
        "add under Timeout",
        took,
        Duration::from_millis(100),
        Duration::from_millis(210),
    );
    assert_eq!((p.free_count(), p.len()), (0, 1));
    assert!(!p.contains(&second));
    second.kill().unwrap();
    first.kill().unwrap();
    quiet();
}

/// `test__pool.py::PoolBasicTests::test_add_method_non_blocking`
/// (`PoolFull` is `false`).
#[greenlet::test]
fn test_add_method_non_blocking() {
    let p = Pool::new(1);
    let first = spawn(|| sleep(Duration::from_secs(1000)));
    let second = spawn(|| sleep(Duration::from_secs(1000)));
    p.add(&first).unwrap();
    assert!(!p.try_add(&second));
    assert_eq!((p.free_count(), p.len()), (0, 1));
    second.kill().unwrap();
    first.kill().unwrap();
    quiet();
}

/// `test__pool.py::PoolBasicTests::test_add_method_timeout` and
/// `test_start_method_timeout` (`PoolFull` is `Elapsed`).
#[greenlet::test]
fn test_add_method_timeout() {
    let p = Pool::new(1);
    let first = spawn(|| sleep(Duration::from_secs(1000)));
    p.add(&first).unwrap();
    let second = spawn(|| sleep(Duration::from_secs(1000)));
    let (r, took) = timed(|| p.add_timeout(&second, TICK));
    assert!(matches!(r, Err(WaitError::Elapsed(_))), "{r:?}");
    assert_tick("add_timeout", took);
    // test_start_method_timeout: a greenlet not started yet.
    let third: Greenlet<()> = Greenlet::new(|| sleep(Duration::from_secs(1000)));
    let (r, took) = timed(|| p.add_timeout(&third, TICK));
    assert!(matches!(r, Err(WaitError::Elapsed(_))), "{r:?}");
    assert_tick("add_timeout (unstarted)", took);
    assert!(!third.is_started());
    assert_eq!((p.free_count(), p.len()), (0, 1));
    second.kill().unwrap();
    first.kill().unwrap();
    third.kill().unwrap();
    quiet();
}

// ------------------------------------------------------------ TestPool

/// `test__pool.py::TestPool::test_apply` for sizes 1, 2, 3, 10.
#[greenlet::test]
fn test_pool_apply() {
    for size in SIZES {
        let pool = Pool::new(size);
        assert_eq!(pool.apply(|| sqr(5, ZERO)).unwrap(), 25);
        assert_eq!(pool.apply(|| sqr(3, ZERO)).unwrap(), 9);
        pool.join(None, false).unwrap();
    }
    quiet();
}

/// `test__pool.py::TestPool::test_map` (and `test_empty_map`).
#[greenlet::test]
fn test_map() {
    for size in SIZES {
        let pool = Pool::new(size);
        let small: Vec<u64> = (0..10).map(|x| x * x).collect();
        assert_eq!(pool.map(|x| sqr(x, ZERO), 0..10).unwrap(), small);
        let big: Vec<u64> = (0..100).map(|x| x * x).collect();
        assert_eq!(pool.map(|x| sqr(x, ZERO), 0..100).unwrap(), big);
        assert_eq!(pool.map(|x| sqr(x, ZERO), 0..0).unwrap(), Vec::<u64>::new());
        pool.join(None, false).unwrap();
    }
    quiet();
}

/// `test__pool.py::TestPool::test_async`: `apply_async(...).get()` waits
/// for the call.
#[greenlet::test]
fn test_async() {
    for size in SIZES {
        let pool = Pool::new(size);
        let res = pool.apply_async(|| sqr(7, TICK));
        let (v, took) = timed(|| res.get_flat::<u64, GreenletError>());
        assert_eq!(v.unwrap(), 49);
        assert_tick("apply_async get", took);
        pool.join(None, false).unwrap();
    }
    quiet();
}

/// `test__pool.py::TestPool::test_async_timeout`: a timed `get` on an
/// unfinished call is `Elapsed` after its timeout.
#[greenlet::test]
fn test_async_timeout() {
    let pool = Pool::new(1);
    let res = pool.apply_async(|| sqr(6, TICK + Duration::from_millis(200)));
    let (r, took) = timed(|| res.get_timeout(TICK));
    assert!(matches!(r, Err(GreenletError::Timeout(_))), "{r:?}");
    assert_tick("get_timeout", took);
    pool.join(None, false).unwrap();
    assert_eq!(res.get_flat::<u64, GreenletError>().unwrap(), 36);
    quiet();
}

/// `test__pool.py::TestPool::test_imap_list_small`, `test_imap_it_small`,
/// `test_imap_it_large`, `test_empty_imap`: results in input order, then
/// the end.
#[greenlet::test]
fn test_imap() {
    for size in SIZES {
        let pool = Pool::new(size);
        let it = pool.imap(|x| sqr(x, ZERO), 0..10);
        let got: Vec<u64> = it.map(Result::unwrap).collect();
        assert_eq!(got, (0..10).map(|x| x * x).collect::<Vec<_>>());
        let mut it = pool.imap(|x| sqr(x, ZERO), 0..1000);
        for i in 0..1000 {
            assert_eq!(it.next().unwrap().unwrap(), i * i);
        }
        assert!(it.next().is_none());
        assert!(pool.imap(|x| sqr(x, ZERO), 0..0).next().is_none());
        pool.join(None, false).unwrap();
    }
    quiet();
}

/// `test__pool.py::TestPool::test_imap_random`: input order despite
/// random completion order.
#[greenlet::test]
fn test_imap_random() {
    for size in SIZES {
        let pool = Pool::new(size);
        let got: Vec<u64> = pool
            .imap(sqr_random_sleep, 0..10)
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, (0..10).map(|x| x * x).collect::<Vec<_>>());
    }
    quiet();
}

/// `test__pool.py::TestPool::test_imap_unordered`,
/// `test_imap_unordered_random`, `test_empty_imap_unordered`.
#[greenlet::test]
fn test_imap_unordered() {
    for size in SIZES {
        let pool = Pool::new(size);
        for _ in 0..2 {
            let mut got: Vec<u64> = pool
                .imap_unordered(|x| sqr(x, ZERO), 0..1000)
                .map(Result::unwrap)
                .collect();
            got.sort();
            assert_eq!(got, (0..1000).map(|x| x * x).collect::<Vec<_>>());
        }
        let mut got: Vec<u64> = pool
            .imap_unordered(sqr_random_sleep, 0..10)
            .map(Result::unwrap)
            .collect();
        got.sort();
        assert_eq!(got, (0..10).map(|x| x * x).collect::<Vec<_>>());
        assert!(pool.imap_unordered(|x| sqr(x, ZERO), 0..0).next().is_none());
    }
    quiet();
}

/// `test__pool.py::TestPool::test_terminate`: killing a busy pool is quick.
#[greenlet::test]
fn test_terminate() {
    for size in SIZES {
        let pool = Pool::new(size);
        let calls: Vec<_> = (0..size * 2)
            .map(|_| pool.apply_async(|| sleep(Duration::from_millis(100))))
            .collect();
        sleep(Duration::from_millis(100));
        let (r, took) = timed(|| pool.kill());
        r.unwrap();
        assert!(took < Duration::from_millis(500), "kill took {took:?}");
        for c in &calls {
            c.join().unwrap();
        }
        assert!(pool.is_empty());
        assert_eq!(pool.free_count(), size);
    }
    quiet();
}

/// `test__pool.py::TestPool::test_imap_unordered_sleep`: completion order
/// (input order in a pool of one).
#[greenlet::test]
fn test_imap_unordered_sleep() {
    for size in SIZES {
        let pool = Pool::new(size);
        let result: Vec<String> = pool
            .imap_unordered(
                |x: u64| {
                    sleep(Duration::from_millis(x * 10));
                    x.to_string()
                },
                [10, 1, 2],
            )
            .map(Result::unwrap)
            .collect();
        let expected = if size == 1 {
            ["10", "1", "2"]
        } else {
            ["1", "2", "10"]
        };
        assert_eq!(result, expected, "size {size}");
    }
    quiet();
}

/// `test__pool.py::TestPool::test_imap_no_stop` and
/// `test_imap_unordered_no_stop` (gevent#423): the input is a queue that
/// ends later.
#[greenlet::test]
fn test_imap_no_stop() {
    for ordered in [true, false] {
        let pool = Pool::new(1);
        let q = Queue::new();
        q.put(123).unwrap();
        let closer = q.clone();
        spawn_later(Duration::from_millis(100), move || closer.shutdown());
        let it = if ordered {
            pool.imap(|x: i32| x, q.iter())
        } else {
            pool.imap_unordered(|x: i32| x, q.iter())
        };
        let result: Vec<i32> = it.map(Result::unwrap).collect();
        assert_eq!(result, [123]);
    }
    quiet();
}

/// `test__pool.py::TestPool::test_imap_final_sleep` and
/// `test_imap_unordered_final_sleep` (gevent#311): the input iterator
/// blocks before it ends.
#[greenlet::test]
fn test_imap_final_sleep() {
    for size in SIZES {
        for ordered in [true, false] {
            let pool = Pool::new(size);
            // gevent's `final_sleep()`: yields 0, 1, 2, then sleeps
            // before it ends.
            let final_sleep = (0..4).filter(|&i| {
                if i == 3 {
                    sleep(TICK);
                }
                i < 3
            });
            let it = if ordered {
                pool.imap(|x| sqr(x, ZERO), final_sleep)
            } else {
                pool.imap_unordered(|x| sqr(x, ZERO), final_sleep)
            };
            let mut result: Vec<u64> = it.map(Result::unwrap).collect();
            result.sort();
            assert_eq!(result, [0, 1, 4]);
        }
    }
    quiet();
}

// ------------------------------------------------------ the small classes

/// `test__pool.py::TestPool0::test_wait_full`: a pool of size 0 is always
/// full; a timed `wait_available` gives up (gevent returns 0, here
/// `Elapsed`).
#[greenlet::test]
fn test_wait_full() {
    let p = Pool::new(0);
    assert_eq!(p.free_count(), 0);
    assert!(p.full());
    let (r, took) = timed(|| p.wait_available(Some(TICK)));
    assert!(matches!(r, Err(WaitError::Elapsed(_))), "{r:?}");
    assert_tick("wait_available", took);
    quiet();
}

/// `test__pool.py::TestJoinSleep` and `TestJoinSleep_raise_error`
/// (`AbstractGenericWaitTestCase`): `join(timeout)` returns after the
/// timeout.
#[greenlet::test]
fn test_join_sleep() {
    for raise_error in [false, true] {
        let p = Pool::new(10);
        let g = p.spawn(|| sleep(Duration::from_secs(10))).unwrap();
        let (r, took) = timed(|| p.join(Some(TICK), raise_error));
        assert!(matches!(r, Err(GreenletError::Timeout(_))), "{r:?}");
        assert_tick("Pool::join(timeout)", took);
        g.kill().unwrap();
    }
    quiet();
}

/// `test__pool.py::TestJoinEmpty`: joining an empty pool succeeds without
/// switching.
#[greenlet::test]
fn test_join_empty() {
    let p = Pool::new(10);
    let other = spawn(|| ());
    assert!(p.join(None, false).is_ok());
    assert!(!other.is_ready(), "join switched");
    quiet();
}

/// `test__pool.py::TestSpawn::test`: `spawn` on a full pool waits for the
/// slot; members leave when they finish.
#[greenlet::test]
fn test_spawn() {
    let p = Pool::new(1);
    assert_eq!(p.len(), 0);
    p.spawn(|| sleep(Duration::from_millis(100))).unwrap();
    assert_eq!(p.len(), 1);
    let (_, took) = timed(|| p.spawn(|| sleep(Duration::from_millis(100))).unwrap());
    assert_band(
        "spawn on a full pool",
        took,
        Duration::from_millis(95),
        Duration::from_millis(210),
    );
    assert_eq!(p.len(), 1);
    sleep(Duration::from_millis(190));
    assert_eq!(p.len(), 0);
    quiet();
}

/// `test__pool.py::TestSpawn::testSpawnAndWait`.
#[greenlet::test]
fn test_spawn_and_wait() {
    let p = Pool::new(1);
    p.spawn(|| sleep(Duration::from_millis(100))).unwrap();
    assert_eq!(p.len(), 1);
    assert!(p.join(Some(Duration::from_millis(10)), false).is_err());
    assert!(p.join(None, false).is_ok());
    assert_eq!(p.len(), 0);
    quiet();
}

fn divide_by(x: i32) -> i32 {
    if x == 0 {
        panic!("ZeroDivisionError");
    }
    10 / x
}

/// `test__pool.py::TestErrorInHandler::test_map`: a failing call fails
/// `map`.
#[greenlet::test]
fn test_error_in_handler_map() {
    let reports = Reports::install();
    let p = Pool::new(3);
    let r = p.map(divide_by, [1, 0, 2]);
    assert_eq!(
        r.unwrap_err().as_panic().unwrap().message(),
        "ZeroDivisionError"
    );
    p.join(None, false).unwrap();
    assert_eq!(reports.take().len(), 1);
    quiet();
}

/// `test__pool.py::TestErrorInHandler::test_imap` and `test_imap_unordered`:
/// the failure is one item; iteration goes on after it.
#[greenlet::test]
fn test_error_in_handler_imap() {
    let reports = Reports::install();
    for ordered in [true, false] {
        let p = Pool::new(1);
        let mut it = if ordered {
            p.imap(divide_by, [1, 0, 2])
        } else {
            p.imap_unordered(divide_by, [1, 0, 2])
        };
        assert_eq!(it.next().unwrap().unwrap(), 10);
        let e = it.next().unwrap().unwrap_err();
        assert_eq!(e.as_panic().unwrap().message(), "ZeroDivisionError");
        assert_eq!(it.next().unwrap().unwrap(), 5);
        assert!(it.next().is_none());
    }
    assert_eq!(reports.take().len(), 2);
    quiet();
}

/// Exactly-once under kill: `apply_async` calls queued behind a full pool,
/// with some helpers killed while they wait, run exactly the others.
#[greenlet::test]
fn apply_async_helpers_killed_while_waiting_run_nothing() {
    let p = Pool::new(1);
    let ran = Rc::new(Cell::new(0u32));
    let blocker = p.spawn(|| sleep(TICK)).unwrap();
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let ran = ran.clone();
            p.apply_async(move || ran.set(ran.get() + 1))
        })
        .collect();
    sleep(ZERO);
    for c in calls.iter().step_by(2) {
        c.kill().unwrap();
    }
    blocker.join().unwrap();
    for c in calls.iter().skip(1).step_by(2) {
        c.get_flat::<(), GreenletError>().unwrap();
    }
    p.join(None, false).unwrap();
    assert_eq!(ran.get(), 3);
    assert_eq!(p.free_count(), 1);
    quiet();
}
