//! A response and its body.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use async_io::Timer;
use bytes::Bytes;
use futures_io::AsyncRead;
use futures_lite::future::poll_fn;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Uri, Version};

use crate::conn::{BodyDecoder, Conn};
use crate::error::{Error, ErrorKind, Result};
use crate::pool::Lease;
use crate::proto::head::ResponseHead;

/// An HTTP response: status, headers, and a body still to be read.
///
/// The body holds the connection. Reading it to the end returns the
/// connection to the pool. Dropping it earlier keeps the connection only
/// when the rest of the body has already arrived (see [`Body`]); to wait
/// for the rest and keep the connection, use [`discard`](Self::discard).
///
/// A `Response` is `Send + Sync`: a task on a multi-threaded executor may
/// hold `&Response` across an `.await`.
///
/// ```no_run
/// # smol::block_on(async {
/// let resp = smolreq::Client::new().get("http://127.0.0.1:8080/").send().await?;
/// println!("{} {:?}", resp.status(), resp.headers().get("content-type"));
/// let text = resp.text().await?;
/// # Ok::<(), smolreq::Error>(()) });
/// ```
pub struct Response {
    status: StatusCode,
    version: Version,
    reason: Bytes,
    headers: HeaderMap,
    raw_head: Bytes,
    url: Uri,
    body: Body,
}

impl Response {
    pub(crate) fn new(head: ResponseHead, url: Uri, body: Body) -> Self {
        let ResponseHead { version, status, reason, headers, raw } = head;
        Response { status, version, reason, headers, raw_head: raw, url, body }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The HTTP version the server answered with.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The reason phrase exactly as the server sent it (may be empty; bytes
    /// that are not valid UTF-8 make it empty).
    pub fn reason(&self) -> &str {
        std::str::from_utf8(&self.reason).unwrap_or("")
    }

    /// The header fields.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The response head exactly as the server sent it: status line, header
    /// fields in their order and spelling, and the empty line. Interim 1xx
    /// responses are not included. For logging and tools such as `curl -i`;
    /// it shares memory with [`headers`](Self::headers), so it costs nothing.
    pub fn raw_head(&self) -> &[u8] {
        &self.raw_head
    }

    /// The URL this response came from (after redirects).
    pub fn url(&self) -> &Uri {
        &self.url
    }

    /// The body, for reading it as an `AsyncRead`.
    pub fn body_mut(&mut self) -> &mut Body {
        &mut self.body
    }

    /// Takes the body out of the response.
    pub fn into_body(self) -> Body {
        self.body
    }

    /// Converts into an `http::Response` whose body is this response's body.
    pub fn into_http(self) -> http::Response<Body> {
        let mut builder = http::Response::builder().status(self.status).version(self.version);
        if let Some(headers) = builder.headers_mut() {
            *headers = self.headers;
        }
        builder.body(self.body).unwrap_or_else(|_| unreachable!("status and version come from a valid response"))
    }

    /// The length of the body, from its framing: the Content-Length of a
    /// response that has one, `None` for a chunked body or one that ends
    /// with the connection.
    ///
    /// A response that has no body by definition (to a HEAD request, a
    /// 204, a 304) says `Some(0)`, as reqwest's `content_length` does: it
    /// is the length of this response's body, not of the resource. The
    /// Content-Length a server sends with a HEAD response (the length a
    /// GET would have) is in [`headers`](Self::headers).
    ///
    /// ```
    /// # use std::io::{Read, Write};
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}/", listener.local_addr()?);
    /// # std::thread::spawn(move || {
    /// #     let (mut s, _) = listener.accept().unwrap();
    /// #     let _ = s.read(&mut [0u8; 1024]);
    /// #     s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello").unwrap();
    /// # });
    /// # smol::block_on(async {
    /// let resp = smolreq::Client::new().get(&url).send().await?;
    /// assert_eq!(resp.content_length(), Some(5));
    /// # Ok::<(), smolreq::Error>(()) })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn content_length(&self) -> Option<u64> {
        self.body.content_length
    }

