//! [`Transaction`]: a transaction scope on a borrowed [`TxConn`].

use std::fmt;
use std::panic::{AssertUnwindSafe, resume_unwind};

use futures::FutureExt;

use super::conn::{TxConn, Undone};
use super::transact::{Closed, Level, Transact};
use crate::error::{Failure, ScopeError};
use crate::rt::Incident;

impl<C: Transact> TxConn<C> {
    /// A transaction scope on this connection, which it borrows: begin,
    /// then the body, then commit if the body returned `Ok`, roll back
    /// otherwise. Inside another transaction scope's body it is a
    /// savepoint: a failure rolls back to it, and the enclosing transaction
    /// goes on.
    ///
    /// See [`Transaction::with`] for what happens on each outcome.
    pub fn transaction(&mut self) -> Transaction<'_, C> {
        Transaction {
            conn: self,
            options: C::Options::default(),
        }
    }
}

/// A transaction scope on a borrowed connection, made by
/// [`TxConn::transaction`]: set its options (and [retries](Self::retry)),
/// then run it with [`with`](Self::with).
#[must_use = "a transaction scope does nothing until it is run with `with`"]
pub struct Transaction<'c, C: Transact> {
    conn: &'c mut TxConn<C>,
    options: C::Options,
}

/// A transaction scope that runs again after a failure worth retrying,
/// made by [`Transaction::retry`].
#[must_use = "a transaction scope does nothing until it is run with `with`"]
pub struct Retrying<'c, C: Transact, P> {
    conn: &'c mut TxConn<C>,
    options: C::Options,
    retries: u32,
    retry_if: P,
}

/// Which body errors a [`Retrying`] transaction scope retries:
/// implemented for `FnMut(&E) -> bool`.
pub trait RetryIf<E> {
    /// Whether the body's `error` is worth running the transaction again.
    fn retry_if(&mut self, error: &E) -> bool;
}

impl<E, F: FnMut(&E) -> bool> RetryIf<E> for F {
    fn retry_if(&mut self, error: &E) -> bool {
        self(error)
    }
}

impl<'c, C: Transact> Transaction<'c, C> {
    /// How the transaction begins (isolation, read-only, `IMMEDIATE`: what
    /// the connection's [`Transact::Options`] offer). A savepoint has no
    /// options: a nested scope given some fails to begin, with the
    /// connection's own error.
    pub fn options(mut self, options: C::Options) -> Self {
        self.options = options;
        self
    }

    /// Runs the whole transaction again, up to `retries` more times, when it
    /// failed in a way worth retrying: `begin` or `commit` failed with an
    /// error [`Transact::is_retryable`] accepts (a serialization failure, a
    /// busy database), or the body failed with an error `retry_if` accepts.
    /// The failed attempt is rolled back first; a connection closed by then
    /// is not retried on. The last attempt's error is returned.
    ///
    /// The body runs once per attempt: each attempt runs a clone of it, so
    /// it is `Clone` (an async closure is, when what it captures is).
    /// `retry_if` is user code: a panic in it is resumed to the caller,
    /// after the rollback.
    pub fn retry<P>(self, retries: u32, retry_if: P) -> Retrying<'c, C, P> {
        Retrying {
            conn: self.conn,
            options: self.options,
            retries,
            retry_if,
        }
    }

    /// Runs the scope: begin (a savepoint inside another scope's body),
    /// then `body` with the connection, then:
    ///
    /// | the body | then | the scope returns |
    /// |---|---|---|
    /// | returned `Ok(value)` | commit (release the savepoint) | `Ok(value)`; or `Err(`[`ScopeError::Release`]`)` if the commit failed — after a rollback, so that nothing stays open |
    /// | returned `Err(error)` | roll back (to the savepoint) | `Err(`[`ScopeError::Body`]`)`, the rollback's failure beside the error |
    /// | panicked | roll back | the panic resumes (a failed rollback is reported as an [`Incident`]) |
    /// | was dropped (cancelled) | the rollback runs as a cleanup, at once (see [`TxConn`], "Cancellation") | — |
    ///
    /// A failed `begin` is [`ScopeError::Acquire`]. A commit failure is
    /// always the scope's error: nothing turns it into success. A rollback
    /// that fails closes the connection.
    ///
    /// Dropped during `commit`, the scope cannot know whether the database
    /// committed: the cleanup's rollback then finds nothing open, or undoes
    /// the transaction, and either way the connection is in no transaction.
    pub async fn with<T, E, F>(self, body: F) -> Result<T, ScopeError<E, C::Error>>
    where
        F: AsyncFnOnce(&mut TxConn<C>) -> Result<T, E>,
        E: fmt::Debug,
    {
        attempt(self.conn, self.options, body).await
    }
}

impl<C: Transact, P> Retrying<'_, C, P> {
    /// How the transaction begins (see [`Transaction::options`]).
    pub fn options(mut self, options: C::Options) -> Self {
        self.options = options;
        self
    }

    /// Runs the scope as [`Transaction::with`] does, each attempt with a
    /// clone of `body`, until one ends in a way not worth retrying or the
    /// retries are used up.
    pub async fn with<T, E, F>(self, body: F) -> Result<T, ScopeError<E, C::Error>>
    where
        F: AsyncFnOnce(&mut TxConn<C>) -> Result<T, E> + Clone,
        E: fmt::Debug,
        P: RetryIf<E>,
    {
        let Retrying {
            conn,
            options,
            mut retries,
            mut retry_if,
        } = self;
        loop {
            let error = match attempt(conn, options.clone(), body.clone()).await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            if retries == 0 || conn.is_closed() {
                return Err(error);
            }
            let again = match &error {
                ScopeError::Acquire(Failure::Error(error))
                | ScopeError::Release(Failure::Error(error)) => C::is_retryable(error),
                ScopeError::Body {
                    error,
                    release: None,
                } => retry_if.retry_if(error),
                _ => false,
            };
            if !again {
                return Err(error);
            }
            retries -= 1;
        }
    }
}

