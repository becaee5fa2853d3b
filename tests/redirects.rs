//! Redirect rules (issue 3, section 6), against scripted raw-socket servers.
//!
//! Each test runs under `common::with_deadline`, so a hang fails instead of
//! blocking the suite.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Request, Server};
use smolreq::{Client, ErrorKind, StatusCode};

const DEADLINE: Duration = Duration::from_secs(15);

/// Runs an async test body under `smol::block_on`, bounded by [`DEADLINE`].
fn run<F, T>(f: impl FnOnce() -> F + Send + 'static) -> T
where
    F: Future<Output = T>,
    T: Send + 'static,
{
    common::with_deadline(DEADLINE, move || smol::block_on(f()))
}

/// A response as a routing function returns it.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn reply(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    Reply {
        status,
        headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        body: body.to_vec(),
    }
}

/// A keep-alive server that answers every request with `route(&request)`.
/// Answers to HEAD carry the Content-Length of the body but no body.
fn router(route: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Server {
    Server::start(move |conn| {
        while let Some(req) = conn.read_request() {
            let Reply { status, mut headers, body } = route(&req);
            if req.method == "HEAD" {
                headers.push(("Content-Length".into(), body.len().to_string()));
            }
            let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let body: &[u8] = if req.method == "HEAD" { &[] } else { &body };
            conn.respond(status, &headers, body);
            if req.wants_close() {
                conn.close();
                return;
            }
        }
    })
}

/// `/start` answers `status` with `Location: /next` (and a small body);
/// everything else answers 200 `"done"`.
fn redirect_once(status: u16) -> Server {
    router(move |req| {
        if req.target == "/start" {
            reply(status, &[("Location", "/next")], b"moving")
        } else {
            reply(200, &[], b"done")
        }
    })
}

/// Sends a POST with a body and a Content-Type to `/start` of a server
/// that redirects it with `status`, and checks that the follow-up request
/// is a GET without any body or body headers.
fn post_is_followed_as_get(status: u16) {
    let server = redirect_once(status);
    let url = server.url("/start");
    let resp_body = run(move || async move {
        let client = Client::new();
        let resp = client
            .post(url)
            .header("content-type", "text/plain")
            .body("payload")
            .send()
            .await
            .expect("redirected POST succeeds");
        assert_eq!(resp.status(), StatusCode::OK);
        resp.text().await.expect("final body")
    });
    assert_eq!(resp_body, "done");
    let received = server.received();
    assert_eq!(received.len(), 2, "requests: {received:#?}");
    assert_eq!(received[0].method, "POST");
    assert_eq!(received[0].body, b"payload");
    let second = &received[1];
    assert_eq!(second.method, "GET", "after {status}: {}", second.head_str());
    assert_eq!(second.target, "/next");
    assert!(second.body.is_empty(), "after {status}: GET carried a body");
    assert_eq!(second.header("content-length"), None, "after {status}: {}", second.head_str());
    assert_eq!(second.header("transfer-encoding"), None, "after {status}: {}", second.head_str());
    assert_eq!(second.header("content-type"), None, "after {status}: {}", second.head_str());
}

#[test]
fn post_then_301_is_followed_as_get_without_body() {
    post_is_followed_as_get(301);
}

#[test]
fn post_then_302_is_followed_as_get_without_body() {
    post_is_followed_as_get(302);
}

#[test]
fn post_then_303_is_followed_as_get_without_body() {
    post_is_followed_as_get(303);
}

#[test]
fn post_with_body_reader_then_303_is_followed_as_get() {
    // A streamed body cannot be replayed, but a 303 drops the body anyway.
    let server = redirect_once(303);
    let url = server.url("/start");
    let status = run(move || async move {
        let client = Client::new();
        let reader = futures_lite::io::Cursor::new(b"streamed".to_vec());
        let resp = client.post(url).body_reader(reader, Some(8)).send().await.expect("303 followed");
        let status = resp.status();
        assert_eq!(resp.text().await.unwrap(), "done");
        status
    });
    assert_eq!(status, StatusCode::OK);
    let received = server.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].body, b"streamed");
    assert_eq!(received[1].method, "GET");
    assert!(received[1].body.is_empty());
}

#[test]
fn head_then_303_stays_head() {
    let server = redirect_once(303);
    let url = server.url("/start");
    let status = run(move || async move {
        let client = Client::new();
        let resp = client.head(url).send().await.expect("redirected HEAD succeeds");
        let status = resp.status();
        assert!(resp.bytes().await.unwrap().is_empty(), "a HEAD response has no body");
        status
    });
    assert_eq!(status, StatusCode::OK);
    let received = server.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[1].method, "HEAD", "{}", received[1].head_str());
    assert_eq!(received[1].target, "/next");
}

