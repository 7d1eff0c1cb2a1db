//! The scope itself: acquire → body → release, with the release guaranteed.
//!
//! The scope is an `async fn` (the body's future borrows the value, which only
//! the compiler's generators can hold without `unsafe`), built from three
//! guards, one per phase. Each guard owns what the phase needs and, if the
//! scope's future is dropped while the phase is in flight, hands the remaining
//! work to the runtime as a tracked cleanup task:
//!
//! - [`Acquiring`]: the in-flight acquire future (boxed, so it can move into a
//!   task) and the resource; on drop, the task finishes the acquire and
//!   releases what it yields with `Cancelled(Dropped)`.
//! - [`Held`]: the value and the resource while the body runs; on drop (after
//!   the body's future, which borrows the value, has been dropped), the task
//!   runs the release with `Cancelled(Dropped)`.
//! - [`Releasing`]: the in-flight release future (boxed); on drop, the task
//!   finishes it.

use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

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
    let acquire = resource.acquire();
    let mut acquiring = Acquiring {
        rt,
        release_timeout,
        in_flight: Some((Box::pin(acquire), resource)),
        body_error: PhantomData,
    };
    let (value, resource) = match poll_fn(|cx| acquiring.poll_acquire(cx)).await {
        Ok(acquired) => acquired,
        Err(error) => return Err(ScopeError::Acquire(error)),
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

    // Release, told how the body ended.
    let exit = match &outcome {
        Ok(Ok(_)) => Exit::Completed,
        Ok(Err(error)) => Exit::Failed(error),
        Err(_) => Exit::Panicked,
    };
    let released = match catch_unwind(AssertUnwindSafe(|| resource.release(value, &exit))) {
        Ok(release) => {
            let mut releasing = Releasing {
                rt,
                timeout: release_timeout,
                timer: None,
                in_flight: Some(Box::pin(release)),
            };
            poll_fn(|cx| releasing.poll_release(cx)).await
        }
        Err(panic) => Released::Panicked(panic),
    };
    settle::<R, E, U>(rt, outcome, released)
}

/// Combines the body's outcome and the release's into the scope's result.
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

type Boxed<F> = Pin<Box<F>>;

/// Phase 1: the acquire is in flight.
struct Acquiring<'a, F, R, E>
where
    R: Resource<E>,
    F: Future<Output = Result<R::Value, R::Error>> + Send + 'static,
{
    rt: &'a Runtime,
    release_timeout: Option<Duration>,
    in_flight: Option<(Boxed<F>, R)>,
    body_error: PhantomData<fn(&E)>,
}

impl<F, R, E> Acquiring<'_, F, R, E>
where
    R: Resource<E>,
    F: Future<Output = Result<R::Value, R::Error>> + Send + 'static,
{
    #[allow(clippy::type_complexity)] // the value and the resource, or the error
    fn poll_acquire(&mut self, cx: &mut Context<'_>) -> Poll<Result<(R::Value, R), R::Error>> {
        let Some((acquire, _)) = &mut self.in_flight else {
            unreachable!("the acquire is polled until it finishes, then never again")
        };
        let polled = catch_unwind(AssertUnwindSafe(|| acquire.as_mut().poll(cx)));
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(acquired)) => {
                let Some((_, resource)) = self.in_flight.take() else {
                    unreachable!("checked above")
                };
                Poll::Ready(acquired.map(|value| (value, resource)))
            }
            Err(panic) => {
                // The acquire is poisoned: drop it here rather than hand it
                // to the runtime when this guard is dropped by the unwinding.
                self.in_flight = None;
                resume_unwind(panic)
            }
        }
    }
}

impl<F, R, E> Drop for Acquiring<'_, F, R, E>
where
    R: Resource<E>,
    F: Future<Output = Result<R::Value, R::Error>> + Send + 'static,
{
    fn drop(&mut self) {
        let Some((acquire, resource)) = self.in_flight.take() else {
            return;
        };
        let rt = self.rt.clone();
        let acquire_bound = rt.cleanup_timeout();
        let release_bound = min_bound(self.release_timeout, acquire_bound);
        self.rt
            .spawn_cleanup(CleanupKind::FinishAcquire, None, async move {
                let timer = acquire_bound.map(|after| rt.sleep(after));
                let value = match OrTimeout::new(acquire, timer).await {
                    Some(Ok(value)) => value,
                    // Nothing was acquired, so nothing needs releasing.
                    Some(Err(_)) => return Ok(()),
                    None => return Err(CleanupError::TimedOut(acquire_bound.unwrap_or_default())),
                };
                let release = resource.release(value, &Exit::Cancelled(Cancel::Dropped));
                let timer = release_bound.map(|after| rt.sleep(after));
                match OrTimeout::new(release, timer).await {
                    Some(Ok(_)) => Ok(()),
                    Some(Err(error)) => Err(CleanupError::Failed(format!("{error:?}"))),
                    None => Err(CleanupError::TimedOut(release_bound.unwrap_or_default())),
                }
            });
    }
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
        let Some((value, resource)) = self.slot.take() else {
            return;
        };
        // `release` is user code and this may run during an unwind: a panic
        // here must not escape (it would abort), so it is caught and reported
        // like any other cleanup panic.
        let release = catch_unwind(AssertUnwindSafe(|| {
            resource.release(value, &Exit::Cancelled(Cancel::Dropped))
        }));
        spawn_release(self.rt, self.release_timeout, release);
    }
}

/// Phase 3: the release is in flight.
struct Releasing<'a, F, V, Er>
where
    F: Future<Output = Result<V, Er>> + Send + 'static,
    V: Send + 'static,
    Er: std::fmt::Debug + Send + 'static,
{
    rt: &'a Runtime,
    timeout: Option<Duration>,
    timer: Option<Sleep>,
    in_flight: Option<Boxed<F>>,
}

impl<F, V, Er> Releasing<'_, F, V, Er>
where
    F: Future<Output = Result<V, Er>> + Send + 'static,
    V: Send + 'static,
    Er: std::fmt::Debug + Send + 'static,
{
    fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<Released<V, Er>> {
        let Some(release) = &mut self.in_flight else {
            unreachable!("the release is polled until it finishes, then never again")
        };
        let polled = catch_unwind(AssertUnwindSafe(|| release.as_mut().poll(cx)));
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

impl<F, V, Er> Drop for Releasing<'_, F, V, Er>
where
    F: Future<Output = Result<V, Er>> + Send + 'static,
    V: Send + 'static,
    Er: std::fmt::Debug + Send + 'static,
{
    fn drop(&mut self) {
        if let Some(release) = self.in_flight.take() {
            spawn_release(self.rt, self.timeout, Ok(release));
        }
    }
}

/// Hands a release future (or the panic that building it raised) to the
/// runtime as a cleanup task, bounded by the release timeout and the
/// runtime's cleanup timeout.
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
