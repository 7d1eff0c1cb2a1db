//! Deadlines: [`Runtime::timeout`], [`Runtime::move_on_after`], and the
//! reason a cancelled scope is told.
//!
//! Every deadline in awith runs on the runtime's own timer (so on the
//! reference runtime it is exact and virtual), and every deadline that
//! expires is a *cancellation*: the future it guarded is dropped, and scopes
//! inside it see `Exit::Cancelled(Cancel::Timeout)` — not `Dropped` — because
//! the drop happens under [`cancel_with`].
//!
//! # Durations
//!
//! | duration | rule |
//! |---|---|
//! | zero | the future is polled once; if it is not ready then, the deadline has expired |
//! | so large that `now + duration` cannot be represented (e.g. `Duration::MAX`) | no deadline: it never expires |
//! | anything else | the deadline is `duration` after the first poll |
//!
//! # Nested deadlines
//!
//! Each deadline only reports its own expiry. When an inner and an outer
//! deadline guard the same work, the one that expires first wins: an inner
//! one returns its error to its own caller (which the outer one then sees as
//! an ordinary result); an outer one drops the inner work, inner deadline
//! and all. When both expire at the same instant, the inner one wins (it is
//! polled first).

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pin_project::pin_project;

use crate::error::Elapsed;
use crate::exit::Cancel;
use crate::rt::{Runtime, Sleep};
use crate::sync::{AtomicBool, Mutex, Ordering, lock};
use crate::tripwire::Tripwire;
use crate::with::Stopped;

thread_local! {
    static DROP_REASON: Cell<Option<Cancel>> = const { Cell::new(None) };
}

/// Drops `value` as a cancellation for `reason`: every scope dropped with it
/// tells its release `Exit::Cancelled(reason)` instead of `Cancelled(Dropped)`.
///
/// awith's own deadlines, task groups and locks drop work this way; use it
/// for a cancellation mechanism of your own.
///
/// ```
/// use std::future::Future;
/// use awith::time::cancel_with;
/// use awith::{resource, Cancel, ExitKind, ResourceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rt = awith::runtime()?;
/// let (tx, rx) = std::sync::mpsc::channel();
/// let conn = resource(|| async { Ok::<_, std::io::Error>(()) }, move |(), exit| {
///     tx.send(exit).unwrap();
///     async { Ok(()) }
/// });
/// let mut scope = Box::pin(conn.with(&rt, async |()| {
///     std::future::pending::<()>().await;
///     Ok::<_, std::io::Error>(())
/// }));
/// // Poll once: now it is in the body.
/// std::future::poll_fn(|cx| {
///     let _ = scope.as_mut().poll(cx);
///     std::task::Poll::Ready(())
/// })
/// .await;
/// cancel_with(Cancel::LockLost, scope);
/// rt.drain(std::time::Duration::from_secs(1)).await?;
/// assert_eq!(rx.recv()?, ExitKind::Cancelled(Cancel::LockLost));
/// # Ok(())
/// # }
/// ```
pub fn cancel_with<T>(reason: Cancel, value: T) {
    let _reason = ReasonGuard::set(reason);
    drop(value);
}

/// Runs `f` (which drops something) as a cancellation for `reason`.
pub(crate) fn cancelling<T>(reason: Cancel, f: impl FnOnce() -> T) -> T {
    let _reason = ReasonGuard::set(reason);
    f()
}

/// Why whatever is being dropped on this thread right now is cancelled.
pub(crate) fn drop_reason() -> Cancel {
    DROP_REASON.with(Cell::get).unwrap_or(Cancel::Dropped)
}

struct ReasonGuard {
    previous: Option<Cancel>,
}

impl ReasonGuard {
    fn set(reason: Cancel) -> Self {
        ReasonGuard {
            previous: DROP_REASON.with(|r| r.replace(Some(reason))),
        }
    }
}

impl Drop for ReasonGuard {
    fn drop(&mut self) {
        DROP_REASON.with(|r| r.set(self.previous));
    }
}

/// A deadline that starts when first asked about (after the guarded work's
/// first poll), following the duration rules of the [module docs](self).
pub(crate) struct Deadline {
    after: Duration,
    state: DeadlineState,
}

enum DeadlineState {
    Unstarted,
    Immediate,
    Never,
    Timer(Sleep),
    /// The timer fired; it is not polled again (some runtimes' timers panic
    /// when polled after completion).
    Passed,
}

impl Deadline {
    pub(crate) fn new(after: Duration) -> Self {
        Deadline {
            after,
            state: DeadlineState::Unstarted,
        }
    }

