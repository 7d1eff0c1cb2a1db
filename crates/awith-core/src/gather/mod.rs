//! [`gather()`] and [`gather_all()`]: several futures at once on the current
//! task — Python's `asyncio.gather` inside `async with`; [`gather!`](crate::gather!) and
//! [`gather_all!`](crate::gather_all!): the same for a tuple of futures of *different* types
//! (as `futures::try_join!` and `join!` take them).
//!
//! Nothing is spawned: the futures run on the task that awaits the gather, so
//! they may borrow a scope's value and need not be `Send`. [`gather()`] and
//! [`gather!`](crate::gather!) stop at the first error and drop the futures still running as
//! a cancellation with `Cancel::SiblingFailed` — scopes inside them release,
//! told why, and before the scope around the gather does (the reason plain
//! `try_join!` cannot give: its siblings are told only `Dropped`).
//! [`gather_all()`] and [`gather_all!`](crate::gather_all!) run every future to its end and return
//! every result.
//!
//! Both forms take the same name: the function for an iterable of futures of
//! one type, the macro for a tuple of up to 12 futures of any types
//! (`use awith::gather;` brings in both). One function cannot take both:
//! a tuple might implement `IntoIterator` one day, so the compiler refuses a
//! trait implemented for both.
//!
//! # Cancellation
//!
//! Dropping a gather drops every future still running, as plain futures
//! (their scopes are told `Cancelled(Dropped)`, or the reason of whatever
//! cancels the gather, such as a timeout). On the first error or panic, the
//! gather itself drops the others as `Cancelled(SiblingFailed)`, one by one
//! and each inside `catch_unwind`: a future whose `Drop` panics does not stop
//! the others from being dropped with the right reason.
//!
//! What happens to failures no caller can receive, and how fair the polling
//! is: see the docs of [`gather()`] (users see those, not these).

mod tuple;

use std::fmt;
use std::future::Future;
use std::io::Write as _;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::Stream;
use futures::stream::FuturesUnordered;
use pin_project::pin_project;

use crate::exit::Cancel;
use crate::rt::{Incident, Runtime};
use crate::time::cancelling;
use crate::util::{CatchUnwind, Panic, panic_message};

pub use tuple::{FutureTuple, GatherAllTuple, GatherTuple, TryFutureTuple};

/// Runs `futures` concurrently on the current task; their outputs, in order,
/// or the first error — the futures still running are then dropped, as a
/// cancellation with `Cancel::SiblingFailed`. A panic drops the others the
/// same way and then resumes. For futures of different types, see
/// [`gather!`](crate::gather!).
///
/// ```
/// use std::time::Duration;
/// use awith::gather;
///
/// #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let start = tokio::time::Instant::now();
///     let doubled = gather([3u64, 1, 2].map(|n| async move {
///         tokio::time::sleep(Duration::from_secs(n)).await;
///         Ok::<_, std::io::Error>(n * 2)
///     }))
///     .await?;
///     assert_eq!(doubled, [6, 2, 4]); // in order
///     assert_eq!(start.elapsed(), Duration::from_secs(3)); // at once, not 6 s
///     Ok(())
/// }
/// ```
///
/// # Cancellation
///
/// On the first error or panic the futures still running are dropped at
/// once, as `Cancelled(SiblingFailed)`, before the gather returns; a future
/// whose `Drop` panics then is reported as said below. Dropping the gather
/// drops the futures still running, told the reason of whatever dropped it.
///
/// # Failures nobody can receive
///
/// A panic always wins over an error (as in a scope): if a future's `Drop`
/// panics while it is cancelled after another failed, that panic resumes, and
/// the error it replaces is reported as
/// [`Incident::ErrorLostToPanic`](crate::rt::Incident::ErrorLostToPanic);
/// a second panic (a panic, then a `Drop` that panics too) is reported as
/// [`Incident::ReleasePanickedDuringPanic`](crate::rt::Incident::ReleasePanickedDuringPanic)
/// while the first resumes. A gather is given no runtime, so these go to
/// stderr unless [`Gather::report_to`] (and its like on the other gathers)
/// names a runtime, whose incident hook then receives them. This is why
/// [`gather()`] and [`gather!`](crate::gather!) ask `E: Debug` of the error.
///
/// # Fairness
///
/// [`gather()`] and [`gather_all()`] poll only the futures that were woken. The
/// tuple forms poll every future still running each time they are polled
/// (at most 12, and a future already finished is not polled again): no
/// future starves another.
pub fn gather<I, F, T, E>(futures: I) -> Gather<F, T, E>
where
    I: IntoIterator<Item = F>,
    F: Future<Output = Result<T, E>>,
    E: fmt::Debug,
{
    let running = indexed(futures);
    Gather {
        outputs: (0..running.len()).map(|_| None).collect(),
        running,
        rt: None,
        error: PhantomData,
    }
}

