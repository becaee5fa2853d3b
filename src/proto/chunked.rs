//! The chunked transfer coding (RFC 9112 section 7.1): an incremental
//! decoder for response bodies and the few bytes the encoder needs.
//!
//! The decoder is a small state machine fed arbitrary slices of input. It
//! reads framing one byte at a time and copies chunk data in bulk, so any
//! split of the input (down to one byte in, one byte out) gives the same
//! body and the same error. It is strict on purpose: a malformed or
//! oversized frame is an error, because a lenient reading of chunk framing
//! is how a response gets desynchronised from the connection it came on.
//!
//! Which error a malformed line gets:
//!
//! * [`ProtoError::InvalidChunkSize`]: a chunk-size line that is not
//!   `1*HEXDIG [BWS] [";" ext]`: no digits, a non-hex byte (`0x`, `+`, `-`,
//!   whitespace before or between digits), a size that overflows `u64`, or a
//!   control byte (other than HTAB) in the extensions.
//! * [`ProtoError::InvalidChunkDelimiter`]: a line of framing that does not
//!   end in exactly CRLF: a CR not followed by LF, a bare LF, chunk data not
//!   followed by CRLF, or an empty last line that is not CRLF.
//! * [`ProtoError::ChunkLineTooLong`]: the chunk-size line, extensions
//!   included and CRLF excluded, is longer than the limit. Raised at the
//!   first byte past the limit, without waiting for the CRLF.
//! * [`ProtoError::InvalidTrailer`]: a trailer field line that is malformed
//!   (see [`ChunkedDecoder`]), bare CR and bare LF inside it included.
//! * [`ProtoError::TrailersTooLarge`]: the trailer field lines, their CRLFs
//!   included, are longer than the limit (the final empty line is not
//!   counted). Raised at the first byte past the limit.

use super::ProtoError;

/// Incremental decoder for a chunked body (RFC 9112 section 7.1).
///
/// Feed it whatever bytes have arrived with [`decode`](Self::decode); it
/// writes chunk data to the output buffer and swallows framing. Chunk
/// extensions are checked for forbidden bytes and ignored. Trailer fields
/// are checked and kept, as raw field lines, for
/// [`take_trailers`](Self::take_trailers): a field line must start with a non-empty
/// field name made of token characters, immediately followed by `:`, and
/// its value must not contain control bytes other than HTAB (so no NUL, no
/// bare CR, no bare LF); a line starting with SP or HTAB (obs-fold) is an
/// error.
///
/// After the first error the decoder stays failed: every later call to
/// [`decode`](Self::decode) returns that error again.
#[derive(Debug, Clone)]
pub(crate) struct ChunkedDecoder {
    /// Where in the body the next byte of input belongs.
    state: State,
    /// The chunk size accumulated so far from the current chunk-size line.
    size: u64,
    /// Bytes of the current chunk-size line seen so far, CRLF excluded.
    line_len: usize,
    /// Bytes of trailer field lines seen so far, CRLFs included.
    trailer_len: usize,
    /// Longest chunk-size line allowed, extensions included.
    max_chunk_line: usize,
    /// Largest trailer section allowed.
    max_trailer_size: usize,
    /// The trailer field lines accepted so far, CRLFs included (at most
    /// `max_trailer_size` bytes; no allocation without trailers).
    trailers: Vec<u8>,
}

/// Where the decoder is in the body.
#[derive(Debug, Clone)]
enum State {
    /// Reading framing, one byte at a time.
    Framing(Framing),
    /// Copying chunk data; this many bytes of the chunk are still due.
    Data(u64),
    /// The last chunk and the trailer section have been consumed.
    Done,
    /// The body was malformed; the decoder returns this error forever.
    Failed(ProtoError),
}

