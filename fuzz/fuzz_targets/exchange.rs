//! Whole client exchanges against an in-memory server whose bytes, read
//! sizes, delays, and EOF or reset points come from the input; several
//! requests share pooled connections; bodies and send futures are dropped
//! at random points.
//!
//! Input layout: `[ctrl_len, ctrl.., segment ("\n~~\n" segment)*]`. Each
//! segment is one response the server sends (raw bytes, or the body of a
//! response built from control bytes); control bytes (zero when exhausted)
//! pick the client configuration, how each response is delivered and what
//! is done with each request. With no control bytes, every segment is sent
//! raw in answer to a GET whose body is read to its end.
//!
//! The server answers a request only once it has been written and flushed
//! in full, with the next segment. Delays are Pending returns whose waker is
//! woken on the next turn of the manual poll loop; a server with nothing
//! more to send for a stalled read eventually closes that connection, like
//! an idle timeout. No real time passes.
//!
//! Invariants:
//! * no panic, and no hang: a bounded number of polls, and a future that
//!   returns Pending must be woken by something that can still happen;
//! * a connection carries a new request only at a response boundary: every
//!   byte the server sent has been read, the response was one the client
//!   may reuse (persistent, self-delimited, no junk after it, not closed),
//!   and its body was read to its end by the caller;
//! * the pool's idle count grows only when a response completes; `leased`
//!   counts exactly the responses still holding a connection; `idle` never
//!   exceeds the limit; with everything dropped, `leased` is 0;
//! * a well-formed response yields its status and exactly its body; a body
//!   truncated inside its framing is an error, never a short success.

#![no_main]

mod common;

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use common::{Driver, Sizes};
use futures_io::{AsyncRead, AsyncWrite};
use http::{Method, StatusCode};
use libfuzzer_sys::fuzz_target;
use smolreq::{Client, PoolStats, Response};

const SEPARATOR: &[u8] = b"\n~~\n";

/// Bytes after a response that look like another response: parsing them
/// as the next response would be a desync.
const JUNK: &[u8] = b"HTTP/1.1 299 Desync\r\nContent-Length: 0\r\n\r\n";

fuzz_target!(|data: &[u8]| run(data));

/// Control bytes, read in order; zero once exhausted.
struct Ctrl<'a>(&'a [u8]);

impl Ctrl<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// The connection stays open after the segment.
    Keep,
    /// The server closes the connection after the segment.
    Eof,
    /// The connection is reset after the segment.
    Reset,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyFraming {
    Length,
    Chunked,
    Close,
    /// Both Content-Length and chunked: chunked wins, no reuse.
    Both,
}

/// A response built from control bytes, with a known meaning.
#[derive(Clone, Debug)]
struct Built {
    interim: usize,
    http10: bool,
    status: StatusCode,
    framing: BodyFraming,
    chunk: usize,
    body: Vec<u8>,
    close: bool,
    keep_alive: bool,
    junk: bool,
    /// Cut the response after this many bytes (then EOF or reset).
    truncate: Option<u8>,
}

#[derive(Clone, Debug)]
enum Content {
    Raw(Vec<u8>),
    Built(Built),
}

/// One response of the server and how it is delivered.
#[derive(Clone, Debug)]
struct Plan {
    content: Content,
    /// Read sizes.
    sizes: Vec<u8>,
    /// Offsets (per mille of the segment) where a read returns Pending once.
    pendings: Vec<u16>,
    end: End,
}

