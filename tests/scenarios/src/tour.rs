//! The tour: the same scenarios on whichever runtime runs it.
//!
//! An in-process database server hands out connections; each connection is
//! a [`Resource`] whose acquire (the handshake) and release (the goodbye) take
//! real time on the runtime's timer. The server counts open connections, and
//! a [`Ledger`] records every release, so the tour can tell — and exit
//! non-zero — if any release was missed or ran twice.
//!
//! 1. a scope that succeeds: acquire → query → release (`completed`);
//! 2. an error the release suppresses, like `contextlib.suppress(KeyError)`:
//!    a cache miss, swallowed by the cache session's release;
//! 3. a body that panics: the release runs (`panicked`), then the panic
//!    resumes;
//! 4. a scope cancelled mid-body: its future is dropped at a deadline, the
//!    release runs as a runtime cleanup (`cancelled (dropped)`), and draining
//!    the runtime waits for it;
//! 5. a pool-like resource, and inside it an exit stack with a connection per
//!    item, entered in a loop; one item's connection is refused: the
//!    connections held are released in reverse order, then the pool;
//! 6. a job manager entered once, three items processed concurrently inside
//!    it with [`gather()`] — results in order, the manager
//!    released last;
//! 7. the same with a [`TaskGroup`]: the children run on the runtime (in
//!    parallel where it has several threads); item 2 fails, items 1 and 3 are
//!    cancelled (`cancelled (sibling failed)`) and release their
//!    connections; the manager's release comes last and sees `failed`;
//! 8. a connection pool entered as a scope: queries check connections out
//!    (three at once on two connections: one waits its turn), one query is
//!    cancelled mid-way — its connection is destroyed, not reused — and the
//!    pool is closed at the end, its metrics printed;
//! 9. the source's distributed lock: workers contend for one lock and update
//!    a ledger under it, in-process or on Redis (`--redis URL`); the
//!    hand-offs and the growing fencing tokens are printed (see
//!    [`locks`](crate::locks));
//! 10. the source's `transfer_funds` on a real database — SQLite in a
//!     temporary file, or PostgreSQL (`--postgres URL`): a connection from
//!     a pool, a transaction on it; transfers commit, one is refused by the
//!     database's `CHECK (balance >= 0)` and rolls back, one is cancelled
//!     between its debit and its credit and rolls back before its
//!     connection is used again; the balances before and after are
//!     printed, and the total must not change (see
//!     [`transactions`](crate::transactions)).

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use awith::group::{GroupError, TaskGroup};
use awith::pool::{Manager, ObjectMetrics, Pool, Status};
use awith::rt::{CleanupStats, Incident, SpawnError};
use awith::stack::ExitStack;
use awith::{
    Exit, ExitKind, Failure, Resource, ResourceExt, Runtime, ScopeError, Verdict, gather, resource,
    resource_inspecting,
};
use futures::FutureExt;

use crate::timeline::{Ledger, Timeline};

/// The start of the message of every panic the tour provokes on purpose
/// (scenario 3's body): the tour's panic hook prints those as a timeline line
/// and leaves any other panic — a bug — to the default hook.
pub const PROVOKED: &str = "tour: provoked: ";

/// How long a handshake takes.
const HANDSHAKE: Duration = Duration::from_millis(5);
/// How long a goodbye takes.
const GOODBYE: Duration = Duration::from_millis(2);
/// The deadline after which the tour cancels scenario 4.
const DEADLINE: Duration = Duration::from_millis(50);
/// How long items 1, 2 and 3 of scenarios 6 and 7 work: item 2 ends first,
/// long before the others (in scenario 7 they must still be working when it
/// fails, even on a loaded machine).
const ITEM_WORK: [Duration; 3] = [
    Duration::from_millis(120),
    Duration::from_millis(10),
    Duration::from_millis(80),
];

/// An in-process database server that counts its open connections.
#[derive(Debug, Default)]
pub struct Server {
    open: AtomicUsize,
    next_id: AtomicU64,
}

