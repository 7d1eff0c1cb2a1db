//! The audit log on every runtime its dev-dependency on awith enables —
//! tokio's two flavours and smol — and on the reference runtime with its
//! virtual clock. Each `#[awith::test]` function is one test per runtime,
//! `name::runtime`: `cargo test smol` runs the smol ones.

use std::fmt;
use std::future::{pending, poll_fn};
use std::task::Poll;
use std::time::{Duration, Instant};

use audit_log::{AuditLog, Entry, Record};
use awith::test::Env;
use awith::{Cancel, ExitKind, ResourceExt, Runtime, ScopeError};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The error of the bodies that fail.
#[derive(Debug, PartialEq, Eq)]
struct Denied;

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("denied")
    }
}

impl std::error::Error for Denied {}

fn began(action: &str) -> Entry {
    Entry::Began(action.into())
}

fn note(action: &str, text: &str) -> Entry {
    Entry::Note(action.into(), text.into())
}

fn ended(action: &str, exit: ExitKind) -> Entry {
    Entry::Ended(action.into(), exit)
}

/// The time between a log's only two records.
fn took(log: &AuditLog) -> Duration {
    match &log.records()[..] {
        [first, last] => last.at - first.at,
        records => panic!("expected two records, found {records:?}"),
    }
}

#[awith::test]
async fn a_completed_scope_is_logged(rt: Runtime) -> TestResult {
    let log = AuditLog::new(&rt);
    let rows = log
        .scope("export")
        .with(&rt, async |action| {
            action.note("3 rows");
            Ok::<_, Denied>(3)
        })
        .await?;
    assert_eq!(rows, 3);
    assert_eq!(
        log.entries(),
        [
            began("export"),
            note("export", "3 rows"),
            ended("export", ExitKind::Completed),
        ]
    );
    Ok(())
}

#[awith::test]
async fn nested_scopes_end_innermost_first(rt: Runtime) -> TestResult {
    let log = AuditLog::new(&rt);
    log.scope("deploy")
        .with(&rt, async |_| {
            log.scope("migrate")
                .with(&rt, async |_| Ok::<_, Denied>(()))
                .await
        })
        .await?;
    assert_eq!(
        log.entries(),
        [
            began("deploy"),
            began("migrate"),
            ended("migrate", ExitKind::Completed),
            ended("deploy", ExitKind::Completed),
        ]
    );
    Ok(())
}

#[awith::test]
async fn a_failed_body_is_logged_and_its_error_returned(rt: Runtime) -> TestResult {
    let log = AuditLog::new(&rt);
    let result = log
        .scope("refund")
        .with(&rt, async |action| {
            action.note("over the limit");
            Err::<(), _>(Denied)
        })
        .await;
    let Err(error) = result else {
        panic!("the body failed, but the scope returned {result:?}");
    };
    assert_eq!(error.body_error(), Some(&Denied));
    assert_eq!(
        log.entries(),
        [
            began("refund"),
            note("refund", "over the limit"),
            ended("refund", ExitKind::Failed),
        ]
    );
    Ok(())
}

/// A scope dropped in its body — as a `select!` whose other branch won, or a
/// caller that gave up, would drop it — is released by a cleanup task:
/// the log shows it once the runtime is drained.
#[awith::test]
async fn a_dropped_scope_is_logged_as_cancelled(rt: Runtime) -> TestResult {
    let log = AuditLog::new(&rt);
    let mut scope = Box::pin(log.scope("import").with(&rt, async |action| {
        action.note("waiting for the upload");
        pending::<()>().await;
        Ok::<_, Denied>(())
    }));
    // One poll runs it into its body, which waits for ever.
    let polled = poll_fn(|cx| Poll::Ready(scope.as_mut().poll(cx))).await;
    assert!(polled.is_pending());
    assert_eq!(
        log.entries(),
        [began("import"), note("import", "waiting for the upload")]
    );

    drop(scope);
    rt.drain(Duration::from_secs(5)).await?;
    assert_eq!(
        log.entries(),
        [
            began("import"),
            note("import", "waiting for the upload"),
            ended("import", ExitKind::Cancelled(Cancel::Dropped)),
        ]
    );
    Ok(())
}

/// awith's `body_timeout` cuts a stuck body short; the release is told why.
/// The test's own `timeout` is the backstop should it not: 5 s, virtual on
/// the reference runtime.
#[awith::test(timeout = "5s")]
async fn a_body_past_its_timeout_is_logged_as_cancelled(env: Env) -> TestResult {
    let rt = &env.rt;
    let log = AuditLog::new(rt);
    let result = log
        .scope("sync")
        .body_timeout(Duration::from_millis(50))
        .with(rt, async |_| {
            rt.sleep(Duration::from_secs(3600)).await; // a peer that never answers
            Ok::<_, Denied>(())
        })
        .await;
    assert!(
        matches!(
            result,
            Err(ScopeError::BodyTimeout { after, release: None }) if after == Duration::from_millis(50)
        ),
        "{result:?}"
    );
    assert_eq!(
        log.entries(),
        [
            began("sync"),
            ended("sync", ExitKind::Cancelled(Cancel::Timeout)),
        ]
    );
    if env.virtual_time {
        assert_eq!(took(&log), Duration::from_millis(50));
    }
    Ok(())
}

/// An hour-long scope, timed on the virtual clock: the hour passes at once
/// and the log's times are exact. Real runtimes would wait the hour, so this
/// test runs on the reference runtime only (and fails if it is not done
/// within two virtual hours).
#[awith::test(only(reference), timeout = "2h")]
async fn an_hour_long_scope_is_timed_exactly(env: Env) -> TestResult {
    assert!(env.virtual_time);
    let rt = &env.rt;
    let log = AuditLog::new(rt);
    rt.sleep(Duration::from_secs(60)).await;
    log.scope("nightly backup")
        .with(rt, async |_| {
            rt.sleep(Duration::from_secs(3600)).await;
            Ok::<_, Denied>(())
        })
        .await?;
    assert_eq!(
        log.records(),
        [
            Record {
                entry: began("nightly backup"),
                at: Duration::from_secs(60),
            },
            Record {
                entry: ended("nightly backup", ExitKind::Completed),
                at: Duration::from_secs(3660),
            },
        ]
    );
    Ok(())
}

/// On a real runtime the log's clock is the wall clock. The reference
/// runtime's is virtual — its 20 ms pass without the wall clock moving — so
/// this test opts out of it.
#[awith::test(skip(reference))]
async fn times_follow_the_wall_clock(rt: Runtime) -> TestResult {
    let log = AuditLog::new(&rt);
    let wall = Instant::now();
    log.scope("upload")
        .with(&rt, async |_| {
            rt.sleep(Duration::from_millis(20)).await;
            Ok::<_, Denied>(())
        })
        .await?;
    let wall = wall.elapsed();
    let took = took(&log);
    assert!(took >= Duration::from_millis(20), "took {took:?}");
    assert!(took <= wall, "took {took:?}, but only {wall:?} passed");
    Ok(())
}