    /// The address of the server this response came over: the peer of the
    /// TCP connection (under TLS too). `None` when the connection came
    /// from a [custom connector](crate::ClientBuilder::connector).
    ///
    /// ```
    /// # use std::io::{Read, Write};
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// # std::thread::spawn(move || {
    /// #     let (mut s, _) = listener.accept().unwrap();
    /// #     let _ = s.read(&mut [0u8; 1024]);
    /// #     s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
    /// # });
    /// # smol::block_on(async {
    /// let resp = smolreq::Client::new().get(format!("http://{addr}/")).send().await?;
    /// assert_eq!(resp.remote_addr(), Some(addr));
    /// # Ok::<(), smolreq::Error>(()) })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.body.remote_addr
    }

    /// The trailer fields of a chunked body, once it has been read to its
    /// end (see [`Body::trailers`]).
    pub fn trailers(&self) -> Option<&HeaderMap> {
        self.body.trailers()
    }

    /// Turns an error status (400 and above) into an
    /// [`ErrorKind::Status`] error, carrying the status
    /// ([`Error::status`]) and the URL; any other response comes back
    /// unchanged.
    ///
    /// The response is dropped with the error, and its body with it: as
    /// any dropped body, it keeps its connection when the rest of it has
    /// already arrived (see [`Body`]), so a small error page does not cost
    /// the connection.
    ///
    /// ```
    /// # use std::io::{Read, Write};
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}/missing", listener.local_addr()?);
    /// # std::thread::spawn(move || {
    /// #     let (mut s, _) = listener.accept().unwrap();
    /// #     let _ = s.read(&mut [0u8; 1024]);
    /// #     s.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n\r\nnot found").unwrap();
    /// # });
    /// # smol::block_on(async {
    /// let err = smolreq::Client::new().get(&url).send().await?.error_for_status().unwrap_err();
    /// assert_eq!(err.kind(), smolreq::ErrorKind::Status);
    /// assert_eq!(err.status(), Some(smolreq::StatusCode::NOT_FOUND));
    /// assert_eq!(err.url().map(|u| u.path()), Some("/missing"));
    /// # Ok::<(), smolreq::Error>(()) })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn error_for_status(self) -> Result<Response> {
        match self.status_error() {
            Some(err) => Err(err),
            None => Ok(self),
        }
    }

    /// Like [`error_for_status`](Self::error_for_status), but borrows the
    /// response, which stays usable (to read the error page, say).
    pub fn error_for_status_ref(&self) -> Result<&Response> {
        match self.status_error() {
            Some(err) => Err(err),
            None => Ok(self),
        }
    }

    fn status_error(&self) -> Option<Error> {
        (self.status.as_u16() >= 400).then(|| Error::status_error(self.status, &self.url))
    }

    /// Reads the whole body, at most
    /// [`max_body_size`](crate::ClientBuilder::max_body_size) bytes of it
    /// (64 MiB by default; past it, an [`ErrorKind::Body`] error and the
    /// connection is closed).
    ///
    /// ```
    /// # use std::io::{Read, Write};
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}/", listener.local_addr()?);
    /// # std::thread::spawn(move || {
    /// #     let (mut s, _) = listener.accept().unwrap();
    /// #     let _ = s.read(&mut [0u8; 1024]);
    /// #     s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello").unwrap();
    /// # });
    /// # smol::block_on(async {
    /// let body: bytes::Bytes = smolreq::Client::new().get(&url).send().await?.bytes().await?;
    /// assert_eq!(body, "hello");
    /// # Ok::<(), smolreq::Error>(()) })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn bytes(mut self) -> Result<Bytes> {
        let url = self.url;
        // A vector read to its exact capacity (a Content-Length body)
        // becomes `Bytes` without another allocation.
        self.body.read_all().await.map(Bytes::from).map_err(|e| e.with_url(&url))
    }

    /// Reads the whole body and deserializes it from JSON, at most
    /// [`max_body_size`](crate::ClientBuilder::max_body_size) bytes of it
    /// as [`bytes`](Self::bytes). Invalid JSON, or JSON that does not fit
    /// `T`, is an [`ErrorKind::Decode`] error whose source is serde's
    /// error, with the line and column. The Content-Type is not checked.
    ///
    /// Needs the `json` feature.
    ///
    /// ```
    /// # use std::io::{Read, Write};
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}/", listener.local_addr()?);
    /// # std::thread::spawn(move || {
    /// #     let (mut s, _) = listener.accept().unwrap();
    /// #     let _ = s.read(&mut [0u8; 1024]);
    /// #     s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 16\r\n\r\n{\"a\": 1, \"b\": 2}").unwrap();
    /// # });
    /// # smol::block_on(async {
    /// use std::collections::BTreeMap;
    /// let map: BTreeMap<String, u32> = smolreq::Client::new().get(&url).send().await?.json().await?;
    /// assert_eq!(map["b"], 2);
    /// # Ok::<(), smolreq::Error>(()) })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "json")]
    pub async fn json<T: serde::de::DeserializeOwned>(mut self) -> Result<T> {
        let url = self.url;
        let body = self.body.read_all().await.map_err(|e| e.with_url(&url))?;
        serde_json::from_slice(&body).map_err(|e| Error::with_source(ErrorKind::Decode, e).with_url(&url))
    }

    /// Reads the next piece of the body: `Ok(None)` at its end. A piece is
    /// what has arrived (at most one chunk's data of a chunked body),
    /// copied once out of the connection's buffer; not bounded by
    /// [`max_body_size`](crate::ClientBuilder::max_body_size). Errors as
    /// for any body read (see [`Body`]).
    ///
    /// ```
    /// # use std::io::{Read, Write};
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}/", listener.local_addr()?);
    /// # std::thread::spawn(move || {
    /// #     let (mut s, _) = listener.accept().unwrap();
    /// #     let _ = s.read(&mut [0u8; 1024]);
    /// #     s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n").unwrap();
    /// # });
    /// # smol::block_on(async {
    /// let mut resp = smolreq::Client::new().get(&url).send().await?;
    /// let mut total = 0;
    /// while let Some(piece) = resp.chunk().await? {
    ///     total += piece.len();
    /// }
    /// assert_eq!(total, 5);
    /// # Ok::<(), smolreq::Error>(()) })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        let url = &self.url;
        self.body.chunk().await.map_err(|e| e.with_url(url))
    }

    /// The body as a [`Stream`](futures_core::Stream) of pieces, as
    /// [`chunk`](Self::chunk) reads them; not bounded by
    /// [`max_body_size`](crate::ClientBuilder::max_body_size).
    ///
    /// ```
    /// # use std::io::{Read, Write};
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}/", listener.local_addr()?);
    /// # std::thread::spawn(move || {
    /// #     let (mut s, _) = listener.accept().unwrap();
    /// #     let _ = s.read(&mut [0u8; 1024]);
    /// #     s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello").unwrap();
    /// # });
    /// # smol::block_on(async {
    /// use futures_lite::StreamExt;
    /// let mut stream = smolreq::Client::new().get(&url).send().await?.bytes_stream();
    /// let mut body = Vec::new();
    /// while let Some(piece) = stream.next().await {
    ///     body.extend_from_slice(&piece?);
    /// }
    /// assert_eq!(body, b"hello");
    /// # Ok::<(), smolreq::Error>(()) })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bytes_stream(self) -> BytesStream {
        BytesStream { body: self.body, url: self.url, done: false }
    }

    /// Reads the whole body as text, decoded with the charset of the
    /// Content-Type header (UTF-8 when there is none). UTF-8, US-ASCII,
    /// ISO-8859-1 and windows-1252 are decoded; invalid UTF-8 sequences
    /// become U+FFFD. Any other charset is an [`ErrorKind::Body`] error.
    /// At most [`max_body_size`](crate::ClientBuilder::max_body_size)
    /// bytes are read, as by [`bytes`](Self::bytes).
    ///
    /// ```
    /// # use std::io::{Read, Write};
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}/", listener.local_addr()?);
    /// # std::thread::spawn(move || {
    /// #     let (mut s, _) = listener.accept().unwrap();
    /// #     let _ = s.read(&mut [0u8; 1024]);
    /// #     s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=iso-8859-1\r\ncontent-length: 4\r\n\r\ncaf\xe9").unwrap();
    /// # });
    /// # smol::block_on(async {
    /// let text = smolreq::Client::new().get(&url).send().await?.text().await?;
    /// assert_eq!(text, "café"); // decoded from ISO-8859-1
    /// # Ok::<(), smolreq::Error>(()) })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn text(mut self) -> Result<String> {
        let charset = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(charset_of)
            .map(str::to_ascii_lowercase);
        let url = self.url;
        let result = self.body.read_all().await;
        result.and_then(|bytes| decode_text(bytes, charset.as_deref())).map_err(|e| e.with_url(&url))
    }

    /// Reads and drops the rest of the body, at most `limit` bytes of it,
    /// so that the connection can carry the next request: for a program
    /// that does not want the body but wants its connection back.
    ///
    /// `Ok(())` means the body was read to its end and the connection went
    /// back to the pool, or that the exchange does not allow reuse (the
    /// server said `Connection: close`, or the body ends with the
    /// connection): then nothing is read and the connection is closed at
    /// once. A body with more than `limit` bytes left is an
    /// [`ErrorKind::Body`] error and its connection is closed, without
    /// reading further when a Content-Length already says so; an I/O
    /// error, broken framing or the request's deadline are errors as
    /// while reading. `limit` counts body bytes (after chunked framing is
    /// removed); the deadline bounds the wait.
    ///
    /// Dropping a response does the same without waiting: it keeps the
    /// connection only if the rest of the body has already arrived (see
    /// [`ClientBuilder::max_drain_on_drop`](crate::ClientBuilder::max_drain_on_drop)).
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// let client = smolreq::Client::new();
    /// let resp = client.get("http://127.0.0.1:8080/ping").send().await?;
    /// if resp.status().is_success() {
    ///     // Only the status matters; give the connection back.
    ///     resp.discard(64 * 1024).await?;
    /// }
    /// assert_eq!(client.pool_stats().leased, 0);
    /// # Ok::<(), smolreq::Error>(()) });
    /// ```
    pub async fn discard(self, limit: u64) -> Result<()> {
        let url = self.url;
        self.body.discard(limit).await.map_err(|e| e.with_url(&url))
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("url", &self.url)
            .field("status", &self.status)
            .field("version", &self.version)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl AsyncRead for Response {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.body).poll_read(cx, buf)
    }
}

