//! Test-time certificates (rcgen) and a small blocking TLS/HTTP server on
//! 127.0.0.1 (OpenSSL through the `openssl` crate, on std threads), for
//! tests/tls.rs and tests/nginx_tls.rs.
//!
//! The server is independent of the library under test. Every socket has a
//! 5 s timeout, and dropping the server shuts down every live connection.

#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use openssl::pkey::PKey;
use openssl::ssl::{AlpnError, NameType, SslAcceptor, SslMethod, SslStream, SslVerifyMode, SslVersion};
use openssl::x509::X509;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, date_time_ymd,
};

const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A certificate authority made at test time.
pub struct Ca {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its PKCS#8 private key, both PEM.
#[derive(Clone)]
pub struct CertKey {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert_pem: cert.pem(), issuer: Issuer::new(params, key) }
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn server_cert(&self, names: &[&str]) -> CertKey {
        self.leaf(names, ExtendedKeyUsagePurpose::ServerAuth, false)
    }

    /// A server certificate for `names` that expired in 2001.
    pub fn expired_server_cert(&self, names: &[&str]) -> CertKey {
        self.leaf(names, ExtendedKeyUsagePurpose::ServerAuth, true)
    }

    /// A client certificate.
    pub fn client_cert(&self, name: &str) -> CertKey {
        self.leaf(&[name], ExtendedKeyUsagePurpose::ClientAuth, false)
    }

