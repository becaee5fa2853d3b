//! URLs as users type them: from text to the [`Uri`] a request goes to,
//! credentials in the URL, and URLs printed without their password.
//!
//! [`parse`] reads a URL the way a browser's address bar does (the WHATWG
//! URL standard), within what an HTTP/1.1 client needs:
//!
//! - spaces and control characters around the URL are trimmed (a line
//!   read from a file or a terminal works); a tab or line break inside it
//!   is an error, where a browser would silently remove it;
//! - the scheme is `http` or `https`, in any case, followed by `//`;
//! - the host is a DNS name (ASCII letters, digits, `-`, `.`, `_`,
//!   lowercased), an IPv4 address in dotted-decimal form or an IPv6 address
//!   in brackets. A non-ASCII host name is mapped to its punycode form
//!   (`bücher.example` to `xn--bcher-kva.example`, IDNA as browsers do it)
//!   with the `idna` feature, and is an error naming that feature and the
//!   punycode form as the ways out without it;
//! - the port is 1 to 65535; an empty port or the scheme's default port is
//!   dropped (`http://h:80/` is `http://h/`);
//! - in the path and the query, the bytes a browser percent-encodes are
//!   encoded as UTF-8 (`/café` is `/caf%C3%A9`, `a b` is `a%20b`), and
//!   `%XX` sequences already there are kept as they are. Encoded in both:
//!   C0 controls, space, `"`, `<`, `>`, `` ` ``, `{`, `}`, `|`, `\`, `^`,
//!   DEL and every non-ASCII character; in the query also `'`. This is the
//!   WHATWG path and special-query percent-encode sets, plus the characters
//!   RFC 3986 allows in neither (`|`, `\`, `^`, `` ` ``, `{`, `}`), so what
//!   goes on the wire is a valid RFC 3986 request target. `[` and `]` are
//!   kept, as browsers keep them;
//! - `.` and `..` path segments are resolved (RFC 3986 section 5.2.4), as
//!   browsers and curl do;
//! - the fragment (`#...`) is dropped: it is never sent;
//! - a user name and password (`http://user:p%40ss@host/`) are kept in the
//!   returned [`Uri`], percent-encoded; [`split_userinfo`] takes them out.
//!
//! Where this differs from a browser: `\` is sent as `%5C` instead of
//! being read as `/`; IPv4 shorthands (`127.1`, `0x7f.0.0.1`, octal) are
//! refused instead of rewritten; a `%` not followed by two hex digits is
//! kept as it is (as browsers do), never decoded.
//!
//! Every error names what was wrong and where, quoting the URL with its
//! password replaced by `***` (see [`redact_str`]).

use std::borrow::Cow;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use http::Uri;
use http::header::HeaderValue;
use http::uri::Authority;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use crate::error::{Error, ErrorKind, Result};

/// Encoded in a path: the WHATWG path percent-encode set (C0 controls,
/// space, `"`, `#`, `<`, `>`, `?`, `^`, `` ` ``, `{`, `}`; `#` and `?`
/// never reach it) plus `|` and `\`, which RFC 3986 does not allow either.
/// `CONTROLS` includes DEL; non-ASCII is always encoded.
const PATH: &AsciiSet =
    &CONTROLS.add(b' ').add(b'"').add(b'<').add(b'>').add(b'\\').add(b'^').add(b'`').add(b'{').add(b'|').add(b'}');

/// Encoded in a query: the path set plus `'`, as the WHATWG special-query
/// set has it for http(s).
const QUERY: &AsciiSet = &PATH.add(b'\'');

/// Encoded in a user name or password: the WHATWG userinfo set.
const USERINFO: &AsciiSet =
    &PATH.add(b'/').add(b':').add(b';').add(b'=').add(b'@').add(b'[').add(b']').add(b'?').add(b'#');

/// How many characters of a URL an error message quotes.
const MAX_QUOTED: usize = 200;

