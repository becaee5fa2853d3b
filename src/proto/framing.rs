//! Which bytes after a response head belong to its body (RFC 9112 section
//! 6.3), and whether the connection can carry another exchange afterwards.

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName};
use http::{Method, StatusCode, Version};

use super::ProtoError;
use super::head::ResponseHead;

/// How the end of a response body is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body at all (HEAD, 1xx, 204, 304).
    Empty,
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// The body ends when the server closes the connection.
    CloseDelimited,
}

/// The framing of a response body and whether the connection may be
/// reused once that body has been read to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BodyPlan {
    pub framing: Framing,
    pub reusable: bool,
}

/// Decides the framing of a final (non-1xx) response to `method`.
///
/// `request_close` is true when the request itself asked for
/// `Connection: close`.
pub(crate) fn plan_body(method: &Method, head: &ResponseHead, request_close: bool) -> Result<BodyPlan, ProtoError> {
    let headers = &head.headers;
    let mut reusable = !request_close && keep_alive(head.version, headers);
    let framing = if *method == Method::HEAD
        || head.status.is_informational()
        || head.status == StatusCode::NO_CONTENT
        || head.status == StatusCode::NOT_MODIFIED
    {
        Framing::Empty
    } else if headers.contains_key(header::TRANSFER_ENCODING) {
        if head.version == Version::HTTP_10 {
            // RFC 9112 section 6.1: Transfer-Encoding in an HTTP/1.0 message
            // means the framing is faulty.
            return Err(ProtoError::UnsupportedTransferEncoding);
        }
        transfer_coding_is_chunked(headers)?;
        if headers.contains_key(header::CONTENT_LENGTH) {
            // Chunked wins, but a message with both was made by someone the
            // next exchange should not trust (RFC 9112 section 6.3 item 3).
            content_length(headers)?;
            reusable = false;
        }
        Framing::Chunked
    } else if let Some(len) = content_length(headers)? {
        if len == 0 { Framing::Empty } else { Framing::Length(len) }
    } else {
        reusable = false;
        Framing::CloseDelimited
    };
    Ok(BodyPlan { framing, reusable })
}

/// HTTP/1.1 is persistent unless `Connection: close`; HTTP/1.0 only with
/// `Connection: keep-alive`.
fn keep_alive(version: Version, headers: &HeaderMap) -> bool {
    let has = |token: &str| connection_has(headers, token);
    match version {
        Version::HTTP_11 => !has("close"),
        Version::HTTP_10 => has("keep-alive") && !has("close"),
        _ => false,
    }
}

/// True if any `Connection` field lists `token` (case-insensitive).
pub(crate) fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    any_element(headers, &header::CONNECTION, &mut |t| t.eq_ignore_ascii_case(token.as_bytes()))
}

/// Calls `f` with each value of the `name` fields, in order, until it
/// returns true; true if it did. Not generic and not inlined: the field
/// iteration is compiled once for all its callers.
#[inline(never)]
pub(crate) fn any_value(headers: &HeaderMap, name: &HeaderName, f: &mut dyn FnMut(&[u8]) -> bool) -> bool {
    headers.get_all(name).iter().any(|v| f(v.as_bytes()))
}

/// [`any_value`] over the comma-separated elements of the values, each
/// trimmed of surrounding whitespace (empty elements included).
fn any_element(headers: &HeaderMap, name: &HeaderName, f: &mut dyn FnMut(&[u8]) -> bool) -> bool {
    any_value(headers, name, &mut |value| any_element_of(value, f))
}

/// Calls `f` with each comma-separated element of `value`, trimmed of
/// surrounding whitespace, until it returns true; true if it did.
#[inline(never)]
fn any_element_of(value: &[u8], f: &mut dyn FnMut(&[u8]) -> bool) -> bool {
    value.split(|&b| b == b',').any(|element| f(element.trim_ascii()))
}

/// Accepts exactly one transfer coding, `chunked`, in one or more fields.
fn transfer_coding_is_chunked(headers: &HeaderMap) -> Result<(), ProtoError> {
    let mut codings = 0;
    let other = any_element(headers, &header::TRANSFER_ENCODING, &mut |coding| {
        if coding.is_empty() {
            return false;
        }
        codings += 1;
        !coding.eq_ignore_ascii_case(b"chunked")
    });
    if !other && codings == 1 { Ok(()) } else { Err(ProtoError::UnsupportedTransferEncoding) }
}

/// The Content-Length, if present. Repeated identical values (in one field
/// or several) are accepted as one; anything else malformed or conflicting
/// is an error.
pub(crate) fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ProtoError> {
    let mut found: Option<u64> = None;
    let bad = any_element(headers, &header::CONTENT_LENGTH, &mut |part| match parse_decimal(part) {
        Some(n) if found.is_none_or(|prev| prev == n) => {
            found = Some(n);
            false
        }
        _ => true,
    });
    if bad { Err(ProtoError::InvalidContentLength) } else { Ok(found) }
}

