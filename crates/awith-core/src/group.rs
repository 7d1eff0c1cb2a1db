//! [`TaskGroup`]: children spawned onto the runtime, all of them finished or
//! cancelled before the group ends — structured concurrency, as trio's
//! nurseries and Python's `asyncio.TaskGroup`.
//!
//! ```
//! use std::sync::Arc;
//! use awith_core::group::TaskGroup;
//! use awith_core::reference::Reference;
//!
//! let reference = Reference::new();
//! let rt = reference.runtime();
//! let total = reference.block_on(TaskGroup::with(&rt, async |group: &TaskGroup<String>| {
//!     let shared = Arc::new(vec![1, 2, 3]);
//!     let mut handles = Vec::new();
//!     for i in 0..3 {
//!         let shared = Arc::clone(&shared);
//!         handles.push(group.spawn(async move { Ok(shared[i] * 10) }).unwrap());
//!     }
//!     let mut total = 0;
//!     for handle in handles {
//!         total += handle.await.unwrap();
//!     }
//!     Ok(total)
//! }));
//! assert_eq!(total.unwrap().unwrap(), 60);
//! ```
//!
//! # The rules
//!
//! - **The group ends last.** [`TaskGroup::with`] returns only when its body
//!   and every child have finished or been cancelled — and the scopes inside
//!   cancelled children have released. No child runs after its group has
//!   returned.
//! - **Children are `Send + 'static`** and run in parallel on a multi-thread
//!   runtime; share a scope's resource with them through an `Arc`.
//! - **Failures.** With [`Policy::FailFast`] (the default) the first failure —
//!   a child's error or panic, or the body's error — cancels the body and
//!   every other child, told `Cancel::SiblingFailed`. With
//!   [`Policy::CollectAll`] nothing is cancelled and every child runs to its
//!   end. Either way the group fails with every error ([`GroupError`]), the
//!   first one primary; children cancelled by the group are not errors.
//! - **Panics** of children are caught and handed to the group as values;
//!   once every child has ended, the group resumes the first panic (the
//!   errors it then cannot return are reported as incidents). A panic of the
//!   body is resumed the same way, after the children have been cancelled and
//!   have ended.
//! - **Deadline.** A group with a deadline cancels its body and children when
//!   it passes, told `Cancel::Timeout`, and fails with
//!   [`GroupError::timed_out`] set.
//! - **Handles.** [`TaskGroup::spawn`] returns a [`ChildHandle`]: await it for
//!   the child's value (a child's error always goes to the group; the handle
//!   only says that it failed), or [`abort`](ChildHandle::abort) the child.
//!   Dropping a handle detaches nothing and cancels nothing: the child goes on
//!   as part of its group — one rule on every runtime (tokio's own handles
//!   detach on drop, smol's cancel).
//!
//! # Cancellation
//!
//! Dropping the group's future cancels the body and every child, told
//! `Cancel::Dropped` (or the reason of the [`cancel_with`] that dropped it);
//! the scopes inside them release as runtime cleanups, and the group hands the
//! runtime a cleanup that ends when the last child has — so
//! [`Runtime::drain`] waits for it, and a scope around the group releases only
//! after it. `mem::forget` skips all of this.
//!
//! [`cancel_with`]: crate::time::cancel_with

use std::fmt;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::{Pin, pin};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::exit::Cancel;
use crate::nest::{CleanupDone, Inner, all_done};
use crate::rt::{CleanupError, CleanupKind, Incident, Runtime, SpawnError, TaskSet};
use crate::sync::{AtomicBool, AtomicU8, AtomicUsize, AtomicWaker, Mutex, Ordering, lock};
use crate::time::{Deadline, cancelling, drop_reason};
use crate::util::{CatchUnwind, Panic, panic_message};

/// What the group does when a child (or the body) fails.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Policy {
    /// The first failure cancels the body and every other child.
    #[default]
    FailFast,
    /// Every child runs to its end; all errors are collected.
    CollectAll,
}

/// A group of children; see the [module docs](self).
pub struct TaskGroup<E> {
    rt: Runtime,
    shared: Arc<Shared<E>>,
    /// The runtime's [`TaskSet`], if it has one: it frees the children's
    /// tasks on this thread once they have finished.
    set: Option<Mutex<Box<dyn TaskSet>>>,
}

