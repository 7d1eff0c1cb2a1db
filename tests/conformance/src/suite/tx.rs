//! Transactions: commit and rollback by outcome, savepoints, a scope
//! cancelled at every await point (its rollback runs at once, and before
//! the connection's next statement), a pool's next user, failing, panicking
//! and hanging begin / commit / rollback, retries, leaked scopes, and the
//! owned [`transaction`] resource.
//!
//! The database is simulated here — the core has no driver — but keeps a
//! real database's books: each connection's open transaction and
//! savepoints, what is committed, and which sessions are inside a
//! transaction. awith-sqlx runs the same guarantees against SQLite and
//! PostgreSQL.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::{Future, pending};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use awith::pool::{Manager, ObjectMetrics, Pool};
use awith::rt::{CleanupKind, Incident};
use awith::tx::{Closed, ConnState, Level, Transact, TxConn, transaction};
use awith::{Cancel, ExitKind, Failure, ResourceExt, ScopeError, Verdict, resource_inspecting};
use futures::FutureExt;

use super::{Polled, Stepper, drain, panic_message};
use crate::probe::yield_now;
use awith::test::{Env, recording_runtime};

/// What the next begin, commit or rollback of a [`Sim`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Ok,
    /// Fails with an error that is not worth retrying.
    Err,
    /// Fails with a serialization failure, worth retrying.
    Retryable,
    Panic,
    /// Never answers (its effect has happened).
    Hang,
}

/// A simulated database: what is committed, and the books of every session.
#[derive(Clone, Default, Debug)]
pub struct Db(Arc<Mutex<DbState>>);

#[derive(Default, Debug)]
pub struct DbState {
    committed: BTreeMap<&'static str, i64>,
    /// Every statement, in the order the database ran them.
    log: Vec<String>,
    begin: VecDeque<Fault>,
    commit: VecDeque<Fault>,
    rollback: VecDeque<Fault>,
    /// Sessions inside a transaction.
    in_tx: BTreeMap<usize, usize>,
    next_id: usize,
    discarded: usize,
    /// Connections dropped inside a transaction (never discarded): what
    /// awith must never do.
    dropped_in_tx: usize,
}

impl Db {
    fn state(&self) -> std::sync::MutexGuard<'_, DbState> {
        self.0.lock().unwrap()
    }

    pub fn connect(&self) -> Sim {
        let mut state = self.state();
        state.next_id += 1;
        Sim {
            db: self.clone(),
            id: state.next_id,
            stack: Vec::new(),
        }
    }

    fn faults(&self, begin: &[Fault], commit: &[Fault], rollback: &[Fault]) {
        let mut state = self.state();
        state.begin = begin.iter().copied().collect();
        state.commit = commit.iter().copied().collect();
        state.rollback = rollback.iter().copied().collect();
    }

    pub fn committed(&self, key: &str) -> Option<i64> {
        self.state().committed.get(key).copied()
    }

    pub fn log(&self) -> Vec<String> {
        self.state().log.clone()
    }

    fn clear_log(&self) {
        self.state().log.clear();
    }

    /// Sessions inside a transaction now.
    pub fn sessions_in_tx(&self) -> usize {
        self.state().in_tx.len()
    }

    fn discarded(&self) -> usize {
        self.state().discarded
    }

    fn dropped_in_tx(&self) -> usize {
        self.state().dropped_in_tx
    }
}

/// The simulated database's error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimError {
    Failed(&'static str),
    Serialization(&'static str),
    Closed(Closed),
    Body(&'static str),
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Failed(op) => write!(f, "{op} failed"),
            SimError::Serialization(op) => write!(f, "{op}: could not serialize access"),
            SimError::Closed(why) => write!(f, "{why}"),
            SimError::Body(why) => write!(f, "{why}"),
        }
    }
}

/// A connection to a [`Db`]: a transaction is a stack of working copies,
/// one per open level.
#[derive(Debug)]
pub struct Sim {
    db: Db,
    id: usize,
    stack: Vec<BTreeMap<&'static str, i64>>,
}

impl Sim {
    /// `UPDATE key = value`: in the open level, or committed at once.
    pub fn set(&mut self, key: &'static str, value: i64) {
        self.db.state().log.push(format!("SET {key}={value}"));
        match self.stack.last_mut() {
            Some(top) => {
                top.insert(key, value);
            }
            None => {
                self.db.state().committed.insert(key, value);
            }
        }
    }

    /// What this session sees of `key`.
    pub fn get(&self, key: &str) -> Option<i64> {
        match self.stack.last() {
            Some(top) => top.get(key).copied(),
            None => self.db.committed(key),
        }
    }

    pub fn depth(&self) -> usize {
        self.stack.len()
    }

    /// Runs a statement's fault: its effect happens at once (the statement
    /// is on the wire from the first poll); then it answers, after two
    /// awaits.
    async fn answer(db: &Db, fault: Fault, op: &'static str) -> Result<(), SimError> {
        yield_now().await;
        match fault {
            Fault::Ok => {}
            Fault::Err => return Err(SimError::Failed(op)),
            Fault::Retryable => return Err(SimError::Serialization(op)),
            Fault::Panic => panic!("probe: {op} panics"),
            Fault::Hang => pending::<()>().await,
        }
        yield_now().await;
        let _ = db;
        Ok(())
    }

