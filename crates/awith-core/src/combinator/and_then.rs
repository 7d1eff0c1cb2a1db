use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::time::Duration;

use super::{
    HeldPart, Kept, combine_releases, failed, finish_release, keep_release, panicked,
    part_released, release_during_panic, start_release,
};
use crate::error::{Failure, PartError};
use crate::exit::{Cancel, Exit};
use crate::nest::{CollectInto, all_done};
use crate::resource::Resource;
use crate::rt::{Incident, Runtime};
use crate::util::{CatchUnwind, min_bound};
use crate::verdict::Verdict;
use crate::with::describe;

/// A resource acquired after another, from its value; see
/// [`ResourceExt::and_then`](crate::ResourceExt::and_then).
#[must_use = "a resource does nothing until it is used with `with`"]
pub struct AndThen<A, F, E> {
    first: A,
    then: F,
    body_error: PhantomData<fn(&E)>,
}

impl<A, F, E> AndThen<A, F, E> {
    pub(crate) fn new(first: A, then: F) -> Self {
        AndThen {
            first,
            then,
            body_error: PhantomData,
        }
    }
}

impl<A: fmt::Debug, F, E> fmt::Debug for AndThen<A, F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AndThen")
            .field("first", &self.first)
            .finish_non_exhaustive()
    }
}

/// The error of `and_then`'s parts.
type Parts<A, B, E> = PartError<<A as Resource<E>>::Error, <B as Resource<E>>::Error>;

impl<E, A, F, B> Resource<E> for AndThen<A, F, E>
where
    A: Resource<E>,
    F: FnOnce(&mut A::Value) -> B + Send + 'static,
    B: Resource<E>,
{
    type Value = (A::Value, B::Value);
    type Error = Parts<A, B, E>;
    /// Both parts' releasers, and the second's body timeout (read from its
    /// recipe, which the acquire consumes).
    type Releaser = (A::Releaser, B::Releaser, Option<Duration>);

    fn acquire(
        self,
        rt: &Runtime,
    ) -> impl Future<Output = Result<(Self::Value, Self::Releaser), Failure<Self::Error>>> + Send + 'static
    {
        let AndThen { first, then, .. } = self;
        let first = first.acquire(rt);
        let rt = rt.clone();
        async move {
            let (first_value, first_releaser) = match first.await {
                Ok(acquired) => acquired,
                Err(failure) => return Err(failure.map(PartError::First)),
            };
            // Held in a guard until the second is acquired: released if this
            // acquire is dropped half-way.
            let mut held = HeldPart::new::<A, E>(&rt, first_value, first_releaser);
            let made = catch_unwind(AssertUnwindSafe(|| {
                let second = then(held.value());
                (second.body_timeout(), second.acquire(&rt))
            }));
            let (second_bound, second) = match made {
                // Cleanups the second's acquire starts (a part of it timed
                // out, or it is dropped) end before the first is released.
                Ok((bound, second)) => (
                    bound,
                    CollectInto::new(CatchUnwind::new(second), &held.inner).await,
                ),
                Err(panic) => (None, Err(panic)),
            };
            if held.inner.any() {
                all_done(held.inner.snapshot()).await;
            }
            let (first_value, first_releaser) = held.take();
            match second {
                Ok(Ok((second_value, second_releaser))) => Ok((
                    (first_value, second_value),
                    (first_releaser, second_releaser, second_bound),
                )),
                Ok(Err(failure)) => {
                    let failure = Kept::new(rt.clone(), failure.map(PartError::Second), failed);
                    // The first value was never used: release it at once.
                    let release = start_release::<A, E>(
                        first_releaser,
                        first_value,
                        &Exit::Cancelled(Cancel::SiblingFailed),
                        &rt,
                    );
                    // Boxed, as every path after a failure: the common path's
                    // future stays small.
                    let released = Box::pin(finish_release(release)).await;
                    let failure = failure.take();
                    match released {
                        Ok(Ok(_)) => Err(failure),
                        Ok(Err(release_failure)) => {
                            Err(failure.and(release_failure.map(PartError::First)))
                        }
                        Err(panic) => {
                            // The release's panic resumes: the failure that
                            // cannot be returned is reported.
                            rt.report(Incident::ErrorLostToPanic {
                                error: describe(&failure),
                            });
                            resume_unwind(panic)
                        }
                    }
                }
                Err(panic) => {
                    let panic = Kept::new(rt.clone(), panic, panicked);
                    Box::pin(release_during_panic::<A, E>(
                        &rt,
                        first_releaser,
                        first_value,
                    ))
                    .await;
                    resume_unwind(panic.take())
                }
            }
        }
    }

    fn release(
        (first_releaser, second_releaser, _): Self::Releaser,
        (first_value, second_value): Self::Value,
        exit: &Exit<'_, E>,
        rt: &Runtime,
    ) -> impl Future<Output = Result<Verdict, Failure<Self::Error>>> + Send + 'static {
        let second = start_release::<B, E>(second_releaser, second_value, exit, rt);
        let first = start_release::<A, E>(first_releaser, first_value, exit, rt);
        let rt = rt.clone();
        async move {
            // LIFO: the second part is released before the first.
            let second = keep_release(&rt, second).await;
            let first = finish_release(first).await;
            combine_releases(
                &rt,
                part_released(second.take(), PartError::Second),
                part_released(first, PartError::First),
            )
        }
    }

    fn body_timeout(&self) -> Option<Duration> {
        self.first.body_timeout()
    }

    fn acquired_body_timeout((first, second, second_bound): &Self::Releaser) -> Option<Duration> {
        let second = min_bound(*second_bound, B::acquired_body_timeout(second));
        min_bound(A::acquired_body_timeout(first), second)
    }

    fn acquired_tripwire((first, second, _): &Self::Releaser) -> Option<crate::Tripwire> {
        crate::Tripwire::either(A::acquired_tripwire(first), B::acquired_tripwire(second))
    }
}
