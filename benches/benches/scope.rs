//! awith's scopes side by side with the hand-written code they replace.
//!
//! `cargo bench -p awith-benches --bench scope` compares the groups in time;
//! `ci/bench.sh` adds the instruction counts. See the `awith_benches` docs for
//! the command line.
//!
//! The scope groups use the same resource (see [`shared`]): an acquire and a
//! release that each yield to the runtime once, on a tokio current-thread
//! runtime. The `runtime-*` groups (see [`runtimes`]) put the four runtimes
//! side by side.
#![forbid(unsafe_code)]
// Printing the results is this bench's job.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

fn main() -> ExitCode {
    awith_benches::main(&[
        scope::GROUP,
        nested::GROUP,
        stack::GROUP,
        children::TOKIO,
        children::SMOL,
        children::ASYNC_STD,
        pool::CONTENDED_TOKIO,
        pool::CONTENDED_SMOL,
        pool::UNCONTENDED_TOKIO,
        pool::UNCONTENDED_SMOL,
        runtimes::SPAWN,
        runtimes::SCOPE,
    ])
}

/// What every group shares: the runtimes, and the resource logic.
mod shared {
    use std::hint::black_box;
    use std::io;

    use awith::{Resource, resource};

    /// A tokio current-thread runtime and the awith runtime on it.
    pub(crate) struct Runtimes {
        pub(crate) tokio: tokio::runtime::Runtime,
        pub(crate) rt: awith::Runtime,
    }

    pub(crate) fn runtimes() -> Runtimes {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a tokio current-thread runtime can be built");
        let rt = tokio
            .block_on(async { awith::tokio::runtime() })
            .expect("awith::tokio::runtime() works inside a tokio runtime with timers");
        Runtimes { tokio, rt }
    }

    /// A tokio multi-thread runtime with two workers.
    pub(crate) fn tokio_multi_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .expect("a tokio runtime")
    }

    pub(crate) async fn acquire() -> io::Result<u64> {
        tokio::task::yield_now().await;
        Ok(black_box(0))
    }

    /// The trivial work a body does with one value.
    pub(crate) fn touch(value: &mut u64) -> u64 {
        *value = black_box(*value) + 1;
        *value
    }

    pub(crate) async fn body(value: &mut u64) -> io::Result<u64> {
        Ok(touch(value))
    }

    pub(crate) async fn release(value: u64) -> io::Result<()> {
        tokio::task::yield_now().await;
        black_box(value);
        Ok(())
    }

    /// [`acquire`] and [`release`] as an awith resource, for a body (or a
    /// stack) failing with `E`.
    pub(crate) fn counter<E>() -> impl Resource<E, Value = u64, Error = io::Error> {
        resource(acquire, |value, _exit| release(value))
    }
}

/// One scope, the simplest case: what `with` costs over writing the three
/// steps by hand.
mod scope {
    use std::hint::black_box;
    use std::io;

    use awith::{ResourceExt, ScopeError};
    use awith_benches::{Bound, Goal, Group, Measure, Runner};

    use crate::shared::{Runtimes, acquire, body, counter, release, runtimes};

    /// Variant indices, in [`GROUP`]'s order.
    const HAND_WRITTEN: usize = 0;
    const AWITH: usize = 1;

    pub(crate) const GROUP: Group = Group {
        name: "scope",
        about: "acquire (1 yield) -> body (+1 on &mut u64) -> release (1 yield), \
                tokio current-thread",
        variants: &["hand-written", "awith"],
        versus: &[],
        callgrind_iterations: 20_000,
        goals: &[
            Goal {
                variant: "awith",
                versus: "hand-written",
                measure: Measure::Time,
                bound: Bound::AtMost(1.10),
                source: "issue 14",
            },
            Goal {
                variant: "awith",
                versus: "hand-written",
                measure: Measure::Instructions,
                bound: Bound::AtMost(1.15),
                source: "issue 14",
            },
        ],
        setup: || Box::new(Scope(runtimes())),
    };

    struct Scope(Runtimes);

    /// (a) The three steps by hand: nothing is released on a panic or a
    /// cancellation, and the release never learns how the body ended.
    async fn hand_written() -> io::Result<u64> {
        let mut value = acquire().await?;
        let output = body(&mut value).await;
        release(value).await?;
        output
    }

    /// (b) The same steps as an awith scope.
    async fn with_awith(rt: &awith::Runtime) -> Result<u64, ScopeError<io::Error, io::Error>> {
        counter().with(rt, async |value| body(value).await).await
    }

    impl Runner for Scope {
        fn run(&mut self, variant: usize, iterations: u64) {
            let Runtimes { tokio, rt } = &self.0;
            match variant {
                HAND_WRITTEN => tokio.block_on(async {
                    for _ in 0..iterations {
                        let output = hand_written().await;
                        black_box(output.expect("the hand-written scope does not fail"));
                    }
                }),
                AWITH => tokio.block_on(async {
                    for _ in 0..iterations {
                        let output = with_awith(rt).await;
                        black_box(output.expect("the awith scope does not fail"));
                    }
                }),
                _ => unreachable!("`scope` has two variants"),
            }
        }
    }
}

