//! One connection: a stream, its reusable read buffer and its write buffer.
//!
//! A `Conn` performs one exchange at a time: the caller writes a request
//! with [`Conn::send`] (which watches for a response that arrives before
//! the request is written), reads the response head with
//! [`Conn::read_head`], then drains the body with [`Conn::poll_body`].
//! Bytes are only ever taken from the buffer by the framing of the current
//! response, so bytes a server sends after a response can never be
//! mistaken for the next one.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use async_io::Timer;
use bytes::{Buf, BytesMut};
use futures_io::{AsyncRead, AsyncWrite};
use futures_lite::future::{poll_fn, poll_once};

use crate::error::{Error, ErrorKind, Result};
use crate::proto::chunked::ChunkedDecoder;
use crate::proto::framing::Framing;
use crate::proto::head::{ResponseHead, build_response_head, may_be_complete, response_head_status};
use crate::proto::{Limits, ProtoError};
use crate::transport::Stream;
use crate::util::{OutOfLine, out_of_line};

/// How many bytes the first read of a connection asks for: enough for a
/// typical head and small body, small enough that ten thousand idle
/// connections stay cheap.
const MIN_READ: usize = 4 * 1024;

/// The most one read asks for. A read that fills its whole request doubles
/// the next one, so a connection streaming a large body reads in large
/// steps (fewer syscalls) while one serving small responses stays small.
/// 128 KiB rather than 64: a buffer is refilled once less than half a read
/// of room is left, so with 64 KiB a response of just over 64 KiB took two
/// reads almost every time (benchmark (d): 0.83 -> 0.91 x the floor).
const MAX_READ: usize = 128 * 1024;

/// At most this many interim (1xx) responses are skipped before one final
/// response; a server that sends more is broken or hostile.
pub(crate) const MAX_INTERIM_RESPONSES: usize = 32;

/// A connection to one origin.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: Stream,
    /// Bytes received but not consumed yet. A response head is split off
    /// the front and frozen, so its header values share this allocation;
    /// once the caller drops them the buffer is reclaimed in place.
    ///
    /// `buf[..start]` is consumed, `buf[start..start + filled]` unread,
    /// and the rest initialized room for the next read: safe code can only
    /// read into initialized memory, so room is zeroed once when it is
    /// made, and consumed bytes are reused by moving the unread ones to the
    /// front, never zeroed again.
    buf: BytesMut,
    start: usize,
    filled: usize,
    /// Room the buffer is given when it runs out, between `MIN_READ` and
    /// `MAX_READ`.
    read_size: usize,
    /// Reusable buffer for the request head (and small bodies).
    pub(crate) write_buf: Vec<u8>,
    /// Whether any byte of the current exchange's response has arrived.
    received_any: bool,
    /// Interim (1xx) responses skipped in the current exchange.
    interim: usize,
    /// False once the server closed its side during the current upload:
    /// watching the read side then has nothing more to tell.
    read_open: bool,
    /// The trailer field lines of the chunked body that just ended, for
    /// [`Conn::take_trailers`]; empty (no allocation) without trailers.
    trailers: Vec<u8>,
    /// The peer's address, for a TCP connection (TLS or not).
    peer: Option<SocketAddr>,
}

/// How writing a request (or a part of it) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Written {
    /// Every byte was written.
    All,
    /// A final response arrived first and writing stopped: the request is
    /// incomplete on the wire, so the connection must not be reused.
    Answered,
}

