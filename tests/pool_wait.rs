//! The pool's waiting rule against the real client over loopback: a
//! checkout waits only while the slots in use (leased, dialing, granted but
//! not picked up, idle) fill `max_connections_per_host`, and waiters are
//! served first come first served. Also: absurd pool settings
//! (`Duration::MAX`, `usize::MAX`) neither panic nor leak a slot.
//!
//! Every test runs under `common::with_deadline`, so a hang fails the test
//! instead of stalling the suite. A request that the pool wrongly keeps
//! waiting is given up after `STUCK`, so the failure says what was stuck;
//! the passing path never waits for that timer.

mod common;

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use common::*;
use futures_lite::future::poll_once;
use futures_lite::{AsyncReadExt, FutureExt};
use smol::Timer;
use smolreq::{Client, Response};

/// Hard bound of every test.
const LIMIT: Duration = Duration::from_secs(10);

/// How long a request may stay queued before the test calls it stuck.
const STUCK: Duration = Duration::from_secs(2);

fn guarded(f: impl FnOnce() + Send + 'static) {
    with_deadline(LIMIT, f)
}

/// Awaits `sending`, or fails the test if it is still waiting after
/// [`STUCK`].
async fn served_soon(what: &str, sending: impl Future<Output = smolreq::Result<Response>>) -> Response {
    let stuck = async {
        Timer::after(STUCK).await;
        panic!("{what} is still waiting after {STUCK:?} although the per-host cap has room");
    };
    sending.or(stuck).await.unwrap_or_else(|e| panic!("{what} failed: {e}"))
}

/// How B hands its slot to the waiting C.
#[derive(Clone, Copy)]
enum Handover {
    /// B is dropped unread: its connection closes and C is granted the slot
    /// (C will dial).
    Drop,
    /// B is read to its end: its connection goes straight to C.
    Release,
}

/// The scenario of issue 11, section 1, with `max_connections_per_host(2)`:
/// hold responses A and B; request C queues; B's slot goes to C (C is not
/// polled yet); drop A, whose slot nobody waits for; request D must be
/// served at once, although C still holds its grant. Then C is served too.
fn waiter_with_a_grant_does_not_block_the_next_checkout(handover: Handover) {
    guarded(move || {
        let server = echo_ok_server(b"hello");
        // No idle connections, so A's connection cannot serve D: D needs the
        // free slot.
        let client = Client::builder().max_connections_per_host(2).max_idle_per_host(0).build().unwrap();
        smol::block_on(async {
            let a = client.get(server.url("/a")).send().await.unwrap();
            let mut b = client.get(server.url("/b")).send().await.unwrap();
            let mut c = pin!(client.get(server.url("/c")).send());
            assert!(poll_once(c.as_mut()).await.is_none(), "C must wait: A and B fill the cap");
            match handover {
                Handover::Drop => drop(b),
                Handover::Release => {
                    let mut body = Vec::new();
                    b.read_to_end(&mut body).await.unwrap();
                    assert_eq!(body, b"hello");
                    drop(b);
                }
            }
            drop(a);
            let s = client.pool_stats();
            assert_eq!((s.leased, s.idle), (0, 0), "{s:?}");

            // C holds B's slot, A's slot is free: D must not queue.
            let d = served_soon("D", client.get(server.url("/d")).send()).await;
            assert_eq!(d.text().await.unwrap(), "hello");

            // C's grant was kept for it all along.
            let c = served_soon("C", c).await;
            assert_eq!(c.text().await.unwrap(), "hello");
        });
        let targets: Vec<String> = server.received().into_iter().map(|r| r.target).collect();
        assert_eq!(targets.len(), 4, "{targets:?}");
        assert_eq!(&targets[..2], ["/a", "/b"]);
        // D was served before C picked up its grant.
        let d_at = targets.iter().position(|t| t == "/d").unwrap();
        let c_at = targets.iter().position(|t| t == "/c").unwrap();
        assert!(d_at < c_at, "D must not wait for C: {targets:?}");
        let s = client.pool_stats();
        assert_eq!(s.leased, 0, "{s:?}");
        server.assert_no_handler_panics();
    });
}

#[test]
fn checkout_with_room_does_not_wait_behind_a_granted_slot() {
    waiter_with_a_grant_does_not_block_the_next_checkout(Handover::Drop);
}