    fn booked(&self) {
        let mut state = self.db.state();
        if self.stack.is_empty() {
            state.in_tx.remove(&self.id);
        } else {
            state.in_tx.insert(self.id, self.stack.len());
        }
    }
}

fn next(queue: &mut VecDeque<Fault>) -> Fault {
    queue.pop_front().unwrap_or(Fault::Ok)
}

impl Transact for Sim {
    type Error = SimError;
    type Options = bool;
    type Target = Sim;

    fn target(&mut self) -> &mut Sim {
        self
    }

    async fn begin(&mut self, level: Level, immediate: bool) -> Result<(), SimError> {
        let fault = next(&mut self.db.state().begin);
        if immediate && level != Level::Transaction {
            return Err(SimError::Failed("IMMEDIATE on a savepoint"));
        }
        if !matches!(fault, Fault::Err | Fault::Retryable) {
            let statement = match level {
                Level::Transaction if immediate => "BEGIN IMMEDIATE".to_owned(),
                Level::Transaction => "BEGIN".to_owned(),
                Level::Savepoint(n) => format!("SAVEPOINT {n}"),
            };
            assert!(
                Level::Savepoint(self.stack.len()) == level
                    || (level == Level::Transaction && self.stack.is_empty()),
                "{statement} at depth {}",
                self.stack.len()
            );
            self.db.state().log.push(statement);
            let copy = match self.stack.last() {
                Some(top) => top.clone(),
                None => self.db.state().committed.clone(),
            };
            self.stack.push(copy);
            self.booked();
        }
        Sim::answer(&self.db, fault, "BEGIN").await
    }

    async fn commit(&mut self, level: Level) -> Result<(), SimError> {
        let fault = next(&mut self.db.state().commit);
        if !matches!(fault, Fault::Err | Fault::Retryable) {
            let top = self
                .stack
                .pop()
                .expect("probe: COMMIT outside a transaction");
            match level {
                Level::Transaction => {
                    assert!(self.stack.is_empty(), "COMMIT inside a savepoint");
                    let mut state = self.db.state();
                    state.log.push("COMMIT".to_owned());
                    state.committed = top;
                }
                Level::Savepoint(n) => {
                    assert_eq!(self.stack.len(), n, "RELEASE of the wrong savepoint");
                    self.db.state().log.push(format!("RELEASE {n}"));
                    *self.stack.last_mut().expect("inside a transaction") = top;
                }
            }
            self.booked();
        }
        Sim::answer(&self.db, fault, "COMMIT").await
    }

    async fn rollback(&mut self, level: Level) -> Result<(), SimError> {
        let fault = next(&mut self.db.state().rollback);
        if !matches!(fault, Fault::Err | Fault::Retryable) {
            let keep = match level {
                Level::Transaction => 0,
                Level::Savepoint(n) => n,
            };
            if self.stack.len() < keep + 1 && keep > 0 {
                // PostgreSQL's `ROLLBACK TO` a savepoint that was released.
                self.db
                    .state()
                    .log
                    .push(format!("ROLLBACK TO {keep}: no such savepoint"));
                yield_now().await;
                return Err(SimError::Failed("ROLLBACK TO"));
            }
            self.db.state().log.push(match level {
                Level::Transaction => "ROLLBACK".to_owned(),
                Level::Savepoint(n) => format!("ROLLBACK TO {n}"),
            });
            // Not open (a begin that failed, a commit that ended it): a
            // no-op, as the trait asks.
            self.stack.truncate(keep);
            self.booked();
        }
        Sim::answer(&self.db, fault, "ROLLBACK").await
    }

    fn is_retryable(error: &SimError) -> bool {
        matches!(error, SimError::Serialization(_))
    }

    fn closed(why: &Closed) -> SimError {
        SimError::Closed(*why)
    }

    fn discard(mut self) {
        // The database ends the session's transaction with it.
        self.stack.clear();
        self.booked();
        self.db.state().discarded += 1;
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if !self.stack.is_empty() {
            let mut state = self.db.state();
            state.dropped_in_tx += 1;
            state.in_tx.remove(&self.id);
        }
    }
}

/// A session that is in no transaction and was never dropped inside one.
fn assert_clean(db: &Db) {
    assert_eq!(
        db.sessions_in_tx(),
        0,
        "a session is left inside a transaction"
    );
    assert_eq!(
        db.dropped_in_tx(),
        0,
        "a connection was dropped inside a transaction"
    );
}

/// Polls `future` up to `n` times, without waiting for a wake-up between
/// polls (it may be waiting for nothing: a hanging statement); its output
/// if it finished.
async fn poll_times<F: Future + Unpin>(future: &mut F, n: usize) -> Option<F::Output> {
    for _ in 0..n {
        if let Poll::Ready(output) = futures::poll!(&mut *future) {
            return Some(output);
        }
    }
    None
}

fn conn(env: &Env, db: &Db) -> TxConn<Sim> {
    TxConn::new(db.connect(), &env.rt)
}