/// A response body: an `AsyncRead` over the decoded bytes.
///
/// Reading it to its end releases the connection back to the pool (when the
/// exchange allows reuse). A body that ends early, breaks its framing or
/// outlives the request's deadline yields an error, never a short success.
///
/// **Dropped before its end**, a body finishes itself from what is already
/// there, without waiting: the bytes already buffered, then reads of the
/// socket for as long as they return bytes at once, at most
/// [`max_drain_on_drop`](crate::ClientBuilder::max_drain_on_drop) body
/// bytes (64 KiB by default). If that reaches the clean end of a reusable
/// exchange, the connection goes back to the pool; otherwise (the rest has
/// not arrived, is larger than the bound, the framing breaks, bytes follow
/// the end, or the body ends with the connection) the connection is closed.
/// No task is spawned and nothing blocks. To wait for the rest instead,
/// use [`discard`](Self::discard).
///
/// **Deadline.** The request's deadline is checked on every read, not only
/// when a read has to wait, so a stream that is always ready (an endless
/// body, an in-memory connection) cannot outrun it. Past the deadline, a
/// read still returns body bytes that were already received (an answer
/// that arrived in time wins over a task that was polled late), but it
/// never reads the connection again: it fails with
/// [`ErrorKind::Timeout`], at the latest once those bytes are used up.
///
/// **Trailers** of a chunked body are kept: [`trailers`](Self::trailers)
/// returns them once the body has been read to its end.
pub struct Body {
    lease: Option<Lease>,
    decoder: BodyDecoder,
    reusable: bool,
    keep_alive: Option<Duration>,
    deadline: Option<Instant>,
    timer: Option<Timer>,
    failed: bool,
    /// Most body bytes read and dropped to finish a body dropped early.
    max_drain: u64,
    /// Most body bytes `Response::bytes`, `text` and `json` collect.
    max_body: Option<u64>,
    /// The body's length from its framing, when it has one.
    content_length: Option<u64>,
    /// The peer of the connection, for a TCP connection.
    remote_addr: Option<SocketAddr>,
    /// The trailer fields of a chunked body read to its end, if it had any.
    trailers: Option<Box<HeaderMap>>,
}

