//! Resources from closures: [`resource`] and [`resource_inspecting`].

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project::pin_project;

use crate::error::Failure;
use crate::exit::{Exit, ExitKind};
use crate::resource::Resource;
use crate::rt::Runtime;
use crate::verdict::Verdict;

/// A resource from two functions: `acquire` makes the acquire future, and
/// `release` is given the value and how the scope ended (an [`ExitKind`]) and
/// makes the release future. Acquire and release share one error type.
///
/// The resulting resource works with a body of any error type. To see the
/// body's error itself — to log it, or to suppress it — use
/// [`resource_inspecting`].
///
/// # Examples
///
/// ```
/// use awith::{resource, ExitKind, ResourceExt};
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let rt = awith::runtime()?;
///     let (tx, rx) = std::sync::mpsc::channel();
///     let conn = resource(
///         || async { Ok::<_, std::io::Error>(vec![1, 2]) },
///         move |rows, exit| async move {
///             tx.send((rows.len(), exit)).unwrap();
///             Ok(())
///         },
///     );
///     let sum = conn
///         .with(&rt, async |rows| {
///             rows.push(3);
///             Ok::<_, std::io::Error>(rows.iter().sum::<i32>())
///         })
///         .await?;
///     assert_eq!(sum, 6);
///     assert_eq!(rx.recv(), Ok((3, ExitKind::Completed)));
///     rt.drain(std::time::Duration::from_secs(5)).await?;
///     Ok(())
/// }
/// ```
pub fn resource<A, AF, T, Er, R, RF>(acquire: A, release: R) -> FromFn<A, R, ByKind>
where
    A: FnOnce() -> AF,
    AF: Future<Output = Result<T, Er>> + Send + 'static,
    R: FnOnce(T, ExitKind) -> RF + Send + 'static,
    RF: Future<Output = Result<(), Er>> + Send + 'static,
    T: Send + 'static,
    Er: fmt::Debug + Send + 'static,
{
    FromFn::new(acquire, release)
}

/// A resource whose release sees the body's error: `release` is given the
/// value and `&`[`Exit`]`<'_, E>`, and makes the release future.
///
/// `release` returns `Result<(), Error>`, or `Result<Verdict, Error>` to
/// suppress the body's error in a scope run with
/// [`with_suppression`](crate::ResourceExt::with_suppression) (see
/// [`Verdict`](crate::Verdict)). The exit is only lent while `release` runs:
/// take what the future needs from it first.
///
/// # Examples
///
/// ```
/// use awith::{resource_inspecting, Exit, ResourceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rt = awith::runtime()?;
/// let (tx, rx) = std::sync::mpsc::channel();
/// let txn = resource_inspecting(
///     || async { Ok::<_, std::io::Error>("BEGIN") },
///     move |_txn, exit: &Exit<'_, String>| {
///         let line = match exit {
///             Exit::Failed(error) => format!("ROLLBACK after: {error}"),
///             other => format!("{other}"),
///         };
///         async move { Ok(tx.send(line).unwrap()) }
///     },
/// );
/// let result = txn.with(&rt, async |_txn| Err::<(), _>("bad row".to_string())).await;
/// assert_eq!(result.unwrap_err().body_error().map(String::as_str), Some("bad row"));
/// assert_eq!(rx.recv()?, "ROLLBACK after: bad row");
/// # Ok(())
/// # }
/// ```
pub fn resource_inspecting<E, A, AF, T, Er, R, RF, V>(
    acquire: A,
    release: R,
) -> FromFn<A, R, ByExit>
where
    A: FnOnce() -> AF,
    AF: Future<Output = Result<T, Er>> + Send + 'static,
    R: FnOnce(T, &Exit<'_, E>) -> RF + Send + 'static,
    RF: Future<Output = Result<V, Er>> + Send + 'static,
    T: Send + 'static,
    Er: fmt::Debug + Send + 'static,
    V: Into<Verdict>,
{
    FromFn::new(acquire, release)
}

/// Marks a [`FromFn`] whose release is given an [`ExitKind`] (see [`resource`]).
#[derive(Clone, Copy, Debug)]
pub enum ByKind {}

/// Marks a [`FromFn`] whose release is given `&Exit` (see [`resource_inspecting`]).
#[derive(Clone, Copy, Debug)]
pub enum ByExit {}

/// A [`Resource`] made by [`resource`] or [`resource_inspecting`].
///
/// `CANCEL_SAFE` is `true` once [`cancel_safe`](FromFn::cancel_safe) has
/// declared that dropping the acquire future half-way is safe.
#[derive(Clone)]
pub struct FromFn<A, R, K, const CANCEL_SAFE: bool = false> {
    acquire: A,
    release: R,
    release_sees: PhantomData<fn() -> K>,
}

impl<A, R, K> FromFn<A, R, K> {
    fn new(acquire: A, release: R) -> Self {
        FromFn {
            acquire,
            release,
            release_sees: PhantomData,
        }
    }

    /// Declares that the acquire is cancel-safe: dropping its future
    /// half-way leaves nothing behind (nothing was taken yet, or its `Drop`
    /// gives back what it took). Then a scope cancelled, or timed out by
    /// [`acquire_timeout`](crate::ResourceExt::acquire_timeout), while
    /// acquiring just drops the acquire: a retry loop stops at once, and no
    /// cleanup task is left to [`drain`](crate::Runtime::drain).
    ///
    /// Without it (the default), an acquire in flight when its scope is
    /// dropped is handed to the runtime and finished, and what it yields is
    /// released, told `Exit::Cancelled(reason)`: a half-made connection is
    /// never leaked, but the acquire runs on (bounded by the runtime's
    /// cleanup timeout). Declare it only when it is true: an acquire that
    /// took something before its last `.await` and does not give it back on
    /// drop leaks it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use awith::{resource, Failure, ResourceExt, ScopeError};
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let rt = awith::runtime()?;
    ///     // A lock-style acquire: retries until the lock is free. Each try
    ///     // either takes the lock or takes nothing, so stopping between tries
    ///     // is safe.
    ///     let lock = resource(
    ///         || async {
    ///             loop {
    ///                 tokio::time::sleep(Duration::from_millis(100)).await; // the lock is never free
    ///             }
    ///             #[allow(unreachable_code)]
    ///             Ok::<_, std::io::Error>(())
    ///         },
    ///         |(), _exit| async { Ok(()) },
    ///     )
    ///     .cancel_safe()
    ///     .acquire_timeout(Duration::from_secs(1));
    ///
    ///     let result = lock.with(&rt, async |()| Ok::<_, std::io::Error>(())).await;
    ///     assert!(matches!(result, Err(ScopeError::Acquire(Failure::TimedOut(_)))));
    ///     // The retry loop stopped at the timeout: nothing is left to drain.
    ///     assert_eq!(rt.cleanup_stats().pending, 0);
    ///     let stats = rt.drain(Duration::from_secs(5)).await?;
    ///     assert_eq!(stats.spawned, 0);
    ///     Ok(())
    /// }
    /// ```
    pub fn cancel_safe(self) -> FromFn<A, R, K, true> {
        FromFn {
            acquire: self.acquire,
            release: self.release,
            release_sees: PhantomData,
        }
    }
}

impl<A, R, K, const CANCEL_SAFE: bool> fmt::Debug for FromFn<A, R, K, CANCEL_SAFE> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromFn")
            .field("cancel_safe", &CANCEL_SAFE)
            .finish_non_exhaustive()
    }
}

