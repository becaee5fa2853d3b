//! Sending a request: its head, then its body framed as the head says,
//! while the connection watches for a response that comes first (see
//! [`Conn::send`]), and `Expect: 100-continue`.
//!
//! A server may answer before it has read the whole body: a `413`, a `401`
//! or a redirect, often followed by closing the connection. Such an answer
//! is read and returned as the response, writing stops, and since the
//! request is then incomplete on the wire the connection is never reused
//! ([`Written::Answered`]).

use std::time::{Duration, Instant};

use futures_lite::AsyncReadExt;
use http::header::{self, HeaderMap};

use crate::conn::{Conn, Written};
use crate::error::{Error, ErrorKind, Result};
use crate::proto::Limits;
use crate::proto::chunked::{CHUNK_END, LAST_CHUNK, encode_chunk_header};
use crate::proto::framing::any_value;
use crate::proto::head::RequestFraming;
use crate::request::RequestBody;

/// Bodies up to this size are written in the same syscall as the head.
const COALESCE_BODY: usize = 16 * 1024;

/// How long to wait for `100 Continue` before sending the body, if the
/// request asks for one (`Expect: 100-continue`) and has a body to hold
/// back; `None` when there is nothing to wait for.
pub(crate) fn continue_wait(headers: &HeaderMap, framing: RequestFraming, wait: Duration) -> Option<Duration> {
    let has_body = match framing {
        RequestFraming::Length(n) => n > 0,
        RequestFraming::Chunked => true,
        RequestFraming::None => false,
    };
    let expects = |headers| any_value(headers, &header::EXPECT, &mut |v| v.eq_ignore_ascii_case(b"100-continue"));
    (has_body && expects(headers)).then_some(wait)
}

/// Writes the request whose head is in `conn.write_buf`, then its body.
///
/// With `expect_continue`, the head goes out alone and the body follows a
/// `100 Continue` or the end of that wait; a final response instead means
/// the body is never sent. `deadline` is checked between body chunks, so a
/// reader and a stream that are always ready cannot outlive it.
pub(crate) async fn send_request(
    conn: &mut Conn,
    body: &mut RequestBody,
    framing: RequestFraming,
    expect_continue: Option<Duration>,
    limits: &Limits,
    deadline: Option<Instant>,
) -> Result<Written> {
    if expect_continue.is_some() || matches!(body, RequestBody::Reader(..)) {
        // Boxed: these paths are rare next to a plain request, and inline
        // they would size every request future.
        return Box::pin(send_apart(conn, body, framing, expect_continue, limits, deadline)).await;
    }
    let extra: &[u8] = match body {
        RequestBody::Bytes(bytes) if bytes.len() > COALESCE_BODY => bytes,
        RequestBody::Bytes(bytes) => {
            conn.write_buf.extend_from_slice(bytes);
            &[]
        }
        RequestBody::Empty | RequestBody::Reader(..) => &[],
    };
    conn.send(extra, limits).await
}

/// A request whose body goes out apart from its head: held back until
/// `100 Continue`, or read piece by piece from a reader.
async fn send_apart(
    conn: &mut Conn,
    body: &mut RequestBody,
    framing: RequestFraming,
    expect_continue: Option<Duration>,
    limits: &Limits,
    deadline: Option<Instant>,
) -> Result<Written> {
    // One send per piece, whatever the body, so the send is written once:
    // the head (alone when it waits for `100 Continue`), a buffered body,
    // then each piece of a reader.
    let (body_bytes, mut reader): (&[u8], _) = match body {
        RequestBody::Empty => (&[], None),
        RequestBody::Bytes(bytes) => (bytes, None),
        RequestBody::Reader(reader, _) => (&[], Some(reader)),
    };
    let mut continue_wait = expect_continue;
    let mut extra = if continue_wait.is_some() { &[] } else { body_bytes };
    // The head's framing, not the reader, decides: a Content-Length set by
    // the caller frames a reader of unknown length, and the body must match
    // it (never chunked under a Content-Length). `left` is what that length
    // still allows (`None`: chunked). A sized reader is never asked for more
    // than what is left: one that yields `len` bytes and then waits (a pipe,
    // a socket) must not stall the request.
    let mut left = match framing {
        RequestFraming::Length(len) => Some(len),
        RequestFraming::Chunked | RequestFraming::None => None,
    };
    let piece = |left: Option<u64>| {
        left.map_or(COALESCE_BODY, |left| usize::try_from(left).map_or(COALESCE_BODY, |left| left.min(COALESCE_BODY)))
    };
    let mut chunk = vec![0u8; if reader.is_some() { piece(left) } else { 0 }];
    loop {
        if conn.send(extra, limits).await? == Written::Answered {
            return Ok(Written::Answered);
        }
        if let Some(wait) = continue_wait.take() {
            if conn.await_continue(wait, limits).await? == Written::Answered {
                return Ok(Written::Answered);
            }
            conn.write_buf.clear();
            extra = body_bytes;
            continue;
        }
        let Some(body_reader) = reader.as_mut().filter(|_| left != Some(0)) else {
            return Ok(Written::All);
        };
        check_deadline(deadline)?;
        let n = read_some(body_reader, &mut chunk[..piece(left)]).await?;
        // Each piece is flushed: a buffering custom stream must not hold
        // the end of the body back.
        conn.write_buf.clear();
        extra = &[];
        match &mut left {
            Some(_) if n == 0 => {
                return Err(Error::new(ErrorKind::Body, "request body shorter than its declared length"));
            }
            Some(left) => {
                *left -= n as u64;
                extra = &chunk[..n];
            }
            None if n == 0 => {
                conn.write_buf.extend_from_slice(LAST_CHUNK);
                reader = None;
            }
            None => {
                encode_chunk_header(n, &mut conn.write_buf);
                conn.write_buf.extend_from_slice(&chunk[..n]);
                conn.write_buf.extend_from_slice(CHUNK_END);
            }
        }
    }
}

