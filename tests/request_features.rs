//! What the request conveniences of issue 12 put on the wire: default
//! headers and how a request's own fields replace them, `header` (append)
//! against `headers` (replace), Basic and Bearer auth, and, with the `json`
//! and `form` features, JSON and form bodies and serialized queries.

mod common;

use std::future::Future;
use std::time::Duration;

use common::*;
use smolreq::{Client, ErrorKind, HeaderMap, HeaderValue, StatusCode};

const TEST_DEADLINE: Duration = Duration::from_secs(10);

fn run<Fut: Future<Output = ()>>(f: impl FnOnce() -> Fut + Send + 'static) {
    with_deadline(TEST_DEADLINE, move || smol::block_on(f()));
}

/// Sends `request` to an [`echo_ok_server`] and returns what arrived.
async fn roundtrip(server: &Server, request: smolreq::RequestBuilder) -> Request {
    let resp = request.send().await.unwrap_or_else(|e| panic!("send: {e:?}"));
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap(), &b"ok"[..]);
    let received = server.received();
    assert_eq!(received.len(), 1, "expected exactly one request on the wire");
    received.into_iter().next().unwrap()
}

fn map(fields: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for &(name, value) in fields {
        map.append(name, HeaderValue::from_static(value));
    }
    map
}

fn client_with_defaults(fields: &[(&'static str, &'static str)]) -> Client {
    Client::builder().default_headers(map(fields)).build().unwrap()
}

// ---------------------------------------------------------------------------
// Default headers, append and replace
// ---------------------------------------------------------------------------

#[test]
fn default_headers_go_out_with_every_request() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = client_with_defaults(&[("accept", "application/json"), ("x-api-version", "2")]);
        for path in ["/1", "/2"] {
            let resp = client.get(server.url(path)).send().await.unwrap();
            assert_eq!(resp.text().await.unwrap(), "ok");
        }
        let received = server.received();
        assert_eq!(received.len(), 2);
        for req in &received {
            assert_eq!(req.header_all("accept"), ["application/json"], "{}", req.head_str());
            assert_eq!(req.header_all("x-api-version"), ["2"], "{}", req.head_str());
        }
    });
}

#[test]
fn a_request_header_replaces_the_default_of_that_name() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = client_with_defaults(&[("accept", "application/json"), ("x-api-version", "2")]);
        let req = roundtrip(&server, client.get(server.url("/")).header("accept", "text/html")).await;
        assert_eq!(req.header_all("accept"), ["text/html"], "only the request's value: {}", req.head_str());
        assert_eq!(req.header_all("x-api-version"), ["2"]);
    });
}

#[test]
fn headers_replaces_the_default_and_earlier_values() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = client_with_defaults(&[("accept", "application/json")]);
        let request = client.get(server.url("/")).header("x-tag", "first").header("x-keep", "kept").headers(map(&[
            ("accept", "text/csv"),
            ("x-tag", "second"),
            ("x-tag", "third"),
        ]));
        let req = roundtrip(&server, request).await;
        assert_eq!(req.header_all("accept"), ["text/csv"], "{}", req.head_str());
        assert_eq!(req.header_all("x-tag"), ["second", "third"], "{}", req.head_str());
        assert_eq!(req.header_all("x-keep"), ["kept"]);
    });
}

#[test]
fn header_appends_a_second_value() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let req = roundtrip(&server, client.get(server.url("/")).header("accept", "a/b").header("accept", "c/d")).await;
        assert_eq!(req.header_all("accept"), ["a/b", "c/d"], "{}", req.head_str());
    });
}

#[test]
fn a_default_with_several_values_is_sent_whole_or_replaced_whole() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = client_with_defaults(&[("x-multi", "1"), ("x-multi", "2")]);
        let req = roundtrip(&server, client.get(server.url("/"))).await;
        assert_eq!(req.header_all("x-multi"), ["1", "2"]);

        let server = echo_ok_server(b"ok");
        let req = roundtrip(&server, client.get(server.url("/")).header("x-multi", "mine")).await;
        assert_eq!(req.header_all("x-multi"), ["mine"]);
    });
}

