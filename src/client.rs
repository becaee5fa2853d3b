//! [`Client`], its builder, and the send loop: redirects, the safe retry,
//! deadlines.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderMap};
use http::{Method, StatusCode, Uri};

use crate::builder::{ClientBuilder, Config};
use crate::conn::{BodyDecoder, Written};
use crate::error::{Error, ErrorKind, Result};
use crate::pool::{OriginRef, Pool, PoolStats};
use crate::proto::framing::{connection_has, keep_alive_timeout, plan_body};
use crate::proto::head::{RequestFraming, RequestHead, encode_request_head};
use crate::proxy;
use crate::request::{RequestBody, RequestBuilder};
use crate::response::{Body, Response};
use crate::transport::Destination;
use crate::url::IntoUrl;
use crate::util::{deadline_after, earliest, with_deadline};
use crate::{redirect, transport, upload};

/// A redirect response body up to this size is read (raw: its framing
/// removed, nothing else) and discarded so its connection can be reused.
const DRAIN_REDIRECT_BODY: u64 = 64 * 1024;

/// An HTTP/1.1 client with a connection pool.
///
/// Cloning is cheap (one `Arc`), and clones share the pool. Dropping every
/// clone never breaks a response still being read: its connection simply
/// closes when the body is done.
///
/// ```no_run
/// # smol::block_on(async {
/// let client = smolreq::Client::new();
/// let resp = client.get("http://127.0.0.1:8080/items").header("accept", "application/json").send().await?;
/// assert!(resp.status().is_success());
/// let text = resp.text().await?; // the connection goes back to the pool here
/// # Ok::<(), smolreq::Error>(()) });
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    pool: Arc<Pool>,
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

impl Client {
    /// A client with the default configuration (see [`ClientBuilder`]).
    /// Clients are cheap to clone and share one pool; make one and reuse it.
    ///
    /// ```
    /// let client = smolreq::Client::new();
    /// let other = client.clone(); // the same pool
    /// assert_eq!(other.pool_stats().opened, 0);
    /// ```
    pub fn new() -> Client {
        ClientBuilder::new().build().unwrap_or_else(|_| unreachable!("the default configuration is valid"))
    }

    pub(crate) fn from_parts(config: Config, pool: Pool) -> Client {
        Client { inner: Arc::new(Inner { config, pool: Arc::new(pool) }) }
    }

    /// Starts configuring a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// Counters of the connection pool.
    pub fn pool_stats(&self) -> PoolStats {
        self.inner.pool.stats()
    }

    /// Starts a request with any method.
    ///
    /// The URL is text as a user types it or an [`http::Uri`] (see
    /// [`IntoUrl`]): `/café?q=a b` goes out as `/caf%C3%A9?q=a%20b`, and a
    /// user name and password in it are sent as `Authorization: Basic`.
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// let client = smolreq::Client::new();
    /// let resp = client.request(smolreq::Method::GET, "http://user:p%40ss@127.0.0.1:8080/café").send().await?;
    /// // sent: GET /caf%C3%A9 with Authorization: Basic dXNlcjpwQHNz ("user:p@ss")
    /// assert_eq!(resp.url().to_string(), "http://127.0.0.1:8080/caf%C3%A9"); // never the password
    /// # Ok::<(), smolreq::Error>(()) });
    /// ```
    pub fn request(&self, method: Method, url: impl IntoUrl) -> RequestBuilder {
        RequestBuilder::new(self.clone(), method, url.into_uri())
    }

    /// Starts a GET request.
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// let client = smolreq::Client::new();
    /// let page = client.get("http://127.0.0.1:8080/index.html").send().await?.text().await?;
    /// # Ok::<(), smolreq::Error>(()) });
    /// ```
    pub fn get(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request(Method::GET, url)
    }

    /// Starts a POST request.
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// let client = smolreq::Client::new();
    /// let resp = client.post("http://127.0.0.1:8080/items").body("name=a").send().await?;
    /// println!("{}", resp.status());
    /// # Ok::<(), smolreq::Error>(()) });
    /// ```
    pub fn post(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request(Method::POST, url)
    }

