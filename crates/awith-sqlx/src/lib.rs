//! # awith-sqlx
//!
//! Transactions over [sqlx](https://docs.rs/sqlx) that end with their
//! scope, whatever happens to it: commit after a completed body; roll back
//! after an error, a panic — and a cancellation, **at once**, never left for
//! the connection's next use. SQLite (embedded, the default) and
//! PostgreSQL; tokio, async-std and smol.
//!
//! The source's `transfer_funds` — a connection from a pool, then
//! `async with conn.transaction():` — with awith's [`Pool`]:
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use awith::pool::Pool;
//! use awith_sqlx::SqliteTxOptions;
//!
//! let rt = awith::runtime()?;
//! let options: sqlx::sqlite::SqliteConnectOptions = "sqlite::memory:".parse()?;
//! let pool = Pool::builder(awith_sqlx::Manager::new(options, &rt))
//!     .max_size(1) // one in-memory database
//!     .build(&rt)?;
//! pool.with(async |conn| {
//!     sqlx::raw_sql("CREATE TABLE accounts (name TEXT PRIMARY KEY, balance INTEGER CHECK (balance >= 0));
//!                    INSERT INTO accounts VALUES ('alice', 100), ('bob', 0)")
//!         .execute(conn.get().await?)
//!         .await?;
//!     Ok::<_, sqlx::Error>(())
//! })
//! .await?;
//!
//! let transfer = async |amount: i64| {
//!     pool.with(async |conn| {
//!         conn.transaction()
//!             .options(SqliteTxOptions::immediate())
//!             .with(async |tx| {
//!                 sqlx::query("UPDATE accounts SET balance = balance - ? WHERE name = 'alice'")
//!                     .bind(amount)
//!                     .execute(tx.get().await?)
//!                     .await?;
//!                 sqlx::query("UPDATE accounts SET balance = balance + ? WHERE name = 'bob'")
//!                     .bind(amount)
//!                     .execute(tx.get().await?)
//!                     .await?;
//!                 Ok::<_, sqlx::Error>(())
//!             })
//!             .await
//!     })
//!     .await
//! };
//! transfer(30).await?;
//! // Alice has 70: the CHECK constraint fails the first UPDATE, and the
//! // transaction rolls back.
//! assert!(transfer(500).await.is_err());
//!
//! let balances: Vec<(String, i64)> = pool
//!     .with(async |conn| sqlx::query_as("SELECT name, balance FROM accounts ORDER BY name")
//!         .fetch_all(conn.get().await?)
//!         .await)
//!     .await?;
//! assert_eq!(balances, [("alice".to_owned(), 70), ("bob".to_owned(), 30)]);
//! pool.close(Duration::from_secs(5)).await?;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "sqlite"))]
//! # fn main() {}
//! ```
//!
//! [`Pool`]: awith_core::pool::Pool
//!
//! ## What it gives
//!
//! - [`Conn`]: a sqlx connection with its transactions' books (awith's
//!   [`TxConn`](awith_core::tx::TxConn)). `conn.transaction().with(..)` runs
//!   a transaction scope on it; one inside another's body is a **savepoint**
//!   (`awith_sp_1`, …): its failure rolls back to it, and the enclosing
//!   transaction goes on. Statements go through `conn.get().await?`, which
//!   lends the sqlx connection (`&mut SqliteConnection`,
//!   `&mut PgConnection`).
//! - Options: [`SqliteTxOptions`] (`BEGIN IMMEDIATE` for writers) and
//!   [`PgTxOptions`] (isolation level, read-only).
//! - Retries of serialization failures, opt in and bounded:
//!   `.retry(3, awith_sqlx::is_serialization_failure)` (see
//!   [`is_serialization_failure`]).
//! - Pools: [`Manager`], for awith's `Pool`; [`checkout`], a connection
//!   from sqlx's own pool as a scope.
//!
//! ## Cancellation
//!
//! sqlx's own `Transaction` queues its rollback when dropped, to be sent
//! with the connection's next statement, and a `begin()` cancelled while
//! its `BEGIN` is answered has left pooled PostgreSQL connections inside
//! open transactions (sqlx issues #3932, #4385, #4393). awith's scopes do
//! not rely on either:
//!
//! | dropped while | what happens |
//! |---|---|
//! | beginning | the level was booked before `BEGIN` was sent: a cleanup task rolls it back at once (a no-op if nothing began) |
//! | in the body | the body is dropped, then a cleanup task rolls back at once (`ROLLBACK`, or `ROLLBACK TO SAVEPOINT`) |
//! | committing | a cleanup rolls back: the transaction is committed or undone, never left open |
//!
//! Until that rollback has ended, the connection is away with it: the
//! body's next `get()`, the enclosing scope's commit, and a pool's next user
//! (through [`Manager`]'s recycle, or [`checkout`]'s release) wait for it.
//! A rollback that fails, panics or overruns the runtime's cleanup timeout
//! closes the connection — never back to a pool; the database ends the
//! transaction with the session. `mem::forget` on a scope skips this; the
//! pool's recycle then rolls back what it left open.
//!
//! Statements you run yourself are yours: `BEGIN` sent by hand is not in
//! the books.
//!
//! ## Runtimes
//!
//! Pick sqlx's runtime with this crate's feature: `tokio` (default),
//! `async-std` or `smol`. With several, sqlx uses tokio when a tokio
//! runtime runs the caller, and the other otherwise.
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod conn;
mod manager;
mod tx;

pub use conn::{Conn, SqlxConn, is_serialization_failure};
pub use manager::{Manager, checkout};
pub use tx::{IsolationLevel, PgTxOptions, SqliteBehavior, SqliteTxOptions};
