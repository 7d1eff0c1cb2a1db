//! The scope itself: acquire → body → release, with the release guaranteed.
//!
//! The scope is an `async fn` (the body's future borrows the value, which only
//! the compiler's generators can hold without `unsafe`), built from three
//! guards, one per phase. Each guard owns what the phase needs and, if the
//! scope's future is dropped while the phase is in flight, hands the remaining
//! work to the runtime as a tracked cleanup task:
//!
//! - [`Acquiring`]: the in-flight acquire future; on drop, the task finishes
//!   it and releases what it yields with `Cancelled(reason)`.
//! - [`Held`]: the value and the releaser while the body runs; on drop (after
//!   the body's future, which borrows the value, has been dropped), the task
//!   runs the release with `Cancelled(reason)`.
//! - [`Releasing`]: the in-flight release future; on drop, the task finishes it.
//!
//! The reason is whatever [`cancel_with`](crate::time::cancel_with) says the
//! drop is for (`Dropped` by default).
//!
//! An in-flight acquire or release must be movable into a task, so it lives on
//! the heap. One allocation serves both: a [`Phase`] slot that holds the
//! acquire future, then nothing while the body runs, then the release future
//! (measured: a second allocation cost a fifth of the scope's overhead).
//!
//! Two cases need no allocation at all: an acquire that undoes itself when
//! dropped ([`Resource::CANCEL_SAFE_ACQUIRE`]) is polled in place, and a
//! release that can finish at once ([`Resource::release_now`]) builds no
//! future. A pool checkout is both (measured, with the pool's own cuts: a
//! checkout went from 2,400 to 1,060 instructions).

use std::fmt;
use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project::{pin_project, pinned_drop};

use crate::error::{Failure, ScopeError};
use crate::exit::{Cancel, Exit};
use crate::nest::{CleanupDone, Inner, all_done, collecting};
use crate::resource::{Acquired, ReleaseNow, Resource};
use crate::rt::{CleanupError, CleanupKind, DropCaught, Incident, Runtime};
use crate::time::{Deadline, LateBounds, cancelling, drop_reason};
use crate::tripwire::Tripwire;
use crate::util::{CatchUnwind, OrTimeout, Panic, min_bound, panic_message};
use crate::verdict::{ReleaseVerdict, Verdict};

