//! The group's scope: runs the body, waits for every child, and returns
//! what happened — or, dropped, cancels everything and reports what nobody
//! can be given any more.

use std::fmt;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::shared::{Failed, Shared, describe, discard, drop_caught};
use super::{FailedTask, GroupBuilder, GroupError, TaskGroup};
use crate::exit::Cancel;
use crate::nest::{Inner, all_done, collecting};
use crate::rt::{CleanupError, CleanupKind, Incident, Runtime};
use crate::time::{Deadline, cancelling, drop_reason};
use crate::util::{CatchUnwind, Panic, panic_message};

pub(super) async fn run<E, U, B>(
    config: GroupBuilder,
    rt: &Runtime,
    body: B,
) -> Result<U, GroupError<E>>
where
    E: fmt::Debug + Send + 'static,
    B: AsyncFnOnce(&TaskGroup<E>) -> Result<U, E>,
{
    let mut scope = GroupScope {
        group: TaskGroup::new(rt, config.policy),
        inner: Inner::default(),
        done: false,
    };
    let shared = Arc::clone(&scope.group.shared);
    let mut deadline = config.deadline.map(Deadline::new);
    // Declared after the scope: if the group's future is dropped, the
    // body's value and the body are dropped before the scope tears down.
    let mut kept = Kept {
        value: None,
        shared: &shared,
    };
    {
        let group = &scope.group;
        let started = catch_unwind(AssertUnwindSafe(|| body(group)));
        let mut body = pin!(BodySlot {
            future: None,
            shared: &shared,
            inner: &scope.inner,
        });
        match started {
            Ok(future) => body
                .as_mut()
                .project()
                .future
                .set(Some(CatchUnwind::new(future))),
            Err(panic) => shared.failed(FailedTask::Body, Err(panic)),
        }
        // The body, until it ends or the group is cancelled (a failure, the
        // deadline) — looked at before every poll, as a child's; then it is
        // dropped, told why.
        kept.value = poll_fn(|cx| {
            shared.register(cx.waker());
            if let Some(reason) = shared.cancelled() {
                body.as_mut().cancel(reason);
                return Poll::Ready(None);
            }
            if let Poll::Ready(value) = body.as_mut().poll_body(cx) {
                return Poll::Ready(value);
            }
            // After the poll, as `Runtime::timeout` does: an inner deadline
            // at the same instant wins.
            if deadline.as_mut().is_some_and(|d| d.expired(&group.rt, cx)) {
                shared.cancel(Cancel::Timeout);
            }
            match shared.cancelled() {
                Some(reason) => {
                    body.as_mut().cancel(reason);
                    Poll::Ready(None)
                }
                None => Poll::Pending,
            }
        })
        .await;
    }
    // Every child ends (the deadline still cancels them) — and the group
    // closes: no child can be spawned from now on — then the cleanups of
    // what was cancelled inside the body.
    poll_fn(|cx| {
        if shared.poll_close(cx).is_ready() {
            return Poll::Ready(());
        }
        if deadline
            .as_mut()
            .is_some_and(|d| d.expired(&scope.group.rt, cx))
        {
            shared.cancel(Cancel::Timeout);
        }
        Poll::Pending
    })
    .await;
    if scope.inner.any() {
        all_done(scope.inner.snapshot()).await;
    }
    scope.done = true;
    let value = kept.value.take();
    let cancelled = shared.cancelled();
    let timed_out = match cancelled {
        Some(Cancel::Timeout) => config.deadline,
        _ => None,
    };
    let cancelled = cancelled.map(|reason| (reason, shared.cancel_reason()));
    conclude(rt, value, shared.take_failures(), timed_out, cancelled)
}

/// What the group returns, once everything has ended: the body's value
/// (also after a requested cancellation, if the body returned one); or every
/// error, in the order they happened; or the first panic resumed, the rest
/// reported.
fn conclude<U, E: fmt::Debug>(
    rt: &Runtime,
    value: Option<U>,
    failures: Vec<Failed<E>>,
    timed_out: Option<Duration>,
    cancelled: Option<(Cancel, Option<&'static str>)>,
) -> Result<U, GroupError<E>> {
    let mut errors = Vec::new();
    let mut tasks = Vec::new();
    let mut panics = Vec::new();
    for failed in failures {
        match failed.what {
            Ok(error) => {
                errors.push(error);
                tasks.push(failed.by);
            }
            Err(panic) => panics.push((failed.by, panic)),
        }
    }
    if errors.is_empty() && panics.is_empty() && timed_out.is_none() {
        if let Some(value) = value {
            return Ok(value);
        }
    } else if let Some(panic) = value.and_then(drop_caught) {
        // The group failed, so the body's value is dropped: its drop is the
        // body's code, its panic the body's panic.
        panics.push((FailedTask::Body, panic));
    }
    let mut panics = panics.into_iter();
    let Some((_, first)) = panics.next() else {
        return Err(GroupError {
            errors,
            tasks,
            timed_out,
            cancelled: cancelled.map(|(reason, _)| reason),
            cancel_reason: cancelled.and_then(|(_, why)| why),
        });
    };
    for (by, other) in panics {
        report_panic(rt, &by, other);
    }
    for (error, by) in errors.into_iter().zip(tasks) {
        rt.report(Incident::ErrorLostToPanic {
            error: by.tell(describe(&error)),
        });
        if let Some(panic) = drop_caught(error) {
            report_panic(rt, &by, panic);
        }
    }
    resume_unwind(first)
}

/// Reports a panic that cannot be resumed (an earlier one resumes), then
/// drops it.
fn report_panic(rt: &Runtime, by: &FailedTask, panic: Panic) {
    rt.report(Incident::ReleasePanickedDuringPanic {
        message: by.tell(panic_message(&panic)),
    });
    if let Some(again) = discard(panic) {
        rt.report(Incident::ReleasePanickedDuringPanic {
            message: by.tell(again),
        });
    }
}

/// The body's future. Every drop of it — when it ended, when the group
/// cancels it, when the group's future is dropped — catches a panic of its
/// drop as the body's, and keeps the cleanups its drop starts for the group
/// to wait for.
#[pin_project::pin_project(PinnedDrop)]
struct BodySlot<'a, F, E> {
    #[pin]
    future: Option<CatchUnwind<F>>,
    shared: &'a Shared<E>,
    inner: &'a Inner,
}

