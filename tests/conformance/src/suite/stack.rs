//! `ExitStack`: the behaviours of CPython's `AsyncExitStack` that make sense
//! in Rust — exit order, suppression resetting the error for outer exits,
//! failures of several exits kept, panics, `pop_all`, and a dropped stack
//! releasing what is left.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use awith::rt::Incident;
use awith::stack::ExitStack;
use awith::{Cancel, Exit, ExitKind, Failure, PartError, ResourceExt, ScopeError, Verdict};
use futures::FutureExt;

use super::{assert_timeout_lost_to_panic, drain, panic_message};
use crate::probe::{Event, Log, Plan, Probe, ProbeError, Step};
use awith::test::Env;

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

/// The error a stack's exits are shown. (Before issue 9 the stack lent its
/// own error type; it lends the chain of failures in flight now.)
pub type Shown = Failure<StackError>;

/// The failures in flight an exit was shown, oldest first, as text.
pub trait InFlight {
    /// Each failure in flight, with `Debug`, oldest first.
    fn in_flight(&self) -> Vec<String>;
}

impl InFlight for StackError {
    fn in_flight(&self) -> Vec<String> {
        vec![format!("{self:?}")]
    }
}

impl<E: std::fmt::Debug> InFlight for Failure<E> {
    fn in_flight(&self) -> Vec<String> {
        self.errors().map(|e| format!("{e:?}")).collect()
    }
}

/// What each exit saw, by number, in the order they ran.
#[derive(Clone, Debug, Default)]
struct Seen(Arc<Mutex<Vec<(u32, String)>>>);

