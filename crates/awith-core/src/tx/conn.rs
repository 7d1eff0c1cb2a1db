//! [`TxConn`]: a connection that keeps the books of the transaction scopes
//! run on it, and pays what a cancelled one owes before anything else uses
//! it.

use std::fmt;
use std::mem;

use futures::channel::oneshot;

use super::transact::{Closed, Level, Transact};
use crate::rt::{CleanupError, CleanupKind, Runtime};
use crate::util::Panic;

/// A connection with its transactions' books: how many transaction scopes
/// are open on it, and whether the rollback of a cancelled one is still
/// under way.
///
/// Run a transaction on it with [`transaction`](Self::transaction); a
/// transaction scope inside another's body becomes a savepoint. Statements
/// reach the connection through [`get`](Self::get), which first waits for
/// what a cancelled scope owes it.
///
/// # Cancellation
///
/// A transaction scope that is dropped with its transaction open takes the
/// connection out of the `TxConn` and hands it, with its rollback, to the
/// runtime as a tracked cleanup ([`CleanupKind::Rollback`]): the rollback
/// starts at once, not at some later use. Until it has ended, the `TxConn`
/// holds only the promise of the connection's return; [`get`](Self::get),
/// the next transaction scope and [`settle`](Self::settle) wait for it. So
/// no later statement — later in the same body, or by the next user of a
/// pooled connection — runs inside the abandoned transaction.
///
/// A rollback that fails, panics or overruns the runtime's cleanup timeout
/// gets the connection [discarded](Transact::discard): every later use
/// fails with [`Transact::closed`], and a pool's manager destroys it.
///
/// Dropping a `TxConn` whose scopes were leaked with `mem::forget` (the
/// only way it can be dropped with levels open) rolls them back the same
/// way.
pub struct TxConn<C: Transact> {
    slot: Slot<C>,
    depth: usize,
    rt: Runtime,
}

/// Where the connection is.
enum Slot<C> {
    Here(C),
    /// With a cleanup that rolls back a cancelled scope's transaction; it
    /// comes back on the channel, or the reason it was closed does.
    Away(oneshot::Receiver<Result<C, Closed>>),
    Closed(Closed),
}

/// What a [`TxConn`] is doing, from [`TxConn::state`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnState {
    /// The connection is here, ready for statements.
    Ready,
    /// A cleanup is rolling back a cancelled scope's transaction on it.
    RollingBack,
    /// It was closed, and why.
    Closed(Closed),
}

impl<C: Transact> TxConn<C> {
    /// Keeps the books of `conn`, which is in no transaction. Rollbacks of
    /// cancelled scopes run on `rt`.
    pub fn new(conn: C, rt: &Runtime) -> Self {
        TxConn {
            slot: Slot::Here(conn),
            depth: 0,
            rt: rt.clone(),
        }
    }

    /// How many transaction scopes are open on it: 0 outside any, 1 in a
    /// transaction, more in savepoints.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Whether the connection is ready, being rolled back, or closed.
    pub fn state(&mut self) -> ConnState {
        self.poll_return();
        match &self.slot {
            Slot::Here(_) => ConnState::Ready,
            Slot::Away(_) => ConnState::RollingBack,
            Slot::Closed(why) => ConnState::Closed(*why),
        }
    }

    /// The runtime the rollbacks of cancelled scopes run on.
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    /// Waits for what cancelled scopes owe the connection — their rollbacks
    /// — and lends it. Fails with [`Transact::closed`] if a rollback did not
    /// finish and the connection was closed.
    ///
    /// Cancel-safe: dropped while waiting, it leaves the rollback under way
    /// and the books as they were.
    pub async fn settle(&mut self) -> Result<&mut C, C::Error> {
        if let Slot::Away(coming) = &mut self.slot {
            self.slot = match coming.await {
                Ok(Ok(conn)) => Slot::Here(conn),
                Ok(Err(why)) => Slot::Closed(why),
                Err(oneshot::Canceled) => Slot::Closed(Closed::RollbackUnfinished),
            };
        }
        match &mut self.slot {
            Slot::Here(conn) => Ok(conn),
            Slot::Closed(why) => Err(C::closed(why)),
            Slot::Away(_) => unreachable!("a returned connection is here"),
        }
    }

