//! The reference runtime: a deterministic, single-threaded executor with a
//! virtual clock, for tests.
//!
//! [`Reference`] runs one main future and the tasks spawned through its
//! [`Runtime`] on the calling thread, in a fixed FIFO order. Time is virtual:
//! when nothing can run, the clock jumps to the earliest pending timer. A
//! 10-second sleep therefore returns at once and exactly 10 virtual seconds
//! later, which makes timing tests exact and fast.
//!
//! It assumes that everything it waits for runs on it. A future waiting on
//! another thread still works (wakers are thread-safe), but the clock may jump
//! ahead while that thread works, as with tokio's paused clock; and if nothing
//! can run, no timer is pending and no other thread wakes anything within
//! [`STALL_TIMEOUT`], [`Reference::block_on`] gives up with [`Stalled`].
//!
//! # Examples
//!
//! Its topic is testing, so its examples run on it, not on tokio: programs
//! use a real runtime (`awith::runtime()`), and a test of code written for
//! any [`Runtime`] can hand it this one to get an exact, repeatable run. An
//! hour-long sleep in a spawned task (the channel is the `futures` crate's):
//!
//! ```
//! use std::time::Duration;
//! use awith::reference::Reference;
//!
//! let reference = Reference::new();
//! let rt = reference.runtime();
//! let (tx, rx) = futures::channel::oneshot::channel();
//! let output = reference.block_on(async {
//!     let sleeper = rt.clone();
//!     rt.spawn(async move {
//!         sleeper.sleep(Duration::from_secs(3600)).await;
//!         tx.send("an hour later").unwrap();
//!     })
//!     .unwrap();
//!     rx.await.unwrap()
//! });
//! assert_eq!(output, Ok("an hour later"));
//! assert_eq!(reference.elapsed(), Duration::from_secs(3600));
//! ```

use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures::task::{ArcWake, waker, waker_ref};

use crate::rt::{Binding, Runtime, Sleep, SpawnError, Task};

/// How long [`Reference::block_on`] waits, in real time, for a wake-up from
/// another thread when nothing can run and no timer is pending.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(5);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static CURRENT: Cell<u64> = const { Cell::new(0) };
}

/// The id of the reference runtime running on this thread, if any.
///
/// ```
/// use awith::reference::{Reference, current_id};
///
/// let reference = Reference::new();
/// assert_eq!(current_id(), None);
/// assert_eq!(reference.block_on(async { current_id() }), Ok(Some(reference.id())));
/// ```
pub fn current_id() -> Option<u64> {
    match CURRENT.with(Cell::get) {
        0 => None,
        id => Some(id),
    }
}

/// A deterministic single-threaded executor with a virtual clock.
/// See the [module docs](self).
pub struct Reference {
    shared: Arc<Shared>,
}

struct Shared {
    id: u64,
    start: Instant,
    state: Mutex<State>,
    wakeup: Condvar,
}

#[derive(Default)]
struct State {
    ready: VecDeque<Arc<TaskCell>>,
    all: Vec<Weak<TaskCell>>,
    main_woken: bool,
    now: Duration,
    timers: BTreeMap<(Duration, u64), Waker>,
    next_timer: u64,
    closed: bool,
    spawned: u64,
    panicked: u64,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// [`Reference::block_on`] could not finish: nothing could run, no timer was
/// pending, and no other thread woke anything within [`STALL_TIMEOUT`] — the
/// main future waits for something that will never happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stalled {
    /// Virtual time elapsed when it stalled.
    pub at: Duration,
}

impl fmt::Display for Stalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the reference runtime stalled at {:?}: nothing can run, no timer is pending \
             and nothing woke it for {:?}",
            self.at, STALL_TIMEOUT
        )
    }
}

impl std::error::Error for Stalled {}

impl Reference {
    /// A new reference runtime at virtual time zero.
    pub fn new() -> Self {
        Reference {
            shared: Arc::new(Shared {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                start: Instant::now(),
                state: Mutex::new(State::default()),
                wakeup: Condvar::new(),
            }),
        }
    }

    /// This runtime's id, as [`current_id`] reports it while it runs.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The binding, for [`Runtime::builder`].
    pub fn binding(&self) -> ReferenceBinding {
        ReferenceBinding {
            shared: Arc::downgrade(&self.shared),
        }
    }

    /// A [`Runtime`] that spawns onto this executor. Each call makes a new
    /// runtime with its own cleanup registry: make one and clone it.
    pub fn runtime(&self) -> Runtime {
        Runtime::new(self.binding())
    }