/// A scope: `M` is `()` for [`with`](crate::ResourceExt::with) (the body's
/// output; a release cannot suppress), [`Verdict`](crate::Verdict) for
/// [`with_suppression`](crate::ResourceExt::with_suppression) (`Option`).
pub(crate) async fn run<R, E, B, U, M>(
    rt: &Runtime,
    resource: R,
    body: B,
) -> Result<M::Output<U>, ScopeError<E, R::Error>>
where
    R: Resource<E>,
    E: fmt::Debug,
    B: AsyncFnOnce(&mut R::Value) -> Result<U, E>,
    M: ReleaseVerdict,
{
    let body_timeout = resource.body_timeout();

    // Acquire. A cancel-safe acquire is polled in place: dropped with the
    // scope, it undoes itself; the others live in the heap slot, to be
    // handed to the runtime.
    let (value, releaser, mut slot) = if R::CANCEL_SAFE_ACQUIRE {
        let acquire = pin!(resource.acquire(rt));
        match crate::trace::acquire(acquire).await {
            Ok((value, releaser)) => (value, releaser, None),
            Err(failure) => return Err(ScopeError::Acquire(failure)),
        }
    } else {
        let mut acquiring = Acquiring::<R, E, _, _> {
            rt,
            in_flight: Some(Box::pin(Phase::Acquire(resource.acquire(rt)))),
            polling: false,
            resource: PhantomData,
        };
        match crate::trace::acquire(poll_fn(|cx| acquiring.poll_acquire(cx))).await {
            Ok((value, releaser, slot)) => (value, releaser, Some(slot)),
            Err(failure) => return Err(ScopeError::Acquire(failure)),
        }
    };

    // A bound only known once acquired (`and_then`'s second part) counts
    // from the body's start too.
    let body_timeout = min_bound(body_timeout, R::acquired_body_timeout(&releaser));
    let tripwire = R::acquired_tripwire(&releaser);

    // Body. `held` releases with `Cancelled` if the scope is dropped here.
    let mut held = Held::<R, E> {
        rt,
        slot: Some((value, releaser)),
        inner: Inner::default(),
    };
    let outcome: Outcome<U, E> = match &mut held.slot {
        Some((value, _)) => {
            // The body's future is made right into its place in the scope's
            // own (measured: moving it there cost nested scopes, whose
            // bodies hold each other, a memcpy each).
            let mut run = pin!(BodyRun {
                rt,
                body: None,
                deadline: body_timeout.map(Deadline::new),
                tripwire,
                late: None,
                inner: &held.inner,
            });
            match catch_unwind(AssertUnwindSafe(|| run.as_mut().start(|| body(value)))) {
                Ok(()) => crate::trace::body(run).await,
                Err(panic) => Outcome::Panicked(panic),
            }
        }
        None => unreachable!("the value is held until the body has finished"),
    };
    // Scopes nested in the body that were cancelled release before this one.
    if held.inner.any() {
        all_done(held.inner.snapshot()).await;
    }
    let Some((value, releaser)) = held.slot.take() else {
        unreachable!("the value is held until the body has finished")
    };

    // Release, told how the body ended, in the slot the acquire used. The
    // exit (which borrows the body's error) is gone before the release is
    // awaited: a scope's future is `Send` whenever `E` is, `Sync` or not.
    // A release that can finish at once does, with no future.
    let release_span = crate::trace::release(&outcome);
    let release = {
        let exit = exit_of(&outcome);
        let _entered = release_span.enter();
        catch_unwind(AssertUnwindSafe(|| {
            match R::release_now(releaser, value, &exit, rt) {
                ReleaseNow::Done(released) => Err(released),
                ReleaseNow::Later { releaser, value } => Ok(R::release(releaser, value, &exit, rt)),
            }
        }))
    };
    let (outcome, released) = match release {
        Ok(Ok(release)) => {
            let slot = match slot.take() {
                Some(mut slot) => {
                    slot.set(Phase::Release(release));
                    slot
                }
                None => Box::pin(Phase::Release(release)),
            };
            let mut releasing = Releasing {
                rt,
                in_flight: Some(slot),
                outcome: Some(outcome),
            };
            let ended = poll_fn(|cx| release_span.in_scope(|| releasing.poll_release(cx))).await;
            // Ended, it holds nothing: no drop to run (measured: its drop
            // glue cost 39 instructions a scope).
            std::mem::forget(releasing);
            ended
        }
        Ok(Err(Ok(verdict))) => (outcome, Ending::Released(verdict)),
        Ok(Err(Err(failure))) => (outcome, Ending::Failed(failure)),
        Err(panic) => (outcome, Ending::Panicked(panic)),
    };
    // The common case, spelled so that nothing is left to drop.
    match (outcome, released) {
        (Outcome::Completed(output), released @ Ending::Released(_)) => {
            // A verdict: nothing to drop, and no call to find that out.
            std::mem::forget(released);
            Ok(M::completed(output))
        }
        (outcome, released) => settle::<R, E, U, M>(rt, outcome, released),
    }
}

/// What the release is told about `outcome`.
fn exit_of<U, E>(outcome: &Outcome<U, E>) -> Exit<'_, E> {
    match outcome {
        Outcome::Completed(_) => Exit::Completed,
        Outcome::Failed(error) => Exit::Failed(error),
        Outcome::Panicked(_) => Exit::Panicked,
        Outcome::Stopped(stopped) => Exit::Cancelled(stopped.reason()),
    }
}

/// How the body ended.
pub(crate) enum Outcome<U, E> {
    Completed(U),
    Failed(E),
    Panicked(Panic),
    Stopped(Stopped),
}

/// A body stopped from outside: its deadline passed, or a
/// [`Tripwire`](crate::Tripwire) was tripped.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Stopped {
    TimedOut(Duration),
    Tripped(Cancel),
}

impl Stopped {
    /// What the release is told.
    pub(crate) fn reason(self) -> Cancel {
        match self {
            Stopped::TimedOut(_) => Cancel::Timeout,
            Stopped::Tripped(reason) => reason,
        }
    }

