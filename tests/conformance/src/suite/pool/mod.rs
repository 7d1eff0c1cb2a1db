//! The pool: reuse and recycling, what each exit does to the object, fair
//! waiting, cancellation while waiting and after a hand-over, timeouts,
//! failures that must not leak slots, closing, resizing, maintenance, and a
//! property test of random checkouts, cancellations, failures and panics.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use awith::pool::{Pool, PoolConfigError, PoolError, Status, TimeoutKind};
use awith::{ExitKind, Failure, ResourceExt, ScopeError};
use futures::FutureExt;
use futures::channel::oneshot;

use super::{Polled, Stepper, drain};
use crate::probe::yield_now;
use awith::test::Env;
use awith::test::harness::SharedBinding;

pub mod faults;
mod manager;
mod random;

pub use manager::{Conn, ConnError, Did, Fault, Holding, Hook, Knobs, Reenter, TestManager};
pub use random::random_checkouts;

use manager::lock;

/// A second on the virtual clock, 20 ms on a real one.
fn unit(env: &Env) -> Duration {
    if env.virtual_time {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(20)
    }
}

/// A wait took `expected`: exactly on a virtual clock, at least (and not a
/// hundred times more) on a real one.
fn waited_exactly(env: &Env, took: Duration, expected: Duration) {
    if env.virtual_time {
        assert_eq!(took, expected);
    } else {
        assert!(took >= expected && took < expected * 100, "{took:?}");
    }
}

/// A pool of `max_size` on `env`'s runtime, and its manager's knobs.
fn pool(env: &Env, max_size: usize) -> (Pool<TestManager>, Arc<Knobs>) {
    let manager = TestManager::default();
    let knobs = Arc::clone(&manager.knobs);
    let pool = Pool::builder(manager)
        .max_size(max_size)
        .build(&env.rt)
        .expect("a valid pool");
    (pool, knobs)
}

/// Uses an object: checks it is in no other hands, yields `naps` times.
async fn use_conn(knobs: &Arc<Knobs>, conn: &mut Conn, naps: usize) -> Result<u64, ConnError> {
    let _held = knobs.hold(conn);
    for _ in 0..naps {
        yield_now().await;
    }
    Ok(conn.id)
}

/// Checks the counters against each other and the manager's record.
fn consistent(pool: &Pool<TestManager>, knobs: &Knobs) -> Status {
    let status = pool.status();
    let created = knobs.created().len() as u64;
    let destroyed = knobs.destroyed().len() as u64;
    assert_eq!(status.created, created, "{status:?}");
    // The pool counts an object destroyed when it hands it to `destroy`.
    assert!(status.destroyed >= destroyed, "{status:?}");
    assert_eq!(
        status.size as u64,
        status.created - status.destroyed,
        "{status:?}"
    );
    assert!(status.size <= status.max_size, "{status:?}");
    assert!(status.idle + status.in_use <= status.size, "{status:?}");
    status
}

