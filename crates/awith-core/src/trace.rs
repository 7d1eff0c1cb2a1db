//! The `tracing` feature's hooks: every span and event awith emits is made
//! here, and the scopes, cleanups, pool and runtime call these hooks in one
//! line each.
//!
//! Without the feature, every hook is an identity function, an empty function
//! or a zero-sized value, all `#[inline(always)]`: no field is added to a
//! future, nothing is allocated, nothing is branched on.
//!
//! With it (target `awith`, level `DEBUG` for spans, `WARN` for incidents):
//!
//! - `awith.scope` (fields `resource`, `exit`, `reason`), made when the
//!   scope is first polled, with a child span per phase, entered around each
//!   poll of that phase: `acquire`, `body`, and `release` (fields `exit`,
//!   `reason`: how the body ended, as the release is told). The scope's
//!   `exit` is recorded when its release starts, in the scope or, cancelled
//!   in its body, as its release is handed to the runtime;
//! - `awith.cleanup` (field `kind`) per cleanup task, made where the task is
//!   handed to the runtime (so a cancelled scope's cleanup is a child of its
//!   scope) and entered around each poll of the task;
//! - `awith.pool.checkout` (fields `outcome`, `error`) per pool checkout,
//!   with children `wait` (for a slot), `recycle` and `create`;
//! - a `WARN` event per [`Incident`] (fields `incident`, `cleanup`), with the
//!   incident's words as its message.
//!
//! A span is never entered across an `.await`: [`Traced`] enters it for each
//! poll (and for the drop) of the future it wraps; [`Phase`] is entered for
//! the synchronous start of a release and for each poll of it.

#[cfg(feature = "tracing")]
pub(crate) use on::*;

#[cfg(not(feature = "tracing"))]
pub(crate) use off::*;

