//! Fault soak (issue 7, part 2): one shared client, 64 concurrent tasks,
//! against an in-process server that picks a fault at random for each
//! connection it accepts:
//!
//! | fault | what the server does | what the client must do |
//! |---|---|---|
//! | FIN after a response | closes (FIN) right after response k, no `Connection: close` | notice it (probe) or retry a GET; a POST may fail with `Io` |
//! | RST on reuse | reads request k+1 (k >= 1), then resets | GET: retry on a fresh connection and succeed; POST: `Io`, never resent |
//! | FIN in flight | reads request k+1 (k >= 1), then closes without answering | as RST on reuse |
//! | truncated body | cuts response k short (in the head or the body), then FIN | `Protocol` error, never a short success |
//! | stall | stops before the head or halfway through the body, past the deadline | `Timeout` |
//! | garbage after a response | appends a well-formed fake response to response k | exact body; the fake never read, the connection never reused |
//! | slow drip | writes response k in small pieces with pauses | exact body |
//!
//! The server records which fault each request met (requests carry their
//! id), so every outcome is checked against the fault behind it: every
//! success byte-exact, every failure an `Error` of the right kind, every GET
//! that met a stale connection successful through the retry, no POST sent
//! twice, no panic, nothing leased at the end, and the process's file
//! descriptors back to their baseline. It prints the counts of each fault
//! and outcome.
//!
//! `cargo test --test soak -- --nocapture` runs 20,000 requests (about 12 s
//! in a debug build) and prints the counts; `.ci/run` also runs three more
//! seeds in release: `cargo test --release --test soak -- --ignored --nocapture`.

mod common;
#[path = "common/seed.rs"]
mod seed;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    Conn, Server, echo_ok_server, fd_diff, fd_lock, open_fd_list, settle_fds, sockets_connected_to, with_deadline,
};
use seed::{Framing, ItemQuery, Rng, body_for, body_is_exact, item_head, item_wire_body};
use smolreq::{Client, ErrorKind, Method};

const TASKS: usize = 64;
/// The deadline of every request.
const TIMEOUT: Duration = Duration::from_millis(1500);
/// How long a stalled response stalls: past the deadline.
const STALL: Duration = Duration::from_millis(1800);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Fault {
    /// Served normally.
    None,
    FinAfterResponse,
    RstOnReuse,
    FinInFlight,
    TruncatedHead,
    TruncatedBody,
    StallBeforeHead,
    StallInBody,
    Garbage,
    Drip,
}

impl Fault {
    /// A fault that leaves a stale connection for the next request.
    fn is_stale(self) -> bool {
        matches!(self, Fault::RstOnReuse | Fault::FinInFlight)
    }
}

/// What the server did with one request.
#[derive(Clone, Copy, Debug)]
struct Applied {
    fault: Fault,
    /// Requests this connection had served before this one.
    served_before: usize,
}

#[derive(Default)]
struct Journal {
    /// Request id -> what the server did with each attempt, in order.
    by_id: Mutex<HashMap<u64, Vec<Applied>>>,
    /// Connection faults drawn at accept.
    drawn: Mutex<BTreeMap<Fault, u64>>,
    /// Requests read on a connection after garbage was sent on it: the
    /// client reused a connection holding unsolicited bytes.
    after_garbage: Mutex<u64>,
}

impl Journal {
    fn record(&self, id: u64, fault: Fault, served_before: usize) {
        self.by_id.lock().unwrap().entry(id).or_default().push(Applied { fault, served_before });
    }
}

/// The fault of connection `index` and the request (0-based) it hits.
fn draw(index: usize, seed: u64) -> (Fault, usize) {
    let mut rng = Rng::new(seed ^ (index as u64).wrapping_mul(0x9e37_79b9));
    let at = rng.below(6) as usize;
    let fault = match rng.below(100) {
        0..20 => Fault::None,
        20..32 => Fault::FinAfterResponse,
        32..46 => Fault::RstOnReuse,
        46..60 => Fault::FinInFlight,
        60..66 => Fault::TruncatedHead,
        66..74 => Fault::TruncatedBody,
        74..77 => Fault::StallBeforeHead,
        77..80 => Fault::StallInBody,
        80..90 => Fault::Garbage,
        _ => Fault::Drip,
    };
    // Stale faults hit a reused connection: at least one response first.
    let at = if fault.is_stale() || fault == Fault::FinAfterResponse { at + 1 } else { at };
    (fault, at)
}