/// Settings that cannot work are errors at build time, with a message.
pub async fn config_errors(env: Env) {
    let build = |builder: awith::pool::PoolBuilder<TestManager>| builder.build(&env.rt).err();
    let m = TestManager::default;
    assert_eq!(
        build(Pool::builder(m()).max_size(0)),
        Some(PoolConfigError::ZeroMaxSize)
    );
    assert_eq!(
        build(Pool::builder(m()).max_size(2).min_idle(3)),
        Some(PoolConfigError::MinIdleAboveMaxSize {
            min_idle: 3,
            max_size: 2
        })
    );
    for (builder, what) in [
        (
            Pool::builder(m()).create_timeout(Duration::ZERO),
            "create_timeout",
        ),
        (
            Pool::builder(m()).recycle_timeout(Duration::ZERO),
            "recycle_timeout",
        ),
        (
            Pool::builder(m()).max_lifetime(Duration::ZERO),
            "max_lifetime",
        ),
        (
            Pool::builder(m()).idle_timeout(Duration::ZERO),
            "idle_timeout",
        ),
        (
            Pool::builder(m()).maintenance_interval(Duration::ZERO),
            "maintenance_interval",
        ),
    ] {
        let error = build(builder).expect("rejected");
        assert_eq!(error, PoolConfigError::Zero(what));
        assert!(error.to_string().contains(what), "{error}");
    }
    // A zero wait timeout is valid: take one if free, else fail at once.
    assert!(build(Pool::builder(m()).wait_timeout(Duration::ZERO)).is_none());
    assert!(
        PoolConfigError::ZeroMaxSize
            .to_string()
            .contains("wait forever")
    );

    // Resizing to a size that cannot work changes nothing.
    let pool = Pool::builder(m())
        .max_size(3)
        .min_idle(2)
        .build(&env.rt)
        .unwrap();
    assert_eq!(pool.resize(0), Err(PoolConfigError::ZeroMaxSize));
    assert!(matches!(
        pool.resize(1),
        Err(PoolConfigError::MinIdleAboveMaxSize { .. })
    ));
    assert_eq!(pool.status().max_size, 3);
    pool.close(Duration::from_secs(5)).await.unwrap();
}

/// An object comes back after `Completed` and is recycled before its next
/// use; the counters agree with the manager.
pub async fn reuses_and_recycles(env: Env) {
    let (pool, knobs) = pool(&env, 4);
    let first = pool
        .with(async |c| use_conn(&knobs, c, 1).await)
        .await
        .unwrap();
    let again = pool
        .with(async |c| use_conn(&knobs, c, 1).await)
        .await
        .unwrap();
    assert_eq!(first, again, "the same object, reused");
    assert_eq!(
        knobs.did(),
        [Did::Created(first), Did::Recycled(first)],
        "recycled before the second use, not after the first"
    );
    let status = consistent(&pool, &knobs);
    assert_eq!(
        (status.size, status.idle, status.in_use, status.recycled),
        (1, 1, 0, 1)
    );
    // As a resource, composed like any other.
    let sum = pool
        .checkout()
        .zip(pool.checkout())
        .with(&env.rt, async |(a, b)| {
            assert_ne!(a.id, b.id, "two checkouts, two objects");
            Ok::<_, ConnError>(a.id + b.id)
        })
        .await
        .unwrap();
    assert_eq!(sum, 1 + 2);
    assert_eq!(consistent(&pool, &knobs).idle, 2);
}

/// A body that fails: the object is recycled at once and goes back; when
/// that recycle fails, it is destroyed and the failure is kept beside the
/// body's error.
pub async fn failed_body_recycles(env: Env) {
    let (pool, knobs) = pool(&env, 2);
    let failed = pool
        .with(async |c| Err::<(), _>(ConnError::Broken(c.id)))
        .await;
    assert_eq!(
        failed,
        Err(ScopeError::Body {
            error: ConnError::Broken(1),
            release: None
        })
    );
    assert_eq!(knobs.did(), [Did::Created(1), Did::Recycled(1)]);
    assert_eq!(consistent(&pool, &knobs).idle, 1);

    lock(&knobs.fail_recycle).insert(1);
    // The idle object fails its recycle at checkout: a fresh one instead.
    let used = pool
        .with(async |c| use_conn(&knobs, c, 0).await)
        .await
        .unwrap();
    assert_eq!(used, 2);
    assert!(knobs.destroyed().contains(&1));
    // The body breaks its object: the recycle after it fails.
    let failed = pool
        .with(async |c| {
            lock(&knobs.fail_recycle).insert(c.id);
            Err::<(), _>(ConnError::Broken(c.id))
        })
        .await;
    let Err(ScopeError::Body { error, release }) = failed else {
        panic!("{failed:?}")
    };
    assert_eq!(error, ConnError::Broken(2));
    assert_eq!(
        release,
        Some(Failure::Error(PoolError::Recycle(ConnError::Broken(2))))
    );
    assert!(
        PoolError::Recycle(ConnError::Broken(2))
            .to_string()
            .contains("connection 2 is broken")
    );
    // Destroys run as tracked cleanups.
    drain(&env).await;
    assert_eq!(knobs.destroyed(), [1, 2]);
    let status = consistent(&pool, &knobs);
    assert_eq!((status.size, status.recycle_failed), (0, 2));
}

