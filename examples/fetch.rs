//! A curl-like command line over smolreq.
//!
//! ```text
//! fetch [OPTIONS] URL
//! ```
//!
//! Every flag is curl's, with curl's meaning and curl's exit codes, for what
//! the library can do; `fetch --help` lists them. Short flags bundle as in
//! curl (`-fsSL`, `-XPUT`, `-ofile`). A URL without `scheme://` is taken as
//! `http://`. Two flags are fetch's own: `-n COUNT` (sends the request
//! COUNT times on one client, so connections are reused; curl's `-n` is
//! `--netrc`, which fetch does not have) and `--timeout SECS` (the same as
//! `-m`). `CURL_CA_BUNDLE` is honoured as curl does, when `--cacert` is
//! not given.
//!
//! Exit codes (curl's): 0 success, 1 unsupported or refused protocol,
//! 2 bad command line, 3 malformed URL, 7 connection failed, 8 unparsable
//! response, 18 body cut short, 22 HTTP status >= 400 with `-f`,
//! 23 writing output failed, 26 reading a data or upload file failed,
//! 28 timeout, 35 TLS failure, 47 too many redirects, 52 empty reply,
//! 56 receive failure, 58 bad client certificate, 60 untrusted server
//! certificate, 77 unreadable CA file.
//!
//! Not there yet, for want of library support: `-u`, `-x` and the proxy
//! variables (`http_proxy`, ...), `--compressed`, `--resolve`, the heads of
//! intermediate redirect responses in `-i`/`-v`, and the `-w` variables
//! that need the library's timings or counts (`num_redirects`,
//! `time_connect`, `remote_ip`, ...).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures_lite::AsyncReadExt;
use smolreq::{Client, ErrorKind, HeaderName, HeaderValue, Method, Uri, Version};

/// The User-Agent sent unless `-A` or `-H` says otherwise. Set explicitly
/// (it is the library's default too) so that `-v` can show it.
const DEFAULT_USER_AGENT: &str = concat!("smolreq/", env!("CARGO_PKG_VERSION"));

/// Bodies larger than this get `Expect: 100-continue`, as curl does.
const EXPECT_THRESHOLD: u64 = 1024 * 1024;

/// The flags: short letter (or none), long name, the value it takes (none
/// for a switch), and its help line.
const FLAGS: &[(Option<char>, &str, Option<&str>, &str)] = &[
    (Some('A'), "user-agent", Some("NAME"), "User-Agent to send (default smolreq/VERSION)"),
    (None, "cacert", Some("FILE"), "trust only the PEM certificates in FILE (else $CURL_CA_BUNDLE, else the system's)"),
    (Some('E'), "cert", Some("FILE[:PASSWORD]"), "client certificate: PEM chain (and key), or PKCS#12"),
    (None, "cert-type", Some("TYPE"), "type of --cert: PEM (default) or P12 (default for .p12/.pfx)"),
    (None, "connect-timeout", Some("SECS"), "deadline for connecting, TLS handshake included"),
    (
        Some('d'),
        "data",
        Some("DATA"),
        "POST DATA (form content type); @FILE reads FILE without CR/LF; repeats join with &",
    ),
    (None, "data-binary", Some("DATA"), "like -d, but @FILE is sent as it is"),
    (None, "data-raw", Some("DATA"), "like -d, but @ is not special"),
    (
        None,
        "data-urlencode",
        Some("DATA"),
        "like -d, percent-encoded: CONTENT, =CONTENT, NAME=CONTENT, @FILE, NAME@FILE",
    ),
    (Some('D'), "dump-header", Some("FILE"), "write the response head to FILE (- for stdout)"),
    (Some('e'), "referer", Some("URL"), "Referer to send"),
    (None, "expect100-timeout", Some("SECS"), "how long to wait for 100 Continue before sending the body (default 1)"),
    (Some('f'), "fail", None, "on a status >= 400, print nothing and exit 22"),
    (None, "fail-with-body", None, "on a status >= 400, print the body and exit 22"),
    (Some('G'), "get", None, "send the -d data in the URL's query, with GET"),
    (
        Some('H'),
        "header",
        Some("HEADER"),
        "'Name: value' adds, 'Name:' removes fetch's own, 'Name;' sends empty, @FILE reads lines",
    ),
    (Some('h'), "help", None, "this help"),
    (Some('I'), "head", None, "send HEAD and print the response head"),
    (Some('i'), "include", None, "print the response head before the body"),
    (Some('k'), "insecure", None, "accept any server certificate"),
    (None, "key", Some("FILE"), "PEM PKCS#8 private key of --cert, when not in its file"),
    (Some('L'), "location", None, "follow redirects"),
    (None, "max-redirs", Some("NUM"), "most redirects -L follows (default 50, -1 unlimited); more is exit 47"),
    (Some('m'), "max-time", Some("SECS"), "deadline for the whole transfer (0: none)"),
    (Some('n'), "count", Some("COUNT"), "fetch's own: send the request COUNT times on one client"),
    (Some('o'), "output", Some("FILE"), "write the body to FILE"),
    (Some('O'), "remote-name", None, "write the body to a file named as the URL's last path segment"),
    (None, "pass", Some("PASSWORD"), "password of a PKCS#12 --cert"),
    (None, "proto", Some("PROTOCOLS"), "allowed protocols, as curl: =https, -http, all, ..."),
    (Some('x'), "proxy", Some("URL"), "use this proxy (http://, https://, socks5://, socks5h://; \"\" for none)"),
    (None, "noproxy", Some("LIST"), "hosts that bypass the proxy (replaces $no_proxy; * for all)"),
    (Some('U'), "proxy-user", Some("USER:PASSWORD"), "credentials for the proxy"),
    (Some('u'), "user", Some("USER[:PASSWORD]"), "Basic authentication for the server"),
    (Some('s'), "silent", None, "print no error messages"),
    (Some('S'), "show-error", None, "with -s, print error messages anyway"),
    (None, "timeout", Some("SECS"), "fetch's own name for -m"),
    (None, "tlsv1", None, "use TLS 1.0 or later"),
    (None, "tlsv1.0", None, "use TLS 1.0 or later"),
    (None, "tlsv1.1", None, "use TLS 1.1 or later"),
    (None, "tlsv1.2", None, "use TLS 1.2 or later"),
    (None, "tlsv1.3", None, "use TLS 1.3 or later"),
    (Some('T'), "upload-file", Some("FILE"), "PUT FILE, streamed with its length (- for stdin, chunked)"),
    (None, "url", Some("URL"), "the URL (the same as giving it alone)"),
    (Some('v'), "verbose", None, "print the request head (> ) and response head (< ) on stderr"),
    (Some('V'), "version", None, "print the version"),
    (
        Some('w'),
        "write-out",
        Some("FORMAT"),
        "print FORMAT after the transfer: %{http_code}, %{size_download}, ... (@FILE reads it)",
    ),
    (Some('X'), "request", Some("METHOD"), "method to send"),
];

