//! The seed scenario behind a real nginx reverse proxy (issue 7, part 1).
//!
//! Ignored by default (it needs nginx); `.ci/run` installs nginx-light and
//! runs it in release with `cargo test --release --test nginx_seed -- --ignored --nocapture`.
//!
//! nginx listens on a free loopback port with a short keep-alive timeout
//! toward the client (`keepalive_timeout 1s`, no `Keep-Alive` header, so
//! the client cannot know it) and keeps connections to an in-process
//! upstream (`keepalive 32`). The upstream answers `GET /item/{id}` with a
//! body of the asked size and framing (Content-Length, chunked, or ended by
//! close), carrying `x-id` and `x-checksum`.
//!
//! One shared [`Client`], 64 tasks, 20,000 requests. Each request,
//! pseudo-randomly but reproducibly: reads and verifies its whole body;
//! reads half of it and drops the response; is cancelled by a short timeout
//! (before the head or in the middle of the body); is sent on an extra
//! client handle that is dropped halfway through the body; or first pauses
//! across nginx's idle timeout. Four times, every task stops together and
//! the whole pool sits idle around nginx's idle timeout (three times at its
//! edge) before traffic resumes.
//!
//! Pass: no unexpected failure, no 502/504, no desync or checksum mismatch,
//! `pool_stats().leased == 0` at the end, and the process's open file
//! descriptors back to their baseline once everything is dropped.
//!
//! The same plans then run through reqwest (on a tokio current-thread
//! runtime, 64 tasks), behind a fresh nginx and upstream, for comparison.
//! nginx logs the serial number of the client connection of every request
//! (`$connection`), so both clients' connections are counted the same way,
//! on the server side; smolreq must open at most as many as reqwest (with
//! 0 failures and 0 desyncs for both).

mod common;
#[path = "common/nginx.rs"]
mod nginx;
#[path = "common/seed.rs"]
mod seed;

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, echo_ok_server, open_fds, with_deadline};
use futures_lite::AsyncReadExt;
use seed::{Framing, ItemQuery, Rng, body_for, body_is_exact, item_head, item_wire_body};
use smol::Timer;
use smol::lock::Barrier;
use smolreq::{Client, ErrorKind, PoolStats};

const TASKS: usize = 64;
const REQUESTS: usize = 20_000;
const MAX_BODY: u64 = 128 * 1024;
/// nginx's keep-alive timeout toward the client.
const NGINX_IDLE: Duration = Duration::from_secs(1);
/// Requests at which every task stops together, and for how long the pool
/// then sits idle: around nginx's idle timeout (connections went idle a
/// little before the stop, so some expire just as they are reused), and
/// past it.
const LULLS: [(usize, Duration); 4] = [
    (60, Duration::from_millis(950)),
    (120, Duration::from_millis(990)),
    (180, Duration::from_millis(1020)),
    (240, Duration::from_millis(1400)),
];
/// How long `/stall` waits before answering, and the timeout that cancels it.
const STALL: Duration = Duration::from_millis(300);
const TINY_TIMEOUT: Duration = Duration::from_millis(30);
/// A body that stalls halfway for `BODY_STALL_MS`, cancelled by `BODY_TIMEOUT`.
const BODY_STALL_MS: u64 = 400;
const BODY_TIMEOUT: Duration = Duration::from_millis(150);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Full,
    HalfRead,
    /// `/stall` with a tiny timeout: cancelled before the head.
    Timeout,
    /// A body that stalls halfway, with a short timeout: cancelled mid-body.
    BodyTimeout,
    /// Sent on a clone of the client that is dropped halfway through the body.
    CloneDrop,
}

#[derive(Debug)]
struct Plan {
    query: ItemQuery,
    action: Action,
    pause: Option<Duration>,
}