/// Strict `1*DIGIT` into a u64: no sign, no space, no overflow. Leading
/// zeros are digits like any other, however many there are.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// The server's `Keep-Alive: timeout=N`, if it sent one.
pub(crate) fn keep_alive_timeout(headers: &HeaderMap) -> Option<Duration> {
    // A constant name: looking a `&str` up would link the header name
    // parser a second time.
    const KEEP_ALIVE: header::HeaderName = header::HeaderName::from_static("keep-alive");
    // The first field only, as `HeaderMap::get` has it, through the
    // shared field walker.
    let mut timeout = None;
    any_value(headers, &KEEP_ALIVE, &mut |value| {
        timeout = keep_alive_param(value);
        true
    });
    timeout
}

/// The `timeout` parameter of a Keep-Alive value. `None` unless the value
/// is visible ASCII (what `HeaderValue::to_str` accepts).
fn keep_alive_param(value: &[u8]) -> Option<Duration> {
    if !value.iter().all(|&b| (32..127).contains(&b) || b == b'\t') {
        return None;
    }
    let mut timeout = None;
    any_element_of(value, &mut |param| {
        let Some(eq) = param.iter().position(|&b| b == b'=') else { return false };
        if !param[..eq].trim_ascii().eq_ignore_ascii_case(b"timeout") {
            return false;
        }
        let mut secs = param[eq + 1..].trim_ascii();
        while let [b'"', rest @ ..] = secs {
            secs = rest;
        }
        while let [rest @ .., b'"'] = secs {
            secs = rest;
        }
        timeout = parse_decimal(secs.strip_prefix(b"+").unwrap_or(secs)).map(Duration::from_secs);
        timeout.is_some()
    });
    timeout
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Limits;
    use crate::proto::head::parse_response_head;

    fn plan_for(method: Method, raw: &str) -> Result<BodyPlan, ProtoError> {
        let (head, _) = parse_response_head(raw.as_bytes(), &Limits::default()).unwrap().unwrap();
        plan_body(&method, &head, false)
    }

    fn plan(raw: &str) -> Result<BodyPlan, ProtoError> {
        plan_for(Method::GET, raw)
    }

    #[test]
    fn content_length_body() {
        let p = plan("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n").unwrap();
        assert_eq!(p, BodyPlan { framing: Framing::Length(12), reusable: true });
    }

    #[test]
    fn zero_content_length_is_empty() {
        assert_eq!(plan("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap().framing, Framing::Empty);
    }

    #[test]
    fn head_response_has_no_body_despite_length() {
        let p = plan_for(Method::HEAD, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n").unwrap();
        assert_eq!(p, BodyPlan { framing: Framing::Empty, reusable: true });
    }

    #[test]
    fn head_response_with_chunked_has_no_body() {
        let p = plan_for(Method::HEAD, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert_eq!(p.framing, Framing::Empty);
    }

    #[test]
    fn no_content_and_not_modified_have_no_body() {
        for status in ["204 No Content", "304 Not Modified"] {
            let p = plan(&format!("HTTP/1.1 {status}\r\nContent-Length: 10\r\n\r\n")).unwrap();
            assert_eq!(p, BodyPlan { framing: Framing::Empty, reusable: true }, "{status}");
        }
    }

    #[test]
    fn chunked_body() {
        let p = plan("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert_eq!(p, BodyPlan { framing: Framing::Chunked, reusable: true });
        let p = plan("HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n").unwrap();
        assert_eq!(p.framing, Framing::Chunked);
    }

    #[test]
    fn chunked_and_content_length_chunked_wins_not_reusable() {
        let p = plan("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert_eq!(p, BodyPlan { framing: Framing::Chunked, reusable: false });
    }

    #[test]
    fn chunked_and_malformed_content_length_is_error() {
        assert!(plan("HTTP/1.1 200 OK\r\nContent-Length: x\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
    }

    #[test]
    fn unknown_transfer_coding_is_error() {
        assert_eq!(
            plan("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").unwrap_err(),
            ProtoError::UnsupportedTransferEncoding
        );
        assert!(plan("HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n").is_err());
    }

    #[test]
    fn chunked_twice_is_error() {
        assert!(plan("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(plan("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n").is_err());
    }

    #[test]
    fn transfer_encoding_in_http10_is_error() {
        assert!(plan("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
    }

    #[test]
    fn close_delimited_without_length() {
        let p = plan("HTTP/1.1 200 OK\r\n\r\n").unwrap();
        assert_eq!(p, BodyPlan { framing: Framing::CloseDelimited, reusable: false });
    }

    #[test]
    fn connection_close_is_not_reusable() {
        let p = plan("HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\nContent-Length: 1\r\n\r\n").unwrap();
        assert!(!p.reusable);
    }

    #[test]
    fn request_close_is_not_reusable() {
        let (head, _) =
            parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n", &Limits::default()).unwrap().unwrap();
        assert!(!plan_body(&Method::GET, &head, true).unwrap().reusable);
    }

    #[test]
    fn http10_needs_keep_alive_to_be_reused() {
        assert!(!plan("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n").unwrap().reusable);
        assert!(plan("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n").unwrap().reusable);
        let p = plan("HTTP/1.0 200 OK\r\n\r\n").unwrap();
        assert_eq!(p, BodyPlan { framing: Framing::CloseDelimited, reusable: false });
    }

    #[test]
    fn conflicting_content_lengths_are_error() {
        assert_eq!(
            plan("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n").unwrap_err(),
            ProtoError::InvalidContentLength
        );
        assert!(plan("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n").is_err());
    }

    #[test]
    fn identical_content_lengths_are_one() {
        assert_eq!(
            plan("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n").unwrap().framing,
            Framing::Length(5)
        );
        assert_eq!(plan("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n").unwrap().framing, Framing::Length(5));
    }

    #[test]
    fn malformed_content_lengths_are_error() {
        for bad in ["-1", "+5", "5a", "0x10", "", " ", "1 2", "99999999999999999999999", "5,", "1.0"] {
            let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n");
            assert_eq!(plan(&raw).unwrap_err(), ProtoError::InvalidContentLength, "{bad:?}");
        }
    }

    #[test]
    fn largest_content_length_is_accepted() {
        let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", u64::MAX);
        assert_eq!(plan(&raw).unwrap().framing, Framing::Length(u64::MAX));
    }

    #[test]
    fn content_length_with_many_leading_zeros_is_accepted() {
        // Found by the response_head fuzz target: a valid length written
        // with more than 20 digits was rejected.
        let raw = "HTTP/1.1 200 OK\r\nContent-Length:10000000\r\nContent-Length:0000000000000000000010000000\r\n\r\n";
        assert_eq!(plan(raw).unwrap().framing, Framing::Length(10_000_000));
        let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {}5\r\n\r\n", "0".repeat(100));
        assert_eq!(plan(&raw).unwrap().framing, Framing::Length(5));
        let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: 0{}0\r\n\r\n", u64::MAX);
        assert_eq!(plan(&raw).unwrap_err(), ProtoError::InvalidContentLength);
    }

    #[test]
    fn keep_alive_timeout_is_read() {
        let (head, _) =
            parse_response_head(b"HTTP/1.1 200 OK\r\nKeep-Alive: max=100, timeout=5\r\n\r\n", &Limits::default())
                .unwrap()
                .unwrap();
        assert_eq!(keep_alive_timeout(&head.headers), Some(Duration::from_secs(5)));
        let (head, _) =
            parse_response_head(b"HTTP/1.1 200 OK\r\nKeep-Alive: bogus\r\n\r\n", &Limits::default()).unwrap().unwrap();
        assert_eq!(keep_alive_timeout(&head.headers), None);
        // The number is read as `str::parse::<u64>` reads it, trimmed and unquoted.
        for (value, secs) in [
            ("timeout=\"7\"", Some(7)),
            ("timeout=+3", Some(3)),
            ("max=1, Timeout = 4 ", Some(4)),
            ("timeout=-1", None),
            ("timeout=++1", None),
            ("timeout=+", None),
            ("timeout=\" 2\"", None),
            ("timeout=99999999999999999999", None),
            ("timeout", None),
        ] {
            let raw = format!("HTTP/1.1 200 OK\r\nKeep-Alive: {value}\r\n\r\n");
            let (head, _) = parse_response_head(raw.as_bytes(), &Limits::default()).unwrap().unwrap();
            assert_eq!(keep_alive_timeout(&head.headers), secs.map(Duration::from_secs), "{value}");
            let reference = value.split(',').find_map(|param| {
                let (name, secs) = param.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("timeout")
                    .then(|| secs.trim().trim_matches('"').parse::<u64>().ok())?
            });
            assert_eq!(reference, secs, "the str reading of {value}");
        }
        // Not visible ASCII: `to_str` refuses it, and so is the timeout.
        let raw = b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, x=\xff\r\n\r\n";
        let (head, _) = parse_response_head(raw, &Limits::default()).unwrap().unwrap();
        assert!(head.headers.get("keep-alive").unwrap().to_str().is_err());
        assert_eq!(keep_alive_timeout(&head.headers), None);
        // The first field only, as `HeaderMap::get` reads it.
        let raw = b"HTTP/1.1 200 OK\r\nKeep-Alive: max=5\r\nKeep-Alive: timeout=5\r\n\r\n";
        let (head, _) = parse_response_head(raw, &Limits::default()).unwrap().unwrap();
        assert_eq!(keep_alive_timeout(&head.headers), None);
    }
}
