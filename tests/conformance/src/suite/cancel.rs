//! Cancellation at every await point: poll a scope k times, drop it, drain
//! the runtime's cleanups, check — for k = 0, 1, 2, … until the scope
//! completes within k polls. Acquire, body and release each have several
//! await points, so every phase is dropped at its start, middle and end.
//!
//! After each drop, once drained: every acquired value was released exactly
//! once and dropped exactly once; the release saw `Cancelled(Dropped)` when
//! the scope was dropped before its release started, and the body's real
//! exit when it was dropped during the release; failures inside the handed-
//! over work were reported as incidents.

use std::future::Future;
use std::time::Duration;

use awith::rt::{CleanupKind, Incident};
use awith::{Cancel, ExitKind, ResourceExt};

use super::{Polled, Stepper, drain};
use crate::probe::{self, Event, Log, Plan, Probe, Step};
use awith::test::Env;

/// Where the scope was when it was dropped, read from the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    NotStarted,
    Acquiring,
    Body,
    Releasing(ExitKind),
}

impl Phase {
    fn of(log: &Log) -> Phase {
        let events = log.events();
        if let Some(exit) = events.iter().find_map(|e| match e {
            Event::ReleaseStart(_, exit) => Some(*exit),
            _ => None,
        }) {
            Phase::Releasing(exit)
        } else if events.iter().any(|e| matches!(e, Event::Acquired(_))) {
            Phase::Body
        } else if events.is_empty() {
            Phase::NotStarted
        } else {
            Phase::Acquiring
        }
    }
}

/// The plans the cancellation tests run, by name.
pub fn plan(name: &str) -> Plan {
    let awaits = 3;
    match name {
        "all_ok" => Plan::ok(awaits),
        "body_err" => Plan::steps(Step::Ok, Step::Err, Step::Ok, awaits),
        "body_panic" => Plan::steps(Step::Ok, Step::Panic, Step::Ok, awaits),
        "release_err" => Plan::steps(Step::Ok, Step::Ok, Step::Err, awaits),
        "release_panic" => Plan::steps(Step::Ok, Step::Ok, Step::Panic, awaits),
        "acquire_err" => Plan::steps(Step::Err, Step::Ok, Step::Ok, awaits),
        "acquire_panic" => Plan::steps(Step::Panic, Step::Ok, Step::Ok, awaits),
        "release_sleeps" => Plan {
            release_sleep: Some(Duration::from_millis(5)),
            ..Plan::ok(awaits)
        },
        other => panic!("no plan {other}"),
    }
}

/// Drops a scope following `plan` after every possible number of polls.
pub async fn at_every_await_point(env: Env, plan: Plan) {
    let mut dropped_in = Vec::new();
    for k in 0.. {
        assert!(k <= 64, "{plan:?}: the scope never completes");
        let log = Log::new();
        env.incidents.clear();
        let before = env.rt.cleanup_stats();
        let probe = Probe::new(&log, plan, &env.rt);
        let mut scope =
            Stepper::new(probe.with(&env.rt, async move |conn| probe::body(conn, plan).await));
        let mut completed = false;
        for _ in 0..k {
            match scope.step().await {
                Polled::Pending => {}
                Polled::Ready(_) | Polled::Panicked(_) => {
                    completed = true;
                    break;
                }
            }
        }
        if completed {
            // The scope ran to its end within k polls: every drop point
            // before this one has been tried.
            drop(scope);
            let stats = drain(&env).await;
            log.check_released_once()
                .unwrap_or_else(|e| panic!("{plan:?}, completed: {e}"));
            assert_eq!(
                stats.spawned, before.spawned,
                "{plan:?}: nothing handed over"
            );
            break;
        }
        let phase = Phase::of(&log);
        drop(scope);
        let stats = drain(&env).await;
        check_after_drop(&env, plan, k, phase, &log, stats.spawned - before.spawned);
        dropped_in.push(phase);
    }
    // Every phase the plan reaches was really dropped in at least once.
    assert!(dropped_in.contains(&Phase::NotStarted));
    assert!(dropped_in.contains(&Phase::Acquiring), "{dropped_in:?}");
    if plan.acquire == Step::Ok {
        assert!(dropped_in.contains(&Phase::Body), "{dropped_in:?}");
        assert!(
            dropped_in.iter().any(|p| matches!(p, Phase::Releasing(_))),
            "{dropped_in:?}"
        );
    }
}

