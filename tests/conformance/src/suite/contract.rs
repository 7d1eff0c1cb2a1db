//! The adapter contract: the runtime under test is the one named, spawned
//! work runs concurrently (in parallel on multi-thread runtimes), sleep waits
//! at least its duration, spawning after shutdown is an error that gives the
//! task back, and drain waits for pending cleanups up to its deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use awith::rt::{CleanupKind, Incident};
use awith::{Cancel, ExitKind, ResourceExt, Runtime, resource};
use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, SinkExt, StreamExt};

use super::guide::observe;
use super::{Polled, Stepper, drain};
use crate::probe::{self, Event, Log, Plan, Probe, ProbeError, Step};
use awith::test::harness::{Idle, SharedBinding};
use awith::test::{CLEANUP_TIMEOUT, Env, recording_runtime};

/// The main future and a spawned task both run on the runtime under test.
pub async fn identity(env: Env) {
    (env.identity)().expect("main future");
    let (tx, rx) = oneshot::channel();
    let identity = Arc::clone(&env.identity);
    env.rt
        .spawn(async move {
            let _ = tx.send(identity());
        })
        .expect("spawn");
    rx.await
        .expect("the spawned task ran")
        .expect("the spawned task runs on the runtime under test");
}

/// Two spawned tasks make progress concurrently: they play ping-pong.
pub async fn spawn_is_concurrent(env: Env) {
    let (mut ping_tx, mut ping_rx) = mpsc::channel::<u32>(1);
    let (mut pong_tx, mut pong_rx) = mpsc::channel::<u32>(1);
    let (done_tx, done_rx) = oneshot::channel();
    env.rt
        .spawn(async move {
            while let Some(n) = ping_rx.next().await {
                if pong_tx.send(n + 1).await.is_err() {
                    break;
                }
            }
        })
        .expect("spawn");
    env.rt
        .spawn(async move {
            let mut n = 0;
            for _ in 0..100 {
                ping_tx.send(n).await.expect("ponger alive");
                n = pong_rx.next().await.expect("ponger alive");
            }
            let _ = done_tx.send(n);
        })
        .expect("spawn");
    assert_eq!(done_rx.await, Ok(100));
}

/// On a multi-thread runtime two spawned tasks run at the same time: each
/// spins until it sees the other running. On a single-thread runtime they
/// cannot: the first to run never sees the second while it runs.
pub async fn spawn_parallelism(env: Env) {
    let parallel = env.parallel;
    let started = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
    let mut results = Vec::new();
    for me in 0..2 {
        let started = Arc::clone(&started);
        let (tx, rx) = oneshot::channel();
        results.push(rx);
        env.rt
            .spawn(async move {
                started[me].store(true, Ordering::SeqCst);
                let other = 1 - me;
                // Parallel: wait (bounded) for the other to start. Single
                // thread: spin a little; the other cannot start meanwhile.
                let bound = if parallel {
                    Duration::from_secs(20)
                } else {
                    Duration::from_millis(20)
                };
                let spin_start = Instant::now();
                let mut saw_other = false;
                while spin_start.elapsed() < bound {
                    if started[other].load(Ordering::SeqCst) {
                        saw_other = true;
                        break;
                    }
                    std::hint::spin_loop();
                }
                let _ = tx.send((saw_other, std::thread::current().id()));
            })
            .expect("spawn");
    }
    let mut outcomes = Vec::new();
    for rx in results {
        outcomes.push(rx.await.expect("task ran"));
    }
    if parallel {
        assert!(
            outcomes.iter().all(|(saw, _)| *saw),
            "both tasks ran at the same time: {outcomes:?}"
        );
        assert_ne!(outcomes[0].1, outcomes[1].1, "on two threads");
        observe(
            &env,
            "parallel/native",
            "in parallel, on several worker threads",
        );
    } else {
        assert_eq!(
            outcomes.iter().filter(|(saw, _)| *saw).count(),
            1,
            "only the second task sees the first (which ran before it): {outcomes:?}"
        );
        assert_eq!(outcomes[0].1, outcomes[1].1, "on one thread");
        observe(&env, "parallel/native", "one at a time, on one thread");
    }
}

