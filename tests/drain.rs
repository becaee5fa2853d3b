//! A body dropped before its end keeps its connection when the rest has
//! already arrived (issue 11, section 5), `Response::discard`, and the
//! request deadline on every poll path of a body (section 4).
//!
//! Every test counts connections on the server side: how many the server
//! accepted, how many requests each carried, and whether the client closed
//! a connection (its FIN or RST seen by the server well within the
//! harness's 5 s read timeout, so a connection the client leaked open is
//! never mistaken for one it closed). Every test runs under
//! `common::with_deadline`, so a hang fails it.

mod common;

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::{Conn, Request, Server, response_bytes, with_deadline};
use futures_lite::AsyncReadExt;
use smolreq::{Client, ErrorKind};

/// Hard bound of every test.
const LIMIT: Duration = Duration::from_secs(10);
/// How long the server waits to see the client close a connection: well
/// below the harness's 5 s read timeout.
const CLOSE_SEEN_WITHIN: Duration = Duration::from_secs(2);

fn run<F: Future<Output = ()>>(f: impl FnOnce() -> F + Send + 'static) {
    with_deadline(LIMIT, move || smol::block_on(f()))
}

/// `n` bytes of a recognisable pattern.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// A chunked response: `body` in chunks of `chunk` bytes, then a trailer.
fn chunked_response(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for part in body.chunks(chunk) {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\nx-trailer: yes\r\n\r\n");
    out
}

/// A one-shot signal between the test and a server handler.
#[derive(Default)]
struct Flag {
    set: Mutex<bool>,
    cond: Condvar,
}

impl Flag {
    fn set(&self) {
        *self.set.lock().unwrap() = true;
        self.cond.notify_all();
    }

    /// Waits until set, at most `timeout`; returns whether it was set.
    fn wait(&self, timeout: Duration) -> bool {
        let guard = self.set.lock().unwrap();
        let (guard, _) = self.cond.wait_timeout_while(guard, timeout, |set| !*set).unwrap();
        *guard
    }
}

/// Connections the client closed, as the server saw them.
#[derive(Default)]
struct Closes {
    by_client: Mutex<Vec<usize>>,
    cond: Condvar,
}

impl Closes {
    fn record(&self, index: usize) {
        self.by_client.lock().unwrap().push(index);
        self.cond.notify_all();
    }

    /// Whether the client closed connection `index`, waiting at most
    /// [`CLOSE_SEEN_WITHIN`].
    fn wait(&self, index: usize) -> bool {
        let guard = self.by_client.lock().unwrap();
        let (guard, _) =
            self.cond.wait_timeout_while(guard, CLOSE_SEEN_WITHIN, |closed| !closed.contains(&index)).unwrap();
        guard.contains(&index)
    }

    /// Connections the client closed so far.
    fn now(&self) -> Vec<usize> {
        self.by_client.lock().unwrap().clone()
    }
}

/// A keep-alive server: `answer` writes the response to each request.
/// When a read of the next request ends with the client's FIN or RST (not
/// the harness's read timeout), the connection is recorded in `Closes`.
fn server(answer: impl Fn(&mut Conn, &Request) + Send + Sync + 'static) -> (Server, Arc<Closes>) {
    let closes = Arc::new(Closes::default());
    let seen = closes.clone();
    let server = Server::start(move |conn| {
        while let Some(req) = conn.read_request() {
            answer(conn, &req);
            if conn.is_closed() {
                return;
            }
        }
        let by_client = conn.last_error().is_some_and(|e| e == "eof" || e.starts_with("read error"));
        if by_client {
            seen.record(conn.index());
        }
    });
    (server, closes)
}

/// Requests `/next` and checks its answer (`"next"`).
async fn get_next(client: &Client, server: &Server) {
    let text = client.get(server.url("/next")).send().await.unwrap().text().await.unwrap();
    assert_eq!(text, "next");
}

/// Answers `/next` with `"next"`; any other request with `first`.
fn next_or(conn: &mut Conn, req: &Request, first: &[u8]) -> bool {
    if req.target == "/next" {
        conn.respond(200, &[], b"next");
        return true;
    }
    conn.write(first);
    false
}

/// The first connection was kept: the server saw one connection carry both
/// requests, and the client never closed it.
fn assert_reused(client: &Client, server: &Server, closes: &Closes) {
    assert_eq!(server.connections(), 1, "one connection on the server side");
    assert_eq!(server.requests_per_connection(), vec![2]);
    assert_eq!(closes.now(), Vec::<usize>::new(), "the client closed no connection");
    let s = client.pool_stats();
    assert_eq!((s.opened, s.reused, s.leased, s.discarded), (1, 1, 0, 0), "{s:?}");
}

/// The first connection was closed by the client, and the next request
/// came on a new one.
fn assert_closed(client: &Client, server: &Server, closes: &Closes) {
    assert!(closes.wait(0), "the server saw the client close the first connection");
    assert_eq!(server.connections(), 2, "two connections on the server side");
    assert_eq!(server.requests_per_connection(), vec![1, 1]);
    let s = client.pool_stats();
    assert_eq!((s.opened, s.reused, s.leased), (2, 0, 0), "{s:?}");
}

/// Reads exactly `n` bytes of the body and checks them against `body`.
async fn read_some(resp: &mut smolreq::Response, body: &[u8], n: usize) {
    let mut part = vec![0u8; n];
    resp.read_exact(&mut part).await.unwrap();
    assert_eq!(part, body[..n]);
}

// ---------------------------------------------------------------------------
// Drop
// ---------------------------------------------------------------------------

#[test]
fn response_dropped_unread_with_its_body_in_the_buffer_is_reused() {
    // Head and body in one write: the head read takes the whole body into
    // the connection's buffer.
    let body = pattern(1000);
    let wire = response_bytes(200, &[], &body);
    let (server, closes) = server(move |conn, req| {
        next_or(conn, req, &wire);
    });
    run(move || async move {
        let client = Client::new();
        let resp = client.get(server.url("/first")).send().await.unwrap();
        assert_eq!(client.pool_stats().leased, 1);
        drop(resp); // the whole response, unread
        let s = client.pool_stats();
        assert_eq!((s.leased, s.idle, s.discarded), (0, 1, 0), "released by the drop: {s:?}");
        get_next(&client, &server).await;
        assert_reused(&client, &server, &closes);
    });
}

#[test]
fn body_dropped_with_its_rest_in_the_socket_is_reused() {
    // The head comes alone; the test reads it, lets the server write the
    // rest (30 KiB: several reads of the drain), and drops the body only
    // once the rest is waiting in the socket, not in the client's buffer.
    let body = pattern(30 * 1024);
    let go = Arc::new(Flag::default());
    let written = Arc::new(Flag::default());
    let (server, closes) = {
        let (body, go, written) = (body.clone(), go.clone(), written.clone());
        server(move |conn, req| {
            if req.target == "/next" {
                conn.respond(200, &[], b"next");
                return;
            }
            conn.write(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
            assert!(go.wait(LIMIT), "the test never said go");
            conn.write(&body);
            written.set();
        })
    };
    run(move || async move {
        let client = Client::new();
        let mut resp = client.get(server.url("/first")).send().await.unwrap();
        go.set();
        assert!(written.wait(LIMIT), "the server never wrote the body");
        read_some(&mut resp, &body, 100).await;
        drop(resp);
        assert_eq!(client.pool_stats().idle, 1, "released by the drop");
        get_next(&client, &server).await;
        assert_reused(&client, &server, &closes);
    });
}

#[test]
fn chunked_body_dropped_with_its_rest_received_is_reused() {
    // 40 KiB in 1 KiB chunks and a trailer, all sent at once.
    let body = pattern(40 * 1024);
    let wire = chunked_response(&body, 1024);
    let (server, closes) = {
        let wire = wire.clone();
        server(move |conn, req| {
            next_or(conn, req, &wire);
        })
    };
    run(move || async move {
        let client = Client::new();
        let mut resp = client.get(server.url("/first")).send().await.unwrap();
        read_some(&mut resp, &body, 3000).await;
        drop(resp);
        assert_eq!(client.pool_stats().idle, 1, "released by the drop");
        get_next(&client, &server).await;
        assert_reused(&client, &server, &closes);
    });
}

#[test]
fn body_dropped_with_more_left_than_max_drain_on_drop_is_closed() {
    // The whole response is sent at once; what is left is over the bound.
    let body = pattern(100 * 1024);
    let length = response_bytes(200, &[], &body);
    let chunked = chunked_response(&body, 4096);
    for (name, wire) in [("length", length), ("chunked", chunked)] {
        let (server, closes) = server(move |conn, req| {
            next_or(conn, req, &wire);
        });
        let body = body.clone();
        run(move || async move {
            let client = Client::builder().max_drain_on_drop(16 * 1024).build().unwrap();
            let mut resp = client.get(server.url("/first")).send().await.unwrap();
            read_some(&mut resp, &body, 100).await;
            drop(resp);
            let s = client.pool_stats();
            assert_eq!((s.leased, s.idle, s.discarded), (0, 0, 1), "{name}: {s:?}");
            get_next(&client, &server).await;
            assert_closed(&client, &server, &closes);
        });
    }
}

#[test]
fn body_dropped_before_its_rest_was_sent_is_closed_at_once() {
    // The server sends the head and half the body, and sends the rest only
    // after it saw the client close: a drop that waited for the rest would
    // never end.
    let body = pattern(8 * 1024);
    let (server, closes) = {
        let body = body.clone();
        server(move |conn, req| {
            if req.target == "/next" {
                conn.respond(200, &[], b"next");
                return;
            }
            let mut wire = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
            wire.extend_from_slice(&body[..4096]);
            conn.write(&wire);
            // `server` records the close when the next read sees it.
            if !conn.wait_peer_close(CLOSE_SEEN_WITHIN) {
                conn.write(&body[4096..]);
            }
        })
    };
    run(move || async move {
        let client = Client::new();
        let mut resp = client.get(server.url("/first")).send().await.unwrap();
        read_some(&mut resp, &body, 100).await;
        drop(resp);
        let s = client.pool_stats();
        assert_eq!((s.leased, s.idle, s.discarded), (0, 0, 1), "{s:?}");
        assert!(closes.wait(0), "the server saw the close without sending the rest");
        get_next(&client, &server).await;
        assert_closed(&client, &server, &closes);
    });
}

#[test]
fn body_dropped_with_bytes_after_its_end_is_closed() {
    // The body is followed by bytes nobody asked for: the drain reaches the
    // end, but the connection must not carry them into the next exchange.
    let mut wire = response_bytes(200, &[], &pattern(2000));
    wire.extend_from_slice(&response_bytes(200, &[], b"unsolicited"));
    let (server, closes) = server(move |conn, req| {
        next_or(conn, req, &wire);
    });
    run(move || async move {
        let client = Client::new();
        let resp = client.get(server.url("/first")).send().await.unwrap();
        drop(resp);
        let s = client.pool_stats();
        assert_eq!((s.leased, s.idle, s.discarded), (0, 0, 1), "{s:?}");
        get_next(&client, &server).await;
        assert_closed(&client, &server, &closes);
    });
}

#[test]
fn body_dropped_with_max_drain_on_drop_zero_is_closed() {
    let wire = response_bytes(200, &[], &pattern(1000));
    let chunked = chunked_response(&pattern(1000), 100);
    for wire in [wire, chunked] {
        let (server, closes) = server(move |conn, req| {
            next_or(conn, req, &wire);
        });
        run(move || async move {
            let client = Client::builder().max_drain_on_drop(0).build().unwrap();
            let resp = client.get(server.url("/first")).send().await.unwrap();
            drop(resp);
            assert_eq!(client.pool_stats().discarded, 1);
            get_next(&client, &server).await;
            assert_closed(&client, &server, &closes);
        });
    }
}

#[test]
fn close_delimited_body_dropped_is_closed() {
    // No length: the body ends with the connection, which can never be
    // reused, however much of it has arrived.
    let (server, closes) = server(|conn, req| {
        if !next_or(conn, req, b"HTTP/1.1 200 OK\r\n\r\nall of it") {
            conn.close();
        }
    });
    run(move || async move {
        let client = Client::new();
        drop(client.get(server.url("/first")).send().await.unwrap());
        get_next(&client, &server).await;
        assert_eq!(server.connections(), 2);
        assert_eq!(server.requests_per_connection(), vec![1, 1]);
        let _ = closes;
    });
}

// ---------------------------------------------------------------------------
// discard
// ---------------------------------------------------------------------------

#[test]
fn discard_waits_for_the_rest_and_reuses_the_connection() {
    // 200 KiB, more than the drop drain takes, sent in pieces after a pause:
    // `discard` waits for all of it.
    let body = pattern(200 * 1024);
    for chunked in [false, true] {
        let body = body.clone();
        let (server, closes) = server(move |conn, req| {
            if req.target == "/next" {
                conn.respond(200, &[], b"next");
                return;
            }
            let wire = if chunked { chunked_response(&body, 3000) } else { response_bytes(200, &[], &body) };
            let head_end = wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            conn.write(&wire[..head_end]);
            for piece in wire[head_end..].chunks(50 * 1024) {
                std::thread::sleep(Duration::from_millis(20));
                conn.write(piece);
            }
        });
        run(move || async move {
            let client = Client::new();
            let resp = client.get(server.url("/first")).send().await.unwrap();
            resp.discard(1 << 20).await.unwrap();
            assert_eq!(client.pool_stats().idle, 1, "chunked {chunked}");
            get_next(&client, &server).await;
            assert_reused(&client, &server, &closes);
        });
    }
}

#[test]
fn discard_past_its_limit_closes_the_connection() {
    let body = pattern(100 * 1024);
    let length = response_bytes(200, &[], &body);
    let chunked = chunked_response(&body, 4096);
    for (name, wire) in [("length", length), ("chunked", chunked)] {
        let (server, closes) = server(move |conn, req| {
            next_or(conn, req, &wire);
        });
        run(move || async move {
            let client = Client::new();
            let resp = client.get(server.url("/first")).send().await.unwrap();
            let err = resp.discard(10 * 1024).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Body, "{name}: {err}");
            assert!(err.url().is_some(), "{name}: the error names the URL");
            let s = client.pool_stats();
            assert_eq!((s.leased, s.idle, s.discarded), (0, 0, 1), "{name}: {s:?}");
            get_next(&client, &server).await;
            assert_closed(&client, &server, &closes);
        });
    }
}

#[test]
fn discard_of_a_body_exactly_at_its_limit_reuses_the_connection() {
    // The limit is inclusive, also for chunked framing whose end comes
    // after the last data byte.
    let body = pattern(5000);
    for wire in [response_bytes(200, &[], &body), chunked_response(&body, 1000)] {
        let (server, closes) = server(move |conn, req| {
            next_or(conn, req, &wire);
        });
        run(move || async move {
            let client = Client::new();
            client.get(server.url("/first")).send().await.unwrap().discard(5000).await.unwrap();
            get_next(&client, &server).await;
            assert_reused(&client, &server, &closes);
        });
    }
}

#[test]
fn discard_of_a_body_whose_connection_cannot_be_reused_closes_it_without_reading() {
    // `Connection: close`: nothing to save. Only half the body is ever
    // sent, so a discard that read it would end with an error.
    let body = pattern(100 * 1024);
    let (server, closes) = server(move |conn, req| {
        let mut wire = response_bytes(200, &[("Connection", "close")], &body);
        wire.truncate(wire.len() - body.len() / 2);
        next_or(conn, req, &wire);
    });
    run(move || async move {
        let client = Client::new();
        let resp = client.get(server.url("/first")).send().await.unwrap();
        resp.discard(1 << 20).await.unwrap();
        assert!(closes.wait(0), "the server saw the client close the connection");
        get_next(&client, &server).await;
        assert_closed(&client, &server, &closes);
    });
}

#[test]
fn redirect_with_a_chunked_body_keeps_its_connection() {
    // The redirect's body is drained (raw, bounded) before the next request.
    let redirect = chunked_response(&pattern(3000), 700);
    let redirect = {
        let mut wire = b"HTTP/1.1 302 Found\r\nLocation: /next\r\n".to_vec();
        let framing_start = redirect.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
        wire.extend_from_slice(&redirect[framing_start..]);
        wire
    };
    let (server, closes) = server(move |conn, req| {
        next_or(conn, req, &redirect);
    });
    run(move || async move {
        let client = Client::new();
        let resp = client.get(server.url("/first")).send().await.unwrap();
        assert_eq!(resp.text().await.unwrap(), "next");
        assert_reused(&client, &server, &closes);
    });
}

// ---------------------------------------------------------------------------
// Deadlines on every poll path
// ---------------------------------------------------------------------------

/// An in-memory connection whose response is a head without a length and
/// then an endless body: every read is ready at once, with 64 bytes.
struct Endless {
    head: &'static [u8],
}

impl futures_io::AsyncRead for Endless {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if !self.head.is_empty() {
            let n = self.head.len().min(buf.len());
            buf[..n].copy_from_slice(&self.head[..n]);
            self.head = &self.head[n..];
            return Poll::Ready(Ok(n));
        }
        let n = buf.len().min(64);
        buf[..n].fill(b'x');
        Poll::Ready(Ok(n))
    }
}

