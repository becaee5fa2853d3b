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
        let result = (lookup.host.as_str(), lookup.port).to_socket_addrs().map(Iterator::collect);
        answer(&lookup.slot, result);
    }
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
        let addrs = futures_lite::future::block_on(resolve("localhost", 8080)).unwrap();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.port() == 8080 && a.ip().is_loopback()), "{addrs:?}");
    }

    #[test]
    fn unknown_name_is_an_error_not_a_hang() {
        // `.invalid` is reserved (RFC 2606): it never resolves.
        assert!(futures_lite::future::block_on(resolve("no-such-host.invalid", 80)).is_err());
    }

    #[test]
    fn many_concurrent_lookups_share_a_few_threads() {
        let lookups: Vec<_> = (0..32).map(|i| resolve("localhost", 1000 + i)).collect();
        for (i, lookup) in lookups.into_iter().enumerate() {
            let addrs = futures_lite::future::block_on(lookup).unwrap();
            assert_eq!(addrs[0].port(), 1000 + i as u16);
        }
        assert!(lock(&RESOLVERS).threads <= MAX_THREADS);
    }

    #[test]
    fn abandoned_lookups_are_skipped() {
        for _ in 0..16 {
            drop(resolve("localhost", 1));
        }
        let addrs = futures_lite::future::block_on(resolve("localhost", 2)).unwrap();
        assert_eq!(addrs[0].port(), 2);
    }
}