fn check_after_drop(env: &Env, plan: Plan, k: usize, phase: Phase, log: &Log, handed_over: u64) {
    let what = format!("{plan:?}, dropped after {k} polls in {phase:?}");
    let events = log.events();
    let released = log
        .check_released_once()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let incidents = env.incidents.all();
    let cancelled = ExitKind::Cancelled(Cancel::Dropped);

    // Which cleanup was handed over, what its release saw, what it reported.
    let (cleanups, exit, incident): (u64, Option<ExitKind>, Option<(CleanupKind, &str)>) =
        match phase {
            Phase::NotStarted => (0, None, None),
            Phase::Acquiring => match plan.acquire {
                Step::Ok => (
                    1,
                    Some(cancelled),
                    release_incident(plan, CleanupKind::FinishAcquire),
                ),
                // The acquire's failure has nobody left to be returned to.
                Step::Err => (1, None, Some((CleanupKind::FinishAcquire, "Acquire"))),
                Step::Panic => (
                    1,
                    None,
                    Some((CleanupKind::FinishAcquire, "probe: acquire panicked")),
                ),
            },
            Phase::Body => (
                1,
                Some(cancelled),
                release_incident(plan, CleanupKind::Release),
            ),
            Phase::Releasing(exit) => (1, Some(exit), release_incident(plan, CleanupKind::Release)),
        };

    assert_eq!(handed_over, cleanups, "{what}: cleanups handed over");
    match exit {
        Some(exit) => {
            assert_eq!(released.len(), 1, "{what}: {events:?}");
            assert_eq!(released[0].1, exit, "{what}: {events:?}");
            // The release ran to its end (or to its planned failure).
            let id = released[0].0;
            let ended = match plan.release {
                Step::Ok => events.contains(&Event::Released(id)),
                Step::Err => events.contains(&Event::ReleaseFailed(id)),
                Step::Panic => !incidents.is_empty(),
            };
            assert!(ended, "{what}: the release did not finish: {events:?}");
        }
        None => assert!(released.is_empty(), "{what}: {events:?}"),
    }
    if matches!(phase, Phase::Acquiring | Phase::Body | Phase::NotStarted) {
        assert!(
            !events.iter().any(|e| matches!(e, Event::BodyEnd(_))),
            "{what}: a dropped body does not go on: {events:?}"
        );
    }
    if phase == Phase::NotStarted {
        assert!(events.is_empty(), "{what}: an unpolled scope does nothing");
    }
    // Dropped while releasing, a failed body's error (or its panic) has
    // nobody left to be returned to: reported, first (at the drop).
    let unreturned = match (phase, plan.body) {
        (Phase::Releasing(_), Step::Err) => Some("Body"),
        (Phase::Releasing(_), Step::Panic) => Some("panic: probe: body panicked"),
        _ => None,
    };
    let incidents = match unreturned {
        None => incidents,
        Some(want) => {
            let first = incidents.first();
            assert!(
                matches!(first, Some(Incident::Unreturned { failure, .. }) if failure == want),
                "{what}: expected {want:?} unreturned, got {incidents:?}"
            );
            incidents[1..].to_vec()
        }
    };
    match incident {
        None => assert!(incidents.is_empty(), "{what}: {incidents:?}"),
        Some((kind, text)) => {
            assert_eq!(incidents.len(), 1, "{what}: {incidents:?}");
            let matches = match &incidents[0] {
                Incident::CleanupFailed { kind: k, error } => *k == kind && error == text,
                Incident::CleanupPanicked { kind: k, message } => *k == kind && message == text,
                _ => false,
            };
            assert!(
                matches,
                "{what}: expected {kind:?} {text:?}, got {incidents:?}"
            );
        }
    }
}

