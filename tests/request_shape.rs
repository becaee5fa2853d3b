//! What goes on the wire: request line, Host, User-Agent, framing headers,
//! bodies, and the requests that must be refused before a byte is sent.

mod common;

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use common::*;
use futures_lite::AsyncRead;
use smolreq::{Client, ErrorKind, HeaderMap, HeaderValue, Method, StatusCode};

/// Every test body must finish within this bound, or the test fails.
const TEST_DEADLINE: Duration = Duration::from_secs(10);

/// Runs an async test body on its own thread under `smol::block_on`, failing
/// (instead of hanging) if it takes longer than [`TEST_DEADLINE`].
fn run<Fut: Future<Output = ()>>(f: impl FnOnce() -> Fut + Send + 'static) {
    with_deadline(TEST_DEADLINE, move || smol::block_on(f()));
}

/// Sends `request`, checks the 200 "ok" answer of [`echo_ok_server`], and
/// returns the single request the server received.
async fn roundtrip(server: &Server, request: smolreq::RequestBuilder) -> Request {
    let resp = request.send().await.unwrap_or_else(|e| panic!("send: {e:?}"));
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap(), &b"ok"[..]);
    let received = server.received();
    assert_eq!(received.len(), 1, "expected exactly one request on the wire");
    received.into_iter().next().unwrap()
}

/// Asserts that nothing reached the server: no connection, no request.
fn assert_nothing_sent(server: &Server) {
    // A wrongly dialled connection may take a moment to be accepted.
    thread::sleep(Duration::from_millis(100));
    assert_eq!(server.connections(), 0, "a connection was opened for a request that must be refused");
    assert_eq!(server.requests(), 0);
}

/// A reader that yields its pieces one per `poll_read` (split further only
/// if the caller's buffer is smaller).
struct Pieces(VecDeque<Vec<u8>>);

impl Pieces {
    fn new(pieces: &[&[u8]]) -> Pieces {
        Pieces(pieces.iter().map(|p| p.to_vec()).collect())
    }
}

impl AsyncRead for Pieces {
    fn poll_read(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let Some(front) = self.0.front_mut() else { return Poll::Ready(Ok(0)) };
        let n = front.len().min(buf.len());
        buf[..n].copy_from_slice(&front[..n]);
        front.drain(..n);
        if front.is_empty() {
            self.0.pop_front();
        }
        Poll::Ready(Ok(n))
    }
}

// ---------------------------------------------------------------------------
// Request line and default headers
// ---------------------------------------------------------------------------

#[test]
fn request_line_is_exact() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let req = roundtrip(&server, client.get(server.url("/path?q=1"))).await;
        assert!(req.head_str().starts_with("GET /path?q=1 HTTP/1.1\r\n"), "{}", req.head_str());
        assert_eq!(req.method, "GET");
        assert_eq!(req.target, "/path?q=1");
        assert_eq!(req.version, 1);
    });
}

#[test]
fn url_without_path_requests_slash() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let url = format!("http://{}", server.addr());
        let req = roundtrip(&server, client.get(url)).await;
        assert!(req.head_str().starts_with("GET / HTTP/1.1\r\n"), "{}", req.head_str());
    });
}

#[test]
fn exactly_one_host_header_with_non_default_port() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let req = roundtrip(&server, client.get(server.url("/"))).await;
        assert_eq!(req.header_count("host"), 1, "{}", req.head_str());
        assert_eq!(req.header("host"), Some(format!("127.0.0.1:{}", server.addr().port()).as_str()));
    });
}

#[test]
fn default_user_agent_is_smolreq_version() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let req = roundtrip(&server, client.get(server.url("/"))).await;
        assert_eq!(req.header_count("user-agent"), 1, "{}", req.head_str());
        assert_eq!(req.header("user-agent"), Some("smolreq/0.1.0"));
    });
}

#[test]
fn builder_user_agent_replaces_default() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::builder().user_agent("my-agent/2.0").build().unwrap();
        let req = roundtrip(&server, client.get(server.url("/"))).await;
        assert_eq!(req.header_all("user-agent"), ["my-agent/2.0"], "{}", req.head_str());
    });
}

#[test]
fn request_user_agent_header_replaces_default() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let req = roundtrip(&server, client.get(server.url("/")).header("user-agent", "mine/1")).await;
        assert_eq!(req.header_all("user-agent"), ["mine/1"], "{}", req.head_str());
    });
}

