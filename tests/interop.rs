//! Interop with real servers, each started by the test (issue 7, part 4).
//! Ignored by default; `.ci/run` installs nginx-light and runs them:
//! `cargo test --release --test interop -- --ignored`.
//!
//! - nginx: static files (several sizes, HEAD, 404), a 64 MiB file streamed
//!   through the body's `AsyncRead`, chunked responses proxied from an
//!   in-process upstream, and `keepalive_requests 3` (nginx closes every
//!   third exchange with `Connection: close`).
//! - Python's `http.server`: HTTP/1.0 responses that close the connection,
//!   with Content-Length (`python3 -m http.server`) and close-delimited (a
//!   `BaseHTTPRequestHandler` that sends no length).
//!
//! Without nginx or python3 a test prints that it is skipped and passes,
//! except under `CI=true`, where it fails.

mod common;
#[path = "common/nginx.rs"]
mod nginx;
#[path = "common/seed.rs"]
mod seed;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, with_deadline};
use futures_lite::AsyncReadExt;
use nginx::{Nginx, TempDir};
use seed::{Framing, ItemQuery, body_for, body_is_exact, fnv1a64, item_response};
use smolreq::{Client, Version};

const TEST_DEADLINE: Duration = Duration::from_secs(120);

/// nginx serving `{dir}/www` with `keepalive_requests {requests}`, proxying
/// `/proxy/` to `upstream` when given.
fn start_nginx(nginx_bin: &Path, keepalive_requests: u32, upstream: Option<&Server>, files: &[(&str, &[u8])]) -> Nginx {
    let proxy = upstream.map_or(String::new(), |u| {
        format!(
            "upstream interop_upstream {{ server {}; keepalive 8; }}",
            u.addr() // the upstream block must sit in `http`, outside `server`
        )
    });
    let location = if upstream.is_some() {
        "location /proxy/ {
            proxy_pass http://interop_upstream/;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }"
    } else {
        ""
    };
    let http = format!(
        "
    keepalive_timeout 10s;
    keepalive_requests {keepalive_requests};
    {proxy}
    server {{
        listen 127.0.0.1:{{port}};
        root {{dir}}/www;
        {location}
    }}"
    );
    let nginx = Nginx::start(nginx_bin, "interop", &http);
    let www = nginx.dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    for (name, bytes) in files {
        std::fs::write(www.join(name), bytes).unwrap();
    }
    nginx
}

#[test]
#[ignore = "needs nginx; run by .ci/run with --ignored"]
fn nginx_static_files_are_byte_exact_and_reused() {
    let Some(bin) = nginx::find_or_skip("nginx_static_files_are_byte_exact_and_reused") else { return };
    let sizes = [0usize, 1, 1000, 8192, 100_000, 1_000_000];
    let files: Vec<(String, Vec<u8>)> = sizes.iter().map(|&n| (format!("f{n}.bin"), body_for(n as u64, n))).collect();
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    let nginx = start_nginx(&bin, 1000, None, &refs);
    let base = nginx.url("");
    with_deadline(TEST_DEADLINE, move || {
        let client = Client::new();
        smol::block_on(async {
            for round in 0..3 {
                for (name, bytes) in &files {
                    let resp = client.get(format!("{base}/{name}")).send().await.unwrap();
                    assert_eq!(resp.status(), 200, "{name}");
                    assert_eq!(resp.version(), Version::HTTP_11);
                    let len = resp.headers().get("content-length").map(|v| v.to_str().unwrap().to_owned());
                    assert_eq!(len, Some(bytes.len().to_string()), "{name}");
                    let body = resp.bytes().await.unwrap();
                    assert!(body == *bytes, "{name} round {round}: {} bytes, expected {}", body.len(), bytes.len());
                }
            }
            let head = client.head(format!("{base}/f100000.bin")).send().await.unwrap();
            assert_eq!(head.headers().get("content-length").unwrap(), "100000");
            assert!(head.bytes().await.unwrap().is_empty());
            let missing = client.get(format!("{base}/missing")).send().await.unwrap();
            assert_eq!(missing.status(), 404);
            missing.bytes().await.unwrap();
        });
        let stats = client.pool_stats();
        assert_eq!(stats.opened, 1, "one connection for every sequential request: {stats:?}");
        assert_eq!(stats.reused, 3 * 6 + 2 - 1, "{stats:?}");
        assert_eq!(stats.leased, 0);
    });
}

