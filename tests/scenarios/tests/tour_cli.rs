//! The tour as a program: its flags, its first line, its exit codes, a
//! closed stdout (`tour | head -1`) that must not make it abort, and its
//! scenarios on real servers (Redis, PostgreSQL) the tests start.

// The PostgreSQL server awith-sqlx's tests start.
#[path = "../../../crates/awith-sqlx/tests/common/pg.rs"]
mod pg;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use awith_scenarios::cli::{USAGE, default_choice};

const TOUR: &str = env!("CARGO_BIN_EXE_tour");

fn tour(args: &[&str]) -> Output {
    Command::new(TOUR)
        .args(args)
        .output()
        .expect("the tour binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_prints_the_flags_and_exits_0() {
    for flag in ["--help", "-h"] {
        let out = tour(&[flag]);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{flag}: {stdout}\n{stderr}");
        for expected in [USAGE, "--runtime", "--help", "tokio", "async-std", "smol"] {
            assert!(
                stdout.contains(expected),
                "{flag}: no {expected:?} in\n{stdout}"
            );
        }
        assert!(
            stdout.contains(&format!("default: {}", default_choice())),
            "{stdout}"
        );
        assert!(stderr.is_empty(), "{flag}: {stderr}");
        assert!(
            !stdout.contains("awith tour on"),
            "{flag}: the tour ran: {stdout}"
        );
    }
}

#[test]
fn an_unknown_flag_prints_the_usage_on_stderr_and_exits_2() {
    for args in [&["--bogus"][..], &["--runtime", "glommio"], &["--runtime"]] {
        let out = tour(args);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stdout}\n{stderr}");
        assert!(stderr.contains(USAGE), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
    }
    let stderr = text(&tour(&["--bogus"]).stderr);
    assert!(stderr.contains("unknown argument \"--bogus\""), "{stderr}");
}

/// `tour | head -1`: the reader goes away after the first line. The tour
/// stops printing, finishes, and exits 0; nothing panics (before the fix,
/// `println!` panicked, then the panic hook's own `println!` did: abort, 134).
/// The first line says which runtime the tour chose, and that it is the
/// default.
#[test]
fn a_closed_stdout_ends_the_printing_quietly() {
    let mut child = Command::new(TOUR)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tour binary runs");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("the first line");
    // Every later line comes after the runtime's timers have run: the pipe
    // is closed by then.
    drop(stdout);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut stderr)
        .expect("stderr");
    let status = child.wait().expect("the tour ends");
    assert!(status.success(), "{status}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert!(
        first.starts_with(&format!("awith tour on {} (the default", default_choice())),
        "{first}"
    );
}

