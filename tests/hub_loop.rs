//! The hub loop: ready-queue order and batching, `hub::join`, cross-thread
//! `HubHandle::post`, counters, the error handler, panics, `hub::destroy`,
//! and the stack pool.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{
    DropLog, LONG, Log, PROMPT, Reports, Shutdown, TICK, assert_band, assert_contains,
    assert_quiet, assert_tick, quiet, timed,
};
use greenlet::hub::{self, HubClosed, HubHandle};
use greenlet::{Builder, Greenlet, GreenletError, getcurrent, sleep, spawn};

#[greenlet::test]
fn the_ready_queue_is_fifo_and_new_work_waits_for_the_next_iteration() {
    for _round in 0..2 {
        let log = Log::new();
        let l = log.clone();
        let a = spawn(move || {
            l.push("a");
            let l2 = l.clone();
            // Spawned during this iteration: runs in the next one.
            spawn(move || l2.push("c"));
        });
        let l = log.clone();
        let b = spawn(move || l.push("b"));
        sleep(Duration::ZERO);
        assert_eq!(log.entries(), ["a", "b"], "c waits for the next iteration");
        sleep(Duration::ZERO);
        assert_eq!(log.entries(), ["a", "b", "c"]);
        assert!(a.is_ready() && b.is_ready());
        quiet();
    }
}

#[greenlet::test]
fn hub_join_runs_everything_to_completion() {
    for _round in 0..2 {
        let log = Log::new();
        let t0 = Instant::now();
        for (name, ms) in [("slow", 50u64), ("fast", 5), ("mid", 20)] {
            let l = log.clone();
            spawn(move || {
                sleep(Duration::from_millis(ms));
                l.push(name);
            });
        }
        hub::join();
        assert_tick("hub::join with a 50 ms sleeper", t0.elapsed());
        assert_eq!(log.entries(), ["fast", "mid", "slow"]);
        assert_quiet();
    }
}

#[greenlet::test]
fn hub_join_timeout_gives_up_after_the_timeout() {
    let g = spawn(|| sleep(LONG));
    let (done, took) = timed(|| hub::join_timeout(TICK));
    assert!(!done);
    assert_tick("hub::join_timeout(50ms)", took);
    assert!(!g.is_ready());
    g.kill().unwrap();
    let (done, took) = timed(|| hub::join_timeout(LONG));
    assert!(done);
    assert!(took < PROMPT);
    quiet();
}

#[greenlet::test]
fn only_the_native_stack_can_join_the_hub() {
    let reports = Reports::install();
    let g = spawn(hub::join);
    let h = spawn(|| hub::join_timeout(Duration::from_millis(1)));
    let e = g.get().unwrap_err();
    assert_contains(&e.to_string(), &["hub::join", "native stack"]);
    let e = h.get().unwrap_err();
    assert_contains(&e.to_string(), &["hub::join_timeout", "native stack"]);
    assert_eq!(reports.take().len(), 2);
    let d = spawn(hub::destroy);
    let e = d.get().unwrap_err();
    assert_contains(&e.to_string(), &["hub::destroy"]);
    assert_eq!(reports.take().len(), 1);
    quiet();
}

thread_local! {
    static VICTIM: RefCell<Option<Greenlet<()>>> = const { RefCell::new(None) };
    static POSTED: Cell<u32> = const { Cell::new(0) };
}

#[greenlet::test]
fn a_post_from_another_thread_wakes_the_hub_and_runs_on_its_thread() {
    for _round in 0..2 {
        let g = spawn(|| sleep(Duration::MAX));
        VICTIM.with(|v| *v.borrow_mut() = Some(g.clone()));
        let handle = hub::handle();
        let hub_thread = std::thread::current().id();
        let (tx, rx) = mpsc::channel();
        let t0 = Instant::now();
        let poster = std::thread::spawn(move || {
            std::thread::sleep(TICK);
            handle
                .post(move || {
                    // Runs on the hub's thread, as a hub callback.
                    let ok = std::thread::current().id() == hub_thread && getcurrent().is_hub();
                    tx.send(ok).expect("receiver alive");
                    let victim = VICTIM.with(|v| v.borrow_mut().take());
                    if let Some(victim) = victim {
                        victim.kill_nowait();
                    }
                })
                .expect("hub alive");
        });
        // Without the handle this would be LoopExit; with it the hub waits
        // for the post, which kills the sleeper.
        g.join().unwrap();
        assert_tick("join woken by a post after 50 ms", t0.elapsed());
        assert_eq!(
            rx.recv_timeout(PROMPT),
            Ok(true),
            "post ran on the hub thread, on the hub"
        );
        assert!(g.is_successful());
        poster.join().expect("poster thread");
        quiet();
    }
}

