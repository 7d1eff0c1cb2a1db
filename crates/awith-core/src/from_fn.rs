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
use crate::verdict::ReleaseVerdict;

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
/// use awith_core::reference::Reference;
/// use awith_core::{resource, ExitKind, ResourceExt};
///
/// let reference = Reference::new();
/// let rt = reference.runtime();
/// let (tx, rx) = std::sync::mpsc::channel();
/// let conn = resource(
///     || async { Ok::<_, String>(vec![1, 2]) },
///     move |rows, exit| async move {
///         tx.send((rows.len(), exit)).unwrap();
///         Ok(())
///     },
/// );
/// let sum = reference.block_on(conn.with(&rt, async |rows| {
///     rows.push(3);
///     Ok::<_, String>(rows.iter().sum::<i32>())
/// }));
/// assert_eq!(sum.unwrap(), Ok(6));
/// assert_eq!(rx.recv(), Ok((3, ExitKind::Completed)));
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
    FromFn {
        acquire,
        release,
        release_sees: PhantomData,
    }
}

/// A resource whose release sees the body's error: `release` is given the
/// value and `&`[`Exit`]`<'_, E>`, and makes the release future.
///
/// `release` returns `Result<(), Error>`, or `Result<Verdict, Error>` to be
/// able to suppress the body's error (see [`Verdict`](crate::Verdict)). The
/// exit is only lent while `release` runs: take what the future needs from it
/// first.
///
/// # Examples
///
/// ```
/// use awith_core::reference::Reference;
/// use awith_core::{resource_inspecting, Exit, ResourceExt};
///
/// let reference = Reference::new();
/// let rt = reference.runtime();
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
/// let result = reference.block_on(txn.with(&rt, async |_txn| Err::<(), _>("bad row".to_string())));
/// assert_eq!(result.unwrap().unwrap_err().body_error().map(String::as_str), Some("bad row"));
/// assert_eq!(rx.recv().unwrap(), "ROLLBACK after: bad row");
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
    V: ReleaseVerdict,
{
    FromFn {
        acquire,
        release,
        release_sees: PhantomData,
    }
}

/// Marks a [`FromFn`] whose release is given an [`ExitKind`] (see [`resource`]).
#[derive(Clone, Copy, Debug)]
pub enum ByKind {}

/// Marks a [`FromFn`] whose release is given `&Exit` (see [`resource_inspecting`]).
#[derive(Clone, Copy, Debug)]
pub enum ByExit {}

/// A [`Resource`] made by [`resource`] or [`resource_inspecting`].
#[derive(Clone)]
pub struct FromFn<A, R, K> {
    acquire: A,
    release: R,
    release_sees: PhantomData<fn() -> K>,
}

impl<A, R, K> fmt::Debug for FromFn<A, R, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromFn").finish_non_exhaustive()
    }
}

impl<E, A, AF, T, Er, R, RF> Resource<E> for FromFn<A, R, ByKind>
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
    type Verdict = ();
    type Releaser = R;

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
    ) -> impl Future<Output = Result<(), Failure<Er>>> + Send + 'static {
        ReleaseFn {
            release: release(value, exit.kind()),
        }
    }
}

impl<E, A, AF, T, Er, R, RF, V> Resource<E> for FromFn<A, R, ByExit>
where
    A: FnOnce() -> AF,
    AF: Future<Output = Result<T, Er>> + Send + 'static,
    R: FnOnce(T, &Exit<'_, E>) -> RF + Send + 'static,
    RF: Future<Output = Result<V, Er>> + Send + 'static,
    T: Send + 'static,
    Er: fmt::Debug + Send + 'static,
    V: ReleaseVerdict,
{
    type Value = T;
    type Error = Er;
    type Verdict = V;
    type Releaser = R;

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
    ) -> impl Future<Output = Result<V, Failure<Er>>> + Send + 'static {
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
{
    type Output = Result<V, Failure<Er>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().release.poll(cx).map_err(Failure::Error)
    }
}