/// A failure: curl's exit code and the message for stderr.
#[derive(Debug)]
struct Fail {
    code: u8,
    message: String,
}

fn fail(code: u8, message: impl Into<String>) -> Fail {
    Fail { code, message: message.into() }
}

fn usage(message: impl Into<String>) -> Fail {
    fail(2, message)
}

/// One `-d`-like argument, in the order given.
enum Data {
    Ascii(String),
    Binary(String),
    Raw(String),
    UrlEncode(String),
}

/// One `-H` argument.
enum HeaderArg {
    Add(HeaderName, HeaderValue),
    Remove(HeaderName),
}

#[derive(Clone, Copy, PartialEq)]
enum FailMode {
    Off,
    Fail,
    WithBody,
}

/// The command line, parsed.
struct Options {
    url: Option<String>,
    method: Option<String>,
    head: bool,
    get: bool,
    headers: Vec<HeaderArg>,
    user_agent: Option<String>,
    referer: Option<String>,
    data: Vec<Data>,
    upload: Option<String>,
    include: bool,
    verbose: bool,
    silent: bool,
    show_error: bool,
    fail: FailMode,
    output: Option<String>,
    remote_name: bool,
    dump_header: Option<String>,
    write_out: Option<String>,
    location: bool,
    max_redirs: Option<usize>,
    max_time: Option<Duration>,
    connect_timeout: Option<Duration>,
    expect100_timeout: Option<Duration>,
    count: u64,
    insecure: bool,
    cacert: Option<String>,
    cert: Option<String>,
    cert_type: Option<String>,
    key: Option<String>,
    pass: Option<String>,
    tls_min: Option<&'static str>,
    proto: Option<(bool, bool)>,
    proxy: Option<String>,
    noproxy: Option<String>,
    proxy_user: Option<String>,
    user: Option<String>,
    help: bool,
    version: bool,
}

impl Options {
    fn new() -> Options {
        Options {
            url: None,
            method: None,
            head: false,
            get: false,
            headers: Vec::new(),
            user_agent: None,
            referer: None,
            data: Vec::new(),
            upload: None,
            include: false,
            verbose: false,
            silent: false,
            show_error: false,
            fail: FailMode::Off,
            output: None,
            remote_name: false,
            dump_header: None,
            write_out: None,
            location: false,
            max_redirs: None,
            max_time: None,
            connect_timeout: None,
            expect100_timeout: None,
            count: 1,
            insecure: false,
            cacert: None,
            cert: None,
            cert_type: None,
            key: None,
            pass: None,
            tls_min: None,
            proto: None,
            proxy: None,
            noproxy: None,
            proxy_user: None,
            user: None,
            help: false,
            version: false,
        }
    }

    fn show_errors(&self) -> bool {
        !self.silent || self.show_error
    }
}

// ---------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------

fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, Fail> {
    let mut o = Options::new();
    let mut args = args.into_iter();
    let unknown =
        |name: &str| usage(format!("option {name}: is unknown\nfetch: try 'fetch --help' for more information"));
    let missing = |name: &str| usage(format!("option {name}: requires parameter"));
    while let Some(arg) = args.next() {
        if let Some(long) = arg.strip_prefix("--") {
            let &(_, name, value, _) = FLAGS.iter().find(|f| f.1 == long).ok_or_else(|| unknown(&arg))?;
            let value = match value {
                Some(_) => Some(args.next().ok_or_else(|| missing(&arg))?),
                None => None,
            };
            apply(&mut o, name, value)?;
        } else if arg.len() > 1 && arg.starts_with('-') {
            // Bundled letters: `-fsSL`; a letter taking a value takes the
            // rest of the argument, or the next one (`-XPUT`, `-X PUT`).
            for (i, c) in arg.char_indices().skip(1) {
                let &(_, name, value, _) =
                    FLAGS.iter().find(|f| f.0 == Some(c)).ok_or_else(|| unknown(&format!("-{c}")))?;
                if value.is_none() {
                    apply(&mut o, name, None)?;
                    continue;
                }
                let rest = &arg[i + c.len_utf8()..];
                let value =
                    if rest.is_empty() { args.next().ok_or_else(|| missing(&format!("-{c}")))? } else { rest.into() };
                apply(&mut o, name, Some(value))?;
                break;
            }
        } else {
            set_url(&mut o, arg)?;
        }
    }
    Ok(o)
}

fn set_url(o: &mut Options, url: String) -> Result<(), Fail> {
    if o.url.is_some() {
        return Err(usage("more than one URL; fetch takes one"));
    }
    o.url = Some(url);
    Ok(())
}

