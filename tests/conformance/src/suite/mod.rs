//! The tests, generic over the runtime: each is an `async fn(Env)` that
//! [`conformance_suite!`](crate::conformance_suite) runs on every harness.

pub mod api;
pub mod cancel;
pub mod compose;
pub mod contract;
pub mod deadline;
pub mod gather_tuple;
pub mod group_api;
pub mod guide;
pub mod lock;
pub mod matrix;
pub mod outcome;
pub mod pool;
pub mod prop;
pub mod stack;
pub mod structured;
pub mod traits;
pub mod tx;

use std::any::Any;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::task::{ArcWake, AtomicWaker, waker};

use awith::rt::{CleanupStats, Incident};

use awith::test::Env;

/// How long a test waits for cleanups to drain. Generous: only a broken
/// runtime binding takes anywhere near this.
pub const DRAIN: Duration = Duration::from_secs(30);

/// What one poll of a future gave.
#[derive(Debug)]
pub enum Polled<T> {
    /// Not finished.
    Pending,
    /// Finished.
    Ready(T),
    /// Panicked while polled.
    Panicked(Box<dyn Any + Send>),
}

/// Drives a future one poll at a time. Between two polls it waits until the
/// future's waker has been called, so each step is one step of progress even
/// when the future waits for a timer or another task (and a virtual clock
/// advances meanwhile).
pub struct Stepper<F: Future> {
    future: Pin<Box<F>>,
    wake: Arc<StepWake>,
}

#[derive(Default)]
struct StepWake {
    woken: AtomicBool,
    outer: AtomicWaker,
}

impl ArcWake for StepWake {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.woken.store(true, Ordering::SeqCst);
        arc_self.outer.wake();
    }
}

impl<F: Future> Stepper<F> {
    /// A stepper over `future`, which has not been polled yet.
    pub fn new(future: F) -> Self {
        let wake = Arc::new(StepWake::default());
        wake.woken.store(true, Ordering::SeqCst);
        Stepper {
            future: Box::pin(future),
            wake,
        }
    }

    /// Waits until the future asked to be polled, then polls it once,
    /// catching a panic.
    pub async fn step(&mut self) -> Polled<F::Output> {
        let wake = Arc::clone(&self.wake);
        poll_fn(|cx| {
            wake.outer.register(cx.waker());
            if wake.woken.swap(false, Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        let waker = waker(Arc::clone(&self.wake));
        let mut cx = Context::from_waker(&waker);
        match catch_unwind(AssertUnwindSafe(|| self.future.as_mut().poll(&mut cx))) {
            Ok(Poll::Pending) => Polled::Pending,
            Ok(Poll::Ready(output)) => Polled::Ready(output),
            Err(panic) => Polled::Panicked(panic),
        }
    }

    /// Steps the future until it finishes; a panic in it resumes.
    pub async fn finish(&mut self) -> F::Output {
        loop {
            match self.step().await {
                Polled::Pending => {}
                Polled::Ready(output) => return output,
                Polled::Panicked(panic) => std::panic::resume_unwind(panic),
            }
        }
    }
}

impl<F: Future> std::fmt::Debug for Stepper<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stepper").finish_non_exhaustive()
    }
}

/// The one incident reported is the 20 ms timeout a panic replaced
/// (`ErrorLostToPanic`).
pub fn assert_timeout_lost_to_panic(env: &Env) {
    let incidents = env.incidents.all();
    assert!(
        matches!(&incidents[..], [Incident::ErrorLostToPanic { error }] if error.contains("did not finish within 20ms")),
        "{incidents:?}"
    );
}

/// Waits for every cleanup of `env`'s runtime; fails the test if any is
/// still running after [`DRAIN`].
pub async fn drain(env: &Env) -> CleanupStats {
    match env.rt.drain(DRAIN).await {
        Ok(stats) => stats,
        Err(error) => panic!("cleanups did not drain: {error}"),
    }
}

/// The message of a panic payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<not a string>")
}