/// The incident a handed-over release reports, if the plan makes it fail.
fn release_incident(plan: Plan, kind: CleanupKind) -> Option<(CleanupKind, &'static str)> {
    match plan.release {
        Step::Ok => None,
        Step::Err => Some((kind, "Release")),
        Step::Panic => Some((kind, "probe: release panicked")),
    }
}

/// The compositions [`combinators_at_every_await_point`] drops.
pub const COMPOSITIONS: [&str; 7] = [
    "and_then",
    "zip",
    "nested",
    "nested_deep",
    "map",
    "timed",
    "stack",
];

/// A scope of the composition `which`, over probes following `plan`, as a
/// boxed future (its output checked: every composition here completes with
/// `Ok`).
fn composition<'a>(
    which: &'a str,
    log: &'a Log,
    plan: Plan,
    rt: &'a awith::Runtime,
) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
    use crate::suite::stack::StackError;
    use awith::stack::ExitStack;
    let probe = move || Probe::new(log, plan, rt);
    match which {
        "and_then" => Box::pin(async move {
            let (second_log, second_rt) = (log.clone(), rt.clone());
            let scope = probe()
                .and_then(move |_: &mut probe::Conn| Probe::new(&second_log, plan, &second_rt));
            let result = scope
                .with(rt, async move |(a, b)| {
                    probe::body(a, plan).await?;
                    probe::body(b, plan).await
                })
                .await;
            assert_eq!(result, Ok(42));
        }),
        "zip" => Box::pin(async move {
            let result = probe()
                .zip(probe())
                .with(rt, async move |(a, b)| {
                    probe::body(a, plan).await?;
                    probe::body(b, plan).await
                })
                .await;
            assert_eq!(result, Ok(42));
        }),
        "nested" => Box::pin(async move {
            let result = probe()
                .with(rt, async move |a| {
                    probe::body(a, plan).await?;
                    let inner = probe()
                        .with(rt, async move |b| probe::body(b, plan).await)
                        .await;
                    assert_eq!(inner, Ok(42));
                    probe::body(a, plan).await
                })
                .await;
            assert_eq!(result, Ok(42));
        }),
        // Four scopes nested, with a sibling scope that completes (its frame
        // pushed and popped) before the next level is entered: dropped
        // together, the releases still run innermost first, each waiting
        // for the one inside it — whatever frames came and went before.
        "nested_deep" => Box::pin(async move {
            let result = probe()
                .with(rt, async move |a| {
                    probe::body(a, plan).await?;
                    let sibling = probe()
                        .with(rt, async move |x| probe::body(x, plan).await)
                        .await;
                    assert_eq!(sibling, Ok(42));
                    let b = probe()
                        .with(rt, async move |b| {
                            let c = probe()
                                .with(rt, async move |c| {
                                    let d = probe()
                                        .with(rt, async move |d| probe::body(d, plan).await)
                                        .await;
                                    assert_eq!(d, Ok(42));
                                    probe::body(c, plan).await
                                })
                                .await;
                            assert_eq!(c, Ok(42));
                            probe::body(b, plan).await
                        })
                        .await;
                    assert_eq!(b, Ok(42));
                    probe::body(a, plan).await
                })
                .await;
            assert_eq!(result, Ok(42));
        }),
        "map" => Box::pin(async move {
            let result = probe()
                .map(|conn| (conn, 1u8), |(conn, _)| conn)
                .with(rt, async move |(conn, _)| probe::body(conn, plan).await)
                .await;
            assert_eq!(result, Ok(42));
        }),
        "timed" => Box::pin(async move {
            let hour = Duration::from_secs(3600);
            let result = probe()
                .acquire_timeout(hour)
                .body_timeout(hour)
                .release_timeout(hour)
                .with(rt, async move |conn| probe::body(conn, plan).await)
                .await;
            assert_eq!(result, Ok(42));
        }),
        "stack" => Box::pin(async move {
            let result = ExitStack::<StackError>::with(rt, async move |stack| {
                for _ in 0..3 {
                    let key = stack.enter(probe()).await?;
                    probe::body(&mut stack[key], plan)
                        .await
                        .map_err(|_| StackError::Body)?;
                }
                Ok(42)
            })
            .await;
            assert_eq!(result, Ok(42));
        }),
        other => panic!("no composition {other}"),
    }
}