impl Plan {
    fn new(task: usize, index: usize) -> Plan {
        let mut rng = Rng::new(((task as u64) << 32) | index as u64 | (0x5eed << 48));
        let id = ((task as u64) << 20) | index as u64;
        let action = match rng.below(100) {
            0..8 => Action::HalfRead,
            8..12 => Action::Timeout,
            12..14 => Action::BodyTimeout,
            14..19 => Action::CloneDrop,
            _ => Action::Full,
        };
        let size = match (action, rng.below(100)) {
            (Action::HalfRead | Action::CloneDrop | Action::BodyTimeout, _) => {
                16 * 1024 + rng.below(MAX_BODY - 16 * 1024)
            }
            (_, 0..5) => 0,
            (_, 5..45) => 1 + rng.below(1024),
            (_, 45..85) => 1024 + rng.below(31 * 1024),
            _ => 32 * 1024 + rng.below(MAX_BODY - 32 * 1024 + 1),
        } as usize;
        let framing = match rng.below(100) {
            0..60 => Framing::Length,
            60..95 => Framing::Chunked,
            _ => Framing::Eof,
        };
        let stall_ms = if action == Action::BodyTimeout { BODY_STALL_MS } else { 0 };
        let pause = rng.chance(1).then(|| NGINX_IDLE + Duration::from_millis(50 + rng.below(400)));
        Plan { query: ItemQuery { id, size, framing, stall_ms }, action, pause }
    }
}

#[derive(Debug, Default)]
struct Tally {
    requests: u64,
    verified: u64,
    clone_drops: u64,
    half_read_drops: u64,
    timeouts: u64,
    body_timeouts: u64,
    late_answers: u64,
    pauses: u64,
    bytes: u64,
    unexpected: BTreeMap<String, u64>,
    statuses: BTreeMap<u16, u64>,
    desyncs: u64,
    mismatches: u64,
}

impl Tally {
    fn merge(mut self, o: Tally) -> Tally {
        self.requests += o.requests;
        self.verified += o.verified;
        self.clone_drops += o.clone_drops;
        self.half_read_drops += o.half_read_drops;
        self.timeouts += o.timeouts;
        self.body_timeouts += o.body_timeouts;
        self.late_answers += o.late_answers;
        self.pauses += o.pauses;
        self.bytes += o.bytes;
        self.desyncs += o.desyncs;
        self.mismatches += o.mismatches;
        for (k, v) in o.unexpected {
            *self.unexpected.entry(k).or_default() += v;
        }
        for (k, v) in o.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        self
    }
}

enum Outcome {
    Verified(u64),
    HalfRead,
    Timeout,
    BodyTimeout,
    /// A cancellable request whose answer came after its deadline, before
    /// its task was polled again (a starved executor thread): accepted
    /// when the body is exact, and counted.
    LateAnswer,
    Status(u16),
    Desync,
    Mismatch,
    Unexpected(String, String),
}

fn unexpected_err(err: &smolreq::Error) -> Outcome {
    Outcome::Unexpected(format!("{:?}", err.kind()), err.to_string())
}

fn unexpected_io(err: &io::Error) -> Outcome {
    let kind = err.get_ref().and_then(|e| e.downcast_ref::<smolreq::Error>()).map_or(ErrorKind::Io, |e| e.kind());
    Outcome::Unexpected(format!("{kind:?}"), format!("body: {err}"))
}

fn io_kind(err: &io::Error) -> Option<ErrorKind> {
    err.get_ref().and_then(|e| e.downcast_ref::<smolreq::Error>()).map(|e| e.kind())
}

