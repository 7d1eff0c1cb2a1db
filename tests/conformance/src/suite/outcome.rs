//! The outcome table: acquire {ok, error, panic} × body {ok, error, panic} ×
//! release {ok, error, panic}. For each case: how many releases ran (exactly
//! one when acquired, none otherwise), which `Exit` the release saw, what
//! `with` returned or panicked with, and which incidents were reported.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use awith::rt::{CleanupKind, Incident};
use awith::{
    Cancel, ExitKind, Failure, ResourceExt, ScopeError, Verdict, resource, resource_inspecting,
};
use futures::FutureExt;

use super::{Polled, Stepper, assert_timeout_lost_to_panic, drain, panic_message};
use crate::probe::{self, Event, Log, Plan, Probe, ProbeError, Step};
use awith::test::Env;

/// What the scope should return.
#[derive(Debug, PartialEq)]
enum Expected {
    Output(u32),
    Error(ScopeError<ProbeError, ProbeError>),
    Panic(&'static str),
}

/// What one case of the table must produce: the scope's result, the exit its
/// release sees (`None`: no release), and the incident it reports.
fn expected(plan: Plan) -> (Expected, Option<ExitKind>, Option<&'static str>) {
    use Step::{Err, Ok, Panic};
    const ACQUIRE_PANIC: &str = "probe: acquire panicked";
    const BODY_PANIC: &str = "probe: body panicked";
    const RELEASE_PANIC: &str = "probe: release panicked";
    let body_error = |release| {
        Expected::Error(ScopeError::Body {
            error: ProbeError::Body,
            release,
        })
    };
    let release_error = Some(Failure::Error(ProbeError::Release));
    match (plan.acquire, plan.body, plan.release) {
        (Err, _, _) => (
            Expected::Error(ScopeError::Acquire(Failure::Error(ProbeError::Acquire))),
            None,
            None,
        ),
        (Panic, _, _) => (Expected::Panic(ACQUIRE_PANIC), None, None),
        (Ok, Ok, Ok) => (Expected::Output(42), Some(ExitKind::Completed), None),
        (Ok, Ok, Err) => (
            Expected::Error(ScopeError::Release(Failure::Error(ProbeError::Release))),
            Some(ExitKind::Completed),
            None,
        ),
        (Ok, Ok, Panic) => (
            Expected::Panic(RELEASE_PANIC),
            Some(ExitKind::Completed),
            None,
        ),
        (Ok, Err, Ok) => (body_error(None), Some(ExitKind::Failed), None),
        (Ok, Err, Err) => (body_error(release_error), Some(ExitKind::Failed), None),
        // The release's panic resumes; the body's error is reported.
        (Ok, Err, Panic) => (
            Expected::Panic(RELEASE_PANIC),
            Some(ExitKind::Failed),
            Some("ErrorLostToPanic"),
        ),
        (Ok, Panic, Ok) => (Expected::Panic(BODY_PANIC), Some(ExitKind::Panicked), None),
        (Ok, Panic, Err) => (
            Expected::Panic(BODY_PANIC),
            Some(ExitKind::Panicked),
            Some("ReleaseFailedDuringPanic"),
        ),
        (Ok, Panic, Panic) => (
            Expected::Panic(BODY_PANIC),
            Some(ExitKind::Panicked),
            Some("ReleasePanickedDuringPanic"),
        ),
    }
}

/// One case of the outcome table.
pub async fn case(env: Env, acquire: Step, body: Step, release: Step) {
    let log = Log::new();
    let plan = Plan::steps(acquire, body, release, 2);
    let probe = Probe::new(&log, plan, &env.rt);
    let result = AssertUnwindSafe(probe.with(&env.rt, async |conn| probe::body(conn, plan).await))
        .catch_unwind()
        .await;
    let stats = drain(&env).await;
    let (expected, exit, incident) = expected(plan);

    // What `with` returned, or the panic it resumed.
    match (&result, &expected) {
        (Ok(Ok(output)), Expected::Output(want)) => assert_eq!(output, want),
        (Ok(Err(error)), Expected::Error(want)) => assert_eq!(error, want),
        (Err(panic), Expected::Panic(want)) => assert_eq!(panic_message(&**panic), *want),
        (Ok(got), want) => panic!("{plan:?}: `with` returned {got:?}, expected {want:?}"),
        (Err(panic), want) => panic!(
            "{plan:?}: `with` panicked with {:?}, expected {want:?}",
            panic_message(&**panic)
        ),
    }

    // Releases: exactly one, with the right exit, after the body; or none.
    let events = log.events();
    let released = log
        .check_released_once()
        .unwrap_or_else(|e| panic!("{plan:?}: {e}"));
    match exit {
        Some(exit) => {
            assert_eq!(
                released.len(),
                1,
                "{plan:?}: one value acquired: {events:?}"
            );
            assert_eq!(
                released[0].1, exit,
                "{plan:?}: the release saw another exit"
            );
            let body_start = events.iter().position(|e| matches!(e, Event::BodyStart(_)));
            let release_start = events
                .iter()
                .position(|e| matches!(e, Event::ReleaseStart(..)));
            assert!(
                body_start.is_some() && body_start < release_start,
                "{plan:?}: the body runs before the release: {events:?}"
            );
            let last_body = events
                .iter()
                .rposition(|e| matches!(e, Event::BodyAwait(_) | Event::BodyEnd(_)));
            assert!(
                last_body < release_start,
                "{plan:?}: the release starts after the body ended: {events:?}"
            );
        }
        None => {
            assert!(
                released.is_empty(),
                "{plan:?}: nothing acquired: {events:?}"
            );
            assert_eq!(
                log.count(|e| matches!(e, Event::BodyStart(_) | Event::ReleaseStart(..))),
                0,
                "{plan:?}: neither body nor release runs without a value: {events:?}"
            );
        }
    }

    // Nothing was handed to the runtime: the scope ran to its end.
    assert_eq!(stats.spawned, 0, "{plan:?}: {stats:?}");
    let incidents = env.incidents.all();
    match incident {
        None => assert!(incidents.is_empty(), "{plan:?}: {incidents:?}"),
        Some(kind) => {
            assert_eq!(incidents.len(), 1, "{plan:?}: {incidents:?}");
            let matches = match (&incidents[0], kind) {
                (Incident::ReleaseFailedDuringPanic { error }, "ReleaseFailedDuringPanic") => {
                    error == "Release"
                }
                (Incident::ErrorLostToPanic { error }, "ErrorLostToPanic") => error == "Body",
                (
                    Incident::ReleasePanickedDuringPanic { message },
                    "ReleasePanickedDuringPanic",
                ) => message == "probe: release panicked",
                _ => false,
            };
            assert!(matches, "{plan:?}: expected {kind}, got {incidents:?}");
        }
    }
}

/// Suppression: in a scope run with `with_suppression`, a release that
/// returns `Verdict::Suppress` turns a failed body into `Ok(None)`; `Propagate` keeps the error; after a completed body
/// the verdict changes nothing (`Ok(Some(_))`); and no verdict stops a panic.
pub async fn suppression(env: Env) {
    #[derive(Debug, PartialEq)]
    enum Error {
        NotFound,
        Broken,
    }
    let log = Log::new();
    let suppress_not_found = || {
        let log = log.clone();
        resource_inspecting(
            || async { Ok::<_, ProbeError>(7u32) },
            move |value, exit: &awith::Exit<'_, Error>| {
                let verdict = match exit {
                    awith::Exit::Failed(Error::NotFound) => Verdict::Suppress,
                    // A verdict on a completed or panicked body changes nothing.
                    awith::Exit::Completed | awith::Exit::Panicked => Verdict::Suppress,
                    _ => Verdict::Propagate,
                };
                let exit = exit.kind();
                async move {
                    log.push(Event::ReleaseStart(u64::from(value), exit));
                    Ok(verdict)
                }
            },
        )
    };