/// Four scopes nested in each other: what `with` costs when scopes nest,
/// each body's error carried out through the scopes around it.
mod nested {
    use std::hint::black_box;
    use std::io;

    use awith::{ResourceExt, ScopeError};
    use awith_benches::{Bound, Goal, Group, Measure, Runner};

    use crate::shared::{Runtimes, acquire, body, counter, release, runtimes};

    /// Variant indices, in [`GROUP`]'s order.
    const HAND_WRITTEN: usize = 0;
    const AWITH: usize = 1;

    pub(crate) const GROUP: Group = Group {
        name: "nested",
        about: "4 nested scopes: 4 acquires (1 yield each) -> body (+1 on the innermost \
                &mut u64) -> 4 releases (1 yield each) in reverse, tokio current-thread",
        variants: &["hand-written", "awith"],
        versus: &[],
        callgrind_iterations: 5_000,
        goals: &[Goal {
            variant: "awith",
            versus: "hand-written",
            measure: Measure::Time,
            bound: Bound::AtMost(1.15),
            source: "issue 14",
        }],
        setup: || Box::new(Nested(runtimes())),
    };

    struct Nested(Runtimes);

    /// (a) By hand: four acquires in order, the body, four releases in
    /// reverse order. Nothing is released on a failure, a panic or a
    /// cancellation, and no release learns how the body ended.
    async fn hand_written() -> io::Result<u64> {
        let first = acquire().await?;
        let second = acquire().await?;
        let third = acquire().await?;
        let mut fourth = acquire().await?;
        let output = body(&mut fourth).await;
        release(fourth).await?;
        release(third).await?;
        release(second).await?;
        release(first).await?;
        output
    }

    /// An inner scope's error as the body error of the scope around it: the
    /// innermost body's own error passes through as it is; anything else (an
    /// acquire or a release failed) is wrapped. Only runs on failure.
    fn outward(error: ScopeError<io::Error, io::Error>) -> io::Error {
        match error {
            ScopeError::Body {
                error,
                release: None,
            } => error,
            other => io::Error::other(other),
        }
    }

    /// (b) The same steps as four awith scopes, one inside the other.
    async fn with_awith(rt: &awith::Runtime) -> Result<u64, ScopeError<io::Error, io::Error>> {
        counter()
            .with(rt, async |_first| {
                counter()
                    .with(rt, async |_second| {
                        counter()
                            .with(rt, async |_third| {
                                counter()
                                    .with(rt, async |fourth| body(fourth).await)
                                    .await
                                    .map_err(outward)
                            })
                            .await
                            .map_err(outward)
                    })
                    .await
                    .map_err(outward)
            })
            .await
    }

    impl Runner for Nested {
        fn run(&mut self, variant: usize, iterations: u64) {
            let Runtimes { tokio, rt } = &self.0;
            match variant {
                HAND_WRITTEN => tokio.block_on(async {
                    for _ in 0..iterations {
                        let output = hand_written().await;
                        black_box(output.expect("the hand-written scopes do not fail"));
                    }
                }),
                AWITH => tokio.block_on(async {
                    for _ in 0..iterations {
                        let output = with_awith(rt).await;
                        black_box(output.expect("the awith scopes do not fail"));
                    }
                }),
                _ => unreachable!("`nested` has two variants"),
            }
        }
    }
}

/// Sixteen resources entered in a loop: what an `ExitStack` costs over a
/// `Vec` of values released by hand.
mod stack {
    use std::hint::black_box;
    use std::io;

    use awith::stack::ExitStack;
    use awith::{Failure, ScopeError};
    use awith_benches::{Bound, Goal, Group, Measure, Runner};

    use crate::shared::{Runtimes, acquire, counter, release, runtimes, touch};

    /// Variant indices, in [`GROUP`]'s order.
    const HAND_WRITTEN: usize = 0;
    const AWITH: usize = 1;

    /// Resources per iteration.
    const RESOURCES: usize = 16;

    pub(crate) const GROUP: Group = Group {
        name: "stack",
        about: "16 acquires in a loop (1 yield each) -> body (+1 on each u64) -> \
                16 releases (1 yield each) in reverse, tokio current-thread",
        variants: &["hand-written", "awith"],
        versus: &[],
        callgrind_iterations: 1_000,
        goals: &[Goal {
            variant: "awith",
            versus: "hand-written",
            measure: Measure::Time,
            bound: Bound::AtMost(1.15),
            source: "issue 14",
        }],
        setup: || Box::new(Stack(runtimes())),
    };

    struct Stack(Runtimes);

    /// The error of the stack: every failure of an entered resource is one.
    type Error = Failure<io::Error>;

    /// (a) By hand: a `Vec` of values, acquired in a loop, then released in
    /// reverse order. Nothing is released on a failure, a panic or a
    /// cancellation, and no release learns how the body ended.
    async fn hand_written() -> io::Result<u64> {
        let mut values = Vec::with_capacity(RESOURCES);
        for _ in 0..RESOURCES {
            values.push(acquire().await?);
        }
        let mut sum = 0;
        for value in &mut values {
            sum += touch(value);
        }
        while let Some(value) = values.pop() {
            release(value).await?;
        }
        Ok(sum)
    }