    fn leaf(&self, names: &[&str], usage: ExtendedKeyUsagePurpose, expired: bool) -> CertKey {
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages.push(usage);
        if expired {
            params.not_before = date_time_ymd(2000, 1, 1);
            params.not_after = date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        CertKey { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }
}

/// How the test server runs TLS.
#[derive(Clone)]
pub struct TlsConfig {
    pub cert: CertKey,
    /// Require a client certificate issued by this CA.
    pub client_ca: Option<String>,
    /// Highest TLS version the server speaks (default: TLS 1.3).
    pub max_version: Option<SslVersion>,
}

impl TlsConfig {
    pub fn new(cert: CertKey) -> TlsConfig {
        TlsConfig { cert, client_ca: None, max_version: None }
    }
}

#[derive(Default)]
struct State {
    /// TCP connections accepted.
    accepted: usize,
    /// TLS handshakes completed.
    handshakes: usize,
    requests: usize,
    /// SNI host name of each completed handshake.
    sni: Vec<Option<String>>,
    /// ALPN protocol lists offered by clients (wire format).
    alpn_offered: Vec<Vec<u8>>,
    live: Vec<TcpStream>,
}

struct Shared {
    stop: AtomicBool,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A TLS server on 127.0.0.1 running `handler` on a thread per connection,
/// after a successful handshake.
pub struct TlsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl TlsServer {
    pub fn start<F>(config: TlsConfig, handler: F) -> TlsServer
    where
        F: Fn(&mut TlsConn) + Send + Sync + 'static,
    {
        let shared = Arc::new(Shared { stop: AtomicBool::new(false), state: Mutex::new(State::default()) });
        let acceptor = Arc::new(acceptor(&config, shared.clone()));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handler = Arc::new(handler);
        let sh = shared.clone();
        let accept_thread = thread::spawn(move || {
            for tcp in listener.incoming() {
                if sh.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(tcp) = tcp else { continue };
                let _ = tcp.set_read_timeout(Some(IO_TIMEOUT));
                let _ = tcp.set_write_timeout(Some(IO_TIMEOUT));
                {
                    let mut st = sh.lock();
                    st.accepted += 1;
                    if let Ok(clone) = tcp.try_clone() {
                        st.live.push(clone);
                    }
                }
                let (acceptor, handler, sh) = (acceptor.clone(), handler.clone(), sh.clone());
                thread::spawn(move || {
                    let Ok(stream) = acceptor.accept(tcp) else { return };
                    {
                        let mut st = sh.lock();
                        st.handshakes += 1;
                        st.sni.push(stream.ssl().servername(NameType::HOST_NAME).map(str::to_owned));
                    }
                    let mut conn = TlsConn { stream, buf: Vec::new(), shared: sh };
                    handler(&mut conn);
                    conn.close_notify();
                });
            }
        });
        TlsServer { addr, shared, accept_thread: Some(accept_thread) }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `https://localhost:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port())
    }

    pub fn accepted(&self) -> usize {
        self.shared.lock().accepted
    }

    pub fn handshakes(&self) -> usize {
        self.shared.lock().handshakes
    }

    pub fn requests(&self) -> usize {
        self.shared.lock().requests
    }

    pub fn sni(&self) -> Vec<Option<String>> {
        self.shared.lock().sni.clone()
    }

    pub fn alpn_offered(&self) -> Vec<Vec<u8>> {
        self.shared.lock().alpn_offered.clone()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        for tcp in self.shared.lock().live.drain(..) {
            let _ = tcp.shutdown(Shutdown::Both);
        }
        if let Some(thread) = self.accept_thread.take() {
            let _ = thread.join();
        }
    }
}

fn acceptor(config: &TlsConfig, shared: Arc<Shared>) -> SslAcceptor {
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    builder.set_certificate(&X509::from_pem(config.cert.cert_pem.as_bytes()).unwrap()).unwrap();
    builder.set_private_key(&PKey::private_key_from_pem(config.cert.key_pem.as_bytes()).unwrap()).unwrap();
    builder.check_private_key().unwrap();
    if let Some(ca) = &config.client_ca {
        let ca = X509::from_pem(ca.as_bytes()).unwrap();
        builder.cert_store_mut().add_cert(ca.clone()).unwrap();
        builder.add_client_ca(&ca).unwrap();
        builder.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    }
    if let Some(max) = config.max_version {
        builder.set_max_proto_version(Some(max)).unwrap();
    }
    builder.set_alpn_select_callback(move |_ssl, offered| {
        shared.lock().alpn_offered.push(offered.to_vec());
        openssl::ssl::select_next_proto(b"\x08http/1.1", offered).ok_or(AlpnError::NOACK)
    });
    builder.build()
}

/// Writes `pem` to a fresh file in the system temp dir; returns its path.
pub fn write_temp(name: &str, contents: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("smolreq-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// A request as read by [`TlsConn::read_request`] (body discarded).
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One accepted TLS connection.
pub struct TlsConn {
    stream: SslStream<TcpStream>,
    buf: Vec<u8>,
    shared: Arc<Shared>,
}

impl TlsConn {
    /// Reads the next request head, skipping a Content-Length body. None
    /// on EOF, error or timeout.
    pub fn read_request(&mut self) -> Option<Request> {
        self.read_request_within(IO_TIMEOUT)
    }

    /// Like [`read_request`](Self::read_request), giving up after `wait`.
    pub fn read_request_within(&mut self, wait: Duration) -> Option<Request> {
        let _ = self.stream.get_ref().set_read_timeout(Some(wait));
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        };
        let _ = self.stream.get_ref().set_read_timeout(Some(IO_TIMEOUT));
        let head: Vec<u8> = self.buf.drain(..end).collect();
        let text = String::from_utf8_lossy(&head);
        let mut lines = text.split("\r\n");
        let mut parts = lines.next()?.split(' ');
        let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let request = Request { method, target, headers };
        let len: usize = request.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        while self.buf.len() < len {
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
        self.buf.drain(..len);
        self.shared.lock().requests += 1;
        Some(request)
    }

    /// Writes a response with a Content-Length body.
    pub fn respond(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        let mut out = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len()).into_bytes();
        for (name, value) in headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        self.write_raw(&out);
    }

    /// Writes raw bytes as TLS application data.
    pub fn write_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).and_then(|()| self.stream.flush());
    }

    /// Sends close_notify, then FIN.
    pub fn close_notify(&mut self) {
        let _ = self.stream.shutdown();
        let _ = self.stream.get_ref().shutdown(Shutdown::Write);
    }

    /// Closes the TCP connection without close_notify.
    pub fn close_abruptly(&mut self) {
        let _ = self.stream.get_ref().shutdown(Shutdown::Both);
    }

    /// Waits until the client closes (EOF) or `wait` passes.
    pub fn wait_for_eof(&mut self, wait: Duration) -> io::Result<()> {
        let _ = self.stream.get_ref().set_read_timeout(Some(wait));
        let mut chunk = [0u8; 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(_) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// A server answering every request with 200 and `body`, on keep-alive
/// connections.
pub fn ok_server(config: TlsConfig, body: &'static [u8]) -> TlsServer {
    TlsServer::start(config, move |conn| {
        while conn.read_request().is_some() {
            conn.respond(200, &[], body);
        }
    })
}
