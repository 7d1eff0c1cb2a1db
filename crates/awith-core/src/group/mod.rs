//! [`TaskGroup`]: children spawned onto the runtime, all of them finished or
//! cancelled before the group ends — structured concurrency, as trio's
//! nurseries and Python's `asyncio.TaskGroup`.
//!
//! ```
//! use std::io;
//! use std::sync::Arc;
//! use awith::group::TaskGroup;
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let rt = awith::runtime()?;
//!     let total = TaskGroup::with(&rt, async |group: &TaskGroup<io::Error>| {
//!         let shared = Arc::new(vec![1, 2, 3]);
//!         let mut handles = Vec::new();
//!         for i in 0..3 {
//!             let shared = Arc::clone(&shared);
//!             let child = group.spawn(async move { Ok(shared[i] * 10) });
//!             handles.push(child.map_err(io::Error::other)?);
//!         }
//!         let mut total = 0;
//!         for handle in handles {
//!             total += handle.await.map_err(io::Error::other)?;
//!         }
//!         Ok(total)
//!     })
//!     .await?; // every child has ended here
//!     assert_eq!(total, 60);
//!     Ok(())
//! }
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
//!   its deadline, a request), neither the body nor a child is polled again:
//!   each is dropped at its next wake-up, before it could get past another
//!   await.
//! - **Cancelling on request.** The body ([`TaskGroup::cancel`]) or a child
//!   (through a [`Spawner`]) cancels the whole group, with a reason the
//!   scopes inside are told: `Cancel::Requested` (the text is the group's:
//!   [`TaskGroup::cancel_reason`]). It is not a
//!   failure: the group returns the body's value if the body returned one,
//!   as anyio's `async with` returns normally; a body cancelled before it
//!   returned leaves no value, and the group fails with no errors and
//!   [`GroupError::cancelled`] set.
//! - **Spawners.** [`TaskGroup::spawner`] gives a handle children can hold
//!   (`Clone + Send + Sync + 'static`) to spawn or start siblings in the same
//!   group, or cancel it. The group closes when its body and its last child
//!   have ended (a child spawning a sibling as it ends still has it
//!   counted); from then on a spawn fails with [`GroupSpawnError::Closed`],
//!   never a panic, and runs nothing.
//! - **Start.** [`TaskGroup::start`] spawns a child and waits until it
//!   reports, through its [`Started`] token, that it is ready, with a value
//!   (a server's bound address). Until then the child belongs to the start:
//!   if it fails, panics, ends or is cancelled first, the start fails
//!   ([`StartError`]) — its error is the start's, not the group's; its panic
//!   stays the group's. A child that never reports and hangs holds its start
//!   until the group is cancelled (its deadline, a failure, a request).
//! - **Names.** [`TaskGroup::spawn_named`] (and `start_named`, and the
//!   spawner's) names a child: [`GroupError`] says whose each error was
//!   ([`GroupError::tasks`], and its `Display` for the first), the incidents
//!   about the child end with ``(in task `name`)``, and its handle's `Debug`
//!   shows it.
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
//! The group's future dropped, its spawners' spawns during the teardown are
//! cancelled at once (the group is being cancelled); once the teardown has
//! ended, they fail with [`GroupSpawnError::Closed`].
//!
//! A [`start`](TaskGroup::start) dropped before its child reported cancels
//! that child, told the reason it was dropped for (`Cancel::Timeout` inside
//! a timeout, else `Cancel::Dropped`); the group goes on.
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
mod spawner;
mod start;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use handle::{ChildHandle, Joined};
pub use spawner::{GroupSpawnError, Spawner};
pub use start::{StartError, Started};

use crate::exit::Cancel;
use crate::rt::{Runtime, SpawnError, TaskSet};
use crate::sync::{Mutex, lock};
use child::{Child, ChildLink, ChildTask};
use shared::Shared;
use start::StartHook;

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
    set: SetSlot,
}

/// A group's [`TaskSet`], if its runtime has one.
type SetSlot = Mutex<Option<Box<dyn TaskSet>>>;

/// Why a [`TaskGroup`] failed: every error, the first one primary, whose
/// each one was, whether its deadline passed, and why it was cancelled.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupError<E> {
    /// The body's and the children's errors, in the order they happened.
    pub errors: Vec<E>,
    /// Whose each error was, index for index with `errors`.
    pub tasks: Vec<FailedTask>,
    /// The group's deadline, if it passed.
    pub timed_out: Option<Duration>,
    /// Why the group was cancelled, if it was: `Cancel::SiblingFailed`
    /// after a failure (fail-fast), `Cancel::Timeout` when its deadline
    /// passed, `Cancel::Requested` when the body or a child cancelled it
    /// ([`TaskGroup::cancel`]). A group cancelled on request fails only if
    /// something failed, or if its body was cancelled before it returned a
    /// value (then `errors` is empty).
    pub cancelled: Option<Cancel>,
    /// The text a requested cancellation was given ([`TaskGroup::cancel`]).
    pub cancel_reason: Option<&'static str>,
}

