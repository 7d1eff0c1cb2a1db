//! One [`Harness`] per runtime of the matrix: how to build a fresh runtime,
//! block on a test, prove that code runs on that runtime, and shut one down.
//!
//! [`#[awith::test]`](crate::test) and [`run`](crate::run) use them; a test
//! that needs a runtime of its own for each case (a property test, say) can
//! use them directly.

use std::future::Future;
use std::sync::Arc;

use awith_core::rt::Binding;

/// Checks that the calling code runs on the harness's runtime: `Err` says
/// what runs it instead. Callable from spawned tasks.
pub type Identity = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// A binding shared by several runtimes (e.g. one with other settings).
pub type SharedBinding = Arc<dyn Binding>;

/// A runtime the matrix runs on.
pub trait Harness: Sized + 'static {
    /// The name the binding reports ([`Runtime::name`](awith_core::Runtime::name)).
    const NAME: &'static str;
    /// The runtime and its flavour, for reports: `"tokio multi-thread"`.
    const LABEL: &'static str;
    /// The name of its test in the matrix: `"tokio_multi_thread"`.
    const TEST_NAME: &'static str;
    /// Spawned tasks run in parallel (several worker threads).
    const PARALLEL: bool;
    /// The clock is virtual: timing is exact.
    const VIRTUAL_TIME: bool;
    /// A spawn the runtime refuses gives the task back
    /// ([`SpawnError::into_task`](awith_core::rt::SpawnError::into_task)).
    /// tokio drops a refused task before the binding can see it.
    const RETURNS_REFUSED_TASK: bool;
    /// The binding has a [`TaskSet`](awith_core::rt::TaskSet) (`Binding::task_set`).
    const TASK_SET: bool;

    /// The binding type.
    type Binding: Binding;

    /// A fresh runtime.
    fn new() -> Self;

    /// A binding to this runtime.
    fn binding(&self) -> Self::Binding;

    /// Runs `future` to completion on this runtime, on the calling thread.
    /// The future need not be `Send`.
    fn block_on<F: Future>(&self, future: F) -> F::Output;

    /// A check that the calling code runs on this runtime.
    fn identity(&self) -> Identity;

    /// A binding to a runtime of this kind that has been shut down, or why
    /// this runtime cannot be shut down.
    fn shut_down() -> Result<SharedBinding, &'static str>;

    /// A binding to a fresh runtime of this kind that accepts tasks but does
    /// not run them yet, and what shuts it down (dropping the tasks it
    /// holds); or why this runtime cannot be shut down.
    fn idle() -> Result<Idle, &'static str>;
}

/// A runtime that accepts tasks and runs none, until `shut_down` drops them.
pub struct Idle {
    /// A binding to it.
    pub binding: SharedBinding,
    /// Shuts it down.
    pub shut_down: Box<dyn FnOnce() + Send>,
}

impl std::fmt::Debug for Idle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idle")
            .field("binding", &self.binding)
            .finish_non_exhaustive()
    }
}

/// The reference runtime: deterministic, single-threaded, virtual clock.
#[derive(Debug)]
pub struct Reference {
    reference: Arc<awith_core::reference::Reference>,
}

impl Harness for Reference {
    const NAME: &'static str = "reference";
    const LABEL: &'static str = "reference";
    const TEST_NAME: &'static str = "reference";
    const PARALLEL: bool = false;
    const VIRTUAL_TIME: bool = true;
    const RETURNS_REFUSED_TASK: bool = true;
    const TASK_SET: bool = false;
    type Binding = awith_core::reference::ReferenceBinding;

    fn new() -> Self {
        Reference {
            reference: Arc::new(awith_core::reference::Reference::new()),
        }
    }

    fn binding(&self) -> Self::Binding {
        self.reference.binding()
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.reference
            .block_on(future)
            .unwrap_or_else(|stalled| panic!("{stalled}"))
    }

    fn identity(&self) -> Identity {
        let id = self.reference.id();
        Arc::new(move || match awith_core::reference::current_id() {
            Some(current) if current == id => Ok(()),
            Some(other) => Err(format!("runs on reference runtime {other}, not {id}")),
            None => Err("runs on no reference runtime".into()),
        })
    }

    fn shut_down() -> Result<SharedBinding, &'static str> {
        let reference = awith_core::reference::Reference::new();
        let binding = reference.binding();
        drop(reference);
        Ok(Arc::new(binding))
    }

    fn idle() -> Result<Idle, &'static str> {
        let reference = awith_core::reference::Reference::new();
        Ok(Idle {
            binding: Arc::new(reference.binding()),
            shut_down: Box::new(move || drop(reference)),
        })
    }
}

