//! The pool tests' manager: numbered objects, failures and faults (panics,
//! hangs, slow calls) on demand in every callback — also `retain`'s
//! predicate and an object's `Drop` — a way back into the pool from each,
//! and a record of it all.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use awith::ExitKind;
use awith::pool::{Manager, ObjectMetrics};

use crate::probe::yield_now;

/// What the test manager did, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Did {
    Created(u64),
    CreateFailed,
    Recycled(u64),
    RecycleFailed(u64),
    Reset(u64, ExitKind),
    Destroyed(u64),
    /// A fault was injected into a callback (on this object, if it has one).
    Faulted(Hook, Fault, Option<u64>),
    /// A callback that hung was dropped: it hangs no more.
    HangEnded(Hook),
    /// A destroy was dropped before it finished (`true`: as a panic
    /// unwound).
    DestroyUnfinished(u64, bool),
}

/// A piece of user code the pool runs: the manager's methods, the
/// predicate of `retain`, the `Drop` of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hook {
    Create,
    Recycle,
    Reset,
    Destroy,
    Predicate,
    Drop,
}

impl Hook {
    /// The message of the panic injected into this callback.
    pub fn panic_message(self) -> &'static str {
        match self {
            Hook::Create => "probe: create panicked",
            Hook::Recycle => "probe: recycle panicked",
            Hook::Reset => "probe: reset panicked",
            Hook::Destroy => "probe: destroy panicked",
            Hook::Predicate => "probe: predicate panicked",
            Hook::Drop => "probe: object drop panicked",
        }
    }
}

/// What an injected fault makes a callback do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Panics (with [`Hook::panic_message`]).
    Panic,
    /// Never finishes (a sync callback ignores it).
    Hang,
    /// Takes this long on the runtime's clock first.
    Slow(Duration),
}

/// A pooled test object.
#[derive(Debug)]
pub struct Conn {
    pub id: u64,
    /// For the faults of its `Drop`.
    knobs: std::sync::Weak<Knobs>,
}

/// An object's `Drop` is user code too: it re-enters the pool when the test
/// asks, and panics when a fault says so.
impl Drop for Conn {
    fn drop(&mut self) {
        let Some(knobs) = self.knobs.upgrade() else {
            return;
        };
        knobs.reenter(Hook::Drop);
        // (Not while a panic unwinds: that would abort.)
        if !std::thread::panicking() {
            if let Some(Fault::Panic) = knobs.fault(Hook::Drop, Some(self.id)) {
                panic!("{}", Hook::Drop.panic_message());
            }
        }
    }
}

/// A callback's way back into the pool under test (see
/// [`Knobs::on_callback`]).
#[derive(Clone)]
pub struct Reenter(Arc<dyn Fn(Hook) + Send + Sync>);

impl Reenter {
    pub fn new(f: impl Fn(Hook) + Send + Sync + 'static) -> Self {
        Reenter(Arc::new(f))
    }
}

impl std::fmt::Debug for Reenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reenter")
    }
}

/// The test manager's switches and record.
#[derive(Debug, Default)]
pub struct Knobs {
    next: AtomicU64,
    /// Creates to fail, from the next one.
    pub fail_creates: AtomicUsize,
    /// Objects whose recycle fails.
    pub fail_recycle: Mutex<BTreeSet<u64>>,
    /// `reset` cleans the object (else it is destroyed).
    pub reset_ok: AtomicBool,
    /// Yields inside create, recycle and destroy (to give cancellation
    /// points); 0 for none.
    pub yields: AtomicUsize,
    /// Objects held by a body now.
    pub(super) hands: Mutex<BTreeSet<u64>>,
    did: Mutex<Vec<Did>>,
    /// Faults for the next calls of each callback, first first.
    faults: Mutex<BTreeMap<Hook, VecDeque<Fault>>>,
    /// The clock of `Fault::Slow`.
    clock: Mutex<Option<awith::Runtime>>,
    /// Called at the start of every callback.
    reenter: Mutex<Option<Reenter>>,
    /// The objects `destroy` was called for, in order.
    destroy_calls: Mutex<Vec<u64>>,
}