/// The byte-at-a-time part of the body: chunk-size lines, the CRLF after
/// chunk data, and the trailer section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// At the start of a chunk-size line: a hex digit must come.
    SizeStart,
    /// Reading hex digits of the chunk size.
    Size,
    /// SP or HTAB after the digits: more of it, `;` or CR may come.
    SizeBws,
    /// Inside chunk extensions, up to CR.
    Extension,
    /// The CR ending a chunk-size line was seen: LF must come.
    SizeLf,
    /// Chunk data ended: CR must come.
    DataCr,
    /// The CR after chunk data was seen: LF must come.
    DataLf,
    /// At the start of a trailer field line or of the final empty line.
    TrailerLineStart,
    /// Inside a trailer field name, up to `:`.
    TrailerName,
    /// Inside a trailer field value, up to CR.
    TrailerValue,
    /// The CR ending a trailer field line was seen: LF must come.
    TrailerLf,
    /// The CR of the final empty line was seen: LF must come.
    EndLf,
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body, with the given limits on the
    /// chunk-size line and the trailer section (see [`super::Limits`]).
    pub(crate) fn new(max_chunk_line: usize, max_trailer_size: usize) -> Self {
        ChunkedDecoder {
            state: State::Framing(Framing::SizeStart),
            size: 0,
            line_len: 0,
            trailer_len: 0,
            max_chunk_line,
            max_trailer_size,
            trailers: Vec::new(),
        }
    }

    /// Decodes from `input` into `out`. Returns (bytes of input consumed, bytes written to out).
    ///
    /// Consumes framing bytes freely; stops when `out` is full, input is
    /// exhausted, or the body is done. Makes progress: if input is
    /// non-empty, `out` is non-empty and the body is not done, it consumes at
    /// least one byte or errors. With `out` empty it still consumes framing
    /// bytes (such as the CRLF after chunk data, the last chunk and the
    /// trailer section), which lets a caller notice the end of the body.
    /// Once the body is done it consumes nothing: bytes after the body are
    /// the caller's.
    pub(crate) fn decode(&mut self, input: &[u8], out: &mut [u8]) -> Result<(usize, usize), ProtoError> {
        let mut written = 0;
        let consumed = self.decode_with(input, out.len(), |data| {
            out[written..written + data.len()].copy_from_slice(data);
            written += data.len();
        })?;
        Ok((consumed, written))
    }

    /// Like [`decode`](Self::decode), but appends chunk data to `out`, at
    /// most `room` bytes. Returns (bytes of input consumed, bytes appended).
    /// Nothing has to be zeroed in advance, so collecting a whole body this
    /// way costs one copy per byte and amortized growth of `out`.
    pub(crate) fn decode_append(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        room: usize,
    ) -> Result<(usize, usize), ProtoError> {
        let before = out.len();
        let consumed = self.decode_with(input, room, |data| out.extend_from_slice(data))?;
        Ok((consumed, out.len() - before))
    }

    /// The decoding loop: hands chunk data to `put` in slices totalling at
    /// most `room` bytes; returns the input consumed.
    fn decode_with(&mut self, input: &[u8], room: usize, mut put: impl FnMut(&[u8])) -> Result<usize, ProtoError> {
        let mut consumed = 0;
        let mut room = room;
        loop {
            match self.state {
                State::Failed(ref error) => return Err(error.clone()),
                State::Done => break,
                State::Data(remaining) => {
                    let available = (input.len() - consumed).min(room);
                    let n = usize::try_from(remaining).map_or(available, |r| r.min(available));
                    if n == 0 {
                        break;
                    }
                    put(&input[consumed..consumed + n]);
                    consumed += n;
                    room -= n;
                    let remaining = remaining - n as u64;
                    self.state = if remaining == 0 { State::Framing(Framing::DataCr) } else { State::Data(remaining) };
                }
                State::Framing(framing) => {
                    let Some(&byte) = input.get(consumed) else { break };
                    consumed += 1;
                    let trailer_len = self.trailer_len;
                    match self.step(framing, byte) {
                        Ok(next) => {
                            if self.trailer_len != trailer_len {
                                self.trailers.push(byte);
                            }
                            self.state = next;
                        }
                        Err(error) => {
                            self.state = State::Failed(error.clone());
                            return Err(error);
                        }
                    }
                }
            }
        }
        Ok(consumed)
    }

    /// Decodes `input` without keeping the chunk data: (bytes of input
    /// consumed, bytes of chunk data seen). Run on a clone, it measures a
    /// body that is already buffered, so its buffer can be sized exactly.
    pub(crate) fn skim(&mut self, input: &[u8]) -> Result<(usize, usize), ProtoError> {
        let mut seen = 0;
        let consumed = self.decode_with(input, usize::MAX, |data| seen += data.len())?;
        Ok((consumed, seen))
    }

    /// Bytes of chunk data still due in the current chunk, when the next
    /// input byte is chunk data; `None` while reading framing.
    pub(crate) fn data_left(&self) -> Option<u64> {
        match self.state {
            State::Data(left) => Some(left),
            _ => None,
        }
    }

    /// True once the last chunk and the trailer section (final CRLF) have been consumed.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The trailer field lines received (each `name:value` and CRLF,
    /// checked as described on [`ChunkedDecoder`]), taken out of the
    /// decoder; empty when there were none.
    pub(crate) fn take_trailers(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.trailers)
    }

    /// Call when the connection reached EOF: Ok(()) if done, else Err(ProtoError::TruncatedBody).
    pub(crate) fn finish(&self) -> Result<(), ProtoError> {
        if self.is_done() { Ok(()) } else { Err(ProtoError::TruncatedBody) }
    }

    /// Consumes one byte of framing in state `framing`; returns the next state.
    fn step(&mut self, framing: Framing, byte: u8) -> Result<State, ProtoError> {
        use Framing::*;
        match framing {
            SizeStart => {
                let digit = hex_value(byte).ok_or(ProtoError::InvalidChunkSize)?;
                self.size = u64::from(digit);
                self.in_size_line(Size)
            }
            Size => match byte {
                b'\r' => Ok(State::Framing(SizeLf)),
                b'\n' => Err(ProtoError::InvalidChunkDelimiter),
                b' ' | b'\t' => self.in_size_line(SizeBws),
                b';' => self.in_size_line(Extension),
                _ => {
                    let digit = hex_value(byte).ok_or(ProtoError::InvalidChunkSize)?;
                    self.size = self
                        .size
                        .checked_mul(16)
                        .and_then(|size| size.checked_add(u64::from(digit)))
                        .ok_or(ProtoError::InvalidChunkSize)?;
                    self.in_size_line(Size)
                }
            },
            SizeBws => match byte {
                b'\r' => Ok(State::Framing(SizeLf)),
                b'\n' => Err(ProtoError::InvalidChunkDelimiter),
                b' ' | b'\t' => self.in_size_line(SizeBws),
                b';' => self.in_size_line(Extension),
                _ => Err(ProtoError::InvalidChunkSize),
            },
            Extension => match byte {
                b'\r' => Ok(State::Framing(SizeLf)),
                b'\n' => Err(ProtoError::InvalidChunkDelimiter),
                b'\t' => self.in_size_line(Extension),
                _ if is_control(byte) => Err(ProtoError::InvalidChunkSize),
                _ => self.in_size_line(Extension),
            },
            SizeLf => match byte {
                b'\n' => {
                    self.line_len = 0;
                    if self.size == 0 { Ok(State::Framing(TrailerLineStart)) } else { Ok(State::Data(self.size)) }
                }
                _ => Err(ProtoError::InvalidChunkDelimiter),
            },
            DataCr => match byte {
                b'\r' => Ok(State::Framing(DataLf)),
                _ => Err(ProtoError::InvalidChunkDelimiter),
            },
            DataLf => match byte {
                b'\n' => Ok(State::Framing(SizeStart)),
                _ => Err(ProtoError::InvalidChunkDelimiter),
            },
            TrailerLineStart => match byte {
                b'\r' => Ok(State::Framing(EndLf)),
                b'\n' => Err(ProtoError::InvalidChunkDelimiter),
                _ if is_token_char(byte) => self.in_trailer(TrailerName),
                // SP or HTAB here is obs-fold; `:` here is an empty name.
                _ => Err(ProtoError::InvalidTrailer),
            },
            TrailerName => match byte {
                b':' => self.in_trailer(TrailerValue),
                _ if is_token_char(byte) => self.in_trailer(TrailerName),
                // CR (a line without `:`), LF, whitespace before `:`, ...
                _ => Err(ProtoError::InvalidTrailer),
            },
            TrailerValue => match byte {
                b'\r' => self.in_trailer(TrailerLf),
                b'\t' => self.in_trailer(TrailerValue),
                _ if is_control(byte) => Err(ProtoError::InvalidTrailer),
                _ => self.in_trailer(TrailerValue),
            },
            TrailerLf => match byte {
                b'\n' => self.in_trailer(TrailerLineStart),
                _ => Err(ProtoError::InvalidTrailer),
            },
            EndLf => match byte {
                b'\n' => Ok(State::Done),
                _ => Err(ProtoError::InvalidChunkDelimiter),
            },
        }
    }

    /// Counts one accepted byte of a chunk-size line against its limit.
    fn in_size_line(&mut self, next: Framing) -> Result<State, ProtoError> {
        self.line_len += 1;
        if self.line_len > self.max_chunk_line {
            return Err(ProtoError::ChunkLineTooLong(self.max_chunk_line));
        }
        Ok(State::Framing(next))
    }

    /// Counts one accepted byte of a trailer field line against its limit.
    fn in_trailer(&mut self, next: Framing) -> Result<State, ProtoError> {
        self.trailer_len += 1;
        if self.trailer_len > self.max_trailer_size {
            return Err(ProtoError::TrailersTooLarge(self.max_trailer_size));
        }
        Ok(State::Framing(next))
    }
}

