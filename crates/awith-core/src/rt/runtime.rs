//! [`Runtime`]: a binding plus awith's cleanup registry, and its builder.

use std::fmt;
use std::future::Future;
use std::io::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cleanup::Registry;
use super::{Binding, Incident, Sleep, SpawnError};
use crate::sync::{Mutex, MutexGuard, lock};
use crate::util::panic_message;

/// A handle to an async runtime plus awith's cleanup registry. Cheap to clone;
/// clones share the registry.
///
/// Make one with `awith::runtime()` (the runtime the calling code runs on),
/// with an adapter (`awith::tokio::runtime()`, …), or for tests with
/// [`Reference`](crate::reference::Reference). (The examples here run on
/// tokio with its clock paused, so the times they show are exact; see the
/// [`reference`](crate::reference) runtime for tests.)
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let rt = awith::runtime()?; // the tokio runtime running this code
///     assert_eq!(rt.name(), "tokio");
///     let start = rt.now();
///     rt.sleep(Duration::from_secs(5)).await; // tokio's clock is paused: at once
///     assert_eq!(rt.now() - start, Duration::from_secs(5));
///     rt.drain(Duration::from_secs(5)).await?;
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct Runtime {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) binding: Box<dyn Binding>,
    cleanup_timeout: Option<Duration>,
    on_incident: Option<IncidentHook>,
    registry: Mutex<Registry>,
}

/// The runtime-bound hook that receives [`Incident`]s.
type IncidentHook = Arc<dyn Fn(&Incident) + Send + Sync + 'static>;

/// The default bound on a cleanup task: 30 seconds.
pub const DEFAULT_CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

impl Runtime {
    /// A runtime over `binding`, with the default cleanup timeout
    /// ([`DEFAULT_CLEANUP_TIMEOUT`]) and incidents printed to stderr.
    pub fn new(binding: impl Binding) -> Self {
        Runtime::from_parts(Box::new(binding), Some(DEFAULT_CLEANUP_TIMEOUT), None)
    }

    /// A builder, to set the cleanup timeout or the incident hook.
    ///
    /// ```
    /// use std::time::Duration;
    /// use awith::rt::{ConfigError, Runtime};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = Runtime::builder(awith::tokio::Tokio::current()?)
    ///     .cleanup_timeout(Duration::from_secs(5))
    ///     .on_incident(|incident| eprintln!("{incident}"))
    ///     .build()?;
    /// assert_eq!(rt.cleanup_timeout(), Some(Duration::from_secs(5)));
    ///
    /// let zero = Runtime::builder(awith::tokio::Tokio::current()?)
    ///     .cleanup_timeout(Duration::ZERO)
    ///     .build();
    /// assert!(matches!(zero, Err(ConfigError::ZeroCleanupTimeout)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(binding: impl Binding) -> RuntimeBuilder {
        RuntimeBuilder {
            binding: Box::new(binding),
            cleanup_timeout: Some(DEFAULT_CLEANUP_TIMEOUT),
            on_incident: None,
        }
    }

    fn from_parts(
        binding: Box<dyn Binding>,
        cleanup_timeout: Option<Duration>,
        on_incident: Option<IncidentHook>,
    ) -> Self {
        Runtime {
            inner: Arc::new(Inner {
                binding,
                cleanup_timeout,
                on_incident,
                registry: Mutex::new(Registry::default()),
            }),
        }
    }

    /// The binding's name, e.g. `"tokio"`.
    pub fn name(&self) -> &'static str {
        self.inner.binding.name()
    }

    /// The binding this runtime drives.
    pub fn binding(&self) -> &dyn Binding {
        &*self.inner.binding
    }

    /// Spawns a detached task.
    ///
    /// # Errors
    ///
    /// [`SpawnError`] when the runtime has shut down.
    pub fn spawn<F>(&self, future: F) -> Result<(), SpawnError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.inner.binding.spawn(Box::pin(future))
    }

    /// A future that completes after `duration`, on the runtime's timer.
    pub fn sleep(&self, duration: Duration) -> Sleep {
        self.inner.binding.sleep(duration)
    }

    /// The runtime's clock.
    pub fn now(&self) -> Instant {
        self.inner.binding.now()
    }

    /// The bound on each cleanup task (`None`: unbounded).
    pub fn cleanup_timeout(&self) -> Option<Duration> {
        self.inner.cleanup_timeout
    }

    /// Reports an incident to the hook and counts it. A hook that panics
    /// is caught (the incident and the panic then go to stderr): reporting
    /// never unwinds into the code that noticed the incident.
    pub(crate) fn report(&self, incident: Incident) {
        crate::trace::incident(&incident);
        self.registry().stats.incidents += 1;
        let Some(hook) = &self.inner.on_incident else {
            to_stderr(format_args!("{incident}"));
            return;
        };
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| hook(&incident))) {
            self.registry().stats.incidents += 1;
            to_stderr(format_args!(
                "awith: the incident hook panicked ({}) on: {incident}",
                panic_message(&panic)
            ));
        }
    }

    pub(super) fn registry(&self) -> MutexGuard<'_, Registry> {
        // Nothing panics while holding the lock; recover from poisoning anyway.
        lock(&self.inner.registry)
    }
}

