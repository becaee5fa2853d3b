//! One connection: a stream, its reusable read buffer and its write buffer.
//!
//! A `Conn` performs one exchange at a time: the caller writes a request,
//! reads the response head with [`Conn::read_head`], then drains the body
//! with [`Conn::poll_body`]. Bytes are only ever taken from the buffer by
//! the framing of the current response, so bytes a server sends after a
//! response can never be mistaken for the next one.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use futures_io::{AsyncRead, AsyncWrite};
use futures_lite::future::poll_fn;

use crate::error::{Error, ErrorKind, Result};
use crate::proto::chunked::ChunkedDecoder;
use crate::proto::framing::Framing;
use crate::proto::head::{ResponseHead, build_response_head, may_be_complete, response_head_len};
use crate::proto::{Limits, ProtoError};
use crate::transport::Stream;

/// How many bytes the first read of a connection asks for: enough for a
/// typical head and small body, small enough that ten thousand idle
/// connections stay cheap.
const MIN_READ: usize = 4 * 1024;

/// The most one read asks for. A read that fills its whole request doubles
/// the next one, so a connection streaming a large body reads in large
/// steps (fewer syscalls) while one serving small responses stays small.
const MAX_READ: usize = 64 * 1024;

/// At most this many interim (1xx) responses are skipped before one final
/// response; a server that sends more is broken or hostile.
const MAX_INTERIM_RESPONSES: usize = 32;

/// A connection to one origin.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: Stream,
    /// Bytes received but not consumed yet. A response head is split off
    /// the front and frozen, so its header values share this allocation;
    /// once the caller drops them the buffer is reclaimed in place.
    ///
    /// `buf[..filled]` is unread data; `buf[filled..]` is initialized room
    /// for the next read (safe code can only read into initialized memory,
    /// so room is zeroed once when it is made, not before every read).
    buf: BytesMut,
    filled: usize,
    /// Room the buffer is given when it runs out, between `MIN_READ` and
    /// `MAX_READ`.
    read_size: usize,
    /// Reusable buffer for the request head (and small bodies).
    pub(crate) write_buf: Vec<u8>,
    /// Whether any byte of the current exchange's response has arrived.
    received_any: bool,
}

/// The state of a response body being read from a connection.
#[derive(Debug)]
pub(crate) enum BodyDecoder {
    /// A Content-Length body with this many bytes still to come.
    Length(u64),
    /// A chunked body.
    Chunked(ChunkedDecoder),
    /// A body that ends when the server closes the connection.
    Close,
    /// The body has been read to its end.
    Done,
}

impl BodyDecoder {
    pub(crate) fn new(framing: Framing, limits: &Limits) -> BodyDecoder {
        match framing {
            Framing::Empty | Framing::Length(0) => BodyDecoder::Done,
            Framing::Length(n) => BodyDecoder::Length(n),
            Framing::Chunked => {
                BodyDecoder::Chunked(ChunkedDecoder::new(limits.max_chunk_line, limits.max_trailer_size))
            }
            Framing::CloseDelimited => BodyDecoder::Close,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self, BodyDecoder::Done)
    }
}

impl Conn {
    pub(crate) fn new(stream: Stream) -> Conn {
        Conn {
            stream,
            buf: BytesMut::new(),
            filled: 0,
            read_size: MIN_READ,
            write_buf: Vec::new(),
            received_any: false,
        }
    }

    /// Starts a new exchange on this connection.
    pub(crate) fn begin_exchange(&mut self) {
        self.received_any = false;
        self.write_buf.clear();
    }

    /// True once any byte of the current response has been received. A
    /// request that failed before that may be retried (if safe).
    pub(crate) fn received_any(&self) -> bool {
        self.received_any
    }

    /// True if bytes beyond the consumed response are sitting in the buffer.
    pub(crate) fn has_unread_bytes(&self) -> bool {
        self.filled > 0
    }

    /// Checks an idle connection before reuse: nothing buffered, and the
    /// socket neither closed nor holding unsolicited bytes.
    pub(crate) fn is_reusable_idle(&mut self) -> bool {
        !self.has_unread_bytes() && self.stream.is_reusable_idle()
    }

    /// Writes `write_buf` and then `extra` (either may be empty).
    pub(crate) async fn write_request(&mut self, extra: &[u8]) -> io::Result<()> {
        write_all(&mut self.stream, &self.write_buf).await?;
        write_all(&mut self.stream, extra).await?;
        poll_fn(|cx| Pin::new(&mut self.stream).poll_flush(cx)).await
    }

    /// Writes `data` to the stream.
    pub(crate) async fn write_bytes(&mut self, data: &[u8]) -> io::Result<()> {
        write_all(&mut self.stream, data).await
    }

    /// Reads the final response head, skipping interim 1xx responses.
    pub(crate) async fn read_head(&mut self, limits: &Limits) -> Result<ResponseHead> {
        for _ in 0..=MAX_INTERIM_RESPONSES {
            let head = self.read_one_head(limits).await?;
            if head.status.as_u16() == 101 {
                return Err(ProtoError::InvalidHead("unexpected 101 Switching Protocols").into());
            }
            if !head.status.is_informational() {
                return Ok(head);
            }
        }
        Err(ProtoError::InvalidHead("too many interim (1xx) responses").into())
    }

