//! [`PoolError`], why a checkout or a close failed, and [`TimeoutKind`],
//! which of the pool's bounds passed.

use std::fmt;
use std::time::Duration;

#[cfg(doc)]
use super::{Manager, Pool};
#[cfg(doc)]
use crate::error::ScopeError;

/// Which wait of a pool timed out.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeoutKind {
    /// Waiting for an object to come free.
    Wait,
    /// [`Manager::create`].
    Create,
    /// [`Manager::recycle`].
    Recycle,
    /// [`Pool::close`] waiting for the checked-out objects.
    Close,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutKind::Wait => "wait",
            TimeoutKind::Create => "create",
            TimeoutKind::Recycle => "recycle",
            TimeoutKind::Close => "close",
        })
    }
}

/// Why a checkout (or a close) failed. `E` is the [`Manager::Error`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolError<E> {
    /// A wait of `kind` did not finish within `after`.
    Timeout {
        /// What timed out.
        kind: TimeoutKind,
        /// The bound that passed.
        after: Duration,
    },
    /// The pool is closed — also when it closed while the checkout was
    /// creating or recycling its object (which is then destroyed): no body
    /// starts after [`Pool::close`] has begun.
    Closed,
    /// [`Manager::create`] failed; the slot was freed.
    Create(E),
    /// [`Manager::recycle`] failed on an object whose scope had failed: the
    /// object was destroyed. This comes beside the body's error, in
    /// [`ScopeError::Body`]'s `release`.
    Recycle(E),
}

impl<E: fmt::Display> fmt::Display for PoolError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Timeout {
                kind: TimeoutKind::Wait,
                after,
            } => write!(
                f,
                "no pooled object came free within {after:?}: all are in use \
                 (raise `max_size` or the wait timeout, or hold objects for less time)"
            ),
            PoolError::Timeout {
                kind: TimeoutKind::Close,
                after,
            } => write!(
                f,
                "the pool closed, but objects checked out were not back within {after:?}"
            ),
            PoolError::Timeout { kind, after } => {
                write!(
                    f,
                    "the pool's manager did not {kind} an object within {after:?}"
                )
            }
            PoolError::Closed => f.write_str("the pool is closed"),
            PoolError::Create(error) => write!(f, "could not create a pooled object: {error}"),
            PoolError::Recycle(error) => write!(
                f,
                "the pooled object failed its recycle after its scope failed, \
                 and was destroyed: {error}"
            ),
        }
    }
}

/// As [`ScopeError`](crate::ScopeError): its `Display` tells the manager's
/// error (after what the pool was doing), and its `source` is that error's
/// source, so a chain printed whole repeats nothing.
impl<E: std::error::Error + 'static> std::error::Error for PoolError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PoolError::Create(error) | PoolError::Recycle(error) => error.source(),
            PoolError::Timeout { .. } | PoolError::Closed => None,
        }
    }
}
