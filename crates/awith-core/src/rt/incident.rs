//! [`Incident`]s: what went wrong where no caller was left to tell, and
//! [`CleanupKind`], what a cleanup task was doing.

use std::fmt;
use std::time::Duration;

/// Which piece of work a cleanup task is doing.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CleanupKind {
    /// Finishing an acquire whose scope was cancelled, then releasing what it
    /// yielded.
    FinishAcquire,
    /// Releasing a resource whose scope was cancelled in its body or during
    /// its release.
    Release,
    /// Waiting for the children of a cancelled task group to end.
    Children,
    /// Destroying an object a pool let go of (`Manager::destroy`): refused
    /// on its return, expired, cut, at close, or left in a dropped pool.
    Destroy,
    /// Rolling back a transaction scope that was cancelled with its
    /// transaction (or savepoint) open, on the connection it borrowed
    /// ([`TxConn`](crate::tx::TxConn)).
    Rollback,
}

impl fmt::Display for CleanupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CleanupKind::FinishAcquire => "finishing the acquire of a cancelled scope",
            CleanupKind::Release => "the release of a cancelled scope",
            CleanupKind::Children => "the end of a cancelled task group's children",
            CleanupKind::Destroy => "destroying a pool's object",
            CleanupKind::Rollback => "the rollback of a cancelled transaction scope",
        })
    }
}

/// Something went wrong where no caller was left to tell: reported to the
/// runtime's incident hook (by default, printed to stderr) and counted in
/// [`CleanupStats`](super::CleanupStats).
///
/// ```
/// use awith::rt::{CleanupKind, Incident};
///
/// let incident = Incident::CleanupFailed {
///     kind: CleanupKind::Release,
///     error: "connection reset".into(),
/// };
/// assert_eq!(
///     incident.to_string(),
///     "awith: the release of a cancelled scope failed: connection reset"
/// );
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incident {
    /// The runtime refused a cleanup task (it has shut down): the cleanup never
    /// ran. The resource's value was dropped without its release.
    CleanupRefused {
        /// What the cleanup was for.
        kind: CleanupKind,
        /// The runtime's name.
        runtime: &'static str,
    },
    /// The runtime accepted a cleanup task but dropped it before it finished
    /// (it shut down).
    CleanupAbandoned {
        /// What the cleanup was for.
        kind: CleanupKind,
        /// The runtime's name.
        runtime: &'static str,
    },
    /// A cleanup did not finish in time and was dropped.
    CleanupTimedOut {
        /// What the cleanup was for.
        kind: CleanupKind,
        /// The bound it exceeded.
        after: Duration,
    },
    /// A cleanup panicked.
    CleanupPanicked {
        /// What the cleanup was for.
        kind: CleanupKind,
        /// The panic's message.
        message: String,
    },
    /// A cleanup's release returned an error.
    CleanupFailed {
        /// What the cleanup was for.
        kind: CleanupKind,
        /// The error, formatted with `Debug`.
        error: String,
    },
    /// The body panicked and then its release failed; the body's panic resumes.
    ReleaseFailedDuringPanic {
        /// The release's error, formatted with `Debug`.
        error: String,
    },
    /// The body panicked and then its release timed out; the body's panic resumes.
    ReleaseTimedOutDuringPanic {
        /// The release timeout.
        after: Duration,
    },
    /// A second panic while a first one is about to resume: the body
    /// panicked and then its release (or an exit of a stack) panicked too —
    /// a release panic never masks the body's — or a task group's body or
    /// children panicked more than once (the first panic resumes).
    ReleasePanickedDuringPanic {
        /// The release panic's message; for a named task group child,
        /// followed by ``(in task `name`)``.
        message: String,
    },
    /// An error that could not be returned because a panic resumes instead
    /// (a task group whose child panicked while another failed; a release
    /// that panicked after the body had failed).
    ErrorLostToPanic {
        /// The error, formatted with `Debug`; for a named task group child,
        /// followed by ``(in task `name`)``.
        error: String,
    },
    /// User code that awith ran in the background failed, and the
    /// background work went on (a pool's top-up to `min_idle`, whose
    /// `Manager::create` failed: it tries again next round).
    BackgroundFailed {
        /// What the background work was.
        work: &'static str,
        /// The error, formatted with `Debug`.
        error: String,
    },
    /// User code that awith ran in the background panicked; the panic was
    /// caught and the background work went on, its books kept.
    BackgroundPanicked {
        /// What the background work was.
        work: &'static str,
        /// The panic's message.
        message: String,
    },
    /// Work failed after the caller that would have received the failure had
    /// gone (a task group's future dropped after a child failed or
    /// panicked): nobody is left to return it to.
    Unreturned {
        /// What failed.
        work: &'static str,
        /// The error (formatted with `Debug`) or the panic's message; for a
        /// named task group child, followed by ``(in task `name`)``.
        failure: String,
    },
}

impl fmt::Display for Incident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Incident::CleanupRefused { kind, runtime } => write!(
                f,
                "awith: {kind} never ran: the {runtime} runtime has shut down and refused it"
            ),
            Incident::CleanupAbandoned { kind, runtime } => write!(
                f,
                "awith: {kind} did not finish: the {runtime} runtime dropped it (shut down)"
            ),
            Incident::CleanupTimedOut { kind, after } => {
                write!(f, "awith: {kind} timed out after {after:?} and was dropped")
            }
            Incident::CleanupPanicked { kind, message } => {
                write!(f, "awith: {kind} panicked: {message}")
            }
            Incident::CleanupFailed { kind, error } => write!(f, "awith: {kind} failed: {error}"),
            Incident::ReleaseFailedDuringPanic { error } => write!(
                f,
                "awith: the body panicked and its release failed too: {error}"
            ),
            Incident::ReleaseTimedOutDuringPanic { after } => write!(
                f,
                "awith: the body panicked and its release timed out after {after:?}"
            ),
            Incident::ReleasePanickedDuringPanic { message } => write!(
                f,
                "awith: the body panicked and its release panicked too: {message}"
            ),
            Incident::ErrorLostToPanic { error } => write!(
                f,
                "awith: a panic resumes, so this error cannot be returned: {error}"
            ),
            Incident::BackgroundFailed { work, error } => {
                write!(f, "awith: {work} failed (it goes on): {error}")
            }
            Incident::BackgroundPanicked { work, message } => {
                write!(f, "awith: {work} panicked (caught; it goes on): {message}")
            }
            Incident::Unreturned { work, failure } => write!(
                f,
                "awith: {work} failed after its caller had gone, so it cannot be returned: {failure}"
            ),
        }
    }
}