/// Applies flag `name` (its long name) with its value, if it takes one.
fn apply(o: &mut Options, name: &str, value: Option<String>) -> Result<(), Fail> {
    let v = value.unwrap_or_default();
    match name {
        "user-agent" => {
            if v.is_empty() {
                return Err(usage("-A '': smolreq always sends a User-Agent; it cannot be removed"));
            }
            header_value("-A", &v)?;
            o.user_agent = Some(v);
        }
        "cacert" => o.cacert = Some(v),
        "proxy" => o.proxy = Some(v),
        "noproxy" => o.noproxy = Some(v),
        "proxy-user" => o.proxy_user = Some(v),
        "user" => o.user = Some(v),
        "cert" => o.cert = Some(v),
        "cert-type" => o.cert_type = Some(v),
        "connect-timeout" => o.connect_timeout = seconds("--connect-timeout", &v)?,
        "data" => o.data.push(Data::Ascii(v)),
        "data-binary" => o.data.push(Data::Binary(v)),
        "data-raw" => o.data.push(Data::Raw(v)),
        "data-urlencode" => o.data.push(Data::UrlEncode(v)),
        "dump-header" => o.dump_header = Some(v),
        "referer" => {
            if v.ends_with(";auto") {
                return Err(usage("-e ';auto' (a Referer on each redirect) is not supported"));
            }
            header_value("-e", &v)?;
            o.referer = Some(v);
        }
        "expect100-timeout" => {
            o.expect100_timeout = Some(seconds("--expect100-timeout", &v)?.unwrap_or(Duration::ZERO));
        }
        "fail" | "fail-with-body" => {
            let mode = if name == "fail" { FailMode::Fail } else { FailMode::WithBody };
            if o.fail != FailMode::Off && o.fail != mode {
                return Err(usage("You must select either --fail or --fail-with-body, not both."));
            }
            o.fail = mode;
        }
        "get" => o.get = true,
        "header" => header_arg(o, &v)?,
        "help" => o.help = true,
        "head" => o.head = true,
        "include" => o.include = true,
        "insecure" => o.insecure = true,
        "key" => o.key = Some(v),
        "location" => o.location = true,
        "max-redirs" => {
            o.max_redirs = Some(match v.trim().parse::<i64>() {
                Ok(-1) => usize::MAX,
                Ok(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
                _ => return Err(usage(format!("--max-redirs {v:?}: expected a number >= -1"))),
            });
        }
        "max-time" | "timeout" => o.max_time = seconds(&format!("--{name}"), &v)?,
        "count" => o.count = v.parse().map_err(|_| usage(format!("-n {v:?} is not a count")))?,
        "output" => o.output = Some(v),
        "remote-name" => o.remote_name = true,
        "pass" => o.pass = Some(v),
        "proto" => o.proto = Some(protocols(&v)),
        "silent" => o.silent = true,
        "show-error" => o.show_error = true,
        "tlsv1" | "tlsv1.0" => o.tls_min = Some("1.0"),
        "tlsv1.1" => o.tls_min = Some("1.1"),
        "tlsv1.2" => o.tls_min = Some("1.2"),
        "tlsv1.3" => o.tls_min = Some("1.3"),
        "upload-file" => o.upload = Some(v),
        "url" => set_url(o, v)?,
        "verbose" => o.verbose = true,
        "version" => o.version = true,
        "write-out" => o.write_out = Some(v),
        "request" => o.method = Some(v),
        _ => unreachable!("flag --{name} is in FLAGS but not handled"),
    }
    Ok(())
}

/// A number of seconds, as curl takes them: fractions allowed, 0 for none.
fn seconds(flag: &str, text: &str) -> Result<Option<Duration>, Fail> {
    let secs: f64 = text.trim().parse().map_err(|_| usage(format!("{flag} {text:?}: expected a number of seconds")))?;
    if secs.is_nan() || secs < 0.0 {
        return Err(usage(format!("{flag} {text:?}: expected a number of seconds, not negative")));
    }
    let wait = Duration::try_from_secs_f64(secs).map_err(|_| usage(format!("{flag} {text:?} is out of range")))?;
    Ok((!wait.is_zero()).then_some(wait))
}

fn header_value(flag: &str, value: &str) -> Result<HeaderValue, Fail> {
    HeaderValue::from_str(value)
        .map_err(|_| usage(format!("{flag} {value:?}: not a valid header value (CR, LF, NUL?)")))
}

/// `-H`: `Name: value`, `Name:` (remove), `Name;` (empty), `@FILE`.
fn header_arg(o: &mut Options, arg: &str) -> Result<(), Fail> {
    if let Some(path) = arg.strip_prefix('@') {
        let text = read_file(path).map_err(|e| fail(26, format!("-H @{path}: {e}")))?;
        for line in String::from_utf8_lossy(&text).lines().filter(|l| !l.trim().is_empty()) {
            header_arg(o, line.trim_end_matches('\r'))?;
        }
        return Ok(());
    }
    let split = arg.find([':', ';']).ok_or_else(|| usage(format!("-H {arg:?}: expected 'Name: value'")))?;
    let (name, rest) = (arg[..split].trim(), &arg[split + 1..]);
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| usage(format!("-H {arg:?}: {name:?} is not a valid header name")))?;
    let value = rest.trim_start();
    let header = match &arg[split..split + 1] {
        ":" if value.is_empty() => HeaderArg::Remove(name),
        ":" => HeaderArg::Add(name, header_value("-H", value)?),
        // curl's way of sending a header with an empty value: `Name;`.
        _ if value.is_empty() => HeaderArg::Add(name, HeaderValue::from_static("")),
        _ => return Err(usage(format!("-H {arg:?}: expected 'Name: value'"))),
    };
    o.headers.push(header);
    Ok(())
}