    /// For a person, when it cannot be returned.
    pub(crate) fn describe(self) -> String {
        match self {
            Stopped::TimedOut(after) => timed_out(after),
            Stopped::Tripped(reason) => format!("the scope's body was cancelled: {reason}"),
        }
    }

    /// The scope's error, with the release's own failure if any.
    pub(crate) fn into_error<E, R>(self, release: Option<Failure<R>>) -> ScopeError<E, R> {
        match self {
            Stopped::TimedOut(after) => ScopeError::BodyTimeout { after, release },
            Stopped::Tripped(reason) => ScopeError::BodyCancelled { reason, release },
        }
    }
}

/// The body, racing its optional deadline and tripwire (and, for an exit
/// stack's body, the bounds and tripwires of the resources entered while it
/// runs). On expiry the body is dropped under `cancel_with(Cancel::Timeout)`
/// (tripped: under the tripwire's reason), so scopes inside it learn why.
///
/// Cleanup tasks started while the body is polled or dropped (scopes nested
/// in it, cancelled) are collected in `inner`: the release waits for them —
/// also when dropping the body panics.
#[pin_project(PinnedDrop)]
pub(crate) struct BodyRun<'a, F> {
    pub(crate) rt: &'a Runtime,
    #[pin]
    pub(crate) body: Option<CatchUnwind<F>>,
    pub(crate) deadline: Option<Deadline>,
    pub(crate) tripwire: Option<Tripwire>,
    pub(crate) late: Option<&'a LateBounds>,
    pub(crate) inner: &'a Inner,
}

impl<F> BodyRun<'_, F> {
    /// Makes the body's future in its place (a panic of `make` leaves
    /// none).
    #[inline]
    pub(crate) fn start(self: Pin<&mut Self>, make: impl FnOnce() -> F) {
        self.project().body.set(Some(CatchUnwind::new(make())));
    }
}

#[pinned_drop]
impl<F> PinnedDrop for BodyRun<'_, F> {
    fn drop(self: Pin<&mut Self>) {
        let this = self.project();
        if this.body.is_some() {
            // A panic dropping the body reaches whoever dropped the scope,
            // once what the drop started is kept for the release to wait on.
            let mut started = Vec::new();
            let mut body = this.body;
            let dropped = catch_unwind(AssertUnwindSafe(|| {
                collecting(&mut started, || body.set(None));
            }));
            this.inner.keep(started);
            if let Err(panic) = dropped {
                resume_unwind(panic);
            }
        }
    }
}

impl<F, U, E> Future for BodyRun<'_, F>
where
    F: Future<Output = Result<U, E>>,
{
    type Output = Outcome<U, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // A tripped wire stops the body before it takes another step: a
        // body that relies on a lock never runs on without it, even when
        // whatever woke it woke it too. (A deadline is looked at after the
        // body: a body ready at its deadline completes.)
        let tripped = match (this.tripwire.as_ref(), *this.late) {
            (None, None) => None,
            (wire, late) => wire
                .and_then(Tripwire::tripped)
                .or_else(|| late.and_then(LateBounds::tripped)),
        };
        if let Some(reason) = tripped {
            return Poll::Ready(stop(
                this.rt,
                this.body,
                this.inner,
                Stopped::Tripped(reason),
            ));
        }
        let Some(body) = this.body.as_mut().as_pin_mut() else {
            unreachable!("the body is polled until it finishes, then never again")
        };
        let mut started = Vec::new();
        let polled = collecting(&mut started, || body.poll(cx));
        this.inner.keep(started);
        if let Poll::Ready(ended) = polled {
            this.body.set(None);
            return Poll::Ready(match ended {
                Ok(Ok(output)) => Outcome::Completed(output),
                Ok(Err(error)) => Outcome::Failed(error),
                Err(panic) => Outcome::Panicked(panic),
            });
        }
        let mut stopped = match this.deadline {
            Some(deadline) => deadline
                .expired(this.rt, cx)
                .then(|| Stopped::TimedOut(deadline.after())),
            None => None,
        };
        if let Some(bounds) = this.late {
            stopped = stopped.or_else(|| bounds.stopped(this.rt, cx));
        }
        if let (None, Some(wire)) = (stopped, this.tripwire) {
            if let Poll::Ready(reason) = wire.poll_tripped(cx) {
                stopped = Some(Stopped::Tripped(reason));
            }
        }
        let Some(stopped) = stopped else {
            return Poll::Pending;
        };
        Poll::Ready(stop(this.rt, this.body, this.inner, stopped))
    }
}