/// A body that panics: the object may be mid-operation, so `reset` decides;
/// by default it is destroyed, and the panic resumes.
pub async fn panicked_body_destroys(env: Env) {
    let (pool, knobs) = pool(&env, 2);
    let panicked = std::panic::AssertUnwindSafe(
        pool.with(async |_c| -> Result<(), ConnError> { panic!("probe: mid-query") }),
    )
    .catch_unwind()
    .await;
    assert!(panicked.is_err(), "the panic resumes");
    drain(&env).await;
    assert_eq!(
        knobs.did(),
        [
            Did::Created(1),
            Did::Reset(1, ExitKind::Panicked),
            Did::Destroyed(1)
        ]
    );
    assert_eq!(consistent(&pool, &knobs).size, 0);
    // A manager whose reset cleans the object keeps it.
    knobs.reset_ok.store(true, Ordering::SeqCst);
    let _ = std::panic::AssertUnwindSafe(
        pool.with(async |_c| -> Result<(), ConnError> { panic!("probe: mid-query") }),
    )
    .catch_unwind()
    .await;
    let status = consistent(&pool, &knobs);
    assert_eq!((status.size, status.idle), (1, 1));
}

/// A scope cancelled in its body: the release runs as a cleanup, told
/// `Cancelled`; the object is destroyed, never handed to the next checkout.
pub async fn cancelled_checkout_destroys(env: Env) {
    let (pool, knobs) = pool(&env, 1);
    let (entered_tx, entered) = oneshot::channel::<u64>();
    let mut entered_tx = Some(entered_tx);
    let mut scope = Stepper::new(pool.with(async |c| {
        let _held = knobs.hold(c);
        if let Some(tx) = entered_tx.take() {
            let _ = tx.send(c.id);
        }
        futures::future::pending::<Result<(), ConnError>>().await
    }));
    let mut entered = entered;
    let id = loop {
        assert!(matches!(scope.step().await, Polled::Pending));
        if let Ok(Some(id)) = entered.try_recv() {
            break id;
        }
    };
    drop(scope);
    let next = pool
        .with(async |c| use_conn(&knobs, c, 0).await)
        .await
        .unwrap();
    assert_ne!(next, id, "a cancelled checkout's object is not reused");
    drain(&env).await;
    assert!(
        knobs
            .did()
            .contains(&Did::Reset(id, ExitKind::Cancelled(awith::Cancel::Dropped)))
    );
    assert_eq!(knobs.destroyed(), [id]);
    let status = consistent(&pool, &knobs);
    assert_eq!((status.size, status.idle, status.in_use), (1, 1, 0));
}

/// Waiters are served first in, first out; a checkout arriving while others
/// wait queues behind them.
pub async fn fifo_waiters(env: Env) {
    let (pool, knobs) = pool(&env, 1);
    let order = Mutex::new(Vec::new());
    let (free_tx, free) = oneshot::channel::<()>();
    let holder = pool.with(async |c| {
        lock(&order).push(0);
        let _ = free.await;
        use_conn(&knobs, c, 1).await
    });
    let waiter = |n: usize| {
        let (pool, knobs, order) = (&pool, &knobs, &order);
        async move {
            pool.with(async |c| {
                lock(order).push(n);
                use_conn(knobs, c, 1).await
            })
            .await
            .unwrap()
        }
    };
    let late = async {
        // Starts once three are queued, then frees the holder: it must not
        // get ahead of them.
        while pool.status().waiting < 3 {
            yield_now().await;
        }
        let queued = waiter(4);
        let mut queued = Box::pin(queued);
        assert!((&mut queued).now_or_never().is_none());
        assert_eq!(pool.status().waiting, 4);
        free_tx.send(()).unwrap();
        queued.await
    };
    let (held, a, b, c, d) = futures::join!(holder, waiter(1), waiter(2), waiter(3), late);
    assert!(held.is_ok());
    assert_eq!([a, b, c, d], [1, 1, 1, 1], "one object, shared in turn");
    assert_eq!(*lock(&order), [0, 1, 2, 3, 4]);
    let status = consistent(&pool, &knobs);
    assert_eq!((status.size, status.waiting, status.created), (1, 0, 1));
}

