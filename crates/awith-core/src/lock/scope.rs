//! [`Lock`] and [`LockScope`]: taking a lock is a scope — try with backoff
//! and jitter up to a deadline, renew the lease while the body runs, cancel
//! the body if the lease is lost, give the lock back by token.

use std::fmt;
use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use super::backend::random_u64;
use super::lease::LeaseState;
use super::renew::Renewals;
use super::{Lease, LockBackend, LockBuilder, LockError, LostReason, OnLost, Token, Waiter};
use crate::error::{Failure, ScopeError};
use crate::exit::{Cancel, Exit};
use crate::resource::{Acquired, Released, Resource, ResourceExt};
use crate::rt::{CleanupError, CleanupKind, Runtime};
use crate::sync::{AtomicBool, Mutex};
use crate::tripwire::Tripwire;
use crate::util::OrTimeout;
use crate::verdict::Verdict;

/// A lock's settings and backend, shared by its clones, its scopes and
/// their renewal tasks.
pub(super) struct Shared<B> {
    pub(super) backend: B,
    pub(super) key: Arc<str>,
    pub(super) ttl: Duration,
    pub(super) wait: Option<Duration>,
    pub(super) backoff: (Duration, Duration),
    pub(super) on_lost: OnLost,
    pub(super) rt: Runtime,
    /// The held leases' renewal (one task for all of them).
    pub(super) renewals: Renewals,
}

/// A lock on one key of a [`LockBackend`], whose holding is a scope: see the
/// [module docs](super). Cheap to clone; clones are the same lock.
pub struct Lock<B> {
    pub(super) shared: Arc<Shared<B>>,
}

impl<B> Clone for Lock<B> {
    fn clone(&self) -> Self {
        Lock {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<B> fmt::Debug for Lock<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("key", &&*self.shared.key)
            .field("ttl", &self.shared.ttl)
            .field("wait", &self.shared.wait)
            .field("on_lost", &self.shared.on_lost)
            .finish_non_exhaustive()
    }
}

impl<B: LockBackend> Lock<B> {
    /// Starts configuring a lock on `key` of `backend`; [`build`](LockBuilder::build)
    /// checks the settings.
    pub fn builder(backend: B, key: impl Into<String>) -> LockBuilder<B> {
        LockBuilder::new(backend, key.into())
    }

    /// The lock's key.
    pub fn key(&self) -> &str {
        &self.shared.key
    }

    /// The lease's time to live.
    pub fn ttl(&self) -> Duration {
        self.shared.ttl
    }

    /// Runs `body` while holding the lock: takes it (waiting as configured),
    /// runs the body with the [`Lease`], and gives it back by token however
    /// the body ended. See the [module docs](super) for what a lost lease
    /// does.
    ///
    /// # Errors
    ///
    /// [`ScopeError::Acquire`] with [`LockError::Timeout`] when the lock was
    /// not taken in time (or another `LockError` when the backend failed);
    /// [`ScopeError::BodyCancelled`] with `Cancel::LockLost` when the lease
    /// was lost under [`OnLost::Cancel`]; the body's own error otherwise,
    /// with the release's failure beside it.
    pub async fn with<U, E, F>(&self, body: F) -> Result<U, ScopeError<E, LockError<B::Error>>>
    where
        F: AsyncFnOnce(&mut Lease) -> Result<U, E>,
        E: fmt::Debug,
    {
        self.scope().with(&self.shared.rt, body).await
    }

    /// Holding the lock as a [`Resource`], to compose (with
    /// [`zip`](ResourceExt::zip), [`and_then`](ResourceExt::and_then), an
    /// [`ExitStack`](crate::stack::ExitStack)): a lost lease cancels the
    /// whole body of the scope it is part of.
    ///
    /// # Cancellation
    ///
    /// Its acquire is cancel-safe: dropped while waiting, it leaves at once
    /// (a backend's queue too); dropped while a try is in flight, whose
    /// answer it will never see, the key is given back by token as a
    /// runtime cleanup (a no-op if the try did not take it).
    pub fn scope(&self) -> LockScope<B> {
        LockScope { lock: self.clone() }
    }
}

/// Holding a [`Lock`] as a [`Resource`]: made by [`Lock::scope`].
#[must_use = "a resource does nothing until used in a scope"]
#[derive(Debug)]
pub struct LockScope<B> {
    lock: Lock<B>,
}

/// What a held lock's release needs: the lock, and the tripwire the scope
/// races its body against.
pub struct LockReleaser<B> {
    shared: Arc<Shared<B>>,
    wire: Option<Tripwire>,
}

impl<B> fmt::Debug for LockReleaser<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockReleaser")
            .field("key", &&*self.shared.key)
            .finish_non_exhaustive()
    }
}

