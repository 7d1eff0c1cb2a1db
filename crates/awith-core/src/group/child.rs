//! A child: what it shares with its handle ([`Child`]), and its task
//! ([`ChildTask`]), which runs its future until it ends or its group
//! cancels it.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::shared::{Cancellable, Code, Shared, drop_caught};
use super::start::StartHook;
use super::{FailedTask, Joined};
use crate::exit::Cancel;
use crate::nest::CleanupDone;
use crate::sync::{AtomicBool, AtomicWaker, Mutex, Ordering, lock};
use crate::time::cancelling;
use crate::util::{CatchUnwind, Panic};

/// Where a child's outcome is, for its handle.
pub(super) enum Outcome<T> {
    /// The child has not ended.
    Running,
    /// It ended; the handle has not taken the outcome yet.
    Ended(Result<T, Joined>),
    /// It ended, and the handle took the outcome (or was dropped).
    Taken,
}

/// What a child and its handle share.
pub(super) struct Child<T> {
    /// The name it was spawned with, if any.
    pub(super) name: Option<Arc<str>>,
    /// Why it is cancelled. Read at every poll of the child.
    cancel: Code,
    outcome: Mutex<Outcome<T>>,
    /// The handle was dropped: nobody can claim the outcome.
    detached: AtomicBool,
    /// The child's task, waiting to be cancelled.
    task: AtomicWaker,
    /// The handle, waiting for the outcome.
    handle: AtomicWaker,
}

impl<T> Child<T> {
    pub(super) fn new(name: Option<Arc<str>>) -> Self {
        Child {
            name,
            cancel: Code::new(),
            outcome: Mutex::new(Outcome::Running),
            detached: AtomicBool::new(false),
            task: AtomicWaker::new(),
            handle: AtomicWaker::new(),
        }
    }

    /// Why the child must stop before its next poll — its own cancellation
    /// or its group's.
    pub(super) fn check<E>(&self, shared: &Shared<E>) -> Option<Cancel> {
        self.cancel.get().or_else(|| shared.cancelled())
    }

    /// The child waits: registers `waker` for a cancellation to wake, then
    /// looks again — `true` if it is cancelled by now (either the
    /// cancellation sees the waker, or this sees the cancellation). Only a
    /// child that waits registers: one that ends at its first poll never
    /// clones a waker.
    pub(super) fn wait<E>(&self, shared: &Shared<E>, waker: &Waker) -> bool {
        self.task.register(waker);
        self.check(shared).is_some()
    }

    /// Hands the outcome to the handle. When the handle is gone, gives it
    /// back: nobody can claim it, and the caller drops it (its drop is user
    /// code) with no lock held.
    pub(super) fn finish(&self, outcome: Result<T, Joined>) -> Option<Result<T, Joined>> {
        if self.detached.load(Ordering::SeqCst) {
            return Some(outcome);
        }
        // Replaces `Running`: nothing of the user's is dropped under the lock.
        *lock(&self.outcome) = Outcome::Ended(outcome);
        if self.detached.load(Ordering::SeqCst) {
            // The handle was dropped meanwhile, perhaps before the outcome
            // was there to take: take it back, unless the handle took it.
            let left = std::mem::replace(&mut *lock(&self.outcome), Outcome::Taken);
            return match left {
                Outcome::Ended(outcome) => Some(outcome),
                Outcome::Running | Outcome::Taken => None,
            };
        }
        self.handle.wake();
        None
    }

    /// `true` once the child has ended.
    pub(super) fn is_finished(&self) -> bool {
        !matches!(*lock(&self.outcome), Outcome::Running)
    }

