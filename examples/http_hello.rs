//! A keep-alive HTTP/1.1 "hello world" on `StreamServer`, parsing requests
//! with `httparse`; a bounded client in the same process sends several
//! requests on each of a few connections.
//!
//! Run with `cargo run --release --example http_hello`.

use std::error::Error;
use std::io::{Read, Write};

use greenlet::net::TcpStream;
use greenlet::server::StreamServer;
use greenlet::spawn;

const BODY: &str = "Hello, world!";

/// Serves requests on one connection until the client closes it or sends
/// `Connection: close`.
fn serve(mut conn: TcpStream) -> Result<(), Box<dyn Error>> {
    let mut buf = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        let used = match req.parse(&buf)? {
            httparse::Status::Complete(used) => used,
            httparse::Status::Partial => {
                let n = conn.read(&mut chunk)?;
                if n == 0 {
                    return Ok(());
                }
                buf.extend_from_slice(&chunk[..n]);
                continue;
            }
        };
        let close = req.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("connection") && h.value.eq_ignore_ascii_case(b"close")
        });
        let path = req.path.unwrap_or("/").to_owned();
        buf.drain(..used);
        let (status, body) = if path == "/" {
            ("200 OK", BODY.to_owned())
        } else {
            ("404 Not Found", format!("no page at {path}"))
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        conn.write_all(response.as_bytes())?;
        if close {
            return Ok(());
        }
    }
}

/// Reads one response: (status code, body).
fn read_response(
    conn: &mut TcpStream,
    pending: &mut Vec<u8>,
) -> Result<(u16, String), Box<dyn Error>> {
    let mut chunk = [0; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(used) = resp.parse(pending)? {
            let len: usize = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .ok_or("no Content-Length")?
                .value
                .iter()
                .map(|&b| char::from(b))
                .collect::<String>()
                .parse()?;
            if pending.len() >= used + len {
                let code = resp.code.ok_or("no status")?;
                let body = String::from_utf8(pending[used..used + len].to_vec())?;
                pending.drain(..used + len);
                return Ok((code, body));
            }
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err("connection closed mid-response".into());
        }
        pending.extend_from_slice(&chunk[..n]);
    }
}

#[greenlet::main]
fn main() -> Result<(), Box<dyn Error>> {
    let server = StreamServer::bind("127.0.0.1:0", |conn, _| {
        if let Err(e) = serve(conn) {
            eprintln!("unexpected: serving failed: {e}");
        }
    })?;
    server.start()?;
    let addr = server.local_addr()?;
    println!("http server on http://{addr}/");

    let clients: Vec<_> = (0..4)
        .map(|_| {
            spawn(move || -> Result<usize, String> {
                let run = || -> Result<usize, Box<dyn Error>> {
                    let mut conn = TcpStream::connect(addr)?;
                    let mut pending = Vec::new();
                    let mut good = 0;
                    for i in 0..5 {
                        let path = if i == 3 { "/missing" } else { "/" };
                        let close = if i == 4 { "Connection: close\r\n" } else { "" };
                        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{close}\r\n");
                        conn.write_all(request.as_bytes())?;
                        let (code, body) = read_response(&mut conn, &mut pending)?;
                        match (path, code) {
                            ("/", 200) if body == BODY => good += 1,
                            ("/missing", 404) => good += 1,
                            _ => eprintln!("unexpected response {code} {body:?} for {path}"),
                        }
                    }
                    // `Connection: close`: the server ends the connection.
                    let mut rest = Vec::new();
                    conn.read_to_end(&mut rest)?;
                    Ok(good)
                };
                run().map_err(|e| e.to_string())
            })
        })
        .collect();
    let mut good = 0;
    for c in &clients {
        good += c.take()??;
    }
    server.stop(None)?;
    if good == 20 {
        println!("http_hello: 20 of 20 keep-alive responses checked on 4 connections");
    } else {
        eprintln!("unexpected: {good} of 20 responses were right");
    }
    Ok(())
}