/// Runs `futures` concurrently on the current task to their ends; every
/// output, in order. A panic drops the others, as a cancellation with
/// `Cancel::SiblingFailed`, and then resumes. For futures of different
/// types, see [`gather_all!`](crate::gather_all!).
///
/// ```
/// use awith::gather_all;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let results = gather_all(["1", "x", "3"].map(|text| async move {
///     text.parse::<u8>().map_err(|_| text)
/// }))
/// .await;
/// assert_eq!(results, [Ok(1), Err("x"), Ok(3)]);
/// # }
/// ```
///
/// # Cancellation
///
/// Nothing is cancelled for an error: every future runs to its end. On a
/// panic the futures still running are dropped as `Cancelled(SiblingFailed)`
/// before the panic resumes. Dropping the gather drops the futures still
/// running, told the reason of whatever dropped it.
pub fn gather_all<I, F>(futures: I) -> GatherAll<F>
where
    I: IntoIterator<Item = F>,
    F: Future,
{
    let running = indexed(futures);
    GatherAll {
        outputs: (0..running.len()).map(|_| None).collect(),
        running,
        rt: None,
    }
}

/// The futures, each with its index, polled as they are woken and yielding as
/// they finish (so that the first error is seen at once, not after the
/// futures before it in order).
fn indexed<I, F>(futures: I) -> FuturesUnordered<Indexed<F>>
where
    I: IntoIterator<Item = F>,
    F: Future,
{
    futures
        .into_iter()
        .enumerate()
        .map(|(index, future)| Indexed {
            index,
            running: Running::new(future),
        })
        .collect()
}

/// A future and its place in the gather.
#[pin_project]
struct Indexed<F> {
    index: usize,
    #[pin]
    running: Running<F>,
}

impl<F: Future> Future for Indexed<F> {
    type Output = (usize, Ended<F::Output>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let index = *this.index;
        this.running.poll_end(cx).map(|ended| (index, ended))
    }
}

/// How a future of a gather ended.
pub(crate) enum Ended<O> {
    /// With its output (and its `Drop` did not panic).
    Output(O),
    /// It panicked — while polled, or in its `Drop` just after it returned
    /// its output (`lost`, which the panic replaces).
    Panicked {
        panic: Panic,
        lost: Option<O>,
        /// Its `Drop` panicked too, after it panicked while polled.
        second: Option<Panic>,
    },
}

/// One future of a gather, dropped as soon as it ends (its `Drop` caught).
#[pin_project]
pub(crate) struct Running<F> {
    #[pin]
    future: Option<CatchUnwind<F>>,
}

impl<F: Future> Running<F> {
    pub(crate) fn new(future: F) -> Self {
        Running {
            future: Some(CatchUnwind::new(future)),
        }
    }

    /// Polls the future if it still runs (else `Pending`: the gather never
    /// polls a future that ended).
    pub(crate) fn poll_end(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ended<F::Output>> {
        let mut slot = self.project().future;
        let Some(future) = slot.as_mut().as_pin_mut() else {
            return Poll::Pending;
        };
        match ready!(future.poll(cx)) {
            // Dropped at once (its scopes release now, not when the gather
            // ends); a panic in its `Drop` is its own.
            Ok(output) => Poll::Ready(match catch_unwind(AssertUnwindSafe(|| slot.set(None))) {
                Ok(()) => Ended::Output(output),
                Err(panic) => Ended::Panicked {
                    panic,
                    lost: Some(output),
                    second: None,
                },
            }),
            // Poisoned: dropped now too (a panic in its `Drop` is a second
            // panic).
            Err(panic) => Poll::Ready(Ended::Panicked {
                panic,
                lost: None,
                second: catch_unwind(AssertUnwindSafe(|| slot.set(None))).err(),
            }),
        }
    }

    /// Drops the future, if not dropped yet, as a cancellation with
    /// `Cancel::SiblingFailed`.
    pub(crate) fn cancel(self: Pin<&mut Self>, cancel: &mut Cancelling<'_>) {
        let mut slot = self.project().future;
        if slot.is_some() {
            cancel.drop_one(|| slot.set(None));
        }
    }
}

/// Where a gather reports what it cannot return: a runtime's incident hook,
/// or stderr (as a runtime without a hook does).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reporter<'a>(pub(crate) Option<&'a Runtime>);

impl Reporter<'_> {
    fn report(&self, incident: Incident) {
        match &self.0 {
            Some(rt) => rt.report(incident),
            None => {
                let _ = writeln!(std::io::stderr(), "{incident}");
            }
        }
    }

