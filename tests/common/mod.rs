//! Scripted raw-socket HTTP/1.1 test server and helpers for integration tests.
//!
//! The server is deliberately independent of the library under test: it uses
//! std threads and blocking `std::net` sockets only.
//!
//! * [`Server::start`] accepts connections on `127.0.0.1:0` and runs the
//!   handler on one thread per connection with a [`Conn`].
//! * [`Conn`] reads requests (Content-Length or chunked bodies), writes raw
//!   bytes, drips bytes, closes with FIN or resets with RST.
//! * Every blocking operation is bounded (default read timeout 5 s), so a
//!   broken client never hangs a test.
//! * Dropping the [`Server`] stops accepting, shuts down every live
//!   connection (which wakes handlers blocked in a read) and waits a short,
//!   bounded time for handler threads to finish. It never panics; handler
//!   panics are recorded and available from [`Server::handler_panics`].

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Default read timeout of every accepted connection.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound used by the `wait_*` helpers of [`Server`].
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `Server::drop` waits for handler threads before detaching them.
const DROP_GRACE: Duration = Duration::from_secs(1);
/// Largest request head the harness accepts.
const MAX_HEAD: usize = 1 << 20;

// ---------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------

struct Shared {
    addr: SocketAddr,
    stop: AtomicBool,
    state: Mutex<State>,
    cond: Condvar,
}

