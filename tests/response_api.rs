//! The response API a reqwest user reaches for (issue 12): `Send + Sync`
//! types, `error_for_status`, `content_length`, `remote_addr`, `Bytes`
//! bodies, `chunk`, `bytes_stream`, trailers, `max_body_size` and `json`.
//!
//! Every test runs against the scripted servers of `tests/common` under
//! `common::with_deadline`, so a hang fails it; connection reuse and
//! closes are counted on the server side.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Conn, Server, response_bytes, with_deadline};
use futures_lite::{AsyncReadExt, StreamExt};
use smolreq::{Client, ErrorKind, Response, StatusCode};

/// Hard bound of every test.
const LIMIT: Duration = Duration::from_secs(20);

fn run<F: Future<Output = ()>>(f: impl FnOnce() -> F + Send + 'static) {
    with_deadline(LIMIT, move || smol::block_on(f()))
}

/// A keep-alive server: `answer` writes the response to each request
/// (by its target) until the client closes the connection.
fn server(answer: impl Fn(&mut Conn, &str) + Send + Sync + 'static) -> Server {
    Server::start(move |conn| {
        while let Some(req) = conn.read_request() {
            answer(conn, &req.target);
            if conn.is_closed() {
                return;
            }
        }
    })
}

/// A chunked response whose body is `chunks`, each a chunk of its own,
/// then the trailer section `trailers` (field lines with their CRLFs).
fn chunked(chunks: &[&[u8]], trailers: &str) -> Vec<u8> {
    let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for chunk in chunks {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    out.extend_from_slice(trailers.as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

/// One connection carried every request, and the pool reused it.
fn assert_one_connection(client: &Client, server: &Server, requests: usize) {
    assert_eq!(server.connections(), 1, "one connection on the server side");
    assert_eq!(server.requests_per_connection(), vec![requests]);
    let s = client.pool_stats();
    assert_eq!((s.opened, s.reused, s.discarded), (1, requests as u64 - 1, 0), "{s:?}");
}

// ---------------------------------------------------------------------------
// Send + Sync
// ---------------------------------------------------------------------------

fn assert_send_sync<T: Send + Sync>() {}
fn assert_send<T: Send>(_: &T) {}

#[test]
fn public_types_are_send_and_sync() {
    assert_send_sync::<smolreq::Response>();
    assert_send_sync::<smolreq::Body>();
    assert_send_sync::<smolreq::BytesStream>();
    assert_send_sync::<smolreq::Error>();
    assert_send_sync::<smolreq::Client>();
    // `RequestBuilder` is `Send` but not `Sync` yet: its body reader is a
    // `Box<dyn AsyncRead + Send>` (src/request.rs).
    fn builder_is_send<T: Send>() {}
    builder_is_send::<smolreq::RequestBuilder>();
}

/// A spawned task may hold `&Response` across an `.await`: the future is
/// `Send` only because `Response` is `Sync`. Checked at compile time, and
/// run once on a multi-threaded executor.
#[test]
fn a_response_borrowed_across_an_await_can_be_spawned() {
    let server = server(|conn, _| conn.respond(200, &[("x-a", "1")], b"hello"));
    let url = server.url("/");
    with_deadline(LIMIT, move || {
        let ex = std::sync::Arc::new(async_executor::Executor::new());
        let (stop, shutdown) = async_channel_pair();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (ex, shutdown) = (ex.clone(), shutdown.clone());
                std::thread::spawn(move || smol::block_on(ex.run(shutdown.recv())))
            })
            .collect();
        let task = ex.spawn(async move {
            let resp = Client::new().get(&url).send().await.unwrap();
            let borrowed: &Response = &resp;
            smol::Timer::after(Duration::from_millis(1)).await;
            let header = borrowed.headers()["x-a"].to_str().unwrap().to_owned();
            (header, resp.text().await.unwrap())
        });
        assert_send(&task);
        let (header, text) = smol::block_on(task);
        assert_eq!((header.as_str(), text.as_str()), ("1", "hello"));
        drop(stop);
        for t in threads {
            assert!(t.join().unwrap().is_err(), "the executor thread stopped on the closed channel");
        }
    });
}

/// A channel whose receiver returns once the sender is dropped.
fn async_channel_pair() -> (smol::channel::Sender<()>, smol::channel::Receiver<()>) {
    smol::channel::bounded(1)
}

// ---------------------------------------------------------------------------
// error_for_status
// ---------------------------------------------------------------------------

#[test]
fn error_for_status_on_a_404_keeps_the_connection() {
    let server = server(|conn, target| match target {
        "/missing" => conn.respond(404, &[], b"no such page"),
        _ => conn.respond(200, &[], b"ok"),
    });
    run(move || async move {
        let client = Client::new();
        let err = client.get(server.url("/missing")).send().await.unwrap().error_for_status().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Status);
        assert!(err.is_status());
        assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
        assert_eq!(err.url().map(|u| u.path()), Some("/missing"));
        assert!(err.to_string().contains("404"), "{err}");
        assert!(format!("{err:?}").contains("404"), "{err:?}");
        // The error page was dropped with the response; its body had
        // arrived, so the drain on drop gave the connection back.
        let s = client.pool_stats();
        assert_eq!((s.leased, s.idle), (0, 1), "{s:?}");
        let ok = client.get(server.url("/ok")).send().await.unwrap().error_for_status().unwrap();
        assert_eq!(ok.text().await.unwrap(), "ok");
        assert_one_connection(&client, &server, 2);
    });
}

