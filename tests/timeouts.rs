//! Timeouts (issue 3, section 7) and the shape of errors (section 8),
//! against scripted raw-socket servers.
//!
//! Timing assertions are generous: the machine is shared and noisy. A
//! deadline must neither fire early (before the configured time) nor hang
//! (every test runs under `common::with_deadline`).

mod common;

use std::error::Error as _;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Conn, Server};
use futures_lite::AsyncReadExt;
use smolreq::{Client, ErrorKind, StatusCode};

const DEADLINE: Duration = Duration::from_secs(15);
/// Slack allowed past a deadline before we call it late.
const SLACK: Duration = Duration::from_millis(2500);
/// How long a stalling handler waits for the client to give up.
const STALL: Duration = Duration::from_secs(8);

fn run<F, T>(f: impl FnOnce() -> F + Send + 'static) -> T
where
    F: Future<Output = T>,
    T: Send + 'static,
{
    common::with_deadline(DEADLINE, move || smol::block_on(f()))
}

/// Asserts that `elapsed` is not before `timeout` (minus timer jitter) and
/// not much after it.
fn assert_fired_on_time(elapsed: Duration, timeout: Duration) {
    assert!(elapsed + Duration::from_millis(50) >= timeout, "fired early: after {elapsed:?}, timeout {timeout:?}");
    assert!(elapsed < timeout + SLACK, "fired late: after {elapsed:?}, timeout {timeout:?}");
}

fn assert_one_line(err: &smolreq::Error) {
    let text = err.to_string();
    assert!(!text.is_empty());
    assert!(!text.contains('\n') && !text.contains('\r'), "Display is not one line: {text:?}");
}

/// A server whose first connection runs `misbehave` and whose later
/// connections answer every request with 200 `"ok"`. `misbehave` reports,
/// through the returned channel, whether the client closed the connection
/// while the server was stalling.
fn first_conn_misbehaves(
    misbehave: impl Fn(&mut Conn) -> bool + Send + Sync + 'static,
) -> (Server, mpsc::Receiver<bool>) {
    let (tx, rx) = mpsc::channel();
    let server = Server::start(move |conn| {
        if conn.index() == 0 {
            let closed = misbehave(conn);
            let _ = tx.send(closed);
            return;
        }
        while let Some(_req) = conn.read_request() {
            conn.respond(200, &[], b"ok");
        }
    });
    (server, rx)
}

/// Reads the request, then says nothing until the client goes away.
fn never_answer(conn: &mut Conn) -> bool {
    conn.read_request();
    conn.wait_peer_close(STALL)
}

/// Asserts the server saw the client close the misbehaving connection.
fn assert_client_closed(rx: &mpsc::Receiver<bool>) {
    let closed = rx.recv_timeout(Duration::from_secs(10)).expect("misbehaving handler finished");
    assert!(closed, "the client kept the timed-out connection open");
}

/// After a timeout: nothing is leased, and a follow-up request on the same
/// client succeeds, although the client allows a single connection.
async fn assert_slot_is_free(client: &Client, url: String) {
    let stats = client.pool_stats();
    assert_eq!(stats.leased, 0, "a timed-out request still holds a lease: {stats:?}");
    let resp = client
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("follow-up request after a timeout (slot leaked?)");
    assert_eq!(resp.text().await.unwrap(), "ok");
    assert_eq!(client.pool_stats().leased, 0);
}

fn one_connection_client(timeout: Option<Duration>) -> Client {
    let mut builder = Client::builder().max_connections_per_host(1);
    if let Some(t) = timeout {
        builder = builder.timeout(t);
    }
    builder.build().unwrap()
}

// ---------------------------------------------------------------------------
// connect timeout
// ---------------------------------------------------------------------------

/// A loopback listener whose accept queue is full, so a further connect
/// hangs in SYN-SENT. On Linux a listener with backlog 0 accepts one
/// connection into its queue and then drops SYNs (while nobody calls
/// accept), which makes this deterministic without any network access.
struct FullListener {
    addr: SocketAddr,
    _listener: socket2::Socket,
    _fillers: Vec<TcpStream>,
}

fn full_listener() -> FullListener {
    use socket2::{Domain, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    listener.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).expect("bind");
    listener.listen(0).expect("listen");
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..64 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => fillers.push(s),
            Err(e) if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) => {
                return FullListener { addr, _listener: listener, _fillers: fillers };
            }
            Err(e) => panic!("filling the accept queue: {e}"),
        }
    }
    panic!("precondition: could not fill a loopback accept queue (connects never block on this OS)");
}

