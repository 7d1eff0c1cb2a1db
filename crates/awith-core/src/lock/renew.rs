//! The renewal of a lock's leases: one task per [`Lock`](super::Lock) (and
//! its clones), not one per acquire.
//!
//! Each held lease has an entry in a map ordered by when it is due for
//! renewal; the task sleeps until the first is due, extends the due leases
//! concurrently (each bounded by the time its lease has left, each panic
//! caught), and puts them back for their next turn. An acquire inserts its
//! lease (waking the task only if it is due before the task's timer, or
//! starting the task if none runs); a release takes it out. So a lock taken
//! and given back faster than its `ttl / 3` costs two map operations, and no
//! task, timer or wake-up (measured against a task per acquire: see the
//! commit that brought it).
//!
//! The task ends when no lease has been held or extended for a turn
//! (`ttl / 3`); the next acquire starts another. (Ending at once would
//! start a task per acquire in a loop whose releases come before the
//! task's first poll.) No user code runs under the map's lock: the backend's
//! `extend` is called, and its future polled, outside it.

use std::collections::BTreeMap;
use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};

use super::lease::LeaseState;
use super::scope::Shared;
use super::{LockBackend, LostReason};
use crate::rt::{Sleep, SpawnError};
use crate::sync::{Mutex, lock};
use crate::util::{OrTimeout, panic_message};

/// The leases of one lock, by when they are due for renewal.
#[derive(Default)]
pub(super) struct Renewals {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    due: BTreeMap<(Instant, u64), Arc<LeaseState>>,
    next_id: u64,
    /// A task runs (or has been spawned).
    running: bool,
    /// The instant the task's timer is set for, and its waker.
    armed: Option<Instant>,
    waker: Option<Waker>,
}

/// One extension in flight: its lease, when it started, how it ended.
type Extension = Pin<Box<dyn Future<Output = (Arc<LeaseState>, Instant, Extended)> + Send>>;

/// How one extension ended.
enum Extended {
    Yes,
    Refused,
    Failed(String),
    Unanswered(Duration),
}

impl Renewals {
    /// A number for a new lease.
    pub(super) fn next_id(&self) -> u64 {
        let mut state = lock(&self.state);
        state.next_id += 1;
        state.next_id
    }

    /// Renews `lease` from now on: due `ttl / 3` after it was taken.
    ///
    /// # Errors
    ///
    /// When the task is not running and the runtime refuses to start it.
    pub(super) fn add<B: LockBackend>(
        shared: &Arc<Shared<B>>,
        lease: &Arc<LeaseState>,
        taken_at: Instant,
    ) -> Result<(), SpawnError> {
        let due = taken_at + every(shared.ttl);
        let (spawn, wake) = {
            let mut state = lock(&shared.renewals.state);
            state.due.insert((due, lease.id), Arc::clone(lease));
            *lock(&lease.due) = Some(due);
            if state.running {
                let sooner = state.armed.is_none_or(|armed| due < armed);
                (false, if sooner { state.waker.take() } else { None })
            } else {
                state.running = true;
                (true, None)
            }
        };
        if let Some(waker) = wake {
            waker.wake();
        }
        if spawn {
            if let Err(refused) = shared.rt.spawn(run(Arc::clone(shared))) {
                let mut state = lock(&shared.renewals.state);
                state.running = false;
                state.due.remove(&(due, lease.id));
                *lock(&lease.due) = None;
                return Err(refused);
            }
        }
        Ok(())
    }

    /// Stops renewing `lease` (it is being given back): an extension in
    /// flight ends without effect on it.
    pub(super) fn remove(&self, lease: &LeaseState) {
        lease.released.store(true, crate::sync::Ordering::SeqCst);
        let due = lock(&lease.due).take();
        if let Some(due) = due {
            lock(&self.state).due.remove(&(due, lease.id));
        }
    }
}

fn every(ttl: Duration) -> Duration {
    (ttl / 3).max(Duration::from_millis(1))
}

/// Puts `lease` back, due at `at` — unless it was given back meanwhile.
fn put_back<B: LockBackend>(shared: &Shared<B>, lease: Arc<LeaseState>, at: Instant) {
    let mut state = lock(&shared.renewals.state);
    if lease.released.load(crate::sync::Ordering::SeqCst) {
        return;
    }
    *lock(&lease.due) = Some(at);
    state.due.insert((at, lease.id), lease);
}

