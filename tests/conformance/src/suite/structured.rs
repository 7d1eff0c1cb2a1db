//! Structured concurrency: `gather` on the current task, `TaskGroup`
//! children on the runtime — results in order, sibling cancellation on the
//! first error, collect-all, panics, deadlines, cancellation of the whole
//! group at every await point, no child outliving its group, spawn failures,
//! parallelism, and a resource released only after every child.

use std::any::Any;
use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use awith::group::{ChildHandle, Joined, Policy, TaskGroup};
use awith::rt::{CleanupKind, Incident};
use awith::time::cancel_with;
use awith::{Cancel, ExitKind, ResourceExt, ScopeError, gather, gather_all};
use futures::{FutureExt, StreamExt};

use super::{Polled, Stepper, drain, panic_message};
use crate::probe::{self, Event, Gate, Log, Plan, Probe, ProbeError, Step, yield_now};
use awith::test::harness::{Idle, SharedBinding};
use awith::test::{CLEANUP_TIMEOUT, Env, recording_runtime};

/// A second on the virtual clock, 10 ms on a real one.
pub(super) fn unit(env: &Env) -> Duration {
    if env.virtual_time {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(10)
    }
}

/// The index of the first event matching, in `events`.
pub(super) fn at(events: &[Event], matches: impl Fn(&Event) -> bool) -> usize {
    events.iter().position(matches).unwrap_or(usize::MAX)
}

/// A probe scope whose body sleeps `naps` units, then ends as `body` says;
/// its value: the probe's id.
pub(super) async fn work(env: &Env, log: &Log, naps: u32, body: Step) -> Result<u64, ProbeError> {
    let u = unit(env);
    Probe::new(log, Plan::ok(1), &env.rt)
        .with(&env.rt, async |conn| {
            for _ in 0..naps {
                env.rt.sleep(u).await;
            }
            probe::body(conn, Plan::steps(Step::Ok, body, Step::Ok, 0)).await?;
            Ok(conn.id)
        })
        .await
        .map_err(|e| e.body_error().copied().unwrap_or(ProbeError::Release))
}

/// `gather`: outputs in order, whatever order the futures finish in.
pub async fn gather_keeps_order(env: Env) {
    let log = Log::new();
    let naps = [3, 1, 2];
    let ids = gather(naps.map(|n| work(&env, &log, n, Step::Ok)))
        .await
        .unwrap();
    let acquired = log.acquired();
    assert_eq!(ids, acquired, "in the order given");
    let released = log.check_released_once().unwrap();
    assert!(
        released
            .iter()
            .all(|(_, exit)| *exit == ExitKind::Completed)
    );
    assert_eq!(drain(&env).await.spawned, 0);
}

/// `gather` stops at the first error: the others are dropped, their scopes
/// told `Cancelled(SiblingFailed)`, and released before the scope around the
/// gather.
pub async fn gather_cancels_siblings(env: Env) {
    let log = Log::new();
    let outer = Probe::new(&log, Plan::ok(1), &env.rt);
    let result = outer
        .with(&env.rt, async |_| {
            gather([
                work(&env, &log, 5, Step::Ok).boxed(),
                work(&env, &log, 1, Step::Err).boxed(),
                work(&env, &log, 5, Step::Ok).boxed(),
            ])
            .await
        })
        .await;
    assert_eq!(
        result,
        Err(ScopeError::Body {
            error: ProbeError::Body,
            release: None
        })
    );
    drain(&env).await;
    let ids = log.acquired();
    let released: std::collections::BTreeMap<u64, ExitKind> =
        log.check_released_once().unwrap().into_iter().collect();
    let (outer_id, failed) = (ids[0], ids[2]);
    assert_eq!(released[&outer_id], ExitKind::Failed);
    assert_eq!(released[&failed], ExitKind::Failed);
    for sibling in [ids[1], ids[3]] {
        assert_eq!(
            released[&sibling],
            ExitKind::Cancelled(Cancel::SiblingFailed),
            "{:?}",
            log.events()
        );
    }
    let events = log.events();
    let outer_release = at(
        &events,
        |e| matches!(e, Event::ReleaseStart(i, _) if *i == outer_id),
    );
    for inner in &ids[1..] {
        assert!(
            at(&events, |e| *e == Event::Dropped(*inner)) < outer_release,
            "inside-out: {events:?}"
        );
    }
}

/// `gather_all` runs everything to its end and returns every result.
pub async fn gather_all_collects(env: Env) {
    let log = Log::new();
    let results = gather_all([
        work(&env, &log, 2, Step::Ok).boxed(),
        work(&env, &log, 1, Step::Err).boxed(),
        work(&env, &log, 3, Step::Ok).boxed(),
    ])
    .await;
    let ids = log.acquired();
    assert_eq!(results.len(), 3);
    assert_eq!(results[1], Err(ProbeError::Body));
    assert!(results[0].is_ok() && results[2].is_ok());
    let released = log.check_released_once().unwrap();
    assert_eq!(released.len(), 3);
    assert!(
        released
            .iter()
            .all(|(id, exit)| ids.contains(id) && !exit.is_cancelled())
    );
}

/// A group's children run on the runtime; handles give their values; the
/// group returns once every child has ended, even children nobody awaited.
pub async fn group_joins_every_child(env: Env) {
    let log = Log::new();
    let ended = Arc::new(AtomicUsize::new(0));
    let u = unit(&env);
    let values = TaskGroup::<ProbeError>::with(&env.rt, async |group| {
        let mut handles = Vec::new();
        for n in 0..4u32 {
            let (log, rt, ended) = (log.clone(), env.rt.clone(), Arc::clone(&ended));
            let child = async move {
                let id = Probe::new(&log, Plan::ok(1), &rt)
                    .with(&rt, async |conn| {
                        rt.sleep(u * n).await;
                        Ok::<_, ProbeError>(conn.id)
                    })
                    .await
                    .map_err(|_| ProbeError::Body)?;
                ended.fetch_add(1, Ordering::SeqCst);
                Ok(id)
            };
            let handle = group.spawn(child).expect("spawn");
            if n % 2 == 0 {
                handles.push(handle);
            }
        }
        let mut values = Vec::new();
        for handle in handles {
            values.push(handle.await.expect("the child succeeds"));
        }
        Ok(values)
    })
    .await
    .expect("the group succeeds");
    assert_eq!(values.len(), 2);
    assert_eq!(
        ended.load(Ordering::SeqCst),
        4,
        "the group waited for the children nobody awaited"
    );
    let released = log.check_released_once().unwrap();
    assert_eq!(released.len(), 4);
    assert!(
        released
            .iter()
            .all(|(_, exit)| *exit == ExitKind::Completed)
    );
}

/// Fail-fast: the first child failure cancels its siblings and the body —
/// their scopes told `Cancelled(SiblingFailed)` — and the group fails with
/// the child's error, after every child has ended.
pub async fn group_fails_fast(env: Env) {
    let log = Log::new();
    let u = unit(&env);
    let siblings_ran_on = Arc::new(AtomicBool::new(false));
    let result = TaskGroup::<ProbeError>::with(&env.rt, async |group| {
        for n in 0..3u32 {
            let (log, rt, ran_on) = (log.clone(), env.rt.clone(), Arc::clone(&siblings_ran_on));
            group
                .spawn(async move {
                    Probe::new(&log, Plan::ok(1), &rt)
                        .with(&rt, async |_| {
                            if n == 0 {
                                rt.sleep(u).await;
                                return Err(ProbeError::Body);
                            }
                            rt.sleep(u * 100).await;
                            ran_on.store(true, Ordering::SeqCst);
                            Ok(())
                        })
                        .await
                        .map_err(|_| ProbeError::Body)
                })
                .expect("spawn");
        }
        work(&env, &log, 100, Step::Ok).await?;
        Ok(())
    })
    .await;
    let error = result.expect_err("a child failed");
    assert_eq!(
        (error.errors, error.timed_out),
        (vec![ProbeError::Body], None)
    );
    assert!(!siblings_ran_on.load(Ordering::SeqCst));
    let released = log.check_released_once().unwrap();
    assert_eq!(released.len(), 4, "{:?}", log.events());
    let failed = released
        .iter()
        .filter(|(_, e)| *e == ExitKind::Failed)
        .count();
    let cancelled = released
        .iter()
        .filter(|(_, e)| *e == ExitKind::Cancelled(Cancel::SiblingFailed))
        .count();
    assert_eq!((failed, cancelled), (1, 3), "{released:?}");
    // Everything was released before the group returned.
    assert_eq!(env.rt.cleanup_stats().pending, 0);
}