/// One begin, body and commit or rollback.
async fn attempt<C, T, E, F>(
    conn: &mut TxConn<C>,
    options: C::Options,
    body: F,
) -> Result<T, ScopeError<E, C::Error>>
where
    C: Transact,
    F: AsyncFnOnce(&mut TxConn<C>) -> Result<T, E>,
    E: fmt::Debug,
{
    // What an earlier, cancelled scope owes goes first.
    if let Err(error) = conn.settle().await {
        return Err(ScopeError::Acquire(Failure::Error(error)));
    }
    // The level is on the books before `begin` starts: dropped from here
    // on, the scope rolls it back, whether the database began or not.
    let depth = conn.open();
    let level = Level::at(depth);
    let open = Open { conn, depth };
    let begun = match open.conn.here() {
        Some(here) => {
            AssertUnwindSafe(here.begin(level, options))
                .catch_unwind()
                .await
        }
        None => unreachable!("a settled connection is here"),
    };
    match begun {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            // A failed begin opened nothing (the trait's contract).
            open.conn.ended(depth);
            return Err(ScopeError::Acquire(Failure::Error(error)));
        }
        Err(panic) => {
            open.conn.close(Closed::Panicked);
            resume_unwind(panic)
        }
    }

    let ran = AssertUnwindSafe(body(&mut *open.conn)).catch_unwind().await;
    match ran {
        Ok(Ok(value)) => {
            // An inner scope the body cancelled may still be rolling back.
            let committed = match open.conn.settle().await {
                Err(closed) => return Err(ScopeError::Release(Failure::Error(closed))),
                Ok(here) => AssertUnwindSafe(here.commit(level)).catch_unwind().await,
            };
            match committed {
                Ok(Ok(())) => {
                    open.conn.ended(depth);
                    Ok(value)
                }
                Ok(Err(error)) => {
                    // A failed commit may leave the level open (SQLite's
                    // busy `COMMIT` does): roll it back.
                    Err(ScopeError::Release(
                        rolled_back(open.conn, depth, Failure::Error(error)).await,
                    ))
                }
                Err(panic) => {
                    open.conn.close(Closed::Panicked);
                    resume_unwind(panic)
                }
            }
        }
        Ok(Err(error)) => match open.conn.rollback_to(depth).await {
            Ok(()) => Err(ScopeError::Body {
                error,
                release: None,
            }),
            Err(Undone::Failed(failed)) => Err(ScopeError::Body {
                error,
                release: Some(Failure::Error(failed)),
            }),
            Err(Undone::Panicked(panic)) => {
                lost_to_panic(open.conn, &error);
                resume_unwind(panic)
            }
        },
        Err(panic) => {
            // The body's panic resumes; what the rollback did is reported.
            match open.conn.rollback_to(depth).await {
                Ok(()) => {}
                Err(Undone::Failed(error)) => {
                    open.conn
                        .runtime()
                        .report(Incident::ReleaseFailedDuringPanic {
                            error: format!("{error:?}"),
                        });
                }
                Err(Undone::Panicked(second)) => {
                    open.conn
                        .runtime()
                        .report(Incident::ReleasePanickedDuringPanic {
                            message: crate::util::panic_message(&second),
                        });
                }
            }
            resume_unwind(panic)
        }
    }
}

/// Rolls back `depth` after `failure`: the failure, with the rollback's
/// beside it if that failed too. A panicking rollback resumes, `failure`
/// reported as lost to it.
async fn rolled_back<C: Transact>(
    conn: &mut TxConn<C>,
    depth: usize,
    failure: Failure<C::Error>,
) -> Failure<C::Error> {
    match conn.rollback_to(depth).await {
        Ok(()) => failure,
        Err(Undone::Failed(error)) => Failure::Many(vec![failure, Failure::Error(error)]),
        Err(Undone::Panicked(panic)) => {
            lost_to_panic(conn, &failure);
            resume_unwind(panic)
        }
    }
}

/// Reports `error`, which a panic resuming instead cannot return.
fn lost_to_panic<C: Transact>(conn: &TxConn<C>, error: &impl fmt::Debug) {
    conn.runtime().report(Incident::ErrorLostToPanic {
        error: format!("{error:?}"),
    });
}

/// An open level: dropped before it ended — the scope was cancelled — it
/// has the connection roll it back (a no-op once it has ended).
struct Open<'c, C: Transact> {
    conn: &'c mut TxConn<C>,
    depth: usize,
}

impl<C: Transact> Drop for Open<'_, C> {
    fn drop(&mut self) {
        self.conn.abandon(self.depth);
    }
}

impl<C: Transact> fmt::Debug for Transaction<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("conn", &self.conn)
            .field("options", &self.options)
            .finish()
    }
}

impl<C: Transact, P> fmt::Debug for Retrying<'_, C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retrying")
            .field("conn", &self.conn)
            .field("options", &self.options)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}