#[greenlet::test]
fn hub_join_waits_while_a_handle_is_alive() {
    let handle = hub::handle();
    let t0 = Instant::now();
    let poster = std::thread::spawn(move || {
        std::thread::sleep(TICK);
        handle
            .post(|| POSTED.with(|p| p.set(p.get() + 1)))
            .expect("hub alive");
        // Dropping the last handle lets hub::join return.
    });
    hub::join();
    assert_tick("hub::join until the handle is dropped", t0.elapsed());
    assert_eq!(POSTED.with(Cell::get), 1, "the post ran exactly once");
    poster.join().expect("poster thread");
    quiet();
}

#[greenlet::test]
fn posts_are_counted_until_they_run_and_their_panics_are_reported() {
    let reports = Reports::install();
    let handle = hub::handle();
    let h2 = handle.clone();
    std::thread::spawn(move || {
        h2.post(|| POSTED.with(|p| p.set(p.get() + 10)))
            .expect("hub alive");
        h2.post(|| panic!("post boom")).expect("hub alive");
        h2.post(|| POSTED.with(|p| p.set(p.get() + 1)))
            .expect("hub alive");
    })
    .join()
    .expect("poster thread");
    assert!(hub::stats().callbacks >= 1, "{:?}", hub::stats());
    assert_eq!(
        POSTED.with(Cell::get),
        0,
        "posts run only when the hub runs"
    );
    drop(handle);
    quiet();
    assert_eq!(
        POSTED.with(Cell::get),
        11,
        "the posts after the panicking one still ran"
    );
    let r = reports.take_one();
    assert_eq!(r.context, "hub callback");
    assert_contains(&r.error.to_string(), &["post boom"]);
}

#[greenlet::test]
fn hub_handle_is_send_and_sync_and_fails_once_the_hub_is_gone() {
    fn assert_send_sync<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_send_sync::<HubHandle>();

    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        greenlet::run(|| {
            tx.send(hub::handle()).expect("receiver alive");
            // The end of this scope closes the thread's hub.
        });
    });
    worker.join().expect("worker thread");
    let handle = rx.recv().expect("handle sent");
    assert_eq!(handle.post(|| ()), Err(HubClosed));
    assert_eq!(HubClosed.to_string(), "the hub is closed");

    let mine = hub::handle();
    hub::destroy();
    assert_eq!(mine.post(|| ()), Err(HubClosed), "destroy closes handles");
    drop(mine);
    quiet();
}

#[greenlet::test]
fn link_notifications_are_counted_until_they_run() {
    let g = spawn(|| ());
    let fired = Rc::new(Cell::new(0));
    let f = fired.clone();
    g.rawlink(move || f.set(f.get() + 1));
    sleep(Duration::ZERO); // g runs and dies in this iteration
    assert!(g.is_ready());
    assert_eq!(fired.get(), 0, "links run on the next loop turn");
    assert_eq!(hub::stats().callbacks, 1, "{:?}", hub::stats());
    sleep(Duration::ZERO);
    assert_eq!(fired.get(), 1);
    assert_eq!(hub::stats().callbacks, 0);
    quiet();
}

#[greenlet::test]
fn the_error_handler_reports_each_failure_once_with_name_and_message() {
    let reports = Reports::install();
    let g = Builder::new()
        .name("worker")
        .spawn(|| -> u8 { panic!("worker boom") })
        .expect("spawn");
    g.join().unwrap();
    quiet();
    let r = reports.take_one();
    assert_eq!(r.context, "greenlet");
    assert_contains(&r.greenlet, &["Greenlet", "\"worker\""]);
    assert_contains(&r.line, &["\"worker\"", "failed", "worker boom"]);
    assert!(matches!(&r.error, GreenletError::Panicked(p) if p.message() == "worker boom"));

    // Killed with GreenletExit: not an error, not reported.
    let k = spawn(|| sleep(LONG));
    sleep(Duration::ZERO);
    k.kill().unwrap();
    // Killed with an error: reported.
    let e = Builder::new()
        .name("stopped")
        .spawn(|| sleep(LONG))
        .expect("spawn");
    sleep(Duration::ZERO);
    e.kill_with(Shutdown("by test")).unwrap();
    quiet();
    let r = reports.take_one();
    assert_contains(&r.line, &["stopped", "shutdown: by test"]);
}