#[test]
fn error_for_status_passes_1xx_to_3xx_and_fails_4xx_and_above() {
    let server = server(|conn, target| {
        let status: u16 = target[1..].parse().unwrap();
        conn.respond(status, &[("location", "/elsewhere")], b"");
    });
    run(move || async move {
        let client = Client::builder().redirect(false).build().unwrap();
        for status in [200, 204, 299, 301, 304, 399] {
            let resp = client.get(server.url(&format!("/{status}"))).send().await.unwrap();
            assert!(resp.error_for_status_ref().is_ok(), "{status}");
            let resp = resp.error_for_status().unwrap_or_else(|e| panic!("{status}: {e}"));
            assert_eq!(resp.status().as_u16(), status);
        }
        for status in [400, 401, 418, 499, 500, 503, 599, 600] {
            let resp = client.get(server.url(&format!("/{status}"))).send().await.unwrap();
            let err = resp.error_for_status_ref().unwrap_err();
            assert_eq!((err.kind(), err.status().map(|s| s.as_u16())), (ErrorKind::Status, Some(status)));
            let err = resp.error_for_status().unwrap_err();
            assert_eq!(err.status().map(|s| s.as_u16()), Some(status));
        }
        // Every other error has no status.
        let err = client.get("ftp://example.test/").send().await.unwrap_err();
        assert!(!err.is_status());
        assert_eq!(err.status(), None);
    });
}

#[test]
fn error_for_status_ref_leaves_the_response_readable() {
    let server = server(|conn, _| conn.respond(503, &[], b"try later"));
    run(move || async move {
        let resp = Client::new().get(server.url("/busy")).send().await.unwrap();
        let err = resp.error_for_status_ref().unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(resp.text().await.unwrap(), "try later");
    });
}

// ---------------------------------------------------------------------------
// content_length, remote_addr
// ---------------------------------------------------------------------------

#[test]
fn content_length_follows_the_framing() {
    let server = Server::start(|conn| {
        while let Some(req) = conn.read_request() {
            match req.target.as_str() {
                "/sized" => conn.respond(200, &[], b"hello"),
                "/chunked" => conn.write(&chunked(&[b"hello"], "")),
                "/head" => conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"),
                "/204" => conn.respond(204, &[], b""),
                _ => {
                    conn.write(b"HTTP/1.1 200 OK\r\n\r\nuntil the end");
                    conn.close();
                    return;
                }
            }
        }
    });
    run(move || async move {
        let client = Client::new();
        let resp = client.get(server.url("/sized")).send().await.unwrap();
        assert_eq!(resp.content_length(), Some(5));
        let resp = client.get(server.url("/chunked")).send().await.unwrap();
        assert_eq!(resp.content_length(), None);
        assert_eq!(resp.bytes().await.unwrap(), "hello");
        // HEAD: no body, whatever Content-Length says (that header stays
        // readable: the length a GET would have).
        let resp = client.head(server.url("/head")).send().await.unwrap();
        assert_eq!(resp.content_length(), Some(0));
        assert_eq!(resp.headers()["content-length"], "1234");
        let resp = client.get(server.url("/204")).send().await.unwrap();
        assert_eq!(resp.content_length(), Some(0));
        let resp = client.get(server.url("/close")).send().await.unwrap();
        assert_eq!(resp.content_length(), None);
        assert_eq!(resp.text().await.unwrap(), "until the end");
    });
}

#[test]
fn remote_addr_is_the_tcp_peer_and_none_through_a_connector() {
    let server = server(|conn, _| conn.respond(200, &[], b"ok"));
    let addr = server.addr();
    run(move || async move {
        let resp = Client::new().get(server.url("/")).send().await.unwrap();
        assert_eq!(resp.remote_addr(), Some(addr));
        // A custom connector's stream has no address to tell.
        let client = Client::builder().connector(move |_| async_net::TcpStream::connect(addr)).build().unwrap();
        let resp = client.get(server.url("/")).send().await.unwrap();
        assert_eq!(resp.remote_addr(), None);
        assert_eq!(resp.bytes().await.unwrap(), "ok");
    });
}