/// A waiter dropped while queued leaves the queue; one dropped after an
/// object was handed to it passes the object on. No slot is lost.
pub async fn dropped_waiters_lose_nothing(env: Env) {
    let (pool, knobs) = pool(&env, 1);
    // Dropped while queued.
    let (free_tx, free) = oneshot::channel::<()>();
    let holder = pool.with(async |c| {
        let _ = free.await;
        use_conn(&knobs, c, 0).await
    });
    let mut holder = Box::pin(holder);
    assert!((&mut holder).now_or_never().is_none());
    let mut waiter = Box::pin(pool.with(async |c| use_conn(&knobs, c, 0).await));
    assert!((&mut waiter).now_or_never().is_none());
    assert_eq!(pool.status().waiting, 1);
    drop(waiter);
    assert_eq!(pool.status().waiting, 0, "left the queue");

    // Dropped after the object was handed to it, before it ran.
    let mut handed = Box::pin(pool.with(async |c| use_conn(&knobs, c, 0).await));
    assert!((&mut handed).now_or_never().is_none());
    let mut next = Box::pin(pool.with(async |c| use_conn(&knobs, c, 0).await));
    assert!((&mut next).now_or_never().is_none());
    assert_eq!(pool.status().waiting, 2);
    free_tx.send(()).unwrap();
    holder.await.unwrap();
    // The object went to `handed`, which has not run: dropping it passes
    // the object to `next`.
    assert_eq!(pool.status().waiting, 1);
    drop(handed);
    assert_eq!(pool.status().waiting, 0);
    assert_eq!(next.await.unwrap(), 1);
    let status = consistent(&pool, &knobs);
    assert_eq!(
        (status.size, status.idle, status.in_use, status.created),
        (1, 1, 0, 1)
    );
    drain(&env).await;
}

