//! TLS for `https://` URLs, through native-tls (OpenSSL on Linux, the
//! platform's own TLS elsewhere). Compiled with the `native-tls` feature.
//!
//! native-tls speaks blocking `Read + Write`; [`SyncAdapter`] turns the
//! async stream underneath into that shape: a read or write that would wait
//! registers the current task's waker and reports `WouldBlock`, which
//! native-tls hands back up and [`TlsStream`] turns into `Poll::Pending`.
//! This is the technique of the async-native-tls crate, written here in safe
//! code (the waker is cloned into the adapter instead of a raw pointer to the
//! `Context`) and over a connector that is built once per client:
//! async-native-tls rebuilds its native-tls connector on every connection,
//! and building one loads the system's root certificates, which takes tens
//! of milliseconds.

use std::fmt;
use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use futures_io::{AsyncRead, AsyncWrite};
use native_tls::HandshakeError;

use crate::error::{Error, ErrorKind, Result};

/// The only application protocol smolreq offers in ALPN.
const ALPN_HTTP1: &str = "http/1.1";

/// A trusted root certificate, for
/// [`ClientBuilder::add_root_certificate`](crate::ClientBuilder::add_root_certificate).
///
/// ```
/// // A file that is not a certificate is an error, not a panic.
/// let err = smolreq::Certificate::from_pem(b"not a certificate").unwrap_err();
/// assert_eq!(err.kind(), smolreq::ErrorKind::Tls);
/// ```
///
/// Loading a private CA:
///
/// ```no_run
/// let pem = std::fs::read("my-ca.pem")?;
/// let client = smolreq::Client::builder().add_root_certificate(smolreq::Certificate::from_pem(&pem)?).build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Certificate(native_tls::Certificate);

impl Certificate {
    /// Parses one PEM certificate (`-----BEGIN CERTIFICATE-----`). Fails
    /// with [`ErrorKind::Tls`] when the input is not one.
    pub fn from_pem(pem: &[u8]) -> Result<Certificate> {
        native_tls::Certificate::from_pem(pem).map(Certificate).map_err(invalid_input)
    }

    /// Parses every certificate of a PEM bundle (several certificates one
    /// after the other, like a CA file). Fails with [`ErrorKind::Tls`] when
    /// the input holds no valid certificate.
    ///
    /// ```no_run
    /// let mut builder = smolreq::Client::builder();
    /// for cert in smolreq::Certificate::from_pem_bundle(&std::fs::read("ca-bundle.pem")?)? {
    ///     builder = builder.add_root_certificate(cert);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_pem_bundle(pem: &[u8]) -> Result<Vec<Certificate>> {
        match native_tls::Certificate::stack_from_pem(pem) {
            Ok(certs) if !certs.is_empty() => Ok(certs.into_iter().map(Certificate).collect()),
            Ok(_) => Err(Error::new(ErrorKind::Tls, "no certificate found in PEM input")),
            Err(e) => Err(invalid_input(e)),
        }
    }

    /// Parses one DER certificate. Fails with [`ErrorKind::Tls`] when the
    /// input is not one.
    pub fn from_der(der: &[u8]) -> Result<Certificate> {
        native_tls::Certificate::from_der(der).map(Certificate).map_err(invalid_input)
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Certificate(..)")
    }
}

/// A client certificate with its private key, for servers that ask the
/// client to authenticate (mutual TLS); see
/// [`ClientBuilder::identity`](crate::ClientBuilder::identity).
///
/// ```no_run
/// let identity = smolreq::Identity::from_pkcs8(&std::fs::read("client.pem")?, &std::fs::read("client.key")?)?;
/// let client = smolreq::Client::builder().identity(identity).build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Identity(native_tls::Identity);

