//! Integration tests of the retry rules: a request is sent a second time
//! only once, on a fresh connection, when a *reused* connection failed with
//! an I/O error before any response byte, the method is idempotent and the
//! body replayable. Everything else fails without a second attempt.

mod common;

use std::thread;
use std::time::Duration;

use common::*;
use smolreq::{Client, ErrorKind, Method};

/// Hard bound of every test.
const LIMIT: Duration = Duration::from_secs(10);

/// Time given to a (wrong) second attempt to reach the server before the
/// attempts are counted.
const SETTLE: Duration = Duration::from_millis(200);

fn guarded(f: impl FnOnce() + Send + 'static) {
    with_deadline(LIMIT, f)
}

fn body_for(path: &str) -> String {
    format!("response to {path}")
}

/// Answers `req` with `body_for(target)` (no body bytes for HEAD).
fn answer(conn: &mut Conn, req: &Request) {
    let body = body_for(&req.target);
    if req.method == "HEAD" {
        let len = body.len().to_string();
        conn.respond(200, &[("Content-Length", &len)], b"");
    } else {
        conn.respond(200, &[], body.as_bytes());
    }
}

/// What connection 0 does with the second request it reads.
#[derive(Clone, Copy, Debug)]
enum OnSecond {
    /// Close (FIN) without answering.
    Close,
    /// Reset (RST) without answering.
    Reset,
    /// Send the start of a status line, then close.
    PartialHead,
    /// Never answer; wait for the client to go away.
    Hang,
}

/// What connections after the first do.
#[derive(Clone, Copy, Debug)]
enum Later {
    /// Answer every request.
    Answer,
    /// Read one request and close without answering.
    Close,
}

/// Connection 0 answers its first request (so the pool holds a reused
/// connection), then fails the second as `on_second` says.
fn reused_failure_server(on_second: OnSecond, later: Later) -> Server {
    Server::start(move |conn| {
        if conn.index() == 0 {
            if let Some(req) = conn.read_request() {
                answer(conn, &req);
            }
            if conn.read_request().is_none() {
                return;
            }
            match on_second {
                OnSecond::Close => conn.close(),
                OnSecond::Reset => conn.reset(),
                OnSecond::PartialHead => {
                    conn.write(b"HTTP/1.1 200");
                    thread::sleep(Duration::from_millis(20));
                    conn.close();
                }
                OnSecond::Hang => {
                    conn.wait_peer_close(Duration::from_secs(8));
                }
            }
            return;
        }
        match later {
            Later::Answer => {
                while let Some(req) = conn.read_request() {
                    answer(conn, &req);
                }
            }
            Later::Close => {
                if conn.read_request().is_some() {
                    conn.close();
                }
            }
        }
    })
}

/// Connection indices on which a request for `target` arrived, in order.
fn conns_of(server: &Server, target: &str) -> Vec<usize> {
    server.received().into_iter().filter(|r| r.target == target).map(|r| r.conn_index).collect()
}

/// Warms the pool with one GET, then sends `request` on the reused
/// connection.
fn warm_then<F>(server: &Server, client: &Client, request: F) -> smolreq::Result<String>
where
    F: AsyncFnOnce(&Client, String) -> smolreq::Result<String>,
{
    smol::block_on(async {
        let warm = client.get(server.url("/warm")).send().await.unwrap().text().await.unwrap();
        assert_eq!(warm, body_for("/warm"));
        request(client, server.url("/target")).await
    })
}

async fn send_text(builder: smolreq::RequestBuilder) -> smolreq::Result<String> {
    builder.send().await?.text().await
}

#[test]
fn get_failing_on_reused_connection_before_response_is_retried_once() {
    guarded(|| {
        let server = reused_failure_server(OnSecond::Close, Later::Answer);
        let client = Client::new();
        let text = warm_then(&server, &client, async |c, url| send_text(c.get(url)).await).unwrap();
        assert_eq!(text, body_for("/target"));
        // Once on the reused connection, once on a fresh one.
        assert_eq!(conns_of(&server, "/target"), vec![0, 1]);
        let s = client.pool_stats();
        assert_eq!((s.opened, s.reused, s.retried, s.leased), (2, 1, 1, 0), "{s:?}");
    });
}

#[test]
fn get_reset_on_reused_connection_is_retried_once() {
    guarded(|| {
        let server = reused_failure_server(OnSecond::Reset, Later::Answer);
        let client = Client::new();
        let text = warm_then(&server, &client, async |c, url| send_text(c.get(url)).await).unwrap();
        assert_eq!(text, body_for("/target"));
        assert_eq!(conns_of(&server, "/target"), vec![0, 1]);
        assert_eq!(client.pool_stats().retried, 1);
    });
}

