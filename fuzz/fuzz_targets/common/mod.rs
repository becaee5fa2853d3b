//! Helpers shared by the fuzz targets: a scripted in-memory byte stream,
//! read-size schedules, and a bounded manual poll loop.

#![allow(dead_code)]

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_io::{AsyncRead, AsyncWrite};

/// Read sizes, cycling through a list (an empty list means "everything").
#[derive(Clone, Debug)]
pub struct Sizes {
    sizes: Vec<usize>,
    next: usize,
}

impl Sizes {
    /// Reads of unlimited size.
    pub fn whole() -> Sizes {
        Sizes { sizes: Vec::new(), next: 0 }
    }

    /// Reads of exactly `n` bytes (n > 0).
    pub fn fixed(n: usize) -> Sizes {
        Sizes { sizes: vec![n.max(1)], next: 0 }
    }

    /// Read sizes taken from bytes: each byte is one read of 1 to 256 bytes,
    /// small sizes far more likely.
    pub fn from_bytes(bytes: &[u8]) -> Sizes {
        let sizes = bytes
            .iter()
            .map(|&b| match b >> 6 {
                0 => 1,
                1 => usize::from(b & 7) + 1,
                2 => usize::from(b & 63) + 1,
                _ => usize::from(b) + 1,
            })
            .collect();
        Sizes { sizes, next: 0 }
    }

    /// Pseudo-random sizes of 1 to `max` bytes from `seed` (xorshift).
    pub fn pseudo_random(seed: u64, max: usize, count: usize) -> Sizes {
        let mut x = seed | 1;
        let sizes = (0..count.max(1))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % max.max(1) as u64) as usize + 1
            })
            .collect();
        Sizes { sizes, next: 0 }
    }

    /// The next size, capped to `available`.
    pub fn take(&mut self, available: usize) -> usize {
        if self.sizes.is_empty() {
            return available;
        }
        let n = self.sizes[self.next % self.sizes.len()];
        self.next += 1;
        n.min(available)
    }
}

/// A stream that yields `data` in reads of the given sizes, then EOF.
/// Writes are accepted and discarded.
#[derive(Debug)]
pub struct ReadStream {
    data: Vec<u8>,
    pos: usize,
    sizes: Sizes,
    /// Every `pending_every`-th read returns Pending first (0: never).
    pending_every: usize,
    reads: usize,
    /// Bytes handed to the reader so far, visible after the stream moved.
    delivered: Arc<AtomicUsize>,
}

impl ReadStream {
    pub fn new(data: &[u8], sizes: Sizes) -> ReadStream {
        ReadStream { data: data.to_vec(), pos: 0, sizes, pending_every: 0, reads: 0, delivered: Arc::default() }
    }

    /// A handle on the count of bytes delivered so far.
    pub fn delivered(&self) -> Arc<AtomicUsize> {
        self.delivered.clone()
    }

    /// Makes every `n`-th read return Pending (and wake the task) first.
    pub fn with_pending_every(mut self, n: usize) -> ReadStream {
        self.pending_every = n;
        self
    }
}

impl AsyncRead for ReadStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.reads += 1;
        if self.pending_every > 0 && self.reads.is_multiple_of(self.pending_every) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let available = (self.data.len() - self.pos).min(buf.len());
        let n = self.sizes.take(available);
        let start = self.pos;
        buf[..n].copy_from_slice(&self.data[start..start + n]);
        self.pos += n;
        self.delivered.store(self.pos, Ordering::SeqCst);
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for ReadStream {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A waker that records whether it was woken.
#[derive(Debug, Default)]
pub struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Flag {
    /// Returns whether the flag was set, and clears it.
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::SeqCst)
    }
}

/// A manual executor for one future: a waker that records wake-ups, and a
/// step budget.
pub struct Driver {
    pub flag: Arc<Flag>,
    pub waker: Waker,
    pub steps: usize,
    pub budget: usize,
}

impl Driver {
    pub fn new(budget: usize) -> Driver {
        let flag = Arc::new(Flag::default());
        let waker = Waker::from(flag.clone());
        Driver { flag, waker, steps: 0, budget }
    }

    /// Polls `fut` once, counting the step against the budget. Panics when
    /// the budget is exhausted: the future is looping or hanging.
    pub fn poll<F: Future + ?Sized>(&mut self, fut: Pin<&mut F>) -> Poll<F::Output> {
        self.steps += 1;
        assert!(self.steps <= self.budget, "no progress after {} polls: hang", self.budget);
        fut.poll(&mut Context::from_waker(&self.waker))
    }

    /// Polls something by hand once (a reader, a closure), counting the
    /// step against the budget.
    pub fn step<T>(&mut self, f: impl FnOnce(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
        self.steps += 1;
        assert!(self.steps <= self.budget, "no progress after {} polls: hang", self.budget);
        f(&mut Context::from_waker(&self.waker))
    }

    /// Runs `fut` to completion over streams that wake the task before they
    /// return Pending. A Pending without a wake-up is a lost wake-up: in a
    /// real executor the task would hang forever.
    pub fn block_on<F: Future>(&mut self, fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        loop {
            if let Poll::Ready(out) = self.poll(fut.as_mut()) {
                return out;
            }
            assert!(self.flag.take(), "Pending without a wake-up: the task would hang");
        }
    }
}

/// The final head of `data` parsed in one go, skipping interim (1xx)
/// responses the way a connection does: `None` for an error, a 101, too
/// many interim responses, or an incomplete head.
pub fn one_shot_final(data: &[u8], limits: &smolreq::fuzzing::Limits) -> Option<smolreq::fuzzing::ResponseHead> {
    let mut pos = 0;
    for _ in 0..=32 {
        let (head, len) = smolreq::fuzzing::parse_response_head(&data[pos..], limits).ok()??;
        if head.status() == http::StatusCode::SWITCHING_PROTOCOLS {
            return None;
        }
        if !head.status().is_informational() {
            return Some(head);
        }
        pos += len;
    }
    None
}

/// Asserts two heads are the same.
pub fn assert_same_head(a: &smolreq::fuzzing::ResponseHead, b: &smolreq::fuzzing::ResponseHead) {
    assert_eq!(a.status(), b.status());
    assert_eq!(a.version(), b.version());
    assert_eq!(a.reason(), b.reason());
    assert_eq!(a.headers(), b.headers());
}
