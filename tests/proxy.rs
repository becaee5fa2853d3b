//! Proxies against in-process scripted proxies on loopback: the forward
//! proxy (absolute form), CONNECT tunnels to a TLS origin, SOCKS5, the
//! pool key, credentials, NO_PROXY and hostile proxies. Real proxies
//! (tinyproxy, squid, microsocks) are in tests/proxy_interop.rs.

#![cfg(feature = "proxy")]

mod common;
#[cfg(feature = "native-tls")]
mod tls_util;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::{Server, with_deadline};
use smolreq::{Client, ErrorKind, NoProxy, Proxy};

const DEADLINE: Duration = Duration::from_secs(20);

fn block<T: Send + 'static, F: std::future::Future<Output = T> + Send + 'static>(f: F) -> T {
    with_deadline(DEADLINE, move || smol::block_on(f))
}

/// A forward proxy that answers every request itself with the target it
/// received as the body.
fn forward_proxy() -> Server {
    Server::start(|conn| {
        while let Some(req) = conn.read_request() {
            let body = req.target.clone();
            conn.respond(200, &[], body.as_bytes());
        }
    })
}

fn proxy_url(server: &Server) -> String {
    format!("http://{}", server.addr())
}

fn client_via(proxy: Proxy) -> Client {
    Client::builder().proxy(proxy).build().unwrap()
}

#[test]
fn http_goes_to_the_proxy_in_absolute_form_and_is_pooled() {
    let proxy = forward_proxy();
    let client = client_via(Proxy::http(format!("http://user:p%40ss@{}", proxy.addr())).unwrap());
    let (a, b, stats) = block(async move {
        let a = client.get("http://origin.test:8080/a?b=1").send().await.unwrap().text().await.unwrap();
        let b = client.get("http://origin.test:8080/c").send().await.unwrap().text().await.unwrap();
        (a, b, client.pool_stats())
    });
    assert_eq!(a, "http://origin.test:8080/a?b=1");
    assert_eq!(b, "http://origin.test:8080/c");
    let reqs = proxy.received();
    assert_eq!(reqs[0].header("host"), Some("origin.test:8080"));
    // "user:p@ss", percent-decoded, in Basic.
    assert_eq!(reqs[0].header("proxy-authorization"), Some("Basic dXNlcjpwQHNz"));
    assert_eq!(proxy.requests_per_connection(), [2], "keep-alive to the proxy");
    assert_eq!((stats.opened, stats.reused), (1, 1), "{stats:?}");
}

#[test]
fn default_port_is_left_out_of_the_absolute_target_and_host() {
    let proxy = forward_proxy();
    let client = client_via(Proxy::all(proxy_url(&proxy)).unwrap());
    let got = block(async move { client.get("http://origin.test/x").send().await.unwrap().text().await.unwrap() });
    assert_eq!(got, "http://origin.test/x");
    assert_eq!(proxy.received()[0].header("host"), Some("origin.test"));
}

#[test]
fn connections_are_never_shared_across_proxy_credentials() {
    let proxy = forward_proxy();
    let client = client_via(Proxy::http(proxy_url(&proxy)).unwrap());
    block(async move {
        for auth in ["Basic YTph", "Basic Yjpi", "Basic YTph"] {
            let resp = client.get("http://origin.test/").header("proxy-authorization", auth).send().await.unwrap();
            resp.text().await.unwrap();
        }
    });
    let reqs = proxy.received();
    let auths: Vec<_> = reqs.iter().map(|r| r.header("proxy-authorization").unwrap().to_owned()).collect();
    assert_eq!(auths, ["Basic YTph", "Basic Yjpi", "Basic YTph"]);
    assert_eq!(proxy.requests_per_connection(), [2, 1], "the second credentials got their own connection");
    assert_eq!(reqs.iter().map(|r| r.conn_index).collect::<Vec<_>>(), [0, 1, 0]);
}

#[test]
fn configured_credentials_replace_the_callers_and_a_proxy_header_never_reaches_an_origin() {
    let proxy = forward_proxy();
    let client = client_via(Proxy::http(proxy_url(&proxy)).unwrap().basic_auth("u", "p"));
    block(async move {
        client.get("http://origin.test/").header("proxy-authorization", "Basic bm9wZQ==").send().await.unwrap();
    });
    let req = &proxy.received()[0];
    assert_eq!(req.header_all("proxy-authorization"), ["Basic dTpw"]);

    let origin = Server::start(|conn| {
        while let Some(_req) = conn.read_request() {
            conn.respond(200, &[], b"direct");
        }
    });
    let url = origin.url("/");
    block(async move {
        let client = Client::builder().no_proxy().build().unwrap();
        let resp = client.get(url).header("proxy-authorization", "Basic c2VjcmV0").send().await.unwrap();
        resp.text().await.unwrap()
    });
    assert_eq!(origin.received()[0].header("proxy-authorization"), None, "{}", origin.received()[0].head_str());
}

