//! gevent's `examples/echoserver.py`: a `StreamServer` that echoes every
//! line back, driven here by a bounded client in the same process.
//!
//! Run with `cargo run --release --example echoserver`.

use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;

use greenlet::net::TcpStream;
use greenlet::server::StreamServer;
use greenlet::spawn;

/// One connection: greet, then echo lines until the client says `quit` or
/// goes away.
fn echo(stream: TcpStream, peer: SocketAddr) {
    println!("new connection from {peer}");
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(e) => return eprintln!("unexpected: try_clone failed: {e}"),
    };
    if writer
        .write_all(b"Welcome to the echo server! Type quit to exit.\r\n")
        .is_err()
    {
        return;
    }
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        if line.trim() == "quit" {
            return;
        }
        if writer.write_all(format!("{line}\r\n").as_bytes()).is_err() {
            return;
        }
    }
}

#[greenlet::main]
fn main() -> Result<(), Box<dyn Error>> {
    let server = StreamServer::bind("127.0.0.1:0", echo)?;
    server.start()?;
    let addr = server.local_addr()?;
    println!("echo server on {addr}");

    // Ten clients at once, three lines each.
    let clients: Vec<_> = (0..10)
        .map(|i| {
            spawn(move || -> std::io::Result<usize> {
                let stream = TcpStream::connect(addr)?;
                let mut writer = stream.try_clone()?;
                let mut lines = BufReader::new(stream).lines();
                lines.next().transpose()?; // the greeting
                let mut echoed = 0;
                for j in 0..3 {
                    let sent = format!("client {i} line {j}");
                    writer.write_all(format!("{sent}\n").as_bytes())?;
                    let got = lines.next().transpose()?.unwrap_or_default();
                    if got == sent {
                        echoed += 1;
                    } else {
                        eprintln!("unexpected echo {got:?} for {sent:?}");
                    }
                }
                writer.write_all(b"quit\n")?;
                Ok(echoed)
            })
        })
        .collect();
    let mut total = 0;
    for c in &clients {
        total += c.take()??;
    }
    server.stop(None)?;
    if total == 30 {
        println!("echo server: 30 of 30 lines echoed by 10 clients");
    } else {
        eprintln!("unexpected: only {total} of 30 lines echoed");
    }
    Ok(())
}