/// Notes that a hanging callback was dropped.
struct HangEnds<'a> {
    knobs: &'a Knobs,
    hook: Hook,
}

impl Drop for HangEnds<'_> {
    fn drop(&mut self) {
        self.knobs.note(Did::HangEnded(self.hook));
    }
}

/// Notes a destroy dropped before it finished.
struct DestroyEnds<'a> {
    knobs: &'a Knobs,
    id: u64,
    finished: bool,
}

impl Drop for DestroyEnds<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let unwinding = std::thread::panicking();
            self.knobs.note(Did::DestroyUnfinished(self.id, unwinding));
        }
    }
}

impl Knobs {
    fn note(&self, did: Did) {
        lock(&self.did).push(did);
    }

    /// Everything the manager did.
    pub fn did(&self) -> Vec<Did> {
        lock(&self.did).clone()
    }

    fn ids(&self, of: impl Fn(&Did) -> Option<u64>) -> Vec<u64> {
        self.did().iter().filter_map(of).collect()
    }

    /// The objects created, in order.
    pub fn created(&self) -> Vec<u64> {
        self.ids(|d| match d {
            Did::Created(id) => Some(*id),
            _ => None,
        })
    }

    /// The objects destroyed, in order.
    pub fn destroyed(&self) -> Vec<u64> {
        self.ids(|d| match d {
            Did::Destroyed(id) => Some(*id),
            _ => None,
        })
    }

    async fn pause(&self) {
        for _ in 0..self.yields.load(Ordering::SeqCst) {
            yield_now().await;
        }
    }

    /// The next `times` calls of `hook` do `fault` (after those already
    /// injected).
    pub fn inject(&self, hook: Hook, fault: Fault, times: usize) {
        let mut faults = lock(&self.faults);
        let queue = faults.entry(hook).or_default();
        queue.extend(std::iter::repeat_n(fault, times));
    }

    /// Forgets the faults not yet used.
    pub fn clear_faults(&self) {
        lock(&self.faults).clear();
    }

    /// The clock slow callbacks sleep on.
    pub fn set_clock(&self, rt: &awith::Runtime) {
        *lock(&self.clock) = Some(rt.clone());
    }

    /// Every callback calls `f` first, with its hook (`None`: stop).
    pub fn on_callback(&self, f: Option<Reenter>) {
        *lock(&self.reenter) = f;
    }

    /// What every callback calls first now.
    pub fn reenter_hook(&self) -> Option<Reenter> {
        lock(&self.reenter).clone()
    }

    fn reenter(&self, hook: Hook) {
        let f = lock(&self.reenter).clone();
        if let Some(Reenter(f)) = f {
            f(hook);
        }
    }

    /// The fault for this call of `hook`, if one was injected; noted.
    fn fault(&self, hook: Hook, id: Option<u64>) -> Option<Fault> {
        let fault = lock(&self.faults).get_mut(&hook)?.pop_front()?;
        self.note(Did::Faulted(hook, fault, id));
        Some(fault)
    }

    /// Runs a callback's fault, if it has one: panics, hangs or sleeps.
    async fn apply(&self, hook: Hook, id: Option<u64>) {
        self.reenter(hook);
        match self.fault(hook, id) {
            None => {}
            Some(Fault::Panic) => panic!("{}", hook.panic_message()),
            Some(Fault::Hang) => {
                let _ended = HangEnds { knobs: self, hook };
                std::future::pending::<()>().await;
            }
            Some(Fault::Slow(after)) => {
                let clock = lock(&self.clock)
                    .clone()
                    .expect("a clock for slow callbacks");
                clock.sleep(after).await;
            }
        }
    }

    /// The objects `destroy` was called for, in order.
    pub fn destroy_calls(&self) -> Vec<u64> {
        lock(&self.destroy_calls).clone()
    }