/// Status and `x-id` first: a wrong id is a desync.
fn check_head(status: u16, headers: &http::HeaderMap, q: &ItemQuery) -> Result<(), Outcome> {
    if status != 200 {
        return Err(Outcome::Status(status));
    }
    let id = headers.get("x-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if id != Some(q.id) { Err(Outcome::Desync) } else { Ok(()) }
}

fn checksum(headers: &http::HeaderMap) -> Option<String> {
    headers.get("x-checksum").and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// The client a run drives: the same plans, written the usual way for each.
#[derive(Clone, Debug)]
enum Driver {
    Smolreq(Client),
    Reqwest(reqwest::Client),
}

async fn run_request(driver: &Driver, base: &str, plan: &Plan) -> Outcome {
    match driver {
        Driver::Smolreq(client) => run_smolreq(client, base, plan).await,
        Driver::Reqwest(client) => run_reqwest(client, base, plan).await,
    }
}

async fn run_smolreq(client: &Client, base: &str, plan: &Plan) -> Outcome {
    let q = &plan.query;
    let url = format!("{base}{}", q.target());
    match plan.action {
        Action::Full => {
            let resp = match client.get(&url).send().await {
                Ok(r) => r,
                Err(e) => return unexpected_err(&e),
            };
            if let Err(o) = check_head(resp.status().as_u16(), resp.headers(), q) {
                return o;
            }
            let sum = checksum(resp.headers());
            match resp.bytes().await {
                Ok(body) if body_is_exact(q.id, q.size, sum.as_deref(), &body) => Outcome::Verified(body.len() as u64),
                Ok(_) => Outcome::Mismatch,
                Err(e) => unexpected_err(&e),
            }
        }
        Action::HalfRead => {
            let mut resp = match client.get(&url).send().await {
                Ok(r) => r,
                Err(e) => return unexpected_err(&e),
            };
            if let Err(o) = check_head(resp.status().as_u16(), resp.headers(), q) {
                return o;
            }
            let mut part = vec![0; q.size / 2];
            if let Err(e) = resp.read_exact(&mut part).await {
                return unexpected_io(&e);
            }
            if part != body_for(q.id, q.size)[..part.len()] {
                return Outcome::Mismatch;
            }
            // Half read: the connection is pooled only if the rest has
            // already arrived (the drain on drop), else closed.
            drop(resp);
            Outcome::HalfRead
        }
        Action::Timeout => {
            let url = format!("{base}/stall?id={}", q.id);
            let sent = Instant::now();
            match client.get(&url).timeout(TINY_TIMEOUT).send().await {
                Err(e) if e.kind() == ErrorKind::Timeout => Outcome::Timeout,
                Err(e) => unexpected_err(&e),
                // The deadline is enforced while waiting: a task this
                // executor polls only after the answer came may see it.
                Ok(_) if sent.elapsed() >= STALL => Outcome::LateAnswer,
                Ok(_) => Outcome::Unexpected("no timeout".into(), "/stall answered within the timeout".into()),
            }
        }
        Action::BodyTimeout => {
            let sent = Instant::now();
            let resp = match client.get(&url).timeout(BODY_TIMEOUT).send().await {
                Ok(r) => r,
                // nginx may hold the head until its first buffer fills.
                Err(e) if e.kind() == ErrorKind::Timeout => return Outcome::BodyTimeout,
                Err(e) => return unexpected_err(&e),
            };
            if let Err(o) = check_head(resp.status().as_u16(), resp.headers(), q) {
                return o;
            }
            let sum = checksum(resp.headers());
            match resp.bytes().await {
                Err(e) if e.kind() == ErrorKind::Timeout => Outcome::BodyTimeout,
                Err(e) => unexpected_err(&e),
                Ok(body) if sent.elapsed() >= Duration::from_millis(BODY_STALL_MS) => {
                    if body_is_exact(q.id, q.size, sum.as_deref(), &body) {
                        Outcome::LateAnswer
                    } else {
                        Outcome::Mismatch
                    }
                }
                Ok(_) => Outcome::Unexpected("no timeout".into(), "stalled body finished within the timeout".into()),
            }
        }
        Action::CloneDrop => {
            let clone = client.clone();
            let mut resp = match clone.get(&url).send().await {
                Ok(r) => r,
                Err(e) => return unexpected_err(&e),
            };
            if let Err(o) = check_head(resp.status().as_u16(), resp.headers(), q) {
                return o;
            }
            let sum = checksum(resp.headers());
            let mut body = vec![0; q.size / 2];
            if let Err(e) = resp.read_exact(&mut body).await {
                return unexpected_io(&e);
            }
            drop(clone); // the response keeps the pool alive on its own
            if let Err(e) = resp.read_to_end(&mut body).await {
                return match io_kind(&e) {
                    Some(k) => Outcome::Unexpected(format!("{k:?}"), format!("body: {e}")),
                    None => unexpected_io(&e),
                };
            }
            if body_is_exact(q.id, q.size, sum.as_deref(), &body) {
                Outcome::Verified(body.len() as u64)
            } else {
                Outcome::Mismatch
            }
        }
    }
}

fn reqwest_err(err: &reqwest::Error) -> Outcome {
    let kind = if err.is_timeout() {
        "Timeout"
    } else if err.is_connect() {
        "Connect"
    } else if err.is_body() || err.is_decode() {
        "Body"
    } else if err.is_request() {
        "Request"
    } else {
        "Other"
    };
    Outcome::Unexpected(kind.into(), format!("{err:?}"))
}

/// Reads chunks of `resp` into `out` until it holds at least `len` bytes or
/// the body ends.
async fn reqwest_read_to(resp: &mut reqwest::Response, out: &mut Vec<u8>, len: usize) -> Result<(), reqwest::Error> {
    while out.len() < len {
        match resp.chunk().await? {
            Some(chunk) => out.extend_from_slice(&chunk),
            None => break,
        }
    }
    Ok(())
}

/// [`run_smolreq`] written against reqwest.
async fn run_reqwest(client: &reqwest::Client, base: &str, plan: &Plan) -> Outcome {
    let q = &plan.query;
    let url = format!("{base}{}", q.target());
    match plan.action {
        Action::Full => {
            let resp = match client.get(&url).send().await {
                Ok(r) => r,
                Err(e) => return reqwest_err(&e),
            };
            if let Err(o) = check_head(resp.status().as_u16(), resp.headers(), q) {
                return o;
            }
            let sum = checksum(resp.headers());
            match resp.bytes().await {
                Ok(body) if body_is_exact(q.id, q.size, sum.as_deref(), &body) => Outcome::Verified(body.len() as u64),
                Ok(_) => Outcome::Mismatch,
                Err(e) => reqwest_err(&e),
            }
        }
        Action::HalfRead => {
            let mut resp = match client.get(&url).send().await {
                Ok(r) => r,
                Err(e) => return reqwest_err(&e),
            };
            if let Err(o) = check_head(resp.status().as_u16(), resp.headers(), q) {
                return o;
            }
            let mut part = Vec::new();
            if let Err(e) = reqwest_read_to(&mut resp, &mut part, q.size / 2).await {
                return reqwest_err(&e);
            }
            let expected = body_for(q.id, q.size);
            if part.len() < q.size / 2 || part.len() > q.size || part[..] != expected[..part.len()] {
                return Outcome::Mismatch;
            }
            drop(resp);
            Outcome::HalfRead
        }
        Action::Timeout => {
            let url = format!("{base}/stall?id={}", q.id);
            let sent = Instant::now();
            match client.get(&url).timeout(TINY_TIMEOUT).send().await {
                Err(e) if e.is_timeout() => Outcome::Timeout,
                Err(e) => reqwest_err(&e),
                Ok(_) if sent.elapsed() >= STALL => Outcome::LateAnswer,
                Ok(_) => Outcome::Unexpected("no timeout".into(), "/stall answered within the timeout".into()),
            }
        }
        Action::BodyTimeout => {
            let sent = Instant::now();
            let resp = match client.get(&url).timeout(BODY_TIMEOUT).send().await {
                Ok(r) => r,
                Err(e) if e.is_timeout() => return Outcome::BodyTimeout,
                Err(e) => return reqwest_err(&e),
            };
            if let Err(o) = check_head(resp.status().as_u16(), resp.headers(), q) {
                return o;
            }
            let sum = checksum(resp.headers());
            match resp.bytes().await {
                Err(e) if e.is_timeout() => Outcome::BodyTimeout,
                Err(e) => reqwest_err(&e),
                Ok(body) if sent.elapsed() >= Duration::from_millis(BODY_STALL_MS) => {
                    if body_is_exact(q.id, q.size, sum.as_deref(), &body) {
                        Outcome::LateAnswer
                    } else {
                        Outcome::Mismatch
                    }
                }
                Ok(_) => Outcome::Unexpected("no timeout".into(), "stalled body finished within the timeout".into()),
            }
        }
        Action::CloneDrop => {
            let clone = client.clone();
            let mut resp = match clone.get(&url).send().await {
                Ok(r) => r,
                Err(e) => return reqwest_err(&e),
            };
            if let Err(o) = check_head(resp.status().as_u16(), resp.headers(), q) {
                return o;
            }
            let sum = checksum(resp.headers());
            let mut body = Vec::new();
            if let Err(e) = reqwest_read_to(&mut resp, &mut body, q.size / 2).await {
                return reqwest_err(&e);
            }
            drop(clone);
            if let Err(e) = reqwest_read_to(&mut resp, &mut body, usize::MAX).await {
                return reqwest_err(&e);
            }
            if body_is_exact(q.id, q.size, sum.as_deref(), &body) {
                Outcome::Verified(body.len() as u64)
            } else {
                Outcome::Mismatch
            }
        }
    }
}

async fn run_task(driver: Driver, base: String, task: usize, per_task: usize, barrier: Arc<Barrier>) -> Tally {
    let mut t = Tally::default();
    for index in 0..per_task {
        if let Some(&(_, lull)) = LULLS.iter().find(|(at, _)| *at == index) {
            // Everyone stops: the pool sits idle across nginx's timeout.
            barrier.wait().await;
            Timer::after(lull).await;
        }
        let plan = Plan::new(task, index);
        if let Some(p) = plan.pause {
            t.pauses += 1;
            Timer::after(p).await;
        }
        t.requests += 1;
        match run_request(&driver, &base, &plan).await {
            Outcome::Verified(n) => {
                t.verified += 1;
                t.bytes += n;
                t.clone_drops += u64::from(plan.action == Action::CloneDrop);
            }
            Outcome::HalfRead => t.half_read_drops += 1,
            Outcome::Timeout => t.timeouts += 1,
            Outcome::BodyTimeout => t.body_timeouts += 1,
            Outcome::LateAnswer => {
                eprintln!("late answer (executor polled the task after the stall ended): {plan:?}");
                t.late_answers += 1;
            }
            Outcome::Status(s) => {
                eprintln!("status {s} for {plan:?}");
                *t.statuses.entry(s).or_default() += 1;
            }
            Outcome::Desync => {
                eprintln!("DESYNC: wrong x-id for {plan:?}");
                t.desyncs += 1;
            }
            Outcome::Mismatch => {
                eprintln!("MISMATCH: body differs for {plan:?}");
                t.mismatches += 1;
            }
            Outcome::Unexpected(kind, detail) => {
                eprintln!("unexpected failure ({kind}): {detail} for {plan:?}");
                *t.unexpected.entry(kind).or_default() += 1;
            }
        }
    }
    t
}

/// The in-process upstream: items, and `/stall` that answers late.
fn upstream() -> Server {
    Server::start(|conn| {
        // nginx keeps upstream connections up to its keepalive_timeout (30 s).
        conn.set_read_timeout(Some(Duration::from_secs(60)));
        while let Some(req) = conn.read_request() {
            if req.target.starts_with("/stall") {
                thread::sleep(STALL);
                conn.respond(200, &[], b"stalled");
                continue;
            }
            let Some(q) = ItemQuery::parse(&req.target) else {
                conn.respond(404, &[], b"no such item");
                continue;
            };
            let body = body_for(q.id, q.size);
            let mut out = item_head(q.id, &body, q.framing);
            let wire = item_wire_body(q.id, &body, q.framing);
            if q.stall_ms > 0 {
                let half = wire.len() / 2;
                out.extend_from_slice(&wire[..half]);
                conn.write(&out);
                thread::sleep(Duration::from_millis(q.stall_ms));
                conn.write(&wire[half..]);
            } else {
                out.extend_from_slice(&wire);
                conn.write(&out);
            }
            if q.framing == Framing::Eof {
                conn.close();
                return;
            }
        }
    })
}

const NGINX_HTTP: &str = "
    keepalive_timeout 1s;
    keepalive_requests 100000;
    upstream seed_upstream {
        server {upstream};
        keepalive 32;
        keepalive_timeout 30s;
        keepalive_requests 100000;
    }
    server {
        listen 127.0.0.1:{port};
        location / {
            proxy_pass http://seed_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_read_timeout 10s;
        }
    }
";

/// Statuses in nginx's access log (combined format), counted.
fn logged_statuses(log: &str) -> BTreeMap<u16, u64> {
    let mut out = BTreeMap::new();
    for line in log.lines() {
        if let Some(status) = line.split('"').nth(2).and_then(|s| s.split_whitespace().next()?.parse().ok()) {
            *out.entry(status).or_default() += 1;
        }
    }
    out
}

/// The two clients the scenario runs, one after the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Smolreq,
    Reqwest,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Smolreq => "smolreq",
            Which::Reqwest => "reqwest",
        }
    }
}

