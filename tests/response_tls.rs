//! `Response::remote_addr` over TLS: the peer of the TCP connection under
//! the TLS layer (issue 12).

#![cfg(feature = "native-tls")]

mod common;
mod tls_util;

use std::time::Duration;

use smolreq::{Certificate, Client};
use tls_util::{Ca, TlsConfig, ok_server};

#[test]
fn remote_addr_is_the_tcp_peer_under_tls() {
    let ca = Ca::new("test root");
    let server = ok_server(TlsConfig::new(ca.server_cert(&["localhost", "127.0.0.1"])), b"secure hello");
    let client =
        Client::builder().add_root_certificate(Certificate::from_pem(ca.cert_pem.as_bytes()).unwrap()).build().unwrap();
    let url = server.url("/");
    let port = server.port();
    let (addr, text) = common::with_deadline(Duration::from_secs(20), move || {
        smol::block_on(async move {
            let resp = client.get(url).send().await.unwrap();
            (resp.remote_addr(), resp.text().await.unwrap())
        })
    });
    assert_eq!(text, "secure hello");
    let addr = addr.expect("a TLS connection over TCP has a peer address");
    assert_eq!(addr.port(), port);
    assert!(addr.ip().is_loopback(), "{addr}");
}
