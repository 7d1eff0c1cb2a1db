//! awith's transaction scope (awith-sqlx's [`Conn`](awith_sqlx::Conn):
//! `conn.transaction().with(..)`) side by side with the hand-written sqlx
//! transaction it replaces, on a SQLite file and on a PostgreSQL server of
//! the bench's own.
//!
//! `cargo bench -p awith-benches --bench tx` measures; `ci/bench.sh tx` adds
//! the instruction counts. See the `awith_benches` docs for the command line.
//!
//! Every group runs one transaction per iteration, one after another on one
//! connection: a transfer, two `UPDATE`s of the two rows of `accounts`
//! (prepared, cached by sqlx, one bound `BIGINT` each):
//!
//! - `floor`: sqlx by hand — `let mut tx = conn.begin().await?`, the two
//!   `UPDATE`s on `&mut *tx`, `tx.commit().await?`;
//! - `same-sql`: by hand too, but the statements awith-sqlx sends, the way
//!   it sends them: `raw_sql` `BEGIN`, the two `UPDATE`s, `raw_sql` `COMMIT`
//!   (PostgreSQL: `SELECT 1; COMMIT`); no scope;
//! - `awith`: `conn.transaction().with(async |tx| ..)`, the same two
//!   `UPDATE`s on `tx.get().await?`.
//!
//! `awith` against `floor` is the figure asked for: what a user pays for
//! the scope over sqlx's own transaction. It splits in two: `same-sql`
//! against `floor` is the cost of awith-sqlx's statements (which are not
//! sqlx's, see below), `awith` against `same-sql` (the group's `versus`
//! line) the cost of the scope itself (awith's `TxConn` books, the
//! `catch_unwind`s, the bigger future).
//!
//! Every variant uses the same sqlx connection (the hand-written ones borrow
//! it from the `Conn` once per batch, with `conn.get()`), so the same
//! PostgreSQL backend process, the same caches, the same rows. The
//! statements besides the `UPDATE`s differ:
//!
//! | | begin | commit |
//! |---|---|---|
//! | sqlx, PostgreSQL | `BEGIN`, a simple query queued and its answer skipped to `ReadyForQuery` (no result stream) | `COMMIT`, a simple query |
//! | awith, PostgreSQL | `BEGIN`, a simple query (`raw_sql`) | `SELECT 1; COMMIT` in one simple query (one round trip, two statements for the server, a row for the client): the `SELECT` fails in an aborted transaction, whose `COMMIT` would "succeed" by rolling back |
//! | sqlx, SQLite | `BEGIN` run by the worker thread itself (`sqlite3_exec`), one command, one answer on a oneshot channel | `COMMIT`, the same way |
//! | awith, SQLite | `BEGIN` as a statement (`raw_sql`: the worker's `Execute` command, not cached, prepared and stepped each time, its result streamed back on a channel of its own) | `COMMIT`, the same way |
//!
//! All make four round trips per transaction (to the server, or to sqlx's
//! SQLite worker thread).
//!
//! Instruction counts (`ci/bench.sh`) are the bench process's: with SQLite
//! that includes the database engine (sqlx's worker thread), with
//! PostgreSQL only the client. The PostgreSQL counts also move by a few
//! thousand instructions per iteration from run to run: how often a read
//! finds its answer not there yet (a park, an `epoll_wait` and a wake-up
//! more) depends on timing, under callgrind too.
//!
//! The groups: `tx-sqlite-tokio`, `tx-postgres-tokio` (a tokio
//! current-thread runtime), `tx-sqlite-smol`, `tx-postgres-smol`
//! (`smol::block_on`; sqlx then runs on async-io).
//!
//! The PostgreSQL server (see [`server`]) is `initdb` + `postgres` from
//! `AWITH_PG_BIN`, `PATH` or `/usr/lib/postgresql/N/bin`, in a temporary
//! directory, on a free loopback port (never 5432), `fsync=off` and
//! `synchronous_commit=off`, as the `postgres` user when the bench runs as
//! root; every group starts its own and stops it when done. The SQLite file
//! is in a temporary directory of the group's own, in WAL mode with
//! `synchronous=NORMAL` (no fsync per commit).
#![forbid(unsafe_code)]
// Printing the results is this bench's job.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

fn main() -> ExitCode {
    awith_benches::main(&[
        groups::SQLITE_TOKIO,
        groups::POSTGRES_TOKIO,
        groups::SQLITE_SMOL,
        groups::POSTGRES_SMOL,
    ])
}

/// Where the databases live: a temporary directory, a PostgreSQL server of
/// the bench's own (the one awith-sqlx's tests start).
#[path = "../../crates/awith-sqlx/tests/common/pg.rs"]
mod server;

/// Where a group's work runs: a tokio current-thread runtime (I/O and
/// timers), or `smol::block_on` on the bench's thread.
mod host {
    use std::future::Future;

    pub(crate) enum Host {
        Tokio(tokio::runtime::Runtime),
        Smol,
    }