/// `sleep` waits at least its duration (exactly, on a virtual clock), and a
/// zero sleep completes.
pub async fn sleep_waits_its_duration(env: Env) {
    let virtual_time = env.virtual_time;
    let nap = Duration::from_millis(30);
    let wall = Instant::now();
    let start = env.rt.now();
    env.rt.sleep(nap).await;
    let slept = env.rt.now() - start;
    if virtual_time {
        assert_eq!(slept, nap);
    } else {
        assert!(slept >= nap, "slept {slept:?} on the runtime's clock");
        assert!(
            wall.elapsed() >= nap,
            "slept {:?} of wall time",
            wall.elapsed()
        );
        assert!(slept < Duration::from_secs(30), "slept {slept:?}");
    }
    env.rt.sleep(Duration::ZERO).await;
    // A sleep spawned as a task works too (the timer is not tied to the
    // task that made it).
    let (tx, rx) = oneshot::channel();
    let sleeper = env.rt.sleep(nap);
    env.rt
        .spawn(async move {
            sleeper.await;
            let _ = tx.send(());
        })
        .expect("spawn");
    rx.await.expect("the sleeping task finished");
}

/// Spawning on a runtime that has shut down fails with an error and, where
/// the runtime allows (`gives_back`), gives the task back unrun; a scope
/// cancelled there has its cleanup refused, which is counted and reported —
/// never silent. async-std's executor cannot shut down: there, a spawn from a
/// thread outside any runtime still runs.
pub async fn spawn_after_shutdown(
    env: Env,
    shut_down: Result<SharedBinding, &'static str>,
    gives_back: bool,
) {
    let dead_binding = match shut_down {
        Ok(dead) => dead,
        Err(why) => {
            // The runtime is global: check that it accepts work from a plain
            // thread after this test's own runtime handle is long made.
            let rt = env.rt.clone();
            let (tx, rx) = oneshot::channel();
            std::thread::spawn(move || rt.spawn(async move { tx.send(()).unwrap() }))
                .join()
                .expect("thread")
                .unwrap_or_else(|e| panic!("{why}; yet: {e}"));
            rx.await.expect("the task ran");
            observe(
                &env,
                "spawn-after-shutdown/native",
                "never happens: the executor is global and lives as long as the process",
            );
            observe(
                &env,
                "spawn-after-shutdown/awith",
                "a spawn from any thread runs",
            );
            return;
        }
    };
    let dead = Runtime::new(Arc::clone(&dead_binding));
    let ran = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&ran);
    let refused = dead
        .spawn(async move { flag.store(true, Ordering::SeqCst) })
        .expect_err("spawn on a shut-down runtime fails");
    assert_eq!(refused.runtime(), dead.name());
    assert!(!ran.load(Ordering::SeqCst));
    match (refused.into_task(), gives_back) {
        (Some(task), true) => {
            observe(
                &env,
                "spawn-after-shutdown/native",
                "the executor is gone: no spawn is possible",
            );
            observe(
                &env,
                "spawn-after-shutdown/awith",
                "`SpawnError`, the task given back unrun (`into_task`)",
            );
            // The task given back is intact: it runs elsewhere.
            let (tx, rx) = oneshot::channel();
            env.rt
                .spawn(async move {
                    task.await;
                    let _ = tx.send(());
                })
                .expect("spawn");
            rx.await.expect("ran");
            assert!(ran.load(Ordering::SeqCst));
        }
        (None, false) => {
            observe(
                &env,
                "spawn-after-shutdown/native",
                "the spawn is accepted and the task dropped unrun",
            );
            observe(
                &env,
                "spawn-after-shutdown/awith",
                "`SpawnError`; the task is dropped unrun (tokio gives it no way back)",
            );
            // Dropped unrun, and the error says so.
            assert!(Arc::strong_count(&ran) == 1, "the refused task was dropped");
            assert!(!ran.load(Ordering::SeqCst));
        }
        (task, _) => panic!(
            "{}: refused task given back: {}, expected {gives_back}",
            dead.name(),
            task.is_some()
        ),
    }

    // A scope cancelled on the dead runtime: its release cannot be spawned.
    let (dead, incidents) = recording_runtime(dead_binding, CLEANUP_TIMEOUT);
    let log = Log::new();
    let plan = Plan::ok(2);
    let probe = Probe::new(&log, plan, &env.rt);
    let mut scope =
        Stepper::new(probe.with(&dead, async move |conn| probe::body(conn, plan).await));
    while !log
        .events()
        .iter()
        .any(|e| matches!(e, Event::BodyStart(_)))
    {
        assert!(matches!(scope.step().await, Polled::Pending));
    }
    drop(scope);
    let stats = dead.cleanup_stats();
    assert_eq!(
        (stats.spawned, stats.lost, stats.pending),
        (1, 1, 0),
        "{stats:?}"
    );
    assert_eq!(
        incidents.all(),
        [Incident::CleanupRefused {
            kind: CleanupKind::Release,
            runtime: dead.name()
        }]
    );
    let id = log.acquired()[0];
    assert!(log.release_exits(id).is_empty(), "the release never ran");
    assert!(
        log.events().contains(&Event::Dropped(id)),
        "the value was dropped"
    );
}

