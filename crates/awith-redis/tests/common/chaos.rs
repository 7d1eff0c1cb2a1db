//! Tools of the lock-scope and chaos tests: a spawned task whose end can be
//! awaited, a race of two futures, a seeded RNG, a second connection to
//! the server (not the lock's), the fencing script of a guarded store, and
//! a child process (this test binary, run again) whose stdout lines can be
//! awaited.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io::{BufRead, BufReader, Read};
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use awith::{Cancel, Runtime, Tripwire};
use futures::FutureExt;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
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
            .map_err(|payload| {
                payload
                    .downcast_ref::<&str>()
                    .map(ToString::to_string)
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(not text)".into())
            });
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

/// Which of two raced futures ended first.
#[derive(Debug)]
pub enum Either<A, B> {
    /// The first.
    Left(A),
    /// The second.
    Right(B),
}

/// Polls both (the first first) until one ends; the other is dropped
/// when this returns.
pub async fn race<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    poll_fn(|cx| {
        if let Poll::Ready(output) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(output));
        }
        if let Poll::Ready(output) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(output));
        }
        Poll::Pending
    })
    .await
}

/// Lets the other tasks run once.
pub async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}

/// xorshift64: small, seeded, good enough to pick faults.
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

    /// The next number.
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
}

/// The seed in `AWITH_CHAOS_SEED` (to replay a run), else one from the
/// clock.
pub fn seed() -> u64 {
    std::env::var("AWITH_CHAOS_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |now| now.as_nanos() as u64)
        })
}

/// A connection of the test's own to the server (not the lock's).
pub async fn connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("a redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("a connection to the test's server")
}

/// A guarded store's write: stores `ARGV[2]` in `KEYS[1]` only if the
/// fencing token `ARGV[1]` is at least the largest seen (kept in
/// `KEYS[2]`), which it then records. Every attempt, stored or refused, is
/// appended to the list `KEYS[3]` as `stored:TOKEN:VALUE` or
/// `refused:TOKEN:VALUE`. Returns 1 if it stored, 0 if it refused.
pub static FENCED_WRITE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"local largest = tonumber(redis.call('GET', KEYS[2]) or '0')
local token = tonumber(ARGV[1])
if token >= largest then
    redis.call('SET', KEYS[1], ARGV[2])
    redis.call('SET', KEYS[2], ARGV[1])
    redis.call('RPUSH', KEYS[3], 'stored:' .. ARGV[1] .. ':' .. ARGV[2])
    return 1
end
redis.call('RPUSH', KEYS[3], 'refused:' .. ARGV[1] .. ':' .. ARGV[2])
return 0",
    )
});

/// The keys of [`FENCED_WRITE`]'s store in these tests.
pub const STORE_KEYS: [&str; 3] = ["store:value", "store:largest", "store:log"];

/// One fenced write to the store: `true` if stored, `false` if refused.
pub async fn fenced_write(
    conn: &mut redis::aio::MultiplexedConnection,
    fence: u64,
    value: &str,
) -> redis::RedisResult<bool> {
    FENCED_WRITE
        .key(STORE_KEYS[0])
        .key(STORE_KEYS[1])
        .key(STORE_KEYS[2])
        .arg(fence)
        .arg(value)
        .invoke_async(conn)
        .await
}

/// The prefix of the lines a child writes for its parent (the test
/// harness writes its own lines too).
pub const LINE_PREFIX: &str = "CHAOS ";

/// The variable that names a child's role: a role's test does nothing
/// without it.
pub const ROLE_VAR: &str = "AWITH_CHAOS_ROLE";

/// Whether this process is a child playing `role`.
pub fn role_is(role: &str) -> bool {
    std::env::var(ROLE_VAR).is_ok_and(|value| value == role)
}

/// A line for the parent, flushed at once.
#[allow(clippy::print_stdout)]
pub fn tell_parent(line: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{LINE_PREFIX}{line}");
    let _ = stdout.flush();
}

#[derive(Default)]
struct LinesState {
    queue: VecDeque<String>,
    eof: bool,
    waker: Option<Waker>,
    /// Everything the child wrote, stdout and stderr, for failure messages.
    transcript: String,
}

/// A child process: this test binary running one (ignored) test, with its
/// role in [`ROLE_VAR`]; killed when dropped.
pub struct ChildProcess {
    child: Child,
    state: Arc<Mutex<LinesState>>,
    /// The test it runs.
    pub test: String,
}

impl std::fmt::Debug for ChildProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildProcess")
            .field("pid", &self.child.id())
            .field("test", &self.test)
            .finish_non_exhaustive()
    }
}

