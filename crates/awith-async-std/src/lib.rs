//! # awith-async-std
//!
//! The [async-std] binding of [awith](https://docs.rs/awith): async resource
//! scopes whose release is guaranteed — on success, error, panic and
//! cancellation — with cleanup tasks spawned on async-std's global executor.
//!
//! **async-std is deprecated upstream** (its authors recommend smol). This
//! binding is kept for programs that still run on it; new code should prefer
//! `awith-smol` or `awith-tokio`.
//!
//! ```
//! use awith::{resource, ResourceExt};
//!
//! async_std::task::block_on(async {
//!     let rt = awith::async_std::runtime();
//!     let conn = resource(
//!         || async { Ok::<_, std::io::Error>(String::from("conn")) },
//!         |conn, exit| async move { Ok(println!("closing {conn}: {exit}")) },
//!     );
//!     let len = conn.with(&rt, async |conn| Ok::<_, std::io::Error>(conn.len())).await;
//!     assert_eq!(len.unwrap(), 4);
//!     rt.drain(std::time::Duration::from_secs(5)).await.unwrap();
//! });
//! ```
//!
//! # Cancellation
//!
//! Dropping a scope's future hands the remaining work to async-std as a
//! tracked cleanup task: an in-flight acquire is finished and what it yields
//! is released with `Exit::Cancelled`; a scope dropped in its body is released
//! with `Exit::Cancelled`; an in-flight release finishes. async-std's executor
//! is global and lives as long as the process, so a spawn never fails; still,
//! await `Runtime::drain` before the process exits, or cleanups still running
//! then die with it. `std::mem::forget` on a scope's future skips all cleanup.
//!
//! [async-std]: https://docs.rs/async-std
#![forbid(unsafe_code)]

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Waker};
use std::time::Duration;

use awith_core::Runtime;
use awith_core::rt::{Binding, Handles, Sleep, SpawnError, Task, TaskSet};

/// The async-std [`Binding`]: spawns on the global executor, sleeps on
/// async-std's timer.
///
/// ```
/// let rt = awith::Runtime::new(awith::async_std::AsyncStd::new());
/// assert_eq!(rt.name(), "async-std");
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncStd;

impl AsyncStd {
    /// The binding.
    pub fn new() -> Self {
        AsyncStd
    }
}

impl Binding for AsyncStd {
    fn name(&self) -> &'static str {
        "async-std"
    }

    fn spawn(&self, task: Task) -> Result<(), SpawnError> {
        // Dropping an async-std `JoinHandle` detaches the task.
        drop(async_std::task::spawn(task));
        Ok(())
    }

    fn task_set(&self) -> Option<Box<dyn TaskSet>> {
        Some(Box::new(AsyncStdSet::new()))
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(async_std::task::sleep(duration))
    }
}

/// The async-std [`TaskSet`]: keeps each task's `JoinHandle`, so that a task
/// that has finished is freed when its owner drops the handle, on the
/// owner's thread; dropping a handle detaches its task.
#[derive(Debug)]
struct AsyncStdSet {
    tasks: Handles<async_std::task::JoinHandle<()>>,
}

impl AsyncStdSet {
    fn new() -> Self {
        AsyncStdSet {
            tasks: Handles::new(|task| {
                // `JoinHandle` cannot say whether its task has finished
                // without being polled; nobody else waits on it. (It panics
                // if the executor dropped the task: finished too.)
                let mut cx = Context::from_waker(Waker::noop());
                catch_unwind(AssertUnwindSafe(|| Pin::new(task).poll(&mut cx).is_ready()))
                    .unwrap_or(true)
            }),
        }
    }
}

impl TaskSet for AsyncStdSet {
    fn spawn(&mut self, task: Task) -> Result<(), SpawnError> {
        self.tasks.keep(async_std::task::spawn(task));
        Ok(())
    }

    fn kept(&self) -> usize {
        self.tasks.len()
    }
}

/// An awith [`Runtime`] on async-std. Callable from anywhere: the executor is
/// global.
///
/// Each call makes a runtime with its own cleanup registry: make one and
/// clone it.
///
/// ```
/// assert_eq!(awith::async_std::runtime().name(), "async-std");
/// ```
pub fn runtime() -> Runtime {
    Runtime::new(AsyncStd)
}

/// `true` inside an async-std task (including `async_std::task::block_on`).
///
/// ```
/// assert!(!awith::async_std::is_current());
/// assert!(async_std::task::block_on(async { awith::async_std::is_current() }));
/// ```
pub fn is_current() -> bool {
    async_std::task::try_current().is_some()
}