    async fn read_one_head(&mut self, limits: &Limits) -> Result<ResponseHead> {
        let mut scanned = 0;
        let mut status_line_checked = false;
        loop {
            let available = &self.buf[..self.filled];
            // Parse when a blank line may have arrived, and once when the
            // status line is complete so garbage is rejected early.
            let first_line_done = !status_line_checked && available.contains(&b'\n');
            if first_line_done || may_be_complete(available, scanned) {
                status_line_checked = true;
                if let Some(len) = response_head_len(available, limits)? {
                    self.filled -= len;
                    return Ok(build_response_head(self.buf.split_to(len).freeze(), limits)?);
                }
            }
            scanned = available.len();
            if available.len() > limits.max_head_size {
                return Err(ProtoError::HeadTooLarge(limits.max_head_size).into());
            }
            let n = poll_fn(|cx| self.poll_fill(cx)).await.map_err(Error::io)?;
            if n == 0 {
                return Err(if self.received_any {
                    ProtoError::TruncatedHead.into()
                } else {
                    Error::new(ErrorKind::Io, "connection closed before any response byte")
                });
            }
        }
    }

    /// Reads once, appending to the unread bytes.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.len() - self.filled < MIN_READ / 4 {
            self.make_room();
        }
        let room = self.buf.len() - self.filled;
        let n = ready!(Pin::new(&mut self.stream).poll_read(cx, &mut self.buf[self.filled..]))?;
        self.filled += n;
        if n == room {
            self.read_size = (self.read_size * 2).min(MAX_READ);
        }
        if n > 0 {
            self.received_any = true;
        }
        Poll::Ready(Ok(n))
    }

    /// Gives the buffer `read_size` bytes of zeroed room after the unread
    /// bytes. `BytesMut` reuses its allocation when nothing else shares it
    /// (a response head split off earlier and since dropped), else it
    /// allocates.
    fn make_room(&mut self) {
        self.buf.truncate(self.filled);
        self.buf.reserve(self.read_size);
        self.buf.resize(self.buf.capacity(), 0);
    }

    /// Drops `n` unread bytes from the front.
    fn consume(&mut self, n: usize) {
        self.buf.advance(n);
        self.filled -= n;
    }

    /// Copies buffered bytes into `out`, at most `limit` of them.
    fn take_buffered(&mut self, out: &mut [u8], limit: usize) -> usize {
        let n = self.filled.min(out.len()).min(limit);
        out[..n].copy_from_slice(&self.buf[..n]);
        self.consume(n);
        n
    }

    /// Reads body bytes into `out` according to `decoder`. `Ok(0)` means the
    /// body is complete (or `out` is empty). A premature EOF is an error.
    pub(crate) fn poll_body(
        &mut self,
        cx: &mut Context<'_>,
        decoder: &mut BodyDecoder,
        out: &mut [u8],
    ) -> Poll<Result<usize>> {
        if out.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            match decoder {
                BodyDecoder::Done => return Poll::Ready(Ok(0)),
                BodyDecoder::Length(remaining) => {
                    let want = usize::try_from(*remaining).unwrap_or(usize::MAX).min(out.len());
                    let n = if self.has_unread_bytes() {
                        self.take_buffered(out, want)
                    } else if want >= self.read_size {
                        // Large reads go straight into the caller's buffer.
                        let n =
                            ready!(Pin::new(&mut self.stream).poll_read(cx, &mut out[..want])).map_err(Error::io)?;
                        if n == 0 {
                            return Poll::Ready(Err(ProtoError::TruncatedBody.into()));
                        }
                        n
                    } else {
                        if ready!(self.poll_fill(cx)).map_err(Error::io)? == 0 {
                            return Poll::Ready(Err(ProtoError::TruncatedBody.into()));
                        }
                        continue;
                    };
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        *decoder = BodyDecoder::Done;
                    }
                    return Poll::Ready(Ok(n));
                }
                BodyDecoder::Chunked(chunked) => {
                    if self.has_unread_bytes() {
                        let (consumed, written) = chunked.decode(&self.buf[..self.filled], out)?;
                        self.consume(consumed);
                        if written > 0 && !chunked.is_done() && self.has_unread_bytes() {
                            // Absorb framing that follows the data (often the
                            // last chunk), so completion is noticed now.
                            let (framing, _) = chunked.decode(&self.buf[..self.filled], &mut [])?;
                            self.consume(framing);
                        }
                        if chunked.is_done() {
                            *decoder = BodyDecoder::Done;
                        }
                        if written > 0 {
                            return Poll::Ready(Ok(written));
                        }
                        if consumed > 0 {
                            continue;
                        }
                        if decoder.is_done() {
                            return Poll::Ready(Ok(0));
                        }
                        return Poll::Ready(Err(Error::new(ErrorKind::Protocol, "chunked decoder made no progress")));
                    }
                    if ready!(self.poll_fill(cx)).map_err(Error::io)? == 0 {
                        chunked.finish()?;
                        *decoder = BodyDecoder::Done;
                    }
                }
                BodyDecoder::Close => {
                    let n = if self.has_unread_bytes() {
                        self.take_buffered(out, usize::MAX)
                    } else {
                        ready!(Pin::new(&mut self.stream).poll_read(cx, out)).map_err(Error::io)?
                    };
                    if n == 0 {
                        *decoder = BodyDecoder::Done;
                    }
                    return Poll::Ready(Ok(n));
                }
            }
        }
    }
}

async fn write_all(stream: &mut Stream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let n = poll_fn(|cx| Pin::new(&mut *stream).poll_write(cx, data)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        data = &data[n..];
    }
    Ok(())
}
