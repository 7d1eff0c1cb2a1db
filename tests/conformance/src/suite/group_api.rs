//! The task group as anyio and trio users look for it (issue 10): the body
//! or a child cancels its own group, with a reason the children see; a
//! [`Spawner`] children hold to start siblings; `start` / `started`; task
//! names in errors, incidents and `Debug`.
//!
//! Ported from the cases of anyio's `tests/test_taskgroups.py`:
//! `test_cancel`, `test_cancel_with_reason`, `test_cancel_twice`,
//! `test_level_cancellation` (the body cancels); `test_start_soon_while_running`
//! (spawn from a child); `test_already_closed`, `test_start_soon_after_error`,
//! `test_start_already_closed` (a spawner used after the group ended);
//! `test_start_with_value`, `test_start_no_value`,
//! `test_start_crash_before_started_call`, `test_start_crash_after_started_call`,
//! `test_start_no_started_call`, `test_start_cancelled`,
//! `test_no_called_started_twice` (start / started). anyio's
//! `test_start_called_twice` does not port: `Started::started` takes the
//! token by value, so a second call does not compile (a `compile_fail`
//! example on `Started` shows it).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use awith::group::{
    FailedTask, GroupSpawnError, Joined, Policy, Spawner, StartError, Started, TaskGroup,
};
use awith::rt::Incident;
use awith::{Cancel, ExitKind, ResourceExt};
use futures::FutureExt;
use futures::future::BoxFuture;

use super::structured::{HANG, bounded, caught, unit};
use super::{Polled, Stepper, drain, panic_message};
use crate::probe::{Log, Plan, Probe, ProbeError};
use awith::test::Env;

/// A child that opens a probe scope, says so on `entered`, and waits in it
/// forever: its scope's release tells how it was cancelled.
fn waits_in_a_scope(
    env: &Env,
    log: &Log,
    entered: futures::channel::oneshot::Sender<()>,
) -> impl Future<Output = Result<(), ProbeError>> + Send + 'static {
    let (log, rt) = (log.clone(), env.rt.clone());
    async move {
        Probe::new(&log, Plan::ok(0), &rt)
            .with(&rt, async |_| {
                let _ = entered.send(());
                std::future::pending::<()>().await;
                Ok::<_, ProbeError>(())
            })
            .await
            .map_err(|_| ProbeError::Body)
    }
}

/// The exits the probes of `log` were released with, in release order.
fn exits(log: &Log) -> Vec<ExitKind> {
    log.check_released_once()
        .unwrap()
        .into_iter()
        .map(|(_, exit)| exit)
        .collect()
}

/// The body cancels its own group (anyio `tg.cancel_scope.cancel(reason)`):
/// the children's scopes are told `Cancelled(Requested)` (the text is the group's), the first
/// reason wins, and a body that returned a value returns it — a requested
/// cancellation is not a failure. A body cancelled before it returned has
/// no value: the group fails with no errors, saying why it was cancelled.
pub async fn body_cancels_its_group(env: Env) {
    let log = Log::new();
    let (entered_tx, entered) = futures::channel::oneshot::channel();
    let result = TaskGroup::<ProbeError>::with(&env.rt, async |group| {
        let handle = group
            .spawn(waits_in_a_scope(&env, &log, entered_tx))
            .expect("spawn");
        let _ = entered.await;
        group.cancel("shutting down");
        assert_eq!(group.cancel_reason(), Some("shutting down"));
        group.cancel("a second reason, ignored");
        assert_eq!(
            group.cancel_reason(),
            Some("shutting down"),
            "the first wins"
        );
        Ok((7, handle))
    })
    .await;
    let (value, handle) = result.expect("a requested cancellation is not a failure");
    assert_eq!(value, 7);
    let reason = Cancel::Requested;
    assert_eq!(handle.await, Err(Joined::Cancelled(reason)));
    assert_eq!(exits(&log), [ExitKind::Cancelled(reason)]);
    assert_eq!(reason.to_string(), "requested");

    // Cancelled in its own scope, the body is dropped at its next await:
    // its scope is told the reason too, and the group has no value.
    let log = Log::new();
    let (entered_tx, entered) = futures::channel::oneshot::channel();
    let body_log = log.clone();
    let result = TaskGroup::<ProbeError>::with(&env.rt, async |group| {
        group
            .spawn(waits_in_a_scope(&env, &log, entered_tx))
            .expect("spawn");
        let _ = entered.await;
        Probe::new(&body_log, Plan::ok(0), &env.rt)
            .with(&env.rt, async |_| {
                group.cancel("stop");
                std::future::pending::<()>().await;
                Ok::<_, ProbeError>(())
            })
            .await
            .map_err(|_| ProbeError::Body)
    })
    .await;
    let error = result.expect_err("the body was cancelled before it returned");
    let reason = Cancel::Requested;
    assert_eq!(
        (error.errors.len(), error.timed_out, error.cancelled),
        (0, None, Some(reason))
    );
    assert_eq!(error.cancel_reason, Some("stop"));
    assert_eq!(
        error.to_string(),
        "the task group was cancelled before its body returned (requested: stop)"
    );
    drain(&env).await;
    assert_eq!(
        exits(&log),
        [ExitKind::Cancelled(reason), ExitKind::Cancelled(reason)]
    );
}

