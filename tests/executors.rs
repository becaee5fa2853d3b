//! The same scenario under every kind of executor (issue 3, section 10):
//! smolreq spawns no tasks and needs no runtime, so any executor that polls
//! its futures must do.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use common::Server;
use smolreq::{Client, ErrorKind, StatusCode};

const DEADLINE: Duration = Duration::from_secs(15);
const REQUESTS: usize = 20;
const CAP: usize = 4;

/// A keep-alive server whose body for `/N` is `item-N;` repeated 100 times,
/// answered after a short pause so that concurrent requests overlap.
fn item_server() -> Server {
    Server::start(|conn| {
        while let Some(req) = conn.read_request() {
            thread::sleep(Duration::from_millis(5));
            conn.respond(200, &[("Content-Type", "text/plain")], expected_body(&req.target).as_bytes());
        }
    })
}

fn expected_body(target: &str) -> String {
    format!("item-{};", target.trim_start_matches('/')).repeat(100)
}

fn capped_client() -> Client {
    Client::builder().max_connections_per_host(CAP).build().unwrap()
}

/// One request of the scenario (`'static + Send`: see [`scenario`]).
async fn fetch_item(client: Client, base: String, i: usize) {
    let resp = client.get(format!("{base}/{i}")).send().await.unwrap_or_else(|e| panic!("request {i}: {e}"));
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.text().await.unwrap_or_else(|e| panic!("body {i}: {e}"));
    assert_eq!(body, expected_body(&format!("/{i}")), "request {i} got another body");
}

/// The scenario's requests, as futures any executor can run (the return
/// type checks at compile time that they are `Send + 'static`).
fn scenario(client: &Client, base: &str) -> Vec<impl Future<Output = ()> + Send + 'static + use<>> {
    (0..REQUESTS).map(|i| fetch_item(client.clone(), base.to_owned(), i)).collect()
}

/// After `REQUESTS` concurrent requests with a cap of `CAP`: every request
/// was served, the cap held, and every connection went back to the pool.
fn check_concurrent(server: &Server, client: &Client) {
    let stats = client.pool_stats();
    assert_eq!(server.requests(), REQUESTS);
    assert!(server.connections() <= CAP, "cap {CAP} exceeded: {} connections", server.connections());
    assert!(server.connections() >= 2, "the requests did not run concurrently: {} connection", server.connections());
    assert_eq!(stats.opened as usize, server.connections(), "{stats:?}");
    assert_eq!(stats.opened + stats.reused, REQUESTS as u64, "each request opened or reused one: {stats:?}");
    assert_eq!(stats.leased, 0, "{stats:?}");
    assert_eq!(stats.idle, stats.opened as usize, "every connection is idle again: {stats:?}");
}

// ---------------------------------------------------------------------------
// A hand-written executor: block_on with a thread-park waker, and a join.
// ---------------------------------------------------------------------------

struct ParkWaker {
    thread: Thread,
    woken: AtomicBool,
}

impl Wake for ParkWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// Polls `fut` on this thread, parking it until the waker is called.
fn park_block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let state = Arc::new(ParkWaker { thread: thread::current(), woken: AtomicBool::new(false) });
    let waker = Waker::from(state.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        state.woken.store(false, Ordering::SeqCst);
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        while !state.woken.swap(false, Ordering::SeqCst) {
            thread::park();
        }
    }
}

/// Runs every future to completion, polling the unfinished ones on each
/// wake-up; outputs in order.
async fn join_all<F: Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut outs: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        let mut pending = false;
        for (fut, out) in futs.iter_mut().zip(outs.iter_mut()) {
            if out.is_none() {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending { Poll::Pending } else { Poll::Ready(outs.iter_mut().map(|o| o.take().unwrap()).collect()) }
    })
    .await
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn request_and_response_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let client = Client::new();
    let fut = client.get("http://127.0.0.1:1/").send();
    assert_send(&fut);
    drop(fut);
    let body = async { client.get("http://127.0.0.1:1/").send().await.unwrap().bytes().await };
    assert_send(&body);
}

#[test]
fn smol_block_on_with_local_executor() {
    let server = item_server();
    let base = server.url("");
    let client = capped_client();
    let c = client.clone();
    common::with_deadline(DEADLINE, move || {
        let ex = smol::LocalExecutor::new();
        smol::block_on(ex.run(async {
            let tasks: Vec<_> = scenario(&c, &base).into_iter().map(|f| ex.spawn(f)).collect();
            for task in tasks {
                task.await;
            }
        }));
    });
    check_concurrent(&server, &client);
}

#[test]
fn smol_block_on_with_join() {
    let server = item_server();
    let base = server.url("");
    let client = capped_client();
    let c = client.clone();
    common::with_deadline(DEADLINE, move || smol::block_on(join_all(scenario(&c, &base))));
    check_concurrent(&server, &client);
}

#[test]
fn futures_lite_block_on_sequential() {
    let server = item_server();
    let base = server.url("");
    let client = capped_client();
    let c = client.clone();
    common::with_deadline(DEADLINE, move || {
        futures_lite::future::block_on(async {
            for fut in scenario(&c, &base) {
                fut.await;
            }
        })
    });
    let stats = client.pool_stats();
    assert_eq!(server.requests(), REQUESTS);
    assert_eq!(server.connections(), 1, "sequential requests share one connection");
    assert_eq!((stats.opened, stats.reused, stats.leased, stats.idle), (1, REQUESTS as u64 - 1, 0, 1), "{stats:?}");
}

