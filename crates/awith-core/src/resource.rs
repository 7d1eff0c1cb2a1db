//! [`Resource`]: a recipe to acquire and release something asynchronously.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use crate::error::ScopeError;
use crate::exit::{Exit, ExitKind};
use crate::rt::Runtime;

/// A recipe for an asynchronously acquired and released value — the
/// `__aenter__` / `__aexit__` pair of Python's async context managers.
///
/// `E` is the error type of the *body* that will use the resource: the release
/// sees it through [`Exit::Failed`]. Resources that do not care implement
/// `Resource<E>` for every `E`.
///
/// Acquire and release futures are `Send + 'static`: when a scope is cancelled
/// they move into a runtime task to finish (see [`ResourceExt::with`]).
///
/// Most resources are made with [`resource`]; implement the trait for
/// reusable types.
///
/// # Examples
///
/// ```
/// use std::future::Future;
/// use awith_core::{Exit, Resource};
///
/// /// A connection that says goodbye differently when the work failed.
/// struct Connect(&'static str);
///
/// impl<E: 'static> Resource<E> for Connect {
///     type Value = String;
///     type Error = std::io::Error;
///     type Verdict = ();
///
///     fn acquire(&mut self) -> impl Future<Output = Result<String, std::io::Error>> + Send + 'static {
///         let addr = self.0;
///         async move { Ok(format!("connection to {addr}")) }
///     }
///
///     fn release(
///         self,
///         conn: String,
///         exit: &Exit<'_, E>,
///     ) -> impl Future<Output = Result<(), std::io::Error>> + Send + 'static {
///         let graceful = exit.is_completed();
///         async move {
///             let _ = (conn, graceful); // close it, gracefully or not
///             Ok(())
///         }
///     }
/// }
/// ```
pub trait Resource<E>: Send + Sized + 'static {
    /// What the body gets to use (as `&mut Value`) and the release gets back.
    type Value: Send + 'static;

    /// The error of acquire and release.
    type Error: fmt::Debug + Send + 'static;

    /// What a successful release returns: `()` (it cannot suppress the body's
    /// error) or [`Verdict`] (it may). It decides the type
    /// [`ResourceExt::with`] returns; see [`ReleaseVerdict`].
    type Verdict: ReleaseVerdict;

    /// Starts acquiring. Called at most once per scope, on the scope's first poll.
    fn acquire(
        &mut self,
    ) -> impl Future<Output = Result<Self::Value, Self::Error>> + Send + 'static;

    /// Starts releasing `value`, told how the scope ended. Called exactly once
    /// for every value acquired in a scope (unless the scope is leaked with
    /// `mem::forget`).
    ///
    /// `exit` is only lent while this function runs: read what the release
    /// needs from it before building the future.
    fn release(
        self,
        value: Self::Value,
        exit: &Exit<'_, E>,
    ) -> impl Future<Output = Result<Self::Verdict, Self::Error>> + Send + 'static;

    /// A bound on the release, on every path (default: none). When the scope
    /// was cancelled, the runtime's cleanup timeout applies too.
    fn release_timeout(&self) -> Option<Duration> {
        None
    }
}