#[test]
fn head_then_301_stays_head() {
    let server = redirect_once(301);
    let url = server.url("/start");
    run(move || async move {
        let resp = Client::new().head(url).send().await.expect("redirected HEAD succeeds");
        assert_eq!(resp.status(), StatusCode::OK);
    });
    let received = server.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[1].method, "HEAD");
}

/// POST with a body to a server redirecting with `status`: the follow-up is
/// the same method with the same body and headers.
fn post_keeps_method_and_body(status: u16) {
    let server = redirect_once(status);
    let url = server.url("/start");
    let text = run(move || async move {
        let client = Client::new();
        let resp = client
            .post(url)
            .header("content-type", "application/json")
            .body(r#"{"a":1}"#)
            .send()
            .await
            .expect("redirected POST succeeds");
        assert_eq!(resp.status(), StatusCode::OK);
        resp.text().await.unwrap()
    });
    assert_eq!(text, "done");
    let received = server.received();
    assert_eq!(received.len(), 2, "requests: {received:#?}");
    let second = &received[1];
    assert_eq!(second.method, "POST", "after {status}: {}", second.head_str());
    assert_eq!(second.target, "/next");
    assert_eq!(second.body, br#"{"a":1}"#, "after {status}: body not replayed");
    assert_eq!(second.header("content-length"), Some("7"));
    assert_eq!(second.header("content-type"), Some("application/json"));
}

#[test]
fn post_then_307_keeps_method_and_body() {
    post_keeps_method_and_body(307);
}

#[test]
fn post_then_308_keeps_method_and_body() {
    post_keeps_method_and_body(308);
}

#[test]
fn put_then_307_keeps_method_and_body() {
    let server = redirect_once(307);
    let url = server.url("/start");
    run(move || async move {
        let resp = Client::new().put(url).body("v2").send().await.expect("redirected PUT succeeds");
        assert_eq!(resp.status(), StatusCode::OK);
    });
    let received = server.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[1].method, "PUT");
    assert_eq!(received[1].body, b"v2");
}

#[test]
fn body_reader_then_307_returns_the_307() {
    let server = redirect_once(307);
    let url = server.url("/start");
    let (status, location, body) = run(move || async move {
        let client = Client::new();
        let reader = futures_lite::io::Cursor::new(b"once only".to_vec());
        let resp = client.post(url).body_reader(reader, Some(9)).send().await.expect("the 307 itself is returned");
        let status = resp.status();
        let location = resp.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
        (status, location, resp.text().await.unwrap())
    });
    assert_eq!(status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(location.as_deref(), Some("/next"));
    assert_eq!(body, "moving");
    assert_eq!(server.requests(), 1, "a streamed body must not be sent twice");
    assert_eq!(server.received()[0].body, b"once only");
}

#[test]
fn chunked_body_reader_then_308_returns_the_308() {
    let server = redirect_once(308);
    let url = server.url("/start");
    let status = run(move || async move {
        let reader = futures_lite::io::Cursor::new(b"chunks".to_vec());
        let resp = Client::new().put(url).body_reader(reader, None).send().await.expect("the 308 is returned");
        resp.status()
    });
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(server.requests(), 1);
    assert!(server.received()[0].chunked);
}

/// Requests `start` on a server that redirects it once with `location` and
/// answers anything else with its own target; returns (final URL, body,
/// target of the second request).
fn follow_relative(start: &'static str, location: &'static str) -> (String, String, String, Server) {
    let server = router(move |req| {
        if req.target == start {
            reply(302, &[("Location", location)], b"")
        } else {
            reply(200, &[], req.target.as_bytes())
        }
    });
    let url = server.url(start);
    let (final_url, body) = run(move || async move {
        let resp = Client::new().get(url).send().await.expect("relative redirect followed");
        assert_eq!(resp.status(), StatusCode::OK);
        let final_url = resp.url().to_string();
        (final_url, resp.text().await.unwrap())
    });
    let received = server.received();
    assert_eq!(received.len(), 2, "requests: {received:#?}");
    let target = received[1].target.clone();
    (final_url, body, target, server)
}

#[test]
fn relative_location_dot_dot() {
    let (final_url, body, target, server) = follow_relative("/a/x/y", "../b");
    assert_eq!(target, "/a/b");
    assert_eq!(body, "/a/b");
    assert_eq!(final_url, server.url("/a/b"));
}

#[test]
fn relative_location_sibling_path() {
    let (_, _, target, _server) = follow_relative("/dir/page", "other?x=1");
    assert_eq!(target, "/dir/other?x=1");
}

#[test]
fn absolute_path_location() {
    let (final_url, _, target, server) = follow_relative("/deep/er/path?old=1", "/x");
    assert_eq!(target, "/x");
    assert_eq!(final_url, server.url("/x"));
}

#[test]
fn query_only_location() {
    let (final_url, _, target, server) = follow_relative("/path/p?old=1", "?q");
    assert_eq!(target, "/path/p?q");
    assert_eq!(final_url, server.url("/path/p?q"));
}

#[test]
fn location_fragment_is_not_sent() {
    let (_, _, target, _server) = follow_relative("/a", "/b#frag");
    assert_eq!(target, "/b");
}

/// The three credential headers plus one ordinary header.
const SENSITIVE: [(&str, &str); 2] = [("authorization", "Bearer secret"), ("cookie", "session=1")];

fn send_with_credentials(url: String) -> StatusCode {
    run(move || async move {
        let client = Client::new();
        let mut request = client.get(url).header("x-custom", "kept");
        for (name, value) in SENSITIVE {
            request = request.header(name, value);
        }
        // Meant for a proxy: with none, it reaches no origin at all.
        request = request.header("proxy-authorization", "Basic cHJveHk=");
        let resp = request.send().await.expect("redirect followed");
        let status = resp.status();
        resp.bytes().await.unwrap();
        status
    })
}

#[test]
fn cross_origin_redirect_strips_credentials() {
    let other = router(|_| reply(200, &[], b"other origin"));
    let target = other.url("/landing");
    let first = router(move |_| reply(302, &[("Location", target.as_str())], b""));
    assert_ne!(first.addr().port(), other.addr().port());

    assert_eq!(send_with_credentials(first.url("/start")), StatusCode::OK);

    let at_first = first.received();
    assert_eq!(at_first.len(), 1);
    assert_eq!(at_first[0].header("proxy-authorization"), None, "Proxy-Authorization sent to an origin");
    for (name, value) in SENSITIVE {
        assert_eq!(at_first[0].header(name), Some(value), "the original request carries {name}");
    }
    let at_other = other.received();
    assert_eq!(at_other.len(), 1);
    let req = &at_other[0];
    for (name, _) in SENSITIVE {
        assert_eq!(req.header(name), None, "{name} leaked to another origin:\n{}", req.head_str());
    }
    assert_eq!(req.header("x-custom"), Some("kept"));
    assert_eq!(req.target, "/landing");
    assert_eq!(req.header_all("host"), vec![other.addr().to_string()], "Host must name the new origin");
}

#[test]
fn redirect_to_other_host_same_port_strips_credentials() {
    // 127.0.0.1:P and localhost:P are different origins (different host).
    // Needs `localhost` to resolve to 127.0.0.1 (it may resolve to ::1
    // first; the client tries each address).
    let server = router(|req| {
        if req.target == "/start" {
            let port = req.header("host").and_then(|h| h.rsplit(':').next()).unwrap_or("0").to_owned();
            reply(302, &[("Location", &format!("http://localhost:{port}/landing"))], b"")
        } else {
            reply(200, &[], b"ok")
        }
    });
    assert_eq!(send_with_credentials(server.url("/start")), StatusCode::OK);
    let received = server.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[1].target, "/landing");
    assert_eq!(received[1].header("host"), Some(format!("localhost:{}", server.addr().port()).as_str()));
    for (name, _) in SENSITIVE {
        assert_eq!(received[1].header(name), None, "{name} leaked to another host:\n{}", received[1].head_str());
    }
}

#[test]
fn same_origin_redirect_keeps_credentials() {
    let server = redirect_once(302);
    assert_eq!(send_with_credentials(server.url("/start")), StatusCode::OK);
    let received = server.received();
    assert_eq!(received.len(), 2);
    for (name, value) in SENSITIVE {
        assert_eq!(received[1].header(name), Some(value), "{name} dropped on a same-origin redirect");
    }
    assert!(
        received.iter().all(|r| r.header("proxy-authorization").is_none()),
        "Proxy-Authorization sent to an origin"
    );
    assert_eq!(received[1].header("x-custom"), Some("kept"));
}

/// A server whose every answer is `302 Location: /loop`, counting requests.
fn loop_server() -> (Server, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let server = router(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
        reply(302, &[("Location", "/loop")], b"again")
    });
    (server, count)
}

