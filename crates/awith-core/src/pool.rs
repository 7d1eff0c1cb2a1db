//! [`Pool`]: an async object pool whose checkout is a scope — asyncpg's
//! `async with pool.acquire() as conn`, on any runtime.
//!
//! A [`Manager`] creates, recycles and destroys the objects (connections,
//! clients, sessions); the pool keeps at most `max_size` of them and hands
//! them out one scope at a time:
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use awith_core::pool::{Manager, ObjectMetrics, Pool};
//! use awith_core::reference::Reference;
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
//! let reference = Reference::new();
//! let rt = reference.runtime();
//! let pool = Pool::builder(Server { next: AtomicU32::new(1) })
//!     .max_size(2)
//!     .build(&rt)
//!     .unwrap();
//! let used = reference.block_on(async {
//!     let first = pool.with(async |conn| Ok::<_, std::io::Error>(*conn)).await.unwrap();
//!     let again = pool.with(async |conn| Ok::<_, std::io::Error>(*conn)).await.unwrap();
//!     (first, again)
//! });
//! assert_eq!(used.unwrap(), (1, 1)); // the same connection, back in the pool in between
//! assert_eq!(pool.status().size, 1);
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
//!   and the checkout makes a fresh one in its slot. An idle object past its
//!   `max_lifetime` or `idle_timeout` is destroyed instead of being reused.
//! - **Waiting is fair.** When every slot is taken, checkouts queue, first in
//!   first out; an object that comes back, or a slot that comes free, goes to
//!   the first in the queue, never to a newcomer. A waiter that is dropped
//!   leaves the queue; one dropped after an object was handed to it gives it
//!   to the next.
//! - **Slots.** `max_size` bounds objects in existence plus those being
//!   created or destroyed. A failed creation frees its slot.
//! - **Closing.** [`Pool::close`] refuses new checkouts ([`PoolError::Closed`]),
//!   fails the waiters, destroys the idle objects and waits, up to a
//!   deadline, for the checked-out ones: they are destroyed as they come
//!   back. Dropping the last handle to a pool drops its idle objects
//!   without their [`Manager::destroy`].
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

use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::error::{Failure, ScopeError};
use crate::exit::{Exit, ExitKind};
use crate::resource::{Acquired, ReleaseNow, Released, Resource, ResourceExt};
use crate::rt::{CleanupKind, Runtime};
use crate::sync::{AtomicBool, AtomicU64, AtomicWaker, Mutex, MutexGuard, Ordering, lock};

/// Creates, recycles and destroys a [`Pool`]'s objects.
///
/// The futures may borrow the manager; they are run by the pool on the
/// runtime it was built with.
pub trait Manager: Send + Sync + 'static {
    /// What the pool holds: a connection, a client, a session.
    type Object: Send + 'static;
    /// What creating or recycling can fail with.
    type Error: fmt::Debug + Send + 'static;

    /// Makes a new object.
    fn create(&self) -> impl Future<Output = Result<Self::Object, Self::Error>> + Send;

    /// Checks an idle object before it is used again (a ping, a `DISCARD
    /// ALL`). An error destroys it; the checkout then gets a fresh one.
    fn recycle(
        &self,
        object: &mut Self::Object,
        metrics: &ObjectMetrics,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// An object whose scope panicked or was cancelled, possibly
    /// mid-operation: `true` when it has been put back in a clean state and
    /// may return to the pool. The default says `false`: it is destroyed.
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

/// Which wait of a pool timed out.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeoutKind {
    /// Waiting for an object to come free.
    Wait,
    /// [`Manager::create`].
    Create,
    /// [`Manager::recycle`].
    Recycle,
    /// [`Pool::close`] waiting for the checked-out objects.
    Close,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutKind::Wait => "wait",
            TimeoutKind::Create => "create",
            TimeoutKind::Recycle => "recycle",
            TimeoutKind::Close => "close",
        })
    }
}

/// Why a checkout (or a close) failed. `E` is the [`Manager::Error`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolError<E> {
    /// A wait of `kind` did not finish within `after`.
    Timeout {
        /// What timed out.
        kind: TimeoutKind,
        /// The bound that passed.
        after: Duration,
    },
    /// The pool is closed.
    Closed,
    /// [`Manager::create`] failed; the slot was freed.
    Create(E),
    /// [`Manager::recycle`] failed on an object whose scope had failed: the
    /// object was destroyed. This comes beside the body's error, in
    /// [`ScopeError::Body`]'s `release`.
    Recycle(E),
}

impl<E: fmt::Display> fmt::Display for PoolError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Timeout {
                kind: TimeoutKind::Wait,
                after,
            } => write!(
                f,
                "no pooled object came free within {after:?}: all are in use \
                 (raise `max_size` or the wait timeout, or hold objects for less time)"
            ),
            PoolError::Timeout {
                kind: TimeoutKind::Close,
                after,
            } => write!(
                f,
                "the pool closed, but objects checked out were not back within {after:?}"
            ),
            PoolError::Timeout { kind, after } => {
                write!(
                    f,
                    "the pool's manager did not {kind} an object within {after:?}"
                )
            }
            PoolError::Closed => f.write_str("the pool is closed"),
            PoolError::Create(error) => write!(f, "could not create a pooled object: {error}"),
            PoolError::Recycle(error) => write!(
                f,
                "the pooled object failed its recycle after its scope failed, \
                 and was destroyed: {error}"
            ),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for PoolError<E> {}

