//! The sans-IO internals, exposed for the fuzz targets in `fuzz/` and the
//! property tests. Only built with the `fuzzing` feature; not a stable API.
//!
//! Everything here is a thin wrapper over the crate's own code: the fuzz
//! targets exercise exactly what the client runs, nothing reimplemented.

use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Version};

use crate::error::Result;
use crate::transport::{Io, Stream};
use crate::{conn, proto};

pub use crate::proto::{Limits, ProtoError};

/// A parsed response head (see [`parse_response_head`]).
#[derive(Debug)]
pub struct ResponseHead(proto::head::ResponseHead);

impl ResponseHead {
    /// The HTTP version of the status line.
    pub fn version(&self) -> Version {
        self.0.version
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The reason phrase as sent (may be empty).
    pub fn reason(&self) -> &Bytes {
        &self.0.reason
    }

    /// The header fields, obs-folds replaced by a space.
    pub fn headers(&self) -> &HeaderMap {
        &self.0.headers
    }
}

/// Parses a response head from the start of `buf`: `Ok(None)` when more
/// bytes are needed, else the head and its length.
pub fn parse_response_head(
    buf: &[u8],
    limits: &Limits,
) -> std::result::Result<Option<(ResponseHead, usize)>, ProtoError> {
    Ok(proto::head::parse_response_head(buf, limits)?.map(|(head, len)| (ResponseHead(head), len)))
}

/// How the end of a response body is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body at all.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the server closes the connection.
    CloseDelimited,
}

impl Framing {
    fn to_proto(self) -> proto::framing::Framing {
        match self {
            Framing::Empty => proto::framing::Framing::Empty,
            Framing::Length(n) => proto::framing::Framing::Length(n),
            Framing::Chunked => proto::framing::Framing::Chunked,
            Framing::CloseDelimited => proto::framing::Framing::CloseDelimited,
        }
    }

    fn from_proto(framing: proto::framing::Framing) -> Framing {
        match framing {
            proto::framing::Framing::Empty => Framing::Empty,
            proto::framing::Framing::Length(n) => Framing::Length(n),
            proto::framing::Framing::Chunked => Framing::Chunked,
            proto::framing::Framing::CloseDelimited => Framing::CloseDelimited,
        }
    }
}

/// The framing of a response body and whether its connection is reusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyPlan {
    /// How the body ends.
    pub framing: Framing,
    /// Whether the connection may carry another exchange after the body.
    pub reusable: bool,
}

/// Decides the body framing of a final response to `method` (RFC 9112
/// section 6.3).
pub fn plan_body(
    method: &Method,
    head: &ResponseHead,
    request_close: bool,
) -> std::result::Result<BodyPlan, ProtoError> {
    let plan = proto::framing::plan_body(method, &head.0, request_close)?;
    Ok(BodyPlan { framing: Framing::from_proto(plan.framing), reusable: plan.reusable })
}

/// The incremental chunked decoder.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder(proto::chunked::ChunkedDecoder);

impl ChunkedDecoder {
    /// A decoder with the given chunk-size line and trailer limits.
    pub fn new(max_chunk_line: usize, max_trailer_size: usize) -> Self {
        ChunkedDecoder(proto::chunked::ChunkedDecoder::new(max_chunk_line, max_trailer_size))
    }

    /// Decodes from `input` into `out`; returns (consumed, written).
    pub fn decode(&mut self, input: &[u8], out: &mut [u8]) -> std::result::Result<(usize, usize), ProtoError> {
        self.0.decode(input, out)
    }

    /// True once the last chunk and the trailers have been consumed.
    pub fn is_done(&self) -> bool {
        self.0.is_done()
    }

    /// At end of input: `Ok` if done, else a truncated-body error.
    pub fn finish(&self) -> std::result::Result<(), ProtoError> {
        self.0.finish()
    }
}

/// Appends the header of a data chunk of `len` (> 0) bytes.
pub fn encode_chunk_header(len: usize, buf: &mut Vec<u8>) {
    proto::chunked::encode_chunk_header(len, buf)
}

/// The CRLF after a chunk's data.
pub const CHUNK_END: &[u8] = proto::chunked::CHUNK_END;

/// The last chunk with an empty trailer section.
pub const LAST_CHUNK: &[u8] = proto::chunked::LAST_CHUNK;

