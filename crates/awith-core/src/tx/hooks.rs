//! [`transaction`]: a transaction as a [`Resource`], from begin, commit and
//! rollback functions.

use std::fmt;
use std::future::Future;

use futures::future::Either;

use crate::error::Failure;
use crate::exit::{Exit, ExitKind};
use crate::resource::{Acquired, Released, Resource};
use crate::rt::Runtime;
use crate::verdict::Verdict;

/// A transaction as a [`Resource`] that owns what it runs on: `begin` makes
/// the value (a connection in a transaction, a handle), and the release
/// **commits** it after a completed body and **rolls it back** after every
/// other exit — a failed body, a panic, a timeout or a cancellation (then as
/// a runtime cleanup, like every release of a cancelled scope). `rollback`
/// is told which ([`ExitKind`]).
///
/// A failed commit is the scope's error ([`ScopeError::Release`]); the
/// release never suppresses, so nothing — not
/// [`with_suppression`](crate::ResourceExt::with_suppression), not an
/// enclosing resource's verdict on the body's error — turns a failed commit
/// into success or a failed body into a commit.
///
/// For a transaction on a connection the scope *borrows* (the shape `pool →
/// conn → conn.transaction()`), with savepoints for nesting, use
/// [`TxConn::transaction`](super::TxConn::transaction).
///
/// [`ScopeError::Release`]: crate::ScopeError::Release
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use awith::ResourceExt;
/// use awith::tx::transaction;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rt = awith::runtime()?;
/// let log = Arc::new(Mutex::new(Vec::new()));
/// let tx = |log: Arc<Mutex<Vec<String>>>| {
///     let (c, r) = (log.clone(), log.clone());
///     transaction(
///         move || async move { log.lock().unwrap().push("BEGIN".to_owned()); Ok::<_, std::io::Error>(()) },
///         move |()| async move { c.lock().unwrap().push("COMMIT".to_owned()); Ok(()) },
///         move |(), exit| async move { r.lock().unwrap().push(format!("ROLLBACK ({exit})")); Ok(()) },
///     )
/// };
/// tx(log.clone()).with(&rt, async |()| Ok::<_, std::io::Error>(())).await?;
/// let failed = tx(log.clone())
///     .with(&rt, async |()| Err::<(), _>(std::io::Error::other("no funds")))
///     .await;
/// assert!(failed.is_err());
/// assert_eq!(
///     *log.lock().unwrap(),
///     ["BEGIN", "COMMIT", "BEGIN", "ROLLBACK (failed)"]
/// );
/// # Ok(())
/// # }
/// ```
pub fn transaction<B, BF, T, Er, C, CF, R, RF>(begin: B, commit: C, rollback: R) -> Hooks<B, C, R>
where
    B: FnOnce() -> BF,
    BF: Future<Output = Result<T, Er>> + Send + 'static,
    C: FnOnce(T) -> CF + Send + 'static,
    CF: Future<Output = Result<(), Er>> + Send + 'static,
    R: FnOnce(T, ExitKind) -> RF + Send + 'static,
    RF: Future<Output = Result<(), Er>> + Send + 'static,
    T: Send + 'static,
    Er: fmt::Debug + Send + 'static,
{
    Hooks {
        begin,
        commit,
        rollback,
    }
}

/// A transaction made by [`transaction`].
#[derive(Clone)]
pub struct Hooks<B, C, R> {
    begin: B,
    commit: C,
    rollback: R,
}

impl<B, C, R> fmt::Debug for Hooks<B, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks").finish_non_exhaustive()
    }
}

impl<E, B, BF, T, Er, C, CF, R, RF> Resource<E> for Hooks<B, C, R>
where
    B: FnOnce() -> BF,
    BF: Future<Output = Result<T, Er>> + Send + 'static,
    C: FnOnce(T) -> CF + Send + 'static,
    CF: Future<Output = Result<(), Er>> + Send + 'static,
    R: FnOnce(T, ExitKind) -> RF + Send + 'static,
    RF: Future<Output = Result<(), Er>> + Send + 'static,
    T: Send + 'static,
    Er: fmt::Debug + Send + 'static,
{
    type Value = T;
    type Error = Er;
    type Releaser = (C, R);

    fn acquire(self, _rt: &Runtime) -> impl Future<Output = Acquired<E, Self>> + Send + 'static {
        let begun = (self.begin)();
        let ends = (self.commit, self.rollback);
        async move {
            match begun.await {
                Ok(value) => Ok((value, ends)),
                Err(error) => Err(Failure::Error(error)),
            }
        }
    }

    fn release(
        (commit, rollback): (C, R),
        value: T,
        exit: &Exit<'_, E>,
        _rt: &Runtime,
    ) -> impl Future<Output = Released<E, Self>> + Send + 'static {
        let ended = match exit.kind() {
            ExitKind::Completed => Either::Left(commit(value)),
            other => Either::Right(rollback(value, other)),
        };
        async move {
            match ended.await {
                Ok(()) => Ok(Verdict::Propagate),
                Err(error) => Err(Failure::Error(error)),
            }
        }
    }
}
