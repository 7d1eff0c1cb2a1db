//! What an [`ExitStack`](super::ExitStack) holds: entered resources and
//! pushed exits, each exited once, told the [`Exit`] of the failures in
//! flight.

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use crate::error::Failure;
use crate::exit::Exit;
use crate::resource::Resource;
use crate::rt::Runtime;
use crate::verdict::ReleaseVerdict;

/// A boxed exit future: `Ok(true)` when it suppresses the failures in
/// flight.
pub(super) type ExitFuture<E> = Pin<Box<dyn Future<Output = Result<bool, E>> + Send + 'static>>;

/// One entry: an entered resource (with its value) or a pushed exit.
pub(super) trait Entry<E>: Send {
    /// The entered value, for [`ExitStack::get`](super::ExitStack::get).
    fn value(&self) -> Option<&(dyn Any + Send)>;

    /// The entered value, for [`ExitStack::get_mut`](super::ExitStack::get_mut).
    fn value_mut(&mut self) -> Option<&mut (dyn Any + Send)>;

    /// Starts the exit, told `exit` (lent only for this call).
    fn exit(self: Box<Self>, exit: &Exit<'_, Failure<E>>, rt: &Runtime) -> ExitFuture<E>;
}

/// An entered resource.
pub(super) struct Entered<R: Resource<Failure<E>>, E> {
    pub(super) value: R::Value,
    pub(super) releaser: R::Releaser,
    /// Whether the stack honours a release's `Verdict::Suppress` (a stack
    /// whose verdict type is `Verdict`).
    pub(super) may_suppress: bool,
    pub(super) resource: PhantomData<fn(R, &E)>,
}

impl<R, E> Entry<E> for Entered<R, E>
where
    R: Resource<Failure<E>> + 'static,
    E: From<Failure<R::Error>> + Send + 'static,
{
    fn value(&self) -> Option<&(dyn Any + Send)> {
        Some(&self.value)
    }

    fn value_mut(&mut self) -> Option<&mut (dyn Any + Send)> {
        Some(&mut self.value)
    }

    fn exit(self: Box<Self>, exit: &Exit<'_, Failure<E>>, rt: &Runtime) -> ExitFuture<E> {
        let Entered {
            value,
            releaser,
            may_suppress,
            ..
        } = *self;
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
pub(super) struct Callback<F>(pub(super) F);

impl<E, F, Fut, V> Entry<E> for Callback<F>
where
    F: FnOnce(&Exit<'_, Failure<E>>) -> Fut + Send,
    Fut: Future<Output = Result<V, E>> + Send + 'static,
    V: ReleaseVerdict,
{
    fn value(&self) -> Option<&(dyn Any + Send)> {
        None
    }

    fn value_mut(&mut self) -> Option<&mut (dyn Any + Send)> {
        None
    }

    fn exit(self: Box<Self>, exit: &Exit<'_, Failure<E>>, _rt: &Runtime) -> ExitFuture<E> {
        let exit = (self.0)(exit);
        Box::pin(async move { exit.await.map(|verdict| verdict.suppresses()) })
    }
}