/// What polling the write side, watched, came to.
enum Step {
    /// Everything was written and flushed.
    Sent,
    /// Response bytes are waiting to be read.
    Arrived,
    /// The write failed (the response may still be readable).
    WriteFailed(io::Error),
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
            peer: stream.peer_addr(),
            trailers: Vec::new(),
            stream,
            buf: BytesMut::new(),
            start: 0,
            filled: 0,
            read_size: MIN_READ,
            write_buf: Vec::new(),
            received_any: false,
            interim: 0,
            read_open: true,
        }
    }

    /// Starts a new exchange on this connection.
    pub(crate) fn begin_exchange(&mut self) {
        self.received_any = false;
        self.interim = 0;
        self.read_open = true;
        self.write_buf.clear();
        self.trailers.clear();
    }

    /// The peer's address of a TCP connection (plain or TLS); `None` for a
    /// custom connector's stream. Read once, when the connection was made.
    pub(crate) fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// Takes the trailer field lines of the chunked body that just ended
    /// (each `name:value` and CRLF, as checked by the decoder); empty when
    /// it had none.
    pub(crate) fn take_trailers(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.trailers)
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

    /// Writes `write_buf`, then `extra` (either may be empty), then
    /// flushes, unless a final response arrives first.
    ///
    /// The read side is polled only when the write side cannot make
    /// progress (the server stopped reading) and after a failed write, so
    /// a request that goes out at once costs no read attempt, and a server
    /// that answers early but keeps reading still gets the whole body. An
    /// interim (1xx) response is skipped and writing goes on; a final one
    /// is left in the read buffer for [`Conn::read_head`] and writing stops
    /// ([`Written::Answered`]). A failed write whose response is readable
    /// (a server that answered and reset the connection) also returns
    /// `Answered`; without one, the write error.
    pub(crate) fn send<'a>(
        &'a mut self,
        extra: &'a [u8],
        limits: &'a Limits,
    ) -> OutOfLine<impl Future<Output = Result<Written>> + Send + 'a> {
        // Out of line: awaited in several places, compiled once.
        out_of_line(self.send_inline(extra, limits))
    }

    async fn send_inline(&mut self, extra: &[u8], limits: &Limits) -> Result<Written> {
        let mut written = 0;
        loop {
            let failed = match poll_fn(|cx| self.poll_send(cx, extra, &mut written)).await? {
                Step::Sent => return Ok(Written::All),
                Step::Arrived => None,
                Step::WriteFailed(e) => Some(e),
            };
            // Boxed: an early answer is rare, and inline it would size
            // every request future.
            if Box::pin(self.early_answer(failed, limits)).await? {
                return Ok(Written::Answered);
            }
        }
    }

    /// Writes what it can of `write_buf` then `extra`, from `*written` on
    /// (bytes of both already written), then flushes. When the stream has
    /// to wait, looks for response bytes in the same poll.
    fn poll_send(&mut self, cx: &mut Context<'_>, extra: &[u8], written: &mut usize) -> Poll<Result<Step>> {
        loop {
            let head_len = self.write_buf.len();
            let data = if *written < head_len { &self.write_buf[*written..] } else { &extra[*written - head_len..] };
            let polled = if data.is_empty() {
                Pin::new(&mut self.stream).poll_flush(cx).map_ok(|()| 0)
            } else {
                Pin::new(&mut self.stream).poll_write(cx, data)
            };
            match polled {
                Poll::Ready(Ok(0)) if data.is_empty() => return Poll::Ready(Ok(Step::Sent)),
                Poll::Ready(Ok(0)) => return Poll::Ready(Ok(Step::WriteFailed(io::ErrorKind::WriteZero.into()))),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Ok(Step::WriteFailed(e))),
                Poll::Pending => return self.poll_response_started(cx),
            }
        }
    }

    /// Ready with `Arrived` when response bytes are buffered or come in
    /// now; pending (with the read side registered) otherwise. An EOF
    /// stops the watch: the write side will fail, or finish, on its own.
    fn poll_response_started(&mut self, cx: &mut Context<'_>) -> Poll<Result<Step>> {
        if self.has_unread_bytes() {
            return Poll::Ready(Ok(Step::Arrived));
        }
        if !self.read_open {
            return Poll::Pending;
        }
        match ready!(self.poll_fill(cx)) {
            Ok(0) => {
                self.read_open = false;
                Poll::Pending
            }
            Ok(_) => Poll::Ready(Ok(Step::Arrived)),
            Err(e) => Poll::Ready(Err(Error::io(e))),
        }
    }

    /// Looks at what arrived while the request was being written; true
    /// when it is a final response, left unread in the buffer for
    /// [`Conn::read_head`] (nothing is stored: the request stops there),
    /// false for an interim one, read and skipped (writing goes on).
    ///
    /// After a failed write (`failed`): a response the server sent before
    /// the connection broke is still readable (bytes received before a
    /// reset stay in the socket), and is returned as an early answer,
    /// interim responses skipped. Nothing readable now means nothing will
    /// come: the write error stands.
    async fn early_answer(&mut self, failed: Option<io::Error>, limits: &Limits) -> Result<bool> {
        let writing = failed.is_none();
        if let Some(err) = failed
            && !self.has_unread_bytes()
        {
            match poll_once(poll_fn(|cx| self.poll_fill(cx))).await {
                Some(Ok(n)) if n > 0 => {}
                _ => return Err(Error::io(err)),
            }
        }
        loop {
            // A final head stays in the buffer, where `read_head` finds it.
            if !self.next_head(limits).await?.is_informational() {
                return Ok(true);
            }
            self.read_any_head(limits).await?;
            if writing {
                return Ok(false);
            }
        }
    }

    /// Waits up to `wait` for the server's `100 Continue` to a request sent
    /// with `Expect: 100-continue`. `All` means: send the body now (the 100
    /// came, or the wait ran out); `Answered` means a final response came
    /// instead and the body must not be sent.
    pub(crate) async fn await_continue(&mut self, wait: Duration, limits: &Limits) -> Result<Written> {
        let mut timer = Timer::after(wait);
        loop {
            let arrived = poll_fn(|cx| {
                if let Poll::Ready(step) = self.poll_response_arrival(cx) {
                    return Poll::Ready(step.map(|()| true));
                }
                Pin::new(&mut timer).poll(cx).map(|_| Ok(false))
            })
            .await?;
            if !arrived {
                return Ok(Written::All);
            }
            // A final head stays in the buffer, where `read_head` finds it.
            let status = self.next_head(limits).await?;
            if !status.is_informational() {
                return Ok(Written::Answered);
            }
            self.read_any_head(limits).await?;
            if status == http::StatusCode::CONTINUE {
                return Ok(Written::All);
            }
        }
    }

    /// Ready once bytes (or EOF, or an error: the head reader reports it)
    /// have come in.
    fn poll_response_arrival(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.has_unread_bytes() {
            return Poll::Ready(Ok(()));
        }
        ready!(self.poll_fill(cx)).map_err(Error::io)?;
        Poll::Ready(Ok(()))
    }

    /// Reads the final response head, skipping interim 1xx responses (a
    /// final one that arrived while the request was being written is still
    /// in the buffer).
    pub(crate) async fn read_head(&mut self, limits: &Limits) -> Result<ResponseHead> {
        loop {
            let head = self.read_any_head(limits).await?;
            if !head.status.is_informational() {
                return Ok(head);
            }
        }
    }

    /// Reads the next head, final or interim (see [`Conn::check_interim`]).
    /// Out of line: awaited in several places, compiled once.
    fn read_any_head<'a>(
        &'a mut self,
        limits: &'a Limits,
    ) -> OutOfLine<impl Future<Output = Result<ResponseHead>> + Send + 'a> {
        out_of_line(async move {
            let head = self.read_one_head(limits).await?;
            self.check_interim(&head)?;
            Ok(head)
        })
    }

    /// Refuses a 101 (smolreq never asks to switch protocols) and counts
    /// interim responses against a bound for the whole exchange.
    fn check_interim(&mut self, head: &ResponseHead) -> Result<()> {
        if head.status.as_u16() == 101 {
            return Err(ProtoError::InvalidHead("unexpected 101 Switching Protocols").into());
        }
        if head.status.is_informational() {
            self.interim += 1;
            if self.interim > MAX_INTERIM_RESPONSES {
                return Err(ProtoError::InvalidHead("too many interim (1xx) responses").into());
            }
        }
        Ok(())
    }

    /// Reads the next head, final or interim.
    async fn read_one_head(&mut self, limits: &Limits) -> Result<ResponseHead> {
        let len = self.next_head_len(limits).await?.0;
        self.buf.advance(self.start);
        self.start = 0;
        self.filled -= len;
        Ok(build_response_head(self.buf.split_to(len).freeze(), limits)?)
    }

    /// The status of the next head, once it is complete in the buffer
    /// (where it stays).
    async fn next_head(&mut self, limits: &Limits) -> Result<http::StatusCode> {
        Ok(self.next_head_len(limits).await?.1)
    }

    /// Waits until a complete head starts the unread bytes: its length and
    /// status. Out of line: awaited in several places, compiled once.
    fn next_head_len<'a>(
        &'a mut self,
        limits: &'a Limits,
    ) -> OutOfLine<impl Future<Output = Result<(usize, http::StatusCode)>> + Send + 'a> {
        out_of_line(self.next_head_len_inline(limits))
    }

    async fn next_head_len_inline(&mut self, limits: &Limits) -> Result<(usize, http::StatusCode)> {
        let mut scanned = 0;
        let mut status_line_checked = false;
        if self.filled == 0 {
            self.start = 0; // the previous response was read to its end
        }
        loop {
            let available = self.unread();
            // Parse when a blank line may have arrived, and once when the
            // status line is complete so garbage is rejected early.
            let first_line_done = !status_line_checked && available.contains(&b'\n');
            if first_line_done || may_be_complete(available, scanned) {
                status_line_checked = true;
                if let Some(head) = response_head_status(available, limits)? {
                    return Ok(head);
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

    /// The bytes received and not consumed yet.
    fn unread(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.filled]
    }

    /// Reads once, appending to the unread bytes.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.len() - self.start - self.filled < MIN_READ / 4 {
            self.make_room();
        }
        let end = self.start + self.filled;
        let room = self.buf.len() - end;
        let n = ready!(Pin::new(&mut self.stream).poll_read(cx, &mut self.buf[end..]))?;
        self.filled += n;
        if n == room {
            self.read_size = (self.read_size * 2).min(MAX_READ);
        }
        if n > 0 {
            self.received_any = true;
        }
        Poll::Ready(Ok(n))
    }

    /// Makes room after the unread bytes. First by moving them to the
    /// front over consumed ones (usually there are none left to move: body
    /// reads drain the buffer), which needs no zeroing. When that leaves
    /// less than half a read, the buffer gets `read_size` bytes of zeroed
    /// room: `BytesMut` reuses its allocation when nothing else shares it
    /// (a response head split off earlier and since dropped), else it
    /// allocates.
    fn make_room(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.start + self.filled, 0);
            self.start = 0;
        }
        if self.buf.len() - self.filled >= self.read_size / 2 {
            return;
        }
        self.buf.truncate(self.filled);
        self.buf.reserve(self.read_size);
        self.buf.resize(self.buf.capacity(), 0);
    }

    /// Drops `n` unread bytes from the front.
    fn consume(&mut self, n: usize) {
        self.start += n;
        self.filled -= n;
    }

    /// Reads body bytes into `out` according to `decoder`. `Ok(0)` means the
    /// body is complete (or `out` is empty). A premature EOF is an error.
    pub(crate) fn poll_body(
        &mut self,
        cx: &mut Context<'_>,
        decoder: &mut BodyDecoder,
        out: &mut [u8],
    ) -> Poll<Result<usize>> {
        self.poll_body_into(cx, decoder, &mut SliceSink { out, written: 0 })
    }

    /// Appends body bytes to `out` according to `decoder`, without zeroing
    /// anything first. `Ok(0)` means the body is complete. (The fuzz
    /// targets use it; the library reads with a bound, through
    /// [`poll_body_append_max`](Self::poll_body_append_max).)
    #[cfg_attr(not(feature = "fuzzing"), allow(dead_code))]
    pub(crate) fn poll_body_append(
        &mut self,
        cx: &mut Context<'_>,
        decoder: &mut BodyDecoder,
        out: &mut Vec<u8>,
    ) -> Poll<Result<usize>> {
        self.poll_body_into(cx, decoder, out)
    }

    /// Like [`poll_body_append`](Self::poll_body_append), but appends no
    /// more than `max` bytes in all to `out` (counting what it holds):
    /// `Ok(0)` then also means `out` is full.
    pub(crate) fn poll_body_append_max(
        &mut self,
        cx: &mut Context<'_>,
        decoder: &mut BodyDecoder,
        out: &mut Vec<u8>,
        max: usize,
    ) -> Poll<Result<usize>> {
        self.poll_body_into(cx, decoder, &mut Bounded { out, max })
    }

    /// Reads the next piece of the body into `out`, which should be empty:
    /// the decoded bytes that are buffered (after one read of the stream
    /// when none are), at most one chunk's data of a chunked body. `out`
    /// is given exactly the capacity it needs, so it becomes a `Bytes`
    /// without another allocation. `Ok(0)` means the body is complete.
    pub(crate) fn poll_body_piece(
        &mut self,
        cx: &mut Context<'_>,
        decoder: &mut BodyDecoder,
        out: &mut Vec<u8>,
    ) -> Poll<Result<usize>> {
        self.poll_body_into(cx, decoder, &mut Piece { out })
    }

    /// The decoded length of the rest of a chunked body whose end is
    /// already buffered; `None` when its end has not arrived (or its
    /// framing is broken: the read that gets there reports it).
    pub(crate) fn buffered_chunked_len(&self, decoder: &BodyDecoder) -> Option<usize> {
        let BodyDecoder::Chunked(chunked) = decoder else { return None };
        let mut probe = chunked.clone();
        let (_, len) = probe.skim(self.unread()).ok()?;
        probe.is_done().then_some(len)
    }

    /// Bytes received and not yet taken by the current response: an upper
    /// bound of the decoded body bytes that are already here.
    pub(crate) fn buffered(&self) -> usize {
        self.filled
    }

    fn poll_body_into<S: Sink>(
        &mut self,
        cx: &mut Context<'_>,
        decoder: &mut BodyDecoder,
        out: &mut S,
    ) -> Poll<Result<usize>> {
        if out.room() == 0 {
            return Poll::Ready(Ok(0));
        }
        loop {
            match decoder {
                BodyDecoder::Done => return Poll::Ready(Ok(0)),
                BodyDecoder::Length(remaining) => {
                    let want = usize::try_from(*remaining).unwrap_or(usize::MAX).min(out.room());
                    let n = if self.has_unread_bytes() {
                        self.take_buffered(out, want)
                    } else if want >= self.read_size
                        && let Some(read) = out.poll_direct(cx, &mut self.stream, want)
                    {
                        // Large reads go straight to the caller.
                        let n = ready!(read).map_err(Error::io)?;
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
                        let (consumed, written) =
                            out.decode(chunked, &self.buf[self.start..self.start + self.filled])?;
                        self.consume(consumed);
                        if written > 0 && !chunked.is_done() && self.has_unread_bytes() {
                            // Absorb framing that follows the data (often the
                            // last chunk), so completion is noticed now.
                            let (framing, _) = chunked.decode(self.unread(), &mut [])?;
                            self.consume(framing);
                        }
                        if chunked.is_done() {
                            self.trailers = chunked.take_trailers();
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
                        self.trailers = chunked.take_trailers();
                        *decoder = BodyDecoder::Done;
                    }
                }
                BodyDecoder::Close => {
                    let n = if self.has_unread_bytes() {
                        self.take_buffered(out, usize::MAX)
                    } else if let Some(read) = out.poll_direct(cx, &mut self.stream, usize::MAX) {
                        ready!(read).map_err(Error::io)?
                    } else {
                        if ready!(self.poll_fill(cx)).map_err(Error::io)? > 0 {
                            continue;
                        }
                        0
                    };
                    if n == 0 {
                        *decoder = BodyDecoder::Done;
                    }
                    return Poll::Ready(Ok(n));
                }
            }
        }
    }

    /// Moves buffered bytes to `out`, at most `limit` of them.
    fn take_buffered(&mut self, out: &mut impl Sink, limit: usize) -> usize {
        let n = self.filled.min(out.room()).min(limit);
        out.put(&self.unread()[..n]);
        self.consume(n);
        n
    }
}

