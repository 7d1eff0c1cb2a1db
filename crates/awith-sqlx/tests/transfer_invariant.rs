//! The invariant, on every runtime and on both databases: 20 accounts, 8
//! concurrent workers × 300 transfers through awith's `Pool` and a
//! transaction scope each, with 10% injected errors, 2% panics and 10%
//! random cancellations (the whole future dropped at a random poll: while
//! checking out, beginning, in the body or committing). At the end the
//! total is exactly what it was, no balance is negative (a CHECK
//! constraint), every pooled connection is idle, no cleanup is left, and
//! PostgreSQL has no session `idle in transaction`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use awith::ScopeError;
use awith::pool::Pool;
use awith::rt::Incident;
use awith::test::Env;
use awith_core::tx::Transact;
use awith_sqlx::{Manager, SqlxConn, is_serialization_failure};
use common::{Rng, cancel_after, quiet_injected_panics, seed, spawn};
use futures::FutureExt;
use sqlx::{Connection, Database};

const ACCOUNTS: i64 = 20;
const OPENING: i64 = 1_000;
const WORKERS: u64 = 8;
const TRANSFERS: u64 = 300;
/// A run must end within this (it takes a few seconds).
const BOUND: Duration = Duration::from_secs(240);

/// The body's error: the database's, or one injected on purpose.
#[derive(Debug)]
enum BankError {
    Sql(sqlx::Error),
    Injected,
}

impl From<sqlx::Error> for BankError {
    fn from(error: sqlx::Error) -> Self {
        BankError::Sql(error)
    }
}

/// What the workers counted.
#[derive(Debug, Default)]
struct Counts {
    committed: AtomicU64,
    insufficient: AtomicU64,
    injected: AtomicU64,
    panicked: AtomicU64,
    cancelled: AtomicU64,
    /// Bodies run: each transfer's first attempt, plus its retries.
    attempts: AtomicU64,
    /// Transfers whose scope returned (not cancelled, not panicked).
    returned_attempts: AtomicU64,
    other: AtomicU64,
    /// Attempts run again after a serialization failure.
    retried: AtomicU64,
    /// Transfers still failing with a serialization failure after their
    /// retries: rolled back.
    gave_up: AtomicU64,
    /// Cancellations by where the transfer was: checking out or beginning,
    /// in the body, committing or being released.
    cancelled_before_body: AtomicU64,
    cancelled_in_body: AtomicU64,
    cancelled_after_body: AtomicU64,
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    None,
    Error,
    Panic,
    Cancel(u32),
}