impl ChildProcess {
    /// Runs `test` (exactly, with its output not captured) of this test
    /// binary, as `role`, with the variables `vars`.
    pub fn start(test: &str, role: &str, vars: &[(&str, String)]) -> ChildProcess {
        let exe = std::env::current_exe().expect("this test binary's path");
        let mut command = Command::new(exe);
        command
            .args([test, "--exact", "--nocapture", "--include-ignored"])
            .args(["--test-threads", "1"])
            .env(ROLE_VAR, role)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in vars {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("the test binary runs again");
        let state = Arc::new(Mutex::new(LinesState::default()));
        let stdout = child.stdout.take().expect("a piped stdout");
        let stderr = child.stderr.take().expect("a piped stderr");
        {
            let state = Arc::clone(&state);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let waker = {
                        let mut state = lock(&state);
                        state.transcript.push_str(&line);
                        state.transcript.push('\n');
                        // The harness's `test name ... ` may stand before it.
                        if let Some(at) = line.find(LINE_PREFIX) {
                            state
                                .queue
                                .push_back(line[at + LINE_PREFIX.len()..].to_owned());
                        }
                        state.waker.take()
                    };
                    waker.into_iter().for_each(Waker::wake);
                }
                let waker = {
                    let mut state = lock(&state);
                    state.eof = true;
                    state.waker.take()
                };
                waker.into_iter().for_each(Waker::wake);
            });
        }
        {
            let state = Arc::clone(&state);
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = BufReader::new(stderr).read_to_string(&mut text);
                lock(&state)
                    .transcript
                    .push_str(&format!("[stderr]\n{text}"));
            });
        }
        ChildProcess {
            child,
            state,
            test: test.to_owned(),
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's next line for its parent (without the prefix), `None`
    /// at the end of its output.
    pub async fn next_line(&self) -> Option<String> {
        poll_fn(|cx| {
            let mut state = lock(&self.state);
            if let Some(line) = state.queue.pop_front() {
                return Poll::Ready(Some(line));
            }
            if state.eof {
                return Poll::Ready(None);
            }
            state.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// The next line that starts with `word`, within `within`; panics
    /// with everything the child wrote if none came.
    pub async fn expect_line(&self, rt: &Runtime, within: Duration, word: &str) -> String {
        let found = rt
            .timeout(within, async {
                while let Some(line) = self.next_line().await {
                    if line.starts_with(word) {
                        return Some(line);
                    }
                }
                None
            })
            .await;
        match found {
            Ok(Some(line)) => line,
            Ok(None) => panic!(
                "the child ended without a `{word}` line; it wrote:\n{}",
                self.transcript()
            ),
            Err(_) => panic!(
                "no `{word}` line from the child within {within:?}; it wrote:\n{}",
                self.transcript()
            ),
        }
    }

    /// The child's lines up to and including the first that starts with
    /// `last`, within `within`; panics with everything the child wrote if
    /// it did not come.
    pub async fn lines_until(&self, rt: &Runtime, within: Duration, last: &str) -> Vec<String> {
        let mut lines = Vec::new();
        let found = rt
            .timeout(within, async {
                while let Some(line) = self.next_line().await {
                    let done = line.starts_with(last);
                    lines.push(line);
                    if done {
                        return true;
                    }
                }
                false
            })
            .await;
        match found {
            Ok(true) => lines,
            Ok(false) => panic!(
                "the child ended without a `{last}` line; it wrote:\n{}",
                self.transcript()
            ),
            Err(_) => panic!(
                "no `{last}` line from the child within {within:?}; it wrote:\n{}",
                self.transcript()
            ),
        }
    }

    /// Everything the child wrote so far.
    pub fn transcript(&self) -> String {
        lock(&self.state).transcript.clone()
    }

    /// Sends the signal `name` (`STOP`, `CONT`) with `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status();
        assert!(
            status.is_ok_and(|status| status.success()),
            "kill -{name} {} failed",
            self.pid()
        );
    }

    /// SIGKILL (`Child::kill` on Unix), and waits for the process to end.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the child");
        let status = self.child.wait().expect("the killed child's status");
        assert!(!status.success(), "{status}");
    }

    /// Waits (on a thread, bounded by `within`) for the child to exit; its
    /// success.
    pub async fn wait(&mut self, rt: &Runtime, within: Duration) -> bool {
        let deadline = rt.now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("the child's status") {
                return status.success();
            }
            assert!(
                rt.now() < deadline,
                "the child did not exit within {within:?}; it wrote:\n{}",
                self.transcript()
            );
            rt.sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