    /// Virtual time elapsed since this runtime was made.
    pub fn elapsed(&self) -> Duration {
        self.shared.state().now
    }

    /// Tasks spawned so far.
    pub fn spawned(&self) -> u64 {
        self.shared.state().spawned
    }

    /// Tasks that panicked (each was dropped at its panic, as tokio does).
    pub fn panicked(&self) -> u64 {
        self.shared.state().panicked
    }

    /// Runs `future` to completion on this thread, together with the spawned
    /// tasks. A panic of `future` propagates; a task's panic is caught and
    /// counted ([`panicked`](Self::panicked)).
    ///
    /// # Errors
    ///
    /// [`Stalled`] when the future can never complete (see the module docs),
    /// or when called while this thread already runs a reference runtime.
    pub fn block_on<F: Future>(&self, future: F) -> Result<F::Output, Stalled> {
        if current_id().is_some() {
            return Err(Stalled { at: self.elapsed() });
        }
        let _current = CurrentGuard::enter(self.shared.id);
        let main_waker = waker(Arc::new(MainWake {
            shared: Arc::downgrade(&self.shared),
        }));
        let mut cx = Context::from_waker(&main_waker);
        let mut future = pin!(future);
        self.shared.state().main_woken = true;
        loop {
            let main_woken = std::mem::take(&mut self.shared.state().main_woken);
            if main_woken {
                if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                    return Ok(output);
                }
            }
            let batch = std::mem::take(&mut self.shared.state().ready);
            let ran = !batch.is_empty();
            for task in batch {
                self.run_task(&task);
            }
            if main_woken || ran {
                continue;
            }
            self.idle()?;
        }
    }

    /// Nothing ran in the last round: fire due timers, or advance the clock to
    /// the next one, or wait for a wake-up from another thread.
    fn idle(&self) -> Result<(), Stalled> {
        let mut state = self.shared.state();
        if state.main_woken || !state.ready.is_empty() {
            return Ok(());
        }
        if let Some((&(deadline, _), _)) = state.timers.first_key_value() {
            state.now = state.now.max(deadline);
            let now = state.now;
            let later = state.timers.split_off(&(now, u64::MAX));
            let due = std::mem::replace(&mut state.timers, later);
            drop(state);
            due.into_values().for_each(Waker::wake);
            return Ok(());
        }
        let (state, waited) = self
            .shared
            .wakeup
            .wait_timeout_while(state, STALL_TIMEOUT, |s| {
                !s.main_woken && s.ready.is_empty() && s.timers.is_empty()
            })
            .unwrap_or_else(PoisonError::into_inner);
        if waited.timed_out() {
            return Err(Stalled { at: state.now });
        }
        Ok(())
    }

    fn run_task(&self, task: &Arc<TaskCell>) {
        task.queued.store(false, Ordering::SeqCst);
        // The future is taken out of its cell while it runs: no lock is held
        // while user code is polled (or dropped).
        let Some(mut future) = task.take() else {
            return;
        };
        let waker = waker_ref(task);
        let mut cx = Context::from_waker(&waker);
        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx))) {
            // Back into its cell (tasks run only here, one at a time, and
            // the runtime cannot shut down while `block_on` runs).
            Ok(Poll::Pending) => {
                *task.future.lock().unwrap_or_else(PoisonError::into_inner) = Some(future);
            }
            Ok(Poll::Ready(())) => drop(future),
            Err(_panic) => {
                self.shared.state().panicked += 1;
                drop(future);
            }
        }
    }
}

impl Default for Reference {
    fn default() -> Self {
        Reference::new()
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.state();
        f.debug_struct("Reference")
            .field("id", &self.shared.id)
            .field("elapsed", &state.now)
            .field("ready", &state.ready.len())
            .field("timers", &state.timers.len())
            .finish_non_exhaustive()
    }
}

/// Dropping the runtime shuts it down: tasks that have not finished are
/// dropped (cleanup tasks among them report it), and later spawns fail.
impl Drop for Reference {
    fn drop(&mut self) {
        let (ready, all, timers) = {
            let mut state = self.shared.state();
            state.closed = true;
            (
                std::mem::take(&mut state.ready),
                std::mem::take(&mut state.all),
                std::mem::take(&mut state.timers),
            )
        };
        let futures: Vec<Option<Task>> = all
            .iter()
            .filter_map(Weak::upgrade)
            .map(|cell| cell.take())
            .collect();
        drop(futures);
        drop(ready);
        drop(timers);
    }
}

