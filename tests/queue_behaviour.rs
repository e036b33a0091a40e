//! `greenlet::queue`: Queue (FIFO/LIFO/priority, bounded, JoinableQueue,
//! shutdown) and Channel: exactness, timing bands, and waiters killed or
//! timed out while blocked.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use common::{LONG, PROMPT, TICK, assert_band, assert_tick, quiet, timed};
use greenlet::queue::{
    Channel, GetError, JoinableQueue, LifoQueue, PriorityQueue, PutError, Queue, TryGetError,
    TryPutError,
};
use greenlet::{KillOptions, Timeout, WaitError, Waitable, iwait, sleep, spawn};

const ZERO: Duration = Duration::ZERO;

/// Drains what is stored now.
fn drain<T, O: greenlet::queue::Order<T>>(q: &Queue<T, O>) -> Vec<T> {
    std::iter::from_fn(|| q.get_nowait().ok()).collect()
}

#[greenlet::test]
fn items_come_out_exactly_once_in_each_order() {
    let fifo = Queue::new();
    let lifo = LifoQueue::new();
    let prio = PriorityQueue::new();
    for i in [5, 1, 4, 2, 3] {
        fifo.put(i).unwrap();
        lifo.put(i).unwrap();
        prio.put(i).unwrap();
    }
    assert_eq!((fifo.qsize(), lifo.len(), prio.len()), (5, 5, 5));
    assert_eq!(drain(&fifo), [5, 1, 4, 2, 3]);
    assert_eq!(
        std::iter::from_fn(|| lifo.get_nowait().ok()).collect::<Vec<_>>(),
        [3, 2, 4, 1, 5]
    );
    assert_eq!(
        std::iter::from_fn(|| prio.get_nowait().ok()).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(fifo.get_nowait(), Err(TryGetError::Empty));
    quiet();
}

#[greenlet::test]
fn blocked_getters_are_served_first_come_first_served() {
    let q = Queue::new();
    let got = Rc::new(RefCell::new(Vec::new()));
    let gs: Vec<_> = (0..5)
        .map(|i| {
            let (q, got) = (q.clone(), got.clone());
            spawn(move || {
                let v = q.get().unwrap();
                got.borrow_mut().push((i, v));
            })
        })
        .collect();
    sleep(ZERO);
    assert_eq!(q.getters(), 5);
    for v in 100..105 {
        q.put(v).unwrap();
    }
    assert!(q.is_empty(), "items are handed straight to the getters");
    greenlet::joinall(&gs).unwrap();
    assert_eq!(
        *got.borrow(),
        [(0, 100), (1, 101), (2, 102), (3, 103), (4, 104)]
    );
    quiet();
}

#[greenlet::test]
fn blocked_putters_are_served_in_order_and_nobody_barges() {
    let q = Queue::bounded(1);
    q.put(0).unwrap();
    let ps: Vec<_> = (1..=3)
        .map(|i| {
            let q = q.clone();
            spawn(move || q.put(i).unwrap())
        })
        .collect();
    sleep(ZERO);
    assert_eq!(q.putters(), 3);
    assert_eq!(q.get().unwrap(), 0); // slot reserved for putter 1
    assert!(q.full(), "the freed slot is reserved");
    assert!(matches!(q.put_nowait(99), Err(TryPutError::Full(99))));
    let mut out = Vec::new();
    for _ in 0..3 {
        out.push(q.get().unwrap());
    }
    assert_eq!(out, [1, 2, 3]);
    greenlet::joinall(&ps).unwrap();
    assert_eq!(q.unfinished_tasks(), 4);
    quiet();
}

#[greenlet::test]
fn get_and_put_timeouts_last_their_band_and_change_nothing() {
    let q = Queue::<u32>::new();
    let (r, took) = timed(|| q.get_timeout(TICK));
    assert!(r.unwrap_err().is_elapsed());
    assert_tick("get_timeout", took);
    assert_eq!(q.getters(), 0);

    let full = Queue::bounded(1);
    full.put(1).unwrap();
    let (r, took) = timed(|| full.put_timeout(2, TICK));
    assert!(matches!(r, Err(PutError::Wait(2, WaitError::Elapsed(_)))));
    assert_tick("put_timeout", took);
    assert_eq!((full.putters(), drain(&full)), (0, vec![1]));

    let (r, took) = timed(|| q.peek_timeout(TICK));
    assert!(r.unwrap_err().is_elapsed());
    assert_tick("peek_timeout", took);
    quiet();
}

#[greenlet::test]
fn a_timed_out_getter_never_takes_the_item_meant_for_the_next() {
    let q = Queue::new();
    let q1 = q.clone();
    let early = spawn(move || q1.get_timeout(Duration::from_millis(10)));
    let q2 = q.clone();
    let patient = spawn(move || q2.get().unwrap());
    sleep(Duration::from_millis(30));
    assert!(early.get().unwrap().unwrap_err().is_elapsed());
    assert_eq!(q.getters(), 1);
    q.put("one").unwrap();
    assert_eq!(patient.get().unwrap(), "one");
    assert!(q.is_empty());
    quiet();
}

#[greenlet::test]
fn a_getter_killed_after_the_hand_off_passes_the_item_to_the_next_getter() {
    let q = Queue::new();
    let q1 = q.clone();
    let victim = spawn(move || q1.get());
    let q2 = q.clone();
    let next = spawn(move || q2.get().unwrap());
    sleep(ZERO);
    q.put(7).unwrap(); // handed to victim, which has not run yet
    victim
        .kill_with_options(KillOptions::new().nowait())
        .unwrap();
    victim.join().unwrap();
    assert!(victim.is_successful()); // killed with GreenletExit
    assert_eq!(next.get().unwrap(), 7);
    assert!(q.is_empty());
    quiet();
}

#[greenlet::test]
fn a_getter_killed_after_the_hand_off_puts_the_item_back_in_front() {
    let q = Queue::new();
    let q1 = q.clone();
    let victim = spawn(move || q1.get());
    sleep(ZERO);
    q.put("a").unwrap(); // handed to victim
    q.put("b").unwrap(); // nobody waits: stored
    victim.kill().unwrap();
    assert_eq!(drain(&q), ["a", "b"]);
    quiet();
}

#[greenlet::test]
fn a_killed_putter_on_a_full_queue_leaves_it_unchanged() {
    let q = Queue::bounded(1);
    q.put("kept").unwrap();
    let q1 = q.clone();
    let putter = spawn(move || q1.put("never"));
    sleep(ZERO);
    assert_eq!(q.putters(), 1);
    putter.kill().unwrap();
    assert_eq!(q.putters(), 0);
    assert_eq!(q.unfinished_tasks(), 1);
    assert_eq!(drain(&q), ["kept"]);
    assert_eq!(q.get_nowait(), Err(TryGetError::Empty));
    quiet();
}

#[greenlet::test]
fn a_putter_killed_after_being_handed_a_slot_passes_the_slot_on() {
    let q = Queue::bounded(1);
    q.put(0).unwrap();
    let q1 = q.clone();
    let victim = spawn(move || q1.put(1));
    let q2 = q.clone();
    let next = spawn(move || q2.put(2).unwrap());
    sleep(ZERO);
    assert_eq!(q.get().unwrap(), 0); // slot handed to victim
    victim
        .kill_with_options(KillOptions::new().nowait())
        .unwrap();
    victim.join().unwrap();
    next.join().unwrap();
    assert_eq!(drain(&q), [2]);
    assert!(!q.full() && q.putters() == 0);
    assert_eq!(q.unfinished_tasks(), 2);
    quiet();
}

#[greenlet::test]
fn a_value_handed_in_the_turn_of_its_timeout_wins() {
    let q = Queue::new();
    let q1 = q.clone();
    let getter = spawn(move || q1.get_timeout(Duration::from_millis(10)));
    sleep(ZERO);
    // Block the thread past the deadline: the timer and the hand-off are
    // processed in the same loop turn.
    std::thread::sleep(Duration::from_millis(20));
    q.put(5).unwrap();
    assert_eq!(getter.get().unwrap().unwrap(), 5);
    assert!(q.is_empty());
    quiet();
}

#[greenlet::test]
fn kill_and_timeout_due_in_one_turn_lose_nothing() {
    let q = Queue::new();
    let q1 = q.clone();
    let victim = spawn(move || {
        let _t = Timeout::start_new(Duration::from_millis(10));
        q1.get_timeout(Duration::from_millis(10))
    });
    let q2 = q.clone();
    let next = spawn(move || q2.get_timeout(LONG).unwrap());
    sleep(ZERO);
    std::thread::sleep(Duration::from_millis(20)); // both timers due
    q.put(1).unwrap(); // handed to victim
    victim
        .kill_with_options(KillOptions::new().nowait())
        .unwrap();
    victim.join().unwrap();
    assert_eq!(
        next.get().unwrap(),
        1,
        "the item went on to the next getter"
    );
    assert!(q.is_empty() && q.getters() == 0);
    quiet();
}

#[greenlet::test]
fn an_outer_timeout_in_put_leaves_the_queue_unchanged() {
    let q = Queue::bounded(2);
    q.put(1).unwrap();
    q.put(2).unwrap();
    let r = greenlet::with_timeout(Duration::from_millis(10), || q.put(3));
    assert!(r.is_err());
    assert_eq!((q.putters(), q.unfinished_tasks()), (0, 2));
    assert_eq!(drain(&q), [1, 2]);
    quiet();
}

#[test]
fn the_native_stack_gets_loop_exit_not_a_hang() {
    greenlet::run(|| {
        let q = Queue::<u8>::new();
        let (r, took) = timed(|| q.get());
        assert!(matches!(r, Err(GetError::Wait(WaitError::LoopExit(_)))));
        assert!(took < PROMPT);
        let full = Queue::bounded(1);
        full.put(1).unwrap();
        assert!(matches!(
            full.put(2),
            Err(PutError::Wait(2, WaitError::LoopExit(_)))
        ));
        assert_eq!(drain(&full), [1]);
        let joinable = JoinableQueue::new();
        joinable.put(1).unwrap();
        assert!(matches!(joinable.join(), Err(WaitError::LoopExit(_))));
        let ch = Channel::<u8>::new();
        assert!(matches!(
            ch.get(),
            Err(GetError::Wait(WaitError::LoopExit(_)))
        ));
        assert!(matches!(
            ch.put(1),
            Err(PutError::Wait(1, WaitError::LoopExit(_)))
        ));
        assert_eq!(ch.balance(), 0);
        quiet();
    });
}

#[greenlet::test]
fn shutdown_wakes_everyone_and_drains() {
    let empty = Queue::<u8>::new();
    let getters: Vec<_> = (0..3)
        .map(|_| {
            let q = empty.clone();
            spawn(move || q.get())
        })
        .collect();
    let full = Queue::bounded(1);
    full.put(10).unwrap();
    full.put_nowait(11).unwrap_err();
    let putter = {
        let q = full.clone();
        spawn(move || q.put(12))
    };
    let peeker = {
        let q = empty.clone();
        spawn(move || q.peek())
    };
    sleep(ZERO);
    empty.shutdown();
    full.shutdown();
    for g in &getters {
        assert!(matches!(g.get().unwrap(), Err(GetError::ShutDown)));
    }
    assert!(matches!(peeker.get().unwrap(), Err(GetError::ShutDown)));
    assert!(matches!(putter.get().unwrap(), Err(PutError::ShutDown(12))));
    assert_eq!(full.put_nowait(13), Err(TryPutError::ShutDown(13)));
    assert_eq!(full.get().unwrap(), 10, "gets drain what is left");
    assert!(matches!(full.get(), Err(GetError::ShutDown)));
    assert_eq!(full.get_nowait(), Err(TryGetError::ShutDown));
    assert!(full.is_shutdown() && full.is_ready());
    quiet();
}

#[greenlet::test]
fn iteration_ends_at_shutdown_after_the_last_item() {
    let q = Queue::new();
    let consumer = {
        let q = q.clone();
        spawn(move || q.iter().collect::<Vec<_>>())
    };
    for i in 0..5 {
        q.put(i).unwrap();
        sleep(ZERO);
    }
    q.put(5).unwrap();
    q.shutdown();
    assert_eq!(consumer.get().unwrap(), [0, 1, 2, 3, 4, 5]);
    quiet();
}

#[greenlet::test]
fn peek_waits_and_leaves_the_item() {
    let q = Queue::new();
    let peeker = {
        let q = q.clone();
        spawn(move || q.peek().unwrap())
    };
    sleep(ZERO);
    q.put(String::from("x")).unwrap();
    assert_eq!(peeker.get().unwrap(), "x");
    assert_eq!(q.len(), 1);
    assert_eq!(q.peek_nowait(), Ok(String::from("x")));
    quiet();
}

#[greenlet::test]
fn joinable_queue_join_waits_for_every_task_done() {
    let q = JoinableQueue::new();
    let done = Rc::new(RefCell::new(Vec::new()));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (q, done) = (q.clone(), done.clone());
            spawn(move || {
                while let Ok(ms) = q.get() {
                    sleep(Duration::from_millis(ms));
                    done.borrow_mut().push(ms);
                    q.task_done().unwrap();
                }
            })
        })
        .collect();
    for ms in [25, 25, 25, 25] {
        q.put(ms).unwrap();
    }
    assert_eq!(q.unfinished_tasks(), 4);
    let (r, took) = timed(|| q.join());
    r.unwrap();
    assert_band(
        "join",
        took,
        Duration::from_millis(50),
        Duration::from_millis(160),
    );
    assert_eq!(done.borrow().len(), 4);
    assert_eq!(q.unfinished_tasks(), 0);
    assert!(q.task_done().is_err());
    assert_eq!(q.unfinished_tasks(), 0);
    q.shutdown();
    greenlet::joinall(&workers).unwrap();
    let (r, took) = timed(|| {
        q.put_nowait(1).unwrap_err();
        let q2 = JoinableQueue::new();
        q2.put(1).unwrap();
        q2.join_timeout(TICK)
    });
    assert!(matches!(r, Err(WaitError::Elapsed(_))));
    assert_tick("join_timeout", took);
    quiet();
}

