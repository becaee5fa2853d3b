//! Request head encoding and response head parsing.

use std::mem::MaybeUninit;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};

use super::framing::any_value;
use super::{Limits, ProtoError};

/// How the request body is framed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RequestFraming {
    /// No body and no framing header (GET, HEAD, ... without a body).
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Everything needed to write one request head.
#[derive(Debug)]
pub(crate) struct RequestHead<'a> {
    pub method: &'a Method,
    /// The request target in origin form (`/path?query`).
    pub target: &'a str,
    /// The Host header value (`host[:port]`), used unless `headers` has one.
    pub host: &'a str,
    pub headers: &'a HeaderMap,
    /// The User-Agent written unless `headers` has one.
    pub user_agent: &'a str,
    pub framing: RequestFraming,
    /// The request goes to an HTTP proxy (in absolute form): a
    /// `Proxy-Authorization` in `headers` may go too. Otherwise it is
    /// never written: it is meant for a proxy, not an origin.
    pub to_proxy: bool,
    /// The proxy's credentials, written instead of any in `headers`.
    pub proxy_authorization: Option<&'a HeaderValue>,
}

/// Appends the encoded request head to `buf`.
///
/// Every component is validated first: a CR, LF or NUL anywhere (or a space
/// in the target) is an error and nothing is appended.
pub(crate) fn encode_request_head(head: &RequestHead<'_>, buf: &mut Vec<u8>) -> Result<(), ProtoError> {
    validate_request_head(head)?;
    let start = buf.len();
    buf.extend_from_slice(head.method.as_str().as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(head.target.as_bytes());
    buf.extend_from_slice(b" HTTP/1.1\r\n");
    // Through the framing module's field walker: an inlined lookup of
    // each name would cost more code than it saves time.
    let has = |name| any_value(head.headers, name, &mut |_| true);
    if !has(&header::HOST) {
        put_field(buf, b"Host", head.host.as_bytes());
    }
    for (name, value) in head.headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue; // written below, from the body itself
        }
        if name == header::PROXY_AUTHORIZATION && (!head.to_proxy || head.proxy_authorization.is_some()) {
            continue; // for a proxy only; the configured credentials win
        }
        put_field(buf, name.as_str().as_bytes(), value.as_bytes());
    }
    if let Some(value) = head.proxy_authorization {
        put_field(buf, b"Proxy-Authorization", value.as_bytes());
    }
    if !has(&header::USER_AGENT) {
        put_field(buf, b"User-Agent", head.user_agent.as_bytes());
    }
    match head.framing {
        RequestFraming::None => {}
        RequestFraming::Length(n) => {
            buf.extend_from_slice(b"Content-Length: ");
            super::put_number(buf, n, 10);
            buf.extend_from_slice(b"\r\n");
        }
        RequestFraming::Chunked => buf.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
    }
    buf.extend_from_slice(b"\r\n");
    debug_assert!(buf.len() > start);
    Ok(())
}

#[inline(never)]
fn put_field(buf: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    buf.extend_from_slice(name);
    buf.extend_from_slice(b": ");
    buf.extend_from_slice(value);
    buf.extend_from_slice(b"\r\n");
}

fn validate_request_head(head: &RequestHead<'_>) -> Result<(), ProtoError> {
    if head.method.as_str().is_empty() || !head.method.as_str().bytes().all(is_token_byte) {
        return Err(ProtoError::InvalidRequest("method is not a valid token"));
    }
    if head.method == Method::CONNECT {
        return Err(ProtoError::InvalidRequest("CONNECT is not supported"));
    }
    let target = head.target.as_bytes();
    if target.is_empty() || target.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(ProtoError::InvalidRequest("request target contains a space or control byte"));
    }
    if head.host.is_empty() || head.host.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(ProtoError::InvalidRequest("host contains a space or control byte"));
    }
    for (name, value) in head.headers {
        if name.as_str().is_empty() || !name.as_str().bytes().all(is_token_byte) {
            return Err(ProtoError::InvalidRequest("header name is not a valid token"));
        }
        if value.as_bytes().iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(ProtoError::InvalidRequest("header value contains CR, LF or NUL"));
        }
    }
    if head.user_agent.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(ProtoError::InvalidRequest("user agent contains CR, LF or NUL"));
    }
    Ok(())
}

