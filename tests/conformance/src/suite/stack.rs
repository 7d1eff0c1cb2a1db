//! `ExitStack`: the behaviours of CPython's `AsyncExitStack` that make sense
//! in Rust — exit order, suppression resetting the error for outer exits,
//! failures of several exits kept, panics, `pop_all`, and a dropped stack
//! releasing what is left.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use awith::stack::ExitStack;
use awith::{Cancel, Exit, ExitKind, Failure, ScopeError, Verdict};
use futures::FutureExt;

use super::{drain, panic_message};
use crate::harness::Env;
use crate::probe::{Event, Log, Plan, Probe, ProbeError, Step};

/// The error a stack's body and exits fail with.
#[derive(Clone, Debug, PartialEq)]
pub enum StackError {
    /// The body failed.
    Body,
    /// Exit `n` failed.
    Exit(u32),
    /// A probe failed.
    Probe(Failure<ProbeError>),
}

impl From<Failure<ProbeError>> for StackError {
    fn from(failure: Failure<ProbeError>) -> Self {
        StackError::Probe(failure)
    }
}

/// What each exit saw, by number, in the order they ran.
#[derive(Clone, Debug, Default)]
struct Seen(Arc<Mutex<Vec<(u32, String)>>>);

impl Seen {
    fn note(&self, n: u32, exit: &Exit<'_, StackError>) {
        let what = match exit {
            Exit::Failed(error) => format!("failed {error:?}"),
            other => other.to_string(),
        };
        self.0.lock().unwrap().push((n, what));
    }

    fn all(&self) -> Vec<(u32, String)> {
        self.0.lock().unwrap().clone()
    }
}

/// What one pushed exit does.
#[derive(Clone, Copy, Debug)]
enum Does {
    Nothing,
    Suppress,
    Fail,
    Panic,
}

fn push(stack: &mut ExitStack<StackError, Verdict>, seen: &Seen, n: u32, does: Does) {
    let seen = seen.clone();
    stack.push_exit(move |exit: &Exit<'_, StackError>| {
        seen.note(n, exit);
        async move {
            match does {
                Does::Nothing => Ok(Verdict::Propagate),
                Does::Suppress => Ok(Verdict::Suppress),
                Does::Fail => Err(StackError::Exit(n)),
                Does::Panic => panic!("probe: exit {n} panicked"),
            }
        }
    });
}

/// Runs a stack whose exits 1..=n (pushed in that order, so exited n..=1) do
/// what `exits` says, after a body that fails or not; returns the result and
/// what each exit saw.
async fn run(
    env: &Env,
    body_fails: bool,
    exits: &[Does],
) -> (
    Result<Option<u32>, ScopeError<StackError, StackError>>,
    Vec<(u32, String)>,
) {
    let seen = Seen::default();
    let result = ExitStack::<StackError, Verdict>::with(&env.rt, async |stack| {
        for (n, does) in exits.iter().enumerate() {
            push(stack, &seen, n as u32 + 1, *does);
        }
        if body_fails {
            Err(StackError::Body)
        } else {
            Ok(7)
        }
    })
    .await;
    (result, seen.all())
}

fn seen(list: &[(u32, &str)]) -> Vec<(u32, String)> {
    list.iter().map(|(n, s)| (*n, (*s).to_owned())).collect()
}

/// Exits run in reverse order of pushing; resources and callbacks
/// interleave; every exit sees the completed scope.
pub async fn exits_run_in_reverse_order(env: Env) {
    let log = Log::new();
    let order = Arc::new(Mutex::new(Vec::new()));
    let result = ExitStack::<StackError>::with(&env.rt, async |stack| {
        let mut keys = Vec::new();
        for n in 0..3 {
            keys.push(stack.enter(Probe::new(&log, Plan::ok(1), &env.rt)).await?);
            let order = Arc::clone(&order);
            stack.push_callback(move |exit| async move {
                order.lock().unwrap().push((n, exit));
                Ok(())
            });
        }
        assert_eq!(stack.len(), 6);
        Ok(keys.iter().map(|key| stack[*key].id).sum::<u64>())
    })
    .await;
    let ids = log.acquired();
    assert_eq!(result, Ok(ids.iter().sum::<u64>()));
    assert_eq!(
        *order.lock().unwrap(),
        [
            (2, ExitKind::Completed),
            (1, ExitKind::Completed),
            (0, ExitKind::Completed)
        ]
    );
    let released = log.check_released_once().unwrap();
    assert!(
        released
            .iter()
            .all(|(_, exit)| *exit == ExitKind::Completed)
    );
    let events = log.events();
    let started = |id| {
        events
            .iter()
            .position(|e| matches!(e, Event::ReleaseStart(i, _) if *i == id))
            .unwrap()
    };
    assert!(started(ids[2]) < started(ids[1]) && started(ids[1]) < started(ids[0]));
}