/// A child cancels its group through a spawner (anyio `test_cancel_twice`,
/// trio's "cancel the nursery from a child"): its sibling is cancelled with
/// the reason, the body — which had returned — gives its value, also under
/// `CollectAll`; and twice in a row, each group on its own.
pub async fn child_cancels_its_group(env: Env) {
    for round in 0..2 {
        let log = Log::new();
        let (entered_tx, entered) = futures::channel::oneshot::channel();
        let result = TaskGroup::<ProbeError>::builder()
            .policy(Policy::CollectAll)
            .with(&env.rt, async |group: &TaskGroup<ProbeError>| {
                group
                    .spawn(waits_in_a_scope(&env, &log, entered_tx))
                    .expect("spawn");
                let spawner = group.spawner();
                group
                    .spawn(async move {
                        let _ = entered.await;
                        spawner.cancel("done");
                        assert_eq!(spawner.cancel_reason(), Some("done"));
                        Ok(())
                    })
                    .expect("spawn");
                Ok(round)
            })
            .await;
        assert_eq!(result, Ok(round));
        assert_eq!(exits(&log), [ExitKind::Cancelled(Cancel::Requested)]);
    }

    // A cancellation after a failure changes nothing: the children were
    // told the failure, and the error says so.
    let log = Log::new();
    let (entered_tx, entered) = futures::channel::oneshot::channel();
    let error = TaskGroup::<ProbeError>::with(&env.rt, async |group| {
        group
            .spawn(waits_in_a_scope(&env, &log, entered_tx))
            .expect("spawn");
        let spawner = group.spawner();
        group
            .spawn(async move {
                let _ = entered.await;
                let failing = spawner.spawn(async { Err::<(), _>(ProbeError::Body) });
                let _ = failing.expect("spawn").await;
                spawner.cancel("too late");
                Ok(())
            })
            .expect("spawn");
        std::future::pending::<()>().await;
        Ok(())
    })
    .await
    .expect_err("a child failed");
    assert_eq!(error.errors, [ProbeError::Body]);
    assert_eq!(error.cancelled, Some(Cancel::SiblingFailed));
    assert_eq!(exits(&log), [ExitKind::Cancelled(Cancel::SiblingFailed)]);
}

/// Every `Spawner` is `Clone + Send + Sync + 'static`.
fn assert_spawner<S: Clone + Send + Sync + 'static>(_: &S) {}

/// One link of a chain: sleeps, counts itself, and starts the next link as
/// a sibling; the last one fails.
fn link(
    spawner: Spawner<ProbeError>,
    left: u32,
    env: &Env,
    ran: Arc<AtomicUsize>,
) -> BoxFuture<'static, Result<(), ProbeError>> {
    let (rt, u) = (env.rt.clone(), unit(env));
    let next = (left > 0).then(|| link(spawner.clone(), left - 1, env, Arc::clone(&ran)));
    async move {
        rt.sleep(u).await;
        ran.fetch_add(1, Ordering::SeqCst);
        match next {
            Some(next) => {
                spawner.spawn(next).expect("the group is open");
                Ok(())
            }
            None => Err(ProbeError::Body),
        }
    }
    .boxed()
}

