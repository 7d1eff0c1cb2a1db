//! The synchronisation types of awith's concurrent state machines — the
//! cleanup registry, a task group's child accounting, a pool's waiter
//! hand-off — in one place, so that `--cfg loom` swaps them all for loom's
//! model-checked ones (the `loom` tests, run by `ci/loom.sh`).
//!
//! `Arc` and `Weak` stay std's under loom (loom's `Arc` has neither `Weak`
//! nor unsizing); so do the statics that only number things, and the
//! reference runtime, which is not modelled.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use futures::task::AtomicWaker;

/// Locks `mutex`, recovering from poisoning: awith never panics while it
/// holds one of its locks (no user code runs under them), so a poisoned
/// lock still guards consistent state.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// loom's `AtomicWaker`, with the API of futures' one.
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct AtomicWaker(loom::future::AtomicWaker);

#[cfg(loom)]
impl AtomicWaker {
    pub(crate) fn new() -> Self {
        AtomicWaker(loom::future::AtomicWaker::new())
    }

    pub(crate) fn register(&self, waker: &std::task::Waker) {
        self.0.register_by_ref(waker);
    }

    pub(crate) fn wake(&self) {
        self.0.wake();
    }
}

#[cfg(loom)]
impl Default for AtomicWaker {
    fn default() -> Self {
        AtomicWaker::new()
    }
}

/// Runs a loom model, bounded so that each finishes in seconds: at most three
/// preemptions per execution (tokio bounds its CI at two), which finds the
/// interleavings of two or three racing steps that lost wake-ups and lost
/// counts need.
#[cfg(all(test, loom))]
pub(crate) fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

/// A binding for loom models: spawns onto loom threads, and its timers never
/// fire — a model can only end by the state machine's own steps.
#[cfg(all(test, loom))]
#[derive(Debug)]
pub(crate) struct LoomBinding;

#[cfg(all(test, loom))]
impl crate::rt::Binding for LoomBinding {
    fn name(&self) -> &'static str {
        "loom"
    }

    fn spawn(&self, task: crate::rt::Task) -> Result<(), crate::rt::SpawnError> {
        loom::thread::spawn(move || loom::future::block_on(task));
        Ok(())
    }

    fn sleep(&self, _: std::time::Duration) -> crate::rt::Sleep {
        Box::pin(std::future::pending())
    }
}
