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
/// over a deadline that passed while the task was not polled. Every poll
/// that leaves `fut` pending checks the deadline (the timer compares the
/// clock when polled, it does not wait for the reactor), so a future that
/// wakes itself at once and stays pending still times out. What this
/// cannot bound is a single poll of `fut` that never returns: each loop
/// inside `fut` over a stream that is always ready must either be bounded
/// or check the deadline itself, as the response body does. The timer is
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

pin_project_lite::pin_project! {
    /// A future polled by a function of its own, never inlined: an async fn
    /// awaited in several places then compiles to one state machine that
    /// all of them call, instead of a copy inlined into some of them.
    pub(crate) struct OutOfLine<F> {
        #[pin]
        fut: F,
    }
}

/// Wraps `fut` in [`OutOfLine`].
pub(crate) fn out_of_line<F: Future>(fut: F) -> OutOfLine<F> {
    OutOfLine { fut }
}

impl<F: Future> Future for OutOfLine<F> {
    type Output = F::Output;

    #[inline(never)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().fut.poll(cx)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A future that stays pending but wakes its task at once, like a
    /// stream that always has a little more: only the deadline should end
    /// it. It gives up with `Ok` after `give_up`, so a missed deadline
    /// fails the test instead of hanging it.
    struct Spin {
        give_up: Instant,
    }

    impl Future for Spin {
        type Output = Result<()>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
            if Instant::now() >= self.give_up {
                return Poll::Ready(Ok(()));
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    #[test]
    fn a_future_that_wakes_itself_forever_times_out() {
        let deadline = Instant::now() + Duration::from_millis(50);
        let err = futures_lite::future::block_on(with_deadline(
            Some(deadline),
            Spin { give_up: deadline + Duration::from_secs(5) },
        ))
        .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Timeout);
        assert!(Instant::now() >= deadline);
    }

    #[test]
    fn an_answer_that_is_there_wins_over_a_passed_deadline() {
        let passed = Instant::now() - Duration::from_millis(10);
        let out = futures_lite::future::block_on(with_deadline(Some(passed), async { Ok(7) }));
        assert_eq!(out.unwrap(), 7);
    }
}
