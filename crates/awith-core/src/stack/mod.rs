//! [`ExitStack`]: a dynamic stack of scopes — the `AsyncExitStack` of awith.
//!
//! Enter any number of resources (N connections in a loop) and push async
//! exits; at the end they are exited in reverse order, every one of them,
//! even when earlier exits failed or panicked.
//!
//! ```
//! use std::time::Duration;
//! use awith::stack::ExitStack;
//! use awith::{resource, Failure};
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let rt = awith::runtime()?;
//!     let (tx, rx) = std::sync::mpsc::channel();
//!     let conn = |n: u32| {
//!         let tx = tx.clone();
//!         resource(
//!             move || async move { Ok::<_, std::io::Error>(n) },
//!             move |n, _exit| async move { Ok(tx.send(n).unwrap()) },
//!         )
//!     };
//!     let total = ExitStack::with(&rt, async |stack: &mut ExitStack<Failure<std::io::Error>>| {
//!         let mut keys = Vec::new();
//!         for n in 1..=3 {
//!             keys.push(stack.enter(conn(n)).await?);
//!         }
//!         Ok(keys.iter().map(|key| stack[*key]).sum::<u32>())
//!     })
//!     .await?;
//!     assert_eq!(total, 6);
//!     assert_eq!(rx.try_iter().collect::<Vec<_>>(), [3, 2, 1]); // LIFO
//!     rt.drain(Duration::from_secs(5)).await?;
//!     Ok(())
//! }
//! ```
//!
//! # How exits see the scope
//!
//! A stack behaves as the nested scopes it replaces: each exit is shown the
//! failure most recently put in flight, with the failures chained before it
//! — as Python's `AsyncExitStack` shows the newest exception with its
//! `__context__`, and as a nested scope's release is shown the inner scope's
//! error with its release failures.
//!
//! Rust's errors carry no context, so a stack lends each exit *all* the
//! failures in flight at once: an exit is told `Exit::Failed(&failures)`,
//! a [`Failure<E>`] of them in the order they were put in flight (the body's
//! error first, if it failed; the newest last —
//! `failures.errors().last()`). That is why exits are given
//! `&Exit<'_, Failure<E>>` (and [`enter`](ExitStack::enter) takes a
//! `Resource<Failure<E>>`, as every resource generic over the body's error
//! is): what an exit may suppress is exactly what it was shown.
//!
//! | in flight when an exit runs | the exit is told | it returns `Ok` | it suppresses (`Verdict::Suppress`) | it fails with `x` | it panics |
//! |---|---|---|---|---|---|
//! | nothing: the body completed, or what failed was suppressed | `Completed` | unchanged | nothing to suppress | `x` is in flight | its panic is in flight |
//! | nothing, the body timed out | `Cancelled(Timeout)` | unchanged | nothing to suppress: a cancellation cannot be | `x` is in flight | its panic is in flight |
//! | failures `f1 … fn` | `Failed(&failures)`: `f1 … fn`, the newest last | unchanged | `f1 … fn` are dropped: the exit was shown them all; nothing is in flight | `x` joins them, the newest | its panic is in flight; `f1 … fn` can no longer be returned and are reported (`ErrorLostToPanic`) |
//! | a panic (the body's or an exit's) | `Panicked` | unchanged | no effect | `x` is reported (`ReleaseFailedDuringPanic`) | reported (`ReleasePanickedDuringPanic`) |
//!
//! [`ExitStack::with`] then returns, from what is in flight at the end:
//!
//! | in flight | `with` returns |
//! |---|---|
//! | a panic | it resumes (after every exit ran) |
//! | nothing, the body completed and nothing failed after | its output (`Ok(Some(output))` for a stack whose verdict type is [`Verdict`](crate::Verdict)) |
//! | nothing, a failure was suppressed (the body's, or one after it) | `Ok(None)`: as in nested scopes, where a release failure drops the body's output, the output is dropped once a failure is in flight |
//! | the body's error, and failures after it | `ScopeError::Body { error, release }`, the exits' failures in `release` |
//! | failures, the body timed out | `ScopeError::BodyTimeout { after, release }` |
//! | failures, the body completed (or its error was suppressed) | `ScopeError::Release(failures)` |
//!
//! These are CPython's rules (its `AsyncExitStack` tests are ported in the
//! conformance suite), and those of nested scopes: the suite runs the same
//! resources both ways and checks that they see, suppress, return and
//! report the same.
//!
//! # Errors
//!
//! Everything in a stack fails with one error type, `E`, the body's: the
//! failures of entered resources convert into it (`E: From<Failure<R::Error>>`
//! — `anyhow::Error` does, and so does [`Failure`] of the same error), so that
//! a later exit can be shown them with the rest.
//!
//! # Body timeouts
//!
//! A resource with a [body timeout](crate::ResourceExt::body_timeout)
//! (its own, or that of a part of it) entered in [`ExitStack::with`] bounds
//! the stack's body from the moment it is entered (its acquire ended): at
//! the deadline the body is dropped (an acquire in flight in it is handed
//! over, as at any cancellation), every exit is told
//! `Exit::Cancelled(Cancel::Timeout)`, and `with` fails with
//! `ScopeError::BodyTimeout`. Of several bounds, the one due first fires.
//! The bound stays with the body it was entered in, also when
//! [`pop_all`](ExitStack::pop_all) moves the resource out.
//!
//! (One difference from nested scopes remains: there, a resource entered
//! *before* the bounded one would see the inner scope's timeout as an error
//! of its own body; here, the whole body is cancelled, and every exit is
//! told so.)
//!
//! A stack made with [`ExitStack::new`] (or moved out by `pop_all`) has no
//! body to bound, so it refuses such a resource rather than drop its bound:
//! the enter fails with [`Failure::NoBodyToBound`], before acquiring — or,
//! when the bound is only known once acquired (`and_then`'s second part),
//! after releasing what was acquired, told `Cancelled(Timeout)`.
//!
//! # Cancellation
//!
//! An acquire in flight in [`ExitStack::enter`] when its future is dropped is
//! handed to the runtime and finished, and what it yields is released. A
//! stack dropped with entries left — its scope cancelled, or a stack of your
//! own never closed — exits them as a runtime cleanup task, told
//! `Exit::Cancelled(reason)`; so does an unwinding dropped half-way (what it
//! had in flight is reported: nobody is left to return it to). Each of those
//! exits is bounded by the runtime's cleanup timeout; a panic in one (also
//! in its future's `Drop`) is caught, and the next still runs.
//! `mem::forget` skips all of this.

