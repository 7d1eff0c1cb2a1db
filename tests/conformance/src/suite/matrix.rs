//! The public test matrix (`awith::test::run`, what `#[awith::test]`
//! calls) fails a test for what it leaves behind: a cleanup that failed, one
//! still pending, an error, a timeout; and passes one that takes the incident
//! it expects or says incidents are allowed. Each case runs `run` on a fresh
//! runtime of `H` and reads its panic.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use awith::rt::{CleanupKind, Incident};
use awith::test::harness::Harness;
use awith::test::{Env, Options, run};
use awith::{ExitKind, ResourceExt, resource};
use futures::FutureExt;

/// The name each case runs under: its failure is a deliberate panic, kept
/// quiet by the probe's panic hook.
const NAME: &str = "probe: a matrix case";

/// A scope whose release, when the scope was cancelled, fails (`hang`:
/// never ends); its body waits forever, and is cancelled after 10 ms.
async fn cancel_a_scope(env: &Env, hang: bool) {
    let scope = resource(
        || async { Ok::<_, String>(()) },
        move |(), exit| async move {
            if !matches!(exit, ExitKind::Cancelled(_)) {
                return Ok(());
            }
            if hang {
                std::future::pending::<()>().await;
            }
            Err("lost at release".to_string())
        },
    )
    .with(&env.rt, async |()| {
        std::future::pending::<()>().await;
        Ok::<_, String>(())
    });
    futures::select_biased! {
        _ = scope.fuse() => panic!("the body never ends"),
        () = env.rt.sleep(Duration::from_millis(10)).fuse() => {}
    }
}

/// Panics when dropped.
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        std::panic::panic_any("probe: the test's drop");
    }
}

/// A scope whose release fails when cancelled, and whose body waits forever.
async fn cancel_a_scope_and_wait(env: &Env) {
    let _ = resource(
        || async { Ok::<_, String>(()) },
        |(), exit| async move {
            match exit {
                ExitKind::Cancelled(_) => Err("lost at release".to_string()),
                _ => Ok(()),
            }
        },
    )
    .with(&env.rt, async |()| {
        std::future::pending::<()>().await;
        Ok::<_, String>(())
    })
    .await;
}

fn message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(ToString::to_string))
        .unwrap_or_default()
}

/// Runs one case: `Err` with the panic's message if the matrix failed it.
fn case<H, F, Fut, O>(options: Options, test: F) -> Result<(), String>
where
    H: Harness,
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = O>,
    O: awith::test::Outcome,
{
    catch_unwind(AssertUnwindSafe(|| {
        run::<H, _, _>(options.named(NAME), test);
    }))
    .map_err(|payload| message(&*payload))
}

fn assert_fails(result: Result<(), String>, label: &str, expected: &[&str]) {
    let message = result.expect_err("the matrix passed a test that leaked");
    assert!(
        message.starts_with(&format!("{NAME} on {label}:")),
        "the failure names the test and the runtime: {message}"
    );
    for part in expected {
        assert!(message.contains(part), "{part:?} not in: {message}");
    }
}

/// Every case, on a fresh runtime of `H` each.
pub fn fails_what_a_test_leaves<H: Harness>() {
    crate::quiet_probe_panics();
    let label = H::LABEL;

    // A release that fails after a cancellation: an incident, named.
    let leaked = case::<H, _, _, _>(Options::new(), async |env| {
        cancel_a_scope(&env, false).await;
    });
    assert_fails(
        leaked,
        label,
        &["incident: awith: the release of a cancelled scope failed: \"lost at release\""],
    );

    // A release still pending: the drain at the end times out.
    let pending = case::<H, _, _, _>(
        Options::new().drain_deadline(Duration::from_millis(200)),
        async |env| cancel_a_scope(&env, true).await,
    );
    assert_fails(
        pending,
        label,
        &["1 cleanup task(s) still running 200ms after the test ended"],
    );

    // The test's own error, and the incident beside it: both told.
    let both = case::<H, _, _, _>(Options::new(), async |env| {
        cancel_a_scope(&env, false).await;
        Err::<(), _>("the body's error")
    });
    assert_fails(
        both,
        label,
        &[
            "the test failed: \"the body's error\"",
            "incident: awith: the release of a cancelled scope failed",
        ],
    );

    // A test that does not end: its timeout (virtual on the reference runtime).
    let stuck = case::<H, _, _, _>(
        Options::new().timeout(Duration::from_millis(300)),
        async |_env| std::future::pending::<()>().await,
    );
    assert_fails(stuck, label, &["did not finish within 300ms"]);

    // A test stopped at its timeout inside a scope: the scope's release runs
    // (the test's future is dropped before the drain), and its failure is told
    // beside the timeout.
    let stopped = case::<H, _, _, _>(
        Options::new().timeout(Duration::from_millis(300)),
        async |env| cancel_a_scope_and_wait(&env).await,
    );
    assert_fails(
        stopped,
        label,
        &[
            "did not finish within 300ms",
            "incident: awith: the release of a cancelled scope failed: \"lost at release\"",
        ],
    );

    // A test whose future panics when dropped at its timeout: both told, and
    // the drain still runs (the scope it had open is released and reported).
    let dropped_badly = case::<H, _, _, _>(
        Options::new().timeout(Duration::from_millis(300)),
        async |env| {
            let _bomb = PanicOnDrop;
            cancel_a_scope_and_wait(&env).await;
        },
    );
    assert_fails(
        dropped_badly,
        label,
        &[
            "did not finish within 300ms",
            "dropping the test at its timeout panicked: probe: the test's drop",
            "incident: awith: the release of a cancelled scope failed",
        ],
    );

    // A test that takes the incident it expects passes...
    case::<H, _, _, _>(Options::new(), async |env| {
        cancel_a_scope(&env, false).await;
        env.rt
            .drain(Duration::from_secs(10))
            .await
            .expect("the release ended");
        let taken = env.incidents.take();
        assert_eq!(
            taken,
            [Incident::CleanupFailed {
                kind: CleanupKind::Release,
                error: "\"lost at release\"".into(),
            }]
        );
    })
    .expect("a test that took its incident passes");

    // ... as does one that allows incidents (and checks them itself).
    case::<H, _, _, _>(Options::new().allow_incidents(), async |env| {
        cancel_a_scope(&env, false).await;
    })
    .expect("a test that allows incidents passes");
}
