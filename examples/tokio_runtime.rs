//! smolreq inside a tokio program. smolreq's sockets are async-io's, whose
//! reactor runs on its own thread whenever no `async_io::block_on` drives
//! it, so smolreq futures work on a tokio runtime as they are: no
//! compatibility layer, no tokio feature. Here a current-thread runtime
//! runs 20 requests as `tokio::spawn`ed tasks, one of them under
//! `tokio::time::timeout`, which cancels it cleanly.
//!
//! ```sh
//! cargo run --example tokio_runtime                               # against its own loopback server
//! cargo run --example tokio_runtime -- http://127.0.0.1:8080/     # 20 GETs of that URL
//! ```

use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let given = std::env::args().nth(1);
    let url = given.clone().unwrap_or_else(start_server);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    runtime.block_on(async {
        let client = smolreq::Client::new();
        let tasks: Vec<_> = (0..20).map(|_| tokio::spawn(client.get(&url).send())).collect();
        let mut ok = 0;
        for task in tasks {
            let resp = task.await??.error_for_status()?;
            let body = resp.text().await?;
            if given.is_none() {
                assert_eq!(body, "hello from loopback");
            }
            ok += 1;
        }
        println!("{ok} requests spawned on a current-thread tokio runtime: all answered");

        // tokio's timers and cancellation work on smolreq futures too.
        if given.is_none() {
            let before = client.pool_stats();
            let slow = client.get(format!("{url}slow")).send();
            let timed_out = tokio::time::timeout(Duration::from_millis(100), slow).await.is_err();
            println!("a request to a server that never answers, under tokio::time::timeout(100 ms): cancelled");
            assert!(timed_out, "the server never answers /slow");
            // The dropped future gave its connection up: closed, not pooled.
            let after = client.pool_stats();
            assert_eq!((after.leased, after.discarded), (0, before.discarded + 1), "{after:?}");
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// A tiny keep-alive loopback server: "hello from loopback" for every GET,
// except /slow, which is never answered.

fn start_server() -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                let (mut slow, mut line) = (false, String::new());
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    slow |= line.starts_with("GET /slow ");
                    if line == "\r\n" && !slow {
                        let _ = writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 19\r\n\r\nhello from loopback");
                    }
                    line.clear();
                }
            });
        }
    });
    url
}
