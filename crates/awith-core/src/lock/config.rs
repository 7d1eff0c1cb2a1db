//! [`LockBuilder`]: a lock's settings, checked when it is built;
//! [`LockConfigError`], a setting that cannot work.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{Lock, LockBackend, Shared};
use crate::rt::Runtime;

/// What a held lock does to its body when its lease is lost (the backend
/// refused to extend it, or no extension succeeded before it ran out).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnLost {
    /// The body is cancelled (dropped); the release is told
    /// `Exit::Cancelled(Cancel::LockLost)` and the scope fails with
    /// `ScopeError::BodyCancelled`. The default: a body that relies on the
    /// lock never runs on without it.
    #[default]
    Cancel,
    /// The body goes on; [`Lease::lost`](super::Lease::lost) and
    /// [`Lease::is_lost`](super::Lease::is_lost) tell it, and the release
    /// fails with [`LockError::Lost`](super::LockError::Lost) if the body
    /// completes anyway.
    Signal,
}

/// A [`LockBuilder`] setting that cannot work.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockConfigError {
    /// The key is empty.
    EmptyKey,
    /// The time to live is zero: the lease would be lost as it is taken.
    ZeroTtl,
    /// The time to live is too large for the runtime's clock (or for a
    /// backend counting in milliseconds).
    TtlTooLarge(Duration),
    /// A backoff bound is zero.
    ZeroBackoff,
    /// The smallest backoff is above the largest.
    BackoffMinAboveMax {
        /// The smallest backoff asked for.
        min: Duration,
        /// The largest.
        max: Duration,
    },
    /// The runtime refuses tasks (it has shut down): the lease could never
    /// be renewed.
    RuntimeShutDown {
        /// The runtime's name.
        runtime: &'static str,
    },
}

impl fmt::Display for LockConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockConfigError::EmptyKey => f.write_str("a lock's key is empty"),
            LockConfigError::ZeroTtl => {
                f.write_str("a lock's `ttl` is zero: the lease would be lost as it is taken")
            }
            LockConfigError::TtlTooLarge(ttl) => {
                write!(
                    f,
                    "a lock's `ttl` ({ttl:?}) is too large (at most {MAX_TTL:?})"
                )
            }
            LockConfigError::ZeroBackoff => f.write_str("a lock's backoff bound is zero"),
            LockConfigError::BackoffMinAboveMax { min, max } => write!(
                f,
                "a lock's smallest backoff ({min:?}) is above its largest ({max:?})"
            ),
            LockConfigError::RuntimeShutDown { runtime } => write!(
                f,
                "the {runtime} runtime has shut down: a lock's lease could never be renewed"
            ),
        }
    }
}

impl std::error::Error for LockConfigError {}

/// The largest time to live: a year (a lease meant to outlive its holder is
/// not a lease).
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// Configures a [`Lock`]; [`build`](Self::build) checks the settings.
#[must_use = "a builder does nothing until `build` is called"]
pub struct LockBuilder<B> {
    backend: B,
    key: String,
    ttl: Duration,
    wait: Option<Duration>,
    backoff: (Duration, Duration),
    on_lost: OnLost,
}

impl<B> fmt::Debug for LockBuilder<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockBuilder")
            .field("key", &self.key)
            .field("ttl", &self.ttl)
            .field("wait", &self.wait)
            .field("backoff", &self.backoff)
            .field("on_lost", &self.on_lost)
            .finish_non_exhaustive()
    }
}

impl<B: LockBackend> LockBuilder<B> {
    pub(super) fn new(backend: B, key: String) -> Self {
        LockBuilder {
            backend,
            key,
            ttl: Duration::from_secs(30),
            wait: None,
            backoff: (Duration::from_millis(5), Duration::from_millis(250)),
            on_lost: OnLost::Cancel,
        }
    }

    /// How long a lease lasts unless renewed (default: 30 s). While the
    /// scope holds the lock it renews the lease every `ttl / 3`; a holder
    /// that dies (or stops) loses it after at most `ttl`.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long an acquire waits for the lock before it fails with
    /// [`LockError::Timeout`](super::LockError::Timeout) (default: no
    /// bound). `Duration::ZERO` tries once.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = Some(wait);
        self
    }

    /// The pause between tries while the lock is held by someone else:
    /// from `min`, doubling up to `max`, each with random jitter (a pause
    /// of `d` lasts between `d / 2` and `d`). Default: 5 ms to 250 ms. A
    /// backend that signals releases ([`LockBackend::waiter`]) wakes a
    /// waiter sooner; the backoff is then only the fallback.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff = (min, max);
        self
    }

    /// What a lost lease does to the body (default: [`OnLost::Cancel`]).
    pub fn on_lost(mut self, on_lost: OnLost) -> Self {
        self.on_lost = on_lost;
        self
    }

    /// Checks the settings and makes the lock, on `rt` (its sleeps,
    /// renewals and cleanups run there).
    ///
    /// # Errors
    ///
    /// [`LockConfigError`] for a setting that cannot work.
    pub fn build(self, rt: &Runtime) -> Result<Lock<B>, LockConfigError> {
        if self.key.is_empty() {
            return Err(LockConfigError::EmptyKey);
        }
        if self.ttl.is_zero() {
            return Err(LockConfigError::ZeroTtl);
        }
        if self.ttl > MAX_TTL || rt.now().checked_add(self.ttl).is_none() {
            return Err(LockConfigError::TtlTooLarge(self.ttl));
        }
        let (min, max) = self.backoff;
        if min.is_zero() || max.is_zero() {
            return Err(LockConfigError::ZeroBackoff);
        }
        if min > max {
            return Err(LockConfigError::BackoffMinAboveMax { min, max });
        }
        // A runtime that refuses tasks could never renew a lease: said now,
        // not at the first acquire.
        if rt.spawn(async {}).is_err() {
            return Err(LockConfigError::RuntimeShutDown { runtime: rt.name() });
        }
        Ok(Lock {
            shared: Arc::new(Shared {
                backend: self.backend,
                key: Arc::from(self.key),
                ttl: self.ttl,
                wait: self.wait,
                backoff: self.backoff,
                on_lost: self.on_lost,
                rt: rt.clone(),
                renewals: super::renew::Renewals::default(),
            }),
        })
    }
}
