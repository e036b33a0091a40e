//! Ports of the link/kill/join/get parts of gevent's
//! `src/gevent/tests/test__greenlet.py`, and of `test__joinall.py` and
//! `test__iwait.py`, to the Rust API.
//!
//! Not ported: `TestStr` (repr), `test_spawn_non_callable` (does not
//! type-check), `test_minimal_id`, `TestContextManager` (no `with`),
//! `TestCExt`/`TestPure`, `test_recursion_error`, `test_tree_locals`,
//! `test_add_spawn_callback`, `TestDeadPropertyDuringSwitch` (greenlet
//! `settrace`), `test_iwait_nogarbage` (no `linkcount` on `Semaphore`).
//! A greenlet killed with plain `GreenletExit` is successful, its `get` is
//! `Err(Killed(GreenletExit))` (gevent returns the `GreenletExit` instance
//! as the value).

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use common::{Log, Reports, Shutdown, TICK, assert_tick, quiet, timed};
use greenlet::event::AsyncResult;
use greenlet::lock::Semaphore;
use greenlet::queue::{Channel, Queue};
use greenlet::{
    Greenlet, GreenletError, KillError, KillOptions, LinkId, Timeout, WaitError, WaitOptions,
    iwait, iwait_with, joinall, joinall_with, killall, killall_with, sleep, spawn,
    with_timeout_value,
};

const ZERO: Duration = Duration::ZERO;
const MS: Duration = Duration::from_millis(1);
const DELAY: Duration = Duration::from_millis(20);

fn expected_error(msg: &'static str) -> Greenlet<i32> {
    spawn(move || -> i32 { panic!("{msg}") })
}

/// Feeds `g`'s outcome into an `AsyncResult` (gevent's `g.link(async_result)`).
fn feed<T: Clone + 'static>(ar: &AsyncResult<T>) -> impl FnOnce(&Greenlet<T>) + 'static {
    let ar = ar.clone();
    move |g| match g.get() {
        Ok(v) => ar.set(v),
        Err(e) => ar.set_exception(e),
    }
}

// ------------------------------------------------------------- TestLink

/// `test__greenlet.py::TestLink::test_link_to_asyncresult`: links added
/// before and after death all fire.
#[greenlet::test]
fn test_link_to_asyncresult() {
    let p = spawn(|| 100);
    let event = AsyncResult::new();
    p.link(feed(&event));
    assert_eq!(event.get().unwrap(), 100);
    for _ in 0..3 {
        let event2 = AsyncResult::new();
        p.link(feed(&event2));
        assert_eq!(event2.get().unwrap(), 100);
    }
    quiet();
}

/// `test__greenlet.py::TestLink::test_link_to_asyncresult_exception`.
#[greenlet::test]
fn test_link_to_asyncresult_exception() {
    let reports = Reports::install();
    let p = expected_error("test_link_to_asyncresult_exception");
    for _ in 0..4 {
        let event = AsyncResult::new();
        p.link(feed(&event));
        let e = event.get().unwrap_err();
        assert_eq!(
            e.as_panic().unwrap().message(),
            "test_link_to_asyncresult_exception"
        );
    }
    assert_eq!(reports.take().len(), 1);
    quiet();
}

/// `test__greenlet.py::TestLink::test_link_to_queue`: a link may put into a
/// queue (a non-blocking put from the hub).
#[greenlet::test]
fn test_link_to_queue() {
    let p = spawn(|| 100);
    let q: Queue<Greenlet<i32>> = Queue::new();
    for _ in 0..4 {
        let q2 = q.clone();
        p.link(move |g| q2.put_nowait(g.clone()).unwrap());
        assert_eq!(q.get().unwrap().get().unwrap(), 100);
    }
    quiet();
}

/// `test__greenlet.py::TestLink::test_link_to_channel`: links hand their
/// greenlets to a blocked channel getter, one each.
#[greenlet::test]
fn test_link_to_channel() {
    let gs = [spawn(|| 101), spawn(|| 102), spawn(|| 103)];
    let q: Channel<Greenlet<i32>> = Channel::new();
    let getter = {
        let q = q.clone();
        spawn(move || {
            (0..3)
                .map(|_| q.get().unwrap().get().unwrap())
                .collect::<Vec<_>>()
        })
    };
    sleep(ZERO);
    // A link runs on the hub: it can hand an item only to a waiting
    // getter, so each link re-arms by putting from a helper greenlet.
    for p in &gs {
        let q = q.clone();
        p.link(move |g| {
            let (q, g) = (q.clone(), g.clone());
            greenlet::spawn_raw(move || q.put(g).unwrap());
        });
    }
    let mut results = getter.get().unwrap();
    results.sort();
    assert_eq!(results, [101, 102, 103]);
    quiet();
}

