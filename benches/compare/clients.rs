//! The same workloads written against each client: the hand-written floor,
//! smolreq, reqwest (tokio current-thread runtime) and ureq (blocking; the
//! 64-in-flight workload uses 64 threads).
//!
//! Every client reads each whole body the usual way for that client
//! (`bytes()`, `read_to_vec()`), checks the status and the body, and sends
//! requests by URL string. The floor writes one fixed request and reads the
//! known number of response bytes into a reused buffer, checking only the
//! status line.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};

use crate::measure::{self, Snapshot};
use crate::server::{self, BIG_LEN, CHUNKED_LEN, POST_LEN, SMALL_BODY};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Client {
    Floor,
    Smolreq,
    Reqwest,
    Ureq,
}

impl Client {
    pub const ALL: [Client; 4] = [Client::Floor, Client::Smolreq, Client::Reqwest, Client::Ureq];

    pub fn name(self) -> &'static str {
        match self {
            Client::Floor => "floor",
            Client::Smolreq => "smolreq",
            Client::Reqwest => "reqwest",
            Client::Ureq => "ureq",
        }
    }

    pub fn parse(s: &str) -> Option<Client> {
        Client::ALL.into_iter().find(|c| c.name() == s)
    }
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Workloads (a) to (f) of the issue. `Race` carries the FIN delay in ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Workload {
    Sequential,
    Concurrent,
    Big,
    Chunked,
    Post,
    Race(u64),
}

/// Requests in flight in workload (b).
pub const IN_FLIGHT: usize = 64;

impl Workload {
    pub fn name(self) -> String {
        match self {
            Workload::Sequential => "a".into(),
            Workload::Concurrent => "b".into(),
            Workload::Big => "c".into(),
            Workload::Chunked => "d".into(),
            Workload::Post => "e".into(),
            Workload::Race(ms) => format!("f{ms}"),
        }
    }

    pub fn parse(s: &str) -> Option<Workload> {
        Some(match s {
            "a" => Workload::Sequential,
            "b" => Workload::Concurrent,
            "c" => Workload::Big,
            "d" => Workload::Chunked,
            "e" => Workload::Post,
            _ => Workload::Race(s.strip_prefix('f')?.parse().ok()?),
        })
    }

    pub fn describe(self) -> String {
        match self {
            Workload::Sequential => "(a) sequential keep-alive GET, 13 B body".into(),
            Workload::Concurrent => format!("(b) GET, {IN_FLIGHT} in flight, 13 B body"),
            Workload::Big => "(c) GET, 1 MiB body".into(),
            Workload::Chunked => "(d) GET, 64 KiB chunked body".into(),
            Workload::Post => "(e) POST 4 KiB, 13 B response".into(),
            Workload::Race(ms) => format!("(f) keep-alive race, FIN delay {ms} ms"),
        }
    }

    fn path(self) -> &'static str {
        match self {
            Workload::Big => "/big",
            Workload::Chunked => "/chunked",
            Workload::Post => "/post",
            _ => "/small",
        }
    }

    /// Decoded body length of each response.
    pub fn body_len(self) -> usize {
        match self {
            Workload::Big => BIG_LEN,
            Workload::Chunked => CHUNKED_LEN,
            _ => SMALL_BODY.len(),
        }
    }

    fn check(self, status: u16, body: &[u8]) -> Result<(), String> {
        if status != 200 {
            return Err(format!("status {status}"));
        }
        let ok = match self {
            Workload::Big | Workload::Chunked => body.len() == self.body_len() && body[body.len() - 1] != 0,
            _ => body == SMALL_BODY,
        };
        if ok { Ok(()) } else { Err(format!("wrong body ({} bytes)", body.len())) }
    }
}

/// One child's task.
#[derive(Clone, Copy, Debug)]
pub struct Job {
    pub client: Client,
    pub workload: Workload,
    pub requests: u64,
    pub port: u16,
    pub seed: u64,
}

impl Job {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}{}", self.port, self.workload.path())
    }
}