    impl Host {
        /// A tokio current-thread runtime, and the awith runtime on it.
        pub(crate) fn tokio() -> (Host, awith::Runtime) {
            let tokio = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio current-thread runtime");
            let rt = awith::tokio::from_handle(tokio.handle().clone()).expect("timers enabled");
            (Host::Tokio(tokio), rt)
        }

        /// `smol::block_on`, and the awith runtime on smol's global
        /// executor (for the rollbacks of cancelled scopes: none here).
        pub(crate) fn smol() -> (Host, awith::Runtime) {
            (Host::Smol, awith::smol::runtime())
        }

        /// Runs `future` to its end on the calling thread.
        pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
            match self {
                Host::Tokio(tokio) => tokio.block_on(future),
                Host::Smol => smol::block_on(future),
            }
        }
    }
}

/// The groups: a transfer, as a sqlx transaction by hand and as awith's
/// transaction scope, on one connection.
mod groups {
    use std::time::Duration;

    use awith::tx::Transact;
    use awith_benches::{Bound, Goal, Group, Measure, Runner};
    use awith_sqlx::{Conn, SqlxConn};
    use sqlx::{Connection, Database, Encode, Executor, IntoArguments, Type};

    use crate::host::Host;
    use crate::server::{PgServer, TempDir};

    const VARIANTS: &[&str] = &["floor", "same-sql", "awith"];
    /// awith against the statements it sends, sent by hand: the cost of
    /// the scope itself.
    const VERSUS: &[(&str, &str)] = &[("awith", "same-sql")];

    pub(crate) const SQLITE_TOKIO: Group = Group {
        name: "tx-sqlite-tokio",
        about: "a transaction of 2 UPDATEs on a SQLite file (WAL), tokio current-thread; \
                floor: sqlx begin()/commit(); same-sql: awith-sqlx's statements by hand \
                (raw_sql BEGIN, COMMIT); awith: the transaction scope",
        variants: VARIANTS,
        versus: VERSUS,
        callgrind_iterations: 1_000,
        goals: &[Goal {
            variant: "awith",
            versus: "floor",
            measure: Measure::Time,
            bound: Bound::AtMost(1.03),
            source: "issue 13",
        }],
        setup: || Box::new(sqlite(Host::tokio())),
    };

    pub(crate) const POSTGRES_TOKIO: Group = Group {
        name: "tx-postgres-tokio",
        about: "a transaction of 2 UPDATEs on a loopback PostgreSQL server, tokio \
                current-thread; floor: sqlx begin()/commit(); same-sql: awith-sqlx's \
                statements by hand (raw_sql BEGIN, `SELECT 1; COMMIT`); awith: the \
                transaction scope",
        variants: VARIANTS,
        versus: VERSUS,
        callgrind_iterations: 1_000,
        goals: &[Goal {
            variant: "awith",
            versus: "floor",
            measure: Measure::Time,
            bound: Bound::AtMost(1.03),
            source: "issue 13",
        }],
        setup: || Box::new(postgres(Host::tokio())),
    };

    pub(crate) const SQLITE_SMOL: Group = Group {
        name: "tx-sqlite-smol",
        about: "a transaction of 2 UPDATEs on a SQLite file (WAL), smol::block_on; \
                floor: sqlx begin()/commit(); same-sql: awith-sqlx's statements by hand \
                (raw_sql BEGIN, COMMIT); awith: the transaction scope",
        variants: VARIANTS,
        versus: VERSUS,
        callgrind_iterations: 1_000,
        goals: &[Goal {
            variant: "awith",
            versus: "floor",
            measure: Measure::Time,
            bound: Bound::AtMost(1.03),
            source: "issue 13",
        }],
        setup: || Box::new(sqlite(Host::smol())),
    };

    pub(crate) const POSTGRES_SMOL: Group = Group {
        name: "tx-postgres-smol",
        about: "a transaction of 2 UPDATEs on a loopback PostgreSQL server, smol::block_on \
                (sqlx on async-io); floor: sqlx begin()/commit(); same-sql: awith-sqlx's \
                statements by hand (raw_sql BEGIN, `SELECT 1; COMMIT`); awith: the \
                transaction scope",
        variants: VARIANTS,
        versus: VERSUS,
        callgrind_iterations: 1_000,
        goals: &[Goal {
            variant: "awith",
            versus: "floor",
            measure: Measure::Time,
            bound: Bound::AtMost(1.03),
            source: "issue 13",
        }],
        setup: || Box::new(postgres(Host::smol())),
    };

    /// Variant indices, in the groups' order.
    const FLOOR: usize = 0;
    const SAME_SQL: usize = 1;
    const AWITH: usize = 2;

    /// What a transfer moves.
    const AMOUNT: i64 = 1;

    /// The two statements of a transfer, in each database's placeholders,
    /// and the commit awith-sqlx sends (copied from its `Transact`
    /// implementations: keep them in step).
    trait Transfer: Database {
        const DEBIT: &'static str;
        const CREDIT: &'static str;
        const AWITH_COMMIT: &'static str;
    }

