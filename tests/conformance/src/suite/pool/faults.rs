//! The pool against user code that panics or hangs: the manager's methods,
//! `retain`'s predicate and an object's `Drop`, on every path the pool runs
//! them (checkout, release, maintenance, close, resize, retain, the drop of
//! the pool). The pool's books stay right, every wait ends, every failure
//! is returned or reported, and no callback runs under the pool's lock.

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use awith::Runtime;
use awith::pool::{Manager, Pool, PoolError, TimeoutKind};
use awith::rt::{CleanupKind, Incident};
use awith::{Failure, ResourceExt, ScopeError};
use futures::FutureExt;
use futures::channel::oneshot;

use super::{
    ConnError, Did, Fault, Hook, Knobs, Reenter, TestManager, consistent, lock, unit, use_conn,
    waited_exactly,
};
use crate::probe::yield_now;
use crate::suite::{DRAIN, Polled, Stepper, drain, panic_message};
use awith::test::harness::SharedBinding;
use awith::test::{Env, Incidents, recording_runtime};

/// Waits (on the runtime's clock: at most 200 quarter units of the virtual
/// one, 2000 of a real one, whose tasks a busy machine delays) until `done`.
pub(super) async fn wait_until(env: &Env, what: &str, done: impl Fn() -> bool) {
    let polls = if env.virtual_time { 200 } else { 2000 };
    for _ in 0..polls {
        if done() {
            return;
        }
        env.rt.sleep(unit(env) / 4).await;
    }
    assert!(done(), "waited too long for: {what}");
}

/// Fails — instead of deadlocking — when the pool's lock stays taken for
/// ten seconds while `hook` runs: `hook` runs under the pool's lock. Then
/// re-enters the pool from the calling thread.
pub(super) fn assert_unlocked<M: Manager>(pool: &Pool<M>, hook: Hook) {
    let (tx, rx) = std::sync::mpsc::channel();
    let probe = pool.clone();
    std::thread::spawn(move || {
        let _ = tx.send(probe.status());
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(10)).is_ok(),
        "{hook:?} runs under the pool's lock"
    );
    let _ = pool.status();
}

/// Waits for the cleanups of `rt`.
async fn drain_rt(rt: &Runtime) -> awith::rt::CleanupStats {
    match rt.drain(DRAIN).await {
        Ok(stats) => stats,
        Err(error) => panic!("cleanups did not drain: {error}"),
    }
}

/// A runtime on `env`'s binding whose cleanups are bounded by five units
/// (a hung destroy ends soon), and its incidents.
pub(super) fn short_cleanups(env: &Env) -> (Runtime, Incidents) {
    recording_runtime(Arc::clone(&env.binding), unit(env) * 5)
}

fn manager() -> (TestManager, Arc<Knobs>) {
    let manager = TestManager::default();
    let knobs = Arc::clone(&manager.knobs);
    (manager, knobs)
}

/// Issue 9, item 1: a create that panics (or fails) while the pool's task
/// tops up `min_idle` frees its slot, is reported, and the task goes on: the
/// next rounds create the object, and a checkout on a pool of one gets it.
pub async fn background_create_panic(env: Env) {
    let u = unit(&env);
    let (manager, knobs) = manager();
    // The first top-up panics, the second fails, the third creates.
    knobs.inject(Hook::Create, Fault::Panic, 1);
    knobs.fail_creates.store(1, Ordering::SeqCst);
    let pool = Pool::builder(manager)
        .max_size(1)
        .min_idle(1)
        .maintenance_interval(u)
        .wait_timeout(u * 100)
        .build(&env.rt)
        .unwrap();
    wait_until(&env, "the third top-up", || pool.status().idle == 1).await;
    let used = pool.with(async |c| Ok::<_, ConnError>(c.id)).await;
    assert_eq!(used, Ok(1));
    let incidents = env.incidents.all();
    let [
        Incident::BackgroundPanicked { work, message },
        Incident::BackgroundFailed { work: work2, error },
    ] = incidents.as_slice()
    else {
        panic!("{incidents:?}")
    };
    assert!(work.contains("min_idle") && work == work2, "{work}");
    assert_eq!(message, Hook::Create.panic_message());
    assert_eq!(error, "Refused");
    let status = consistent(&pool, &knobs);
    assert_eq!((status.size, status.idle, status.created), (1, 1, 1));
    pool.close(u).await.unwrap();
    drain(&env).await;
}

