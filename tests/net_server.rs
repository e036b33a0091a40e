//! `greenlet::server`: StreamServer / DatagramServer life cycle, the
//! concurrency limit, panicking and killed handlers, stop with 1000 open
//! connections, accept under descriptor exhaustion (a child process with a
//! lowered RLIMIT_NOFILE), and the multi-core helper.

mod common;

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read, Write};
use std::rc::Rc;
use std::time::Duration;

use common::{PROMPT, TICK, quiet, timed};
use greenlet::net::{TcpStream, UdpSocket};
use greenlet::server::{DatagramServer, StreamServer, serve_multicore};
use greenlet::{GreenletRef, getcurrent, hub, sleep, spawn, with_timeout};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

fn echo_handler(mut conn: TcpStream, _peer: std::net::SocketAddr) {
    let mut buf = [0; 256];
    while let Ok(n @ 1..) = conn.read(&mut buf) {
        if conn.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

#[greenlet::test]
fn stream_server_runs_a_handler_greenlet_per_connection() {
    let running = Rc::new(Cell::new(0usize));
    let peak = Rc::new(Cell::new(0usize));
    let server = {
        let (running, peak) = (Rc::clone(&running), Rc::clone(&peak));
        StreamServer::bind("127.0.0.1:0", move |conn, peer| {
            running.set(running.get() + 1);
            peak.set(peak.get().max(running.get()));
            echo_handler(conn, peer);
            running.set(running.get() - 1);
        })
        .unwrap()
    };
    server.start().unwrap();
    server.start().unwrap(); // idempotent
    let addr = server.local_addr().unwrap();
    let connected = Rc::new(Cell::new(0usize));
    let clients: Vec<_> = (0..20u8)
        .map(|i| {
            let connected = Rc::clone(&connected);
            spawn(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                connected.set(connected.get() + 1);
                // Every client holds its connection until all are open.
                while connected.get() < 20 {
                    sleep(Duration::from_millis(1));
                }
                for round in 0..10u8 {
                    c.write_all(&[i, round]).unwrap();
                    let mut b = [0; 2];
                    c.read_exact(&mut b).unwrap();
                    assert_eq!(b, [i, round]);
                }
            })
        })
        .collect();
    for c in &clients {
        c.join().unwrap();
        assert!(c.is_successful());
    }
    assert_eq!(peak.get(), 20, "one handler greenlet per open connection");
    server.stop(None).unwrap();
    assert!(server.is_closed());
    assert_eq!(server.connection_count(), 0);
    assert_eq!(server.start().unwrap_err().kind(), ErrorKind::NotConnected);
    quiet();
}

#[greenlet::test]
fn the_concurrency_limit_is_never_exceeded() {
    let running = Rc::new(Cell::new(0usize));
    let peak = Rc::new(Cell::new(0usize));
    let server = {
        let (running, peak) = (Rc::clone(&running), Rc::clone(&peak));
        StreamServer::bind("127.0.0.1:0", move |mut conn, _| {
            running.set(running.get() + 1);
            peak.set(peak.get().max(running.get()));
            sleep(Duration::from_millis(10));
            conn.write_all(b"done").unwrap();
            running.set(running.get() - 1);
        })
        .unwrap()
        .max_connections(2)
    };
    server.start().unwrap();
    let addr = server.local_addr().unwrap();
    let clients: Vec<_> = (0..6)
        .map(|_| {
            spawn(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                let mut s = String::new();
                c.read_to_string(&mut s).unwrap();
                s
            })
        })
        .collect();
    for c in &clients {
        assert_eq!(c.take().unwrap(), "done");
    }
    assert_eq!(peak.get(), 2);
    server.stop(None).unwrap();
    quiet();
}