/// The wait timeout fires after its duration (exactly, on the virtual
/// clock); the timed-out checkout leaves the queue.
pub async fn wait_timeout_fires(env: Env) {
    let u = unit(&env);
    let manager = TestManager::default();
    let knobs = Arc::clone(&manager.knobs);
    let pool = Pool::builder(manager)
        .max_size(1)
        .wait_timeout(u)
        .build(&env.rt)
        .unwrap();
    let (free_tx, free) = oneshot::channel::<()>();
    let holder = pool.with(async |c| {
        let _ = free.await;
        use_conn(&knobs, c, 0).await
    });
    let waiter = async {
        let start = env.rt.now();
        let waited = pool.with(async |c| use_conn(&knobs, c, 0).await).await;
        let took = env.rt.now() - start;
        assert_eq!(pool.status().waiting, 0);
        free_tx.send(()).unwrap();
        (waited, took)
    };
    let (held, (waited, took)) = futures::join!(holder, waiter);
    assert!(held.is_ok());
    assert_eq!(
        waited,
        Err(ScopeError::Acquire(Failure::Error(PoolError::Timeout {
            kind: TimeoutKind::Wait,
            after: u
        })))
    );
    waited_exactly(&env, took, u);
    let status = consistent(&pool, &knobs);
    assert_eq!((status.size, status.idle, status.waiting), (1, 1, 0));

    // A waiter queued behind an earlier one that is served before its
    // deadline times out at its own deadline — not the earlier one's (the
    // pool's timer was set for that), and not never.
    let (free_h_tx, free_h) = oneshot::channel::<()>();
    let (free_a_tx, free_a) = oneshot::channel::<()>();
    let h = pool.with(async |c| {
        let _ = free_h.await;
        use_conn(&knobs, c, 0).await
    });
    let a = pool.with(async |c| {
        let _ = free_a.await;
        use_conn(&knobs, c, 0).await
    });
    let b = async {
        env.rt.sleep(u / 2).await;
        free_h_tx.send(()).unwrap();
        let start = env.rt.now();
        let waited = pool.with(async |c| use_conn(&knobs, c, 0).await).await;
        let took = env.rt.now() - start;
        free_a_tx.send(()).unwrap();
        (waited, took)
    };
    let (h, a, (waited, took)) = futures::join!(h, a, b);
    assert!(h.is_ok() && a.is_ok(), "{h:?} {a:?}");
    assert!(
        matches!(
            waited,
            Err(ScopeError::Acquire(Failure::Error(
                PoolError::Timeout { .. }
            )))
        ),
        "{waited:?}"
    );
    waited_exactly(&env, took, u);
    let status = consistent(&pool, &knobs);
    assert_eq!((status.size, status.idle, status.waiting), (1, 1, 0));

    // The pool's task also wakes for maintenance, much later: a waiter still
    // times out at its own deadline.
    let tended = Pool::builder(TestManager::default())
        .max_size(1)
        .wait_timeout(u)
        .idle_timeout(u * 10_000)
        .maintenance_interval(u * 1000)
        .build(&env.rt)
        .unwrap();
    let (free_tx, free) = oneshot::channel::<()>();
    let holder = tended.with(async |_| {
        let _ = free.await;
        Ok::<_, ConnError>(())
    });
    let waiter = async {
        // The pool's task has run by then: its timer is set for maintenance.
        env.rt.sleep(u / 2).await;
        let start = env.rt.now();
        let waited = tended.with(async |_| Ok::<_, ConnError>(())).await;
        let took = env.rt.now() - start;
        free_tx.send(()).unwrap();
        (waited, took)
    };
    let (held, (waited, took)) = futures::join!(holder, waiter);
    assert!(held.is_ok());
    assert!(waited.is_err(), "{waited:?}");
    waited_exactly(&env, took, u);

    // Zero: fail at once when nothing is free.
    let zero = Pool::builder(TestManager::default())
        .max_size(1)
        .wait_timeout(Duration::ZERO)
        .build(&env.rt)
        .unwrap();
    let checkout = zero.checkout();
    let hold = zero.with(async |_| {
        let second = checkout
            .with(&env.rt, async |_| Ok::<_, ConnError>(()))
            .await;
        Ok::<_, ConnError>(second)
    });
    let second = hold.await.unwrap();
    assert!(matches!(
        second,
        Err(ScopeError::Acquire(Failure::Error(PoolError::Timeout {
            kind: TimeoutKind::Wait,
            ..
        })))
    ));
}

/// A failed creation frees its slot: the next checkout creates again, and
/// a waiter behind a failing creation gets its turn.
pub async fn create_failure_frees_slot(env: Env) {
    let (pool, knobs) = pool(&env, 1);
    knobs.fail_creates.store(2, Ordering::SeqCst);
    knobs.yields.store(2, Ordering::SeqCst);
    let a = pool.with(async |c| use_conn(&knobs, c, 0).await);
    let b = pool.with(async |c| use_conn(&knobs, c, 0).await);
    let c = pool.with(async |c| use_conn(&knobs, c, 0).await);
    let (a, b, c) = futures::join!(a, b, c);
    let refused = Err(ScopeError::Acquire(Failure::Error(PoolError::Create(
        ConnError::Refused,
    ))));
    assert_eq!((a, b), (refused.clone(), refused));
    assert_eq!(c, Ok(1));
    let status = consistent(&pool, &knobs);
    assert_eq!((status.size, status.created, status.idle), (1, 1, 1));
    assert!(
        PoolError::Create(ConnError::Refused)
            .to_string()
            .contains("connection refused")
    );
}