#[test]
fn default_headers_called_twice_replaces_per_name() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::builder()
            .default_headers(map(&[("accept", "a/a"), ("x-first", "1")]))
            .default_headers(map(&[("accept", "b/b")]))
            .build()
            .unwrap();
        let req = roundtrip(&server, client.get(server.url("/"))).await;
        assert_eq!(req.header_all("accept"), ["b/b"]);
        assert_eq!(req.header_all("x-first"), ["1"]);
    });
}

#[test]
fn a_default_user_agent_replaces_the_built_in_one() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = client_with_defaults(&[("user-agent", "from-defaults")]);
        let req = roundtrip(&server, client.get(server.url("/"))).await;
        assert_eq!(req.header_all("user-agent"), ["from-defaults"], "{}", req.head_str());
    });
}

#[test]
fn a_default_authorization_is_dropped_on_a_cross_origin_redirect() {
    run(|| async {
        let other = echo_ok_server(b"ok");
        let location = other.url("/landing");
        let first = Server::start(move |conn| {
            while conn.read_request().is_some() {
                conn.respond(302, &[("location", &location)], b"");
            }
        });
        let client = client_with_defaults(&[("authorization", "Bearer default-secret"), ("x-plain", "1")]);
        let resp = client.get(first.url("/start")).send().await.unwrap();
        assert_eq!(resp.text().await.unwrap(), "ok");
        assert_eq!(first.received()[0].header("authorization"), Some("Bearer default-secret"));
        let landed = &other.received()[0];
        assert_eq!(landed.header("authorization"), None, "{}", landed.head_str());
        assert_eq!(landed.header("x-plain"), Some("1"));
    });
}

#[test]
fn framing_defaults_are_refused_by_build() {
    for name in ["content-length", "transfer-encoding"] {
        let value = if name == "content-length" { "0" } else { "chunked" };
        let err = Client::builder().default_headers(map(&[(name, value)])).build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Builder);
        assert!(err.to_string().contains("default_headers"), "{err}");
    }
}

#[test]
fn client_debug_does_not_print_default_credentials() {
    let client = client_with_defaults(&[
        ("authorization", "Bearer default-secret"),
        ("cookie", "id=cookie-secret"),
        ("x-shown", "visible"),
    ]);
    let debug = format!("{client:?}");
    assert!(!debug.contains("default-secret") && !debug.contains("cookie-secret"), "{debug}");
    assert!(debug.contains("visible"), "{debug}");
}

// ---------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------

#[test]
fn basic_auth_on_the_wire() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let req = roundtrip(&server, client.get(server.url("/")).basic_auth("Aladdin", Some("open sesame"))).await;
        assert_eq!(req.header_all("authorization"), ["Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="]);
    });
}

#[test]
fn bearer_auth_on_the_wire_replaces_a_default() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = client_with_defaults(&[("authorization", "Bearer default")]);
        let req = roundtrip(&server, client.get(server.url("/")).bearer_auth("tok.en-1")).await;
        assert_eq!(req.header_all("authorization"), ["Bearer tok.en-1"]);
    });
}

#[test]
fn bad_credentials_fail_send_before_connecting() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let err = client.get(server.url("/")).basic_auth("a:b", Some("pw")).send().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Request);
        let err = client.get(server.url("/")).bearer_auth("to\nken-secret").send().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Request);
        assert!(!format!("{err} {err:?}").contains("ken-secret"), "{err:?}");
        assert_eq!(server.connections(), 0);
    });
}

/// Today's `query(&[(K, V)])` calls compile and encode the same with and
/// without the `form` feature.
#[test]
fn query_still_takes_string_pairs() {
    run(|| async {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let owned = String::from("v w");
        let pairs: Vec<(String, &String)> = vec![("k".to_owned(), &owned)];
        let request = client.get(server.url("/s")).query(&[("a", "b")]).query(&pairs).query(&pairs[..]);
        let req = roundtrip(&server, request).await;
        assert_eq!(req.target, "/s?a=b&k=v+w&k=v+w");
    });
}

// ---------------------------------------------------------------------------
// JSON bodies (feature `json`)
// ---------------------------------------------------------------------------

