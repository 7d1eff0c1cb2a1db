//! Structured concurrency: `gather` on the current task, `TaskGroup`
//! children on the runtime — results in order, sibling cancellation on the
//! first error, collect-all, panics, deadlines, cancellation of the whole
//! group at every await point, no child outliving its group, spawn failures,
//! parallelism, and a resource released only after every child.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use awith::group::{Joined, Policy, TaskGroup};
use awith::{Cancel, ExitKind, ResourceExt, ScopeError, gather, gather_all};
use futures::FutureExt;

use super::{Polled, Stepper, drain, panic_message};
use crate::harness::{Env, SharedBinding, recording_runtime};
use crate::probe::{self, Event, Log, Plan, Probe, ProbeError, Step, yield_now};

/// A second on the virtual clock, 10 ms on a real one.
fn unit(env: &Env) -> Duration {
    if env.virtual_time {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(10)
    }
}

/// The index of the first event matching, in `events`.
fn at(events: &[Event], matches: impl Fn(&Event) -> bool) -> usize {
    events.iter().position(matches).unwrap_or(usize::MAX)
}

/// A probe scope whose body sleeps `naps` units, then ends as `body` says;
/// its value: the probe's id.
async fn work(env: &Env, log: &Log, naps: u32, body: Step) -> Result<u64, ProbeError> {
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
    let result =
        std::panic::AssertUnwindSafe(TaskGroup::<ProbeError>::with(&env.rt, async |group| {
            let panicking = group
                .spawn({
                    let rt = env.rt.clone();
                    async move {
                        // Long enough for the sibling to acquire its resource.
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
    let start = env.rt.now();
    let result = TaskGroup::<ProbeError>::builder()
        .deadline(u * 2)
        .with(&env.rt, async |group| {
            let (child_log, rt) = (log.clone(), env.rt.clone());
            group
                .spawn(async move {
                    Probe::new(&child_log, Plan::ok(1), &rt)
                        .with(&rt, async |_| {
                            rt.sleep(u * 100).await;
                            Ok::<_, ProbeError>(())
                        })
                        .await
                        .map_err(|_| ProbeError::Body)
                })
                .expect("spawn");
            work(&env, &log, 100, Step::Ok).await?;
            Ok(())
        })
        .await;
    let took = env.rt.now() - start;
    let error = result.expect_err("the deadline passed");
    assert_eq!((error.errors, error.timed_out), (vec![], Some(u * 2)));
    if env.virtual_time {
        assert_eq!(took, u * 2);
    } else {
        assert!(took >= u * 2 && took < u * 100, "{took:?}");
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
                for n in 0..3u32 {
                    let (shared, rt, finished) =
                        (Arc::clone(&shared), env.rt.clone(), Arc::clone(&finished));
                    group
                        .spawn(async move {
                            rt.sleep(u * n).await;
                            finished.fetch_add(1, Ordering::SeqCst);
                            if n == 2 { Err(*shared) } else { Ok(()) }
                        })
                        .expect("spawn");
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
