//! The loopback server every client talks to: one thread per connection,
//! blocking I/O, prebuilt responses. It parses no more than it must: the
//! request line's path, and Content-Length to skip a request body.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The 13-byte body of workloads (a), (b), (e) and (f).
pub const SMALL_BODY: &[u8] = b"Hello, world!";
/// Body size of workload (c).
pub const BIG_LEN: usize = 1 << 20;
/// Decoded body size of workload (d), sent as `CHUNKS` chunks.
pub const CHUNKED_LEN: usize = 64 << 10;
const CHUNKS: usize = 8;
/// Request body size of workload (e).
pub const POST_LEN: usize = 4 << 10;

/// What the server does with a connection between requests.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// Keep it open until the client closes it.
    KeepAlive,
    /// Workload (f): once the connection has been idle for `idle`, stop
    /// reading, and close it `fin_delay` later. A request that arrives in
    /// between is never read (the close then sends a reset).
    IdleClose { idle: Duration, fin_delay: Duration },
}

/// A running server; its threads live as long as the process.
pub struct Server {
    pub port: u16,
    accepted: Arc<AtomicU64>,
}

impl Server {
    pub fn start(mode: Mode) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = accepted.clone();
        std::thread::Builder::new()
            .name(format!("accept-{port}"))
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    counter.fetch_add(1, Relaxed);
                    std::thread::spawn(move || serve(stream, mode));
                }
            })
            .expect("spawn the accept thread");
        Server { port, accepted }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Relaxed)
    }
}

/// The full response (head and body) for a request path.
pub fn response(path: &[u8]) -> &'static [u8] {
    static RESPONSES: OnceLock<[Vec<u8>; 4]> = OnceLock::new();
    let [small, big, chunked, not_found] = RESPONSES.get_or_init(|| {
        let head = |kind: &str, framing: &str| {
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\n{framing}\r\ndate: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\n"
            )
            .into_bytes()
        };
        let mut small = head("text/plain", &format!("content-length: {}", SMALL_BODY.len()));
        small.extend_from_slice(SMALL_BODY);
        let mut big = head("application/octet-stream", &format!("content-length: {BIG_LEN}"));
        big.extend((0..BIG_LEN).map(|i| (i % 251) as u8));
        let mut chunked = head("application/octet-stream", "transfer-encoding: chunked");
        let chunk = CHUNKED_LEN / CHUNKS;
        for c in 0..CHUNKS {
            chunked.extend_from_slice(format!("{chunk:x}\r\n").as_bytes());
            chunked.extend((0..chunk).map(|i| ((c * chunk + i) % 251) as u8));
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let not_found = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec();
        [small, big, chunked, not_found]
    });
    match path {
        b"/small" | b"/post" => small,
        b"/big" => big,
        b"/chunked" => chunked,
        _ => not_found,
    }
}

fn serve(mut stream: TcpStream, mode: Mode) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 64 << 10];
    let (mut start, mut end) = (0, 0);
    loop {
        let head_end = loop {
            if let Some(i) = find(&buf[start..end], b"\r\n\r\n") {
                break start + i + 4;
            }
            if start == end {
                (start, end) = (0, 0);
                if let Mode::IdleClose { idle, fin_delay } = mode
                    && !readable_within(&stream, idle)
                {
                    std::thread::sleep(fin_delay);
                    return; // unread bytes make this close a reset
                }
            } else if end == buf.len() {
                if start == 0 {
                    return; // a request head larger than the buffer
                }
                buf.copy_within(start..end, 0);
                (start, end) = (0, end - start);
            }
            match stream.read(&mut buf[end..]) {
                Ok(0) | Err(_) => return,
                Ok(n) => end += n,
            }
        };
        let (path, content_length) = parse_head(&buf[start..head_end]);
        let response = response(path);
        start = head_end;
        // Skip the request body: first what is buffered, then the rest.
        let buffered = content_length.min(end - start);
        start += buffered;
        let mut left = content_length - buffered;
        while left > 0 {
            let want = left.min(buf.len());
            match stream.read(&mut buf[..want]) {
                Ok(0) | Err(_) => return,
                Ok(n) => left -= n,
            }
        }
        if stream.write_all(response).is_err() {
            return;
        }
    }
}

/// The request path and Content-Length (0 when absent).
fn parse_head(head: &[u8]) -> (&[u8], usize) {
    let mut parts = head.split(|&b| b == b' ');
    let path = parts.nth(1).unwrap_or(b"");
    let mut content_length = 0;
    for line in head.split(|&b| b == b'\n') {
        if line.len() > 15 && line[..15].eq_ignore_ascii_case(b"content-length:") {
            let value = std::str::from_utf8(&line[15..]).unwrap_or("").trim();
            content_length = value.parse().unwrap_or(0);
        }
    }
    (path, content_length)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Waits up to `timeout` for the socket to become readable (data or EOF).
fn readable_within(stream: &TcpStream, timeout: Duration) -> bool {
    let mut fds = libc::pollfd { fd: stream.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let ms = timeout.as_millis() as libc::c_int;
    loop {
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut fds, 1, ms) };
        if n >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return n > 0;
        }
    }
}
