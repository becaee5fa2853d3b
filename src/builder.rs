//! [`ClientBuilder`]: everything configurable about a [`Client`].

use std::future::Future;
use std::io;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};

use crate::client::Client;
use crate::error::{Error, ErrorKind, Result};
use crate::pool::{Pool, PoolConfig};
use crate::proto::Limits;
use crate::proxy::Proxy;
use crate::request::replace_headers;
#[cfg(feature = "native-tls")]
use crate::tls::{Certificate, Identity, TlsConnector, TlsOptions, TlsVersion};
use crate::transport::{Connector, Destination, Io};

const USER_AGENT: &str = concat!("smolreq/", env!("CARGO_PKG_VERSION"));

/// The shortest response head there is: `HTTP/1.1 200 \r\n\r\n` less a byte.
const MIN_HEAD_SIZE: usize = 16;

/// A client's settings, fixed when it is built.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) limits: Limits,
    pub(crate) max_drain_on_drop: u64,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_redirects: usize,
    pub(crate) follow_redirects: bool,
    pub(crate) user_agent: String,
    pub(crate) connector: Option<Connector>,
    pub(crate) https_only: bool,
    pub(crate) allow_https_downgrade: bool,
    #[cfg(feature = "native-tls")]
    pub(crate) tls: TlsConnector,
    pub(crate) expect_continue_timeout: Duration,
    /// Sent with every request that does not set the same name.
    pub(crate) default_headers: HeaderMap,
    /// Proxies in the order they apply (the first that takes a request).
    pub(crate) proxies: Vec<Proxy>,
    pub(crate) max_body_size: Option<u64>,
}

/// Configures and builds a [`Client`].
///
/// ```
/// use std::time::Duration;
/// let client = smolreq::Client::builder()
///     .max_connections_per_host(32)
///     .max_idle_per_host(8)
///     .idle_timeout(Duration::from_secs(90))
///     .connect_timeout(Duration::from_secs(10))
///     .timeout(Duration::from_secs(30))
///     .max_redirects(10)
///     .build()?;
/// # Ok::<(), smolreq::Error>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct ClientBuilder {
    config: Config,
    pool: PoolConfig,
    #[cfg(feature = "native-tls")]
    tls: TlsOptions,
    /// Whether `build` reads the proxy variables of the environment.
    proxy_from_env: bool,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder::new()
    }
}

impl ClientBuilder {
    /// The defaults: 32 connections and 8 idle per host, 90 s idle timeout,
    /// no connect or request timeout, 10 redirects, and the limits of
    /// [`max_response_head_size`](Self::max_response_head_size) and friends.
    pub fn new() -> ClientBuilder {
        ClientBuilder {
            config: Config {
                limits: Limits::default(),
                max_drain_on_drop: 64 * 1024,
                connect_timeout: None,
                timeout: None,
                max_redirects: 10,
                follow_redirects: true,
                user_agent: USER_AGENT.to_owned(),
                connector: None,
                https_only: false,
                allow_https_downgrade: false,
                #[cfg(feature = "native-tls")]
                tls: TlsConnector::Default,
                expect_continue_timeout: Duration::from_secs(1),
                default_headers: HeaderMap::new(),
                proxies: Vec::new(),
                max_body_size: Some(DEFAULT_MAX_BODY_SIZE),
            },
            pool: PoolConfig { max_per_host: 32, max_idle_per_host: 8, idle_timeout: Duration::from_secs(90) },
            #[cfg(feature = "native-tls")]
            tls: TlsOptions::default(),
            proxy_from_env: true,
        }
    }

    /// Most connections open to one origin at once (default 32). More
    /// requests wait, first come first served.
    pub fn max_connections_per_host(mut self, max: usize) -> Self {
        self.pool.max_per_host = max;
        self
    }

    /// Most idle connections kept per origin (default 8); 0 disables reuse.
    pub fn max_idle_per_host(mut self, max: usize) -> Self {
        self.pool.max_idle_per_host = max;
        self
    }