/// `--proto`: whether (http, https) are allowed, from curl's syntax: a
/// comma-separated list of `+name`, `-name` or `=name`, names being
/// protocols or `all`, applied left to right from "all allowed".
fn protocols(spec: &str) -> (bool, bool) {
    let (mut http, mut https) = (true, true);
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (op, name) = match item.as_bytes()[0] {
            op @ (b'+' | b'-' | b'=') => (op, &item[1..]),
            _ => (b'+', item),
        };
        if op == b'=' {
            (http, https) = (false, false);
        }
        let on = op != b'-';
        match name.to_ascii_lowercase().as_str() {
            "all" => (http, https) = (on, on),
            "http" => http = on,
            "https" => https = on,
            _ => {} // other protocols: nothing fetch could use anyway
        }
    }
    (http, https)
}

fn read_file(path: &str) -> io::Result<Vec<u8>> {
    if path == "-" {
        let mut all = Vec::new();
        io::stdin().read_to_end(&mut all)?;
        return Ok(all);
    }
    std::fs::read(path)
}

fn help() -> String {
    let mut text =
        String::from("Usage: fetch [OPTIONS] URL\n\nA curl-like client over smolreq; curl's flags and exit codes.\n\n");
    for &(short, long, value, what) in FLAGS {
        let short = short.map_or_else(|| "    ".to_owned(), |c| format!("-{c}, "));
        let flag = format!("{short}--{long} {}", value.unwrap_or(""));
        text.push_str(&format!(" {flag:<38} {what}\n"));
    }
    text
}

// ---------------------------------------------------------------------------
// What to send
// ---------------------------------------------------------------------------

/// The request body.
enum Body {
    None,
    Bytes(Vec<u8>),
    /// A file streamed with its length, opened anew for each request.
    File(PathBuf),
    /// Standard input, streamed chunked (its length is unknown).
    Stdin,
}

/// Everything a request needs, worked out once from the options.
struct Plan {
    url: String,
    method: Method,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Body,
}

/// Curl's guess: a URL without `scheme://` is an http:// URL.
fn with_scheme(url: &str) -> String {
    if url.contains("://") { url.to_owned() } else { format!("http://{url}") }
}

fn plan(o: &Options) -> Result<Plan, Fail> {
    let mut url = with_scheme(
        o.url.as_deref().ok_or_else(|| usage("no URL specified\nfetch: try 'fetch --help' for more information"))?,
    );
    let scheme = url[..url.find("://").unwrap_or(0)].to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(fail(1, format!("Protocol \"{scheme}\" not supported")));
    }
    if let Some((http, https)) = o.proto {
        if (scheme == "http" && !http) || (scheme == "https" && !https) {
            return Err(fail(1, format!("Protocol \"{scheme}\" disabled by --proto")));
        }
        if !https && o.location {
            return Err(usage("--proto without https cannot be enforced on redirects yet; drop -L"));
        }
    }

    let data = if o.data.is_empty() { None } else { Some(join_data(&o.data)?) };
    let uploading = o.upload.is_some() || (data.is_some() && !o.get);
    if o.head && uploading {
        return Err(usage("You can only select one HTTP request method! (-I with -d or -T)"));
    }
    if o.upload.is_some() && data.is_some() && !o.get {
        return Err(usage("You can only select one HTTP request method! (-T with -d)"));
    }
    let mut body = Body::None;
    if let Some(data) = data {
        if o.get {
            // Into the query, as it is (the user encoded it), before any fragment.
            url.truncate(url.find('#').unwrap_or(url.len()));
            if !data.is_empty() {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(&String::from_utf8_lossy(&data));
            }
        } else {
            body = Body::Bytes(data);
        }
    }
    if let Some(file) = &o.upload {
        body = if file == "-" {
            Body::Stdin
        } else {
            let path = PathBuf::from(file);
            std::fs::metadata(&path)
                .and_then(|m| if m.is_file() { Ok(()) } else { Err(io::Error::other("not a regular file")) })
                .map_err(|e| fail(26, format!("-T {file}: {e}")))?;
            // curl: a URL without a file part gets the file's name.
            if !url[scheme.len() + 3..].contains('/') {
                url.push('/');
            }
            if url.ends_with('/') {
                url.push_str(&path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
            }
            Body::File(path)
        };
    }

    let method = match (&o.method, o.head, o.get, &body) {
        (Some(m), ..) => {
            Method::from_bytes(m.as_bytes()).map_err(|_| usage(format!("-X {m:?}: not a valid method")))?
        }
        (None, true, ..) => Method::HEAD,
        (None, _, true, _) => Method::GET,
        (None, _, _, Body::File(_) | Body::Stdin) => Method::PUT,
        (None, _, _, Body::Bytes(_)) => Method::POST,
        (None, ..) => Method::GET,
    };

    // fetch's own headers, which -H replaces or removes (as curl's are).
    let mut own: Vec<(HeaderName, HeaderValue)> = vec![(http_name("accept"), HeaderValue::from_static("*/*"))];
    if let Some(referer) = &o.referer {
        own.push((http_name("referer"), header_value("-e", referer)?));
    }
    if matches!(body, Body::Bytes(_)) {
        own.push((http_name("content-type"), HeaderValue::from_static("application/x-www-form-urlencoded")));
    }
    let large = match &body {
        Body::Bytes(b) => b.len() as u64 > EXPECT_THRESHOLD,
        Body::File(path) => std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) > EXPECT_THRESHOLD,
        Body::Stdin => true,
        Body::None => false,
    };
    if large {
        own.push((http_name("expect"), HeaderValue::from_static("100-continue")));
    }
    let mut custom = Vec::new();
    for arg in &o.headers {
        match arg {
            HeaderArg::Remove(name) if name == "host" || name == "user-agent" => {
                return Err(usage(format!("-H '{name}:': smolreq always sends {name}; it cannot be removed")));
            }
            HeaderArg::Remove(name) => own.retain(|(n, _)| n != name),
            HeaderArg::Add(name, value) => {
                own.retain(|(n, _)| n != name);
                custom.push((name.clone(), value.clone()));
            }
        }
    }
    let headers = own.into_iter().chain(custom).collect();
    Ok(Plan { url, method, headers, body })
}

