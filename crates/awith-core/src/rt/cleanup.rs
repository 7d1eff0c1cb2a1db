//! Cleanup tracking: the tasks a cancelled scope hands to the runtime, their
//! counters ([`CleanupStats`]), and [`Runtime::drain`], which waits for them.
//!
//! Every cleanup is counted pending from the moment it is handed over until
//! its [`Tracker`] is dropped, whatever ends it: it finished (completed,
//! failed, panicked, timed out), the runtime refused it, or the runtime
//! dropped it unfinished. So `spawned = completed + failed + panicked +
//! timed_out + lost + pending` always holds, and a drain that returns has
//! seen every incident.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64 as StdAtomicU64, Ordering as StdOrdering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::{CleanupKind, Incident, Runtime, Sleep};
use crate::nest::{CleanupDone, Collecting, DoneSignal, all_done};
use crate::util::{CatchUnwind, OrTimeout, panic_message};

/// Counts of the cleanup work a [`Runtime`] was handed, since it was made.
///
/// `spawned = completed + failed + panicked + timed_out + lost + pending`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rt = awith::runtime()?;
/// let stats = rt.cleanup_stats();
/// assert_eq!((stats.spawned, stats.pending), (0, 0));
/// assert!(stats.is_clean());
/// # Ok(())
/// # }
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanupStats {
    /// Cleanups handed to the runtime.
    pub spawned: u64,
    /// Cleanups that ran to the end without error.
    pub completed: u64,
    /// Cleanups whose release returned an error.
    pub failed: u64,
    /// Cleanups that panicked.
    pub panicked: u64,
    /// Cleanups dropped at their timeout.
    pub timed_out: u64,
    /// Cleanups the runtime refused or dropped unfinished.
    pub lost: u64,
    /// Cleanups still running.
    pub pending: u64,
    /// All incidents reported, cleanups or not.
    pub incidents: u64,
}

impl CleanupStats {
    /// `true` when every cleanup completed and no incident was reported.
    pub fn is_clean(&self) -> bool {
        self.incidents == 0 && self.pending == 0 && self.completed == self.spawned
    }
}

/// How a cleanup task ended, before it is counted.
#[derive(Debug)]
pub(crate) enum CleanupError {
    /// The release (or acquire) returned an error, formatted with `Debug`.
    Failed(String),
    /// A nested bound inside the cleanup expired.
    TimedOut(Duration),
}

/// The counters, and the drains waiting for `pending` to reach zero.
#[derive(Debug, Default)]
pub(super) struct Registry {
    pub(super) stats: CleanupStats,
    /// Each waiting [`Drain`]'s waker, under the drain's own number: a drain
    /// updates its entry in place and removes it when it ends or is
    /// dropped, so the list never holds more than the drains alive now.
    drainers: Vec<(u64, Waker)>,
    next_drainer: u64,
}

impl Runtime {
    /// A snapshot of the cleanup counters.
    pub fn cleanup_stats(&self) -> CleanupStats {
        self.registry().stats
    }

