//! Time: acquire, body and release deadlines, free-standing timeouts, nested
//! deadlines, zero and huge durations. On the reference runtime's virtual
//! clock the times are exact; on real runtimes the units are milliseconds and
//! the bounds generous.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use awith::{Cancel, Elapsed, ExitKind, Failure, ResourceExt, ScopeError};

use super::drain;
use crate::probe::{Event, Log, Plan, Probe, ProbeError, yield_now};
use awith::test::Env;

/// The time unit: a second on the virtual clock, 20 ms on a real one.
fn unit(env: &Env) -> Duration {
    if env.virtual_time {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(20)
    }
}

/// Asserts that `took` is `want` exactly (virtual clock) or at least `want`
/// and far below `ceiling` (real clocks).
fn took(env: &Env, took: Duration, want: Duration, ceiling: Duration) {
    if env.virtual_time {
        assert_eq!(took, want);
    } else {
        assert!(took >= want, "took {took:?}, expected at least {want:?}");
        assert!(
            took < ceiling,
            "took {took:?}, expected well under {ceiling:?}"
        );
    }
}

/// Two resources that each take a unit to acquire, zipped, are both acquired
/// after one unit, not two: the acquires overlap.
pub async fn zip_acquires_concurrently(env: Env) {
    let u = unit(&env);
    let log = Log::new();
    let slow = Plan {
        acquire_sleep: Some(u),
        ..Plan::ok(0)
    };
    let start = env.rt.now();
    let acquired_at = Probe::new(&log, slow, &env.rt)
        .zip(Probe::new(&log, slow, &env.rt))
        .with(&env.rt, async |_| Ok::<_, ProbeError>(env.rt.now()))
        .await
        .unwrap();
    took(&env, acquired_at - start, u, u * 50);
    let events = log.events();
    let first_acquired = events
        .iter()
        .position(|e| matches!(e, Event::Acquired(_)))
        .unwrap();
    assert_eq!(
        events[..first_acquired]
            .iter()
            .filter(|e| **e == Event::AcquireStart)
            .count(),
        2,
        "both acquires started before either finished: {events:?}"
    );
}

/// A 5-unit body deadline around a 10-unit body fires at 5 units: the body
/// is dropped — a scope inside it is told `Cancelled(Timeout)` and released
/// first —, the release is told `Cancelled(Timeout)`, and the scope fails
/// with `BodyTimeout`.
pub async fn body_timeout_fires(env: Env) {
    let u = unit(&env);
    let log = Log::new();
    let start = env.rt.now();
    let result = Probe::new(&log, Plan::ok(1), &env.rt)
        .body_timeout(u * 5)
        .with(&env.rt, async |_| {
            Probe::new(&log, Plan::ok(1), &env.rt)
                .with(&env.rt, async |_| {
                    env.rt.sleep(u * 10).await;
                    Ok::<_, ProbeError>(())
                })
                .await
                .map_err(|_| ProbeError::Body)
        })
        .await;
    took(&env, env.rt.now() - start, u * 5, u * 200);
    assert_eq!(
        result,
        Err(ScopeError::BodyTimeout {
            after: u * 5,
            release: None
        })
    );
    let ids = log.acquired();
    assert_eq!(
        log.check_released_once().unwrap(),
        [
            (ids[0], ExitKind::Cancelled(Cancel::Timeout)),
            (ids[1], ExitKind::Cancelled(Cancel::Timeout))
        ]
    );
    let events = log.events();
    let inner_ended = events.iter().position(|e| *e == Event::Dropped(ids[1]));
    let outer_started = events
        .iter()
        .position(|e| matches!(e, Event::ReleaseStart(i, _) if *i == ids[0]));
    assert!(inner_ended < outer_started, "inside-out: {events:?}");
}

