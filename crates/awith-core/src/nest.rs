//! Release order across nested scopes, also under cancellation.
//!
//! When a scope is dropped, its release runs as a runtime task. A scope
//! nested inside another's body is dropped *with* that body, so both releases
//! become tasks at once — and on a multi-thread runtime the outer one could
//! run first, releasing a pool while a connection from it is still being
//! returned. Python's `async with` never does that: the inner `__aexit__`
//! finishes before the outer one starts.
//!
//! So every scope *collects* the cleanup tasks that start while its body is
//! being polled or dropped (a thread-local stack of frames: the innermost
//! active scope collects), and its own release — on the normal path or as a
//! cleanup — first waits until each of them has ended (however it ended; each
//! is bounded by the runtime's cleanup timeout).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::sync::{AtomicBool, AtomicWaker, Mutex, MutexGuard, Ordering, lock};

thread_local! {
    /// How many scopes are collecting on this thread (nested polls), and how
    /// many cleanups `STARTED` holds (so that the common case never touches it).
    static DEPTH_AND_LEN: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
    /// Cleanups started while collecting, with the depth that collects them.
    static STARTED: RefCell<Vec<(usize, CleanupDone)>> = const { RefCell::new(Vec::new()) };
}

/// Completes when one cleanup task has ended. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct CleanupDone(Arc<DoneState>);

#[derive(Debug, Default)]
struct DoneState {
    done: AtomicBool,
    waker: AtomicWaker,
}

/// Held by a cleanup task; marks it ended when dropped.
#[derive(Debug)]
pub(crate) struct DoneSignal(Arc<DoneState>);

impl Drop for DoneSignal {
    fn drop(&mut self) {
        self.0.done.store(true, Ordering::Release);
        self.0.waker.wake();
    }
}

impl Future for CleanupDone {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.done.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        self.0.waker.register(cx.waker());
        if self.0.done.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Runs `f`, collecting into `into` the cleanup tasks started on this thread
/// meanwhile (by this scope's body, not by scopes nested deeper, which
/// collect their own). Cheap when nothing starts: two thread-local counter
/// updates and a length check.
#[inline]
pub(crate) fn collecting<T>(into: &mut Vec<CleanupDone>, f: impl FnOnce() -> T) -> T {
    let depth = DEPTH_AND_LEN.try_with(|state| {
        let (depth, len) = state.get();
        state.set((depth + 1, len));
        depth + 1
    });
    let _frame = PopFrame {
        into,
        depth: depth.ok(),
    };
    f()
}

struct PopFrame<'a> {
    into: &'a mut Vec<CleanupDone>,
    depth: Option<usize>,
}

impl Drop for PopFrame<'_> {
    #[inline]
    fn drop(&mut self) {
        let Some(depth) = self.depth else {
            return;
        };
        let started = DEPTH_AND_LEN.try_with(|state| {
            let (_, len) = state.get();
            state.set((depth - 1, len));
            len
        });
        if started.unwrap_or(0) > 0 {
            self.take_started(depth);
        }
    }
}

impl PopFrame<'_> {
    #[cold]
    fn take_started(&mut self, depth: usize) {
        let _ = STARTED.try_with(|started| {
            let mut started = started.borrow_mut();
            while started.last().is_some_and(|(at, _)| *at >= depth) {
                if let Some((_, done)) = started.pop() {
                    self.into.push(done);
                }
            }
            let _ = DEPTH_AND_LEN.try_with(|state| state.set((depth - 1, started.len())));
        });
    }
}

/// Called when a cleanup task starts: if a scope is collecting on this
/// thread, it gets the task's [`CleanupDone`] and the task the signal.
pub(crate) fn register() -> Option<DoneSignal> {
    let (depth, _) = DEPTH_AND_LEN.try_with(Cell::get).ok()?;
    if depth == 0 {
        return None;
    }
    let state = Arc::new(DoneState::default());
    STARTED
        .try_with(|started| {
            let mut started = started.borrow_mut();
            started.push((depth, CleanupDone(Arc::clone(&state))));
            let _ = DEPTH_AND_LEN.try_with(|s| s.set((depth, started.len())));
        })
        .ok()?;
    Some(DoneSignal(state))
}

/// Hands cleanups collected by a scope that has nothing of its own to
/// release on to the scope collecting around it (if any), so that it still
/// waits for them.
pub(crate) fn forward(list: Vec<CleanupDone>) {
    if list.is_empty() {
        return;
    }
    let Ok((depth, _)) = DEPTH_AND_LEN.try_with(Cell::get) else {
        return;
    };
    if depth == 0 {
        return;
    }
    let _ = STARTED.try_with(|started| {
        let mut started = started.borrow_mut();
        started.extend(list.into_iter().map(|done| (depth, done)));
        let _ = DEPTH_AND_LEN.try_with(|s| s.set((depth, started.len())));
    });
}

/// Polls a future inside [`collecting`], keeping what it collects: a cleanup
/// task runs its work this way, then waits for the cleanups that work
/// started (a combined acquire dropped at its timeout releases its parts in
/// tasks of their own) before it counts as ended.
#[pin_project::pin_project]
pub(crate) struct Collecting<F> {
    #[pin]
    inner: F,
    started: Vec<CleanupDone>,
}

impl<F> Collecting<F> {
    pub(crate) fn new(inner: F) -> Self {
        Collecting {
            inner,
            started: Vec::new(),
        }
    }
}