/// A [`PoolBuilder`] setting that cannot work, or a [`Pool::resize`] to a
/// size that cannot.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolConfigError {
    /// `max_size` is zero: every checkout would wait forever.
    ZeroMaxSize,
    /// `min_idle` is above `max_size`.
    MinIdleAboveMaxSize {
        /// The `min_idle` asked for.
        min_idle: usize,
        /// The `max_size` it exceeds.
        max_size: usize,
    },
    /// A bound that must be above zero is zero.
    Zero(&'static str),
    /// The runtime refused the pool's task (wait timeouts, maintenance):
    /// it has shut down.
    RuntimeShutDown {
        /// The runtime's name.
        runtime: &'static str,
    },
}

impl fmt::Display for PoolConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolConfigError::ZeroMaxSize => {
                f.write_str("a pool's `max_size` is zero: every checkout would wait forever")
            }
            PoolConfigError::MinIdleAboveMaxSize { min_idle, max_size } => write!(
                f,
                "a pool's `min_idle` ({min_idle}) is above its `max_size` ({max_size})"
            ),
            PoolConfigError::RuntimeShutDown { runtime } => write!(
                f,
                "the {runtime} runtime has shut down: the pool's task (wait timeouts, \
                 maintenance) cannot run"
            ),
            PoolConfigError::Zero(what) => {
                write!(f, "a pool's `{what}` is zero: leave it unset for no bound")
            }
        }
    }
}

impl std::error::Error for PoolConfigError {}

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
    /// Objects checked out (or being recycled for a checkout).
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

/// Configures a [`Pool`]; [`build`](Self::build) checks the settings.
#[must_use = "a builder does nothing until `build` is called"]
pub struct PoolBuilder<M> {
    manager: M,
    max_size: usize,
    min_idle: usize,
    timeouts: Timeouts,
    max_lifetime: Option<Duration>,
    idle_timeout: Option<Duration>,
    maintenance_interval: Duration,
}

impl<M> fmt::Debug for PoolBuilder<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("max_size", &self.max_size)
            .field("min_idle", &self.min_idle)
            .field("timeouts", &self.timeouts)
            .field("max_lifetime", &self.max_lifetime)
            .field("idle_timeout", &self.idle_timeout)
            .field("maintenance_interval", &self.maintenance_interval)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Timeouts {
    wait: Option<Duration>,
    create: Option<Duration>,
    recycle: Option<Duration>,
}

impl<M: Manager> PoolBuilder<M> {
    /// The most objects at once (default: four per CPU, like deadpool).
    pub fn max_size(mut self, max_size: usize) -> Self {
        self.max_size = max_size;
        self
    }

    /// Idle objects to keep ready: a task of the pool creates them in the
    /// background (default: none).
    pub fn min_idle(mut self, min_idle: usize) -> Self {
        self.min_idle = min_idle;
        self
    }

    /// How long a checkout waits for an object to come free (default:
    /// forever). Zero means: take one if free, else fail at once. A checkout
    /// that does not have to wait sets no timer.
    pub fn wait_timeout(mut self, after: Duration) -> Self {
        self.timeouts.wait = Some(after);
        self
    }

    /// A bound on [`Manager::create`] (default: none).
    pub fn create_timeout(mut self, after: Duration) -> Self {
        self.timeouts.create = Some(after);
        self
    }

    /// A bound on [`Manager::recycle`] (default: none).
    pub fn recycle_timeout(mut self, after: Duration) -> Self {
        self.timeouts.recycle = Some(after);
        self
    }

    /// Objects older than this are destroyed instead of reused (default:
    /// no limit).
    pub fn max_lifetime(mut self, after: Duration) -> Self {
        self.max_lifetime = Some(after);
        self
    }

    /// Objects idle for longer than this are destroyed (default: no limit).
    pub fn idle_timeout(mut self, after: Duration) -> Self {
        self.idle_timeout = Some(after);
        self
    }

    /// How often the pool's task tops up `min_idle` and destroys expired idle
    /// objects (default: 1 s).
    ///
    /// The pool has a task of its own (on the runtime it is built on) only
    /// when it needs one: for `min_idle`, `max_lifetime` or `idle_timeout`,
    /// and for the wait timeout — one timer for the whole queue, its head's
    /// deadline, since everyone waits as long and the first in is the first
    /// due; not a timer per waiter. The task ends with the pool.
    pub fn maintenance_interval(mut self, every: Duration) -> Self {
        self.maintenance_interval = every;
        self
    }

