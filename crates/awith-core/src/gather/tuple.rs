//! The tuple forms, [`gather!`](crate::gather!) and
//! [`gather_all!`](crate::gather_all!): up to 12 futures of different types,
//! each in its own slot (no boxing), all polled each time the gather is.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project::pin_project;

use super::{Cancelling, Ended, Reporter, Running};
use crate::rt::Runtime;
use crate::util::Panic;

/// Runs futures of different types concurrently on the current task, each
/// returning `Result<_, E>` with the same `E`: `Ok` with the tuple of their
/// values, in order, or the first error — the futures still running are
/// then dropped as a cancellation with `Cancel::SiblingFailed`. A panic drops
/// the others the same way and then resumes. Takes 1 to 12 futures; the
/// future is a [`GatherTuple`]. For an iterable of futures of one type, see
/// the function [`gather()`](crate::gather()) (`use awith::gather;`
/// brings in both).
///
/// ```
/// use std::time::Duration;
/// use awith::gather;
///
/// #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let start = tokio::time::Instant::now();
///     let (name, age, tags) = gather!(
///         async {
///             tokio::time::sleep(Duration::from_secs(3)).await;
///             Ok::<_, std::io::Error>("Ada".to_owned())
///         },
///         async {
///             tokio::time::sleep(Duration::from_secs(1)).await;
///             Ok(36u32)
///         },
///         async {
///             tokio::time::sleep(Duration::from_secs(2)).await;
///             Ok(vec!["math"])
///         },
///     )
///     .await?;
///     assert_eq!((name.as_str(), age, tags), ("Ada", 36, vec!["math"])); // in order
///     assert_eq!(start.elapsed(), Duration::from_secs(3)); // at once, not 6 s
///     Ok(())
/// }
/// ```
///
/// Every future must fail with the same error type (convert with
/// `.map_err(..)`); the compiler points at the one that differs:
///
/// ```compile_fail,E0271
/// # use awith::gather;
/// # async fn f() {
/// let _ = gather!(async { Ok::<_, String>(1) }, async { Err::<u8, _>(7u32) }).await;
/// # }
/// ```
///
/// # Cancellation
///
/// On the first error or panic the futures still running are dropped at
/// once, as `Cancelled(SiblingFailed)` — so a scope inside one releases told
/// why, before the gather returns (plain `futures::try_join!` drops them as
/// `Cancelled(Dropped)`, and only when it is dropped itself). A future whose
/// `Drop` panics then: its panic resumes and the error is reported, as the
/// [`gather()`](crate::gather()#failures-nobody-can-receive) docs say (see [`GatherTuple::report_to`]).
/// Dropping the gather drops the futures still running, told the reason of
/// whatever dropped it.
#[macro_export]
macro_rules! gather {
    ($($future:expr),+ $(,)?) => {
        $crate::GatherTuple::new(($($future,)+))
    };
}

/// Runs futures of different types concurrently on the current task to
/// their ends: the tuple of every output, in order; an error stops nothing.
/// A panic drops the others, as a cancellation with `Cancel::SiblingFailed`,
/// and then resumes. Takes 1 to 12 futures; the future is a
/// [`GatherAllTuple`]. For an iterable of futures of one type, see the
/// function [`gather_all()`](crate::gather_all()).
///
/// ```
/// use awith::gather_all;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (number, word, failed) = gather_all!(
///     async { "7".parse::<u8>() },
///     async { "seven" },
///     async { Err::<(), _>("no") },
/// )
/// .await;
/// assert_eq!((number, word, failed), (Ok(7), "seven", Err("no")));
/// # }
/// ```
///
/// # Cancellation
///
/// Nothing is cancelled for an error: every future runs to its end. On a
/// panic the futures still running are dropped as `Cancelled(SiblingFailed)`
/// before the panic resumes (a second panic, from one of their `Drop`s, is
/// reported: see [`GatherAllTuple::report_to`]). Dropping the gather drops
/// the futures still running, told the reason of whatever dropped it.
#[macro_export]
macro_rules! gather_all {
    ($($future:expr),+ $(,)?) => {
        $crate::GatherAllTuple::new(($($future,)+))
    };
}

mod sealed {
    pub trait Sealed {}
}

