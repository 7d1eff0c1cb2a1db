//! [`Tripwire`]: a signal that cancels a scope's body from outside, with a
//! reason — how a lock whose lease is lost stops the body that relied on it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::exit::Cancel;
use crate::sync::{Mutex, lock};

/// A signal, tripped at most once with a [`Cancel`] reason, that a scope
/// races against its body: once tripped, the body is dropped (under that
/// reason, so scopes inside it see it too), the release is told
/// `Exit::Cancelled(reason)`, and the scope fails with
/// [`ScopeError::BodyCancelled`](crate::ScopeError::BodyCancelled).
///
/// A resource arms it through
/// [`Resource::acquired_tripwire`](crate::Resource::acquired_tripwire): a
/// [`Lock`](crate::lock::Lock) trips it with `Cancel::LockLost` when its
/// lease is lost. Clones share the signal.
///
/// ```
/// use std::task::{Context, Poll};
/// use awith::{Cancel, Tripwire};
///
/// let wire = Tripwire::new();
/// let seen = wire.clone();
/// assert_eq!(seen.tripped(), None);
/// wire.trip(Cancel::LockLost);
/// wire.trip(Cancel::Dropped); // the first reason stays
/// assert_eq!(seen.tripped(), Some(Cancel::LockLost));
/// let mut cx = Context::from_waker(std::task::Waker::noop());
/// assert_eq!(seen.poll_tripped(&mut cx), Poll::Ready(Cancel::LockLost));
/// ```
#[derive(Clone)]
pub struct Tripwire {
    wires: Wires,
}

#[derive(Clone)]
enum Wires {
    One(Arc<Wire>),
    Any(Arc<[Tripwire]>),
}

struct Wire {
    state: Mutex<WireState>,
}

struct WireState {
    tripped: Option<Cancel>,
    wakers: Vec<Waker>,
}

impl Tripwire {
    /// A tripwire not yet tripped.
    pub fn new() -> Self {
        Tripwire {
            wires: Wires::One(Arc::new(Wire {
                state: Mutex::new(WireState {
                    tripped: None,
                    wakers: Vec::new(),
                }),
            })),
        }
    }

    /// Trips it with `reason` (a tripwire already tripped keeps its first
    /// reason), and wakes whoever waits on it.
    pub fn trip(&self, reason: Cancel) {
        match &self.wires {
            Wires::One(wire) => {
                let wakers = {
                    let mut state = lock(&wire.state);
                    if state.tripped.is_some() {
                        return;
                    }
                    state.tripped = Some(reason);
                    std::mem::take(&mut state.wakers)
                };
                // Woken outside the lock: a waker is user code.
                wakers.into_iter().for_each(Waker::wake);
            }
            Wires::Any(all) => all.iter().for_each(|wire| wire.trip(reason)),
        }
    }

    /// The reason it was tripped with, if it was.
    pub fn tripped(&self) -> Option<Cancel> {
        match &self.wires {
            Wires::One(wire) => lock(&wire.state).tripped,
            Wires::Any(all) => all.iter().find_map(Tripwire::tripped),
        }
    }

    /// `Ready(reason)` once tripped; otherwise `cx`'s waker is woken when it
    /// is.
    pub fn poll_tripped(&self, cx: &mut Context<'_>) -> Poll<Cancel> {
        match &self.wires {
            Wires::One(wire) => {
                let mut state = lock(&wire.state);
                if let Some(reason) = state.tripped {
                    return Poll::Ready(reason);
                }
                // One waker per task: a body polled again re-registers the
                // same one.
                if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    state.wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
            Wires::Any(all) => {
                for wire in all.iter() {
                    if let Poll::Ready(reason) = wire.poll_tripped(cx) {
                        return Poll::Ready(reason);
                    }
                }
                Poll::Pending
            }
        }
    }

    /// A future that ends with the reason once tripped.
    pub fn wait(&self) -> Tripped {
        Tripped { wire: self.clone() }
    }

    /// One tripwire for both: tripped when either is (the combined
    /// resources of [`zip`](crate::ResourceExt::zip) and
    /// [`and_then`](crate::ResourceExt::and_then) forward both parts').
    pub fn either(a: Option<Tripwire>, b: Option<Tripwire>) -> Option<Tripwire> {
        match (a, b) {
            (None, wire) | (wire, None) => wire,
            (Some(a), Some(b)) => Some(Tripwire {
                wires: Wires::Any(Arc::from([a, b])),
            }),
        }
    }
}

impl Default for Tripwire {
    fn default() -> Self {
        Tripwire::new()
    }
}

impl fmt::Debug for Tripwire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tripwire")
            .field("tripped", &self.tripped())
            .finish()
    }
}

/// The future of [`Tripwire::wait`]: ends with the reason once tripped.
#[must_use = "futures do nothing unless you `.await` or poll them"]
#[derive(Debug)]
pub struct Tripped {
    wire: Tripwire,
}

impl Future for Tripped {
    type Output = Cancel;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Cancel> {
        self.wire.poll_tripped(cx)
    }
}