// ----------------------------------------------------------- TestUnlink

/// `test__greenlet.py::TestUnlink::test_func_link`, `test_func_link_value`,
/// `test_func_link_exception`: `has_links` follows `link`/`unlink`, without
/// switching.
#[greenlet::test]
fn test_func_link() {
    for kind in 0..3 {
        let p = spawn(|| ());
        let link = |p: &Greenlet<()>| -> LinkId {
            match kind {
                0 => p.link(|_| ()),
                1 => p.link_value(|_| ()),
                _ => p.link_exception(|_| ()),
            }
        };
        let id = link(&p);
        assert!(p.has_links());
        assert!(p.unlink(id));
        assert!(!p.has_links());
        let id = link(&p);
        assert!(p.has_links());
        assert!(p.unlink(id));
        assert!(!p.has_links());
        assert!(!p.is_ready(), "no switch happened");
        p.kill().unwrap();
    }
    quiet();
}

// ------------------------------------------------------- LinksTestCase

/// A link callback.
type Listener<T> = Box<dyn FnOnce(&Greenlet<T>)>;

/// `LinksTestCase.set_links` + `check`: every kind of listener fires for a
/// finished greenlet, once; `other` links (the wrong kind) never do.
fn check_links<T: Clone + std::fmt::Debug + 'static>(
    p: &Greenlet<T>,
    link_kind: &str,
    other_kind: &str,
) -> (Result<T, GreenletError>, Result<T, GreenletError>) {
    let link = |p: &Greenlet<T>, kind: &str, f: Listener<T>| match kind {
        "link" => p.link(f),
        "link_value" => p.link_value(f),
        _ => p.link_exception(f),
    };
    let event = AsyncResult::new();
    link(p, link_kind, Box::new(feed(&event)));
    let queue: Queue<Greenlet<T>> = Queue::bounded(1);
    let q = queue.clone();
    link(
        p,
        link_kind,
        Box::new(move |g| q.put_nowait(g.clone()).unwrap()),
    );
    let flag = Rc::new(Cell::new(0));
    let f = flag.clone();
    link(p, link_kind, Box::new(move |_| f.set(f.get() + 1)));
    for _ in 0..10 {
        link(p, link_kind, Box::new(feed(&AsyncResult::new())));
        let q = Queue::bounded(1);
        link(
            p,
            link_kind,
            Box::new(move |g| q.put_nowait(g.clone()).unwrap()),
        );
    }
    // Stuff that won't be touched.
    let untouched = AsyncResult::new();
    link(p, other_kind, Box::new(feed(&untouched)));
    let untouched_q: Channel<Greenlet<T>> = Channel::new();
    let q = untouched_q.clone();
    link(
        p,
        other_kind,
        Box::new(move |g| drop(q.put_nowait(g.clone()))),
    );

    sleep(DELAY * 2);
    assert!(!p.is_active());
    let from_event = event.get();
    let from_queue = queue.get().unwrap().get();
    sleep(DELAY);
    assert_eq!(flag.get(), 1, "a callback fired {} times", flag.get());
    assert!(with_timeout_value(DELAY, None, || Some(untouched.get())).is_none());
    assert!(with_timeout_value(DELAY, None, || Some(untouched_q.get())).is_none());
    (from_event, from_queue)
}

/// `test__greenlet.py::TestReturn_link::test_return` and
/// `TestReturn_link_value::test_return`.
#[greenlet::test]
fn test_return() {
    for kind in ["link", "link_value"] {
        let p = spawn(|| 25);
        for _ in 0..3 {
            let (a, b) = check_links(&p, kind, "link_exception");
            assert_eq!((a.unwrap(), b.unwrap()), (25, 25));
        }
    }
    quiet();
}

/// `test__greenlet.py::TestReturn_link::test_kill` and
/// `TestReturn_link_value::test_kill`: a `GreenletExit` kill is a success
/// for `link_value`, not an exception for `link_exception`.
#[greenlet::test]
fn test_kill_links() {
    for kind in ["link", "link_value"] {
        let p = spawn(|| sleep(DELAY));
        for _ in 0..3 {
            p.kill().unwrap();
            let (a, b) = check_links(&p, kind, "link_exception");
            for r in [a, b] {
                let e = r.unwrap_err();
                assert!(e.is_greenlet_exit(), "{e:?}");
            }
        }
    }
    quiet();
}