/// `close`: waiters and new checkouts fail with `Closed`, idle objects are
/// destroyed, and close waits for the checked-out one, destroyed on its
/// return; a close whose deadline passes says so.
pub async fn close_semantics(env: Env) {
    let (pool, knobs) = pool(&env, 2);
    // One idle object, one held.
    pool.with(async |c| use_conn(&knobs, c, 0).await)
        .await
        .unwrap();
    let (free_tx, free) = oneshot::channel::<()>();
    let mut free_tx = Some(free_tx);
    let holder = pool.with(async |c| {
        let _ = free.await;
        use_conn(&knobs, c, 0).await
    });
    let mut holder = Box::pin(holder);
    assert!((&mut holder).now_or_never().is_none());
    let held = pool.status().in_use;
    assert_eq!(held, 1);
    let (filler_tx, filler) = oneshot::channel::<()>();
    let filler_hold = pool.with(async |c| {
        let _ = filler.await;
        use_conn(&knobs, c, 0).await
    });
    let mut filler_hold = Box::pin(filler_hold);
    assert!((&mut filler_hold).now_or_never().is_none());
    let mut waiter = Box::pin(pool.with(async |c| use_conn(&knobs, c, 0).await));
    assert!((&mut waiter).now_or_never().is_none());
    assert_eq!(pool.status().waiting, 1);

    let closing = async {
        let closed = pool.close(Duration::from_secs(30)).await;
        assert!(pool.status().closed);
        closed
    };
    let others = async {
        // The waiter fails at once; so does a new checkout.
        let closed = Err(ScopeError::Acquire(Failure::Error(PoolError::Closed)));
        assert_eq!((&mut waiter).await, closed);
        assert_eq!(
            pool.with(async |c| use_conn(&knobs, c, 0).await).await,
            closed
        );
        // Both held objects come back, and are destroyed.
        let _ = filler_tx.send(());
        filler_hold.as_mut().await.unwrap();
        if let Some(tx) = free_tx.take() {
            let _ = tx.send(());
        }
        holder.as_mut().await.unwrap();
    };
    let (closed, ()) = futures::join!(closing, others);
    assert_eq!(closed, Ok(()));
    let status = consistent(&pool, &knobs);
    assert_eq!((status.size, status.idle, status.in_use), (0, 0, 0));
    let mut destroyed = knobs.destroyed();
    destroyed.sort_unstable();
    let mut created = knobs.created();
    created.sort_unstable();
    assert_eq!(destroyed, created);

    // A close whose deadline passes.
    let (pool, knobs) = self::pool(&env, 1);
    let (free_tx, free) = oneshot::channel::<()>();
    let mut holder = Box::pin(pool.with(async |c| {
        let _ = free.await;
        use_conn(&knobs, c, 0).await
    }));
    assert!((&mut holder).now_or_never().is_none());
    let u = unit(&env);
    let closed = pool.close(u).await;
    assert_eq!(
        closed,
        Err(PoolError::Timeout {
            kind: TimeoutKind::Close,
            after: u
        })
    );
    free_tx.send(()).unwrap();
    holder.await.unwrap();
    drain(&env).await;
    assert_eq!(knobs.destroyed(), [1], "destroyed when it came back");
    assert_eq!(consistent(&pool, &knobs).size, 0);
}