/// A child starts siblings in its own group (anyio
/// `test_start_soon_while_running`): a chain of children, each started by
/// the one before, after the body has returned; the group waits for the
/// last, and its failure is the group's.
pub async fn spawner_starts_siblings(env: Env) {
    let ran = Arc::new(AtomicUsize::new(0));
    let start = env.rt.now();
    let result = TaskGroup::<ProbeError>::with(&env.rt, async |group| {
        let spawner = group.spawner();
        assert_spawner(&spawner);
        spawner
            .spawn(link(spawner.clone(), 4, &env, Arc::clone(&ran)))
            .expect("spawn");
        Ok(())
    })
    .await;
    assert_eq!(
        result.expect_err("the last link failed").errors,
        [ProbeError::Body]
    );
    assert_eq!(
        ran.load(Ordering::SeqCst),
        5,
        "the group waited for every link"
    );
    if env.virtual_time {
        assert_eq!(env.rt.now() - start, unit(&env) * 5);
    }
}

/// A spawner used after its group ended (anyio `test_already_closed`,
/// `test_start_soon_after_error`, `test_start_already_closed`): a typed
/// error, never a panic, and nothing runs; a late cancel is a no-op. During
/// the teardown of a dropped group a spawn is accepted and cancelled at
/// once; once the teardown has ended, the group is closed.
pub async fn spawner_after_the_group_ended(env: Env) {
    let kept: Arc<Mutex<Option<Spawner<ProbeError>>>> = Arc::default();
    let ran = Arc::new(AtomicBool::new(false));
    for fails in [false, true] {
        let result = TaskGroup::<ProbeError>::with(&env.rt, async |group| {
            *kept.lock().unwrap() = Some(group.spawner());
            if fails { Err(ProbeError::Body) } else { Ok(()) }
        })
        .await;
        assert_eq!(result.is_err(), fails);
        let spawner = kept.lock().unwrap().take().expect("kept");
        assert!(spawner.is_closed());
        let flag = Arc::clone(&ran);
        let refused = spawner.spawn(async move {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        });
        assert!(
            matches!(refused, Err(GroupSpawnError::Closed)),
            "{refused:?}"
        );
        let error = refused.unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot spawn into the task group: it has ended"
        );
        let flag = Arc::clone(&ran);
        let started = spawner
            .start(move |ready: Started<u32>| async move {
                flag.store(true, Ordering::SeqCst);
                ready.started(1);
                Ok(())
            })
            .await;
        assert!(
            matches!(started, Err(StartError::Spawn(GroupSpawnError::Closed))),
            "{started:?}"
        );
        spawner.cancel("late");
    }
    env.rt.sleep(unit(&env)).await;
    assert!(!ran.load(Ordering::SeqCst), "nothing ran");

    // A dropped group: its teardown waits for a child's release; a spawn
    // meanwhile is accepted and cancelled at once (never polled); after the
    // teardown, the group is closed.
    let u = unit(&env);
    let (entered_tx, entered) = futures::channel::oneshot::channel::<()>();
    let log = Log::new();
    let group = TaskGroup::<ProbeError>::with(&env.rt, async |group| {
        *kept.lock().unwrap() = Some(group.spawner());
        let (log, rt) = (log.clone(), env.rt.clone());
        group
            .spawn(async move {
                let mut plan = Plan::ok(0);
                plan.release_sleep = Some(u * 5);
                Probe::new(&log, plan, &rt)
                    .with(&rt, async |_| {
                        let _ = entered_tx.send(());
                        std::future::pending::<()>().await;
                        Ok::<_, ProbeError>(())
                    })
                    .await
                    .map_err(|_| ProbeError::Body)
            })
            .expect("spawn");
        std::future::pending::<()>().await;
        Ok(())
    });
    let mut group = Stepper::new(group);
    assert!(matches!(group.step().await, Polled::Pending));
    bounded(&env, "the child enters", entered)
        .await
        .expect("entered");
    drop(group);
    let spawner = kept.lock().unwrap().take().expect("kept");
    let flag = Arc::clone(&ran);
    let late = spawner.spawn(async move {
        flag.store(true, Ordering::SeqCst);
        Ok(())
    });
    match late {
        Ok(late) => assert_eq!(
            bounded(&env, "the late child", late).await,
            Err(Joined::Cancelled(Cancel::Dropped))
        ),
        // A real clock may have ended the teardown already.
        Err(error) => assert!(
            !env.virtual_time && matches!(error, GroupSpawnError::Closed),
            "{error:?}"
        ),
    }
    drain(&env).await;
    assert!(spawner.is_closed());
    assert!(matches!(
        spawner.spawn(async { Ok(()) }),
        Err(GroupSpawnError::Closed)
    ));
    assert!(!ran.load(Ordering::SeqCst), "nothing ran");
    assert_eq!(exits(&log), [ExitKind::Cancelled(Cancel::Dropped)]);
}

