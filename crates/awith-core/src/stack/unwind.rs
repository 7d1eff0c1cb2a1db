//! Exiting a stack: the failures in flight, what each exit is shown, and
//! what the stack's scope ends with — the rules of the module docs' table.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use super::entry::{Entry, ExitFuture};
use crate::error::Failure;
use crate::exit::{Cancel, Exit};
use crate::nest::CleanupDone;
use crate::rt::{CleanupError, CleanupKind, Incident, Runtime};
use crate::time::drop_reason;
use crate::util::{CatchUnwind, OrTimeout, Panic, panic_message};
use crate::with::{Outcome, Stopped, describe};

/// How the body of a stack's scope ended, once its error or panic has been
/// put in flight: what is given back at the end.
pub(super) enum BodyEnd<U> {
    Completed(U),
    Failed,
    Stopped(Stopped),
    Panicked,
}

/// What is in flight while a stack is exited, and then what it ended with.
pub(super) struct InFlight<E> {
    /// The body's timeout (or tripwire), while it can still be returned: an
    /// exit is then told `Cancelled(Timeout)` (or the tripwire's reason)
    /// when no failure or panic is in flight (and `Completed` without it).
    stopped: Option<Stopped>,
    /// The failures in flight, oldest first: each exit is shown all of them.
    pub(super) failures: Option<Failure<E>>,
    /// `failures` begins with the body's error.
    pub(super) body_error: bool,
    /// A failure was put in flight after the body completed: as in nested
    /// scopes, where the inner scope's release failure drops the body's
    /// output, the output is lost — also if that failure is suppressed.
    pub(super) output_lost: bool,
    /// The first panic, the body's or an exit's: it resumes at the end.
    pub(super) panic: Option<Panic>,
}

impl<E: fmt::Debug> InFlight<E> {
    fn new() -> Self {
        InFlight {
            stopped: None,
            failures: None,
            body_error: false,
            output_lost: false,
            panic: None,
        }
    }

    /// What the next exit is told.
    fn shown(&self) -> Exit<'_, Failure<E>> {
        if self.panic.is_some() {
            Exit::Panicked
        } else if let Some(failures) = &self.failures {
            Exit::Failed(failures)
        } else if let Some(stopped) = self.stopped {
            Exit::Cancelled(stopped.reason())
        } else {
            Exit::Completed
        }
    }

    /// Applies one exit's ending: `Ok(true)` suppresses what it was shown
    /// (only failures can be), `Err` puts a failure in flight, a panic puts
    /// itself in flight and the failures it replaces are reported.
    fn apply(&mut self, rt: &Runtime, ended: Result<Result<bool, E>, Panic>) {
        match ended {
            Ok(Ok(false)) => {}
            Ok(Ok(true)) => {
                if self.panic.is_none() {
                    if let Some(suppressed) = self.failures.take() {
                        self.body_error = false;
                        self.discard(rt, suppressed);
                    }
                }
            }
            Ok(Err(error)) => {
                if self.panic.is_some() {
                    rt.report(Incident::ReleaseFailedDuringPanic {
                        error: format!("{error:?}"),
                    });
                    self.discard(rt, error);
                } else {
                    self.output_lost = true;
                    self.failures =
                        Failure::join(self.failures.take(), Some(Failure::Error(error)));
                }
            }
            Err(panic) => self.panicked(rt, panic),
        }
    }

    /// A panic: the first is put in flight (the failures in flight can no
    /// longer be returned: reported), a later one is reported.
    fn panicked(&mut self, rt: &Runtime, panic: Panic) {
        if self.panic.is_some() {
            rt.report(Incident::ReleasePanickedDuringPanic {
                message: panic_message(&panic),
            });
            return;
        }
        self.panic = Some(panic);
        if let Some(stopped) = self.stopped.take() {
            rt.report(Incident::ErrorLostToPanic {
                error: stopped.describe(),
            });
        }
        if let Some(lost) = self.failures.take() {
            self.body_error = false;
            rt.report(Incident::ErrorLostToPanic {
                error: describe(&lost),
            });
            self.discard(rt, lost);
        }
    }

    /// Drops a value of the user's; a panic of its `Drop` is a panic in
    /// flight like any other.
    fn discard<T>(&mut self, rt: &Runtime, value: T) {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| drop(value))) {
            self.panicked(rt, panic);
        }
    }
}

/// Exits entries one by one, in reverse order, applying the rules of the
/// module docs. Dropped half-way, it hands the rest to the runtime and
/// reports what was in flight: nobody is left to return it to.
pub(super) struct Unwinding<'a, E, U>
where
    E: fmt::Debug + Send + 'static,
{
    rt: &'a Runtime,
    entries: Vec<Pin<Box<dyn Entry<E>>>>,
    current: Option<CatchUnwind<ExitFuture<E>>>,
    /// How the body ended, given back at the end.
    body: Option<BodyEnd<U>>,
    state: InFlight<E>,
}

impl<'a, E, U> Unwinding<'a, E, U>
where
    E: fmt::Debug + Send + 'static,
{
    /// Starts exiting `entries`, the body having ended with `outcome`.
    pub(super) fn new(
        rt: &'a Runtime,
        entries: Vec<Pin<Box<dyn Entry<E>>>>,
        outcome: Outcome<U, E>,
    ) -> Self {
        let mut state = InFlight::new();
        let body = match outcome {
            Outcome::Completed(output) => BodyEnd::Completed(output),
            Outcome::Failed(error) => {
                state.failures = Some(Failure::Error(error));
                state.body_error = true;
                BodyEnd::Failed
            }
            Outcome::Stopped(stopped) => {
                state.stopped = Some(stopped);
                BodyEnd::Stopped(stopped)
            }
            Outcome::Panicked(panic) => {
                state.panic = Some(panic);
                BodyEnd::Panicked
            }
        };
        Unwinding {
            rt,
            entries,
            current: None,
            body: Some(body),
            state,
        }
    }
}