/// What a child reports.
#[derive(Debug, Default)]
pub struct Outcome {
    pub failed: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Allocations, allocated bytes, CPU time, user CPU time.
    pub cost: Option<(u64, u64, Duration, Duration)>,
}

impl Outcome {
    fn fail(&mut self, err: impl fmt::Display) {
        self.failed += 1;
        if self.first_error.is_none() {
            self.first_error = Some(err.to_string());
        }
    }
}

/// Marks the measured part of a run: everything between `start` and `stop`.
/// With `trace`, it also records where each allocation in between came
/// from and prints that to stderr.
pub struct Meter {
    begin: Option<(Instant, Snapshot)>,
    trace: Option<u64>,
}

impl Meter {
    pub fn new(trace_requests: Option<u64>) -> Meter {
        Meter { begin: None, trace: trace_requests }
    }

    fn start(&mut self) {
        if self.trace.is_some() {
            crate::sites::start();
        }
        self.begin = Some((Instant::now(), measure::snapshot()));
    }

    fn stop(&mut self, outcome: &mut Outcome) {
        let (t0, s0) = self.begin.take().expect("meter started");
        let s1 = measure::snapshot();
        if let Some(requests) = self.trace {
            eprintln!("{}", crate::sites::report(requests));
        }
        outcome.elapsed = t0.elapsed();
        outcome.cost = Some((s1.allocs - s0.allocs, s1.bytes - s0.bytes, s1.cpu - s0.cpu, s1.user - s0.user));
    }
}

/// Pauses of 50 +/- 5 ms, from a fixed seed (xorshift).
struct Pauses(u64);

impl Pauses {
    fn next(&mut self) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_micros(45_000 + self.0 % 10_001)
    }
}

/// Requests to hand out among concurrent workers.
struct Budget(AtomicU64);

impl Budget {
    fn take(&self) -> bool {
        self.0.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1)).is_ok()
    }
}

pub fn run(job: Job, meter: &mut Meter) -> Outcome {
    match job.client {
        Client::Floor => floor::run(job, meter),
        Client::Smolreq => smolreq_client::run(job, meter),
        Client::Reqwest => reqwest_client::run(job, meter),
        Client::Ureq => ureq_client::run(job, meter),
    }
}

/// A request body shared by reference count, for workload (e).
fn post_body() -> bytes::Bytes {
    bytes::Bytes::from((0..POST_LEN).map(|i| (i % 97) as u8 + b' ').collect::<Vec<u8>>())
}

mod floor {
    use super::*;
    use async_net::TcpStream;

    struct Conn {
        stream: TcpStream,
        response: Vec<u8>,
    }