impl Seen {
    fn note<X: InFlight>(&self, n: u32, exit: &Exit<'_, X>) {
        let what = match exit {
            Exit::Failed(error) => format!("failed [{}]", error.in_flight().join(", ")),
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
    /// Suppresses when the failure most recently put in flight is
    /// `StackError::Exit(n)`: "suppress this close error".
    SuppressExit(u32),
    Fail,
    Panic,
}

fn push(stack: &mut ExitStack<StackError, Verdict>, seen: &Seen, n: u32, does: Does) {
    let seen = seen.clone();
    stack.push_exit(move |exit: &Exit<'_, Shown>| {
        seen.note(n, exit);
        let newest = match exit {
            Exit::Failed(error) => error.in_flight().pop(),
            _ => None,
        };
        async move {
            match does {
                Does::Nothing => Ok(Verdict::Propagate),
                Does::Suppress => Ok(Verdict::Suppress),
                Does::SuppressExit(m) if newest == Some(format!("Exit({m})")) => {
                    Ok(Verdict::Suppress)
                }
                Does::SuppressExit(_) => Ok(Verdict::Propagate),
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

/// The table of the module docs ("How exits see the scope"), case by case:
/// each exit is shown the failure most recently put in flight with the
/// failures chained before it; a suppressing exit removes what it was shown.
pub async fn suppression_table(env: Env) {
    use Does::{Fail, Nothing, Suppress};

    // An exit suppresses the body's error: exits after it see the scope as
    // completed, and `with` returns `Ok(None)`.
    let (result, seen_by) = run(&env, true, &[Nothing, Suppress, Nothing]).await;
    assert_eq!(result, Ok(None));
    assert_eq!(
        seen_by,
        seen(&[(3, "failed [Body]"), (2, "failed [Body]"), (1, "completed")])
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
        seen(&[(3, "completed"), (2, "completed"), (1, "failed [Exit(2)]")])
    );

    // Exits failing while the body's error is in flight: each is shown the
    // newest failure with the ones before it, and every failure is kept, the
    // body's primary, the exits' in the order they failed (CPython's
    // `test_exit_exception_with_correct_context`).
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
    assert_eq!(
        seen_by,
        seen(&[
            (3, "failed [Body]"),
            (2, "failed [Body, Exit(3)]"),
            (1, "failed [Body, Exit(3), Exit(2)]")
        ])
    );

    // Suppression drops the failure in flight with everything chained to
    // it — all of which the exit was shown.
    let (result, seen_by) = run(&env, true, &[Nothing, Suppress, Fail]).await;
    assert_eq!(result, Ok(None));
    assert_eq!(
        seen_by,
        seen(&[
            (3, "failed [Body]"),
            (2, "failed [Body, Exit(3)]"),
            (1, "completed")
        ])
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
        seen(&[
            (3, "failed [Body]"),
            (2, "completed"),
            (1, "failed [Exit(2)]")
        ])
    );

    // An exit's own failure can be suppressed too. As in nested scopes, the
    // body's output went with the failure: `Ok(None)`.
    let (result, seen_by) = run(&env, false, &[Suppress, Fail]).await;
    assert_eq!(result, Ok(None));
    assert_eq!(seen_by, seen(&[(2, "completed"), (1, "failed [Exit(2)]")]));

    // Suppressing a completed scope changes nothing.
    let (result, _) = run(&env, false, &[Suppress]).await;
    assert_eq!(result, Ok(Some(7)));
    assert!(env.incidents.all().is_empty());
}

/// Issue 9, item 16: a suppressing exit never drops a failure it was not
/// shown.
pub async fn suppression_drops_only_what_was_shown(env: Env) {
    use Does::{Fail, Suppress};

    // (a) The body fails, an inner exit fails, an outer exit suppresses: it
    // was shown the inner exit's failure (with the body's before it), so
    // both may go.
    let (result, seen_by) = run(&env, true, &[Suppress, Fail]).await;
    assert_eq!(result, Ok(None));
    assert_eq!(
        seen_by,
        seen(&[(2, "failed [Body]"), (1, "failed [Body, Exit(2)]")])
    );

    // (b) The body completes, exits 3 and 2 fail, exit 1 suppresses: it was
    // shown both failures (CPython's `test_exit_exception_chaining_suppress`).
    let (result, seen_by) = run(&env, false, &[Suppress, Fail, Fail]).await;
    assert_eq!(result, Ok(None));
    assert_eq!(
        seen_by,
        seen(&[
            (3, "completed"),
            (2, "failed [Exit(3)]"),
            (1, "failed [Exit(3), Exit(2)]")
        ])
    );
    assert!(env.incidents.all().is_empty());
}

/// Issue 9, item 17: an exit is shown the newest failure, so one that
/// suppresses an inner exit's close error can, also after the body failed —
/// as `async with suppress(CloseError)` around the nested scopes does.
pub async fn exits_see_the_newest_failure(env: Env) {
    use Does::{Fail, Nothing, SuppressExit};

    let (result, seen_by) = run(&env, true, &[SuppressExit(2), Fail]).await;
    assert_eq!(result, Ok(None), "the close error was the newest failure");
    assert_eq!(
        seen_by,
        seen(&[(2, "failed [Body]"), (1, "failed [Body, Exit(2)]")])
    );

    // Nothing to suppress when the close error is not the newest.
    let (result, _) = run(&env, true, &[SuppressExit(2), Nothing, Fail]).await;
    assert_eq!(
        result,
        Err(ScopeError::Body {
            error: StackError::Body,
            release: Some(Failure::Error(StackError::Exit(3)))
        })
    );
    let (result, _) = run(&env, true, &[SuppressExit(3), Fail, Fail]).await;
    assert_eq!(
        result,
        Err(ScopeError::Body {
            error: StackError::Body,
            release: Some(
                Failure::Error(StackError::Exit(3)).and(Failure::Error(StackError::Exit(2)))
            )
        })
    );
    assert!(env.incidents.all().is_empty());
}

/// CPython's `AsyncExitStack` tests (`test_contextlib.py`'s
/// `TestBaseExitStack`, run by `test_contextlib_async.py`), ported where
/// they make sense in Rust: an exception is an error value, a callback that
/// raises is an exit that fails, `__context__` is the chain an exit is shown.
pub async fn cpython_exit_stack_cases(env: Env) {
    use Does::{Fail, Nothing, Suppress};

    // test_exit_raise: an exit that does not suppress lets the error out.
    let (result, seen_by) = run(&env, true, &[Nothing]).await;
    assert_eq!(
        result,
        Err(ScopeError::Body {
            error: StackError::Body,
            release: None
        })
    );
    assert_eq!(seen_by, seen(&[(1, "failed [Body]")]));

    // test_exit_suppress, test_body_exception_suppress.
    let (result, _) = run(&env, true, &[Suppress]).await;
    assert_eq!(result, Ok(None));

    // test_exit_exception_chaining (and `_reference`, its nested-`with`
    // twin): IndexError, KeyError, AttributeError callbacks, a suppressing
    // exit, a ValueError callback, then `1 / 0`. The suppressing exit is
    // shown ValueError chained to ZeroDivisionError and drops both; the
    // three outer callbacks then fail in turn, each chained to the one
    // before: the scope raises IndexError -> KeyError -> AttributeError.
    let (result, seen_by) = run(&env, true, &[Fail, Fail, Fail, Suppress, Fail]).await;
    assert_eq!(
        result,
        Err(ScopeError::Release(
            Failure::Error(StackError::Exit(3))
                .and(Failure::Error(StackError::Exit(2)))
                .and(Failure::Error(StackError::Exit(1)))
        ))
    );
    assert_eq!(
        seen_by,
        seen(&[
            (5, "failed [Body]"),
            (4, "failed [Body, Exit(5)]"),
            (3, "completed"),
            (2, "failed [Exit(3)]"),
            (1, "failed [Exit(3), Exit(2)]"),
        ])
    );

    // test_exit_exception_non_suppressing: a failure after a completed body
    // comes out; one that was suppressed does not, and a later one does.
    let (result, _) = run(&env, false, &[Nothing, Fail]).await;
    assert_eq!(
        result,
        Err(ScopeError::Release(Failure::Error(StackError::Exit(2))))
    );
    let (result, seen_by) = run(&env, false, &[Fail, Suppress, Fail]).await;
    assert_eq!(
        result,
        Err(ScopeError::Release(Failure::Error(StackError::Exit(1))))
    );
    assert_eq!(
        seen_by,
        seen(&[(3, "completed"), (2, "failed [Exit(3)]"), (1, "completed")])
    );
    assert!(env.incidents.all().is_empty());

    // test_exit_exception_with_existing_context: an exit whose failure is
    // already several (a composite resource whose parts both failed to
    // release) joins the chain as one failure, its parts kept inside it.
    let log = Log::new();
    let noted = Seen::default();
    let failing = Plan::steps(Step::Ok, Step::Ok, Step::Err, 1);
    let result = ExitStack::<StackError, Verdict>::with(&env.rt, async |stack| {
        push(stack, &noted, 1, Fail);
        stack
            .enter(
                Probe::new(&log, failing, &env.rt)
                    .zip(Probe::new(&log, failing, &env.rt))
                    .map_err(PartError::into_inner),
            )
            .await?;
        Err::<u32, _>(StackError::Body)
    })
    .await;
    let both = Failure::Error(ProbeError::Release).and(Failure::Error(ProbeError::Release));
    assert_eq!(
        result,
        Err(ScopeError::Body {
            error: StackError::Body,
            release: Some(
                Failure::Error(StackError::Probe(both.clone()))
                    .and(Failure::Error(StackError::Exit(1)))
            )
        })
    );
    assert_eq!(
        noted.all(),
        seen(&[(1, &format!("failed [Body, {:?}]", StackError::Probe(both)))])
    );
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
        seen(&[(3, "completed"), (2, "failed [Exit(3)]"), (1, "panicked")])
    );
    // Exit 3's failure was in flight when exit 2 panicked: it cannot be
    // returned, so it is reported.
    let incidents = env.incidents.all();
    assert!(
        matches!(&incidents[..], [Incident::ErrorLostToPanic { error }] if error == "Exit(3)"),
        "{incidents:?}"
    );
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

/// Issue 9, item 18: an exit that panics after the body failed resumes its
/// panic, and the body's error (with the failures chained to it) is
/// reported, never dropped.
pub async fn panicking_exit_reports_the_failures_in_flight(env: Env) {
    let noted = Seen::default();
    let result = AssertUnwindSafe(ExitStack::<StackError, Verdict>::with(
        &env.rt,
        async |stack| {
            push(stack, &noted, 1, Does::Fail);
            push(stack, &noted, 2, Does::Panic);
            push(stack, &noted, 3, Does::Fail);
            Err::<u32, _>(StackError::Body)
        },
    ))
    .catch_unwind()
    .await;
    let panic = result.expect_err("the exit's panic resumes");
    assert_eq!(panic_message(&*panic), "probe: exit 2 panicked");
    assert_eq!(
        noted.all(),
        seen(&[
            (3, "failed [Body]"),
            (2, "failed [Body, Exit(3)]"),
            (1, "panicked")
        ])
    );
    let incidents = env.incidents.all();
    assert_eq!(
        incidents,
        [
            Incident::ErrorLostToPanic {
                error: "Body; Exit(3)".into()
            },
            Incident::ReleaseFailedDuringPanic {
                error: "Exit(1)".into()
            },
        ]
    );
}

// ---------------------------------------------------------------------------
// An exit stack behaves as the nested scopes it replaces.

/// The error of the nested-scopes comparison: the body's, a level's release
/// failure, a nested scope's error, several at once.
#[derive(Clone, Debug, PartialEq)]
pub enum NErr {
    /// The body failed.
    Boom,
    /// Level `n`'s release failed.
    Close(u32),
    /// A nested scope failed.
    Scope(Box<ScopeError<NErr, NErr>>),
    /// Several failures.
    Many(Box<Failure<NErr>>),
}

impl From<Failure<NErr>> for NErr {
    fn from(failure: Failure<NErr>) -> Self {
        match failure {
            Failure::Error(error) => error,
            failure => NErr::Many(Box::new(failure)),
        }
    }
}

impl InFlight for NErr {
    fn in_flight(&self) -> Vec<String> {
        fn failure(f: &Failure<NErr>, out: &mut Vec<String>) {
            f.errors().for_each(|e| out.extend(e.in_flight()));
        }
        let mut out = Vec::new();
        match self {
            NErr::Boom | NErr::Close(_) => out.push(format!("{self:?}")),
            NErr::Many(f) => failure(f, &mut out),
            NErr::Scope(scope) => match &**scope {
                ScopeError::Body { error, release } => {
                    out.extend(error.in_flight());
                    if let Some(f) = release {
                        failure(f, &mut out);
                    }
                }
                ScopeError::Release(f) | ScopeError::Acquire(f) => failure(f, &mut out),
                other => out.push(format!("{other:?}")),
            },
        }
        out
    }
}

/// A level of the comparison: a resource whose release notes what it was
/// shown and does what `does` says.
struct Level {
    n: u32,
    does: Does,
    seen: Seen,
}

impl<X: InFlight> awith::Resource<X> for Level {
    type Value = ();
    type Error = NErr;
    type Releaser = Level;

    #[allow(clippy::manual_async_fn)]
    fn acquire(
        self,
        _rt: &awith::Runtime,
    ) -> impl Future<Output = Result<((), Level), Failure<NErr>>> + Send + 'static {
        async move { Ok(((), self)) }
    }

    fn release(
        level: Level,
        (): (),
        exit: &Exit<'_, X>,
        _rt: &awith::Runtime,
    ) -> impl Future<Output = Result<Verdict, Failure<NErr>>> + Send + 'static {
        level.seen.note(level.n, exit);
        let newest = match exit {
            Exit::Failed(error) => error.in_flight().pop(),
            _ => None,
        };
        let Level { n, does, .. } = level;
        async move {
            crate::probe::yield_now().await;
            match does {
                Does::Nothing => Ok(Verdict::Propagate),
                Does::Suppress => Ok(Verdict::Suppress),
                Does::SuppressExit(m) if newest == Some(format!("Close({m})")) => {
                    Ok(Verdict::Suppress)
                }
                Does::SuppressExit(_) => Ok(Verdict::Propagate),
                Does::Fail => Err(Failure::Error(NErr::Close(n))),
                Does::Panic => panic!("probe: level {n} panicked"),
            }
        }
    }
}

/// How a comparison run ended, in a form both shapes share.
#[derive(Debug, PartialEq)]
enum Ended {
    Value(u32),
    Suppressed,
    Failed(Vec<String>),
    Panicked(String),
}

/// What the body of a comparison run does.
#[derive(Clone, Copy, Debug)]
enum BodyDoes {
    Ok,
    Err,
    Panic,
}

async fn body_does(does: BodyDoes) -> Result<u32, NErr> {
    crate::probe::yield_now().await;
    match does {
        BodyDoes::Ok => Ok(7),
        BodyDoes::Err => Err(NErr::Boom),
        BodyDoes::Panic => panic!("probe: body panicked"),
    }
}

type NestedFuture<'a> =
    std::pin::Pin<Box<dyn Future<Output = Result<Option<u32>, NErr>> + Send + 'a>>;

/// Levels `levels` as nested scopes, outermost first, around the body.
fn nested<'a>(
    rt: &'a awith::Runtime,
    levels: &'a [Does],
    first: u32,
    body: BodyDoes,
    seen: &'a Seen,
) -> NestedFuture<'a> {
    Box::pin(async move {
        let Some((does, rest)) = levels.split_first() else {
            return body_does(body).await.map(Some);
        };
        let level = Level {
            n: first,
            does: *does,
            seen: seen.clone(),
        };
        level
            .with_suppression(rt, |_: &mut ()| nested(rt, rest, first + 1, body, seen))
            .await
            .map(Option::flatten)
            .map_err(|e| NErr::Scope(Box::new(e)))
    })
}

/// Runs `run` catching its panic; how it ended, what the levels saw, and the
/// incidents (kind and the failures each names).
async fn compare_run<F>(env: &Env, seen: &Seen, run: F) -> (Ended, Vec<(u32, String)>, Vec<String>)
where
    F: Future<Output = Result<Option<u32>, NErr>>,
{
    env.incidents.clear();
    let ended = match AssertUnwindSafe(run).catch_unwind().await {
        Ok(Ok(Some(value))) => Ended::Value(value),
        Ok(Ok(None)) => Ended::Suppressed,
        Ok(Err(error)) => Ended::Failed(error.in_flight()),
        Err(panic) => Ended::Panicked(panic_message(&*panic).to_owned()),
    };
    let names = |text: &str| {
        let mut found = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find(['B', 'C']) {
            rest = &rest[at..];
            if rest.starts_with("Boom") {
                found.push("Boom".to_owned());
            } else if let Some(close) = rest.strip_prefix("Close(") {
                let end = close.find(')').unwrap();
                found.push(format!("Close({})", &close[..end]));
            }
            rest = &rest[1..];
        }
        found.join(" ")
    };
    let incidents = env
        .incidents
        .all()
        .iter()
        .map(|incident| match incident {
            Incident::ErrorLostToPanic { error } => format!("lost: {}", names(error)),
            Incident::ReleaseFailedDuringPanic { error } => format!("failed: {}", names(error)),
            Incident::ReleasePanickedDuringPanic { message } => format!("panicked: {message}"),
            other => format!("{other:?}"),
        })
        .collect();
    (ended, seen.all(), incidents)
}

/// Issue 9, item 17: the same resources give the same exits, suppressions,
/// result and incidents in an `ExitStack` and as nested scopes (CPython's
/// `test_exit_exception_chaining_reference`, for every combination of
/// three levels that pass, suppress, suppress the next level's close error,
/// fail or panic, around a body that completes, fails or panics).
pub async fn stack_matches_nested_scopes(env: Env) {
    const DOES: [Does; 5] = [
        Does::Nothing,
        Does::Suppress,
        Does::SuppressExit(0),
        Does::Fail,
        Does::Panic,
    ];
    let mut compared = 0;
    for a in DOES {
        for b in DOES {
            for c in DOES {
                for body in [BodyDoes::Ok, BodyDoes::Err, BodyDoes::Panic] {
                    // `SuppressExit(0)` at level n suppresses level n + 1's
                    // close error.
                    let levels: Vec<Does> = [a, b, c]
                        .iter()
                        .enumerate()
                        .map(|(i, does)| match does {
                            Does::SuppressExit(_) => Does::SuppressExit(i as u32 + 2),
                            other => *other,
                        })
                        .collect();
                    let seen = Seen::default();
                    let as_nested =
                        compare_run(&env, &seen, nested(&env.rt, &levels, 1, body, &seen)).await;
                    let seen = Seen::default();
                    let stacked = ExitStack::<NErr, Verdict>::with(&env.rt, async |stack| {
                        for (i, does) in levels.iter().enumerate() {
                            stack
                                .enter(Level {
                                    n: i as u32 + 1,
                                    does: *does,
                                    seen: seen.clone(),
                                })
                                .await?;
                        }
                        body_does(body).await
                    });
                    let stacked = async { stacked.await.map_err(|e| NErr::Scope(Box::new(e))) };
                    let as_stack = compare_run(&env, &seen, stacked).await;
                    assert_eq!(
                        as_stack, as_nested,
                        "levels {levels:?} (outermost first), body {body:?}: the stack (left) and nested scopes (right) differ"
                    );
                    compared += 1;
                }
            }
        }
    }
    assert_eq!(compared, 375);
    assert_eq!(drain(&env).await.spawned, 0);
}

// ---------------------------------------------------------------------------
// Body timeouts of entered resources (issue 9, item 15).

/// A resource entered into `ExitStack::with` bounds the stack's body from
/// the moment it is entered: at the deadline the body is dropped, every exit
/// is told `Cancelled(Timeout)`, and the scope fails with `BodyTimeout`. Of
/// several bounds, the one due first fires.
pub async fn entered_body_timeout_bounds_the_body(env: Env) {
    let sec = std::time::Duration::from_secs(1);
    let log = Log::new();
    let start = env.rt.now();
    let result = ExitStack::<StackError>::with(&env.rt, async |stack| {
        stack.enter(Probe::new(&log, Plan::ok(1), &env.rt)).await?;
        env.rt.sleep(sec).await;
        stack
            .enter(Probe::new(&log, Plan::ok(1), &env.rt).body_timeout(3 * sec))
            .await?;
        env.rt.sleep(sec).await;
        stack
            .enter(Probe::new(&log, Plan::ok(1), &env.rt).body_timeout(5 * sec))
            .await?;
        env.rt.sleep(10 * sec).await;
        Ok(7)
    })
    .await;
    assert_eq!(
        result,
        Err(ScopeError::BodyTimeout {
            after: 3 * sec,
            release: None
        })
    );
    let waited = env.rt.now() - start;
    if env.virtual_time {
        assert_eq!(waited, 4 * sec);
    }
    assert!(waited >= 4 * sec && waited < 10 * sec, "{waited:?}");
    let released = log.check_released_once().unwrap();
    assert_eq!(released.len(), 3);
    assert!(
        released
            .iter()
            .all(|(_, exit)| *exit == ExitKind::Cancelled(Cancel::Timeout)),
        "{released:?}"
    );

    // The exits' failures travel with the timeout; an exit after a failed
    // one is shown it.
    let log = Log::new();
    let noted = Seen::default();
    let failing = Plan::steps(Step::Ok, Step::Ok, Step::Err, 1);
    let result = ExitStack::<StackError, Verdict>::with(&env.rt, async |stack| {
        push(stack, &noted, 1, Does::Nothing);
        stack
            .enter(Probe::new(&log, failing, &env.rt).body_timeout(sec))
            .await?;
        std::future::pending::<()>().await;
        Ok(7)
    })
    .await;
    assert_eq!(
        result,
        Err(ScopeError::BodyTimeout {
            after: sec,
            release: Some(Failure::Error(StackError::Probe(Failure::Error(
                ProbeError::Release
            ))))
        })
    );
    assert_eq!(noted.all(), seen(&[(1, "failed [Probe(Error(Release))]")]));
    assert!(env.incidents.all().is_empty());
}

/// A stack of your own (`ExitStack::new`) has no body to bound: a resource
/// with a body timeout is refused before it is acquired, and one whose bound
/// is only known once acquired (`and_then`'s second part) is released at
/// once; the enter fails either way, saying why.
pub async fn standalone_stack_refuses_a_body_timeout(env: Env) {
    let sec = std::time::Duration::from_secs(1);
    let log = Log::new();
    let mut stack = ExitStack::<StackError>::new(&env.rt);
    let refused = stack
        .enter(Probe::new(&log, Plan::ok(1), &env.rt).body_timeout(3 * sec))
        .await;
    let failure = refused.expect_err("a stack without a body cannot bound one");
    assert!(failure.to_string().contains("no body"), "{failure}");
    assert!(log.acquired().is_empty(), "refused before acquiring");
    assert!(stack.is_empty());

    let (second_log, rt) = (log.clone(), env.rt.clone());
    let late =
        Probe::new(&log, Plan::ok(1), &env.rt).and_then(move |_: &mut crate::probe::Conn| {
            Probe::new(&second_log, Plan::ok(1), &rt).body_timeout(3 * sec)
        });
    let refused = stack.enter(late.map_err(PartError::into_inner)).await;
    let failure = refused.expect_err("a stack without a body cannot bound one");
    assert!(failure.to_string().contains("no body"), "{failure}");
    assert!(stack.is_empty());
    let released = log.check_released_once().unwrap();
    assert_eq!(released.len(), 2);
    assert!(
        released
            .iter()
            .all(|(_, exit)| *exit == ExitKind::Cancelled(Cancel::Timeout)),
        "{released:?}"
    );
    // A bound that can never expire is none: nothing to refuse.
    let key = stack
        .enter(Probe::new(&log, Plan::ok(1), &env.rt).body_timeout(std::time::Duration::MAX))
        .await
        .expect("no bound to keep");
    assert!(stack.get(key).is_some());
    stack.close().await.unwrap();
    assert_eq!(log.check_released_once().unwrap().len(), 3);
    assert!(env.incidents.all().is_empty());
}

// ---------------------------------------------------------------------------
// Hanging and panicking user code around a stack.

/// A stack dropped with entries left exits them as a cleanup task, each exit
/// bounded on its own: one that hangs is dropped at the cleanup timeout —
/// and one whose future panics when dropped there costs the exits after it
/// nothing. Everything is reported, nothing is left unreleased.
pub async fn detached_exits_survive_hangs_and_panics(env: Env) {
    let bound = std::time::Duration::from_millis(50);
    let (rt, incidents) = awith::test::recording_runtime(env.binding.clone(), bound);
    for drop_panics in [false, true] {
        incidents.clear();
        let log = Log::new();
        let hangs = Plan {
            release_hangs: true,
            release_drop_panics: drop_panics,
            ..Plan::ok(1)
        };
        let mut stack = ExitStack::<StackError>::new(&rt);
        for plan in [Plan::ok(1), hangs, Plan::ok(1)] {
            stack.enter(Probe::new(&log, plan, &rt)).await.unwrap();
        }
        drop(stack);
        let stats = rt.drain(super::DRAIN).await.unwrap();
        assert_eq!(stats.pending, 0);
        let ids = log.acquired();
        let events = log.events();
        assert!(events.contains(&Event::Released(ids[2])));
        assert!(events.contains(&Event::ReleaseDropped(ids[1])));
        assert!(
            events.contains(&Event::Released(ids[0])),
            "the exit after the hung one still ran: {events:?}"
        );
        log.check_released_once().unwrap();
        let seen = incidents.all();
        let want = if drop_panics {
            "panic: probe: release dropped unfinished"
        } else {
            "an exit timed out after 50ms"
        };
        assert!(
            matches!(&seen[..], [Incident::CleanupFailed { error, .. }] if error == want),
            "{seen:?}"
        );
    }
}

/// A stack's scope cancelled while exiting: the exit in flight and the rest
/// finish as a cleanup task, and what was in flight (a failure of an exit
/// that ran before) has nobody left to be returned to: it is reported.
pub async fn cancelled_while_exiting_reports_what_was_in_flight(env: Env) {
    let log = Log::new();
    let gate = crate::probe::Gate::default();
    let noted = Seen::default();
    let hangs = Plan {
        release_hangs: true,
        ..Plan::ok(1)
    };
    let mut scope = super::Stepper::new(ExitStack::<StackError, Verdict>::with(
        &env.rt,
        async |stack| {
            stack
                .enter(Probe::new(&log, hangs, &env.rt).gated(&gate))
                .await?;
            push(stack, &noted, 2, Does::Fail);
            Ok(7)
        },
    ));
    while !log
        .events()
        .iter()
        .any(|e| matches!(e, Event::ReleaseStart(..)))
    {
        assert!(matches!(scope.step().await, super::Polled::Pending));
    }
    drop(scope);
    gate.open();
    drain(&env).await;
    assert_eq!(
        log.check_released_once().unwrap()[0].1,
        ExitKind::Failed,
        "it was shown exit 2's failure"
    );
    assert!(
        log.events().contains(&Event::Released(log.acquired()[0])),
        "the exit in flight finished: {:?}",
        log.events()
    );
    let incidents = env.incidents.all();
    assert!(
        matches!(&incidents[..], [Incident::Unreturned { failure, .. }] if failure == "Exit(2)"),
        "{incidents:?}"
    );
}

/// A stack's body whose future panics when dropped at an entered resource's
/// body timeout: the panic is the body's (every exit is told `Panicked`,
/// then it resumes), and the timeout it replaced is reported.
pub async fn body_dropped_at_entered_timeout_panics(env: Env) {
    let log = Log::new();
    let after = std::time::Duration::from_millis(20);
    let result = AssertUnwindSafe(ExitStack::<StackError>::with(&env.rt, async |stack| {
        let _bomb = super::outcome::DropBomb("stack body");
        stack
            .enter(Probe::new(&log, Plan::ok(1), &env.rt).body_timeout(after))
            .await?;
        std::future::pending::<()>().await;
        Ok(7)
    }))
    .catch_unwind()
    .await;
    let panic = result.expect_err("the drop's panic resumes");
    assert_eq!(panic_message(&*panic), "probe: stack body dropped");
    assert_eq!(log.check_released_once().unwrap()[0].1, ExitKind::Panicked);
    assert_timeout_lost_to_panic(&env);
}

/// The functions a stack calls panic — an entered resource's acquire
/// function (in the body: a body panic), a pushed exit's function (it builds
/// no future: a panic in flight, the failures before it reported) — and
/// every exit still runs.
pub async fn stack_functions_that_panic(env: Env) {
    let log = Log::new();
    let result = AssertUnwindSafe(ExitStack::<StackError>::with(&env.rt, async |stack| {
        stack.enter(Probe::new(&log, Plan::ok(1), &env.rt)).await?;
        let panics = awith::resource(
            || -> std::future::Ready<Result<(), ProbeError>> {
                panic!("probe: acquire fn panicked")
            },
            |(), _| async { Ok(()) },
        );
        stack.enter(panics).await?;
        Ok(7)
    }))
    .catch_unwind()
    .await;
    let panic = result.expect_err("the panic resumes");
    assert_eq!(panic_message(&*panic), "probe: acquire fn panicked");
    assert_eq!(log.check_released_once().unwrap()[0].1, ExitKind::Panicked);
    assert!(env.incidents.all().is_empty());

    let noted = Seen::default();
    let result = AssertUnwindSafe(ExitStack::<StackError, Verdict>::with(
        &env.rt,
        async |stack| {
            push(stack, &noted, 1, Does::Fail);
            stack.push_exit(
                |_: &Exit<'_, Shown>| -> std::future::Ready<Result<(), StackError>> {
                    panic!("probe: exit fn panicked")
                },
            );
            push(stack, &noted, 3, Does::Fail);
            Err::<u32, _>(StackError::Body)
        },
    ))
    .catch_unwind()
    .await;
    let panic = result.expect_err("the panic resumes");
    assert_eq!(panic_message(&*panic), "probe: exit fn panicked");
    assert_eq!(noted.all(), seen(&[(3, "failed [Body]"), (1, "panicked")]));
    assert_eq!(
        env.incidents.all(),
        [
            Incident::ErrorLostToPanic {
                error: "Body; Exit(3)".into()
            },
            Incident::ReleaseFailedDuringPanic {
                error: "Exit(1)".into()
            },
        ]
    );
}

/// A stack whose body timed out, and an exit that then panics: the panic
/// resumes and the timeout (the scope's error) is reported, as a scope
/// reports it when its release panics.
pub async fn entered_timeout_then_exit_panics(env: Env) {
    let log = Log::new();
    let noted = Seen::default();
    let after = std::time::Duration::from_millis(20);
    let result = AssertUnwindSafe(ExitStack::<StackError, Verdict>::with(
        &env.rt,
        async |stack| {
            push(stack, &noted, 1, Does::Nothing);
            push(stack, &noted, 2, Does::Panic);
            stack
                .enter(Probe::new(&log, Plan::ok(1), &env.rt).body_timeout(after))
                .await?;
            std::future::pending::<()>().await;
            Ok(7)
        },
    ))
    .catch_unwind()
    .await;
    let panic = result.expect_err("the exit's panic resumes");
    assert_eq!(panic_message(&*panic), "probe: exit 2 panicked");
    assert_eq!(
        noted.all(),
        seen(&[(2, "cancelled (timeout)"), (1, "panicked")])
    );
    assert_timeout_lost_to_panic(&env);
}

/// Keys: equal exactly when they name the same entry of the same stack;
/// their `Debug` says which; indexing with another stack's key panics,
/// saying which key. (And a stack's own length and `Debug`.)
pub async fn keys_name_their_entries(env: Env) {
    let log = Log::new();
    let mut first = ExitStack::<StackError>::new(&env.rt);
    let a = first
        .enter(Probe::new(&log, Plan::ok(0), &env.rt))
        .await
        .unwrap();
    let b = first
        .enter(Probe::new(&log, Plan::ok(0), &env.rt))
        .await
        .unwrap();
    let mut second = ExitStack::<StackError>::new(&env.rt);
    let c = second
        .enter(Probe::new(&log, Plan::ok(0), &env.rt))
        .await
        .unwrap();
    assert!(!first.is_empty() && first.len() == 2);
    assert_eq!(
        format!("{first:?}"),
        "ExitStack { entries: 2, has_body: false, .. }"
    );
    let copy = a;
    assert!(a == copy);
    assert!(a != b);
    assert!(a != c, "the same index on another stack is another key");
    let shown = format!("{a:?}");
    assert!(shown.starts_with("Key { index: 0, stack: "), "{shown}");
    assert_ne!(shown, format!("{c:?}"));
    assert_eq!(format!("{b:?}").replace("index: 1", "index: 0"), shown);
    let foreign = std::panic::catch_unwind(AssertUnwindSafe(|| first[c].id));
    let message = panic_message(&*foreign.expect_err("a key of another stack")).to_owned();
    assert_eq!(message, format!("{c:?} is not a value of this exit stack"));
    first.close().await.unwrap();
    second.close().await.unwrap();
    assert_eq!(log.check_released_once().unwrap().len(), 3);
}

/// An error whose `Drop` panics: the second time it is dropped it is fine.
#[derive(Debug)]
pub struct DropsWithAPanic(u32);

impl Drop for DropsWithAPanic {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("probe: error {} panicked when dropped", self.0);
        }
    }
}

