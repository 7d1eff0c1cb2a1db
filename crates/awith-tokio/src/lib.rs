//! # awith-tokio
//!
//! The [tokio] binding of [awith](https://docs.rs/awith): async resource scopes
//! whose release is guaranteed — on success, error, panic and cancellation —
//! with cleanup tasks spawned on tokio.
//!
//! It works on the current-thread and the multi-thread runtime. The binding
//! keeps a [`Handle`], so a cleanup started by a drop outside the runtime's
//! context (another thread, a destructor) still reaches the runtime.
//!
//! ```
//! use awith::{resource, ResourceExt};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tokio_rt = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
//! tokio_rt.block_on(async {
//!     let rt = awith::tokio::runtime()?;
//!     let conn = resource(
//!         || async { Ok::<_, std::io::Error>(String::from("conn")) },
//!         |conn, exit| async move { Ok(println!("closing {conn}: {exit}")) },
//!     );
//!     let len = conn.with(&rt, async |conn| Ok::<_, std::io::Error>(conn.len())).await?;
//!     assert_eq!(len, 4);
//!     rt.drain(std::time::Duration::from_secs(5)).await?;
//!     Ok(())
//! })
//! # }
//! ```
//!
//! # Cancellation
//!
//! Dropping a scope's future hands the remaining work to tokio as a tracked
//! cleanup task: an in-flight acquire is finished and what it yields is
//! released with `Exit::Cancelled`; a scope dropped in its body is released
//! with `Exit::Cancelled`; an in-flight release finishes. Await
//! `Runtime::drain` before the tokio runtime shuts down: tokio drops
//! unfinished tasks at shutdown, and awith then reports each lost cleanup as an
//! `Incident`. A cleanup that tokio refuses because it has shut down is
//! reported the same way. `std::mem::forget` on a scope's future skips all
//! cleanup.
//!
//! # Timers
//!
//! awith's timeouts use tokio's timer, so the runtime needs `enable_time()`
//! (or `enable_all()`); [`runtime`] and [`Tokio::new`] check it and return
//! [`Error::TimersDisabled`] rather than panicking later.
//!
//! [tokio]: https://docs.rs/tokio
#![forbid(unsafe_code)]

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use awith_core::Runtime;
use awith_core::rt::{Binding, Handles, Sleep, SpawnError, Task, TaskSet};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::task::JoinHandle;

/// The tokio [`Binding`]: spawns on a [`Handle`] and sleeps on tokio's timer.
///
/// ```
/// # let tokio_rt = tokio::runtime::Builder::new_multi_thread().enable_time().build().unwrap();
/// let binding = awith::tokio::Tokio::new(tokio_rt.handle().clone()).unwrap();
/// assert_eq!(binding.flavor(), tokio::runtime::RuntimeFlavor::MultiThread);
/// let rt = awith::Runtime::new(binding);
/// assert_eq!(rt.name(), "tokio");
/// ```
#[derive(Clone, Debug)]
pub struct Tokio {
    handle: Handle,
}

impl Tokio {
    /// A binding to the runtime behind `handle`.
    ///
    /// # Errors
    ///
    /// [`Error::TimersDisabled`] if the runtime was built without timers.
    pub fn new(handle: Handle) -> Result<Self, Error> {
        // Making a `Sleep` panics when timers are disabled; find out now,
        // rather than in the middle of a release timeout.
        let timers = {
            let _context = handle.enter();
            catch_unwind(|| drop(tokio::time::sleep(Duration::ZERO)))
        };
        match timers {
            Ok(()) => Ok(Tokio { handle }),
            Err(_) => Err(Error::TimersDisabled),
        }
    }

    /// A binding to the runtime this thread runs in.
    ///
    /// # Errors
    ///
    /// [`Error::NoRuntime`] outside a tokio runtime; [`Error::TimersDisabled`]
    /// if it was built without timers.
    pub fn current() -> Result<Self, Error> {
        Tokio::new(Handle::try_current().map_err(|_| Error::NoRuntime)?)
    }

    /// The handle this binding spawns on.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Current-thread or multi-thread.
    pub fn flavor(&self) -> RuntimeFlavor {
        self.handle.runtime_flavor()
    }
}