    async fn connect(port: u16, response_len: usize) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Conn { stream, response: vec![0; response_len] })
    }

    impl Conn {
        async fn exchange(&mut self, request: &[u8]) -> std::io::Result<()> {
            self.stream.write_all(request).await?;
            let mut got = 0;
            while got < self.response.len() {
                let n = self.stream.read(&mut self.response[got..]).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                got += n;
            }
            if !self.response.starts_with(b"HTTP/1.1 200 ") {
                return Err(std::io::Error::other("not a 200 status line"));
            }
            Ok(())
        }
    }

    pub fn run(job: Job, meter: &mut Meter) -> Outcome {
        let w = job.workload;
        let mut request = format!(
            "{} {} HTTP/1.1\r\nhost: 127.0.0.1:{}\r\n",
            if w == Workload::Post { "POST" } else { "GET" },
            w.path(),
            job.port
        )
        .into_bytes();
        if w == Workload::Post {
            request.extend_from_slice(format!("content-length: {POST_LEN}\r\n\r\n").as_bytes());
            request.extend_from_slice(&post_body());
        } else {
            request.extend_from_slice(b"\r\n");
        }
        let response_len = server::response(w.path().as_bytes()).len();
        let mut outcome = Outcome::default();
        smol::block_on(async {
            match w {
                Workload::Concurrent => {
                    let ex = async_executor::LocalExecutor::new();
                    let budget = Rc::new(Budget(AtomicU64::new(job.requests)));
                    let request = Rc::new(request);
                    let mut warm = connect(job.port, response_len).await.expect("connect");
                    warm.exchange(&request).await.expect("warm-up request");
                    let mut warm = Some(warm);
                    meter.start();
                    let workers: Vec<_> = (0..IN_FLIGHT)
                        .map(|_| {
                            let (budget, request, warm) = (budget.clone(), request.clone(), warm.take());
                            ex.spawn(async move {
                                let mut conn = match warm {
                                    Some(conn) => conn,
                                    None => connect(job.port, response_len).await.expect("connect"),
                                };
                                while budget.take() {
                                    conn.exchange(&request).await.expect("request");
                                }
                            })
                        })
                        .collect();
                    ex.run(async {
                        for worker in workers {
                            worker.await;
                        }
                    })
                    .await;
                    meter.stop(&mut outcome);
                }
                Workload::Race(_) => {
                    // Naive reuse: no probe, no retry; a failure reconnects.
                    let mut pauses = Pauses(job.seed);
                    let mut conn = None;
                    meter.start();
                    for i in 0..job.requests {
                        if i > 0 {
                            async_io::Timer::after(pauses.next()).await;
                        }
                        if conn.is_none() {
                            conn = Some(connect(job.port, response_len).await.expect("connect"));
                        }
                        if let Err(e) = conn.as_mut().unwrap().exchange(&request).await {
                            outcome.fail(e);
                            conn = None;
                        }
                    }
                    meter.stop(&mut outcome);
                }
                _ => {
                    let mut conn = connect(job.port, response_len).await.expect("connect");
                    conn.exchange(&request).await.expect("warm-up request");
                    meter.start();
                    for _ in 0..job.requests {
                        conn.exchange(&request).await.expect("request");
                    }
                    meter.stop(&mut outcome);
                }
            }
        });
        outcome
    }
}

mod smolreq_client {
    use super::*;

    async fn request(client: &smolreq::Client, w: Workload, url: &str, body: &bytes::Bytes) -> Result<(), String> {
        let builder = if w == Workload::Post { client.post(url).body(body.clone()) } else { client.get(url) };
        let response = builder.send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        w.check(status, &bytes)
    }

    pub fn run(job: Job, meter: &mut Meter) -> Outcome {
        let w = job.workload;
        let client = smolreq::Client::builder()
            .max_connections_per_host(IN_FLIGHT)
            .max_idle_per_host(IN_FLIGHT)
            .build()
            .expect("client");
        let url = job.url();
        let body = post_body();
        let mut outcome = Outcome::default();
        smol::block_on(async {
            if let Workload::Race(_) = w {
                let mut pauses = Pauses(job.seed);
                meter.start();
                for i in 0..job.requests {
                    if i > 0 {
                        async_io::Timer::after(pauses.next()).await;
                    }
                    if let Err(e) = request(&client, w, &url, &body).await {
                        outcome.fail(e);
                    }
                }
                meter.stop(&mut outcome);
                return;
            }
            request(&client, w, &url, &body).await.expect("warm-up request");
            meter.start();
            if w == Workload::Concurrent {
                let ex = async_executor::LocalExecutor::new();
                let budget = Rc::new(Budget(AtomicU64::new(job.requests)));
                let failed = Rc::new(Cell::new(None::<String>));
                let workers: Vec<_> = (0..IN_FLIGHT)
                    .map(|_| {
                        let (budget, client, url, body, failed) =
                            (budget.clone(), client.clone(), url.clone(), body.clone(), failed.clone());
                        ex.spawn(async move {
                            while budget.take() {
                                if let Err(e) = request(&client, w, &url, &body).await {
                                    failed.set(Some(e));
                                }
                            }
                        })
                    })
                    .collect();
                ex.run(async {
                    for worker in workers {
                        worker.await;
                    }
                })
                .await;
                if let Some(e) = failed.take() {
                    panic!("request failed: {e}");
                }
            } else {
                for _ in 0..job.requests {
                    request(&client, w, &url, &body).await.expect("request");
                }
            }
            meter.stop(&mut outcome);
        });
        outcome
    }
}