/// Issue 9, item 2: the wait timeouts of queued checkouts fire on time while
/// the pool's task creates an object for `min_idle` — a slow create or one
/// that never ends (no create timeout) — and `close` ends a top-up that
/// hangs.
pub async fn background_create_holds_up_no_waiter(env: Env) {
    let u = unit(&env);
    for fault in [Fault::Slow(u * 10), Fault::Hang] {
        let (manager, knobs) = manager();
        knobs.set_clock(&env.rt);
        knobs.inject(Hook::Create, fault, 1);
        let pool = Pool::builder(manager)
            .max_size(1)
            .min_idle(1)
            .wait_timeout(u)
            .maintenance_interval(u * 1000)
            .build(&env.rt)
            .unwrap();
        wait_until(&env, "the top-up's create", || {
            knobs.faulted(Hook::Create, fault) == 1
        })
        .await;
        let start = env.rt.now();
        let waited = pool.with(async |c| use_conn(&knobs, c, 0).await).await;
        let took = env.rt.now() - start;
        assert_eq!(
            waited,
            Err(ScopeError::Acquire(Failure::Error(PoolError::Timeout {
                kind: TimeoutKind::Wait,
                after: u
            }))),
            "{fault:?}"
        );
        waited_exactly(&env, took, u);
        if let Fault::Slow(_) = fault {
            // The slow create ends: the object is kept.
            wait_until(&env, "the slow create", || pool.status().idle == 1).await;
            assert_eq!(
                pool.with(async |c| use_conn(&knobs, c, 0).await).await,
                Ok(1)
            );
        }
        // A top-up that hangs is ended by `close`, which does not wait for it.
        let start = env.rt.now();
        pool.close(u * 5).await.unwrap();
        if env.virtual_time {
            assert_eq!(env.rt.now(), start, "{fault:?}");
        }
        drain(&env).await;
        let status = consistent(&pool, &knobs);
        assert_eq!(status.size, 0, "{status:?}");
        assert_eq!(env.incidents.all(), []);
    }
}

/// Issue 9, item 3: a panicking predicate leaves the books right (what it
/// said no to is destroyed, the rest goes back) and its panic resumes; a
/// predicate runs under no lock of the pool's, so it may call the pool.
pub async fn retain_predicate_panics_and_reenters(env: Env) {
    let (pool, knobs) = super::pool(&env, 2);
    let fill = |pool: &Pool<TestManager>| {
        let (a, b) = (pool.checkout(), pool.checkout());
        a.zip(b).with(&env.rt, async |_| Ok::<_, ConnError>(()))
    };
    fill(&pool).await.unwrap();
    assert_eq!(pool.status().idle, 2);

    knobs.inject(Hook::Predicate, Fault::Panic, 1);
    let panicked =
        std::panic::catch_unwind(AssertUnwindSafe(|| pool.retain(knobs.predicate(|_| true))));
    let panic = panicked.expect_err("the predicate's panic resumes");
    assert_eq!(panic_message(&*panic), Hook::Predicate.panic_message());
    let status = consistent(&pool, &knobs);
    assert_eq!((status.size, status.idle, status.in_use), (2, 2, 0));

    // The first is refused, then the predicate panics: the first is
    // destroyed, the second kept.
    let calls = AtomicUsize::new(0);
    let panicked = std::panic::catch_unwind(AssertUnwindSafe(|| {
        pool.retain(|_, _| {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                false
            } else {
                panic!("{}", Hook::Predicate.panic_message())
            }
        })
    }));
    assert!(panicked.is_err());
    drain(&env).await;
    let status = consistent(&pool, &knobs);
    assert_eq!((status.size, status.idle, status.in_use), (1, 1, 0));
    assert_eq!(knobs.destroyed().len(), 1);

    // Both slots are usable.
    fill(&pool).await.unwrap();
    let status = consistent(&pool, &knobs);
    assert_eq!((status.size, status.idle), (2, 2));

    // A predicate that calls the pool.
    let kept = pool.retain(|_, _| {
        assert_unlocked(&pool, Hook::Predicate);
        true
    });
    assert_eq!(kept, 0);
    pool.close(unit(&env)).await.unwrap();
    drain(&env).await;
    assert_eq!(env.incidents.all(), []);
}

/// Issue 9, item 4: a destroy that panics is one incident, counted once —
/// never polled again after its panic.
pub async fn destroy_panic_counted_once(env: Env) {
    let (pool, knobs) = super::pool(&env, 1);
    // A checkout cancelled in its body: its release destroys the object.
    knobs.inject(Hook::Destroy, Fault::Panic, 1);
    let (entered_tx, mut entered) = oneshot::channel::<()>();
    let mut entered_tx = Some(entered_tx);
    let mut scope = Stepper::new(pool.with(async |_| {
        if let Some(tx) = entered_tx.take() {
            let _ = tx.send(());
        }
        std::future::pending::<Result<(), ConnError>>().await
    }));
    while !matches!(entered.try_recv(), Ok(Some(()))) {
        assert!(matches!(scope.step().await, Polled::Pending));
    }
    drop(scope);
    let stats = drain(&env).await;
    let incidents = env.incidents.all();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert!(
        matches!(&incidents[0], Incident::CleanupPanicked { message, .. }
            if message == Hook::Destroy.panic_message()),
        "{incidents:?}"
    );
    assert_eq!(stats.panicked, 1, "{stats:?}");
    assert_eq!(stats.spawned, stats.completed + stats.panicked, "{stats:?}");

    // A body that panics: its release destroys the object.
    env.incidents.clear();
    knobs.inject(Hook::Destroy, Fault::Panic, 1);
    let panicked = AssertUnwindSafe(
        pool.with(async |_| -> Result<(), ConnError> { panic!("probe: body panicked") }),
    )
    .catch_unwind()
    .await;
    assert_eq!(
        panic_message(&*panicked.expect_err("the body's panic resumes")),
        "probe: body panicked"
    );
    let stats = drain(&env).await;
    let incidents = env.incidents.all();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert!(
        incidents[0]
            .to_string()
            .contains(Hook::Destroy.panic_message()),
        "{incidents:?}"
    );
    assert_eq!(
        stats.spawned,
        stats.completed + stats.panicked + stats.failed,
        "{stats:?}"
    );
    let status = consistent(&pool, &knobs);
    assert_eq!((status.size, status.in_use), (0, 0));
    assert_eq!(
        pool.with(async |c| use_conn(&knobs, c, 0).await).await,
        Ok(3)
    );
}

