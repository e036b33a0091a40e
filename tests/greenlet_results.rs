//! Reading a greenlet's outcome: `value`, `exception`, `get`, `get_timeout`,
//! `try_get`, `into_result`, `join`, `join_timeout`; the typed errors; and
//! `LoopExit` when the native stack would wait forever.

mod common;

use std::cell::OnceCell;
use std::error::Error as _;
use std::rc::Rc;
use std::time::Duration;

use common::{
    LONG, Log, PROMPT, Reports, Shutdown, TICK, assert_contains, assert_tick, quiet, timed,
};
use greenlet::{Builder, Greenlet, GreenletError, KillError, WaitError, hub, sleep, spawn};

#[greenlet::test]
fn value_and_exception_peek_without_blocking() {
    let g = spawn(|| {
        sleep(Duration::from_millis(5));
        vec![1, 2, 3]
    });
    let log = Log::new();
    let l = log.clone();
    let other = spawn(move || l.push("other ran"));
    // Peeking never switches: `other` has not run.
    assert_eq!(g.value(), None);
    assert!(g.exception().is_none());
    assert!(g.try_get().is_none());
    assert!(log.is_empty(), "value/exception/try_get must not switch");
    g.join().unwrap();
    assert_eq!(g.value(), Some(vec![1, 2, 3]));
    assert!(g.exception().is_none());
    assert_eq!(g.try_get().expect("ready").unwrap(), [1, 2, 3]);
    assert!(other.is_ready());
    quiet();
}

#[greenlet::test]
fn get_returns_the_value_every_time() {
    let g = spawn(|| String::from("forty-two"));
    for _ in 0..3 {
        assert_eq!(g.get().unwrap(), "forty-two");
    }
    assert_eq!(g.clone().get().unwrap(), "forty-two");
    assert!(g.is_successful());
    quiet();
}

#[greenlet::test]
fn join_and_get_on_a_finished_greenlet_do_not_switch() {
    let g = spawn(|| 9);
    g.join().unwrap();
    let log = Log::new();
    let l = log.clone();
    let other = spawn(move || l.push("other"));
    g.join().unwrap();
    assert_eq!(g.get().unwrap(), 9);
    assert!(g.join_timeout(Duration::ZERO).is_ok());
    assert_eq!(g.get_timeout(Duration::ZERO).unwrap(), 9);
    assert!(
        log.is_empty(),
        "waiting on a finished greenlet must not switch"
    );
    other.join().unwrap();
    quiet();
}

#[derive(Debug, PartialEq)]
struct Code(u32);

#[greenlet::test]
fn a_panic_becomes_a_typed_error_with_message_and_payload() {
    let reports = Reports::install();
    let line = line!() + 1;
    let g = spawn(|| -> u8 { panic!("boom {}", 7) });
    let err = g.get().unwrap_err();
    let p = err.as_panic().expect("Panicked");
    assert_eq!(p.message(), "boom 7");
    let shown = err.to_string();
    assert!(
        shown.starts_with("panicked") && shown.ends_with(": boom 7"),
        "{shown}"
    );
    // The location is always recorded: the `panic!` above, file and line.
    let at = p.location().expect("the panic's location is recorded");
    let expected = format!("{}:{line}:", file!());
    assert!(at.starts_with(&expected), "{at:?} is not at {expected:?}");
    assert_contains(&shown, &[at]);
    assert!(!g.is_successful() && g.is_ready());
    assert_eq!(g.value(), None);
    assert!(matches!(g.exception(), Some(GreenletError::Panicked(_))));
    let r = reports.take_one();
    assert_eq!(r.context, "greenlet");
    assert_contains(&r.line, &[at]);

    // A non-string payload survives and can be re-raised.
    let h = spawn(|| -> u8 { std::panic::panic_any(Code(7)) });
    let GreenletError::Panicked(p) = h.get().unwrap_err() else {
        panic!("expected Panicked");
    };
    assert_eq!(p.message(), "Box<dyn Any>");
    let payload = p.clone().into_panic();
    assert_eq!(payload.downcast_ref::<Code>(), Some(&Code(7)));
    // Handed out once; later calls get the message.
    let again = p.into_panic();
    assert_eq!(
        again.downcast_ref::<String>().map(String::as_str),
        Some("Box<dyn Any>")
    );
    assert_eq!(reports.take_one().context, "greenlet");
    quiet();
}