/// `tchar` of RFC 9110 section 5.6.2.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A parsed response head.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub version: Version,
    pub status: StatusCode,
    /// The reason phrase as sent (may be empty).
    pub reason: Bytes,
    pub headers: HeaderMap,
    /// The whole head as received: status line, fields, empty line.
    pub raw: Bytes,
}

/// Number of header slots kept on the stack; larger limits use the heap.
const STACK_HEADERS: usize = 128;

/// Returns true if `buf` may hold a complete head: it contains an empty line.
///
/// Scanning starts at `from` (minus three bytes of overlap), so a head that
/// arrives one byte at a time is scanned once in total, not once per byte.
pub(crate) fn may_be_complete(buf: &[u8], from: usize) -> bool {
    let start = from.saturating_sub(3);
    let tail = &buf[start..];
    tail.windows(2).any(|w| w == b"\n\n") || tail.windows(3).any(|w| w == b"\n\r\n")
}

/// Parses a response head from the start of `buf`, copying it.
///
/// Returns `Ok(None)` when more bytes are needed, or the head and its
/// length in bytes. Enforces the head size and field count limits. The
/// connection uses [`response_head_len`] and [`build_response_head`]
/// instead, to share its read buffer rather than copy.
#[allow(dead_code)] // used by unit tests and the fuzz targets
pub(crate) fn parse_response_head(buf: &[u8], limits: &Limits) -> Result<Option<(ResponseHead, usize)>, ProtoError> {
    match response_head_len(buf, limits)? {
        None => Ok(None),
        Some(len) => Ok(Some((build_response_head(Bytes::copy_from_slice(&buf[..len]), limits)?, len))),
    }
}

/// Checks whether `buf` starts with a complete, valid response head and
/// returns its length; `Ok(None)` when more bytes are needed.
pub(crate) fn response_head_len(buf: &[u8], limits: &Limits) -> Result<Option<usize>, ProtoError> {
    Ok(response_head_status(buf, limits)?.map(|(len, _)| len))
}

/// [`response_head_len`] and the head's status code.
pub(crate) fn response_head_status(buf: &[u8], limits: &Limits) -> Result<Option<(usize, StatusCode)>, ProtoError> {
    let status = |response: &httparse::Response<'_, '_>, len| {
        let status = response.code.and_then(|c| StatusCode::from_u16(c).ok()).ok_or(ProtoError::InvalidStatus)?;
        Ok((len, status))
    };
    match as_http11(buf, limits) {
        Some(patched) => with_parsed(&patched, limits, status),
        None => with_parsed(buf, limits, status),
    }
}

/// A status line of `HTTP/1.x` with a minor version above 1 is processed
/// as HTTP/1.1 (RFC 9110 section 2.5: a recipient of a higher minor
/// version of the same major version treats the message as the highest
/// minor version it implements). httparse refuses those, so this returns a
/// copy of the head (at most the head size limit and one byte) with the
/// minor version rewritten to 1; `None` for every other version. Rare, so
/// the copy costs nothing in the common case.
fn as_http11(buf: &[u8], limits: &Limits) -> Option<Vec<u8>> {
    match buf {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'2'..=b'9', b' ', ..] => {
            let mut copy = buf[..buf.len().min(limits.max_head_size.saturating_add(1))].to_vec();
            copy[7] = b'1';
            Some(copy)
        }
        _ => None,
    }
}