#[greenlet::test]
fn wait_and_iwait_mix_queues_greenlets_and_channels_in_readiness_order() {
    let q1 = Queue::<u8>::new();
    let q2 = Queue::<u8>::new();
    let ch = Channel::<u8>::new();
    let g = spawn(|| sleep(Duration::from_millis(40)));
    {
        let (q1, q2, ch) = (q1.clone(), q2.clone(), ch.clone());
        spawn(move || {
            sleep(Duration::from_millis(20));
            q2.put(2).unwrap();
            sleep(Duration::from_millis(40));
            // q1 and then ch become ready in the same turn: in that order.
            q1.put(1).unwrap();
            let _ = ch.put_timeout(3, Duration::from_millis(200));
        });
    }
    let objects: [&dyn Waitable; 4] = [&q1, &ch, &g, &q2];
    let order: Vec<usize> = iwait(objects)
        .map(|o| {
            let o = o.unwrap();
            objects
                .iter()
                .position(|x| std::ptr::addr_eq(*x, o))
                .unwrap()
        })
        .collect();
    assert_eq!(order, [3, 2, 0, 1]); // q2, g, q1, ch
    assert_eq!(ch.get().unwrap(), 3);
    assert_eq!((q1.get_nowait(), q2.get_nowait()), (Ok(1), Ok(2)));
    quiet();
}

