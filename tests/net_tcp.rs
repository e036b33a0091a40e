//! `greenlet::net` over TCP and Unix sockets: std-shaped calls that switch,
//! one reader plus one writer per socket, the second-reader error, timeouts,
//! kills, shutdown waking a waiter, faults (refused, reset, EPIPE), typed
//! address errors, and no descriptor or registration left behind.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::time::Duration;

use common::{Log, PROMPT, TICK, assert_tick, quiet, timed};
use greenlet::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream};
use greenlet::{Timeout, hub, sleep, spawn, with_timeout};

fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = l.local_addr().expect("local_addr");
    (l, a)
}

/// A connected pair over loopback.
fn tcp_pair() -> (TcpStream, TcpStream) {
    let (l, a) = listener();
    let c = TcpStream::connect(a).expect("connect");
    let (s, _) = l.accept().expect("accept");
    (c, s)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

#[greenlet::test]
fn accept_connect_read_write_switch_instead_of_blocking() {
    let (l, addr) = listener();
    let log = Log::default();
    let server = {
        let log = log.clone();
        spawn(move || {
            log.push("accepting");
            let (mut s, _) = l.accept().unwrap();
            log.push("accepted");
            let mut buf = [0; 5];
            s.read_exact(&mut buf).unwrap();
            log.push(format!(
                "server read {}",
                std::str::from_utf8(&buf).unwrap()
            ));
            s.write_all(b"world").unwrap();
        })
    };
    let ticker = {
        let log = log.clone();
        spawn(move || log.push("other greenlet ran"))
    };
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"hello").unwrap();
    let mut buf = [0; 5];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"world");
    server.join().unwrap();
    ticker.join().unwrap();
    let events = log.take();
    assert_eq!(events[0], "accepting");
    assert!(events.contains(&"other greenlet ran".to_string()));
    assert_eq!(events.last().unwrap(), "server read hello");
    drop(c);
    quiet();
}

#[greenlet::test]
fn a_reader_and_a_writer_wait_on_one_socket_from_two_greenlets() {
    let (c, mut s) = tcp_pair();
    socket2::SockRef::from(&c)
        .set_send_buffer_size(4096)
        .unwrap();
    socket2::SockRef::from(&s)
        .set_recv_buffer_size(4096)
        .unwrap();
    let c = Rc::new(c);
    // The reader blocks first; the writer then blocks on a full buffer of
    // the same descriptor (before: EEXIST from the poller).
    let reader = {
        let c = Rc::clone(&c);
        spawn(move || {
            let mut buf = [0; 3];
            (&*c).read_exact(&mut buf).unwrap();
            buf
        })
    };
    let writer = {
        let c = Rc::clone(&c);
        spawn(move || {
            let chunk = vec![7u8; 64 << 10];
            (&*c).write_all(&chunk).unwrap();
            chunk.len()
        })
    };
    sleep(Duration::from_millis(20));
    assert!(!reader.is_dead() && !writer.is_dead());
    assert_eq!(
        hub::stats().fds,
        1,
        "one descriptor with a reader and a writer"
    );
    s.write_all(b"abc").unwrap();
    let mut sink = vec![0; 64 << 10];
    s.read_exact(&mut sink).unwrap();
    assert_eq!(&reader.get().unwrap(), b"abc");
    assert_eq!(writer.get().unwrap(), 64 << 10);
    drop((c, s));
    quiet();
}

#[greenlet::test]
fn a_second_reader_gets_resource_busy_and_the_first_is_unaffected() {
    let (c, mut s) = tcp_pair();
    let c = Rc::new(c);
    let first = {
        let c = Rc::clone(&c);
        spawn(move || {
            let mut buf = [0; 1];
            (&*c).read(&mut buf).map(|n| (n, buf[0]))
        })
    };
    sleep(Duration::ZERO);
    let e = (&*c).read(&mut [0; 1]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ResourceBusy);
    assert!(e.to_string().contains("ConcurrentObjectUseError"), "{e}");
    s.write_all(b"x").unwrap();
    assert_eq!(first.take().unwrap().unwrap(), (1, b'x'));
    drop((c, s));
    quiet();
}

