//! A PostgreSQL server of a test's (or a bench's) own: `initdb` and
//! `postgres` in a temporary directory, on a free loopback port, as the
//! `postgres` user when run as root; stopped and removed when dropped. And
//! the temporary directory itself. One file, included by awith-sqlx's tests
//! (`common`), the tour's tests (`tests/scenarios/tests/tour_cli.rs`) and the
//! transaction bench (`benches/benches/tx.rs`) with `#[path]`.

#![allow(dead_code)]

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a server may take to accept connections after it was started.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a server may take to exit after SIGINT before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(15);

/// A directory of the test's own, removed when dropped.
#[derive(Debug)]
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(what: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "awith-{what}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("make a temporary directory");
        TempDir(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port nothing listens on now (it was free a moment ago).
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    let port = listener.local_addr().expect("its address").port();
    assert_ne!(port, 5432, "never the default PostgreSQL port");
    port
}

/// The directory of PostgreSQL's server programs: `AWITH_PG_BIN`, else the
/// one of `initdb` on `PATH`, else Debian's `/usr/lib/postgresql/N/bin`
/// (the newest). ci/install.sh installs them.
pub(crate) fn pg_bin() -> PathBuf {
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
            (bin.join("initdb").is_file() && bin.join("postgres").is_file())
                .then_some((version, bin))
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
pub(crate) struct PgServer {
    port: u16,
    dir: TempDir,
    bin: PathBuf,
    child: Option<Child>,
}

impl PgServer {
    pub(crate) fn start() -> PgServer {
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
                    bin,
                    child: Some(child),
                };
            }
            stop(child);
        }
        panic!(
            "postgres did not start on any of 5 ports (its logs were in {:?})",
            dir.path()
        );
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Connection options: `postgres@127.0.0.1:PORT/postgres`.
    pub(crate) fn options(&self) -> sqlx::postgres::PgConnectOptions {
        sqlx::postgres::PgConnectOptions::new()
            .host("127.0.0.1")
            .port(self.port)
            .username("postgres")
            .database("postgres")
    }
}

impl PgServer {
    /// The answer of `psql` to `sql`, trimmed.
    pub(crate) fn query(&self, sql: &str) -> String {
        // Beside `initdb`, or beside what a link to it on PATH points to,
        // or on PATH.
        let psql = [
            Some(self.bin.join("psql")),
            std::fs::canonicalize(self.bin.join("initdb"))
                .ok()
                .and_then(|initdb| Some(initdb.parent()?.join("psql"))),
        ]
        .into_iter()
        .flatten()
        .find(|psql| psql.is_file())
        .unwrap_or_else(|| PathBuf::from("psql"));
        let output = Command::new(psql)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args([
                "-U", "postgres", "-d", "postgres", "-X", "-A", "-t", "-c", sql,
            ])
            .output()
            .expect("run psql");
        assert!(
            output.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
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