    /// Waits until every cleanup handed to this runtime has finished, or until
    /// `deadline` has passed on the runtime's clock. A deadline too far to
    /// represent (e.g. `Duration::MAX`) is no deadline: it waits as long as
    /// it takes.
    ///
    /// Call it before the program (or test) ends: cleanups are detached tasks,
    /// and a runtime that shuts down drops them (which is then reported).
    ///
    /// The result is `Ok(stats)` when nothing is pending; check
    /// [`CleanupStats::is_clean`] to learn whether everything also succeeded.
    ///
    /// # Errors
    ///
    /// [`DrainError`] when cleanups are still running at the deadline.
    ///
    /// # Cancellation
    ///
    /// Dropping the drain's future stops the waiting only: the cleanups go on,
    /// and a later drain waits for them.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use awith::{resource, Cancel, ExitKind, ResourceExt};
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let rt = awith::runtime()?;
    ///     let (tx, rx) = std::sync::mpsc::channel();
    ///     let conn = resource(
    ///         || async { Ok::<_, std::io::Error>("connection") },
    ///         move |_, exit| async move {
    ///             tokio::time::sleep(Duration::from_secs(1)).await; // a polite goodbye
    ///             Ok(tx.send(exit).unwrap())
    ///         },
    ///     );
    ///     let scope = conn.with(&rt, async |_| {
    ///         std::future::pending::<()>().await; // a body that never ends
    ///         Ok::<_, std::io::Error>(())
    ///     });
    ///     // Dropped in its body (here by tokio's timeout): the release runs as
    ///     // a cleanup task.
    ///     assert!(tokio::time::timeout(Duration::from_secs(2), scope).await.is_err());
    ///     assert_eq!(rt.cleanup_stats().pending, 1);
    ///
    ///     // Too short a deadline: the release is still saying goodbye.
    ///     let early = rt.drain(Duration::from_millis(500)).await.unwrap_err();
    ///     assert_eq!(early.stats.pending, 1);
    ///     // Long enough: it waits for the release to end.
    ///     let stats = rt.drain(Duration::from_secs(5)).await?;
    ///     assert_eq!((stats.spawned, stats.completed, stats.pending), (1, 1, 0));
    ///     assert_eq!(rx.try_recv()?, ExitKind::Cancelled(Cancel::Dropped));
    ///     Ok(())
    /// }
    /// ```
    pub fn drain(&self, deadline: Duration) -> Drain<'_> {
        Drain {
            rt: self,
            deadline,
            timer: Timer::Unstarted,
            registered: None,
        }
    }

    /// Hands `cleanup` to the runtime as a tracked task. It starts once the
    /// cleanups in `after` (of scopes nested inside) have ended, and is
    /// dropped `timeout` after it started if it is still running then.
    ///
    /// A panic anywhere in the cleanup — its polls, or the drop of its future
    /// at the end or at the timeout — is caught and counted as `panicked`.
    pub(crate) fn spawn_cleanup<F>(
        &self,
        kind: CleanupKind,
        timeout: Option<Duration>,
        after: Vec<CleanupDone>,
        cleanup: F,
    ) where
        F: Future<Output = Result<(), CleanupError>> + Send + 'static,
    {
        // One value, so that its parts drop in this order wherever the task
        // is dropped: the work (its drop's panic caught and reported), then
        // the tracker — a drain that returns has seen that report too.
        let parts = Parts {
            cleanup: DropCaught::new(cleanup, self.clone()),
            tracker: Tracker::new(self.clone(), kind),
        };
        let id = parts.tracker.id;
        let task = async move {
            let Parts {
                cleanup,
                mut tracker,
            } = parts;
            tracker.started = true;
            // Waiting for the cleanups nested inside is not part of this
            // one's time: each of them has its own bound.
            all_done(after).await;
            let timer = timeout.map(|after| tracker.rt.sleep(after));
            let (ended, started) =
                Collecting::new(CatchUnwind::new(OrTimeout::new(cleanup, timer))).await;
            // What this cleanup started in turn ends before it does.
            all_done(started).await;
            let ending = match ended {
                Ok(Some(Ok(()))) => Ending::Completed,
                Ok(Some(Err(CleanupError::Failed(error)))) => Ending::Failed(error),
                Ok(Some(Err(CleanupError::TimedOut(after)))) => Ending::TimedOut(after),
                Ok(None) => Ending::TimedOut(timeout.unwrap_or_default()),
                Err(panic) => Ending::Panicked(panic_message(&panic)),
            };
            tracker.finish(ending);
        };
        let task = crate::trace::cleanup(kind, task);
        // A task the binding refuses is dropped while `SPAWNING` names it —
        // inside `spawn` (tokio drops it there) or with its error here — so
        // its tracker counts it refused; one the runtime accepted and drops
        // later, unpolled, counts as abandoned.
        let previous = spawning(id);
        if let Err(refused) = self.inner.binding.spawn(Box::pin(task)) {
            drop(refused);
        }
        spawning(previous);
    }
}

/// What a cleanup task owns, in the order it drops.
struct Parts<F> {
    cleanup: DropCaught<F>,
    tracker: Tracker,
}