/// The suppression table of the module docs, case by case.
pub async fn suppression_table(env: Env) {
    use Does::{Fail, Nothing, Suppress};

    // An exit suppresses the body's error: exits after it see the scope as
    // completed, and `with` returns `Ok(None)`.
    let (result, seen_by) = run(&env, true, &[Nothing, Suppress, Nothing]).await;
    assert_eq!(result, Ok(None));
    assert_eq!(
        seen_by,
        seen(&[(3, "failed Body"), (2, "failed Body"), (1, "completed")])
    );

    // A failing exit after a completed body: later exits see its error,
    // which the scope fails with.
    let (result, seen_by) = run(&env, false, &[Nothing, Fail, Nothing]).await;
    assert_eq!(
        result,
        Err(ScopeError::Release(Failure::Error(StackError::Exit(2))))
    );
    assert_eq!(
        seen_by,
        seen(&[(3, "completed"), (2, "completed"), (1, "failed Exit(2)")])
    );

    // Exits failing while the body's error is in flight: all see the body's
    // error, and every failure is kept, in the order the exits ran.
    let (result, seen_by) = run(&env, true, &[Fail, Fail, Fail]).await;
    let Err(ScopeError::Body {
        error,
        release: Some(release),
    }) = result
    else {
        panic!("{result:?}")
    };
    assert_eq!(error, StackError::Body);
    assert_eq!(
        release.errors().cloned().collect::<Vec<_>>(),
        [
            StackError::Exit(3),
            StackError::Exit(2),
            StackError::Exit(1)
        ]
    );
    assert!(seen_by.iter().all(|(_, s)| s == "failed Body"));

    // Suppression drops the error in flight with everything chained to it.
    let (result, seen_by) = run(&env, true, &[Nothing, Suppress, Fail]).await;
    assert_eq!(result, Ok(None));
    assert_eq!(
        seen_by,
        seen(&[(3, "failed Body"), (2, "failed Body"), (1, "completed")])
    );

    // A failure after the body's error was suppressed is what the scope
    // fails with (Python raises the new exception).
    let (result, seen_by) = run(&env, true, &[Nothing, Fail, Suppress]).await;
    assert_eq!(
        result,
        Err(ScopeError::Release(Failure::Error(StackError::Exit(2))))
    );
    assert_eq!(
        seen_by,
        seen(&[(3, "failed Body"), (2, "completed"), (1, "failed Exit(2)")])
    );

    // An exit's own failure can be suppressed too: the scope then completes.
    let (result, seen_by) = run(&env, false, &[Suppress, Fail]).await;
    assert_eq!(result, Ok(Some(7)));
    assert_eq!(seen_by, seen(&[(2, "completed"), (1, "failed Exit(2)")]));

    // Suppressing a completed scope changes nothing.
    let (result, _) = run(&env, false, &[Suppress]).await;
    assert_eq!(result, Ok(Some(7)));
    assert!(env.incidents.all().is_empty());
}

/// A panicking exit: every other exit still runs (later ones see
/// `Panicked`), then the panic resumes; a failure lost with it is reported.
pub async fn panicking_exit(env: Env) {
    let noted = Seen::default();
    let result = AssertUnwindSafe(ExitStack::<StackError, Verdict>::with(
        &env.rt,
        async |stack| {
            push(stack, &noted, 1, Does::Nothing);
            push(stack, &noted, 2, Does::Panic);
            push(stack, &noted, 3, Does::Fail);
            Ok(7)
        },
    ))
    .catch_unwind()
    .await;
    let panic = result.expect_err("the exit's panic resumes");
    assert_eq!(panic_message(&*panic), "probe: exit 2 panicked");
    assert_eq!(
        noted.all(),
        seen(&[(3, "completed"), (2, "failed Exit(3)"), (1, "panicked")])
    );
    let incidents = env.incidents.all();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
}

