//! Sending a request: its head, then its body framed as the head says,
//! while the connection watches for a response that comes first (see
//! [`Conn::write_watching`]), and `Expect: 100-continue`.
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
    let expects = |headers: &HeaderMap| {
        headers.get_all(header::EXPECT).iter().any(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
    };
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
    if let Some(wait) = expect_continue {
        if conn.send(&[], limits).await? == Written::Answered
            || conn.await_continue(wait, limits).await? == Written::Answered
        {
            return Ok(Written::Answered);
        }
        conn.write_buf.clear();
    }
    match body {
        RequestBody::Empty => conn.send(&[], limits).await,
        RequestBody::Bytes(bytes) if bytes.len() <= COALESCE_BODY => {
            conn.write_buf.extend_from_slice(bytes);
            conn.send(&[], limits).await
        }
        RequestBody::Bytes(bytes) => conn.send(bytes, limits).await,
        RequestBody::Reader(reader, _) => {
            if conn.send(&[], limits).await? == Written::Answered {
                return Ok(Written::Answered);
            }
            // The head's framing, not the reader, decides: a Content-Length
            // set by the caller frames a reader of unknown length, and the
            // body must match it (never chunked under a Content-Length).
            match framing {
                RequestFraming::Length(len) => write_sized(conn, reader, len, limits, deadline).await,
                RequestFraming::Chunked | RequestFraming::None => write_chunked(conn, reader, limits, deadline).await,
            }
        }
    }
}

type Reader = Box<dyn futures_io::AsyncRead + Send + Unpin + 'static>;

/// Writes exactly `len` bytes of `reader`. The reader is never asked for
/// more than what is left: one that yields `len` bytes and then waits (a
/// pipe, a socket) must not stall the request.
async fn write_sized(
    conn: &mut Conn,
    reader: &mut Reader,
    len: u64,
    limits: &Limits,
    deadline: Option<Instant>,
) -> Result<Written> {
    let mut chunk = vec![0u8; usize::try_from(len).map_or(COALESCE_BODY, |len| len.min(COALESCE_BODY))];
    let mut left = len;
    while left > 0 {
        check_deadline(deadline)?;
        let want = usize::try_from(left).map_or(chunk.len(), |left| left.min(chunk.len()));
        let n = read_some(reader, &mut chunk[..want]).await?;
        if n == 0 {
            return Err(Error::new(ErrorKind::Body, "request body shorter than its declared length"));
        }
        left -= n as u64;
        if conn.write_watching(&chunk[..n], limits).await? == Written::Answered {
            return Ok(Written::Answered);
        }
    }
    // Flush: a buffering custom stream must not hold the end of the body
    // back.
    conn.write_buf.clear();
    conn.send(&[], limits).await
}

/// Writes `reader` to its end as chunks, each flushed as it is read.
async fn write_chunked(
    conn: &mut Conn,
    reader: &mut Reader,
    limits: &Limits,
    deadline: Option<Instant>,
) -> Result<Written> {
    let mut chunk = vec![0u8; COALESCE_BODY];
    loop {
        check_deadline(deadline)?;
        let n = read_some(reader, &mut chunk).await?;
        conn.write_buf.clear();
        if n == 0 {
            conn.write_buf.extend_from_slice(LAST_CHUNK);
            return conn.send(&[], limits).await;
        }
        encode_chunk_header(n, &mut conn.write_buf);
        conn.write_buf.extend_from_slice(&chunk[..n]);
        conn.write_buf.extend_from_slice(CHUNK_END);
        if conn.send(&[], limits).await? == Written::Answered {
            return Ok(Written::Answered);
        }
    }
}

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
