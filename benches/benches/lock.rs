//! awith's Redis lock (`awith_redis::RedisLocks` under `Lock::with`) side by
//! side with what any lock must cost and with a peer, against a
//! `redis-server` of the bench's own.
//!
//! `cargo bench -p awith-benches --bench lock` measures; `ci/bench.sh lock`
//! adds the instruction counts of the uncontended groups. See the
//! `awith_benches` docs for the command line.
//!
//! - `lock-uncontended-tokio` / `-smol`: acquire + release cycles on one key
//!   nobody else wants, each variant on its own key of the same server (see
//!   [`uncontended`]);
//! - `lock-handoff-tokio`: how long a waiting acquire takes to get the lock
//!   once its holder lets it go (see [`handoff`]).
//!
//! The server (see [`server`]) is `redis-server` from `PATH` on a free
//! loopback port (never 6379), without persistence; every group starts its
//! own and kills it when done.
#![forbid(unsafe_code)]
// Printing the results is this bench's job.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

fn main() -> ExitCode {
    awith_benches::main_with_latencies(&[uncontended::TOKIO, uncontended::SMOL], &[handoff::TOKIO])
}

/// A `redis-server` of the bench's own, as awith-redis's tests start theirs.
mod server {
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    /// How long the server may take to answer PING once started.
    const START_DEADLINE: Duration = Duration::from_secs(10);

    /// `redis-server` from `PATH` on a free loopback port, in a temporary
    /// directory, without snapshots or an append-only file; killed (and its
    /// directory removed) when dropped.
    #[derive(Debug)]
    pub(crate) struct RedisServer {
        port: u16,
        dir: PathBuf,
        child: Child,
    }