mod entry;
mod unwind;

use std::fmt;
use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::ops::{Index, IndexMut};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use self::entry::{Callback, Entered, Entry};
use self::unwind::{BodyEnd, Unwinding, split_body_error, unwind_detached};
use crate::error::{Failure, ScopeError};
use crate::exit::{Cancel, Exit, ExitKind};
use crate::nest::{Inner, all_done, forward};
use crate::resource::{Acquired, Resource};
use crate::rt::{Incident, Runtime};
use crate::time::{LateBounds, drop_reason};
use crate::util::{CatchUnwind, min_bound};
use crate::verdict::{JoinVerdict, ReleaseVerdict};
use crate::with::{BodyRun, Outcome, describe, drop_during_panic, finish_acquire};

static NEXT_STACK: AtomicU64 = AtomicU64::new(1);

/// A handle to a value entered into an [`ExitStack`], for
/// [`get`](ExitStack::get) and indexing.
pub struct Key<T> {
    index: usize,
    stack: u64,
    value: PhantomData<fn() -> T>,
}

impl<T> Clone for Key<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Key<T> {}

impl<T> PartialEq for Key<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.index, self.stack) == (other.index, other.stack)
    }
}

impl<T> Eq for Key<T> {}

impl<T> fmt::Debug for Key<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("index", &self.index)
            .field("stack", &self.stack)
            .finish()
    }
}

