//! # awith-core
//!
//! Async resource scopes for Rust — what Python's `async with` gives asyncio:
//! a resource is acquired asynchronously, used by a body, and released
//! asynchronously, and the release is guaranteed and told how the scope ended
//! ([`Exit`]: completed, failed, panicked or cancelled).
//!
//! This crate is the runtime-independent core; it depends on `futures` and
//! `pin-project` only (and on `tracing` with the [`tracing`](#tracing)
//! feature). Pick a runtime with the `awith` facade crate (features
//! `tokio`, `async-std`, `smol`) or an adapter crate, or use the deterministic
//! [`reference`](mod@reference) runtime in tests.
//!
//! Most programs use it through the `awith` facade, which re-exports
//! everything here and adds the runtimes; the examples in these docs are
//! written as such a program (`awith` with its `tokio` feature):
//!
//! ```
//! use awith::{resource, ResourceExt};
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let rt = awith::runtime()?;
//!     let pool = resource(
//!         || async { Ok::<_, std::io::Error>(vec!["conn-1", "conn-2"]) }, // __aenter__
//!         |pool, exit| async move {
//!             println!("closing {} connections, scope {exit}", pool.len()); // __aexit__
//!             Ok(())
//!         },
//!     );
//!     let rows = pool
//!         .with(&rt, async |pool| Ok::<_, std::io::Error>(pool.len() * 10))
//!         .await?;
//!     assert_eq!(rows, 20);
//!     rt.drain(std::time::Duration::from_secs(5)).await?;
//!     Ok(())
//! }
//! ```
//!
//! # What is guaranteed
//!
//! For every value an acquire yields, the release runs exactly once, with the
//! [`Exit`] that says how the scope ended — when the body returns `Ok`, returns
//! `Err`, panics, or when the scope's future is dropped (cancelled). Nothing is
//! silently lost: when the body and the release both fail, the body's error is
//! primary and the release's failure travels with it in [`ScopeError`]; a
//! release panic never masks a body panic, and an error a resuming panic
//! replaces is reported; a failure in work handed to the runtime (see below)
//! is counted and reported as an [`Incident`](rt::Incident).
//!
//! # Cancellation
//!
//! Rust cancels a future by dropping it, and there is no async drop. So when a
//! scope's future is dropped, the work that must still happen is handed to
//! the runtime as a tracked *cleanup task*:
//!
//! | dropped while | what happens |
//! |---|---|
//! | acquiring | the in-flight acquire is handed to the runtime and finished; if it yields a value, that is released with `Exit::Cancelled(Cancel::Dropped)` |
//! | in the body | the body is dropped, then the release runs as a runtime task with `Exit::Cancelled(Cancel::Dropped)` |
//! | releasing | the in-flight release is handed to the runtime and finishes (shielded); the body's error (or panic, or timeout), which nobody is left to be returned to, is reported |
//!
//! An acquire finished by the runtime that fails, or a part of a combined
//! resource whose failure its dropped sibling can no longer return, is
//! reported too: every failure ends up returned, suppressed by a release
//! that was shown it, or reported as an [`Incident`](rt::Incident).
//!
//! Cleanup tasks are bounded by the resource's release timeout and the
//! runtime's cleanup timeout; [`Runtime::drain`] waits for them. This is why
//! acquire and release futures are `Send + 'static`, while the body may
//! borrow freely and need not be `Send`.
//!
//! A cleanup that cannot run because the runtime has shut down is never
//! silent: it is counted in [`CleanupStats`](rt::CleanupStats) and reported
//! as an [`Incident`](rt::Incident); the value is then dropped without its
//! release.
//!
//! `std::mem::forget` on a scope's future skips all of this: nothing is
//! released, nothing is reported.
//!
//! # Tracing
//!
//! With the `tracing` feature (off by default), awith emits
//! [`tracing`](https://docs.rs/tracing) spans and events, target `awith`:
//!
//! | what | span or event (level) | fields |
//! |---|---|---|
//! | a scope ([`ResourceExt::with`], [`with_suppression`](ResourceExt::with_suppression)) | `awith.scope` (`DEBUG`), made when the scope is first polled | `resource` (its type's name), `exit` (`completed`, `failed`, `panicked` or `cancelled`) and `reason` (of a cancellation), recorded when its release starts |
//! | its phases | `acquire`, `body`, `release` (`DEBUG`), children of `awith.scope`, each entered only while its phase runs | `release`: `exit`, `reason` |
//! | a cleanup task (a cancelled scope's release, …) | `awith.cleanup` (`DEBUG`), a child of the span it was started in (a cancelled scope's), entered while the task runs | `kind` ([`CleanupKind`](rt::CleanupKind)) |
//! | a pool checkout | `awith.pool.checkout` (`DEBUG`), in its scope's `acquire`, with children `wait` (for a slot), `recycle` and `create` | `outcome` (`ready`, `failed`, `cancelled`), `error` |
//! | an [`Incident`](rt::Incident) | an event (`WARN`) whose message is the incident's, beside the runtime's incident hook | `incident` (its kind, e.g. `cleanup_panicked`), `cleanup` (its `CleanupKind`, if any) |
//!
//! A scope's `exit` is recorded in the span current as its release starts
//! (the scope's), so it needs a subscriber that knows the current span (as
//! `tracing-subscriber`'s do). A scope cancelled in its acquire has no
//! `exit`: its acquire finishes, and is released, in an `awith.cleanup`.
//!
//! Without the feature, nothing of this is compiled: the hooks are identity
//! functions, and no future is larger.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