/// Room for the bytes read and dropped while draining a body (on the
/// stack in `Drop`, once on the heap per [`Body::discard`]).
const DRAIN_SCRATCH: usize = 8 * 1024;

impl Body {
    pub(crate) fn new(
        lease: Lease,
        decoder: BodyDecoder,
        reusable: bool,
        keep_alive: Option<Duration>,
        deadline: Option<Instant>,
        max_drain: u64,
    ) -> Body {
        let mut lease = lease;
        let remote_addr = lease.conn().peer_addr();
        let content_length = match decoder {
            BodyDecoder::Done => Some(0),
            BodyDecoder::Length(n) => Some(n),
            BodyDecoder::Chunked(_) | BodyDecoder::Close => None,
        };
        let mut body = Body {
            lease: Some(lease),
            decoder,
            reusable,
            keep_alive,
            deadline,
            timer: None,
            failed: false,
            max_drain,
            max_body: None,
            content_length,
            remote_addr,
            trailers: None,
        };
        if body.decoder.is_done() {
            body.finish();
        }
        body
    }

    /// Sets the bound of [`ClientBuilder::max_body_size`](crate::ClientBuilder::max_body_size)
    /// on what `Response::bytes`, `text` and `json` collect (none until set).
    pub(crate) fn with_max_body_size(mut self, max: Option<u64>) -> Body {
        self.max_body = max;
        self
    }

