//! What the child process measures about itself: allocations (a counting
//! global allocator), CPU time and peak RSS (getrusage), and CPU pinning.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Counts every allocation (alloc, alloc_zeroed and realloc each count as
/// one) and the bytes requested, then defers to the system allocator.
pub struct CountingAlloc;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

/// Set while `--alloc-sites` wants each allocation's call stack.
pub static TRACE: AtomicBool = AtomicBool::new(false);

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[inline]
fn count(size: usize) {
    ALLOCS.fetch_add(1, Relaxed);
    BYTES.fetch_add(size as u64, Relaxed);
    if TRACE.load(Relaxed) {
        crate::sites::record(size);
    }
}

/// A snapshot of the child's own costs.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot {
    pub allocs: u64,
    pub bytes: u64,
    /// User plus system CPU time of the whole process (all threads).
    pub cpu: Duration,
    /// User CPU time alone.
    pub user: Duration,
}

pub fn snapshot() -> Snapshot {
    let usage = rusage();
    Snapshot { allocs: ALLOCS.load(Relaxed), bytes: BYTES.load(Relaxed), cpu: usage.cpu, user: usage.user }
}

pub struct Usage {
    /// User plus system CPU time.
    pub cpu: Duration,
    pub user: Duration,
    pub max_rss_kb: u64,
}

/// CPU time and peak RSS of this process (all its threads).
pub fn rusage() -> Usage {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let user = tv(usage.ru_utime);
    Usage { cpu: user + tv(usage.ru_stime), user, max_rss_kb: usage.ru_maxrss as u64 }
}

/// Number of CPUs online (not the affinity mask, which pinning narrows).
pub fn cpus_online() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}

/// Pins the calling thread (and every thread it creates later) to `cpu`.
/// Returns false when the machine has fewer CPUs (nothing is pinned).
pub fn pin_to(cpu: usize) -> bool {
    if cpus_online() < 2 {
        return false;
    }
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET stays in bounds.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}
