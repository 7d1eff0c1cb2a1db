//! The test matrix of this crate: each test runs through awith-test's
//! [`run`](awith::test::run) (fresh runtime, drain, incidents checked) on
//! every runtime this crate's features enable. tokio's runtimes are built
//! here with I/O enabled (awith-test's tokio harness enables only time,
//! and a redis connection needs tokio's I/O driver); async-std and smol
//! use awith-test's harnesses. No reference runtime: it has no I/O.

#[cfg(feature = "tokio")]
use std::future::Future;
#[cfg(feature = "tokio")]
use std::sync::Arc;

#[cfg(feature = "tokio")]
use awith::test::harness::{Harness, Identity, Idle, SharedBinding};

/// tokio with I/O and time, current-thread or multi-thread (two workers).
#[cfg(feature = "tokio")]
#[derive(Debug)]
pub struct TokioIo<const MULTI_THREAD: bool> {
    rt: tokio::runtime::Runtime,
}

#[cfg(feature = "tokio")]
impl<const MULTI_THREAD: bool> Harness for TokioIo<MULTI_THREAD> {
    const NAME: &'static str = "tokio";
    const LABEL: &'static str = if MULTI_THREAD {
        "tokio multi-thread"
    } else {
        "tokio current-thread"
    };
    const TEST_NAME: &'static str = if MULTI_THREAD {
        "tokio_multi_thread"
    } else {
        "tokio_current_thread"
    };
    const PARALLEL: bool = MULTI_THREAD;
    const VIRTUAL_TIME: bool = false;
    const RETURNS_REFUSED_TASK: bool = false;
    const TASK_SET: bool = true;
    type Binding = awith::tokio::Tokio;

    fn new() -> Self {
        let mut builder = if MULTI_THREAD {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(2);
            builder
        } else {
            tokio::runtime::Builder::new_current_thread()
        };
        let rt = builder.enable_all().build().expect("a tokio runtime");
        TokioIo { rt }
    }

    fn binding(&self) -> Self::Binding {
        awith::tokio::Tokio::new(self.rt.handle().clone()).expect("timers enabled")
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.rt.block_on(future)
    }

    fn identity(&self) -> Identity {
        Arc::new(|| match tokio::runtime::Handle::try_current() {
            Ok(handle)
                if (handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
                    == MULTI_THREAD =>
            {
                Ok(())
            }
            Ok(_) => Err("runs on a tokio runtime of another flavour".into()),
            Err(_) => Err("runs outside tokio".into()),
        })
    }

    fn shut_down() -> Result<SharedBinding, &'static str> {
        Err("not used by awith-redis's tests")
    }

    fn idle() -> Result<Idle, &'static str> {
        Err("not used by awith-redis's tests")
    }
}

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
                awith::test::run::<$crate::common::matrix::TokioIo<false>, _, _>(
                    awith::test::Options::new()
                        .named(concat!(stringify!($name), "::tokio_current_thread")),
                    super::$name,
                );
            }

            #[cfg(feature = "tokio")]
            #[test]
            $(#[$attr])*
            fn tokio_multi_thread() {
                awith::test::run::<$crate::common::matrix::TokioIo<true>, _, _>(
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