impl futures_io::AsyncWrite for Endless {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn endless_client() -> Client {
    Client::builder()
        .connector(|_| async { Ok(Endless { head: b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" }) })
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap()
}

#[test]
fn endless_always_ready_body_times_out_in_bytes() {
    // Before the fix this spun forever inside one poll: the deadline was
    // only looked at when a read had to wait.
    run(|| async {
        let client = endless_client();
        let start = Instant::now();
        let err = client.get("http://endless.test/").send().await.unwrap().bytes().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
        assert!(start.elapsed() >= Duration::from_millis(90), "not before the deadline: {:?}", start.elapsed());
        assert_eq!(client.pool_stats().leased, 0);
    });
}

#[test]
fn endless_always_ready_body_times_out_in_an_async_read_loop() {
    run(|| async {
        let client = endless_client();
        let mut resp = client.get("http://endless.test/").send().await.unwrap();
        let mut buf = [0u8; 4096];
        let mut total = 0u64;
        let err = loop {
            match resp.read(&mut buf).await {
                Ok(0) => panic!("an endless body ended"),
                Ok(n) => total += n as u64,
                Err(e) => break e,
            }
        };
        let kind = err.get_ref().and_then(|e| e.downcast_ref::<smolreq::Error>()).map(|e| e.kind());
        assert_eq!(kind, Some(ErrorKind::Timeout), "{err}");
        assert!(total > 0, "bytes were read before the deadline");
        // The body stays failed: no further read reaches the connection.
        assert!(resp.read(&mut buf).await.is_err());
        drop(resp);
        assert_eq!(client.pool_stats().leased, 0);
    });
}

#[test]
fn an_answer_received_in_time_wins_over_a_late_poll() {
    // The whole response arrives with the head; the task then reads the
    // body only after the deadline: the bytes that arrived in time are
    // returned, not a timeout.
    let body = pattern(3000);
    let wire = response_bytes(200, &[], &body);
    let (server, _closes) = server(move |conn, _| conn.write(&wire));
    run(move || async move {
        let client = Client::new();
        let resp = client.get(server.url("/")).timeout(Duration::from_millis(100)).send().await.unwrap();
        smol::Timer::after(Duration::from_millis(200)).await;
        assert_eq!(resp.bytes().await.unwrap(), body);
        assert_eq!(client.pool_stats().idle, 1);
    });
}