/// A dynamic stack of scopes; see the [module docs](self).
///
/// `E` is the error the body and every exit fail with (each exit is shown
/// the failures in flight as a [`Failure<E>`]); `V` is `()` for a stack whose
/// exits cannot suppress errors, [`Verdict`](crate::Verdict) for one whose
/// exits may (then [`ExitStack::with`] returns `Option`) — suppression is
/// asked for where the stack is made, as
/// [`with_suppression`](crate::ResourceExt::with_suppression) asks for it
/// for one scope. On a `()` stack, an entered resource's release that
/// returns `Verdict::Suppress` is not honoured (the failures stay in
/// flight), and [`push_exit`](ExitStack::push_exit) takes only exits that
/// cannot suppress (a `Verdict`-returning exit does not compile).
pub struct ExitStack<E, V = ()>
where
    E: fmt::Debug + Send + 'static,
    V: ReleaseVerdict,
{
    rt: Runtime,
    id: u64,
    entries: Vec<Pin<Box<dyn Entry<E>>>>,
    /// The bounds entered resources put on the body of the scope this stack
    /// belongs to; `None` for a stack without a body.
    bounds: Option<Arc<LateBounds>>,
    verdict: PhantomData<fn() -> V>,
}

impl<E, V> ExitStack<E, V>
where
    E: fmt::Debug + Send + 'static,
    V: ReleaseVerdict,
{
    /// An empty stack on `rt`, without a body. Close it with
    /// [`close`](Self::close); a stack dropped with entries left exits them
    /// as a runtime cleanup task.
    pub fn new(rt: &Runtime) -> Self {
        ExitStack {
            rt: rt.clone(),
            id: NEXT_STACK.fetch_add(1, Ordering::Relaxed),
            entries: Vec::new(),
            bounds: None,
            verdict: PhantomData,
        }
    }

    /// Runs `body` with a new stack, then exits everything on it in reverse
    /// order, as the [module docs](self) describe.
    ///
    /// # Errors
    ///
    /// [`ScopeError::Body`] when the body failed (with the exits' failures
    /// after its error), [`ScopeError::BodyTimeout`] when an entered
    /// resource's body timeout expired, [`ScopeError::Release`] when the body
    /// completed (or its error was suppressed) and exits failed after.
    ///
    /// # Panics
    ///
    /// A panic of the body or of an exit resumes once every exit has run;
    /// the failures it replaces are reported.
    pub async fn with<U, B>(rt: &Runtime, body: B) -> Result<V::Output<U>, ScopeError<E, E>>
    where
        B: AsyncFnOnce(&mut ExitStack<E, V>) -> Result<U, E>,
    {
        let bounds = Arc::new(LateBounds::default());
        let mut scope = StackScope {
            stack: ExitStack::<E, V>::new(rt),
            inner: Inner::default(),
        };
        scope.stack.bounds = Some(Arc::clone(&bounds));
        // The body's future is made right in its place, as in a scope.
        let outcome = {
            let mut run = std::pin::pin!(BodyRun {
                rt,
                body: None,
                deadline: None,
                tripwire: None,
                late: Some(&bounds),
                inner: &scope.inner,
            });
            let stack = &mut scope.stack;
            match catch_unwind(AssertUnwindSafe(|| run.as_mut().start(|| body(stack)))) {
                Ok(()) => run.await,
                Err(panic) => Outcome::Panicked(panic),
            }
        };
        // Scopes nested in the body that were cancelled release first.
        if scope.inner.any() {
            all_done(scope.inner.snapshot()).await;
        }
        let entries = std::mem::take(&mut scope.stack.entries);
        // The unwinding owns what is in flight while it runs, lending each
        // exit the failures: the scope's future is `Send` whenever `E` is,
        // `Sync` or not.
        let (state, body) = Unwinding::new(rt, entries, outcome).await;
        if let Some(panic) = state.panic {
            drop_during_panic(rt, body);
            resume_unwind(panic)
        }
        match (body, state.failures) {
            (BodyEnd::Completed(output), None) if !state.output_lost => Ok(V::completed(output)),
            (BodyEnd::Completed(output), None) => {
                // A failure after the body was suppressed: the scope did
                // not complete (its output is dropped), and nothing is lost.
                drop(output);
                Ok(V::suppressed())
            }
            (BodyEnd::Completed(output), Some(failures)) => {
                // The output is dropped: the scope did not complete. Should
                // its `Drop` panic, that panic resumes, the failures reported.
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| drop(output))) {
                    rt.report(Incident::ErrorLostToPanic {
                        error: describe(&failures),
                    });
                    resume_unwind(panic)
                }
                Err(ScopeError::Release(failures))
            }
            (BodyEnd::Failed, Some(failures)) if state.body_error => {
                let (error, release) = split_body_error(failures);
                Err(ScopeError::Body { error, release })
            }
            (BodyEnd::Failed, None) => Ok(V::suppressed()),
            (BodyEnd::Failed, Some(failures)) => Err(ScopeError::Release(failures)),
            (BodyEnd::Stopped(stopped), release) => Err(stopped.into_error(release)),
            (BodyEnd::Panicked, _) => unreachable!("a panicked body's panic is in flight"),
        }
    }

    /// Acquires `resource` and pushes its release; returns a key to its
    /// value. A body timeout of the resource bounds the stack's body from
    /// now (see [Body timeouts](self#body-timeouts)).
    ///
    /// # Errors
    ///
    /// The acquire's failure; nothing is pushed then.
    /// [`Failure::NoBodyToBound`] when the resource has a body timeout and
    /// this stack has no body to bound.
    ///
    /// # Cancellation
    ///
    /// If this future is dropped while the acquire is in flight, the acquire
    /// is handed to the runtime and finished, and what it yields is released,
    /// told `Exit::Cancelled(reason)` — unless the acquire is cancel-safe
    /// ([`Resource::CANCEL_SAFE_ACQUIRE`]): then it is dropped. What was
    /// entered before stays on the stack.
    ///
    /// # Examples
    ///
    /// Resources whose errors differ enter one stack whose error holds each
    /// (`E: From<Failure<R::Error>>`; here a boxed error). An enter that
    /// fails pushes nothing; `?` ends the body, and what was entered is
    /// exited, newest first:
    ///
    /// ```
    /// use awith::stack::ExitStack;
    /// use awith::{resource, ScopeError};
    ///
    /// type BoxError = Box<dyn std::error::Error + Send + Sync>;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let file_tx = tx.clone();
    /// let file = resource(
    ///     || async { Ok::<_, std::io::Error>("log.txt") },
    ///     move |name, _exit| async move { Ok(file_tx.send(name).unwrap()) },
    /// );
    /// let port = |text: &'static str| {
    ///     let tx = tx.clone();
    ///     resource(
    ///         move || async move { text.parse::<u16>() },
    ///         move |_port, _exit| async move { Ok(tx.send(text).unwrap()) },
    ///     )
    /// };
    /// let result = ExitStack::with(&rt, async |stack: &mut ExitStack<BoxError>| {
    ///     let file = stack.enter(file).await?;
    ///     let http = stack.enter(port("8080")).await?;
    ///     assert_eq!((stack[file], stack[http]), ("log.txt", 8080));
    ///     stack.enter(port("eighty")).await?; // fails
    ///     Ok(())
    /// })
    /// .await;
    /// let error = result.map_err(ScopeError::into_dyn).unwrap_err();
    /// assert_eq!(error.to_string(), "invalid digit found in string");
    /// assert_eq!(rx.try_iter().collect::<Vec<_>>(), ["8080", "log.txt"]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn enter<R>(&mut self, resource: R) -> Result<Key<R::Value>, Failure<R::Error>>
    where
        R: Resource<Failure<E>> + 'static,
        E: From<Failure<R::Error>>,
    {
        let bound = resource
            .body_timeout()
            .filter(|after| self.can_expire(*after));
        if let (Some(after), None) = (bound, &self.bounds) {
            return Err(Failure::NoBodyToBound(after));
        }
        // The acquire runs in the entry's allocation, which then holds the
        // value: one allocation, handed to the runtime if dropped half-way.
        let mut acquiring = InFlightAcquire::<R, E, _> {
            rt: &self.rt,
            entry: Some(Box::pin(Entered::Acquiring(resource.acquire(&self.rt)))),
            polling: false,
        };
        let (mut entry, acquired) = poll_fn(|cx| acquiring.poll_acquire(cx)).await;
        let (value, releaser) = acquired?;
        let bound = min_bound(bound, R::acquired_body_timeout(&releaser))
            .filter(|after| self.can_expire(*after));
        if let (Some(wire), Some(bounds)) = (R::acquired_tripwire(&releaser), &self.bounds) {
            bounds.add_tripwire(wire);
        }
        match (bound, &self.bounds) {
            (None, _) => {}
            (Some(after), Some(bounds)) => bounds.add(&self.rt, after),
            (Some(after), None) => {
                return Err(refuse::<R, E>(&self.rt, value, releaser, after).await);
            }
        }
        entry.as_mut().set(Entered::Held {
            held: Some((value, releaser)),
            may_suppress: V::MAY_SUPPRESS,
            resource: PhantomData,
        });
        self.entries.push(entry);
        Ok(Key {
            index: self.entries.len() - 1,
            stack: self.id,
            value: PhantomData,
        })
    }

    /// `true` when a bound of `after` from now can expire (a larger one is
    /// no bound, as for every deadline).
    fn can_expire(&self, after: std::time::Duration) -> bool {
        self.rt.now().checked_add(after).is_some()
    }

    /// Pushes an async callback, run in its turn and told how the scope
    /// ended so far. It cannot suppress the failures in flight.
    pub fn push_callback<F, Fut>(&mut self, callback: F)
    where
        F: FnOnce(ExitKind) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let exit = move |exit: &Exit<'_, Failure<E>>| callback(exit.kind());
        self.entries.push(Box::pin(Callback(Some(exit))));
    }

    /// Pushes an async exit — the `push_async_exit` of Python — told the
    /// exit, with the failures in flight (lent only while `exit` builds its
    /// future). On a stack whose verdict type is [`Verdict`](crate::Verdict)
    /// it may return `Verdict::Suppress`; see the [module docs](self).
    ///
    /// ```
    /// use awith::stack::ExitStack;
    /// use awith::{Exit, Failure, Verdict};
    ///
    /// #[derive(Debug, PartialEq)]
    /// enum Error { Query, Close }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let result = ExitStack::<Error, Verdict>::with(&rt, async |stack| {
    ///     // Like `contextlib.suppress(CloseError)`: the newest failure.
    ///     stack.push_exit(|exit: &Exit<'_, Failure<Error>>| {
    ///         let close = exit.error().and_then(|failures| failures.errors().last()) == Some(&Error::Close);
    ///         async move { Ok(if close { Verdict::Suppress } else { Verdict::Propagate }) }
    ///     });
    ///     stack.push_exit(|_: &Exit<'_, Failure<Error>>| async { Err::<(), _>(Error::Close) });
    ///     Err::<u8, _>(Error::Query)
    /// })
    /// .await;
    /// // Shown the close error chained to the query error, it dropped both.
    /// assert!(matches!(result, Ok(None)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn push_exit<F, Fut, W>(&mut self, exit: F)
    where
        F: FnOnce(&Exit<'_, Failure<E>>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<W, E>> + Send + 'static,
        W: JoinVerdict<V, Joined = V>,
    {
        self.entries.push(Box::pin(Callback(Some(exit))));
    }

    /// The value behind `key`, if it is on this stack.
    pub fn get<T: 'static>(&self, key: Key<T>) -> Option<&T> {
        if key.stack != self.id {
            return None;
        }
        self.entries.get(key.index)?.value()?.downcast_ref::<T>()
    }

    /// The value behind `key`, mutably, if it is on this stack.
    pub fn get_mut<T: 'static>(&mut self, key: Key<T>) -> Option<&mut T> {
        if key.stack != self.id {
            return None;
        }
        self.entries
            .get_mut(key.index)?
            .as_mut()
            .value_mut()?
            .downcast_mut::<T>()
    }

    /// How many entries (resources and exits) the stack holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `true` when the stack holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Moves every entry to a new stack and leaves this one empty — the
    /// `pop_all` of Python, to hand resources over past the end of a scope.
    /// Keys of this stack now refer to the new one. The new stack has no
    /// body (see [Body timeouts](self#body-timeouts)).
    pub fn pop_all(&mut self) -> ExitStack<E, V> {
        let moved = ExitStack {
            rt: self.rt.clone(),
            id: self.id,
            entries: std::mem::take(&mut self.entries),
            bounds: None,
            verdict: PhantomData,
        };
        self.id = NEXT_STACK.fetch_add(1, Ordering::Relaxed);
        moved
    }

    /// Exits everything, in reverse order, told the scope completed, as the
    /// [module docs](self) describe.
    ///
    /// # Errors
    ///
    /// The failures in flight at the end, in the order they were put in
    /// flight.
    ///
    /// # Panics
    ///
    /// An exit's panic resumes once every exit has run; the failures it
    /// replaces are reported.
    pub async fn close(mut self) -> Result<(), Failure<E>> {
        let entries = std::mem::take(&mut self.entries);
        let (state, _) = Unwinding::new(&self.rt, entries, Outcome::Completed(())).await;
        if let Some(panic) = state.panic {
            resume_unwind(panic);
        }
        match state.failures {
            None => Ok(()),
            Some(failures) => Err(failures),
        }
    }
}

