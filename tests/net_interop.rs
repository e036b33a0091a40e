//! `greenlet::net` types are plain `Read + Write`: TLS (rustls, with a
//! self-signed certificate made here) and HTTP/1.1 (httparse) run over them
//! unchanged, client and server greenlets in one hub.

mod common;

use std::io::{Read, Write};
use std::sync::Arc;

use common::quiet;
use greenlet::net::{TcpListener, TcpStream};
use greenlet::server::StreamServer;
use greenlet::spawn;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

fn tls_configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert: CertificateDer<'static> = cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

#[greenlet::test]
fn tls_with_rustls_over_net_tcp_stream() {
    let (server_config, client_config) = tls_configs();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        let conn = rustls::ServerConnection::new(server_config).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let mut line = [0; 12];
        tls.read_exact(&mut line).unwrap();
        tls.write_all(&line.to_ascii_uppercase()).unwrap();
        tls.flush().unwrap();
        tls.conn.send_close_notify();
        tls.flush().unwrap();
        line
    });
    let sock = TcpStream::connect(addr).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(client_config, name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(b"hello, tls!\n").unwrap();
    let mut reply = Vec::new();
    tls.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"HELLO, TLS!\n");
    assert_eq!(&server.get().unwrap(), b"hello, tls!\n");
    assert_eq!(
        tls.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    drop(tls);
    quiet();
}

/// Reads one request head with httparse; `None` at EOF.
fn read_request(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, String)> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut req = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(used) = req.parse(buf).unwrap() {
            let out = (req.method.unwrap().to_owned(), req.path.unwrap().to_owned());
            buf.drain(..used);
            return Some(out);
        }
        let mut chunk = [0; 1024];
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[greenlet::test]
fn http_1_1_keep_alive_with_httparse() {
    let server = StreamServer::bind("127.0.0.1:0", |mut conn: TcpStream, _| {
        let mut buf = Vec::new();
        while let Some((method, path)) = read_request(&mut conn, &mut buf) {
            let body = format!("{method} {path}");
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if conn.write_all(response.as_bytes()).is_err() {
                return;
            }
        }
    })
    .unwrap();
    server.start().unwrap();
    let mut client = TcpStream::connect(server.local_addr().unwrap()).unwrap();
    let mut pending = Vec::new();
    for path in ["/", "/a", "/b/c"] {
        client
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        // One response on the same connection each time (keep-alive).
        let (status, body) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut resp = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(used) = resp.parse(&pending).unwrap() {
                let len: usize = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                    .unwrap();
                if pending.len() >= used + len {
                    let body = String::from_utf8(pending[used..used + len].to_vec()).unwrap();
                    let status = resp.code.unwrap();
                    pending.drain(..used + len);
                    break (status, body);
                }
            }
            let mut chunk = [0; 1024];
            let n = client.read(&mut chunk).unwrap();
            assert!(n > 0, "the server closed a keep-alive connection");
            pending.extend_from_slice(&chunk[..n]);
        };
        assert_eq!(status, 200);
        assert_eq!(body, format!("GET {path}"));
    }
    assert_eq!(
        server.connection_count(),
        1,
        "one connection for three requests"
    );
    drop(client);
    server.stop(None).unwrap();
    quiet();
}