/// The value of an ASCII hex digit, either case.
fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// A control byte: 0x00-0x1F or DEL (HTAB included; callers allow it first).
fn is_control(byte: u8) -> bool {
    byte < 0x20 || byte == 0x7f
}

/// A `tchar` of RFC 9110 section 5.6.2: what a field name is made of.
fn is_token_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Appends a chunk header ("{len:x}\r\n") for a data chunk of `len` bytes (len > 0).
///
/// A zero `len` would write the last chunk by accident, so it is a bug in
/// the caller (checked in debug builds); use [`LAST_CHUNK`] instead.
pub(crate) fn encode_chunk_header(len: usize, buf: &mut Vec<u8>) {
    debug_assert!(len > 0, "a data chunk must not be empty; use LAST_CHUNK");
    super::put_number(buf, len as u64, 16);
    buf.extend_from_slice(b"\r\n");
}

/// The CRLF that ends a chunk's data.
pub(crate) const CHUNK_END: &[u8] = b"\r\n";

/// The last chunk with an empty trailer section.
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: usize = 4096;
    const TRAILER: usize = 16 * 1024;

    fn decoder() -> ChunkedDecoder {
        ChunkedDecoder::new(LINE, TRAILER)
    }

    /// Decodes `input` fed `in_step` bytes at a time into an output buffer of
    /// `out_step` bytes, then calls `finish` at the end of input. Returns the
    /// body and how many input bytes the body took.
    ///
    /// Also checks the progress rule: every call with input, room in `out`
    /// and a body that is not done consumes something.
    fn decode_split(
        mut dec: ChunkedDecoder,
        input: &[u8],
        in_step: usize,
        out_step: usize,
    ) -> Result<(Vec<u8>, usize), ProtoError> {
        let mut body = Vec::new();
        let mut pos = 0;
        let mut out = vec![0u8; out_step];
        while !dec.is_done() {
            if pos == input.len() {
                dec.finish()?;
            }
            let end = input.len().min(pos + in_step);
            let (consumed, written) = dec.decode(&input[pos..end], &mut out)?;
            assert!(consumed > 0 || dec.is_done(), "no progress at {pos} of {input:?}");
            assert!(written <= consumed);
            body.extend_from_slice(&out[..written]);
            pos += consumed;
        }
        dec.finish()?;
        Ok((body, pos))
    }

    /// Decodes `input` in one call with room for all of it.
    fn decode_whole(input: &[u8]) -> Result<(Vec<u8>, usize), ProtoError> {
        decode_split(decoder(), input, input.len().max(1), input.len().max(1))
    }

    /// Decodes a complete body and returns it, checking all input was taken.
    fn body_of(input: &[u8]) -> Vec<u8> {
        let (body, consumed) = decode_whole(input).unwrap();
        assert_eq!(consumed, input.len(), "body of {input:?} ended early");
        body
    }

    fn error_of(input: &[u8]) -> ProtoError {
        decode_whole(input).unwrap_err()
    }

    /// Decodes with explicit limits, whole buffer.
    fn decode_limited(input: &[u8], line: usize, trailer: usize) -> Result<(Vec<u8>, usize), ProtoError> {
        decode_split(ChunkedDecoder::new(line, trailer), input, input.len().max(1), input.len().max(1))
    }

    #[test]
    fn simple_body() {
        assert_eq!(body_of(b"5\r\nhello\r\n0\r\n\r\n"), b"hello");
    }

    #[test]
    fn multiple_chunks() {
        assert_eq!(body_of(b"5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n"), b"hello world");
    }

    #[test]
    fn uppercase_and_mixed_case_hex() {
        assert_eq!(body_of(b"A\r\n0123456789\r\n0\r\n\r\n"), b"0123456789");
        let data = [b'x'; 0x1f];
        let mut input = b"1F\r\n".to_vec();
        input.extend_from_slice(&data);
        input.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(body_of(&input), data);
        input[..2].copy_from_slice(b"1f");
        assert_eq!(body_of(&input), data);
    }

    #[test]
    fn leading_zeros() {
        assert_eq!(body_of(b"000a\r\n0123456789\r\n000\r\n\r\n"), b"0123456789");
    }

    #[test]
    fn extension_without_value() {
        assert_eq!(body_of(b"5;foo\r\nhello\r\n0\r\n\r\n"), b"hello");
    }

    #[test]
    fn extension_with_value() {
        assert_eq!(body_of(b"5;foo=bar\r\nhello\r\n0;last=1\r\n\r\n"), b"hello");
    }

    #[test]
    fn extension_with_quoted_string() {
        assert_eq!(body_of(b"5;name=\"a b;c\\\"d\"\r\nhello\r\n0\r\n\r\n"), b"hello");
    }

    #[test]
    fn several_extensions_with_tab_and_obs_text() {
        assert_eq!(body_of(b"5;a=1;b\t=\t2;c=\xff\r\nhello\r\n0\r\n\r\n"), b"hello");
    }

    #[test]
    fn bws_before_semicolon() {
        assert_eq!(body_of(b"5 ;foo\r\nhello\r\n0\r\n\r\n"), b"hello");
        assert_eq!(body_of(b"5\t \t;foo\r\nhello\r\n0\r\n\r\n"), b"hello");
    }

    #[test]
    fn bws_before_crlf_is_accepted() {
        assert_eq!(body_of(b"5 \r\nhello\r\n0\t\r\n\r\n"), b"hello");
    }

    #[test]
    fn trailers_accepted_and_discarded() {
        let input = b"5\r\nhello\r\n0\r\nExpires: never\r\nX-Checksum:abc\r\nX-Empty:\r\n\r\n";
        assert_eq!(body_of(input), b"hello");
    }

    #[test]
    fn trailers_are_kept_as_field_lines_whatever_the_split() {
        let input = b"5\r\nhello\r\n0\r\nExpires: never\r\nX-Checksum:abc\r\nX-Empty:\r\n\r\n";
        for step in 1..=input.len() {
            let mut dec = decoder();
            let mut pos = 0;
            let mut out = [0u8; 16];
            while !dec.is_done() {
                let end = input.len().min(pos + step);
                pos += dec.decode(&input[pos..end], &mut out).unwrap().0;
            }
            assert_eq!(dec.take_trailers(), b"Expires: never\r\nX-Checksum:abc\r\nX-Empty:\r\n", "step {step}");
            assert!(dec.take_trailers().is_empty());
        }
        let mut dec = decoder();
        dec.decode(b"0\r\n\r\n", &mut []).unwrap();
        assert!(dec.is_done() && dec.take_trailers().is_empty());
    }

    #[test]
    fn skim_measures_a_buffered_body_without_keeping_it() {
        let input = b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-A: 1\r\n\r\n";
        let mut probe = decoder();
        assert_eq!(probe.skim(input).unwrap(), (input.len(), 11));
        assert!(probe.is_done());
        let mut probe = decoder();
        assert_eq!(probe.skim(&input[..15]).unwrap(), (15, 7));
        assert!(!probe.is_done());
        assert_eq!(decoder().skim(b"5\r\nhello\r\nzz").unwrap_err(), ProtoError::InvalidChunkSize);
    }

    #[test]
    fn empty_body() {
        assert_eq!(body_of(b"0\r\n\r\n"), b"");
        assert_eq!(body_of(LAST_CHUNK), b"");
    }

    #[test]
    fn bytes_after_the_body_are_left_alone() {
        let input = b"5\r\nhello\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n";
        let (body, consumed) = decode_whole(input).unwrap();
        assert_eq!(body, b"hello");
        assert_eq!(&input[consumed..], b"HTTP/1.1 200 OK\r\n");
    }

    /// Valid and invalid bodies; every split must agree with the whole buffer.
    const CORPUS: &[&[u8]] = &[
        b"5\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n",
        b"000a;ext=\"q;d\"\r\n0123456789\r\n0 ;x\r\nA: b\r\nC:d\r\n\r\nleftover",
        b"0\r\n\r\n",
        b"fffffffffffffffff\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"3\r\nabcX\r\n0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5\rhello\r\n0\r\n\r\n",
        b"0\r\nA: b\r\n c\r\n\r\n",
        b"0\r\nfoo\r\n\r\n",
        b"0\r\nA: b\n\r\n",
        b"3\r\nabc\r\n0\r\nA: b",
        b"3\r\nab",
    ];

    #[test]
    fn every_split_matches_whole_buffer() {
        for &input in CORPUS {
            let whole = decode_whole(input);
            for in_step in 1..=input.len() {
                for out_step in [1, 2, 3, 7, input.len()] {
                    let split = decode_split(decoder(), input, in_step, out_step);
                    assert_eq!(split, whole, "in_step {in_step} out_step {out_step} input {input:?}");
                }
            }
        }
    }

    #[test]
    fn one_byte_in_one_byte_out() {
        let input = b"5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nT: v\r\n\r\n";
        assert_eq!(decode_split(decoder(), input, 1, 1).unwrap(), (b"hello world".to_vec(), input.len()));
    }

    #[test]
    fn stops_when_out_is_full() {
        let mut dec = decoder();
        let mut out = [0u8; 3];
        assert_eq!(dec.decode(b"5\r\nhello\r\n0\r\n\r\n", &mut out), Ok((6, 3)));
        assert_eq!(&out, b"hel");
        assert!(!dec.is_done());
    }

    #[test]
    fn empty_out_consumes_only_framing() {
        let mut dec = decoder();
        assert_eq!(dec.decode(b"5\r\nhello\r\n0\r\n\r\n", &mut []), Ok((3, 0)));
        let mut out = [0u8; 5];
        assert_eq!(dec.decode(b"hello\r\n0\r\n\r\n", &mut out), Ok((12, 5)));
        assert!(dec.is_done());

        let mut dec = decoder();
        assert_eq!(dec.decode(b"5\r\nhello", &mut out), Ok((8, 5)));
        assert_eq!(dec.decode(b"\r\n0\r\n\r\nnext", &mut []), Ok((7, 0)));
        assert!(dec.is_done());
    }

    #[test]
    fn chunk_size_overflow() {
        assert_eq!(error_of(b"fffffffffffffffff\r\n"), ProtoError::InvalidChunkSize);
        assert_eq!(error_of(b"10000000000000000\r\n"), ProtoError::InvalidChunkSize);
    }

    #[test]
    fn chunk_size_u64_max_then_truncated() {
        let mut dec = decoder();
        let mut out = [0u8; 16];
        assert_eq!(dec.decode(b"ffffffffffffffff\r\nabc", &mut out), Ok((21, 3)));
        assert_eq!(&out[..3], b"abc");
        assert!(!dec.is_done());
        assert_eq!(dec.finish(), Err(ProtoError::TruncatedBody));
    }

    #[test]
    fn hex_prefix() {
        assert_eq!(error_of(b"0x5\r\nhello\r\n0\r\n\r\n"), ProtoError::InvalidChunkSize);
    }

    #[test]
    fn plus_sign() {
        assert_eq!(error_of(b"+5\r\nhello\r\n0\r\n\r\n"), ProtoError::InvalidChunkSize);
    }

    #[test]
    fn minus_sign() {
        assert_eq!(error_of(b"-5\r\nhello\r\n0\r\n\r\n"), ProtoError::InvalidChunkSize);
    }

    #[test]
    fn empty_size_line() {
        assert_eq!(error_of(b"\r\nhello\r\n0\r\n\r\n"), ProtoError::InvalidChunkSize);
        assert_eq!(error_of(b"\nhello"), ProtoError::InvalidChunkSize);
    }

    #[test]
    fn whitespace_before_digits() {
        assert_eq!(error_of(b" 5\r\nhello\r\n0\r\n\r\n"), ProtoError::InvalidChunkSize);
        assert_eq!(error_of(b"\t5\r\nhello\r\n0\r\n\r\n"), ProtoError::InvalidChunkSize);
    }

    #[test]
    fn whitespace_between_digits() {
        assert_eq!(error_of(b"1 0\r\n"), ProtoError::InvalidChunkSize);
    }

    #[test]
    fn non_hex_digit() {
        assert_eq!(error_of(b"g\r\n"), ProtoError::InvalidChunkSize);
        assert_eq!(error_of(b"5g\r\n"), ProtoError::InvalidChunkSize);
    }

    #[test]
    fn extension_without_size() {
        assert_eq!(error_of(b";foo\r\nhello\r\n0\r\n\r\n"), ProtoError::InvalidChunkSize);
    }

    #[test]
    fn control_byte_in_extension() {
        assert_eq!(error_of(b"5;a\0b\r\nhello\r\n0\r\n\r\n"), ProtoError::InvalidChunkSize);
        assert_eq!(error_of(b"5;a\x01\r\nhello\r\n0\r\n\r\n"), ProtoError::InvalidChunkSize);
        assert_eq!(error_of(b"5;a\x7f\r\nhello\r\n0\r\n\r\n"), ProtoError::InvalidChunkSize);
    }

    #[test]
    fn missing_crlf_after_data() {
        assert_eq!(error_of(b"3\r\nabcX"), ProtoError::InvalidChunkDelimiter);
    }

    #[test]
    fn data_longer_than_declared() {
        assert_eq!(error_of(b"3\r\nabcd\r\n0\r\n\r\n"), ProtoError::InvalidChunkDelimiter);
    }

    #[test]
    fn cr_without_lf_after_data() {
        assert_eq!(error_of(b"3\r\nabc\rX\n0\r\n\r\n"), ProtoError::InvalidChunkDelimiter);
    }

    #[test]
    fn bare_lf_after_data() {
        assert_eq!(error_of(b"3\r\nabc\n0\r\n\r\n"), ProtoError::InvalidChunkDelimiter);
        assert_eq!(decoder().decode(b"3\r\nabc\n", &mut [0; 3]), Err(ProtoError::InvalidChunkDelimiter));
    }

    #[test]
    fn bare_lf_after_size() {
        assert_eq!(error_of(b"5\nhello\r\n0\r\n\r\n"), ProtoError::InvalidChunkDelimiter);
        assert_eq!(error_of(b"5 \nhello\r\n0\r\n\r\n"), ProtoError::InvalidChunkDelimiter);
        // The LF itself is the error, not whatever follows it.
        assert_eq!(error_of(b"1\n\nX\r\n0\r\n\r\n"), ProtoError::InvalidChunkDelimiter);
        assert_eq!(decoder().decode(b"5\n", &mut []), Err(ProtoError::InvalidChunkDelimiter));
    }

    #[test]
    fn bare_lf_in_extension() {
        assert_eq!(error_of(b"5;foo\nhello\r\n0\r\n\r\n"), ProtoError::InvalidChunkDelimiter);
        assert_eq!(decoder().decode(b"5;foo\n", &mut []), Err(ProtoError::InvalidChunkDelimiter));
    }

    #[test]
    fn cr_not_followed_by_lf_after_size() {
        assert_eq!(error_of(b"5\rhello\r\n0\r\n\r\n"), ProtoError::InvalidChunkDelimiter);
        assert_eq!(error_of(b"5;a\r\rhello\r\n0\r\n\r\n"), ProtoError::InvalidChunkDelimiter);
    }

    #[test]
    fn chunk_line_at_limit_is_accepted() {
        // "5;abcdef" is 8 bytes; the CRLF does not count.
        let input = b"5;abcdef\r\nhello\r\n0\r\n\r\n";
        assert_eq!(decode_limited(input, 8, TRAILER).unwrap().0, b"hello");
        assert_eq!(decode_limited(input, 7, TRAILER), Err(ProtoError::ChunkLineTooLong(7)));
    }

    #[test]
    fn long_extension_errors_before_the_line_ends() {
        let mut input = b"1;".to_vec();
        input.resize(1 << 20, b'a');
        let mut dec = decoder();
        let mut out = [0u8; 1];
        let mut fed = 0;
        let error = loop {
            assert!(fed < 5000, "no error after {fed} bytes");
            match dec.decode(&input[fed..fed + 1], &mut out) {
                Ok((consumed, _)) => fed += consumed,
                Err(error) => break error,
            }
        };
        assert_eq!(error, ProtoError::ChunkLineTooLong(LINE));
        assert_eq!(fed, LINE, "the error comes with the first byte past the limit");
        assert_eq!(error_of(&input), ProtoError::ChunkLineTooLong(LINE));
    }

    #[test]
    fn endless_leading_zeros_hit_the_line_limit() {
        let input = vec![b'0'; LINE + 1];
        assert_eq!(error_of(&input), ProtoError::ChunkLineTooLong(LINE));
    }

    #[test]
    fn trailer_at_limit_is_accepted() {
        // "A: b\r\n" is 6 bytes; the final empty line does not count.
        let input = b"0\r\nA: b\r\nC:d\r\n\r\n";
        assert_eq!(decode_limited(input, LINE, 11).unwrap(), (Vec::new(), input.len()));
        assert_eq!(decode_limited(input, LINE, 10), Err(ProtoError::TrailersTooLarge(10)));
    }

    #[test]
    fn trailer_too_large() {
        let mut input = b"0\r\n".to_vec();
        for i in 0..2000 {
            input.extend_from_slice(format!("X-Field-{i}: value\r\n").as_bytes());
        }
        input.extend_from_slice(b"\r\n");
        assert_eq!(error_of(&input), ProtoError::TrailersTooLarge(TRAILER));
    }

    #[test]
    fn endless_trailer_line_errors_before_it_ends() {
        let mut input = b"0\r\nX: ".to_vec();
        input.resize(1 << 20, b'v');
        let mut dec = ChunkedDecoder::new(LINE, 100);
        let mut fed = 0;
        let error = loop {
            assert!(fed < 200, "no error after {fed} bytes");
            match dec.decode(&input[fed..fed + 1], &mut []) {
                Ok((consumed, _)) => fed += consumed,
                Err(error) => break error,
            }
        };
        assert_eq!(error, ProtoError::TrailersTooLarge(100));
    }

    #[test]
    fn trailer_obs_fold() {
        assert_eq!(error_of(b"0\r\nA: b\r\n c\r\n\r\n"), ProtoError::InvalidTrailer);
        assert_eq!(error_of(b"0\r\nA: b\r\n\tc\r\n\r\n"), ProtoError::InvalidTrailer);
        // The leading whitespace itself is the error, even on a line with a colon.
        assert_eq!(error_of(b"0\r\nA: b\r\n c: d\r\n\r\n"), ProtoError::InvalidTrailer);
        assert_eq!(decoder().decode(b"0\r\nA: b\r\n\t", &mut []), Err(ProtoError::InvalidTrailer));
    }

    #[test]
    fn trailer_without_colon() {
        assert_eq!(error_of(b"0\r\nfoo\r\n\r\n"), ProtoError::InvalidTrailer);
    }

    #[test]
    fn trailer_with_empty_name() {
        assert_eq!(error_of(b"0\r\n: v\r\n\r\n"), ProtoError::InvalidTrailer);
    }

    #[test]
    fn trailer_with_whitespace_before_colon() {
        assert_eq!(error_of(b"0\r\nA : v\r\n\r\n"), ProtoError::InvalidTrailer);
    }

    #[test]
    fn trailer_with_bare_lf() {
        assert_eq!(error_of(b"0\r\nA: b\n\r\n"), ProtoError::InvalidTrailer);
    }

    #[test]
    fn trailer_with_bare_cr() {
        assert_eq!(error_of(b"0\r\nA: b\rc\r\n\r\n"), ProtoError::InvalidTrailer);
    }

    #[test]
    fn trailer_with_nul() {
        assert_eq!(error_of(b"0\r\nA: b\0c\r\n\r\n"), ProtoError::InvalidTrailer);
        assert_eq!(error_of(b"0\r\nA\0: b\r\n\r\n"), ProtoError::InvalidTrailer);
    }

    #[test]
    fn final_line_bare_lf() {
        assert_eq!(error_of(b"0\r\n\n"), ProtoError::InvalidChunkDelimiter);
        assert_eq!(error_of(b"0\r\nA: b\r\n\n"), ProtoError::InvalidChunkDelimiter);
    }

    #[test]
    fn final_line_cr_without_lf() {
        assert_eq!(error_of(b"0\r\n\rX"), ProtoError::InvalidChunkDelimiter);
        assert_eq!(error_of(b"0\r\n\r\r\n"), ProtoError::InvalidChunkDelimiter);
    }

    #[test]
    fn truncated_empty_input() {
        assert_eq!(error_of(b""), ProtoError::TruncatedBody);
    }

    #[test]
    fn truncated_in_size() {
        assert_eq!(error_of(b"1"), ProtoError::TruncatedBody);
        assert_eq!(error_of(b"10\r"), ProtoError::TruncatedBody);
    }

    #[test]
    fn truncated_in_extension() {
        assert_eq!(error_of(b"5;foo=b"), ProtoError::TruncatedBody);
    }

    #[test]
    fn truncated_in_data() {
        assert_eq!(error_of(b"5\r\nhel"), ProtoError::TruncatedBody);
    }

    #[test]
    fn truncated_in_data_crlf() {
        assert_eq!(error_of(b"5\r\nhello"), ProtoError::TruncatedBody);
        assert_eq!(error_of(b"5\r\nhello\r"), ProtoError::TruncatedBody);
    }

    #[test]
    fn truncated_in_trailers() {
        assert_eq!(error_of(b"0\r\nA: b"), ProtoError::TruncatedBody);
        assert_eq!(error_of(b"0\r\nA: b\r\n"), ProtoError::TruncatedBody);
    }

    #[test]
    fn truncated_before_final_crlf() {
        assert_eq!(error_of(b"5\r\nhello\r\n0\r\n"), ProtoError::TruncatedBody);
        assert_eq!(error_of(b"5\r\nhello\r\n0\r\n\r"), ProtoError::TruncatedBody);
    }

    #[test]
    fn every_strict_prefix_is_truncated() {
        let input = b"5;a=b\r\nhello\r\n0\r\nT: v\r\n\r\n";
        for len in 0..input.len() {
            assert_eq!(error_of(&input[..len]), ProtoError::TruncatedBody, "prefix {len}");
        }
        assert_eq!(body_of(input), b"hello");
    }

    #[test]
    fn decode_after_done_consumes_nothing() {
        let mut dec = decoder();
        let mut out = [0u8; 8];
        assert_eq!(dec.decode(b"0\r\n\r\n", &mut out), Ok((5, 0)));
        assert!(dec.is_done());
        assert_eq!(dec.decode(b"5\r\nhello\r\n", &mut out), Ok((0, 0)));
        assert_eq!(dec.decode(b"garbage", &mut []), Ok((0, 0)));
        assert_eq!(dec.finish(), Ok(()));
    }

    #[test]
    fn errors_are_sticky() {
        let mut dec = decoder();
        let mut out = [0u8; 8];
        assert_eq!(dec.decode(b"x", &mut out), Err(ProtoError::InvalidChunkSize));
        assert_eq!(dec.decode(b"0\r\n\r\n", &mut out), Err(ProtoError::InvalidChunkSize));
        assert_eq!(dec.decode(b"", &mut out), Err(ProtoError::InvalidChunkSize));
        assert!(!dec.is_done());
        assert_eq!(dec.finish(), Err(ProtoError::TruncatedBody));
    }

    #[test]
    fn encode_chunk_header_writes_lowercase_hex() {
        let mut buf = Vec::new();
        encode_chunk_header(1, &mut buf);
        encode_chunk_header(0xff, &mut buf);
        encode_chunk_header(0x1000, &mut buf);
        assert_eq!(buf, b"1\r\nff\r\n1000\r\n");
        buf.clear();
        encode_chunk_header(usize::MAX, &mut buf);
        let expected = format!("{:x}\r\n", usize::MAX);
        assert_eq!(buf, expected.as_bytes());
    }

    #[test]
    fn encode_constants() {
        assert_eq!(CHUNK_END, b"\r\n");
        assert_eq!(LAST_CHUNK, b"0\r\n\r\n");
    }

    #[test]
    fn encode_round_trips_through_decoder() {
        let chunks: [&[u8]; 4] = [b"a", b"hello world", &[0x5a; 300], b"\r\n0\r\n\r\n"];
        let mut wire = Vec::new();
        for chunk in chunks {
            encode_chunk_header(chunk.len(), &mut wire);
            wire.extend_from_slice(chunk);
            wire.extend_from_slice(CHUNK_END);
        }
        wire.extend_from_slice(LAST_CHUNK);
        let expected = chunks.concat();
        assert_eq!(body_of(&wire), expected);
        assert_eq!(decode_split(decoder(), &wire, 1, 1).unwrap(), (expected, wire.len()));
    }
}