/// A well-formed response that answers nothing: if the client ever read it
/// as the next response, its `x-id` would give it away as a desync.
const GARBAGE: &[u8] = b"HTTP/1.1 200 OK\r\nx-id: 18446744073709551615\r\ncontent-length: 5\r\n\r\nEVIL!";

fn fault_server(journal: Arc<Journal>, seed: u64) -> Server {
    Server::start(move |conn| serve(conn, &journal, seed))
}

fn serve(conn: &mut Conn, journal: &Journal, seed: u64) {
    let (fault, at) = draw(conn.index(), seed);
    *journal.drawn.lock().unwrap().entry(fault).or_default() += 1;
    let mut rng = Rng::new(seed ^ 0xfa17 ^ conn.index() as u64);
    let mut garbage_sent = false;
    let mut served = 0;
    while let Some(req) = conn.read_request() {
        if garbage_sent {
            *journal.after_garbage.lock().unwrap() += 1;
        }
        let Some(q) = ItemQuery::parse(&req.target) else {
            conn.respond(404, &[], b"no such item");
            continue;
        };
        let hit = match (if served == at { fault } else { Fault::None }, q.framing) {
            // A body ended by the close cannot be cut short detectably, and
            // bytes after it are part of it: serve those normally.
            (Fault::TruncatedBody | Fault::Garbage, Framing::Eof) => Fault::None,
            (hit, _) => hit,
        };
        let record = if hit == Fault::FinAfterResponse { Fault::None } else { hit };
        journal.record(q.id, record, served);
        served += 1;
        let body = body_for(q.id, q.size);
        let mut response = item_head(q.id, &body, q.framing);
        let head_len = response.len();
        response.extend_from_slice(&item_wire_body(q.id, &body, q.framing));
        match hit {
            Fault::None => conn.write(&response),
            Fault::FinAfterResponse => {
                conn.write(&response);
                conn.close();
                return;
            }
            Fault::RstOnReuse => {
                conn.reset();
                return;
            }
            Fault::FinInFlight => {
                conn.close();
                return;
            }
            Fault::TruncatedHead => {
                let cut = 1 + rng.below(head_len as u64 - 2) as usize;
                conn.write(&response[..cut]);
                conn.close();
                return;
            }
            Fault::TruncatedBody => {
                // Bodies of the truncating connection are never empty (see
                // `plan`), so a cut in the body is always possible.
                let cut = head_len + rng.below((response.len() - head_len) as u64) as usize;
                conn.write(&response[..cut]);
                conn.close();
                return;
            }
            Fault::StallBeforeHead | Fault::StallInBody => {
                let cut = if hit == Fault::StallInBody { head_len + (response.len() - head_len) / 2 } else { 0 };
                conn.write(&response[..cut]);
                thread::sleep(STALL);
                conn.close();
                return;
            }
            Fault::Garbage => {
                response.extend_from_slice(GARBAGE);
                conn.write(&response);
                garbage_sent = true;
            }
            Fault::Drip => {
                // At most about 64 pieces: slow, but well within the deadline.
                let piece = (1 + rng.below(256) as usize).max(response.len() / 64);
                for part in response.chunks(piece) {
                    conn.write(part);
                    thread::sleep(Duration::from_micros(300));
                }
            }
        }
        if q.framing == Framing::Eof {
            conn.close();
            return;
        }
    }
}

/// One request of the client, derived from its task and index.
#[derive(Debug)]
struct Plan {
    method: Method,
    query: ItemQuery,
}

fn plan(task: usize, index: usize, seed: u64) -> Plan {
    let mut rng = Rng::new(seed ^ ((task as u64) << 32) ^ index as u64);
    let id = ((task as u64) << 32) | index as u64;
    let method = if rng.chance(10) { Method::POST } else { Method::GET };
    // Never empty: a truncation can always cut the body. Small enough that
    // a response and the garbage after it travel in one segment.
    let size = match rng.below(100) {
        0..50 => 1 + rng.below(1024),
        50..90 => 1024 + rng.below(3 * 1024),
        _ => 4096 + rng.below(60 * 1024),
    } as usize;
    let framing = match rng.below(100) {
        0..60 => Framing::Length,
        60..95 => Framing::Chunked,
        _ => Framing::Eof,
    };
    Plan { method, query: ItemQuery { id, size, framing, stall_ms: 0 } }
}