    /// (b) The same steps on an awith `ExitStack`: the body enters the
    /// resources and keeps their keys, the stack exits them.
    async fn with_awith(rt: &awith::Runtime) -> Result<u64, ScopeError<Error, Error>> {
        ExitStack::<Error>::with(rt, async |stack| {
            let mut keys = Vec::with_capacity(RESOURCES);
            for _ in 0..RESOURCES {
                keys.push(stack.enter(counter()).await?);
            }
            let mut sum = 0;
            for key in &keys {
                sum += touch(&mut stack[*key]);
            }
            Ok(sum)
        })
        .await
    }

    impl Runner for Stack {
        fn run(&mut self, variant: usize, iterations: u64) {
            let Runtimes { tokio, rt } = &self.0;
            match variant {
                HAND_WRITTEN => tokio.block_on(async {
                    for _ in 0..iterations {
                        let output = hand_written().await;
                        black_box(output.expect("the hand-written stack does not fail"));
                    }
                }),
                AWITH => tokio.block_on(async {
                    for _ in 0..iterations {
                        let output = with_awith(rt).await;
                        black_box(output.expect("the awith stack does not fail"));
                    }
                }),
                _ => unreachable!("`stack` has two variants"),
            }
        }
    }
}

/// Spawning and joining 10,000 trivial children: a `TaskGroup` against each
/// runtime's own way — tokio's `JoinSet`, and plain spawn + join of every
/// handle on smol and async-std. Multi-threaded runtimes, two workers.
mod children {
    use std::hint::black_box;

    use awith::group::TaskGroup;
    use awith_benches::{Bound, Goal, Group, Measure, Runner};

    use crate::shared::tokio_multi_thread;
    use awith_benches::SmolWorkers;

    /// Children per iteration.
    const CHILDREN: u64 = 10_000;

    pub(crate) const TOKIO: Group = Group {
        name: "group-tokio",
        about: "spawn 10,000 trivial children and wait for all, tokio multi-thread (2 workers)",
        variants: &["joinset", "taskgroup"],
        versus: &[],
        // 10,000 children an iteration.
        callgrind_iterations: 3,
        goals: &[Goal {
            variant: "taskgroup",
            versus: "joinset",
            measure: Measure::Time,
            bound: Bound::AtMost(0.9),
            source: "issue 14",
        }],
        setup: || {
            let tokio = tokio_multi_thread();
            let rt = awith::tokio::from_handle(tokio.handle().clone()).expect("timers enabled");
            Box::new(Tokio { tokio, rt })
        },
    };

    pub(crate) const SMOL: Group = Group {
        name: "group-smol",
        about: "spawn 10,000 trivial children and wait for all, smol executor (2 threads)",
        variants: &["spawn-join", "taskgroup"],
        versus: &[],
        // 10,000 children an iteration.
        callgrind_iterations: 3,
        goals: &[Goal {
            variant: "taskgroup",
            versus: "spawn-join",
            measure: Measure::Time,
            bound: Bound::AtMost(1.3),
            source: "issue 14",
        }],
        setup: || Box::new(Smol::new()),
    };

    pub(crate) const ASYNC_STD: Group = Group {
        name: "group-async-std",
        about: "spawn 10,000 trivial children and wait for all, async-std",
        variants: &["spawn-join", "taskgroup"],
        versus: &[],
        // 10,000 children an iteration.
        callgrind_iterations: 3,
        goals: &[Goal {
            variant: "taskgroup",
            versus: "spawn-join",
            measure: Measure::Time,
            bound: Bound::AtMost(1.2),
            source: "issue 14",
        }],
        setup: || {
            Box::new(AsyncStd {
                rt: awith::async_std::runtime(),
            })
        },
    };

    /// The children of a task group: the same trivial work as the baseline's.
    async fn taskgroup(rt: &awith::Runtime) {
        let result = TaskGroup::<()>::with(rt, async |group| {
            for i in 0..CHILDREN {
                drop(group.spawn(async move { Ok(black_box(i)) }).expect("spawn"));
            }
            Ok(())
        })
        .await;
        result.expect("the children succeed");
    }

    struct Tokio {
        tokio: tokio::runtime::Runtime,
        rt: awith::Runtime,
    }

    impl Runner for Tokio {
        fn run(&mut self, variant: usize, iterations: u64) {
            let rt = &self.rt;
            self.tokio.block_on(async {
                for _ in 0..iterations {
                    if variant == 0 {
                        let mut set = tokio::task::JoinSet::new();
                        for i in 0..CHILDREN {
                            set.spawn(async move { black_box(i) });
                        }
                        while let Some(joined) = set.join_next().await {
                            black_box(joined.expect("the child succeeds"));
                        }
                    } else {
                        taskgroup(rt).await;
                    }
                }
            });
        }
    }

    struct Smol {
        workers: SmolWorkers,
        rt: awith::Runtime,
    }

