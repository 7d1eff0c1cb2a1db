//! [`Pool`]: an async object pool whose checkout is a scope — asyncpg's
//! `async with pool.acquire() as conn`, on any runtime.
//!
//! A [`Manager`] creates, recycles and destroys the objects (connections,
//! clients, sessions); the pool keeps at most `max_size` of them and hands
//! them out one scope at a time:
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//! use awith::pool::{Manager, ObjectMetrics, Pool};
//!
//! /// Connections to an imaginary server: a number each.
//! struct Server {
//!     next: AtomicU32,
//! }
//!
//! impl Manager for Server {
//!     type Object = u32;
//!     type Error = std::io::Error;
//!
//!     async fn create(&self) -> Result<u32, std::io::Error> {
//!         Ok(self.next.fetch_add(1, Ordering::SeqCst))
//!     }
//!
//!     async fn recycle(&self, _conn: &mut u32, _: &ObjectMetrics) -> Result<(), std::io::Error> {
//!         Ok(()) // a real manager pings the server here
//!     }
//! }
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let rt = awith::runtime()?;
//!     let pool = Pool::builder(Server { next: AtomicU32::new(1) })
//!         .max_size(2)
//!         .build(&rt)?;
//!     let first = pool.with(async |conn| Ok::<_, std::io::Error>(*conn)).await?;
//!     let again = pool.with(async |conn| Ok::<_, std::io::Error>(*conn)).await?;
//!     assert_eq!((first, again), (1, 1)); // the same connection, back in the pool in between
//!     assert_eq!(pool.status().size, 1);
//!
//!     pool.close(Duration::from_secs(5)).await?;
//!     rt.drain(Duration::from_secs(5)).await?; // the connections' destroys
//!     Ok(())
//! }
//! ```
//!
//! # The rules
//!
//! - **Checkout is a scope.** [`Pool::with`] runs a body with `&mut` the
//!   object; [`Pool::checkout`] is the same as a [`Resource`], to compose with
//!   [`and_then`](crate::ResourceExt::and_then) or an
//!   [`ExitStack`](crate::stack::ExitStack). How the scope ended decides what
//!   happens to the object:
//!
//!   | the scope ended | the object |
//!   |---|---|
//!   | `Completed` | goes back; it is recycled before its next use |
//!   | `Failed` | is recycled at once (the error may have left it mid-transaction); back if that works, else destroyed, the recycle's error kept beside the body's ([`PoolError::Recycle`]) |
//!   | `Panicked`, `Cancelled` | may be mid-operation: [`Manager::reset`] decides (default: destroyed) — never handed on as if clean |
//!
//! - **Recycling.** An idle object is recycled ([`Manager::recycle`]) when
//!   it is checked out. If that fails (or times out) the object is destroyed
//!   and the checkout makes a fresh one in its slot, once the destroy has
//!   ended. An idle object past its `max_lifetime` or `idle_timeout` is
//!   destroyed instead of being reused.
//! - **Waiting is fair.** When every slot is taken, checkouts queue, first in
//!   first out; an object that comes back, or a slot that comes free, goes to
//!   the first in the queue, never to a newcomer. A waiter that is dropped
//!   leaves the queue; one dropped after an object was handed to it gives it
//!   to the next.
//! - **Slots.** `max_size` bounds objects in existence plus those being
//!   created or destroyed. A creation that fails, times out or panics frees
//!   its slot; so does a destroy when it ends, however it ends.
//! - **Destroying.** Every object the pool lets go — refused on its return,
//!   expired, cut by [`resize`](Pool::resize) or [`retain`](Pool::retain),
//!   at [`close`](Pool::close), or left idle in a pool that is dropped — is
//!   destroyed by [`Manager::destroy`] in a tracked runtime cleanup
//!   ([`CleanupKind::Destroy`](crate::rt::CleanupKind::Destroy)), bounded by
//!   the runtime's cleanup timeout; [`Runtime::drain`] waits for them.
//! - **Retain.** [`Pool::retain`] takes the idle objects out of the pool
//!   (meanwhile they count as in use), asks its predicate about each while
//!   holding no lock, and destroys those it says no to; the others go back
//!   as returning objects do, to the first waiting checkout first. If the
//!   predicate panics, what it said no to is destroyed, the rest goes back,
//!   and the panic resumes in `retain`'s caller.
//! - **Closing.** [`Pool::close`] refuses new checkouts ([`PoolError::Closed`]),
//!   fails the waiters — also those that had been handed a slot or an object
//!   and not yet taken it — destroys the idle objects, ends the top-ups to
//!   `min_idle` in flight, and waits, up to a deadline, for the checked-out
//!   ones: they are destroyed as they come back. No body starts once `close`
//!   has begun: a checkout still creating or recycling its object when the
//!   pool closes destroys it and fails with [`PoolError::Closed`].
//! - **Dropping a pool.** When the last handle to a pool is gone (and the
//!   last checkout is back: a checkout keeps its pool), the pool closes as
//!   at `close`, without waiting: its idle objects are handed to their
//!   destroys, as tracked cleanups, before that drop returns (a
//!   [`Runtime::drain`] after it waits for them), and the top-ups in flight
//!   are ended. A runtime that refuses those cleanups (it has shut down) is
//!   reported ([`Incident::CleanupRefused`](crate::rt::Incident::CleanupRefused)),
//!   and the objects are dropped.
//! - **Maintenance.** For `min_idle`, `max_lifetime`, `idle_timeout` and the
//!   wait timeout the pool has a task of its own. It times the waiters, and
//!   every `maintenance_interval` destroys expired idle objects and starts a
//!   top-up for each object `min_idle` lacks, each in a task of its own:
//!   the task itself runs no user code, so a slow or hung creation never
//!   delays a waiter's timeout.
//!
//! # User code
//!
//! The manager's methods, the predicate of [`Pool::retain`] and the `Drop`
//! of an object are user code, and may panic or hang. The pool never runs
//! them, nor wakes a waker, while it holds its lock: a callback may call the
//! pool (e.g. [`Pool::status`]). Whatever they do, no slot is lost and no
//! wait outlives its bound; every failure is returned or reported:
//!
//! | where | panics | hangs |
//! |---|---|---|
//! | `create` for a checkout | the panic resumes in the checkout's task; the slot is freed | bounded by the create timeout ([`PoolError::Timeout`]) |
//! | `create` for `min_idle` | reported ([`Incident::BackgroundPanicked`]); a failure or a timeout too ([`Incident::BackgroundFailed`]); the slot is freed, the next round tries again | bounded by the create timeout; ended by `close` and by the pool's drop; waiters still time out |
//! | `recycle` | resumes in the checkout (or the release); the object is destroyed | bounded by the recycle timeout; the object is destroyed |
//! | `reset` | resumes as the release's panic; the object is destroyed | bounded by the recycle timeout; the object is destroyed |
//! | `destroy`, the object's `Drop` | reported ([`Incident::CleanupPanicked`]) | bounded by the runtime's cleanup timeout ([`Incident::CleanupTimedOut`]) |
//! | the predicate of `retain` | resumes in `retain`'s caller; what it said no to is destroyed, the rest goes back | — (it runs on the caller's thread, holding no lock) |
//!
//! A wait that has no bound (no create or recycle timeout set, a runtime
//! with unbounded cleanups) waits as long as the user code it waits for —
//! but only the checkout (or release) whose own callback it is: other
//! checkouts, their wait timeouts, maintenance and `close` go on.
//!
//! # What is reported
//!
//! What fails where no caller is left to tell goes to the runtime's incident
//! hook ([`Incident`](crate::rt::Incident)); nothing in the background is
//! silent:
//!
//! | incident | when |
//! |---|---|
//! | [`BackgroundFailed`](crate::rt::Incident::BackgroundFailed), work ``"a pool's top-up to `min_idle`"`` | a top-up's create failed (its error, `Debug`) or timed out, or the runtime refused its task |
//! | [`BackgroundPanicked`](crate::rt::Incident::BackgroundPanicked), the same work | a top-up's create panicked |
//! | [`BackgroundPanicked`](crate::rt::Incident::BackgroundPanicked), work `"a pool's task"` | the pool's task dropped objects whose destroy the runtime refused, and a `Drop` panicked |
//! | `CleanupPanicked`, `CleanupTimedOut` with [`CleanupKind::Destroy`](crate::rt::CleanupKind::Destroy) | a destroy (or the object's `Drop`) panicked, or overran the runtime's cleanup timeout |
//! | `CleanupRefused`, `CleanupAbandoned` with `CleanupKind::Destroy` | the runtime refused or dropped a destroy (it shut down): the object was dropped without it |
//! | the incidents of any cancelled scope's release (`CleanupKind::Release`) | a checkout cancelled in its body: its reset, recycle or give-back ran as a cleanup |
//!
//! What fails on a checkout's own path is returned to it instead: a
//! [`PoolError`], or a panic that resumes (as every scope resumes its
//! release's panic).
//!
//! [`Incident::BackgroundPanicked`]: crate::rt::Incident::BackgroundPanicked
//! [`Incident::BackgroundFailed`]: crate::rt::Incident::BackgroundFailed
//! [`Incident::CleanupPanicked`]: crate::rt::Incident::CleanupPanicked
//! [`Incident::CleanupTimedOut`]: crate::rt::Incident::CleanupTimedOut
//!
//! # Cancellation
//!
//! A checkout dropped while **waiting** leaves the queue (or passes on what
//! was handed to it); dropped while an object is being **recycled or
//! created**, the object is destroyed as a runtime cleanup, or the creation
//! dropped, and the slot is freed — a checkout's acquire is cancel-safe
//! ([`Resource::CANCEL_SAFE_ACQUIRE`]), so nothing waits for it. A scope
//! dropped in its **body** releases as every scope does: as a runtime
//! cleanup, told `Cancelled`, so the object is reset or destroyed. A
//! **release** in flight is finished by the runtime. `mem::forget` on a
//! checkout's scope keeps its slot taken for the life of the pool.
//!
//! [`Resource`]: crate::resource::Resource
//! [`Resource::CANCEL_SAFE_ACQUIRE`]: crate::resource::Resource::CANCEL_SAFE_ACQUIRE
//! [`Runtime::drain`]: crate::rt::Runtime::drain