impl Server {
    /// Connections currently open.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

/// A connection to the [`Server`].
#[derive(Debug)]
pub struct Connection {
    /// `conn#N`.
    pub name: String,
}

impl Connection {
    /// Runs a query (a short wait on the runtime's timer).
    pub async fn query(&self, rt: &Runtime, sql: &str, timeline: &Timeline) -> usize {
        timeline.event("body", format!("{} runs {sql}", self.name));
        rt.sleep(Duration::from_millis(1)).await;
        1
    }
}

/// What a scenario needs: the runtime, the server, the timeline, the ledger.
#[derive(Clone, Debug)]
pub struct World {
    /// The runtime under the tour.
    pub rt: Runtime,
    /// The database server.
    pub server: Arc<Server>,
    /// Where events are printed.
    pub timeline: Arc<Timeline>,
    /// Which resources were released, and how.
    pub ledger: Arc<Ledger>,
}

impl World {
    async fn connect(&self) -> Connection {
        let id = self.server.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        let name = format!("conn#{id}");
        self.timeline
            .event("acquire", format!("{name}: handshake with the server"));
        self.rt.sleep(HANDSHAKE).await;
        self.server.open.fetch_add(1, Ordering::SeqCst);
        self.ledger.acquired(&name);
        self.timeline.event("acquire", format!("{name}: open"));
        Connection { name }
    }

    async fn close(&self, conn: Connection, exit: ExitKind) {
        self.timeline.event(
            "release",
            format!("{}: told the scope {exit}; saying goodbye", conn.name),
        );
        self.rt.sleep(GOODBYE).await;
        self.server.open.fetch_sub(1, Ordering::SeqCst);
        self.ledger.released(&conn.name, exit);
        self.timeline
            .event("release", format!("{}: closed", conn.name));
    }
}

/// A connection as a [`Resource`]: works with a body of any error type.
#[derive(Debug)]
pub struct Connect(pub World);

impl<E> Resource<E> for Connect {
    type Value = Connection;
    type Error = std::io::Error;
    type Releaser = World;

    fn acquire(
        self,
        _rt: &Runtime,
    ) -> impl Future<Output = Result<(Connection, World), Failure<std::io::Error>>> + Send + 'static
    {
        let world = self.0;
        async move { Ok((world.connect().await, world)) }
    }

    fn release(
        world: World,
        conn: Connection,
        exit: &Exit<'_, E>,
        _rt: &Runtime,
    ) -> impl Future<Output = Result<Verdict, Failure<std::io::Error>>> + Send + 'static {
        let exit = exit.kind();
        async move {
            world.close(conn, exit).await;
            Ok(Verdict::Propagate)
        }
    }
}

/// The error of a batch of items on an exit stack.
#[derive(Debug)]
pub enum BatchError {
    /// An item's connection could not be made.
    Connect(Failure<std::io::Error>),
}

impl From<Failure<std::io::Error>> for BatchError {
    fn from(failure: Failure<std::io::Error>) -> Self {
        BatchError::Connect(failure)
    }
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::Connect(failure) => write!(f, "connecting failed: {failure}"),
        }
    }
}

/// Scenario 5: a pool-like outer resource; inside it, an exit stack with a
/// connection per item, entered in a loop; the connection of item `refused`
/// cannot be made, so the body fails, the stack releases the connections it
/// holds in reverse order, and then the pool is released.
pub async fn batch(
    world: &World,
    items: u32,
    refused: u32,
) -> Result<(), ScopeError<ScopeError<BatchError, BatchError>, std::io::Error>> {
    let pool = service(world, "pool");
    pool.with(&world.rt, async |_| {
        ExitStack::<BatchError>::with(&world.rt, async |stack| {
            for item in 1..=items {
                let key = stack
                    .enter(ItemConnect {
                        world: world.clone(),
                        item,
                        refused,
                    })
                    .await?;
                stack[key]
                    .query(&world.rt, &format!("UPDATE item {item}"), &world.timeline)
                    .await;
            }
            Ok(())
        })
        .await
    })
    .await
}

