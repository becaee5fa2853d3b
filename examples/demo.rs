//! The main job on an embedded server: many concurrent requests through one
//! shared [`Client`], with cancellations, client clones dropped mid-body and
//! connections closed under the pool's feet, every body checked byte for
//! byte.
//!
//! ```text
//! cargo run --release --example demo
//! ```
//!
//! # The server
//!
//! An in-process HTTP/1.1 server on `127.0.0.1:0`, one blocking thread per
//! connection. `GET /item/{id}?size=N&mode=M&close=C` answers with `N` bytes
//! derived from `id` (a seeded pseudo-random stream), framed by
//! Content-Length (`mode=length`), chunks of varied sizes (`mode=chunked`)
//! or the end of the connection (`mode=eof`), with the headers `x-id: {id}`
//! and `x-checksum: {FNV-1a 64 of the body, hex}`; `close=1` adds
//! `Connection: close`. `GET /stall` sleeps before answering. A connection
//! that sits idle for `SERVER_IDLE` between requests is closed by the
//! server, as real servers do, without telling the client; every other
//! connection is slow about it and, for `CLOSE_LAG` more, reads a request
//! that arrives and closes without answering it (the race between a
//! server's idle close and a client's reuse, made wide enough to hit).
//!
//! # The scenario
//!
//! `TASKS` tasks on a `smol::Executor`, driven on the main thread, each
//! send `REQUESTS_PER_TASK` requests through their clone of one client,
//! whose cap of `MAX_CONNECTIONS` is a quarter of the number of tasks, so
//! that checkouts sometimes wait their turn in the pool's queue (and now
//! and then a timeout fires there). What each request does is chosen
//! pseudo-randomly but deterministically from its task and index:
//!
//! - most read the whole body, which must verify: `x-id` is the id asked for
//!   (anything else is a *desync*: a response read from the wrong exchange),
//!   and the checksum of the bytes received equals both `x-checksum` and the
//!   checksum this program computes on its own for that id and size;
//! - ~8% read part of the body, check that prefix, and drop the response
//!   (a deliberate cancellation: the connection must be closed, not pooled);
//! - ~4% ask `/stall` with a tiny `timeout`, which must fail with
//!   [`ErrorKind::Timeout`] (a deliberate cancellation);
//! - ~5% send on a clone of the client, drop the clone while the body is
//!   half read, then read the rest, which must succeed and verify;
//! - ~3% first pause alone for longer than the server's idle timeout;
//! - at a few moments (`LULLS`) every task, once its current request is
//!   done, sends one more small keep-alive request and stops, so dozens of
//!   pooled connections go idle together; all resume just after the
//!   server's idle timeout, and the client must notice the connections the
//!   server closed (probe) and retry, safely and on a fresh connection, the
//!   requests the slow-closing connections dropped.
//!
//! At the end it prints a table and exits with status 1 if any request
//! failed unexpectedly, any response was desynced or corrupt, or the pool
//! still has a connection lent out.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use futures_lite::AsyncReadExt;
use smol::{Executor, Timer};
use smolreq::{Client, ErrorKind, Response};

/// Concurrent tasks sharing the client.
const TASKS: usize = 64;
/// Requests each task sends, one after the other.
const REQUESTS_PER_TASK: usize = 80;
/// The client's cap on connections to the one origin: fewer than the tasks,
/// so that checkouts sometimes wait in the pool's queue.
const MAX_CONNECTIONS: usize = 16;
/// How long the server keeps an idle keep-alive connection open.
const SERVER_IDLE: Duration = Duration::from_millis(120);
/// How long the server waits for the first request on a new connection,
/// and for the rest of a request once its first line has come.
const REQUEST_WAIT: Duration = Duration::from_secs(10);
/// Every other connection closes this much later than its idle timeout,
/// dropping any request that arrives in between.
const CLOSE_LAG: Duration = Duration::from_millis(60);
/// How long `/stall` waits before answering.
const STALL: Duration = Duration::from_millis(400);
/// The timeout of requests sent to `/stall`.
const TINY_TIMEOUT: Duration = Duration::from_millis(25);
/// Largest body served.
const MAX_BODY: usize = 256 * 1024;
/// Moments (after the start) when every task stops sending for about
/// [`SERVER_IDLE`], so that the pooled connections go stale all at once, or
/// are closed just as they are reused.
const LULLS: [Duration; 3] = [Duration::from_millis(300), Duration::from_millis(650), Duration::from_millis(1000)];
/// How long, at a lull, each task holds its last response before reading it.
const LULL_HOLD: Duration = Duration::from_millis(20);
/// If the demo has not finished by then, something hangs: say so and fail.
const WATCHDOG: Duration = Duration::from_secs(60);