impl<E, B: LockBackend> Resource<E> for LockScope<B> {
    type Value = Lease;
    type Error = LockError<B::Error>;
    type Releaser = LockReleaser<B>;

    const CANCEL_SAFE_ACQUIRE: bool = true;

    fn acquire(self, _rt: &Runtime) -> impl Future<Output = Acquired<E, Self>> + Send + 'static {
        acquire(self.lock.shared).map(|acquired| acquired.map_err(Failure::Error))
    }

    fn release(
        releaser: LockReleaser<B>,
        lease: Lease,
        exit: &Exit<'_, E>,
        _rt: &Runtime,
    ) -> impl Future<Output = Released<E, Self>> + Send + 'static {
        let told_lost = matches!(exit, Exit::Cancelled(Cancel::LockLost));
        release(releaser, lease, told_lost).map(|released| match released {
            Ok(()) => Ok(Verdict::Propagate),
            Err(error) => Err(Failure::Error(error)),
        })
    }

    fn acquired_tripwire(releaser: &LockReleaser<B>) -> Option<Tripwire> {
        releaser.wire.clone()
    }
}

/// A try whose answer was not seen: the key is given back by token when
/// this is dropped armed (a cleanup task; a no-op if the try took nothing).
struct Undo<B: LockBackend> {
    shared: Arc<Shared<B>>,
    token: Token,
    armed: bool,
}

impl<B: LockBackend> Drop for Undo<B> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let shared = Arc::clone(&self.shared);
        let token = self.token.clone();
        let rt = &self.shared.rt;
        rt.spawn_cleanup(
            CleanupKind::Release,
            rt.cleanup_timeout(),
            Vec::new(),
            async move {
                match shared.backend.release(&shared.key, &token).await {
                    Ok(_) => Ok(()),
                    Err(error) => Err(CleanupError::Failed(format!(
                        "giving back lock `{}` after a cancelled try: {error}",
                        shared.key
                    ))),
                }
            },
        );
    }
}

