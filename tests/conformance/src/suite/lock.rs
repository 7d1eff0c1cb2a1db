//! Locks: exclusion with fencing, FIFO hand-off, waiting and its deadline,
//! renewal, a lost lease (refused, failing, hanging, panicking backend)
//! cancelling the body — through every combinator and an exit stack — or
//! only signalling it, cancellation while waiting, mid-try and in the body,
//! and bad settings.

use std::future::{Future, pending};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use awith::lock::{
    LocalLocks, LocalWaiter, Lock, LockBackend, LockConfigError, LockError, LostReason, OnLost,
    Token,
};
use awith::stack::ExitStack;
use awith::{Cancel, ExitKind, Failure, ResourceExt, ScopeError, resource};
use futures::FutureExt;
use futures::channel::oneshot;

use super::{Polled, Stepper, drain};
use crate::probe::yield_now;
use awith::test::Env;

/// A second on the virtual clock, 20 ms on a real one.
fn unit(env: &Env) -> Duration {
    if env.virtual_time {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(20)
    }
}

/// What a [`Faulty`] backend's extend or release does.
const NORMAL: u8 = 0;
const REFUSE: u8 = 1;
const FAIL: u8 = 2;
const HANG: u8 = 3;
const PANIC: u8 = 4;
/// A waiter panics when it is made (PANIC: when it is polled).
const PANIC_MADE: u8 = 5;

/// The in-process backend with faults to switch on: a user's backend may
/// refuse, fail, hang or panic.
#[derive(Clone)]
struct Faulty {
    inner: LocalLocks,
    extend: Arc<AtomicU8>,
    release: Arc<AtomicU8>,
    /// What the next try does: HANG takes the key, then never answers (its
    /// reply is lost); FAIL never answers and takes nothing; PANIC panics.
    try_hangs: Arc<AtomicU8>,
    extends: Arc<AtomicUsize>,
    /// What the waiters do: PANIC_MADE, PANIC when polled, HANG never
    /// ready (a backend without a release signal).
    waiter: Arc<AtomicU8>,
}

impl Faulty {
    fn new(env: &Env) -> Self {
        Faulty {
            inner: LocalLocks::new(&env.rt),
            extend: Arc::default(),
            release: Arc::default(),
            try_hangs: Arc::default(),
            extends: Arc::default(),
            waiter: Arc::default(),
        }
    }
}

#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("backend unreachable")
    }
}

impl std::error::Error for Refused {}

fn local<T>(result: Result<T, std::convert::Infallible>) -> T {
    match result {
        Ok(value) => value,
    }
}

impl LockBackend for Faulty {
    type Error = Refused;
    type Waiter = FaultyWaiter;

