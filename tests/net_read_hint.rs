//! The read readiness hint of `greenlet::net` streams: after a read proved
//! the receive queue empty (`WouldBlock`, or a TCP read shorter than its
//! buffer) the next read waits for the poller's next readable edge instead
//! of making a `recv` that would say `EAGAIN`. These tests pin down that no
//! wake-up is lost that way: end of stream right behind a short read, a read
//! side shut down by another handle, edges reported while nobody waits,
//! kills and timeouts of a reader waiting on a drained socket, the
//! `Poller::wait` path (a hub with a `HubHandle`), Unix streams, and I/O seen
//! while other greenlets keep yielding.

mod common;

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::rc::Rc;
use std::time::Duration;

use common::{PROMPT, TICK, assert_tick, quiet, timed};
use greenlet::net::{TcpListener, TcpStream, UnixStream};
use greenlet::{Timeout, hub, sleep, spawn};

/// A connected pair over loopback: (client, server side).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let c = TcpStream::connect(l.local_addr().expect("local_addr")).expect("connect");
    let (s, _) = l.accept().expect("accept");
    (c, s)
}

/// Reads until end of stream (each read bounded by the socket's read
/// timeout), returning the bytes and the number of reads that returned data.
fn read_to_eof(s: &TcpStream) -> (Vec<u8>, usize) {
    let mut all = Vec::new();
    let mut reads = 0;
    let mut buf = [0u8; 4096];
    loop {
        match (&*s).read(&mut buf) {
            Ok(0) => return (all, reads),
            Ok(n) => {
                reads += 1;
                all.extend_from_slice(&buf[..n]);
            }
            Err(e) => panic!("read failed instead of reaching end of stream: {e}"),
        }
    }
}

/// Makes the socket's registration exist and its hint say "drained": one
/// read that waits, then a short read of what `peer` sent.
fn drain_once(s: &Rc<TcpStream>, peer: &mut TcpStream) {
    let reader = {
        let s = Rc::clone(s);
        spawn(move || {
            let mut buf = [0u8; 64];
            let n = (&*s).read(&mut buf).expect("first read");
            buf[..n].to_vec()
        })
    };
    sleep(Duration::ZERO); // the reader waits (registered, hint cleared)
    assert_eq!(hub::stats().fds, 1, "the reader waits on the socket");
    peer.write_all(b"x").unwrap();
    assert_eq!(reader.get().unwrap(), b"x");
}

#[greenlet::test]
fn end_of_stream_in_the_same_event_as_the_data_is_seen_after_a_short_read() {
    let (mut c, s) = tcp_pair();
    s.set_read_timeout(Some(PROMPT)).unwrap();
    let s = Rc::new(s);
    drain_once(&s, &mut c);
    let reader = {
        let s = Rc::clone(&s);
        spawn(move || read_to_eof(&s))
    };
    sleep(Duration::ZERO); // waiting again, hint cleared
    // Data and FIN before the hub polls: one event carries both.
    c.write_all(b"abc").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let ((all, reads), elapsed) = timed(|| reader.get().unwrap());
    assert_eq!(all, b"abc");
    assert_eq!(reads, 1, "one short read, then end of stream");
    assert!(elapsed < PROMPT, "end of stream seen promptly: {elapsed:?}");
    drop((c, s));
    quiet();
}