impl Identity {
    /// Reads a DER PKCS#12 archive (`.p12`, `.pfx`) holding the certificate,
    /// its private key and any intermediate certificates, decrypted with
    /// `password`. Fails with [`ErrorKind::Tls`] on invalid input or a wrong
    /// password.
    ///
    /// ```
    /// let err = smolreq::Identity::from_pkcs12(b"not an archive", "secret").unwrap_err();
    /// assert_eq!(err.kind(), smolreq::ErrorKind::Tls);
    /// ```
    pub fn from_pkcs12(der: &[u8], password: &str) -> Result<Identity> {
        native_tls::Identity::from_pkcs12(der, password).map(Identity).map_err(invalid_input)
    }

    /// Reads a PEM certificate chain (leaf first, then intermediates) and a
    /// PEM PKCS#8 private key (`-----BEGIN PRIVATE KEY-----`). Fails with
    /// [`ErrorKind::Tls`] on invalid input.
    ///
    /// ```
    /// let err = smolreq::Identity::from_pkcs8(b"no chain", b"no key").unwrap_err();
    /// assert_eq!(err.kind(), smolreq::ErrorKind::Tls);
    /// ```
    pub fn from_pkcs8(pem_chain: &[u8], pem_key: &[u8]) -> Result<Identity> {
        native_tls::Identity::from_pkcs8(pem_chain, pem_key).map(Identity).map_err(invalid_input)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Identity(..)")
    }
}

/// A TLS protocol version, for
/// [`ClientBuilder::min_tls_version`](crate::ClientBuilder::min_tls_version).
///
/// ```
/// let client = smolreq::Client::builder().min_tls_version(smolreq::TlsVersion::Tls1_3).build()?;
/// # Ok::<(), smolreq::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum TlsVersion {
    /// TLS 1.0 (deprecated by RFC 8996).
    Tls1_0,
    /// TLS 1.1 (deprecated by RFC 8996).
    Tls1_1,
    /// TLS 1.2.
    Tls1_2,
    /// TLS 1.3 (not available on macOS and iOS).
    Tls1_3,
}

impl TlsVersion {
    fn protocol(self) -> native_tls::Protocol {
        match self {
            TlsVersion::Tls1_0 => native_tls::Protocol::Tlsv10,
            TlsVersion::Tls1_1 => native_tls::Protocol::Tlsv11,
            TlsVersion::Tls1_2 => native_tls::Protocol::Tlsv12,
            TlsVersion::Tls1_3 => native_tls::Protocol::Tlsv13,
        }
    }
}

fn invalid_input(err: native_tls::Error) -> Error {
    Error::with_source(ErrorKind::Tls, err)
}

/// The TLS settings of a [`ClientBuilder`](crate::ClientBuilder).
#[derive(Clone)]
pub(crate) struct TlsOptions {
    pub(crate) roots: Vec<Certificate>,
    pub(crate) built_in_roots: bool,
    pub(crate) identity: Option<Identity>,
    pub(crate) min_version: Option<TlsVersion>,
    pub(crate) accept_invalid_certs: bool,
    pub(crate) accept_invalid_hostnames: bool,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            roots: Vec::new(),
            built_in_roots: true,
            identity: None,
            min_version: None,
            accept_invalid_certs: false,
            accept_invalid_hostnames: false,
        }
    }
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("roots", &self.roots.len())
            .field("built_in_roots", &self.built_in_roots)
            .field("identity", &self.identity.is_some())
            .field("min_version", &self.min_version)
            .field("accept_invalid_certs", &self.accept_invalid_certs)
            .field("accept_invalid_hostnames", &self.accept_invalid_hostnames)
            .finish()
    }
}

impl TlsOptions {
    /// Builds the connector for these settings, once per client: the
    /// default settings share one connector per process, built on the first
    /// `https://` connection, so an HTTP-only client never loads the system's
    /// root certificates; any other settings are built (and checked) by
    /// `ClientBuilder::build`.
    pub(crate) fn into_connector(self) -> Result<TlsConnector> {
        let defaults = TlsOptions::default();
        if self.roots.is_empty()
            && self.built_in_roots == defaults.built_in_roots
            && self.identity.is_none()
            && self.min_version.is_none()
            && !self.accept_invalid_certs
            && !self.accept_invalid_hostnames
        {
            return Ok(TlsConnector::Default);
        }
        self.build().map(TlsConnector::Custom)
    }

