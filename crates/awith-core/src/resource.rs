//! [`Resource`]: a recipe to acquire and release something asynchronously,
//! and [`ResourceExt`]: using and combining resources.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use crate::combinator::{AndThen, Map, MapErr, Timed, Zip};
use crate::error::{Failure, ScopeError};
use crate::exit::Exit;
use crate::rt::Runtime;
use crate::verdict::Verdict;

/// A recipe for an asynchronously acquired and released value — the
/// `__aenter__` / `__aexit__` pair of Python's async context managers.
///
/// Acquiring consumes the recipe and yields the **value**, which the body
/// borrows (`&mut Value`), and a **releaser**: whatever the release needs
/// besides the value (often the recipe itself, or nothing). The release then
/// owns both, and is told how the scope ended.
///
/// `E` is the error type of the *body* that will use the resource: the release
/// sees it through [`Exit::Failed`]. Resources that do not look at it
/// implement `Resource<E>` for every `E`.
///
/// Acquire and release futures are `Send + 'static`: when a scope is
/// cancelled they move into a runtime task to finish. They fail with a
/// [`Failure`]; `?` turns the resource's own error into one. A release
/// returns a [`Verdict`]: `Propagate`, unless it suppresses a failed body's
/// error (which only a scope run with
/// [`with_suppression`](ResourceExt::with_suppression) honours).
///
/// A function can return a resource naming only what it makes and its error:
/// `fn conn() -> impl Resource<E, Value = Conn, Error = DbError>`.
///
/// Most resources are made with [`resource`](crate::resource) or
/// [`resource_inspecting`](crate::resource_inspecting); implement the trait
/// for reusable types, and combine resources with [`ResourceExt`].
///
/// # Examples
///
/// ```
/// use std::future::Future;
/// use awith::{Exit, Failure, Resource, Runtime, Verdict};
///
/// /// A connection that says goodbye differently when the work failed.
/// struct Connect {
///     addr: &'static str,
/// }
///
/// impl<E> Resource<E> for Connect {
///     type Value = String;
///     type Error = std::io::Error;
///     type Releaser = ();
///
///     fn acquire(
///         self,
///         _rt: &Runtime,
///     ) -> impl Future<Output = Result<(String, ()), Failure<std::io::Error>>> + Send + 'static {
///         async move { Ok((format!("connection to {}", self.addr), ())) }
///     }
///
///     fn release(
///         (): (),
///         conn: String,
///         exit: &Exit<'_, E>,
///         _rt: &Runtime,
///     ) -> impl Future<Output = Result<Verdict, Failure<std::io::Error>>> + Send + 'static {
///         let graceful = exit.is_completed();
///         async move {
///             let _ = (conn, graceful); // close it, gracefully or not
///             Ok(Verdict::Propagate)
///         }
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a resource for a body failing with `{E}`",
    label = "not a `Resource<{E}>`",
    note = "make a resource with `awith::resource(acquire, release)` (or `resource_inspecting`), or implement `Resource<E>`",
    note = "a resource made with `resource_inspecting` works with one body error type: the `E` of the `&Exit<'_, E>` its release takes"
)]
pub trait Resource<E>: Sized {
    /// What the body gets to use (as `&mut Value`) and the release gets back.
    type Value: Send + 'static;

    /// The resource's own error, of acquire and release.
    type Error: fmt::Debug + Send + 'static;

    /// What the release needs besides the value.
    type Releaser: Send + 'static;

    /// Whether dropping an acquire future half-way is safe: it undoes what
    /// it started in its own `Drop`. Then a scope dropped (or timed out)
    /// while acquiring just drops the acquire. Otherwise (the default) the
    /// in-flight acquire is handed to the runtime, finished, and what it
    /// yields is released — a half-made connection is never leaked.
    /// [`resource(..).cancel_safe()`](crate::FromFn::cancel_safe) sets it
    /// for a resource made from closures.
    ///
    /// A [`Pool`](crate::pool::Pool) checkout sets it: a waiter that is
    /// dropped must leave the queue at once, not wait for an object only to
    /// give it back.
    const CANCEL_SAFE_ACQUIRE: bool = false;