#[test]
#[ignore = "needs nginx; run by .ci/run with --ignored"]
fn nginx_large_file_streams_byte_exact() {
    let Some(bin) = nginx::find_or_skip("nginx_large_file_streams_byte_exact") else { return };
    const SIZE: usize = 64 << 20;
    let big = body_for(0xb16, SIZE);
    let expected = fnv1a64(&big);
    let nginx = start_nginx(&bin, 1000, None, &[("big.bin", &big)]);
    drop(big);
    let url = nginx.url("/big.bin");
    with_deadline(TEST_DEADLINE, move || {
        let client = Client::new();
        smol::block_on(async {
            // Streamed through the body's AsyncRead, twice on one connection.
            for _ in 0..2 {
                let mut resp = client.get(&url).send().await.unwrap();
                assert_eq!(resp.headers().get("content-length").unwrap(), &SIZE.to_string());
                let mut buf = vec![0u8; 64 * 1024];
                let (mut len, mut hash) = (0usize, 0xcbf2_9ce4_8422_2325u64);
                loop {
                    let n = resp.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    len += n;
                    hash = buf[..n].iter().fold(hash, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
                }
                assert_eq!((len, hash), (SIZE, expected), "streamed body differs");
            }
            // And whole, with bytes().
            let body = client.get(&url).send().await.unwrap().bytes().await.unwrap();
            assert_eq!((body.len(), fnv1a64(&body)), (SIZE, expected));
        });
        let stats = client.pool_stats();
        assert_eq!((stats.opened, stats.reused, stats.leased), (1, 2, 0), "{stats:?}");
    });
}

#[test]
#[ignore = "needs nginx; run by .ci/run with --ignored"]
fn nginx_proxies_chunked_and_close_delimited_upstream_bodies() {
    let Some(bin) = nginx::find_or_skip("nginx_proxies_chunked_and_close_delimited_upstream_bodies") else { return };
    let upstream = Server::start(|conn| {
        conn.set_read_timeout(Some(Duration::from_secs(30)));
        while let Some(req) = conn.read_request() {
            let target = req.target.trim_start_matches("/proxy");
            let Some(q) = ItemQuery::parse(target) else {
                conn.respond(404, &[], b"");
                continue;
            };
            conn.write(&item_response(&q));
            if q.framing == Framing::Eof {
                conn.close();
                return;
            }
        }
    });
    let nginx = start_nginx(&bin, 1000, Some(&upstream), &[]);
    let base = nginx.url("/proxy");
    with_deadline(TEST_DEADLINE, move || {
        let client = Client::new();
        smol::block_on(async {
            let sizes = [0usize, 1, 100, 5000, 70_000, 1 << 20, 3 << 20];
            for (i, &size) in sizes.iter().enumerate() {
                for framing in [Framing::Chunked, Framing::Eof, Framing::Length] {
                    let q = ItemQuery { id: 1000 + i as u64, size, framing, stall_ms: 0 };
                    let resp = client.get(format!("{base}{}", q.target())).send().await.unwrap();
                    assert_eq!(resp.status(), 200);
                    let te = resp.headers().get("transfer-encoding").map(|v| v.to_str().unwrap().to_owned());
                    if framing != Framing::Length {
                        // nginx re-frames a body of unknown length as chunked.
                        assert_eq!(te.as_deref(), Some("chunked"), "{q:?}: {:?}", resp.headers());
                    }
                    let sum = resp.headers().get("x-checksum").map(|v| v.to_str().unwrap().to_owned());
                    let body = resp.bytes().await.unwrap();
                    assert!(body_is_exact(q.id, size, sum.as_deref(), &body), "{q:?}: {} bytes", body.len());
                }
            }
        });
        let stats = client.pool_stats();
        assert_eq!(stats.opened, 1, "chunked bodies read to the end keep the connection: {stats:?}");
        assert_eq!(stats.leased, 0);
    });
    drop(nginx);
}

#[test]
#[ignore = "needs nginx; run by .ci/run with --ignored"]
fn nginx_keepalive_requests_3_closes_every_third_exchange() {
    let Some(bin) = nginx::find_or_skip("nginx_keepalive_requests_3_closes_every_third_exchange") else { return };
    let page = body_for(3, 2000);
    let nginx = start_nginx(&bin, 3, None, &[("page.bin", &page)]);
    let url = nginx.url("/page.bin");
    with_deadline(TEST_DEADLINE, move || {
        // Sequential: nginx announces the close on every third response.
        let client = Client::new();
        smol::block_on(async {
            for i in 0..30 {
                let resp = client.get(&url).send().await.unwrap();
                let close = resp.headers().get("connection").is_some_and(|v| v == "close");
                assert_eq!(close, i % 3 == 2, "request {i}: {:?}", resp.headers());
                assert!(resp.bytes().await.unwrap() == page);
            }
        });
        let stats = client.pool_stats();
        assert_eq!((stats.opened, stats.reused, stats.retried), (10, 20, 0), "{stats:?}");

        // Concurrent: 32 tasks x 10 requests, all succeed.
        let client = Client::builder().max_connections_per_host(8).build().unwrap();
        let ex = smol::Executor::new();
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (client, url, page) = (client.clone(), url.clone(), page.clone());
                ex.spawn(async move {
                    for _ in 0..10 {
                        let body = client.get(&url).send().await.unwrap().bytes().await.unwrap();
                        assert!(body == page);
                    }
                })
            })
            .collect();
        smol::block_on(ex.run(async {
            for t in tasks {
                t.await;
            }
        }));
        let stats = client.pool_stats();
        assert!(stats.opened >= 320 / 3, "at most 3 requests per connection: {stats:?}");
        assert_eq!(stats.leased, 0);
    });
}