    let missing = suppress_not_found()
        .with_suppression(&env.rt, async |_| Err::<u32, _>(Error::NotFound))
        .await;
    assert_eq!(missing, Ok(None), "a suppressed error");

    let broken = suppress_not_found()
        .with_suppression(&env.rt, async |_| Err::<u32, _>(Error::Broken))
        .await;
    assert_eq!(
        broken,
        Err(ScopeError::Body {
            error: Error::Broken,
            release: None
        }),
        "a propagated error"
    );

    let fine = suppress_not_found()
        .with_suppression(&env.rt, async |value| Ok::<_, Error>(*value + 1))
        .await;
    assert_eq!(fine, Ok(Some(8)), "a completed body");

    let panicked = AssertUnwindSafe(
        suppress_not_found().with_suppression(&env.rt, async |_| -> Result<u32, Error> {
            panic!("probe: body panicked")
        }),
    )
    .catch_unwind()
    .await;
    assert!(panicked.is_err(), "a verdict cannot stop a panic");

    // Run with `with`, which returns the body's own output, the same
    // verdict cannot make up an output: the body's error is returned.
    let plain = suppress_not_found()
        .with(&env.rt, async |_| Err::<u32, _>(Error::NotFound))
        .await;
    assert_eq!(
        plain,
        Err(ScopeError::Body {
            error: Error::NotFound,
            release: None
        }),
        "`with` returns the error a release suppressed"
    );