/// How a request ended, as the client saw it.
enum Seen {
    Exact,
    NotExact(String),
    Failed(ErrorKind, String),
}

async fn send(client: &Client, base: &str, p: &Plan) -> Seen {
    let url = format!("{base}{}", p.query.target());
    let mut req = client.request(p.method.clone(), &url).timeout(TIMEOUT);
    if p.method == Method::POST {
        req = req.body(format!("post {}", p.query.id));
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return Seen::Failed(e.kind(), e.to_string()),
    };
    let id = resp.headers().get("x-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let sum = resp.headers().get("x-checksum").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if resp.status() != 200 || id.as_deref() != Some(p.query.id.to_string().as_str()) {
        return Seen::NotExact(format!("status {} x-id {id:?}", resp.status()));
    }
    match resp.bytes().await {
        Ok(body) if body_is_exact(p.query.id, p.query.size, sum.as_deref(), &body) => Seen::Exact,
        Ok(body) => Seen::NotExact(format!("body of {} bytes differs", body.len())),
        Err(e) => Seen::Failed(e.kind(), e.to_string()),
    }
}

/// Judges one outcome against what the server did; `Err` is a violation.
fn judge(p: &Plan, seen: &Seen, attempts: &[Applied]) -> Result<&'static str, String> {
    let last = attempts.last().map(|a| a.fault);
    let retried = attempts.len() == 2 && attempts[0].fault.is_stale();
    if attempts.len() > 2 || (attempts.len() == 2 && !attempts[0].fault.is_stale()) {
        return Err(format!("sent {} times: {attempts:?}", attempts.len()));
    }
    if p.method == Method::POST && attempts.len() > 1 {
        return Err(format!("POST sent twice: {attempts:?}"));
    }
    if retried && attempts[1].served_before != 0 {
        return Err(format!("retry not on a fresh connection: {attempts:?}"));
    }
    match (seen, last) {
        (Seen::NotExact(what), _) => Err(format!("not byte-exact: {what} ({attempts:?})")),
        (Seen::Exact, Some(Fault::None)) if retried => Ok("ok: stale connection, retried"),
        (Seen::Exact, Some(Fault::None)) => Ok("ok"),
        (Seen::Exact, Some(Fault::Drip)) => Ok("ok: dripped"),
        (Seen::Exact, Some(Fault::Garbage)) => Ok("ok: garbage after it ignored"),
        (Seen::Exact, _) => Err(format!("success although the server broke the response: {attempts:?}")),
        (Seen::Failed(kind, msg), last) => {
            let expected = match last {
                Some(Fault::TruncatedHead | Fault::TruncatedBody) => {
                    Some((ErrorKind::Protocol, "err: truncated, Protocol"))
                }
                Some(Fault::StallBeforeHead | Fault::StallInBody) => {
                    Some((ErrorKind::Timeout, "err: stalled, Timeout"))
                }
                // Not retried, so a POST: the stale connection is its error.
                Some(f) if f.is_stale() && p.method == Method::POST => {
                    Some((ErrorKind::Io, "err: POST on stale connection, Io"))
                }
                // Never reached a server: only a POST on a connection the
                // server had just closed (FIN after a response) may end so.
                None if p.method == Method::POST => Some((ErrorKind::Io, "err: POST on closed connection, Io")),
                _ => None,
            };
            match expected {
                Some((k, label)) if k == *kind => Ok(label),
                _ => Err(format!("{} failed with {kind:?} ({msg}) after {attempts:?}", p.method)),
            }
        }
    }
}

