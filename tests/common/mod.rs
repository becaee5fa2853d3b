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
//! * The harness tells the client's close from its own: a read that returns
//!   0 (FIN) or fails with `ECONNRESET` (RST) is recorded as the *peer's*
//!   close ([`Server::peer_closed`], [`Server::wait_peer_closed`]); a
//!   connection the harness ends only because a read timed out is counted
//!   apart ([`Server::timed_out`]) and never as closed, so a leaked socket
//!   cannot pass a close check by waiting for the harness timeout.
//! * Descriptor counts ([`open_fds`]) are process-wide: every test that
//!   compares them holds [`fd_lock`], and every other test in the same
//!   binary must hold it too (or count only its own sockets with
//!   [`sockets_connected_to`]).
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
/// Bound used by the `wait_*` helpers of [`Server`] that wait for
/// connections or requests.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound of [`Server::wait_closed`] and [`Server::wait_peer_closed`]: far
/// below [`DEFAULT_READ_TIMEOUT`], and a close on loopback is seen in
/// microseconds. (A harness read timeout never counts as a close anyway.)
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
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
    /// Connections closed by the handler (`Conn::close`, `Conn::reset`, the
    /// handler returning) or after the peer closed; not those ended by a
    /// read timeout.
    closed: usize,
    /// Connections on which the peer's FIN or RST was observed.
    peer_closed: usize,
    /// Connections the harness closed only because a read (or a
    /// `wait_peer_close`) timed out: the peer never closed.
    timed_out: usize,
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

    /// Connections closed so far: by the handler (`Conn::close`,
    /// `Conn::reset`, or the handler returning) or after the peer closed.
    /// A connection the harness ended only because a read timed out is not
    /// counted (see [`Server::timed_out`]).
    pub fn closed(&self) -> usize {
        self.shared.lock().closed
    }

    /// Connections on which the peer's (the client's) FIN or RST was
    /// observed: a read returned 0 or failed with `ECONNRESET`, or a write
    /// failed with `EPIPE` / `ECONNRESET`. Only a handler that is reading
    /// (`read_request`, `wait_peer_close`) can observe it.
    pub fn peer_closed(&self) -> usize {
        self.shared.lock().peer_closed
    }

    /// Connections the harness closed only because a read (or
    /// `wait_peer_close`) timed out and the handler then returned: the peer
    /// never closed them.
    pub fn timed_out(&self) -> usize {
        self.shared.lock().timed_out
    }

    /// Blocks until at least `n` connections have been closed (see
    /// [`Server::closed`]; a harness read timeout does not count). Panics
    /// after [`CLOSE_TIMEOUT`], naming how many ended by a read timeout.
    pub fn wait_closed(&self, n: usize) {
        self.wait_closed_within(n, CLOSE_TIMEOUT);
    }

    /// As [`Server::wait_closed`], with an explicit bound.
    pub fn wait_closed_within(&self, n: usize, timeout: Duration) {
        if let CloseWait::TimedOut(counts) = self.closes_within(n, timeout) {
            panic!("test server: timed out after {timeout:?} waiting for {n} closed connection(s); {counts}");
        }
    }

    /// Waits (at most `timeout`) until at least `n` connections are
    /// closed (see [`Server::closed`]); never panics.
    pub fn closes_within(&self, n: usize, timeout: Duration) -> CloseWait {
        self.wait_close(timeout, |st| st.closed >= n)
    }

    /// Blocks until the peer's FIN or RST has been observed on at least `n`
    /// connections (see [`Server::peer_closed`]). Panics after
    /// [`CLOSE_TIMEOUT`]: the client did not close. This is the check for
    /// "the client closes its socket"; a close by the handler or the
    /// harness never satisfies it.
    pub fn wait_peer_closed(&self, n: usize) {
        if let CloseWait::TimedOut(counts) = self.peer_closes_within(n, CLOSE_TIMEOUT) {
            panic!(
                "test server: the client did not close: timed out after {CLOSE_TIMEOUT:?} waiting for the \
                 peer's FIN/RST on {n} connection(s); {counts}"
            );
        }
    }

    /// Waits (at most `timeout`) until the peer's FIN or RST has been
    /// observed on at least `n` connections; never panics.
    pub fn peer_closes_within(&self, n: usize, timeout: Duration) -> CloseWait {
        self.wait_close(timeout, |st| st.peer_closed >= n)
    }

    fn wait_close(&self, timeout: Duration, pred: impl Fn(&State) -> bool) -> CloseWait {
        if self.shared.wait_until(timeout, pred) {
            return CloseWait::Closed;
        }
        let st = self.shared.lock();
        CloseWait::TimedOut(CloseCounts {
            accepted: st.per_conn.len(),
            requests: st.requests,
            peer_closed: st.peer_closed,
            closed: st.closed,
            timed_out: st.timed_out,
        })
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

/// Outcome of a bounded wait for closed connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseWait {
    /// The awaited closes were observed within the bound.
    Closed,
    /// The bound passed first; the counts at that moment.
    TimedOut(CloseCounts),
}

