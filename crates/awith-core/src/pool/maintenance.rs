//! The pool's task — one timer for the queue of waiters, and every
//! `maintenance_interval` a round of maintenance — and the top-ups to
//! `min_idle` it starts, each a task of its own.
//!
//! The pool's task never runs user code and never awaits anything but its
//! timer: the manager's work happens in the top-ups and in destroy
//! cleanups, so a waiter's timeout never waits for it.

use std::future::poll_fn;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Weak};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use futures::future::{AbortHandle, AbortRegistration, Abortable};

use super::inner::{Inner, orphan_destroy};
use super::state::{Idle, Kept};
use super::{Manager, ObjectMetrics};
use crate::rt::{Incident, Runtime, SpawnError};
use crate::sync::{AtomicBool, AtomicWaker, Ordering};
use crate::util::{CatchUnwind, panic_message};

/// What a top-up reports its failures and panics as.
pub(super) const TOP_UP: &str = "a pool's top-up to `min_idle`";

/// What the pool's task reports a panic as (it can only come from dropping
/// an object the runtime refused to destroy).
const POOL_TASK: &str = "a pool's task";

/// Wakes the pool's task early: a new head of the queue to time, or the
/// pool gone.
#[derive(Default)]
pub(super) struct TaskSignal {
    waker: AtomicWaker,
    poked: AtomicBool,
}

