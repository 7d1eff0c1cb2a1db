//! `start` / [`Started`]: spawn a child and wait until it reports that it
//! is ready, with a value — trio's `nursery.start`, anyio's `tg.start`.
//!
//! The start and its child share a [`Slot`]: the child reports into it
//! ([`Started::started`]), or, until it has reported, its failure and its
//! end go there for the start to return; the start takes what is there, or,
//! dropped, leaves. No user code runs under the slot's lock: values are
//! moved in and out, and the waker is woken after it is released.

use std::fmt;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::task::{Context, Poll};

use super::handle::ChildHandle;
use super::shared::{Shared, describe, discard, drop_caught};
use super::{FailedTask, GroupSpawnError, Joined, SetSlot, launch};
use crate::exit::Cancel;
use crate::rt::{Incident, Runtime};
use crate::sync::{AtomicWaker, Mutex, lock};
use crate::time::drop_reason;
use crate::util::{Panic, panic_message};

/// Why a start failed: the child did not report that it started.
///
/// Until it has reported, a started child belongs to its start's caller: an
/// error it returns is given back here ([`StartError::Failed`]) and is not
/// the group's, so the group is not cancelled by it. A panic is still the
/// group's (the group resumes it once every child has ended); the start only
/// says it happened.
///
/// ```
/// use std::io;
/// use awith::group::{StartError, Started, TaskGroup};
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let rt = awith::runtime()?;
///     let outcome = TaskGroup::<io::Error>::with(&rt, async |group| {
///         let failed = group
///             .start(|_ready: Started<u16>| async {
///                 Err::<(), _>(io::Error::from(io::ErrorKind::AddrInUse))
///             })
///             .await;
///         assert!(matches!(
///             failed,
///             Err(StartError::Failed(e)) if e.kind() == io::ErrorKind::AddrInUse
///         ));
///         Ok("the group goes on")
///     })
///     .await?;
///     assert_eq!(outcome, "the group goes on");
///     Ok(())
/// }
/// ```
#[non_exhaustive]
#[derive(Debug)]
pub enum StartError<E> {
    /// The child returned this error before it reported; the error is the
    /// caller's, not the group's.
    Failed(E),
    /// The child panicked before it reported (in its future, or in the
    /// closure that makes it): the panic's message. The group resumes the
    /// panic once every child has ended.
    Panicked(String),
    /// The child returned `Ok` before it reported; its value was dropped.
    Ended,
    /// The child was cancelled before it reported, for this reason (its
    /// group was cancelled). A start in a group already cancelled fails so
    /// at once, and runs nothing.
    Cancelled(Cancel),
    /// The runtime dropped the child before it reported (it shut down).
    Lost,
    /// The child could not be spawned: the group has ended, or the runtime
    /// refused the task.
    Spawn(GroupSpawnError),
}

impl<E: fmt::Display> fmt::Display for StartError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const BEFORE: &str = "before it reported that it started";
        match self {
            StartError::Failed(error) => write!(f, "the child failed {BEFORE}: {error}"),
            StartError::Panicked(message) => write!(f, "the child panicked {BEFORE}: {message}"),
            StartError::Ended => write!(f, "the child ended {BEFORE}"),
            StartError::Cancelled(reason) => {
                write!(f, "the child was cancelled {BEFORE} ({reason})")
            }
            StartError::Lost => write!(f, "the runtime dropped the child {BEFORE}"),
            StartError::Spawn(error) => write!(f, "{error}"),
        }
    }
}

/// Its `Display` includes the child's error; its `source` is that error's
/// source (as [`ScopeError`](crate::ScopeError) does).
impl<E: std::error::Error + 'static> std::error::Error for StartError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Failed(error) => error.source(),
            _ => None,
        }
    }
}

/// A started child's token: it reports, once, that the child is ready, with
/// a value for its start to return (a server's bound address).
///
/// [`started`](Self::started) takes the token, so a child reports at most
/// once — a second report does not compile:
///
/// ```compile_fail,E0382
/// use awith::group::Started;
///
/// fn twice(ready: Started<u16>) {
///     ready.started(1);
///     ready.started(2); // error[E0382]: use of moved value: `ready`
/// }
/// ```
///
/// A token dropped without reporting does not end the start: the start
/// waits for the child to end, then fails ([`StartError::Ended`]).
pub struct Started<V> {
    slot: Arc<dyn Report<V>>,
}

impl<V> Started<V> {
    /// Reports that the child is ready, with `value`: its start returns it.
    /// From now on the child's errors are its group's.
    ///
    /// If nobody waits any more (the start was dropped — its caller was
    /// cancelled, and this child is being cancelled too), `value` is
    /// dropped here.
    ///
    /// ```
    /// use std::io;
    /// use awith::group::{Started, TaskGroup};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let port = TaskGroup::<io::Error>::with(&rt, async |group| {
    ///     let (port, _server) = group
    ///         .start(|ready: Started<u16>| async move {
    ///             ready.started(8080);
    ///             Ok(())
    ///         })
    ///         .await
    ///         .map_err(io::Error::other)?;
    ///     Ok(port)
    /// })
    /// .await?;
    /// assert_eq!(port, 8080);
    /// # Ok(())
    /// # }
    /// ```
    pub fn started(self, value: V) {
        // Given back when nobody waits: dropped here, in the child.
        drop(self.slot.report(value));
    }
}