    /// An error replaced by a panic that resumes.
    pub(crate) fn lost<E: fmt::Debug>(&self, error: E) {
        self.report(Incident::ErrorLostToPanic {
            error: format!("{error:?}"),
        });
        drop(error);
    }

    /// A panic after the one that resumes.
    fn second_panic(&self, panic: Panic) {
        self.report(Incident::ReleasePanickedDuringPanic {
            message: panic_message(&panic),
        });
        drop_payload(panic);
    }
}

/// Drops a panic payload; a payload whose own `Drop` panics is forgotten.
fn drop_payload(panic: Panic) {
    if let Err(nested) = catch_unwind(AssertUnwindSafe(|| drop(panic))) {
        std::mem::forget(nested);
    }
}

/// Drops the futures still running one by one, each as a cancellation with
/// `Cancel::SiblingFailed` and inside `catch_unwind`; keeps the first panic
/// (the one that resumes) and reports the others — after the error the first
/// replaces, if any: oldest first.
pub(crate) struct Cancelling<'a> {
    reporter: Reporter<'a>,
    panic: Option<Panic>,
    later: Vec<Panic>,
}

impl<'a> Cancelling<'a> {
    /// `panic`: the panic that already ended the gather, if one did;
    /// `second`: a panic after it.
    pub(crate) fn new(reporter: Reporter<'a>, panic: Option<Panic>, second: Option<Panic>) -> Self {
        Cancelling {
            reporter,
            panic,
            later: second.into_iter().collect(),
        }
    }

    fn drop_one(&mut self, drop: impl FnOnce()) {
        let dropped = catch_unwind(AssertUnwindSafe(|| {
            cancelling(Cancel::SiblingFailed, drop);
        }));
        if let Err(panic) = dropped {
            if self.panic.is_some() {
                self.later.push(panic);
            } else {
                self.panic = Some(panic);
            }
        }
    }

    /// Ends a gather that failed with `error`: `error`, or, if a `Drop`
    /// panicked, that panic resumes and `error` is reported.
    pub(crate) fn fail<E: fmt::Debug>(self, error: E) -> E {
        if self.panic.is_none() {
            return error;
        }
        self.reporter.lost(error);
        self.resume()
    }

    /// Ends a gather whose future panicked: the first panic resumes, the
    /// later ones are reported.
    pub(crate) fn resume(self) -> ! {
        for panic in self.later {
            self.reporter.second_panic(panic);
        }
        match self.panic {
            Some(panic) => resume_unwind(panic),
            // `new` was given the panic, or `fail` saw one: not reached.
            None => resume_unwind(Box::new("awith: a gather's panic went missing")),
        }
    }
}

/// Drops every future still running, as a cancellation with
/// `Cancel::SiblingFailed`.
fn cancel_rest<F: Future>(running: &mut FuturesUnordered<Indexed<F>>, cancel: &mut Cancelling<'_>) {
    for indexed in Pin::new(&mut *running).iter_pin_mut() {
        indexed.project().running.cancel(cancel);
    }
    // Only the empty shells are left: nothing of the user's runs here.
    running.clear();
}

/// The outputs, in order, once every slot is filled.
fn in_order<T>(outputs: &mut [Option<T>]) -> Vec<T> {
    outputs.iter_mut().filter_map(Option::take).collect()
}

/// The future of [`gather()`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Gather<F: Future<Output = Result<T, E>>, T, E> {
    running: FuturesUnordered<Indexed<F>>,
    outputs: Vec<Option<T>>,
    rt: Option<Runtime>,
    error: PhantomData<fn() -> E>,
}