/// What one run behind nginx gives.
struct Run {
    tally: Tally,
    /// smolreq's pool counters (reqwest has none).
    stats: Option<PoolStats>,
    elapsed: Duration,
    /// Client connections that carried a request, counted by nginx.
    nginx_connections: usize,
    logged: BTreeMap<u16, u64>,
    error_log: String,
}

/// Requests of task `t`: `REQUESTS` spread over `TASKS`.
fn requests_of(t: usize) -> usize {
    REQUESTS / TASKS + usize::from(t < REQUESTS % TASKS)
}

/// Runs every task on one thread with smolreq (a `smol::Executor`).
fn drive_smolreq(base: String) -> (Tally, Option<PoolStats>, Duration) {
    let client = Client::builder().max_connections_per_host(32).max_idle_per_host(32).build().unwrap();
    let barrier = Arc::new(Barrier::new(TASKS));
    let start = Instant::now();
    let ex = smol::Executor::new();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| ex.spawn(run_task(Driver::Smolreq(client.clone()), base.clone(), t, requests_of(t), barrier.clone())))
        .collect();
    let tallies = smol::block_on(ex.run(async {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await);
        }
        out
    }));
    let elapsed = start.elapsed();
    let stats = client.pool_stats();
    drop(client);
    (tallies.into_iter().fold(Tally::default(), Tally::merge), Some(stats), elapsed)
}

