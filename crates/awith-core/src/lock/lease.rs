//! [`Lease`]: what the body of a lock scope holds — the key, the fencing
//! token, the time left, and a way to learn that the lease was lost.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::{LostReason, Token};
use crate::exit::Cancel;
use crate::rt::Runtime;
use crate::sync::{AtomicBool, Mutex, Ordering, lock};
use crate::tripwire::{Tripped, Tripwire};

/// The state of one held lease, shared by the body's [`Lease`], the
/// renewal task and the release.
pub(super) struct LeaseState {
    /// Its number among the lock's leases (its place in the renewals).
    pub(super) id: u64,
    pub(super) key: Arc<str>,
    pub(super) token: Token,
    pub(super) fence: u64,
    pub(super) rt: Runtime,
    /// When the lease runs out unless extended, by this process's clock:
    /// counted from before each request, so never later than the
    /// backend's own expiry.
    pub(super) expires: Mutex<Instant>,
    pub(super) lost: Mutex<Option<LostReason>>,
    /// Tripped (with `Cancel::LockLost`) when the lease is lost.
    pub(super) wire: Tripwire,
    /// When it is next due for renewal (`None` while an extension is in
    /// flight, or once given back).
    pub(super) due: Mutex<Option<Instant>>,
    /// Set when the release starts: the renewal lets go of it.
    pub(super) released: AtomicBool,
    /// The last extension's failure, until one succeeds.
    pub(super) last_error: Mutex<Option<String>>,
}

impl LeaseState {
    pub(super) fn take_last_error(&self) -> Option<String> {
        lock(&self.last_error).take()
    }

    pub(super) fn set_last_error(&self, error: Option<String>) {
        *lock(&self.last_error) = error;
    }

    /// Marks the lease lost (the first reason stays) and trips the wire —
    /// unless it is being given back.
    pub(super) fn lose(&self, reason: LostReason) {
        if self.released.load(Ordering::SeqCst) {
            return;
        }
        {
            let mut lost = lock(&self.lost);
            if lost.is_some() {
                return;
            }
            *lost = Some(reason);
        }
        self.wire.trip(Cancel::LockLost);
    }

    pub(super) fn lost(&self) -> Option<LostReason> {
        lock(&self.lost).clone()
    }

    pub(super) fn expires(&self) -> Instant {
        *lock(&self.expires)
    }
}

/// The lease a [`Lock`](super::Lock) scope's body holds: which lock, its
/// fencing token, how long it has left, and whether it was lost.
///
/// The **fencing token** is what makes the lock safe against a holder that
/// was paused (a GC pause, a stopped process, a slow network) past its
/// lease: each holder of a key gets a larger one than every holder before,
/// so a store that remembers the largest token it has seen can refuse a
/// write that carries a smaller one — the late holder's write.
pub struct Lease {
    pub(super) state: Arc<LeaseState>,
}

impl Lease {
    /// The lock's key.
    pub fn key(&self) -> &str {
        &self.state.key
    }

    /// The fencing token: strictly larger than every earlier holder's of
    /// this key.
    pub fn fence(&self) -> u64 {
        self.state.fence
    }

    /// The token that holds the key in the backend.
    pub fn token(&self) -> &Token {
        &self.state.token
    }

    /// How long the lease has left unless renewed (zero once lost). The
    /// scope renews it every `ttl / 3`.
    pub fn time_left(&self) -> Duration {
        if self.state.lost().is_some() {
            return Duration::ZERO;
        }
        self.state
            .expires()
            .saturating_duration_since(self.state.rt.now())
    }

    /// `true` once the lease is lost — reported by the renewal, or run out
    /// by the clock even if the renewal has not run yet (a paused process).
    pub fn is_lost(&self) -> bool {
        self.state.lost().is_some() || self.state.rt.now() >= self.state.expires()
    }

    /// How the lease was lost, once the renewal has found out.
    pub fn lost_reason(&self) -> Option<LostReason> {
        self.state.lost()
    }

    /// A future that ends, with how, when the lease is lost — for a body
    /// that races its work against the loss itself (under
    /// [`OnLost::Signal`](super::OnLost::Signal)). It never ends while the
    /// lease is held.
    pub fn lost(&self) -> Lost {
        Lost {
            state: Arc::clone(&self.state),
            tripped: self.state.wire.wait(),
        }
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("key", &self.key())
            .field("fence", &self.fence())
            .field("time_left", &self.time_left())
            .field("lost", &self.lost_reason())
            .finish_non_exhaustive()
    }
}

/// The future of [`Lease::lost`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Lost {
    state: Arc<LeaseState>,
    tripped: Tripped,
}

impl fmt::Debug for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lost")
            .field("key", &&*self.state.key)
            .finish_non_exhaustive()
    }
}

impl Future for Lost {
    type Output = LostReason;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<LostReason> {
        match Pin::new(&mut self.tripped).poll(cx) {
            Poll::Ready(_) => Poll::Ready(
                self.state
                    .lost()
                    .unwrap_or(LostReason::Expired { last_error: None }),
            ),
            Poll::Pending => Poll::Pending,
        }
    }
}
