//! A real `redis-server` (from `PATH`) for the tests: on a free loopback
//! port, in a temporary directory, without snapshots (`--save ""`), with or
//! without the append-only file; restartable on the same port and
//! directory, pausable (SIGSTOP/SIGCONT), and killed when dropped. It never
//! uses port 6379 nor a system Redis service.

#![allow(dead_code, unreachable_pub)]

pub mod chaos;

use std::future::Future;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a server may take to answer PING after it was started.
const START_DEADLINE: Duration = Duration::from_secs(10);
/// How long a server may take to exit after SIGTERM before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// A `redis-server` of this test's own.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    appendonly: bool,
    child: Option<Child>,
    paused: bool,
}

/// A loopback port nothing listens on now (it was free a moment ago).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    let port = listener.local_addr().expect("its address").port();
    assert_ne!(port, 6379, "never the default Redis port");
    port
}

impl RedisServer {
    /// A server without persistence.
    pub fn start() -> RedisServer {
        RedisServer::start_with(false)
    }

    /// A server whose data survives restarts (`--appendonly yes`).
    pub fn start_persistent() -> RedisServer {
        RedisServer::start_with(true)
    }

    fn start_with(appendonly: bool) -> RedisServer {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "awith-redis-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("make the server's directory");
        // Another test may take the port between `free_port` and the
        // server's bind: then try another, a bounded number of times.
        for _ in 0..5 {
            let mut server = RedisServer {
                port: free_port(),
                dir: dir.clone(),
                appendonly,
                child: None,
                paused: false,
            };
            if server.spawn().is_ok() {
                return server;
            }
        }
        panic!("redis-server did not start on any of 5 ports (see {dir:?})");
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = self.dir.join("redis.log");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", ""])
            .args(["--appendonly", if self.appendonly { "yes" } else { "no" }])
            .arg("--logfile")
            .arg(&log)
            .args(["--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| format!("redis-server could not start: {error} (is it on PATH?)"))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!("redis-server exited: {status}"));
            }
            if self.ping() {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!("no PONG within {START_DEADLINE:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the server answers PING within a second.
    pub fn ping(&self) -> bool {
        self.command("PING")
            .is_some_and(|reply| reply.starts_with("+PONG"))
    }

    /// Sends one inline command and returns the first reply's bytes as
    /// text (enough for simple replies), or `None` if it could not.
    pub fn command(&self, command: &str) -> Option<String> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        stream.write_all(format!("{command}\r\n").as_bytes()).ok()?;
        let mut buffer = [0u8; 512];
        let n = stream.read(&mut buffer).ok()?;
        Some(String::from_utf8_lossy(&buffer[..n]).into_owned())
    }

    /// Stops the server (SIGTERM: with `appendonly`, it writes its data
    /// first) and waits for it to exit.
    pub fn stop(&mut self) {
        self.resume();
        if let Some(mut child) = self.child.take() {
            signal(&child, "TERM");
            let deadline = Instant::now() + STOP_DEADLINE;
            while !matches!(child.try_wait(), Ok(Some(_))) {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// Stops the server and starts it again on the same port and directory.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(why) = self.spawn() {
            panic!("redis-server did not restart on port {}: {why}", self.port);
        }
    }

    /// Freezes the server (SIGSTOP): it accepts connections but answers
    /// nothing until [`resume`](Self::resume).
    pub fn pause(&mut self) {
        if let Some(child) = &self.child {
            signal(child, "STOP");
            self.paused = true;
        }
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&mut self) {
        if self.paused {
            if let Some(child) = &self.child {
                signal(child, "CONT");
            }
            self.paused = false;
        }
    }

    fn kill(&mut self) {
        self.resume();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status();
    assert!(
        status.is_ok_and(|status| status.success()),
        "kill -{name} {} failed",
        child.id()
    );
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `future` to its end on the calling thread, outside every runtime
/// (a minimal executor: parks the thread until woken).
pub fn block_on<F: Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park_timeout(Duration::from_millis(100));
    }
}