/// A tuple of 1 to 12 futures, of any types: what [`gather_all!`](crate::gather_all!)
/// takes. Sealed: implemented for tuples only.
///
/// ```
/// use awith::{FutureTuple, GatherAllTuple};
///
/// fn gathers<Fs: FutureTuple>(futures: Fs) -> GatherAllTuple<Fs> {
///     GatherAllTuple::new(futures)
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(gathers((async { 1 }, async { "one" })).await, (1, "one"));
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "`gather!` and `gather_all!` take 1 to 12 futures; `{Self}` is not a tuple of futures",
    note = "for more than 12 futures, or a list of them, use the function `gather` or `gather_all` with futures of one type (box them: `Box::pin(fut) as Pin<Box<dyn Future<Output = _>>>`)"
)]
pub trait FutureTuple: sealed::Sealed {
    /// The tuple of the futures' outputs.
    type Output;
    #[doc(hidden)]
    type Slots;
    #[doc(hidden)]
    fn into_slots(self) -> Self::Slots;
    #[doc(hidden)]
    fn poll_all(
        slots: Pin<&mut Self::Slots>,
        cx: &mut Context<'_>,
        rt: Option<&Runtime>,
    ) -> Poll<Self::Output>;
}

/// A tuple of 1 to 12 futures, of any types, each returning `Result<_, E>`
/// with the same `E` (`Debug`, for what can only be reported): what
/// [`gather!`](crate::gather!) takes. Sealed: implemented for tuples only.
///
/// ```
/// use awith::{GatherTuple, TryFutureTuple};
///
/// fn gathers<Fs: TryFutureTuple>(futures: Fs) -> GatherTuple<Fs> {
///     GatherTuple::new(futures)
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let both = gathers((async { Ok::<_, String>(1) }, async { Ok("one") }));
/// assert_eq!(both.await, Ok((1, "one")));
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "`gather!` takes 1 to 12 futures each returning `Result<_, E>` with one error type `E: Debug`; `{Self}` is not such a tuple",
    note = "give every future the same error type (`.map_err(..)`, or `?` in an `async` block whose error type is named: `Ok::<_, MyError>(..)`); for futures that do not return `Result`, use `gather_all!`"
)]
pub trait TryFutureTuple: FutureTuple {
    /// The tuple of the futures' values.
    type Ok;
    /// Their one error type.
    type Error;
    #[doc(hidden)]
    fn poll_try(
        slots: Pin<&mut Self::Slots>,
        cx: &mut Context<'_>,
        rt: Option<&Runtime>,
    ) -> Poll<Result<Self::Ok, Self::Error>>;
}

/// Why a round of polls stopped early.
enum Stop<E> {
    Error(E),
    Panic(Panic, Option<Panic>),
}

macro_rules! tuples {
    ($($Slots:ident { $($F:ident $T:ident $f:ident $o:ident),+ })+) => {$(
        /// The futures of a tuple gather, each with room for its output.
        #[pin_project]
        pub struct $Slots<$($F: Future),+> {
            $(
                #[pin]
                $f: Running<$F>,
                $o: Option<$F::Output>,
            )+
        }

        impl<$($F: Future),+> fmt::Debug for $Slots<$($F),+> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($Slots)).finish_non_exhaustive()
            }
        }

        impl<$($F: Future),+> $Slots<$($F),+> {
            fn cancel_all(self: Pin<&mut Self>, cancel: &mut Cancelling<'_>) {
                let this = self.project();
                $( this.$f.cancel(cancel); )+
            }
        }

        impl<$($F: Future),+> sealed::Sealed for ($($F,)+) {}

        impl<$($F: Future),+> FutureTuple for ($($F,)+) {
            type Output = ($($F::Output,)+);
            type Slots = $Slots<$($F),+>;

            fn into_slots(self) -> Self::Slots {
                let ($($f,)+) = self;
                $Slots { $( $f: Running::new($f), $o: None, )+ }
            }

            fn poll_all(
                mut slots: Pin<&mut Self::Slots>,
                cx: &mut Context<'_>,
                rt: Option<&Runtime>,
            ) -> Poll<Self::Output> {
                let mut stop = None;
                let this = slots.as_mut().project();
                $(
                    if stop.is_none() && this.$o.is_none() {
                        match this.$f.poll_end(cx) {
                            Poll::Pending => {}
                            Poll::Ready(Ended::Output(output)) => *this.$o = Some(output),
                            Poll::Ready(Ended::Panicked { panic, lost, second }) => {
                                // An output its own `Drop`'s panic replaced:
                                // not known to be a failure, so only dropped.
                                drop(lost);
                                stop = Some((panic, second));
                            }
                        }
                    }
                )+
                if let Some((panic, second)) = stop {
                    let mut cancel = Cancelling::new(Reporter(rt), Some(panic), second);
                    slots.as_mut().cancel_all(&mut cancel);
                    cancel.resume()
                }
                let this = slots.project();
                if $(this.$o.is_some())&&+ {
                    if let ($(Some($o),)+) = ($(this.$o.take(),)+) {
                        return Poll::Ready(($($o,)+));
                    }
                }
                Poll::Pending
            }
        }

        impl<Er: fmt::Debug, $($F, $T),+> TryFutureTuple for ($($F,)+)
        where
            $($F: Future<Output = Result<$T, Er>>,)+
        {
            type Ok = ($($T,)+);
            type Error = Er;

            fn poll_try(
                mut slots: Pin<&mut Self::Slots>,
                cx: &mut Context<'_>,
                rt: Option<&Runtime>,
            ) -> Poll<Result<Self::Ok, Er>> {
                let reporter = Reporter(rt);
                let mut stop = None;
                let this = slots.as_mut().project();
                $(
                    if stop.is_none() && this.$o.is_none() {
                        match this.$f.poll_end(cx) {
                            Poll::Pending => {}
                            Poll::Ready(Ended::Output(Ok(value))) => *this.$o = Some(Ok(value)),
                            Poll::Ready(Ended::Output(Err(error))) => stop = Some(Stop::Error(error)),
                            Poll::Ready(Ended::Panicked { panic, lost, second }) => {
                                if let Some(Err(error)) = lost {
                                    reporter.lost(error);
                                }
                                stop = Some(Stop::Panic(panic, second));
                            }
                        }
                    }
                )+
                match stop {
                    None => {}
                    Some(Stop::Error(error)) => {
                        let mut cancel = Cancelling::new(reporter, None, None);
                        slots.as_mut().cancel_all(&mut cancel);
                        return Poll::Ready(Err(cancel.fail(error)));
                    }
                    Some(Stop::Panic(panic, second)) => {
                        let mut cancel = Cancelling::new(reporter, Some(panic), second);
                        slots.as_mut().cancel_all(&mut cancel);
                        cancel.resume()
                    }
                }
                let this = slots.project();
                if $(matches!(this.$o, Some(Ok(_))))&&+ {
                    if let ($(Some(Ok($o)),)+) = ($(this.$o.take(),)+) {
                        return Poll::Ready(Ok(($($o,)+)));
                    }
                }
                Poll::Pending
            }
        }
    )+};
}

