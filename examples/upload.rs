//! A streamed file upload: `body_reader` sends a file straight from disk
//! with its length as Content-Length, so it is never loaded in memory.
//! `smol::Unblock` turns the blocking `std::fs::File` into an `AsyncRead`
//! (reads run on a thread pool).
//!
//! ```sh
//! cargo run --example upload                                   # 4 MiB to its own loopback server
//! cargo run --example upload -- http://127.0.0.1:8080/upload some.file
//! ```

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (url, path, own_server) = match (args.next(), args.next()) {
        (Some(url), Some(path)) => (url, path.into(), false),
        (Some(_), None) => return Err("usage: upload [URL FILE]".into()),
        (None, _) => {
            // A file to send: 4 MiB of patterned bytes in the temp directory.
            let path = std::env::temp_dir().join(format!("smolreq-upload-{}.bin", std::process::id()));
            std::fs::write(&path, (0..4u32 << 20).map(|i| (i % 251) as u8).collect::<Vec<_>>())?;
            (start_server(), path, true)
        }
    };

    smol::block_on(async {
        let file = std::fs::File::open(&path)?;
        let len = file.metadata()?.len();
        let resp = smolreq::Client::new()
            .put(&url)
            .header("content-type", "application/octet-stream")
            .body_reader(smol::Unblock::new(file), Some(len))
            .send()
            .await?
            .error_for_status()?;
        let answer = resp.text().await?;
        println!("sent {} ({len} bytes) to {url}: {answer}", path.display());

        if own_server {
            // The check, not the upload, reads the file into memory.
            let expected: u64 = std::fs::read(&path)?.iter().map(|&b| u64::from(b)).sum();
            assert_eq!(answer, format!("received {len} bytes, sum {expected}"));
            std::fs::remove_file(&path)?;
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// A tiny loopback server that reads the body as it arrives and answers with
// its length and the sum of its bytes.

fn start_server() -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let url = format!("http://{}/upload", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut len, mut line) = (0, String::new());
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                line.clear();
            }
            let (mut got, mut sum, mut buf) = (0, 0u64, [0u8; 16 << 10]);
            let mut body = reader.take(len);
            while let Ok(n @ 1..) = body.read(&mut buf) {
                got += n;
                sum += buf[..n].iter().map(|&b| u64::from(b)).sum::<u64>();
            }
            let text = format!("received {got} bytes, sum {sum}");
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", text.len());
            let _ = stream.write_all((head + &text).as_bytes());
        }
    });
    url
}