/// A named service (a pool, a job manager) as a [`Resource`]: opened once,
/// closed when its scope ends, told how. Works with a body of any error type.
pub fn service<E>(
    world: &World,
    name: &'static str,
) -> impl Resource<E, Value = (), Error = std::io::Error> + use<E> {
    let (opener, closer) = (world.clone(), world.clone());
    resource(
        move || async move {
            opener.timeline.event("acquire", format!("{name}: opening"));
            opener.rt.sleep(HANDSHAKE).await;
            opener.ledger.acquired(name);
            opener.timeline.event("acquire", format!("{name}: open"));
            Ok::<_, std::io::Error>(())
        },
        move |(), exit| async move {
            closer.timeline.event(
                "release",
                format!("{name}: told the scope {exit}; shutting down"),
            );
            closer.rt.sleep(GOODBYE).await;
            closer.ledger.released(name, exit);
            closer.timeline.event("release", format!("{name}: closed"));
            Ok(())
        },
    )
}

/// Why an item of scenarios 6 and 7 failed.
#[derive(Debug)]
pub enum ItemError {
    /// The item's record is invalid.
    Invalid(u32),
    /// The item's connection failed to open or close.
    Connection(String),
    /// The item's task could not be spawned.
    Spawn(SpawnError),
}

impl std::fmt::Display for ItemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ItemError::Invalid(item) => write!(f, "item {item}: invalid record"),
            ItemError::Connection(error) => write!(f, "item connection: {error}"),
            ItemError::Spawn(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for ItemError {}

/// Processes item `item` (1 to 3) on a connection of its own, working for
/// its time of work (item 2 the shortest); the item `invalid` fails at the end of its work.
pub async fn process(world: World, item: u32, invalid: Option<u32>) -> Result<String, ItemError> {
    let work = ITEM_WORK[(item as usize - 1) % ITEM_WORK.len()];
    let outcome = Connect(world.clone())
        .with(&world.rt, async |conn| {
            world.timeline.event(
                "body",
                format!("item {item} on {}: working for {work:?}", conn.name),
            );
            world.rt.sleep(work).await;
            if invalid == Some(item) {
                world
                    .timeline
                    .event("body", format!("item {item}: invalid record, fails"));
                return Err(ItemError::Invalid(item));
            }
            world.timeline.event("body", format!("item {item}: done"));
            Ok(format!("item {item} ok"))
        })
        .await;
    outcome.map_err(|error| match error {
        ScopeError::Body {
            error,
            release: None,
        } => error,
        other => ItemError::Connection(other.to_string()),
    })
}

/// Scenario 6: a job manager entered once; inside it, the three items at
/// once with [`gather()`] on the current task. Their results come in order.
pub async fn gathered(world: &World) -> Result<Vec<String>, ScopeError<ItemError, std::io::Error>> {
    service(world, "manager (gather)")
        .with(&world.rt, async |_| {
            gather((1..=3).map(|item| process(world.clone(), item, None))).await
        })
        .await
}

/// Scenario 7: a job manager entered once; inside it, a [`TaskGroup`] with
/// a child per item. Item `invalid` fails; fail-fast cancels the others,
/// which release their connections; the group ends after all of them, and
/// only then is the manager released — told that its body failed.
pub async fn grouped(
    world: &World,
    invalid: u32,
) -> Result<(), ScopeError<GroupError<ItemError>, std::io::Error>> {
    service(world, "manager (group)")
        .with(&world.rt, async |_| {
            TaskGroup::with(&world.rt, async |group: &TaskGroup<ItemError>| {
                for item in 1..=3 {
                    group
                        .spawn(process(world.clone(), item, Some(invalid)))
                        .map_err(ItemError::Spawn)?;
                }
                Ok(())
            })
            .await
        })
        .await
}

/// The connections of scenario 8's pool: made and closed through the
/// [`World`], so the ledger sees each one's end.
#[derive(Debug)]
pub struct DbManager {
    world: World,
    /// How the scope of a connection that is not reused ended.
    cut_off: Mutex<HashMap<String, ExitKind>>,
}

impl Manager for DbManager {
    type Object = Connection;
    type Error = std::io::Error;

    async fn create(&self) -> Result<Connection, std::io::Error> {
        Ok(self.world.connect().await)
    }

    async fn recycle(&self, conn: &mut Connection, metrics: &ObjectMetrics) -> std::io::Result<()> {
        self.world.timeline.event(
            "pool",
            format!(
                "{}: recycled (a ping) before its reuse #{}",
                conn.name,
                metrics.recycled + 1
            ),
        );
        Ok(())
    }

    async fn reset(&self, conn: &mut Connection, exit: ExitKind) -> bool {
        self.world.timeline.event(
            "pool",
            format!(
                "{}: its scope ended {exit}, mid-query: not reusable",
                conn.name
            ),
        );
        lock(&self.cut_off).insert(conn.name.clone(), exit);
        false
    }

    async fn destroy(&self, conn: Connection) {
        let exit = lock(&self.cut_off)
            .remove(&conn.name)
            .unwrap_or(ExitKind::Completed);
        self.world.close(conn, exit).await;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn io_error(error: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(error.to_string())
}

/// Scenario 8: a pool of two connections entered as a scope; three queries
/// at once (one waits for a connection to come back), one query cancelled
/// at a deadline (its connection destroyed), one more query, then the
/// pool's release closes it. What the pool's status said before closing.
pub async fn pooled(world: &World) -> Result<Status, ScopeError<std::io::Error, std::io::Error>> {
    let manager = DbManager {
        world: world.clone(),
        cut_off: Mutex::new(HashMap::new()),
    };
    let (opener, closer) = (world.clone(), world.clone());
    let pool_scope = resource(
        move || async move {
            opener
                .timeline
                .event("acquire", "db pool: opening (at most 2 connections)");
            let pool = Pool::builder(manager)
                .max_size(2)
                .wait_timeout(Duration::from_secs(5))
                .build(&opener.rt)
                .map_err(io_error)?;
            opener.ledger.acquired("db pool");
            Ok::<_, std::io::Error>(pool)
        },
        move |pool: Pool<DbManager>, exit| async move {
            closer.timeline.event(
                "release",
                format!("db pool: told the scope {exit}; closing"),
            );
            let closed = pool.close(Duration::from_secs(5)).await;
            let s = pool.status();
            closer.timeline.event(
                "release",
                format!(
                    "db pool: closed — {} created, {} destroyed, {} recycled, \
                     size {}, idle {}, in use {}, waiting {}",
                    s.created, s.destroyed, s.recycled, s.size, s.idle, s.in_use, s.waiting
                ),
            );
            closer.ledger.released("db pool", exit);
            closed.map_err(io_error)
        },
    );
    pool_scope
        .with(&world.rt, async |pool| {
            let query = |sql: String| {
                let pool = &*pool;
                async move {
                    pool.with(async |conn| {
                        world
                            .timeline
                            .event("body", format!("{} checked out for {sql}", conn.name));
                        Ok::<_, std::io::Error>(conn.query(&world.rt, &sql, &world.timeline).await)
                    })
                    .await
                    .map_err(io_error)
                }
            };
            let rows = gather((1..=3).map(|n| query(format!("SELECT {n}")))).await?;
            world.timeline.event(
                "tour",
                format!(
                    "three queries on two connections: {} rows",
                    rows.iter().sum::<usize>()
                ),
            );
            let report = world.rt.timeout(
                DEADLINE,
                pool.with(async |conn| {
                    world
                        .timeline
                        .event("body", format!("{} starts a 10 s report query", conn.name));
                    world.rt.sleep(Duration::from_secs(10)).await;
                    Ok::<_, std::io::Error>(())
                }),
            );
            if report.await.is_ok() {
                return Err(io_error("the report query should have been cancelled"));
            }
            world
                .timeline
                .event("tour", "deadline: the report query's scope was dropped");
            query("SELECT 4".to_owned()).await?;
            // The cancelled query's release ran as a runtime cleanup.
            world
                .rt
                .drain(Duration::from_secs(10))
                .await
                .map_err(io_error)?;
            Ok(pool.status())
        })
        .await
}

/// A connection for one item of a batch: the server refuses one of them.
#[derive(Debug)]
pub struct ItemConnect {
    world: World,
    item: u32,
    refused: u32,
}

impl<E> Resource<E> for ItemConnect {
    type Value = Connection;
    type Error = std::io::Error;
    type Releaser = World;

    fn acquire(
        self,
        rt: &Runtime,
    ) -> impl Future<Output = Result<(Connection, World), Failure<std::io::Error>>> + Send + 'static
    {
        let connect = <Connect as Resource<E>>::acquire(Connect(self.world.clone()), rt);
        let ItemConnect {
            world,
            item,
            refused,
        } = self;
        async move {
            if item == refused {
                world
                    .timeline
                    .event("acquire", format!("item {item}: the server refuses"));
                world.rt.sleep(HANDSHAKE).await;
                return Err(Failure::Error(std::io::Error::other(format!(
                    "server refused item {item}"
                ))));
            }
            connect.await
        }
    }

    fn release(
        world: World,
        conn: Connection,
        exit: &Exit<'_, E>,
        rt: &Runtime,
    ) -> impl Future<Output = Result<Verdict, Failure<std::io::Error>>> + Send + 'static {
        <Connect as Resource<E>>::release(world, conn, exit, rt)
    }
}

/// A cache lookup's error.
#[derive(Debug, PartialEq, Eq)]
pub enum CacheError {
    /// The key is not cached.
    Miss(String),
    /// The cache is broken.
    Corrupt,
}

impl std::fmt::Display for CacheError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheError::Miss(key) => write!(f, "cache miss for {key:?}"),
            CacheError::Corrupt => f.write_str("cache corrupt"),
        }
    }
}

