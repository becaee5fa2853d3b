//! The connection pool, told as the story of a lease.
//!
//! 1. **Checkout.** [`Pool::checkout`] finds the origin's [`Host`], takes the
//!    most recently used idle connection that is still alive (not expired,
//!    not closed by the server, no unsolicited bytes), or dials a new one if
//!    the origin's slots in use are below its connection cap, or waits in a
//!    FIFO queue until a slot is handed to it.
//! 2. **Use.** The caller gets a [`Lease`]: the connection plus the slot it
//!    occupies. The lease moves into the response body.
//! 3. **Release or close.** Only [`Lease::release`], called by the body
//!    reader at the clean end of a reusable exchange, puts the connection
//!    back (or hands it straight to the first waiter). Dropping a lease in
//!    any other state closes the socket and passes its slot on.
//!
//! There is no background task: idle connections expire lazily, when a
//! checkout or a release next looks at them. A waiter is woken after the
//! host's lock is released, so the task it wakes never runs into that lock.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use http::HeaderValue;

use crate::conn::Conn;
use crate::error::Result;
use crate::proxy::ProxyAddr;
use crate::util::lock;

/// How often, at most, a checkout sweeps all origins for expired idle
/// connections and forgotten hosts.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Pool limits, fixed when the client is built.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolConfig {
    pub max_per_host: usize,
    pub max_idle_per_host: usize,
    pub idle_timeout: Duration,
}

/// A snapshot of the pool's counters, from [`Client::pool_stats`](crate::Client::pool_stats).
///
/// ```
/// let stats = smolreq::Client::new().pool_stats();
/// assert_eq!(stats.opened, 0);
/// assert_eq!(stats.leased, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Connections dialed since the client was built.
    pub opened: u64,
    /// Requests served on an idle connection taken from the pool.
    pub reused: u64,
    /// Connections idle in the pool now.
    pub idle: usize,
    /// Connections lent out now (a request or a response body holds them).
    pub leased: usize,
    /// Requests sent a second time after a reused connection failed before
    /// any response byte arrived.
    pub retried: u64,
    /// Connections closed instead of pooled: expired, closed by the server,
    /// unsolicited bytes, a body not read to its end, an error, or no room.
    pub discarded: u64,
}

/// The origin a connection talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OriginRef<'a> {
    pub tls: bool,
    pub host: &'a str,
    pub port: u16,
    /// The proxy the connection goes through, with its credentials.
    pub proxy: Option<&'a ProxyAddr>,
    /// The `Proxy-Authorization` the proxy gets: connections opened with
    /// other credentials are never reused for this origin.
    pub proxy_auth: Option<&'a HeaderValue>,
}

/// All pooled connections of one client (and its clones).
#[derive(Debug)]
pub(crate) struct Pool {
    config: PoolConfig,
    hosts: Mutex<Hosts>,
    opened: AtomicU64,
    reused: AtomicU64,
    retried: AtomicU64,
    discarded: AtomicU64,
    leased: AtomicUsize,
}

#[derive(Debug)]
struct Hosts {
    list: Vec<Arc<Host>>,
    next_sweep: Instant,
}

/// The connections of one origin.
#[derive(Debug)]
pub(crate) struct Host {
    tls: bool,
    name: Box<str>,
    port: u16,
    proxy: Option<ProxyAddr>,
    proxy_auth: Option<HeaderValue>,
    state: Mutex<HostState>,
}

/// The slots of one origin. A connection holds a slot from its dial to its
/// close, and a grant holds one until its waiter picks it up;
/// [`in_use`](HostState::in_use) counts them against the cap.
///
/// The queue's rule: **a checkout waits only while the slots in use fill
/// the cap.** It holds because of one invariant: *a waiter without a grant
/// exists only while the cap is full, and then no connection is idle.* A
/// checkout queues only when the cap is full and no idle connection serves
/// it; from then on every slot that frees up and every connection that
/// comes back goes to the first waiter without a grant, so neither the
/// count nor the idle list can change under it until the last such waiter
/// is served or leaves. So a checkout that finds room has nobody to
/// overtake, and one that finds none queues at the back: first come, first
/// served. A waiter that was granted its slot but has not picked it up
/// still counts as in use and blocks nobody.
#[derive(Debug, Default)]
struct HostState {
    /// Idle connections, most recently used last.
    idle: Vec<Idle>,
    /// Slots taken apart from the idle ones: connections lent out, being
    /// dialed, or granted to a waiter that has not picked its grant up yet.
    active: usize,
    /// Checkouts waiting for a slot, first come first served.
    waiters: VecDeque<Waiter>,
    next_waiter: u64,
}