/// Using a [`Resource`]: implemented for every resource.
pub trait ResourceExt<E>: Resource<E> {
    /// Runs a scope: acquire, then `body` with `&mut value`, then release
    /// with the [`Exit`] that tells how the body ended. The release runs
    /// whatever happens — on success, error, panic and cancellation.
    ///
    /// The body is an async closure; it may borrow from the caller and need not
    /// be `Send` (then neither is the scope's future).
    ///
    /// # Returns
    ///
    /// - `Ok(output)` when the body returned `Ok(output)` and the release
    ///   succeeded — or `Ok(Some(output))` for a resource whose
    ///   [`Verdict`](Resource::Verdict) is [`Verdict`], which returns
    ///   `Ok(None)` when its release suppressed the body's error;
    /// - `Err(`[`ScopeError`]`)` otherwise: acquire failed, the body failed
    ///   (with the release's own failure, if any, kept beside it), or the
    ///   release failed.
    ///
    /// # Panics
    ///
    /// A panic in acquire propagates (nothing was acquired). A panic in the
    /// body runs the release with [`Exit::Panicked`], then resumes. A panic in
    /// the release propagates after a completed or failed body; after a
    /// panicked body the body's panic resumes and the release's panic (or
    /// error) is reported as an [`Incident`](crate::rt::Incident).
    ///
    /// # Cancellation
    ///
    /// Dropping the future before it completes:
    ///
    /// | dropped while | what happens |
    /// |---|---|
    /// | not yet polled | nothing: acquire has not started |
    /// | acquiring | the acquire is handed to the runtime and finished; what it yields is released with `Exit::Cancelled(Cancel::Dropped)` |
    /// | in the body | the body is dropped, then the release runs as a runtime task with `Exit::Cancelled(Cancel::Dropped)` |
    /// | releasing | the release is handed to the runtime and finishes |
    ///
    /// Those tasks are bounded by the release timeout and the runtime's cleanup
    /// timeout; [`Runtime::drain`] waits for them. `mem::forget` on the future
    /// skips all of this.
    ///
    /// # Examples
    ///
    /// ```
    /// use awith_core::reference::Reference;
    /// use awith_core::{resource, ResourceExt};
    ///
    /// let reference = Reference::new();
    /// let rt = reference.runtime();
    /// let log = std::sync::Mutex::new(Vec::new());
    ///
    /// let file = resource(
    ///     || async { Ok::<_, std::io::Error>(String::from("report.txt")) },
    ///     |name, exit| async move { Ok(println!("closed {name}: {exit}")) },
    /// );
    /// let words = reference.block_on(file.with(&rt, async |name| {
    ///     log.lock().unwrap().push(format!("writing {name}"));
    ///     Ok::<_, std::io::Error>(3)
    /// }));
    /// assert_eq!(words.unwrap().unwrap(), 3);
    /// ```
    fn with<'a, B, U>(
        self,
        rt: &'a Runtime,
        body: B,
    ) -> impl Future<Output = Scoped<U, E, Self>> + 'a
    where
        B: AsyncFnOnce(&mut Self::Value) -> Result<U, E> + 'a,
        E: 'a,
        U: 'a,
    {
        crate::with::run(rt, self, body)
    }
}

impl<E, R: Resource<E>> ResourceExt<E> for R {}

/// What [`ResourceExt::with`] returns for a resource `R` whose body returns
/// `Result<U, E>`.
pub type Scoped<U, E, R> = Result<
    <<R as Resource<E>>::Verdict as ReleaseVerdict>::Output<U>,
    ScopeError<E, <R as Resource<E>>::Error>,
>;

/// What a release may say about a failed body's error, like the return value
/// of Python's `__aexit__`.
///
/// A resource whose release returns `Verdict` makes [`ResourceExt::with`]
/// return `Ok(Option<U>)`: `None` when the release suppressed the body's
/// error. `Suppress` only acts on [`Exit::Failed`]; after a completed body it
/// changes nothing, and it cannot stop a panic.
///
/// # Examples
///
/// ```
/// use awith_core::reference::Reference;
/// use awith_core::{resource_inspecting, Exit, ResourceExt, Verdict};
///
/// #[derive(Debug, PartialEq)]
/// enum Error { NotFound, Broken }
///
/// // Like `contextlib.suppress(FileNotFoundError)`.
/// let ignore_missing = || resource_inspecting(
///     || async { Ok::<_, Error>(()) },
///     |(), exit: &Exit<'_, Error>| {
///         let verdict = match exit {
///             Exit::Failed(Error::NotFound) => Verdict::Suppress,
///             _ => Verdict::Propagate,
///         };
///         async move { Ok(verdict) }
///     },
/// );
///
/// let reference = Reference::new();
/// let rt = reference.runtime();
/// let missing = reference.block_on(ignore_missing().with(&rt, async |()| Err::<u8, _>(Error::NotFound)));
/// assert_eq!(missing.unwrap().unwrap(), None);
/// let broken = reference.block_on(ignore_missing().with(&rt, async |()| Err::<u8, _>(Error::Broken)));
/// assert_eq!(broken.unwrap().unwrap_err().body_error(), Some(&Error::Broken));
/// let fine = reference.block_on(ignore_missing().with(&rt, async |()| Ok::<u8, Error>(1)));
/// assert_eq!(fine.unwrap().unwrap(), Some(1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Let the body's error propagate.
    Propagate,
    /// Suppress the body's error: the scope returns `Ok(None)`.
    Suppress,
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for () {}
    impl Sealed for super::Verdict {}
}

/// The successful result of a release: `()` or [`Verdict`]. Sealed.
///
/// It picks the `Ok` type of a scope: `U` for `()`, `Option<U>` for `Verdict`.
pub trait ReleaseVerdict: sealed::Sealed + Send + 'static {
    /// The `Ok` type of a scope whose body returns `Ok(U)`.
    type Output<U>;

    /// The scope's output after a completed body.
    fn completed<U>(output: U) -> Self::Output<U>;

    /// The scope's output after a failed body, if this verdict suppresses the
    /// failure; `None` to let it propagate.
    fn suppressed<U>(self) -> Option<Self::Output<U>>;
}

impl ReleaseVerdict for () {
    type Output<U> = U;