/// What the tour saw.
#[derive(Debug)]
pub struct Report {
    /// Scopes run.
    pub scopes: usize,
    /// `Ok(n)`: n resources, each released exactly once; `Err`: which not.
    pub releases: Result<usize, String>,
    /// The exit each resource's release saw.
    pub exits: Vec<(String, Vec<ExitKind>)>,
    /// Connections still open at the end (must be 0).
    pub open_connections: usize,
    /// The runtime's cleanup counters after draining.
    pub cleanup: CleanupStats,
    /// Incidents the runtime reported.
    pub incidents: Vec<Incident>,
    /// Scenarios whose outcome was not the expected one.
    pub surprises: Vec<String>,
}

impl Report {
    /// Every release ran exactly once, nothing leaked, nothing surprised.
    pub fn ok(&self) -> bool {
        self.releases.is_ok()
            && self.open_connections == 0
            && self.cleanup.pending == 0
            && self.incidents.is_empty()
            && self.surprises.is_empty()
    }
}

/// Runs the tour on the runtime this code runs on (found by
/// [`awith::builder`]), printing to `timeline`.
///
/// # Errors
///
/// When no awith runtime can be made here.
pub async fn run(timeline: Arc<Timeline>) -> Result<Report, String> {
    run_with(timeline, Options::default()).await
}