#[cfg(feature = "tracing")]
mod on {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, ready};

    use pin_project::{pin_project, pinned_drop};
    use tracing::field::{self, Empty, display};
    use tracing::{Span, span};

    use crate::error::Failure;
    use crate::exit::{Cancel, Exit};
    use crate::rt::{CleanupKind, Incident};
    use crate::with::{Outcome, describe};

    /// A future whose every poll, and whose drop, runs inside its span.
    #[pin_project(PinnedDrop)]
    pub(crate) struct Traced<F: Future> {
        /// `None` once it has finished.
        #[pin]
        future: Option<F>,
        span: Span,
        /// Makes the span at the first poll, if it was not made at once:
        /// then its parent is the span current where the future is awaited.
        later: Option<fn() -> Span>,
        /// Told the output when the future finishes, `None` if it is dropped
        /// unfinished.
        ended: fn(&Span, Option<&F::Output>),
    }

    impl<F: Future> Traced<F> {
        fn new(future: F, span: Span) -> Self {
            Traced {
                future: Some(future),
                span,
                later: None,
                ended: |_, _| {},
            }
        }

        fn later(future: F, make: fn() -> Span, ended: fn(&Span, Option<&F::Output>)) -> Self {
            Traced {
                future: Some(future),
                span: Span::none(),
                later: Some(make),
                ended,
            }
        }
    }

    impl<F: Future> Future for Traced<F> {
        type Output = F::Output;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            let mut this = self.project();
            if let Some(make) = this.later.take() {
                *this.span = make();
            }
            let _entered = this.span.enter();
            let Some(future) = this.future.as_mut().as_pin_mut() else {
                unreachable!("a traced future is not polled after it finished")
            };
            let output = ready!(future.poll(cx));
            (this.ended)(this.span, Some(&output));
            this.future.set(None);
            Poll::Ready(output)
        }
    }

    #[pinned_drop]
    impl<F: Future> PinnedDrop for Traced<F> {
        fn drop(self: Pin<&mut Self>) {
            let mut this = self.project();
            if this.future.is_some() {
                let _entered = this.span.enter();
                (this.ended)(this.span, None);
                this.future.set(None);
            }
        }
    }

    /// A phase's span that is entered by hand: for each poll, and for the
    /// synchronous work before the first.
    pub(crate) struct Phase(Span);

    impl Phase {
        pub(crate) fn enter(&self) -> span::Entered<'_> {
            self.0.enter()
        }

        pub(crate) fn in_scope<T>(&self, f: impl FnOnce() -> T) -> T {
            self.0.in_scope(f)
        }
    }

    /// A scope: `awith.scope`, made at its first poll.
    pub(crate) fn scope<R, F: Future>(future: F) -> Traced<F> {
        Traced::later(future, scope_span::<R>, |_, _| {})
    }

    fn scope_span<R>() -> Span {
        tracing::debug_span!(
            target: "awith",
            "awith.scope",
            resource = std::any::type_name::<R>(),
            exit = Empty,
            reason = Empty,
        )
    }

    /// A scope's acquire.
    pub(crate) fn acquire<F: Future>(future: F) -> Traced<F> {
        Traced::new(future, tracing::debug_span!(target: "awith", "acquire"))
    }

    /// A scope's body.
    pub(crate) fn body<F: Future>(future: F) -> Traced<F> {
        Traced::new(future, tracing::debug_span!(target: "awith", "body"))
    }

    /// A scope's release, told how the body ended: recorded in the scope's
    /// span too.
    pub(crate) fn release<U, E>(outcome: &Outcome<U, E>) -> Phase {
        let (exit, reason) = match outcome {
            Outcome::Completed(_) => ("completed", None),
            Outcome::Failed(_) => ("failed", None),
            Outcome::Panicked(_) => ("panicked", None),
            Outcome::Stopped(stopped) => ("cancelled", Some(stopped.reason())),
        };
        record_exit(exit, reason);
        Phase(tracing::debug_span!(
            target: "awith",
            "release",
            exit,
            reason = reason.map(field::display),
        ))
    }

    /// A release starts, told `exit`, outside a scope's own release phase (a
    /// scope cancelled in its body): recorded in the current span (the
    /// scope's) if it has the fields.
    pub(crate) fn exit<E>(exit: &Exit<'_, E>) {
        match exit {
            Exit::Completed => record_exit("completed", None),
            Exit::Failed(_) => record_exit("failed", None),
            Exit::Panicked => record_exit("panicked", None),
            Exit::Cancelled(reason) => record_exit("cancelled", Some(*reason)),
        }
    }

    fn record_exit(exit: &'static str, reason: Option<Cancel>) {
        let scope = Span::current();
        scope.record("exit", exit);
        if let Some(reason) = reason {
            scope.record("reason", display(reason));
        }
    }

    /// A cleanup task, made where it is handed to the runtime.
    pub(crate) fn cleanup<F: Future>(kind: CleanupKind, task: F) -> Traced<F> {
        Traced::new(
            task,
            tracing::debug_span!(target: "awith", "awith.cleanup", kind = ?kind),
        )
    }

    /// A pool checkout (its acquire): `awith.pool.checkout`, made at its
    /// first poll (so inside the scope's `acquire`), with its outcome.
    pub(crate) fn checkout<F, T, Er>(future: F) -> Traced<F>
    where
        F: Future<Output = Result<T, Failure<Er>>>,
        Er: std::fmt::Debug,
    {
        Traced::later(future, checkout_span, checkout_ended::<T, Er>)
    }

    fn checkout_span() -> Span {
        tracing::debug_span!(
            target: "awith",
            "awith.pool.checkout",
            outcome = Empty,
            error = Empty,
        )
    }

    fn checkout_ended<T, Er: std::fmt::Debug>(
        span: &Span,
        output: Option<&Result<T, Failure<Er>>>,
    ) {
        match output {
            Some(Ok(_)) => span.record("outcome", "ready"),
            Some(Err(failure)) => span
                .record("outcome", "failed")
                .record("error", display(describe(failure))),
            None => span.record("outcome", "cancelled"),
        };
    }

    /// A pool checkout waits for a slot.
    pub(crate) fn wait<F: Future>(future: F) -> Traced<F> {
        Traced::new(future, tracing::debug_span!(target: "awith", "wait"))
    }

    /// A pool recycles an object.
    pub(crate) fn recycle<F: Future>(future: F) -> Traced<F> {
        Traced::new(future, tracing::debug_span!(target: "awith", "recycle"))
    }

    /// A pool creates an object.
    pub(crate) fn create<F: Future>(future: F) -> Traced<F> {
        Traced::new(future, tracing::debug_span!(target: "awith", "create"))
    }

    /// An incident is reported.
    pub(crate) fn incident(incident: &Incident) {
        let (name, cleanup) = match incident {
            Incident::CleanupRefused { kind, .. } => ("cleanup_refused", Some(kind)),
            Incident::CleanupAbandoned { kind, .. } => ("cleanup_abandoned", Some(kind)),
            Incident::CleanupTimedOut { kind, .. } => ("cleanup_timed_out", Some(kind)),
            Incident::CleanupPanicked { kind, .. } => ("cleanup_panicked", Some(kind)),
            Incident::CleanupFailed { kind, .. } => ("cleanup_failed", Some(kind)),
            Incident::ReleaseFailedDuringPanic { .. } => ("release_failed_during_panic", None),
            Incident::ReleaseTimedOutDuringPanic { .. } => ("release_timed_out_during_panic", None),
            Incident::ReleasePanickedDuringPanic { .. } => ("release_panicked_during_panic", None),
            Incident::ErrorLostToPanic { .. } => ("error_lost_to_panic", None),
            Incident::BackgroundFailed { .. } => ("background_failed", None),
            Incident::BackgroundPanicked { .. } => ("background_panicked", None),
            Incident::Unreturned { .. } => ("unreturned", None),
        };
        // The subscriber is user code: a panic in it is caught, as the
        // incident hook's is (reporting never unwinds into the code that
        // noticed the incident).
        let warned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            tracing::warn!(
                target: "awith",
                incident = name,
                cleanup = cleanup.map(field::debug),
                "{incident}"
            );
        }));
        if let Err(panic) = warned {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "awith: the tracing subscriber panicked ({}) on: {incident}",
                crate::util::panic_message(&panic)
            );
        }
    }
}

