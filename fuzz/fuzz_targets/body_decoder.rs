//! Arbitrary framing and arbitrary bytes through the body decoder, fed in
//! arbitrary splits.
//!
//! Input layout: `[kind, len_lo, len_hi, n_reads, n_outs, reads.., outs.., stream..]`.
//! `kind` picks the framing (bits 0-1: length, chunked, close-delimited,
//! empty), small limits (bit 2) and a Pending every 2nd, 3rd or 4th read (bits 3-4);
//! `len` is the Content-Length; `reads` and `outs` are the sizes of the
//! stream's reads and of the caller's buffers.
//!
//! Invariants:
//! * no panic, no loop: the number of polls is bounded, and Pending only
//!   after a wake-up was arranged;
//! * the same bytes or the same failure whatever the split (the fuzzed
//!   split against whole reads into a large buffer) and whatever the
//!   reading path (caller's buffers, or appending to a vector as
//!   `Response::bytes` does);
//! * for chunked input, the result equals the reference decoder below (or
//!   both fail, and a truncated body is reported as truncated by both);
//! * the body ends exactly where the framing says: the next response head
//!   read from the connection is the one that starts right after the body.

#![no_main]

mod common;

use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use common::{Driver, ReadStream, Sizes, assert_same_head, one_shot_final};
use libfuzzer_sys::fuzz_target;
use smolreq::fuzzing::{BodyDecoder, ChunkedDecoder, Conn, Framing, Limits, ProtoError};

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let (kind, len, n_reads, n_outs) = (
        data[0],
        u64::from(u16::from_le_bytes([data[1], data[2]])),
        usize::from(data[3] % 32),
        usize::from(data[4] % 32),
    );
    let rest = &data[5..];
    let n_reads = n_reads.min(rest.len());
    let (reads, rest) = rest.split_at(n_reads);
    let n_outs = n_outs.min(rest.len());
    let (outs, stream) = rest.split_at(n_outs);

    let framing = match kind & 3 {
        0 => Framing::Length(len),
        1 => Framing::Chunked,
        2 => Framing::CloseDelimited,
        _ => Framing::Empty,
    };
    let limits = if kind & 4 != 0 {
        Limits { max_chunk_line: 8, max_trailer_size: 32, ..Limits::default() }
    } else {
        Limits::default()
    };
    let pending_every = match (kind >> 3) & 3 {
        0 => 0,
        k => usize::from(k) + 1,
    };

    let split = read_body(stream, framing, &limits, Sizes::from_bytes(reads), Sizes::from_bytes(outs), pending_every);
    let whole = read_body(stream, framing, &limits, Sizes::whole(), Sizes::fixed(stream.len() + 1), 0);
    let appended = read_body_append(stream, framing, &limits, Sizes::from_bytes(reads), pending_every);
    for other in [&whole, &appended] {
        match (&split, other) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "the body depends on the split or the reading path"),
            (Err(_), Err(_)) => {}
            _ => panic!("the outcome depends on the split or the reading path: {split:?} vs {other:?}"),
        }
    }

    let expected = match framing {
        Framing::Empty => Ok((Vec::new(), 0)),
        Framing::Length(n) => match usize::try_from(n) {
            Ok(n) if n <= stream.len() => Ok((stream[..n].to_vec(), n)),
            _ => Err(Reference::Truncated),
        },
        Framing::CloseDelimited => Ok((stream.to_vec(), stream.len())),
        Framing::Chunked => {
            let reference = reference_chunked(stream, &limits);
            check_sans_io(stream, &limits, &reference, reads, outs);
            reference
        }
    };
    match (&expected, &split) {
        (Ok((body, end)), Ok(got)) => {
            assert_eq!(body, got, "body differs from the reference");
            // Whatever follows the body is the next response, read from
            // the connection exactly as if it were parsed on its own.
            for (sizes, pending) in [(Sizes::from_bytes(reads), pending_every), (Sizes::whole(), 0)] {
                check_next_head(stream, framing, &limits, sizes, pending, *end);
            }
        }
        (Err(_), Err(_)) => {}
        _ => panic!("reference {expected:?}, decoder {split:?}"),
    }
});

/// Reads a whole body through a connection over `stream`, polling by hand.
fn read_body(
    stream: &[u8],
    framing: Framing,
    limits: &Limits,
    reads: Sizes,
    outs: Sizes,
    pending_every: usize,
) -> Result<Vec<u8>, String> {
    let mut conn = Conn::new(ReadStream::new(stream, reads).with_pending_every(pending_every));
    let mut decoder = BodyDecoder::new(framing, limits);
    drain(&mut conn, &mut decoder, outs, stream.len())
}

