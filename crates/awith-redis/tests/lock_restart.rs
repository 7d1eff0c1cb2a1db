//! The lock scope while its `redis-server` (`--appendonly yes`) is
//! stopped for longer than the lease and started again, on every runtime:
//! holders get clear errors (an acquire: `LockError::Backend` or
//! `Unanswered`; a holder whose renewal cannot reach the server past its
//! TTL: its body cancelled with `LockLost`), every scope ends within a
//! bound, the fencing tokens stay strictly increasing across the restart,
//! and after it new holders work again. And a restart shorter than the
//! lease: the renewal survives it (on the reconnected connection) and the
//! holder never notices.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use awith::lock::{Lock, LockError};
use awith::test::Env;
use awith::{Cancel, Failure, ScopeError, Tripwire};
use awith_redis::{RedisLockError, RedisLocks};
use common::RedisServer;
use common::chaos::spawn;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const KEY: &str = "restarted";
const TTL: Duration = Duration::from_millis(600);
/// The server is down this long: twice the lease.
const OUTAGE: Duration = Duration::from_millis(1200);
const CONTENDERS: usize = 4;
/// Every scope must end within this (a hang fails the test).
const SCOPE_BOUND: Duration = Duration::from_secs(8);
/// Successful sections each contender needs after the restart.
const AFTER: usize = 3;

/// The server's state, as the restart thread sets it.
const UP: u8 = 0;
const DOWN: u8 = 1;
const UP_AGAIN: u8 = 2;

fn guard<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

type Outcome = Result<(), ScopeError<std::convert::Infallible, LockError<RedisLockError>>>;

/// A scope's outcome, as a kind (the first message of each kind is kept).
fn kind(outcome: &Outcome) -> Option<&'static str> {
    Some(match outcome {
        Ok(()) => "ok",
        Err(ScopeError::Acquire(Failure::Error(error))) => match error {
            LockError::Backend {
                during: "acquire", ..
            } => "acquire: Backend",
            LockError::Unanswered {
                during: "acquire", ..
            } => "acquire: Unanswered",
            LockError::Timeout { .. } => "acquire: Timeout (held by another)",
            _ => return None,
        },
        Err(ScopeError::BodyCancelled {
            reason: Cancel::LockLost,
            release,
        }) => match release {
            None => "body cancelled: LockLost",
            Some(_) => "body cancelled: LockLost, and the release failed",
        },
        Err(ScopeError::Release(Failure::Error(error))) => match error {
            LockError::Backend {
                during: "release", ..
            } => "release: Backend",
            LockError::Unanswered {
                during: "release", ..
            } => "release: Unanswered",
            LockError::Lost { .. } => "release: Lost",
            _ => return None,
        },
        Err(_) => return None,
    })
}