    let exits: Vec<_> = log
        .events()
        .into_iter()
        .map(|e| match e {
            Event::ReleaseStart(_, exit) => exit,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        exits,
        [
            ExitKind::Failed,
            ExitKind::Failed,
            ExitKind::Completed,
            ExitKind::Panicked,
            ExitKind::Failed
        ]
    );
    assert!(env.incidents.all().is_empty());
}

/// Nested scopes release in LIFO order: the inner value is released before
/// the outer one, each exactly once, each seeing its own exit.
pub async fn nested_release_order(env: Env) {
    let log = Log::new();
    let plan = Plan::ok(1);
    let outer = Probe::new(&log, plan, &env.rt);
    let inner_log = log.clone();
    let rt = env.rt.clone();
    let result = outer
        .with(&env.rt, async |outer_conn| {
            let inner = Probe::new(
                &inner_log,
                Plan::steps(Step::Ok, Step::Err, Step::Ok, 1),
                &rt,
            );
            let inner_result = inner
                .with(&rt, async |inner_conn| {
                    probe::body(inner_conn, Plan::steps(Step::Ok, Step::Err, Step::Ok, 1)).await
                })
                .await;
            assert_eq!(
                inner_result.unwrap_err().body_error(),
                Some(&ProbeError::Body)
            );
            probe::body(outer_conn, plan).await
        })
        .await;
    assert_eq!(result, Ok(42));
    let released = log.check_released_once().unwrap();
    let acquired = log.acquired();
    assert_eq!(acquired.len(), 2);
    let (outer_id, inner_id) = (acquired[0], acquired[1]);
    assert_eq!(
        released,
        [
            (outer_id, ExitKind::Completed),
            (inner_id, ExitKind::Failed)
        ]
    );
    let events = log.events();
    let released_at = |id| {
        events
            .iter()
            .position(|e| *e == Event::Released(id))
            .unwrap()
    };
    assert!(
        released_at(inner_id) < released_at(outer_id),
        "LIFO: {events:?}"
    );
}

/// A release timeout bounds the release on the normal path: the scope fails
/// with `Failure::TimedOut` and the release's future is dropped.
pub async fn release_timeout(env: Env) {
    let rt = env.rt.clone();
    let timeout = Duration::from_millis(50);
    let start = env.rt.now();
    let slow = resource(
        || async { Ok::<_, ProbeError>(()) },
        move |(), _exit| {
            let nap = rt.sleep(Duration::from_secs(3600));
            async move {
                nap.await;
                Ok(())
            }
        },
    )
    .release_timeout(timeout);
    let result = slow.with(&env.rt, async |()| Ok::<_, ProbeError>(1)).await;
    assert_eq!(result, Err(ScopeError::Release(Failure::TimedOut(timeout))));
    let waited = env.rt.now() - start;
    if env.virtual_time {
        assert_eq!(waited, timeout);
    }
    assert!(waited >= timeout, "waited {waited:?}");
    assert!(waited < Duration::from_secs(60), "waited {waited:?}");
}

/// A future that panics when dropped (unless a panic is already
/// unwinding), after logging `tag` was dropped: held by a body, it is a body
/// future whose `Drop` panics.
#[derive(Debug)]
pub struct DropBomb(pub &'static str);

impl Drop for DropBomb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("probe: {} dropped", self.0);
        }
    }
}