    pub(crate) fn after(&self) -> Duration {
        self.after
    }

    /// Has the deadline passed? Call after the guarded work returned
    /// `Pending`; registers the waker when it has not.
    pub(crate) fn expired(&mut self, rt: &Runtime, cx: &mut Context<'_>) -> bool {
        if let DeadlineState::Unstarted = self.state {
            self.state = if self.after.is_zero() {
                DeadlineState::Immediate
            } else if rt.now().checked_add(self.after).is_none() {
                DeadlineState::Never
            } else {
                DeadlineState::Timer(rt.sleep(self.after))
            };
        }
        match &mut self.state {
            DeadlineState::Immediate | DeadlineState::Passed => true,
            DeadlineState::Never | DeadlineState::Unstarted => false,
            DeadlineState::Timer(timer) => {
                let passed = timer.as_mut().poll(cx).is_ready();
                if passed {
                    self.state = DeadlineState::Passed;
                }
                passed
            }
        }
    }
}

/// Bounds that arrive while the work they bound is already running: the
/// body timeouts of resources entered into an exit stack's body. Each is due
/// `after` it arrived; the one due first counts. Shared between the stack
/// (which adds) and the body's runner (which waits, on the runtime's timer),
/// so behind locks — which never run user code.
#[derive(Default)]
pub(crate) struct LateBounds {
    due: Mutex<Option<(Instant, Duration)>>,
    /// The instant the timer is armed for, and the timer (`None` once it
    /// fired: some runtimes' timers panic when polled again).
    armed: Mutex<Option<(Instant, Option<Sleep>)>>,
    /// The tripwires of the resources entered (a lock's lost lease).
    wires: Mutex<Vec<Tripwire>>,
    /// Set once a bound or a tripwire has been added: until then (most exit
    /// stacks, always) the body's polls look at no lock (measured: three
    /// lock round trips a poll were a tenth of a 16-entry stack's overhead).
    any: AtomicBool,
}

impl LateBounds {
    /// Adds a bound of `after`, from now. One so large that it can never be
    /// due is none (as for [`Deadline`]).
    pub(crate) fn add(&self, rt: &Runtime, after: Duration) {
        let Some(at) = rt.now().checked_add(after) else {
            return;
        };
        let mut due = lock(&self.due);
        if due.is_none_or(|(first, _)| at < first) {
            *due = Some((at, after));
        }
        self.any.store(true, Ordering::Release);
    }

    /// The bound that is due, if any; call after the guarded work returned
    /// `Pending` (registers the waker when none is due yet). The timer is
    /// made, polled and dropped outside the locks.
    pub(crate) fn add_tripwire(&self, wire: Tripwire) {
        lock(&self.wires).push(wire);
        self.any.store(true, Ordering::Release);
    }

    /// The reason of a tripwire already tripped, without registering.
    #[inline]
    pub(crate) fn tripped(&self) -> Option<Cancel> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        self.tripped_slow()
    }

    #[cold]
    fn tripped_slow(&self) -> Option<Cancel> {
        lock(&self.wires).iter().find_map(Tripwire::tripped)
    }

    /// The first bound that expired, or else a tripwire tripped.
    #[inline]
    pub(crate) fn stopped(&self, rt: &Runtime, cx: &mut Context<'_>) -> Option<Stopped> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        self.stopped_slow(rt, cx)
    }

    #[cold]
    fn stopped_slow(&self, rt: &Runtime, cx: &mut Context<'_>) -> Option<Stopped> {
        if let Some(after) = self.expired(rt, cx) {
            return Some(Stopped::TimedOut(after));
        }
        lock(&self.wires)
            .iter()
            .find_map(|wire| match wire.poll_tripped(cx) {
                Poll::Ready(reason) => Some(Stopped::Tripped(reason)),
                Poll::Pending => None,
            })
    }

    fn expired(&self, rt: &Runtime, cx: &mut Context<'_>) -> Option<Duration> {
        let (at, after) = (*lock(&self.due))?;
        let armed = lock(&self.armed).take();
        let (at, timer) = match armed {
            Some((armed_at, timer)) if armed_at == at => (at, timer),
            _ => {
                let now = rt.now();
                if at <= now {
                    return Some(after);
                }
                (at, Some(rt.sleep(at - now)))
            }
        };
        let Some(mut sleep) = timer else {
            *lock(&self.armed) = Some((at, None));
            return Some(after);
        };
        let fired = sleep.as_mut().poll(cx).is_ready();
        // A fired timer is not kept: some runtimes' timers panic when polled
        // again.
        let keep = if fired { None } else { Some(sleep) };
        *lock(&self.armed) = Some((at, keep));
        fired.then_some(after)
    }
}

