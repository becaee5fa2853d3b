//! Proxies: which requests go through which proxy, and which do not.
//!
//! A [`Proxy`] says which requests it takes (`http://` ones, `https://`
//! ones, or all), where it is (`http://`, `https://`, `socks5://` or
//! `socks5h://`), the credentials it wants, and an optional [`NoProxy`]
//! list of destinations that bypass it. The client tries its proxies in
//! the order they were added; the first that takes a request wins.
//!
//! By default a client reads the environment once, when it is built, as
//! curl does: `http_proxy`, `https_proxy`, `all_proxy` and `no_proxy`,
//! lowercase first, then the uppercase forms, except `HTTP_PROXY` when
//! `REQUEST_METHOD` is set (a CGI program, where any client can set the
//! `Proxy:` request header that becomes `HTTP_PROXY`: httpoxy,
//! CVE-2016-5385).

use std::fmt;
use std::net::IpAddr;

use http::HeaderValue;
use percent_encoding::percent_decode_str;

/// Which requests a [`Proxy`] takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Intercept {
    Http,
    Https,
    All,
}

/// How the client talks to a proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ProxyScheme {
    /// An HTTP proxy over TCP: absolute-form requests for `http://`,
    /// `CONNECT` tunnels for `https://`.
    Http,
    /// An HTTP proxy reached over TLS.
    Https,
    /// SOCKS5, names resolved by the client (RFC 1928).
    Socks5,
    /// SOCKS5, names resolved by the proxy.
    Socks5h,
}

/// A user name and password for a proxy (Basic for HTTP proxies, RFC 1929
/// for SOCKS5). Never printed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Credentials {
    pub(crate) user: String,
    pub(crate) password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials([redacted])")
    }
}

/// Where a proxy is and how to log in to it: part of the pool key, so two
/// connections through different proxies, or through one proxy with
/// different credentials, are never taken for one another.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ProxyAddr {
    pub(crate) scheme: ProxyScheme,
    /// Host name or IP literal (IPv6 without brackets).
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) credentials: Option<Credentials>,
    /// `Basic` + the credentials, for an HTTP proxy; marked sensitive.
    pub(crate) authorization: Option<HeaderValue>,
}

impl ProxyAddr {
    fn set_credentials(&mut self, credentials: Option<Credentials>) {
        self.authorization = credentials.as_ref().map(|c| basic_authorization(&c.user, &c.password));
        self.credentials = credentials;
    }

    /// The proxy's URL without credentials, for errors.
    pub(crate) fn url(&self) -> Option<http::Uri> {
        self.to_string().parse().ok()
    }

    /// Whether requests for `http://` URLs go to this proxy in absolute
    /// form (an HTTP proxy) rather than through a tunnel (SOCKS).
    pub(crate) fn forwards_http(&self) -> bool {
        matches!(self.scheme, ProxyScheme::Http | ProxyScheme::Https)
    }
}

/// The value of a `Basic` authorization header (RFC 7617), sensitive.
pub(crate) fn basic_authorization(user: &str, password: &str) -> HeaderValue {
    crate::request::basic_value(user.as_bytes(), password.as_bytes())
}

