//! A real nginx for the `#[ignore]`d interop tests, started by the test.
//!
//! Everything nginx writes (pid file, logs, temp paths) lives in a fresh
//! temp dir, so it runs as root or not without touching /var. nginx runs
//! in the foreground (`daemon off`) and is stopped by its PID (SIGTERM,
//! then SIGKILL) when the [`Nginx`] guard drops, also when the test fails.
//! Without nginx, [`find_or_skip`] returns `None` (the test prints why and
//! passes), except under `CI=true`, where a missing nginx fails loudly.
//!
//! Include it with `#[path = "common/nginx.rs"] mod nginx;`.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// The nginx binary: on `PATH`, or in the usual sbin directories.
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("nginx"))
        .find(|p| p.is_file())
}

/// The nginx binary, or `None` after printing that the test is skipped.
/// Panics under `CI=true`: CI must have nginx (`.ci/run` installs it).
pub fn find_or_skip(test: &str) -> Option<PathBuf> {
    match find() {
        Some(p) => Some(p),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "{test}: nginx is not installed and CI=true: .ci/run must install nginx-light (apt-get install nginx-light)"
            )
        }
        None => {
            eprintln!("{test}: SKIPPED, nginx is not installed (apt-get install nginx-light)");
            None
        }
    }
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("smolreq-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free loopback port (bound, read, released: good enough for a test).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind 127.0.0.1:0").port()
}

/// Whether this process runs as root (nginx then needs `user root;` so its
/// workers can use the temp dir).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

/// A running nginx, stopped by its PID on drop.
pub struct Nginx {
    child: Option<Child>,
    pub port: u16,
    /// Holds nginx.conf, logs and temp paths; removed after nginx stops.
    pub dir: TempDir,
}

impl Nginx {
    /// Starts nginx on a free `127.0.0.1` port with `http_body` (the
    /// contents of the `http { }` block; `{port}` and `{dir}` in it are
    /// replaced). Waits until it accepts connections.
    pub fn start(nginx: &Path, tag: &str, http_body: &str) -> Nginx {
        let dir = TempDir::new(tag);
        let port = free_port();
        let d = dir.path().display().to_string();
        let http_body = http_body.replace("{port}", &port.to_string()).replace("{dir}", &d);
        let user = if is_root() { "user root;\n" } else { "" };
        let conf = format!(
            "{user}daemon off;
master_process on;
worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    log_format conns '$connection $connection_requests $remote_addr [$time_local] \"$request\" $status $body_bytes_sent';
    access_log {d}/access.log conns;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
{http_body}
}}
"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).expect("write nginx.conf");
        let mut child = Command::new(nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", nginx.display()));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
                panic!("nginx exited with {status} before listening on {port}; error.log:\n{log}");
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("nginx did not listen on 127.0.0.1:{port} within 10 s");
            }
            thread::sleep(Duration::from_millis(20));
        }
        Nginx { child: Some(child), port, dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The access log so far: one line per request, `$connection
    /// $connection_requests $remote_addr [$time_local] "$request" $status
    /// $body_bytes_sent`.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// Client connections that carried at least one request, counted on
    /// nginx's side: distinct connection serial numbers (`$connection`, the
    /// first field of each access log line).
    pub fn client_connections(&self) -> usize {
        let log = self.access_log();
        let serials: std::collections::HashSet<&str> =
            log.lines().filter_map(|line| line.split_whitespace().next()).collect();
        serials.len()
    }

    /// The error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// Stops nginx now: SIGTERM to its PID, SIGKILL after 5 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).stderr(Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}
