//! The in-process side of the hand-off: waiters registered per key, woken
//! by the release messages of their key's channel, and the subscriptions
//! to those channels (made while a waiter of the key waits, dropped after).
//!
//! A key's channel is subscribed lazily: not when a waiter is made (an
//! uncontended acquire never waits, and sends no SUBSCRIBE), but the first
//! time one of its waiters is polled, i.e. when the lock scope starts to
//! wait. One SUBSCRIBE or UNSUBSCRIBE is in flight at a time (so that the
//! two never cross for one key), batched over every key that needs it, and
//! driven by whichever waiter is polled (or a `release` of this process,
//! see [`Registry::nudge`]). The server's confirmation of a subscription
//! wakes the key's waiters, so that a release published before it is not
//! missed: they try again.
//!
//! When the last waiter of a key goes away, its subscription becomes idle;
//! idle subscriptions are all dropped by one UNSUBSCRIBE, sent by the next
//! poll of any waiter or the next `release` of this process. So the
//! subscriptions never outnumber the keys that had polled waiters at once,
//! plus those idle since the last such poll or release.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll, Wake, Waker};

use awith_core::lock::Waiter;
use redis::RedisResult;
use redis::aio::ConnectionManager;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every waiter of one [`RedisLocks`](crate::RedisLocks) (and its clones),
/// by key, and the subscriptions to their keys' channels.
pub(crate) struct Registry {
    inner: Mutex<Keys>,
    /// The SUBSCRIBE or UNSUBSCRIBE in flight. Locked before `inner`
    /// (never while `inner` is held), and never by the push dispatch.
    driver: Mutex<Option<Op>>,
    /// Whether some key may need a SUBSCRIBE or an UNSUBSCRIBE: set under
    /// `inner`, read without it as a fast path.
    work: AtomicBool,
    /// Who to wake when the operation in flight can make progress.
    wake: Arc<DriverWake>,
    /// `{prefix}released:{` — a key's channel is this, the key and `}`.
    channel_prefix: String,
    /// The connection, once connected.
    manager: OnceLock<ConnectionManager>,
}

#[derive(Default)]
struct Keys {
    next_id: u64,
    by_key: HashMap<String, Entry>,
}

/// One key: its waiters, and its channel's subscription.
#[derive(Default)]
struct Entry {
    waiters: Vec<(u64, Arc<Slot>)>,
    /// A waiter of the key has been polled: it waits, so subscribe.
    wanted: bool,
    sub: Sub,
}

#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
enum Sub {
    /// Not subscribed (nor being unsubscribed: an entry being
    /// unsubscribed is out of the table).
    #[default]
    No,
    /// In the SUBSCRIBE in flight.
    Pending,
    Yes,
}

/// A SUBSCRIBE or UNSUBSCRIBE of some keys' channels.
struct Op {
    subscribe: bool,
    keys: Vec<String>,
    future: Pin<Box<dyn Future<Output = RedisResult<()>> + Send>>,
}

/// The waker the operation in flight is polled with: wakes every task that
/// drove it since it last woke (any of them may drive it on).
#[derive(Default)]
struct DriverWake {
    tasks: Mutex<Vec<Waker>>,
}

impl DriverWake {
    fn register(&self, waker: &Waker) {
        let mut tasks = lock(&self.tasks);
        if !tasks.iter().any(|task| task.will_wake(waker)) {
            tasks.push(waker.clone());
        }
    }
}