    impl Smol {
        fn new() -> Self {
            let workers = SmolWorkers::new();
            let rt = awith::smol::with_executor(&workers.executor);
            Smol { workers, rt }
        }
    }

    impl Runner for Smol {
        fn run(&mut self, variant: usize, iterations: u64) {
            let (executor, rt) = (&self.workers.executor, &self.rt);
            smol::block_on(async {
                for _ in 0..iterations {
                    if variant == 0 {
                        let tasks: Vec<_> = (0..CHILDREN)
                            .map(|i| executor.spawn(async move { black_box(i) }))
                            .collect();
                        for task in tasks {
                            black_box(task.await);
                        }
                    } else {
                        taskgroup(rt).await;
                    }
                }
            });
        }
    }

    struct AsyncStd {
        rt: awith::Runtime,
    }

    impl Runner for AsyncStd {
        fn run(&mut self, variant: usize, iterations: u64) {
            let rt = &self.rt;
            async_std::task::block_on(async {
                for _ in 0..iterations {
                    if variant == 0 {
                        let handles: Vec<_> = (0..CHILDREN)
                            .map(|i| async_std::task::spawn(async move { black_box(i) }))
                            .collect();
                        for handle in handles {
                            black_box(handle.await);
                        }
                    } else {
                        taskgroup(rt).await;
                    }
                }
            });
        }
    }
}

/// awith's object pool against its peers: deadpool's managed pool (on tokio
/// and smol) and bb8 (tokio only), contended and not.
///
/// Like for like:
///
/// - one manager type, [`Objects`], serves all three pools: creating makes a
///   number, recycling checks nothing, each counted;
/// - every pool recycles an idle object when it is checked out: awith and
///   deadpool always do (`Manager::recycle`); bb8 does with
///   `test_on_check_out(true)` (`ManageConnection::is_valid`, its default);
/// - every pool has `MAX_SIZE` objects at most, the same wait timeout
///   ([`WAIT_TIMEOUT`], never reached), no create or recycle timeout, no
///   lifetime or idle limit (bb8's default 30 and 10 minutes are turned off,
///   so it runs no reaper task), and hands out the most recently returned
///   idle object first (awith's only order; deadpool's `QueueMode::Lifo`,
///   bb8's `QueueStrategy::Lifo`);
/// - deadpool's timers are those of the runtime it runs on
///   (`Runtime::Tokio1`, `Runtime::Smol2`);
/// - a holder yields with `futures_lite`'s `yield_now` (`smol::future`)
///   on both runtimes: it wakes itself and returns `Pending` once.
///
/// The setup checks, outside the measurement, that the objects are really
/// reused: after a warm-up, more iterations create nothing, and recycle once
/// per checkout in every pool.
mod pool {
    use std::convert::Infallible;
    use std::future::Future;
    use std::hint::black_box;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use awith_benches::{Bound, Goal, Group, Measure, Runner};
    use smol::future::yield_now;

    use crate::shared::{tokio_multi_thread, touch};
    use awith_benches::SmolWorkers;

    /// The most objects each pool keeps.
    const MAX_SIZE: usize = 8;
    /// The wait timeout of every pool: never reached.
    const WAIT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Contended: tasks per iteration, all at once...
    const TASKS: u64 = 64;
    /// ...each checking out this many times in a row.
    const CHECKOUTS_PER_TASK: u64 = 16;
    /// Uncontended: checkouts in a row per iteration, by one task.
    const SEQUENTIAL: u64 = 1000;

    pub(crate) const CONTENDED_TOKIO: Group = Group {
        name: "pool-contended-tokio",
        about: "64 tasks x 16 checkouts of a pool of 8, each holding its object across \
                1 yield, tokio multi-thread (2 workers)",
        variants: &["deadpool", "bb8", "awith"],
        versus: &[],
        // 1,024 checkouts an iteration.
        callgrind_iterations: 20,
        goals: &[Goal {
            variant: "awith",
            versus: "deadpool",
            measure: Measure::Throughput,
            bound: Bound::AtLeast(1.2),
            source: "issue 14",
        }],
        setup: || Box::new(Tokio::new(Workload::Contended)),
    };

    pub(crate) const CONTENDED_SMOL: Group = Group {
        name: "pool-contended-smol",
        about: "64 tasks x 16 checkouts of a pool of 8, each holding its object across \
                1 yield, smol executor (2 threads)",
        variants: &["deadpool", "awith"],
        versus: &[],
        // 1,024 checkouts an iteration.
        callgrind_iterations: 20,
        goals: &[],
        setup: || Box::new(Smol::new(Workload::Contended)),
    };

    pub(crate) const UNCONTENDED_TOKIO: Group = Group {
        name: "pool-uncontended-tokio",
        about: "1 task, 1,000 checkouts in a row of a pool of 8 (no yield while holding), \
                tokio multi-thread (2 workers)",
        variants: &["deadpool", "bb8", "awith"],
        versus: &[],
        // 1,000 checkouts an iteration.
        callgrind_iterations: 20,
        goals: &[],
        setup: || Box::new(Tokio::new(Workload::Uncontended)),
    };

