//! Sans-IO HTTP/1.1: request head encoding, response head parsing, body
//! framing and the chunked codec.
//!
//! Nothing in this module performs I/O or awaits: every function works on
//! byte slices, so protocol rules are tested (and fuzzed) with plain bytes.

pub(crate) mod chunked;
#[cfg(feature = "proxy")]
pub(crate) mod connect;
pub(crate) mod framing;
pub(crate) mod head;
#[cfg(test)]
mod props;
#[cfg(feature = "proxy")]
pub(crate) mod socks5;

use std::fmt;

/// Appends `n` in base `radix` (10 or 16; lowercase hex digits): pushed
/// last digit first, then put in order. One function for both bases, out
/// of line: a loop over a fixed-size buffer is unrolled into a division per
/// possible digit, and a constant radix into a copy per base.
#[inline(never)]
pub(crate) fn put_number(buf: &mut Vec<u8>, mut n: u64, radix: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let start = buf.len();
    loop {
        buf.push(DIGITS[(n % radix) as usize & 15]);
        n /= radix;
        if n == 0 {
            break;
        }
    }
    buf[start..].reverse();
}

/// Size and count limits applied to what a server sends.
///
/// Every limit is checked before memory is committed, so a hostile server
/// gets a prompt [`ProtoError`] instead of unbounded buffering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest response head (status line and header fields), in bytes.
    pub max_head_size: usize,
    /// Largest number of header fields in one response head.
    pub max_headers: usize,
    /// Longest chunk-size line, extensions included, in bytes.
    pub max_chunk_line: usize,
    /// Largest trailer section of a chunked body, in bytes.
    pub max_trailer_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_head_size: 64 * 1024, max_headers: 100, max_chunk_line: 4 * 1024, max_trailer_size: 16 * 1024 }
    }
}

/// What was wrong with a message, in the words of the protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtoError {
    /// The response head is larger than [`Limits::max_head_size`].
    HeadTooLarge(usize),
    /// The response head has more fields than [`Limits::max_headers`].
    TooManyHeaders(usize),
    /// The status line or a header field could not be parsed.
    InvalidHead(&'static str),
    /// The status code is outside 100-999 or otherwise unusable.
    InvalidStatus,
    /// Content-Length is malformed or appears with conflicting values.
    InvalidContentLength,
    /// Transfer-Encoding names a coding this client does not decode.
    UnsupportedTransferEncoding,
    /// A chunk-size line is malformed (no digits, bad digit, overflow).
    InvalidChunkSize,
    /// A chunk-size line, extensions included, exceeds [`Limits::max_chunk_line`].
    ChunkLineTooLong(usize),
    /// A chunk's data is not followed by CRLF, or a line ends without CRLF.
    InvalidChunkDelimiter,
    /// The trailer section exceeds [`Limits::max_trailer_size`].
    TrailersTooLarge(usize),
    /// A trailer field line is malformed.
    InvalidTrailer,
    /// The connection ended before the body was complete.
    TruncatedBody,
    /// The connection ended before the response head was complete.
    TruncatedHead,
    /// A request component contains a forbidden byte (CR, LF, NUL) or is
    /// otherwise not valid on the wire.
    InvalidRequest(&'static str),
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtoError::HeadTooLarge(limit) => {
                write!(f, "response head exceeds the limit of {limit} bytes")
            }
            ProtoError::TooManyHeaders(limit) => {
                write!(f, "response head has more than {limit} header fields")
            }
            ProtoError::InvalidHead(what) => write!(f, "invalid response head: {what}"),
            ProtoError::InvalidStatus => f.write_str("invalid status code"),
            ProtoError::InvalidContentLength => f.write_str("invalid or conflicting Content-Length"),
            ProtoError::UnsupportedTransferEncoding => {
                f.write_str("unsupported Transfer-Encoding (only chunked is decoded)")
            }
            ProtoError::InvalidChunkSize => f.write_str("invalid chunk size line"),
            ProtoError::ChunkLineTooLong(limit) => {
                write!(f, "chunk size line exceeds the limit of {limit} bytes")
            }
            ProtoError::InvalidChunkDelimiter => f.write_str("chunk data not followed by CRLF"),
            ProtoError::TrailersTooLarge(limit) => {
                write!(f, "chunked trailer section exceeds the limit of {limit} bytes")
            }
            ProtoError::InvalidTrailer => f.write_str("invalid chunked trailer field"),
            ProtoError::TruncatedBody => f.write_str("connection closed before the body was complete"),
            ProtoError::TruncatedHead => f.write_str("connection closed before the response head was complete"),
            ProtoError::InvalidRequest(what) => write!(f, "invalid request: {what}"),
        }
    }
}

impl std::error::Error for ProtoError {}