fn main() {
    thread::spawn(|| {
        thread::sleep(WATCHDOG);
        eprintln!("demo: still running after {WATCHDOG:?}; a request or body read hangs");
        std::process::exit(2);
    });

    let addr = start_server().expect("start the loopback server");
    let client = Client::builder()
        .max_connections_per_host(MAX_CONNECTIONS)
        .max_idle_per_host(MAX_CONNECTIONS)
        .build()
        .expect("build the client");
    let base = format!("http://{addr}");

    let start = Instant::now();
    let ex = Executor::new();
    let tasks: Vec<_> = (0..TASKS).map(|task| ex.spawn(run_task(client.clone(), base.clone(), start, task))).collect();
    let tallies = smol::block_on(ex.run(async {
        let mut tallies = Vec::with_capacity(tasks.len());
        for task in tasks {
            tallies.push(task.await);
        }
        tallies
    }));
    let elapsed = start.elapsed();

    let total = tallies.into_iter().fold(Tally::default(), Tally::merge);
    let stats = client.pool_stats();
    let failures: u64 = total.failures.values().sum();
    let cancelled = total.half_read_drops + total.timeouts;

    let mut table = String::new();
    let mut row = |label: &str, value: String| {
        let _ = writeln!(table, "  {label:<40} {value}");
    };
    row("requests", total.requests.to_string());
    row("  of which sent as a lull begins", total.lull_requests.to_string());
    row("successes (verified bodies)", total.successes.to_string());
    row("  of which clone dropped mid-body", total.clone_drops.to_string());
    row("deliberate cancellations", cancelled.to_string());
    row("  half-read bodies dropped", total.half_read_drops.to_string());
    row("  timeouts (ErrorKind::Timeout)", total.timeouts.to_string());
    row("unexpected failures", failures.to_string());
    for (kind, count) in &total.failures {
        row(&format!("  {kind}"), count.to_string());
    }
    row("desyncs (wrong x-id)", total.desyncs.to_string());
    row("corrupt bodies (bad checksum)", total.corrupt.to_string());
    row("lone pauses past the server idle time", total.pauses.to_string());
    row("connections opened", stats.opened.to_string());
    row("connections reused", stats.reused.to_string());
    row("retries", stats.retried.to_string());
    row("discarded", stats.discarded.to_string());
    row("live at the end (opened - discarded)", (stats.opened - stats.discarded).to_string());
    row("idle at the end", stats.idle.to_string());
    row("leased at the end", stats.leased.to_string());
    row("body bytes verified", format!("{:.1} MiB", total.bytes as f64 / (1024.0 * 1024.0)));
    row("elapsed", format!("{:.2} s", elapsed.as_secs_f64()));
    println!("smolreq demo: {TASKS} tasks x {REQUESTS_PER_TASK} requests, one client, server at {addr}");
    print!("{table}");

    let accounted = total.successes + cancelled + failures + total.desyncs + total.corrupt;
    assert_eq!(accounted, total.requests, "every request has exactly one outcome");
    if failures > 0 || total.desyncs > 0 || total.corrupt > 0 || stats.leased != 0 {
        println!("FAILED");
        std::process::exit(1);
    }
    println!("OK");
}

// ---------------------------------------------------------------------------
// The client side

/// What one request does, besides being sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    /// Read and verify the whole body.
    Full,
    /// Read part of the body, then drop the response.
    HalfRead,
    /// Ask `/stall` with [`TINY_TIMEOUT`]; must time out.
    Timeout,
    /// Send on a clone, drop the clone mid-body, finish the body.
    CloneDrop,
}

/// Everything about one request, derived from its task and index alone
/// (but for the lull requests, whose `held_until` is a moment).
#[derive(Debug)]
struct Plan {
    id: u64,
    size: usize,
    mode: &'static str,
    close: bool,
    action: Action,
    /// If a lull begins before this request: how long to stop after the
    /// held responses are read.
    lull: Duration,
    /// Pause this long (alone) before the request.
    pause: Option<Duration>,
    /// Read the body only from then on.
    held_until: Option<Instant>,
}

