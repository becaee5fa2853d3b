//! Property tests of the sans-IO codec: what the client encodes, a parser
//! reads back unchanged, and the chunked coding round-trips whatever the
//! split of its input and output.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};
use proptest::prelude::*;

use super::Limits;
use super::chunked::{CHUNK_END, ChunkedDecoder, LAST_CHUNK, encode_chunk_header};
use super::head::{RequestFraming, RequestHead, encode_request_head, parse_response_head};

/// Encodes `body` as chunks of the given sizes (cycling), with optional
/// chunk extensions and trailer fields.
fn encode_chunked(body: &[u8], sizes: &[usize], extension: bool, trailers: &[(String, String)]) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut rest = body;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        encode_chunk_header(chunk.len(), &mut wire);
        if extension {
            // Put an extension before the CRLF the encoder wrote.
            wire.truncate(wire.len() - 2);
            wire.extend_from_slice(b";name=\"v\"\r\n");
        }
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(CHUNK_END);
    }
    if trailers.is_empty() {
        wire.extend_from_slice(LAST_CHUNK);
    } else {
        wire.extend_from_slice(b"0\r\n");
        for (name, value) in trailers {
            wire.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        wire.extend_from_slice(b"\r\n");
    }
    wire
}

/// Decodes `wire` fed `in_step` bytes at a time into buffers of `out_step`
/// bytes; returns the body and the input consumed.
fn decode_split(wire: &[u8], in_step: usize, out_step: usize) -> (Vec<u8>, usize) {
    let limits = Limits::default();
    let mut decoder = ChunkedDecoder::new(limits.max_chunk_line, limits.max_trailer_size);
    let mut body = Vec::new();
    let mut out = vec![0u8; out_step];
    let mut pos = 0;
    while !decoder.is_done() {
        assert!(pos < wire.len(), "input ended before the body");
        let end = wire.len().min(pos + in_step);
        let (consumed, written) = decoder.decode(&wire[pos..end], &mut out).expect("valid chunked body");
        assert!(consumed > 0 || decoder.is_done(), "no progress at {pos}");
        body.extend_from_slice(&out[..written]);
        pos += consumed;
    }
    (body, pos)
}

/// As [`decode_split`], but appending to a vector at most `room` bytes
/// per call (the path `Response::bytes` takes).
fn decode_append_split(wire: &[u8], in_step: usize, room: usize) -> (Vec<u8>, usize) {
    let limits = Limits::default();
    let mut decoder = ChunkedDecoder::new(limits.max_chunk_line, limits.max_trailer_size);
    let mut body = Vec::new();
    let mut pos = 0;
    while !decoder.is_done() {
        assert!(pos < wire.len(), "input ended before the body");
        let end = wire.len().min(pos + in_step);
        let before = body.len();
        let (consumed, appended) = decoder.decode_append(&wire[pos..end], &mut body, room).expect("valid chunked body");
        assert!(consumed > 0 || decoder.is_done(), "no progress at {pos}");
        assert!(appended <= room && body.len() - before == appended, "appended {appended}, room {room}");
        pos += consumed;
    }
    (body, pos)
}

fn token() -> impl Strategy<Value = String> {
    "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,12}"
}

/// A field value without leading or trailing whitespace (which is not part
/// of a value on the wire).
fn field_value() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[!-~]([ \t!-~]{0,20}[!-~])?"]
}