async fn run<DB>(
    env: &Env,
    options: <DB::Connection as Connection>::Options,
    tx_options: <SqlxConn<DB> as Transact>::Options,
    database: &'static str,
    while_pooled: impl AsyncFnOnce() -> Result<(), Box<dyn std::error::Error>>,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB: Database,
    SqlxConn<DB>: Transact<Error = sqlx::Error, Target = DB::Connection>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments: sqlx::IntoArguments<DB>,
    i64: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
    Option<i64>: for<'r> sqlx::Decode<'r, DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    quiet_injected_panics();
    let pool = Arc::new(
        Pool::builder(Manager::<DB>::new(options, &env.rt))
            .max_size(8)
            .build(&env.rt)?,
    );
    pool.with(async |conn| {
        sqlx::raw_sql(
            "CREATE TABLE accounts (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL CHECK (balance >= 0))",
        )
        .execute(conn.get().await?)
        .await?;
        for id in 0..ACCOUNTS {
            sqlx::query("INSERT INTO accounts (id, balance) VALUES ($1, $2)")
                .bind(id)
                .bind(OPENING)
                .execute(conn.get().await?)
                .await?;
        }
        Ok::<_, sqlx::Error>(())
    })
    .await?;

    let seed = seed();
    let counts = Arc::new(Counts::default());
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let (pool, counts) = (Arc::clone(&pool), Arc::clone(&counts));
        let tx_options = tx_options.clone();
        workers.push(spawn(&env.rt, async move {
            let mut rng = Rng::new(seed ^ (worker + 1).wrapping_mul(0x9E37_79B9));
            // How many polls completed transfers took: a cancellation lands
            // anywhere in a transfer's life.
            let mut lives: Vec<u64> = vec![8];
            for _ in 0..TRANSFERS {
                let from = i64::try_from(rng.below(ACCOUNTS as u64)).unwrap();
                let to =
                    (from + 1 + i64::try_from(rng.below(ACCOUNTS as u64 - 1)).unwrap()) % ACCOUNTS;
                let amount = 1 + i64::try_from(rng.below(400)).unwrap();
                let fault = match rng.below(100) {
                    0..10 => Fault::Error,
                    10..12 => Fault::Panic,
                    12..22 => {
                        // Within the life of an earlier transfer, at random.
                        let life = lives[usize::try_from(rng.below(lives.len() as u64)).unwrap()];
                        Fault::Cancel(1 + u32::try_from(rng.below(life)).unwrap())
                    }
                    _ => Fault::None,
                };
                // 0: checking out or beginning; 1: in the body; 2: after it.
                let phase = AtomicU64::new(0);
                let tries = AtomicU64::new(0);
                let transfer = pool.with(async |conn| {
                    conn.transaction()
                        .options(tx_options.clone())
                        .retry(5, |error: &BankError| {
                            matches!(error, BankError::Sql(e) if is_serialization_failure(e))
                        })
                        .with(async |tx| {
                            counts.attempts.fetch_add(1, Ordering::Relaxed);
                            tries.fetch_add(1, Ordering::Relaxed);
                            phase.store(1, Ordering::Relaxed);
                            sqlx::query("UPDATE accounts SET balance = balance - $1 WHERE id = $2")
                                .bind(amount)
                                .bind(from)
                                .execute(tx.get().await?)
                                .await?;
                            match fault {
                                Fault::Error => return Err(BankError::Injected),
                                Fault::Panic => panic!("injected: a panic mid-transfer"),
                                _ => {}
                            }
                            sqlx::query("UPDATE accounts SET balance = balance + $1 WHERE id = $2")
                                .bind(amount)
                                .bind(to)
                                .execute(tx.get().await?)
                                .await?;
                            phase.store(2, Ordering::Relaxed);
                            Ok(())
                        })
                        .await
                });
                let polls = match fault {
                    Fault::Cancel(polls) => polls,
                    _ => u32::MAX,
                };
                let mut transfer = cancel_after(polls, transfer);
                let ended = std::panic::AssertUnwindSafe(&mut transfer)
                    .catch_unwind()
                    .await;
                counts.retried.fetch_add(
                    tries.load(Ordering::Relaxed).saturating_sub(1),
                    Ordering::Relaxed,
                );
                let counter = match ended {
                    Err(_) => &counts.panicked,
                    Ok(None) => {
                        [
                            &counts.cancelled_before_body,
                            &counts.cancelled_in_body,
                            &counts.cancelled_after_body,
                        ][usize::try_from(phase.load(Ordering::Relaxed)).unwrap()]
                        .fetch_add(1, Ordering::Relaxed);
                        &counts.cancelled
                    }
                    Ok(Some(result)) => {
                        if result.is_ok() {
                            lives.push(u64::from(transfer.polls_used()));
                        }
                        match result {
                            Ok(()) => &counts.committed,
                            Err(ScopeError::Body {
                                error:
                                    ScopeError::Body {
                                        error: BankError::Injected,
                                        release: None,
                                    },
                                ..
                            }) => &counts.injected,
                            Err(ScopeError::Body {
                                error:
                                    ScopeError::Body {
                                        error: BankError::Sql(error),
                                        release: None,
                                    },
                                ..
                            }) if error.as_database_error().is_some_and(|e| {
                                e.kind() == sqlx::error::ErrorKind::CheckViolation
                            }) =>
                            {
                                &counts.insufficient
                            }
                            Err(ScopeError::Body {
                                error:
                                    ScopeError::Body {
                                        error: BankError::Sql(error),
                                        release: None,
                                    },
                                ..
                            }) if is_serialization_failure(&error) => &counts.gave_up,
                            Err(other) => {
                                eprintln!("{database}: unexpected: {other:?}");
                                &counts.other
                            }
                        }
                    }
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let all = async {
        for worker in workers {
            worker.join().await;
        }
    };
    futures::select_biased! {
        () = all.fuse() => {}
        () = env.rt.sleep(BOUND).fuse() => panic!("{database}: the workers did not finish within {BOUND:?}"),
    }
    let stats = env.rt.drain(Duration::from_secs(60)).await?;

    let status = pool.status();
    assert_eq!(status.in_use, 0, "{database}: {status:?}");
    assert_eq!(
        status.idle, status.size,
        "{database}: every pooled connection is idle: {status:?}"
    );
    let (total, lowest): (i64, i64) = pool
        .with(async |conn| {
            let c = conn.get().await?;
            let total: Option<i64> =
                sqlx::query_scalar("SELECT CAST(SUM(balance) AS BIGINT) FROM accounts")
                    .fetch_one(&mut *c)
                    .await?;
            let lowest: Option<i64> = sqlx::query_scalar("SELECT MIN(balance) FROM accounts")
                .fetch_one(&mut *c)
                .await?;
            Ok::<_, sqlx::Error>((total.unwrap_or(0), lowest.unwrap_or(0)))
        })
        .await?;
    let committed = counts.committed.load(Ordering::Relaxed);
    let cancelled = counts.cancelled.load(Ordering::Relaxed);
    let panicked = counts.panicked.load(Ordering::Relaxed);
    let attempts = counts.attempts.load(Ordering::Relaxed);
    let _ = &counts.returned_attempts;
    println!(
        "invariant {database} on {}: {committed} committed, rolled back {} insufficient + {} injected + {panicked} panicked + {} out of retries, \
         {cancelled} cancelled ({} checking out or beginning, {} in the body, {} committing or releasing), \
         {} retried, {} bodies run for {} transfers; total {total} (opening {}), lowest balance {lowest}; \
         {} rollback cleanups, {} connections made; seed {seed}",
        env.rt.name(),
        counts.insufficient.load(Ordering::Relaxed),
        counts.injected.load(Ordering::Relaxed),
        counts.gave_up.load(Ordering::Relaxed),
        counts.cancelled_before_body.load(Ordering::Relaxed),
        counts.cancelled_in_body.load(Ordering::Relaxed),
        counts.cancelled_after_body.load(Ordering::Relaxed),
        counts.retried.load(Ordering::Relaxed),
        attempts,
        WORKERS * TRANSFERS,
        ACCOUNTS * OPENING,
        stats.spawned,
        status.created,
    );
    // A transfer cancelled while its checkout was being released (the
    // body had failed: the object is recycled at once) leaves the body's
    // error to be reported: nobody is left to return it to. Nothing else.
    let incidents = env.incidents.take();
    let unreturned = incidents
        .iter()
        .filter(|incident| matches!(incident, Incident::Unreturned { .. }))
        .count();
    println!(
        "{database}: {unreturned} body errors reported after their caller had gone; pool {status:?}"
    );
    assert_eq!(unreturned, incidents.len(), "{database}: {incidents:?}");
    assert_eq!(
        counts.other.load(Ordering::Relaxed),
        0,
        "{database}: unexpected outcomes (see above)"
    );
    assert_eq!(
        total,
        ACCOUNTS * OPENING,
        "{database}: the total is conserved"
    );
    assert!(lowest >= 0, "{database}: no balance is negative");
    assert!(
        committed > 0 && cancelled > 0 && panicked > 0,
        "{database}: every outcome happened"
    );
    while_pooled().await?;
    pool.close(Duration::from_secs(10)).await?;
    Ok(())
}

#[cfg(feature = "sqlite")]
#[awith::test(skip(reference))]
async fn sqlite_transfers_conserve_the_total(env: Env) -> Result<(), Box<dyn std::error::Error>> {
    let file = common::SqliteFile::new();
    let options = file
        .options()
        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal);
    let writers = awith_sqlx::SqliteTxOptions::immediate();
    run::<sqlx::Sqlite>(&env, options, writers, "sqlite", async || Ok(())).await
}

#[cfg(feature = "postgres")]
#[awith::test(skip(reference))]
async fn postgres_transfers_conserve_the_total(env: Env) -> Result<(), Box<dyn std::error::Error>> {
    let server = common::PgServer::start();
    // While the pool still holds its connections: none of their sessions is
    // inside a transaction.
    let no_session_in_transaction = async || {
        let mut check = sqlx::PgConnection::connect_with(&server.options()).await?;
        let stuck: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'",
        )
        .fetch_one(&mut check)
        .await?;
        let sessions: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'",
        )
        .fetch_one(&mut check)
        .await?;
        println!("postgres: {sessions} client sessions, {stuck} idle in transaction");
        assert_eq!(stuck, 0, "no session idle in transaction");
        check.close().await?;
        Ok(())
    };
    // SERIALIZABLE: concurrent transfers of the same accounts fail with
    // serialization failures (40001), and are retried.
    let options =
        awith_sqlx::PgTxOptions::default().isolation(awith_sqlx::IsolationLevel::Serializable);
    run::<sqlx::Postgres>(
        &env,
        server.options(),
        options,
        "postgres",
        no_session_in_transaction,
    )
    .await
}
