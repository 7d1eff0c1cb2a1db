//! The API as users meet it (issue 10): a resource returned from a helper
//! that names only what it makes and its error; resources with different
//! errors composed without glue (a pool checkout, then a transaction on the
//! connection); errors whose `source` chain and flattened failures tell the
//! story; a retrying acquire declared cancel-safe that stops at its timeout.

use std::error::Error;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use awith::pool::{Manager, ObjectMetrics, Pool, PoolError};
use awith::stack::ExitStack;
use awith::{
    Cancel, Cause, Exit, ExitKind, Failure, PartError, Resource, ResourceExt, ScopeError, Stage,
    Verdict, resource, resource_inspecting,
};

use futures::FutureExt;

use super::drain;
use super::structured::PanicOnDrop;
use crate::probe::yield_now;
use awith::test::Env;

/// A database error with a cause, as a driver's would be.
#[derive(Debug)]
pub enum DbError {
    Begin(std::io::Error),
    Query(std::io::Error),
    Commit(std::io::Error),
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Begin(_) => f.write_str("BEGIN failed"),
            DbError::Query(_) => f.write_str("the query failed"),
            DbError::Commit(_) => f.write_str("COMMIT failed"),
        }
    }
}

impl Error for DbError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            DbError::Begin(cause) | DbError::Query(cause) | DbError::Commit(cause) => Some(cause),
        }
    }
}

/// A connection: what it was told, shared so that a transaction on it
/// (whose futures are `'static`) can talk to it.
#[derive(Clone, Debug, Default)]
pub struct Conn {
    said: Arc<Mutex<Vec<String>>>,
    /// `BEGIN` fails on this connection.
    refuses: bool,
    /// `COMMIT` fails on this connection.
    commit_fails: bool,
}

impl Conn {
    fn say(&self, sql: &str) {
        self.said
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(sql.to_owned());
    }

