//! Proxies against real proxy servers, each started by the test on a free
//! loopback port with its own config in a temp dir and stopped by its PID:
//! tinyproxy (forward and CONNECT, Basic auth), squid (forward and
//! CONNECT) and microsocks (SOCKS5, with and without a password). Without
//! the program the test says it is skipped, except under `CI=true`, where
//! a missing proxy fails loudly (`.ci/run` installs them).

#![cfg(feature = "proxy")]

mod common;
#[path = "common/nginx.rs"]
mod nginx;
#[cfg(feature = "native-tls")]
mod tls_util;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, with_deadline};
use nginx::{TempDir, free_port};
use smolreq::{Client, ErrorKind, Proxy};

const DEADLINE: Duration = Duration::from_secs(30);

/// The tests run one at a time: each picks free ports and starts daemons,
/// and two tests racing for a port would meet each other's proxy.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn block<T: Send + 'static, F: std::future::Future<Output = T> + Send + 'static>(f: F) -> T {
    with_deadline(DEADLINE, move || smol::block_on(f))
}

/// The program, or `None` after saying the test is skipped; panics under
/// `CI=true`.
fn find(program: &str, package: &str, test: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file());
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "{test}: {program} is not installed and CI=true: .ci/run must install it (apt-get install {package})"
            );
        }
        eprintln!("{test}: SKIPPED, {program} is not installed (apt-get install {package})");
    }
    found
}

/// A proxy process, stopped by its PID on drop (SIGTERM, SIGKILL after 5 s).
struct Daemon {
    child: Child,
    port: u16,
    name: &'static str,
    log: PathBuf,
    /// Shared-memory segments to remove after it stopped (squid's).
    shm_prefix: Option<String>,
    _dir: TempDir,
}

impl Daemon {
    fn start(name: &'static str, cmd: &mut Command, port: u16, dir: TempDir, log: PathBuf) -> Daemon {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(dir.path().join("stdout.log")).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(dir.path().join("stderr.log")).unwrap()))
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let mut daemon = Daemon { child, port, name, log, shm_prefix: None, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("{name} exited with {status} before listening on {port}:\n{}", daemon.logs());
            }
            // Listening, and it is this process that listens (not one that
            // took the port first).
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                thread::sleep(Duration::from_millis(50));
                if let Ok(Some(status)) = daemon.child.try_wait() {
                    panic!("{name} exited with {status} after the port answered:\n{}", daemon.logs());
                }
                return daemon;
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not listen on 127.0.0.1:{port} within 15 s:\n{}",
                daemon.logs()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self, userinfo: &str) -> String {
        format!("http://{userinfo}127.0.0.1:{}", self.port)
    }

    fn logs(&self) -> String {
        let dir = self._dir.path();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!("{}{}{}", read(&self.log), read(&dir.join("stdout.log")), read(&dir.join("stderr.log")))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).stderr(Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && !matches!(self.child.try_wait(), Ok(Some(_))) {
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(prefix) = &self.shm_prefix
            && let Ok(entries) = std::fs::read_dir("/dev/shm")
        {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(prefix.as_str()) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let _ = self.name;
    }
}

fn tinyproxy(test: &str, extra: &str) -> Option<Daemon> {
    let bin = find("tinyproxy", "tinyproxy", test)?;
    let dir = TempDir::new("tinyproxy");
    let port = free_port();
    let log = dir.path().join("tinyproxy.log");
    let conf = format!(
        "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 50\nAllow 127.0.0.1\nLogLevel Info\nLogFile \"{}\"\n{extra}\n",
        log.display()
    );
    std::fs::write(dir.path().join("tinyproxy.conf"), conf).unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg("-d").arg("-c").arg(dir.path().join("tinyproxy.conf"));
    Some(Daemon::start("tinyproxy", &mut cmd, port, dir, log))
}

fn squid(test: &str) -> Option<Daemon> {
    let bin = find("squid", "squid", test)?;
    let dir = TempDir::new("squid");
    // squid drops privileges when run as root: its files must be writable.
    let _ = Command::new("chmod").arg("777").arg(dir.path()).status();
    let port = free_port();
    let d = dir.path().display().to_string();
    let log = dir.path().join("cache.log");
    let user = if is_root() { "cache_effective_user proxy\n" } else { "" };
    let conf = format!(
        "http_port 127.0.0.1:{port}\nacl local src 127.0.0.1/32\nhttp_access allow local\nhttp_access deny all\n\
         cache deny all\naccess_log none\ncache_log {d}/cache.log\npid_filename {d}/squid.pid\ncoredump_dir {d}\n\
         shutdown_lifetime 0 seconds\n{user}"
    );
    std::fs::write(dir.path().join("squid.conf"), conf).unwrap();
    // A service name of our own keeps its shared memory apart from any
    // other squid's.
    let service = format!("smolreqtest{}x{port}", std::process::id());
    let mut cmd = Command::new(bin);
    cmd.arg("-N").arg("-n").arg(&service).arg("-f").arg(dir.path().join("squid.conf"));
    let mut daemon = Daemon::start("squid", &mut cmd, port, dir, log);
    daemon.shm_prefix = Some(format!("{service}-"));
    Some(daemon)
}

fn microsocks(test: &str, auth: Option<(&str, &str)>) -> Option<Daemon> {
    let bin = find("microsocks", "microsocks", test)?;
    let dir = TempDir::new("microsocks");
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
    if let Some((user, pass)) = auth {
        cmd.args(["-u", user, "-P", pass]);
    }
    let log = dir.path().join("stderr.log");
    Some(Daemon::start("microsocks", &mut cmd, port, dir, log))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

fn origin() -> Server {
    Server::start(|conn| {
        while let Some(req) = conn.read_request() {
            let body = format!("origin got {} {}", req.method, req.target);
            conn.respond(200, &[], body.as_bytes());
        }
    })
}

/// Two `http://` requests through `client`: both answered by the origin,
/// which saw them in origin form.
fn two_plain_requests(client: Client, origin: &Server) -> smolreq::PoolStats {
    let url = origin.url("/plain?x=1");
    let stats = block(async move {
        for _ in 0..2 {
            let resp = client.get(url.as_str()).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.text().await.unwrap(), "origin got GET /plain?x=1");
        }
        client.pool_stats()
    });
    let received = origin.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].target, "/plain?x=1", "the proxy forwards in origin form");
    assert_eq!(received[0].header("proxy-authorization"), None, "credentials stay at the proxy");
    stats
}

