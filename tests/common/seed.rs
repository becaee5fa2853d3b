//! Shared pieces of the seed scenario for the reliability tests
//! (`tests/nginx_seed.rs`, `tests/soak.rs`): a deterministic generator,
//! the content of an item and its checksum, and the item response an
//! upstream writes.
//!
//! Include it with `#[path = "common/seed.rs"] mod seed;` (it is not part of
//! `common/mod.rs`, so the other test binaries do not compile it).

#![allow(dead_code)]

use std::fmt::Write as _;

/// SplitMix64: small, fast, and good enough to pick test cases.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The `size` bytes of item `id`: a pseudo-random stream seeded by `id`.
pub fn body_for(id: u64, size: usize) -> Vec<u8> {
    let mut rng = Rng::new(id);
    let mut body = Vec::with_capacity(size + 8);
    while body.len() < size {
        body.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    body.truncate(size);
    body
}

/// FNV-1a, 64 bits.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// How an item response frames its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Length,
    Chunked,
    /// No length: the body ends when the connection closes.
    Eof,
}

impl Framing {
    pub fn as_str(self) -> &'static str {
        match self {
            Framing::Length => "length",
            Framing::Chunked => "chunked",
            Framing::Eof => "eof",
        }
    }
}

/// What `GET /item/{id}?size=N&mode=M[&stall=MS]` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItemQuery {
    pub id: u64,
    pub size: usize,
    pub framing: Framing,
    /// Pause this many milliseconds halfway through the body.
    pub stall_ms: u64,
}

impl ItemQuery {
    pub fn target(&self) -> String {
        let mut t = format!("/item/{}?size={}&mode={}", self.id, self.size, self.framing.as_str());
        if self.stall_ms > 0 {
            let _ = write!(t, "&stall={}", self.stall_ms);
        }
        t
    }

    pub fn parse(target: &str) -> Option<ItemQuery> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let id = path.strip_prefix("/item/")?.parse().ok()?;
        let param = |name: &str| query.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='));
        let size = param("size").and_then(|s| s.parse().ok()).unwrap_or(0);
        let framing = match param("mode") {
            Some("chunked") => Framing::Chunked,
            Some("eof") => Framing::Eof,
            _ => Framing::Length,
        };
        let stall_ms = param("stall").and_then(|s| s.parse().ok()).unwrap_or(0);
        Some(ItemQuery { id, size, framing, stall_ms })
    }
}

/// The head of an item response: `x-id`, `x-checksum` (FNV-1a 64 of the
/// body, hex) and the framing header. `Eof` framing adds `connection: close`.
pub fn item_head(id: u64, body: &[u8], framing: Framing) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 200 OK\r\nx-id: {id}\r\nx-checksum: {:016x}\r\ncontent-type: application/octet-stream\r\n",
        fnv1a64(body)
    );
    match framing {
        Framing::Length => {
            let _ = write!(head, "content-length: {}\r\n\r\n", body.len());
        }
        Framing::Chunked => head.push_str("transfer-encoding: chunked\r\n\r\n"),
        Framing::Eof => head.push_str("connection: close\r\n\r\n"),
    }
    head.into_bytes()
}

/// The body as framed on the wire: chunks of varied sizes (hex in either
/// case) for `Chunked`, the bytes as they are otherwise.
pub fn item_wire_body(id: u64, body: &[u8], framing: Framing) -> Vec<u8> {
    if framing != Framing::Chunked {
        return body.to_vec();
    }
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut rng = Rng::new(id ^ 0xc4c4);
    let mut rest = body;
    while !rest.is_empty() {
        let n = (1 + rng.below(16 * 1024) as usize).min(rest.len());
        let line = if rng.below(2) == 0 { format!("{n:x}\r\n") } else { format!("{n:X}\r\n") };
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// A whole item response (head and framed body).
pub fn item_response(q: &ItemQuery) -> Vec<u8> {
    let body = body_for(q.id, q.size);
    let mut out = item_head(q.id, &body, q.framing);
    out.extend_from_slice(&item_wire_body(q.id, &body, q.framing));
    out
}

/// Checks a received body against what item `id` of `size` bytes must be
/// and against the `x-checksum` the server sent.
pub fn body_is_exact(id: u64, size: usize, checksum_header: Option<&str>, body: &[u8]) -> bool {
    let received = fnv1a64(body);
    let sent = checksum_header.and_then(|v| u64::from_str_radix(v, 16).ok());
    body.len() == size && sent == Some(received) && received == fnv1a64(&body_for(id, size))
}
