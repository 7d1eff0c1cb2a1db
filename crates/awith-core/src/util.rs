//! Small futures the scopes are built from.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project::pin_project;

use crate::exit::Cancel;
use crate::rt::Sleep;
use crate::time::cancelling;

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
/// finished first, `None` if the timer fired first — the future is then
/// dropped at once, as a cancellation with `Cancel::Timeout`.
#[pin_project]
pub(crate) struct OrTimeout<F> {
    #[pin]
    future: Option<F>,
    timer: Option<Sleep>,
}

impl<F> OrTimeout<F> {
    pub(crate) fn new(future: F, timer: Option<Sleep>) -> Self {
        OrTimeout {
            future: Some(future),
            timer,
        }
    }
}

impl<F: Future> Future for OrTimeout<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(future) = this.future.as_mut().as_pin_mut() else {
            panic!("`OrTimeout` polled after it completed");
        };
        if let Poll::Ready(output) = future.poll(cx) {
            this.future.set(None);
            return Poll::Ready(Some(output));
        }
        let Some(timer) = this.timer else {
            return Poll::Pending;
        };
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        cancelling(Cancel::Timeout, || this.future.set(None));
        Poll::Ready(None)
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
#[inline]
pub(crate) fn min_bound(
    a: Option<std::time::Duration>,
    b: Option<std::time::Duration>,
) -> Option<std::time::Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