#[test]
fn futures_lite_block_on_with_zip() {
    let server = item_server();
    let base = server.url("");
    let client = capped_client();
    let c = client.clone();
    common::with_deadline(DEADLINE, move || {
        futures_lite::future::block_on(async {
            let mut futs = scenario(&c, &base).into_iter();
            // Five rounds of four concurrent requests.
            for _ in 0..REQUESTS / 4 {
                let mut next = || futs.next().unwrap();
                let (a, b, c, d) = (next(), next(), next(), next());
                futures_lite::future::zip(futures_lite::future::zip(a, b), futures_lite::future::zip(c, d)).await;
            }
        })
    });
    check_concurrent(&server, &client);
}

#[test]
fn futures_lite_block_on_with_join_all() {
    let server = item_server();
    let base = server.url("");
    let client = capped_client();
    let c = client.clone();
    common::with_deadline(DEADLINE, move || futures_lite::future::block_on(join_all(scenario(&c, &base))));
    check_concurrent(&server, &client);
}

#[test]
fn async_executor_local_executor() {
    let server = item_server();
    let base = server.url("");
    let client = capped_client();
    let c = client.clone();
    common::with_deadline(DEADLINE, move || {
        let ex = async_executor::LocalExecutor::new();
        futures_lite::future::block_on(ex.run(async {
            let tasks: Vec<_> = scenario(&c, &base).into_iter().map(|f| ex.spawn(f)).collect();
            for task in tasks {
                task.await;
            }
        }));
    });
    check_concurrent(&server, &client);
}

#[test]
fn async_executor_executor_on_two_threads() {
    let server = item_server();
    let base = server.url("");
    let client = capped_client();
    let c = client.clone();
    common::with_deadline(DEADLINE, move || {
        let ex = Arc::new(async_executor::Executor::new());
        let (stop_tx, stop_rx) = smol::channel::unbounded::<()>();
        let workers: Vec<_> = (0..2)
            .map(|n| {
                let (ex, stop_rx) = (ex.clone(), stop_rx.clone());
                thread::Builder::new()
                    .name(format!("executor-worker-{n}"))
                    .spawn(move || futures_lite::future::block_on(ex.run(stop_rx.recv())))
                    .unwrap()
            })
            .collect();
        let tasks: Vec<_> = scenario(&c, &base).into_iter().map(|f| ex.spawn(f)).collect();
        // The main thread only waits for results; the workers poll.
        futures_lite::future::block_on(async {
            for task in tasks {
                task.await;
            }
        });
        drop(stop_tx);
        for w in workers {
            let _ = w.join().expect("worker thread");
        }
    });
    check_concurrent(&server, &client);
}

#[test]
fn hand_written_executor_concurrent() {
    let server = item_server();
    let base = server.url("");
    let client = capped_client();
    let c = client.clone();
    common::with_deadline(DEADLINE, move || park_block_on(join_all(scenario(&c, &base))));
    check_concurrent(&server, &client);
}

#[test]
fn hand_written_executor_sequential_reuses_connection() {
    let server = item_server();
    let base = server.url("");
    let client = capped_client();
    let c = client.clone();
    common::with_deadline(DEADLINE, move || {
        park_block_on(async {
            for fut in scenario(&c, &base) {
                fut.await;
            }
        })
    });
    assert_eq!(server.connections(), 1);
    assert_eq!(client.pool_stats().reused, REQUESTS as u64 - 1);
}

#[test]
fn hand_written_executor_timeout_fires() {
    // Timers must work without async-io's own block_on driving the reactor.
    let server = Server::start(|conn| {
        conn.read_request();
        conn.wait_peer_close(Duration::from_secs(8));
    });
    let url = server.url("/silent");
    let (err, elapsed) = common::with_deadline(DEADLINE, move || {
        park_block_on(async {
            let client = Client::new();
            let start = Instant::now();
            let err = client.get(url).timeout(Duration::from_millis(500)).send().await.expect_err("no answer");
            assert_eq!(client.pool_stats().leased, 0);
            (err, start.elapsed())
        })
    });
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
    assert!(elapsed >= Duration::from_millis(450) && elapsed < Duration::from_secs(3), "took {elapsed:?}");
}

#[test]
fn custom_executor_example_runs() {
    // Built outside the deadline: compiling is not what is tested.
    let bin = common::example_bin("custom_executor");
    let out = common::with_deadline(DEADLINE, move || {
        let mut child = Command::new(bin)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run custom_executor");
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > Duration::from_secs(12) {
                let _ = child.kill();
                panic!("custom_executor did not finish within 12 s");
            }
            thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exit {}: stderr {}", out.status, String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().next().unwrap_or_default();
    let rest = line
        .strip_prefix("100 requests on one thread: 100 ok, ")
        .unwrap_or_else(|| panic!("unexpected output {stdout:?}"));
    // "<opened> connections opened, <reused> reused"
    let words: Vec<&str> = rest.split_whitespace().collect();
    assert_eq!(words.len(), 5, "unexpected output {stdout:?}");
    assert_eq!(&words[1..3], ["connections", "opened,"]);
    let opened: u64 = words[0].parse().unwrap();
    let reused: u64 = words[3].parse().unwrap();
    assert!((1..=16).contains(&opened), "opened {opened}");
    assert_eq!(opened + reused, 100, "{stdout:?}");
}
