//! Holders in other processes, on every runtime: this test binary runs
//! again as a child (an ignored test, given its role in an environment
//! variable), holds a lock through the lock scope, and tells the parent
//! what it does on stdout.
//!
//! - SIGKILL: the killed holder's lock frees itself after its time to
//!   live, not before, and the next holder's fencing token is larger.
//! - SIGSTOP: a holder stopped past its lease finds, once resumed, that it
//!   lost it (its body cancelled with `LockLost`); the parent held the lock
//!   meanwhile, and a guarded store's fencing refuses the resumed holder's
//!   writes: the stored value is the parent's.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use awith::lock::{Lock, LockError};
use awith::test::Env;
use awith::{Failure, ScopeError};
use awith_redis::RedisLocks;
use common::RedisServer;
use common::chaos::{self, ChildProcess, STORE_KEYS, fenced_write, role_is, tell_parent};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const KEY: &str = "shared";
const URL_VAR: &str = "AWITH_CHAOS_URL";
const KILL_TTL: Duration = Duration::from_secs(1);
const STOP_TTL: Duration = Duration::from_millis(600);
/// How long a child may take to start and take the lock (a loaded
/// machine, a cold binary).
const START_BOUND: Duration = Duration::from_secs(30);

/// The `n`th word of a child's line, parsed.
fn word<T: std::str::FromStr>(line: &str, n: usize) -> T
where
    T::Err: std::fmt::Debug,
{
    line.split(' ')
        .nth(n)
        .unwrap_or_else(|| panic!("no word {n} in `{line}`"))
        .parse()
        .unwrap_or_else(|error| panic!("word {n} of `{line}`: {error:?}"))
}

/// A `:N` reply as N.
fn integer(reply: Option<String>) -> i64 {
    let reply = reply.expect("a reply");
    reply
        .trim()
        .strip_prefix(':')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not an integer reply: {reply:?}"))
}

fn child_test(role: &str, env: &Env) -> String {
    format!("{role}::{}", env.kind.test_name)
}

#[awith::test(skip(reference))]
async fn a_sigkilled_holder_frees_the_lock_after_its_ttl(env: Env) -> TestResult {
    let server = RedisServer::start();
    let locks = RedisLocks::connect(server.url()).await?;
    let lock_key = locks.lock_key(KEY);
    // A holder before the child's: the child's token is not the first.
    let lock = Lock::builder(locks.clone(), KEY)
        .ttl(KILL_TTL)
        .build(&env.rt)?;
    let first = lock
        .with(async |lease| Ok::<_, Infallible>(lease.fence()))
        .await?;

    let mut child = ChildProcess::start(
        &child_test("sigkill_holder", &env),
        "sigkill_holder",
        &[(URL_VAR, server.url())],
    );
    let held = child.expect_line(&env.rt, START_BOUND, "HELD").await;
    let (child_fence, token): (u64, String) = (word(&held, 1), word(&held, 2));
    assert!(child_fence > first, "{child_fence} after {first}");
    // The child renewed its lease past its time to live.
    let renewed = child.expect_line(&env.rt, KILL_TTL * 10, "RENEWED").await;
    assert!(!word::<bool>(&renewed, 1), "{renewed}");
    assert_eq!(
        server.command(&format!("GET {lock_key}")),
        Some(format!("$32\r\n{token}\r\n")),
        "the child holds the lock"
    );
    // Not `wait(Duration::ZERO)`: its one try gets 1 ms for its answer
    // (see `lock_renewal.rs`, `a_single_try_gets_its_answer`).
    let once = Lock::builder(locks.clone(), KEY)
        .ttl(KILL_TTL)
        .wait(Duration::from_millis(100))
        .build(&env.rt)?;
    let tried = once.with(async |_| Ok::<_, Infallible>(())).await;
    assert!(
        matches!(
            tried,
            Err(ScopeError::Acquire(Failure::Error(
                LockError::Timeout { .. }
            )))
        ),
        "{tried:?}"
    );

    child.kill();
    let killed = Instant::now();
    let pttl = integer(server.command(&format!("PTTL {lock_key}")));
    assert!(
        pttl > 0,
        "the dead holder's lock still has {pttl} ms to live"
    );
    let next = Lock::builder(locks.clone(), KEY)
        .ttl(KILL_TTL)
        .wait(KILL_TTL * 5)
        .backoff(Duration::from_millis(5), Duration::from_millis(10))
        .build(&env.rt)?;
    let (fence, took) = next
        .with(async |lease| Ok::<_, Infallible>((lease.fence(), killed.elapsed())))
        .await?;
    eprintln!(
        "sigkill on {}: fences {first} then {child_fence} (killed holder) then {fence}; \
         PTTL at the kill {pttl} ms (last renewed {:?} before it); the lock freed {took:?} \
         after SIGKILL, {:?} after the last renewal (TTL {KILL_TTL:?}, renewed every {:?})",
        env.kind.label,
        KILL_TTL.saturating_sub(Duration::from_millis(pttl.unsigned_abs())),
        took + KILL_TTL.saturating_sub(Duration::from_millis(pttl.unsigned_abs())),
        KILL_TTL / 3
    );
    assert!(fence > child_fence, "{fence} after {child_fence}");
    let pttl = Duration::from_millis(pttl.unsigned_abs());
    // Renewed every ttl/3: at least ~2/3 of the TTL was left at the kill.
    assert!(
        pttl >= KILL_TTL / 2,
        "PTTL {pttl:?}: the child did not renew its lease"
    );
    assert!(
        took + Duration::from_millis(50) >= pttl,
        "freed {took:?} after the kill, before its {pttl:?} ran out"
    );
    assert!(
        took <= KILL_TTL + Duration::from_millis(750),
        "freed only {took:?} after the kill (TTL {KILL_TTL:?})"
    );
    Ok(())
}