/// A suppressed failure whose `Drop` panics: that panic is put in flight
/// like any exit's (the exits after it are told `Panicked`, in the scope),
/// and it resumes at the end.
pub async fn suppressed_failure_panics_when_dropped(env: Env) {
    let noted = Arc::new(Mutex::new(Vec::new()));
    let note = |n: u32| {
        let noted = Arc::clone(&noted);
        move |exit: &Exit<'_, Failure<DropsWithAPanic>>| {
            noted.lock().unwrap().push((n, exit.kind()));
        }
    };
    let result = AssertUnwindSafe(ExitStack::<DropsWithAPanic, Verdict>::with(
        &env.rt,
        async |stack| {
            let (one, two) = (note(1), note(2));
            stack.push_exit(move |exit: &Exit<'_, Failure<DropsWithAPanic>>| {
                one(exit);
                async { Ok(()) }
            });
            stack.push_exit(move |exit: &Exit<'_, Failure<DropsWithAPanic>>| {
                two(exit);
                async { Ok(Verdict::Suppress) }
            });
            stack.push_exit(|_: &Exit<'_, Failure<DropsWithAPanic>>| async {
                Err::<(), _>(DropsWithAPanic(3))
            });
            Ok(7)
        },
    ))
    .catch_unwind()
    .await;
    let panic = result.expect_err("the drop's panic resumes");
    assert_eq!(
        panic_message(&*panic),
        "probe: error 3 panicked when dropped"
    );
    assert_eq!(
        *noted.lock().unwrap(),
        [(2, ExitKind::Failed), (1, ExitKind::Panicked)]
    );
    assert_eq!(drain(&env).await.spawned, 0, "every exit ran in the scope");
    assert!(env.incidents.all().is_empty());
}
