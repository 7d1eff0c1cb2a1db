//! # awith
//!
//! Async resource scopes for Rust — what Python's `async with` gives asyncio —
//! on tokio, async-std and smol. A resource is acquired asynchronously, used
//! by a body, and released asynchronously; the release is guaranteed (on
//! success, error, panic and cancellation) and told how the scope ended.
//!
//! Pick a runtime with one feature:
//!
//! ```toml
//! [dependencies]
//! awith = { version = "0.1", features = ["tokio"] }   # or "smol", or "async-std"
//! ```
//!
//! Features are additive: several runtimes can be enabled at once. Each adds a
//! module ([`tokio`], [`smol`], [`async_std`]), and [`runtime()`] picks the one the
//! calling code runs on, so the same code runs on all three.
//!
//! ```
//! use awith::{resource, ResourceExt};
//!
//! # #[cfg(feature = "tokio")]
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let rt = awith::runtime()?; // the tokio runtime running this code
//!     let conn = resource(
//!         || async { Ok::<_, std::io::Error>(String::from("db connection")) },
//!         |conn, exit| async move { Ok(println!("closed {conn} ({exit})")) },
//!     );
//!     let rows = conn.with(&rt, async |conn| Ok::<_, std::io::Error>(conn.len())).await?;
//!     assert_eq!(rows, 13);
//!     rt.drain(std::time::Duration::from_secs(5)).await?;
//!     Ok(())
//! }
//! # #[cfg(not(feature = "tokio"))]
//! # fn main() {}
//! ```
//!
//! With the `test` feature (for dev-dependencies), `#[awith::test]` runs one
//! async test on every enabled runtime and on the deterministic reference
//! runtime, and fails it on a leaked cleanup: see [`test`](mod@test).
//!
//! With the `tracing` feature, scopes (and their acquire, body and release,
//! with the exit), cleanup tasks and pool checkouts are `tracing` spans, and
//! every [`Incident`](rt::Incident) is a `WARN` event: see
//! [`awith_core`'s docs](awith_core#tracing). Off by default, and then not
//! compiled at all.
//!
//! Everything else comes from [`awith_core`] and is re-exported here; see its
//! docs for the guarantees.
//!
//! # Cancellation
//!
//! Rust cancels a future by dropping it. When a scope's future is dropped, the
//! work that must still happen is handed to the runtime as a tracked cleanup
//! task:
//!
//! | dropped while | what happens |
//! |---|---|
//! | acquiring | the in-flight acquire is handed to the runtime and finished; if it yields a value, that is released with `Exit::Cancelled(Cancel::Dropped)` |
//! | in the body | the body is dropped, then the release runs as a runtime task with `Exit::Cancelled(Cancel::Dropped)` |
//! | releasing | the in-flight release is handed to the runtime and finishes |
//!
//! Await [`Runtime::drain`] before the runtime shuts down. A cleanup the
//! runtime refuses or drops is counted and reported as an
//! [`Incident`](rt::Incident), never silent. `std::mem::forget` on a scope's
//! future skips all cleanup.
#![forbid(unsafe_code)]
// docs.rs builds with `--cfg docsrs` (Cargo.toml): items behind a runtime
// feature show a badge saying which.
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::fmt;

pub use awith_core::*;

/// The tokio binding (feature `tokio`): [`tokio::runtime()`], [`tokio::from_handle`].
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio {
    pub use awith_tokio::*;
}

/// The async-std binding (feature `async-std`). async-std is deprecated
/// upstream; prefer smol for new code.
#[cfg(feature = "async-std")]
#[cfg_attr(docsrs, doc(cfg(feature = "async-std")))]
pub mod async_std {
    pub use awith_async_std::*;
}

/// The smol binding (feature `smol`).
#[cfg(feature = "smol")]
#[cfg_attr(docsrs, doc(cfg(feature = "smol")))]
pub mod smol {
    pub use awith_smol::*;
}

/// The test matrix (feature `test`): `#[awith::test]` runs one async test on
/// every enabled runtime and on the deterministic reference runtime, and
/// fails it on a leaked cleanup. See the [`awith_test`] crate's docs.
#[cfg(feature = "test")]
#[cfg_attr(docsrs, doc(cfg(feature = "test")))]
pub use awith_test as test;