    fn build(&self) -> Result<native_tls::TlsConnector> {
        let mut builder = native_tls::TlsConnector::builder();
        builder
            .request_alpns(&[ALPN_HTTP1])
            .disable_built_in_roots(!self.built_in_roots)
            .min_protocol_version(self.min_version.map(TlsVersion::protocol))
            .danger_accept_invalid_certs(self.accept_invalid_certs)
            .danger_accept_invalid_hostnames(self.accept_invalid_hostnames);
        for root in &self.roots {
            builder.add_root_certificate(root.0.clone());
        }
        if let Some(identity) = &self.identity {
            builder.identity(identity.0.clone());
        }
        builder.build().map_err(|e| Error::with_source(ErrorKind::Tls, e))
    }
}

/// A client's built TLS connector.
#[derive(Clone, Debug)]
pub(crate) enum TlsConnector {
    /// The default settings: the process-wide connector.
    Default,
    /// A connector built from the client's own settings.
    Custom(native_tls::TlsConnector),
}

impl TlsConnector {
    fn get(&self) -> Result<&native_tls::TlsConnector> {
        static DEFAULT: OnceLock<native_tls::TlsConnector> = OnceLock::new();
        match self {
            TlsConnector::Custom(connector) => Ok(connector),
            TlsConnector::Default => {
                if let Some(connector) = DEFAULT.get() {
                    return Ok(connector);
                }
                // Two first connections may both build one; one is kept.
                let built = TlsOptions::default().build()?;
                Ok(DEFAULT.get_or_init(|| built))
            }
        }
    }

    /// Runs the TLS handshake over `stream` for `host` (SNI and hostname
    /// verification; an IP literal, IPv6 in brackets, is checked against
    /// the certificate's IP addresses instead).
    pub(crate) async fn handshake<S>(&self, host: &str, stream: S) -> Result<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let connector = self.get()?;
        let domain = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let mut state = Handshake::Start(stream);
        poll_fn(|cx| {
            let step = match std::mem::replace(&mut state, Handshake::Failed) {
                Handshake::Start(stream) => connector.connect(domain, SyncAdapter::new(stream, cx.waker())),
                Handshake::Mid(mut mid) => {
                    mid.get_mut().waker.clone_from(cx.waker());
                    mid.handshake()
                }
                Handshake::Failed => {
                    return Poll::Ready(Err(Error::new(ErrorKind::Tls, "handshake polled after it failed")));
                }
            };
            match step {
                Ok(stream) => Poll::Ready(Ok(TlsStream(stream))),
                Err(HandshakeError::WouldBlock(mid)) => {
                    state = Handshake::Mid(mid);
                    Poll::Pending
                }
                Err(HandshakeError::Failure(e)) => Poll::Ready(Err(Error::with_source(ErrorKind::Tls, e))),
            }
        })
        .await
    }
}

enum Handshake<S> {
    Start(S),
    Mid(native_tls::MidHandshakeTlsStream<SyncAdapter<S>>),
    Failed,
}

/// An async stream seen as a blocking one by native-tls: see the module
/// documentation.
struct SyncAdapter<S> {
    inner: S,
    /// The waker of the task polling now, woken when the stream is ready.
    waker: Waker,
    /// Set when the inner stream itself failed, to tell its I/O errors
    /// apart from TLS protocol errors.
    inner_failed: bool,
}

impl<S> SyncAdapter<S> {
    fn new(inner: S, waker: &Waker) -> SyncAdapter<S> {
        SyncAdapter { inner, waker: waker.clone(), inner_failed: false }
    }

