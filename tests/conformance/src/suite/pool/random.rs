//! Property: random pool workloads — several tasks checking out at once,
//! cancelled at random points, bodies that fail or panic, wait timeouts,
//! `min_idle` maintenance and idle expiry, `retain` and `close` racing the
//! checkouts — with random faults in every callback: creates, recycles,
//! resets and destroys that fail, panic or hang (in checkouts and inside
//! maintenance), predicates and object drops that panic.
//!
//! The checks prove that nothing is lost and nothing hangs: every task ends;
//! every panic injected resumed in a caller or was reported, once; every
//! create that failed was returned or reported; every hang ended (its bound
//! passed, or its caller was dropped), and every destroy cut short was
//! reported; the counters agree, no slot leaked (the pool closes in time,
//! empty), and every object created reached `destroy` exactly once.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use awith::pool::{Pool, PoolError};
use awith::rt::{CleanupKind, Incident};
use awith::{Failure, ScopeError};
use futures::FutureExt;
use futures::channel::oneshot;

use super::{ConnError, Did, Fault, Hook, TestManager, consistent, lock, unit};
use crate::probe::yield_now;
use crate::suite::{DRAIN, panic_message};
use awith::test::{Env, recording_runtime};

/// A small deterministic random source for the property test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// `true` one time in `n`.
    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

/// What one act of a task does.
#[derive(Clone, Copy, Debug)]
enum Act {
    /// A checkout that holds the object across `naps` yields, then ends as
    /// `end` says.
    Use { naps: usize, end: End },
    /// A checkout dropped after `polls` polls, wherever it is then.
    Cancel { polls: usize },
    /// `retain`, refusing the objects with an odd number.
    Retain,
    /// `close`, racing the other tasks' checkouts.
    Close,
}

#[derive(Clone, Copy, Debug)]
enum End {
    Ok,
    Err,
    Panic,
}

/// Drops a future after `polls` polls.
struct CancelAfter<F> {
    future: Option<Pin<Box<F>>>,
    polls: usize,
}