    /// The connection, to run statements on, once what cancelled scopes
    /// owe it is paid (see [`settle`](Self::settle)).
    ///
    /// ```
    /// # use awith::tx::{Closed, Level, Transact, TxConn};
    /// # struct Logged(Vec<String>);
    /// # impl Transact for Logged {
    /// #     type Error = std::io::Error;
    /// #     type Options = ();
    /// #     type Target = Vec<String>;
    /// #     fn target(&mut self) -> &mut Vec<String> { &mut self.0 }
    /// #     async fn begin(&mut self, _: Level, (): ()) -> Result<(), Self::Error> { self.0.push("BEGIN".into()); Ok(()) }
    /// #     async fn commit(&mut self, _: Level) -> Result<(), Self::Error> { self.0.push("COMMIT".into()); Ok(()) }
    /// #     async fn rollback(&mut self, _: Level) -> Result<(), Self::Error> { self.0.push("ROLLBACK".into()); Ok(()) }
    /// #     fn closed(why: &Closed) -> Self::Error { std::io::Error::other(why.to_string()) }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = awith::runtime()?;
    /// let mut conn = TxConn::new(Logged(Vec::new()), &rt);
    /// conn.transaction()
    ///     .with(async |tx| {
    ///         tx.get().await?.push("UPDATE".into());
    ///         Ok::<_, std::io::Error>(())
    ///     })
    ///     .await?;
    /// assert_eq!(conn.get().await?.join("; "), "BEGIN; UPDATE; COMMIT");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get(&mut self) -> Result<&mut C::Target, C::Error> {
        Ok(self.settle().await?.target())
    }

    /// Settles the connection (see [`settle`](Self::settle)), then rolls
    /// back every level still open — only scopes leaked with `mem::forget`
    /// leave any — so that it is in no transaction. What a pool's manager
    /// runs before it takes a connection back. A rollback that fails gets
    /// the connection closed.
    pub async fn reset(&mut self) -> Result<(), C::Error> {
        self.settle().await?;
        if self.depth > 0 {
            match self.rollback_to(1).await {
                Ok(()) => {}
                Err(Undone::Failed(error)) => return Err(error),
                Err(Undone::Panicked(panic)) => std::panic::resume_unwind(panic),
            }
        }
        Ok(())
    }

    /// The connection, once [reset](Self::reset).
    pub async fn into_inner(mut self) -> Result<C, C::Error> {
        self.reset().await?;
        match mem::replace(&mut self.slot, Slot::Closed(Closed::RollbackUnfinished)) {
            Slot::Here(conn) => Ok(conn),
            Slot::Closed(why) => Err(C::closed(&why)),
            Slot::Away(_) => unreachable!("a reset connection is here"),
        }
    }

    /// Takes a returned connection in, if the cleanup has ended.
    fn poll_return(&mut self) {
        if let Slot::Away(coming) = &mut self.slot {
            match coming.try_recv() {
                Ok(None) => {}
                Ok(Some(Ok(conn))) => self.slot = Slot::Here(conn),
                Ok(Some(Err(why))) => self.slot = Slot::Closed(why),
                Err(oneshot::Canceled) => self.slot = Slot::Closed(Closed::RollbackUnfinished),
            }
        }
    }

    /// Whether it was closed.
    pub(super) fn is_closed(&self) -> bool {
        matches!(self.slot, Slot::Closed(_))
    }

    /// The connection, when it is here (settled).
    pub(super) fn here(&mut self) -> Option<&mut C> {
        match &mut self.slot {
            Slot::Here(conn) => Some(conn),
            _ => None,
        }
    }

    /// Opens the next level and returns it (its depth).
    pub(super) fn open(&mut self) -> usize {
        self.depth += 1;
        self.depth
    }

    /// `depth` (and every level inside it) has ended.
    pub(super) fn ended(&mut self, depth: usize) {
        self.depth = self.depth.min(depth.saturating_sub(1));
    }

    /// Lets go of the connection for good: discards it, and every later use
    /// fails with `why`.
    pub(super) fn close(&mut self, why: Closed) {
        self.depth = 0;
        if let Slot::Here(conn) = mem::replace(&mut self.slot, Slot::Closed(why)) {
            conn.discard();
        }
    }

    /// Rolls back `depth` and every level inside it, on the settled
    /// connection, here and now. A failure or a panic closes the connection
    /// and is returned.
    pub(super) async fn rollback_to(&mut self, depth: usize) -> Result<(), Undone<C::Error>> {
        use futures::FutureExt;
        let conn = self.settle().await.map_err(Undone::Failed)?;
        let rolled = std::panic::AssertUnwindSafe(conn.rollback(Level::at(depth)))
            .catch_unwind()
            .await;
        match rolled {
            Ok(Ok(())) => {
                self.ended(depth);
                Ok(())
            }
            Ok(Err(error)) => {
                self.close(Closed::RollbackFailed);
                Err(Undone::Failed(error))
            }
            Err(panic) => {
                self.close(Closed::Panicked);
                Err(Undone::Panicked(panic))
            }
        }
    }

    /// A scope at `depth` was cancelled with its level open: hands the
    /// connection and the rollback of `depth` (and every level inside it)
    /// to a cleanup task at once. Levels an outer scope already gave up are
    /// left alone, whichever scope drops first.
    pub(super) fn abandon(&mut self, depth: usize) {
        if depth == 0 || depth > self.depth {
            return;
        }
        self.depth = depth - 1;
        let level = Level::at(depth);
        let (back, coming) = oneshot::channel();
        let before = match mem::replace(&mut self.slot, Slot::Away(coming)) {
            Slot::Here(conn) => Before::Here(conn),
            Slot::Away(earlier) => Before::Away(earlier),
            Slot::Closed(why) => {
                self.slot = Slot::Closed(why);
                return;
            }
        };
        let rt = &self.rt;
        rt.spawn_cleanup(
            CleanupKind::Rollback,
            rt.cleanup_timeout(),
            Vec::new(),
            async move {
                let conn = match before {
                    Before::Here(conn) => conn,
                    Before::Away(earlier) => match earlier.await {
                        Ok(Ok(conn)) => conn,
                        Ok(Err(why)) => {
                            let _ = back.send(Err(why));
                            return Ok(());
                        }
                        Err(oneshot::Canceled) => {
                            let _ = back.send(Err(Closed::RollbackUnfinished));
                            return Ok(());
                        }
                    },
                };
                // Discarded if this cleanup ends any other way than by
                // giving it back: a failure, a panic, its timeout.
                let mut conn = Discard(Some(conn));
                let rolled = match conn.0.as_mut() {
                    Some(conn) => conn.rollback(level).await,
                    None => unreachable!("the connection is in the guard"),
                };
                match rolled {
                    Ok(()) => {
                        if let Some(conn) = conn.0.take() {
                            // A `TxConn` that is gone drops it: it is in no
                            // transaction now.
                            let _ = back.send(Ok(conn));
                        }
                        Ok(())
                    }
                    Err(error) => {
                        drop(conn);
                        let _ = back.send(Err(Closed::RollbackFailed));
                        Err(CleanupError::Failed(format!(
                            "rolling back {level} of a cancelled transaction scope: {error:?}; \
                             the connection was closed"
                        )))
                    }
                }
            },
        );
    }
}

/// Why a rollback did not happen; the connection is closed after either.
pub(super) enum Undone<E> {
    Failed(E),
    Panicked(Panic),
}

/// The connection a rollback cleanup starts from.
enum Before<C> {
    Here(C),
    Away(oneshot::Receiver<Result<C, Closed>>),
}

/// Discards the connection it holds when dropped.
struct Discard<C: Transact>(Option<C>);

impl<C: Transact> Drop for Discard<C> {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            conn.discard();
        }
    }
}

impl<C: Transact> Drop for TxConn<C> {
    fn drop(&mut self) {
        // Only scopes leaked with `mem::forget` leave levels open here.
        self.abandon(1);
    }
}

impl<C: Transact> fmt::Debug for TxConn<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.slot {
            Slot::Here(_) => ConnState::Ready,
            Slot::Away(_) => ConnState::RollingBack,
            Slot::Closed(why) => ConnState::Closed(*why),
        };
        f.debug_struct("TxConn")
            .field("depth", &self.depth)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