mod checkout;
mod config;
mod error;
mod inner;
mod maintenance;
mod manager;
mod state;

pub use checkout::{Checkout, Returning};
pub use config::{PoolBuilder, PoolConfigError};
pub use error::{PoolError, TimeoutKind};
pub use manager::{Manager, ObjectMetrics};

use std::fmt;
use std::future::Future;
use std::mem;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use self::config::Timeouts;
use self::inner::Inner;
use self::state::{Grant, Idle, Kept};
use crate::error::ScopeError;
use crate::resource::ResourceExt;
use crate::sync::Ordering;

/// A snapshot of a pool's counters ([`Pool::status`]).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// The most objects (and creations and destructions in flight) at once.
    pub max_size: usize,
    /// Objects in existence: `created - destroyed`.
    pub size: usize,
    /// Objects in the pool, free.
    pub idle: usize,
    /// Objects checked out (or being recycled for a checkout, or looked at
    /// by [`Pool::retain`]'s predicate).
    pub in_use: usize,
    /// Checkouts waiting for an object.
    pub waiting: usize,
    /// Objects created so far.
    pub created: u64,
    /// Objects destroyed (or being destroyed) so far.
    pub destroyed: u64,
    /// Successful recycles so far.
    pub recycled: u64,
    /// Recycles that failed or timed out, each destroying its object.
    pub recycle_failed: u64,
    /// The pool is closed.
    pub closed: bool,
}

