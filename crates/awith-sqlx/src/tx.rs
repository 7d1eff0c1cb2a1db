//! The transaction statements of SQLite and PostgreSQL:
//! [`Transact`] for [`SqlxConn`], and their options.

use std::fmt;

use awith_core::tx::{Closed, Level, Transact};
use std::borrow::Cow;

#[allow(unused_imports)]
use sqlx::{AssertSqlSafe, Executor, RawSql, raw_sql};

use crate::conn::{SqlxConn, closed, is_serialization_failure};

/// The name of savepoint `n`: `awith_sp_n`.
fn savepoint(n: usize) -> String {
    format!("awith_sp_{n}")
}

/// A statement: a `'static` one as it is, a built one (a savepoint's name
/// in it) asserted safe — its only variable part is a number.
fn statement(sql: Cow<'static, str>) -> RawSql {
    match sql {
        Cow::Borrowed(sql) => raw_sql(sql),
        Cow::Owned(sql) => raw_sql(AssertSqlSafe(sql)),
    }
}

/// `RELEASE SAVEPOINT`, or `commit` for the transaction.
fn commit_statement(level: Level, commit: &'static str) -> RawSql {
    statement(match level {
        Level::Transaction => Cow::Borrowed(commit),
        Level::Savepoint(n) => Cow::Owned(format!("RELEASE SAVEPOINT {}", savepoint(n))),
    })
}

/// `ROLLBACK`, or `ROLLBACK TO SAVEPOINT` and `RELEASE SAVEPOINT` (the
/// transaction goes on without it).
fn rollback_statement(level: Level) -> RawSql {
    statement(match level {
        Level::Transaction => Cow::Borrowed("ROLLBACK"),
        Level::Savepoint(n) => {
            let name = savepoint(n);
            Cow::Owned(format!(
                "ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}"
            ))
        }
    })
}

/// `SAVEPOINT`, or `begin` for the transaction; a savepoint refuses
/// options other than the default.
fn begin_statement<O: Default + PartialEq>(
    level: Level,
    options: &O,
    begin: impl FnOnce(&O) -> Cow<'static, str>,
) -> Result<RawSql, sqlx::Error> {
    match level {
        Level::Transaction => Ok(statement(begin(options))),
        Level::Savepoint(_) if *options != O::default() => {
            Err(sqlx::Error::InvalidSavePointStatement)
        }
        Level::Savepoint(n) => Ok(statement(Cow::Owned(format!("SAVEPOINT {}", savepoint(n))))),
    }
}

/// How a SQLite transaction takes its locks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SqliteBehavior {
    /// `BEGIN` (`DEFERRED`): locks are taken when first needed. A reader
    /// that then writes may fail with `SQLITE_BUSY` at once.
    #[default]
    Deferred,
    /// `BEGIN IMMEDIATE`: the write lock is taken at `BEGIN` (waiting up to
    /// the connection's busy timeout): for a transaction that writes.
    Immediate,
    /// `BEGIN EXCLUSIVE`.
    Exclusive,
}

/// How a SQLite transaction begins. Only the outermost scope takes them: a
/// savepoint given other than the default fails with
/// `sqlx::Error::InvalidSavePointStatement`.
///
/// ```
/// use awith_sqlx::SqliteTxOptions;
///
/// let writer = SqliteTxOptions::immediate();
/// assert_eq!(writer.begin_statement(), "BEGIN IMMEDIATE");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SqliteTxOptions {
    behavior: SqliteBehavior,
}

impl SqliteTxOptions {
    /// `BEGIN IMMEDIATE`: for a transaction that writes.
    pub fn immediate() -> Self {
        SqliteTxOptions {
            behavior: SqliteBehavior::Immediate,
        }
    }

    /// These options with `behavior`.
    pub fn behavior(mut self, behavior: SqliteBehavior) -> Self {
        self.behavior = behavior;
        self
    }

    /// The `BEGIN` statement.
    pub fn begin_statement(&self) -> &'static str {
        match self.behavior {
            SqliteBehavior::Deferred => "BEGIN",
            SqliteBehavior::Immediate => "BEGIN IMMEDIATE",
            SqliteBehavior::Exclusive => "BEGIN EXCLUSIVE",
        }
    }
}

/// A PostgreSQL isolation level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IsolationLevel {
    /// `READ COMMITTED` (the server's default).
    ReadCommitted,
    /// `REPEATABLE READ`.
    RepeatableRead,
    /// `SERIALIZABLE`: commits may fail with a serialization failure
    /// (`40001`), worth a [retry](awith_core::tx::Transaction::retry).
    Serializable,
}

impl fmt::Display for IsolationLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IsolationLevel::ReadCommitted => "READ COMMITTED",
            IsolationLevel::RepeatableRead => "REPEATABLE READ",
            IsolationLevel::Serializable => "SERIALIZABLE",
        })
    }
}

