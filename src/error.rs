//! The one error type of smolreq.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use http::{StatusCode, Uri};

use crate::proto::ProtoError;

/// The broad class of an [`Error`], for deciding what to do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The TCP connection could not be established.
    Connect,
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
    /// The URL is malformed or uses an unsupported scheme.
    Url,
    /// The request body failed, or the response body could not be decoded.
    Body,
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
    /// The response body could not be decoded into the type asked for
    /// (`Response::json`); the source is the decoder's error, with the
    /// line and column.
    Decode,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Connect => "connect error",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Tls => "TLS error",
            ErrorKind::Protocol => "protocol error",
            ErrorKind::Io => "I/O error",
            ErrorKind::Redirect => "redirect error",
            ErrorKind::Url => "invalid URL",
            ErrorKind::Body => "body error",
            ErrorKind::Request => "invalid request",
            ErrorKind::Builder => "invalid client setting",
            ErrorKind::Proxy => "proxy error",
            ErrorKind::Status => "HTTP status error",
            ErrorKind::Decode => "decode error",
        })
    }
}

/// An error from building, sending or reading a request.
///
/// It has a [`kind`](Error::kind), the URL it concerns when there is one,
/// and keeps the underlying cause as its [`source`](StdError::source).
///
/// ```
/// # smol::block_on(async {
/// let err = smolreq::Client::new().get("ftp://example.test/").send().await.unwrap_err();
/// assert_eq!(err.kind(), smolreq::ErrorKind::Url);
/// # });
/// ```
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: Option<&'static str>,
    url: Option<Uri>,
    status: Option<StatusCode>,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: &'static str) -> Error {
        Error { inner: Box::new(Inner { kind, message: Some(message), url: None, status: None, source: None }) }
    }

    pub(crate) fn with_source(kind: ErrorKind, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Error {
        Error { inner: Box::new(Inner { kind, message: None, url: None, status: None, source: Some(source.into()) }) }
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

    pub(crate) fn with_url(mut self, url: &Uri) -> Error {
        if self.inner.url.is_none() {
            self.inner.url = Some(url.clone());
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

    /// The URL of the request that failed, when known.
    pub fn url(&self) -> Option<&Uri> {
        self.inner.url.as_ref()
    }

    /// True if this error is a timeout.
    pub fn is_timeout(&self) -> bool {
        self.inner.kind == ErrorKind::Timeout
    }

    /// Wraps this error in an `io::Error`, for `AsyncRead` implementations.
    pub(crate) fn into_io(self) -> io::Error {
        let kind = match self.inner.kind {
            ErrorKind::Timeout => io::ErrorKind::TimedOut,
            ErrorKind::Protocol | ErrorKind::Body => io::ErrorKind::InvalidData,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, self)
    }
}

impl From<ProtoError> for Error {
    fn from(err: ProtoError) -> Error {
        let kind = match err {
            ProtoError::InvalidRequest(_) => ErrorKind::Request,
            _ => ErrorKind::Protocol,
        };
        Error::with_source(kind, err)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind);
        if let Some(message) = self.inner.message {
            d.field("message", &message);
        }
        if let Some(url) = &self.inner.url {
            d.field("url", url);
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
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner.kind)?;
        if let Some(status) = self.inner.status {
            write!(f, " {status}")?;
        }
        if let Some(message) = self.inner.message {
            write!(f, ": {message}")?;
        }
        if let Some(source) = &self.inner.source {
            write!(f, ": {source}")?;
        }
        if let Some(url) = &self.inner.url {
            write!(f, " ({url})")?;
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

    #[test]
    fn io_timeout_round_trips_through_io_error() {
        let err = Error::timeout().into_io();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(Error::io(err).kind(), ErrorKind::Timeout);
    }

    #[test]
    fn display_names_kind_message_source_and_url() {
        let url: Uri = "http://h/p".parse().unwrap();
        let err = Error::from(ProtoError::InvalidStatus).with_url(&url);
        assert_eq!(err.to_string(), "protocol error: invalid status code (http://h/p)");
        assert!(err.source().is_some());
        assert_eq!(err.url(), Some(&url));
    }

    #[test]
    fn plain_io_error_is_io_kind() {
        let err = Error::io(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
        assert_eq!(err.kind(), ErrorKind::Io);
    }
}