    pub(crate) const UNCONTENDED_SMOL: Group = Group {
        name: "pool-uncontended-smol",
        about: "1 task, 1,000 checkouts in a row of a pool of 8 (no yield while holding), \
                smol executor (2 threads)",
        variants: &["deadpool", "awith"],
        versus: &[],
        // 1,000 checkouts an iteration.
        callgrind_iterations: 20,
        goals: &[],
        setup: || Box::new(Smol::new(Workload::Uncontended)),
    };

    /// What one iteration does.
    #[derive(Clone, Copy, Debug)]
    enum Workload {
        /// [`TASKS`] tasks of [`CHECKOUTS_PER_TASK`] checkouts, each holding
        /// its object across one yield: waiters really queue.
        Contended,
        /// One task, [`SEQUENTIAL`] checkouts, holding without a yield.
        Uncontended,
    }

    impl Workload {
        /// Checkouts per iteration.
        fn checkouts(self) -> u64 {
            match self {
                Workload::Contended => TASKS * CHECKOUTS_PER_TASK,
                Workload::Uncontended => SEQUENTIAL,
            }
        }

        /// Does a holder yield?
        fn yields(self) -> bool {
            matches!(self, Workload::Contended)
        }
    }

    /// What a manager did, for the setup's checks.
    #[derive(Debug, Default)]
    struct Counts {
        created: AtomicU64,
        recycled: AtomicU64,
    }

    impl Counts {
        fn created(&self) -> u64 {
            self.created.load(Ordering::Relaxed)
        }

        fn recycled(&self) -> u64 {
            self.recycled.load(Ordering::Relaxed)
        }
    }

    /// The one manager of all three pools: objects are numbers; creating
    /// one and recycling one each count, and nothing else.
    #[derive(Debug, Default)]
    struct Objects(Arc<Counts>);

    impl Objects {
        fn create(&self) -> u64 {
            self.0.created.fetch_add(1, Ordering::Relaxed)
        }

        fn recycle(&self) {
            self.0.recycled.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl awith::pool::Manager for Objects {
        type Object = u64;
        type Error = Infallible;

        async fn create(&self) -> Result<u64, Infallible> {
            Ok(Objects::create(self))
        }

        async fn recycle(
            &self,
            _: &mut u64,
            _: &awith::pool::ObjectMetrics,
        ) -> Result<(), Infallible> {
            Objects::recycle(self);
            Ok(())
        }
    }

    impl deadpool::managed::Manager for Objects {
        type Type = u64;
        type Error = Infallible;

        async fn create(&self) -> Result<u64, Infallible> {
            Ok(Objects::create(self))
        }

        async fn recycle(
            &self,
            _: &mut u64,
            _: &deadpool::managed::Metrics,
        ) -> deadpool::managed::RecycleResult<Infallible> {
            Objects::recycle(self);
            Ok(())
        }
    }

    impl bb8::ManageConnection for Objects {
        type Connection = u64;
        type Error = Infallible;

        async fn connect(&self) -> Result<u64, Infallible> {
            Ok(Objects::create(self))
        }

        /// Called on every checkout, with `test_on_check_out(true)`: bb8's
        /// recycle.
        async fn is_valid(&self, _: &mut u64) -> Result<(), Infallible> {
            Objects::recycle(self);
            Ok(())
        }

        fn has_broken(&self, _: &mut u64) -> bool {
            false
        }
    }

    /// A pool, checked out the same way whichever it is.
    trait Checkouts: Clone + Send + Sync + 'static {
        /// One checkout: takes an object, holds it (across one yield if
        /// `yields`), touches it, gives it back.
        fn checkout(&self, yields: bool) -> impl Future<Output = u64> + Send;
    }

    impl Checkouts for deadpool::managed::Pool<Objects> {
        async fn checkout(&self, yields: bool) -> u64 {
            let mut object = self.get().await.expect("deadpool hands out an object");
            if yields {
                yield_now().await;
            }
            touch(&mut object)
        }
    }

    impl Checkouts for bb8::Pool<Objects> {
        async fn checkout(&self, yields: bool) -> u64 {
            let mut object = self.get().await.expect("bb8 hands out an object");
            if yields {
                yield_now().await;
            }
            touch(&mut object)
        }
    }

    impl Checkouts for awith::pool::Pool<Objects> {
        async fn checkout(&self, yields: bool) -> u64 {
            self.with(async |object| {
                if yields {
                    yield_now().await;
                }
                Ok::<_, Infallible>(touch(object))
            })
            .await
            .expect("awith's pool hands out an object")
        }
    }

    /// The checkouts of one task of the workload.
    async fn task<P: Checkouts>(pool: P, workload: Workload, iterations: u64) {
        let checkouts = match workload {
            Workload::Contended => CHECKOUTS_PER_TASK,
            Workload::Uncontended => iterations * SEQUENTIAL,
        };
        for _ in 0..checkouts {
            black_box(pool.checkout(workload.yields()).await);
        }
    }