    /// The handle's poll: the outcome once, then `Err(Joined::Taken)`.
    pub(super) fn take(&self, waker: &Waker) -> Poll<Result<T, Joined>> {
        // Registered before the look: an outcome stored in between still
        // wakes the handle.
        self.handle.register(waker);
        let mut outcome = lock(&self.outcome);
        match std::mem::replace(&mut *outcome, Outcome::Taken) {
            Outcome::Running => {
                *outcome = Outcome::Running;
                Poll::Pending
            }
            Outcome::Ended(ended) => Poll::Ready(ended),
            Outcome::Taken => Poll::Ready(Err(Joined::Taken)),
        }
    }

    /// The handle is dropped: nobody can claim the outcome. Returns what was
    /// kept for it, for the caller to drop with no lock held.
    pub(super) fn detach(&self) -> Outcome<T> {
        self.detached.store(true, Ordering::SeqCst);
        std::mem::replace(&mut *lock(&self.outcome), Outcome::Taken)
    }
}

impl<T: Send> Cancellable for Child<T> {
    fn cancel(&self, reason: Cancel) {
        // The first reason wins.
        if self.cancel.set(reason) {
            self.task.wake();
        }
    }
}

/// A child's task's link to its group and its handle: ends the child, once —
/// when its task ends, or when the runtime drops the task unfinished or
/// refuses it ([`ChildTask`]'s drop).
pub(super) struct ChildLink<T, E> {
    shared: Arc<Shared<E>>,
    child: Arc<Child<T>>,
    /// The start waiting for the child to report, for a started child.
    start: Option<Arc<dyn StartHook<E>>>,
    ended: bool,
}

impl<T, E> ChildLink<T, E> {
    pub(super) fn new(
        shared: Arc<Shared<E>>,
        child: Arc<Child<T>>,
        start: Option<Arc<dyn StartHook<E>>>,
    ) -> Self {
        ChildLink {
            shared,
            child,
            start,
            ended: false,
        }
    }

    /// The child failed, now. An error before it reported that it started
    /// is the start's, if the start still waits; everything else is the
    /// group's.
    fn failed(&self, what: Result<E, Panic>) {
        let what = match (&self.start, what) {
            (Some(start), Ok(error)) => match start.claim(error) {
                Ok(()) => return,
                Err(error) => Ok(error),
            },
            (Some(start), Err(panic)) => {
                start.panicked(&panic);
                Err(panic)
            }
            (None, what) => what,
        };
        self.shared
            .failed(FailedTask::Child(self.child.name.clone()), what);
    }

    /// The child ended (its failures, if any, already recorded): its
    /// outcome goes to the handle, a start still waiting is told, then the
    /// group counts it ended.
    fn end(&mut self, outcome: Result<T, Joined>) {
        self.ended = true;
        let joined = outcome.as_ref().err().copied();
        let outcome = match &self.start {
            // The start waited, and fails now: it drops the handle, and the
            // value goes nowhere — dropped here, as part of the child.
            Some(start) if start.ended(joined) => {
                if let Some(panic) = drop_caught(outcome) {
                    self.failed(Err(panic));
                }
                Err(joined.unwrap_or(Joined::Taken))
            }
            _ => outcome,
        };
        if let Some(unclaimed) = self.child.finish(outcome) {
            // Nobody can claim it: dropped here, as part of the child.
            if let Some(panic) = drop_caught(unclaimed) {
                self.failed(Err(panic));
            }
        }
        self.shared.child_ended();
    }
}

/// The task of one child: runs it until it ends or the group cancels it;
/// cleanups its cancellation starts (scopes inside it) end before it counts
/// as ended.
///
/// Written out rather than an `async fn`: the runtime frees it on the worker
/// that ran it, and a small task is cheaper to free there: glibc frees
/// chunks of up to 128 bytes without taking the lock of the arena they came
/// from.
#[pin_project::pin_project(PinnedDrop)]
pub(super) struct ChildTask<T, E, F> {
    /// `None` once it has ended or been cancelled.
    #[pin]
    future: Option<CatchUnwind<F>>,
    /// Listed with the group, for it to cancel (only once it waits).
    listed: bool,
    /// Cleanups started while it ran or was dropped.
    started: Vec<CleanupDone>,
    /// How it ended, while the cleanups it started end.
    ended: Option<Result<T, Joined>>,
    link: ChildLink<T, E>,
}

