//! A response that arrives while the request body is still being written
//! (issue 11, section 3): the server answers `413` + `Connection: close`
//! right after reading the head of a 32 MiB PUT, then closes (FIN), resets
//! (RST), or neither reads nor closes. The caller must get that 413 (not
//! `Broken pipe`), the server must see the request exactly once (no retry,
//! even on a reused connection, where an idempotent PUT with a replayable
//! body would otherwise be retried), and the connection must be closed,
//! never pooled, with no slot left leased.
//!
//! Why an RST never loses the 413 here: the server writes the 413 before it
//! resets, TCP delivers in order, and Linux keeps bytes that arrived before
//! a reset readable until they are read (the reset is reported after
//! them). So the client, whose write fails with `ECONNRESET` or `EPIPE`,
//! still finds the whole response in its socket, and must return it. A
//! reset that destroys a response before it arrives (a server that resets
//! without answering) is the retry rule's business (tests/retry.rs).

mod common;
#[cfg(feature = "native-tls")]
mod tls_util;

use std::io::Read;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::{Conn, Server, with_deadline};
use smolreq::{Client, RequestBuilder, StatusCode};

/// Hard bound of every test.
const LIMIT: Duration = Duration::from_secs(30);
/// Larger than every socket buffer on the path, so the client cannot
/// write it all into a server that stops reading.
const BODY_LEN: usize = 32 << 20;
const WARM: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nwarm";
const TOO_LARGE: &[u8] = b"HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: 9\r\n\r\ntoo large";

/// What the server does after answering the PUT's head with 413.
#[derive(Clone, Copy, Debug)]
enum After {
    /// Closes: FIN, then the socket is closed with the rest of the body
    /// unread (so the kernel answers what comes next with RST).
    Fin,
    /// Shuts down its write side (FIN) and keeps the socket open without
    /// reading.
    HalfClose,
    /// Resets at once (SO_LINGER 0).
    Reset,
    /// Neither reads nor closes: the socket stays open, unread.
    Stall,
}

/// How the PUT's body is given.
#[derive(Clone, Copy, Debug)]
enum BodyKind {
    Bytes,
    /// `body_reader` with a length: Content-Length framing.
    Sized,
    /// `body_reader` without one: chunked.
    Chunked,
}

struct EarlyServer {
    server: Server,
    /// PUT heads the server read.
    puts: Arc<AtomicUsize>,
    /// Lets a holding handler look for the client's close.
    release: Arc<AtomicBool>,
    /// Whether the client closed the held connection.
    peer_closed: mpsc::Receiver<bool>,
}

/// Reads one request head from `stream` (through the empty line); what
/// follows stays in `buf`. `None` on EOF or error.
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

/// Answers GETs with `warm` (keep-alive) and the first PUT, right after its
/// head, with 413; then acts as `after` says.
fn early_server(after: After) -> EarlyServer {
    let puts = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(AtomicBool::new(false));
    let (closed_tx, peer_closed) = mpsc::channel();
    let (p, r) = (puts.clone(), release.clone());
    let server = Server::start(move |conn: &mut Conn| {
        let mut buf = Vec::new();
        loop {
            let Some(head) = read_head(conn.stream(), &mut buf) else { return };
            if head.starts_with("GET ") {
                conn.write(WARM);
                continue;
            }
            p.fetch_add(1, Ordering::SeqCst);
            conn.write(TOO_LARGE);
            match after {
                After::Fin => conn.close(),
                After::Reset => conn.reset(),
                After::HalfClose | After::Stall => {
                    if matches!(after, After::HalfClose) {
                        let _ = conn.stream().shutdown(Shutdown::Write);
                    }
                    let until = Instant::now() + LIMIT;
                    while !r.load(Ordering::SeqCst) && Instant::now() < until {
                        thread::sleep(Duration::from_millis(5));
                    }
                    // Bounded: false if the client still holds the socket.
                    let _ = closed_tx.send(conn.wait_peer_close(Duration::from_secs(5)));
                }
            }
            return;
        }
    });
    EarlyServer { server, puts, release, peer_closed }
}

fn with_body(req: RequestBuilder, kind: BodyKind) -> RequestBuilder {
    let body = vec![b'x'; BODY_LEN];
    match kind {
        BodyKind::Bytes => req.body(body),
        BodyKind::Sized => req.body_reader(futures_lite::io::Cursor::new(body), Some(BODY_LEN as u64)),
        BodyKind::Chunked => req.body_reader(futures_lite::io::Cursor::new(body), None),
    }
}