#[cfg(feature = "json")]
mod json {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(serde::Serialize)]
    struct Item {
        name: &'static str,
        count: u32,
        tags: Vec<&'static str>,
    }

    #[test]
    fn json_body_and_content_type() {
        run(|| async {
            let server = echo_ok_server(b"ok");
            let client = Client::new();
            let item = Item { name: "a \"b\"", count: 2, tags: vec!["x", "é"] };
            let req = roundtrip(&server, client.post(server.url("/items")).json(&item)).await;
            assert_eq!(req.header_all("content-type"), ["application/json"]);
            assert_eq!(req.body, r#"{"name":"a \"b\"","count":2,"tags":["x","é"]}"#.as_bytes());
            assert_eq!(req.header("content-length"), Some(req.body.len().to_string().as_str()));
        });
    }

    #[test]
    fn json_keeps_a_content_type_already_set() {
        run(|| async {
            let server = echo_ok_server(b"ok");
            let client = Client::new();
            let request = client
                .put(server.url("/"))
                .header("content-type", "application/merge-patch+json")
                .json(&serde_json_value());
            let req = roundtrip(&server, request).await;
            assert_eq!(req.header_all("content-type"), ["application/merge-patch+json"]);
            assert_eq!(req.body, br#"{"a":1}"#);
        });
    }

    fn serde_json_value() -> BTreeMap<&'static str, i32> {
        BTreeMap::from([("a", 1)])
    }

    #[test]
    fn unserializable_json_is_a_request_error_before_connecting() {
        run(|| async {
            let server = echo_ok_server(b"ok");
            let client = Client::new();
            // JSON object keys must be strings.
            let bad = BTreeMap::from([((1, 2), "v")]);
            let err = client.post(server.url("/")).json(&bad).send().await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Request);
            let text = err.to_string();
            assert!(text.contains("JSON body") && text.contains("key must be a string"), "{text}");
            assert_eq!(server.connections(), 0);
        });
    }
}

// ---------------------------------------------------------------------------
// Form bodies and serialized queries (feature `form`)
// ---------------------------------------------------------------------------

#[cfg(feature = "form")]
mod form {
    use super::*;

    #[derive(serde::Serialize)]
    struct Search {
        q: &'static str,
        page: u32,
        tag: Option<&'static str>,
    }

    #[test]
    fn form_body_and_content_type() {
        run(|| async {
            let server = echo_ok_server(b"ok");
            let client = Client::new();
            let req =
                roundtrip(&server, client.post(server.url("/login")).form(&[("user", "ann b"), ("pw", "a&b=c")])).await;
            assert_eq!(req.header_all("content-type"), ["application/x-www-form-urlencoded"]);
            assert_eq!(req.body, b"user=ann+b&pw=a%26b%3Dc");
        });
    }

    #[test]
    fn form_from_a_struct_keeps_a_content_type_already_set() {
        run(|| async {
            let server = echo_ok_server(b"ok");
            let client = Client::new();
            let request = client
                .post(server.url("/"))
                .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
                .form(&Search { q: "é", page: 3, tag: None });
            let req = roundtrip(&server, request).await;
            assert_eq!(req.header_all("content-type"), ["application/x-www-form-urlencoded; charset=utf-8"]);
            assert_eq!(req.body, b"q=%C3%A9&page=3");
        });
    }

    #[test]
    fn query_takes_any_serializable_value() {
        run(|| async {
            let server = echo_ok_server(b"ok");
            let client = Client::new();
            let request = client.get(server.url("/items?lang=en")).query(&[("page", 2), ("per_page", 50)]);
            let req = roundtrip(&server, request).await;
            assert_eq!(req.target, "/items?lang=en&page=2&per_page=50");

            let server = echo_ok_server(b"ok");
            let request = client.get(server.url("/s")).query(&Search { q: "a b", page: 1, tag: Some("x/y") });
            let req = roundtrip(&server, request).await;
            assert_eq!(req.target, "/s?q=a+b&page=1&tag=x%2Fy");
        });
    }

    #[test]
    fn unserializable_form_or_query_is_a_request_error() {
        run(|| async {
            #[derive(serde::Serialize)]
            struct Nested {
                list: Vec<u8>,
            }
            let server = echo_ok_server(b"ok");
            let client = Client::new();
            let err = client.post(server.url("/")).form(&Nested { list: vec![1] }).send().await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Request);
            assert!(err.to_string().contains("form body"), "{err}");
            let err = client.get(server.url("/")).query(&Nested { list: vec![1] }).send().await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Request);
            assert!(err.to_string().contains("query"), "{err}");
            assert_eq!(server.connections(), 0);
        });
    }
}