impl<T, E, F> ChildTask<T, E, F> {
    pub(super) fn new(link: ChildLink<T, E>, child: F) -> Self {
        ChildTask {
            future: Some(CatchUnwind::new(child)),
            listed: false,
            started: Vec::new(),
            ended: None,
            link,
        }
    }
}

impl<T, E, F> Future for ChildTask<T, E, F>
where
    T: Send + 'static,
    F: Future<Output = Result<T, E>>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let link = this.link;
        if this.ended.is_none() {
            let linked = &*link;
            let (child, shared) = (&linked.child, &*linked.shared);
            let mut future = this.future;
            let listed = this.listed;
            let polled = crate::nest::collecting(this.started, || {
                // Never polled once cancelled: dropped, told why.
                if let Some(reason) = child.check(shared) {
                    let dropped = cancelling(reason, || drop_future(future));
                    return Poll::Ready(match dropped {
                        None => Err(Joined::Cancelled(reason)),
                        Some(panic) => {
                            linked.failed(Err(panic));
                            Err(Joined::Panicked)
                        }
                    });
                }
                let Some(running) = future.as_mut().as_pin_mut() else {
                    unreachable!("a child is polled until it ends")
                };
                match running.poll(cx) {
                    Poll::Pending => {
                        // Only a child that waits is listed for the group to
                        // cancel; one that ends at its first poll never is.
                        let mut cancelled = false;
                        if !*listed {
                            *listed = true;
                            let entry: Arc<dyn Cancellable> = child.clone();
                            cancelled = shared.list(&entry);
                        }
                        if child.wait(shared, cx.waker()) || cancelled {
                            cx.waker().wake_by_ref();
                        }
                        Poll::Pending
                    }
                    Poll::Ready(ended) => Poll::Ready(end(future, ended, linked)),
                }
            });
            match polled {
                Poll::Ready(outcome) => *this.ended = Some(outcome),
                Poll::Pending => return Poll::Pending,
            }
        }
        while let Some(cleanup) = this.started.last_mut() {
            if Pin::new(cleanup).poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.started.pop();
        }
        let Some(outcome) = this.ended.take() else {
            unreachable!("a child task is not polled after it ended")
        };
        link.end(outcome);
        Poll::Ready(())
    }
}

/// Drops a child's future (its drop is user code); the panic of that drop,
/// if it panicked — the child's panic.
fn drop_future<F>(future: Pin<&mut Option<F>>) -> Option<Panic> {
    let mut future = future;
    catch_unwind(AssertUnwindSafe(|| future.set(None))).err()
}

/// A child's future ended: its failure counts from now; then the future is
/// dropped. What its handle will be told.
fn end<T, E, F>(
    future: Pin<&mut Option<F>>,
    ended: Result<Result<T, E>, Panic>,
    link: &ChildLink<T, E>,
) -> Result<T, Joined> {
    let outcome = match ended {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => {
            link.failed(Ok(error));
            Err(Joined::Failed)
        }
        Err(panic) => {
            link.failed(Err(panic));
            Err(Joined::Panicked)
        }
    };
    let Some(panic) = drop_future(future) else {
        return outcome;
    };
    // Its drop panicked: the child panicked, and its value goes nowhere.
    link.failed(Err(panic));
    if let Some(panic) = drop_caught(outcome) {
        link.failed(Err(panic));
    }
    Err(Joined::Panicked)
}