/// A cleanup's work, whose drop when unfinished — at its timeout, or with a
/// task the runtime refused or dropped at shutdown (tokio would swallow the
/// panic) — catches a panicking `Drop` of the user values in it and reports
/// it. Finished, it drops them inside its last poll, where a panic counts as
/// the cleanup's own.
#[pin_project::pin_project(PinnedDrop)]
pub(crate) struct DropCaught<F> {
    #[pin]
    work: Option<F>,
    rt: Runtime,
}

impl<F> DropCaught<F> {
    pub(crate) fn new(work: F, rt: Runtime) -> Self {
        DropCaught {
            work: Some(work),
            rt,
        }
    }
}

impl<F: Future> Future for DropCaught<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        let Some(work) = this.work.as_mut().as_pin_mut() else {
            unreachable!("a cleanup's work is not polled after it ended")
        };
        let output = std::task::ready!(work.poll(cx));
        this.work.set(None);
        Poll::Ready(output)
    }
}

#[pin_project::pinned_drop]
impl<F> PinnedDrop for DropCaught<F> {
    fn drop(self: Pin<&mut Self>) {
        let mut this = self.project();
        if this.work.is_none() {
            return;
        }
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| this.work.set(None))) {
            this.rt.report(Incident::BackgroundPanicked {
                work: "dropping an unfinished cleanup",
                message: panic_message(&panic),
            });
        }
    }
}

/// Names the cleanup being spawned on this thread; the one named before.
fn spawning(id: u64) -> u64 {
    SPAWNING
        .try_with(|spawning| spawning.replace(id))
        .unwrap_or(0)
}

thread_local! {
    /// The cleanup being handed to the runtime on this thread, if any.
    static SPAWNING: Cell<u64> = const { Cell::new(0) };
}

/// Numbers cleanups, so that a tracker knows whether it is the one being
/// spawned (0 is none).
static NEXT_CLEANUP: StdAtomicU64 = StdAtomicU64::new(1);

/// Cleanups were still running when [`Runtime::drain`]'s deadline passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainError {
    /// The deadline that passed.
    pub deadline: Duration,
    /// The counters at that moment.
    pub stats: CleanupStats,
}

impl fmt::Display for DrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} cleanup task(s) still running after {:?}",
            self.stats.pending, self.deadline
        )
    }
}

impl std::error::Error for DrainError {}

/// The future of [`Runtime::drain`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Drain<'a> {
    rt: &'a Runtime,
    deadline: Duration,
    timer: Timer,
    /// Its entry in the registry's list of drainers, while it has one.
    registered: Option<u64>,
}

/// A drain's deadline.
enum Timer {
    Unstarted,
    /// Too far to represent: none.
    Never,
    Running(Sleep),
}

impl fmt::Debug for Drain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Drain<'_> {
    /// Leaves the list of drainers; the waker is dropped after the lock.
    fn unregister(&mut self) {
        if let Some(id) = self.registered.take() {
            let stale = {
                let mut registry = self.rt.registry();
                let at = registry.drainers.iter().position(|(n, _)| *n == id);
                at.map(|at| registry.drainers.swap_remove(at))
            };
            drop(stale);
        }
    }
}

impl Future for Drain<'_> {
    type Output = Result<CleanupStats, DrainError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // Cloned (and an old waker dropped) outside the registry's lock:
        // a waker is the runtime's code, never run under an awith lock.
        let waker = cx.waker().clone();
        let stale = {
            let mut registry = this.rt.registry();
            if registry.stats.pending == 0 {
                let stats = registry.stats;
                drop(registry);
                this.unregister();
                return Poll::Ready(Ok(stats));
            }
            // The entry may be gone: the last cleanup took every waker.
            let id = *this.registered.get_or_insert_with(|| {
                registry.next_drainer += 1;
                registry.next_drainer
            });
            match registry.drainers.iter_mut().find(|(n, _)| *n == id) {
                Some((_, kept)) => Some(std::mem::replace(kept, waker)),
                None => {
                    registry.drainers.push((id, waker));
                    None
                }
            }
        };
        drop(stale);
        let (rt, deadline) = (this.rt, this.deadline);
        if let Timer::Unstarted = this.timer {
            this.timer = match rt.now().checked_add(deadline) {
                Some(_) => Timer::Running(rt.sleep(deadline)),
                None => Timer::Never,
            };
        }
        let Timer::Running(timer) = &mut this.timer else {
            return Poll::Pending;
        };
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        this.unregister();
        let stats = rt.cleanup_stats();
        if stats.pending == 0 {
            return Poll::Ready(Ok(stats));
        }
        Poll::Ready(Err(DrainError { deadline, stats }))
    }
}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// How a tracked cleanup ended.
#[derive(Debug)]
pub(super) enum Ending {
    Completed,
    Failed(String),
    Panicked(String),
    TimedOut(Duration),
}

