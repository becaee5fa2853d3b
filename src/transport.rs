//! Dialing: address resolution, TCP connect with a deadline, TCP_NODELAY,
//! the TLS handshake for `https://`, and the stream type every connection
//! runs over.
//!
//! [`Stream`] is an enum, not a trait object, so the hot path of reading
//! and writing plain TCP or TLS over TCP is a direct call. A custom
//! connector (see [`ClientBuilder::connector`](crate::ClientBuilder::connector))
//! is the one boxed stream: it lets the whole client run over any byte
//! stream, such as an in-memory transport in tests and fuzzing, or a Unix
//! socket. It replaces TCP only: for an `https://` URL, smolreq runs TLS
//! over the stream the connector returns.

use std::fmt;
use std::future::Future;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use std::time::Instant;

use async_io::Async;
use futures_io::{AsyncRead, AsyncWrite};

use http::HeaderValue;

use crate::builder::Config;
use crate::error::{Error, ErrorKind, Result};
#[cfg(feature = "proxy")]
use crate::proto::socks5;
use crate::proxy::ProxyAddr;
#[cfg(feature = "proxy")]
use crate::proxy::ProxyScheme;
#[cfg(feature = "native-tls")]
use crate::tls::TlsStream;
#[cfg(feature = "proxy")]
use crate::tunnel::{self, TunnelError};
use crate::util::with_deadline;

/// A byte stream HTTP/1.1 can run over: what a custom connector returns.
///
/// Implemented for every `AsyncRead + AsyncWrite + Send + Sync + Unpin`
/// type. `Sync` lets a [`Response`](crate::Response), which owns the
/// stream, be shared by reference across threads (held as `&Response`
/// across an `.await` in a spawned task); TCP and Unix sockets (std,
/// `async-io`, `async-net`) and in-memory pipes are `Sync`. A stream that
/// is not (one holding a `Cell`, say) can be wrapped in a
/// `std::sync::Mutex` behind a small `AsyncRead`/`AsyncWrite` adapter.
pub trait Io: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static> Io for T {}

/// Where a custom connector should connect to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub(crate) tls: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Destination {
    /// The host name or IP literal of the URL (IPv6 in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// True for an `https://` URL. The connector still returns a plain
    /// stream: smolreq runs the TLS handshake over it.
    pub fn is_tls(&self) -> bool {
        self.tls
    }
}

/// Why an `https://` URL fails when the `native-tls` feature is off.
#[cfg_attr(feature = "native-tls", allow(dead_code))]
pub(crate) const TLS_DISABLED: &str =
    "https:// needs TLS, which is not enabled in this build (enable the `native-tls` feature of smolreq)";

type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<Box<dyn Io>>> + Send>>;

/// A user-supplied way to open connections, replacing TCP.
#[derive(Clone)]
pub(crate) struct Connector(Arc<dyn Fn(Destination) -> ConnectFuture + Send + Sync>);

impl Connector {
    pub(crate) fn new<F, Fut, S>(connect: F) -> Connector
    where
        F: Fn(Destination) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = io::Result<S>> + Send + 'static,
        S: Io,
    {
        Connector(Arc::new(move |dest| {
            let fut = connect(dest);
            Box::pin(async move { fut.await.map(|s| Box::new(s) as Box<dyn Io>) })
        }))
    }
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Connector(..)")
    }
}

/// A connected byte stream to one origin.
pub(crate) enum Stream {
    /// Plain TCP.
    Tcp(Async<TcpStream>),
    /// A stream from a custom connector.
    Custom(Box<dyn Io>),
    /// TLS over TCP.
    #[cfg(feature = "native-tls")]
    Tls(TlsStream<Async<TcpStream>>),
    /// TLS over a custom connector's stream.
    #[cfg(feature = "native-tls")]
    CustomTls(TlsStream<Box<dyn Io>>),
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stream::Tcp(tcp) => f.debug_tuple("Tcp").field(tcp.get_ref()).finish(),
            Stream::Custom(_) => f.write_str("Custom(..)"),
            #[cfg(feature = "native-tls")]
            Stream::Tls(tls) => f.debug_tuple("Tls").field(tls).finish(),
            #[cfg(feature = "native-tls")]
            Stream::CustomTls(tls) => f.debug_tuple("CustomTls").field(tls).finish(),
        }
    }
}

