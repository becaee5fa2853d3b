//! A curl-like command line over smolreq.
//!
//! ```text
//! fetch [-X METHOD] [-H 'Name: value']... [-d BODY] [-i] [--timeout SECS]
//!       [--expect100-timeout SECS] [-n COUNT]
//!       [-k] [--cacert FILE] URL
//! ```
//!
//! `-n COUNT` sends COUNT sequential requests on one shared client (so
//! connections are reused where allowed) and writes each body to stdout as
//! raw bytes. `-i` prints the status line and header fields, then an empty
//! line, before each body. `-d` without `-X` sends a POST. Redirects are
//! followed. `-k` accepts any server certificate (like curl's
//! `--insecure`); `--cacert FILE` also trusts the PEM certificates in FILE.
//! Both need the `native-tls` feature. `--expect100-timeout SECS` (curl's
//! flag): with `-H 'Expect: 100-continue'`, how long to wait for
//! `100 Continue` before sending the body anyway (default 1 s). Exit status 0 if and only if every
//! request got a complete response (whatever its status); otherwise a
//! one-line error on stderr.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use futures_lite::AsyncReadExt;
use smolreq::{Client, Method};

struct Args {
    method: Option<String>,
    headers: Vec<(String, String)>,
    data: Option<String>,
    include: bool,
    timeout: Option<Duration>,
    expect100_timeout: Option<Duration>,
    count: u64,
    insecure: bool,
    cacert: Option<String>,
    url: String,
}

const USAGE: &str = "usage: fetch [-X METHOD] [-H 'Name: value']... [-d BODY] [-i] [--timeout SECS] \
                     [--expect100-timeout SECS] [-n COUNT] \
                     [-k] [--cacert FILE] URL";

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        method: None,
        headers: Vec::new(),
        data: None,
        include: false,
        timeout: None,
        expect100_timeout: None,
        count: 1,
        insecure: false,
        cacert: None,
        url: String::new(),
    };
    let mut url = None;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-X" | "--request" => parsed.method = Some(value("-X")?),
            "-H" | "--header" => {
                let header = value("-H")?;
                let (name, val) = header.split_once(':').ok_or_else(|| format!("header {header:?} has no ':'"))?;
                parsed.headers.push((name.trim().to_owned(), val.trim_start().to_owned()));
            }
            "-d" | "--data" => parsed.data = Some(value("-d")?),
            "-i" | "--include" => parsed.include = true,
            "--timeout" => parsed.timeout = Some(seconds("--timeout", &value("--timeout")?)?),
            // curl's meaning: how long a request with `Expect: 100-continue`
            // waits for `100 Continue` before sending its body anyway.
            "--expect100-timeout" => {
                parsed.expect100_timeout = Some(seconds("--expect100-timeout", &value("--expect100-timeout")?)?);
            }
            "-n" => {
                let count = value("-n")?;
                parsed.count = count.parse().map_err(|_| format!("-n {count:?} is not a count"))?;
            }
            "-k" | "--insecure" => parsed.insecure = true,
            "--cacert" => parsed.cacert = Some(value("--cacert")?),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            s if s.starts_with('-') && s.len() > 1 => return Err(format!("unknown option {s}\n{USAGE}")),
            _ if url.is_some() => return Err(format!("more than one URL\n{USAGE}")),
            _ => url = Some(arg),
        }
    }
    parsed.url = url.ok_or_else(|| USAGE.to_owned())?;
    Ok(parsed)
}

/// A number of seconds, as curl takes them (fractions allowed).
fn seconds(flag: &str, text: &str) -> Result<Duration, String> {
    let secs: f64 = text.parse().map_err(|_| format!("{flag} {text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{flag} {secs} is out of range"))
}

/// The settings every client gets, with or without TLS.
fn common_settings(mut builder: smolreq::ClientBuilder, args: &Args) -> smolreq::ClientBuilder {
    if let Some(wait) = args.expect100_timeout {
        builder = builder.expect_continue_timeout(wait);
    }
    builder
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

/// Sends one request and streams its response to `out`.
async fn fetch_once(client: &Client, args: &Args, method: &Method, out: &mut impl Write) -> Result<(), String> {
    let mut request = client.request(method.clone(), args.url.as_str());
    for (name, value) in &args.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    if let Some(data) = &args.data {
        request = request.body(data.clone());
    }
    if let Some(timeout) = args.timeout {
        request = request.timeout(timeout);
    }
    let mut response = request.send().await.map_err(|e| chain(&e))?;
    if args.include {
        // The head exactly as received, as curl -i prints it.
        out.write_all(response.raw_head()).map_err(|e| format!("writing output: {e}"))?;
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = response.read(&mut buf).await.map_err(|e| chain(&e))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).map_err(|e| format!("writing output: {e}"))?;
    }
    out.flush().map_err(|e| format!("writing output: {e}"))
}

/// The client for the TLS options given.
#[cfg(feature = "native-tls")]
fn build_client(args: &Args) -> Result<Client, String> {
    let mut builder = common_settings(Client::builder(), args).danger_accept_invalid_certs(args.insecure);
    if let Some(file) = &args.cacert {
        let pem = std::fs::read(file).map_err(|e| format!("--cacert {file}: {e}"))?;
        for cert in smolreq::Certificate::from_pem_bundle(&pem).map_err(|e| format!("--cacert {file}: {e}"))? {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| chain(&e))
}

/// The client for the TLS options given: none without TLS.
#[cfg(not(feature = "native-tls"))]
fn build_client(args: &Args) -> Result<Client, String> {
    if args.insecure || args.cacert.is_some() {
        return Err("-k and --cacert need the `native-tls` feature".to_owned());
    }
    common_settings(Client::builder(), args).build().map_err(|e| chain(&e))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("fetch: {message}");
            return ExitCode::from(2);
        }
    };
    let method = match (&args.method, &args.data) {
        (Some(m), _) => match Method::from_bytes(m.as_bytes()) {
            Ok(m) => m,
            Err(_) => {
                eprintln!("fetch: invalid method {m:?}");
                return ExitCode::from(2);
            }
        },
        (None, Some(_)) => Method::POST,
        (None, None) => Method::GET,
    };
    let client = match build_client(&args) {
        Ok(client) => client,
        Err(message) => {
            eprintln!("fetch: {message}");
            return ExitCode::from(2);
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failed = false;
    futures_lite::future::block_on(async {
        for _ in 0..args.count {
            if let Err(message) = fetch_once(&client, &args, &method, &mut out).await {
                let _ = out.flush();
                eprintln!("fetch: {message}");
                failed = true;
            }
        }
    });
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
