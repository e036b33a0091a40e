//! Fairness of the switch fast paths: while two greenlets ping-pong (with
//! `sleep(0)`, or over two queues) as fast as they can, a 5 ms timer still
//! fires on time, a readable fd still wakes its waiter, a post from another
//! thread still runs, `idle()` waits for them, a long turn among their short
//! ones is recorded, and a kill or a timeout aimed at one of the players
//! lands at its next switch. (Their boundaries take a path without timers,
//! fds, posts or idle waiters; these check that it notices each of them.)

mod common;

use std::cell::Cell;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{PROMPT, TICK_UPPER, assert_band, quiet};
use greenlet::queue::Queue;
use greenlet::{hub, idle, io::wait_read, sleep, spawn, with_timeout};

const FIVE_MS: Duration = Duration::from_millis(5);

/// Two greenlets alternating `sleep(0)` until `stop` is set (or `PROMPT`
/// passes); returns their handles (each yields its number of rounds).
fn yield_players(stop: &Rc<Cell<bool>>) -> [greenlet::Greenlet<u64>; 2] {
    let t0 = Instant::now();
    let player = |stop: Rc<Cell<bool>>| {
        spawn(move || {
            let mut rounds = 0u64;
            while !stop.get() && t0.elapsed() < PROMPT {
                rounds += 1;
                sleep(Duration::ZERO);
            }
            rounds
        })
    };
    [player(stop.clone()), player(stop.clone())]
}

/// Two greenlets passing a counter over two queues until `stop` is set
/// (or `PROMPT` passes). Each returns its number of round trips.
fn queue_players(stop: &Rc<Cell<bool>>) -> [greenlet::Greenlet<u64>; 2] {
    let t0 = Instant::now();
    let (a_to_b, b_to_a) = (Queue::<u64>::new(), Queue::<u64>::new());
    let (inbox, outbox) = (a_to_b.clone(), b_to_a.clone());
    let s = stop.clone();
    let b = spawn(move || {
        let mut rounds = 0u64;
        // `u64::MAX` is the "game over" token.
        loop {
            let v = inbox.get().unwrap();
            if v == u64::MAX {
                return rounds;
            }
            rounds += 1;
            outbox.put(v + 1).unwrap();
        }
    });
    let s2 = s.clone();
    let a = spawn(move || {
        let mut v = 0u64;
        let mut rounds = 0u64;
        while !s2.get() && t0.elapsed() < PROMPT {
            a_to_b.put(v).unwrap();
            let back = b_to_a.get().unwrap();
            assert_eq!(back, v + 1, "the counter comes back incremented");
            v = back;
            rounds += 1;
        }
        a_to_b.put(u64::MAX).unwrap();
        rounds
    });
    [a, b]
}

/// Sleeps 5 ms on another greenlet while `players` run; returns how long the
/// sleep took and stops the players.
fn timer_under(players: impl FnOnce(&Rc<Cell<bool>>) -> [greenlet::Greenlet<u64>; 2]) {
    let stop = Rc::new(Cell::new(false));
    let s = stop.clone();
    let timer = spawn(move || {
        let t0 = Instant::now();
        sleep(FIVE_MS);
        let took = t0.elapsed();
        s.set(true);
        took
    });
    let [a, b] = players(&stop);
    let took = timer.get().unwrap();
    let (ra, rb) = (a.get().unwrap(), b.get().unwrap());
    assert!(
        stop.get(),
        "the 5 ms timer never fired while the players ran"
    );
    assert!(ra > 0 && rb > 0, "both players ran ({ra}, {rb})");
    assert_band("5 ms timer under ping-pong", took, FIVE_MS, TICK_UPPER);
    quiet();
}

#[greenlet::test]
fn a_5ms_timer_fires_on_time_while_two_greenlets_sleep0_pingpong() {
    for _ in 0..3 {
        timer_under(yield_players);
    }
}

#[greenlet::test]
fn a_5ms_timer_fires_on_time_while_two_greenlets_pingpong_over_queues() {
    for _ in 0..3 {
        timer_under(queue_players);
    }
}

#[greenlet::test]
fn a_readable_fd_wakes_its_waiter_while_greenlets_pingpong() {
    for players in [
        yield_players as fn(&Rc<Cell<bool>>) -> [greenlet::Greenlet<u64>; 2],
        queue_players,
    ] {
        let (mut tx, rx) = UnixStream::pair().unwrap();
        let stop = Rc::new(Cell::new(false));
        let s = stop.clone();
        let reader = spawn(move || {
            wait_read(&rx, PROMPT).unwrap();
            s.set(true);
        });
        let writer = spawn(move || {
            sleep(FIVE_MS);
            let t0 = Instant::now();
            tx.write_all(b"x").unwrap();
            t0
        });
        let [a, b] = players(&stop);
        let written = writer.get().unwrap();
        reader.join().unwrap();
        let seen = written.elapsed();
        a.join().unwrap();
        b.join().unwrap();
        assert!(stop.get(), "the fd waiter never woke while the players ran");
        assert!(seen < TICK_UPPER, "the fd waiter woke {seen:?} late");
        quiet();
    }
}

#[greenlet::test]
fn a_kill_lands_at_the_next_switch_of_a_sleep0_player() {
    let stop = Rc::new(Cell::new(false));
    let [a, b] = yield_players(&stop);
    sleep(FIVE_MS);
    a.kill().unwrap();
    assert!(a.get().unwrap_err().is_greenlet_exit());
    stop.set(true);
    assert!(b.get().unwrap() > 0);
    quiet();
}

