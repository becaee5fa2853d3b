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
/// The builder owns a clone of its [`Client`] (one reference count), so it
/// and the future of `send` are `'static` and `Send`: they can be stored,
/// returned from a function or spawned on any executor, also after the
/// client they came from was dropped.
///
/// Errors in the builder (a bad header, a bad URL) are kept and reported by
/// `send`, so calls can be chained without checking each one.
///
/// Header fields: [`header`](Self::header) appends (a second call with the
/// same name sends a second value), [`headers`](Self::headers) replaces
/// every value of each name it carries, and the client's
/// [`default_headers`](crate::ClientBuilder::default_headers) fill in only
/// the names the request does not set.
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
pub struct RequestBuilder {
    pub(crate) client: Client,
    pub(crate) method: Method,
    pub(crate) url: Result<Uri>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: RequestBody,
    pub(crate) timeout: Option<Duration>,
    pub(crate) error: Option<Error>,
    /// `Authorization: Basic` from the URL's user name and password (marked
    /// sensitive); sent unless the request sets its own Authorization.
    pub(crate) url_auth: Option<HeaderValue>,
}

/// Prints the method, URL, headers and body size. Sensitive header values
/// ([`basic_auth`](RequestBuilder::basic_auth),
/// [`bearer_auth`](RequestBuilder::bearer_auth), and any `Authorization`,
/// `Proxy-Authorization` or `Cookie` field) print as `Sensitive`.
impl fmt::Debug for RequestBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBuilder")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers)
            .field("body", &self.body)
            .finish()
    }
}

impl RequestBuilder {
    /// A request to `url`, whose user name and password (if any) are taken
    /// out of it: the request, its response and its errors keep the URL
    /// without them.
    pub(crate) fn new(client: Client, method: Method, url: Result<Uri>) -> Self {
        // Only a URL with userinfo is rebuilt (cloning a `Uri` can allocate).
        let has_userinfo = |url: &Uri| url.authority().is_some_and(|a| a.as_str().as_bytes().contains(&b'@'));
        let url =
            url.and_then(|url| if has_userinfo(&url) { crate::url::split_userinfo(&url) } else { Ok((url, None)) });
        let (url, url_auth) = match url {
            Ok((url, credentials)) => (Ok(url), credentials.map(|c| c.basic_auth())),
            Err(e) => (Err(e), None),
        };
        RequestBuilder {
            client,
            method,
            url,
            headers: HeaderMap::new(),
            body: RequestBody::Empty,
            timeout: None,
            error: None,
            url_auth,
        }
    }

    fn fail(mut self, err: Error) -> Self {
        if self.error.is_none() {
            self.error = Some(err);
        }
        self
    }

