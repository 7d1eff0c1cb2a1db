//! [`gather`] and [`gather_all`]: several futures at once on the current
//! task — Python's `asyncio.gather` inside `async with`.
//!
//! Nothing is spawned: the futures run on the task that awaits the gather, so
//! they may borrow a scope's value. [`gather`] stops at the first error and
//! drops the futures still running as a cancellation with
//! `Cancel::SiblingFailed` — scopes inside them release, told why, and before
//! the scope around the gather does. [`gather_all`] runs every future to its
//! end and returns every result.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::resume_unwind;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::Stream;
use futures::stream::FuturesUnordered;
use pin_project::pin_project;

use crate::exit::Cancel;
use crate::time::cancelling;
use crate::util::{CatchUnwind, Panic};

/// Runs `futures` concurrently on the current task; their outputs, in order,
/// or the first error — the futures still running are then dropped, as a
/// cancellation with `Cancel::SiblingFailed`. A panic drops the others the
/// same way and then resumes.
///
/// ```
/// use std::time::Duration;
/// use awith_core::gather;
/// use awith_core::reference::Reference;
///
/// let reference = Reference::new();
/// let rt = reference.runtime();
/// let doubled = reference.block_on(gather([3u64, 1, 2].map(|n| {
///     let rt = rt.clone();
///     async move {
///         rt.sleep(Duration::from_secs(n)).await;
///         Ok::<_, String>(n * 2)
///     }
/// })));
/// assert_eq!(doubled.unwrap(), Ok(vec![6, 2, 4])); // in order
/// assert_eq!(reference.elapsed(), Duration::from_secs(3)); // at once, not 6 s
/// ```
pub fn gather<I, F, T, E>(futures: I) -> Gather<F, T, E>
where
    I: IntoIterator<Item = F>,
    F: Future<Output = Result<T, E>>,
{
    let running = indexed(futures);
    Gather {
        outputs: (0..running.len()).map(|_| None).collect(),
        running,
        error: PhantomData,
    }
}

/// Runs `futures` concurrently on the current task to their ends; every
/// output, in order. A panic drops the others, as a cancellation with
/// `Cancel::SiblingFailed`, and then resumes.
///
/// ```
/// use awith_core::gather_all;
///
/// let results = futures::executor::block_on(gather_all(["1", "x", "3"].map(|text| async move {
///     text.parse::<u8>().map_err(|_| text)
/// })));
/// assert_eq!(results, [Ok(1), Err("x"), Ok(3)]);
/// ```
pub fn gather_all<I, F>(futures: I) -> GatherAll<F>
where
    I: IntoIterator<Item = F>,
    F: Future,
{
    let running = indexed(futures);
    GatherAll {
        outputs: (0..running.len()).map(|_| None).collect(),
        running,
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
            future: CatchUnwind::new(future),
        })
        .collect()
}

/// A future and its place in the gather.
#[pin_project]
struct Indexed<F> {
    index: usize,
    #[pin]
    future: CatchUnwind<F>,
}

impl<F: Future> Future for Indexed<F> {
    type Output = (usize, Result<F::Output, Panic>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let index = *this.index;
        this.future.poll(cx).map(|output| (index, output))
    }
}

/// The outputs, in order, once every slot is filled.
fn in_order<T>(outputs: &mut [Option<T>]) -> Vec<T> {
    outputs.iter_mut().filter_map(Option::take).collect()
}

/// Drops every future still running, as a cancellation with
/// `Cancel::SiblingFailed`.
fn cancel_rest<F>(running: &mut FuturesUnordered<F>) {
    cancelling(Cancel::SiblingFailed, || {
        running.clear();
    });
}

/// The future of [`gather`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Gather<F: Future<Output = Result<T, E>>, T, E> {
    running: FuturesUnordered<Indexed<F>>,
    outputs: Vec<Option<T>>,
    error: PhantomData<fn() -> E>,
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
{
    type Output = Result<Vec<T>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match ready!(Pin::new(&mut this.running).poll_next(cx)) {
                None => return Poll::Ready(Ok(in_order(&mut this.outputs))),
                Some((index, Ok(Ok(output)))) => this.outputs[index] = Some(output),
                Some((_, Ok(Err(error)))) => {
                    cancel_rest(&mut this.running);
                    return Poll::Ready(Err(error));
                }
                Some((_, Err(panic))) => {
                    cancel_rest(&mut this.running);
                    resume_unwind(panic)
                }
            }
        }
    }
}

/// The future of [`gather_all`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct GatherAll<F: Future> {
    running: FuturesUnordered<Indexed<F>>,
    outputs: Vec<Option<F::Output>>,
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
        loop {
            match ready!(Pin::new(&mut this.running).poll_next(cx)) {
                None => return Poll::Ready(in_order(&mut this.outputs)),
                Some((index, Ok(output))) => this.outputs[index] = Some(output),
                Some((_, Err(panic))) => {
                    cancel_rest(&mut this.running);
                    resume_unwind(panic)
                }
            }
        }
    }
}
