//! How a scope ended: [`Exit`] and the reasons for a cancellation, [`Cancel`].

use std::fmt;

/// How a scope ended, as its release sees it.
///
/// This is the Rust counterpart of the `(exc_type, exc, tb)` triple that
/// Python's `__aexit__` receives. A release gets `&Exit<'_, E>` where `E` is the
/// body's error type, so it can inspect a failure (and, for resources whose
/// release returns a [`Verdict`](crate::Verdict), suppress it).
///
/// # Examples
///
/// ```
/// use awith::{Cancel, Exit};
///
/// let err = std::io::Error::other("disk full");
/// let exit: Exit<'_, std::io::Error> = Exit::Failed(&err);
/// assert_eq!(exit.error().map(|e| e.to_string()).as_deref(), Some("disk full"));
/// assert!(Exit::<()>::Cancelled(Cancel::Dropped).is_cancelled());
/// assert_eq!(exit.to_string(), "failed");
/// ```
#[derive(Debug)]
pub enum Exit<'a, E> {
    /// The body returned `Ok`.
    Completed,
    /// The body returned `Err`; the error is lent to the release.
    Failed(&'a E),
    /// The body panicked. After the release, the panic resumes.
    Panicked,
    /// The scope was cancelled before the body finished.
    Cancelled(Cancel),
}

impl<E> Clone for Exit<'_, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for Exit<'_, E> {}

impl<'a, E> Exit<'a, E> {
    /// `true` for [`Exit::Completed`].
    pub fn is_completed(&self) -> bool {
        matches!(self, Exit::Completed)
    }

    /// `true` for [`Exit::Failed`].
    pub fn is_failed(&self) -> bool {
        matches!(self, Exit::Failed(_))
    }

    /// `true` for [`Exit::Panicked`].
    pub fn is_panicked(&self) -> bool {
        matches!(self, Exit::Panicked)
    }

    /// `true` for [`Exit::Cancelled`], whatever the reason.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Exit::Cancelled(_))
    }

    /// The body's error, for [`Exit::Failed`].
    pub fn error(&self) -> Option<&'a E> {
        match *self {
            Exit::Failed(error) => Some(error),
            _ => None,
        }
    }

    /// Why the scope was cancelled, for [`Exit::Cancelled`].
    pub fn cancel_reason(&self) -> Option<Cancel> {
        match *self {
            Exit::Cancelled(reason) => Some(reason),
            _ => None,
        }
    }

    /// The exit without the borrowed error: `Copy`, comparable, `'static`.
    ///
    /// ```
    /// use awith::{Exit, ExitKind};
    ///
    /// assert_eq!(Exit::<()>::Failed(&()).kind(), ExitKind::Failed);
    /// ```
    pub fn kind(&self) -> ExitKind {
        match *self {
            Exit::Completed => ExitKind::Completed,
            Exit::Failed(_) => ExitKind::Failed,
            Exit::Panicked => ExitKind::Panicked,
            Exit::Cancelled(reason) => ExitKind::Cancelled(reason),
        }
    }
}

impl<E> fmt::Display for Exit<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.kind(), f)
    }
}

/// An [`Exit`] without the error it lends: what logs and tests compare.
///
/// ```
/// use awith::{Cancel, ExitKind};
///
/// assert_eq!(ExitKind::Cancelled(Cancel::Timeout).to_string(), "cancelled (timeout)");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExitKind {
    /// See [`Exit::Completed`].
    Completed,
    /// See [`Exit::Failed`].
    Failed,
    /// See [`Exit::Panicked`].
    Panicked,
    /// See [`Exit::Cancelled`].
    Cancelled(Cancel),
}

impl ExitKind {
    /// `true` for [`ExitKind::Completed`].
    pub fn is_completed(self) -> bool {
        self == ExitKind::Completed
    }

    /// `true` for [`ExitKind::Failed`].
    pub fn is_failed(self) -> bool {
        self == ExitKind::Failed
    }

    /// `true` for [`ExitKind::Panicked`].
    pub fn is_panicked(self) -> bool {
        self == ExitKind::Panicked
    }

    /// `true` for [`ExitKind::Cancelled`], whatever the reason.
    pub fn is_cancelled(self) -> bool {
        matches!(self, ExitKind::Cancelled(_))
    }

    /// Why the scope was cancelled, for [`ExitKind::Cancelled`].
    pub fn cancel_reason(self) -> Option<Cancel> {
        match self {
            ExitKind::Cancelled(reason) => Some(reason),
            _ => None,
        }
    }
}

impl fmt::Display for ExitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitKind::Completed => f.write_str("completed"),
            ExitKind::Failed => f.write_str("failed"),
            ExitKind::Panicked => f.write_str("panicked"),
            ExitKind::Cancelled(reason) => write!(f, "cancelled ({reason})"),
        }
    }
}

/// Why a scope was cancelled.
///
/// ```
/// use awith::Cancel;
///
/// assert_eq!(Cancel::Dropped.to_string(), "dropped");
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cancel {
    /// The scope's future was dropped before it finished.
    Dropped,
    /// A deadline expired.
    Timeout,
    /// A sibling task in the same group failed.
    SiblingFailed,
    /// A lock that guarded the scope was lost.
    LockLost,
    /// Code asked for it: the body or a child cancelled its task group
    /// ([`TaskGroup::cancel`](crate::group::TaskGroup::cancel), anyio's
    /// `tg.cancel_scope.cancel(reason)`). The group keeps the text it was
    /// given: [`TaskGroup::cancel_reason`](crate::group::TaskGroup::cancel_reason),
    /// [`Spawner::cancel_reason`](crate::group::Spawner::cancel_reason), and
    /// in [`GroupError`](crate::group::GroupError)'s `Display`.
    ///
    /// (No text here: a `Cancel` with data made every scope's exit larger,
    /// and 4 nested scopes 152 instructions slower, measured.)
    Requested,
}

impl fmt::Display for Cancel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cancel::Dropped => "dropped",
            Cancel::Timeout => "timeout",
            Cancel::SiblingFailed => "sibling failed",
            Cancel::LockLost => "lock lost",
            Cancel::Requested => "requested",
        })
    }
}