/// An acquire deadline: the scope fails at the deadline; the late acquire is
/// finished by the runtime and what it yields released, told
/// `Cancelled(Timeout)`.
pub async fn acquire_timeout_hands_off(env: Env) {
    let u = unit(&env);
    let log = Log::new();
    let slow = Plan {
        acquire_sleep: Some(u * 10),
        ..Plan::ok(1)
    };
    let start = env.rt.now();
    let result = Probe::new(&log, slow, &env.rt)
        .acquire_timeout(u * 2)
        .with(&env.rt, async |_| -> Result<(), ProbeError> {
            panic!("the body must not run")
        })
        .await;
    took(&env, env.rt.now() - start, u * 2, u * 100);
    assert_eq!(result, Err(ScopeError::Acquire(Failure::TimedOut(u * 2))));
    assert!(log.acquired().is_empty(), "not acquired yet");
    let stats = drain(&env).await;
    took(&env, env.rt.now() - start, u * 10, u * 500);
    assert_eq!((stats.spawned, stats.completed), (1, 1));
    let id = log.acquired()[0];
    assert_eq!(
        log.check_released_once().unwrap(),
        [(id, ExitKind::Cancelled(Cancel::Timeout))]
    );
}

/// Nested deadlines: the one that expires first wins, and only its owner
/// sees the expiry; an outer deadline drops the inner work, whose scopes are
/// told `Cancelled(Timeout)`; at a tie the inner one wins.
pub async fn nested_deadlines(env: Env) {
    let u = unit(&env);
    let rt = &env.rt;

    // Inner first: its owner gets the error; the outer sees a result.
    let start = rt.now();
    let outer = rt
        .timeout(u * 5, async { rt.timeout(u * 2, rt.sleep(u * 10)).await })
        .await;
    assert_eq!(outer, Ok(Err(Elapsed::new(u * 2))));
    took(&env, rt.now() - start, u * 2, u * 100);

    // Outer first: the inner deadline never fires; a scope inside is told why
    // it was dropped.
    let log = Log::new();
    let start = rt.now();
    let outer = rt
        .timeout(u * 2, async {
            rt.timeout(
                u * 5,
                Probe::new(&log, Plan::ok(1), rt).with(rt, async |_| {
                    rt.sleep(u * 10).await;
                    Ok::<_, ProbeError>(())
                }),
            )
            .await
        })
        .await;
    assert_eq!(outer, Err(Elapsed::new(u * 2)));
    let elapsed = outer.as_ref().expect_err("the outer deadline");
    assert_eq!(elapsed.after(), u * 2);
    assert_eq!(
        elapsed.to_string(),
        format!("deadline of {:?} elapsed", u * 2)
    );
    took(&env, rt.now() - start, u * 2, u * 100);
    drain(&env).await;
    let id = log.acquired()[0];
    assert_eq!(
        log.check_released_once().unwrap(),
        [(id, ExitKind::Cancelled(Cancel::Timeout))]
    );

    // A tie on the virtual clock: the inner deadline wins.
    if env.virtual_time {
        let tie = rt.timeout(u * 3, rt.timeout(u * 3, rt.sleep(u * 10))).await;
        assert_eq!(tie, Ok(Err(Elapsed::new(u * 3))));
    }
}

/// Zero and huge durations follow the documented rule: a zero deadline gives
/// the future exactly one poll; `Duration::MAX` is no deadline at all.
pub async fn zero_and_huge_durations(env: Env) {
    let rt = &env.rt;
    assert_eq!(rt.timeout(Duration::ZERO, async { 5 }).await, Ok(5));

    let polls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&polls);
    let pending = std::future::poll_fn(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
        std::task::Poll::<()>::Pending
    });
    assert_eq!(
        rt.timeout(Duration::ZERO, pending).await,
        Err(Elapsed::new(Duration::ZERO))
    );
    assert_eq!(polls.load(Ordering::SeqCst), 1);

    let u = unit(&env);
    let slow = async {
        rt.sleep(u).await;
        yield_now().await;
        9
    };
    assert_eq!(rt.timeout(Duration::MAX, slow).await, Ok(9));
    assert_eq!(rt.move_on_after(Duration::MAX, async { 1 }).await, Some(1));
    assert_eq!(
        rt.move_on_after(Duration::ZERO, std::future::pending::<()>())
            .await,
        None
    );
}