/// Issue 9, item 5: once `close` has begun, no body starts — not even that
/// of a waiter that had been handed a slot or an object, nor that of a
/// checkout creating its object when the pool closed.
pub async fn close_stops_granted_waiters(env: Env) {
    let u = unit(&env);
    for grant in ["slot", "object", "creating"] {
        let (pool, knobs) = super::pool(&env, 1);
        let ran = AtomicUsize::new(0);
        let (free_tx, free) = oneshot::channel::<()>();
        let mut free_tx = Some(free_tx);
        let mut holder = Box::pin(pool.with(async |c| {
            let _ = free.await;
            use_conn(&knobs, c, 0).await
        }));
        assert!((&mut holder).now_or_never().is_none());
        let mut waiter = Box::pin(pool.with(async |c| {
            ran.fetch_add(1, Ordering::SeqCst);
            use_conn(&knobs, c, 0).await
        }));
        assert!((&mut waiter).now_or_never().is_none());
        assert_eq!(pool.status().waiting, 1);
        let mut holder = Some(holder);
        match grant {
            // A second slot, handed to the waiter, which has not run yet.
            "slot" => pool.resize(2).unwrap(),
            // The holder's object, handed to the waiter.
            "object" => {
                free_tx.take().unwrap().send(()).unwrap();
                let holder = holder.take().unwrap();
                assert_eq!(holder.await, Ok(1));
            }
            // The waiter is creating its object in a second slot.
            _ => {
                knobs.yields.store(3, Ordering::SeqCst);
                pool.resize(2).unwrap();
                assert!((&mut waiter).now_or_never().is_none());
            }
        }
        assert_eq!(pool.status().waiting, 0, "{grant}");
        let closing = pool.close(u * 5);
        let others = async {
            let waited = waiter.await;
            assert_eq!(
                waited,
                Err(ScopeError::Acquire(Failure::Error(PoolError::Closed))),
                "{grant}"
            );
            if let Some(holder) = holder.take() {
                free_tx.take().unwrap().send(()).unwrap();
                assert_eq!(holder.await, Ok(1));
            }
        };
        let (closed, ()) = futures::join!(closing, others);
        assert_eq!(closed, Ok(()), "{grant}");
        assert_eq!(
            ran.load(Ordering::SeqCst),
            0,
            "{grant}: a body ran after close"
        );
        drain(&env).await;
        let status = consistent(&pool, &knobs);
        assert_eq!(
            (status.size, status.in_use, status.idle),
            (0, 0, 0),
            "{grant}"
        );
        let mut destroyed = knobs.destroyed();
        destroyed.sort_unstable();
        assert_eq!(destroyed, knobs.created(), "{grant}");
    }
}

/// Issue 9, item 6: a pool dropped without `close` destroys its idle
/// objects with `Manager::destroy`, as tracked cleanups; when the runtime
/// refuses them, that is reported.
pub async fn dropped_pool_destroys_idle(env: Env, shut_down: Result<SharedBinding, &'static str>) {
    let (pool, knobs) = super::pool(&env, 2);
    let (a, b) = (pool.checkout(), pool.checkout());
    a.zip(b)
        .with(&env.rt, async |_| Ok::<_, ConnError>(()))
        .await
        .unwrap();
    let before = env.rt.cleanup_stats();
    drop(pool);
    let stats = drain(&env).await;
    let mut destroyed = knobs.destroyed();
    destroyed.sort_unstable();
    assert_eq!(destroyed, [1, 2]);
    assert_eq!(stats.spawned - before.spawned, 2, "{stats:?}");
    assert!(stats.is_clean(), "{stats:?}");

    // On a runtime that refuses the cleanups: reported.
    let Ok(dead) = shut_down else {
        return;
    };
    let (dead, incidents) = recording_runtime(dead, unit(&env));
    let (manager, knobs) = manager();
    let pool = Pool::builder(manager).max_size(1).build(&dead).unwrap();
    pool.with(async |c| use_conn(&knobs, c, 0).await)
        .await
        .unwrap();
    drop(pool);
    assert_eq!(
        incidents.all(),
        [Incident::CleanupRefused {
            kind: CleanupKind::Destroy,
            runtime: dead.name()
        }]
    );
    assert_eq!(knobs.destroyed(), [] as [u64; 0]);
}

