//! Building a request: [`RequestBuilder`] and the request body.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_io::AsyncRead;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri};

use crate::client::Client;
use crate::error::{Error, ErrorKind, Result};
use crate::response::Response;

/// The body of a request.
pub(crate) enum RequestBody {
    /// No body.
    Empty,
    /// Bytes in memory; replayable on a retry or a 307/308 redirect.
    Bytes(Bytes),
    /// A stream read once; sent chunked when its length is unknown.
    Reader(Box<dyn AsyncRead + Send + Unpin + 'static>, Option<u64>),
}

impl RequestBody {
    /// True if the body can be sent a second time.
    pub(crate) fn is_replayable(&self) -> bool {
        !matches!(self, RequestBody::Reader(..))
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestBody::Empty => f.write_str("Empty"),
            RequestBody::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            RequestBody::Reader(_, len) => write!(f, "Reader({len:?})"),
        }
    }
}

/// A request being built; finish it with [`send`](RequestBuilder::send).
///
/// Errors in the builder (a bad header, a bad URL) are kept and reported by
/// `send`, so calls can be chained without checking each one.
///
/// ```no_run
/// # smol::block_on(async {
/// let client = smolreq::Client::new();
/// let resp = client
///     .post("http://127.0.0.1:8080/items")
///     .header("content-type", "application/json")
///     .query(&[("dry_run", "true")])
///     .body(r#"{"name":"a"}"#)
///     .send()
///     .await?;
/// println!("{}", resp.status());
/// # Ok::<(), smolreq::Error>(()) });
/// ```
#[must_use = "a request does nothing until it is sent"]
pub struct RequestBuilder<'c> {
    client: &'c Client,
    pub(crate) method: Method,
    pub(crate) url: Result<Uri>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: RequestBody,
    pub(crate) timeout: Option<Duration>,
    pub(crate) error: Option<Error>,
}

impl fmt::Debug for RequestBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBuilder")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers)
            .field("body", &self.body)
            .finish()
    }
}

impl<'c> RequestBuilder<'c> {
    pub(crate) fn new(client: &'c Client, method: Method, url: Result<Uri>) -> Self {
        RequestBuilder {
            client,
            method,
            url,
            headers: HeaderMap::new(),
            body: RequestBody::Empty,
            timeout: None,
            error: None,
        }
    }

    fn fail(mut self, err: Error) -> Self {
        if self.error.is_none() {
            self.error = Some(err);
        }
        self
    }

    /// Appends a header field. Names and values are validated: a CR, LF or
    /// NUL is an error reported by `send`, never written.
    ///
    /// ```
    /// let client = smolreq::Client::new();
    /// let request = client.get("http://127.0.0.1/").header("accept", "text/plain");
    /// # let _ = request;
    /// ```
    pub fn header<K, V>(self, name: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        let name = match HeaderName::try_from(name) {
            Ok(name) => name,
            Err(e) => return self.fail(Error::with_source(ErrorKind::Request, e.into())),
        };
        match HeaderValue::try_from(value) {
            Ok(value) => {
                let mut this = self;
                this.headers.append(name, value);
                this
            }
            Err(e) => self.fail(Error::with_source(ErrorKind::Request, e.into())),
        }
    }

    /// Appends every field of `headers`.
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        let mut last = None;
        for (name, value) in headers {
            if let Some(name) = name {
                last = Some(name);
            }
            if let Some(name) = &last {
                self.headers.append(name.clone(), value);
            }
        }
        self
    }

    /// Appends `name=value` pairs to the URL's query, percent-encoded as
    /// `application/x-www-form-urlencoded`.
    ///
    /// ```
    /// let client = smolreq::Client::new();
    /// let request = client.get("http://127.0.0.1/search?lang=en").query(&[("q", "a b&c")]);
    /// // sends GET /search?lang=en&q=a+b%26c
    /// # let _ = request;
    /// ```
    pub fn query<K: AsRef<str>, V: AsRef<str>>(mut self, pairs: &[(K, V)]) -> Self {
        let url = match self.url {
            Ok(ref url) => url,
            Err(_) => return self,
        };
        let mut pq = url.path_and_query().map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());
        for (name, value) in pairs {
            pq.push(if pq.contains('?') { '&' } else { '?' });
            form_encode(name.as_ref(), &mut pq);
            pq.push('=');
            form_encode(value.as_ref(), &mut pq);
        }
        let mut parts = url.clone().into_parts();
        parts.path_and_query = match pq.parse() {
            Ok(pq) => Some(pq),
            Err(e) => return self.fail(Error::with_source(ErrorKind::Url, e)),
        };
        self.url = Uri::from_parts(parts).map_err(|e| Error::with_source(ErrorKind::Url, e));
        self
    }

    /// Sets the body from bytes in memory (sent with Content-Length). Such a
    /// body can be replayed on a retry or a 307/308 redirect.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = RequestBody::Bytes(body.into());
        self
    }

    /// Sets the body from a reader. With a known `len` it is sent with
    /// Content-Length: exactly `len` bytes are read and sent, and the reader
    /// is never asked for more (so a pipe or socket that stays open after
    /// them does not stall the request); one that ends sooner fails the
    /// request with [`ErrorKind::Body`]. Without a `len` it is read to its
    /// end and sent chunked. It is read once, so such a request is never
    /// retried nor replayed on a redirect.
    pub fn body_reader(mut self, reader: impl AsyncRead + Send + Unpin + 'static, len: Option<u64>) -> Self {
        self.body = RequestBody::Reader(Box::new(reader), len);
        self
    }

    /// Sets the deadline of this request, from sending to the end of its
    /// body, replacing the client's [`timeout`](crate::ClientBuilder::timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends the request and waits for the response head. The body is read
    /// from the returned [`Response`].
    ///
    /// Everything happens inside this future: drop it and the connection it
    /// used is closed and its pool slot freed.
    pub fn send(self) -> impl Future<Output = Result<Response>> + Send + 'c {
        // Not an `async fn`: returning the client's future directly keeps
        // the builder from being stored twice in every request future.
        self.client.execute_builder(self)
    }
}

/// Percent-encodes `s` for a form-urlencoded query into `out`.
fn form_encode(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(b as char),
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 15)] as char);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_escapes_reserved_bytes() {
        let mut out = String::new();
        form_encode("a b&c=d/é", &mut out);
        assert_eq!(out, "a+b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn query_appends_to_existing_query() {
        let client = Client::new();
        let req = client.get("http://h/p?x=1").query(&[("q", "a b"), ("r", "&")]);
        assert_eq!(req.url.unwrap().to_string(), "http://h/p?x=1&q=a+b&r=%26");
    }

    #[test]
    fn query_on_url_without_path() {
        let client = Client::new();
        let req = client.get("http://h").query(&[("q", "1")]);
        assert_eq!(req.url.unwrap().path_and_query().unwrap().as_str(), "/?q=1");
    }

    #[test]
    fn invalid_header_is_kept_for_send() {
        let client = Client::new();
        let req = client.get("http://h/").header("x-a", "b\r\nx-evil: 1");
        assert!(req.error.is_some());
        let req = client.get("http://h/").header("bad name", "v");
        assert_eq!(req.error.unwrap().kind(), ErrorKind::Request);
    }
}
