//! The network workloads of the peer harness (`../shared/peers/README.md`):
//! `echo` and the `http_server PORT` mode, written as a user would, with
//! `greenlet::net` and `greenlet::server::StreamServer`.
//!
//! | workload | what it does | figure |
//! |---|---|---|
//! | `echo` | TCP echo on 127.0.0.1: 100 client connections × 1,000 round trips of 64 bytes, server one greenlet per connection, TCP_NODELAY, all on one hub | `rt_per_s` |
//! | `http_server PORT` | keep-alive HTTP/1.1 "hello world" on 127.0.0.1:PORT, a greenlet per connection (`StreamServer`), one hub; the harness's load generator measures it | (printed by the load generator) |

use std::io::{Read, Write};
use std::time::Instant;

use greenlet::net::{TcpListener, TcpStream};
use greenlet::server::StreamServer;
use greenlet::spawn;

use super::Line;

/// Client connections in `echo`.
const ECHO_CONNS: usize = 100;
/// Round trips per connection.
const ECHO_ROUNDS: usize = 1_000;
/// Bytes per message.
const ECHO_MSG: usize = 64;

/// The peers' `echo`: one server greenlet per accepted connection echoes
/// 64-byte messages; 100 client greenlets each do `rounds` write+read
/// round trips. Prints `rt_per_s`.
pub(super) fn echo(conns: usize, rounds: usize) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local_addr");
    let server = spawn(move || {
        let mut handlers = Vec::with_capacity(conns);
        for _ in 0..conns {
            let (mut s, _) = listener.accept().expect("accept");
            s.set_nodelay(true).expect("nodelay");
            handlers.push(spawn(move || {
                let mut buf = [0u8; ECHO_MSG];
                while s.read_exact(&mut buf).is_ok() {
                    s.write_all(&buf).expect("server write");
                }
            }));
        }
        for h in handlers {
            h.join().expect("join a server handler");
        }
    });
    let start = Instant::now();
    let clients: Vec<_> = (0..conns)
        .map(|c| {
            spawn(move || {
                let mut s = TcpStream::connect(addr).expect("connect loopback");
                s.set_nodelay(true).expect("nodelay");
                let msg = [c as u8; ECHO_MSG];
                let mut buf = [0u8; ECHO_MSG];
                for _ in 0..rounds {
                    s.write_all(&msg).expect("client write");
                    s.read_exact(&mut buf).expect("client read");
                    assert_eq!(buf[0], c as u8);
                }
            })
        })
        .collect();
    for c in &clients {
        c.join().expect("join a client");
        assert!(c.is_successful(), "an echo client failed");
    }
    let el = start.elapsed();
    server.join().expect("join the server");
    let total = conns * rounds;
    let secs = el.as_secs_f64();
    Line::new("echo")
        .s("n", total)
        .s("conns", conns)
        .s("msg_bytes", ECHO_MSG)
        .f("wall_ms", secs * 1e3)
        .f("rt_per_s", total as f64 / secs)
        .f("us_per_rt", secs * 1e6 / total as f64)
        .s("rss_peak_kb", super::hwm_kb())
        .print();
}

/// `echo` with the harness's sizes.
pub(super) fn echo_default() {
    echo(ECHO_CONNS, ECHO_ROUNDS);
}

/// The fixed answer (the peers' `HTTP_RESPONSE`).
const HTTP_RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!";
/// Read buffer per connection (the peers' `HTTP_BUF`).
const HTTP_BUF: usize = 4096;

/// Position just past the first `\r\n\r\n` in `buf`.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Complete request heads in `buf` and the bytes they use.
fn scan(buf: &[u8]) -> (usize, usize) {
    let (mut count, mut used) = (0, 0);
    while let Some(end) = head_end(&buf[used..]) {
        used += end;
        count += 1;
    }
    (count, used)
}

/// One keep-alive connection: read, answer every complete request head
/// with the fixed response (one write), repeat (the peers' minimal parser).
fn http_conn(mut s: TcpStream) {
    let _ = s.set_nodelay(true);
    let mut buf = vec![0u8; HTTP_BUF];
    let mut len = 0;
    let mut out = Vec::with_capacity(HTTP_RESPONSE.len());
    loop {
        let n = match s.read(&mut buf[len..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        len += n;
        let (count, used) = scan(&buf[..len]);
        if count == 0 {
            if len == buf.len() {
                return; // head too large
            }
            continue;
        }
        out.clear();
        for _ in 0..count {
            out.extend_from_slice(HTTP_RESPONSE);
        }
        if s.write_all(&out).is_err() {
            return;
        }
        buf.copy_within(used..len, 0);
        len -= used;
    }
}

/// `http_server PORT`: serves until killed (SIGTERM) or the watchdog.
pub(super) fn http_server(port: u16) {
    let server = StreamServer::bind(("127.0.0.1", port), |s, _| http_conn(s)).unwrap_or_else(|e| {
        eprintln!("http_server: cannot listen on 127.0.0.1:{port}: {e}");
        std::process::exit(2)
    });
    if let Err(e) = server.serve_forever() {
        eprintln!("http_server: {e}");
        std::process::exit(1);
    }
}
