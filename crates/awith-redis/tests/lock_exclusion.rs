//! The lock scope on `RedisLocks` under contention, on every runtime: 32
//! spawned contenders × 200 critical sections, each a non-atomic
//! read-modify-write of a Redis counter (GET, a yield, SET on the test's
//! own connection), with and without random cancellations of holders in
//! their sections and while they wait. The count is exact, the fencing
//! tokens grow in the order the sections ran, and no lock key is left.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use awith::lock::Lock;
use awith::test::Env;
use awith::{Cancel, Tripwire};
use awith_redis::RedisLocks;
use common::RedisServer;
use common::chaos::{self, Either, Rng, race, spawn, yield_now};
use redis::aio::MultiplexedConnection;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const CONTENDERS: usize = 32;
const SECTIONS: usize = 200;
/// Contenders share this many `RedisLocks` (connections), as if they were
/// in this many processes.
const CLIENTS: usize = 4;
const KEY: &str = "counter";
const COUNTER: &str = "test:counter";
/// Each contender's whole run must end within this.
const BOUND: Duration = Duration::from_secs(90);

/// One critical section as it began: its fencing token and the count it
/// read; `completed` once its SET was answered.
#[derive(Clone, Copy, Debug)]
struct Entry {
    fence: u64,
    read: u64,
    completed: bool,
}

type Log = Arc<Mutex<Vec<Entry>>>;

fn log_push(log: &Log, fence: u64, read: u64) -> usize {
    let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
    log.push(Entry {
        fence,
        read,
        completed: false,
    });
    log.len() - 1
}

async fn get(conn: &mut MultiplexedConnection) -> redis::RedisResult<u64> {
    let value: Option<u64> = redis::cmd("GET").arg(COUNTER).query_async(conn).await?;
    Ok(value.unwrap_or(0))
}

/// The read-modify-write: GET, a yield, SET of the value + 1 (the last
/// await: a section that was not cancelled there has written).
async fn section(
    conn: &mut MultiplexedConnection,
    log: &Log,
    fence: u64,
) -> redis::RedisResult<()> {
    let read = get(conn).await?;
    let at = log_push(log, fence, read);
    yield_now().await;
    let () = redis::cmd("SET")
        .arg(COUNTER)
        .arg(read + 1)
        .query_async(conn)
        .await?;
    log.lock().unwrap_or_else(PoisonError::into_inner)[at].completed = true;
    Ok(())
}

async fn backends(server: &RedisServer) -> Result<Vec<RedisLocks>, awith_redis::RedisLockError> {
    let mut backends = Vec::new();
    for _ in 0..CLIENTS {
        backends.push(RedisLocks::connect(server.url()).await?);
    }
    Ok(backends)
}

/// The log in the order the sections ran: fences strictly increase, and
/// each section read the number of sections completed before it (what a
/// section that overlapped another would not).
fn check_log(log: &[Entry]) -> usize {
    let mut completed = 0u64;
    for (i, pair) in log.windows(2).enumerate() {
        assert!(
            pair[0].fence < pair[1].fence,
            "fences not strictly increasing at section {i}: {:?}",
            &log[i.saturating_sub(3)..(i + 3).min(log.len())]
        );
    }
    for (i, entry) in log.iter().enumerate() {
        assert_eq!(
            entry.read, completed,
            "section {i} read {} after {completed} completed writes: sections overlapped",
            entry.read
        );
        completed += u64::from(entry.completed);
    }
    usize::try_from(completed).expect("a count")
}

async fn no_key_left(server: &RedisServer, backends: &[RedisLocks]) {
    let lock_key = backends[0].lock_key(KEY);
    assert_eq!(
        server.command(&format!("EXISTS {lock_key}")),
        Some(":0\r\n".into()),
        "the lock key is left behind"
    );
    for backend in backends {
        assert_eq!(backend.waiters(KEY), 0, "a waiter is left registered");
    }
}

