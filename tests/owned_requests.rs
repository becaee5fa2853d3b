//! Requests own their client (issue 12): a `RequestBuilder` and its `send()`
//! future are `'static + Send`, so they can be spawned, stored and returned
//! from functions, also once every other handle to the client is gone.

mod common;

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::*;
use smolreq::{Client, RequestBuilder, StatusCode};

const DEADLINE: Duration = Duration::from_secs(15);

/// Compile-time check: `value` may move to another thread and live forever.
fn assert_static_send<T: Send + 'static>(value: T) -> T {
    value
}

/// A builder whose client is a local of this function, dropped on return.
fn builder_from_a_dropped_client(url: &str) -> RequestBuilder {
    let client = Client::builder().user_agent("owned-test").build().unwrap();
    client.get(url).header("x-made-by", "builder_from_a_dropped_client")
}

/// A keep-alive server answering `/N` with `body-N`.
fn numbered_server() -> Server {
    Server::start(|conn| {
        while let Some(req) = conn.read_request() {
            conn.respond(200, &[], format!("body-{}", req.target.trim_start_matches('/')).as_bytes());
        }
    })
}

#[test]
fn twenty_requests_spawned_on_smol() {
    with_deadline(DEADLINE, || {
        let server = numbered_server();
        let client = Client::new();
        smol::block_on(async {
            // The future of `send()` is moved into the task as it is: it
            // borrows neither the client nor the URL.
            let tasks: Vec<_> = (0..20).map(|i| smol::spawn(client.get(server.url(&format!("/{i}"))).send())).collect();
            for (i, task) in tasks.into_iter().enumerate() {
                let resp = task.await.unwrap_or_else(|e| panic!("request {i}: {e}"));
                assert_eq!(resp.status(), StatusCode::OK);
                assert_eq!(resp.text().await.unwrap(), format!("body-{i}"), "request {i} got another body");
            }
        });
        assert_eq!(server.requests(), 20);
        let targets: HashSet<String> = server.received().into_iter().map(|r| r.target).collect();
        assert_eq!(targets.len(), 20, "every request reached the server once");
        server.assert_no_handler_panics();
    });
}

#[test]
fn requests_on_a_multi_threaded_executor() {
    with_deadline(DEADLINE, || {
        let server = numbered_server();
        let client = Client::builder().max_connections_per_host(4).build().unwrap();
        let executor = Arc::new(async_executor::Executor::new());
        let (stop, stopped) = smol::channel::unbounded::<()>();
        let pollers = Arc::new(Mutex::new(HashSet::new()));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (executor, stopped) = (executor.clone(), stopped.clone());
                thread::spawn(move || smol::block_on(executor.run(stopped.recv())))
            })
            .collect();
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let send = client.get(server.url(&format!("/{i}"))).send();
                let pollers = pollers.clone();
                executor.spawn(async move {
                    let resp = send.await?;
                    pollers.lock().unwrap().insert(thread::current().id());
                    resp.text().await
                })
            })
            .collect();
        smol::block_on(async {
            for (i, task) in tasks.into_iter().enumerate() {
                assert_eq!(task.await.unwrap(), format!("body-{i}"));
            }
        });
        drop(stop);
        for thread in threads {
            let _ = thread.join().unwrap(); // the channel closed: executor.run ended
        }
        let main = thread::current().id();
        assert!(!pollers.lock().unwrap().contains(&main), "the requests ran on the executor's threads");
        assert_eq!(server.requests(), 20);
        assert!(client.pool_stats().opened <= 4, "the cap holds across threads");
    });
}

#[test]
fn a_builder_outlives_the_client_it_came_from() {
    with_deadline(DEADLINE, || {
        let server = echo_ok_server(b"ok");
        let builder = assert_static_send(builder_from_a_dropped_client(&server.url("/owned")));
        let send = assert_static_send(builder.send());
        let body = smol::block_on(async { send.await.unwrap().text().await.unwrap() });
        assert_eq!(body, "ok");
        let received = server.received();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].target, "/owned");
        assert_eq!(received[0].header("x-made-by"), Some("builder_from_a_dropped_client"));
        // The builder carried the dropped client's settings.
        assert_eq!(received[0].header("user-agent"), Some("owned-test"));
    });
}

#[test]
fn a_builder_shares_the_pool_of_its_client() {
    with_deadline(DEADLINE, || {
        let server = echo_ok_server(b"ok");
        let client = Client::new();
        let keep = client.clone();
        let builder = client.get(server.url("/1"));
        drop(client);
        smol::block_on(async {
            assert_eq!(builder.send().await.unwrap().text().await.unwrap(), "ok");
            // The connection went back to the pool the clones share.
            assert_eq!(keep.get(server.url("/2")).send().await.unwrap().text().await.unwrap(), "ok");
        });
        assert_eq!(server.connections(), 1, "the second request reused the first one's connection");
        assert_eq!(keep.pool_stats().reused, 1);
    });
}

#[test]
fn execute_returns_an_owned_future() {
    with_deadline(DEADLINE, || {
        let server = echo_ok_server(b"ok");
        let request = smolreq::http::Request::get(server.url("/exec")).header("x-a", "1").body(Vec::new()).unwrap();
        let send = assert_static_send(Client::new().execute(request));
        let body = smol::block_on(async { smol::spawn(send).await.unwrap().text().await.unwrap() });
        assert_eq!(body, "ok");
        assert_eq!(server.received()[0].header("x-a"), Some("1"));
    });
}

/// A library function a user might write: it returns a request future
/// without keeping a client or a builder alive itself.
fn fetch(url: String) -> impl Future<Output = smolreq::Result<String>> + Send + 'static {
    let send = Client::new().get(url).send();
    async move { send.await?.text().await }
}

#[test]
fn a_function_can_return_a_request_future() {
    with_deadline(DEADLINE, || {
        let server = echo_ok_server(b"ok");
        let body = smol::block_on(smol::spawn(fetch(server.url("/f")))).unwrap();
        assert_eq!(body, "ok");
    });
}