    /// The faults that were used, per hook and kind.
    pub fn faulted(&self, hook: Hook, fault: Fault) -> usize {
        self.did()
            .iter()
            .filter(|d| matches!(d, Did::Faulted(h, f, _) if *h == hook && *f == fault))
            .count()
    }

    /// A predicate for `retain`, with the predicate's faults: keeps what
    /// `keep` says.
    pub fn predicate(
        self: &Arc<Self>,
        keep: impl Fn(&Conn) -> bool,
    ) -> impl FnMut(&Conn, &ObjectMetrics) -> bool {
        let knobs = Arc::clone(self);
        move |conn, _| {
            knobs.reenter(Hook::Predicate);
            if let Some(Fault::Panic) = knobs.fault(Hook::Predicate, Some(conn.id)) {
                panic!("{}", Hook::Predicate.panic_message());
            }
            keep(conn)
        }
    }

    /// Marks `conn` as held by a body until the guard drops; fails if
    /// another body holds it.
    pub fn hold(self: &Arc<Self>, conn: &Conn) -> Holding {
        assert!(
            lock(&self.hands).insert(conn.id),
            "object {} is in two hands at once",
            conn.id
        );
        Holding {
            knobs: Arc::clone(self),
            id: conn.id,
        }
    }
}

/// A body's hold on an object.
#[derive(Debug)]
pub struct Holding {
    knobs: Arc<Knobs>,
    id: u64,
}

impl Drop for Holding {
    fn drop(&mut self) {
        lock(&self.knobs.hands).remove(&self.id);
    }
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The manager: numbered objects, failures on demand, a record of it all.
#[derive(Debug, Clone, Default)]
pub struct TestManager {
    pub knobs: Arc<Knobs>,
}

/// The test manager's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnError {
    Refused,
    Broken(u64),
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnError::Refused => f.write_str("connection refused"),
            ConnError::Broken(id) => write!(f, "connection {id} is broken"),
        }
    }
}

impl Manager for TestManager {
    type Object = Conn;
    type Error = ConnError;

    async fn create(&self) -> Result<Conn, ConnError> {
        self.knobs.apply(Hook::Create, None).await;
        self.knobs.pause().await;
        let fail = self
            .knobs
            .fail_creates
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            self.knobs.note(Did::CreateFailed);
            return Err(ConnError::Refused);
        }
        let id = self.knobs.next.fetch_add(1, Ordering::SeqCst) + 1;
        self.knobs.note(Did::Created(id));
        Ok(Conn {
            id,
            knobs: Arc::downgrade(&self.knobs),
        })
    }

    async fn recycle(&self, conn: &mut Conn, _: &ObjectMetrics) -> Result<(), ConnError> {
        self.knobs.apply(Hook::Recycle, Some(conn.id)).await;
        self.knobs.pause().await;
        if lock(&self.knobs.fail_recycle).contains(&conn.id) {
            self.knobs.note(Did::RecycleFailed(conn.id));
            return Err(ConnError::Broken(conn.id));
        }
        self.knobs.note(Did::Recycled(conn.id));
        Ok(())
    }

    async fn reset(&self, conn: &mut Conn, exit: ExitKind) -> bool {
        self.knobs.apply(Hook::Reset, Some(conn.id)).await;
        self.knobs.note(Did::Reset(conn.id, exit));
        self.knobs.reset_ok.load(Ordering::SeqCst)
    }

    async fn destroy(&self, conn: Conn) {
        lock(&self.knobs.destroy_calls).push(conn.id);
        let mut ends = DestroyEnds {
            knobs: &self.knobs,
            id: conn.id,
            finished: false,
        };
        self.knobs.apply(Hook::Destroy, Some(conn.id)).await;
        self.knobs.pause().await;
        self.knobs.note(Did::Destroyed(conn.id));
        ends.finished = true;
        // The object's `Drop` (user code, with its faults) runs here.
        drop(conn);
    }
}
