//! `Expect: 100-continue` (issue 11, section 3): the head goes out alone,
//! the body follows the server's `100 Continue` or, if the server stays
//! silent, the end of `ClientBuilder::expect_continue_timeout`; a final
//! status instead of 100 is returned and the body is never sent, and that
//! connection (its request framed by Content-Length, the body missing) is
//! closed, not pooled.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Conn, Server, with_deadline};
use smolreq::{Client, StatusCode};

/// Hard bound of every test.
const LIMIT: Duration = Duration::from_secs(20);
const BODY_LEN: usize = 256 * 1024;

/// What the server does after reading a head that expects 100-continue.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// `100 Continue`, then it reads the body and answers 200.
    Continue,
    /// A final status at once (keep-alive, as far as the server says).
    Final(u16),
    /// Nothing: it reads the body whenever it comes and answers 200.
    Silence,
}

/// What the server saw of one request.
#[derive(Clone, Debug, Default)]
struct Seen {
    expect: Option<String>,
    /// Bytes of the request body received.
    body_bytes: usize,
    /// From the end of the head to the first body byte.
    body_after: Option<Duration>,
    /// For `Continue`: whether body bytes came before the 100 was sent.
    body_before_continue: bool,
    /// For a final answer: whether the client closed the connection
    /// (within a bound) without sending any body byte.
    closed_without_body: Option<bool>,
}

/// Reads one request head (through the empty line); what follows stays in
/// `buf`. `None` on EOF or error.
fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = buf.drain(..end + 4).collect();
            return Some(String::from_utf8_lossy(&head).into_owned());
        }
        let mut tmp = [0u8; 4096];
        match stream.read(&mut tmp) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
}

/// Whether bytes are waiting in `stream`, without waiting for any.
fn readable(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let ready = matches!(stream.peek(&mut [0u8; 1]), Ok(n) if n > 0);
    stream.set_nonblocking(false).unwrap();
    ready
}

fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Reads a body of `len` bytes (or chunked, when `len` is None) into
/// `seen`, noting when its first byte came.
fn read_body(stream: &mut TcpStream, buf: &mut Vec<u8>, len: Option<usize>, head_done: Instant, seen: &mut Seen) {
    let mut tmp = vec![0u8; 64 * 1024];
    let done = |buf: &[u8]| match len {
        Some(len) => buf.len() >= len,
        None => buf.ends_with(b"0\r\n\r\n"),
    };
    while !done(buf) {
        if !buf.is_empty() && seen.body_after.is_none() {
            seen.body_after = Some(head_done.elapsed());
        }
        match stream.read(&mut tmp) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
    if seen.body_after.is_none() && !buf.is_empty() {
        seen.body_after = Some(head_done.elapsed());
    }
    seen.body_bytes = buf.len();
}

/// A server answering every request as `answer` says (GETs with `ok`),
/// recording what it saw of each PUT.
fn server(answer: Answer) -> (Server, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let server = Server::start(move |conn: &mut Conn| {
        let mut buf = Vec::new();
        loop {
            let Some(head) = read_head(conn.stream(), &mut buf) else { return };
            let head_done = Instant::now();
            if head.starts_with("GET ") {
                conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                continue;
            }
            let len = header(&head, "content-length").map(|v| v.parse::<usize>().unwrap());
            let mut seen = Seen { expect: header(&head, "expect").map(str::to_owned), ..Seen::default() };
            match answer {
                Answer::Continue | Answer::Silence => {
                    if matches!(answer, Answer::Continue) {
                        std::thread::sleep(Duration::from_millis(50));
                        seen.body_before_continue = !buf.is_empty() || readable(conn.stream());
                        conn.write(b"HTTP/1.1 100 Continue\r\n\r\n");
                    }
                    read_body(conn.stream(), &mut buf, len, head_done, &mut seen);
                    buf.clear();
                    let reply = format!("received {}", seen.body_bytes);
                    log.lock().unwrap().push(seen);
                    conn.respond(200, &[], reply.as_bytes());
                }
                Answer::Final(status) => {
                    conn.respond(status, &[], b"no");
                    // The client must close without sending the body.
                    let closed = conn.wait_peer_close(Duration::from_secs(5));
                    seen.body_bytes = conn.buffered().len() + buf.len();
                    seen.closed_without_body = Some(closed && seen.body_bytes == 0);
                    log.lock().unwrap().push(seen);
                    return;
                }
            }
        }
    });
    (server, seen)
}

fn body() -> Vec<u8> {
    vec![b'b'; BODY_LEN]
}

#[test]
fn continue_then_body_and_the_connection_is_reused() {
    with_deadline(LIMIT, || {
        let (server, seen) = server(Answer::Continue);
        // A wait long enough that only the 100 can release the body in time.
        let client = Client::builder().expect_continue_timeout(Duration::from_secs(30)).build().unwrap();
        smol::block_on(async {
            for _ in 0..2 {
                let resp =
                    client.put(server.url("/up")).header("expect", "100-continue").body(body()).send().await.unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
                assert_eq!(resp.text().await.unwrap(), format!("received {BODY_LEN}"));
            }
        });
        let stats = client.pool_stats();
        assert_eq!((stats.opened, stats.reused, stats.leased), (1, 1, 0), "{stats:?}");
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].expect.as_deref(), Some("100-continue"));
        assert!(!seen[0].body_before_continue && !seen[1].body_before_continue, "the body did not wait: {seen:?}");
    });
}

