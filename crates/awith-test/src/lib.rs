//! # awith-test
//!
//! One async test, every runtime: `#[awith::test]` turns an async test into
//! one `#[test]` per runtime your build enables, plus the deterministic
//! reference runtime with its virtual clock. Use it through the facade:
//!
//! ```toml
//! [dependencies]
//! awith = { version = "0.1", features = ["tokio", "smol"] }
//!
//! [dev-dependencies]
//! awith = { version = "0.1", features = ["tokio", "smol", "test"] }
//! ```
//!
//! ```
//! use std::time::Duration;
//! use awith::{resource, ResourceExt};
//! use awith::test::Env;
//!
//! #[awith::test]
//! async fn a_scope_releases(env: Env) -> Result<(), Box<dyn std::error::Error>> {
//!     let (tx, rx) = std::sync::mpsc::channel();
//!     let conn = resource(
//!         || async { Ok::<_, std::io::Error>("conn") },
//!         move |_, exit| async move { Ok(tx.send(exit).unwrap()) },
//!     );
//!     conn.with(&env.rt, async |_| {
//!         env.rt.sleep(Duration::from_millis(10)).await;
//!         Ok::<_, std::io::Error>(())
//!     })
//!     .await?;
//!     assert!(rx.try_recv()?.is_completed());
//!     Ok(())
//! }
//! # fn main() {}
//! ```
//!
//! With the features above this is four tests: `a_scope_releases::reference`,
//! `a_scope_releases::tokio_current_thread`,
//! `a_scope_releases::tokio_multi_thread` and `a_scope_releases::smol`
//! (`async_std` joins them with the `async-std` feature). `cargo test smol`
//! runs the smol ones; a failure names its runtime. Each test:
//!
//! - runs on a fresh runtime (async-std's executor is global: a fresh awith
//!   [`Runtime`](awith_core::Runtime) over it), and checks first that its
//!   main future really runs on the runtime it is named after;
//! - gets an [`Env`]: the runtime under test (`env.rt`), the incidents it
//!   reports (`env.incidents`), an identity check for spawned tasks, what
//!   kind of runtime it is; or, if it takes a [`Runtime`](awith_core::Runtime),
//!   just that;
//! - may return `()` or a `Result` whose error fails it;
//! - at its end, [drains](awith_core::Runtime::drain) the runtime's
//!   cleanups and fails if one is still pending or if the runtime reported
//!   an [`Incident`](awith_core::rt::Incident) the test did not
//!   [take](Incidents::take): a release that failed after a cancellation,
//!   one that panicked or timed out, one the runtime refused. A leaked
//!   release is a failed test, not a silent one.
//!
//! ## Arguments
//!
//! ```
//! # use awith::test::Env;
//! #[awith::test(skip(reference), timeout = "30s", incidents = "allowed")]
//! async fn needs_real_sockets(env: Env) {
//!     // ...
//!     # let _ = env;
//! }
//! # fn main() {}
//! ```
//!
//! - `skip(..)`: runtimes this test does not run on, among `reference`,
//!   `tokio_current_thread`, `tokio_multi_thread`, `async_std`, `smol`. The
//!   reference runtime runs everything on one thread with a virtual clock:
//!   skip it for tests that wait on real sockets or threads.
//! - `only(..)`: the runtimes this test runs on (those of them the build
//!   enables), e.g. `only(reference)` for a test that sleeps an hour on the
//!   virtual clock — one that later features must not turn into a real hour.
//! - `timeout = ".."` (`"500ms"`, `"30s"`, `"2m"`): the test fails if it has
//!   not ended by then (`"1h"` at most 24 hours). Default: [`DEFAULT_TIMEOUT`]
//!   on real runtimes; none on the reference runtime, which detects a stuck
//!   test itself. On the reference runtime the timeout is on its virtual
//!   clock, on the others on the wall clock: one `timeout` bounds very
//!   different amounts of work on the two. A test stopped at its timeout is
//!   dropped, its scopes' releases run and are drained, and what they report
//!   is told beside the timeout.
//! - `incidents = "allowed"`: the test provokes incidents on purpose and
//!   checks `env.incidents` itself. (The default, `"fail"`, is that an
//!   incident left untaken fails the test.)
//! - `crate = ".."`: the path of this crate when it is not `awith::test`
//!   (`crate = "awith_test"` when depending on `awith-test` directly).
//!
//! Misspelt arguments and runtimes are compile errors that list the valid
//! ones. `#[ignore]` and `#[should_panic]` on the function go to each
//! runtime's test (a `should_panic` test also passes when the matrix fails it
//! for what it left behind: its `expected` text can name the incident).
//!
//! ## Without the attribute
//!
//! [`run`] runs one test on one [`Harness`](harness::Harness), and the
//! [`harness`] types build, block on and identify each runtime: a property
//! test that needs a fresh runtime per case uses them directly.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod env;
pub mod harness;
mod run;

pub use awith_test_macros::test;

pub use env::{Env, FromEnv, Incidents, RuntimeKind};
pub use run::{
    CLEANUP_TIMEOUT, DEFAULT_TIMEOUT, DRAIN_DEADLINE, Options, Outcome, recording_runtime, run,
};

/// The runtimes this build of the matrix runs on, by test name.
pub const RUNTIMES: &[&str] = &[
    "reference",
    #[cfg(feature = "tokio")]
    "tokio_current_thread",
    #[cfg(feature = "tokio")]
    "tokio_multi_thread",
    #[cfg(feature = "async-std")]
    "async_std",
    #[cfg(feature = "smol")]
    "smol",
];

// What `#[awith::test]` expands to keeps a runtime's test or drops it by
// these macros: the runtime features are this crate's (the facade's), not
// the crate the test is in.

#[doc(hidden)]
#[macro_export]
macro_rules! __if_reference {
    ($($item:tt)*) => { $($item)* };
}

#[cfg(feature = "tokio")]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_tokio {
    ($($item:tt)*) => { $($item)* };
}

#[cfg(not(feature = "tokio"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_tokio {
    ($($item:tt)*) => {};
}

#[cfg(feature = "async-std")]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_async_std {
    ($($item:tt)*) => { $($item)* };
}

#[cfg(not(feature = "async-std"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_async_std {
    ($($item:tt)*) => {};
}

#[cfg(feature = "smol")]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_smol {
    ($($item:tt)*) => { $($item)* };
}

#[cfg(not(feature = "smol"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_smol {
    ($($item:tt)*) => {};
}
