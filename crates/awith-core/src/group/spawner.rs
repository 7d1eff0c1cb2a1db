//! [`Spawner`]: a handle to a group that children can hold, to start
//! siblings in it, or cancel it; and [`GroupSpawnError`], why a child could
//! not be added.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::handle::ChildHandle;
use super::shared::Shared;
use super::start::{StartError, Started, start};
use super::{launch, requested};
use crate::rt::{Runtime, SpawnError};

/// Why a child could not be added to a group through a [`Spawner`].
///
/// ```
/// use awith_core::group::GroupSpawnError;
///
/// assert_eq!(
///     GroupSpawnError::Closed.to_string(),
///     "cannot spawn into the task group: it has ended"
/// );
/// ```
#[non_exhaustive]
#[derive(Debug)]
pub enum GroupSpawnError {
    /// The group has ended: its body and every child had ended, and it
    /// returned (or its teardown finished). Nothing was run.
    Closed,
    /// The runtime refused the task (it has shut down); nothing runs.
    Runtime(SpawnError),
}

impl From<SpawnError> for GroupSpawnError {
    fn from(refused: SpawnError) -> Self {
        GroupSpawnError::Runtime(refused)
    }
}

impl fmt::Display for GroupSpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupSpawnError::Closed => {
                f.write_str("cannot spawn into the task group: it has ended")
            }
            GroupSpawnError::Runtime(refused) => write!(f, "{refused}"),
        }
    }
}

impl std::error::Error for GroupSpawnError {}

/// A handle to a [`TaskGroup`](super::TaskGroup) that children can hold
/// (`Clone + Send + Sync + 'static`): it spawns and starts siblings in the
/// same group, and cancels the group — what the body does with the group
/// itself, from anywhere.
///
/// A child it spawns is a child of the group like any other: the group
/// waits for it, its failure is the group's, and it is cancelled with the
/// group. Once the group has ended, a spawn fails with
/// [`GroupSpawnError::Closed`] (never a panic) and runs nothing; a cancel
/// does nothing.
///
/// ```
/// use awith_core::group::TaskGroup;
/// use awith_core::reference::Reference;
///
/// let reference = Reference::new();
/// let rt = reference.runtime();
/// let (tx, rx) = std::sync::mpsc::channel();
/// let outcome = reference.block_on(TaskGroup::<()>::with(&rt, async |group| {
///     let spawner = group.spawner();
///     group.spawn(async move {
///         // A child starts a sibling; the group waits for both.
///         spawner.spawn(async move {
///             tx.send("the sibling ran").unwrap();
///             Ok(())
///         }).unwrap();
///         Ok(())
///     }).unwrap();
///     Ok(())
/// }));
/// assert_eq!(outcome.unwrap(), Ok(()));
/// assert_eq!(rx.try_recv(), Ok("the sibling ran"));
/// ```
pub struct Spawner<E> {
    pub(super) rt: Runtime,
    pub(super) shared: Arc<Shared<E>>,
}

impl<E> Clone for Spawner<E> {
    fn clone(&self) -> Self {
        Spawner {
            rt: self.rt.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<E> Spawner<E> {
    /// Cancels the group, its body and every child, told
    /// `Cancel::Requested(reason)`; see [`TaskGroup::cancel`](super::TaskGroup::cancel).
    /// Does nothing once the group has ended, or was cancelled before.
    ///
    /// ```
    /// use awith_core::Cancel;
    /// use awith_core::group::{Joined, TaskGroup};
    /// use awith_core::reference::Reference;
    ///
    /// let reference = Reference::new();
    /// let rt = reference.runtime();
    /// let outcome = reference.block_on(TaskGroup::<()>::with(&rt, async |group| {
    ///     let server = group.spawn(std::future::pending::<Result<(), ()>>()).unwrap();
    ///     let spawner = group.spawner();
    ///     group.spawn(async move {
    ///         spawner.cancel("shutdown requested");
    ///         Ok(())
    ///     }).unwrap();
    ///     Ok(server)
    /// }));
    /// let server = outcome.unwrap().unwrap();
    /// let told = reference.block_on(server).unwrap();
    /// assert_eq!(told, Err(Joined::Cancelled(Cancel::Requested("shutdown requested"))));
    /// ```
    pub fn cancel(&self, reason: &'static str) {
        requested(&self.shared, reason);
    }

    /// `true` once the group has ended: a spawn fails from then on.
    ///
    /// ```
    /// use awith_core::group::TaskGroup;
    /// use awith_core::reference::Reference;
    ///
    /// let reference = Reference::new();
    /// let rt = reference.runtime();
    /// let spawner = reference
    ///     .block_on(TaskGroup::<()>::with(&rt, async |group| {
    ///         assert!(!group.spawner().is_closed());
    ///         Ok(group.spawner())
    ///     }))
    ///     .unwrap()
    ///     .unwrap();
    /// assert!(spawner.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}

impl<E: fmt::Debug + Send + 'static> Spawner<E> {
    /// Spawns a child into the group, as [`TaskGroup::spawn`](super::TaskGroup::spawn).
    ///
    /// # Errors
    ///
    /// [`GroupSpawnError::Closed`] once the group has ended;
    /// [`GroupSpawnError::Runtime`] when the runtime refuses the task.
    /// Nothing runs then (`child`, not run, is dropped here).
    ///
    /// ```
    /// use awith_core::group::{GroupSpawnError, TaskGroup};
    /// use awith_core::reference::Reference;
    ///
    /// let reference = Reference::new();
    /// let rt = reference.runtime();
    /// let spawner = reference
    ///     .block_on(TaskGroup::<()>::with(&rt, async |group| {
    ///         let spawner = group.spawner();
    ///         let seven = spawner.spawn(async { Ok(7) }).unwrap();
    ///         assert_eq!(seven.await, Ok(7));
    ///         Ok(spawner)
    ///     }))
    ///     .unwrap()
    ///     .unwrap();
    /// // The group has ended.
    /// let late = spawner.spawn(async { Ok(8) });
    /// assert!(matches!(late, Err(GroupSpawnError::Closed)));
    /// ```
    pub fn spawn<T, F>(&self, child: F) -> Result<ChildHandle<T>, GroupSpawnError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.spawn_as(None, child)
    }

    /// Spawns a child with a name, as [`TaskGroup::spawn_named`](super::TaskGroup::spawn_named).
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn).
    ///
    /// ```
    /// use awith_core::group::TaskGroup;
    /// use awith_core::reference::Reference;
    ///
    /// let reference = Reference::new();
    /// let rt = reference.runtime();
    /// let error = reference
    ///     .block_on(TaskGroup::<&str>::with(&rt, async |group| {
    ///         let spawner = group.spawner();
    ///         spawner.spawn_named(format!("conn-{}", 3), async { Err::<(), _>("reset") }).unwrap();
    ///         Ok(())
    ///     }))
    ///     .unwrap()
    ///     .unwrap_err();
    /// assert_eq!(error.to_string(), "reset (in task `conn-3`)");
    /// ```
    pub fn spawn_named<T, F>(
        &self,
        name: impl Into<Arc<str>>,
        child: F,
    ) -> Result<ChildHandle<T>, GroupSpawnError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.spawn_as(Some(name.into()), child)
    }