impl HostState {
    /// Slots in use: lent out, being dialed, granted, idle.
    fn in_use(&self) -> usize {
        self.active.saturating_add(self.idle.len())
    }

    /// The first waiter still waiting for its turn.
    fn first_ungranted(&mut self) -> Option<&mut Waiter> {
        self.waiters.iter_mut().find(|w| w.grant.is_none())
    }
}

#[derive(Debug)]
struct Idle {
    /// Boxed, here and in a [`Lease`]: a lease, a grant and an idle entry
    /// are moved around by value, and a pointer moves in one instruction
    /// where a whole connection took dozens of bytes of code per move.
    conn: Box<Conn>,
    /// `None`: never (the idle timeout is too long to add to now).
    expires: Option<Instant>,
}

impl Idle {
    fn is_expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|at| now >= at)
    }
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    waker: Option<Waker>,
    grant: Option<Grant>,
}

/// What a waiter is handed when its turn comes.
#[derive(Debug)]
enum Grant {
    /// A slot: the waiter may dial a new connection.
    Slot,
    /// A connection just released by a finished response.
    Conn(Idle),
}

impl Pool {
    pub(crate) fn new(config: PoolConfig) -> Pool {
        Pool {
            config,
            hosts: Mutex::new(Hosts { list: Vec::new(), next_sweep: Instant::now() + SWEEP_INTERVAL }),
            opened: AtomicU64::new(0),
            reused: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
            leased: AtomicUsize::new(0),
        }
    }

    pub(crate) fn stats(&self) -> PoolStats {
        PoolStats {
            opened: self.opened.load(Relaxed),
            reused: self.reused.load(Relaxed),
            idle: lock(&self.hosts).list.iter().map(|host| lock(&host.state).idle.len()).sum(),
            leased: self.leased.load(Relaxed),
            retried: self.retried.load(Relaxed),
            discarded: self.discarded.load(Relaxed),
        }
    }

    pub(crate) fn count_retry(&self) {
        self.retried.fetch_add(1, Relaxed);
    }

