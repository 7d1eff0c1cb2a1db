//! Combinators on [`Resource`](crate::Resource): one file per combinator.
//!
//! A combined resource is **one scope**: every part is told the scope's exit,
//! and (in a scope run with
//! [`with_suppression`](crate::ResourceExt::with_suppression)) the scope's
//! error is suppressed when any part's release suppresses it. The parts may
//! fail with different errors: `zip` and `and_then` fail with
//! [`PartError`](crate::PartError), which names the part.
//! (An [`ExitStack`](crate::stack::ExitStack) is a stack of scopes instead:
//! there, an exit that suppresses makes the outer exits see the scope as
//! completed.)
//!
//! The release functions of the parts are all called when the combined
//! release starts — innermost first — and their futures then run in release
//! order (`and_then`: the second, then the first; `zip`: both at once). Keep
//! the work of a release in its future, not in the function that builds it.
//!
//! The body timeout of a combined resource is the smallest of its parts'
//! ([`Resource::body_timeout`], and for `and_then`'s second part, only known
//! once the first is acquired, [`Resource::acquired_body_timeout`]).
//!
//! Nothing a part does is lost: when one part panics beside another's
//! failure, the panic resumes and the failure is reported; when a combined
//! acquire or release is dropped half-way (a release timeout, a cleanup that
//! timed out), a part's failure it already had is reported.

mod and_then;
mod map;
mod map_err;
mod timed;
mod zip;

pub use and_then::AndThen;
pub use map::Map;
pub use map_err::MapErr;
pub use timed::Timed;
pub use zip::Zip;

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project::pin_project;

use crate::error::Failure;
use crate::exit::Cancel;
use crate::exit::Exit;
use crate::nest::{CleanupDone, Inner};
use crate::resource::Resource;
use crate::rt::{Incident, Runtime};
use crate::time::drop_reason;
use crate::util::{CatchUnwind, Panic, panic_message};
use crate::verdict::{ReleaseVerdict, Verdict};
use crate::with::{describe, release_cancelled};

/// A part acquired by a combined acquire that has not finished yet: if the
/// combined acquire is dropped (its scope cancelled, a cleanup timed out), the
/// part is released as a runtime task, told why — never just dropped.
///
/// Generic over the value and releaser types only, with the release as a
/// function pointer, so that it is `'static` whenever they are.
struct HeldPart<V, Rel> {
    rt: Runtime,
    part: Option<(V, Rel)>,
    release: ReleaseCancelled<V, Rel>,
    /// Cleanups started by what was acquired after this part and dropped:
    /// they end before this part's release starts.
    inner: Inner,
}

/// [`release_cancelled`] for one resource type.
type ReleaseCancelled<V, Rel> = fn(&Runtime, Rel, V, Cancel, Vec<CleanupDone>);

impl<V, Rel> HeldPart<V, Rel> {
    fn new<R, E>(rt: &Runtime, value: V, releaser: Rel) -> Self
    where
        R: Resource<E, Value = V, Releaser = Rel>,
    {
        HeldPart {
            rt: rt.clone(),
            part: Some((value, releaser)),
            release: release_cancelled::<R, E>,
            inner: Inner::default(),
        }
    }

    fn value(&mut self) -> &mut V {
        match &mut self.part {
            Some((value, _)) => value,
            None => unreachable!("a held part is only taken once, at the end"),
        }
    }

    fn take(mut self) -> (V, Rel) {
        self.part
            .take()
            .unwrap_or_else(|| unreachable!("a held part is only taken once"))
    }
}

impl<V, Rel> Drop for HeldPart<V, Rel> {
    fn drop(&mut self) {
        if let Some((value, releaser)) = self.part.take() {
            (self.release)(&self.rt, releaser, value, drop_reason(), self.inner.take());
        }
    }
}

/// How one part's release ended, panics caught.
type PartReleased<V, Er> = Result<Result<V, Failure<Er>>, Panic>;

/// A part's ending (its failure, its panic), kept while the rest of the
/// combined acquire or release runs. Should that be dropped unfinished (at a
/// release timeout, a cleanup timeout, a cancellation), the failure has
/// nobody left to be returned to: it is reported.
pub(super) struct Kept<T> {
    rt: Runtime,
    kept: Option<T>,
    /// What the kept value says went wrong, if anything.
    describe: fn(&T) -> Option<String>,
}

impl<T> Kept<T> {
    pub(super) fn new(rt: Runtime, kept: T, describe: fn(&T) -> Option<String>) -> Self {
        Kept {
            rt,
            kept: Some(kept),
            describe,
        }
    }

    pub(super) fn take(mut self) -> T {
        self.kept
            .take()
            .unwrap_or_else(|| unreachable!("taken once"))
    }
}

impl<T> Drop for Kept<T> {
    fn drop(&mut self) {
        let Some(kept) = self.kept.take() else {
            return;
        };
        if let Some(failure) = (self.describe)(&kept) {
            self.rt.report(Incident::Unreturned {
                work: "a part of a combined resource, dropped before the rest finished",
                failure,
            });
        }
    }
}

/// What a kept failure says.
pub(super) fn failed<Er: fmt::Debug>(failure: &Failure<Er>) -> Option<String> {
    Some(describe(failure))
}

/// What a kept panic says.
pub(super) fn panicked(panic: &Panic) -> Option<String> {
    Some(format!("panic: {}", panic_message(panic)))
}

