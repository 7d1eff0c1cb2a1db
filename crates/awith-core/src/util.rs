//! Small futures the scopes are built from.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project::pin_project;

use crate::rt::Sleep;

/// A panic payload, as `catch_unwind` returns it.
pub(crate) type Panic = Box<dyn Any + Send + 'static>;

/// Polls a future and turns a panic during a poll into `Err(payload)`.
///
/// After it has returned `Err`, the inner future is poisoned: callers stop
/// polling it (every scope does, by changing state).
#[pin_project]
#[derive(Debug)]
pub(crate) struct CatchUnwind<F> {
    #[pin]
    future: F,
}

impl<F> CatchUnwind<F> {
    pub(crate) fn new(future: F) -> Self {
        CatchUnwind { future }
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Panic>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = self.project().future;
        match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// Runs a future against an optional timer: `Some(output)` if the future
/// finished first, `None` if the timer fired first (the future is then left
/// unpolled and dropped with this value).
#[pin_project]
pub(crate) struct OrTimeout<F> {
    #[pin]
    future: F,
    timer: Option<Sleep>,
}

impl<F> OrTimeout<F> {
    pub(crate) fn new(future: F, timer: Option<Sleep>) -> Self {
        OrTimeout { future, timer }
    }
}

impl<F: Future> Future for OrTimeout<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Some(output));
        }
        match this.timer {
            Some(timer) => timer.as_mut().poll(cx).map(|()| None),
            None => Poll::Pending,
        }
    }
}

/// A readable message from a panic payload.
pub(crate) fn panic_message(payload: &Panic) -> String {
    if let Some(message) = payload.downcast_ref::<&'static str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "<a panic payload that is not a string>".to_owned()
    }
}

/// The smaller of two optional bounds (`None` means unbounded).
pub(crate) fn min_bound(
    a: Option<std::time::Duration>,
    b: Option<std::time::Duration>,
) -> Option<std::time::Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