    /// Lends out a connection to `origin`: a live idle one (unless `fresh`),
    /// or a new one from `dial` if a slot is free, or else, once its turn
    /// in the queue comes (see [`HostState`]), whatever it is handed.
    ///
    /// Cancel-safe: dropping the returned future at any point frees whatever
    /// slot it held and hands on whatever it was granted.
    pub(crate) async fn checkout<D, F>(self: &Arc<Self>, origin: OriginRef<'_>, fresh: bool, dial: D) -> Result<Lease>
    where
        D: FnOnce() -> F,
        F: Future<Output = Result<crate::transport::Stream>>,
    {
        let host = self.host(origin);
        let cap = self.config.max_per_host;
        let turn = {
            let mut state = lock(&host.state);
            if !fresh && let Some(idle) = self.take_idle(&mut state) {
                state.active += 1;
                drop(state);
                return Ok(self.lease(host, idle.conn, true));
            }
            if fresh && state.in_use() >= cap && !state.idle.is_empty() {
                // A fresh connection is wanted and idle ones fill the cap:
                // close the oldest to make room. Nobody is overtaken: while
                // connections are idle, every waiter has its grant.
                let oldest = state.idle.remove(0);
                self.discard_idle(oldest);
            }
            if state.in_use() < cap {
                debug_assert!(state.first_ungranted().is_none(), "a waiter waits while there is room");
                state.active += 1;
                None
            } else {
                debug_assert!(state.idle.is_empty(), "a checkout waits while a connection is idle");
                let id = state.next_waiter;
                // Ids only tell apart the waiters queued at once.
                state.next_waiter = id.wrapping_add(1);
                state.waiters.push_back(Waiter { id, waker: None, grant: None });
                Some(id)
            }
        };
        // The guard frees the slot if the dial fails or is cancelled. A
        // waiter owns no slot until its grant arrives (until then, a
        // cancelled `WaitTurn` cleans up after itself).
        let mut slot = SlotGuard { pool: self, host: &host, armed: turn.is_none() };
        if let Some(id) = turn {
            let grant = (WaitTurn { pool: self, host: &host, id, finished: false }).await;
            slot.armed = true;
            if let Grant::Conn(mut idle) = grant {
                if !fresh && self.is_alive(&mut idle) {
                    slot.armed = false;
                    return Ok(self.lease(host.clone(), idle.conn, true));
                }
                self.discard_idle(idle);
            }
        }
        let stream = dial().await?;
        slot.armed = false;
        self.opened.fetch_add(1, Relaxed);
        Ok(self.lease(host.clone(), Box::new(Conn::new(stream)), false))
    }

    fn lease(self: &Arc<Self>, host: Arc<Host>, conn: Box<Conn>, reused: bool) -> Lease {
        if reused {
            self.reused.fetch_add(1, Relaxed);
        }
        self.leased.fetch_add(1, Relaxed);
        Lease { pool: self.clone(), host, conn: Some(conn), reused }
    }

    /// Finds (or adds) the host entry of `origin`; now and then sweeps
    /// expired idle connections and forgotten hosts of every origin.
    fn host(&self, origin: OriginRef<'_>) -> Arc<Host> {
        let mut hosts = lock(&self.hosts);
        let now = Instant::now();
        if now >= hosts.next_sweep {
            hosts.next_sweep = now + SWEEP_INTERVAL;
            hosts.list.retain(|host| {
                let mut state = lock(&host.state);
                self.expire_idle(&mut state, now);
                let unused = state.idle.is_empty() && state.active == 0 && state.waiters.is_empty();
                !(unused && Arc::strong_count(host) == 1)
            });
        }
        // A linear scan: clients talk to few origins at once, and comparing
        // a handful of short strings beats hashing one.
        if let Some(host) = hosts.list.iter().find(|h| {
            h.tls == origin.tls
                && h.port == origin.port
                && *h.name == *origin.host
                && h.proxy.as_ref() == origin.proxy
                && h.proxy_auth.as_ref() == origin.proxy_auth
        }) {
            return host.clone();
        }
        let host = Arc::new(Host {
            tls: origin.tls,
            name: origin.host.into(),
            port: origin.port,
            proxy: origin.proxy.cloned(),
            proxy_auth: origin.proxy_auth.cloned(),
            state: Mutex::new(HostState::default()),
        });
        hosts.list.push(host.clone());
        host
    }

    /// Pops idle connections, newest first, until one is alive.
    fn take_idle(&self, state: &mut HostState) -> Option<Idle> {
        while let Some(mut idle) = state.idle.pop() {
            if self.is_alive(&mut idle) {
                return Some(idle);
            }
            self.discarded.fetch_add(1, Relaxed);
        }
        None
    }

    fn is_alive(&self, idle: &mut Idle) -> bool {
        !idle.is_expired(Instant::now()) && idle.conn.is_reusable_idle()
    }

    fn expire_idle(&self, state: &mut HostState, now: Instant) {
        let before = state.idle.len();
        state.idle.retain(|idle| !idle.is_expired(now));
        let expired = before - state.idle.len();
        if expired > 0 {
            self.discarded.fetch_add(expired as u64, Relaxed);
        }
    }

    /// Closes a connection that was idle or granted, and counts it.
    fn discard_idle(&self, idle: Idle) {
        drop(idle);
        self.discarded.fetch_add(1, Relaxed);
    }

    /// Frees one slot of `host`: the first waiter without a grant gets it,
    /// or the slot count goes down. Returns the waiter's waker, to wake once
    /// the lock is released.
    fn free_slot(&self, state: &mut HostState) -> Option<Waker> {
        match state.first_ungranted() {
            Some(waiter) => {
                waiter.grant = Some(Grant::Slot);
                waiter.waker.take()
            }
            None => {
                release_slot(state);
                None
            }
        }
    }

    /// Returns a reusable connection: straight to the first waiter without
    /// a grant, else to the idle list if there is room, else closes it.
    /// Returns the waiter's waker, to wake once the lock is released.
    fn return_conn(&self, state: &mut HostState, idle: Idle) -> Option<Waker> {
        if let Some(waiter) = state.first_ungranted() {
            waiter.grant = Some(Grant::Conn(idle));
            return waiter.waker.take();
        }
        release_slot(state);
        self.expire_idle(state, Instant::now());
        if state.idle.len() < self.config.max_idle_per_host {
            state.idle.push(idle);
        } else {
            self.discard_idle(idle);
        }
        None
    }
}

/// Gives a slot back to the host's free capacity.
fn release_slot(state: &mut HostState) {
    debug_assert!(state.active > 0, "a slot was freed twice");
    state.active = state.active.saturating_sub(1);
}

impl Host {
    /// Changes the host's state under its lock with `change`, then, with
    /// the lock released, wakes the waiter `change` handed something to.
    fn update(&self, change: impl FnOnce(&mut HostState) -> Option<Waker>) {
        let mut state = lock(&self.state);
        let waker = change(&mut state);
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// Holds a slot while a connection is dialed; frees it if the dial fails
/// or the checkout is cancelled.
struct SlotGuard<'a> {
    pool: &'a Pool,
    host: &'a Host,
    armed: bool,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.host.update(|state| self.pool.free_slot(state));
        }
    }
}