#[greenlet::test]
fn io_wait_read_and_wait_write_share_a_descriptor_and_refuse_a_second_reader() {
    let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    let a = Rc::new(a);
    let reader = {
        let a = Rc::clone(&a);
        spawn(move || greenlet::io::wait_read(&*a, None))
    };
    sleep(Duration::ZERO);
    let busy = greenlet::io::wait_read(&*a, Duration::from_millis(1)).unwrap_err();
    assert_eq!(busy.kind(), ErrorKind::ResourceBusy);
    // A writer on the same descriptor is fine (the buffer is empty: at once).
    greenlet::io::wait_write(&*a, None).unwrap();
    b.write_all(b"x").unwrap();
    reader.take().unwrap().unwrap();
    drop((a, b));
    quiet();
}

#[greenlet::test]
fn a_killed_reader_leaves_no_registration_and_the_next_reader_works() {
    let (c, mut s) = tcp_pair();
    let c = Rc::new(c);
    let victim = {
        let c = Rc::clone(&c);
        spawn(move || (&*c).read(&mut [0; 1]))
    };
    sleep(Duration::ZERO);
    assert_eq!(hub::stats().fds, 1);
    victim.kill().unwrap();
    assert_eq!(hub::stats().fds, 0);
    s.write_all(b"y").unwrap();
    let mut buf = [0; 1];
    (&*c).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"y");
    drop((c, s));
    quiet();
}

#[greenlet::test]
fn read_timeout_is_timed_out_and_the_socket_stays_usable() {
    let (mut c, mut s) = tcp_pair();
    c.set_read_timeout(Some(TICK)).unwrap();
    let (r, elapsed) = timed(|| c.read(&mut [0; 4]));
    assert_eq!(r.unwrap_err().kind(), ErrorKind::TimedOut);
    assert_tick("read timeout", elapsed);
    assert_eq!(hub::stats().fds, 0);
    s.write_all(b"late").unwrap();
    let mut buf = [0; 4];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"late");
    assert_eq!(
        c.set_read_timeout(Some(Duration::ZERO)).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    drop((c, s));
    quiet();
}

#[greenlet::test]
fn write_timeout_on_a_peer_that_never_reads() {
    // Half-open in practice: the peer is connected but never reads.
    let (c, s) = tcp_pair();
    c.set_write_timeout(Some(TICK)).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut sent = 0usize;
    let (err, elapsed) = timed(|| {
        loop {
            match (&c).write(&chunk) {
                Ok(n) => sent += n,
                Err(e) => return e,
            }
        }
    });
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(sent > 0);
    assert!(elapsed >= TICK, "{elapsed:?}");
    assert!(elapsed < PROMPT, "{elapsed:?}");
    drop((c, s));
    quiet();
}

#[greenlet::test]
fn an_outer_timeout_interrupts_accept_and_read() {
    let (l, _) = listener();
    let (r, elapsed) = timed(|| with_timeout(TICK, || l.accept().map(drop)));
    assert!(r.is_err(), "accept must be interrupted");
    assert_tick("Timeout around accept", elapsed);
    let (c, _s) = tcp_pair();
    // A Timeout started in a greenlet interrupts its read.
    let reader = {
        let c = c.try_clone().unwrap();
        spawn(move || {
            let _t = Timeout::start_new(TICK);
            (&c).read(&mut [0; 1]).map(drop)
        })
    };
    let (r, elapsed) = timed(|| reader.join());
    r.unwrap();
    assert!(!reader.is_successful(), "the reader ended by its Timeout");
    assert_tick("Timeout around read", elapsed);
    assert_eq!(
        hub::stats().fds,
        0,
        "no registration left by the interrupted waits"
    );
    drop((l, c));
    quiet();
}