    /// The pool, on `rt`.
    ///
    /// # Errors
    ///
    /// [`PoolConfigError`] for a zero `max_size`, a `min_idle` above it, or a
    /// zero create or recycle timeout, lifetime, idle timeout or interval;
    /// [`PoolConfigError::RuntimeShutDown`] when the pool needs its task and
    /// the runtime refuses it.
    pub fn build(self, rt: &Runtime) -> Result<Pool<M>, PoolConfigError> {
        if self.max_size == 0 {
            return Err(PoolConfigError::ZeroMaxSize);
        }
        if self.min_idle > self.max_size {
            return Err(PoolConfigError::MinIdleAboveMaxSize {
                min_idle: self.min_idle,
                max_size: self.max_size,
            });
        }
        for (what, bound) in [
            ("create_timeout", self.timeouts.create),
            ("recycle_timeout", self.timeouts.recycle),
            ("max_lifetime", self.max_lifetime),
            ("idle_timeout", self.idle_timeout),
            ("maintenance_interval", Some(self.maintenance_interval)),
        ] {
            if bound == Some(Duration::ZERO) {
                return Err(PoolConfigError::Zero(what));
            }
        }
        let maintained =
            self.min_idle > 0 || self.max_lifetime.is_some() || self.idle_timeout.is_some();
        let inner = Arc::new(Inner {
            manager: self.manager,
            rt: rt.clone(),
            timeouts: self.timeouts,
            max_lifetime: self.max_lifetime,
            idle_timeout: self.idle_timeout,
            state: Mutex::new(State {
                max_size: self.max_size,
                min_idle: self.min_idle,
                slots: 0,
                in_use: 0,
                idle: Vec::new(),
                queue: VecDeque::new(),
                parked: Vec::new(),
                vacant: Vec::new(),
                closed: false,
                closers: Vec::new(),
                timer_at: None,
                created: 0,
                destroyed: 0,
            }),
            recycled: AtomicU64::new(0),
            recycle_failed: AtomicU64::new(0),
            task: Arc::default(),
        });
        let timed = self.timeouts.wait.is_some_and(|after| !after.is_zero());
        if maintained || timed {
            let every = maintained.then_some(self.maintenance_interval);
            rt.spawn(pool_task(
                Arc::downgrade(&inner),
                Arc::clone(&inner.task),
                rt.clone(),
                every,
            ))
            .map_err(|refused| PoolConfigError::RuntimeShutDown {
                runtime: refused.runtime(),
            })?;
        }
        Ok(Pool { inner })
    }
}

