//! Black-box tests of `examples/fetch.rs`: the binary runs as a process
//! (stdin null) against scripted raw-socket servers.
//!
//! Interface under test: curl's flags with curl's meaning and exit codes
//! (see `fetch --help` and the doc comment of examples/fetch.rs), plus
//! fetch's own `-n COUNT` and `--timeout SECS`. Without `-f`, exit status 0
//! if and only if every request got a complete response (any status);
//! otherwise one line on stderr and curl's non-zero exit code.

mod common;
#[cfg(feature = "native-tls")]
mod tls_util;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::Server;

const DEADLINE: Duration = Duration::from_secs(15);
/// A run of the binary that takes longer than this is killed (a hang).
const PROCESS_LIMIT: Duration = Duration::from_secs(10);

struct Run {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
    elapsed: Duration,
}

impl Run {
    fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn assert_success(&self) {
        assert!(
            self.status.success(),
            "expected exit 0, got {}; stderr: {:?}; stdout: {:?}",
            self.status,
            self.stderr,
            self.stdout_str()
        );
        assert!(self.stderr.is_empty(), "stderr on success: {:?}", self.stderr);
    }

    /// Non-zero exit and exactly one (non-empty) line on stderr.
    fn assert_failure_one_line(&self) {
        assert!(!self.status.success(), "expected a non-zero exit; stdout: {:?}", self.stdout_str());
        assert!(self.status.code().is_some(), "killed by a signal instead of exiting: {}", self.status);
        assert!(self.stderr.ends_with('\n'), "stderr is not a terminated line: {:?}", self.stderr);
        assert_eq!(self.stderr.lines().count(), 1, "stderr is not exactly one line: {:?}", self.stderr);
        assert!(!self.stderr.trim().is_empty(), "empty error line");
    }
}

fn fetch_bin() -> PathBuf {
    // Built outside the per-test deadline: compiling is not what is tested.
    common::example_bin("fetch")
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut out = Vec::new();
        let _ = pipe.read_to_end(&mut out);
        out
    })
}

fn wait_bounded(child: &mut Child, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fetch did not exit within {limit:?} (hang)");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// What a run gets besides its arguments.
#[derive(Default)]
struct Setup {
    env: Vec<(&'static str, String)>,
    cwd: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
}

/// Runs `fetch ARGS...` under the test deadline.
fn fetch(args: &[&str]) -> Run {
    fetch_with(args, Setup::default())
}

/// Runs `fetch ARGS...` with `setup`, under the test deadline. Variables
/// that curl (and so fetch) honours are removed from the environment unless
/// `setup` sets them.
fn fetch_with(args: &[&str], setup: Setup) -> Run {
    let bin = fetch_bin();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    common::with_deadline(DEADLINE, move || {
        let start = Instant::now();
        let mut cmd = Command::new(&bin);
        cmd.args(&args).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.env_remove("CURL_CA_BUNDLE");
        for name in [
            "http_proxy",
            "HTTP_PROXY",
            "https_proxy",
            "HTTPS_PROXY",
            "all_proxy",
            "ALL_PROXY",
            "no_proxy",
            "NO_PROXY",
            "REQUEST_METHOD",
        ] {
            cmd.env_remove(name);
        }
        for (name, value) in &setup.env {
            cmd.env(name, value);
        }
        if let Some(dir) = &setup.cwd {
            cmd.current_dir(dir);
        }
        cmd.stdin(if setup.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        if let Some(input) = setup.stdin {
            let mut pipe = child.stdin.take().unwrap();
            thread::spawn(move || {
                let _ = pipe.write_all(&input);
            });
        }
        let out = drain(child.stdout.take().unwrap());
        let err = drain(child.stderr.take().unwrap());
        let status = wait_bounded(&mut child, PROCESS_LIMIT);
        let elapsed = start.elapsed();
        let stdout = out.join().unwrap();
        let stderr = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
        Run { status, stdout, stderr, elapsed }
    })
}

/// A keep-alive server answering every request with `status` and `body`.
fn answering(status: u16, headers: &'static [(&'static str, &'static str)], body: &'static [u8]) -> Server {
    Server::start(move |conn| {
        while let Some(_req) = conn.read_request() {
            conn.respond(status, headers, body);
        }
    })
}

/// A server that answers each request with exactly `raw` and then closes.
fn raw_once(raw: &'static [u8]) -> Server {
    Server::start(move |conn| {
        if conn.read_request().is_some() {
            conn.write(raw);
        }
        conn.close();
    })
}

/// Splits `-i` output into (head lines without CRLF, body), checking that
/// every head line ends with CRLF and the head ends with an empty line.
fn split_head(out: &[u8]) -> (Vec<String>, &[u8]) {
    let end = out.windows(4).position(|w| w == b"\r\n\r\n").expect("no CRLF CRLF after the head") + 4;
    let head = std::str::from_utf8(&out[..end]).expect("head is UTF-8");
    let lines: Vec<String> = head[..head.len() - 4].split("\r\n").map(str::to_owned).collect();
    assert!(lines.iter().all(|l| !l.contains('\n') && !l.contains('\r')), "bare CR or LF in head: {head:?}");
    (lines, &out[end..])
}

/// Asserts a header line is `name: value` (name case-insensitive).
fn assert_header_line(line: &str, name: &str, value: &str) {
    let (n, v) = line.split_once(": ").unwrap_or_else(|| panic!("header line {line:?} is not `name: value`"));
    assert!(n.eq_ignore_ascii_case(name), "expected header {name:?}, got {line:?}");
    assert_eq!(v, value, "value of {name}");
}

// ---------------------------------------------------------------------------
// Successful requests
// ---------------------------------------------------------------------------

#[test]
fn get_prints_body_raw_and_exits_0() {
    let server = answering(200, &[], b"hello\nworld\r\n");
    let run = fetch(&[&server.url("/path?q=1")]);
    run.assert_success();
    assert_eq!(run.stdout, b"hello\nworld\r\n");
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method, "GET");
    assert_eq!(received[0].target, "/path?q=1");
    assert!(received[0].body.is_empty());
}

#[test]
fn count_3_sends_three_requests_on_one_connection() {
    let server = answering(200, &[], b"abc|");
    let run = fetch(&["-n", "3", &server.url("/")]);
    run.assert_success();
    assert_eq!(run.stdout, b"abc|abc|abc|");
    assert_eq!(server.connections(), 1, "-n must reuse the connection");
    assert_eq!(server.requests_per_connection(), [3]);
}

#[test]
fn count_with_connection_close_opens_one_connection_each() {
    let server = Server::start(|conn| {
        if conn.read_request().is_some() {
            conn.respond(200, &[("Connection", "close")], b"x");
        }
        conn.close();
    });
    let run = fetch(&["-n", "3", &server.url("/")]);
    run.assert_success();
    assert_eq!(run.stdout, b"xxx");
    assert_eq!(server.connections(), 3);
}

#[test]
fn include_prints_status_line_headers_empty_line_body() {
    let server = answering(200, &[("X-A", "b"), ("Content-Type", "text/plain")], b"hello");
    let run = fetch(&["-i", &server.url("/")]);
    run.assert_success();
    let (lines, body) = split_head(&run.stdout);
    assert_eq!(lines[0], "HTTP/1.1 200 OK");
    assert_eq!(lines.len(), 4, "status line and 3 header fields: {lines:?}");
    assert_header_line(&lines[1], "X-A", "b");
    assert_header_line(&lines[2], "Content-Type", "text/plain");
    assert_header_line(&lines[3], "Content-Length", "5");
    assert_eq!(body, b"hello");
}

#[test]
fn include_uses_the_servers_version_and_reason() {
    let server = raw_once(b"HTTP/1.0 404 Nothing Here\r\nContent-Length: 4\r\n\r\nnope");
    let run = fetch(&["-i", &server.url("/")]);
    run.assert_success();
    let (lines, body) = split_head(&run.stdout);
    assert_eq!(lines[0], "HTTP/1.0 404 Nothing Here");
    assert_eq!(body, b"nope");
}

#[test]
fn include_with_count_2_prints_head_before_each_body() {
    let server = answering(201, &[("X-N", "1")], b"body");
    let run = fetch(&["-i", "-n", "2", &server.url("/")]);
    run.assert_success();
    let one = b"HTTP/1.1 201 Created\r\n".to_vec();
    let (lines, rest) = split_head(&run.stdout);
    assert_eq!(lines[0], "HTTP/1.1 201 Created");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(rest.starts_with(b"body"), "first body: {:?}", String::from_utf8_lossy(rest));
    let rest = &rest[4..];
    assert!(rest.starts_with(&one), "second head: {:?}", String::from_utf8_lossy(rest));
    let (lines2, body2) = split_head(rest);
    assert_eq!(lines, lines2, "both heads are printed the same way");
    assert_eq!(body2, b"body");
    assert_eq!(server.requests_per_connection(), [2]);
}

#[test]
fn head_request_with_include_prints_head_only() {
    let server = Server::start(|conn| {
        while let Some(_req) = conn.read_request() {
            // A HEAD answer announces a length but carries no body.
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
        }
    });
    let run = fetch(&["-X", "HEAD", "-i", &server.url("/")]);
    run.assert_success();
    let (lines, body) = split_head(&run.stdout);
    assert_eq!(lines[0], "HTTP/1.1 200 OK");
    assert!(body.is_empty(), "HEAD printed a body: {body:?}");
    assert_eq!(server.received()[0].method, "HEAD");
}

#[test]
fn status_404_exits_0() {
    let server = answering(404, &[], b"not here");
    let run = fetch(&[&server.url("/missing")]);
    run.assert_success();
    assert_eq!(run.stdout, b"not here");
}

#[test]
fn status_500_exits_0() {
    let server = answering(500, &[], b"oops");
    let run = fetch(&[&server.url("/")]);
    run.assert_success();
    assert_eq!(run.stdout, b"oops");
}

#[test]
fn method_delete() {
    let server = answering(204, &[], b"");
    let run = fetch(&["-X", "DELETE", &server.url("/item/7")]);
    run.assert_success();
    assert!(run.stdout.is_empty());
    let req = &server.received()[0];
    assert_eq!(req.method, "DELETE");
    assert_eq!(req.target, "/item/7");
    assert!(req.body.is_empty());
}

#[test]
fn header_option_is_sent() {
    let server = answering(200, &[], b"ok");
    let run = fetch(&["-H", "X-A: b", &server.url("/")]);
    run.assert_success();
    let req = &server.received()[0];
    assert_eq!(req.header_all("x-a"), ["b"], "{}", req.head_str());
}

#[test]
fn multiple_header_options_are_all_sent_in_order() {
    let server = answering(200, &[], b"ok");
    let run = fetch(&["-H", "X-One: 1", "-H", "X-Two: two words", "-H", "X-One: again", &server.url("/")]);
    run.assert_success();
    let req = &server.received()[0];
    assert_eq!(req.header_all("x-one"), ["1", "again"], "{}", req.head_str());
    assert_eq!(req.header_all("x-two"), ["two words"]);
    assert_eq!(req.header_count("host"), 1);
}

#[test]
fn header_option_overrides_user_agent() {
    let server = answering(200, &[], b"ok");
    let run = fetch(&["-H", "User-Agent: custom/1", &server.url("/")]);
    run.assert_success();
    let req = &server.received()[0];
    assert_eq!(req.header_all("user-agent"), ["custom/1"], "{}", req.head_str());
}

#[test]
fn data_sends_a_post_with_body() {
    let server = answering(200, &[], b"created");
    let run = fetch(&["-d", "hello", &server.url("/items")]);
    run.assert_success();
    assert_eq!(run.stdout, b"created");
    let req = &server.received()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.body, b"hello");
    assert_eq!(req.header("content-length"), Some("5"));
}

#[test]
fn method_put_with_data() {
    let server = answering(200, &[], b"");
    let run = fetch(&["-X", "PUT", "-d", "x", &server.url("/items/1")]);
    run.assert_success();
    let req = &server.received()[0];
    assert_eq!(req.method, "PUT");
    assert_eq!(req.body, b"x");
}

#[test]
fn timeout_option_that_is_not_reached() {
    let server = answering(200, &[], b"quick");
    let run = fetch(&["--timeout", "5", &server.url("/")]);
    run.assert_success();
    assert_eq!(run.stdout, b"quick");
}

/// `/old` redirects to `/new`, which answers "final".
fn one_redirect() -> Server {
    Server::start(|conn| {
        while let Some(req) = conn.read_request() {
            if req.target == "/old" {
                conn.respond(302, &[("Location", "/new")], b"redirect body");
            } else {
                conn.respond(200, &[], b"final");
            }
        }
    })
}

#[test]
fn redirect_is_not_followed_without_location_flag() {
    let server = one_redirect();
    let run = fetch(&[&server.url("/old")]);
    run.assert_success();
    assert_eq!(run.stdout, b"redirect body", "curl prints the 3xx body without -L");
    let targets: Vec<String> = server.received().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, ["/old"]);
}

