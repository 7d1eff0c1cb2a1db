//! Auto traits: a scope whose parts are `Send` is `Send` (it can be spawned);
//! a scope with a non-`Send` body is not, and still runs on the thread that
//! blocks on it.
//!
//! That such a scope is *not* `Send` is a compile-time fact; this example
//! must fail to compile, with the error "cannot be sent between threads":
//!
//! ```compile_fail,E0277
//! use std::rc::Rc;
//! use awith::{resource, ResourceExt};
//!
//! fn assert_send<T: Send>(_: T) {}
//!
//! let rt = awith::reference::Reference::new().runtime();
//! let conn = resource(|| async { Ok::<_, ()>(1) }, |_, _| async { Ok(()) });
//! assert_send(conn.with(&rt, async |n| {
//!     let local = Rc::new(*n);
//!     futures::future::ready(()).await;
//!     Ok::<_, ()>(*local)
//! }));
//! ```
//!
//! and the same with an `Arc` compiles:
//!
//! ```
//! use std::sync::Arc;
//! use awith::{resource, ResourceExt};
//!
//! fn assert_send<T: Send>(_: T) {}
//!
//! let rt = awith::reference::Reference::new().runtime();
//! let conn = resource(|| async { Ok::<_, ()>(1) }, |_, _| async { Ok(()) });
//! assert_send(conn.with(&rt, async |n| {
//!     let shared = Arc::new(*n);
//!     futures::future::ready(()).await;
//!     Ok::<_, ()>(*shared)
//! }));
//! ```

use std::cell::Cell;
use std::rc::Rc;

use awith::ResourceExt;
use futures::channel::oneshot;

use crate::probe::{self, Log, Plan, Probe, yield_now};
use awith::test::Env;

fn assert_send<T: Send>(_: &T) {}

/// A scope whose resource and body are `Send` is a `Send` future: it is
/// spawned on the runtime (on a multi-thread runtime, it may move between
/// workers at every await).
pub async fn send_scope_is_spawnable(env: Env) {
    let log = Log::new();
    let plan = Plan::ok(3);
    let rt = env.rt.clone();
    let probe = Probe::new(&log, plan, &env.rt);
    let scope = async move {
        probe
            .with(&rt, async move |conn| probe::body(conn, plan).await)
            .await
    };
    assert_send(&scope);
    let (tx, rx) = oneshot::channel();
    env.rt
        .spawn(async move {
            let _ = tx.send(scope.await);
        })
        .expect("spawn");
    assert_eq!(rx.await.expect("the scope ran"), Ok(42));
    assert_eq!(log.check_released_once().unwrap().len(), 1);
}

/// A body that holds an `Rc` across an await makes the scope `!Send` (the
/// compile-fail example in the crate docs proves that half); it still runs
/// where it is awaited (the runtime's `block_on` thread).
pub async fn non_send_body_runs(env: Env) {
    let log = Log::new();
    let plan = Plan::ok(2);
    let counter = Rc::new(Cell::new(0));
    let probe = Probe::new(&log, plan, &env.rt);
    let scope = probe.with(&env.rt, async |conn| {
        let local = Rc::clone(&counter);
        yield_now().await;
        local.set(local.get() + 1);
        probe::body(conn, plan).await
    });
    assert_eq!(scope.await, Ok(42));
    assert_eq!(counter.get(), 1);
    assert_eq!(log.check_released_once().unwrap().len(), 1);
}
