//! `#[greenlet] impl Run for …`: a struct that runs as a greenlet, with its
//! fields readable through the handle (gevent's `Greenlet` subclass).

use greenlet::{Greenlet, Run, greenlet, hub, sleep};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

fn assert_quiet() {
    hub::join();
    let stats = hub::stats();
    assert!(stats.is_quiet(), "hub not quiet: {stats:?}");
}

/// gevent's docs example: a subclass with its own attributes and `_run`.
struct Sleeper {
    seconds: f64,
    naps: Cell<u32>,
    log: Rc<RefCell<Vec<String>>>,
}

#[greenlet]
impl Run for Sleeper {
    // No `type Output`: inferred from `run`.
    fn run(&self) -> u32 {
        for _ in 0..3 {
            greenlet::sleep_secs(self.seconds).expect("a finite duration");
            self.naps.set(self.naps.get() + 1);
            self.log
                .borrow_mut()
                .push(format!("nap {}", self.naps.get()));
        }
        self.naps.get()
    }
}

fn sleeper(seconds: f64) -> Sleeper {
    Sleeper {
        seconds,
        naps: Cell::new(0),
        log: Rc::new(RefCell::new(Vec::new())),
    }
}

#[greenlet::test]
fn output_is_inferred_and_fields_are_read_through_the_handle() {
    let g: Greenlet<u32, Sleeper> = sleeper(0.0).spawn();
    assert_eq!(g.seconds, 0.0);
    assert_eq!(g.naps.get(), 0, "spawned, not run yet");
    sleep(Duration::ZERO);
    assert_eq!(g.naps.get(), 0, "the first nap is still going");
    sleep(Duration::ZERO);
    assert_eq!(g.naps.get(), 1, "state changes are visible while it runs");
    assert_eq!(g.get().unwrap(), 3);
    assert_eq!(g.naps.get(), 3);
    assert_eq!(*g.log.borrow(), ["nap 1", "nap 2", "nap 3"]);
    assert_quiet();
}

#[greenlet::test]
fn display_uses_the_struct_name() {
    let g = sleeper(0.0).spawn();
    assert!(g.to_string().starts_with("<Sleeper at 0x"), "{g}");
    assert_eq!(<Sleeper as Run>::class_name(), "Sleeper");
    g.join().unwrap();
    assert!(g.to_string().ends_with(": dead>"), "{g}");
    assert_quiet();
}

#[greenlet::test]
fn spawn_later_starts_after_the_delay() {
    let started = Instant::now();
    let g = sleeper(0.0).spawn_later(Duration::from_millis(30));
    assert!(g.is_started());
    sleep(Duration::from_millis(10));
    assert_eq!(g.naps.get(), 0);
    assert_eq!(g.get().unwrap(), 3);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(30), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(130), "{elapsed:?}");
    assert_quiet();
}

#[greenlet::test]
fn into_greenlet_is_unstarted_until_start() {
    let g = sleeper(0.0).into_greenlet();
    assert!(!g.is_started());
    sleep(Duration::ZERO);
    assert_eq!(g.naps.get(), 0);
    assert_eq!(hub::stats().stacks_allocated, 0, "unstarted holds no stack");
    g.start();
    assert_eq!(g.get().unwrap(), 3);
    assert_quiet();
}

#[greenlet::test]
fn kill_before_start_never_runs_run() {
    let g = sleeper(0.0).spawn();
    g.kill().unwrap();
    assert!(g.is_dead() && g.is_successful());
    assert_eq!(g.naps.get(), 0);
    assert!(g.log.borrow().is_empty());
    assert_quiet();
}

#[greenlet::test]
fn struct_outlives_the_greenlet_through_the_handle() {
    let g = sleeper(0.001).spawn();
    let clone = g.clone();
    g.join().unwrap();
    drop(g);
    assert_eq!(clone.naps.get(), 3);
    assert_eq!(clone.log.borrow().len(), 3);
    assert_quiet();
}

/// Explicit `Output`, `class` option, `name` and `stack_size` for the helpers.
struct Fetcher {
    url: String,
}

#[greenlet(class = "HttpFetcher", name = "fetch", stack_size = 64 * 1024)]
impl Run for Fetcher {
    type Output = Result<usize, String>;

    fn run(&self) -> Self::Output {
        if self.url.starts_with("http") {
            Ok(self.url.len())
        } else {
            Err(format!("bad url {}", self.url))
        }
    }
}