    fn completed<U>(output: U) -> U {
        output
    }

    fn suppressed<U>(self) -> Option<U> {
        None
    }
}

impl ReleaseVerdict for Verdict {
    type Output<U> = Option<U>;

    fn completed<U>(output: U) -> Option<U> {
        Some(output)
    }

    fn suppressed<U>(self) -> Option<Option<U>> {
        match self {
            Verdict::Suppress => Some(None),
            Verdict::Propagate => None,
        }
    }
}

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
    A: FnMut() -> AF + Send + 'static,
    AF: Future<Output = Result<T, Er>> + Send + 'static,
    R: FnOnce(T, ExitKind) -> RF + Send + 'static,
    RF: Future<Output = Result<(), Er>> + Send + 'static,
    T: Send + 'static,
    Er: fmt::Debug + Send + 'static,
{
    FromFn {
        acquire,
        release,
        release_timeout: None,
        release_sees: PhantomData,
    }
}

/// A resource whose release sees the body's error: `release` is given the
/// value and `&`[`Exit`]`<'_, E>`, and makes the release future.
///
/// `release` returns `Result<(), Error>`, or `Result<Verdict, Error>` to be
/// able to suppress the body's error (see [`Verdict`]). The exit is only lent
/// while `release` runs: take what the future needs from it first.
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
    A: FnMut() -> AF + Send + 'static,
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
        release_timeout: None,
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
    release_timeout: Option<Duration>,
    release_sees: PhantomData<fn() -> K>,
}

impl<A, R, K> FromFn<A, R, K> {
    /// Bounds the release on every path: a release still running after
    /// `timeout` is dropped and the scope fails with
    /// [`ReleaseFailure::TimedOut`](crate::ReleaseFailure::TimedOut).
    /// A zero timeout means the release must finish on its first poll.
    ///
    /// ```
    /// use std::time::Duration;
    /// use awith_core::reference::Reference;
    /// use awith_core::{resource, ReleaseFailure, ResourceExt};
    ///
    /// let reference = Reference::new();
    /// let rt = reference.runtime();
    /// let sleeper = rt.clone();
    /// let slow = resource(
    ///     || async { Ok::<_, ()>(()) },
    ///     move |(), _exit| {
    ///         let nap = sleeper.sleep(Duration::from_secs(60));
    ///         async move { nap.await; Ok(()) }
    ///     },
    /// )
    /// .release_timeout(Duration::from_secs(1));
    /// let result = reference.block_on(slow.with(&rt, async |()| Ok::<_, ()>(()))).unwrap();
    /// assert!(matches!(
    ///     result.unwrap_err().release_failure(),
    ///     Some(ReleaseFailure::TimedOut(_))
    /// ));
    /// assert_eq!(reference.elapsed(), Duration::from_secs(1));
    /// ```
    pub fn release_timeout(mut self, timeout: Duration) -> Self {
        self.release_timeout = Some(timeout);
        self
    }
}

impl<A, R, K> fmt::Debug for FromFn<A, R, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromFn")
            .field("release_timeout", &self.release_timeout)
            .finish_non_exhaustive()
    }
}

impl<E, A, AF, T, Er, R, RF> Resource<E> for FromFn<A, R, ByKind>
where
    A: FnMut() -> AF + Send + 'static,
    AF: Future<Output = Result<T, Er>> + Send + 'static,
    R: FnOnce(T, ExitKind) -> RF + Send + 'static,
    RF: Future<Output = Result<(), Er>> + Send + 'static,
    T: Send + 'static,
    Er: fmt::Debug + Send + 'static,
{
    type Value = T;
    type Error = Er;
    type Verdict = ();

    fn acquire(&mut self) -> impl Future<Output = Result<T, Er>> + Send + 'static {
        (self.acquire)()
    }

    fn release(
        self,
        value: T,
        exit: &Exit<'_, E>,
    ) -> impl Future<Output = Result<(), Er>> + Send + 'static {
        (self.release)(value, exit.kind())
    }

    fn release_timeout(&self) -> Option<Duration> {
        self.release_timeout
    }
}

impl<E, A, AF, T, Er, R, RF, V> Resource<E> for FromFn<A, R, ByExit>
where
    A: FnMut() -> AF + Send + 'static,
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

    fn acquire(&mut self) -> impl Future<Output = Result<T, Er>> + Send + 'static {
        (self.acquire)()
    }

    fn release(
        self,
        value: T,
        exit: &Exit<'_, E>,
    ) -> impl Future<Output = Result<V, Er>> + Send + 'static {
        (self.release)(value, exit)
    }

    fn release_timeout(&self) -> Option<Duration> {
        self.release_timeout
    }
}
