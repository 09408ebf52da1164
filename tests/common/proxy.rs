//! An HTTP/1.1 proxy on 127.0.0.1 in front of an emulator, for what real
//! stores and networks do that emulators do not: drop a request header (a
//! store that accepts `If-None-Match: *` and overwrites anyway), answer a
//! storm of 503s, cut a response body short and close the connection (a reset
//! or a truncated download), or answer late (a slow store); or hold every
//! request whose line contains a text until released, a deterministic way to
//! keep one upload in flight (and kill its client then).
//!
//! Requests and responses are parsed only as far as needed to find where each
//! one ends (the header block and a `Content-Length` body; the clients under
//! test send no chunked requests). A response in another framing is copied
//! through with the rest of its connection untouched.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the proxy does to the traffic, changeable while it runs.
#[derive(Default)]
pub struct Faults {
    /// The next this many requests are answered `503 Slow Down` by the proxy
    /// itself, without reaching the emulator.
    pub fail_requests: AtomicUsize,
    /// The next this many responses with a body over [`CUT_OVER`] bytes send
    /// half of it, then the connection is closed.
    pub cut_bodies: AtomicUsize,
    /// Every response waits this long before it is sent.
    pub delay_ms: AtomicU64,
    /// Requests answered by the proxy, responses cut.
    pub failed: AtomicUsize,
    pub cut: AtomicUsize,
    /// The request lines forwarded, in order.
    requests: Mutex<Vec<String>>,
    /// What requests are held on, and how many wait now.
    hold: Mutex<Hold>,
    changed: Condvar,
}

type Held = Arc<dyn Fn(&str) -> bool + Send + Sync>;

#[derive(Default)]
struct Hold {
    on: Option<Held>,
    waiting: usize,
    /// Held requests are dropped when released, their connection closed.
    drop: bool,
}

/// Bodies over this size (segments, not metadata) are the ones cut.
pub const CUT_OVER: u64 = 64 * 1024;