tuples! {
    Slots1 { F1 T1 f1 o1 }
    Slots2 { F1 T1 f1 o1, F2 T2 f2 o2 }
    Slots3 { F1 T1 f1 o1, F2 T2 f2 o2, F3 T3 f3 o3 }
    Slots4 { F1 T1 f1 o1, F2 T2 f2 o2, F3 T3 f3 o3, F4 T4 f4 o4 }
    Slots5 { F1 T1 f1 o1, F2 T2 f2 o2, F3 T3 f3 o3, F4 T4 f4 o4, F5 T5 f5 o5 }
    Slots6 { F1 T1 f1 o1, F2 T2 f2 o2, F3 T3 f3 o3, F4 T4 f4 o4, F5 T5 f5 o5, F6 T6 f6 o6 }
    Slots7 { F1 T1 f1 o1, F2 T2 f2 o2, F3 T3 f3 o3, F4 T4 f4 o4, F5 T5 f5 o5, F6 T6 f6 o6, F7 T7 f7 o7 }
    Slots8 { F1 T1 f1 o1, F2 T2 f2 o2, F3 T3 f3 o3, F4 T4 f4 o4, F5 T5 f5 o5, F6 T6 f6 o6, F7 T7 f7 o7, F8 T8 f8 o8 }
    Slots9 { F1 T1 f1 o1, F2 T2 f2 o2, F3 T3 f3 o3, F4 T4 f4 o4, F5 T5 f5 o5, F6 T6 f6 o6, F7 T7 f7 o7, F8 T8 f8 o8, F9 T9 f9 o9 }
    Slots10 { F1 T1 f1 o1, F2 T2 f2 o2, F3 T3 f3 o3, F4 T4 f4 o4, F5 T5 f5 o5, F6 T6 f6 o6, F7 T7 f7 o7, F8 T8 f8 o8, F9 T9 f9 o9, F10 T10 f10 o10 }
    Slots11 { F1 T1 f1 o1, F2 T2 f2 o2, F3 T3 f3 o3, F4 T4 f4 o4, F5 T5 f5 o5, F6 T6 f6 o6, F7 T7 f7 o7, F8 T8 f8 o8, F9 T9 f9 o9, F10 T10 f10 o10, F11 T11 f11 o11 }
    Slots12 { F1 T1 f1 o1, F2 T2 f2 o2, F3 T3 f3 o3, F4 T4 f4 o4, F5 T5 f5 o5, F6 T6 f6 o6, F7 T7 f7 o7, F8 T8 f8 o8, F9 T9 f9 o9, F10 T10 f10 o10, F11 T11 f11 o11, F12 T12 f12 o12 }
}