#[cfg(feature = "tokio")]
pub use self::tokio_harness::{Tokio, TokioCurrentThread, TokioMultiThread};

#[cfg(feature = "tokio")]
mod tokio_harness {
    use super::*;
    use tokio::runtime::{Builder, Handle, RuntimeFlavor};

    fn identity(handle: &Handle) -> Identity {
        let id = handle.id();
        let flavor = handle.runtime_flavor();
        Arc::new(move || match Handle::try_current() {
            Ok(current) if current.id() == id && current.runtime_flavor() == flavor => Ok(()),
            Ok(current) => Err(format!(
                "runs on tokio runtime {} ({:?}), not {id} ({flavor:?})",
                current.id(),
                current.runtime_flavor()
            )),
            Err(_) => Err("runs outside any tokio runtime".into()),
        })
    }

    fn shut_down(mut builder: Builder) -> Result<SharedBinding, &'static str> {
        // A tokio runtime cannot be dropped inside another's async context:
        // build and drop it on a thread of its own.
        let binding = std::thread::spawn(move || {
            let tokio_rt = builder.enable_time().build().expect("a tokio runtime");
            let binding =
                awith_tokio::Tokio::new(tokio_rt.handle().clone()).expect("timers enabled");
            drop(tokio_rt);
            binding
        })
        .join()
        .expect("the thread");
        Ok(Arc::new(binding))
    }

    /// A tokio runtime: current-thread (`MULTI_THREAD = false`) or
    /// multi-thread with two workers.
    #[derive(Debug)]
    pub struct Tokio<const MULTI_THREAD: bool> {
        rt: tokio::runtime::Runtime,
    }

    /// tokio's current-thread runtime.
    pub type TokioCurrentThread = Tokio<false>;

    /// tokio's multi-thread runtime, with two workers.
    pub type TokioMultiThread = Tokio<true>;

    impl<const MULTI_THREAD: bool> Tokio<MULTI_THREAD> {
        fn builder(workers: usize) -> Builder {
            if MULTI_THREAD {
                let mut builder = Builder::new_multi_thread();
                builder.worker_threads(workers);
                builder
            } else {
                Builder::new_current_thread()
            }
        }

        fn flavor() -> RuntimeFlavor {
            if MULTI_THREAD {
                RuntimeFlavor::MultiThread
            } else {
                RuntimeFlavor::CurrentThread
            }
        }
    }

    impl<const MULTI_THREAD: bool> Harness for Tokio<MULTI_THREAD> {
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
        type Binding = awith_tokio::Tokio;

        fn new() -> Self {
            // Time and I/O, as `#[tokio::test]` has: a test may use the
            // network (a client of a real server).
            let rt = Self::builder(2)
                .enable_all()
                .build()
                .expect("a tokio runtime");
            Tokio { rt }
        }

        fn binding(&self) -> Self::Binding {
            let binding =
                awith_tokio::Tokio::new(self.rt.handle().clone()).expect("timers enabled");
            assert_eq!(binding.flavor(), Self::flavor());
            binding
        }

        fn block_on<F: Future>(&self, future: F) -> F::Output {
            self.rt.block_on(future)
        }

        fn identity(&self) -> Identity {
            identity(self.rt.handle())
        }

        fn shut_down() -> Result<SharedBinding, &'static str> {
            shut_down(Self::builder(1))
        }

        fn idle() -> Result<Idle, &'static str> {
            // Only a current-thread runtime holds tasks unrun until someone
            // drives it; its binding is tokio's either way.
            let tokio_rt = Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a tokio runtime");
            let binding =
                awith_tokio::Tokio::new(tokio_rt.handle().clone()).expect("timers enabled");
            Ok(Idle {
                binding: Arc::new(binding),
                // Dropped on a thread of its own: a tokio runtime cannot be
                // dropped inside another's async context.
                shut_down: Box::new(move || {
                    std::thread::spawn(move || drop(tokio_rt))
                        .join()
                        .expect("the thread");
                }),
            })
        }
    }
}

/// async-std's global executor.
#[cfg(feature = "async-std")]
#[derive(Debug)]
pub struct AsyncStd;

#[cfg(feature = "async-std")]
const ASYNC_STD_GLOBAL: &str =
    "async-std's executor is global and lives as long as the process: it cannot be shut down";