/// A binding's [`TaskSet`](awith::rt::TaskSet), where it has one
/// (`has_set`), spawns like `spawn`: many tasks run to their end through it;
/// it keeps no more than a bounded number of finished ones; dropping it — as a task group whose future is dropped does, its children
/// still ending their cleanups — cancels no task that is still running; on
/// a runtime that has shut down it fails with an error.
pub async fn task_set_detaches(
    env: Env,
    shut_down: Result<SharedBinding, &'static str>,
    has_set: bool,
) {
    let Some(mut set) = env.binding.task_set() else {
        assert!(!has_set, "{} has a task set", env.rt.name());
        return;
    };
    assert!(has_set, "{} has no task set", env.rt.name());
    // Enough tasks that the set prunes the finished ones several times.
    let (done_tx, mut done_rx) = mpsc::unbounded::<usize>();
    for i in 0..500 {
        let done_tx = done_tx.clone();
        set.spawn(Box::pin(async move {
            done_tx.unbounded_send(i).expect("the test waits");
        }))
        .expect("spawn");
    }
    drop(done_tx);
    let mut done: Vec<usize> = done_rx.by_ref().collect().await;
    done.sort_unstable();
    assert_eq!(done, (0..500).collect::<Vec<_>>());
    // It lets finished tasks go as it goes: a long-lived task group does not
    // keep every child it ever had.
    for i in 0..500 {
        let (tx, rx) = oneshot::channel();
        set.spawn(Box::pin(async move {
            let _ = tx.send(i);
        }))
        .expect("spawn");
        assert_eq!(rx.await, Ok(i));
    }
    assert!(set.kept() <= 128, "{} handles kept", set.kept());
    // A task still waiting when the set is dropped runs on.
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let (ran_tx, ran_rx) = oneshot::channel();
    set.spawn(Box::pin(async move {
        let _ = go_rx.await;
        let _ = ran_tx.send(());
    }))
    .expect("spawn");
    drop(set);
    go_tx.send(()).expect("the task is still there");
    ran_rx
        .await
        .expect("dropping the set did not cancel the task");

    if let Ok(dead) = shut_down {
        let mut set = dead.task_set().expect("the same binding");
        let ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let refused = set
            .spawn(Box::pin(async move { flag.store(true, Ordering::SeqCst) }))
            .expect_err("spawn on a shut-down runtime fails");
        assert_eq!(refused.runtime(), env.rt.name());
        drop(refused);
        assert!(!ran.load(Ordering::SeqCst));
    }
}

/// Drain waits for cleanups in flight: a scope dropped in its body releases
/// through a runtime sleep; right after the drop the release has not
/// finished, once drained it has, with `Cancelled(Dropped)`.
pub async fn drain_waits_for_cleanups(env: Env) {
    let log = Log::new();
    let plan = Plan {
        release_sleep: Some(Duration::from_millis(50)),
        ..Plan::ok(1)
    };
    let probe = Probe::new(&log, plan, &env.rt);
    let mut scope = Stepper::new(probe.with(&env.rt, async move |conn| {
        probe::body(conn, plan).await?;
        std::future::pending::<()>().await;
        Ok::<_, ProbeError>(1)
    }));
    while !log.events().iter().any(|e| matches!(e, Event::BodyEnd(_))) {
        assert!(matches!(scope.step().await, Polled::Pending));
    }
    drop(scope);
    let id = log.acquired()[0];
    assert!(!log.events().contains(&Event::Released(id)), "not yet");
    assert_eq!(env.rt.cleanup_stats().pending, 1);
    let stats = drain(&env).await;
    assert!(log.events().contains(&Event::Released(id)), "drained");
    assert_eq!(
        log.release_exits(id),
        [ExitKind::Cancelled(Cancel::Dropped)]
    );
    assert_eq!((stats.spawned, stats.completed, stats.pending), (1, 1, 0));
    assert!(stats.is_clean(), "{stats:?}");
}