    fn said(&self) -> Vec<String> {
        self.said
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Makes connections that share one record of what was said.
struct Db {
    conn: Conn,
}

impl Manager for Db {
    type Object = Conn;
    type Error = DbError;

    async fn create(&self) -> Result<Conn, DbError> {
        Ok(self.conn.clone())
    }

    async fn recycle(&self, _conn: &mut Conn, _: &ObjectMetrics) -> Result<(), DbError> {
        Ok(())
    }
}

/// A transaction on `conn`: `BEGIN`, then `COMMIT` after a completed body
/// and `ROLLBACK` otherwise. Its error is the driver's, not the pool's.
fn transaction<E>(conn: &Conn) -> impl Resource<E, Value = Conn, Error = DbError> + use<E> {
    let conn = conn.clone();
    resource(
        move || async move {
            yield_now().await;
            if conn.refuses {
                return Err(DbError::Begin(std::io::Error::other("connection reset")));
            }
            conn.say("BEGIN");
            Ok(conn)
        },
        |conn, exit| async move {
            yield_now().await;
            if exit != ExitKind::Completed {
                conn.say("ROLLBACK");
                return Ok(());
            }
            if conn.commit_fails {
                return Err(DbError::Commit(std::io::Error::other("disk full")));
            }
            conn.say("COMMIT");
            Ok(())
        },
    )
}

/// A helper returns a resource naming only what it makes and its error, and
/// the scope's result is `Result<T, ScopeError<..>>`: `?` takes it into a
/// `Box<dyn Error>` (this did not compile while a resource's `Verdict`
/// decided the scope's output type).
pub async fn helper_returns_resource(env: Env) {
    async fn count_rows(env: &Env, conn: &Conn) -> Result<u64, Box<dyn Error + Send + Sync>> {
        let rows = transaction(conn)
            .with(&env.rt, async |conn| {
                conn.say("SELECT count(*)");
                Ok::<_, DbError>(3)
            })
            .await?;
        Ok(rows)
    }
    let conn = Conn::default();
    assert_eq!(count_rows(&env, &conn).await.unwrap(), 3);
    assert_eq!(conn.said(), ["BEGIN", "SELECT count(*)", "COMMIT"]);

    // A failure comes through `?` with its story and its cause.
    let refusing = Conn {
        refuses: true,
        ..Conn::default()
    };
    let error = count_rows(&env, &refusing).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "acquiring the resource failed: BEGIN failed"
    );
    let cause = error.source().expect("the driver's cause");
    assert_eq!(cause.to_string(), "connection reset");
    assert!(cause.downcast_ref::<std::io::Error>().is_some());
    assert!(env.incidents.all().is_empty());
}

/// A pool checkout (`PoolError<DbError>`) and a transaction on its
/// connection (`DbError`) compose in one line; each failure says which part
/// it came from, and the connection is rolled back and given back.
pub async fn pool_and_transaction_compose(env: Env) {
    let conn = Conn::default();
    let pool = Pool::builder(Db { conn: conn.clone() })
        .max_size(1)
        .build(&env.rt)
        .expect("a valid pool");

    let moved = pool
        .checkout()
        .and_then(|conn| transaction(conn))
        .with(&env.rt, async |(_, tx)| {
            tx.say("UPDATE accounts");
            Ok::<_, DbError>(100)
        })
        .await;
    assert_eq!(moved.unwrap(), 100);
    assert_eq!(conn.said(), ["BEGIN", "UPDATE accounts", "COMMIT"]);

    // The body fails: rolled back; the error is the body's, the scope's
    // error type names both parts.
    let failed: Result<u8, ScopeError<DbError, PartError<PoolError<DbError>, DbError>>> = pool
        .checkout()
        .and_then(|conn| transaction(conn))
        .with(&env.rt, async |(_, tx)| {
            tx.say("UPDATE broken");
            Err(DbError::Query(std::io::Error::other("syntax error")))
        })
        .await;
    let error = failed.unwrap_err();
    assert!(matches!(error.body_error(), Some(DbError::Query(_))));
    assert_eq!(error.to_string(), "the query failed");
    assert_eq!(
        error.source().map(ToString::to_string).as_deref(),
        Some("syntax error")
    );
    assert_eq!(conn.said()[3..], ["BEGIN", "UPDATE broken", "ROLLBACK"]);

    // The commit fails: the second part's failure, at the release.
    let committing = Conn {
        commit_fails: true,
        ..conn.clone()
    };
    let pool2 = Pool::builder(Db {
        conn: committing.clone(),
    })
    .max_size(1)
    .build(&env.rt)
    .expect("a valid pool");
    let result = pool2
        .checkout()
        .and_then(|conn| transaction(conn))
        .with(&env.rt, async |_| Ok::<_, DbError>(()))
        .await;
    let Err(ScopeError::Release(Failure::Error(PartError::Second(DbError::Commit(_))))) = result
    else {
        panic!("the commit's failure, named as the second part's: {result:?}")
    };

    // BEGIN fails: the connection goes back to the pool, told its sibling
    // failed; the scope's error is the second part's acquire.
    let refusing = Conn {
        refuses: true,
        ..Conn::default()
    };
    let pool3 = Pool::builder(Db {
        conn: refusing.clone(),
    })
    .max_size(1)
    .build(&env.rt)
    .expect("a valid pool");
    let result = pool3
        .checkout()
        .and_then(|conn| transaction(conn))
        .with(&env.rt, async |_| -> Result<(), DbError> {
            panic!("the body must not run")
        })
        .await;
    let error = result.unwrap_err();
    let Some(Failure::Error(PartError::Second(DbError::Begin(_)))) = error.acquire_failure() else {
        panic!("BEGIN's failure, named as the second part's: {error:?}")
    };
    let story: Vec<_> = error
        .failures()
        .iter()
        .map(|failure| (failure.stage, failure.to_string()))
        .collect();
    assert_eq!(story, [(Stage::Acquire, "BEGIN failed".to_owned())]);
    assert_eq!(pool3.status().in_use, 0, "the connection was given back");
    for pool in [pool, pool2, pool3] {
        pool.close(Duration::from_secs(5)).await.unwrap();
    }
    drain(&env).await;
    assert!(env.incidents.all().is_empty(), "{:?}", env.incidents.all());
}

/// `zip` of resources with different errors; when the body and both
/// releases fail, `failures()` tells each, oldest first, with its stage and
/// its part; `Display` tells the whole story once.
pub async fn failures_flatten_in_order(env: Env) {
    #[derive(Debug, PartialEq)]
    struct Parse(&'static str);
    impl fmt::Display for Parse {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "cannot parse {}", self.0)
        }
    }
    impl Error for Parse {}