/// What the group and its children share. A child ending touches only the
/// atomics (and, when it failed, the failures): on a multi-thread runtime the
/// group's thread spawning and the workers ending children do not contend.
struct Shared<E> {
    policy: Policy,
    /// Children spawned and not yet ended.
    live: AtomicUsize,
    /// Why the group cancels its body and children: 0 for not yet, else
    /// [`encode`]d. Read at every poll of every child.
    cancelled: AtomicU8,
    /// The group's future, or its teardown cleanup, waiting.
    waiter: AtomicWaker,
    /// Every child, to cancel them; touched by spawns (the group's thread)
    /// and by the one cancellation. Pruned as it grows.
    children: Mutex<Vec<Weak<dyn Cancellable>>>,
    failures: Mutex<Failures<E>>,
}

struct Failures<E> {
    errors: Vec<E>,
    panics: Vec<Panic>,
}

fn encode(reason: Cancel) -> u8 {
    match reason {
        Cancel::Dropped => 1,
        Cancel::Timeout => 2,
        Cancel::SiblingFailed => 3,
        Cancel::LockLost => 4,
    }
}

fn decode(code: u8) -> Option<Cancel> {
    match code {
        1 => Some(Cancel::Dropped),
        2 => Some(Cancel::Timeout),
        3 => Some(Cancel::SiblingFailed),
        4 => Some(Cancel::LockLost),
        _ => None,
    }
}

impl<E> Shared<E> {
    fn new(policy: Policy) -> Self {
        Shared {
            policy,
            live: AtomicUsize::new(0),
            cancelled: AtomicU8::new(0),
            waiter: AtomicWaker::new(),
            children: Mutex::new(Vec::new()),
            failures: Mutex::new(Failures {
                errors: Vec::new(),
                panics: Vec::new(),
            }),
        }
    }

    fn cancelled(&self) -> Option<Cancel> {
        decode(self.cancelled.load(Ordering::SeqCst))
    }

    /// Cancels the body and every child, for `reason`, unless already done.
    fn cancel(&self, reason: Cancel) {
        if self
            .cancelled
            .compare_exchange(0, encode(reason), Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return;
        }
        let children: Vec<_> = lock(&self.children)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for child in children {
            child.cancel(reason);
        }
        self.waiter.wake();
    }

    /// Lists a waiting child, for [`cancel`](Self::cancel) to reach.
    fn list<T: Send + 'static>(&self, child: &Arc<Child<T>>) {
        let mut children = lock(&self.children);
        // Amortized pruning of the children that have ended.
        if children.len() >= 64 && children.len().is_power_of_two() {
            children.retain(|child| child.strong_count() > 0);
        }
        let entry: Arc<dyn Cancellable> = child.clone();
        children.push(Arc::downgrade(&entry));
    }

    /// A child ended; `Some` carries its failure.
    fn ended(&self, failure: Option<Result<E, Panic>>) {
        if let Some(failure) = failure {
            {
                let mut failures = lock(&self.failures);
                match failure {
                    Ok(error) => failures.errors.push(error),
                    Err(panic) => failures.panics.push(panic),
                }
            }
            if self.policy == Policy::FailFast {
                self.cancel(Cancel::SiblingFailed);
            }
        }
        if self.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.waiter.wake();
        }
    }

    /// Waits until every child has ended.
    fn poll_children(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.live.load(Ordering::SeqCst) == 0 {
            return Poll::Ready(());
        }
        self.waiter.register(cx.waker());
        if self.live.load(Ordering::SeqCst) == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// A child the group can cancel.
trait Cancellable: Send + Sync {
    fn cancel(&self, reason: Cancel);
}

/// What a child and its handle share.
struct Child<T> {
    /// Why it is cancelled: 0 for not, else [`encode`]d. Read at every poll
    /// of the child, so an atomic.
    cancel: AtomicU8,
    outcome: Mutex<Option<Result<T, Joined>>>,
    /// The handle was dropped: nobody wants the outcome.
    detached: AtomicBool,
    /// The child's task, waiting to be cancelled.
    task: AtomicWaker,
    /// The handle, waiting for the outcome.
    handle: AtomicWaker,
}

impl<T> Child<T> {
    fn new() -> Self {
        Child {
            cancel: AtomicU8::new(0),
            outcome: Mutex::new(None),
            detached: AtomicBool::new(false),
            task: AtomicWaker::new(),
            handle: AtomicWaker::new(),
        }
    }

    fn cancelled(&self) -> Option<Cancel> {
        decode(self.cancel.load(Ordering::Acquire))
    }

    fn finish(&self, outcome: Result<T, Joined>) {
        if self.detached.load(Ordering::Acquire) {
            return;
        }
        *lock(&self.outcome) = Some(outcome);
        self.handle.wake();
    }
}

impl<T: Send> Cancellable for Child<T> {
    fn cancel(&self, reason: Cancel) {
        // The first reason wins.
        if self
            .cancel
            .compare_exchange(0, encode(reason), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.task.wake();
        }
    }
}

/// How a child ended, as its [`ChildHandle`] says when it did not succeed.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Joined {
    /// It failed; its error went to the group.
    Failed,
    /// It panicked; the group resumes the panic once every child has ended.
    Panicked,
    /// It was cancelled, for this reason.
    Cancelled(Cancel),
    /// The runtime dropped it unfinished (it shut down).
    Lost,
}

