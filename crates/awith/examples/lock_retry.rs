//! A lock taken by retrying, bounded by `acquire_timeout`. Each try takes
//! the lock or takes nothing, so the acquire is declared cancel-safe: at the
//! timeout it stops, and nothing is left running.

// A program that prints, and unwraps where a user would.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use awith::{Failure, ResourceExt, ScopeError, resource};

/// A lock server, in memory: who holds which key.
#[derive(Clone, Default)]
struct Locks {
    held: Arc<Mutex<Option<&'static str>>>,
    tries: Arc<AtomicUsize>,
}

impl Locks {
    /// One try: `true` if `owner` took the lock.
    fn try_lock(&self, owner: &'static str) -> bool {
        self.tries.fetch_add(1, Ordering::SeqCst);
        let mut held = self.held.lock().unwrap();
        if held.is_some() {
            return false;
        }
        *held = Some(owner);
        true
    }

    fn unlock(&self, owner: &'static str) {
        let mut held = self.held.lock().unwrap();
        if *held == Some(owner) {
            *held = None;
        }
    }
}

async fn with_lock(
    rt: &awith::Runtime,
    locks: &Locks,
    owner: &'static str,
) -> Result<&'static str, ScopeError<std::io::Error, std::io::Error>> {
    let (retry_rt, acquire, release) = (rt.clone(), locks.clone(), locks.clone());
    resource(
        move || async move {
            while !acquire.try_lock(owner) {
                retry_rt.sleep(Duration::from_millis(10)).await;
            }
            Ok::<_, std::io::Error>(owner)
        },
        move |owner, _exit| async move {
            release.unlock(owner);
            Ok(())
        },
    )
    .cancel_safe()
    .acquire_timeout(Duration::from_millis(100))
    .with(rt, async |owner| Ok(*owner))
    .await
}

async fn run(rt: awith::Runtime) -> Result<(), Box<dyn Error + Send + Sync>> {
    let locks = Locks::default();
    println!(
        "{} took the lock",
        with_lock(&rt, &locks, "worker-1").await?
    );

    *locks.held.lock().unwrap() = Some("someone else");
    let timed_out = with_lock(&rt, &locks, "worker-2").await;
    assert!(matches!(
        timed_out,
        Err(ScopeError::Acquire(Failure::TimedOut(_)))
    ));
    println!("worker-2: {}", timed_out.unwrap_err());

    // The retry loop stopped at the timeout: no cleanup to wait for, and no
    // try after it.
    let stats = rt.drain(Duration::from_secs(5)).await?;
    assert_eq!(stats.pending, 0);
    let tries = locks.tries.load(Ordering::SeqCst);
    rt.sleep(Duration::from_millis(50)).await;
    assert_eq!(locks.tries.load(Ordering::SeqCst), tries);
    println!("{tries} tries in all; none after the timeout");
    Ok(())
}

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    match std::env::args().nth(1).as_deref().unwrap_or("tokio") {
        "tokio" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(async { run(awith::tokio::runtime()?).await }),
        "smol" => smol::block_on(run(awith::smol::runtime())),
        "async-std" => async_std::task::block_on(run(awith::async_std::runtime())),
        other => Err(format!("unknown runtime {other:?}: tokio, smol or async-std").into()),
    }
}
