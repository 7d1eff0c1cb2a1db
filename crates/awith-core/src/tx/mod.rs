//! Transactions whose end is a scope's: commit after a completed body, roll
//! back after everything else — an error, a panic, a cancellation.
//!
//! Two shapes, as in the source's `transfer_funds`:
//!
//! - [`transaction`]: a [`Resource`](crate::Resource) from begin, commit and
//!   rollback functions, for a transaction that *owns* what it runs on. It
//!   composes like every resource (`pool.checkout().and_then(..)`); when its
//!   scope is cancelled, the rollback runs as a runtime cleanup.
//! - [`TxConn::transaction`]: a transaction scope on a connection the scope
//!   *borrows* — `pool → conn → conn.transaction()`. A [`TxConn`] keeps the
//!   books of the scopes run on it, and a scope inside another's body is a
//!   savepoint. The connection implements [`Transact`] (`awith-sqlx` does it
//!   for sqlx's SQLite and PostgreSQL connections).
//!
//! # A transaction on a borrowed connection
//!
//! A scope's release must be able to outlive the scope (a cancelled scope's
//! release runs as a runtime task), so an ordinary resource cannot borrow
//! the connection it runs on. Dropping a transaction on a borrowed
//! connection cannot run its rollback either — there is no async drop — and
//! leaving the rollback for "the next use" (what sqlx's `Transaction` does
//! on drop) lets that next use come much later, from a pool's next user, or
//! not at all (a cancelled `begin` has left pooled connections inside open
//! transactions: sqlx issues #3932, #4385).
//!
//! So a [`TxConn`] owns the connection, and a transaction scope borrows the
//! `TxConn`:
//!
//! 1. **Books before statements.** The scope counts its level open *before*
//!    its `begin` is sent, and ends it only after its `commit` or
//!    `rollback` returned. Dropped anywhere in between — during `begin`,
//!    the body or `commit` — it knows it owes a rollback.
//! 2. **The rollback starts at once.** The dropped scope takes the
//!    connection out of the `TxConn` and hands it, with the rollback of its
//!    level (`ROLLBACK`, or `ROLLBACK TO SAVEPOINT`), to the runtime as a
//!    tracked cleanup ([`CleanupKind::Rollback`], bounded by the runtime's
//!    cleanup timeout, waited for by [`Runtime::drain`]). The `TxConn` keeps
//!    only the promise of the connection's return.
//! 3. **Nothing reaches the connection before it is back.** Statements go
//!    through [`TxConn::get`], and every scope begins with
//!    [`TxConn::settle`]: both wait for the return first. So the body that
//!    cancelled an inner scope, its enclosing scope's commit, and a pool's
//!    next user (whose manager [resets](TxConn::reset) the connection) all
//!    find it in the state the rollback left: in no transaction, or in the
//!    enclosing one.
//! 4. **A rollback that did not finish closes the connection.** It failed,
//!    panicked or overran its timeout: the connection is
//!    [discarded](Transact::discard) — closed, never given back to a pool —
//!    and every later use fails with [`Transact::closed`]. The database ends
//!    the transaction with the session.
//!
//! Several scopes dropped at once (an inner savepoint and its enclosing
//! transaction) chain: each cleanup waits for the connection to come back
//! from the one before. A level that an outer scope already rolled back is
//! not rolled back again.
//!
//! [`CleanupKind::Rollback`]: crate::rt::CleanupKind::Rollback
//! [`Runtime::drain`]: crate::Runtime::drain
//!
//! # Cancellation
//!
//! | dropped while | what happens |
//! |---|---|
//! | waiting for an earlier scope's rollback | nothing is owed yet: the wait is dropped, the rollback goes on |
//! | beginning | the level is owed: a cleanup rolls it back (a no-op if the database had not begun) |
//! | in the body | the body is dropped (its inner scopes first), then a cleanup rolls the level back |
//! | committing | a cleanup rolls back: the transaction is either committed or undone, and the connection is in no transaction |
//! | rolling back | the cleanup rolls back again |
//!
//! `mem::forget` on a scope skips all of this; a [`TxConn`] dropped with
//! levels still open, or [reset](TxConn::reset), rolls them back.

mod conn;
mod hooks;
mod scope;
mod transact;

pub use conn::{ConnState, TxConn};
pub use hooks::{Hooks, transaction};
pub use scope::{RetryIf, Retrying, Transaction};
pub use transact::{Closed, Level, Transact};