#[greenlet::test]
fn class_and_name_options() {
    let g = Fetcher {
        url: "http://x".into(),
    }
    .spawn();
    assert_eq!(g.name(), Some("fetch"));
    assert!(
        g.to_string().starts_with("<HttpFetcher \"fetch\" at 0x"),
        "{g}"
    );
    assert_eq!(g.get().unwrap(), Ok(8));
    let bad = Fetcher { url: "ftp".into() }.spawn();
    assert_eq!(bad.get().unwrap(), Err("bad url ftp".to_string()));
    assert!(
        bad.is_successful(),
        "an Err value is a value, not a failure"
    );
    assert_quiet();
}

/// Generic struct; `run` returns `()` (no return type).
struct Collector<T: Clone + 'static> {
    items: Vec<T>,
    seen: RefCell<Vec<T>>,
}

#[greenlet]
impl<T: Clone + 'static> Run for Collector<T> {
    fn run(&self) {
        for item in &self.items {
            sleep(Duration::ZERO);
            self.seen.borrow_mut().push(item.clone());
        }
    }
}

#[greenlet::test]
fn generic_struct_with_unit_output() {
    let g = Collector {
        items: vec!['a', 'b'],
        seen: RefCell::new(Vec::new()),
    }
    .spawn();
    let n = Collector {
        items: vec![1u8],
        seen: RefCell::new(Vec::new()),
    }
    .spawn();
    g.join().unwrap();
    n.join().unwrap();
    assert_eq!(*g.seen.borrow(), ['a', 'b']);
    assert_eq!(*n.seen.borrow(), [1]);
    assert!(g.to_string().starts_with("<Collector at "), "{g}");
    // `type Output = ()` was inferred: the handle's type says so (a compile
    // error otherwise), and the greenlet ended with that value.
    let _: &greenlet::Greenlet<(), Collector<char>> = &g;
    assert!(g.is_successful());
    assert!(matches!(g.try_get(), Some(Ok(()))), "{g}");
    assert_quiet();
}

/// `helpers = false`: the struct keeps its own `spawn`; the core API still works.
struct Custom;

impl Custom {
    fn spawn(self) -> &'static str {
        "my own spawn"
    }
}

#[greenlet(helpers = false)]
impl Run for Custom {
    fn run(&self) -> u8 {
        7
    }
}

#[greenlet::test]
fn helpers_false_leaves_the_struct_alone() {
    assert_eq!(Custom.spawn(), "my own spawn");
    let g = Greenlet::spawn_run(Custom);
    assert_eq!(g.get().unwrap(), 7);
    assert!(g.to_string().starts_with("<Custom at "));
    assert_quiet();
}

#[greenlet::test]
fn panic_in_run_is_reported_once_and_typed() {
    struct Crash {
        reason: &'static str,
    }
    #[greenlet]
    impl Run for Crash {
        fn run(&self) -> u8 {
            panic!("{}", self.reason)
        }
    }
    let reports = Rc::new(RefCell::new(Vec::new()));
    let r = reports.clone();
    hub::set_error_handler(move |report| r.borrow_mut().push(report.to_string()));
    let g = Crash { reason: "boom" }.spawn();
    assert!(matches!(g.get(), Err(greenlet::GreenletError::Panicked(_))));
    assert_eq!(g.reason, "boom");
    hub::reset_error_handler();
    assert_eq!(reports.borrow().len(), 1);
    assert!(
        reports.borrow()[0].starts_with("<Crash at "),
        "{:?}",
        reports.borrow()
    );
    assert_quiet();
}

#[greenlet::test]
fn link_exception_sees_the_struct_failure_once() {
    struct Fails {
        fail: bool,
    }
    #[greenlet]
    impl Run for Fails {
        fn run(&self) {
            greenlet::sleep(Duration::from_millis(1));
            assert!(!self.fail, "down");
        }
    }
    hub::set_error_handler(|_| {});
    let log = Rc::new(RefCell::new(Vec::new()));
    let (l1, l2) = (log.clone(), log.clone());
    let bad = Fails { fail: true }.spawn();
    let good = Fails { fail: false }.spawn();
    bad.link_exception(move |g| {
        let e = g.exception().expect("failed");
        l1.borrow_mut().push(format!("bad: {e}"));
    });
    good.link_exception(move |g| {
        l2.borrow_mut().push(format!("good: {:?}", g.exception()));
    });
    hub::join();
    hub::reset_error_handler();
    assert_eq!(log.borrow().len(), 1, "{:?}", log.borrow());
    assert!(log.borrow()[0].starts_with("bad: ") && log.borrow()[0].contains("down"));
    assert!(good.is_successful() && !bad.is_successful());
    assert_quiet();
}