/// Writes a line to stderr; a closed stderr is no reason to panic.
fn to_stderr(line: fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("binding", &self.inner.binding)
            .field("cleanup_timeout", &self.inner.cleanup_timeout)
            .field("cleanup_stats", &self.cleanup_stats())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Runtime`]; see [`Runtime::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct RuntimeBuilder {
    binding: Box<dyn Binding>,
    cleanup_timeout: Option<Duration>,
    on_incident: Option<IncidentHook>,
}

impl RuntimeBuilder {
    /// Bounds every cleanup task (default: [`DEFAULT_CLEANUP_TIMEOUT`]).
    /// A resource's own release timeout applies too; the smaller wins.
    /// A zero duration is rejected by [`build`](Self::build).
    pub fn cleanup_timeout(mut self, timeout: Duration) -> Self {
        self.cleanup_timeout = Some(timeout);
        self
    }

    /// Lets cleanup tasks run as long as they take. [`Runtime::drain`] still
    /// has its own deadline.
    pub fn unbounded_cleanups(mut self) -> Self {
        self.cleanup_timeout = None;
        self
    }

    /// Sends [`Incident`]s to `hook` instead of printing them to stderr.
    /// The hook runs on whatever thread noticed the incident, holding no
    /// lock of awith's (it may call back into the runtime, e.g.
    /// [`Runtime::cleanup_stats`]); keep it short. A hook that panics is
    /// caught: the incident and the panic go to stderr, and the panic counts
    /// as one more incident.
    pub fn on_incident(mut self, hook: impl Fn(&Incident) + Send + Sync + 'static) -> Self {
        self.on_incident = Some(Arc::new(hook));
        self
    }

    /// The runtime.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroCleanupTimeout`] for a zero cleanup timeout (every
    /// cleanup would be dropped unrun).
    pub fn build(self) -> Result<Runtime, ConfigError> {
        if self.cleanup_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::ZeroCleanupTimeout);
        }
        Ok(Runtime::from_parts(
            self.binding,
            self.cleanup_timeout,
            self.on_incident,
        ))
    }
}

impl fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("binding", &self.binding)
            .field("cleanup_timeout", &self.cleanup_timeout)
            .field("on_incident", &self.on_incident.is_some())
            .finish()
    }
}

/// A [`RuntimeBuilder`] setting that cannot work.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The cleanup timeout is zero: every cleanup would be dropped unrun.
    ZeroCleanupTimeout,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroCleanupTimeout => f.write_str(
                "the cleanup timeout is zero: every cleanup would be dropped unrun \
                 (use `unbounded_cleanups()` for no bound)",
            ),
        }
    }
}

impl std::error::Error for ConfigError {}