impl<F, U, E> BodySlot<'_, F, E>
where
    F: Future<Output = Result<U, E>>,
{
    /// Polls the body; once it has ended (at once if it never started),
    /// its value, its failure recorded.
    fn poll_body(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<U>> {
        let this = self.project();
        let mut future = this.future;
        let Some(running) = future.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        let mut started = Vec::new();
        let polled = collecting(&mut started, || running.poll(cx));
        this.inner.keep(started);
        let Poll::Ready(ended) = polled else {
            return Poll::Pending;
        };
        let value = match ended {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => {
                this.shared.failed(FailedTask::Body, Ok(error));
                None
            }
            Err(panic) => {
                this.shared.failed(FailedTask::Body, Err(panic));
                None
            }
        };
        if drop_body(future, this.shared, this.inner) {
            // Its drop panicked: the body panicked, its value goes nowhere.
            if let Some(panic) = value.and_then(drop_caught) {
                this.shared.failed(FailedTask::Body, Err(panic));
            }
            return Poll::Ready(None);
        }
        Poll::Ready(value)
    }

    /// Drops the body, cancelled for `reason`.
    fn cancel(self: Pin<&mut Self>, reason: Cancel) {
        let this = self.project();
        cancelling(reason, || drop_body(this.future, this.shared, this.inner));
    }
}

/// Drops the body's future, if any, keeping the cleanups its drop starts; a
/// panic of its drop is recorded as the body's. `true` if it panicked.
fn drop_body<F, E>(future: Pin<&mut Option<F>>, shared: &Shared<E>, inner: &Inner) -> bool {
    if future.is_none() {
        return false;
    }
    let mut future = future;
    let mut started = Vec::new();
    let dropped = collecting(&mut started, || {
        catch_unwind(AssertUnwindSafe(|| future.set(None)))
    });
    inner.keep(started);
    match dropped {
        Ok(()) => false,
        Err(panic) => {
            shared.failed(FailedTask::Body, Err(panic));
            true
        }
    }
}

#[pin_project::pinned_drop]
impl<F, E> PinnedDrop for BodySlot<'_, F, E> {
    fn drop(self: Pin<&mut Self>) {
        let this = self.project();
        if this.future.is_some() {
            // The group's future is dropped in the body. The group is
            // cancelled first, for the reason it is dropped, so that a panic
            // of the body's drop does not change what the children are told.
            this.shared.cancel(drop_reason());
            drop_body(this.future, this.shared, this.inner);
        }
    }
}

/// The body's value while the children end. Dropped there (the group's
/// future is dropped), it is dropped as the body's: a panic of its drop is
/// recorded, then reported.
struct Kept<'a, U, E> {
    value: Option<U>,
    shared: &'a Shared<E>,
}

impl<U, E> Drop for Kept<'_, U, E> {
    fn drop(&mut self) {
        if let Some(value) = self.value.take() {
            self.shared.cancel(drop_reason());
            if let Some(panic) = drop_caught(value) {
                self.shared.failed(FailedTask::Body, Err(panic));
            }
        }
    }
}

/// The group's scope: if dropped before the group returned, it cancels
/// everything and hands the runtime a cleanup that ends with the last
/// child, then reports every failure.
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
        let shared = Arc::clone(&self.group.shared);
        shared.cancel(drop_reason());
        let rt = self.group.rt.clone();
        let waits = self.inner.take();
        if waits.is_empty() && shared.try_close() {
            shared.report_unreturned(&rt);
            return;
        }
        // Reports when the cleanup ends, however it ends (also if the
        // runtime refuses or drops it).
        let report = Unreturned {
            shared,
            rt: rt.clone(),
        };
        rt.spawn_cleanup(CleanupKind::Children, None, waits, async move {
            poll_fn(|cx| report.shared.poll_close(cx)).await;
            drop(report);
            Ok::<(), CleanupError>(())
        });
    }
}

/// Reports the failures of a group whose caller has gone, when dropped.
struct Unreturned<E: fmt::Debug> {
    shared: Arc<Shared<E>>,
    rt: Runtime,
}

impl<E: fmt::Debug> Drop for Unreturned<E> {
    fn drop(&mut self) {
        // Closed already when the teardown ended; if the runtime dropped it
        // unfinished, nobody waits for a child any more.
        self.shared.close_now();
        self.shared.report_unreturned(&self.rt);
    }
}