#[test]
fn user_host_header_overrides_and_is_the_only_one() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let req = roundtrip(&server, client.get(server.url("/")).header("host", "example.test")).await;
        assert_eq!(req.header_all("host"), ["example.test"], "{}", req.head_str());
    });
}

#[test]
fn get_without_body_has_no_content_length_nor_transfer_encoding() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let req = roundtrip(&server, client.get(server.url("/"))).await;
        assert_eq!(req.header_count("content-length"), 0, "{}", req.head_str());
        assert_eq!(req.header_count("transfer-encoding"), 0, "{}", req.head_str());
        assert!(req.body.is_empty());
    });
}

// ---------------------------------------------------------------------------
// Bodies and framing headers
// ---------------------------------------------------------------------------

#[test]
fn post_with_body_sends_content_length_and_body() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let req = roundtrip(&server, client.post(server.url("/items")).body("abc")).await;
        assert_eq!(req.method, "POST");
        assert_eq!(req.header_all("content-length"), ["3"], "{}", req.head_str());
        assert_eq!(req.header_count("transfer-encoding"), 0);
        assert!(!req.chunked);
        assert_eq!(req.body, b"abc");
    });
}

#[test]
fn large_body_is_sent_whole_with_content_length() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let req = roundtrip(&server, client.put(server.url("/big")).body(body.clone())).await;
        assert_eq!(req.header_all("content-length"), ["100000"]);
        assert_eq!(req.body, body);
    });
}

#[test]
fn post_with_empty_body_sends_content_length_zero() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let req = roundtrip(&server, client.post(server.url("/"))).await;
        assert_eq!(req.header_all("content-length"), ["0"], "{}", req.head_str());
        assert_eq!(req.header_count("transfer-encoding"), 0);
    });
}

#[test]
fn put_with_empty_body_sends_content_length_zero() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let req = roundtrip(&server, client.put(server.url("/")).body("")).await;
        assert_eq!(req.method, "PUT");
        assert_eq!(req.header_all("content-length"), ["0"], "{}", req.head_str());
    });
}

#[test]
fn patch_with_empty_body_sends_content_length_zero() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let req = roundtrip(&server, client.patch(server.url("/"))).await;
        assert_eq!(req.method, "PATCH");
        assert_eq!(req.header_all("content-length"), ["0"], "{}", req.head_str());
    });
}

#[test]
fn body_reader_with_known_length_sends_content_length() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let reader = Pieces::new(&[b"abc", b"defgh", b"ij"]);
        let req = roundtrip(&server, client.post(server.url("/")).body_reader(reader, Some(10))).await;
        assert_eq!(req.header_all("content-length"), ["10"], "{}", req.head_str());
        assert_eq!(req.header_count("transfer-encoding"), 0);
        assert!(!req.chunked);
        assert_eq!(req.body, b"abcdefghij");
    });
}

#[test]
fn body_reader_with_unknown_length_is_sent_chunked() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let reader = Pieces::new(&[b"abc", b"defgh", b"ij"]);
        let req = roundtrip(&server, client.post(server.url("/")).body_reader(reader, None)).await;
        assert_eq!(req.header_all("transfer-encoding"), ["chunked"], "{}", req.head_str());
        assert_eq!(req.header_count("content-length"), 0, "{}", req.head_str());
        assert!(req.chunked);
        assert_eq!(req.body, b"abcdefghij");
        assert!(req.trailers.is_empty());
        assert!(req.raw_body.starts_with(b"3\r\nabc\r\n"), "{:?}", String::from_utf8_lossy(&req.raw_body));
        assert!(req.raw_body.ends_with(b"\r\n0\r\n\r\n"), "{:?}", String::from_utf8_lossy(&req.raw_body));
    });
}

#[test]
fn body_reader_cursor_with_unknown_length_is_sent_chunked() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
        let reader = futures_lite::io::Cursor::new(data.clone());
        let req = roundtrip(&server, client.put(server.url("/")).body_reader(reader, None)).await;
        assert!(req.chunked, "{}", req.head_str());
        assert_eq!(req.body, data);
    });
}

#[test]
fn body_reader_with_empty_stream_and_unknown_length_sends_last_chunk_only() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let req = roundtrip(&server, client.post(server.url("/")).body_reader(Pieces::new(&[]), None)).await;
        assert!(req.chunked);
        assert_eq!(req.raw_body, b"0\r\n\r\n");
    });
}