/// Drain gives up at its deadline with the pending count; a cleanup that
/// hangs is dropped at the cleanup timeout and reported; then drain succeeds.
pub async fn drain_deadline_and_cleanup_timeout(env: Env) {
    let virtual_time = env.virtual_time;
    let cleanup_timeout = Duration::from_millis(300);
    let (rt, incidents) = recording_runtime(Arc::clone(&env.binding), cleanup_timeout);
    let log = Log::new();
    let plan = Plan {
        release_hangs: true,
        ..Plan::ok(1)
    };
    let probe = Probe::new(&log, plan, &rt);
    let mut scope = Stepper::new(probe.with(&rt, async move |conn| {
        probe::body(conn, plan).await?;
        std::future::pending::<()>().await;
        Ok::<_, ProbeError>(1)
    }));
    while !log.events().iter().any(|e| matches!(e, Event::BodyEnd(_))) {
        assert!(matches!(scope.step().await, Polled::Pending));
    }
    let start = rt.now();
    drop(scope);
    let error = rt
        .drain(Duration::from_millis(50))
        .await
        .expect_err("the release hangs");
    assert_eq!(error.stats.pending, 1);
    assert_eq!(error.deadline, Duration::from_millis(50));
    let stats = rt
        .drain(Duration::from_secs(30))
        .await
        .expect("timed out by now");
    let waited = rt.now() - start;
    if virtual_time {
        assert_eq!(waited, cleanup_timeout);
    } else {
        assert!(waited >= cleanup_timeout, "{waited:?}");
    }
    assert_eq!((stats.spawned, stats.timed_out, stats.pending), (1, 1, 0));
    assert_eq!(
        incidents.all(),
        [Incident::CleanupTimedOut {
            kind: CleanupKind::Release,
            after: cleanup_timeout
        }]
    );
    let id = log.acquired()[0];
    assert_eq!(
        log.count(|e| *e == Event::Dropped(id)),
        1,
        "the value was dropped"
    );
}

/// A scope dropped on a plain thread outside the runtime's context still has
/// its release run on the runtime (the binding keeps a handle to it).
pub async fn cleanup_from_a_foreign_thread(env: Env) {
    let log = Log::new();
    let plan = Plan::ok(2);
    let probe = Probe::new(&log, plan, &env.rt);
    let rt = env.rt.clone();
    let (scope_tx, scope_rx) = std::sync::mpsc::channel();
    let polls = Arc::new(AtomicUsize::new(0));
    {
        let mut scope = Stepper::new(async move {
            probe
                .with(&rt, async move |conn| probe::body(conn, plan).await)
                .await
        });
        while !log
            .events()
            .iter()
            .any(|e| matches!(e, Event::BodyStart(_)))
        {
            assert!(matches!(scope.step().await, Polled::Pending));
            polls.fetch_add(1, Ordering::Relaxed);
        }
        scope_tx.send(scope).expect("channel");
    }
    std::thread::spawn(move || drop(scope_rx.recv().expect("the scope")))
        .join()
        .expect("the thread");
    drain(&env).await;
    let released = log.check_released_once().unwrap();
    assert_eq!(
        released[0].1,
        ExitKind::Cancelled(Cancel::Dropped),
        "after {} polls",
        polls.load(Ordering::Relaxed)
    );
    assert!(log.events().contains(&Event::Released(released[0].0)));
}

/// A scope of `probe` on `rt`, stepped into its body and dropped there: its
/// release is handed to `rt` as a cleanup.
async fn cancel_in_body(log: &Log, plan: Plan, env_rt: &Runtime, rt: &Runtime) {
    let probe = Probe::new(log, plan, env_rt);
    let mut scope = Stepper::new(probe.with(rt, async move |conn| {
        probe::body(conn, plan).await?;
        std::future::pending::<()>().await;
        Ok::<_, ProbeError>(1)
    }));
    while !log.events().iter().any(|e| matches!(e, Event::BodyEnd(_))) {
        assert!(matches!(scope.step().await, Polled::Pending));
    }
    drop(scope);
}

/// `spawned = completed + failed + panicked + timed_out + lost + pending`.
fn balanced(stats: &awith::rt::CleanupStats) {
    assert_eq!(
        stats.spawned,
        stats.completed
            + stats.failed
            + stats.panicked
            + stats.timed_out
            + stats.lost
            + stats.pending,
        "{stats:?}"
    );
}