/// Collect-all: failures cancel nothing; every error is returned.
pub async fn group_collects_all(env: Env) {
    let log = Log::new();
    let completed = Arc::new(AtomicUsize::new(0));
    let u = unit(&env);
    let result = TaskGroup::<u32>::builder()
        .policy(Policy::CollectAll)
        .with(&env.rt, async |group| {
            for n in 0..4u32 {
                let (log, rt, completed) = (log.clone(), env.rt.clone(), Arc::clone(&completed));
                group
                    .spawn(async move {
                        Probe::new(&log, Plan::ok(1), &rt)
                            .with(&rt, async |_| {
                                rt.sleep(u * n).await;
                                Ok::<_, ProbeError>(())
                            })
                            .await
                            .map_err(|_| 99u32)?;
                        completed.fetch_add(1, Ordering::SeqCst);
                        if n % 2 == 1 { Err(n) } else { Ok(()) }
                    })
                    .expect("spawn");
            }
            Ok(())
        })
        .await;
    let mut errors = result.expect_err("two children failed").errors;
    errors.sort_unstable();
    assert_eq!(errors, [1, 3]);
    assert_eq!(completed.load(Ordering::SeqCst), 4, "nothing was cancelled");
    assert!(
        log.check_released_once()
            .unwrap()
            .iter()
            .all(|(_, e)| *e == ExitKind::Completed)
    );
}

/// A child's panic is caught: its siblings are cancelled, its handle says
/// it panicked, and once every child has ended the group resumes the panic.
pub async fn group_resumes_child_panic(env: Env) {
    let log = Log::new();
    let u = unit(&env);
    let handle_saw = Arc::new(std::sync::Mutex::new(None));
    let seen = Arc::clone(&handle_saw);
    let result = AssertUnwindSafe(TaskGroup::<ProbeError>::with(&env.rt, async |group| {
        let (started, mut sibling_started) = futures::channel::mpsc::unbounded::<()>();
        let panicking = group
            .spawn({
                let rt = env.rt.clone();
                async move {
                    // Once the sibling has acquired its resource.
                    sibling_started.next().await;
                    rt.sleep(u).await;
                    if true {
                        panic!("probe: child panicked");
                    }
                    Ok(())
                }
            })
            .expect("spawn");
        let (log, rt) = (log.clone(), env.rt.clone());
        group
            .spawn(async move {
                Probe::new(&log, Plan::ok(1), &rt)
                    .with(&rt, async |_| {
                        started.unbounded_send(()).unwrap();
                        rt.sleep(u * 100).await;
                        Ok::<_, ProbeError>(())
                    })
                    .await
                    .map_err(|_| ProbeError::Body)
            })
            .expect("spawn");
        *seen.lock().unwrap() = Some(panicking.await);
        Ok(())
    }))
    .catch_unwind()
    .await;
    let panic = result.expect_err("the group resumes the child's panic");
    assert_eq!(panic_message(&*panic), "probe: child panicked");
    let released = log.check_released_once().unwrap();
    assert_eq!(
        released.iter().map(|(_, e)| *e).collect::<Vec<_>>(),
        [ExitKind::Cancelled(Cancel::SiblingFailed)]
    );
    // The body was cancelled before it could note the handle's answer, or
    // noted that the child panicked.
    let saw = *handle_saw.lock().unwrap();
    assert!(matches!(saw, None | Some(Err(Joined::Panicked))), "{saw:?}");
}

/// A deadline cancels the body and the children, told `Cancel::Timeout`,
/// when it passes (exactly, on the virtual clock).
pub async fn group_deadline(env: Env) {
    let log = Log::new();
    let u = unit(&env);
    // On a real clock, room for a loaded machine to start the child before
    // the deadline; the virtual clock checks the exact time.
    let deadline = if env.virtual_time { u * 2 } else { u * 20 };
    let start = env.rt.now();
    let result = TaskGroup::<ProbeError>::builder()
        .deadline(deadline)
        .with(&env.rt, async |group| {
            let (child_log, rt) = (log.clone(), env.rt.clone());
            let (entered, child_entered) = futures::channel::oneshot::channel::<()>();
            group
                .spawn(async move {
                    Probe::new(&child_log, Plan::ok(1), &rt)
                        .with(&rt, async |_| {
                            let _ = entered.send(());
                            rt.sleep(u * 1000).await;
                            Ok::<_, ProbeError>(())
                        })
                        .await
                        .map_err(|_| ProbeError::Body)
                })
                .expect("spawn");
            // Both scopes are open when the deadline passes.
            let _ = child_entered.await;
            work(&env, &log, 1000, Step::Ok).await?;
            Ok(())
        })
        .await;
    let took = env.rt.now() - start;
    let error = result.expect_err("the deadline passed");
    assert_eq!((error.errors, error.timed_out), (vec![], Some(deadline)));
    if env.virtual_time {
        assert_eq!(took, deadline);
    } else {
        assert!(took >= deadline && took < u * 1000, "{took:?}");
    }
    let released = log.check_released_once().unwrap();
    assert_eq!(released.len(), 2);
    assert!(
        released
            .iter()
            .all(|(_, e)| *e == ExitKind::Cancelled(Cancel::Timeout))
    );
}

/// Drops a task group after every possible number of steps. Once drained:
/// every child has ended, every value acquired by the body or a child was
/// released exactly once, and a release that started after the drop was
/// told `Cancelled(Dropped)`.
pub async fn group_cancelled_at_every_await_point(env: Env) {
    let children_alive = Arc::new(AtomicUsize::new(0));
    for k in 0.. {
        assert!(k <= 100, "the group never completes");
        let log = Log::new();
        let group = {
            let (log, rt, alive) = (log.clone(), env.rt.clone(), Arc::clone(&children_alive));
            async move {
                TaskGroup::<ProbeError>::with(&rt, async |group| {
                    for _ in 0..2 {
                        let (log, rt) = (log.clone(), rt.clone());
                        alive.fetch_add(1, Ordering::SeqCst);
                        // Dropped with the child's future, polled or not.
                        let alive = Decrement(Arc::clone(&alive));
                        group
                            .spawn(async move {
                                let _alive = alive;
                                Probe::new(&log, Plan::ok(2), &rt)
                                    .with(&rt, async |conn| probe::body(conn, Plan::ok(2)).await)
                                    .await
                                    .map_err(|_| ProbeError::Body)
                            })
                            .expect("spawn");
                    }
                    Probe::new(&log, Plan::ok(2), &rt)
                        .tagged(BODY)
                        .with(&rt, async |conn| probe::body(conn, Plan::ok(2)).await)
                        .await
                        .map_err(|_| ProbeError::Body)
                })
                .await
            }
        };
        let mut stepper = Stepper::new(group);
        let mut completed = false;
        for _ in 0..k {
            match stepper.step().await {
                Polled::Pending => {}
                Polled::Ready(result) => {
                    assert!(result.is_ok(), "{result:?}");
                    completed = true;
                    break;
                }
                Polled::Panicked(panic) => std::panic::resume_unwind(panic),
            }
        }
        let drop_at = log.events().len();
        drop(stepper);
        drain(&env).await;
        assert_eq!(
            children_alive.load(Ordering::SeqCst),
            0,
            "after {k} steps: every child ended"
        );
        let events = log.events();
        let released = log
            .check_released_once()
            .unwrap_or_else(|e| panic!("after {k} steps: {e}"));
        let body = log.tags().get(&BODY).copied();
        for (id, exit) in released {
            let start = at(
                &events,
                |e| matches!(e, Event::ReleaseStart(i, _) if *i == id),
            );
            if start < drop_at {
                assert_eq!(exit, ExitKind::Completed, "after {k} steps: {events:?}");
            } else if Some(id) == body || !env.parallel {
                // The body (and, on one thread, every child) learns of the
                // drop before it can go on.
                assert_eq!(
                    exit,
                    ExitKind::Cancelled(Cancel::Dropped),
                    "after {k} steps: {events:?}"
                );
            } else {
                // A child on another thread may finish its work between the
                // drop and the moment it sees the cancellation.
                assert!(
                    matches!(
                        exit,
                        ExitKind::Completed | ExitKind::Cancelled(Cancel::Dropped)
                    ),
                    "after {k} steps: {events:?}"
                );
            }
        }
        assert!(env.incidents.all().is_empty(), "{:?}", env.incidents.all());
        if completed {
            break;
        }
    }
}