/// Runs every task on one thread with reqwest (a tokio current-thread
/// runtime), its pool keeping up to 32 idle connections as smolreq's does.
fn drive_reqwest(base: String) -> (Tally, Option<PoolStats>, Duration) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(32).build().expect("reqwest client");
    let barrier = Arc::new(Barrier::new(TASKS));
    let start = Instant::now();
    let tallies = runtime.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let driver = Driver::Reqwest(client.clone());
                tokio::spawn(run_task(driver, base.clone(), t, requests_of(t), barrier.clone()))
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("reqwest task"));
        }
        out
    });
    let elapsed = start.elapsed();
    drop(client);
    drop(runtime);
    (tallies.into_iter().fold(Tally::default(), Tally::merge), None, elapsed)
}

/// Runs the scenario with `which` behind a fresh upstream and nginx.
fn run_behind_nginx(nginx_bin: &std::path::Path, which: Which) -> Run {
    let upstream = upstream();
    let conf = NGINX_HTTP.replace("{upstream}", &upstream.addr().to_string());
    let mut nginx = nginx::Nginx::start(nginx_bin, which.name(), &conf);
    let base = nginx.url("");

    // The scenario runs under a watchdog; nginx stays owned by this thread,
    // so it is stopped even if the watchdog fires.
    let (tally, stats, elapsed) = with_deadline(Duration::from_secs(240), move || match which {
        Which::Smolreq => drive_smolreq(base),
        Which::Reqwest => drive_reqwest(base),
    });

    let logged = logged_statuses(&nginx.access_log());
    let nginx_connections = nginx.client_connections();
    let error_log = nginx.error_log();
    nginx.stop();
    upstream.wait_closed_within(upstream.connections(), Duration::from_secs(10));
    drop(upstream);
    Run { tally, stats, elapsed, nginx_connections, logged, error_log }
}