/// A whole run on the default runtime: the provoked panic of scenario 3 is a
/// timeline line, not a panic report on stderr.
#[test]
fn the_provoked_panic_is_a_timeline_line() {
    let out = tour(&[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("panic!   \"query planner bug\" (provoked by the tour"),
        "{stdout}"
    );
    assert!(
        stdout.contains("OK: every release ran exactly once"),
        "{stdout}"
    );
    assert!(stderr.is_empty(), "{stderr}");
}

/// A redis-server of the test's own, on a free loopback port, killed on
/// drop. `redis-server` comes from PATH (ci/install.sh installs it).
struct RedisServer {
    child: std::process::Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl RedisServer {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let dir = std::env::temp_dir().join(format!("awith-tour-redis-{port}"));
        std::fs::create_dir_all(&dir).expect("a directory for the server");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (ci/install.sh installs it)");
        let server = RedisServer { child, port, dir };
        // Up when it accepts a connection: bounded.
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not start on port {port} within 5 s");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `--redis URL`: scenario 9 on a real Redis server, on every runtime this
/// build includes: the count is exact and the fencing tokens keep growing
/// from one run to the next (the counter lives on the server).
#[test]
fn scenario_9_runs_on_redis() {
    let server = RedisServer::start();
    let url = format!("redis://127.0.0.1:{}", server.port);
    for runtime in awith_scenarios::runtimes::Choice::enabled() {
        let out = tour(&["--runtime", runtime.name(), "--redis", &url]);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{runtime}: {stdout}\n{stderr}");
        assert!(
            stdout.contains(&format!("9. workers contend for a lock (Redis at {url})")),
            "{stdout}"
        );
        assert!(stdout.contains("result: count 12 of 12"), "{stdout}");
        assert!(
            stdout.contains("impatient worker: lock `awith:tour:ledger` not acquired within 2ms"),
            "{stdout}"
        );
    }
}

/// `--redis` at a server that is not there: a clear error, exit code 1.
#[test]
fn scenario_9_says_when_redis_is_unreachable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let out = tour(&["--redis", &url]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("redis at {url}")) && stdout.contains("refused"),
        "{stdout}"
    );
}

/// Runs the tour with `args`; kills it and fails if it has not ended
/// within `bound`.
fn tour_within(args: &[&str], bound: Duration) -> Output {
    let mut child = Command::new(TOUR)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tour binary runs");
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = read(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = read(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the tour's status") {
            break status;
        }
        if started.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            let (stdout, stderr) = (
                stdout.join().unwrap_or_default(),
                stderr.join().unwrap_or_default(),
            );
            panic!(
                "tour {args:?} did not end within {bound:?}:\n{}\n{}",
                text(&stdout),
                text(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout read"),
        stderr: stderr.join().expect("stderr read"),
    }
}

/// The bound on a whole tour run (it takes about a second).
const TOUR_BOUND: Duration = Duration::from_secs(120);

/// Scenario 10 on SQLite, on every runtime this build includes: two
/// transfers commit, the one beyond carol's balance is refused by the CHECK
/// and rolled back, the one cancelled after its debit is rolled back before
/// its connection is read again; the total is the same; the database's
/// temporary directory is gone at the end.
#[test]
fn scenario_10_runs_on_sqlite_on_every_runtime() {
    for runtime in awith_scenarios::runtimes::Choice::enabled() {
        let out = tour_within(&["--runtime", runtime.name()], TOUR_BOUND);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{runtime}: {stdout}\n{stderr}");
        for expected in [
            "10. the source's `transfer_funds`: pool → conn → conn.transaction() \
             (SQLite, a file in a temporary directory)",
            "balances before: alice 100, bob 50, carol 0 (total 150)",
            "transfer #1: alice → bob 30: committed",
            "transfer #2: bob → carol 50: committed",
            "transfer #3: carol → alice 80: rolled back — insufficient funds: carol cannot \
             pay 80 (the database refused the debit: CHECK constraint failed",
            "transfer #4: alice → carol 20: alice -20; waits",
            "its future was dropped before the credit",
            "alice has 70, read next on the same connection: the debit was rolled back first",
            "balances after: alice 70, bob 30, carol 50 (total 150)",
            "result: total 150 before and after, no balance negative; 2 committed, \
             1 refused and 1 cancelled, both rolled back (SQLite)",
        ] {
            assert!(
                stdout.contains(expected),
                "{runtime}: no {expected:?} in\n{stdout}"
            );
        }
        assert!(!stdout.contains("carol +20"), "{runtime}: {stdout}");
        let file = stdout
            .lines()
            .find_map(|line| line.split_once("SQLite database "))
            .and_then(|(_, rest)| rest.split_once("/bank.db"))
            .map(|(dir, _)| std::path::PathBuf::from(dir))
            .unwrap_or_else(|| panic!("{runtime}: no database file in\n{stdout}"));
        assert!(
            stdout.contains(&format!("pool closed; {} removed", file.display())),
            "{runtime}: {stdout}"
        );
        assert!(!file.exists(), "{runtime}: {} is left", file.display());
    }
}

/// `--postgres URL`: scenario 10 on a real PostgreSQL server, on every
/// runtime this build includes, one run after another on the same server:
/// each in a schema of its own, dropped at its end.
#[test]
fn scenario_10_runs_on_postgres() {
    let server = pg::PgServer::start();
    let url = server.url();
    let on = format!(
        "PostgreSQL at 127.0.0.1:{}, database postgres",
        server.port()
    );
    for runtime in awith_scenarios::runtimes::Choice::enabled() {
        let out = tour_within(
            &["--runtime", runtime.name(), "--postgres", &url],
            TOUR_BOUND,
        );
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{runtime}: {stdout}\n{stderr}");
        for expected in [
            format!("10. the source's `transfer_funds`: pool → conn → conn.transaction() ({on})"),
            "balances before: alice 100, bob 50, carol 0 (total 150)".into(),
            "transfer #3: carol → alice 80: rolled back — insufficient funds: carol cannot \
             pay 80 (the database refused the debit: new row for relation \"accounts\" \
             violates check constraint"
                .into(),
            "alice has 70, read next on the same connection: the debit was rolled back first"
                .into(),
            "balances after: alice 70, bob 30, carol 50 (total 150)".into(),
            format!(
                "result: total 150 before and after, no balance negative; 2 committed, \
                 1 refused and 1 cancelled, both rolled back ({on})"
            ),
        ] {
            assert!(
                stdout.contains(&expected),
                "{runtime}: no {expected:?} in\n{stdout}"
            );
        }
        assert!(
            stdout.contains("dropped; pool closed"),
            "{runtime}: {stdout}"
        );
    }
    assert_eq!(
        server.query("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'awith_tour%'"),
        "0",
        "a run left its schema behind"
    );
    assert_eq!(
        server.query("SELECT count(*) FROM pg_tables WHERE tablename = 'accounts'"),
        "0",
        "a run left its table behind"
    );
}

/// `--postgres` at a server that is not there: a clear error, exit code 1,
/// soon.
#[test]
fn scenario_10_says_when_postgres_is_unreachable() {
    let port = pg::free_port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let started = Instant::now();
    let out = tour_within(&["--postgres", &url], TOUR_BOUND);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "cannot connect to PostgreSQL at 127.0.0.1:{port}, database postgres"
        )) && stdout.contains("refused"),
        "{stdout}"
    );
    // Scenarios 1 to 9 ran as usual, and the tour says why it failed.
    assert!(stdout.contains("FAILED on"), "{stdout}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}
