//! What a scope returns when something failed: [`ScopeError`].

use std::fmt;
use std::time::Duration;

/// Why a scope failed: `E` is the body's error, `R` the resource's own
/// (acquire and release) error.
///
/// No error is dropped on the way: when the body fails and its release fails
/// too, the body's error is primary and the release's failure travels with it
/// in [`ScopeError::Body::release`] — like Java's suppressed exceptions.
///
/// # Examples
///
/// ```
/// use awith_core::{ReleaseFailure, ScopeError};
///
/// let err: ScopeError<&str, &str> = ScopeError::Body {
///     error: "query failed",
///     release: Some(ReleaseFailure::Error("connection reset")),
/// };
/// assert_eq!(err.body_error(), Some(&"query failed"));
/// assert_eq!(
///     err.to_string(),
///     "query failed (and the release failed too: connection reset)"
/// );
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeError<E, R> {
    /// Acquiring the resource failed: the body never ran, nothing was released.
    Acquire(R),
    /// The body failed. The release ran and saw [`Exit::Failed`](crate::Exit::Failed);
    /// if the release failed as well, that failure is kept here.
    Body {
        /// The body's error: the primary error of the scope.
        error: E,
        /// The release's own failure, if it failed too.
        release: Option<ReleaseFailure<R>>,
    },
    /// The body succeeded but the release failed. The body's value is dropped:
    /// a scope whose release failed did not complete.
    Release(ReleaseFailure<R>),
}

impl<E, R> ScopeError<E, R> {
    /// The body's error, for [`ScopeError::Body`].
    pub fn body_error(&self) -> Option<&E> {
        match self {
            ScopeError::Body { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The release's failure, from [`ScopeError::Release`] or carried by
    /// [`ScopeError::Body`].
    pub fn release_failure(&self) -> Option<&ReleaseFailure<R>> {
        match self {
            ScopeError::Body { release, .. } => release.as_ref(),
            ScopeError::Release(failure) => Some(failure),
            ScopeError::Acquire(_) => None,
        }
    }

    /// The acquire's error, for [`ScopeError::Acquire`].
    pub fn acquire_error(&self) -> Option<&R> {
        match self {
            ScopeError::Acquire(error) => Some(error),
            _ => None,
        }
    }

    /// Converts the body's error, keeping everything else.
    ///
    /// ```
    /// use awith_core::ScopeError;
    ///
    /// let err: ScopeError<u8, ()> = ScopeError::Body { error: 7, release: None };
    /// assert_eq!(err.map_body(u32::from).body_error(), Some(&7u32));
    /// ```
    pub fn map_body<F>(self, f: impl FnOnce(E) -> F) -> ScopeError<F, R> {
        match self {
            ScopeError::Acquire(error) => ScopeError::Acquire(error),
            ScopeError::Body { error, release } => ScopeError::Body {
                error: f(error),
                release,
            },
            ScopeError::Release(failure) => ScopeError::Release(failure),
        }
    }
}

impl<E: fmt::Display, R: fmt::Display> fmt::Display for ScopeError<E, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeError::Acquire(error) => write!(f, "acquiring the resource failed: {error}"),
            ScopeError::Body {
                error,
                release: None,
            } => write!(f, "{error}"),
            ScopeError::Body {
                error,
                release: Some(failure),
            } => write!(f, "{error} (and the release failed too: {failure})"),
            ScopeError::Release(failure) => {
                write!(
                    f,
                    "the body completed but releasing the resource failed: {failure}"
                )
            }
        }
    }
}

/// `ScopeError` is an error whenever both parts can be shown: it does not ask
/// for `E: Error`, so bodies that fail with `anyhow::Error` (which is not a
/// `std::error::Error`) still get a `ScopeError` that `?` accepts.
impl<E, R> std::error::Error for ScopeError<E, R>
where
    E: fmt::Debug + fmt::Display,
    R: fmt::Debug + fmt::Display,
{
}

/// How a release failed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseFailure<R> {
    /// The release returned an error.
    Error(R),
    /// The release did not finish within the resource's release timeout and
    /// was dropped.
    TimedOut(Duration),
}

impl<R> ReleaseFailure<R> {
    /// The release's error, for [`ReleaseFailure::Error`].
    ///
    /// ```
    /// use awith_core::ReleaseFailure;
    ///
    /// assert_eq!(ReleaseFailure::Error(5).error(), Some(&5));
    /// ```
    pub fn error(&self) -> Option<&R> {
        match self {
            ReleaseFailure::Error(error) => Some(error),
            ReleaseFailure::TimedOut(_) => None,
        }
    }
}

impl<R: fmt::Display> fmt::Display for ReleaseFailure<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReleaseFailure::Error(error) => fmt::Display::fmt(error, f),
            ReleaseFailure::TimedOut(after) => write!(f, "release timed out after {after:?}"),
        }
    }
}
