//! A download to disk with a progress line on stderr: the body is streamed
//! into the file piece by piece (`Response::chunk`), never held in memory,
//! showing bytes, percent (when the server sent Content-Length) and rate.
//!
//! ```sh
//! cargo run --example download                                   # 8 MiB from its own loopback server
//! cargo run --example download -- http://127.0.0.1:8080/big.iso big.iso
//! ```

use smol::io::AsyncWriteExt;
use std::io::Write;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (url, served) = match args.next() {
        Some(url) => (url, None),
        None => {
            let (url, served) = start_server();
            (url, Some(served))
        }
    };
    let default_path = std::env::temp_dir().join(format!("smolreq-download-{}.bin", std::process::id()));
    let path = args.next().map_or(default_path, std::path::PathBuf::from);

    smol::block_on(async {
        let mut resp = smolreq::Client::new().get(&url).send().await?.error_for_status()?;
        let total = resp.content_length();
        let mut file = smol::fs::File::create(&path).await?;
        let (start, mut done, mut shown) = (Instant::now(), 0u64, Instant::now());
        while let Some(piece) = resp.chunk().await? {
            file.write_all(&piece).await?;
            done += piece.len() as u64;
            if shown.elapsed().as_millis() >= 100 {
                progress(done, total, start);
                shown = Instant::now();
            }
        }
        file.flush().await?; // smol::fs::File writes in the background: flush before trusting it
        progress(done, total, start);
        eprintln!();
        println!("saved {done} bytes from {url} to {}", path.display());

        let on_disk = std::fs::metadata(&path)?.len();
        assert_eq!(on_disk, done, "bytes on disk");
        if let Some(total) = total {
            assert_eq!(done, total, "bytes against Content-Length");
        }
        if let Some(served) = served {
            assert!(std::fs::read(&path)? == served, "the file differs from what the server sent");
            std::fs::remove_file(&path)?;
        }
        Ok(())
    })
}

/// `\r  4.0 MiB / 8.0 MiB  50%  120.3 MiB/s` on one stderr line, redrawn.
fn progress(done: u64, total: Option<u64>, start: Instant) {
    const MIB: f64 = 1024.0 * 1024.0;
    let rate = done as f64 / MIB / start.elapsed().as_secs_f64().max(1e-3);
    let mut line = format!("\r{:6.1} MiB", done as f64 / MIB);
    if let Some(total) = total.filter(|&t| t > 0) {
        line += &format!(" / {:.1} MiB {:3}%", total as f64 / MIB, done * 100 / total);
    }
    line += &format!("  {rate:.1} MiB/s ");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

// ---------------------------------------------------------------------------
// A tiny loopback server sending 8 MiB of patterned bytes with
// Content-Length, in 64 KiB writes. Returns the URL and the bytes.

fn start_server() -> (String, Vec<u8>) {
    use std::io::{BufRead, BufReader};
    let data: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let url = format!("http://{}/data.bin", listener.local_addr().unwrap());
    let served = data.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                line.clear();
            }
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", data.len());
            let _ = stream.write_all(head.as_bytes());
            for piece in data.chunks(64 << 10) {
                if stream.write_all(piece).is_err() {
                    break;
                }
            }
        }
    });
    (url, served)
}