/// Parses a URL as a user types it into the [`Uri`] to send the request
/// to (see the module documentation for the rules).
pub(crate) fn parse(input: &str) -> Result<Uri> {
    // What the WHATWG parser does first, except that a tab, CR or LF
    // inside is refused rather than removed: one there is a bug or an
    // attempt to inject a header, never part of a URL.
    let text = input.trim_matches(|c: char| c <= ' ');
    let shown = Shown::new(text);
    if text.contains(['\t', '\n', '\r']) {
        return Err(url_error(format!("line break or tab inside {shown}")));
    }
    let Some((scheme, rest)) = split_scheme(text) else {
        return Err(url_error(format!("URL has no scheme in {shown} (expected http:// or https://)")));
    };
    let scheme = if scheme.eq_ignore_ascii_case("http") {
        "http"
    } else if scheme.eq_ignore_ascii_case("https") {
        "https"
    } else if rest.starts_with(|c: char| c.is_ascii_digit()) {
        // `localhost:8080/x`: a host and a port, not a scheme.
        return Err(url_error(format!("URL has no scheme in {shown} (expected http:// or https://)")));
    } else {
        return Err(url_error(format!("unsupported scheme {scheme:?} (only http and https)")));
    };
    let Some(rest) = rest.strip_prefix("//") else {
        return Err(url_error(format!("URL has no host in {shown} (expected \"//\" after \"{scheme}:\")")));
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, host_port) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let (host, port) = split_port(host_port, &shown)?;
    let host = check_host(host, &shown)?;
    let port = match port {
        None | Some("") => None,
        Some(digits) => Some(check_port(digits, &shown)?),
    };
    let tail = tail.split_once('#').map_or(tail, |(before, _fragment)| before);
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };

    // The common case: the text is already what would be built below (no
    // byte to encode, no dot segment, no userinfo, fragment or default
    // port, a lower-case host). Then the `Uri` is parsed from it directly,
    // as `Uri::try_from` would: no copy beyond the `Uri`'s own.
    let unchanged = |s: &str, set| matches!(Cow::from(utf8_percent_encode(s, set)), Cow::Borrowed(_));
    let canonical_port = match (port, host_port.rfind(':')) {
        (None, None) => true,
        (Some(p), Some(_)) => {
            p != if scheme == "https" { 443 } else { 80 } && !host_port.ends_with(":0") && {
                let digits = &host_port[host_port.rfind(':').unwrap_or(0) + 1..];
                !digits.starts_with('0')
            }
        }
        _ => false,
    };
    if text.starts_with(scheme)
        && userinfo.is_none()
        && matches!(host, Cow::Borrowed(_))
        && canonical_port
        && path.starts_with('/')
        && tail.len() == path.len() + query.map_or(0, |q| q.len() + 1)
        && !path.contains("/.")
        && !path.contains("%2e")
        && !path.contains("%2E")
        && unchanged(path, PATH)
        && query.is_none_or(|q| unchanged(q, QUERY))
    {
        return Uri::try_from(text).map_err(|e| url_error(format!("{e} in {shown}")));
    }

    let mut url = String::with_capacity(text.len() + 16);
    url.push_str(scheme);
    url.push_str("://");
    if let Some(userinfo) = userinfo.filter(|u| !u.is_empty()) {
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        url.extend(utf8_percent_encode(user, USERINFO));
        if let Some(password) = password {
            url.push(':');
            url.extend(utf8_percent_encode(password, USERINFO));
        }
        url.push('@');
    }
    url.push_str(&host);
    let default_port = if scheme == "https" { 443 } else { 80 };
    if let Some(port) = port.filter(|&p| p != default_port) {
        url.push(':');
        url.push_str(&port.to_string());
    }
    let path: String = utf8_percent_encode(path, PATH).collect();
    url.push_str(&crate::redirect::remove_dot_segments(if path.is_empty() { "/" } else { &path }));
    if let Some(query) = query {
        url.push('?');
        url.extend(utf8_percent_encode(query, QUERY));
    }
    Uri::try_from(url).map_err(|e| url_error(format!("{e} in {shown}")))
}

/// A URL error whose message is `detail`.
fn url_error(detail: String) -> Error {
    Error::with_detail(ErrorKind::Url, detail)
}

/// Splits `scheme:rest` when the text before the first `:` is a scheme
/// (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`).
fn split_scheme(text: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = text.split_once(':')?;
    let mut bytes = scheme.bytes();
    let valid = bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.');
    valid.then_some((scheme, rest))
}