impl Plan {
    fn new(task: usize, index: usize) -> Plan {
        let mut rng = Rng::new(((task as u64) << 32) | index as u64);
        let id = rng.next() >> 16; // unique in practice, and readable
        let action = match rng.below(100) {
            0..8 => Action::HalfRead,
            8..12 => Action::Timeout,
            12..17 => Action::CloneDrop,
            _ => Action::Full,
        };
        let size = match (action, rng.below(100)) {
            // Bodies cut short or read in two steps need some length.
            (Action::HalfRead | Action::CloneDrop, _) => 4096 + rng.below(MAX_BODY as u64 - 4096) as usize,
            (_, 0..5) => 0,
            (_, 5..45) => 1 + rng.below(1024) as usize,
            (_, 45..85) => 1024 + rng.below(31 * 1024) as usize,
            _ => 32 * 1024 + rng.below(MAX_BODY as u64 - 32 * 1024 + 1) as usize,
        };
        let mode = match rng.below(100) {
            0..60 => "length",
            60..95 => "chunked",
            _ => "eof",
        };
        let close = rng.below(100) < 10;
        let lull = SERVER_IDLE + Duration::from_millis(10) + jitter(&mut rng, 20);
        let pause = (rng.below(100) < 3).then(|| Duration::from_millis(150) + jitter(&mut rng, 100));
        Plan { id, size, mode, close, action, lull, pause, held_until: None }
    }

    /// The request a task sends when it notices a lull: a small body on a
    /// connection kept alive, read to its end after `held_until`.
    fn keep_alive(task: usize, index: usize, held_until: Instant) -> Plan {
        let mut rng = Rng::new(!(((task as u64) << 32) | index as u64));
        let id = rng.next() >> 16;
        let size = rng.below(1024) as usize;
        let (mode, close, action, lull, pause) = ("length", false, Action::Full, Duration::ZERO, None);
        Plan { id, size, mode, close, action, lull, pause, held_until: Some(held_until) }
    }

    fn url(&self, base: &str) -> String {
        match self.action {
            Action::Timeout => format!("{base}/stall"),
            _ => {
                format!("{base}/item/{}?size={}&mode={}&close={}", self.id, self.size, self.mode, u8::from(self.close))
            }
        }
    }
}

/// Counts of what happened, per task and then in total.
#[derive(Debug, Default)]
struct Tally {
    requests: u64,
    successes: u64,
    clone_drops: u64,
    half_read_drops: u64,
    timeouts: u64,
    failures: BTreeMap<String, u64>,
    desyncs: u64,
    corrupt: u64,
    pauses: u64,
    lull_requests: u64,
    bytes: u64,
}

impl Tally {
    fn merge(mut self, other: Tally) -> Tally {
        self.requests += other.requests;
        self.successes += other.successes;
        self.clone_drops += other.clone_drops;
        self.half_read_drops += other.half_read_drops;
        self.timeouts += other.timeouts;
        for (kind, count) in other.failures {
            *self.failures.entry(kind).or_default() += count;
        }
        self.desyncs += other.desyncs;
        self.corrupt += other.corrupt;
        self.pauses += other.pauses;
        self.lull_requests += other.lull_requests;
        self.bytes += other.bytes;
        self
    }

    /// Counts the outcome of one request.
    fn record(&mut self, plan: &Plan, outcome: Result<u64, Failure>) {
        self.requests += 1;
        match outcome {
            Ok(bytes) => match plan.action {
                Action::Full | Action::CloneDrop => {
                    self.successes += 1;
                    self.bytes += bytes;
                    self.clone_drops += u64::from(plan.action == Action::CloneDrop);
                }
                Action::HalfRead => self.half_read_drops += 1,
                Action::Timeout => self.timeouts += 1,
            },
            Err(Failure::Desync { expected, got }) => {
                eprintln!("desync: asked for id {expected}, got {got:?} ({plan:?})");
                self.desyncs += 1;
            }
            Err(Failure::Corrupt { id }) => {
                eprintln!("corrupt body for id {id} ({plan:?})");
                self.corrupt += 1;
            }
            Err(Failure::Unexpected { kind, detail }) => {
                eprintln!("unexpected failure: {detail} ({plan:?})");
                *self.failures.entry(kind).or_default() += 1;
            }
        }
    }
}

/// How a request ended, when it did not end as planned.
#[derive(Debug)]
enum Failure {
    /// The response answered another request.
    Desync { expected: u64, got: Option<u64> },
    /// The bytes received are not the bytes sent, or not the bytes meant.
    Corrupt { id: u64 },
    /// An error, or an outcome the plan rules out: what to count it as (the
    /// error kind), and what to tell about it.
    Unexpected { kind: String, detail: String },
}

impl Failure {
    fn unexpected(what: &str) -> Failure {
        Failure::Unexpected { kind: what.to_owned(), detail: what.to_owned() }
    }
}

impl From<smolreq::Error> for Failure {
    fn from(err: smolreq::Error) -> Failure {
        Failure::Unexpected { kind: format!("{:?}", err.kind()), detail: err.to_string() }
    }
}

