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

use std::time::Duration;

use awith::rt::{CleanupKind, Incident};
use awith::{Cancel, ExitKind, ResourceExt};

use super::{Polled, Stepper, drain};
use crate::harness::Env;
use crate::probe::{self, Event, Log, Plan, Probe, Step};

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
                Step::Err => (1, None, None),
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