    /// Appends a header field: a name already set keeps its values and
    /// gets one more (use [`headers`](Self::headers) to replace). Names and
    /// values are validated: a CR, LF or NUL is an error reported by
    /// `send`, never written. Values of `Authorization`,
    /// `Proxy-Authorization` and `Cookie` are marked sensitive (see
    /// [`HeaderValue::set_sensitive`]).
    ///
    /// ```
    /// let client = smolreq::Client::new();
    /// let request = client.get("http://127.0.0.1/").header("accept", "text/plain").header("accept", "text/html");
    /// // sends both: `accept: text/plain` and `accept: text/html`
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
            Ok(mut value) => {
                mark_sensitive(&name, &mut value);
                let mut this = self;
                this.headers.append(name, value);
                this
            }
            Err(e) => self.fail(Error::with_source(ErrorKind::Request, e.into())),
        }
    }

    /// Sets every field of `headers`, replacing the values this request
    /// already has for each name in it (as reqwest does); names not in
    /// `headers` are kept. A name that appears several times in `headers`
    /// is sent with all its values.
    ///
    /// ```
    /// use smolreq::{HeaderMap, HeaderValue};
    /// let mut headers = HeaderMap::new();
    /// headers.insert("accept", HeaderValue::from_static("application/json"));
    /// let client = smolreq::Client::new();
    /// let request = client.get("http://127.0.0.1/").header("accept", "text/plain").headers(headers);
    /// // sends only `accept: application/json`
    /// # let _ = request;
    /// ```
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        replace_headers(&mut self.headers, headers);
        self
    }

    /// Sets `Authorization: Basic ...` from a user name and an optional
    /// password (RFC 7617: `user:password`, Base64-encoded as UTF-8),
    /// replacing any `Authorization` already set. The value is marked
    /// sensitive: `Debug` never prints it.
    ///
    /// A user name containing `:`, or a control character in either part,
    /// cannot be represented (RFC 7617 section 2) and makes `send` fail
    /// with [`ErrorKind::Request`]; the error does not contain them.
    ///
    /// ```
    /// let client = smolreq::Client::new();
    /// let request = client.get("http://127.0.0.1/").basic_auth("Aladdin", Some("open sesame"));
    /// // sends `authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==`
    /// assert!(!format!("{request:?}").contains("QWxhZGRpbjpvcGVuIHNlc2FtZQ=="));
    /// ```
    pub fn basic_auth<U: fmt::Display, P: fmt::Display>(mut self, username: U, password: Option<P>) -> Self {
        let mut credentials = username.to_string();
        if credentials.contains(':') {
            return self
                .fail(Error::new(ErrorKind::Request, "basic_auth: the user name must not contain ':' (RFC 7617)"));
        }
        credentials.push(':');
        if let Some(password) = password {
            use fmt::Write;
            let _ = write!(credentials, "{password}");
        }
        if credentials.chars().any(char::is_control) {
            return self.fail(Error::new(
                ErrorKind::Request,
                "basic_auth: the user name and password must not contain control characters (RFC 7617)",
            ));
        }
        let (user, password) = credentials.split_at(credentials.find(':').unwrap_or(credentials.len()));
        let value = basic_value(user.as_bytes(), password.get(1..).unwrap_or_default().as_bytes());
        self.headers.insert(http::header::AUTHORIZATION, value);
        self
    }

    /// Sets `Authorization: Bearer <token>` (RFC 6750), replacing any
    /// `Authorization` already set. The value is marked sensitive: `Debug`
    /// never prints it. A token with a CR, LF or other byte not allowed in
    /// a header value makes `send` fail with [`ErrorKind::Request`]; the
    /// error does not contain it.
    ///
    /// ```
    /// let client = smolreq::Client::new();
    /// let request = client.get("http://127.0.0.1/").bearer_auth("my-token");
    /// assert!(!format!("{request:?}").contains("my-token"));
    /// ```
    pub fn bearer_auth<T: fmt::Display>(self, token: T) -> Self {
        self.authorization(format!("Bearer {token}"))
    }

    fn authorization(mut self, value: String) -> Self {
        match HeaderValue::try_from(value) {
            Ok(mut value) => {
                value.set_sensitive(true);
                self.headers.insert(http::header::AUTHORIZATION, value);
                self
            }
            // `InvalidHeaderValue` does not print the value.
            Err(e) => self.fail(Error::with_source(ErrorKind::Request, e)),
        }
    }

    /// Appends `name=value` pairs to the URL's query, percent-encoded as
    /// `application/x-www-form-urlencoded`.
    ///
    /// With the `form` feature, `query` takes any `serde::Serialize` value
    /// instead (`&[("page", 2)]`, a struct); slices and arrays of string
    /// pairs work in both builds, encoded the same.
    ///
    /// ```
    /// let client = smolreq::Client::new();
    /// let request = client.get("http://127.0.0.1/search?lang=en").query(&[("q", "a b&c")]);
    /// // sends GET /search?lang=en&q=a+b%26c
    /// # let _ = request;
    /// ```
    #[cfg(not(feature = "form"))]
    pub fn query<K: AsRef<str>, V: AsRef<str>>(self, pairs: &[(K, V)]) -> Self {
        let mut encoded = String::new();
        for (name, value) in pairs {
            if !encoded.is_empty() {
                encoded.push('&');
            }
            form_encode(name.as_ref(), &mut encoded);
            encoded.push('=');
            form_encode(value.as_ref(), &mut encoded);
        }
        self.append_query(&encoded)
    }

    /// Appends `query`, serialized as `application/x-www-form-urlencoded`,
    /// to the URL's query: a slice or array of pairs whose values are any
    /// serializable type (`&[("page", 2)]`), a map, or a struct of plain
    /// fields (`None` fields are left out).
    ///
    /// Every call that compiles without the `form` feature (a slice or
    /// array of `(K, V)` string pairs) compiles with it too, as long as `K`
    /// and `V` implement `Serialize` as `&str`, `String` and `Cow<str>`
    /// do; an array of more than 32 pairs must be passed as a slice
    /// (`&pairs[..]`). A value that cannot be serialized (a nested struct,
    /// a sequence) makes `send` fail with [`ErrorKind::Request`].
    ///
    /// ```
    /// #[derive(serde::Serialize)]
    /// struct Page {
    ///     page: u32,
    ///     tag: Option<&'static str>,
    /// }
    /// let client = smolreq::Client::new();
    /// let request = client.get("http://127.0.0.1/items?lang=en").query(&Page { page: 2, tag: None });
    /// // sends GET /items?lang=en&page=2
    /// let request = client.get("http://127.0.0.1/items").query(&[("page", 2), ("per_page", 50)]);
    /// // sends GET /items?page=2&per_page=50
    /// # let _ = request;
    /// ```
    #[cfg(feature = "form")]
    #[cfg_attr(docsrs, doc(cfg(feature = "form")))]
    pub fn query<T: serde::Serialize + ?Sized>(self, query: &T) -> Self {
        match serde_urlencoded::to_string(query) {
            Ok(encoded) => self.append_query(&encoded),
            Err(e) => self.fail(serialize_error("query", &e)),
        }
    }

    /// Appends an already encoded query (`a=1&b=2`) to the URL.
    fn append_query(mut self, encoded: &str) -> Self {
        let url = match self.url {
            Ok(ref url) if !encoded.is_empty() => url,
            _ => return self,
        };
        let mut pq = url.path_and_query().map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());
        if !pq.ends_with('?') {
            pq.push(if pq.contains('?') { '&' } else { '?' });
        }
        pq.push_str(encoded);
        let mut parts = url.clone().into_parts();
        parts.path_and_query = match pq.parse() {
            Ok(pq) => Some(pq),
            Err(e) => return self.fail(Error::with_source(ErrorKind::Url, e)),
        };
        self.url = Uri::from_parts(parts).map_err(|e| Error::with_source(ErrorKind::Url, e));
        self
    }

    /// Sets the body to `json` serialized as JSON, and `Content-Type:
    /// application/json` unless the request already has a `Content-Type`
    /// (set another one before this call: [`header`](Self::header) after
    /// it would add a second value).
    /// A value that cannot be serialized (a map with non-string keys, a
    /// failing `Serialize` impl) makes `send` fail with
    /// [`ErrorKind::Request`], with serde's message.
    ///
    /// ```
    /// #[derive(serde::Serialize)]
    /// struct Item {
    ///     name: &'static str,
    ///     count: u32,
    /// }
    /// let client = smolreq::Client::new();
    /// let request = client.post("http://127.0.0.1/items").json(&Item { name: "a", count: 2 });
    /// // sends `content-type: application/json` and `{"name":"a","count":2}`
    /// # let _ = request;
    /// ```
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn json<T: serde::Serialize + ?Sized>(self, json: &T) -> Self {
        match serde_json::to_vec(json) {
            Ok(body) => self.serialized_body(body, "application/json"),
            Err(e) => self.fail(serialize_error("JSON body", &e)),
        }
    }

    /// Sets the body to `form` serialized as
    /// `application/x-www-form-urlencoded`, and that `Content-Type` unless
    /// the request already has one: a struct of plain fields, a map, or a
    /// slice of pairs. A `Content-Type` set before this call is kept. A
    /// value that cannot be serialized (a nested struct, a sequence) makes
    /// `send` fail with [`ErrorKind::Request`].
    ///
    /// ```
    /// let client = smolreq::Client::new();
    /// let request = client.post("http://127.0.0.1/login").form(&[("user", "ann"), ("remember", "yes")]);
    /// // sends `content-type: application/x-www-form-urlencoded` and `user=ann&remember=yes`
    /// # let _ = request;
    /// ```
    #[cfg(feature = "form")]
    #[cfg_attr(docsrs, doc(cfg(feature = "form")))]
    pub fn form<T: serde::Serialize + ?Sized>(self, form: &T) -> Self {
        match serde_urlencoded::to_string(form) {
            Ok(body) => self.serialized_body(body.into_bytes(), "application/x-www-form-urlencoded"),
            Err(e) => self.fail(serialize_error("form body", &e)),
        }
    }

    #[cfg(any(feature = "json", feature = "form"))]
    fn serialized_body(mut self, body: Vec<u8>, content_type: &'static str) -> Self {
        if !self.headers.contains_key(http::header::CONTENT_TYPE) {
            self.headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        self.body = RequestBody::Bytes(body.into());
        self
    }

    /// Sets the body from bytes in memory (sent with Content-Length). Such a
    /// body can be replayed on a retry or a 307/308 redirect.
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// let client = smolreq::Client::new();
    /// let resp = client.put("http://127.0.0.1:8080/notes/1").body(b"hello".to_vec()).send().await?;
    /// # Ok::<(), smolreq::Error>(()) });
    /// ```
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
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// // A file streamed from disk with its length, never loaded in memory.
    /// let file = std::fs::File::open("big.iso")?;
    /// let len = file.metadata()?.len();
    /// let client = smolreq::Client::new();
    /// let resp = client
    ///     .put("http://127.0.0.1:8080/upload/big.iso")
    ///     .body_reader(smol::Unblock::new(file), Some(len))
    ///     .send()
    ///     .await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(()) });
    /// ```
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
    /// used is closed and its pool slot freed. The future owns everything
    /// it uses (`'static + Send`), so it can be spawned as it is:
    ///
    /// ```
    /// use std::io::{BufRead, BufReader, Write};
    /// use std::sync::Arc;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // A loopback server answering every request with `hello`.
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let url = format!("http://{}/", listener.local_addr()?);
    /// std::thread::spawn(move || {
    ///     for stream in listener.incoming().flatten() {
    ///         std::thread::spawn(move || {
    ///             let mut lines = BufReader::new(&stream);
    ///             let mut line = String::new();
    ///             while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
    ///                 if line == "\r\n" {
    ///                     let _ = (&stream).write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello");
    ///                 }
    ///                 line.clear();
    ///             }
    ///         });
    ///     }
    /// });
    ///
    /// let client = smolreq::Client::new();
    ///
    /// // 20 requests on smol's executor, each future moved into its task.
    /// smol::block_on(async {
    ///     let tasks: Vec<_> = (0..20).map(|_| smol::spawn(client.get(&url).send())).collect();
    ///     for task in tasks {
    ///         assert_eq!(task.await?.text().await?, "hello");
    ///     }
    ///     Ok::<_, smolreq::Error>(())
    /// })?;
    ///
    /// // One on a multi-threaded executor: four threads run it, any of
    /// // them may poll the request.
    /// let executor = Arc::new(smol::Executor::new());
    /// let (stop, stopped) = smol::channel::unbounded::<()>();
    /// let threads: Vec<_> = (0..4)
    ///     .map(|_| {
    ///         let (executor, stopped) = (executor.clone(), stopped.clone());
    ///         std::thread::spawn(move || smol::block_on(executor.run(stopped.recv())))
    ///     })
    ///     .collect();
    /// let task = executor.spawn(client.get(&url).send());
    /// let text = smol::block_on(async { task.await?.text().await })?;
    /// assert_eq!(text, "hello");
    /// drop(stop);
    /// for thread in threads {
    ///     let _ = thread.join();
    /// }
    /// # Ok(()) }
    /// ```
    pub fn send(self) -> impl Future<Output = Result<Response>> + Send + 'static {
        // Not an `async fn`: returning the client's future directly keeps
        // the builder from being stored twice in every request future.
        Client::execute_builder(self)
    }
}