impl From<io::Error> for Failure {
    /// A body read error carries the smolreq error inside the `io::Error`.
    fn from(err: io::Error) -> Failure {
        let kind = err.get_ref().and_then(|e| e.downcast_ref::<smolreq::Error>()).map_or(ErrorKind::Io, |e| e.kind());
        Failure::Unexpected { kind: format!("{kind:?}"), detail: format!("body: {err}") }
    }
}

/// One task: its share of the requests, in order.
async fn run_task(client: Client, base: String, start: Instant, task: usize) -> Tally {
    let mut tally = Tally::default();
    let mut lulls = LULLS.iter().peekable();
    for index in 0..REQUESTS_PER_TASK {
        let plan = Plan::new(task, index);
        if let Some(&lull) = lulls.next_if(|&&lull| start.elapsed() >= lull) {
            // Every task stops about now. Each first sends a small
            // keep-alive request and holds the response until all have
            // theirs (so each is on its own connection), then reads it to
            // the end: dozens of connections go idle together. Then the
            // server's idle timeout passes.
            let held_until = start + lull + LULL_HOLD;
            let calm = Plan::keep_alive(task, index, held_until);
            tally.lull_requests += 1;
            tally.record(&calm, run_request(&client, &base, &calm).await);
            Timer::at(held_until + plan.lull).await;
        }
        if let Some(pause) = plan.pause {
            tally.pauses += 1;
            Timer::after(pause).await;
        }
        tally.record(&plan, run_request(&client, &base, &plan).await);
    }
    tally
}

/// Runs one request as planned; on success, the number of body bytes
/// verified.
async fn run_request(client: &Client, base: &str, plan: &Plan) -> Result<u64, Failure> {
    let url = plan.url(base);
    match plan.action {
        Action::Full => {
            let resp = client.get(&url).send().await?;
            let head = Head::check(&resp, plan)?;
            if let Some(until) = plan.held_until {
                Timer::at(until).await;
            }
            let body = resp.bytes().await?;
            head.verify(&body, plan)
        }
        Action::HalfRead => {
            let mut resp = client.get(&url).send().await?;
            Head::check(&resp, plan)?;
            let mut part = vec![0; plan.size / 2];
            let mut got = 0;
            while got < part.len() {
                match resp.read(&mut part[got..]).await? {
                    0 => return Err(Failure::unexpected("body ended early")),
                    n => got += n,
                }
            }
            if part != body_for(plan.id, plan.size)[..part.len()] {
                return Err(Failure::Corrupt { id: plan.id });
            }
            drop(resp); // half read: the connection must be closed, not pooled
            Ok(0)
        }
        Action::Timeout => match client.get(&url).timeout(TINY_TIMEOUT).send().await {
            Err(err) if err.kind() == ErrorKind::Timeout => Ok(0),
            Err(err) => Err(err.into()),
            Ok(_) => Err(Failure::unexpected("/stall answered within the timeout")),
        },
        Action::CloneDrop => {
            let clone = client.clone();
            let mut resp = clone.get(&url).send().await?;
            let head = Head::check(&resp, plan)?;
            let mut body = vec![0; plan.size / 3];
            resp.read_exact(&mut body).await?;
            drop(clone); // the response keeps the pool alive on its own
            resp.read_to_end(&mut body).await?;
            head.verify(&body, plan)
        }
    }
}

/// What the response head claims about the body.
struct Head {
    checksum: Option<u64>,
}

impl Head {
    /// Checks status and `x-id` (a wrong id is a desync).
    fn check(resp: &Response, plan: &Plan) -> Result<Head, Failure> {
        let header = |name: &str, radix: u32| {
            let value = resp.headers().get(name)?.to_str().ok()?;
            u64::from_str_radix(value, radix).ok()
        };
        let id = header("x-id", 10);
        if id != Some(plan.id) {
            return Err(Failure::Desync { expected: plan.id, got: id });
        }
        if resp.status() != smolreq::StatusCode::OK {
            return Err(Failure::unexpected(&format!("status {}", resp.status())));
        }
        Ok(Head { checksum: header("x-checksum", 16) })
    }

    /// Checks the body against `x-checksum` and against our own checksum.
    fn verify(&self, body: &[u8], plan: &Plan) -> Result<u64, Failure> {
        let received = fnv1a64(body);
        let expected = fnv1a64(&body_for(plan.id, plan.size));
        if body.len() != plan.size || self.checksum != Some(received) || received != expected {
            return Err(Failure::Corrupt { id: plan.id });
        }
        Ok(body.len() as u64)
    }
}

// ---------------------------------------------------------------------------
// The server side