/// An async object pool; see the [module docs](self). Cloning it makes
/// another handle to the same pool.
pub struct Pool<M: Manager> {
    inner: Arc<Inner<M>>,
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Self {
        Pool {
            inner: Arc::clone(&self.inner),
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
    pub async fn with<U, E, B>(&self, body: B) -> Result<U, ScopeError<E, PoolError<M::Error>>>
    where
        B: AsyncFnOnce(&mut M::Object) -> Result<U, E>,
        E: fmt::Debug,
    {
        self.checkout().with(&self.inner.rt, body).await
    }

    /// A checkout as a [`Resource`], to compose.
    pub fn checkout(&self) -> Checkout<M> {
        Checkout { pool: self.clone() }
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
    /// do the waiting ones; idle objects are destroyed; then it waits, up to
    /// `within`, for the checked-out objects, destroyed as they come back.
    ///
    /// # Errors
    ///
    /// [`PoolError::Timeout`] with [`TimeoutKind::Close`] when objects were
    /// still out at the deadline; they are destroyed when they come back.
    pub async fn close(&self, within: Duration) -> Result<(), PoolError<M::Error>> {
        let (wakers, idle) = {
            let mut state = self.inner.lock();
            state.closed = true;
            let mut wakers = Vec::new();
            while let Some(at) = state.queue.pop_front() {
                if let Parked::Waiting { waker, .. } =
                    std::mem::replace(&mut state.parked[at], Parked::Closed)
                {
                    wakers.push(waker);
                }
            }
            let idle = std::mem::take(&mut state.idle);
            state.destroyed += idle.len() as u64;
            (wakers, idle)
        };
        wakers.into_iter().for_each(Waker::wake);
        for object in idle {
            self.inner.dispose(object.object);
        }
        let inner = &self.inner;
        let all_back = poll_fn(|cx| {
            let mut state = inner.lock();
            if state.slots == 0 {
                Poll::Ready(())
            } else {
                if !state.closers.iter().any(|w| w.will_wake(cx.waker())) {
                    state.closers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        });
        self.inner
            .rt
            .timeout(within, all_back)
            .await
            .map_err(|_| PoolError::Timeout {
                kind: TimeoutKind::Close,
                after: within,
            })
    }

    /// Changes `max_size`. Growing lets waiting checkouts create objects;
    /// shrinking destroys idle objects beyond it now (in runtime cleanup
    /// tasks, which [`Runtime::drain`] waits for) and checked-out ones as they
    /// come back.
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
        for object in excess {
            self.inner.dispose(object.object);
        }
        Ok(())
    }

    /// Destroys the idle objects for which `keep` says `false` (in runtime
    /// cleanup tasks); how many.
    pub fn retain(&self, mut keep: impl FnMut(&M::Object, &ObjectMetrics) -> bool) -> usize {
        let dropped = {
            let mut state = self.inner.lock();
            let mut dropped = Vec::new();
            let mut kept = Vec::with_capacity(state.idle.len());
            for idle in state.idle.drain(..) {
                if keep(&idle.object, &idle.metrics) {
                    kept.push(idle);
                } else {
                    dropped.push(idle);
                }
            }
            state.idle = kept;
            state.destroyed += dropped.len() as u64;
            dropped
        };
        let count = dropped.len();
        for object in dropped {
            self.inner.dispose(object.object);
        }
        count
    }
}

/// A checkout of a [`Pool`] as a [`Resource`]: the value is the object.
pub struct Checkout<M: Manager> {
    pool: Pool<M>,
}

impl<M: Manager> fmt::Debug for Checkout<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkout").finish_non_exhaustive()
    }
}

/// What a checkout's release needs: the pool, and the object's metrics.
pub struct Returning<M: Manager> {
    inner: Arc<Inner<M>>,
    metrics: ObjectMetrics,
}

impl<M: Manager> fmt::Debug for Returning<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Returning")
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl<M: Manager, E> Resource<E> for Checkout<M> {
    type Value = M::Object;
    type Error = PoolError<M::Error>;
    type Verdict = ();
    type Releaser = Returning<M>;

    const CANCEL_SAFE_ACQUIRE: bool = true;

    fn acquire(self, _rt: &Runtime) -> impl Future<Output = Acquired<E, Self>> + Send + 'static {
        let inner = self.pool.inner;
        async move {
            let (object, metrics) = {
                let mut held = Held {
                    inner: &inner,
                    object: None,
                    armed: false,
                };
                held.take_slot().await?;
                // The common case, without building `make_ready`'s larger
                // future: an idle object, fresh enough, that recycles.
                if held.object.as_ref().is_some_and(|idle| !held.expired(idle)) {
                    if held.recycle().await.is_ok() {
                        held.hand_out()
                    } else {
                        held.destroy().await;
                        held.make_ready().await?
                    }
                } else {
                    held.make_ready().await?
                }
            };
            // The checkout's reference to the pool goes on to the release:
            // one reference count update less per checkout, on a line every
            // checkout of the pool touches.
            Ok((object, Returning { inner, metrics }))
        }
    }

    /// After `Completed`, the object goes back at once — unless it is to be
    /// destroyed (the pool closed or shrank, the object expired).
    fn release_now(
        returning: Returning<M>,
        object: M::Object,
        exit: &Exit<'_, E>,
        _rt: &Runtime,
    ) -> ReleaseNow<E, Self> {
        if !matches!(exit, Exit::Completed) {
            return ReleaseNow::Later {
                releaser: returning,
                value: object,
            };
        }
        let inner = &returning.inner;
        let now = inner.rt.now();
        let idle = Idle {
            object,
            metrics: ObjectMetrics {
                last_used: now,
                ..returning.metrics
            },
        };
        let expired = inner.expires() && inner.expired(&idle.metrics, now);
        let waker = {
            let mut state = inner.lock();
            if state.closed || state.slots > state.max_size || expired {
                drop(state);
                return ReleaseNow::Later {
                    releaser: returning,
                    value: idle.object,
                };
            }
            state.grant(Grant::Object(idle))
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        ReleaseNow::Done(Ok(()))
    }

    fn release(
        returning: Returning<M>,
        object: M::Object,
        exit: &Exit<'_, E>,
        _rt: &Runtime,
    ) -> impl Future<Output = Released<E, Self>> + Send + 'static {
        let kind = exit.kind();
        async move {
            let Returning { inner, metrics } = returning;
            let now = inner.rt.now();
            let mut held = Held {
                inner: &inner,
                object: Some(Idle {
                    object,
                    metrics: ObjectMetrics {
                        last_used: now,
                        ..metrics
                    },
                }),
                armed: true,
            };
            match kind {
                ExitKind::Completed => {}
                ExitKind::Failed => {
                    if let Err(error) = held.recycle().await {
                        held.destroy().await;
                        held.free();
                        return Err(Failure::Error(match error {
                            Recycled::Failed(error) => PoolError::Recycle(error),
                            Recycled::TimedOut(after) => PoolError::Timeout {
                                kind: TimeoutKind::Recycle,
                                after,
                            },
                        }));
                    }
                }
                ExitKind::Panicked | ExitKind::Cancelled(_) => {
                    let clean = match &mut held.object {
                        Some(idle) => inner.manager.reset(&mut idle.object, kind).await,
                        None => false,
                    };
                    if !clean {
                        held.destroy().await;
                        held.free();
                        return Ok(());
                    }
                }
            }
            held.give_back(now).await;
            Ok(())
        }
    }
}

/// An object at rest, with what the pool knows of it.
struct Idle<T> {
    object: T,
    metrics: ObjectMetrics,
}

/// What a waiting checkout is handed.
enum Grant<T> {
    /// An object (counted in use).
    Object(Idle<T>),
    /// A slot to create an object in.
    Slot,
}

/// A waiting checkout's entry in the pool's table of waiters.
enum Parked<T> {
    /// Free for the next waiter.
    Vacant,
    /// In the queue, until its deadline if it has one.
    Waiting {
        waker: Waker,
        deadline: Option<Instant>,
    },
    /// Handed something, not yet taken.
    Granted(Grant<T>),
    /// The pool closed while it waited.
    Closed,
    /// Its deadline passed.
    TimedOut,
}

struct Inner<M: Manager> {
    manager: M,
    rt: Runtime,
    timeouts: Timeouts,
    max_lifetime: Option<Duration>,
    idle_timeout: Option<Duration>,
    state: Mutex<State<M::Object>>,
    /// Counted outside the lock: a recycle takes no lock.
    recycled: AtomicU64,
    recycle_failed: AtomicU64,
    /// Wakes the pool's task.
    task: Arc<TaskSignal>,
}

impl<M: Manager> Drop for Inner<M> {
    fn drop(&mut self) {
        // The pool's task ends.
        self.task.poke();
    }
}

/// Everything mutable, behind one lock; nothing awaits while holding it.
struct State<T> {
    max_size: usize,
    min_idle: usize,
    /// Objects in existence, being created, or being destroyed, plus slots
    /// granted and not yet taken up: never above `max_size`, except after a
    /// shrinking resize until enough come back.
    slots: usize,
    in_use: usize,
    /// Most recently returned last: reused first, so the rest can expire.
    idle: Vec<Idle<T>>,
    /// Waiting checkouts (slots of `parked`), first in first.
    queue: VecDeque<usize>,
    /// The waiters' entries, reused: a wait allocates nothing once the
    /// table has grown to the most waiters at once.
    parked: Vec<Parked<T>>,
    vacant: Vec<usize>,
    closed: bool,
    closers: Vec<Waker>,
    created: u64,
    destroyed: u64,
    /// When the pool's task wakes next on its own, if it has a deadline: a
    /// new waiter whose deadline is no earlier needs no poke (the task then
    /// times the queue's head anew), so a busy queue re-arms the timer about
    /// once per wait timeout instead of at every waiter.
    timer_at: Option<Instant>,
}

impl<T> State<T> {
    /// A new waiter at the back of the queue: its entry.
    fn park(&mut self, waker: Waker, deadline: Option<Instant>) -> usize {
        let waiting = Parked::Waiting { waker, deadline };
        let at = match self.vacant.pop() {
            Some(at) => {
                self.parked[at] = waiting;
                at
            }
            None => {
                self.parked.push(waiting);
                self.parked.len() - 1
            }
        };
        self.queue.push_back(at);
        at
    }