#[greenlet::test]
fn connect_timeout_times_out_on_a_full_backlog() {
    // A listener with backlog 0 that never accepts: once its queue is full,
    // further SYNs are dropped and a connect stays in progress.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut held = Vec::new();
    let mut timed_out = None;
    for _ in 0..8 {
        match timed(|| TcpStream::connect_timeout(&addr, TICK)) {
            (Ok(s), _) => held.push(s),
            (Err(e), elapsed) => {
                timed_out = Some((e, elapsed));
                break;
            }
        }
    }
    let (e, elapsed) = timed_out.expect("a connect to a full backlog must time out");
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    assert_tick("connect_timeout", elapsed);
    assert_eq!(
        TcpStream::connect_timeout(&addr, Duration::ZERO)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    drop(held);
    quiet();
}

#[greenlet::test]
fn shutdown_wakes_a_reader_waiting_on_the_same_socket() {
    let (c, _s) = tcp_pair();
    let c = Rc::new(c);
    let reader = {
        let c = Rc::clone(&c);
        spawn(move || (&*c).read(&mut [0; 8]))
    };
    sleep(Duration::from_millis(5));
    assert!(!reader.is_dead());
    c.shutdown(Shutdown::Read).unwrap();
    let (r, elapsed) = timed(|| reader.take().unwrap());
    assert_eq!(r.unwrap(), 0, "EOF after shutdown");
    assert!(elapsed < PROMPT);
    drop(c);
    quiet();
}

#[greenlet::test]
fn connection_refused_is_a_typed_error() {
    let (l, addr) = listener();
    drop(l);
    let e = TcpStream::connect(addr).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
    quiet();
}

#[greenlet::test]
fn reset_by_peer_is_a_typed_error() {
    let (mut c, s) = tcp_pair();
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s); // RST
    sleep(Duration::from_millis(5));
    let e = c.read(&mut [0; 4]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionReset);
    quiet();
}

#[greenlet::test]
fn writing_to_a_closed_peer_is_epipe_not_sigpipe() {
    let (mut c, s) = tcp_pair();
    drop(s);
    sleep(Duration::from_millis(5));
    let chunk = [1u8; 4096];
    let mut error = None;
    for _ in 0..100 {
        if let Err(e) = c.write(&chunk) {
            error = Some(e);
            break;
        }
        sleep(Duration::from_millis(1));
    }
    let e = error.expect("a write to a closed peer fails");
    assert!(
        matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
        "{e}"
    );
    // Unix stream sockets too (std's UnixStream would raise SIGPIPE).
    let (mut a, b) = UnixStream::pair().unwrap();
    drop(b);
    assert_eq!(a.write(b"x").unwrap_err().kind(), ErrorKind::BrokenPipe);
    quiet();
}

#[greenlet::test]
fn invalid_addresses_and_ports_are_typed_errors() {
    for bad in ["127.0.0.1:99999", "127.0.0.1", "127.0.0.1:port"] {
        let e = TcpStream::connect(bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}: {e}");
        let e = TcpListener::bind(bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}: {e}");
    }
    let empty: &[SocketAddr] = &[];
    assert_eq!(
        TcpStream::connect(empty).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    // A port in use.
    let (_l, addr) = listener();
    let e = TcpListener::bind(addr).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrInUse);
    // An address of no local interface.
    let e = TcpListener::bind("192.0.2.1:0").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrNotAvailable);
    quiet();
}

#[greenlet::test]
fn ten_thousand_short_connections_leak_no_descriptor() {
    let (l, addr) = listener();
    let before = open_fds();
    let server = spawn(move || {
        let mut served = 0;
        while served < 10_000 {
            let (mut s, _) = l.accept().unwrap();
            s.write_all(b"k").unwrap();
            served += 1;
        }
        served
    });
    for _ in 0..10_000 {
        let mut c = TcpStream::connect(addr).unwrap();
        let mut b = [0; 1];
        c.read_exact(&mut b).unwrap();
    }
    assert_eq!(server.get().unwrap(), 10_000);
    // The listener moved into the server greenlet and is closed now. Other
    // tests of this binary run on other threads and open a few descriptors
    // of their own meanwhile: allow that much, far below one per connection.
    let after = open_fds();
    assert!(
        after < before + 16,
        "{before} descriptors before, {after} after"
    );
    quiet();
}