impl fmt::Display for ProxyAddr {
    /// The proxy URL without its credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            ProxyScheme::Http => "http",
            ProxyScheme::Https => "https",
            ProxyScheme::Socks5 => "socks5",
            ProxyScheme::Socks5h => "socks5h",
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Why a proxy URL or a proxy setting is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InvalidProxy(pub(crate) &'static str);

/// A proxy for some or all requests.
///
/// ```
/// use smolreq::{NoProxy, Proxy};
///
/// let proxy = Proxy::all("http://user:secret@proxy.internal:3128")?
///     .no_proxy(NoProxy::from_string("localhost, .corp.example, 10.0.0.0/8"));
/// // The password is never printed.
/// assert!(!format!("{proxy:?}").contains("secret"));
/// # Ok::<(), smolreq::Error>(())
/// ```
#[derive(Clone)]
pub struct Proxy {
    intercept: Intercept,
    addr: ProxyAddr,
    no_proxy: Option<NoProxy>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("intercept", &self.intercept)
            .field("url", &format_args!("{}", self.addr))
            .field("credentials", &self.addr.credentials.is_some())
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

impl Proxy {
    /// A proxy for `http://` requests only.
    ///
    /// The URL's scheme is `http://` (the default when there is none, as
    /// curl assumes), `https://`, `socks5://` or `socks5h://`; its port
    /// defaults to 1080 for SOCKS and to 80 or 443 otherwise (curl uses
    /// 1080 for an HTTP proxy without a port; a port is best given).
    /// Credentials in the URL (`http://user:p%40ss@host:3128`) are
    /// percent-decoded.
    pub fn http(url: impl AsRef<str>) -> crate::Result<Proxy> {
        Proxy::new(Intercept::Http, url.as_ref())
    }

    /// A proxy for `https://` requests only (reached with `CONNECT` for an
    /// HTTP proxy).
    pub fn https(url: impl AsRef<str>) -> crate::Result<Proxy> {
        Proxy::new(Intercept::Https, url.as_ref())
    }

    /// A proxy for every request.
    pub fn all(url: impl AsRef<str>) -> crate::Result<Proxy> {
        Proxy::new(Intercept::All, url.as_ref())
    }

    fn new(intercept: Intercept, url: &str) -> crate::Result<Proxy> {
        let addr = parse_proxy_url(url).map_err(|e| crate::Error::new(crate::ErrorKind::Builder, e.0))?;
        Ok(Proxy { intercept, addr, no_proxy: None })
    }

    /// Sets the user name and password, replacing any in the URL.
    pub fn basic_auth(mut self, user: &str, password: &str) -> Proxy {
        self.addr.set_credentials(Some(Credentials { user: user.to_owned(), password: password.to_owned() }));
        self
    }

    /// Destinations that bypass this proxy.
    pub fn no_proxy(mut self, no_proxy: NoProxy) -> Proxy {
        self.no_proxy = Some(no_proxy);
        self
    }

    /// The proxy to use for a request to `scheme://host:port`, if this one
    /// takes it. `host` is as in the URL (IPv6 in brackets or not).
    pub(crate) fn intercept(&self, https: bool, host: &str, port: u16) -> Option<&ProxyAddr> {
        let takes = match self.intercept {
            Intercept::All => true,
            Intercept::Http => !https,
            Intercept::Https => https,
        };
        let bypass = self.no_proxy.as_ref().is_some_and(|n| n.matches(host, port));
        (takes && !bypass).then_some(&self.addr)
    }

    /// The proxies the environment asks for, in the order they apply: what
    /// a client uses when no proxy is set (see
    /// [`ClientBuilder::no_proxy`](crate::ClientBuilder::no_proxy) for the
    /// rules). For a program that adjusts them, such as one replacing the
    /// `no_proxy` list with its own:
    ///
    /// ```
    /// use smolreq::{Client, NoProxy, Proxy};
    ///
    /// let mut builder = Client::builder().no_proxy();
    /// for proxy in Proxy::from_env() {
    ///     builder = builder.proxy(proxy.no_proxy(NoProxy::from_string("internal.example")));
    /// }
    /// let client = builder.build()?;
    /// # Ok::<(), smolreq::Error>(())
    /// ```
    pub fn from_env() -> Vec<Proxy> {
        Proxy::from_env_with(|name| std::env::var(name).ok())
    }

    /// The proxies the environment asks for, read through `var` (so tests
    /// need not touch the process environment), in the order they apply.
    pub(crate) fn from_env_with(var: impl Fn(&str) -> Option<String>) -> Vec<Proxy> {
        let get = |lower: &str, upper: &str| {
            let value = |name: &str| var(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
            value(lower).or_else(|| value(upper))
        };
        let cgi = var("REQUEST_METHOD").is_some();
        let http =
            if cgi { var("http_proxy").filter(|v| !v.trim().is_empty()) } else { get("http_proxy", "HTTP_PROXY") };
        let https = get("https_proxy", "HTTPS_PROXY");
        let all = get("all_proxy", "ALL_PROXY");
        let no_proxy = get("no_proxy", "NO_PROXY").map(|v| NoProxy::from_string(&v));
        // A value that is not a usable proxy URL is ignored, as curl
        // ignores it (the request then goes direct or to the next rule).
        let mut proxies = Vec::new();
        for (intercept, url) in [(Intercept::Http, http), (Intercept::Https, https), (Intercept::All, all)] {
            if let Some(addr) = url.and_then(|u| parse_proxy_url(&u).ok()) {
                proxies.push(Proxy { intercept, addr, no_proxy: no_proxy.clone() });
            }
        }
        proxies
    }
}

/// The proxy for a request to `host:port` (`https` for an `https://`
/// URL): the first of `proxies` that takes it.
#[cfg(feature = "proxy")]
pub(crate) fn choose<'p>(proxies: &'p [Proxy], https: bool, host: &str, port: u16) -> Option<&'p ProxyAddr> {
    proxies.iter().find_map(|p| p.intercept(https, host, port))
}

/// Without the `proxy` feature every request goes direct.
#[cfg(not(feature = "proxy"))]
pub(crate) fn choose<'p>(_: &'p [Proxy], _: bool, _: &str, _: u16) -> Option<&'p ProxyAddr> {
    None
}