/// An async object pool; see the [module docs](self). Cloning it makes
/// another handle to the same pool.
pub struct Pool<M: Manager> {
    inner: Arc<Inner<M>>,
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Self {
        self.inner.handles.fetch_add(1, Ordering::Relaxed);
        Pool {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// The last handle (a checkout holds one until its release ends) lets go
/// of the pool here, on the thread that drops it: its idle objects are
/// handed to their destroys before this returns — so a
/// [`Runtime::drain`](crate::rt::Runtime::drain) after it waits for them —
/// and its task and top-ups end. The pool's own tasks, which hold it for
/// a moment now and then, never do this late on another thread.
impl<M: Manager> Drop for Pool<M> {
    fn drop(&mut self) {
        if self.inner.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.close_now();
            // Its task ends now, not at its next timer.
            self.inner.task.poke();
        }
    }
}

impl<M: Manager> fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl<M: Manager> Pool<M> {
    /// A pool of the objects `manager` makes; configure it, then
    /// [`build`](PoolBuilder::build) it on a runtime.
    pub fn builder(manager: M) -> PoolBuilder<M> {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        PoolBuilder {
            manager,
            max_size: cpus * 4,
            min_idle: 0,
            timeouts: Timeouts::default(),
            max_lifetime: None,
            idle_timeout: None,
            maintenance_interval: Duration::from_secs(1),
        }
    }

    /// Runs `body` with an object of the pool: a checkout scope, over
    /// [`checkout`](Self::checkout). See the [module docs](self) for what
    /// happens to the object after.
    ///
    /// # Errors
    ///
    /// [`ScopeError::Acquire`] with a [`PoolError`] when no object could be
    /// had; the body's error; [`PoolError::Recycle`] beside it when the
    /// object failed its recycle after.
    ///
    /// # Cancellation
    ///
    /// As [`checkout`](Self::checkout)'s scope: dropped while waiting for
    /// an object or making it ready, nothing is left behind; dropped in the
    /// body, the object is released as a runtime cleanup, told
    /// `Cancelled` (so [`Manager::reset`] decides whether it is kept).
    ///
    /// # Examples
    ///
    /// With the `Server` manager of the [module docs](self):
    ///
    /// ```
    /// use std::time::Duration;
    /// use awith::pool::Pool;
    /// # use std::sync::atomic::{AtomicU32, Ordering};
    /// # use awith::pool::{Manager, ObjectMetrics};
    /// # struct Server { next: AtomicU32 }
    /// # impl Manager for Server {
    /// #     type Object = u32;
    /// #     type Error = std::io::Error;
    /// #     async fn create(&self) -> Result<u32, std::io::Error> {
    /// #         Ok(self.next.fetch_add(1, Ordering::SeqCst))
    /// #     }
    /// #     async fn recycle(&self, _: &mut u32, _: &ObjectMetrics) -> Result<(), std::io::Error> {
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let pool = Pool::builder(Server { next: AtomicU32::new(1) }).max_size(1).build(&rt)?;
    /// let conn = pool.with(async |conn| Ok::<_, std::io::Error>(*conn)).await?;
    /// assert_eq!(conn, 1);
    ///
    /// // A body that fails: its error comes back, and the connection (recycled
    /// // for this checkout, as an idle one is) is recycled again at once,
    /// // before it goes back to the pool.
    /// let failed = pool
    ///     .with(async |_conn| Err::<(), _>(std::io::Error::other("bad query")))
    ///     .await;
    /// let error = failed.unwrap_err();
    /// assert_eq!(error.body_error().map(|e| e.to_string()).as_deref(), Some("bad query"));
    /// assert_eq!((pool.status().idle, pool.status().recycled), (1, 2));
    ///
    /// pool.close(Duration::from_secs(5)).await?;
    /// rt.drain(Duration::from_secs(5)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn with<U, E, B>(&self, body: B) -> Result<U, ScopeError<E, PoolError<M::Error>>>
    where
        B: AsyncFnOnce(&mut M::Object) -> Result<U, E>,
        E: fmt::Debug,
    {
        self.checkout().with(&self.inner.rt, body).await
    }

    /// A checkout as a [`Resource`](crate::resource::Resource), to compose.
    ///
    /// # Cancellation
    ///
    /// Its acquire is cancel-safe
    /// ([`CANCEL_SAFE_ACQUIRE`](crate::resource::Resource::CANCEL_SAFE_ACQUIRE)):
    /// a checkout dropped (or timed out by
    /// [`acquire_timeout`](crate::ResourceExt::acquire_timeout)) while
    /// waiting leaves the queue, and one dropped while its object is being
    /// created or recycled destroys it as a runtime cleanup and frees the
    /// slot; no acquire is left running. Dropped in the body, the object is
    /// released as a runtime cleanup, told `Cancelled`; see the
    /// [module docs](self#cancellation).
    ///
    /// # Examples
    ///
    /// A checkout and a transaction on its connection, in one scope; their
    /// errors differ, and the scope's error says which part failed
    /// ([`PartError`](crate::PartError)). With the `Server` manager of the
    /// [module docs](self):
    ///
    /// ```
    /// use std::time::Duration;
    /// use awith::pool::Pool;
    /// use awith::{resource, ResourceExt};
    /// # use std::sync::atomic::{AtomicU32, Ordering};
    /// # use awith::pool::{Manager, ObjectMetrics};
    /// # struct Server { next: AtomicU32 }
    /// # impl Manager for Server {
    /// #     type Object = u32;
    /// #     type Error = std::io::Error;
    /// #     async fn create(&self) -> Result<u32, std::io::Error> {
    /// #         Ok(self.next.fetch_add(1, Ordering::SeqCst))
    /// #     }
    /// #     async fn recycle(&self, _: &mut u32, _: &ObjectMetrics) -> Result<(), std::io::Error> {
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let pool = Pool::builder(Server { next: AtomicU32::new(1) }).max_size(1).build(&rt)?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let transaction = move |conn: &mut u32| {
    ///     let conn = *conn;
    ///     resource(
    ///         move || async move { Ok::<_, std::fmt::Error>(format!("transaction on {conn}")) },
    ///         move |txn, exit| async move {
    ///             let end = if exit.is_completed() { "COMMIT" } else { "ROLLBACK" };
    ///             Ok(tx.send(format!("{txn}: {end}")).unwrap())
    ///         },
    ///     )
    /// };
    /// let rows = pool
    ///     .checkout()
    ///     .and_then(transaction)
    ///     .with(&rt, async |(conn, txn)| Ok::<_, std::io::Error>(format!("{txn}, {conn}")))
    ///     .await?;
    /// assert_eq!(rows, "transaction on 1, 1");
    /// assert_eq!(rx.recv()?, "transaction on 1: COMMIT");
    /// assert_eq!(pool.status().idle, 1); // the connection is back
    ///
    /// pool.close(Duration::from_secs(5)).await?;
    /// rt.drain(Duration::from_secs(5)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn checkout(&self) -> Checkout<M> {
        Checkout::new(self.clone())
    }

    /// The pool's counters now.
    pub fn status(&self) -> Status {
        let state = self.inner.lock();
        Status {
            max_size: state.max_size,
            // Objects handed to `destroy` count as destroyed.
            size: usize::try_from(state.created - state.destroyed).unwrap_or(usize::MAX),
            idle: state.idle.len(),
            in_use: state.in_use,
            waiting: state.queue.len(),
            created: state.created,
            destroyed: state.destroyed,
            recycled: self.inner.recycled.load(Ordering::Relaxed),
            recycle_failed: self.inner.recycle_failed.load(Ordering::Relaxed),
            closed: state.closed,
        }
    }

    /// The manager.
    pub fn manager(&self) -> &M {
        &self.inner.manager
    }

    /// Closes the pool: new checkouts fail with [`PoolError::Closed`], and so
    /// do the waiting ones, also those that had been handed a slot or an
    /// object and not taken it yet; idle objects are destroyed, top-ups to
    /// `min_idle` in flight are ended; then it waits, up to `within`, for
    /// the checked-out objects, destroyed as they come back, and for the
    /// destroys to end. No body starts once `close` has begun.
    ///
    /// # Errors
    ///
    /// [`PoolError::Timeout`] with [`TimeoutKind::Close`] when objects were
    /// still out at the deadline; they are destroyed when they come back.
    pub async fn close(&self, within: Duration) -> Result<(), PoolError<M::Error>> {
        let inner = &self.inner;
        inner.close_now();
        inner
            .rt
            .timeout(
                within,
                AllBack {
                    inner,
                    registered: None,
                },
            )
            .await
            .map_err(|_| PoolError::Timeout {
                kind: TimeoutKind::Close,
                after: within,
            })
    }

    /// Changes `max_size`. Growing lets waiting checkouts create objects;
    /// shrinking destroys idle objects beyond it now (in runtime cleanup
    /// tasks, which [`Runtime::drain`](crate::rt::Runtime::drain) waits for)
    /// and checked-out ones as they come back.
    ///
    /// # Errors
    ///
    /// [`PoolConfigError`] for zero, or a size below `min_idle`; nothing
    /// changes then.
    pub fn resize(&self, max_size: usize) -> Result<(), PoolConfigError> {
        let (wakers, excess) = {
            let mut state = self.inner.lock();
            if max_size == 0 {
                return Err(PoolConfigError::ZeroMaxSize);
            }
            if state.min_idle > max_size {
                return Err(PoolConfigError::MinIdleAboveMaxSize {
                    min_idle: state.min_idle,
                    max_size,
                });
            }
            state.max_size = max_size;
            let mut wakers = Vec::new();
            while state.slots < state.max_size && !state.queue.is_empty() {
                state.slots += 1;
                if let Some(waker) = state.grant(Grant::Slot) {
                    wakers.push(waker);
                }
            }
            let over = state.slots.saturating_sub(state.max_size);
            let keep = state.idle.len().saturating_sub(over);
            // The least recently used go first.
            let cut = state.idle.len() - keep;
            let excess: Vec<_> = state.idle.drain(..cut).collect();
            state.destroyed += excess.len() as u64;
            (wakers, excess)
        };
        wakers.into_iter().for_each(Waker::wake);
        for idle in excess {
            self.inner.dispose(idle.object, None);
        }
        Ok(())
    }

    /// Destroys the idle objects for which `keep` says `false` (in runtime
    /// cleanup tasks); how many.
    ///
    /// `keep` runs holding no lock of the pool's, so it may call the pool.
    /// While it runs, the idle objects are out of the pool (counted in use);
    /// those it keeps then go back as returning objects do — to the first
    /// waiting checkout, else idle. If `keep` panics, the objects it said no
    /// to are destroyed, the others go back, and the panic resumes here.
    pub fn retain(&self, mut keep: impl FnMut(&M::Object, &ObjectMetrics) -> bool) -> usize {
        let pending: Vec<_> = {
            let mut state = self.inner.lock();
            let idle = mem::take(&mut state.idle);
            state.in_use += idle.len();
            idle
        };
        let mut sorting = Sorting {
            inner: &self.inner,
            pending: pending.into(),
            kept: Vec::new(),
            refused: Vec::new(),
        };
        // The object being looked at stays in `pending`, so that a panic
        // puts it back.
        let sorted = catch_unwind(AssertUnwindSafe(|| {
            while let Some(idle) = sorting.pending.front() {
                let kept = keep(&idle.object, &idle.metrics);
                if let Some(idle) = sorting.pending.pop_front() {
                    if kept {
                        sorting.kept.push(idle);
                    } else {
                        sorting.refused.push(idle);
                    }
                }
            }
        }));
        let count = sorting.refused.len();
        drop(sorting);
        if let Err(panic) = sorted {
            resume_unwind(panic);
        }
        count
    }
}

/// The idle objects [`Pool::retain`] took out: when dropped (at the end, or
/// as the predicate's panic unwinds), those refused are destroyed and the
/// others go back.
struct Sorting<'a, M: Manager> {
    inner: &'a Arc<Inner<M>>,
    pending: std::collections::VecDeque<Idle<M::Object>>,
    kept: Vec<Idle<M::Object>>,
    refused: Vec<Idle<M::Object>>,
}

impl<M: Manager> Drop for Sorting<'_, M> {
    fn drop(&mut self) {
        let mut back = mem::take(&mut self.kept);
        // The order they were in: the least recently used first.
        back.extend(self.pending.drain(..));
        let refused = mem::take(&mut self.refused);
        let (wakers, refused) = {
            let mut state = self.inner.lock();
            state.in_use -= refused.len();
            state.destroyed += refused.len() as u64;
            let mut wakers = Vec::new();
            let mut refused = refused;
            for idle in back {
                match state.put_back(idle, false) {
                    Kept::Kept(waker) => wakers.extend(waker),
                    Kept::Refused(idle) => refused.push(idle),
                }
            }
            (wakers, refused)
        };
        wakers.into_iter().for_each(Waker::wake);
        for idle in refused {
            self.inner.dispose(idle.object, None);
        }
    }
}

