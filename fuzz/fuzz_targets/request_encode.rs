//! Arbitrary method, URL, header fields and body through the public
//! request builder, over an in-memory connection that captures what the
//! client writes.
//!
//! Input layout: `[len, method][len, url][count]{[len, name][len, value]}*
//! [body mode][body len: u16 le]`; a missing field is empty. Body modes:
//! none, bytes, a reader of known length, a reader of unknown length
//! (chunked).
//!
//! Invariants: either a clear error (before any byte is written, unless
//! the body itself failed), or bytes that httparse reads back as exactly
//! one request with the same method, target and header fields (in the
//! order the client writes them: Host, the caller's fields, User-Agent,
//! framing) and a body of the right length and content. Never a CR, LF or
//! NUL inside a field.

#![no_main]

mod common;

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use common::Driver;
use futures_io::{AsyncRead, AsyncWrite};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;
use smolreq::fuzzing::ChunkedDecoder;
use smolreq::{Client, ErrorKind};

const USER_AGENT: &str = "fuzz/1";

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn field(&mut self) -> &'a [u8] {
        let len = usize::from(self.byte()).min(self.0.len());
        let (field, rest) = self.0.split_at(len);
        self.0 = rest;
        field
    }
}

/// Captures writes; answers every read with one empty response.
struct Capture {
    written: Arc<Mutex<Vec<u8>>>,
    response: &'static [u8],
}

impl AsyncRead for Capture {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let n = self.response.len().min(buf.len());
        buf[..n].copy_from_slice(&self.response[..n]);
        self.response = &self.response[n..];
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Capture {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        // Small writes, so a request is assembled from many pieces.
        let n = buf.len().min(100);
        self.written.lock().unwrap().extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A body reader yielding `data` in pieces of up to 7 bytes.
struct Pieces(Vec<u8>, usize);

impl AsyncRead for Pieces {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let pos = self.1;
        let n = (self.0.len() - pos).min(buf.len()).min(7);
        buf[..n].copy_from_slice(&self.0[pos..pos + n]);
        self.1 += n;
        Poll::Ready(Ok(n))
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Reader(data);
    let method = input.field();
    let url = input.field();
    let count = input.byte() % 16;
    let fields: Vec<(&[u8], &[u8])> = (0..count).map(|_| (input.field(), input.field())).collect();
    let mode = input.byte();
    let body_len = usize::from(u16::from_le_bytes([input.byte(), input.byte()])) % 4096;
    let body: Vec<u8> = (0..body_len).map(|i| (i % 251) as u8).collect();
    // Mode bit 2: a reader that declares one byte more than it yields.
    let short_reader = mode & 4 != 0;

    let written = Arc::new(Mutex::new(Vec::new()));
    let capture = written.clone();
    let client = Client::builder()
        .max_idle_per_host(0)
        .redirect(false)
        .user_agent(USER_AGENT)
        .connector(move |_| {
            let stream = Capture {
                written: capture.clone(),
                response: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            };
            async move { Ok(stream) }
        })
        .build()
        .unwrap();

    let Ok(method) = Method::from_bytes(method) else { return };
    // The URL as an `http::Uri`, which smolreq sends as it is (text would
    // be normalised first, as a browser does: tested in src/url.rs).
    // Userinfo becomes an Authorization field the caller did not set.
    let Ok(uri) = Uri::try_from(url) else { return };
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return;
    }
    let mut builder = client.request(method.clone(), uri);
    for &(name, value) in &fields {
        builder = builder.header(name, value);
    }
    builder = match mode & 3 {
        0 => builder,
        1 => builder.body(body.clone()),
        2 => builder.body_reader(Pieces(body.clone(), 0), Some(body.len() as u64 + u64::from(short_reader))),
        _ => builder.body_reader(Pieces(body.clone(), 0), None),
    };
    let result = Driver::new(10_000).block_on(builder.send());
    let wire = written.lock().unwrap().clone();

    let err = match result {
        Ok(response) => {
            assert_eq!(response.status(), 200);
            None
        }
        Err(e) => {
            if e.kind() == ErrorKind::Tls {
                return; // https: the handshake, if any, is not HTTP
            }
            assert!(
                matches!(e.kind(), ErrorKind::Request | ErrorKind::Url | ErrorKind::Body),
                "unexpected error kind: {e:?}"
            );
            if e.kind() != ErrorKind::Body {
                assert!(wire.is_empty(), "{e} after writing {wire:?}");
                return;
            }
            Some(e)
        }
    };

    // What the caller asked for, as the http crate understood it.
    let uri = Uri::try_from(url).expect("the request was sent, so the URL parsed");
    let mut headers = HeaderMap::new();
    for &(name, value) in &fields {
        headers.append(HeaderName::from_bytes(name).unwrap(), HeaderValue::from_bytes(value).unwrap());
    }

    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut slots);
    let head_len = match request.parse(&wire) {
        Ok(httparse::Status::Complete(len)) => len,
        other => panic!("not a request ({other:?}): {:?}", String::from_utf8_lossy(&wire)),
    };
    assert_eq!(request.method, Some(method.as_str()));
    let target = match uri.path_and_query().map(|pq| pq.as_str()) {
        Some(pq) if !pq.is_empty() && pq != "?" => pq,
        _ => "/",
    };
    assert_eq!(request.path, Some(target));
    assert_eq!(request.version, Some(1));

