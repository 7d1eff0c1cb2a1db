//! The runtime binding: what awith needs from an async runtime, and the
//! [`Runtime`] handle that scopes are given.
//!
//! The core asks a runtime for three things, through the small object-safe
//! [`Binding`] trait that an adapter crate implements in a page:
//!
//! - **spawn** a detached `Send + 'static` task — failing with a
//!   [`SpawnError`] (never a panic) when the runtime has shut down;
//! - **sleep** for a [`Duration`] (release timeouts, drain deadlines);
//! - **now**, the runtime's clock (virtual on the reference runtime).
//!
//! [`Runtime`] wraps a binding with what is the same on every runtime: the
//! **cleanup registry**. When a scope is cancelled, the work that must still
//! happen (finishing an in-flight acquire, releasing) is handed to the runtime
//! as a tracked cleanup task; [`Runtime::drain`] waits for those to finish, and
//! anything that goes wrong with one of them — it could not be spawned, it
//! failed, panicked, timed out, or the runtime dropped it — is counted in
//! [`CleanupStats`] and reported as an [`Incident`]. Nothing is silent.
//!
//! A `Runtime` is passed to each scope; it is never looked up from a
//! thread-local at drop time.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::nest::{CleanupDone, Collecting, DoneSignal, all_done};
use crate::util::{CatchUnwind, OrTimeout, panic_message};

/// A task handed to [`Binding::spawn`]: a boxed, detached, `Send + 'static` future.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A timer returned by [`Binding::sleep`] and [`Runtime::sleep`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// What awith needs from an async runtime. Adapter crates implement it;
/// users normally only pick an adapter.
///
/// Rules for implementors:
///
/// - `spawn` runs the task detached: dropping everything awith holds does not
///   cancel it. It returns `Err` (never panics) when the runtime can no longer
///   run tasks, and gives the task back in the error when it can.
/// - A task the runtime accepted but later drops unfinished (at shutdown) is
///   fine: awith notices and reports it.
/// - `sleep` works from any thread, inside or outside the runtime's context.
///
/// # Examples
///
/// A binding that runs every task on a new thread — enough to show the shape:
///
/// ```
/// use std::time::Duration;
/// use awith_core::rt::{Binding, Runtime, Sleep, SpawnError, Task};
///
/// #[derive(Debug)]
/// struct ThreadPerTask;
///
/// impl Binding for ThreadPerTask {
///     fn name(&self) -> &'static str {
///         "thread-per-task"
///     }
///     fn spawn(&self, task: Task) -> Result<(), SpawnError> {
///         std::thread::spawn(move || futures::executor::block_on(task));
///         Ok(())
///     }
///     fn sleep(&self, duration: Duration) -> Sleep {
///         let (tx, rx) = futures::channel::oneshot::channel::<()>();
///         std::thread::spawn(move || {
///             std::thread::sleep(duration);
///             let _ = tx.send(());
///         });
///         Box::pin(async move {
///             let _ = rx.await;
///         })
///     }
/// }
///
/// let rt = Runtime::new(ThreadPerTask);
/// let (tx, rx) = futures::channel::oneshot::channel();
/// rt.spawn(async move { tx.send(42).unwrap() }).unwrap();
/// assert_eq!(futures::executor::block_on(rx), Ok(42));
/// ```
pub trait Binding: Send + Sync + fmt::Debug + 'static {
    /// A short name for messages and runtime-identity checks, e.g. `"tokio"`.
    fn name(&self) -> &'static str;

    /// Spawns a detached task.
    ///
    /// # Errors
    ///
    /// [`SpawnError`] when the runtime has shut down.
    fn spawn(&self, task: Task) -> Result<(), SpawnError>;

    /// A future that completes after `duration` (at once for a zero duration).
    /// awith never polls it again once it has completed.
    fn sleep(&self, duration: Duration) -> Sleep;

    /// The runtime's clock. Real runtimes use the default, `Instant::now()`;
    /// a runtime with a virtual clock returns its own time.
    fn now(&self) -> Instant {
        Instant::now()
    }

    /// A [`TaskSet`], for one owner that spawns many tasks (a
    /// [`TaskGroup`](crate::group::TaskGroup)), or `None` (the default) to
    /// have it spawn each task with [`spawn`](Self::spawn).
    ///
    /// Worth it where a detached task is freed by the worker thread that
    /// finishes it: see [`TaskSet`].
    fn task_set(&self) -> Option<Box<dyn TaskSet>> {
        None
    }
}

