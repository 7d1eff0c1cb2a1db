//! [`ChildHandle`]: a future of one child's value, and [`Joined`], how a
//! child ended when it did not succeed.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::child::Child;
use super::shared::Cancellable;
use crate::exit::Cancel;

/// How a child ended, as its [`ChildHandle`] says when it did not succeed.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Joined {
    /// It failed; its error went to the group.
    Failed,
    /// It panicked (while polled, or while its future or the value nobody
    /// claimed was dropped); the group resumes the panic once every child
    /// has ended.
    Panicked,
    /// It was cancelled, for this reason.
    Cancelled(Cancel),
    /// The runtime dropped it unfinished (it shut down).
    Lost,
    /// This handle already gave the child's outcome: it was awaited to the
    /// end before.
    Taken,
}

impl fmt::Display for Joined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Joined::Failed => f.write_str("the child failed (its error went to the group)"),
            Joined::Panicked => f.write_str("the child panicked"),
            Joined::Cancelled(reason) => write!(f, "the child was cancelled ({reason})"),
            Joined::Lost => f.write_str("the runtime dropped the child unfinished"),
            Joined::Taken => f.write_str("the handle already gave the child's outcome"),
        }
    }
}

impl std::error::Error for Joined {}

/// A handle to a child of a [`TaskGroup`](super::TaskGroup): a future of
/// its value.
///
/// It gives the outcome once; awaited again, it resolves at once to
/// `Err(Joined::Taken)`. Dropping it changes nothing for the child, which
/// goes on as part of its group; its value, which nobody can claim now, is
/// dropped when the child ends, as part of the child.
///
/// ```
/// use std::io;
/// use awith::group::{Joined, TaskGroup};
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let rt = awith::runtime()?;
///     let (first, again) = TaskGroup::<io::Error>::with(&rt, async |group| {
///         let mut handle = group.spawn(async { Ok(7) }).map_err(io::Error::other)?;
///         let first = (&mut handle).await;
///         assert!(handle.is_finished());
///         Ok((first, (&mut handle).await))
///     })
///     .await?;
///     assert_eq!((first, again), (Ok(7), Err(Joined::Taken)));
///     Ok(())
/// }
/// ```
///
/// # Cancellation
///
/// - **Awaiting** is cancel-safe: the child runs in its own task, not in
///   the handle, and the outcome stays in the handle until an await
///   returns it. Dropping a `(&mut handle).await` (a timeout, a `select!`)
///   before the child has ended changes nothing; a later await gets the
///   outcome.
/// - **[`abort`](Self::abort)** cancels the child, told `Cancel::Dropped`
///   (a no-op once it has ended); it is dropped in its task at its next
///   wake-up.
/// - **Dropping** the handle cancels nothing: the child goes on as part of
///   its group. A value it had left in the handle is dropped with the
///   handle; one it returns later is dropped in its task, as part of the
///   child (a panic of that drop is the child's, and the group's).
pub struct ChildHandle<T> {
    child: Arc<Child<T>>,
}

impl<T> ChildHandle<T> {
    pub(super) fn new(child: Arc<Child<T>>) -> Self {
        ChildHandle { child }
    }
}

impl<T: Send + 'static> ChildHandle<T> {
    /// Cancels the child (a no-op if it has ended): it is dropped at its next
    /// wake-up, before it is polled again, told `Cancel::Dropped`, and its
    /// handle resolves to `Err(Joined::Cancelled(Cancel::Dropped))`. Not a
    /// failure of the group.
    ///
    /// # Cancellation
    ///
    /// `abort` does not wait: the child is dropped in its task, and the
    /// scopes inside it release as runtime cleanups, which the child waits
    /// for before it ends — awaiting the handle then waits for them too, and
    /// so does the group.
    ///
    /// ```
    /// use std::io;
    /// use awith::Cancel;
    /// use awith::group::{Joined, TaskGroup};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let told = TaskGroup::<io::Error>::with(&rt, async |group| {
    ///     let mut stuck = group
    ///         .spawn(std::future::pending::<Result<(), _>>())
    ///         .map_err(io::Error::other)?;
    ///     stuck.abort();
    ///     Ok((&mut stuck).await)
    /// })
    /// .await?; // an aborted child is not a failure
    /// assert_eq!(told, Err(Joined::Cancelled(Cancel::Dropped)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn abort(&self) {
        self.child.cancel(Cancel::Dropped);
    }

    /// `true` once the child has ended — and ever after, also once the
    /// handle has been awaited.
    pub fn is_finished(&self) -> bool {
        self.child.is_finished()
    }

    /// Cancels the child for `reason` (a no-op if it has ended).
    pub(super) fn cancel_for(&self, reason: Cancel) {
        self.child.cancel(reason);
    }
}

impl<T> ChildHandle<T> {
    /// The name the child was spawned with
    /// ([`TaskGroup::spawn_named`](super::TaskGroup::spawn_named)), if any.
    ///
    /// ```
    /// use std::io;
    /// use awith::group::TaskGroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// TaskGroup::<io::Error>::with(&rt, async |group| {
    ///     let named = group.spawn_named("poller", async { Ok(()) }).map_err(io::Error::other)?;
    ///     let unnamed = group.spawn(async { Ok(()) }).map_err(io::Error::other)?;
    ///     assert_eq!((named.name(), unnamed.name()), (Some("poller"), None));
    ///     Ok(())
    /// })
    /// .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.child.name.as_deref()
    }
}

impl<T> Drop for ChildHandle<T> {
    fn drop(&mut self) {
        // A value the child left for it is dropped here, no lock held.
        drop(self.child.detach());
    }
}

impl<T> fmt::Debug for ChildHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut described = f.debug_struct("ChildHandle");
        if let Some(name) = &self.child.name {
            described.field("name", name);
        }
        described.finish_non_exhaustive()
    }
}

impl<T> Future for ChildHandle<T> {
    type Output = Result<T, Joined>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.child.take(cx.waker())
    }
}