    fn try_acquire(
        &self,
        key: &str,
        token: &Token,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<u64>, Refused>> + Send {
        let fault = self.try_hangs.swap(NORMAL, Ordering::SeqCst);
        if fault == PANIC {
            panic!("probe: try panicked");
        }
        let taken = (fault != FAIL).then(|| self.inner.try_acquire(key, token, ttl));
        async move {
            let taken = match taken {
                Some(taken) => local(taken.await),
                None => None,
            };
            if fault != NORMAL {
                pending::<()>().await;
            }
            Ok(taken)
        }
    }

    fn release(
        &self,
        key: &str,
        token: &Token,
    ) -> impl Future<Output = Result<bool, Refused>> + Send {
        let fault = self.release.load(Ordering::SeqCst);
        let released = self.inner.release(key, token);
        async move {
            match fault {
                FAIL => Err(Refused),
                HANG => pending().await,
                PANIC => panic!("probe: release panicked"),
                _ => Ok(local(released.await)),
            }
        }
    }

    fn extend(
        &self,
        key: &str,
        token: &Token,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, Refused>> + Send {
        self.extends.fetch_add(1, Ordering::SeqCst);
        let fault = self.extend.load(Ordering::SeqCst);
        let extended = self.inner.extend(key, token, ttl);
        async move {
            match fault {
                REFUSE => Ok(false),
                FAIL => Err(Refused),
                HANG => pending().await,
                PANIC => panic!("probe: extend panicked"),
                _ => Ok(local(extended.await)),
            }
        }
    }

    fn waiter(&self, key: &str, token: &Token) -> FaultyWaiter {
        let fault = self.waiter.load(Ordering::SeqCst);
        if fault == PANIC_MADE {
            panic!("probe: waiter panicked");
        }
        FaultyWaiter {
            inner: self.inner.waiter(key, token),
            fault,
        }
    }
}

/// A [`LocalWaiter`] that panics when polled, or is never ready.
struct FaultyWaiter {
    inner: LocalWaiter,
    fault: u8,
}

impl awith::lock::Waiter for FaultyWaiter {
    fn poll_released(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        match self.fault {
            PANIC => panic!("probe: waiter's poll panicked"),
            HANG => std::task::Poll::Pending,
            _ => self.inner.poll_released(cx),
        }
    }
}

fn lock_on<B: LockBackend>(env: &Env, backend: B, key: &str, ttl: Duration) -> Lock<B> {
    Lock::builder(backend, key)
        .ttl(ttl)
        .build(&env.rt)
        .expect("a valid lock")
}

/// The scope ended with its body cancelled because the lease was lost.
fn assert_lock_lost<T: std::fmt::Debug, E: std::fmt::Debug, R: std::fmt::Debug>(
    ended: &Result<T, ScopeError<E, R>>,
) {
    assert!(
        matches!(
            ended,
            Err(ScopeError::BodyCancelled {
                reason: Cancel::LockLost,
                ..
            })
        ),
        "{ended:?}"
    );
}

/// Bad settings are refused when the lock is built, each with its own error.
pub async fn config_errors(env: Env) {
    let locks = LocalLocks::new(&env.rt);
    let build = |key: &str, ttl: Duration, backoff: (Duration, Duration)| {
        Lock::builder(locks.clone(), key)
            .ttl(ttl)
            .backoff(backoff.0, backoff.1)
            .build(&env.rt)
            .map(|_| ())
    };
    let s = Duration::from_secs(1);
    let ms = Duration::from_millis(1);
    assert_eq!(build("", s, (ms, s)), Err(LockConfigError::EmptyKey));
    assert_eq!(
        build("k", Duration::ZERO, (ms, s)),
        Err(LockConfigError::ZeroTtl)
    );
    assert_eq!(
        build("k", Duration::MAX, (ms, s)),
        Err(LockConfigError::TtlTooLarge(Duration::MAX))
    );
    assert_eq!(
        build("k", s, (Duration::ZERO, s)),
        Err(LockConfigError::ZeroBackoff)
    );
    assert_eq!(
        build("k", s, (s, ms)),
        Err(LockConfigError::BackoffMinAboveMax { min: s, max: ms })
    );
    assert_eq!(build("k", s, (ms, s)), Ok(()));
    assert_eq!(
        LockConfigError::EmptyKey.to_string(),
        "a lock's key is empty"
    );
}

/// A lock cannot be built on a runtime that refuses tasks (its lease could
/// never be renewed): a clear error at build time.
pub async fn refused_task_is_a_build_error(
    env: Env,
    shut_down: Result<awith::test::harness::SharedBinding, &'static str>,
) {
    let Ok(dead) = shut_down else {
        // async-std cannot shut down.
        assert!(
            Lock::builder(LocalLocks::new(&env.rt), "k")
                .build(&env.rt)
                .is_ok()
        );
        return;
    };
    let dead = awith::Runtime::new(dead);
    let error = Lock::builder(LocalLocks::new(&dead), "k")
        .build(&dead)
        .unwrap_err();
    assert_eq!(
        error,
        LockConfigError::RuntimeShutDown {
            runtime: dead.name()
        }
    );
    assert!(error.to_string().contains("shut down"), "{error}");
}

/// Contenders on several tasks each run critical sections of a non-atomic
/// read-modify-write: the count is exact, the fencing tokens grow with
/// every section, and nothing is left held or queued.
pub async fn excludes_and_fences(env: Env) {
    const CONTENDERS: usize = 8;
    const SECTIONS: usize = 25;
    let locks = LocalLocks::new(&env.rt);
    let lock = lock_on(&env, locks.clone(), "counter", Duration::from_secs(60));
    let counter = Arc::new(Mutex::new(0usize));
    let fences = Arc::new(Mutex::new(Vec::new()));
    let mut done = Vec::new();
    for _ in 0..CONTENDERS {
        let (lock, counter, fences) = (lock.clone(), Arc::clone(&counter), Arc::clone(&fences));
        let (tx, rx) = oneshot::channel();
        done.push(rx);
        env.rt
            .spawn(async move {
                for _ in 0..SECTIONS {
                    let section = lock
                        .with(async |lease| {
                            fences.lock().unwrap().push(lease.fence());
                            let read = *counter.lock().unwrap();
                            yield_now().await;
                            yield_now().await;
                            *counter.lock().unwrap() = read + 1;
                            Ok::<_, std::io::Error>(())
                        })
                        .await;
                    section.expect("a section under the lock");
                }
                let _ = tx.send(());
            })
            .unwrap();
    }
    for rx in done {
        rx.await.expect("a contender finished");
    }
    assert_eq!(*counter.lock().unwrap(), CONTENDERS * SECTIONS);
    let fences = fences.lock().unwrap().clone();
    assert_eq!(fences.len(), CONTENDERS * SECTIONS);
    assert!(fences.windows(2).all(|w| w[0] < w[1]), "{fences:?}");
    assert_eq!((locks.held(), locks.waiting()), (0, 0));
    drain(&env).await;
}

/// Waiters take the lock in the order they asked, as soon as it is given
/// back; a waiter that gives up leaves the queue and passes its turn on.
pub async fn fifo_handoff(env: Env) {
    let locks = LocalLocks::new(&env.rt);
    // Backoff far longer than the test: only the hand-off can wake a waiter.
    let lock = Lock::builder(locks.clone(), "fifo")
        .ttl(Duration::from_secs(3600))
        .backoff(Duration::from_secs(600), Duration::from_secs(600))
        .build(&env.rt)
        .unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let (free_tx, free) = oneshot::channel::<()>();
    let mut holder = Stepper::new(lock.with(async |_| {
        let _ = free.await;
        Ok::<_, std::io::Error>(())
    }));
    assert!(matches!(holder.step().await, Polled::Pending));
    let mut waiters = Vec::new();
    for name in ["a", "b", "c", "d"] {
        let (lock, order) = (lock.clone(), Arc::clone(&order));
        let mut waiter = Stepper::new(async move {
            lock.with(async |lease| {
                order.lock().unwrap().push((name, lease.fence()));
                Ok::<_, std::io::Error>(())
            })
            .await
        });
        assert!(matches!(waiter.step().await, Polled::Pending));
        waiters.push(waiter);
    }
    assert_eq!(locks.waiting(), 4);
    // "b" gives up: it leaves the queue at once.
    drop(waiters.remove(1));
    assert_eq!(locks.waiting(), 3);
    free_tx.send(()).unwrap();
    assert!(matches!(holder.step().await, Polled::Ready(Ok(()))));
    for waiter in &mut waiters {
        assert!(matches!(waiter.finish().await, Ok(())));
    }
    let order = order.lock().unwrap().clone();
    let names: Vec<_> = order.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, ["a", "c", "d"]);
    assert!(order.windows(2).all(|w| w[0].1 < w[1].1));
    assert_eq!((locks.held(), locks.waiting()), (0, 0));
    drain(&env).await;
}

/// A lock held by another is waited for up to `wait`; then the error
/// names the key and the wait, and nothing is left queued.
pub async fn wait_times_out(env: Env) {
    let u = unit(&env);
    let locks = LocalLocks::new(&env.rt);
    let lock = lock_on(&env, locks.clone(), "busy", Duration::from_secs(3600));
    let impatient = Lock::builder(locks.clone(), "busy")
        .wait(u)
        .build(&env.rt)
        .unwrap();
    let once = Lock::builder(locks.clone(), "busy")
        .wait(Duration::ZERO)
        .build(&env.rt)
        .unwrap();
    let outcome = lock
        .with(async |_| {
            let start = env.rt.now();
            let waited = impatient.with(async |_| Ok::<_, std::io::Error>(())).await;
            let took = env.rt.now() - start;
            let tried = once.with(async |_| Ok::<_, std::io::Error>(())).await;
            Ok::<_, std::io::Error>((waited, took, tried))
        })
        .await;
    let (waited, took, tried) = outcome.unwrap();
    let Err(ScopeError::Acquire(Failure::Error(LockError::Timeout { key, wait, waited }))) = waited
    else {
        panic!("expected a wait timeout, got {waited:?}")
    };
    assert_eq!((key.as_str(), wait), ("busy", u));
    if env.virtual_time {
        assert_eq!((waited, took), (u, u));
    } else {
        assert!(waited >= u && took < u * 100, "{waited:?} {took:?}");
    }
    let Err(ScopeError::Acquire(Failure::Error(error))) = tried else {
        panic!("expected one failed try, got {tried:?}")
    };
    assert_eq!(
        error.to_string(),
        "lock `busy` not acquired within 0ns: it is held by another"
    );
    assert_eq!(error.key(), "busy");
    assert_eq!((locks.held(), locks.waiting()), (0, 0));
    drain(&env).await;
}

/// The lease is renewed while the body runs: held for ten times its time
/// to live, never taken by another meanwhile.
pub async fn renewal_holds_the_lock(env: Env) {
    let ttl = unit(&env) * 3;
    let backend = Faulty::new(&env);
    let lock = lock_on(&env, backend.clone(), "long", ttl);
    let other = Lock::builder(backend.clone(), "long")
        .wait(Duration::ZERO)
        .build(&env.rt)
        .unwrap();
    let held = lock
        .with(async |lease| {
            for _ in 0..20 {
                env.rt.sleep(ttl / 2).await;
                assert!(!lease.is_lost());
                assert!(lease.time_left() > Duration::ZERO);
                let tried = other.with(async |_| Ok::<_, std::io::Error>(())).await;
                assert!(matches!(
                    tried,
                    Err(ScopeError::Acquire(Failure::Error(
                        LockError::Timeout { .. }
                    )))
                ));
            }
            Ok::<_, std::io::Error>(lease.fence())
        })
        .await;
    assert!(held.is_ok(), "{held:?}");
    assert!(backend.extends.load(Ordering::SeqCst) >= 20);
    assert_eq!(backend.inner.held(), 0);
    drain(&env).await;
}

/// How a lease is lost, by the backend's fault.
async fn lose_lease(env: &Env, fault: u8) -> (Duration, LostReason) {
    let ttl = unit(env) * 3;
    let backend = Faulty::new(env);
    let lock = lock_on(env, backend.clone(), "fragile", ttl);
    let (exit_tx, exit_rx) = std::sync::mpsc::channel();
    let (inner_tx, inner_rx) = std::sync::mpsc::channel();
    let witness = resource(
        || async { Ok::<_, LockError<Refused>>(()) },
        move |(), exit| async move {
            exit_tx.send(exit).unwrap();
            Ok(())
        },
    );
    let start = env.rt.now();
    let reason = Arc::new(Mutex::new(None));
    let scope = lock
        .scope()
        .zip(witness)
        .with(&env.rt, async |(lease, ())| {
            backend.extend.store(fault, Ordering::SeqCst);
            let inner = resource(
                || async { Ok::<_, std::io::Error>(()) },
                move |(), exit| async move {
                    inner_tx.send(exit).unwrap();
                    Ok(())
                },
            );
            // Kept out of the body: the body takes no step once the lease
            // is lost, so it is read after the scope.
            *reason.lock().unwrap() = Some(lease.lost());
            inner
                .with(&env.rt, async |()| {
                    pending::<()>().await;
                    Ok::<_, std::io::Error>(())
                })
                .await
                .map_err(|_| std::io::Error::other("inner"))
        });
    let ended = scope.await;
    let took = env.rt.now() - start;
    let Err(ScopeError::BodyCancelled {
        reason: Cancel::LockLost,
        release: None,
    }) = ended
    else {
        panic!("expected the body cancelled for the lost lock, got {ended:?}")
    };
    assert_eq!(
        ended.unwrap_err().to_string(),
        "the scope's body was cancelled: lock lost"
    );
    drain(env).await;
    assert_eq!(
        exit_rx.try_recv(),
        Ok(ExitKind::Cancelled(Cancel::LockLost))
    );
    assert_eq!(
        inner_rx.try_recv(),
        Ok(ExitKind::Cancelled(Cancel::LockLost))
    );
    assert_eq!(backend.inner.held(), 0);
    let lost = reason
        .lock()
        .unwrap()
        .take()
        .expect("the lost future was kept");
    let reason = lost.now_or_never().expect("the lost future has ended");
    (took, reason)
}

/// A refused extension loses the lease at once: the body (and the scope
/// inside it) is cancelled with `LockLost`, the other part of the zip is
/// told so, and the lost future says why.
pub async fn refused_extension_cancels_body(env: Env) {
    let (took, reason) = lose_lease(&env, REFUSE).await;
    assert_eq!(reason, LostReason::Refused);
    let ttl = unit(&env) * 3;
    if env.virtual_time {
        assert_eq!(took, ttl / 3);
    } else {
        assert!(took < ttl * 50, "{took:?}");
    }
}

/// Extensions that fail lose the lease when it runs out — not before, and
/// not never.
pub async fn failing_extensions_lose_at_expiry(env: Env) {
    let (took, reason) = lose_lease(&env, FAIL).await;
    let LostReason::Expired {
        last_error: Some(error),
    } = reason
    else {
        panic!("expected an expiry, got {reason:?}")
    };
    assert_eq!(error, "backend unreachable");
    let ttl = unit(&env) * 3;
    if env.virtual_time {
        assert_eq!(took, ttl);
    } else {
        assert!(took >= ttl && took < ttl * 50, "{took:?}");
    }
}

/// An extension that never answers cannot hold the renewal past the lease.
pub async fn hanging_extension_loses_at_expiry(env: Env) {
    let (took, reason) = lose_lease(&env, HANG).await;
    assert!(
        matches!(
            reason,
            LostReason::Expired {
                last_error: Some(_)
            }
        ),
        "{reason:?}"
    );
    let ttl = unit(&env) * 3;
    if env.virtual_time {
        assert_eq!(took, ttl);
    } else {
        assert!(took >= ttl && took < ttl * 50, "{took:?}");
    }
}

/// An extension that panics does not kill the renewal: it counts as a
/// failure, and the lease is lost when it runs out.
pub async fn panicking_extension_loses_at_expiry(env: Env) {
    let (_, reason) = lose_lease(&env, PANIC).await;
    let LostReason::Expired {
        last_error: Some(error),
    } = reason
    else {
        panic!("expected an expiry, got {reason:?}")
    };
    assert!(
        error.contains("extending panicked: probe: extend panicked"),
        "{error}"
    );
}

/// Under `OnLost::Signal` the body goes on, told by `lost()`; a body that
/// completes anyway gets the loss from the release.
pub async fn signal_policy_only_signals(env: Env) {
    let backend = Faulty::new(&env);
    let lock = Lock::builder(backend.clone(), "signalled")
        .ttl(unit(&env) * 3)
        .on_lost(OnLost::Signal)
        .build(&env.rt)
        .unwrap();
    let ended = lock
        .with(async |lease| {
            backend.extend.store(REFUSE, Ordering::SeqCst);
            let reason = lease.lost().await;
            assert!(lease.is_lost());
            assert_eq!(lease.time_left(), Duration::ZERO);
            assert_eq!(lease.lost_reason(), Some(LostReason::Refused));
            Ok::<_, std::io::Error>(reason)
        })
        .await;
    let Err(ScopeError::Release(Failure::Error(LockError::Lost { key, reason }))) = ended else {
        panic!("expected the release to report the loss, got {ended:?}")
    };
    assert_eq!((key.as_str(), reason), ("signalled", LostReason::Refused));
    drain(&env).await;
}

/// A lock composed with `and_then`, `map` and inside an exit stack's body
/// still cancels the body when its lease is lost.
pub async fn lost_lease_cancels_through_compositions(env: Env) {
    let backend = Faulty::new(&env);
    let lock = lock_on(&env, backend.clone(), "composed", unit(&env) * 3);
    let ended = lock
        .scope()
        .map(|lease| lease, |lease| lease)
        .and_then(|_lease: &mut awith::lock::Lease| {
            resource(
                || async { Ok::<_, LockError<Refused>>(7u8) },
                |_, _| async { Ok(()) },
            )
        })
        .with(&env.rt, async |(_, _)| {
            backend.extend.store(REFUSE, Ordering::SeqCst);
            pending::<Result<(), std::io::Error>>().await
        })
        .await;
    assert_lock_lost(&ended);
    backend.extend.store(NORMAL, Ordering::SeqCst);

    type BoxError = Box<dyn std::error::Error + Send + Sync>;
    let in_stack = ExitStack::<BoxError>::with(&env.rt, async |stack| {
        let key = stack.enter(lock.scope()).await?;
        assert_eq!(stack[key].key(), "composed");
        backend.extend.store(REFUSE, Ordering::SeqCst);
        pending::<Result<(), BoxError>>().await
    })
    .await;
    assert_lock_lost(&in_stack);
    assert_eq!(backend.inner.held(), 0);
    drain(&env).await;
}

/// Dropped while waiting, in the body, or with a try in flight whose
/// answer will never come: the key is given back (by token) every time.
pub async fn cancellation_gives_the_key_back(env: Env) {
    let backend = Faulty::new(&env);
    let locks = backend.inner.clone();
    let lock = lock_on(&env, backend.clone(), "dropped", Duration::from_secs(3600));

    // In the body.
    let mut scope =
        Stepper::new(lock.with(async |_| pending::<Result<(), std::io::Error>>().await));
    assert!(matches!(scope.step().await, Polled::Pending));
    assert_eq!(locks.held(), 1);
    drop(scope);
    drain(&env).await;
    assert_eq!(locks.held(), 0);

    // With a try in flight that took the key.
    backend.try_hangs.store(HANG, Ordering::SeqCst);
    let mut scope = Stepper::new(lock.with(async |_| Ok::<_, std::io::Error>(())));
    assert!(matches!(scope.step().await, Polled::Pending));
    assert_eq!(locks.held(), 1);
    drop(scope);
    drain(&env).await;
    assert_eq!(locks.held(), 0);

    // While waiting.
    let (free_tx, free) = oneshot::channel::<()>();
    let mut holder = Stepper::new(lock.with(async |_| {
        let _ = free.await;
        Ok::<_, std::io::Error>(())
    }));
    assert!(matches!(holder.step().await, Polled::Pending));
    let mut waiter = Stepper::new(lock.with(async |_| Ok::<_, std::io::Error>(())));
    assert!(matches!(waiter.step().await, Polled::Pending));
    assert_eq!(locks.waiting(), 1);
    drop(waiter);
    assert_eq!(locks.waiting(), 0);
    free_tx.send(()).unwrap();
    assert!(matches!(holder.finish().await, Ok(())));
    drain(&env).await;
    assert_eq!((locks.held(), locks.waiting()), (0, 0));
}

/// A release that cannot reach the backend is an error of the scope (after
/// its retries), never silence.
pub async fn failed_release_is_returned(env: Env) {
    let backend = Faulty::new(&env);
    let lock = lock_on(
        &env,
        backend.clone(),
        "unreachable",
        Duration::from_secs(3600),
    );
    let ended = lock
        .with(async |_| {
            backend.release.store(FAIL, Ordering::SeqCst);
            Ok::<_, std::io::Error>(1)
        })
        .await;
    let Err(ScopeError::Release(Failure::Error(error))) = ended else {
        panic!("expected the release's failure, got {ended:?}")
    };
    assert_eq!(
        error.to_string(),
        "lock `unreachable`: release failed: backend unreachable"
    );
    assert!(std::error::Error::source(&error).is_some());
    drain(&env).await;
}

/// A try that never answers is cut at the wait (its key, had it been taken,
/// given back by token); a try that panics panics the scope and holds
/// nothing.
pub async fn hanging_or_panicking_try(env: Env) {
    let u = unit(&env);
    let backend = Faulty::new(&env);
    let lock = Lock::builder(backend.clone(), "stuck")
        .ttl(Duration::from_secs(3600))
        .wait(u)
        .build(&env.rt)
        .unwrap();
    for fault in [FAIL, HANG] {
        backend.try_hangs.store(fault, Ordering::SeqCst);
        let start = env.rt.now();
        let ended = lock.with(async |_| Ok::<_, std::io::Error>(())).await;
        let took = env.rt.now() - start;
        let Err(ScopeError::Acquire(Failure::Error(LockError::Unanswered { key, during, after }))) =
            ended
        else {
            panic!("expected an unanswered try, got {ended:?}")
        };
        // A try gets at least a second for its answer (here more than
        // the wait, on a real clock).
        let second = Duration::from_secs(1);
        assert_eq!((key.as_str(), during, after), ("stuck", "acquire", second));
        if env.virtual_time {
            assert_eq!(took, second);
        } else {
            assert!(took >= second && took < second * 20, "{took:?}");
        }
        drain(&env).await;
        assert_eq!(backend.inner.held(), 0, "fault {fault}");
    }
    backend.try_hangs.store(PANIC, Ordering::SeqCst);
    let panicked = std::panic::AssertUnwindSafe(lock.with(async |_| Ok::<_, std::io::Error>(())))
        .catch_unwind()
        .await;
    let panic = panicked.expect_err("the try's panic reaches the scope's caller");
    assert_eq!(super::panic_message(&*panic), "probe: try panicked");
    drain(&env).await;
    assert_eq!((backend.inner.held(), backend.inner.waiting()), (0, 0));
    // The lock still works.
    assert!(
        lock.with(async |_| Ok::<_, std::io::Error>(()))
            .await
            .is_ok()
    );
}

/// A release that never answers is bounded (by the lease: after that the
/// key frees itself) and returned; one that panics panics the scope.
pub async fn hanging_or_panicking_release(env: Env) {
    let ttl = unit(&env) * 3;
    let backend = Faulty::new(&env);
    let lock = lock_on(&env, backend.clone(), "slow", ttl);
    backend.release.store(HANG, Ordering::SeqCst);
    let start = env.rt.now();
    let ended = lock.with(async |_| Ok::<_, std::io::Error>(())).await;
    let took = env.rt.now() - start;
    let Err(ScopeError::Release(Failure::Error(LockError::Unanswered { during, .. }))) = ended
    else {
        panic!("expected an unanswered release, got {ended:?}")
    };
    assert_eq!(during, "release");
    if env.virtual_time {
        assert_eq!(took, ttl);
    } else {
        assert!(took >= ttl && took < ttl * 100, "{took:?}");
    }
    backend.release.store(PANIC, Ordering::SeqCst);
    let panicked = std::panic::AssertUnwindSafe(lock.with(async |_| Ok::<_, std::io::Error>(())))
        .catch_unwind()
        .await;
    let panic = panicked.expect_err("the release's panic reaches the scope's caller");
    assert_eq!(super::panic_message(&*panic), "probe: release panicked");
    backend.release.store(NORMAL, Ordering::SeqCst);
    drain(&env).await;
}

/// Under `OnLost::Cancel` a body never takes another step once the lease is
/// lost — not even when the loss itself is what woke it (it waits on
/// `lost()`): in a lock's own scope and in an exit stack's body.
pub async fn lost_lease_stops_the_body_before_its_next_step(env: Env) {
    let backend = Faulty::new(&env);
    let lock = lock_on(&env, backend.clone(), "stepped", unit(&env) * 3);
    let steps = AtomicUsize::new(0);
    let ended = lock
        .with(async |lease| {
            backend.extend.store(REFUSE, Ordering::SeqCst);
            let _ = lease.lost().await;
            steps.fetch_add(1, Ordering::SeqCst);
            pending::<Result<(), std::io::Error>>().await
        })
        .await;
    assert_lock_lost(&ended);
    assert_eq!(
        steps.load(Ordering::SeqCst),
        0,
        "the body ran after the loss"
    );
    backend.extend.store(NORMAL, Ordering::SeqCst);

    type BoxError = Box<dyn std::error::Error + Send + Sync>;
    let in_stack = ExitStack::<BoxError>::with(&env.rt, async |stack| {
        let key = stack.enter(lock.scope()).await?;
        let lost = stack[key].lost();
        backend.extend.store(REFUSE, Ordering::SeqCst);
        let _ = lost.await;
        steps.fetch_add(1, Ordering::SeqCst);
        pending::<Result<(), BoxError>>().await
    })
    .await;
    assert_lock_lost(&in_stack);
    assert_eq!(
        steps.load(Ordering::SeqCst),
        0,
        "the stack's body ran after the loss"
    );
    drain(&env).await;
}

/// One renewal task serves a lock's leases, one after another: a lease
/// taken while the task still waits for an earlier (given back) lease's
/// turn, and one taken after the task ended for want of leases, are both
/// renewed — and a lease taken and given back within `ttl / 3` costs no
/// extension at all.
pub async fn renewal_serves_lease_after_lease(env: Env) {
    let ttl = unit(&env) * 3;
    let backend = Faulty::new(&env);
    let lock = lock_on(&env, backend.clone(), "again", ttl);
    let hold = |span: Duration| {
        let lock = lock.clone();
        let env = &env;
        async move {
            lock.with(async |lease| {
                env.rt.sleep(span).await;
                assert!(!lease.is_lost(), "lost while held for {span:?}");
                Ok::<_, std::io::Error>(lease.fence())
            })
            .await
            .expect("held")
        }
    };
    for _ in 0..50 {
        hold(Duration::ZERO).await;
    }
    assert_eq!(backend.extends.load(Ordering::SeqCst), 0);
    // The task's timer is still set for an earlier lease's turn.
    hold(ttl * 3).await;
    let extends = backend.extends.load(Ordering::SeqCst);
    assert!(extends >= 6, "{extends}");
    // The task has ended: nothing is held.
    env.rt.sleep(ttl * 2).await;
    assert_eq!(backend.extends.load(Ordering::SeqCst), extends);
    hold(ttl * 3).await;
    assert!(backend.extends.load(Ordering::SeqCst) >= extends + 6);
    assert_eq!(backend.inner.held(), 0);
    drain(&env).await;
}

/// A tripwire: tripped once (the first reason stays), seen by its clones
/// and by `either`, awaited, and shown by `Debug`.
pub async fn tripwire_api(env: Env) {
    use awith::Tripwire;
    let (a, b) = (Tripwire::new(), Tripwire::default());
    let both = Tripwire::either(Some(a.clone()), Some(b.clone())).expect("two wires");
    assert!(Tripwire::either(None, None).is_none());
    assert_eq!(format!("{both:?}"), "Tripwire { tripped: None }");
    let waiting = both.wait();
    b.trip(Cancel::LockLost);
    b.trip(Cancel::Dropped);
    assert_eq!((a.tripped(), b.tripped()), (None, Some(Cancel::LockLost)));
    assert_eq!(both.tripped(), Some(Cancel::LockLost));
    assert_eq!(waiting.await, Cancel::LockLost);
    assert_eq!(format!("{b:?}"), "Tripwire { tripped: Some(LockLost) }");
    // Tripping the pair trips both.
    let (c, d) = (Tripwire::new(), Tripwire::new());
    Tripwire::either(Some(c.clone()), Some(d.clone()))
        .expect("two wires")
        .trip(Cancel::Timeout);
    assert_eq!(
        (c.tripped(), d.tripped()),
        (Some(Cancel::Timeout), Some(Cancel::Timeout))
    );
    drain(&env).await;
}

/// A backend's waiter that panics — when made, or when polled — panics the
/// acquire and leaves nothing held or queued; one that never signals (a
/// backend without a release signal) still gets the lock, by the backoff,
/// once it is given back.
pub async fn panicking_or_silent_waiter(env: Env) {
    let backend = Faulty::new(&env);
    let locks = backend.inner.clone();
    let lock = lock_on(&env, backend.clone(), "waited", Duration::from_secs(3600));
    let (free_tx, free) = oneshot::channel::<()>();
    let mut holder = Stepper::new(lock.with(async |_| {
        let _ = free.await;
        Ok::<_, std::io::Error>(())
    }));
    assert!(matches!(holder.step().await, Polled::Pending));

    // Made: it panics before any try.
    backend.waiter.store(PANIC_MADE, Ordering::SeqCst);
    let made = std::panic::AssertUnwindSafe(lock.with(async |_| Ok::<_, std::io::Error>(())))
        .catch_unwind()
        .await;
    assert_eq!(
        super::panic_message(&*made.unwrap_err()),
        "probe: waiter panicked"
    );
    backend.waiter.store(PANIC, Ordering::SeqCst);
    // Polled, while the lock is held: it panics while waiting.
    let polled = std::panic::AssertUnwindSafe(lock.with(async |_| Ok::<_, std::io::Error>(())))
        .catch_unwind()
        .await;
    assert_eq!(
        super::panic_message(&*polled.unwrap_err()),
        "probe: waiter's poll panicked"
    );
    assert_eq!((locks.held(), locks.waiting()), (1, 0));

    // Never ready: the backoff still finds the lock once it is free.
    backend.waiter.store(HANG, Ordering::SeqCst);
    let mut waiter = Stepper::new(lock.with(async |lease| Ok::<_, std::io::Error>(lease.fence())));
    assert!(matches!(waiter.step().await, Polled::Pending));
    free_tx.send(()).unwrap();
    assert!(matches!(holder.finish().await, Ok(())));
    let fence = waiter.finish().await.expect("taken after the backoff");
    assert!(fence > 1);
    drain(&env).await;
    assert_eq!((locks.held(), locks.waiting()), (0, 0));
}
