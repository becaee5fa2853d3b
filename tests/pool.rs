//! Integration tests of the connection pool: reuse, discard on early drop,
//! stale and reset idle connections, garbage after a response, per-host caps
//! with a FIFO queue, idle limits and expiry, cancellation at each await
//! point, and dropping the client while a body is still being read.
//!
//! Every test runs under `common::with_deadline`, so a hang fails the test
//! instead of stalling the suite.

mod common;

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use futures_lite::{AsyncReadExt, future};
use smol::Timer;
use smolreq::{Client, ErrorKind};

/// Hard bound of every test.
const LIMIT: Duration = Duration::from_secs(10);

fn guarded(f: impl FnOnce() + Send + 'static) {
    with_deadline(LIMIT, f)
}

/// The body the path servers send for a request target.
fn body_for(path: &str) -> String {
    format!("response to {path}")
}

/// A keep-alive server answering every request with `body_for(target)`.
fn path_server() -> Server {
    Server::start(|conn| {
        while let Some(req) = conn.read_request() {
            conn.respond(200, &[], body_for(&req.target).as_bytes());
        }
    })
}

/// A keep-alive server answering every request with `body`.
fn body_server(body: Vec<u8>) -> Server {
    Server::start(move |conn| {
        while let Some(req) = conn.read_request() {
            let _ = req;
            conn.respond(200, &[], &body);
        }
    })
}

/// `n` bytes of a recognisable pattern.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

async fn get_text(client: &Client, url: String) -> smolreq::Result<String> {
    client.get(url).send().await?.text().await
}

/// Polls `cond` (with short sleeps) until it holds; panics after 5 s.
async fn until(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(5), "timed out waiting for {what}");
        Timer::after(Duration::from_millis(5)).await;
    }
}

/// Blocks (the calling thread) until `cond` holds; panics after 5 s.
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(5), "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// Targets of the requests the server received, in order.
fn targets(server: &Server) -> Vec<String> {
    server.received().into_iter().map(|r| r.target).collect()
}

/// Connection indices on which `target` was received, in order.
fn conns_of(server: &Server, target: &str) -> Vec<usize> {
    server.received().into_iter().filter(|r| r.target == target).map(|r| r.conn_index).collect()
}

fn cap1() -> Client {
    Client::builder().max_connections_per_host(1).build().unwrap()
}

// ---------------------------------------------------------------------------
// Reuse and discard
// ---------------------------------------------------------------------------

#[test]
fn reuse_three_sequential_gets_share_one_connection() {
    guarded(|| {
        let server = path_server();
        let client = Client::new();
        smol::block_on(async {
            for i in 0..3 {
                let path = format!("/r{i}");
                assert_eq!(get_text(&client, server.url(&path)).await.unwrap(), body_for(&path));
            }
        });
        assert_eq!(server.connections(), 1);
        assert_eq!(server.requests_per_connection(), vec![3]);
        let s = client.pool_stats();
        assert_eq!((s.opened, s.reused, s.idle, s.leased), (1, 2, 1, 0), "{s:?}");
        assert_eq!((s.retried, s.discarded), (0, 0), "{s:?}");
    });
}

#[test]
fn body_dropped_half_read_closes_connection() {
    guarded(|| {
        let body = pattern(64 * 1024);
        let server = body_server(body.clone());
        let client = Client::builder().max_drain_on_drop(0).build().unwrap(); // no drain on drop (tests/drain.rs)
        smol::block_on(async {
            let mut resp = client.get(server.url("/big")).send().await.unwrap();
            let mut buf = vec![0u8; 1000];
            let mut got = 0;
            while got < buf.len() {
                let n = resp.read(&mut buf[got..]).await.unwrap();
                assert!(n > 0, "unexpected end of body");
                got += n;
            }
            assert_eq!(&buf[..], &body[..1000]);
            assert_eq!(client.pool_stats().leased, 1);
            drop(resp);
            let s = client.pool_stats();
            assert_eq!((s.leased, s.idle, s.discarded), (0, 0, 1), "{s:?}");
        });
        // The server sees the client close the connection (its FIN or RST,
        // not the harness read timeout).
        server.wait_peer_closed(1);
        smol::block_on(async {
            let resp = client.get(server.url("/big")).send().await.unwrap();
            assert_eq!(resp.bytes().await.unwrap(), body);
        });
        assert_eq!(server.connections(), 2);
        assert_eq!(server.requests_per_connection(), vec![1, 1]);
        let s = client.pool_stats();
        assert_eq!((s.opened, s.reused, s.leased, s.idle, s.discarded), (2, 0, 0, 1, 1), "{s:?}");
    });
}