/// No callback runs under the pool's lock: each one — create (for a
/// checkout and for `min_idle`), recycle (at checkout and after a failed
/// body), reset (after a panic, and as the cleanup of a cancelled scope),
/// destroy and the object's `Drop` (on every path that lets an object go),
/// the predicate of `retain` — re-enters the pool: `status()` (and first,
/// from another thread, to fail instead of deadlocking) and a checkout.
pub async fn callbacks_reenter(env: Env) {
    let u = unit(&env);
    let (manager, knobs) = manager();
    let cell: Arc<std::sync::Mutex<Option<Pool<TestManager>>>> = Arc::default();
    let seen: Arc<std::sync::Mutex<BTreeSet<Hook>>> = Arc::default();
    let inside = Arc::new(AtomicBool::new(false));
    let reenter = {
        let (cell, seen, inside) = (Arc::clone(&cell), Arc::clone(&seen), Arc::clone(&inside));
        Reenter::new(move |hook| {
            lock(&seen).insert(hook);
            let Some(pool) = lock(&cell).clone() else {
                return;
            };
            assert_unlocked(&pool, hook);
            // A checkout from inside the callback (not from a callback that
            // checkout runs in turn), polled once and dropped.
            if hook != Hook::Drop && !inside.swap(true, Ordering::SeqCst) {
                let checkout = pool.with(async |_| Ok::<_, ConnError>(()));
                let _ = AssertUnwindSafe(checkout).catch_unwind().now_or_never();
                inside.store(false, Ordering::SeqCst);
            }
        })
    };
    knobs.on_callback(Some(reenter));
    let pool = Pool::builder(manager)
        .max_size(3)
        .min_idle(1)
        .idle_timeout(u * 3)
        .maintenance_interval(u)
        .wait_timeout(u * 100)
        .build(&env.rt)
        .unwrap();
    *lock(&cell) = Some(pool.clone());
    // create for min_idle
    wait_until(&env, "a top-up", || pool.status().idle >= 1).await;
    // recycle at checkout, then after a failed body
    pool.with(async |c| use_conn(&knobs, c, 0).await)
        .await
        .unwrap();
    let failed = pool.with(async |_| Err::<(), _>(ConnError::Refused)).await;
    assert!(failed.is_err());
    // reset after a panic; destroy and drop in a cleanup
    let panicked = AssertUnwindSafe(
        pool.with(async |_| -> Result<(), ConnError> { panic!("probe: body panicked") }),
    )
    .catch_unwind()
    .await;
    assert!(panicked.is_err());
    // reset as the cleanup of a cancelled scope
    let (entered_tx, mut entered) = oneshot::channel::<()>();
    let mut entered_tx = Some(entered_tx);
    let mut scope = Stepper::new(pool.with(async |_| {
        if let Some(tx) = entered_tx.take() {
            let _ = tx.send(());
        }
        std::future::pending::<Result<(), ConnError>>().await
    }));
    while !matches!(entered.try_recv(), Ok(Some(()))) {
        assert!(matches!(scope.step().await, Polled::Pending));
    }
    drop(scope);
    drain(&env).await;
    // the predicate; destroy after retain
    pool.retain(knobs.predicate(|_| false));
    // destroy after resize, after expiry in maintenance, at close
    let (a, b) = (pool.checkout(), pool.checkout());
    a.zip(b)
        .with(&env.rt, async |_| Ok::<_, ConnError>(()))
        .await
        .unwrap();
    pool.resize(1).unwrap();
    pool.resize(3).unwrap();
    let destroyed = knobs.destroyed().len();
    wait_until(&env, "an expiry", || knobs.destroyed().len() > destroyed).await;
    // (A top-up may be creating: the manager's record is checked against
    // the counters after the close. And a callback running on another
    // thread — a top-up's create, a destroy — may hold its own checkout for
    // a moment: nothing stays in use.)
    wait_until(&env, "nothing in use", || {
        let status = pool.status();
        (status.in_use, status.waiting) == (0, 0)
    })
    .await;
    pool.close(u * 10).await.unwrap();
    drain(&env).await;
    assert_eq!(consistent(&pool, &knobs).size, 0);
    // destroy in a pool dropped with an idle object (it re-enters nothing:
    // the pool is gone)
    *lock(&cell) = None;
    drop(pool);
    let (second, knobs2) = self::manager();
    knobs2.on_callback(knobs.reenter_hook());
    let dropped = Pool::builder(second).max_size(1).build(&env.rt).unwrap();
    dropped
        .with(async |c| use_conn(&knobs2, c, 0).await)
        .await
        .unwrap();
    drop(dropped);
    drain(&env).await;
    assert_eq!(knobs2.destroyed(), [1]);
    knobs.on_callback(None);
    knobs2.on_callback(None);
    let seen = lock(&seen).clone();
    assert_eq!(
        seen,
        [
            Hook::Create,
            Hook::Recycle,
            Hook::Reset,
            Hook::Destroy,
            Hook::Predicate,
            Hook::Drop
        ]
        .into_iter()
        .collect::<BTreeSet<_>>()
    );
    assert_eq!(env.incidents.all(), []);
}