// Nothing in an unwinding is pinned in place: the exit in flight is boxed.
impl<E, U> Unpin for Unwinding<'_, E, U> where E: fmt::Debug + Send + 'static {}

impl<E, U> Future for Unwinding<'_, E, U>
where
    E: fmt::Debug + Send + 'static,
{
    type Output = (InFlight<E>, BodyEnd<U>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            if this.current.is_none() {
                let Some(mut entry) = this.entries.pop() else {
                    let Some(body) = this.body.take() else {
                        unreachable!("an unwinding is polled until it ends, then never again")
                    };
                    let state = std::mem::replace(&mut this.state, InFlight::new());
                    return Poll::Ready((state, body));
                };
                let started = {
                    let exit = this.state.shown();
                    catch_unwind(AssertUnwindSafe(|| entry.as_mut().exit(&exit, this.rt)))
                };
                match started {
                    Ok(future) => this.current = Some(CatchUnwind::new(future)),
                    Err(panic) => {
                        this.state.apply(this.rt, Err(panic));
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
            // The finished exit is dropped before its ending applies: a panic
            // of its `Drop` is the exit's.
            let dropped = catch_unwind(AssertUnwindSafe(|| this.current = None));
            this.state.apply(this.rt, ended);
            if let Err(panic) = dropped {
                this.state.apply(this.rt, Err(panic));
            }
        }
    }
}

impl<E, U> Drop for Unwinding<'_, E, U>
where
    E: fmt::Debug + Send + 'static,
{
    fn drop(&mut self) {
        if self.body.is_none() {
            return;
        }
        // Cancelled while exiting: what was in flight has nobody left to be
        // returned to.
        let state = std::mem::replace(&mut self.state, InFlight::new());
        let timeout = state.stopped.map(Stopped::describe);
        let failures = state.failures.map(|failures| describe(&failures));
        let panic = state
            .panic
            .map(|panic| format!("panic: {}", panic_message(&panic)));
        for failure in timeout.into_iter().chain(failures).chain(panic) {
            self.rt.report(Incident::Unreturned {
                work: "an exit stack cancelled while exiting",
                failure,
            });
        }
        // Dropped half-way, an unwinding always has an exit in flight: it
        // starts the next in the poll that ended the last.
        let current = self.current.take();
        let entries = std::mem::take(&mut self.entries);
        unwind_detached(self.rt, current, entries, drop_reason(), Vec::new());
    }
}

/// Exits what is left of a stack as a runtime cleanup task, once the
/// cleanups in `inner` have ended: the exit in flight first, then the rest in
/// reverse order, told `Cancelled(reason)`. Every exit runs — each bounded by
/// the cleanup timeout on its own, a panic in its poll or its drop caught —
/// and failures and panics are reported together.
pub(super) fn unwind_detached<E>(
    rt: &Runtime,
    current: Option<CatchUnwind<ExitFuture<E>>>,
    mut entries: Vec<Pin<Box<dyn Entry<E>>>>,
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
        let mut note = |ended: Result<Option<Result<bool, E>>, Panic>| match ended {
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(error))) => problems.push(format!("{error:?}")),
            Err(panic) => problems.push(format!("panic: {}", panic_message(&panic))),
            Ok(None) => problems.push(format!(
                "an exit timed out after {:?}",
                bound.unwrap_or_default()
            )),
        };
        // The exit's future is dropped inside the catch, at its timeout or
        // when it ends: a panic of its `Drop` is noted, and the next exit
        // still runs.
        let bounded = |future| {
            let timer = bound.map(|after| rt.sleep(after));
            CatchUnwind::new(OrTimeout::new(CatchUnwind::new(future), timer))
        };
        if let Some(current) = current {
            let timer = bound.map(|after| rt.sleep(after));
            let ended = CatchUnwind::new(OrTimeout::new(current, timer)).await;
            note(ended.and_then(|ended| ended.transpose()));
        }
        while let Some(mut entry) = entries.pop() {
            let started = {
                let exit = Exit::Cancelled(reason);
                catch_unwind(AssertUnwindSafe(|| entry.as_mut().exit(&exit, &rt)))
            };
            match started {
                Ok(future) => {
                    let ended = bounded(future).await;
                    note(ended.and_then(|ended| ended.transpose()));
                }
                Err(panic) => note(Err(panic)),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(CleanupError::Failed(problems.join("; ")))
        }
    });
}

/// The failures in flight at the end of a stack whose body failed, split
/// into the body's error and the failures after it.
pub(super) fn split_body_error<E>(failures: Failure<E>) -> (E, Option<Failure<E>>) {
    let mut all = match failures {
        Failure::Error(error) => return (error, None),
        Failure::Many(all) => all,
        _ => unreachable!("only errors are put in flight"),
    };
    // A `Many` holds two or more.
    let Failure::Error(error) = all.remove(0) else {
        unreachable!("the body's error is put in flight first, as an error")
    };
    let rest = if all.len() == 1 {
        all.pop()
    } else {
        Some(Failure::Many(all))
    };
    (error, rest)
}