#[test]
fn body_not_read_at_all_closes_connection() {
    guarded(|| {
        // A small body: it is entirely in the client's buffer when dropped,
        // and the connection must still be closed, not salvaged.
        let server = path_server();
        let client = Client::builder().max_drain_on_drop(0).build().unwrap(); // no drain on drop (tests/drain.rs)
        smol::block_on(async {
            let resp = client.get(server.url("/unread")).send().await.unwrap();
            assert_eq!(client.pool_stats().leased, 1);
            drop(resp);
            let s = client.pool_stats();
            assert_eq!((s.leased, s.idle, s.discarded), (0, 0, 1), "{s:?}");
        });
        server.wait_peer_closed(1);
        smol::block_on(async {
            assert_eq!(get_text(&client, server.url("/next")).await.unwrap(), body_for("/next"));
        });
        assert_eq!(server.requests_per_connection(), vec![1, 1]);
        let s = client.pool_stats();
        assert_eq!((s.opened, s.reused, s.leased, s.idle, s.discarded), (2, 0, 0, 1, 1), "{s:?}");
    });
}

#[test]
fn unread_response_dropped_while_another_request_is_sent_never_desyncs() {
    guarded(|| {
        let server = path_server();
        let client = Client::builder().max_drain_on_drop(0).build().unwrap(); // no drain on drop (tests/drain.rs)
        smol::block_on(async {
            let first = client.get(server.url("/one")).send().await.unwrap();
            // Start the second request while the first still holds its
            // connection, drop the first response mid-flight, then finish.
            let mut second = pin!(client.get(server.url("/two")).send());
            let early = future::poll_once(second.as_mut()).await;
            drop(first);
            let second = match early {
                Some(done) => done.unwrap(),
                None => second.await.unwrap(),
            };
            assert_eq!(second.text().await.unwrap(), body_for("/two"));
            assert_eq!(get_text(&client, server.url("/three")).await.unwrap(), body_for("/three"));
        });
        // /one's connection was closed; /two and /three share the second one.
        server.wait_peer_closed(1);
        assert_eq!(server.peer_closed(), 1, "only /one's connection is closed");
        assert_eq!(conns_of(&server, "/one"), vec![0]);
        assert_eq!(conns_of(&server, "/two"), vec![1]);
        assert_eq!(conns_of(&server, "/three"), vec![1]);
        let s = client.pool_stats();
        assert_eq!((s.opened, s.reused, s.leased, s.discarded), (2, 1, 0, 1), "{s:?}");
    });
}

#[test]
fn concurrent_mixed_drops_never_desync() {
    guarded(|| {
        // Bodies larger than one read, each naming its request: any desync
        // shows up as a wrong body.
        let server = Server::start(|conn| {
            while let Some(req) = conn.read_request() {
                conn.respond(200, &[], body_for(&req.target).repeat(200).as_bytes());
            }
        });
        let client = Client::builder().max_connections_per_host(3).build().unwrap();
        let ex = smol::Executor::new();
        let tasks: Vec<_> = (0..6)
            .map(|t| {
                let client = client.clone();
                let base = server.url("");
                ex.spawn(async move {
                    let mut full = 0;
                    for i in 0..15 {
                        let path = format!("/t{t}-{i}");
                        let mut resp = client.get(format!("{base}{path}")).send().await.unwrap();
                        match i % 3 {
                            0 => {
                                let text = resp.text().await.unwrap();
                                assert_eq!(text, body_for(&path).repeat(200), "desync on {path}");
                                full += 1;
                            }
                            1 => drop(resp),
                            _ => {
                                let mut buf = [0u8; 7];
                                let n = resp.read(&mut buf).await.unwrap();
                                assert_eq!(&buf[..n], &body_for(&path).as_bytes()[..n], "desync on {path}");
                                drop(resp);
                            }
                        }
                    }
                    full
                })
            })
            .collect();
        let full: usize = smol::block_on(ex.run(async {
            let mut full = 0;
            for task in tasks {
                full += task.await;
            }
            full
        }));
        assert_eq!(full, 6 * 5);
        assert_eq!(server.requests(), 6 * 15);
        let s = client.pool_stats();
        assert_eq!(s.leased, 0, "{s:?}");
        assert_eq!(s.retried, 0, "{s:?}");
        // Every connection dropped with its body was closed; the others
        // stay open while the client lives, and close with it.
        server.wait_peer_closed(s.discarded as usize);
        assert_eq!(server.peer_closed() as u64, s.discarded, "{s:?}");
        drop(client);
        server.wait_peer_closed(server.connections());
    });
}

// ---------------------------------------------------------------------------
// Connections closed, reset or polluted by the server
// ---------------------------------------------------------------------------