#[greenlet::test]
fn channel_put_blocks_until_a_getter_takes_the_item() {
    let ch = Channel::new();
    let log = Rc::new(RefCell::new(Vec::new()));
    let putter = {
        let (ch, log) = (ch.clone(), log.clone());
        spawn(move || {
            ch.put(1).unwrap();
            log.borrow_mut().push("put returned");
        })
    };
    sleep(Duration::from_millis(10));
    assert!(log.borrow().is_empty());
    assert_eq!(ch.balance(), 1);
    assert!(ch.is_ready());
    assert_eq!(ch.get().unwrap(), 1);
    putter.join().unwrap();
    assert_eq!(*log.borrow(), ["put returned"]);
    assert_eq!(ch.put_nowait(2), Err(TryPutError::Full(2)));
    quiet();
}

#[greenlet::test]
fn channel_putters_killed_or_timed_out_withdraw_their_items() {
    let ch = Channel::new();
    let killed = {
        let ch = ch.clone();
        spawn(move || ch.put("killed"))
    };
    let timed_out = {
        let ch = ch.clone();
        spawn(move || ch.put_timeout("late", Duration::from_millis(10)))
    };
    let kept = {
        let ch = ch.clone();
        spawn(move || ch.put("kept"))
    };
    sleep(ZERO);
    assert_eq!(ch.balance(), 3);
    killed.kill().unwrap();
    sleep(Duration::from_millis(20));
    assert_eq!(timed_out.get().unwrap().unwrap_err().into_inner(), "late");
    assert_eq!(ch.balance(), 1);
    assert_eq!(ch.get().unwrap(), "kept");
    assert!(kept.get().unwrap().is_ok());
    assert_eq!(ch.get_nowait(), Err(TryGetError::Empty));
    quiet();
}

