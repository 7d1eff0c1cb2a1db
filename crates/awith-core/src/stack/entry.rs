//! What an [`ExitStack`](super::ExitStack) holds: entered resources and
//! pushed exits, each exited once, told the [`Exit`] of the failures in
//! flight.

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project::pin_project;

use crate::error::Failure;
use crate::exit::Exit;
use crate::resource::Resource;
use crate::rt::Runtime;
use crate::verdict::ReleaseVerdict;

/// A boxed exit future: `Ok(true)` when it suppresses the failures in
/// flight.
pub(super) type ExitFuture<E> = Pin<Box<dyn Future<Output = Result<bool, E>> + Send + 'static>>;

/// One entry: an entered resource (with its value) or a pushed exit. Held
/// pinned (`Pin<Box<dyn Entry<E>>>`): a resource's entry is the very
/// allocation its acquire ran in, so an entered resource costs one
/// allocation for its acquire and value, and one for its exit.
pub(super) trait Entry<E>: Send {
    /// The entered value, for [`ExitStack::get`](super::ExitStack::get).
    fn value(&self) -> Option<&(dyn Any + Send)>;

    /// The entered value, for [`ExitStack::get_mut`](super::ExitStack::get_mut).
    fn value_mut(self: Pin<&mut Self>) -> Option<&mut (dyn Any + Send)>;

    /// Starts the exit, told `exit` (lent only for this call). Called once;
    /// the entry holds nothing of the user's afterwards.
    fn exit(self: Pin<&mut Self>, exit: &Exit<'_, Failure<E>>, rt: &Runtime) -> ExitFuture<E>;
}

/// A resource's entry: its acquire in flight, then its value and releaser.
/// The acquire runs in place on the heap (dropped half-way, the allocation
/// is handed to the runtime to finish it), and the value then takes its place.
#[pin_project(project = EnteredProj)]
pub(super) enum Entered<R: Resource<Failure<E>>, E, AF> {
    Acquiring(#[pin] AF),
    Held {
        held: Option<(R::Value, R::Releaser)>,
        /// Whether the stack honours a release's `Verdict::Suppress` (a
        /// stack whose verdict type is `Verdict`).
        may_suppress: bool,
        resource: PhantomData<fn(R, &E)>,
    },
    /// The acquire has finished; the value is not held here (yet, or any
    /// more).
    Empty,
}

impl<R, E, AF> Entered<R, E, AF>
where
    R: Resource<Failure<E>>,
    AF: Future,
{
    /// Polls the acquire in flight.
    pub(super) fn poll_acquire(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<AF::Output> {
        match self.project() {
            EnteredProj::Acquiring(acquire) => acquire.poll(cx),
            _ => unreachable!("only an acquiring entry is polled for the acquire"),
        }
    }
}

impl<R, E, AF> Entry<E> for Entered<R, E, AF>
where
    R: Resource<Failure<E>> + 'static,
    E: From<Failure<R::Error>> + Send + 'static,
    AF: Send,
{
    fn value(&self) -> Option<&(dyn Any + Send)> {
        match self {
            Entered::Held {
                held: Some((value, _)),
                ..
            } => Some(value),
            _ => None,
        }
    }

    fn value_mut(self: Pin<&mut Self>) -> Option<&mut (dyn Any + Send)> {
        match self.project() {
            EnteredProj::Held {
                held: Some((value, _)),
                ..
            } => Some(value),
            _ => None,
        }
    }

    fn exit(self: Pin<&mut Self>, exit: &Exit<'_, Failure<E>>, rt: &Runtime) -> ExitFuture<E> {
        let EnteredProj::Held {
            held, may_suppress, ..
        } = self.project()
        else {
            unreachable!("only a held entry is exited")
        };
        let may_suppress = *may_suppress;
        let Some((value, releaser)) = held.take() else {
            unreachable!("an entry is exited once")
        };
        let release = R::release(releaser, value, exit, rt);
        Box::pin(async move {
            match release.await {
                Ok(verdict) => Ok(may_suppress && verdict.suppresses()),
                Err(failure) => Err(E::from(failure)),
            }
        })
    }
}

/// A pushed exit, told the exit.
pub(super) struct Callback<F>(pub(super) Option<F>);

// The callback is never pinned: it is moved out to be called.
impl<F> Unpin for Callback<F> {}

impl<E, F, Fut, V> Entry<E> for Callback<F>
where
    F: FnOnce(&Exit<'_, Failure<E>>) -> Fut + Send,
    Fut: Future<Output = Result<V, E>> + Send + 'static,
    V: ReleaseVerdict,
{
    fn value(&self) -> Option<&(dyn Any + Send)> {
        None
    }

    fn value_mut(self: Pin<&mut Self>) -> Option<&mut (dyn Any + Send)> {
        None
    }

    fn exit(self: Pin<&mut Self>, exit: &Exit<'_, Failure<E>>, _rt: &Runtime) -> ExitFuture<E> {
        // A callback is never pinned in place: only its box is.
        let Some(callback) = Pin::into_inner(self).0.take() else {
            unreachable!("an entry is exited once")
        };
        let exit = callback(exit);
        Box::pin(async move { exit.await.map(|verdict| verdict.suppresses()) })
    }
}
