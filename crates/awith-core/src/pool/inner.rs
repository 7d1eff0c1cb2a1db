//! [`Inner`]: the pool itself, shared by its handles, its checkouts, its
//! cleanups and (weakly) its tasks — its settings, its state behind one
//! lock, and how it lets go of an object ([`Inner::dispose`]) and of a slot
//! ([`Slot`]).

use std::mem;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use futures::channel::oneshot;

use super::config::Timeouts;
use super::maintenance::TaskSignal;
use super::state::State;
use super::{Manager, ObjectMetrics};
use crate::rt::{CleanupKind, Runtime};
use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering, lock};

/// The pool itself, shared by its handles, its checkouts, its cleanups and
/// (weakly) its tasks.
pub(super) struct Inner<M: Manager> {
    /// Shared with the top-ups in flight and the destroys of a dropped pool.
    pub(super) manager: Arc<M>,
    pub(super) rt: Runtime,
    pub(super) timeouts: Timeouts,
    pub(super) max_lifetime: Option<Duration>,
    pub(super) idle_timeout: Option<Duration>,
    pub(super) state: Mutex<State<M::Object>>,
    /// `state.closed`, readable without the lock: a checkout checks it
    /// before it hands its object to the body.
    pub(super) closed: AtomicBool,
    /// Counted outside the lock: a recycle takes no lock.
    pub(super) recycled: AtomicU64,
    pub(super) recycle_failed: AtomicU64,
    /// Wakes the pool's task.
    pub(super) task: Arc<TaskSignal>,
    /// The [`Pool`](super::Pool) handles, checkouts' included: the last
    /// one to go closes the pool ([`Inner::close_now`]).
    pub(super) handles: AtomicUsize,
}

/// A backstop: the last handle closed the pool ([`Inner::close_now`]), so
/// nothing is idle and no top-up is in flight (a closed pool keeps
/// neither). Should anything be left, it goes as at the pool's drop: its
/// task ends, its top-ups are ended, its idle objects are destroyed as
/// tracked cleanups.
impl<M: Manager> Drop for Inner<M> {
    fn drop(&mut self) {
        self.task.poke();
        let (idle, top_ups) = {
            let mut state = self.lock();
            (mem::take(&mut state.idle), mem::take(&mut state.top_ups))
        };
        for (_, top_up) in top_ups {
            top_up.abort();
        }
        for idle in idle {
            orphan_destroy(&self.rt, &self.manager, idle.object);
        }
    }
}

/// Destroys `object` of a pool that is gone, as a tracked cleanup.
pub(super) fn orphan_destroy<M: Manager>(rt: &Runtime, manager: &Arc<M>, object: M::Object) {
    let manager = Arc::clone(manager);
    rt.spawn_cleanup(
        CleanupKind::Destroy,
        rt.cleanup_timeout(),
        Vec::new(),
        async move {
            manager.destroy(object).await;
            Ok(())
        },
    );
}

impl<M: Manager> Inner<M> {
    pub(super) fn lock(&self) -> MutexGuard<'_, State<M::Object>> {
        lock(&self.state)
    }

    /// The start of a close, without its wait: new checkouts are refused,
    /// the waiters fail (also those handed a slot or an object not yet
    /// taken), the top-ups in flight are ended, and the idle objects are
    /// handed to their destroys.
    pub(super) fn close_now(self: &Arc<Self>) {
        let (wakers, refused, top_ups) = {
            let mut state = self.lock();
            self.closed.store(true, Ordering::Release);
            let (wakers, refused) = state.close();
            (wakers, refused, mem::take(&mut state.top_ups))
        };
        wakers.into_iter().for_each(Waker::wake);
        for (_, top_up) in top_ups {
            top_up.abort();
        }
        for idle in refused {
            self.dispose(idle.object, None);
        }
    }

    pub(super) fn free_slot(&self) {
        let wakers = self.lock().free_slot();
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Objects can expire (a lifetime or an idle timeout is set).
    pub(super) fn expires(&self) -> bool {
        self.max_lifetime.is_some() || self.idle_timeout.is_some()
    }

    /// Past its lifetime or idle time?
    pub(super) fn expired(&self, metrics: &ObjectMetrics, now: Instant) -> bool {
        let older = |since: Instant, limit: Option<Duration>| {
            limit.is_some_and(|limit| now.saturating_duration_since(since) >= limit)
        };
        older(metrics.created, self.max_lifetime) || older(metrics.last_used, self.idle_timeout)
    }

    /// Destroys `object` (counted destroyed) in a tracked runtime cleanup,
    /// bounded by the cleanup timeout. Its slot goes with it: when the
    /// destroy ends — finished, panicked, timed out, or refused by the
    /// runtime — the slot is handed to `back` if given (and still
    /// listened to), else freed.
    pub(super) fn dispose(
        self: &Arc<Self>,
        object: M::Object,
        back: Option<oneshot::Sender<Slot<M>>>,
    ) {
        let slot = SlotBack {
            slot: Some(Slot {
                inner: Some(Arc::clone(self)),
            }),
            to: back,
        };
        let manager = Arc::clone(&self.manager);
        self.rt.spawn_cleanup(
            CleanupKind::Destroy,
            self.rt.cleanup_timeout(),
            Vec::new(),
            async move {
                // Dropped after the destroy, however it ends (also as its
                // panic unwinds, or with the task).
                let _slot = slot;
                manager.destroy(object).await;
                Ok(())
            },
        );
    }
}

/// A slot held, freed when dropped unless [kept](Self::keep).
pub(super) struct Slot<M: Manager> {
    inner: Option<Arc<Inner<M>>>,
}

impl<M: Manager> Slot<M> {
    /// The slot goes on with its new holder.
    pub(super) fn keep(mut self) {
        self.inner = None;
    }
}

impl<M: Manager> Drop for Slot<M> {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            inner.free_slot();
        }
    }
}

/// The slot of an object being destroyed: when dropped, handed back to the
/// checkout that waits for it, or freed (also when that checkout is gone).
struct SlotBack<M: Manager> {
    slot: Option<Slot<M>>,
    to: Option<oneshot::Sender<Slot<M>>>,
}

impl<M: Manager> Drop for SlotBack<M> {
    fn drop(&mut self) {
        if let (Some(slot), Some(to)) = (self.slot.take(), self.to.take()) {
            // Refused (the checkout is gone): the slot drops, freed. One
            // sent and never received is freed when the channel drops.
            let _ = to.send(slot);
        }
    }
}
