//! The pool's state behind its one lock — slots, idle objects, the queue of
//! waiting checkouts — and [`Take`], a checkout waiting for its slot.
//!
//! Nothing in here awaits, and nothing runs user code: every method hands
//! back what must happen after the lock is released (wakers to wake,
//! objects to destroy), and the callers do it then.

use std::collections::VecDeque;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures::future::AbortHandle;

use super::error::{PoolError, TimeoutKind};
use super::{Inner, Manager, ObjectMetrics};
use crate::error::Failure;

/// An object at rest, with what the pool knows of it.
pub(super) struct Idle<T> {
    pub(super) object: T,
    pub(super) metrics: ObjectMetrics,
}

/// What a waiting checkout is handed.
pub(super) enum Grant<T> {
    /// An object (counted in use).
    Object(Idle<T>),
    /// A slot to create an object in.
    Slot,
}

/// A waiting checkout's entry in the pool's table of waiters.
pub(super) enum Parked<T> {
    /// Free for the next waiter.
    Vacant,
    /// In the queue, until its deadline if it has one.
    Waiting {
        waker: Waker,
        deadline: Option<Instant>,
    },
    /// Handed something, not yet taken.
    Granted(Grant<T>),
    /// The pool closed while it waited (or before it took what it had been
    /// handed).
    Closed,
    /// Its deadline passed.
    TimedOut,
}

/// Everything mutable, behind one lock; nothing awaits or runs user code
/// while holding it.
pub(super) struct State<T> {
    pub(super) max_size: usize,
    pub(super) min_idle: usize,
    /// Objects in existence, being created, or being destroyed, plus slots
    /// granted and not yet taken up: never above `max_size`, except after a
    /// shrinking resize until enough come back.
    pub(super) slots: usize,
    pub(super) in_use: usize,
    /// Most recently returned last: reused first, so the rest can expire.
    pub(super) idle: Vec<Idle<T>>,
    /// Waiting checkouts (slots of `parked`), first in first.
    pub(super) queue: VecDeque<usize>,
    /// The waiters' entries, reused: a wait allocates nothing once the
    /// table has grown to the most waiters at once.
    pub(super) parked: Vec<Parked<T>>,
    vacant: Vec<usize>,
    pub(super) closed: bool,
    /// Each waiting close's waker, under its own number: a close updates
    /// its entry in place and removes it when it ends or is dropped.
    pub(super) closers: Vec<(u64, Waker)>,
    /// The top-ups to `min_idle` in flight (each holds a slot), under their
    /// numbers: what `close` and the pool's drop abort.
    pub(super) top_ups: Vec<(u64, AbortHandle)>,
    /// Numbers closers and top-ups.
    next_id: u64,
    pub(super) created: u64,
    pub(super) destroyed: u64,
    /// When the pool's task wakes next on its own, if it has a deadline: a
    /// new waiter whose deadline is no earlier needs no poke (the task then
    /// times the queue's head anew), so a busy queue re-arms the timer about
    /// once per wait timeout instead of at every waiter.
    pub(super) timer_at: Option<Instant>,
}

impl<T> State<T> {
    pub(super) fn new(max_size: usize, min_idle: usize) -> Self {
        State {
            max_size,
            min_idle,
            slots: 0,
            in_use: 0,
            idle: Vec::new(),
            queue: VecDeque::new(),
            parked: Vec::new(),
            vacant: Vec::new(),
            closed: false,
            closers: Vec::new(),
            top_ups: Vec::new(),
            next_id: 0,
            created: 0,
            destroyed: 0,
            timer_at: None,
        }
    }

    /// A fresh number for a closer or a top-up.
    pub(super) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

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
    pub(super) fn expire_waiters(&mut self, now: Instant) -> Vec<Waker> {
        let mut wakers = Vec::new();
        while self.head_deadline().is_some_and(|deadline| deadline <= now) {
            if let Some(at) = self.queue.pop_front() {
                if let Parked::Waiting { waker, .. } =
                    mem::replace(&mut self.parked[at], Parked::TimedOut)
                {
                    wakers.push(waker);
                }
            }
        }
        wakers
    }