/// Spawns tasks for one owner, keeping their handles so that each task's
/// memory is freed on the owner's thread, where it was allocated.
///
/// A detached task is freed by whichever worker finishes it. glibc's
/// allocator takes a lock on the arena a chunk came from to free it on
/// another thread, so a task group spawning thousands of short children from
/// one thread has the workers queue on the spawning thread's arena. tokio's
/// `JoinSet` does not: each task is freed on the thread that joins it.
/// Measured on tokio (two workers, 10,000 trivial children): a task group
/// took 1.3× the time of a `JoinSet` with detached children, 0.8× with a
/// task set. A set keeps each handle ([`Handles`]) and drops it on the
/// owner's thread: after the task has finished that frees the task there;
/// before, it detaches it.
///
/// Rules for implementors: [`spawn`](Self::spawn) follows [`Binding::spawn`]
/// (detached: dropping the set or a handle never cancels a task; an error,
/// never a panic, when the runtime has shut down), and the set is dropped on
/// its owner's thread.
///
/// ```
/// use awith_core::rt::{Handles, SpawnError, Task, TaskSet};
///
/// /// Runs each task at once on a new thread; keeps the threads' handles.
/// #[derive(Debug)]
/// struct Threads(Handles<std::thread::JoinHandle<()>>);
///
/// impl TaskSet for Threads {
///     fn spawn(&mut self, task: Task) -> Result<(), SpawnError> {
///         let thread = std::thread::spawn(move || futures::executor::block_on(task));
///         self.0.keep(thread);
///         Ok(())
///     }
///
///     fn kept(&self) -> usize {
///         self.0.len()
///     }
/// }
///
/// let mut set = Threads(Handles::new(|thread| thread.is_finished()));
/// let (tx, rx) = std::sync::mpsc::channel();
/// set.spawn(Box::pin(async move { tx.send(7).unwrap() })).unwrap();
/// assert_eq!(rx.recv(), Ok(7));
/// ```
pub trait TaskSet: Send + fmt::Debug {
    /// Spawns a detached task, as [`Binding::spawn`].
    ///
    /// # Errors
    ///
    /// [`SpawnError`] when the runtime has shut down.
    fn spawn(&mut self, task: Task) -> Result<(), SpawnError>;

    /// How many task handles the set holds now: those of its unfinished
    /// tasks, and of finished ones it has not let go yet.
    fn kept(&self) -> usize;
}

/// The handles a [`TaskSet`] keeps: the ones of finished tasks are dropped
/// (on the owner's thread) whenever the list has doubled since it was last
/// pruned, so it holds no more than 64 handles, or twice as many as were
/// unfinished when it was last pruned — amortized, a handle costs one check.
///
/// ```
/// use awith_core::rt::Handles;
///
/// // Handles that say whether their task has finished.
/// let mut handles = Handles::new(|finished: &mut bool| *finished);
/// for _ in 0..1000 {
///     handles.keep(true);
/// }
/// assert!(handles.len() <= 64, "finished ones are let go");
/// for _ in 0..1000 {
///     handles.keep(false);
/// }
/// assert!((1000..=1064).contains(&handles.len()), "unfinished ones never are");
/// ```
#[derive(Debug)]
pub struct Handles<H> {
    handles: Vec<H>,
    prune_at: usize,
    finished: fn(&mut H) -> bool,
}

impl<H> Handles<H> {
    /// No handles yet; `finished` says whether a handle's task has finished
    /// (it may poll the handle).
    pub fn new(finished: fn(&mut H) -> bool) -> Self {
        Handles {
            handles: Vec::new(),
            prune_at: Self::MIN_PRUNE,
            finished,
        }
    }

    const MIN_PRUNE: usize = 64;

    /// Keeps `handle` until its task has finished and the list is pruned, or
    /// until this is dropped.
    pub fn keep(&mut self, handle: H) {
        if self.handles.len() >= self.prune_at {
            let finished = self.finished;
            self.handles.retain_mut(|handle| !finished(handle));
            self.prune_at = Self::MIN_PRUNE.max(2 * self.handles.len());
        }
        self.handles.push(handle);
    }

    /// How many handles are kept.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// `true` if none is.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }
}