mod combinator;
mod error;
mod exit;
mod from_fn;
mod gather;
pub mod group;
pub mod lock;
mod nest;
pub mod pool;
pub mod reference;
mod resource;
pub mod rt;
pub mod stack;
mod sync;
pub mod time;
mod trace;
mod tripwire;
pub mod tx;
mod util;
mod verdict;
mod with;

pub use combinator::{AndThen, Map, MapErr, Timed, Zip};
pub use error::{Cause, Elapsed, Failure, Located, PartError, ScopeError, Stage};
pub use exit::{Cancel, Exit, ExitKind};
pub use from_fn::{ByExit, ByKind, FromFn, resource, resource_inspecting};
pub use gather::{
    FutureTuple, Gather, GatherAll, GatherAllTuple, GatherTuple, TryFutureTuple, gather, gather_all,
};
pub use resource::{Acquired, ReleaseNow, Released, Resource, ResourceExt, Scoped};
pub use rt::Runtime;
pub use tripwire::{Tripped, Tripwire};
pub use verdict::{JoinVerdict, ReleaseVerdict, Verdict};

/// Both resources as one, acquired and released concurrently: the same as
/// [`a.zip(b)`](ResourceExt::zip).
///
/// ```
/// use awith::{both, resource, ResourceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rt = awith::runtime()?;
/// let one = |n: u8| resource(move || async move { Ok::<_, std::io::Error>(n) }, |_, _| async { Ok(()) });
/// let sum = both(one(1), one(2))
///     .with(&rt, async |(a, b)| Ok::<_, std::io::Error>(*a + *b))
///     .await?;
/// assert_eq!(sum, 3);
/// # Ok(())
/// # }
/// ```
///
/// # Cancellation
///
/// As [`zip`](ResourceExt::zip)'s: one scope whose combined acquire is not
/// cancel-safe; dropped, whatever was or will be acquired is released by a
/// cleanup task, told `Exit::Cancelled(reason)`.
pub fn both<E, A, B>(a: A, b: B) -> Zip<A, B, E>
where
    A: Resource<E>,
    B: Resource<E>,
{
    a.zip(b)
}

/// The traits needed to use scopes: `use awith::prelude::*;`.
pub mod prelude {
    pub use crate::resource::{Resource, ResourceExt};
}