    /// Starts acquiring: the future yields the value and the releaser
    /// ([`Acquired`]). Called once per scope, on the scope's first poll.
    fn acquire(self, rt: &Runtime) -> impl Future<Output = Acquired<E, Self>> + Send + 'static;

    /// Starts releasing `value`, told how the scope ended. Called exactly once
    /// for every value acquired (unless the scope is leaked with
    /// `mem::forget`).
    ///
    /// `exit` is only lent while this function runs: read what the release
    /// needs from it before building the future.
    fn release(
        releaser: Self::Releaser,
        value: Self::Value,
        exit: &Exit<'_, E>,
        rt: &Runtime,
    ) -> impl Future<Output = Released<E, Self>> + Send + 'static;

    /// Releases at once, without a future, when that is all the release
    /// needs to do: [`ReleaseNow::Done`] with what [`release`](Self::release)
    /// would have yielded. [`ReleaseNow::Later`] gives the value and the
    /// releaser back, and the scope runs [`release`](Self::release). The
    /// default always says `Later`.
    ///
    /// A scope that ends without being cancelled asks this first: a release
    /// that is usually synchronous (a pool taking its object back, a permit
    /// returned) then costs no future and no allocation. A cancelled scope
    /// always runs [`release`](Self::release).
    fn release_now(
        releaser: Self::Releaser,
        value: Self::Value,
        exit: &Exit<'_, E>,
        rt: &Runtime,
    ) -> ReleaseNow<E, Self> {
        let _ = (exit, rt);
        ReleaseNow::Later { releaser, value }
    }

    /// A bound on the body of a scope over this resource (default: none).
    /// Set it with [`ResourceExt::body_timeout`].
    ///
    /// A scope reads it from the recipe before acquiring; a bound only known
    /// once acquired comes from
    /// [`acquired_body_timeout`](Self::acquired_body_timeout), and the body
    /// is bounded by the smaller of the two. A resource that wraps another
    /// forwards both.
    fn body_timeout(&self) -> Option<Duration> {
        None
    }

    /// A bound on the body that is only known once the resource is acquired
    /// (default: none) — the bound of [`ResourceExt::and_then`]'s second
    /// part, whose recipe is made from the first part's value. It is read
    /// from the releaser after the acquire, before the body starts (or, for
    /// a resource entered into an [`ExitStack`](crate::stack::ExitStack),
    /// when the enter ends).
    ///
    /// A bound is never ignored: a scope bounds its body by the smaller of
    /// this and [`body_timeout`](Self::body_timeout).
    fn acquired_body_timeout(releaser: &Self::Releaser) -> Option<Duration> {
        let _ = releaser;
        None
    }

    /// A signal that cancels the body once the resource is acquired
    /// (default: none): a [`Lock`](crate::lock::Lock) whose lease is lost
    /// trips it with `Cancel::LockLost`. It is read from the releaser after
    /// the acquire, and raced against the body: once tripped, the body is
    /// dropped, the release is told `Exit::Cancelled(reason)`, and the scope
    /// fails with [`ScopeError::BodyCancelled`]. A resource that wraps
    /// another forwards it; a combined one forwards both parts' (see
    /// [`Tripwire::either`](crate::Tripwire::either)).
    fn acquired_tripwire(releaser: &Self::Releaser) -> Option<crate::Tripwire> {
        let _ = releaser;
        None
    }
}