    fn spawn_as<T, F>(
        &self,
        name: Option<Arc<str>>,
        child: F,
    ) -> Result<ChildHandle<T>, GroupSpawnError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        if !self.shared.spawned() {
            return Err(GroupSpawnError::Closed);
        }
        Ok(launch(&self.rt, &self.shared, None, name, None, child)?)
    }

    /// Starts a child and waits until it reports that it is ready, as
    /// [`TaskGroup::start`](super::TaskGroup::start).
    ///
    /// # Errors
    ///
    /// As [`TaskGroup::start`](super::TaskGroup::start);
    /// `StartError::Spawn(GroupSpawnError::Closed)` once the group has ended.
    ///
    /// # Cancellation
    ///
    /// As [`TaskGroup::start`](super::TaskGroup::start).
    ///
    /// ```
    /// use awith_core::group::{Started, TaskGroup};
    /// use awith_core::reference::Reference;
    ///
    /// let reference = Reference::new();
    /// let rt = reference.runtime();
    /// let outcome = reference.block_on(TaskGroup::<()>::with(&rt, async |group| {
    ///     let spawner = group.spawner();
    ///     let ready = group.spawn(async move {
    ///         // A child starts a sibling and waits until it is ready.
    ///         let (port, _) = spawner
    ///             .start(|ready: Started<u16>| async move {
    ///                 ready.started(8080);
    ///                 Ok(())
    ///             })
    ///             .await
    ///             .map_err(|_| ())?;
    ///         Ok(port)
    ///     }).unwrap();
    ///     Ok(ready.await)
    /// }));
    /// assert_eq!(outcome.unwrap(), Ok(Ok(8080)));
    /// ```
    pub async fn start<V, T, F, Fut>(&self, child: F) -> Result<(V, ChildHandle<T>), StartError<E>>
    where
        V: Send + 'static,
        T: Send + 'static,
        F: FnOnce(Started<V>) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        start(&self.rt, &self.shared, None, None, child).await
    }

    /// Starts a child with a name; see [`start`](Self::start).
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    ///
    /// ```
    /// use awith_core::group::{Started, TaskGroup};
    /// use awith_core::reference::Reference;
    ///
    /// let reference = Reference::new();
    /// let rt = reference.runtime();
    /// let outcome = reference.block_on(TaskGroup::<()>::with(&rt, async |group| {
    ///     let (port, server) = group
    ///         .spawner()
    ///         .start_named("server", |ready: Started<u16>| async move {
    ///             ready.started(8080);
    ///             Ok(())
    ///         })
    ///         .await
    ///         .unwrap();
    ///     assert_eq!(server.name(), Some("server"));
    ///     Ok(port)
    /// }));
    /// assert_eq!(outcome.unwrap(), Ok(8080));
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
        start(&self.rt, &self.shared, None, Some(name.into()), child).await
    }
}

impl<E> fmt::Debug for Spawner<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawner")
            .field("closed", &self.shared.is_closed())
            .field("cancelled", &self.shared.cancelled())
            .finish_non_exhaustive()
    }
}