#[test]
fn continue_then_chunked_reader_body() {
    with_deadline(LIMIT, || {
        let (server, seen) = server(Answer::Continue);
        let client = Client::builder().expect_continue_timeout(Duration::from_secs(30)).build().unwrap();
        smol::block_on(async {
            let reader = futures_lite::io::Cursor::new(body());
            let resp = client
                .put(server.url("/up"))
                .header("expect", "100-Continue")
                .body_reader(reader, None)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            resp.bytes().await.unwrap();
        });
        let seen = seen.lock().unwrap();
        assert!(seen[0].body_bytes > BODY_LEN, "the chunked body arrived: {:?}", seen[0]);
        assert!(!seen[0].body_before_continue, "the body did not wait: {:?}", seen[0]);
        assert_eq!(client.pool_stats().idle, 1);
    });
}

/// A final status instead of 100: that response, no body byte sent, and
/// the connection closed rather than pooled.
fn final_instead_of_continue(status: u16) {
    with_deadline(LIMIT, move || {
        let (server, seen) = server(Answer::Final(status));
        let client = Client::builder().expect_continue_timeout(Duration::from_secs(30)).build().unwrap();
        smol::block_on(async {
            let resp =
                client.put(server.url("/up")).header("expect", "100-continue").body(body()).send().await.unwrap();
            assert_eq!(resp.status().as_u16(), status);
            assert_eq!(resp.text().await.unwrap(), "no");
            let stats = client.pool_stats();
            assert_eq!((stats.opened, stats.leased, stats.idle), (1, 0, 0), "{stats:?}");
        });
        // The handler returns once it saw the client close (bounded).
        let until = Instant::now() + Duration::from_secs(10);
        while seen.lock().unwrap().is_empty() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "the server saw the request once");
        assert_eq!(seen[0].closed_without_body, Some(true), "{:?}", seen[0]);
        server.assert_no_handler_panics();
    });
}

#[test]
fn expectation_failed_417_sends_no_body() {
    final_instead_of_continue(417);
}

#[test]
fn payload_too_large_413_sends_no_body() {
    final_instead_of_continue(413);
}

#[test]
fn silence_sends_the_body_after_the_timeout() {
    with_deadline(LIMIT, || {
        let (server, seen) = server(Answer::Silence);
        let wait = Duration::from_millis(200);
        let client = Client::builder().expect_continue_timeout(wait).build().unwrap();
        smol::block_on(async {
            let resp =
                client.put(server.url("/up")).header("expect", "100-continue").body(body()).send().await.unwrap();
            assert_eq!(resp.text().await.unwrap(), format!("received {BODY_LEN}"));
        });
        let seen = seen.lock().unwrap();
        let after = seen[0].body_after.expect("the body arrived");
        // The client's wait starts once its head is written, a moment
        // before the server has read it: allow timer and scheduling slack
        // below, none of it is a performance bound.
        assert!(after + Duration::from_millis(30) >= wait, "the body came after {after:?}, before the {wait:?} wait");
        assert_eq!(client.pool_stats().idle, 1, "the full exchange keeps its connection");
    });
}

#[test]
fn default_wait_is_one_second() {
    with_deadline(LIMIT, || {
        let (server, seen) = server(Answer::Silence);
        let client = Client::new();
        smol::block_on(async {
            let resp =
                client.put(server.url("/up")).header("expect", "100-continue").body(body()).send().await.unwrap();
            assert_eq!(resp.text().await.unwrap(), format!("received {BODY_LEN}"));
        });
        let after = seen.lock().unwrap()[0].body_after.expect("the body arrived");
        assert!(after + Duration::from_millis(30) >= Duration::from_secs(1), "the body came after {after:?}");
    });
}

#[test]
fn without_the_header_the_body_is_not_held_back() {
    with_deadline(LIMIT, || {
        let (server, seen) = server(Answer::Silence);
        // Would hold the body for 10 s if the client waited.
        let client = Client::builder().expect_continue_timeout(Duration::from_secs(10)).build().unwrap();
        smol::block_on(async {
            let resp = client.put(server.url("/up")).body(body()).send().await.unwrap();
            assert_eq!(resp.text().await.unwrap(), format!("received {BODY_LEN}"));
        });
        let after = seen.lock().unwrap()[0].body_after.expect("the body arrived");
        assert!(after < Duration::from_secs(5), "the body was held back for {after:?}");
    });
}