/// Whose code an error of a [`GroupError`] came from: the body's, or a
/// child's, with the name it was spawned with.
///
/// ```
/// use awith::group::FailedTask;
///
/// assert_eq!(FailedTask::Body.to_string(), "the body");
/// assert_eq!(FailedTask::Child(Some("server".into())).to_string(), "task `server`");
/// assert_eq!(FailedTask::Child(None).to_string(), "an unnamed task");
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FailedTask {
    /// The group's body.
    Body,
    /// A child, and its name, if it was given one
    /// ([`TaskGroup::spawn_named`]).
    Child(Option<Arc<str>>),
}

impl fmt::Display for FailedTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailedTask::Body => f.write_str("the body"),
            FailedTask::Child(Some(name)) => write!(f, "task `{name}`"),
            FailedTask::Child(None) => f.write_str("an unnamed task"),
        }
    }
}

impl<E> GroupError<E> {
    /// The first error, if any.
    pub fn primary(&self) -> Option<&E> {
        self.errors.first()
    }

    /// Every error with whose it was, in the order they happened.
    ///
    /// ```
    /// use std::io;
    /// use awith::group::{Policy, TaskGroup};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let error = TaskGroup::<io::Error>::builder()
    ///     .policy(Policy::CollectAll)
    ///     .with(&rt, async |group| {
    ///         let fetch = group
    ///             .spawn_named("fetch", async { Err::<(), _>(io::Error::other("timeout")) })
    ///             .map_err(io::Error::other)?;
    ///         let _ = fetch.await; // it failed: its error went to the group
    ///         Err::<(), _>(io::Error::other("gave up"))
    ///     })
    ///     .await
    ///     .expect_err("the child and the body failed");
    /// let told: Vec<_> = error.iter().map(|(task, e)| format!("{task}: {e}")).collect();
    /// assert_eq!(told, ["task `fetch`: timeout", "the body: gave up"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&FailedTask, &E)> {
        self.tasks.iter().zip(&self.errors)
    }
}

impl<E: fmt::Display> fmt::Display for GroupError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.errors.first(), self.timed_out) {
            (None, Some(after)) => write!(f, "the task group did not finish within {after:?}"),
            (None, None) => match (self.cancelled, self.cancel_reason) {
                (Some(Cancel::Requested), Some(why)) => write!(
                    f,
                    "the task group was cancelled before its body returned (requested: {why})"
                ),
                (Some(reason), _) => write!(
                    f,
                    "the task group was cancelled before its body returned ({reason})"
                ),
                (None, _) => f.write_str("the task group failed"),
            },
            (Some(first), timed_out) => {
                write!(f, "{first}")?;
                if let Some(FailedTask::Child(Some(name))) = self.tasks.first() {
                    write!(f, " (in task `{name}`)")?;
                }
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

/// As [`ScopeError`](crate::ScopeError): transparent over its first error
/// (its `Display` starts with that error's message, and its `source` is that
/// error's source), the others told in `Display` ("and N more errors") and
/// kept in [`iter`](GroupError::iter).
impl<E: std::error::Error + 'static> std::error::Error for GroupError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.errors.first().and_then(std::error::Error::source)
    }
}

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

    /// Cancels the group — its body and every child — told
    /// `Cancel::Requested` (the text: [`cancel_reason`](Self::cancel_reason)),
    /// as anyio's `tg.cancel_scope.cancel()`
    /// and trio's `nursery.cancel_scope.cancel()`. The first cancellation
    /// wins: a later one, or one after a failure or the deadline, does
    /// nothing. A child can do the same through a [`Spawner`].
    ///
    /// A requested cancellation is not a failure. Like every cancellation,
    /// it stops the body and the children at their next wake-up (the scopes
    /// inside them release, told why); then the group returns:
    ///
    /// - `Ok(value)` if the body returned a value — it cancelled and
    ///   returned, or it had returned when a child cancelled — and nothing
    ///   failed (anyio's `async with` returns normally after a cancel);
    /// - else `Err(GroupError)` with no errors and
    ///   [`cancelled`](GroupError::cancelled) set: the body was cancelled
    ///   before it returned, so there is no value to give. Let the body
    ///   return, and wait in a child, to always get `Ok`.
    ///
    /// A failure still fails the group, with every error, as ever.
    ///
    /// ```
    /// use std::io;
    /// use awith::Cancel;
    /// use awith::group::{Joined, TaskGroup};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let server = TaskGroup::<io::Error>::with(&rt, async |group| {
    ///     let server = group
    ///         .spawn(std::future::pending::<Result<(), _>>())
    ///         .map_err(io::Error::other)?;
    ///     group.cancel("shutting down");
    ///     Ok(server)
    /// })
    /// .await?; // a requested cancellation is not a failure
    /// let told = server.await;
    /// assert_eq!(told, Err(Joined::Cancelled(Cancel::Requested)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn cancel(&self, reason: &'static str) {
        requested(&self.shared, reason);
    }

    /// The text the group's cancellation was requested with
    /// ([`cancel`](Self::cancel)), once it was; `None` when the group was
    /// not cancelled on request. Children that hold a
    /// [`Spawner`] ask it the same.
    pub fn cancel_reason(&self) -> Option<&'static str> {
        self.shared.cancel_reason()
    }
}