#[test]
fn a_407_to_a_forwarded_request_is_a_normal_response() {
    let proxy = Server::start(|conn| {
        while let Some(_req) = conn.read_request() {
            conn.respond(407, &[("Proxy-Authenticate", "Basic realm=\"p\"")], b"who are you");
        }
    });
    let client = client_via(Proxy::http(proxy_url(&proxy)).unwrap());
    let (status, text) = block(async move {
        let resp = client.get("http://origin.test/").send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    });
    assert_eq!((status, text.as_str()), (407, "who are you"));
}

#[test]
fn no_proxy_sends_matching_destinations_direct() {
    let proxy = forward_proxy();
    let origin = Server::start(|conn| {
        while let Some(_req) = conn.read_request() {
            conn.respond(200, &[], b"direct");
        }
    });
    let client = client_via(Proxy::all(proxy_url(&proxy)).unwrap().no_proxy(NoProxy::from_string("127.0.0.0/8")));
    let url = origin.url("/d");
    let got = block(async move { client.get(url).send().await.unwrap().text().await.unwrap() });
    assert_eq!(got, "direct");
    assert_eq!(proxy.requests(), 0);
    assert_eq!(origin.received()[0].target, "/d");
}

#[test]
fn a_redirect_chooses_the_proxy_again() {
    // The origin behind the proxy redirects to an origin that bypasses it.
    let direct = Server::start(|conn| {
        while let Some(_req) = conn.read_request() {
            conn.respond(200, &[], b"landed direct");
        }
    });
    let landing = direct.url("/landing");
    let proxy = Server::start(move |conn| {
        while let Some(_req) = conn.read_request() {
            conn.respond(302, &[("Location", landing.as_str())], b"");
        }
    });
    let client = client_via(Proxy::all(proxy_url(&proxy)).unwrap().no_proxy(NoProxy::from_string("127.0.0.1")));
    let got = block(async move { client.get("http://origin.test/start").send().await.unwrap().text().await.unwrap() });
    assert_eq!(got, "landed direct");
    assert_eq!(proxy.received()[0].target, "http://origin.test/start");
    assert_eq!(direct.received()[0].target, "/landing");
}

#[test]
fn an_unreachable_proxy_is_a_proxy_error_naming_the_proxy_without_its_password() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = client_via(Proxy::all(format!("http://user:hunter2@127.0.0.1:{port}")).unwrap());
    let err = block(async move { client.get("http://origin.test/").send().await.unwrap_err() });
    assert_eq!(err.kind(), ErrorKind::Proxy, "{err:?}");
    assert_eq!(err.url().map(|u| u.to_string()), Some(format!("http://127.0.0.1:{port}/")));
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2") && !text.contains("origin.test"), "{text}");
}

// ---------------------------------------------------------------------------
// Tunnels: an in-process relay that speaks CONNECT or SOCKS5, then copies
// bytes both ways to the real destination.
// ---------------------------------------------------------------------------

/// What a relay saw: the handshake bytes (CONNECT head or SOCKS5 messages).
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Vec<u8>>>>);

impl Seen {
    fn all(&self) -> Vec<Vec<u8>> {
        self.0.lock().unwrap().clone()
    }
}

