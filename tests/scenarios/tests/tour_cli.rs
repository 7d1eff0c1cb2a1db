//! The tour as a program: its flags, its first line, its exit codes, and a
//! closed stdout (`tour | head -1`) that must not make it abort.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Output, Stdio};

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
            std::thread::sleep(std::time::Duration::from_millis(10));
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
