//! What the tests share: a PostgreSQL server of each test's own (`initdb`
//! and `postgres` in a temporary directory, on a free loopback port, as the
//! `postgres` user when the tests run as root; stopped when dropped), a
//! temporary directory for SQLite files, a spawned task to await, a seeded
//! RNG, and a future dropped after a number of polls.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use awith::{Cancel, Runtime, Tripwire};
use futures::FutureExt;

/// How long a server may take to accept connections after it was started.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a server may take to exit after SIGINT before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(15);

/// A directory of the test's own, removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "awith-sqlx-{what}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("make a temporary directory");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

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

/// A loopback port nothing listens on now (it was free a moment ago).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    let port = listener.local_addr().expect("its address").port();
    assert_ne!(port, 5432, "never the default PostgreSQL port");
    port
}

/// The directory of PostgreSQL's server programs: `AWITH_PG_BIN`, else the
/// one of `initdb` on `PATH`, else Debian's `/usr/lib/postgresql/N/bin`
/// (the newest). ci/install.sh installs them.
pub fn pg_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("AWITH_PG_BIN") {
        return PathBuf::from(dir);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("postgres").is_file() {
                return dir;
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL's server programs (initdb, postgres) are not installed: \
             run ci/install.sh, or set AWITH_PG_BIN"
        ),
    }
}

/// PostgreSQL refuses to run as root: then the server runs as `postgres`
/// (Debian's package makes that user), through `setpriv`, which execs.
fn unprivileged() -> Option<(u32, u32)> {
    let output = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&output.stdout).trim() != "0" {
        return None;
    }
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((
        id("-u").expect("running as root needs a `postgres` user (ci/install.sh)"),
        id("-g").expect("the `postgres` user's group"),
    ))
}

fn command(program: &Path, user: Option<(u32, u32)>) -> Command {
    match user {
        None => Command::new(program),
        Some((uid, gid)) => {
            let mut command = Command::new("setpriv");
            command
                .arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg("--")
                .arg(program);
            command
        }
    }
}

/// A PostgreSQL server of the test's own: `initdb` into a temporary
/// directory, then `postgres` on a free loopback port (no Unix socket
/// outside that directory, `fsync` off); stopped (SIGINT, fast shutdown)
/// and removed when dropped.
#[derive(Debug)]
pub struct PgServer {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl PgServer {
    pub fn start() -> PgServer {
        let bin = pg_bin();
        let user = unprivileged();
        let dir = TempDir::new("pg");
        let data = dir.path().join("data");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("chown the directory");
        }
        let output = command(&bin.join("initdb"), user)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        // Another test may take the port between `free_port` and the
        // server's bind: then try another, a bounded number of times.
        for _ in 0..5 {
            let port = free_port();
            let log = std::fs::File::create(dir.path().join(format!("server-{port}.log")))
                .expect("the server's log");
            let child = command(&bin.join("postgres"), user)
                .arg("-D")
                .arg(&data)
                .args(["-p", &port.to_string(), "-k"])
                .arg(dir.path())
                .args([
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=60",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start postgres");
            let mut child = child;
            if wait_ready(&mut child, port, &data) {
                return PgServer {
                    port,
                    dir,
                    child: Some(child),
                };
            }
            stop(child);
        }
        panic!("postgres did not start on any of 5 ports");
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn options(&self) -> sqlx::postgres::PgConnectOptions {
        sqlx::postgres::PgConnectOptions::new()
            .host("127.0.0.1")
            .port(self.port)
            .username("postgres")
            .database("postgres")
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            stop(child);
        }
    }
}

/// Waits until the server is ready for queries (its `postmaster.pid`
/// says `ready`) and accepts TCP connections, or it exited.
fn wait_ready(child: &mut Child, port: u16, data: &Path) -> bool {
    let deadline = Instant::now() + START_DEADLINE;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        let ready = std::fs::read_to_string(data.join("postmaster.pid")).is_ok_and(|pid| {
            pid.lines()
                .nth(7)
                .is_some_and(|status| status.trim() == "ready")
        });
        if ready && TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// SIGINT (fast shutdown: sessions are ended, their transactions rolled
/// back), then SIGKILL past the deadline.
fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + STOP_DEADLINE;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
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