/// Copies bytes both ways until either side closes.
fn pipe(a: TcpStream, b: TcpStream) {
    let (mut a2, mut b2) = (a.try_clone().unwrap(), b.try_clone().unwrap());
    let (mut a, mut b) = (a, b);
    let t = thread::spawn(move || {
        let _ = std::io::copy(&mut a2, &mut b2);
        let _ = b2.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut b, &mut a);
    let _ = a.shutdown(Shutdown::Write);
    let _ = t.join();
}

/// A relay on loopback; `handshake` reads the client's request on the
/// accepted socket and returns where to connect (and what it saw), or
/// `None` after answering a refusal itself.
fn relay(
    handshake: impl Fn(&mut TcpStream, &dyn Fn(SocketAddr) -> TcpStream) -> Option<Vec<u8>> + Send + Sync + 'static,
) -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let record = seen.clone();
    let handshake = Arc::new(handshake);
    thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(mut socket) = socket else { return };
            let (record, handshake) = (record.clone(), handshake.clone());
            thread::spawn(move || {
                socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let upstream = Mutex::new(None);
                let dial = |to: SocketAddr| {
                    let s = TcpStream::connect(to).unwrap();
                    *upstream.lock().unwrap() = Some(s.try_clone().unwrap());
                    s
                };
                if let Some(bytes) = handshake(&mut socket, &dial) {
                    record.0.lock().unwrap().push(bytes);
                }
                if let Some(up) = upstream.into_inner().unwrap() {
                    pipe(socket, up);
                }
            });
        }
    });
    (addr, seen)
}

fn read_n(socket: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    socket.read_exact(&mut buf).unwrap();
    buf
}

/// A SOCKS5 proxy (optionally with a password) connecting to `to`
/// whatever it is asked; records the CONNECT request.
fn socks_proxy(to: SocketAddr, password: Option<(&'static str, &'static str)>) -> (SocketAddr, Seen) {
    relay(move |socket, dial| {
        let greeting = read_n(socket, 2);
        let methods = read_n(socket, usize::from(greeting[1]));
        if let Some((user, pass)) = password {
            assert!(methods.contains(&2), "{methods:?}");
            socket.write_all(&[5, 2]).unwrap();
            let head = read_n(socket, 2);
            let u = read_n(socket, usize::from(head[1]));
            let plen = read_n(socket, 1)[0];
            let p = read_n(socket, usize::from(plen));
            let ok = u == user.as_bytes() && p == pass.as_bytes();
            socket.write_all(&[1, if ok { 0 } else { 1 }]).unwrap();
            if !ok {
                return None;
            }
        } else {
            socket.write_all(&[5, 0]).unwrap();
        }
        let mut request = read_n(socket, 4);
        let rest = match request[3] {
            1 => 4 + 2,
            4 => 16 + 2,
            _ => {
                let n = read_n(socket, 1)[0];
                request.push(n);
                usize::from(n) + 2
            }
        };
        request.extend(read_n(socket, rest));
        let up = dial(to);
        drop(up);
        socket.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0]).unwrap();
        Some(request)
    })
}

fn origin() -> Server {
    Server::start(|conn| {
        while let Some(req) = conn.read_request() {
            let body = format!("origin got {}", req.target);
            conn.respond(200, &[], body.as_bytes());
        }
    })
}

#[test]
fn socks5h_sends_the_name_and_the_tunnel_is_pooled() {
    let origin = origin();
    let (proxy, seen) = socks_proxy(origin.addr(), Some(("alice", "s3cret")));
    let client = client_via(Proxy::all(format!("socks5h://alice:s3cret@{proxy}")).unwrap());
    let (a, b, stats) = block(async move {
        let a = client.get("http://origin.test:81/a").send().await.unwrap().text().await.unwrap();
        let b = client.get("http://origin.test:81/b").send().await.unwrap().text().await.unwrap();
        (a, b, client.pool_stats())
    });
    assert_eq!((a.as_str(), b.as_str()), ("origin got /a", "origin got /b"), "origin-form inside a tunnel");
    assert_eq!(seen.all(), [b"\x05\x01\x00\x03\x0borigin.test\x00\x51".to_vec()]);
    assert_eq!((stats.opened, stats.reused), (1, 1), "{stats:?}");
    assert_eq!(origin.received()[0].header("host"), Some("origin.test:81"));
}

#[test]
fn socks5_resolves_locally_and_sends_an_address() {
    let origin = origin();
    let (proxy, seen) = socks_proxy(origin.addr(), None);
    let client = client_via(Proxy::all(format!("socks5://{proxy}")).unwrap());
    let got = block(async move { client.get("http://localhost:82/x").send().await.unwrap().text().await.unwrap() });
    assert_eq!(got, "origin got /x");
    let request = &seen.all()[0];
    assert!(matches!(request[3], 1 | 4), "an address, not a name: {request:?}");
    assert_eq!(request[request.len() - 2..], [0, 82]);
}