impl fmt::Debug for LateBounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LateBounds")
            .field("due", &*lock(&self.due))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deadline")
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Runs `future` with a deadline: `Err(Elapsed)` if it has not finished
    /// `after` its first poll (it is then dropped, as a cancellation with
    /// `Cancel::Timeout`). The `fail_after` of trio and anyio.
    ///
    /// See the [`time`](crate::time) module for zero and huge durations and
    /// nested deadlines.
    ///
    /// # Cancellation
    ///
    /// At the deadline, `future` is dropped under
    /// [`cancel_with`]`(Cancel::Timeout, ..)`: scopes inside it are told
    /// `Exit::Cancelled(Cancel::Timeout)`, and their releases run as cleanup
    /// tasks ([`Runtime::drain`] waits for them). Dropping the `Timeout`
    /// itself before then drops `future` as any drop does (`Cancel::Dropped`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use awith::{resource, Cancel, ExitKind, ResourceExt};
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let rt = awith::runtime()?;
    ///     let start = tokio::time::Instant::now();
    ///     let slow = rt
    ///         .timeout(Duration::from_secs(5), tokio::time::sleep(Duration::from_secs(10)))
    ///         .await;
    ///     assert_eq!(slow.unwrap_err().after(), Duration::from_secs(5));
    ///     assert_eq!(start.elapsed(), Duration::from_secs(5));
    ///
    ///     // A scope it cuts short is told why.
    ///     let (tx, rx) = std::sync::mpsc::channel();
    ///     let conn = resource(
    ///         || async { Ok::<_, std::io::Error>("connection") },
    ///         move |_, exit| async move { Ok(tx.send(exit).unwrap()) },
    ///     );
    ///     let scope = conn.with(&rt, async |_| {
    ///         std::future::pending::<()>().await;
    ///         Ok::<_, std::io::Error>(())
    ///     });
    ///     assert!(rt.timeout(Duration::from_secs(1), scope).await.is_err());
    ///     rt.drain(Duration::from_secs(5)).await?; // the release ran as a cleanup task
    ///     assert_eq!(rx.try_recv()?, ExitKind::Cancelled(Cancel::Timeout));
    ///     Ok(())
    /// }
    /// ```
    pub fn timeout<F: Future>(&self, after: Duration, future: F) -> Timeout<'_, F> {
        Timeout {
            rt: self,
            future: Some(future),
            deadline: Deadline::new(after),
        }
    }

    /// Runs `future` with a deadline: `None` if it has not finished `after`
    /// its first poll (it is then dropped, as a cancellation with
    /// `Cancel::Timeout`). The `move_on_after` of trio and anyio.
    ///
    /// # Cancellation
    ///
    /// As [`timeout`](Self::timeout).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let quick = rt.move_on_after(Duration::from_secs(5), async { 7 }).await;
    /// assert_eq!(quick, Some(7));
    /// let slow = rt.move_on_after(Duration::from_secs(5), tokio::time::sleep(Duration::from_secs(10))).await;
    /// assert_eq!(slow, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn move_on_after<F: Future>(&self, after: Duration, future: F) -> MoveOnAfter<'_, F> {
        MoveOnAfter {
            inner: self.timeout(after, future),
        }
    }
}

/// The future of [`Runtime::timeout`].
#[pin_project]
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Timeout<'a, F> {
    rt: &'a Runtime,
    #[pin]
    future: Option<F>,
    deadline: Deadline,
}

impl<F> fmt::Debug for Timeout<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("after", &self.deadline.after())
            .field("finished", &self.future.is_none())
            .finish_non_exhaustive()
    }
}

impl<F: Future> Future for Timeout<'_, F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(future) = this.future.as_mut().as_pin_mut() else {
            panic!("`Timeout` polled after it completed");
        };
        if let Poll::Ready(output) = future.poll(cx) {
            this.future.set(None);
            return Poll::Ready(Ok(output));
        }
        if this.deadline.expired(this.rt, cx) {
            cancelling(Cancel::Timeout, || this.future.set(None));
            return Poll::Ready(Err(Elapsed::new(this.deadline.after())));
        }
        Poll::Pending
    }
}

/// The future of [`Runtime::move_on_after`].
#[pin_project]
#[must_use = "futures do nothing unless you `.await` or poll them"]
#[derive(Debug)]
pub struct MoveOnAfter<'a, F> {
    #[pin]
    inner: Timeout<'a, F>,
}

impl<F: Future> Future for MoveOnAfter<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx).map(Result::ok)
    }
}