#[test]
fn stale_idle_connection_closed_by_server_is_replaced() {
    guarded(|| {
        // Each connection answers one request, then FIN after a short delay.
        let server = Server::start(|conn| {
            if let Some(req) = conn.read_request() {
                conn.respond(200, &[], body_for(&req.target).as_bytes());
                thread::sleep(Duration::from_millis(100));
                conn.close();
            }
        });
        let client = Client::new();
        smol::block_on(async {
            assert_eq!(get_text(&client, server.url("/1")).await.unwrap(), body_for("/1"));
        });
        server.wait_closed(1);
        thread::sleep(Duration::from_millis(50));
        smol::block_on(async {
            assert_eq!(get_text(&client, server.url("/2")).await.unwrap(), body_for("/2"));
        });
        assert_eq!(server.connections(), 2);
        assert_eq!(conns_of(&server, "/2"), vec![1]);
        let s = client.pool_stats();
        // The server's FIN arrived while the connection was idle (the
        // server counts the close after sending it, and 50 ms passed): the
        // probe before reuse must find it, so /2 is never sent on the stale
        // connection and nothing needs a retry.
        assert_eq!((s.reused, s.retried), (0, 0), "the probe missed a closed idle connection: {s:?}");
        assert_eq!((s.opened, s.discarded, s.leased, s.idle), (2, 1, 0, 1), "{s:?}");
    });
}

#[test]
fn probe_discards_idle_connection_closed_by_server_without_retry() {
    guarded(|| {
        let server = Server::start(|conn| {
            if let Some(req) = conn.read_request() {
                conn.respond(200, &[], body_for(&req.target).as_bytes());
                conn.close();
            }
        });
        let client = Client::new();
        smol::block_on(async {
            assert_eq!(get_text(&client, server.url("/1")).await.unwrap(), body_for("/1"));
        });
        // The FIN has been sent (and, on loopback, delivered) before the
        // server counts the connection closed.
        server.wait_closed(1);
        thread::sleep(Duration::from_millis(50));
        smol::block_on(async {
            assert_eq!(get_text(&client, server.url("/2")).await.unwrap(), body_for("/2"));
        });
        let s = client.pool_stats();
        assert_eq!((s.opened, s.reused, s.retried, s.discarded), (2, 0, 0, 1), "{s:?}");
    });
}

#[test]
fn probe_discards_idle_connection_reset_by_server() {
    guarded(|| {
        let server = Server::start(|conn| {
            if let Some(req) = conn.read_request() {
                conn.respond(200, &[], body_for(&req.target).as_bytes());
                if conn.index() == 0 {
                    thread::sleep(Duration::from_millis(50));
                    conn.reset();
                    return;
                }
            }
            while let Some(req) = conn.read_request() {
                conn.respond(200, &[], body_for(&req.target).as_bytes());
            }
        });
        let client = Client::new();
        smol::block_on(async {
            assert_eq!(get_text(&client, server.url("/1")).await.unwrap(), body_for("/1"));
        });
        server.wait_closed(1);
        thread::sleep(Duration::from_millis(50));
        smol::block_on(async {
            assert_eq!(get_text(&client, server.url("/2")).await.unwrap(), body_for("/2"));
        });
        assert_eq!(conns_of(&server, "/2"), vec![1]);
        let s = client.pool_stats();
        assert_eq!((s.opened, s.reused, s.retried, s.discarded), (2, 0, 0, 1), "{s:?}");
    });
}

#[test]
fn rst_on_reuse_is_retried_on_fresh_connection() {
    guarded(|| {
        // Connection 0 answers one request and resets when the second
        // arrives; later connections behave.
        let server = Server::start(|conn| {
            if conn.index() == 0 {
                if let Some(req) = conn.read_request() {
                    conn.respond(200, &[], body_for(&req.target).as_bytes());
                }
                if conn.read_request().is_some() {
                    conn.reset();
                }
                return;
            }
            while let Some(req) = conn.read_request() {
                conn.respond(200, &[], body_for(&req.target).as_bytes());
            }
        });
        let client = Client::new();
        smol::block_on(async {
            assert_eq!(get_text(&client, server.url("/1")).await.unwrap(), body_for("/1"));
            assert_eq!(get_text(&client, server.url("/2")).await.unwrap(), body_for("/2"));
        });
        assert_eq!(conns_of(&server, "/2"), vec![0, 1]);
        let s = client.pool_stats();
        assert_eq!((s.opened, s.reused, s.retried, s.leased), (2, 1, 1, 0), "{s:?}");
    });
}

/// Connection 0 answers one request, then reads the next one and closes
/// (FIN) without answering; later connections behave.
fn fin_after_second_request_server() -> Server {
    Server::start(|conn| {
        if conn.index() == 0 {
            if let Some(req) = conn.read_request() {
                conn.respond(200, &[], body_for(&req.target).as_bytes());
            }
            if conn.read_request().is_some() {
                conn.close();
            }
            return;
        }
        while let Some(req) = conn.read_request() {
            conn.respond(200, &[], body_for(&req.target).as_bytes());
        }
    })
}

