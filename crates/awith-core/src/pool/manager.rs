//! [`Manager`]: what a pool's objects are and how they are made, checked
//! and disposed of; [`ObjectMetrics`], what the pool knows of each.

use std::fmt;
use std::future::Future;
use std::time::Instant;

use crate::exit::ExitKind;

/// Creates, recycles and destroys a [`Pool`](super::Pool)'s objects.
///
/// The futures may borrow the manager; they are run by the pool on the
/// runtime it was built with. Each of them — and an object's `Drop` — may
/// panic or hang without costing the pool a slot (see the [module
/// docs](super), "User code"): the pool calls none of them while it holds
/// its lock, so they may call the pool themselves.
pub trait Manager: Send + Sync + 'static {
    /// What the pool holds: a connection, a client, a session.
    type Object: Send + 'static;
    /// What creating or recycling can fail with.
    type Error: fmt::Debug + Send + 'static;

    /// Makes a new object: for a checkout (on its task; bounded by the
    /// create timeout), or for `min_idle` (in a task of the pool's; a
    /// failure or a panic there is reported as an
    /// [`Incident`](crate::rt::Incident)).
    fn create(&self) -> impl Future<Output = Result<Self::Object, Self::Error>> + Send;

    /// Checks an idle object before it is used again (a ping, a `DISCARD
    /// ALL`). An error destroys it; the checkout then gets a fresh one.
    /// Bounded by the recycle timeout.
    fn recycle(
        &self,
        object: &mut Self::Object,
        metrics: &ObjectMetrics,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// An object whose scope panicked or was cancelled, possibly
    /// mid-operation: `true` when it has been put back in a clean state and
    /// may return to the pool. The default says `false`: it is destroyed.
    /// Bounded by the recycle timeout (past it, the object is destroyed).
    fn reset(
        &self,
        object: &mut Self::Object,
        exit: ExitKind,
    ) -> impl Future<Output = bool> + Send {
        let _ = (object, exit);
        async { false }
    }

    /// Disposes of an object the pool no longer keeps (a `Terminate`
    /// message). The default drops it.
    ///
    /// It runs as a tracked runtime cleanup ([`CleanupKind::Destroy`]),
    /// bounded by the runtime's cleanup timeout: [`Runtime::drain`] waits
    /// for it, and one that fails to finish — it panics, overruns, or the
    /// runtime refuses it — is reported as an
    /// [`Incident`](crate::rt::Incident). The object's slot is free again
    /// when it has ended.
    ///
    /// [`CleanupKind::Destroy`]: crate::rt::CleanupKind::Destroy
    /// [`Runtime::drain`]: crate::rt::Runtime::drain
    fn destroy(&self, object: Self::Object) -> impl Future<Output = ()> + Send {
        async move { drop(object) }
    }
}

/// What the pool knows of one object, passed to [`Manager::recycle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectMetrics {
    /// When it was created (the runtime's clock).
    pub created: Instant,
    /// When it last came back to the pool; its creation if never.
    pub last_used: Instant,
    /// How often it has been recycled.
    pub recycled: u64,
}

impl ObjectMetrics {
    /// A new object's, created `now`.
    pub(super) fn new(now: Instant) -> Self {
        ObjectMetrics {
            created: now,
            last_used: now,
            recycled: 0,
        }
    }
}