#[test]
fn location_flag_follows_redirects() {
    let server = one_redirect();
    let run = fetch(&["-L", &server.url("/old")]);
    run.assert_success();
    assert_eq!(run.stdout, b"final");
    let targets: Vec<String> = server.received().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, ["/old", "/new"]);
}

#[test]
fn binary_body_is_written_byte_for_byte() {
    static ALL: [u8; 512] = {
        let mut a = [0u8; 512];
        let mut i = 0;
        while i < 512 {
            a[i] = (i % 256) as u8;
            i += 1;
        }
        a
    };
    let server = answering(200, &[("Content-Type", "application/octet-stream")], &ALL);
    let run = fetch(&[&server.url("/bin")]);
    run.assert_success();
    assert_eq!(run.stdout.len(), ALL.len());
    assert_eq!(run.stdout, ALL, "bytes were altered on stdout");
}

#[test]
fn chunked_body_is_decoded() {
    let server = raw_once(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n",
    );
    let run = fetch(&[&server.url("/")]);
    run.assert_success();
    assert_eq!(run.stdout, b"hello world");
}

#[test]
fn close_delimited_body_is_complete() {
    let server = raw_once(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end");
    let run = fetch(&[&server.url("/")]);
    run.assert_success();
    assert_eq!(run.stdout, b"until the end");
}

// ---------------------------------------------------------------------------
// Failures: non-zero exit, one line on stderr
// ---------------------------------------------------------------------------

#[test]
fn timeout_option_against_a_silent_server() {
    let server = Server::start(|conn| {
        conn.read_request();
        conn.wait_peer_close(Duration::from_secs(8));
    });
    let run = fetch(&["--timeout", "0.5", &server.url("/")]);
    run.assert_failure_one_line();
    assert!(run.elapsed < Duration::from_secs(3), "exit took {:?} with --timeout 0.5", run.elapsed);
    assert!(run.elapsed >= Duration::from_millis(450), "gave up after {:?}, before the timeout", run.elapsed);
    assert!(run.stdout.is_empty());
}

#[test]
fn timeout_option_covers_a_dripped_body() {
    let server = Server::start(|conn| {
        conn.read_request();
        conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n");
        conn.write_slowly(&[b'd'; 40], Duration::from_millis(200));
    });
    let run = fetch(&["--timeout", "1", &server.url("/")]);
    run.assert_failure_one_line();
    assert!(run.elapsed < Duration::from_secs(4), "exit took {:?} with --timeout 1", run.elapsed);
}

#[test]
fn truncated_body_fails() {
    let server = raw_once(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf!");
    let run = fetch(&[&server.url("/")]);
    run.assert_failure_one_line();
}

#[test]
fn truncated_chunked_body_fails() {
    let server = raw_once(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    let run = fetch(&[&server.url("/")]);
    run.assert_failure_one_line();
}

#[test]
fn garbage_status_line_fails() {
    let server = raw_once(b"SSH-2.0-OpenSSH_9.6\r\n\r\n");
    let run = fetch(&[&server.url("/")]);
    run.assert_failure_one_line();
    assert!(run.stdout.is_empty(), "garbage printed: {:?}", run.stdout_str());
}

#[test]
fn connection_closed_without_response_fails() {
    let server = raw_once(b"");
    let run = fetch(&[&server.url("/")]);
    run.assert_failure_one_line();
}

#[test]
fn second_of_two_requests_failing_fails_the_run() {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let server = Server::start(move |conn| {
        while conn.read_request().is_some() {
            if c.fetch_add(1, Ordering::SeqCst) == 0 {
                conn.respond(200, &[], b"first;");
            } else {
                conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\ncut");
                conn.close();
                return;
            }
        }
    });
    let run = fetch(&["-n", "2", &server.url("/")]);
    run.assert_failure_one_line();
    assert!(run.stdout.starts_with(b"first;"), "first body missing: {:?}", run.stdout_str());
}

#[test]
fn connection_refused_fails() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let run = fetch(&[&format!("http://127.0.0.1:{port}/")]);
    run.assert_failure_one_line();
    assert_eq!(run.status.code(), Some(7), "curl's exit code for a failed connect: {}", run.stderr);
    assert!(run.elapsed < Duration::from_secs(5), "took {:?}", run.elapsed);
    // The error and its cause, each once.
    assert!(
        run.stderr.starts_with(&format!("fetch: (7) connect error (http://127.0.0.1:{port}/): ")),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.matches("refused").count(), 1, "{}", run.stderr);
}

#[test]
fn bad_url_fails() {
    for url in ["not a url", "http://exa mple/", "ftp://127.0.0.1/", "http://", "127.0.0.1:1/x"] {
        let run = fetch(&[url]);
        assert!(!run.status.success(), "URL {url:?} was accepted");
        run.assert_failure_one_line();
    }
}

#[test]
fn header_with_crlf_is_rejected_not_injected() {
    let server = answering(200, &[], b"ok");
    let run = fetch(&["-H", "X-A: b\r\nX-Injected: 1", &server.url("/")]);
    run.assert_failure_one_line();
    assert!(server.received().iter().all(|r| r.header("x-injected").is_none()), "header injected");
}

#[test]
fn missing_url_is_a_usage_error() {
    let run = fetch(&[]);
    assert_eq!(run.status.code(), Some(2));
    assert!(!run.stderr.trim().is_empty(), "no usage message");
    assert!(run.stdout.is_empty());
}

#[test]
fn unknown_option_is_a_usage_error() {
    let run = fetch(&["--frobnicate", "http://127.0.0.1:1/"]);
    assert_eq!(run.status.code(), Some(2), "curl's exit code for an unknown option");
    assert!(run.stderr.contains("--frobnicate") && run.stderr.contains("unknown"), "{}", run.stderr);
    let run = fetch(&["-fZ", "http://127.0.0.1:1/"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(run.stderr.contains("-Z"), "{}", run.stderr);
}

#[test]
fn option_missing_its_value_is_a_usage_error() {
    let run = fetch(&["http://127.0.0.1:1/", "-X"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(run.stderr.contains("-X"), "{}", run.stderr);
    let run = fetch(&["http://127.0.0.1:1/", "--max-time"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(run.stderr.contains("--max-time"), "{}", run.stderr);
}

#[test]
fn include_keeps_every_field_and_repeated_values_in_order() {
    let server =
        raw_once(b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX-Mid: m\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\nok");
    let run = fetch(&["-i", &server.url("/")]);
    run.assert_success();
    let (lines, body) = split_head(&run.stdout);
    assert_eq!(body, b"ok");
    let fields: Vec<(String, String)> = lines[1..]
        .iter()
        .map(|l| {
            let (n, v) = l.split_once(": ").unwrap_or_else(|| panic!("bad header line {l:?}"));
            (n.to_ascii_lowercase(), v.to_owned())
        })
        .collect();
    assert_eq!(fields.len(), 4, "{lines:?}");
    let cookies: Vec<&str> = fields.iter().filter(|(n, _)| n == "set-cookie").map(|(_, v)| v.as_str()).collect();
    assert_eq!(cookies, ["a=1", "b=2"], "repeated fields keep their order");
    assert!(fields.contains(&("x-mid".into(), "m".into())));
    assert!(fields.contains(&("content-length".into(), "2".into())));
}

/// A server that never sends `100 Continue`: it reads the request head,
/// then reports how long the body took to start arriving.
fn silent_expect_server() -> (Server, std::sync::mpsc::Receiver<Duration>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let server = Server::start(move |conn| {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if conn.stream().read(&mut byte).unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let start = Instant::now();
        if conn.stream().read(&mut byte).unwrap_or(0) == 1 {
            let _ = tx.lock().unwrap().send(start.elapsed());
        }
        let mut rest = [0u8; 4];
        let _ = conn.stream().read_exact(&mut rest);
        conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    });
    (server, rx)
}

#[test]
fn expect100_timeout_sets_how_long_the_body_waits_for_100_continue() {
    let (server, waited) = silent_expect_server();
    let url = server.url("/");
    let run = fetch(&["-H", "Expect: 100-continue", "-d", "hello", "--expect100-timeout", "0.2", &url]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(run.stdout, b"ok");
    let waited = waited.recv_timeout(Duration::from_secs(5)).expect("the body arrived");
    // The body waits for the flag's 0.2 s, not the default 1 s.
    assert!(waited >= Duration::from_millis(150), "body sent after {waited:?}, before the wait");
    assert!(waited < Duration::from_millis(900), "body sent after {waited:?}: the flag was ignored");
}

#[test]
fn expect100_timeout_needs_a_number() {
    let run = fetch(&["--expect100-timeout", "soon", "http://127.0.0.1:9/"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(run.stderr.contains("--expect100-timeout"), "{}", run.stderr);
}

// ---------------------------------------------------------------------------
// curl's flags
// ---------------------------------------------------------------------------

/// A fresh, empty directory for one test's files.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smolreq-fetch-cli-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_file(dir: &std::path::Path, name: &str, contents: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_str().unwrap().to_owned()
}

fn targets(server: &Server) -> Vec<String> {
    server.received().into_iter().map(|r| r.target).collect()
}

/// `/N` redirects to `/N-1`; `/0` answers "end".
fn redirect_chain() -> Server {
    Server::start(|conn| {
        while let Some(req) = conn.read_request() {
            let n: u32 = req.target[1..].parse().unwrap_or(0);
            if n == 0 {
                conn.respond(200, &[], b"end");
            } else {
                let next = format!("/{}", n - 1);
                conn.respond(302, &[("Location", next.as_str())], b"");
            }
        }
    })
}

#[test]
fn max_redirs_exceeded_exits_47() {
    let server = redirect_chain();
    let run = fetch(&["-L", "--max-redirs", "2", &server.url("/3")]);
    run.assert_failure_one_line();
    assert_eq!(run.status.code(), Some(47), "{}", run.stderr);
    assert!(run.stdout.is_empty());
    assert_eq!(targets(&server), ["/3", "/2", "/1"], "two redirects followed, the third refused");

    let run = fetch(&["-L", "--max-redirs", "3", &server.url("/3")]);
    run.assert_success();
    assert_eq!(run.stdout, b"end");

    let run = fetch(&["-L", "--max-redirs", "0", &server.url("/1")]);
    assert_eq!(run.status.code(), Some(47), "{}", run.stderr);
}

#[test]
fn location_follows_up_to_50_redirects_by_default() {
    // curl's default is 50 (the library's own is 10).
    let server = redirect_chain();
    let run = fetch(&["-L", &server.url("/50")]);
    run.assert_success();
    assert_eq!(run.stdout, b"end");
    let run = fetch(&["-L", &server.url("/51")]);
    assert_eq!(run.status.code(), Some(47), "{}", run.stderr);
    let run = fetch(&["-L", "--max-redirs", "-1", &server.url("/60")]);
    run.assert_success();
    let run = fetch(&["-L", "--max-redirs", "-2", &server.url("/0")]);
    assert_eq!(run.status.code(), Some(2));
}

#[test]
fn fail_on_404_prints_nothing_and_exits_22() {
    let server = answering(404, &[], b"not here");
    let run = fetch(&["-f", &server.url("/missing")]);
    run.assert_failure_one_line();
    assert_eq!(run.status.code(), Some(22));
    assert!(run.stdout.is_empty(), "{:?}", run.stdout_str());
    assert!(run.stderr.contains("(22)") && run.stderr.contains("404"), "{}", run.stderr);
    let run = fetch(&["-f", "-i", &server.url("/missing")]);
    assert_eq!(run.status.code(), Some(22));
    assert!(run.stdout.is_empty(), "-f -i printed {:?}", run.stdout_str());
}

#[test]
fn fail_on_success_and_redirect_status_is_success() {
    let server = answering(200, &[], b"fine");
    let run = fetch(&["--fail", &server.url("/")]);
    run.assert_success();
    assert_eq!(run.stdout, b"fine");
    let server = answering(399, &[], b"odd");
    let run = fetch(&["-f", &server.url("/")]);
    run.assert_success();
}

#[test]
fn fail_with_body_prints_the_body_and_exits_22() {
    let server = answering(500, &[], b"oops");
    let run = fetch(&["--fail-with-body", &server.url("/")]);
    run.assert_failure_one_line();
    assert_eq!(run.status.code(), Some(22));
    assert_eq!(run.stdout, b"oops");
    let run = fetch(&["-f", "--fail-with-body", &server.url("/")]);
    assert_eq!(run.status.code(), Some(2), "curl refuses both: {}", run.stderr);
    assert_eq!(server.requests(), 1);
}

#[test]
fn silent_hides_errors_and_show_error_shows_them() {
    let server = answering(404, &[], b"x");
    let run = fetch(&["-sf", &server.url("/")]);
    assert_eq!(run.status.code(), Some(22));
    assert!(run.stderr.is_empty(), "-s printed {:?}", run.stderr);
    let run = fetch(&["-sSf", &server.url("/")]);
    run.assert_failure_one_line();
    assert_eq!(run.status.code(), Some(22));
    let run = fetch(&["-s", "-S", "-f", &server.url("/")]);
    assert!(run.stderr.contains("(22)"), "{}", run.stderr);
}

#[test]
fn output_writes_the_body_to_a_file() {
    let dir = temp_dir("output");
    let file = dir.join("out.bin");
    let server = answering(200, &[("X-A", "b")], b"to a file");
    let run = fetch(&["-o", file.to_str().unwrap(), &server.url("/")]);
    run.assert_success();
    assert!(run.stdout.is_empty(), "{:?}", run.stdout_str());
    assert_eq!(std::fs::read(&file).unwrap(), b"to a file");
    // -i puts the head in the same file, as curl does.
    let run = fetch(&["-i", "-o", file.to_str().unwrap(), &server.url("/")]);
    run.assert_success();
    let written = std::fs::read(&file).unwrap();
    let (lines, body) = split_head(&written);
    assert_eq!(lines[0], "HTTP/1.1 200 OK");
    assert_eq!(body, b"to a file");
}

#[test]
fn output_is_not_created_when_fail_refuses_the_response() {
    let dir = temp_dir("output-fail");
    let file = dir.join("never.txt");
    let server = answering(403, &[], b"forbidden");
    let run = fetch(&["-f", "-o", file.to_str().unwrap(), &server.url("/")]);
    assert_eq!(run.status.code(), Some(22));
    assert!(!file.exists(), "-f left a file behind");
    // An empty body still makes an (empty) file.
    let server = answering(200, &[], b"");
    let run = fetch(&["-o", file.to_str().unwrap(), &server.url("/")]);
    run.assert_success();
    assert_eq!(std::fs::read(&file).unwrap(), b"");
}

#[test]
fn output_to_an_unwritable_path_exits_23() {
    let dir = temp_dir("output-bad");
    let file = dir.join("no-such-dir").join("x");
    let server = answering(200, &[], b"data");
    let run = fetch(&["-o", file.to_str().unwrap(), &server.url("/")]);
    run.assert_failure_one_line();
    assert_eq!(run.status.code(), Some(23), "{}", run.stderr);
}

#[test]
fn remote_name_writes_to_the_urls_last_segment() {
    let dir = temp_dir("remote-name");
    let server = answering(200, &[], b"remote");
    let setup = Setup { cwd: Some(dir.clone()), ..Setup::default() };
    let run = fetch_with(&["-O", &server.url("/dir/file.txt?v=1")], setup);
    run.assert_success();
    assert!(run.stdout.is_empty());
    assert_eq!(std::fs::read(dir.join("file.txt")).unwrap(), b"remote");

    let setup = Setup { cwd: Some(dir.clone()), ..Setup::default() };
    let run = fetch_with(&["-O", &server.url("/dir/")], setup);
    run.assert_failure_one_line();
    assert_eq!(run.status.code(), Some(23), "{}", run.stderr);
}

#[test]
fn dump_header_writes_the_head_to_a_file() {
    let dir = temp_dir("dump-header");
    let file = dir.join("head.txt");
    let server = answering(201, &[("X-A", "b")], b"body");
    let run = fetch(&["-D", file.to_str().unwrap(), &server.url("/")]);
    run.assert_success();
    assert_eq!(run.stdout, b"body");
    let head = std::fs::read(&file).unwrap();
    let (lines, rest) = split_head(&head);
    assert_eq!(lines[0], "HTTP/1.1 201 Created");
    assert_header_line(&lines[1], "X-A", "b");
    assert!(rest.is_empty());
    // `-D -` is stdout, before the body.
    let run = fetch(&["-D", "-", &server.url("/")]);
    let (lines, body) = split_head(&run.stdout);
    assert_eq!(lines[0], "HTTP/1.1 201 Created");
    assert_eq!(body, b"body");
}

#[test]
fn head_flag_sends_head_and_prints_the_head() {
    let server = Server::start(|conn| {
        while let Some(_req) = conn.read_request() {
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-A: b\r\n\r\n");
        }
    });
    let run = fetch(&["-I", &server.url("/")]);
    run.assert_success();
    let (lines, body) = split_head(&run.stdout);
    assert_eq!(lines, ["HTTP/1.1 200 OK", "Content-Length: 10", "X-A: b"]);
    assert!(body.is_empty());
    assert_eq!(server.received()[0].method, "HEAD");
}

#[test]
fn head_with_data_or_upload_is_a_usage_error() {
    let server = answering(200, &[], b"");
    for args in [&["-I", "-d", "x"][..], &["-I", "-T", "/etc/hostname"], &["-T", "/etc/hostname", "-d", "x"]] {
        let mut args = args.to_vec();
        let url = server.url("/");
        args.push(&url);
        let run = fetch(&args);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("method"), "{}", run.stderr);
    }
    assert_eq!(server.requests(), 0, "a request was sent");
}

#[test]
fn verbose_prints_the_request_and_response_heads_on_stderr() {
    let server = answering(200, &[("X-Reply", "r")], b"body");
    let url = server.url("/v?q=1");
    let run = fetch(&["-v", "-H", "X-A: b", "-A", "agent/1", "-d", "a=1", &url]);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(run.stdout, b"body", "-v writes nothing more to stdout");
    let sent: Vec<&str> = run.stderr.lines().filter_map(|l| l.strip_prefix("> ")).collect();
    let got: Vec<&str> = run.stderr.lines().filter_map(|l| l.strip_prefix("< ")).collect();
    let req = &server.received()[0];
    let raw = String::from_utf8(req.raw_head.clone()).unwrap();
    let wire: Vec<&str> = raw.trim_end_matches("\r\n").split("\r\n").collect();
    assert_eq!(sent.last(), Some(&""), "the request head ends with an empty '> ' line");
    assert_eq!(sent[..sent.len() - 1], wire[..], "-v shows exactly the head the server received");
    assert!(sent[0].starts_with("POST /v?q=1 HTTP/1.1"), "{sent:?}");
    assert_eq!(got[0], "HTTP/1.1 200 OK");
    assert!(got.contains(&"X-Reply: r"), "{got:?}");
    assert_eq!(got.last(), Some(&""));
    // Every stderr line is one of the two heads.
    assert!(run.stderr.lines().all(|l| l.starts_with("> ") || l.starts_with("< ")), "{}", run.stderr);
}

#[test]
fn accept_star_is_sent_and_header_replaces_or_removes_it() {
    let server = answering(200, &[], b"");
    fetch(&[&server.url("/1")]).assert_success();
    fetch(&["-H", "Accept: text/plain", &server.url("/2")]).assert_success();
    fetch(&["-H", "Accept:", &server.url("/3")]).assert_success();
    let received = server.received();
    assert_eq!(received[0].header_all("accept"), ["*/*"], "curl's default Accept");
    assert_eq!(received[1].header_all("accept"), ["text/plain"], "-H replaces fetch's own header");
    assert!(received[2].header("accept").is_none(), "-H 'Accept:' removes it: {}", received[2].head_str());
}

#[test]
fn header_with_semicolon_sends_an_empty_value() {
    let server = answering(200, &[], b"");
    fetch(&["-H", "X-Empty;", &server.url("/")]).assert_success();
    let req = &server.received()[0];
    assert_eq!(req.header_all("x-empty"), [""], "{}", req.head_str());
}

#[test]
fn header_from_a_file() {
    let dir = temp_dir("header-file");
    let file = write_file(&dir, "headers.txt", b"X-One: 1\r\nX-Two: 2\n\n");
    let server = answering(200, &[], b"");
    fetch(&["-H", &format!("@{file}"), &server.url("/")]).assert_success();
    let req = &server.received()[0];
    assert_eq!(req.header_all("x-one"), ["1"]);
    assert_eq!(req.header_all("x-two"), ["2"]);
    let run = fetch(&["-H", "@/nonexistent/headers", &server.url("/")]);
    assert_eq!(run.status.code(), Some(26), "{}", run.stderr);
}

#[test]
fn header_removing_what_the_library_always_sends_is_refused() {
    let server = answering(200, &[], b"");
    for header in ["Host:", "User-Agent:"] {
        let run = fetch(&["-H", header, &server.url("/")]);
        assert_eq!(run.status.code(), Some(2), "{header}: {}", run.stderr);
    }
    let run = fetch(&["-A", "", &server.url("/")]);
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
    let run = fetch(&["-H", "bad name: x", &server.url("/")]);
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
    assert_eq!(server.requests(), 0);
}

#[test]
fn user_agent_flag_and_header_that_overrides_it() {
    let server = answering(200, &[], b"");
    fetch(&["-A", "agent/1", &server.url("/")]).assert_success();
    fetch(&["--user-agent", "agent/1", "-H", "User-Agent: header/2", &server.url("/")]).assert_success();
    let received = server.received();
    assert_eq!(received[0].header_all("user-agent"), ["agent/1"]);
    assert_eq!(received[1].header_all("user-agent"), ["header/2"], "-H wins over -A");
}

#[test]
fn referer_flag() {
    let server = answering(200, &[], b"");
    fetch(&["-e", "http://from.test/page", &server.url("/")]).assert_success();
    fetch(&["--referer", "http://a.test/", "-H", "Referer: http://b.test/", &server.url("/")]).assert_success();
    let received = server.received();
    assert_eq!(received[0].header_all("referer"), ["http://from.test/page"]);
    assert_eq!(received[1].header_all("referer"), ["http://b.test/"]);
}

#[test]
fn data_is_a_form_post_and_repeats_join_with_ampersand() {
    let server = answering(200, &[], b"");
    fetch(&["-d", "a=1", "-d", "b=2", &server.url("/")]).assert_success();
    fetch(&["-d", "{}", "-H", "Content-Type: application/json", &server.url("/")]).assert_success();
    fetch(&["-d", "x", "-H", "Content-Type:", &server.url("/")]).assert_success();
    let received = server.received();
    assert_eq!(received[0].method, "POST");
    assert_eq!(received[0].body, b"a=1&b=2");
    assert_eq!(received[0].header_all("content-type"), ["application/x-www-form-urlencoded"]);
    assert_eq!(received[1].header_all("content-type"), ["application/json"]);
    assert!(received[2].header("content-type").is_none(), "{}", received[2].head_str());
}

#[test]
fn data_from_a_file_strips_cr_lf_and_data_binary_keeps_them() {
    let dir = temp_dir("data-file");
    let file = write_file(&dir, "data.txt", b"a=1\r\n&b=2\n\x00z");
    let server = answering(200, &[], b"");
    fetch(&["-d", &format!("@{file}"), &server.url("/")]).assert_success();
    fetch(&["--data-binary", &format!("@{file}"), &server.url("/")]).assert_success();
    fetch(&["--data-raw", &format!("@{file}"), &server.url("/")]).assert_success();
    fetch_with(
        &["-d", "@-", "-d", "c=3", &server.url("/")],
        Setup { stdin: Some(b"s=1\n".to_vec()), ..Setup::default() },
    )
    .assert_success();
    let received = server.received();
    assert_eq!(received[0].body, b"a=1&b=2\x00z");
    assert_eq!(received[1].body, b"a=1\r\n&b=2\n\x00z");
    assert_eq!(received[2].body, format!("@{file}").as_bytes(), "--data-raw does not read files");
    assert_eq!(received[3].body, b"s=1&c=3");
}

#[test]
fn data_urlencode_forms() {
    let dir = temp_dir("data-urlencode");
    let file = write_file(&dir, "v.txt", b"f i/l=e\n");
    let server = answering(200, &[], b"");
    let args = ["--data-urlencode", "a b&c", "--data-urlencode", "=x=y", "--data-urlencode", "name=v a/l"];
    let mut args = args.to_vec();
    let from_file = format!("f@{file}");
    args.extend(["--data-urlencode", &from_file]);
    let url = server.url("/");
    args.push(&url);
    fetch(&args).assert_success();
    assert_eq!(
        String::from_utf8_lossy(&server.received()[0].body),
        "a%20b%26c&x%3Dy&name=v%20a%2Fl&f=f%20i%2Fl%3De%0A"
    );
}

#[test]
fn data_from_a_missing_file_exits_26_and_sends_nothing() {
    let server = answering(200, &[], b"");
    for flag in ["-d", "--data-binary", "--data-urlencode"] {
        let run = fetch(&[flag, "@/nonexistent/data", &server.url("/")]);
        run.assert_failure_one_line();
        assert_eq!(run.status.code(), Some(26), "{flag}: {}", run.stderr);
    }
    assert_eq!(server.requests(), 0);
}

#[test]
fn get_flag_puts_the_data_in_the_query() {
    let server = answering(200, &[], b"");
    fetch(&["-G", "-d", "a=1", "--data-urlencode", "b=x y", &server.url("/s")]).assert_success();
    fetch(&["--get", "-d", "c=3", &server.url("/s?z=0")]).assert_success();
    let received = server.received();
    assert_eq!(received[0].method, "GET");
    assert_eq!(received[0].target, "/s?a=1&b=x%20y");
    assert!(received[0].body.is_empty());
    assert!(received[0].header("content-type").is_none());
    assert_eq!(received[1].target, "/s?z=0&c=3");
}

#[test]
fn upload_file_puts_the_file_with_its_length() {
    let dir = temp_dir("upload");
    let contents: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let file = write_file(&dir, "up.bin", &contents);
    let server = answering(201, &[], b"stored");
    let run = fetch(&["-T", &file, &server.url("/files/up.bin")]);
    run.assert_success();
    assert_eq!(run.stdout, b"stored");
    let req = &server.received()[0];
    assert_eq!(req.method, "PUT");
    assert!(!req.chunked, "a file has a length: no chunked encoding");
    assert_eq!(req.header("content-length"), Some("100000"));
    assert!(req.header("content-type").is_none());
    assert_eq!(req.body, contents);
    // A URL ending in '/' gets the file's name, as with curl.
    fetch(&["--upload-file", &file, &server.url("/files/")]).assert_success();
    assert_eq!(server.received()[1].target, "/files/up.bin");
    fetch(&["-T", &file, &format!("http://{}", server.addr())]).assert_success();
    assert_eq!(server.received()[2].target, "/up.bin", "no path: the file's name");
    // -X changes the method.
    fetch(&["-T", &file, "-X", "POST", &server.url("/p")]).assert_success();
    assert_eq!(server.received()[3].method, "POST");
}

#[test]
fn upload_from_stdin_is_chunked() {
    let server = answering(200, &[], b"");
    let setup = Setup { stdin: Some(b"from stdin".to_vec()), ..Setup::default() };
    fetch_with(&["-T", "-", "-H", "Expect:", &server.url("/in")], setup).assert_success();
    let req = &server.received()[0];
    assert_eq!(req.method, "PUT");
    assert!(req.chunked, "{}", req.head_str());
    assert_eq!(req.body, b"from stdin");
    // A body of unknown length gets `Expect: 100-continue`, as with curl.
    let setup = Setup { stdin: Some(b"again".to_vec()), ..Setup::default() };
    fetch_with(&["-T", "-", "--expect100-timeout", "0.1", &server.url("/in")], setup).assert_success();
    let req = &server.received()[1];
    assert_eq!(req.header("expect"), Some("100-continue"), "{}", req.head_str());
    assert_eq!(req.body, b"again");
}

#[test]
fn upload_of_a_missing_file_exits_26() {
    let server = answering(200, &[], b"");
    let run = fetch(&["-T", "/nonexistent/file", &server.url("/")]);
    run.assert_failure_one_line();
    assert_eq!(run.status.code(), Some(26), "{}", run.stderr);
    let dir = temp_dir("upload-dir");
    let run = fetch(&["-T", dir.to_str().unwrap(), &server.url("/")]);
    assert_eq!(run.status.code(), Some(26), "{}", run.stderr);
    assert_eq!(server.connections(), 0, "refused before connecting");
}

#[test]
fn large_upload_sends_expect_100_continue_unless_removed() {
    let dir = temp_dir("upload-expect");
    let file = write_file(&dir, "big.bin", &vec![7u8; 2 * 1024 * 1024]);
    let small = write_file(&dir, "small.bin", b"small");
    let server = answering(200, &[], b"");
    // The server never sends 100 Continue: the body goes after 0.1 s.
    fetch(&["--expect100-timeout", "0.1", "-T", &file, &server.url("/1")]).assert_success();
    fetch(&["-H", "Expect:", "-T", &file, &server.url("/2")]).assert_success();
    fetch(&["-T", &small, &server.url("/3")]).assert_success();
    let received = server.received();
    assert_eq!(received[0].header("expect"), Some("100-continue"), "curl's Expect for bodies over 1 MiB");
    assert_eq!(received[0].body.len(), 2 * 1024 * 1024);
    assert!(received[1].header("expect").is_none());
    assert!(received[2].header("expect").is_none());
}

/// Peak resident memory of process `pid`, from /proc.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/PID/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn upload_file_is_streamed_not_loaded_into_memory() {
    const SIZE: u64 = 64 * 1024 * 1024;
    let dir = temp_dir("upload-stream");
    let path = dir.join("sparse.bin");
    std::fs::File::create(&path).unwrap().set_len(SIZE).unwrap();
    let (received_tx, received_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (received_tx, go_rx) = (std::sync::Mutex::new(received_tx), std::sync::Mutex::new(go_rx));
    let server = Server::start(move |conn| {
        if let Some(req) = conn.read_request() {
            let _ = received_tx.lock().unwrap().send(req.body.len());
            // Answer once the test has looked at the client's memory.
            let _ = go_rx.lock().unwrap().recv_timeout(Duration::from_secs(8));
            conn.respond(200, &[], b"done");
        }
    });
    let bin = fetch_bin();
    let mut child = Command::new(bin)
        .args(["-sS", "-H", "Expect:", "-T", path.to_str().unwrap(), &server.url("/big")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = drain(child.stdout.take().unwrap());
    let len = received_rx.recv_timeout(DEADLINE).expect("the upload arrived");
    assert_eq!(len as u64, SIZE);
    let peak = peak_rss_kib(child.id());
    go_tx.send(()).unwrap();
    let status = wait_bounded(&mut child, PROCESS_LIMIT);
    assert!(status.success(), "{status}");
    assert_eq!(out.join().unwrap(), b"done");
    assert_eq!(server.received()[0].header("content-length"), Some(SIZE.to_string().as_str()));
    assert!(peak < 24 * 1024, "fetch peaked at {peak} KiB uploading {} MiB: the file was loaded", SIZE >> 20);
}

#[test]
fn max_time_against_a_silent_server_exits_28() {
    let server = Server::start(|conn| {
        conn.read_request();
        conn.wait_peer_close(Duration::from_secs(8));
    });
    for flag in ["-m", "--max-time"] {
        let run = fetch(&[flag, "0.4", &server.url("/")]);
        run.assert_failure_one_line();
        assert_eq!(run.status.code(), Some(28), "{}", run.stderr);
        assert!(run.elapsed >= Duration::from_millis(350), "gave up after {:?}", run.elapsed);
        assert!(run.elapsed < Duration::from_secs(3), "took {:?} with {flag} 0.4", run.elapsed);
    }
}

#[test]
fn bad_timeout_values_are_usage_errors() {
    for args in [
        ["-m", "-1"],
        ["-m", "soon"],
        ["--max-time", "NaN"],
        ["--connect-timeout", "-0.5"],
        ["--connect-timeout", "inf"],
        ["--expect100-timeout", "-1"],
    ] {
        let run = fetch(&[args[0], args[1], "http://127.0.0.1:9/"]);
        run.assert_failure_one_line();
        assert_eq!(run.status.code(), Some(2), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(args[0]), "{}", run.stderr);
    }
}

#[test]
fn zero_timeouts_mean_none_as_in_curl() {
    let server = answering(200, &[], b"no deadline");
    let run = fetch(&["-m", "0", "--connect-timeout", "0", &server.url("/")]);
    run.assert_success();
    assert_eq!(run.stdout, b"no deadline");
}

#[test]
fn connect_timeout_does_not_limit_a_slow_response() {
    let server = Server::start(|conn| {
        if conn.read_request().is_some() {
            thread::sleep(Duration::from_millis(600)); // the server's think time
            conn.respond(200, &[], b"slow");
        }
    });
    let run = fetch(&["--connect-timeout", "0.2", &server.url("/")]);
    run.assert_success();
    assert_eq!(run.stdout, b"slow");
}

#[test]
fn write_out_variables() {
    let server = answering(201, &[("X-A", "b"), ("Content-Type", "text/plain")], b"12345");
    let url = server.url("/w");
    let format = "%{http_code} %{response_code} %{size_download} %{url_effective} %{method} %{num_headers} \
                  %{content_type} %header{x-a} %{http_version} %{exitcode} 100%%\\t|\\n";
    let run = fetch(&["-w", format, &url]);
    run.assert_success();
    let expected = format!("12345201 201 5 {url} GET 3 text/plain b 1.1 0 100%\t|\n");
    assert_eq!(run.stdout_str(), expected);
}

#[test]
fn write_out_url_effective_after_redirects() {
    let server = one_redirect();
    let run = fetch(&["-s", "-L", "-w", "%{url_effective} %{http_code}", &server.url("/old")]);
    run.assert_success();
    assert_eq!(run.stdout_str(), format!("final{} 200", server.url("/new")));
    let run = fetch(&["-w", "%{http_code}", &server.url("/old")]);
    assert_eq!(run.stdout_str(), "redirect body302");
}

#[test]
fn write_out_time_total_covers_the_transfer() {
    let server = Server::start(|conn| {
        if conn.read_request().is_some() {
            thread::sleep(Duration::from_millis(300));
            conn.respond(200, &[], b"");
        }
    });
    let run = fetch(&["-w", "%{time_total}", &server.url("/")]);
    run.assert_success();
    let secs: f64 = run.stdout_str().parse().unwrap_or_else(|_| panic!("not seconds: {:?}", run.stdout_str()));
    assert!(secs >= 0.3, "time_total {secs} is shorter than the server's 0.3 s");
    assert!(secs <= run.elapsed.as_secs_f64(), "time_total {secs} is longer than the run");
    assert_eq!(run.stdout_str().split('.').nth(1).map(str::len), Some(6), "six decimals, as curl");
}

#[test]
fn write_out_after_a_failure_and_unknown_variables() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let run = fetch(&["-s", "-w", "%{http_code} %{exitcode}", &format!("http://127.0.0.1:{port}/")]);
    assert_eq!(run.status.code(), Some(7));
    assert_eq!(run.stdout_str(), "000 7");
    let server = answering(200, &[], b"");
    let run = fetch(&["-w", "[%{bogus}][%{num_redirects}]", &server.url("/")]);
    assert!(run.status.success());
    assert_eq!(run.stdout_str(), "[][]");
    assert!(run.stderr.contains("'bogus'") && run.stderr.contains("unknown"), "{}", run.stderr);
    assert!(run.stderr.contains("'num_redirects'") && run.stderr.contains("not supported"), "{}", run.stderr);
    let dir = temp_dir("write-out-file");
    let file = write_file(&dir, "fmt", b"code=%{http_code}");
    let run = fetch(&["-w", &format!("@{file}"), &server.url("/")]);
    assert_eq!(run.stdout_str(), "code=200");
}

#[test]
fn short_flags_take_attached_values_and_bundle() {
    let dir = temp_dir("attached");
    let file = dir.join("o.txt");
    let server = answering(200, &[("X-A", "b")], b"body");
    let out = format!("-o{}", file.to_str().unwrap());
    fetch(&["-XPATCH", "-da=1", "-HX-B: c", "-iso", file.to_str().unwrap(), &server.url("/")]).assert_success();
    let req = &server.received()[0];
    assert_eq!((req.method.as_str(), req.body.as_slice()), ("PATCH", &b"a=1"[..]));
    assert_eq!(req.header("x-b"), Some("c"));
    let written = std::fs::read(&file).unwrap();
    let (lines, body) = split_head(&written);
    assert_eq!((lines[0].as_str(), body), ("HTTP/1.1 200 OK", &b"body"[..]), "-iso FILE: -i, -s, -o FILE");
    std::fs::remove_file(&file).unwrap();
    fetch(&[&out, &server.url("/")]).assert_success();
    assert_eq!(std::fs::read(&file).unwrap(), b"body");
}

#[test]
fn help_lists_the_flags_and_exits_0() {
    for flag in ["-h", "--help"] {
        let run = fetch(&[flag]);
        run.assert_success();
        let help = run.stdout_str();
        for name in [
            "-A, --user-agent",
            "--cacert",
            "-E, --cert",
            "--connect-timeout",
            "-d, --data",
            "--data-binary",
            "--data-raw",
            "--data-urlencode",
            "-D, --dump-header",
            "-e, --referer",
            "--expect100-timeout",
            "-f, --fail",
            "--fail-with-body",
            "-G, --get",
            "-H, --header",
            "-I, --head",
            "-i, --include",
            "-k, --insecure",
            "-L, --location",
            "--max-redirs",
            "-m, --max-time",
            "-n, --count",
            "-o, --output",
            "-O, --remote-name",
            "--proto",
            "-s, --silent",
            "-S, --show-error",
            "--tlsv1.2",
            "--tlsv1.3",
            "-T, --upload-file",
            "-v, --verbose",
            "-w, --write-out",
            "-X, --request",
        ] {
            assert!(help.contains(name), "--help does not list {name}:\n{help}");
        }
    }
    let run = fetch(&["-V"]);
    run.assert_success();
    assert!(run.stdout_str().contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn url_errors_use_curls_exit_codes() {
    let run = fetch(&["ftp://127.0.0.1/"]);
    run.assert_failure_one_line();
    assert_eq!(run.status.code(), Some(1), "unsupported protocol: {}", run.stderr);
    for url in ["http://exa mple/", "http://"] {
        let run = fetch(&[url]);
        assert_eq!(run.status.code(), Some(3), "{url}: {}", run.stderr);
    }
}

#[test]
fn url_without_scheme_is_http() {
    let server = answering(200, &[], b"guessed");
    let run = fetch(&[&format!("127.0.0.1:{}/x", server.addr().port())]);
    run.assert_success();
    assert_eq!(run.stdout, b"guessed");
    assert_eq!(targets(&server), ["/x"]);
    let run = fetch(&["--url", &server.url("/y")]);
    run.assert_success();
}

#[test]
fn proto_https_refuses_http_with_exit_1() {
    let server = answering(200, &[], b"");
    let run = fetch(&["--proto", "=https", &server.url("/")]);
    run.assert_failure_one_line();
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    let run = fetch(&["--proto", "-http", &server.url("/")]);
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    assert_eq!(server.requests(), 0, "nothing may be sent");
    fetch(&["--proto", "-all,+http", &server.url("/")]).assert_success();
    assert_eq!(server.requests(), 1);
}

#[test]
fn broken_responses_use_curls_exit_codes() {
    let run = fetch(&[&raw_once(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf!").url("/")]);
    assert_eq!(run.status.code(), Some(18), "truncated body: {}", run.stderr);
    let run = fetch(&[&raw_once(b"SSH-2.0-OpenSSH_9.6\r\n\r\n").url("/")]);
    assert_eq!(run.status.code(), Some(8), "garbage: {}", run.stderr);
    let run = fetch(&[&raw_once(b"").url("/")]);
    assert_eq!(run.status.code(), Some(52), "empty reply: {}", run.stderr);
}

#[test]
fn timeout_alias_and_count_failures_keep_the_last_code() {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let server = Server::start(move |conn| {
        while conn.read_request().is_some() {
            if c.fetch_add(1, Ordering::SeqCst) == 0 {
                conn.respond(404, &[], b"a");
            } else {
                conn.respond(200, &[], b"b");
            }
        }
    });
    let run = fetch(&["-f", "-n", "2", "--timeout", "5", &server.url("/")]);
    assert_eq!(run.status.code(), Some(22), "the failed repetition sets the exit code: {}", run.stderr);
    assert_eq!(run.stdout, b"b");
}

// ---------------------------------------------------------------------------
// TLS flags
// ---------------------------------------------------------------------------

#[cfg(feature = "native-tls")]
mod tls {
    use super::*;

    use crate::tls_util::{Ca, TlsConfig, ok_server};
    use openssl::ssl::SslVersion;

    fn localhost(ca: &Ca) -> TlsConfig {
        TlsConfig::new(ca.server_cert(&["localhost", "127.0.0.1"]))
    }

    #[test]
    fn untrusted_certificate_exits_60_and_insecure_accepts_it() {
        let ca = Ca::new("fetch-cli untrusted");
        let server = ok_server(localhost(&ca), b"secret");
        let run = fetch(&[&server.url("/")]);
        run.assert_failure_one_line();
        assert_eq!(run.status.code(), Some(60), "{}", run.stderr);
        let run = fetch(&["-k", &server.url("/")]);
        run.assert_success();
        assert_eq!(run.stdout, b"secret");
    }

    #[test]
    fn cacert_and_curl_ca_bundle_are_trusted() {
        let ca = Ca::new("fetch-cli bundle");
        let server = ok_server(localhost(&ca), b"trusted");
        let dir = temp_dir("ca-bundle");
        let file = write_file(&dir, "ca.pem", ca.cert_pem.as_bytes());
        let run = fetch(&["--cacert", &file, &server.url("/")]);
        run.assert_success();
        assert_eq!(run.stdout, b"trusted");
        let run =
            fetch_with(&[&server.url("/")], Setup { env: vec![("CURL_CA_BUNDLE", file.clone())], ..Setup::default() });
        run.assert_success();
        assert_eq!(run.stdout, b"trusted");
        // --cacert replaces the bundle (and the system's roots), as in curl.
        let other = write_file(&dir, "other.pem", Ca::new("other").cert_pem.as_bytes());
        let setup = Setup { env: vec![("CURL_CA_BUNDLE", file)], ..Setup::default() };
        let run = fetch_with(&["--cacert", &other, &server.url("/")], setup);
        assert_eq!(run.status.code(), Some(60), "{}", run.stderr);
        let run = fetch(&["--cacert", "/nonexistent/ca.pem", &server.url("/")]);
        run.assert_failure_one_line();
        assert_eq!(run.status.code(), Some(77), "{}", run.stderr);
    }

    #[test]
    fn tls_minimum_version_flags() {
        let ca = Ca::new("fetch-cli versions");
        let mut config = localhost(&ca);
        config.max_version = Some(SslVersion::TLS1_2);
        let server = ok_server(config, b"tls12");
        let run = fetch(&["-k", "--tlsv1.3", &server.url("/")]);
        run.assert_failure_one_line();
        assert_eq!(run.status.code(), Some(35), "{}", run.stderr);
        let run = fetch(&["-k", "--tlsv1.2", &server.url("/")]);
        run.assert_success();
        assert_eq!(run.stdout, b"tls12");
    }

    #[test]
    fn cert_presents_a_client_identity() {
        let ca = Ca::new("fetch-cli client ca");
        let mut config = localhost(&ca);
        config.client_ca = Some(ca.cert_pem.clone());
        let server = ok_server(config, b"mutual");
        let client = ca.client_cert("client.test");
        let dir = temp_dir("client-cert");
        let both = write_file(&dir, "both.pem", format!("{}{}", client.cert_pem, client.key_pem).as_bytes());
        let cert = write_file(&dir, "cert.pem", client.cert_pem.as_bytes());
        let key = write_file(&dir, "key.pem", client.key_pem.as_bytes());
        let url = server.url("/");

        let run = fetch(&["-k", &url]);
        assert!(!run.status.success(), "the server requires a client certificate");
        let run = fetch(&["-k", "-E", &both, &url]);
        run.assert_success();
        assert_eq!(run.stdout, b"mutual");
        let run = fetch(&["-k", "--cert", &cert, "--key", &key, &url]);
        run.assert_success();
        let run = fetch(&["-k", "--cert", &cert, &url]);
        assert_eq!(run.status.code(), Some(58), "no key: {}", run.stderr);
        let run = fetch(&["-k", "-E", "/nonexistent/cert.pem", &url]);
        assert_eq!(run.status.code(), Some(58), "{}", run.stderr);
    }

    #[test]
    fn redirect_to_http_is_followed_unless_proto_forbids_it() {
        let plain = answering(200, &[], b"plain");
        let target = plain.url("/p");
        let ca = Ca::new("fetch-cli downgrade");
        let server = tls_util::TlsServer::start(localhost(&ca), move |conn| {
            while conn.read_request().is_some() {
                conn.respond(302, &[("Location", target.as_str())], b"");
            }
        });
        let run = fetch(&["-k", "-L", &server.url("/")]);
        run.assert_success();
        assert_eq!(run.stdout, b"plain", "curl follows https -> http");
        let run = fetch(&["-k", "-L", "--proto", "=https", &server.url("/")]);
        run.assert_failure_one_line();
        assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
        assert_eq!(plain.requests(), 1, "--proto =https sent a plain request");
    }

    #[test]
    fn connect_timeout_covers_a_stalled_tls_handshake() {
        // Accepts TCP, never answers the ClientHello.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let holder = thread::spawn(move || listener.accept().map(|(s, _)| s));
        let run = fetch(&["--connect-timeout", "0.3", &format!("https://127.0.0.1:{port}/")]);
        run.assert_failure_one_line();
        assert_eq!(run.status.code(), Some(28), "{}", run.stderr);
        assert!(run.elapsed >= Duration::from_millis(250), "gave up after {:?}", run.elapsed);
        assert!(run.elapsed < Duration::from_secs(3), "took {:?}", run.elapsed);
        drop(holder.join());
    }
}

// ---------------------------------------------------------------------------
// Proxies and authentication: -x, --noproxy, -U, -u, the environment
// ---------------------------------------------------------------------------

#[cfg(feature = "proxy")]
/// A forward proxy answering every request with the target and the
/// Proxy-Authorization it received.
fn echo_proxy() -> Server {
    Server::start(|conn| {
        while let Some(req) = conn.read_request() {
            let body = format!("proxied {} {}", req.target, req.header("proxy-authorization").unwrap_or("-"));
            conn.respond(200, &[], body.as_bytes());
        }
    })
}

#[cfg(feature = "proxy")]
fn env(pairs: &[(&'static str, String)]) -> Setup {
    Setup { env: pairs.to_vec(), ..Setup::default() }
}

#[cfg(feature = "proxy")]
#[test]
fn proxy_flag_sends_absolute_form_to_the_proxy() {
    let proxy = echo_proxy();
    let run = fetch(&["-x", &format!("http://{}", proxy.addr()), "http://origin.test:8080/p?q=1"]);
    run.assert_success();
    assert_eq!(run.stdout_str(), "proxied http://origin.test:8080/p?q=1 -");
    assert_eq!(proxy.received()[0].header("host"), Some("origin.test:8080"));
}

#[cfg(feature = "proxy")]
#[test]
fn proxy_user_flag_sends_proxy_credentials() {
    let proxy = echo_proxy();
    let run = fetch(&["-x", &format!("http://{}", proxy.addr()), "-U", "u:p", "http://origin.test/"]);
    run.assert_success();
    assert_eq!(run.stdout_str(), "proxied http://origin.test/ Basic dTpw");
}

#[cfg(feature = "proxy")]
#[test]
fn http_proxy_from_the_environment_is_honoured() {
    let proxy = echo_proxy();
    let run = fetch_with(&["http://origin.test/env"], env(&[("http_proxy", format!("http://{}", proxy.addr()))]));
    run.assert_success();
    assert_eq!(run.stdout_str(), "proxied http://origin.test/env -");
    // Upper case too, outside CGI.
    let run = fetch_with(&["http://origin.test/env"], env(&[("HTTP_PROXY", proxy.addr().to_string())]));
    run.assert_success();
    assert_eq!(run.stdout_str(), "proxied http://origin.test/env -");
}

#[cfg(feature = "proxy")]
#[test]
fn httpoxy_upper_case_http_proxy_is_ignored_in_a_cgi_program() {
    let proxy = echo_proxy();
    let origin = answering(200, &[], b"direct");
    let setup = env(&[("HTTP_PROXY", format!("http://{}", proxy.addr())), ("REQUEST_METHOD", "GET".into())]);
    let run = fetch_with(&[&origin.url("/")], setup);
    run.assert_success();
    assert_eq!(run.stdout_str(), "direct");
    assert_eq!(proxy.requests(), 0);
}

#[cfg(feature = "proxy")]
#[test]
fn noproxy_flag_and_empty_proxy_flag_go_direct() {
    let proxy = echo_proxy();
    let origin = answering(200, &[], b"direct");
    let via_env = || env(&[("http_proxy", format!("http://{}", proxy.addr())), ("no_proxy", "other.example".into())]);
    let run = fetch_with(&["--noproxy", "127.0.0.1", &origin.url("/")], via_env());
    run.assert_success();
    assert_eq!(run.stdout_str(), "direct");
    let run = fetch_with(&["-x", "", &origin.url("/")], via_env());
    run.assert_success();
    assert_eq!(run.stdout_str(), "direct");
    // Without either, the environment's proxy takes it (no_proxy does not list it).
    let run = fetch_with(&[&origin.url("/x")], via_env());
    run.assert_success();
    assert!(run.stdout_str().starts_with("proxied http://127.0.0.1:"), "{}", run.stdout_str());
    assert_eq!(origin.requests(), 2);
}

#[cfg(feature = "proxy")]
#[test]
fn unreachable_proxy_exits_7_naming_the_proxy_not_its_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let run = fetch(&["-x", &format!("http://u:hunter2@127.0.0.1:{port}"), "http://origin.test/"]);
    assert_eq!(run.status.code(), Some(7), "{}", run.stderr);
    run.assert_failure_one_line();
    assert!(run.stderr.contains(&format!("127.0.0.1:{port}")), "{}", run.stderr);
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
}

#[cfg(feature = "proxy")]
#[test]
fn bad_proxy_url_exits_5() {
    let run = fetch(&["-x", "ftp://proxy.example:21", "http://origin.test/"]);
    assert_eq!(run.status.code(), Some(5), "{}", run.stderr);
    assert!(run.stderr.contains("unsupported proxy scheme"), "{}", run.stderr);
}

fn auth_echo() -> Server {
    Server::start(|conn| {
        while let Some(req) = conn.read_request() {
            let body = req.header("authorization").unwrap_or("-").to_owned();
            conn.respond(200, &[], body.as_bytes());
        }
    })
}

#[test]
fn user_flag_and_url_credentials_send_basic_auth() {
    let server = auth_echo();
    let run = fetch(&["-u", "Aladdin:open sesame", &server.url("/")]);
    run.assert_success();
    assert_eq!(run.stdout_str(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    let url = format!("http://u:p%40ss@{}/", server.addr());
    let run = fetch(&[&url]);
    run.assert_success();
    assert_eq!(run.stdout_str(), "Basic dTpwQHNz", "percent-decoded password");
    // -u wins over the URL's credentials, as in curl.
    let run = fetch(&["-u", "a:b", &url]);
    run.assert_success();
    assert_eq!(run.stdout_str(), "Basic YTpi");
}