#[test]
fn fin_after_request_read_get_is_retried_once() {
    guarded(|| {
        let server = fin_after_second_request_server();
        let client = Client::new();
        smol::block_on(async {
            assert_eq!(get_text(&client, server.url("/1")).await.unwrap(), body_for("/1"));
            assert_eq!(get_text(&client, server.url("/2")).await.unwrap(), body_for("/2"));
        });
        assert_eq!(conns_of(&server, "/2"), vec![0, 1]);
        let s = client.pool_stats();
        assert_eq!((s.opened, s.reused, s.retried, s.leased), (2, 1, 1, 0), "{s:?}");
    });
}

#[test]
fn fin_after_request_read_post_is_not_resent() {
    guarded(|| {
        let server = fin_after_second_request_server();
        let client = Client::new();
        smol::block_on(async {
            assert_eq!(get_text(&client, server.url("/1")).await.unwrap(), body_for("/1"));
            let err = client.post(server.url("/post")).body("payload").send().await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Io, "{err:?}");
        });
        // Give a (wrong) resend time to show up.
        thread::sleep(Duration::from_millis(200));
        let posts: Vec<_> = server.received().into_iter().filter(|r| r.method == "POST").collect();
        assert_eq!(posts.len(), 1, "the POST must be sent exactly once");
        assert_eq!(posts[0].body, b"payload");
        assert_eq!(server.connections(), 1);
        let s = client.pool_stats();
        assert_eq!((s.opened, s.retried, s.leased), (1, 0, 0), "{s:?}");
    });
}

#[test]
fn connection_close_response_is_not_reused() {
    guarded(|| {
        // The server says `Connection: close` but keeps the socket open and
        // would answer more requests: only the client can avoid reuse.
        let server = Server::start(|conn| {
            while let Some(req) = conn.read_request() {
                conn.respond(200, &[("Connection", "close")], body_for(&req.target).as_bytes());
            }
        });
        let client = Client::new();
        smol::block_on(async {
            assert_eq!(get_text(&client, server.url("/1")).await.unwrap(), body_for("/1"));
            assert_eq!(get_text(&client, server.url("/2")).await.unwrap(), body_for("/2"));
        });
        assert_eq!(server.requests_per_connection(), vec![1, 1]);
        // The client closed both sockets.
        server.wait_peer_closed(2);
        let s = client.pool_stats();
        assert_eq!((s.opened, s.reused, s.idle, s.leased), (2, 0, 0, 0), "{s:?}");
    });
}

/// A complete response that must never be taken for the next one.
fn evil_response() -> Vec<u8> {
    response_bytes(200, &[], b"EVIL! not your response")
}

#[test]
fn garbage_in_same_write_after_response_is_never_read() {
    guarded(|| {
        let server = Server::start(|conn| {
            if conn.index() == 0
                && let Some(req) = conn.read_request()
            {
                let mut bytes = response_bytes(200, &[], body_for(&req.target).as_bytes());
                bytes.extend_from_slice(&evil_response());
                conn.write(&bytes);
            }
            while let Some(req) = conn.read_request() {
                conn.respond(200, &[], body_for(&req.target).as_bytes());
            }
        });
        let client = Client::new();
        smol::block_on(async {
            assert_eq!(get_text(&client, server.url("/1")).await.unwrap(), body_for("/1"));
            assert_eq!(get_text(&client, server.url("/2")).await.unwrap(), body_for("/2"));
        });
        assert_eq!(server.requests_per_connection(), vec![1, 1]);
        // The polluted connection was closed, not kept idle.
        server.wait_peer_closed(1);
        let s = client.pool_stats();
        assert_eq!((s.opened, s.reused, s.discarded, s.leased), (2, 0, 1, 0), "{s:?}");
    });
}

#[test]
fn garbage_in_later_write_after_response_is_never_read() {
    guarded(|| {
        let garbage_sent = Arc::new(AtomicBool::new(false));
        let flag = garbage_sent.clone();
        let server = Server::start(move |conn| {
            if conn.index() == 0
                && let Some(req) = conn.read_request()
            {
                conn.respond(200, &[], body_for(&req.target).as_bytes());
                thread::sleep(Duration::from_millis(50));
                conn.write(&evil_response());
                flag.store(true, Ordering::SeqCst);
            }
            while let Some(req) = conn.read_request() {
                conn.respond(200, &[], body_for(&req.target).as_bytes());
            }
        });
        let client = Client::new();
        smol::block_on(async {
            assert_eq!(get_text(&client, server.url("/1")).await.unwrap(), body_for("/1"));
        });
        wait_for("garbage written", || garbage_sent.load(Ordering::SeqCst));
        thread::sleep(Duration::from_millis(100));
        smol::block_on(async {
            assert_eq!(get_text(&client, server.url("/2")).await.unwrap(), body_for("/2"));
        });
        assert_eq!(server.requests_per_connection(), vec![1, 1]);
        server.wait_peer_closed(1);
        let s = client.pool_stats();
        assert_eq!((s.opened, s.reused, s.retried, s.discarded), (2, 0, 0, 1), "{s:?}");
    });
}