/// Where body bytes go: a caller's slice (`AsyncRead`), a growing vector
/// (`Response::bytes`, bounded or not) or one piece (`Body::chunk`).
/// Generic, so each use compiles to its own code.
trait Sink {
    /// How many more bytes fit.
    fn room(&self) -> usize;
    /// Takes bytes (no more than `room`).
    fn put(&mut self, data: &[u8]);
    /// Decodes chunked `input` into the sink: (input consumed, bytes put).
    fn decode(&mut self, chunked: &mut ChunkedDecoder, input: &[u8]) -> Result<(usize, usize)>;
    /// Reads up to `max` bytes straight from the stream, bypassing the
    /// connection's buffer; `None` when this sink cannot for this stream.
    fn poll_direct(&mut self, cx: &mut Context<'_>, stream: &mut Stream, max: usize)
    -> Option<Poll<io::Result<usize>>>;
}

struct SliceSink<'a> {
    out: &'a mut [u8],
    written: usize,
}

impl Sink for SliceSink<'_> {
    fn room(&self) -> usize {
        self.out.len() - self.written
    }

    fn put(&mut self, data: &[u8]) {
        self.out[self.written..self.written + data.len()].copy_from_slice(data);
        self.written += data.len();
    }

    fn decode(&mut self, chunked: &mut ChunkedDecoder, input: &[u8]) -> Result<(usize, usize)> {
        let (consumed, written) = chunked.decode(input, &mut self.out[self.written..])?;
        self.written += written;
        Ok((consumed, written))
    }

    fn poll_direct(
        &mut self,
        cx: &mut Context<'_>,
        stream: &mut Stream,
        max: usize,
    ) -> Option<Poll<io::Result<usize>>> {
        let room = &mut self.out[self.written..];
        let max = max.min(room.len());
        Some(Pin::new(stream).poll_read(cx, &mut room[..max]).map_ok(|n| {
            self.written += n;
            n
        }))
    }
}