impl Binding for Tokio {
    fn name(&self) -> &'static str {
        "tokio"
    }

    fn spawn(&self, task: Task) -> Result<(), SpawnError> {
        spawn(&self.handle, task).map(drop)
    }

    fn task_set(&self) -> Option<Box<dyn TaskSet>> {
        Some(Box::new(TokioSet::new(self.handle.clone())))
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        let _context = self.handle.enter();
        Box::pin(TokioSleep {
            inner: tokio::time::sleep(duration),
        })
    }

    fn now(&self) -> Instant {
        // tokio's clock (paused under `test-util`) is the runtime context's.
        // Inside a task the context is set already; entering it again costs
        // a tenth of a pool checkout.
        if tokio::task::try_id().is_some() {
            return tokio::time::Instant::now().into_std();
        }
        let _context = self.handle.enter();
        tokio::time::Instant::now().into_std()
    }
}

/// Spawns `task` on the runtime behind `handle`.
fn spawn(handle: &Handle, task: Task) -> Result<JoinHandle<()>, SpawnError> {
    // tokio has no fallible spawn: a runtime that has shut down accepts the
    // task and cancels it at once, dropping it. A task that finished before
    // this returns either ran (on another worker) or was refused: polling its
    // handle once tells which. The refused task is gone, so the error cannot
    // give it back. (Recovering it took a shared slot per spawn, which made
    // spawning a task group's child a third dearer.)
    let mut joined = handle.spawn(task);
    if joined.is_finished() {
        let mut cx = Context::from_waker(Waker::noop());
        if let Poll::Ready(Err(error)) = Pin::new(&mut joined).poll(&mut cx) {
            if error.is_cancelled() {
                return Err(SpawnError::task_dropped("tokio"));
            }
        }
    }
    Ok(joined)
}

/// The tokio [`TaskSet`]: keeps each task's `JoinHandle`, so that a task
/// that has finished is freed when its owner drops the handle, on the
/// owner's thread (as `JoinSet` does); dropping a handle never aborts.
#[derive(Debug)]
struct TokioSet {
    handle: Handle,
    tasks: Handles<JoinHandle<()>>,
}

impl TokioSet {
    fn new(handle: Handle) -> Self {
        TokioSet {
            handle,
            tasks: Handles::new(|task| task.is_finished()),
        }
    }
}

impl TaskSet for TokioSet {
    fn spawn(&mut self, task: Task) -> Result<(), SpawnError> {
        let joined = spawn(&self.handle, task)?;
        self.tasks.keep(joined);
        Ok(())
    }

    fn kept(&self) -> usize {
        self.tasks.len()
    }
}

/// tokio's `Sleep`, except that polling it after its runtime has shut down
/// completes it instead of panicking: there is no time left to wait for. One
/// allocation: the `Sleep` lives in the box the binding returns.
#[pin_project::pin_project]
struct TokioSleep {
    #[pin]
    inner: tokio::time::Sleep,
}

impl Future for TokioSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let inner = self.project().inner;
        catch_unwind(AssertUnwindSafe(|| inner.poll(cx))).unwrap_or(Poll::Ready(()))
    }
}

/// An awith [`Runtime`] on the tokio runtime this thread runs in.
///
/// Each call makes a runtime with its own cleanup registry: make one and
/// clone it.
///
/// # Errors
///
/// [`Error::NoRuntime`] outside a tokio runtime; [`Error::TimersDisabled`] if
/// it was built without timers.
///
/// ```
/// # let tokio_rt = tokio::runtime::Runtime::new().unwrap();
/// # tokio_rt.block_on(async {
/// let rt = awith::tokio::runtime().unwrap();
/// # });
/// assert_eq!(awith::tokio::runtime().unwrap_err(), awith::tokio::Error::NoRuntime);
/// ```
pub fn runtime() -> Result<Runtime, Error> {
    Tokio::current().map(Runtime::new)
}

/// An awith [`Runtime`] on the tokio runtime behind `handle`.
///
/// # Errors
///
/// [`Error::TimersDisabled`] if the runtime was built without timers.
///
/// ```
/// let tokio_rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let err = awith::tokio::from_handle(tokio_rt.handle().clone()).unwrap_err();
/// assert_eq!(err, awith::tokio::Error::TimersDisabled);
/// ```
pub fn from_handle(handle: Handle) -> Result<Runtime, Error> {
    Tokio::new(handle).map(Runtime::new)
}

/// Why a tokio binding could not be made.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Not called from inside a tokio runtime; pass a `Handle` instead.
    NoRuntime,
    /// The tokio runtime was built without timers; build it with
    /// `enable_time()` or `enable_all()`.
    TimersDisabled,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::NoRuntime => {
                "no tokio runtime is running on this thread: call this inside one, \
                 or use `from_handle`"
            }
            Error::TimersDisabled => {
                "the tokio runtime has timers disabled: build it with `enable_time()` \
                 or `enable_all()`"
            }
        })
    }
}

impl std::error::Error for Error {}