/// The end of [`Pool::close`]: every slot free. Its waker is listed under
/// its own number while it waits, and removed when it ends or is dropped.
struct AllBack<'a, M: Manager> {
    inner: &'a Inner<M>,
    registered: Option<u64>,
}

impl<M: Manager> AllBack<'_, M> {
    /// Leaves the list of closers; the waker is dropped after the lock.
    fn unregister(&mut self) {
        if let Some(id) = self.registered.take() {
            let stale = {
                let mut state = self.inner.lock();
                let at = state.closers.iter().position(|(n, _)| *n == id);
                at.map(|at| state.closers.swap_remove(at))
            };
            drop(stale);
        }
    }
}

impl<M: Manager> Future for AllBack<'_, M> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let stale = {
            let mut state = this.inner.lock();
            if state.slots == 0 {
                drop(state);
                this.unregister();
                return Poll::Ready(());
            }
            // The entry may be gone: the last slot freed took every waker.
            let id = match this.registered {
                Some(id) => id,
                None => {
                    let id = state.next_id();
                    this.registered = Some(id);
                    id
                }
            };
            match state.closers.iter_mut().find(|(n, _)| *n == id) {
                Some((_, waker)) if waker.will_wake(cx.waker()) => None,
                Some((_, waker)) => Some(mem::replace(waker, cx.waker().clone())),
                None => {
                    state.closers.push((id, cx.waker().clone()));
                    None
                }
            }
        };
        drop(stale);
        Poll::Pending
    }
}