impl Sink for Vec<u8> {
    fn room(&self) -> usize {
        usize::MAX - self.len()
    }

    fn put(&mut self, data: &[u8]) {
        self.extend_from_slice(data);
    }

    fn decode(&mut self, chunked: &mut ChunkedDecoder, input: &[u8]) -> Result<(usize, usize)> {
        Ok(chunked.decode_append(input, self, usize::MAX)?)
    }

    fn poll_direct(
        &mut self,
        cx: &mut Context<'_>,
        stream: &mut Stream,
        max: usize,
    ) -> Option<Poll<io::Result<usize>>> {
        stream.can_append().then(|| stream.poll_read_append(cx, self, u64::try_from(max).unwrap_or(u64::MAX)))
    }
}

/// A vector that takes at most `max` bytes in all.
struct Bounded<'a> {
    out: &'a mut Vec<u8>,
    max: usize,
}

impl Sink for Bounded<'_> {
    fn room(&self) -> usize {
        self.max.saturating_sub(self.out.len())
    }

    fn put(&mut self, data: &[u8]) {
        self.out.extend_from_slice(data);
    }

    fn decode(&mut self, chunked: &mut ChunkedDecoder, input: &[u8]) -> Result<(usize, usize)> {
        let room = self.room();
        Ok(chunked.decode_append(input, self.out, room)?)
    }

    fn poll_direct(
        &mut self,
        cx: &mut Context<'_>,
        stream: &mut Stream,
        max: usize,
    ) -> Option<Poll<io::Result<usize>>> {
        let max = u64::try_from(max.min(self.room())).unwrap_or(u64::MAX);
        stream.can_append().then(|| stream.poll_read_append(cx, self.out, max))
    }
}