#[test]
fn connect_timeout_fires_when_connect_hangs() {
    run(|| async {
        let full = full_listener();
        let timeout = Duration::from_millis(400);
        let client = Client::builder().connect_timeout(timeout).build().unwrap();
        let url = format!("http://{}/", full.addr);
        let start = Instant::now();
        let err = client.get(url.as_str()).send().await.expect_err("connect must time out");
        let elapsed = start.elapsed();
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
        assert!(err.is_timeout());
        assert_fired_on_time(elapsed, timeout);
        assert_eq!(err.url().map(|u| u.to_string()), Some(url));
        assert_one_line(&err);
        let stats = client.pool_stats();
        assert_eq!(stats.leased, 0, "{stats:?}");
        assert_eq!(stats.idle, 0, "{stats:?}");
    });
}

#[test]
fn request_timeout_also_bounds_connect() {
    run(|| async {
        let full = full_listener();
        let timeout = Duration::from_millis(400);
        let client = Client::builder().timeout(timeout).build().unwrap();
        let start = Instant::now();
        let err = client.get(format!("http://{}/", full.addr)).send().await.expect_err("must time out");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
        assert_fired_on_time(start.elapsed(), timeout);
    });
}

#[test]
fn shorter_request_timeout_wins_over_connect_timeout() {
    run(|| async {
        let full = full_listener();
        let client = Client::builder().connect_timeout(Duration::from_secs(30)).build().unwrap();
        let timeout = Duration::from_millis(400);
        let start = Instant::now();
        let err = client.get(format!("http://{}/", full.addr)).timeout(timeout).send().await.expect_err("time out");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
        assert_fired_on_time(start.elapsed(), timeout);
    });
}

#[test]
fn connect_timeout_does_not_bound_the_response() {
    let server = Server::start(|conn| {
        while let Some(_req) = conn.read_request() {
            std::thread::sleep(Duration::from_millis(700));
            conn.respond(200, &[], b"late but fine");
        }
    });
    let url = server.url("/");
    run(move || async move {
        let client = Client::builder().connect_timeout(Duration::from_millis(200)).build().unwrap();
        let resp = client.get(url).send().await.expect("connect_timeout applies to connecting only");
        assert_eq!(resp.text().await.unwrap(), "late but fine");
    });
}

#[test]
fn connection_refused_is_a_connect_error_with_source() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/x");
    let expected = url.clone();
    let (err, elapsed) = run(move || async move {
        let client = Client::builder().connect_timeout(Duration::from_secs(10)).build().unwrap();
        let start = Instant::now();
        let err = client.get(url).send().await.expect_err("nothing listens there");
        assert_eq!(client.pool_stats().leased, 0);
        (err, start.elapsed())
    });
    assert_eq!(err.kind(), ErrorKind::Connect, "{err:?}");
    assert!(elapsed < Duration::from_secs(3), "refusal took {elapsed:?}");
    assert_eq!(err.url().map(|u| u.to_string()), Some(expected));
    let source = err.source().expect("a connect error keeps its I/O source");
    let io = source.downcast_ref::<io::Error>().expect("source is an io::Error");
    assert_eq!(io.kind(), io::ErrorKind::ConnectionRefused);
    assert_one_line(&err);
}

// ---------------------------------------------------------------------------
// request timeout: before the response head
// ---------------------------------------------------------------------------

#[test]
fn timeout_when_server_never_answers() {
    let (server, rx) = first_conn_misbehaves(never_answer);
    let url = server.url("/silent");
    let ok_url = server.url("/ok");
    let expected = url.clone();
    run(move || async move {
        let timeout = Duration::from_millis(500);
        let client = one_connection_client(Some(timeout));
        let start = Instant::now();
        let err = client.get(url).send().await.expect_err("the server never answers");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
        assert!(err.is_timeout());
        assert_fired_on_time(start.elapsed(), timeout);
        assert_eq!(err.url().map(|u| u.to_string()), Some(expected));
        assert_one_line(&err);
        assert_slot_is_free(&client, ok_url).await;
    });
    assert_client_closed(&rx);
}

