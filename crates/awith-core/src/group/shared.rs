//! What a group and its children share: the count of children still
//! running, the cancellation, the list of waiting children it reaches, and
//! the failures, in the order they happened.
//!
//! A child ending touches only the atomics (and, when it failed, the
//! failures): on a multi-thread runtime the group's thread spawning and the
//! workers ending children do not contend. No user code runs under either
//! lock: what goes in or out of them is moved, never dropped there, and
//! wakers are woken after they are released.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};

use super::Policy;
use crate::exit::Cancel;
use crate::rt::{Incident, Runtime};
use crate::sync::{AtomicU8, AtomicUsize, AtomicWaker, Mutex, Ordering, lock};
use crate::util::{Panic, panic_message};

/// The state a group shares with its children.
pub(super) struct Shared<E> {
    pub(super) policy: Policy,
    /// Children spawned and not yet ended.
    live: AtomicUsize,
    /// Why the group cancels its body and children: 0 for not yet, else
    /// [`encode`]d. Read at every poll of every child.
    cancelled: AtomicU8,
    /// The group's future, or its teardown cleanup, waiting.
    waiter: AtomicWaker,
    /// Every child that waits, to cancel them; touched by a child's first
    /// wait and by the one cancellation. Pruned as it grows.
    children: Mutex<Vec<Weak<dyn Cancellable>>>,
    /// The body's and the children's failures, in the order they happened.
    failures: Mutex<Vec<Failed<E>>>,
}

/// Whose code failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Origin {
    Body,
    Child,
}

impl Origin {
    /// What failed, as an [`Incident::Unreturned`] names it.
    pub(super) fn work(self) -> &'static str {
        match self {
            Origin::Body => "a task group's body",
            Origin::Child => "a task group's child",
        }
    }
}

/// One failure: an error, or a panic.
pub(super) struct Failed<E> {
    pub(super) by: Origin,
    pub(super) what: Result<E, Panic>,
}

pub(super) fn encode(reason: Cancel) -> u8 {
    match reason {
        Cancel::Dropped => 1,
        Cancel::Timeout => 2,
        Cancel::SiblingFailed => 3,
        Cancel::LockLost => 4,
    }
}

pub(super) fn decode(code: u8) -> Option<Cancel> {
    match code {
        1 => Some(Cancel::Dropped),
        2 => Some(Cancel::Timeout),
        3 => Some(Cancel::SiblingFailed),
        4 => Some(Cancel::LockLost),
        _ => None,
    }
}

/// A child the group can cancel.
pub(super) trait Cancellable: Send + Sync {
    fn cancel(&self, reason: Cancel);
}

impl<E> Shared<E> {
    pub(super) fn new(policy: Policy) -> Self {
        Shared {
            policy,
            live: AtomicUsize::new(0),
            cancelled: AtomicU8::new(0),
            waiter: AtomicWaker::new(),
            children: Mutex::new(Vec::new()),
            failures: Mutex::new(Vec::new()),
        }
    }

    /// Children spawned and not yet ended.
    pub(super) fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    pub(super) fn cancelled(&self) -> Option<Cancel> {
        decode(self.cancelled.load(Ordering::SeqCst))
    }

    /// Cancels the body and every child, for `reason`, unless already done.
    pub(super) fn cancel(&self, reason: Cancel) {
        if self
            .cancelled
            .compare_exchange(0, encode(reason), Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return;
        }
        let children: Vec<_> = lock(&self.children)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        // Woken with the lock released.
        for child in &children {
            child.cancel(reason);
        }
        self.waiter.wake();
    }

    /// Lists a child that waits, for [`cancel`](Self::cancel) to reach.
    /// `true` when the group is cancelled by now: the child looks again
    /// (either the cancellation sees it listed, or it sees the cancellation
    /// here).
    pub(super) fn list(&self, child: &Arc<dyn Cancellable>) -> bool {
        {
            let mut children = lock(&self.children);
            // Amortized pruning of the children that have ended (dropping a
            // `Weak` runs no user code).
            if children.len() >= 64 && children.len().is_power_of_two() {
                children.retain(|child| child.strong_count() > 0);
            }
            children.push(Arc::downgrade(child));
        }
        self.cancelled().is_some()
    }

    /// How many children are listed (pruning leaves only waiting ones).
    #[cfg(all(test, not(loom)))]
    pub(super) fn listed(&self) -> usize {
        lock(&self.children).len()
    }

    /// A child is spawned.
    pub(super) fn spawned(&self) {
        self.live.fetch_add(1, Ordering::SeqCst);
    }

    /// The body or a child failed, now: recorded in order; fail-fast
    /// cancels the rest.
    pub(super) fn failed(&self, by: Origin, what: Result<E, Panic>) {
        lock(&self.failures).push(Failed { by, what });
        if self.policy == Policy::FailFast {
            self.cancel(Cancel::SiblingFailed);
        }
    }