#[greenlet::test]
fn the_error_handler_can_be_replaced() {
    let first = Reports::install();
    spawn(|| panic!("one")).join().unwrap();
    let second = Reports::install(); // replaces the first handler
    spawn(|| panic!("two")).join().unwrap();
    spawn(|| panic!("three")).join().unwrap();
    quiet();
    assert_eq!(first.len(), 1);
    assert_eq!(second.len(), 2);
    assert_contains(&first.all()[0].line, &["one"]);
    assert_contains(&second.all()[1].line, &["three"]);
    drop(second);
    drop(first);
}

#[greenlet::test]
fn a_panicking_error_handler_does_not_stop_the_hub() {
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    hub::set_error_handler(move |_| {
        c.set(c.get() + 1);
        panic!("handler boom");
    });
    let bad = spawn(|| panic!("body boom"));
    let good = spawn(|| {
        sleep(Duration::from_millis(1));
        "fine"
    });
    assert_eq!(good.get().unwrap(), "fine");
    bad.join().unwrap();
    hub::reset_error_handler();
    assert_eq!(calls.get(), 1);
    assert!(bad.exception().is_some());
    quiet();
}

#[greenlet::test]
fn a_panic_ends_one_greenlet_only() {
    for _round in 0..2 {
        let reports = Reports::install();
        let log = Log::new();
        let gs: Vec<_> = (0..4)
            .map(|i| {
                let l = log.clone();
                spawn(move || -> u32 {
                    l.push(format!("{i} start"));
                    sleep(Duration::ZERO);
                    if i == 1 {
                        panic!("only {i}");
                    }
                    l.push(format!("{i} end"));
                    i
                })
            })
            .collect();
        let results: Vec<_> = gs
            .iter()
            .map(|g| g.get().map_err(|e| e.to_string()))
            .collect();
        assert_eq!(results[0], Ok(0));
        assert!(
            results[1].as_ref().is_err_and(|e| e.contains("only 1")),
            "{results:?}"
        );
        assert_eq!(results[2], Ok(2));
        assert_eq!(results[3], Ok(3));
        assert_eq!(
            log.entries(),
            [
                "0 start", "1 start", "2 start", "3 start", "0 end", "2 end", "3 end"
            ]
        );
        assert_eq!(reports.take_one().context, "greenlet");
        quiet();
    }
}

#[greenlet::test]
fn destroy_kills_what_is_left_runs_destructors_and_the_hub_is_reusable() {
    for _round in 0..2 {
        let log = Log::new();
        let sleepers: Vec<_> = (0..3)
            .map(|i| {
                let l = log.clone();
                let name: &'static str = ["s0", "s1", "s2"][i];
                spawn(move || {
                    let _g = DropLog::new(name, &l);
                    sleep(LONG);
                    l.push("woke");
                })
            })
            .collect();
        let links = Log::new();
        for s in &sleepers {
            let l = links.clone();
            s.link(move |_| l.push("link"));
        }
        sleep(Duration::ZERO);
        let l = log.clone();
        let never = spawn(move || l.push("never ran"));
        assert_eq!(hub::stats().greenlets, 4);

        let ((), took) = timed(hub::destroy);
        assert!(took < PROMPT);
        assert_eq!(log.entries(), ["drop s0", "drop s1", "drop s2"]);
        assert!(sleepers.iter().all(|s| s.is_ready() && s.is_successful()));
        assert!(never.is_ready(), "a never-run greenlet is dead too");
        assert_eq!(links.count("link"), 3, "links fire exactly once: {links:?}");
        assert_quiet();

        // The hub works again.
        assert_eq!(spawn(|| 7).get().unwrap(), 7);
        let ((), took) = timed(|| sleep(Duration::from_millis(5)));
        assert!(took >= Duration::from_millis(5));
        quiet();
        assert_eq!(links.count("link"), 3);
        assert_eq!(log.count("never ran"), 0);
    }
}

/// Env var set in the child process of [`destroy_aborts_on_a_greenlet_that_refuses_to_die`].
const CHILD_ENV: &str = "GREENLET_HUB_LOOP_CHILD";