/// Using and combining [`Resource`]s: implemented for every resource.
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
    ///   succeeded;
    /// - `Err(`[`ScopeError`]`)` otherwise: acquire failed, the body failed or
    ///   timed out (with the release's own failure, if any, kept beside it),
    ///   or the release failed. A release's [`Verdict::Suppress`] is not
    ///   honoured here (there is no output to return): use
    ///   [`with_suppression`](Self::with_suppression) for that.
    ///
    /// # Writing the body
    ///
    /// The body is an `async |value| { .. }` closure, and its error type is
    /// inferred from what it returns. Two things the compiler cannot do for
    /// you, as with any async block:
    ///
    /// - a body that only uses `?` names its error once:
    ///   `Ok::<_, MyError>(value)` (or `async |v| -> Result<_, MyError> { .. }`);
    ///   without it, "type annotations needed" (E0282);
    /// - a closure returning an `async move` block (`|value| async move { .. }`)
    ///   cannot borrow the value it is lent: "lifetime may not live long
    ///   enough", or "implementation of `AsyncFnOnce` is not general
    ///   enough". Write `async |value| { .. }`.
    ///
    /// ```compile_fail,E0282
    /// # use awith::{resource, ResourceExt};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let input = resource(|| async { Ok::<_, std::io::Error>("42") }, |_, _| async { Ok(()) });
    /// // error[E0282]: type annotations needed — the body's error type
    /// let n = input
    ///     .with(&rt, async |text| {
    ///         let n: u8 = text.parse()?;
    ///         Ok(n)
    ///     })
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// ```compile_fail
    /// # use awith::{resource, ResourceExt};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let input = resource(|| async { Ok::<_, std::io::Error>(String::from("42")) }, |_, _| async { Ok(()) });
    /// // error: lifetime may not live long enough
    /// let n = input
    ///     .with(&rt, |text: &mut String| async move {
    ///         Ok::<_, std::num::ParseIntError>(text.parse::<u8>()?)
    ///     })
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// The fix for both:
    ///
    /// ```
    /// # use awith::{resource, ResourceExt};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let input = resource(|| async { Ok::<_, std::io::Error>(String::from("42")) }, |_, _| async { Ok(()) });
    /// let n = input
    ///     .with(&rt, async |text| {
    ///         let n: u8 = text.parse()?;
    ///         Ok::<_, std::num::ParseIntError>(n)
    ///     })
    ///     .await?;
    /// assert_eq!(n, 42);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// A panic in acquire propagates (nothing was acquired). A panic in the
    /// body runs the release with [`Exit::Panicked`], then resumes. A panic in
    /// the release propagates after a completed or failed body (or one that
    /// timed out); after a panicked body the body's panic resumes and the
    /// release's panic (or error) is reported as an
    /// [`Incident`](crate::rt::Incident). Nothing is lost to a resuming
    /// panic: the body's error (or its timeout) that can no longer be
    /// returned is reported as `Incident::ErrorLostToPanic` — which is why
    /// the body's error type must be `Debug`.
    ///
    /// A body whose future panics while it is dropped at its timeout counts
    /// as a panicked body (the release is told [`Exit::Panicked`]; the
    /// timeout is reported). Dropped at a cancellation, its panic reaches
    /// whoever dropped the scope, and the release still runs as a cleanup
    /// task, after the scopes cancelled inside the body.
    ///
    /// # Cancellation
    ///
    /// Dropping the future before it completes:
    ///
    /// | dropped while | what happens |
    /// |---|---|
    /// | not yet polled | nothing: acquire has not started |
    /// | acquiring | the acquire is handed to the runtime and finished; what it yields is released with `Exit::Cancelled(reason)`; if it fails, the failure is reported |
    /// | in the body | the body is dropped, then the release runs as a runtime task with `Exit::Cancelled(reason)` |
    /// | releasing | the release is handed to the runtime and finishes; a failed body's error (or its panic, or its timeout), which nobody is left to be returned to, is reported (`Incident::Unreturned`) |
    ///
    /// The reason is `Cancel::Dropped`, or `Cancel::Timeout` when a deadline
    /// dropped the scope (see [`time`](crate::time)). Those tasks are bounded
    /// by the runtime's cleanup timeout; [`Runtime::drain`] waits for them.
    /// `mem::forget` on the future skips all of this.
    ///
    /// # Examples
    ///
    /// ```
    /// use awith::{resource, ResourceExt};
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let rt = awith::runtime()?;
    ///     let log = std::sync::Mutex::new(Vec::new());
    ///
    ///     let file = resource(
    ///         || async { Ok::<_, std::io::Error>(String::from("report.txt")) },
    ///         |name, exit| async move { Ok(println!("closed {name}: {exit}")) },
    ///     );
    ///     let words = file
    ///         .with(&rt, async |name| {
    ///             log.lock().unwrap().push(format!("writing {name}"));
    ///             Ok::<_, std::io::Error>(3)
    ///         })
    ///         .await?;
    ///     assert_eq!(words, 3);
    ///     assert_eq!(log.lock().unwrap().len(), 1);
    ///     // Cleanups of scopes that were cancelled (none here) finish before exit.
    ///     rt.drain(std::time::Duration::from_secs(5)).await?;
    ///     Ok(())
    /// }
    /// ```
    fn with<'a, B, U>(
        self,
        rt: &'a Runtime,
        body: B,
    ) -> impl Future<Output = Scoped<U, E, Self>> + 'a
    where
        Self: 'a,
        B: AsyncFnOnce(&mut Self::Value) -> Result<U, E> + 'a,
        E: fmt::Debug + 'a,
        U: 'a,
    {
        crate::trace::scope::<Self, _>(crate::with::run::<Self, E, B, U, ()>(rt, self, body))
    }

    /// Runs a scope as [`with`](Self::with) does, honouring a release that
    /// suppresses the body's error ([`Verdict::Suppress`], the `True` of
    /// Python's `__aexit__`): then the scope returns `Ok(None)`. A body that
    /// completes gives `Ok(Some(output))`.
    ///
    /// Of a combined resource ([`zip`](Self::zip), [`and_then`](Self::and_then)),
    /// the error is suppressed when any part's release suppresses it.
    ///
    /// # Cancellation
    ///
    /// As [`with`](Self::with).
    ///
    /// # Examples
    ///
    /// ```
    /// use awith::{resource_inspecting, Exit, ResourceExt, Verdict};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// // Like `contextlib.suppress(ValueError)`.
    /// let ignore_parse_errors = resource_inspecting(
    ///     || async { Ok::<_, std::io::Error>(()) },
    ///     |(), exit: &Exit<'_, std::num::ParseIntError>| {
    ///         let verdict = if exit.is_failed() { Verdict::Suppress } else { Verdict::Propagate };
    ///         async move { Ok(verdict) }
    ///     },
    /// );
    /// let parsed = ignore_parse_errors
    ///     .with_suppression(&rt, async |()| "x".parse::<u8>())
    ///     .await?;
    /// assert_eq!(parsed, None);
    /// # Ok(())
    /// # }
    /// ```
    fn with_suppression<'a, B, U>(
        self,
        rt: &'a Runtime,
        body: B,
    ) -> impl Future<Output = Result<Option<U>, ScopeError<E, Self::Error>>> + 'a
    where
        Self: 'a,
        B: AsyncFnOnce(&mut Self::Value) -> Result<U, E> + 'a,
        E: fmt::Debug + 'a,
        U: 'a,
    {
        crate::trace::scope::<Self, _>(crate::with::run::<Self, E, B, U, Verdict>(rt, self, body))
    }

    /// Transforms the value both ways: the body sees `into(value)`, and the
    /// release gets `back(mapped)` — e.g. wrapping a stream in a codec and
    /// unwrapping it to close it.
    ///
    /// ```
    /// use awith::{resource, ResourceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let bytes = resource(
    ///     || async { Ok::<_, std::io::Error>(vec![1u8, 2]) },
    ///     move |bytes, _exit| async move { Ok(tx.send(bytes).unwrap()) },
    /// );
    /// let text = bytes.map(
    ///     |bytes| bytes.iter().map(u8::to_string).collect::<Vec<_>>(),
    ///     |text| text.iter().map(|s| s.parse().unwrap()).collect(),
    /// );
    /// let joined = text
    ///     .with(&rt, async |text| {
    ///         text.push("3".into());
    ///         Ok::<_, std::io::Error>(text.join("+"))
    ///     })
    ///     .await?;
    /// assert_eq!(joined, "1+2+3");
    /// assert_eq!(rx.recv()?, [1, 2, 3]);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancellation
    ///
    /// As [`with`](Self::with)'s table says for one resource: the mapped
    /// resource is one scope. `into` runs at the end of the acquire, so when
    /// the scope is dropped while acquiring, the cleanup task that finishes
    /// the acquire runs it too; `back` runs when the release starts,
    /// wherever that is (in the scope, or in the cleanup task of a scope
    /// dropped in its body), and the release is told `Exit::Cancelled(reason)`.
    /// The acquire is cancel-safe when this resource's is. A panic in `into`
    /// or `back` loses the value without its release.
    fn map<F, G, T>(self, into: F, back: G) -> Map<Self, F, G, E>
    where
        F: FnOnce(Self::Value) -> T + Send + 'static,
        G: FnOnce(T) -> Self::Value + Send + 'static,
        T: Send + 'static,
    {
        Map::new(self, into, back)
    }

    /// Converts the resource's error (of acquire and release) with `f`.
    ///
    /// ```
    /// use awith::{resource, Failure, ResourceExt, ScopeError};
    ///
    /// #[derive(Debug)]
    /// enum AppError { Io(std::io::Error) }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let conn = resource(
    ///     || async { Err::<(), _>(std::io::Error::other("refused")) },
    ///     |(), _exit| async { Ok(()) },
    /// )
    /// .map_err(AppError::Io);
    /// let result = conn.with(&rt, async |()| Ok::<_, AppError>(())).await;
    /// assert!(matches!(result, Err(ScopeError::Acquire(Failure::Error(AppError::Io(_))))));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancellation
    ///
    /// Unchanged: as [`with`](Self::with)'s table says for this resource (the
    /// acquire is cancel-safe when this resource's is). A failure of a
    /// cleanup task (an acquire or a release finished after the scope was
    /// dropped) is converted with `f` too, then reported as an
    /// [`Incident`](crate::rt::Incident).
    fn map_err<F, Er>(self, f: F) -> MapErr<Self, F, E>
    where
        F: Fn(Self::Error) -> Er + Clone + Send + Sync + 'static,
        Er: fmt::Debug + Send + 'static,
    {
        MapErr::new(self, f)
    }

    /// A resource acquired after this one, from its value — a pool, then a
    /// connection from it. The body gets both values; the second is released
    /// first, then this one (LIFO), each told the scope's exit.
    ///
    /// The parts may fail with different errors: the combined resource's
    /// error is [`PartError`](crate::PartError)`<first's, second's>`, which says which part
    /// failed (`PartError::into_inner` when both are the same type). A pool
    /// checkout and a transaction on its connection compose in one line:
    /// `pool.checkout().and_then(|conn| transaction(conn))`.
    ///
    /// If the second acquire fails, this value is released at once, told
    /// `Exit::Cancelled(Cancel::SiblingFailed)` (a panic: `Exit::Panicked`),
    /// and the scope fails with the second's failure (if that release
    /// panics, the panic resumes and the failure is reported). Both parts
    /// are one scope: both are told the same exit, and the scope's error is
    /// suppressed when either release suppresses it. A body timeout of the
    /// second part bounds the body as one of the first does.
    ///
    /// ```
    /// use awith::{resource, ResourceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let (pool_tx, conn_tx) = (tx.clone(), tx);
    /// let pool = resource(
    ///     || async { Ok::<_, std::io::Error>(vec!["c1", "c2"]) },
    ///     move |_, _| async move { Ok(pool_tx.send("pool closed").unwrap()) },
    /// );
    /// let scope = pool.and_then(move |pool: &mut Vec<&'static str>| {
    ///     let name = pool.pop().unwrap();
    ///     resource(
    ///         move || async move { Ok::<_, std::io::Error>(name) },
    ///         move |name, _| async move { Ok(conn_tx.send(name).unwrap()) },
    ///     )
    /// });
    /// let used = scope
    ///     .with(&rt, async |(pool, conn)| {
    ///         Ok::<_, std::io::Error>(format!("{conn} of {}", pool.len() + 1))
    ///     })
    ///     .await?;
    /// assert_eq!(used, "c2 of 2");
    /// assert_eq!(rx.try_iter().collect::<Vec<_>>(), ["c2", "pool closed"]);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancellation
    ///
    /// The combined resource is one scope, and its acquire (both acquires,
    /// and `f` between them) is not cancel-safe, whatever its parts are:
    ///
    /// | dropped while | what happens |
    /// |---|---|
    /// | acquiring either part | the combined acquire is handed to the runtime and finished (`f` and the second acquire run there if they had not yet); both values are then released, second first, told `Exit::Cancelled(reason)`. If the second acquire fails, the first value is released and the failure reported |
    /// | in the body | the body is dropped, then both releases run as one runtime task, second first, told `Exit::Cancelled(reason)` |
    /// | releasing | the releases are handed to the runtime and finish in order |
    ///
    /// Should the combined acquire itself be dropped before it ends (its
    /// cleanup task cut by the runtime's cleanup timeout), a part it already
    /// acquired is released as a runtime task of its own, never just dropped.
    fn and_then<F, B>(self, f: F) -> AndThen<Self, F, E>
    where
        F: FnOnce(&mut Self::Value) -> B + Send + 'static,
        B: Resource<E>,
    {
        AndThen::new(self, f)
    }

    /// Both resources, acquired concurrently on the current task; the body
    /// gets both values; both are released concurrently at the end, each told
    /// the scope's exit. The parts may fail with different errors: the
    /// combined error is [`PartError`](crate::PartError)`<self's, other's>`.
    ///
    /// If one acquire fails, the other is finished and what it yielded is
    /// released, told `Exit::Cancelled(Cancel::SiblingFailed)` (a panic:
    /// `Exit::Panicked`), and the scope fails with every failure. When a
    /// panic resumes instead, the failures it replaces are reported.
    ///
    /// ```
    /// use std::time::Duration;
    /// use awith::{resource, ResourceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let slow = |name: &'static str| {
    ///     resource(
    ///         move || async move {
    ///             tokio::time::sleep(Duration::from_secs(1)).await;
    ///             Ok::<_, std::io::Error>(name)
    ///         },
    ///         |_, _| async { Ok(()) },
    ///     )
    /// };
    /// let start = tokio::time::Instant::now();
    /// let both = slow("a")
    ///     .zip(slow("b"))
    ///     .with(&rt, async |(a, b)| Ok::<_, std::io::Error>(format!("{a}{b}")))
    ///     .await?;
    /// assert_eq!(both, "ab");
    /// assert_eq!(start.elapsed(), Duration::from_secs(1)); // not 2
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancellation
    ///
    /// The combined resource is one scope, and its acquire (both acquires,
    /// concurrently) is not cancel-safe, whatever its parts are:
    ///
    /// | dropped while | what happens |
    /// |---|---|
    /// | acquiring | the combined acquire is handed to the runtime and finished; both values are released concurrently, told `Exit::Cancelled(reason)`. If one acquire fails, the other's value is released and the failure reported |
    /// | in the body | the body is dropped, then both releases run concurrently as one runtime task, told `Exit::Cancelled(reason)` |
    /// | releasing | the releases are handed to the runtime and finish |
    ///
    /// Should the combined acquire itself be dropped before it ends (its
    /// cleanup task cut by the runtime's cleanup timeout), a part it already
    /// acquired is released as a runtime task of its own, never just dropped.
    fn zip<B>(self, other: B) -> Zip<Self, B, E>
    where
        B: Resource<E>,
    {
        Zip::new(self, other)
    }

    /// Bounds the acquire: if it has not finished `after` its first poll,
    /// the scope fails with [`Failure::TimedOut`] (in
    /// [`ScopeError::Acquire`]) at that moment. What happens to the acquire
    /// itself depends on whether it is cancel-safe:
    ///
    /// - **cancel-safe** ([`Resource::CANCEL_SAFE_ACQUIRE`]; for a resource
    ///   made with [`resource`](crate::resource), declared with
    ///   [`.cancel_safe()`](crate::FromFn::cancel_safe)): it is dropped, and
    ///   stops there — a retry loop runs no further try;
    /// - **not cancel-safe** (the default): it is *not* stopped. It is handed
    ///   to the runtime as a cleanup task and finished (bounded by the
    ///   runtime's cleanup timeout), and what it yields is released, told
    ///   `Exit::Cancelled(Cancel::Timeout)`; [`Runtime::drain`] waits for it.
    ///   This is what keeps a half-open connection from leaking, and why an
    ///   acquire that loops on retries should be declared cancel-safe when
    ///   it is.
    ///
    /// See [`time`](crate::time) for zero and huge durations, and
    /// [`FromFn::cancel_safe`](crate::FromFn::cancel_safe) for a retrying
    /// acquire that stops at its timeout. The example shows an acquire that
    /// is not cancel-safe (tokio's clock is paused, so the times are exact):
    ///
    /// ```
    /// use std::time::Duration;
    /// use awith::{resource, ResourceExt};
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let rt = awith::runtime()?;
    ///     let slow = resource(
    ///         || async {
    ///             tokio::time::sleep(Duration::from_secs(10)).await;
    ///             Ok::<_, std::io::Error>("connection")
    ///         },
    ///         |_, _| async { Ok(()) },
    ///     );
    ///     let start = tokio::time::Instant::now();
    ///     let result = slow
    ///         .acquire_timeout(Duration::from_secs(1))
    ///         .with(&rt, async |_| Ok::<_, std::io::Error>(()))
    ///         .await;
    ///     assert!(result.unwrap_err().is_timeout());
    ///     assert_eq!(start.elapsed(), Duration::from_secs(1));
    ///     // The acquire was not cancel-safe: a cleanup finished it, and released
    ///     // the connection it made.
    ///     let stats = rt.drain(Duration::from_secs(60)).await?;
    ///     assert_eq!(stats.spawned, 1);
    ///     Ok(())
    /// }
    /// ```
    ///
    /// # Cancellation
    ///
    /// The timeout is itself a cancellation of the acquire, for
    /// `Cancel::Timeout`, as described above. A scope dropped before the
    /// deadline behaves as [`with`](Self::with)'s table says: an acquire that
    /// is not cancel-safe is finished by a cleanup task, deadline included
    /// (at the deadline, that task hands the acquire on as above, and the
    /// timed-out failure, which nobody is left to be returned to, is
    /// reported).
    fn acquire_timeout(self, after: Duration) -> Timed<Self, E> {
        Timed::new(self).acquire_timeout(after)
    }

    /// Bounds the body: if it has not finished `after` its first poll, it is
    /// dropped, the release runs told `Exit::Cancelled(Cancel::Timeout)`, and
    /// the scope fails with [`ScopeError::BodyTimeout`].
    ///
    /// The bound holds wherever the resource goes: as a part of
    /// [`zip`](Self::zip) or [`and_then`](Self::and_then) (the smallest bound
    /// of all parts wins; `and_then`'s second part bounds the body from the
    /// moment it is known, before the body starts), or entered into an
    /// [`ExitStack`](crate::stack::ExitStack), whose body it bounds from the
    /// moment it is entered (a stack without a body refuses it:
    /// [`Failure::NoBodyToBound`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use awith::{resource, Cancel, ExitKind, ResourceExt, ScopeError};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let conn = resource(
    ///     || async { Ok::<_, std::io::Error>("connection") },
    ///     move |_, exit| async move { Ok(tx.send(exit).unwrap()) },
    /// )
    /// .body_timeout(Duration::from_secs(5));
    /// let start = tokio::time::Instant::now();
    /// let result = conn
    ///     .with(&rt, async |_| {
    ///         tokio::time::sleep(Duration::from_secs(60)).await; // a stuck query
    ///         Ok::<_, std::io::Error>(())
    ///     })
    ///     .await;
    /// assert!(matches!(result, Err(ScopeError::BodyTimeout { release: None, .. })));
    /// assert_eq!(start.elapsed(), Duration::from_secs(5));
    /// assert_eq!(rx.recv()?, ExitKind::Cancelled(Cancel::Timeout));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancellation
    ///
    /// The timeout is a cancellation of the body for `Cancel::Timeout`:
    /// scopes inside it are told `Exit::Cancelled(Cancel::Timeout)`, and the
    /// scope's own release runs in place (not as a cleanup task) once they
    /// are done. A scope dropped before the deadline behaves as
    /// [`with`](Self::with)'s table says.
    fn body_timeout(self, after: Duration) -> Timed<Self, E> {
        Timed::new(self).body_timeout(after)
    }

    /// Bounds the release, on every path: if it has not finished `after` its
    /// first poll, it is dropped and fails with [`Failure::TimedOut`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use awith::{resource, Failure, ResourceExt, ScopeError};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let conn = resource(
    ///     || async { Ok::<_, std::io::Error>("connection") },
    ///     |_, _| async {
    ///         tokio::time::sleep(Duration::from_secs(60)).await; // a server that never says goodbye
    ///         Ok(())
    ///     },
    /// )
    /// .release_timeout(Duration::from_secs(2));
    /// let start = tokio::time::Instant::now();
    /// let result = conn.with(&rt, async |_| Ok::<_, std::io::Error>(7)).await;
    /// assert!(matches!(result, Err(ScopeError::Release(Failure::TimedOut(_)))));
    /// assert_eq!(start.elapsed(), Duration::from_secs(2));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancellation
    ///
    /// The bound goes wherever the release goes: a scope dropped in its body
    /// or while releasing releases in a cleanup task, and the bound cuts that
    /// release too (the timeout is then reported as an
    /// [`Incident`](crate::rt::Incident)), as does the runtime's cleanup
    /// timeout, whichever is shorter.
    fn release_timeout(self, after: Duration) -> Timed<Self, E> {
        Timed::new(self).release_timeout(after)
    }
}