impl fmt::Display for Joined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Joined::Failed => f.write_str("the child failed (its error went to the group)"),
            Joined::Panicked => f.write_str("the child panicked"),
            Joined::Cancelled(reason) => write!(f, "the child was cancelled ({reason})"),
            Joined::Lost => f.write_str("the runtime dropped the child unfinished"),
        }
    }
}

impl std::error::Error for Joined {}

/// A handle to a child of a [`TaskGroup`]: a future of its value.
///
/// Dropping it changes nothing: the child goes on as part of its group.
pub struct ChildHandle<T> {
    child: Arc<Child<T>>,
}

impl<T: Send + 'static> ChildHandle<T> {
    /// Cancels the child (a no-op if it has ended): it is dropped at its next
    /// wake-up, told `Cancel::Dropped`, and its handle resolves to
    /// `Err(Joined::Cancelled(Cancel::Dropped))`. Not a failure of the group.
    pub fn abort(&self) {
        self.child.cancel(Cancel::Dropped);
    }

    /// `true` once the child has ended.
    pub fn is_finished(&self) -> bool {
        lock(&self.child.outcome).is_some()
    }
}

impl<T> Drop for ChildHandle<T> {
    fn drop(&mut self) {
        self.child.detached.store(true, Ordering::Release);
    }
}

impl<T> fmt::Debug for ChildHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildHandle").finish_non_exhaustive()
    }
}

impl<T> Future for ChildHandle<T> {
    type Output = Result<T, Joined>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.child.handle.register(cx.waker());
        match lock(&self.child.outcome).take() {
            Some(outcome) => Poll::Ready(outcome),
            None => Poll::Pending,
        }
    }
}

/// Why a [`TaskGroup`] failed: every error, the first one primary, and
/// whether its deadline passed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupError<E> {
    /// The body's and the children's errors, in the order they happened.
    pub errors: Vec<E>,
    /// The group's deadline, if it passed.
    pub timed_out: Option<Duration>,
}

impl<E> GroupError<E> {
    /// The first error, if any.
    pub fn primary(&self) -> Option<&E> {
        self.errors.first()
    }
}

impl<E: fmt::Display> fmt::Display for GroupError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.errors.first(), self.timed_out) {
            (None, Some(after)) => write!(f, "the task group did not finish within {after:?}"),
            (None, None) => f.write_str("the task group failed"),
            (Some(first), timed_out) => {
                write!(f, "{first}")?;
                if self.errors.len() > 1 {
                    write!(f, " (and {} more errors)", self.errors.len() - 1)?;
                }
                if let Some(after) = timed_out {
                    write!(f, " (the task group did not finish within {after:?})")?;
                }
                Ok(())
            }
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for GroupError<E> {}

/// Configures a [`TaskGroup`]: its [`Policy`] and deadline.
#[derive(Clone, Debug, Default)]
#[must_use = "a builder does nothing until `with` is called"]
pub struct GroupBuilder {
    policy: Policy,
    deadline: Option<Duration>,
}

impl GroupBuilder {
    /// What to do on a failure (default: [`Policy::FailFast`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Cancels the group, told `Cancel::Timeout`, `after` it started (see
    /// [`time`](crate::time) for zero and huge durations).
    pub fn deadline(mut self, after: Duration) -> Self {
        self.deadline = Some(after);
        self
    }