#[awith::test(skip(reference))]
async fn contenders_exclude_and_fence(env: Env) -> TestResult {
    let server = RedisServer::start();
    let backends = backends(&server).await?;
    let store = chaos::connection(&server.url()).await;
    let log: Log = Arc::default();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..CONTENDERS {
        let lock = Lock::builder(backends[i % CLIENTS].clone(), KEY)
            .ttl(Duration::from_secs(10))
            .build(&env.rt)?;
        let (mut conn, log, rt) = (store.clone(), Arc::clone(&log), env.rt.clone());
        tasks.push(spawn(&env.rt, async move {
            let run = async {
                for _ in 0..SECTIONS {
                    lock.with(async |lease| section(&mut conn, &log, lease.fence()).await)
                        .await
                        .map_err(|error| format!("contender {i}: {error}"))?;
                }
                Ok::<_, String>(())
            };
            rt.timeout(BOUND, run)
                .await
                .map_err(|_| format!("contender {i} still running after {BOUND:?}"))?
        }));
    }
    for task in tasks {
        task.join().await?;
    }
    let took = started.elapsed();
    let mut conn = store.clone();
    let count = get(&mut conn).await?;
    let log = log.lock().unwrap_or_else(PoisonError::into_inner).clone();
    eprintln!(
        "exclusion on {}: {CONTENDERS} contenders x {SECTIONS} sections = {count} in {took:?} \
         ({:.0} sections/s), fences {}..={}",
        env.kind.label,
        count as f64 / took.as_secs_f64(),
        log.first().map_or(0, |entry| entry.fence),
        log.last().map_or(0, |entry| entry.fence),
    );
    assert_eq!(count, (CONTENDERS * SECTIONS) as u64);
    assert_eq!(log.len(), CONTENDERS * SECTIONS);
    assert_eq!(check_log(&log), CONTENDERS * SECTIONS);
    no_key_left(&server, &backends).await;
    env.rt.drain(Duration::from_secs(10)).await?;
    Ok(())
}

/// What a contender did with one of its turns.
#[derive(Default, Debug)]
struct Tally {
    /// Sections that wrote, uncancelled.
    completed: AtomicUsize,
    /// Holders cancelled in their section (a timeout around the scope, or
    /// the scope's future dropped), before their SET.
    cancelled_in_section: AtomicUsize,
    /// Cancelled while waiting for the lock (or with a try in flight).
    cancelled_in_acquire: AtomicUsize,
    /// A short timeout that the holder beat: it got in (and wrote nothing).
    beat_the_timeout: AtomicUsize,
}

fn bump(counter: &AtomicUsize) {
    counter.fetch_add(1, Ordering::Relaxed);
}

