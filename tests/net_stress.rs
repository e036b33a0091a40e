//! Interleavings on `greenlet::net`: many socket pairs with a reader and a
//! writer each, kills and timeouts landing mid-wait (also in the same loop
//! turn as the readiness that would have woken the waiter), and nothing
//! registered or consumed twice afterwards.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::rc::Rc;
use std::time::Duration;

use common::quiet;
use greenlet::net::UnixStream;
use greenlet::{Greenlet, hub, sleep, spawn};

#[greenlet::test]
fn kill_and_readiness_in_the_same_turn_leave_the_data_for_the_next_reader() {
    for round in 0..50 {
        let (a, mut b) = UnixStream::pair().unwrap();
        let a = Rc::new(a);
        let victim = {
            let a = Rc::clone(&a);
            spawn(move || {
                let mut buf = [0; 1];
                (&*a).read(&mut buf).map(|_| buf[0])
            })
        };
        sleep(Duration::ZERO);
        // Data arrives and the kill is queued before the loop runs again.
        b.write_all(&[round as u8]).unwrap();
        greenlet::kill(&victim);
        victim.join().unwrap();
        let mut buf = [0; 1];
        match victim.take() {
            // It read before the kill landed: the byte is consumed once.
            Ok(r) => assert_eq!(r.unwrap(), round as u8),
            // Killed while waiting: the byte is still there for the next
            // reader.
            Err(greenlet::GreenletError::Killed(_)) => {
                (&*a).read_exact(&mut buf).unwrap();
                assert_eq!(buf[0], round as u8);
            }
            Err(e) => panic!("{e}"),
        }
        assert_eq!(hub::stats().fds, 0);
    }
    quiet();
}

#[greenlet::test]
fn a_read_timeout_and_a_kill_in_one_turn() {
    for _ in 0..20 {
        let (a, _b) = UnixStream::pair().unwrap();
        a.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
        let a = Rc::new(a);
        let g = {
            let a = Rc::clone(&a);
            spawn(move || (&*a).read(&mut [0; 1]).map_err(|e| e.kind()))
        };
        sleep(Duration::from_millis(2));
        greenlet::kill(&g);
        g.join().unwrap();
        match g.take() {
            Ok(r) => assert_eq!(r, Err(ErrorKind::TimedOut)),
            Err(greenlet::GreenletError::Killed(_)) => {}
            Err(e) => panic!("{e}"),
        }
        assert_eq!(hub::stats().fds, 0);
        // The socket is still usable by a new reader.
        let (a, mut b) = (a, _b);
        b.write_all(b"z").unwrap();
        let mut buf = [0; 1];
        (&*a).read_exact(&mut buf).unwrap();
    }
    quiet();
}

#[greenlet::test]
fn many_pairs_readers_writers_and_random_kills() {
    const PAIRS: usize = 64;
    const MESSAGES: usize = 200;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut readers: Vec<Greenlet<usize>> = Vec::new();
    let mut writers: Vec<Greenlet<usize>> = Vec::new();
    let mut doomed = Vec::new();
    for p in 0..PAIRS {
        let (a, b) = UnixStream::pair().unwrap();
        let (a, b) = (Rc::new(a), Rc::new(b));
        // Each end has a reader and a writer greenlet at once.
        let w = {
            let a = Rc::clone(&a);
            spawn(move || {
                let msg = [p as u8; 512];
                for _ in 0..MESSAGES {
                    (&*a).write_all(&msg).unwrap();
                }
                MESSAGES
            })
        };
        let r = {
            let b = Rc::clone(&b);
            spawn(move || {
                let mut buf = [0u8; 512];
                for _ in 0..MESSAGES {
                    (&*b).read_exact(&mut buf).unwrap();
                    assert!(buf.iter().all(|&x| x == p as u8));
                }
                MESSAGES
            })
        };
        // A second reader on `a` that waits forever (nothing is written to
        // `a` by `b`) and is killed at a random moment.
        let idle = {
            let a = Rc::clone(&a);
            spawn(move || (&*a).read(&mut [0; 1]).map(|_| 0).unwrap_or(0))
        };
        if next() % 2 == 0 {
            doomed.push(idle);
        } else {
            readers.push(idle);
        }
        writers.push(w);
        readers.push(r);
    }
    for _ in 0..10 {
        sleep(Duration::ZERO);
        if let Some(g) = doomed.pop() {
            g.kill().unwrap();
        }
    }
    for g in doomed.drain(..) {
        g.kill().unwrap();
    }
    for w in &writers {
        assert_eq!(w.get().unwrap(), MESSAGES);
    }
    let mut finished = 0;
    for r in &readers {
        // The idle readers left in `readers` still wait: kill them too.
        if r.join_timeout(Duration::from_millis(1)).is_err() {
            r.kill().unwrap();
        } else if r.get().unwrap() == MESSAGES {
            finished += 1;
        }
    }
    assert_eq!(finished, PAIRS, "every data reader got all its messages");
    assert_eq!(hub::stats().fds, 0);
    quiet();
}
