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
/// use awith::group::GroupSpawnError;
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
/// use std::io;
/// use awith::group::TaskGroup;
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let rt = awith::runtime()?;
///     let (tx, rx) = std::sync::mpsc::channel();
///     TaskGroup::<io::Error>::with(&rt, async |group| {
///         let spawner = group.spawner();
///         group
///             .spawn(async move {
///                 // A child starts a sibling; the group waits for both.
///                 spawner
///                     .spawn(async move { tx.send("the sibling ran").map_err(io::Error::other) })
///                     .map_err(io::Error::other)?;
///                 Ok(())
///             })
///             .map_err(io::Error::other)?;
///         Ok(())
///     })
///     .await?;
///     assert_eq!(rx.try_recv(), Ok("the sibling ran"));
///     Ok(())
/// }
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
    /// `Cancel::Requested`; see [`TaskGroup::cancel`](super::TaskGroup::cancel).
    /// Does nothing once the group has ended, or was cancelled before.
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
    ///     let spawner = group.spawner();
    ///     group
    ///         .spawn(async move {
    ///             spawner.cancel("shutdown requested");
    ///             Ok(())
    ///         })
    ///         .map_err(io::Error::other)?;
    ///     Ok(server)
    /// })
    /// .await?;
    /// let told = server.await;
    /// assert_eq!(told, Err(Joined::Cancelled(Cancel::Requested)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn cancel(&self, reason: &'static str) {
        requested(&self.shared, reason);
    }

    /// The text the group's cancellation was requested with, once it was;
    /// see [`TaskGroup::cancel_reason`](super::TaskGroup::cancel_reason).
    pub fn cancel_reason(&self) -> Option<&'static str> {
        self.shared.cancel_reason()
    }

    /// `true` once the group has ended: a spawn fails from then on.
    ///
    /// ```
    /// use awith::group::TaskGroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let spawner = TaskGroup::<std::io::Error>::with(&rt, async |group| {
    ///     assert!(!group.spawner().is_closed());
    ///     Ok(group.spawner())
    /// })
    /// .await?;
    /// assert!(spawner.is_closed());
    /// # Ok(())
    /// # }
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
    /// # Cancellation
    ///
    /// As [`TaskGroup::spawn`](super::TaskGroup::spawn): the
    /// child is cancelled with its group or by
    /// [`abort`](ChildHandle::abort), never by dropping its handle. Once the
    /// group's future has been dropped, a child spawned during its teardown
    /// is cancelled at once, never polled (told the reason the group was
    /// dropped for), and the teardown waits for it; once the teardown has
    /// ended, the spawn fails with [`GroupSpawnError::Closed`].
    ///
    /// ```
    /// use std::io;
    /// use awith::group::{GroupSpawnError, TaskGroup};
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let rt = awith::runtime()?;
    ///     let spawner = TaskGroup::<io::Error>::with(&rt, async |group| {
    ///         let spawner = group.spawner();
    ///         let seven = spawner.spawn(async { Ok(7) }).map_err(io::Error::other)?;
    ///         assert_eq!(seven.await, Ok(7));
    ///         Ok(spawner)
    ///     })
    ///     .await?;
    ///     // The group has ended.
    ///     let late = spawner.spawn(async { Ok(8) });
    ///     assert!(matches!(late, Err(GroupSpawnError::Closed)));
    ///     Ok(())
    /// }
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
    /// use std::io;
    /// use awith::group::TaskGroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let error = TaskGroup::<io::Error>::with(&rt, async |group| {
    ///     let spawner = group.spawner();
    ///     let reset = async { Err::<(), _>(io::Error::from(io::ErrorKind::ConnectionReset)) };
    ///     spawner.spawn_named(format!("conn-{}", 3), reset).map_err(io::Error::other)?;
    ///     Ok(())
    /// })
    /// .await
    /// .expect_err("a child failed");
    /// assert_eq!(error.to_string(), "connection reset (in task `conn-3`)");
    /// # Ok(())
    /// # }
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
    /// use std::io;
    /// use awith::group::{Started, TaskGroup};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let outcome = TaskGroup::<io::Error>::with(&rt, async |group| {
    ///     let spawner = group.spawner();
    ///     let ready = group
    ///         .spawn(async move {
    ///             // A child starts a sibling and waits until it is ready.
    ///             let (port, _) = spawner
    ///                 .start(|ready: Started<u16>| async move {
    ///                     ready.started(8080);
    ///                     Ok(())
    ///                 })
    ///                 .await
    ///                 .map_err(io::Error::other)?;
    ///             Ok(port)
    ///         })
    ///         .map_err(io::Error::other)?;
    ///     Ok(ready.await)
    /// })
    /// .await?;
    /// assert_eq!(outcome, Ok(8080));
    /// # Ok(())
    /// # }
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
    /// # Cancellation
    ///
    /// As [`TaskGroup::start`](super::TaskGroup::start).
    ///
    /// ```
    /// use std::io;
    /// use awith::group::{Started, TaskGroup};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let port = TaskGroup::<io::Error>::with(&rt, async |group| {
    ///     let (port, server) = group
    ///         .spawner()
    ///         .start_named("server", |ready: Started<u16>| async move {
    ///             ready.started(8080);
    ///             Ok(())
    ///         })
    ///         .await
    ///         .map_err(io::Error::other)?;
    ///     assert_eq!(server.name(), Some("server"));
    ///     Ok(port)
    /// })
    /// .await?;
    /// assert_eq!(port, 8080);
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