#[greenlet::test]
fn end_of_stream_in_a_later_event_is_seen_after_a_short_read() {
    let (mut c, s) = tcp_pair();
    s.set_read_timeout(Some(PROMPT)).unwrap();
    let s = Rc::new(s);
    drain_once(&s, &mut c);
    let got = Rc::new(Cell::new(0usize));
    let reader = {
        let (s, got) = (Rc::clone(&s), Rc::clone(&got));
        spawn(move || {
            let mut buf = [0u8; 64];
            let n = (&*s).read(&mut buf).unwrap();
            got.set(n);
            // The short read cleared the hint: this read waits for an edge.
            (&*s).read(&mut buf).unwrap()
        })
    };
    sleep(Duration::ZERO);
    c.write_all(b"abc").unwrap();
    while got.get() == 0 {
        sleep(Duration::ZERO);
    }
    assert_eq!(got.get(), 3);
    sleep(Duration::ZERO); // the reader waits on a drained socket
    c.shutdown(Shutdown::Write).unwrap();
    let (n, elapsed) = timed(|| reader.get().unwrap());
    assert_eq!(n, 0, "end of stream");
    assert!(elapsed < PROMPT, "{elapsed:?}");
    drop((c, s));
    quiet();
}

#[greenlet::test]
fn an_edge_reported_while_nobody_waits_is_kept_for_the_next_read() {
    let (mut c, s) = tcp_pair();
    s.set_read_timeout(Some(TICK)).unwrap();
    let s = Rc::new(s);
    drain_once(&s, &mut c);
    // Nobody reads now; the hub polls while the main greenlet sleeps and
    // sees the edge of this write.
    c.write_all(b"later").unwrap();
    sleep(TICK);
    // A read that waited for another edge would time out (none comes).
    let mut buf = [0u8; 64];
    let (n, elapsed) = timed(|| (&*s).read(&mut buf));
    assert_eq!(
        &buf[..n.expect("the kept edge lets the read try")],
        b"later"
    );
    assert!(elapsed < TICK, "no wait: {elapsed:?}");
    drop((c, s));
    quiet();
}

#[greenlet::test]
fn a_read_side_shut_down_by_another_handle_ends_the_stream() {
    let (mut c, s) = tcp_pair();
    s.set_read_timeout(Some(PROMPT)).unwrap();
    let s = Rc::new(s);
    let other = s.try_clone().unwrap();
    drain_once(&s, &mut c);
    c.write_all(b"data").unwrap();
    other.shutdown(Shutdown::Read).unwrap();
    sleep(TICK); // the hub sees both events (hint set), nobody reads
    // Reads drain what is queued (a short read clears the hint), then see
    // the end of stream although no event follows: the shutdown's
    // `EPOLLRDHUP` turned the hint off.
    let ((all, _), elapsed) = timed(|| read_to_eof(&s));
    assert_eq!(all, b"data", "the queued bytes, then end of stream");
    assert!(elapsed < PROMPT, "{elapsed:?}");
    drop((c, s, other));
    quiet();
}

#[greenlet::test]
fn shutdown_of_the_own_read_side_wakes_a_reader_on_a_drained_socket() {
    let (mut c, s) = tcp_pair();
    s.set_read_timeout(Some(PROMPT)).unwrap();
    let s = Rc::new(s);
    drain_once(&s, &mut c);
    let reader = {
        let s = Rc::clone(&s);
        spawn(move || (&*s).read(&mut [0u8; 16]))
    };
    sleep(Duration::ZERO);
    s.shutdown(Shutdown::Read).unwrap();
    let (r, elapsed) = timed(|| reader.take().unwrap());
    assert_eq!(r.unwrap(), 0);
    assert!(elapsed < PROMPT, "{elapsed:?}");
    drop((c, s));
    quiet();
}

#[greenlet::test]
fn a_killed_reader_of_a_drained_socket_leaves_the_data_to_the_next_reader() {
    let (mut c, s) = tcp_pair();
    let s = Rc::new(s);
    drain_once(&s, &mut c);
    let victim = {
        let s = Rc::clone(&s);
        spawn(move || (&*s).read(&mut [0u8; 16]))
    };
    sleep(Duration::ZERO);
    assert_eq!(hub::stats().fds, 1);
    victim.kill().unwrap();
    assert_eq!(hub::stats().fds, 0, "no registration left waiting");
    c.write_all(b"kept").unwrap();
    s.set_read_timeout(Some(PROMPT)).unwrap();
    let mut buf = [0u8; 16];
    let n = (&*s).read(&mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        b"kept",
        "exactly the bytes the victim never read"
    );
    drop((c, s));
    quiet();
}