#[test]
fn redirect_loop_fails_after_ten_redirects() {
    let (server, count) = loop_server();
    let url = server.url("/loop");
    let err = run(move || async move { Client::new().get(url).send().await.expect_err("a loop must fail") });
    assert_eq!(err.kind(), ErrorKind::Redirect, "{err}");
    assert!(err.url().is_some(), "a redirect error names its URL");
    assert_eq!(count.load(Ordering::SeqCst), 11, "the first request plus 10 redirects");
    assert_eq!(server.requests(), 11);
}

#[test]
fn max_redirects_two_fails_after_three_requests() {
    let (server, count) = loop_server();
    let url = server.url("/loop");
    let err = run(move || async move {
        let client = Client::builder().max_redirects(2).build().unwrap();
        client.get(url).send().await.expect_err("a loop must fail")
    });
    assert_eq!(err.kind(), ErrorKind::Redirect);
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[test]
fn max_redirects_allows_exactly_that_many() {
    // /r/N redirects to /r/N-1 ... /r/0 answers 200: N redirects in all.
    let server = router(|req| {
        let n: u32 = req.target.trim_start_matches("/r/").parse().unwrap_or(0);
        if n == 0 { reply(200, &[], b"arrived") } else { reply(302, &[("Location", &format!("/r/{}", n - 1))], b"") }
    });
    let ok_url = server.url("/r/3");
    let too_far = server.url("/r/4");
    run(move || async move {
        let client = Client::builder().max_redirects(3).build().unwrap();
        let resp = client.get(ok_url).send().await.expect("3 redirects are allowed");
        assert_eq!(resp.text().await.unwrap(), "arrived");
        let err = client.get(too_far).send().await.expect_err("4 redirects are too many");
        assert_eq!(err.kind(), ErrorKind::Redirect);
    });
}

#[test]
fn redirect_disabled_returns_the_302() {
    let server = redirect_once(302);
    let url = server.url("/start");
    let (status, location, body) = run(move || async move {
        let client = Client::builder().redirect(false).build().unwrap();
        let resp = client.get(url).send().await.expect("the 302 itself");
        let status = resp.status();
        let location = resp.headers().get("location").cloned();
        (status, location, resp.text().await.unwrap())
    });
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(location.unwrap(), "/next");
    assert_eq!(body, "moving");
    assert_eq!(server.requests(), 1);
}

#[test]
fn missing_location_returns_the_3xx() {
    let server = router(|_| reply(302, &[], b"no location"));
    let url = server.url("/start");
    let (status, body) = run(move || async move {
        let resp = Client::new().get(url).send().await.expect("a 3xx without Location is a response");
        (resp.status(), resp.text().await.unwrap())
    });
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(body, "no location");
    assert_eq!(server.requests(), 1);
}

#[test]
fn status_300_and_304_are_not_followed() {
    let server = router(|req| match req.target.as_str() {
        "/300" => reply(300, &[("Location", "/elsewhere")], b"choices"),
        _ => reply(304, &[("Location", "/elsewhere")], b""),
    });
    let (u300, u304) = (server.url("/300"), server.url("/304"));
    run(move || async move {
        let client = Client::new();
        let resp = client.get(u300).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::MULTIPLE_CHOICES);
        assert_eq!(resp.text().await.unwrap(), "choices");
        let resp = client.get(u304).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    });
    assert_eq!(server.requests(), 2);
}

