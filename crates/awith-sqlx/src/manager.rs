//! [`Manager`]: sqlx connections for awith's [`Pool`](awith_core::pool::Pool);
//! [`checkout`]: a connection from sqlx's own pool, as a scope.

use std::fmt;
use std::marker::PhantomData;

use awith_core::pool::ObjectMetrics;
use awith_core::tx::Transact;
use awith_core::{ExitKind, FromFn, Resource, Runtime};
use sqlx::{ConnectOptions, Connection, Database};

use crate::conn::{Conn, SqlxConn};
use crate::tx::drain;

/// Makes, checks and closes sqlx connections for awith's
/// [`Pool`](awith_core::pool::Pool), each a [`Conn`] that transaction scopes
/// run on.
///
/// - **recycle** (before a connection is used again): waits for the
///   rollback of a scope that was cancelled on it, rolls back what a leaked
///   scope left open, then pings it;
/// - **reset** (after a checkout scope that panicked or was cancelled,
///   possibly mid-statement): the same; a connection that fails it is
///   destroyed, never handed to the next user;
/// - **destroy**: closes the connection gracefully (a closed one is
///   already gone).
///
/// ```
/// # #[cfg(feature = "sqlite")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use awith::pool::Pool;
/// use sqlx::sqlite::SqliteConnectOptions;
///
/// let rt = awith::runtime()?;
/// let options: SqliteConnectOptions = "sqlite::memory:".parse()?;
/// let pool = Pool::builder(awith_sqlx::Manager::new(options, &rt)).max_size(1).build(&rt)?;
/// let n = pool
///     .with(async |conn| {
///         conn.transaction()
///             .with(async |tx| {
///                 let n: i64 = sqlx::query_scalar("SELECT 41 + 1").fetch_one(tx.get().await?).await?;
///                 Ok::<_, sqlx::Error>(n)
///             })
///             .await
///     })
///     .await?;
/// assert_eq!(n, 42);
/// pool.close(Duration::from_secs(5)).await?;
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "sqlite"))]
/// # fn main() {}
/// ```
pub struct Manager<DB: Database> {
    options: <DB::Connection as Connection>::Options,
    rt: Runtime,
    database: PhantomData<fn() -> DB>,
}

impl<DB: Database> Manager<DB> {
    /// Connections made with `options` (`SqliteConnectOptions`,
    /// `PgConnectOptions`); the rollbacks of cancelled scopes on them run
    /// on `rt`.
    pub fn new<O>(options: O, rt: &Runtime) -> Self
    where
        O: ConnectOptions,
        O::Connection: Connection<Database = DB, Options = O>,
        DB: Database<Connection = O::Connection>,
    {
        Manager {
            options,
            rt: rt.clone(),
            database: PhantomData,
        }
    }

    /// The options connections are made with.
    pub fn options(&self) -> &<DB::Connection as Connection>::Options {
        &self.options
    }
}

impl<DB: Database> fmt::Debug for Manager<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("database", &DB::NAME)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<DB> awith_core::pool::Manager for Manager<DB>
where
    DB: Database,
    SqlxConn<DB>: Transact<Error = sqlx::Error, Target = DB::Connection>,
{
    type Object = Conn<DB>;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<Conn<DB>, sqlx::Error> {
        let conn = self.options.connect().await?;
        Ok(Conn::new(SqlxConn::new(conn), &self.rt))
    }

    async fn recycle(&self, conn: &mut Conn<DB>, _: &ObjectMetrics) -> Result<(), sqlx::Error> {
        conn.reset().await?;
        drain(conn.get().await?).await
    }

    async fn reset(&self, conn: &mut Conn<DB>, _: ExitKind) -> bool {
        // The scope may have been dropped mid-statement: `drain` reads what
        // that statement still owes.
        if conn.reset().await.is_err() {
            return false;
        }
        match conn.get().await {
            Ok(sqlx) => drain(sqlx).await.is_ok(),
            Err(_) => false,
        }
    }

    async fn destroy(&self, conn: Conn<DB>) {
        if let Ok(conn) = conn.into_inner().await
            && let Ok(owned) = conn.into_owned()
        {
            let _ = owned.close().await;
        }
    }
}

/// A connection from sqlx's own pool, as a scope: the body gets a [`Conn`]
/// to run transaction scopes on; at the end the connection is reset (the
/// rollback of a scope cancelled on it waited for, what a leaked one left
/// open rolled back) and goes back to sqlx's pool — or, if the reset
/// failed, is closed. Cancelled, the reset runs as a runtime cleanup.
///
/// ```
/// # #[cfg(feature = "sqlite")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use awith::ResourceExt;
///
/// let rt = awith::runtime()?;
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
/// let n = awith_sqlx::checkout(&pool, &rt)
///     .with(&rt, async |conn| {
///         conn.transaction()
///             .with(async |tx| {
///                 let n: i64 = sqlx::query_scalar("SELECT 2 * 21").fetch_one(tx.get().await?).await?;
///                 Ok::<_, sqlx::Error>(n)
///             })
///             .await
///     })
///     .await?;
/// assert_eq!(n, 42);
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "sqlite"))]
/// # fn main() {}
/// ```
pub fn checkout<DB, E>(
    pool: &sqlx::Pool<DB>,
    rt: &Runtime,
) -> impl Resource<E, Value = Conn<DB>, Error = sqlx::Error> + use<DB, E>
where
    DB: Database,
    SqlxConn<DB>: Transact<Error = sqlx::Error>,
{
    let pool = pool.clone();
    let rt = rt.clone();
    let resource: FromFn<_, _, _, true> = awith_core::resource(
        move || async move {
            let conn = pool.acquire().await?;
            Ok(Conn::new(SqlxConn::pooled(conn), &rt))
        },
        |mut conn: Conn<DB>, _exit| async move { conn.reset().await },
    )
    .cancel_safe();
    resource
}