#[test]
fn body_reader_shorter_than_declared_length_is_a_body_error() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let reader = Pieces::new(&[b"abc"]);
        let err = client.post(server.url("/")).body_reader(reader, Some(10)).send().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Body, "{err:?}");
        // The server never saw a complete request.
        thread::sleep(Duration::from_millis(100));
        assert_eq!(server.requests(), 0);
    });
}

#[test]
fn body_reader_longer_than_declared_length_sends_only_the_length() {
    // The reader is never asked for more than the declared length (one
    // that then blocks, like a pipe, must not stall the request), so the
    // bytes after it are never read.
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let reader = Pieces::new(&[b"abc", b"defgh"]);
        let req = roundtrip(&server, client.post(server.url("/")).body_reader(reader, Some(4))).await;
        assert_eq!(req.body, b"abcd");
    });
}

// ---------------------------------------------------------------------------
// Query and headers
// ---------------------------------------------------------------------------

#[test]
fn query_pairs_are_form_encoded() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let req = roundtrip(&server, client.get(server.url("/s")).query(&[("a", "b c"), ("x&y", "1=2")])).await;
        assert_eq!(req.target, "/s?a=b+c&x%26y=1%3D2");
    });
}

#[test]
fn query_pairs_are_appended_to_existing_query() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let req = roundtrip(&server, client.get(server.url("/s?lang=en")).query(&[("q", "é")])).await;
        assert_eq!(req.target, "/s?lang=en&q=%C3%A9");
    });
}

#[test]
fn custom_headers_appear() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let mut map = HeaderMap::new();
        map.insert("x-from-map", HeaderValue::from_static("m"));
        let request =
            client.get(server.url("/")).header("x-custom", "v1").header("accept", "application/json").headers(map);
        let req = roundtrip(&server, request).await;
        assert_eq!(req.header_all("x-custom"), ["v1"], "{}", req.head_str());
        assert_eq!(req.header_all("accept"), ["application/json"]);
        assert_eq!(req.header_all("x-from-map"), ["m"]);
    });
}

#[test]
fn repeated_header_is_sent_twice() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let req = roundtrip(&server, client.get(server.url("/")).header("x-rep", "1").header("x-rep", "2")).await;
        assert_eq!(req.header_all("x-rep"), ["1", "2"], "{}", req.head_str());
    });
}

#[test]
fn crlf_in_header_value_is_refused_and_nothing_sent() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let err = client.get(server.url("/")).header("x", "a\r\nb").send().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Request, "{err:?}");
        assert_nothing_sent(&server);
    });
}

#[test]
fn lf_in_header_value_is_refused_and_nothing_sent() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let err = client.get(server.url("/")).header("x", "a\nx-evil: 1").send().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Request, "{err:?}");
        assert_nothing_sent(&server);
    });
}

#[test]
fn nul_in_header_value_is_refused_and_nothing_sent() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let err = client.get(server.url("/")).header("x", "a\0b").send().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Request, "{err:?}");
        assert_nothing_sent(&server);
    });
}

#[test]
fn invalid_header_name_is_refused_and_nothing_sent() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let err = client.get(server.url("/")).header("bad name", "v").send().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Request, "{err:?}");
        let err = client.get(server.url("/")).header("x:y", "v").send().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Request, "{err:?}");
        assert_nothing_sent(&server);
    });
}

#[test]
fn custom_method_purge_is_sent_verbatim() {
    // A method with a space cannot even be built with `http`.
    assert!(Method::from_bytes(b"GE T").is_err());
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let purge = Method::from_bytes(b"PURGE").unwrap();
        let req = roundtrip(&server, client.request(purge, server.url("/cache/x"))).await;
        assert!(req.head_str().starts_with("PURGE /cache/x HTTP/1.1\r\n"), "{}", req.head_str());
    });
}

// ---------------------------------------------------------------------------
// URL errors: a clear error, no panic, no connection
// ---------------------------------------------------------------------------

#[test]
fn ftp_scheme_is_a_url_error() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let err = client.get(format!("ftp://{}/file", server.addr())).send().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Url, "{err:?}");
        assert_nothing_sent(&server);
    });
}

#[test]
fn url_without_scheme_and_host_is_a_url_error() {
    run(|| async {
        let err = Client::new().get("/just/a/path").send().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Url, "{err:?}");
    });
}

