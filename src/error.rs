//! The one error type of smolreq.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::io;

use http::{StatusCode, Uri};

use crate::proto::ProtoError;

/// The broad class of an [`Error`], for deciding what to do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The TCP connection could not be established (refused, unreachable,
    /// reset during the connect), or a custom connector failed.
    Connect,
    /// The host name could not be resolved to an address (no such name,
    /// no answer from the resolver). [`Error::is_connect`] is true for it
    /// too: like a refused connection, nothing was sent.
    Resolve,
    /// A deadline (`timeout` or `connect_timeout`) passed.
    Timeout,
    /// The TLS layer failed, or TLS was needed but is not available.
    Tls,
    /// The server sent something that is not valid HTTP/1.1, or broke a
    /// configured limit.
    Protocol,
    /// An I/O error on an established connection.
    Io,
    /// A redirect could not be followed (too many, or a bad `Location`).
    Redirect,
    /// The URL is malformed or uses an unsupported scheme; the message says
    /// what was wrong and where.
    Url,
    /// The request body failed, or the response body could not be read as
    /// asked (a limit, an unsupported charset).
    Body,
    /// The response body could not be decoded: into the type asked for
    /// (`Response::json`; the source is serde's error, with the line and
    /// column), or from its content encoding.
    Decode,
    /// The request could not be built: an invalid header name or value, a
    /// forbidden byte, a conflicting framing header.
    Request,
    /// [`ClientBuilder::build`](crate::ClientBuilder::build) refused a
    /// setting; the message names it.
    Builder,
    /// The proxy could not be reached, refused the tunnel (see
    /// [`Error::status`]) or answered invalidly; [`Error::url`] is the
    /// proxy's URL, without its credentials.
    Proxy,
    /// The server answered with an error status (4xx or 5xx), turned into
    /// an error by [`Response::error_for_status`](crate::Response::error_for_status);
    /// [`Error::status`] tells which.
    Status,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Connect => "connect error",
            ErrorKind::Resolve => "could not resolve host",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Tls => "TLS error",
            ErrorKind::Protocol => "protocol error",
            ErrorKind::Io => "I/O error",
            ErrorKind::Redirect => "redirect error",
            ErrorKind::Url => "invalid URL",
            ErrorKind::Body => "body error",
            ErrorKind::Decode => "decode error",
            ErrorKind::Request => "invalid request",
            ErrorKind::Builder => "invalid client setting",
            ErrorKind::Proxy => "proxy error",
            ErrorKind::Status => "HTTP status error",
        })
    }
}

/// An error from building, sending or reading a request.
///
/// It has a [`kind`](Error::kind), the URL it concerns when there is one
/// (never with its user name and password), and keeps the underlying cause,
/// such as the `io::Error` of a refused connection or the TLS library's
/// error, as its [`source`](StdError::source).
///
/// `Display` prints this error alone, on one line: its kind, what went
/// wrong when smolreq knows it, and the URL, such as `connect error
/// (http://127.0.0.1:1/)`. It does not repeat the cause, so a program that
/// prints the whole chain, as `anyhow`'s `{:#}` and `eyre` do, shows each
/// cause once. To print the chain by hand, walk `source()`:
///
/// ```
/// use std::error::Error as _;
///
/// # smol::block_on(async {
/// // A loopback port nobody listens on: the connection is refused.
/// let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
/// let err = smolreq::Client::new().get(format!("http://127.0.0.1:{port}/")).send().await.unwrap_err();
/// assert!(err.is_connect());
///
/// let mut chain = err.to_string();
/// let mut cause = err.source();
/// while let Some(e) = cause {
///     chain.push_str(": ");
///     chain.push_str(&e.to_string());
///     cause = e.source();
/// }
/// // "connect error (http://127.0.0.1:PORT/): Connection refused (os error 111)"
/// assert!(chain.starts_with(&format!("connect error (http://127.0.0.1:{port}/): ")), "{chain}");
/// # Ok::<(), std::io::Error>(()) }).unwrap();
/// ```
pub struct Error {
    inner: Box<Inner>,
}

// One pointer wide, so a `Result<T>` costs little more than a `T`.
const _: () = assert!(size_of::<Error>() == size_of::<usize>());