/// Counts one cleanup task: pending while alive; on drop, what happened.
pub(super) struct Tracker {
    rt: Runtime,
    kind: CleanupKind,
    id: u64,
    started: bool,
    ending: Option<Ending>,
    /// Tells the enclosing scope, if one is collecting, that this ended.
    _done: Option<DoneSignal>,
}

impl Tracker {
    pub(super) fn new(rt: Runtime, kind: CleanupKind) -> Self {
        {
            let mut registry = rt.registry();
            registry.stats.spawned += 1;
            registry.stats.pending += 1;
        }
        Tracker {
            rt,
            kind,
            id: NEXT_CLEANUP.fetch_add(1, StdOrdering::Relaxed),
            started: false,
            ending: None,
            _done: crate::nest::register(),
        }
    }

    pub(super) fn finish(&mut self, ending: Ending) {
        self.ending = Some(ending);
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let kind = self.kind;
        let runtime = self.rt.name();
        let incident = {
            let mut registry = self.rt.registry();
            let stats = &mut registry.stats;
            match self.ending.take() {
                Some(Ending::Completed) => {
                    stats.completed += 1;
                    None
                }
                Some(Ending::Failed(error)) => {
                    stats.failed += 1;
                    Some(Incident::CleanupFailed { kind, error })
                }
                Some(Ending::Panicked(message)) => {
                    stats.panicked += 1;
                    Some(Incident::CleanupPanicked { kind, message })
                }
                Some(Ending::TimedOut(after)) => {
                    stats.timed_out += 1;
                    Some(Incident::CleanupTimedOut { kind, after })
                }
                None if !self.started && SPAWNING.try_with(Cell::get) == Ok(self.id) => {
                    stats.lost += 1;
                    Some(Incident::CleanupRefused { kind, runtime })
                }
                None => {
                    stats.lost += 1;
                    Some(Incident::CleanupAbandoned { kind, runtime })
                }
            }
        };
        // Report before the task stops counting as pending, so that a drain
        // that returns has seen every incident. (Reporting never unwinds: a
        // panicking hook is caught.)
        if let Some(incident) = incident {
            self.rt.report(incident);
        }
        let drainers = {
            let mut registry = self.rt.registry();
            registry.stats.pending -= 1;
            if registry.stats.pending == 0 {
                std::mem::take(&mut registry.drainers)
            } else {
                Vec::new()
            }
        };
        drainers.into_iter().for_each(|(_, waker)| waker.wake());
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::task::{Context, Poll};
    use std::time::Duration;

    use futures::FutureExt;
    use futures::task::noop_waker;

    use crate::reference::Reference;

    /// A drain that gives up (or is dropped) leaves nothing behind in the
    /// registry: drains called again and again under steady load keep the
    /// list of drainers at the drains alive now.
    #[test]
    fn drains_leave_no_waker_behind() {
        let reference = Reference::new();
        let rt = reference.runtime();
        reference
            .block_on(async {
                // A cleanup that outlives every drain below.
                let sleeper = rt.clone();
                rt.spawn_cleanup(super::CleanupKind::Release, None, Vec::new(), async move {
                    sleeper.sleep(Duration::from_secs(3600)).await;
                    Ok(())
                });
                for _ in 0..100 {
                    assert!(rt.drain(Duration::from_secs(1)).await.is_err());
                }
                // Polled with many wakers, then dropped.
                for _ in 0..100 {
                    let mut drain = rt.drain(Duration::from_secs(1));
                    let waker = noop_waker();
                    assert!(
                        drain
                            .poll_unpin(&mut Context::from_waker(&waker))
                            .is_pending()
                    );
                }
                assert_eq!(rt.registry().drainers.len(), 0);
                let mut drain = rt.drain(Duration::MAX);
                let waker = noop_waker();
                let _ = drain.poll_unpin(&mut Context::from_waker(&waker));
                assert_eq!(rt.registry().drainers.len(), 1);
                drop(drain);
                assert_eq!(rt.registry().drainers.len(), 0);
                assert!(matches!(
                    rt.drain(Duration::from_secs(3600))
                        .poll_unpin(&mut Context::from_waker(&waker)),
                    Poll::Pending
                ));
            })
            .unwrap();
    }
}

/// Model checks of the cleanup registry (`ci/loom.sh`): a drain never
/// misses the end of the last cleanup, whichever thread ends it and however
/// the ends interleave with the drain's polls.
#[cfg(all(test, loom))]
#[allow(clippy::unwrap_used)]
mod loom_tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::{Ending, Tracker};
    use crate::rt::{CleanupKind, Runtime};
    use crate::sync::LoomBinding;

