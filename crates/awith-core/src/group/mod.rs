//! [`TaskGroup`]: children spawned onto the runtime, all of them finished or
//! cancelled before the group ends — structured concurrency, as trio's
//! nurseries and Python's `asyncio.TaskGroup`.
//!
//! ```
//! use std::sync::Arc;
//! use awith_core::group::TaskGroup;
//! use awith_core::reference::Reference;
//!
//! let reference = Reference::new();
//! let rt = reference.runtime();
//! let total = reference.block_on(TaskGroup::with(&rt, async |group: &TaskGroup<String>| {
//!     let shared = Arc::new(vec![1, 2, 3]);
//!     let mut handles = Vec::new();
//!     for i in 0..3 {
//!         let shared = Arc::clone(&shared);
//!         handles.push(group.spawn(async move { Ok(shared[i] * 10) }).unwrap());
//!     }
//!     let mut total = 0;
//!     for handle in handles {
//!         total += handle.await.unwrap();
//!     }
//!     Ok(total)
//! }));
//! assert_eq!(total.unwrap().unwrap(), 60);
//! ```
//!
//! # The rules
//!
//! - **The group ends last.** [`TaskGroup::with`] returns only when its body
//!   and every child have finished or been cancelled — and the scopes inside
//!   cancelled children have released. No child runs after its group has
//!   returned.
//! - **Children are `Send + 'static`** and run in parallel on a multi-thread
//!   runtime; share a scope's resource with them through an `Arc`.
//! - **Failures.** With [`Policy::FailFast`] (the default) the first failure —
//!   a child's error or panic, or the body's error or panic — cancels the
//!   body and every other child, told `Cancel::SiblingFailed`. With
//!   [`Policy::CollectAll`] nothing is cancelled and every child runs to its
//!   end. Either way the group fails with every error ([`GroupError`]), in
//!   the order they happened — the body's among the children's — the first
//!   one primary; children cancelled by the group are not errors.
//! - **Cancelled means stopped.** Once the group is cancelled (a failure,
//!   its deadline), neither the body nor a child is polled again: each is
//!   dropped at its next wake-up, before it could get past another await.
//! - **Panics** are caught and kept as values: a child's — while it is
//!   polled, or while its future is dropped (when it ended, or cancelled), or
//!   while the value nobody can claim is dropped — and the body's — likewise,
//!   and while its value is dropped because the group failed. Once every
//!   child has ended, the group resumes the first panic, in the order they
//!   happened; the later panics and the errors it then cannot return are
//!   reported as incidents.
//! - **Deadline.** A group with a deadline cancels its body and children when
//!   it passes, told `Cancel::Timeout`, and fails with
//!   [`GroupError::timed_out`] set.
//! - **Handles.** [`TaskGroup::spawn`] returns a [`ChildHandle`]: await it for
//!   the child's value (a child's error always goes to the group; the handle
//!   only says that it failed), or [`abort`](ChildHandle::abort) the child.
//!   A handle gives the outcome once: awaited again, it resolves at once to
//!   `Err(Joined::Taken)`; [`is_finished`](ChildHandle::is_finished) stays
//!   `true` once the child has ended. Dropping a handle cancels nothing: the
//!   child goes on as part of its group — one rule on every runtime (tokio's
//!   own handles detach on drop, smol's cancel) — and its value, which nobody
//!   can claim now, is dropped when it ends, as part of the child.
//! - **No user code under a lock.** The body, the children's futures and
//!   their drops, the values, the errors' `Debug` and drops, and the
//!   wake-ups of wakers all run with none of the group's locks held.
//!
//! # Cancellation
//!
//! Dropping the group's future cancels the body and every child, told
//! `Cancel::Dropped` (or the reason of the [`cancel_with`] that dropped it);
//! the scopes inside them release as runtime cleanups, and the group hands the
//! runtime a cleanup that ends when the last child has — so
//! [`Runtime::drain`] waits for it, and a scope around the group releases only
//! after it. `mem::forget` skips all of this.
//!
//! A group dropped after a failure — of the body or of a child, before the
//! drop or while the children are being cancelled — has nobody to return it
//! to: once the children have ended, each failure is reported as an
//! [`Incident::Unreturned`]. So are the failures of a group nested inside a
//! child that its own group cancels: they cannot join the outer
//! [`GroupError`] (of another error type), and are reported before the outer
//! group returns, since it waits for that child's cleanups.
//!
//! [`cancel_with`]: crate::time::cancel_with
//! [`Runtime::drain`]: crate::Runtime::drain
//! [`Incident::Unreturned`]: crate::rt::Incident::Unreturned

mod child;
mod handle;
mod scope;
mod shared;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use handle::{ChildHandle, Joined};

use crate::rt::{Runtime, SpawnError, TaskSet};
use crate::sync::{Mutex, lock};
use child::{Child, ChildLink, ChildTask};
use shared::Shared;

/// What the group does when a child (or the body) fails.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Policy {
    /// The first failure cancels the body and every other child.
    #[default]
    FailFast,
    /// Every child runs to its end; all errors are collected.
    CollectAll,
}