impl Plan {
    fn new(ctrl: &mut Ctrl<'_>, segment: &[u8]) -> Plan {
        let (b0, b1, b2, b3) = (ctrl.byte(), ctrl.byte(), ctrl.byte(), ctrl.byte());
        let end = match (b0 >> 1) & 3 {
            1 => End::Eof,
            2 => End::Reset,
            _ => End::Keep,
        };
        let pendings = (0..(b0 >> 3) & 7).map(|_| u16::from(ctrl.byte()) * 4).collect();
        let sizes = if b3 == 0 { Vec::new() } else { vec![b3, b3.rotate_left(3)] };
        let content = if b0 & 1 == 0 {
            Content::Raw(segment.to_vec())
        } else {
            const STATUSES: [u16; 12] = [200, 200, 201, 204, 304, 404, 500, 301, 302, 307, 308, 203];
            let framing = match b2 & 3 {
                0 => BodyFraming::Length,
                1 => BodyFraming::Chunked,
                2 => BodyFraming::Close,
                _ => BodyFraming::Both,
            };
            let http10 = b1 & 0x10 != 0;
            let framing = match framing {
                BodyFraming::Chunked | BodyFraming::Both if http10 => BodyFraming::Length,
                f => f,
            };
            let truncate = (b0 & 0x80 != 0).then(|| ctrl.byte());
            Content::Built(Built {
                interim: usize::from((b2 >> 2) & 3) % 3,
                http10,
                status: StatusCode::from_u16(STATUSES[usize::from(b1 & 15) % STATUSES.len()]).unwrap(),
                framing,
                chunk: usize::from(b2 >> 4) + 1,
                body: segment.to_vec(),
                close: b1 & 0x20 != 0,
                keep_alive: b1 & 0x40 != 0,
                junk: b1 & 0x80 != 0,
                truncate,
            })
        };
        Plan { content, sizes, pendings, end }
    }
}

impl Built {
    fn no_body(&self, method: &Method) -> bool {
        *method == Method::HEAD || self.status == StatusCode::NO_CONTENT || self.status == StatusCode::NOT_MODIFIED
    }