/// The tag of the body's probe.
const BODY: u32 = 100;

struct Decrement(Arc<AtomicUsize>);

impl Drop for Decrement {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A child that never finishes is cancelled when its group is dropped; its
/// scope is released, told `Cancelled(Dropped)`.
pub async fn dropped_group_cancels_endless_child(env: Env) {
    let log = Log::new();
    let (child_log, rt) = (log.clone(), env.rt.clone());
    let mut group = Stepper::new(TaskGroup::<ProbeError>::with(&env.rt, async |group| {
        group
            .spawn(async move {
                Probe::new(&child_log, Plan::ok(1), &rt)
                    .with(&rt, async |_| {
                        std::future::pending::<()>().await;
                        Ok::<_, ProbeError>(())
                    })
                    .await
                    .map_err(|_| ProbeError::Body)
            })
            .expect("spawn");
        std::future::pending::<()>().await;
        Ok(())
    }));
    assert!(
        matches!(group.step().await, Polled::Pending),
        "the body waits"
    );
    let mut waited = 0;
    while log.acquired().is_empty() {
        waited += 1;
        assert!(waited < 10_000, "the child never started");
        env.rt.sleep(Duration::from_millis(1)).await;
    }
    drop(group);
    let stats = drain(&env).await;
    assert!(
        stats.spawned >= 1,
        "the group handed its teardown to the runtime"
    );
    let id = log.acquired()[0];
    assert_eq!(
        log.check_released_once().unwrap(),
        [(id, ExitKind::Cancelled(Cancel::Dropped))]
    );
}

/// No child runs after its group has returned: children that outlive the
/// body are awaited; children cancelled by a failure stop before the group
/// returns, and stay stopped.
pub async fn no_child_outlives_its_group(env: Env) {
    let u = unit(&env);
    let ticks = Arc::new(AtomicUsize::new(0));
    let result = TaskGroup::<&str>::with(&env.rt, async |group| {
        for n in 0..2u32 {
            let (rt, ticks) = (env.rt.clone(), Arc::clone(&ticks));
            group
                .spawn(async move {
                    for _ in 0..5 {
                        rt.sleep(u).await;
                        ticks.fetch_add(1, Ordering::SeqCst);
                    }
                    if n == 1 { Err("done") } else { Ok(()) }
                })
                .expect("spawn");
        }
        Ok(())
    })
    .await;
    assert!(result.is_err());
    let at_return = ticks.load(Ordering::SeqCst);
    assert!(at_return >= 5, "the body returned first; the group waited");
    env.rt.sleep(u * 20).await;
    yield_now().await;
    assert_eq!(
        ticks.load(Ordering::SeqCst),
        at_return,
        "nothing ran after the group returned"
    );
}

/// A spawn the runtime refuses is an error in the body, not a hang.
pub async fn group_spawn_failure(env: Env, dead: Result<SharedBinding, &'static str>) {
    let Ok(dead) = dead else {
        // async-std's executor cannot shut down: a group's spawns never fail.
        let result = TaskGroup::<String>::with(&env.rt, async |group| {
            let handle = group.spawn(async { Ok(1) }).map_err(|e| e.to_string())?;
            handle.await.map_err(|e| e.to_string())
        })
        .await;
        assert_eq!(result, Ok(1));
        return;
    };
    let (dead_rt, _incidents) = recording_runtime(dead, Duration::from_secs(5));
    let result = env
        .rt
        .timeout(
            Duration::from_secs(30),
            TaskGroup::<String>::with(&dead_rt, async |group| {
                let handle = group.spawn(async { Ok(1) }).map_err(|e| e.to_string())?;
                handle.await.map_err(|e| e.to_string())
            }),
        )
        .await
        .expect("no hang");
    let error = result.expect_err("the spawn was refused");
    assert!(
        error.primary().is_some_and(|e| e.contains("shut down")),
        "{error:?}"
    );
    // The refused child's future panics when dropped: no lock is held, and
    // the panic is the child's, resumed by the group.
    let result = caught(env.rt.timeout(
        Duration::from_secs(30),
        TaskGroup::<String>::with(&dead_rt, async |group| {
            let bomb = PanicOnDrop("probe: the refused child's drop");
            let refused = group.spawn(async move {
                let _bomb = bomb;
                Ok(1)
            });
            assert!(refused.is_err());
            Ok(())
        }),
    ))
    .await;
    let panic = result.expect_err("the child's drop panicked");
    assert_eq!(panic_message(&*panic), "probe: the refused child's drop");
}

/// On a multi-thread runtime two CPU-bound children run at the same time.
pub async fn group_parallelism(env: Env) {
    let started = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
    let saw = TaskGroup::<()>::with(&env.rt, async |group| {
        let mut handles = Vec::new();
        for me in 0..2 {
            let started = Arc::clone(&started);
            let parallel = env.parallel;
            handles.push(
                group
                    .spawn(async move {
                        started[me].store(true, Ordering::SeqCst);
                        let bound = if parallel {
                            Duration::from_secs(20)
                        } else {
                            Duration::from_millis(20)
                        };
                        let spin = Instant::now();
                        while spin.elapsed() < bound {
                            if started[1 - me].load(Ordering::SeqCst) {
                                return Ok(true);
                            }
                            std::hint::spin_loop();
                        }
                        Ok(false)
                    })
                    .expect("spawn"),
            );
        }
        let mut saw = Vec::new();
        for handle in handles {
            saw.push(handle.await.expect("ran"));
        }
        Ok(saw)
    })
    .await
    .expect("the group succeeds");
    if env.parallel {
        assert_eq!(saw, [true, true], "both children ran at once");
    } else {
        assert_eq!(saw.iter().filter(|s| **s).count(), 1, "one thread: {saw:?}");
    }
}

/// A resource whose body is a task group is released only after every child
/// has ended, told `Failed` when a child failed.
pub async fn resource_around_a_group(env: Env) {
    let log = Log::new();
    let u = unit(&env);
    let finished = Arc::new(AtomicUsize::new(0));
    let result = Probe::new(&log, Plan::ok(1), &env.rt)
        .with(&env.rt, async |conn| {
            let shared = Arc::new(conn.id);
            TaskGroup::<u64>::with(&env.rt, async |group| {
                let mut earlier = Vec::new();
                for n in 0..3u32 {
                    let (shared, rt, finished) =
                        (Arc::clone(&shared), env.rt.clone(), Arc::clone(&finished));
                    // The last one fails once the others have finished (not
                    // merely slept less: under load their timers may fire
                    // together, and then fail-fast cancels them).
                    let others = if n == 2 {
                        std::mem::take(&mut earlier)
                    } else {
                        Vec::new()
                    };
                    let handle = group
                        .spawn(async move {
                            rt.sleep(u * n).await;
                            for other in others {
                                assert_eq!(other.await, Ok(()));
                            }
                            finished.fetch_add(1, Ordering::SeqCst);
                            if n == 2 { Err(*shared) } else { Ok(()) }
                        })
                        .expect("spawn");
                    earlier.push(handle);
                }
                Ok(())
            })
            .await
        })
        .await;
    let id = log.acquired()[0];
    let Err(ScopeError::Body { error, .. }) = result else {
        panic!("{result:?}")
    };
    assert_eq!(error.errors, [id], "the child saw the shared value");
    assert_eq!(finished.load(Ordering::SeqCst), 3);
    assert_eq!(log.check_released_once().unwrap(), [(id, ExitKind::Failed)]);
}

// ---------------------------------------------------------------------------
// Nothing lost, nothing hung (issue 9): panicking and hanging user code in a
// group's paths, dropped groups, the order of errors, handles.

/// Panics with its message when dropped (unless already unwinding).
#[derive(Debug)]
pub(super) struct PanicOnDrop(pub(super) &'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{}", self.0);
        }
    }
}