// ---------------------------------------------------------------------------
// Per-host cap, FIFO waiters, idle limit, idle expiry
// ---------------------------------------------------------------------------

#[test]
fn per_host_cap_limits_concurrent_connections() {
    guarded(|| {
        let current = Arc::new(AtomicUsize::new(0));
        let high = Arc::new(AtomicUsize::new(0));
        let (cur, hi) = (current.clone(), high.clone());
        let server = Server::start(move |conn| {
            let now = cur.fetch_add(1, Ordering::SeqCst) + 1;
            hi.fetch_max(now, Ordering::SeqCst);
            while let Some(req) = conn.read_request() {
                thread::sleep(Duration::from_millis(30));
                conn.respond(200, &[], body_for(&req.target).as_bytes());
            }
            cur.fetch_sub(1, Ordering::SeqCst);
        });
        let client = Client::builder().max_connections_per_host(2).build().unwrap();
        let ex = smol::Executor::new();
        let tasks: Vec<_> = (0..10)
            .map(|i| {
                let client = client.clone();
                let path = format!("/c{i}");
                let url = server.url(&path);
                ex.spawn(async move { (path, get_text(&client, url).await) })
            })
            .collect();
        let results = smol::block_on(ex.run(async {
            let mut out = Vec::new();
            for task in tasks {
                out.push(task.await);
            }
            out
        }));
        for (path, result) in results {
            assert_eq!(result.unwrap(), body_for(&path));
        }
        assert!(high.load(Ordering::SeqCst) <= 2, "high-water mark {} > 2", high.load(Ordering::SeqCst));
        assert!(server.connections() <= 2, "connections {}", server.connections());
        assert_eq!(server.requests(), 10);
        let s = client.pool_stats();
        assert!(s.opened <= 2, "{s:?}");
        assert_eq!(s.leased, 0, "{s:?}");
    });
}

/// With a cap of 1, a holder keeps the only connection while A..E queue up
/// in order; they must be served in that order.
fn fifo_order(connection_close: bool) {
    let server = Server::start(move |conn| {
        while let Some(req) = conn.read_request() {
            if connection_close {
                conn.respond(200, &[("Connection", "close")], body_for(&req.target).as_bytes());
                conn.close();
                return;
            }
            conn.respond(200, &[], body_for(&req.target).as_bytes());
        }
    });
    let client = cap1();
    let ex = smol::Executor::new();
    let got_head = Arc::new(AtomicBool::new(false));
    let (go_tx, go_rx) = smol::channel::bounded::<()>(1);
    let names = ["/a", "/b", "/c", "/d", "/e"];
    smol::block_on(ex.run(async {
        let holder = {
            let client = client.clone();
            let url = server.url("/hold");
            let got_head = got_head.clone();
            ex.spawn(async move {
                let resp = client.get(url).send().await?;
                got_head.store(true, Ordering::SeqCst);
                let _ = go_rx.recv().await;
                resp.text().await
            })
        };
        until("holder response head", || got_head.load(Ordering::SeqCst)).await;
        let mut waiters = Vec::new();
        for name in names {
            let client = client.clone();
            let url = server.url(name);
            waiters.push(ex.spawn(async move { get_text(&client, url).await }));
            // Let the new task reach the queue before the next one starts.
            Timer::after(Duration::from_millis(30)).await;
        }
        assert_eq!(server.requests(), 1, "waiters must not be served while the holder has the slot");
        assert_eq!(client.pool_stats().leased, 1);
        go_tx.send(()).await.unwrap();
        assert_eq!(holder.await.unwrap(), body_for("/hold"));
        for (name, waiter) in names.iter().zip(waiters) {
            assert_eq!(waiter.await.unwrap(), body_for(name));
        }
    }));
    assert_eq!(targets(&server), ["/hold", "/a", "/b", "/c", "/d", "/e"]);
    assert_eq!(client.pool_stats().leased, 0);
}

#[test]
fn waiters_are_served_fifo_when_connection_is_released() {
    guarded(|| fifo_order(false));
}

#[test]
fn waiters_are_served_fifo_when_connection_is_closed() {
    guarded(|| fifo_order(true));
}

