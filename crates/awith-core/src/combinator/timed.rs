use std::fmt;
use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::task::Poll;
use std::time::Duration;

use crate::error::Failure;
use crate::exit::{Cancel, Exit};
use crate::resource::Resource;
use crate::rt::Runtime;
use crate::time::Deadline;
use crate::util::min_bound;
use crate::verdict::Verdict;
use crate::with::finish_acquire;

/// A resource with deadlines on its acquire, its body and its release; see
/// [`ResourceExt::acquire_timeout`](crate::ResourceExt::acquire_timeout),
/// [`body_timeout`](crate::ResourceExt::body_timeout) and
/// [`release_timeout`](crate::ResourceExt::release_timeout). Its acquire is
/// cancel-safe when the inner resource's is.
///
/// # Cancellation
///
/// Each deadline that expires is a cancellation for `Cancel::Timeout`, as
/// each method says; a scope dropped before its deadlines behaves as
/// [`with`](crate::ResourceExt::with)'s table says, and the acquire and
/// release deadlines go with the work into the cleanup task that finishes it.
///
/// ```
/// use std::time::Duration;
/// use awith::{resource, Cancel, ExitKind, ResourceExt, ScopeError};
///
/// #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let rt = awith::runtime()?;
///     let (tx, rx) = std::sync::mpsc::channel();
///     let conn = resource(
///         || async { Ok::<_, std::io::Error>(()) },
///         move |(), exit| async move { Ok(tx.send(exit).unwrap()) },
///     )
///     .acquire_timeout(Duration::from_secs(1))
///     .body_timeout(Duration::from_secs(5))
///     .release_timeout(Duration::from_secs(1));
///     let start = tokio::time::Instant::now();
///     let result = conn
///         .with(&rt, async |()| {
///             tokio::time::sleep(Duration::from_secs(10)).await;
///             Ok::<_, std::io::Error>(())
///         })
///         .await;
///     assert!(matches!(result, Err(ScopeError::BodyTimeout { .. })));
///     assert_eq!(start.elapsed(), Duration::from_secs(5));
///     assert_eq!(rx.recv()?, ExitKind::Cancelled(Cancel::Timeout));
///     Ok(())
/// }
/// ```
#[must_use = "a resource does nothing until it is used with `with`"]
pub struct Timed<R, E> {
    inner: R,
    acquire: Option<Duration>,
    body: Option<Duration>,
    release: Option<Duration>,
    body_error: PhantomData<fn(&E)>,
}

impl<R, E> Timed<R, E> {
    pub(crate) fn new(inner: R) -> Self {
        Timed {
            inner,
            acquire: None,
            body: None,
            release: None,
            body_error: PhantomData,
        }
    }

    /// Sets the acquire's deadline; see
    /// [`ResourceExt::acquire_timeout`](crate::ResourceExt::acquire_timeout).
    pub fn acquire_timeout(mut self, after: Duration) -> Self {
        self.acquire = Some(after);
        self
    }

    /// Sets the body's deadline; see
    /// [`ResourceExt::body_timeout`](crate::ResourceExt::body_timeout).
    pub fn body_timeout(mut self, after: Duration) -> Self {
        self.body = Some(after);
        self
    }

    /// Sets the release's deadline; see
    /// [`ResourceExt::release_timeout`](crate::ResourceExt::release_timeout).
    pub fn release_timeout(mut self, after: Duration) -> Self {
        self.release = Some(after);
        self
    }
}

impl<R: fmt::Debug, E> fmt::Debug for Timed<R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timed")
            .field("inner", &self.inner)
            .field("acquire", &self.acquire)
            .field("body", &self.body)
            .field("release", &self.release)
            .finish()
    }
}

impl<E, R: Resource<E>> Resource<E> for Timed<R, E> {
    type Value = R::Value;
    type Error = R::Error;
    type Releaser = (R::Releaser, Option<Duration>);
    const CANCEL_SAFE_ACQUIRE: bool = R::CANCEL_SAFE_ACQUIRE;

    fn acquire(
        self,
        rt: &Runtime,
    ) -> impl Future<Output = Result<(R::Value, Self::Releaser), Failure<R::Error>>> + Send + 'static
    {
        let Timed {
            inner,
            acquire: bound,
            release,
            ..
        } = self;
        let acquiring = inner.acquire(rt);
        let rt = bound.map(|_| rt.clone());
        async move {
            let (value, releaser) = match (bound, rt) {
                (Some(after), Some(rt)) => {
                    // Boxed, so that at the deadline it can move into a task
                    // that finishes it and releases what it yields.
                    let mut acquiring = Box::pin(acquiring);
                    let mut deadline = Deadline::new(after);
                    let finished = poll_fn(|cx| match acquiring.as_mut().poll(cx) {
                        Poll::Ready(acquired) => Poll::Ready(Some(acquired)),
                        Poll::Pending if deadline.expired(&rt, cx) => Poll::Ready(None),
                        Poll::Pending => Poll::Pending,
                    })
                    .await;
                    match finished {
                        Some(acquired) => acquired?,
                        None => {
                            finish_acquire::<R, E, _>(&rt, acquiring, Cancel::Timeout);
                            return Err(Failure::TimedOut(after));
                        }
                    }
                }
                _ => acquiring.await?,
            };
            Ok((value, (releaser, release)))
        }
    }

    fn release(
        (releaser, bound): Self::Releaser,
        value: R::Value,
        exit: &Exit<'_, E>,
        rt: &Runtime,
    ) -> impl Future<Output = Result<Verdict, Failure<R::Error>>> + Send + 'static {
        let releasing = R::release(releaser, value, exit, rt);
        let rt = bound.map(|_| rt.clone());
        async move {
            match (bound, rt) {
                (Some(after), Some(rt)) => rt
                    .timeout(after, releasing)
                    .await
                    .unwrap_or(Err(Failure::TimedOut(after))),
                _ => releasing.await,
            }
        }
    }

    fn body_timeout(&self) -> Option<Duration> {
        min_bound(self.body, self.inner.body_timeout())
    }

    fn acquired_body_timeout((releaser, _): &Self::Releaser) -> Option<Duration> {
        R::acquired_body_timeout(releaser)
    }

    fn acquired_tripwire((releaser, _): &Self::Releaser) -> Option<crate::Tripwire> {
        R::acquired_tripwire(releaser)
    }
}
