//! Arbitrary bytes into the response head parser.
//!
//! Invariants, with the default limits and with small ones:
//! * no panic; a partial head is never longer than the head size limit, a
//!   complete one never longer or with more fields than the limits;
//! * a complete head is complete at exactly its length and not before, and
//!   its field values hold no CR, LF or NUL;
//! * the body framing decision equals a reference written from RFC 9112
//!   section 6.3 (or both are errors);
//! * reading the head through a connection, one byte at a time or in
//!   pseudo-random reads, with interim (1xx) responses skipped, gives the
//!   same result as parsing the whole input at once.

#![no_main]

mod common;

use common::{Driver, ReadStream, Sizes, assert_same_head, one_shot_final};
use http::{HeaderMap, Method, StatusCode, Version};
use libfuzzer_sys::fuzz_target;
use smolreq::fuzzing::{Conn, Framing, Limits, ResponseHead, parse_response_head, plan_body};

fuzz_target!(|data: &[u8]| {
    let small = Limits { max_head_size: 200, max_headers: 6, ..Limits::default() };
    for limits in [Limits::default(), small] {
        check_one_shot(data, &limits);
        check_incremental(data, &limits);
    }
});

fn check_one_shot(data: &[u8], limits: &Limits) {
    match parse_response_head(data, limits) {
        Ok(None) => assert!(data.len() <= limits.max_head_size, "a partial head beyond the limit was accepted"),
        Ok(Some((head, len))) => {
            assert!(len <= data.len() && len <= limits.max_head_size);
            assert!(head.headers().len() <= limits.max_headers);
            assert!((100..=999).contains(&head.status().as_u16()));
            assert!(matches!(head.version(), Version::HTTP_10 | Version::HTTP_11));
            assert!(!head.reason().iter().any(|&b| b == b'\r' || b == b'\n' || b == 0));
            for value in head.headers().values() {
                assert!(!value.as_bytes().iter().any(|&b| b == b'\r' || b == b'\n' || b == 0), "{value:?}");
            }
            let (again, again_len) = parse_response_head(&data[..len], limits).unwrap().unwrap();
            assert_eq!(again_len, len);
            assert_same_head(&head, &again);
            assert!(!matches!(parse_response_head(&data[..len - 1], limits), Ok(Some(_))), "complete too early");
            for method in [Method::GET, Method::HEAD, Method::POST] {
                for request_close in [false, true] {
                    let got = plan_body(&method, &head, request_close).map(|p| (p.framing, p.reusable));
                    let want = reference_plan(&method, &head, request_close);
                    assert_eq!(got.is_ok(), want.is_ok(), "{method} {head:?}: {got:?} vs reference {want:?}");
                    if let (Ok(got), Ok(want)) = (got, want) {
                        assert_eq!(got, want, "{method} {head:?}");
                    }
                }
            }
        }
        Err(_) => {}
    }
}

fn check_incremental(data: &[u8], limits: &Limits) {
    let want = one_shot_final(data, limits);
    let seed = data.iter().fold(data.len() as u64, |h, &b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let schedules = [Sizes::fixed(1), Sizes::pseudo_random(seed, 300, 64)];
    for (i, sizes) in schedules.into_iter().enumerate() {
        let stream = ReadStream::new(data, sizes).with_pending_every(if i == 0 { 0 } else { 3 });
        let mut conn = Conn::new(stream);
        let budget = 4 * data.len() + 64;
        let got = Driver::new(budget).block_on(conn.read_head(limits));
        match (&got, &want) {
            (Ok(got), Some(want)) => assert_same_head(got, want),
            (Err(_), None) => {}
            _ => panic!("split {i}: incremental {got:?}, one-shot {want:?}"),
        }
    }
}

/// RFC 9112 section 6.3 and 9.3, restated: the framing of a final response
/// and whether its connection may be reused.
fn reference_plan(method: &Method, head: &ResponseHead, request_close: bool) -> Result<(Framing, bool), ()> {
    let headers = head.headers();
    let close = list(headers, "connection").iter().any(|t| t.eq_ignore_ascii_case(b"close"));
    let keep_alive = list(headers, "connection").iter().any(|t| t.eq_ignore_ascii_case(b"keep-alive"));
    let persistent = match head.version() {
        Version::HTTP_11 => !close,
        _ => keep_alive && !close,
    };
    let reusable = persistent && !request_close;
    let status = head.status();
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((Framing::Empty, reusable));
    }
    let length = content_length(headers)?;
    if headers.contains_key("transfer-encoding") {
        if head.version() == Version::HTTP_10 {
            return Err(());
        }
        let codings = list(headers, "transfer-encoding");
        if codings.len() != 1 || !codings[0].eq_ignore_ascii_case(b"chunked") {
            return Err(());
        }
        return Ok((Framing::Chunked, reusable && length.is_none()));
    }
    match length {
        Some(0) => Ok((Framing::Empty, reusable)),
        Some(n) => Ok((Framing::Length(n), reusable)),
        None => Ok((Framing::CloseDelimited, false)),
    }
}

/// The non-empty elements of a comma-separated list field, trimmed.
fn list<'h>(headers: &'h HeaderMap, name: &str) -> Vec<&'h [u8]> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Content-Length: every element (empty ones included) is `1*DIGIT` within
/// u64, and all are equal.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ()> {
    let mut found = None;
    for value in headers.get_all("content-length") {
        for part in value.as_bytes().split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return Err(());
            }
            let n = part.iter().try_fold(0u64, |acc, &d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')));
            let n = n.ok_or(())?;
            if found.is_some_and(|f| f != n) {
                return Err(());
            }
            found = Some(n);
        }
    }
    Ok(found)
}