    /// Starts a PUT request.
    pub fn put(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request(Method::PUT, url)
    }

    /// Starts a DELETE request.
    pub fn delete(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request(Method::DELETE, url)
    }

    /// Starts a HEAD request.
    pub fn head(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request(Method::HEAD, url)
    }

    /// Starts a PATCH request.
    pub fn patch(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request(Method::PATCH, url)
    }

    /// Sends an `http::Request`, for code written against the `http` crate.
    /// Its headers are set as [`RequestBuilder::headers`] sets them. Like
    /// [`RequestBuilder::send`], the future owns what it needs
    /// (`'static + Send`).
    pub fn execute<B: Into<bytes::Bytes>>(
        &self,
        request: http::Request<B>,
    ) -> impl Future<Output = Result<Response>> + Send + 'static {
        let (parts, body) = request.into_parts();
        let body: bytes::Bytes = body.into();
        let mut builder = RequestBuilder::new(self.clone(), parts.method, Ok(parts.uri)).headers(parts.headers);
        if !body.is_empty() {
            builder = builder.body(body);
        }
        builder.send()
    }

    /// Runs a request: the redirect loop around [`Client::send_once`].
    pub(crate) async fn execute_builder(request: RequestBuilder) -> Result<Response> {
        let RequestBuilder { client, mut method, url, mut headers, mut body, timeout, error, url_auth } = request;
        let config = &client.inner.config;
        let timeout = timeout.or(config.timeout);
        let deadline = timeout.and_then(deadline_after);
        let mut url = url?;
        if let Some(err) = error {
            return Err(err.with_url(&url));
        }
        // Credentials from the URL, unless the caller set Authorization. A
        // cross-origin redirect removes the header (below), so they never
        // go to another origin.
        if let Some(auth) = url_auth
            && !headers.contains_key(header::AUTHORIZATION)
        {
            headers.insert(header::AUTHORIZATION, auth);
        }
        add_default_headers(&mut headers, &config.default_headers);
        let mut redirects = 0;
        loop {
            let response = with_deadline(deadline, client.send_once(&method, &url, &headers, &mut body, deadline))
                .await
                .map_err(|e| e.with_url(&url))?;
            let status = response.status();
            if !config.follow_redirects || !status.is_redirection() {
                return Ok(response);
            }
            let keep_method = match status {
                StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND | StatusCode::SEE_OTHER => false,
                StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT => true,
                _ => return Ok(response),
            };
            let Some(location) = response.headers().get(header::LOCATION) else { return Ok(response) };
            if keep_method && !body.is_replayable() {
                return Ok(response); // a streamed body cannot be sent again
            }
            if redirects >= config.max_redirects {
                return Err(Error::new(ErrorKind::Redirect, "too many redirects").with_url(&url));
            }
            let next = location
                .to_str()
                .map_err(|_| redirect::INVALID)
                .and_then(|loc| redirect::resolve(&url, loc))
                .map_err(|why| Error::new(ErrorKind::Redirect, why).with_url(&url))?;
            // Credentials in a Location are never used, nor shown.
            let next = crate::url::split_userinfo(&next).map_err(|e| e.with_url(&url))?.0;
            if is_https(&url) && !is_https(&next) && !config.allow_https_downgrade {
                return Err(Error::new(
                    ErrorKind::Redirect,
                    "redirect from https:// to http:// refused (see ClientBuilder::allow_https_downgrade)",
                )
                .with_url(&url));
            }
            // Boxed: only redirects need it, so it should not size every
            // request future.
            with_deadline(
                deadline,
                Box::pin(async {
                    // The redirect was received: a body that cannot be
                    // drained only costs its connection.
                    let _ = response.discard(DRAIN_REDIRECT_BODY).await;
                    Ok(())
                }),
            )
            .await
            .map_err(|e| e.with_url(&url))?;
            if !keep_method {
                if method != Method::HEAD {
                    method = Method::GET;
                }
                body = RequestBody::Empty;
                for name in
                    [header::CONTENT_TYPE, header::CONTENT_LENGTH, header::TRANSFER_ENCODING, header::CONTENT_ENCODING]
                {
                    headers.remove(name);
                }
            }
            if !same_origin(&url, &next) {
                for name in [header::AUTHORIZATION, header::COOKIE, header::PROXY_AUTHORIZATION, header::HOST] {
                    headers.remove(name);
                }
            }
            url = next;
            redirects += 1;
        }
    }

    /// One request on one connection, retried once on a fresh connection
    /// when that is safe (see [`retry_is_safe`]).
    async fn send_once(
        &self,
        method: &Method,
        url: &Uri,
        headers: &HeaderMap,
        body: &mut RequestBody,
        deadline: Option<Instant>,
    ) -> Result<Response> {
        let config = &self.inner.config;
        let target = Target::parse(url)?;
        if config.https_only && !target.tls {
            return Err(Error::new(ErrorKind::Url, "plain http:// refused: the client is https_only"));
        }
        let framing = request_framing(method, headers, body)?;
        let expect_continue = upload::continue_wait(headers, framing, config.expect_continue_timeout);
        // The route: direct, or through the first proxy that takes the URL.
        // Connections are pooled per route and proxy credentials, so two
        // routes never share a connection.
        let proxy = proxy::choose(&config.proxies, target.tls, target.host, target.port);
        let forward = proxy.is_some_and(|p| !target.tls && p.forwards_http());
        let proxy_auth = proxy
            .filter(|p| p.forwards_http())
            .and_then(|p| p.authorization.as_ref().or_else(|| headers.get(header::PROXY_AUTHORIZATION)));
        let absolute_target;
        let request_target = if forward {
            absolute_target = format!("http://{}{}", target.host_header, target.path_and_query);
            absolute_target.as_str()
        } else {
            target.path_and_query
        };
        let origin = OriginRef { tls: target.tls, host: target.host, port: target.port, proxy, proxy_auth };
        let mut fresh = false;
        loop {
            let dial_deadline = earliest(deadline, config.connect_timeout.and_then(deadline_after));
            let mut lease = self
                .inner
                .pool
                .checkout(origin, fresh, || {
                    let dest = Destination { tls: target.tls, host: target.host.to_owned(), port: target.port };
                    // Boxed: dialing (and the TLS handshake) is a large
                    // state machine needed once per connection, not per
                    // request, so it should not size every request future.
                    Box::pin(transport::connect(config, dest, proxy.map(|p| (p, proxy_auth)), dial_deadline))
                })
                .await?;
            let head = RequestHead {
                method,
                target: request_target,
                host: target.host_header,
                headers,
                user_agent: &config.user_agent,
                framing,
                to_proxy: forward,
                proxy_authorization: if forward { proxy.and_then(|p| p.authorization.as_ref()) } else { None },
            };
            let conn = lease.conn();
            conn.begin_exchange();
            let result = async {
                encode_request_head(&head, &mut conn.write_buf)?;
                let written =
                    upload::send_request(conn, body, framing, expect_continue, &config.limits, deadline).await?;
                Ok((conn.read_head(&config.limits).await?, written))
            }
            .await;
            match result {
                Ok((head, written)) => {
                    let request_close = connection_has(headers, "close");
                    let plan = plan_body(method, &head, request_close)?;
                    let keep_alive = keep_alive_timeout(&head.headers);
                    let decoder = BodyDecoder::new(plan.framing, &config.limits);
                    // A response that came before the whole request was
                    // written leaves the request incomplete on the wire:
                    // the connection can never carry another exchange.
                    let reusable = plan.reusable && written == Written::All;
                    let body = Body::new(lease, decoder, reusable, keep_alive, deadline, config.max_drain_on_drop);
                    let body = body.with_max_body_size(config.max_body_size);
                    return Ok(Response::new(head, url.clone(), body));
                }
                Err(err) => {
                    let before_response = !lease.conn().received_any();
                    if !fresh && lease.is_reused() && before_response && retry_is_safe(method, body, &err) {
                        lease.pool().count_retry();
                        drop(lease);
                        fresh = true;
                        continue;
                    }
                    return Err(err);
                }
            }
        }
    }
}