#[test]
fn remote_addr_is_known_for_a_body_that_ended_with_its_head() {
    let server = server(|conn, _| conn.respond(204, &[], b""));
    let addr = server.addr();
    run(move || async move {
        let client = Client::new();
        let resp = client.get(server.url("/")).send().await.unwrap();
        assert_eq!(client.pool_stats().leased, 0, "the connection went back with the head");
        assert_eq!(resp.remote_addr(), Some(addr));
    });
}

// ---------------------------------------------------------------------------
// Bytes, chunk, bytes_stream, trailers
// ---------------------------------------------------------------------------

#[test]
fn bytes_returns_bytes_for_every_framing() {
    let server = Server::start(|conn| {
        while let Some(req) = conn.read_request() {
            match req.target.as_str() {
                "/sized" => conn.respond(200, &[], b"sized body"),
                "/chunked" => conn.write(&chunked(&[b"chunked ", b"body"], "")),
                _ => {
                    conn.write(b"HTTP/1.1 200 OK\r\n\r\nclose-delimited body");
                    conn.close();
                    return;
                }
            }
        }
    });
    run(move || async move {
        let client = Client::new();
        for (path, want) in [("/sized", "sized body"), ("/chunked", "chunked body"), ("/close", "close-delimited body")]
        {
            let body: Bytes = client.get(server.url(path)).send().await.unwrap().bytes().await.unwrap();
            assert_eq!(body, want, "{path}");
        }
    });
}

#[test]
fn chunk_returns_each_piece_then_none_then_the_trailers() {
    // One write: the pieces are all buffered at once, and a piece never
    // spans two chunks.
    let wire = chunked(&[b"hello", b" ", b"world"], "X-Checksum: abc\r\nServer-Timing: db;dur=53\r\n");
    let server = server(move |conn, target| match target {
        "/next" => conn.respond(200, &[], b"next"),
        _ => conn.write(&wire),
    });
    run(move || async move {
        let client = Client::new();
        let mut resp = client.get(server.url("/")).send().await.unwrap();
        assert_eq!(resp.trailers(), None, "no trailers before the end");
        let mut pieces = Vec::new();
        while let Some(piece) = resp.chunk().await.unwrap() {
            pieces.push(piece);
        }
        assert_eq!(pieces, ["hello", " ", "world"]);
        assert_eq!(resp.chunk().await.unwrap(), None, "still the end");
        let trailers = resp.trailers().expect("trailers after the end");
        assert_eq!(trailers["x-checksum"], "abc");
        assert_eq!(trailers["server-timing"], "db;dur=53");
        assert_eq!(trailers.len(), 2);
        assert!(!resp.headers().contains_key("x-checksum"), "trailers are not merged into the headers");
        assert_eq!(client.get(server.url("/next")).send().await.unwrap().text().await.unwrap(), "next");
        assert_one_connection(&client, &server, 2);
    });
}

#[test]
fn chunk_streams_a_large_body_in_pieces_that_add_up() {
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let wire = response_bytes(200, &[], &body);
    let server = server(move |conn, _| conn.write(&wire));
    run(move || async move {
        // chunk() is not bounded by max_body_size.
        let client = Client::builder().max_body_size(Some(1000)).build().unwrap();
        let mut resp = client.get(server.url("/")).send().await.unwrap();
        let mut got = Vec::new();
        let mut pieces = 0;
        while let Some(piece) = resp.chunk().await.unwrap() {
            assert!(!piece.is_empty());
            got.extend_from_slice(&piece);
            pieces += 1;
        }
        assert!(got == body, "the pieces add up to the body ({} of {} bytes)", got.len(), body.len());
        assert!(pieces > 1, "a 3 MB body comes in more than one piece");
        assert_eq!(client.pool_stats().idle, 1, "read to its end: the connection went back");
    });
}

#[test]
fn bytes_stream_yields_the_body_and_ends_with_the_trailers() {
    let wire = chunked(&[b"abc", b"def"], "X-Done: yes\r\n");
    let server = server(move |conn, _| conn.write(&wire));
    run(move || async move {
        let mut stream = Client::new().get(server.url("/")).send().await.unwrap().bytes_stream();
        let mut got = Vec::new();
        while let Some(piece) = stream.next().await {
            got.extend_from_slice(&piece.unwrap());
        }
        assert_eq!(got, b"abcdef");
        assert_eq!(stream.trailers().unwrap()["x-done"], "yes");
        assert!(stream.next().await.is_none(), "the stream stays ended");
    });
}

