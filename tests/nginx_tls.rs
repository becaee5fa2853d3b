//! Interop with a real nginx over TLS. Ignored by default (it needs nginx);
//! `.ci/run` installs nginx-light and runs it with `cargo test -- --ignored`.
//!
//! The test writes its certificate, key, static file and nginx.conf into a
//! temp dir (pid file, logs and temp paths too, so it runs as root without
//! touching /var), starts nginx in the foreground on a free 127.0.0.1 port,
//! and stops it by its PID. Without nginx it is skipped with a message,
//! except under `CI=true`, where it fails.

#![cfg(feature = "native-tls")]

mod common;
mod tls_util;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use smolreq::{Certificate, Client};
use tls_util::Ca;

fn find_nginx() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into(), "/usr/local/nginx/sbin".into()])
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
}

/// nginx in the foreground, stopped (SIGTERM, then SIGKILL) on drop.
struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    fn start(nginx: &Path, dir: &Path, port: u16) -> Nginx {
        let mut child = Command::new(nginx)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nginx");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                panic!("nginx exited with {status} before listening; error.log:\n{log}");
            }
            assert!(Instant::now() < deadline, "nginx did not listen on port {port} within 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx { child, dir: dir.to_owned() }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its workers; a SIGKILL would orphan them.
        let pid = self.child.id();
        let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.dir);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
#[ignore = "needs nginx; run by .ci/run with --ignored"]
fn nginx_serves_a_static_file_over_reused_tls() {
    let Some(nginx) = find_nginx() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("nginx is not installed (CI=true): .ci/run must install nginx-light");
        }
        println!("skipped: nginx is not installed");
        return;
    };

    let ca = Ca::new("nginx test root");
    let cert = ca.server_cert(&["localhost", "127.0.0.1"]);
    let dir = std::env::temp_dir().join(format!("smolreq-nginx-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("html")).unwrap();
    let body: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(dir.join("html/file.txt"), &body).unwrap();
    std::fs::write(dir.join("cert.pem"), &cert.cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &cert.key_pem).unwrap();
    let port = free_port();
    let d = dir.display();
    let conf = format!(
        "daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 100;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        root {d}/html;
    }}
}}
"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let _nginx = Nginx::start(&nginx, &dir, port);

    let client = Client::builder()
        .add_root_certificate(Certificate::from_pem(ca.cert_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!("https://localhost:{port}/file.txt");
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
}