impl<M: Manager> Drop for AllBack<'_, M> {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// A manager of numbers that never fails, for the pool's unit tests and
/// loom models.
#[cfg(test)]
struct Numbers;

#[cfg(test)]
impl Manager for Numbers {
    type Object = u32;
    type Error = ();

    async fn create(&self) -> Result<u32, ()> {
        Ok(1)
    }

    async fn recycle(&self, _: &mut u32, _: &ObjectMetrics) -> Result<(), ()> {
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::task::Context;
    use std::time::{Duration, Instant};

    use futures::FutureExt;
    use futures::task::noop_waker;

    use super::{Numbers, Pool};
    use crate::reference::Reference;
    use crate::rt::{Binding, Runtime, Sleep, SpawnError, Task};

    /// A close that gives up at its deadline (or is dropped) leaves no waker
    /// behind: closes called again and again while an object is out keep
    /// the list of closers at the closes alive now.
    #[test]
    fn closes_leave_no_waker_behind() {
        let reference = Reference::new();
        let rt = reference.runtime();
        let pool = Pool::builder(Numbers).max_size(1).build(&rt).unwrap();
        reference
            .block_on(async {
                // An object out for the whole test.
                let held = super::state::Take::new(&pool.inner).await;
                assert!(held.is_ok());
                for _ in 0..100 {
                    assert!(pool.close(Duration::from_secs(1)).await.is_err());
                }
                let waker = noop_waker();
                for _ in 0..100 {
                    let mut close = Box::pin(pool.close(Duration::from_secs(1)));
                    assert!(
                        close
                            .poll_unpin(&mut Context::from_waker(&waker))
                            .is_pending()
                    );
                }
                assert_eq!(pool.inner.lock().closers.len(), 0);
                let mut close = Box::pin(pool.close(Duration::MAX));
                let _ = close.poll_unpin(&mut Context::from_waker(&waker));
                assert_eq!(pool.inner.lock().closers.len(), 1);
                drop(close);
                assert_eq!(pool.inner.lock().closers.len(), 0);
                // The slot comes free: a close ends.
                pool.inner.free_slot();
                assert!(pool.close(Duration::from_secs(1)).await.is_ok());
            })
            .unwrap();
    }

    /// A runtime whose tasks wait in a list until the test polls them, and
    /// whose clock runs `on_now` (once) when it is next read: the test's
    /// way in at the moment the pool's task reads the time.
    #[derive(Default)]
    struct Manual {
        tasks: Mutex<Vec<Task>>,
        on_now: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    }

    impl std::fmt::Debug for Manual {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Manual")
        }
    }