#[test]
fn bytes_stream_yields_an_error_for_a_truncated_body_then_ends() {
    let server = Server::start(|conn| {
        if conn.read_request().is_some() {
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello");
            conn.close();
        }
    });
    run(move || async move {
        let mut stream = Client::new().get(server.url("/cut")).send().await.unwrap().bytes_stream();
        assert_eq!(stream.next().await.unwrap().unwrap(), "hello");
        let err = stream.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
        assert_eq!(err.url().map(|u| u.path()), Some("/cut"));
        assert!(stream.next().await.is_none(), "nothing after the error");
    });
}

#[test]
fn trailers_are_readable_after_reading_the_body_as_async_read() {
    let server = Server::start(|conn| {
        while let Some(req) = conn.read_request() {
            match req.target.as_str() {
                "/trailers" => conn.write(&chunked(&[b"data"], "Expires: never\r\nx-a: 1\r\nX-A: 2\r\n")),
                "/none" => conn.write(&chunked(&[b"data"], "")),
                _ => conn.respond(200, &[], b"data"),
            }
        }
    });
    run(move || async move {
        let client = Client::new();
        let mut body = client.get(server.url("/trailers")).send().await.unwrap().into_body();
        let mut text = String::new();
        body.read_to_string(&mut text).await.unwrap();
        assert_eq!(text, "data");
        let trailers = body.trailers().unwrap();
        assert_eq!(trailers["expires"], "never");
        assert_eq!(trailers.get_all("x-a").iter().collect::<Vec<_>>(), ["1", "2"]);
        for path in ["/none", "/sized"] {
            let mut body = client.get(server.url(path)).send().await.unwrap().into_body();
            body.read_to_string(&mut String::new()).await.unwrap();
            assert_eq!(body.trailers(), None, "{path}");
        }
        assert_one_connection(&client, &server, 3);
    });
}

// ---------------------------------------------------------------------------
// max_body_size
// ---------------------------------------------------------------------------

/// The error of a body past max_body_size.
fn assert_too_large(err: &smolreq::Error) {
    assert_eq!(err.kind(), ErrorKind::Body, "{err}");
    assert!(err.to_string().contains("max_body_size"), "the error names the limit: {err}");
}

#[test]
fn a_content_length_above_max_body_size_fails_before_reading() {
    // The server sends the head only: a client that waited for the body
    // would hang until the server gives up.
    let server = Server::start(|conn| {
        if conn.read_request().is_some() {
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n");
            assert!(conn.wait_peer_close(Duration::from_secs(5)), "the client closed the connection");
        }
    });
    run(move || async move {
        let client = Client::builder().max_body_size(Some(10)).build().unwrap();
        let started = Instant::now();
        let err = client.get(server.url("/big")).send().await.unwrap().bytes().await.unwrap_err();
        assert_too_large(&err);
        assert!(started.elapsed() < Duration::from_secs(2), "failed at once");
        assert_eq!(err.url().map(|u| u.path()), Some("/big"));
        server.wait_peer_closed(1);
        let s = client.pool_stats();
        assert_eq!((s.leased, s.idle), (0, 0), "{s:?}");
    });
}

