//! A JSON API client: send a struct as JSON, read the answer back into a
//! struct, and turn an error status into an error with `error_for_status`.
//!
//! ```sh
//! cargo run --example json_api --features json                 # against its own loopback server
//! cargo run --example json_api --features json -- http://127.0.0.1:8080   # an API with POST /items, GET /items/missing
//! ```

use serde::{Deserialize, Serialize};
use smolreq::{ErrorKind, StatusCode};

#[derive(Serialize)]
struct NewItem<'a> {
    name: &'a str,
    tags: Vec<&'a str>,
}

#[derive(Debug, Deserialize)]
struct Item {
    id: u64,
    name: String,
    tags: Vec<String>,
}

fn main() -> Result<(), smolreq::Error> {
    let base = std::env::args().nth(1).unwrap_or_else(start_server);
    let client = smolreq::Client::new();
    smol::block_on(async {
        // POST a JSON body (content-type: application/json is set for us).
        let item: Item = client
            .post(format!("{base}/items"))
            .json(&NewItem { name: "teapot", tags: vec!["kitchen", "tea"] })
            .send()
            .await?
            .error_for_status()? // 4xx and 5xx become ErrorKind::Status
            .json()
            .await?;
        println!("created {item:?}");
        assert_eq!((item.name.as_str(), item.tags.len()), ("teapot", 2), "the server's echo");
        assert!(item.id > 0);

        // A 404 as an error carrying the status and the URL.
        let err = client.get(format!("{base}/items/missing")).send().await?.error_for_status().unwrap_err();
        println!("GET /items/missing: {err}");
        assert_eq!(err.kind(), ErrorKind::Status);
        assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// A tiny loopback API: POST /items echoes the item with an id, anything
// else is a 404.

fn start_server() -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for (id, stream) in listener.incoming().flatten().enumerate() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            // One request per connection is enough here; keep-alive would be the same loop.
            let (mut head, mut line) = (String::new(), String::new());
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                head.push_str(&line.to_ascii_lowercase());
                line.clear();
            }
            let len =
                head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let response = if head.starts_with("post /items ") {
                // `{"name":..}` becomes `{"id":N,"name":..}`.
                let json = format!("{{\"id\":{},{}", id + 1, &String::from_utf8(body).unwrap()[1..]);
                format!(
                    "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{json}",
                    json.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\nconnection: close\r\n\r\nnot found".to_string()
            };
            let _ = writer.write_all(response.as_bytes());
        }
    });
    base
}
