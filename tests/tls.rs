//! HTTPS against real TLS servers on 127.0.0.1, with certificates generated
//! at test time (see tests/tls_util). Host-name checks use `localhost`.

#![cfg(feature = "native-tls")]

mod common;
mod tls_util;

use std::error::Error as _;
use std::future::Future;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use openssl::ssl::SslVersion;
use smolreq::{Certificate, Client, ClientBuilder, Error, ErrorKind, Identity, TlsVersion};
use tls_util::{Ca, TlsConfig, TlsServer, ok_server};

const DEADLINE: Duration = Duration::from_secs(20);

fn block<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    common::with_deadline(DEADLINE, move || smol::block_on(fut))
}

fn trusting(ca: &Ca) -> ClientBuilder {
    Client::builder().add_root_certificate(Certificate::from_pem(ca.cert_pem.as_bytes()).unwrap())
}

fn localhost_server(ca: &Ca, body: &'static [u8]) -> TlsServer {
    ok_server(TlsConfig::new(ca.server_cert(&["localhost", "127.0.0.1"])), body)
}

async fn get_text(client: &Client, url: &str) -> Result<String, Error> {
    client.get(url).send().await?.text().await
}

/// A TLS error whose source chain holds the native-tls error.
fn assert_tls_error(err: &Error) {
    assert_eq!(err.kind(), ErrorKind::Tls, "{err:?}");
    let mut source = err.source();
    while let Some(e) = source {
        if e.is::<native_tls::Error>() || e.to_string().contains("SSL") || e.to_string().contains("certificate") {
            return;
        }
        source = e.source();
    }
    panic!("no TLS library error in the source chain of {err:?}");
}

#[test]
fn trusted_custom_root_works_with_sni_and_alpn_http1() {
    let ca = Ca::new("test root");
    let server = localhost_server(&ca, b"secure hello");
    let client = trusting(&ca).build().unwrap();
    let url = server.url("/");
    let resp = block(async move {
        let resp = client.get(url).send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    });
    assert_eq!(resp, (200, "secure hello".to_owned()));
    assert_eq!(server.sni(), vec![Some("localhost".to_owned())]);
    assert_eq!(server.alpn_offered(), vec![b"\x08http/1.1".to_vec()], "ALPN must offer only http/1.1");
}

#[test]
fn ip_literal_is_checked_against_the_ip_address_of_the_certificate() {
    let ca = Ca::new("test root");
    let server = localhost_server(&ca, b"by ip");
    let client = trusting(&ca).build().unwrap();
    let url = format!("https://127.0.0.1:{}/", server.port());
    assert_eq!(block(async move { get_text(&client, &url).await.unwrap() }), "by ip");
    assert_eq!(server.sni(), vec![None], "no SNI for an IP literal");

    let other = ok_server(TlsConfig::new(ca.server_cert(&["localhost"])), b"");
    let client = trusting(&ca).build().unwrap();
    let url = format!("https://127.0.0.1:{}/", other.port());
    assert_tls_error(&block(async move { get_text(&client, &url).await.unwrap_err() }));
}

#[test]
fn unknown_ca_fails() {
    let ca = Ca::new("test root");
    let server = localhost_server(&ca, b"");
    let url = server.url("/");
    let err = block(async move { get_text(&Client::new(), &url).await.unwrap_err() });
    assert_tls_error(&err);
    assert!(err.source().unwrap().is::<native_tls::Error>(), "source is the native-tls error: {err:?}");
    assert_eq!(server.requests(), 0);
}

#[test]
fn wrong_hostname_fails() {
    let ca = Ca::new("test root");
    let server = ok_server(TlsConfig::new(ca.server_cert(&["other.test"])), b"");
    let client = trusting(&ca).build().unwrap();
    let url = server.url("/");
    assert_tls_error(&block(async move { get_text(&client, &url).await.unwrap_err() }));
}

#[test]
fn expired_certificate_fails() {
    let ca = Ca::new("test root");
    let server = ok_server(TlsConfig::new(ca.expired_server_cert(&["localhost"])), b"");
    let client = trusting(&ca).build().unwrap();
    let url = server.url("/");
    let err = block(async move { get_text(&client, &url).await.unwrap_err() });
    assert_tls_error(&err);
    // The reason is in the chain once: Display shows this level only and
    // leaves the native-tls error to `source()`. (native-tls's own Display
    // repeats the OpenSSL error that is its source; that part is not ours.)
    let chain = chain(&err);
    assert!(!err.to_string().contains("expired"), "{err}");
    assert_eq!(chain.matches("expired").count(), 1, "{chain}");
}