/// Where a fault is met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// A checkout: creating, recycling, replacing an idle object.
    Checkout,
    /// The release after a failed body: a recycle, maybe a destroy.
    ReleaseFailed,
    /// The release after a panicked body: a reset, then a destroy.
    ReleasePanicked,
    /// The release of a cancelled scope, as a cleanup: a reset, a destroy.
    ReleaseCancelled,
    /// The pool's maintenance: a top-up, an expiry.
    Maintenance,
    /// `close` with an idle object.
    Close,
    /// A shrinking `resize` with idle objects.
    Resize,
    /// `retain`: its predicate, the objects it refuses.
    Retain,
    /// The drop of a pool with an idle object.
    DropPool,
}

/// Every user callback, panicking and hanging, on every path it runs on:
/// each path ends (bounded), the fault is returned or reported exactly once,
/// no slot is lost, and the pool works after.
pub async fn callback_faults(env: Env) {
    use Path::*;
    let everywhere = [
        Checkout,
        ReleaseFailed,
        ReleasePanicked,
        ReleaseCancelled,
        Maintenance,
        Close,
        Resize,
        Retain,
        DropPool,
    ];
    let mut cases = Vec::new();
    for fault in [Fault::Panic, Fault::Hang] {
        cases.extend([Checkout, Maintenance].map(|path| (Hook::Create, fault, path)));
        cases.extend([Checkout, ReleaseFailed].map(|path| (Hook::Recycle, fault, path)));
        cases.extend([ReleasePanicked, ReleaseCancelled].map(|path| (Hook::Reset, fault, path)));
        cases.extend(everywhere.map(|path| (Hook::Destroy, fault, path)));
    }
    // `Drop` and the predicate are synchronous: they can panic, not hang.
    cases.extend(everywhere.map(|path| (Hook::Drop, Fault::Panic, path)));
    cases.push((Hook::Predicate, Fault::Panic, Retain));
    for (hook, fault, path) in cases {
        // Whatever fails in a case — in its helpers too — says which.
        let ended = AssertUnwindSafe(fault_case(&env, hook, fault, path))
            .catch_unwind()
            .await;
        if let Err(panic) = ended {
            panic!("{hook:?} {fault:?} on {path:?}: {}", panic_message(&*panic));
        }
    }
}

/// How long `close` may wait for the destroys in [`fault_case`]: ten units
/// on the virtual clock (whose time the case checks exactly); on a real
/// one, as long as a drain — a busy machine may start a destroy late.
fn close_bound(env: &Env) -> Duration {
    if env.virtual_time {
        unit(env) * 10
    } else {
        DRAIN
    }
}

/// What the caller of the path saw.
#[derive(Debug, Default)]
struct Seen {
    /// Panics that resumed in the caller, by message.
    panics: Vec<String>,
    /// Errors returned, formatted.
    errors: Vec<String>,
}

