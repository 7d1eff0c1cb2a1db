//! [`Checkout`]: a pool's checkout as a [`Resource`] — take a slot, make
//! its object ready, hand it to the body; then give it back, recycle, reset
//! or destroy it as the scope ended.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures::channel::oneshot;

use super::error::{PoolError, TimeoutKind};
use super::maintenance::create;
use super::state::{Grant, Idle, Kept, Take};
use super::{Inner, Manager, ObjectMetrics, Pool};
use crate::error::Failure;
use crate::exit::{Exit, ExitKind};
use crate::resource::{Acquired, ReleaseNow, Released, Resource};
use crate::rt::Runtime;
use crate::sync::Ordering;
use crate::verdict::Verdict;

/// A checkout of a [`Pool`] as a [`Resource`]: the value is the object.
pub struct Checkout<M: Manager> {
    pool: Pool<M>,
}

impl<M: Manager> Checkout<M> {
    pub(super) fn new(pool: Pool<M>) -> Self {
        Checkout { pool }
    }
}

impl<M: Manager> fmt::Debug for Checkout<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkout").finish_non_exhaustive()
    }
}

/// What a checkout's release needs: the pool (a handle: a checkout keeps
/// its pool), and the object's metrics.
pub struct Returning<M: Manager> {
    pool: Pool<M>,
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
    type Releaser = Returning<M>;

    const CANCEL_SAFE_ACQUIRE: bool = true;

    fn acquire(self, _rt: &Runtime) -> impl Future<Output = Acquired<E, Self>> + Send + 'static {
        let pool = self.pool;
        crate::trace::checkout(async move {
            let inner = &pool.inner;
            let (object, metrics) = {
                let mut held = Held {
                    inner,
                    object: None,
                    armed: false,
                };
                held.take_slot().await?;
                // The common case, without building `make_ready`'s larger
                // future: an idle object, fresh enough, that recycles.
                if held.object.as_ref().is_some_and(|idle| !held.expired(idle)) {
                    if held.recycle().await.is_ok() {
                        held.hand_out()?
                    } else {
                        held.replace().await?;
                        held.make_ready().await?
                    }
                } else {
                    held.make_ready().await?
                }
            };
            // The checkout's handle of the pool goes on to the release:
            // one reference count update less per checkout, on a line every
            // checkout of the pool touches.
            Ok((object, Returning { pool, metrics }))
        })
    }

    /// After `Completed`, the object goes back at once — or, if it is not
    /// to be kept (the pool closed or shrank, the object expired), to its
    /// destroy.
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
        let inner = &returning.pool.inner;
        give_back(inner, object, returning.metrics, inner.rt.now());
        ReleaseNow::Done(Ok(Verdict::Propagate))
    }

    fn release(
        returning: Returning<M>,
        object: M::Object,
        exit: &Exit<'_, E>,
        _rt: &Runtime,
    ) -> impl Future<Output = Released<E, Self>> + Send + 'static {
        let kind = exit.kind();
        async move {
            let Returning { pool, metrics } = returning;
            let inner = &pool.inner;
            let now = inner.rt.now();
            let mut held = Held {
                inner,
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
                        held.let_go();
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
                    if !held.reset(kind).await {
                        held.let_go();
                        return Ok(Verdict::Propagate);
                    }
                }
            }
            let Some(idle) = held.object.take() else {
                unreachable!("released with its object")
            };
            held.armed = false;
            give_back(inner, idle.object, idle.metrics, now);
            Ok(Verdict::Propagate)
        }
    }
}

/// An object (counted in use, with its slot) comes back: to the first
/// waiting checkout, or idle — unless the pool is closed, over its size, or
/// the object expired; then it is destroyed.
fn give_back<M: Manager>(
    inner: &Arc<Inner<M>>,
    object: M::Object,
    metrics: ObjectMetrics,
    now: Instant,
) {
    let metrics = ObjectMetrics {
        last_used: now,
        ..metrics
    };
    let expired = inner.expires() && inner.expired(&metrics, now);
    let kept = inner.lock().put_back(Idle { object, metrics }, expired);
    match kept {
        Kept::Kept(Some(waker)) => waker.wake(),
        Kept::Kept(None) => {}
        Kept::Refused(idle) => inner.dispose(idle.object, None),
    }
}

/// What a checkout's acquire ends with: the object and its metrics, or why
/// not.
type Ready<M> =
    Result<(<M as Manager>::Object, ObjectMetrics), Failure<PoolError<<M as Manager>::Error>>>;

