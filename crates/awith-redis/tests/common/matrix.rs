//! The test matrix of this crate: each test runs through awith-test's
//! [`run`](awith::test::run) (fresh runtime, drain, incidents checked) on
//! every runtime this crate's features enable, with awith-test's harnesses
//! (whose tokio runtimes have I/O, which a redis connection needs). No
//! reference runtime: it has no I/O.

/// One `#[test]` per runtime for each `async fn name(env: Env) -> TestResult`
/// named: `name::tokio_current_thread`, `name::smol`, ...
///
/// Attributes before a name (`#[ignore = ".."]`) go on each of its tests.
#[macro_export]
macro_rules! matrix {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {$(
        mod $name {
            #[cfg(feature = "tokio")]
            #[test]
            $(#[$attr])*
            fn tokio_current_thread() {
                awith::test::run::<awith::test::harness::TokioCurrentThread, _, _>(
                    awith::test::Options::new()
                        .named(concat!(stringify!($name), "::tokio_current_thread")),
                    super::$name,
                );
            }

            #[cfg(feature = "tokio")]
            #[test]
            $(#[$attr])*
            fn tokio_multi_thread() {
                awith::test::run::<awith::test::harness::TokioMultiThread, _, _>(
                    awith::test::Options::new()
                        .named(concat!(stringify!($name), "::tokio_multi_thread")),
                    super::$name,
                );
            }

            #[cfg(feature = "async-std")]
            #[test]
            $(#[$attr])*
            fn async_std() {
                awith::test::run::<awith::test::harness::AsyncStd, _, _>(
                    awith::test::Options::new().named(concat!(stringify!($name), "::async_std")),
                    super::$name,
                );
            }

            #[cfg(feature = "smol")]
            #[test]
            $(#[$attr])*
            fn smol() {
                awith::test::run::<awith::test::harness::Smol, _, _>(
                    awith::test::Options::new().named(concat!(stringify!($name), "::smol")),
                    super::$name,
                );
            }
        }
    )*};
}
