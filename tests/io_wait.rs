//! Waiting on file descriptors: `greenlet::io::{wait_read, wait_write,
//! wait_readwrite}` on `UnixStream` pairs; timeouts, kills, and the `fds`
//! counter going back to zero.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{
    DropLog, LONG, Log, PROMPT, Reports, TICK, assert_contains, assert_tick, quiet, timed,
};
use greenlet::io::{wait_read, wait_readwrite, wait_write};
use greenlet::{Timeout, hub, sleep, spawn, with_timeout};

fn pair() -> (UnixStream, UnixStream) {
    UnixStream::pair().expect("socketpair")
}

/// Fills `s`'s send buffer until a write would block.
fn fill(s: &mut UnixStream) -> usize {
    s.set_nonblocking(true).expect("nonblocking");
    let chunk = [0u8; 4096];
    let mut total = 0;
    loop {
        match s.write(&chunk) {
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return total,
            Err(e) => panic!("write: {e}"),
        }
    }
}

#[greenlet::test]
fn wait_read_blocks_the_greenlet_until_data_arrives() {
    for _round in 0..2 {
        let (a, mut b) = pair();
        // Non-blocking: if wait_read returned before the data arrived, the
        // read below records WouldBlock (and the test fails) instead of
        // blocking the thread forever.
        a.set_nonblocking(true).expect("nonblocking");
        let reader = spawn(move || {
            let (r, took) = timed(|| wait_read(&a, None));
            let mut buf = [0u8; 8];
            let data = (&a).read(&mut buf).map(|n| buf[..n].to_vec());
            (r.is_ok(), took, data.map_err(|e| e.kind()))
        });
        let writer = spawn(move || {
            sleep(TICK);
            let fds_while_waiting = hub::stats().fds;
            b.write_all(b"ping").expect("write");
            fds_while_waiting
        });
        let (ok, took, data) = reader.get().unwrap();
        assert!(ok);
        assert_eq!(
            data,
            Ok(b"ping".to_vec()),
            "readable when wait_read returned"
        );
        assert_eq!(
            writer.get().unwrap(),
            1,
            "one fd registered while the reader waits"
        );
        assert_tick("wait_read until a write 50 ms later", took);
        assert_eq!(hub::stats().fds, 0);
        quiet();
    }
}

#[greenlet::test]
fn wait_read_times_out() {
    let (a, _b) = pair();
    let (r, took) = timed(|| wait_read(&a, TICK));
    let e = r.expect_err("nothing to read");
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    assert_contains(&e.to_string(), &["wait_read", "timed out"]);
    assert_tick("wait_read with a 50 ms timeout", took);
    assert_eq!(hub::stats().fds, 0, "deregistered after the timeout");
    quiet();
}

#[greenlet::test]
fn wait_read_returns_at_once_when_data_is_already_there() {
    let (a, mut b) = pair();
    b.write_all(b"x").expect("write");
    let (r, took) = timed(|| wait_read(&a, LONG));
    assert!(r.is_ok());
    assert!(took < PROMPT);
    assert_eq!(hub::stats().fds, 0);
    quiet();
}

#[greenlet::test]
fn wait_read_sees_a_hang_up() {
    let (a, b) = pair();
    let reader = spawn(move || wait_read(&a, LONG).is_ok());
    sleep(Duration::ZERO);
    drop(b);
    let (ok, took) = timed(|| reader.get().unwrap());
    assert!(ok, "a closed peer makes the socket readable (EOF)");
    assert!(took < PROMPT);
    quiet();
}

#[greenlet::test]
fn wait_write_on_a_writable_socket_returns_at_once() {
    let (a, _b) = pair();
    let (r, took) = timed(|| wait_write(&a, LONG));
    assert!(r.is_ok());
    assert!(took < PROMPT);
    let (r, _) = timed(|| wait_readwrite(&a, LONG));
    assert!(r.is_ok(), "writable counts for wait_readwrite");
    assert_eq!(hub::stats().fds, 0);
    quiet();
}