/// Drops the body under the stop's reason, so scopes inside it learn why.
fn stop<F, U, E>(
    rt: &Runtime,
    mut body: Pin<&mut Option<CatchUnwind<F>>>,
    inner: &Inner,
    stopped: Stopped,
) -> Outcome<U, E> {
    let mut started = Vec::new();
    let dropped = catch_unwind(AssertUnwindSafe(|| {
        cancelling(stopped.reason(), || {
            collecting(&mut started, || body.set(None));
        });
    }));
    inner.keep(started);
    match dropped {
        Ok(()) => Outcome::Stopped(stopped),
        Err(panic) => {
            // The body panicked as it was dropped: that panic is the body's,
            // and the stop it replaces cannot be returned.
            rt.report(Incident::ErrorLostToPanic {
                error: stopped.describe(),
            });
            Outcome::Panicked(panic)
        }
    }
}

/// A body timeout, for a person.
pub(crate) fn timed_out(after: Duration) -> String {
    format!("the scope's body did not finish within {after:?}")
}

/// The heap slot of the in-flight acquire, then of the release.
#[pin_project(project = PhaseProj)]
enum Phase<AF, RF> {
    Acquire(#[pin] AF),
    Between,
    Release(#[pin] RF),
}

type Slot<AF, RF> = Pin<Box<Phase<AF, RF>>>;

impl<AF: Future, RF: Future> Phase<AF, RF> {
    fn poll_acquire(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<AF::Output> {
        match self.project() {
            PhaseProj::Acquire(acquire) => acquire.poll(cx),
            _ => unreachable!("only an acquiring slot is polled for the acquire"),
        }
    }

    fn poll_release(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<RF::Output> {
        match self.project() {
            PhaseProj::Release(release) => release.poll(cx),
            _ => unreachable!("only a releasing slot is polled for the release"),
        }
    }
}

/// Combines the body's outcome and the release's into the scope's result,
/// for every case but the common one (both succeeded). Nothing is lost: a
/// failure that cannot be returned because a panic resumes is reported.
#[cold]
fn settle<R, E, U, M>(
    rt: &Runtime,
    outcome: Outcome<U, E>,
    released: Ending<Verdict, R::Error>,
) -> Result<M::Output<U>, ScopeError<E, R::Error>>
where
    R: Resource<E>,
    E: fmt::Debug,
    M: ReleaseVerdict,
{
    let failure = match released {
        Ending::Released(verdict) => {
            return match outcome {
                Outcome::Completed(output) => Ok(M::completed(output)),
                Outcome::Failed(error) if M::MAY_SUPPRESS && verdict.suppresses() => {
                    drop(error);
                    Ok(M::suppressed())
                }
                Outcome::Failed(error) => Err(ScopeError::Body {
                    error,
                    release: None,
                }),
                Outcome::Stopped(stopped) => Err(stopped.into_error(None)),
                Outcome::Panicked(panic) => resume_unwind(panic),
            };
        }
        Ending::Failed(failure) => failure,
        Ending::Panicked(release_panic) => {
            match outcome {
                Outcome::Panicked(panic) => {
                    rt.report(Incident::ReleasePanickedDuringPanic {
                        message: panic_message(&release_panic),
                    });
                    drop_during_panic(rt, release_panic);
                    resume_unwind(panic)
                }
                Outcome::Failed(error) => {
                    rt.report(Incident::ErrorLostToPanic {
                        error: format!("{error:?}"),
                    });
                    drop_during_panic(rt, error);
                }
                Outcome::Stopped(stopped) => rt.report(Incident::ErrorLostToPanic {
                    error: stopped.describe(),
                }),
                Outcome::Completed(output) => drop_during_panic(rt, output),
            }
            resume_unwind(release_panic)
        }
    };
    match outcome {
        Outcome::Completed(output) => {
            // The output is dropped: the scope did not complete. Should its
            // `Drop` panic, that panic resumes and the failure is reported.
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| drop(output))) {
                rt.report(Incident::ErrorLostToPanic {
                    error: describe(&failure),
                });
                resume_unwind(panic)
            }
            Err(ScopeError::Release(failure))
        }
        Outcome::Failed(error) => Err(ScopeError::Body {
            error,
            release: Some(failure),
        }),
        Outcome::Stopped(stopped) => Err(stopped.into_error(Some(failure))),
        Outcome::Panicked(panic) => {
            rt.report(match failure {
                Failure::TimedOut(after) => Incident::ReleaseTimedOutDuringPanic { after },
                failure => Incident::ReleaseFailedDuringPanic {
                    error: describe(&failure),
                },
            });
            resume_unwind(panic)
        }
    }
}

/// Drops a value of the user's before a panic resumes: a panic of its
/// `Drop` then (a second one would abort the process) is caught and
/// reported.
pub(crate) fn drop_during_panic<T>(rt: &Runtime, value: T) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| drop(value))) {
        rt.report(Incident::ReleasePanickedDuringPanic {
            message: panic_message(&panic),
        });
    }
}