/// Commit after `Ok`, rollback after `Err`; the body's error is the
/// scope's, the rollback's failure (none here) beside it.
pub async fn commit_and_rollback(env: Env) {
    let db = Db::default();
    let mut conn = conn(&env, &db);
    let moved = conn
        .transaction()
        .with(async |tx| {
            let c = tx.get().await?;
            c.set("alice", 70);
            c.set("bob", 30);
            Ok::<_, SimError>(30)
        })
        .await;
    assert_eq!(moved, Ok(30));
    assert_eq!(db.log(), ["BEGIN", "SET alice=70", "SET bob=30", "COMMIT"]);
    assert_eq!(
        (db.committed("alice"), db.committed("bob")),
        (Some(70), Some(30))
    );

    db.clear_log();
    let refused = conn
        .transaction()
        .with(async |tx| {
            tx.get().await?.set("alice", -500);
            Err::<(), _>(SimError::Body("insufficient funds"))
        })
        .await;
    assert_eq!(
        refused,
        Err(ScopeError::Body {
            error: SimError::Body("insufficient funds"),
            release: None
        })
    );
    assert_eq!(db.log(), ["BEGIN", "SET alice=-500", "ROLLBACK"]);
    assert_eq!(db.committed("alice"), Some(70));
    assert_eq!(conn.depth(), 0);
    assert_eq!(conn.state(), ConnState::Ready);

    // Options reach `begin`; a savepoint refuses them with its own error.
    db.clear_log();
    let nested = conn
        .transaction()
        .options(true)
        .with(async |tx| {
            tx.transaction()
                .options(true)
                .with(async |_| Ok::<_, SimError>(()))
                .await
        })
        .await;
    let Err(ScopeError::Body {
        error: ScopeError::Acquire(Failure::Error(SimError::Failed("IMMEDIATE on a savepoint"))),
        release: None,
    }) = nested
    else {
        panic!("a savepoint refuses options: {nested:?}")
    };
    // The refused savepoint was never open: nothing rolls back to it.
    assert_eq!(db.log(), ["BEGIN IMMEDIATE", "ROLLBACK"]);
    assert_clean(&db);
    drop(conn);
    assert_eq!(drain(&env).await.spawned, 0);
}

/// A scope in another's body is a savepoint: its failure rolls back to it
/// and the enclosing transaction goes on and commits; three levels deep,
/// each numbered by its depth.
pub async fn savepoints(env: Env) {
    let db = Db::default();
    let mut conn = conn(&env, &db);
    let result = conn
        .transaction()
        .with(async |tx| {
            tx.get().await?.set("a", 1);
            let inner = tx
                .transaction()
                .with(async |sp| {
                    sp.get().await?.set("b", 2);
                    assert_eq!(sp.depth(), 2);
                    Err::<(), _>(SimError::Body("inner fails"))
                })
                .await;
            assert!(matches!(
                inner,
                Err(ScopeError::Body {
                    error: SimError::Body("inner fails"),
                    release: None
                })
            ));
            assert_eq!(
                tx.get().await?.get("b"),
                None,
                "rolled back to the savepoint"
            );
            tx.transaction()
                .with(async |sp| {
                    sp.get().await?.set("c", 3);
                    sp.transaction()
                        .with(async |deeper| {
                            deeper.get().await?.set("d", 4);
                            Ok::<_, SimError>(())
                        })
                        .await
                        .map_err(|_| SimError::Body("deep"))
                })
                .await
                .map_err(|_| SimError::Body("nested"))?;
            Ok::<_, SimError>(tx.depth())
        })
        .await;
    assert_eq!(result, Ok(1));
    assert_eq!(
        db.log(),
        [
            "BEGIN",
            "SET a=1",
            "SAVEPOINT 1",
            "SET b=2",
            "ROLLBACK TO 1",
            "SAVEPOINT 1",
            "SET c=3",
            "SAVEPOINT 2",
            "SET d=4",
            "RELEASE 2",
            "RELEASE 1",
            "COMMIT"
        ]
    );
    let committed: Vec<_> = ["a", "b", "c", "d"]
        .iter()
        .map(|k| db.committed(k))
        .collect();
    assert_eq!(committed, [Some(1), None, Some(3), Some(4)]);
    assert_eq!(conn.depth(), 0);
    assert_clean(&db);
}