/// A shared binding is a binding: one executor can back several runtimes
/// (each with its own cleanup registry and settings).
impl<B: Binding + ?Sized> Binding for Arc<B> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn spawn(&self, task: Task) -> Result<(), SpawnError> {
        (**self).spawn(task)
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        (**self).sleep(duration)
    }

    fn now(&self) -> Instant {
        (**self).now()
    }

    fn task_set(&self) -> Option<Box<dyn TaskSet>> {
        (**self).task_set()
    }
}

impl<B: Binding + ?Sized> Binding for Box<B> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn spawn(&self, task: Task) -> Result<(), SpawnError> {
        (**self).spawn(task)
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        (**self).sleep(duration)
    }

    fn now(&self) -> Instant {
        (**self).now()
    }

    fn task_set(&self) -> Option<Box<dyn TaskSet>> {
        (**self).task_set()
    }
}

/// The runtime could not spawn a task: it has shut down.
///
/// The task is given back when the binding could recover it
/// ([`SpawnError::into_task`]), so nothing handed over is lost unseen.
///
/// ```
/// use awith_core::rt::SpawnError;
///
/// let err = SpawnError::new("tokio", Box::pin(async {}));
/// assert_eq!(err.runtime(), "tokio");
/// assert_eq!(err.to_string(), "cannot spawn a task: the tokio runtime has shut down");
/// assert!(err.into_task().is_some());
/// ```
pub struct SpawnError {
    runtime: &'static str,
    /// Behind a mutex only so that the error is `Sync` (a task is `Send`
    /// only), as `Box<dyn Error + Send + Sync>` and `anyhow::Error` want; it
    /// is never contended.
    task: Mutex<Option<Task>>,
}

impl SpawnError {
    /// The runtime `runtime` refused `task`; the task is given back.
    pub fn new(runtime: &'static str, task: Task) -> Self {
        SpawnError {
            runtime,
            task: Mutex::new(Some(task)),
        }
    }

    /// The runtime `runtime` refused a task and dropped it.
    pub fn task_dropped(runtime: &'static str) -> Self {
        SpawnError {
            runtime,
            task: Mutex::new(None),
        }
    }

    /// The name of the runtime that refused the task.
    pub fn runtime(&self) -> &'static str {
        self.runtime
    }

    /// The refused task, if the runtime gave it back.
    pub fn into_task(self) -> Option<Task> {
        self.task
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnError")
            .field("runtime", &self.runtime)
            .field(
                "task_returned",
                &self
                    .task
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_some(),
            )
            .finish()
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot spawn a task: the {} runtime has shut down",
            self.runtime
        )
    }
}

impl std::error::Error for SpawnError {}

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
    /// Destroying a pool's object whose checkout or release was cancelled.
    Destroy,
}

impl fmt::Display for CleanupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CleanupKind::FinishAcquire => "finishing the acquire of a cancelled scope",
            CleanupKind::Release => "the release of a cancelled scope",
            CleanupKind::Children => "the end of a cancelled task group's children",
            CleanupKind::Destroy => "destroying the object of a cancelled pool checkout",
        })
    }
}

/// Something went wrong where no caller was left to tell: reported to the
/// runtime's incident hook (by default, printed to stderr) and counted in
/// [`CleanupStats`].
///
/// ```
/// use awith_core::rt::{CleanupKind, Incident};
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
    /// The body panicked and then its release panicked too; the body's panic
    /// resumes (a release panic never masks the body's).
    ReleasePanickedDuringPanic {
        /// The release panic's message.
        message: String,
    },
    /// An error that could not be returned because a panic resumes instead
    /// (a task group whose child panicked while another failed).
    ErrorLostToPanic {
        /// The error, formatted with `Debug`.
        error: String,
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
        }
    }
}

/// Counts of the cleanup work a [`Runtime`] was handed, since it was made.
///
/// `spawned = completed + failed + panicked + timed_out + lost + pending`.
///
/// ```
/// # use awith_core::reference::Reference;
/// let rt = Reference::new().runtime();
/// let stats = rt.cleanup_stats();
/// assert_eq!((stats.spawned, stats.pending), (0, 0));
/// assert!(stats.is_clean());
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanupStats {
    /// Cleanups handed to the runtime.
    pub spawned: u64,
    /// Cleanups that ran to the end without error.
    pub completed: u64,
    /// Cleanups whose release returned an error.
    pub failed: u64,
    /// Cleanups that panicked.
    pub panicked: u64,
    /// Cleanups dropped at their timeout.
    pub timed_out: u64,
    /// Cleanups the runtime refused or dropped unfinished.
    pub lost: u64,
    /// Cleanups still running.
    pub pending: u64,
    /// All incidents reported, cleanups or not.
    pub incidents: u64,
}

