//! # awith-smol
//!
//! The [smol] binding of [awith](https://docs.rs/awith): async resource scopes
//! whose release is guaranteed — on success, error, panic and cancellation —
//! with cleanup tasks spawned on a smol executor.
//!
//! [`runtime`] spawns on smol's global executor (`smol::spawn`), which runs
//! on its own threads (`SMOL_THREADS`, default one). [`with_executor`] spawns
//! on an [`Executor`] of yours; you run it (`executor.run(..)`) on as many
//! threads as you like. The binding holds it weakly: once it is dropped,
//! spawning fails with an error.
//!
//! ```
//! use awith::{resource, ResourceExt};
//!
//! smol::block_on(async {
//!     let rt = awith::smol::runtime();
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
//! Dropping a scope's future hands the remaining work to the executor as a
//! tracked cleanup task: an in-flight acquire is finished and what it yields
//! is released with `Exit::Cancelled`; a scope dropped in its body is released
//! with `Exit::Cancelled`; an in-flight release finishes. An executor of yours
//! must keep running for those tasks to run: await `Runtime::drain` before you
//! stop it. Dropping it drops its unfinished tasks, and awith reports each
//! lost cleanup as an `Incident`; a spawn after the executor is gone is
//! refused and reported the same way. `std::mem::forget` on a scope's future
//! skips all cleanup.
//!
//! [smol]: https://docs.rs/smol
#![forbid(unsafe_code)]

use std::sync::{Arc, Weak};
use std::time::Duration;

use awith_core::Runtime;
use awith_core::rt::{Binding, Handles, Sleep, SpawnError, Task, TaskSet};
use smol::{Executor, Timer};

/// The smol [`Binding`]: spawns on smol's global executor or on an
/// [`Executor`] of yours, sleeps on smol's timer.
///
/// ```
/// use std::sync::Arc;
///
/// let executor = Arc::new(smol::Executor::new());
/// let binding = awith::smol::Smol::new(&executor);
/// let rt = awith::Runtime::new(binding);
/// drop(executor);
/// assert!(rt.spawn(async {}).is_err());
/// ```
#[derive(Clone, Debug)]
pub struct Smol {
    executor: Option<Weak<Executor<'static>>>,
}

impl Smol {
    /// A binding to smol's global executor.
    pub fn global() -> Self {
        Smol { executor: None }
    }

    /// A binding to `executor`, held weakly.
    pub fn new(executor: &Arc<Executor<'static>>) -> Self {
        Smol {
            executor: Some(Arc::downgrade(executor)),
        }
    }

    fn spawn_task(&self, task: Task) -> Result<smol::Task<()>, SpawnError> {
        match &self.executor {
            None => Ok(smol::spawn(task)),
            Some(executor) => match executor.upgrade() {
                Some(executor) => Ok(executor.spawn(task)),
                None => Err(SpawnError::new("smol", task)),
            },
        }
    }
}

impl Binding for Smol {
    fn name(&self) -> &'static str {
        "smol"
    }

    fn spawn(&self, task: Task) -> Result<(), SpawnError> {
        self.spawn_task(task).map(smol::Task::detach)
    }

    fn task_set(&self) -> Option<Box<dyn TaskSet>> {
        Some(Box::new(SmolSet::new(self.clone())))
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        // `Timer::after` turns a deadline past the end of time into "never".
        let timer = Timer::after(duration);
        Box::pin(async move {
            timer.await;
        })
    }
}

/// The smol [`TaskSet`]: keeps each task's `Task` handle, so that a task
/// that has finished is freed when its owner drops the handle, on the
/// owner's thread.
#[derive(Debug)]
struct SmolSet {
    smol: Smol,
    tasks: Handles<Detaching>,
}

impl SmolSet {
    fn new(smol: Smol) -> Self {
        SmolSet {
            smol,
            tasks: Handles::new(|task| task.0.as_ref().is_none_or(smol::Task::is_finished)),
        }
    }
}

impl TaskSet for SmolSet {
    fn spawn(&mut self, task: Task) -> Result<(), SpawnError> {
        let task = self.smol.spawn_task(task)?;
        self.tasks.keep(Detaching(Some(task)));
        Ok(())
    }

    fn kept(&self) -> usize {
        self.tasks.len()
    }
}

/// A smol task handle that detaches its task when dropped (smol's own
/// cancels it), unless the task has finished: then dropping it frees the task.
#[derive(Debug)]
struct Detaching(Option<smol::Task<()>>);

impl Drop for Detaching {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            if !task.is_finished() {
                task.detach();
            }
        }
    }
}

/// An awith [`Runtime`] on smol's global executor.
///
/// Each call makes a runtime with its own cleanup registry: make one and
/// clone it.
///
/// ```
/// assert_eq!(awith::smol::runtime().name(), "smol");
/// ```
pub fn runtime() -> Runtime {
    Runtime::new(Smol::global())
}

/// An awith [`Runtime`] on `executor` (held weakly).
///
/// ```
/// use std::sync::Arc;
///
/// let executor = Arc::new(smol::Executor::new());
/// let rt = awith::smol::with_executor(&executor);
/// let (tx, rx) = smol::channel::bounded(1);
/// rt.spawn(async move { tx.send(7).await.unwrap() }).unwrap();
/// assert_eq!(smol::block_on(executor.run(rx.recv())), Ok(7));
/// ```
pub fn with_executor(executor: &Arc<Executor<'static>>) -> Runtime {
    Runtime::new(Smol::new(executor))
}