struct Inner {
    kind: ErrorKind,
    /// What went wrong, in smolreq's words: a fixed text, or one built for
    /// this error (a URL error quoting the URL, a protocol limit).
    message: Option<Cow<'static, str>>,
    /// Never with userinfo (see [`Error::with_url`]).
    url: Option<Uri>,
    status: Option<StatusCode>,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: &'static str) -> Error {
        Error::build(kind, Some(Cow::Borrowed(message)), None)
    }

    /// An error whose message is built at run time, such as a URL error
    /// that quotes the URL (whose password the caller must have redacted).
    pub(crate) fn with_detail(kind: ErrorKind, detail: String) -> Error {
        Error::build(kind, Some(Cow::Owned(detail)), None)
    }

    pub(crate) fn with_source(kind: ErrorKind, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Error {
        Error::build(kind, None, Some(source.into()))
    }

    fn build(
        kind: ErrorKind,
        message: Option<Cow<'static, str>>,
        source: Option<Box<dyn StdError + Send + Sync>>,
    ) -> Error {
        Error { inner: Box::new(Inner { kind, message, url: None, status: None, source }) }
    }

    pub(crate) fn io(err: io::Error) -> Error {
        // A timeout travels through `AsyncRead` as an `io::Error` whose inner
        // error is ours; unwrap it instead of nesting.
        if err.get_ref().is_some_and(|e| e.is::<Error>()) {
            if let Ok(inner) = err.into_inner().unwrap().downcast::<Error>() {
                return *inner;
            }
            unreachable!("checked with is::<Error>()");
        }
        let kind = if err.kind() == io::ErrorKind::TimedOut { ErrorKind::Timeout } else { ErrorKind::Io };
        Error::with_source(kind, err)
    }

    /// A proxy answered `CONNECT` with a status other than 2xx.
    #[cfg(feature = "proxy")]
    pub(crate) fn proxy_refused(status: StatusCode) -> Error {
        let message = if status == StatusCode::PROXY_AUTHENTICATION_REQUIRED {
            "the proxy requires authentication (407 in answer to CONNECT)"
        } else {
            "the proxy refused the tunnel (a non-2xx answer to CONNECT)"
        };
        let mut err = Error::new(ErrorKind::Proxy, message);
        err.inner.status = Some(status);
        err
    }

    pub(crate) fn timeout() -> Error {
        Error::new(ErrorKind::Timeout, "deadline elapsed")
    }

    /// Records the URL the error concerns, unless one is already set. Its
    /// user name and password are removed first: an error is printed,
    /// logged and passed around, and must never carry a secret.
    pub(crate) fn with_url(mut self, url: &Uri) -> Error {
        if self.inner.url.is_none() {
            self.inner.url = crate::url::without_userinfo(url);
        }
        self
    }

    /// An [`ErrorKind::Status`] error for a response with `status` from `url`.
    pub(crate) fn status_error(status: StatusCode, url: &Uri) -> Error {
        let message = if status.is_client_error() {
            "client error status"
        } else if status.is_server_error() {
            "server error status"
        } else {
            "error status"
        };
        let mut err = Error::new(ErrorKind::Status, message).with_url(url);
        err.inner.status = Some(status);
        err
    }

    /// The HTTP status behind the error: the response's status for an
    /// [`ErrorKind::Status`] error (from
    /// [`Response::error_for_status`](crate::Response::error_for_status)),
    /// a proxy's answer to `CONNECT` for an [`ErrorKind::Proxy`] error;
    /// `None` for every other error.
    ///
    /// ```
    /// # use std::io::{Read, Write};
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}/missing", listener.local_addr()?);
    /// # std::thread::spawn(move || {
    /// #     let (mut s, _) = listener.accept().unwrap();
    /// #     let mut buf = [0u8; 1024];
    /// #     let _ = s.read(&mut buf);
    /// #     s.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").unwrap();
    /// # });
    /// # smol::block_on(async {
    /// let err = smolreq::Client::new().get(&url).send().await?.error_for_status().unwrap_err();
    /// assert!(err.is_status());
    /// assert_eq!(err.status(), Some(smolreq::StatusCode::NOT_FOUND));
    /// # Ok::<(), smolreq::Error>(()) })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn status(&self) -> Option<StatusCode> {
        self.inner.status
    }

    /// True if this error is an [`ErrorKind::Status`] error.
    pub fn is_status(&self) -> bool {
        self.inner.kind == ErrorKind::Status
    }

    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The URL of the request that failed, when known, without user name
    /// and password.
    pub fn url(&self) -> Option<&Uri> {
        self.inner.url.as_ref()
    }

    /// True if the connection could not be made: [`ErrorKind::Connect`],
    /// or [`ErrorKind::Resolve`] (the host name did not resolve). Nothing
    /// of the request was sent. A connect that took longer than
    /// `connect_timeout` is a timeout, see [`is_timeout`](Error::is_timeout).
    pub fn is_connect(&self) -> bool {
        matches!(self.inner.kind, ErrorKind::Connect | ErrorKind::Resolve)
    }

    /// True if this error is a timeout ([`ErrorKind::Timeout`]).
    pub fn is_timeout(&self) -> bool {
        self.inner.kind == ErrorKind::Timeout
    }

    /// True if a redirect could not be followed ([`ErrorKind::Redirect`]).
    pub fn is_redirect(&self) -> bool {
        self.inner.kind == ErrorKind::Redirect
    }

    /// True if the request or response body failed ([`ErrorKind::Body`]).
    pub fn is_body(&self) -> bool {
        self.inner.kind == ErrorKind::Body
    }

    /// True if the response body could not be decoded
    /// ([`ErrorKind::Decode`]).
    pub fn is_decode(&self) -> bool {
        self.inner.kind == ErrorKind::Decode
    }

    /// True if the request could not be built ([`ErrorKind::Request`]).
    pub fn is_request(&self) -> bool {
        self.inner.kind == ErrorKind::Request
    }

    /// True if the client could not be built ([`ErrorKind::Builder`]).
    pub fn is_builder(&self) -> bool {
        self.inner.kind == ErrorKind::Builder
    }

    /// True if the URL could not be used ([`ErrorKind::Url`]).
    ///
    /// ```
    /// # smol::block_on(async {
    /// let err = smolreq::Client::new().get("ftp://example.test/").send().await.unwrap_err();
    /// assert!(err.is_url());
    /// # });
    /// ```
    pub fn is_url(&self) -> bool {
        self.inner.kind == ErrorKind::Url
    }

    /// Wraps this error in an `io::Error`, for `AsyncRead` implementations.
    pub(crate) fn into_io(self) -> io::Error {
        let kind = match self.inner.kind {
            ErrorKind::Timeout => io::ErrorKind::TimedOut,
            ErrorKind::Protocol | ErrorKind::Body | ErrorKind::Decode => io::ErrorKind::InvalidData,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, self)
    }
}