/// An incident hook that panics — and one that calls back into the runtime
/// — costs nothing its books: the cleanup it reported on still ends, so a
/// drain returns and the counters balance; the hook's panic counts as an
/// incident of its own. On a user's path (a release failing after the body
/// panicked) the body's panic, not the hook's, is the one that resumes.
pub async fn incident_hook_panics(env: Env) {
    let seen = Arc::new(AtomicUsize::new(0));
    let reentered: Arc<std::sync::Mutex<Option<Runtime>>> = Arc::default();
    let rt = {
        let seen = Arc::clone(&seen);
        let reentered = Arc::clone(&reentered);
        Runtime::builder(Arc::clone(&env.binding))
            .on_incident(move |_| {
                seen.fetch_add(1, Ordering::SeqCst);
                // Calls back into the runtime: no awith lock is held here.
                if let Some(rt) = reentered.lock().unwrap().as_ref() {
                    let _ = rt.cleanup_stats();
                }
                panic!("probe: the incident hook panicked");
            })
            .build()
            .unwrap()
    };
    *reentered.lock().unwrap() = Some(rt.clone());

    // A cleanup whose release fails: reported from the cleanup task.
    let log = Log::new();
    let plan = Plan::steps(Step::Ok, Step::Ok, Step::Err, 1);
    cancel_in_body(&log, plan, &env.rt, &rt).await;
    let stats = rt
        .drain(Duration::from_secs(10))
        .await
        .expect("the cleanup ended although the hook panicked");
    balanced(&stats);
    assert_eq!(
        (stats.spawned, stats.failed, stats.pending, stats.incidents),
        (1, 1, 0, 2),
        "the incident and the hook's panic"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    log.check_released_once().unwrap();

    // On the user's path: the body panics, the release fails; the release's
    // failure is reported, the hook panics, the body's panic resumes.
    let log = Log::new();
    let plan = Plan::steps(Step::Ok, Step::Panic, Step::Err, 1);
    let probe = Probe::new(&log, plan, &env.rt);
    let unwound = std::panic::AssertUnwindSafe(
        probe.with(&rt, async move |conn| probe::body(conn, plan).await),
    )
    .catch_unwind()
    .await
    .expect_err("the body panicked");
    assert_eq!(super::panic_message(&*unwound), "probe: body panicked");
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    let stats = rt.cleanup_stats();
    assert_eq!((stats.pending, stats.incidents), (0, 4), "{stats:?}");
    balanced(&stats);
    reentered.lock().unwrap().take();
}

/// A drain deadline too far to represent is no deadline: the drain waits
/// for a cleanup that ends on another thread's signal, and the runtime's
/// clock is fine afterwards (a virtual clock must not jump to the end of
/// time). The cleanups are unbounded here: a virtual clock would otherwise
/// jump to the cleanup timeout while the other thread works.
pub async fn drain_without_deadline(env: Env) {
    let rt = Runtime::builder(Arc::clone(&env.binding))
        .unbounded_cleanups()
        .build()
        .unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let released = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&released);
    let gate = resource(
        || async { Ok::<_, ProbeError>(()) },
        move |(), _| async move {
            let _ = rx.await;
            flag.store(true, Ordering::SeqCst);
            Ok(())
        },
    );
    let mut scope = Stepper::new(gate.with(&rt, async |()| {
        std::future::pending::<()>().await;
        Ok::<_, ProbeError>(())
    }));
    assert!(matches!(scope.step().await, Polled::Pending));
    drop(scope);
    let before = rt.now();
    let signal = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        let _ = tx.send(());
    });
    let stats = rt.drain(Duration::MAX).await.expect("no deadline to pass");
    signal.join().unwrap();
    assert!(released.load(Ordering::SeqCst), "{stats:?}");
    assert_eq!((stats.completed, stats.pending), (1, 0));
    // The clock still works, and did not run off.
    let after = rt.now();
    assert!(after >= before);
    assert!(
        after - before < Duration::from_secs(3600),
        "{:?}",
        after - before
    );
}

