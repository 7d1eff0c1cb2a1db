//! A pool of connections and a transaction on one: `pool → conn →
//! conn.transaction()`, the source's `transfer_funds`. The pool fails with
//! `PoolError<DbError>`, the transaction with `DbError`: they compose in one
//! line, and `?` takes the scope's error into a `Box<dyn Error>`.

// A program that prints, and unwraps where a user would.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::error::Error;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use awith::pool::{Manager, ObjectMetrics, Pool};
use awith::{ExitKind, Resource, ResourceExt, resource};

/// The database's error.
#[derive(Debug)]
enum DbError {
    InsufficientFunds { account: &'static str },
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::InsufficientFunds { account } => write!(f, "insufficient funds in {account}"),
        }
    }
}

impl Error for DbError {}

/// A connection (a shared handle: a transaction's release outlives a borrow).
#[derive(Clone, Default)]
struct Conn {
    log: Arc<Mutex<Vec<String>>>,
}

impl Conn {
    async fn execute(&self, sql: &str) -> Result<(), DbError> {
        self.log.lock().unwrap().push(sql.to_owned());
        Ok(())
    }
}

/// Makes connections.
struct Db {
    conn: Conn,
}

impl Manager for Db {
    type Object = Conn;
    type Error = DbError;

    async fn create(&self) -> Result<Conn, DbError> {
        Ok(self.conn.clone())
    }

    async fn recycle(&self, _: &mut Conn, _: &ObjectMetrics) -> Result<(), DbError> {
        Ok(())
    }
}

/// `async with conn.transaction():` — commit after a completed body,
/// roll back otherwise.
fn transaction<E>(conn: &Conn) -> impl Resource<E, Value = Conn, Error = DbError> + use<E> {
    let conn = conn.clone();
    resource(
        || async move {
            conn.execute("BEGIN").await?;
            Ok(conn)
        },
        |conn, exit| async move {
            match exit {
                ExitKind::Completed => conn.execute("COMMIT").await,
                _ => conn.execute("ROLLBACK").await,
            }
        },
    )
}

async fn transfer_funds(
    rt: &awith::Runtime,
    pool: &Pool<Db>,
    from: &'static str,
    to: &'static str,
    amount: u64,
    balance: u64,
) -> Result<(), Box<dyn Error + Send + Sync>> {
    pool.checkout()
        .and_then(|conn| transaction(conn))
        .with(rt, async |(_, tx)| {
            if balance < amount {
                return Err(DbError::InsufficientFunds { account: from });
            }
            tx.execute(&format!("UPDATE {from} -{amount}")).await?;
            tx.execute(&format!("UPDATE {to} +{amount}")).await?;
            Ok(())
        })
        .await?;
    Ok(())
}

async fn run(rt: awith::Runtime) -> Result<(), Box<dyn Error + Send + Sync>> {
    let conn = Conn::default();
    let pool = Pool::builder(Db { conn: conn.clone() })
        .max_size(4)
        .build(&rt)?;

    transfer_funds(&rt, &pool, "alice", "bob", 30, 100).await?;
    let refused = transfer_funds(&rt, &pool, "bob", "carol", 500, 30).await;
    println!("refused: {}", refused.unwrap_err());

    pool.close(Duration::from_secs(5)).await?;
    rt.drain(Duration::from_secs(5)).await?;
    let log = conn.log.lock().unwrap().clone();
    println!("{}", log.join("; "));
    assert_eq!(
        log,
        [
            "BEGIN",
            "UPDATE alice -30",
            "UPDATE bob +30",
            "COMMIT",
            "BEGIN",
            "ROLLBACK"
        ]
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    match std::env::args().nth(1).as_deref().unwrap_or("tokio") {
        "tokio" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(async { run(awith::tokio::runtime()?).await }),
        "smol" => smol::block_on(run(awith::smol::runtime())),
        "async-std" => async_std::task::block_on(run(awith::async_std::runtime())),
        other => Err(format!("unknown runtime {other:?}: tokio, smol or async-std").into()),
    }
}
