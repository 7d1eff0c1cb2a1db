use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::time::Duration;

use super::{HeldPart, combine_releases, finish_release, release_during_panic, start_release};
use crate::error::Failure;
use crate::exit::{Cancel, Exit};
use crate::nest::{CollectInto, all_done};
use crate::resource::Resource;
use crate::rt::Runtime;
use crate::util::CatchUnwind;
use crate::verdict::JoinVerdict;

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

type Joined<A, B, E> =
    <<A as Resource<E>>::Verdict as JoinVerdict<<B as Resource<E>>::Verdict>>::Joined;

impl<E, A, F, B> Resource<E> for AndThen<A, F, E>
where
    A: Resource<E>,
    F: FnOnce(&mut A::Value) -> B + Send + 'static,
    B: Resource<E, Error = A::Error>,
    A::Verdict: JoinVerdict<B::Verdict>,
{
    type Value = (A::Value, B::Value);
    type Error = A::Error;
    type Verdict = Joined<A, B, E>;
    type Releaser = (A::Releaser, B::Releaser);

    fn acquire(
        self,
        rt: &Runtime,
    ) -> impl Future<Output = Result<(Self::Value, Self::Releaser), Failure<A::Error>>> + Send + 'static
    {
        let AndThen { first, then, .. } = self;
        let first = first.acquire(rt);
        let rt = rt.clone();
        async move {
            let (first_value, first_releaser) = first.await?;
            // Held in a guard until the second is acquired: released if this
            // acquire is dropped half-way.
            let mut held = HeldPart::new::<A, E>(&rt, first_value, first_releaser);
            let second = match catch_unwind(AssertUnwindSafe(|| then(held.value()).acquire(&rt))) {
                // Cleanups the second's acquire starts (a part of it timed
                // out, or it is dropped) end before the first is released.
                Ok(second) => CollectInto::new(CatchUnwind::new(second), &held.inner).await,
                Err(panic) => Err(panic),
            };
            if held.inner.any() {
                all_done(held.inner.snapshot()).await;
            }
            let (first_value, first_releaser) = held.take();
            match second {
                Ok(Ok((second_value, second_releaser))) => Ok((
                    (first_value, second_value),
                    (first_releaser, second_releaser),
                )),
                Ok(Err(failure)) => {
                    // The first value was never used: release it at once.
                    let release = A::release(
                        first_releaser,
                        first_value,
                        &Exit::Cancelled(Cancel::SiblingFailed),
                        &rt,
                    );
                    let released = release.await;
                    Err(match released {
                        Ok(_) => failure,
                        Err(release_failure) => failure.and(release_failure),
                    })
                }
                Err(panic) => {
                    release_during_panic::<A, E>(&rt, first_releaser, first_value).await;
                    resume_unwind(panic)
                }
            }
        }
    }

    fn release(
        (first_releaser, second_releaser): Self::Releaser,
        (first_value, second_value): Self::Value,
        exit: &Exit<'_, E>,
        rt: &Runtime,
    ) -> impl Future<Output = Result<Self::Verdict, Failure<A::Error>>> + Send + 'static {
        let second = start_release::<B, E>(second_releaser, second_value, exit, rt);
        let first = start_release::<A, E>(first_releaser, first_value, exit, rt);
        let rt = rt.clone();
        async move {
            // LIFO: the second part is released before the first.
            let second = finish_release(second).await;
            let first = finish_release(first).await;
            combine_releases(&rt, second, first)
        }
    }

    fn body_timeout(&self) -> Option<Duration> {
        self.first.body_timeout()
    }
}
