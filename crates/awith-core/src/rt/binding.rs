//! [`Binding`]: what an adapter crate implements for its runtime.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::TaskSet;

/// A task handed to [`Binding::spawn`]: a boxed, detached, `Send + 'static` future.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A timer returned by [`Binding::sleep`] and [`Runtime::sleep`](super::Runtime::sleep).
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// What awith needs from an async runtime. Adapter crates implement it;
/// users normally only pick an adapter.
///
/// Rules for implementors:
///
/// - `spawn` runs the task detached: dropping everything awith holds does not
///   cancel it. It returns `Err` (never panics) when the runtime can no longer
///   run tasks, and gives the task back in the error when it can.
/// - A task the runtime accepted but later drops unfinished (at shutdown) is
///   fine: awith notices and reports it.
/// - `sleep` works from any thread, inside or outside the runtime's context.
///
/// # Examples
///
/// A binding that runs every task on a new thread — enough to show the shape.
/// It is about a runtime of its own, so it runs no tokio; its threads run
/// futures with the `futures` crate (a dependency of its own):
///
/// ```
/// use std::time::Duration;
/// use awith::rt::{Binding, Runtime, Sleep, SpawnError, Task};
///
/// #[derive(Debug)]
/// struct ThreadPerTask;
///
/// impl Binding for ThreadPerTask {
///     fn name(&self) -> &'static str {
///         "thread-per-task"
///     }
///     fn spawn(&self, task: Task) -> Result<(), SpawnError> {
///         std::thread::spawn(move || futures::executor::block_on(task));
///         Ok(())
///     }
///     fn sleep(&self, duration: Duration) -> Sleep {
///         let (tx, rx) = futures::channel::oneshot::channel::<()>();
///         std::thread::spawn(move || {
///             std::thread::sleep(duration);
///             let _ = tx.send(());
///         });
///         Box::pin(async move {
///             let _ = rx.await;
///         })
///     }
/// }
///
/// let rt = Runtime::new(ThreadPerTask);
/// let (tx, rx) = futures::channel::oneshot::channel();
/// rt.spawn(async move { tx.send(42).unwrap() }).unwrap();
/// assert_eq!(futures::executor::block_on(rx), Ok(42));
/// ```
pub trait Binding: Send + Sync + fmt::Debug + 'static {
    /// A short name for messages and runtime-identity checks, e.g. `"tokio"`.
    fn name(&self) -> &'static str;

    /// Spawns a detached task.
    ///
    /// # Errors
    ///
    /// [`SpawnError`] when the runtime has shut down.
    fn spawn(&self, task: Task) -> Result<(), SpawnError>;

    /// A future that completes after `duration` (at once for a zero duration).
    /// awith never polls it again once it has completed.
    fn sleep(&self, duration: Duration) -> Sleep;

    /// The runtime's clock. Real runtimes use the default, `Instant::now()`;
    /// a runtime with a virtual clock returns its own time.
    fn now(&self) -> Instant {
        Instant::now()
    }

    /// A [`TaskSet`], for one owner that spawns many tasks (a
    /// [`TaskGroup`](crate::group::TaskGroup)), or `None` (the default) to
    /// have it spawn each task with [`spawn`](Self::spawn).
    ///
    /// Worth it where a detached task is freed by the worker thread that
    /// finishes it: see [`TaskSet`].
    fn task_set(&self) -> Option<Box<dyn TaskSet>> {
        None
    }
}

/// A shared binding is a binding: one executor can back several runtimes
/// (each with its own cleanup registry and settings).
impl<B: Binding + ?Sized> Binding for Arc<B> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn spawn(&self, task: Task) -> Result<(), SpawnError> {
        (**self).spawn(task)
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        (**self).sleep(duration)
    }

    fn now(&self) -> Instant {
        (**self).now()
    }

    fn task_set(&self) -> Option<Box<dyn TaskSet>> {
        (**self).task_set()
    }
}

impl<B: Binding + ?Sized> Binding for Box<B> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn spawn(&self, task: Task) -> Result<(), SpawnError> {
        (**self).spawn(task)
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        (**self).sleep(duration)
    }

    fn now(&self) -> Instant {
        (**self).now()
    }

    fn task_set(&self) -> Option<Box<dyn TaskSet>> {
        (**self).task_set()
    }
}

/// The runtime could not spawn a task: it has shut down.
///
/// The task is given back when the binding could recover it
/// ([`SpawnError::into_task`]), so nothing handed over is lost unseen.
///
/// ```
/// use awith::rt::SpawnError;
///
/// let err = SpawnError::new("tokio", Box::pin(async {}));
/// assert_eq!(err.runtime(), "tokio");
/// assert_eq!(err.to_string(), "cannot spawn a task: the tokio runtime has shut down");
/// assert!(err.into_task().is_some());
/// ```
pub struct SpawnError {
    runtime: &'static str,
    /// Behind a mutex only so that the error is `Sync` (a task is `Send`
    /// only), as `Box<dyn Error + Send + Sync>` and `anyhow::Error` want; it
    /// is never contended.
    task: Mutex<Option<Task>>,
}

impl SpawnError {
    /// The runtime `runtime` refused `task`; the task is given back.
    pub fn new(runtime: &'static str, task: Task) -> Self {
        SpawnError {
            runtime,
            task: Mutex::new(Some(task)),
        }
    }

    /// The runtime `runtime` refused a task and dropped it.
    pub fn task_dropped(runtime: &'static str) -> Self {
        SpawnError {
            runtime,
            task: Mutex::new(None),
        }
    }

    /// The name of the runtime that refused the task.
    pub fn runtime(&self) -> &'static str {
        self.runtime
    }

    /// The refused task, if the runtime gave it back.
    pub fn into_task(self) -> Option<Task> {
        self.task
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnError")
            .field("runtime", &self.runtime)
            .field(
                "task_returned",
                &self
                    .task
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_some(),
            )
            .finish()
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot spawn a task: the {} runtime has shut down",
            self.runtime
        )
    }
}

impl std::error::Error for SpawnError {}