#[greenlet::test]
fn a_killed_greenlet_reports_greenlet_exit_and_counts_as_successful() {
    let g = spawn(|| -> u8 {
        sleep(LONG);
        1
    });
    sleep(Duration::ZERO);
    g.kill().unwrap();
    let err = g.get().unwrap_err();
    assert!(
        matches!(err, GreenletError::Killed(KillError::GreenletExit)),
        "{err:?}"
    );
    assert!(err.is_greenlet_exit());
    assert_eq!(err.to_string(), "killed: GreenletExit");
    assert!(g.is_successful(), "GreenletExit counts as success");
    assert!(g.exception().is_none(), "GreenletExit is not an exception");
    assert_eq!(g.value(), None, "a killed greenlet has no value");
    quiet();
}

#[greenlet::test]
fn a_greenlet_killed_with_an_error_carries_that_error() {
    let reports = Reports::install();
    let g = spawn(|| -> u8 {
        sleep(LONG);
        1
    });
    sleep(Duration::ZERO);
    g.kill_with(Shutdown("results")).unwrap();
    let err = g.get().unwrap_err();
    let GreenletError::Killed(KillError::Error(inner)) = &err else {
        panic!("expected Killed(Error), got {err:?}");
    };
    assert_eq!(inner.downcast_ref::<Shutdown>(), Some(&Shutdown("results")));
    assert_eq!(err.to_string(), "killed: shutdown: results");
    // Each cause is printed once: `Display` already names the kill error,
    // so `source()` skips it and goes on with the kill error's own source.
    assert!(err.source().is_none(), "{:?}", err.source());
    assert!(!err.is_greenlet_exit());
    assert!(!g.is_successful());
    assert!(matches!(g.exception(), Some(GreenletError::Killed(_))));
    let r = reports.take_one();
    assert_contains(&r.line, &["shutdown: results"]);

    let chained = spawn(|| sleep(LONG));
    sleep(Duration::ZERO);
    chained.kill_with(Caused(Shutdown("inner"))).unwrap();
    let err = chained.exception().expect("killed with an error");
    assert_eq!(err.to_string(), "killed: caused");
    let source = err.source().expect("the kill error's own source");
    assert_eq!(source.to_string(), "shutdown: inner");
    assert!(source.source().is_none());
    assert_eq!(reports.take().len(), 1);
    quiet();
}

/// An error whose `source()` is the wrapped one.
#[derive(Debug)]
struct Caused(Shutdown);

impl std::fmt::Display for Caused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("caused")
    }
}