#[cfg(feature = "async-std")]
impl Harness for AsyncStd {
    const NAME: &'static str = "async-std";
    const LABEL: &'static str = "async-std";
    const TEST_NAME: &'static str = "async_std";
    // async-std's executor runs a worker thread per core.
    const PARALLEL: bool = true;
    const VIRTUAL_TIME: bool = false;
    const RETURNS_REFUSED_TASK: bool = true;
    const TASK_SET: bool = true;
    type Binding = awith_async_std::AsyncStd;

    fn new() -> Self {
        AsyncStd
    }

    fn binding(&self) -> Self::Binding {
        awith_async_std::AsyncStd::new()
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        async_std::task::block_on(future)
    }

    fn identity(&self) -> Identity {
        Arc::new(|| {
            #[cfg(feature = "tokio")]
            if tokio::runtime::Handle::try_current().is_ok() {
                return Err("runs inside a tokio runtime".into());
            }
            match async_std::task::try_current() {
                Some(_) => Ok(()),
                None => Err("runs outside any async-std task".into()),
            }
        })
    }

    fn shut_down() -> Result<SharedBinding, &'static str> {
        Err(ASYNC_STD_GLOBAL)
    }

    fn idle() -> Result<Idle, &'static str> {
        Err(ASYNC_STD_GLOBAL)
    }
}

/// A smol `Executor` of the harness's own, run by two worker threads (so
/// spawned tasks run in parallel); the test's main future runs in
/// `smol::block_on` on the calling thread.
#[cfg(feature = "smol")]
#[derive(Debug)]
pub struct Smol {
    executor: Arc<smol::Executor<'static>>,
    main_thread: std::thread::ThreadId,
    stop: Option<smol::channel::Sender<()>>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

#[cfg(feature = "smol")]
const SMOL_WORKER: &str = "awith-test-smol-worker";

#[cfg(feature = "smol")]
impl Harness for Smol {
    const NAME: &'static str = "smol";
    const LABEL: &'static str = "smol";
    const TEST_NAME: &'static str = "smol";
    const PARALLEL: bool = true;
    const VIRTUAL_TIME: bool = false;
    const RETURNS_REFUSED_TASK: bool = true;
    const TASK_SET: bool = true;
    type Binding = awith_smol::Smol;

    fn new() -> Self {
        let executor = Arc::new(smol::Executor::new());
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let workers = (0..2)
            .map(|n| {
                let executor = Arc::clone(&executor);
                let stopped = stopped.clone();
                std::thread::Builder::new()
                    .name(format!("{SMOL_WORKER}-{n}"))
                    .spawn(move || {
                        let _ = smol::block_on(executor.run(stopped.recv()));
                    })
                    .expect("a worker thread")
            })
            .collect();
        Smol {
            executor,
            main_thread: std::thread::current().id(),
            stop: Some(stop),
            workers,
        }
    }

    fn binding(&self) -> Self::Binding {
        awith_smol::Smol::new(&self.executor)
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        smol::block_on(future)
    }

    fn identity(&self) -> Identity {
        let executor = Arc::downgrade(&self.executor);
        let main_thread = self.main_thread;
        Arc::new(move || {
            #[cfg(feature = "tokio")]
            if tokio::runtime::Handle::try_current().is_ok() {
                return Err("runs inside a tokio runtime".into());
            }
            #[cfg(feature = "async-std")]
            if async_std::task::try_current().is_some() {
                return Err("runs inside an async-std task".into());
            }
            if executor.upgrade().is_none() {
                return Err("the smol executor is gone".into());
            }
            // Spawned tasks run on the executor's workers; the main future
            // runs in `smol::block_on` on the thread that made the harness.
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("");
            if name.starts_with(SMOL_WORKER) || thread.id() == main_thread {
                Ok(())
            } else {
                Err(format!("runs on thread {name:?}"))
            }
        })
    }

    fn shut_down() -> Result<SharedBinding, &'static str> {
        let executor = Arc::new(smol::Executor::new());
        let binding = awith_smol::Smol::new(&executor);
        drop(executor);
        Ok(Arc::new(binding))
    }

    fn idle() -> Result<Idle, &'static str> {
        // An executor nobody runs.
        let executor = Arc::new(smol::Executor::new());
        Ok(Idle {
            binding: Arc::new(awith_smol::Smol::new(&executor)),
            shut_down: Box::new(move || drop(executor)),
        })
    }
}

#[cfg(feature = "smol")]
impl Drop for Smol {
    fn drop(&mut self) {
        drop(self.stop.take());
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}