#[derive(Default)]
struct State {
    /// Requests read per connection, indexed by accept order.
    per_conn: Vec<usize>,
    requests: usize,
    received: Vec<Request>,
    /// Connections closed (Conn::close / Conn::reset / Conn dropped).
    closed: usize,
    /// Handler threads still running.
    running: usize,
    /// Clones of live sockets, used to shut them down when the server drops.
    live: HashMap<usize, TcpStream>,
    panics: Vec<String>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `pred` holds or `timeout` passes; returns whether it holds.
    fn wait_until(&self, timeout: Duration, pred: impl Fn(&State) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        loop {
            if pred(&st) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self.cond.wait_timeout(st, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

/// A scripted HTTP/1.1 server on `127.0.0.1:0`.
pub struct Server {
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts listening. Each accepted connection runs `handler` on its own
    /// thread with a [`Conn`]; when the handler returns the connection is
    /// closed (FIN), unless the handler already closed or reset it.
    pub fn start<F>(handler: F) -> Server
    where
        F: Fn(&mut Conn) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("test server: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("test server: local_addr");
        let shared = Arc::new(Shared {
            addr,
            stop: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
        });
        let handler = Arc::new(handler);
        let sh = shared.clone();
        let accept_thread = thread::Builder::new()
            .name(format!("test-server-accept-{}", addr.port()))
            .spawn(move || accept_loop(listener, sh, handler))
            .expect("test server: spawn accept thread");
        Server { shared, accept_thread: Some(accept_thread) }
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `"http://127.0.0.1:PORT{path}"`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.shared.addr, path)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.lock().per_conn.len()
    }

    /// Requests successfully read via [`Conn::read_request`] so far.
    pub fn requests(&self) -> usize {
        self.shared.lock().requests
    }

    /// Requests read on each connection, in accept order.
    pub fn requests_per_connection(&self) -> Vec<usize> {
        self.shared.lock().per_conn.clone()
    }

    /// Every request read so far, in the order they were read.
    pub fn received(&self) -> Vec<Request> {
        self.shared.lock().received.clone()
    }

    /// Connections closed so far (handler finished, or `Conn::close` /
    /// `Conn::reset` called).
    pub fn closed(&self) -> usize {
        self.shared.lock().closed
    }

    /// Blocks until at least `n` connections have been closed (handler
    /// finished or `close`/`reset` called). Panics after [`WAIT_TIMEOUT`].
    pub fn wait_closed(&self, n: usize) {
        self.wait_closed_within(n, WAIT_TIMEOUT);
    }

    /// As [`Server::wait_closed`], with an explicit bound.
    pub fn wait_closed_within(&self, n: usize, timeout: Duration) {
        if !self.shared.wait_until(timeout, |st| st.closed >= n) {
            let st = self.shared.lock();
            panic!(
                "test server: timed out after {:?} waiting for {} closed connection(s); \
                 closed = {}, accepted = {}, requests = {}",
                timeout,
                n,
                st.closed,
                st.per_conn.len(),
                st.requests
            );
        }
    }

    /// Blocks until at least `n` connections have been accepted. Panics after
    /// [`WAIT_TIMEOUT`].
    pub fn wait_connections(&self, n: usize) {
        if !self.shared.wait_until(WAIT_TIMEOUT, |st| st.per_conn.len() >= n) {
            panic!(
                "test server: timed out after {:?} waiting for {} connection(s); accepted = {}",
                WAIT_TIMEOUT,
                n,
                self.connections()
            );
        }
    }

    /// Blocks until at least `n` requests have been read. Panics after
    /// [`WAIT_TIMEOUT`].
    pub fn wait_requests(&self, n: usize) {
        if !self.shared.wait_until(WAIT_TIMEOUT, |st| st.requests >= n) {
            panic!(
                "test server: timed out after {:?} waiting for {} request(s); requests = {}",
                WAIT_TIMEOUT,
                n,
                self.requests()
            );
        }
    }

    /// Messages of handler panics so far, each prefixed with `conn N: `.
    pub fn handler_panics(&self) -> Vec<String> {
        self.shared.lock().panics.clone()
    }

    /// Panics (with the handler messages) if any handler panicked.
    pub fn assert_no_handler_panics(&self) {
        let panics = self.handler_panics();
        assert!(panics.is_empty(), "test server handler panicked: {panics:?}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept() with a connection to ourselves.
        let woke = TcpStream::connect_timeout(&self.shared.addr, Duration::from_secs(1)).is_ok();
        if let Some(t) = self.accept_thread.take()
            && woke
        {
            let _ = t.join();
        }
        // Shut down live connections: handlers blocked in a read wake up.
        {
            let st = self.shared.lock();
            for s in st.live.values() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        // Give handler threads a short, bounded time to finish; then detach.
        self.shared.wait_until(DROP_GRACE, |st| st.running == 0);
    }
}

fn accept_loop<F>(listener: TcpListener, shared: Arc<Shared>, handler: Arc<F>)
where
    F: Fn(&mut Conn) + Send + Sync + 'static,
{
    loop {
        let accepted = listener.accept();
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(_) => {
                // EMFILE and friends: back off briefly and retry.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(DEFAULT_READ_TIMEOUT));
        let _ = stream.set_write_timeout(Some(DEFAULT_READ_TIMEOUT));
        let index = {
            let mut st = shared.lock();
            let index = st.per_conn.len();
            st.per_conn.push(0);
            st.running += 1;
            if let Ok(clone) = stream.try_clone() {
                st.live.insert(index, clone);
            }
            index
        };
        shared.cond.notify_all();
        let conn = Conn {
            stream: Some(stream),
            buf: Vec::new(),
            index,
            shared: shared.clone(),
            read_timeout: Some(DEFAULT_READ_TIMEOUT),
            last_error: None,
        };
        let h = handler.clone();
        let sh = shared.clone();
        let spawned =
            thread::Builder::new().name(format!("test-server-conn-{index}")).spawn(move || run_conn(conn, h, sh));
        if spawned.is_err() {
            // The Conn was dropped with the closure (closing it); fix counts.
            let mut st = shared.lock();
            st.running -= 1;
            st.panics.push(format!("conn {index}: could not spawn handler thread"));
            drop(st);
            shared.cond.notify_all();
        }
    }
}

fn run_conn<F>(mut conn: Conn, handler: Arc<F>, shared: Arc<Shared>)
where
    F: Fn(&mut Conn) + Send + Sync + 'static,
{
    let index = conn.index;
    let result = panic::catch_unwind(AssertUnwindSafe(|| handler(&mut conn)));
    // Close (FIN) unless the handler already closed or reset.
    drop(conn);
    let mut st = shared.lock();
    if let Err(payload) = result {
        st.panics.push(format!("conn {index}: {}", panic_message(&*payload)));
    }
    st.running -= 1;
    drop(st);
    shared.cond.notify_all();
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_string()
    }
}

// ---------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------

/// One request as received by the server.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub target: String,
    /// Minor version: `0` for HTTP/1.0, `1` for HTTP/1.1.
    pub version: u8,
    /// Header fields in wire order, names as sent, values trimmed.
    pub headers: Vec<(String, String)>,
    /// Decoded body (chunked framing removed).
    pub body: Vec<u8>,
    /// Request line and header section, including the final empty line.
    pub raw_head: Vec<u8>,
    /// Body bytes exactly as they were on the wire (chunk framing kept).
    pub raw_body: Vec<u8>,
    /// Whether the body was chunked.
    pub chunked: bool,
    /// Trailer fields of a chunked body.
    pub trailers: Vec<(String, String)>,
    /// Index (accept order) of the connection the request arrived on.
    pub conn_index: usize,
}

impl Request {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Number of header fields named `name` (case-insensitive).
    pub fn header_count(&self, name: &str) -> usize {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).count()
    }

    /// All values of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// The head as a (lossy) string, for assertions and messages.
    pub fn head_str(&self) -> String {
        String::from_utf8_lossy(&self.raw_head).into_owned()
    }

    /// Whether the client asked to close the connection after this request.
    pub fn wants_close(&self) -> bool {
        let has = |tok: &str| {
            self.header_all("connection").iter().any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(tok)))
        };
        if self.version == 0 { !has("keep-alive") } else { has("close") }
    }
}

// ---------------------------------------------------------------------------
// Conn
// ---------------------------------------------------------------------------

/// One accepted connection, with its own read buffer.
pub struct Conn {
    /// `None` once closed or reset.
    stream: Option<TcpStream>,
    /// Bytes read from the socket but not yet consumed.
    buf: Vec<u8>,
    index: usize,
    shared: Arc<Shared>,
    read_timeout: Option<Duration>,
    last_error: Option<String>,
}

enum CloseMode {
    /// Drain readable bytes, then close the descriptor (FIN).
    Graceful,
    /// `shutdown(Write)` first, then as `Graceful`.
    Fin,
    /// SO_LINGER 0, then close (RST).
    Reset,
}

impl Conn {
    /// Connection number, 0-based accept order.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The underlying socket. Panics if the connection was closed or reset.
    pub fn stream(&mut self) -> &mut TcpStream {
        self.stream.as_mut().expect("test server: Conn::stream() after close()/reset()")
    }