/// What the tour can be asked to do differently.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Scenario 9 on the Redis server at this URL, not in-process.
    pub redis: Option<String>,
    /// Scenario 10 on the PostgreSQL server at this URL, not on SQLite.
    pub postgres: Option<String>,
}

/// [`run`], with `options`.
///
/// # Errors
///
/// When no awith runtime can be made here.
pub async fn run_with(timeline: Arc<Timeline>, options: Options) -> Result<Report, String> {
    let incidents = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&incidents);
    let hook_timeline = Arc::clone(&timeline);
    let rt = awith::builder()
        .map_err(|e| e.to_string())?
        .cleanup_timeout(Duration::from_secs(10))
        .on_incident(move |incident: &Incident| {
            hook_timeline.note(format!("INCIDENT: {incident}"));
            seen.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(incident.clone());
        })
        .build()
        .map_err(|e| e.to_string())?;
    let world = World {
        rt,
        server: Arc::new(Server::default()),
        timeline,
        ledger: Arc::new(Ledger::new()),
    };
    let mut surprises = Vec::new();
    let mut check = |scenario: &str, ok: bool, what: String| {
        // The scenario's one-line verdict.
        let verdict = if ok { "as expected" } else { "BROKEN" };
        world.timeline.note(format!("result: {what} — {verdict}"));
        if !ok {
            surprises.push(format!("{scenario}: {what}"));
        }
    };

    world.timeline.heading(&format!(
        "1. a scope that succeeds (runtime: {})",
        world.rt.name()
    ));
    let rows = Connect(world.clone())
        .with(&world.rt, async |conn| {
            Ok::<_, std::io::Error>(conn.query(&world.rt, "SELECT 1", &world.timeline).await)
        })
        .await;
    check(
        "1",
        matches!(rows, Ok(1)),
        format!("{rows:?} — the release saw `completed`"),
    );

    world
        .timeline
        .heading("2. an error the release suppresses (like `contextlib.suppress(KeyError)`)");
    let session = {
        let acquire_world = world.clone();
        let release_world = world.clone();
        resource_inspecting(
            move || {
                let world = acquire_world.clone();
                async move { Ok::<_, std::io::Error>(world.connect().await) }
            },
            move |conn, exit: &Exit<'_, CacheError>| {
                let verdict = match exit {
                    Exit::Failed(CacheError::Miss(_)) => Verdict::Suppress,
                    _ => Verdict::Propagate,
                };
                if let Exit::Failed(error) = exit {
                    release_world
                        .timeline
                        .event("release", format!("sees {error}: {verdict:?}"));
                }
                let exit = exit.kind();
                async move {
                    release_world.close(conn, exit).await;
                    Ok(verdict)
                }
            },
        )
    };
    let cached = session
        .with_suppression(&world.rt, async |conn| {
            world
                .timeline
                .event("body", format!("{} looks up \"user:42\"", conn.name));
            world.rt.sleep(Duration::from_millis(1)).await;
            Err::<String, _>(CacheError::Miss("user:42".into()))
        })
        .await;
    check(
        "2",
        matches!(cached, Ok(None)),
        format!("{cached:?} — the miss was suppressed: `with_suppression` returned Ok(None)"),
    );

    world
        .timeline
        .heading("3. a body that panics: release first, then the panic resumes");
    let panicked = AssertUnwindSafe(Connect(world.clone()).with(
        &world.rt,
        async |conn| -> Result<usize, std::io::Error> {
            conn.query(&world.rt, "SELECT broken", &world.timeline)
                .await;
            world
                .timeline
                .event("body", "panics: \"query planner bug\"");
            panic!("{PROVOKED}query planner bug")
        },
    ))
    .catch_unwind()
    .await;
    let message = panicked
        .as_ref()
        .err()
        .and_then(|p| crate::cli::provoked_message(&**p));
    check(
        "3",
        message == Some("query planner bug"),
        format!("the panic resumed after the release: {message:?}"),
    );

    world.timeline.heading(&format!(
        "4. a scope cancelled mid-body (its future is dropped after {DEADLINE:?})"
    ));
    let report_query = Connect(world.clone()).with(&world.rt, async |conn| {
        world
            .timeline
            .event("body", format!("{} starts a 10 s report query", conn.name));
        world.rt.sleep(Duration::from_secs(10)).await;
        Ok::<_, std::io::Error>(())
    });
    let finished = futures::select_biased! {
        result = report_query.fuse() => Some(result),
        () = world.rt.sleep(DEADLINE).fuse() => None,
    };
    world
        .timeline
        .event("tour", "deadline: the scope's future was dropped");
    let drained = world.rt.drain(Duration::from_secs(10)).await;
    let drained_stats = match &drained {
        Ok(stats) | Err(awith::rt::DrainError { stats, .. }) => *stats,
    };
    world.timeline.event(
        "tour",
        format!(
            "drained: {} cleanup(s) handed to the runtime, {} completed",
            drained_stats.spawned, drained_stats.completed
        ),
    );
    check(
        "4",
        finished.is_none()
            && drained.is_ok()
            && drained_stats.spawned == 1
            && drained_stats.completed == 1,
        "the release ran as a runtime cleanup, told `cancelled (dropped)`".into(),
    );

    world
        .timeline
        .heading("5. a pool, then a connection per item on an exit stack; item 3 is refused");
    let batch = batch(&world, 4, 3).await;
    check(
        "5",
        matches!(
            &batch,
            Err(ScopeError::Body {
                error: ScopeError::Body {
                    error: BatchError::Connect(_),
                    release: None
                },
                release: None
            })
        ),
        match &batch {
            Ok(()) => "Ok(()) — but item 3 should have been refused".to_owned(),
            Err(error) => format!(
                "Err(\"{error}\") — the connections entered were released in reverse order, \
                 then the pool"
            ),
        },
    );

    world
        .timeline
        .heading("6. a job manager entered once; three items at once inside it, with `gather`");
    let results = gathered(&world).await;
    check(
        "6",
        matches!(&results, Ok(done) if done == &["item 1 ok", "item 2 ok", "item 3 ok"]),
        format!("{results:?} — in item order, whatever order they finished in"),
    );

    world.timeline.heading(
        "7. the same with a `TaskGroup`: item 2 fails, items 1 and 3 are cancelled; \
         the manager is released last",
    );
    let grouped = grouped(&world, 2).await;
    check(
        "7",
        matches!(
            &grouped,
            Err(ScopeError::Body { error, release: None })
                if matches!(error.errors[..], [ItemError::Invalid(2)])
        ),
        match &grouped {
            Ok(()) => "Ok(()) — but item 2 should have failed".to_owned(),
            Err(error) => format!(
                "Err(\"{}\") — the group ended after every child; then the manager",
                error
                    .body_error()
                    .map_or_else(|| error.to_string(), ToString::to_string)
            ),
        },
    );

    world.timeline.heading(
        "8. a connection pool entered as a scope; a query cancelled mid-way; the pool closed",
    );
    let pooled = pooled(&world).await;
    check(
        "8",
        matches!(&pooled, Ok(status) if status.created == 2 && status.destroyed == 1),
        match &pooled {
            Ok(status) => format!(
                "Ok — before closing: {} connections made for 5 queries, the cancelled \
                 query's destroyed ({status:?})",
                status.created
            ),
            Err(error) => format!("Err(\"{error}\")"),
        },
    );

    world.timeline.heading(&format!(
        "9. workers contend for a lock ({}); each turn updates a ledger non-atomically",
        options
            .redis
            .as_deref()
            .map_or_else(|| "in-process".to_owned(), |url| format!("Redis at {url}"))
    ));
    let contended = crate::locks::contend(&world, options.redis.as_deref()).await;
    check(
        "9",
        matches!(&contended, Ok(seen) if seen.ok()),
        match &contended {
            Ok(seen) => format!(
                "count {} of {} (exact: the lock excluded); fencing tokens {:?}",
                seen.count,
                crate::locks::WORKERS * crate::locks::TURNS,
                seen.fences
            ),
            Err(error) => format!("Err(\"{error}\")"),
        },
    );

    world.timeline.heading(&format!(
        "10. the source's `transfer_funds`: pool → conn → conn.transaction() ({})",
        crate::transactions::database(options.postgres.as_deref())
    ));
    let bank = crate::transactions::transfer_funds(&world, options.postgres.as_deref()).await;
    check(
        "10",
        matches!(&bank, Ok(seen) if seen.ok()),
        match &bank {
            Ok(seen) => seen.verdict(),
            Err(error) => format!("Err(\"{error}\")"),
        },
    );

    let cleanup = world
        .rt
        .drain(Duration::from_secs(10))
        .await
        .unwrap_or_else(|error| error.stats);

    let report = Report {
        scopes: 10,
        releases: world.ledger.check(),
        exits: world.ledger.exits(),
        open_connections: world.server.open_connections(),
        cleanup,
        incidents: incidents
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone(),
        surprises,
    };
    world.timeline.heading("summary");
    for (name, exits) in &report.exits {
        let exits: Vec<String> = exits.iter().map(ToString::to_string).collect();
        world.timeline.note(format!(
            "{name}: released {}× ({})",
            exits.len(),
            exits.join(", ")
        ));
    }
    world.timeline.note(match &report.releases {
        Ok(n) => format!("{n} resources acquired, each released exactly once"),
        Err(wrong) => format!("MISSED OR REPEATED RELEASES:\n{wrong}"),
    });
    world.timeline.note(format!(
        "open connections: {}; incidents: {}; unexpected outcomes: {}",
        report.open_connections,
        report.incidents.len(),
        report.surprises.len()
    ));
    Ok(report)
}