/// Splits `host[:port]`; an IPv6 host keeps its brackets.
fn split_port<'a>(host_port: &'a str, shown: &Shown<'_>) -> Result<(&'a str, Option<&'a str>)> {
    if host_port.starts_with('[') {
        let Some(close) = host_port.find(']') else {
            return Err(url_error(format!("invalid IPv6 address{} in {shown}", shown.part(host_port))));
        };
        let (host, after) = host_port.split_at(close + 1);
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(url_error(format!("invalid IPv6 address{} in {shown}", shown.part(host_port)))),
        };
    }
    Ok(match host_port.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (host_port, None),
    })
}

/// Checks a host and returns it lowercased.
fn check_host<'a>(host: &'a str, shown: &Shown<'_>) -> Result<Cow<'a, str>> {
    if host.is_empty() {
        return Err(url_error(format!("empty host in {shown}")));
    }
    if let Some(inner) = host.strip_prefix('[') {
        let address = inner.strip_suffix(']').unwrap_or(inner);
        if address.parse::<Ipv6Addr>().is_err() {
            return Err(url_error(format!("invalid IPv6 address{} in {shown}", shown.part(host))));
        }
        return Ok(lowercase(host));
    }
    if !host.is_ascii() {
        return international_host(host, shown);
    }
    if let Some(c) = host.chars().find(|&c| !(c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')) {
        let what = if shown.hides_secret { String::new() } else { format!(" {c:?}") };
        return Err(url_error(format!("invalid character{what} in the host of {shown}")));
    }
    // The WHATWG rule: a host whose last label is a number is an IPv4
    // address, and must be one.
    let last_label = host.strip_suffix('.').unwrap_or(host).rsplit('.').next().unwrap_or("");
    if !last_label.is_empty() && last_label.bytes().all(|b| b.is_ascii_digit()) && host.parse::<Ipv4Addr>().is_err() {
        return Err(url_error(format!("invalid IPv4 address{} in {shown}", shown.part(host))));
    }
    Ok(lowercase(host))
}

/// A non-ASCII host name, in its punycode form: the WHATWG "domain to
/// ASCII" (UTS 46 processing, as the `url` crate and browsers do it).
#[cfg(feature = "idna")]
fn international_host<'a>(host: &str, shown: &Shown<'_>) -> Result<Cow<'a, str>> {
    match idna::domain_to_ascii(host) {
        Ok(ascii) if ascii.is_ascii() => check_host(&ascii, shown).map(|h| Cow::Owned(h.into_owned())),
        _ => Err(url_error(format!("invalid international host name{} in {shown} (IDNA)", shown.part(host)))),
    }
}

/// Without IDNA, a non-ASCII host name is an error saying the ways out.
#[cfg(not(feature = "idna"))]
fn international_host<'a>(host: &str, shown: &Shown<'_>) -> Result<Cow<'a, str>> {
    Err(url_error(format!(
        "non-ASCII host name{} in {shown}: IDNA is not supported in this build (enable the `idna` feature of smolreq); use the punycode form xn--...",
        shown.part(host)
    )))
}

fn lowercase(host: &str) -> Cow<'_, str> {
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// Parses the digits after the host's `:`.
fn check_port(digits: &str, shown: &Shown<'_>) -> Result<u16> {
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(url_error(format!("invalid port{} in {shown}", shown.part(digits))));
    }
    match digits.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(url_error(format!("invalid port{} in {shown} (ports are 1 to 65535)", shown.part(digits)))),
    }
}

/// A URL as an error message quotes it: password redacted, at most
/// [`MAX_QUOTED`] characters, escaped to stay on one line.
struct Shown<'a> {
    /// The URL text, quoted (redacted, cut) only when an error shows it.
    text: &'a str,
    /// True if a password was hidden: then the parts of the URL (host,
    /// port) are not quoted either, since a password holding a `/`, `?`
    /// or `#` spills into them.
    hides_secret: bool,
}