/// Drops a composed scope after every possible number of steps. After each
/// drop, once drained: every acquired value released exactly once and
/// dropped once; a release that started after the drop was told
/// `Cancelled(Dropped)`, one that started before it `Completed` (the parts
/// of one composite start together); and for the
/// sequential compositions (`and_then`, nested scopes, an exit stack) each
/// value's release ended before the release of the value acquired before it
/// started — also when the releases ran as runtime tasks.
pub async fn combinators_at_every_await_point(env: Env, which: &str) {
    let plan = Plan {
        release_sleep: Some(Duration::from_millis(2)),
        ..Plan::ok(2)
    };
    let sequential = matches!(which, "and_then" | "nested" | "nested_deep" | "stack");
    let mut dropped_mid_way = 0;
    for k in 0.. {
        assert!(k <= 200, "{which}: the scope never completes");
        let log = Log::new();
        env.incidents.clear();
        let mut scope = Stepper::new(composition(which, &log, plan, &env.rt));
        let mut completed = false;
        for _ in 0..k {
            match scope.step().await {
                Polled::Pending => {}
                Polled::Ready(()) => {
                    completed = true;
                    break;
                }
                Polled::Panicked(panic) => std::panic::resume_unwind(panic),
            }
        }
        let drop_at = log.events().len();
        drop(scope);
        drain(&env).await;
        let what = format!("{which}, dropped after {k} steps");
        let events = log.events();
        let released = log
            .check_released_once()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        // The parts of one composite resource are released together: the
        // release functions of all parts are called when its release starts.
        let composite = matches!(which, "and_then" | "zip");
        let composite_began = events[..drop_at]
            .iter()
            .any(|e| matches!(e, Event::ReleaseStart(..)));
        for (id, exit) in &released {
            let start = events
                .iter()
                .position(|e| matches!(e, Event::ReleaseStart(i, _) if i == id))
                .unwrap_or_else(|| unreachable!());
            let began = start < drop_at || (composite && composite_began);
            let want = if !began {
                ExitKind::Cancelled(Cancel::Dropped)
            } else {
                ExitKind::Completed
            };
            assert_eq!(*exit, want, "{what}: value {id}: {events:?}");
        }
        if sequential {
            let mut acquired = log.acquired();
            if which == "nested_deep" && acquired.len() > 1 {
                // The sibling (acquired second) is no level of the nest.
                acquired.remove(1);
            }
            for pair in acquired.windows(2) {
                let (earlier, later) = (pair[0], pair[1]);
                let later_ended = events.iter().position(|e| *e == Event::Dropped(later));
                let earlier_started = events
                    .iter()
                    .position(|e| matches!(e, Event::ReleaseStart(i, _) if *i == earlier));
                assert!(
                    later_ended < earlier_started,
                    "{what}: {later} must be released before {earlier}: {events:?}"
                );
            }
        }
        let incidents = env.incidents.all();
        assert!(incidents.is_empty(), "{what}: {incidents:?}");
        if completed {
            break;
        }
        if !released.is_empty() && released.iter().any(|(_, e)| e.is_cancelled()) {
            dropped_mid_way += 1;
        }
    }
    assert!(dropped_mid_way > 0, "{which}: no drop hit a held resource");
}