    let mut expected: Vec<(String, Vec<u8>)> = Vec::new();
    if !headers.contains_key("host") {
        let authority = uri.authority().expect("an absolute URL");
        // The default port is left out, however it was written (":080").
        let host = match authority.port() {
            Some(port) if port.as_u16() == 80 => {
                &authority.as_str()[..authority.as_str().len() - port.as_str().len() - 1]
            }
            _ => authority.as_str(),
        };
        expected.push(("host".into(), host.as_bytes().to_vec()));
    }
    for (name, value) in &headers {
        if name != "content-length" {
            expected.push((name.as_str().into(), value.as_bytes().to_vec()));
        }
    }
    if !headers.contains_key("user-agent") {
        expected.push(("user-agent".into(), USER_AGENT.as_bytes().to_vec()));
    }
    let mut got: Vec<(String, Vec<u8>)> = Vec::new();
    for field in request.headers.iter() {
        for &b in field.name.as_bytes().iter().chain(field.value) {
            assert!(b != b'\r' && b != b'\n' && b != 0, "CR, LF or NUL in {field:?}");
        }
        got.push((field.name.to_ascii_lowercase(), field.value.to_vec()));
    }
    let framing = match got.last().map(|(name, _)| name.as_str()) {
        Some("content-length" | "transfer-encoding") => got.pop(),
        _ => None,
    };
    assert_eq!(got.len(), expected.len(), "fields: {got:?}, expected {expected:?}");
    for ((got_name, got_value), (name, value)) in got.iter().zip(&expected) {
        assert_eq!(got_name, name);
        // A field value's leading and trailing whitespace is not part of
        // it on the wire (RFC 9110 section 5.5).
        assert_eq!(got_value.trim_ascii(), value.trim_ascii(), "value of {name}");
    }

    let rest = &wire[head_len..];
    if err.is_some() {
        return; // the body failed part way: the head was checked
    }
    match framing {
        None => {
            assert!(rest.is_empty(), "a body without framing: {rest:?}");
            assert!(body.is_empty() || mode & 3 == 0);
        }
        Some((name, value)) if name == "content-length" => {
            let len: usize = std::str::from_utf8(&value).unwrap().parse().unwrap();
            assert_eq!(rest.len(), len, "body length differs from Content-Length");
            if mode & 3 != 0 {
                // A reader longer than a Content-Length set by the caller is
                // read only up to that length: exactly its first `len` bytes
                // go out (a shorter one is an error, returned above).
                assert_eq!(rest, &body[..len], "body");
            } else {
                assert_eq!(len, 0);
            }
        }
        Some((_, value)) => {
            assert_eq!(value, b"chunked");
            assert_eq!(mode & 3, 3, "chunked without a streamed body");
            let mut decoder = ChunkedDecoder::new(4096, 0);
            let mut out = vec![0u8; rest.len()];
            let (consumed, written) = decoder.decode(rest, &mut out).expect("valid chunked body");
            assert!(decoder.is_done(), "chunked body not terminated");
            assert_eq!(consumed, rest.len(), "bytes after the chunked body");
            assert_eq!(&out[..written], &body[..], "chunked body");
        }
    }
});
