//! awith's scopes side by side with the hand-written code they replace.
//!
//! `cargo bench -p awith-benches --bench scope` compares the groups in time;
//! `ci/bench.sh` adds the instruction counts. See the `awith_benches` docs for
//! the command line.
//!
//! Every group uses the same resource (see [`shared`]): an acquire and a
//! release that each yield to the runtime once, on a tokio current-thread
//! runtime.
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
    pub(crate) fn counter<E>() -> impl Resource<E, Value = u64, Error = io::Error, Verdict = ()> {
        resource(acquire, |value, _exit| release(value))
    }
}

/// One scope, the simplest case: what `with` costs over writing the three
/// steps by hand.
mod scope {
    use std::hint::black_box;
    use std::io;

    use awith::{ResourceExt, ScopeError};
    use awith_benches::{Group, Runner};

    use crate::shared::{Runtimes, acquire, body, counter, release, runtimes};

    /// Variant indices, in [`GROUP`]'s order.
    const HAND_WRITTEN: usize = 0;
    const AWITH: usize = 1;

    pub(crate) const GROUP: Group = Group {
        name: "scope",
        about: "acquire (1 yield) -> body (+1 on &mut u64) -> release (1 yield), \
                tokio current-thread",
        variants: &["hand-written", "awith"],
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
    use awith_benches::{Group, Runner};

    use crate::shared::{Runtimes, acquire, body, counter, release, runtimes};

    /// Variant indices, in [`GROUP`]'s order.
    const HAND_WRITTEN: usize = 0;
    const AWITH: usize = 1;

    pub(crate) const GROUP: Group = Group {
        name: "nested",
        about: "4 nested scopes: 4 acquires (1 yield each) -> body (+1 on the innermost \
                &mut u64) -> 4 releases (1 yield each) in reverse, tokio current-thread",
        variants: &["hand-written", "awith"],
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
    use awith_benches::{Group, Runner};

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
    use std::sync::Arc;

    use awith::group::TaskGroup;
    use awith_benches::{Group, Runner};

    /// Children per iteration.
    const CHILDREN: u64 = 10_000;

    pub(crate) const TOKIO: Group = Group {
        name: "group-tokio",
        about: "spawn 10,000 trivial children and wait for all, tokio multi-thread (2 workers)",
        variants: &["joinset", "taskgroup"],
        setup: || {
            let tokio = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_time()
                .build()
                .expect("a tokio runtime");
            let rt = awith::tokio::from_handle(tokio.handle().clone()).expect("timers enabled");
            Box::new(Tokio { tokio, rt })
        },
    };

    pub(crate) const SMOL: Group = Group {
        name: "group-smol",
        about: "spawn 10,000 trivial children and wait for all, smol executor (2 threads)",
        variants: &["spawn-join", "taskgroup"],
        setup: || Box::new(Smol::new()),
    };

    pub(crate) const ASYNC_STD: Group = Group {
        name: "group-async-std",
        about: "spawn 10,000 trivial children and wait for all, async-std",
        variants: &["spawn-join", "taskgroup"],
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
        executor: Arc<smol::Executor<'static>>,
        rt: awith::Runtime,
        stop: Option<smol::channel::Sender<()>>,
        threads: Vec<std::thread::JoinHandle<()>>,
    }

    impl Smol {
        fn new() -> Self {
            let executor = Arc::new(smol::Executor::new());
            let (stop, stopped) = smol::channel::bounded::<()>(1);
            let threads = (0..2)
                .map(|_| {
                    let (executor, stopped) = (Arc::clone(&executor), stopped.clone());
                    std::thread::spawn(move || {
                        let _ = smol::block_on(executor.run(stopped.recv()));
                    })
                })
                .collect();
            let rt = awith::smol::with_executor(&executor);
            Smol {
                executor,
                rt,
                stop: Some(stop),
                threads,
            }
        }
    }

    impl Drop for Smol {
        fn drop(&mut self) {
            drop(self.stop.take());
            for thread in self.threads.drain(..) {
                let _ = thread.join();
            }
        }
    }

    impl Runner for Smol {
        fn run(&mut self, variant: usize, iterations: u64) {
            let (executor, rt) = (&self.executor, &self.rt);
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