async fn fault_case(env: &Env, hook: Hook, fault: Fault, path: Path) {
    let what = format!("{hook:?} {fault:?} on {path:?}");
    let u = unit(env);
    let (rt, incidents) = short_cleanups(env);
    let (manager, knobs) = manager();
    knobs.set_clock(&rt);
    let mut builder = Pool::builder(manager)
        .max_size(2)
        .create_timeout(u * 2)
        .recycle_timeout(u * 2)
        .wait_timeout(u * 100);
    if path == Path::Maintenance {
        builder = builder.maintenance_interval(u);
        builder = if hook == Hook::Create {
            builder.min_idle(1)
        } else {
            builder.idle_timeout(u * 2)
        };
    }
    // On the maintenance path the fault goes in before the pool's task can
    // meet it: a top-up's at once; an expiry's (a destroy's, a drop's) as
    // soon as `warm`'s object is back, maybe before `warm` returns.
    if path == Path::Maintenance {
        knobs.inject(hook, fault, 1);
    }
    let pool = builder.build(&rt).unwrap();
    let mut seen = Seen::default();
    let note = |seen: &mut Seen, ended: Result<Result<u64, String>, String>| match ended {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => seen.errors.push(error),
        Err(panic) => seen.panics.push(panic),
    };
    let mut pool = Some(pool);
    match path {
        Path::Checkout => {
            match hook {
                Hook::Create => {}
                Hook::Recycle => warm(pool.as_ref().unwrap(), &rt, 1, false).await,
                // An idle object that fails its recycle is replaced.
                _ => {
                    warm(pool.as_ref().unwrap(), &rt, 1, false).await;
                    lock(&knobs.fail_recycle).insert(1);
                }
            }
            knobs.inject(hook, fault, 1);
            note(
                &mut seen,
                use_once(pool.as_ref().unwrap(), &knobs, hook, Body::Ok).await,
            );
        }
        Path::ReleaseFailed => {
            knobs.inject(hook, fault, 1);
            note(
                &mut seen,
                use_once(pool.as_ref().unwrap(), &knobs, hook, Body::Err).await,
            );
        }
        Path::ReleasePanicked => {
            knobs.inject(hook, fault, 1);
            note(
                &mut seen,
                use_once(pool.as_ref().unwrap(), &knobs, hook, Body::Panic).await,
            );
        }
        Path::ReleaseCancelled => {
            knobs.inject(hook, fault, 1);
            let pool = pool.as_ref().unwrap();
            let (entered_tx, mut entered) = oneshot::channel::<()>();
            let mut entered_tx = Some(entered_tx);
            let mut scope = Stepper::new(pool.with(async |_| {
                if let Some(tx) = entered_tx.take() {
                    let _ = tx.send(());
                }
                std::future::pending::<Result<(), ConnError>>().await
            }));
            while !matches!(entered.try_recv(), Ok(Some(()))) {
                assert!(matches!(scope.step().await, Polled::Pending), "{what}");
            }
            drop(scope);
        }
        Path::Maintenance => {
            // (The fault was injected before the pool was built.)
            if hook != Hook::Create {
                warm(pool.as_ref().unwrap(), &rt, 1, true).await;
            }
            let pool = pool.as_ref().unwrap();
            wait_until(env, &what, || {
                knobs.did().iter().any(|d| matches!(d, Did::Faulted(..)))
                    && (hook != Hook::Create || pool.status().idle == 1)
            })
            .await;
        }
        Path::Close => {
            warm(pool.as_ref().unwrap(), &rt, 1, false).await;
            knobs.inject(hook, fault, 1);
            let pool = pool.as_ref().unwrap();
            let start = rt.now();
            assert_eq!(pool.close(close_bound(env)).await, Ok(()), "{what}");
            // `close` waited for the hung destroy until its bound.
            if fault == Fault::Hang {
                let took = rt.now() - start;
                if env.virtual_time {
                    assert_eq!(took, u * 5, "{what}: the destroy's bound");
                } else {
                    assert!(took >= u * 5, "{what}: the destroy's bound: {took:?}");
                }
            }
        }
        Path::Resize => {
            warm(pool.as_ref().unwrap(), &rt, 2, false).await;
            knobs.inject(hook, fault, 1);
            pool.as_ref().unwrap().resize(1).unwrap();
        }
        Path::Retain => {
            warm(pool.as_ref().unwrap(), &rt, 1, false).await;
            knobs.inject(hook, fault, 1);
            let pool = pool.as_ref().unwrap();
            let retained = std::panic::catch_unwind(AssertUnwindSafe(|| {
                pool.retain(knobs.predicate(|_| false))
            }));
            match retained {
                Ok(refused) => assert_eq!(refused, 1, "{what}"),
                Err(panic) => seen.panics.push(panic_message(&*panic).to_owned()),
            }
        }
        Path::DropPool => {
            warm(pool.as_ref().unwrap(), &rt, 1, false).await;
            knobs.inject(hook, fault, 1);
            pool = None;
        }
    }
    drain_rt(&rt).await;
    let incidents = incidents.all();
    // The fault was returned or reported, once.
    let message = hook.panic_message();
    let reported = |needle: &str| {
        incidents
            .iter()
            .filter(|i| i.to_string().contains(needle))
            .count()
    };
    match fault {
        Fault::Panic => {
            let returned = seen.panics.iter().filter(|p| *p == message).count();
            assert_eq!(
                returned + reported(message),
                1,
                "{what}: {seen:?} {incidents:?}"
            );
        }
        _ => match (hook, path) {
            (Hook::Create, Path::Checkout) => assert_eq!(
                seen.errors,
                [format!(
                    "{:?}",
                    ScopeError::<ConnError, _>::Acquire(Failure::Error(
                        PoolError::<ConnError>::Timeout {
                            kind: TimeoutKind::Create,
                            after: u * 2
                        }
                    ))
                )],
                "{what}"
            ),
            (Hook::Create, _) => {
                assert_eq!(reported("create timed out"), 1, "{what}: {incidents:?}");
            }
            (Hook::Recycle, Path::Checkout) => {
                assert_eq!(seen.errors, [] as [String; 0], "{what}");
                let status = pool.as_ref().unwrap().status();
                assert_eq!(status.recycle_failed, 1, "{what}");
            }
            (Hook::Recycle, _) => {
                assert_eq!(seen.errors.len(), 1, "{what}");
                assert!(seen.errors[0].contains("Recycle"), "{what}: {seen:?}");
            }
            (Hook::Reset, _) => {}
            _ => assert_eq!(
                incidents,
                [Incident::CleanupTimedOut {
                    kind: CleanupKind::Destroy,
                    after: u * 5
                }],
                "{what}"
            ),
        },
    }
    // Nothing else was reported, but what the faults explain.
    for incident in &incidents {
        let explained = incident.to_string().contains(message)
            || matches!(
                incident,
                Incident::CleanupTimedOut { .. } | Incident::BackgroundFailed { .. }
            ) && fault == Fault::Hang
            || matches!(incident, Incident::ErrorLostToPanic { .. });
        assert!(explained, "{what}: {incidents:?}");
    }
    // The books are right, no slot is lost, and the pool works.
    let Some(pool) = pool else {
        return;
    };
    let status = consistent(&pool, &knobs);
    assert_eq!(
        (status.in_use, status.waiting),
        (0, 0),
        "{what}: {status:?}"
    );
    if !status.closed {
        knobs.clear_faults();
        pool.resize(2).unwrap();
        let (a, b) = (pool.checkout(), pool.checkout());
        let both = a
            .zip(b)
            .with(&rt, async |(a, b)| Ok::<_, ConnError>((a.id, b.id)))
            .await;
        assert!(both.is_ok(), "{what}: {both:?}");
        assert_eq!(pool.close(close_bound(env)).await, Ok(()), "{what}");
    }
    drain_rt(&rt).await;
    let status = consistent(&pool, &knobs);
    assert_eq!(status.size, 0, "{what}: {status:?}");
    // Every object went to `destroy` once.
    let faulted: Vec<u64> = knobs
        .did()
        .iter()
        .filter_map(|d| match d {
            Did::Faulted(Hook::Destroy, _, id) => *id,
            _ => None,
        })
        .collect();
    for id in knobs.created() {
        let destroyed = knobs.destroyed().iter().filter(|d| **d == id).count();
        let faults = faulted.iter().filter(|d| **d == id).count();
        assert_eq!(
            destroyed + faults,
            1,
            "{what}: object {id}: {:?}",
            knobs.did()
        );
    }
}