fn http_name(name: &'static str) -> HeaderName {
    HeaderName::from_static(name)
}

/// The `-d` family joined with `&`, files read.
fn join_data(parts: &[Data]) -> Result<Vec<u8>, Fail> {
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        let file = |path: &str| read_file(path).map_err(|e| fail(26, format!("reading data file {path}: {e}")));
        match part {
            Data::Ascii(s) => match s.strip_prefix('@') {
                // curl strips carriage returns and newlines from such files.
                Some(path) => out.extend(file(path)?.into_iter().filter(|&b| b != b'\r' && b != b'\n')),
                None => out.extend_from_slice(s.as_bytes()),
            },
            Data::Binary(s) => match s.strip_prefix('@') {
                Some(path) => out.extend(file(path)?),
                None => out.extend_from_slice(s.as_bytes()),
            },
            Data::Raw(s) => out.extend_from_slice(s.as_bytes()),
            Data::UrlEncode(s) => {
                let (name, content) = match s.find(['=', '@']) {
                    Some(i) if s.as_bytes()[i] == b'=' => (&s[..i], s.as_bytes()[i + 1..].to_vec()),
                    Some(i) => (&s[..i], file(&s[i + 1..])?),
                    None => ("", s.as_bytes().to_vec()),
                };
                if !name.is_empty() {
                    out.extend_from_slice(name.as_bytes());
                    out.push(b'=');
                }
                percent_encode(&content, &mut out);
            }
        }
    }
    Ok(out)
}

/// curl's URL encoding: all but `A-Z a-z 0-9 - . _ ~` as `%XX`.
fn percent_encode(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
}

// ---------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------

fn build_client(o: &Options) -> Result<Client, Fail> {
    let mut builder = Client::builder()
        .redirect(o.location)
        // curl follows https:// -> http:// redirects (`--proto =https` stops them).
        .allow_https_downgrade(true)
        .max_redirects(o.max_redirs.unwrap_or(50))
        .user_agent(o.user_agent.clone().unwrap_or_else(|| DEFAULT_USER_AGENT.to_owned()));
    if let Some(wait) = o.connect_timeout {
        builder = builder.connect_timeout(wait);
    }
    if let Some(wait) = o.max_time {
        builder = builder.timeout(wait);
    }
    if let Some(wait) = o.expect100_timeout {
        builder = builder.expect_continue_timeout(wait);
    }
    if o.proto.is_some_and(|(http, _)| !http) {
        builder = builder.https_only(true);
    }
    builder = proxy_settings(builder, o)?;
    tls_settings(builder, o)?.build().map_err(|e| usage(chain(&e)))
}

/// Proxies as curl chooses them: `-x` (`""`: none) over the environment
/// (`http_proxy`, `https_proxy`, `all_proxy`, `no_proxy`, read by the
/// library), `--noproxy` over `no_proxy`, `-U` for the credentials.
#[cfg(feature = "proxy")]
fn proxy_settings(mut builder: smolreq::ClientBuilder, o: &Options) -> Result<smolreq::ClientBuilder, Fail> {
    use smolreq::{NoProxy, Proxy};
    let proxies = match o.proxy.as_deref() {
        Some("") => Vec::new(),
        Some(url) => vec![Proxy::all(url).map_err(|e| fail(5, format!("-x: {}", chain(&e))))?],
        None if o.noproxy.is_none() && o.proxy_user.is_none() => return Ok(builder), // the library reads the environment
        None => Proxy::from_env(),
    };
    builder = builder.no_proxy();
    for mut proxy in proxies {
        if let Some(list) = &o.noproxy {
            proxy = proxy.no_proxy(NoProxy::from_string(list));
        }
        if let Some(user) = &o.proxy_user {
            let (name, password) = user.split_once(':').unwrap_or((user, ""));
            proxy = proxy.basic_auth(name, password);
        }
        builder = builder.proxy(proxy);
    }
    Ok(builder)
}

#[cfg(not(feature = "proxy"))]
fn proxy_settings(builder: smolreq::ClientBuilder, o: &Options) -> Result<smolreq::ClientBuilder, Fail> {
    match (&o.proxy, &o.noproxy, &o.proxy_user) {
        (None, None, None) => Ok(builder),
        _ => Err(usage("-x, --noproxy and -U need smolreq's `proxy` feature")),
    }
}

/// An error and its causes on one line, as `anyhow`'s `{:#}` prints them:
/// a smolreq error's `Display` shows its own level only.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

