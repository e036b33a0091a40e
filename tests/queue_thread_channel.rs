//! `greenlet::queue::thread_channel`: OS threads feeding greenlets and
//! back, disconnection, timeouts, and greenlets killed while blocked.

mod common;

use std::rc::Rc;
use std::time::Duration;

use common::{LONG, PROMPT, TICK, assert_tick, quiet, timed};
use greenlet::queue::{
    RecvError, RecvTimeoutError, SendError, ThreadReceiver, TryRecvError, thread_channel,
};
use greenlet::{KillOptions, sleep, spawn};

const ZERO: Duration = Duration::ZERO;

fn assert_send_sync<T: Send + Sync>() {}
fn assert_send<T: Send>() {}

#[test]
fn the_ends_cross_threads() {
    assert_send_sync::<greenlet::queue::ThreadSender<String>>();
    assert_send::<ThreadReceiver<String>>();
}

#[test]
fn several_threads_feed_greenlets_and_get_answers_back() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 250;
    greenlet::run(|| {
        let (jobs_tx, jobs_rx) = thread_channel::<(u64, u64)>();
        let (done_tx, done_rx) = thread_channel::<(u64, u64)>();
        let jobs_rx = Rc::new(jobs_rx);
        // Four greenlets share the receiver; each answers on done_tx.
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let (rx, tx) = (jobs_rx.clone(), done_tx.clone());
                spawn(move || {
                    let mut n = 0u64;
                    while let Ok((thread, v)) = rx.recv() {
                        sleep(ZERO);
                        tx.send((thread, v * 2)).unwrap();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        drop(done_tx);
        let feeders: Vec<_> = (0..THREADS)
            .map(|t| {
                let tx = jobs_tx.clone();
                std::thread::spawn(move || {
                    for v in 0..PER_THREAD {
                        tx.send((t, v)).unwrap();
                        if v % 50 == 0 {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                })
            })
            .collect();
        drop(jobs_tx);
        // A plain thread collects the answers (blocking on the condvar).
        let collector = std::thread::spawn(move || {
            let mut per_thread = vec![Vec::new(); THREADS as usize];
            while let Ok((t, v)) = done_rx.recv_timeout(PROMPT) {
                per_thread[t as usize].push(v);
            }
            per_thread
        });
        let handled: u64 = workers.iter().map(|w| w.get().unwrap()).sum();
        assert_eq!(handled, THREADS * PER_THREAD);
        for f in feeders {
            f.join().unwrap();
        }
        let per_thread = collector.join().unwrap();
        for answers in per_thread {
            let mut sorted = answers.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..PER_THREAD).map(|v| v * 2).collect::<Vec<_>>());
        }
        assert_eq!(jobs_rx.try_recv(), Err(TryRecvError::Disconnected));
        quiet();
    });
}

#[test]
fn a_greenlet_waiting_on_a_thread_blocks_only_itself() {
    greenlet::run(|| {
        let (tx, rx) = thread_channel::<&str>();
        let (go_tx, go_rx) = thread_channel::<()>();
        let waiter = spawn(move || rx.recv());
        let w = waiter.clone();
        // Other greenlets keep running while `waiter` blocks; only then is
        // the thread told to send.
        let ticks = spawn(move || {
            let mut n = 0;
            for _ in 0..10 {
                sleep(Duration::from_millis(2));
                n += 1;
            }
            let still_waiting = !w.is_ready();
            go_tx.send(()).unwrap();
            (n, still_waiting)
        });
        let sender = std::thread::spawn(move || {
            go_rx.recv().unwrap();
            tx.send("late").unwrap();
        });
        assert_eq!(ticks.get().unwrap(), (10, true));
        assert_eq!(waiter.get().unwrap(), Ok("late"));
        sender.join().unwrap();
        quiet();
    });
}

#[test]
fn disconnection_is_std_mpsc() {
    greenlet::run(|| {
        let (tx, rx) = thread_channel::<u8>();
        let tx2 = tx.clone();
        let waiter = spawn(move || {
            let first = rx.recv();
            let second = rx.recv();
            (first, second, rx)
        });
        sleep(ZERO);
        std::thread::spawn(move || {
            tx.send(1).unwrap();
            drop(tx);
            drop(tx2); // the last sender: wakes the waiter with an error
        })
        .join()
        .unwrap();
        let (first, second, rx) = waiter.take().unwrap();
        assert_eq!((first, second), (Ok(1), Err(RecvError)));
        assert_eq!(rx.recv_timeout(LONG), Err(RecvTimeoutError::Disconnected));
        let (tx, rx) = thread_channel::<String>();
        drop(rx);
        assert_eq!(tx.send("x".into()), Err(SendError(String::from("x"))));
        quiet();
    });
}

#[test]
fn recv_timeout_lasts_its_band_in_greenlets_and_threads() {
    greenlet::run(|| {
        let (tx, rx) = thread_channel::<u8>();
        let (r, took) = timed(|| rx.recv_timeout(TICK));
        assert_eq!(r, Err(RecvTimeoutError::Timeout));
        assert_tick("recv_timeout on the native stack", took);
        let (r, took) = spawn(move || timed(|| rx.recv_timeout(TICK)))
            .take()
            .unwrap();
        assert_eq!(r, Err(RecvTimeoutError::Timeout));
        assert_tick("recv_timeout in a greenlet", took);
        drop(tx);
        quiet();
    });
    let (_tx, rx) = thread_channel::<u8>();
    let (r, took) = timed(|| rx.recv_timeout(TICK));
    assert_eq!(r, Err(RecvTimeoutError::Timeout));
    assert_tick("recv_timeout on a plain thread", took);
}

#[test]
fn a_greenlet_killed_while_picked_passes_the_wake_up_on() {
    greenlet::run(|| {
        let (tx, rx) = thread_channel::<u32>();
        let rx = Rc::new(rx);
        let (r1, r2) = (rx.clone(), rx.clone());
        let victim = spawn(move || r1.recv());
        let next = spawn(move || r2.recv_timeout(PROMPT));
        sleep(ZERO);
        // Sent from another thread: the victim (first in line) is picked
        // and its hub is posted a wake-up.
        std::thread::spawn(move || {
            tx.send(5).unwrap();
            tx // keep the sender alive: no disconnection
        })
        .join()
        .map(|tx| {
            victim
                .kill_with_options(KillOptions::new().nowait())
                .unwrap();
            victim.join().unwrap();
            assert_eq!(next.get().unwrap(), Ok(5));
            drop(tx);
        })
        .unwrap();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        quiet();
    });
}

#[test]
fn a_timeout_in_a_greenlet_leaves_no_trace() {
    greenlet::run(|| {
        let (tx, rx) = thread_channel::<u32>();
        let r = greenlet::with_timeout(Duration::from_millis(5), || rx.recv());
        assert!(r.is_err());
        tx.send(1).unwrap();
        assert_eq!(rx.recv(), Ok(1));
        drop(tx);
        quiet();
    });
}