/// A scope dropped after `k` polls, for every `k` until it completes: its
/// rollback has started by the time the drop returns (the connection is
/// away), and the connection's next statement runs after it, outside any
/// transaction. Nothing of the abandoned transaction is committed.
pub async fn cancelled_at_every_await_point(env: Env) {
    let db = Db::default();
    let mut conn = conn(&env, &db);
    for k in 0.. {
        db.clear_log();
        let mut scope = Stepper::new(conn.transaction().with(async |tx| {
            tx.get().await?.set("x", 1);
            yield_now().await;
            tx.get().await?.set("y", 2);
            Ok::<_, SimError>(())
        }));
        let mut done = false;
        for _ in 0..k {
            match scope.step().await {
                Polled::Pending => {}
                Polled::Ready(result) => {
                    result.expect("commits");
                    done = true;
                    break;
                }
                Polled::Panicked(panic) => std::panic::resume_unwind(panic),
            }
        }
        drop(scope);
        if done {
            assert_eq!(db.committed("y"), Some(2));
            break;
        }
        let log = db.log();
        if log.is_empty() {
            // Dropped before its first poll: nothing was begun or owed.
            assert_eq!(conn.state(), ConnState::Ready, "k={k}");
        } else if log.iter().any(|s| s == "COMMIT") {
            // Dropped while `COMMIT` was answering: it committed, and the
            // cleanup's rollback finds nothing open.
            assert_eq!(db.committed("y"), Some(2));
            break;
        } else {
            // The rollback runs now, not at the next use: the connection
            // is away with it, or (on another thread) back after it.
            let state = conn.state();
            let rolled_back = db.log().last().map(String::as_str) == Some("ROLLBACK");
            assert!(
                state == ConnState::RollingBack || (state == ConnState::Ready && rolled_back),
                "k={k}: {state:?}"
            );
        }
        assert_eq!(conn.depth(), 0);
        // Once the cleanup has ended, the connection is back without
        // anyone asking for it.
        drain(&env).await;
        assert_eq!(conn.state(), ConnState::Ready, "k={k}");
        let c = conn.get().await.expect("back after its rollback");
        assert_eq!(
            c.depth(),
            0,
            "k={k}: the next statement runs outside any transaction"
        );
        c.set("probe", i64::from(k));
        let log = db.log();
        if log.len() > 1 {
            assert_eq!(
                &log[log.len() - 2..],
                ["ROLLBACK", &format!("SET probe={k}")],
                "k={k}"
            );
        }
        assert_eq!(
            (db.committed("x"), db.committed("y")),
            (None, None),
            "k={k}"
        );
        assert!(k < 50, "the scope never completed");
    }
    assert_clean(&db);
    drain(&env).await;
}

/// The borrowed-connection case: inside a transaction's body, an inner
/// scope (a savepoint) is dropped after `k` polls — a `select!` or timeout
/// would do the same — and the body goes on: its next statement runs after
/// `ROLLBACK TO` the savepoint, the enclosing transaction commits, and none
/// of the inner writes are committed.
pub async fn cancelled_inner_scope_rolls_back_before_next_statement(env: Env) {
    let db = Db::default();
    let mut conn = conn(&env, &db);
    for k in 1..40_usize {
        db.clear_log();
        let key = "outer";
        let outcome = conn
            .transaction()
            .with(async |tx| {
                let mut inner = Box::pin(tx.transaction().with(async |sp| {
                    sp.get().await?.set("inner", 1);
                    yield_now().await;
                    sp.get().await?.set("inner2", 2);
                    Ok::<_, SimError>(())
                }));
                let finished = poll_times(&mut inner, k).await;
                drop(inner);
                let finished = match finished {
                    Some(result) => {
                        result.expect("the savepoint is released");
                        Some(())
                    }
                    None => None,
                };
                let c = tx.get().await?;
                assert_eq!(
                    c.depth(),
                    1,
                    "k={k}: back in the enclosing transaction only"
                );
                c.set(key, i64::try_from(k).unwrap());
                Ok::<_, SimError>(finished.is_some())
            })
            .await;
        let log = db.log();
        let inner_done = match outcome {
            Ok(done) => done,
            Err(ScopeError::Body {
                error: SimError::Closed(Closed::RollbackFailed),
                release,
            }) => {
                // Dropped while `RELEASE` was answering: the savepoint was
                // gone, `ROLLBACK TO` it failed (PostgreSQL then aborts the
                // transaction), so the connection was closed, and the
                // enclosing transaction failed with it, committing nothing.
                assert!(log.iter().any(|s| s == "RELEASE 1"), "k={k}: {log:?}");
                assert_eq!(
                    release,
                    Some(Failure::Error(SimError::Closed(Closed::RollbackFailed)))
                );
                assert_eq!(conn.state(), ConnState::Closed(Closed::RollbackFailed));
                assert_eq!(db.committed("inner"), None);
                drain(&env).await;
                let seen = env.incidents.take();
                assert!(
                    matches!(&seen[..], [Incident::CleanupFailed { kind: CleanupKind::Rollback, error }] if error.contains("savepoint 1")),
                    "{seen:?}"
                );
                conn = TxConn::new(db.connect(), &env.rt);
                continue;
            }
            Err(other) => panic!("k={k}: {other:?}"),
        };
        assert_eq!(db.committed(key), Some(i64::try_from(k).unwrap()));
        assert_eq!(log.last().map(String::as_str), Some("COMMIT"));
        if inner_done {
            assert_eq!(db.committed("inner2"), Some(2));
            break;
        }
        let next = log
            .iter()
            .position(|s| s == &format!("SET {key}={k}"))
            .expect("the body's next statement ran");
        assert_eq!(log[next - 1], "ROLLBACK TO 1", "k={k}: {log:?}");
        assert_eq!(
            (db.committed("inner"), db.committed("inner2")),
            (None, None),
            "k={k}"
        );
    }
    assert_clean(&db);
    drain(&env).await;
}

/// A pool of `TxConn`s whose manager resets each connection it takes back.
#[derive(Debug)]
pub struct SimManager {
    pub db: Db,
    pub rt: awith::Runtime,
    pub created: AtomicUsize,
}

impl Manager for SimManager {
    type Object = TxConn<Sim>;
    type Error = SimError;

