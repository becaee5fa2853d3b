//! Errors (issue 12, "Errors"): `Display` shows one level and leaves the
//! cause to `source()`, so a program printing the chain (anyhow's `{:#}`,
//! eyre) shows each cause once; the predicates match the errors that real
//! failures produce; a DNS failure is told apart from a refused connection.
//!
//! Each test runs under `common::with_deadline`, so a hang fails instead of
//! blocking the suite.

mod common;

use std::error::Error as _;
use std::io;
use std::time::Duration;

use common::Server;
use futures_lite::AsyncReadExt;
use smolreq::{Client, Error, ErrorKind};

const DEADLINE: Duration = Duration::from_secs(20);

fn run<F, T>(f: impl FnOnce() -> F + Send + 'static) -> T
where
    F: Future<Output = T>,
    T: Send + 'static,
{
    common::with_deadline(DEADLINE, move || smol::block_on(f()))
}

/// Every level of the chain joined by ": ", as anyhow's `{:#}` prints it.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// Each level's text appears once in the chain: no level repeats its cause.
fn assert_no_level_repeated(err: &dyn std::error::Error) {
    let full = chain(err);
    let mut level: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = level {
        let text = e.to_string();
        assert_eq!(full.matches(text.as_str()).count(), 1, "{text:?} is repeated in {full:?}");
        if let Some(cause) = e.source() {
            assert!(!text.contains(&cause.to_string()), "{text:?} repeats its cause {cause}");
        }
        level = e.source();
    }
}

/// A loopback port with nobody listening on it.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn a_name_that_does_not_resolve_is_a_resolve_error() {
    // RFC 2606: `.invalid` never resolves, and resolvers fail it fast.
    let url = "http://smolreq-test.invalid/x";
    let err = run(move || async move { Client::new().get(url).send().await.unwrap_err() });
    assert_eq!(err.kind(), ErrorKind::Resolve, "{err:?}");
    assert!(err.is_connect(), "a DNS failure is a connect error too");
    assert!(!err.is_timeout());
    assert_eq!(err.to_string(), "could not resolve host (http://smolreq-test.invalid/x)");
    let cause = err.source().expect("the resolver's error is the source");
    assert!(cause.is::<io::Error>(), "{cause:?}");
    assert_eq!(chain(&err), format!("could not resolve host (http://smolreq-test.invalid/x): {cause}"));
    assert_no_level_repeated(&err);
}

#[test]
fn a_closed_loopback_port_is_a_connect_error() {
    let port = closed_port();
    let url = format!("http://127.0.0.1:{port}/");
    let err = run(move || async move { Client::new().get(url).send().await.unwrap_err() });
    assert_eq!(err.kind(), ErrorKind::Connect, "{err:?}");
    assert!(err.is_connect());
    assert_eq!(err.to_string(), format!("connect error (http://127.0.0.1:{port}/)"));
    let cause = err.source().and_then(|e| e.downcast_ref::<io::Error>()).expect("an io::Error source");
    assert_eq!(cause.kind(), io::ErrorKind::ConnectionRefused);
    assert_eq!(chain(&err), format!("connect error (http://127.0.0.1:{port}/): {cause}"));
    assert_no_level_repeated(&err);
}

#[test]
fn a_protocol_error_says_what_in_display_without_a_source() {
    let server = Server::start(|conn| {
        conn.read_request();
        conn.write(b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n");
    });
    let url = server.url("/p");
    let err = run(move || async move { Client::new().get(url).send().await.unwrap_err() });
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err:?}");
    assert!(err.to_string().starts_with("protocol error: invalid response head"), "{err}");
    assert!(err.to_string().ends_with(&format!("({})", server.url("/p"))), "{err}");
    assert!(err.source().is_none(), "smolreq's own finding has no cause: {err:?}");
}

#[test]
fn a_body_error_read_through_async_read_prints_once() {
    let server = Server::start(|conn| {
        conn.read_request();
        conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf!");
    });
    let url = server.url("/");
    let err = run(move || async move {
        let mut resp = Client::new().get(url).send().await.unwrap();
        let mut body = Vec::new();
        resp.read_to_end(&mut body).await.unwrap_err()
    });
    let inner = err.get_ref().and_then(|e| e.downcast_ref::<Error>()).expect("a smolreq::Error inside");
    assert_eq!(inner.kind(), ErrorKind::Protocol);
    assert_eq!(chain(&err), inner.to_string());
    assert!(chain(&err).contains("closed before the body was complete"), "{}", chain(&err));
    assert_no_level_repeated(&err);
}

#[test]
fn credentials_in_a_failing_url_are_never_printed() {
    let port = closed_port();
    let url = format!("http://user:s3cr3t@127.0.0.1:{port}/p");
    let err = run(move || async move { Client::new().get(url).send().await.unwrap_err() });
    for text in [err.to_string(), format!("{err:?}"), chain(&err), format!("{:?}", err.url())] {
        assert!(!text.contains("s3cr3t"), "{text}");
    }
}

#[test]
fn predicates_match_the_errors_real_failures_produce() {
    let silent = Server::start(|conn| {
        conn.read_request();
        conn.wait_peer_close(Duration::from_secs(10));
    });
    let redirecting = Server::start(|conn| {
        while conn.read_request().is_some() {
            conn.respond(302, &[("Location", "/again")], b"");
        }
    });
    let (silent_url, redirect_url) = (silent.url("/"), redirecting.url("/"));
    let errors: Vec<(&str, Error)> = run(move || async move {
        let client = Client::new();
        let few_redirects = Client::builder().max_redirects(2).build().unwrap();
        let short = Client::builder().timeout(Duration::from_millis(200)).build().unwrap();
        vec![
            ("url", client.get("ftp://127.0.0.1/").send().await.unwrap_err()),
            ("request", client.get(&silent_url).header("x-a", "b\r\nx-b: c").send().await.unwrap_err()),
            ("builder", Client::builder().max_connections_per_host(0).build().unwrap_err()),
            ("timeout", short.get(&silent_url).send().await.unwrap_err()),
            ("redirect", few_redirects.get(&redirect_url).send().await.unwrap_err()),
            ("body", client.put(&silent_url).body_reader(&b"abc"[..], Some(10)).send().await.unwrap_err()),
        ]
    });
    for (name, err) in &errors {
        let answers = [
            ("url", err.is_url()),
            ("request", err.is_request()),
            ("builder", err.is_builder()),
            ("timeout", err.is_timeout()),
            ("redirect", err.is_redirect()),
            ("body", err.is_body()),
            ("connect", err.is_connect()),
            ("decode", err.is_decode()),
        ];
        for (predicate, answer) in answers {
            assert_eq!(answer, predicate == *name, "is_{predicate}() on the {name} error: {err:?}");
        }
        assert!(!err.to_string().contains('\n'), "{err}");
        assert_no_level_repeated(err);
    }
}
