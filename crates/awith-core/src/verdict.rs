//! What a release may say about a failed body's error: [`Verdict`], and the
//! sealed [`ReleaseVerdict`] that picks the output type of a scope that may
//! suppress.

/// What a release may say about a failed body's error, like the return value
/// of Python's `__aexit__`.
///
/// Every release returns one ([`Resource::release`](crate::Resource::release));
/// a resource made with [`resource`](crate::resource) always says
/// `Propagate`. Suppression is asked for where the scope is run:
/// [`ResourceExt::with_suppression`](crate::ResourceExt::with_suppression)
/// returns `Ok(Option<U>)`, `None` when a release suppressed the body's
/// error. [`ResourceExt::with`](crate::ResourceExt::with) returns the
/// body's own output, so it cannot make one up: there the body's error is
/// returned even when a release said `Suppress` (nothing is lost, and no
/// signature has to name whether a resource suppresses).
///
/// `Suppress` only acts on [`Exit::Failed`](crate::Exit::Failed); after a
/// completed body it changes nothing, and it cannot stop a panic or a
/// cancellation.
///
/// # Examples
///
/// ```
/// use awith::{resource_inspecting, Exit, ResourceExt, Verdict};
///
/// #[derive(Debug, PartialEq)]
/// enum Error { NotFound, Broken }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rt = awith::runtime()?;
/// // Like `contextlib.suppress(FileNotFoundError)`.
/// let ignore_missing = || resource_inspecting(
///     || async { Ok::<_, Error>(()) },
///     |(), exit: &Exit<'_, Error>| {
///         let verdict = match exit {
///             Exit::Failed(Error::NotFound) => Verdict::Suppress,
///             _ => Verdict::Propagate,
///         };
///         async move { Ok(verdict) }
///     },
/// );
///
/// let missing = ignore_missing().with_suppression(&rt, async |()| Err::<u8, _>(Error::NotFound)).await;
/// assert!(matches!(missing, Ok(None)));
/// let broken = ignore_missing().with_suppression(&rt, async |()| Err::<u8, _>(Error::Broken)).await;
/// assert_eq!(broken.unwrap_err().body_error(), Some(&Error::Broken));
/// let fine = ignore_missing().with_suppression(&rt, async |()| Ok::<u8, Error>(1)).await;
/// assert!(matches!(fine, Ok(Some(1))));
/// // Run with `with`, the scope returns the body's error: it has no `u8` to return.
/// let plain = ignore_missing().with(&rt, async |()| Err::<u8, _>(Error::NotFound)).await;
/// assert_eq!(plain.unwrap_err().body_error(), Some(&Error::NotFound));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Let the body's error propagate.
    #[default]
    Propagate,
    /// Suppress the body's error: the scope returns `Ok(None)`.
    Suppress,
}

/// `()` is what a release that never suppresses returns: `Propagate`.
impl From<()> for Verdict {
    fn from((): ()) -> Self {
        Verdict::Propagate
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for () {}
    impl Sealed for super::Verdict {}
}

/// Whether a scope may suppress: `()` (it may not) or [`Verdict`] (it may).
/// Sealed.
///
/// It picks the `Ok` type of an [`ExitStack`](crate::stack::ExitStack)'s
/// scope (`U` for `()`, `Option<U>` for `Verdict`), and the verdicts an exit
/// pushed on it may return.
pub trait ReleaseVerdict: sealed::Sealed + Send + 'static {
    /// The `Ok` type of a scope whose body returns `Ok(U)`.
    type Output<U>;

    /// Whether a scope of this kind honours a release's
    /// `Verdict::Suppress`: `false` for `()`, `true` for [`Verdict`].
    const MAY_SUPPRESS: bool;

    /// The scope's output after a completed body.
    fn completed<U>(output: U) -> Self::Output<U>;

    /// `true` when this verdict suppresses a failed body's error.
    fn suppresses(&self) -> bool;

    /// The scope's output after a failed body whose error was suppressed.
    /// Only called when [`suppresses`](Self::suppresses) returned `true`.
    fn suppressed<U>() -> Self::Output<U>;
}

impl ReleaseVerdict for () {
    type Output<U> = U;

    const MAY_SUPPRESS: bool = false;

    fn completed<U>(output: U) -> U {
        output
    }

    fn suppresses(&self) -> bool {
        false
    }

    fn suppressed<U>() -> U {
        unreachable!("`()` never suppresses")
    }
}

impl ReleaseVerdict for Verdict {
    type Output<U> = Option<U>;

    const MAY_SUPPRESS: bool = true;

    fn completed<U>(output: U) -> Option<U> {
        Some(output)
    }

    fn suppresses(&self) -> bool {
        *self == Verdict::Suppress
    }

    fn suppressed<U>() -> Option<U> {
        None
    }
}

/// The verdict of a resource made of two: it can suppress when either part
/// can. Sealed; implemented for every pair of `()` and [`Verdict`].
pub trait JoinVerdict<Other: ReleaseVerdict>: ReleaseVerdict {
    /// `()` when neither part can suppress, [`Verdict`] otherwise.
    type Joined: ReleaseVerdict;
}

impl JoinVerdict<()> for () {
    type Joined = ();
}

impl JoinVerdict<Verdict> for () {
    type Joined = Verdict;
}

impl JoinVerdict<()> for Verdict {
    type Joined = Verdict;
}

impl JoinVerdict<Verdict> for Verdict {
    type Joined = Verdict;
}