/// How a request body is framed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestFraming {
    /// No body, no framing header.
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Appends an encoded request head to `buf`, or fails (appending nothing)
/// when a component holds a forbidden byte.
pub fn encode_request_head(
    method: &Method,
    target: &str,
    host: &str,
    headers: &HeaderMap,
    user_agent: &str,
    framing: RequestFraming,
    buf: &mut Vec<u8>,
) -> std::result::Result<(), ProtoError> {
    let framing = match framing {
        RequestFraming::None => proto::head::RequestFraming::None,
        RequestFraming::Length(n) => proto::head::RequestFraming::Length(n),
        RequestFraming::Chunked => proto::head::RequestFraming::Chunked,
    };
    let head = proto::head::RequestHead {
        method,
        target,
        host,
        headers,
        user_agent,
        framing,
        to_proxy: false,
        proxy_authorization: None,
    };
    proto::head::encode_request_head(&head, buf)
}

/// The state of a response body being read (see [`Conn::poll_body`]).
#[derive(Debug)]
pub struct BodyDecoder(conn::BodyDecoder);

impl BodyDecoder {
    /// A decoder for a body framed by `framing`.
    pub fn new(framing: Framing, limits: &Limits) -> Self {
        BodyDecoder(conn::BodyDecoder::new(framing.to_proto(), limits))
    }

    /// True once the body has been read to its end.
    pub fn is_done(&self) -> bool {
        self.0.is_done()
    }
}

/// One client connection over any byte stream: the reading half of an
/// exchange, as the client runs it.
#[derive(Debug)]
pub struct Conn(conn::Conn);

impl Conn {
    /// A connection over `io`.
    pub fn new(io: impl Io) -> Self {
        Conn(conn::Conn::new(Stream::Custom(Box::new(io))))
    }

    /// Reads the final response head, skipping interim (1xx) responses.
    pub async fn read_head(&mut self, limits: &Limits) -> Result<ResponseHead> {
        self.0.read_head(limits).await.map(ResponseHead)
    }

    /// Reads body bytes into `out` (non-empty); `Ok(0)` at the clean end.
    pub fn poll_body(
        &mut self,
        cx: &mut Context<'_>,
        decoder: &mut BodyDecoder,
        out: &mut [u8],
    ) -> Poll<Result<usize>> {
        self.0.poll_body(cx, &mut decoder.0, out)
    }

    /// Appends body bytes to `out`; `Ok(0)` at the clean end (the path
    /// `Response::bytes` takes).
    pub fn poll_body_append(
        &mut self,
        cx: &mut Context<'_>,
        decoder: &mut BodyDecoder,
        out: &mut Vec<u8>,
    ) -> Poll<Result<usize>> {
        self.0.poll_body_append(cx, &mut decoder.0, out)
    }

    /// True if received bytes beyond what was consumed sit in the buffer.
    pub fn has_unread_bytes(&self) -> bool {
        self.0.has_unread_bytes()
    }
}

#[cfg(feature = "proxy")]
/// Runs the `CONNECT` handshake (to `origin.test:443`) over `io`, as the
/// client does through an HTTP proxy. `Ok(())`: the tunnel is open;
/// otherwise the error, described.
pub async fn http_connect<S: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin>(
    io: &mut S,
    limits: &Limits,
) -> std::result::Result<(), String> {
    crate::tunnel::http_connect(io, "origin.test", 443, Some(b"Basic dTpw"), Some(b"fuzz"), limits)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(feature = "proxy")]
/// Runs the SOCKS5 handshake over `io`, as the client does through a
/// SOCKS5 proxy: to the name `origin.test` (or an IPv4 address), with
/// password authentication offered when `password` is set.
pub async fn socks5_connect<S: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin>(
    io: &mut S,
    name: bool,
    password: bool,
) -> std::result::Result<(), String> {
    let target = if name {
        proto::socks5::Target::Name("origin.test", 443)
    } else {
        proto::socks5::Target::Addr(std::net::SocketAddr::from(([10, 0, 0, 1], 443)))
    };
    let credentials = crate::proxy::Credentials { user: "user".into(), password: "pass".into() };
    crate::tunnel::socks5_connect(io, target, password.then_some(&credentials))
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}