    let file = resource(
        || async { Ok::<_, std::io::Error>("file") },
        |_, _| async { Err(std::io::Error::other("close failed")) },
    );
    let parser = resource(
        || async { Ok::<_, Parse>("parser") },
        |_, _| async { Err(Parse("trailer")) },
    );
    let result = file
        .zip(parser)
        .with(&env.rt, async |_| Err::<(), _>(Parse("header")))
        .await;
    let error = result.unwrap_err();
    let story: Vec<_> = error
        .failures()
        .into_iter()
        .map(|failure| {
            let part = match failure.cause {
                Cause::Body(_) => "body",
                Cause::Resource(PartError::First(_)) => "first",
                Cause::Resource(PartError::Second(_)) => "second",
                _ => "other",
            };
            (failure.stage, part, failure.to_string())
        })
        .collect();
    assert_eq!(
        story,
        [
            (Stage::Body, "body", "cannot parse header".to_owned()),
            (Stage::Release, "first", "close failed".to_owned()),
            (Stage::Release, "second", "cannot parse trailer".to_owned()),
        ]
    );
    assert_eq!(
        error.to_string(),
        "cannot parse header (and the release failed too: 2 failures: close failed; cannot parse trailer)"
    );
    // Into a box, the story is kept.
    let boxed: Box<dyn Error + Send + Sync> = Box::new(error);
    assert!(boxed.to_string().starts_with("cannot parse header"));
}

/// A retrying acquire declared cancel-safe stops at its acquire timeout:
/// nothing is left to drain, no retry runs after. Without the declaration
/// the same acquire is finished by a cleanup and what it yields released,
/// told the timeout cancelled it.
pub async fn cancel_safe_acquire_stops_at_timeout(env: Env) {
    let (nap, timeout) = if env.virtual_time {
        (Duration::from_secs(1), Duration::from_millis(3500))
    } else {
        (Duration::from_millis(10), Duration::from_millis(35))
    };
    let tries = Arc::new(AtomicUsize::new(0));
    let released = Arc::new(Mutex::new(Vec::new()));
    // A lock that is free after `free_after` tries.
    let lock = |free_after: usize| {
        let (rt, tries, released) = (env.rt.clone(), Arc::clone(&tries), Arc::clone(&released));
        resource(
            move || async move {
                loop {
                    if tries.fetch_add(1, Ordering::SeqCst) + 1 >= free_after {
                        return Ok::<_, std::io::Error>("lock");
                    }
                    rt.sleep(nap).await;
                }
            },
            move |_, exit| async move {
                released
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(exit);
                Ok(())
            },
        )
    };

    let declared = lock(usize::MAX).cancel_safe();
    assert_eq!(format!("{declared:?}"), "FromFn { cancel_safe: true, .. }");
    assert_eq!(
        format!("{:?}", lock(1)),
        "FromFn { cancel_safe: false, .. }"
    );
    let result = declared
        .acquire_timeout(timeout)
        .with(&env.rt, async |_| Ok::<_, std::io::Error>(()))
        .await;
    assert!(
        matches!(result, Err(ScopeError::Acquire(Failure::TimedOut(after))) if after == timeout),
        "{result:?}"
    );
    let stats = drain(&env).await;
    assert_eq!(
        stats.spawned, 0,
        "a cancel-safe acquire is dropped, not finished"
    );
    let after_timeout = tries.load(Ordering::SeqCst);
    env.rt.sleep(nap * 5).await;
    assert_eq!(
        tries.load(Ordering::SeqCst),
        after_timeout,
        "no retry ran after the timeout"
    );

    // Not declared: the acquire is finished by a cleanup task; the lock it
    // then takes is released, told the timeout cancelled the scope.
    tries.store(0, Ordering::SeqCst);
    let result = lock(8)
        .acquire_timeout(timeout)
        .with(&env.rt, async |_| Ok::<_, std::io::Error>(()))
        .await;
    assert!(result.unwrap_err().is_timeout());
    let stats = drain(&env).await;
    assert_eq!(stats.spawned, 1, "the acquire was finished by a cleanup");
    assert_eq!(tries.load(Ordering::SeqCst), 8);
    assert_eq!(
        *released.lock().unwrap_or_else(PoisonError::into_inner),
        [ExitKind::Cancelled(Cancel::Timeout)]
    );
    assert!(env.incidents.all().is_empty(), "{:?}", env.incidents.all());
}