#[awith::test(skip(reference))]
async fn cancellations_keep_the_count_exact(env: Env) -> TestResult {
    let seed = chaos::seed();
    eprintln!(
        "cancellations on {}: seed {seed} (replay with AWITH_CHAOS_SEED={seed})",
        env.kind.label
    );
    let server = RedisServer::start();
    let backends = backends(&server).await?;
    let store = chaos::connection(&server.url()).await;
    let log: Log = Arc::default();
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..CONTENDERS {
        let lock = Lock::builder(backends[i % CLIENTS].clone(), KEY)
            .ttl(Duration::from_secs(10))
            .build(&env.rt)?;
        let mut rng = Rng::new(seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (mut conn, log, tally, rt) = (
            store.clone(),
            Arc::clone(&log),
            Arc::clone(&tally),
            env.rt.clone(),
        );
        tasks.push(spawn(&env.rt, async move {
            let run = async {
                for _ in 0..SECTIONS {
                    let entered = Tripwire::new();
                    // A doomed section reads, says it is in, and waits to
                    // be cancelled: it never writes.
                    let doomed = async |lease: &mut awith::lock::Lease| {
                        let read = get(&mut conn.clone()).await?;
                        log_push(&log, lease.fence(), read);
                        entered.trip(Cancel::Requested);
                        std::future::pending::<()>().await;
                        Ok::<_, redis::RedisError>(())
                    };
                    match rng.below(100) {
                        // A plain section.
                        0..60 => {
                            lock.with(async |lease| section(&mut conn, &log, lease.fence()).await)
                                .await
                                .map_err(|error| format!("contender {i}: {error}"))?;
                            bump(&tally.completed);
                        }
                        // A timeout around the scope, of 1 to 20 ms: it
                        // fires in the section, or while waiting.
                        60..75 => {
                            let after = Duration::from_millis(1 + rng.below(20));
                            match rt.timeout(after, lock.with(doomed)).await {
                                Ok(ended) => {
                                    return Err(format!(
                                        "contender {i}: a doomed scope ended: {ended:?}"
                                    ));
                                }
                                Err(_) if entered.tripped().is_some() => {
                                    bump(&tally.cancelled_in_section);
                                }
                                Err(_) => bump(&tally.cancelled_in_acquire),
                            }
                        }
                        // The scope's future dropped in the section, after
                        // 0 to 3 yields.
                        75..88 => {
                            let yields = rng.below(4);
                            let in_section = async {
                                entered.wait().await;
                                for _ in 0..yields {
                                    yield_now().await;
                                }
                            };
                            match race(lock.with(doomed), in_section).await {
                                Either::Left(ended) => {
                                    return Err(format!(
                                        "contender {i}: a doomed scope ended: {ended:?}"
                                    ));
                                }
                                Either::Right(()) => bump(&tally.cancelled_in_section),
                            }
                        }
                        // A short timeout while waiting: 0 to 3 ms.
                        _ => {
                            let after = Duration::from_micros(rng.below(3000));
                            let quick = lock.with(async |_| {
                                entered.trip(Cancel::Requested);
                                Ok::<_, redis::RedisError>(())
                            });
                            match rt.timeout(after, quick).await {
                                Ok(Ok(())) => bump(&tally.beat_the_timeout),
                                Ok(Err(error)) => return Err(format!("contender {i}: {error}")),
                                // In, then cut short while giving the lock back.
                                Err(_) if entered.tripped().is_some() => {
                                    bump(&tally.beat_the_timeout);
                                }
                                Err(_) => bump(&tally.cancelled_in_acquire),
                            }
                        }
                    }
                }
                Ok::<_, String>(())
            };
            rt.timeout(BOUND, run)
                .await
                .map_err(|_| format!("contender {i} still running after {BOUND:?}"))?
        }));
    }
    for task in tasks {
        task.join()
            .await
            .map_err(|error| format!("{error} (seed {seed})"))?;
    }
    let took = started.elapsed();
    let drained = env.rt.drain(Duration::from_secs(10)).await?;
    let mut conn = store.clone();
    let count = get(&mut conn).await?;
    let log = log.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let completed = tally.completed.load(Ordering::Relaxed);
    eprintln!(
        "cancellations on {}: seed {seed}: {count} counted, {completed} sections completed, \
         {} cancelled in their section, {} cancelled while acquiring, {} beat a short timeout; \
         {} cleanups ran; {took:?}",
        env.kind.label,
        tally.cancelled_in_section.load(Ordering::Relaxed),
        tally.cancelled_in_acquire.load(Ordering::Relaxed),
        tally.beat_the_timeout.load(Ordering::Relaxed),
        drained.spawned,
    );
    assert_eq!(count, completed as u64, "seed {seed}");
    assert_eq!(check_log(&log), completed, "seed {seed}");
    assert!(
        tally.cancelled_in_section.load(Ordering::Relaxed) > 0
            && tally.cancelled_in_acquire.load(Ordering::Relaxed) > 0,
        "both kinds of cancellation happened (seed {seed}): {tally:?}"
    );
    no_key_left(&server, &backends).await;
    Ok(())
}