/// `start` waits until the child reports it is ready, with a value (a
/// server's port): anyio `test_start_with_value`, `test_start_no_value`.
/// The child goes on; its handle gives its value.
pub async fn start_reports_a_value(env: Env) {
    let u = unit(&env);
    let begin = env.rt.now();
    let result = TaskGroup::<ProbeError>::with(&env.rt, async |group| {
        let rt = env.rt.clone();
        let (stop_tx, stop) = futures::channel::oneshot::channel::<()>();
        let (port, server) = group
            .start(move |ready: Started<u16>| async move {
                rt.sleep(u).await;
                ready.started(8080);
                let _ = stop.await;
                Ok("served")
            })
            .await
            .expect("the server started");
        assert_eq!(port, 8080);
        if env.virtual_time {
            assert_eq!(env.rt.now() - begin, u);
        }
        assert!(!server.is_finished(), "the server goes on after it started");
        let ((), quiet) = group
            .start_named("quiet", |ready: Started<()>| async move {
                ready.started(());
                Ok(1)
            })
            .await
            .expect("started");
        assert_eq!(quiet.name(), Some("quiet"));
        let _ = stop_tx.send(());
        Ok((server.await, quiet.await))
    })
    .await;
    assert_eq!(result, Ok((Ok("served"), Ok(1))));
}

/// A child that fails before it reports (anyio
/// `test_start_crash_before_started_call`): the start fails with its error,
/// which is the start's caller's, not the group's — the group goes on. After
/// it reported (`test_start_crash_after_started_call`), its error is the
/// group's.
pub async fn start_child_fails_before_started(env: Env) {
    let result = TaskGroup::<&'static str>::with(&env.rt, async |group| {
        let failed = group
            .start(|_ready: Started<u16>| async { Err::<(), _>("no port") })
            .await;
        assert!(
            matches!(failed, Err(StartError::Failed("no port"))),
            "{failed:?}"
        );
        assert_eq!(
            failed.unwrap_err().to_string(),
            "the child failed before it reported that it started: no port"
        );
        Ok("the group goes on")
    })
    .await;
    assert_eq!(result, Ok("the group goes on"));

    // The caller passes the error on with `?`.
    let result = TaskGroup::<&'static str>::with(&env.rt, async |group| {
        let ((), _) = group
            .start(|_ready: Started<()>| async { Err::<(), _>("bind failed") })
            .await
            .map_err(|error| match error {
                StartError::Failed(error) => error,
                _ => "did not start",
            })?;
        Ok(())
    })
    .await;
    assert_eq!(result.expect_err("passed on").errors, ["bind failed"]);

    // Failing once the body has its value: a failure cancels the body at
    // once, and a body cancelled before it got the value would never see it.
    let mut reported = None;
    let error = TaskGroup::<&'static str>::with(&env.rt, async |group| {
        let (fail_tx, fail) = futures::channel::oneshot::channel::<()>();
        let (value, _) = group
            .start(|ready: Started<u32>| async move {
                ready.started(2);
                let _ = fail.await;
                Err::<(), _>("foo")
            })
            .await
            .expect("it reported first");
        reported = Some(value);
        let _ = fail_tx.send(());
        std::future::pending::<()>().await;
        Ok(())
    })
    .await
    .expect_err("the child failed after it started");
    assert_eq!((error.errors, reported), (vec!["foo"], Some(2)));
}