/// Issue 9, item 18: a body that timed out and a release that panics: the
/// panic resumes and the timeout (the scope's error) is reported.
pub async fn body_timeout_then_release_panics(env: Env) {
    let log = Log::new();
    let plan = Plan::steps(Step::Ok, Step::Ok, Step::Panic, 1);
    let after = Duration::from_millis(20);
    let result = AssertUnwindSafe(Probe::new(&log, plan, &env.rt).body_timeout(after).with(
        &env.rt,
        async |_| {
            std::future::pending::<()>().await;
            Ok::<u32, ProbeError>(1)
        },
    ))
    .catch_unwind()
    .await;
    let panic = result.expect_err("the release's panic resumes");
    assert_eq!(panic_message(&*panic), "probe: release panicked");
    assert_eq!(
        log.check_released_once().unwrap()[0].1,
        ExitKind::Cancelled(Cancel::Timeout)
    );
    assert_timeout_lost_to_panic(&env);
}

/// A body whose future panics when dropped at its timeout: the panic is the
/// body's (the release, in the scope, is told `Panicked`, then the panic
/// resumes), and the timeout it replaced is reported.
pub async fn body_dropped_at_timeout_panics(env: Env) {
    let log = Log::new();
    let after = Duration::from_millis(20);
    let result = AssertUnwindSafe(
        Probe::new(&log, Plan::ok(1), &env.rt)
            .body_timeout(after)
            .with(&env.rt, async |_| {
                let _bomb = DropBomb("body");
                std::future::pending::<()>().await;
                Ok::<u32, ProbeError>(1)
            }),
    )
    .catch_unwind()
    .await;
    let panic = result.expect_err("the drop's panic resumes");
    assert_eq!(panic_message(&*panic), "probe: body dropped");
    assert_eq!(
        log.check_released_once().unwrap()[0].1,
        ExitKind::Panicked,
        "{:?}",
        log.events()
    );
    assert_eq!(drain(&env).await.spawned, 0, "released in the scope");
    assert_timeout_lost_to_panic(&env);
}

/// A body whose future panics when dropped at a cancellation: the panic
/// reaches whoever dropped the scope, and the release still waits for the
/// scopes cancelled inside the body (their cleanups started before the
/// panic) — inner before outer.
pub async fn body_dropped_at_cancellation_panics(env: Env) {
    let log = Log::new();
    let (inner_log, rt) = (log.clone(), env.rt.clone());
    let mut scope = Stepper::new(Probe::new(&log, Plan::ok(3), &env.rt).with(
        &env.rt,
        async move |_| {
            Probe::new(&inner_log, Plan::ok(3), &rt)
                .with(&rt, async |_| {
                    let _bomb = DropBomb("inner body");
                    std::future::pending::<()>().await;
                    Ok::<u32, ProbeError>(1)
                })
                .await
                .map_err(|_| ProbeError::Body)
        },
    ));
    while log.acquired().len() < 2 {
        assert!(matches!(scope.step().await, Polled::Pending));
    }
    let dropped = std::panic::catch_unwind(AssertUnwindSafe(|| drop(scope)));
    let panic = dropped.expect_err("the drop's panic reaches the dropper");
    assert_eq!(panic_message(&*panic), "probe: inner body dropped");
    drain(&env).await;
    let released = log.check_released_once().unwrap();
    assert_eq!(released.len(), 2);
    let (outer, inner) = (log.acquired()[0], log.acquired()[1]);
    let events = log.events();
    let inner_end = events.iter().position(|e| *e == Event::Dropped(inner));
    let outer_start = events
        .iter()
        .position(|e| matches!(e, Event::ReleaseStart(id, _) if *id == outer));
    assert!(inner_end < outer_start, "inner first: {events:?}");
    assert!(env.incidents.all().is_empty(), "{:?}", env.incidents.all());
}

/// A scope dropped while releasing, whose body's output panics when
/// dropped (with the scope: nobody is left to return it to): the release,
/// handed to the runtime, still runs to its end, and the panic reaches
/// whoever dropped the scope.
pub async fn output_dropped_while_releasing_panics(env: Env) {
    let log = Log::new();
    let mut scope = Stepper::new(
        Probe::new(&log, Plan::ok(3), &env.rt)
            .with(&env.rt, async |_| Ok::<_, ProbeError>(DropBomb("output"))),
    );
    let releasing = |log: &Log| {
        log.events()
            .iter()
            .any(|e| matches!(e, Event::ReleaseStart(..)))
    };
    for _ in 0..100 {
        if releasing(&log) {
            break;
        }
        assert!(matches!(scope.step().await, Polled::Pending));
    }
    assert!(releasing(&log), "the release started: {:?}", log.events());
    let dropped = std::panic::catch_unwind(AssertUnwindSafe(|| drop(scope)));
    let panic = dropped.expect_err("the output's panic reaches the dropper");
    assert_eq!(panic_message(&*panic), "probe: output dropped");
    drain(&env).await;
    let id = log.acquired()[0];
    assert!(
        log.events().contains(&Event::Released(id)),
        "the release ran to its end: {:?}",
        log.events()
    );
    log.check_released_once().unwrap();
    assert!(env.incidents.all().is_empty(), "{:?}", env.incidents.all());
}