#[greenlet::test]
fn a_panicking_handler_ends_its_connection_only() {
    let reports = Rc::new(RefCell::new(Vec::new()));
    {
        let reports = Rc::clone(&reports);
        hub::set_error_handler(move |r| reports.borrow_mut().push(r.to_string()));
    }
    let server = StreamServer::bind("127.0.0.1:0", |mut conn: TcpStream, _| {
        let mut b = [0; 1];
        conn.read_exact(&mut b).unwrap();
        assert_ne!(b[0], b'!', "handler refuses '!'");
        conn.write_all(&b).unwrap();
    })
    .unwrap();
    server.start().unwrap();
    let addr = server.local_addr().unwrap();
    let mut good = TcpStream::connect(addr).unwrap();
    let mut bad = TcpStream::connect(addr).unwrap();
    bad.write_all(b"!").unwrap();
    assert_eq!(
        bad.read(&mut [0; 1]).unwrap(),
        0,
        "the panicking handler's connection closed"
    );
    good.write_all(b"g").unwrap();
    let mut b = [0; 1];
    good.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"g");
    // The server still accepts.
    let mut again = TcpStream::connect(addr).unwrap();
    again.write_all(b"a").unwrap();
    again.read_exact(&mut b).unwrap();
    assert_eq!(reports.borrow().len(), 1);
    assert!(
        reports.borrow()[0].contains("handler refuses"),
        "{:?}",
        reports.borrow()
    );
    server.stop(None).unwrap();
    quiet();
}

#[greenlet::test]
fn a_handler_killed_while_writing_closes_its_connection() {
    let handler: Rc<RefCell<Option<GreenletRef>>> = Rc::default();
    let server = {
        let handler = Rc::clone(&handler);
        StreamServer::bind("127.0.0.1:0", move |conn: TcpStream, _| {
            *handler.borrow_mut() = Some(getcurrent());
            let chunk = vec![0u8; 1 << 16];
            loop {
                // The client never reads: this blocks once the buffers fill.
                if (&conn).write_all(&chunk).is_err() {
                    return;
                }
            }
        })
        .unwrap()
    };
    server.start().unwrap();
    let mut client = TcpStream::connect(server.local_addr().unwrap()).unwrap();
    sleep(Duration::from_millis(20));
    assert_eq!(server.connection_count(), 1);
    assert_eq!(
        hub::stats().fds,
        2,
        "the accept loop and the blocked writer"
    );
    let h = handler.borrow_mut().take().unwrap();
    greenlet::kill(&h);
    sleep(Duration::from_millis(5));
    assert_eq!(server.connection_count(), 0);
    assert_eq!(hub::stats().fds, 1, "only the accept loop waits");
    // The client drains what was sent, then sees EOF.
    let mut sink = Vec::new();
    client.set_read_timeout(Some(PROMPT)).unwrap();
    client.read_to_end(&mut sink).unwrap();
    assert!(!sink.is_empty());
    server.stop(None).unwrap();
    quiet();
}

#[greenlet::test]
fn stop_with_1000_open_connections_ends_every_handler_and_closes_every_descriptor() {
    let before = open_fds();
    let ended = Rc::new(Cell::new(0usize));
    let server = {
        let ended = Rc::clone(&ended);
        StreamServer::bind("127.0.0.1:0", move |mut conn: TcpStream, _| {
            struct Count(Rc<Cell<usize>>);
            impl Drop for Count {
                fn drop(&mut self) {
                    self.0.set(self.0.get() + 1);
                }
            }
            let _count = Count(Rc::clone(&ended));
            // Never ends by itself: the client never sends anything.
            let _ = conn.read(&mut [0; 1]);
        })
        .unwrap()
    };
    server.start().unwrap();
    let addr = server.local_addr().unwrap();
    let clients: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    while server.connection_count() < 1000 {
        sleep(Duration::from_millis(1));
    }
    let (r, elapsed) = timed(|| server.stop(TICK));
    r.unwrap();
    assert!(elapsed >= TICK && elapsed < PROMPT, "{elapsed:?}");
    assert_eq!(ended.get(), 1000, "every handler ended");
    assert_eq!(server.connection_count(), 0);
    assert_eq!(hub::stats().fds, 0);
    let mut eofs = 0;
    for mut c in clients {
        if c.read(&mut [0; 1]).unwrap_or(0) == 0 {
            eofs += 1;
        }
    }
    assert_eq!(eofs, 1000);
    let after = open_fds();
    // Other tests of this binary open descriptors on other threads.
    assert!(
        after < before + 16,
        "{before} descriptors before, {after} after"
    );
    quiet();
}

