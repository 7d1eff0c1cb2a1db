//! What a release may say about a failed body's error: [`Verdict`], and the
//! sealed [`ReleaseVerdict`] that picks a scope's output type.

/// What a release may say about a failed body's error, like the return value
/// of Python's `__aexit__`.
///
/// A resource whose release returns `Verdict` makes
/// [`ResourceExt::with`](crate::ResourceExt::with) return `Ok(Option<U>)`:
/// `None` when the release suppressed the body's error. `Suppress` only acts
/// on [`Exit::Failed`](crate::Exit::Failed); after a completed body it changes
/// nothing, and it cannot stop a panic or a cancellation.
///
/// # Examples
///
/// ```
/// use awith_core::reference::Reference;
/// use awith_core::{resource_inspecting, Exit, ResourceExt, Verdict};
///
/// #[derive(Debug, PartialEq)]
/// enum Error { NotFound, Broken }
///
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
/// let reference = Reference::new();
/// let rt = reference.runtime();
/// let missing = reference.block_on(ignore_missing().with(&rt, async |()| Err::<u8, _>(Error::NotFound)));
/// assert_eq!(missing.unwrap().unwrap(), None);
/// let broken = reference.block_on(ignore_missing().with(&rt, async |()| Err::<u8, _>(Error::Broken)));
/// assert_eq!(broken.unwrap().unwrap_err().body_error(), Some(&Error::Broken));
/// let fine = reference.block_on(ignore_missing().with(&rt, async |()| Ok::<u8, Error>(1)));
/// assert_eq!(fine.unwrap().unwrap(), Some(1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Let the body's error propagate.
    Propagate,
    /// Suppress the body's error: the scope returns `Ok(None)`.
    Suppress,
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for () {}
    impl Sealed for super::Verdict {}
}

/// The successful result of a release: `()` (it cannot suppress) or
/// [`Verdict`] (it may). Sealed.
///
/// It picks the `Ok` type of a scope: `U` for `()`, `Option<U>` for `Verdict`.
pub trait ReleaseVerdict: sealed::Sealed + Send + 'static {
    /// The `Ok` type of a scope whose body returns `Ok(U)`.
    type Output<U>;

    /// The scope's output after a completed body.
    fn completed<U>(output: U) -> Self::Output<U>;

    /// `true` when this verdict suppresses a failed body's error.
    fn suppresses(&self) -> bool;

    /// The scope's output after a failed body whose error was suppressed.
    /// Only called when [`suppresses`](Self::suppresses) returned `true`.
    fn suppressed<U>() -> Self::Output<U>;

    /// The verdict that suppresses exactly when `suppress` is `true`; for
    /// `()`, which cannot suppress, the flag is ignored.
    fn from_flag(suppress: bool) -> Self;
}

impl ReleaseVerdict for () {
    type Output<U> = U;

    fn completed<U>(output: U) -> U {
        output
    }

    fn suppresses(&self) -> bool {
        false
    }

    fn suppressed<U>() -> U {
        unreachable!("`()` never suppresses")
    }

    fn from_flag(_suppress: bool) -> Self {}
}

impl ReleaseVerdict for Verdict {
    type Output<U> = Option<U>;

    fn completed<U>(output: U) -> Option<U> {
        Some(output)
    }

    fn suppresses(&self) -> bool {
        *self == Verdict::Suppress
    }

    fn suppressed<U>() -> Option<U> {
        None
    }

    fn from_flag(suppress: bool) -> Self {
        if suppress {
            Verdict::Suppress
        } else {
            Verdict::Propagate
        }
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