/// One piece of body: what one copy out of the connection's buffer gives,
/// in a vector allocated once, to the size of that piece. It never reads
/// the stream directly, so a piece is never larger than the buffer.
struct Piece<'a> {
    out: &'a mut Vec<u8>,
}

impl Sink for Piece<'_> {
    fn room(&self) -> usize {
        // One piece per call: once something is in, there is no room.
        if self.out.is_empty() { usize::MAX } else { 0 }
    }

    fn put(&mut self, data: &[u8]) {
        self.out.reserve_exact(data.len());
        self.out.extend_from_slice(data);
    }

    fn decode(&mut self, chunked: &mut ChunkedDecoder, input: &[u8]) -> Result<(usize, usize)> {
        // Framing first, without allocating: a buffer holding only framing
        // (a chunk-size line, the last chunk) must not cost a vector.
        let (framing, _) = chunked.decode(input, &mut [])?;
        let data = &input[framing..];
        let Some(left) = chunked.data_left() else { return Ok((framing, 0)) };
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
        if n == 0 {
            return Ok((framing, 0));
        }
        self.out.reserve_exact(n);
        let (consumed, written) = chunked.decode_append(data, self.out, n)?;
        Ok((framing + consumed, written))
    }

    fn poll_direct(
        &mut self,
        _cx: &mut Context<'_>,
        _stream: &mut Stream,
        _max: usize,
    ) -> Option<Poll<io::Result<usize>>> {
        None
    }
}