proptest! {
    #[test]
    fn chunked_encode_then_decode_is_identity_whatever_the_split(
        body in proptest::collection::vec(any::<u8>(), 0..2000),
        sizes in proptest::collection::vec(1usize..300, 1..8),
        extension in any::<bool>(),
        trailers in proptest::collection::vec((token(), field_value()), 0..3),
        suffix in proptest::collection::vec(any::<u8>(), 0..20),
        in_step in 1usize..64,
        out_step in 1usize..64,
    ) {
        let mut wire = encode_chunked(&body, &sizes, extension, &trailers);
        let end = wire.len();
        // Bytes after the body belong to the next response.
        wire.extend_from_slice(&suffix);
        let (decoded, consumed) = decode_split(&wire, in_step, out_step);
        prop_assert_eq!(&decoded, &body);
        prop_assert_eq!(consumed, end);
        let (whole, _) = decode_split(&wire, wire.len(), body.len() + 1);
        prop_assert_eq!(&whole, &body);
        let (appended, consumed) = decode_append_split(&wire, in_step, out_step);
        prop_assert_eq!(&appended, &body);
        prop_assert_eq!(consumed, end);
    }

    #[test]
    fn request_head_encode_then_parse_round_trips(
        method in prop_oneof![
            Just(Method::GET), Just(Method::POST), Just(Method::PUT), Just(Method::DELETE),
            Just(Method::HEAD), Just(Method::OPTIONS), Just(Method::PATCH), token().prop_map(|t| Method::from_bytes(t.as_bytes()).unwrap()),
        ],
        target in "/[-A-Za-z0-9._~/?=&%+]{0,40}",
        host in "[a-z0-9.-]{1,20}(:[0-9]{1,5})?",
        fields in proptest::collection::vec((token(), field_value()), 0..10),
        framing in prop_oneof![
            Just(RequestFraming::None),
            (0u64..u64::MAX).prop_map(RequestFraming::Length),
            Just(RequestFraming::Chunked),
        ],
    ) {
        prop_assume!(method != Method::CONNECT);
        let mut headers = HeaderMap::new();
        for (name, value) in &fields {
            headers.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        let head = RequestHead { method: &method, target: &target, host: &host, headers: &headers, user_agent: "ua/1", framing, to_proxy: false, proxy_authorization: None };
        let mut wire = Vec::new();
        encode_request_head(&head, &mut wire).unwrap();

        let mut slots = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Request::new(&mut slots);
        prop_assert_eq!(parsed.parse(&wire), Ok(httparse::Status::Complete(wire.len())));
        prop_assert_eq!(parsed.method, Some(method.as_str()));
        prop_assert_eq!(parsed.path, Some(target.as_str()));
        prop_assert_eq!(parsed.version, Some(1));

        let mut expected: Vec<(String, String)> = Vec::new();
        if !headers.contains_key("host") {
            expected.push(("host".into(), host.clone()));
        }
        for (name, value) in &headers {
            if name != "content-length" && name != "transfer-encoding" {
                expected.push((name.as_str().into(), value.to_str().unwrap().into()));
            }
        }
        if !headers.contains_key("user-agent") {
            expected.push(("user-agent".into(), "ua/1".into()));
        }
        match framing {
            RequestFraming::None => {}
            RequestFraming::Length(n) => expected.push(("content-length".into(), n.to_string())),
            RequestFraming::Chunked => expected.push(("transfer-encoding".into(), "chunked".into())),
        }
        let got: Vec<(String, String)> = parsed
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8(h.value.to_vec()).unwrap()))
            .collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn response_head_serialize_then_parse_round_trips(
        http10 in any::<bool>(),
        status in 100u16..1000,
        reason in "([!-~]([ !-~]{0,20}[!-~])?)?",
        fields in proptest::collection::vec((token(), field_value()), 0..20),
        body in proptest::collection::vec(any::<u8>(), 0..10),
        bare_lf in any::<bool>(),
    ) {
        let eol = if bare_lf { "\n" } else { "\r\n" };
        let version = if http10 { "HTTP/1.0" } else { "HTTP/1.1" };
        let mut wire = format!("{version} {status} {reason}{eol}").into_bytes();
        for (name, value) in &fields {
            wire.extend_from_slice(format!("{name}: {value}{eol}").as_bytes());
        }
        wire.extend_from_slice(eol.as_bytes());
        let len = wire.len();
        wire.extend_from_slice(&body);

        let (head, parsed_len) = parse_response_head(&wire, &Limits::default()).unwrap().unwrap();
        prop_assert_eq!(parsed_len, len);
        prop_assert_eq!(head.version, if http10 { Version::HTTP_10 } else { Version::HTTP_11 });
        prop_assert_eq!(head.status, StatusCode::from_u16(status).unwrap());
        prop_assert_eq!(&head.reason[..], reason.as_bytes());
        let got: Vec<(String, Vec<u8>)> =
            head.headers.iter().map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec())).collect();
        let mut expected: Vec<(String, Vec<u8>)> =
            fields.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec())).collect();
        // A HeaderMap groups the values of a name where the name first appeared.
        let order: Vec<String> = expected.iter().fold(Vec::new(), |mut order, (n, _)| {
            if !order.contains(n) {
                order.push(n.clone());
            }
            order
        });
        expected.sort_by_key(|(n, _)| order.iter().position(|o| o == n));
        prop_assert_eq!(got, expected);
        // Any strict prefix is incomplete, never an error.
        for cut in [0, len / 2, len - 1] {
            prop_assert!(parse_response_head(&wire[..cut], &Limits::default()).unwrap().is_none());
        }
    }
}