mod reqwest_client {
    use super::*;

    async fn request(client: &reqwest::Client, w: Workload, url: &str, body: &bytes::Bytes) -> Result<(), String> {
        let builder = if w == Workload::Post { client.post(url).body(body.clone()) } else { client.get(url) };
        let response = builder.send().await.map_err(|e| format!("{e:?}"))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| format!("{e:?}"))?;
        w.check(status, &bytes)
    }

    pub fn run(job: Job, meter: &mut Meter) -> Outcome {
        let w = job.workload;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        let client = reqwest::Client::builder().no_proxy().build().expect("client");
        let url = job.url();
        let body = post_body();
        let mut outcome = Outcome::default();
        runtime.block_on(async {
            if let Workload::Race(_) = w {
                let mut pauses = Pauses(job.seed);
                meter.start();
                for i in 0..job.requests {
                    if i > 0 {
                        tokio::time::sleep(pauses.next()).await;
                    }
                    if let Err(e) = request(&client, w, &url, &body).await {
                        outcome.fail(e);
                    }
                }
                meter.stop(&mut outcome);
                return;
            }
            request(&client, w, &url, &body).await.expect("warm-up request");
            meter.start();
            if w == Workload::Concurrent {
                let budget = Arc::new(Budget(AtomicU64::new(job.requests)));
                let mut workers = tokio::task::JoinSet::new();
                for _ in 0..IN_FLIGHT {
                    let (budget, client, url, body) = (budget.clone(), client.clone(), url.clone(), body.clone());
                    workers.spawn(async move {
                        while budget.take() {
                            request(&client, w, &url, &body).await?;
                        }
                        Ok::<(), String>(())
                    });
                }
                while let Some(result) = workers.join_next().await {
                    result.expect("worker").expect("request");
                }
            } else {
                for _ in 0..job.requests {
                    request(&client, w, &url, &body).await.expect("request");
                }
            }
            meter.stop(&mut outcome);
        });
        outcome
    }
}

mod ureq_client {
    use super::*;

    fn request(agent: &ureq::Agent, w: Workload, url: &str, body: &[u8]) -> Result<(), String> {
        let response = if w == Workload::Post { agent.post(url).send(body) } else { agent.get(url).call() };
        let mut response = response.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let bytes = response.body_mut().read_to_vec().map_err(|e| e.to_string())?;
        w.check(status, &bytes)
    }

    pub fn run(job: Job, meter: &mut Meter) -> Outcome {
        let w = job.workload;
        let config = ureq::Agent::config_builder()
            .proxy(None)
            .http_status_as_error(false)
            .max_idle_connections(IN_FLIGHT)
            .max_idle_connections_per_host(IN_FLIGHT)
            .build();
        let agent = ureq::Agent::new_with_config(config);
        let url = job.url();
        let body = post_body();
        let mut outcome = Outcome::default();
        if let Workload::Race(_) = w {
            let mut pauses = Pauses(job.seed);
            meter.start();
            for i in 0..job.requests {
                if i > 0 {
                    std::thread::sleep(pauses.next());
                }
                if let Err(e) = request(&agent, w, &url, &body) {
                    outcome.fail(e);
                }
            }
            meter.stop(&mut outcome);
            return outcome;
        }
        request(&agent, w, &url, &body).expect("warm-up request");
        meter.start();
        if w == Workload::Concurrent {
            // Blocking I/O: 64 in flight takes 64 threads.
            let budget = Budget(AtomicU64::new(job.requests));
            std::thread::scope(|scope| {
                for _ in 0..IN_FLIGHT {
                    scope.spawn(|| {
                        while budget.take() {
                            request(&agent, w, &url, &body).expect("request");
                        }
                    });
                }
            });
        } else {
            for _ in 0..job.requests {
                request(&agent, w, &url, &body).expect("request");
            }
        }
        meter.stop(&mut outcome);
        outcome
    }
}
