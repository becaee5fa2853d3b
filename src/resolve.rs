//! Host name resolution without a runtime.
//!
//! The operating system's resolver (`getaddrinfo`) blocks, so lookups run
//! on a few helper threads: at most [`MAX_THREADS`] at once, started on
//! demand, each ending as soon as no lookup is queued. This is the one
//! place smolreq does work outside the caller's task; IP literals never
//! get here, and a connection to a host name does a lookup only when it
//! is dialed, never per request.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::util::lock;

/// Most resolver threads alive at once; further lookups wait in a queue.
const MAX_THREADS: usize = 4;

/// Where a lookup's answer goes, and who to wake when it is there.
#[derive(Default)]
struct Slot {
    result: Option<io::Result<Vec<SocketAddr>>>,
    waker: Option<Waker>,
}

struct Lookup {
    host: String,
    port: u16,
    slot: Arc<Mutex<Slot>>,
}

struct Resolvers {
    queue: VecDeque<Lookup>,
    threads: usize,
}

static RESOLVERS: Mutex<Resolvers> = Mutex::new(Resolvers { queue: VecDeque::new(), threads: 0 });

/// Resolves `host:port` to socket addresses on a helper thread.
pub(crate) fn resolve(host: &str, port: u16) -> Resolve {
    let slot = Arc::new(Mutex::new(Slot::default()));
    let mut resolvers = lock(&RESOLVERS);
    resolvers.queue.push_back(Lookup { host: host.to_owned(), port, slot: slot.clone() });
    if resolvers.threads < MAX_THREADS {
        resolvers.threads += 1;
        drop(resolvers);
        if let Err(e) = std::thread::Builder::new().name("smolreq-resolve".into()).spawn(work) {
            let mut resolvers = lock(&RESOLVERS);
            resolvers.threads -= 1;
            if resolvers.threads == 0 {
                // Nobody is left to serve the queue: fail what is in it.
                for lookup in resolvers.queue.drain(..) {
                    answer(&lookup.slot, Err(io::Error::new(e.kind(), "could not start a resolver thread")));
                }
            }
        }
    }
    Resolve { slot }
}

/// A resolver thread: serves queued lookups until the queue is empty.
fn work() {
    loop {
        let lookup = {
            let mut resolvers = lock(&RESOLVERS);
            match resolvers.queue.pop_front() {
                Some(lookup) => lookup,
                None => {
                    resolvers.threads -= 1;
                    return;
                }
            }
        };
        if Arc::strong_count(&lookup.slot) == 1 {
            continue; // the caller gave up (timeout, cancellation)
        }
        answer(&lookup.slot, lookup_blocking(&lookup.host, lookup.port));
    }
}

/// The blocking lookup a resolver thread runs. Unit tests swap in
/// scripted names (`*.gate.test`) to observe the threads and the queue.
fn lookup_blocking(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    #[cfg(test)]
    if let Some(result) = tests::scripted_lookup(host, port) {
        return result;
    }
    (host, port).to_socket_addrs().map(Iterator::collect)
}