/// Counts its drops.
struct CountDrop(Arc<AtomicUsize>);

impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A future that is ready at once with `value`, and whose own drop panics.
struct ReadyThenPanicOnDrop<T> {
    value: Option<T>,
    _bomb: PanicOnDrop,
}

impl<T: Unpin> Future for ReadyThenPanicOnDrop<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<T> {
        Poll::Ready(self.value.take().expect("polled once"))
    }
}

/// How long a test waits for something that must happen before it calls it
/// a hang (virtual on the reference runtime).
pub(super) const HANG: Duration = Duration::from_secs(10);

/// `future`, failing the test if it does not finish within [`HANG`].
pub(super) async fn bounded<F: Future>(env: &Env, what: &str, future: F) -> F::Output {
    match env.rt.timeout(HANG, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what}: still waiting after {HANG:?}"),
    }
}

/// `future`, its panic caught.
pub(super) async fn caught<F: Future>(future: F) -> Result<F::Output, Box<dyn Any + Send>> {
    AssertUnwindSafe(future).catch_unwind().await
}

/// The `Unreturned` incidents so far, as `(work, failure)`, sorted.
fn unreturned(env: &Env) -> Vec<(&'static str, String)> {
    let mut found: Vec<_> = env
        .incidents
        .all()
        .into_iter()
        .filter_map(|incident| match incident {
            Incident::Unreturned { work, failure } => Some((work, failure)),
            _ => None,
        })
        .collect();
    found.sort();
    found
}

const CHILD: &str = "a task group's child";
const BODY_WORK: &str = "a task group's body";

/// A child whose future panics when dropped — cancelled by its group, or
/// after it returned — panicked: the group resumes that panic once every
/// child has ended, and reports the errors it then cannot return.
pub async fn group_child_drop_panics(env: Env) {
    let u = unit(&env);
    // Cancelled after a sibling failed: its drop panics.
    let result = caught(TaskGroup::<u32>::with(&env.rt, async |group| {
        let bomb = PanicOnDrop("probe: the cancelled child's drop");
        group
            .spawn(async move {
                let _bomb = bomb;
                std::future::pending::<()>().await;
                Ok::<_, u32>(())
            })
            .expect("spawn");
        let rt = env.rt.clone();
        group
            .spawn(async move {
                rt.sleep(u).await;
                Err::<(), _>(7)
            })
            .expect("spawn");
        std::future::pending::<()>().await;
        Ok(())
    }))
    .await;
    let panic = result.expect_err("the group resumes the panic of the cancelled child's drop");
    assert_eq!(panic_message(&*panic), "probe: the cancelled child's drop");
    assert_eq!(
        env.incidents.all(),
        [Incident::ErrorLostToPanic { error: "7".into() }]
    );
    env.incidents.clear();

    // Returned a value, then its drop panicked: the child panicked, and its
    // handle says so.
    let result = caught(TaskGroup::<u32>::builder().policy(Policy::CollectAll).with(
        &env.rt,
        async |group: &TaskGroup<u32>| {
            let handle = group
                .spawn(ReadyThenPanicOnDrop {
                    value: Some(Ok::<_, u32>(5)),
                    _bomb: PanicOnDrop("probe: the finished child's drop"),
                })
                .expect("spawn");
            assert_eq!(
                bounded(&env, "the handle", handle).await,
                Err(Joined::Panicked)
            );
            Ok(())
        },
    ))
    .await;
    let panic = result.expect_err("the group resumes the panic of the finished child's drop");
    assert_eq!(panic_message(&*panic), "probe: the finished child's drop");
    assert!(env.incidents.all().is_empty(), "{:?}", env.incidents.all());
    assert_eq!(drain(&env).await.pending, 0);
}

/// The body's future panics when dropped (cancelled after a child failed),
/// or its value panics when dropped (the group failed, so the value is
/// dropped): that panic is the body's; it resumes after every child has
/// ended and released, and the errors it cannot return are reported.
pub async fn group_body_drop_panics(env: Env) {
    let u = unit(&env);
    let log = Log::new();
    let result = caught(TaskGroup::<u32>::with(&env.rt, async |group| {
        let _bomb = PanicOnDrop("probe: the cancelled body's drop");
        let (log, rt) = (log.clone(), env.rt.clone());
        let (started, mut sibling_started) = futures::channel::mpsc::unbounded::<()>();
        group
            .spawn(async move {
                // Cancelled: its release takes two units.
                let mut plan = Plan::ok(1);
                plan.release_sleep = Some(u * 2);
                Probe::new(&log, plan, &rt)
                    .with(&rt, async |_| {
                        started.unbounded_send(()).unwrap();
                        std::future::pending::<()>().await;
                        Ok::<_, ProbeError>(())
                    })
                    .await
                    .map_err(|_| 99)
            })
            .expect("spawn");
        let rt = env.rt.clone();
        group
            .spawn(async move {
                sibling_started.next().await;
                rt.sleep(u).await;
                Err::<(), _>(7)
            })
            .expect("spawn");
        std::future::pending::<()>().await;
        Ok(())
    }))
    .await;
    let panic = result.expect_err("the group resumes the panic of the body's drop");
    assert_eq!(panic_message(&*panic), "probe: the cancelled body's drop");
    // The group ended last: the child's scope had released.
    let released = log.check_released_once().unwrap();
    assert_eq!(
        released.iter().map(|(_, e)| *e).collect::<Vec<_>>(),
        [ExitKind::Cancelled(Cancel::SiblingFailed)]
    );
    assert_eq!(env.rt.cleanup_stats().pending, 0);
    assert_eq!(
        env.incidents.all(),
        [Incident::ErrorLostToPanic { error: "7".into() }]
    );
    env.incidents.clear();

    // The body's value, dropped because a child failed.
    let result = caught(TaskGroup::<u32>::builder().policy(Policy::CollectAll).with(
        &env.rt,
        async |group: &TaskGroup<u32>| {
            let handle = group.spawn(async { Err::<(), _>(8) }).expect("spawn");
            assert_eq!(handle.await, Err(Joined::Failed));
            Ok(PanicOnDrop("probe: the body's value"))
        },
    ))
    .await;
    let panic = result.expect_err("the group resumes the panic of the body value's drop");
    assert_eq!(panic_message(&*panic), "probe: the body's value");
    assert_eq!(
        env.incidents.all(),
        [Incident::ErrorLostToPanic { error: "8".into() }]
    );
}

