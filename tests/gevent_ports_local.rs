//! Ports of gevent's `src/gevent/tests/test__local.py` to
//! `greenlet_local!`.
//!
//! Most of gevent's tests are about Python attribute machinery of `local`
//! subclasses (slots, descriptors, `__dict__`, copy, ABCs, zope
//! interfaces) and have no equivalent for a typed static key. Ported: the
//! per-greenlet values (`test_objects`), the class default seen by every
//! greenlet (`test_class_attr`), and values dropped when their greenlet
//! dies (`test_locals_collected_when_greenlet_dead_but_still_referenced`,
//! gevent#387).

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use common::{Log, quiet};
use greenlet::{greenlet_local, sleep, spawn};

/// Logs its creation and its drop (gevent's `Sentinel`).
struct Sentinel(Log);

impl Sentinel {
    fn new(log: &Log) -> Sentinel {
        log.push("created");
        Sentinel(log.clone())
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        self.0.push("deleted");
    }
}

greenlet_local! {
    static PATH: RefCell<String> = RefCell::new(String::new());
    static CLASS_PROP: Cell<u32> = Cell::new(42);
    static SENTINEL: RefCell<Option<Sentinel>> = RefCell::new(None);
}

/// `test__local.py::TestGeventLocal::test_objects`: each greenlet sees its
/// own value.
#[greenlet::test]
fn test_objects() {
    PATH.set("123".to_owned());
    let other = spawn(|| {
        PATH.set("123".to_owned());
        let same = PATH.with_borrow(|p| p == "123");
        PATH.set("321".to_owned());
        (same, PATH.with_borrow(String::clone))
    });
    assert_eq!(other.get().unwrap(), (true, "321".to_owned()));
    assert_eq!(PATH.with_borrow(String::clone), "123");
    quiet();
}

/// `test__local.py::TestGeventLocal::test_class_attr`: the initial value
/// is the default in every greenlet; a greenlet's change is its own.
#[greenlet::test]
fn test_class_attr() {
    assert_eq!(CLASS_PROP.get(), 42);
    CLASS_PROP.set(1);
    assert_eq!(CLASS_PROP.get(), 1);
    assert_eq!(spawn(|| CLASS_PROP.get()).get().unwrap(), 42);
    CLASS_PROP.set(42);
    assert_eq!(CLASS_PROP.get(), 42);
    quiet();
}

/// `test__local.py::TestGeventLocal::test_locals_collected_when_greenlet_dead_but_still_referenced`
/// (gevent#387): each greenlet's value is dropped when it dies, even while
/// its handle is still held.
#[greenlet::test]
fn test_locals_collected_when_greenlet_dead_but_still_referenced() {
    let log = Log::new();
    let greenlets: Vec<_> = (0..5)
        .map(|_| {
            let log = log.clone();
            spawn(move || {
                SENTINEL.with_borrow_mut(|s| *s = Some(Sentinel::new(&log)));
            })
        })
        .collect();
    sleep(std::time::Duration::ZERO);
    assert!(greenlets.iter().all(|g| g.is_dead()));
    sleep(std::time::Duration::ZERO);
    assert_eq!(log.count("created"), 5);
    assert_eq!(log.count("deleted"), 5);
    // Killed greenlets drop theirs too.
    let holder = Rc::new(Cell::new(false));
    let killed = {
        let (log, holder) = (log.clone(), holder.clone());
        spawn(move || {
            SENTINEL.with_borrow_mut(|s| *s = Some(Sentinel::new(&log)));
            holder.set(true);
            sleep(std::time::Duration::from_secs(60));
        })
    };
    sleep(std::time::Duration::ZERO);
    assert!(holder.get());
    killed.kill().unwrap();
    assert_eq!((log.count("created"), log.count("deleted")), (6, 6));
    drop(greenlets);
    quiet();
}