/// Every level of the error chain joined by ": ", as anyhow's `{:#}` shows it.
fn chain(err: &Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[test]
fn danger_accept_invalid_certs_accepts_unknown_ca_and_expired() {
    let ca = Ca::new("test root");
    let unknown = localhost_server(&ca, b"unknown ca");
    let expired = ok_server(TlsConfig::new(ca.expired_server_cert(&["localhost"])), b"expired");
    let client = Client::builder().danger_accept_invalid_certs(true).build().unwrap();
    let (a, b) = (unknown.url("/"), expired.url("/"));
    let bodies = block(async move { (get_text(&client, &a).await.unwrap(), get_text(&client, &b).await.unwrap()) });
    assert_eq!(bodies, ("unknown ca".to_owned(), "expired".to_owned()));
}

#[test]
fn danger_accept_invalid_hostnames_accepts_wrong_name_but_not_unknown_ca() {
    let ca = Ca::new("test root");
    let wrong_name = ok_server(TlsConfig::new(ca.server_cert(&["other.test"])), b"other name");
    let client = trusting(&ca).danger_accept_invalid_hostnames(true).build().unwrap();
    let url = wrong_name.url("/");
    assert_eq!(block(async move { get_text(&client, &url).await.unwrap() }), "other name");

    let stranger = Ca::new("unknown root");
    let unknown = localhost_server(&stranger, b"");
    let client = trusting(&ca).danger_accept_invalid_hostnames(true).build().unwrap();
    let url = unknown.url("/");
    assert_tls_error(&block(async move { get_text(&client, &url).await.unwrap_err() }));
}

#[test]
fn client_certificate_required_by_the_server() {
    let ca = Ca::new("test root");
    let mut config = TlsConfig::new(ca.server_cert(&["localhost"]));
    config.client_ca = Some(ca.cert_pem.clone());
    let server = ok_server(config, b"hello client");
    let client_cert = ca.client_cert("client.test");

    // PEM chain and PKCS#8 key.
    let identity = Identity::from_pkcs8(client_cert.cert_pem.as_bytes(), client_cert.key_pem.as_bytes()).unwrap();
    let client = trusting(&ca).identity(identity).build().unwrap();
    let url = server.url("/");
    assert_eq!(block(async move { get_text(&client, &url).await.unwrap() }), "hello client");

    // PKCS#12 archive.
    let pkey = openssl::pkey::PKey::private_key_from_pem(client_cert.key_pem.as_bytes()).unwrap();
    let x509 = openssl::x509::X509::from_pem(client_cert.cert_pem.as_bytes()).unwrap();
    let p12 = openssl::pkcs12::Pkcs12::builder().name("client").pkey(&pkey).cert(&x509).build2("pw").unwrap();
    let der = p12.to_der().unwrap();
    assert_eq!(Identity::from_pkcs12(&der, "wrong password").unwrap_err().kind(), ErrorKind::Tls);
    let client = trusting(&ca).identity(Identity::from_pkcs12(&der, "pw").unwrap()).build().unwrap();
    let url = server.url("/");
    assert_eq!(block(async move { get_text(&client, &url).await.unwrap() }), "hello client");

    // Without a certificate: with TLS 1.3 the server's refusal arrives
    // after the client's side of the handshake, on the first read; it is a
    // TLS error either way.
    let client = trusting(&ca).build().unwrap();
    let url = server.url("/");
    assert_tls_error(&block(async move { get_text(&client, &url).await.unwrap_err() }));
    assert_eq!(server.requests(), 2);
}

#[test]
fn sequential_requests_reuse_one_tls_connection() {
    for max_version in [None, Some(SslVersion::TLS1_2)] {
        let ca = Ca::new("test root");
        let mut config = TlsConfig::new(ca.server_cert(&["localhost"]));
        config.max_version = max_version;
        let server = ok_server(config, b"again");
        let client = trusting(&ca).build().unwrap();
        let (c, url) = (client.clone(), server.url("/"));
        block(async move {
            for _ in 0..2 {
                assert_eq!(get_text(&c, &url).await.unwrap(), "again");
                // Give post-handshake messages (TLS 1.3 session tickets)
                // time to sit unread on the socket before the probe.
                async_io::Timer::after(Duration::from_millis(50)).await;
            }
        });
        let stats = client.pool_stats();
        assert_eq!((stats.opened, stats.reused, stats.discarded), (1, 1, 0), "{max_version:?}: {stats:?}");
        assert_eq!(server.accepted(), 1, "{max_version:?}");
    }
}

#[test]
fn concurrent_requests_share_a_capped_number_of_tls_connections() {
    let ca = Ca::new("test root");
    let server = localhost_server(&ca, b"many");
    let client = trusting(&ca).max_connections_per_host(2).build().unwrap();
    let (c, url) = (client.clone(), server.url("/"));
    block(async move {
        let ex = async_executor::Executor::new();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (c, url) = (c.clone(), url.clone());
                ex.spawn(async move { get_text(&c, &url).await.unwrap() })
            })
            .collect();
        ex.run(async {
            for task in tasks {
                assert_eq!(task.await, "many");
            }
        })
        .await;
    });
    assert!(server.accepted() <= 2, "accepted {}", server.accepted());
    assert_eq!(client.pool_stats().opened + client.pool_stats().reused, 8);
}