    /// Fails the waiters at the head of the queue whose deadline is past:
    /// the wakers to wake.
    fn expire_waiters(&mut self, now: Instant) -> Vec<Waker> {
        let mut wakers = Vec::new();
        while self.head_deadline().is_some_and(|deadline| deadline <= now) {
            if let Some(at) = self.queue.pop_front() {
                if let Parked::Waiting { waker, .. } =
                    std::mem::replace(&mut self.parked[at], Parked::TimedOut)
                {
                    wakers.push(waker);
                }
            }
        }
        wakers
    }

    /// The deadline of the first waiter: the earliest (all wait as long).
    fn head_deadline(&self) -> Option<Instant> {
        let &at = self.queue.front()?;
        match &self.parked[at] {
            Parked::Waiting { deadline, .. } => *deadline,
            _ => unreachable!("only waiting checkouts are queued"),
        }
    }

    /// Frees a waiter's entry; what was in it.
    fn unpark(&mut self, at: usize) -> Parked<T> {
        self.vacant.push(at);
        std::mem::replace(&mut self.parked[at], Parked::Vacant)
    }

    /// Hands `grant` to the first waiting checkout: the waker to wake
    /// (after unlocking). With nobody waiting, an object goes idle and a
    /// slot is freed.
    fn grant(&mut self, grant: Grant<T>) -> Option<Waker> {
        if let Some(at) = self.queue.pop_front() {
            let Parked::Waiting { waker, .. } =
                std::mem::replace(&mut self.parked[at], Parked::Granted(grant))
            else {
                unreachable!("only waiting checkouts are queued")
            };
            return Some(waker);
        }
        match grant {
            Grant::Object(idle) => {
                self.in_use -= 1;
                self.idle.push(idle);
            }
            Grant::Slot => self.slots -= 1,
        }
        None
    }

    /// A slot comes free: to the first waiting checkout unless the pool is
    /// closed or over its size. The wakers to wake.
    fn free_slot(&mut self) -> Vec<Waker> {
        if !self.closed && self.slots <= self.max_size && !self.queue.is_empty() {
            return self.grant(Grant::Slot).into_iter().collect();
        }
        self.slots -= 1;
        if self.closed && self.slots == 0 {
            std::mem::take(&mut self.closers)
        } else {
            Vec::new()
        }
    }
}

impl<M: Manager> Inner<M> {
    fn lock(&self) -> MutexGuard<'_, State<M::Object>> {
        lock(&self.state)
    }

    /// Creates an object, bounded by the create timeout: `Err` with the
    /// timeout when it passed.
    async fn create(&self) -> Result<Result<M::Object, M::Error>, Duration> {
        match self.timeouts.create {
            None => Ok(self.manager.create().await),
            Some(after) => self
                .rt
                .timeout(after, self.manager.create())
                .await
                .map_err(|_| after),
        }
    }