impl<E, A, AF, T, Er, R, RF, const CANCEL_SAFE: bool> Resource<E>
    for FromFn<A, R, ByKind, CANCEL_SAFE>
where
    A: FnOnce() -> AF,
    AF: Future<Output = Result<T, Er>> + Send + 'static,
    R: FnOnce(T, ExitKind) -> RF + Send + 'static,
    RF: Future<Output = Result<(), Er>> + Send + 'static,
    T: Send + 'static,
    Er: fmt::Debug + Send + 'static,
{
    type Value = T;
    type Error = Er;
    type Releaser = R;

    const CANCEL_SAFE_ACQUIRE: bool = CANCEL_SAFE;

    fn acquire(
        self,
        _rt: &Runtime,
    ) -> impl Future<Output = Result<(T, R), Failure<Er>>> + Send + 'static {
        AcquireFn {
            acquire: (self.acquire)(),
            release: Some(self.release),
        }
    }

    fn release(
        release: R,
        value: T,
        exit: &Exit<'_, E>,
        _rt: &Runtime,
    ) -> impl Future<Output = Result<Verdict, Failure<Er>>> + Send + 'static {
        ReleaseFn {
            release: release(value, exit.kind()),
        }
    }
}

impl<E, A, AF, T, Er, R, RF, V, const CANCEL_SAFE: bool> Resource<E>
    for FromFn<A, R, ByExit, CANCEL_SAFE>
where
    A: FnOnce() -> AF,
    AF: Future<Output = Result<T, Er>> + Send + 'static,
    R: FnOnce(T, &Exit<'_, E>) -> RF + Send + 'static,
    RF: Future<Output = Result<V, Er>> + Send + 'static,
    T: Send + 'static,
    Er: fmt::Debug + Send + 'static,
    V: Into<Verdict>,
{
    type Value = T;
    type Error = Er;
    type Releaser = R;

    const CANCEL_SAFE_ACQUIRE: bool = CANCEL_SAFE;

    fn acquire(
        self,
        _rt: &Runtime,
    ) -> impl Future<Output = Result<(T, R), Failure<Er>>> + Send + 'static {
        AcquireFn {
            acquire: (self.acquire)(),
            release: Some(self.release),
        }
    }

    fn release(
        release: R,
        value: T,
        exit: &Exit<'_, E>,
        _rt: &Runtime,
    ) -> impl Future<Output = Result<Verdict, Failure<Er>>> + Send + 'static {
        ReleaseFn {
            release: release(value, exit),
        }
    }
}

/// The acquire future of a [`FromFn`]: the closure's future, its error made a
/// [`Failure`], the release closure handed out as the releaser. (One future
/// rather than `map_ok` and `map_err`: a scope is cheaper by a few dozen
/// instructions.)
#[pin_project]
struct AcquireFn<AF, R> {
    #[pin]
    acquire: AF,
    release: Option<R>,
}

impl<AF, T, Er, R> Future for AcquireFn<AF, R>
where
    AF: Future<Output = Result<T, Er>>,
{
    type Output = Result<(T, R), Failure<Er>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let acquired = std::task::ready!(this.acquire.poll(cx));
        let Some(release) = this.release.take() else {
            panic!("a `FromFn` acquire was polled after it completed");
        };
        Poll::Ready(match acquired {
            Ok(value) => Ok((value, release)),
            Err(error) => Err(Failure::Error(error)),
        })
    }
}

/// The release future of a [`FromFn`]: the closure's future, its error made
/// a [`Failure`].
#[pin_project]
struct ReleaseFn<RF> {
    #[pin]
    release: RF,
}

impl<RF, V, Er> Future for ReleaseFn<RF>
where
    RF: Future<Output = Result<V, Er>>,
    V: Into<Verdict>,
{
    type Output = Result<Verdict, Failure<Er>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match std::task::ready!(self.project().release.poll(cx)) {
            Ok(verdict) => Poll::Ready(Ok(verdict.into())),
            Err(error) => Poll::Ready(Err(Failure::Error(error))),
        }
    }
}
