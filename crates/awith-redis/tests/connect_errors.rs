//! What `connect` reports for input it cannot use: each a typed error at
//! the call, bounded in time, with a message a person can act on.

mod common;

use std::error::Error as _;
use std::time::{Duration, Instant};

use awith::test::Env;
use awith_redis::{RedisLockError, RedisLocks};
use common::RedisServer;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[awith::test(skip(reference))]
async fn an_invalid_url_is_a_typed_error(_env: Env) -> TestResult {
    for url in [
        "not a url",
        "http://127.0.0.1:1",
        "redis://user:secret@127.0.0.1:notaport",
    ] {
        let error = RedisLocks::connect(url).await.expect_err(url);
        assert!(
            matches!(error, RedisLockError::InvalidUrl { .. }),
            "{url}: {error:?}"
        );
        let message = error.to_string();
        assert!(message.starts_with("invalid redis URL `"), "{message}");
        assert!(
            !message.contains("secret"),
            "the password is not shown: {message}"
        );
        assert!(error.source().is_some());
    }
    Ok(())
}

#[awith::test(skip(reference))]
async fn a_closed_port_is_a_typed_error_at_connect(_env: Env) -> TestResult {
    let port = common::free_port();
    let started = Instant::now();
    let error = RedisLocks::builder(format!("redis://127.0.0.1:{port}"))
        .reconnect_retries(1)
        .connect()
        .await
        .expect_err("nothing listens there");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(error, RedisLockError::Connect { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!("redis at redis://127.0.0.1:{port}/0: connection refused")
    );
    assert_eq!(
        error.server(),
        Some(&*format!("redis://127.0.0.1:{port}/0"))
    );
    assert!(error.source().is_some());
    Ok(())
}

#[awith::test(skip(reference))]
async fn a_server_that_does_not_answer_is_a_typed_error_at_connect(_env: Env) -> TestResult {
    let mut server = RedisServer::start();
    server.pause();
    let started = Instant::now();
    let result = RedisLocks::builder(server.url())
        .connect_timeout(Duration::from_millis(300))
        .response_timeout(Duration::from_millis(300))
        .reconnect_retries(1)
        .connect()
        .await;
    let took = started.elapsed();
    server.resume();
    let error = result.expect_err("a frozen server");
    assert!(took < Duration::from_secs(5), "connect took {took:?}");
    assert!(matches!(error, RedisLockError::Connect { .. }), "{error:?}");
    assert!(error.to_string().contains("timed out"), "{error}");
    Ok(())
}

/// A tokio runtime without I/O cannot run a connection: a typed error, not
/// tokio's panic.
#[cfg(feature = "tokio")]
#[test]
fn a_tokio_runtime_without_io_is_a_typed_error() {
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let error = rt
        .block_on(RedisLocks::connect(server.url()))
        .expect_err("no I/O driver");
    match &error {
        RedisLockError::Runtime { reason } => {
            assert!(reason.contains("IO is disabled"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        error
            .to_string()
            .starts_with("awith-redis: cannot run a redis connection here")
    );
}

/// With `tokio` as the only runtime feature, `connect` outside tokio is a
/// typed error; with `smol` (alone or beside tokio), redis runs the
/// connection on smol's global executor, whoever calls.
#[test]
fn connect_outside_every_runtime() {
    let server = RedisServer::start();
    let result = common::block_on(RedisLocks::connect(server.url()));
    if cfg!(feature = "smol") {
        let locks = result.expect("smol's executor runs the connection");
        let token = awith::lock::Token::random();
        let fence = common::block_on(awith::lock::LockBackend::try_acquire(
            &locks,
            "k",
            &token,
            Duration::from_secs(5),
        ));
        assert_eq!(fence.expect("a command"), Some(1));
    } else {
        match result {
            Err(RedisLockError::Runtime { reason }) => {
                assert!(reason.contains("no tokio runtime"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