    async fn create(&self) -> Result<TxConn<Sim>, SimError> {
        self.created.fetch_add(1, Ordering::SeqCst);
        Ok(TxConn::new(self.db.connect(), &self.rt))
    }

    async fn recycle(&self, conn: &mut TxConn<Sim>, _: &ObjectMetrics) -> Result<(), SimError> {
        conn.reset().await
    }

    async fn reset(&self, conn: &mut TxConn<Sim>, _: ExitKind) -> bool {
        conn.reset().await.is_ok()
    }
}

/// A pool's next user never runs inside a transaction a cancelled scope
/// left: whether the checkout's body was cancelled with it, or completed
/// after dropping the transaction scope (the connection goes back while its
/// rollback runs, and the next checkout waits for it).
pub async fn pool_next_user_finds_no_open_transaction(env: Env) {
    let db = Db::default();
    let pool = Pool::builder(SimManager {
        db: db.clone(),
        rt: env.rt.clone(),
        created: AtomicUsize::new(0),
    })
    .max_size(1)
    .build(&env.rt)
    .expect("a valid pool");
    for k in 1..12 {
        // The whole checkout scope is dropped mid-transaction.
        let mut scope = Box::pin(pool.checkout().with(&env.rt, async |conn| {
            conn.transaction()
                .with(async |tx| {
                    tx.get().await?.set("lost", 1);
                    yield_now().await;
                    pending::<()>().await;
                    Ok::<_, SimError>(())
                })
                .await
        }));
        assert!(poll_times(&mut scope, k).await.is_none());
        drop(scope);
        // The body completes after dropping its transaction scope.
        pool.checkout()
            .with(&env.rt, async |conn| {
                let mut tx = Box::pin(conn.transaction().with(async |tx| {
                    tx.get().await?.set("lost", 2);
                    pending::<()>().await;
                    Ok::<_, SimError>(())
                }));
                assert!(poll_times(&mut tx, k).await.is_none());
                Ok::<_, SimError>(())
            })
            .await
            .expect("the checkout completes");
        // The next user's first look: no session inside a transaction.
        pool.checkout()
            .with(&env.rt, async |conn| {
                assert_eq!(db.sessions_in_tx(), 0, "k={k}");
                let c = conn.get().await?;
                assert_eq!(c.depth(), 0);
                assert_eq!(c.get("lost"), None);
                Ok::<_, SimError>(())
            })
            .await
            .expect("a clean connection");
    }
    assert_eq!(pool.status().size, 1, "one connection, never destroyed");
    assert_clean(&db);
    pool.close(Duration::from_secs(5)).await.expect("closes");
    drain(&env).await;
}

/// A failed commit is the scope's error — rolled back, nothing committed —
/// and no suppression turns it into success: not a suppressing resource
/// around the owned `transaction`, not `with_suppression`.
pub async fn commit_failure_is_the_scopes_error(env: Env) {
    let db = Db::default();
    let mut conn = conn(&env, &db);
    db.faults(&[], &[Fault::Err], &[]);
    let result = conn
        .transaction()
        .with(async |tx| {
            tx.get().await?.set("a", 1);
            Ok::<_, SimError>(())
        })
        .await;
    assert_eq!(
        result,
        Err(ScopeError::Release(Failure::Error(SimError::Failed(
            "COMMIT"
        ))))
    );
    assert_eq!(db.log(), ["BEGIN", "SET a=1", "ROLLBACK"]);
    assert_eq!(db.committed("a"), None);
    assert_eq!(conn.state(), ConnState::Ready);

    // The owned transaction, inside a resource that suppresses every error
    // it is shown, in a scope that honours suppression.
    let commits = Arc::new(AtomicUsize::new(0));
    let failing_commit = {
        let commits = Arc::clone(&commits);
        transaction(
            || async { Ok::<_, SimError>(()) },
            move |()| async move {
                commits.fetch_add(1, Ordering::SeqCst);
                Err(SimError::Failed("COMMIT"))
            },
            |(), _| async { Ok(()) },
        )
    };
    let suppressor = resource_inspecting(
        || async { Ok::<_, SimError>(()) },
        |(), _: &awith::Exit<'_, SimError>| async { Ok(Verdict::Suppress) },
    );
    let result = suppressor
        .and_then(|_| failing_commit)
        .with_suppression(&env.rt, async |_| Ok::<_, SimError>(7))
        .await;
    assert_eq!(commits.load(Ordering::SeqCst), 1);
    assert!(
        matches!(&result, Err(ScopeError::Release(_))),
        "a failed commit is never success: {result:?}"
    );
    assert_clean(&db);
}