/// A group of children; see the [module docs](self).
pub struct TaskGroup<E> {
    rt: Runtime,
    shared: Arc<Shared<E>>,
    /// The runtime's [`TaskSet`], if it has one: it frees the children's
    /// tasks on this thread once they have finished. Taken out to spawn, so
    /// that no lock is held while the runtime may drop a refused task (and
    /// with it the child's future).
    set: Mutex<Option<Box<dyn TaskSet>>>,
}

/// Why a [`TaskGroup`] failed: every error, the first one primary, and
/// whether its deadline passed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupError<E> {
    /// The body's and the children's errors, in the order they happened.
    pub errors: Vec<E>,
    /// The group's deadline, if it passed.
    pub timed_out: Option<Duration>,
}

impl<E> GroupError<E> {
    /// The first error, if any.
    pub fn primary(&self) -> Option<&E> {
        self.errors.first()
    }
}

impl<E: fmt::Display> fmt::Display for GroupError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.errors.first(), self.timed_out) {
            (None, Some(after)) => write!(f, "the task group did not finish within {after:?}"),
            (None, None) => f.write_str("the task group failed"),
            (Some(first), timed_out) => {
                write!(f, "{first}")?;
                if self.errors.len() > 1 {
                    write!(f, " (and {} more errors)", self.errors.len() - 1)?;
                }
                if let Some(after) = timed_out {
                    write!(f, " (the task group did not finish within {after:?})")?;
                }
                Ok(())
            }
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for GroupError<E> {}

/// Configures a [`TaskGroup`]: its [`Policy`] and deadline.
#[derive(Clone, Debug, Default)]
#[must_use = "a builder does nothing until `with` is called"]
pub struct GroupBuilder {
    policy: Policy,
    deadline: Option<Duration>,
}

impl GroupBuilder {
    /// What to do on a failure (default: [`Policy::FailFast`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Cancels the group, told `Cancel::Timeout`, `after` it started (see
    /// [`time`](crate::time) for zero and huge durations).
    pub fn deadline(mut self, after: Duration) -> Self {
        self.deadline = Some(after);
        self
    }

    /// Runs a group; see [`TaskGroup::with`].
    ///
    /// # Errors
    ///
    /// As [`TaskGroup::with`].
    pub async fn with<E, U, B>(self, rt: &Runtime, body: B) -> Result<U, GroupError<E>>
    where
        E: fmt::Debug + Send + 'static,
        B: AsyncFnOnce(&TaskGroup<E>) -> Result<U, E>,
    {
        scope::run(self, rt, body).await
    }
}

impl<E> TaskGroup<E> {
    fn new(rt: &Runtime, policy: Policy) -> Self {
        TaskGroup {
            rt: rt.clone(),
            shared: Arc::new(Shared::new(policy)),
            set: Mutex::new(rt.binding().task_set()),
        }
    }
}

impl<E: fmt::Debug + Send + 'static> TaskGroup<E> {
    /// A builder, to choose the [`Policy`] or set a deadline.
    pub fn builder() -> GroupBuilder {
        GroupBuilder::default()
    }

    /// Runs `body` with a new group, fail-fast; returns once the body and
    /// every child have ended. See the [module docs](self) for the rules.
    ///
    /// # Errors
    ///
    /// [`GroupError`] with every error, in the order they happened, when the
    /// body or a child failed, or when the deadline passed.
    ///
    /// # Panics
    ///
    /// Resumes the first panic of the body or a child, once every child has
    /// ended.
    pub async fn with<U, B>(rt: &Runtime, body: B) -> Result<U, GroupError<E>>
    where
        B: AsyncFnOnce(&TaskGroup<E>) -> Result<U, E>,
    {
        scope::run(GroupBuilder::default(), rt, body).await
    }

    /// Spawns a child onto the runtime. It runs as part of this group: the
    /// group ends only once it has ended.
    ///
    /// A child spawned into a group that is being cancelled is cancelled at
    /// once.
    ///
    /// # Errors
    ///
    /// [`SpawnError`] when the runtime refuses the task (it has shut down);
    /// nothing runs then.
    pub fn spawn<T, F>(&self, child: F) -> Result<ChildHandle<T>, SpawnError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        let shared_child = Arc::new(Child::<T>::new());
        self.shared.spawned();
        let link = ChildLink::new(Arc::clone(&self.shared), Arc::clone(&shared_child));
        // A refused task is dropped by the binding or below, no lock held:
        // its drop ends the child.
        let task = Box::pin(ChildTask::new(link, child));
        let set = lock(&self.set).take();
        let spawned = match set {
            Some(mut set) => {
                let spawned = set.spawn(task);
                *lock(&self.set) = Some(set);
                spawned
            }
            // No set, or another thread spawning with it right now.
            None => self.rt.binding().spawn(task),
        };
        spawned.map_err(|refused| SpawnError::task_dropped(refused.runtime()))?;
        Ok(ChildHandle::new(shared_child))
    }

    /// The runtime the group spawns on.
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }
}

impl<E> fmt::Debug for TaskGroup<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroup")
            .field("policy", &self.shared.policy)
            .field("live", &self.shared.live())
            .field("cancelled", &self.shared.cancelled())
            .finish_non_exhaustive()
    }
}
