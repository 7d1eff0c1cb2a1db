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

/// A resource whose error is converted; see
/// [`ResourceExt::map_err`](crate::ResourceExt::map_err).
#[must_use = "a resource does nothing until it is used with `with`"]
pub struct MapErr<R, F, E> {
    inner: R,
    f: F,
    body_error: PhantomData<fn(&E)>,
}

impl<R, F, E> MapErr<R, F, E> {
    pub(crate) fn new(inner: R, f: F) -> Self {
        MapErr {
            inner,
            f,
            body_error: PhantomData,
        }
    }
}

impl<R: fmt::Debug, F, E> fmt::Debug for MapErr<R, F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapErr")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<E, R, F, Er> Resource<E> for MapErr<R, F, E>
where
    R: Resource<E>,
    F: Fn(R::Error) -> Er + Clone + Send + Sync + 'static,
    Er: fmt::Debug + Send + 'static,
{
    type Value = R::Value;
    type Error = Er;
    type Releaser = (R::Releaser, F);
    const CANCEL_SAFE_ACQUIRE: bool = R::CANCEL_SAFE_ACQUIRE;

    fn acquire(
        self,
        rt: &Runtime,
    ) -> impl Future<Output = Result<(R::Value, Self::Releaser), Failure<Er>>> + Send + 'static
    {
        let MapErr { inner, f, .. } = self;
        let convert = f.clone();
        inner
            .acquire(rt)
            .map_ok(move |(value, releaser)| (value, (releaser, f)))
            .map_err(move |failure| failure.map(convert))
    }

    fn release(
        (releaser, f): Self::Releaser,
        value: R::Value,
        exit: &Exit<'_, E>,
        rt: &Runtime,
    ) -> impl Future<Output = Result<Verdict, Failure<Er>>> + Send + 'static {
        R::release(releaser, value, exit, rt).map_err(move |failure| failure.map(f))
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