    /// The clean end of the body: the one place a lease is released.
    fn finish(&mut self) {
        if let Some(mut lease) = self.lease.take() {
            let raw = lease.conn().take_trailers();
            if !raw.is_empty() {
                self.trailers = Some(Box::new(parse_trailers(&raw)));
            }
            if self.reusable {
                lease.release(self.keep_alive);
            }
        }
    }

    /// The trailer fields of a chunked body, once the body has been read
    /// to its end; `None` before that, and for a body that had none (not
    /// chunked, or an empty trailer section). Trailer fields are never
    /// merged into the response's headers. Their total size is bounded by
    /// [`max_trailer_size`](crate::ClientBuilder::max_trailer_size).
    ///
    /// ```
    /// # use std::io::{Read, Write};
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let url = format!("http://{}/", listener.local_addr()?);
    /// # std::thread::spawn(move || {
    /// #     let (mut s, _) = listener.accept().unwrap();
    /// #     let _ = s.read(&mut [0u8; 1024]);
    /// #     s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nx-checksum: 5d41\r\n\r\n").unwrap();
    /// # });
    /// # smol::block_on(async {
    /// use futures_lite::AsyncReadExt;
    /// let mut body = smolreq::Client::new().get(&url).send().await?.into_body();
    /// let mut text = String::new();
    /// body.read_to_string(&mut text).await?;
    /// assert_eq!(body.trailers().unwrap()["x-checksum"], "5d41");
    /// # Ok::<(), Box<dyn std::error::Error>>(()) })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trailers(&self) -> Option<&HeaderMap> {
        self.trailers.as_deref()
    }

    /// Reads the next piece of the body; see [`Response::chunk`].
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        poll_fn(|cx| self.poll_chunk(cx)).await
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>>> {
        // Allocated only once bytes are here, to the piece's size, so a
        // poll that has to wait costs nothing and the vector becomes
        // `Bytes` without another allocation.
        let mut piece = Vec::new();
        let n = ready!(self.poll_with(cx, |conn, cx, decoder| conn.poll_body_piece(cx, decoder, &mut piece)))
            .map_err(Error::io)?;
        Poll::Ready(Ok((n > 0).then(|| Bytes::from(piece))))
    }

    fn fail(&mut self, err: Error) -> io::Error {
        self.failed = true;
        self.lease = None; // closes the connection
        err.into_io()
    }

    /// Bytes still expected, when the framing says.
    fn remaining_hint(&self) -> Option<u64> {
        match self.decoder {
            BodyDecoder::Done => Some(0),
            BodyDecoder::Length(n) => Some(n),
            _ => None,
        }
    }

    /// Reads the whole body, at most `max_body` bytes of it.
    async fn read_all(&mut self) -> Result<Vec<u8>> {
        // Trust a declared length for the first allocation only up to a
        // bound: a hostile Content-Length must not reserve gigabytes.
        const MAX_PREALLOC: u64 = 16 << 20;
        let hint = self.remaining_hint();
        if let (Some(max), Some(len)) = (self.max_body, hint)
            && len > max
        {
            return Err(self.too_large()); // fails before reading a byte
        }
        // One byte more than the bound shows a body that goes past it.
        let limit =
            self.max_body.map_or(usize::MAX, |max| usize::try_from(max).map_or(usize::MAX, |m| m.saturating_add(1)));
        // Without a length, what the connection already holds bounds the
        // decoded bytes that are here; beyond it the vector doubles.
        let (buffered, exact) = match self.lease.as_mut() {
            Some(lease) => (lease.conn().buffered(), lease.conn().buffered_chunked_len(&self.decoder)),
            None => (0, None),
        };
        // A chunked body whose end is here is measured first: a vector of
        // its exact size becomes `Bytes` without another allocation.
        let capacity = match (hint, exact) {
            (Some(n), _) => usize::try_from(n.min(MAX_PREALLOC)).unwrap_or(0),
            (None, Some(len)) => len.min(limit),
            (None, None) => buffered.max(1024),
        };
        let mut out = Vec::with_capacity(capacity);
        // Appends straight into spare capacity: nothing is zeroed first.
        while poll_fn(|cx| {
            self.poll_with(cx, |conn, cx, decoder| conn.poll_body_append_max(cx, decoder, &mut out, limit))
        })
        .await
        .map_err(Error::io)?
            > 0
        {}
        if self.max_body.is_some_and(|max| out.len() as u64 > max) {
            return Err(self.too_large());
        }
        Ok(out)
    }

    /// A body past `max_body_size`: the connection is closed, unread.
    fn too_large(&mut self) -> Error {
        self.failed = true;
        self.lease = None; // closes the connection
        Error::new(ErrorKind::Body, "response body larger than max_body_size; the connection was closed")
    }

    /// Reads and drops the rest of the body, at most `limit` bytes; see
    /// [`Response::discard`].
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// let resp = smolreq::Client::new().get("http://127.0.0.1:8080/").send().await?;
    /// resp.into_body().discard(1 << 20).await?;
    /// # Ok::<(), smolreq::Error>(()) });
    /// ```
    pub async fn discard(mut self, limit: u64) -> Result<()> {
        if !self.reusable && !self.failed {
            self.lease = None; // nothing to save: close without reading
            return Ok(());
        }
        if matches!(self.decoder, BodyDecoder::Length(n) if n > limit) {
            self.lease = None; // no read can end this body within the limit
            return Err(too_long_to_discard());
        }
        let mut scratch = vec![0u8; DRAIN_SCRATCH.min(usize::try_from(limit).unwrap_or(usize::MAX).saturating_add(1))];
        let mut left = limit;
        loop {
            // One byte more than is left shows a body that goes past it.
            let room = scratch.len().min(usize::try_from(left).unwrap_or(usize::MAX).saturating_add(1));
            let sink = &mut scratch[..room];
            let n = poll_fn(|cx| self.poll_with(cx, |conn, cx, decoder| conn.poll_body(cx, decoder, sink)))
                .await
                .map_err(Error::io)?;
            if self.lease.is_none() {
                // The clean end (`poll_with` failed otherwise): the lease
                // was released, or closed if the exchange forbids reuse.
                return Ok(());
            }
            match left.checked_sub(n as u64) {
                Some(rest) => left = rest,
                None => {
                    self.lease = None; // closes the connection
                    return Err(too_long_to_discard());
                }
            }
        }
    }

    /// A body dropped before its end: finishes it from what is here without
    /// waiting (buffered bytes, and socket reads that return bytes at once,
    /// polled with a waker that does nothing), up to `max_drain` bytes. At
    /// its clean end the lease is released by [`finish`](Self::finish) as
    /// after any read; otherwise the lease drops with the body, which
    /// closes the connection.
    fn drain_on_drop(&mut self) {
        let hopeless = match self.decoder {
            BodyDecoder::Length(n) => n > self.max_drain,
            BodyDecoder::Chunked(_) => self.max_drain == 0,
            // A body that ends with its connection never leaves it reusable.
            BodyDecoder::Close | BodyDecoder::Done => true,
        };
        if hopeless || !self.reusable || self.failed {
            return;
        }
        let Some(lease) = self.lease.as_mut() else { return };
        let conn = lease.conn();
        let mut cx = Context::from_waker(Waker::noop());
        let mut scratch = [0u8; DRAIN_SCRATCH];
        let mut left = self.max_drain;
        loop {
            let room = scratch.len().min(usize::try_from(left).unwrap_or(usize::MAX).saturating_add(1));
            match conn.poll_body(&mut cx, &mut self.decoder, &mut scratch[..room]) {
                Poll::Ready(Ok(_)) if self.decoder.is_done() => {
                    self.finish();
                    return;
                }
                Poll::Ready(Ok(n)) if n > 0 && n as u64 <= left => left -= n as u64,
                // Past the bound, an error, or nothing more here now.
                _ => return,
            }
        }
    }

    /// Runs one read step of the body with `read`, then applies the rules
    /// every read shares: a clean end releases the lease, an error closes
    /// the connection for good, and waiting past the deadline is an error.
    fn poll_with(
        &mut self,
        cx: &mut Context<'_>,
        read: impl FnOnce(&mut Conn, &mut Context<'_>, &mut BodyDecoder) -> Poll<Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if self.failed {
            return Poll::Ready(Err(io::Error::other("response body already failed")));
        }
        let Some(lease) = self.lease.as_mut() else {
            return Poll::Ready(Ok(0)); // finished
        };
        // The deadline holds on every poll, also when reads never have to
        // wait. Bytes already received are still handed out (they arrived
        // in time), but past the deadline the connection is not read again.
        if let Some(deadline) = self.deadline
            && lease.conn().buffered() == 0
            && Instant::now() >= deadline
        {
            return Poll::Ready(Err(
                self.fail(Error::new(ErrorKind::Timeout, "deadline elapsed while reading the body"))
            ));
        }
        match read(lease.conn(), cx, &mut self.decoder) {
            Poll::Ready(Ok(n)) => {
                if self.decoder.is_done() {
                    self.finish();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(self.fail(err))),
            Poll::Pending => {
                let Some(deadline) = self.deadline else { return Poll::Pending };
                let timer = self.timer.get_or_insert_with(|| Timer::at(deadline));
                ready!(Pin::new(timer).poll(cx));
                Poll::Ready(Err(self.fail(Error::new(ErrorKind::Timeout, "deadline elapsed while reading the body"))))
            }
        }
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        // A body read to its end has given its lease up already: nothing to
        // do on the common path.
        if self.lease.is_some() && !std::thread::panicking() {
            self.drain_on_drop();
        }
    }
}

