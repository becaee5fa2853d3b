//! Interop with a real nginx over TLS. Ignored by default (it needs nginx);
//! `.ci/run` installs nginx-light and runs it with `--ignored`.
//!
//! The certificate (made at test time), key and static file live in a temp
//! dir; nginx itself runs from another one (see tests/common/nginx.rs), in
//! the foreground on a free 127.0.0.1 port, stopped by its PID. Without
//! nginx the test is skipped with a message, except under `CI=true`, where
//! it fails.

#![cfg(feature = "native-tls")]

mod common;
#[path = "common/nginx.rs"]
mod nginx;
mod tls_util;

use std::time::Duration;

use smolreq::{Certificate, Client};
use tls_util::Ca;

#[test]
#[ignore = "needs nginx; run by .ci/run with --ignored"]
fn nginx_serves_a_static_file_over_reused_tls() {
    let Some(nginx_bin) = nginx::find_or_skip("nginx_serves_a_static_file_over_reused_tls") else { return };

    let ca = Ca::new("nginx test root");
    let cert = ca.server_cert(&["localhost", "127.0.0.1"]);
    let files = nginx::TempDir::new("nginx-tls-files");
    let body: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    std::fs::create_dir_all(files.path().join("html")).unwrap();
    std::fs::write(files.path().join("html/file.txt"), &body).unwrap();
    std::fs::write(files.path().join("cert.pem"), &cert.cert_pem).unwrap();
    std::fs::write(files.path().join("key.pem"), &cert.key_pem).unwrap();
    let f = files.path().display();
    let server = nginx::Nginx::start(
        &nginx_bin,
        "nginx-tls",
        &format!(
            "    server {{
        listen 127.0.0.1:{{port}} ssl;
        server_name localhost;
        ssl_certificate {f}/cert.pem;
        ssl_certificate_key {f}/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        root {f}/html;
    }}"
        ),
    );

    let client = Client::builder()
        .add_root_certificate(Certificate::from_pem(ca.cert_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/file.txt", server.port);
    let (c, expected) = (client.clone(), body.clone());
    common::with_deadline(Duration::from_secs(30), move || {
        smol::block_on(async move {
            for _ in 0..3 {
                let resp = c.get(url.as_str()).send().await.unwrap();
                assert_eq!(resp.status(), 200);
                assert_eq!(resp.text().await.unwrap(), expected);
            }
            let missing = c.get(url.replace("file.txt", "missing")).send().await.unwrap();
            assert_eq!(missing.status(), 404);
            missing.bytes().await.unwrap();
        })
    });
    let stats = client.pool_stats();
    assert_eq!((stats.opened, stats.reused), (1, 3), "{stats:?}");
    assert_eq!(server.access_log().lines().count(), 4, "{}", server.access_log());
}
