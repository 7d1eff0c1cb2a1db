//! What a test gets: [`Env`], its [`Incidents`], and the [`RuntimeKind`]
//! it runs on.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use awith_core::Runtime;
use awith_core::rt::Incident;

use crate::harness::{Harness, Identity, Idle, SharedBinding};

/// What a test gets: the runtime under test, the incidents it reported, a
/// way to check that code runs on it, and what kind of runtime it is.
///
/// An `#[awith::test]` function takes an `Env` or just the
/// [`Runtime`] ([`FromEnv`]).
///
/// Hand `env.rt` to the code under test rather than letting it call
/// `awith::runtime()`: that finds *a* runtime of the kind running the code
/// (on smol, smol's global executor, not the test's own), without the
/// incident recording the end-of-test checks read.
#[non_exhaustive]
#[derive(Clone)]
pub struct Env {
    /// The awith runtime under test. Its incidents are recorded in
    /// [`incidents`](Env::incidents), not printed; its cleanup timeout is
    /// [`CLEANUP_TIMEOUT`](crate::CLEANUP_TIMEOUT).
    pub rt: Runtime,
    /// The incidents `rt` reported. One the test has not
    /// [taken](Incidents::take) by its end fails it, unless the test says
    /// `incidents = "allowed"`.
    pub incidents: Incidents,
    /// Checks that the calling code runs on the runtime under test (call
    /// it from a spawned task to check where the task runs).
    pub identity: Identity,
    /// The binding under `rt`, to build runtimes with other settings.
    pub binding: SharedBinding,
    /// The runtime's clock is virtual (the reference runtime): timing is
    /// exact, and a sleep of an hour returns at once.
    pub virtual_time: bool,
    /// Spawned tasks run in parallel (several worker threads).
    pub parallel: bool,
    /// What kind of runtime this is.
    pub kind: RuntimeKind,
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("rt", &self.rt)
            .field("incidents", &self.incidents)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// What an `#[awith::test]` function may take: the whole [`Env`], or only
/// the [`Runtime`].
pub trait FromEnv {
    /// Takes what the test needs from `env`.
    fn from_env(env: Env) -> Self;
}

impl FromEnv for Env {
    fn from_env(env: Env) -> Self {
        env
    }
}

impl FromEnv for Runtime {
    fn from_env(env: Env) -> Self {
        env.rt
    }
}

/// A kind of runtime of the matrix, as a value: its names, what it can do,
/// and how to get a shut-down or idle runtime of the same kind.
#[derive(Clone, Copy)]
pub struct RuntimeKind {
    /// The name its binding reports: `"tokio"`, `"async-std"`, `"smol"`,
    /// `"reference"`.
    pub name: &'static str,
    /// The runtime and its flavour: `"tokio multi-thread"`.
    pub label: &'static str,
    /// Its test's name in the matrix: `"tokio_multi_thread"`.
    pub test_name: &'static str,
    /// Spawned tasks run in parallel.
    pub parallel: bool,
    /// The clock is virtual.
    pub virtual_time: bool,
    /// A spawn it refuses gives the task back.
    pub returns_refused_task: bool,
    /// Its binding has a task set.
    pub task_set: bool,
    shut_down: fn() -> Result<SharedBinding, &'static str>,
    idle: fn() -> Result<Idle, &'static str>,
}

impl RuntimeKind {
    /// The kind of `H`'s runtime.
    pub fn of<H: Harness>() -> Self {
        RuntimeKind {
            name: H::NAME,
            label: H::LABEL,
            test_name: H::TEST_NAME,
            parallel: H::PARALLEL,
            virtual_time: H::VIRTUAL_TIME,
            returns_refused_task: H::RETURNS_REFUSED_TASK,
            task_set: H::TASK_SET,
            shut_down: H::shut_down,
            idle: H::idle,
        }
    }

    /// A binding to a runtime of this kind that has been shut down, or why
    /// this kind cannot be shut down (async-std's global executor).
    ///
    /// # Errors
    ///
    /// The runtime cannot be shut down: the reason.
    pub fn shut_down(&self) -> Result<SharedBinding, &'static str> {
        (self.shut_down)()
    }

    /// A fresh runtime of this kind that accepts tasks and runs none until
    /// it is shut down, or why this kind cannot be shut down.
    ///
    /// # Errors
    ///
    /// The runtime cannot be shut down: the reason.
    pub fn idle(&self) -> Result<Idle, &'static str> {
        (self.idle)()
    }
}

impl fmt::Debug for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeKind")
            .field("label", &self.label)
            .field("parallel", &self.parallel)
            .field("virtual_time", &self.virtual_time)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label)
    }
}

/// The incidents a runtime reported, recorded by its hook.
#[derive(Clone, Debug, Default)]
pub struct Incidents {
    seen: Arc<Mutex<Vec<Incident>>>,
}

impl Incidents {
    /// A copy of the incidents so far; they stay recorded.
    pub fn all(&self) -> Vec<Incident> {
        self.lock().clone()
    }

    /// The incidents so far, which are then forgotten: a test that expects
    /// an incident takes it, and only the ones it did not take fail it.
    pub fn take(&self) -> Vec<Incident> {
        std::mem::take(&mut *self.lock())
    }

    /// Forgets the incidents so far (e.g. between cases of one test).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Records one (the runtime's incident hook).
    pub fn record(&self, incident: &Incident) {
        self.lock().push(incident.clone());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Incident>> {
        // The lock guards a plain `Vec`: a panic while it was held (there is
        // no user code under it) cannot leave it half-changed.
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
