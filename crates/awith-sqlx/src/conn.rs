//! [`SqlxConn`]: a sqlx connection, owned or from sqlx's pool, that awith's
//! transaction scopes run on; [`Conn`], one with its transactions' books.

use std::fmt;
use std::io;

use awith_core::tx::{Closed, TxConn};
use sqlx::Database;
use sqlx::pool::PoolConnection;

/// A sqlx connection with its transactions' books (see
/// [`awith::tx::TxConn`](awith_core::tx::TxConn)): run transaction scopes on
/// it with [`transaction`](TxConn::transaction), and statements through
/// [`get`](TxConn::get), which lends the sqlx connection once what a
/// cancelled scope owes it is paid.
///
/// ```
/// # #[cfg(feature = "sqlite")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use sqlx::{Connection, SqliteConnection};
///
/// let rt = awith::runtime()?;
/// let mut conn = awith_sqlx::Conn::new(
///     awith_sqlx::SqlxConn::new(SqliteConnection::connect("sqlite::memory:").await?),
///     &rt,
/// );
/// sqlx::query("CREATE TABLE t (n INTEGER)").execute(conn.get().await?).await?;
/// conn.transaction()
///     .with(async |tx| {
///         sqlx::query("INSERT INTO t VALUES (1)").execute(tx.get().await?).await?;
///         Ok::<_, sqlx::Error>(())
///     })
///     .await?;
/// let n: i64 = sqlx::query_scalar("SELECT count(*) FROM t").fetch_one(conn.get().await?).await?;
/// assert_eq!(n, 1);
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "sqlite"))]
/// # fn main() {}
/// ```
pub type Conn<DB> = TxConn<SqlxConn<DB>>;

/// A sqlx connection that awith's transaction scopes run on: one of its
/// own, or one checked out of sqlx's pool. It implements
/// [`Transact`](awith_core::tx::Transact) for SQLite and PostgreSQL; wrap
/// it in a [`Conn`] to use it.
///
/// A connection whose rollback did not finish is closed: an owned one is
/// dropped (the database ends its session, and the transaction with it), a
/// pooled one is closed instead of going back to sqlx's pool.
pub struct SqlxConn<DB: Database> {
    inner: Inner<DB>,
}

enum Inner<DB: Database> {
    Owned(DB::Connection),
    Pooled(PoolConnection<DB>),
}

impl<DB: Database> SqlxConn<DB> {
    /// A connection of its own.
    pub fn new<C>(conn: C) -> Self
    where
        C: sqlx::Connection<Database = DB>,
        DB: Database<Connection = C>,
    {
        SqlxConn {
            inner: Inner::Owned(conn),
        }
    }

    /// A connection checked out of sqlx's pool; dropped, it goes back.
    pub fn pooled(conn: PoolConnection<DB>) -> Self {
        SqlxConn {
            inner: Inner::Pooled(conn),
        }
    }

    /// The sqlx connection.
    pub fn connection(&mut self) -> &mut DB::Connection {
        match &mut self.inner {
            Inner::Owned(conn) => conn,
            Inner::Pooled(conn) => conn,
        }
    }

    /// Closes it: an owned connection is dropped, a pooled one is closed
    /// rather than given back.
    pub(crate) fn discard_now(self) {
        match self.inner {
            Inner::Owned(conn) => drop(conn),
            Inner::Pooled(mut conn) => {
                conn.close_on_drop();
                drop(conn);
            }
        }
    }

    /// The sqlx connection, for a graceful close.
    pub(crate) fn into_owned(self) -> Result<DB::Connection, PoolConnection<DB>> {
        match self.inner {
            Inner::Owned(conn) => Ok(conn),
            Inner::Pooled(conn) => Err(conn),
        }
    }
}

impl<DB: Database> fmt::Debug for SqlxConn<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlxConn")
            .field("database", &DB::NAME)
            .field("pooled", &matches!(self.inner, Inner::Pooled(_)))
            .finish()
    }
}

/// The error of a use of a closed connection: `sqlx::Error::Io` of kind
/// `NotConnected`, whose inner error is the [`Closed`] reason.
pub(crate) fn closed(why: &Closed) -> sqlx::Error {
    sqlx::Error::Io(io::Error::new(io::ErrorKind::NotConnected, *why))
}

/// Whether `error` is worth retrying a whole transaction for: a
/// PostgreSQL serialization failure (`40001`) or deadlock (`40P01`), or
/// SQLite's busy or locked database (`SQLITE_BUSY`, `SQLITE_LOCKED` and
/// their extended codes). Give it to
/// [`Transaction::retry`](awith_core::tx::Transaction::retry) for a body
/// whose error is `sqlx::Error`; `begin` and `commit` failures are
/// classified by it already.
///
/// ```
/// assert!(!awith_sqlx::is_serialization_failure(&sqlx::Error::RowNotFound));
/// ```
pub fn is_serialization_failure(error: &sqlx::Error) -> bool {
    let Some(database) = error.as_database_error() else {
        return false;
    };
    let Some(code) = database.code() else {
        return false;
    };
    match code.as_ref() {
        "40001" | "40P01" => true,
        // SQLite's extended result codes: the primary code is the low byte.
        other => other
            .parse::<i32>()
            .is_ok_and(|code| matches!(code & 0xff, 5 | 6)),
    }
}