/// Builds the head from `head`, a complete head as measured by
/// [`response_head_len`]. Header values and the reason phrase are slices
/// of `head`: no copy, no allocation per field.
pub(crate) fn build_response_head(head: Bytes, limits: &Limits) -> Result<ResponseHead, ProtoError> {
    // Field values are found by their offsets in the parsed bytes, which
    // are the same in `head` and in a version-patched copy of it.
    let patched = as_http11(&head, limits);
    let parsed: &[u8] = patched.as_deref().unwrap_or(&head);
    let built = with_parsed(parsed, limits, |response, _| {
        let version = if response.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
        let status = response.code.and_then(|c| StatusCode::from_u16(c).ok()).ok_or(ProtoError::InvalidStatus)?;
        let reason = match response.reason {
            Some(r) if !r.is_empty() => head.slice(range_in(parsed, r.as_bytes())),
            _ => Bytes::new(),
        };
        let mut headers = HeaderMap::with_capacity(response.headers.len());
        for field in response.headers.iter() {
            let name = HeaderName::from_bytes(field.name.as_bytes())
                .map_err(|_| ProtoError::InvalidHead("invalid header name"))?;
            let value = if field.value.contains(&b'\n') {
                Bytes::from(unfold(field.value))
            } else {
                head.slice(range_in(parsed, field.value))
            };
            let value =
                HeaderValue::from_maybe_shared(value).map_err(|_| ProtoError::InvalidHead("invalid header value"))?;
            headers.append(name, value);
        }
        Ok(ResponseHead { version, status, reason, headers, raw: head.clone() })
    })?;
    built.ok_or(ProtoError::InvalidHead("incomplete response head"))
}

/// Runs httparse over `buf` with header slots on the stack (or the heap
/// for limits above [`STACK_HEADERS`]), checks the limits, version and
/// status, and hands a complete head to `f` with its length.
fn with_parsed<T>(
    buf: &[u8],
    limits: &Limits,
    f: impl FnOnce(&httparse::Response<'_, '_>, usize) -> Result<T, ProtoError>,
) -> Result<Option<T>, ProtoError> {
    if limits.max_headers <= STACK_HEADERS {
        let mut slots = [const { MaybeUninit::uninit() }; STACK_HEADERS];
        parse_with(buf, limits, &mut slots[..limits.max_headers], f)
    } else {
        // A head has fewer fields than lines: a limit above that (up to
        // `usize::MAX`) needs no more slots than the lines that are here.
        let lines = buf.iter().filter(|&&b| b == b'\n').count();
        let count = limits.max_headers.min(lines);
        let mut slots = Vec::with_capacity(count);
        slots.resize_with(count, MaybeUninit::uninit);
        parse_with(buf, limits, &mut slots, f)
    }
}

fn parse_with<'b, T>(
    buf: &'b [u8],
    limits: &Limits,
    slots: &mut [MaybeUninit<httparse::Header<'b>>],
    f: impl FnOnce(&httparse::Response<'_, '_>, usize) -> Result<T, ProtoError>,
) -> Result<Option<T>, ProtoError> {
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .allow_obsolete_multiline_headers_in_responses(true)
        .parse_response_with_uninit_headers(&mut response, buf, slots);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_head_size {
                return Err(ProtoError::HeadTooLarge(limits.max_head_size));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ProtoError::TooManyHeaders(limits.max_headers));
        }
        Err(httparse::Error::Status) => return Err(ProtoError::InvalidHead("malformed status line")),
        Err(httparse::Error::Version) => return Err(ProtoError::InvalidHead("unsupported HTTP version")),
        Err(httparse::Error::HeaderName) => return Err(ProtoError::InvalidHead("invalid header name")),
        Err(httparse::Error::HeaderValue) => return Err(ProtoError::InvalidHead("invalid header value")),
        Err(httparse::Error::NewLine) => return Err(ProtoError::InvalidHead("invalid line ending")),
        Err(httparse::Error::Token) => return Err(ProtoError::InvalidHead("invalid token")),
    };
    if len > limits.max_head_size {
        return Err(ProtoError::HeadTooLarge(limits.max_head_size));
    }
    if !matches!(response.version, Some(0 | 1)) {
        return Err(ProtoError::InvalidHead("unsupported HTTP version"));
    }
    match response.code.map(StatusCode::from_u16) {
        Some(Ok(_)) => {}
        _ => return Err(ProtoError::InvalidStatus),
    }
    f(&response, len).map(Some)
}

/// The position of `part`, a subslice of `whole`, within `whole`.
fn range_in(whole: &[u8], part: &[u8]) -> std::ops::Range<usize> {
    let start = part.as_ptr() as usize - whole.as_ptr() as usize;
    start..start + part.len()
}

