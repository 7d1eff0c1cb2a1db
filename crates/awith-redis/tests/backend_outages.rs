//! The backend through restarts and outages: fencing tokens survive a
//! restart with the append-only file, the scripts are loaded again after a
//! restart or `SCRIPT FLUSH`, a renewal reaches the restarted server, and a
//! command that cannot reach the server is an error, bounded in time.

mod common;

use std::time::{Duration, Instant};

use awith::lock::{LockBackend, Token};
use awith::test::Env;
use awith_redis::{RedisLockError, RedisLocks};
use common::RedisServer;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const TTL: Duration = Duration::from_secs(30);

/// Runs `op` until it returns `Ok`, for up to 10 s: the connection
/// reconnects in the background after a restart, and a command may fail
/// while it does.
async fn until_ok<T, F: AsyncFnMut() -> Result<T, RedisLockError>>(mut op: F) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match op().await {
            Ok(value) => return value,
            Err(error) => assert!(Instant::now() < deadline, "still failing: {error}"),
        }
    }
}

#[awith::test(skip(reference))]
async fn fencing_and_leases_survive_a_restart_with_appendonly(_env: Env) -> TestResult {
    let mut server = RedisServer::start_persistent();
    let locks = RedisLocks::connect(server.url()).await?;
    for expected in 1..=3 {
        let token = Token::random();
        assert_eq!(locks.try_acquire("k", &token, TTL).await?, Some(expected));
        assert!(locks.release("k", &token).await?);
    }
    let holder = Token::random();
    assert_eq!(locks.try_acquire("k", &holder, TTL).await?, Some(4));

    server.restart();
    assert_eq!(
        server.command("SCRIPT EXISTS 0"),
        Some("*1\r\n:0\r\n".into()),
        "(a fresh server has an empty script cache)"
    );
    // The same RedisLocks: it reconnects, and its scripts load again.
    let extended = until_ok(async || locks.extend("k", &holder, TTL).await).await;
    assert!(
        extended,
        "the lease survived the restart, and renewal reaches it"
    );
    assert_eq!(locks.try_acquire("k", &Token::random(), TTL).await?, None);
    assert!(locks.release("k", &holder).await?);
    let next = Token::random();
    assert_eq!(
        locks.try_acquire("k", &next, TTL).await?,
        Some(5),
        "the fence counter went on from where it was"
    );
    Ok(())
}

#[awith::test(skip(reference))]
async fn scripts_are_loaded_again_after_script_flush(_env: Env) -> TestResult {
    let server = RedisServer::start();
    let locks = RedisLocks::connect(server.url()).await?;
    let token = Token::random();
    assert_eq!(locks.try_acquire("k", &token, TTL).await?, Some(1));
    assert!(locks.extend("k", &token, TTL).await?);
    assert!(locks.release("k", &token).await?);
    for _ in 0..2 {
        assert_eq!(server.command("SCRIPT FLUSH"), Some("+OK\r\n".into()));
        assert!(locks.try_acquire("k", &token, TTL).await?.is_some());
        assert_eq!(server.command("SCRIPT FLUSH"), Some("+OK\r\n".into()));
        assert!(locks.extend("k", &token, TTL).await?);
        assert_eq!(server.command("SCRIPT FLUSH"), Some("+OK\r\n".into()));
        assert!(locks.release("k", &token).await?);
    }
    Ok(())
}

#[awith::test(skip(reference))]
async fn a_release_that_cannot_reach_the_server_is_an_error(_env: Env) -> TestResult {
    let mut server = RedisServer::start();
    let locks = RedisLocks::builder(server.url())
        .connect_timeout(Duration::from_millis(300))
        .reconnect_retries(1)
        .connect()
        .await?;
    let token = Token::random();
    assert!(locks.try_acquire("k", &token, TTL).await?.is_some());
    server.stop();
    for op in ["release", "extend", "try_acquire"] {
        let started = Instant::now();
        let result = match op {
            "release" => locks.release("k", &token).await.map(|_| ()),
            "extend" => locks.extend("k", &token, TTL).await.map(|_| ()),
            _ => locks.try_acquire("k", &token, TTL).await.map(|_| ()),
        };
        let took = started.elapsed();
        let error = result.expect_err("the server is gone");
        assert!(took < Duration::from_secs(5), "{op} took {took:?}");
        match &error {
            RedisLockError::Command {
                op: failed, key, ..
            } => {
                assert_eq!((*failed, key.as_str()), (op, "k"));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            error.to_string().starts_with(&format!(
                "redis at {}/0: {op} of lock `k` failed: ",
                server.url()
            )),
            "{error}"
        );
    }
    Ok(())
}

#[awith::test(skip(reference))]
async fn a_frozen_server_is_an_error_not_a_hang(_env: Env) -> TestResult {
    let mut server = RedisServer::start();
    let locks = RedisLocks::builder(server.url())
        .connect_timeout(Duration::from_millis(300))
        .response_timeout(Duration::from_millis(300))
        .reconnect_retries(1)
        .connect()
        .await?;
    let token = Token::random();
    assert!(locks.try_acquire("k", &token, TTL).await?.is_some());
    server.pause();
    let started = Instant::now();
    let result = locks.release("k", &token).await;
    let took = started.elapsed();
    server.resume();
    let error = result.expect_err("a frozen server answers nothing");
    assert!(took < Duration::from_secs(3), "release took {took:?}");
    assert!(error.to_string().contains("timed out"), "{error}");
    // Thawed, the same RedisLocks works again. The timed-out release may
    // still have been read by the server (its effect is unknown: that is
    // what the error says), so either release deleted the lock.
    until_ok(async || locks.release("k", &token).await).await;
    assert_eq!(
        server.command(&format!("EXISTS {}", locks.lock_key("k"))),
        Some(":0\r\n".into())
    );
    assert!(
        locks
            .try_acquire("k", &Token::random(), TTL)
            .await?
            .is_some()
    );
    Ok(())
}