impl Stream {
    /// Checks, without blocking, whether an idle connection can carry a new
    /// request: the server must not have closed it (EOF), reset it, or sent
    /// bytes nobody asked for.
    pub(crate) fn is_reusable_idle(&mut self) -> bool {
        match self {
            Stream::Tcp(tcp) => {
                let mut byte = [0u8; 1];
                matches!(tcp.get_ref().peek(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
            // Any stream: poll one read without waiting. Pending means
            // nothing happened; data, EOF or an error means do not reuse
            // (a consumed byte does not matter, the stream is discarded).
            Stream::Custom(io) => {
                let mut byte = [0u8; 1];
                let mut cx = Context::from_waker(Waker::noop());
                Pin::new(io).poll_read(&mut cx, &mut byte).is_pending()
            }
            // Not the socket peek: TLS 1.3 session tickets and other
            // post-handshake messages arrive as unsolicited bytes on the
            // socket, yet leave the connection perfectly reusable. The TLS
            // layer reads them and tells what is left.
            #[cfg(feature = "native-tls")]
            Stream::Tls(tls) => tls.is_reusable_idle(),
            #[cfg(feature = "native-tls")]
            Stream::CustomTls(tls) => tls.is_reusable_idle(),
        }
    }

    /// The peer's address of a TCP connection, plain or under TLS; `None`
    /// for a custom connector's stream.
    pub(crate) fn peer_addr(&self) -> Option<SocketAddr> {
        match self {
            Stream::Tcp(tcp) => tcp.get_ref().peer_addr().ok(),
            #[cfg(feature = "native-tls")]
            Stream::Tls(tls) => tls.get_ref().get_ref().peer_addr().ok(),
            _ => None,
        }
    }

    /// Whether [`poll_read_append`](Self::poll_read_append) can read
    /// straight into a vector's spare capacity.
    pub(crate) fn can_append(&self) -> bool {
        matches!(self, Stream::Tcp(_))
    }

    /// Plain TCP only: appends at most `max` bytes to `out` without zeroing
    /// its spare capacity first. Safe code can only hand a reader
    /// initialized memory, so this goes through the standard library's
    /// `read_to_end` on the socket, which reads into spare capacity (and
    /// keeps what it read when the non-blocking socket says `WouldBlock`).
    /// `Ok(0)` is end of stream (or `max` is 0). Other streams return an
    /// error; callers check [`can_append`](Self::can_append) first.
    pub(crate) fn poll_read_append(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<u8>,
        max: u64,
    ) -> Poll<io::Result<usize>> {
        let Stream::Tcp(tcp) = self else {
            return Poll::Ready(Err(io::Error::other("direct reads need a plain TCP stream")));
        };
        loop {
            let before = out.len();
            let mut socket: &TcpStream = tcp.get_ref();
            match Read::take(&mut socket, max).read_to_end(out) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if out.len() > before {
                        return Poll::Ready(Ok(out.len() - before));
                    }
                    ready!(tcp.poll_readable(cx))?;
                }
                Err(e) => {
                    out.truncate(before);
                    return Poll::Ready(Err(e));
                }
            }
        }
    }
}

/// Opens a connection to `dest` with the client's custom connector, or over
/// TCP when it has none, through `proxy` when one is given, then runs the
/// TLS handshake for `https://`. The whole of it must finish by
/// `deadline` when one is given.
///
/// Through an HTTP proxy an `https://` origin gets a `CONNECT` tunnel
/// (with `proxy_authorization`, when given) and an `http://` one gets the
/// connection to the proxy itself, for absolute-form requests; through
/// SOCKS5 every origin gets a tunnel. TLS to the origin runs inside the
/// tunnel, verified against the origin's name, never the proxy's.
pub(crate) async fn connect(
    config: &Config,
    dest: Destination,
    proxy: Option<(&ProxyAddr, Option<&HeaderValue>)>,
    deadline: Option<Instant>,
) -> Result<Stream> {
    with_deadline(deadline, async {
        let tls = dest.tls;
        let host = dest.host.clone();
        let stream = match proxy {
            #[cfg(feature = "proxy")]
            Some((proxy, authorization)) => through_proxy(config, dest, proxy, authorization).await?,
            _ => open(config, dest).await?,
        };
        if tls { start_tls(config, &host, stream).await } else { Ok(stream) }
    })
    .await
    .map_err(|e| if e.is_timeout() { Error::new(ErrorKind::Timeout, "connect timed out") } else { e })
}

/// A plain stream to `dest`: the custom connector's, or TCP.
async fn open(config: &Config, dest: Destination) -> Result<Stream> {
    match &config.connector {
        None => dial(&dest.host, dest.port).await,
        Some(Connector(connect)) => {
            Ok(Stream::Custom(connect(dest).await.map_err(|e| Error::with_source(ErrorKind::Connect, e))?))
        }
    }
}

/// A stream to `dest` through `proxy`, before TLS to the origin.
#[cfg(feature = "proxy")]
async fn through_proxy(
    config: &Config,
    dest: Destination,
    proxy: &ProxyAddr,
    authorization: Option<&HeaderValue>,
) -> Result<Stream> {
    // Errors from here on concern the proxy, and name it (never its
    // credentials) instead of the origin.
    let proxy_url = proxy.url();
    let named = |e: Error| match &proxy_url {
        Some(url) => e.with_url(url),
        None => e,
    };
    let to_proxy = Destination { tls: false, host: bracketed(&proxy.host), port: proxy.port };
    let mut stream = open(config, to_proxy).await.map_err(|e| {
        let err = match e.kind() {
            ErrorKind::Connect | ErrorKind::Resolve => Error::with_source(ErrorKind::Proxy, e),
            _ => e,
        };
        named(err)
    })?;
    if proxy.scheme == ProxyScheme::Https {
        stream = Stream::Custom(Box::new(start_tls(config, &proxy.host, stream).await.map_err(named)?));
    }
    let tunnel = match proxy.scheme {
        ProxyScheme::Http | ProxyScheme::Https if !dest.tls => return Ok(stream),
        ProxyScheme::Http | ProxyScheme::Https => {
            let agent = Some(config.user_agent.as_bytes());
            let auth = authorization.map(HeaderValue::as_bytes);
            tunnel::http_connect(&mut stream, &dest.host, dest.port, auth, agent, &config.limits).await
        }
        ProxyScheme::Socks5 => {
            let addr = resolve(&dest.host, dest.port).await?.into_iter().next();
            let addr = addr.ok_or_else(|| Error::new(ErrorKind::Connect, "host name resolved to no address"))?;
            tunnel::socks5_connect(&mut stream, socks5::Target::Addr(addr), proxy.credentials.as_ref()).await.map(drop)
        }
        ProxyScheme::Socks5h => {
            let host = dest.host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(&dest.host);
            let target = match host.parse::<IpAddr>() {
                Ok(ip) => socks5::Target::Addr(SocketAddr::new(ip, dest.port)),
                Err(_) => socks5::Target::Name(host, dest.port),
            };
            tunnel::socks5_connect(&mut stream, target, proxy.credentials.as_ref()).await.map(drop)
        }
    };
    tunnel.map_err(|e| named(tunnel_error(e)))?;
    Ok(stream)
}

/// The proxy's answer as an error of kind [`ErrorKind::Proxy`] (or `Io`).
#[cfg(feature = "proxy")]
fn tunnel_error(e: TunnelError) -> Error {
    match e {
        TunnelError::Io(e) => Error::with_source(ErrorKind::Proxy, e),
        TunnelError::Refused(status) => Error::proxy_refused(status),
        TunnelError::Closed => Error::new(ErrorKind::Proxy, "the proxy closed the connection before answering"),
        TunnelError::Protocol(e) => Error::with_source(ErrorKind::Proxy, e),
        TunnelError::UnsolicitedBytes => {
            Error::new(ErrorKind::Proxy, "the proxy sent bytes after its answer to CONNECT, before TLS began")
        }
        TunnelError::Socks(e) => Error::new(ErrorKind::Proxy, e.0),
    }
}

/// An IPv6 literal in brackets, as a [`Destination`] host is.
#[cfg(feature = "proxy")]
fn bracketed(host: &str) -> String {
    if host.contains(':') { format!("[{host}]") } else { host.to_owned() }
}

#[cfg(feature = "native-tls")]
async fn start_tls(config: &Config, host: &str, stream: Stream) -> Result<Stream> {
    match stream {
        Stream::Tcp(tcp) => config.tls.handshake(host, tcp).await.map(Stream::Tls),
        Stream::Custom(io) => config.tls.handshake(host, io).await.map(Stream::CustomTls),
        Stream::Tls(_) | Stream::CustomTls(_) => Ok(stream),
    }
}

#[cfg(not(feature = "native-tls"))]
async fn start_tls(_config: &Config, _host: &str, _stream: Stream) -> Result<Stream> {
    // `Target::parse` refuses https:// URLs in this build; kept for clarity.
    Err(Error::new(ErrorKind::Tls, TLS_DISABLED))
}

/// Opens a TCP connection to `host:port`, trying each resolved address in
/// turn.
async fn dial(host: &str, port: u16) -> Result<Stream> {
    let addrs = resolve(host, port).await?;
    let mut last_err = None;
    for addr in addrs {
        match Async::<TcpStream>::connect(addr).await {
            Ok(stream) => {
                stream.get_ref().set_nodelay(true).map_err(|e| Error::with_source(ErrorKind::Connect, e))?;
                return Ok(Stream::Tcp(stream));
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(match last_err {
        Some(e) => Error::with_source(ErrorKind::Connect, e),
        None => Error::new(ErrorKind::Resolve, "host name resolved to no address"),
    })
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>> {
    // An IP literal needs no resolver (and no helper thread).
    let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    crate::resolve::resolve(host, port).await.map_err(|e| Error::with_source(ErrorKind::Resolve, e))
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Custom(io) => Pin::new(io).poll_read(cx, buf),
            #[cfg(feature = "native-tls")]
            Stream::Tls(tls) => Pin::new(tls).poll_read(cx, buf),
            #[cfg(feature = "native-tls")]
            Stream::CustomTls(tls) => Pin::new(tls).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Stream::Custom(io) => Pin::new(io).poll_write(cx, buf),
            #[cfg(feature = "native-tls")]
            Stream::Tls(tls) => Pin::new(tls).poll_write(cx, buf),
            #[cfg(feature = "native-tls")]
            Stream::CustomTls(tls) => Pin::new(tls).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Stream::Custom(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            #[cfg(feature = "native-tls")]
            Stream::Tls(tls) => Pin::new(tls).poll_write_vectored(cx, bufs),
            #[cfg(feature = "native-tls")]
            Stream::CustomTls(tls) => Pin::new(tls).poll_write_vectored(cx, bufs),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Custom(io) => Pin::new(io).poll_flush(cx),
            #[cfg(feature = "native-tls")]
            Stream::Tls(tls) => Pin::new(tls).poll_flush(cx),
            #[cfg(feature = "native-tls")]
            Stream::CustomTls(tls) => Pin::new(tls).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(tcp) => Pin::new(tcp).poll_close(cx),
            Stream::Custom(io) => Pin::new(io).poll_close(cx),
            #[cfg(feature = "native-tls")]
            Stream::Tls(tls) => Pin::new(tls).poll_close(cx),
            #[cfg(feature = "native-tls")]
            Stream::CustomTls(tls) => Pin::new(tls).poll_close(cx),
        }
    }
}