    fn runtime(incidents: &Arc<AtomicUsize>) -> Runtime {
        let seen = Arc::clone(incidents);
        Runtime::builder(LoomBinding)
            .on_incident(move |_| {
                seen.fetch_add(1, Ordering::Relaxed);
            })
            .build()
            .unwrap()
    }

    fn end(tracker: Tracker, ending: Option<Ending>) {
        let mut tracker = tracker;
        tracker.started = true;
        if let Some(ending) = ending {
            tracker.finish(ending);
        }
    }

    #[test]
    fn drain_sees_the_last_cleanup_end() {
        crate::sync::model(|| {
            let incidents = Arc::new(AtomicUsize::new(0));
            let rt = runtime(&incidents);
            let a = Tracker::new(rt.clone(), CleanupKind::Release);
            let b = Tracker::new(rt.clone(), CleanupKind::Destroy);
            let ta = loom::thread::spawn(move || end(a, Some(Ending::Completed)));
            let tb = loom::thread::spawn(move || end(b, Some(Ending::Failed("e".into()))));
            let stats = loom::future::block_on(rt.drain(Duration::from_secs(1))).unwrap();
            assert_eq!(stats.pending, 0);
            assert_eq!((stats.spawned, stats.completed, stats.failed), (2, 1, 1));
            // The incident was reported before the drain returned.
            assert_eq!(stats.incidents, 1);
            assert_eq!(incidents.load(Ordering::Relaxed), 1);
            ta.join().unwrap();
            tb.join().unwrap();
        });
    }

    #[test]
    fn two_drains_and_an_abandoned_cleanup() {
        crate::sync::model(|| {
            let incidents = Arc::new(AtomicUsize::new(0));
            let rt = runtime(&incidents);
            let a = Tracker::new(rt.clone(), CleanupKind::Release);
            let other = rt.clone();
            let drainer = loom::thread::spawn(move || {
                loom::future::block_on(other.drain(Duration::from_secs(1))).unwrap()
            });
            // Dropped unfinished: abandoned.
            let ta = loom::thread::spawn(move || end(a, None));
            let stats = loom::future::block_on(rt.drain(Duration::from_secs(1))).unwrap();
            assert_eq!((stats.pending, stats.lost), (0, 1));
            assert_eq!(drainer.join().unwrap().lost, 1);
            ta.join().unwrap();
            assert_eq!(rt.registry().drainers.len(), 0);
        });
    }

    #[test]
    fn cleanup_spawned_onto_another_thread() {
        crate::sync::model(|| {
            let incidents = Arc::new(AtomicUsize::new(0));
            let rt = runtime(&incidents);
            rt.spawn_cleanup(CleanupKind::Release, None, Vec::new(), async {
                Err(super::CleanupError::Failed("release failed".into()))
            });
            let stats = loom::future::block_on(rt.drain(Duration::from_secs(1))).unwrap();
            assert_eq!((stats.spawned, stats.failed, stats.pending), (1, 1, 0));
            assert_eq!(incidents.load(Ordering::Relaxed), 1);
        });
    }
}