#[greenlet::test]
fn a_timeout_interrupts_a_queue_player_mid_game() {
    let stop = Rc::new(Cell::new(false));
    let s = stop.clone();
    // A player that ping-pongs with `sleep(0)` inside a 5 ms timeout: the
    // expiry is delivered at one of its switches, on time.
    let timed = spawn(move || {
        let t0 = Instant::now();
        let r = with_timeout(FIVE_MS, || {
            loop {
                sleep(Duration::ZERO);
            }
        });
        s.set(true);
        (r.is_err(), t0.elapsed())
    });
    let [a, b] = queue_players(&stop);
    let (expired, took) = timed.get().unwrap();
    assert!(expired, "the timeout expired");
    assert_band("5 ms timeout under ping-pong", took, FIVE_MS, TICK_UPPER);
    a.join().unwrap();
    b.join().unwrap();
    quiet();
}

#[greenlet::test]
fn a_post_from_another_thread_runs_while_greenlets_pingpong() {
    for players in [
        yield_players as fn(&Rc<Cell<bool>>) -> [greenlet::Greenlet<u64>; 2],
        queue_players,
    ] {
        let stop = Rc::new(Cell::new(false));
        let handle = hub::handle();
        let (sent_tx, sent_rx) = std::sync::mpsc::channel();
        let poster = std::thread::spawn(move || {
            std::thread::sleep(FIVE_MS);
            sent_tx.send(Instant::now()).unwrap();
            handle
                .post(|| STOP.with(|s| s.set(true)))
                .expect("the hub is open");
        });
        STOP.with(|s| s.set(false));
        // The post flips a thread-local flag (posts are `Send`); a third
        // greenlet relays it to the players. No timer is pending meanwhile:
        // only the post makes the boundary look beyond the ready queue.
        let s = stop.clone();
        let t0 = Instant::now();
        let relay = spawn(move || {
            while !STOP.with(Cell::get) && t0.elapsed() < PROMPT {
                sleep(Duration::ZERO);
            }
            s.set(true);
            STOP.with(Cell::get)
        });
        let [a, b] = players(&stop);
        assert!(
            relay.get().unwrap(),
            "the post never ran while the players ran"
        );
        let seen = sent_rx.recv().unwrap().elapsed();
        poster.join().unwrap();
        a.join().unwrap();
        b.join().unwrap();
        assert!(seen < TICK_UPPER, "the post ran {seen:?} late");
        quiet();
    }
}

thread_local! {
    static STOP: Cell<bool> = const { Cell::new(false) };
}

#[greenlet::test]
fn an_idle_waiter_returns_only_after_the_players_stop() {
    for players in [
        yield_players as fn(&Rc<Cell<bool>>) -> [greenlet::Greenlet<u64>; 2],
        queue_players,
    ] {
        let stop = Rc::new(Cell::new(false));
        let idled = Rc::new(Cell::new(false));
        let (s, i) = (stop.clone(), idled.clone());
        let waiter = spawn(move || {
            idle();
            // Nothing was ready when it returned: the players had stopped.
            assert!(s.get(), "idle() returned while the players still ran");
            i.set(true);
        });
        // No timer is pending: only the idle waiter makes the boundary look
        // beyond the ready queue.
        let s = stop.clone();
        let stopper = spawn(move || {
            for _ in 0..5000 {
                sleep(Duration::ZERO);
            }
            s.set(true);
        });
        let [a, b] = players(&stop);
        assert!(a.get().unwrap() > 0 && b.get().unwrap() > 0);
        stopper.join().unwrap();
        waiter.join().unwrap();
        assert!(idled.get());
        quiet();
    }
}

#[greenlet::test]
fn every_switch_of_a_queue_pingpong_ends_a_loop_turn() {
    let before = hub::stats().loop_iterations;
    let (a_to_b, b_to_a) = (Queue::<u64>::new(), Queue::<u64>::new());
    let (inbox, outbox) = (a_to_b.clone(), b_to_a.clone());
    let b = spawn(move || {
        for _ in 0..1000 {
            let v = inbox.get().unwrap();
            outbox.put(v + 1).unwrap();
        }
    });
    let a = spawn(move || {
        let mut v = 0;
        for _ in 0..1000 {
            a_to_b.put(v).unwrap();
            v = b_to_a.get().unwrap();
        }
        v
    });
    assert_eq!(a.get().unwrap(), 1000);
    b.join().unwrap();
    // Each hand-off leaves one greenlet ready: a batch of one, then the
    // boundary (timers, posts, I/O) before the next.
    let turns = hub::stats().loop_iterations - before;
    assert!(turns >= 2000, "{turns} loop turns for 2000 switches");
    quiet();
}

#[greenlet::test]
fn a_long_turn_among_many_short_ones_is_recorded() {
    let stop = Rc::new(Cell::new(false));
    let [a, b] = queue_players(&stop);
    let s = stop.clone();
    let blocker = spawn(move || {
        // Let thousands of short turns pass, then hold the thread.
        sleep(Duration::from_millis(2));
        std::thread::sleep(Duration::from_millis(60));
        sleep(Duration::from_millis(2));
        s.set(true);
    });
    blocker.join().unwrap();
    a.join().unwrap();
    b.join().unwrap();
    let long = hub::stats().longest_loop_turn;
    // The coarse clock ticks every 1-4 ms.
    assert!(long >= Duration::from_millis(55), "{long:?}");
    assert!(long < Duration::from_secs(5), "{long:?}");
    quiet();
}