/// Why a recycle failed.
enum Recycled<E> {
    Failed(E),
    TimedOut(std::time::Duration),
}

/// A slot held by a checkout or a release, with its object if it has one
/// (counted in use). Dropped while armed — the checkout or release was
/// cancelled, or a callback panicked — it destroys the object in a runtime
/// task and frees the slot after.
struct Held<'a, M: Manager> {
    inner: &'a Arc<Inner<M>>,
    object: Option<Idle<M::Object>>,
    armed: bool,
}

impl<M: Manager> Drop for Held<'_, M> {
    fn drop(&mut self) {
        self.let_go();
    }
}

impl<M: Manager> Held<'_, M> {
    /// Takes a slot: an idle object, a new slot, or a place in the queue
    /// until one is handed over.
    async fn take_slot(&mut self) -> Result<(), Failure<PoolError<M::Error>>> {
        let grant = crate::trace::wait(Take::new(self.inner)).await?;
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
    async fn make_ready(mut self) -> Ready<M> {
        loop {
            // Closed meanwhile: no recycle or create for a body that will
            // not run.
            if self.inner.closed.load(Ordering::Acquire) {
                self.let_go();
                return Err(Failure::Error(PoolError::Closed));
            }
            if let Some(idle) = &self.object {
                if !self.expired(idle) && self.recycle().await.is_ok() {
                    return self.hand_out();
                }
                self.replace().await?;
                continue;
            }
            let inner = self.inner;
            let created = create(&*inner.manager, &inner.rt, inner.timeouts.create).await;
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
                        metrics: ObjectMetrics::new(now),
                    });
                    return self.hand_out();
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

    /// The object and its metrics, for the body; the slot goes with them.
    /// If the pool closed meanwhile, the object is destroyed instead: no
    /// body starts once `close` has begun.
    fn hand_out(mut self) -> Ready<M> {
        if self.inner.closed.load(Ordering::Acquire) {
            self.let_go();
            return Err(Failure::Error(PoolError::Closed));
        }
        self.armed = false;
        let Some(idle) = self.object.take() else {
            unreachable!("handed out only with an object")
        };
        Ok((idle.object, idle.metrics))
    }

    /// Recycles the object held, bounded by the recycle timeout; counts it.
    async fn recycle(&mut self) -> Result<(), Recycled<M::Error>> {
        let Some(idle) = &mut self.object else {
            unreachable!("recycled only with an object")
        };
        let inner = self.inner;
        let recycle = inner.manager.recycle(&mut idle.object, &idle.metrics);
        let recycle = crate::trace::recycle(recycle);
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

    /// Resets the object held after its scope panicked or was cancelled,
    /// bounded by the recycle timeout: `true` if it may go back.
    async fn reset(&mut self, kind: ExitKind) -> bool {
        let Some(idle) = &mut self.object else {
            return false;
        };
        let inner = self.inner;
        let reset = inner.manager.reset(&mut idle.object, kind);
        match inner.timeouts.recycle {
            None => reset.await,
            Some(after) => inner.rt.timeout(after, reset).await.unwrap_or(false),
        }
    }

    /// Destroys the object held and keeps its slot for the next one: waits
    /// until the destroy has ended (it is bounded by the runtime's cleanup
    /// timeout). If dropped meanwhile, the destroy goes on and frees the
    /// slot.
    async fn replace(&mut self) -> Result<(), Failure<PoolError<M::Error>>> {
        let Some(idle) = self.object.take() else {
            return Ok(());
        };
        {
            let mut state = self.inner.lock();
            state.in_use -= 1;
            state.destroyed += 1;
        }
        let (back, slot) = oneshot::channel();
        self.armed = false;
        self.inner.dispose(idle.object, Some(back));
        match slot.await {
            Ok(slot) => {
                slot.keep();
                self.armed = true;
                Ok(())
            }
            // Never: the destroy sends the slot back or frees it unsent.
            // Queue for another.
            Err(oneshot::Canceled) => self.take_slot().await,
        }
    }

    /// Lets go of the slot held, and of its object if it has one: destroyed
    /// in a runtime cleanup, which frees the slot when it ends.
    fn let_go(&mut self) {
        if !std::mem::take(&mut self.armed) {
            return;
        }
        match self.object.take() {
            Some(idle) => {
                {
                    let mut state = self.inner.lock();
                    state.in_use -= 1;
                    state.destroyed += 1;
                }
                self.inner.dispose(idle.object, None);
            }
            None => self.inner.free_slot(),
        }
    }
}