/// Starts the server on a free loopback port. Its threads are detached:
/// they end with the process.
fn start_server() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || {
        for (n, stream) in listener.incoming().flatten().enumerate() {
            thread::spawn(move || {
                // Errors (timeouts, resets) just end the connection.
                let _ = serve(stream, n % 2 == 1);
            });
        }
    });
    Ok(addr)
}

/// Serves requests on one connection until the client closes it, a
/// response says `Connection: close`, or it sits idle for [`SERVER_IDLE`]
/// after a response (plus [`CLOSE_LAG`] if `slow_close`).
fn serve(stream: TcpStream, slow_close: bool) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut line = String::new();
    let mut response = Vec::new();
    // A new connection's first request may be slow to come (the client's
    // task may wait its turn on the executor after connecting); only the
    // wait between requests is the short keep-alive idle time.
    let mut idle_wait = REQUEST_WAIT;
    loop {
        writer.set_read_timeout(Some(idle_wait))?;
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if slow_close && matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                // The server has decided to close, but takes CLOSE_LAG to
                // do it: a request arriving meanwhile is read and dropped
                // unanswered (the race every keep-alive client must survive
                // by retrying, here made wide enough to hit).
                writer.set_read_timeout(Some(CLOSE_LAG))?;
                let _ = reader.read_line(&mut line);
                return Ok(());
            }
            Err(e) => return Err(e), // idle timeout: close now
        }
        writer.set_read_timeout(Some(REQUEST_WAIT))?;
        let target = line.split(' ').nth(1).unwrap_or("/").to_owned();
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
        }
        response.clear();
        let keep_open = if target == "/stall" {
            thread::sleep(STALL);
            response.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nstalled");
            true
        } else {
            render_item(&target, &mut response)
        };
        writer.write_all(&response)?;
        if !keep_open {
            return Ok(());
        }
        idle_wait = SERVER_IDLE;
    }
}

/// Writes the response to `GET /item/{id}?size=N&mode=M&close=C` into
/// `out`; false if the connection must close after it.
fn render_item(target: &str, out: &mut Vec<u8>) -> bool {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let Some(id) = path.strip_prefix("/item/").and_then(|id| id.parse::<u64>().ok()) else {
        out.extend_from_slice(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
        return true;
    };
    let param = |name: &str| query.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='));
    let size = param("size").and_then(|s| s.parse::<usize>().ok()).unwrap_or(0).min(MAX_BODY);
    let mode = param("mode").unwrap_or("length");
    let close = param("close") == Some("1") || mode == "eof";

    let body = body_for(id, size);
    let mut head = format!("HTTP/1.1 200 OK\r\nx-id: {id}\r\nx-checksum: {:016x}\r\n", fnv1a64(&body));
    head.push_str("content-type: application/octet-stream\r\n");
    if close {
        head.push_str("connection: close\r\n");
    }
    match mode {
        "chunked" => head.push_str("transfer-encoding: chunked\r\n\r\n"),
        "eof" => head.push_str("\r\n"),
        _ => {
            let _ = write!(head, "content-length: {size}\r\n\r\n");
        }
    }
    out.extend_from_slice(head.as_bytes());
    if mode == "chunked" {
        // Chunks of varied sizes, in lower- or upper-case hex.
        let mut rng = Rng::new(id ^ 0xc4c4);
        let mut rest = &body[..];
        while !rest.is_empty() {
            let n = (1 + rng.below(32 * 1024) as usize).min(rest.len());
            let size_line = if rng.below(2) == 0 { format!("{n:x}\r\n") } else { format!("{n:X}\r\n") };
            out.extend_from_slice(size_line.as_bytes());
            out.extend_from_slice(&rest[..n]);
            out.extend_from_slice(b"\r\n");
            rest = &rest[n..];
        }
        out.extend_from_slice(b"0\r\n\r\n");
    } else {
        out.extend_from_slice(&body);
    }
    !close
}

// ---------------------------------------------------------------------------
// Shared by both sides: the content of an item, its checksum, randomness

/// The `size` bytes of item `id`: a pseudo-random stream seeded by `id`.
fn body_for(id: u64, size: usize) -> Vec<u8> {
    let mut rng = Rng::new(id);
    let mut body = Vec::with_capacity(size + 8);
    while body.len() < size {
        body.extend_from_slice(&rng.next().to_le_bytes());
    }
    body.truncate(size);
    body
}

/// FNV-1a, 64 bits.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A duration of `0..=max_ms` milliseconds.
fn jitter(rng: &mut Rng, max_ms: u64) -> Duration {
    Duration::from_millis(rng.below(max_ms + 1))
}

/// SplitMix64: small, fast, and good enough to pick test cases.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