/// One checkout whose body ends as `body` says: `Err` with a panic's
/// message, or `Ok` with what the scope returned.
async fn use_once(
    pool: &Pool<TestManager>,
    knobs: &Arc<Knobs>,
    hook: Hook,
    body: Body,
) -> Result<Result<u64, String>, String> {
    let scope = pool.with(async |c| {
        let id = c.id;
        match body {
            Body::Ok => use_conn(knobs, c, 0).await,
            Body::Err => {
                // A destroy follows unless the recycle itself is tested.
                if hook != Hook::Recycle {
                    lock(&knobs.fail_recycle).insert(id);
                }
                Err(ConnError::Broken(id))
            }
            Body::Panic => panic!("probe: body panicked"),
        }
    });
    match AssertUnwindSafe(scope).catch_unwind().await {
        Ok(Ok(id)) => Ok(Ok(id)),
        Ok(Err(error)) => Ok(Err(format!("{error:?}"))),
        Err(panic) => Err(panic_message(&*panic).to_owned()),
    }
}

/// `n` objects, made by `n` checkouts at once, back in the pool: idle —
/// or, if they can `expire`, maybe already handed to their destroys by the
/// pool's task.
async fn warm(pool: &Pool<TestManager>, rt: &Runtime, n: usize, expire: bool) {
    let mut scopes = Vec::new();
    for _ in 0..n {
        scopes.push(Box::pin(pool.checkout().with(rt, async |c| {
            yield_now().await;
            Ok::<_, ConnError>(c.id)
        })));
    }
    for scope in futures::future::join_all(scopes).await {
        scope.unwrap();
    }
    let status = pool.status();
    assert_eq!(status.created, n as u64, "{status:?}");
    if expire {
        assert_eq!(
            status.idle as u64 + status.destroyed,
            n as u64,
            "{status:?}"
        );
    } else {
        assert_eq!(status.idle, n, "{status:?}");
    }
}

/// How the body of a checkout in [`fault_case`] ends.
#[derive(Clone, Copy, Debug)]
enum Body {
    Ok,
    Err,
    Panic,
}

/// A callback that hangs with no bound set hangs only the checkout whose
/// callback it is: other checkouts go on, a waiter's timeout fires on time,
/// and dropping the hung checkout frees its slot.
pub async fn hung_checkout_holds_up_no_one(env: Env) {
    let u = unit(&env);
    let (manager, knobs) = manager();
    let pool = Pool::builder(manager)
        .max_size(2)
        .wait_timeout(u)
        .build(&env.rt)
        .unwrap();
    knobs.inject(Hook::Create, Fault::Hang, 1);
    let mut hung = Stepper::new(pool.with(async |c| use_conn(&knobs, c, 0).await));
    while knobs.faulted(Hook::Create, Fault::Hang) == 0 {
        assert!(matches!(hung.step().await, Polled::Pending));
    }
    // The other slot serves checkouts in turn.
    for _ in 0..3 {
        assert_eq!(
            pool.with(async |c| use_conn(&knobs, c, 0).await).await,
            Ok(1)
        );
    }
    // Both slots taken (one hung): a waiter times out on time.
    let (free_tx, free) = oneshot::channel::<()>();
    let holder = pool.with(async |c| {
        let _ = free.await;
        use_conn(&knobs, c, 0).await
    });
    let waiter = async {
        let start = env.rt.now();
        let waited = pool.with(async |c| use_conn(&knobs, c, 0).await).await;
        let took = env.rt.now() - start;
        free_tx.send(()).unwrap();
        (waited, took)
    };
    let (held, (waited, took)) = futures::join!(holder, waiter);
    assert_eq!(held, Ok(1));
    assert!(
        matches!(
            waited,
            Err(ScopeError::Acquire(Failure::Error(PoolError::Timeout {
                kind: TimeoutKind::Wait,
                ..
            })))
        ),
        "{waited:?}"
    );
    waited_exactly(&env, took, u);
    // Dropped, the hung checkout frees its slot (its create is dropped).
    drop(hung);
    assert_eq!(knobs.did().last(), Some(&Did::HangEnded(Hook::Create)));
    let (a, b) = (pool.checkout(), pool.checkout());
    let both = a
        .zip(b)
        .with(&env.rt, async |(a, b)| Ok::<_, ConnError>(a.id + b.id))
        .await;
    assert_eq!(both, Ok(1 + 2));
    pool.close(u).await.unwrap();
    drain(&env).await;
    assert_eq!(consistent(&pool, &knobs).size, 0);
    assert_eq!(env.incidents.all(), []);
}