/// The child of [`a_sigkilled_holder_frees_the_lock_after_its_ttl`]: takes
/// the lock, says so, holds it past its TTL (renewed), says so, and hangs
/// until killed (a minute at most).
#[ignore = "the child process of a_sigkilled_holder_frees_the_lock_after_its_ttl"]
#[awith::test(skip(reference))]
async fn sigkill_holder(env: Env) -> TestResult {
    if !role_is("sigkill_holder") {
        return Ok(());
    }
    let locks = RedisLocks::connect(std::env::var(URL_VAR)?).await?;
    let lock = Lock::builder(locks, KEY)
        .ttl(KILL_TTL)
        .wait(Duration::from_secs(10))
        .build(&env.rt)?;
    let ended = env
        .rt
        .timeout(
            Duration::from_secs(60),
            lock.with(async |lease| {
                tell_parent(&format!("HELD {} {}", lease.fence(), lease.token()));
                env.rt.sleep(KILL_TTL * 2).await;
                tell_parent(&format!(
                    "RENEWED {} {:?}",
                    lease.is_lost(),
                    lease.time_left()
                ));
                std::future::pending::<()>().await;
                Ok::<_, Infallible>(())
            }),
        )
        .await;
    Err(format!("the holder was not killed: {ended:?}").into())
}

