//! `hub::dump()`: every greenlet with id, name, spawn site, state, age and
//! the right wait target for each kind of wait; `LoopExit` and the
//! `#[greenlet::test]` leak error show the same lines.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use greenlet::hub::{self, GreenletState, WaitsOn};
use greenlet::{Builder, WaitError, idle, sleep, sleep_unref};

mod common;

#[track_caller]
fn named<T: 'static>(name: &str, f: impl FnOnce() -> T + 'static) -> greenlet::Greenlet<T> {
    Builder::new().name(name).spawn(f).unwrap()
}

fn find<'a>(dump: &'a hub::Dump, name: &str) -> &'a hub::GreenletInfo {
    dump.greenlets
        .iter()
        .find(|g| g.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("{name} not in the dump:\n{dump}"))
}

#[greenlet::test]
fn dump_lists_the_right_target_for_each_kind_of_wait() {
    let (a, _b) = UnixStream::pair().unwrap();
    let fd = a.as_raw_fd();
    let sleeper = named("sleeper", || sleep(Duration::from_secs(60)));
    let reader = named("reader", move || {
        greenlet::io::wait_read(&a, None).map(drop)
    });
    let target = sleeper.clone();
    let joiner = named("joiner", move || target.join().map(drop));
    let idler = named("idler", idle);
    let unstarted = named("unstarted", || ());
    let not_yet = Builder::new()
        .name("later")
        .spawn_later(Duration::from_secs(60), || ())
        .unwrap();
    // One pass: the first four start and block, `unstarted` runs to its
    // end; `late` is spawned after that pass.
    sleep(Duration::ZERO);
    assert!(unstarted.is_ready());
    let late = named("late", || ());
    let dump = hub::dump();
    assert_eq!(dump.greenlets.len(), 6, "{dump}");

    let s = find(&dump, "sleeper");
    assert_eq!(s.state, GreenletState::Suspended);
    match &s.waits_on {
        Some(WaitsOn::Timer {
            operation: "sleep",
            remaining: Some(left),
        }) => assert!(*left > Duration::from_secs(59) && *left <= Duration::from_secs(60)),
        other => panic!("sleeper waits on {other:?}"),
    }
    let at = s.spawned_at.unwrap();
    assert!(at.file().ends_with("hub_dump.rs") && at.line() > 25, "{at}");
    assert_eq!(s.id, 1, "ids count from 1 in spawn order");

    match &find(&dump, "reader").waits_on {
        Some(WaitsOn::Fd {
            operation: "wait_read",
            fd: f,
            readable: true,
            writable: false,
        }) => assert_eq!(*f, fd),
        other => panic!("reader waits on {other:?}"),
    }
    match &find(&dump, "joiner").waits_on {
        Some(WaitsOn::Join {
            operation: "Greenlet::join",
            id: 1,
            description,
        }) => assert!(description.contains("sleeper"), "{description}"),
        other => panic!("joiner waits on {other:?}"),
    }
    assert_eq!(
        find(&dump, "idler").waits_on,
        Some(WaitsOn::Other { operation: "idle" })
    );
    let l = find(&dump, "later");
    assert_eq!(l.state, GreenletState::NotStarted);
    assert!(matches!(
        l.waits_on,
        None | Some(WaitsOn::Timer {
            operation: "start_later",
            ..
        })
    ));
    assert_eq!(find(&dump, "late").state, GreenletState::NotStarted);
    let _ = (&unstarted, &not_yet);
    // The Display: a header, then one line per greenlet with the same text
    // as `lines()`.
    let text = dump.to_string();
    assert!(text.starts_with("hub of thread "), "{text}");
    for line in dump.lines() {
        assert!(text.contains(&line), "{line}");
    }
    assert!(
        text.contains("waits in wait_read (fd ") && text.contains(" readable)"),
        "{text}"
    );
    assert!(text.contains("waits in sleep (timer due in "), "{text}");
    for g in [&sleeper, &idler] {
        g.kill().unwrap();
    }
    reader.kill().unwrap();
    assert!(joiner.join().is_ok());
    late.join().unwrap();
    unstarted.join().unwrap();
    not_yet.kill().unwrap();
}

#[greenlet::test]
fn a_greenlet_sees_the_blocked_main_greenlet_and_itself_running() {
    let probe = named("probe", hub::dump);
    // The main greenlet waits for `probe` while it takes the dump.
    let dump = probe.get().unwrap();
    let main = dump
        .greenlets
        .iter()
        .find(|g| g.id == 0)
        .expect("the blocked main greenlet is listed");
    assert_eq!(main.state, GreenletState::Suspended);
    assert!(main.description.contains("native stack"), "{main}");
    assert!(
        matches!(
            &main.waits_on,
            Some(WaitsOn::Join {
                operation: "Greenlet::get",
                id: 1,
                ..
            })
        ),
        "{main}"
    );
    assert_eq!(find(&dump, "probe").state, GreenletState::Running);
}

#[greenlet::test]
fn ages_grow_in_real_time() {
    let g = named("old", || sleep(Duration::from_secs(60)));
    sleep(Duration::from_millis(30));
    let age = find(&hub::dump(), "old").age;
    // The coarse clock ticks every 1-4 ms.
    assert!(age >= Duration::from_millis(25), "{age:?}");
    assert!(age < Duration::from_secs(5), "{age:?}");
    g.kill().unwrap();
}

#[greenlet::test]
fn loop_exit_shows_the_dump_lines() {
    let g = named("stuck", || sleep_unref(Duration::from_secs(60)));
    sleep(Duration::ZERO);
    let before: Vec<String> = hub::dump().lines();
    let Err(WaitError::LoopExit(e)) = g.join() else {
        panic!("joining an unreferenced sleeper is a LoopExit");
    };
    assert_eq!(e.blocked().len(), 1);
    // Same line up to the age (which moved on).
    let prefix = |s: &str| s.split(", age ").next().unwrap().to_owned();
    assert_eq!(prefix(&e.blocked()[0]), prefix(&before[0]));
    assert!(
        e.blocked()[0].contains("waits in sleep_unref (timer due in "),
        "{e}"
    );
    assert!(e.to_string().contains("#1 <Greenlet \"stuck\""), "{e}");
    g.kill().unwrap();
}

/// The leak error lists the same lines as `dump()`.
#[greenlet::test]
#[should_panic(expected = "waits in sleep (timer due in")]
fn the_leak_error_shows_the_dump_lines() {
    let g = named("leaked", || sleep(Duration::from_secs(60)));
    sleep(Duration::ZERO);
    std::mem::forget(g);
}

#[greenlet::test]
fn dump_on_signal_refuses_signals_that_cannot_be_handled() {
    for signum in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, 0] {
        let e = hub::dump_on_signal(signum).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{signum}: {e}");
    }
}