/// Waits for this checkout's turn in the host's FIFO queue.
struct WaitTurn<'a> {
    pool: &'a Pool,
    host: &'a Host,
    id: u64,
    finished: bool,
}

impl Future for WaitTurn<'_> {
    type Output = Grant;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Grant> {
        let mut state = lock(&self.host.state);
        let Some(pos) = state.waiters.iter().position(|w| w.id == self.id) else {
            unreachable!("a waiter stays queued until it finishes");
        };
        if state.waiters[pos].grant.is_some() {
            let grant = state.waiters.remove(pos).and_then(|w| w.grant);
            drop(state);
            self.finished = true;
            return Poll::Ready(grant.unwrap_or(Grant::Slot));
        }
        let waiter = &mut state.waiters[pos];
        match &waiter.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => waiter.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for WaitTurn<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Cancelled: leave the queue, and pass on anything already granted.
        self.host.update(|state| {
            let pos = state.waiters.iter().position(|w| w.id == self.id)?;
            match state.waiters.remove(pos)?.grant? {
                Grant::Slot => self.pool.free_slot(state),
                Grant::Conn(idle) => self.pool.return_conn(state, idle),
            }
        });
    }
}

/// A connection lent out by the pool, and the slot it occupies.
///
/// The only way back to the pool is [`Lease::release`]; dropping a lease
/// closes the connection and frees its slot.
#[derive(Debug)]
pub(crate) struct Lease {
    pool: Arc<Pool>,
    host: Arc<Host>,
    conn: Option<Box<Conn>>,
    reused: bool,
}

impl Lease {
    /// The leased connection.
    pub(crate) fn conn(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("a lease holds its connection until it ends")
    }