/// How a PostgreSQL transaction begins: its isolation level, read-only.
/// Only the outermost scope takes them: a savepoint given other than the
/// default fails with `sqlx::Error::InvalidSavePointStatement`.
///
/// ```
/// use awith_sqlx::{IsolationLevel, PgTxOptions};
///
/// let report = PgTxOptions::default()
///     .isolation(IsolationLevel::RepeatableRead)
///     .read_only();
/// assert_eq!(report.begin_statement(), "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PgTxOptions {
    isolation: Option<IsolationLevel>,
    read_only: bool,
}

impl PgTxOptions {
    /// The transaction's isolation level (default: the server's).
    pub fn isolation(mut self, level: IsolationLevel) -> Self {
        self.isolation = Some(level);
        self
    }

    /// `READ ONLY`: writes fail.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// The `BEGIN` statement.
    pub fn begin_statement(&self) -> String {
        let mut statement = String::from("BEGIN");
        if let Some(level) = self.isolation {
            statement.push_str(&format!(" ISOLATION LEVEL {level}"));
        }
        if self.read_only {
            statement.push_str(" READ ONLY");
        }
        statement
    }
}

/// Whether a SQLite error says there was nothing to roll back: no
/// transaction is active, or the savepoint is gone (released by a commit
/// whose scope was dropped while it answered). SQLite's transaction goes on
/// after either.
#[cfg(feature = "sqlite")]
fn nothing_to_roll_back(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|e| {
        let message = e.message();
        message.contains("no transaction is active") || message.contains("no such savepoint")
    })
}

#[cfg(feature = "sqlite")]
impl Transact for SqlxConn<sqlx::Sqlite> {
    type Error = sqlx::Error;
    type Options = SqliteTxOptions;
    type Target = sqlx::SqliteConnection;

    fn target(&mut self) -> &mut sqlx::SqliteConnection {
        self.connection()
    }

    async fn begin(&mut self, level: Level, options: SqliteTxOptions) -> Result<(), sqlx::Error> {
        let begin = begin_statement(level, &options, |o| Cow::Borrowed(o.begin_statement()))?;
        self.connection().execute(begin).await?;
        Ok(())
    }

    async fn commit(&mut self, level: Level) -> Result<(), sqlx::Error> {
        self.connection()
            .execute(commit_statement(level, "COMMIT"))
            .await?;
        Ok(())
    }

    async fn rollback(&mut self, level: Level) -> Result<(), sqlx::Error> {
        match self.connection().execute(rollback_statement(level)).await {
            Ok(_) => Ok(()),
            Err(error) if nothing_to_roll_back(&error) => Ok(()),
            Err(error) => Err(error),
        }
    }

    fn is_retryable(error: &sqlx::Error) -> bool {
        is_serialization_failure(error)
    }

    fn closed(why: &Closed) -> sqlx::Error {
        closed(why)
    }

    fn discard(self) {
        self.discard_now();
    }
}

/// Reads what earlier statements on `conn` still owe (a statement whose
/// future was dropped), until the connection is ready: up to 3 pings,
/// skipping the errors of those statements. A connection that cannot be
/// reached fails.
pub(crate) async fn drain<C: sqlx::Connection>(conn: &mut C) -> Result<(), sqlx::Error> {
    let mut tries = 0;
    loop {
        match conn.ping().await {
            Ok(()) => return Ok(()),
            Err(sqlx::Error::Database(_)) if tries < 2 => tries += 1,
            Err(error) => return Err(error),
        }
    }
}

#[cfg(feature = "postgres")]
impl Transact for SqlxConn<sqlx::Postgres> {
    type Error = sqlx::Error;
    type Options = PgTxOptions;
    type Target = sqlx::PgConnection;

    fn target(&mut self) -> &mut sqlx::PgConnection {
        self.connection()
    }

    async fn begin(&mut self, level: Level, options: PgTxOptions) -> Result<(), sqlx::Error> {
        let begin = begin_statement(level, &options, |o| {
            if *o == PgTxOptions::default() {
                Cow::Borrowed("BEGIN")
            } else {
                Cow::Owned(o.begin_statement())
            }
        })?;
        self.connection().execute(begin).await?;
        Ok(())
    }

    async fn commit(&mut self, level: Level) -> Result<(), sqlx::Error> {
        // `COMMIT` of a transaction an error has aborted (one the body
        // caught and went on from) succeeds — and rolls back. The `SELECT`
        // fails there instead (`25P02`), in the same round trip, so that a
        // transaction that did not commit is never reported committed.
        let commit = commit_statement(level, "SELECT 1; COMMIT");
        self.connection().execute(commit).await?;
        Ok(())
    }

    async fn rollback(&mut self, level: Level) -> Result<(), sqlx::Error> {
        // A statement whose future was dropped (the body was cancelled in
        // it) may still owe its answer, an error among them: drain first,
        // so that its error is not taken for the rollback's.
        drain(self.connection()).await?;
        // `ROLLBACK` outside a transaction is a warning, not an error.
        self.connection().execute(rollback_statement(level)).await?;
        Ok(())
    }

    fn is_retryable(error: &sqlx::Error) -> bool {
        is_serialization_failure(error)
    }

    fn closed(why: &Closed) -> sqlx::Error {
        closed(why)
    }

    fn discard(self) {
        self.discard_now();
    }
}
