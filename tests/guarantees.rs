//! Limits stated in docs/guarantees.md that no other test file covers.

mod common;

use std::time::Duration;

use common::{Server, with_deadline};
use smolreq::{Client, ErrorKind};

/// A server answering each request with `interim` `100 Continue` responses
/// and then `200 ok`.
fn interim_server(interim: usize) -> Server {
    Server::start(move |conn| {
        while conn.read_request().is_some() {
            let mut out = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(interim);
            out.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
            conn.write(&out);
        }
    })
}

#[test]
fn thirty_two_interim_responses_are_skipped() {
    let server = interim_server(32);
    let url = server.url("/");
    let body = with_deadline(Duration::from_secs(10), move || {
        smol::block_on(async { Client::new().get(url).send().await?.bytes().await })
    });
    assert_eq!(body.unwrap(), &b"ok"[..]);
}

#[test]
fn thirty_three_interim_responses_are_a_protocol_error() {
    let server = interim_server(33);
    let url = server.url("/");
    let err = with_deadline(Duration::from_secs(10), move || {
        smol::block_on(async { Client::new().get(url).send().await.map(|_| ()) })
    })
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(err.to_string().contains("interim"), "{err}");
}