impl<E, R: Resource<E>> ResourceExt<E> for R {}

/// What [`ResourceExt::with`] returns for a resource `R` whose body returns
/// `Result<U, E>`.
pub type Scoped<U, E, R> = Result<U, ScopeError<E, <R as Resource<E>>::Error>>;

/// What an acquire of `R` yields: the value and the releaser, or a failure.
pub type Acquired<E, R> = Result<
    (<R as Resource<E>>::Value, <R as Resource<E>>::Releaser),
    Failure<<R as Resource<E>>::Error>,
>;

/// What [`Resource::release_now`] did.
pub enum ReleaseNow<E, R: Resource<E>> {
    /// Released: the verdict, or the failure.
    Done(Released<E, R>),
    /// Not released: the scope runs [`Resource::release`] with these.
    Later {
        /// The releaser, given back.
        releaser: R::Releaser,
        /// The value, given back.
        value: R::Value,
    },
}

impl<E, R: Resource<E>> fmt::Debug for ReleaseNow<E, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReleaseNow::Done(Ok(_)) => f.write_str("Done(Ok(..))"),
            ReleaseNow::Done(Err(failure)) => f.debug_tuple("Done").field(failure).finish(),
            ReleaseNow::Later { .. } => f.write_str("Later { .. }"),
        }
    }
}

/// What a release of `R` yields: the verdict, or a failure.
pub type Released<E, R> = Result<Verdict, Failure<<R as Resource<E>>::Error>>;