struct CurrentGuard;

impl CurrentGuard {
    fn enter(id: u64) -> Self {
        CURRENT.with(|current| current.set(id));
        CurrentGuard
    }
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        CURRENT.with(|current| current.set(0));
    }
}

struct MainWake {
    shared: Weak<Shared>,
}

impl ArcWake for MainWake {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        if let Some(shared) = arc_self.shared.upgrade() {
            shared.state().main_woken = true;
            shared.wakeup.notify_one();
        }
    }
}

struct TaskCell {
    shared: Weak<Shared>,
    future: Mutex<Option<Task>>,
    queued: AtomicBool,
}

impl TaskCell {
    fn take(&self) -> Option<Task> {
        self.future
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl ArcWake for TaskCell {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        if arc_self.queued.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(shared) = arc_self.shared.upgrade() {
            let mut state = shared.state();
            if !state.closed {
                state.ready.push_back(arc_self.clone());
                shared.wakeup.notify_one();
            }
        }
    }
}

/// The [`Binding`] of a [`Reference`] runtime. It holds the executor weakly:
/// once the `Reference` is dropped, spawning fails.
#[derive(Clone, Debug)]
pub struct ReferenceBinding {
    shared: Weak<Shared>,
}

impl Binding for ReferenceBinding {
    fn name(&self) -> &'static str {
        "reference"
    }

    fn spawn(&self, task: Task) -> Result<(), SpawnError> {
        let Some(shared) = self.shared.upgrade() else {
            return Err(SpawnError::new("reference", task));
        };
        let mut state = shared.state();
        if state.closed {
            return Err(SpawnError::new("reference", task));
        }
        let cell = Arc::new(TaskCell {
            shared: self.shared.clone(),
            future: Mutex::new(Some(task)),
            queued: AtomicBool::new(true),
        });
        state.spawned += 1;
        if state.all.len() >= 64 && state.all.len().is_power_of_two() {
            state.all.retain(|cell| cell.strong_count() > 0);
        }
        state.all.push(Arc::downgrade(&cell));
        state.ready.push_back(cell);
        shared.wakeup.notify_one();
        Ok(())
    }

    /// A timer whose deadline is too far for the clock to reach (the
    /// runtime's start plus it is not an `Instant`) never fires: the clock
    /// never jumps there, so [`now`](Binding::now) stays valid.
    fn sleep(&self, duration: Duration) -> Sleep {
        let deadline = self.shared.upgrade().and_then(|shared| {
            let deadline = shared.state().now.checked_add(duration)?;
            shared.start.checked_add(deadline).map(|_| deadline)
        });
        Box::pin(ReferenceSleep {
            shared: self.shared.clone(),
            deadline,
            key: None,
        })
    }

    fn now(&self) -> Instant {
        match self.shared.upgrade() {
            Some(shared) => {
                let now = shared.state().now;
                shared.start + now
            }
            None => Instant::now(),
        }
    }
}

/// A virtual-clock timer; with no deadline, one that never fires.
struct ReferenceSleep {
    shared: Weak<Shared>,
    deadline: Option<Duration>,
    key: Option<(Duration, u64)>,
}

impl Future for ReferenceSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let (Some(shared), Some(deadline)) = (self.shared.upgrade(), self.deadline) else {
            // The runtime is gone, or the deadline is past the end of time:
            // this timer can never fire.
            return Poll::Pending;
        };
        let mut state = shared.state();
        // A waker taken out of the map is dropped after the lock is released:
        // dropping the last handle to a task drops the task, whose own
        // destructors may need the lock.
        if state.now >= deadline {
            let stale = self.key.take().and_then(|key| state.timers.remove(&key));
            drop(state);
            drop(stale);
            return Poll::Ready(());
        }
        let key = match self.key {
            Some(key) => key,
            None => {
                let key = (deadline, state.next_timer);
                state.next_timer += 1;
                key
            }
        };
        let stale = state.timers.insert(key, cx.waker().clone());
        drop(state);
        drop(stale);
        self.key = Some(key);
        Poll::Pending
    }
}

impl Drop for ReferenceSleep {
    fn drop(&mut self) {
        if let (Some(key), Some(shared)) = (self.key, self.shared.upgrade()) {
            let stale = shared.state().timers.remove(&key);
            drop(stale);
        }
    }
}