fn soak(requests: usize, seed: u64) {
    // Descriptor counts are process-wide: the soaks of this binary run one
    // at a time, or each would count the other's sockets.
    let _fds = fd_lock();
    // Warm the reactor up before taking the descriptor baseline.
    {
        let server = echo_ok_server(b"warm");
        let client = Client::new();
        smol::block_on(async { client.get(server.url("/")).send().await?.bytes().await }).unwrap();
        drop(client);
        server.wait_peer_closed(1);
    }
    thread::sleep(Duration::from_millis(100));
    let fds_baseline = open_fd_list();

    let journal = Arc::new(Journal::default());
    let server = fault_server(journal.clone(), seed);
    let base = server.url("");
    let client = Client::builder().max_connections_per_host(32).max_idle_per_host(32).build().unwrap();

    let start = Instant::now();
    let ex = smol::Executor::new();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let client = client.clone();
            let base = base.clone();
            let n = requests / TASKS + usize::from(task < requests % TASKS);
            ex.spawn(async move {
                let mut seen = Vec::with_capacity(n);
                for index in 0..n {
                    let p = plan(task, index, seed);
                    let s = send(&client, &base, &p).await;
                    seen.push((p, s));
                }
                seen
            })
        })
        .collect();
    let seen: Vec<(Plan, Seen)> = smol::block_on(ex.run(async {
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await);
        }
        all
    }));
    let elapsed = start.elapsed();
    let stats = client.pool_stats();
    drop(client);
    let client_sockets_left = sockets_connected_to(server.addr());

    let by_id = journal.by_id.lock().unwrap().clone();
    let mut outcomes: BTreeMap<&str, u64> = BTreeMap::new();
    let mut applied: BTreeMap<Fault, u64> = BTreeMap::new();
    let mut violations = Vec::new();
    for attempts in by_id.values() {
        for a in attempts {
            *applied.entry(a.fault).or_default() += 1;
        }
    }
    for (p, s) in &seen {
        let attempts = by_id.get(&p.query.id).map_or(&[][..], Vec::as_slice);
        match judge(p, s, attempts) {
            Ok(label) => *outcomes.entry(label).or_default() += 1,
            Err(v) => {
                *outcomes.entry("VIOLATION").or_default() += 1;
                violations.push(format!("{p:?}: {v}"));
            }
        }
    }
    let after_garbage = *journal.after_garbage.lock().unwrap();
    let drawn = journal.drawn.lock().unwrap().clone();
    let panics = server.handler_panics();
    let connections = server.connections();
    drop(server);
    let fds_end = settle_fds(&fds_baseline, Duration::from_secs(5));

    println!("fault soak: {requests} requests, {TASKS} tasks, one client, seed {seed:#x}");
    println!("  server connections: {connections}; faults drawn per connection:");
    for (f, n) in &drawn {
        println!("    {:<40} {n}", format!("{f:?}"));
    }
    println!("  faults met by requests (per attempt):");
    for (f, n) in &applied {
        println!("    {:<40} {n}", format!("{f:?}"));
    }
    println!("  outcomes:");
    for (o, n) in &outcomes {
        println!("    {o:<40} {n}");
    }
    println!("  requests read after garbage on a connection  {after_garbage}");
    println!(
        "  pool: opened {} reused {} retried {} discarded {} idle {} leased {}",
        stats.opened, stats.reused, stats.retried, stats.discarded, stats.idle, stats.leased
    );
    println!("  open fds: baseline {}, end {}", fds_baseline.len(), fds_end.len());
    println!("  client sockets to the server left after the client was dropped: {client_sockets_left}");
    println!("  elapsed {:.2} s", elapsed.as_secs_f64());

    assert_eq!(seen.len(), requests);
    for v in violations.iter().take(20) {
        eprintln!("VIOLATION {v}");
    }
    assert!(violations.is_empty(), "{} violations (first: {:?})", violations.len(), violations.first());
    assert_eq!(after_garbage, 0, "a connection with unsolicited bytes was reused");
    assert!(panics.is_empty(), "server handler panics: {panics:?}");
    assert_eq!(stats.leased, 0, "connections still leased at the end");
    assert!(outcomes.get("ok: stale connection, retried").copied().unwrap_or(0) > 0, "the soak exercised no retry");
    assert_eq!(client_sockets_left, 0, "client sockets to the server left open after the client was dropped");
    assert_eq!(
        fds_end.len(),
        fds_baseline.len(),
        "open file descriptors are back to the baseline; {}",
        fd_diff(&fds_baseline, &fds_end)
    );
}

#[test]
fn fault_soak() {
    with_deadline(Duration::from_secs(120), || soak(20_000, 0x50a4));
}

#[test]
#[ignore = "three more seeds of 20,000 requests; run by .ci/run in release with -- --ignored"]
fn fault_soak_more_seeds() {
    for seed in [0x50a4_f011, 0xdead_beef, 0x0123_4567_89ab] {
        with_deadline(Duration::from_secs(120), move || soak(20_000, seed));
    }
}