    impl Transfer for sqlx::Sqlite {
        const DEBIT: &'static str = "UPDATE accounts SET balance = balance - ? WHERE id = 1";
        const CREDIT: &'static str = "UPDATE accounts SET balance = balance + ? WHERE id = 2";
        const AWITH_COMMIT: &'static str = "COMMIT";
    }

    impl Transfer for sqlx::Postgres {
        const DEBIT: &'static str = "UPDATE accounts SET balance = balance - $1 WHERE id = 1";
        const CREDIT: &'static str = "UPDATE accounts SET balance = balance + $1 WHERE id = 2";
        const AWITH_COMMIT: &'static str = "SELECT 1; COMMIT";
    }

    /// The table, and its two rows.
    const SCHEMA: &str = "CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance BIGINT NOT NULL); \
                          INSERT INTO accounts VALUES (1, 0), (2, 0)";

    /// Where a group's database lives: held only to be dropped after the
    /// connection.
    #[allow(dead_code)]
    enum Store {
        Sqlite(TempDir),
        Postgres(PgServer),
    }

    /// One connection, and where it runs.
    struct Tx<DB: Transfer>
    where
        SqlxConn<DB>: Transact,
    {
        conn: Conn<DB>,
        host: Host,
        /// Declared last: removed (stopped) after the connection and its
        /// runtime are gone.
        _store: Store,
    }

    fn sqlite((host, rt): (Host, awith::Runtime)) -> Tx<sqlx::Sqlite> {
        let dir = TempDir::new("sqlite");
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.path().join("bank.db"))
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let conn = host.block_on(async {
            let mut conn = sqlx::SqliteConnection::connect_with(&options)
                .await
                .expect("open the SQLite file");
            sqlx::raw_sql(SCHEMA)
                .execute(&mut conn)
                .await
                .expect("make the table");
            conn
        });
        Tx {
            conn: Conn::new(SqlxConn::new(conn), &rt),
            host,
            _store: Store::Sqlite(dir),
        }
    }

    fn postgres((host, rt): (Host, awith::Runtime)) -> Tx<sqlx::Postgres> {
        let server = PgServer::start();
        let conn = host.block_on(async {
            let mut conn = sqlx::PgConnection::connect_with(&server.options())
                .await
                .expect("connect to the bench's PostgreSQL server");
            sqlx::raw_sql(SCHEMA)
                .execute(&mut conn)
                .await
                .expect("make the table");
            conn
        });
        Tx {
            conn: Conn::new(SqlxConn::new(conn), &rt),
            host,
            _store: Store::Postgres(server),
        }
    }

    impl<DB> Runner for Tx<DB>
    where
        DB: Transfer,
        SqlxConn<DB>: Transact<Error = sqlx::Error, Target = DB::Connection>,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        for<'t> i64: Encode<'t, DB> + Type<DB>,
        DB::Arguments: IntoArguments<DB>,
    {
        fn run(&mut self, variant: usize, iterations: u64) {
            let Tx { conn, host, .. } = self;
            match variant {
                FLOOR => host.block_on(async {
                    // The same sqlx connection as awith's, borrowed once.
                    let conn = conn.get().await.expect("the connection is ready");
                    for _ in 0..iterations {
                        let mut tx = conn.begin().await.expect("BEGIN");
                        sqlx::query(DB::DEBIT)
                            .bind(AMOUNT)
                            .execute(&mut *tx)
                            .await
                            .expect("the debit");
                        sqlx::query(DB::CREDIT)
                            .bind(AMOUNT)
                            .execute(&mut *tx)
                            .await
                            .expect("the credit");
                        tx.commit().await.expect("COMMIT");
                    }
                }),
                SAME_SQL => host.block_on(async {
                    // awith-sqlx's statements, sent as it sends them:
                    // `raw_sql` of static strings.
                    let conn = conn.get().await.expect("the connection is ready");
                    for _ in 0..iterations {
                        conn.execute(sqlx::raw_sql("BEGIN")).await.expect("BEGIN");
                        sqlx::query(DB::DEBIT)
                            .bind(AMOUNT)
                            .execute(&mut *conn)
                            .await
                            .expect("the debit");
                        sqlx::query(DB::CREDIT)
                            .bind(AMOUNT)
                            .execute(&mut *conn)
                            .await
                            .expect("the credit");
                        conn.execute(sqlx::raw_sql(DB::AWITH_COMMIT))
                            .await
                            .expect("COMMIT");
                    }
                }),
                AWITH => host.block_on(async {
                    for _ in 0..iterations {
                        conn.transaction()
                            .with(async |tx| {
                                sqlx::query(DB::DEBIT)
                                    .bind(AMOUNT)
                                    .execute(tx.get().await?)
                                    .await?;
                                sqlx::query(DB::CREDIT)
                                    .bind(AMOUNT)
                                    .execute(tx.get().await?)
                                    .await?;
                                Ok::<_, sqlx::Error>(())
                            })
                            .await
                            .expect("the transaction commits");
                    }
                }),
                _ => unreachable!("the transaction groups have three variants"),
            }
        }
    }
}
