//! What a group and its children share: the count of children still
//! running (and whether the group has closed), the cancellation, the list of
//! waiting children it reaches, and the failures, in the order they
//! happened.
//!
//! A child ending touches only the atomics (and, when it failed, the
//! failures): on a multi-thread runtime the group's thread spawning and the
//! workers ending children do not contend. No user code runs under any of
//! the locks: what goes in or out of them is moved, never dropped there, and
//! wakers are woken after they are released.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};

use super::{FailedTask, Policy};
use crate::exit::Cancel;
use crate::rt::{Incident, Runtime};
use crate::sync::{AtomicU8, AtomicUsize, AtomicWaker, Mutex, Ordering, lock};
use crate::util::{Panic, panic_message};

/// The state a group shares with its children.
pub(super) struct Shared<E> {
    pub(super) policy: Policy,
    /// Children spawned and not yet ended; [`CLOSED`] set once the group has
    /// closed (it is set only when no child is left, and from then on no
    /// child is counted).
    live: AtomicUsize,
    /// Why the group cancels its body and children. Read at every poll of
    /// every child.
    cancelled: Reason,
    /// The group's future, or its teardown cleanup, waiting.
    waiter: AtomicWaker,
    /// Every child that waits, to cancel them; touched by a child's first
    /// wait and by the one cancellation. Pruned as it grows.
    children: Mutex<Vec<Weak<dyn Cancellable>>>,
    /// The body's and the children's failures, in the order they happened.
    failures: Mutex<Vec<Failed<E>>>,
}

/// The bit of [`Shared::live`] that says the group has closed.
const CLOSED: usize = 1 << (usize::BITS - 1);

impl FailedTask {
    /// What failed, as an [`Incident::Unreturned`] names it.
    pub(super) fn work(&self) -> &'static str {
        match self {
            FailedTask::Body => "a task group's body",
            FailedTask::Child(_) => "a task group's child",
        }
    }

    /// `text` about this task, its name added for a named child: what an
    /// incident says of it.
    pub(super) fn tell(&self, text: String) -> String {
        match self {
            FailedTask::Child(Some(name)) => format!("{text} (in task `{name}`)"),
            _ => text,
        }
    }
}

/// One failure: an error, or a panic, and whose.
pub(super) struct Failed<E> {
    pub(super) by: FailedTask,
    pub(super) what: Result<E, Panic>,
}

/// Why something is cancelled, set once — the first reason wins. A code in
/// an atomic, read at every poll of a child; a requested cancellation's
/// text beside it, written before the code.
pub(super) struct Reason {
    code: AtomicU8,
    text: Mutex<&'static str>,
}

const REQUESTED: u8 = 5;

fn encode(reason: Cancel) -> u8 {
    match reason {
        Cancel::Dropped => 1,
        Cancel::Timeout => 2,
        Cancel::SiblingFailed => 3,
        Cancel::LockLost => 4,
        Cancel::Requested => REQUESTED,
    }
}

fn decode(code: u8) -> Option<Cancel> {
    match code {
        0 => None,
        1 => Some(Cancel::Dropped),
        2 => Some(Cancel::Timeout),
        3 => Some(Cancel::SiblingFailed),
        4 => Some(Cancel::LockLost),
        _ => Some(Cancel::Requested),
    }
}

impl Reason {
    pub(super) fn new() -> Self {
        Reason {
            code: AtomicU8::new(0),
            text: Mutex::new(""),
        }
    }

    /// Sets `reason` (with its text, for `Requested`), unless a reason is
    /// set: `true` if this one was.
    pub(super) fn set(&self, reason: Cancel, why: &'static str) -> bool {
        if self.code.load(Ordering::SeqCst) != 0 {
            return false;
        }
        let mut text = lock(&self.text);
        if self.code.load(Ordering::SeqCst) != 0 {
            return false;
        }
        if reason == Cancel::Requested {
            *text = why;
        }
        // Stored under the lock, after the text: whoever sees the code sees
        // the text.
        self.code.store(encode(reason), Ordering::SeqCst);
        true
    }

    /// The reason, once set.
    pub(super) fn get(&self) -> Option<Cancel> {
        decode(self.code.load(Ordering::SeqCst))
    }

    /// The text of a requested cancellation, once set.
    pub(super) fn text(&self) -> Option<&'static str> {
        (self.code.load(Ordering::SeqCst) == REQUESTED).then(|| *lock(&self.text))
    }
}

/// Why a child is cancelled, set once — the first reason wins: [`Reason`]'s
/// code without its text (a child is never given one). Kept small: a
/// child's shared state is freed by the worker that ends it, and glibc
/// frees a chunk of up to 128 bytes on another thread without the lock of
/// its arena.
pub(super) struct Code(AtomicU8);

impl Code {
    pub(super) fn new() -> Self {
        Code(AtomicU8::new(0))
    }

