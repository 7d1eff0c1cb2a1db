//! [`ExitStack`]: a dynamic stack of scopes — the `AsyncExitStack` of awith.
//!
//! Enter any number of resources (N connections in a loop) and push async
//! callbacks; at the end they are exited in reverse order, every one of them,
//! even when earlier exits failed or panicked.
//!
//! ```
//! use awith_core::reference::Reference;
//! use awith_core::stack::ExitStack;
//! use awith_core::{resource, Failure};
//!
//! let reference = Reference::new();
//! let rt = reference.runtime();
//! let (tx, rx) = std::sync::mpsc::channel();
//! let conn = |n: u32| {
//!     let tx = tx.clone();
//!     resource(move || async move { Ok::<_, String>(n) }, move |n, _exit| async move {
//!         Ok(tx.send(n).unwrap())
//!     })
//! };
//! let total = reference.block_on(ExitStack::with(&rt, async |stack: &mut ExitStack<Failure<String>>| {
//!     let mut keys = Vec::new();
//!     for n in 1..=3 {
//!         keys.push(stack.enter(conn(n)).await?);
//!     }
//!     Ok(keys.iter().map(|key| stack[*key]).sum::<u32>())
//! }));
//! assert_eq!(total.unwrap().unwrap(), 6);
//! assert_eq!(rx.try_iter().collect::<Vec<_>>(), [3, 2, 1]); // LIFO
//! ```
//!
//! # How exits see the scope
//!
//! Each exit is told the scope's state *as the exits before it left it*, the
//! semantics of Python's `AsyncExitStack`:
//!
//! | state when an exit runs | the exit sees | it returns `Ok` | it suppresses (`Verdict::Suppress`) | it fails with `x` | it panics |
//! |---|---|---|---|---|---|
//! | completed | `Completed` | unchanged | nothing to suppress | `x` is in flight: later exits see `Failed(&x)` | later exits see `Panicked`; the panic resumes at the end |
//! | an error `e` in flight (the body's, or an exit's) | `Failed(&e)` | unchanged | `e` and every failure chained to it are dropped: later exits see `Completed` | `x` is chained to `e`; later exits still see `Failed(&e)` | as above; the errors are reported |
//! | panicked | `Panicked` | unchanged | no effect | `x` is reported | reported; the first panic resumes |
//! | cancelled | `Cancelled(reason)` | unchanged | no effect | `x` is reported | reported |
//!
//! Python shows each exit the *newest* exception (chained to the older
//! ones); awith shows the *first* one in flight, the error the scope failed
//! with, and keeps the later ones beside it.
//!
//! [`ExitStack::with`] then returns: the body's output if nothing is in
//! flight; `Ok(None)` if an exit suppressed the body's error (stacks whose
//! verdict type is [`Verdict`](crate::Verdict)); `ScopeError::Body { error, release }` with
//! the exits' failures chained to the body's error; or
//! `ScopeError::Release(failure)` when the body completed (or its error was
//! suppressed) and an exit failed afterwards.
//!
//! # Errors
//!
//! Everything in a stack fails with one error type, `E`, the body's: the
//! failures of entered resources convert into it (`E: From<Failure<R::Error>>`
//! — `anyhow::Error` does, and so does [`Failure`] of the same error), so that
//! a later exit can be told `Failed(&e)` whatever failed.
//!
//! # Cancellation
//!
//! An acquire in flight in [`ExitStack::enter`] when its future is dropped is
//! handed to the runtime and finished, and what it yields is released. A
//! stack dropped with entries left — its scope cancelled, or a stack of your
//! own never closed — exits them as a runtime cleanup task, told
//! `Exit::Cancelled(reason)`; so does an unwinding dropped half-way.
//! `mem::forget` skips all of this.