/// Adds each default header whose name the request does not set, with all
/// its values: a request's own field of that name replaces the default.
fn add_default_headers(headers: &mut HeaderMap, defaults: &HeaderMap) {
    for name in defaults.keys() {
        if !headers.contains_key(name) {
            for value in defaults.get_all(name) {
                headers.append(name.clone(), value.clone());
            }
        }
    }
}

/// A request may be sent again only if it failed on a reused connection
/// before any response byte (checked by the caller), with an I/O error (not
/// a timeout, not a protocol error), with an idempotent method and a body
/// that can be replayed (RFC 9110 section 9.2.2).
fn retry_is_safe(method: &Method, body: &RequestBody, err: &Error) -> bool {
    let idempotent =
        matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE);
    idempotent && body.is_replayable() && err.kind() == ErrorKind::Io
}

/// Decides the request framing from the body, checking any framing header
/// the caller set by hand.
fn request_framing(method: &Method, headers: &HeaderMap, body: &RequestBody) -> Result<RequestFraming> {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return Err(Error::new(
            ErrorKind::Request,
            "Transfer-Encoding is set by smolreq from the body; remove the header",
        ));
    }
    let declared = match crate::proto::framing::content_length(headers) {
        Ok(declared) => declared,
        Err(e) => return Err(Error::with_source(ErrorKind::Request, e)),
    };
    let framing = match body {
        RequestBody::Empty if declared.is_none() && matches!(*method, Method::POST | Method::PUT | Method::PATCH) => {
            RequestFraming::Length(0)
        }
        RequestBody::Empty => RequestFraming::None,
        RequestBody::Bytes(bytes) => RequestFraming::Length(bytes.len() as u64),
        RequestBody::Reader(_, Some(len)) => RequestFraming::Length(*len),
        RequestBody::Reader(_, None) => match declared {
            Some(len) => RequestFraming::Length(len),
            None => RequestFraming::Chunked,
        },
    };
    match (declared, framing) {
        (None, _) => Ok(framing),
        (Some(d), RequestFraming::Length(n)) if d == n => Ok(framing),
        (Some(0), RequestFraming::None) => Ok(RequestFraming::Length(0)),
        _ => Err(Error::new(ErrorKind::Request, "Content-Length header does not match the body")),
    }
}