#[pin_project::pinned_drop]
impl<T, E, F> PinnedDrop for ChildTask<T, E, F> {
    fn drop(self: Pin<&mut Self>) {
        let this = self.project();
        if this.link.ended {
            return;
        }
        // The runtime dropped the task before it ended (it shut down, or
        // refused the task): the future is dropped here, where a panic of
        // its drop is caught and counted as the child's.
        let panicked = match drop_future(this.future) {
            Some(panic) => {
                this.link.failed(Err(panic));
                true
            }
            None => false,
        };
        let outcome = match this.ended.take() {
            Some(outcome) => outcome,
            None if panicked => Err(Joined::Panicked),
            None => Err(Joined::Lost),
        };
        this.link.end(outcome);
    }
}

/// Model checks of a child's hand-offs (`ci/loom.sh`): the group's
/// cancellation always reaches a child that lists itself meanwhile; a handle
/// never misses the outcome; a dropped handle leaves nothing behind.
#[cfg(all(test, loom))]
#[allow(clippy::unwrap_used)]
mod loom_tests {
    use std::future::poll_fn;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering as StdOrdering};
    use std::task::Poll;

    use super::{Cancellable, Child, Outcome, Shared};
    use crate::exit::Cancel;
    use crate::group::{Joined, Policy};

    /// A child lists itself (after its first poll returned `Pending`) while
    /// the group cancels: either the cancellation sees it listed, or it sees
    /// the cancellation — it never waits forever.
    #[test]
    fn cancel_reaches_a_child_listing_itself() {
        crate::sync::model(|| {
            let shared = Arc::new(Shared::<()>::new(Policy::FailFast));
            let child = Arc::new(Child::<()>::new(None));
            let canceller = Arc::clone(&shared);
            let cancel = loom::thread::spawn(move || canceller.cancel(Cancel::SiblingFailed));
            let mut listed = false;
            // The child task's steps, as `ChildTask::poll` takes them.
            let told = loom::future::block_on(poll_fn(|cx| {
                if let Some(reason) = child.check(&shared) {
                    return Poll::Ready(reason);
                }
                let mut cancelled = false;
                if !listed {
                    listed = true;
                    let entry: Arc<dyn Cancellable> = child.clone();
                    cancelled = shared.list(&entry);
                }
                if child.wait(&shared, cx.waker()) || cancelled {
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }));
            assert_eq!(told, Cancel::SiblingFailed);
            cancel.join().unwrap();
        });
    }

    /// A handle awaits while its child finishes on another thread: it gets
    /// the value, then `Taken`; the child counts as finished throughout.
    #[test]
    fn handle_sees_the_outcome() {
        crate::sync::model(|| {
            let child = Arc::new(Child::<u32>::new(None));
            let finisher = Arc::clone(&child);
            let finish = loom::thread::spawn(move || assert!(finisher.finish(Ok(7)).is_none()));
            let got = loom::future::block_on(poll_fn(|cx| child.take(cx.waker())));
            assert_eq!(got, Ok(7));
            assert!(child.is_finished());
            let waker = futures::task::noop_waker();
            assert_eq!(child.take(&waker), Poll::Ready(Err(Joined::Taken)));
            finish.join().unwrap();
        });
    }

    /// Counts its drops.
    struct Counted(Arc<StdAtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, StdOrdering::SeqCst);
        }
    }

    /// A handle is dropped while its child finishes: the value is dropped
    /// exactly once, by one of them, and never left in the shared state for
    /// nobody.
    #[test]
    fn dropped_handle_leaves_no_value() {
        crate::sync::model(|| {
            let drops = Arc::new(StdAtomicUsize::new(0));
            let child = Arc::new(Child::<Counted>::new(None));
            let finisher = Arc::clone(&child);
            let value = Counted(Arc::clone(&drops));
            let finish = loom::thread::spawn(move || drop(finisher.finish(Ok(value))));
            drop(child.detach());
            finish.join().unwrap();
            assert_eq!(drops.load(StdOrdering::SeqCst), 1);
            assert!(matches!(*crate::sync::lock(&child.outcome), Outcome::Taken));
        });
    }
}