#[greenlet::test]
fn serve_forever_returns_after_close_and_a_timeout_around_it_closes_the_server() {
    let server = StreamServer::bind("127.0.0.1:0", echo_handler).unwrap();
    let closer = server.clone();
    spawn(move || {
        sleep(TICK);
        closer.close();
    });
    let (r, elapsed) = timed(|| server.serve_forever());
    r.unwrap();
    assert!(elapsed >= TICK && elapsed < PROMPT);
    let server = StreamServer::bind("127.0.0.1:0", echo_handler).unwrap();
    assert!(with_timeout(TICK, || server.serve_forever()).is_err());
    assert!(server.is_closed());
    quiet();
}

#[greenlet::test]
fn datagram_server_answers_each_datagram() {
    let server = DatagramServer::bind("127.0.0.1:0", |data, from, socket: &UdpSocket| {
        let mut reply = data;
        reply.reverse();
        socket.send_to(&reply, from).unwrap();
    })
    .unwrap();
    server.start().unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(PROMPT)).unwrap();
    for word in ["abc", "hello"] {
        client
            .send_to(word.as_bytes(), server.local_addr().unwrap())
            .unwrap();
        let mut buf = [0; 16];
        let n = client.recv(&mut buf).unwrap();
        let expected: String = word.chars().rev().collect();
        assert_eq!(&buf[..n], expected.as_bytes());
    }
    server.stop(None).unwrap();
    quiet();
}

#[test]
fn serve_multicore_spreads_connections_over_threads() {
    let server = serve_multicore("127.0.0.1:0", 2, Duration::from_secs(1), || {
        |mut conn: TcpStream, _| {
            let name = std::thread::current().name().unwrap_or("").to_owned();
            conn.write_all(name.as_bytes()).unwrap();
        }
    })
    .unwrap();
    let addr = server.local_addr();
    let mut threads = std::collections::BTreeSet::new();
    for _ in 0..64 {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(PROMPT)).unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        threads.insert(s);
    }
    server.stop().unwrap();
    assert!(
        threads.iter().all(|t| t.starts_with("greenlet-server-")),
        "{threads:?}"
    );
    assert_eq!(
        threads.len(),
        2,
        "64 connections all went to one thread: {threads:?}"
    );
    assert!(std::net::TcpStream::connect(addr).is_err(), "stopped");
}

const EMFILE_CHILD: &str = "GREENLET_TEST_EMFILE_CHILD";

/// Runs in a child process: `RLIMIT_NOFILE` lowered, the table filled.
fn emfile_child() {
    greenlet::run(|| {
        let _poller = hub::handle(); // the poller's descriptors exist first
        let server = StreamServer::bind("127.0.0.1:0", |mut conn: TcpStream, _| {
            conn.write_all(b"ok").unwrap();
        })
        .unwrap();
        let addr = server.local_addr().unwrap();
        // Three connections wait in the backlog (the kernel completes them
        // without an accept).
        let clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let limit = u64::try_from(open_fds()).unwrap() + 8;
        let rl = libc::rlimit {
            rlim_cur: limit,
            rlim_max: 20_000.max(limit),
        };
        // SAFETY: `rl` is a valid rlimit for the duration of the call.
        let r = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) };
        assert_eq!(r, 0, "setrlimit");
        let mut filler = Vec::new();
        loop {
            match std::fs::File::open("/dev/null") {
                Ok(f) => filler.push(f),
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                    break;
                }
            }
        }
        server.start().unwrap();
        sleep(Duration::from_millis(300));
        let errors = server.accept_errors();
        // 10 + 20 + 40 + 80 + 160 ms: about 5 attempts in 300 ms, not a
        // busy loop (thousands), yet retrying.
        assert!(
            (2..=8).contains(&errors),
            "{errors} accept errors in 300 ms"
        );
        drop(filler);
        for mut c in clients {
            c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut b = [0; 2];
            c.read_exact(&mut b).unwrap();
            assert_eq!(&b, b"ok");
        }
        server.stop(None).unwrap();
        println!("emfile child ok: {errors} accept errors");
    });
}

#[test]
fn accept_under_descriptor_exhaustion_backs_off_and_recovers() {
    if std::env::var_os(EMFILE_CHILD).is_some() {
        emfile_child();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "accept_under_descriptor_exhaustion_backs_off_and_recovers",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(EMFILE_CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("emfile child ok"), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("accept failed"),
        "the errors were reported: {stderr}"
    );
}
