//! Scenario 9, the source's distributed lock: workers contend for one lock
//! and update a shared ledger under it, non-atomically (read, think, write).
//! On the in-process backend ([`LocalLocks`]) by default, on a Redis server
//! with `--redis redis://127.0.0.1:PORT` ([`RedisLocks`]).
//!
//! What it shows: the count is exact (the lock excludes); each hand-off —
//! from one holder's release to the next holder's body — is printed, and
//! does not wait for a poll interval (the source polled every 100 ms); the
//! fencing tokens grow with every holder; and a worker that will not wait
//! long gets an error that names the lock and how long it waited.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use awith::ScopeError;
use awith::lock::{LocalLocks, Lock, LockBackend, LockError};
use awith_redis::RedisLocks;

use crate::tour::World;

/// Workers, and turns each takes.
pub const WORKERS: usize = 4;
/// Turns per worker.
pub const TURNS: usize = 3;
/// How long a turn holds the lock.
const WORK: Duration = Duration::from_millis(5);
/// How long the impatient worker waits.
const IMPATIENCE: Duration = Duration::from_millis(2);

/// What scenario 9 saw.
#[derive(Debug, Default)]
pub struct Contention {
    /// The ledger's final count (must be `WORKERS * TURNS`).
    pub count: usize,
    /// Fencing tokens, in the order the turns held the lock.
    pub fences: Vec<u64>,
    /// Hand-offs: from a release to the next holder's body, in order.
    pub handoffs: Vec<Duration>,
    /// The impatient worker's error, as a person reads it.
    pub impatient: Option<String>,
}

impl Contention {
    /// The lock excluded (the count is exact) and the fencing tokens grew.
    pub fn ok(&self) -> bool {
        self.count == WORKERS * TURNS
            && self.fences.len() == WORKERS * TURNS
            && self.fences.windows(2).all(|w| w[0] < w[1])
            && self.impatient.is_some()
    }
}

/// Runs scenario 9 on `world`'s runtime: on Redis at `redis` if given, else
/// in-process.
///
/// # Errors
///
/// When the Redis server cannot be reached (a clear message).
pub async fn contend(world: &World, redis: Option<&str>) -> Result<Contention, String> {
    match redis {
        None => run(world, LocalLocks::new(&world.rt), "in-process").await,
        Some(url) => {
            let locks = RedisLocks::connect(url)
                .await
                .map_err(|error| error.to_string())?;
            run(world, locks, &format!("Redis at {url}")).await
        }
    }
}

async fn run<B: LockBackend + Clone>(
    world: &World,
    backend: B,
    on: &str,
) -> Result<Contention, String> {
    // One key for every run: on Redis its fencing counter lives on, so each
    // run's tokens are larger than the last run's.
    let key = "awith:tour:ledger".to_owned();
    let lock = Lock::builder(backend.clone(), key.clone())
        .ttl(Duration::from_secs(5))
        .wait(Duration::from_secs(10))
        .build(&world.rt)
        .map_err(|error| error.to_string())?;
    world.timeline.event(
        "tour",
        format!("{WORKERS} workers × {TURNS} turns on lock `{key}` ({on})"),
    );
    let ledger = Arc::new(Mutex::new(Contention::default()));
    let released_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    // The impatient worker arrives once someone holds the lock.
    let (held_tx, held) = futures::channel::oneshot::channel::<()>();
    let held_tx = Arc::new(Mutex::new(Some(held_tx)));
    let workers = (1..=WORKERS).map(|worker| {
        let (lock, ledger, released_at) =
            (lock.clone(), Arc::clone(&ledger), Arc::clone(&released_at));
        let held_tx = Arc::clone(&held_tx);
        async move {
            for _ in 0..TURNS {
                let turn = lock
                    .with(async |lease| {
                        let now = Instant::now();
                        if let Some(tx) = held_tx
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .take()
                        {
                            let _ = tx.send(());
                        }
                        let handoff = released_at
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .take()
                            .map(|at| now - at);
                        let read = {
                            let mut seen = ledger.lock().unwrap_or_else(PoisonError::into_inner);
                            seen.fences.push(lease.fence());
                            seen.handoffs.extend(handoff);
                            seen.count
                        };
                        world.timeline.event(
                            "body",
                            format!(
                                "worker {worker} holds it (fencing token {}{}); reads {read}",
                                lease.fence(),
                                handoff.map_or_else(String::new, |h| format!(
                                    ", handed over in {h:.2?}"
                                )),
                            ),
                        );
                        world.rt.sleep(WORK).await; // think: no one else may write now
                        ledger.lock().unwrap_or_else(PoisonError::into_inner).count = read + 1;
                        *released_at.lock().unwrap_or_else(PoisonError::into_inner) =
                            Some(Instant::now());
                        Ok::<_, std::io::Error>(())
                    })
                    .await;
                turn.map_err(|error| error.to_string())?;
            }
            Ok::<_, String>(())
        }
    });
    let impatient = async {
        // Arrives while the others hold the lock, and will not wait long.
        let _ = held.await;
        let once = Lock::builder(backend.clone(), key.clone())
            .wait(IMPATIENCE)
            .build(&world.rt)
            .map_err(|error| error.to_string())?;
        let tried = once.with(async |_| Ok::<_, std::io::Error>(())).await;
        let message = match tried {
            Err(ScopeError::Acquire(awith::Failure::Error(error @ LockError::Timeout { .. }))) => {
                error.to_string()
            }
            other => {
                return Err(format!(
                    "the impatient worker expected a timeout: {other:?}"
                ));
            }
        };
        world
            .timeline
            .event("body", format!("impatient worker: {message}"));
        Ok::<_, String>(message)
    };
    let (done, impatient) = futures::join!(futures::future::join_all(workers), impatient);
    done.into_iter().collect::<Result<Vec<()>, String>>()?;
    let mut seen = std::mem::take(&mut *ledger.lock().unwrap_or_else(PoisonError::into_inner));
    seen.impatient = Some(impatient?);
    let mut sorted = seen.handoffs.clone();
    sorted.sort();
    if let (Some(first), Some(last)) = (sorted.first(), sorted.last()) {
        world.timeline.event(
            "tour",
            format!(
                "hand-offs: median {:.2?}, slowest {last:.2?}, fastest {first:.2?} \
                 (the source polled every 100 ms)",
                sorted[sorted.len() / 2]
            ),
        );
    }
    Ok(seen)
}