/// A callback that hangs, and whose future panics when the pool drops it
/// unfinished: a create cut at the create timeout (in a checkout, and in a
/// `min_idle` top-up), a recycle cut at the recycle timeout, and a top-up's
/// create that `close` ends. Each panic resumes or is reported, once; no
/// slot is lost, and the pool works after.
pub async fn callback_future_drop_panics(env: Env) {
    let u = unit(&env);
    for case in [
        "checkout create",
        "top-up create",
        "recycle",
        "closed top-up",
    ] {
        let (rt, incidents) = short_cleanups(&env);
        let manager = Bombs::default();
        let bombs = Arc::clone(&manager.0);
        let mut builder = Pool::builder(manager).max_size(1).wait_timeout(u * 100);
        if case != "closed top-up" {
            builder = builder.create_timeout(u * 2).recycle_timeout(u * 2);
        }
        if case.contains("top-up") {
            builder = builder.min_idle(1).maintenance_interval(u);
        }
        let message = if case == "recycle" {
            "probe: a cut recycle's drop panicked"
        } else {
            "probe: a cut create's drop panicked"
        };
        match case {
            "recycle" => bombs.hang_recycles.store(1, Ordering::SeqCst),
            _ => bombs.hang_creates.store(1, Ordering::SeqCst),
        }
        let pool = builder.build(&rt).unwrap();
        let mut resumed = Vec::new();
        match case {
            "checkout create" => {
                if let Err(panic) = use_it(&pool).await {
                    resumed.push(panic_message(&*panic).to_owned());
                }
            }
            "top-up create" => {
                wait_until(&env, case, || pool.status().idle == 1).await;
            }
            "recycle" => {
                assert!(matches!(use_it(&pool).await, Ok(Ok(1))), "{case}");
                bombs.hang_recycles.store(1, Ordering::SeqCst);
                if let Err(panic) = use_it(&pool).await {
                    resumed.push(panic_message(&*panic).to_owned());
                }
            }
            _ => {
                wait_until(&env, case, || bombs.hanging.load(Ordering::SeqCst) == 1).await;
            }
        }
        if case != "closed top-up" {
            // No slot was lost: the pool of one serves a checkout.
            let used = use_it(&pool).await;
            assert!(matches!(used, Ok(Ok(_))), "{case}: {used:?}");
            let status = pool.status();
            assert_eq!(
                (status.in_use, status.waiting),
                (0, 0),
                "{case}: {status:?}"
            );
        }
        pool.close(DRAIN).await.unwrap();
        drain_rt(&rt).await;
        let status = pool.status();
        assert_eq!(status.size, 0, "{case}: {status:?}");
        let incidents = incidents.all();
        let reported = incidents
            .iter()
            .filter(|i| i.to_string().contains(message))
            .count();
        let resumed = resumed.iter().filter(|m| *m == message).count();
        assert_eq!(resumed + reported, 1, "{case}: {incidents:?}");
        for incident in &incidents {
            assert!(
                incident.to_string().contains(message)
                    || matches!(incident, Incident::BackgroundFailed { .. }),
                "{case}: {incidents:?}"
            );
        }
    }
}

/// A manager whose next `hang_creates` creates and `hang_recycles`
/// recycles never end, and panic when dropped.
#[derive(Default)]
struct Bombs(Arc<BombKnobs>);

#[derive(Default)]
struct BombKnobs {
    hang_creates: AtomicUsize,
    hang_recycles: AtomicUsize,
    hanging: AtomicUsize,
    created: AtomicUsize,
}

/// Panics when dropped, unless a panic is unwinding.
struct Bomb(&'static str);

impl Drop for Bomb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{}", self.0);
        }
    }
}

fn take_one(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

impl Manager for Bombs {
    type Object = usize;
    type Error = ConnError;

    async fn create(&self) -> Result<usize, ConnError> {
        if take_one(&self.0.hang_creates) {
            let _bomb = Bomb("probe: a cut create's drop panicked");
            self.0.hanging.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>().await;
        }
        Ok(self.0.created.fetch_add(1, Ordering::SeqCst) + 1)
    }

    async fn recycle(
        &self,
        _: &mut usize,
        _: &awith::pool::ObjectMetrics,
    ) -> Result<(), ConnError> {
        if take_one(&self.0.hang_recycles) {
            let _bomb = Bomb("probe: a cut recycle's drop panicked");
            self.0.hanging.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

/// One checkout of `pool`: its panic caught.
async fn use_it(pool: &Pool<Bombs>) -> std::thread::Result<Result<usize, String>> {
    AssertUnwindSafe(pool.with(async |n| Ok::<_, ConnError>(*n)))
        .catch_unwind()
        .await
        .map(|used| used.map_err(|error| format!("{error:?}")))
}