/// `hub::destroy` kills a greenlet that swallows every kill three times,
/// then aborts the process naming it (leaking its frames could leave
/// borrows of freed thread-locals behind). Runs in a child process.
#[test]
fn destroy_aborts_on_a_greenlet_that_refuses_to_die() {
    if std::env::var_os(CHILD_ENV).is_some() {
        greenlet::run(|| {
            Builder::new()
                .name("stubborn")
                .spawn(|| {
                    let mut attempts = 0;
                    loop {
                        // Wrong on purpose: swallows every kill.
                        let r =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sleep(LONG)));
                        if r.is_err() {
                            attempts += 1;
                            eprintln!("SWALLOWED={attempts}");
                        }
                    }
                })
                .expect("spawn");
            sleep(Duration::ZERO);
            hub::destroy();
            eprintln!("DESTROY RETURNED");
        });
        return;
    }
    use std::os::unix::process::ExitStatusExt;
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let out = std::process::Command::new(exe)
        .args([
            "destroy_aborts_on_a_greenlet_that_refuses_to_die",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the test binary can be re-run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "expected SIGABRT, got {}\n{stderr}",
        out.status
    );
    assert!(!stderr.contains("DESTROY RETURNED"), "{stderr}");
    let swallowed: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("SWALLOWED="))
        .collect();
    assert_eq!(
        swallowed,
        ["1", "2", "3"],
        "killed three times, then given up: {stderr}"
    );
    assert_contains(&stderr, &["stubborn", "refuses to die"]);
}

#[greenlet::test]
fn a_handle_to_a_greenlet_ended_by_destroy_is_inert() {
    let reports = Reports::install();
    let old = spawn(|| sleep(LONG));
    sleep(Duration::ZERO);
    hub::destroy();
    assert!(old.is_ready() && old.is_successful(), "{old}");
    assert_eq!(hub::stats().greenlets, 0);

    // A newer greenlet must not be touched through the stale handle.
    let fresh = spawn(|| {
        sleep(Duration::from_millis(20));
        "fresh"
    });
    sleep(Duration::ZERO);
    old.kill_nowait();
    old.kill().expect("killing a dead greenlet is a no-op");
    assert_eq!(
        fresh.get().unwrap(),
        "fresh",
        "a stale handle killed an unrelated greenlet"
    );
    let s = hub::stats();
    assert!(
        s.greenlets == 0 && s.timers == 0 && s.callbacks == 0,
        "{s:?}"
    );
    assert!(reports.is_empty(), "{:?}", reports.all());
}