#[test]
fn timeout_when_server_drips_the_head() {
    let (server, rx) = first_conn_misbehaves(|conn| {
        conn.read_request();
        // 40 bytes at 200 ms each: 8 s for the whole response.
        conn.write_slowly(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", Duration::from_millis(200));
        conn.wait_peer_close(STALL)
    });
    let url = server.url("/drip");
    let ok_url = server.url("/ok");
    run(move || async move {
        let timeout = Duration::from_secs(1);
        let client = one_connection_client(Some(timeout));
        let start = Instant::now();
        let err = client.get(url).send().await.expect_err("a dripped head must hit the deadline");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
        assert_fired_on_time(start.elapsed(), timeout);
        assert_slot_is_free(&client, ok_url).await;
    });
    assert_client_closed(&rx);
}

#[test]
fn timeout_while_waiting_for_a_pooled_connection() {
    // One connection allowed; the first request holds it for ~2 s, the
    // second waits in the pool queue and must give up at its deadline.
    let server = Server::start(|conn| {
        while let Some(req) = conn.read_request() {
            if req.target == "/slow" {
                std::thread::sleep(Duration::from_secs(2));
            }
            conn.respond(200, &[], b"ok");
        }
    });
    let (slow, queued, ok_url) = (server.url("/slow"), server.url("/queued"), server.url("/ok"));
    run(move || async move {
        let client = one_connection_client(None);
        let first = async {
            let resp = client.get(slow).timeout(Duration::from_secs(8)).send().await.expect("slow request");
            resp.text().await.unwrap()
        };
        let second = async {
            smol::Timer::after(Duration::from_millis(100)).await;
            let timeout = Duration::from_millis(500);
            let start = Instant::now();
            let err = client.get(queued).timeout(timeout).send().await.expect_err("must time out in the queue");
            (err, start.elapsed(), timeout)
        };
        let (body, (err, elapsed, timeout)) = futures_lite::future::zip(first, second).await;
        assert_eq!(body, "ok");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
        assert_fired_on_time(elapsed, timeout);
        assert_slot_is_free(&client, ok_url).await;
    });
    assert!(server.received().iter().all(|r| r.target != "/queued"), "the timed-out request was sent anyway");
}

#[test]
fn timeout_in_the_pool_queue_keeps_the_connection_cap() {
    // Cap 1. A holds the only connection for ~2 s; B times out in the
    // queue; C then queues too and must wait for A's connection instead of
    // dialing a second one: the server sees a single connection.
    let server = Server::start(|conn| {
        while let Some(req) = conn.read_request() {
            if req.target == "/a" {
                std::thread::sleep(Duration::from_secs(2));
            }
            conn.respond(200, &[], req.target.as_bytes());
        }
    });
    let (a, b, c) = (server.url("/a"), server.url("/b"), server.url("/c"));
    let stats = run(move || async move {
        let client = one_connection_client(Some(Duration::from_secs(8)));
        let first = async {
            let resp = client.get(a).send().await.expect("A");
            resp.text().await.expect("A body")
        };
        let others = async {
            smol::Timer::after(Duration::from_millis(100)).await;
            let err = client.get(b).timeout(Duration::from_millis(300)).send().await.expect_err("B times out");
            assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
            let resp = client.get(c).send().await.expect("C");
            resp.text().await.expect("C body")
        };
        let (body_a, body_c) = futures_lite::future::zip(first, others).await;
        assert_eq!((body_a.as_str(), body_c.as_str()), ("/a", "/c"));
        client.pool_stats()
    });
    assert_eq!(server.connections(), 1, "a cancelled waiter freed a slot it never held: the cap of 1 was exceeded");
    assert_eq!(stats.leased, 0, "{stats:?}");
    assert_eq!(stats.opened, 1, "{stats:?}");
}

#[test]
fn timeout_while_writing_a_large_request_body() {
    // The server never reads, so a 32 MiB body cannot be written.
    let server = Server::start(|conn| {
        if conn.index() == 0 {
            let until = Instant::now() + STALL;
            while Instant::now() < until && !conn.server_stopping() {
                std::thread::sleep(Duration::from_millis(20));
            }
            return;
        }
        while let Some(_req) = conn.read_request() {
            conn.respond(200, &[], b"ok");
        }
    });
    let url = server.url("/upload");
    let ok_url = server.url("/ok");
    run(move || async move {
        let timeout = Duration::from_secs(1);
        let client = one_connection_client(Some(timeout));
        let start = Instant::now();
        let err = client.post(url).body(vec![b'x'; 32 << 20]).send().await.expect_err("the write must time out");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
        assert_fired_on_time(start.elapsed(), timeout);
        assert_slot_is_free(&client, ok_url).await;
    });
}

// ---------------------------------------------------------------------------
// request timeout: the deadline travels into the body
// ---------------------------------------------------------------------------

/// Sends the head and half of a 10-byte body, then stalls.
fn stall_mid_body(conn: &mut Conn) -> bool {
    conn.read_request();
    conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello");
    conn.wait_peer_close(STALL)
}

#[test]
fn timeout_when_body_stalls_bytes() {
    let (server, rx) = first_conn_misbehaves(stall_mid_body);
    let url = server.url("/half");
    let ok_url = server.url("/ok");
    let expected = url.clone();
    run(move || async move {
        let timeout = Duration::from_secs(1);
        let client = one_connection_client(Some(timeout));
        let start = Instant::now();
        let resp = client.get(url).send().await.expect("the head arrives in time");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(client.pool_stats().leased, 1, "the body holds the connection");
        let err = resp.bytes().await.expect_err("half a body is not a success");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
        assert_fired_on_time(start.elapsed(), timeout);
        assert_eq!(err.url().map(|u| u.to_string()), Some(expected));
        assert_one_line(&err);
        assert_slot_is_free(&client, ok_url).await;
    });
    assert_client_closed(&rx);
}

/// Sends the head and 300 KiB of a 1 MiB body, then stalls: `bytes()`
/// reads such a body straight into its vector, and must still time out.
fn stall_mid_large_body(conn: &mut Conn) -> bool {
    conn.read_request();
    conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n");
    conn.write(&vec![b'x'; 300 << 10]);
    conn.wait_peer_close(STALL)
}

#[test]
fn timeout_when_large_body_stalls_bytes() {
    let (server, rx) = first_conn_misbehaves(stall_mid_large_body);
    let url = server.url("/large");
    let ok_url = server.url("/ok");
    run(move || async move {
        let timeout = Duration::from_secs(1);
        let client = one_connection_client(Some(timeout));
        let start = Instant::now();
        let resp = client.get(url).send().await.expect("the head arrives in time");
        let err = resp.bytes().await.expect_err("part of a body is not a success");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
        assert_fired_on_time(start.elapsed(), timeout);
        assert_slot_is_free(&client, ok_url).await;
    });
    assert_client_closed(&rx);
}

#[test]
fn timeout_when_body_stalls_async_read() {
    let (server, rx) = first_conn_misbehaves(stall_mid_body);
    let url = server.url("/half");
    let ok_url = server.url("/ok");
    run(move || async move {
        let timeout = Duration::from_secs(1);
        let client = one_connection_client(Some(timeout));
        let start = Instant::now();
        let mut resp = client.get(url).send().await.expect("the head arrives in time");
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        let err = loop {
            match resp.read(&mut buf).await {
                Ok(0) => panic!("a short body ended cleanly after {got:?}"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => break e,
            }
        };
        assert_fired_on_time(start.elapsed(), timeout);
        assert_eq!(got, b"hello", "the bytes that did arrive are delivered first");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err:?}");
        let inner = err.get_ref().and_then(|e| e.downcast_ref::<smolreq::Error>()).expect("inner is smolreq::Error");
        assert_eq!(inner.kind(), ErrorKind::Timeout);
        // A failed body keeps failing; it never turns into a clean EOF.
        assert!(resp.read(&mut buf).await.is_err(), "a read after the timeout must not report EOF");
        drop(resp);
        assert_slot_is_free(&client, ok_url).await;
    });
    assert_client_closed(&rx);
}

#[test]
fn deadline_covers_a_dripped_body() {
    // The head arrives at once; the body keeps trickling (progress every
    // 200 ms), so only a deadline on the whole request can stop it.
    let (server, rx) = first_conn_misbehaves(|conn| {
        conn.read_request();
        conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n");
        conn.write_slowly(&[b'z'; 40], Duration::from_millis(200));
        conn.wait_peer_close(STALL)
    });
    let url = server.url("/trickle");
    let ok_url = server.url("/ok");
    run(move || async move {
        let timeout = Duration::from_millis(1200);
        let client = one_connection_client(Some(timeout));
        let start = Instant::now();
        let resp = client.get(url).send().await.expect("the head arrives in time");
        let err = resp.bytes().await.expect_err("the body outlives the deadline");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
        assert_fired_on_time(start.elapsed(), timeout);
        assert_slot_is_free(&client, ok_url).await;
    });
    assert_client_closed(&rx);
}

#[test]
fn deadline_counts_from_send_not_from_body_read() {
    // Time spent between `send` and reading the body counts: a 1 s
    // deadline with 1.5 s of idling after the head fails at the first read
    // that has to wait.
    let (server, rx) = first_conn_misbehaves(stall_mid_body);
    let url = server.url("/half");
    run(move || async move {
        let client = one_connection_client(Some(Duration::from_secs(1)));
        let resp = client.get(url).send().await.expect("head in time");
        smol::Timer::after(Duration::from_millis(1500)).await;
        let start = Instant::now();
        let err = resp.bytes().await.expect_err("the deadline already passed");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(1), "waited {:?} past an elapsed deadline", start.elapsed());
    });
    assert_client_closed(&rx);
}