/// The pause before the next try: `backoff` with jitter, in
/// `[backoff / 2, backoff]`.
fn jittered(backoff: Duration) -> Duration {
    let half = backoff / 2;
    let span = u64::try_from((backoff - half).as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(random_u64() % span.saturating_add(1))
}

async fn acquire<B: LockBackend>(
    shared: Arc<Shared<B>>,
) -> Result<(Lease, LockReleaser<B>), LockError<B::Error>> {
    let rt = shared.rt.clone();
    let key = || shared.key.to_string();
    let started = rt.now();
    let deadline = shared.wait.and_then(|wait| started.checked_add(wait));
    let token = Token::random();
    let mut waiter = shared.backend.waiter(&shared.key, &token);
    let mut undo = Undo {
        shared: Arc::clone(&shared),
        token: token.clone(),
        armed: false,
    };
    let mut backoff = shared.backoff.0;
    let fence = loop {
        // One try, bounded by what is left of the wait — but given at least
        // a second (or the time to live, if shorter) for its answer, so that
        // `wait(ZERO)`'s one try is a try — and never more than the time to
        // live: an answer later than that is of no use.
        let now = rt.now();
        let left = deadline.map_or(shared.ttl, |at| at.saturating_duration_since(now));
        let bound = left
            .max(shared.ttl.min(Duration::from_secs(1)))
            .min(shared.ttl);
        let tried_at = rt.now();
        undo.armed = true;
        let tried = OrTimeout::new(
            shared.backend.try_acquire(&shared.key, &token, shared.ttl),
            Some(rt.sleep(bound)),
        )
        .await;
        match tried {
            Some(Ok(Some(fence))) => break (fence, tried_at),
            Some(Ok(None)) => undo.armed = false,
            Some(Err(error)) => {
                // Its answer was seen: a try that failed took nothing we
                // could give back (had it landed with its reply lost, the
                // key frees itself after the time to live).
                undo.armed = false;
                return Err(LockError::Backend {
                    key: key(),
                    during: "acquire",
                    error,
                });
            }
            None => {
                // `undo` stays armed: the try may still land.
                return Err(LockError::Unanswered {
                    key: key(),
                    during: "acquire",
                    after: bound,
                });
            }
        }
        let now = rt.now();
        let Some(left) = (match deadline {
            Some(at) => (now < at).then(|| at - now),
            None => Some(Duration::MAX),
        }) else {
            return Err(LockError::Timeout {
                key: key(),
                wait: shared.wait.unwrap_or(Duration::MAX),
                waited: now.saturating_duration_since(started),
            });
        };
        // Wait for a release (the backend's hint) or the backoff, whichever
        // comes first, never past the deadline.
        let pause = jittered(backoff).min(left);
        let woken = poll_fn(|cx| waiter.poll_released(cx));
        let _ = OrTimeout::new(woken, Some(rt.sleep(pause))).await;
        backoff = (backoff * 2).min(shared.backoff.1);
    };
    let (fence, tried_at) = fence;
    drop(waiter);
    let state = Arc::new(LeaseState {
        id: shared.renewals.next_id(),
        key: Arc::clone(&shared.key),
        token,
        fence,
        rt: rt.clone(),
        expires: Mutex::new(tried_at + shared.ttl),
        lost: Mutex::new(None),
        wire: Tripwire::new(),
        due: Mutex::new(None),
        released: AtomicBool::new(false),
        last_error: Mutex::new(None),
    });
    if Renewals::add(&shared, &state, tried_at).is_err() {
        // `undo` stays armed until the key is given back here.
        let given_back = OrTimeout::new(
            shared.backend.release(&shared.key, &state.token),
            Some(rt.sleep(shared.ttl)),
        )
        .await;
        undo.armed = false;
        return Err(LockError::RuntimeShutDown {
            key: key(),
            given_back: matches!(given_back, Some(Ok(true))),
        });
    }
    undo.armed = false;
    let wire = (shared.on_lost == OnLost::Cancel).then(|| state.wire.clone());
    Ok((Lease { state }, LockReleaser { shared, wire }))
}

/// Gives the lock back by token, after stopping the renewal. A failure is
/// retried twice (a reconnect); what still fails is returned, never
/// dropped: the key then frees itself when the lease runs out.
async fn release<B: LockBackend>(
    releaser: LockReleaser<B>,
    lease: Lease,
    told_lost: bool,
) -> Result<(), LockError<B::Error>> {
    let LockReleaser { shared, .. } = releaser;
    let state = lease.state;
    shared.renewals.remove(&state);
    let rt = shared.rt.clone();
    let bound = shared.ttl.max(Duration::from_millis(100));
    let mut attempt = 0;
    loop {
        attempt += 1;
        let released = OrTimeout::new(
            shared.backend.release(&shared.key, &state.token),
            Some(rt.sleep(bound)),
        )
        .await;
        let failed = match released {
            // The loss was returned as the body's cancellation.
            Some(Ok(_)) if told_lost => return Ok(()),
            // Lost while the body ran on (`OnLost::Signal`, or not noticed
            // yet): the body's work was not covered to its end.
            Some(Ok(released)) => {
                return match (state.lost(), released) {
                    (None, true) => Ok(()),
                    (reason, _) => Err(LockError::Lost {
                        key: shared.key.to_string(),
                        reason: reason.unwrap_or(LostReason::GoneAtRelease),
                    }),
                };
            }
            Some(Err(error)) => LockError::Backend {
                key: shared.key.to_string(),
                during: "release",
                error,
            },
            None => LockError::Unanswered {
                key: shared.key.to_string(),
                during: "release",
                after: bound,
            },
        };
        if attempt >= 3 || rt.now() >= state.expires() {
            return Err(failed);
        }
        rt.sleep(jittered(shared.backoff.0)).await;
    }
}
