//! Scenario 10, the source's `transfer_funds`: a connection from a pool,
//! then a transaction on it (`pool → conn → conn.transaction()`), on a real
//! database — SQLite by default (a file in a temporary directory of the
//! scenario's own, removed at the end), or PostgreSQL with `--postgres URL`
//! (a schema of the run's own, dropped at the end, so that runs against one
//! server never meet).
//!
//! Three accounts, and a `CHECK (balance >= 0)` on their balances. Two
//! transfers commit; one asks for more than its payer has: the database's
//! CHECK refuses the debit and the transaction rolls back; one is cancelled
//! — its future dropped at a deadline while its body waits between the
//! debit and the credit — and its rollback runs at once, before the
//! connection is used again: the balance read next, on that same connection
//! (the pool has one), has the money back.
//!
//! The verdict ([`Bank::problems`]) compares the balances after with the
//! balances before plus the committed transfers: the total must be the
//! same, no balance negative, the refused and the cancelled transfers must
//! have left no trace.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use awith::pool::{Pool, PoolError};
use awith::tx::Transact;
use awith::{Failure, ScopeError};
use awith_sqlx::{Manager, PgTxOptions, SqliteTxOptions, SqlxConn};
use futures::FutureExt;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AssertSqlSafe, Connection, Database};

use crate::tour::World;

/// The accounts, and what each holds at the start; an account's id is its
/// place here, from 1.
pub const ACCOUNTS: [(&str, i64); 3] = [("alice", 100), ("bob", 50), ("carol", 0)];

/// How a planned transfer should end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// It commits.
    Commit,
    /// Its payer has too little: the CHECK refuses the debit, it rolls back.
    Refuse,
    /// Its future is dropped between the debit and the credit.
    Cancel,
}

/// A transfer of the scenario: from one account to another (indexes into
/// [`ACCOUNTS`]).
#[derive(Clone, Copy, Debug)]
pub struct Planned {
    /// The payer.
    pub from: usize,
    /// The payee.
    pub to: usize,
    /// How much.
    pub amount: i64,
    /// How it should end.
    pub expect: Expect,
}

/// The transfers, in order.
pub const TRANSFERS: [Planned; 4] = [
    Planned {
        from: 0,
        to: 1,
        amount: 30,
        expect: Expect::Commit,
    },
    Planned {
        from: 1,
        to: 2,
        amount: 50,
        expect: Expect::Commit,
    },
    Planned {
        from: 2,
        to: 0,
        amount: 80,
        expect: Expect::Refuse,
    },
    Planned {
        from: 0,
        to: 2,
        amount: 20,
        expect: Expect::Cancel,
    },
];

/// How long after its debit the cancelled transfer's future is dropped.
const DEADLINE: Duration = Duration::from_millis(50);
/// How long the cancelled transfer's body would wait before its credit.
const STALL: Duration = Duration::from_secs(10);
/// The bound on the whole scenario (a database that stops answering).
const BOUND: Duration = Duration::from_secs(60);
/// How long a connection may take to make.
const CONNECT: Duration = Duration::from_secs(10);

/// How a transfer ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed.
    Committed,
    /// Refused for want of funds, and rolled back; the error as printed.
    Refused(String),
    /// Its future was dropped after its debit, before its credit.
    Cancelled,
    /// Anything else; the error as printed.
    Failed(String),
}

/// What scenario 10 saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bank {
    /// The database, as a person names it.
    pub on: String,
    /// The balances before the transfers, in [`ACCOUNTS`]' order.
    pub before: Vec<i64>,
    /// How each of [`TRANSFERS`] ended.
    pub outcomes: Vec<Outcome>,
    /// The cancelled transfer's payer's balance, read right after its
    /// future was dropped, on the connection it had used.
    pub after_cancel: Option<i64>,
    /// The balances after the transfers.
    pub after: Vec<i64>,
}

impl Bank {
    /// The balances the committed transfers make of `before`, after the
    /// first `n` transfers.
    pub fn expected(&self, n: usize) -> Vec<i64> {
        let mut balances = self.before.clone();
        for (planned, outcome) in TRANSFERS.iter().zip(&self.outcomes).take(n) {
            if *outcome == Outcome::Committed
                && let (Some(_), Some(_)) = (balances.get(planned.from), balances.get(planned.to))
            {
                balances[planned.from] -= planned.amount;
                balances[planned.to] += planned.amount;
            }
        }
        balances
    }