/// A rollback that fails closes the connection: the failure is returned
/// beside the body's error, the connection is discarded, and every later
/// use fails with `Closed::RollbackFailed` — a pool destroys it and makes a
/// new one.
pub async fn failed_rollback_closes_the_connection(env: Env) {
    let db = Db::default();
    let mut conn = conn(&env, &db);
    db.faults(&[], &[], &[Fault::Err]);
    let result = conn
        .transaction()
        .with(async |tx| {
            tx.get().await?.set("a", 1);
            Err::<(), _>(SimError::Body("bad row"))
        })
        .await;
    assert_eq!(
        result,
        Err(ScopeError::Body {
            error: SimError::Body("bad row"),
            release: Some(Failure::Error(SimError::Failed("ROLLBACK")))
        })
    );
    assert_eq!(conn.state(), ConnState::Closed(Closed::RollbackFailed));
    assert_eq!(db.discarded(), 1);
    assert!(matches!(
        conn.get().await,
        Err(SimError::Closed(Closed::RollbackFailed))
    ));
    let next = conn
        .transaction()
        .with(async |_| Ok::<_, SimError>(()))
        .await;
    assert_eq!(
        next,
        Err(ScopeError::Acquire(Failure::Error(SimError::Closed(
            Closed::RollbackFailed
        ))))
    );
    assert_eq!(db.committed("a"), None);

    // Through a pool: the closed connection is destroyed, the next
    // checkout gets a new one.
    let manager = SimManager {
        db: db.clone(),
        rt: env.rt.clone(),
        created: AtomicUsize::new(0),
    };
    let pool = Pool::builder(manager)
        .max_size(1)
        .build(&env.rt)
        .expect("a valid pool");
    db.faults(&[], &[], &[Fault::Err]);
    let failed = pool
        .checkout()
        .with(&env.rt, async |conn| {
            conn.transaction()
                .with(async |_| Err::<(), _>(SimError::Body("bad row")))
                .await
        })
        .await;
    assert!(failed.is_err());
    pool.checkout()
        .with(&env.rt, async |conn| {
            conn.get().await?.set("fresh", 1);
            Ok::<_, SimError>(())
        })
        .await
        .expect("a new connection");
    assert_eq!(pool.manager().created.load(Ordering::SeqCst), 2);
    assert_eq!(db.discarded(), 2);
    assert_clean(&db);
    pool.close(Duration::from_secs(5)).await.expect("closes");
    drain(&env).await;
}

/// The rollback of a cancelled scope fails, or hangs past the cleanup
/// timeout: the connection is closed (never used again), and the cleanup's
/// end is reported as an incident.
pub async fn cancelled_rollback_that_fails_or_hangs(env: Env) {
    for fault in [Fault::Err, Fault::Hang, Fault::Panic] {
        let (rt, incidents) =
            recording_runtime(Arc::clone(&env.binding), Duration::from_millis(300));
        let db = Db::default();
        let mut conn = TxConn::new(db.connect(), &rt);
        db.faults(&[], &[], &[fault]);
        let mut scope = Box::pin(conn.transaction().with(async |tx| {
            tx.get().await?.set("a", 1);
            pending::<()>().await;
            Ok::<_, SimError>(())
        }));
        assert!(poll_times(&mut scope, 6).await.is_none());
        drop(scope);
        let used = conn.get().await.map(|_| ());
        let expected = match fault {
            Fault::Err => Closed::RollbackFailed,
            _ => Closed::RollbackUnfinished,
        };
        assert_eq!(used, Err(SimError::Closed(expected)), "{fault:?}");
        let stats = rt.drain(Duration::from_secs(30)).await.expect("drains");
        assert_eq!((stats.spawned, stats.pending), (1, 0));
        let seen = incidents.take();
        let ok = match fault {
            Fault::Err => {
                matches!(&seen[..], [Incident::CleanupFailed { kind: CleanupKind::Rollback, error }] if error.contains("Failed(\"ROLLBACK\")"))
            }
            Fault::Hang => matches!(
                &seen[..],
                [Incident::CleanupTimedOut {
                    kind: CleanupKind::Rollback,
                    ..
                }]
            ),
            _ => {
                matches!(&seen[..], [Incident::CleanupPanicked { kind: CleanupKind::Rollback, message }] if message.contains("ROLLBACK panics"))
            }
        };
        assert!(ok, "{fault:?}: {seen:?}");
        assert_eq!(db.discarded(), 1, "{fault:?}");
        assert_clean(&db);
    }
}