#[test]
fn the_default_max_body_size_is_64_mib() {
    let server = Server::start(|conn| {
        while let Some(req) = conn.read_request() {
            let len = if req.target == "/over" { (64 << 20) + 1 } else { 64 << 20 };
            conn.write(format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n").as_bytes());
            if req.target == "/over" {
                conn.wait_peer_close(Duration::from_secs(5));
                return;
            }
            conn.write(&vec![b'x'; 64 << 20]);
        }
    });
    run(move || async move {
        let client = Client::new();
        let err = client.get(server.url("/over")).send().await.unwrap().bytes().await.unwrap_err();
        assert_too_large(&err);
        let body = client.get(server.url("/at")).send().await.unwrap().bytes().await.unwrap();
        assert_eq!(body.len(), 64 << 20);
    });
}

#[test]
fn a_chunked_body_past_max_body_size_fails_and_closes_the_connection() {
    // 10 chunks of 4 bytes: 40 bytes, over a limit of 19.
    let wire = chunked(&[&b"aaaa"[..]; 10], "");
    let server = Server::start(move |conn| {
        while let Some(req) = conn.read_request() {
            match req.target.as_str() {
                "/exact" => conn.write(&chunked(&[b"aaaa", b"aaaa", b"aaaa", b"aaaa", b"aaa"], "")),
                _ => conn.write(&wire),
            }
        }
    });
    run(move || async move {
        let client = Client::builder().max_body_size(Some(19)).build().unwrap();
        // At the limit: fine, and the connection is kept.
        let body = client.get(server.url("/exact")).send().await.unwrap().bytes().await.unwrap();
        assert_eq!(body.len(), 19);
        assert_eq!(client.pool_stats().idle, 1);
        let err = client.get(server.url("/over")).send().await.unwrap().bytes().await.unwrap_err();
        assert_too_large(&err);
        server.wait_peer_closed(1);
        let s = client.pool_stats();
        assert_eq!((s.leased, s.idle, s.reused), (0, 0, 1), "{s:?}");
        // text() is bounded the same way.
        let err = client.get(server.url("/over")).send().await.unwrap().text().await.unwrap_err();
        assert_too_large(&err);
    });
}

#[test]
fn a_close_delimited_body_past_max_body_size_fails() {
    let server = Server::start(|conn| {
        if conn.read_request().is_some() {
            conn.write(b"HTTP/1.1 200 OK\r\n\r\n");
            conn.write(&[b'z'; 4096]);
            assert!(conn.wait_peer_close(Duration::from_secs(5)), "the client closed the connection");
        }
    });
    run(move || async move {
        let client = Client::builder().max_body_size(Some(4095)).build().unwrap();
        let err = client.get(server.url("/")).send().await.unwrap().bytes().await.unwrap_err();
        assert_too_large(&err);
        server.wait_peer_closed(1);
    });
}

#[test]
fn max_body_size_none_reads_past_64_mib_and_async_read_is_not_bounded() {
    let len = (64 << 20) + 1;
    let wire = response_bytes(200, &[], &vec![b'y'; len]);
    let server = server(move |conn, _| conn.write(&wire));
    run(move || async move {
        let client = Client::builder().max_body_size(None).build().unwrap();
        let body = client.get(server.url("/")).send().await.unwrap().bytes().await.unwrap();
        assert_eq!(body.len(), len);
        let client = Client::builder().max_body_size(Some(10)).build().unwrap();
        let mut read = Vec::new();
        client.get(server.url("/")).send().await.unwrap().read_to_end(&mut read).await.unwrap();
        assert_eq!(read.len(), len, "AsyncRead is not bounded by max_body_size");
    });
}

// ---------------------------------------------------------------------------
// json
// ---------------------------------------------------------------------------

#[cfg(feature = "json")]
mod json {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn json_deserializes_the_body() {
        let server = server(|conn, _| conn.write(&chunked(&[b"{\"a\": [1, 2],", b" \"b\": []}"], "")));
        run(move || async move {
            let map: BTreeMap<String, Vec<u32>> =
                Client::new().get(server.url("/")).send().await.unwrap().json().await.unwrap();
            assert_eq!(map["a"], [1, 2]);
            assert!(map["b"].is_empty());
        });
    }

    #[test]
    fn invalid_json_is_a_decode_error_with_line_and_column() {
        let server = server(|conn, target| match target {
            "/syntax" => conn.respond(200, &[], b"{\n  \"a\": 1,\n  oops\n}"),
            _ => conn.respond(200, &[], b"[1, \"two\"]"),
        });
        run(move || async move {
            let client = Client::new();
            let err =
                client.get(server.url("/syntax")).send().await.unwrap().json::<serde_json::Value>().await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Decode);
            let source = std::error::Error::source(&err).expect("serde's error is the source").to_string();
            assert!(source.contains("line 3 column 3"), "{source}");
            assert_eq!(err.url().map(|u| u.path()), Some("/syntax"));
            // Valid JSON of the wrong shape is a decode error too.
            let err = client.get(server.url("/shape")).send().await.unwrap().json::<Vec<u32>>().await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Decode);
            let source = std::error::Error::source(&err).unwrap().to_string();
            assert!(source.contains("line 1 column"), "{source}");
        });
    }

    #[test]
    fn json_is_bounded_by_max_body_size() {
        let server = server(|conn, _| conn.respond(200, &[], b"[1, 2, 3, 4, 5]"));
        run(move || async move {
            let client = Client::builder().max_body_size(Some(14)).build().unwrap();
            let err = client.get(server.url("/")).send().await.unwrap().json::<Vec<u32>>().await.unwrap_err();
            assert_too_large(&err);
            let client = Client::builder().max_body_size(Some(15)).build().unwrap();
            let list: Vec<u32> = client.get(server.url("/")).send().await.unwrap().json().await.unwrap();
            assert_eq!(list, [1, 2, 3, 4, 5]);
        });
    }
}