    /// The response bytes for a request with `method`.
    /// Also returns where the final head ends.
    fn encode(&self, method: &Method) -> (Vec<u8>, usize) {
        let mut out = Vec::new();
        for _ in 0..self.interim {
            out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let version = if self.http10 { "HTTP/1.0" } else { "HTTP/1.1" };
        out.extend_from_slice(format!("{version} {} Fuzz\r\n", self.status.as_u16()).as_bytes());
        if self.status.is_redirection() {
            out.extend_from_slice(b"Location: /redirected\r\n");
        }
        if self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if self.keep_alive {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        let len = self.body.len();
        match self.framing {
            BodyFraming::Length => out.extend_from_slice(format!("Content-Length: {len}\r\n").as_bytes()),
            BodyFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            BodyFraming::Both => {
                out.extend_from_slice(format!("Content-Length: {len}\r\nTransfer-Encoding: chunked\r\n").as_bytes())
            }
            BodyFraming::Close => {}
        }
        out.extend_from_slice(b"\r\n");
        let head_end = out.len();
        if !self.no_body(method) {
            match self.framing {
                BodyFraming::Length | BodyFraming::Close => out.extend_from_slice(&self.body),
                BodyFraming::Chunked | BodyFraming::Both => {
                    for chunk in self.body.chunks(self.chunk) {
                        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                        out.extend_from_slice(chunk);
                        out.extend_from_slice(b"\r\n");
                    }
                    out.extend_from_slice(b"0\r\n\r\n");
                }
            }
        }
        (out, head_end)
    }

    /// Whether the client may reuse the connection after this response,
    /// read to its end, to a request with `method`.
    fn reusable(&self, method: &Method, request_close: bool) -> bool {
        let persistent = if self.http10 { self.keep_alive && !self.close } else { !self.close };
        let self_delimited = self.no_body(method) || matches!(self.framing, BodyFraming::Length | BodyFraming::Chunked);
        persistent && !request_close && self_delimited
    }
}

/// What the server served on a connection, for the boundary check.
#[derive(Debug)]
struct Served {
    plan: usize,
    /// Whether the connection may carry another request afterwards.
    reuse_ok: bool,
    raw: bool,
}

/// One connection, server side.
#[derive(Debug, Default)]
struct Conn {
    /// Bytes sent by the server so far (all responses); `pos` of them read.
    sent: Vec<u8>,
    pos: usize,
    /// Absolute offsets in `sent` where the next read returns Pending once.
    pendings: VecDeque<usize>,
    sizes: Option<Sizes>,
    end: Option<End>,
    /// The request being written.
    written: Vec<u8>,
    last: Option<Served>,
    /// A read is waiting for bytes the server has not sent.
    stalled: Option<Waker>,
    /// The last read hit a Pending point at this offset (a reuse probe may
    /// have seen nothing there: bytes in flight are a legitimate race).
    pending_hit: Option<usize>,
    /// Writes accepted so far, for the write stalls.
    writes: usize,
    dropped: bool,
}

#[derive(Debug)]
struct Server {
    plans: Vec<Plan>,
    next_plan: usize,
    conns: Vec<Conn>,
    /// Wakers to wake on the next turn: the end of a delay.
    delayed: Vec<Waker>,
    /// Bit i set: the i-th connect attempt fails.
    connect_failures: u8,
    connects: usize,
    /// Most bytes accepted by one write (0: all).
    write_chunk: usize,
    /// Every n-th write (n >= 2) returns Pending first (0: never).
    write_stall: usize,
    /// (request method, Connection: close) of each request in flight, by
    /// connection, and the connection whose request was answered last.
    last_answered: Option<(usize, usize)>,
    /// Connections whose response the caller abandoned before its end.
    abandoned: Vec<usize>,
    /// Plans whose bytes were cut after the head, inside a self-delimited
    /// body: reading that body must fail.
    cut_in_body: Vec<usize>,
    /// Scratch: where the final head of the response being built ends.
    head_end: usize,
}

type Shared = Arc<Mutex<Server>>;

fn lock(server: &Shared) -> MutexGuard<'_, Server> {
    server.lock().unwrap_or_else(|e| e.into_inner())
}

impl Server {
    /// A complete request was flushed on connection `id`: check the
    /// boundary, then send the next response.
    fn on_request(&mut self, id: usize) {
        let conn = &mut self.conns[id];
        let (head_len, method, close, body_len) = parse_request(&conn.written);
        assert_eq!(conn.written.len(), head_len + body_len, "not exactly one request: {:?}", conn.written);
        conn.written.clear();
        if let Some(last) = &conn.last {
            assert!(!self.abandoned.contains(&id), "connection reused after its response was abandoned");
            let blocked = last.raw && conn.pending_hit == Some(conn.pos) && conn.pos < conn.sent.len();
            assert!(
                conn.pos == conn.sent.len() || blocked,
                "connection reused with {} unread bytes of plan {}",
                conn.sent.len() - conn.pos,
                last.plan
            );
            // A probe that met bytes still in flight could not know better.
            assert!(last.reuse_ok || blocked, "connection reused after plan {} which forbids it", last.plan);
            // Bytes in flight when the probe looked are lost, rather than
            // read as the start of the next response (a race no client can
            // win, so not checked).
            conn.sent.truncate(conn.pos);
            conn.pendings.clear();
        }
        if conn.end.is_some() {
            return; // closed: the client reads EOF or an error
        }
        let Some(plan) = self.plans.get(self.next_plan).cloned() else {
            conn.end = Some(End::Eof); // nothing more to say
            return;
        };
        let index = self.next_plan;
        self.next_plan += 1;
        self.last_answered = Some((index, id));
        let (mut bytes, reuse_ok, raw) = match &plan.content {
            Content::Raw(bytes) => (bytes.clone(), plan.end == End::Keep, true),
            Content::Built(built) => {
                let (mut bytes, head_end) = built.encode(&method);
                self.head_end = head_end;
                let reuse_ok = built.reusable(&method, close) && !built.junk && plan.end == End::Keep;
                if built.junk {
                    bytes.extend_from_slice(JUNK);
                }
                (bytes, reuse_ok && built.truncate.is_none(), false)
            }
        };
        let mut end = plan.end;
        let mut body_end = bytes.len();
        if let Content::Built(built) = &plan.content {
            if built.junk {
                body_end -= JUNK.len();
            }
            if let Some(t) = built.truncate {
                let t = usize::from(t) % body_end.max(1);
                bytes.truncate(t);
                let self_delimited =
                    matches!(built.framing, BodyFraming::Length | BodyFraming::Chunked | BodyFraming::Both);
                if t >= self.head_end && self_delimited && !built.no_body(&method) {
                    self.cut_in_body.push(index);
                }
                body_end = t;
                if end == End::Keep {
                    end = End::Eof;
                }
            }
        }
        let start = conn.sent.len();
        for &p in &plan.pendings {
            let span = if raw { bytes.len() } else { body_end };
            let offset = usize::from(p) * span / 1024;
            if offset < span || (raw && offset <= span) {
                conn.pendings.push_back(start + offset);
            }
        }
        conn.pendings.make_contiguous().sort_unstable();
        conn.sent.extend_from_slice(&bytes);
        conn.sizes = Some(if plan.sizes.is_empty() { Sizes::whole() } else { Sizes::from_bytes(&plan.sizes) });
        if end != End::Keep {
            conn.end = Some(end);
        }
        if std::env::var_os("EXCHANGE_DEBUG").is_some() {
            eprintln!(
                "conn {id} plan {index} for {method} close={close}: reuse_ok={reuse_ok} end={end:?} {:?}\n  {:?}",
                plan.content,
                String::from_utf8_lossy(&bytes)
            );
        }
        conn.last = Some(Served { plan: index, reuse_ok, raw });
        if let Some(waker) = conn.stalled.take() {
            waker.wake();
        }
    }