    fn deadpool(runtime: deadpool::Runtime) -> deadpool::managed::Pool<Objects> {
        deadpool::managed::Pool::builder(Objects::default())
            .max_size(MAX_SIZE)
            .wait_timeout(Some(WAIT_TIMEOUT))
            .queue_mode(deadpool::managed::QueueMode::Lifo)
            .runtime(runtime)
            .build()
            .expect("a deadpool pool")
    }

    fn awith(rt: &awith::Runtime) -> awith::pool::Pool<Objects> {
        awith::pool::Pool::builder(Objects::default())
            .max_size(MAX_SIZE)
            .wait_timeout(WAIT_TIMEOUT)
            .build(rt)
            .expect("an awith pool")
    }

    /// Runs the variants twice over, after a warm-up, and checks that their
    /// objects were reused: none created the second time, and one recycle
    /// per checkout.
    fn check_reuse(runner: &mut dyn Runner, workload: Workload, counts: &[(&str, Arc<Counts>)]) {
        for (variant, (name, counts)) in counts.iter().enumerate() {
            runner.run(variant, 2);
            let (created, recycled) = (counts.created(), counts.recycled());
            assert!(
                (1..=MAX_SIZE as u64).contains(&created),
                "{name} created {created} objects for a pool of {MAX_SIZE}"
            );
            runner.run(variant, 2);
            assert_eq!(
                counts.created(),
                created,
                "{name} created objects after the warm-up"
            );
            assert_eq!(
                counts.recycled() - recycled,
                2 * workload.checkouts(),
                "{name} did not recycle once per checkout"
            );
        }
    }

    /// The pools on a tokio multi-thread runtime with two workers.
    struct Tokio {
        tokio: tokio::runtime::Runtime,
        workload: Workload,
        deadpool: deadpool::managed::Pool<Objects>,
        bb8: bb8::Pool<Objects>,
        awith: awith::pool::Pool<Objects>,
    }

    impl Tokio {
        /// Variant indices, in the groups' order.
        const DEADPOOL: usize = 0;
        const BB8: usize = 1;
        const AWITH: usize = 2;

        fn new(workload: Workload) -> Self {
            let tokio = tokio_multi_thread();
            let rt = awith::tokio::from_handle(tokio.handle().clone()).expect("timers enabled");
            // bb8 keeps its manager to itself: keep its counts here.
            let bb8_counts = Arc::new(Counts::default());
            let bb8 = tokio
                .block_on(
                    bb8::Pool::builder()
                        .max_size(MAX_SIZE as u32)
                        .connection_timeout(WAIT_TIMEOUT)
                        .test_on_check_out(true)
                        .max_lifetime(None)
                        .idle_timeout(None)
                        .queue_strategy(bb8::QueueStrategy::Lifo)
                        .build(Objects(Arc::clone(&bb8_counts))),
                )
                .expect("a bb8 pool");
            let deadpool = deadpool(deadpool::Runtime::Tokio1);
            let awith = awith(&rt);
            let counts = [
                ("deadpool", Arc::clone(&deadpool.manager().0)),
                ("bb8", bb8_counts),
                ("awith", Arc::clone(&awith.manager().0)),
            ];
            let mut runner = Tokio {
                tokio,
                workload,
                deadpool,
                bb8,
                awith,
            };
            check_reuse(&mut runner, workload, &counts);
            runner
        }

        fn run_pool<P: Checkouts>(&self, pool: &P, iterations: u64) {
            let workload = self.workload;
            self.tokio.block_on(async {
                match workload {
                    Workload::Contended => {
                        for _ in 0..iterations {
                            let tasks: Vec<_> = (0..TASKS)
                                .map(|_| tokio::spawn(task(pool.clone(), workload, 1)))
                                .collect();
                            for handle in tasks {
                                handle.await.expect("the task succeeds");
                            }
                        }
                    }
                    Workload::Uncontended => {
                        tokio::spawn(task(pool.clone(), workload, iterations))
                            .await
                            .expect("the task succeeds");
                    }
                }
            });
        }
    }

    impl Drop for Tokio {
        fn drop(&mut self) {
            // As a user would: close the pool while its runtime runs.
            self.tokio
                .block_on(self.awith.close(WAIT_TIMEOUT))
                .expect("the awith pool closes");
        }
    }

    impl Runner for Tokio {
        fn run(&mut self, variant: usize, iterations: u64) {
            match variant {
                Self::DEADPOOL => self.run_pool(&self.deadpool, iterations),
                Self::BB8 => self.run_pool(&self.bb8, iterations),
                Self::AWITH => self.run_pool(&self.awith, iterations),
                _ => unreachable!("the tokio pool groups have three variants"),
            }
        }
    }

    /// The pools on a smol executor run by two threads.
    struct Smol {
        workload: Workload,
        deadpool: deadpool::managed::Pool<Objects>,
        awith: awith::pool::Pool<Objects>,
        /// Declared last: the pools drop while the executor still runs.
        workers: SmolWorkers,
    }

    impl Smol {
        /// Variant indices, in the groups' order.
        const DEADPOOL: usize = 0;
        const AWITH: usize = 1;