impl Shown<'_> {
    fn new(url: &str) -> Shown<'_> {
        // Whether a password is there to hide, without building the
        // redacted text (that is done only for an error).
        let hides_secret = url.as_bytes().contains(&b'@') && matches!(redact_str(url), Cow::Owned(_));
        Shown { text: url, hides_secret }
    }

    /// ` "part"`, or nothing when the URL had a password.
    fn part(&self, part: &str) -> String {
        if self.hides_secret { String::new() } else { format!(" {part:?}") }
    }
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = redact_str(self.text);
        match redacted.char_indices().nth(MAX_QUOTED) {
            Some((cut, _)) => write!(f, "{:?}...", &redacted[..cut]),
            None => write!(f, "{redacted:?}"),
        }
    }
}

/// URL text with the password of its userinfo replaced by `***`, for
/// error messages about text that may not parse. The user name is kept.
///
/// Conservative: the userinfo is taken to end at the last `@` of the
/// text, so a password holding a raw `/`, `?` or `#` is hidden too, at the
/// cost of hiding more than the password in a URL such as
/// `http://h:x/?to=a@b` (only ever in an error message).
pub(crate) fn redact_str(url: &str) -> Cow<'_, str> {
    let start = match url.find("://") {
        Some(i) => i + 3,
        None if url.starts_with("//") => 2,
        None => 0,
    };
    let Some(at) = url[start..].rfind('@').map(|i| start + i) else { return Cow::Borrowed(url) };
    let Some(colon) = url[start..at].find(':').map(|i| start + i) else { return Cow::Borrowed(url) };
    Cow::Owned(format!("{}***{}", &url[..=colon], &url[at..]))
}

/// Displays a [`Uri`] with the password of its userinfo replaced by
/// `***`; the user name is kept (it tells which account, and is not a
/// secret). A URL without a password prints as it is.
pub(crate) struct Redacted<'a>(pub(crate) &'a Uri);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(authority) = self.0.authority().map(Authority::as_str) else { return fmt::Display::fmt(self.0, f) };
        let Cow::Owned(hidden) = redact_str(authority) else { return fmt::Display::fmt(self.0, f) };
        let text = self.0.to_string();
        match text.find(authority) {
            Some(i) => write!(f, "{}{hidden}{}", &text[..i], &text[i + authority.len()..]),
            None => f.write_str(&hidden),
        }
    }
}

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

/// A user name and optional password from a URL, percent-decoded.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) user: Vec<u8>,
    pub(crate) password: Option<Vec<u8>>,
}

impl Credentials {
    /// The `Authorization` value for Basic authentication (RFC 7617):
    /// `Basic base64(user ":" password)`, marked sensitive so `http` never
    /// shows it and HPACK-style encoders never index it. Without a
    /// password, the user name alone is followed by `:` (as curl does).
    pub(crate) fn basic_auth(&self) -> HeaderValue {
        crate::request::basic_value(&self.user, self.password.as_deref().unwrap_or_default())
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &String::from_utf8_lossy(&self.user))
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Splits the userinfo off `url`: returns the URL without it, and the
/// percent-decoded user name and password when there was one. `http://@h/`
/// has no credentials; `http://:pw@h/` has an empty user name.
pub(crate) fn split_userinfo(url: &Uri) -> Result<(Uri, Option<Credentials>)> {
    let Some((host_port, userinfo)) = url.authority().and_then(|a| {
        let a = a.as_str();
        a.rfind('@').map(|at| (&a[at + 1..], &a[..at]))
    }) else {
        return Ok((url.clone(), None));
    };
    let (user, password) = match userinfo.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (userinfo, None),
    };
    let credentials = (!userinfo.is_empty()).then(|| Credentials {
        user: percent_decode_str(user).collect(),
        password: password.map(|p| percent_decode_str(p).collect()),
    });
    let invalid = || {
        let text = Redacted(url).to_string();
        url_error(format!("invalid authority in {}", Shown::new(&text)))
    };
    let mut parts = url.clone().into_parts();
    parts.authority = Some(Authority::try_from(host_port).map_err(|_| invalid())?);
    Ok((Uri::from_parts(parts).map_err(|_| invalid())?, credentials))
}

/// `url` without its userinfo, or `None` if it cannot be rebuilt (then it
/// must not be shown).
pub(crate) fn without_userinfo(url: &Uri) -> Option<Uri> {
    match url.authority() {
        Some(a) if a.as_str().contains('@') => split_userinfo(url).ok().map(|(url, _)| url),
        _ => Some(url.clone()),
    }
}

