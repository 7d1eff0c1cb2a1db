use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::resume_unwind;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::join;
use pin_project::pin_project;

use super::{
    HeldPart, Kept, ReleaseCancelled, combine_releases, failed, finish_release, keep_release,
    panicked, part_released, release_during_panic, report_during_panic, start_release,
};
use crate::error::{Failure, PartError};
use crate::exit::{Cancel, Exit};
use crate::nest::Inner;
use crate::resource::Resource;
use crate::rt::{Incident, Runtime};
use crate::util::{CatchUnwind, Panic, min_bound};
use crate::verdict::Verdict;
use crate::with::{describe, release_cancelled};

/// Two resources acquired and released concurrently; see
/// [`ResourceExt::zip`](crate::ResourceExt::zip) and [`both`](crate::both).
#[must_use = "a resource does nothing until it is used with `with`"]
pub struct Zip<A, B, E> {
    a: A,
    b: B,
    body_error: PhantomData<fn(&E)>,
}

impl<A, B, E> Zip<A, B, E> {
    pub(crate) fn new(a: A, b: B) -> Self {
        Zip {
            a,
            b,
            body_error: PhantomData,
        }
    }
}

impl<A: fmt::Debug, B: fmt::Debug, E> fmt::Debug for Zip<A, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Zip")
            .field("a", &self.a)
            .field("b", &self.b)
            .finish()
    }
}

/// The error of `zip`'s parts.
type Parts<A, B, E> = PartError<<A as Resource<E>>::Error, <B as Resource<E>>::Error>;

/// Releases a part whose sibling failed to acquire with `failure`: the
/// failures, joined (the part's own error made the combined one's with
/// `part`). Should the release panic, the panic resumes and `failure` is
/// reported.
async fn release_sibling<R, E, P: fmt::Debug>(
    rt: &Runtime,
    releaser: R::Releaser,
    value: R::Value,
    failure: Failure<P>,
    part: fn(R::Error) -> P,
) -> Failure<P>
where
    R: Resource<E>,
{
    let failure = Kept::new(rt.clone(), failure, failed);
    let release =
        start_release::<R, E>(releaser, value, &Exit::Cancelled(Cancel::SiblingFailed), rt);
    let released = finish_release(release).await;
    let failure = failure.take();
    match released {
        Ok(Ok(_)) => failure,
        Ok(Err(released)) => failure.and(released.map(part)),
        Err(panic) => {
            report_lost(rt, &failure);
            resume_unwind(panic)
        }
    }
}

/// Reports a failure that a resuming panic replaces.
fn report_lost<Er: fmt::Debug>(rt: &Runtime, failure: &Failure<Er>) {
    rt.report(Incident::ErrorLostToPanic {
        error: describe(failure),
    });
}

