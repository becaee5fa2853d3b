//! Small helpers shared by the layers.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;

use async_io::Timer;

use crate::error::{Error, Result};

/// Runs `fut` to completion, or fails with a timeout error once `deadline`
/// passes. Dropping `fut` at the deadline is what closes its connection.
///
/// The future is checked first, so an answer that is already there wins
/// over a deadline that passed while the task was not polled. The timer is
/// only created (and registered) the first time `fut` has to wait.
pub(crate) fn with_deadline<F: Future>(deadline: Option<Instant>, fut: F) -> Deadline<F> {
    Deadline { fut, deadline, timer: None }
}

pin_project_lite::pin_project! {
    /// The future of [`with_deadline`]: `fut` and, once needed, its timer.
    pub(crate) struct Deadline<F> {
        #[pin]
        fut: F,
        deadline: Option<Instant>,
        timer: Option<Timer>,
    }
}

impl<T, F: Future<Output = Result<T>>> Future for Deadline<F> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = self.project();
        if let Poll::Ready(out) = this.fut.poll(cx) {
            return Poll::Ready(out);
        }
        let Some(deadline) = *this.deadline else { return Poll::Pending };
        let timer = this.timer.get_or_insert_with(|| Timer::at(deadline));
        match Pin::new(timer).poll(cx) {
            Poll::Ready(_) => Poll::Ready(Err(Error::timeout())),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Locks `mutex`, ignoring poison: smolreq never panics while holding one
/// of its locks, so if a caller's panic poisoned it anyway, the state is
/// still consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The earlier of two optional deadlines.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The instant `timeout` from now, or `None` (no deadline) when that is too
/// far in the future to be represented: `Duration::MAX` means "never".
pub(crate) fn deadline_after(timeout: std::time::Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}
