//! The runtime binding: what awith needs from an async runtime, and the
//! [`Runtime`] handle that scopes are given.
//!
//! The core asks a runtime for three things, through the small object-safe
//! [`Binding`] trait that an adapter crate implements in a page:
//!
//! - **spawn** a detached `Send + 'static` task — failing with a
//!   [`SpawnError`] (never a panic) when the runtime has shut down;
//! - **sleep** for a [`Duration`](std::time::Duration) (release timeouts, drain deadlines);
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
//!
//! The parts: the [`Binding`] an adapter implements (`binding`), the
//! [`TaskSet`] a binding may add (`task_set`), the [`Runtime`] handle and its
//! builder (`runtime`), cleanup tracking and [`Runtime::drain`] (`cleanup`),
//! and the [`Incident`]s it reports (`incident`).

mod binding;
mod cleanup;
mod incident;
mod runtime;
mod task_set;

pub use binding::{Binding, Sleep, SpawnError, Task};
pub use cleanup::{CleanupStats, Drain, DrainError};
pub use incident::{CleanupKind, Incident};
pub use runtime::{ConfigError, DEFAULT_CLEANUP_TIMEOUT, Runtime, RuntimeBuilder};
pub use task_set::{Handles, TaskSet};

pub(crate) use cleanup::{CleanupError, DropCaught};