/// A group whose future is dropped after failures — of children, of the
/// body — reports each of them, once its children have ended: nobody is
/// left to return them to.
pub async fn group_dropped_reports_failures(env: Env) {
    // Collect-all: the body failed, two children failed (one panicked), one
    // child still runs when the group is dropped.
    let (tx, mut rx) = futures::channel::mpsc::unbounded::<()>();
    let mut group = Stepper::new(TaskGroup::<u32>::builder().policy(Policy::CollectAll).with(
        &env.rt,
        async |group: &TaskGroup<u32>| {
            let failing = tx.clone();
            group
                .spawn(async move {
                    failing.unbounded_send(()).unwrap();
                    Err::<(), _>(1)
                })
                .expect("spawn");
            let panicking = tx.clone();
            group
                .spawn(async move {
                    panicking.unbounded_send(()).unwrap();
                    if true {
                        panic!("probe: child 2 panicked");
                    }
                    Ok::<_, u32>(())
                })
                .expect("spawn");
            group
                .spawn(std::future::pending::<Result<(), u32>>())
                .expect("spawn");
            Err::<(), _>(3)
        },
    ));
    assert!(
        matches!(group.step().await, Polled::Pending),
        "a child runs"
    );
    for _ in 0..2 {
        bounded(&env, "the failing children", rx.next()).await;
    }
    drop(group);
    drain(&env).await;
    assert_eq!(
        unreturned(&env),
        [
            (BODY_WORK, "3".to_owned()),
            (CHILD, "1".to_owned()),
            (CHILD, "probe: child 2 panicked".to_owned()),
        ],
        "{:?}",
        env.incidents.all()
    );
    env.incidents.clear();

    // Fail-fast: a child failed; the group is dropped while its sibling is
    // being cancelled (its scope releases slowly).
    let u = unit(&env);
    let log = Log::new();
    let (tx, rx) = futures::channel::mpsc::unbounded::<()>();
    let (failed_tx, mut failed) = futures::channel::mpsc::unbounded::<()>();
    let mut group = Stepper::new(TaskGroup::<u32>::with(&env.rt, async |group| {
        let (log, rt) = (log.clone(), env.rt.clone());
        group
            .spawn(async move {
                let mut plan = Plan::ok(0);
                plan.release_sleep = Some(u * 3);
                Probe::new(&log, plan, &rt)
                    .with(&rt, async |_| {
                        tx.unbounded_send(()).unwrap();
                        std::future::pending::<()>().await;
                        Ok::<_, ProbeError>(())
                    })
                    .await
                    .map_err(|_| 99)
            })
            .expect("spawn");
        group
            .spawn(async move {
                // Once the sibling is in its scope.
                let mut rx = rx;
                rx.next().await;
                failed_tx.unbounded_send(()).unwrap();
                Err::<(), _>(4)
            })
            .expect("spawn");
        std::future::pending::<()>().await;
        Ok(())
    }));
    assert!(matches!(group.step().await, Polled::Pending));
    bounded(&env, "the failing child", failed.next()).await;
    drop(group);
    drain(&env).await;
    assert_eq!(unreturned(&env), [(CHILD, "4".to_owned())]);
    assert_eq!(log.check_released_once().unwrap().len(), 1);

    // The body's future panics when dropped with the group's; or the body
    // has returned a value that panics when dropped with the group's, while
    // a child still runs. Each panic is the body's, and reported; the child
    // is told that the group was dropped.
    for body_returned in [false, true] {
        env.incidents.clear();
        let log = Log::new();
        let (tx, mut started) = futures::channel::mpsc::unbounded::<()>();
        let mut group = Stepper::new(TaskGroup::<u32>::with(&env.rt, async |group| {
            let (log, rt) = (log.clone(), env.rt.clone());
            group
                .spawn(async move {
                    Probe::new(&log, Plan::ok(0), &rt)
                        .with(&rt, async |_| {
                            tx.unbounded_send(()).unwrap();
                            std::future::pending::<()>().await;
                            Ok::<_, ProbeError>(())
                        })
                        .await
                        .map_err(|_| 99)
                })
                .expect("spawn");
            if body_returned {
                return Ok(PanicOnDrop("probe: the dropped group's value"));
            }
            let _bomb = PanicOnDrop("probe: the dropped body's drop");
            std::future::pending::<()>().await;
            Ok(PanicOnDrop("probe: never"))
        }));
        assert!(matches!(group.step().await, Polled::Pending));
        bounded(&env, "the child starts", started.next()).await;
        drop(group);
        drain(&env).await;
        let message = if body_returned {
            "probe: the dropped group's value"
        } else {
            "probe: the dropped body's drop"
        };
        assert_eq!(unreturned(&env), [(BODY_WORK, message.to_owned())]);
        assert_eq!(
            log.check_released_once()
                .unwrap()
                .iter()
                .map(|(_, e)| *e)
                .collect::<Vec<_>>(),
            [ExitKind::Cancelled(Cancel::Dropped)]
        );
    }
}

/// Nested groups, two deep, cancelled by a failure of the outermost: the
/// inner groups' failures (of other types) cannot join the outer error, so
/// they are reported — before the outer group returns — and none is lost.
pub async fn group_nested_failures_not_lost(env: Env) {
    let (tx, mut rx) = futures::channel::mpsc::unbounded::<()>();
    let result = TaskGroup::<&'static str>::with(&env.rt, async |outer| {
        outer
            .spawn(async move {
                // Fails once both inner groups have had a child fail.
                rx.next().await;
                rx.next().await;
                Err::<(), _>("outer")
            })
            .expect("spawn");
        let rt = env.rt.clone();
        outer
            .spawn(async move {
                TaskGroup::<u32>::builder()
                    .policy(Policy::CollectAll)
                    .with(&rt, async |middle| {
                        let failing = tx.clone();
                        middle
                            .spawn(async move {
                                failing.unbounded_send(()).unwrap();
                                Err::<(), _>(2)
                            })
                            .expect("spawn");
                        let rt = rt.clone();
                        middle
                            .spawn(async move {
                                TaskGroup::<String>::builder()
                                    .policy(Policy::CollectAll)
                                    .with(&rt, async |inner| {
                                        inner
                                            .spawn(async move {
                                                tx.unbounded_send(()).unwrap();
                                                Err::<(), _>("innermost".to_owned())
                                            })
                                            .expect("spawn");
                                        inner
                                            .spawn(std::future::pending::<Result<(), String>>())
                                            .expect("spawn");
                                        std::future::pending::<()>().await;
                                        Ok(())
                                    })
                                    .await
                                    .map_err(|_| 3)
                            })
                            .expect("spawn");
                        std::future::pending::<()>().await;
                        Ok(())
                    })
                    .await
                    .map_err(|_| "middle")
            })
            .expect("spawn");
        std::future::pending::<()>().await;
        Ok(())
    })
    .await;
    let error = result.expect_err("the outer child failed");
    assert_eq!(error.errors, ["outer"]);
    // Already reported: the outer group waited for its cancelled child,
    // which waited for the teardown of the groups inside it.
    assert_eq!(
        unreturned(&env),
        [(CHILD, "\"innermost\"".to_owned()), (CHILD, "2".to_owned()),],
        "{:?}",
        env.incidents.all()
    );
    assert_eq!(drain(&env).await.pending, 0);
}