#[greenlet::test]
fn conversions_to_and_from_std_and_raw_descriptors() {
    let (c, s) = tcp_pair();
    let std_c: std::net::TcpStream = c.into();
    let fd = std_c.into_raw_fd();
    // SAFETY: `fd` came from `into_raw_fd` just above; nothing else owns it.
    let mut c = unsafe { TcpStream::from_raw_fd(fd) };
    let mut s = TcpStream::from(std::net::TcpStream::from(s));
    c.write_all(b"ok").unwrap();
    let mut buf = [0; 2];
    s.read_exact(&mut buf).unwrap();
    let owned: std::os::fd::OwnedFd = s.into();
    let s = TcpStream::from(owned);
    assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
    let clone = c.try_clone().unwrap();
    c.set_nodelay(true).unwrap();
    assert!(clone.nodelay().unwrap(), "one socket, two descriptors");
    drop((c, s, clone));
    quiet();
}

#[greenlet::test]
fn udp_and_unix_datagrams_round_trip() {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = b.local_addr().unwrap();
    let receiver = spawn(move || {
        let mut buf = [0; 16];
        let (n, from) = b.recv_from(&mut buf).unwrap();
        b.send_to(&buf[..n], from).unwrap();
    });
    a.send_to(b"dgram", to).unwrap();
    let mut buf = [0; 16];
    let (n, from) = a.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"dgram"[..], to));
    receiver.join().unwrap();
    a.set_read_timeout(Some(TICK)).unwrap();
    let (r, elapsed) = timed(|| a.recv_from(&mut buf));
    assert_eq!(r.unwrap_err().kind(), ErrorKind::TimedOut);
    assert_tick("udp read timeout", elapsed);

    let (x, y) = UnixDatagram::pair().unwrap();
    let echo = spawn(move || {
        let mut buf = [0; 8];
        let n = y.recv(&mut buf).unwrap();
        y.send(&buf[..n]).unwrap();
    });
    x.send(b"unix").unwrap();
    assert_eq!(x.recv(&mut buf).unwrap(), 4);
    echo.join().unwrap();
    drop((a, x));
    quiet();
}

#[greenlet::test]
fn unix_listener_and_stream() {
    let dir = std::env::temp_dir().join(format!("greenlet-net-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("unix_listener_and_stream.sock");
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&path).unwrap();
    let server = spawn(move || {
        for s in l.incoming().take(3) {
            let mut s = s.unwrap();
            let mut buf = [0; 2];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
        }
    });
    let clients: Vec<_> = (0..3u8)
        .map(|i| {
            let path = path.clone();
            spawn(move || {
                let mut c = UnixStream::connect(&path).unwrap();
                c.write_all(&[i, i]).unwrap();
                let mut buf = [0; 2];
                c.read_exact(&mut buf).unwrap();
                buf == [i, i]
            })
        })
        .collect();
    for c in &clients {
        assert!(c.get().unwrap());
    }
    server.join().unwrap();
    assert_eq!(
        UnixStream::connect(dir.join("missing.sock"))
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    std::fs::remove_file(&path).unwrap();
    quiet();
}

#[test]
fn sockets_outlive_their_hub_scope_and_work_in_the_next() {
    let kept = greenlet::run(tcp_pair);
    greenlet::run(move || {
        let (mut c, mut s) = kept;
        let r = spawn(move || {
            let mut b = [0; 2];
            s.read_exact(&mut b).unwrap();
            b
        });
        c.write_all(b"hi").unwrap();
        assert_eq!(&r.get().unwrap(), b"hi");
    });
}

#[test]
fn host_names_are_resolved_on_the_thread_pool_literals_never() {
    greenlet::run(|| {
        let listener = greenlet::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = greenlet::spawn(move || {
            for _ in 0..2 {
                drop(listener.accept().unwrap());
            }
        });
        greenlet::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert_eq!(
            greenlet::hub::threadpool().size(),
            0,
            "a literal address needs no resolver thread"
        );
        greenlet::net::TcpStream::connect(format!("localhost:{port}")).unwrap();
        assert_eq!(
            greenlet::hub::threadpool().size(),
            1,
            "the name was resolved on the hub's pool"
        );
        server.join().unwrap();
    });
}