    /// What went wrong, one sentence each: empty when the money is all
    /// there and every transfer ended as planned.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let (before, after) = (
            self.before.iter().sum::<i64>(),
            self.after.iter().sum::<i64>(),
        );
        if before != after {
            problems.push(format!("the total changed: {before} before, {after} after"));
        }
        for (balance, (name, _)) in self.after.iter().zip(ACCOUNTS) {
            if *balance < 0 {
                problems.push(format!("{name}'s balance is negative: {balance}"));
            }
        }
        let expected = self.expected(TRANSFERS.len());
        if self.after != expected {
            problems.push(format!(
                "the balances are {}, but the committed transfers make {}",
                balances(&self.after),
                balances(&expected)
            ));
        }
        if self.outcomes.len() != TRANSFERS.len() {
            problems.push(format!(
                "{} transfers ran, not {}",
                self.outcomes.len(),
                TRANSFERS.len()
            ));
        }
        for (n, (planned, outcome)) in TRANSFERS.iter().zip(&self.outcomes).enumerate() {
            let as_planned = matches!(
                (planned.expect, outcome),
                (Expect::Commit, Outcome::Committed)
                    | (Expect::Refuse, Outcome::Refused(_))
                    | (Expect::Cancel, Outcome::Cancelled)
            );
            if !as_planned {
                problems.push(format!(
                    "transfer #{} should have ended {:?}, but: {outcome:?}",
                    n + 1,
                    planned.expect
                ));
            }
            if planned.expect == Expect::Cancel && *outcome == Outcome::Cancelled {
                let payer = ACCOUNTS[planned.from].0;
                let owed = self.expected(n).get(planned.from).copied();
                match (self.after_cancel, owed) {
                    (Some(seen), Some(owed)) if seen == owed => {}
                    (Some(seen), Some(owed)) => problems.push(format!(
                        "the cancelled transfer's debit was kept: {payer} had {seen} \
                         right after it, not {owed}"
                    )),
                    _ => problems.push(format!(
                        "{payer}'s balance was not read after the cancelled transfer"
                    )),
                }
            }
        }
        problems
    }

    /// The money is all there, and every transfer ended as planned.
    pub fn ok(&self) -> bool {
        self.problems().is_empty()
    }

    /// The scenario's verdict, in one line.
    pub fn verdict(&self) -> String {
        let problems = self.problems();
        if !problems.is_empty() {
            return format!("WRONG on {}: {}", self.on, problems.join("; "));
        }
        let count =
            |wanted: fn(&Outcome) -> bool| self.outcomes.iter().filter(|o| wanted(o)).count();
        format!(
            "total {} before and after, no balance negative; {} committed, {} refused and \
             {} cancelled, both rolled back ({})",
            self.after.iter().sum::<i64>(),
            count(|o| *o == Outcome::Committed),
            count(|o| matches!(o, Outcome::Refused(_))),
            count(|o| *o == Outcome::Cancelled),
            self.on
        )
    }
}

/// `alice 100, bob 50, carol 0 (total 150)`.
pub fn balances(balances: &[i64]) -> String {
    let each: Vec<String> = ACCOUNTS
        .iter()
        .zip(balances)
        .map(|((name, _), balance)| format!("{name} {balance}"))
        .collect();
    format!(
        "{} (total {})",
        each.join(", "),
        balances.iter().sum::<i64>()
    )
}

/// The database scenario 10 runs on, as the tour's heading names it: a
/// PostgreSQL URL is shown without its password.
pub fn database(postgres: Option<&str>) -> String {
    match postgres {
        None => "SQLite, a file in a temporary directory".to_owned(),
        Some(url) => match url.parse::<PgConnectOptions>() {
            Ok(options) => pg_name(&options),
            Err(_) => "PostgreSQL, at a URL that does not parse".to_owned(),
        },
    }
}