/// Releases at once a value whose bound, only known once acquired, a stack
/// without a body cannot keep; the enter's failure.
async fn refuse<R, E>(
    rt: &Runtime,
    value: R::Value,
    releaser: R::Releaser,
    after: std::time::Duration,
) -> Failure<R::Error>
where
    R: Resource<Failure<E>>,
{
    let refused = Failure::NoBodyToBound(after);
    let release = catch_unwind(AssertUnwindSafe(|| {
        R::release(releaser, value, &Exit::Cancelled(Cancel::Timeout), rt)
    }));
    let released = match release {
        Ok(release) => CatchUnwind::new(release).await,
        Err(panic) => Err(panic),
    };
    match released {
        Ok(Ok(_)) => refused,
        Ok(Err(failure)) => refused.and(failure),
        Err(panic) => {
            rt.report(Incident::ErrorLostToPanic {
                error: describe(&refused),
            });
            resume_unwind(panic)
        }
    }
}

impl<E, V, T: 'static> Index<Key<T>> for ExitStack<E, V>
where
    E: fmt::Debug + Send + 'static,
    V: ReleaseVerdict,
{
    type Output = T;

    /// # Panics
    ///
    /// When `key` belongs to another stack, or its entry was moved away by
    /// [`pop_all`](ExitStack::pop_all).
    fn index(&self, key: Key<T>) -> &T {
        self.get(key)
            .unwrap_or_else(|| panic!("{key:?} is not a value of this exit stack"))
    }
}