impl<V> fmt::Debug for Started<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Started").finish_non_exhaustive()
    }
}

/// Where a start is, as its slot holds it.
enum State<V, E> {
    /// The child has not reported, failed or ended; the start waits.
    Waiting,
    Reported(V),
    Failed(E),
    Panicked(String),
    Ended,
    Cancelled(Cancel),
    Lost,
    /// The start took its outcome.
    Taken,
    /// The start was dropped.
    Gone,
}

/// What a start and its child share.
struct Slot<V, E> {
    state: Mutex<State<V, E>>,
    /// The start, waiting.
    waker: AtomicWaker,
}

impl<V, E> Slot<V, E> {
    /// Moves to `next` if the start waits: `Err(next)` given back if not.
    /// Nothing is dropped under the lock (the state replaced is `Waiting`).
    fn settle(&self, next: State<V, E>) -> Result<(), State<V, E>> {
        {
            let mut state = lock(&self.state);
            if !matches!(*state, State::Waiting) {
                return Err(next);
            }
            *state = next;
        }
        self.waker.wake();
        Ok(())
    }

    /// The start's poll: the outcome, once there.
    fn poll(&self, cx: &mut Context<'_>) -> Poll<State<V, E>> {
        // Registered before the look: an outcome stored in between still
        // wakes the start.
        self.waker.register(cx.waker());
        let mut state = lock(&self.state);
        match std::mem::replace(&mut *state, State::Taken) {
            State::Waiting => {
                *state = State::Waiting;
                Poll::Pending
            }
            taken => Poll::Ready(taken),
        }
    }

    /// The start is dropped: what was left for it, for the caller to deal
    /// with, no lock held.
    fn leave(&self) -> State<V, E> {
        std::mem::replace(&mut *lock(&self.state), State::Gone)
    }
}

/// The child's side of a slot, without its value's type.
pub(super) trait StartHook<E>: Send + Sync {
    /// The child failed before it reported: the start takes the error, or
    /// gives it back (it has gone, or the child had reported).
    fn claim(&self, error: E) -> Result<(), E>;
    /// The child panicked; the start, if it waits, fails with the message.
    fn panicked(&self, panic: &Panic);
    /// The child ended, `Ok` (`None`) or not: `true` if the start waited —
    /// it fails now, and the child's value goes nowhere.
    fn ended(&self, joined: Option<Joined>) -> bool;
}

impl<V: Send, E: Send> StartHook<E> for Slot<V, E> {
    fn claim(&self, error: E) -> Result<(), E> {
        self.settle(State::Failed(error))
            .map_err(|back| match back {
                State::Failed(error) => error,
                _ => unreachable!("given back as given"),
            })
    }

    fn panicked(&self, panic: &Panic) {
        let _ = self.settle(State::Panicked(panic_message(panic)));
    }

    fn ended(&self, joined: Option<Joined>) -> bool {
        let next = match joined {
            Some(Joined::Cancelled(reason)) => State::Cancelled(reason),
            Some(Joined::Lost) => State::Lost,
            // Its panic was told as it happened; a start still waiting here
            // missed no message.
            Some(Joined::Panicked) => State::Panicked("the child panicked".to_owned()),
            None | Some(Joined::Failed | Joined::Taken) => State::Ended,
        };
        self.settle(next).is_ok()
    }
}

/// The token's side of a slot, without the error's type.
trait Report<V>: Send + Sync {
    fn report(&self, value: V) -> Result<(), V>;
}

impl<V: Send, E: Send> Report<V> for Slot<V, E> {
    fn report(&self, value: V) -> Result<(), V> {
        self.settle(State::Reported(value))
            .map_err(|back| match back {
                State::Reported(value) => value,
                _ => unreachable!("given back as given"),
            })
    }
}

/// A start in progress: dropped before the child reported, it cancels the
/// child — for the reason it is dropped — which its caller owned until
/// then; an error the child left for it is reported, nobody being left to
/// return it to.
struct Waiting<'a, V, T: Send + 'static, E: fmt::Debug> {
    slot: &'a Slot<V, E>,
    handle: Option<ChildHandle<T>>,
    rt: &'a Runtime,
    name: Option<Arc<str>>,
}

impl<V, T: Send + 'static, E: fmt::Debug> Drop for Waiting<'_, V, T, E> {
    fn drop(&mut self) {
        match self.slot.leave() {
            State::Waiting => {
                if let Some(handle) = &self.handle {
                    handle.cancel_for(drop_reason());
                }
            }
            State::Failed(error) => {
                let by = FailedTask::Child(self.name.clone());
                let work = by.work();
                self.rt.report(Incident::Unreturned {
                    work,
                    failure: by.tell(describe(&error)),
                });
                if let Some(panic) = drop_caught(error) {
                    self.rt.report(Incident::Unreturned {
                        work,
                        failure: by.tell(panic_message(&panic)),
                    });
                    if let Some(again) = discard(panic) {
                        self.rt.report(Incident::Unreturned {
                            work,
                            failure: by.tell(again),
                        });
                    }
                }
            }
            // A value reported and never taken is dropped here, as a
            // handle drops a value it was left.
            State::Reported(value) => drop(value),
            _ => {}
        }
    }
}