fn too_long_to_discard() -> Error {
    Error::new(ErrorKind::Body, "body longer than the discard limit; the connection was closed")
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body").field("decoder", &self.decoder).field("reusable", &self.reusable).finish_non_exhaustive()
    }
}

impl AsyncRead for Body {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.poll_with(cx, |conn, cx, decoder| conn.poll_body(cx, decoder, buf))
    }
}

/// A response body as a [`Stream`](futures_core::Stream) of `Bytes`, from
/// [`Response::bytes_stream`]. It ends after the last piece, or after the
/// first error.
pub struct BytesStream {
    body: Body,
    url: Uri,
    done: bool,
}

impl BytesStream {
    /// The trailer fields of a chunked body, once the stream has ended
    /// (see [`Body::trailers`]).
    pub fn trailers(&self) -> Option<&HeaderMap> {
        self.body.trailers()
    }
}

impl futures_core::Stream for BytesStream {
    type Item = Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let next = ready!(this.body.poll_chunk(cx)).map_err(|e| e.with_url(&this.url)).transpose();
        this.done = !matches!(next, Some(Ok(_)));
        Poll::Ready(next)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.body.remaining_hint() {
            Some(0) => (0, Some(0)),
            // At least one piece is left; each piece holds one byte or more.
            Some(n) => (1, usize::try_from(n).ok()),
            None => (0, None),
        }
    }
}