fn invalid_location(location: &'static str) {
    let server = router(move |_| reply(302, &[("Location", location)], b""));
    let url = server.url("/start");
    let err = run(move || async move { Client::new().get(url).send().await.expect_err("bad Location must fail") });
    assert_eq!(err.kind(), ErrorKind::Redirect, "Location {location:?}: {err}");
    assert_eq!(err.url().map(|u| u.to_string()), Some(server.url("/start")));
    assert_eq!(server.requests(), 1);
}

#[test]
fn location_without_host_is_a_redirect_error() {
    invalid_location("http://");
}

#[test]
fn location_with_spaces_is_a_redirect_error() {
    invalid_location("/a b");
}

#[test]
fn location_with_unsupported_scheme_is_a_redirect_error() {
    // ftp:// cannot be followed: a redirect error (reqwest and Go report
    // it as an error of the redirect too) that says why, for the URL that
    // was requested; the Location itself is not echoed (it may hold
    // credentials).
    let server = router(|_| reply(302, &[("Location", "ftp://user:secret@127.0.0.1/file")], b""));
    let url = server.url("/start");
    let err = run(move || async move { Client::new().get(url).send().await.expect_err("ftp:// cannot be followed") });
    assert_eq!(err.kind(), ErrorKind::Redirect, "{err:?}");
    let text = err.to_string();
    assert!(text.contains("scheme other than http:// or https://"), "{text}");
    assert!(!text.contains("secret") && !format!("{err:?}").contains("secret"), "{err:?}");
    assert_eq!(err.url().map(|u| u.to_string()), Some(server.url("/start")));
    assert_eq!(server.requests(), 1);
}