    /// Sets `reason` unless a reason is set: `true` if this one was.
    pub(super) fn set(&self, reason: Cancel) -> bool {
        self.0
            .compare_exchange(0, encode(reason), Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// The reason, once set.
    pub(super) fn get(&self) -> Option<Cancel> {
        decode(self.0.load(Ordering::SeqCst))
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
            cancelled: Reason::new(),
            waiter: AtomicWaker::new(),
            children: Mutex::new(Vec::new()),
            failures: Mutex::new(Vec::new()),
        }
    }

    /// Children spawned and not yet ended.
    pub(super) fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst) & !CLOSED
    }

    /// `true` once the group has closed: no child can be spawned any more.
    pub(super) fn is_closed(&self) -> bool {
        self.live.load(Ordering::SeqCst) & CLOSED != 0
    }

    pub(super) fn cancelled(&self) -> Option<Cancel> {
        self.cancelled.get()
    }

    /// The text a requested cancellation was given.
    pub(super) fn cancel_reason(&self) -> Option<&'static str> {
        self.cancelled.text()
    }

    /// Cancels the body and every child, for `reason`, unless already done.
    pub(super) fn cancel(&self, reason: Cancel) {
        self.cancel_because(reason, "");
    }

    /// As [`cancel`](Self::cancel), keeping `why` as the text of a
    /// requested cancellation.
    pub(super) fn cancel_because(&self, reason: Cancel, why: &'static str) {
        if !self.cancelled.set(reason, why) {
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

    /// Counts a child about to be spawned: `false`, and nothing counted,
    /// once the group has closed.
    pub(super) fn spawned(&self) -> bool {
        // Counted first, then looked at: the group closes only from a count
        // of 0, so either it sees this child, or this sees it closed.
        if self.live.fetch_add(1, Ordering::SeqCst) & CLOSED == 0 {
            return true;
        }
        self.live.fetch_sub(1, Ordering::SeqCst);
        false
    }

    /// The body or a child failed, now: recorded in order; fail-fast
    /// cancels the rest.
    pub(super) fn failed(&self, by: FailedTask, what: Result<E, Panic>) {
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

    /// Closes the group if no child is left (or it has closed): `true` if
    /// it is closed now.
    pub(super) fn try_close(&self) -> bool {
        match self
            .live
            .compare_exchange(0, CLOSED, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => true,
            Err(live) => live & CLOSED != 0,
        }
    }

    /// Closes the group now, children left or not (its teardown was
    /// dropped: nobody waits for them any more).
    pub(super) fn close_now(&self) {
        self.live.fetch_or(CLOSED, Ordering::SeqCst);
    }

    /// Waits until every child has ended, then closes the group: a child
    /// that spawns a sibling as it ends still has it counted.
    pub(super) fn poll_close(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.try_close() {
            return Poll::Ready(());
        }
        self.register(cx.waker());
        // Registered before this second look: the last child ending in
        // between still wakes it.
        if self.try_close() {
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
            rt.report(Incident::Unreturned {
                work,
                failure: by.tell(failure),
            });
            // Dropping an error, or a panic's payload, is user code too.
            if let Some(panic) = drop_caught(what) {
                rt.report(Incident::Unreturned {
                    work,
                    failure: by.tell(panic_message(&panic)),
                });
                if let Some(again) = discard(panic) {
                    rt.report(Incident::Unreturned {
                        work,
                        failure: by.tell(again),
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

    use super::{FailedTask, Policy, Shared};

    /// Two children end at once while the group waits: `live` reaches 0
    /// exactly when the last one ends, and that wakes the group, which then
    /// sees both failures.
    #[test]
    fn last_child_end_wakes_the_group() {
        crate::sync::model(|| {
            let shared = Arc::new(Shared::<u32>::new(Policy::CollectAll));
            assert!(shared.spawned());
            assert!(shared.spawned());
            let ends: Vec<_> = [1, 2]
                .map(|error| {
                    let shared = Arc::clone(&shared);
                    loom::thread::spawn(move || {
                        shared.failed(FailedTask::Child(None), Ok(error));
                        shared.child_ended();
                    })
                })
                .into_iter()
                .collect();
            loom::future::block_on(poll_fn(|cx| shared.poll_close(cx)));
            assert_eq!(shared.live(), 0);
            assert!(shared.is_closed());
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

    /// A spawner outside the group spawns while the group closes: either
    /// the spawn is counted and the group waits until that child has ended,
    /// or the spawn sees the group closed and runs nothing — no child runs
    /// after its group has returned.
    #[test]
    fn spawn_races_the_close() {
        crate::sync::model(|| {
            let shared = Arc::new(Shared::<u32>::new(Policy::FailFast));
            let child_ended = Arc::new(loom::sync::atomic::AtomicBool::new(false));
            let spawner = {
                let (shared, child_ended) = (Arc::clone(&shared), Arc::clone(&child_ended));
                loom::thread::spawn(move || {
                    let spawned = shared.spawned();
                    if spawned {
                        child_ended.store(true, loom::sync::atomic::Ordering::SeqCst);
                        shared.child_ended();
                    }
                    spawned
                })
            };
            loom::future::block_on(poll_fn(|cx| shared.poll_close(cx)));
            let ended = child_ended.load(loom::sync::atomic::Ordering::SeqCst);
            let spawned = spawner.join().unwrap();
            assert!(!spawned || ended, "a child ran after the group closed");
            assert!(shared.is_closed());
            assert_eq!(shared.live(), 0);
        });
    }
}