impl std::error::Error for Caused {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[greenlet::test]
fn get_timeout_gives_up_and_the_greenlet_keeps_running() {
    for _round in 0..2 {
        let g = spawn(|| {
            sleep(Duration::from_millis(120));
            "late"
        });
        let (r, took) = timed(|| g.get_timeout(TICK));
        let elapsed = match r {
            Err(GreenletError::Timeout(e)) => e,
            other => panic!("not finished in 50 ms, expected a timeout: {other:?}"),
        };
        assert_tick("get_timeout(50ms)", took);
        assert_eq!(elapsed.duration(), Some(TICK));
        assert!(!g.is_ready(), "giving up does not kill it");
        assert_eq!(g.get().unwrap(), "late");
        assert!(hub::stats().timers == 0, "the get_timeout timer is gone");
        quiet();
    }
}

#[greenlet::test]
fn get_timeout_returns_the_outcome_when_in_time() {
    let reports = Reports::install();
    let ok = spawn(|| {
        sleep(Duration::from_millis(5));
        1
    });
    assert_eq!(ok.get_timeout(PROMPT).expect("in time"), 1);
    let bad = spawn(|| -> u8 { panic!("inner") });
    let r = bad.get_timeout(PROMPT);
    assert!(matches!(r, Err(GreenletError::Panicked(_))), "{r:?}");
    assert_eq!(reports.take_one().context, "greenlet");
    quiet();
}

#[greenlet::test]
fn join_timeout_reports_whether_it_finished() {
    let g = spawn(|| sleep(Duration::from_millis(120)));
    let (r, took) = timed(|| g.join_timeout(TICK));
    match r {
        Err(WaitError::Elapsed(e)) => assert_eq!(e.duration(), Some(TICK)),
        other => panic!("still running: expected Elapsed, got {other:?}"),
    }
    assert_tick("join_timeout(50ms)", took);
    g.join_timeout(PROMPT).expect("finished in time");
    assert!(g.is_ready());
    quiet();
}

#[greenlet::test]
fn into_result_moves_a_non_clone_value_out() {
    struct NotClone(Vec<u8>);
    let g = spawn(|| NotClone(vec![4, 2]));
    let other = g.clone();
    let v = g.into_result().expect("value");
    assert_eq!(v.0, [4, 2]);
    assert!(other.is_ready() && other.is_successful());
    assert!(other.exception().is_none());
    // The value was moved out: later reads say so (they panicked before).
    assert!(matches!(other.take(), Err(GreenletError::ValueTaken)));
    let r = other.into_result().map(|v| v.0);
    assert!(matches!(r, Err(GreenletError::ValueTaken)), "{r:?}");

    let cloneable = spawn(|| 5);
    let h = cloneable.clone();
    assert_eq!(cloneable.into_result().unwrap(), 5);
    assert_eq!(h.value(), None, "the value was moved out");
    let r = h.get();
    assert!(matches!(r, Err(GreenletError::ValueTaken)), "{r:?}");
    assert!(
        h.is_successful(),
        "taking the value does not change the outcome"
    );
    assert_contains(&GreenletError::ValueTaken.to_string(), &["moved out"]);
    quiet();
}

#[greenlet::test]
fn into_result_keeps_the_error_for_other_handles() {
    let reports = Reports::install();
    let g = spawn(|| -> String { panic!("kept") });
    let h = g.clone();
    let err = g.into_result().unwrap_err();
    assert_eq!(
        err.as_panic().map(|p| p.message().to_owned()).as_deref(),
        Some("kept")
    );
    assert!(matches!(h.exception(), Some(GreenletError::Panicked(_))));
    assert!(matches!(h.get(), Err(GreenletError::Panicked(_))));
    assert_eq!(reports.take_one().context, "greenlet");
    quiet();
}

#[greenlet::test]
fn many_waiters_are_all_woken_once() {
    let target = spawn(|| {
        sleep(Duration::from_millis(10));
        7
    });
    let log = Log::new();
    let waiters: Vec<_> = (0..4)
        .map(|i| {
            let t = target.clone();
            let l = log.clone();
            spawn(move || {
                let v = t.get().unwrap();
                l.push(format!("w{i} got {v}"));
            })
        })
        .collect();
    assert_eq!(target.get().unwrap(), 7);
    for w in &waiters {
        w.join().unwrap();
    }
    assert_eq!(
        log.entries(),
        ["w0 got 7", "w1 got 7", "w2 got 7", "w3 got 7"]
    );
    quiet();
}

#[greenlet::test]
fn get_on_the_native_stack_is_loop_exit_when_nothing_can_finish() {
    for _round in 0..2 {
        let g = Builder::new()
            .name("forever")
            .spawn(|| -> u8 {
                sleep(Duration::MAX);
                1
            })
            .expect("spawn");
        let (r, took) = timed(|| g.get());
        assert!(took < PROMPT, "LoopExit must come at once, took {took:?}");
        let GreenletError::LoopExit(e) = r.unwrap_err() else {
            panic!("expected LoopExit");
        };
        assert_eq!(e.operation(), "Greenlet::get");
        assert_eq!(e.blocked().len(), 1, "{e}");
        assert_contains(&e.blocked()[0], &["forever", "sleep"]);
        assert_contains(&e.to_string(), &["Greenlet::get", "LoopExit", "forever"]);

        // join returns the same LoopExit as a value (it panicked before).
        match g.join() {
            Err(WaitError::LoopExit(e)) => {
                assert_contains(&e.to_string(), &["Greenlet::join", "LoopExit", "forever"]);
            }
            other => panic!("join: expected Err(LoopExit), got {other:?}"),
        }
        match g.join_timeout(Duration::MAX) {
            Err(WaitError::LoopExit(e)) => assert_contains(&e.to_string(), &["LoopExit"]),
            other => panic!("join_timeout(MAX): expected Err(LoopExit), got {other:?}"),
        }
        let r = g.clone().into_result();
        assert!(matches!(r, Err(GreenletError::LoopExit(_))), "{r:?}");

        assert!(!g.is_ready(), "LoopExit does not touch the greenlet");
        g.kill().unwrap();
        assert!(g.is_ready());
        quiet();
    }
}

#[greenlet::test]
fn waiting_for_an_unstarted_greenlet_on_the_native_stack_is_loop_exit() {
    let g = Greenlet::new(|| 1);
    let (r, took) = timed(|| g.get());
    assert!(took < PROMPT);
    let GreenletError::LoopExit(e) = r.unwrap_err() else {
        panic!("expected LoopExit");
    };
    assert!(e.blocked().is_empty(), "no live greenlet: {e}");
    assert_contains(&e.to_string(), &["no other greenlet is alive"]);
    // Starting it makes the wait possible.
    g.start();
    assert_eq!(g.get().unwrap(), 1);
    quiet();
}

#[greenlet::test]
fn get_with_a_timeout_waits_instead_of_loop_exit() {
    let g = spawn(|| -> u8 {
        sleep(Duration::MAX);
        1
    });
    let (r, took) = timed(|| g.get_timeout(TICK));
    assert!(r.is_err(), "times out instead of LoopExit");
    assert_tick("get_timeout on a forever-greenlet", took);
    g.kill().unwrap();
    quiet();
}

#[greenlet::test]
fn waiting_on_yourself_fails_at_once() {
    let log = Log::new();
    let me: Rc<OnceCell<Greenlet<String>>> = Rc::new(OnceCell::new());
    let m = me.clone();
    let l = log.clone();
    let g = spawn(move || {
        let me = m.get().expect("handle published");
        let mut out = Vec::new();
        match me.get() {
            Err(GreenletError::JoinSelf) => out.push("get: JoinSelf".to_owned()),
            other => out.push(format!("get: unexpected {other:?}")),
        }
        match me.get_timeout(Duration::from_secs(1)) {
            Err(GreenletError::JoinSelf) => out.push("get_timeout: JoinSelf".into()),
            other => out.push(format!("get_timeout: unexpected {other:?}")),
        }
        l.push("still running");
        out.join("; ")
    });
    let l2 = log.clone();
    let bystander = spawn(move || l2.push("bystander"));
    assert!(me.set(g.clone()).is_ok());
    let (out, took) = timed(|| g.get().unwrap());
    assert!(
        took < Duration::from_millis(500),
        "self-waits must not wait: {took:?}"
    );
    assert!(out.starts_with("get: "), "{out}");
    assert_eq!(out, "get: JoinSelf; get_timeout: JoinSelf");
    assert_eq!(log.entries(), ["still running", "bystander"]);
    bystander.join().unwrap();

    // join on yourself is an error value, not a panic: nothing is reported.
    let reports = Reports::install();
    type Joiner = Greenlet<Result<(), WaitError>>;
    let me2: Rc<OnceCell<Joiner>> = Rc::new(OnceCell::new());
    let m2 = me2.clone();
    let j = spawn(move || m2.get().expect("handle").join());
    assert!(me2.set(j.clone()).is_ok());
    assert!(matches!(j.get().unwrap(), Err(WaitError::JoinSelf)));
    assert!(
        reports.is_empty(),
        "a self-join is not a failure of the greenlet"
    );
    drop((me, me2));
    quiet();
}