/// `GroupError::errors` lists the errors in the order they happened —
/// children's and the body's alike — and the first panic is the one
/// resumed.
pub async fn group_errors_in_the_order_they_happened(env: Env) {
    let u = unit(&env);
    let start = env.rt.now();
    let result = TaskGroup::<u32>::builder()
        .policy(Policy::CollectAll)
        .with(&env.rt, async |group| {
            let rt = env.rt.clone();
            let first = group
                .spawn(async move {
                    rt.sleep(u).await;
                    Err::<(), _>(1)
                })
                .expect("spawn");
            let rt = env.rt.clone();
            let second = group
                .spawn(async move {
                    assert_eq!(first.await, Err(Joined::Failed));
                    rt.sleep(u).await;
                    Err::<(), _>(2)
                })
                .expect("spawn");
            if env.virtual_time {
                let rt = env.rt.clone();
                group
                    .spawn(async move {
                        rt.sleep(u * 4).await;
                        Err::<(), _>(4)
                    })
                    .expect("spawn");
            }
            assert_eq!(second.await, Err(Joined::Failed));
            env.rt.sleep(u).await;
            Err::<(), _>(3)
        })
        .await;
    let took = env.rt.now() - start;
    let errors = result.expect_err("everything failed").errors;
    if env.virtual_time {
        assert_eq!(errors, [1, 2, 3, 4]);
        assert_eq!(took, u * 4);
    } else {
        assert_eq!(errors, [1, 2, 3]);
    }

    // Panics: the child's came first.
    let result = caught(TaskGroup::<u32>::builder().policy(Policy::CollectAll).with(
        &env.rt,
        async |group: &TaskGroup<u32>| {
            let rt = env.rt.clone();
            let child = group
                .spawn(async move {
                    rt.sleep(u).await;
                    if true {
                        panic!("probe: the child panicked first");
                    }
                    Ok::<_, u32>(())
                })
                .expect("spawn");
            assert_eq!(child.await, Err(Joined::Panicked));
            if true {
                panic!("probe: the body panicked second");
            }
            Ok::<_, u32>(())
        },
    ))
    .await;
    let panic = result.expect_err("a panic resumes");
    assert_eq!(panic_message(&*panic), "probe: the child panicked first");
    assert_eq!(
        env.incidents.all(),
        [Incident::ReleasePanickedDuringPanic {
            message: "probe: the body panicked second".into()
        }]
    );
}

/// Once a child has failed (fail-fast), the body is not polled again: it
/// does not get past its await, and no error of its own becomes primary.
pub async fn group_body_not_polled_after_a_failure(env: Env) {
    let gate = Gate::default();
    let past = Arc::new(AtomicBool::new(false));
    let mut group = Stepper::new(TaskGroup::<&'static str>::with(&env.rt, async |group| {
        let opened = gate.clone();
        let child = group
            .spawn(async move {
                opened.wait().await;
                Err::<(), _>("child")
            })
            .expect("spawn");
        let _ = child.await;
        past.store(true, Ordering::SeqCst);
        Err::<(), _>("body")
    }));
    assert!(matches!(group.step().await, Polled::Pending));
    // The body waits for the child's handle; now the child fails.
    gate.open();
    let result = loop {
        match bounded(&env, "the group", group.step()).await {
            Polled::Pending => {}
            Polled::Ready(result) => break result,
            Polled::Panicked(panic) => std::panic::resume_unwind(panic),
        }
    };
    assert_eq!(result.expect_err("the child failed").errors, ["child"]);
    assert!(
        !past.load(Ordering::SeqCst),
        "the body went on after the group was cancelled"
    );
}

/// A handle gives its child's outcome once; awaited again it fails at once
/// with `Joined::Taken`, never hangs; `is_finished` says whether the child
/// has ended, before and after the handle was awaited.
pub async fn group_handle_awaited_twice(env: Env) {
    let result = TaskGroup::<u32>::builder()
        .policy(Policy::CollectAll)
        .with(&env.rt, async |group| {
            let gate = Gate::default();
            let opened = gate.clone();
            let mut handle = group
                .spawn(async move {
                    opened.wait().await;
                    Ok(5)
                })
                .expect("spawn");
            assert!(!handle.is_finished(), "the child waits for the gate");
            gate.open();
            assert_eq!(bounded(&env, "first await", &mut handle).await, Ok(5));
            assert!(handle.is_finished());
            assert_eq!(
                bounded(&env, "second await", &mut handle).await,
                Err(Joined::Taken)
            );
            assert!(handle.is_finished(), "still finished");

            let mut failed = group.spawn(async { Err::<(), _>(9) }).expect("spawn");
            bounded(&env, "the child fails", async {
                while !failed.is_finished() {
                    yield_now().await;
                }
            })
            .await;
            assert_eq!((&mut failed).await, Err(Joined::Failed));
            assert_eq!(
                bounded(&env, "second await", &mut failed).await,
                Err(Joined::Taken)
            );
            assert!(failed.is_finished());
            Ok(())
        })
        .await;
    assert_eq!(result.expect_err("a child failed").errors, [9]);
}

/// `ChildHandle::abort` cancels a waiting child, told `Cancel::Dropped`:
/// its future is not polled again, its scope releases, its handle says so,
/// and the group does not fail. Aborting a child that has ended changes
/// nothing.
pub async fn group_handle_abort(env: Env) {
    let log = Log::new();
    let polls = Arc::new(AtomicUsize::new(0));
    let result = TaskGroup::<ProbeError>::with(&env.rt, async |group| {
        let (log, rt, counted) = (log.clone(), env.rt.clone(), Arc::clone(&polls));
        let handle = group
            .spawn(async move {
                Probe::new(&log, Plan::ok(0), &rt)
                    .with(&rt, async |_| {
                        // Counts its polls; never wakes itself.
                        poll_fn(|_| {
                            counted.fetch_add(1, Ordering::SeqCst);
                            Poll::<()>::Pending
                        })
                        .await;
                        Ok::<_, ProbeError>(())
                    })
                    .await
                    .map_err(|_| ProbeError::Body)
            })
            .expect("spawn");
        bounded(&env, "the child starts", async {
            while polls.load(Ordering::SeqCst) == 0 {
                yield_now().await;
            }
        })
        .await;
        assert!(!handle.is_finished());
        handle.abort();
        assert_eq!(
            bounded(&env, "the aborted child", handle).await,
            Err(Joined::Cancelled(Cancel::Dropped))
        );
        let done = group.spawn(async { Ok(3) }).expect("spawn");
        bounded(&env, "the child ends", async {
            while !done.is_finished() {
                yield_now().await;
            }
        })
        .await;
        done.abort();
        assert_eq!(done.await, Ok(3));
        Ok(())
    })
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(
        polls.load(Ordering::SeqCst),
        1,
        "the aborted child was polled again"
    );
    assert_eq!(
        log.check_released_once()
            .unwrap()
            .iter()
            .map(|(_, e)| *e)
            .collect::<Vec<_>>(),
        [ExitKind::Cancelled(Cancel::Dropped)]
    );
}

/// The value of a child whose handle was dropped is dropped when the child
/// ends, as part of the child — before the group returns; a panic in its
/// drop is the child's panic.
pub async fn group_unclaimed_values(env: Env) {
    let drops = Arc::new(AtomicUsize::new(0));
    let result = bounded(
        &env,
        "the group",
        TaskGroup::<()>::with(&env.rt, async |group| {
            let gate = Gate::default();
            let (opened, counted) = (gate.clone(), Arc::clone(&drops));
            let handle = group
                .spawn(async move {
                    opened.wait().await;
                    Ok(CountDrop(counted))
                })
                .expect("spawn");
            drop(handle);
            gate.open();
            Ok(())
        }),
    )
    .await;
    assert!(result.is_ok());
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "dropped when the child ended"
    );

    let result = caught(bounded(
        &env,
        "the group",
        TaskGroup::<()>::with(&env.rt, async |group| {
            let gate = Gate::default();
            let opened = gate.clone();
            let handle = group
                .spawn(async move {
                    opened.wait().await;
                    Ok(PanicOnDrop("probe: the unclaimed value's drop"))
                })
                .expect("spawn");
            drop(handle);
            gate.open();
            Ok(())
        }),
    ))
    .await;
    let panic = result.expect_err("the child panicked");
    assert_eq!(panic_message(&*panic), "probe: the unclaimed value's drop");
}