    /// How long an idle connection is kept (default 90 s). A server's
    /// `Keep-Alive: timeout=N` shortens it for that connection.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.pool.idle_timeout = timeout;
        self
    }

    /// Deadline for establishing a connection (default none): name
    /// resolution, the TCP connect and, for `https://`, the TLS handshake.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = Some(timeout);
        self
    }

    /// Deadline for a whole request, from sending it to the end of its body
    /// (default none). [`RequestBuilder::timeout`](crate::RequestBuilder::timeout) overrides it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = Some(timeout);
        self
    }

    /// Most redirects followed for one request (default 10).
    pub fn max_redirects(mut self, max: usize) -> Self {
        self.config.max_redirects = max;
        self
    }

    /// Whether redirects are followed at all (default true).
    pub fn redirect(mut self, follow: bool) -> Self {
        self.config.follow_redirects = follow;
        self
    }

    /// The User-Agent sent when a request sets none (default `smolreq/VERSION`).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.config.user_agent = user_agent.into();
        self
    }

    /// Largest response head accepted, in bytes (default 64 KiB).
    pub fn max_response_head_size(mut self, max: usize) -> Self {
        self.config.limits.max_head_size = max;
        self
    }

    /// Most header fields accepted in a response head (default 100).
    pub fn max_headers(mut self, max: usize) -> Self {
        self.config.limits.max_headers = max;
        self
    }

    /// Longest chunk-size line, extensions included (default 4 KiB).
    pub fn max_chunk_line_size(mut self, max: usize) -> Self {
        self.config.limits.max_chunk_line = max;
        self
    }

    /// Largest trailer section of a chunked response (default 16 KiB).
    pub fn max_trailer_size(mut self, max: usize) -> Self {
        self.config.limits.max_trailer_size = max;
        self
    }

    /// Most body bytes read and dropped to finish a body that is dropped
    /// before its end (default 64 KiB; 0 disables).
    ///
    /// A dropped body keeps its connection when the rest of it has already
    /// arrived: what is buffered, plus what the socket returns at once. No
    /// waiting, no task: if the rest is not all there, is longer than this,
    /// or the exchange does not allow reuse, the connection is closed as
    /// before. A Content-Length body with more left than this is closed
    /// without reading. [`Response::discard`](crate::Response::discard)
    /// waits for the rest instead.
    ///
    /// ```
    /// let client = smolreq::Client::builder().max_drain_on_drop(256 * 1024).build()?;
    /// # Ok::<(), smolreq::Error>(())
    /// ```
    pub fn max_drain_on_drop(mut self, max: u64) -> Self {
        self.config.max_drain_on_drop = max;
        self
    }

    /// Opens connections with `connect` instead of TCP: the client runs
    /// HTTP/1.1 over whatever byte stream it returns (an in-memory pipe in
    /// tests, a Unix socket, a tunnel). `connect_timeout` still applies.
    ///
    /// ```no_run
    /// // Send every request to one local port, whatever the URL's host
    /// // (the Host header still names the URL's host).
    /// let client = smolreq::Client::builder()
    ///     .connector(|_dest: smolreq::Destination| {
    ///         async_io::Async::<std::net::TcpStream>::connect(([127, 0, 0, 1], 8080))
    ///     })
    ///     .build()?;
    /// # Ok::<(), smolreq::Error>(())
    /// ```
    pub fn connector<F, Fut, S>(mut self, connect: F) -> Self
    where
        F: Fn(Destination) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = io::Result<S>> + Send + 'static,
        S: Io,
    {
        self.config.connector = Some(Connector::new(connect));
        self
    }

    /// Refuses every plain `http://` request, redirects included, with
    /// [`ErrorKind::Url`] (default false). Nothing is sent: the connection
    /// is not even opened.
    ///
    /// ```
    /// # smol::block_on(async {
    /// let client = smolreq::Client::builder().https_only(true).build()?;
    /// let err = client.get("http://127.0.0.1:9/").send().await.unwrap_err();
    /// assert_eq!(err.kind(), smolreq::ErrorKind::Url);
    /// # Ok::<(), smolreq::Error>(()) });
    /// ```
    pub fn https_only(mut self, https_only: bool) -> Self {
        self.config.https_only = https_only;
        self
    }

    /// Follows redirects from `https://` to plain `http://` (default false).
    ///
    /// By default such a redirect is refused with [`ErrorKind::Redirect`],
    /// as .NET's `HttpClient` does: following it would send the next
    /// request, and whatever it carries, unencrypted, after the user asked
    /// for `https://`. Redirects from `http://` to `https://` are always
    /// followed. [`https_only`](Self::https_only) wins over this setting.
    pub fn allow_https_downgrade(mut self, allow: bool) -> Self {
        self.config.allow_https_downgrade = allow;
        self
    }

    /// Trusts `cert` as a root certificate for `https://`, in addition to
    /// the system's roots (unless [`tls_built_in_root_certs`](Self::tls_built_in_root_certs)
    /// is off). Call it once per certificate.
    ///
    /// ```no_run
    /// let ca = smolreq::Certificate::from_pem(&std::fs::read("my-ca.pem")?)?;
    /// let client = smolreq::Client::builder().add_root_certificate(ca).build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "native-tls")]
    pub fn add_root_certificate(mut self, cert: Certificate) -> Self {
        self.tls.roots.push(cert);
        self
    }

    /// Whether the system's root certificates are trusted (default true).
    /// With false, only the certificates of
    /// [`add_root_certificate`](Self::add_root_certificate) are.
    #[cfg(feature = "native-tls")]
    pub fn tls_built_in_root_certs(mut self, enable: bool) -> Self {
        self.tls.built_in_roots = enable;
        self
    }

    /// The client certificate and key presented to servers that ask for
    /// one (mutual TLS). Default none.
    #[cfg(feature = "native-tls")]
    pub fn identity(mut self, identity: Identity) -> Self {
        self.tls.identity = Some(identity);
        self
    }

    /// The oldest TLS version accepted (default: the TLS library's own
    /// minimum, TLS 1.0 at most).
    #[cfg(feature = "native-tls")]
    pub fn min_tls_version(mut self, version: TlsVersion) -> Self {
        self.tls.min_version = Some(version);
        self
    }

    /// Accepts any server certificate (default false): unknown issuer,
    /// expired, self-signed, any host name.
    ///
    /// **Dangerous.** Anyone on the path can then read and change the
    /// traffic. Meant for tests and for servers reached over a trusted
    /// network; prefer [`add_root_certificate`](Self::add_root_certificate).
    #[cfg(feature = "native-tls")]
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.tls.accept_invalid_certs = accept;
        self
    }

    /// Accepts a certificate issued for another host name (default false).
    /// The certificate must still chain to a trusted root and be valid.
    ///
    /// **Dangerous.** Any holder of a certificate from a trusted CA can then
    /// impersonate the server.
    #[cfg(feature = "native-tls")]
    pub fn danger_accept_invalid_hostnames(mut self, accept: bool) -> Self {
        self.tls.accept_invalid_hostnames = accept;
        self
    }

    /// How long a request sent with `Expect: 100-continue` waits for the
    /// server's `100 Continue` before sending its body anyway (default 1 s,
    /// as Go's and .NET's clients).
    ///
    /// Only requests that set that header wait, and only when they have a
    /// body. If the server answers with a final status instead (`417`,
    /// `413`, `401`, ...), the body is not sent, that response is returned,
    /// and its connection is closed after it rather than reused. Any value
    /// is accepted: zero sends the body at once, [`Duration::MAX`] waits
    /// until the server answers (or the request's deadline passes).
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// use std::time::Duration;
    /// let client = smolreq::Client::builder().expect_continue_timeout(Duration::from_millis(500)).build()?;
    /// let resp = client
    ///     .put("http://127.0.0.1:8080/upload")
    ///     .header("expect", "100-continue")
    ///     .body(vec![0u8; 1 << 20])
    ///     .send()
    ///     .await?;
    /// // A 417 or 413 here means the megabyte was never sent.
    /// println!("{}", resp.status());
    /// # Ok::<(), smolreq::Error>(()) });
    /// ```
    pub fn expect_continue_timeout(mut self, timeout: Duration) -> Self {
        self.config.expect_continue_timeout = timeout;
        self
    }

    /// Headers sent with every request (default none). A request that sets
    /// a field of the same name, with [`RequestBuilder::header`] or
    /// [`RequestBuilder::headers`], sends its own values instead of the
    /// default ones; other names are added. Calling this again replaces the
    /// values of the names it carries and keeps the others.
    ///
    /// They are sent like the request's own fields: an `Authorization`
    /// default is dropped on a redirect to another origin. Values of
    /// `Authorization`, `Proxy-Authorization` and `Cookie` are marked
    /// sensitive, so the client's `Debug` does not print them. A
    /// `Content-Length` or `Transfer-Encoding` default would frame every
    /// body wrongly: [`build`](Self::build) refuses it with
    /// [`ErrorKind::Builder`].
    ///
    /// [`RequestBuilder::header`]: crate::RequestBuilder::header
    /// [`RequestBuilder::headers`]: crate::RequestBuilder::headers
    ///
    /// ```
    /// use smolreq::{HeaderMap, HeaderValue};
    /// let mut headers = HeaderMap::new();
    /// headers.insert("accept", HeaderValue::from_static("application/json"));
    /// headers.insert("x-api-version", HeaderValue::from_static("2"));
    /// let client = smolreq::Client::builder().default_headers(headers).build()?;
    /// // Sends `accept: text/html` (not also the default) and `x-api-version: 2`.
    /// let request = client.get("http://127.0.0.1/").header("accept", "text/html");
    /// # let _ = request;
    /// # Ok::<(), smolreq::Error>(())
    /// ```
    pub fn default_headers(mut self, headers: HeaderMap) -> Self {
        replace_headers(&mut self.config.default_headers, headers);
        self
    }

    /// Sends requests through `proxy` when it takes them (see [`Proxy`]);
    /// several may be added, and the first that takes a request wins.
    /// Adding a proxy turns off the proxies of the environment, as in
    /// reqwest: the client then uses exactly the proxies it was given.
    ///
    /// ```
    /// let client = smolreq::Client::builder()
    ///     .proxy(smolreq::Proxy::all("http://127.0.0.1:3128")?)
    ///     .build()?;
    /// # Ok::<(), smolreq::Error>(())
    /// ```
    #[cfg(feature = "proxy")]
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.config.proxies.push(proxy);
        self.proxy_from_env = false;
        self
    }

    /// Uses no proxy: neither those added with `proxy` nor those of the
    /// environment. (Without the `proxy` feature, the default, no request
    /// goes through a proxy and this does nothing.)
    ///
    /// By default a client reads, once in [`build`](Self::build),
    /// `http_proxy`, `https_proxy`, `all_proxy` and `no_proxy` (each also
    /// in upper case, the lower case form first), as curl does, except
    /// `HTTP_PROXY` when `REQUEST_METHOD` is set (a CGI program, where a
    /// client's `Proxy:` header becomes `HTTP_PROXY`: httpoxy). A value
    /// without a scheme means `http://`; a value that is not a valid proxy
    /// URL is ignored. See `NoProxy` for the `no_proxy` forms.
    pub fn no_proxy(mut self) -> Self {
        self.config.proxies.clear();
        self.proxy_from_env = false;
        self
    }

    /// Builds the client. Fails with [`ErrorKind::Builder`], naming the
    /// setting, if a limit is too small to read any response (a zero
    /// connection cap, fewer than 16 bytes of head, no header field, a
    /// chunk-size line under 3 bytes), the User-Agent is not a valid
    /// header value, or a default header sets the body's framing; with [`ErrorKind::Tls`] if the TLS library rejects the
    /// TLS settings.
    ///
    /// Every other value is accepted, however large: a timeout too long to
    /// be represented as an instant means no timeout, and a limit as large
    /// as `usize::MAX` means no limit in practice (nothing is reserved for
    /// it up front).
    ///
    /// ```
    /// let err = smolreq::Client::builder().max_headers(0).build().unwrap_err();
    /// assert_eq!(err.kind(), smolreq::ErrorKind::Builder);
    /// assert!(err.to_string().contains("max_headers"), "{err}");
    /// ```
    ///
    /// A client with TLS settings of its own builds its TLS connector here,
    /// once; clients with the default settings share one, built on the
    /// first `https://` connection of the process.
    #[cfg_attr(not(any(feature = "native-tls", feature = "proxy")), allow(unused_mut))]
    pub fn build(mut self) -> Result<Client> {
        let invalid = |what| Err(Error::new(ErrorKind::Builder, what));
        if self.pool.max_per_host == 0 {
            return invalid("max_connections_per_host must be at least 1");
        }
        let limits = &self.config.limits;
        if limits.max_head_size < MIN_HEAD_SIZE {
            return invalid("max_response_head_size must be at least 16 bytes (no response fits in less)");
        }
        if limits.max_headers == 0 {
            return invalid("max_headers must be at least 1");
        }
        if limits.max_chunk_line < 3 {
            return invalid("max_chunk_line_size must be at least 3 bytes (no chunk-size line fits in less)");
        }
        if HeaderValue::from_str(&self.config.user_agent).is_err() {
            return invalid("user_agent is not a valid header value");
        }
        let defaults = &self.config.default_headers;
        if defaults.contains_key(header::CONTENT_LENGTH) || defaults.contains_key(header::TRANSFER_ENCODING) {
            return invalid(
                "default_headers must not set Content-Length or Transfer-Encoding (smolreq frames each body)",
            );
        }
        #[cfg(feature = "native-tls")]
        {
            self.config.tls = self.tls.into_connector()?;
        }
        #[cfg(feature = "proxy")]
        if self.proxy_from_env {
            self.config.proxies = Proxy::from_env();
        }
        Ok(Client::from_parts(self.config, Pool::new(self.pool)))
    }

    /// Most body bytes that [`Response::bytes`](crate::Response::bytes),
    /// [`text`](crate::Response::text) and `json` collect in memory
    /// (default 64 MiB; `None`: no bound).
    ///
    /// A body longer than this is an [`ErrorKind::Body`] error saying
    /// "response body larger than max_body_size", and its connection is
    /// closed (reading stops one byte past the bound; only a body whose end
    /// was read with that byte keeps its connection); a Content-Length
    /// above the bound fails before any byte of the body is read. The bound counts decoded body bytes (chunked
    /// framing removed). Reading the body as an `AsyncRead`, with
    /// [`Response::chunk`](crate::Response::chunk) or
    /// [`bytes_stream`](crate::Response::bytes_stream) is not bounded by
    /// it: the caller decides what to keep.
    ///
    /// ```
    /// let client = smolreq::Client::builder().max_body_size(Some(1 << 20)).build()?;
    /// # Ok::<(), smolreq::Error>(())
    /// ```
    pub fn max_body_size(mut self, max: Option<u64>) -> Self {
        self.config.max_body_size = max;
        self
    }
}

/// The default of [`ClientBuilder::max_body_size`]: 64 MiB.
const DEFAULT_MAX_BODY_SIZE: u64 = 64 << 20;