/// What a kept part's release says.
pub(super) fn released<V, Er: fmt::Debug>(released: &PartReleased<V, Er>) -> Option<String> {
    match released {
        Ok(Ok(_)) => None,
        Ok(Err(failure)) => failed(failure),
        Err(panic) => panicked(panic),
    }
}

/// Starts one part's release: builds its future now (while the exit is
/// lent), catching a panic of the function that builds it.
fn start_release<R, E>(
    releaser: R::Releaser,
    value: R::Value,
    exit: &Exit<'_, E>,
    rt: &Runtime,
) -> Result<impl Future<Output = Result<Verdict, Failure<R::Error>>> + Send + 'static, Panic>
where
    R: Resource<E>,
{
    catch_unwind(AssertUnwindSafe(|| R::release(releaser, value, exit, rt)))
}

/// Runs a started release to its end, catching its panic (or giving the
/// panic that building it raised). Hand-written rather than an `async fn`:
/// a combined release holds one per part, and each layer of generated
/// future would hold the part's future again.
#[pin_project(project = FinishProj)]
pub(super) enum FinishRelease<F> {
    Running(#[pin] CatchUnwind<F>),
    Panicked(Option<Panic>),
}

/// Runs a started release to its end, catching its panic.
pub(super) fn finish_release<F>(started: Result<F, Panic>) -> FinishRelease<F> {
    match started {
        Ok(release) => FinishRelease::Running(CatchUnwind::new(release)),
        Err(panic) => FinishRelease::Panicked(Some(panic)),
    }
}

impl<F: Future> Future for FinishRelease<F> {
    type Output = Result<F::Output, Panic>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            FinishProj::Running(release) => release.poll(cx),
            FinishProj::Panicked(panic) => Poll::Ready(Err(panic
                .take()
                .unwrap_or_else(|| unreachable!("polled after it ended")))),
        }
    }
}

/// [`finish_release`], its ending kept (see [`Kept`]).
#[pin_project]
pub(super) struct KeepRelease<F> {
    #[pin]
    release: FinishRelease<F>,
    rt: Option<Runtime>,
}

/// Runs a started release to its end, keeping its ending.
pub(super) fn keep_release<F>(rt: &Runtime, started: Result<F, Panic>) -> KeepRelease<F> {
    KeepRelease {
        release: finish_release(started),
        rt: Some(rt.clone()),
    }
}

impl<F, V, Er> Future for KeepRelease<F>
where
    F: Future<Output = Result<V, Failure<Er>>>,
    Er: fmt::Debug,
{
    type Output = Kept<PartReleased<V, Er>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let ended = std::task::ready!(this.release.poll(cx));
        let rt = this
            .rt
            .take()
            .unwrap_or_else(|| unreachable!("polled after it ended"));
        Poll::Ready(Kept::new(rt, ended, released))
    }
}

/// Joins the releases of two parts, given in release order: the verdict
/// suppresses when either does, failures are kept in order, and the first
/// panic resumes once both have run (a second one, or a failure lost with the
/// panic, is reported).
fn combine_releases<Er>(
    rt: &Runtime,
    first: PartReleased<Verdict, Er>,
    second: PartReleased<Verdict, Er>,
) -> Result<Verdict, Failure<Er>>
where
    Er: fmt::Debug,
{
    match (first, second) {
        (Ok(first), Ok(second)) => match (first, second) {
            (Ok(a), Ok(b)) if a.suppresses() || b.suppresses() => Ok(Verdict::Suppress),
            (Ok(_), Ok(_)) => Ok(Verdict::Propagate),
            (first, second) => Err(Failure::join(first.err(), second.err())
                .unwrap_or_else(|| unreachable!("one of them failed"))),
        },
        (Err(panic), second) => {
            report_during_panic(rt, second);
            resume_unwind(panic)
        }
        (Ok(first), Err(panic)) => {
            report_during_panic(rt, Ok(first));
            resume_unwind(panic)
        }
    }
}

/// A part's release, its error made the combined resource's.
fn part_released<V, Er, P>(released: PartReleased<V, Er>, part: fn(Er) -> P) -> PartReleased<V, P> {
    released.map(|released| released.map_err(|failure| failure.map(part)))
}

/// Reports what a part's release did while another part's panic is about to
/// resume: a failure or a second panic would otherwise be lost.
fn report_during_panic<V, Er: fmt::Debug>(rt: &Runtime, released: PartReleased<V, Er>) {
    match released {
        Ok(Ok(_)) => {}
        Ok(Err(Failure::TimedOut(after))) => {
            rt.report(Incident::ReleaseTimedOutDuringPanic { after });
        }
        Ok(Err(failure)) => rt.report(Incident::ReleaseFailedDuringPanic {
            error: describe(&failure),
        }),
        Err(panic) => rt.report(Incident::ReleasePanickedDuringPanic {
            message: panic_message(&panic),
        }),
    }
}

/// Releases a part told `exit` because of another part's panic, which the
/// caller resumes afterwards; whatever goes wrong here is reported.
async fn release_during_panic<R, E>(rt: &Runtime, releaser: R::Releaser, value: R::Value)
where
    R: Resource<E>,
{
    let started = start_release::<R, E>(releaser, value, &Exit::Panicked, rt);
    let released = finish_release(started).await;
    report_during_panic(rt, released);
}