/// A URL a request can be sent to: text as a user types it (`&str`,
/// `String`, `&String`), or an [`http::Uri`] (`Uri`, `&Uri`).
///
/// Text is read as a browser's address bar reads it: a space or a
/// non-ASCII character in the path or query is percent-encoded
/// (`/café?q=a b` goes out as `/caf%C3%A9?q=a%20b`), `%XX` sequences are
/// kept, `.` and `..` segments are resolved, the fragment is dropped, the
/// host is lowercased and a default port removed. A user name and password
/// in the URL (`http://user:p%40ss@host/`) are sent as `Authorization:
/// Basic` with the percent-decoded password, unless the request sets its
/// own `Authorization`, and are never printed. A `Uri` is used as it is.
///
/// A URL that cannot be used fails the request with
/// [`ErrorKind::Url`](crate::ErrorKind::Url), whose message says what was
/// wrong and where, such as `invalid URL: invalid port "80a" in
/// "http://host:80a/"`.
///
/// The trait is sealed: it is implemented for these types only.
pub trait IntoUrl: sealed::Sealed {}

impl IntoUrl for &str {}
impl IntoUrl for String {}
impl IntoUrl for &String {}
impl IntoUrl for Uri {}
impl IntoUrl for &Uri {}

pub(crate) mod sealed {
    use http::Uri;

    /// The conversion behind [`IntoUrl`](super::IntoUrl).
    pub trait Sealed {
        /// The URL to request, or a [`ErrorKind::Url`](crate::ErrorKind::Url) error.
        fn into_uri(self) -> crate::Result<Uri>;
    }

    impl Sealed for &str {
        fn into_uri(self) -> crate::Result<Uri> {
            super::parse(self)
        }
    }

    impl Sealed for String {
        fn into_uri(self) -> crate::Result<Uri> {
            super::parse(&self)
        }
    }

    impl Sealed for &String {
        fn into_uri(self) -> crate::Result<Uri> {
            super::parse(self)
        }
    }

    impl Sealed for Uri {
        fn into_uri(self) -> crate::Result<Uri> {
            Ok(self)
        }
    }

