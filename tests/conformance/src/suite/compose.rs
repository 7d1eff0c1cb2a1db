//! Composition: `and_then`, `zip`, `map`, `map_err` — release order with
//! counters (also when some releases fail), failures of one part, and every
//! failure kept.

use awith::{Cancel, ExitKind, Failure, ResourceExt, ScopeError, both};

use super::drain;
use crate::harness::Env;
use crate::probe::{self, Event, Log, Plan, Probe, ProbeError, Step};

/// The index of the first event matching.
fn at(log: &Log, event: &Event) -> usize {
    log.events()
        .iter()
        .position(|e| e == event)
        .unwrap_or_else(|| panic!("no {event:?} in {:?}", log.events()))
}

/// `and_then`: the second is acquired from the first, released before it,
/// both told the scope's exit; the second's release failing does not stop the
/// first's, and the failure is returned.
pub async fn and_then_releases_in_reverse(env: Env) {
    let log = Log::new();
    let first = Probe::new(&log, Plan::ok(1), &env.rt);
    let second_log = log.clone();
    let rt = env.rt.clone();
    let failing_release = Plan::steps(Step::Ok, Step::Ok, Step::Err, 1);
    let scope = first.and_then(move |first_conn: &mut probe::Conn| {
        assert!(first_conn.id > 0, "the first value is there");
        Probe::new(&second_log, failing_release, &rt)
    });
    let result = scope
        .with(&env.rt, async |(first, second)| {
            assert!(first.id < second.id);
            Ok::<_, ProbeError>(first.id + second.id)
        })
        .await;
    assert_eq!(
        result,
        Err(ScopeError::Release(Failure::Error(ProbeError::Release)))
    );
    let acquired = log.acquired();
    let (first, second) = (acquired[0], acquired[1]);
    assert_eq!(
        log.check_released_once().unwrap(),
        [(first, ExitKind::Completed), (second, ExitKind::Completed)]
    );
    assert!(
        at(&log, &Event::Dropped(second))
            < at(&log, &Event::ReleaseStart(first, ExitKind::Completed)),
        "LIFO: {:?}",
        log.events()
    );
    assert!(log.events().contains(&Event::Released(first)));
    assert_eq!(drain(&env).await.spawned, 0);
}

/// `and_then` whose second acquire fails: the first is released at once,
/// told `Cancelled(SiblingFailed)`; the body never runs.
pub async fn and_then_second_acquire_fails(env: Env) {
    let log = Log::new();
    let first = Probe::new(&log, Plan::ok(1), &env.rt);
    let second_log = log.clone();
    let rt = env.rt.clone();
    let result = first
        .and_then(move |_: &mut probe::Conn| {
            Probe::new(
                &second_log,
                Plan::steps(Step::Err, Step::Ok, Step::Ok, 1),
                &rt,
            )
        })
        .with(&env.rt, async |_| -> Result<u32, ProbeError> {
            panic!("the body must not run")
        })
        .await;
    assert_eq!(
        result,
        Err(ScopeError::Acquire(Failure::Error(ProbeError::Acquire)))
    );
    let first = log.acquired()[0];
    assert_eq!(
        log.check_released_once().unwrap(),
        [(first, ExitKind::Cancelled(Cancel::SiblingFailed))]
    );
}

/// `zip`: both acquired before the body, both released once with the
/// scope's exit; when both releases fail, both failures are kept.
pub async fn zip_keeps_every_failure(env: Env) {
    let log = Log::new();
    let failing = Plan::steps(Step::Ok, Step::Ok, Step::Err, 2);
    let scope = both(
        Probe::new(&log, failing, &env.rt),
        Probe::new(&log, failing, &env.rt),
    );
    let result = scope
        .with(&env.rt, async |(a, b)| {
            probe::body(a, Plan::ok(1)).await?;
            probe::body(b, Plan::steps(Step::Ok, Step::Err, Step::Ok, 1)).await
        })
        .await;
    let Err(ScopeError::Body { error, release }) = result else {
        panic!("a failed body: {result:?}")
    };
    assert_eq!(error, ProbeError::Body);
    let release = release.expect("both releases failed");
    assert_eq!(
        release.errors().copied().collect::<Vec<_>>(),
        [ProbeError::Release, ProbeError::Release]
    );
    let released = log.check_released_once().unwrap();
    assert_eq!(released.len(), 2);
    assert!(released.iter().all(|(_, exit)| *exit == ExitKind::Failed));
}

/// `zip` where one acquire fails: the other is released, told
/// `Cancelled(SiblingFailed)`; when both fail, both failures are kept.
pub async fn zip_one_acquire_fails(env: Env) {
    let log = Log::new();
    let result = Probe::new(&log, Plan::ok(3), &env.rt)
        .zip(Probe::new(
            &log,
            Plan::steps(Step::Err, Step::Ok, Step::Ok, 1),
            &env.rt,
        ))
        .with(&env.rt, async |_| -> Result<u32, ProbeError> {
            panic!("the body must not run")
        })
        .await;
    assert_eq!(
        result,
        Err(ScopeError::Acquire(Failure::Error(ProbeError::Acquire)))
    );
    let ok = log.acquired()[0];
    assert_eq!(
        log.check_released_once().unwrap(),
        [(ok, ExitKind::Cancelled(Cancel::SiblingFailed))]
    );

    let log = Log::new();
    let failing = Plan::steps(Step::Err, Step::Ok, Step::Ok, 1);
    let result = Probe::new(&log, failing, &env.rt)
        .zip(Probe::new(&log, failing, &env.rt))
        .with(&env.rt, async |_| Ok::<u32, ProbeError>(0))
        .await;
    let failure = result.unwrap_err().acquire_failure().cloned().unwrap();
    assert_eq!(
        failure.errors().copied().collect::<Vec<_>>(),
        [ProbeError::Acquire, ProbeError::Acquire]
    );
    assert!(log.acquired().is_empty());
}

/// `map` transforms the value both ways; `map_err` converts acquire and
/// release errors.
pub async fn map_and_map_err(env: Env) {
    let log = Log::new();
    let mapped = Probe::new(&log, Plan::ok(1), &env.rt).map(
        |conn| (conn, String::from("wrapped")),
        |(conn, label): (probe::Conn, String)| {
            assert_eq!(label, "wrapped!");
            conn
        },
    );
    let result = mapped
        .with(&env.rt, async |(conn, label)| {
            label.push('!');
            Ok::<_, ProbeError>(conn.id)
        })
        .await;
    let id = log.acquired()[0];
    assert_eq!(result, Ok(id));
    assert_eq!(
        log.check_released_once().unwrap(),
        [(id, ExitKind::Completed)]
    );

    #[derive(Debug, PartialEq)]
    struct Wrapped(ProbeError);
    let log = Log::new();
    let result = Probe::new(&log, Plan::steps(Step::Ok, Step::Ok, Step::Err, 1), &env.rt)
        .map_err(Wrapped)
        .with(&env.rt, async |_| Ok::<_, ProbeError>(()))
        .await;
    assert_eq!(
        result,
        Err(ScopeError::Release(Failure::Error(Wrapped(
            ProbeError::Release
        ))))
    );
}