/// A child that panics before it reports — in its future, or in the
/// closure that makes it: the start fails with the panic's message, and the
/// group resumes the panic once every child has ended.
pub async fn start_child_panics_before_started(env: Env) {
    let result = caught(TaskGroup::<&'static str>::with(&env.rt, async |group| {
        let failed = group
            .start(|_ready: Started<u32>| async {
                if true {
                    panic!("probe: before started");
                }
                Ok(())
            })
            .await;
        match failed {
            Err(StartError::Panicked(message)) => assert_eq!(message, "probe: before started"),
            other => panic!("unexpected: {other:?}"),
        }
        Ok(())
    }))
    .await;
    let panic = result.expect_err("the group resumes the child's panic");
    assert_eq!(panic_message(&*panic), "probe: before started");

    let result = caught(TaskGroup::<&'static str>::with(&env.rt, async |group| {
        let failed = group
            .start(
                |_ready: Started<u32>| -> std::future::Ready<Result<(), &'static str>> {
                    panic!("probe: the closure")
                },
            )
            .await;
        assert!(
            matches!(&failed, Err(StartError::Panicked(m)) if m == "probe: the closure"),
            "{failed:?}"
        );
        Ok(())
    }))
    .await;
    let panic = result.expect_err("the group resumes the closure's panic");
    assert_eq!(panic_message(&*panic), "probe: the closure");
}

/// A child that ends without reporting (anyio `test_start_no_started_call`)
/// — at once, or after it dropped its token and went on: the start fails
/// when it ends, not before.
pub async fn start_child_ends_unreported(env: Env) {
    let u = unit(&env);
    let result = TaskGroup::<&'static str>::with(&env.rt, async |group| {
        let ended = group.start(|_ready: Started<u32>| async { Ok(5) }).await;
        assert!(matches!(ended, Err(StartError::Ended)), "{ended:?}");
        assert_eq!(
            ended.unwrap_err().to_string(),
            "the child ended before it reported that it started"
        );
        let rt = env.rt.clone();
        let begin = env.rt.now();
        let ended = group
            .start(move |ready: Started<u32>| async move {
                drop(ready);
                rt.sleep(u).await;
                Ok(())
            })
            .await;
        assert!(matches!(ended, Err(StartError::Ended)), "{ended:?}");
        assert!(env.rt.now() - begin >= u, "it waited for the child's end");
        Ok(())
    })
    .await;
    assert_eq!(result, Ok(()));
}

/// A start in a cancelled group (anyio `test_start_cancelled`,
/// `test_no_called_started_twice`) fails at once, told why; the child is
/// never polled; the body goes on to return its value.
pub async fn start_in_a_cancelled_group(env: Env) {
    let polled = Arc::new(AtomicBool::new(false));
    let result = TaskGroup::<&'static str>::with(&env.rt, async |group| {
        group.cancel("closing");
        let flag = Arc::clone(&polled);
        let failed = group
            .start(move |ready: Started<u32>| async move {
                flag.store(true, Ordering::SeqCst);
                ready.started(1);
                Ok(())
            })
            .await;
        assert!(
            matches!(failed, Err(StartError::Cancelled(Cancel::Requested))),
            "{failed:?}"
        );
        Ok(3)
    })
    .await;
    assert_eq!(result, Ok(3));
    assert!(!polled.load(Ordering::SeqCst));
}