fn unexpected_of(tally: &Tally) -> u64 {
    tally.unexpected.values().sum()
}

fn gateway_errors_of(tally: &Tally) -> u64 {
    tally.statuses.get(&502).copied().unwrap_or(0) + tally.statuses.get(&504).copied().unwrap_or(0)
}

fn print_run(which: Which, run: &Run) {
    let tally = &run.tally;
    println!("seed scenario behind nginx with {}: {TASKS} tasks, one client", which.name());
    println!("  requests                                {}", tally.requests);
    println!("  verified bodies                         {}", tally.verified);
    println!("    of which clone dropped mid-body       {}", tally.clone_drops);
    println!("  half-read bodies dropped                {}", tally.half_read_drops);
    println!("  cancelled by timeout before the head    {}", tally.timeouts);
    println!("  cancelled by timeout in the body        {}", tally.body_timeouts);
    println!("  answered after the deadline (starved)   {}", tally.late_answers);
    println!("  lone pauses past nginx's idle timeout   {}", tally.pauses);
    println!("  unexpected failures                     {} {:?}", unexpected_of(tally), tally.unexpected);
    println!("  non-200 statuses                        {:?}", tally.statuses);
    println!("  502/504 responses                       {}", gateway_errors_of(tally));
    println!("  desyncs (wrong x-id)                    {}", tally.desyncs);
    println!("  body/checksum mismatches                {}", tally.mismatches);
    println!("  client connections (nginx's count)      {}", run.nginx_connections);
    if let Some(stats) = &run.stats {
        println!("  connections opened (pool_stats)         {}", stats.opened);
        println!("  connections reused                      {}", stats.reused);
        println!("  retries                                 {}", stats.retried);
        println!("  discarded                               {}", stats.discarded);
        println!("  leased at the end                       {}", stats.leased);
    }
    println!("  nginx access log statuses               {:?}", run.logged);
    println!("  body bytes verified                     {:.1} MiB", tally.bytes as f64 / 1048576.0);
    println!("  elapsed                                 {:.2} s", run.elapsed.as_secs_f64());
}