#[test]
fn a_stale_pooled_tunnel_is_retried_like_a_stale_connection() {
    // The origin's first connection answers one request, then reads the
    // next and closes without answering: the GET is sent again through a
    // new tunnel, once.
    let origin = Server::start(|conn| {
        if conn.index() == 0 {
            if let Some(req) = conn.read_request() {
                conn.respond(200, &[], req.target.as_bytes());
            }
            if conn.read_request().is_some() {
                conn.close();
            }
            return;
        }
        while let Some(req) = conn.read_request() {
            conn.respond(200, &[], req.target.as_bytes());
        }
    });
    let (proxy, seen) = socks_proxy(origin.addr(), None);
    let client = client_via(Proxy::all(format!("socks5h://{proxy}")).unwrap());
    let (a, b, stats) = block(async move {
        let a = client.get("http://origin.test/1").send().await.unwrap().text().await.unwrap();
        let b = client.get("http://origin.test/2").send().await.unwrap().text().await.unwrap();
        (a, b, client.pool_stats())
    });
    assert_eq!((a.as_str(), b.as_str()), ("/1", "/2"));
    assert_eq!((stats.opened, stats.reused, stats.retried, stats.leased), (2, 1, 1, 0), "{stats:?}");
    assert_eq!(seen.all().len(), 2, "a second tunnel");
    let targets: Vec<_> = origin.received().into_iter().map(|r| (r.conn_index, r.target)).collect();
    assert_eq!(targets, [(0, "/1".to_owned()), (0, "/2".to_owned()), (1, "/2".to_owned())]);
}

#[test]
fn socks5_wrong_password_is_a_proxy_error() {
    let origin = origin();
    let (proxy, _) = socks_proxy(origin.addr(), Some(("alice", "s3cret")));
    let client = client_via(Proxy::all(format!("socks5h://alice:wrong@{proxy}")).unwrap());
    let err = block(async move { client.get("http://origin.test/").send().await.unwrap_err() });
    assert_eq!(err.kind(), ErrorKind::Proxy, "{err:?}");
    assert!(err.to_string().contains("rejected the user name or password"), "{err}");
    assert_eq!(origin.connections(), 0);
}

#[cfg(feature = "native-tls")]
mod https {
    use super::*;
    use smolreq::Certificate;
    use tls_util::{Ca, TlsConfig, TlsServer, ok_server};

    fn read_head(socket: &mut TcpStream) -> Vec<u8> {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && socket.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        head
    }

    /// A CONNECT proxy tunnelling every request to `to`.
    fn connect_proxy(to: SocketAddr) -> (SocketAddr, Seen) {
        relay(move |socket, dial| {
            let head = read_head(socket);
            let up = dial(to);
            drop(up);
            socket.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").unwrap();
            Some(head)
        })
    }

    #[test]
    fn https_through_connect_verifies_the_origin_and_pools_the_tunnel() {
        let ca = Ca::new("test root");
        let server = ok_server(TlsConfig::new(ca.server_cert(&["origin.test"])), b"secret page");
        let to = SocketAddr::from(([127, 0, 0, 1], server.port()));
        let (proxy, seen) = connect_proxy(to);
        let client = Client::builder()
            .add_root_certificate(Certificate::from_pem(ca.cert_pem.as_bytes()).unwrap())
            .proxy(Proxy::https(format!("http://u:p@{proxy}")).unwrap())
            .build()
            .unwrap();
        let (a, b, stats) = block(async move {
            let a = client.get("https://origin.test:8443/").send().await.unwrap().text().await.unwrap();
            let b = client.get("https://origin.test:8443/").send().await.unwrap().text().await.unwrap();
            (a, b, client.pool_stats())
        });
        assert_eq!((a.as_str(), b.as_str()), ("secret page", "secret page"));
        let head = String::from_utf8(seen.all()[0].clone()).unwrap();
        assert!(head.starts_with("CONNECT origin.test:8443 HTTP/1.1\r\nHost: origin.test:8443\r\n"), "{head}");
        assert!(head.contains("Proxy-Authorization: Basic dTpw\r\n"), "{head}");
        assert_eq!(seen.all().len(), 1, "one tunnel for both requests");
        assert_eq!((stats.opened, stats.reused), (1, 1), "{stats:?}");
        assert_eq!(server.sni(), vec![Some("origin.test".to_owned())], "TLS to the origin, not the proxy");
    }

