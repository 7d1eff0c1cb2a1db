//! [`TaskSet`]: spawning many tasks for one owner, and the [`Handles`] it keeps.

use std::fmt;

use super::{SpawnError, Task};

/// Spawns tasks for one owner, keeping their handles so that each task's
/// memory is freed on the owner's thread, where it was allocated.
///
/// A detached task is freed by whichever worker finishes it. glibc's
/// allocator takes a lock on the arena a chunk came from to free it on
/// another thread, so a task group spawning thousands of short children from
/// one thread has the workers queue on the spawning thread's arena. tokio's
/// `JoinSet` does not: each task is freed on the thread that joins it.
/// Measured on tokio (two workers, 10,000 trivial children): a task group
/// took 1.3× the time of a `JoinSet` with detached children, 0.8× with a
/// task set. A set keeps each handle ([`Handles`]) and drops it on the
/// owner's thread: after the task has finished that frees the task there;
/// before, it detaches it.
///
/// Rules for implementors: [`spawn`](Self::spawn) follows [`Binding::spawn`](super::Binding::spawn)
/// (detached: dropping the set or a handle never cancels a task; an error,
/// never a panic, when the runtime has shut down), and the set is dropped on
/// its owner's thread.
///
/// A set whose tasks each run on a thread of their own (as the
/// [`Binding`](super::Binding) example, with the `futures` crate):
///
/// ```
/// use awith::rt::{Handles, SpawnError, Task, TaskSet};
///
/// /// Runs each task at once on a new thread; keeps the threads' handles.
/// #[derive(Debug)]
/// struct Threads(Handles<std::thread::JoinHandle<()>>);
///
/// impl TaskSet for Threads {
///     fn spawn(&mut self, task: Task) -> Result<(), SpawnError> {
///         let thread = std::thread::spawn(move || futures::executor::block_on(task));
///         self.0.keep(thread);
///         Ok(())
///     }
///
///     fn kept(&self) -> usize {
///         self.0.len()
///     }
/// }
///
/// let mut set = Threads(Handles::new(|thread| thread.is_finished()));
/// let (tx, rx) = std::sync::mpsc::channel();
/// set.spawn(Box::pin(async move { tx.send(7).unwrap() })).unwrap();
/// assert_eq!(rx.recv(), Ok(7));
/// ```
pub trait TaskSet: Send + fmt::Debug {
    /// Spawns a detached task, as [`Binding::spawn`](super::Binding::spawn).
    ///
    /// # Errors
    ///
    /// [`SpawnError`] when the runtime has shut down.
    fn spawn(&mut self, task: Task) -> Result<(), SpawnError>;

    /// How many task handles the set holds now: those of its unfinished
    /// tasks, and of finished ones it has not let go yet.
    fn kept(&self) -> usize;
}

/// The handles a [`TaskSet`] keeps: the ones of finished tasks are dropped
/// (on the owner's thread) whenever the list has doubled since it was last
/// pruned, so it holds no more than 64 handles, or twice as many as were
/// unfinished when it was last pruned — amortized, a handle costs one check.
///
/// ```
/// use awith::rt::Handles;
///
/// // Handles that say whether their task has finished.
/// let mut handles = Handles::new(|finished: &mut bool| *finished);
/// for _ in 0..1000 {
///     handles.keep(true);
/// }
/// assert!(handles.len() <= 64, "finished ones are let go");
/// for _ in 0..1000 {
///     handles.keep(false);
/// }
/// assert!((1000..=1064).contains(&handles.len()), "unfinished ones never are");
/// ```
#[derive(Debug)]
pub struct Handles<H> {
    handles: Vec<H>,
    prune_at: usize,
    finished: fn(&mut H) -> bool,
}

impl<H> Handles<H> {
    /// No handles yet; `finished` says whether a handle's task has finished
    /// (it may poll the handle).
    pub fn new(finished: fn(&mut H) -> bool) -> Self {
        Handles {
            handles: Vec::new(),
            prune_at: Self::MIN_PRUNE,
            finished,
        }
    }

    const MIN_PRUNE: usize = 64;

    /// Keeps `handle` until its task has finished and the list is pruned, or
    /// until this is dropped.
    pub fn keep(&mut self, handle: H) {
        if self.handles.len() >= self.prune_at {
            let finished = self.finished;
            self.handles.retain_mut(|handle| !finished(handle));
            self.prune_at = Self::MIN_PRUNE.max(2 * self.handles.len());
        }
        self.handles.push(handle);
    }

    /// How many handles are kept.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// `true` if none is.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }
}