#[cfg(feature = "native-tls")]
fn tls_settings(mut builder: smolreq::ClientBuilder, o: &Options) -> Result<smolreq::ClientBuilder, Fail> {
    use smolreq::{Certificate, Identity, TlsVersion};

    builder = builder.danger_accept_invalid_certs(o.insecure);
    // curl: --cacert, else $CURL_CA_BUNDLE, replaces the system's roots.
    let env_bundle = std::env::var("CURL_CA_BUNDLE").ok().filter(|s| !s.is_empty());
    if let Some(file) = o.cacert.clone().or(env_bundle) {
        let pem = std::fs::read(&file).map_err(|e| fail(77, format!("CA file {file}: {e}")))?;
        // Exit 2 here, not curl's 77: tests/tls.rs expects it.
        let certs = Certificate::from_pem_bundle(&pem).map_err(|e| usage(format!("CA file {file}: {e}")))?;
        builder = builder.tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if let Some(arg) = &o.cert {
        let (file, password) = match arg.split_once(':') {
            Some((file, password)) => (file, Some(password)),
            None => (arg.as_str(), None),
        };
        let bad = |e: String| fail(58, format!("client certificate {file}: {e}"));
        let bytes = std::fs::read(file).map_err(|e| bad(e.to_string()))?;
        let kind = o.cert_type.clone().unwrap_or_else(|| {
            let lower = file.to_ascii_lowercase();
            if lower.ends_with(".p12") || lower.ends_with(".pfx") { "P12".into() } else { "PEM".into() }
        });
        let identity = match kind.to_ascii_uppercase().as_str() {
            "P12" => Identity::from_pkcs12(&bytes, password.or(o.pass.as_deref()).unwrap_or("")),
            "PEM" => {
                let key = match &o.key {
                    Some(key) => std::fs::read(key).map_err(|e| fail(58, format!("--key {key}: {e}")))?,
                    // The key in the same file, as curl allows.
                    None => {
                        pem_block(&bytes, "PRIVATE KEY").ok_or_else(|| bad("no PKCS#8 private key in it".into()))?
                    }
                };
                Identity::from_pkcs8(&bytes, &key)
            }
            other => return Err(usage(format!("--cert-type {other}: PEM or P12 expected"))),
        };
        builder = builder.identity(identity.map_err(|e| bad(e.to_string()))?);
    }
    if let Some(min) = o.tls_min {
        let version = match min {
            "1.0" => TlsVersion::Tls1_0,
            "1.1" => TlsVersion::Tls1_1,
            "1.2" => TlsVersion::Tls1_2,
            _ => TlsVersion::Tls1_3,
        };
        builder = builder.min_tls_version(version);
    }
    Ok(builder)
}

/// The first PEM block labelled `label` in `pem`, armour included.
#[cfg(feature = "native-tls")]
fn pem_block(pem: &[u8], label: &str) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(pem);
    let (begin, end) = (format!("-----BEGIN {label}-----"), format!("-----END {label}-----"));
    let start = text.find(&begin)?;
    let stop = start + text[start..].find(&end)? + end.len();
    Some(format!("{}\n", &text[start..stop]).into_bytes())
}

#[cfg(not(feature = "native-tls"))]
fn tls_settings(builder: smolreq::ClientBuilder, o: &Options) -> Result<smolreq::ClientBuilder, Fail> {
    if o.insecure || o.cacert.is_some() || o.cert.is_some() || o.tls_min.is_some() {
        return Err(usage("-k, --cacert, -E and --tlsv1.x need the `native-tls` feature"));
    }
    Ok(builder)
}

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

/// Where bytes go: stdout, or a file created on first use (so a failed
/// transfer leaves no file behind, as with curl).
enum Sink {
    Stdout,
    File(PathBuf, Option<File>),
}

impl Sink {
    fn new(name: &str) -> Sink {
        if name == "-" { Sink::Stdout } else { Sink::File(PathBuf::from(name), None) }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), Fail> {
        let result = match self {
            Sink::Stdout => io::stdout().write_all(bytes),
            Sink::File(..) => self.file().and_then(|f| f.write_all(bytes)),
        };
        result.map_err(|e| self.error(e))
    }

