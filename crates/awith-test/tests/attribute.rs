//! What `#[awith::test]` accepts, as a user writes it: the argument forms,
//! the return forms and the options; each test runs on every runtime this
//! crate's dev-dependency enables (tokio, smol) and the reference runtime.
#![allow(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use awith::test::Env;
use awith::{ResourceExt, Runtime, resource};

#[awith::test]
async fn takes_nothing() {}

#[awith::test]
async fn takes_the_runtime(rt: Runtime) {
    assert!(["reference", "tokio", "async-std", "smol"].contains(&rt.name()));
}

#[awith::test]
async fn takes_the_env(env: Env) -> Result<(), std::io::Error> {
    (env.identity)().expect("the main future runs on the runtime under test");
    assert_eq!(env.rt.name(), env.kind.name);
    assert_eq!(env.virtual_time, env.kind.name == "reference");
    let released = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&released);
    resource(
        || async { Ok::<_, std::io::Error>(()) },
        move |(), _exit| async move {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        },
    )
    .with(&env.rt, async |()| Ok::<_, std::io::Error>(()))
    .await
    .map_err(std::io::Error::other)?;
    assert_eq!(released.load(Ordering::SeqCst), 1);
    Ok(())
}

// An hour of sleep: instant on the reference runtime's virtual clock, which
// the timeout is measured on too.
#[awith::test(only(reference), timeout = "2h")]
async fn virtual_hour(env: Env) {
    env.rt.sleep(Duration::from_secs(3600)).await;
}

#[awith::test(skip(reference), timeout = "30s")]
async fn real_time_only(env: Env) {
    assert!(!env.virtual_time);
    let started = std::time::Instant::now();
    env.rt.sleep(Duration::from_millis(20)).await;
    assert!(started.elapsed() >= Duration::from_millis(20));
}

#[awith_test::test(crate = "awith_test")]
async fn through_the_crate_itself(env: Env) {
    assert!(awith_test::RUNTIMES.contains(&env.kind.test_name));
}

// A test meant to fail: `#[should_panic]` goes to each runtime's test, and
// what the matrix finds at the end (an incident left untaken) fails it.
#[awith::test]
#[should_panic(expected = "incident: awith: the release of a cancelled scope failed")]
async fn a_leaked_release_fails_the_test(env: Env) {
    let scope = resource(
        || async { Ok::<_, std::io::Error>(()) },
        |(), _exit| async { Err(std::io::Error::other("lost")) },
    )
    .with(&env.rt, async |()| {
        std::future::pending::<()>().await;
        Ok::<_, std::io::Error>(())
    });
    // Dropped in its body: the release runs as a cleanup, and fails.
    let _ = futures::FutureExt::now_or_never(scope);
}

/// Each annotated function keeps its name and gains one test per runtime
/// the build enables: tokio and smol through the dev-dependency on the
/// facade, async-std too when this crate's own feature is on.
#[test]
fn one_test_per_runtime() {
    let made: &[fn()] = &[
        takes_nothing::reference,
        takes_nothing::tokio_current_thread,
        takes_nothing::tokio_multi_thread,
        #[cfg(feature = "async-std")]
        takes_nothing::async_std,
        takes_nothing::smol,
    ];
    assert_eq!(made.len(), awith_test::RUNTIMES.len());
    let expected: &[&str] = &[
        "reference",
        "tokio_current_thread",
        "tokio_multi_thread",
        #[cfg(feature = "async-std")]
        "async_std",
        "smol",
    ];
    assert_eq!(awith_test::RUNTIMES, expected);
}

// The README's example ("Testing on every runtime"), run: the README's copy
// is only compiled (a doctest builds no #[test]).
#[awith::test]
async fn a_cancelled_scope_still_releases(env: Env) -> Result<(), Box<dyn std::error::Error>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let scope = resource(
        || async { Ok::<_, std::io::Error>("conn") },
        move |_, exit| async move {
            tx.send(exit).expect("the test listens");
            Ok(())
        },
    )
    .body_timeout(Duration::from_millis(50)) // a body cut at 50 ms...
    .with(&env.rt, async |_| {
        std::future::pending::<()>().await; // ... that would never end
        Ok::<_, std::io::Error>(())
    });
    assert!(scope.await.is_err());
    assert!(matches!(rx.try_recv()?, awith::ExitKind::Cancelled(_)));
    Ok(())
}
