//! [`LocalLocks`]: the in-process backend — keyed, first come first served.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::fmt;
use std::future::{Future, ready};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::{LockBackend, Token, Waiter};
use crate::rt::Runtime;
use crate::sync::{Mutex, lock};

/// Locks for one process, by key: the [`LockBackend`] for work that only
/// needs to exclude itself on one machine, and for tests (on every runtime,
/// with the reference runtime's virtual clock).
///
/// Fair: waiters take a key in the order they first asked for it, and a
/// release wakes the first of them at once (no poll interval). A waiter
/// that gives up leaves the queue. Leases run out as a server's would
/// (by the runtime's clock), so a holder that stops renewing loses its
/// lock here too. Fencing tokens count up across all keys. Cheap to clone;
/// clones share the locks.
///
/// ```
/// use std::time::Duration;
/// use awith::lock::{LocalLocks, Lock};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rt = awith::runtime()?;
/// let locks = LocalLocks::new(&rt);
/// let orders = Lock::builder(locks.clone(), "orders")
///     .ttl(Duration::from_secs(10))
///     .build(&rt)?;
/// let first = orders.with(async |lease| Ok::<_, std::io::Error>(lease.fence())).await?;
/// let second = orders.with(async |lease| Ok::<_, std::io::Error>(lease.fence())).await?;
/// assert!(second > first);
/// assert_eq!(locks.held(), 0);
/// # rt.drain(Duration::from_secs(5)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct LocalLocks {
    inner: Arc<Inner>,
}

struct Inner {
    rt: Runtime,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, Key>,
    fence: u64,
    next_waiter: u64,
}

#[derive(Default)]
struct Key {
    holder: Option<(Token, Instant)>,
    /// Waiters, first come first: their number, token, and whether they
    /// were woken (with the waker to wake).
    queue: VecDeque<Queued>,
}

struct Queued {
    id: u64,
    token: Token,
    woken: bool,
    waker: Option<Waker>,
}

impl Key {
    fn held(&self, now: Instant) -> Option<&Token> {
        match &self.holder {
            Some((token, expires)) if now < *expires => Some(token),
            _ => None,
        }
    }

    /// Wakes the first waiter: the key is free for it. The waker is
    /// returned to be woken outside the lock.
    fn wake_first(&mut self) -> Option<Waker> {
        let first = self.queue.front_mut()?;
        first.woken = true;
        first.waker.take()
    }
}