/// Cancels the group of `shared` on request.
fn requested<E>(shared: &Shared<E>, reason: &'static str) {
    shared.cancel_because(Cancel::Requested, reason);
}

/// Spawns a child counted already into the group of `shared`, on `rt`
/// (through `set`, the group's task set, when the group spawns it).
fn launch<T, E, F>(
    rt: &Runtime,
    shared: &Arc<Shared<E>>,
    set: Option<&SetSlot>,
    name: Option<Arc<str>>,
    start: Option<Arc<dyn StartHook<E>>>,
    child: F,
) -> Result<ChildHandle<T>, SpawnError>
where
    T: Send + 'static,
    E: fmt::Debug + Send + 'static,
    F: Future<Output = Result<T, E>> + Send + 'static,
{
    let shared_child = Arc::new(Child::<T>::new(name));
    let link = ChildLink::new(Arc::clone(shared), Arc::clone(&shared_child), start);
    // A refused task is dropped by the binding or below, no lock held:
    // its drop ends the child.
    let task = Box::pin(ChildTask::new(link, child));
    let taken = set.and_then(|set| lock(set).take());
    let spawned = match taken {
        Some(mut taken) => {
            let spawned = taken.spawn(task);
            if let Some(set) = set {
                *lock(set) = Some(taken);
            }
            spawned
        }
        // No set, or another thread spawning with it right now.
        None => rt.binding().spawn(task),
    };
    spawned.map_err(|refused| SpawnError::task_dropped(refused.runtime()))?;
    Ok(ChildHandle::new(shared_child))
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
    ///
    /// # Cancellation
    ///
    /// Dropping the future `with` returns cancels the group: the body (if it
    /// has not returned) is dropped there and then, and every child is
    /// dropped at its next wake-up, in its task, never polled again — all
    /// told `Cancel::Dropped`, or the reason of the
    /// [`cancel_with`](crate::time::cancel_with) that dropped the group
    /// (`Cancel::Timeout` inside a [`Runtime::timeout`]). The scopes inside
    /// them release as runtime cleanups; a child counts as ended only once
    /// those have. The group hands the runtime a cleanup
    /// ([`CleanupKind::Children`](crate::rt::CleanupKind::Children)) that ends
    /// when its last child has, so [`Runtime::drain`] waits for all of it;
    /// failures nobody can be given any more are then reported as
    /// [`Incident::Unreturned`](crate::rt::Incident::Unreturned). A value
    /// the body had returned, while the group waited for its children, is
    /// dropped with the future. See the [module docs](self#cancellation).
    ///
    /// ```
    /// use std::io;
    /// use std::time::Duration;
    /// use awith::group::TaskGroup;
    /// use awith::{resource, Cancel, ExitKind, ResourceExt};
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let rt = awith::runtime()?;
    ///     let (tx, rx) = std::sync::mpsc::channel();
    ///     let conn = resource(|| async { Ok::<_, io::Error>(()) }, move |(), exit| {
    ///         let sent = tx.send(exit).map_err(io::Error::other);
    ///         async move { sent }
    ///     });
    ///     let start = tokio::time::Instant::now();
    ///     let group = TaskGroup::<io::Error>::with(&rt, async |group| {
    ///         let child_rt = group.runtime().clone();
    ///         group
    ///             .spawn(async move {
    ///                 conn.with(&child_rt, async |()| {
    ///                     std::future::pending::<()>().await;
    ///                     Ok::<_, io::Error>(())
    ///                 })
    ///                 .await
    ///                 .map_err(io::Error::other)
    ///             })
    ///             .map_err(io::Error::other)?;
    ///         std::future::pending::<()>().await;
    ///         Ok(())
    ///     });
    ///     assert!(rt.timeout(Duration::from_secs(1), group).await.is_err());
    ///     assert_eq!(start.elapsed(), Duration::from_secs(1));
    ///     rt.drain(Duration::from_secs(5)).await?; // the child's end, its scope's release
    ///     assert_eq!(rx.try_recv()?, ExitKind::Cancelled(Cancel::Timeout));
    ///     Ok(())
    /// }
    /// ```
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
    /// once, never polled.
    ///
    /// # Errors
    ///
    /// [`SpawnError`] when the runtime refuses the task (it has shut down);
    /// nothing runs then.
    ///
    /// # Cancellation
    ///
    /// The child is cancelled when its group is (a failure, the deadline,
    /// [`cancel`](Self::cancel), the group's future dropped — see
    /// [`with`](Self::with)) or when its handle's
    /// [`abort`](ChildHandle::abort) is called: at its next wake-up it is
    /// dropped in its task, never polled again, and the scopes inside it are
    /// told why and release as runtime cleanups, which the child waits for
    /// before it counts as ended (and the group waits for the child).
    /// Dropping its [`ChildHandle`] cancels nothing.
    ///
    /// ```
    /// use std::io;
    /// use awith::group::TaskGroup;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let rt = awith::runtime()?;
    ///     let outcome = TaskGroup::<io::Error>::with(&rt, async |group| {
    ///         let answer = group.spawn(async { Ok(42) }).map_err(io::Error::other)?;
    ///         assert_eq!(answer.await, Ok(42));
    ///         // A child's error goes to the group, which fails with it.
    ///         group
    ///             .spawn(async { Err::<(), _>(io::Error::other("no luck")) })
    ///             .map_err(io::Error::other)?;
    ///         Ok(())
    ///     })
    ///     .await;
    ///     let error = outcome.expect_err("a child failed");
    ///     assert_eq!(error.to_string(), "no luck");
    ///     assert_eq!(error.errors.len(), 1);
    ///     Ok(())
    /// }
    /// ```
    pub fn spawn<T, F>(&self, child: F) -> Result<ChildHandle<T>, SpawnError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.spawn_as(None, child)
    }

    /// Spawns a child with a name: its errors say whose they are in
    /// [`GroupError`] (and its `Display`), so do the incidents about it, and
    /// its handle's `Debug`. See [`spawn`](Self::spawn).
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn).
    ///
    /// ```
    /// use std::io;
    /// use awith::group::{FailedTask, TaskGroup};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let error = TaskGroup::<io::Error>::with(&rt, async |group| {
    ///     let users = group
    ///         .spawn_named("fetch-users", async { Err::<(), _>(io::Error::other("timed out")) })
    ///         .map_err(io::Error::other)?;
    ///     assert_eq!(format!("{users:?}"), r#"ChildHandle { name: "fetch-users", .. }"#);
    ///     std::future::pending::<()>().await; // until the failure cancels the body
    ///     Ok(())
    /// })
    /// .await
    /// .expect_err("a child failed");
    /// assert_eq!(error.to_string(), "timed out (in task `fetch-users`)");
    /// assert_eq!(error.tasks, [FailedTask::Child(Some("fetch-users".into()))]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn spawn_named<T, F>(
        &self,
        name: impl Into<Arc<str>>,
        child: F,
    ) -> Result<ChildHandle<T>, SpawnError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.spawn_as(Some(name.into()), child)
    }

    fn spawn_as<T, F>(&self, name: Option<Arc<str>>, child: F) -> Result<ChildHandle<T>, SpawnError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        // The group closes only after its body has ended, and only the body
        // holds the group: counted, always (else, as a refused spawn).
        if !self.shared.spawned() {
            return Err(SpawnError::task_dropped(self.rt.binding().name()));
        }
        launch(&self.rt, &self.shared, Some(&self.set), name, None, child)
    }

    /// Starts a child and waits until it reports that it is ready — it
    /// calls [`Started::started`] with a value (a server's bound address) —
    /// then returns that value and the child's handle; the child goes on as
    /// part of the group. trio's `nursery.start`, anyio's `tg.start`.
    ///
    /// `child` is called at once with the child's [`Started`] token, and
    /// makes the child's future. Until the child has reported, it belongs
    /// to this start: an error it returns is this start's
    /// ([`StartError::Failed`]), not the group's, and does not cancel the
    /// group; after, its errors are the group's. A panic before it reported
    /// (in `child`, or in its future) fails the start with the message and
    /// is still the group's, resumed once every child has ended.
    ///
    /// A child that never reports and never ends holds its start until the
    /// group is cancelled — by a failure, its deadline, or
    /// [`cancel`](Self::cancel) — or until the start is dropped; bound it
    /// with [`Runtime::timeout`](crate::Runtime::timeout) if the group
    /// should go on without it.
    ///
    /// # Errors
    ///
    /// [`StartError`]: the child failed, panicked, ended, was cancelled or
    /// lost before it reported, or could not be spawned. In a group being
    /// cancelled, `StartError::Cancelled` at once; `child` is not called.
    ///
    /// # Cancellation
    ///
    /// Dropping the start before the child reported cancels the child, told
    /// the reason the start was dropped for (`Cancel::Timeout` inside a
    /// [`Runtime::timeout`](crate::Runtime::timeout), else
    /// `Cancel::Dropped`): its caller owned it. An error the child had
    /// already left for the start is reported as an
    /// [`Incident::Unreturned`](crate::rt::Incident::Unreturned). A value it
    /// had reported, not taken yet, is dropped with the start; the child
    /// goes on in the group.
    ///
    /// ```
    /// use std::io;
    /// use awith::group::{Started, TaskGroup};
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let rt = awith::runtime()?;
    ///     let served = TaskGroup::<io::Error>::with(&rt, async |group| {
    ///         let (address, server) = group
    ///             .start(|ready: Started<String>| async move {
    ///                 // Bind, then say where; then serve until cancelled.
    ///                 ready.started("127.0.0.1:8080".to_owned());
    ///                 Ok("served")
    ///             })
    ///             .await
    ///             .map_err(io::Error::other)?;
    ///         assert_eq!(address, "127.0.0.1:8080");
    ///         Ok(server.await)
    ///     })
    ///     .await?;
    ///     assert_eq!(served, Ok("served"));
    ///     Ok(())
    /// }
    /// ```
    pub async fn start<V, T, F, Fut>(&self, child: F) -> Result<(V, ChildHandle<T>), StartError<E>>
    where
        V: Send + 'static,
        T: Send + 'static,
        F: FnOnce(Started<V>) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        start::start(&self.rt, &self.shared, Some(&self.set), None, child).await
    }

    /// Starts a child with a name; see [`start`](Self::start) and
    /// [`spawn_named`](Self::spawn_named).
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    ///
    /// # Cancellation
    ///
    /// As [`start`](Self::start).
    ///
    /// ```
    /// use std::io;
    /// use awith::group::{Started, TaskGroup};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let outcome = TaskGroup::<io::Error>::with(&rt, async |group| {
    ///     let ((), worker) = group
    ///         .start_named("worker", |ready: Started<()>| async move {
    ///             ready.started(());
    ///             Ok(1)
    ///         })
    ///         .await
    ///         .map_err(io::Error::other)?;
    ///     assert_eq!(worker.name(), Some("worker"));
    ///     Ok(worker.await)
    /// })
    /// .await?;
    /// assert_eq!(outcome, Ok(1));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn start_named<V, T, F, Fut>(
        &self,
        name: impl Into<Arc<str>>,
        child: F,
    ) -> Result<(V, ChildHandle<T>), StartError<E>>
    where
        V: Send + 'static,
        T: Send + 'static,
        F: FnOnce(Started<V>) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let name = Some(name.into());
        start::start(&self.rt, &self.shared, Some(&self.set), name, child).await
    }

    /// A [`Spawner`] for this group, for children to hold: it spawns and
    /// starts siblings, and cancels the group.
    ///
    /// ```
    /// use std::io;
    /// use awith::group::TaskGroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let outcome = TaskGroup::<io::Error>::with(&rt, async |group| {
    ///     let spawner = group.spawner();
    ///     let child = group
    ///         .spawn(async move { spawner.spawn(async { Ok(2) }).map_err(io::Error::other) })
    ///         .map_err(io::Error::other)?;
    ///     let sibling = child.await.map_err(io::Error::other)?;
    ///     Ok(sibling.await)
    /// })
    /// .await?;
    /// assert_eq!(outcome, Ok(2));
    /// # Ok(())
    /// # }
    /// ```
    pub fn spawner(&self) -> Spawner<E> {
        Spawner {
            rt: self.rt.clone(),
            shared: Arc::clone(&self.shared),
        }
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