/// Marks the value of a credential-carrying field sensitive, so that no
/// `Debug` of a request, a client or its default headers prints it.
pub(crate) fn mark_sensitive(name: &HeaderName, value: &mut HeaderValue) {
    use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION};
    if name == AUTHORIZATION || name == PROXY_AUTHORIZATION || name == COOKIE {
        value.set_sensitive(true);
    }
}

/// Moves every field of `src` into `dst`, replacing all the values `dst`
/// has for each name in `src` (a name repeated in `src` keeps all its
/// values).
pub(crate) fn replace_headers(dst: &mut HeaderMap, src: HeaderMap) {
    let mut current: Option<HeaderName> = None;
    for (name, mut value) in src {
        // `HeaderMap`'s iterator yields the name with its first value and
        // `None` with each further value of the same name.
        if let Some(name) = name {
            mark_sensitive(&name, &mut value);
            dst.insert(name.clone(), value);
            current = Some(name);
        } else if let Some(name) = &current {
            mark_sensitive(name, &mut value);
            dst.append(name.clone(), value);
        }
    }
}

/// The error of a `json`, `form` or `query` value that serde could not
/// serialize; serde's message (which names what was wrong) is kept.
#[cfg(any(feature = "json", feature = "form"))]
fn serialize_error(what: &str, err: &dyn std::error::Error) -> Error {
    Error::with_detail(ErrorKind::Request, format!("cannot serialize the {what}: {err}"))
}

