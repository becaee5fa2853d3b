//! File descriptor leak check, exact: after a mix of full reads, drops,
//! half reads and cancellations, the process has exactly the descriptors it
//! had before, and no socket to the test server is left.
//!
//! Descriptor counts are process-wide, so every test in this binary holds
//! `common::fd_lock()` for its whole run (today there is one; a test added
//! here must hold it too).

mod common;

use std::thread;
use std::time::Duration;

use common::*;
use futures_lite::{AsyncReadExt, future};
use smol::Timer;
use smolreq::Client;

fn body_for(path: &str) -> String {
    format!("response to {path} ").repeat(50)
}

#[test]
fn no_fd_leak_after_mixed_requests_and_drops() {
    let _fds = fd_lock();
    with_deadline(Duration::from_secs(30), || {
        // Warm up what legitimately stays open for the life of the
        // process, before the baseline: async-io's reactor (its epoll and
        // notifier descriptors, created on first use, and its driver
        // thread) through a request and a timer. Nothing else is kept:
        // the requests go to an IP literal, so no resolver thread runs.
        {
            let server = echo_ok_server(b"warm");
            let client = Client::new();
            let text = smol::block_on(async {
                Timer::after(Duration::from_millis(1)).await;
                client.get(server.url("/")).send().await?.text().await
            })
            .unwrap();
            assert_eq!(text, "warm");
            drop(client);
            server.wait_peer_closed(1);
        }
        thread::sleep(Duration::from_millis(100));
        let baseline = open_fd_list();

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
        // Every connection is closed by the client once it is gone: the
        // server sees each one's FIN or RST, and the process holds no socket
        // to the server any more (this count is this test's own).
        server.wait_peer_closed(server.connections());
        assert_eq!(sockets_connected_to(server.addr()), 0, "client sockets to the server left open");
        drop(server);
        // Exactly the baseline: the server's sockets are closed by its
        // threads, so wait (bounded) for them.
        let after = settle_fds(&baseline, Duration::from_secs(5));
        assert_eq!(
            after.len(),
            baseline.len(),
            "file descriptors leaked: baseline {}, after {}; {}",
            baseline.len(),
            after.len(),
            fd_diff(&baseline, &after)
        );
    });
}