    impl RedisServer {
        /// Starts one and waits until it answers PING. Panics if it cannot:
        /// a bench without its server has nothing to measure.
        pub(crate) fn start() -> RedisServer {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let dir = std::env::temp_dir().join(format!(
                "awith-bench-redis-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).expect("make the server's directory");
            // Someone may take the port between `free_port` and the
            // server's bind: then try another, a bounded number of times.
            let mut why = String::new();
            for _ in 0..5 {
                match spawn(free_port(), &dir) {
                    Ok(server) => return server,
                    Err(error) => why = error,
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
            panic!(
                "redis-server did not start: {why} (ci/install.sh redis-server:redis-server \
                 installs it)"
            );
        }

        /// `redis://127.0.0.1:PORT`.
        pub(crate) fn url(&self) -> String {
            format!("redis://127.0.0.1:{}", self.port)
        }
    }

    /// A loopback port nothing listened on a moment ago.
    fn free_port() -> u16 {
        loop {
            let listener =
                TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
            let port = listener.local_addr().expect("its address").port();
            if port != 6379 {
                return port;
            }
        }
    }

    fn spawn(port: u16, dir: &PathBuf) -> Result<RedisServer, String> {
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir)
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .args(["--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| format!("could not run it: {error} (is it on PATH?)"))?;
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("it exited: {status} (see {dir:?})"));
            }
            if ping(port) {
                return Ok(RedisServer {
                    port,
                    dir: dir.clone(),
                    child,
                });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no PONG within {START_DEADLINE:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the server on `port` answers PING within a second.
    fn ping(port: u16) -> bool {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(1)) else {
            return false;
        };
        let mut reply = [0u8; 16];
        stream
            .set_read_timeout(Some(Duration::from_secs(1)))
            .is_ok()
            && stream.write_all(b"PING\r\n").is_ok()
            && stream
                .read(&mut reply)
                .is_ok_and(|n| reply[..n].starts_with(b"+PONG"))
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Where a group's work runs: a tokio multi-thread runtime with two workers,
/// or a smol `Executor` run by two threads of its own.
mod host {
    use std::future::Future;

    use awith_benches::SmolWorkers;

    /// The runtime a group runs on, and the awith runtime on it.
    pub(crate) struct Host {
        on: On,
        rt: awith::Runtime,
    }

    enum On {
        Tokio(tokio::runtime::Runtime),
        Smol(SmolWorkers),
    }

    impl Host {
        /// tokio multi-thread, two workers, I/O and timers (redis needs both).
        pub(crate) fn tokio() -> Host {
            let tokio = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a tokio runtime");
            let rt = awith::tokio::from_handle(tokio.handle().clone()).expect("timers enabled");
            Host {
                on: On::Tokio(tokio),
                rt,
            }
        }

        /// A smol `Executor` run by two threads. redis's own tasks (its
        /// connections') run on smol's global executor and the async-io
        /// reactor, as they do for any smol user.
        pub(crate) fn smol() -> Host {
            let workers = SmolWorkers::new();
            let rt = awith::smol::with_executor(&workers.executor);
            Host {
                on: On::Smol(workers),
                rt,
            }
        }

        /// The awith runtime on this host.
        pub(crate) fn rt(&self) -> &awith::Runtime {
            &self.rt
        }

        /// Runs `task` as a task of this host's runtime and waits for it on
        /// the calling thread.
        pub(crate) fn run<T: Send + 'static>(
            &self,
            task: impl Future<Output = T> + Send + 'static,
        ) -> T {
            match &self.on {
                On::Tokio(tokio) => tokio
                    .block_on(tokio.spawn(task))
                    .expect("the task succeeds"),
                On::Smol(workers) => smol::block_on(workers.executor.spawn(task)),
            }
        }

        /// Spawns `task` on this host's runtime; the future it returns ends
        /// with the task.
        pub(crate) fn spawn<T: Send + 'static>(
            &self,
            task: impl Future<Output = T> + Send + 'static,
        ) -> impl Future<Output = T> + Send + 'static {
            let handle: std::pin::Pin<Box<dyn Future<Output = T> + Send>> = match &self.on {
                On::Tokio(tokio) => {
                    let handle = tokio.spawn(task);
                    Box::pin(async move { handle.await.expect("the task succeeds") })
                }
                On::Smol(workers) => Box::pin(workers.executor.spawn(task)),
            };
            handle
        }
    }
}

/// What the groups share: the clients.
mod clients {
    use std::time::Duration;

    use awith::lock::Lock;
    use awith_redis::RedisLocks;
    use redis::aio::ConnectionManager;
    use redis::{Client, IntoConnectionInfo, ProtocolVersion};

    /// Every lock's time to live: long enough that no renewal (every
    /// `ttl / 3`) fires in a cycle, nor in a hand-off.
    pub(crate) const TTL: Duration = Duration::from_secs(10);

    /// The connection awith-redis makes, for the floor: redis's
    /// `ConnectionManager` (a multiplexed connection that reconnects), RESP3.
    pub(crate) async fn connection(url: &str) -> ConnectionManager {
        let info = url.into_connection_info().expect("a redis URL");
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = Client::open(info.set_redis_settings(settings)).expect("a redis client");
        ConnectionManager::new(client)
            .await
            .expect("a connection to the bench's redis-server")
    }

    /// A `RedisLocks` (its own connection and subscription).
    pub(crate) async fn locks(url: &str) -> RedisLocks {
        RedisLocks::connect(url)
            .await
            .expect("RedisLocks connects to the bench's redis-server")
    }

    /// A lock on `key` of `locks`, with [`TTL`], no deadline and the
    /// default backoff (5 ms doubling to 250 ms).
    pub(crate) fn lock(locks: &RedisLocks, key: &str, rt: &awith::Runtime) -> Lock<RedisLocks> {
        Lock::builder(locks.clone(), key)
            .ttl(TTL)
            .build(rt)
            .expect("valid lock settings")
    }
}

/// Acquire + release cycles on a key nobody else wants, one after another
/// in one task:
///
/// - `floor`: two plain `SET`s on one redis connection (the same crate and
///   connection type as awith-redis's): what any acquire + release costs at
///   least, two round trips;
/// - `backend`: `RedisLocks::try_acquire` then `release` by hand, no scope
///   (two `EVALSHA`s: `SET NX PX` + `INCR` of the fence; `GET` + `DEL` +
///   `PUBLISH` to the release channel, which this connection is subscribed
///   to, so the release's message comes back to it);
/// - `awith`: `Lock::with` on `RedisLocks` with an empty body: the backend's
///   two scripts, plus the scope (a waiter registered and dropped, a
///   renewal task spawned and stopped);
/// - `rslock`: rslock's `LockManager::lock` + `unlock` with one server
///   (`SET NX PX`, then an unlock script by `EVALSHA`), its own multiplexed
///   connection.
///
/// Every variant has its own key and the same time to live ([`TTL`]), on the
/// same server. `backend` and `awith` share one `RedisLocks` (one
/// connection, one subscriber to the release channel, as in a process that
/// uses one); `floor` and `rslock` have a connection each.
///
/// [`TTL`]: crate::clients::TTL
mod uncontended {
    use std::convert::Infallible;
    use std::hint::black_box;

    use awith::lock::{Lock, LockBackend, Token};
    use awith_benches::{Bound, Goal, Group, Measure, Runner};
    use awith_redis::RedisLocks;
    use redis::aio::ConnectionManager;
    use rslock::LockManager;

    use crate::clients::{TTL, connection, lock, locks};
    use crate::host::Host;
    use crate::server::RedisServer;

    pub(crate) const TOKIO: Group = Group {
        name: "lock-uncontended-tokio",
        about: "acquire + release of an uncontended Redis lock (empty body), one after \
                another in 1 task, tokio multi-thread (2 workers), loopback redis-server",
        variants: &["floor", "backend", "awith", "rslock"],
        versus: &[("awith", "rslock"), ("awith", "backend")],
        // Each iteration is two round trips to the server.
        callgrind_iterations: 2_000,
        goals: &[
            Goal {
                variant: "awith",
                versus: "floor",
                measure: Measure::Time,
                bound: Bound::AtMost(1.05),
                source: "issue 12",
            },
            Goal {
                variant: "awith",
                versus: "rslock",
                measure: Measure::Throughput,
                bound: Bound::AtLeast(1.0),
                source: "issue 12",
            },
        ],
        setup: || Box::new(Uncontended::new(Host::tokio())),
    };

    pub(crate) const SMOL: Group = Group {
        name: "lock-uncontended-smol",
        about: "acquire + release of an uncontended Redis lock (empty body), one after \
                another in 1 task, smol executor (2 threads), loopback redis-server",
        variants: &["floor", "backend", "awith", "rslock"],
        versus: &[("awith", "rslock"), ("awith", "backend")],
        // Each iteration is two round trips to the server.
        callgrind_iterations: 2_000,
        goals: &[
            Goal {
                variant: "awith",
                versus: "floor",
                measure: Measure::Time,
                bound: Bound::AtMost(1.05),
                source: "issue 12",
            },
            Goal {
                variant: "awith",
                versus: "rslock",
                measure: Measure::Throughput,
                bound: Bound::AtLeast(1.0),
                source: "issue 12",
            },
        ],
        setup: || Box::new(Uncontended::new(Host::smol())),
    };

    /// Variant indices, in the groups' order.
    const FLOOR: usize = 0;
    const BACKEND: usize = 1;
    const AWITH: usize = 2;
    const RSLOCK: usize = 3;

    struct Uncontended {
        floor: ConnectionManager,
        backend: RedisLocks,
        awith: Lock<RedisLocks>,
        rslock: LockManager,
        host: Host,
        /// Declared last: killed after the clients and their runtime are gone.
        _server: RedisServer,
    }

    impl Uncontended {
        fn new(host: Host) -> Self {
            let server = RedisServer::start();
            let url = server.url();
            let (floor, backend, rslock) = host.run(async move {
                let rslock = LockManager::new(vec![url.as_str()]);
                // rslock connects on its first command: connect it here.
                let held = rslock
                    .lock("bench:rslock", TTL)
                    .await
                    .expect("rslock locks");
                rslock.unlock(&held).await;
                (connection(&url).await, locks(&url).await, rslock)
            });
            let awith = lock(&backend, "bench:awith", host.rt());
            Uncontended {
                floor,
                backend,
                awith,
                rslock,
                host,
                _server: server,
            }
        }
    }

    impl Runner for Uncontended {
        fn run(&mut self, variant: usize, iterations: u64) {
            match variant {
                FLOOR => {
                    let mut conn = self.floor.clone();
                    self.host.run(async move {
                        let token = Token::random();
                        for _ in 0..iterations {
                            for _ in 0..2 {
                                let () = redis::cmd("SET")
                                    .arg("bench:floor")
                                    .arg(token.as_str())
                                    .query_async(&mut conn)
                                    .await
                                    .expect("SET succeeds");
                            }
                        }
                    });
                }
                BACKEND => {
                    let locks = self.backend.clone();
                    self.host.run(async move {
                        for _ in 0..iterations {
                            let token = Token::random();
                            let fence = locks
                                .try_acquire("bench:backend", &token, TTL)
                                .await
                                .expect("try_acquire succeeds")
                                .expect("nobody else holds the key");
                            black_box(fence);
                            let released = locks
                                .release("bench:backend", &token)
                                .await
                                .expect("release succeeds");
                            assert!(released, "the token held the key");
                        }
                    });
                }
                AWITH => {
                    let lock = self.awith.clone();
                    self.host.run(async move {
                        for _ in 0..iterations {
                            let fence = lock
                                .with(async |lease| Ok::<_, Infallible>(lease.fence()))
                                .await
                                .expect("the lock is taken and given back");
                            black_box(fence);
                        }
                    });
                }
                RSLOCK => {
                    let rslock = self.rslock.clone();
                    self.host.run(async move {
                        for _ in 0..iterations {
                            let held = rslock
                                .lock("bench:rslock", TTL)
                                .await
                                .expect("nobody else holds the key");
                            rslock.unlock(&held).await;
                            black_box(held);
                        }
                    });
                }
                _ => unreachable!("the uncontended lock groups have four variants"),
            }
        }
    }
}

/// A lock handed from its holder to a waiter: how long from the moment the
/// holder lets go (its body ends, or it is about to send its `DEL`) to the
/// moment the waiter holds the lock (its body starts, or its `SET` answered
/// OK).
///
/// Each sample: a holder takes the lock on its own connection; a waiter, on
/// another connection (as another process would), starts to acquire it;
/// once the waiter waits (registered with its `RedisLocks`, or its first
/// `SET NX` refused), the holder holds on for 1 ms plus a random 0–100 ms
/// (the same sequence for both variants), so that the release falls at any
/// point of the waiter's retry schedule; then it lets go. The two
/// connections swap roles every sample.
///
/// - `polling`: the loop of the Python original: `SET key token NX PX ttl`;
///   if refused, sleep 100 ms and try again; release by `DEL`;
/// - `awith`: `Lock::with` on `RedisLocks`: the release's pub/sub message
///   wakes the waiter; the default backoff (5 ms doubling to 250 ms, with
///   jitter) is the fallback.
mod handoff {
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use awith::lock::{Lock, Token};
    use awith_benches::{Latency, LatencyGoal, Sampler};
    use awith_redis::RedisLocks;
    use redis::aio::ConnectionManager;

    use crate::clients::{TTL, connection, lock, locks};
    use crate::host::Host;
    use crate::server::RedisServer;

    pub(crate) const TOKIO: Latency = Latency {
        name: "lock-handoff-tokio",
        about: "a Redis lock handed from its holder to a waiter on another connection: \
                from the holder letting go to the waiter holding it, tokio multi-thread \
                (2 workers), loopback redis-server",
        variants: &["polling", "awith"],
        samples: 500,
        goals: &[
            LatencyGoal {
                variant: "awith",
                percentile: 50,
                at_most: Duration::from_millis(1),
                source: "issue 12",
            },
            LatencyGoal {
                variant: "awith",
                percentile: 99,
                at_most: Duration::from_millis(5),
                source: "issue 12",
            },
        ],
        setup: || Box::new(Handoff::new(Host::tokio())),
    };

    /// Variant indices, in the group's order.
    const POLLING: usize = 0;
    const AWITH: usize = 1;

    /// The polling loop's pause between two tries.
    const POLL_EVERY: Duration = Duration::from_millis(100);

    struct Handoff {
        /// Two connections for the polling loop.
        polling: [ConnectionManager; 2],
        /// Two `RedisLocks` (each its own connection and subscription), and
        /// a lock on the same key of each.
        locks: [RedisLocks; 2],
        awith: [Lock<RedisLocks>; 2],
        /// Which connection holds first in the next sample.
        turn: usize,
        /// The holds' random part, the same sequence for every variant.
        holds: [Random; 2],
        host: Host,
        /// Declared last: killed after the clients and their runtime are gone.
        _server: RedisServer,
    }

    impl Handoff {
        fn new(host: Host) -> Self {
            let server = RedisServer::start();
            let url = server.url();
            let (polling, locks) = host.run(async move {
                (
                    [connection(&url).await, connection(&url).await],
                    [locks(&url).await, locks(&url).await],
                )
            });
            let awith = [
                lock(&locks[0], "bench:handoff", host.rt()),
                lock(&locks[1], "bench:handoff", host.rt()),
            ];
            Handoff {
                polling,
                locks,
                awith,
                turn: 0,
                holds: [Random::new(), Random::new()],
                host,
                _server: server,
            }
        }

        /// How long the next holder of `variant` holds on once its waiter
        /// waits.
        fn hold(&mut self, variant: usize) -> Duration {
            let random = self.holds[variant].next() % 100_000;
            Duration::from_millis(1) + Duration::from_micros(random)
        }

        fn polling(&mut self, hold: Duration) -> Duration {
            let (holder, waiter) = (
                self.polling[self.turn].clone(),
                self.polling[1 - self.turn].clone(),
            );
            let waiting = Arc::new(AtomicBool::new(false));
            let (rt, waiter_rt) = (self.host.rt().clone(), self.host.rt().clone());
            let (held_tx, held_rx) = smol::channel::bounded::<()>(1);
            let holder = self.host.spawn({
                let waiting = Arc::clone(&waiting);
                async move {
                    let mut conn = holder;
                    let token = Token::random();
                    assert!(
                        try_set(&mut conn, &token).await,
                        "the key is free when a sample starts"
                    );
                    let _ = held_tx.send(()).await;
                    while !waiting.load(Ordering::Acquire) {
                        rt.sleep(Duration::from_micros(100)).await;
                    }
                    rt.sleep(hold).await;
                    let released = Instant::now();
                    let () = redis::cmd("DEL")
                        .arg("bench:polling")
                        .query_async(&mut conn)
                        .await
                        .expect("DEL succeeds");
                    released
                }
            });
            let waiter = self.host.spawn(async move {
                let mut conn = waiter;
                let token = Token::random();
                held_rx.recv().await.expect("the holder holds");
                loop {
                    if try_set(&mut conn, &token).await {
                        break Instant::now();
                    }
                    waiting.store(true, Ordering::Release);
                    waiter_rt.sleep(POLL_EVERY).await;
                }
            });
            let (released, acquired) = self.host.run(async move {
                let acquired = waiter.await;
                (holder.await, acquired)
            });
            // The next sample's holder takes the key: give it back.
            let mut conn = self.polling[1 - self.turn].clone();
            self.host.run(async move {
                let () = redis::cmd("DEL")
                    .arg("bench:polling")
                    .query_async(&mut conn)
                    .await
                    .expect("DEL succeeds");
            });
            acquired.saturating_duration_since(released)
        }

        fn awith(&mut self, hold: Duration) -> Duration {
            let (holder, waiter) = (
                self.awith[self.turn].clone(),
                self.awith[1 - self.turn].clone(),
            );
            let waiters = self.locks[1 - self.turn].clone();
            let rt = self.host.rt().clone();
            let (held_tx, held_rx) = smol::channel::bounded::<()>(1);
            let holder = self.host.spawn(async move {
                holder
                    .with(async |_lease| {
                        let _ = held_tx.send(()).await;
                        // The waiter registers before its first try.
                        while waiters.waiters("bench:handoff") == 0 {
                            rt.sleep(Duration::from_micros(100)).await;
                        }
                        rt.sleep(hold).await;
                        Ok::<_, Infallible>(Instant::now())
                    })
                    .await
                    .expect("the holder takes and gives back the lock")
            });
            let waiter = self.host.spawn(async move {
                held_rx.recv().await.expect("the holder holds");
                waiter
                    .with(async |_lease| Ok::<_, Infallible>(Instant::now()))
                    .await
                    .expect("the waiter takes the lock")
            });
            let (released, acquired) = self.host.run(async move {
                let acquired = waiter.await;
                (holder.await, acquired)
            });
            acquired.saturating_duration_since(released)
        }
    }

    impl Sampler for Handoff {
        fn sample(&mut self, variant: usize, samples: usize) -> Vec<Duration> {
            (0..samples)
                .map(|_| {
                    let hold = self.hold(variant);
                    let latency = match variant {
                        POLLING => self.polling(hold),
                        AWITH => self.awith(hold),
                        _ => unreachable!("the hand-off group has two variants"),
                    };
                    self.turn = 1 - self.turn;
                    latency
                })
                .collect()
        }
    }

    /// `SET bench:polling token NX PX ttl`: whether it set the key.
    async fn try_set(conn: &mut ConnectionManager, token: &Token) -> bool {
        let set: Option<String> = redis::cmd("SET")
            .arg("bench:polling")
            .arg(token.as_str())
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(TTL.as_millis()).expect("a small TTL"))
            .query_async(conn)
            .await
            .expect("SET NX succeeds");
        set.is_some()
    }

    /// xorshift64*: a fixed sequence, so every run and variant holds alike.
    struct Random(u64);

    impl Random {
        fn new() -> Self {
            Random(0x9e37_79b9_7f4a_7c15)
        }

        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }
}
