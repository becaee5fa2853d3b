//! Tests of the test harness itself (tests/common), using plain blocking std
//! clients only, so the harness is proven independently of the library.

mod common;

use common::*;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect(server.addr()).expect("connect to test server");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Reads one Content-Length framed response; returns (head, body).
fn read_response(s: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("read response head");
        assert_eq!(n, 1, "eof in response head: {:?}", String::from_utf8_lossy(&buf));
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("read response body");
    (head, body)
}

fn read_to_eof(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

#[test]
fn url_and_addr() {
    let server = echo_ok_server(b"x");
    let port = server.addr().port();
    assert!(server.addr().ip().is_loopback());
    assert_eq!(server.url("/a?b=1"), format!("http://127.0.0.1:{port}/a?b=1"));
}

#[test]
fn content_length_body_and_exact_head() {
    let (tx, rx) = mpsc::channel();
    let server = Server::start(move |conn| {
        let req = conn.read_request().expect("request");
        conn.respond(201, &[("X-Test", "yes")], b"created");
        tx.send(req).unwrap();
    });
    let mut c = connect(&server);
    let head = "POST /items?x=1 HTTP/1.1\r\nHost: example\r\nContent-Length: 11\r\nX-Dup: a\r\nx-dup:  b \r\n\r\n";
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(b"hello world").unwrap();
    let (rhead, rbody) = read_response(&mut c);
    assert!(rhead.starts_with("HTTP/1.1 201 Created\r\n"), "{rhead}");
    assert!(rhead.contains("X-Test: yes\r\n"));
    assert!(rhead.contains("Content-Length: 7\r\n"));
    assert_eq!(rbody, b"created");

    let req = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(req.method, "POST");
    assert_eq!(req.target, "/items?x=1");
    assert_eq!(req.version, 1);
    assert_eq!(req.raw_head, head.as_bytes());
    assert_eq!(req.body, b"hello world");
    assert_eq!(req.raw_body, b"hello world");
    assert!(!req.chunked);
    assert_eq!(req.header("host"), Some("example"));
    assert_eq!(req.header("X-DUP"), Some("a"));
    assert_eq!(req.header_count("x-dup"), 2);
    assert_eq!(req.header_all("x-dup"), vec!["a", "b"]);
    assert_eq!(req.header("missing"), None);
    assert_eq!(req.conn_index, 0);

    drop(c);
    server.wait_closed(1);
    assert_eq!(server.connections(), 1);
    assert_eq!(server.requests(), 1);
    assert_eq!(server.received().len(), 1);
    assert_eq!(server.received()[0].body, b"hello world");
    server.assert_no_handler_panics();
}

#[test]
fn chunked_body_with_extensions_and_trailers() {
    let server = echo_ok_server(b"ok");
    let mut c = connect(&server);
    let wire_body = "5;ext=1\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n";
    let req = format!("PUT /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n{wire_body}");
    // Split the write to exercise partial reads in the parser.
    let (a, b) = req.as_bytes().split_at(40);
    c.write_all(a).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    c.write_all(b).unwrap();
    let (_, body) = read_response(&mut c);
    assert_eq!(body, b"ok");

    server.wait_requests(1);
    let r = &server.received()[0];
    assert_eq!(r.method, "PUT");
    assert!(r.chunked);
    assert_eq!(r.body, b"hello 0123456789");
    assert_eq!(r.raw_body, wire_body.as_bytes());
    assert_eq!(r.trailers, vec![("X-Trailer".to_string(), "t".to_string())]);
}

#[test]
fn keep_alive_counts_and_per_connection() {
    let server = echo_ok_server(b"hi");
    let mut c1 = connect(&server);
    for _ in 0..3 {
        c1.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut c1).1, b"hi");
    }
    let mut c2 = connect(&server);
    // Two pipelined requests in one write.
    c2.write_all(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut c2).1, b"hi");
    assert_eq!(read_response(&mut c2).1, b"hi");

    assert_eq!(server.connections(), 2);
    assert_eq!(server.requests(), 5);
    assert_eq!(server.requests_per_connection(), vec![3, 2]);
    let targets: Vec<_> = server.received().iter().map(|r| (r.conn_index, r.target.clone())).collect();
    assert_eq!(targets, vec![(0, "/".into()), (0, "/".into()), (0, "/".into()), (1, "/a".into()), (1, "/b".into())]);
    assert_eq!(server.closed(), 0);
    drop(c1);
    server.wait_closed(1);
    drop(c2);
    server.wait_closed(2);
}