impl From<ProtoError> for Error {
    /// A protocol error is smolreq's own finding, not a cause from below:
    /// its text becomes the message, with no source.
    fn from(err: ProtoError) -> Error {
        match err {
            ProtoError::InvalidRequest(what) => Error::new(ErrorKind::Request, what),
            _ => Error::with_detail(ErrorKind::Protocol, err.to_string()),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind);
        if let Some(message) = &self.inner.message {
            d.field("message", message);
        }
        if let Some(url) = &self.inner.url {
            d.field("url", &crate::url::Redacted(url));
        }
        if let Some(status) = self.inner.status {
            d.field("status", &status);
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    /// This error alone: kind, message, URL. The cause is `source()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner.kind)?;
        if let Some(status) = self.inner.status {
            write!(f, " {status}")?;
        }
        if let Some(message) = &self.inner.message {
            write!(f, ": {message}")?;
        }
        if let Some(url) = &self.inner.url {
            write!(f, " ({})", crate::url::Redacted(url))?;
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner.source.as_ref().map(|e| &**e as &(dyn StdError + 'static))
    }
}

/// A `Result` whose error is smolreq's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every level of the chain, joined by ": ", as anyhow's `{:#}` prints it.
    fn chain(err: &dyn StdError) -> String {
        let mut text = err.to_string();
        let mut cause = err.source();
        while let Some(e) = cause {
            text.push_str(": ");
            text.push_str(&e.to_string());
            cause = e.source();
        }
        text
    }

    #[test]
    fn io_timeout_round_trips_through_io_error() {
        let err = Error::timeout().into_io();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(Error::io(err).kind(), ErrorKind::Timeout);
    }

    #[test]
    fn protocol_error_is_the_message_not_a_source() {
        let url: Uri = "http://h/p".parse().unwrap();
        let err = Error::from(ProtoError::InvalidStatus).with_url(&url);
        assert_eq!(err.to_string(), "protocol error: invalid status code (http://h/p)");
        assert!(err.source().is_none());
        assert_eq!(err.url(), Some(&url));
        let err = Error::from(ProtoError::TooManyHeaders(5));
        assert_eq!(err.to_string(), "protocol error: response head has more than 5 header fields");
        let err = Error::from(ProtoError::InvalidRequest("bad target"));
        assert_eq!((err.kind(), err.to_string().as_str()), (ErrorKind::Request, "invalid request: bad target"));
    }

    #[test]
    fn display_does_not_repeat_the_source() {
        let url: Uri = "http://h/p".parse().unwrap();
        let cause = io::Error::new(io::ErrorKind::ConnectionRefused, "refused by the peer");
        let err = Error::with_source(ErrorKind::Connect, cause).with_url(&url);
        assert_eq!(err.to_string(), "connect error (http://h/p)");
        assert_eq!(chain(&err), "connect error (http://h/p): refused by the peer");
        // Wrapped for `AsyncRead`, the chain still names the cause once.
        let io = Error::new(ErrorKind::Body, "too long").into_io();
        assert_eq!(chain(&io), "body error: too long");
    }

    #[test]
    fn detail_is_shown_after_the_kind() {
        let err = Error::with_detail(ErrorKind::Url, format!("invalid port {:?} in {:?}", "80a", "http://h:80a/"));
        assert_eq!(err.to_string(), r#"invalid URL: invalid port "80a" in "http://h:80a/""#);
        assert!(format!("{err:?}").contains("invalid port"), "{err:?}");
    }

    #[test]
    fn url_is_kept_without_userinfo() {
        let url: Uri = "http://user:secret@h:81/p?q".parse().unwrap();
        let err = Error::new(ErrorKind::Io, "x").with_url(&url);
        assert_eq!(err.url().unwrap().to_string(), "http://h:81/p?q");
        assert!(!err.to_string().contains("secret") && !format!("{err:?}").contains("secret"), "{err:?}");
        assert!(!err.to_string().contains("user"), "{err}");
    }

    #[test]
    fn predicates_follow_the_kind() {
        let is = |kind| {
            let e = Error::new(kind, "x");
            [
                e.is_connect(),
                e.is_timeout(),
                e.is_redirect(),
                e.is_body(),
                e.is_decode(),
                e.is_request(),
                e.is_builder(),
                e.is_url(),
            ]
        };
        assert_eq!(is(ErrorKind::Connect), [true, false, false, false, false, false, false, false]);
        assert_eq!(is(ErrorKind::Resolve), [true, false, false, false, false, false, false, false]);
        assert_eq!(is(ErrorKind::Timeout), [false, true, false, false, false, false, false, false]);
        assert_eq!(is(ErrorKind::Redirect), [false, false, true, false, false, false, false, false]);
        assert_eq!(is(ErrorKind::Body), [false, false, false, true, false, false, false, false]);
        assert_eq!(is(ErrorKind::Decode), [false, false, false, false, true, false, false, false]);
        assert_eq!(is(ErrorKind::Request), [false, false, false, false, false, true, false, false]);
        assert_eq!(is(ErrorKind::Builder), [false, false, false, false, false, false, true, false]);
        assert_eq!(is(ErrorKind::Url), [false, false, false, false, false, false, false, true]);
        for kind in [ErrorKind::Tls, ErrorKind::Protocol, ErrorKind::Io] {
            assert_eq!(is(kind), [false; 8], "{kind:?}");
        }
    }

    #[test]
    fn plain_io_error_is_io_kind() {
        let err = Error::io(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
        assert_eq!(err.kind(), ErrorKind::Io);
    }
}
