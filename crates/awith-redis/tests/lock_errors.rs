//! Bad input and unreachable servers at the lock scope's level, on every
//! runtime (`connect`'s own errors are in `connect_errors.rs`): bad
//! settings are a `LockConfigError` at `build`; a stopped server is a
//! `LockError::Backend` at the acquire, bounded in time; a frozen one is
//! `Unanswered`, and the try it may still take is given back by token.

mod common;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use awith::lock::{Lock, LockBackend, LockConfigError, LockError, Token};
use awith::test::Env;
use awith::{Failure, ScopeError};
use awith_redis::{RedisLockError, RedisLocks};
use common::RedisServer;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[awith::test(skip(reference))]
async fn bad_settings_are_refused_at_build(env: Env) -> TestResult {
    let server = RedisServer::start();
    let locks = RedisLocks::connect(server.url()).await?;
    let build = |key: &str, ttl: Duration| {
        Lock::builder(locks.clone(), key)
            .ttl(ttl)
            .build(&env.rt)
            .map(|_| ())
    };
    let second = Duration::from_secs(1);
    assert_eq!(build("", second), Err(LockConfigError::EmptyKey));
    assert_eq!(build("k", Duration::ZERO), Err(LockConfigError::ZeroTtl));
    let year_and_a_day = Duration::from_secs(366 * 24 * 3600);
    assert_eq!(
        build("k", year_and_a_day),
        Err(LockConfigError::TtlTooLarge(year_and_a_day))
    );
    assert_eq!(
        build("", Duration::ZERO),
        Err(LockConfigError::EmptyKey),
        "the key is checked first"
    );
    assert_eq!(
        LockConfigError::ZeroTtl.to_string(),
        "a lock's `ttl` is zero: the lease would be lost as it is taken"
    );
    // A sub-millisecond TTL builds, and Redis gets it rounded up to 1 ms.
    assert_eq!(build("k", Duration::from_micros(1)), Ok(()));
    assert_eq!(build("k", second), Ok(()));
    Ok(())
}

#[awith::test(skip(reference))]
async fn a_stopped_server_is_a_backend_error_at_acquire(env: Env) -> TestResult {
    let mut server = RedisServer::start();
    let locks = RedisLocks::builder(server.url())
        .connect_timeout(Duration::from_millis(300))
        .reconnect_retries(1)
        .connect()
        .await?;
    let lock = Lock::builder(locks.clone(), "gone")
        .ttl(Duration::from_secs(5))
        .wait(Duration::from_secs(5))
        .build(&env.rt)?;
    server.stop();
    let started = Instant::now();
    let tried = lock.with(async |_| Ok::<_, Infallible>(())).await;
    let took = started.elapsed();
    eprintln!("stopped server on {}: {took:?}: {tried:?}", env.kind.label);
    assert!(took < Duration::from_secs(5), "{took:?}");
    let Err(ScopeError::Acquire(Failure::Error(error))) = tried else {
        panic!("{tried:?}")
    };
    match &error {
        LockError::Backend {
            key,
            during: "acquire",
            error: RedisLockError::Command {
                op: "try_acquire", ..
            },
        } => assert_eq!(key, "gone"),
        other => panic!("{other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "lock `gone`: acquire failed: redis at {}/0: try_acquire of lock `gone` failed: ",
            server.url()
        )),
        "{message}"
    );
    Ok(())
}

#[awith::test(skip(reference))]
async fn a_frozen_server_is_unanswered_and_the_try_is_given_back(env: Env) -> TestResult {
    const TTL: Duration = Duration::from_millis(200);
    let mut server = RedisServer::start();
    let locks = RedisLocks::builder(server.url())
        .response_timeout(Duration::from_secs(5))
        .connect()
        .await?;
    // Each try is bounded by the TTL, shorter than the response timeout.
    let lock = Lock::builder(locks.clone(), "frozen")
        .ttl(TTL)
        .wait(Duration::from_secs(2))
        .build(&env.rt)?;
    // The scripts loaded first: an abandoned `EVALSHA` that found none
    // would not be sent again, and would take nothing.
    let warm = Token::random();
    assert!(locks.try_acquire("warm", &warm, TTL).await?.is_some());
    assert!(locks.release("warm", &warm).await?);
    server.pause();
    let started = Instant::now();
    let tried = lock.with(async |_| Ok::<_, Infallible>(())).await;
    let took = started.elapsed();
    server.resume();
    match &tried {
        Err(ScopeError::Acquire(Failure::Error(LockError::Unanswered {
            key,
            during: "acquire",
            after,
        }))) => {
            assert_eq!((key.as_str(), *after), ("frozen", TTL));
        }
        other => panic!("{other:?}"),
    }
    assert!(took < TTL * 5, "{took:?}");
    // Thawed, the server runs the try (it takes the lock: the fence
    // counter moves) and then the cleanup's release by token.
    let drained = env.rt.drain(Duration::from_secs(10)).await?;
    eprintln!(
        "frozen server on {}: {took:?}: {tried:?}; then {} cleanup(s); fence counter {:?}",
        env.kind.label,
        drained.spawned,
        server.command(&format!("GET {}", locks.fence_key("frozen"))),
    );
    assert_eq!(drained.spawned, 1);
    assert_eq!(
        server.command(&format!("GET {}", locks.fence_key("frozen"))),
        Some("$1\r\n1\r\n".into()),
        "the abandoned try took the lock once the server thawed"
    );
    assert_eq!(
        server.command(&format!("EXISTS {}", locks.lock_key("frozen"))),
        Some(":0\r\n".into()),
        "and the cleanup gave it back"
    );
    let fence = lock
        .with(async |lease| Ok::<_, Infallible>(lease.fence()))
        .await?;
    assert_eq!(fence, 2);
    Ok(())
}