/// A failure for a person: errors with `Debug`, the rest in words.
pub(crate) fn describe<Er: fmt::Debug>(failure: &Failure<Er>) -> String {
    match failure {
        Failure::Error(error) => format!("{error:?}"),
        Failure::TimedOut(after) => format!("timed out after {after:?}"),
        Failure::NoBodyToBound(after) => Failure::<String>::NoBodyToBound(*after).to_string(),
        Failure::Many(all) => all.iter().map(describe).collect::<Vec<_>>().join("; "),
    }
}

/// A failure of work handed to the runtime, as the cleanup tracker counts it.
pub(crate) fn cleanup_error<Er: fmt::Debug>(failure: &Failure<Er>) -> CleanupError {
    match failure {
        Failure::TimedOut(after) => CleanupError::TimedOut(*after),
        failure => CleanupError::Failed(describe(failure)),
    }
}

/// How the release ended.
enum Ending<V, Er> {
    Released(V),
    Failed(Failure<Er>),
    Panicked(Panic),
}

/// Phase 1: the acquire is in flight.
struct Acquiring<'a, R, E, AF, RF>
where
    R: Resource<E>,
    AF: Future<Output = Acquired<E, R>> + Send + 'static,
    RF: Future + Send + 'static,
{
    rt: &'a Runtime,
    in_flight: Option<Slot<AF, RF>>,
    /// Set while the acquire is being polled: if the guard is dropped then,
    /// the acquire panicked and is poisoned, not in flight.
    polling: bool,
    resource: PhantomData<fn(R, &E)>,
}

