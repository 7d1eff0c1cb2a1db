//! [`LockError`]: why a lock scope could not take, keep or give back its
//! lock; [`LostReason`]: how a lease was lost.

use std::fmt;
use std::time::Duration;

/// What went wrong with a [`Lock`](super::Lock), naming its key. `BE` is
/// the backend's error.
#[non_exhaustive]
#[derive(Debug)]
pub enum LockError<BE> {
    /// The lock was not taken within the lock's `wait`: someone else held it.
    Timeout {
        /// The lock's key.
        key: String,
        /// The lock's `wait`: how long an acquire may wait.
        wait: Duration,
        /// How long this acquire waited (its `wait`, and its last try).
        waited: Duration,
    },
    /// The backend failed (a lost connection, a refused command).
    Backend {
        /// The lock's key.
        key: String,
        /// What the scope was doing: `"acquire"` or `"release"`.
        during: &'static str,
        /// The backend's error.
        error: BE,
    },
    /// The backend did not answer in time.
    Unanswered {
        /// The lock's key.
        key: String,
        /// What the scope was doing: `"acquire"` or `"release"`.
        during: &'static str,
        /// How long it waited for the answer.
        after: Duration,
    },
    /// The lease was lost while the body ran on (under
    /// [`OnLost::Signal`](super::OnLost::Signal), or before the renewal
    /// noticed): the body's work was not covered by the lock to its end.
    Lost {
        /// The lock's key.
        key: String,
        /// How it was lost.
        reason: LostReason,
    },
    /// The runtime refused the lock's renewal task: it has shut down. The
    /// key was taken, then given back (or, if `given_back` is false, the
    /// backend could not be told: it frees itself when the lease runs out).
    RuntimeShutDown {
        /// The lock's key.
        key: String,
        /// Whether the key was given back.
        given_back: bool,
    },
}

impl<BE> LockError<BE> {
    /// The key of the lock this error is about.
    pub fn key(&self) -> &str {
        match self {
            LockError::Timeout { key, .. }
            | LockError::Backend { key, .. }
            | LockError::Unanswered { key, .. }
            | LockError::Lost { key, .. }
            | LockError::RuntimeShutDown { key, .. } => key,
        }
    }
}

impl<BE: fmt::Display> fmt::Display for LockError<BE> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Timeout { key, wait, .. } => {
                write!(
                    f,
                    "lock `{key}` not acquired within {wait:?}: it is held by another"
                )
            }
            LockError::Backend { key, during, error } => {
                write!(f, "lock `{key}`: {during} failed: {error}")
            }
            LockError::Unanswered { key, during, after } => {
                write!(f, "lock `{key}`: {during} got no answer within {after:?}")
            }
            LockError::Lost { key, reason } => write!(f, "lock `{key}` was lost: {reason}"),
            LockError::RuntimeShutDown { key, given_back } => write!(
                f,
                "lock `{key}`: the runtime has shut down, so the lease cannot be renewed ({})",
                if *given_back {
                    "the lock was given back"
                } else {
                    "giving it back failed too: it frees itself when the lease runs out"
                }
            ),
        }
    }
}

impl<BE: std::error::Error + 'static> std::error::Error for LockError<BE> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LockError::Backend { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// How a lease was lost.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LostReason {
    /// The backend refused to extend it: the lease had run out, or the key
    /// was deleted or taken by another holder.
    Refused,
    /// It ran out before an extension succeeded: the backend failed, did
    /// not answer, or the holder was paused past the time to live.
    Expired {
        /// The last failure, if an extension failed.
        last_error: Option<String>,
    },
    /// It was gone when the lock was given back, before the renewal had
    /// noticed.
    GoneAtRelease,
}

impl fmt::Display for LostReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LostReason::Refused => f.write_str(
                "the backend refused to extend the lease (it ran out, or the key was deleted \
                 or taken)",
            ),
            LostReason::Expired { last_error: None } => {
                f.write_str("the lease ran out before it could be extended")
            }
            LostReason::Expired {
                last_error: Some(error),
            } => write!(f, "the lease ran out before it could be extended ({error})"),
            LostReason::GoneAtRelease => {
                f.write_str("the lease was gone when the lock was given back")
            }
        }
    }
}