#[test]
fn echo_server_honours_connection_close_and_http10() {
    let server = echo_ok_server(b"bye");
    let mut c = connect(&server);
    c.write_all(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").unwrap();
    let all = read_to_eof(&mut c).unwrap();
    let text = String::from_utf8(all).unwrap();
    assert!(text.contains("Connection: close\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nbye"), "{text}");

    let mut c = connect(&server);
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let all = read_to_eof(&mut c).unwrap();
    assert!(all.ends_with(b"bye"));
    server.wait_closed(2);
    assert_eq!(server.received()[1].version, 0);
}

#[test]
fn read_request_none_on_clean_eof_and_on_truncation() {
    let (tx, rx) = mpsc::channel();
    let server = Server::start(move |conn| {
        let r = conn.read_request();
        tx.send((r.is_some(), conn.last_error().map(str::to_string))).unwrap();
    });
    let c = connect(&server);
    c.shutdown(Shutdown::Write).unwrap();
    let (some, err) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(!some);
    assert_eq!(err.as_deref(), Some("eof"));

    let mut c = connect(&server);
    c.write_all(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let (some, err) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(!some);
    assert!(err.unwrap().contains("eof"));
    assert_eq!(server.requests(), 0);
}

#[test]
fn read_request_times_out() {
    let (tx, rx) = mpsc::channel();
    let server = Server::start(move |conn| {
        conn.set_read_timeout(Some(Duration::from_millis(100)));
        let start = Instant::now();
        let r = conn.read_request();
        tx.send((r.is_none(), start.elapsed())).unwrap();
    });
    let mut c = connect(&server);
    c.write_all(b"GET / HTTP/1.1\r\n").unwrap(); // never finished
    let (none, took) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(none);
    assert!(took < Duration::from_secs(2), "{took:?}");
    // The harness ended the connection because of its read timeout: that is
    // neither a close by the handler nor the peer's.
    let CloseWait::TimedOut(counts) = server.closes_within(1, Duration::from_millis(300)) else {
        panic!("a read timeout was counted as a close");
    };
    assert_eq!((counts.timed_out, counts.closed, counts.peer_closed), (1, 0, 0), "{counts}");
    drop(c);
}

#[test]
fn malformed_request_is_none() {
    let (tx, rx) = mpsc::channel();
    let server = Server::start(move |conn| {
        tx.send(conn.read_request().is_none()).unwrap();
    });
    let mut c = connect(&server);
    c.write_all(b"GARBAGE\r\n\r\n").unwrap();
    assert!(rx.recv_timeout(Duration::from_secs(5)).unwrap());
}

#[test]
fn close_sends_fin() {
    let server = Server::start(|conn| {
        conn.read_request();
        conn.write(b"partial");
        conn.close();
        assert!(conn.is_closed());
        conn.write(b"ignored after close");
        // Keep the handler running: the socket must already be closed.
        std::thread::sleep(Duration::from_millis(300));
    });
    let mut c = connect(&server);
    // Extra unread bytes must not turn the FIN into an RST.
    c.write_all(b"GET / HTTP/1.1\r\n\r\nEXTRA-UNREAD").unwrap();
    let got = read_to_eof(&mut c).expect("clean EOF, not a reset");
    assert_eq!(got, b"partial");
    server.wait_closed(1);
}

#[test]
fn reset_produces_econnreset() {
    let server = Server::start(|conn| {
        conn.read_request();
        conn.reset();
        std::thread::sleep(Duration::from_millis(300));
    });
    let mut c = connect(&server);
    c.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut buf = [0u8; 16];
    let err = c.read(&mut buf).expect_err("expected a reset");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err:?}");
    server.wait_closed(1);
}

#[test]
fn handler_return_closes_gracefully() {
    let server = Server::start(|conn| {
        conn.read_request();
        conn.respond(200, &[], b"done");
    });
    let mut c = connect(&server);
    c.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let all = read_to_eof(&mut c).unwrap();
    assert!(all.ends_with(b"done"));
    server.wait_closed(1);
}

#[test]
fn write_slowly_drips() {
    let server = Server::start(|conn| {
        conn.write_slowly(b"abcde", Duration::from_millis(30));
    });
    let mut c = connect(&server);
    let start = Instant::now();
    let mut first = [0u8; 5];
    let n = c.read(&mut first).unwrap();
    assert!(n < 5, "bytes should arrive one at a time, got {n}");
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    let mut all = first[..n].to_vec();
    all.extend(rest);
    assert_eq!(all, b"abcde");
    assert!(start.elapsed() >= Duration::from_millis(100));
}

#[test]
fn wait_peer_close_detects_close_and_timeout() {
    let (tx, rx) = mpsc::channel();
    let server = Server::start(move |conn| {
        let short = conn.wait_peer_close(Duration::from_millis(100));
        let long = conn.wait_peer_close(Duration::from_secs(5));
        // Bytes sent before the close stay readable.
        tx.send((short, long, conn.buffered().to_vec())).unwrap();
    });
    let mut c = connect(&server);
    std::thread::sleep(Duration::from_millis(200));
    c.write_all(b"late").unwrap();
    drop(c);
    let (short, long, buffered) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(!short, "peer was still open");
    assert!(long, "peer closed");
    assert_eq!(buffered, b"late");
}

#[test]
#[should_panic(expected = "timed out")]
fn wait_closed_panics_on_timeout() {
    let server = echo_ok_server(b"");
    let _c = connect(&server);
    server.wait_closed_within(1, Duration::from_millis(300));
}

#[test]
fn handler_panics_are_recorded_and_drop_does_not_hang() {
    let server = Server::start(|conn| {
        conn.read_request();
        panic!("boom in handler");
    });
    let mut c = connect(&server);
    c.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    // The connection is closed after the panic.
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    server.wait_closed(1);
    let panics = server.handler_panics();
    assert_eq!(panics.len(), 1);
    assert!(panics[0].contains("boom in handler"), "{panics:?}");
    let start = Instant::now();
    drop(server);
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn drop_wakes_blocked_handlers_and_closes_connections() {
    let server = Server::start(|conn| {
        // Blocks for up to 5 s unless the server drop wakes it.
        while conn.read_request().is_some() {}
    });
    let mut clients: Vec<TcpStream> = (0..3).map(|_| connect(&server)).collect();
    server.wait_connections(3);
    let start = Instant::now();
    drop(server);
    assert!(start.elapsed() < Duration::from_millis(900), "drop took {:?}", start.elapsed());
    for c in &mut clients {
        let got = read_to_eof(c).expect("EOF after server drop");
        assert!(got.is_empty());
    }
}

#[test]
fn drop_with_stuck_handler_is_bounded() {
    let server = Server::start(|_conn| std::thread::sleep(Duration::from_secs(3)));
    let _c = connect(&server);
    server.wait_connections(1);
    let start = Instant::now();
    drop(server);
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn open_fd_list_tracks_exactly_these_sockets() {
    // Other tests of this binary open and close descriptors meanwhile, so
    // the check follows these descriptors (number and socket inode), not
    // the process-wide count.
    use std::os::fd::AsRawFd;
    let socks: Vec<_> = (0..8).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let during = open_fd_list();
    let ours: Vec<String> = socks
        .iter()
        .map(|s| {
            let prefix = format!("{} -> socket:[", s.as_raw_fd());
            during
                .iter()
                .find(|fd| fd.starts_with(&prefix))
                .cloned()
                .unwrap_or_else(|| panic!("{prefix} not in {during:?}"))
        })
        .collect();
    assert_eq!(ours.len(), 8);
    drop(socks);
    let after = open_fd_list();
    let left: Vec<_> = ours.iter().filter(|fd| after.contains(fd)).collect();
    assert!(left.is_empty(), "closed sockets still listed: {left:?}");
    assert_eq!(open_fds(), open_fd_list().len());
}

#[test]
fn sockets_connected_to_counts_only_sockets_to_that_peer() {
    let server = echo_ok_server(b"x");
    let other = echo_ok_server(b"y");
    let _unrelated = connect(&other);
    let mut clients: Vec<TcpStream> = (0..3).map(|_| connect(&server)).collect();
    server.wait_connections(3);
    assert_eq!(sockets_connected_to(server.addr()), 3);
    clients.pop();
    assert_eq!(sockets_connected_to(server.addr()), 2);
    drop(clients);
    assert_eq!(sockets_connected_to(server.addr()), 0);
    assert_eq!(sockets_connected_to(other.addr()), 1);
}

#[test]
fn wait_peer_closed_sees_the_clients_fin() {
    let server = echo_ok_server(b"x");
    let c = connect(&server);
    server.wait_connections(1);
    assert!(matches!(server.peer_closes_within(1, Duration::from_millis(200)), CloseWait::TimedOut(_)), "still open");
    drop(c);
    server.wait_peer_closed(1);
    assert_eq!(server.peer_closed(), 1);
    server.wait_closed(1);
    assert_eq!(server.timed_out(), 0);
}

#[test]
fn wait_peer_closed_sees_the_clients_rst() {
    let (tx, rx) = mpsc::channel();
    let server = Server::start(move |conn| {
        let closed = conn.wait_peer_close(Duration::from_secs(5));
        tx.send((closed, conn.peer_close())).unwrap();
    });
    let c = connect(&server);
    server.wait_connections(1);
    socket2::SockRef::from(&c).set_linger(Some(Duration::ZERO)).unwrap();
    drop(c);
    server.wait_peer_closed(1);
    let (closed, how) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(closed);
    assert_eq!(how, Some(PeerClose::Reset));
}

#[test]
fn a_client_that_never_closes_fails_wait_peer_closed_and_wait_closed() {
    // The handler gives up after 200 ms (as the 5 s default would, later):
    // the harness then closes the socket, and that must not pass for the
    // client's close.
    let server = Server::start(|conn| {
        conn.set_read_timeout(Some(Duration::from_millis(200)));
        while conn.read_request().is_some() {}
    });
    let _open = connect(&server);
    let started = Instant::now();
    let CloseWait::TimedOut(counts) = server.peer_closes_within(1, Duration::from_millis(800)) else {
        panic!("a harness read timeout passed for the peer's close");
    };
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert_eq!((counts.peer_closed, counts.closed, counts.timed_out), (0, 0, 1), "{counts}");
    assert!(matches!(server.closes_within(1, Duration::from_millis(100)), CloseWait::TimedOut(_)));
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.wait_peer_closed(1)));
    let message = panic.expect_err("wait_peer_closed must panic");
    let message = message.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("the client did not close"), "{message}");
    assert!(message.contains("ended by a harness read timeout (the peer never closed) = 1"), "{message}");
}