fn pg_name(options: &PgConnectOptions) -> String {
    format!(
        "PostgreSQL at {}:{}, database {}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("(the user's)")
    )
}

/// Why a transfer's body failed.
#[derive(Debug)]
pub enum TransferError {
    /// The payer holds less than the amount: the database's CHECK refused
    /// the debit.
    Insufficient {
        /// The payer.
        from: &'static str,
        /// The amount.
        amount: i64,
        /// What the database said.
        database: String,
    },
    /// Any other error of the database.
    Sql(sqlx::Error),
}

impl From<sqlx::Error> for TransferError {
    fn from(error: sqlx::Error) -> Self {
        TransferError::Sql(error)
    }
}

impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferError::Insufficient {
                from,
                amount,
                database,
            } => write!(
                f,
                "insufficient funds: {from} cannot pay {amount} (the database refused the \
                 debit: {database})"
            ),
            TransferError::Sql(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for TransferError {}

/// What a transfer through the pool returns.
type Transferred =
    Result<(), ScopeError<ScopeError<TransferError, sqlx::Error>, PoolError<sqlx::Error>>>;

/// Runs scenario 10 on `world`'s runtime: on PostgreSQL at `postgres` if
/// given, else on SQLite in a temporary directory.
///
/// # Errors
///
/// When the database cannot be reached or set up (a clear message), or the
/// scenario did not end within a minute.
pub async fn transfer_funds(world: &World, postgres: Option<&str>) -> Result<Bank, String> {
    match postgres {
        None => on_sqlite(world).await,
        Some(url) => on_postgres(world, url).await,
    }
}

/// A name no other run uses: the process, a counter, the clock.
fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A directory of the scenario's own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, String> {
        let dir = std::env::temp_dir().join(unique("awith-tour-bank"));
        std::fs::create_dir_all(&dir)
            .map_err(|error| format!("cannot make {}: {error}", dir.display()))?;
        Ok(TempDir(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn on_sqlite(world: &World) -> Result<Bank, String> {
    let dir = TempDir::new()?;
    let file = dir.path().join("bank.db");
    let options = SqliteConnectOptions::new()
        .filename(&file)
        .create_if_missing(true)
        .busy_timeout(Duration::from_secs(5));
    world.timeline.event(
        "tour",
        format!(
            "SQLite database {} (a pool of one connection)",
            file.display()
        ),
    );
    let pool = pool::<sqlx::Sqlite>(world, options)?;
    let bank = bounded(
        world,
        run(world, &pool, SqliteTxOptions::immediate(), "SQLite"),
    )
    .await;
    let closed = pool.close(CONNECT).await;
    let path = dir.path().to_owned();
    drop(dir);
    world.timeline.event(
        "tour",
        if std::fs::exists(&path).unwrap_or(true) {
            format!("pool closed; {} could NOT be removed", path.display())
        } else {
            format!("pool closed; {} removed", path.display())
        },
    );
    let bank = bank?;
    closed.map_err(|error| format!("closing the pool: {error}"))?;
    Ok(bank)
}

async fn on_postgres(world: &World, url: &str) -> Result<Bank, String> {
    let options: PgConnectOptions = url
        .parse()
        .map_err(|error| format!("the --postgres URL does not parse: {error}"))?;
    let on = pg_name(&options);
    // Every statement finds `accounts` in the run's own schema.
    let schema = unique("awith_tour");
    let options = options.options([("search_path", schema.as_str())]);
    let pool = pool::<sqlx::Postgres>(world, options)?;
    let created = pool
        .with(async |conn| {
            sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(conn.get().await?)
                .await?;
            Ok::<_, sqlx::Error>(())
        })
        .await;
    if let Err(error) = created {
        let _ = pool.close(CONNECT).await;
        return Err(match error {
            ScopeError::Acquire(Failure::Error(PoolError::Create(error))) => {
                format!("cannot connect to {on}: {error}")
            }
            other => format!("cannot make a schema on {on}: {other}"),
        });
    }
    world.timeline.event(
        "tour",
        format!("{on}, schema {schema} (the run's own; a pool of one connection)"),
    );
    let bank = bounded(world, run(world, &pool, PgTxOptions::default(), &on)).await;
    let dropped = pool
        .with(async |conn| {
            sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(conn.get().await?)
                .await?;
            Ok::<_, sqlx::Error>(())
        })
        .await;
    let closed = pool.close(CONNECT).await;
    world.timeline.event(
        "tour",
        match &dropped {
            Ok(()) => format!("schema {schema} dropped; pool closed"),
            Err(error) => format!("schema {schema} NOT dropped: {error}"),
        },
    );
    let bank = bank?;
    dropped.map_err(|error| format!("dropping schema {schema}: {error}"))?;
    closed.map_err(|error| format!("closing the pool: {error}"))?;
    Ok(bank)
}

/// A pool of one connection: the read after the cancelled transfer runs on
/// the connection that transfer had used.
fn pool<DB>(
    world: &World,
    options: <DB::Connection as Connection>::Options,
) -> Result<Pool<Manager<DB>>, String>
where
    DB: Database,
    SqlxConn<DB>: Transact<Error = sqlx::Error, Target = DB::Connection>,
{
    Pool::builder(Manager::<DB>::new(options, &world.rt))
        .max_size(1)
        .create_timeout(CONNECT)
        .wait_timeout(BOUND)
        .build(&world.rt)
        .map_err(|error| error.to_string())
}

async fn bounded(
    world: &World,
    run: impl Future<Output = Result<Bank, String>>,
) -> Result<Bank, String> {
    world
        .rt
        .timeout(BOUND, run)
        .await
        .unwrap_or_else(|_| Err(format!("scenario 10 did not end within {BOUND:?}")))
}

/// The scenario, on `pool`'s database, whose connections make
/// transactions with `tx_options`.
async fn run<DB>(
    world: &World,
    pool: &Pool<Manager<DB>>,
    tx_options: <SqlxConn<DB> as Transact>::Options,
    on: &str,
) -> Result<Bank, String>
where
    DB: Database,
    SqlxConn<DB>: Transact<Error = sqlx::Error, Target = DB::Connection>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments: sqlx::IntoArguments<DB>,
    i64: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    pool.with(async |conn| {
        sqlx::raw_sql(
            "CREATE TABLE accounts (id BIGINT PRIMARY KEY, \
             balance BIGINT NOT NULL CHECK (balance >= 0))",
        )
        .execute(conn.get().await?)
        .await?;
        for (id, (_, balance)) in (1_i64..).zip(ACCOUNTS) {
            sqlx::query("INSERT INTO accounts (id, balance) VALUES ($1, $2)")
                .bind(id)
                .bind(balance)
                .execute(conn.get().await?)
                .await?;
        }
        Ok::<_, sqlx::Error>(())
    })
    .await
    .map_err(|error| format!("making the accounts: {error}"))?;

    let mut bank = Bank {
        on: on.to_owned(),
        before: read_balances(pool).await?,
        ..Bank::default()
    };
    world.timeline.event(
        "tour",
        format!(
            "balances before: {} — accounts with CHECK (balance >= 0)",
            balances(&bank.before)
        ),
    );

    for (n, planned) in (1..).zip(TRANSFERS) {
        let (from, to) = (ACCOUNTS[planned.from].0, ACCOUNTS[planned.to].0);
        let title = format!("transfer #{n}: {from} → {to} {}", planned.amount);
        let outcome = if planned.expect == Expect::Cancel {
            // What the payer holds if nothing of this transfer stays.
            let owed = bank
                .expected(bank.outcomes.len())
                .get(planned.from)
                .copied()
                .unwrap_or_default();
            let (outcome, seen) =
                cancelled(world, pool, tx_options.clone(), &title, planned, owed).await?;
            bank.after_cancel = seen;
            outcome
        } else {
            let done = transfer(world, pool, tx_options.clone(), &title, planned, None).await;
            let outcome = outcome(done);
            world.timeline.event(
                "tx",
                match &outcome {
                    Outcome::Committed => format!("{title}: committed"),
                    Outcome::Refused(error) => format!("{title}: rolled back — {error}"),
                    other => format!("{title}: {other:?}"),
                },
            );
            outcome
        };
        bank.outcomes.push(outcome);
    }

    bank.after = read_balances(pool).await?;
    world
        .timeline
        .event("tour", format!("balances after: {}", balances(&bank.after)));
    Ok(bank)
}

/// The transfer meant to be cancelled: its future is dropped [`DEADLINE`]
/// after its debit; then the payer's balance is read through the pool —
/// on the same connection, once its rollback has run — and should be
/// `owed`, what it was before.
async fn cancelled<DB>(
    world: &World,
    pool: &Pool<Manager<DB>>,
    tx_options: <SqlxConn<DB> as Transact>::Options,
    title: &str,
    planned: Planned,
    owed: i64,
) -> Result<(Outcome, Option<i64>), String>
where
    DB: Database,
    SqlxConn<DB>: Transact<Error = sqlx::Error, Target = DB::Connection>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments: sqlx::IntoArguments<DB>,
    i64: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let (debited_tx, debited) = futures::channel::oneshot::channel();
    let deadline = async {
        match debited.await {
            Ok(()) => world.rt.sleep(DEADLINE).await,
            // No debit, no deadline: the transfer ends by itself.
            Err(_) => futures::future::pending().await,
        }
    };
    let finished = futures::select_biased! {
        done = transfer(world, pool, tx_options, title, planned, Some(debited_tx)).fuse() => Some(done),
        () = deadline.fuse() => None,
    };
    if let Some(done) = finished {
        let outcome = match outcome(done) {
            Outcome::Committed => Outcome::Failed("committed before its deadline".into()),
            other => other,
        };
        world.timeline.event("tx", format!("{title}: {outcome:?}"));
        return Ok((outcome, None));
    }
    let payer = ACCOUNTS[planned.from].0;
    world.timeline.event(
        "tour",
        format!(
            "{title}: deadline, {DEADLINE:?} after the debit: its future was dropped \
             before the credit"
        ),
    );
    let id = account_id(planned.from);
    let seen: i64 = pool
        .with(async |conn| {
            sqlx::query_scalar("SELECT balance FROM accounts WHERE id = $1")
                .bind(id)
                .fetch_one(conn.get().await?)
                .await
        })
        .await
        .map_err(|error| format!("reading {payer}'s balance: {error}"))?;
    world.timeline.event(
        "tour",
        if seen == owed {
            format!(
                "{payer} has {seen}, read next on the same connection: the debit was rolled \
                 back first — no money lost"
            )
        } else {
            format!(
                "{payer} has {seen}, read next on the same connection, not {owed}: the debit \
                 was KEPT"
            )
        },
    );
    Ok((Outcome::Cancelled, Some(seen)))
}

fn account_id(index: usize) -> i64 {
    i64::try_from(index).map_or(0, |i| i + 1)
}

/// One transfer: a connection from the pool, a transaction on it, the
/// debit, then the credit. With `debited`, the body tells it after the
/// debit and waits a long time before the credit.
async fn transfer<DB>(
    world: &World,
    pool: &Pool<Manager<DB>>,
    tx_options: <SqlxConn<DB> as Transact>::Options,
    title: &str,
    planned: Planned,
    debited: Option<futures::channel::oneshot::Sender<()>>,
) -> Transferred
where
    DB: Database,
    SqlxConn<DB>: Transact<Error = sqlx::Error, Target = DB::Connection>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments: sqlx::IntoArguments<DB>,
    i64: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
{
    let (from, to) = (ACCOUNTS[planned.from].0, ACCOUNTS[planned.to].0);
    let (from_id, to_id) = (account_id(planned.from), account_id(planned.to));
    let amount = planned.amount;
    let mut debited = debited;
    pool.with(async |conn| {
        conn.transaction()
            .options(tx_options)
            .with(async |tx| {
                let debit = sqlx::query("UPDATE accounts SET balance = balance - $1 WHERE id = $2")
                    .bind(amount)
                    .bind(from_id)
                    .execute(tx.get().await?)
                    .await;
                match debit {
                    Ok(_) => {}
                    Err(error)
                        if error
                            .as_database_error()
                            .is_some_and(|e| e.is_check_violation()) =>
                    {
                        world
                            .timeline
                            .event("body", format!("{title}: {from} -{amount} fails"));
                        return Err(TransferError::Insufficient {
                            from,
                            amount,
                            database: error
                                .as_database_error()
                                .map_or_else(|| error.to_string(), |e| e.message().to_owned()),
                        });
                    }
                    Err(error) => return Err(error.into()),
                }
                if let Some(debited) = debited.take() {
                    world.timeline.event(
                        "body",
                        format!("{title}: {from} -{amount}; waits {STALL:?} before the credit"),
                    );
                    let _ = debited.send(());
                    world.rt.sleep(STALL).await;
                } else {
                    world
                        .timeline
                        .event("body", format!("{title}: {from} -{amount}"));
                }
                sqlx::query("UPDATE accounts SET balance = balance + $1 WHERE id = $2")
                    .bind(amount)
                    .bind(to_id)
                    .execute(tx.get().await?)
                    .await?;
                world
                    .timeline
                    .event("body", format!("{title}: {to} +{amount}"));
                Ok(())
            })
            .await
    })
    .await
}

/// What a returned transfer's result says.
fn outcome(done: Transferred) -> Outcome {
    match done {
        Ok(()) => Outcome::Committed,
        Err(ScopeError::Body {
            error:
                error @ ScopeError::Body {
                    error: TransferError::Insufficient { .. },
                    release: None,
                },
            release: None,
        }) => Outcome::Refused(error.to_string()),
        Err(other) => Outcome::Failed(other.to_string()),
    }
}

/// The balances, in [`ACCOUNTS`]' order.
async fn read_balances<DB>(pool: &Pool<Manager<DB>>) -> Result<Vec<i64>, String>
where
    DB: Database,
    SqlxConn<DB>: Transact<Error = sqlx::Error, Target = DB::Connection>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments: sqlx::IntoArguments<DB>,
    i64: sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    pool.with(async |conn| {
        sqlx::query_scalar("SELECT balance FROM accounts ORDER BY id")
            .fetch_all(conn.get().await?)
            .await
    })
    .await
    .map_err(|error| format!("reading the balances: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a run where everything went as planned records.
    fn fine() -> Bank {
        Bank {
            on: "SQLite".into(),
            before: vec![100, 50, 0],
            outcomes: vec![
                Outcome::Committed,
                Outcome::Committed,
                Outcome::Refused("insufficient funds".into()),
                Outcome::Cancelled,
            ],
            after_cancel: Some(70),
            after: vec![70, 30, 50],
        }
    }

    #[test]
    fn the_verdict_holds_for_a_run_as_planned() {
        let bank = fine();
        assert_eq!(bank.expected(2), [70, 30, 50]);
        assert_eq!(bank.problems(), Vec::<String>::new());
        assert!(bank.verdict().starts_with("total 150 before and after"));
        assert!(
            bank.verdict()
                .contains("2 committed, 1 refused and 1 cancelled")
        );
    }

    #[test]
    fn the_verdict_catches_lost_money_and_kept_debits() {
        // The cancelled transfer's debit kept: 20 gone.
        let kept = Bank {
            after_cancel: Some(50),
            after: vec![50, 30, 50],
            ..fine()
        };
        let problems = kept.problems().join("\n");
        assert!(
            problems.contains("the total changed: 150 before, 130 after"),
            "{problems}"
        );
        assert!(
            problems.contains("the cancelled transfer's debit was kept"),
            "{problems}"
        );
        assert!(kept.verdict().starts_with("WRONG"), "{}", kept.verdict());

        // Kept until the read, then undone: still caught.
        let late = Bank {
            after_cancel: Some(50),
            ..fine()
        };
        assert_eq!(late.problems().len(), 1, "{:?}", late.problems());

        // The refused transfer went through: carol negative, total the same.
        let overdrawn = Bank {
            outcomes: vec![
                Outcome::Committed,
                Outcome::Committed,
                Outcome::Committed,
                Outcome::Cancelled,
            ],
            after_cancel: Some(150),
            after: vec![150, 30, -30],
            ..fine()
        };
        let problems = overdrawn.problems().join("\n");
        assert!(
            problems.contains("carol's balance is negative: -30"),
            "{problems}"
        );
        assert!(
            problems.contains("transfer #3 should have ended Refuse"),
            "{problems}"
        );

        // A committed transfer lost.
        let lost = Bank {
            after: vec![100, 50, 0],
            ..fine()
        };
        assert!(
            lost.problems()
                .join("\n")
                .contains("but the committed transfers make alice 70, bob 30, carol 50"),
            "{:?}",
            lost.problems()
        );

        // The transfer to cancel ran to its end.
        let uncancelled = Bank {
            outcomes: vec![
                Outcome::Committed,
                Outcome::Committed,
                Outcome::Refused("insufficient funds".into()),
                Outcome::Failed("committed before its deadline".into()),
            ],
            after_cancel: None,
            ..fine()
        };
        assert!(!uncancelled.ok());
    }
}
