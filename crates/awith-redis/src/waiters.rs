//! The in-process side of the hand-off: waiters registered per key, woken
//! by the release messages of the shared subscription.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker};

use awith_core::lock::Waiter;

/// Every waiter of one [`RedisLocks`](crate::RedisLocks) (and its clones),
/// by key.
#[derive(Default)]
pub(crate) struct Registry {
    inner: Mutex<Keys>,
}

#[derive(Default)]
struct Keys {
    next_id: u64,
    by_key: HashMap<String, Vec<(u64, Arc<Slot>)>>,
}

/// One waiter's state: released since it last said so, and who to wake.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    released: bool,
    waker: Option<Waker>,
}

impl Slot {
    fn wake(&self) {
        let waker = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.released = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Registry {
    /// Registers a waiter for `key`, at once.
    pub(crate) fn register(self: &Arc<Self>, key: &str) -> RedisWaiter {
        let slot = Arc::new(Slot::default());
        let id = {
            let mut keys = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            let id = keys.next_id;
            keys.next_id += 1;
            keys.by_key
                .entry(key.to_owned())
                .or_default()
                .push((id, Arc::clone(&slot)));
            id
        };
        RedisWaiter {
            registry: Arc::downgrade(self),
            key: key.to_owned(),
            id,
            slot,
        }
    }

    /// Wakes every waiter of `key`.
    pub(crate) fn released(&self, key: &str) {
        let slots: Vec<Arc<Slot>> = {
            let keys = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            keys.by_key
                .get(key)
                .map(|slots| slots.iter().map(|(_, slot)| Arc::clone(slot)).collect())
                .unwrap_or_default()
        };
        for slot in slots {
            slot.wake();
        }
    }

    /// Wakes every waiter: a release may have been missed (the
    /// subscription was lost, or has just been made again).
    pub(crate) fn wake_all(&self) {
        let slots: Vec<Arc<Slot>> = {
            let keys = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            keys.by_key
                .values()
                .flatten()
                .map(|(_, slot)| Arc::clone(slot))
                .collect()
        };
        for slot in slots {
            slot.wake();
        }
    }

    /// How many waiters `key` has.
    pub(crate) fn count(&self, key: &str) -> usize {
        let keys = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        keys.by_key.get(key).map_or(0, Vec::len)
    }

    fn unregister(&self, key: &str, id: u64) {
        let mut keys = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slots) = keys.by_key.get_mut(key) {
            slots.retain(|(slot_id, _)| *slot_id != id);
            if slots.is_empty() {
                keys.by_key.remove(key);
            }
        }
    }
}

/// The [`Waiter`] of [`RedisLocks`](crate::RedisLocks): ready when a
/// release of its key was published (by any process using the same key
/// prefix), or when the subscription was lost or made again (a release may
/// have been missed then). Dropping it unregisters it.
pub struct RedisWaiter {
    registry: Weak<Registry>,
    key: String,
    id: u64,
    slot: Arc<Slot>,
}

impl Waiter for RedisWaiter {
    fn poll_released(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self
            .slot
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if state.released {
            state.released = false;
            state.waker = None;
            Poll::Ready(())
        } else {
            match &mut state.waker {
                Some(waker) => waker.clone_from(cx.waker()),
                None => state.waker = Some(cx.waker().clone()),
            }
            Poll::Pending
        }
    }
}

impl Drop for RedisWaiter {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            registry.unregister(&self.key, self.id);
        }
    }
}

impl fmt::Debug for RedisWaiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisWaiter")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Registry")
            .field("keys", &keys.by_key.len())
            .finish()
    }
}