/// `Basic base64(user ":" password)` (RFC 7617), marked sensitive: the one
/// Basic value builder (request `basic_auth`, URL credentials, proxies).
pub(crate) fn basic_value(user: &[u8], password: &[u8]) -> HeaderValue {
    let credentials = [user, b":", password].concat();
    let mut out = String::with_capacity(6 + credentials.len().div_ceil(3) * 4);
    out.push_str("Basic ");
    base64_encode(&credentials, &mut out);
    let mut value = HeaderValue::from_str(&out).unwrap_or_else(|_| unreachable!("base64 is a valid header value"));
    value.set_sensitive(true);
    value
}

/// Base64 (RFC 4648 section 4: the standard alphabet, with padding) of
/// `input`, appended to `out`.
pub(crate) fn base64_encode(input: &[u8], out: &mut String) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sextet = |bits: u32, shift: u32| ALPHABET[((bits >> shift) & 63) as usize] as char;
    let mut chunks = input.chunks_exact(3);
    for chunk in &mut chunks {
        let bits = u32::from(chunk[0]) << 16 | u32::from(chunk[1]) << 8 | u32::from(chunk[2]);
        out.extend([sextet(bits, 18), sextet(bits, 12), sextet(bits, 6), sextet(bits, 0)]);
    }
    match *chunks.remainder() {
        [a] => {
            let bits = u32::from(a) << 16;
            out.extend([sextet(bits, 18), sextet(bits, 12), '=', '=']);
        }
        [a, b] => {
            let bits = u32::from(a) << 16 | u32::from(b) << 8;
            out.extend([sextet(bits, 18), sextet(bits, 12), sextet(bits, 6), '=']);
        }
        _ => {}
    }
}

