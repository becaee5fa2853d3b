//! The lease guarantee as a property: random sequences of requests, partial
//! reads, full reads and drops, over in-memory connections (through
//! `ClientBuilder::connector`), against a model of the pool.
//!
//! The server writes into every body which connection it came on and which
//! request of that connection it answers. So a full read checks that the
//! connection was the one the model predicts (the most recently released
//! idle one, or a new one), that it carried exactly the requests the model
//! says, and that no byte of one response was read as part of another.
//! After every step `pool_stats()` must equal the model: opened, reused,
//! idle, leased and discarded.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use futures_lite::future::block_on;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite};
use proptest::prelude::*;
use smolreq::{Client, PoolStats, Response};

/// How the server answers one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Content-Length, connection kept open.
    Keep,
    /// Chunked, connection kept open.
    Chunked,
    /// `Connection: close`, and the server closes after the response.
    Close,
    /// Content-Length, keep-alive announced, but the server closes the
    /// connection right after the response (a stale idle connection).
    Vanish,
    /// `Content-Length: 0`: the response is complete with its head.
    Empty,
}

#[derive(Clone, Debug)]
enum Op {
    Send {
        mode: Mode,
        pad: usize,
    },
    /// Read a few bytes of a live response (not all of it).
    ReadSome {
        index: usize,
        bytes: usize,
    },
    /// Read a live response to its end and check it.
    ReadAll {
        index: usize,
    },
    /// Drop a live response, read or not.
    Drop {
        index: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let mode = prop_oneof![
        4 => Just(Mode::Keep),
        2 => Just(Mode::Chunked),
        1 => Just(Mode::Close),
        1 => Just(Mode::Vanish),
        1 => Just(Mode::Empty),
    ];
    prop_oneof![
        3 => (mode, 0usize..40).prop_map(|(mode, pad)| Op::Send { mode, pad }),
        2 => (any::<usize>(), 1usize..8).prop_map(|(index, bytes)| Op::ReadSome { index, bytes }),
        3 => any::<usize>().prop_map(|index| Op::ReadAll { index }),
        1 => any::<usize>().prop_map(|index| Op::Drop { index }),
    ]
}

/// The server side of one in-memory connection.
#[derive(Default)]
struct Wire {
    /// Bytes the server sent and the client has not read yet.
    to_client: VecDeque<u8>,
    /// Bytes the client wrote since the last complete request.
    from_client: Vec<u8>,
    closed: bool,
    requests: usize,
    waker: Option<Waker>,
}

struct MemStream {
    id: usize,
    wire: Arc<Mutex<Wire>>,
}

/// The body the server sends for request `n` of connection `id`.
fn body_for(id: usize, n: usize, pad: usize) -> String {
    format!("conn {id} request {n};{}", ".".repeat(pad))
}

impl MemStream {
    /// A complete request head arrived (the client sends no bodies here):
    /// answer it as its path says (`/{mode}/{pad}`).
    fn answer(&self, wire: &mut Wire) {
        let mut slots = [httparse::EMPTY_HEADER; 16];
        let mut request = httparse::Request::new(&mut slots);
        let len = match request.parse(&wire.from_client) {
            Ok(httparse::Status::Complete(len)) => len,
            other => panic!("the client flushed a partial request: {other:?}"),
        };
        assert_eq!(len, wire.from_client.len(), "exactly one request per flush");
        let path = request.path.unwrap().to_owned();
        wire.from_client.clear();
        let mut parts = path.trim_start_matches('/').split('/');
        let mode = parts.next().unwrap();
        let pad: usize = parts.next().unwrap().parse().unwrap();
        let body = body_for(self.id, wire.requests, pad);
        wire.requests += 1;
        let response = match mode {
            "Keep" => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()),
            "Vanish" => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()),
            "Close" => format!("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len()),
            "Chunked" => {
                let (a, b) = body.split_at(body.len() / 2);
                let mut chunked = String::from("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
                for part in [a, b].into_iter().filter(|p| !p.is_empty()) {
                    chunked.push_str(&format!("{:x}\r\n{part}\r\n", part.len()));
                }
                chunked + "0\r\n\r\n"
            }
            "Empty" => "HTTP/1.1 204 No Content\r\n\r\n".to_owned(),
            other => panic!("unknown mode {other}"),
        };
        wire.to_client.extend(response.as_bytes());
        if mode == "Close" || mode == "Vanish" {
            wire.closed = true;
        }
    }
}

impl AsyncRead for MemStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut wire = self.wire.lock().unwrap();
        if wire.to_client.is_empty() {
            if wire.closed {
                return Poll::Ready(Ok(0));
            }
            wire.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        // Small reads, so heads and bodies arrive in pieces.
        let n = buf.len().min(wire.to_client.len()).min(7);
        for (slot, byte) in buf.iter_mut().zip(wire.to_client.drain(..n)) {
            *slot = byte;
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for MemStream {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut wire = self.wire.lock().unwrap();
        if wire.closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        wire.from_client.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut wire = self.wire.lock().unwrap();
        self.answer(&mut wire);
        if let Some(waker) = wire.waker.take() {
            waker.wake();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A model connection in the idle list.
#[derive(Clone, Copy, Debug)]
struct IdleConn {
    id: usize,
    /// The server closed it: the reuse probe must discard it.
    dead: bool,
}

/// A response the test holds.
struct Live {
    response: Response,
    conn: usize,
    request: usize,
    mode: Mode,
    pad: usize,
    read: Vec<u8>,
}

/// What the pool must look like.
#[derive(Debug, Default)]
struct Model {
    idle: Vec<IdleConn>,
    /// Requests each connection carried.
    requests: Vec<usize>,
    opened: u64,
    reused: u64,
    discarded: u64,
}

impl Model {
    /// A request checks out a connection: the newest live idle one, or a
    /// new one. Returns (connection, its request number).
    fn checkout(&mut self) -> (usize, usize) {
        while let Some(idle) = self.idle.pop() {
            if idle.dead {
                self.discarded += 1;
                continue;
            }
            self.reused += 1;
            self.requests[idle.id] += 1;
            return (idle.id, self.requests[idle.id] - 1);
        }
        self.opened += 1;
        self.requests.push(1);
        (self.requests.len() - 1, 0)
    }

    /// A response ended: cleanly and reusable (back to the idle list if
    /// there is room), or not (closed).
    fn end(&mut self, conn: usize, mode: Mode, clean: bool, max_idle: usize) {
        let reusable = clean && mode != Mode::Close;
        if reusable && self.idle.len() < max_idle {
            self.idle.push(IdleConn { id: conn, dead: mode == Mode::Vanish });
        } else {
            self.discarded += 1;
        }
    }

    fn stats(&self, leased: usize) -> PoolStats {
        let mut stats = PoolStats::default();
        stats.opened = self.opened;
        stats.reused = self.reused;
        stats.idle = self.idle.len();
        stats.leased = leased;
        stats.discarded = self.discarded;
        stats
    }
}

fn client(max_idle: usize) -> Client {
    let next_id = Arc::new(Mutex::new(0usize));
    Client::builder()
        .max_idle_per_host(max_idle)
        .max_connections_per_host(64)
        .max_drain_on_drop(0) // the model: a dropped response closes (tests/drain.rs)
        .redirect(false)
        .connector(move |_| {
            let mut next = next_id.lock().unwrap();
            let stream = MemStream { id: *next, wire: Arc::default() };
            *next += 1;
            async move { Ok(stream) }
        })
        .build()
        .unwrap()
}

fn expected_body(live: &Live) -> Vec<u8> {
    if live.mode == Mode::Empty { Vec::new() } else { body_for(live.conn, live.request, live.pad).into_bytes() }
}

fn run(max_idle: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let client = client(max_idle);
    let mut model = Model::default();
    let mut live: Vec<Live> = Vec::new();
    for op in ops {
        match op {
            Op::Send { mode, pad } => {
                if live.len() >= 6 {
                    continue;
                }
                let (conn, request) = model.checkout();
                let response = block_on(client.get(format!("http://pool.test/{mode:?}/{pad}")).send())
                    .map_err(|e| TestCaseError::fail(format!("send failed: {e}")))?;
                let entry = Live { response, conn, request, mode, pad, read: Vec::new() };
                if mode == Mode::Empty {
                    // Complete with its head: released at once.
                    model.end(conn, mode, true, max_idle);
                    let body = block_on(entry.response.bytes()).unwrap();
                    prop_assert!(body.is_empty());
                } else {
                    live.push(entry);
                }
            }
            Op::ReadSome { index, bytes } => {
                let len = live.len().max(1);
                let Some(entry) = live.get_mut(index % len) else { continue };
                let remaining = expected_body(entry).len() - entry.read.len();
                if bytes >= remaining {
                    continue; // that would be a full read
                }
                let mut buf = vec![0u8; bytes];
                block_on(entry.response.read_exact(&mut buf)).unwrap();
                entry.read.extend_from_slice(&buf);
            }
            Op::ReadAll { index } => {
                if live.is_empty() {
                    continue;
                }
                let mut entry = live.remove(index % live.len());
                let mut rest = Vec::new();
                block_on(entry.response.read_to_end(&mut rest)).unwrap();
                entry.read.extend_from_slice(&rest);
                let expected = expected_body(&entry);
                prop_assert_eq!(
                    String::from_utf8_lossy(&entry.read),
                    String::from_utf8_lossy(&expected),
                    "a response came on another connection than the model's, or mixed with another"
                );
                model.end(entry.conn, entry.mode, true, max_idle);
            }
            Op::Drop { index } => {
                if live.is_empty() {
                    continue;
                }
                let entry = live.remove(index % live.len());
                drop(entry);
                model.discarded += 1;
            }
        }
        prop_assert_eq!(client.pool_stats(), model.stats(live.len()));
    }
    drop(live);
    let stats = client.pool_stats();
    prop_assert_eq!(stats.leased, 0);
    prop_assert!(stats.idle <= max_idle);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn pool_keeps_the_lease_guarantee(max_idle in 0usize..4, ops in proptest::collection::vec(op(), 1..40)) {
        run(max_idle, ops)?;
    }
}