/// Panics in the body, `begin`, `commit` and `rollback`: the body's panic
/// resumes after the rollback (the connection stays usable); a panicking
/// hook closes the connection; a rollback that panics after the body
/// panicked is reported, and the body's panic is the one that resumes.
pub async fn panics(env: Env) {
    let db = Db::default();
    let mut conn = conn(&env, &db);
    let panicked = std::panic::AssertUnwindSafe(conn.transaction().with(async |tx| {
        tx.get().await?.set("a", 1);
        panic!("probe: the body panics");
        #[allow(unreachable_code)]
        Ok::<_, SimError>(())
    }))
    .catch_unwind()
    .await
    .expect_err("the body's panic resumes");
    assert_eq!(panic_message(&*panicked), "probe: the body panics");
    assert_eq!(db.log(), ["BEGIN", "SET a=1", "ROLLBACK"]);
    assert_eq!(conn.state(), ConnState::Ready);

    // The body panics, then the rollback panics too.
    db.faults(&[], &[], &[Fault::Panic]);
    let panicked = std::panic::AssertUnwindSafe(conn.transaction().with(async |_| {
        panic!("probe: the body panics again");
        #[allow(unreachable_code)]
        Ok::<_, SimError>(())
    }))
    .catch_unwind()
    .await
    .expect_err("a panic resumes");
    assert_eq!(panic_message(&*panicked), "probe: the body panics again");
    assert_eq!(conn.state(), ConnState::Closed(Closed::Panicked));
    let seen = env.incidents.take();
    assert!(
        matches!(&seen[..], [Incident::ReleasePanickedDuringPanic { message }] if message.contains("ROLLBACK panics")),
        "{seen:?}"
    );

    // The body fails, then the rollback panics: the rollback's panic
    // resumes, the body's error reported as lost to it.
    let mut conn = TxConn::new(db.connect(), &env.rt);
    db.faults(&[], &[], &[Fault::Panic]);
    let panicked = std::panic::AssertUnwindSafe(
        conn.transaction()
            .with(async |_| Err::<(), _>(SimError::Body("bad row"))),
    )
    .catch_unwind()
    .await
    .expect_err("the rollback's panic resumes");
    assert_eq!(panic_message(&*panicked), "probe: ROLLBACK panics");
    let seen = env.incidents.take();
    assert!(
        matches!(&seen[..], [Incident::ErrorLostToPanic { error }] if error.contains("bad row")),
        "{seen:?}"
    );

    // `begin` and `commit` panic: the connection is closed (it may be
    // mid-statement), the panic resumes.
    for (begin, commit) in [(Fault::Panic, Fault::Ok), (Fault::Ok, Fault::Panic)] {
        let mut conn = TxConn::new(db.connect(), &env.rt);
        db.faults(&[begin], &[commit], &[]);
        let panicked =
            std::panic::AssertUnwindSafe(conn.transaction().with(async |_| Ok::<_, SimError>(())))
                .catch_unwind()
                .await
                .expect_err("the hook's panic resumes");
        assert!(panic_message(&*panicked).starts_with("probe: "));
        assert_eq!(conn.state(), ConnState::Closed(Closed::Panicked));
    }
    assert_eq!(db.discarded(), 4);
    assert_clean(&db);
    drain(&env).await;
}

/// `begin` or `commit` that hangs: the caller's scope waits (it is the
/// caller's to time out); dropped, its rollback runs as a cleanup and the
/// connection is usable again.
pub async fn hanging_begin_or_commit_is_cancellable(env: Env) {
    let db = Db::default();
    let mut conn = conn(&env, &db);
    for (begin, commit) in [(Fault::Hang, Fault::Ok), (Fault::Ok, Fault::Hang)] {
        db.faults(&[begin], &[commit], &[]);
        let mut scope = Box::pin(conn.transaction().with(async |tx| {
            tx.get().await?.set("a", 1);
            Ok::<_, SimError>(())
        }));
        assert!(poll_times(&mut scope, 10).await.is_none());
        drop(scope);
        let c = conn.get().await.expect("back after the rollback");
        assert_eq!(c.depth(), 0);
    }
    // The hanging commit had committed before it hung: the cleanup's
    // rollback found nothing open.
    assert_eq!(db.committed("a"), Some(1));
    assert_clean(&db);
    drain(&env).await;
}

/// Retries: a retryable `begin` or `commit` failure, or a body error the
/// predicate accepts, runs the transaction again (each attempt rolled back
/// first), up to the count; anything else is returned at once.
pub async fn retries(env: Env) {
    let db = Db::default();
    let mut conn = conn(&env, &db);
    let attempts = AtomicUsize::new(0);
    let body = async |tx: &mut TxConn<Sim>| {
        let n = attempts.fetch_add(1, Ordering::SeqCst);
        tx.get().await?.set("n", i64::try_from(n).unwrap());
        if n < 2 {
            return Err(SimError::Serialization("UPDATE"));
        }
        Ok::<_, SimError>(n)
    };
    let retried = conn
        .transaction()
        .retry(3, |error: &SimError| {
            matches!(error, SimError::Serialization(_))
        })
        .with(body)
        .await;
    assert_eq!(retried, Ok(2));
    assert_eq!(db.committed("n"), Some(2));
    assert_eq!(db.log().iter().filter(|s| *s == "ROLLBACK").count(), 2);

    // Out of retries: the last error.
    attempts.store(0, Ordering::SeqCst);
    let exhausted = conn
        .transaction()
        .retry(1, |error: &SimError| {
            matches!(error, SimError::Serialization(_))
        })
        .with(body)
        .await;
    assert!(matches!(
        exhausted,
        Err(ScopeError::Body {
            error: SimError::Serialization(_),
            ..
        })
    ));
    assert_eq!(attempts.load(Ordering::SeqCst), 2);

    // Without `retry`, never.
    attempts.store(0, Ordering::SeqCst);
    let once = conn.transaction().with(body).await;
    assert!(once.is_err());
    assert_eq!(attempts.load(Ordering::SeqCst), 1);

    // Retryable begin and commit failures; a plain failure is not retried.
    db.clear_log();
    db.faults(&[Fault::Retryable], &[Fault::Retryable], &[]);
    let ok = conn
        .transaction()
        .retry(2, |_: &SimError| false)
        .with(async |tx| {
            tx.get().await?.set("m", 1);
            Ok::<_, SimError>(())
        })
        .await;
    assert_eq!(ok, Ok(()));
    assert_eq!(
        db.log(),
        // The failed BEGIN opened nothing; the failed COMMIT is rolled back.
        ["BEGIN", "SET m=1", "ROLLBACK", "BEGIN", "SET m=1", "COMMIT"]
    );
    db.faults(&[Fault::Err], &[], &[]);
    let plain = conn
        .transaction()
        .retry(5, |_: &SimError| true)
        .with(async |_| Ok::<_, SimError>(()))
        .await;
    assert_eq!(
        plain,
        Err(ScopeError::Acquire(Failure::Error(SimError::Failed(
            "BEGIN"
        ))))
    );

    // A panicking predicate: the attempt was rolled back first, the panic
    // resumes.
    let panicked = std::panic::AssertUnwindSafe(
        conn.transaction()
            .retry(1, |_: &SimError| -> bool {
                panic!("probe: the predicate panics")
            })
            .with(async |tx| {
                tx.get().await?.set("p", 1);
                Err::<(), _>(SimError::Body("x"))
            }),
    )
    .catch_unwind()
    .await
    .expect_err("resumes");
    assert_eq!(panic_message(&*panicked), "probe: the predicate panics");
    assert_eq!(conn.depth(), 0);
    assert_eq!(db.committed("p"), None);
    assert_clean(&db);
}