impl fmt::Debug for BytesStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BytesStream").field("url", &self.url).field("body", &self.body).finish()
    }
}

/// Trailer field lines (`name:value` and CRLF each, already checked by the
/// chunked decoder: a token name, no control byte but HTAB in the value)
/// as a header map.
fn parse_trailers(raw: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let value = line[colon + 1..].trim_ascii();
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(value)) {
            map.append(name, value);
        }
    }
    map
}

/// The `charset` parameter of a Content-Type value.
fn charset_of(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim().eq_ignore_ascii_case("charset").then(|| value.trim().trim_matches('"'))
    })
}

fn decode_text(bytes: Vec<u8>, charset: Option<&str>) -> Result<String> {
    match charset {
        None | Some("utf-8" | "utf8" | "us-ascii" | "ascii") => Ok(match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }),
        Some("iso-8859-1" | "latin1" | "latin-1" | "l1") => Ok(bytes.iter().map(|&b| char::from(b)).collect()),
        Some("windows-1252" | "cp1252") => Ok(bytes.iter().map(|&b| windows_1252(b)).collect()),
        Some(_) => {
            Err(Error::new(ErrorKind::Body, "unsupported charset (UTF-8, US-ASCII, ISO-8859-1, windows-1252 are)"))
        }
    }
}