    /// Whether `close()` or `reset()` has been called.
    pub fn is_closed(&self) -> bool {
        self.stream.is_none()
    }

    /// Whether the server is being dropped.
    pub fn server_stopping(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    /// Why the last `read_request` returned `None` (`"eof"` for a clean EOF
    /// before any byte).
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Bytes read from the socket and not yet consumed by `read_request`.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Sets the per-read timeout (`None` = block forever; avoid that).
    pub fn set_read_timeout(&mut self, d: Option<Duration>) {
        self.read_timeout = d;
        if let Some(s) = &self.stream {
            let _ = s.set_read_timeout(d);
        }
    }

    /// Writes all bytes; errors are ignored (the peer may have gone).
    pub fn write(&mut self, bytes: &[u8]) {
        if let Some(s) = &mut self.stream {
            let _ = s.write_all(bytes);
            let _ = s.flush();
        }
    }

    /// Writes one byte at a time, sleeping `per_byte` after each; stops
    /// quietly on the first error.
    pub fn write_slowly(&mut self, bytes: &[u8], per_byte: Duration) {
        let Some(s) = &mut self.stream else { return };
        for b in bytes {
            if s.write_all(std::slice::from_ref(b)).is_err() || s.flush().is_err() {
                return;
            }
            thread::sleep(per_byte);
        }
    }

    /// Writes `HTTP/1.1 {status} {reason}`, the given headers and the body.
    /// A `Content-Length` header is added unless `headers` already contain
    /// `Content-Length` or `Transfer-Encoding`, or the status is 1xx, 204 or
    /// 304. The whole response goes out in a single write.
    pub fn respond(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        let bytes = response_bytes(status, headers, body);
        self.write(&bytes);
    }

    /// Reads one request: head up to the empty line, then a body framed by
    /// `Transfer-Encoding: chunked` or `Content-Length` (none otherwise).
    /// Returns `None` on EOF, error, timeout or a malformed request; the
    /// reason is kept in [`Conn::last_error`].
    pub fn read_request(&mut self) -> Option<Request> {
        self.last_error = None;
        match self.read_request_inner() {
            Ok(req) => {
                let mut st = self.shared.lock();
                st.requests += 1;
                if let Some(n) = st.per_conn.get_mut(self.index) {
                    *n += 1;
                }
                st.received.push(req.clone());
                drop(st);
                self.shared.cond.notify_all();
                Some(req)
            }
            Err(e) => {
                self.last_error = Some(e);
                None
            }
        }
    }

    /// Waits until the peer closes (read returns 0 or an error), at most
    /// `timeout`. Bytes received meanwhile are kept in the read buffer.
    /// Returns `true` if the peer closed (also when this side is already
    /// closed or the server is being dropped).
    pub fn wait_peer_close(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let Some(s) = &mut self.stream else {
            return true;
        };
        let mut tmp = [0u8; 8192];
        let closed = loop {
            let now = Instant::now();
            if now >= deadline {
                break false;
            }
            let _ = s.set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))));
            match s.read(&mut tmp) {
                Ok(0) => break true,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if is_timeout(&e) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break true,
            }
        };
        let _ = s.set_read_timeout(self.read_timeout);
        closed
    }

    /// Graceful close: FIN (`shutdown(Write)`), then the socket is dropped.
    /// Later writes are ignored and `read_request` returns `None`.
    pub fn close(&mut self) {
        self.finish(CloseMode::Fin);
    }

    /// Abortive close: SO_LINGER 0, then drop, so the peer gets RST.
    pub fn reset(&mut self) {
        self.finish(CloseMode::Reset);
    }

    fn finish(&mut self, mode: CloseMode) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        // Drop the server's clone first so closing our descriptor really
        // closes (or resets) the socket.
        let clone = self.shared.lock().live.remove(&self.index);
        drop(clone);
        match mode {
            CloseMode::Reset => {
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            }
            CloseMode::Fin | CloseMode::Graceful => {
                if matches!(mode, CloseMode::Fin) {
                    let _ = stream.shutdown(Shutdown::Write);
                }
                // Unread bytes at close() make the kernel send RST instead
                // of FIN: discard whatever is already readable.
                drain_nonblocking(&stream);
            }
        }
        drop(stream);
        self.shared.lock().closed += 1;
        self.shared.cond.notify_all();
    }

    // -- reading ----------------------------------------------------------

    /// Reads more bytes into the buffer. `Ok(0)` is EOF.
    fn fill(&mut self) -> Result<usize, String> {
        let Some(s) = &mut self.stream else {
            return Err("connection closed locally".into());
        };
        let mut tmp = [0u8; 8192];
        loop {
            match s.read(&mut tmp) {
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => return Err(format!("read timeout: {e}")),
                Err(e) => return Err(format!("read error: {e}")),
            }
        }
    }

    /// Ensures at least `n` bytes are buffered.
    fn fill_to(&mut self, n: usize) -> Result<(), String> {
        while self.buf.len() < n {
            if self.fill()? == 0 {
                return Err("unexpected eof in body".into());
            }
        }
        Ok(())
    }

    /// Takes one line (through `\n`) off the buffer, at most `limit` bytes.
    fn take_line(&mut self, limit: usize) -> Result<Vec<u8>, String> {
        let mut searched = 0;
        loop {
            if let Some(p) = self.buf[searched..].iter().position(|&b| b == b'\n') {
                let end = searched + p + 1;
                return Ok(self.buf.drain(..end).collect());
            }
            searched = self.buf.len();
            if searched > limit {
                return Err("line too long".into());
            }
            if self.fill()? == 0 {
                return Err("unexpected eof in chunked body".into());
            }
        }
    }

    fn read_request_inner(&mut self) -> Result<Request, String> {
        // Head: up to CRLFCRLF (bare LFLF tolerated).
        let mut searched = 0;
        let head_end = loop {
            if let Some(end) = find_head_end(&self.buf, searched) {
                break end;
            }
            searched = self.buf.len().saturating_sub(3);
            if self.buf.len() > MAX_HEAD {
                return Err("request head too large".into());
            }
            if self.fill()? == 0 {
                return Err(if self.buf.is_empty() { "eof".into() } else { "unexpected eof in request head".into() });
            }
        };
        let raw_head: Vec<u8> = self.buf.drain(..head_end).collect();
        let (method, target, version, headers) = parse_head(&raw_head)?;

        let mut req = Request {
            method,
            target,
            version,
            headers,
            body: Vec::new(),
            raw_head,
            raw_body: Vec::new(),
            chunked: false,
            trailers: Vec::new(),
            conn_index: self.index,
        };

        let chunked = req
            .header_all("transfer-encoding")
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|t| !t.is_empty())
            .is_some_and(|t| t.eq_ignore_ascii_case("chunked"));
        if chunked {
            req.chunked = true;
            self.read_chunked(&mut req)?;
        } else if let Some(cl) = req.header("content-length") {
            let len: usize = cl.trim().parse().map_err(|_| format!("bad content-length {cl:?}"))?;
            self.fill_to(len)?;
            req.body = self.buf.drain(..len).collect();
            req.raw_body = req.body.clone();
        }
        Ok(req)
    }

    fn read_chunked(&mut self, req: &mut Request) -> Result<(), String> {
        loop {
            let line = self.take_line(4096)?;
            req.raw_body.extend_from_slice(&line);
            let text = std::str::from_utf8(&line).map_err(|_| "non-utf8 chunk size line")?;
            let size_str = text.trim_end_matches(['\r', '\n']);
            let size_str = size_str.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_str, 16).map_err(|_| format!("bad chunk size line {text:?}"))?;
            if size == 0 {
                break;
            }
            self.fill_to(size + 2)?;
            let data: Vec<u8> = self.buf.drain(..size).collect();
            req.body.extend_from_slice(&data);
            req.raw_body.extend_from_slice(&data);
            let crlf: Vec<u8> = self.buf.drain(..2).collect();
            req.raw_body.extend_from_slice(&crlf);
            if crlf != b"\r\n" {
                return Err(format!("chunk data not followed by CRLF: {crlf:?}"));
            }
        }
        // Trailer section, ended by an empty line.
        loop {
            let line = self.take_line(MAX_HEAD)?;
            req.raw_body.extend_from_slice(&line);
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);
            if text.is_empty() {
                return Ok(());
            }
            let (n, v) = text.split_once(':').ok_or_else(|| format!("bad trailer line {text:?}"))?;
            req.trailers.push((n.to_string(), v.trim().to_string()));
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.finish(CloseMode::Graceful);
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

