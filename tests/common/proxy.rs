//! An HTTP/1.1 proxy on 127.0.0.1 that drops one request header on its way
//! to the upstream server: a real emulator behind it behaves like a store
//! that ignores that header (an S3-compatible store that accepts
//! `If-None-Match: *` and overwrites anyway, say).
//!
//! Requests are parsed only as far as needed to find where each one ends
//! (its header block and a `Content-Length` body; the clients under test
//! send no chunked requests); responses are copied through untouched.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

pub struct HeaderStrippingProxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl HeaderStrippingProxy {
    /// Listens on a free loopback port and forwards to `upstream_port`,
    /// dropping every request header named `header` (any case).
    pub fn start(upstream_port: u16, header: &str) -> HeaderStrippingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let header = header.to_ascii_lowercase();
        let stopping = stop.clone();
        let acceptor = std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                    continue;
                };
                let header = header.clone();
                std::thread::spawn(move || relay(client, server, &header));
            }
        });
        HeaderStrippingProxy {
            port,
            stop,
            acceptor: Some(acceptor),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for HeaderStrippingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

/// One connection: requests rewritten client to server, responses copied back.
fn relay(client: TcpStream, server: TcpStream, header: &str) {
    let (Ok(mut client_w), Ok(mut server_r)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let back = std::thread::spawn(move || {
        let _ = io::copy(&mut server_r, &mut client_w);
        let _ = client_w.shutdown(Shutdown::Both);
    });
    let _ = forward_requests(BufReader::new(client), &server, header);
    let _ = server.shutdown(Shutdown::Write);
    let _ = back.join();
}

fn forward_requests(
    mut from: BufReader<TcpStream>,
    mut to: &TcpStream,
    header: &str,
) -> io::Result<()> {
    loop {
        let mut head = Vec::new();
        let mut body_len = 0u64;
        loop {
            let mut line = Vec::new();
            if from.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            let text = String::from_utf8_lossy(&line).to_ascii_lowercase();
            let name = text.split(':').next().unwrap_or("").trim();
            if name == "content-length" {
                body_len = text
                    .split(':')
                    .nth(1)
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
            }
            let end = line == b"\r\n" || line == b"\n";
            if end || name != header {
                head.extend_from_slice(&line);
            }
            if end {
                break;
            }
        }
        to.write_all(&head)?;
        io::copy(&mut (&mut from).take(body_len), &mut to)?;
    }
}