fn windows_1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž', '\u{8f}', '\u{90}', '‘',
        '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}', 'ž', 'Ÿ',
    ];
    match b {
        0x80..=0x9f => HIGH[usize::from(b - 0x80)],
        _ => char::from(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charset_parameter_is_found() {
        assert_eq!(charset_of("text/html; charset=ISO-8859-1"), Some("ISO-8859-1"));
        assert_eq!(charset_of("text/html;CHARSET=\"utf-8\""), Some("utf-8"));
        assert_eq!(charset_of("text/html"), None);
    }

    #[test]
    fn latin1_and_windows_1252_decode() {
        assert_eq!(decode_text(vec![b'a', 0xe9], Some("iso-8859-1")).unwrap(), "aé");
        assert_eq!(decode_text(vec![0x80, 0x93], Some("windows-1252")).unwrap(), "€“");
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(decode_text(vec![b'a', 0xff], None).unwrap(), "a\u{fffd}");
    }

    #[test]
    fn trailer_lines_become_a_header_map() {
        let map = parse_trailers(b"X-Checksum: abc \r\nx-checksum:def\r\nExpires:\tnever\r\nX-Empty:\r\n");
        let checksums: Vec<_> = map.get_all("x-checksum").iter().collect();
        assert_eq!(checksums, ["abc", "def"]);
        assert_eq!(map["expires"], "never");
        assert_eq!(map["x-empty"], "");
        assert_eq!(map.len(), 4);
        assert!(parse_trailers(b"").is_empty());
    }

    #[test]
    fn unknown_charset_is_an_error() {
        assert_eq!(decode_text(vec![], Some("shift_jis")).unwrap_err().kind(), ErrorKind::Body);
    }
}