/// The whole scenario; `reused` first sends a GET on the same connection
/// so the PUT goes out on a pooled one.
fn early_413(after: After, reused: bool, kind: BodyKind) {
    with_deadline(LIMIT, move || {
        let early = early_server(after);
        let url = early.server.url("/upload");
        let client = Client::new();
        smol::block_on(async {
            if reused {
                let warm = client.get(&url).send().await.expect("warm-up GET");
                assert_eq!(warm.text().await.unwrap(), "warm");
                assert_eq!(client.pool_stats().idle, 1);
            }
            let resp = with_body(client.put(&url), kind)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{after:?}: expected the 413, got {e:?}"));
            assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE, "{after:?}");
            assert_eq!(resp.text().await.unwrap(), "too large");

            assert_eq!(early.puts.load(Ordering::SeqCst), 1, "the PUT reached the server more than once");
            let stats = client.pool_stats();
            assert_eq!(stats.retried, 0, "{stats:?}");
            assert_eq!(stats.reused, u64::from(reused), "the PUT went out on the warm connection: {stats:?}");
            assert_eq!(stats.opened, 1, "{stats:?}");
            assert_eq!(stats.leased, 0, "{stats:?}");
            assert_eq!(stats.idle, 0, "a connection whose request was cut short was pooled: {stats:?}");

            // The next request opens a new connection.
            let next = client.get(&url).send().await.expect("GET after the 413");
            assert_eq!(next.text().await.unwrap(), "warm");
            let stats = client.pool_stats();
            assert_eq!((stats.opened, stats.reused, stats.leased), (2, u64::from(reused), 0), "{stats:?}");
        });
        assert_eq!(early.server.connections(), 2);
        early.release.store(true, Ordering::SeqCst);
        if matches!(after, After::HalfClose | After::Stall) {
            let closed = early.peer_closed.recv_timeout(Duration::from_secs(10));
            assert_eq!(closed, Ok(true), "the client kept the cut-short connection open");
        }
        early.server.assert_no_handler_panics();
    });
}

#[test]
fn fin_fresh_bytes() {
    early_413(After::Fin, false, BodyKind::Bytes);
}

#[test]
fn fin_fresh_reader() {
    early_413(After::Fin, false, BodyKind::Sized);
}

#[test]
fn fin_reused_bytes() {
    early_413(After::Fin, true, BodyKind::Bytes);
}

#[test]
fn fin_reused_reader() {
    early_413(After::Fin, true, BodyKind::Sized);
}

#[test]
fn half_close_fresh_bytes() {
    early_413(After::HalfClose, false, BodyKind::Bytes);
}

#[test]
fn half_close_reused_reader() {
    early_413(After::HalfClose, true, BodyKind::Sized);
}

#[test]
fn reset_fresh_bytes() {
    early_413(After::Reset, false, BodyKind::Bytes);
}

#[test]
fn reset_fresh_reader() {
    early_413(After::Reset, false, BodyKind::Sized);
}

#[test]
fn reset_reused_bytes() {
    early_413(After::Reset, true, BodyKind::Bytes);
}

#[test]
fn reset_reused_reader() {
    early_413(After::Reset, true, BodyKind::Sized);
}

#[test]
fn stall_fresh_bytes() {
    early_413(After::Stall, false, BodyKind::Bytes);
}

#[test]
fn stall_fresh_reader() {
    early_413(After::Stall, false, BodyKind::Sized);
}

#[test]
fn stall_reused_bytes() {
    early_413(After::Stall, true, BodyKind::Bytes);
}

#[test]
fn stall_reused_reader() {
    early_413(After::Stall, true, BodyKind::Sized);
}

#[test]
fn chunked_fin_reused() {
    early_413(After::Fin, true, BodyKind::Chunked);
}

#[test]
fn chunked_reset_fresh() {
    early_413(After::Reset, false, BodyKind::Chunked);
}

#[test]
fn chunked_stall_reused() {
    early_413(After::Stall, true, BodyKind::Chunked);
}

/// The same over TLS: reading while a TLS write waits must not upset the
/// TLS layer. The body is chunked, so the TLS test server reads only the
/// head (it skips Content-Length bodies), then answers and stalls.
#[cfg(feature = "native-tls")]
fn tls_stall(reused: bool) {
    use tls_util::{Ca, TlsConfig, TlsServer};
    with_deadline(LIMIT, move || {
        let ca = Ca::new("early root");
        let puts = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(AtomicBool::new(false));
        let (closed_tx, peer_closed) = mpsc::channel();
        let (p, r) = (puts.clone(), release.clone());
        let server = TlsServer::start(TlsConfig::new(ca.server_cert(&["localhost"])), move |conn| {
            while let Some(req) = conn.read_request() {
                if req.method == "GET" {
                    conn.respond(200, &[], b"warm");
                    continue;
                }
                p.fetch_add(1, Ordering::SeqCst);
                conn.write_raw(TOO_LARGE);
                let until = Instant::now() + LIMIT;
                while !r.load(Ordering::SeqCst) && Instant::now() < until {
                    thread::sleep(Duration::from_millis(5));
                }
                let _ = closed_tx.send(conn.wait_for_eof(Duration::from_secs(5)).is_ok());
                return;
            }
        });
        let cert = smolreq::Certificate::from_pem(ca.cert_pem.as_bytes()).unwrap();
        let client = Client::builder().add_root_certificate(cert).build().unwrap();
        let url = server.url("/upload");
        smol::block_on(async {
            if reused {
                let warm = client.get(&url).send().await.expect("warm-up GET");
                assert_eq!(warm.text().await.unwrap(), "warm");
            }
            let resp = with_body(client.put(&url), BodyKind::Chunked).send().await.expect("the 413 over TLS");
            assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
            assert_eq!(resp.text().await.unwrap(), "too large");
        });
        let stats = client.pool_stats();
        assert_eq!((stats.opened, stats.reused, stats.leased, stats.idle), (1, u64::from(reused), 0, 0), "{stats:?}");
        assert_eq!(puts.load(Ordering::SeqCst), 1);
        release.store(true, Ordering::SeqCst);
        assert_eq!(peer_closed.recv_timeout(Duration::from_secs(10)), Ok(true), "the client kept the connection");
    });
}

#[test]
#[cfg(feature = "native-tls")]
fn tls_stall_fresh() {
    tls_stall(false);
}

#[test]
#[cfg(feature = "native-tls")]
fn tls_stall_reused() {
    tls_stall(true);
}