#[test]
fn retry_happens_at_most_once() {
    guarded(|| {
        // The fresh connection of the retry fails the same way.
        let server = reused_failure_server(OnSecond::Close, Later::Close);
        let client = Client::new();
        let err = warm_then(&server, &client, async |c, url| send_text(c.get(url)).await).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io, "{err:?}");
        thread::sleep(SETTLE);
        assert_eq!(conns_of(&server, "/target"), vec![0, 1], "exactly two attempts");
        assert_eq!(server.connections(), 2);
        let s = client.pool_stats();
        assert_eq!((s.opened, s.retried, s.leased), (2, 1, 0), "{s:?}");
    });
}

#[test]
fn failure_on_fresh_connection_is_not_retried() {
    guarded(|| {
        let server = Server::start(|conn| {
            if conn.read_request().is_some() {
                conn.close();
            }
        });
        let client = Client::new();
        let err = smol::block_on(send_text(client.get(server.url("/target")))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io, "{err:?}");
        thread::sleep(SETTLE);
        assert_eq!(conns_of(&server, "/target"), vec![0], "exactly one attempt");
        assert_eq!(server.connections(), 1);
        let s = client.pool_stats();
        assert_eq!((s.opened, s.retried, s.leased), (1, 0, 0), "{s:?}");
    });
}

#[test]
fn reset_on_fresh_connection_is_not_retried() {
    guarded(|| {
        let server = Server::start(|conn| {
            if conn.read_request().is_some() {
                conn.reset();
            }
        });
        let client = Client::new();
        let err = smol::block_on(send_text(client.get(server.url("/target")))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io, "{err:?}");
        thread::sleep(SETTLE);
        assert_eq!(server.connections(), 1, "exactly one attempt");
        assert_eq!(client.pool_stats().retried, 0);
    });
}

#[test]
fn not_retried_after_response_bytes_arrived() {
    guarded(|| {
        let server = reused_failure_server(OnSecond::PartialHead, Later::Answer);
        let client = Client::new();
        let err = warm_then(&server, &client, async |c, url| send_text(c.get(url)).await).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "a truncated head is a protocol error: {err:?}");
        thread::sleep(SETTLE);
        assert_eq!(conns_of(&server, "/target"), vec![0], "exactly one attempt");
        assert_eq!(server.connections(), 1);
        let s = client.pool_stats();
        assert_eq!((s.retried, s.leased), (0, 0), "{s:?}");
    });
}

#[test]
fn timeout_on_reused_connection_is_not_retried() {
    guarded(|| {
        let server = reused_failure_server(OnSecond::Hang, Later::Answer);
        let client = Client::new();
        let err =
            warm_then(&server, &client, async |c, url| send_text(c.get(url).timeout(Duration::from_millis(300))).await)
                .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
        thread::sleep(SETTLE);
        assert_eq!(conns_of(&server, "/target"), vec![0], "exactly one attempt");
        let s = client.pool_stats();
        assert_eq!((s.retried, s.leased), (0, 0), "{s:?}");
    });
}

/// Sends `method` with a bytes body on a reused connection that fails
/// before answering; returns the result and the bodies the server saw.
fn method_on_failing_reused(method: Method, on_second: OnSecond) -> (smolreq::Result<String>, Vec<Vec<u8>>, u64) {
    let server = reused_failure_server(on_second, Later::Answer);
    let client = Client::new();
    let name = method.as_str().to_owned();
    let result = warm_then(&server, &client, async |c, url| send_text(c.request(method, url).body("payload")).await);
    thread::sleep(SETTLE);
    let bodies = server.received().into_iter().filter(|r| r.method == name).map(|r| r.body).collect();
    assert_eq!(client.pool_stats().leased, 0);
    (result, bodies, client.pool_stats().retried)
}

#[test]
fn post_is_never_retried_after_fin() {
    guarded(|| {
        let (result, bodies, retried) = method_on_failing_reused(Method::POST, OnSecond::Close);
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io, "{err:?}");
        assert_eq!(bodies, vec![b"payload".to_vec()], "the POST is sent exactly once");
        assert_eq!(retried, 0);
    });
}

#[test]
fn post_is_never_retried_after_rst() {
    guarded(|| {
        let (result, bodies, retried) = method_on_failing_reused(Method::POST, OnSecond::Reset);
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io, "{err:?}");
        assert_eq!(bodies.len(), 1, "the POST is sent exactly once");
        assert_eq!(retried, 0);
    });
}