#[awith::test(skip(reference))]
async fn a_sigstopped_holder_is_fenced_off(env: Env) -> TestResult {
    let server = RedisServer::start();
    let locks = RedisLocks::connect(server.url()).await?;
    let mut store = chaos::connection(&server.url()).await;
    let mut child = ChildProcess::start(
        &child_test("sigstop_holder", &env),
        "sigstop_holder",
        &[(URL_VAR, server.url())],
    );
    let held = child.expect_line(&env.rt, START_BOUND, "HELD").await;
    let child_fence: u64 = word(&held, 1);
    // A few of its writes went through.
    let wrote = child.expect_line(&env.rt, STOP_TTL * 10, "WROTE 3 ").await;
    assert_eq!(wrote, "WROTE 3 stored");

    child.signal("STOP");
    let stopped = Instant::now();
    let lock = Lock::builder(locks.clone(), KEY)
        .ttl(STOP_TTL)
        .wait(STOP_TTL * 10)
        .backoff(Duration::from_millis(5), Duration::from_millis(20))
        .build(&env.rt)?;
    let (fence, took, stored) = lock
        .with(async |lease| {
            let took = stopped.elapsed();
            let stored = fenced_write(&mut store, lease.fence(), "parent").await?;
            Ok::<_, redis::RedisError>((lease.fence(), took, stored))
        })
        .await?;
    assert!(fence > child_fence, "{fence} after {child_fence}");
    assert!(
        stored,
        "the parent's write, with the larger token, is stored"
    );
    // Stopped for longer than the lease (the duration of the fault, not a
    // wait for something to happen).
    let stop_for = STOP_TTL + STOP_TTL / 2;
    if let Some(left) = stop_for.checked_sub(stopped.elapsed()) {
        env.rt.sleep(left).await;
    }
    let stopped_for = stopped.elapsed();
    child.signal("CONT");

    let lines = child
        .lines_until(&env.rt, Duration::from_secs(20), "DONE")
        .await;
    assert!(
        child.wait(&env.rt, Duration::from_secs(20)).await,
        "the child failed:\n{}",
        child.transcript()
    );
    let report = |word: &str| {
        lines
            .iter()
            .find(|line| line.starts_with(word))
            .cloned()
            .unwrap_or_else(|| panic!("no `{word}` line in {lines:?}"))
    };
    assert_eq!(
        report("SCOPE"),
        "SCOPE BodyCancelled LockLost release=None",
        "{lines:?}"
    );
    let lost = report("LOST");
    assert!(lost.starts_with("LOST Expired"), "{lost}");
    assert_eq!(report("LATE"), "LATE refused");

    let mut conn = store.clone();
    let value: String = redis::cmd("GET")
        .arg(STORE_KEYS[0])
        .query_async(&mut conn)
        .await?;
    let largest: u64 = redis::cmd("GET")
        .arg(STORE_KEYS[1])
        .query_async(&mut conn)
        .await?;
    let log: Vec<String> = redis::cmd("LRANGE")
        .arg(STORE_KEYS[2])
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await?;
    assert_eq!((value.as_str(), largest), ("parent", fence), "{log:?}");
    let parents = format!("stored:{fence}:parent");
    let at = log
        .iter()
        .position(|entry| *entry == parents)
        .unwrap_or_else(|| panic!("no {parents} in {log:?}"));
    let before = &log[..at];
    let after = &log[at + 1..];
    assert!(
        before.len() >= 3
            && before
                .iter()
                .all(|entry| entry.starts_with(&format!("stored:{child_fence}:child-"))),
        "{log:?}"
    );
    assert!(
        !after.is_empty()
            && after
                .iter()
                .all(|entry| entry.starts_with(&format!("refused:{child_fence}:child-"))),
        "every write of the resumed child was refused: {log:?}"
    );
    let in_body = after.len() - 1;
    eprintln!(
        "sigstop on {}: child fence {child_fence}, parent fence {fence} (took the lock \
         {took:?} after SIGSTOP, TTL {STOP_TTL:?}); stopped {stopped_for:?}; the child said \
         {lines:?}; {} writes of the child stored before, {} refused after (the late one and \
         {in_body} from its body after resuming)",
        env.kind.label,
        before.len(),
        after.len(),
    );
    Ok(())
}

/// The child of [`a_sigstopped_holder_is_fenced_off`]: takes the lock and
/// writes to the guarded store with its fencing token every 20 ms, telling
/// the parent each result; then tells how its scope ended and how the
/// lease was lost, and makes one late write with its old token (a zombie
/// holder that does not check).
#[ignore = "the child process of a_sigstopped_holder_is_fenced_off"]
#[awith::test(skip(reference))]
async fn sigstop_holder(env: Env) -> TestResult {
    if !role_is("sigstop_holder") {
        return Ok(());
    }
    let url = std::env::var(URL_VAR)?;
    let locks = RedisLocks::connect(url.as_str()).await?;
    let mut store = chaos::connection(&url).await;
    let lock = Lock::builder(locks, KEY)
        .ttl(STOP_TTL)
        .wait(Duration::from_secs(10))
        .build(&env.rt)?;
    let fence = Arc::new(AtomicU64::new(0));
    let ended = env
        .rt
        .timeout(
            Duration::from_secs(30),
            lock.with(async |lease| {
                fence.store(lease.fence(), Ordering::SeqCst);
                let lost = lease.lost();
                env.rt.spawn(async move {
                    let reason = lost.await;
                    tell_parent(&format!("LOST {reason:?}"));
                })?;
                tell_parent(&format!("HELD {}", lease.fence()));
                for i in 1u64.. {
                    let stored = fenced_write(&mut store, lease.fence(), &format!("child-{i}"))
                        .await
                        .map_err(|error| error.to_string())?;
                    tell_parent(&format!(
                        "WROTE {i} {}",
                        if stored { "stored" } else { "refused" }
                    ));
                    env.rt.sleep(Duration::from_millis(20)).await;
                }
                Ok::<_, Box<dyn std::error::Error>>(())
            }),
        )
        .await;
    match &ended {
        Ok(Err(ScopeError::BodyCancelled { reason, release })) => {
            tell_parent(&format!(
                "SCOPE BodyCancelled {reason:?} release={release:?}"
            ));
        }
        other => tell_parent(&format!("SCOPE other {other:?}")),
    }
    let late = fenced_write(&mut store, fence.load(Ordering::SeqCst), "child-late").await?;
    tell_parent(&format!("LATE {}", if late { "stored" } else { "refused" }));
    tell_parent("DONE");
    Ok(())
}