/// Suppression is asked for where a stack is made: on a `()` stack, an
/// entered resource whose release says `Suppress` does not suppress (the
/// body's error is returned); on a `Verdict` stack it does.
pub async fn plain_stack_keeps_a_suppressed_error(env: Env) {
    type E = Failure<&'static str>;
    let suppressing = || {
        resource_inspecting(
            || async { Ok::<_, &'static str>(()) },
            |(), exit: &Exit<'_, Failure<E>>| {
                let verdict = if exit.is_failed() {
                    Verdict::Suppress
                } else {
                    Verdict::Propagate
                };
                async move { Ok(verdict) }
            },
        )
    };
    let plain = ExitStack::<E>::with(&env.rt, async |stack| {
        stack.enter(suppressing()).await?;
        Err::<u8, _>(Failure::Error("body"))
    })
    .await;
    assert_eq!(
        plain.unwrap_err().body_error(),
        Some(&Failure::Error("body"))
    );

    let suppressed = ExitStack::<E, Verdict>::with(&env.rt, async |stack| {
        stack.enter(suppressing()).await?;
        Err::<u8, _>(Failure::Error("body"))
    })
    .await;
    assert_eq!(suppressed.unwrap(), None);
    assert!(env.incidents.all().is_empty());
}

/// A cancel-safe acquire whose future panics when its timeout drops it: the
/// panic is the acquire's, and reaches the caller (nothing was acquired, so
/// nothing is released); nothing is left pending.
pub async fn cancel_safe_acquire_drop_panics_at_timeout(env: Env) {
    let rt = env.rt.clone();
    let hangs = resource(
        move || async move {
            let _guard = PanicOnDrop("probe: acquire dropped");
            rt.sleep(Duration::from_secs(3600)).await;
            Ok::<_, std::io::Error>(())
        },
        |(), _exit| async { Ok(()) },
    )
    .cancel_safe()
    .acquire_timeout(Duration::from_millis(20));
    let result =
        std::panic::AssertUnwindSafe(hangs.with(&env.rt, async |()| Ok::<_, std::io::Error>(())))
            .catch_unwind()
            .await;
    let panic = result.expect_err("the acquire's panic reaches the caller");
    assert_eq!(super::panic_message(&*panic), "probe: acquire dropped");
    assert_eq!(drain(&env).await.spawned, 0);
}

/// `ScopeError`'s accessors on the error each kind of scope ending gives:
/// which stage failed, what the release added, and whether a deadline ended
/// it — as a caller matching on them would read them.
pub async fn error_accessors(env: Env) {
    let rt = &env.rt;
    // (acquire fails, release fails, body fails) → the scope's error.
    let scope = |acquire_fails: bool, release_fails: bool| {
        resource(
            move || async move {
                if acquire_fails {
                    Err("acquire".to_string())
                } else {
                    Ok(())
                }
            },
            move |(), _exit| async move {
                if release_fails {
                    Err("release".to_string())
                } else {
                    Ok(())
                }
            },
        )
    };

    // The body fails; the release is fine.
    let error = scope(false, false)
        .with(rt, async |_| Err::<(), _>("body"))
        .await
        .unwrap_err();
    assert_eq!(error.body_error(), Some(&"body"));
    assert!(error.release_failure().is_none());
    assert!(error.acquire_failure().is_none());
    assert!(!error.is_timeout());

    // The body fails and so does the release: the release's failure is kept.
    let error = scope(false, true)
        .with(rt, async |_| Err::<(), _>("body"))
        .await
        .unwrap_err();
    assert_eq!(error.body_error(), Some(&"body"));
    let release = error.release_failure().expect("the release's failure");
    assert_eq!(release.error(), Some(&"release".to_string()));
    assert!(!release.is_timeout());
    assert!(!error.is_timeout());

    // Only the release fails.
    let error = scope(false, true)
        .with(rt, async |_| Ok::<_, &str>(()))
        .await
        .unwrap_err();
    assert!(error.body_error().is_none());
    assert_eq!(
        error.release_failure().and_then(Failure::error),
        Some(&"release".to_string())
    );
    assert!(error.acquire_failure().is_none());
    assert!(!error.is_timeout());

    // The acquire fails: no body ran, nothing was released.
    let error = scope(true, false)
        .with(rt, async |_| Ok::<_, &str>(()))
        .await
        .unwrap_err();
    assert!(error.body_error().is_none());
    assert!(error.release_failure().is_none());
    assert_eq!(
        error.acquire_failure().and_then(Failure::error),
        Some(&"acquire".to_string())
    );
    assert!(!error.is_timeout());

    // A body deadline: a timeout, with no release failure.
    let error = scope(false, false)
        .body_timeout(Duration::from_millis(20))
        .with(rt, async |_| {
            std::future::pending::<()>().await;
            Ok::<_, &str>(())
        })
        .await
        .unwrap_err();
    assert!(error.is_timeout());
    assert!(error.body_error().is_none());
    assert!(error.release_failure().is_none());

    // An acquire deadline: a timeout of the acquire.
    let error = resource(
        std::future::pending::<Result<(), String>>,
        |(), _exit| async { Ok(()) },
    )
    .cancel_safe()
    .acquire_timeout(Duration::from_millis(20))
    .with(rt, async |_| Ok::<_, &str>(()))
    .await
    .unwrap_err();
    assert!(error.is_timeout());
    assert!(error.acquire_failure().is_some_and(Failure::is_timeout));
    assert!(error.release_failure().is_none());
}