impl<F: Future> Future for Collecting<F> {
    type Output = (F::Output, Vec<CleanupDone>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        let polled = collecting(this.started, || inner.poll(cx));
        polled.map(|output| (output, std::mem::take(this.started)))
    }
}

/// The cleanups of scopes cancelled inside a scope's body.
#[derive(Debug, Default)]
pub(crate) struct Inner {
    any: AtomicBool,
    list: Mutex<Vec<CleanupDone>>,
}

impl Inner {
    /// Adds collected cleanups.
    #[inline]
    pub(crate) fn keep(&self, started: Vec<CleanupDone>) {
        if !started.is_empty() {
            self.add(started);
        }
    }

    #[cold]
    fn add(&self, started: Vec<CleanupDone>) {
        self.any.store(true, Ordering::Relaxed);
        self.list().extend(started);
    }

    /// `true` once anything was collected.
    #[inline]
    pub(crate) fn any(&self) -> bool {
        self.any.load(Ordering::Relaxed)
    }

    /// A copy of the list, to wait on while keeping it.
    pub(crate) fn snapshot(&self) -> Vec<CleanupDone> {
        self.list().clone()
    }

    /// The list, emptied.
    pub(crate) fn take(&self) -> Vec<CleanupDone> {
        std::mem::take(&mut *self.list())
    }

    fn list(&self) -> MutexGuard<'_, Vec<CleanupDone>> {
        lock(&self.list)
    }
}

/// Polls a future inside [`collecting`], keeping what it collects in `inner`
/// — also while the future is dropped unfinished. Whoever owns `inner`
/// releases after those cleanups have ended.
#[pin_project::pin_project(PinnedDrop)]
pub(crate) struct CollectInto<'a, F> {
    #[pin]
    future: Option<F>,
    inner: &'a Inner,
}

impl<'a, F> CollectInto<'a, F> {
    pub(crate) fn new(future: F, inner: &'a Inner) -> Self {
        CollectInto {
            future: Some(future),
            inner,
        }
    }
}

impl<F: Future> Future for CollectInto<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        let Some(future) = this.future.as_mut().as_pin_mut() else {
            panic!("`CollectInto` polled after it completed");
        };
        let mut started = Vec::new();
        let polled = collecting(&mut started, || future.poll(cx));
        this.inner.keep(started);
        if polled.is_ready() {
            this.future.set(None);
        }
        polled
    }
}

#[pin_project::pinned_drop]
impl<F> PinnedDrop for CollectInto<'_, F> {
    fn drop(self: Pin<&mut Self>) {
        let this = self.project();
        if this.future.is_some() {
            // What the drop started is kept also when the drop panics (a
            // user future's `Drop`): the panic goes on once it is.
            let mut started = Vec::new();
            let mut future = this.future;
            let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                collecting(&mut started, || future.set(None));
            }));
            this.inner.keep(started);
            if let Err(panic) = dropped {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

/// Waits until every cleanup in `list` has ended.
pub(crate) async fn all_done(list: Vec<CleanupDone>) {
    for done in list {
        done.await;
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::cell::Cell;
    use std::future::Future;
    use std::pin::pin;
    use std::task::Context;
    use std::time::Duration;

    use futures::task::noop_waker;

    use super::{DEPTH_AND_LEN, STARTED};
    use crate::reference::Reference;
    use crate::rt::Runtime;
    use crate::{ResourceExt, resource};

    /// A resource whose release takes a second (so cancelled scopes leave
    /// cleanups running), around a body that waits a second.
    async fn level(rt: &Runtime, inner: u32) -> Result<(), ()> {
        let sleeper = rt.clone();
        let conn = resource(
            || async { Ok::<_, ()>(()) },
            move |(), _| async move {
                sleeper.sleep(Duration::from_secs(1)).await;
                Ok(())
            },
        );
        let nested = rt.clone();
        conn.with(rt, async move |()| {
            nested.sleep(Duration::from_secs(1)).await;
            if inner > 0 {
                // A sibling that completes, then the next level.
                Box::pin(level(&nested, 0)).await?;
                Box::pin(level(&nested, inner - 1)).await?;
            }
            Ok::<_, ()>(())
        })
        .await
        .map_err(|_| ())
    }

    /// Scopes nested four deep, dropped together after every number of
    /// polls, leave this thread's books as they found them: no frame open,
    /// no cleanup left to collect. A frame that popped to the wrong depth
    /// would leave one open, and every cleanup started outside any scope
    /// afterwards would pile up in the thread's list, collected by nobody.
    #[test]
    fn nested_scopes_leave_no_frame_behind() {
        let reference = Reference::new();
        let rt = reference.runtime();
        reference
            .block_on(async {
                let waker = noop_waker();
                for polls in 0..12 {
                    {
                        let mut scope = pin!(level(&rt, 3));
                        for _ in 0..polls {
                            let _ = scope.as_mut().poll(&mut Context::from_waker(&waker));
                            rt.sleep(Duration::from_millis(400)).await;
                        }
                    }
                    assert!(rt.drain(Duration::from_secs(60)).await.is_ok());
                    assert_eq!(DEPTH_AND_LEN.with(Cell::get), (0, 0), "after {polls} polls");
                    assert!(STARTED.with(|started| started.borrow().is_empty()));
                }
                assert_eq!(level(&rt, 3).await, Ok(()));
            })
            .unwrap();
        assert_eq!(DEPTH_AND_LEN.with(Cell::get), (0, 0));
        assert!(rt.cleanup_stats().is_clean(), "{:?}", rt.cleanup_stats());
    }
}
