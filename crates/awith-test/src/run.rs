//! [`run`]: one test on a fresh runtime of one kind, checked at the end.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use awith_core::Runtime;
use awith_core::rt::Binding;
use futures::FutureExt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::env::{Env, Incidents, RuntimeKind};
use crate::harness::{Harness, SharedBinding};

/// The cleanup timeout of the runtime a test gets: generous, so that only a
/// test that means to hit it does.
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a test may take on a real runtime unless it says otherwise
/// (`timeout = ".."`). On the reference runtime a stuck test is detected
/// instead (it has nothing left to run), and there is no timeout unless the
/// test sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// How long the end of a test waits for the runtime's cleanups (releases of
/// cancelled scopes, a pool's destroys) to end before it fails the test.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// How a test is run: built by `#[awith::test]`'s arguments.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    name: &'static str,
    timeout: Option<Duration>,
    allow_incidents: bool,
    drain_deadline: Duration,
}

impl Options {
    /// The defaults: [`DEFAULT_TIMEOUT`] on real runtimes, incidents fail the
    /// test, cleanups drained for up to [`DRAIN_DEADLINE`].
    pub const fn new() -> Self {
        Options {
            name: "",
            timeout: None,
            allow_incidents: false,
            drain_deadline: DRAIN_DEADLINE,
        }
    }

    /// The test's name, for its failure messages.
    #[must_use]
    pub const fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// Fails the test if it has not ended `timeout` after it started. On the
    /// reference runtime the timeout is virtual: it fires when the test has
    /// waited that long on the virtual clock (which jumps whenever nothing
    /// can run, so a test waiting for another thread should not set one
    /// there).
    #[must_use]
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The test provokes incidents on purpose and checks
    /// [`Env::incidents`] itself: the ones left at its end do not fail it.
    /// Cleanups still pending after the drain still do.
    #[must_use]
    pub const fn allow_incidents(mut self) -> Self {
        self.allow_incidents = true;
        self
    }

    /// How long the end of the test waits for cleanups.
    #[must_use]
    pub const fn drain_deadline(mut self, deadline: Duration) -> Self {
        self.drain_deadline = deadline;
        self
    }
}

impl Default for Options {
    fn default() -> Self {
        Options::new()
    }
}

/// What an `#[awith::test]` function may return: `()`, or a `Result` whose
/// error fails the test.
pub trait Outcome {
    /// `Err` with the failure's text when the test failed.
    ///
    /// # Errors
    ///
    /// The test returned an error.
    fn into_result(self) -> Result<(), String>;
}

impl Outcome for () {
    fn into_result(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: fmt::Debug> Outcome for Result<(), E> {
    fn into_result(self) -> Result<(), String> {
        self.map_err(|error| format!("{error:?}"))
    }
}

/// An awith runtime over `binding` whose incidents are recorded, not
/// printed.
///
/// # Panics
///
/// If `cleanup_timeout` is zero (the builder refuses it).
pub fn recording_runtime(binding: impl Binding, cleanup_timeout: Duration) -> (Runtime, Incidents) {
    let incidents = Incidents::default();
    let hook = incidents.clone();
    let rt = Runtime::builder(binding)
        .cleanup_timeout(cleanup_timeout)
        .on_incident(move |incident| hook.record(incident))
        .build()
        .unwrap_or_else(|error| panic!("awith-test: a recording runtime: {error}"));
    (rt, incidents)
}

/// Runs `test` on a fresh runtime of kind `H`, then checks what it left:
///
/// 1. builds the runtime and checks that the test's main future runs on it;
/// 2. runs the test, bounded by its timeout;
/// 3. drains the runtime's cleanups ([`Runtime::drain`]);
/// 4. fails (panics) if the test failed, timed out, left a cleanup pending
///    after the drain, or left an incident it did not
///    [take](Incidents::take) — naming the test, the runtime and every
///    problem at once.
///
/// This is what each `#[test]` of `#[awith::test]` calls.
///
/// # Panics
///
/// On any of the failures above, and when the test panics.
pub fn run<H, F, Fut>(options: Options, test: F)
where
    H: Harness,
    F: FnOnce(Env) -> Fut,
    Fut: Future,
    Fut::Output: Outcome,
{
    let harness = H::new();
    let binding: SharedBinding = Arc::new(harness.binding());
    let (rt, incidents) = recording_runtime(Arc::clone(&binding), CLEANUP_TIMEOUT);
    assert_eq!(
        rt.name(),
        H::NAME,
        "awith-test: the {} binding names another runtime",
        H::LABEL
    );
    let identity = harness.identity();
    let env = Env {
        rt: rt.clone(),
        incidents: incidents.clone(),
        identity: Arc::clone(&identity),
        binding,
        virtual_time: H::VIRTUAL_TIME,
        parallel: H::PARALLEL,
        kind: RuntimeKind::of::<H>(),
    };
    let timeout = options
        .timeout
        .or((!H::VIRTUAL_TIME).then_some(DEFAULT_TIMEOUT));
    let (outcome, drained) = harness.block_on(async {
        if let Err(why) = identity() {
            panic!(
                "{}: the test's main future does not run on {}: {why}",
                name(&options),
                H::LABEL
            );
        }
        // Stopped at its timeout, the test's future is dropped here, so that
        // the cleanups of the scopes it had open are spawned before the drain
        // below and their failures told; a panic of that drop is told too.
        let mut test = Box::pin(test(env));
        let outcome = match timeout {
            None => test.as_mut().await.into_result(),
            Some(timeout) => {
                futures::select_biased! {
                    output = test.as_mut().fuse() => output.into_result(),
                    () = rt.sleep(timeout).fuse() => Err(format!(
                        "did not finish within {timeout:?}{}",
                        if H::VIRTUAL_TIME { " of virtual time" } else { "" }
                    )),
                }
            }
        };
        let dropped = catch_unwind(AssertUnwindSafe(|| drop(test))).map_err(|payload| {
            format!(
                "dropping the test{} panicked: {}",
                if outcome.is_err() {
                    " at its timeout"
                } else {
                    ""
                },
                panic_message(&*payload)
            )
        });
        let outcome = match (outcome, dropped) {
            (Ok(()), dropped) => dropped,
            (Err(failure), Ok(())) => Err(failure),
            (Err(failure), Err(drop_panic)) => Err(format!("{failure}; {drop_panic}")),
        };
        (outcome, rt.drain(options.drain_deadline).await)
    });
    let mut problems = Vec::new();
    if let Err(failure) = outcome {
        problems.push(format!("the test failed: {failure}"));
    }
    if let Err(error) = drained {
        let stats = error.stats;
        problems.push(format!(
            "{} cleanup task(s) still running {:?} after the test ended: a release, \
             acquire or destroy awith runs after a cancellation did not end \
             ({} spawned, {} completed)",
            stats.pending, error.deadline, stats.spawned, stats.completed
        ));
    }
    if !options.allow_incidents {
        problems.extend(
            incidents
                .take()
                .into_iter()
                .map(|incident| format!("incident: {incident}")),
        );
    }
    if !problems.is_empty() {
        panic!(
            "{} on {}:\n  - {}",
            name(&options),
            H::LABEL,
            problems.join("\n  - ")
        );
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a payload that is not text)".into())
}

fn name(options: &Options) -> &'static str {
    if options.name.is_empty() {
        "the test"
    } else {
        options.name
    }
}