    /// Runs a group; see [`TaskGroup::with`].
    ///
    /// # Errors
    ///
    /// As [`TaskGroup::with`].
    pub async fn with<E, U, B>(self, rt: &Runtime, body: B) -> Result<U, GroupError<E>>
    where
        E: fmt::Debug + Send + 'static,
        B: AsyncFnOnce(&TaskGroup<E>) -> Result<U, E>,
    {
        run(self, rt, body).await
    }
}

impl<E: fmt::Debug + Send + 'static> TaskGroup<E> {
    /// A builder, to choose the [`Policy`] or set a deadline.
    pub fn builder() -> GroupBuilder {
        GroupBuilder::default()
    }

    /// Runs `body` with a new group, fail-fast; returns once the body and
    /// every child have ended. See the [module docs](self) for the rules.
    ///
    /// # Errors
    ///
    /// [`GroupError`] with every error when the body or a child failed, or
    /// when the deadline passed.
    ///
    /// # Panics
    ///
    /// Resumes the first panic of the body or a child, once every child has
    /// ended.
    pub async fn with<U, B>(rt: &Runtime, body: B) -> Result<U, GroupError<E>>
    where
        B: AsyncFnOnce(&TaskGroup<E>) -> Result<U, E>,
    {
        run(GroupBuilder::default(), rt, body).await
    }

    /// Spawns a child onto the runtime. It runs as part of this group: the
    /// group ends only once it has ended.
    ///
    /// A child spawned into a group that is being cancelled is cancelled at
    /// once.
    ///
    /// # Errors
    ///
    /// [`SpawnError`] when the runtime refuses the task (it has shut down);
    /// nothing runs then.
    pub fn spawn<T, F>(&self, child: F) -> Result<ChildHandle<T>, SpawnError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        let shared_child = Arc::new(Child::<T>::new());
        self.shared.live.fetch_add(1, Ordering::SeqCst);
        let guard = ChildGuard {
            shared: Arc::clone(&self.shared),
            child: Arc::clone(&shared_child),
            ended: false,
        };
        // A refused task is dropped in the binding: its guard marks the
        // child ended.
        let task = Box::pin(ChildTask::new(guard, child));
        match &self.set {
            Some(set) => lock(set).spawn(task),
            None => self.rt.binding().spawn(task),
        }
        .map_err(|refused| SpawnError::task_dropped(refused.runtime()))?;
        Ok(ChildHandle {
            child: shared_child,
        })
    }

    /// The runtime the group spawns on.
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }
}

impl<E> fmt::Debug for TaskGroup<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroup")
            .field("policy", &self.shared.policy)
            .field("live", &self.shared.live.load(Ordering::Relaxed))
            .field("cancelled", &self.shared.cancelled())
            .finish_non_exhaustive()
    }
}

/// Marks a child ended when its task ends — also when the runtime drops the
/// task unfinished, or refuses it.
struct ChildGuard<T, E> {
    shared: Arc<Shared<E>>,
    child: Arc<Child<T>>,
    ended: bool,
}

impl<T, E> ChildGuard<T, E> {
    fn end(&mut self, outcome: Result<T, Joined>, failure: Option<Result<E, Panic>>) {
        self.ended = true;
        self.child.finish(outcome);
        self.shared.ended(failure);
    }
}

impl<T, E> Drop for ChildGuard<T, E> {
    fn drop(&mut self) {
        if !self.ended {
            self.ended = true;
            self.child.finish(Err(Joined::Lost));
            self.shared.ended(None);
        }
    }
}

/// How a child's future ended.
enum ChildEnd<T, E> {
    Value(T),
    Failed(E),
    Panicked(Panic),
    Cancelled(Cancel),
}