use std::any::Any;
use std::fmt;
use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::ops::{Index, IndexMut};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use crate::error::{Failure, ScopeError};
use crate::exit::{Cancel, Exit, ExitKind};
use crate::nest::{CleanupDone, Inner, all_done, forward};
use crate::resource::Resource;
use crate::rt::{CleanupError, CleanupKind, Incident, Runtime};
use crate::time::drop_reason;
use crate::util::{CatchUnwind, OrTimeout, Panic, panic_message};
use crate::verdict::{JoinVerdict, ReleaseVerdict};
use crate::with::{BodyRun, Outcome, describe, finish_acquire};

static NEXT_STACK: AtomicU64 = AtomicU64::new(1);

/// A boxed exit future: `Ok(true)` when it suppresses the error in flight.
type ExitFuture<E> = Pin<Box<dyn Future<Output = Result<bool, E>> + Send + 'static>>;

/// One entry: an entered resource (with its value) or a pushed callback.
trait Entry<E>: Send {
    /// The entered value, for [`ExitStack::get`].
    fn value(&self) -> Option<&(dyn Any + Send)>;

    /// The entered value, for [`ExitStack::get_mut`].
    fn value_mut(&mut self) -> Option<&mut (dyn Any + Send)>;

    /// Starts the exit, told `exit` (lent only for this call).
    fn exit(self: Box<Self>, exit: &Exit<'_, E>, rt: &Runtime) -> ExitFuture<E>;
}

/// An entered resource.
struct Entered<R: Resource<E>, E> {
    value: R::Value,
    releaser: R::Releaser,
    resource: PhantomData<fn(R, &E)>,
}

impl<R, E> Entry<E> for Entered<R, E>
where
    R: Resource<E> + 'static,
    E: From<Failure<R::Error>> + Send + 'static,
{
    fn value(&self) -> Option<&(dyn Any + Send)> {
        Some(&self.value)
    }

    fn value_mut(&mut self) -> Option<&mut (dyn Any + Send)> {
        Some(&mut self.value)
    }

    fn exit(self: Box<Self>, exit: &Exit<'_, E>, rt: &Runtime) -> ExitFuture<E> {
        let Entered {
            value, releaser, ..
        } = *self;
        let release = R::release(releaser, value, exit, rt);
        Box::pin(async move {
            match release.await {
                Ok(verdict) => Ok(verdict.suppresses()),
                Err(failure) => Err(E::from(failure)),
            }
        })
    }
}

/// A pushed callback, told the exit.
struct Callback<F>(F);

impl<E, F, Fut, V> Entry<E> for Callback<F>
where
    F: FnOnce(&Exit<'_, E>) -> Fut + Send,
    Fut: Future<Output = Result<V, E>> + Send + 'static,
    V: ReleaseVerdict,
{
    fn value(&self) -> Option<&(dyn Any + Send)> {
        None
    }

    fn value_mut(&mut self) -> Option<&mut (dyn Any + Send)> {
        None
    }

    fn exit(self: Box<Self>, exit: &Exit<'_, E>, _rt: &Runtime) -> ExitFuture<E> {
        let exit = (self.0)(exit);
        Box::pin(async move { exit.await.map(|verdict| verdict.suppresses()) })
    }
}

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
/// `E` is the error every exit is told about and fails with; `V` is `()` for
/// a stack whose exits cannot suppress errors, [`Verdict`](crate::Verdict)
/// for one whose exits may (then [`ExitStack::with`] returns `Option`).
pub struct ExitStack<E, V = ()>
where
    E: fmt::Debug + Send + 'static,
    V: ReleaseVerdict,
{
    rt: Runtime,
    id: u64,
    entries: Vec<Box<dyn Entry<E>>>,
    verdict: PhantomData<fn() -> V>,
}

impl<E, V> ExitStack<E, V>
where
    E: fmt::Debug + Send + 'static,
    V: ReleaseVerdict,
{
    /// An empty stack on `rt`. Close it with [`close`](Self::close); a stack
    /// dropped with entries left exits them as a runtime cleanup task.
    pub fn new(rt: &Runtime) -> Self {
        ExitStack {
            rt: rt.clone(),
            id: NEXT_STACK.fetch_add(1, Ordering::Relaxed),
            entries: Vec::new(),
            verdict: PhantomData,
        }
    }

    /// Runs `body` with a new stack, then exits everything on it in reverse
    /// order, as the [module docs](self) describe.
    ///
    /// # Errors
    ///
    /// [`ScopeError::Body`] when the body failed (with the exits' failures
    /// chained to its error), [`ScopeError::Release`] when the body completed
    /// and an exit failed.
    ///
    /// # Panics
    ///
    /// A panic of the body or of an exit resumes once every exit has run.
    pub async fn with<U, B>(rt: &Runtime, body: B) -> Result<V::Output<U>, ScopeError<E, E>>
    where
        B: AsyncFnOnce(&mut ExitStack<E, V>) -> Result<U, E>,
    {
        let mut scope = StackScope {
            stack: ExitStack::<E, V>::new(rt),
            inner: Inner::default(),
        };
        let outcome = match catch_unwind(AssertUnwindSafe(|| body(&mut scope.stack))) {
            Ok(body) => {
                BodyRun {
                    rt,
                    body: Some(CatchUnwind::new(body)),
                    deadline: None,
                    inner: &scope.inner,
                }
                .await
            }
            Err(panic) => Outcome::Panicked(panic),
        };
        // Scopes nested in the body that were cancelled release first.
        if scope.inner.any() {
            all_done(scope.inner.snapshot()).await;
        }
        let entries = std::mem::take(&mut scope.stack.entries);
        let outcome = match outcome {
            Outcome::Completed(output) => Ok(Ok(output)),
            Outcome::Failed(error) => Ok(Err(error)),
            Outcome::Panicked(panic) => Err(panic),
            Outcome::TimedOut(_) => unreachable!("the body of a stack has no deadline"),
        };
        // The unwinding owns the outcome while it runs, lending each exit
        // the body's error: the scope's future is `Send` whenever `E` is,
        // `Sync` or not.
        let (unwound, outcome) = Unwinding::new(rt, entries, outcome).await;
        match (outcome, unwound.panic) {
            (Err(body_panic), exit_panic) => {
                if let Some(exit_panic) = exit_panic {
                    rt.report(Incident::ReleasePanickedDuringPanic {
                        message: panic_message(&exit_panic),
                    });
                }
                report_failures(rt, unwound.in_flight, unwound.chained);
                resume_unwind(body_panic)
            }
            (Ok(_), Some(exit_panic)) => {
                report_failures(rt, unwound.in_flight, unwound.chained);
                resume_unwind(exit_panic)
            }
            (Ok(Ok(output)), None) => match unwound.in_flight {
                None => Ok(V::completed(output)),
                Some(error) => Err(ScopeError::Release(chain(error, unwound.chained))),
            },
            (Ok(Err(error)), None) if unwound.body_suppressed => match unwound.in_flight {
                None => {
                    drop(error);
                    Ok(V::suppressed())
                }
                Some(later) => Err(ScopeError::Release(chain(later, unwound.chained))),
            },
            (Ok(Err(error)), None) => Err(ScopeError::Body {
                error,
                release: Failure::join(None, flatten(unwound.chained)),
            }),
        }
    }

    /// Acquires `resource` and pushes its release; returns a key to its
    /// value.
    ///
    /// If this future is dropped while the acquire is in flight, the acquire
    /// is handed to the runtime and finished, and what it yields is released.
    ///
    /// # Errors
    ///
    /// The acquire's failure; nothing is pushed then.
    pub async fn enter<R>(&mut self, resource: R) -> Result<Key<R::Value>, Failure<R::Error>>
    where
        R: Resource<E> + 'static,
        R::Verdict: JoinVerdict<V, Joined = V>,
        E: From<Failure<R::Error>>,
    {
        let mut acquiring = InFlightAcquire::<R, E, _> {
            rt: &self.rt,
            acquire: Some(Box::pin(resource.acquire(&self.rt))),
            polling: false,
            resource: PhantomData,
        };
        let (value, releaser) = poll_fn(|cx| acquiring.poll_acquire(cx)).await?;
        self.entries.push(Box::new(Entered::<R, E> {
            value,
            releaser,
            resource: PhantomData,
        }));
        Ok(Key {
            index: self.entries.len() - 1,
            stack: self.id,
            value: PhantomData,
        })
    }

    /// Pushes an async callback, run in its turn and told how the scope
    /// ended so far. It cannot suppress the error in flight.
    pub fn push_callback<F, Fut>(&mut self, callback: F)
    where
        F: FnOnce(ExitKind) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let exit = move |exit: &Exit<'_, E>| callback(exit.kind());
        self.entries.push(Box::new(Callback(exit)));
    }

    /// Pushes an async exit — the `push_async_exit` of Python — told the
    /// exit (lent only while `exit` builds its future). On a stack whose
    /// verdict type is [`Verdict`](crate::Verdict) it may return
    /// `Verdict::Suppress`; see the [module docs](self).
    pub fn push_exit<F, Fut, W>(&mut self, exit: F)
    where
        F: FnOnce(&Exit<'_, E>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<W, E>> + Send + 'static,
        W: JoinVerdict<V, Joined = V>,
    {
        self.entries.push(Box::new(Callback(exit)));
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
            .value_mut()?
            .downcast_mut::<T>()
    }

    /// How many entries (resources and callbacks) the stack holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `true` when the stack holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Moves every entry to a new stack and leaves this one empty — the
    /// `pop_all` of Python, to hand resources over past the end of a scope.
    /// Keys of this stack now refer to the new one.
    pub fn pop_all(&mut self) -> ExitStack<E, V> {
        let moved = ExitStack {
            rt: self.rt.clone(),
            id: self.id,
            entries: std::mem::take(&mut self.entries),
            verdict: PhantomData,
        };
        self.id = NEXT_STACK.fetch_add(1, Ordering::Relaxed);
        moved
    }

    /// Exits everything, in reverse order, told the scope completed.
    ///
    /// # Errors
    ///
    /// The exits' failures, the first one primary.
    ///
    /// # Panics
    ///
    /// An exit's panic resumes once every exit has run.
    pub async fn close(mut self) -> Result<(), Failure<E>> {
        let entries = std::mem::take(&mut self.entries);
        let (unwound, _) = Unwinding::new(&self.rt, entries, Ok(Ok::<(), E>(()))).await;
        if let Some(panic) = unwound.panic {
            report_failures(&self.rt, unwound.in_flight, unwound.chained);
            resume_unwind(panic);
        }
        match unwound.in_flight {
            None => Ok(()),
            Some(error) => Err(chain(error, unwound.chained)),
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

/// An acquire in flight for [`ExitStack::enter`]; handed to the runtime if
/// dropped.
struct InFlightAcquire<'a, R: Resource<E>, E, F>
where
    F: Future<Output = crate::resource::Acquired<E, R>> + Send + 'static,
{
    rt: &'a Runtime,
    acquire: Option<Pin<Box<F>>>,
    polling: bool,
    resource: PhantomData<fn(R, &E)>,
}

impl<R: Resource<E>, E, F> InFlightAcquire<'_, R, E, F>
where
    F: Future<Output = crate::resource::Acquired<E, R>> + Send + 'static,
{
    fn poll_acquire(&mut self, cx: &mut Context<'_>) -> Poll<crate::resource::Acquired<E, R>> {
        let Some(acquire) = &mut self.acquire else {
            unreachable!("the acquire is polled until it finishes, then never again")
        };
        self.polling = true;
        let polled = acquire.as_mut().poll(cx);
        self.polling = false;
        if polled.is_ready() {
            self.acquire = None;
        }
        polled
    }
}

impl<R: Resource<E>, E, F> Drop for InFlightAcquire<'_, R, E, F>
where
    F: Future<Output = crate::resource::Acquired<E, R>> + Send + 'static,
{
    fn drop(&mut self) {
        if self.polling {
            return;
        }
        if let Some(acquire) = self.acquire.take() {
            finish_acquire::<R, E, _>(self.rt, acquire, drop_reason());
        }
    }
}

/// The state of an unwinding, and then its result.
struct Unwound<E> {
    /// The error in flight that is not the body's own: an exit's failure
    /// after a completed body (or after the body's error was suppressed).
    in_flight: Option<E>,
    /// Failures chained to the error in flight.
    chained: Vec<Failure<E>>,
    /// An exit suppressed the body's error.
    body_suppressed: bool,
    /// The first panic of an exit.
    panic: Option<Panic>,
}

/// Exits entries one by one, in reverse order, applying the rules of the
/// module docs. Dropped half-way, it hands the rest to the runtime.
struct Unwinding<'a, E, U>
where
    E: fmt::Debug + Send + 'static,
{
    rt: &'a Runtime,
    entries: Vec<Box<dyn Entry<E>>>,
    current: Option<CatchUnwind<ExitFuture<E>>>,
    /// How the body ended, given back at the end.
    body: Option<BodyEnd<U, E>>,
    state: Unwound<E>,
}

/// How the body of a stack's scope ended: its output, its error, or its
/// panic.
type BodyEnd<U, E> = Result<Result<U, E>, Panic>;

impl<'a, E, U> Unwinding<'a, E, U>
where
    E: fmt::Debug + Send + 'static,
{
    fn new(rt: &'a Runtime, entries: Vec<Box<dyn Entry<E>>>, body: BodyEnd<U, E>) -> Self {
        Unwinding {
            rt,
            entries,
            current: None,
            body: Some(body),
            state: Unwound {
                in_flight: None,
                chained: Vec::new(),
                body_suppressed: false,
                panic: None,
            },
        }
    }

    /// What the next exit is told.
    fn exit(&self) -> Exit<'_, E> {
        if self.state.panic.is_some() {
            return Exit::Panicked;
        }
        if let Some(error) = &self.state.in_flight {
            return Exit::Failed(error);
        }
        match &self.body {
            Some(Ok(Err(_))) if self.state.body_suppressed => Exit::Completed,
            Some(Ok(Err(error))) => Exit::Failed(error),
            Some(Err(_)) => Exit::Panicked,
            Some(Ok(Ok(_))) | None => Exit::Completed,
        }
    }

    /// Applies one exit's ending to the state.
    fn apply(&mut self, ended: Result<Result<bool, E>, Panic>) {
        let exit = self.exit().kind();
        let state = &mut self.state;
        match ended {
            Ok(Ok(false)) => {}
            Ok(Ok(true)) => {
                if exit == ExitKind::Failed {
                    // Suppressed: the error in flight and its chain are gone.
                    if state.in_flight.take().is_none() {
                        state.body_suppressed = true;
                    }
                    state.chained.clear();
                }
            }
            Ok(Err(error)) => {
                if exit == ExitKind::Completed {
                    state.in_flight = Some(error);
                } else {
                    state.chained.push(Failure::Error(error));
                }
            }
            Err(panic) => {
                if state.panic.is_none() {
                    state.panic = Some(panic);
                } else {
                    self.rt.report(Incident::ReleasePanickedDuringPanic {
                        message: panic_message(&panic),
                    });
                }
            }
        }
    }
}

// Nothing in an unwinding is pinned in place: the exit in flight is boxed.
impl<E, U> Unpin for Unwinding<'_, E, U> where E: fmt::Debug + Send + 'static {}

impl<E, U> Future for Unwinding<'_, E, U>
where
    E: fmt::Debug + Send + 'static,
{
    type Output = (Unwound<E>, BodyEnd<U, E>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            if this.current.is_none() {
                let Some(entry) = this.entries.pop() else {
                    let Some(body) = this.body.take() else {
                        unreachable!("an unwinding is polled until it ends, then never again")
                    };
                    let unwound = std::mem::replace(
                        &mut this.state,
                        Unwound {
                            in_flight: None,
                            chained: Vec::new(),
                            body_suppressed: false,
                            panic: None,
                        },
                    );
                    return Poll::Ready((unwound, body));
                };
                let exit = this.exit();
                match catch_unwind(AssertUnwindSafe(|| entry.exit(&exit, this.rt))) {
                    Ok(future) => this.current = Some(CatchUnwind::new(future)),
                    Err(panic) => {
                        this.apply(Err(panic));
                        continue;
                    }
                }
            }
            let Some(current) = &mut this.current else {
                unreachable!("set above")
            };
            let ended = match Pin::new(current).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(ended) => ended,
            };
            this.current = None;
            this.apply(ended);
        }
    }
}

impl<E, U> Drop for Unwinding<'_, E, U>
where
    E: fmt::Debug + Send + 'static,
{
    fn drop(&mut self) {
        if self.current.is_some() || !self.entries.is_empty() {
            let current = self.current.take();
            let entries = std::mem::take(&mut self.entries);
            unwind_detached(self.rt, current, entries, drop_reason(), Vec::new());
        }
    }
}

/// Exits what is left of a stack as a runtime cleanup task, once the
/// cleanups in `inner` have ended: the exit in flight first, then the rest in
/// reverse order, told `Cancelled(reason)`. Every exit runs; failures and
/// panics are reported together.
fn unwind_detached<E>(
    rt: &Runtime,
    current: Option<CatchUnwind<ExitFuture<E>>>,
    mut entries: Vec<Box<dyn Entry<E>>>,
    reason: Cancel,
    inner: Vec<CleanupDone>,
) where
    E: fmt::Debug + Send + 'static,
{
    let task_rt = rt.clone();
    // Each exit is bounded by the cleanup timeout on its own, so that one that
    // hangs does not cost the exits after it their turn.
    let bound = rt.cleanup_timeout();
    rt.spawn_cleanup(CleanupKind::Release, None, inner, async move {
        let rt = task_rt;
        let mut problems = Vec::new();
        let mut note = |ended: Option<Result<Result<bool, E>, Panic>>| match ended {
            Some(Ok(Ok(_))) => {}
            Some(Ok(Err(error))) => problems.push(format!("{error:?}")),
            Some(Err(panic)) => problems.push(format!("panic: {}", panic_message(&panic))),
            None => problems.push(format!(
                "an exit timed out after {:?}",
                bound.unwrap_or_default()
            )),
        };
        if let Some(current) = current {
            note(OrTimeout::new(current, bound.map(|after| rt.sleep(after))).await);
        }
        while let Some(entry) = entries.pop() {
            let started = {
                let exit = Exit::Cancelled(reason);
                catch_unwind(AssertUnwindSafe(|| entry.exit(&exit, &rt)))
            };
            match started {
                Ok(future) => {
                    let timer = bound.map(|after| rt.sleep(after));
                    note(OrTimeout::new(CatchUnwind::new(future), timer).await);
                }
                Err(panic) => note(Some(Err(panic))),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(CleanupError::Failed(problems.join("; ")))
        }
    });
}

/// Reports failures that a resuming panic would otherwise lose.
fn report_failures<E: fmt::Debug>(rt: &Runtime, in_flight: Option<E>, chained: Vec<Failure<E>>) {
    let all = in_flight.map(Failure::Error).into_iter().chain(chained);
    for failure in all {
        rt.report(Incident::ReleaseFailedDuringPanic {
            error: describe(&failure),
        });
    }
}

/// The primary error and the failures chained to it, as one failure.
fn chain<E>(primary: E, chained: Vec<Failure<E>>) -> Failure<E> {
    Failure::join(Some(Failure::Error(primary)), flatten(chained))
        .unwrap_or_else(|| unreachable!("there is a primary error"))
}

/// Several failures as one, if any.
fn flatten<E>(failures: Vec<Failure<E>>) -> Option<Failure<E>> {
    failures.into_iter().reduce(Failure::and)
}