/// Reads a whole body by appending to a vector, as `Response::bytes` does.
fn read_body_append(
    stream: &[u8],
    framing: Framing,
    limits: &Limits,
    reads: Sizes,
    pending_every: usize,
) -> Result<Vec<u8>, String> {
    let mut conn = Conn::new(ReadStream::new(stream, reads).with_pending_every(pending_every));
    let mut decoder = BodyDecoder::new(framing, limits);
    let mut driver = Driver::new(4 * stream.len() + 64);
    let mut body = Vec::new();
    loop {
        driver.steps += 1;
        assert!(driver.steps <= driver.budget, "no end after {} polls", driver.budget);
        let before = body.len();
        match conn.poll_body_append(&mut Context::from_waker(&driver.waker), &mut decoder, &mut body) {
            Poll::Ready(Ok(0)) => {
                assert!(decoder.is_done(), "Ok(0) before the end of the body");
                assert_eq!(body.len(), before, "bytes appended with Ok(0)");
                return Ok(body);
            }
            Poll::Ready(Ok(k)) => {
                assert_eq!(body.len(), before + k, "appended bytes and the count differ");
                assert!(body.len() <= stream.len(), "more body bytes than input bytes");
            }
            Poll::Ready(Err(e)) => return Err(e.to_string()),
            Poll::Pending => {
                assert_eq!(body.len(), before, "bytes appended with Pending");
                assert!(driver.flag.take(), "Pending without a wake-up");
            }
        }
    }
}

fn drain(conn: &mut Conn, decoder: &mut BodyDecoder, mut outs: Sizes, len: usize) -> Result<Vec<u8>, String> {
    let mut driver = Driver::new(4 * len + 64);
    let mut body = Vec::new();
    let mut out = vec![0u8; 300];
    loop {
        let n = outs.take(len + 1).max(1);
        if out.len() < n {
            out.resize(n, 0);
        }
        driver.steps += 1;
        assert!(driver.steps <= driver.budget, "no end after {} polls", driver.budget);
        match conn.poll_body(&mut Context::from_waker(&driver.waker), decoder, &mut out[..n]) {
            Poll::Ready(Ok(0)) => {
                assert!(decoder.is_done(), "Ok(0) before the end of the body");
                return Ok(body);
            }
            Poll::Ready(Ok(k)) => {
                assert!(k <= n);
                body.extend_from_slice(&out[..k]);
                assert!(body.len() <= len, "more body bytes than input bytes");
            }
            Poll::Ready(Err(e)) => return Err(e.to_string()),
            Poll::Pending => assert!(driver.flag.take(), "Pending without a wake-up"),
        }
    }
}

/// Reads the body, then a response head from the same connection, and
/// compares it with the head parsed from the bytes right after the body.
fn check_next_head(stream: &[u8], framing: Framing, limits: &Limits, reads: Sizes, pending: usize, end: usize) {
    let read_stream = ReadStream::new(stream, reads).with_pending_every(pending);
    let delivered = read_stream.delivered();
    let mut conn = Conn::new(read_stream);
    let mut decoder = BodyDecoder::new(framing, limits);
    drain(&mut conn, &mut decoder, Sizes::fixed(64), stream.len()).expect("the body decoded once");
    let delivered = delivered.load(Ordering::SeqCst);
    assert!(delivered >= end, "body done after {delivered} of {end} bytes");
    if delivered == end {
        assert!(!conn.has_unread_bytes(), "bytes of the body left unread");
    }
    let next = &stream[end..];
    let want = one_shot_final(next, limits);
    let got = Driver::new(4 * next.len() + 64).block_on(conn.read_head(limits));
    match (&got, &want) {
        (Ok(got), Some(want)) => assert_same_head(got, want),
        (Err(_), None) => {}
        _ => panic!("next head after the body: {got:?}, expected {want:?}"),
    }
}

/// The chunked decoder without I/O, fed input and output in the fuzzed
/// splits, against the reference.
fn check_sans_io(
    stream: &[u8],
    limits: &Limits,
    reference: &Result<(Vec<u8>, usize), Reference>,
    reads: &[u8],
    outs: &[u8],
) {
    let mut decoder = ChunkedDecoder::new(limits.max_chunk_line, limits.max_trailer_size);
    let (mut in_sizes, mut out_sizes) = (Sizes::from_bytes(reads), Sizes::from_bytes(outs));
    let mut body = Vec::new();
    let mut pos = 0;
    let mut out = vec![0u8; 300];
    let result = loop {
        if decoder.is_done() {
            break Ok((body, pos));
        }
        if pos == stream.len() {
            break Err(decoder.finish().unwrap_err());
        }
        let end = pos + in_sizes.take(stream.len() - pos).max(1);
        let n = out_sizes.take(300);
        match decoder.decode(&stream[pos..end], &mut out[..n]) {
            Ok((consumed, written)) => {
                assert!(consumed > 0 || decoder.is_done() || n == 0, "no progress at {pos}");
                assert!(written <= consumed && written <= n);
                body.extend_from_slice(&out[..written]);
                pos += consumed;
            }
            Err(e) => {
                let again = decoder.decode(&stream[pos..end], &mut out[..n]);
                assert_eq!(again, Err(e.clone()), "errors are sticky");
                break Err(e);
            }
        }
    };
    match (reference, &result) {
        (Ok(want), Ok(got)) => assert_eq!(want, got),
        (Err(Reference::Truncated), Err(ProtoError::TruncatedBody)) => {}
        (Err(Reference::Invalid), Err(e)) if *e != ProtoError::TruncatedBody => {}
        _ => panic!("reference {reference:?}, sans-IO decoder {result:?}"),
    }
}