/// The parts of a URL a request needs, borrowed from it.
struct Target<'u> {
    tls: bool,
    /// Host to connect to (IPv6 in brackets).
    host: &'u str,
    port: u16,
    /// Host header value: `host[:port]`, port only when not the default.
    host_header: &'u str,
    path_and_query: &'u str,
}

impl<'u> Target<'u> {
    fn parse(url: &'u Uri) -> Result<Target<'u>> {
        let tls = match url.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("http") => false,
            Some(s) if s.eq_ignore_ascii_case("https") && cfg!(feature = "native-tls") => true,
            Some(s) if s.eq_ignore_ascii_case("https") => {
                return Err(Error::new(ErrorKind::Tls, transport::TLS_DISABLED));
            }
            Some(_) => return Err(Error::new(ErrorKind::Url, "unsupported URL scheme (only http and https)")),
            None => return Err(Error::new(ErrorKind::Url, "URL has no scheme (expected http:// or https://)")),
        };
        let authority = url.authority().ok_or_else(|| Error::new(ErrorKind::Url, "URL has no host"))?;
        if authority.as_str().contains('@') {
            return Err(Error::new(
                ErrorKind::Url,
                "credentials in the URL are not supported; use an Authorization header",
            ));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(Error::new(ErrorKind::Url, "URL has an empty host"));
        }
        let default_port = if tls { 443 } else { 80 };
        let port = match authority.port_u16() {
            Some(0) => return Err(Error::new(ErrorKind::Url, "port 0 is not a valid destination")),
            Some(port) => port,
            // `Uri` keeps any text after the colon; `port_u16` is None when
            // it is empty or not a number in 0-65535.
            None if authority.as_str().len() > host.len() => {
                return Err(Error::new(ErrorKind::Url, "URL has an invalid port"));
            }
            None => default_port,
        };
        let host_header = if authority.port_u16() == Some(default_port) {
            &authority.as_str()[..authority.as_str().len() - authority.port().map_or(0, |p| p.as_str().len() + 1)]
        } else {
            authority.as_str()
        };
        let path_and_query = match url.path_and_query().map(|pq| pq.as_str()) {
            Some(pq) if !pq.is_empty() && pq != "?" => pq,
            _ => "/",
        };
        Ok(Target { tls, host, port, host_header, path_and_query })
    }
}