#[greenlet::test]
fn a_timeout_and_a_kill_in_one_turn_on_a_drained_socket() {
    let (mut c, s) = tcp_pair();
    let s = Rc::new(s);
    drain_once(&s, &mut c);
    let victim = {
        let s = Rc::clone(&s);
        spawn(move || {
            let _t = Timeout::start_new(TICK);
            (&*s).read(&mut [0u8; 16])
        })
    };
    sleep(TICK); // the Timeout fires in this turn, the kill follows
    victim.kill().unwrap();
    assert!(!victim.is_successful());
    assert_eq!(hub::stats().fds, 0);
    c.write_all(b"after").unwrap();
    s.set_read_timeout(Some(PROMPT)).unwrap();
    let mut buf = [0u8; 16];
    let n = (&*s).read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"after");
    drop((c, s));
    quiet();
}

#[greenlet::test]
fn a_read_timeout_on_a_drained_socket_keeps_the_socket_usable() {
    let (mut c, s) = tcp_pair();
    let s = Rc::new(s);
    drain_once(&s, &mut c);
    s.set_read_timeout(Some(TICK)).unwrap();
    let (r, elapsed) = timed(|| (&*s).read(&mut [0u8; 16]));
    assert_eq!(r.unwrap_err().kind(), ErrorKind::TimedOut);
    assert_tick("read timeout on a drained socket", elapsed);
    c.write_all(b"late").unwrap();
    let mut buf = [0u8; 16];
    let n = (&*s).read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"late");
    drop((c, s));
    quiet();
}

#[greenlet::test]
fn with_a_hub_handle_end_of_stream_after_a_short_read_is_seen() {
    // A `HubHandle` makes the hub wait through `Poller::wait`, whose events
    // cannot tell a shut-down read side apart: the hint is then off.
    let _handle = hub::handle();
    let (mut c, s) = tcp_pair();
    s.set_read_timeout(Some(PROMPT)).unwrap();
    let s = Rc::new(s);
    drain_once(&s, &mut c);
    let reader = {
        let s = Rc::clone(&s);
        spawn(move || read_to_eof(&s))
    };
    sleep(Duration::ZERO);
    c.write_all(b"abc").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let ((all, _), elapsed) = timed(|| reader.get().unwrap());
    assert_eq!(all, b"abc");
    assert!(elapsed < PROMPT, "{elapsed:?}");
    drop((c, s, _handle));
    quiet();
}

#[greenlet::test]
fn unix_stream_end_of_stream_after_a_would_block() {
    let (a, mut b) = UnixStream::pair().unwrap();
    a.set_read_timeout(Some(PROMPT)).unwrap();
    let reader = spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4];
        loop {
            match (&a).read(&mut buf).unwrap() {
                0 => return all,
                n => all.extend_from_slice(&buf[..n]),
            }
        }
    });
    sleep(Duration::ZERO); // WouldBlock: the reader waits
    b.write_all(b"abcdef").unwrap();
    sleep(Duration::ZERO);
    b.write_all(b"gh").unwrap();
    drop(b);
    let (all, elapsed) = timed(|| reader.get().unwrap());
    assert_eq!(all, b"abcdefgh");
    assert!(elapsed < PROMPT, "{elapsed:?}");
    quiet();
}