/// A release whose future panics when dropped at its release timeout: a
/// release panic (after a failed body: the body's error is reported).
pub async fn release_dropped_at_timeout_panics(env: Env) {
    let log = Log::new();
    let plan = Plan {
        release_hangs: true,
        release_drop_panics: true,
        ..Plan::ok(1)
    };
    let after = Duration::from_millis(20);
    let result = AssertUnwindSafe(
        Probe::new(&log, plan, &env.rt)
            .release_timeout(after)
            .with(&env.rt, async |_| Err::<u32, _>(ProbeError::Body)),
    )
    .catch_unwind()
    .await;
    let panic = result.expect_err("the drop's panic resumes");
    assert_eq!(panic_message(&*panic), "probe: release dropped unfinished");
    log.check_released_once().unwrap();
    assert_eq!(
        env.incidents.all(),
        [Incident::ErrorLostToPanic {
            error: "Body".into()
        }]
    );
}

/// Hanging user code in cleanups, and futures that panic when dropped at
/// the cleanup timeout: an acquire that never finishes (handed over at its
/// acquire timeout) and a release that never finishes (its scope dropped in
/// the body) are each cut at the runtime's cleanup timeout and reported
/// timed out, a panicking `Drop` beside it; the runtime's books balance.
pub async fn hanging_cleanups_are_bounded(env: Env) {
    let bound = Duration::from_millis(50);
    let (rt, incidents) = awith::test::recording_runtime(env.binding.clone(), bound);
    for drop_panics in [false, true] {
        incidents.clear();
        let before = rt.cleanup_stats();
        let log = Log::new();
        let hangs = Plan {
            acquire_hangs: true,
            acquire_drop_panics: drop_panics,
            ..Plan::ok(1)
        };
        let result = Probe::new(&log, hangs, &rt)
            .acquire_timeout(Duration::from_millis(10))
            .with(&rt, async |_| Ok::<u32, ProbeError>(1))
            .await;
        assert!(result.unwrap_err().is_timeout());

        let hangs = Plan {
            release_hangs: true,
            release_drop_panics: drop_panics,
            ..Plan::ok(1)
        };
        let mut scope = Stepper::new(Probe::new(&log, hangs, &rt).with(&rt, async |_| {
            std::future::pending::<()>().await;
            Ok::<u32, ProbeError>(1)
        }));
        while log.acquired().is_empty() {
            assert!(matches!(scope.step().await, Polled::Pending));
        }
        drop(scope);
        let stats = rt.drain(super::DRAIN).await.unwrap();
        assert_eq!(stats.spawned - before.spawned, 2);
        assert_eq!(stats.pending, 0);
        // Each cleanup is cut at the bound and reported timed out; a future
        // whose drop panics there is reported beside it (the two cleanups
        // end about together on a real clock: in either order).
        let mut seen = incidents.all();
        seen.sort_by_key(|incident| incident.to_string());
        let mut expected = vec![
            Incident::CleanupTimedOut {
                kind: CleanupKind::FinishAcquire,
                after: bound,
            },
            Incident::CleanupTimedOut {
                kind: CleanupKind::Release,
                after: bound,
            },
        ];
        if drop_panics {
            expected.extend(
                ["acquire", "release"].map(|what| Incident::BackgroundPanicked {
                    work: "dropping an unfinished cleanup",
                    message: format!("probe: {what} dropped unfinished"),
                }),
            );
        }
        expected.sort_by_key(|incident| incident.to_string());
        assert_eq!(seen, expected, "drop panics: {drop_panics}");
        let stats = rt.cleanup_stats();
        assert_eq!(stats.timed_out - before.timed_out, 2);
        assert_eq!(stats.panicked - before.panicked, 0);
        assert!(log.events().contains(&Event::AcquireDropped));
    }
}