    /// Creates the file, even when nothing is written to it.
    fn touch(&mut self) -> Result<(), Fail> {
        if let Sink::File(..) = self
            && let Err(e) = self.file()
        {
            return Err(self.error(e));
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Fail> {
        let result = match self {
            Sink::Stdout => io::stdout().flush(),
            Sink::File(_, file) => file.as_mut().map_or(Ok(()), |f| f.flush()),
        };
        result.map_err(|e| self.error(e))
    }

    fn file(&mut self) -> io::Result<&mut File> {
        let Sink::File(path, file) = self else { unreachable!("only called on files") };
        if file.is_none() {
            *file = Some(File::create(&*path)?);
        }
        Ok(file.as_mut().expect("just created"))
    }

    fn error(&self, e: io::Error) -> Fail {
        match self {
            Sink::Stdout => fail(23, format!("Failure writing output: {e}")),
            Sink::File(path, _) => fail(23, format!("Failure writing output to {}: {e}", path.display())),
        }
    }
}

/// What `-w` can tell about one transfer.
struct Report {
    method: String,
    url: String,
    url_effective: String,
    status: Option<u16>,
    version: Option<Version>,
    headers: smolreq::HeaderMap,
    size_header: usize,
    size_download: u64,
    time_total: Duration,
    exitcode: u8,
    errormsg: String,
    filename: Option<String>,
}

/// Writes `-w`'s format for `r`: `%{var}`, `%header{name}`, `%%`, and the
/// escapes `\n`, `\r`, `\t`, `\\`. `%{stderr}` and `%{stdout}` switch where
/// the rest goes.
fn write_out(format: &str, r: &Report, silent: bool) -> io::Result<()> {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut to_stderr = false;
    let mut rest = format;
    while let Some(c) = rest.chars().next() {
        let buf = if to_stderr { &mut err } else { &mut out };
        if let Some(after) = rest.strip_prefix("%{").or_else(|| rest.strip_prefix("%header{")) {
            let header = rest.starts_with("%header{");
            if let Some(end) = after.find('}') {
                let name = &after[..end];
                rest = &after[end + 1..];
                if header {
                    let values: Vec<&str> = r.headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
                    buf.extend_from_slice(values.join(", ").as_bytes());
                    continue;
                }
                match name {
                    "stderr" => to_stderr = true,
                    "stdout" => to_stderr = false,
                    _ => match variable(name, r) {
                        Ok(value) => buf.extend_from_slice(value.as_bytes()),
                        Err(why) if !silent => eprintln!("fetch: --write-out variable '{name}': {why}"),
                        Err(_) => {}
                    },
                }
                continue;
            }
        }
        let escape = match (c, rest[1..].chars().next()) {
            ('%', Some('%')) => Some(b'%'),
            ('\\', Some('n')) => Some(b'\n'),
            ('\\', Some('r')) => Some(b'\r'),
            ('\\', Some('t')) => Some(b'\t'),
            ('\\', Some('\\')) => Some(b'\\'),
            _ => None,
        };
        match escape {
            Some(byte) => {
                buf.push(byte);
                rest = &rest[2..];
            }
            None => {
                buf.extend_from_slice(&rest.as_bytes()[..c.len_utf8()]);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    io::stdout().write_all(&out)?;
    io::stdout().flush()?;
    io::stderr().write_all(&err)
}

/// The value of `-w` variable `name`, or why there is none.
fn variable(name: &str, r: &Report) -> Result<String, &'static str> {
    let secs = r.time_total.as_secs_f64();
    Ok(match name {
        "http_code" | "response_code" => format!("{:03}", r.status.unwrap_or(0)),
        "http_version" => match r.version {
            Some(Version::HTTP_09) => "0.9",
            Some(Version::HTTP_10) => "1",
            Some(Version::HTTP_11) => "1.1",
            Some(Version::HTTP_2) => "2",
            Some(Version::HTTP_3) => "3",
            _ => "0",
        }
        .to_owned(),
        "content_type" => r.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned(),
        "num_headers" => r.headers.len().to_string(),
        "size_header" => r.size_header.to_string(),
        "size_download" => r.size_download.to_string(),
        "speed_download" => format!("{}", if secs > 0.0 { (r.size_download as f64 / secs) as u64 } else { 0 }),
        "time_total" => format!("{secs:.6}"),
        "url" => r.url.clone(),
        "url_effective" => r.url_effective.clone(),
        "method" => r.method.clone(),
        "exitcode" => r.exitcode.to_string(),
        "errormsg" => r.errormsg.clone(),
        "filename_effective" => r.filename.clone().unwrap_or_default(),
        "num_redirects" | "redirect_url" | "remote_ip" | "remote_port" | "local_ip" | "local_port" | "num_connects"
        | "time_namelookup" | "time_connect" | "time_appconnect" | "time_pretransfer" | "time_redirect"
        | "time_starttransfer" | "size_upload" | "size_request" | "speed_upload" | "ssl_verify_result" | "scheme" => {
            return Err("not supported by fetch yet (needs the library's numbers)");
        }
        _ => return Err("unknown"),
    })
}

/// The request head as fetch asks the library to send it (the library puts
/// Host first, then the fields given, then User-Agent unless given, then the
/// framing field). tests/fetch_cli.rs checks it against what the server got.
fn request_head_lines(plan: &Plan, user_agent: &str) -> Vec<String> {
    let Ok(uri) = plan.url.parse::<Uri>() else { return Vec::new() };
    let target = uri.path_and_query().map(|pq| pq.as_str()).filter(|pq| !pq.is_empty() && *pq != "?").unwrap_or("/");
    let mut lines = vec![format!("{} {target} HTTP/1.1", plan.method)];
    let has = |name: &str| plan.headers.iter().any(|(n, _)| n == name);
    if !has("host") {
        let authority = uri.authority().map_or("", |a| a.as_str());
        let default = if uri.scheme_str() == Some("https") { 443 } else { 80 };
        let host = match uri.port_u16() {
            Some(port) if port == default => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
            _ => authority,
        };
        lines.push(format!("Host: {host}"));
    }
    for (name, value) in &plan.headers {
        lines.push(format!("{name}: {}", String::from_utf8_lossy(value.as_bytes())));
    }
    if !has("user-agent") {
        lines.push(format!("User-Agent: {user_agent}"));
    }
    let length = match &plan.body {
        Body::Bytes(b) => Some(b.len() as u64),
        Body::File(path) => std::fs::metadata(path).ok().map(|m| m.len()),
        Body::Stdin => None,
        Body::None => matches!(plan.method, Method::POST | Method::PUT | Method::PATCH).then_some(0),
    };
    match (&plan.body, length) {
        (Body::Stdin, _) => lines.push("Transfer-Encoding: chunked".into()),
        (_, Some(n)) => lines.push(format!("Content-Length: {n}")),
        (_, None) => {}
    }
    lines.push(String::new());
    lines
}

// ---------------------------------------------------------------------------
// A transfer
// ---------------------------------------------------------------------------

/// curl's exit code for an error of `send` (before the response head).
fn send_code(err: &smolreq::Error) -> u8 {
    // The library's kinds are coarser than curl's codes; a few messages
    // tell the cases apart.
    let text = chain(err);
    match err.kind() {
        ErrorKind::Resolve => 6,
        ErrorKind::Connect => 7,
        // curl: 56 for a refused CONNECT, 97 for a SOCKS failure, 7 when
        // the proxy cannot be reached.
        ErrorKind::Proxy if err.status().is_some() => 56,
        ErrorKind::Proxy if text.contains("SOCKS5") => 97,
        ErrorKind::Proxy => 7,
        ErrorKind::Timeout => 28,
        ErrorKind::Tls if text.contains("certificate verify failed") => 60,
        ErrorKind::Tls => 35,
        ErrorKind::Protocol => 8,
        ErrorKind::Io if text.contains("before any response byte") => 52,
        ErrorKind::Io => 56,
        ErrorKind::Redirect if text.contains("too many redirects") => 47,
        ErrorKind::Redirect => 1,
        ErrorKind::Url if text.contains("https_only") => 1,
        ErrorKind::Url => 3,
        ErrorKind::Body => 26,
        _ => 2,
    }
}

/// curl's exit code for an error reading the response body.
fn body_code(err: &io::Error) -> u8 {
    match err.get_ref().and_then(|e| e.downcast_ref::<smolreq::Error>()).map(smolreq::Error::kind) {
        Some(ErrorKind::Timeout) => 28,
        Some(ErrorKind::Protocol | ErrorKind::Body) => 18,
        _ => 56,
    }
}

struct Outputs {
    body: Sink,
    head: Option<Sink>,
}

/// One request: sends it, prints what the options ask for, fills `report`.
async fn transfer(
    client: &Client,
    o: &Options,
    plan: &Plan,
    out: &mut Outputs,
    report: &mut Report,
) -> Result<(), Fail> {
    let mut request = client.request(plan.method.clone(), plan.url.as_str());
    for (name, value) in &plan.headers {
        request = request.header(name.clone(), value.clone());
    }
    if let Some(user) = &o.user {
        // curl prompts for a missing password; fetch sends none (`user:`).
        let (name, password) = user.split_once(':').unwrap_or((user, ""));
        request = request.basic_auth(name, Some(password));
    }
    request = match &plan.body {
        Body::None => request,
        Body::Bytes(bytes) => request.body(bytes.clone()),
        Body::File(path) => {
            let file = File::open(path).map_err(|e| fail(26, format!("-T {}: {e}", path.display())))?;
            let len = file.metadata().map_err(|e| fail(26, format!("-T {}: {e}", path.display())))?.len();
            // A 64 KiB pipe from the reading thread (Unblock's default is 8 MiB).
            request.body_reader(smol::Unblock::with_capacity(64 * 1024, file), Some(len))
        }
        Body::Stdin => request.body_reader(smol::Unblock::with_capacity(64 * 1024, io::stdin()), None),
    };
    if o.verbose {
        let ua = o.user_agent.as_deref().unwrap_or(DEFAULT_USER_AGENT);
        for line in request_head_lines(plan, ua) {
            eprintln!("> {line}");
        }
    }
    let mut response = request.send().await.map_err(|e| fail(send_code(&e), chain(&e)))?;
    let status = response.status().as_u16();
    report.status = Some(status);
    report.version = Some(response.version());
    report.url_effective = response.url().to_string();
    report.headers = response.headers().clone();
    report.size_header = response.raw_head().len();
    let head = response.raw_head().to_vec();
    if o.verbose {
        for line in String::from_utf8_lossy(&head).split("\r\n").take_while(|l| !l.is_empty()) {
            eprintln!("< {line}");
        }
        eprintln!("< ");
    }
    let failed = status >= 400 && o.fail != FailMode::Off;
    let http_error = || fail(22, format!("The requested URL returned error: {status}"));
    if failed && o.fail == FailMode::Fail {
        return Err(http_error());
    }
    if let Some(sink) = &mut out.head {
        sink.write(&head)?;
        sink.flush()?;
    }
    if o.include || o.head {
        out.body.write(&head)?;
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = response.read(&mut buf).await.map_err(|e| fail(body_code(&e), chain(&e)))?;
        if n == 0 {
            break;
        }
        report.size_download += n as u64;
        out.body.write(&buf[..n])?;
    }
    out.body.touch()?;
    out.body.flush()?;
    if failed { Err(http_error()) } else { Ok(()) }
}

/// The file `-O` writes: the URL's last path segment.
fn remote_name(url: &str) -> Result<String, Fail> {
    let path = url.parse::<Uri>().map(|u| u.path().to_owned()).unwrap_or_default();
    let name = path.rsplit('/').next().unwrap_or("");
    if name.is_empty() || name == "." || name == ".." {
        return Err(fail(23, "Remote file name has no length!"));
    }
    Ok(name.to_owned())
}

fn run(o: &Options) -> Result<(), Fail> {
    let plan = plan(o)?;
    let client = build_client(o)?;
    let filename = match (&o.output, o.remote_name) {
        (Some(file), _) => Some(file.clone()),
        (None, true) => Some(remote_name(&plan.url)?),
        (None, false) => None,
    };
    let format = match o.write_out.as_deref().map(|f| (f, f.strip_prefix('@'))) {
        Some((_, Some(file))) => {
            let text = read_file(file).map_err(|e| fail(26, format!("-w @{file}: {e}")))?;
            Some(String::from_utf8_lossy(&text).into_owned())
        }
        Some((f, None)) => Some(f.to_owned()),
        None => None,
    };
    let mut out = Outputs {
        body: filename.as_deref().map_or(Sink::Stdout, Sink::new),
        head: o.dump_header.as_deref().map(Sink::new),
    };
    let mut last_failure = None;
    for _ in 0..o.count {
        let mut report = Report {
            method: plan.method.to_string(),
            url: plan.url.clone(),
            url_effective: plan.url.clone(),
            status: None,
            version: None,
            headers: smolreq::HeaderMap::new(),
            size_header: 0,
            size_download: 0,
            time_total: Duration::ZERO,
            exitcode: 0,
            errormsg: String::new(),
            filename: filename.clone(),
        };
        let start = Instant::now();
        let result = futures_lite::future::block_on(transfer(&client, o, &plan, &mut out, &mut report));
        report.time_total = start.elapsed();
        let _ = out.body.flush();
        if let Err(failure) = &result {
            (report.exitcode, report.errormsg) = (failure.code, failure.message.clone());
            if o.show_errors() {
                eprintln!("fetch: ({}) {}", failure.code, failure.message);
            }
        }
        if let Some(format) = &format {
            write_out(format, &report, o.silent).map_err(|e| fail(23, format!("writing -w output: {e}")))?;
        }
        if let Err(failure) = result {
            last_failure = Some(Fail { code: failure.code, message: String::new() });
        }
    }
    last_failure.map_or(Ok(()), Err)
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(failure) => {
            eprintln!("fetch: {}", failure.message);
            return ExitCode::from(failure.code);
        }
    };
    if options.help {
        print!("{}", help());
        return ExitCode::SUCCESS;
    }
    if options.version {
        println!("fetch (smolreq {})", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // Failures of a transfer were reported as they happened.
            if !failure.message.is_empty() && options.show_errors() {
                eprintln!("fetch: ({}) {}", failure.code, failure.message);
            }
            ExitCode::from(failure.code)
        }
    }
}