    impl Sealed for &Uri {
        fn into_uri(self) -> crate::Result<Uri> {
            Ok(self.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(input: &str) -> String {
        parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}")).to_string()
    }

    fn err(input: &str) -> String {
        let e = parse(input).expect_err(input);
        assert_eq!(e.kind(), ErrorKind::Url, "{input:?}: {e}");
        e.to_string()
    }

    #[test]
    fn spaces_and_non_ascii_are_percent_encoded_as_utf8() {
        assert_eq!(ok("http://example.test/café"), "http://example.test/caf%C3%A9");
        assert_eq!(ok("http://h/a b?q=a b"), "http://h/a%20b?q=a%20b");
        assert_eq!(ok("http://h/?q=日本"), "http://h/?q=%E6%97%A5%E6%9C%AC");
        assert_eq!(ok("http://h/\u{1F600}"), "http://h/%F0%9F%98%80");
    }

    #[test]
    fn existing_escapes_are_kept() {
        assert_eq!(ok("http://h/a%2Fb%20c?x=%26%zz"), "http://h/a%2Fb%20c?x=%26%zz");
        assert_eq!(ok("http://h/100%"), "http://h/100%");
    }

    #[test]
    fn the_browser_sets_are_encoded_in_path_and_query() {
        assert_eq!(ok("http://h/\"<>`{}|\\^"), "http://h/%22%3C%3E%60%7B%7D%7C%5C%5E");
        assert_eq!(ok("http://h/?\"<>`{}|\\^"), "http://h/?%22%3C%3E%60%7B%7D%7C%5C%5E");
        assert_eq!(ok("http://h/a\u{0}b\u{1f}c\u{7f}"), "http://h/a%00b%1Fc%7F");
        // `'` only in the query, as the WHATWG special-query set has it.
        assert_eq!(ok("http://h/it's?a='b'"), "http://h/it's?a=%27b%27");
        // Sub-delimiters, `:`, `@` and brackets stay.
        assert_eq!(ok("http://h/a:b@c;d=e!$&()*+,~?f[0]=g/h?i"), "http://h/a:b@c;d=e!$&()*+,~?f[0]=g/h?i");
    }

    #[test]
    fn fragment_is_dropped() {
        assert_eq!(ok("http://h/a#frag ment"), "http://h/a");
        assert_eq!(ok("http://h/a?q#f"), "http://h/a?q");
        assert_eq!(ok("http://h#f"), "http://h/");
    }

    #[test]
    fn scheme_host_and_port_are_normalised() {
        assert_eq!(ok("HTTP://Example.TEST/Path"), "http://example.test/Path");
        assert_eq!(ok("http://h:80/"), "http://h/");
        assert_eq!(ok("https://h:443"), "https://h/");
        assert_eq!(ok("https://h:80/"), "https://h:80/");
        assert_eq!(ok("http://h:/"), "http://h/");
        assert_eq!(ok("http://h:08080"), "http://h:8080/");
        assert_eq!(ok("http://h?x=1"), "http://h/?x=1");
        assert_eq!(ok("http://127.0.0.1:3000/x"), "http://127.0.0.1:3000/x");
        assert_eq!(ok("http://[::1]:8080/"), "http://[::1]:8080/");
        assert_eq!(ok("http://[2001:DB8::1]/"), "http://[2001:db8::1]/");
        assert_eq!(ok("http://my_host.example./"), "http://my_host.example./");
    }

    #[test]
    fn whitespace_around_is_trimmed_and_line_breaks_inside_refused() {
        assert_eq!(ok("  http://h/x\r\n"), "http://h/x");
        assert_eq!(
            err("http://h/a\r\nX-Injected: 1"),
            r#"invalid URL: line break or tab inside "http://h/a\r\nX-Injected: 1""#
        );
        assert_eq!(err("http://h/a\tb"), r#"invalid URL: line break or tab inside "http://h/a\tb""#);
    }

    #[test]
    fn dot_segments_are_resolved() {
        assert_eq!(ok("http://h/a/./b/../c"), "http://h/a/c");
        assert_eq!(ok("http://h/../../x"), "http://h/x");
        assert_eq!(ok("http://h/a/..?q=../b"), "http://h/?q=../b");
    }

    #[test]
    fn userinfo_is_kept_encoded() {
        assert_eq!(ok("http://user:p%40ss@h/"), "http://user:p%40ss@h/");
        // The last `@` ends the userinfo; the others are encoded.
        assert_eq!(ok("http://u:p@ss@h/"), "http://u:p%40ss@h/");
        assert_eq!(ok("http://us er:pä:ss@h/"), "http://us%20er:p%C3%A4%3Ass@h/");
        assert_eq!(ok("http://@h/"), "http://h/");
    }

    #[test]
    fn errors_name_what_and_where() {
        assert_eq!(err("http://host:80a/"), r#"invalid URL: invalid port "80a" in "http://host:80a/""#);
        assert_eq!(
            err("http://host:99999/"),
            r#"invalid URL: invalid port "99999" in "http://host:99999/" (ports are 1 to 65535)"#
        );
        assert_eq!(
            err("http://host:0/"),
            r#"invalid URL: invalid port "0" in "http://host:0/" (ports are 1 to 65535)"#
        );
        assert_eq!(err("ftp://h/"), r#"invalid URL: unsupported scheme "ftp" (only http and https)"#);
        assert_eq!(err("http://"), r#"invalid URL: empty host in "http://""#);
        assert_eq!(err("http://:80/x"), r#"invalid URL: empty host in "http://:80/x""#);
        assert_eq!(err("http:/x"), r#"invalid URL: URL has no host in "http:/x" (expected "//" after "http:")"#);
        assert_eq!(
            err("127.0.0.1:1/x"),
            r#"invalid URL: URL has no scheme in "127.0.0.1:1/x" (expected http:// or https://)"#
        );
        assert_eq!(
            err("localhost:8080/x"),
            r#"invalid URL: URL has no scheme in "localhost:8080/x" (expected http:// or https://)"#
        );
        assert_eq!(err("not a url"), r#"invalid URL: URL has no scheme in "not a url" (expected http:// or https://)"#);
        assert_eq!(err("http://exa mple/"), r#"invalid URL: invalid character ' ' in the host of "http://exa mple/""#);
        assert_eq!(err("http://a|b/"), r#"invalid URL: invalid character '|' in the host of "http://a|b/""#);
        assert_eq!(err("http://[::g]/"), r#"invalid URL: invalid IPv6 address "[::g]" in "http://[::g]/""#);
        assert_eq!(err("http://[::1/"), r#"invalid URL: invalid IPv6 address "[::1" in "http://[::1/""#);
        assert_eq!(err("http://[::1]x/"), r#"invalid URL: invalid IPv6 address "[::1]x" in "http://[::1]x/""#);
        assert_eq!(err("http://1.2.3.999/"), r#"invalid URL: invalid IPv4 address "1.2.3.999" in "http://1.2.3.999/""#);
        assert_eq!(err("http://127.1/"), r#"invalid URL: invalid IPv4 address "127.1" in "http://127.1/""#);
    }

    #[test]
    #[cfg(not(feature = "idna"))]
    fn non_ascii_host_names_the_idna_feature_and_punycode() {
        assert_eq!(
            err("http://bücher.example/"),
            r#"invalid URL: non-ASCII host name "bücher.example" in "http://bücher.example/": IDNA is not supported in this build (enable the `idna` feature of smolreq); use the punycode form xn--..."#
        );
    }

    #[test]
    #[cfg(feature = "idna")]
    fn non_ascii_host_goes_to_its_punycode_form() {
        assert_eq!(ok("http://bücher.example/x"), "http://xn--bcher-kva.example/x");
        assert_eq!(ok("https://BÜCHER.example:8443/"), "https://xn--bcher-kva.example:8443/");
        assert_eq!(ok("http://日本語.jp/"), "http://xn--wgv71a119e.jp/");
        // Full-width dots and letters are mapped (UTS 46), then checked.
        assert_eq!(ok("http://ｅｘａｍｐｌｅ。com/"), "http://example.com/");
        // A noncharacter is disallowed; the message escapes it.
        assert_eq!(
            err("http://a\u{fdd0}b.example/"),
            r#"invalid URL: invalid international host name "a\u{fdd0}b.example" in "http://a\u{fdd0}b.example/" (IDNA)"#
        );
        // The mapped name gets the same checks as an ASCII one.
        assert_eq!(
            err("http://ex ample.ü/"),
            r#"invalid URL: invalid character ' ' in the host of "http://ex ample.ü/""#
        );
    }

    #[test]
    fn errors_quote_a_long_url_shortened_on_one_line() {
        let long = format!("http://h:x/{}\u{1}", "a".repeat(5000));
        let message = err(&long);
        assert!(message.len() < 300, "{message}");
        assert!(message.contains(r#"in "http://h:x/aaaa"#) && message.ends_with("..."), "{message}");
        assert!(!err("http://h:x/\u{1}").contains('\u{1}'));
    }

    #[test]
    fn errors_never_show_the_password() {
        for url in [
            "http://user:secretpw@host:80a/",
            "http://user:secretpw@/",
            "http://user:secretpw@exa mple/",
            "http://user:secretpw@bü cher.example/",
            "http://user:secretpw@[::g]/",
            "http://user:secret/pw@host/",
            "http://user:secret?pw@host/",
            "http://user:secret#pw@host:x/",
            "http://user:secretpw@1.2.3.999/",
        ] {
            let message = err(url);
            assert!(!message.contains("secret") && !message.contains("pw"), "{url}: {message}");
            assert!(message.contains("user:***@") || message.contains("user:***"), "{url}: {message}");
        }
    }

    #[test]
    fn redact_str_hides_only_the_password() {
        assert_eq!(redact_str("http://u:pw@h/x"), "http://u:***@h/x");
        assert_eq!(redact_str("http://u@h/x"), "http://u@h/x");
        assert_eq!(redact_str("http://h/a@c?x=y"), "http://h/a@c?x=y");
        assert_eq!(redact_str("u:pw@h"), "u:***@h");
        assert_eq!(redact_str("http://u:p/w?x#y@h/"), "http://u:***@h/");
        // Conservative: more than the password may go.
        assert_eq!(redact_str("http://h:8080/x?to=a@b"), "http://h:***@b");
    }

    #[test]
    fn redacted_uri() {
        let show = |s: &str| Redacted(&s.parse::<Uri>().unwrap()).to_string();
        assert_eq!(show("http://user:p%40ss@h:81/p?q=a:b@c"), "http://user:***@h:81/p?q=a:b@c");
        assert_eq!(show("http://user@h/"), "http://user@h/");
        assert_eq!(show("http://h/p"), "http://h/p");
        assert_eq!(show("u:pw@h:80"), "u:***@h:80");
        assert_eq!(show("/p"), "/p");
        assert_eq!(format!("{:?}", Redacted(&"http://u:pw@h/".parse().unwrap())), r#""http://u:***@h/""#);
    }

    #[test]
    fn split_userinfo_decodes_and_removes_it() {
        let url = parse("http://user:p%40ss@h:8080/x?y").unwrap();
        let (bare, credentials) = split_userinfo(&url).unwrap();
        assert_eq!(bare.to_string(), "http://h:8080/x?y");
        let credentials = credentials.unwrap();
        assert_eq!(credentials.user, b"user");
        assert_eq!(credentials.password.as_deref(), Some(&b"p@ss"[..]));
        assert!(!format!("{credentials:?}").contains("p@ss"));

        let (bare, credentials) = split_userinfo(&"http://us%20er@h/".parse().unwrap()).unwrap();
        assert_eq!((bare.to_string().as_str(), credentials.unwrap().password), ("http://h/", None));
        let (_, credentials) = split_userinfo(&"http://:pw@h/".parse().unwrap()).unwrap();
        assert_eq!(credentials.unwrap().user, b"");
        let (bare, credentials) = split_userinfo(&"http://@h/".parse().unwrap()).unwrap();
        assert_eq!((bare.to_string().as_str(), credentials), ("http://h/", None));
        let plain: Uri = "http://h/".parse().unwrap();
        assert_eq!(split_userinfo(&plain).unwrap(), (plain.clone(), None));
        assert_eq!(without_userinfo(&"http://u:pw@h/x".parse().unwrap()).unwrap().to_string(), "http://h/x");
    }

    #[test]
    fn basic_auth_value_is_rfc7617_and_sensitive() {
        let credentials = Credentials { user: b"Aladdin".to_vec(), password: Some(b"open sesame".to_vec()) };
        let value = credentials.basic_auth();
        assert_eq!(value, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("QWxh"));
        let user_only = Credentials { user: b"u".to_vec(), password: None };
        assert_eq!(user_only.basic_auth(), "Basic dTo=");
    }

    proptest! {
        /// Whatever the path text (no `?`, `#`, `%` or dot segments to
        /// change it), the parsed path is ASCII of the RFC 3986 path
        /// characters and decodes back to the text.
        #[test]
        fn path_round_trips_through_encoding(text in "[^?#%./\t\r\n]{0,40}") {
            let trimmed_text = text.trim_end_matches(|c: char| c <= ' ');
            let uri = parse(&format!("http://h/{text}")).unwrap();
            let path = uri.path();
            prop_assert!(path.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%[]".contains(&b)), "{}", path);
            let decoded = percent_decode_str(&path[1..]).decode_utf8().unwrap();
            prop_assert_eq!(decoded, trimmed_text);
        }

        /// Any text gives a URL or a URL error, never a panic, and a URL
        /// has an http(s) scheme and a host.
        #[test]
        fn any_text_parses_or_fails_cleanly(text in "\\PC{0,60}", prefix in prop::sample::select(vec!["", "http://", "https://u:p@", "http://[", "http://h:"])) {
            match parse(&format!("{prefix}{text}")) {
                Ok(uri) => {
                    prop_assert!(matches!(uri.scheme_str(), Some("http" | "https")));
                    prop_assert!(uri.host().is_some_and(|h| !h.is_empty()));
                }
                Err(e) => prop_assert_eq!(e.kind(), ErrorKind::Url),
            }
        }
    }
}