    /// The deadline of the first waiter: the earliest (all wait as long).
    pub(super) fn head_deadline(&self) -> Option<Instant> {
        let &at = self.queue.front()?;
        match &self.parked[at] {
            Parked::Waiting { deadline, .. } => *deadline,
            _ => unreachable!("only waiting checkouts are queued"),
        }
    }

    /// Frees a waiter's entry; what was in it.
    fn unpark(&mut self, at: usize) -> Parked<T> {
        self.vacant.push(at);
        mem::replace(&mut self.parked[at], Parked::Vacant)
    }

    /// Hands `grant` to the first waiting checkout: the waker to wake
    /// (after unlocking). With nobody waiting, an object goes idle and a
    /// slot is freed.
    pub(super) fn grant(&mut self, grant: Grant<T>) -> Option<Waker> {
        if let Some(at) = self.queue.pop_front() {
            let Parked::Waiting { waker, .. } =
                mem::replace(&mut self.parked[at], Parked::Granted(grant))
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
    pub(super) fn free_slot(&mut self) -> Vec<Waker> {
        if !self.closed && self.slots <= self.max_size && !self.queue.is_empty() {
            return self.grant(Grant::Slot).into_iter().collect();
        }
        self.slots -= 1;
        self.all_back()
    }

    /// The closers' wakers, if the pool is closed and every slot is free.
    fn all_back(&mut self) -> Vec<Waker> {
        if self.closed && self.slots == 0 {
            mem::take(&mut self.closers)
                .into_iter()
                .map(|(_, waker)| waker)
                .collect()
        } else {
            Vec::new()
        }
    }

    /// An object comes back (counted in use): to the first waiter, or idle
    /// — unless the pool is closed or over its size, or `expired`; then it
    /// is counted destroyed and handed back, to destroy.
    pub(super) fn put_back(&mut self, idle: Idle<T>, expired: bool) -> Kept<T> {
        if self.closed || self.slots > self.max_size || expired {
            self.in_use -= 1;
            self.destroyed += 1;
            return Kept::Refused(idle);
        }
        Kept::Kept(self.grant(Grant::Object(idle)))
    }

    /// Closes: fails the waiting checkouts and takes back what was handed to
    /// checkouts that have not taken it yet; the wakers to wake, and the
    /// objects to destroy (counted destroyed), the idle ones among them.
    pub(super) fn close(&mut self) -> (Vec<Waker>, Vec<Idle<T>>) {
        self.closed = true;
        let mut wakers = Vec::new();
        while let Some(at) = self.queue.pop_front() {
            if let Parked::Waiting { waker, .. } =
                mem::replace(&mut self.parked[at], Parked::Closed)
            {
                wakers.push(waker);
            }
        }
        let mut refused = mem::take(&mut self.idle);
        for at in 0..self.parked.len() {
            if !matches!(self.parked[at], Parked::Granted(_)) {
                continue;
            }
            // Its waker was woken when it was handed the grant.
            match mem::replace(&mut self.parked[at], Parked::Closed) {
                Parked::Granted(Grant::Slot) => self.slots -= 1,
                Parked::Granted(Grant::Object(idle)) => {
                    self.in_use -= 1;
                    refused.push(idle);
                }
                _ => unreachable!("checked above"),
            }
        }
        self.destroyed += refused.len() as u64;
        wakers.extend(self.all_back());
        (wakers, refused)
    }
}

/// What [`State::put_back`] did with an object.
pub(super) enum Kept<T> {
    /// Kept, maybe handed to a waiter to wake.
    Kept(Option<Waker>),
    /// Not kept: to destroy.
    Refused(Idle<T>),
}

/// A checkout taking a slot: on its first poll, an idle object or a new
/// slot if one is free and nobody waits, else a place in the queue; then,
/// until something is handed to it, its entry in the table of waiters.
/// Dropped after something was handed to it, it passes that on.
pub(super) struct Take<'a, M: Manager> {
    inner: &'a Arc<Inner<M>>,
    started: bool,
    /// Its entry while it waits.
    at: Option<usize>,
}

impl<'a, M: Manager> Take<'a, M> {
    pub(super) fn new(inner: &'a Arc<Inner<M>>) -> Self {
        Take {
            inner,
            started: false,
            at: None,
        }
    }
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
                if waker.will_wake(cx.waker()) {
                    return Poll::Pending;
                }
                // The old waker is dropped after the lock.
                let stale = mem::replace(waker, cx.waker().clone());
                drop(state);
                drop(stale);
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
        let inner = self.inner;
        let mut state = inner.lock();
        let (wakers, refused) = match state.unpark(at) {
            Parked::Waiting { waker, .. } => {
                // Still queued: leave the queue.
                if let Some(place) = state.queue.iter().position(|queued| *queued == at) {
                    state.queue.remove(place);
                }
                drop(state);
                drop(waker);
                return;
            }
            // Handed something, and dropped before taking it: pass it on.
            Parked::Granted(Grant::Slot) => (state.free_slot(), None),
            Parked::Granted(Grant::Object(idle)) => match state.put_back(idle, false) {
                Kept::Kept(waker) => (waker.into_iter().collect(), None),
                Kept::Refused(idle) => (Vec::new(), Some(idle)),
            },
            Parked::Closed | Parked::TimedOut | Parked::Vacant => return,
        };
        drop(state);
        wakers.into_iter().for_each(Waker::wake);
        if let Some(idle) = refused {
            inner.dispose(idle.object, None);
        }
    }
}