/// A server that closes a connection once it has been idle for 100 ms,
/// with close_notify or without.
fn idle_closing_server(ca: &Ca, notify: bool) -> TlsServer {
    TlsServer::start(TlsConfig::new(ca.server_cert(&["localhost"])), move |conn| {
        if conn.read_request().is_none() {
            return;
        }
        conn.respond(200, &[], b"fresh");
        while conn.read_request_within(Duration::from_millis(100)).is_some() {
            conn.respond(200, &[], b"fresh");
        }
        if notify {
            conn.close_notify();
        } else {
            conn.close_abruptly();
        }
    })
}

#[test]
fn server_closing_idle_tls_connections_does_not_fail_a_request() {
    for notify in [true, false] {
        let ca = Ca::new("test root");
        let server = idle_closing_server(&ca, notify);
        let client = trusting(&ca).build().unwrap();
        let (c, url) = (client.clone(), server.url("/"));
        block(async move {
            for _ in 0..3 {
                assert_eq!(get_text(&c, &url).await.unwrap(), "fresh");
                async_io::Timer::after(Duration::from_millis(300)).await;
            }
        });
        let stats = client.pool_stats();
        assert_eq!(stats.opened, 3, "close_notify {notify}: {stats:?}");
        assert_eq!(stats.reused, 0, "the probe must discard a closed connection: {stats:?}");
    }
}

#[test]
fn server_closing_right_after_each_response_does_not_fail_a_request() {
    let ca = Ca::new("test root");
    let server = TlsServer::start(TlsConfig::new(ca.server_cert(&["localhost"])), |conn| {
        if conn.read_request().is_some() {
            conn.respond(200, &[], b"once");
        }
    });
    let client = trusting(&ca).build().unwrap();
    let url = server.url("/");
    block(async move {
        for _ in 0..5 {
            assert_eq!(get_text(&client, &url).await.unwrap(), "once");
        }
    });
}