#[awith::test(skip(reference))]
async fn holders_through_a_restart(env: Env) -> TestResult {
    let server = Arc::new(Mutex::new(RedisServer::start_persistent()));
    let url = guard(&server).url();
    let mut backends = Vec::new();
    for _ in 0..2 {
        backends.push(
            RedisLocks::builder(url.as_str())
                .connect_timeout(Duration::from_millis(300))
                .response_timeout(Duration::from_millis(500))
                .reconnect_retries(1)
                .max_reconnect_delay(Duration::from_millis(200))
                .connect()
                .await?,
        );
    }
    let lock_key = backends[0].lock_key(KEY);
    let build = |i: usize| {
        Lock::builder(backends[i % backends.len()].clone(), KEY)
            .ttl(TTL)
            .wait(Duration::from_secs(3))
            .backoff(Duration::from_millis(5), Duration::from_millis(50))
            .build(&env.rt)
    };

    let state = Arc::new(AtomicU8::new(UP));
    // (fence, server state at the section's start), in the order the
    // sections ran.
    let fences = Arc::new(Mutex::new(Vec::<(u64, u8)>::new()));
    let seen = Arc::new(Mutex::new(BTreeMap::<&'static str, (usize, String)>::new()));
    let (restart_now, restarted) = (Tripwire::new(), Tripwire::new());
    let stopped_at = Arc::new(Mutex::new(None::<Instant>));
    // Set while the long holder waits for the lock: the contenders stand
    // aside (Redis's lock is not FIFO: on a loaded machine they could
    // otherwise keep it from the long holder for the whole test).
    let long_waits = Arc::new(AtomicBool::new(false));

    // Contenders: short sections in a loop, through the restart, until
    // each has had `AFTER` sections after it.
    let mut tasks = Vec::new();
    for i in 0..CONTENDERS {
        let lock = build(i)?;
        let (rt, state, fences, seen, restarted) = (
            env.rt.clone(),
            Arc::clone(&state),
            Arc::clone(&fences),
            Arc::clone(&seen),
            restarted.clone(),
        );
        let (long_waits, restart_now) = (Arc::clone(&long_waits), restart_now.clone());
        tasks.push(spawn(&env.rt, async move {
            let deadline = Instant::now() + Duration::from_secs(40);
            let mut after = 0;
            while after < AFTER {
                if Instant::now() > deadline {
                    return Err(format!(
                        "contender {i}: only {after} sections after the restart"
                    ));
                }
                if long_waits.load(Ordering::SeqCst) && restart_now.tripped().is_none() {
                    rt.sleep(Duration::from_millis(10)).await;
                    continue;
                }
                let up_again = restarted.tripped().is_some();
                let scope = lock.with(async |lease| {
                    guard(&fences).push((lease.fence(), state.load(Ordering::SeqCst)));
                    rt.sleep(Duration::from_millis(20)).await;
                    Ok(())
                });
                let started = Instant::now();
                let outcome: Outcome = rt.timeout(SCOPE_BOUND, scope).await.map_err(|_| {
                    format!("contender {i}: a scope still running after {SCOPE_BOUND:?}")
                })?;
                let kind = kind(&outcome)
                    .ok_or_else(|| format!("contender {i}: unexpected {outcome:?}"))?;
                guard(&seen)
                    .entry(kind)
                    .or_insert_with(|| (0, format!("{outcome:?}")))
                    .0 += 1;
                if kind == "ok" && up_again {
                    after += 1;
                }
                // Not a tight loop against a server that is down, and a
                // turn for the others (Redis's lock is not FIFO).
                rt.sleep(Duration::from_millis(if kind == "ok" { 10 } else { 20 }))
                    .await;
                assert!(started.elapsed() < SCOPE_BOUND);
            }
            Ok::<_, String>(())
        }));
    }

    // The holder in a long section when the server stops: it starts the
    // restart from inside its section, and must be cancelled with
    // `LockLost` when its lease runs out without renewal.
    let long = build(0)?;
    let long_holder = {
        let (rt, restart_now) = (env.rt.clone(), restart_now.clone());
        let long_waits = Arc::clone(&long_waits);
        spawn(&env.rt, async move {
            // Let the contenders run a while first.
            rt.sleep(Duration::from_millis(300)).await;
            long_waits.store(true, Ordering::SeqCst);
            let fence = Arc::new(Mutex::new(0));
            // Contenders may take the lock first many times: try again
            // after each wait of 3 s, for up to 30 s.
            for attempt in 1..=10 {
                let scope = long.with(async |lease| {
                    *guard(&fence) = lease.fence();
                    restart_now.trip(Cancel::Requested);
                    std::future::pending::<()>().await;
                    Ok::<(), std::convert::Infallible>(())
                });
                let outcome = rt.timeout(Duration::from_secs(15), scope).await;
                if let Ok(Err(ScopeError::Acquire(Failure::Error(LockError::Timeout { .. })))) =
                    outcome
                {
                    continue;
                }
                return Some((outcome, Instant::now(), *guard(&fence), attempt));
            }
            None
        })
    };

    env.rt
        .timeout(Duration::from_secs(40), restart_now.wait())
        .await
        .map_err(|_| "the long holder never got the lock")?;
    let restart = {
        let (server, state, stopped_at, restarted) = (
            Arc::clone(&server),
            Arc::clone(&state),
            Arc::clone(&stopped_at),
            restarted.clone(),
        );
        std::thread::spawn(move || {
            let mut server = guard(&server);
            state.store(DOWN, Ordering::SeqCst);
            *guard(&stopped_at) = Some(Instant::now());
            server.stop();
            std::thread::sleep(OUTAGE);
            server.restart();
            state.store(UP_AGAIN, Ordering::SeqCst);
            restarted.trip(Cancel::Requested);
        })
    };
    let (long_outcome, long_ended, long_fence, attempts) = long_holder
        .join()
        .await
        .ok_or("the long holder never got the lock")?;
    restarted.wait().await;
    restart.join().map_err(|_| "the restart thread panicked")?;
    let stopped_at = guard(&stopped_at).ok_or("the server was stopped")?;
    for task in tasks {
        task.join().await?;
    }
    let drained = env.rt.drain(Duration::from_secs(10)).await?;
    let incidents = env.incidents.take();

    let cancelled_after = long_ended.saturating_duration_since(stopped_at);
    let fences = guard(&fences).clone();
    let seen = guard(&seen).clone();
    eprintln!(
        "restart on {}: the long holder (fence {long_fence}, got in on its wait number \
         {attempts} of 3 s) ended {cancelled_after:?} after \
         the server stopped (TTL {TTL:?}, outage {OUTAGE:?}): {long_outcome:?}",
        env.kind.label
    );
    for (kind, (count, first)) in &seen {
        eprintln!("  {count:>4} x {kind}: first {first}");
    }
    let before: Vec<u64> = fences
        .iter()
        .filter(|(_, s)| *s == UP)
        .map(|(f, _)| *f)
        .collect();
    let after: Vec<u64> = fences
        .iter()
        .filter(|(_, s)| *s == UP_AGAIN)
        .map(|(f, _)| *f)
        .collect();
    eprintln!(
        "  fences: {} sections before the stop ({:?}..={:?}), {} during the outage, {} after \
         the restart ({:?}..={:?}); {} cleanups; incidents: {incidents:?}",
        before.len(),
        before.first(),
        before.last(),
        fences.len() - before.len() - after.len(),
        after.len(),
        after.first(),
        after.last(),
        drained.spawned,
    );

    match &long_outcome {
        Ok(Err(ScopeError::BodyCancelled {
            reason: Cancel::LockLost,
            ..
        })) => {}
        other => panic!("the long holder: {other:?}"),
    }
    assert!(
        cancelled_after <= TTL + Duration::from_millis(700),
        "the long holder was cancelled {cancelled_after:?} after the server stopped"
    );
    assert!(
        fences.windows(2).all(|w| w[0].0 < w[1].0),
        "fences not strictly increasing: {fences:?}"
    );
    assert!(!before.is_empty() && after.len() >= CONTENDERS * AFTER);
    assert!(before.iter().max() < after.iter().min());
    assert!(
        seen.contains_key("acquire: Backend") || seen.contains_key("acquire: Unanswered"),
        "no acquire saw the outage: {seen:?}"
    );
    if let Some((_, first)) = seen.get("acquire: Backend") {
        assert!(
            first.contains("during: \"acquire\"") && first.contains("try_acquire"),
            "{first}"
        );
    }
    // Only the give-backs of tries left unanswered during the outage may
    // have failed (the key then ran out by itself).
    for incident in &incidents {
        let text = incident.to_string();
        assert!(
            text.contains("giving back lock `restarted` after a cancelled try"),
            "{text}"
        );
    }
    assert_eq!(
        guard(&server).command(&format!("EXISTS {lock_key}")),
        Some(":0\r\n".into())
    );
    Ok(())
}

/// A restart shorter than the lease costs the holder nothing: the renewal
/// fails while the server is down, then succeeds on the reconnected
/// connection before the lease runs out, and the body completes under the
/// lock — which nobody else could take meanwhile.
#[awith::test(skip(reference))]
async fn a_lease_survives_a_short_restart(env: Env) -> TestResult {
    const LONG_TTL: Duration = Duration::from_secs(3);
    let server = Arc::new(Mutex::new(RedisServer::start_persistent()));
    let url = guard(&server).url();
    let locks = RedisLocks::builder(url.as_str())
        .connect_timeout(Duration::from_millis(200))
        .response_timeout(Duration::from_millis(300))
        .connect()
        .await?;
    let lock = Lock::builder(locks.clone(), "brief-outage")
        .ttl(LONG_TTL)
        .build(&env.rt)?;
    let restarted_at = Arc::new(Mutex::new(None::<Instant>));
    let fence = lock
        .with(async |lease| {
            let before = lease.fence();
            // Down from just before the first renewal (at ttl/3 = 1 s)
            // until after it, for 500 ms: that renewal fails, a retry after
            // the restart succeeds on the reconnected connection.
            env.rt.sleep(Duration::from_millis(900)).await;
            let back = Tripwire::new();
            let restart = {
                let (server, restarted_at, back) =
                    (Arc::clone(&server), Arc::clone(&restarted_at), back.clone());
                std::thread::spawn(move || {
                    let mut server = guard(&server);
                    server.stop();
                    std::thread::sleep(Duration::from_millis(500));
                    server.restart();
                    *guard(&restarted_at) = Some(Instant::now());
                    back.trip(Cancel::Requested);
                })
            };
            back.wait().await;
            restart
                .join()
                .map_err(|_| std::io::Error::other("the restart thread panicked"))?;
            // Two renewal turns after the restart.
            env.rt
                .sleep(LONG_TTL * 2 / 3 + Duration::from_millis(200))
                .await;
            assert!(!lease.is_lost(), "{:?}", lease.lost_reason());
            assert!(lease.time_left() > LONG_TTL / 2, "{:?}", lease.time_left());
            Ok::<_, std::io::Error>(before)
        })
        .await?;
    assert!(guard(&restarted_at).is_some());
    // Given back by token: the next holder gets the next fencing token.
    let next = lock
        .with(async |lease| Ok::<_, std::io::Error>(lease.fence()))
        .await?;
    assert_eq!(next, fence + 1);
    Ok(())
}