/// `resize` up lets waiters create; down destroys idle objects beyond it;
/// `retain` destroys the idle objects it is told to.
pub async fn resize_and_retain(env: Env) {
    let (pool, knobs) = pool(&env, 1);
    let (free_tx, free) = oneshot::channel::<()>();
    let mut holder = Box::pin(pool.with(async |c| {
        let _ = free.await;
        use_conn(&knobs, c, 0).await
    }));
    assert!((&mut holder).now_or_never().is_none());
    let mut waiter = Box::pin(pool.with(async |c| use_conn(&knobs, c, 0).await));
    assert!((&mut waiter).now_or_never().is_none());
    pool.resize(3).unwrap();
    assert_eq!(waiter.await, Ok(2), "the waiter created a second object");
    free_tx.send(()).unwrap();
    holder.await.unwrap();
    let third = pool.checkout();
    pool.with(async |_| {
        third
            .with(&env.rt, async |c| use_conn(&knobs, c, 0).await)
            .await
            .map(drop)
    })
    .await
    .unwrap();
    assert_eq!(consistent(&pool, &knobs).idle, 2);
    pool.resize(1).unwrap();
    let status = consistent(&pool, &knobs);
    assert_eq!((status.max_size, status.size, status.idle), (1, 1, 1));
    pool.resize(4).unwrap();
    for _ in 0..3 {
        let checkouts = [pool.checkout(), pool.checkout(), pool.checkout()];
        let [a, b, c] = checkouts;
        a.zip(b)
            .zip(c)
            .with(&env.rt, async |_| Ok::<_, ConnError>(()))
            .await
            .unwrap();
    }
    assert_eq!(consistent(&pool, &knobs).idle, 3);
    let removed = pool.retain(|conn, _| conn.id % 2 == 0);
    let status = consistent(&pool, &knobs);
    assert_eq!(removed + status.idle, 3);
    assert!(removed >= 1);
}

/// `min_idle` is kept warm by the pool's task; `idle_timeout` and
/// `max_lifetime` retire objects.
pub async fn maintenance(env: Env) {
    let u = unit(&env);
    let manager = TestManager::default();
    let knobs = Arc::clone(&manager.knobs);
    let pool = Pool::builder(manager)
        .max_size(4)
        .min_idle(2)
        .idle_timeout(u * 10)
        .maintenance_interval(u)
        .build(&env.rt)
        .unwrap();
    // Warm without a checkout (bounded wait on a real clock).
    for _ in 0..500 {
        if pool.status().idle >= 2 {
            break;
        }
        env.rt.sleep(u / 2).await;
    }
    assert_eq!(pool.status().idle, 2, "{:?}", pool.status());
    assert_eq!(knobs.created().len(), 2);
    // Idle past the timeout: retired, and replaced to keep two warm.
    env.rt.sleep(u * 12).await;
    for _ in 0..500 {
        if knobs.destroyed().len() >= 2 && pool.status().idle >= 2 {
            break;
        }
        env.rt.sleep(u / 2).await;
    }
    assert!(knobs.destroyed().len() >= 2, "{:?}", knobs.did());
    let status = consistent(&pool, &knobs);
    assert_eq!(status.idle, 2, "{status:?}");
    // A checkout never gets an expired object.
    let lifetime = Pool::builder(TestManager::default())
        .max_size(1)
        .max_lifetime(u)
        .build(&env.rt)
        .unwrap();
    let first = lifetime
        .with(async |c| Ok::<_, ConnError>(c.id))
        .await
        .unwrap();
    env.rt.sleep(u * 2).await;
    let second = lifetime
        .with(async |c| Ok::<_, ConnError>(c.id))
        .await
        .unwrap();
    assert_ne!(first, second, "past its lifetime: replaced");
    pool.close(Duration::from_secs(5)).await.unwrap();
    lifetime.close(Duration::from_secs(5)).await.unwrap();
}

/// A pool that needs its task (here, for its wait timeout) cannot be built
/// on a runtime that has shut down: a clear error at build time, not waits
/// that never time out.
pub async fn refused_task_is_a_build_error(
    env: Env,
    shut_down: Result<SharedBinding, &'static str>,
) {
    let Ok(dead) = shut_down else {
        // async-std cannot shut down; its pools always get their task.
        let pool = Pool::builder(TestManager::default())
            .wait_timeout(Duration::from_secs(1))
            .build(&env.rt);
        assert!(pool.is_ok());
        return;
    };
    let dead = awith::Runtime::new(dead);
    let error = Pool::builder(TestManager::default())
        .wait_timeout(Duration::from_secs(1))
        .build(&dead)
        .unwrap_err();
    assert_eq!(
        error,
        PoolConfigError::RuntimeShutDown {
            runtime: dead.name()
        }
    );
    assert!(error.to_string().contains("shut down"), "{error}");
    // A pool with no task to run builds.
    assert!(Pool::builder(TestManager::default()).build(&dead).is_ok());
}