    fn free_slot(&self) {
        let wakers = self.lock().free_slot();
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Objects can expire (a lifetime or an idle timeout is set).
    fn expires(&self) -> bool {
        self.max_lifetime.is_some() || self.idle_timeout.is_some()
    }

    /// Past its lifetime or idle time?
    fn expired(&self, metrics: &ObjectMetrics, now: Instant) -> bool {
        let older = |since: Instant, limit: Option<Duration>| {
            limit.is_some_and(|limit| now.saturating_duration_since(since) >= limit)
        };
        older(metrics.created, self.max_lifetime) || older(metrics.last_used, self.idle_timeout)
    }

    /// Destroys `object` in a runtime task, then frees its slot (also if the
    /// runtime refuses the task: dropping it frees the slot).
    fn dispose(self: &Arc<Self>, object: M::Object) {
        let inner = Arc::clone(self);
        let slot = FreeOnDrop(Arc::clone(self));
        let destroy = async move {
            inner.manager.destroy(object).await;
            drop(slot);
            Ok(())
        };
        self.rt.spawn_cleanup(
            CleanupKind::Destroy,
            self.rt.cleanup_timeout(),
            Vec::new(),
            destroy,
        );
    }
}

/// Frees a slot when dropped.
struct FreeOnDrop<M: Manager>(Arc<Inner<M>>);

impl<M: Manager> Drop for FreeOnDrop<M> {
    fn drop(&mut self) {
        self.0.free_slot();
    }
}

/// Why a recycle failed.
enum Recycled<E> {
    Failed(E),
    TimedOut(Duration),
}

/// A slot held by a checkout or a release, with its object if it has one
/// (counted in use). Dropped while armed — the checkout or release was
/// cancelled — it destroys the object in a runtime task and frees the slot.
struct Held<'a, M: Manager> {
    inner: &'a Arc<Inner<M>>,
    object: Option<Idle<M::Object>>,
    armed: bool,
}

impl<M: Manager> Drop for Held<'_, M> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        match self.object.take() {
            Some(idle) => {
                {
                    let mut state = self.inner.lock();
                    state.in_use -= 1;
                    state.destroyed += 1;
                }
                self.inner.dispose(idle.object);
            }
            None => self.inner.free_slot(),
        }
    }
}

impl<M: Manager> Held<'_, M> {
    /// Takes a slot: an idle object, a new slot, or a place in the queue
    /// until one is handed over.
    async fn take_slot(&mut self) -> Result<(), Failure<PoolError<M::Error>>> {
        let grant = Take {
            inner: self.inner,
            started: false,
            at: None,
        }
        .await?;
        self.armed = true;
        if let Grant::Object(idle) = grant {
            self.object = Some(idle);
        }
        Ok(())
    }

    /// `idle` has passed its lifetime or idle timeout.
    fn expired(&self, idle: &Idle<M::Object>) -> bool {
        self.inner.expires() && self.inner.expired(&idle.metrics, self.inner.rt.now())
    }

    /// With a slot taken: recycles the object, or replaces it (expired, or
    /// failed its recycle) or makes one (an empty slot).
    async fn make_ready(
        mut self,
    ) -> Result<(M::Object, ObjectMetrics), Failure<PoolError<M::Error>>> {
        loop {
            if let Some(idle) = &self.object {
                if self.expired(idle) {
                    self.destroy().await;
                    continue;
                }
                if self.recycle().await.is_ok() {
                    return Ok(self.hand_out());
                }
                self.destroy().await;
                continue;
            }
            let inner = self.inner;
            let created = inner.create().await;
            match created {
                Ok(Ok(object)) => {
                    let now = inner.rt.now();
                    {
                        let mut state = inner.lock();
                        state.created += 1;
                        state.in_use += 1;
                    }
                    self.object = Some(Idle {
                        object,
                        metrics: ObjectMetrics {
                            created: now,
                            last_used: now,
                            recycled: 0,
                        },
                    });
                    return Ok(self.hand_out());
                }
                // The slot is freed as `self` drops.
                Ok(Err(error)) => return Err(Failure::Error(PoolError::Create(error))),
                Err(after) => {
                    return Err(Failure::Error(PoolError::Timeout {
                        kind: TimeoutKind::Create,
                        after,
                    }));
                }
            }
        }
    }

    /// The object and its metrics; the slot goes with them.
    fn hand_out(mut self) -> (M::Object, ObjectMetrics) {
        self.armed = false;
        let Some(idle) = self.object.take() else {
            unreachable!("handed out only with an object")
        };
        (idle.object, idle.metrics)
    }

    /// Recycles the object held, bounded by the recycle timeout; counts it.
    async fn recycle(&mut self) -> Result<(), Recycled<M::Error>> {
        let Some(idle) = &mut self.object else {
            unreachable!("recycled only with an object")
        };
        let inner = self.inner;
        let recycle = inner.manager.recycle(&mut idle.object, &idle.metrics);
        let recycled = match inner.timeouts.recycle {
            None => recycle.await.map_err(Recycled::Failed),
            Some(after) => match inner.rt.timeout(after, recycle).await {
                Ok(recycled) => recycled.map_err(Recycled::Failed),
                Err(_) => Err(Recycled::TimedOut(after)),
            },
        };
        if recycled.is_ok() {
            inner.recycled.fetch_add(1, Ordering::Relaxed);
            idle.metrics.recycled += 1;
        } else {
            inner.recycle_failed.fetch_add(1, Ordering::Relaxed);
        }
        recycled
    }

    /// Destroys the object held; the slot stays held. If this is dropped
    /// half-way, the destruction is finished by the runtime, and the slot
    /// freed after it.
    async fn destroy(&mut self) {
        let Some(idle) = self.object.take() else {
            return;
        };
        {
            let mut state = self.inner.lock();
            state.in_use -= 1;
            state.destroyed += 1;
        }
        let inner = Arc::clone(self.inner);
        Destroying {
            future: Some(Box::pin(async move {
                inner.manager.destroy(idle.object).await;
            })),
            inner: self.inner,
            slot_held: &mut self.armed,
        }
        .await;
    }

    /// Frees the slot held (with no object).
    fn free(mut self) {
        debug_assert!(self.object.is_none());
        self.armed = false;
        self.inner.free_slot();
    }

    /// The object goes back: to the first waiting checkout, or idle —
    /// unless the pool is closed, over its size, or the object expired; then
    /// it is destroyed.
    async fn give_back(mut self, now: Instant) {
        let Some(idle) = self.object.take() else {
            return;
        };
        let expired = self.inner.expires() && self.inner.expired(&idle.metrics, now);
        let kept = {
            let mut state = self.inner.lock();
            if state.closed || state.slots > state.max_size || expired {
                Err(idle)
            } else {
                Ok(state.grant(Grant::Object(idle)))
            }
        };
        match kept {
            Ok(waker) => {
                self.armed = false;
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
            Err(idle) => {
                self.object = Some(idle);
                self.destroy().await;
                self.free();
            }
        }
    }
}

