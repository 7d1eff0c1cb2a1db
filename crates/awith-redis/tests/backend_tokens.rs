//! The backend's commands against a real server, on every runtime the
//! crate's features enable: a lock is taken, extended and given back only
//! by its token, and its fencing tokens strictly increase.

mod common;

use std::time::Duration;

use awith::lock::{LockBackend, Token};
use awith::test::Env;
use awith_redis::{RedisLockError, RedisLocks};
use common::RedisServer;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const TTL: Duration = Duration::from_secs(30);

#[awith::test(skip(reference))]
async fn only_the_holder_releases_or_extends(_env: Env) -> TestResult {
    let server = RedisServer::start();
    let locks = RedisLocks::connect(server.url()).await?;
    let (holder, other) = (Token::random(), Token::random());

    let fence = locks.try_acquire("orders", &holder, TTL).await?;
    assert_eq!(fence, Some(1), "the first holder's fencing token");
    assert_eq!(locks.try_acquire("orders", &other, TTL).await?, None);
    assert_eq!(
        locks.try_acquire("orders", &holder, TTL).await?,
        None,
        "not reentrant: the holder's own second try fails too"
    );
    assert!(
        !locks.release("orders", &other).await?,
        "another token cannot release"
    );
    assert!(!locks.extend("orders", &other, TTL).await?, "nor extend");
    assert_eq!(
        server.command(&format!("GET {}", locks.lock_key("orders"))),
        Some(format!("$32\r\n{holder}\r\n")),
        "the lock still holds the holder's token"
    );
    assert!(locks.extend("orders", &holder, TTL).await?);
    assert!(locks.release("orders", &holder).await?);
    assert!(
        !locks.release("orders", &holder).await?,
        "a second release finds nothing"
    );
    assert!(
        !locks.extend("orders", &holder, TTL).await?,
        "nor can it extend"
    );
    assert_eq!(
        server.command(&format!("EXISTS {}", locks.lock_key("orders"))),
        Some(":0\r\n".into())
    );
    assert_eq!(locks.try_acquire("orders", &other, TTL).await?, Some(2));
    assert!(locks.release("orders", &other).await?);
    Ok(())
}

#[awith::test(skip(reference))]
async fn fencing_tokens_strictly_increase_across_holders(_env: Env) -> TestResult {
    let server = RedisServer::start();
    let a = RedisLocks::connect(server.url()).await?;
    let b = RedisLocks::connect(server.url()).await?;
    let mut last = 0;
    for round in 0..20 {
        let locks = if round % 2 == 0 { &a } else { &b };
        let token = Token::random();
        let fence = locks
            .try_acquire("ledger", &token, TTL)
            .await?
            .ok_or("the lock was free")?;
        assert!(fence > last, "fence {fence} after {last}");
        last = fence;
        assert!(locks.release("ledger", &token).await?);
    }
    // Keys count separately: another key starts at 1.
    let token = Token::random();
    assert_eq!(a.try_acquire("other", &token, TTL).await?, Some(1));
    assert_eq!(
        server.command(&format!("PTTL {}", a.fence_key("ledger"))),
        Some(":-1\r\n".into()),
        "the fence counter has no time to live"
    );
    Ok(())
}

#[awith::test(skip(reference))]
async fn a_lease_expires_after_its_ttl_and_extend_keeps_it(_env: Env) -> TestResult {
    let server = RedisServer::start();
    let locks = RedisLocks::connect(server.url()).await?;
    let (holder, next) = (Token::random(), Token::random());
    assert_eq!(
        locks
            .try_acquire("short", &holder, Duration::from_millis(300))
            .await?,
        Some(1)
    );
    assert!(
        locks
            .extend("short", &holder, Duration::from_secs(60))
            .await?
    );
    let pttl = server
        .command(&format!("PTTL {}", locks.lock_key("short")))
        .ok_or("PTTL")?;
    let ms: u64 = pttl.trim_start_matches(':').trim().parse()?;
    assert!(
        ms > 50_000,
        "extend set the time left to ~60 s, not {ms} ms"
    );
    // Shorten it, let it run out, and the next holder gets it.
    assert!(
        locks
            .extend("short", &holder, Duration::from_millis(1))
            .await?
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let fence = loop {
        if let Some(fence) = locks.try_acquire("short", &next, TTL).await? {
            break fence;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the lease never expired"
        );
    };
    assert_eq!(fence, 2);
    assert!(
        !locks.release("short", &holder).await?,
        "the old holder's lease is gone"
    );
    assert!(!locks.extend("short", &holder, TTL).await?);
    assert!(
        locks.release("short", &next).await?,
        "and the new one's stays"
    );
    Ok(())
}

#[awith::test(skip(reference))]
async fn a_ttl_redis_cannot_store_is_a_typed_error(_env: Env) -> TestResult {
    let server = RedisServer::start();
    let locks = RedisLocks::connect(server.url()).await?;
    let token = Token::random();
    let error = locks
        .try_acquire("k", &token, Duration::ZERO)
        .await
        .expect_err("a zero TTL");
    assert!(
        matches!(error, RedisLockError::InvalidTtl { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("lock `k`"), "{error}");
    let too_long = awith_redis::MAX_TTL + Duration::from_secs(1);
    assert!(matches!(
        locks.extend("k", &token, too_long).await,
        Err(RedisLockError::InvalidTtl { .. })
    ));
    // Nothing was stored, and a sub-millisecond TTL rounds up.
    assert_eq!(
        locks
            .try_acquire("k", &token, Duration::from_micros(10))
            .await?,
        Some(1)
    );
    Ok(())
}

#[awith::test(skip(reference))]
async fn prefixes_keep_locks_apart(_env: Env) -> TestResult {
    let server = RedisServer::start();
    let a = RedisLocks::builder(server.url())
        .prefix("a:")
        .connect()
        .await?;
    let b = RedisLocks::builder(server.url())
        .prefix("b:")
        .connect()
        .await?;
    assert_eq!(a.lock_key("x"), "a:lock:{x}");
    assert_eq!(b.fence_key("x"), "b:fence:{x}");
    assert_eq!(b.channel("x"), "b:released:{x}");
    let token = Token::random();
    assert_eq!(a.try_acquire("x", &token, TTL).await?, Some(1));
    assert_eq!(b.try_acquire("x", &token, TTL).await?, Some(1));
    Ok(())
}
