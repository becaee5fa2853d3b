//! 100 concurrent requests on `smol::spawn`. A request owns a clone of its
//! client, so `client.get(url)` moves into a spawned task as it is; the
//! pool caps the connections per host (8 here) and the other requests
//! wait for one to come back. `pool_stats` shows what the pool did.
//!
//! ```sh
//! cargo run --example concurrent                                # against its own loopback server
//! cargo run --example concurrent -- http://127.0.0.1:8080/      # 100 GETs of that URL
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const PER_HOST: usize = 8;

fn main() -> Result<(), smolreq::Error> {
    let given = std::env::args().nth(1);
    let peak = Arc::new(AtomicUsize::new(0));
    let base = given.clone().unwrap_or_else(|| start_server(peak.clone()));
    let client = smolreq::Client::builder().max_connections_per_host(PER_HOST).build()?;

    smol::block_on(async {
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let url = if given.is_some() { base.clone() } else { format!("{base}/{i}") };
                let request = client.get(url); // owns a clone of the client
                smol::spawn(async move {
                    let resp = request.send().await?.error_for_status()?;
                    resp.text().await
                })
            })
            .collect();
        let mut ok = 0;
        for (i, task) in tasks.into_iter().enumerate() {
            let body = task.await?;
            if given.is_none() {
                assert_eq!(body, format!("/{i}"), "each answer names its own path");
            }
            ok += 1;
        }
        let stats = client.pool_stats();
        println!(
            "{ok} requests: {} connections opened, {} reused, {} idle now (at most {PER_HOST} per host)",
            stats.opened, stats.reused, stats.idle
        );
        assert_eq!(ok, 100);
        if given.is_none() {
            // The server keeps connections open, so the pool never needs more than the cap.
            assert!(stats.opened as usize <= PER_HOST, "the per-host cap");
            assert_eq!(stats.opened + stats.reused, 100, "every request took a new or a pooled connection");
            let peak = peak.load(Ordering::SeqCst);
            println!("the server saw at most {peak} connections at once");
            assert!(peak <= PER_HOST);
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// A tiny keep-alive loopback server answering each GET with its path, and
// counting the most connections it had open at once.

fn start_server(peak: Arc<AtomicUsize>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let open = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let now = open.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let open = open.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                let (mut path, mut line) = (String::new(), String::new());
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    if path.is_empty() {
                        path = line.split(' ').nth(1).unwrap_or("/").to_string();
                    } else if line == "\r\n" {
                        let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{path}", path.len());
                        if writer.write_all(answer.as_bytes()).is_err() {
                            break;
                        }
                        path.clear();
                    }
                    line.clear();
                }
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    base
}