/// The server's connection counts, as reported by a [`CloseWait`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseCounts {
    pub accepted: usize,
    pub requests: usize,
    /// Connections on which the peer's FIN or RST was observed.
    pub peer_closed: usize,
    /// Connections closed by the handler or after the peer closed.
    pub closed: usize,
    /// Connections ended only by a harness read timeout.
    pub timed_out: usize,
}

impl std::fmt::Display for CloseCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "accepted = {}, requests = {}, peer FIN/RST seen on {}, closed = {}, \
             ended by a harness read timeout (the peer never closed) = {}",
            self.accepted, self.requests, self.peer_closed, self.closed, self.timed_out
        )
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
            peer_close: None,
            read_timed_out: false,
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
    /// How the peer closed, once a read (or write) has shown it.
    peer_close: Option<PeerClose>,
    /// The last read timed out and nothing arrived since: if the handler
    /// now returns, the harness (not the peer) ends the connection.
    read_timed_out: bool,
}

/// How the peer closed a connection, as the harness observed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerClose {
    /// A read returned 0: the peer sent FIN.
    Fin,
    /// A read failed with `ECONNRESET` (or a write with `EPIPE` /
    /// `ECONNRESET`): the peer reset, or is gone.
    Reset,
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

    /// How the peer closed, if a read or write has shown it yet.
    pub fn peer_close(&self) -> Option<PeerClose> {
        self.peer_close
    }

    /// Records the peer's close (once per connection; not while the server
    /// is being dropped, whose own shutdown also makes reads return 0).
    fn note_peer_close(&mut self, how: PeerClose) {
        self.read_timed_out = false;
        if self.peer_close.is_some() || self.server_stopping() {
            return;
        }
        self.peer_close = Some(how);
        self.shared.lock().peer_closed += 1;
        self.shared.cond.notify_all();
    }

    /// Classifies a read error: a reset is the peer's close, a timeout is
    /// remembered. Returns whether it was a timeout.
    fn note_read_error(&mut self, e: &io::Error) -> bool {
        if is_timeout(e) {
            self.read_timed_out = true;
            true
        } else {
            if is_peer_gone(e) {
                self.note_peer_close(PeerClose::Reset);
            }
            false
        }
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
        let Some(s) = &mut self.stream else { return };
        if let Err(e) = s.write_all(bytes).and_then(|()| s.flush())
            && is_peer_gone(&e)
        {
            self.note_peer_close(PeerClose::Reset);
        }
    }

    /// Writes one byte at a time, sleeping `per_byte` after each; stops
    /// quietly on the first error.
    pub fn write_slowly(&mut self, bytes: &[u8], per_byte: Duration) {
        let Some(s) = &mut self.stream else { return };
        for b in bytes {
            if let Err(e) = s.write_all(std::slice::from_ref(b)).and_then(|()| s.flush()) {
                if is_peer_gone(&e) {
                    self.note_peer_close(PeerClose::Reset);
                }
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

    /// Waits until the peer closes (a read returns 0, or fails with
    /// `ECONNRESET`), at most `timeout`. Bytes received meanwhile are kept
    /// in the read buffer. Returns `true` only if the peer's close was
    /// observed (now or earlier); `false` if the time ran out, this side is
    /// already closed without having seen it, or the server is being
    /// dropped (its shutdown is not the peer's close).
    pub fn wait_peer_close(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        if self.peer_close.is_some() {
            return true;
        }
        let Some(s) = &mut self.stream else {
            return false;
        };
        let mut tmp = [0u8; 8192];
        let outcome = loop {
            let now = Instant::now();
            if now >= deadline {
                break Err(io::Error::from(io::ErrorKind::TimedOut));
            }
            let _ = s.set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))));
            match s.read(&mut tmp) {
                Ok(0) => break Ok(()),
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if is_timeout(&e) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            }
        };
        let _ = s.set_read_timeout(self.read_timeout);
        match outcome {
            Ok(()) => self.note_peer_close(PeerClose::Fin),
            Err(e) => {
                self.note_read_error(&e);
            }
        }
        self.peer_close.is_some()
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
                match drain_nonblocking(&stream) {
                    Some(PeerClose::Fin) if matches!(mode, CloseMode::Graceful) => {
                        self.note_peer_close(PeerClose::Fin);
                    }
                    Some(PeerClose::Reset) => self.note_peer_close(PeerClose::Reset),
                    _ => {}
                }
            }
        }
        drop(stream);
        // A handler that returns after a read timed out leaves the close to
        // the harness: that is not a close anybody asked for.
        let by_timeout = matches!(mode, CloseMode::Graceful) && self.read_timed_out && self.peer_close.is_none();
        let mut st = self.shared.lock();
        if by_timeout && !self.server_stopping() {
            st.timed_out += 1;
        } else {
            st.closed += 1;
        }
        drop(st);
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
                Ok(0) => {
                    self.note_peer_close(PeerClose::Fin);
                    return Ok(0);
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    self.read_timed_out = false;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let what = if self.note_read_error(&e) { "read timeout" } else { "read error" };
                    return Err(format!("{what}: {e}"));
                }
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