/// A composed resource's failure through the error types a caller reads:
/// `PartError` says which part failed and passes the driver's cause on as
/// its `source`; `into_dyn` keeps message, `Debug` and cause; each flattened
/// failure names its stage.
pub async fn error_chains_through_parts_and_dyn(env: Env) {
    let rt = &env.rt;
    let fails = |what: &'static str| {
        resource(
            move || async move {
                Err::<(), _>(DbError::Begin(std::io::Error::other(format!(
                    "{what} refused"
                ))))
            },
            |(), _exit| async { Ok(()) },
        )
    };
    let fine = || {
        resource(
            || async { Ok::<_, std::io::Error>(()) },
            |(), _exit| async { Ok(()) },
        )
    };

    // The first part fails.
    let error = fails("first")
        .zip(fine())
        .with(rt, async |_| Ok::<_, std::io::Error>(()))
        .await
        .unwrap_err();
    let part = error
        .acquire_failure()
        .and_then(Failure::error)
        .expect("the acquire's error");
    assert!(matches!(part.first(), Some(DbError::Begin(_))));
    assert!(part.second().is_none());
    assert_eq!(part.to_string(), "BEGIN failed");
    assert_eq!(
        part.source().map(ToString::to_string).as_deref(),
        Some("first refused")
    );

    // The second part fails.
    let error = fine()
        .zip(fails("second"))
        .with(rt, async |_| Ok::<_, std::io::Error>(()))
        .await
        .unwrap_err();
    let part = error
        .acquire_failure()
        .and_then(Failure::error)
        .expect("the acquire's error");
    assert!(part.first().is_none());
    assert!(matches!(part.second(), Some(DbError::Begin(_))));
    assert_eq!(
        part.source().map(ToString::to_string).as_deref(),
        Some("second refused")
    );
    let stages: Vec<String> = error
        .failures()
        .iter()
        .map(|failure| failure.stage.to_string())
        .collect();
    assert_eq!(stages, ["acquire"]);

    // A body failing with a boxed error, and a release failing too: into_dyn
    // keeps the story, the Debug and the body's cause.
    let error = resource(
        || async { Ok::<_, Box<dyn Error + Send + Sync>>(()) },
        |(), _exit| async { Err("close failed".into()) },
    )
    .with(rt, async |_| {
        Err::<(), Box<dyn Error + Send + Sync>>(Box::new(DbError::Query(std::io::Error::other(
            "syntax error",
        ))))
    })
    .await
    .unwrap_err();
    let stages: Vec<String> = error
        .failures()
        .iter()
        .map(|failure| failure.stage.to_string())
        .collect();
    assert_eq!(stages, ["body", "release"]);
    let boxed = error.into_dyn();
    assert_eq!(
        boxed.to_string(),
        "the query failed (and the release failed too: close failed)"
    );
    let debug = format!("{boxed:?}");
    assert!(
        debug.contains("Query") && debug.contains("close failed"),
        "{debug}"
    );
    assert_eq!(
        boxed.source().map(ToString::to_string).as_deref(),
        Some("syntax error")
    );
}