#[greenlet::test]
fn readiness_is_seen_while_other_greenlets_keep_yielding() {
    let (mut c, s) = tcp_pair();
    s.set_read_timeout(Some(PROMPT)).unwrap();
    let s = Rc::new(s);
    drain_once(&s, &mut c);
    let done = Rc::new(Cell::new(false));
    let spins = Rc::new(Cell::new(0u32));
    let spinner = {
        let (done, spins) = (Rc::clone(&done), Rc::clone(&spins));
        spawn(move || {
            // Bounded: gives up after a million turns.
            while !done.get() && spins.get() < 1_000_000 {
                spins.set(spins.get() + 1);
                sleep(Duration::ZERO);
            }
        })
    };
    let reader = {
        let (s, done) = (Rc::clone(&s), Rc::clone(&done));
        spawn(move || {
            let mut buf = [0u8; 16];
            let n = (&*s).read(&mut buf).unwrap();
            done.set(true);
            buf[..n].to_vec()
        })
    };
    sleep(Duration::ZERO);
    let before = spins.get();
    c.write_all(b"ping").unwrap();
    assert_eq!(reader.get().unwrap(), b"ping");
    spinner.join().unwrap();
    let turns = spins.get() - before;
    assert!(
        turns < 100,
        "the reader woke within a few turns of the spinner, not {turns}"
    );
    drop((c, s));
    quiet();
}

#[greenlet::test]
fn many_request_response_connections_with_kills_and_timeouts() {
    const CONNS: usize = 40;
    const ROUNDS: usize = 200;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let served = Rc::new(Cell::new(0usize));
    let server = {
        let served = Rc::clone(&served);
        spawn(move || {
            let mut handlers = Vec::new();
            for _ in 0..CONNS {
                let (s, _) = l.accept().unwrap();
                let served = Rc::clone(&served);
                handlers.push(spawn(move || {
                    s.set_read_timeout(Some(PROMPT)).unwrap();
                    let mut buf = [0u8; 256];
                    loop {
                        // Requests are 8 bytes: every read is short.
                        match (&s).read(&mut buf) {
                            Ok(0) => return,
                            Ok(n) => {
                                (&s).write_all(&buf[..n]).unwrap();
                                served.set(served.get() + n / 8);
                            }
                            Err(e) => panic!("server read: {e}"),
                        }
                    }
                }));
            }
            for h in handlers {
                h.join().unwrap();
            }
        })
    };
    let clients: Vec<_> = (0..CONNS)
        .map(|i| {
            spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(PROMPT)).unwrap();
                for round in 0..ROUNDS {
                    let req = ((i * ROUNDS + round) as u64).to_le_bytes();
                    s.write_all(&req).unwrap();
                    // Some reads time out first (a 1 µs timeout races the
                    // answer), then read on: no byte lost or read twice.
                    let racing = i % 10 == 0 && round % 5 == 0;
                    let timeout = if racing {
                        Duration::from_micros(1)
                    } else {
                        PROMPT
                    };
                    s.set_read_timeout(Some(timeout)).unwrap();
                    let mut resp = [0u8; 8];
                    let mut got = 0;
                    while got < resp.len() {
                        match (&s).read(&mut resp[got..]) {
                            Ok(0) => panic!("connection {i}: early end of stream"),
                            Ok(n) => got += n,
                            Err(e) if racing && e.kind() == ErrorKind::TimedOut => {
                                s.set_read_timeout(Some(PROMPT)).unwrap();
                            }
                            Err(e) => panic!("connection {i}: {e}"),
                        }
                    }
                    assert_eq!(resp, req, "connection {i} round {round}");
                }
            })
        })
        .collect();
    // Killed readers of extra connections, mid-wait, must not disturb the rest.
    let victims: Vec<_> = (0..5)
        .map(|_| {
            spawn(move || {
                let (c, _s) = tcp_pair();
                (&c).read(&mut [0u8; 8]).map(drop)
            })
        })
        .collect();
    sleep(Duration::ZERO);
    for v in &victims {
        v.kill().unwrap();
    }
    for c in clients {
        c.get().unwrap();
    }
    server.join().unwrap();
    assert!(server.is_successful());
    assert_eq!(served.get(), CONNS * ROUNDS, "every request answered once");
    quiet();
}