#[test]
fn url_with_empty_host_is_a_url_error() {
    run(|| async {
        let err = Client::new().get("http:///path").send().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Url, "{err:?}");
    });
}

// Credentials in the URL are sent as Basic auth: see tests/url_input.rs.

#[test]
fn port_zero_is_a_url_error() {
    run(|| async {
        let err = Client::new().get("http://127.0.0.1:0/").send().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Url, "{err:?}");
    });
}

#[test]
#[cfg(not(feature = "native-tls"))]
fn https_is_a_tls_not_enabled_error() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let err = client.get(format!("https://{}/", server.addr())).send().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Tls, "{err:?}");
        assert!(err.to_string().contains("not enabled"), "{err}");
        assert_nothing_sent(&server);
    });
}

/// With TLS, a plain-HTTP server answering the handshake fails it: a TLS
/// error, and no HTTP request reaches the server.
#[test]
#[cfg(feature = "native-tls")]
fn https_to_a_plain_http_server_is_a_tls_error() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let err = client.get(format!("https://{}/", server.addr())).send().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Tls, "{err:?}");
        assert_eq!(server.requests(), 0);
    });
}

#[test]
fn malformed_url_string_is_a_url_error() {
    run(|| async {
        let client = Client::new();
        for bad in ["http://exa mple.test/", "http://[::1/", "", "http://host/\r\nx"] {
            let err = client.get(bad).send().await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Url, "{bad:?}: {err:?}");
        }
    });
}

#[test]
fn out_of_range_port_is_a_url_error() {
    run(|| async {
        // `http::Uri` accepts any digits as a port; 99999 does not fit in a
        // u16 and must be refused, not replaced by the default port 80.
        let err = Client::new().get("http://127.0.0.1:99999/").send().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Url, "{err:?}");
    });
}

#[test]
fn non_numeric_port_is_a_url_error() {
    run(|| async {
        // `http::Uri` accepts `host:abc`; the port must be refused, not
        // replaced by the default port 80.
        let err = Client::new().get("http://127.0.0.1:abc/").send().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Url, "{err:?}");
    });
}

// ---------------------------------------------------------------------------
// Framing headers set by hand
// ---------------------------------------------------------------------------

#[test]
fn mismatching_user_content_length_is_refused() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let err = client.post(server.url("/")).header("content-length", "5").body("abc").send().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Request, "{err:?}");
        assert_nothing_sent(&server);
    });
}

#[test]
fn matching_user_content_length_is_sent_once() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let req = roundtrip(&server, client.post(server.url("/")).header("content-length", "3").body("abc")).await;
        assert_eq!(req.header_all("content-length"), ["3"], "{}", req.head_str());
        assert_eq!(req.body, b"abc");
    });
}

#[test]
fn user_transfer_encoding_is_refused() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let err =
            client.post(server.url("/")).header("transfer-encoding", "chunked").body("abc").send().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Request, "{err:?}");
        assert_nothing_sent(&server);
    });
}

// ---------------------------------------------------------------------------
// http::Request interop
// ---------------------------------------------------------------------------

#[test]
fn execute_http_request_sends_method_headers_and_body() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let request = smolreq::http::Request::builder()
            .method("POST")
            .uri(server.url("/exec?x=1"))
            .header("x-a", "1")
            .body("hi")
            .unwrap();
        let resp = client.execute(request).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.bytes().await.unwrap(), &b"ok"[..]);
        let req = &server.received()[0];
        assert!(req.head_str().starts_with("POST /exec?x=1 HTTP/1.1\r\n"), "{}", req.head_str());
        assert_eq!(req.header_all("x-a"), ["1"]);
        assert_eq!(req.header_all("content-length"), ["2"]);
        assert_eq!(req.header_count("host"), 1);
        assert_eq!(req.body, b"hi");
    });
}

#[test]
fn execute_http_get_without_body_has_no_content_length() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let request = smolreq::http::Request::get(server.url("/g")).body(Vec::new()).unwrap();
        let resp = client.execute(request).await.unwrap();
        assert_eq!(resp.bytes().await.unwrap(), &b"ok"[..]);
        let req = &server.received()[0];
        assert_eq!(req.method, "GET");
        assert_eq!(req.header_count("content-length"), 0, "{}", req.head_str());
    });
}
