//! `HubHandle::post` racing the end of a hub scope (issue 12 §3): `Ok`
//! means the closure runs, `Err(HubClosed)` means it was dropped, on the
//! caller's thread. Bounded: a few seconds in all.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use greenlet::hub::{self, HubClosed};

/// Counts its drops, and on which thread the last one happened.
struct Tracked {
    dropped: Arc<AtomicU64>,
    on_caller: Arc<AtomicU64>,
    caller: ThreadId,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        if std::thread::current().id() == self.caller {
            self.on_caller.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[test]
fn ok_means_it_runs_err_means_it_was_dropped() {
    let budget = Instant::now() + Duration::from_secs(3);
    let mut iterations = 0u32;
    let (mut total_ok, mut total_err) = (0u64, 0u64);
    while iterations < 2000 && (iterations < 50 || Instant::now() < budget) {
        iterations += 1;
        let executed = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel();
        let ex = Arc::clone(&executed);
        // Thread B: posts until the hub is closed.
        let poster = std::thread::spawn(move || {
            let handle: hub::HubHandle = rx.recv().expect("handle");
            let me = std::thread::current().id();
            let (dropped, on_caller) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
            let mut ok = 0u64;
            loop {
                let tracked = Tracked {
                    dropped: Arc::clone(&dropped),
                    on_caller: Arc::clone(&on_caller),
                    caller: me,
                };
                let ex = Arc::clone(&ex);
                match handle.post(move || {
                    let _t = &tracked;
                    ex.fetch_add(1, Ordering::Relaxed);
                }) {
                    Ok(()) => ok += 1,
                    Err(HubClosed) => {
                        // The refused closure was dropped here, before
                        // `post` returned (accepted ones drop on the hub's
                        // thread after running).
                        assert_eq!(on_caller.load(Ordering::Relaxed), 1);
                        return (ok, dropped);
                    }
                }
            }
        });
        // Thread A: a hub scope that ends while B posts.
        let spin = Duration::from_micros(u64::from(iterations % 7) * 50);
        let scope = std::thread::spawn(move || {
            greenlet::run(|| {
                tx.send(hub::handle()).expect("send the handle");
                let end = Instant::now() + spin;
                while Instant::now() < end {
                    greenlet::sleep(Duration::ZERO);
                }
            });
        });
        // A scope end that never finishes (teardown taking posts for ever
        // from a thread that never stops posting) must fail, not hang.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !scope.is_finished() {
            assert!(
                Instant::now() < deadline,
                "iteration {iterations}: the hub scope did not end within 10 s while \
                 another thread posted (the hub never closed its handles)"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        scope.join().expect("scope thread");
        let (ok, dropped) = poster.join().expect("poster thread");
        let ran = executed.load(Ordering::Relaxed);
        // Every closure is dropped exactly once: the ones that ran, and the
        // one refused.
        assert_eq!(dropped.load(Ordering::Relaxed), ok + 1);
        assert_eq!(
            ok, ran,
            "iteration {iterations}: {ok} posts returned Ok but {ran} ran"
        );
        total_ok += ok;
        total_err += 1;
    }
    println!("{iterations} scopes ended under posting: {total_ok} posts ran, {total_err} refused");
}

/// A thread that posts and then drops its handle, racing the hub deciding
/// to wait: the hub must learn that the last handle is gone and run dry. It
/// used to keep waiting in `epoll_wait` for good when the drop came after
/// its "is a handle alive?" check (the thread pool does exactly this after
/// every job). Each round is bounded by `join_timeout`.
#[test]
fn the_last_handle_dropped_after_a_post_lets_the_hub_run_dry() {
    greenlet::run(|| {
        let budget = Instant::now() + Duration::from_secs(3);
        let mut round = 0u32;
        while round < 3000 && (round < 100 || Instant::now() < budget) {
            round += 1;
            let h = hub::handle();
            let spins = (round % 64) * 50;
            let t = std::thread::spawn(move || {
                h.post(|| ()).unwrap();
                // Sometimes after the hub took the post and went to wait.
                for _ in 0..spins {
                    std::hint::spin_loop();
                }
                drop(h);
            });
            assert!(
                hub::join_timeout(Duration::from_secs(5)),
                "round {round}: the hub kept waiting after the last handle went away"
            );
            t.join().unwrap();
        }
        // A clone keeps the hub waiting until the last copy goes.
        let h = hub::handle();
        let h2 = h.clone();
        drop(h);
        assert!(!hub::join_timeout(Duration::from_millis(20)));
        let t = std::thread::spawn(move || drop(h2));
        assert!(hub::join_timeout(Duration::from_secs(5)));
        t.join().unwrap();
    });
}