#[test]
fn complete_body_within_deadline_is_not_a_timeout() {
    // Dripped, but finishing well before the deadline: a success, and the
    // connection goes back to the pool.
    let server = Server::start(|conn| {
        while let Some(_req) = conn.read_request() {
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
            conn.write_slowly(b"slow!", Duration::from_millis(50));
        }
    });
    let url = server.url("/");
    run(move || async move {
        let client = one_connection_client(Some(Duration::from_secs(5)));
        let resp = client.get(url).send().await.unwrap();
        assert_eq!(resp.text().await.unwrap(), "slow!");
        let stats = client.pool_stats();
        assert_eq!((stats.leased, stats.idle), (0, 1), "{stats:?}");
    });
}

// ---------------------------------------------------------------------------
// per-request timeout
// ---------------------------------------------------------------------------

#[test]
fn request_timeout_overrides_a_longer_client_timeout() {
    let (server, rx) = first_conn_misbehaves(never_answer);
    let url = server.url("/silent");
    let ok_url = server.url("/ok");
    run(move || async move {
        let client = one_connection_client(Some(Duration::from_secs(60)));
        let timeout = Duration::from_millis(500);
        let start = Instant::now();
        let err = client.get(url).timeout(timeout).send().await.expect_err("the request's own timeout applies");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
        assert_fired_on_time(start.elapsed(), timeout);
        assert_slot_is_free(&client, ok_url).await;
    });
    assert_client_closed(&rx);
}