#[test]
fn checkout_with_room_does_not_wait_behind_a_granted_connection() {
    waiter_with_a_grant_does_not_block_the_next_checkout(Handover::Release);
}

// ---------------------------------------------------------------------------
// Absurd settings: no panic, no leaked slot
// ---------------------------------------------------------------------------

/// A server like `echo_ok_server` whose responses announce
/// `Keep-Alive: timeout=<u64::MAX>`.
fn endless_keep_alive_server() -> Server {
    Server::start(|conn| {
        while conn.read_request().is_some() {
            conn.respond(200, &[("Keep-Alive", &format!("timeout={}", u64::MAX))], b"hello");
        }
    })
}

/// Three requests one after the other with a cap of one connection: each
/// must be served (a slot lost to a panic would make the next one wait
/// forever) on the same, reused connection.
fn three_requests_reuse_one_connection(client: &Client, server: &Server) {
    smol::block_on(async {
        for i in 0..3 {
            let what = format!("request {i}");
            let response = served_soon(&what, client.get(server.url(&format!("/{i}"))).send()).await;
            assert_eq!(response.text().await.unwrap(), "hello");
        }
    });
    assert_eq!(server.requests_per_connection(), vec![3]);
    let s = client.pool_stats();
    assert_eq!((s.opened, s.reused, s.idle, s.leased, s.discarded), (1, 2, 1, 0, 0), "{s:?}");
}

#[test]
fn idle_timeout_max_never_expires() {
    guarded(|| {
        let server = echo_ok_server(b"hello");
        let client = Client::builder().idle_timeout(Duration::MAX).max_connections_per_host(1).build().unwrap();
        three_requests_reuse_one_connection(&client, &server);
        server.assert_no_handler_panics();
    });
}

#[test]
fn idle_timeout_max_with_an_endless_keep_alive_timeout() {
    guarded(|| {
        let server = endless_keep_alive_server();
        let client = Client::builder().idle_timeout(Duration::MAX).max_connections_per_host(1).build().unwrap();
        three_requests_reuse_one_connection(&client, &server);
        server.assert_no_handler_panics();
    });
}

/// Holds `n` responses at once, then reads them all: every one is served
/// without waiting, and every connection goes back to the pool.
fn hold_then_release(client: &Client, server: &Server, n: usize) {
    smol::block_on(async {
        let mut held = Vec::new();
        for i in 0..n {
            let what = format!("request {i}");
            held.push(served_soon(&what, client.get(server.url(&format!("/{i}"))).send()).await);
        }
        assert_eq!(client.pool_stats().leased, n);
        for response in held {
            assert_eq!(response.text().await.unwrap(), "hello");
        }
    });
}

#[test]
fn max_idle_per_host_usize_max_keeps_every_connection() {
    guarded(|| {
        let server = echo_ok_server(b"hello");
        let client = Client::builder().max_idle_per_host(usize::MAX).build().unwrap();
        hold_then_release(&client, &server, 4);
        let s = client.pool_stats();
        assert_eq!((s.opened, s.idle, s.leased, s.discarded), (4, 4, 0, 0), "{s:?}");
        // And all four are reused.
        hold_then_release(&client, &server, 4);
        let s = client.pool_stats();
        assert_eq!((s.opened, s.reused, s.idle, s.leased, s.discarded), (4, 4, 4, 0, 0), "{s:?}");
        assert_eq!(server.connections(), 4);
        server.assert_no_handler_panics();
    });
}

#[test]
fn max_connections_per_host_usize_max_never_waits() {
    guarded(|| {
        let server = echo_ok_server(b"hello");
        let client =
            Client::builder().max_connections_per_host(usize::MAX).max_idle_per_host(usize::MAX).build().unwrap();
        hold_then_release(&client, &server, 6);
        let s = client.pool_stats();
        assert_eq!((s.opened, s.idle, s.leased, s.discarded), (6, 6, 0, 0), "{s:?}");
        hold_then_release(&client, &server, 7);
        let s = client.pool_stats();
        assert_eq!((s.opened, s.reused, s.idle, s.leased, s.discarded), (7, 6, 7, 0, 0), "{s:?}");
        server.assert_no_handler_panics();
    });
}