pub struct Proxy {
    pub port: u16,
    pub faults: Arc<Faults>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream_port`,
    /// dropping every request header named `strip` (any case).
    pub fn start(upstream_port: u16, strip: Option<&str>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let faults = Arc::new(Faults::default());
        let strip = strip.map(str::to_ascii_lowercase);
        let (stopping, shared) = (stop.clone(), faults.clone());
        let acceptor = std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                    continue;
                };
                let (strip, faults) = (strip.clone(), shared.clone());
                std::thread::spawn(move || relay(client, server, strip.as_deref(), &faults));
            }
        });
        Proxy {
            port,
            faults,
            stop,
            acceptor: Some(acceptor),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Holds every request whose line contains `text` until [`Proxy::release`].
    pub fn hold(&self, text: &str) {
        let text = text.to_owned();
        self.hold_if(move |line| line.contains(&text));
    }

    /// Holds every request whose line `held` picks until [`Proxy::release`].
    pub fn hold_if(&self, held: impl Fn(&str) -> bool + Send + Sync + 'static) {
        let mut hold = self.faults.hold.lock().unwrap();
        hold.on = Some(Arc::new(held));
        hold.drop = false;
    }

    pub fn release(&self) {
        self.end_hold(false);
    }

    /// Releases the held requests without forwarding them: their connections
    /// are closed, so they never reach the store (a client killed in the
    /// middle of an upload, whose bytes were still in the network).
    pub fn drop_held(&self) {
        self.end_hold(true);
    }

    fn end_hold(&self, drop: bool) {
        let mut hold = self.faults.hold.lock().unwrap();
        hold.on = None;
        hold.drop = drop;
        self.faults.changed.notify_all();
    }

    /// Returns once a request is held (panics after a minute: the client
    /// never sent it).
    pub fn until_held(&self) {
        let hold = self.faults.hold.lock().unwrap();
        let (hold, timeout) = self
            .faults
            .changed
            .wait_timeout_while(hold, Duration::from_secs(60), |h| h.waiting == 0)
            .unwrap();
        assert!(
            !timeout.timed_out() || hold.waiting > 0,
            "no request held within a minute"
        );
    }

    /// The request lines forwarded since the last call.
    pub fn take_requests(&self) -> Vec<String> {
        std::mem::take(&mut *self.faults.requests.lock().unwrap())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

/// Takes one from `counter` if it is above zero.
fn take_one(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// One connection: requests rewritten client to server, responses back.
fn relay(client: TcpStream, server: TcpStream, strip: Option<&str>, faults: &Arc<Faults>) {
    let (Ok(client_w), Ok(server_r)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let back_faults = faults.clone();
    // The method of each forwarded request, in order: a response to HEAD has
    // a Content-Length but no body.
    let (methods, forwarded) = std::sync::mpsc::channel::<bool>();
    let back = std::thread::spawn(move || {
        let _ = forward_responses(
            BufReader::new(server_r),
            &client_w,
            &back_faults,
            &forwarded,
        );
        let _ = client_w.shutdown(Shutdown::Both);
    });
    let Ok(reader) = client.try_clone() else {
        return;
    };
    let _ = forward_requests(
        BufReader::new(reader),
        &server,
        &client,
        strip,
        faults,
        &methods,
    );
    let _ = server.shutdown(Shutdown::Both);
    let _ = client.shutdown(Shutdown::Both);
    let _ = back.join();
}

/// One header block as read, with what frames the body after it.
struct Head {
    bytes: Vec<u8>,
    len: Option<u64>,
    chunked: bool,
}

/// Reads one header block (through the empty line), calling `keep` on each
/// header line to decide whether it stays; `None` at the end of the stream.
fn read_head(
    from: &mut BufReader<TcpStream>,
    keep: &dyn Fn(&str) -> bool,
) -> io::Result<Option<Head>> {
    let mut head = Vec::new();
    let mut len = None;
    let mut chunked = false;
    loop {
        let mut line = Vec::new();
        if from.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&line).to_ascii_lowercase();
        let (name, value) = text.split_once(':').unwrap_or((&text, ""));
        match name.trim() {
            "content-length" => len = value.trim().parse().ok(),
            "transfer-encoding" => chunked = value.contains("chunked"),
            _ => {}
        }
        let end = line == b"\r\n" || line == b"\n";
        if end || keep(name.trim()) {
            head.extend_from_slice(&line);
        }
        if end {
            return Ok(Some(Head {
                bytes: head,
                len,
                chunked,
            }));
        }
    }
}

fn forward_requests(
    mut from: BufReader<TcpStream>,
    mut to: &TcpStream,
    mut client: &TcpStream,
    strip: Option<&str>,
    faults: &Faults,
    methods: &std::sync::mpsc::Sender<bool>,
) -> io::Result<()> {
    let keep = |name: &str| Some(name) != strip;
    while let Some(Head {
        bytes: head, len, ..
    }) = read_head(&mut from, &keep)?
    {
        let body = len.unwrap_or(0);
        let line =
            String::from_utf8_lossy(head.split(|&b| b == b'\r').next().unwrap_or(&[])).into_owned();
        if wait_while_held(faults, &line) {
            return Ok(());
        }
        faults.requests.lock().unwrap().push(line);
        if take_one(&faults.fail_requests) {
            io::copy(&mut (&mut from).take(body), &mut io::sink())?;
            faults.failed.fetch_add(1, Ordering::SeqCst);
            client.write_all(
                b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: 0\r\n\r\n",
            )?;
            continue;
        }
        let _ = methods.send(head.starts_with(b"HEAD "));
        to.write_all(&head)?;
        io::copy(&mut (&mut from).take(body), &mut to)?;
    }
    Ok(())
}

/// Blocks while requests like `line` are held; true when the request is to be
/// dropped.
fn wait_while_held(faults: &Faults, line: &str) -> bool {
    let mut hold = faults.hold.lock().unwrap();
    let held = |h: &Hold| h.on.as_ref().is_some_and(|on| on(line));
    if !held(&hold) {
        return false;
    }
    hold.waiting += 1;
    faults.changed.notify_all();
    while held(&hold) {
        hold = faults.changed.wait(hold).unwrap();
    }
    hold.waiting -= 1;
    hold.drop
}

fn forward_responses(
    mut from: BufReader<TcpStream>,
    mut to: &TcpStream,
    faults: &Faults,
    heads: &std::sync::mpsc::Receiver<bool>,
) -> io::Result<()> {
    while let Some(Head {
        bytes: head,
        len,
        chunked,
    }) = read_head(&mut from, &|_| true)?
    {
        let no_body = heads.recv().unwrap_or(false)
            || head.starts_with(b"HTTP/1.1 204")
            || head.starts_with(b"HTTP/1.1 304");
        let len = if no_body { Some(0) } else { len };
        let delay = faults.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        to.write_all(&head)?;
        match len {
            Some(len) if !chunked => {
                if len > CUT_OVER && take_one(&faults.cut_bodies) {
                    io::copy(&mut (&mut from).take(len / 2), &mut to)?;
                    faults.cut.fetch_add(1, Ordering::SeqCst);
                    return Ok(());
                }
                io::copy(&mut (&mut from).take(len), &mut to)?;
            }
            // Another framing: the rest of the connection as it comes.
            _ => {
                io::copy(&mut from, &mut to)?;
                return Ok(());
            }
        }
    }
    Ok(())
}
