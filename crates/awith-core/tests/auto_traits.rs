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
    // A spawn error carries the refused task back: it can travel, not be shared.
    send::<SpawnError>();
    unpin::<SpawnError>();
    send::<RuntimeBuilder>();
    sync::<RuntimeBuilder>();
    // A drain borrows its runtime and owns a boxed timer.
    send::<Drain<'static>>();
    unpin::<Drain<'static>>();
}