impl<E, V, T: 'static> IndexMut<Key<T>> for ExitStack<E, V>
where
    E: fmt::Debug + Send + 'static,
    V: ReleaseVerdict,
{
    /// # Panics
    ///
    /// As [`Index`].
    fn index_mut(&mut self, key: Key<T>) -> &mut T {
        self.get_mut(key)
            .unwrap_or_else(|| panic!("{key:?} is not a value of this exit stack"))
    }
}

impl<E, V> fmt::Debug for ExitStack<E, V>
where
    E: fmt::Debug + Send + 'static,
    V: ReleaseVerdict,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExitStack")
            .field("entries", &self.entries.len())
            .field("has_body", &self.bounds.is_some())
            .finish_non_exhaustive()
    }
}

/// A stack dropped with entries left exits them as a runtime cleanup task.
impl<E, V> Drop for ExitStack<E, V>
where
    E: fmt::Debug + Send + 'static,
    V: ReleaseVerdict,
{
    fn drop(&mut self) {
        if !self.entries.is_empty() {
            let entries = std::mem::take(&mut self.entries);
            unwind_detached(&self.rt, None, entries, drop_reason(), Vec::new());
        }
    }
}

/// The stack of [`ExitStack::with`], with the cleanups of scopes cancelled
/// inside its body: dropped with its scope, it exits its entries once those
/// have ended.
struct StackScope<E, V>
where
    E: fmt::Debug + Send + 'static,
    V: ReleaseVerdict,
{
    stack: ExitStack<E, V>,
    inner: Inner,
}

