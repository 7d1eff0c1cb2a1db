//! The scope itself: acquire → body → release, with the release guaranteed.
//!
//! The scope is an `async fn` (the body's future borrows the value, which only
//! the compiler's generators can hold without `unsafe`), built from three
//! guards, one per phase. Each guard owns what the phase needs and, if the
//! scope's future is dropped while the phase is in flight, hands the remaining
//! work to the runtime as a tracked cleanup task:
//!
//! - [`Acquiring`]: the in-flight acquire future and the resource; on drop,
//!   the task finishes the acquire and releases what it yields with
//!   `Cancelled(Dropped)`.
//! - [`Held`]: the value and the resource while the body runs; on drop (after
//!   the body's future, which borrows the value, has been dropped), the task
//!   runs the release with `Cancelled(Dropped)`.
//! - [`Releasing`]: the in-flight release future; on drop, the task finishes it.
//!
//! An in-flight acquire or release must be movable into a task, so it lives on
//! the heap. One allocation serves both: a [`Phase`] slot that holds the
//! acquire future, then nothing while the body runs, then the release future
//! (measured: a second allocation cost a fifth of the scope's overhead).

use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project::pin_project;

use crate::error::{ReleaseFailure, ScopeError};
use crate::exit::{Cancel, Exit};
use crate::resource::{ReleaseVerdict, Resource, Scoped};
use crate::rt::{CleanupError, CleanupKind, Incident, Runtime, Sleep};
use crate::util::{CatchUnwind, OrTimeout, Panic, min_bound, panic_message};