#[test]
fn max_idle_per_host_closes_surplus_connection() {
    guarded(|| {
        // Each connection holds its first answer until two requests have
        // arrived, so both requests are in flight at once.
        let arrived = Arc::new(AtomicUsize::new(0));
        let counter = arrived.clone();
        let server = Server::start(move |conn| {
            let mut first = true;
            while let Some(req) = conn.read_request() {
                if first {
                    first = false;
                    counter.fetch_add(1, Ordering::SeqCst);
                    let start = Instant::now();
                    while counter.load(Ordering::SeqCst) < 2 && start.elapsed() < Duration::from_secs(5) {
                        thread::sleep(Duration::from_millis(5));
                    }
                }
                conn.respond(200, &[], body_for(&req.target).as_bytes());
            }
        });
        let client = Client::builder().max_idle_per_host(1).build().unwrap();
        smol::block_on(async {
            let (a, b) = future::zip(get_text(&client, server.url("/a")), get_text(&client, server.url("/b"))).await;
            assert_eq!(a.unwrap(), body_for("/a"));
            assert_eq!(b.unwrap(), body_for("/b"));
        });
        assert_eq!(arrived.load(Ordering::SeqCst), 2, "both requests were in flight together");
        assert_eq!(server.requests_per_connection(), vec![1, 1]);
        server.wait_peer_closed(1);
        let s = client.pool_stats();
        assert_eq!((s.opened, s.idle, s.leased, s.discarded), (2, 1, 0, 1), "{s:?}");
        thread::sleep(Duration::from_millis(100));
        assert_eq!(server.peer_closed(), 1, "only the surplus connection is closed");
    });
}

#[test]
fn idle_timeout_expires_connection() {
    guarded(|| {
        let server = path_server();
        let client = Client::builder().idle_timeout(Duration::from_millis(100)).build().unwrap();
        smol::block_on(async {
            assert_eq!(get_text(&client, server.url("/1")).await.unwrap(), body_for("/1"));
            Timer::after(Duration::from_millis(400)).await;
            assert_eq!(get_text(&client, server.url("/2")).await.unwrap(), body_for("/2"));
        });
        // The server kept connection 0 open: only expiry explains a new one,
        // and the client closed the expired one.
        assert_eq!(server.requests_per_connection(), vec![1, 1]);
        server.wait_peer_closed(1);
        let s = client.pool_stats();
        assert_eq!((s.opened, s.reused, s.retried, s.discarded, s.idle), (2, 0, 0, 1, 1), "{s:?}");
    });
}

fn keep_alive_server(value: &'static str) -> Server {
    Server::start(move |conn| {
        while let Some(req) = conn.read_request() {
            conn.respond(200, &[("Keep-Alive", value)], body_for(&req.target).as_bytes());
        }
    })
}

#[test]
fn keep_alive_timeout_header_shortens_idle_timeout() {
    guarded(|| {
        let server = keep_alive_server("timeout=1");
        let client = Client::builder().idle_timeout(Duration::from_secs(90)).build().unwrap();
        smol::block_on(async {
            assert_eq!(get_text(&client, server.url("/1")).await.unwrap(), body_for("/1"));
            Timer::after(Duration::from_millis(1300)).await;
            assert_eq!(get_text(&client, server.url("/2")).await.unwrap(), body_for("/2"));
        });
        assert_eq!(server.requests_per_connection(), vec![1, 1]);
        server.wait_peer_closed(1);
        let s = client.pool_stats();
        assert_eq!((s.opened, s.reused, s.retried, s.discarded), (2, 0, 0, 1), "{s:?}");
    });
}

#[test]
fn keep_alive_timeout_header_still_allows_reuse_within_it() {
    guarded(|| {
        let server = keep_alive_server("timeout=30, max=100");
        let client = Client::new();
        smol::block_on(async {
            assert_eq!(get_text(&client, server.url("/1")).await.unwrap(), body_for("/1"));
            assert_eq!(get_text(&client, server.url("/2")).await.unwrap(), body_for("/2"));
        });
        assert_eq!(server.requests_per_connection(), vec![2]);
        assert_eq!(client.pool_stats().reused, 1);
    });
}

#[test]
fn keep_alive_timeout_header_never_extends_idle_timeout() {
    guarded(|| {
        let server = keep_alive_server("timeout=60");
        let client = Client::builder().idle_timeout(Duration::from_millis(100)).build().unwrap();
        smol::block_on(async {
            assert_eq!(get_text(&client, server.url("/1")).await.unwrap(), body_for("/1"));
            Timer::after(Duration::from_millis(400)).await;
            assert_eq!(get_text(&client, server.url("/2")).await.unwrap(), body_for("/2"));
        });
        assert_eq!(server.requests_per_connection(), vec![1, 1]);
        server.wait_peer_closed(1);
        let s = client.pool_stats();
        assert_eq!((s.opened, s.reused, s.retried), (2, 0, 0), "{s:?}");
    });
}