/// `test__greenlet.py::TestRaise_link::test_raise` and
/// `TestRaise_link_exception::test_raise`.
#[greenlet::test]
fn test_raise() {
    let reports = Reports::install();
    for kind in ["link", "link_exception"] {
        let p = expected_error("test_raise");
        for _ in 0..3 {
            let (a, b) = check_links(&p, kind, "link_value");
            for r in [a, b] {
                assert_eq!(r.unwrap_err().as_panic().unwrap().message(), "test_raise");
            }
        }
    }
    assert_eq!(reports.take().len(), 2);
    quiet();
}

// ------------------------------------------------------------ TestStuff

/// `test__greenlet.py::TestStuff::test_wait_noerrors`.
#[greenlet::test]
fn test_wait_noerrors() {
    let gs = [spawn(|| 1), spawn(|| 2), spawn(|| 3)];
    joinall_with(&gs, WaitOptions::new().raise_error()).unwrap();
    assert_eq!(
        gs.iter().map(|g| g.value().unwrap()).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let e = AsyncResult::new();
    let id = gs[0].link(feed(&e));
    assert_eq!(e.get().unwrap(), 1);
    assert!(!gs[0].unlink(id), "already fired");
    let e = AsyncResult::new();
    gs[0].link(feed(&e));
    assert_eq!(e.get().unwrap(), 1);
    quiet();
}

/// `test__greenlet.py::TestStuff::test_wait_error`.
#[greenlet::test]
fn test_wait_error() {
    let reports = Reports::install();
    let x = spawn(|| {
        sleep(DELAY);
        1
    });
    let y = expected_error("test_wait_error");
    let e = joinall_with([&x, &y], WaitOptions::new().raise_error()).unwrap_err();
    assert_eq!(e.as_panic().unwrap().message(), "test_wait_error");
    assert!(!x.is_ready());
    let e = joinall_with([&y], WaitOptions::new().raise_error()).unwrap_err();
    assert_eq!(e.as_panic().unwrap().message(), "test_wait_error");
    x.join().unwrap();
    assert_eq!(reports.take().len(), 1);
    quiet();
}

/// `test__greenlet.py::TestStuff::test_joinall_exception_order`: the
/// earliest failure is the one returned.
#[greenlet::test]
fn test_joinall_exception_order() {
    let reports = Reports::install();
    let a = spawn(|| -> i32 {
        sleep(Duration::from_millis(100));
        panic!("first")
    });
    let b = expected_error("second");
    let e = joinall_with([&a, &b], WaitOptions::new().raise_error()).unwrap_err();
    assert_eq!(e.as_panic().unwrap().message(), "second");
    joinall([&a, &b]).unwrap();
    assert_eq!(reports.take().len(), 2);
    quiet();
}

/// `test__greenlet.py::TestStuff::test_joinall_count_raise_error`.
#[greenlet::test]
fn test_joinall_count_raise_error() {
    let reports = Reports::install();
    let sleeper = spawn(|| -> i32 {
        loop {
            sleep(Duration::from_millis(100));
        }
    });
    let raiser = expected_error("count");
    let done = joinall_with([&sleeper, &raiser], WaitOptions::new().count(1)).unwrap();
    assert_eq!(done.len(), 1);
    assert!(raiser.is_ready());
    assert!(!sleeper.is_ready());
    sleeper.kill().unwrap();
    assert!(sleeper.is_ready());
    assert_eq!(reports.take().len(), 1);
    quiet();
}

/// `test__greenlet.py::TestStuff::test_multiple_listeners_error`: a
/// panicking link does not stop the others.
#[greenlet::test]
fn test_multiple_listeners_error() {
    let reports = Reports::install();
    for fails in [false, true] {
        let p = if fails {
            expected_error("test_multiple_listeners_error")
        } else {
            spawn(|| 5)
        };
        let results = Rc::new(RefCell::new(Vec::new()));
        let r = results.clone();
        p.link(move |_| {
            r.borrow_mut().push(10);
            panic!("listener1");
        });
        let r = results.clone();
        p.link(move |_| {
            r.borrow_mut().push(20);
            panic!("listener2");
        });
        p.link(|_| panic!("listener3"));
        sleep(DELAY * 5);
        assert_eq!(*results.borrow(), [10, 20]);
    }
    // 3 listener panics each time, plus the greenlet's own failure.
    assert_eq!(reports.take().len(), 7);
    quiet();
}

/// `TestStuff._test_multiple_listeners_error_unlink`, with `link` and
/// `rawlink` adders that return the id: each of the first two listeners
/// unlinks the other; exactly one of them runs.
fn multiple_listeners_error_unlink(
    link: impl Fn(Box<dyn FnOnce()>) -> LinkId,
    unlink: Rc<dyn Fn(LinkId) -> bool>,
) {
    let results = Rc::new(RefCell::new(Vec::new()));
    let ids: Rc<RefCell<[Option<LinkId>; 2]>> = Rc::default();
    let (r, i, u) = (results.clone(), ids.clone(), unlink.clone());
    let id1 = link(Box::new(move || {
        u(i.borrow()[1].unwrap());
        r.borrow_mut().push(5);
        panic!("listener1");
    }));
    let (r, i, u) = (results.clone(), ids.clone(), unlink.clone());
    let id2 = link(Box::new(move || {
        u(i.borrow()[0].unwrap());
        r.borrow_mut().push(5);
        panic!("listener2");
    }));
    link(Box::new(|| panic!("listener3")));
    *ids.borrow_mut() = [Some(id1), Some(id2)];
    sleep(DELAY * 5);
    assert_eq!(*results.borrow(), [5]);
}

/// `test__greenlet.py::TestStuff::test_multiple_listeners_error_unlink_Greenlet_link`
/// and `..._Greenlet_rawlink`: an unlink stops a link even once the
/// notification has begun.
#[greenlet::test]
fn test_multiple_listeners_error_unlink_greenlet() {
    let reports = Reports::install();
    for raw in [false, true] {
        let p = spawn(|| 5);
        let q = p.clone();
        let unlink: Rc<dyn Fn(LinkId) -> bool> = Rc::new(move |id| q.unlink(id));
        multiple_listeners_error_unlink(
            |f| {
                if raw {
                    p.rawlink(f)
                } else {
                    p.link(move |_| f())
                }
            },
            unlink,
        );
    }
    assert_eq!(reports.take().len(), 4);
    quiet();
}

/// `test__greenlet.py::TestStuff::test_multiple_listeners_error_unlink_AsyncResult_rawlink`.
#[greenlet::test]
fn test_multiple_listeners_error_unlink_async_result_rawlink() {
    let reports = Reports::install();
    let e = AsyncResult::<i32>::new();
    {
        let e = e.clone();
        spawn(move || e.set(6));
    }
    let e2 = e.clone();
    let unlink: Rc<dyn Fn(LinkId) -> bool> = Rc::new(move |id| e2.unlink(id));
    multiple_listeners_error_unlink(|f| e.rawlink(f), unlink);
    assert_eq!(reports.take().len(), 2);
    quiet();
}

/// The same for `Event::rawlink`.
#[greenlet::test]
fn test_multiple_listeners_error_unlink_event_rawlink() {
    use greenlet::Waitable;
    let reports = Reports::install();
    let e = Rc::new(greenlet::event::Event::new());
    {
        let e = e.clone();
        spawn(move || e.set());
    }
    let e2 = e.clone();
    let unlink: Rc<dyn Fn(LinkId) -> bool> = Rc::new(move |id| e2.unlink(id));
    multiple_listeners_error_unlink(|f| e.rawlink(f), unlink);
    assert_eq!(reports.take().len(), 2);
    quiet();
}

// --------------------------------- TestJoin / TestGet / TestJoinAll(0)

/// `test__greenlet.py::TestJoin`, `TestGet`, `TestJoinAll0`, `TestJoinAll`
/// (`AbstractGenericWaitTestCase` / `AbstractGenericGetTestCase`).
#[greenlet::test]
fn test_join_get_joinall_timeouts() {
    let g = spawn(|| sleep(Duration::from_secs(10)));
    let (r, took) = timed(|| g.join_timeout(TICK));
    assert!(matches!(r, Err(WaitError::Elapsed(_))), "{r:?}");
    assert_tick("join_timeout", took);
    let (r, took) = timed(|| g.get_timeout(TICK));
    assert!(matches!(r, Err(GreenletError::Timeout(_))), "{r:?}");
    assert_tick("get_timeout", took);
    let (r, took) = timed(|| Timeout::new(TICK).scope(|| g.get()));
    assert_eq!(r.unwrap_err().duration(), Some(TICK));
    assert_tick("Timeout around get", took);
    let (r, took) = timed(|| {
        Timeout::new(MS)
            .unref()
            .scope(|| g.get_timeout(Duration::from_secs(1)))
    });
    assert_eq!(r.unwrap_err().duration(), Some(MS));
    assert!(took < Duration::from_millis(500));
    let (r, took) = timed(|| joinall_with([&g], WaitOptions::new().timeout(TICK)));
    assert!(r.unwrap().is_empty());
    assert_tick("joinall(timeout)", took);
    g.kill().unwrap();
    // TestJoinAll0: a greenlet never started.
    let never: Greenlet<()> = Greenlet::new(|| ());
    let (r, took) = timed(|| joinall_with([&never], WaitOptions::new().timeout(TICK)));
    assert!(r.unwrap().is_empty());
    assert_tick("joinall(unstarted, timeout)", took);
    never.kill().unwrap();
    quiet();
}

// ------------------------------------------------------------ TestBasic

/// `test__greenlet.py::TestBasic::test_simple_exit`: the state flags
/// through a greenlet's life, and its link firing once.
#[greenlet::test]
fn test_simple_exit() {
    let link_test = Log::new();
    let g = Greenlet::new(|| {
        sleep(Duration::from_millis(10));
        5
    });
    let l = link_test.clone();
    g.rawlink(move || l.push("fired"));
    let state = |g: &Greenlet<i32>| {
        (
            g.is_active(),
            g.is_dead(),
            g.is_ready(),
            g.is_successful(),
            g.value(),
            g.exception().is_some(),
        )
    };
    assert_eq!(state(&g), (false, false, false, false, None, false));
    assert!(!g.is_started());
    g.start();
    assert_eq!(state(&g), (true, false, false, false, None, false));
    sleep(MS);
    assert_eq!(state(&g), (true, false, false, false, None, false));
    assert!(link_test.is_empty());
    sleep(Duration::from_millis(20));
    assert_eq!(state(&g), (false, true, true, true, Some(5), false));
    assert_eq!(link_test.entries(), ["fired"]);
    quiet();
}

/// `test__greenlet.py::TestBasic::test_error_exit`.
#[greenlet::test]
fn test_error_exit() {
    let reports = Reports::install();
    let link_test = Log::new();
    let g: Greenlet<i32> = Greenlet::new(|| {
        sleep(MS);
        panic!("test_error_exit")
    });
    let l = link_test.clone();
    g.rawlink(move || l.push("fired"));
    g.start();
    sleep(ZERO);
    sleep(Duration::from_millis(50));
    assert!(!g.is_active());
    assert!(g.is_dead() && g.is_ready() && !g.is_successful());
    assert_eq!(g.value(), None);
    assert_eq!(
        g.exception().unwrap().as_panic().unwrap().message(),
        "test_error_exit"
    );
    assert_eq!(link_test.entries(), ["fired"]);
    assert_eq!(reports.take().len(), 1);
    quiet();
}

// ------------------------------------------------------------- TestKill

#[derive(Clone, Copy, Debug)]
enum Start {
    Never,
    Now,
    Later,
    Running,
}

/// `test__greenlet.py::TestKill._do_test` for one combination.
fn kill_case(start: Start, block: bool, killall: bool, custom: bool) {
    let link_test = Log::new();
    let result = Rc::new(Cell::new(0));
    let r = result.clone();
    let g: Greenlet<()> = Greenlet::new(move || {
        if matches!(start, Start::Running) {
            sleep(Duration::from_secs(10));
        }
        r.set(1);
    });
    let l = link_test.clone();
    g.link(move |_| l.push("link"));
    match start {
        Start::Never => {}
        Start::Now => g.start(),
        Start::Later => g.start_later(Duration::from_millis(200)),
        Start::Running => {
            g.start();
            sleep(ZERO);
        }
    }
    let kill = || {
        let mut options = KillOptions::new();
        if custom {
            options = options.error(Shutdown("custom"));
        }
        if !block {
            options = options.nowait();
        }
        if killall {
            killall_with([&g], options).unwrap();
        } else {
            g.kill_with_options(options).unwrap();
        }
        if !block {
            sleep(MS);
        }
    };
    let assert_killed = |g: &Greenlet<()>| {
        for _ in 0..2 {
            assert!(!g.is_active() && g.is_dead() && g.is_ready(), "{start:?}");
            assert_eq!(g.is_successful(), !custom, "{start:?} custom={custom}");
            assert_eq!(g.exception().is_some(), custom);
            match g.get() {
                Err(GreenletError::Killed(KillError::GreenletExit)) => assert!(!custom),
                Err(GreenletError::Killed(KillError::Error(e))) => {
                    assert!(custom);
                    assert_eq!(e.to_string(), "shutdown: custom");
                }
                other => panic!("{other:?}"),
            }
            sleep(Duration::from_millis(10));
        }
    };
    kill();
    assert_killed(&g);
    kill(); // a second kill must not hurt
    assert_killed(&g);
    if matches!(start, Start::Running) {
        sleep(Duration::from_millis(10));
    }
    assert_eq!(result.get(), 0, "the body never ran past the kill");
    assert_eq!(link_test.entries(), ["link"]);
}

/// `test__greenlet.py::TestKill`, `TestKillAfterStart`,
/// `TestKillAfterStartLater`, `TestKillWhileRunning`: every combination of
/// block/non-block, `kill`/`killall` and default/custom error.
#[greenlet::test]
fn test_kill() {
    let reports = Reports::install();
    let mut custom_kills = 0;
    for start in [Start::Never, Start::Now, Start::Later, Start::Running] {
        for block in [true, false] {
            for killall in [false, true] {
                for custom in [false, true] {
                    kill_case(start, block, killall, custom);
                    custom_kills += usize::from(custom);
                }
            }
        }
    }
    // A custom kill error is reported exactly once per greenlet (gevent
    // prints it), however many times it is killed.
    assert_eq!(reports.take().len(), custom_kills);
    quiet();
}

/// `test__greenlet.py::TestStart::test_start`: starting again is a no-op.
#[greenlet::test]
fn test_start() {
    let g = spawn(|| sleep(Duration::from_millis(10)));
    assert!(g.is_started() && !g.is_ready());
    g.start();
    g.join().unwrap();
    assert!(g.is_ready() && g.is_successful());
    g.start();
    assert!(g.is_ready() && g.is_successful() && !g.is_active());
    quiet();
}

/// `test__greenlet.py::TestRef::test_kill_scheduled` / `test_kill_started`.
#[greenlet::test]
fn test_kill_scheduled_and_started() {
    let g = spawn(|| sleep(Duration::from_millis(200)));
    let (r, took) = timed(|| g.kill());
    r.unwrap();
    assert!(took < Duration::from_millis(50));
    let g = spawn(|| sleep(Duration::from_millis(200)));
    sleep(MS);
    let (r, took) = timed(|| g.kill());
    r.unwrap();
    assert!(took < Duration::from_millis(50));
    quiet();
}

// ------------------------------------------------- test__joinall / iwait

/// `test__joinall.py::Test::test`: the same greenlet twice in the list.
#[greenlet::test]
fn test_joinall_duplicates() {
    let a = spawn(|| ());
    let b = spawn(|| ());
    let done = joinall([&a, &b, &a]).unwrap();
    assert_eq!(done.len(), 3);
    killall([&a, &b, &a]).unwrap();
    quiet();
}

/// `test__iwait.py::Testiwait::test_noiter`: the first ready object comes
/// first.
#[greenlet::test]
fn test_noiter() {
    let sem1 = Rc::new(Semaphore::default());
    let sem2 = Semaphore::default();
    let s = sem1.clone();
    spawn(move || s.release().unwrap());
    let ready = iwait([&*sem1, &sem2]).next().unwrap().unwrap();
    assert!(std::ptr::eq(ready, &*sem1));
    quiet();
}

/// `test__iwait.py::Testiwait::test_iwait_partial`: an iterator consumed
/// partially and dropped leaves nothing behind.
#[greenlet::test]
fn test_iwait_partial() {
    let sem = Rc::new(Semaphore::default());
    let s = sem.clone();
    let let_ = spawn(move || s.release().unwrap());
    {
        let mut it = iwait_with(
            [&*sem],
            WaitOptions::new().timeout(Duration::from_millis(10)),
        );
        assert!(std::ptr::eq(it.next().unwrap().unwrap(), &*sem));
    }
    let_.get().unwrap();
    assert_eq!(sem.counter(), 2);
    quiet();
}