impl<F, T, E> Gather<F, T, E>
where
    F: Future<Output = Result<T, E>>,
{
    /// Reports to `rt`'s incident hook what the gather cannot return (by
    /// default it goes to stderr): an error replaced by the panic of a
    /// future's `Drop`, a second panic.
    ///
    /// ```
    /// use awith::gather;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let parts = gather([1, 2, 3].map(|n| async move { Ok::<_, std::io::Error>(n) }))
    ///     .report_to(&rt)
    ///     .await?;
    /// assert_eq!(parts.iter().sum::<i32>(), 6);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancellation
    ///
    /// As for [`gather()`]; only where the failures nobody can receive go
    /// changes.
    pub fn report_to(mut self, rt: &Runtime) -> Self {
        self.rt = Some(rt.clone());
        self
    }
}

impl<F, T, E> fmt::Debug for Gather<F, T, E>
where
    F: Future<Output = Result<T, E>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gather")
            .field("running", &self.running.len())
            .finish_non_exhaustive()
    }
}

// Every field is `Unpin`: the futures are boxed inside `FuturesUnordered`.
impl<F, T, E> Unpin for Gather<F, T, E> where F: Future<Output = Result<T, E>> {}

impl<F, T, E> Future for Gather<F, T, E>
where
    F: Future<Output = Result<T, E>>,
    E: fmt::Debug,
{
    type Output = Result<Vec<T>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let reporter = Reporter(this.rt.as_ref());
        loop {
            match ready!(Pin::new(&mut this.running).poll_next(cx)) {
                None => return Poll::Ready(Ok(in_order(&mut this.outputs))),
                Some((index, Ended::Output(Ok(output)))) => this.outputs[index] = Some(output),
                Some((_, Ended::Output(Err(error)))) => {
                    let mut cancel = Cancelling::new(reporter, None, None);
                    cancel_rest(&mut this.running, &mut cancel);
                    return Poll::Ready(Err(cancel.fail(error)));
                }
                Some((
                    _,
                    Ended::Panicked {
                        panic,
                        lost,
                        second,
                    },
                )) => {
                    if let Some(Err(error)) = lost {
                        reporter.lost(error);
                    }
                    let mut cancel = Cancelling::new(reporter, Some(panic), second);
                    cancel_rest(&mut this.running, &mut cancel);
                    cancel.resume()
                }
            }
        }
    }
}

/// The future of [`gather_all()`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct GatherAll<F: Future> {
    running: FuturesUnordered<Indexed<F>>,
    outputs: Vec<Option<F::Output>>,
    rt: Option<Runtime>,
}

impl<F: Future> GatherAll<F> {
    /// Reports to `rt`'s incident hook what the gather cannot return (by
    /// default it goes to stderr): a second panic, in the `Drop` of a future
    /// cancelled after another panicked.
    ///
    /// ```
    /// use awith::gather_all;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let lengths = gather_all(["a", "bc"].map(|s| async move { s.len() })).report_to(&rt).await;
    /// assert_eq!(lengths, [1, 2]);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancellation
    ///
    /// As for [`gather_all()`]; only where the failures nobody can receive go
    /// changes.
    pub fn report_to(mut self, rt: &Runtime) -> Self {
        self.rt = Some(rt.clone());
        self
    }
}

impl<F: Future> fmt::Debug for GatherAll<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatherAll")
            .field("running", &self.running.len())
            .finish_non_exhaustive()
    }
}

// Every field is `Unpin`: the futures are boxed inside `FuturesUnordered`.
impl<F: Future> Unpin for GatherAll<F> {}

impl<F: Future> Future for GatherAll<F> {
    type Output = Vec<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let reporter = Reporter(this.rt.as_ref());
        loop {
            match ready!(Pin::new(&mut this.running).poll_next(cx)) {
                None => return Poll::Ready(in_order(&mut this.outputs)),
                Some((index, Ended::Output(output))) => this.outputs[index] = Some(output),
                Some((
                    _,
                    Ended::Panicked {
                        panic,
                        lost,
                        second,
                    },
                )) => {
                    // An output its own `Drop`'s panic replaced: not known
                    // to be a failure, so only dropped.
                    drop(lost);
                    let mut cancel = Cancelling::new(reporter, Some(panic), second);
                    cancel_rest(&mut this.running, &mut cancel);
                    cancel.resume()
                }
            }
        }
    }
}