// ---------------------------------------------------------------------------
// Cancellation at each await point
// ---------------------------------------------------------------------------

#[test]
fn cancel_while_queued_for_slot_frees_nothing_and_leaks_nothing() {
    guarded(|| {
        let server = path_server();
        let client = cap1();
        smol::block_on(async {
            let held = client.get(server.url("/held")).send().await.unwrap();
            {
                let mut queued = pin!(client.get(server.url("/dropped")).send());
                assert!(future::poll_once(queued.as_mut()).await.is_none(), "must wait for the slot");
                // Stay queued a while, then cancel.
                let out = future::or(async { Some(queued.await) }, async {
                    Timer::after(Duration::from_millis(100)).await;
                    None
                })
                .await;
                assert!(out.is_none(), "a queued request cannot complete while the slot is held");
            }
            // The cancelled waiter must not have given away the held slot:
            // another request still has to wait. (Only the outcome is kept:
            // no lease may be alive if an assertion below unwinds.)
            let over_cap = future::or(
                async { Some(client.get(server.url("/over-cap")).send().await.map(|resp| resp.status())) },
                async {
                    Timer::after(Duration::from_millis(200)).await;
                    None
                },
            )
            .await;
            assert_eq!(held.text().await.unwrap(), body_for("/held"));
            assert!(over_cap.is_none(), "cap of 1 exceeded after a cancelled waiter: {over_cap:?}");
            assert_eq!(server.connections(), 1);
            let s = client.pool_stats();
            assert_eq!((s.leased, s.idle), (0, 1), "{s:?}");
            assert_eq!(get_text(&client, server.url("/third")).await.unwrap(), body_for("/third"));
        });
        assert_eq!(targets(&server), ["/held", "/third"]);
        assert_eq!(server.requests_per_connection(), vec![2]);
        assert_eq!(client.pool_stats().leased, 0);
    });
}

#[test]
fn cancel_after_connection_granted_but_not_picked_up_returns_it() {
    guarded(|| {
        let server = path_server();
        let client = cap1();
        smol::block_on(async {
            let held = client.get(server.url("/held")).send().await.unwrap();
            let mut queued = Box::pin(client.get(server.url("/dropped")).send());
            assert!(future::poll_once(queued.as_mut()).await.is_none(), "must wait for the slot");
            // Releasing hands the connection to the queued request...
            assert_eq!(held.text().await.unwrap(), body_for("/held"));
            // ...which is dropped before it ever runs again.
            drop(queued);
            let s = client.pool_stats();
            assert_eq!(s.leased, 0, "{s:?}");
            assert_eq!(get_text(&client, server.url("/third")).await.unwrap(), body_for("/third"));
        });
        assert_eq!(targets(&server), ["/held", "/third"]);
        assert_eq!(server.requests_per_connection(), vec![2], "the handed-on connection is reused");
        assert_eq!(client.pool_stats().leased, 0);
    });
}

#[test]
fn cancel_after_slot_granted_but_not_picked_up_frees_it() {
    guarded(|| {
        let server = path_server();
        let client = Client::builder().max_connections_per_host(1).max_drain_on_drop(0).build().unwrap();
        smol::block_on(async {
            let held = client.get(server.url("/held")).send().await.unwrap();
            let mut queued = Box::pin(client.get(server.url("/dropped")).send());
            assert!(future::poll_once(queued.as_mut()).await.is_none(), "must wait for the slot");
            // Dropping the unread body closes the connection and grants its
            // slot to the queued request, which is then dropped.
            drop(held);
            drop(queued);
            let s = client.pool_stats();
            assert_eq!((s.leased, s.idle), (0, 0), "{s:?}");
            assert_eq!(get_text(&client, server.url("/third")).await.unwrap(), body_for("/third"));
        });
        server.wait_peer_closed(1);
        assert_eq!(targets(&server), ["/held", "/third"]);
        assert_eq!(client.pool_stats().leased, 0);
    });
}

/// Connection 0 reads one request and then waits for the client to close,
/// recording whether it did; later connections answer normally.
fn hanging_first_connection(head_and_partial_body: Option<&'static [u8]>) -> (Server, Arc<AtomicBool>) {
    let peer_closed = Arc::new(AtomicBool::new(false));
    let flag = peer_closed.clone();
    let server = Server::start(move |conn| {
        if conn.index() == 0 {
            if conn.read_request().is_some() {
                if let Some(bytes) = head_and_partial_body {
                    conn.write(bytes);
                }
                if conn.wait_peer_close(Duration::from_secs(8)) {
                    flag.store(true, Ordering::SeqCst);
                }
            }
            return;
        }
        while let Some(req) = conn.read_request() {
            conn.respond(200, &[], body_for(&req.target).as_bytes());
        }
    });
    (server, peer_closed)
}