/// A child that never reports and hangs holds its start until the group's
/// deadline — exactly, on the virtual clock — or until a sibling cancels
/// the group; its scope is told why.
pub async fn start_hangs_until_the_deadline(env: Env) {
    let u = unit(&env);
    let deadline = if env.virtual_time { u * 3 } else { u * 20 };
    let log = Log::new();
    let (entered_tx, _entered) = futures::channel::oneshot::channel();
    let begin = env.rt.now();
    let result = TaskGroup::<ProbeError>::builder()
        .deadline(deadline)
        .with(&env.rt, async |group: &TaskGroup<ProbeError>| {
            let child = waits_in_a_scope(&env, &log, entered_tx);
            let ((), _) = group
                .start(move |_ready: Started<()>| child)
                .await
                .map_err(|_| ProbeError::Acquire)?;
            Ok(())
        })
        .await;
    let took = env.rt.now() - begin;
    let error = result.expect_err("the deadline passed");
    assert_eq!((error.errors, error.timed_out), (vec![], Some(deadline)));
    if env.virtual_time {
        assert_eq!(took, deadline);
    } else {
        assert!(took >= deadline && took < HANG, "{took:?}");
    }
    assert_eq!(exits(&log), [ExitKind::Cancelled(Cancel::Timeout)]);

    let log = Log::new();
    let (entered_tx, entered) = futures::channel::oneshot::channel();
    let result = TaskGroup::<ProbeError>::with(&env.rt, async |group| {
        let spawner = group.spawner();
        group
            .spawn(async move {
                let _ = entered.await;
                spawner.cancel("give up");
                Ok(())
            })
            .expect("spawn");
        let child = waits_in_a_scope(&env, &log, entered_tx);
        let ((), _) = group
            .start(move |_ready: Started<()>| child)
            .await
            .map_err(|_| ProbeError::Acquire)?;
        Ok(())
    })
    .await;
    let reason = Cancel::Requested;
    let error = result.expect_err("cancelled");
    assert_eq!(
        (error.cancelled, error.cancel_reason),
        (Some(reason), Some("give up"))
    );
    assert_eq!(exits(&log), [ExitKind::Cancelled(reason)]);
}

/// A start dropped before its child reported cancels the child, for the
/// reason it was dropped: the caller owned it until then. The group is not
/// failed.
pub async fn start_dropped_before_started(env: Env) {
    let u = unit(&env);
    let log = Log::new();
    let (entered_tx, entered) = futures::channel::oneshot::channel();
    let result = TaskGroup::<ProbeError>::with(&env.rt, async |group| {
        let child = waits_in_a_scope(&env, &log, entered_tx);
        let timed = env
            .rt
            .timeout(u, group.start(move |_ready: Started<()>| child))
            .await;
        assert!(timed.is_err(), "the start timed out");
        let _ = entered.await;
        Ok("the group goes on")
    })
    .await;
    assert_eq!(result, Ok("the group goes on"));
    assert_eq!(exits(&log), [ExitKind::Cancelled(Cancel::Timeout)]);

    // The child failed before it reported, and the start is dropped before
    // it took the error: nobody is left to return it to — an incident, and
    // not the group's failure.
    let result = TaskGroup::<&'static str>::with(&env.rt, async |group| {
        let (go_tx, go) = futures::channel::oneshot::channel::<()>();
        let mut start = Box::pin(group.start_named("lonely", |_ready: Started<()>| async {
            let _ = go.await;
            Err::<(), _>("left behind")
        }));
        let (woken_tx, woken) = futures::channel::oneshot::channel();
        let waker = futures::task::waker(Arc::new(WakeOnce(Mutex::new(Some(woken_tx)))));
        let polled = start
            .as_mut()
            .poll(&mut std::task::Context::from_waker(&waker));
        assert!(polled.is_pending(), "the child waits for its go");
        let _ = go_tx.send(());
        bounded(&env, "the child fails", woken)
            .await
            .expect("woken");
        drop(start);
        Ok(())
    })
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(
        env.incidents.all(),
        [Incident::Unreturned {
            work: "a task group's child",
            failure: "\"left behind\" (in task `lonely`)".into()
        }]
    );
}

/// A waker that says, once, that it was woken.
struct WakeOnce(Mutex<Option<futures::channel::oneshot::Sender<()>>>);

impl futures::task::ArcWake for WakeOnce {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        if let Some(woken) = arc_self.0.lock().unwrap().take() {
            let _ = woken.send(());
        }
    }
}