/// The checks both clients must pass.
fn assert_clean(which: Which, run: &Run) {
    let (tally, name, error_log) = (&run.tally, which.name(), &run.error_log);
    let accounted = tally.verified
        + tally.half_read_drops
        + tally.timeouts
        + tally.body_timeouts
        + tally.late_answers
        + unexpected_of(tally)
        + tally.statuses.values().sum::<u64>()
        + tally.desyncs
        + tally.mismatches;
    assert_eq!(tally.requests, REQUESTS as u64, "{name}");
    assert_eq!(accounted, tally.requests, "{name}: every request has exactly one outcome");
    assert_eq!(
        unexpected_of(tally),
        0,
        "{name}: unexpected failures: {:?}\nnginx error.log:\n{error_log}",
        tally.unexpected
    );
    assert_eq!(gateway_errors_of(tally), 0, "{name}: 502/504 from nginx\nnginx error.log:\n{error_log}");
    assert!(tally.statuses.is_empty(), "{name}: non-200 statuses: {:?}", tally.statuses);
    assert_eq!(tally.desyncs, 0, "{name}: desynchronised responses");
    assert_eq!(tally.mismatches, 0, "{name}: body/checksum mismatches");
    for status in [502, 504] {
        assert!(
            !run.logged.contains_key(&status),
            "{name}: nginx logged {status}: {:?}\nerror.log:\n{error_log}",
            run.logged
        );
    }
}

#[test]
#[ignore = "needs nginx; run by .ci/run with --release -- --ignored"]
fn seed_scenario_behind_nginx() {
    let Some(nginx_bin) = nginx::find_or_skip("seed_scenario_behind_nginx") else { return };

    // Warm the reactor up (its epoll and notifier descriptors stay open for
    // the life of the process) before taking the descriptor baseline.
    {
        let server = echo_ok_server(b"warm");
        let client = Client::new();
        let text = smol::block_on(async { client.get(server.url("/")).send().await?.text().await }).unwrap();
        assert_eq!(text, "warm");
        drop(client);
        server.wait_peer_closed(1);
    }
    thread::sleep(Duration::from_millis(100));
    let fds_baseline = open_fds();

    let smolreq = run_behind_nginx(&nginx_bin, Which::Smolreq);
    // Wait (bounded) for the last descriptors to be closed by their threads.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut fds_end = open_fds();
    while fds_end != fds_baseline && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
        fds_end = open_fds();
    }
    print_run(Which::Smolreq, &smolreq);
    println!("  open fds: baseline {fds_baseline}, end {fds_end}");

    let reqwest = run_behind_nginx(&nginx_bin, Which::Reqwest);
    print_run(Which::Reqwest, &reqwest);
    println!(
        "client connections, counted by nginx: smolreq {}, reqwest {}",
        smolreq.nginx_connections, reqwest.nginx_connections
    );

    assert_clean(Which::Smolreq, &smolreq);
    assert_clean(Which::Reqwest, &reqwest);
    let stats = smolreq.stats.expect("smolreq has pool counters");
    assert_eq!(stats.leased, 0, "connections still leased at the end");
    assert!(stats.reused > stats.opened, "the pool reused connections: {stats:?}");
    assert_eq!(fds_end, fds_baseline, "open file descriptors are back to the baseline");
    assert!(
        smolreq.nginx_connections <= reqwest.nginx_connections,
        "smolreq opened more client connections than reqwest: {} > {}",
        smolreq.nginx_connections,
        reqwest.nginx_connections
    );
}