/// A cancellation reaches every waiting child, also when the group has
/// listed more than 64 of them and some have ended meanwhile (the list of
/// waiting children is pruned as it grows).
pub async fn group_cancellation_reaches_many_children(env: Env) {
    let u = unit(&env);
    let short_ended = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let start = env.rt.now();
    let result = TaskGroup::<()>::with(&env.rt, async |group| {
        // Children that wait once (so they are listed), then end.
        for _ in 0..40 {
            let ended = Arc::clone(&short_ended);
            group
                .spawn(async move {
                    yield_now().await;
                    ended.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                })
                .expect("spawn");
        }
        bounded(&env, "the short children", async {
            while short_ended.load(Ordering::SeqCst) < 40 {
                yield_now().await;
            }
        })
        .await;
        for _ in 0..100 {
            let (rt, started, completed, dropped) = (
                env.rt.clone(),
                Arc::clone(&started),
                Arc::clone(&completed),
                Arc::clone(&dropped),
            );
            group
                .spawn(async move {
                    let _count = CountDrop(dropped);
                    started.fetch_add(1, Ordering::SeqCst);
                    rt.sleep(u * 1000).await;
                    completed.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                })
                .expect("spawn");
        }
        bounded(&env, "the waiting children", async {
            while started.load(Ordering::SeqCst) < 100 {
                yield_now().await;
            }
        })
        .await;
        group.spawn(async { Err::<(), _>(()) }).expect("spawn");
        std::future::pending::<()>().await;
        Ok(())
    })
    .await;
    // At once: a child the cancellation missed would only see it when its
    // timer woke it.
    let took = env.rt.now() - start;
    assert!(took < u * 1000, "{took:?}");
    if env.virtual_time {
        assert_eq!(took, Duration::ZERO);
    }
    assert_eq!(result.expect_err("a child failed").errors, [()]);
    assert_eq!(
        completed.load(Ordering::SeqCst),
        0,
        "every waiting child was cancelled"
    );
    assert_eq!(dropped.load(Ordering::SeqCst), 100);
}

/// A failing body fails the group as a failing child does: fail-fast
/// cancels the children (told `SiblingFailed`) at once, collect-all lets
/// them finish.
pub async fn group_body_failure_by_policy(env: Env) {
    let u = unit(&env);
    for policy in [Policy::FailFast, Policy::CollectAll] {
        let log = Log::new();
        let start = env.rt.now();
        let naps = if policy == Policy::FailFast { 100 } else { 3 };
        let result = TaskGroup::<&'static str>::builder()
            .policy(policy)
            .with(&env.rt, async |group| {
                let (log, rt) = (log.clone(), env.rt.clone());
                group
                    .spawn(async move {
                        Probe::new(&log, Plan::ok(0), &rt)
                            .with(&rt, async |_| {
                                rt.sleep(u * naps).await;
                                Ok::<_, ProbeError>(())
                            })
                            .await
                            .map_err(|_| "child")
                    })
                    .expect("spawn");
                env.rt.sleep(u).await;
                Err::<(), _>("body")
            })
            .await;
        let took = env.rt.now() - start;
        assert_eq!(result.expect_err("the body failed").errors, ["body"]);
        let exits: Vec<_> = log
            .check_released_once()
            .unwrap()
            .iter()
            .map(|(_, e)| *e)
            .collect();
        if policy == Policy::FailFast {
            assert_eq!(exits, [ExitKind::Cancelled(Cancel::SiblingFailed)]);
            if env.virtual_time {
                assert_eq!(took, u);
            } else {
                assert!(took < u * 100, "{took:?}");
            }
        } else {
            assert_eq!(exits, [ExitKind::Completed]);
            if env.virtual_time {
                assert_eq!(took, u * 3);
            } else {
                assert!(took >= u * 3, "{took:?}");
            }
        }
    }
}

/// Children are told exactly why their group cancelled them — their
/// scopes' exits and their handles say it: a failure, the deadline, the
/// group's future dropped, or dropped by `cancel_with`.
pub async fn group_children_told_the_reason(env: Env) {
    let u = unit(&env);
    for reason in [
        Cancel::SiblingFailed,
        Cancel::Timeout,
        Cancel::Dropped,
        Cancel::LockLost,
    ] {
        let log = Log::new();
        let slot: Arc<std::sync::Mutex<Option<ChildHandle<()>>>> = Arc::default();
        let (started_tx, mut started) = futures::channel::mpsc::unbounded::<()>();
        let (sibling_tx, sibling) = futures::channel::mpsc::unbounded::<()>();
        let builder = match reason {
            // Long enough for the child to start, on a loaded machine too.
            Cancel::Timeout => TaskGroup::<ProbeError>::builder()
                .deadline(u * if env.virtual_time { 5 } else { 20 }),
            _ => TaskGroup::<ProbeError>::builder(),
        };
        let group = builder.with(&env.rt, async |group: &TaskGroup<ProbeError>| {
            let (log, rt) = (log.clone(), env.rt.clone());
            let handle = group
                .spawn(async move {
                    Probe::new(&log, Plan::ok(0), &rt)
                        .with(&rt, async |_| {
                            // The sibling's receiver, unused when the group
                            // is dropped, goes with the group.
                            let _ = sibling_tx.unbounded_send(());
                            started_tx.unbounded_send(()).unwrap();
                            std::future::pending::<()>().await;
                            Ok::<_, ProbeError>(())
                        })
                        .await
                        .map_err(|_| ProbeError::Body)
                })
                .expect("spawn");
            *slot.lock().unwrap() = Some(handle);
            match reason {
                Cancel::SiblingFailed => {
                    group
                        .spawn(async move {
                            let mut sibling = sibling;
                            sibling.next().await;
                            Err::<(), _>(ProbeError::Body)
                        })
                        .expect("spawn");
                }
                Cancel::Timeout => {
                    // The child is in its scope before the deadline passes.
                    let mut sibling = sibling;
                    sibling.next().await;
                }
                _ => {}
            }
            std::future::pending::<()>().await;
            Ok(())
        });
        match reason {
            Cancel::SiblingFailed | Cancel::Timeout => {
                let error = bounded(&env, "the group", group)
                    .await
                    .expect_err("cancelled");
                assert_eq!(error.timed_out.is_some(), reason == Cancel::Timeout);
            }
            _ => {
                let mut group = Stepper::new(group);
                assert!(matches!(group.step().await, Polled::Pending));
                bounded(&env, "the child starts", started.next()).await;
                if reason == Cancel::LockLost {
                    cancel_with(Cancel::LockLost, group);
                } else {
                    drop(group);
                }
                drain(&env).await;
            }
        }
        let exits: Vec<_> = log
            .check_released_once()
            .unwrap()
            .iter()
            .map(|(_, e)| *e)
            .collect();
        assert_eq!(exits, [ExitKind::Cancelled(reason)], "{reason:?}");
        let handle = slot.lock().unwrap().take().expect("the body kept it");
        assert_eq!(
            bounded(&env, "the handle", handle).await,
            Err(Joined::Cancelled(reason))
        );
    }
}