#[greenlet::test]
fn channel_getter_killed_after_the_hand_off_passes_the_item_on() {
    let ch = Channel::new();
    let victim = {
        let ch = ch.clone();
        spawn(move || ch.get())
    };
    let next = {
        let ch = ch.clone();
        spawn(move || ch.get().unwrap())
    };
    sleep(ZERO);
    assert_eq!(ch.balance(), -2);
    ch.put_nowait(9).unwrap(); // handed to victim
    victim
        .kill_with_options(KillOptions::new().nowait())
        .unwrap();
    victim.join().unwrap();
    assert_eq!(next.get().unwrap(), 9);
    // With nobody left, a given-back item stays on offer.
    let lonely = {
        let ch = ch.clone();
        spawn(move || ch.get())
    };
    sleep(ZERO);
    ch.put_nowait(10).unwrap();
    lonely.kill().unwrap();
    assert_eq!(ch.get_nowait(), Ok(10));
    quiet();
}

#[greenlet::test]
fn many_waiters_with_random_timeouts_lose_no_item() {
    let q = Queue::new();
    let got = Rc::new(RefCell::new(Vec::new()));
    let gs: Vec<_> = (0..50u64)
        .map(|i| {
            let (q, got) = (q.clone(), got.clone());
            spawn(move || {
                // Every third getter gives up early.
                let r = if i % 3 == 0 {
                    q.get_timeout(Duration::from_millis(1 + i % 5))
                } else {
                    q.get_timeout(LONG)
                };
                if let Ok(v) = r {
                    got.borrow_mut().push(v);
                }
            })
        })
        .collect();
    sleep(Duration::from_millis(10));
    for v in 0..40 {
        q.put(v).unwrap();
        if v % 7 == 0 {
            sleep(ZERO);
        }
    }
    sleep(Duration::from_millis(10));
    q.shutdown();
    greenlet::joinall(&gs).unwrap();
    let mut all = got.borrow().clone();
    all.extend(drain(&q));
    all.sort_unstable();
    assert_eq!(all, (0..40).collect::<Vec<_>>());
    quiet();
}