#[test]
fn post_without_body_is_never_retried() {
    guarded(|| {
        let server = reused_failure_server(OnSecond::Close, Later::Answer);
        let client = Client::new();
        let err = warm_then(&server, &client, async |c, url| send_text(c.post(url)).await).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io, "{err:?}");
        thread::sleep(SETTLE);
        assert_eq!(conns_of(&server, "/target"), vec![0]);
        assert_eq!(client.pool_stats().retried, 0);
    });
}

#[test]
fn patch_is_never_retried() {
    guarded(|| {
        let (result, bodies, retried) = method_on_failing_reused(Method::PATCH, OnSecond::Close);
        assert_eq!(result.unwrap_err().kind(), ErrorKind::Io);
        assert_eq!(bodies.len(), 1, "the PATCH is sent exactly once");
        assert_eq!(retried, 0);
    });
}

#[test]
fn put_with_bytes_body_is_retried_with_same_body() {
    guarded(|| {
        let (result, bodies, retried) = method_on_failing_reused(Method::PUT, OnSecond::Close);
        assert_eq!(result.unwrap(), body_for("/target"));
        assert_eq!(bodies, vec![b"payload".to_vec(), b"payload".to_vec()], "sent twice, same body");
        assert_eq!(retried, 1);
    });
}

#[test]
fn delete_with_bytes_body_is_retried_with_same_body() {
    guarded(|| {
        let (result, bodies, retried) = method_on_failing_reused(Method::DELETE, OnSecond::Close);
        assert_eq!(result.unwrap(), body_for("/target"));
        assert_eq!(bodies, vec![b"payload".to_vec(), b"payload".to_vec()], "sent twice, same body");
        assert_eq!(retried, 1);
    });
}

#[test]
fn head_is_retried() {
    guarded(|| {
        let server = reused_failure_server(OnSecond::Close, Later::Answer);
        let client = Client::new();
        let text = warm_then(&server, &client, async |c, url| send_text(c.head(url)).await).unwrap();
        assert_eq!(text, "");
        assert_eq!(conns_of(&server, "/target"), vec![0, 1]);
        assert_eq!(client.pool_stats().retried, 1);
    });
}

#[test]
fn put_with_body_reader_is_not_retried() {
    guarded(|| {
        for len in [Some(7), None] {
            let server = reused_failure_server(OnSecond::Close, Later::Answer);
            let client = Client::new();
            let err = warm_then(&server, &client, async |c, url| {
                let reader = futures_lite::io::Cursor::new(b"payload".to_vec());
                send_text(c.put(url).body_reader(reader, len)).await
            })
            .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Io, "len {len:?}: {err:?}");
            thread::sleep(SETTLE);
            let puts: Vec<_> = server.received().into_iter().filter(|r| r.method == "PUT").collect();
            assert_eq!(puts.len(), 1, "len {len:?}: a streamed body is sent exactly once");
            assert_eq!(puts[0].body, b"payload");
            assert_eq!(puts[0].chunked, len.is_none());
            let s = client.pool_stats();
            assert_eq!((s.retried, s.leased), (0, 0), "len {len:?}: {s:?}");
        }
    });
}

#[test]
fn retried_counter_counts_each_retry() {
    guarded(|| {
        // Every connection answers its first request and closes when the
        // second arrives: each request after the first is retried.
        let server = Server::start(|conn| {
            if let Some(req) = conn.read_request() {
                answer(conn, &req);
            }
            if conn.read_request().is_some() {
                conn.close();
            }
        });
        let client = Client::new();
        smol::block_on(async {
            for i in 0..4 {
                let path = format!("/get{i}");
                assert_eq!(send_text(client.get(server.url(&path))).await.unwrap(), body_for(&path));
                assert_eq!(client.pool_stats().retried, i, "after request {i}");
            }
            // A failed POST is not retried and does not count.
            let err = send_text(client.post(server.url("/post")).body("x")).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Io, "{err:?}");
            assert_eq!(client.pool_stats().retried, 3);
            // The next GET goes to a fresh connection: nothing to retry.
            assert_eq!(send_text(client.get(server.url("/last"))).await.unwrap(), body_for("/last"));
        });
        let s = client.pool_stats();
        assert_eq!((s.opened, s.retried, s.leased), (5, 3, 0), "{s:?}");
        assert_eq!(server.connections(), 5);
    });
}