/// A cancelled child whose scope's release hangs — and the body's, too —
/// holds its group only as long as the runtime's cleanup timeout, which is
/// reported.
pub async fn group_cancelled_child_release_hangs(env: Env) {
    let u = unit(&env);
    let (rt, incidents) = recording_runtime(Arc::clone(&env.binding), u * 5);
    let log = Log::new();
    let start = rt.now();
    let result = TaskGroup::<ProbeError>::with(&rt, async |group| {
        let (child_log, child_rt) = (log.clone(), rt.clone());
        let (started, mut sibling_started) = futures::channel::mpsc::unbounded::<()>();
        group
            .spawn(async move {
                let mut plan = Plan::ok(0);
                plan.release_hangs = true;
                Probe::new(&child_log, plan, &child_rt)
                    .with(&child_rt, async |_| {
                        started.unbounded_send(()).unwrap();
                        std::future::pending::<()>().await;
                        Ok::<_, ProbeError>(())
                    })
                    .await
                    .map_err(|_| ProbeError::Release)
            })
            .expect("spawn");
        let failing_rt = rt.clone();
        group
            .spawn(async move {
                sibling_started.next().await;
                failing_rt.sleep(u).await;
                Err::<(), _>(ProbeError::Body)
            })
            .expect("spawn");
        let mut plan = Plan::ok(0);
        plan.release_hangs = true;
        Probe::new(&log, plan, &rt)
            .with(&rt, async |_| {
                std::future::pending::<()>().await;
                Ok::<_, ProbeError>(())
            })
            .await
            .map_err(|_| ProbeError::Release)
    })
    .await;
    let took = rt.now() - start;
    assert_eq!(
        result.expect_err("a child failed").errors,
        [ProbeError::Body]
    );
    if env.virtual_time {
        assert_eq!(took, u * 6);
    } else {
        assert!(took >= u * 6 && took < HANG, "{took:?}");
    }
    let timed_out = Incident::CleanupTimedOut {
        kind: CleanupKind::Release,
        after: u * 5,
    };
    assert_eq!(incidents.all(), [timed_out.clone(), timed_out]);
    assert_eq!(log.acquired().len(), 2);
}

/// What a group's types say of themselves: `GroupError`'s and `Joined`'s
/// `Display`, and `Debug` of a group and a handle.
pub async fn group_formats(env: Env) {
    let u = unit(&env);
    // The deadline alone.
    let error = TaskGroup::<&'static str>::builder()
        .deadline(u)
        .with(&env.rt, async |_: &TaskGroup<&'static str>| {
            std::future::pending::<()>().await;
            Ok(())
        })
        .await
        .expect_err("the deadline passed");
    assert_eq!(
        error.to_string(),
        format!("the task group did not finish within {u:?}")
    );
    // Errors, and the deadline.
    let error = TaskGroup::<&'static str>::builder()
        .policy(Policy::CollectAll)
        .deadline(u * 50)
        .with(&env.rt, async |group| {
            assert_eq!(group.runtime().name(), env.rt.name());
            let first = group.spawn(async { Err::<(), _>("e1") }).expect("spawn");
            assert_eq!(format!("{first:?}"), "ChildHandle { .. }");
            let second = group
                .spawn(async move {
                    let _ = first.await;
                    Err::<(), _>("e2")
                })
                .expect("spawn");
            let third = group
                .spawn(async move {
                    let _ = second.await;
                    Err::<(), _>("e3")
                })
                .expect("spawn");
            let described = format!("{group:?}");
            assert!(
                described.starts_with("TaskGroup { policy: CollectAll, live: ")
                    && described.ends_with(", cancelled: None, .. }"),
                "{described}"
            );
            assert_eq!(third.await, Err(Joined::Failed));
            std::future::pending::<()>().await;
            Ok(())
        })
        .await
        .expect_err("three children failed");
    assert_eq!(error.errors, ["e1", "e2", "e3"]);
    assert_eq!(
        error.to_string(),
        format!(
            "e1 (and 2 more errors) (the task group did not finish within {:?})",
            u * 50
        )
    );
    // One error.
    let error = TaskGroup::<&'static str>::with(&env.rt, async |_| Err::<(), _>("alone"))
        .await
        .expect_err("the body failed");
    assert_eq!(error.to_string(), "alone");
    assert_eq!(error.primary(), Some(&"alone"));
    for (joined, says) in [
        (
            Joined::Failed,
            "the child failed (its error went to the group)",
        ),
        (Joined::Panicked, "the child panicked"),
        (
            Joined::Cancelled(Cancel::SiblingFailed),
            "the child was cancelled (sibling failed)",
        ),
        (Joined::Lost, "the runtime dropped the child unfinished"),
        (Joined::Taken, "the handle already gave the child's outcome"),
    ] {
        assert_eq!(joined.to_string(), says);
    }
}

/// A panic's payload is a user value, and its drop may panic too: the group
/// resumes the first panic, reports the second, and reports the panic of
/// dropping the second's payload.
pub async fn group_panic_payload_drop_panics(env: Env) {
    let result = caught(TaskGroup::<u32>::builder().policy(Policy::CollectAll).with(
        &env.rt,
        async |group: &TaskGroup<u32>| {
            let first = group
                .spawn(async {
                    if true {
                        panic!("probe: the first panic");
                    }
                    Ok(())
                })
                .expect("spawn");
            group
                .spawn(async move {
                    let _ = first.await;
                    if true {
                        std::panic::panic_any(PanicOnDrop("probe: the payload's drop"));
                    }
                    Ok(())
                })
                .expect("spawn");
            Ok(())
        },
    ))
    .await;
    let panic = result.expect_err("a panic resumes");
    assert_eq!(panic_message(&*panic), "probe: the first panic");
    assert_eq!(
        env.incidents.all(),
        [
            Incident::ReleasePanickedDuringPanic {
                message: "<a panic payload that is not a string>".into()
            },
            Incident::ReleasePanickedDuringPanic {
                message: "probe: the payload's drop".into()
            },
        ]
    );
}

/// On a multi-thread runtime, a child whose first poll lasts until its group
/// has been cancelled waits — is listed for the cancellation to reach — only
/// after the cancellation went by: it still sees it, and is cancelled.
pub async fn group_cancel_reaches_a_child_listing_itself(env: Env) {
    if !env.parallel {
        return;
    }
    let u = unit(&env);
    let result = bounded(
        &env,
        "the group",
        TaskGroup::<&'static str>::with(&env.rt, async |group| {
            let rt = env.rt.clone();
            let failing = group
                .spawn(async move {
                    rt.sleep(u).await;
                    Err::<(), _>("failed")
                })
                .expect("spawn");
            group
                .spawn(async move {
                    let spin = Instant::now();
                    while !failing.is_finished() {
                        assert!(spin.elapsed() < HANG, "the sibling never failed");
                        std::hint::spin_loop();
                    }
                    std::future::pending::<()>().await;
                    Ok(())
                })
                .expect("spawn");
            std::future::pending::<()>().await;
            Ok(())
        }),
    )
    .await;
    assert_eq!(result.expect_err("a child failed").errors, ["failed"]);
}

/// A runtime that shuts down drops the children it has not finished: each
/// ends, its handle says `Lost` — or `Panicked` when its future's drop
/// panicked, a panic the group resumes — and the group returns.
pub async fn group_children_dropped_at_shutdown(env: Env, idle: Result<Idle, &'static str>) {
    let Ok(idle) = idle else {
        // async-std's executor cannot shut down.
        return;
    };
    let (rt, _incidents) = recording_runtime(Arc::clone(&idle.binding), CLEANUP_TIMEOUT);
    let seen = Arc::new(std::sync::Mutex::new(None));
    let mut group = Stepper::new(TaskGroup::<u32>::builder().policy(Policy::CollectAll).with(
        &rt,
        async |group: &TaskGroup<u32>| {
            let lost = group.spawn(async { Ok(1) }).expect("spawn");
            let bomb = PanicOnDrop("probe: the child dropped at shutdown");
            let panicked = group
                .spawn(async move {
                    let _bomb = bomb;
                    Ok(2)
                })
                .expect("spawn");
            *seen.lock().unwrap() = Some((lost.await, panicked.await));
            Ok(())
        },
    ));
    assert!(
        matches!(group.step().await, Polled::Pending),
        "the runtime runs no child"
    );
    (idle.shut_down)();
    let panic = loop {
        match bounded(&env, "the group", group.step()).await {
            Polled::Pending => {}
            Polled::Ready(result) => panic!("the group returned {result:?}"),
            Polled::Panicked(panic) => break panic,
        }
    };
    assert_eq!(
        panic_message(&*panic),
        "probe: the child dropped at shutdown"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        Some((Err(Joined::Lost), Err(Joined::Panicked)))
    );
}
