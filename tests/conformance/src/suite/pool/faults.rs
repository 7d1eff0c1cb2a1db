//! The pool against user code that panics or hangs: the manager's methods,
//! `retain`'s predicate and an object's `Drop`, on every path the pool runs
//! them (checkout, release, maintenance, close, resize, retain, the drop of
//! the pool). The pool's books stay right, every wait ends, every failure
//! is returned or reported, and no callback runs under the pool's lock.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use awith::Runtime;
use awith::pool::{Manager, Pool, PoolError, TimeoutKind};
use awith::rt::{CleanupKind, Incident};
use awith::{Failure, ResourceExt, ScopeError};
use futures::FutureExt;
use futures::channel::oneshot;

use super::{
    ConnError, Fault, Hook, Knobs, TestManager, consistent, unit, use_conn, waited_exactly,
};
use crate::harness::{Env, Incidents, SharedBinding, recording_runtime};
use crate::probe::yield_now;
use crate::suite::{DRAIN, Polled, Stepper, drain, panic_message};

/// Waits (on the runtime's clock, at most 200 quarter units) until `done`.
pub(super) async fn wait_until(env: &Env, what: &str, done: impl Fn() -> bool) {
    for _ in 0..200 {
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
    let _ = drain_rt;
    let _ = short_cleanups;
    let _ = yield_now;
}