impl CleanupStats {
    /// `true` when every cleanup completed and no incident was reported.
    pub fn is_clean(&self) -> bool {
        self.incidents == 0 && self.pending == 0 && self.completed == self.spawned
    }
}

/// The runtime-bound hook that receives [`Incident`]s.
type IncidentHook = Arc<dyn Fn(&Incident) + Send + Sync + 'static>;

/// How a cleanup task ended, before it is counted.
#[derive(Debug)]
pub(crate) enum CleanupError {
    /// The release (or acquire) returned an error, formatted with `Debug`.
    Failed(String),
    /// A nested bound inside the cleanup expired.
    TimedOut(Duration),
}

/// A handle to an async runtime plus awith's cleanup registry. Cheap to clone;
/// clones share the registry.
///
/// Make one with an adapter (`awith::tokio::runtime()`, …), or for tests with
/// [`Reference`](crate::reference::Reference).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use awith_core::reference::Reference;
///
/// let reference = Reference::new();
/// let rt = reference.runtime();
/// let waited = reference.block_on(async {
///     let start = rt.now();
///     rt.sleep(Duration::from_secs(5)).await; // virtual: returns at once
///     rt.now() - start
/// });
/// assert_eq!(waited.unwrap(), Duration::from_secs(5));
/// ```
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    binding: Box<dyn Binding>,
    cleanup_timeout: Option<Duration>,
    on_incident: Option<IncidentHook>,
    registry: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    stats: CleanupStats,
    drainers: Vec<Waker>,
}

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
    /// use awith_core::reference::Reference;
    /// use awith_core::rt::{ConfigError, Runtime};
    ///
    /// let reference = Reference::new();
    /// let rt = Runtime::builder(reference.binding())
    ///     .cleanup_timeout(Duration::from_secs(5))
    ///     .on_incident(|incident| eprintln!("{incident}"))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(rt.cleanup_timeout(), Some(Duration::from_secs(5)));
    ///
    /// let zero = Runtime::builder(reference.binding()).cleanup_timeout(Duration::ZERO).build();
    /// assert!(matches!(zero, Err(ConfigError::ZeroCleanupTimeout)));
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

    /// A snapshot of the cleanup counters.
    pub fn cleanup_stats(&self) -> CleanupStats {
        self.registry().stats
    }

    /// Waits until every cleanup handed to this runtime has finished, or until
    /// `deadline` has passed on the runtime's clock.
    ///
    /// Call it before the program (or test) ends: cleanups are detached tasks,
    /// and a runtime that shuts down drops them (which is then reported).
    ///
    /// The result is `Ok(stats)` when nothing is pending; check
    /// [`CleanupStats::is_clean`] to learn whether everything also succeeded.
    ///
    /// # Errors
    ///
    /// [`DrainError`] when cleanups are still running at the deadline.
    pub fn drain(&self, deadline: Duration) -> Drain<'_> {
        Drain {
            rt: self,
            deadline,
            timer: None,
        }
    }

    /// Reports an incident to the hook and counts it.
    pub(crate) fn report(&self, incident: Incident) {
        self.registry().stats.incidents += 1;
        match &self.inner.on_incident {
            Some(hook) => hook(&incident),
            None => eprintln!("{incident}"),
        }
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // Nothing panics while holding the lock; recover from poisoning anyway.
        self.inner
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands `cleanup` to the runtime as a tracked task. It starts once the
    /// cleanups in `after` (of scopes nested inside) have ended, and is
    /// dropped `timeout` after it started if it is still running then.
    pub(crate) fn spawn_cleanup<F>(
        &self,
        kind: CleanupKind,
        timeout: Option<Duration>,
        after: Vec<CleanupDone>,
        cleanup: F,
    ) where
        F: Future<Output = Result<(), CleanupError>> + Send + 'static,
    {
        let mut tracker = Tracker::new(self.clone(), kind);
        let task = async move {
            tracker.started = true;
            // Waiting for the cleanups nested inside is not part of this
            // one's time: each of them has its own bound.
            all_done(after).await;
            let timer = timeout.map(|after| tracker.rt.sleep(after));
            let (ended, started) =
                Collecting::new(OrTimeout::new(CatchUnwind::new(cleanup), timer)).await;
            // What this cleanup started in turn ends before it does.
            all_done(started).await;
            let ending = match ended {
                Some(Ok(Ok(()))) => Ending::Completed,
                Some(Ok(Err(CleanupError::Failed(error)))) => Ending::Failed(error),
                Some(Ok(Err(CleanupError::TimedOut(after)))) => Ending::TimedOut(after),
                Some(Err(panic)) => Ending::Panicked(panic_message(&panic)),
                None => Ending::TimedOut(timeout.unwrap_or_default()),
            };
            tracker.finish(ending);
        };
        if let Err(refused) = self.inner.binding.spawn(Box::pin(task)) {
            // Dropping the refused task drops its tracker unstarted, which
            // counts and reports the cleanup as refused.
            drop(refused);
        }
    }
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
    /// The hook runs on whatever thread noticed the incident; keep it short.
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

/// Cleanups were still running when [`Runtime::drain`]'s deadline passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainError {
    /// The deadline that passed.
    pub deadline: Duration,
    /// The counters at that moment.
    pub stats: CleanupStats,
}