/// Starts `child` in the group of `shared`: see [`TaskGroup::start`](super::TaskGroup::start).
pub(super) async fn start<V, T, E, F, Fut>(
    rt: &Runtime,
    shared: &Arc<Shared<E>>,
    set: Option<&SetSlot>,
    name: Option<Arc<str>>,
    child: F,
) -> Result<(V, ChildHandle<T>), StartError<E>>
where
    V: Send + 'static,
    T: Send + 'static,
    E: fmt::Debug + Send + 'static,
    F: FnOnce(Started<V>) -> Fut,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    // Counted first: from here the group waits for this child (and a
    // failure of its closure is not recorded into a group that has closed).
    if !shared.spawned() {
        return Err(StartError::Spawn(GroupSpawnError::Closed));
    }
    if let Some(reason) = shared.cancelled() {
        shared.child_ended();
        return Err(StartError::Cancelled(reason));
    }
    let slot = Arc::new(Slot::<V, E> {
        state: Mutex::new(State::Waiting),
        waker: AtomicWaker::new(),
    });
    let token = Started {
        slot: Arc::clone(&slot) as Arc<dyn Report<V>>,
    };
    let future = match catch_unwind(AssertUnwindSafe(|| child(token))) {
        Ok(future) => future,
        Err(panic) => {
            // The child's code: its panic is the child's, and the group's.
            let message = panic_message(&panic);
            shared.failed(FailedTask::Child(name), Err(panic));
            shared.child_ended();
            return Err(StartError::Panicked(message));
        }
    };
    let hook = Arc::clone(&slot) as Arc<dyn StartHook<E>>;
    let handle = match launch(rt, shared, set, name.clone(), Some(hook), future) {
        Ok(handle) => handle,
        Err(refused) => return Err(StartError::Spawn(GroupSpawnError::Runtime(refused))),
    };
    let mut waiting = Waiting {
        slot: &slot,
        handle: Some(handle),
        rt,
        name,
    };
    let outcome = poll_fn(|cx| slot.poll(cx)).await;
    match outcome {
        State::Reported(value) => match waiting.handle.take() {
            Some(handle) => Ok((value, handle)),
            None => unreachable!("the handle is kept until the start ends"),
        },
        State::Failed(error) => Err(StartError::Failed(error)),
        State::Panicked(message) => Err(StartError::Panicked(message)),
        State::Ended => Err(StartError::Ended),
        State::Cancelled(reason) => Err(StartError::Cancelled(reason)),
        State::Lost => Err(StartError::Lost),
        State::Waiting | State::Taken | State::Gone => {
            unreachable!("a start takes its outcome once")
        }
    }
}

/// Model checks of the start's hand-off (`ci/loom.sh`): a start never
/// misses its child's report, and a report racing the start's drop leaves
/// the value with exactly one of them.
#[cfg(all(test, loom))]
#[allow(clippy::unwrap_used)]
mod loom_tests {
    use std::future::poll_fn;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering as StdOrdering};

    use super::{Report, Slot, State};
    use crate::sync::{AtomicWaker, Mutex};

    fn slot<V>() -> Arc<Slot<V, ()>> {
        Arc::new(Slot {
            state: Mutex::new(State::Waiting),
            waker: AtomicWaker::new(),
        })
    }

    /// The child reports on another thread while the start waits: the
    /// start wakes and takes the value.
    #[test]
    fn start_sees_the_report() {
        crate::sync::model(|| {
            let slot = slot::<u32>();
            let child = Arc::clone(&slot);
            let report = loom::thread::spawn(move || assert!(child.report(7).is_ok()));
            let got = loom::future::block_on(poll_fn(|cx| slot.poll(cx)));
            assert!(matches!(got, State::Reported(7)));
            report.join().unwrap();
        });
    }

    /// Counts its drops.
    struct Counted(Arc<StdAtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, StdOrdering::SeqCst);
        }
    }

    /// The child reports while the start is dropped: the value is dropped
    /// exactly once — by the start if it was there to take, else given
    /// back to the child — and the slot is left gone.
    #[test]
    fn report_races_the_start_dropped() {
        crate::sync::model(|| {
            let drops = Arc::new(StdAtomicUsize::new(0));
            let slot = slot::<Counted>();
            let child = Arc::clone(&slot);
            let value = Counted(Arc::clone(&drops));
            let report = loom::thread::spawn(move || drop(child.report(value)));
            drop(slot.leave());
            report.join().unwrap();
            assert_eq!(drops.load(StdOrdering::SeqCst), 1);
            assert!(matches!(*crate::sync::lock(&slot.state), State::Gone));
        });
    }
}