// ---------------------------------------------------------------------------
// Python's http.server

/// A python3 process serving on a free port, killed by its PID on drop.
struct Python {
    child: Child,
    port: u16,
}

impl Python {
    fn start(args: &[&str], dir: &Path, port: u16) -> Python {
        let mut child = Command::new("python3")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("python3 {args:?} exited with {status} before listening");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("python3 {args:?} did not listen on 127.0.0.1:{port} within 10 s");
            }
            thread::sleep(Duration::from_millis(20));
        }
        Python { child, port }
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python_or_skip(test: &str) -> bool {
    let found = Command::new("python3").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if !found {
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{test}: python3 is missing and CI=true");
        eprintln!("{test}: SKIPPED, python3 is not installed");
    }
    found
}

#[test]
#[ignore = "needs python3; run by .ci/run with --ignored"]
fn python_http_server_http10_files() {
    if !python_or_skip("python_http_server_http10_files") {
        return;
    }
    let dir = TempDir::new("py");
    let files: Vec<(String, Vec<u8>)> =
        [0usize, 10, 70_000, 2 << 20].iter().map(|&n| (format!("p{n}.bin"), body_for(n as u64 ^ 0x9, n))).collect();
    for (name, bytes) in &files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let port = nginx::free_port();
    let py = Python::start(&["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1"], dir.path(), port);
    let base = format!("http://127.0.0.1:{}", py.port);
    with_deadline(TEST_DEADLINE, move || {
        let client = Client::new();
        smol::block_on(async {
            for (name, bytes) in &files {
                for _ in 0..2 {
                    let resp = client.get(format!("{base}/{name}")).send().await.unwrap();
                    assert_eq!(resp.status(), 200);
                    assert_eq!(resp.version(), Version::HTTP_10, "http.server answers HTTP/1.0");
                    assert!(resp.bytes().await.unwrap() == *bytes, "{name}");
                }
            }
            let listing = client.get(format!("{base}/")).send().await.unwrap().text().await.unwrap();
            assert!(listing.contains("p70000.bin"), "{listing}");
        });
        let stats = client.pool_stats();
        // HTTP/1.0 without keep-alive: never reused, nothing left leased.
        assert_eq!((stats.opened, stats.reused, stats.leased, stats.idle), (9, 0, 0, 0), "{stats:?}");
    });
}

/// A `BaseHTTPRequestHandler` that sends no Content-Length: the body ends
/// when the server closes the connection.
const CLOSE_DELIMITED: &str = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        n = int(self.path.lstrip('/'))
        self.send_response(200)
        self.send_header('Content-Type', 'application/octet-stream')
        self.end_headers()
        block = bytes(range(256))
        while n > 0:
            k = min(n, len(block))
            self.wfile.write(block[:k])
            n -= k
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
"#;

#[test]
#[ignore = "needs python3; run by .ci/run with --ignored"]
fn python_http_server_close_delimited_bodies() {
    if !python_or_skip("python_http_server_close_delimited_bodies") {
        return;
    }
    let dir = TempDir::new("py-close");
    let port = nginx::free_port();
    let py = Python::start(&["-c", CLOSE_DELIMITED, &port.to_string()], dir.path(), port);
    let base = format!("http://127.0.0.1:{}", py.port);
    with_deadline(TEST_DEADLINE, move || {
        let client = Client::new();
        let sizes = [0usize, 1, 255, 256, 100_000, 5 << 20];
        smol::block_on(async {
            for &n in &sizes {
                let resp = client.get(format!("{base}/{n}")).send().await.unwrap();
                assert_eq!(resp.version(), Version::HTTP_10);
                assert!(resp.headers().get("content-length").is_none());
                let body = resp.bytes().await.unwrap();
                let expected: Vec<u8> = (0..n).map(|i| (i % 256) as u8).collect();
                assert!(body == expected, "size {n}: got {} bytes", body.len());
            }
        });
        let stats = client.pool_stats();
        assert_eq!((stats.opened, stats.reused, stats.leased, stats.idle), (sizes.len() as u64, 0, 0, 0), "{stats:?}");
    });
}