#[test]
fn response_url_is_the_final_url() {
    let server = router(|req| match req.target.as_str() {
        "/a" => reply(301, &[("Location", "/b")], b""),
        "/b" => reply(302, &[("Location", "/c?z=1")], b""),
        _ => reply(200, &[], b"end"),
    });
    let url = server.url("/a");
    let final_url = run(move || async move {
        let resp = Client::new().get(url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.url().to_string()
    });
    assert_eq!(final_url, server.url("/c?z=1"));
    let targets: Vec<String> = server.received().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, ["/a", "/b", "/c?z=1"]);
}

#[test]
fn response_url_without_redirect_is_the_request_url() {
    let server = router(|_| reply(200, &[], b"x"));
    let url = server.url("/plain?k=v");
    let expected = url.clone();
    let got = run(move || async move { Client::new().get(url).send().await.unwrap().url().to_string() });
    assert_eq!(got, expected);
}

/// With the `native-tls` feature the redirect is followed (here to a closed
/// port; tests/tls.rs follows one to a real TLS server); without it, it is a
/// TLS error naming the feature.
#[test]
fn redirect_to_https_is_followed_or_a_tls_error() {
    let server = router(|_| reply(302, &[("Location", "https://127.0.0.1:1/secure")], b""));
    let url = server.url("/start");
    let err = run(move || async move { Client::new().get(url).send().await.expect_err("nothing listens on port 1") });
    let expected = if cfg!(feature = "native-tls") { ErrorKind::Connect } else { ErrorKind::Tls };
    assert_eq!(err.kind(), expected, "{err}");
    assert_eq!(server.requests(), 1);
}

#[test]
fn same_origin_redirect_reuses_the_drained_connection() {
    let server = router(|req| {
        if req.target == "/start" {
            reply(302, &[("Location", "/next")], b"a small redirect body")
        } else {
            reply(200, &[], b"done")
        }
    });
    let url = server.url("/start");
    let stats = run(move || async move {
        let client = Client::new();
        let resp = client.get(url).send().await.unwrap();
        assert_eq!(resp.text().await.unwrap(), "done");
        client.pool_stats()
    });
    assert_eq!(server.requests(), 2);
    assert_eq!(server.connections(), 1, "the redirect body was not drained for reuse");
    assert_eq!(server.requests_per_connection(), [2]);
    assert_eq!(stats.opened, 1);
    assert_eq!(stats.reused, 1);
    assert_eq!(stats.leased, 0);
    assert_eq!(stats.idle, 1);
}

#[test]
fn chunked_redirect_body_is_drained_for_reuse() {
    // A chunked redirect body has no length hint, but it is small and
    // already received: it is drained and the connection reused.
    let server = Server::start(|conn| {
        while let Some(req) = conn.read_request() {
            if req.target == "/start" {
                conn.write(b"HTTP/1.1 302 Found\r\nLocation: /next\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nmove\r\n0\r\n\r\n");
            } else {
                conn.respond(200, &[], b"done");
            }
        }
    });
    let url = server.url("/start");
    let stats = run(move || async move {
        let client = Client::new();
        let resp = client.get(url).send().await.unwrap();
        assert_eq!(resp.text().await.unwrap(), "done");
        client.pool_stats()
    });
    assert_eq!(server.requests(), 2);
    assert_eq!(server.requests_per_connection(), [2], "the chunked redirect body was not drained for reuse");
    assert_eq!((stats.opened, stats.reused, stats.leased, stats.idle), (1, 1, 0, 1), "{stats:?}");
}

#[test]
fn cross_origin_redirect_drops_a_caller_set_host() {
    let other = router(|_| reply(200, &[], b"other"));
    let target = other.url("/landing");
    let first = router(move |_| reply(307, &[("Location", target.as_str())], b""));
    let url = first.url("/start");
    run(move || async move {
        let resp = Client::new().get(url).header("host", "virtual.example").send().await.unwrap();
        assert_eq!(resp.text().await.unwrap(), "other");
    });
    let req = &other.received()[0];
    assert_eq!(req.header_all("host"), vec![other.addr().to_string()], "{}", req.head_str());
}
