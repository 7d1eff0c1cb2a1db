//! What the tests share: a PostgreSQL server of each test's own (`initdb`
//! and `postgres` in a temporary directory, on a free loopback port, as the
//! `postgres` user when the tests run as root; stopped when dropped), a
//! temporary directory for SQLite files, a spawned task to await, a seeded
//! RNG, and a future dropped after a number of polls.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use awith::{Cancel, Runtime, Tripwire};
use futures::FutureExt;

mod pg;
pub(crate) use pg::*;

/// A SQLite database file in a temporary directory: its URL, with WAL and
/// a busy timeout (concurrent writers wait for each other).
#[derive(Debug)]
pub struct SqliteFile {
    dir: TempDir,
}

impl SqliteFile {
    pub fn new() -> SqliteFile {
        SqliteFile {
            dir: TempDir::new("sqlite"),
        }
    }

    pub fn options(&self) -> sqlx::sqlite::SqliteConnectOptions {
        sqlx::sqlite::SqliteConnectOptions::new()
            .filename(self.dir.path().join("bank.db"))
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A task spawned on the runtime under test, whose output (or panic) can
/// be awaited with [`join`](Self::join).
#[derive(Debug)]
pub struct Joined<T> {
    output: Arc<Mutex<Option<Result<T, String>>>>,
    done: Tripwire,
}

/// Trips the wire when dropped: the task ended, or was dropped unfinished.
struct TripOnDrop(Tripwire);

impl Drop for TripOnDrop {
    fn drop(&mut self) {
        self.0.trip(Cancel::Dropped);
    }
}

/// Spawns `future` on `rt` (so that a multi-thread runtime runs it in
/// parallel with the others).
pub fn spawn<T, F>(rt: &Runtime, future: F) -> Joined<T>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let output = Arc::new(Mutex::new(None));
    let done = Tripwire::new();
    let (slot, guard) = (Arc::clone(&output), TripOnDrop(done.clone()));
    rt.spawn(async move {
        let _guard = guard;
        let ended = AssertUnwindSafe(future)
            .catch_unwind()
            .await
            .map_err(|payload| panic_message(&*payload));
        *lock(&slot) = Some(ended);
    })
    .expect("the runtime under test spawns");
    Joined { output, done }
}

impl<T> Joined<T> {
    /// The task's output; panics (with its message) if it panicked or was
    /// dropped unfinished.
    pub async fn join(self) -> T {
        self.done.wait().await;
        match lock(&self.output).take() {
            Some(Ok(output)) => output,
            Some(Err(panic)) => panic!("a spawned task panicked: {panic}"),
            None => panic!("a spawned task was dropped before it ended"),
        }
    }
}

pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(not text)".into())
}

/// Quietens the panics the tests cause on purpose (their message starts
/// with `injected:`); others print as usual.
pub fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            if !message.is_some_and(|m| m.starts_with("injected:")) {
                default(info);
            }
        }));
    });
}

/// A xorshift RNG: seeded, so a failing run can be replayed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// From `seed` (zero is replaced: xorshift never leaves zero).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `percent` / 100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The seed in `AWITH_CHAOS_SEED` (to replay a run), else one from the
/// clock.
pub fn seed() -> u64 {
    std::env::var("AWITH_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| {
                u64::try_from(d.as_nanos() % u128::from(u64::MAX)).unwrap_or(1)
            })
        })
}

/// `future`, dropped (cancelled) at its `polls`-th poll if it has not
/// finished by then: `None`. A poll count is an await point, whatever the
/// future waits for there.
pub fn cancel_after<F: Future>(polls: u32, future: F) -> CancelAfter<F> {
    CancelAfter {
        future: Some(Box::pin(future)),
        polls,
        used: 0,
    }
}

pub struct CancelAfter<F> {
    future: Option<Pin<Box<F>>>,
    polls: u32,
    used: u32,
}

impl<F> CancelAfter<F> {
    /// How many times the future was polled.
    pub fn polls_used(&self) -> u32 {
        self.used
    }
}

impl<F: Future> Future for CancelAfter<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.polls == 0 {
            self.future = None;
            return Poll::Ready(None);
        }
        self.polls -= 1;
        self.used += 1;
        let Some(future) = self.future.as_mut() else {
            return Poll::Ready(None);
        };
        match future.as_mut().poll(cx) {
            Poll::Ready(output) => {
                self.future = None;
                Poll::Ready(Some(output))
            }
            Poll::Pending if self.polls == 0 => {
                // Dropped here, at this await point.
                self.future = None;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