/// The future of [`gather!`](crate::gather!): the tuple of the futures'
/// values, or the first error.
///
/// ```
/// use awith::{GatherTuple, gather};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let gathered: GatherTuple<_> = gather!(async { Ok::<_, ()>(1) }, async { Ok("one") });
/// assert_eq!(gathered.await, Ok((1, "one")));
/// # }
/// ```
#[pin_project]
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct GatherTuple<Fs: FutureTuple> {
    #[pin]
    slots: Fs::Slots,
    rt: Option<Runtime>,
    done: bool,
}

impl<Fs: TryFutureTuple> GatherTuple<Fs> {
    /// The gather of a tuple of futures: what [`gather!(a, b, c)`](crate::gather!)
    /// expands to (`GatherTuple::new((a, b, c))`).
    ///
    /// ```
    /// use awith::GatherTuple;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let both = GatherTuple::new((async { Ok::<_, ()>(1) }, async { Ok('a') }));
    /// assert_eq!(both.await, Ok((1, 'a')));
    /// # }
    /// ```
    ///
    /// # Cancellation
    ///
    /// As for [`gather!`](crate::gather!).
    pub fn new(futures: Fs) -> Self {
        GatherTuple {
            slots: futures.into_slots(),
            rt: None,
            done: false,
        }
    }
}

impl<Fs: FutureTuple> GatherTuple<Fs> {
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
    /// let pair = gather!(async { Ok::<_, std::io::Error>(1) }, async { Ok("a") })
    ///     .report_to(&rt)
    ///     .await?;
    /// assert_eq!(pair, (1, "a"));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancellation
    ///
    /// As for [`gather!`](crate::gather!); only where the failures nobody
    /// can receive go changes.
    pub fn report_to(mut self, rt: &Runtime) -> Self {
        self.rt = Some(rt.clone());
        self
    }
}

impl<Fs: FutureTuple> fmt::Debug for GatherTuple<Fs> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatherTuple")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<Fs: TryFutureTuple> Future for GatherTuple<Fs> {
    type Output = Result<Fs::Ok, Fs::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        assert!(!*this.done, "`GatherTuple` polled after it completed");
        let output = std::task::ready!(Fs::poll_try(this.slots, cx, this.rt.as_ref()));
        *this.done = true;
        Poll::Ready(output)
    }
}

/// The future of [`gather_all!`](crate::gather_all!): the tuple of every
/// output.
///
/// ```
/// use awith::{GatherAllTuple, gather_all};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let gathered: GatherAllTuple<_> = gather_all!(async { 1 }, async { "one" });
/// assert_eq!(gathered.await, (1, "one"));
/// # }
/// ```
#[pin_project]
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct GatherAllTuple<Fs: FutureTuple> {
    #[pin]
    slots: Fs::Slots,
    rt: Option<Runtime>,
    done: bool,
}

impl<Fs: FutureTuple> GatherAllTuple<Fs> {
    /// The gather of a tuple of futures to their ends: what
    /// [`gather_all!(a, b, c)`](crate::gather_all!) expands to
    /// (`GatherAllTuple::new((a, b, c))`).
    ///
    /// ```
    /// use awith::GatherAllTuple;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let both = GatherAllTuple::new((async { 1 }, async { Err::<(), _>('a') }));
    /// assert_eq!(both.await, (1, Err('a')));
    /// # }
    /// ```
    ///
    /// # Cancellation
    ///
    /// As for [`gather_all!`](crate::gather_all!).
    pub fn new(futures: Fs) -> Self {
        GatherAllTuple {
            slots: futures.into_slots(),
            rt: None,
            done: false,
        }
    }

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
    /// let pair = gather_all!(async { 1 }, async { "a" }).report_to(&rt).await;
    /// assert_eq!(pair, (1, "a"));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancellation
    ///
    /// As for [`gather_all!`](crate::gather_all!); only where the failures
    /// nobody can receive go changes.
    pub fn report_to(mut self, rt: &Runtime) -> Self {
        self.rt = Some(rt.clone());
        self
    }
}

impl<Fs: FutureTuple> fmt::Debug for GatherAllTuple<Fs> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatherAllTuple")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<Fs: FutureTuple> Future for GatherAllTuple<Fs> {
    type Output = Fs::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        assert!(!*this.done, "`GatherAllTuple` polled after it completed");
        let output = std::task::ready!(Fs::poll_all(this.slots, cx, this.rt.as_ref()));
        *this.done = true;
        Poll::Ready(output)
    }
}
