//! The hand-off: a waiter registered for a key is woken by a release of
//! that key published by any process, at once (no poll interval), and a
//! dropped waiter leaves the table.

#[macro_use]
mod common;

use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use awith::lock::{LockBackend, Token, Waiter};
use awith::test::Env;
use awith_redis::{RedisLocks, RedisWaiter};
use common::RedisServer;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const TTL: Duration = Duration::from_secs(30);

matrix!(
    a_release_wakes_a_registered_waiter_at_once,
    a_dropped_waiter_unregisters,
    the_connection_runs_on_the_callers_runtime,
    waiters_hear_releases_again_after_a_server_restart,
);

/// Polls `waiter` once with a waker that does nothing.
fn poll_once(waiter: &mut RedisWaiter) -> Poll<()> {
    waiter.poll_released(&mut Context::from_waker(Waker::noop()))
}

/// Waits up to `limit` for `waiter`: whether it was woken.
async fn woken(env: &Env, waiter: &mut RedisWaiter, limit: Duration) -> bool {
    env.rt
        .timeout(limit, poll_fn(|cx| waiter.poll_released(cx)))
        .await
        .is_ok()
}

async fn a_release_wakes_a_registered_waiter_at_once(env: Env) -> TestResult {
    let server = RedisServer::start();
    // The waiter's process and the holder's: two connections.
    let waiting = RedisLocks::connect(server.url()).await?;
    let holding = RedisLocks::connect(server.url()).await?;
    let holder = Token::random();
    assert_eq!(holding.try_acquire("k", &holder, TTL).await?, Some(1));

    // Registered when `waiter` returns: never polled before the release.
    let mut waiter = waiting.waiter("k", &Token::random());
    let mut bystander = waiting.waiter("other", &Token::random());
    let started = Instant::now();
    assert!(holding.release("k", &holder).await?);
    assert!(
        woken(&env, &mut waiter, Duration::from_secs(5)).await,
        "the release did not wake the waiter"
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(50),
        "woken {took:?} after the release"
    );
    // The release of `k` was dispatched, and it was not `other`'s.
    assert_eq!(poll_once(&mut bystander), Poll::Pending);
    // Ready once per release: it re-arms.
    assert_eq!(poll_once(&mut waiter), Poll::Pending);

    // A waiter that is already waiting (polled, then parked) is woken too.
    let token = Token::random();
    assert!(holding.try_acquire("k", &token, TTL).await?.is_some());
    assert_eq!(poll_once(&mut waiter), Poll::Pending);
    let started = Instant::now();
    assert!(holding.release("k", &token).await?);
    assert!(woken(&env, &mut waiter, Duration::from_secs(5)).await);
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(50),
        "woken {took:?} after the release"
    );

    // A release by a token that does not hold the lock publishes nothing.
    assert!(!holding.release("other", &Token::random()).await?);
    assert!(holding.try_acquire("k", &token, TTL).await?.is_some());
    assert!(holding.release("k", &token).await?);
    assert!(woken(&env, &mut waiter, Duration::from_secs(5)).await);
    assert_eq!(poll_once(&mut bystander), Poll::Pending);
    Ok(())
}

async fn a_dropped_waiter_unregisters(_env: Env) -> TestResult {
    let server = RedisServer::start();
    let locks = RedisLocks::connect(server.url()).await?;
    let clone = locks.clone();
    let first = locks.waiter("k", &Token::random());
    let second = clone.waiter("k", &Token::random());
    let third = locks.waiter("j", &Token::random());
    assert_eq!(
        (locks.waiters("k"), locks.waiters("j")),
        (2, 1),
        "clones share one table"
    );
    drop(first);
    assert_eq!(clone.waiters("k"), 1);
    drop(second);
    assert_eq!(locks.waiters("k"), 0);
    assert_eq!(locks.waiters("j"), 1);
    // A waiter that outlives its `RedisLocks` is inert, and drops cleanly.
    drop((locks, clone));
    let mut third = third;
    assert_eq!(poll_once(&mut third), Poll::Pending);
    Ok(())
}

/// Records the name of the thread that wakes it, and wakes the task.
#[derive(Default)]
struct WokenOn {
    thread: Mutex<Option<String>>,
    task: Mutex<Option<Waker>>,
}

impl Wake for WokenOn {
    fn wake(self: Arc<Self>) {
        let name = std::thread::current().name().unwrap_or("").to_owned();
        *lock(&self.thread) = Some(name);
        if let Some(task) = lock(&self.task).take() {
            task.wake();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// redis runs the connection (whose reader dispatches releases) on the
/// runtime that called `connect`: tokio's workers on tokio, smol's global
/// executor on smol and async-std — also when both redis runtimes are
/// compiled in (`--all-features`).
async fn the_connection_runs_on_the_callers_runtime(env: Env) -> TestResult {
    let server = RedisServer::start();
    let waiting = RedisLocks::connect(server.url()).await?;
    let holding = RedisLocks::connect(server.url()).await?;
    let token = Token::random();
    assert!(holding.try_acquire("k", &token, TTL).await?.is_some());
    let mut waiter = waiting.waiter("k", &Token::random());
    let record = Arc::new(WokenOn::default());
    let waker = Waker::from(Arc::clone(&record));
    assert_eq!(
        waiter.poll_released(&mut Context::from_waker(&waker)),
        Poll::Pending
    );
    assert!(holding.release("k", &token).await?);
    // Wait with the recording waker in the waiter, the task's behind it.
    let released = poll_fn(|cx| {
        *lock(&record.task) = Some(cx.waker().clone());
        waiter.poll_released(&mut Context::from_waker(&waker))
    });
    env.rt.timeout(Duration::from_secs(5), released).await?;
    let thread = lock(&record.thread)
        .clone()
        .ok_or("the recording waker was not woken")?;
    let expected = match env.kind.test_name {
        "tokio_multi_thread" => "tokio-",
        // The connection's reader runs on the thread that blocks on the
        // test: the test's own.
        "tokio_current_thread" => "tokio_current_thread",
        _ => "smol-",
    };
    assert!(
        thread.contains(expected),
        "on {}, the release was dispatched on thread {thread:?}",
        env.kind.label
    );
    Ok(())
}

async fn waiters_hear_releases_again_after_a_server_restart(env: Env) -> TestResult {
    let mut server = RedisServer::start();
    let waiting = RedisLocks::connect(server.url()).await?;
    let mut waiter = waiting.waiter("k", &Token::random());
    server.restart();
    // The lost connection wakes every waiter: a release may have been missed.
    assert!(
        woken(&env, &mut waiter, Duration::from_secs(5)).await,
        "a lost connection did not wake the waiter"
    );
    // Once the connection is back and subscribed again, releases by
    // another process wake it again (bounded retries while it reconnects).
    let holding = RedisLocks::connect(server.url()).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Drain the wake-ups of the reconnection itself.
        while poll_once(&mut waiter).is_ready() {}
        let token = Token::random();
        assert!(holding.try_acquire("k", &token, TTL).await?.is_some());
        assert!(holding.release("k", &token).await?);
        if woken(&env, &mut waiter, Duration::from_millis(200)).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no release was heard after the restart"
        );
    }
    Ok(())
}
