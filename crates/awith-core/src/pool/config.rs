//! [`PoolBuilder`]: a pool's settings, checked when it is built;
//! [`PoolConfigError`], a setting that cannot work.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::maintenance;
use super::state::State;
use super::{Inner, Manager, Pool};
use crate::rt::Runtime;
use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Mutex};

/// A [`PoolBuilder`] setting that cannot work, or a [`Pool::resize`] to a
/// size that cannot.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolConfigError {
    /// `max_size` is zero: every checkout would wait forever.
    ZeroMaxSize,
    /// `min_idle` is above `max_size`.
    MinIdleAboveMaxSize {
        /// The `min_idle` asked for.
        min_idle: usize,
        /// The `max_size` it exceeds.
        max_size: usize,
    },
    /// A bound that must be above zero is zero.
    Zero(&'static str),
    /// The runtime refused the pool's task (wait timeouts, maintenance):
    /// it has shut down.
    RuntimeShutDown {
        /// The runtime's name.
        runtime: &'static str,
    },
}

impl fmt::Display for PoolConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolConfigError::ZeroMaxSize => {
                f.write_str("a pool's `max_size` is zero: every checkout would wait forever")
            }
            PoolConfigError::MinIdleAboveMaxSize { min_idle, max_size } => write!(
                f,
                "a pool's `min_idle` ({min_idle}) is above its `max_size` ({max_size})"
            ),
            PoolConfigError::RuntimeShutDown { runtime } => write!(
                f,
                "the {runtime} runtime has shut down: the pool's task (wait timeouts, \
                 maintenance) cannot run"
            ),
            PoolConfigError::Zero(what) => {
                write!(f, "a pool's `{what}` is zero: leave it unset for no bound")
            }
        }
    }
}

impl std::error::Error for PoolConfigError {}

/// Configures a [`Pool`]; [`build`](Self::build) checks the settings.
#[must_use = "a builder does nothing until `build` is called"]
pub struct PoolBuilder<M> {
    pub(super) manager: M,
    pub(super) max_size: usize,
    pub(super) min_idle: usize,
    pub(super) timeouts: Timeouts,
    pub(super) max_lifetime: Option<Duration>,
    pub(super) idle_timeout: Option<Duration>,
    pub(super) maintenance_interval: Duration,
}

impl<M> fmt::Debug for PoolBuilder<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("max_size", &self.max_size)
            .field("min_idle", &self.min_idle)
            .field("timeouts", &self.timeouts)
            .field("max_lifetime", &self.max_lifetime)
            .field("idle_timeout", &self.idle_timeout)
            .field("maintenance_interval", &self.maintenance_interval)
            .finish_non_exhaustive()
    }
}

/// The pool's bounds on its waits and on the manager's work.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Timeouts {
    pub(super) wait: Option<Duration>,
    pub(super) create: Option<Duration>,
    /// Also bounds [`Manager::reset`].
    pub(super) recycle: Option<Duration>,
}

impl<M: Manager> PoolBuilder<M> {
    /// The most objects at once (default: four per CPU, like deadpool).
    pub fn max_size(mut self, max_size: usize) -> Self {
        self.max_size = max_size;
        self
    }

    /// Idle objects to keep ready: the pool creates them in the background
    /// (default: none), each in a task of its own, so that a slow or hung
    /// [`Manager::create`] holds up no waiter's timeout. A top-up that fails
    /// or panics frees its slot and is reported as an
    /// [`Incident`](crate::rt::Incident); the next round tries again.
    pub fn min_idle(mut self, min_idle: usize) -> Self {
        self.min_idle = min_idle;
        self
    }

    /// How long a checkout waits for an object to come free (default:
    /// forever). Zero means: take one if free, else fail at once. A checkout
    /// that does not have to wait sets no timer.
    pub fn wait_timeout(mut self, after: Duration) -> Self {
        self.timeouts.wait = Some(after);
        self
    }

    /// A bound on [`Manager::create`] (default: none).
    pub fn create_timeout(mut self, after: Duration) -> Self {
        self.timeouts.create = Some(after);
        self
    }

    /// A bound on [`Manager::recycle`], and on [`Manager::reset`] (default:
    /// none).
    pub fn recycle_timeout(mut self, after: Duration) -> Self {
        self.timeouts.recycle = Some(after);
        self
    }

    /// Objects older than this are destroyed instead of reused (default:
    /// no limit).
    pub fn max_lifetime(mut self, after: Duration) -> Self {
        self.max_lifetime = Some(after);
        self
    }

    /// Objects idle for longer than this are destroyed (default: no limit).
    pub fn idle_timeout(mut self, after: Duration) -> Self {
        self.idle_timeout = Some(after);
        self
    }

    /// How often the pool's task tops up `min_idle` and destroys expired idle
    /// objects (default: 1 s).
    ///
    /// The pool has a task of its own (on the runtime it is built on) only
    /// when it needs one: for `min_idle`, `max_lifetime` or `idle_timeout`,
    /// and for the wait timeout — one timer for the whole queue, its head's
    /// deadline, since everyone waits as long and the first in is the first
    /// due; not a timer per waiter. That task runs no user code: it starts
    /// the top-ups and the destroys as tasks of their own, so a waiter's
    /// timeout never waits for the manager. The task ends when the pool is
    /// closed or dropped.
    pub fn maintenance_interval(mut self, every: Duration) -> Self {
        self.maintenance_interval = every;
        self
    }

    /// The pool, on `rt`.
    ///
    /// # Errors
    ///
    /// [`PoolConfigError`] for a zero `max_size`, a `min_idle` above it, or a
    /// zero create or recycle timeout, lifetime, idle timeout or interval;
    /// [`PoolConfigError::RuntimeShutDown`] when the pool needs its task and
    /// the runtime refuses it.
    pub fn build(self, rt: &Runtime) -> Result<Pool<M>, PoolConfigError> {
        if self.max_size == 0 {
            return Err(PoolConfigError::ZeroMaxSize);
        }
        if self.min_idle > self.max_size {
            return Err(PoolConfigError::MinIdleAboveMaxSize {
                min_idle: self.min_idle,
                max_size: self.max_size,
            });
        }
        for (what, bound) in [
            ("create_timeout", self.timeouts.create),
            ("recycle_timeout", self.timeouts.recycle),
            ("max_lifetime", self.max_lifetime),
            ("idle_timeout", self.idle_timeout),
            ("maintenance_interval", Some(self.maintenance_interval)),
        ] {
            if bound == Some(Duration::ZERO) {
                return Err(PoolConfigError::Zero(what));
            }
        }
        let maintained =
            self.min_idle > 0 || self.max_lifetime.is_some() || self.idle_timeout.is_some();
        let inner = Arc::new(Inner {
            manager: Arc::new(self.manager),
            rt: rt.clone(),
            timeouts: self.timeouts,
            max_lifetime: self.max_lifetime,
            idle_timeout: self.idle_timeout,
            state: Mutex::new(State::new(self.max_size, self.min_idle)),
            closed: AtomicBool::new(false),
            recycled: AtomicU64::new(0),
            recycle_failed: AtomicU64::new(0),
            task: Arc::default(),
            handles: AtomicUsize::new(1),
        });
        let timed = self.timeouts.wait.is_some_and(|after| !after.is_zero());
        if maintained || timed {
            let every = maintained.then_some(self.maintenance_interval);
            maintenance::start(&inner, every).map_err(|refused| {
                PoolConfigError::RuntimeShutDown {
                    runtime: refused.runtime(),
                }
            })?;
        }
        Ok(Pool { inner })
    }
}
