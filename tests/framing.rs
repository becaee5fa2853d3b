//! Response framing (RFC 9112 section 6.3) against scripted servers that
//! send exact bytes: bodies, interim responses, connection reuse, rejects
//! and limits.

mod common;

use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use futures_lite::AsyncReadExt;
use smolreq::{Client, ErrorKind, Method, StatusCode, Version};

/// Every test body must finish within this bound, or the test fails.
const TEST_DEADLINE: Duration = Duration::from_secs(10);

/// A limit violation must be reported well within this bound.
const PROMPT: Duration = Duration::from_secs(3);

/// The answer to every request after the scripted first one.
const SECOND: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond";

/// Runs an async test body on its own thread under `smol::block_on`, failing
/// (instead of hanging) if it takes longer than [`TEST_DEADLINE`].
fn run<Fut: Future<Output = ()>>(f: impl FnOnce() -> Fut + Send + 'static) {
    with_deadline(TEST_DEADLINE, move || smol::block_on(f()));
}

/// A server answering the first request it reads (over all connections)
/// with exactly `first`, and every later request with [`SECOND`]. Each
/// connection is served until the client closes it.
fn scripted(first: impl Into<Vec<u8>>) -> Server {
    let first = first.into();
    let count = AtomicUsize::new(0);
    Server::start(move |conn| {
        while conn.read_request().is_some() {
            if count.fetch_add(1, Ordering::SeqCst) == 0 {
                conn.write(&first);
            } else {
                conn.write(SECOND);
            }
        }
    })
}

/// As [`scripted`], but the connection that carried `first` is closed (FIN)
/// right after it.
fn scripted_then_close(first: impl Into<Vec<u8>>) -> Server {
    let first = first.into();
    let count = AtomicUsize::new(0);
    Server::start(move |conn| {
        while conn.read_request().is_some() {
            if count.fetch_add(1, Ordering::SeqCst) == 0 {
                conn.write(&first);
                conn.close();
                return;
            }
            conn.write(SECOND);
        }
    })
}

/// GET `url` and read the whole body.
async fn get_body(client: &Client, url: &str) -> (StatusCode, Vec<u8>) {
    let resp = client.get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e:?}"));
    let status = resp.status();
    let body = resp.bytes().await.unwrap_or_else(|e| panic!("GET {url}: body: {e:?}"));
    (status, body.into())
}