impl<F: Future> Future for CancelAfter<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.polls == 0 {
            self.future = None;
            return Poll::Ready(None);
        }
        self.polls -= 1;
        match self.future.as_mut().map(|f| f.as_mut().poll(cx)) {
            Some(Poll::Ready(output)) => Poll::Ready(Some(output)),
            _ => {
                // Keep being polled, so the count runs down.
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}

/// What the callers saw, across the tasks of a case.
#[derive(Debug, Default)]
struct Seen {
    /// The messages of the panics that resumed in a caller.
    panics: Vec<String>,
    /// Checkouts that failed with the manager's create error.
    create_errors: usize,
}

/// What the cases of a run met, to show that the faults were met.
#[derive(Debug, Default)]
struct Tally {
    /// Panics injected; of them, reported as incidents (the rest resumed).
    panics: usize,
    panics_reported: usize,
    /// Creates that failed; hangs (all ended); destroys cut short.
    create_failures: usize,
    hangs: usize,
    cut: usize,
}

/// Property: random pool workloads with random faults (see the module
/// docs); `AWITH_POOL_CASES` of them (default 500).
pub async fn random_checkouts(env: Env) {
    let cases: u64 = std::env::var("AWITH_POOL_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(500);
    let mut tally = Tally::default();
    for seed in 1..=cases {
        random_case(&env, seed, &mut tally).await;
    }
    eprintln!(
        "property: {cases} random pool workloads on {}: {} panics injected ({} reported, \
         the rest resumed), {} creates failed, {} hangs (all ended), {} destroys cut short",
        env.kind.label,
        tally.panics,
        tally.panics_reported,
        tally.create_failures,
        tally.hangs,
        tally.cut,
    );
}

async fn random_case(env: &Env, seed: u64, tally: &mut Tally) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    // A twentieth of the suite's unit: 50 ms virtual, 1 ms real.
    let tick = unit(env) / 20;
    // Destroys (and the releases of cancelled scopes) are bounded by five
    // ticks.
    let (rt, incidents) = recording_runtime(Arc::clone(&env.binding), tick * 5);
    let max_size = 1 + rng.below(4) as usize;
    let manager = TestManager::default();
    let knobs = Arc::clone(&manager.knobs);
    knobs.set_clock(&rt);
    knobs.yields.store(rng.below(3) as usize, Ordering::SeqCst);
    knobs.reset_ok.store(rng.one_in(2), Ordering::SeqCst);
    let mut builder = Pool::builder(manager).max_size(max_size);
    if rng.one_in(3) {
        // Some checkouts time out while waiting.
        builder = builder.wait_timeout(unit(env) / (1 + rng.below(4) as u32));
    }
    if rng.one_in(3) {
        builder = builder
            .min_idle(rng.below(max_size as u64 + 1) as usize)
            .maintenance_interval(tick * (1 + rng.below(3) as u32));
    }
    if rng.one_in(4) {
        builder = builder
            .idle_timeout(tick * (3 + rng.below(8) as u32))
            .maintenance_interval(tick * (1 + rng.below(3) as u32));
    }
    // The faults, for the first calls of each callback, whoever makes them.
    let mut create_hangs = false;
    let mut recycle_hangs = false;
    let inject = |rng: &mut Rng, hook: Hook, panics: u64, hangs: u64| {
        // Hangs are rarer: each costs its bound in (real) time.
        let (panics, hangs) = (rng.below(panics + 1), hangs.min(u64::from(rng.one_in(4))));
        let mut left = (panics, hangs);
        while left != (0, 0) {
            let hang = left.1 > 0 && (left.0 == 0 || rng.one_in(2));
            if hang {
                left.1 -= 1;
            } else {
                left.0 -= 1;
            }
            knobs.inject(hook, if hang { Fault::Hang } else { Fault::Panic }, 1);
        }
        hangs > 0
    };
    if rng.one_in(3) {
        create_hangs = inject(&mut rng, Hook::Create, 2, 1);
    }
    if rng.one_in(4) {
        recycle_hangs |= inject(&mut rng, Hook::Recycle, 1, 1);
    }
    if rng.one_in(4) {
        recycle_hangs |= inject(&mut rng, Hook::Reset, 1, 1);
    }
    if rng.one_in(4) {
        inject(&mut rng, Hook::Destroy, 2, 1);
    }
    if rng.one_in(5) {
        inject(&mut rng, Hook::Drop, 2, 0);
    }
    if rng.one_in(6) {
        inject(&mut rng, Hook::Predicate, 1, 0);
    }
    // A hang is bounded by a timeout (without one, it would hang its
    // checkout: the user's own code on the user's own task).
    if create_hangs || rng.one_in(4) {
        builder = builder.create_timeout(tick * 2);
    }
    if recycle_hangs || rng.one_in(4) {
        builder = builder.recycle_timeout(tick * 2);
    }
    let pool = builder.build(&rt).unwrap();
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let tasks = 2 + rng.below(6);
    let mut done = Vec::new();
    for _ in 0..tasks {
        let acts: Vec<Act> = (0..1 + rng.below(6))
            .map(|_| match rng.below(40) {
                0..=7 => Act::Cancel {
                    polls: rng.below(8) as usize,
                },
                8..=9 => Act::Retain,
                10 if rng.one_in(4) => Act::Close,
                n => Act::Use {
                    naps: rng.below(3) as usize,
                    end: match n {
                        11..=14 => End::Err,
                        15..=18 => End::Panic,
                        _ => End::Ok,
                    },
                },
            })
            .collect();
        let fail_create = rng.one_in(8);
        let fail_recycle = rng.one_in(6);
        let (pool, knobs, seen) = (pool.clone(), Arc::clone(&knobs), Arc::clone(&seen));
        let (tx, rx) = oneshot::channel::<()>();
        let within = tick * 30;
        let task = async move {
            for act in acts {
                if fail_create {
                    knobs.fail_creates.fetch_add(1, Ordering::SeqCst);
                }
                let scope = pool.with(async |c| {
                    let _held = knobs.hold(c);
                    let status = pool.status();
                    assert!(status.size <= status.max_size, "{status:?}");
                    if fail_recycle {
                        lock(&knobs.fail_recycle).insert(c.id);
                    }
                    let (naps, end) = match act {
                        Act::Use { naps, end } => (naps, end),
                        _ => (usize::MAX, End::Ok),
                    };
                    for _ in 0..naps.min(1000) {
                        yield_now().await;
                    }
                    match end {
                        End::Ok => Ok(c.id),
                        End::Err => Err(ConnError::Broken(c.id)),
                        End::Panic => panic!("probe: random panic"),
                    }
                });
                let ended = match act {
                    Act::Cancel { polls } => {
                        let cancelled = CancelAfter {
                            future: Some(Box::pin(scope)),
                            polls,
                        };
                        AssertUnwindSafe(cancelled)
                            .catch_unwind()
                            .await
                            .map(|ended| {
                                ended.unwrap_or(Err(ScopeError::Acquire(Failure::Error(
                                    PoolError::Closed,
                                ))))
                            })
                    }
                    Act::Use { .. } => AssertUnwindSafe(scope).catch_unwind().await,
                    Act::Retain => {
                        drop(scope);
                        let retained = std::panic::catch_unwind(AssertUnwindSafe(|| {
                            pool.retain(knobs.predicate(|c| c.id % 2 == 0))
                        }));
                        if let Err(panic) = retained {
                            lock(&seen).panics.push(panic_message(&*panic).to_owned());
                        }
                        continue;
                    }
                    Act::Close => {
                        drop(scope);
                        let closed = pool.close(within).await;
                        assert!(
                            matches!(closed, Ok(()) | Err(PoolError::Timeout { .. })),
                            "{closed:?}"
                        );
                        continue;
                    }
                };
                match ended {
                    Err(panic) => lock(&seen).panics.push(panic_message(&*panic).to_owned()),
                    Ok(Err(ScopeError::Acquire(Failure::Error(PoolError::Create(_))))) => {
                        lock(&seen).create_errors += 1;
                    }
                    Ok(_) => {}
                }
            }
            let _ = tx.send(());
        };
        rt.spawn(task).expect("spawn");
        done.push(rx);
    }
    for rx in done {
        rx.await.expect("the task ran to its end");
    }
    drain_case(&rt, seed).await;
    // (Top-ups may still be creating: the manager's record is checked
    // against the counters once the pool is closed.)
    let status = pool.status();
    assert_eq!(
        (status.in_use, status.waiting),
        (0, 0),
        "seed {seed}: every object is back or destroyed: {status:?}"
    );
    assert_eq!(status.idle, status.size, "seed {seed}: {status:?}");
    // No slot leaked: the pool closes at once — its top-ups in flight
    // ended — but for the destroys of its idle objects (five ticks at most).
    let closed = pool.close(tick * 30).await;
    assert_eq!(closed, Ok(()), "seed {seed}: {:?}", pool.status());
    drain_case(&rt, seed).await;
    let status = consistent(&pool, &knobs);
    assert_eq!(status.size, 0, "seed {seed}");
    assert!(lock(&knobs.hands).is_empty());

    let did = knobs.did();
    let seen = lock(&seen);
    let incidents = incidents.all();
    let context = || format!("seed {seed}: {did:?}\n{seen:?}\n{incidents:?}");
    // Every object created reached `destroy`, once.
    let mut called = knobs.destroy_calls();
    called.sort_unstable();
    let mut created = knobs.created();
    created.sort_unstable();
    assert_eq!(called, created, "{}", context());
    let count = |what: &dyn Fn(&Did) -> bool| did.iter().filter(|d| what(d)).count();
    // Every panic injected resumed in a caller or was reported, once.
    for hook in [
        Hook::Create,
        Hook::Recycle,
        Hook::Reset,
        Hook::Destroy,
        Hook::Predicate,
        Hook::Drop,
    ] {
        let injected = count(&|d| matches!(d, Did::Faulted(h, Fault::Panic, _) if *h == hook));
        let message = hook.panic_message();
        let returned = seen.panics.iter().filter(|p| *p == message).count();
        let reported = incidents
            .iter()
            .filter(|i| i.to_string().contains(message))
            .count();
        assert_eq!(injected, returned + reported, "{hook:?}: {}", context());
        tally.panics += injected;
        tally.panics_reported += reported;
    }
    // Every create that failed was returned or reported.
    let failed = count(&|d| matches!(d, Did::CreateFailed));
    let reported = incidents
        .iter()
        .filter(|i| matches!(i, Incident::BackgroundFailed { error, .. } if error == "Refused"))
        .count();
    assert_eq!(failed, seen.create_errors + reported, "{}", context());
    tally.create_failures += failed;
    // Nothing hangs: every hang ended.
    let hung = count(&|d| matches!(d, Did::Faulted(_, Fault::Hang, _)));
    let ended = count(&|d| matches!(d, Did::HangEnded(_)));
    assert_eq!(hung, ended, "{}", context());
    tally.hangs += hung;
    // Every destroy cut short was reported as timed out (and the panic of
    // its object's drop at the cut, if any, as a panic of its own).
    let cut = count(&|d| matches!(d, Did::DestroyUnfinished(_, false)));
    let timed_out = incidents
        .iter()
        .filter(|i| {
            matches!(
                i,
                Incident::CleanupTimedOut {
                    kind: CleanupKind::Destroy,
                    ..
                }
            )
        })
        .count();
    assert_eq!(cut, timed_out, "{}", context());
    tally.cut += cut;
    // And nothing else was reported but what the faults (or a slow real
    // clock) explain.
    let probe = |text: &str| text.contains("probe:");
    for incident in &incidents {
        let explained = match incident {
            Incident::CleanupPanicked { message, .. }
            | Incident::ReleasePanickedDuringPanic { message }
            | Incident::BackgroundPanicked { message, .. } => probe(message),
            Incident::BackgroundFailed { error, .. } => {
                error == "Refused" || error.contains("timed out")
            }
            Incident::CleanupTimedOut { .. } | Incident::ErrorLostToPanic { .. } => true,
            Incident::CleanupFailed {
                kind: CleanupKind::Release,
                error,
            } => error.contains("Recycle") || error.contains("Timeout"),
            _ => false,
        };
        assert!(explained, "{incident:?}: {}", context());
    }
    let per_object: BTreeMap<u64, usize> = did.iter().fold(BTreeMap::new(), |mut m, d| {
        if let Did::Destroyed(id) = d {
            *m.entry(*id).or_default() += 1;
        }
        m
    });
    assert!(per_object.values().all(|n| *n == 1), "{}", context());
}

/// Waits for the case's cleanups.
async fn drain_case(rt: &awith::Runtime, seed: u64) {
    if let Err(error) = rt.drain(DRAIN).await {
        panic!("seed {seed}: cleanups did not drain: {error}");
    }
}