/// Parses a proxy URL: `[scheme://][user[:password]@]host[:port][/]`.
pub(crate) fn parse_proxy_url(url: &str) -> Result<ProxyAddr, InvalidProxy> {
    let url = url.trim();
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => {
            let scheme = match scheme.to_ascii_lowercase().as_str() {
                "http" => ProxyScheme::Http,
                "https" => ProxyScheme::Https,
                "socks5" => ProxyScheme::Socks5,
                "socks5h" => ProxyScheme::Socks5h,
                "socks4" | "socks4a" => {
                    return Err(InvalidProxy("SOCKS4 proxies are not supported (use socks5:// or socks5h://)"));
                }
                _ => {
                    return Err(InvalidProxy(
                        "unsupported proxy scheme (use http://, https://, socks5:// or socks5h://)",
                    ));
                }
            };
            (scheme, rest)
        }
        None => (ProxyScheme::Http, url),
    };
    // Only an optional trailing slash may follow the authority.
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#']) {
        return Err(InvalidProxy("a proxy URL has no path, query or fragment"));
    }
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => (Some(userinfo), hostport),
        None => (None, authority),
    };
    let credentials = match userinfo {
        None => None,
        Some(userinfo) => {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let decode = |s: &str| {
                percent_decode_str(s)
                    .decode_utf8()
                    .map(|s| s.into_owned())
                    .map_err(|_| InvalidProxy("proxy credentials are not valid UTF-8 after percent-decoding"))
            };
            Some(Credentials { user: decode(user)?, password: decode(password)? })
        }
    };
    let (host, port) = split_host_port(hostport).ok_or(InvalidProxy("invalid proxy host or port"))?;
    if host.is_empty() {
        return Err(InvalidProxy("proxy URL has no host"));
    }
    if !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b)) {
        return Err(InvalidProxy("invalid character in the proxy host"));
    }
    let port = match port {
        Some(0) => return Err(InvalidProxy("proxy port 0 is not a valid destination")),
        Some(port) => port,
        None => match scheme {
            ProxyScheme::Http => 80,
            ProxyScheme::Https => 443,
            ProxyScheme::Socks5 | ProxyScheme::Socks5h => 1080,
        },
    };
    let mut addr = ProxyAddr { scheme, host: host.to_ascii_lowercase(), port, credentials: None, authorization: None };
    addr.set_credentials(credentials);
    Ok(addr)
}

/// Splits `host[:port]` or `[v6][:port]`; `None` when the port is not a
/// number in 0-65535 or the brackets do not close. The host comes back
/// without brackets.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match s.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    Some((host, port))
}

