//! Small helpers shared by the layers.

use std::future::Future;
use std::time::Instant;

use async_io::Timer;

use crate::error::{Error, Result};

/// Runs `fut` to completion, or fails with a timeout error once `deadline`
/// passes. Dropping `fut` at the deadline is what closes its connection.
pub(crate) async fn with_deadline<T>(deadline: Option<Instant>, fut: impl Future<Output = Result<T>>) -> Result<T> {
    match deadline {
        None => fut.await,
        Some(deadline) => {
            futures_lite::future::or(fut, async {
                Timer::at(deadline).await;
                Err(Error::timeout())
            })
            .await
        }
    }
}

/// The earlier of two optional deadlines.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