    impl Binding for Manual {
        fn name(&self) -> &'static str {
            "manual"
        }

        fn spawn(&self, task: Task) -> Result<(), SpawnError> {
            self.tasks.lock().unwrap().push(task);
            Ok(())
        }

        fn sleep(&self, _: Duration) -> Sleep {
            Box::pin(std::future::pending())
        }

        fn now(&self) -> Instant {
            let hook = self.on_now.lock().unwrap().take();
            if let Some(hook) = hook {
                hook();
            }
            Instant::now()
        }
    }

    /// The last handle of a pool goes while the pool's task holds the pool
    /// for a moment (in a round, reading the clock): the idle object's
    /// destroy is handed to the runtime before that drop returns — not
    /// later, on the task's thread, where a `drain` just after the drop
    /// would not wait for it.
    #[test]
    fn last_handle_dropped_while_its_task_runs() {
        let binding = Arc::new(Manual::default());
        let rt = Runtime::new(Arc::clone(&binding));
        let pool = Pool::builder(Numbers)
            .max_size(1)
            .wait_timeout(Duration::from_secs(1))
            .build(&rt)
            .unwrap();
        let used = futures::executor::block_on(pool.with(async |n| Ok::<_, ()>(*n)));
        assert_eq!(used, Ok(1));
        assert_eq!(pool.status().idle, 1);
        let before = rt.cleanup_stats().spawned;
        let handed_over = Arc::new(Mutex::new(None));
        let hook = {
            let (rt, handed_over) = (rt.clone(), Arc::clone(&handed_over));
            move || {
                drop(pool);
                *handed_over.lock().unwrap() = Some(rt.cleanup_stats().spawned - before);
            }
        };
        *binding.on_now.lock().unwrap() = Some(Box::new(hook));
        // The pool's task, polled for the first time: its round reads the
        // clock, and the last handle goes.
        let mut task = binding.tasks.lock().unwrap().remove(0);
        let waker = noop_waker();
        assert!(
            task.poll_unpin(&mut Context::from_waker(&waker)).is_ready(),
            "the pool's task ends with its pool"
        );
        assert_eq!(
            *handed_over.lock().unwrap(),
            Some(1),
            "the destroy was handed over as the last handle went"
        );
        // The destroy runs.
        let tasks = std::mem::take(&mut *binding.tasks.lock().unwrap());
        for mut task in tasks {
            assert!(task.poll_unpin(&mut Context::from_waker(&waker)).is_ready());
        }
        let stats = rt.cleanup_stats();
        assert!(stats.is_clean() && stats.spawned == 1, "{stats:?}");
    }
}