/// Destinations that go direct, not through a proxy: curl's `NO_PROXY`
/// rules.
///
/// Entries are separated by commas (or spaces) and matched without a DNS
/// lookup, case-insensitively:
/// - `*` alone: every destination goes direct;
/// - a name, with or without a leading dot: `example.com` and
///   `.example.com` both match `example.com` and `a.example.com`, never
///   `badexample.com`;
/// - an IP address (`192.168.1.10`, `::1` or `[::1]`) or a CIDR range
///   (`10.0.0.0/8`, `fd00::/8`), matched against IP literals in URLs;
/// - any of these with a port (`example.com:8080`, `[::1]:8080`): only
///   that port bypasses the proxy.
///
/// Loopback is not special: `localhost` and `127.0.0.1` go through the
/// proxy unless listed, as with curl (Go's `httpproxy` always bypasses
/// them; curl's rule is the one users of `no_proxy` expect on the command
/// line, and it lets a test proxy on loopback be used).
///
/// ```
/// use smolreq::NoProxy;
///
/// let no_proxy = NoProxy::from_string(".corp.example, 10.0.0.0/8, [::1]:8080");
/// # let _ = no_proxy;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoProxy {
    entries: Vec<Entry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    Any,
    /// A domain, lowercase, without a leading or trailing dot.
    Domain(String),
    /// An address and the number of leading bits that must match.
    Net(IpAddr, u8),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    pattern: Pattern,
    port: Option<u16>,
}

impl NoProxy {
    /// Parses a `NO_PROXY` value. Entries that are none of the forms above
    /// are ignored (as curl ignores them), so a typo never sends every
    /// request direct or breaks the client.
    pub fn from_string(list: &str) -> NoProxy {
        let entries = list.split([',', ' ', '\t', '\n']).filter_map(|e| parse_entry(e.trim())).collect();
        NoProxy { entries }
    }

    /// Whether a request to `host:port` goes direct. `host` is as in a URL.
    pub(crate) fn matches(&self, host: &str, port: u16) -> bool {
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let host = host.strip_suffix('.').unwrap_or(host);
        let ip = host.parse::<IpAddr>().ok();
        self.entries.iter().any(|entry| {
            entry.port.is_none_or(|p| p == port)
                && match &entry.pattern {
                    Pattern::Any => true,
                    Pattern::Domain(domain) => {
                        ip.is_none()
                            && host.len() >= domain.len()
                            && host[host.len() - domain.len()..].eq_ignore_ascii_case(domain)
                            && (host.len() == domain.len() || host.as_bytes()[host.len() - domain.len() - 1] == b'.')
                    }
                    Pattern::Net(net, bits) => ip.is_some_and(|ip| in_net(ip, *net, *bits)),
                }
        })
    }
}

fn parse_entry(entry: &str) -> Option<Entry> {
    if entry.is_empty() {
        return None;
    }
    if entry == "*" {
        return Some(Entry { pattern: Pattern::Any, port: None });
    }
    // CIDR: the prefix length follows a slash; an IPv6 range may be bracketed.
    if let Some((addr, bits)) = entry.split_once('/') {
        let addr = addr.strip_prefix('[').and_then(|a| a.strip_suffix(']')).unwrap_or(addr);
        let ip: IpAddr = addr.parse().ok()?;
        let bits: u8 = bits.parse().ok()?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        return (bits <= max).then_some(Entry { pattern: Pattern::Net(ip, bits), port: None });
    }
    // A bare IPv6 address has colons but no port.
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(Entry { pattern: Pattern::Net(ip, if ip.is_ipv4() { 32 } else { 128 }), port: None });
    }
    let (host, port) = split_host_port(entry)?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(Entry { pattern: Pattern::Net(ip, if ip.is_ipv4() { 32 } else { 128 }), port });
    }
    let domain = host.trim_start_matches("*.").trim_start_matches('.').trim_end_matches('.');
    let valid = !domain.is_empty() && domain.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    valid.then(|| Entry { pattern: Pattern::Domain(domain.to_ascii_lowercase()), port })
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) matches IPv4 ranges.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => prefix_eq(&ip.octets(), &net.octets(), bits),
        (IpAddr::V6(ip), IpAddr::V6(net)) => prefix_eq(&ip.octets(), &net.octets(), bits),
        _ => false,
    }
}

