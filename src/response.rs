//! A response and its body.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use async_io::Timer;
use bytes::Bytes;
use futures_io::AsyncRead;
use futures_lite::future::poll_fn;
use http::header::{self, HeaderMap};
use http::{StatusCode, Uri, Version};

use crate::conn::{BodyDecoder, Conn};
use crate::error::{Error, ErrorKind, Result};
use crate::pool::Lease;
use crate::proto::head::ResponseHead;

/// An HTTP response: status, headers, and a body still to be read.
///
/// The body holds the connection. Reading it to the end returns the
/// connection to the pool; dropping it earlier closes the connection.
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

    /// Reads the whole body.
    pub async fn bytes(mut self) -> Result<Vec<u8>> {
        let hint = self.body.remaining_hint();
        let url = self.url;
        self.body.read_all(hint).await.map_err(|e| e.with_url(&url))
    }

    /// Reads the whole body as text, decoded with the charset of the
    /// Content-Type header (UTF-8 when there is none). UTF-8, US-ASCII,
    /// ISO-8859-1 and windows-1252 are decoded; invalid UTF-8 sequences
    /// become U+FFFD. Any other charset is an [`ErrorKind::Body`] error.
    pub async fn text(self) -> Result<String> {
        let charset = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(charset_of)
            .map(str::to_ascii_lowercase);
        let url = self.url.clone();
        let bytes = self.bytes().await?;
        decode_text(bytes, charset.as_deref()).map_err(|e| e.with_url(&url))
    }

    /// Reads and discards what is left of a small body so the connection
    /// can be reused; a large or endless body is dropped instead.
    pub(crate) async fn discard(mut self, max: u64) {
        if self.body.remaining_hint().is_some_and(|n| n <= max) {
            let mut sink = [0u8; 1024];
            while let Ok(n) = poll_fn(|cx| Pin::new(&mut self.body).poll_read(cx, &mut sink)).await {
                if n == 0 {
                    break;
                }
            }
        }
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
/// exchange allows reuse). Dropping it before the end closes the connection.
/// A body that ends early, breaks its framing or outlives the request's
/// deadline yields an error, never a short success.
pub struct Body {
    lease: Option<Lease>,
    decoder: BodyDecoder,
    reusable: bool,
    keep_alive: Option<Duration>,
    deadline: Option<Instant>,
    timer: Option<Timer>,
    failed: bool,
}

impl Body {
    pub(crate) fn new(
        lease: Lease,
        decoder: BodyDecoder,
        reusable: bool,
        keep_alive: Option<Duration>,
        deadline: Option<Instant>,
    ) -> Body {
        let mut body = Body { lease: Some(lease), decoder, reusable, keep_alive, deadline, timer: None, failed: false };
        if body.decoder.is_done() {
            body.finish();
        }
        body
    }

    /// The clean end of the body: the one place a lease is released.
    fn finish(&mut self) {
        if let Some(lease) = self.lease.take()
            && self.reusable
        {
            lease.release(self.keep_alive);
        }
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

    async fn read_all(&mut self, hint: Option<u64>) -> Result<Vec<u8>> {
        // Trust a declared length for the first allocation only up to a
        // bound: a hostile Content-Length must not reserve gigabytes.
        const MAX_PREALLOC: u64 = 16 << 20;
        // Without a length, what the connection already holds bounds the
        // decoded bytes that are here; beyond it the vector doubles.
        let buffered = self.lease.as_mut().map_or(0, |lease| lease.conn().buffered());
        let capacity = match hint {
            Some(n) => usize::try_from(n.min(MAX_PREALLOC)).unwrap_or(0),
            None => buffered.max(1024),
        };
        let mut out = Vec::with_capacity(capacity);
        // Appends straight into spare capacity: nothing is zeroed first.
        while poll_fn(|cx| self.poll_with(cx, |conn, cx, decoder| conn.poll_body_append(cx, decoder, &mut out)))
            .await
            .map_err(Error::io)?
            > 0
        {}
        Ok(out)
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
    fn unknown_charset_is_an_error() {
        assert_eq!(decode_text(vec![], Some("shift_jis")).unwrap_err().kind(), ErrorKind::Body);
    }
}