/// Panics, for closures that panic before building their future.
fn panics<T>(what: &str) -> T {
    panic!("probe: {what} panicked")
}

/// The functions that build the acquire, body and release futures panic,
/// and the `Drop` of a value the release drops or of the body's output the
/// scope drops: each panic resumes (or is reported, beside another), and no
/// failure it replaces is lost.
pub async fn callbacks_that_panic(env: Env) {
    async fn resumes<F: Future>(scope: F, message: &str) {
        let result = AssertUnwindSafe(scope).catch_unwind().await;
        let Err(panic) = result else {
            panic!("a panic resumes")
        };
        assert_eq!(panic_message(&*panic), message);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let told = move |exit: ExitKind| tx.send(exit).unwrap();

    // The acquire's function: nothing acquired, nothing released.
    let acquire_fn = resource(
        || panics::<std::future::Ready<Result<(), ProbeError>>>("acquire fn"),
        |(), _| async { Ok(()) },
    );
    resumes(
        acquire_fn.with(&env.rt, async |()| Ok::<_, ProbeError>(1)),
        "probe: acquire fn panicked",
    )
    .await;

    // The body's function: the release is told `Panicked`.
    let told2 = told.clone();
    let conn = resource(
        || async { Ok::<_, ProbeError>(()) },
        move |(), exit| async move {
            told2(exit);
            Ok(())
        },
    );
    resumes(
        conn.with(&env.rt, |_: &mut ()| {
            panics::<std::future::Ready<Result<u32, ProbeError>>>("body fn")
        }),
        "probe: body fn panicked",
    )
    .await;
    assert_eq!(rx.try_recv(), Ok(ExitKind::Panicked));

    // The release's function, after a failed body: the body's error is
    // reported.
    let release_fn = resource(
        || async { Ok::<_, ProbeError>(()) },
        |(), _| panics::<std::future::Ready<Result<(), ProbeError>>>("release fn"),
    );
    resumes(
        release_fn.with(&env.rt, async |()| Err::<u32, _>(ProbeError::Body)),
        "probe: release fn panicked",
    )
    .await;
    assert_eq!(
        env.incidents.all(),
        [Incident::ErrorLostToPanic {
            error: "Body".into()
        }]
    );
    env.incidents.clear();

    // A value whose `Drop` panics as the release drops it, after a failed
    // body: a release panic; the body's error is reported.
    let log = Log::new();
    let plan = Plan {
        value_drop_panics: true,
        ..Plan::ok(1)
    };
    let scope =
        Probe::new(&log, plan, &env.rt).with(&env.rt, async |_| Err::<u32, _>(ProbeError::Body));
    let result = AssertUnwindSafe(scope).catch_unwind().await;
    let panic = result.expect_err("a panic resumes");
    assert!(panic_message(&*panic).contains("panicked when dropped"));
    assert_eq!(
        env.incidents.all(),
        [Incident::ErrorLostToPanic {
            error: "Body".into()
        }]
    );
    env.incidents.clear();

    // The body's error, dropped because the release panicked, panics in its
    // `Drop` too: the release's panic resumes; the error and the second
    // panic are reported.
    let log = Log::new();
    let panicking = Plan::steps(Step::Ok, Step::Ok, Step::Panic, 1);
    resumes(
        Probe::new(&log, panicking, &env.rt)
            .with(&env.rt, async |_| Err::<u32, _>(DropBomb("body error"))),
        "probe: release panicked",
    )
    .await;
    assert_eq!(
        env.incidents.all(),
        [
            Incident::ErrorLostToPanic {
                error: "DropBomb(\"body error\")".into()
            },
            Incident::ReleasePanickedDuringPanic {
                message: "probe: body error dropped".into()
            }
        ]
    );
    env.incidents.clear();

    // The body's output, dropped because the release failed, panics in its
    // `Drop`: that panic resumes and the release's failure is reported.
    let log = Log::new();
    let failing = Plan::steps(Step::Ok, Step::Ok, Step::Err, 1);
    resumes(
        Probe::new(&log, failing, &env.rt).with(&env.rt, async |_| {
            Ok::<_, ProbeError>(DropBomb("body output"))
        }),
        "probe: body output dropped",
    )
    .await;
    assert_eq!(
        env.incidents.all(),
        [Incident::ErrorLostToPanic {
            error: "Release".into()
        }]
    );
    assert_eq!(drain(&env).await.spawned, 0);
}