    /// Closes every connection a read is stalled on; returns whether any was.
    fn close_stalled(&mut self) -> bool {
        let mut any = false;
        for conn in &mut self.conns {
            if let Some(waker) = conn.stalled.take() {
                conn.end = Some(End::Eof);
                waker.wake();
                any = true;
            }
        }
        any
    }
}

/// Parses the written bytes as one request: (head length, method,
/// Connection: close, Content-Length).
fn parse_request(bytes: &[u8]) -> (usize, Method, bool, usize) {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        other => panic!("flushed an incomplete or invalid request ({other:?}): {bytes:?}"),
    };
    let method = Method::from_bytes(request.method.unwrap().as_bytes()).unwrap();
    let mut close = false;
    let mut body = 0;
    for h in request.headers.iter() {
        assert!(!h.name.eq_ignore_ascii_case("transfer-encoding"), "unexpected chunked request");
        if h.name.eq_ignore_ascii_case("connection") {
            close |= h.value.eq_ignore_ascii_case(b"close");
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            body = std::str::from_utf8(h.value).unwrap().parse().unwrap();
        }
    }
    (len, method, close, body)
}

/// The client side of one server connection.
struct MemStream {
    server: Shared,
    id: usize,
}

impl AsyncRead for MemStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut server = lock(&self.server);
        let conn = &mut server.conns[self.id];
        while conn.pendings.front().is_some_and(|&p| p < conn.pos) {
            conn.pendings.pop_front();
        }
        if conn.pendings.front() == Some(&conn.pos) {
            conn.pendings.pop_front();
            conn.pending_hit = Some(conn.pos);
            server.delayed.push(cx.waker().clone());
            return Poll::Pending;
        }
        if conn.pos == conn.sent.len() {
            return match conn.end {
                Some(End::Eof) => Poll::Ready(Ok(0)),
                Some(End::Reset) => Poll::Ready(Err(io::ErrorKind::ConnectionReset.into())),
                Some(End::Keep) | None => {
                    conn.stalled = Some(cx.waker().clone());
                    Poll::Pending
                }
            };
        }
        let limit = conn.pendings.front().map_or(conn.sent.len(), |&p| p.min(conn.sent.len()));
        let available = (limit - conn.pos).min(buf.len());
        let n = conn.sizes.as_mut().map_or(available, |s| s.take(available)).max(1).min(available);
        buf[..n].copy_from_slice(&conn.sent[conn.pos..conn.pos + n]);
        conn.pos += n;
        conn.pending_hit = None;
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for MemStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut server = lock(&self.server);
        let (chunk, stall) = (server.write_chunk, server.write_stall);
        let conn = &mut server.conns[self.id];
        if conn.end == Some(End::Reset) {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        conn.writes += 1;
        if stall > 0 && conn.writes.is_multiple_of(stall) {
            server.delayed.push(cx.waker().clone());
            return Poll::Pending;
        }
        let n = if chunk == 0 { buf.len() } else { buf.len().min(chunk) };
        conn.written.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut server = lock(&self.server);
        if server.conns[self.id].end == Some(End::Reset) {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        server.on_request(self.id);
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Drop for MemStream {
    fn drop(&mut self) {
        lock(&self.server).conns[self.id].dropped = true;
    }
}

/// What the caller does with one request.
#[derive(Clone, Copy, Debug)]
enum Action {
    ReadAll,
    /// Read this many bytes, then drop the response.
    ReadSome(usize),
    DropUnread,
    /// Keep the response and read it to its end after the next request.
    Defer,
}

#[derive(Debug)]
struct Request {
    method: Method,
    close: bool,
    body: usize,
    /// Drop the send future after this many polls.
    drop_send: Option<usize>,
    action: Action,
    read_size: usize,
}

impl Request {
    fn new(ctrl: &mut Ctrl<'_>, can_defer: bool) -> Request {
        let (r0, r1, r2) = (ctrl.byte(), ctrl.byte(), ctrl.byte());
        let method = match r0 & 7 {
            1 => Method::HEAD,
            2 => Method::POST,
            3 => Method::PUT,
            4 => Method::DELETE,
            _ => Method::GET,
        };
        let action = match (r0 >> 4) & 3 {
            1 => Action::ReadSome(usize::from(r1 & 63)),
            2 => Action::DropUnread,
            3 if can_defer => Action::Defer,
            _ => Action::ReadAll,
        };
        Request {
            body: if matches!(method, Method::POST | Method::PUT) { usize::from(r2) } else { 0 },
            method,
            close: r0 & 8 != 0,
            drop_send: (r0 & 0x40 != 0).then_some(usize::from(r1 >> 6)),
            action,
            read_size: match r2 >> 6 {
                0 => 4096,
                k => usize::from(k) * usize::from(r2 & 15) + 1,
            },
        }
    }
}

/// A response the caller still holds.
struct Live {
    response: Response,
    /// It held a pool slot when it was returned.
    holds: bool,
    plan: Option<usize>,
    method: Method,
    conn: Option<usize>,
}

/// The manual event loop: the driver plus the server's delays.
struct World {
    driver: Driver,
    server: Shared,
    client: Client,
    max_idle: usize,
    redirects: bool,
    /// Sum of `holds` over live responses.
    holding: usize,
}

impl World {
    fn stats(&self) -> PoolStats {
        let stats = self.client.pool_stats();
        assert!(stats.idle <= self.max_idle, "{} idle connections, limit {}", stats.idle, self.max_idle);
        stats
    }

    /// After a Pending: lets time pass until something woke the task.
    fn turn(&mut self) {
        loop {
            if self.driver.flag.take() {
                return;
            }
            let delayed = std::mem::take(&mut lock(&self.server).delayed);
            if !delayed.is_empty() {
                delayed.into_iter().for_each(Waker::wake);
                continue;
            }
            if lock(&self.server).close_stalled() {
                continue;
            }
            panic!("Pending, and nothing left that could wake the task: a hang");
        }
    }

    /// Reads from a live response; `Ok(0)` at its end.
    fn read(&mut self, live: &mut Live, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let before = self.stats();
            let poll = self.driver.step(|cx| Pin::new(&mut live.response).poll_read(cx, buf));
            let after = self.stats();
            match poll {
                Poll::Ready(Ok(0)) => {
                    assert!(after.idle <= before.idle + 1);
                    self.end_of(live, true);
                    return Ok(0);
                }
                Poll::Ready(Ok(n)) => {
                    if after.leased < before.leased {
                        // These were the last bytes: the body ended with them.
                        assert!(after.idle <= before.idle + 1);
                        let mut probe = [0u8; 1];
                        let next = self.driver.step(|cx| Pin::new(&mut live.response).poll_read(cx, &mut probe));
                        assert!(matches!(next, Poll::Ready(Ok(0))), "the lease ended before the body: {next:?}");
                        self.end_of(live, true);
                    } else {
                        assert!(after.idle <= before.idle, "a connection went idle before its response ended");
                    }
                    return Ok(n);
                }
                Poll::Ready(Err(e)) => {
                    assert!(after.idle <= before.idle, "a connection went idle after an error");
                    self.end_of(live, false);
                    return Err(e);
                }
                Poll::Pending => {
                    assert!(after.idle <= before.idle, "a connection went idle while its body was pending");
                    self.turn();
                }
            }
        }
    }

    /// A live response ended (cleanly or not): its slot must be free now.
    fn end_of(&mut self, live: &mut Live, clean: bool) {
        if live.holds {
            live.holds = false;
            self.holding -= 1;
        }
        if !clean && let Some(conn) = live.conn {
            lock(&self.server).abandoned.push(conn);
        }
        assert_eq!(self.stats().leased, self.holding, "leased connections after a body ended");
    }

    fn read_to_end(&mut self, live: &mut Live, size: usize) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        let mut buf = vec![0u8; size.max(1)];
        loop {
            match self.read(live, &mut buf)? {
                0 => return Ok(body),
                n => body.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Drops a response that may not have been read to its end. Its
    /// connection is not marked abandoned: the drop may finish the body
    /// from bytes already there (the drain on drop) and pool it, which
    /// `Server::on_request` still checks (every byte read, reuse allowed).
    fn drop_live(&mut self, mut live: Live) {
        let holds = live.holds;
        live.holds = false;
        drop(live);
        if holds {
            self.holding -= 1;
        }
        assert_eq!(self.stats().leased, self.holding, "leased connections after a response was dropped");
    }

    /// Sends a request; `None` if the send future was dropped. With the
    /// result comes the plan that answered it, if one did.
    fn send(&mut self, i: usize, request: &Request) -> Option<(Result<Live, smolreq::Error>, Option<usize>)> {
        let client = self.client.clone();
        let mut builder = client.request(request.method.clone(), format!("http://fuzz.test/r{i}"));
        if request.close {
            builder = builder.header("connection", "close");
        }
        if request.body > 0 {
            builder = builder.body(vec![b'b'; request.body]);
        }
        let answered_before = lock(&self.server).last_answered;
        let mut fut = Box::pin(builder.send());
        let mut polls = 0;
        let result = loop {
            if request.drop_send == Some(polls) {
                break None;
            }
            polls += 1;
            let before = self.stats();
            let poll = self.driver.poll(fut.as_mut());
            let after = self.stats();
            assert!(after.leased <= self.holding + 1, "more connections leased than requests in flight");
            match poll {
                Poll::Ready(result) => {
                    assert!(after.idle <= before.idle + 1);
                    break Some(result);
                }
                Poll::Pending => {
                    if !self.redirects {
                        assert!(after.idle <= before.idle, "a connection went idle while a request was pending");
                    }
                    self.turn();
                }
            }
        };
        drop(fut);
        let answered = lock(&self.server).last_answered;
        let leased = self.stats().leased;
        match result {
            None => {
                assert_eq!(leased, self.holding, "a dropped send future kept its connection");
                None
            }
            Some(Err(e)) => {
                assert_eq!(leased, self.holding, "a failed send kept its connection");
                let plan = answered.filter(|_| answered != answered_before).map(|(p, _)| p);
                Some((Err(e), plan))
            }
            Some(Ok(response)) => {
                assert!(answered != answered_before, "a response without a request answered");
                let holds = leased == self.holding + 1;
                assert!(holds || leased == self.holding, "leased {leased}, expected {}", self.holding);
                self.holding += usize::from(holds);
                let (plan, conn) = answered.map_or((None, None), |(p, c)| (Some(p), Some(c)));
                Some((Ok(Live { response, holds, plan, method: request.method.clone(), conn }), plan))
            }
        }
    }

    /// What a well-formed built response must give, if the plan is one.
    fn expectation(&self, plan: Option<usize>, method: &Method) -> Option<(StatusCode, Option<Vec<u8>>)> {
        let server = lock(&self.server);
        let plan = &server.plans[plan?];
        let Content::Built(built) = &plan.content else { return None };
        if built.status.is_redirection() && self.redirects {
            return None;
        }
        let close_then_reset = built.framing == BodyFraming::Close && plan.end == End::Reset;
        if built.truncate.is_some() || (close_then_reset && !built.no_body(method)) {
            return Some((built.status, None));
        }
        let mut body = if built.no_body(method) { Vec::new() } else { built.body.clone() };
        if built.junk && built.framing == BodyFraming::Close && !built.no_body(method) {
            body.extend_from_slice(JUNK); // part of a body that ends at EOF
        }
        Some((built.status, Some(body)))
    }

    /// Whether the plan's body is cut inside its own framing: reading it
    /// must fail.
    fn truncated_in_body(&self, plan: Option<usize>) -> bool {
        plan.is_some_and(|p| lock(&self.server).cut_in_body.contains(&p))
    }
}

fn run(data: &[u8]) {
    let Some((&ctrl_len, rest)) = data.split_first() else { return };
    let (ctrl, rest) = rest.split_at(usize::from(ctrl_len).min(rest.len()));
    let mut segments = Vec::new();
    let mut rest = rest;
    while let Some(i) = rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        segments.push(&rest[..i]);
        rest = &rest[i + SEPARATOR.len()..];
    }
    segments.push(rest);
    segments.truncate(12);

    let mut ctrl = Ctrl(ctrl);
    let (c0, c1, c2, c3) = (ctrl.byte(), ctrl.byte(), ctrl.byte(), ctrl.byte());
    let max_idle = [2, 1, 0, 3][usize::from(c0 & 3)];
    let max_conns = usize::from((c0 >> 2) & 3) % 3 + 1;
    let redirects = c0 & 0x10 != 0;
    let small_limits = c0 & 0x20 != 0;
    let requests = if c3 == 0 { segments.len() } else { usize::from(c3 % 10) + 1 };
    let plans: Vec<Plan> = segments.iter().map(|s| Plan::new(&mut ctrl, s)).collect();
    let requests: Vec<Request> = (0..requests).map(|_| Request::new(&mut ctrl, max_conns > 1)).collect();

    let server = Arc::new(Mutex::new(Server {
        plans,
        next_plan: 0,
        conns: Vec::new(),
        delayed: Vec::new(),
        connect_failures: c2,
        connects: 0,
        write_chunk: usize::from(c1 & 15),
        write_stall: match (c1 >> 4) % 8 {
            0 | 1 => 0,
            k => usize::from(k),
        },
        last_answered: None,
        abandoned: Vec::new(),
        cut_in_body: Vec::new(),
        head_end: 0,
    }));
    let dial = server.clone();
    let mut builder = Client::builder()
        .max_idle_per_host(max_idle)
        .max_connections_per_host(max_conns)
        .redirect(redirects)
        .connector(move |_| {
            let mut state = lock(&dial);
            let attempt = state.connects;
            state.connects += 1;
            let result = if attempt < 8 && state.connect_failures & (1 << attempt) != 0 {
                Err(io::Error::from(io::ErrorKind::ConnectionRefused))
            } else {
                state.conns.push(Conn::default());
                Ok(MemStream { server: dial.clone(), id: state.conns.len() - 1 })
            };
            async move { result }
        });
    if small_limits {
        builder = builder.max_response_head_size(256).max_headers(8).max_chunk_line_size(8).max_trailer_size(32);
    }
    let client = builder.build().unwrap();
    if std::env::var_os("EXCHANGE_DEBUG").is_some() {
        eprintln!("max_idle {max_idle} max_conns {max_conns} redirects {redirects} small {small_limits}\n{requests:?}");
    }
    let budget = 2000 + 64 * data.len();
    let mut world = World { driver: Driver::new(budget), server, client, max_idle, redirects, holding: 0 };

    let mut deferred: Option<(Live, usize)> = None;
    for (i, request) in requests.iter().enumerate() {
        let sent = world.send(i, request);
        if let Some((mut live, size)) = deferred.take() {
            let result = world.read_to_end(&mut live, size);
            check_body(&world, &live, result);
        }
        let Some((result, plan)) = sent else { continue };
        let expected = world.expectation(plan, &request.method);
        let mut live = match result {
            Ok(live) => live,
            Err(e) => {
                if let Some((_, Some(_))) = expected {
                    panic!("a well-formed response failed: {e}");
                }
                continue;
            }
        };
        if let Some((status, _)) = &expected {
            assert_eq!(live.response.status(), *status, "status of plan {:?}", live.plan);
        }
        match request.action {
            Action::ReadAll => {
                let result = world.read_to_end(&mut live, request.read_size);
                check_body(&world, &live, result);
                world.drop_live(live);
            }
            Action::ReadSome(n) => {
                let mut buf = vec![0u8; request.read_size.max(1)];
                let mut read = 0;
                while read < n {
                    match world.read(&mut live, &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => read += k,
                    }
                }
                world.drop_live(live);
            }
            Action::DropUnread => world.drop_live(live),
            Action::Defer => deferred = Some((live, request.read_size)),
        }
    }
    if let Some((live, _)) = deferred.take() {
        world.drop_live(live);
    }
    let stats = world.stats();
    if std::env::var_os("EXCHANGE_DEBUG").is_some() {
        eprintln!("{stats:?} plans served {}", lock(&world.server).next_plan);
    }
    assert_eq!(stats.leased, 0, "connections still leased with everything dropped");
    assert_eq!(world.holding, 0);
}

/// A body read to its end: exactly the plan's body when it is well-formed,
/// an error when it was cut inside its framing.
fn check_body(world: &World, live: &Live, result: io::Result<Vec<u8>>) {
    if world.truncated_in_body(live.plan) {
        assert!(result.is_err(), "a truncated body read as a success: {result:?}");
    }
    if let Some((_, Some(body))) = world.expectation(live.plan, &live.method) {
        match result {
            Ok(got) => assert_eq!(got, body, "body of plan {:?}", live.plan),
            Err(e) => panic!("the body of a well-formed response failed: {e}"),
        }
    }
}