impl Wake for DriverWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for task in tasks {
            task.wake();
        }
    }
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
            let mut state = lock(&self.state);
            state.released = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Registry {
    /// A registry whose keys' channels are `channel_prefix`, the key and `}`.
    pub(crate) fn new(channel_prefix: String) -> Registry {
        Registry {
            inner: Mutex::default(),
            driver: Mutex::default(),
            work: AtomicBool::new(false),
            wake: Arc::default(),
            channel_prefix,
            manager: OnceLock::new(),
        }
    }

    /// Gives the registry the connection its subscriptions are made on.
    pub(crate) fn connected(&self, manager: ConnectionManager) {
        let _ = self.manager.set(manager);
    }

    /// The channel releases of `key` are published on.
    pub(crate) fn channel(&self, key: &str) -> String {
        let mut channel = String::with_capacity(self.channel_prefix.len() + key.len() + 1);
        channel.push_str(&self.channel_prefix);
        channel.push_str(key);
        channel.push('}');
        channel
    }

    /// The key whose channel is `channel`, if it is one of this prefix's.
    pub(crate) fn key_of<'a>(channel_prefix: &[u8], channel: &'a [u8]) -> Option<&'a str> {
        let key = channel.strip_prefix(channel_prefix)?.strip_suffix(b"}")?;
        std::str::from_utf8(key).ok()
    }

    /// Registers a waiter for `key`, at once (no command is sent).
    pub(crate) fn register(self: &Arc<Self>, key: &str) -> RedisWaiter {
        let slot = Arc::new(Slot::default());
        let id = {
            let mut keys = lock(&self.inner);
            let id = keys.next_id;
            keys.next_id += 1;
            let waiter = (id, Arc::clone(&slot));
            match keys.by_key.get_mut(key) {
                Some(entry) => entry.waiters.push(waiter),
                None => {
                    keys.by_key.insert(
                        key.to_owned(),
                        Entry {
                            waiters: vec![waiter],
                            ..Entry::default()
                        },
                    );
                }
            }
            id
        };
        RedisWaiter {
            registry: Arc::downgrade(self),
            key: key.to_owned(),
            id,
            slot,
            polled: false,
        }
    }

    /// Wakes every waiter of `key`.
    pub(crate) fn released(&self, key: &str) {
        let slots: Vec<Arc<Slot>> = {
            let keys = lock(&self.inner);
            keys.by_key
                .get(key)
                .map(|entry| {
                    entry
                        .waiters
                        .iter()
                        .map(|(_, slot)| Arc::clone(slot))
                        .collect()
                })
                .unwrap_or_default()
        };
        for slot in slots {
            slot.wake();
        }
    }

    /// Wakes every waiter: a release may have been missed (the
    /// connection was lost).
    pub(crate) fn wake_all(&self) {
        let slots: Vec<Arc<Slot>> = {
            let keys = lock(&self.inner);
            keys.by_key
                .values()
                .flat_map(|entry| &entry.waiters)
                .map(|(_, slot)| Arc::clone(slot))
                .collect()
        };
        for slot in slots {
            slot.wake();
        }
    }

    /// How many waiters `key` has.
    pub(crate) fn count(&self, key: &str) -> usize {
        let keys = lock(&self.inner);
        keys.by_key.get(key).map_or(0, |entry| entry.waiters.len())
    }

    /// The keys whose channels are subscribed, or being subscribed, now
    /// (with or without waiters), sorted.
    pub(crate) fn subscribed(&self) -> Vec<String> {
        let keys = lock(&self.inner);
        let mut subscribed: Vec<String> = keys
            .by_key
            .iter()
            .filter(|(_, entry)| entry.sub != Sub::No)
            .map(|(key, _)| key.clone())
            .collect();
        subscribed.sort_unstable();
        subscribed
    }

    fn unregister(&self, key: &str, id: u64) {
        let mut keys = lock(&self.inner);
        let Some(entry) = keys.by_key.get_mut(key) else {
            return;
        };
        entry.waiters.retain(|(slot_id, _)| *slot_id != id);
        if entry.waiters.is_empty() {
            entry.wanted = false;
            match entry.sub {
                Sub::No => {
                    keys.by_key.remove(key);
                }
                // The SUBSCRIBE's end decides.
                Sub::Pending => {}
                // Idle: the next drive unsubscribes it.
                Sub::Yes => self.work.store(true, Ordering::Release),
            }
        }
    }

    /// `key`'s waiter is polled for the first time: it waits, so its
    /// channel is wanted.
    fn want(&self, key: &str) {
        let mut keys = lock(&self.inner);
        if let Some(entry) = keys.by_key.get_mut(key) {
            entry.wanted = true;
            if entry.sub == Sub::No {
                self.work.store(true, Ordering::Release);
            }
        }
    }

    /// Drives the subscriptions on: polls the operation in flight (with
    /// `cx`'s task among those it wakes), and starts the next one when it
    /// is done.
    fn drive(&self, cx: &mut Context<'_>) {
        let mut driver = lock(&self.driver);
        if driver.is_none() && !self.work.load(Ordering::Acquire) {
            return;
        }
        let Some(manager) = self.manager.get() else {
            return;
        };
        loop {
            if let Some(op) = driver.as_mut() {
                self.wake.register(cx.waker());
                let waker = Waker::from(Arc::clone(&self.wake));
                let Poll::Ready(result) = op.future.as_mut().poll(&mut Context::from_waker(&waker))
                else {
                    return;
                };
                let Some(op) = driver.take() else { return };
                let done = result.is_ok();
                self.finish(op, done);
                if !done {
                    // Tried again by the next drive, not at once.
                    return;
                }
            }
            match self.next_op(manager) {
                Some(op) => *driver = Some(op),
                None => return,
            }
        }
    }

    /// Starts (polls once, which queues the command) the next operation
    /// if none is in flight and one is needed, without waiting for it: for
    /// a `release`, so that an idle subscription does not outlive the
    /// waiters of a process that no longer waits.
    pub(crate) fn nudge(&self) {
        if self.work.load(Ordering::Acquire) {
            self.drive(&mut Context::from_waker(Waker::noop()));
        }
    }

    /// What to send next: a SUBSCRIBE of every wanted key not subscribed,
    /// else an UNSUBSCRIBE of every idle one (taken out of the table).
    fn next_op(&self, manager: &ConnectionManager) -> Option<Op> {
        let mut keys = lock(&self.inner);
        let mut subscribe = Vec::new();
        for (key, entry) in &mut keys.by_key {
            if entry.wanted && entry.sub == Sub::No {
                entry.sub = Sub::Pending;
                subscribe.push(key.clone());
            }
        }
        let subscribing = !subscribe.is_empty();
        let keys_of_op = if subscribing {
            subscribe
        } else {
            let idle: Vec<String> = keys
                .by_key
                .iter()
                .filter(|(_, entry)| entry.waiters.is_empty() && entry.sub == Sub::Yes)
                .map(|(key, _)| key.clone())
                .collect();
            for key in &idle {
                keys.by_key.remove(key);
            }
            if idle.is_empty() {
                self.work.store(false, Ordering::Release);
                return None;
            }
            idle
        };
        drop(keys);
        let channels: Vec<String> = keys_of_op.iter().map(|key| self.channel(key)).collect();
        let mut manager = manager.clone();
        let future: Pin<Box<dyn Future<Output = RedisResult<()>> + Send>> = if subscribing {
            Box::pin(async move { manager.subscribe(channels).await })
        } else {
            Box::pin(async move { manager.unsubscribe(channels).await })
        };
        Some(Op {
            subscribe: subscribing,
            keys: keys_of_op,
            future,
        })
    }

    /// Records how `op` ended.
    fn finish(&self, op: Op, done: bool) {
        let mut keys = lock(&self.inner);
        for key in op.keys {
            match (op.subscribe, done) {
                (true, _) => {
                    let Some(entry) = keys.by_key.get_mut(&key) else {
                        continue;
                    };
                    if entry.sub != Sub::Pending {
                        continue;
                    }
                    // The confirmation's push wakes the key's waiters.
                    entry.sub = if done { Sub::Yes } else { Sub::No };
                    if entry.waiters.is_empty() {
                        if done {
                            self.work.store(true, Ordering::Release);
                        } else {
                            keys.by_key.remove(&key);
                        }
                    } else if !done {
                        self.work.store(true, Ordering::Release);
                    }
                }
                (false, true) => {}
                (false, false) => {
                    // Perhaps still subscribed: unsubscribe it again later
                    // (unless a new waiter has come, which subscribes anew).
                    if let std::collections::hash_map::Entry::Vacant(vacant) =
                        keys.by_key.entry(key)
                    {
                        vacant.insert(Entry {
                            sub: Sub::Yes,
                            ..Entry::default()
                        });
                        self.work.store(true, Ordering::Release);
                    }
                }
            }
        }
    }
}

/// The [`Waiter`] of [`RedisLocks`](crate::RedisLocks): ready when a
/// release of its key was published (by any process using the same key
/// prefix), when its key's channel was subscribed (or subscribed again
/// after a reconnect), or when the connection was lost (a release may have
/// been missed then). Its key's channel is subscribed when it is first
/// polled, not before. Dropping it unregisters it.
pub struct RedisWaiter {
    registry: Weak<Registry>,
    key: String,
    id: u64,
    slot: Arc<Slot>,
    polled: bool,
}

impl Waiter for RedisWaiter {
    fn poll_released(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(registry) = self.registry.upgrade() {
            if !self.polled {
                self.polled = true;
                registry.want(&self.key);
            }
            registry.drive(cx);
        }
        let mut state = lock(&self.slot.state);
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
        let keys = lock(&self.inner);
        f.debug_struct("Registry")
            .field("keys", &keys.by_key.len())
            .finish()
    }
}