#[test]
fn a_close_by_the_handler_is_not_the_peers_close() {
    let server = Server::start(|conn| {
        conn.read_request();
        conn.respond(200, &[], b"bye");
        conn.close();
    });
    let mut c = connect(&server);
    c.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert!(read_to_eof(&mut c).unwrap().ends_with(b"bye"));
    server.wait_closed(1);
    assert!(matches!(server.peer_closes_within(1, Duration::from_millis(200)), CloseWait::TimedOut(_)));
    drop(c);
}

#[test]
fn server_drop_is_not_the_peers_close() {
    let (tx, rx) = mpsc::channel();
    let server = Server::start(move |conn| {
        let closed = conn.wait_peer_close(Duration::from_secs(5));
        tx.send((closed, conn.peer_close())).unwrap();
    });
    let _c = connect(&server);
    server.wait_connections(1);
    drop(server);
    let (closed, how) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(!closed, "the server's own shutdown was taken for the peer's close");
    assert_eq!(how, None);
}

#[test]
fn with_deadline_returns_value() {
    assert_eq!(with_deadline(Duration::from_secs(5), || 40 + 2), 42);
}

#[test]
#[should_panic(expected = "did not finish within")]
fn with_deadline_panics_on_hang() {
    with_deadline(Duration::from_millis(100), || std::thread::sleep(Duration::from_secs(2)));
}

#[test]
#[should_panic(expected = "inner failure")]
fn with_deadline_propagates_panics() {
    with_deadline(Duration::from_secs(5), || panic!("inner failure"));
}

#[test]
fn response_bytes_framing() {
    assert_eq!(response_bytes(200, &[], b"ab"), b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab");
    assert_eq!(response_bytes(204, &[], b""), b"HTTP/1.1 204 No Content\r\n\r\n");
    assert_eq!(
        response_bytes(200, &[("Transfer-Encoding", "chunked")], b"0\r\n\r\n"),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    );
}