pub(crate) async fn run<R, E, B, U>(rt: &Runtime, mut resource: R, body: B) -> Scoped<U, E, R>
where
    R: Resource<E>,
    B: AsyncFnOnce(&mut R::Value) -> Result<U, E>,
{
    let release_timeout = resource.release_timeout();

    // Acquire.
    let mut acquiring = Acquiring {
        rt,
        release_timeout,
        in_flight: Some((Box::pin(Phase::Acquire(resource.acquire())), resource)),
        polling: false,
        body_error: PhantomData,
    };
    let (value, resource, mut slot) = match poll_fn(|cx| acquiring.poll_acquire(cx)).await {
        Acquired::Value(value, resource, slot) => (value, resource, slot),
        Acquired::Error(error) => return Err(ScopeError::Acquire(error)),
    };

    // Body. `held` releases with `Cancelled` if the scope is dropped here.
    let mut held = Held {
        rt,
        release_timeout,
        slot: Some((value, resource)),
    };
    let outcome: Result<Result<U, E>, Panic> = match &mut held.slot {
        Some((value, _)) => match catch_unwind(AssertUnwindSafe(|| body(value))) {
            Ok(body) => CatchUnwind::new(body).await,
            Err(panic) => Err(panic),
        },
        None => unreachable!("the value is held until the body has finished"),
    };
    let Some((value, resource)) = held.slot.take() else {
        unreachable!("the value is held until the body has finished")
    };

    // Release, told how the body ended, in the slot the acquire used.
    let exit = match &outcome {
        Ok(Ok(_)) => Exit::Completed,
        Ok(Err(error)) => Exit::Failed(error),
        Err(_) => Exit::Panicked,
    };
    let released = match catch_unwind(AssertUnwindSafe(|| resource.release(value, &exit))) {
        Ok(release) => {
            slot.set(Phase::Release(release));
            let mut releasing = Releasing {
                rt,
                timeout: release_timeout,
                timer: None,
                in_flight: Some(slot),
            };
            poll_fn(|cx| releasing.poll_release(cx)).await
        }
        Err(panic) => Released::Panicked(panic),
    };
    match (outcome, released) {
        (Ok(Ok(output)), Released::Ok(_)) => Ok(R::Verdict::completed(output)),
        (outcome, released) => settle::<R, E, U>(rt, outcome, released),
    }
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
/// for every case but the common one (both succeeded).
#[cold]
fn settle<R, E, U>(
    rt: &Runtime,
    outcome: Result<Result<U, E>, Panic>,
    released: Released<R::Verdict, R::Error>,
) -> Scoped<U, E, R>
where
    R: Resource<E>,
{
    match (outcome, released) {
        (Ok(Ok(output)), Released::Ok(_)) => Ok(R::Verdict::completed(output)),
        (Ok(Ok(_)), Released::Err(error)) => Err(ScopeError::Release(ReleaseFailure::Error(error))),
        (Ok(Ok(_)), Released::TimedOut(after)) => {
            Err(ScopeError::Release(ReleaseFailure::TimedOut(after)))
        }
        (Ok(Err(error)), Released::Ok(verdict)) => match verdict.suppressed() {
            Some(output) => Ok(output),
            None => Err(ScopeError::Body {
                error,
                release: None,
            }),
        },
        (Ok(Err(error)), Released::Err(release)) => Err(ScopeError::Body {
            error,
            release: Some(ReleaseFailure::Error(release)),
        }),
        (Ok(Err(error)), Released::TimedOut(after)) => Err(ScopeError::Body {
            error,
            release: Some(ReleaseFailure::TimedOut(after)),
        }),
        (Ok(_), Released::Panicked(panic)) => resume_unwind(panic),
        (Err(panic), released) => {
            match released {
                Released::Ok(_) => {}
                Released::Err(error) => rt.report(Incident::ReleaseFailedDuringPanic {
                    error: format!("{error:?}"),
                }),
                Released::TimedOut(after) => {
                    rt.report(Incident::ReleaseTimedOutDuringPanic { after });
                }
                Released::Panicked(release_panic) => {
                    rt.report(Incident::ReleasePanickedDuringPanic {
                        message: panic_message(&release_panic),
                    });
                }
            }
            resume_unwind(panic)
        }
    }
}

/// How the release ended.
enum Released<V, Er> {
    Ok(V),
    Err(Er),
    TimedOut(Duration),
    Panicked(Panic),
}

/// How the acquire ended.
enum Acquired<V, R, Er, S> {
    /// The value, the resource to release it, and the slot for the release.
    Value(V, R, S),
    Error(Er),
}

/// Phase 1: the acquire is in flight.
struct Acquiring<'a, AF, RF, R, E>
where
    R: Resource<E>,
    AF: Future<Output = Result<R::Value, R::Error>> + Send + 'static,
    RF: Future<Output = Result<R::Verdict, R::Error>> + Send + 'static,
{
    rt: &'a Runtime,
    release_timeout: Option<Duration>,
    in_flight: Option<(Slot<AF, RF>, R)>,
    /// Set while the acquire is being polled: if the guard is dropped then,
    /// the acquire panicked and is poisoned, not in flight.
    polling: bool,
    body_error: PhantomData<fn(&E)>,
}

impl<AF, RF, R, E> Acquiring<'_, AF, RF, R, E>
where
    R: Resource<E>,
    AF: Future<Output = Result<R::Value, R::Error>> + Send + 'static,
    RF: Future<Output = Result<R::Verdict, R::Error>> + Send + 'static,
{
    #[inline]
    #[allow(clippy::type_complexity)] // the value, the resource and the slot, or the error
    fn poll_acquire(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Acquired<R::Value, R, R::Error, Slot<AF, RF>>> {
        let Some((slot, _)) = &mut self.in_flight else {
            unreachable!("the acquire is polled until it finishes, then never again")
        };
        // A panic in this poll unwinds through the scope with `polling` set.
        self.polling = true;
        let polled = slot.as_mut().poll_acquire(cx);
        self.polling = false;
        let Poll::Ready(acquired) = polled else {
            return Poll::Pending;
        };
        let Some((mut slot, resource)) = self.in_flight.take() else {
            unreachable!("checked above")
        };
        // Drop the finished acquire now; the slot waits for the release.
        slot.set(Phase::Between);
        Poll::Ready(match acquired {
            Ok(value) => Acquired::Value(value, resource, slot),
            Err(error) => Acquired::Error(error),
        })
    }
}

impl<AF, RF, R, E> Drop for Acquiring<'_, AF, RF, R, E>
where
    R: Resource<E>,
    AF: Future<Output = Result<R::Value, R::Error>> + Send + 'static,
    RF: Future<Output = Result<R::Verdict, R::Error>> + Send + 'static,
{
    fn drop(&mut self) {
        if self.polling {
            // The acquire panicked: it is dropped here, not handed over.
            return;
        }
        if let Some((slot, resource)) = self.in_flight.take() {
            finish_acquire(self.rt, self.release_timeout, slot, resource);
        }
    }
}

/// Hands an in-flight acquire to the runtime: the task finishes it, then
/// releases what it yields with `Cancelled(Dropped)`.
#[cold]
#[inline(never)]
fn finish_acquire<AF, RF, R, E>(
    rt: &Runtime,
    release_timeout: Option<Duration>,
    mut slot: Slot<AF, RF>,
    resource: R,
) where
    R: Resource<E>,
    AF: Future<Output = Result<R::Value, R::Error>> + Send + 'static,
    RF: Future<Output = Result<R::Verdict, R::Error>> + Send + 'static,
{
    let task_rt = rt.clone();
    let acquire_bound = rt.cleanup_timeout();
    let release_bound = min_bound(release_timeout, acquire_bound);
    rt.spawn_cleanup(CleanupKind::FinishAcquire, None, async move {
        let rt = task_rt;
        let timer = acquire_bound.map(|after| rt.sleep(after));
        let acquire = poll_fn(|cx| slot.as_mut().poll_acquire(cx));
        let value = match OrTimeout::new(acquire, timer).await {
            Some(Ok(value)) => value,
            // Nothing was acquired, so nothing needs releasing.
            Some(Err(_)) => return Ok(()),
            None => return Err(CleanupError::TimedOut(acquire_bound.unwrap_or_default())),
        };
        drop(slot);
        let release = resource.release(value, &Exit::Cancelled(Cancel::Dropped));
        let timer = release_bound.map(|after| rt.sleep(after));
        match OrTimeout::new(release, timer).await {
            Some(Ok(_)) => Ok(()),
            Some(Err(error)) => Err(CleanupError::Failed(format!("{error:?}"))),
            None => Err(CleanupError::TimedOut(release_bound.unwrap_or_default())),
        }
    });
}

/// Phase 2: the body runs; the value and the resource are held here.
struct Held<'a, R, E>
where
    R: Resource<E>,
{
    rt: &'a Runtime,
    release_timeout: Option<Duration>,
    slot: Option<(R::Value, R)>,
}

impl<R, E> Drop for Held<'_, R, E>
where
    R: Resource<E>,
{
    fn drop(&mut self) {
        if let Some((value, resource)) = self.slot.take() {
            release_cancelled(self.rt, self.release_timeout, value, resource);
        }
    }
}

/// Releases a value whose scope was cancelled in its body, as a runtime task.
#[cold]
#[inline(never)]
fn release_cancelled<R, E>(
    rt: &Runtime,
    release_timeout: Option<Duration>,
    value: R::Value,
    resource: R,
) where
    R: Resource<E>,
{
    // `release` is user code and this may run during an unwind: a panic
    // here must not escape (it would abort), so it is caught and reported
    // like any other cleanup panic.
    let release = catch_unwind(AssertUnwindSafe(|| {
        resource.release(value, &Exit::Cancelled(Cancel::Dropped))
    }));
    spawn_release(rt, release_timeout, release);
}

/// Phase 3: the release is in flight.
struct Releasing<'a, AF, RF, V, Er>
where
    AF: Future + Send + 'static,
    RF: Future<Output = Result<V, Er>> + Send + 'static,
    V: Send + 'static,
    Er: std::fmt::Debug + Send + 'static,
{
    rt: &'a Runtime,
    timeout: Option<Duration>,
    timer: Option<Sleep>,
    in_flight: Option<Slot<AF, RF>>,
}

impl<AF, RF, V, Er> Releasing<'_, AF, RF, V, Er>
where
    AF: Future + Send + 'static,
    RF: Future<Output = Result<V, Er>> + Send + 'static,
    V: Send + 'static,
    Er: std::fmt::Debug + Send + 'static,
{
    #[inline]
    fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<Released<V, Er>> {
        let Some(slot) = &mut self.in_flight else {
            unreachable!("the release is polled until it finishes, then never again")
        };
        // A release panic is caught: after a panicked body, the body's panic
        // is the one that resumes.
        let polled = catch_unwind(AssertUnwindSafe(|| slot.as_mut().poll_release(cx)));
        let released = match polled {
            Ok(Poll::Ready(Ok(verdict))) => Released::Ok(verdict),
            Ok(Poll::Ready(Err(error))) => Released::Err(error),
            Err(panic) => Released::Panicked(panic),
            Ok(Poll::Pending) => {
                let Some(after) = self.timeout else {
                    return Poll::Pending;
                };
                let rt = self.rt;
                let timer = self.timer.get_or_insert_with(|| rt.sleep(after));
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                Released::TimedOut(after)
            }
        };
        self.in_flight = None;
        Poll::Ready(released)
    }
}

impl<AF, RF, V, Er> Drop for Releasing<'_, AF, RF, V, Er>
where
    AF: Future + Send + 'static,
    RF: Future<Output = Result<V, Er>> + Send + 'static,
    V: Send + 'static,
    Er: std::fmt::Debug + Send + 'static,
{
    fn drop(&mut self) {
        if let Some(mut slot) = self.in_flight.take() {
            let release = poll_fn(move |cx| slot.as_mut().poll_release(cx));
            spawn_release(self.rt, self.timeout, Ok(release));
        }
    }
}

/// Hands a release future (or the panic that building it raised) to the
/// runtime as a cleanup task, bounded by the release timeout and the
/// runtime's cleanup timeout.
#[cold]
#[inline(never)]
fn spawn_release<F, V, Er>(rt: &Runtime, timeout: Option<Duration>, release: Result<F, Panic>)
where
    F: Future<Output = Result<V, Er>> + Send + 'static,
    V: Send + 'static,
    Er: std::fmt::Debug + Send + 'static,
{
    let timeout = min_bound(timeout, rt.cleanup_timeout());
    rt.spawn_cleanup(CleanupKind::Release, timeout, async move {
        // A panic while building the release is re-raised inside the task,
        // where it is caught and counted like any other cleanup panic.
        match release {
            Ok(release) => match release.await {
                Ok(_) => Ok(()),
                Err(error) => Err(CleanupError::Failed(format!("{error:?}"))),
            },
            Err(panic) => resume_unwind(panic),
        }
    });
}
