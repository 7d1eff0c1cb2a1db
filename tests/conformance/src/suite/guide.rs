//! What the runtimes do differently, observed: the rows of the runtime guide
//! (`docs/runtimes.md`, rendered by `cargo run -p awith-conformance --bin
//! runtime-guide`). Tests here and in [`contract`](super::contract) call
//! [`observe`] with what they saw; with `AWITH_GUIDE_OUT=FILE` set, each
//! observation is appended to FILE as `runtime<TAB>topic<TAB>text`,
//! otherwise printed to stderr.
//!
//! Topics ending in `/native` are what the runtime itself does (its own
//! spawn, join handle, timer); those ending in `/awith` are what awith makes
//! of it on that runtime.

use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use awith::rt::{CleanupKind, Incident};
use awith::test::Env;
use awith::{ExitKind, ResourceExt, resource};
use futures::FutureExt;
use futures::channel::oneshot;

/// One observation of the runtime under `env`.
pub fn observe(env: &Env, topic: &str, text: &str) {
    static FILE: Mutex<()> = Mutex::new(());
    let line = format!("{}\t{topic}\t{text}\n", env.kind.test_name);
    match std::env::var_os("AWITH_GUIDE_OUT") {
        Some(path) => {
            let _serial = FILE
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap_or_else(|e| panic!("AWITH_GUIDE_OUT={}: {e}", path.to_string_lossy()));
            file.write_all(line.as_bytes())
                .expect("an observation written");
        }
        None => eprint!("observe: {line}"),
    }
}

/// How long `future` may take before the probe gives up.
const PROBE_BOUND: Duration = Duration::from_secs(10);

async fn bounded<T>(env: &Env, future: impl Future<Output = T>) -> Option<T> {
    futures::select_biased! {
        output = future.fuse() => Some(output),
        () = env.rt.sleep(PROBE_BOUND).fuse() => None,
    }
}

/// A task that ends when told to go, and says so; `Err(Canceled)` on `done`
/// if it is dropped first.
fn go_task() -> (
    oneshot::Sender<()>,
    oneshot::Receiver<()>,
    impl Future<Output = ()> + Send + 'static,
) {
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let task = async move {
        if go_rx.await.is_ok() {
            let _ = done_tx.send(());
        }
    };
    (go_tx, done_rx, task)
}

/// Lets a spawned task start, then tells it to go and says what became of it.
async fn after_go(env: &Env, go: oneshot::Sender<()>, done: oneshot::Receiver<()>) -> &'static str {
    env.rt.sleep(Duration::from_millis(10)).await;
    let _ = go.send(());
    match bounded(env, done).await {
        Some(Ok(())) => "the task runs on to its end (detached)",
        Some(Err(oneshot::Canceled)) => "the task is cancelled (dropped at its next await)",
        None => "the task neither ended nor was dropped within 10 s",
    }
}

/// Dropping the runtime's own join handle, and awith's spawn (which gives no
/// handle).
async fn handle_dropped(env: &Env) {
    let (go, done, task) = go_task();
    let native = match env.kind.name {
        #[cfg(feature = "tokio")]
        "tokio" => {
            drop(tokio::spawn(task));
            true
        }
        #[cfg(feature = "async-std")]
        "async-std" => {
            drop(async_std::task::spawn(task));
            true
        }
        #[cfg(feature = "smol")]
        "smol" => {
            drop(smol::spawn(task));
            true
        }
        _ => false,
    };
    if native {
        observe(env, "handle-dropped/native", after_go(env, go, done).await);
    }
    let (go, done, task) = go_task();
    env.rt.spawn(task).expect("spawn");
    observe(env, "handle-dropped/awith", after_go(env, go, done).await);
}

/// A task that panics, seen through the runtime's own join handle; and a
/// release that panics in an awith cleanup task.
async fn task_panics(env: &Env) {
    let task = async {
        std::panic::panic_any("probe: a spawned task panics");
    };
    let native: Option<&str> = match env.kind.name {
        #[cfg(feature = "tokio")]
        "tokio" => Some(match tokio::spawn(task).await {
            Err(error) if error.is_panic() => {
                "awaiting its handle gives an error (`JoinError::is_panic`); the runtime goes on"
            }
            Err(_) => "awaiting its handle gives a cancellation error",
            Ok(()) => "awaiting its handle succeeds",
        }),
        #[cfg(feature = "async-std")]
        "async-std" => Some(
            match AssertUnwindSafe(async_std::task::spawn(task))
                .catch_unwind()
                .await
            {
                Err(_) => "awaiting its handle resumes the panic in the awaiter",
                Ok(()) => "awaiting its handle succeeds",
            },
        ),
        #[cfg(feature = "smol")]
        "smol" => Some(
            match AssertUnwindSafe(smol::spawn(task)).catch_unwind().await {
                Err(_) => "awaiting its handle resumes the panic in the awaiter",
                Ok(()) => "awaiting its handle succeeds",
            },
        ),
        _ => None,
    };
    if let Some(native) = native {
        observe(env, "task-panic/native", native);
    }

    // awith's own tasks catch their panics: a release that panics after its
    // scope was cancelled is reported, never lost, whatever the runtime.
    let scope = resource(
        || async { Ok::<_, String>(()) },
        |(), exit| async move {
            if matches!(exit, ExitKind::Cancelled(_)) {
                std::panic::panic_any("probe: a release panics");
            }
            Ok(())
        },
    )
    .with(&env.rt, async |()| {
        std::future::pending::<()>().await;
        Ok::<_, String>(())
    });
    futures::select_biased! {
        _ = scope.fuse() => panic!("the body never ends"),
        () = env.rt.sleep(Duration::from_millis(5)).fuse() => {}
    }
    env.rt.drain(PROBE_BOUND).await.expect("the cleanup ended");
    let caught = env.incidents.take()
        == [Incident::CleanupPanicked {
            kind: CleanupKind::Release,
            message: "probe: a release panics".into(),
        }];
    observe(
        env,
        "task-panic/awith",
        if caught {
            "caught inside the task, reported as `Incident::CleanupPanicked`"
        } else {
            "not caught"
        },
    );
}

/// The timer's resolution: the median of 21 back-to-back sleeps of 50 µs.
async fn timer_resolution(env: &Env) {
    let text = if env.virtual_time {
        "virtual: a sleep takes exactly its duration, at once"
    } else {
        let mut took = Vec::new();
        for _ in 0..21 {
            let started = Instant::now();
            env.rt.sleep(Duration::from_micros(50)).await;
            took.push(started.elapsed());
        }
        took.sort();
        if took[10] >= Duration::from_micros(500) {
            "whole milliseconds: a 50 µs sleep takes about 1 ms"
        } else {
            "sub-millisecond: a 50 µs sleep takes well under 1 ms"
        }
    };
    observe(env, "timer-resolution/native", text);
}

/// Every observation that needs a test of its own.
pub async fn runtime_differences(env: Env) {
    handle_dropped(&env).await;
    task_panics(&env).await;
    timer_resolution(&env).await;
}