impl<E, V> Drop for StackScope<E, V>
where
    E: fmt::Debug + Send + 'static,
    V: ReleaseVerdict,
{
    fn drop(&mut self) {
        let inner = self.inner.take();
        if self.stack.entries.is_empty() {
            // Nothing to exit here: whoever collects around this scope waits
            // for the cleanups of what was cancelled inside it.
            forward(inner);
        } else {
            let entries = std::mem::take(&mut self.stack.entries);
            unwind_detached(&self.stack.rt, None, entries, drop_reason(), inner);
        }
    }
}

/// An acquire in flight for [`ExitStack::enter`], in its entry's
/// allocation; handed to the runtime if dropped.
struct InFlightAcquire<'a, R: Resource<Failure<E>> + 'static, E: 'static, F>
where
    F: Future<Output = Acquired<Failure<E>, R>> + Send + 'static,
{
    rt: &'a Runtime,
    entry: Option<Pin<Box<Entered<R, E, F>>>>,
    polling: bool,
}

impl<R: Resource<Failure<E>> + 'static, E: 'static, F> InFlightAcquire<'_, R, E, F>
where
    F: Future<Output = Acquired<Failure<E>, R>> + Send + 'static,
{
    /// The entry (emptied: the finished acquire is dropped) and what the
    /// acquire yielded.
    #[allow(clippy::type_complexity)] // the entry and the acquire's output
    fn poll_acquire(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<(Pin<Box<Entered<R, E, F>>>, Acquired<Failure<E>, R>)> {
        let Some(entry) = &mut self.entry else {
            unreachable!("the acquire is polled until it finishes, then never again")
        };
        // A panic in this poll unwinds through `enter` with `polling` set.
        self.polling = true;
        let polled = entry.as_mut().poll_acquire(cx);
        self.polling = false;
        let Poll::Ready(acquired) = polled else {
            return Poll::Pending;
        };
        let Some(mut entry) = self.entry.take() else {
            unreachable!("checked above")
        };
        entry.as_mut().set(Entered::Empty);
        Poll::Ready((entry, acquired))
    }
}

impl<R: Resource<Failure<E>> + 'static, E: 'static, F> Drop for InFlightAcquire<'_, R, E, F>
where
    F: Future<Output = Acquired<Failure<E>, R>> + Send + 'static,
{
    fn drop(&mut self) {
        if self.polling {
            // The acquire panicked: it is dropped here, not handed over.
            return;
        }
        if let Some(mut entry) = self.entry.take() {
            let acquire = poll_fn(move |cx| entry.as_mut().poll_acquire(cx));
            finish_acquire::<R, Failure<E>, _>(self.rt, acquire, drop_reason());
        }
    }
}