/// The task of one child: runs it until it ends or the group cancels it;
/// cleanups its cancellation starts (scopes inside it) end before it counts
/// as ended.
///
/// Written out rather than an `async fn`: the runtime frees it on the worker
/// that ran it, and a small task (80 bytes around a trivial child, against
/// 176 as an `async fn`) is cheaper to free there: glibc frees chunks of
/// up to 128 bytes without taking the lock of the arena they came from.
#[pin_project::pin_project]
struct ChildTask<T, E, F> {
    /// `None` once it has ended or been cancelled.
    #[pin]
    future: Option<CatchUnwind<F>>,
    /// Listed with the group, for it to cancel (only once it waits).
    listed: bool,
    /// Cleanups started while it ran or was dropped.
    started: Vec<CleanupDone>,
    /// How it ended, while the cleanups it started end.
    ended: Option<ChildEnd<T, E>>,
    /// Last: dropped after the future, when the runtime drops the task.
    guard: ChildGuard<T, E>,
}

impl<T, E, F> ChildTask<T, E, F> {
    fn new(guard: ChildGuard<T, E>, child: F) -> Self {
        ChildTask {
            future: Some(CatchUnwind::new(child)),
            listed: false,
            started: Vec::new(),
            ended: None,
            guard,
        }
    }
}

impl<T, E, F> Future for ChildTask<T, E, F>
where
    T: Send + 'static,
    F: Future<Output = Result<T, E>>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let (control, shared) = (&this.guard.child, &this.guard.shared);
        if this.ended.is_none() {
            let mut future = this.future;
            let listed = this.listed;
            let polled = crate::nest::collecting(this.started, || {
                // Registered before the check, so that a cancellation in
                // between still wakes this task.
                control.task.register(cx.waker());
                if let Some(reason) = control.cancelled().or_else(|| shared.cancelled()) {
                    cancelling(reason, || future.set(None));
                    return Poll::Ready(ChildEnd::Cancelled(reason));
                }
                let Some(running) = future.as_mut().as_pin_mut() else {
                    unreachable!("a child is polled until it ends")
                };
                match running.poll(cx) {
                    Poll::Pending => {
                        if !*listed {
                            // Only a child that waits is listed for the group
                            // to cancel; one that ends at its first poll never
                            // is.
                            *listed = true;
                            shared.list(control);
                            // After it is listed: either the group's
                            // cancellation sees it there, or it sees the
                            // cancellation here.
                            if shared.cancelled().is_some() {
                                cx.waker().wake_by_ref();
                            }
                        }
                        Poll::Pending
                    }
                    Poll::Ready(ended) => {
                        future.set(None);
                        Poll::Ready(match ended {
                            Ok(Ok(value)) => ChildEnd::Value(value),
                            Ok(Err(error)) => ChildEnd::Failed(error),
                            Err(panic) => ChildEnd::Panicked(panic),
                        })
                    }
                }
            });
            match polled {
                Poll::Ready(ended) => *this.ended = Some(ended),
                Poll::Pending => return Poll::Pending,
            }
        }
        while let Some(cleanup) = this.started.last_mut() {
            if Pin::new(cleanup).poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.started.pop();
        }
        let guard = this.guard;
        match this.ended.take() {
            Some(ChildEnd::Value(value)) => guard.end(Ok(value), None),
            Some(ChildEnd::Failed(error)) => guard.end(Err(Joined::Failed), Some(Ok(error))),
            Some(ChildEnd::Panicked(panic)) => {
                guard.end(Err(Joined::Panicked), Some(Err(panic)));
            }
            Some(ChildEnd::Cancelled(reason)) => guard.end(Err(Joined::Cancelled(reason)), None),
            None => unreachable!("a child task is not polled after it ended"),
        }
        Poll::Ready(())
    }
}

/// The group's scope: cancels everything if dropped, and hands the runtime
/// a cleanup that ends with the last child.
struct GroupScope<E: fmt::Debug + Send + 'static> {
    group: TaskGroup<E>,
    /// Cleanups started by the body being cancelled.
    inner: Inner,
    done: bool,
}

impl<E: fmt::Debug + Send + 'static> Drop for GroupScope<E> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let reason = drop_reason();
        self.group.shared.cancel(reason);
        let shared = Arc::clone(&self.group.shared);
        let waits = self.inner.take();
        if shared.live.load(Ordering::SeqCst) == 0 && waits.is_empty() {
            return;
        }
        self.group
            .rt
            .spawn_cleanup(CleanupKind::Children, None, waits, async move {
                poll_fn(|cx| shared.poll_children(cx)).await;
                Ok::<(), CleanupError>(())
            });
    }
}