/// Sends a second request to a [`scripted`] server, checks it got
/// [`SECOND`], and returns how many connections the server has accepted.
async fn second_request(client: &Client, server: &Server) -> usize {
    let (status, body) = get_body(client, &server.url("/second")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(String::from_utf8_lossy(&body), "second", "the second request got the wrong response");
    server.connections()
}

/// GET `url` expecting an error from `send()` or from reading the body;
/// a success (even a short one) fails the test.
async fn get_err(client: &Client, url: &str) -> smolreq::Error {
    match client.get(url).send().await {
        Err(e) => e,
        Ok(resp) => {
            let status = resp.status();
            match resp.bytes().await {
                Ok(body) => {
                    panic!("expected an error, got {status} with body {:?}", String::from_utf8_lossy(&body))
                }
                Err(e) => e,
            }
        }
    }
}

fn assert_protocol(err: &smolreq::Error) {
    assert_eq!(err.kind(), ErrorKind::Protocol, "expected a protocol error, got {err:?} ({err})");
}

/// A server answering with exactly `raw` must make the client fail with a
/// protocol error (from `send()` or from the body), never a success.
fn rejects(raw: impl Into<Vec<u8>>) -> smolreq::Error {
    let raw = raw.into();
    with_deadline(TEST_DEADLINE, move || {
        smol::block_on(async move {
            let server = scripted_then_close(raw);
            let client = Client::new();
            let err = get_err(&client, &server.url("/")).await;
            assert_protocol(&err);
            server.assert_no_handler_panics();
            err
        })
    })
}

fn chunked_head() -> Vec<u8> {
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec()
}

// ---------------------------------------------------------------------------
// Bodies and reuse
// ---------------------------------------------------------------------------

#[test]
fn content_length_body_is_read_and_connection_reused() {
    run(|| async {
        let server = scripted("HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-Test: yes\r\n\r\nhello world");
        let client = Client::new();
        let resp = client.get(server.url("/")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.version(), Version::HTTP_11);
        assert_eq!(resp.headers()["x-test"], "yes");
        assert_eq!(resp.bytes().await.unwrap(), &b"hello world"[..]);
        assert_eq!(second_request(&client, &server).await, 1);
    });
}

#[test]
fn zero_content_length_body_is_empty_and_connection_reused() {
    run(|| async {
        let server = scripted("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let client = Client::new();
        let (status, body) = get_body(&client, &server.url("/")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.is_empty());
        assert_eq!(second_request(&client, &server).await, 1);
    });
}

#[test]
fn head_response_with_content_length_has_no_body_and_connection_reused() {
    run(|| async {
        let server = scripted("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
        let client = Client::new();
        let resp = client.head(server.url("/")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-length"], "100");
        assert!(resp.bytes().await.unwrap().is_empty());
        assert_eq!(server.received()[0].method, "HEAD");
        assert_eq!(second_request(&client, &server).await, 1);
    });
}

#[test]
fn no_content_204_with_content_length_has_no_body_and_connection_reused() {
    run(|| async {
        let server = scripted("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n");
        let client = Client::new();
        let (status, body) = get_body(&client, &server.url("/")).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert!(body.is_empty());
        assert_eq!(second_request(&client, &server).await, 1);
    });
}

#[test]
fn not_modified_304_with_content_length_has_no_body_and_connection_reused() {
    run(|| async {
        let server = scripted("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"x\"\r\n\r\n");
        let client = Client::new();
        let (status, body) = get_body(&client, &server.url("/")).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
        assert_eq!(second_request(&client, &server).await, 1);
    });
}

#[test]
fn interim_100_102_103_responses_are_skipped() {
    run(|| async {
        let server = scripted(
            "HTTP/1.1 100 Continue\r\n\r\n\
             HTTP/1.1 102 Processing\r\nX-Interim: 102\r\n\r\n\
             HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n\
             HTTP/1.1 200 OK\r\nX-Final: yes\r\nContent-Length: 5\r\n\r\nfinal",
        );
        let client = Client::new();
        let resp = client.get(server.url("/")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["x-final"], "yes");
        assert!(resp.headers().get("x-interim").is_none(), "headers of an interim response leaked");
        assert!(resp.headers().get("link").is_none(), "headers of an interim response leaked");
        assert_eq!(resp.bytes().await.unwrap(), &b"final"[..]);
        assert_eq!(second_request(&client, &server).await, 1);
    });
}

#[test]
fn interim_responses_in_separate_writes_are_skipped() {
    run(|| async {
        let server = Server::start(|conn| {
            if conn.read_request().is_none() {
                return;
            }
            for part in [
                &b"HTTP/1.1 100 Continue\r\n\r\n"[..],
                b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            ] {
                conn.write(part);
                thread::sleep(Duration::from_millis(30));
            }
        });
        let client = Client::new();
        let resp = client.get(server.url("/")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers().get("link").is_none());
        assert_eq!(resp.bytes().await.unwrap(), &b"ok"[..]);
    });
}

#[test]
fn switching_protocols_101_is_an_error() {
    let err = rejects("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
    assert!(err.to_string().contains("101"), "{err}");
}

#[test]
fn chunked_body_is_decoded_and_connection_reused() {
    run(|| async {
        let mut raw = chunked_head();
        raw.extend_from_slice(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
        let server = scripted(raw);
        let client = Client::new();
        let (_, body) = get_body(&client, &server.url("/")).await;
        assert_eq!(body, b"hello world");
        assert_eq!(second_request(&client, &server).await, 1);
    });
}

#[test]
fn chunked_body_with_extensions_is_decoded() {
    run(|| async {
        let mut raw = chunked_head();
        raw.extend_from_slice(b"5;name=value\r\nhello\r\n6 ;a;b=\"q;x\"\r\n world\r\n0;last\r\n\r\n");
        let server = scripted(raw);
        let client = Client::new();
        let (_, body) = get_body(&client, &server.url("/")).await;
        assert_eq!(body, b"hello world");
        assert_eq!(second_request(&client, &server).await, 1);
    });
}

#[test]
fn chunked_body_with_trailers_is_decoded_and_trailers_consumed() {
    run(|| async {
        let mut raw = chunked_head();
        raw.extend_from_slice(b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other: 2\r\n\r\n");
        let server = scripted(raw);
        let client = Client::new();
        let (_, body) = get_body(&client, &server.url("/")).await;
        assert_eq!(body, b"hello");
        // Trailers left unread would be parsed as the next response (or
        // make the connection unusable); the next exchange must be clean.
        assert_eq!(second_request(&client, &server).await, 1);
    });
}

#[test]
fn chunked_body_one_chunk_per_write_with_pauses() {
    run(|| async {
        let server = Server::start(|conn| {
            while conn.read_request().is_some() {
                conn.write(&chunked_head());
                for part in [&b"3\r\nabc\r\n"[..], b"4\r\ndefg\r\n", b"a\r\n0123456789\r\n", b"0\r\n\r\n"] {
                    thread::sleep(Duration::from_millis(40));
                    conn.write(part);
                }
            }
        });
        let client = Client::new();
        let (_, body) = get_body(&client, &server.url("/")).await;
        assert_eq!(body, b"abcdefg0123456789");
        let (_, body) = get_body(&client, &server.url("/")).await;
        assert_eq!(body, b"abcdefg0123456789");
        assert_eq!(server.connections(), 1);
    });
}

#[test]
fn chunked_body_written_one_byte_at_a_time() {
    run(|| async {
        let server = Server::start(|conn| {
            while conn.read_request().is_some() {
                let mut raw = chunked_head();
                raw.extend_from_slice(b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-T: 1\r\n\r\n");
                conn.write_slowly(&raw, Duration::from_micros(300));
            }
        });
        let client = Client::new();
        let (status, body) = get_body(&client, &server.url("/")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, b"hello world");
        let (_, body) = get_body(&client, &server.url("/")).await;
        assert_eq!(body, b"hello world");
        assert_eq!(server.connections(), 1);
    });
}

#[test]
fn content_length_body_written_one_byte_at_a_time() {
    run(|| async {
        let server = Server::start(|conn| {
            if conn.read_request().is_some() {
                conn.write_slowly(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789",
                    Duration::from_micros(300),
                );
            }
        });
        let client = Client::new();
        let (_, body) = get_body(&client, &server.url("/")).await;
        assert_eq!(body, b"0123456789");
    });
}

#[test]
fn close_delimited_body_is_read_fully_and_connection_not_reused() {
    run(|| async {
        let server =
            scripted_then_close("HTTP/1.1 200 OK\r\nX-Kind: close-delimited\r\n\r\nall of this until the close");
        let client = Client::new();
        let (status, body) = get_body(&client, &server.url("/")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, b"all of this until the close");
        assert_eq!(second_request(&client, &server).await, 2);
    });
}

#[test]
fn http10_response_without_keep_alive_is_not_reused() {
    run(|| async {
        // The server keeps the connection open: only the client's framing
        // rules can keep it from being reused.
        let server = scripted("HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        let client = Client::new();
        let resp = client.get(server.url("/")).send().await.unwrap();
        assert_eq!(resp.version(), Version::HTTP_10);
        assert_eq!(resp.bytes().await.unwrap(), &b"hello"[..]);
        assert_eq!(second_request(&client, &server).await, 2);
    });
}

#[test]
fn http10_response_with_keep_alive_and_content_length_is_reused() {
    run(|| async {
        let server = scripted("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhello");
        let client = Client::new();
        let resp = client.get(server.url("/")).send().await.unwrap();
        assert_eq!(resp.version(), Version::HTTP_10);
        assert_eq!(resp.bytes().await.unwrap(), &b"hello"[..]);
        assert_eq!(second_request(&client, &server).await, 1);
    });
}

#[test]
fn connection_close_response_is_not_reused() {
    run(|| async {
        let server = scripted("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello");
        let client = Client::new();
        let (_, body) = get_body(&client, &server.url("/")).await;
        assert_eq!(body, b"hello");
        assert_eq!(second_request(&client, &server).await, 2);
    });
}

#[test]
fn obs_fold_header_value_is_unfolded_to_single_space() {
    run(|| async {
        let server = scripted(
            "HTTP/1.1 200 OK\r\nX-Folded: first\r\n second\r\n\tthird\r\nX-After: ok\r\nContent-Length: 4\r\n\r\nbody",
        );
        let client = Client::new();
        let resp = client.get(server.url("/")).send().await.unwrap();
        assert_eq!(resp.headers()["x-folded"], "first second third");
        assert_eq!(resp.headers()["x-after"], "ok");
        assert_eq!(resp.bytes().await.unwrap(), &b"body"[..]);
    });
}

#[test]
fn transfer_encoding_and_content_length_chunked_wins_and_connection_not_reused() {
    run(|| async {
        let server = scripted(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        );
        let client = Client::new();
        let (_, body) = get_body(&client, &server.url("/")).await;
        assert_eq!(body, b"hello");
        assert_eq!(second_request(&client, &server).await, 2);
    });
}

#[test]
fn body_read_with_one_byte_buffer_equals_bytes() {
    run(|| async {
        const RAW: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            7;x=y\r\nabcdefg\r\n1\r\nh\r\n10\r\nijklmnopqrstuvwx\r\n0\r\nX-T: z\r\n\r\n";
        let server = Server::start(|conn| {
            while conn.read_request().is_some() {
                conn.write(RAW);
            }
        });
        let client = Client::new();
        let mut resp = client.get(server.url("/")).send().await.unwrap();
        let mut by_byte = Vec::new();
        let mut one = [0u8; 1];
        loop {
            let n = resp.read(&mut one).await.unwrap();
            if n == 0 {
                break;
            }
            assert_eq!(n, 1);
            by_byte.push(one[0]);
        }
        drop(resp);
        let (_, whole) = get_body(&client, &server.url("/")).await;
        assert_eq!(by_byte, whole);
        assert_eq!(whole, b"abcdefghijklmnopqrstuvwx");
        // Reading to EOF through AsyncRead released the connection too.
        assert_eq!(server.connections(), 1);
    });
}

#[test]
fn content_length_body_read_with_one_byte_buffer_equals_bytes() {
    run(|| async {
        let server = Server::start(|conn| {
            while conn.read_request().is_some() {
                conn.respond(200, &[], b"0123456789abcdef");
            }
        });
        let client = Client::new();
        let mut body = client.get(server.url("/")).send().await.unwrap().into_body();
        let mut by_byte = Vec::new();
        let mut one = [0u8; 1];
        while body.read(&mut one).await.unwrap() == 1 {
            by_byte.push(one[0]);
        }
        drop(body);
        let (_, whole) = get_body(&client, &server.url("/")).await;
        assert_eq!(by_byte, whole);
        assert_eq!(whole, b"0123456789abcdef");
        assert_eq!(server.connections(), 1);
    });
}

// ---------------------------------------------------------------------------
// Rejects
// ---------------------------------------------------------------------------

#[test]
fn conflicting_content_lengths_are_rejected() {
    rejects("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!");
}

#[test]
fn conflicting_content_lengths_in_one_field_are_rejected() {
    rejects("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!");
}

#[test]
fn negative_content_length_is_rejected() {
    rejects("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello");
}

#[test]
fn plus_signed_content_length_is_rejected() {
    rejects("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello");
}

#[test]
fn non_numeric_content_length_is_rejected() {
    rejects("HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello");
}

#[test]
fn content_length_with_inner_space_is_rejected() {
    rejects("HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\nhello hello!");
}

#[test]
fn overflowing_chunk_size_is_rejected() {
    let mut raw = chunked_head();
    raw.extend_from_slice(b"fffffffffffffffff\r\nhello\r\n0\r\n\r\n");
    rejects(raw);
}

#[test]
fn hex_prefixed_chunk_size_is_rejected() {
    let mut raw = chunked_head();
    raw.extend_from_slice(b"0x5\r\nhello\r\n0\r\n\r\n");
    rejects(raw);
}

#[test]
fn plus_signed_chunk_size_is_rejected() {
    let mut raw = chunked_head();
    raw.extend_from_slice(b"+5\r\nhello\r\n0\r\n\r\n");
    rejects(raw);
}

#[test]
fn minus_signed_chunk_size_is_rejected() {
    let mut raw = chunked_head();
    raw.extend_from_slice(b"-5\r\nhello\r\n0\r\n\r\n");
    rejects(raw);
}

#[test]
fn missing_crlf_after_chunk_data_is_rejected() {
    let mut raw = chunked_head();
    raw.extend_from_slice(b"5\r\nhelloXX0\r\n\r\n");
    rejects(raw);
}

#[test]
fn chunk_data_longer_than_its_size_is_rejected() {
    let mut raw = chunked_head();
    raw.extend_from_slice(b"3\r\nhello\r\n0\r\n\r\n");
    rejects(raw);
}

#[test]
fn truncated_content_length_body_is_an_error() {
    let err = rejects("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello");
    assert!(err.to_string().contains("closed before the body was complete"), "{err}");
}

#[test]
fn truncated_content_length_body_via_async_read_is_invalid_data_with_protocol_error() {
    run(|| async {
        let server = scripted_then_close("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello");
        let client = Client::new();
        let mut resp = client.get(server.url("/")).send().await.unwrap();
        let mut out = Vec::new();
        let err = resp.read_to_end(&mut out).await.expect_err("a truncated body must not read as a success");
        assert_eq!(out, b"hello", "the bytes that did arrive are delivered before the error");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err:?}");
        let inner = err.get_ref().and_then(|e| e.downcast_ref::<smolreq::Error>()).expect("inner smolreq::Error");
        assert_protocol(inner);
    });
}

#[test]
fn truncated_chunked_body_between_chunks_is_an_error() {
    let mut raw = chunked_head();
    raw.extend_from_slice(b"5\r\nhello\r\n");
    rejects(raw);
}

#[test]
fn truncated_chunked_body_inside_chunk_data_is_an_error() {
    let mut raw = chunked_head();
    raw.extend_from_slice(b"a\r\nhello");
    rejects(raw);
}

#[test]
fn truncated_chunked_body_inside_trailers_is_an_error() {
    let mut raw = chunked_head();
    raw.extend_from_slice(b"5\r\nhello\r\n0\r\nX-T: 1\r\n");
    rejects(raw);
}

#[test]
fn non_numeric_status_line_is_rejected() {
    rejects("HTTP/1.1 abc\r\nContent-Length: 0\r\n\r\n");
}

#[test]
fn garbage_status_line_is_rejected() {
    rejects("FOO\r\n\r\n");
}

#[test]
fn status_099_is_rejected() {
    rejects("HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n");
}

#[test]
fn two_digit_status_99_is_rejected() {
    rejects("HTTP/1.1 99 Low\r\nContent-Length: 0\r\n\r\n");
}

#[test]
fn four_digit_status_1000_is_rejected() {
    rejects("HTTP/1.1 1000 High\r\nContent-Length: 0\r\n\r\n");
}

#[test]
fn unsupported_transfer_coding_gzip_is_rejected() {
    rejects(&b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b\x08\x00"[..]);
}

#[test]
fn transfer_encoding_in_http10_response_is_rejected() {
    let err = rejects("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    assert!(err.to_string().contains("Transfer-Encoding"), "{err}");
}

#[test]
fn bytes_after_a_response_never_become_the_next_response() {
    run(|| async {
        // One write: a complete response followed by a forged second one.
        let server = scripted(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil",
        );
        let client = Client::new();
        let (_, body) = get_body(&client, &server.url("/")).await;
        assert_eq!(body, b"hello");
        // The second request must go out on a new connection and get the
        // server's real answer, not the forged bytes.
        assert_eq!(second_request(&client, &server).await, 2);
    });
}

// ---------------------------------------------------------------------------
// Large bodies: `bytes()` reads these straight into its vector
// ---------------------------------------------------------------------------

/// `len` bytes that differ from one position to the next, so a byte read
/// twice, skipped or misplaced changes the result.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ (i >> 12) as u8).collect()
}

/// A server answering the first request with a `len`-byte body framed by
/// `framing` and written in pieces of `piece` bytes with short pauses (so
/// the client sees partial reads and would-block in the middle), then
/// [`SECOND`] to every later request.
fn large_body_server(len: usize, framing: &'static str, piece: usize) -> Server {
    let body = pattern(len);
    let count = AtomicUsize::new(0);
    Server::start(move |conn| {
        while conn.read_request().is_some() {
            if count.fetch_add(1, Ordering::SeqCst) > 0 {
                conn.write(SECOND);
                continue;
            }
            let mut wire = Vec::new();
            match framing {
                "length" => {
                    wire.extend_from_slice(format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n").as_bytes());
                    wire.extend_from_slice(&body);
                }
                "chunked" => {
                    wire.extend_from_slice(&chunked_head());
                    for chunk in body.chunks(1000) {
                        wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                        wire.extend_from_slice(chunk);
                        wire.extend_from_slice(b"\r\n");
                    }
                    wire.extend_from_slice(b"0\r\n\r\n");
                }
                _ => {
                    wire.extend_from_slice(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
                    wire.extend_from_slice(&body);
                }
            }
            for (i, part) in wire.chunks(piece).enumerate() {
                conn.write(part);
                if i % 4 == 3 {
                    thread::sleep(Duration::from_millis(2));
                }
            }
            if framing == "close" {
                conn.close();
                return;
            }
        }
    })
}

/// GETs a large body from [`large_body_server`], checks it byte for byte,
/// then sends a second request; returns the connections the server saw.
fn large_body_then_second_request(len: usize, framing: &'static str, piece: usize) -> usize {
    with_deadline(TEST_DEADLINE, move || {
        smol::block_on(async move {
            let server = large_body_server(len, framing, piece);
            let client = Client::new();
            let (status, body) = get_body(&client, &server.url("/")).await;
            assert_eq!(status, StatusCode::OK);
            assert!(body == pattern(len), "the body differs from what was sent ({} of {len} bytes)", body.len());
            second_request(&client, &server).await
        })
    })
}

#[test]
fn large_content_length_body_in_pieces_is_exact_and_connection_reused() {
    let connections = large_body_then_second_request((1 << 20) + 17, "length", 50_000);
    assert_eq!(connections, 1, "a fully read body releases its connection");
}

#[test]
fn large_chunked_body_in_pieces_is_exact_and_connection_reused() {
    assert_eq!(large_body_then_second_request(300_000, "chunked", 7_000), 1);
}

#[test]
fn large_close_delimited_body_in_pieces_is_exact_and_not_reused() {
    assert_eq!(large_body_then_second_request(500_000, "close", 30_000), 2);
}

#[test]
fn truncated_large_content_length_body_is_an_error_not_a_short_body() {
    let mut raw = b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n".to_vec();
    raw.extend_from_slice(&pattern(300_000));
    rejects(raw);
}

#[test]
fn bytes_after_a_large_body_are_not_read_into_it_nor_taken_as_the_next_response() {
    run(|| async {
        let len = 200_000;
        let mut raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n").into_bytes();
        raw.extend_from_slice(&pattern(len));
        raw.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil");
        let server = scripted(raw);
        let client = Client::new();
        let (_, body) = get_body(&client, &server.url("/")).await;
        assert!(body == pattern(len), "the body must stop exactly at its length ({} of {len} bytes)", body.len());
        assert_eq!(second_request(&client, &server).await, 2);
    });
}

// ---------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------

#[test]
fn endless_header_is_rejected_promptly_and_connection_closed() {
    run(|| async {
        let (tx, rx) = mpsc::channel();
        let server = Server::start(move |conn| {
            if conn.read_request().is_none() {
                return;
            }
            conn.write(b"HTTP/1.1 200 OK\r\nX: ");
            let chunk = vec![b'a'; 8192];
            let start = Instant::now();
            let client_closed = loop {
                if start.elapsed() > Duration::from_secs(8) {
                    break false;
                }
                if conn.stream().write_all(&chunk).is_err() {
                    break true;
                }
            };
            let _ = tx.send(client_closed);
        });
        let client = Client::new();
        let start = Instant::now();
        let err = get_err(&client, &server.url("/")).await;
        let elapsed = start.elapsed();
        assert_protocol(&err);
        assert!(err.to_string().contains("response head exceeds the limit"), "{err}");
        assert!(elapsed < PROMPT, "endless header took {elapsed:?} to be rejected");
        let closed = rx.recv_timeout(Duration::from_secs(6)).expect("server writer did not finish");
        assert!(closed, "the client did not close the connection after rejecting the endless header");
    });
}

#[test]
fn ten_thousand_header_fields_are_rejected() {
    let mut raw = b"HTTP/1.1 200 OK\r\n".to_vec();
    for _ in 0..10_000 {
        raw.extend_from_slice(b"a: b\r\n");
    }
    raw.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    // 60 KB: under the 64 KiB head limit, so the field count is what trips.
    assert!(raw.len() < 64 * 1024);
    let start = Instant::now();
    let err = rejects(raw);
    assert!(start.elapsed() < PROMPT, "took {:?}", start.elapsed());
    assert!(err.to_string().contains("header fields"), "{err}");
}

#[test]
fn one_mebibyte_chunk_extension_is_rejected_promptly() {
    let mut raw = chunked_head();
    raw.extend_from_slice(b"5;");
    raw.resize(raw.len() + (1 << 20), b'a');
    raw.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    let start = Instant::now();
    let err = rejects(raw);
    assert!(start.elapsed() < PROMPT, "took {:?}", start.elapsed());
    assert!(err.to_string().contains("chunk size line exceeds"), "{err}");
}

#[test]
fn trailers_over_16_kib_are_rejected() {
    let mut raw = chunked_head();
    raw.extend_from_slice(b"5\r\nhello\r\n0\r\n");
    for i in 0..200 {
        raw.extend_from_slice(format!("X-T{i}: {}\r\n", "a".repeat(100)).as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    let err = rejects(raw);
    assert!(err.to_string().contains("trailer section exceeds"), "{err}");
}

#[test]
fn trailers_under_16_kib_are_accepted() {
    run(|| async {
        let mut raw = chunked_head();
        raw.extend_from_slice(b"5\r\nhello\r\n0\r\n");
        for i in 0..100 {
            raw.extend_from_slice(format!("X-T{i}: {}\r\n", "a".repeat(100)).as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        let server = scripted(raw);
        let client = Client::new();
        let (_, body) = get_body(&client, &server.url("/")).await;
        assert_eq!(body, b"hello");
        assert_eq!(second_request(&client, &server).await, 1);
    });
}

/// A response with `n` header fields in total (Content-Length included).
fn response_with_fields(n: usize) -> Vec<u8> {
    let mut raw = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..n - 1 {
        raw.extend_from_slice(format!("X-F{i}: v\r\n").as_bytes());
    }
    raw.extend_from_slice(b"Content-Length: 2\r\n\r\nok");
    raw
}

#[test]
fn custom_max_headers_5_rejects_6_fields() {
    run(|| async {
        let server = scripted_then_close(response_with_fields(6));
        let client = Client::builder().max_headers(5).build().unwrap();
        let err = get_err(&client, &server.url("/")).await;
        assert_protocol(&err);
        assert!(err.to_string().contains("more than 5 header fields"), "{err}");
    });
}

#[test]
fn custom_max_headers_5_accepts_5_fields() {
    run(|| async {
        let server = scripted(response_with_fields(5));
        let client = Client::builder().max_headers(5).build().unwrap();
        let (_, body) = get_body(&client, &server.url("/")).await;
        assert_eq!(body, b"ok");
    });
}

/// A response whose head is `size` bytes long (give or take a few).
fn response_with_head_size(size: usize) -> Vec<u8> {
    let mut raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Big: ".to_vec();
    raw.resize(size.saturating_sub(4), b'b');
    raw.extend_from_slice(b"\r\n\r\nok");
    raw
}

#[test]
fn custom_max_response_head_size_1024_rejects_2_kib_head() {
    run(|| async {
        let server = scripted_then_close(response_with_head_size(2048));
        let client = Client::builder().max_response_head_size(1024).build().unwrap();
        let err = get_err(&client, &server.url("/")).await;
        assert_protocol(&err);
        assert!(err.to_string().contains("1024"), "{err}");
    });
}

#[test]
fn custom_max_response_head_size_1024_accepts_900_byte_head() {
    run(|| async {
        let server = scripted(response_with_head_size(900));
        let client = Client::builder().max_response_head_size(1024).build().unwrap();
        let (_, body) = get_body(&client, &server.url("/")).await;
        assert_eq!(body, b"ok");
    });
}

#[test]
fn default_head_size_limit_rejects_100_kib_head() {
    let err = rejects(response_with_head_size(100 * 1024));
    assert!(err.to_string().contains("65536"), "{err}");
}

#[test]
fn raised_max_response_head_size_accepts_100_kib_head() {
    run(|| async {
        let server = scripted(response_with_head_size(100 * 1024));
        let client = Client::builder().max_response_head_size(256 * 1024).build().unwrap();
        let resp = client.get(server.url("/")).send().await.unwrap();
        assert!(resp.headers()["x-big"].len() > 90 * 1024);
        assert_eq!(resp.bytes().await.unwrap(), &b"ok"[..]);
    });
}

#[test]
fn raised_max_headers_accepts_500_fields() {
    run(|| async {
        let server = scripted(response_with_fields(500));
        let client = Client::builder().max_headers(1000).build().unwrap();
        let resp = client.get(server.url("/")).send().await.unwrap();
        assert_eq!(resp.headers().len(), 500);
        assert_eq!(resp.bytes().await.unwrap(), &b"ok"[..]);
    });
}

#[test]
fn custom_max_chunk_line_size_rejects_longer_extension() {
    run(|| async {
        let mut raw = chunked_head();
        raw.extend_from_slice(b"5;ext=0123456789012345678901234567890123456789\r\nhello\r\n0\r\n\r\n");
        let server = scripted_then_close(raw);
        let client = Client::builder().max_chunk_line_size(16).build().unwrap();
        let err = get_err(&client, &server.url("/")).await;
        assert_protocol(&err);
    });
}

#[test]
fn custom_max_trailer_size_rejects_larger_trailers() {
    run(|| async {
        let mut raw = chunked_head();
        raw.extend_from_slice(b"5\r\nhello\r\n0\r\nX-Trailer: 0123456789012345678901234567890123456789\r\n\r\n");
        let server = scripted_then_close(raw);
        let client = Client::builder().max_trailer_size(32).build().unwrap();
        let err = get_err(&client, &server.url("/")).await;
        assert_protocol(&err);
    });
}

#[test]
fn head_method_ignores_chunked_framing_of_response() {
    run(|| async {
        // A HEAD response never has a body, whatever its framing headers say.
        let server = scripted("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        let client = Client::new();
        let resp = client.request(Method::HEAD, server.url("/")).send().await.unwrap();
        assert!(resp.bytes().await.unwrap().is_empty());
        assert_eq!(second_request(&client, &server).await, 1);
    });
}

#[test]
fn higher_minor_version_is_processed_as_http11_and_reused() {
    // RFC 9110 section 2.5: HTTP/1.2 is handled as the highest 1.x we
    // implement, so keep-alive is the default and the connection is reused.
    run(|| async {
        let server = scripted("HTTP/1.2 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        let client = Client::new();
        let resp = client.get(server.url("/")).send().await.unwrap();
        assert_eq!((resp.status(), resp.version()), (StatusCode::OK, Version::HTTP_11));
        assert!(resp.raw_head().starts_with(b"HTTP/1.2 200 OK\r\n"), "raw_head is what the server sent");
        assert_eq!(resp.bytes().await.unwrap(), &b"hello"[..]);
        assert_eq!(second_request(&client, &server).await, 1);
    });
}

#[test]
fn other_http_versions_are_refused() {
    for line in ["HTTP/2.0 200 OK", "HTTP/1.10 200 OK", "HTTP/0.9 200 OK"] {
        let err = rejects(format!("{line}\r\nContent-Length: 0\r\n\r\n"));
        assert_protocol(&err);
    }
}
