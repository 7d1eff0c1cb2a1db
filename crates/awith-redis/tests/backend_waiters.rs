//! The hand-off: a waiter registered for a key is woken by a release of
//! that key published by any process, at once (no poll interval), and a
//! dropped waiter leaves the table. A key's release channel is subscribed
//! only while a waiter of it waits (has been polled), and unsubscribed
//! after its last waiter.

mod common;

use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use awith::lock::{Lock, LockBackend, Token, Waiter};
use awith::test::Env;
use awith_redis::{RedisLocks, RedisWaiter};
use common::RedisServer;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const TTL: Duration = Duration::from_secs(30);

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

#[awith::test(skip(reference))]
async fn a_release_wakes_a_registered_waiter_at_once(env: Env) -> TestResult {
    let server = RedisServer::start();
    // The waiter's process and the holder's: two connections.
    let waiting = RedisLocks::connect(server.url()).await?;
    let holding = RedisLocks::connect(server.url()).await?;
    let holder = Token::random();
    assert_eq!(holding.try_acquire("k", &holder, TTL).await?, Some(1));

    // A bystander that waits (polled: subscribed, and woken by the
    // subscription's confirmation).
    let mut bystander = waiting.waiter("other", &Token::random());
    assert!(woken(&env, &mut bystander, Duration::from_secs(5)).await);
    // Registered when `waiter` returns, never polled before the release:
    // its key's channel is not subscribed yet, and the release reaches
    // nobody; its first poll subscribes, and the confirmation wakes it.
    let mut waiter = waiting.waiter("k", &Token::random());
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

#[awith::test(skip(reference))]
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
#[awith::test(skip(reference))]
async fn the_connection_runs_on_the_callers_runtime(env: Env) -> TestResult {
    let server = RedisServer::start();
    let waiting = RedisLocks::connect(server.url()).await?;
    let holding = RedisLocks::connect(server.url()).await?;
    let token = Token::random();
    assert!(holding.try_acquire("k", &token, TTL).await?.is_some());
    let mut waiter = waiting.waiter("k", &Token::random());
    // Its first poll subscribes; the confirmation wakes it.
    assert!(woken(&env, &mut waiter, Duration::from_secs(5)).await);
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

#[awith::test(skip(reference))]
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

/// The release channels the server has subscribers for, sorted.
async fn channels(conn: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let mut channels: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .arg("*")
        .query_async(conn)
        .await
        .expect("PUBSUB CHANNELS");
    channels.sort();
    channels
}

/// Polls `waiters` (once each, as a backing-off scope does) until the
/// server's subscribed channels are `expected`: whether they became so
/// within 5 s.
async fn settle(
    env: &Env,
    conn: &mut redis::aio::MultiplexedConnection,
    waiters: &mut [RedisWaiter],
    expected: &[String],
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        for waiter in waiters.iter_mut() {
            let _ = poll_once(waiter);
        }
        if channels(conn).await == expected {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        env.rt.sleep(Duration::from_millis(5)).await;
    }
}

/// How many SUBSCRIBE and UNSUBSCRIBE commands the server has run.
async fn subscription_commands(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .expect("INFO commandstats");
    info.lines()
        .filter(|line| {
            line.starts_with("cmdstat_subscribe:") || line.starts_with("cmdstat_unsubscribe:")
        })
        .filter_map(|line| {
            let calls = line.split_once("calls=")?.1;
            calls.split(',').next()?.parse::<u64>().ok()
        })
        .sum()
}

/// Once a waiter's first poll has subscribed its key's channel (the
/// confirmation wakes it), a release of its key wakes it at once, and a
/// release of another key does not.
#[awith::test(skip(reference))]
async fn a_subscribed_waiter_hears_its_key_only(env: Env) -> TestResult {
    let server = RedisServer::start();
    let mut conn = common::chaos::connection(&server.url()).await;
    let waiting = RedisLocks::connect(server.url()).await?;
    let holding = RedisLocks::connect(server.url()).await?;
    let (holder, other) = (Token::random(), Token::random());
    assert!(holding.try_acquire("k", &holder, TTL).await?.is_some());
    assert!(holding.try_acquire("other", &other, TTL).await?.is_some());

    let mut waiter = waiting.waiter("k", &Token::random());
    assert_eq!(channels(&mut conn).await, Vec::<String>::new());
    // The first poll subscribes; the confirmation wakes the waiter.
    assert!(
        woken(&env, &mut waiter, Duration::from_secs(5)).await,
        "the subscription's confirmation did not wake the waiter"
    );
    assert_eq!(channels(&mut conn).await, [waiting.channel("k")]);
    assert_eq!(waiting.channel("k"), "awith:released:{k}");
    assert_eq!(waiting.subscribed(), ["k"]);
    assert_eq!(poll_once(&mut waiter), Poll::Pending);

    // Another key's release: not heard.
    assert!(holding.release("other", &other).await?);
    assert!(!woken(&env, &mut waiter, Duration::from_millis(200)).await);
    // Its own: at once.
    let started = Instant::now();
    assert!(holding.release("k", &holder).await?);
    assert!(woken(&env, &mut waiter, Duration::from_secs(5)).await);
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(50),
        "woken {took:?} after the release"
    );
    assert_eq!(poll_once(&mut waiter), Poll::Pending);
    Ok(())
}

/// A release published after a waiter registered but before its key's
/// channel was subscribed reaches nobody; the subscription's confirmation
/// wakes the waiter then, so that it tries again and finds the key free.
#[awith::test(skip(reference))]
async fn a_release_before_the_subscription_is_not_lost(env: Env) -> TestResult {
    let server = RedisServer::start();
    let mut conn = common::chaos::connection(&server.url()).await;
    let waiting = RedisLocks::connect(server.url()).await?;
    let holding = RedisLocks::connect(server.url()).await?;
    let holder = Token::random();
    assert!(holding.try_acquire("k", &holder, TTL).await?.is_some());

    let token = Token::random();
    let mut waiter = waiting.waiter("k", &token);
    assert_eq!(waiting.try_acquire("k", &token, TTL).await?, None);
    // Released while nobody is subscribed: the message is lost.
    assert!(holding.release("k", &holder).await?);
    assert_eq!(channels(&mut conn).await, Vec::<String>::new());
    // The waiter starts to wait: subscribes, and is woken by the
    // confirmation.
    assert!(
        woken(&env, &mut waiter, Duration::from_secs(5)).await,
        "the waiter was not woken when its subscription was confirmed"
    );
    assert!(waiting.try_acquire("k", &token, TTL).await?.is_some());
    drop(waiter);
    assert!(waiting.release("k", &token).await?);
    Ok(())
}

/// An acquire that never waits (its waiter made, the try succeeds, the
/// waiter dropped unpolled) sends no SUBSCRIBE nor UNSUBSCRIBE: neither by
/// hand nor through the lock scope.
#[awith::test(skip(reference))]
async fn an_uncontended_acquire_subscribes_nothing(env: Env) -> TestResult {
    let server = RedisServer::start();
    let mut conn = common::chaos::connection(&server.url()).await;
    let locks = RedisLocks::connect(server.url()).await?;
    let before = subscription_commands(&mut conn).await;
    for _ in 0..10 {
        let token = Token::random();
        let waiter = locks.waiter("k", &token);
        assert!(locks.try_acquire("k", &token, TTL).await?.is_some());
        drop(waiter);
        assert!(locks.release("k", &token).await?);
    }
    let lock = Lock::builder(locks.clone(), "scoped")
        .ttl(TTL)
        .build(&env.rt)?;
    for _ in 0..10 {
        lock.with(async |_lease| Ok::<_, std::io::Error>(()))
            .await?;
    }
    assert_eq!(channels(&mut conn).await, Vec::<String>::new());
    assert_eq!(subscription_commands(&mut conn).await, before);
    let numsub: Vec<redis::Value> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(locks.channel("k"))
        .arg(locks.channel("scoped"))
        .query_async(&mut conn)
        .await?;
    assert_eq!(
        numsub,
        [
            redis::Value::BulkString(locks.channel("k").into_bytes()),
            redis::Value::Int(0),
            redis::Value::BulkString(locks.channel("scoped").into_bytes()),
            redis::Value::Int(0),
        ]
    );
    assert_eq!(locks.subscribed(), Vec::<String>::new());
    Ok(())
}

/// Channels are subscribed while their waiters wait, and unsubscribed
/// after the last: by the next poll of any waiter, or the next release of
/// this process. Round after round of new keys, they never pile up.
#[awith::test(skip(reference))]
async fn subscriptions_end_after_the_last_waiter(env: Env) -> TestResult {
    let server = RedisServer::start();
    let mut conn = common::chaos::connection(&server.url()).await;
    let locks = RedisLocks::connect(server.url()).await?;
    for round in 0..5 {
        let keys: Vec<String> = (0..20).map(|i| format!("r{round}k{i}")).collect();
        let mut waiters: Vec<RedisWaiter> = keys
            .iter()
            .map(|key| locks.waiter(key, &Token::random()))
            .collect();
        let mut expected: Vec<String> = keys.iter().map(|key| locks.channel(key)).collect();
        expected.sort();
        // The previous round's last channel goes, this round's come.
        assert!(
            settle(&env, &mut conn, &mut waiters, &expected).await,
            "round {round}: subscribed to {:?}",
            channels(&mut conn).await
        );
        // Dropped: idle until the next poll or release.
        drop(waiters);
        let mut last = vec![locks.waiter("last", &Token::random())];
        let expected = [locks.channel("last")];
        assert!(
            settle(&env, &mut conn, &mut last, &expected).await,
            "round {round}: after the waiters left, subscribed to {:?}",
            channels(&mut conn).await
        );
        assert_eq!(locks.subscribed(), ["last"]);
        drop(last);
    }
    // No waiter polls any more: a release of this process unsubscribes.
    assert_eq!(locks.subscribed(), ["last"]);
    let token = Token::random();
    assert!(locks.try_acquire("k", &token, TTL).await?.is_some());
    assert!(locks.release("k", &token).await?);
    assert_eq!(locks.subscribed(), Vec::<String>::new());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !channels(&mut conn).await.is_empty() {
        assert!(Instant::now() < deadline, "the idle channel stayed");
        env.rt.sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}