/// Percent-encodes `s` for a form-urlencoded query into `out` (the same
/// bytes as serde_urlencoded, which the `form` feature uses instead).
#[cfg(not(feature = "form"))]
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
    #[cfg(not(feature = "form"))]
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

    fn base64(input: &[u8]) -> String {
        let mut out = String::new();
        base64_encode(input, &mut out);
        out
    }

    #[test]
    fn base64_rfc4648_test_vectors() {
        // RFC 4648 section 10.
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected, "{input:?}");
        }
    }

    #[test]
    fn base64_uses_the_whole_standard_alphabet() {
        // Each sextet 0..63 once, in order: the alphabet itself.
        let bytes: Vec<u8> = (0u32..16)
            .flat_map(|i| {
                let bits = (4 * i) << 18 | (4 * i + 1) << 12 | (4 * i + 2) << 6 | (4 * i + 3);
                [(bits >> 16) as u8, (bits >> 8) as u8, bits as u8]
            })
            .collect();
        assert_eq!(base64(&bytes), "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
        assert_eq!(base64(&[0xff, 0xff, 0xff, 0xff]), "/////w==");
        assert_eq!(base64(&[0, 0]), "AAA=");
    }

    proptest::proptest! {
        #[test]
        fn base64_matches_the_base64_crate(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            use base64::Engine;
            proptest::prop_assert_eq!(base64(&bytes), base64::engine::general_purpose::STANDARD.encode(&bytes));
        }
    }

    fn authorization(req: &RequestBuilder) -> &HeaderValue {
        req.headers.get(http::header::AUTHORIZATION).expect("an authorization header")
    }

    #[test]
    fn basic_auth_rfc7617_example() {
        let client = Client::new();
        let req = client.get("http://h/").basic_auth("Aladdin", Some("open sesame"));
        assert_eq!(authorization(&req), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(authorization(&req).is_sensitive());
        // No password: `user:`.
        let req = client.get("http://h/").basic_auth("ann", None::<&str>);
        assert_eq!(authorization(&req), "Basic YW5uOg==");
        // UTF-8 (RFC 7617 section 2.1's charset): "test:123£".
        let req = client.get("http://h/").basic_auth("test", Some("123\u{a3}"));
        assert_eq!(authorization(&req), "Basic dGVzdDoxMjPCow==");
    }

    #[test]
    fn auth_replaces_an_earlier_authorization() {
        let client = Client::new();
        let req = client.get("http://h/").header("authorization", "Basic old").bearer_auth("tok");
        assert_eq!(req.headers.get_all(http::header::AUTHORIZATION).iter().count(), 1);
        assert_eq!(authorization(&req), "Bearer tok");
        assert!(authorization(&req).is_sensitive());
        assert!(req.error.is_none());
    }

    #[test]
    fn basic_auth_refuses_what_rfc7617_cannot_carry() {
        let client = Client::new();
        let err = client.get("http://h/").basic_auth("a:b", Some("secret")).error.unwrap();
        assert_eq!(err.kind(), ErrorKind::Request);
        assert!(err.to_string().contains("':'"), "{err}");
        let err = client.get("http://h/").basic_auth("ann", Some("se\ncret")).error.unwrap();
        assert_eq!(err.kind(), ErrorKind::Request);
        assert!(!format!("{err} {err:?}").contains("cret"), "{err:?}");
    }

    #[test]
    fn bearer_token_with_crlf_is_an_error_without_the_token() {
        let client = Client::new();
        let err = client.get("http://h/").bearer_auth("secret\r\nx-evil: 1").error.unwrap();
        assert_eq!(err.kind(), ErrorKind::Request);
        assert!(!format!("{err} {err:?}").contains("secret"), "{err:?}");
    }

    #[test]
    fn debug_redacts_credentials() {
        let client = Client::new();
        let req = client
            .get("http://h/")
            .header("cookie", "session=cookie-secret")
            .header("proxy-authorization", "Basic proxy-secret")
            .header("x-visible", "shown")
            .basic_auth("ann", Some("basic-secret"));
        let debug = format!("{req:?}");
        let encoded = authorization(&req).to_str().unwrap().to_owned();
        for secret in ["cookie-secret", "proxy-secret", "basic-secret", &encoded["Basic ".len()..]] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(debug.contains("shown"), "{debug}");
        assert_eq!(debug.matches("Sensitive").count(), 3, "{debug}");
        let req = client.get("http://h/").bearer_auth("bearer-secret");
        let debug = format!("{req:?}");
        assert!(!debug.contains("bearer-secret") && debug.contains("Sensitive"), "{debug}");

        let mut map = HeaderMap::new();
        map.insert(http::header::AUTHORIZATION, HeaderValue::from_static("Bearer map-secret"));
        let debug = format!("{:?}", client.get("http://h/").headers(map));
        assert!(!debug.contains("map-secret"), "{debug}");
    }

    fn values<'a>(req: &'a RequestBuilder, name: &str) -> Vec<&'a str> {
        req.headers.get_all(name).iter().map(|v| v.to_str().unwrap()).collect()
    }

    #[test]
    fn header_appends_and_headers_replaces_per_name() {
        let client = Client::new();
        let req = client.get("http://h/").header("accept", "a").header("accept", "b").header("x-keep", "k");
        assert_eq!(values(&req, "accept"), ["a", "b"]);
        let mut map = HeaderMap::new();
        map.insert("accept", HeaderValue::from_static("c"));
        map.append("x-two", HeaderValue::from_static("1"));
        map.append("x-two", HeaderValue::from_static("2"));
        let req = req.headers(map);
        assert_eq!(values(&req, "accept"), ["c"]);
        assert_eq!(values(&req, "x-two"), ["1", "2"]);
        assert_eq!(values(&req, "x-keep"), ["k"]);
    }

    #[test]
    fn builder_owns_its_client() {
        fn assert_owned<T: Send + 'static>(_: &T) {}
        fn build(url: &str) -> RequestBuilder {
            let client = Client::new(); // dropped at the end of this function
            client.get(url).header("x-a", "1")
        }
        let req = build("http://h/");
        assert_owned(&req);
        let fut = req.send();
        assert_owned(&fut);
    }
}