fn answer(slot: &Mutex<Slot>, result: io::Result<Vec<SocketAddr>>) {
    let waker = {
        let mut slot = lock(slot);
        slot.result = Some(result);
        slot.waker.take()
    };
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// The answer to one lookup. Dropping it abandons the lookup.
pub(crate) struct Resolve {
    slot: Arc<Mutex<Slot>>,
}

impl Future for Resolve {
    type Output = io::Result<Vec<SocketAddr>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = lock(&self.slot);
        match slot.result.take() {
            Some(result) => Poll::Ready(result),
            None => {
                match &slot.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => slot.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_localhost() {
        let _serial = GATE_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let addrs = futures_lite::future::block_on(resolve("localhost", 8080)).unwrap();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.port() == 8080 && a.ip().is_loopback()), "{addrs:?}");
    }

    #[test]
    fn unknown_name_is_an_error_not_a_hang() {
        let _serial = GATE_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        // `.invalid` is reserved (RFC 2606): it never resolves.
        assert!(futures_lite::future::block_on(resolve("no-such-host.invalid", 80)).is_err());
    }

    /// Scripted names for the tests below: a lookup of `*.gate.test` is
    /// counted, then blocks until the gate opens and answers 127.0.0.1.
    /// Other names go to the system resolver.
    struct Gate {
        open: bool,
        running: usize,
        peak: usize,
        started: Vec<String>,
    }

    static GATE: Mutex<Gate> = Mutex::new(Gate { open: true, running: 0, peak: 0, started: Vec::new() });
    static GATE_CHANGED: std::sync::Condvar = std::sync::Condvar::new();
    /// The gate is process-wide: tests that use it run one at a time.
    static GATE_TESTS: Mutex<()> = Mutex::new(());

    pub(super) fn scripted_lookup(host: &str, port: u16) -> Option<io::Result<Vec<SocketAddr>>> {
        if !host.ends_with(".gate.test") {
            return None;
        }
        let mut gate = lock(&GATE);
        gate.running += 1;
        gate.peak = gate.peak.max(gate.running);
        gate.started.push(host.to_owned());
        GATE_CHANGED.notify_all();
        while !gate.open {
            gate = GATE_CHANGED.wait(gate).unwrap_or_else(|e| e.into_inner());
        }
        gate.running -= 1;
        Some(Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))]))
    }

    fn close_gate() -> std::sync::MutexGuard<'static, ()> {
        let serial = GATE_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let mut gate = lock(&GATE);
        *gate = Gate { open: false, running: 0, peak: 0, started: Vec::new() };
        serial
    }

    fn open_gate() {
        lock(&GATE).open = true;
        GATE_CHANGED.notify_all();
    }

    /// Waits (at most 5 s) until `n` gated lookups are blocked in the gate.
    fn wait_running(n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut gate = lock(&GATE);
        while gate.running < n {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(!left.is_zero(), "only {} of {n} lookups started", gate.running);
            gate = GATE_CHANGED.wait_timeout(gate, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    #[test]
    fn many_concurrent_lookups_share_a_few_threads() {
        let _serial = close_gate();
        let lookups: Vec<_> = (0..32).map(|i| resolve(&format!("n{i}.gate.test"), 1000 + i)).collect();
        wait_running(MAX_THREADS);
        // Give surplus threads (if the cap were broken) time to show up.
        std::thread::sleep(std::time::Duration::from_millis(100));
        {
            let gate = lock(&GATE);
            assert_eq!(gate.running, MAX_THREADS, "lookups running at once");
            // The first ones queued are the ones running (FIFO).
            let mut started = gate.started.clone();
            started.sort();
            let mut first: Vec<String> = (0..MAX_THREADS).map(|i| format!("n{i}.gate.test")).collect();
            first.sort();
            assert_eq!(started, first);
        }
        assert_eq!(lock(&RESOLVERS).queue.len(), 32 - MAX_THREADS, "the rest wait in the queue");
        open_gate();
        for (i, lookup) in lookups.into_iter().enumerate() {
            let addrs = futures_lite::future::block_on(lookup).unwrap();
            assert_eq!(addrs, [SocketAddr::from(([127, 0, 0, 1], 1000 + i as u16))]);
        }
        let gate = lock(&GATE);
        assert_eq!(gate.peak, MAX_THREADS);
        assert_eq!(gate.started.len(), 32, "every lookup ran once");
    }

    #[test]
    fn abandoned_lookups_are_skipped() {
        let _serial = close_gate();
        // Occupy every thread, then queue lookups and abandon them.
        let busy: Vec<_> = (0..MAX_THREADS as u16).map(|i| resolve(&format!("busy{i}.gate.test"), i)).collect();
        wait_running(MAX_THREADS);
        for i in 0..16 {
            drop(resolve(&format!("dropped{i}.gate.test"), 1));
        }
        let kept = resolve("kept.gate.test", 2);
        open_gate();
        let addrs = futures_lite::future::block_on(kept).unwrap();
        assert_eq!(addrs[0].port(), 2);
        for lookup in busy {
            futures_lite::future::block_on(lookup).unwrap();
        }
        let gate = lock(&GATE);
        let ran_dropped: Vec<_> = gate.started.iter().filter(|h| h.starts_with("dropped")).collect();
        assert!(ran_dropped.is_empty(), "abandoned lookups were run: {ran_dropped:?}");
        assert_eq!(gate.started.len(), MAX_THREADS + 1);
    }

    #[test]
    fn threads_end_when_the_queue_is_empty() {
        let _serial = close_gate();
        let lookups: Vec<_> = (0..MAX_THREADS as u16).map(|i| resolve(&format!("t{i}.gate.test"), i)).collect();
        wait_running(MAX_THREADS);
        open_gate();
        for lookup in lookups {
            futures_lite::future::block_on(lookup).unwrap();
        }
        // Each thread ends as soon as it finds the queue empty.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while lock(&RESOLVERS).threads > 0 {
            assert!(std::time::Instant::now() < deadline, "resolver threads did not end");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