/// Model checks of the waiter hand-off (`ci/loom.sh`): whatever the
/// interleaving, a grant reaches a waiter or goes back, a slot freed while a
/// waiter arrives is not lost, and a close racing a grant neither hangs nor
/// lets a body start after it began. The state machine runs without a
/// runtime: the models drive [`Take`] and the state directly, on a runtime
/// whose spawns are loom threads and whose timers never fire.
#[cfg(all(test, loom))]
#[allow(clippy::unwrap_used)]
mod loom_tests {
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};
    use std::time::{Duration, Instant};

    use futures::task::noop_waker;

    use super::{Grant, Idle, Kept, Parked, Take};
    use crate::pool::{Inner, Numbers, ObjectMetrics, Pool};
    use crate::rt::Runtime;
    use crate::sync::{LoomBinding, Mutex, Ordering, lock};

    /// A pool of one slot (no task: no timeouts, no maintenance), that
    /// slot taken by a checkout the model plays.
    fn pool_of_one() -> (Pool<Numbers>, Arc<Inner<Numbers>>) {
        let rt = Runtime::builder(LoomBinding).build().unwrap();
        let pool = Pool::builder(Numbers).max_size(1).build(&rt).unwrap();
        let inner = Arc::clone(&pool.inner);
        let taken = loom::future::block_on(Take::new(&inner));
        assert!(matches!(taken, Ok(Grant::Slot)));
        (pool, inner)
    }

    /// That checkout's object, created and in use.
    fn created(inner: &Inner<Numbers>) -> Idle<u32> {
        let mut state = inner.lock();
        state.created += 1;
        state.in_use += 1;
        Idle {
            object: 7,
            metrics: ObjectMetrics::new(Instant::now()),
        }
    }

    /// An object in use goes back, as a completed checkout's does.
    fn give_back(inner: &Inner<Numbers>, idle: Idle<u32>) {
        let kept = inner.lock().put_back(idle, false);
        match kept {
            Kept::Kept(waker) => waker.into_iter().for_each(std::task::Waker::wake),
            Kept::Refused(_) => unreachable!("the pool is open"),
        }
    }

    /// No waiter left behind, no entry in use.
    fn settled(inner: &Inner<Numbers>) {
        let state = inner.lock();
        assert!(state.queue.is_empty());
        assert!(state.parked.iter().all(|p| matches!(p, Parked::Vacant)));
    }

    /// A waiter dropped while the object is handed to it concurrently: the
    /// object reaches the next waiter, whichever came first.
    #[test]
    fn dropped_waiter_passes_its_grant_on() {
        crate::sync::model(|| {
            let (_pool, inner) = pool_of_one();
            let object = created(&inner);
            let dropped = {
                let inner = Arc::clone(&inner);
                loom::thread::spawn(move || {
                    let mut take = Box::pin(Take::new(&inner));
                    let waker = noop_waker();
                    if let Poll::Ready(Ok(Grant::Object(idle))) =
                        take.as_mut().poll(&mut Context::from_waker(&waker))
                    {
                        // Took it at once: back it goes.
                        give_back(&inner, idle);
                    }
                })
            };
            let back = {
                let inner = Arc::clone(&inner);
                loom::thread::spawn(move || give_back(&inner, object))
            };
            let got = loom::future::block_on(Take::new(&inner));
            assert!(matches!(got, Ok(Grant::Object(_))));
            dropped.join().unwrap();
            back.join().unwrap();
            settled(&inner);
            let state = inner.lock();
            assert_eq!((state.slots, state.in_use, state.idle.len()), (1, 1, 0));
        });
    }

    /// A slot freed (a failed creation) while a new checkout arrives: the
    /// checkout gets it, at once or from the queue.
    #[test]
    fn free_slot_races_a_new_waiter() {
        crate::sync::model(|| {
            let (_pool, inner) = pool_of_one();
            let freer = {
                let inner = Arc::clone(&inner);
                loom::thread::spawn(move || inner.free_slot())
            };
            let got = loom::future::block_on(Take::new(&inner));
            assert!(matches!(got, Ok(Grant::Slot)));
            freer.join().unwrap();
            settled(&inner);
            assert_eq!(inner.lock().slots, 1);
        });
    }

    /// A close racing a slot handed to a waiter: the close ends (every slot
    /// free), the waiter either is refused or had its slot before the close
    /// began, and no slot is left taken.
    #[test]
    fn close_races_a_grant() {
        crate::sync::model(|| {
            let (pool, inner) = pool_of_one();
            let used = Arc::new(Mutex::new(None));
            let waiter = {
                let (inner, used) = (Arc::clone(&inner), Arc::clone(&used));
                loom::thread::spawn(move || {
                    let got = loom::future::block_on(Take::new(&inner));
                    match got {
                        // As a checkout's hand-out: refused once closed;
                        // else its body runs, then the slot is freed.
                        Ok(Grant::Slot) => {
                            let refused = inner.closed.load(Ordering::Acquire);
                            *lock(&used) = Some(!refused);
                            inner.free_slot();
                        }
                        Ok(Grant::Object(_)) => unreachable!("no object exists"),
                        Err(_) => *lock(&used) = Some(false),
                    }
                })
            };
            // The holder's creation fails: its slot goes to the waiter, or
            // back.
            let holder = {
                let inner = Arc::clone(&inner);
                loom::thread::spawn(move || inner.free_slot())
            };
            let closed = loom::future::block_on(pool.close(Duration::from_secs(1)));
            assert!(closed.is_ok());
            // A body that ran had ended before the close did.
            let at_close = *lock(&used);
            waiter.join().unwrap();
            holder.join().unwrap();
            let outcome = *lock(&used);
            assert!(outcome.is_some());
            assert!(outcome != Some(true) || at_close == Some(true));
            settled(&inner);
            assert_eq!(inner.lock().slots, 0);
            // A checkout after the close is refused.
            let mut late = pin!(Take::new(&inner));
            let waker = noop_waker();
            assert!(matches!(
                late.as_mut().poll(&mut Context::from_waker(&waker)),
                Poll::Ready(Err(_))
            ));
        });
    }
}