impl<E, A, B> Resource<E> for Zip<A, B, E>
where
    A: Resource<E>,
    B: Resource<E>,
{
    type Value = (A::Value, B::Value);
    type Error = Parts<A, B, E>;
    type Releaser = (A::Releaser, B::Releaser);

    fn acquire(
        self,
        rt: &Runtime,
    ) -> impl Future<Output = Result<(Self::Value, Self::Releaser), Failure<Self::Error>>> + Send + 'static
    {
        // Each part, once acquired, waits in a guard for the other: if the
        // combined acquire is dropped meanwhile, it is released, not dropped.
        let a = Guarded::new::<A, E>(rt, self.a.acquire(rt));
        let b = Guarded::new::<B, E>(rt, self.b.acquire(rt));
        let rt = rt.clone();
        async move {
            let (a, b) = join(a, b).await;
            match (unguard(a), unguard(b)) {
                (Ok(Ok((va, ra))), Ok(Ok((vb, rb)))) => Ok(((va, vb), (ra, rb))),
                (Ok(Ok((va, ra))), Ok(Err(b_failure))) => {
                    let b_failure = b_failure.map(PartError::Second);
                    let release =
                        release_sibling::<A, E, _>(&rt, ra, va, b_failure, PartError::First);
                    Err(Box::pin(release).await)
                }
                (Ok(Err(a_failure)), Ok(Ok((vb, rb)))) => {
                    let a_failure = a_failure.map(PartError::First);
                    let release =
                        release_sibling::<B, E, _>(&rt, rb, vb, a_failure, PartError::Second);
                    Err(Box::pin(release).await)
                }
                (Ok(Err(a_failure)), Ok(Err(b_failure))) => Err(a_failure
                    .map(PartError::First)
                    .and(b_failure.map(PartError::Second))),
                (Err(panic), b) => {
                    let panic = Kept::new(rt.clone(), panic, panicked);
                    match b {
                        Ok(Ok((vb, rb))) => {
                            Box::pin(release_during_panic::<B, E>(&rt, rb, vb)).await;
                        }
                        Ok(Err(b_failure)) => {
                            report_lost(&rt, &b_failure.map(Parts::<A, B, E>::Second));
                        }
                        Err(second) => report_during_panic::<(), A::Error>(&rt, Err(second)),
                    }
                    resume_unwind(panic.take())
                }
                (Ok(a), Err(panic)) => {
                    let panic = Kept::new(rt.clone(), panic, panicked);
                    match a {
                        Ok((va, ra)) => {
                            Box::pin(release_during_panic::<A, E>(&rt, ra, va)).await;
                        }
                        Err(a_failure) => report_lost(&rt, &a_failure.map(Parts::<A, B, E>::First)),
                    }
                    resume_unwind(panic.take())
                }
            }
        }
    }

    fn release(
        (ra, rb): Self::Releaser,
        (va, vb): Self::Value,
        exit: &Exit<'_, E>,
        rt: &Runtime,
    ) -> impl Future<Output = Result<Verdict, Failure<Self::Error>>> + Send + 'static {
        let a = start_release::<A, E>(ra, va, exit, rt);
        let b = start_release::<B, E>(rb, vb, exit, rt);
        let rt = rt.clone();
        async move {
            let (a, b) = join(keep_release(&rt, a), keep_release(&rt, b)).await;
            combine_releases(
                &rt,
                part_released(a.take(), PartError::First),
                part_released(b.take(), PartError::Second),
            )
        }
    }

    fn body_timeout(&self) -> Option<Duration> {
        min_bound(self.a.body_timeout(), self.b.body_timeout())
    }

    fn acquired_body_timeout((ra, rb): &Self::Releaser) -> Option<Duration> {
        min_bound(A::acquired_body_timeout(ra), B::acquired_body_timeout(rb))
    }

    fn acquired_tripwire((ra, rb): &Self::Releaser) -> Option<crate::Tripwire> {
        crate::Tripwire::either(A::acquired_tripwire(ra), B::acquired_tripwire(rb))
    }
}

/// One part's acquire: once it yields, the part waits in a [`HeldPart`].
#[pin_project]
struct Guarded<F, V, Rel> {
    #[pin]
    acquire: CatchUnwind<F>,
    rt: Runtime,
    release: ReleaseCancelled<V, Rel>,
}

impl<F, V, Rel> Guarded<F, V, Rel> {
    fn new<R, E>(rt: &Runtime, acquire: F) -> Self
    where
        R: Resource<E, Value = V, Releaser = Rel>,
    {
        Guarded {
            acquire: CatchUnwind::new(acquire),
            rt: rt.clone(),
            release: release_cancelled::<R, E>,
        }
    }
}

/// A part's acquire as [`Guarded`] yields it: what it acquired, held; its
/// failure or panic, kept.
type GuardedPart<V, Rel, Er> = Result<Result<HeldPart<V, Rel>, Kept<Failure<Er>>>, Kept<Panic>>;

impl<F, V, Rel, Er> Future for Guarded<F, V, Rel>
where
    F: Future<Output = Result<(V, Rel), Failure<Er>>>,
    Er: fmt::Debug,
{
    type Output = GuardedPart<V, Rel, Er>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let acquired = std::task::ready!(this.acquire.poll(cx));
        let release = *this.release;
        let rt = &*this.rt;
        Poll::Ready(match acquired {
            Ok(Ok((value, releaser))) => Ok(Ok(HeldPart {
                rt: rt.clone(),
                part: Some((value, releaser)),
                release,
                inner: Inner::default(),
            })),
            Ok(Err(failure)) => Ok(Err(Kept::new(rt.clone(), failure, failed))),
            Err(panic) => Err(Kept::new(rt.clone(), panic, panicked)),
        })
    }
}

/// Takes a part out of its guard.
fn unguard<V, Rel, Er>(
    part: GuardedPart<V, Rel, Er>,
) -> Result<Result<(V, Rel), Failure<Er>>, Panic> {
    match part {
        Ok(Ok(held)) => Ok(Ok(held.take())),
        Ok(Err(failure)) => Ok(Err(failure.take())),
        Err(panic) => Err(panic.take()),
    }
}
