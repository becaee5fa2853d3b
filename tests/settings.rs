//! Every setting accepts any value (issue 11, section 2): an absurd value
//! is either refused by `build()` with `ErrorKind::Builder` naming the
//! setting, or works; nothing panics, on the first request or later.
//!
//! Each test runs under `common::with_deadline`, so a hang fails instead of
//! blocking the suite.

mod common;

use std::time::Duration;

use common::{Server, echo_ok_server};
use smolreq::{Client, ClientBuilder, ErrorKind};

const DEADLINE: Duration = Duration::from_secs(15);

/// Builds a client with `configure` and sends two GETs to a keep-alive
/// server, reading both bodies; returns the client for further checks.
fn two_gets(configure: fn(ClientBuilder) -> ClientBuilder) -> (Client, Server) {
    common::with_deadline(DEADLINE, move || {
        let server = echo_ok_server(b"hello");
        let client = configure(Client::builder()).build().expect("the setting is accepted");
        smol::block_on(async {
            for _ in 0..2 {
                let resp = client.get(server.url("/")).send().await.expect("request succeeds");
                assert_eq!(resp.status(), 200);
                assert_eq!(resp.text().await.expect("body is read"), "hello");
            }
        });
        (client, server)
    })
}

/// The setting is refused by `build()`, with `ErrorKind::Builder` and a
/// message that names it.
fn refused(builder: ClientBuilder, setting: &str) {
    let err = builder.build().expect_err("the setting is refused");
    assert_eq!(err.kind(), ErrorKind::Builder, "{err}");
    assert!(err.to_string().contains(setting), "the error names {setting}: {err}");
}

#[test]
fn max_connections_per_host_zero_is_refused_and_max_works() {
    refused(Client::builder().max_connections_per_host(0), "max_connections_per_host");
    let (client, server) = two_gets(|b| b.max_connections_per_host(usize::MAX));
    assert_eq!((client.pool_stats().reused, server.connections()), (1, 1));
}

#[test]
fn max_idle_per_host_zero_and_max_work() {
    let (client, server) = two_gets(|b| b.max_idle_per_host(0));
    assert_eq!((client.pool_stats().reused, server.connections()), (0, 2), "no connection is kept idle");
    let (client, server) = two_gets(|b| b.max_idle_per_host(usize::MAX));
    assert_eq!((client.pool_stats().reused, server.connections()), (1, 1));
}

#[test]
fn idle_timeout_max_means_connections_never_expire() {
    // `Instant::now() + Duration::MAX` used to panic in the lease's release,
    // after the leased count went down, so the slot leaked for good.
    let (client, server) = two_gets(|b| b.idle_timeout(Duration::MAX));
    let stats = client.pool_stats();
    assert_eq!((stats.reused, stats.leased, stats.idle, server.connections()), (1, 0, 1, 1));
}

#[test]
fn idle_timeout_zero_keeps_nothing() {
    let (client, server) = two_gets(|b| b.idle_timeout(Duration::ZERO));
    assert_eq!((client.pool_stats().reused, server.connections()), (0, 2));
    assert_eq!(client.pool_stats().leased, 0);
}

#[test]
fn timeout_max_means_no_timeout() {
    let (client, _server) = two_gets(|b| b.timeout(Duration::MAX));
    assert_eq!(client.pool_stats().leased, 0);
    // Large but representable: a deadline far away, not a panic either.
    two_gets(|b| b.timeout(Duration::from_secs(100 * 365 * 24 * 3600)));
}

#[test]
fn request_timeout_max_means_no_timeout() {
    common::with_deadline(DEADLINE, || {
        let server = echo_ok_server(b"hello");
        let client = Client::new();
        smol::block_on(async {
            let resp = client.get(server.url("/")).timeout(Duration::MAX).send().await.expect("request succeeds");
            assert_eq!(resp.text().await.unwrap(), "hello");
        });
    });
}