    /// True if the connection came from the idle list (it carried an
    /// earlier exchange).
    pub(crate) fn is_reused(&self) -> bool {
        self.reused
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Returns the connection to the pool after a complete, reusable
    /// exchange. `keep_alive` is the server's announced idle timeout.
    ///
    /// Called from exactly one place: the response body reader, at the
    /// clean end of a body whose exchange allows reuse.
    pub(crate) fn release(mut self, keep_alive: Option<Duration>) {
        // Everything is decided while the lease still holds its connection,
        // so that if anything went wrong here, dropping the lease would
        // still close the connection and free its slot.
        let idle_timeout = self.pool.config.idle_timeout;
        let timeout = keep_alive.map_or(idle_timeout, |ka| ka.min(idle_timeout));
        // A timeout too long to add to now means the connection never
        // expires.
        let expires = Instant::now().checked_add(timeout);
        if self.conn.as_deref().is_none_or(Conn::has_unread_bytes) {
            // Bytes after the response: whatever they are, they must never
            // be read as the next response. Dropping the lease closes it.
            return;
        }
        let Some(conn) = self.conn.take() else { return };
        self.pool.leased.fetch_sub(1, Relaxed);
        let idle = Idle { conn, expires };
        self.host.update(|state| self.pool.return_conn(state, idle));
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(conn);
            self.pool.leased.fetch_sub(1, Relaxed);
            self.pool.discarded.fetch_add(1, Relaxed);
            self.host.update(|state| self.pool.free_slot(state));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use futures_lite::future::{block_on, poll_once};
    use futures_lite::{AsyncRead, AsyncWrite};

    use super::*;
    use crate::transport::Stream;

    /// A connection that never says anything: alive to the reuse probe.
    struct Quiet;

    impl AsyncRead for Quiet {
        fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, _: &mut [u8]) -> Poll<io::Result<usize>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for Quiet {
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

    const ORIGIN: OriginRef<'static> =
        OriginRef { tls: false, host: "pool.test", port: 80, proxy: None, proxy_auth: None };

    fn pool(max_per_host: usize) -> Arc<Pool> {
        Arc::new(Pool::new(PoolConfig { max_per_host, max_idle_per_host: 8, idle_timeout: Duration::from_secs(90) }))
    }

    fn checkout(pool: &Arc<Pool>, fresh: bool) -> impl Future<Output = Result<Lease>> + '_ {
        pool.checkout(ORIGIN, fresh, || async { Ok(Stream::Custom(Box::new(Quiet))) })
    }

    /// A retry wants a fresh connection while a waiter holds a grant it has
    /// not picked up and an idle connection fills the rest of the cap: the
    /// idle one makes room (nobody waits without a grant), so the retry
    /// does not queue.
    #[test]
    fn fresh_checkout_closes_an_idle_connection_instead_of_waiting() {
        let pool = pool(2);
        let first = block_on(checkout(&pool, false)).unwrap();
        let second = block_on(checkout(&pool, false)).unwrap();
        let mut waiter = Box::pin(checkout(&pool, false));
        assert!(block_on(poll_once(&mut waiter)).is_none(), "the cap is full");
        first.release(None); // handed to the waiter, not picked up yet
        second.release(None); // idle: the cap is full again
        assert_eq!((pool.stats().idle, pool.stats().leased), (1, 0));

        let fresh = block_on(poll_once(Box::pin(checkout(&pool, true))));
        let fresh = fresh.expect("a fresh checkout must make room from an idle connection").unwrap();
        assert!(!fresh.is_reused());
        let stats = pool.stats();
        assert_eq!((stats.opened, stats.idle, stats.discarded, stats.leased), (3, 0, 1, 1), "{stats:?}");

        let waiter = block_on(poll_once(&mut waiter)).expect("the waiter's grant was kept").unwrap();
        assert!(waiter.is_reused());
        assert_eq!(pool.stats().leased, 2);
    }

    /// The same with no waiter at all.
    #[test]
    fn fresh_checkout_closes_the_oldest_idle_connection_at_the_cap() {
        let pool = pool(1);
        block_on(checkout(&pool, false)).unwrap().release(None);
        let fresh = block_on(poll_once(Box::pin(checkout(&pool, true)))).expect("room is made").unwrap();
        assert!(!fresh.is_reused());
        let stats = pool.stats();
        assert_eq!((stats.opened, stats.idle, stats.discarded, stats.leased), (2, 0, 1, 1), "{stats:?}");
    }

    /// A waker that records whether the host's lock was free when it woke.
    struct LockProbe {
        host: Arc<Host>,
        woken_unlocked: AtomicUsize,
        woken_locked: AtomicUsize,
    }

    impl std::task::Wake for LockProbe {
        fn wake(self: Arc<Self>) {
            let counter = if self.host.state.try_lock().is_ok() { &self.woken_unlocked } else { &self.woken_locked };
            counter.fetch_add(1, Relaxed);
        }
    }

    /// Waiters are woken after the host lock is released: by a release
    /// that hands over a connection, and by a cancelled waiter passing its
    /// grant on.
    #[test]
    fn waiters_are_woken_outside_the_host_lock() {
        let pool = pool(1);
        let probe = Arc::new(LockProbe {
            host: pool.host(ORIGIN),
            woken_unlocked: AtomicUsize::new(0),
            woken_locked: AtomicUsize::new(0),
        });
        let waker = Waker::from(probe.clone());
        let mut cx = Context::from_waker(&waker);
        let lease = block_on(checkout(&pool, false)).unwrap();
        let mut first = Box::pin(checkout(&pool, false));
        let mut second = Box::pin(checkout(&pool, false));
        assert!(first.as_mut().poll(&mut cx).is_pending() && second.as_mut().poll(&mut cx).is_pending());
        lease.release(None); // to the first waiter
        drop(first); // cancelled: its connection goes to the second
        assert_eq!(probe.woken_locked.load(Relaxed), 0, "a waker ran under the host lock");
        assert_eq!(probe.woken_unlocked.load(Relaxed), 2);
        assert!(second.as_mut().poll(&mut cx).is_ready());
    }
}