impl fmt::Display for DrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} cleanup task(s) still running after {:?}",
            self.stats.pending, self.deadline
        )
    }
}

impl std::error::Error for DrainError {}

/// The future of [`Runtime::drain`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Drain<'a> {
    rt: &'a Runtime,
    deadline: Duration,
    timer: Option<Sleep>,
}

impl fmt::Debug for Drain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Future for Drain<'_> {
    type Output = Result<CleanupStats, DrainError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        {
            let mut registry = self.rt.registry();
            if registry.stats.pending == 0 {
                return Poll::Ready(Ok(registry.stats));
            }
            if !registry.drainers.iter().any(|w| w.will_wake(cx.waker())) {
                registry.drainers.push(cx.waker().clone());
            }
        }
        let deadline = self.deadline;
        let rt = self.rt;
        let timer = self.timer.get_or_insert_with(|| rt.sleep(deadline));
        if timer.as_mut().poll(cx).is_ready() {
            let stats = rt.cleanup_stats();
            if stats.pending == 0 {
                return Poll::Ready(Ok(stats));
            }
            return Poll::Ready(Err(DrainError { deadline, stats }));
        }
        Poll::Pending
    }
}

/// How a tracked cleanup ended.
enum Ending {
    Completed,
    Failed(String),
    Panicked(String),
    TimedOut(Duration),
}

/// Counts one cleanup task: pending while alive; on drop, what happened.
struct Tracker {
    rt: Runtime,
    kind: CleanupKind,
    started: bool,
    ending: Option<Ending>,
    /// Tells the enclosing scope, if one is collecting, that this ended.
    _done: Option<DoneSignal>,
}

impl Tracker {
    fn new(rt: Runtime, kind: CleanupKind) -> Self {
        {
            let mut registry = rt.registry();
            registry.stats.spawned += 1;
            registry.stats.pending += 1;
        }
        Tracker {
            rt,
            kind,
            started: false,
            ending: None,
            _done: crate::nest::register(),
        }
    }

    fn finish(&mut self, ending: Ending) {
        self.ending = Some(ending);
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let kind = self.kind;
        let runtime = self.rt.name();
        let incident = {
            let mut registry = self.rt.registry();
            let stats = &mut registry.stats;
            match self.ending.take() {
                Some(Ending::Completed) => {
                    stats.completed += 1;
                    None
                }
                Some(Ending::Failed(error)) => {
                    stats.failed += 1;
                    Some(Incident::CleanupFailed { kind, error })
                }
                Some(Ending::Panicked(message)) => {
                    stats.panicked += 1;
                    Some(Incident::CleanupPanicked { kind, message })
                }
                Some(Ending::TimedOut(after)) => {
                    stats.timed_out += 1;
                    Some(Incident::CleanupTimedOut { kind, after })
                }
                None if self.started => {
                    stats.lost += 1;
                    Some(Incident::CleanupAbandoned { kind, runtime })
                }
                None => {
                    stats.lost += 1;
                    Some(Incident::CleanupRefused { kind, runtime })
                }
            }
        };
        // Report before the task stops counting as pending, so that a drain
        // that returns has seen every incident.
        if let Some(incident) = incident {
            self.rt.report(incident);
        }
        let drainers = {
            let mut registry = self.rt.registry();
            registry.stats.pending -= 1;
            if registry.stats.pending == 0 {
                std::mem::take(&mut registry.drainers)
            } else {
                Vec::new()
            }
        };
        drainers.into_iter().for_each(Waker::wake);
    }
}