/// Whether the first `bits` bits of `a` and `b` are equal.
fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    let rest = bits % 8;
    a[..full] == b[..full] && (rest == 0 || (a[full] ^ b[full]) >> (8 - rest) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(url: &str) -> ProxyAddr {
        parse_proxy_url(url).unwrap_or_else(|e| panic!("{url}: {e:?}"))
    }

    #[test]
    fn proxy_urls_parse_with_defaults() {
        let a = addr("proxy.example:3128");
        assert_eq!(
            (a.scheme, a.host.as_str(), a.port, a.credentials),
            (ProxyScheme::Http, "proxy.example", 3128, None)
        );
        assert_eq!(addr("http://Proxy.Example").port, 80);
        assert_eq!(addr("https://proxy.example/").port, 443);
        assert_eq!(addr("socks5://127.0.0.1").port, 1080);
        assert_eq!(addr("SOCKS5H://[::1]:9050").scheme, ProxyScheme::Socks5h);
        assert_eq!(addr("socks5h://[::1]:9050").host, "::1");
        assert_eq!(addr("http://[::1]:8080").to_string(), "http://[::1]:8080");
        assert_eq!(addr("http://Proxy.Example:1").to_string(), "http://proxy.example:1");
    }

    #[test]
    fn proxy_credentials_are_percent_decoded() {
        let a = addr("http://us%65r:p%40ss:word@proxy:3128");
        let c = a.credentials.unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("user", "p@ss:word"));
        let c = addr("http://user@proxy:1").credentials.unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("user", ""));
        // The last @ separates the userinfo (an unencoded @ in a password).
        let a = addr("http://u:a@b@proxy:1");
        assert_eq!((a.host.as_str(), a.credentials.unwrap().password.as_str()), ("proxy", "a@b"));
    }

    #[test]
    fn bad_proxy_urls_are_refused_with_a_reason() {
        for (url, why) in [
            ("ftp://proxy:1", "unsupported proxy scheme"),
            ("socks4://proxy:1", "SOCKS4"),
            ("http://proxy:0", "port 0"),
            ("http://proxy:99999", "invalid proxy host or port"),
            ("http://proxy:12a", "invalid proxy host or port"),
            ("http://proxy:", "invalid proxy host or port"),
            ("http://:8080", "no host"),
            ("http://", "no host"),
            ("http://proxy:1/path", "no path"),
            ("http://proxy:1?q", "no path"),
            ("http://[::1:8080", "invalid proxy host or port"),
            ("http://pro xy:1", "invalid character"),
            ("http://u:%FF@proxy:1", "UTF-8"),
        ] {
            match parse_proxy_url(url) {
                Err(InvalidProxy(msg)) => assert!(msg.contains(why), "{url}: {msg}"),
                Ok(a) => panic!("{url} accepted: {a:?}"),
            }
        }
    }

    #[test]
    fn debug_and_display_never_show_the_password() {
        let proxy = Proxy::all("http://user:hunter2@proxy:3128").unwrap();
        let text = format!("{proxy:?} {}", proxy.addr);
        assert!(!text.contains("hunter2") && !text.contains("user"), "{text}");
        let proxy = proxy.basic_auth("alice", "s3cret");
        assert!(!format!("{proxy:?}").contains("s3cret"));
        assert_eq!(proxy.addr.credentials.as_ref().unwrap().password, "s3cret");
    }

    #[test]
    fn intercept_follows_the_scheme() {
        let http = Proxy::http("proxy:1").unwrap();
        let https = Proxy::https("proxy:1").unwrap();
        let all = Proxy::all("proxy:1").unwrap();
        assert!(http.intercept(false, "h", 80).is_some() && http.intercept(true, "h", 443).is_none());
        assert!(https.intercept(false, "h", 80).is_none() && https.intercept(true, "h", 443).is_some());
        assert!(all.intercept(false, "h", 80).is_some() && all.intercept(true, "h", 443).is_some());
        let bypass = all.no_proxy(NoProxy::from_string("h"));
        assert!(bypass.intercept(false, "h", 80).is_none() && bypass.intercept(false, "g", 80).is_some());
    }

    fn np(list: &str, host: &str, port: u16) -> bool {
        NoProxy::from_string(list).matches(host, port)
    }

    #[test]
    fn no_proxy_domains_match_the_name_and_its_subdomains() {
        for list in ["example.com", ".example.com", "*.example.com", "EXAMPLE.com."] {
            assert!(np(list, "example.com", 80), "{list}");
            assert!(np(list, "a.example.com", 80), "{list}");
            assert!(np(list, "A.B.Example.COM", 80), "{list}");
            assert!(np(list, "a.example.com.", 80), "{list}");
            assert!(!np(list, "badexample.com", 80), "{list}");
            assert!(!np(list, "example.com.evil", 80), "{list}");
            assert!(!np(list, "com", 80), "{list}");
        }
        assert!(!np("example.com", "93.184.216.34", 80), "a name never matches an IP literal");
    }

    #[test]
    fn no_proxy_star_matches_everything_only_alone() {
        assert!(np("*", "anything", 1) && np("*", "10.1.2.3", 1) && np("*", "[::1]", 1));
        assert!(np("other, *", "anything", 1));
        assert!(!np("*.", "anything", 1));
        assert!(!np("", "anything", 1));
    }

    #[test]
    fn no_proxy_ips_and_cidr_ranges() {
        assert!(np("10.0.0.0/8", "10.200.3.4", 80));
        assert!(!np("10.0.0.0/8", "11.0.0.1", 80));
        assert!(np("192.168.1.0/25", "192.168.1.127", 80));
        assert!(!np("192.168.1.0/25", "192.168.1.128", 80));
        assert!(np("0.0.0.0/0", "8.8.8.8", 80));
        assert!(!np("0.0.0.0/0", "[::1]", 80));
        assert!(np("127.0.0.1", "127.0.0.1", 80));
        assert!(!np("127.0.0.1", "127.0.0.2", 80));
        assert!(np("::1", "[::1]", 80));
        assert!(np("[::1]", "[::1]", 80));
        assert!(np("fd00::/8", "[fd12::1]", 80));
        assert!(!np("fd00::/8", "[fe80::1]", 80));
        assert!(np("[fd00::]/8", "[fd12::1]", 80));
        assert!(np("10.0.0.0/8", "[::ffff:10.1.1.1]", 80), "IPv4-mapped IPv6");
        assert!(!np("10.0.0.0/33", "10.0.0.1", 80), "a prefix longer than the address is ignored");
        assert!(!np("10.0.0.1", "ten.example", 80));
    }

    #[test]
    fn no_proxy_with_a_port_matches_only_that_port() {
        assert!(np("example.com:8080", "example.com", 8080));
        assert!(!np("example.com:8080", "example.com", 80));
        assert!(np("[::1]:8080", "[::1]", 8080));
        assert!(!np("[::1]:8080", "[::1]", 8081));
        assert!(np("127.0.0.1:3000", "127.0.0.1", 3000));
        assert!(!np("127.0.0.1:3000", "127.0.0.1", 3001));
    }

    #[test]
    fn loopback_is_not_special() {
        assert!(!np("", "localhost", 80));
        assert!(!np("example.com", "127.0.0.1", 80));
        assert!(np("localhost", "localhost", 80));
    }

    #[test]
    fn no_proxy_separators_and_junk() {
        let list = " a.example ,b.example\tc.example  ,, bad/entry, 1.2.3.4/xx, ";
        assert!(np(list, "a.example", 1) && np(list, "b.example", 1) && np(list, "c.example", 1));
        assert!(!np(list, "entry", 1) && !np(list, "1.2.3.4", 1));
        assert_eq!(NoProxy::from_string(list).entries.len(), 3);
    }

    fn env(vars: &[(&str, &str)]) -> Vec<(Intercept, String)> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Proxy::from_env_with(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
            .into_iter()
            .map(|p| (p.intercept, p.addr.to_string()))
            .collect()
    }

    #[test]
    fn environment_lowercase_wins_then_uppercase() {
        assert_eq!(env(&[("http_proxy", "a:1"), ("HTTP_PROXY", "b:1")]), [(Intercept::Http, "http://a:1".into())]);
        assert_eq!(env(&[("HTTP_PROXY", "b:1")]), [(Intercept::Http, "http://b:1".into())]);
        assert_eq!(env(&[("HTTPS_PROXY", "c:1")]), [(Intercept::Https, "http://c:1".into())]);
        assert_eq!(env(&[("ALL_PROXY", "socks5h://d:1")]), [(Intercept::All, "socks5h://d:1".into())]);
        assert_eq!(env(&[("http_proxy", ""), ("HTTP_PROXY", "b:1")]), [(Intercept::Http, "http://b:1".into())]);
        assert_eq!(env(&[]), []);
        // Order: the scheme's own variable before all_proxy.
        assert_eq!(
            env(&[("all_proxy", "z:1"), ("https_proxy", "s:1"), ("http_proxy", "h:1")]),
            [
                (Intercept::Http, "http://h:1".into()),
                (Intercept::Https, "http://s:1".into()),
                (Intercept::All, "http://z:1".into())
            ]
        );
    }

    #[test]
    fn httpoxy_uppercase_http_proxy_is_ignored_in_cgi() {
        assert_eq!(env(&[("REQUEST_METHOD", "GET"), ("HTTP_PROXY", "evil:1")]), []);
        assert_eq!(
            env(&[("REQUEST_METHOD", "GET"), ("HTTP_PROXY", "evil:1"), ("http_proxy", "ok:1")]),
            [(Intercept::Http, "http://ok:1".into())]
        );
        // Other variables are not settable by a CGI client.
        assert_eq!(
            env(&[("REQUEST_METHOD", "GET"), ("HTTPS_PROXY", "s:1")]),
            [(Intercept::Https, "http://s:1".into())]
        );
    }

    #[test]
    fn environment_no_proxy_applies_and_junk_proxy_is_ignored() {
        let vars = [("http_proxy", "p:1"), ("no_proxy", ".internal"), ("https_proxy", "ftp://x")];
        let proxies = Proxy::from_env_with(|n| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string()));
        assert_eq!(proxies.len(), 1, "{proxies:?}");
        assert!(proxies[0].intercept(false, "a.internal", 80).is_none());
        assert!(proxies[0].intercept(false, "a.external", 80).is_some());
    }

    #[test]
    fn basic_authorization_is_rfc_7617_base64_and_sensitive() {
        // RFC 7617 section 2's example, and RFC 4648 section 10's vectors.
        assert_eq!(basic_authorization("Aladdin", "open sesame"), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(basic_authorization("a", "b").is_sensitive());
        for (user, b64) in [("", "Og=="), ("f", "Zjo="), ("fo", "Zm86"), ("foo", "Zm9vOg=="), ("foob", "Zm9vYjo=")] {
            assert_eq!(basic_authorization(user, ""), format!("Basic {b64}").as_str(), "{user}");
        }
        assert_eq!(basic_authorization("fooba", "r"), "Basic Zm9vYmE6cg==");
        assert_eq!(basic_authorization("\u{e9}", "\u{ff}"), "Basic w6k6w78=");
        let a = addr("http://u:p@proxy:1");
        assert_eq!(a.authorization.unwrap(), "Basic dTpw");
    }

    #[test]
    fn prefix_eq_counts_bits() {
        assert!(prefix_eq(&[0b1010_0000], &[0b1011_1111], 3));
        assert!(!prefix_eq(&[0b1010_0000], &[0b1011_1111], 4));
        assert!(prefix_eq(&[1, 2, 3, 4], &[1, 2, 3, 5], 24));
        assert!(!prefix_eq(&[1, 2, 3, 4], &[1, 2, 3, 5], 32));
        assert!(prefix_eq(&[1, 2, 3, 4], &[9, 9, 9, 9], 0));
    }
}