/// The task: sleeps until a lease is due, extends the due ones, ends when
/// there is nothing left to renew.
async fn run<B: LockBackend>(shared: Arc<Shared<B>>) {
    let rt = shared.rt.clone();
    let mut extending = FuturesUnordered::new();
    let mut timer: Option<(Instant, Sleep)> = None;
    // While there is nothing to renew: until when the task waits for more.
    let mut linger: Option<Instant> = None;
    let mut lingered = false;
    poll_fn(|cx| {
        loop {
            // Extensions that ended.
            while let Poll::Ready(Some((lease, started, extended))) = extending.poll_next_unpin(cx)
            {
                settle(&shared, lease, started, extended);
            }
            // Leases now due, taken out of the map.
            let now = rt.now();
            let (due, next) = {
                let mut state = lock(&shared.renewals.state);
                let mut due = Vec::new();
                while let Some(entry) = state.due.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let lease = entry.remove();
                    *lock(&lease.due) = None;
                    due.push(lease);
                }
                let mut next = state.due.keys().next().map(|(at, _)| *at);
                if due.is_empty() && next.is_none() && extending.is_empty() {
                    if lingered {
                        state.running = false;
                        state.armed = None;
                        state.waker = None;
                        return Poll::Ready(());
                    }
                    next = Some(*linger.get_or_insert(now + every(shared.ttl)));
                } else {
                    (linger, lingered) = (None, false);
                }
                state.armed = next;
                state.waker = Some(cx.waker().clone());
                (due, next)
            };
            let started_any = !due.is_empty();
            for lease in due {
                if now >= lease.expires() {
                    // Paused past the lease (or every extension failed):
                    // whoever asks the backend now may find another holder.
                    let last_error = lease.take_last_error();
                    lease.lose(LostReason::Expired { last_error });
                    continue;
                }
                extending.push(extend(Arc::clone(&shared), lease, now));
            }
            if started_any {
                // Poll the new extensions (they may even be ready at once).
                continue;
            }
            let Some(at) = next else {
                timer = None;
                return Poll::Pending;
            };
            if timer.as_ref().is_none_or(|(armed, _)| *armed != at) {
                timer = Some((at, rt.sleep(at.saturating_duration_since(now))));
            }
            if let Some((_, sleep)) = &mut timer {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
            // Fired: some runtimes' timers panic when polled again.
            timer = None;
            lingered = linger.is_some_and(|until| until <= at);
        }
    })
    .await;
}

/// One extension of `lease`, bounded by the time it has left; a panic of the
/// backend's is caught and counts as a failure.
fn extend<B: LockBackend>(
    shared: Arc<Shared<B>>,
    lease: Arc<LeaseState>,
    now: Instant,
) -> Extension {
    let left = lease.expires().saturating_duration_since(now);
    let timer = shared.rt.sleep(left);
    Box::pin(async move {
        let extended = {
            let call =
                AssertUnwindSafe(shared.backend.extend(&shared.key, &lease.token, shared.ttl))
                    .catch_unwind();
            match OrTimeout::new(call, Some(timer)).await {
                Some(Ok(Ok(true))) => Extended::Yes,
                Some(Ok(Ok(false))) => Extended::Refused,
                Some(Ok(Err(error))) => Extended::Failed(error.to_string()),
                Some(Err(panic)) => {
                    Extended::Failed(format!("extending panicked: {}", panic_message(&panic)))
                }
                None => Extended::Unanswered(left),
            }
        };
        (lease, now, extended)
    })
}

/// What an extension's end does to its lease.
fn settle<B: LockBackend>(
    shared: &Shared<B>,
    lease: Arc<LeaseState>,
    started: Instant,
    extended: Extended,
) {
    if lease.released.load(crate::sync::Ordering::SeqCst) {
        return;
    }
    match extended {
        Extended::Yes => {
            // Counted from before the request: never later than the
            // backend's own expiry.
            *lock(&lease.expires) = started + shared.ttl;
            lease.set_last_error(None);
            put_back(shared, lease, started + every(shared.ttl));
        }
        Extended::Refused => lease.lose(LostReason::Refused),
        Extended::Failed(error) => {
            // Tried again soon; lost when the lease runs out.
            let retry = (shared.ttl / 10).max(Duration::from_millis(1));
            let at = (shared.rt.now() + retry).min(lease.expires());
            lease.set_last_error(Some(error));
            put_back(shared, lease, at);
        }
        Extended::Unanswered(left) => lease.lose(LostReason::Expired {
            last_error: Some(format!("no answer to an extension within {left:?}")),
        }),
    }
}