#[test]
fn connect_timeout_max_means_no_connect_timeout() {
    let (client, server) = two_gets(|b| b.connect_timeout(Duration::MAX).timeout(Duration::MAX));
    assert_eq!((client.pool_stats().opened, server.connections()), (1, 1));
}

#[test]
fn zero_timeouts_time_out_instead_of_panicking() {
    common::with_deadline(DEADLINE, || {
        // A server that never answers: only the deadline can end the request.
        let server = Server::start(|conn| {
            conn.read_request();
            conn.wait_peer_close(Duration::from_secs(5));
        });
        let client = Client::builder().timeout(Duration::ZERO).build().unwrap();
        let err = smol::block_on(client.get(server.url("/")).send()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
        assert_eq!(client.pool_stats().leased, 0);
    });
}

#[test]
fn max_redirects_zero_and_max() {
    common::with_deadline(DEADLINE, || {
        let server = Server::start(|conn| {
            while let Some(req) = conn.read_request() {
                if req.target == "/start" {
                    conn.respond(302, &[("Location", "/end")], b"");
                } else {
                    conn.respond(200, &[], b"end");
                }
            }
        });
        smol::block_on(async {
            let none = Client::builder().max_redirects(0).build().unwrap();
            let err = none.get(server.url("/start")).send().await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Redirect, "{err}");
            let any = Client::builder().max_redirects(usize::MAX).build().unwrap();
            let resp = any.get(server.url("/start")).send().await.unwrap();
            assert_eq!(resp.text().await.unwrap(), "end");
        });
    });
}

#[test]
fn max_response_head_size_too_small_is_refused_and_max_works() {
    refused(Client::builder().max_response_head_size(0), "max_response_head_size");
    refused(Client::builder().max_response_head_size(15), "max_response_head_size");
    two_gets(|b| b.max_response_head_size(16 * 1024 * 1024));
    two_gets(|b| b.max_response_head_size(usize::MAX));
}

#[test]
fn max_headers_zero_is_refused_and_max_works() {
    // `max_headers(usize::MAX)` used to panic with a capacity overflow on
    // the first response.
    refused(Client::builder().max_headers(0), "max_headers");
    two_gets(|b| b.max_headers(usize::MAX));
    two_gets(|b| b.max_headers(1 << 40));
}

fn chunked_server() -> Server {
    Server::start(|conn| {
        while conn.read_request().is_some() {
            conn.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n");
        }
    })
}

fn chunked_get(client: &Client, server: &Server) -> smolreq::Result<String> {
    common::with_deadline(DEADLINE, {
        let client = client.clone();
        let url = server.url("/");
        move || smol::block_on(async { client.get(url).send().await?.text().await })
    })
}

#[test]
fn max_chunk_line_size_too_small_is_refused_and_max_works() {
    refused(Client::builder().max_chunk_line_size(2), "max_chunk_line_size");
    let server = chunked_server();
    let client = Client::builder().max_chunk_line_size(usize::MAX).build().unwrap();
    assert_eq!(chunked_get(&client, &server).unwrap(), "hello");
    assert_eq!(chunked_get(&client, &server).unwrap(), "hello");
    assert_eq!(client.pool_stats().reused, 1);
}

#[test]
fn max_trailer_size_zero_and_max() {
    let server = chunked_server();
    let none = Client::builder().max_trailer_size(0).build().unwrap();
    let err = chunked_get(&none, &server).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "a trailer field is over a zero limit: {err}");
    let any = Client::builder().max_trailer_size(usize::MAX).build().unwrap();
    assert_eq!(chunked_get(&any, &server).unwrap(), "hello");
}

#[test]
fn user_agent_with_a_newline_is_refused() {
    refused(Client::builder().user_agent("a\r\nX-Injected: 1"), "user_agent");
    let (_client, server) = two_gets(|b| b.user_agent(""));
    assert_eq!(server.requests(), 2);
}