    #[test]
    fn an_https_proxy_is_reached_over_tls_verified_as_the_proxy() {
        let ca = Ca::new("test root");
        let proxy = TlsServer::start(TlsConfig::new(ca.server_cert(&["localhost"])), |conn| {
            while let Some(req) = conn.read_request() {
                let body = format!("{} {}", req.target, req.header("proxy-authorization").unwrap_or("-"));
                conn.respond(200, &[], body.as_bytes());
            }
        });
        let client = Client::builder()
            .add_root_certificate(Certificate::from_pem(ca.cert_pem.as_bytes()).unwrap())
            .proxy(Proxy::http(format!("https://u:p@localhost:{}", proxy.port())).unwrap())
            .build()
            .unwrap();
        let got = block(async move { client.get("http://origin.test/x").send().await.unwrap().text().await.unwrap() });
        assert_eq!(got, "http://origin.test/x Basic dTpw", "absolute form and credentials, inside TLS");
        assert_eq!(proxy.sni(), vec![Some("localhost".to_owned())], "TLS to the proxy names the proxy");

        // The proxy's certificate is verified like any server's.
        let client = client_via(Proxy::http(format!("https://localhost:{}", proxy.port())).unwrap());
        let err = block(async move { client.get("http://origin.test/x").send().await.unwrap_err() });
        assert_eq!(err.kind(), ErrorKind::Tls, "{err:?}");
        assert_eq!(err.url().map(|u| u.to_string()), Some(format!("https://localhost:{}/", proxy.port())));
    }

    #[test]
    fn the_origin_certificate_is_checked_through_the_tunnel() {
        let ca = Ca::new("test root");
        let server = ok_server(TlsConfig::new(ca.server_cert(&["other.test"])), b"x");
        let (proxy, _) = connect_proxy(SocketAddr::from(([127, 0, 0, 1], server.port())));
        let client = Client::builder()
            .add_root_certificate(Certificate::from_pem(ca.cert_pem.as_bytes()).unwrap())
            .proxy(Proxy::all(format!("http://{proxy}")).unwrap())
            .build()
            .unwrap();
        let err = block(async move { client.get("https://origin.test/").send().await.unwrap_err() });
        assert_eq!(err.kind(), ErrorKind::Tls, "{err:?}");
    }

    fn refusing_proxy(answer: &'static [u8]) -> SocketAddr {
        relay(move |socket, _| {
            read_head(socket);
            socket.write_all(answer).unwrap();
            None
        })
        .0
    }

    #[test]
    fn a_refused_connect_is_a_proxy_error_with_its_status() {
        for (answer, status) in [
            (&b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"[..], 407),
            (b"HTTP/1.1 502 Bad Gateway\r\n\r\n", 502),
        ] {
            let proxy = refusing_proxy(answer);
            let client = client_via(Proxy::all(format!("http://{proxy}")).unwrap());
            let err = block(async move { client.get("https://origin.test/").send().await.unwrap_err() });
            assert_eq!(err.kind(), ErrorKind::Proxy, "{err:?}");
            assert_eq!(err.status().map(|s| s.as_u16()), Some(status), "{err:?}");
            assert_eq!(err.url().map(|u| u.to_string()), Some(format!("http://{proxy}/")));
        }
    }

    #[test]
    fn a_proxy_that_never_answers_connect_hits_the_connect_timeout() {
        let proxy = relay(|socket, _| {
            read_head(socket);
            thread::sleep(Duration::from_secs(3));
            None
        })
        .0;
        let client = Client::builder()
            .connect_timeout(Duration::from_millis(200))
            .proxy(Proxy::all(format!("http://{proxy}")).unwrap())
            .build()
            .unwrap();
        let started = std::time::Instant::now();
        let (err, stats) = block(async move {
            let err = client.get("https://origin.test/").send().await.unwrap_err();
            (err, client.pool_stats())
        });
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
        assert_eq!((stats.leased, stats.idle), (0, 0), "{stats:?}");
    }

    #[test]
    fn hostile_connect_answers_are_clean_errors() {
        for answer in [&b"garbage\r\n\r\n"[..], b"HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", b"HTTP/1.1 20"] {
            let proxy = refusing_proxy(answer);
            let client = client_via(Proxy::all(format!("http://{proxy}")).unwrap());
            let (err, stats) = block(async move {
                let err = client.get("https://origin.test/").send().await.unwrap_err();
                (err, client.pool_stats())
            });
            assert_eq!(err.kind(), ErrorKind::Proxy, "{answer:?}: {err:?}");
            assert_eq!((stats.leased, stats.idle), (0, 0), "{stats:?}");
        }
    }
}