type Reader = Box<dyn futures_io::AsyncRead + Send + Unpin + 'static>;

/// One read of the caller's body reader into `buf`.
async fn read_some(reader: &mut Reader, buf: &mut [u8]) -> Result<usize> {
    let n = reader.read(buf).await.map_err(|e| Error::with_source(ErrorKind::Body, e))?;
    if n > buf.len() {
        return Err(Error::new(ErrorKind::Body, "request body reader returned more bytes than asked for"));
    }
    Ok(n)
}

/// Fails with a timeout once `deadline` has passed. The caller's deadline
/// future only fires when the upload waits; this catches one that never
/// has to.
fn check_deadline(deadline: Option<Instant>) -> Result<()> {
    match deadline {
        Some(deadline) if Instant::now() >= deadline => Err(Error::timeout()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, mpsc};
    use std::task::{Context, Poll};

    use futures_io::{AsyncRead, AsyncWrite};

    use crate::{Client, ErrorKind};

    /// A connection that takes every write at once and answers with
    /// `response` (never, when it is empty: reads stay pending).
    struct Endpoint {
        response: &'static [u8],
        written: Arc<AtomicUsize>,
    }

    impl AsyncRead for Endpoint {
        fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
            if self.response.is_empty() {
                return Poll::Pending;
            }
            let n = self.response.len().min(buf.len());
            buf[..n].copy_from_slice(&self.response[..n]);
            self.response = &self.response[n..];
            Poll::Ready(Ok(n))
        }
    }

    impl AsyncWrite for Endpoint {
        fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.written.fetch_add(buf.len(), Ordering::Relaxed);
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn client(response: &'static [u8], written: &Arc<AtomicUsize>) -> Client {
        let written = written.clone();
        Client::builder()
            .connector(move |_| {
                let stream = Endpoint { response, written: written.clone() };
                async move { Ok(stream) }
            })
            .build()
            .unwrap()
    }

    /// Runs `f` on its own thread; panics if it has not finished within
    /// 10 s (a hang). A hung `f` keeps its thread until the process ends.
    fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(std::time::Duration::from_secs(10)).expect("did not finish within 10 s")
    }

    /// Yields `len` bytes, then stays pending forever, like a pipe whose
    /// writer keeps it open.
    struct ThenPending {
        left: usize,
        asked_past_end: Arc<AtomicBool>,
    }

    impl AsyncRead for ThenPending {
        fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
            if self.left == 0 {
                self.asked_past_end.store(true, Ordering::SeqCst);
                return Poll::Pending;
            }
            let n = self.left.min(buf.len());
            buf[..n].fill(b'p');
            self.left -= n;
            Poll::Ready(Ok(n))
        }
    }

    #[test]
    fn sized_reader_is_not_read_past_its_length() {
        for len in [1, 5, 16 * 1024, 16 * 1024 + 1, 100_000] {
            let asked_past_end = Arc::new(AtomicBool::new(false));
            let written = Arc::new(AtomicUsize::new(0));
            let client = client(b"HTTP/1.1 204 No Content\r\n\r\n", &written);
            let reader = ThenPending { left: len, asked_past_end: asked_past_end.clone() };
            let result = bounded(move || {
                async_io::block_on(
                    client
                        .put("http://h/")
                        .body_reader(reader, Some(len as u64))
                        .timeout(std::time::Duration::from_secs(5))
                        .send(),
                )
                .map(|resp| resp.status())
            });
            assert_eq!(result.unwrap().as_u16(), 204, "len {len}");
            assert!(!asked_past_end.load(Ordering::SeqCst), "len {len}: the reader was asked for more");
            assert!(written.load(Ordering::Relaxed) > len, "len {len}: the body was written");
        }
    }

    /// Everything is always ready: the reader, and a connection that
    /// takes every write and never answers. Only the deadline check in
    /// the upload loop can end it.
    fn endless_upload(len: Option<u64>) {
        let written = Arc::new(AtomicUsize::new(0));
        let client = client(b"", &written);
        let result = bounded(move || {
            async_io::block_on(
                client
                    .post("http://h/")
                    .body_reader(futures_lite::io::repeat(b'x'), len)
                    .timeout(std::time::Duration::from_millis(100))
                    .send(),
            )
            .map(drop)
        });
        assert_eq!(result.unwrap_err().kind(), ErrorKind::Timeout);
        assert!(written.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn endless_chunked_upload_times_out() {
        endless_upload(None);
    }

    #[test]
    fn endless_sized_upload_times_out() {
        endless_upload(Some(u64::MAX));
    }

    #[test]
    fn continue_wait_only_with_the_header_and_a_body() {
        use super::{RequestFraming, continue_wait};
        let wait = std::time::Duration::from_secs(1);
        let mut expect = http::HeaderMap::new();
        expect.insert(http::header::EXPECT, http::HeaderValue::from_static("100-Continue"));
        assert_eq!(continue_wait(&expect, RequestFraming::Length(1), wait), Some(wait));
        assert_eq!(continue_wait(&expect, RequestFraming::Chunked, wait), Some(wait));
        assert_eq!(continue_wait(&expect, RequestFraming::Length(0), wait), None);
        assert_eq!(continue_wait(&expect, RequestFraming::None, wait), None);
        assert_eq!(continue_wait(&http::HeaderMap::new(), RequestFraming::Length(1), wait), None);
    }
}