/// Whether an I/O error means the peer's socket is gone (RST received, or
/// writing after its close).
fn is_peer_gone(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe)
}

/// Discards readable bytes without blocking; returns the peer's close if
/// the reads showed one.
fn drain_nonblocking(stream: &TcpStream) -> Option<PeerClose> {
    if stream.set_nonblocking(true).is_err() {
        return None;
    }
    let mut tmp = [0u8; 8192];
    let mut r: &TcpStream = stream;
    // Bounded: at most 1 MiB is discarded.
    for _ in 0..128 {
        match r.read(&mut tmp) {
            Ok(0) => return Some(PeerClose::Fin),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if is_peer_gone(&e) => return Some(PeerClose::Reset),
            Err(_) => return None,
        }
    }
    None
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
///
/// Process-wide: tests running in parallel in the same binary open and
/// close descriptors too, so a test that compares two counts must hold
/// [`fd_lock`] from its baseline to its last count, and so must every other
/// test of its binary.
pub fn open_fds() -> usize {
    open_fd_list().len()
}

/// The open descriptors of this process, each as `"N -> target"` (the
/// target as `/proc/self/fd/N` names it, e.g. `socket:[123]` or
/// `anon_inode:[eventpoll]`), sorted by number: for leak messages.
pub fn open_fd_list() -> Vec<String> {
    let dir = if std::path::Path::new("/proc/self/fd").exists() { "/proc/self/fd" } else { "/dev/fd" };
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("open_fds: cannot read {dir}: {e}"));
    let mut fds: Vec<(u64, String)> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let n: u64 = entry.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(entry.path()).ok()?.display().to_string();
            // Skip the descriptor of this listing itself (`/proc/PID/fd`).
            let listing = target.starts_with("/proc/") && target.ends_with("/fd") || target == "/dev/fd";
            (!listing).then_some((n, target))
        })
        .collect();
    fds.sort();
    fds.into_iter().map(|(n, t)| format!("{n} -> {t}")).collect()
}

/// Descriptors in `now` that are not in `baseline` (both from
/// [`open_fd_list`]), and those that went away.
pub fn fd_diff(baseline: &[String], now: &[String]) -> String {
    let new: Vec<_> = now.iter().filter(|fd| !baseline.contains(fd)).collect();
    let gone: Vec<_> = baseline.iter().filter(|fd| !now.contains(fd)).collect();
    format!("new: {new:?}; gone: {gone:?}")
}

/// The process-wide lock of descriptor counts. A test that compares
/// [`open_fds`] counts holds it from the baseline to the last count, and so
/// does every other test in the same binary that opens descriptors, so no
/// two of them count each other's sockets. Poisoning is ignored (a failed
/// test must not fail the others).
pub fn fd_lock() -> MutexGuard<'static, ()> {
    static FD_LOCK: Mutex<()> = Mutex::new(());
    FD_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Polls [`open_fd_list`] (every 20 ms, at most `within`) until it has as
/// many entries as `baseline`; returns the last list. Descriptors are
/// closed by threads that may still be finishing (server handlers, the
/// reactor), so an exact comparison needs a short, bounded wait.
pub fn settle_fds(baseline: &[String], within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let now = open_fd_list();
        if now.len() == baseline.len() || Instant::now() >= deadline {
            return now;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// TCP sockets of this process whose remote end is `peer` (for example
/// the client's connections to a test [`Server`]): counts only this test's
/// sockets, whatever other tests run in parallel. Linux only (it reads
/// `/proc/self/fd` and `/proc/net/tcp{,6}`); a socket in `TIME_WAIT` has no
/// descriptor and is not counted.
pub fn sockets_connected_to(peer: SocketAddr) -> usize {
    let mut inodes = HashSet::new();
    let entries = std::fs::read_dir("/proc/self/fd")
        .unwrap_or_else(|e| panic!("sockets_connected_to: cannot read /proc/self/fd: {e}"));
    for entry in entries.flatten() {
        if let Ok(target) = std::fs::read_link(entry.path())
            && let Some(inode) = target.to_str().and_then(|t| t.strip_prefix("socket:[")?.strip_suffix(']'))
        {
            inodes.insert(inode.to_string());
        }
    }
    let mut count = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(remote), Some(inode)) = (fields.get(2), fields.get(9)) else { continue };
            if inodes.contains(*inode) && parse_proc_addr(remote) == Some(peer) {
                count += 1;
            }
        }
    }
    count
}

/// Parses an address of `/proc/net/tcp{,6}`: hex IP (32-bit words in host
/// byte order) `:` hex port.
fn parse_proc_addr(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> =
        (0..ip.len() / 8).map(|i| u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()).collect::<Option<_>>()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let ip = match bytes.len() {
        4 => std::net::IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => {
            let v6 = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?);
            // An IPv4 peer of a dual-stack socket.
            v6.to_ipv4_mapped().map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}