/// Why the reference decoder rejects a body.
#[derive(Debug, PartialEq)]
enum Reference {
    /// Every byte was valid but the body is not complete.
    Truncated,
    /// Some byte breaks the grammar or a limit.
    Invalid,
}

/// One line of framing starting at a position.
enum Line<'a> {
    /// The content and the position after its CRLF.
    Complete(&'a [u8], usize),
    /// The input ends inside the line; `cr` if it ends right after a CR.
    Partial(&'a [u8], bool),
}

fn line(input: &[u8], pos: usize) -> Result<Line<'_>, Reference> {
    let rest = &input[pos..];
    match rest.iter().position(|&b| b == b'\r' || b == b'\n') {
        None => Ok(Line::Partial(rest, false)),
        Some(i) if rest[i] == b'\n' => Err(Reference::Invalid),
        Some(i) => match rest.get(i + 1) {
            None => Ok(Line::Partial(&rest[..i], true)),
            Some(b'\n') => Ok(Line::Complete(&rest[..i], pos + i + 2)),
            Some(_) => Err(Reference::Invalid),
        },
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_text(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

/// `1*HEXDIG *(SP / HTAB) [";" *text]`, or a prefix of it when not
/// `complete`; returns the size.
fn size_line(content: &[u8], complete: bool, limits: &Limits) -> Result<u64, Reference> {
    if content.len() > limits.max_chunk_line {
        return Err(Reference::Invalid);
    }
    let digits = content.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 && (complete || !content.is_empty()) {
        return Err(Reference::Invalid);
    }
    let mut size: u64 = 0;
    for &d in &content[..digits] {
        let v = u64::from((d as char).to_digit(16).unwrap_or(0) as u8);
        size = size.checked_mul(16).and_then(|s| s.checked_add(v)).ok_or(Reference::Invalid)?;
    }
    let rest = &content[digits..];
    let ws = rest.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    match rest.get(ws) {
        None => Ok(size),
        Some(b';') if rest[ws + 1..].iter().all(|&b| is_text(b)) => Ok(size),
        Some(_) => Err(Reference::Invalid),
    }
}

/// `field-name ":" *text`, or a prefix of it when not `complete`.
fn trailer_line(content: &[u8], complete: bool) -> Result<(), Reference> {
    let name = content.iter().take_while(|&&b| is_tchar(b)).count();
    if name == 0 && !content.is_empty() {
        return Err(Reference::Invalid);
    }
    match content.get(name) {
        None if complete => Err(Reference::Invalid),
        None => Ok(()),
        Some(b':') if content[name + 1..].iter().all(|&b| is_text(b)) => Ok(()),
        Some(_) => Err(Reference::Invalid),
    }
}

/// RFC 9112 section 7.1, decoded from a whole buffer: the body and the
/// length of its encoding, or why not.
fn reference_chunked(input: &[u8], limits: &Limits) -> Result<(Vec<u8>, usize), Reference> {
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let size = match line(input, pos)? {
            Line::Partial(content, cr) => {
                size_line(content, cr, limits)?;
                return Err(Reference::Truncated);
            }
            Line::Complete(content, next) => {
                pos = next;
                size_line(content, true, limits)?
            }
        };
        if size == 0 {
            break;
        }
        let available = (input.len() - pos) as u64;
        if size > available {
            return Err(Reference::Truncated);
        }
        let size = size as usize;
        body.extend_from_slice(&input[pos..pos + size]);
        pos += size;
        for expected in *b"\r\n" {
            match input.get(pos) {
                None => return Err(Reference::Truncated),
                Some(&b) if b == expected => pos += 1,
                Some(_) => return Err(Reference::Invalid),
            }
        }
    }
    let mut trailer = 0;
    loop {
        match line(input, pos)? {
            Line::Complete([], next) => return Ok((body, next)),
            Line::Complete(content, next) => {
                trailer_line(content, true)?;
                trailer += content.len() + 2;
                if trailer > limits.max_trailer_size {
                    return Err(Reference::Invalid);
                }
                pos = next;
            }
            Line::Partial(content, cr) => {
                if !content.is_empty() {
                    trailer_line(content, cr)?;
                    if trailer + content.len() + usize::from(cr) > limits.max_trailer_size {
                        return Err(Reference::Invalid);
                    }
                }
                return Err(Reference::Truncated);
            }
        }
    }
}