fn is_https(url: &Uri) -> bool {
    url.scheme_str().is_some_and(|s| s.eq_ignore_ascii_case("https"))
}

fn same_origin(a: &Uri, b: &Uri) -> bool {
    let port = |u: &Uri| u.port_u16().unwrap_or(if u.scheme_str() == Some("https") { 443 } else { 80 });
    a.scheme() == b.scheme()
        && match (a.host(), b.host()) {
            (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
            (x, y) => x == y,
        }
        && port(a) == port(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn target(url: &str) -> Result<(bool, String, u16, String, String)> {
        let uri: Uri = url.parse().unwrap();
        let t = Target::parse(&uri)?;
        Ok((t.tls, t.host.to_owned(), t.port, t.host_header.to_owned(), t.path_and_query.to_owned()))
    }

    #[test]
    fn target_of_plain_url() {
        assert_eq!(target("http://a.test/x?y").unwrap(), (false, "a.test".into(), 80, "a.test".into(), "/x?y".into()));
        assert_eq!(target("http://a.test").unwrap().4, "/");
        assert_eq!(target("http://a.test:8080").unwrap().3, "a.test:8080");
        assert_eq!(target("http://a.test:80/").unwrap().3, "a.test");
        assert_eq!(target("http://[::1]:81/").unwrap().1, "[::1]");
    }

    #[test]
    #[cfg(feature = "native-tls")]
    fn target_of_https_url() {
        assert_eq!(target("https://a.test/x").unwrap(), (true, "a.test".into(), 443, "a.test".into(), "/x".into()));
        assert_eq!(target("https://a.test:443/").unwrap().3, "a.test");
        assert_eq!(target("HTTPS://a.test:8443/").unwrap().3, "a.test:8443");
    }

    #[test]
    #[cfg(not(feature = "native-tls"))]
    fn https_without_the_feature_names_it() {
        let err = target("https://a/").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Tls);
        assert!(err.to_string().contains("`native-tls` feature"), "{err}");
    }

    #[test]
    fn target_rejects_bad_urls() {
        assert_eq!(target("ftp://a/").unwrap_err().kind(), ErrorKind::Url);
        assert_eq!(target("/relative").unwrap_err().kind(), ErrorKind::Url);
        assert_eq!(target("http://u:p@a/").unwrap_err().kind(), ErrorKind::Url);
        assert_eq!(target("http://a:0/").unwrap_err().kind(), ErrorKind::Url);
        assert_eq!(target("http://a:/").unwrap_err().kind(), ErrorKind::Url);
        assert_eq!(target("http://a:99999/").unwrap_err().kind(), ErrorKind::Url);
        assert_eq!(target("http://a:x1/").unwrap_err().kind(), ErrorKind::Url);
    }

    #[test]
    fn framing_from_body_and_headers() {
        let none = HeaderMap::new();
        assert_eq!(request_framing(&Method::GET, &none, &RequestBody::Empty).unwrap(), RequestFraming::None);
        assert_eq!(request_framing(&Method::POST, &none, &RequestBody::Empty).unwrap(), RequestFraming::Length(0));
        let bytes = RequestBody::Bytes(bytes::Bytes::from_static(b"abc"));
        assert_eq!(request_framing(&Method::POST, &none, &bytes).unwrap(), RequestFraming::Length(3));
        let mut cl = HeaderMap::new();
        cl.insert(header::CONTENT_LENGTH, HeaderValue::from_static("4"));
        assert_eq!(request_framing(&Method::POST, &cl, &bytes).unwrap_err().kind(), ErrorKind::Request);
        let mut te = HeaderMap::new();
        te.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        assert!(request_framing(&Method::POST, &te, &bytes).is_err());
    }

    #[test]
    fn retry_only_idempotent_replayable_io_errors() {
        let io = Error::new(ErrorKind::Io, "x");
        assert!(retry_is_safe(&Method::GET, &RequestBody::Empty, &io));
        assert!(!retry_is_safe(&Method::POST, &RequestBody::Empty, &io));
        assert!(!retry_is_safe(&Method::GET, &RequestBody::Empty, &Error::new(ErrorKind::Protocol, "x")));
        let reader = RequestBody::Reader(Box::new(futures_lite::io::empty()), None);
        assert!(!retry_is_safe(&Method::PUT, &reader, &io));
    }

    /// A connection that records what the client writes and answers with
    /// one empty response.
    struct Capture {
        written: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
        response: &'static [u8],
    }

    impl futures_io::AsyncRead for Capture {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut [u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let n = self.response.len().min(buf.len());
            buf[..n].copy_from_slice(&self.response[..n]);
            self.response = &self.response[n..];
            std::task::Poll::Ready(Ok(n))
        }
    }

    impl futures_io::AsyncWrite for Capture {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.written.lock().unwrap().extend_from_slice(buf);
            std::task::Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_close(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// Sends the request `build` makes over a [`Capture`]; returns the
    /// outcome and the bytes written.
    fn send_captured(build: impl FnOnce(&Client) -> RequestBuilder) -> (Result<()>, Vec<u8>) {
        let written = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let capture = written.clone();
        let client = Client::builder()
            .connector(move |_| {
                let stream =
                    Capture { written: capture.clone(), response: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" };
                async move { Ok(stream) }
            })
            .build()
            .unwrap();
        let result = futures_lite::future::block_on(build(&client).send()).map(drop);
        let wire = written.lock().unwrap().clone();
        (result, wire)
    }

    #[test]
    fn caller_content_length_frames_a_reader_of_unknown_length() {
        // Found by the request_encode fuzz target: a Content-Length set by
        // the caller with a reader of unknown length was written as
        // `Content-Length: 4` followed by a chunked body, so the server
        // read the rest of the body as the next request. The body is the
        // first 4 bytes of the reader, which is never asked for more.
        let body: Vec<u8> = (0..2618).map(|i| (i % 251) as u8).collect();
        let (result, wire) = send_captured(|client| {
            client
                .post("http://h/")
                .header("content-length", "4")
                .body_reader(futures_lite::io::Cursor::new(body), None)
        });
        result.unwrap();
        let text = String::from_utf8_lossy(&wire).to_ascii_lowercase();
        assert!(text.contains("content-length: 4\r\n"), "{text}");
        assert!(!text.contains("transfer-encoding"), "{text}");
        let head_end = text.find("\r\n\r\n").unwrap() + 4;
        assert_eq!(&wire[head_end..], &[0, 1, 2, 3], "exactly the Content-Length of body bytes");

        let (result, wire) = send_captured(|client| {
            client.post("http://h/").header("content-length", "4").body_reader(&b"abcd"[..], None)
        });
        result.unwrap();
        assert!(wire.ends_with(b"Content-Length: 4\r\n\r\nabcd"), "{:?}", String::from_utf8_lossy(&wire));
    }

    #[test]
    fn zero_connection_cap_is_rejected() {
        let err = Client::builder().max_connections_per_host(0).build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Builder);
    }
}
