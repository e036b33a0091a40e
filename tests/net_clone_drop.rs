//! A socket's clones share one open file: dropping one must not take the
//! readiness of another away (each clone has its own descriptor and its own
//! registration).

use std::io::{Read, Write};
use std::time::Duration;

use greenlet::net::{TcpListener, TcpStream, UnixStream};
use greenlet::{sleep, spawn, with_timeout};

#[greenlet::test]
fn dropping_the_original_while_a_clone_waits_keeps_the_clone_woken() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = spawn(move || TcpStream::connect(addr).unwrap());
    let (server, _) = listener.accept().unwrap();
    let mut client = client.take().unwrap();
    let clone = server.try_clone().unwrap();
    let reader = spawn(move || {
        let mut clone = clone;
        let mut buf = [0u8; 5];
        with_timeout(Duration::from_secs(2), || clone.read_exact(&mut buf))
            .expect("the clone was woken")
            .unwrap();
        buf
    });
    sleep(Duration::from_millis(5)); // the clone waits
    drop(server);
    sleep(Duration::from_millis(5));
    client.write_all(b"hello").unwrap();
    assert_eq!(&reader.get().unwrap(), b"hello");
}

#[greenlet::test]
fn a_clone_waiting_while_the_original_was_used_and_dropped() {
    let (a, b) = UnixStream::pair().unwrap();
    let mut b2 = b.try_clone().unwrap();
    // The original registers first by waiting once.
    let mut b1 = b;
    let mut a = a;
    a.write_all(b"x").unwrap();
    let mut one = [0u8; 1];
    b1.read_exact(&mut one).unwrap();
    let reader = spawn(move || {
        let mut buf = [0u8; 2];
        with_timeout(Duration::from_secs(2), || b2.read_exact(&mut buf))
            .expect("the clone was woken")
            .unwrap();
        buf
    });
    sleep(Duration::from_millis(5));
    drop(b1);
    a.write_all(b"yz").unwrap();
    assert_eq!(&reader.get().unwrap(), b"yz");
}
