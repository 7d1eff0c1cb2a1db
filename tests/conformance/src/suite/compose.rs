//! Composition: `and_then`, `zip`, `map`, `map_err` — release order with
//! counters (also when some releases fail), failures of one part, and every
//! failure kept.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use awith::rt::Incident;
use awith::{Cancel, ExitKind, Failure, PartError, ResourceExt, ScopeError, both};
use futures::FutureExt;

use super::{drain, panic_message};
use crate::probe::{self, Event, Log, Plan, Probe, ProbeError, Step};
use awith::test::Env;

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
    // The part that failed is named: the second.
    assert_eq!(
        result,
        Err(ScopeError::Release(Failure::Error(PartError::Second(
            ProbeError::Release
        ))))
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
        Err(ScopeError::Acquire(Failure::Error(PartError::Second(
            ProbeError::Acquire
        ))))
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
        [
            PartError::First(ProbeError::Release),
            PartError::Second(ProbeError::Release)
        ]
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
        Err(ScopeError::Acquire(Failure::Error(PartError::Second(
            ProbeError::Acquire
        ))))
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
        [
            PartError::First(ProbeError::Acquire),
            PartError::Second(ProbeError::Acquire)
        ]
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

/// Issue 9, item 15: `and_then`'s second part bounds the body too, from the
/// moment it is known (once the first is acquired, before the body starts);
/// the smallest bound of all parts wins, through `zip`, `map` and `map_err`.
pub async fn and_then_second_body_timeout(env: Env) {
    let sec = Duration::from_secs(1);
    // (the first's bound, the second's, one around the whole) -> expected
    let cases = [
        (None, Some(2 * sec), None, 2 * sec),
        (Some(5 * sec), Some(2 * sec), None, 2 * sec),
        (Some(sec), Some(5 * sec), None, sec),
        (None, Some(3 * sec), Some(4 * sec), 3 * sec),
        (None, Some(4 * sec), Some(3 * sec), 3 * sec),
    ];
    for (first_bound, second_bound, outer_bound, want) in cases {
        let log = Log::new();
        let (second_log, rt) = (log.clone(), env.rt.clone());
        let bounded = |probe: Probe, bound: Option<Duration>| match bound {
            Some(bound) => probe.body_timeout(bound),
            None => probe.body_timeout(Duration::MAX),
        };
        let first = bounded(Probe::new(&log, Plan::ok(1), &env.rt), first_bound);
        let scope = first.and_then(move |_: &mut probe::Conn| {
            bounded(Probe::new(&second_log, Plan::ok(1), &rt), second_bound)
        });
        let scope = Probe::new(&log, Plan::ok(1), &env.rt)
            .zip(scope)
            .map(|both| both, |both| both)
            .map_err(|e| e);
        let start = env.rt.now();
        let sleeper = env.rt.clone();
        let body = async |_: &mut _| {
            sleeper.sleep(10 * sec).await;
            Ok::<_, ProbeError>(1)
        };
        // Boxed: deep combinator futures are large in debug builds.
        let result = match outer_bound {
            Some(outer) => Box::pin(scope.body_timeout(outer).with(&env.rt, body)).await,
            None => Box::pin(scope.with(&env.rt, body)).await,
        };
        let what = format!("{first_bound:?}, {second_bound:?}, around {outer_bound:?}");
        assert_eq!(
            result,
            Err(ScopeError::BodyTimeout {
                after: want,
                release: None
            }),
            "{what}"
        );
        let waited = env.rt.now() - start;
        if env.virtual_time {
            assert_eq!(waited, want, "{what}");
        }
        assert!(waited >= want && waited < 10 * sec, "{what}: {waited:?}");
        let released = log.check_released_once().unwrap();
        assert_eq!(released.len(), 3, "{what}");
        assert!(
            released
                .iter()
                .all(|(_, exit)| *exit == ExitKind::Cancelled(Cancel::Timeout)),
            "{what}: {released:?}"
        );
    }
}

/// Issue 9, item 18, for the parts of a combined resource: a part's release
/// that panics beside a failed body resumes its panic and the body's error
/// is reported.
pub async fn zip_release_panic_reports_the_body_error(env: Env) {
    let log = Log::new();
    let panics = Plan::steps(Step::Ok, Step::Ok, Step::Panic, 1);
    let result = AssertUnwindSafe(
        Probe::new(&log, panics, &env.rt)
            .zip(Probe::new(&log, Plan::ok(1), &env.rt))
            .with(&env.rt, async |_| Err::<u32, _>(ProbeError::Body)),
    )
    .catch_unwind()
    .await;
    let panic = result.expect_err("the release's panic resumes");
    assert_eq!(panic_message(&*panic), "probe: release panicked");
    assert_eq!(log.check_released_once().unwrap().len(), 2);
    assert_eq!(
        env.incidents.all(),
        [Incident::ErrorLostToPanic {
            error: "Body".into()
        }]
    );
}

/// Issue 9, item 18, on the acquire paths of `and_then` and `zip`: when a
/// part panics beside another's failure (a failed acquire, or the release of
/// what the other acquired), the panic resumes and the failure is reported.
pub async fn combined_acquire_panics_report_failures(env: Env) {
    let fails = Plan::steps(Step::Err, Step::Ok, Step::Ok, 1);
    let panics = Plan::steps(Step::Panic, Step::Ok, Step::Ok, 1);
    let release_panics = Plan::steps(Step::Ok, Step::Ok, Step::Panic, 1);
    let lost = |error: &str| Incident::ErrorLostToPanic {
        error: error.into(),
    };
    async fn expect_panic<F: Future>(scope: F, message: &str) {
        let result = AssertUnwindSafe(scope).catch_unwind().await;
        let panic = result.err().expect("a panic resumes");
        assert_eq!(panic_message(&*panic), message);
    }

    // and_then: the second acquire fails, the first's release panics.
    let log = Log::new();
    let (second_log, rt) = (log.clone(), env.rt.clone());
    let scope = Probe::new(&log, release_panics, &env.rt)
        .and_then(move |_: &mut probe::Conn| Probe::new(&second_log, fails, &rt))
        .with(&env.rt, async |_| Ok::<u32, ProbeError>(1));
    expect_panic(scope, "probe: release panicked").await;
    assert_eq!(log.check_released_once().unwrap().len(), 1);
    // The report names the part that failed.
    assert_eq!(env.incidents.all(), [lost("Second(Acquire)")]);
    env.incidents.clear();

    // zip: one acquire panics, the other fails (either way round).
    for (a, b, failed) in [
        (panics, fails, "Second(Acquire)"),
        (fails, panics, "First(Acquire)"),
    ] {
        let log = Log::new();
        let scope = Probe::new(&log, a, &env.rt)
            .zip(Probe::new(&log, b, &env.rt))
            .with(&env.rt, async |_| Ok::<u32, ProbeError>(1));
        expect_panic(scope, "probe: acquire panicked").await;
        assert_eq!(env.incidents.all(), [lost(failed)], "{a:?} {b:?}");
        env.incidents.clear();
    }

    // zip: one acquire fails, the other's release (told the sibling failed)
    // panics.
    let log = Log::new();
    let scope = Probe::new(&log, release_panics, &env.rt)
        .zip(Probe::new(&log, fails, &env.rt))
        .with(&env.rt, async |_| Ok::<u32, ProbeError>(1));
    expect_panic(scope, "probe: release panicked").await;
    assert_eq!(
        log.check_released_once().unwrap(),
        [(
            log.acquired()[0],
            ExitKind::Cancelled(Cancel::SiblingFailed)
        )]
    );
    assert_eq!(env.incidents.all(), [lost("Second(Acquire)")]);
    assert_eq!(drain(&env).await.spawned, 0);
}

/// A combined release (or acquire) dropped half-way — at a release timeout,
/// or its cleanup cancelled — after one part failed: that failure has
/// nobody left to be returned to, so it is reported.
pub async fn combined_dropped_half_way_reports(env: Env) {
    let after = Duration::from_millis(20);
    let fails = Plan::steps(Step::Ok, Step::Ok, Step::Err, 0);
    let hangs = Plan {
        release_hangs: true,
        ..Plan::ok(0)
    };
    let unreturned = |incidents: Vec<Incident>| {
        assert!(
            matches!(&incidents[..], [Incident::Unreturned { failure, .. }] if failure == "Release"),
            "{incidents:?}"
        );
    };

    // zip: one part's release fails at once, the other's hangs.
    let log = Log::new();
    let result = Probe::new(&log, fails, &env.rt)
        .zip(Probe::new(&log, hangs, &env.rt))
        .release_timeout(after)
        .with(&env.rt, async |_| Ok::<u32, ProbeError>(1))
        .await;
    assert_eq!(result, Err(ScopeError::Release(Failure::TimedOut(after))));
    unreturned(env.incidents.all());
    env.incidents.clear();

    // and_then: the second's release fails, then the first's hangs.
    let log = Log::new();
    let (second_log, rt) = (log.clone(), env.rt.clone());
    let result = Probe::new(&log, hangs, &env.rt)
        .and_then(move |_: &mut probe::Conn| Probe::new(&second_log, fails, &rt))
        .release_timeout(after)
        .with(&env.rt, async |_| Ok::<u32, ProbeError>(1))
        .await;
    assert_eq!(result, Err(ScopeError::Release(Failure::TimedOut(after))));
    unreturned(env.incidents.all());
    env.incidents.clear();

    // zip's acquire: one part fails, the other hangs past the acquire
    // timeout; the acquire is handed over and, at the runtime's cleanup
    // timeout, dropped.
    let bound = Duration::from_millis(50);
    let (rt, incidents) = awith::test::recording_runtime(env.binding.clone(), bound);
    let log = Log::new();
    let acquire_fails = Plan::steps(Step::Err, Step::Ok, Step::Ok, 0);
    let acquire_hangs = Plan {
        acquire_hangs: true,
        ..Plan::ok(0)
    };
    let result = Probe::new(&log, acquire_fails, &rt)
        .zip(Probe::new(&log, acquire_hangs, &rt))
        .acquire_timeout(after)
        .with(&rt, async |_| Ok::<u32, ProbeError>(1))
        .await;
    assert_eq!(result, Err(ScopeError::Acquire(Failure::TimedOut(after))));
    rt.drain(super::DRAIN).await.unwrap();
    let seen = incidents.all();
    assert!(
        matches!(&seen[..], [Incident::Unreturned { failure, .. }, Incident::CleanupTimedOut { .. }] if failure == "Acquire"),
        "{seen:?}"
    );
}

/// `and_then`'s function panics while making the second part: the first is
/// released, told `Panicked`, and the panic resumes.
pub async fn and_then_function_panics(env: Env) {
    let log = Log::new();
    let scope = Probe::new(&log, Plan::ok(1), &env.rt)
        .and_then(|_: &mut probe::Conn| -> Probe { panic!("probe: and_then panicked") })
        .with(&env.rt, async |_| Ok::<u32, ProbeError>(1));
    let result = AssertUnwindSafe(scope).catch_unwind().await;
    let panic = result.expect_err("the panic resumes");
    assert_eq!(panic_message(&*panic), "probe: and_then panicked");
    assert_eq!(log.check_released_once().unwrap()[0].1, ExitKind::Panicked);
    assert!(env.incidents.all().is_empty());
}