async fn run<E, U, B>(config: GroupBuilder, rt: &Runtime, body: B) -> Result<U, GroupError<E>>
where
    E: fmt::Debug + Send + 'static,
    B: AsyncFnOnce(&TaskGroup<E>) -> Result<U, E>,
{
    let mut scope = GroupScope {
        group: TaskGroup {
            rt: rt.clone(),
            shared: Arc::new(Shared::new(config.policy)),
            set: rt.binding().task_set().map(Mutex::new),
        },
        inner: Inner::default(),
        done: false,
    };
    let mut deadline = config.deadline.map(Deadline::new);

    // The body, until it ends or the group is cancelled (a failure, the
    // deadline); then it is dropped, told why.
    let body_ended: Option<Result<Result<U, E>, Panic>> = {
        let group = &scope.group;
        let inner = &scope.inner;
        let started_body = catch_unwind(AssertUnwindSafe(|| body(group)));
        match started_body {
            Err(panic) => Some(Err(panic)),
            Ok(body) => {
                let mut body = pin!(Some(CatchUnwind::new(body)));
                poll_fn(|cx| {
                    let mut started = Vec::new();
                    let ended = crate::nest::collecting(&mut started, || {
                        body.as_mut().as_pin_mut().map(|b| b.poll(cx))
                    });
                    inner.keep(started);
                    if let Some(Poll::Ready(ended)) = ended {
                        body.set(None);
                        return Poll::Ready(Some(ended));
                    }
                    if deadline.as_mut().is_some_and(|d| d.expired(&group.rt, cx)) {
                        group.shared.cancel(Cancel::Timeout);
                    }
                    group.shared.waiter.register(cx.waker());
                    match group.shared.cancelled() {
                        Some(reason) => {
                            let mut started = Vec::new();
                            cancelling(reason, || {
                                crate::nest::collecting(&mut started, || body.set(None));
                            });
                            inner.keep(started);
                            Poll::Ready(None)
                        }
                        None => Poll::Pending,
                    }
                })
                .await
            }
        }
    };
    // A failed or panicked body fails the group: fail-fast cancels the rest.
    let body_failed = matches!(body_ended, Some(Ok(Err(_))) | Some(Err(_)));
    if body_failed && config.policy == Policy::FailFast {
        scope.group.shared.cancel(Cancel::SiblingFailed);
    }
    // Every child ends (the deadline still cancels them), then the cleanups
    // of what was cancelled inside the body.
    poll_fn(|cx| {
        if scope.group.shared.poll_children(cx).is_ready() {
            return Poll::Ready(());
        }
        if deadline
            .as_mut()
            .is_some_and(|d| d.expired(&scope.group.rt, cx))
        {
            scope.group.shared.cancel(Cancel::Timeout);
        }
        Poll::Pending
    })
    .await;
    if scope.inner.any() {
        all_done(scope.inner.snapshot()).await;
    }
    scope.done = true;

    let (mut errors, mut panics) = {
        let mut failures = lock(&scope.group.shared.failures);
        (
            std::mem::take(&mut failures.errors),
            std::mem::take(&mut failures.panics),
        )
    };
    let cancelled = scope.group.shared.cancelled();
    let value = match body_ended {
        Some(Ok(Ok(value))) => Some(value),
        Some(Ok(Err(error))) => {
            errors.insert(0, error);
            None
        }
        Some(Err(panic)) => {
            panics.insert(0, panic);
            None
        }
        None => None,
    };
    if !panics.is_empty() {
        let mut panics = panics.into_iter();
        let first = panics.next().unwrap_or_else(|| unreachable!());
        for other in panics {
            rt.report(Incident::ReleasePanickedDuringPanic {
                message: panic_message(&other),
            });
        }
        for error in &errors {
            rt.report(Incident::ErrorLostToPanic {
                error: format!("{error:?}"),
            });
        }
        resume_unwind(first);
    }
    let timed_out = match cancelled {
        Some(Cancel::Timeout) => config.deadline,
        _ => None,
    };
    match (value, errors.is_empty(), timed_out) {
        (Some(value), true, None) => Ok(value),
        _ => Err(GroupError { errors, timed_out }),
    }
}
