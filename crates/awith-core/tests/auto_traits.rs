//! Send / Sync / Unpin of the public types, asserted at compile time (the
//! way futures-rs' `tests/auto_traits.rs` does): a change that loses one of
//! them fails to compile here.
#![allow(missing_docs)]

use awith_core::reference::{Reference, ReferenceBinding, Stalled};
use awith_core::rt::{
    CleanupKind, CleanupStats, ConfigError, Drain, DrainError, Incident, RuntimeBuilder, SpawnError,
};
use awith_core::stack::{ExitStack, Key};
use awith_core::{Cancel, Elapsed, Exit, ExitKind, Failure, Runtime, ScopeError, Verdict};

fn send<T: Send>() {}
fn sync<T: Sync>() {}
fn unpin<T: Unpin>() {}
fn send_sync_unpin<T: Send + Sync + Unpin>() {}

#[test]
fn public_types() {
    send_sync_unpin::<Runtime>();
    send_sync_unpin::<Reference>();
    send_sync_unpin::<ReferenceBinding>();
    send_sync_unpin::<Exit<'static, std::io::Error>>();
    send_sync_unpin::<ExitKind>();
    send_sync_unpin::<Cancel>();
    send_sync_unpin::<Verdict>();
    send_sync_unpin::<ScopeError<std::io::Error, String>>();
    send_sync_unpin::<Failure<String>>();
    send_sync_unpin::<Elapsed>();
    send_sync_unpin::<Key<String>>();
    // A stack owns boxed exits that are `Send`, not `Sync`.
    send::<ExitStack<std::io::Error>>();
    unpin::<ExitStack<std::io::Error>>();
    send_sync_unpin::<CleanupStats>();
    send_sync_unpin::<CleanupKind>();
    send_sync_unpin::<Incident>();
    send_sync_unpin::<DrainError>();
    send_sync_unpin::<ConfigError>();
    send_sync_unpin::<Stalled>();
    // A spawn error carries the refused task back, and still goes into
    // `Box<dyn Error + Send + Sync>`.
    send_sync_unpin::<SpawnError>();
    send::<RuntimeBuilder>();
    sync::<RuntimeBuilder>();
    // A drain borrows its runtime and owns a boxed timer.
    send::<Drain<'static>>();
    unpin::<Drain<'static>>();
}

/// A body error that can travel between threads but not be shared (it holds
/// a `Cell`, like an error holding a boxed `Send` future does).
#[derive(Debug)]
struct SendOnly(#[allow(dead_code)] std::cell::Cell<u8>);

impl From<Failure<String>> for SendOnly {
    fn from(_: Failure<String>) -> Self {
        SendOnly(0.into())
    }
}

fn send_value<T: Send>(_: &T) {}

/// A scope's future is `Send` when its body's error is `Send`, even if it is
/// not `Sync`: the release is told about the error, but the scope does not
/// hold a reference to it across an await.
#[test]
fn scopes_need_only_a_send_error() {
    use awith_core::group::TaskGroup;
    use awith_core::{ResourceExt, resource};

    let reference = Reference::new();
    let rt = reference.runtime();
    let connection = || {
        resource(
            || async { Ok::<_, String>(7u8) },
            |_, _| async { Ok::<_, String>(()) },
        )
    };
    let scope = connection().with(&rt, async |n| {
        Err::<u8, _>(SendOnly(std::cell::Cell::new(*n)))
    });
    send_value(&scope);
    let stack = ExitStack::<SendOnly>::with(&rt, async |stack| {
        let key = stack.enter(connection()).await?;
        Err::<u8, _>(SendOnly(stack[key].into()))
    });
    send_value(&stack);
    let group = TaskGroup::<SendOnly>::with(&rt, async |group| {
        drop(group.spawn(async { Err::<(), _>(SendOnly(1.into())) }));
        Ok(())
    });
    send_value(&group);
    let gathered = awith_core::gather([async { Err::<u8, _>(SendOnly(2.into())) }]);
    send_value(&gathered);
    // They run, too.
    assert!(reference.block_on(scope).unwrap().is_err());
    assert!(reference.block_on(stack).unwrap().is_err());
    assert!(reference.block_on(group).unwrap().is_err());
    assert!(reference.block_on(gathered).unwrap().is_err());
}