/// A destruction in flight, boxed so that, if dropped half-way, it moves
/// into a runtime task with the slot it holds.
struct Destroying<'a, M: Manager> {
    future: Option<Pin<Box<dyn Future<Output = ()> + Send + 'static>>>,
    inner: &'a Arc<Inner<M>>,
    slot_held: &'a mut bool,
}

impl<M: Manager> Future for Destroying<'_, M> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(future) = &mut self.future else {
            return Poll::Ready(());
        };
        if future.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.future = None;
        Poll::Ready(())
    }
}

impl<M: Manager> Drop for Destroying<'_, M> {
    fn drop(&mut self) {
        if let Some(future) = self.future.take() {
            *self.slot_held = false;
            let slot = FreeOnDrop(Arc::clone(self.inner));
            self.inner.rt.spawn_cleanup(
                CleanupKind::Destroy,
                self.inner.rt.cleanup_timeout(),
                Vec::new(),
                async move {
                    future.await;
                    drop(slot);
                    Ok(())
                },
            );
        }
    }
}

/// A checkout taking a slot: on its first poll, an idle object or a new
/// slot if one is free and nobody waits, else a place in the queue; then,
/// until something is handed to it, its entry in the table of waiters.
struct Take<'a, M: Manager> {
    inner: &'a Arc<Inner<M>>,
    started: bool,
    /// Its entry while it waits.
    at: Option<usize>,
}

impl<M: Manager> Future for Take<'_, M> {
    type Output = Result<Grant<M::Object>, Failure<PoolError<M::Error>>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.inner;
        let mut state = inner.lock();
        let Some(at) = self.at else {
            if self.started {
                unreachable!("a checkout's wait is not polled after it ends")
            }
            self.started = true;
            if state.closed {
                return Poll::Ready(Err(Failure::Error(PoolError::Closed)));
            }
            if state.queue.is_empty() {
                if let Some(idle) = state.idle.pop() {
                    state.in_use += 1;
                    return Poll::Ready(Ok(Grant::Object(idle)));
                }
                if state.slots < state.max_size {
                    state.slots += 1;
                    return Poll::Ready(Ok(Grant::Slot));
                }
            }
            let deadline = match inner.timeouts.wait {
                None => None,
                Some(after) if after.is_zero() => {
                    return Poll::Ready(Err(wait_timed_out(after)));
                }
                // A deadline too far to represent is no deadline.
                Some(after) => inner.rt.now().checked_add(after),
            };
            self.at = Some(state.park(cx.waker().clone(), deadline));
            // The pool's task times the queue: poke it unless it wakes by
            // this deadline anyway.
            let poke = deadline.is_some_and(|at| state.timer_at.is_none_or(|timer| timer > at));
            if poke {
                state.timer_at = deadline;
            }
            drop(state);
            if poke {
                inner.task.poke();
            }
            return Poll::Pending;
        };
        let ended = match &mut state.parked[at] {
            Parked::Waiting { waker, .. } => {
                if !waker.will_wake(cx.waker()) {
                    waker.clone_from(cx.waker());
                }
                return Poll::Pending;
            }
            Parked::Granted(_) | Parked::Closed | Parked::TimedOut => state.unpark(at),
            Parked::Vacant => unreachable!("a wait's entry is its own until it ends"),
        };
        drop(state);
        self.at = None;
        Poll::Ready(match ended {
            Parked::Granted(grant) => Ok(grant),
            Parked::TimedOut => Err(wait_timed_out(inner.timeouts.wait.unwrap_or_default())),
            _ => Err(Failure::Error(PoolError::Closed)),
        })
    }
}