    fn poll<T>(&mut self, op: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>) -> io::Result<T>
    where
        S: Unpin,
    {
        let mut cx = Context::from_waker(&self.waker);
        match op(Pin::new(&mut self.inner), &mut cx) {
            Poll::Ready(Ok(value)) => Ok(value),
            Poll::Ready(Err(e)) => {
                self.inner_failed = true;
                Err(e)
            }
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl<S: AsyncRead + Unpin> Read for SyncAdapter<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.poll(|inner, cx| inner.poll_read(cx, buf))
    }
}

impl<S: AsyncWrite + Unpin> Write for SyncAdapter<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.poll(|inner, cx| inner.poll_write(cx, buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.poll(|inner, cx| inner.poll_flush(cx))
    }
}

/// A TLS connection over `S`: TCP on the hot path, or a custom connector's
/// stream.
pub(crate) struct TlsStream<S>(native_tls::TlsStream<SyncAdapter<S>>);

impl<S> fmt::Debug for TlsStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsStream(..)")
    }
}

impl<S> TlsStream<S> {
    /// The stream TLS runs over.
    pub(crate) fn get_ref(&self) -> &S {
        &self.0.get_ref().inner
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream<S> {
    /// Runs one blocking-style operation of native-tls with the caller's
    /// waker: `WouldBlock` becomes `Pending`, and an error of the TLS layer
    /// itself (an alert, a bad record) becomes an [`ErrorKind::Tls`] error,
    /// while the inner stream's I/O errors pass through unchanged.
    fn poll_op<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(&mut native_tls::TlsStream<SyncAdapter<S>>) -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        let adapter = self.0.get_mut();
        adapter.waker.clone_from(cx.waker());
        adapter.inner_failed = false;
        match op(&mut self.0) {
            Ok(value) => Poll::Ready(Ok(value)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
            Err(e) if self.0.get_mut().inner_failed => Poll::Ready(Err(e)),
            Err(e) => Poll::Ready(Err(Error::with_source(ErrorKind::Tls, e).into_io())),
        }
    }

    /// The probe of an idle TLS connection: one read polled without
    /// waiting. Post-handshake messages such as TLS 1.3 session tickets are
    /// consumed by the TLS layer and leave it pending; application data,
    /// close_notify, EOF or an error mean the connection must not be reused.
    pub(crate) fn is_reusable_idle(&mut self) -> bool {
        let mut byte = [0u8; 1];
        let mut cx = Context::from_waker(Waker::noop());
        self.poll_op(&mut cx, |tls| tls.read(&mut byte)).is_pending()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.get_mut().poll_op(cx, |tls| tls.read(buf))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().poll_op(cx, |tls| tls.write(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_op(cx, |tls| tls.flush())
    }

    /// Sends close_notify, then closes the stream underneath.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_op(cx, |tls| tls.shutdown()) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.0.get_mut().inner).poll_close(cx),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_certificate_and_identity_input_is_a_tls_error() {
        assert_eq!(Certificate::from_pem(b"garbage").unwrap_err().kind(), ErrorKind::Tls);
        assert_eq!(Certificate::from_der(b"garbage").unwrap_err().kind(), ErrorKind::Tls);
        assert_eq!(Certificate::from_pem_bundle(b"").unwrap_err().kind(), ErrorKind::Tls);
        assert_eq!(Identity::from_pkcs12(b"garbage", "").unwrap_err().kind(), ErrorKind::Tls);
        assert_eq!(Identity::from_pkcs8(b"garbage", b"garbage").unwrap_err().kind(), ErrorKind::Tls);
    }

    #[test]
    fn default_options_share_the_process_connector() {
        assert!(matches!(TlsOptions::default().into_connector(), Ok(TlsConnector::Default)));
        let custom = TlsOptions { accept_invalid_hostnames: true, ..TlsOptions::default() };
        assert!(matches!(custom.into_connector(), Ok(TlsConnector::Custom(_))));
    }
}