impl<R, E, AF, RF> Acquiring<'_, R, E, AF, RF>
where
    R: Resource<E>,
    AF: Future<Output = Acquired<E, R>> + Send + 'static,
    RF: Future + Send + 'static,
{
    #[inline]
    #[allow(clippy::type_complexity)] // the value, the releaser and the slot, or the failure
    fn poll_acquire(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(R::Value, R::Releaser, Slot<AF, RF>), Failure<R::Error>>> {
        let Some(slot) = &mut self.in_flight else {
            unreachable!("the acquire is polled until it finishes, then never again")
        };
        // A panic in this poll unwinds through the scope with `polling` set.
        self.polling = true;
        let polled = slot.as_mut().poll_acquire(cx);
        self.polling = false;
        let Poll::Ready(acquired) = polled else {
            return Poll::Pending;
        };
        let Some(mut slot) = self.in_flight.take() else {
            unreachable!("checked above")
        };
        // Drop the finished acquire now; the slot waits for the release.
        slot.set(Phase::Between);
        Poll::Ready(acquired.map(|(value, releaser)| (value, releaser, slot)))
    }
}

impl<R, E, AF, RF> Drop for Acquiring<'_, R, E, AF, RF>
where
    R: Resource<E>,
    AF: Future<Output = Acquired<E, R>> + Send + 'static,
    RF: Future + Send + 'static,
{
    fn drop(&mut self) {
        if self.polling {
            // The acquire panicked: it is dropped here, not handed over.
            return;
        }
        if let Some(mut slot) = self.in_flight.take() {
            let acquire = poll_fn(move |cx| slot.as_mut().poll_acquire(cx));
            finish_acquire::<R, E, _>(self.rt, acquire, drop_reason());
        }
    }
}

/// Hands an in-flight acquire to the runtime: the task finishes it, then
/// releases what it yields with `Cancelled(reason)` (an acquire that fails
/// is reported). Both steps are bounded by the runtime's cleanup timeout. A cancel-safe acquire
/// ([`Resource::CANCEL_SAFE_ACQUIRE`]) is dropped instead.
#[cold]
#[inline(never)]
pub(crate) fn finish_acquire<R, E, F>(rt: &Runtime, acquire: F, reason: Cancel)
where
    R: Resource<E>,
    F: Future<Output = Acquired<E, R>> + Send + 'static,
{
    if R::CANCEL_SAFE_ACQUIRE {
        // It undoes itself.
        drop(acquire);
        return;
    }
    let task_rt = rt.clone();
    let bound = rt.cleanup_timeout();
    rt.spawn_cleanup(CleanupKind::FinishAcquire, None, Vec::new(), async move {
        let rt = task_rt;
        // Cut at the bound, the acquire is dropped under a catch, as the
        // task's own work is: the timeout is reported, and a panicking
        // `Drop` beside it.
        let timer = bound.map(|after| rt.sleep(after));
        let acquire = DropCaught::new(acquire, rt.clone());
        let (value, releaser) = match OrTimeout::new(acquire, timer).await {
            Some(Ok(acquired)) => acquired,
            // Nothing was acquired, so nothing needs releasing; the failure
            // has nobody left to be returned to, so it is reported.
            Some(Err(failure)) => return Err(cleanup_error(&failure)),
            None => return Err(CleanupError::TimedOut(bound.unwrap_or_default())),
        };
        let release = R::release(releaser, value, &Exit::Cancelled(reason), &rt);
        let timer = bound.map(|after| rt.sleep(after));
        let release = DropCaught::new(release, rt.clone());
        match OrTimeout::new(release, timer).await {
            Some(Ok(_)) => Ok(()),
            Some(Err(failure)) => Err(cleanup_error(&failure)),
            None => Err(CleanupError::TimedOut(bound.unwrap_or_default())),
        }
    });
}

/// Phase 2: the body runs; the value and the releaser are held here, with
/// the cleanups of scopes cancelled inside the body, which end first.
struct Held<'a, R, E>
where
    R: Resource<E>,
{
    rt: &'a Runtime,
    slot: Option<(R::Value, R::Releaser)>,
    inner: Inner,
}

impl<R, E> Drop for Held<'_, R, E>
where
    R: Resource<E>,
{
    fn drop(&mut self) {
        if let Some((value, releaser)) = self.slot.take() {
            let inner = self.inner.take();
            release_cancelled::<R, E>(self.rt, releaser, value, drop_reason(), inner);
        }
    }
}

/// Releases a value whose scope was cancelled before its release started,
/// as a runtime task.
#[cold]
#[inline(never)]
pub(crate) fn release_cancelled<R, E>(
    rt: &Runtime,
    releaser: R::Releaser,
    value: R::Value,
    reason: Cancel,
    inner: Vec<CleanupDone>,
) where
    R: Resource<E>,
{
    // `release` is user code and this may run during an unwind: a panic
    // here must not escape (it would abort), so it is caught and reported
    // like any other cleanup panic.
    let exit = Exit::Cancelled(reason);
    crate::trace::exit(&exit);
    let release = catch_unwind(AssertUnwindSafe(|| R::release(releaser, value, &exit, rt)));
    spawn_release(rt, release, inner);
}

/// Phase 3: the release is in flight, with how the body ended. Dropped
/// (the scope cancelled while releasing), it hands the release to the
/// runtime, and a failure of the body's, with nobody left to be returned
/// to, is reported.
struct Releasing<'a, AF, RF, V, Er, U, E>
where
    AF: Future + Send + 'static,
    RF: Future<Output = Result<V, Failure<Er>>> + Send + 'static,
    V: Send + 'static,
    Er: fmt::Debug + Send + 'static,
    E: fmt::Debug,
{
    rt: &'a Runtime,
    in_flight: Option<Slot<AF, RF>>,
    outcome: Option<Outcome<U, E>>,
}

impl<AF, RF, V, Er, U, E> Releasing<'_, AF, RF, V, Er, U, E>
where
    AF: Future + Send + 'static,
    RF: Future<Output = Result<V, Failure<Er>>> + Send + 'static,
    V: Send + 'static,
    Er: fmt::Debug + Send + 'static,
    E: fmt::Debug,
{
    /// How the body ended and how the release did, once it has.
    #[inline]
    fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<(Outcome<U, E>, Ending<V, Er>)> {
        let Some(slot) = &mut self.in_flight else {
            unreachable!("the release is polled until it finishes, then never again")
        };
        // A release panic is caught: after a panicked body, the body's panic
        // is the one that resumes.
        let released = match catch_unwind(AssertUnwindSafe(|| slot.as_mut().poll_release(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(Ok(verdict))) => Ending::Released(verdict),
            Ok(Poll::Ready(Err(failure))) => Ending::Failed(failure),
            Err(panic) => Ending::Panicked(panic),
        };
        self.in_flight = None;
        let Some(outcome) = self.outcome.take() else {
            unreachable!("taken once, when the release ends")
        };
        Poll::Ready((outcome, released))
    }
}

impl<AF, RF, V, Er, U, E> Drop for Releasing<'_, AF, RF, V, Er, U, E>
where
    AF: Future + Send + 'static,
    RF: Future<Output = Result<V, Failure<Er>>> + Send + 'static,
    V: Send + 'static,
    Er: fmt::Debug + Send + 'static,
    E: fmt::Debug,
{
    fn drop(&mut self) {
        // The failure is reported first (before the release can report its
        // own); a panic of the body's output or error while it is (their
        // `Drop`, their `Debug`) resumes once the release is handed over.
        let reported = self
            .outcome
            .take()
            .map(|outcome| catch_unwind(AssertUnwindSafe(|| unreturned(self.rt, outcome))));
        if let Some(mut slot) = self.in_flight.take() {
            let release = poll_fn(move |cx| slot.as_mut().poll_release(cx));
            spawn_release(self.rt, Ok(release), Vec::new());
        }
        if let Some(Err(panic)) = reported {
            resume_unwind(panic);
        }
    }
}

/// Reports how the body of a scope cancelled while releasing ended, when
/// that was a failure: nobody is left to return it to.
#[cold]
#[inline(never)]
fn unreturned<U, E: fmt::Debug>(rt: &Runtime, outcome: Outcome<U, E>) {
    let failure = match outcome {
        Outcome::Completed(_) => return,
        Outcome::Failed(error) => format!("{error:?}"),
        Outcome::Stopped(stopped) => stopped.describe(),
        Outcome::Panicked(panic) => format!("panic: {}", panic_message(&panic)),
    };
    rt.report(Incident::Unreturned {
        work: "the body of a scope cancelled while releasing",
        failure,
    });
}

/// Hands a release future (or the panic that building it raised) to the
/// runtime as a cleanup task, bounded by the runtime's cleanup timeout. It
/// starts once the cleanups in `inner` (of scopes nested inside) have ended.
#[cold]
#[inline(never)]
fn spawn_release<F, V, Er>(rt: &Runtime, release: Result<F, Panic>, inner: Vec<CleanupDone>)
where
    F: Future<Output = Result<V, Failure<Er>>> + Send + 'static,
    V: Send + 'static,
    Er: fmt::Debug + Send + 'static,
{
    rt.spawn_cleanup(
        CleanupKind::Release,
        rt.cleanup_timeout(),
        inner,
        async move {
            // A panic while building the release is re-raised inside the task,
            // where it is caught and counted like any other cleanup panic.
            match release {
                Ok(release) => match release.await {
                    Ok(_) => Ok(()),
                    Err(failure) => Err(cleanup_error(&failure)),
                },
                Err(panic) => resume_unwind(panic),
            }
        },
    );
}