    /// A child ended (its failures, if any, already recorded); the last one
    /// wakes the group.
    pub(super) fn child_ended(&self) {
        if self.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.waiter.wake();
        }
    }

    /// Wakes `waker` when the group is cancelled or its last child ends.
    pub(super) fn register(&self, waker: &Waker) {
        self.waiter.register(waker);
    }

    /// Waits until every child has ended.
    pub(super) fn poll_children(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.live() == 0 {
            return Poll::Ready(());
        }
        self.register(cx.waker());
        // Registered before this second look: the last child ending in
        // between still wakes it.
        if self.live() == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// The failures so far, in the order they happened.
    pub(super) fn take_failures(&self) -> Vec<Failed<E>> {
        std::mem::take(&mut *lock(&self.failures))
    }
}

impl<E: fmt::Debug> Shared<E> {
    /// Reports every failure recorded as [`Incident::Unreturned`]: the
    /// group's caller has gone, nobody is left to return them to.
    pub(super) fn report_unreturned(&self, rt: &Runtime) {
        for Failed { by, what } in self.take_failures() {
            let failure = match &what {
                Ok(error) => describe(error),
                Err(panic) => panic_message(panic),
            };
            let work = by.work();
            rt.report(Incident::Unreturned { work, failure });
            // Dropping an error, or a panic's payload, is user code too.
            if let Some(panic) = drop_caught(what) {
                rt.report(Incident::Unreturned {
                    work,
                    failure: panic_message(&panic),
                });
                if let Some(again) = discard(panic) {
                    rt.report(Incident::Unreturned {
                        work,
                        failure: again,
                    });
                }
            }
        }
    }
}

/// A user error, formatted with `Debug` (user code: a panic in it is caught
/// and described instead).
pub(super) fn describe<E: fmt::Debug>(error: &E) -> String {
    catch_unwind(AssertUnwindSafe(|| format!("{error:?}"))).unwrap_or_else(|panic| {
        let message = panic_message(&panic);
        match discard(panic) {
            None => format!("<its Debug panicked: {message}>"),
            Some(again) => {
                format!("<its Debug panicked: {message}; dropping that panic panicked: {again}>")
            }
        }
    })
}

/// Drops a user value (its drop is user code); the panic of that drop, if
/// it panicked.
pub(super) fn drop_caught<T>(value: T) -> Option<Panic> {
    catch_unwind(AssertUnwindSafe(move || drop(value))).err()
}

/// Drops a panic's payload once the panic has been reported (a payload is
/// a user value: its drop may panic too). If it does, the message of that
/// second panic, for the caller to report; its own payload is leaked rather
/// than risk a third.
#[must_use = "a panic while dropping the payload is to be reported"]
pub(super) fn discard(panic: Panic) -> Option<String> {
    drop_caught(panic).map(|again| {
        let message = panic_message(&again);
        std::mem::forget(again);
        message
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::{Cancellable, Policy, Shared};
    use crate::exit::Cancel;

    /// Counts the cancellations that reach it.
    struct Reached(AtomicUsize);

    impl Cancellable for Reached {
        fn cancel(&self, _: Cancel) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The list of waiting children stays bounded by the children alive, as
    /// short-lived children come and go, and every live one stays listed: a
    /// cancellation reaches each exactly once.
    #[test]
    fn pruning_keeps_the_live_and_bounds_the_list() {
        let shared = Shared::<()>::new(Policy::FailFast);
        let mut live = Vec::new();
        for n in 0..10_000 {
            let child = Arc::new(Reached(AtomicUsize::new(0)));
            let entry: Arc<dyn Cancellable> = child.clone();
            assert!(!shared.list(&entry));
            if n % 100 == 0 {
                live.push(child);
            }
        }
        assert_eq!(live.len(), 100);
        assert!(shared.listed() <= 256, "{} listed", shared.listed());
        shared.cancel(Cancel::Dropped);
        assert!(
            live.iter().all(|child| child.0.load(Ordering::SeqCst) == 1),
            "every live child was reached once"
        );
    }
}

/// Model checks of the group's accounting (`ci/loom.sh`): the group never
/// misses the end of its last child, however the ends interleave with its
/// polls.
#[cfg(all(test, loom))]
#[allow(clippy::unwrap_used)]
mod loom_tests {
    use std::future::poll_fn;
    use std::sync::Arc;

    use super::{Origin, Policy, Shared};

    /// Two children end at once while the group waits: `live` reaches 0
    /// exactly when the last one ends, and that wakes the group, which then
    /// sees both failures.
    #[test]
    fn last_child_end_wakes_the_group() {
        crate::sync::model(|| {
            let shared = Arc::new(Shared::<u32>::new(Policy::CollectAll));
            shared.spawned();
            shared.spawned();
            let ends: Vec<_> = [1, 2]
                .map(|error| {
                    let shared = Arc::clone(&shared);
                    loom::thread::spawn(move || {
                        shared.failed(Origin::Child, Ok(error));
                        shared.child_ended();
                    })
                })
                .into_iter()
                .collect();
            loom::future::block_on(poll_fn(|cx| shared.poll_children(cx)));
            assert_eq!(shared.live(), 0);
            let mut errors: Vec<_> = shared
                .take_failures()
                .into_iter()
                .map(|failed| failed.what.ok().unwrap())
                .collect();
            errors.sort_unstable();
            assert_eq!(errors, [1, 2]);
            for end in ends {
                end.join().unwrap();
            }
        });
    }
}