        fn new(workload: Workload) -> Self {
            let workers = SmolWorkers::new();
            let rt = awith::smol::with_executor(&workers.executor);
            let deadpool = deadpool(deadpool::Runtime::Smol2);
            let awith = awith(&rt);
            let counts = [
                ("deadpool", Arc::clone(&deadpool.manager().0)),
                ("awith", Arc::clone(&awith.manager().0)),
            ];
            let mut runner = Smol {
                workload,
                deadpool,
                awith,
                workers,
            };
            check_reuse(&mut runner, workload, &counts);
            runner
        }

        fn run_pool<P: Checkouts>(&self, pool: &P, iterations: u64) {
            let (executor, workload) = (&self.workers.executor, self.workload);
            smol::block_on(async {
                match workload {
                    Workload::Contended => {
                        for _ in 0..iterations {
                            let tasks: Vec<_> = (0..TASKS)
                                .map(|_| executor.spawn(task(pool.clone(), workload, 1)))
                                .collect();
                            for task in tasks {
                                task.await;
                            }
                        }
                    }
                    Workload::Uncontended => {
                        executor
                            .spawn(task(pool.clone(), workload, iterations))
                            .await;
                    }
                }
            });
        }
    }

    impl Drop for Smol {
        fn drop(&mut self) {
            // As a user would: the pool's objects are destroyed while the
            // executor still runs (a pool dropped later would report its
            // destroys refused).
            smol::block_on(self.awith.close(WAIT_TIMEOUT)).expect("the awith pool closes");
        }
    }

    impl Runner for Smol {
        fn run(&mut self, variant: usize, iterations: u64) {
            match variant {
                Self::DEADPOOL => self.run_pool(&self.deadpool, iterations),
                Self::AWITH => self.run_pool(&self.awith, iterations),
                _ => unreachable!("the smol pool groups have two variants"),
            }
        }
    }
}

/// The four runtimes side by side, for the runtime guide: what spawning and
/// joining one task costs on each, and what one scope costs on each against
/// the same steps by hand (`ci/bench.sh` writes both to
/// `docs/runtime-costs.tsv`).
///
/// Like for like:
///
/// - the runtimes are tokio current-thread, tokio multi-thread with two
///   workers, async-std's global executor (one worker per core, or
///   `ASYNC_STD_THREAD_COUNT`; `ci/bench.sh` sets 2) and a smol `Executor`
///   run by two threads of its own;
/// - each batch of iterations runs inside one task spawned on the runtime
///   being measured, and the calling thread waits for it: the spawns, joins
///   and yields go through that runtime's scheduler, and the one spawn per
///   batch is part of the callgrind baseline `I(0)`;
/// - acquire and release yield with `futures_lite`'s `yield_now`
///   (`smol::future`), which wakes the task and returns `Pending` once on
///   every runtime. (The `scope` group yields with tokio's own `yield_now`,
///   which defers the wake until the scheduler has polled its driver: its
///   figures are higher than `runtime-scope/tokio-ct`'s by that.)
///
/// Under callgrind, a multi-thread runtime's instructions are those of all
/// its threads, the workers' wake-ups and spins included, so they vary a
/// little from run to run (by up to 4 % in the runs so far, against 0.1 % on
/// tokio current-thread); the kernel's work, such as a futex wake of another
/// thread, is not counted at all.
mod runtimes {
    use std::future::Future;
    use std::hint::black_box;
    use std::io;
    use std::sync::Arc;

    use awith::{Resource, ResourceExt, ScopeError, resource};
    use awith_benches::{Group, Runner};
    use smol::future::yield_now;

    use crate::shared::{body, tokio_multi_thread};
    use awith_benches::SmolWorkers;

    pub(crate) const SPAWN: Group = Group {
        name: "runtime-spawn",
        about: "from a task on the runtime, spawn 1 task returning a u64 and await its join \
                handle: tokio current-thread, tokio multi-thread (2 workers), async-std, \
                smol executor (2 threads)",
        variants: &["tokio-ct", "tokio-mt", "async-std", "smol"],
        versus: &[],
        callgrind_iterations: 10_000,
        goals: &[],
        setup: || Box::new(Spawn(Runtimes::new())),
    };

    pub(crate) const SCOPE: Group = Group {
        name: "runtime-scope",
        about: "in a task on the runtime: acquire (1 yield) -> body (+1 on &mut u64) -> \
                release (1 yield), by hand (hand-*) and as an awith scope",
        variants: &[
            "hand-tokio-ct",
            "tokio-ct",
            "hand-tokio-mt",
            "tokio-mt",
            "hand-async-std",
            "async-std",
            "hand-smol",
            "smol",
        ],
        versus: &[],
        callgrind_iterations: 10_000,
        goals: &[],
        setup: || Box::new(Scope(Runtimes::new())),
    };

    /// A runtime of the comparison; `on as usize` is its index in [`ALL`].
    #[derive(Clone, Copy, Debug)]
    enum On {
        TokioCurrentThread,
        TokioMultiThread,
        AsyncStd,
        Smol,
    }

    /// The runtimes, in [`SPAWN`]'s order.
    const ALL: [On; 4] = [
        On::TokioCurrentThread,
        On::TokioMultiThread,
        On::AsyncStd,
        On::Smol,
    ];

