//! [`ClientBuilder`]: everything configurable about a [`Client`].

use std::future::Future;
use std::io;
use std::time::Duration;

use http::header::HeaderValue;

use crate::client::Client;
use crate::error::{Error, ErrorKind, Result};
use crate::pool::{Pool, PoolConfig};
use crate::proto::Limits;
use crate::transport::{Connector, Destination, Io};

const USER_AGENT: &str = concat!("smolreq/", env!("CARGO_PKG_VERSION"));

/// A client's settings, fixed when it is built.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) limits: Limits,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_redirects: usize,
    pub(crate) follow_redirects: bool,
    pub(crate) user_agent: String,
    pub(crate) connector: Option<Connector>,
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
                connect_timeout: None,
                timeout: None,
                max_redirects: 10,
                follow_redirects: true,
                user_agent: USER_AGENT.to_owned(),
                connector: None,
            },
            pool: PoolConfig { max_per_host: 32, max_idle_per_host: 8, idle_timeout: Duration::from_secs(90) },
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

    /// Deadline for establishing a connection (default none).
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

    /// Opens connections with `connect` instead of TCP: the client runs
    /// HTTP/1.1 over whatever byte stream it returns (an in-memory pipe in
    /// tests, a Unix socket, a tunnel). `connect_timeout` still applies.
    ///
    /// ```no_run
    /// // Send every request to one local port, whatever the URL's host
    /// // (the Host header still names the URL's host).
    /// let client = smolreq::Client::builder()
    ///     .connector(|_dest: smolreq::Destination| async_net::TcpStream::connect(("127.0.0.1", 8080)))
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

    /// Builds the client. Fails if a limit is zero where that makes no
    /// sense, or the User-Agent is not a valid header value.
    pub fn build(self) -> Result<Client> {
        let invalid = |what| Err(Error::new(ErrorKind::Request, what));
        if self.pool.max_per_host == 0 {
            return invalid("max_connections_per_host must be at least 1");
        }
        let limits = &self.config.limits;
        if limits.max_head_size < 16 || limits.max_headers == 0 || limits.max_chunk_line < 3 {
            return invalid("response limits are too small to read any response");
        }
        if HeaderValue::from_str(&self.config.user_agent).is_err() {
            return invalid("user agent is not a valid header value");
        }
        Ok(Client::from_parts(self.config, Pool::new(self.pool)))
    }
}