/// Replaces each obs-fold (CRLF or LF followed by whitespace) with one space
/// (RFC 9112 section 5.2).
fn unfold(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        match value[i] {
            b'\r' | b'\n' => {
                while i < value.len() && matches!(value[i], b'\r' | b'\n' | b' ' | b'\t') {
                    i += 1;
                }
                out.push(b' ');
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn higher_minor_version_is_processed_as_http11() {
        let buf = b"HTTP/1.2 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello";
        let (head, len) = parse(buf).unwrap().unwrap();
        assert_eq!(head.version, Version::HTTP_11);
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(len, buf.len() - 5);
        assert_eq!(head.headers["x-a"], "b");
        assert_eq!(head.headers["content-length"], "5");
        assert_eq!(&head.reason[..], b"OK");
        assert_eq!(&head.raw[..], &buf[..len], "the raw head is what the server sent");
        let (head, _) = parse(b"HTTP/1.9 404 Nope\r\n\r\n").unwrap().unwrap();
        assert_eq!((head.version, head.status.as_u16()), (Version::HTTP_11, 404));
        // Partial heads wait for more, as with HTTP/1.1.
        assert!(parse(b"HTTP/1.3 200 OK\r\nX: y").unwrap().is_none());
    }

    #[test]
    fn other_versions_are_still_refused() {
        for buf in [
            &b"HTTP/1.10 200 OK\r\n\r\n"[..],
            b"HTTP/2.0 200 OK\r\n\r\n",
            b"HTTP/0.9 200 OK\r\n\r\n",
            b"HTTP/1.x 200 OK\r\n\r\n",
            b"HTTP/1.2\r\n\r\n",
        ] {
            assert!(parse(buf).is_err(), "{:?}", String::from_utf8_lossy(buf));
        }
    }

    #[test]
    fn huge_max_headers_limit_does_not_allocate_for_it() {
        // `max_headers(usize::MAX)` used to reserve usize::MAX slots and
        // panic with a capacity overflow on the first response.
        let limits = Limits { max_headers: usize::MAX, ..Limits::default() };
        let (head, _) = parse_response_head(b"HTTP/1.1 200 OK\r\nA: 1\r\n\r\n", &limits).unwrap().unwrap();
        assert_eq!(head.headers["a"], "1");
        let mut buf = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..1000 {
            buf.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        buf.extend_from_slice(b"\r\n");
        let (head, _) = parse_response_head(&buf, &limits).unwrap().unwrap();
        assert_eq!(head.headers.len(), 1000);
        // Still counted exactly against a limit between the two paths.
        let limits = Limits { max_headers: 999, ..Limits::default() };
        assert_eq!(parse_response_head(&buf, &limits).unwrap_err(), ProtoError::TooManyHeaders(999));
        let limits = Limits { max_headers: 1000, ..Limits::default() };
        assert!(parse_response_head(&buf, &limits).unwrap().is_some());
    }

    fn parse(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, ProtoError> {
        parse_response_head(buf, &Limits::default())
    }

    fn encode(method: Method, target: &str, headers: HeaderMap, framing: RequestFraming) -> Result<String, ProtoError> {
        let head = RequestHead {
            method: &method,
            target,
            host: "example.test:8080",
            headers: &headers,
            user_agent: "smolreq/test",
            framing,
            to_proxy: false,
            proxy_authorization: None,
        };
        let mut buf = Vec::new();
        encode_request_head(&head, &mut buf)?;
        Ok(String::from_utf8(buf).unwrap())
    }

    fn encode_proxied(to_proxy: bool, ours: Option<&HeaderValue>, caller: Option<&'static str>) -> String {
        let mut headers = HeaderMap::new();
        if let Some(v) = caller {
            headers.insert(header::PROXY_AUTHORIZATION, HeaderValue::from_static(v));
        }
        let head = RequestHead {
            method: &Method::GET,
            target: "http://example.test:8080/a",
            host: "example.test:8080",
            headers: &headers,
            user_agent: "u",
            framing: RequestFraming::None,
            to_proxy,
            proxy_authorization: ours,
        };
        let mut buf = Vec::new();
        encode_request_head(&head, &mut buf).unwrap();
        String::from_utf8(buf).unwrap().to_ascii_lowercase()
    }

    #[test]
    fn proxy_authorization_goes_to_a_proxy_only() {
        let ours = HeaderValue::from_static("Basic b3Vycw==");
        // To an origin: never, whoever set it.
        assert!(!encode_proxied(false, None, Some("Basic Y2FsbGVy")).contains("proxy-authorization"));
        // To a proxy: ours replaces the caller's; the caller's goes when there is no other.
        let s = encode_proxied(true, Some(&ours), Some("Basic Y2FsbGVy"));
        assert_eq!(s.matches("proxy-authorization").count(), 1, "{s}");
        assert!(s.contains("proxy-authorization: basic b3vycw==\r\n"), "{s}");
        let s = encode_proxied(true, None, Some("Basic Y2FsbGVy"));
        assert!(s.contains("proxy-authorization: basic y2fsbgvy\r\n"), "{s}");
        assert!(s.starts_with("get http://example.test:8080/a http/1.1\r\n"), "{s}");
        assert!(!encode_proxied(true, None, None).contains("proxy-authorization"));
    }

    #[test]
    fn encodes_get_with_host_and_user_agent() {
        let s = encode(Method::GET, "/a?b=c", HeaderMap::new(), RequestFraming::None).unwrap();
        assert_eq!(s, "GET /a?b=c HTTP/1.1\r\nHost: example.test:8080\r\nUser-Agent: smolreq/test\r\n\r\n");
    }

    #[test]
    fn encodes_content_length_and_chunked() {
        let s = encode(Method::POST, "/", HeaderMap::new(), RequestFraming::Length(1234567)).unwrap();
        assert!(s.ends_with("Content-Length: 1234567\r\n\r\n"), "{s}");
        let s = encode(Method::POST, "/", HeaderMap::new(), RequestFraming::Length(0)).unwrap();
        assert!(s.ends_with("Content-Length: 0\r\n\r\n"), "{s}");
        let s = encode(Method::PUT, "/", HeaderMap::new(), RequestFraming::Chunked).unwrap();
        assert!(s.ends_with("Transfer-Encoding: chunked\r\n\r\n"), "{s}");
        for n in [9, 10, 99, 100, 1 << 40, u64::MAX] {
            let s = encode(Method::POST, "/", HeaderMap::new(), RequestFraming::Length(n)).unwrap();
            assert!(s.ends_with(&format!("Content-Length: {n}\r\n\r\n")), "{s}");
        }
    }

    #[test]
    fn user_host_and_agent_replace_defaults_and_framing_headers_are_ours() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("other"));
        h.insert(header::USER_AGENT, HeaderValue::from_static("me"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("99"));
        let s = encode(Method::POST, "/", h, RequestFraming::Length(3)).unwrap();
        assert_eq!(s.to_ascii_lowercase().matches("host:").count(), 1);
        assert!(s.contains("host: other\r\n"));
        assert!(s.contains("user-agent: me\r\n"));
        assert!(!s.contains("smolreq/test"));
        assert!(!s.contains("99"));
        assert!(s.contains("Content-Length: 3\r\n"));
    }

    #[test]
    fn rejects_crlf_in_target_and_host() {
        let h = HeaderMap::new();
        for target in ["/a\r\nX: y", "/a b", "/\0", ""] {
            let head = RequestHead {
                method: &Method::GET,
                target,
                host: "h",
                headers: &h,
                user_agent: "u",
                framing: RequestFraming::None,
                to_proxy: false,
                proxy_authorization: None,
            };
            let mut buf = Vec::new();
            assert!(encode_request_head(&head, &mut buf).is_err(), "{target:?}");
            assert!(buf.is_empty());
        }
        let head = RequestHead {
            method: &Method::GET,
            target: "/",
            host: "h\r\nx",
            headers: &h,
            user_agent: "u",
            framing: RequestFraming::None,
            to_proxy: false,
            proxy_authorization: None,
        };
        assert!(encode_request_head(&head, &mut Vec::new()).is_err());
    }

    #[test]
    fn rejects_connect() {
        assert!(encode(Method::CONNECT, "/", HeaderMap::new(), RequestFraming::None).is_err());
    }

    #[test]
    fn parses_simple_head() {
        let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello";
        let (head, len) = parse(buf).unwrap().unwrap();
        assert_eq!(len, buf.len() - 5);
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.version, Version::HTTP_11);
        assert_eq!(&head.reason[..], b"OK");
        assert_eq!(head.headers["content-length"], "5");
        assert_eq!(head.headers["x-a"], "b");
    }

    #[test]
    fn partial_head_needs_more() {
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap().is_none());
        assert!(parse(b"").unwrap().is_none());
    }

    #[test]
    fn parses_http10_and_missing_reason() {
        let (head, _) = parse(b"HTTP/1.0 404\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.version, Version::HTTP_10);
        assert_eq!(head.status, StatusCode::NOT_FOUND);
        assert!(head.reason.is_empty());
    }

    #[test]
    fn obs_fold_is_replaced_by_space() {
        let (head, _) = parse(b"HTTP/1.1 200 OK\r\nX-Long: a\r\n  b\r\n\tc\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.headers["x-long"], "a b c");
    }

    #[test]
    fn repeated_fields_are_all_kept() {
        let (head, _) = parse(b"HTTP/1.1 200 OK\r\nSet-Cookie: a\r\nSet-Cookie: b\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.headers.get_all("set-cookie").iter().count(), 2);
    }

    #[test]
    fn garbage_status_lines_are_errors() {
        for bad in [
            &b"HTTP/1.1 2000 OK\r\n\r\n"[..],
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/2.0 200 OK\r\n\r\n",
            b"HTTP/1.1200 OK\r\n\r\n",
            b"ICY 200 OK\r\n\r\n",
            b"hello world\r\n\r\n",
            b"\0\0\0\0\r\n\r\n",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn status_below_100_is_an_error() {
        assert_eq!(parse(b"HTTP/1.1 099 Low\r\n\r\n").unwrap_err(), ProtoError::InvalidStatus);
        assert_eq!(parse(b"HTTP/1.1 000 Zero\r\n\r\n").unwrap_err(), ProtoError::InvalidStatus);
    }

    #[test]
    fn status_999_is_accepted() {
        let (head, _) = parse(b"HTTP/1.1 999 Odd\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.status.as_u16(), 999);
    }

    #[test]
    fn invalid_header_names_and_values_are_errors() {
        assert!(parse(b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nName : x\r\n\r\n").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\n: x\r\n\r\n").is_err());
    }

    #[test]
    fn head_larger_than_limit_is_rejected_while_partial() {
        let limits = Limits { max_head_size: 1024, ..Limits::default() };
        let mut buf = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        buf.resize(1025, b'a');
        assert_eq!(parse_response_head(&buf, &limits).unwrap_err(), ProtoError::HeadTooLarge(1024));
    }

    #[test]
    fn complete_head_larger_than_limit_is_rejected() {
        let limits = Limits { max_head_size: 30, ..Limits::default() };
        let buf = b"HTTP/1.1 200 OK\r\nX: aaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        assert_eq!(parse_response_head(buf, &limits).unwrap_err(), ProtoError::HeadTooLarge(30));
    }

    #[test]
    fn too_many_fields_is_rejected() {
        let limits = Limits { max_headers: 3, ..Limits::default() };
        let buf = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
        assert_eq!(parse_response_head(buf, &limits).unwrap_err(), ProtoError::TooManyHeaders(3));
        let limits = Limits { max_headers: 4, ..Limits::default() };
        assert!(parse_response_head(buf, &limits).unwrap().is_some());
    }

    #[test]
    fn header_limit_above_stack_slots_uses_heap() {
        let limits = Limits { max_headers: 300, ..Limits::default() };
        let mut buf = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..250 {
            buf.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        buf.extend_from_slice(b"\r\n");
        let (head, _) = parse_response_head(&buf, &limits).unwrap().unwrap();
        assert_eq!(head.headers.len(), 250);
    }

    #[test]
    fn may_be_complete_scans_incrementally() {
        let buf = b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n";
        assert!(may_be_complete(buf, 0));
        assert!(may_be_complete(buf, buf.len() - 1));
        assert!(!may_be_complete(&buf[..buf.len() - 1], 0));
        assert!(may_be_complete(b"HTTP/1.0 200 OK\n\n", 15));
    }

    #[test]
    fn every_prefix_of_a_head_is_partial() {
        let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        for i in 0..buf.len() {
            assert!(parse(&buf[..i]).unwrap().is_none(), "prefix {i}");
        }
    }
}