#[test]
fn cancel_after_request_written_before_head_closes_connection() {
    guarded(|| {
        let (server, peer_closed) = hanging_first_connection(None);
        let client = cap1();
        smol::block_on(async {
            let out = future::or(async { Some(client.get(server.url("/slow")).send().await) }, async {
                until("request received", || server.requests() >= 1).await;
                Timer::after(Duration::from_millis(20)).await;
                None
            })
            .await;
            assert!(out.is_none(), "the server never answers");
            let s = client.pool_stats();
            assert_eq!((s.leased, s.idle, s.discarded), (0, 0, 1), "{s:?}");
            assert_eq!(get_text(&client, server.url("/after")).await.unwrap(), body_for("/after"));
        });
        server.wait_peer_closed(1);
        assert!(peer_closed.load(Ordering::SeqCst), "the cancelled request's socket must be closed");
        assert_eq!(server.requests_per_connection(), vec![1, 1]);
        assert_eq!(client.pool_stats().leased, 0);
    });
}

#[test]
fn request_timeout_before_head_closes_connection_and_frees_slot() {
    guarded(|| {
        let (server, peer_closed) = hanging_first_connection(None);
        let client = cap1();
        smol::block_on(async {
            let err = client.get(server.url("/slow")).timeout(Duration::from_millis(300)).send().await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
            assert!(err.is_timeout());
            assert_eq!(client.pool_stats().leased, 0);
            assert_eq!(get_text(&client, server.url("/after")).await.unwrap(), body_for("/after"));
        });
        server.wait_peer_closed(1);
        assert!(peer_closed.load(Ordering::SeqCst));
        assert_eq!(server.requests_per_connection(), vec![1, 1]);
        let s = client.pool_stats();
        assert_eq!((s.leased, s.retried), (0, 0), "{s:?}");
    });
}

#[test]
fn cancel_mid_body_closes_connection_and_frees_slot() {
    guarded(|| {
        let (server, peer_closed) =
            hanging_first_connection(Some(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst ten!"));
        let client = cap1();
        smol::block_on(async {
            let mut resp = client.get(server.url("/partial")).send().await.unwrap();
            let mut buf = [0u8; 10];
            let n = resp.read(&mut buf).await.unwrap();
            assert!(n > 0 && buf[..n] == b"first ten!"[..n]);
            let out = future::or(async { Some(resp.bytes().await) }, async {
                Timer::after(Duration::from_millis(150)).await;
                None
            })
            .await;
            assert!(out.is_none(), "the body never completes");
            let s = client.pool_stats();
            assert_eq!((s.leased, s.idle, s.discarded), (0, 0, 1), "{s:?}");
            assert_eq!(get_text(&client, server.url("/after")).await.unwrap(), body_for("/after"));
        });
        server.wait_peer_closed(1);
        assert!(peer_closed.load(Ordering::SeqCst));
        assert_eq!(server.requests_per_connection(), vec![1, 1]);
        assert_eq!(client.pool_stats().leased, 0);
    });
}

// ---------------------------------------------------------------------------
// Dropping the client while a body is read
// ---------------------------------------------------------------------------

#[test]
fn dropping_every_client_handle_does_not_break_body_in_flight() {
    guarded(|| {
        let body = pattern(3 * 4000);
        let parts = body.clone();
        let server = Server::start(move |conn| {
            if conn.read_request().is_none() {
                return;
            }
            conn.write(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", parts.len()).as_bytes());
            for part in parts.chunks(4000) {
                thread::sleep(Duration::from_millis(100));
                conn.write(part);
            }
            // Keep the connection open: only the client can close it.
            while conn.read_request().is_some() {}
        });
        let client = Client::new();
        let clone = client.clone();
        let received = smol::block_on(async {
            let resp = client.get(server.url("/slow-body")).send().await.unwrap();
            drop(client);
            drop(clone);
            resp.bytes().await.unwrap()
        });
        assert_eq!(received, body);
        // The pool went away with the last lease: its connection is closed,
        // not leaked.
        server.wait_peer_closed(1);
        assert_eq!(server.requests_per_connection(), vec![1]);
    });
}

#[test]
fn dropping_client_then_body_half_read_closes_connection() {
    guarded(|| {
        let server = body_server(pattern(64 * 1024));
        let client = Client::new();
        smol::block_on(async {
            let mut resp = client.get(server.url("/big")).send().await.unwrap();
            drop(client);
            let mut buf = [0u8; 100];
            let n = resp.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], &pattern(n)[..]);
            drop(resp);
        });
        server.wait_peer_closed(1);
    });
}