#[greenlet::test]
fn wait_write_waits_for_room_in_a_full_buffer() {
    let (mut a, mut b) = pair();
    let filled = fill(&mut a);
    assert!(filled > 0);
    let (r, took) = timed(|| wait_write(&a, TICK));
    assert_eq!(r.expect_err("buffer full").kind(), ErrorKind::TimedOut);
    assert_tick("wait_write on a full buffer with a 50 ms timeout", took);

    // A greenlet drains the peer after 50 ms; the writer wakes then.
    let drainer = spawn(move || {
        sleep(TICK);
        b.set_nonblocking(true).expect("nonblocking");
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0;
        loop {
            match b.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("read: {e}"),
            }
        }
        (total, b)
    });
    let (r, took) = timed(|| wait_write(&a, PROMPT));
    assert!(r.is_ok());
    assert_tick("wait_write until the peer drained after 50 ms", took);
    let (drained, _b) = drainer.into_result().unwrap();
    assert!(drained > 0);
    assert_eq!(hub::stats().fds, 0);
    quiet();
}

#[greenlet::test]
fn wait_read_on_the_native_stack_is_woken_by_another_thread() {
    let (a, mut b) = pair();
    let t0 = Instant::now();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(TICK);
        b.write_all(b"x").expect("write");
        b
    });
    // The registered fd keeps the hub alive: no LoopExit.
    let r = wait_read(&a, None);
    assert!(r.is_ok(), "{r:?}");
    assert_tick("wait_read on the native stack", t0.elapsed());
    let _b = writer.join().expect("writer thread");
    assert_eq!(hub::stats().fds, 0);
    quiet();
}

#[greenlet::test]
fn greenlets_waiting_on_different_sockets_wake_in_the_order_data_arrives() {
    let log = Log::new();
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for name in ["first", "second", "third"] {
        let (a, b) = pair();
        let l = log.clone();
        readers.push(spawn(move || {
            wait_read(&a, LONG).expect("readable");
            l.push(name);
        }));
        writers.push(b);
    }
    sleep(Duration::ZERO);
    assert_eq!(hub::stats().fds, 3);
    // Data arrives in the order third, first, second, one loop turn apart.
    for i in [2usize, 0, 1] {
        writers[i].write_all(b"x").expect("write");
        sleep(Duration::from_millis(5));
    }
    for r in &readers {
        r.join().unwrap();
    }
    assert_eq!(log.entries(), ["third", "first", "second"]);
    assert_eq!(hub::stats().fds, 0);
    quiet();
}

#[greenlet::test]
fn killing_a_greenlet_in_wait_read_deregisters_the_fd() {
    let (a, _b) = pair();
    let log = Log::new();
    let l = log.clone();
    let g = spawn(move || {
        let _g = DropLog::new("reader", &l);
        let r = wait_read(&a, None);
        l.push(format!("returned {}", r.is_ok()));
    });
    sleep(Duration::ZERO);
    assert_eq!(hub::stats().fds, 1);
    g.kill().unwrap();
    assert_eq!(log.entries(), ["drop reader"]);
    assert_eq!(hub::stats().fds, 0);
    assert!(g.is_successful());
    quiet();
}

#[greenlet::test]
fn a_timeout_interrupts_wait_read_and_deregisters_the_fd() {
    let (a, _b) = pair();
    let (r, took) = timed(|| with_timeout(TICK, || wait_read(&a, None)));
    assert!(r.is_err(), "the Timeout fired");
    assert_tick("Timeout(50ms) around wait_read", took);
    assert_eq!(hub::stats().fds, 0);

    let g = spawn(move || {
        let _t = Timeout::start_new(Duration::from_millis(5));
        wait_read(&a, None).is_ok()
    });
    let reports = Reports::install();
    assert!(matches!(g.get(), Err(greenlet::GreenletError::Timeout(_))));
    assert_eq!(reports.take_one().context, "greenlet");
    assert_eq!(hub::stats().fds, 0);
    quiet();
}

#[greenlet::test]
fn a_descriptor_that_cannot_be_polled_is_an_error() {
    let file = std::fs::File::open("/proc/self/exe").expect("open a regular file");
    let (r, took) = timed(|| wait_read(&file, LONG));
    assert!(r.is_err(), "regular files cannot be registered with epoll");
    assert!(took < PROMPT);
    assert_eq!(hub::stats().fds, 0);
    quiet();
}

#[greenlet::test]
fn waiting_on_a_descriptor_inside_a_hub_callback_is_refused() {
    let reports = Reports::install();
    let (a, _b) = pair();
    let g = spawn(|| ());
    g.link(move |_| {
        let _ = wait_read(&a, None);
    });
    g.join().unwrap();
    quiet();
    let r = reports.take_one();
    assert_eq!(r.context, "link callback");
    assert_contains(
        &r.error.to_string(),
        &["wait_read", "cannot block inside a hub callback"],
    );
}