/// A cleanup the runtime accepted, then dropped unpolled when it shut down,
/// is *abandoned* (it was handed over), not *refused*; either way it is
/// counted and reported, and the counters balance.
pub async fn cleanup_dropped_at_shutdown(env: Env, idle: Result<Idle, &'static str>) {
    let Ok(idle) = idle else {
        observe(
            &env,
            "tasks-at-shutdown/native",
            "never happens: the executor lives as long as the process",
        );
        observe(
            &env,
            "tasks-at-shutdown/awith",
            "cleanups always finish; `drain` before the process exits",
        );
        return;
    };
    let (rt, incidents) = recording_runtime(Arc::clone(&idle.binding), CLEANUP_TIMEOUT);
    let log = Log::new();
    cancel_in_body(&log, Plan::ok(1), &env.rt, &rt).await;
    assert_eq!(rt.cleanup_stats().pending, 1, "handed over, not run");
    (idle.shut_down)();
    let stats = rt.cleanup_stats();
    assert_eq!((stats.lost, stats.pending), (1, 0), "{stats:?}");
    balanced(&stats);
    assert_eq!(
        incidents.all(),
        [Incident::CleanupAbandoned {
            kind: CleanupKind::Release,
            runtime: rt.name()
        }]
    );
    let id = log.acquired()[0];
    assert!(log.release_exits(id).is_empty(), "the release never ran");
    assert!(log.events().contains(&Event::Dropped(id)));
    observe(
        &env,
        "tasks-at-shutdown/native",
        "unfinished tasks are dropped unpolled",
    );
    observe(
        &env,
        "tasks-at-shutdown/awith",
        "a cleanup dropped so is counted lost and reported (`Incident::CleanupAbandoned`)",
    );
}

/// A value whose `Drop` panics, in a cleanup the runtime refuses: dropping
/// the refused cleanup drops the value on the canceller's stack (tokio drops
/// it inside its `spawn`, and would swallow the panic), and its panic is
/// caught and reported — never unwound into the code that dropped the scope
/// (often a `Drop` itself, where a second panic aborts), never lost. The
/// same in a cleanup dropped at its timeout: both are reported.
pub async fn refused_cleanup_with_panicking_drop(
    env: Env,
    shut_down: Result<SharedBinding, &'static str>,
) {
    struct Grenade;
    impl Drop for Grenade {
        fn drop(&mut self) {
            panic!("probe: a value's drop panicked");
        }
    }
    if let Ok(dead) = shut_down {
        refused_grenade(dead).await;
    }

    // The same value in a release that hangs past the cleanup timeout: the
    // timeout and the drop's panic are both reported.
    let (rt, incidents) = recording_runtime(Arc::clone(&env.binding), Duration::from_millis(50));
    let grenade = resource(
        || async { Ok::<_, ProbeError>(Grenade) },
        |grenade, _| async move {
            std::future::pending::<()>().await;
            drop(grenade);
            Ok(())
        },
    );
    let mut scope = Stepper::new(grenade.with(&rt, async |_| {
        std::future::pending::<()>().await;
        Ok::<_, ProbeError>(())
    }));
    assert!(matches!(scope.step().await, Polled::Pending));
    drop(scope);
    let stats = rt.drain(Duration::from_secs(30)).await.unwrap();
    assert_eq!((stats.spawned, stats.timed_out, stats.pending), (1, 1, 0));
    balanced(&stats);
    assert_eq!(
        incidents.all(),
        [
            Incident::BackgroundPanicked {
                work: "dropping an unfinished cleanup",
                message: "probe: a value's drop panicked".into()
            },
            Incident::CleanupTimedOut {
                kind: CleanupKind::Release,
                after: Duration::from_millis(50)
            },
        ]
    );
}

/// The refused half of [`refused_cleanup_with_panicking_drop`].
async fn refused_grenade(dead: SharedBinding) {
    struct Grenade;
    impl Drop for Grenade {
        fn drop(&mut self) {
            panic!("probe: a value's drop panicked");
        }
    }
    let (rt, incidents) = recording_runtime(dead, CLEANUP_TIMEOUT);

    let grenade = resource(
        || async { Ok::<_, ProbeError>(Grenade) },
        |grenade, _| async move {
            drop(grenade);
            Ok(())
        },
    );
    let mut scope = Stepper::new(grenade.with(&rt, async |_| {
        std::future::pending::<()>().await;
        Ok::<_, ProbeError>(())
    }));
    assert!(matches!(scope.step().await, Polled::Pending));
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(scope)));
    assert!(
        dropped.is_ok(),
        "the drop's panic unwound into the canceller"
    );
    let stats = rt.cleanup_stats();
    assert_eq!((stats.spawned, stats.lost, stats.pending), (1, 1, 0));
    balanced(&stats);
    assert_eq!(
        incidents.all(),
        [
            Incident::BackgroundPanicked {
                work: "dropping an unfinished cleanup",
                message: "probe: a value's drop panicked".into()
            },
            Incident::CleanupRefused {
                kind: CleanupKind::Release,
                runtime: rt.name()
            },
        ]
    );
}