#[greenlet::test]
fn the_end_of_another_threads_scope_ends_its_greenlets() {
    let (tx, rx) = mpsc::channel::<&'static str>();
    struct Tell(mpsc::Sender<&'static str>);
    impl Drop for Tell {
        fn drop(&mut self) {
            self.0.send("unwound").expect("receiver alive");
        }
    }
    let worker = std::thread::spawn(move || {
        let t = tx.clone();
        let (alive, g) = greenlet::run(move || {
            let tell = Tell(t.clone());
            let g = spawn(move || {
                let _tell = tell;
                sleep(LONG);
            });
            sleep(Duration::ZERO);
            t.send("running").expect("receiver alive");
            (hub::stats().greenlets, g)
        });
        // After the scope: the greenlet is dead and was unwound.
        tx.send("run returned").expect("receiver alive");
        (
            alive,
            g.is_ready(),
            g.is_successful(),
            hub::stats().greenlets,
        )
    });
    assert_eq!(worker.join().expect("worker"), (1, true, true, 0));
    let order: Vec<_> = rx.try_iter().collect();
    assert_eq!(
        order,
        ["running", "unwound", "run returned"],
        "the destructor ran before run() returned"
    );
    // This thread's hub was never involved.
    assert_quiet();
}

#[greenlet::test]
fn each_thread_has_its_own_hub() {
    let mine = spawn(|| sleep(Duration::from_millis(20)));
    let other = std::thread::spawn(|| {
        // A thread of its own needs a scope of its own.
        greenlet::run(|| {
            let before = hub::stats().greenlets;
            let gs: Vec<_> = (0..3).map(|i| spawn(move || i)).collect();
            let during = hub::stats().greenlets;
            let sum: i32 = gs.iter().map(|g| g.get().unwrap()).sum();
            hub::join();
            (before, during, sum, hub::stats().is_quiet())
        })
    })
    .join()
    .expect("other thread");
    assert_eq!(other, (0, 3, 3, true));
    assert_eq!(hub::stats().greenlets, 1, "only our own greenlet");
    mine.join().unwrap();
    quiet();
}

#[greenlet::test]
fn finished_stacks_are_pooled_and_reused() {
    let base = hub::stats().stacks_allocated;
    for i in 0..20 {
        assert_eq!(spawn(move || i).get().unwrap(), i);
    }
    let s = hub::stats();
    assert!(
        s.stacks_allocated <= base + 1,
        "sequential spawn+join should reuse one stack: {s:?}"
    );
    assert_eq!(s.stacks_allocated, s.stacks_pooled);

    // Ten alive at once need ten stacks; they all return to the pool.
    let gs: Vec<_> = (0..10)
        .map(|_| spawn(|| sleep(Duration::from_millis(5))))
        .collect();
    sleep(Duration::ZERO);
    let busy = hub::stats();
    assert!(busy.stacks_allocated >= 10, "{busy:?}");
    assert!(busy.stacks_allocated - busy.stacks_pooled >= 10, "{busy:?}");
    for g in &gs {
        g.join().unwrap();
    }
    quiet();
    let peak = hub::stats().stacks_allocated;
    assert_eq!(hub::stats().stacks_pooled, peak);

    // A second wave reuses them: nothing new is mapped.
    let gs: Vec<_> = (0..10)
        .map(|_| spawn(|| sleep(Duration::from_millis(1))))
        .collect();
    for g in &gs {
        g.join().unwrap();
    }
    quiet();
    assert_eq!(
        hub::stats().stacks_allocated,
        peak,
        "the second wave mapped new stacks"
    );

    // A smaller pool limit unmaps the surplus.
    hub::set_stack_cache_limit(2);
    quiet();
    let s = hub::stats();
    assert!(s.stacks_allocated <= 2, "{s:?}");
    hub::set_stack_cache_limit(hub::DEFAULT_STACK_CACHE_LIMIT);
    quiet();
}

#[greenlet::test]
fn stack_size_settings() {
    assert_eq!(hub::default_stack_size(), hub::DEFAULT_STACK_SIZE);
    hub::set_default_stack_size(128 * 1024);
    assert_eq!(hub::default_stack_size(), 128 * 1024);
    assert_eq!(spawn(|| 1).get().unwrap(), 1);
    hub::set_default_stack_size(1);
    assert_eq!(
        hub::default_stack_size(),
        16 * 1024,
        "clamped to the minimum"
    );
    assert_eq!(spawn(|| 2).get().unwrap(), 2);
    hub::set_default_stack_size(hub::DEFAULT_STACK_SIZE);
    assert!(hub::max_live_stacks() > 1000);
    quiet();
}

#[greenlet::test]
fn timing_of_a_loop_with_only_timers() {
    // No poller, no fd: the hub waits for the next deadline and no longer.
    let t0 = Instant::now();
    let a = spawn(|| sleep(Duration::from_millis(20)));
    let b = spawn(|| sleep(TICK));
    a.join().unwrap();
    assert_band("first timer", t0.elapsed(), Duration::from_millis(20), TICK);
    b.join().unwrap();
    assert_tick("second timer", t0.elapsed());
    quiet();
}

#[greenlet::test]
fn blocking_calls_in_a_hub_callback_are_refused() {
    let reports = Reports::install();
    let sleeper = spawn(|| sleep(LONG));
    let g = spawn(|| ());
    let s = sleeper.clone();
    g.link(move |_| s.join().unwrap());
    let s = sleeper.clone();
    g.link(move |_| drop(s.get_timeout(Duration::from_millis(1))));
    g.link(move |_| greenlet::idle());
    g.join().unwrap();
    sleep(Duration::ZERO);
    let all = reports.take();
    assert_eq!(all.len(), 3, "{all:#?}");
    for r in &all {
        assert_eq!(r.context, "link callback");
        assert_contains(
            &r.error.to_string(),
            &["cannot block inside a hub callback"],
        );
    }
    assert_contains(&all[0].error.to_string(), &["Greenlet::join"]);
    assert_contains(&all[2].error.to_string(), &["idle"]);
    // Each refusal unwound its callback only: the native stack may block
    // again (the hub is not left "inside a callback").
    let ((), took) = timed(|| sleep(Duration::from_millis(5)));
    assert!(took >= Duration::from_millis(5), "{took:?}");
    assert_eq!(spawn(|| 3).get().unwrap(), 3);
    assert!(!sleeper.is_ready());
    sleeper.kill().unwrap();
    quiet();
}