#[test]
fn request_timeout_overrides_a_shorter_client_timeout() {
    let server = Server::start(|conn| {
        while let Some(_req) = conn.read_request() {
            std::thread::sleep(Duration::from_millis(800));
            conn.respond(200, &[], b"worth the wait");
        }
    });
    let url = server.url("/");
    let url2 = url.clone();
    run(move || async move {
        let client = Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
        let resp = client.get(url).timeout(Duration::from_secs(10)).send().await.expect("the longer timeout applies");
        assert_eq!(resp.text().await.unwrap(), "worth the wait");
        // Without the override the client's 300 ms applies.
        let err = client.get(url2).send().await.expect_err("client timeout applies");
        assert_eq!(err.kind(), ErrorKind::Timeout);
    });
}

#[test]
fn request_timeout_without_client_timeout_covers_the_body() {
    let (server, rx) = first_conn_misbehaves(stall_mid_body);
    let url = server.url("/half");
    run(move || async move {
        let client = one_connection_client(None);
        let timeout = Duration::from_millis(800);
        let start = Instant::now();
        let resp = client.get(url).timeout(timeout).send().await.expect("head in time");
        let err = resp.text().await.expect_err("the per-request deadline travels into the body");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
        assert_fired_on_time(start.elapsed(), timeout);
        assert_eq!(client.pool_stats().leased, 0);
    });
    assert_client_closed(&rx);
}

// ---------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------

#[test]
fn io_error_keeps_its_source() {
    // The server reads the request and resets the connection: an I/O error
    // on a fresh connection (no retry), whose source is the io::Error.
    let server = Server::start(|conn| {
        conn.read_request();
        conn.reset();
    });
    let url = server.url("/reset");
    let err = run(move || async move {
        let client = Client::new();
        let err = client.get(url).send().await.expect_err("reset before the response");
        assert_eq!(client.pool_stats().leased, 0);
        err
    });
    assert_eq!(err.kind(), ErrorKind::Io, "{err:?}");
    let source = err.source().expect("an I/O error keeps its source");
    let io = source.downcast_ref::<io::Error>().expect("source is an io::Error");
    assert_eq!(io.kind(), io::ErrorKind::ConnectionReset, "{io:?}");
    assert!(err.url().is_some());
    assert_one_line(&err);
}

#[test]
fn error_display_is_one_line_for_protocol_errors() {
    let server = Server::start(|conn| {
        conn.read_request();
        conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab");
    });
    let url = server.url("/");
    let err = run(move || async move { Client::new().get(url).send().await.expect_err("conflicting lengths") });
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err:?}");
    assert!(err.url().is_some());
    assert_one_line(&err);
}

#[test]
fn url_error_display_is_one_line() {
    let err = run(|| async { Client::new().get("ftp://127.0.0.1/").send().await.expect_err("bad scheme") });
    assert_eq!(err.kind(), ErrorKind::Url);
    assert_one_line(&err);
}
