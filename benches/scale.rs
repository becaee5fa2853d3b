//! Scale (issue 7, part 3): 10,000 concurrent connections from one
//! `Client` to a loopback server, client memory per connection and
//! requests per second.
//!
//! ```text
//! cargo bench --bench scale                 # 10,000 connections
//! SCALE_CONNECTIONS=2000 cargo bench --bench scale
//! ```
//!
//! The server runs in a child process (this same binary, started with
//! `SMOLREQ_SCALE_SERVER=1`), so its memory is not counted. The process
//! raises its own `RLIMIT_NOFILE` soft limit to the hard limit (the child
//! inherits it).
//!
//! Phases, with the client's resident memory (`VmRSS` of
//! `/proc/self/status`) read between them:
//!
//! 1. **in flight**: N tasks each send a GET and hold the response head,
//!    body unread, until all N have theirs: N connections open and leased
//!    at once (memory: connections + task futures + responses);
//! 2. **idle**: every body read to its end, every task finished: N
//!    connections idle in the pool (memory: the connections alone, the
//!    number the target is about);
//! 3. **throughput**: N tasks x `ROUNDS` requests over the pooled
//!    connections, requests/s.
//!
//! Kernel socket buffers are not part of a process's RSS, so the figures
//! are the client's own memory per connection.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use smol::lock::Barrier;
use smolreq::Client;

/// Counts live heap bytes and allocations, by size class, so the memory a
/// connection keeps can be told apart from memory the allocator has not
/// given back to the system (which RSS still shows).
struct Counting;

const CLASSES: [usize; 8] = [64, 256, 1024, 4096, 8192, 16384, 65536, usize::MAX];
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_BY_CLASS: [AtomicUsize; 8] = [const { AtomicUsize::new(0) }; 8];
static BYTES_BY_CLASS: [AtomicUsize; 8] = [const { AtomicUsize::new(0) }; 8];

fn class(size: usize) -> usize {
    CLASSES.iter().position(|&c| size <= c).unwrap_or(CLASSES.len() - 1)
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as our caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size(), true);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(layout.size(), false);
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as our caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(layout.size(), false);
            count(new_size, true);
        }
        p
    }
}

fn count(size: usize, add: bool) {
    let c = class(size);
    if add {
        LIVE_BYTES.fetch_add(size, Ordering::Relaxed);
        LIVE_BY_CLASS[c].fetch_add(1, Ordering::Relaxed);
        BYTES_BY_CLASS[c].fetch_add(size, Ordering::Relaxed);
    } else {
        LIVE_BYTES.fetch_sub(size, Ordering::Relaxed);
        LIVE_BY_CLASS[c].fetch_sub(1, Ordering::Relaxed);
        BYTES_BY_CLASS[c].fetch_sub(size, Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Live heap: total bytes, and (count, bytes) per size class.
#[derive(Clone, Copy)]
struct Heap {
    bytes: usize,
    classes: [(usize, usize); 8],
}

fn heap() -> Heap {
    let mut classes = [(0, 0); 8];
    for (i, c) in classes.iter_mut().enumerate() {
        *c = (LIVE_BY_CLASS[i].load(Ordering::Relaxed), BYTES_BY_CLASS[i].load(Ordering::Relaxed));
    }
    Heap { bytes: LIVE_BYTES.load(Ordering::Relaxed), classes }
}

const DEFAULT_CONNECTIONS: usize = 10_000;
const ROUNDS: usize = 10;
const SERVER_ENV: &str = "SMOLREQ_SCALE_SERVER";
const BODY: &[u8] = b"ok";

fn main() {
    if std::env::var_os(SERVER_ENV).is_some() {
        server();
        return;
    }
    let n: usize = std::env::var("SCALE_CONNECTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_CONNECTIONS);
    let nofile = rlimit::increase_nofile_limit(u64::MAX).expect("raise RLIMIT_NOFILE");
    assert!(
        nofile >= n as u64 + 256,
        "RLIMIT_NOFILE is {nofile} after raising the soft limit to the hard one; {n} connections need more \
         (raise the hard limit, e.g. `ulimit -Hn 65536` as root)"
    );

    let (mut child, port) = start_server();
    let url = format!("http://127.0.0.1:{port}/");
    let client = Client::builder()
        .max_connections_per_host(n)
        .max_idle_per_host(n)
        .idle_timeout(Duration::from_secs(600))
        .timeout(Duration::from_secs(120))
        .build()
        .expect("build client");
    let ex = smol::Executor::new();

    // Warm up: reactor, executor, a first connection, the allocator.
    smol::block_on(ex.run(async {
        let body = client.get(&url).send().await.unwrap().bytes().await.unwrap();
        assert_eq!(body, BODY);
    }));
    let rss_base = vm_rss_kib();
    let heap_base = heap();

    // Phase 1: n connections leased at once, each holding its response.
    let barrier = Arc::new(Barrier::new(n + 1));
    let done = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (client, url, barrier, done) = (client.clone(), url.clone(), barrier.clone(), done.clone());
            ex.spawn(async move {
                let resp = client.get(&url).send().await.expect("request");
                barrier.wait().await; // everyone holds an open, leased connection
                barrier.wait().await; // memory measured
                let body = resp.bytes().await.expect("body");
                assert_eq!(body, BODY);
                done.fetch_add(1, Ordering::Relaxed);
            })
        })
        .collect();
    let (rss_in_flight, heap_in_flight, connect_time, stats_in_flight) = smol::block_on(ex.run(async {
        barrier.wait().await;
        let connect_time = start.elapsed();
        let rss = vm_rss_kib();
        let heap = heap();
        let stats = client.pool_stats();
        barrier.wait().await;
        for t in tasks {
            t.await;
        }
        (rss, heap, connect_time, stats)
    }));
    assert_eq!(done.load(Ordering::Relaxed), n);
    let stats_idle = client.pool_stats();
    let rss_idle = vm_rss_kib();
    let heap_idle = heap();

    // Phase 3: throughput over the pooled connections.
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            ex.spawn(async move {
                for _ in 0..ROUNDS {
                    let body = client.get(&url).send().await.expect("request").bytes().await.expect("body");
                    assert_eq!(body, BODY);
                }
            })
        })
        .collect();
    smol::block_on(ex.run(async {
        for t in tasks {
            t.await;
        }
    }));
    let elapsed = start.elapsed();
    let stats_end = client.pool_stats();
    let requests = n * ROUNDS;

    let per = |rss: u64| (rss.saturating_sub(rss_base) as f64) * 1024.0 / n as f64;
    println!("smolreq scale: {n} concurrent connections, one client, loopback server in a child process");
    println!("  RLIMIT_NOFILE (soft, raised)                {nofile}");
    println!("  client RSS before                           {rss_base} KiB");
    println!(
        "  all {n} in flight (leased, head read)     {rss_in_flight} KiB  -> {:.0} bytes per connection (with task + response)",
        per(rss_in_flight)
    );
    println!(
        "  all {n} idle in the pool                  {rss_idle} KiB  -> {:.0} bytes per connection",
        per(rss_idle)
    );
    let per_heap = |h: &Heap| (h.bytes.saturating_sub(heap_base.bytes)) as f64 / n as f64;
    println!("  live heap, in flight                        {:.0} bytes per connection", per_heap(&heap_in_flight));
    println!("  live heap, idle in the pool                 {:.0} bytes per connection", per_heap(&heap_idle));
    println!("  target                                      8192 bytes per connection (beyond kernel buffers)");
    for (what, h) in [("in flight", &heap_in_flight), ("idle", &heap_idle)] {
        println!("  live heap per connection {what}, by allocation size (allocations, bytes):");
        let mut lower = 0;
        for (i, &upper) in CLASSES.iter().enumerate() {
            let ((count, bytes), (count0, bytes0)) = (h.classes[i], heap_base.classes[i]);
            let label = if upper == usize::MAX { format!("> {lower}") } else { format!("{}..={upper}", lower + 1) };
            println!(
                "    {label:<16} {:>6.2} allocations, {:>7.0} bytes",
                count.saturating_sub(count0) as f64 / n as f64,
                bytes.saturating_sub(bytes0) as f64 / n as f64
            );
            lower = upper;
        }
    }
    let send_future = std::mem::size_of_val(&client.get(&url).send());
    println!("  size of a send() future                     {send_future} bytes (part of each in-flight task)");
    println!("  time to open and lease all {n}            {:.2} s", connect_time.as_secs_f64());
    println!(
        "  pool in flight: opened {} leased {}; idle: idle {}; end: opened {} reused {}",
        stats_in_flight.opened, stats_in_flight.leased, stats_idle.idle, stats_end.opened, stats_end.reused
    );
    println!(
        "  throughput: {requests} requests ({n} tasks x {ROUNDS}) in {:.2} s = {:.0} requests/s",
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64()
    );
    assert!(stats_in_flight.opened as usize >= n, "{n} connections were open at once");

    drop(client);
    let _ = child.kill();
    let _ = child.wait();
}