impl TaskSignal {
    pub(super) fn poke(&self) {
        self.poked.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// Starts the pool's task, which times the waiters and, with `every`,
/// maintains the pool.
pub(super) fn start<M: Manager>(
    inner: &Arc<Inner<M>>,
    every: Option<Duration>,
) -> Result<(), SpawnError> {
    inner.rt.spawn(pool_task(
        Arc::downgrade(inner),
        Arc::clone(&inner.task),
        inner.rt.clone(),
        every,
    ))
}

/// The pool's one task, while it has a wait timeout, `min_idle`,
/// `max_lifetime` or `idle_timeout`: fails the waiters whose deadline has
/// passed — one timer for the whole queue (its head's deadline is the
/// earliest: all wait as long, first in first), not one per waiter — and
/// every `every` runs a round of [`tend`]. Ends when the pool is closed or
/// dropped.
async fn pool_task<M: Manager>(
    pool: Weak<Inner<M>>,
    signal: Arc<TaskSignal>,
    rt: Runtime,
    every: Option<Duration>,
) {
    let mut next_tend = every.map(|_| rt.now());
    loop {
        // Nothing in a round awaits or runs user code — except dropping
        // objects whose destroy the runtime refused (it is shutting down):
        // a panic there is caught, and the task goes on.
        let round = catch_unwind(AssertUnwindSafe(|| {
            round(&pool, &rt, every, &mut next_tend)
        }));
        let wake_at = match round {
            Ok(Some(wake_at)) => wake_at,
            Ok(None) => return,
            Err(panic) => {
                rt.report(Incident::BackgroundPanicked {
                    work: POOL_TASK,
                    message: panic_message(&panic),
                });
                continue;
            }
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

/// One turn of the pool's task: the waiters past their deadline fail, and
/// maintenance runs if it is due. When the task wakes next (`None` inside:
/// only when poked); `None` once the pool is closed or gone.
fn round<M: Manager>(
    pool: &Weak<Inner<M>>,
    rt: &Runtime,
    every: Option<Duration>,
    next_tend: &mut Option<Instant>,
) -> Option<Option<Instant>> {
    let inner = pool.upgrade()?;
    let now = rt.now();
    let wakers = {
        let mut state = inner.lock();
        if state.closed {
            return None;
        }
        state.expire_waiters(now)
    };
    wakers.into_iter().for_each(Waker::wake);
    if let (Some(at), Some(every)) = (*next_tend, every) {
        if now >= at {
            if !tend(&inner, now) {
                return None;
            }
            *next_tend = now.checked_add(every);
        }
    }
    // The queue's head now (waiters came and went meanwhile), and when the
    // task wakes, for the waiters to come.
    let mut state = inner.lock();
    let wake_at = match (state.head_deadline(), *next_tend) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    state.timer_at = wake_at;
    Some(wake_at)
}

/// One round of maintenance: destroys the expired idle objects and starts a
/// top-up for each object `min_idle` lacks (counting those in flight), while
/// slots are free and nobody waits (a waiter takes the slot instead).
/// `false` once the pool is closed.
fn tend<M: Manager>(inner: &Arc<Inner<M>>, now: Instant) -> bool {
    let (expired, top_ups) = {
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
        let mut top_ups = Vec::new();
        while state.queue.is_empty()
            && state.idle.len() + state.top_ups.len() < state.min_idle
            && state.slots < state.max_size
        {
            state.slots += 1;
            let id = state.next_id();
            let (handle, registration) = AbortHandle::new_pair();
            state.top_ups.push((id, handle));
            top_ups.push((id, registration));
        }
        (expired, top_ups)
    };
    for idle in expired {
        inner.dispose(idle.object, None);
    }
    for (id, registration) in top_ups {
        let slot = TopUpSlot {
            pool: Arc::downgrade(inner),
            id,
            armed: true,
        };
        let task = top_up(
            slot,
            Arc::clone(&inner.manager),
            inner.rt.clone(),
            inner.timeouts.create,
            registration,
        );
        // Refused, the task is dropped, and its slot freed with it.
        if let Err(refused) = inner.rt.spawn(task) {
            inner.rt.report(Incident::BackgroundFailed {
                work: TOP_UP,
                error: refused.to_string(),
            });
        }
    }
    true
}

/// Creates one object for `min_idle`, bounded by the create timeout, and
/// hands it to the pool (to the first waiter, else idle). Whatever ends it
/// — a failure, a timeout, a panic, an abort by `close` or by the pool's
/// drop, or the runtime dropping the task — frees its slot; failures and
/// panics are reported. It holds the pool only weakly, so a create that
/// hangs keeps no pool alive.
async fn top_up<M: Manager>(
    mut slot: TopUpSlot<M>,
    manager: Arc<M>,
    rt: Runtime,
    create_timeout: Option<Duration>,
    abort: AbortRegistration,
) {
    // Everything that runs user code — the create, the drop of its future,
    // the `Debug` of its error — runs inside the catch.
    let ended = CatchUnwind::new(async {
        let create = Abortable::new(create(&*manager, &rt, create_timeout), abort);
        let failure = match create.await {
            // Ended by `close` or the pool's drop: nothing to report.
            Err(_aborted) => return,
            Ok(Ok(Ok(object))) => {
                slot.deliver(object, &rt, &manager);
                return;
            }
            Ok(Ok(Err(error))) => format!("{error:?}"),
            Ok(Err(after)) => format!("create timed out after {after:?}"),
        };
        rt.report(Incident::BackgroundFailed {
            work: TOP_UP,
            error: failure,
        });
    })
    .await;
    if let Err(panic) = ended {
        rt.report(Incident::BackgroundPanicked {
            work: TOP_UP,
            message: panic_message(&panic),
        });
    }
    drop(slot);
}

/// Creates an object, bounded by `timeout`: `Err` with the timeout when it
/// passed.
pub(super) async fn create<M: Manager>(
    manager: &M,
    rt: &Runtime,
    timeout: Option<Duration>,
) -> Result<Result<M::Object, M::Error>, Duration> {
    let create = || crate::trace::create(manager.create());
    match timeout {
        None => Ok(create().await),
        Some(after) => rt.timeout(after, create()).await.map_err(|_| after),
    }
}

/// The slot of a top-up: freed when dropped unless the object it was for
/// took it; the top-up leaves the pool's list when it ends.
struct TopUpSlot<M: Manager> {
    pool: Weak<Inner<M>>,
    id: u64,
    armed: bool,
}

impl<M: Manager> TopUpSlot<M> {
    /// The object goes to the pool, with the slot — or, the pool closed, to
    /// its destroy, which frees the slot; or, the pool gone, to a destroy
    /// of its own.
    fn deliver(&mut self, object: M::Object, rt: &Runtime, manager: &Arc<M>) {
        let Some(inner) = self.pool.upgrade() else {
            self.armed = false;
            orphan_destroy(rt, manager, object);
            return;
        };
        let now = rt.now();
        let (kept, _handle) = {
            let mut state = inner.lock();
            // (Its abort handle is dropped after the lock.)
            let handle = leave(&mut state.top_ups, self.id);
            state.created += 1;
            state.in_use += 1;
            let kept = state.put_back(
                Idle {
                    object,
                    metrics: ObjectMetrics::new(now),
                },
                false,
            );
            (kept, handle)
        };
        self.armed = false;
        match kept {
            Kept::Kept(waker) => {
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
            Kept::Refused(idle) => inner.dispose(idle.object, None),
        }
    }
}

impl<M: Manager> Drop for TopUpSlot<M> {
    fn drop(&mut self) {
        let Some(inner) = self.pool.upgrade() else {
            return;
        };
        let (wakers, aborted) = {
            let mut state = inner.lock();
            let aborted = leave(&mut state.top_ups, self.id);
            let wakers = if self.armed {
                state.free_slot()
            } else {
                Vec::new()
            };
            (wakers, aborted)
        };
        drop(aborted);
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// Takes the top-up `id` off the list, if it is still there.
fn leave(top_ups: &mut Vec<(u64, AbortHandle)>, id: u64) -> Option<AbortHandle> {
    let at = top_ups.iter().position(|(n, _)| *n == id)?;
    Some(top_ups.swap_remove(at).1)
}