#[cfg(feature = "native-tls")]
mod tls {
    use super::*;
    use smolreq::{Certificate, ClientBuilder};
    use tls_util::{Ca, TlsConfig, TlsServer, ok_server};

    pub struct TlsOrigin {
        pub ca: Ca,
        pub server: TlsServer,
    }

    pub fn tls_origin() -> TlsOrigin {
        let ca = Ca::new("proxy test root");
        let server =
            ok_server(TlsConfig::new(ca.server_cert(&["localhost", "127.0.0.1"])), b"secure through the tunnel");
        TlsOrigin { ca, server }
    }

    pub fn trusting(origin: &TlsOrigin) -> ClientBuilder {
        Client::builder().add_root_certificate(Certificate::from_pem(origin.ca.cert_pem.as_bytes()).unwrap())
    }

    /// Two `https://` requests through a tunnel: one tunnel, reused.
    pub fn two_tls_requests(client: Client, origin: &TlsOrigin) {
        let url = format!("https://127.0.0.1:{}/", origin.server.port());
        let stats = block(async move {
            for _ in 0..2 {
                let text = client.get(url.as_str()).send().await.unwrap().text().await.unwrap();
                assert_eq!(text, "secure through the tunnel");
            }
            client.pool_stats()
        });
        assert_eq!((stats.opened, stats.reused), (1, 1), "one tunnel, reused: {stats:?}");
        assert_eq!(origin.server.handshakes(), 1);
    }
}

#[test]
#[ignore = "needs tinyproxy; run by .ci/run with --ignored"]
fn tinyproxy_forwards_http_and_tunnels_https() {
    let _serial = serial();
    let Some(proxy) = tinyproxy("tinyproxy_forwards_http_and_tunnels_https", "") else { return };
    let origin = origin();
    let client = Client::builder().proxy(Proxy::all(proxy.url("")).unwrap()).build().unwrap();
    two_plain_requests(client, &origin);
    assert!(proxy.logs().contains("GET http://127.0.0.1:"), "absolute form at the proxy:\n{}", proxy.logs());
    #[cfg(feature = "native-tls")]
    {
        let tls_origin = tls::tls_origin();
        let client = tls::trusting(&tls_origin).proxy(Proxy::all(proxy.url("")).unwrap()).build().unwrap();
        tls::two_tls_requests(client, &tls_origin);
        assert!(proxy.logs().contains("CONNECT 127.0.0.1:"), "{}", proxy.logs());
    }
}

