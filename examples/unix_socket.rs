//! HTTP over a Unix socket, through `ClientBuilder::connector`: every
//! connection the client opens is an `async_net::unix::UnixStream` to one
//! socket path, whatever the URL's host (which still goes in the Host
//! header). This is how one talks to local daemons such as Docker's.
//!
//! ```sh
//! cargo run --example unix_socket                                         # its own server on a temp socket
//! cargo run --example unix_socket -- /var/run/docker.sock http://localhost/version
//! ```

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (socket, url, own_server) = match (args.next(), args.next()) {
        (Some(socket), Some(url)) => (PathBuf::from(socket), url, false),
        (Some(_), None) => return Err("usage: unix_socket [SOCKET_PATH URL]".into()),
        (None, _) => (start_server()?, "http://localhost/hello".to_string(), true),
    };

    let path = socket.clone();
    let client = smolreq::Client::builder()
        .connector(move |_dest: smolreq::Destination| async_net::unix::UnixStream::connect(path.clone()))
        .build()?;

    smol::block_on(async {
        for _ in 0..3 {
            let resp = client.get(&url).send().await?.error_for_status()?;
            let body = resp.text().await?;
            println!("GET {url} over {}: {body}", socket.display());
            if own_server {
                assert_eq!(body, "hello over a unix socket, host localhost");
            }
        }
        let stats = client.pool_stats();
        println!("connections opened: {}, requests on a reused one: {}", stats.opened, stats.reused);
        if own_server {
            assert_eq!((stats.opened, stats.reused), (1, 2), "one pooled connection for all three");
            std::fs::remove_file(&socket)?;
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// A tiny keep-alive server on a Unix socket in the temp directory, greeting
// the Host it was sent.

fn start_server() -> std::io::Result<PathBuf> {
    use std::io::{BufRead, BufReader, Write};
    let path = std::env::temp_dir().join(format!("smolreq-example-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path)?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                let (mut host, mut line) = (String::new(), String::new());
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("host:") {
                        host = v.trim().to_string();
                    } else if line == "\r\n" {
                        let text = format!("hello over a unix socket, host {host}");
                        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", text.len());
                        let _ = writer.write_all((head + &text).as_bytes());
                    }
                    line.clear();
                }
            });
        }
    });
    Ok(path)
}