#[cfg(not(feature = "tracing"))]
mod off {
    use crate::exit::Exit;
    use crate::rt::{CleanupKind, Incident};
    use crate::with::Outcome;

    /// No span: nothing to enter.
    pub(crate) struct Phase;

    /// Not inside a span.
    pub(crate) struct Entered;

    impl Phase {
        #[inline(always)]
        pub(crate) fn enter(&self) -> Entered {
            Entered
        }

        #[inline(always)]
        pub(crate) fn in_scope<T>(&self, f: impl FnOnce() -> T) -> T {
            f()
        }
    }

    #[inline(always)]
    #[allow(clippy::extra_unused_type_parameters)] // the resource, which the span names
    pub(crate) fn scope<R, F>(future: F) -> F {
        future
    }

    #[inline(always)]
    pub(crate) fn acquire<F>(future: F) -> F {
        future
    }

    #[inline(always)]
    pub(crate) fn body<F>(future: F) -> F {
        future
    }

    #[inline(always)]
    pub(crate) fn release<U, E>(_: &Outcome<U, E>) -> Phase {
        Phase
    }

    #[inline(always)]
    pub(crate) fn exit<E>(_: &Exit<'_, E>) {}

    #[inline(always)]
    pub(crate) fn cleanup<F>(_: CleanupKind, task: F) -> F {
        task
    }

    #[inline(always)]
    pub(crate) fn checkout<F>(future: F) -> F {
        future
    }

    #[inline(always)]
    pub(crate) fn wait<F>(future: F) -> F {
        future
    }

    #[inline(always)]
    pub(crate) fn recycle<F>(future: F) -> F {
        future
    }

    #[inline(always)]
    pub(crate) fn create<F>(future: F) -> F {
        future
    }

    #[inline(always)]
    pub(crate) fn incident(_: &Incident) {}
}
