use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use futures::TryFutureExt;

use crate::error::Failure;
use crate::exit::Exit;
use crate::resource::Resource;
use crate::rt::Runtime;
use crate::verdict::Verdict;

/// A resource whose value is transformed both ways; see
/// [`ResourceExt::map`](crate::ResourceExt::map).
///
/// `into` and `back` should not panic: a panic there loses the value without
/// its release.
#[must_use = "a resource does nothing until it is used with `with`"]
pub struct Map<R, F, G, E> {
    inner: R,
    into: F,
    back: G,
    body_error: PhantomData<fn(&E)>,
}

impl<R, F, G, E> Map<R, F, G, E> {
    pub(crate) fn new(inner: R, into: F, back: G) -> Self {
        Map {
            inner,
            into,
            back,
            body_error: PhantomData,
        }
    }
}

impl<R: fmt::Debug, F, G, E> fmt::Debug for Map<R, F, G, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<E, R, F, G, T> Resource<E> for Map<R, F, G, E>
where
    R: Resource<E>,
    F: FnOnce(R::Value) -> T + Send + 'static,
    G: FnOnce(T) -> R::Value + Send + 'static,
    T: Send + 'static,
{
    type Value = T;
    type Error = R::Error;
    type Releaser = (R::Releaser, G);
    const CANCEL_SAFE_ACQUIRE: bool = R::CANCEL_SAFE_ACQUIRE;

    fn acquire(
        self,
        rt: &Runtime,
    ) -> impl Future<Output = Result<(T, Self::Releaser), Failure<R::Error>>> + Send + 'static {
        let Map {
            inner, into, back, ..
        } = self;
        inner
            .acquire(rt)
            .map_ok(move |(value, releaser)| (into(value), (releaser, back)))
    }

    fn release(
        (releaser, back): Self::Releaser,
        value: T,
        exit: &Exit<'_, E>,
        rt: &Runtime,
    ) -> impl Future<Output = Result<Verdict, Failure<R::Error>>> + Send + 'static {
        R::release(releaser, back(value), exit, rt)
    }

    fn body_timeout(&self) -> Option<Duration> {
        self.inner.body_timeout()
    }

    fn acquired_body_timeout((releaser, _): &Self::Releaser) -> Option<Duration> {
        R::acquired_body_timeout(releaser)
    }

    fn acquired_tripwire((releaser, _): &Self::Releaser) -> Option<crate::Tripwire> {
        R::acquired_tripwire(releaser)
    }
}
