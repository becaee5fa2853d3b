//! File descriptor leak check, in its own test binary so no other test's
//! sockets are open in the process while it counts descriptors.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::*;
use futures_lite::{AsyncReadExt, future};
use smol::Timer;
use smolreq::Client;

fn body_for(path: &str) -> String {
    format!("response to {path} ").repeat(50)
}

#[test]
fn no_fd_leak_after_mixed_requests_and_drops() {
    with_deadline(Duration::from_secs(30), || {
        // Warm up the reactor (its epoll and notifier descriptors stay
        // open for the life of the process) before taking the baseline.
        {
            let server = echo_ok_server(b"warm");
            let client = Client::new();
            let text = smol::block_on(async { client.get(server.url("/")).send().await?.text().await }).unwrap();
            assert_eq!(text, "warm");
            drop(client);
            server.wait_closed(1);
        }
        thread::sleep(Duration::from_millis(100));
        let baseline = open_fds();

        let server = Server::start(|conn| {
            while let Some(req) = conn.read_request() {
                if req.target.starts_with("/slow") {
                    thread::sleep(Duration::from_millis(150));
                }
                conn.respond(200, &[], body_for(&req.target).as_bytes());
            }
        });
        let client = Client::builder().max_connections_per_host(4).max_idle_per_host(2).build().unwrap();
        let ex = smol::Executor::new();
        let tasks: Vec<_> = (0..4)
            .map(|t| {
                let client = client.clone();
                let base = server.url("");
                ex.spawn(async move {
                    for i in 0..50 {
                        let kind = i % 5;
                        let path = if kind == 4 { format!("/slow{t}-{i}") } else { format!("/t{t}-{i}") };
                        let url = format!("{base}{path}");
                        match kind {
                            // Read to the end: the connection is pooled.
                            0 | 1 => {
                                let text = client.get(url).send().await.unwrap().text().await.unwrap();
                                assert_eq!(text, body_for(&path));
                            }
                            // Dropped unread.
                            2 => drop(client.get(url).send().await.unwrap()),
                            // Dropped half-read.
                            3 => {
                                let mut resp = client.get(url).send().await.unwrap();
                                let mut buf = [0u8; 16];
                                let n = resp.read(&mut buf).await.unwrap();
                                assert!(n > 0);
                            }
                            // Cancelled before the response head.
                            _ => {
                                let out = future::or(async { Some(client.get(url).send().await) }, async {
                                    Timer::after(Duration::from_millis(30)).await;
                                    None
                                })
                                .await;
                                assert!(out.is_none());
                            }
                        }
                    }
                })
            })
            .collect();
        smol::block_on(ex.run(async {
            for task in tasks {
                task.await;
            }
        }));
        assert_eq!(client.pool_stats().leased, 0);
        assert!(server.requests() >= 4 * 40, "requests served: {}", server.requests());
        drop(client);
        // Every connection is closed by the client once it is gone.
        let start = Instant::now();
        while server.closed() < server.connections() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "connections still open after the client was dropped: {} of {}",
                server.connections() - server.closed(),
                server.connections()
            );
            thread::sleep(Duration::from_millis(10));
        }
        drop(server);
        thread::sleep(Duration::from_millis(200));
        let after = open_fds();
        assert!(after <= baseline + 3, "file descriptors leaked: baseline {baseline}, after {after}");
    });
}