#[test]
fn truncated_body_over_tls_is_an_error() {
    for notify in [true, false] {
        let ca = Ca::new("test root");
        let server = TlsServer::start(TlsConfig::new(ca.server_cert(&["localhost"])), move |conn| {
            if conn.read_request().is_some() {
                conn.write_raw(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b");
                if notify {
                    conn.close_notify();
                } else {
                    conn.close_abruptly();
                }
            }
        });
        let client = trusting(&ca).build().unwrap();
        let url = server.url("/");
        let result = block(async move { get_text(&client, &url).await });
        assert!(result.is_err(), "close_notify {notify}: a truncated body must be an error, got {result:?}");
    }
}

fn redirecting_tls_server(ca: &Ca, location: String) -> TlsServer {
    TlsServer::start(TlsConfig::new(ca.server_cert(&["localhost"])), move |conn| {
        while conn.read_request().is_some() {
            conn.respond(302, &[("location", &location)], b"");
        }
    })
}

#[test]
fn https_to_http_redirect_is_refused_by_default_and_allowed_on_request() {
    let ca = Ca::new("test root");
    let plain = common::echo_ok_server(b"plain");
    let server = redirecting_tls_server(&ca, plain.url("/"));

    let client = trusting(&ca).build().unwrap();
    let url = server.url("/");
    let err = block(async move { get_text(&client, &url).await.unwrap_err() });
    assert_eq!(err.kind(), ErrorKind::Redirect, "{err:?}");
    assert!(err.to_string().contains("allow_https_downgrade"), "{err}");
    assert_eq!(plain.connections(), 0);

    let client = trusting(&ca).allow_https_downgrade(true).build().unwrap();
    let url = server.url("/");
    assert_eq!(block(async move { get_text(&client, &url).await.unwrap() }), "plain");

    // https_only wins over the downgrade permission.
    let client = trusting(&ca).allow_https_downgrade(true).https_only(true).build().unwrap();
    let url = server.url("/");
    assert_eq!(block(async move { get_text(&client, &url).await.unwrap_err() }).kind(), ErrorKind::Url);
    assert_eq!(plain.connections(), 1);
}

#[test]
fn http_to_https_redirect_is_followed() {
    let ca = Ca::new("test root");
    let secure = localhost_server(&ca, b"upgraded");
    let location = secure.url("/");
    let plain = common::Server::start(move |conn| {
        while conn.read_request().is_some() {
            conn.respond(301, &[("Location", &location)], b"");
        }
    });
    let client = trusting(&ca).build().unwrap();
    let url = plain.url("/");
    assert_eq!(block(async move { get_text(&client, &url).await.unwrap() }), "upgraded");
}

#[test]
fn https_only_refuses_plain_http_before_connecting() {
    let ca = Ca::new("test root");
    let plain = common::echo_ok_server(b"plain");
    let secure = localhost_server(&ca, b"secure");
    let client = trusting(&ca).https_only(true).build().unwrap();
    let (plain_url, secure_url) = (plain.url("/"), secure.url("/"));
    let (err, ok) = block(async move {
        (get_text(&client, &plain_url).await.unwrap_err(), get_text(&client, &secure_url).await.unwrap())
    });
    assert_eq!(err.kind(), ErrorKind::Url, "{err:?}");
    assert_eq!(ok, "secure");
    assert_eq!(plain.connections(), 0);
}

#[test]
fn connect_timeout_covers_the_handshake() {
    // Accepts TCP connections and never says a word.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _hold = std::thread::spawn(move || {
        let conns: Vec<_> = listener.incoming().take(1).collect();
        std::thread::sleep(Duration::from_secs(3));
        drop(conns);
    });
    let client = Client::builder().connect_timeout(Duration::from_millis(300)).build().unwrap();
    let started = Instant::now();
    let url = format!("https://localhost:{port}/");
    let err = block(async move { get_text(&client, &url).await.unwrap_err() });
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[test]
fn min_tls_version_refuses_an_older_server() {
    let ca = Ca::new("test root");
    let mut config = TlsConfig::new(ca.server_cert(&["localhost"]));
    config.max_version = Some(SslVersion::TLS1_2);
    let server = ok_server(config, b"tls12");
    let client = trusting(&ca).min_tls_version(TlsVersion::Tls1_3).build().unwrap();
    let url = server.url("/");
    assert_tls_error(&block(async move { get_text(&client, &url).await.unwrap_err() }));
    let client = trusting(&ca).min_tls_version(TlsVersion::Tls1_2).build().unwrap();
    let url = server.url("/");
    assert_eq!(block(async move { get_text(&client, &url).await.unwrap() }), "tls12");
}

#[test]
fn only_the_added_root_is_trusted_without_built_in_roots() {
    let ca = Ca::new("test root");
    let server = localhost_server(&ca, b"own roots");
    let client = trusting(&ca).tls_built_in_root_certs(false).build().unwrap();
    let url = server.url("/");
    assert_eq!(block(async move { get_text(&client, &url).await.unwrap() }), "own roots");
}

#[test]
fn custom_connector_stream_gets_tls_on_top_and_is_reused() {
    let ca = Ca::new("test root");
    let server = localhost_server(&ca, b"tunnelled");
    let port = server.port();
    let client = trusting(&ca)
        .connector(move |dest: smolreq::Destination| {
            assert!(dest.is_tls());
            async_io::Async::<std::net::TcpStream>::connect(([127, 0, 0, 1], port))
        })
        .build()
        .unwrap();
    let (c, url) = (client.clone(), format!("https://localhost:{port}/"));
    block(async move {
        for _ in 0..2 {
            assert_eq!(get_text(&c, &url).await.unwrap(), "tunnelled");
        }
    });
    assert_eq!(client.pool_stats().reused, 1);
    assert_eq!(server.sni(), vec![Some("localhost".to_owned())]);
}

fn fetch(args: &[&str]) -> std::process::Output {
    let bin = common::example_bin("fetch");
    let child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::with_deadline(DEADLINE, move || child.wait_with_output().unwrap())
}

#[test]
fn fetch_accepts_k_and_cacert() {
    let ca = Ca::new("fetch root");
    let server = localhost_server(&ca, b"from fetch");
    let url = server.url("/");

    let out = fetch(&[&url]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TLS"), "{stderr}");

    let out = fetch(&["-k", &url]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"from fetch");

    let ca_file = tls_util::write_temp("fetch-ca.pem", &ca.cert_pem);
    let out = fetch(&["--cacert", ca_file.to_str().unwrap(), &url]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"from fetch");

    let bad_file = tls_util::write_temp("fetch-bad.pem", "not a certificate");
    let out = fetch(&["--cacert", bad_file.to_str().unwrap(), &url]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}
