//! [`Transact`]: what a connection does to begin, commit and roll back;
//! [`Level`], which transaction a call is about; [`Closed`], why a
//! connection was let go.

use std::fmt;
use std::future::Future;

/// A connection that can run transactions: the begin, commit and rollback
/// statements of a database, for a [`TxConn`](super::TxConn) to call.
///
/// Each call names its [`Level`]: the transaction itself, or a savepoint of
/// a transaction scope nested inside another. The books — how many levels
/// are open, what a cancelled scope still owes — are kept by the `TxConn`,
/// never by the implementation.
///
/// Every method is user code to awith: it may fail, panic or hang. A
/// rollback that fails (or panics, or overruns a cancelled scope's cleanup
/// timeout) gets the connection [discarded](Self::discard): it is never
/// used again, nor given back to a pool.
///
/// # Examples
///
/// A connection that writes its statements to a log:
///
/// ```
/// use std::future::Future;
/// use awith::tx::{Closed, Level, Transact};
///
/// struct Logged(Vec<String>);
///
/// impl Transact for Logged {
///     type Error = std::io::Error;
///     type Options = ();
///     type Target = Vec<String>;
///
///     fn target(&mut self) -> &mut Vec<String> {
///         &mut self.0
///     }
///
///     fn begin(&mut self, level: Level, (): ()) -> impl Future<Output = Result<(), Self::Error>> + Send + '_ {
///         self.0.push(match level {
///             Level::Transaction => "BEGIN".to_owned(),
///             Level::Savepoint(n) => format!("SAVEPOINT sp{n}"),
///         });
///         async { Ok(()) }
///     }
///
///     fn commit(&mut self, level: Level) -> impl Future<Output = Result<(), Self::Error>> + Send + '_ {
///         self.0.push(match level {
///             Level::Transaction => "COMMIT".to_owned(),
///             Level::Savepoint(n) => format!("RELEASE sp{n}"),
///         });
///         async { Ok(()) }
///     }
///
///     fn rollback(&mut self, level: Level) -> impl Future<Output = Result<(), Self::Error>> + Send + '_ {
///         self.0.push(match level {
///             Level::Transaction => "ROLLBACK".to_owned(),
///             Level::Savepoint(n) => format!("ROLLBACK TO sp{n}"),
///         });
///         async { Ok(()) }
///     }
///
///     fn closed(why: &Closed) -> Self::Error {
///         std::io::Error::new(std::io::ErrorKind::NotConnected, why.to_string())
///     }
/// }
/// ```
pub trait Transact: Send + Sized + 'static {
    /// What beginning, committing or rolling back can fail with.
    type Error: fmt::Debug + Send + 'static;

    /// How a transaction begins (an isolation level, read-only, SQLite's
    /// `IMMEDIATE`); `Default` for a plain `BEGIN`.
    type Options: fmt::Debug + Clone + Default + Send + Sync + 'static;

    /// What the statements of a body run on: [`TxConn::get`] lends it, once
    /// whatever a cancelled scope owed the connection is paid.
    ///
    /// [`TxConn::get`]: super::TxConn::get
    type Target: ?Sized;

    /// The connection to run statements on.
    fn target(&mut self) -> &mut Self::Target;

    /// Begins `level`: `BEGIN` (with `options`) for
    /// [`Level::Transaction`], `SAVEPOINT` for a [`Level::Savepoint`]. A
    /// savepoint has no options of its own: an implementation refuses
    /// options it cannot honour there with an error.
    ///
    /// A begin that returns an error has opened nothing: the scope fails
    /// without rolling back. (A begin that is *dropped* may have, and is
    /// rolled back.)
    fn begin(
        &mut self,
        level: Level,
        options: Self::Options,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + '_;

    /// Commits `level`: `COMMIT`, or `RELEASE SAVEPOINT`.
    fn commit(&mut self, level: Level)
    -> impl Future<Output = Result<(), Self::Error>> + Send + '_;

    /// Rolls back `level`: `ROLLBACK`, or `ROLLBACK TO SAVEPOINT` and then
    /// `RELEASE SAVEPOINT` (the enclosing transaction goes on).
    ///
    /// It must succeed when the transaction is not open after all: a scope
    /// cancelled during its `begin`, or whose `commit` failed, rolls back
    /// without knowing whether the database started (or already ended) the
    /// transaction. (A savepoint that is gone cannot always be told apart
    /// from an error: PostgreSQL fails `ROLLBACK TO` a released savepoint
    /// and aborts the enclosing transaction. Then the rollback fails and
    /// the connection is closed — only a scope dropped while its `RELEASE`
    /// was answering gets there.)
    fn rollback(
        &mut self,
        level: Level,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + '_;

    /// Whether a failure of `begin` or `commit` is worth retrying the whole
    /// transaction for (a serialization failure, a busy database), in a
    /// transaction scope that asked for [retries](super::Transaction::retry).
    /// The default says no.
    fn is_retryable(error: &Self::Error) -> bool {
        let _ = error;
        false
    }

    /// The error for a use of a connection that was closed, and why.
    fn closed(why: &Closed) -> Self::Error;

    /// Lets go of a connection whose rollback did not finish: close it so
    /// that it is never used again (the database then ends its transaction
    /// with the session). The default drops it; a connection that would go
    /// back to a pool when dropped must be closed instead.
    fn discard(self) {
        drop(self);
    }
}

/// Which transaction a [`Transact`] call is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// The transaction itself: the outermost scope.
    Transaction,
    /// A savepoint: the `n`th scope nested inside the transaction, counting
    /// from 1. Scopes nested at the same depth one after another reuse the
    /// number (each has ended before the next begins).
    Savepoint(usize),
}

impl Level {
    /// The level of a scope at `depth` open levels (1: the transaction).
    pub(crate) fn at(depth: usize) -> Level {
        match depth {
            0 | 1 => Level::Transaction,
            n => Level::Savepoint(n - 1),
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Level::Transaction => f.write_str("the transaction"),
            Level::Savepoint(n) => write!(f, "savepoint {n}"),
        }
    }
}

/// Why a [`TxConn`](super::TxConn) let go of its connection: it was
/// [discarded](Transact::discard), and every later use fails with
/// [`Transact::closed`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// A rollback failed; its error was returned by the scope that ran it,
    /// or reported as an [`Incident`](crate::rt::Incident) when a cleanup
    /// ran it.
    RollbackFailed,
    /// The rollback of a cancelled scope did not finish: it overran the
    /// runtime's cleanup timeout, panicked, or the runtime refused the
    /// cleanup (reported as an [`Incident`](crate::rt::Incident)).
    RollbackUnfinished,
    /// A begin, commit or rollback panicked (the panic was resumed to the
    /// scope's caller).
    Panicked,
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Closed::RollbackFailed => "the connection was closed: a rollback on it failed",
            Closed::RollbackUnfinished => {
                "the connection was closed: the rollback of a cancelled transaction did not finish"
            }
            Closed::Panicked => {
                "the connection was closed: a begin, commit or rollback on it panicked"
            }
        })
    }
}

impl std::error::Error for Closed {}