/// Runs an async test on every enabled runtime (feature `test`): see
/// [`test`](mod@test).
#[cfg(feature = "test")]
#[cfg_attr(docsrs, doc(cfg(feature = "test")))]
pub use awith_test::test;

/// The runtime the calling code runs on, among the enabled ones.
///
/// It looks, in this order, for: a tokio runtime running this thread
/// (feature `tokio`); an async-std task (feature `async-std`); then, as they
/// work from any thread, smol's global executor (feature `smol`) and
/// async-std's (feature `async-std`).
///
/// The runtime is found once, here, and then passed around: awith never looks
/// one up at drop time. Each call makes a runtime with its own cleanup
/// registry: make one and clone it. To set the cleanup timeout or the
/// incident hook, use [`builder()`].
///
/// # Errors
///
/// [`RuntimeError::NoRuntime`] when none of the enabled runtimes can be used
/// here (e.g. only `tokio` is enabled and no tokio runtime runs this thread);
/// [`RuntimeError::Tokio`] when the tokio runtime found cannot be used (timers
/// disabled).
///
/// ```
/// # #[cfg(feature = "smol")]
/// smol::block_on(async {
///     let rt = awith::runtime().unwrap();
///     # #[cfg(not(feature = "async-std"))]
///     assert_eq!(rt.name(), "smol");
/// });
/// ```
pub fn runtime() -> Result<Runtime, RuntimeError> {
    detect().map(Runtime::new)
}

/// A [`RuntimeBuilder`](rt::RuntimeBuilder) over the runtime the calling code
/// runs on, found as [`runtime()`] finds it.
///
/// # Errors
///
/// As [`runtime()`].
///
/// ```
/// # #[cfg(feature = "async-std")]
/// async_std::task::block_on(async {
///     let rt = awith::builder()
///         .unwrap()
///         .cleanup_timeout(std::time::Duration::from_secs(5))
///         .on_incident(|incident| eprintln!("{incident}"))
///         .build()
///         .unwrap();
///     assert_eq!(rt.name(), "async-std");
/// });
/// ```
pub fn builder() -> Result<rt::RuntimeBuilder, RuntimeError> {
    detect().map(Runtime::builder)
}

fn detect() -> Result<Box<dyn rt::Binding>, RuntimeError> {
    #[cfg(feature = "tokio")]
    match awith_tokio::Tokio::current() {
        Ok(binding) => return Ok(Box::new(binding)),
        Err(awith_tokio::Error::NoRuntime) => {}
        Err(error) => return Err(RuntimeError::Tokio(error)),
    }
    #[cfg(feature = "async-std")]
    if awith_async_std::is_current() {
        return Ok(Box::new(awith_async_std::AsyncStd::new()));
    }
    #[cfg(feature = "smol")]
    return Ok(Box::new(awith_smol::Smol::global()));
    #[cfg(all(feature = "async-std", not(feature = "smol")))]
    return Ok(Box::new(awith_async_std::AsyncStd::new()));
    #[allow(unreachable_code)]
    Err(RuntimeError::NoRuntime {
        enabled: ENABLED_RUNTIMES,
    })
}

/// The runtime features this build enables.
const ENABLED_RUNTIMES: &[&str] = &[
    #[cfg(feature = "tokio")]
    "tokio",
    #[cfg(feature = "async-std")]
    "async-std",
    #[cfg(feature = "smol")]
    "smol",
];

/// Why [`runtime()`] found no runtime.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeError {
    /// None of the enabled runtimes runs here.
    NoRuntime {
        /// The runtime features enabled in this build.
        enabled: &'static [&'static str],
    },
    /// A tokio runtime runs here but cannot be used.
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    Tokio(awith_tokio::Error),
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::NoRuntime { enabled: [] } => f.write_str(
                "no runtime feature of awith is enabled: enable `tokio`, `smol` or `async-std`",
            ),
            RuntimeError::NoRuntime { enabled } => write!(
                f,
                "none of the enabled runtimes ({}) runs on this thread",
                enabled.join(", ")
            ),
            #[cfg(feature = "tokio")]
            RuntimeError::Tokio(error) => fmt::Display::fmt(error, f),
        }
    }
}

impl std::error::Error for RuntimeError {}

/// The README's examples compile (with every runtime feature and the test
/// matrix enabled).
#[cfg(all(
    doctest,
    feature = "tokio",
    feature = "async-std",
    feature = "smol",
    feature = "test"
))]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