impl LocalLocks {
    /// Locks on `rt`'s clock.
    pub fn new(rt: &Runtime) -> Self {
        LocalLocks {
            inner: Arc::new(Inner {
                rt: rt.clone(),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// How many keys are held now (leases not run out).
    pub fn held(&self) -> usize {
        let now = self.inner.rt.now();
        let state = lock(&self.inner.state);
        state
            .keys
            .values()
            .filter(|key| key.held(now).is_some())
            .count()
    }

    /// How many waiters are queued, over all keys.
    pub fn waiting(&self) -> usize {
        lock(&self.inner.state)
            .keys
            .values()
            .map(|key| key.queue.len())
            .sum()
    }

    fn try_take(&self, key: &str, token: &Token, ttl: Duration) -> Option<u64> {
        let now = self.inner.rt.now();
        let mut state = lock(&self.inner.state);
        let state = &mut *state;
        let entry = state.keys.entry(key.to_owned()).or_default();
        if entry.held(now).is_some() {
            return None;
        }
        // First come, first served: a key free with others queued ahead
        // goes to the first of them.
        if let Some(first) = entry.queue.front() {
            if first.token != *token {
                return None;
            }
        }
        let position = entry.queue.iter().position(|q| q.token == *token);
        if let Some(position) = position {
            entry.queue.remove(position);
        }
        entry.holder = Some((token.clone(), now.checked_add(ttl)?));
        state.fence += 1;
        Some(state.fence)
    }

    fn give_back(&self, key: &str, token: &Token) -> bool {
        let now = self.inner.rt.now();
        let waker = {
            let mut state = lock(&self.inner.state);
            let Some(entry) = state.keys.get_mut(key) else {
                return false;
            };
            if entry.held(now) != Some(token) {
                return false;
            }
            entry.holder = None;
            let waker = entry.wake_first();
            if entry.queue.is_empty() {
                state.keys.remove(key);
            }
            waker
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    fn extend_lease(&self, key: &str, token: &Token, ttl: Duration) -> bool {
        let now = self.inner.rt.now();
        let mut state = lock(&self.inner.state);
        let Some(entry) = state.keys.get_mut(key) else {
            return false;
        };
        match &mut entry.holder {
            Some((holder, expires)) if holder == token && now < *expires => {
                match now.checked_add(ttl) {
                    Some(at) => {
                        *expires = at;
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        }
    }
}

impl fmt::Debug for LocalLocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalLocks")
            .field("held", &self.held())
            .field("waiting", &self.waiting())
            .finish_non_exhaustive()
    }
}

impl LockBackend for LocalLocks {
    type Error = Infallible;
    type Waiter = LocalWaiter;

    fn try_acquire(
        &self,
        key: &str,
        token: &Token,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<u64>, Infallible>> + Send {
        ready(Ok(self.try_take(key, token, ttl)))
    }

    fn release(
        &self,
        key: &str,
        token: &Token,
    ) -> impl Future<Output = Result<bool, Infallible>> + Send {
        ready(Ok(self.give_back(key, token)))
    }

    fn extend(
        &self,
        key: &str,
        token: &Token,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, Infallible>> + Send {
        ready(Ok(self.extend_lease(key, token, ttl)))
    }

    fn waiter(&self, key: &str, token: &Token) -> LocalWaiter {
        let mut state = lock(&self.inner.state);
        state.next_waiter += 1;
        let id = state.next_waiter;
        state
            .keys
            .entry(key.to_owned())
            .or_default()
            .queue
            .push_back(Queued {
                id,
                token: token.clone(),
                woken: false,
                waker: None,
            });
        LocalWaiter {
            locks: self.clone(),
            key: key.to_owned(),
            id,
        }
    }
}

/// A place in a [`LocalLocks`] key's queue; dropping it leaves the queue
/// (and hands the turn on if it was this waiter's).
pub struct LocalWaiter {
    locks: LocalLocks,
    key: String,
    id: u64,
}

impl fmt::Debug for LocalWaiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalWaiter")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Waiter for LocalWaiter {
    fn poll_released(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let now = self.locks.inner.rt.now();
        let mut state = lock(&self.locks.inner.state);
        let Some(entry) = state.keys.get_mut(&self.key) else {
            return Poll::Ready(());
        };
        let free = entry.held(now).is_none();
        let first = entry.queue.front().map(|q| q.id) == Some(self.id);
        let Some(me) = entry.queue.iter_mut().find(|q| q.id == self.id) else {
            // Not queued (it took the key): nothing to wait for.
            return Poll::Ready(());
        };
        if me.woken || (free && first) {
            me.woken = false;
            return Poll::Ready(());
        }
        me.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for LocalWaiter {
    fn drop(&mut self) {
        let now = self.locks.inner.rt.now();
        let waker = {
            let mut state = lock(&self.locks.inner.state);
            let Some(entry) = state.keys.get_mut(&self.key) else {
                return;
            };
            let Some(position) = entry.queue.iter().position(|q| q.id == self.id) else {
                return;
            };
            entry.queue.remove(position);
            // Its turn passes on if the key is free.
            let waker = if position == 0 && entry.held(now).is_none() {
                entry.wake_first()
            } else {
                None
            };
            if entry.queue.is_empty() && entry.holder.is_none() {
                state.keys.remove(&self.key);
            }
            waker
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}