fn drain_nonblocking(stream: &TcpStream) {
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    let mut tmp = [0u8; 8192];
    let mut r: &TcpStream = stream;
    // Bounded: at most 1 MiB is discarded.
    for _ in 0..128 {
        match r.read(&mut tmp) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
}

/// End of the head (index just past the empty line), searching from `from`.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

type Head = (String, String, u8, Vec<(String, String)>);

fn parse_head(raw: &[u8]) -> Result<Head, String> {
    let text = std::str::from_utf8(raw).map_err(|_| "request head is not utf-8".to_string())?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("bad request line {request_line:?}"));
    };
    let version = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        other => return Err(format!("unsupported version {other:?}")),
    };
    if method.is_empty() || target.is_empty() {
        return Err(format!("bad request line {request_line:?}"));
    }
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let (name, value) = line.split_once(':').ok_or_else(|| format!("bad header line {line:?}"))?;
        if name.is_empty() || name.bytes().any(|b| b == b' ' || b == b'\t') {
            return Err(format!("bad header name in {line:?}"));
        }
        headers.push((name.to_string(), value.trim_matches([' ', '\t']).to_string()));
    }
    Ok((method.to_string(), target.to_string(), version, headers))
}

/// Bytes of a response as written by [`Conn::respond`].
pub fn response_bytes(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", status, reason(status)).into_bytes();
    let mut framed = false;
    for (n, v) in headers {
        if n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding") {
            framed = true;
        }
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    let bodiless = (100..200).contains(&status) || status == 204 || status == 304;
    if !framed && !bodiless {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A server answering every request with `200` and `body` (Content-Length
/// framing) on keep-alive connections, until the client closes. A request
/// asking for `Connection: close` (or HTTP/1.0 without keep-alive) gets
/// `Connection: close` and the connection is closed after the response.
pub fn echo_ok_server(body: &'static [u8]) -> Server {
    Server::start(move |conn| {
        while let Some(req) = conn.read_request() {
            if req.wants_close() {
                conn.respond(200, &[("Connection", "close")], body);
                conn.close();
                return;
            }
            conn.respond(200, &[], body);
        }
    })
}

/// Runs `f` on a separate thread; panics if it does not finish within `d`.
/// A panic inside `f` is propagated with its original payload.
pub fn with_deadline<T: Send + 'static>(d: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = thread::Builder::new()
        .name("with_deadline".into())
        .spawn(move || {
            let out = f();
            let _ = tx.send(());
            out
        })
        .expect("with_deadline: spawn thread");
    match rx.recv_timeout(d) {
        Ok(()) => match handle.join() {
            Ok(v) => v,
            Err(p) => panic::resume_unwind(p),
        },
        // The sender was dropped without sending: `f` panicked.
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Ok(v) => v,
            Err(p) => panic::resume_unwind(p),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("with_deadline: operation did not finish within {d:?} (hang?)")
        }
    }
}

/// Path of a built example binary. Runs `cargo build --example NAME` (once
/// per name per process, with the profile of the running test binary) and
/// returns `<target>/<profile>/examples/NAME`.
pub fn example_bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(HashSet::new()));
    // Held during the build: concurrent tests wait instead of racing cargo.
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());

    // The test binary lives in <target>/<profile>/deps/.
    let exe = std::env::current_exe().expect("example_bin: current_exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("example_bin: test binary has no <profile>/deps parent")
        .to_path_buf();
    let bin = profile_dir.join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX));

    if !built.contains(name) {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args(["build", "--quiet", "--example", name]);
        if let Some(target_dir) = profile_dir.parent() {
            cmd.arg("--target-dir").arg(target_dir);
        }
        match profile_dir.file_name().and_then(|s| s.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(other) => {
                cmd.args(["--profile", other]);
            }
        }
        let out = cmd.output().unwrap_or_else(|e| panic!("example_bin: could not run cargo: {e}"));
        assert!(
            out.status.success(),
            "example_bin: `cargo build --example {name}` failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(bin.exists(), "example_bin: built example not found at {}", bin.display());
        built.insert(name.to_string());
    }
    bin
}

/// Number of open file descriptors of this process.
pub fn open_fds() -> usize {
    let dir = if std::path::Path::new("/proc/self/fd").exists() { "/proc/self/fd" } else { "/dev/fd" };
    let n = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("open_fds: cannot read {dir}: {e}")).count();
    // Minus the descriptor read_dir itself holds open.
    n.saturating_sub(1)
}
