//! Black-box tests of `examples/fetch.rs`: the binary runs as a process
//! (stdin null) against scripted raw-socket servers.
//!
//! Interface under test (issue 3, "Programs"):
//! `fetch [-X METHOD] [-H 'Name: value']... [-d BODY] [-i] [--timeout SECS] [-n COUNT] URL`.
//! Exit status 0 if and only if every request got a complete response (any
//! status); otherwise one line on stderr and a non-zero exit.

mod common;

use std::io::Read;
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

/// Runs `fetch ARGS...` under the test deadline.
fn fetch(args: &[&str]) -> Run {
    let bin = fetch_bin();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    common::with_deadline(DEADLINE, move || {
        let start = Instant::now();
        let mut child = Command::new(&bin)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
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

#[test]
fn redirect_is_followed_by_default() {
    let server = Server::start(|conn| {
        while let Some(req) = conn.read_request() {
            if req.target == "/old" {
                conn.respond(302, &[("Location", "/new")], b"redirect body, not printed");
            } else {
                conn.respond(200, &[], b"final");
            }
        }
    });
    let run = fetch(&[&server.url("/old")]);
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
    assert!(run.elapsed < Duration::from_secs(5), "took {:?}", run.elapsed);
    // The error and its cause, each once.
    assert!(run.stderr.starts_with(&format!("fetch: connect error (http://127.0.0.1:{port}/): ")), "{}", run.stderr);
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
    assert!(!run.status.success());
    assert!(!run.stderr.trim().is_empty(), "no usage message");
    assert!(run.stdout.is_empty());
}

#[test]
fn unknown_option_is_a_usage_error() {
    let run = fetch(&["--frobnicate", "http://127.0.0.1:1/"]);
    assert!(!run.status.success());
    assert!(!run.stderr.trim().is_empty());
}

#[test]
fn option_missing_its_value_is_a_usage_error() {
    let run = fetch(&["http://127.0.0.1:1/", "-X"]);
    assert!(!run.status.success());
    assert!(!run.stderr.trim().is_empty());
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