fn wait_timed_out<E>(after: Duration) -> Failure<PoolError<E>> {
    Failure::Error(PoolError::Timeout {
        kind: TimeoutKind::Wait,
        after,
    })
}

impl<M: Manager> Drop for Take<'_, M> {
    fn drop(&mut self) {
        let Some(at) = self.at.take() else {
            return;
        };
        let mut state = self.inner.lock();
        let grant = match state.unpark(at) {
            Parked::Waiting { .. } => {
                // Still queued: leave the queue.
                if let Some(place) = state.queue.iter().position(|queued| *queued == at) {
                    state.queue.remove(place);
                }
                return;
            }
            Parked::Granted(grant) => grant,
            Parked::Closed | Parked::TimedOut | Parked::Vacant => return,
        };
        // Handed something, and dropped before taking it: pass it on.
        let wakers: Vec<Waker> = match grant {
            Grant::Slot => state.free_slot(),
            Grant::Object(idle) if state.closed || state.slots > state.max_size => {
                state.in_use -= 1;
                state.destroyed += 1;
                drop(state);
                self.inner.dispose(idle.object);
                return;
            }
            Grant::Object(idle) => state.grant(Grant::Object(idle)).into_iter().collect(),
        };
        drop(state);
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// Wakes the pool's task early: a new head of the queue to time, or the
/// pool gone.
#[derive(Default)]
struct TaskSignal {
    waker: AtomicWaker,
    poked: AtomicBool,
}

impl TaskSignal {
    fn poke(&self) {
        self.poked.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// The pool's one task, while it has a wait timeout, `min_idle`,
/// `max_lifetime` or `idle_timeout`: fails the waiters whose deadline has
/// passed — one timer for the whole queue (its head's deadline is the
/// earliest: all wait as long, first in first), not one per waiter — and
/// every `every` destroys expired idle objects and creates objects up to
/// `min_idle`. Ends when the pool is closed or dropped.
async fn pool_task<M: Manager>(
    pool: Weak<Inner<M>>,
    signal: Arc<TaskSignal>,
    rt: Runtime,
    every: Option<Duration>,
) {
    let mut next_tend = every.map(|_| rt.now());
    loop {
        let wake_at = {
            let Some(inner) = pool.upgrade() else {
                return;
            };
            let now = rt.now();
            let wakers = {
                let mut state = inner.lock();
                if state.closed {
                    return;
                }
                state.expire_waiters(now)
            };
            wakers.into_iter().for_each(Waker::wake);
            if let (Some(at), Some(every)) = (next_tend, every) {
                if now >= at {
                    if !tend(&inner).await {
                        return;
                    }
                    next_tend = rt.now().checked_add(every);
                }
            }
            // The queue's head now (waiters came and went meanwhile), and
            // when the task wakes, for the waiters to come.
            let mut state = inner.lock();
            let wake_at = match (state.head_deadline(), next_tend) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            state.timer_at = wake_at;
            wake_at
        };
        let mut sleep = wake_at.map(|at| rt.sleep(at.saturating_duration_since(rt.now())));
        poll_fn(|cx| {
            signal.waker.register(cx.waker());
            if signal.poked.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            match &mut sleep {
                Some(sleep) => sleep.as_mut().poll(cx),
                None => Poll::Pending,
            }
        })
        .await;
    }
}

/// One round of maintenance; `false` once the pool is closed.
async fn tend<M: Manager>(inner: &Arc<Inner<M>>) -> bool {
    let now = inner.rt.now();
    let expired = {
        let mut state = inner.lock();
        if state.closed {
            return false;
        }
        let (expired, kept): (Vec<_>, Vec<_>) = state
            .idle
            .drain(..)
            .partition(|idle| inner.expired(&idle.metrics, now));
        state.idle = kept;
        state.destroyed += expired.len() as u64;
        expired
    };
    for idle in expired {
        inner.dispose(idle.object);
    }
    // Top up: one at a time, and only while nobody waits (a waiter takes the
    // slot instead).
    loop {
        {
            let mut state = inner.lock();
            if state.closed
                || state.idle.len() >= state.min_idle
                || state.slots >= state.max_size
                || !state.queue.is_empty()
            {
                return !state.closed;
            }
            state.slots += 1;
        }
        let created = inner.create().await;
        let Ok(Ok(object)) = created else {
            // Try again next round.
            inner.free_slot();
            return true;
        };
        let now = inner.rt.now();
        let kept = {
            let mut state = inner.lock();
            state.created += 1;
            if state.closed {
                state.destroyed += 1;
                Err(object)
            } else {
                state.in_use += 1;
                Ok(state.grant(Grant::Object(Idle {
                    object,
                    metrics: ObjectMetrics {
                        created: now,
                        last_used: now,
                        recycled: 0,
                    },
                })))
            }
        };
        match kept {
            Ok(waker) => {
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
            Err(object) => {
                inner.dispose(object);
                return false;
            }
        }
    }
}
