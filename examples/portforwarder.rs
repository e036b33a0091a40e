//! gevent's `examples/portforwarder.py`: accept connections and forward each
//! to a target address, copying both directions in two greenlets. Here the
//! target is an upper-casing server in the same process, and a bounded
//! client checks the answers.
//!
//! Run with `cargo run --release --example portforwarder`.

use std::error::Error;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};

use greenlet::net::TcpStream;
use greenlet::server::StreamServer;
use greenlet::spawn;

/// Copies `from` into `to` until EOF, then half-closes `to`.
fn pipe(mut from: TcpStream, mut to: TcpStream) -> std::io::Result<u64> {
    let n = std::io::copy(&mut from, &mut to)?;
    let _ = to.shutdown(Shutdown::Write);
    Ok(n)
}

/// One forwarded connection: connect to `target`, then one greenlet per
/// direction (gevent's `forward`/`joinall`).
fn forward(client: TcpStream, target: SocketAddr) -> std::io::Result<()> {
    let upstream = TcpStream::connect(target)?;
    let up = spawn({
        let (c, u) = (client.try_clone()?, upstream.try_clone()?);
        move || pipe(c, u)
    });
    let down = pipe(upstream, client)?;
    let up = up.take()??;
    println!("forwarded {up} bytes up, {down} bytes down");
    Ok(())
}

#[greenlet::main]
fn main() -> Result<(), Box<dyn Error>> {
    // The target: upper-cases what it reads until EOF.
    let target = StreamServer::bind("127.0.0.1:0", |mut conn: TcpStream, _| {
        let mut text = String::new();
        if conn.read_to_string(&mut text).is_ok() {
            let _ = conn.write_all(text.to_uppercase().as_bytes());
        }
    })?;
    target.start()?;
    let target_addr = target.local_addr()?;

    let forwarder = StreamServer::bind("127.0.0.1:0", move |conn, _| {
        if let Err(e) = forward(conn, target_addr) {
            eprintln!("unexpected: forwarding failed: {e}");
        }
    })?;
    forwarder.start()?;
    let addr = forwarder.local_addr()?;
    println!("forwarding {addr} -> {target_addr}");

    let clients: Vec<_> = ["alpha", "beta", "gamma"]
        .into_iter()
        .map(|word| {
            spawn(move || -> std::io::Result<bool> {
                let mut c = TcpStream::connect(addr)?;
                c.write_all(word.as_bytes())?;
                c.shutdown(Shutdown::Write)?;
                let mut answer = String::new();
                c.read_to_string(&mut answer)?;
                Ok(answer == word.to_uppercase())
            })
        })
        .collect();
    let mut ok = 0;
    for c in &clients {
        if c.take()?? {
            ok += 1;
        }
    }
    forwarder.stop(None)?;
    target.stop(None)?;
    if ok == 3 {
        println!("port forwarder: 3 of 3 answers came back through the forwarder");
    } else {
        eprintln!("unexpected: {ok} of 3 answers were right");
    }
    Ok(())
}