    /// The four runtimes, and the awith runtime on each.
    struct Runtimes {
        tokio_current_thread: tokio::runtime::Runtime,
        tokio_multi_thread: tokio::runtime::Runtime,
        smol: SmolWorkers,
        /// In [`ALL`]'s order.
        rts: [awith::Runtime; 4],
    }

    impl Runtimes {
        fn new() -> Self {
            let tokio_current_thread = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a tokio current-thread runtime");
            let tokio_multi_thread = tokio_multi_thread();
            let smol = SmolWorkers::new();
            let tokio_rt = |tokio: &tokio::runtime::Runtime| {
                awith::tokio::from_handle(tokio.handle().clone()).expect("timers enabled")
            };
            let rts = [
                tokio_rt(&tokio_current_thread),
                tokio_rt(&tokio_multi_thread),
                awith::async_std::runtime(),
                awith::smol::with_executor(&smol.executor),
            ];
            for (on, rt) in ALL.iter().zip(&rts) {
                let name = match on {
                    On::TokioCurrentThread | On::TokioMultiThread => "tokio",
                    On::AsyncStd => "async-std",
                    On::Smol => "smol",
                };
                assert_eq!(rt.name(), name, "the awith runtime for {on:?}");
            }
            Runtimes {
                tokio_current_thread,
                tokio_multi_thread,
                smol,
                rts,
            }
        }

        /// The awith runtime on `on`.
        fn rt(&self, on: On) -> awith::Runtime {
            self.rts[on as usize].clone()
        }

        /// Runs `task` as a task of runtime `on`, and waits for it on the
        /// calling thread.
        fn run<T: Send + 'static>(
            &self,
            on: On,
            task: impl Future<Output = T> + Send + 'static,
        ) -> T {
            match on {
                On::TokioCurrentThread => {
                    let tokio = &self.tokio_current_thread;
                    tokio
                        .block_on(tokio.spawn(task))
                        .expect("the task succeeds")
                }
                On::TokioMultiThread => {
                    let tokio = &self.tokio_multi_thread;
                    tokio
                        .block_on(tokio.spawn(task))
                        .expect("the task succeeds")
                }
                On::AsyncStd => async_std::task::block_on(async_std::task::spawn(task)),
                On::Smol => smol::block_on(self.smol.executor.spawn(task)),
            }
        }
    }

    /// `iterations` times: spawn a task with `spawn` and await its output.
    async fn spawn_join<J: Future<Output = u64>>(iterations: u64, spawn: impl Fn(u64) -> J) {
        for i in 0..iterations {
            black_box(spawn(black_box(i)).await);
        }
    }

    struct Spawn(Runtimes);

    impl Runner for Spawn {
        fn run(&mut self, variant: usize, iterations: u64) {
            let on = ALL[variant];
            match on {
                On::TokioCurrentThread | On::TokioMultiThread => {
                    self.0.run(on, async move {
                        spawn_join(iterations, |i| async move {
                            tokio::spawn(async move { i })
                                .await
                                .expect("the task succeeds")
                        })
                        .await;
                    });
                }
                On::AsyncStd => self.0.run(on, async move {
                    spawn_join(iterations, |i| async_std::task::spawn(async move { i })).await;
                }),
                On::Smol => {
                    let executor = Arc::clone(&self.0.smol.executor);
                    self.0.run(on, async move {
                        spawn_join(iterations, |i| executor.spawn(async move { i })).await;
                    });
                }
            }
        }
    }

    async fn acquire() -> io::Result<u64> {
        yield_now().await;
        Ok(black_box(0))
    }

    async fn release(value: u64) -> io::Result<()> {
        yield_now().await;
        black_box(value);
        Ok(())
    }

    fn counter() -> impl Resource<io::Error, Value = u64, Error = io::Error> {
        resource(acquire, |value, _exit| release(value))
    }

    /// (a) The three steps by hand, as in the `scope` group.
    async fn hand_written() -> io::Result<u64> {
        let mut value = acquire().await?;
        let output = body(&mut value).await;
        release(value).await?;
        output
    }

    /// (b) The same steps as an awith scope.
    async fn with_awith(rt: &awith::Runtime) -> Result<u64, ScopeError<io::Error, io::Error>> {
        counter().with(rt, async |value| body(value).await).await
    }

    struct Scope(Runtimes);

    impl Runner for Scope {
        fn run(&mut self, variant: usize, iterations: u64) {
            // Variants come in pairs, by hand then awith, in [`ALL`]'s order.
            let on = ALL[variant / 2];
            if variant.is_multiple_of(2) {
                self.0.run(on, async move {
                    for _ in 0..iterations {
                        let output = hand_written().await;
                        black_box(output.expect("the hand-written scope does not fail"));
                    }
                });
            } else {
                let rt = self.0.rt(on);
                self.0.run(on, async move {
                    for _ in 0..iterations {
                        let output = with_awith(&rt).await;
                        black_box(output.expect("the awith scope does not fail"));
                    }
                });
            }
        }
    }
}
