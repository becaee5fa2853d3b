//! The smallest useful program: GET a URL and print its body.
//!
//! ```text
//! minimal URL
//! ```
//!
//! `scripts/size.sh` builds it with and without the `native-tls` feature to
//! measure what TLS adds to a binary.

use std::io::Write;

fn main() {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: minimal URL");
        std::process::exit(2);
    };
    let result = futures_lite::future::block_on(async {
        let response = smolreq::Client::new().get(url.as_str()).send().await?;
        response.bytes().await
    });
    match result {
        Ok(body) => {
            let _ = std::io::stdout().write_all(&body);
        }
        Err(e) => {
            eprintln!("minimal: {e}");
            std::process::exit(1);
        }
    }
}