/// Resident set size of this process, KiB.
fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// Starts this binary as the server; returns it and the port it printed.
fn start_server() -> (Child, u16) {
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new(exe)
        .env(SERVER_ENV, "1")
        .stdin(Stdio::piped()) // the server exits when this pipe closes
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the server process");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("read the server's port");
    let port = line.trim().parse().unwrap_or_else(|_| panic!("server printed {line:?}, not a port"));
    (child, port)
}

/// The server: answers every request head with `200 ok`, keep-alive, on
/// a smol executor with one thread per CPU. Exits when stdin closes.
fn server() {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_reuse_address(true).unwrap();
    socket.bind(&"127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
    socket.listen(65_535).unwrap();
    let std_listener: std::net::TcpListener = socket.into();
    let port = std_listener.local_addr().unwrap().port();
    let listener = smol::net::TcpListener::try_from(std_listener).unwrap();
    println!("{port}");
    std::io::stdout().flush().unwrap();
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });

    let ex = Arc::new(smol::Executor::new());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for _ in 1..threads {
        let ex = ex.clone();
        std::thread::spawn(move || smol::block_on(ex.run(smol::future::pending::<()>())));
    }
    let response = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", BODY.len()).into_bytes();
    let response: Arc<[u8]> = [&response[..], BODY].concat().into();
    smol::block_on(ex.run(async {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                smol::Timer::after(Duration::from_millis(5)).await;
                continue;
            };
            let response = response.clone();
            ex.spawn(async move {
                use smol::io::{AsyncReadExt, AsyncWriteExt};
                let _ = stream.set_nodelay(true);
                let mut buf = vec![0u8; 4096];
                let mut filled = 0;
                loop {
                    let Ok(n) = stream.read(&mut buf[filled..]).await else { return };
                    if n == 0 {
                        return;
                    }
                    filled += n;
                    // Answer every complete request head in the buffer.
                    while let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
                        if stream.write_all(&response).await.is_err() {
                            return;
                        }
                        buf.copy_within(end + 4..filled, 0);
                        filled -= end + 4;
                    }
                    if filled == buf.len() {
                        return; // a head larger than 4 KiB: not ours
                    }
                }
            })
            .detach();
        }
    }));
}