/// A scope leaked with `mem::forget` leaves its level open: `reset` rolls
/// it back; a `TxConn` dropped with it open rolls it back as a cleanup.
pub async fn leaked_scope_is_rolled_back_by_reset_or_drop(env: Env) {
    let db = Db::default();
    let mut conn = conn(&env, &db);
    {
        let mut scope = Box::pin(conn.transaction().with(async |tx| {
            tx.get().await?.set("leaked", 1);
            pending::<()>().await;
            Ok::<_, SimError>(())
        }));
        for _ in 0..6 {
            assert!(futures::poll!(scope.as_mut()).is_pending());
        }
        std::mem::forget(scope);
    }
    assert_eq!(conn.depth(), 1);
    assert_eq!(db.sessions_in_tx(), 1);
    conn.reset().await.expect("rolls back");
    assert_eq!(conn.depth(), 0);
    assert_eq!(db.sessions_in_tx(), 0);
    // A clean connection's reset sends nothing.
    db.clear_log();
    conn.reset().await.expect("nothing to do");
    assert!(db.log().is_empty(), "{:?}", db.log());

    {
        let mut scope = Box::pin(conn.transaction().with(async |tx| {
            tx.get().await?.set("leaked", 2);
            pending::<()>().await;
            Ok::<_, SimError>(())
        }));
        for _ in 0..6 {
            assert!(futures::poll!(scope.as_mut()).is_pending());
        }
        std::mem::forget(scope);
    }
    drop(conn);
    let stats = drain(&env).await;
    assert_eq!((stats.spawned, stats.completed), (1, 1));
    assert_eq!(db.committed("leaked"), None);
    assert_clean(&db);
}

/// The owned `transaction` resource: commit after a completed body,
/// rollback told the exit after a failure, a panic and a cancellation (then
/// as a cleanup).
pub async fn owned_transaction_resource(env: Env) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let tx = || {
        let (b, c, r) = (Arc::clone(&log), Arc::clone(&log), Arc::clone(&log));
        transaction(
            move || async move {
                b.lock().unwrap().push("BEGIN".to_owned());
                Ok::<_, SimError>(5)
            },
            move |n| async move {
                c.lock().unwrap().push(format!("COMMIT {n}"));
                Ok(())
            },
            move |n, exit| async move {
                yield_now().await;
                r.lock().unwrap().push(format!("ROLLBACK {n} ({exit})"));
                Ok(())
            },
        )
    };
    let taken = |log: &Arc<Mutex<Vec<String>>>| std::mem::take(&mut *log.lock().unwrap());

    tx().with(&env.rt, async |n| Ok::<_, SimError>(*n))
        .await
        .expect("commits");
    assert_eq!(taken(&log), ["BEGIN", "COMMIT 5"]);
    let failed = tx()
        .with(&env.rt, async |_| Err::<(), _>(SimError::Body("no")))
        .await;
    assert!(failed.is_err());
    assert_eq!(taken(&log), ["BEGIN", "ROLLBACK 5 (failed)"]);
    let panicked = std::panic::AssertUnwindSafe(tx().with(&env.rt, async |_| {
        panic!("probe: the body panics");
        #[allow(unreachable_code)]
        Ok::<_, SimError>(())
    }))
    .catch_unwind()
    .await;
    assert!(panicked.is_err());
    assert_eq!(taken(&log), ["BEGIN", "ROLLBACK 5 (panicked)"]);
    let mut scope = Stepper::new(tx().with(&env.rt, async |_| {
        pending::<()>().await;
        Ok::<_, SimError>(())
    }));
    while log.lock().unwrap().is_empty() {
        assert!(matches!(scope.step().await, Polled::Pending));
    }
    drop(scope);
    drain(&env).await;
    assert_eq!(
        taken(&log),
        [
            "BEGIN".to_owned(),
            format!("ROLLBACK 5 ({})", ExitKind::Cancelled(Cancel::Dropped))
        ]
    );
}