/// An enter whose acquire fails: `?` fails the body, and the resources
/// entered before it are released in reverse order, told the body failed.
pub async fn enter_failure_unwinds(env: Env) {
    let log = Log::new();
    let result = ExitStack::<StackError>::with(&env.rt, async |stack| {
        stack.enter(Probe::new(&log, Plan::ok(1), &env.rt)).await?;
        stack.enter(Probe::new(&log, Plan::ok(1), &env.rt)).await?;
        stack
            .enter(Probe::new(
                &log,
                Plan::steps(Step::Err, Step::Ok, Step::Ok, 1),
                &env.rt,
            ))
            .await?;
        Ok(())
    })
    .await;
    assert_eq!(
        result,
        Err(ScopeError::Body {
            error: StackError::Probe(Failure::Error(ProbeError::Acquire)),
            release: None
        })
    );
    let ids = log.acquired();
    assert_eq!(
        log.check_released_once().unwrap(),
        [(ids[0], ExitKind::Failed), (ids[1], ExitKind::Failed)]
    );
    let events = log.events();
    let started = |id| {
        events
            .iter()
            .position(|e| matches!(e, Event::ReleaseStart(i, _) if *i == id))
            .unwrap()
    };
    assert!(started(ids[1]) < started(ids[0]));
}

/// `pop_all` moves the entries out of the scope: nothing is released when it
/// ends; the new stack's keys still work, and closing it releases them.
pub async fn pop_all_moves_ownership(env: Env) {
    let log = Log::new();
    let (mut moved, keys) = ExitStack::<StackError>::with(&env.rt, async |stack| {
        let a = stack.enter(Probe::new(&log, Plan::ok(1), &env.rt)).await?;
        let b = stack.enter(Probe::new(&log, Plan::ok(1), &env.rt)).await?;
        let moved = stack.pop_all();
        assert!(stack.is_empty());
        assert!(stack.get(a).is_none(), "keys move with the entries");
        Ok((moved, (a, b)))
    })
    .await
    .expect("the scope completes");
    assert!(
        log.check_released_once().is_err(),
        "nothing released yet: {:?}",
        log.events()
    );
    assert_eq!(moved[keys.0].id, log.acquired()[0]);
    moved[keys.1].id += 0;
    moved.close().await.expect("the releases succeed");
    let ids = log.acquired();
    assert_eq!(
        log.check_released_once().unwrap(),
        [(ids[0], ExitKind::Completed), (ids[1], ExitKind::Completed)]
    );
}

/// A stack dropped with entries left releases them as a runtime cleanup
/// task, in reverse order, told `Cancelled(Dropped)`.
pub async fn dropped_stack_releases(env: Env) {
    let log = Log::new();
    let mut stack = ExitStack::<StackError>::new(&env.rt);
    for _ in 0..3 {
        stack
            .enter(Probe::new(&log, Plan::ok(2), &env.rt))
            .await
            .unwrap();
    }
    drop(stack);
    let stats = drain(&env).await;
    assert_eq!((stats.spawned, stats.completed), (1, 1));
    let ids = log.acquired();
    let released = log.check_released_once().unwrap();
    assert!(
        released
            .iter()
            .all(|(_, exit)| *exit == ExitKind::Cancelled(Cancel::Dropped))
    );
    let events = log.events();
    let ended = |id| {
        events
            .iter()
            .position(|e| *e == Event::Dropped(id))
            .unwrap()
    };
    let started = |id| {
        events
            .iter()
            .position(|e| matches!(e, Event::ReleaseStart(i, _) if *i == id))
            .unwrap()
    };
    assert!(ended(ids[2]) < started(ids[1]) && ended(ids[1]) < started(ids[0]));
}