#[test]
#[ignore = "needs tinyproxy; run by .ci/run with --ignored"]
fn tinyproxy_basic_auth_right_and_wrong() {
    let _serial = serial();
    let Some(proxy) = tinyproxy("tinyproxy_basic_auth_right_and_wrong", "BasicAuth alice s3cr3t") else { return };
    let origin = origin();
    let client = Client::builder().proxy(Proxy::all(proxy.url("alice:s3cr3t@")).unwrap()).build().unwrap();
    two_plain_requests(client, &origin);

    // Wrong credentials: the proxy's refusal of a forwarded request is a
    // response, as curl returns it (tinyproxy answers 401, where most
    // proxies answer 407).
    let client = Client::builder().proxy(Proxy::all(proxy.url("alice:wrong@")).unwrap()).build().unwrap();
    let url = origin.url("/denied");
    let status = block(async move { client.get(url).send().await.unwrap().status().as_u16() });
    assert_eq!(status, 401);
    assert_eq!(origin.received().len(), 2, "nothing reached the origin");

    // ... and to CONNECT, a proxy error carrying the status.
    #[cfg(feature = "native-tls")]
    {
        let tls_origin = tls::tls_origin();
        let client = tls::trusting(&tls_origin).proxy(Proxy::all(proxy.url("alice:wrong@")).unwrap()).build().unwrap();
        let url = format!("https://127.0.0.1:{}/", tls_origin.server.port());
        let err = block(async move { client.get(url).send().await.unwrap_err() });
        assert_eq!(err.kind(), ErrorKind::Proxy, "{err:?}");
        assert_eq!(err.status().map(|s| s.as_u16()), Some(401), "tinyproxy's answer, carried as is");
        assert!(!format!("{err} {err:?}").contains("wrong"), "the password is never printed: {err:?}");
        assert_eq!(tls_origin.server.accepted(), 0);

        let client = tls::trusting(&tls_origin).proxy(Proxy::all(proxy.url("alice:s3cr3t@")).unwrap()).build().unwrap();
        tls::two_tls_requests(client, &tls_origin);
    }
}

#[test]
#[ignore = "needs squid; run by .ci/run with --ignored"]
fn squid_forwards_http_with_keep_alive_and_tunnels_https() {
    let _serial = serial();
    let Some(proxy) = squid("squid_forwards_http_with_keep_alive_and_tunnels_https") else { return };
    let origin = origin();
    let client = Client::builder().proxy(Proxy::http(proxy.url("")).unwrap()).build().unwrap();
    let stats = two_plain_requests(client, &origin);
    assert_eq!((stats.opened, stats.reused), (1, 1), "squid keeps the client connection alive: {stats:?}");
    #[cfg(feature = "native-tls")]
    {
        let tls_origin = tls::tls_origin();
        let client = tls::trusting(&tls_origin).proxy(Proxy::https(proxy.url("")).unwrap()).build().unwrap();
        tls::two_tls_requests(client, &tls_origin);
    }
}

#[test]
#[ignore = "needs microsocks; run by .ci/run with --ignored"]
fn microsocks_without_and_with_a_password() {
    let _serial = serial();
    let test = "microsocks_without_and_with_a_password";
    let Some(open) = microsocks(test, None) else { return };
    let Some(locked) = microsocks(test, Some(("bob", "pa:ss"))) else { return };
    let origin = origin();
    for url in [format!("socks5://127.0.0.1:{}", open.port), format!("socks5h://127.0.0.1:{}", open.port)] {
        let client = Client::builder().proxy(Proxy::all(url).unwrap()).build().unwrap();
        let url = origin.url("/s");
        let text = block(async move { client.get(url).send().await.unwrap().text().await.unwrap() });
        assert_eq!(text, "origin got GET /s");
    }
    // A name resolved by the proxy.
    let client = Client::builder()
        .proxy(Proxy::all(format!("socks5h://bob:pa%3Ass@127.0.0.1:{}", locked.port)).unwrap())
        .build()
        .unwrap();
    let url = format!("http://localhost:{}/named", origin.addr().port());
    let text = block(async move { client.get(url).send().await.unwrap().text().await.unwrap() });
    assert_eq!(text, "origin got GET /named");

    let client = Client::builder()
        .proxy(Proxy::all(format!("socks5://bob:nope@127.0.0.1:{}", locked.port)).unwrap())
        .build()
        .unwrap();
    let url = origin.url("/denied");
    let err = block(async move { client.get(url).send().await.unwrap_err() });
    assert_eq!(err.kind(), ErrorKind::Proxy, "{err:?}");
    #[cfg(feature = "native-tls")]
    {
        let tls_origin = tls::tls_origin();
        let proxy = Proxy::all(format!("socks5h://bob:pa%3Ass@127.0.0.1:{}", locked.port)).unwrap();
        tls::two_tls_requests(tls::trusting(&tls_origin).proxy(proxy).build().unwrap(), &tls_origin);
    }
}