/// Task names: in `GroupError` (every error says whose it is; `Display`
/// names the first one's task), in `Debug` of a handle, and in the
/// incidents about a named child.
pub async fn task_names(env: Env) {
    let error = TaskGroup::<&'static str>::builder()
        .policy(Policy::CollectAll)
        .with(&env.rt, async |group: &TaskGroup<&'static str>| {
            let named = group
                .spawn_named("fetch-users", async { Err::<(), _>("e1") })
                .expect("spawn");
            assert_eq!(named.name(), Some("fetch-users"));
            assert_eq!(
                format!("{named:?}"),
                "ChildHandle { name: \"fetch-users\", .. }"
            );
            let _ = named.await;
            let unnamed = group.spawn(async { Err::<(), _>("e2") }).expect("spawn");
            assert_eq!(unnamed.name(), None);
            assert_eq!(format!("{unnamed:?}"), "ChildHandle { .. }");
            let _ = unnamed.await;
            let from_child = group
                .spawner()
                .spawn_named(format!("conn-{}", 3), async { Err::<(), _>("e3") })
                .expect("spawn");
            let _ = from_child.await;
            Err::<(), _>("e4")
        })
        .await
        .expect_err("everything failed");
    assert_eq!(error.errors, ["e1", "e2", "e3", "e4"]);
    assert_eq!(
        error.tasks,
        [
            FailedTask::Child(Some("fetch-users".into())),
            FailedTask::Child(None),
            FailedTask::Child(Some("conn-3".into())),
            FailedTask::Body,
        ]
    );
    assert_eq!(
        error.to_string(),
        "e1 (in task `fetch-users`) (and 3 more errors)"
    );
    let described: Vec<_> = error
        .iter()
        .map(|(task, e)| format!("{task}: {e}"))
        .collect();
    assert_eq!(
        described,
        [
            "task `fetch-users`: e1",
            "an unnamed task: e2",
            "task `conn-3`: e3",
            "the body: e4"
        ]
    );

    // A named child's error lost to a sibling's panic, and a second panic.
    let result = caught(
        TaskGroup::<&'static str>::builder()
            .policy(Policy::CollectAll)
            .with(&env.rt, async |group: &TaskGroup<&'static str>| {
                let first = group
                    .spawn_named("first", async {
                        if true {
                            panic!("probe: first");
                        }
                        Ok(())
                    })
                    .expect("spawn");
                let _ = first.await;
                let failing = group
                    .spawn_named("failing", async { Err::<(), _>("lost") })
                    .expect("spawn");
                let _ = failing.await;
                group
                    .spawn_named("second", async {
                        if true {
                            panic!("probe: second");
                        }
                        Ok(())
                    })
                    .expect("spawn");
                Ok(())
            }),
    )
    .await;
    assert_eq!(
        panic_message(&*result.expect_err("a panic resumes")),
        "probe: first"
    );
    assert_eq!(
        env.incidents.all(),
        [
            Incident::ReleasePanickedDuringPanic {
                message: "probe: second (in task `second`)".into()
            },
            Incident::ErrorLostToPanic {
                error: "\"lost\" (in task `failing`)".into()
            },
        ]
    );
    env.incidents.clear();

    // A named child's failure after its group's future was dropped.
    let (failed_tx, failed) = futures::channel::oneshot::channel::<()>();
    let group = TaskGroup::<&'static str>::builder()
        .policy(Policy::CollectAll)
        .with(&env.rt, async |group: &TaskGroup<&'static str>| {
            let worker = group
                .spawn_named("worker", async { Err::<(), _>("boom") })
                .expect("spawn");
            let _ = worker.await;
            let _ = failed_tx.send(());
            std::future::pending::<()>().await;
            Ok(())
        });
    let mut group = Stepper::new(group);
    let mut failed = failed;
    loop {
        assert!(matches!(group.step().await, Polled::Pending));
        if let Ok(Some(())) = failed.try_recv() {
            break;
        }
    }
    drop(group);
    drain(&env).await;
    assert_eq!(
        env.incidents.all(),
        [Incident::Unreturned {
            work: "a task group's child",
            failure: "\"boom\" (in task `worker`)".into()
        }]
    );
}
