//! # awith-benches
//!
//! The harness of awith's side-by-side benchmarks (not published). A
//! benchmark [`Group`] runs the same work several ways — its *variants*, the
//! first of which is the baseline — and the harness compares them in one
//! process:
//!
//! - **time**: the variants run in interleaved batches (round 1 runs A then B,
//!   round 2 B then A, …), so a noisy machine slows them alike; the report
//!   gives the median time per iteration of each variant and the median of the
//!   per-round ratios to the baseline, the figure least moved by noise, then
//!   one line per variant for scripts:
//!   `GROUP: VARIANT median (time): NS ns/iter, RATIOx BASELINE (p10..p90 P10..P90)`
//!   (the spread is that of the per-round ratios);
//! - **instructions**: `--callgrind GROUP VARIANT N` runs only `N` iterations
//!   of one variant, so that `ci/bench.sh` can run it under
//!   `valgrind --tool=callgrind` for `N = 0` and `N > 0` and divide the
//!   difference by `N`.
//!
//! A [`Latency`] group measures how long one event takes (a lock's hand-off
//! from a holder to a waiter) rather than how many fit in a second: its
//! variants take samples in interleaved rounds, and the report gives their
//! percentiles (p50, p90, p99, max), then one line per variant for scripts:
//! `GROUP: VARIANT latency: p50 US us, p90 US us, p99 US us, max US us`.
//!
//! Timings are reported, never asserted: they are for people to read.
//!
//! # Command line
//!
//! ```text
//! scope --bench [GROUP...] [--rounds R] [--batch-ms MS]   compare the groups (default: all) in time
//! scope [GROUP...]                                         smoke test: run every variant a little
//! scope --list                                             one line per group: its name, then its variants, baseline first
//! scope --list-latency                                     the names of the latency groups (no instruction counts), one a line
//! scope --list-callgrind                                   one line per group with instruction counts: its name, its callgrind iterations
//! scope --list-goals                                       the groups' goals, one a line, tab-separated (see below)
//! scope --callgrind GROUP VARIANT N                        run N iterations of one variant, nothing else
//! ```
//!
//! (`scope` stands for any bench built on this harness, e.g. `lock`.)
//!
//! `--list-goals` writes one line per [`Goal`] or [`LatencyGoal`]:
//! `GROUP VARIANT VERSUS MEASURE OPERATOR VALUE SOURCE`, tab-separated, where
//! `MEASURE` is `time`, `throughput` or `instructions` (the ratio `VARIANT /
//! VERSUS` is bounded by `VALUE`), or `p50`, `p99`… for a latency goal (then
//! `VERSUS` is `-` and `VALUE` is in microseconds); `OPERATOR` is `<=` or `>=`.
//!
//! As with criterion, `cargo bench` passes `--bench` and measures, while
//! `cargo test --benches` (or `--all-targets`) passes nothing and only checks
//! that every variant runs.
//!
//! # Adding a group
//!
//! Write a [`Runner`] that owns what the group needs (its runtime, a pool, …)
//! and runs `n` iterations of a variant per call, describe it with a
//! [`Group`], and add that to the list the bench's `main` hands to [`main`].
//! Every variant must do the same work apart from what is being compared.
//! A latency group is a [`Sampler`] described by a [`Latency`], handed to
//! [`main_with_latencies`].
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
// Printing the results is this crate's job.
#![allow(clippy::print_stdout)]

pub mod report;

use std::fmt;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// A benchmark group: the same work done several ways, compared side by side.
///
/// # Examples
///
/// ```
/// use std::hint::black_box;
/// use awith_benches::{Group, Runner};
///
/// /// Summing by hand against summing with an iterator.
/// struct Sum;
///
/// impl Runner for Sum {
///     fn run(&mut self, variant: usize, iterations: u64) {
///         for _ in 0..iterations {
///             let n = black_box(100_u64);
///             let sum = match variant {
///                 0 => {
///                     let mut sum = 0;
///                     for i in 0..n {
///                         sum += i;
///                     }
///                     sum
///                 }
///                 _ => (0..n).sum(),
///             };
///             black_box(sum);
///         }
///     }
/// }
///
/// const SUM: Group = Group {
///     name: "sum",
///     about: "add up 0..100",
///     variants: &["loop", "iterator"],
///     versus: &[],
///     callgrind_iterations: 100_000,
///     goals: &[],
///     setup: || Box::new(Sum),
/// };
/// // A bench's `main` is then `awith_benches::main(&[SUM, …])`.
/// (SUM.setup)().run(1, 10);
/// ```
#[derive(Clone, Copy)]
pub struct Group {
    /// The group's name on the command line, e.g. `"scope"`. No spaces.
    pub name: &'static str,
    /// One line: what one iteration does.
    pub about: &'static str,
    /// The variants' names, the baseline first. No spaces.
    pub variants: &'static [&'static str],
    /// More ratios to report than each variant's to the baseline:
    /// `("b", "c")` reports the median of the per-round ratios of variant
    /// `b`'s time to variant `c`'s, in a line
    /// `GROUP: b vs c (time): RATIOx` (and so names two variants).
    pub versus: &'static [(&'static str, &'static str)],
    /// Iterations of a variant in one callgrind run (`ci/bench.sh`, unless
    /// `BENCH_CALLGRIND_N` says otherwise): enough that the per-run cost
    /// (setting up, tearing down) is noise next to them, few enough that a
    /// run takes seconds under valgrind, which runs a program's threads one
    /// at a time and some 50 times slower.
    pub callgrind_iterations: u64,
    /// What the group's variants should achieve (see [`Goal`]); the report of
    /// `ci/bench.sh` says whether they do.
    pub goals: &'static [Goal],
    /// Builds the group's [`Runner`]: everything set up once, outside the
    /// measurements (runtimes, pools, …).
    pub setup: fn() -> Box<dyn Runner>,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("name", &self.name)
            .field("variants", &self.variants)
            .field("callgrind_iterations", &self.callgrind_iterations)
            .field("goals", &self.goals)
            .finish_non_exhaustive()
    }
}

/// A goal for one variant of a [`Group`]: a bound on the ratio of one of its
/// measures to another variant's (the median over rounds for time and
/// throughput, the callgrind count for instructions).
///
/// # Examples
///
/// ```
/// use awith_benches::{Bound, Goal, Measure};
///
/// // awith at least 1.2 times deadpool's throughput: at most 1/1.2 of its time.
/// const FASTER: Goal = Goal {
///     variant: "awith",
///     versus: "deadpool",
///     measure: Measure::Throughput,
///     bound: Bound::AtLeast(1.2),
///     source: "issue 14",
/// };
/// assert!(FASTER.met(1.0 / 0.8));
/// assert_eq!(FASTER.time_ratio(), Some(1.0 / 1.2));
/// assert_eq!(FASTER.to_string(), "throughput >= 1.20x deadpool");
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Goal {
    /// The variant the goal is for.
    pub variant: &'static str,
    /// The variant it is measured against: the baseline or any other.
    pub versus: &'static str,
    /// What is compared.
    pub measure: Measure,
    /// The bound on the ratio `variant / versus` of [`measure`](Self::measure).
    pub bound: Bound,
    /// Where the goal was set, e.g. `"issue 14"`.
    pub source: &'static str,
}

impl Goal {
    /// Whether `ratio` (of [`measure`](Self::measure), `variant / versus`)
    /// meets the goal.
    pub fn met(&self, ratio: f64) -> bool {
        self.bound.holds(ratio)
    }

    /// Where the goal puts the time ratio `variant / versus`: the bound
    /// itself for [`Measure::Time`], its inverse for [`Measure::Throughput`]
    /// (throughput is iterations per second); `None` for instructions.
    pub fn time_ratio(&self) -> Option<f64> {
        match self.measure {
            Measure::Time => Some(self.bound.value()),
            Measure::Throughput => Some(1.0 / self.bound.value()),
            Measure::Instructions => None,
        }
    }
}

impl fmt::Display for Goal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.measure, self.bound, self.versus)
    }
}

/// What a [`Goal`] compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    /// Wall time per iteration.
    Time,
    /// Iterations per second: the inverse of time.
    Throughput,
    /// Instructions per iteration, under callgrind.
    Instructions,
}

impl Measure {
    /// The name `--list-goals` gives it.
    pub fn name(self) -> &'static str {
        match self {
            Measure::Time => "time",
            Measure::Throughput => "throughput",
            Measure::Instructions => "instructions",
        }
    }

    /// The measure named `name` by [`Measure::name`].
    pub fn from_name(name: &str) -> Option<Measure> {
        [Measure::Time, Measure::Throughput, Measure::Instructions]
            .into_iter()
            .find(|measure| measure.name() == name)
    }
}

impl fmt::Display for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A bound on a ratio.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    /// The ratio is at most this.
    AtMost(f64),
    /// The ratio is at least this.
    AtLeast(f64),
}

impl Bound {
    /// The bound's value.
    pub fn value(self) -> f64 {
        match self {
            Bound::AtMost(value) | Bound::AtLeast(value) => value,
        }
    }

    /// Whether `ratio` is within the bound (a NaN never is).
    pub fn holds(self, ratio: f64) -> bool {
        match self {
            Bound::AtMost(value) => ratio <= value,
            Bound::AtLeast(value) => ratio >= value,
        }
    }

    /// `<=` or `>=`, as `--list-goals` writes it.
    pub fn operator(self) -> &'static str {
        match self {
            Bound::AtMost(_) => "<=",
            Bound::AtLeast(_) => ">=",
        }
    }

    /// The bound written `<=` or `>=` (see [`operator`](Self::operator))
    /// with `value`.
    pub fn from_operator(operator: &str, value: f64) -> Option<Bound> {
        match operator {
            "<=" => Some(Bound::AtMost(value)),
            ">=" => Some(Bound::AtLeast(value)),
            _ => None,
        }
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:.2}x", self.operator(), self.value())
    }
}

/// A goal for one variant of a [`Latency`] group: a percentile of its
/// samples is at most a duration.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use awith_benches::LatencyGoal;
///
/// const P99: LatencyGoal = LatencyGoal {
///     variant: "awith",
///     percentile: 99,
///     at_most: Duration::from_millis(5),
///     source: "issue 12",
/// };
/// assert_eq!(P99.to_string(), "p99 <= 5.00 ms");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencyGoal {
    /// The variant the goal is for.
    pub variant: &'static str,
    /// The percentile, in percent: 50 or 99 (the report has p50, p90, p99).
    pub percentile: u8,
    /// The bound on that percentile.
    pub at_most: Duration,
    /// Where the goal was set, e.g. `"issue 12"`.
    pub source: &'static str,
}

impl fmt::Display for LatencyGoal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p{} <= {}",
            self.percentile,
            human(self.at_most.as_secs_f64() * 1e6)
        )
    }
}

/// Runs a group's variants.
pub trait Runner {
    /// Runs `iterations` iterations of the variant at index `variant` of
    /// [`Group::variants`]. Called with `iterations == 0` too: that run is
    /// the callgrind baseline, so it must do the per-call work (e.g. enter the
    /// runtime) and nothing else.
    fn run(&mut self, variant: usize, iterations: u64);
}

/// A latency benchmark: each variant does the same event many times, timing
/// each one itself; the harness takes the samples in interleaved rounds (as
/// for a [`Group`]) and reports their percentiles. No instruction counts:
/// `--callgrind` refuses these groups.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use awith_benches::{Latency, Sampler};
///
/// /// How long a thread takes to start, against a closure called in place.
/// struct Start;
///
/// impl Sampler for Start {
///     fn sample(&mut self, variant: usize, samples: usize) -> Vec<Duration> {
///         (0..samples)
///             .map(|_| {
///                 let start = Instant::now();
///                 let started = match variant {
///                     0 => (|| Instant::now())(),
///                     _ => std::thread::spawn(Instant::now).join().expect("started"),
///                 };
///                 started - start
///             })
///             .collect()
///     }
/// }
///
/// const START: Latency = Latency {
///     name: "start",
///     about: "from asking to start to the first instruction",
///     variants: &["call", "thread"],
///     samples: 100,
///     goals: &[],
///     setup: || Box::new(Start),
/// };
/// assert_eq!((START.setup)().sample(1, 3).len(), 3);
/// ```
#[derive(Clone, Copy)]
pub struct Latency {
    /// The group's name on the command line, e.g. `"lock-handoff-tokio"`. No spaces.
    pub name: &'static str,
    /// One line: what one sample measures.
    pub about: &'static str,
    /// The variants' names, the baseline first. No spaces.
    pub variants: &'static [&'static str],
    /// Samples per variant in a measured run, over [`LATENCY_ROUNDS`] rounds.
    pub samples: usize,
    /// What the group's variants should achieve; the report of
    /// `ci/bench.sh` says whether they do.
    pub goals: &'static [LatencyGoal],
    /// Builds the group's [`Sampler`]: everything set up once, outside the
    /// measurements.
    pub setup: fn() -> Box<dyn Sampler>,
}

impl fmt::Debug for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Latency")
            .field("name", &self.name)
            .field("variants", &self.variants)
            .field("samples", &self.samples)
            .field("goals", &self.goals)
            .finish_non_exhaustive()
    }
}

/// Takes a latency group's samples.
pub trait Sampler {
    /// Makes `samples` events of the variant at index `variant` of
    /// [`Latency::variants`] happen, one after another, and returns how
    /// long each took.
    fn sample(&mut self, variant: usize, samples: usize) -> Vec<Duration>;
}

/// A smol `Executor` run by two threads of its own (as in awith-test's
/// harness): the two-worker smol runtime the benches compare; dropping it
/// stops the threads.
#[derive(Debug)]
pub struct SmolWorkers {
    /// The executor the threads run.
    pub executor: std::sync::Arc<smol::Executor<'static>>,
    stop: Option<smol::channel::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl SmolWorkers {
    /// Starts the two threads.
    pub fn new() -> Self {
        let executor = std::sync::Arc::new(smol::Executor::new());
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let threads = (0..2)
            .map(|_| {
                let (executor, stopped) = (std::sync::Arc::clone(&executor), stopped.clone());
                std::thread::spawn(move || {
                    let _ = smol::block_on(executor.run(stopped.recv()));
                })
            })
            .collect();
        SmolWorkers {
            executor,
            stop: Some(stop),
            threads,
        }
    }
}

impl Default for SmolWorkers {
    fn default() -> Self {
        SmolWorkers::new()
    }
}

impl Drop for SmolWorkers {
    fn drop(&mut self) {
        drop(self.stop.take());
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The rounds a latency group's samples are split over; each round takes a
/// share of every variant's samples, in alternating order.
pub const LATENCY_ROUNDS: usize = 10;

/// Samples of each variant a latency group takes, and throws away, before
/// it measures (connections, caches).
const LATENCY_WARM_UP: usize = 3;

/// Settings of the time comparison.
#[derive(Clone, Copy, Debug)]
pub struct TimeSettings {
    /// Rounds; each runs one batch of every variant.
    pub rounds: usize,
    /// The wall time one batch of the slowest variant should take.
    pub batch: Duration,
}

impl Default for TimeSettings {
    fn default() -> Self {
        TimeSettings {
            rounds: 401,
            batch: Duration::from_millis(5),
        }
    }
}

/// The bench's entry point: parses the command line (see the crate docs) and
/// runs what it asks for over `groups`.
pub fn main(groups: &[Group]) -> ExitCode {
    main_with_latencies(groups, &[])
}

/// [`main`] for a bench with latency groups too: they follow `groups` in
/// the default order.
pub fn main_with_latencies(groups: &[Group], latencies: &[Latency]) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args).and_then(|command| command.run(groups, latencies)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

const USAGE: &str = "\
usage: scope --bench [GROUP...] [--rounds R] [--batch-ms MS]
       scope [GROUP...]
       scope --list
       scope --list-latency
       scope --list-callgrind
       scope --list-goals
       scope --callgrind GROUP VARIANT N";

/// What the command line asks for.
enum Command {
    Time {
        groups: Vec<String>,
        /// `false`: a smoke test, not a measurement.
        measure: bool,
        settings: TimeSettings,
    },
    List,
    ListLatency,
    ListCallgrind,
    ListGoals,
    Callgrind {
        group: String,
        variant: String,
        iterations: u64,
    },
    Help,
}

fn parse(args: &[String]) -> Result<Command, String> {
    let mut groups = Vec::new();
    let mut settings = TimeSettings::default();
    let mut measure = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // Passed by `cargo bench`, not by `cargo test`.
            "--bench" => measure = true,
            "--help" | "-h" => return Ok(Command::Help),
            "--list" => return Ok(Command::List),
            "--list-latency" => return Ok(Command::ListLatency),
            "--list-callgrind" => return Ok(Command::ListCallgrind),
            "--list-goals" => return Ok(Command::ListGoals),
            "--callgrind" => {
                let mut operand = |what: &str| {
                    args.next().cloned().ok_or_else(|| {
                        format!("--callgrind needs GROUP VARIANT N, {what} is missing")
                    })
                };
                let group = operand("GROUP")?;
                let variant = operand("VARIANT")?;
                let iterations = operand("N")?;
                let iterations = iterations
                    .parse()
                    .map_err(|_| format!("N must be a whole number, not `{iterations}`"))?;
                return Ok(Command::Callgrind {
                    group,
                    variant,
                    iterations,
                });
            }
            "--rounds" => {
                settings.rounds = number(args.next(), "--rounds")?;
                if settings.rounds == 0 {
                    return Err("--rounds must be at least 1".into());
                }
            }
            "--batch-ms" => {
                settings.batch = Duration::from_millis(number(args.next(), "--batch-ms")?);
            }
            flag if flag.starts_with('-') => return Err(format!("unknown option `{flag}`")),
            group => groups.push(group.to_owned()),
        }
    }
    Ok(Command::Time {
        groups,
        measure,
        settings,
    })
}

fn number<T: std::str::FromStr>(value: Option<&String>, option: &str) -> Result<T, String> {
    let value = value.ok_or_else(|| format!("{option} needs a value"))?;
    value
        .parse()
        .map_err(|_| format!("{option} needs a whole number, not `{value}`"))
}

/// A group of either kind.
#[derive(Clone, Copy)]
enum Any<'g> {
    Time(&'g Group),
    Latency(&'g Latency),
}

/// An error unless `variant` is one of `variants` (of the group `group`).
fn check_variant(group: &str, variants: &[&str], variant: &str) -> Result<(), String> {
    if variants.contains(&variant) {
        Ok(())
    } else {
        Err(format!(
            "group `{group}` has no variant `{variant}`; its variants are: {}",
            variants.join(", ")
        ))
    }
}

fn find<'g>(groups: &'g [Group], latencies: &'g [Latency], name: &str) -> Result<Any<'g>, String> {
    groups
        .iter()
        .find(|group| group.name == name)
        .map(Any::Time)
        .or_else(|| {
            latencies
                .iter()
                .find(|group| group.name == name)
                .map(Any::Latency)
        })
        .ok_or_else(|| {
            let names: Vec<_> = groups
                .iter()
                .map(|group| group.name)
                .chain(latencies.iter().map(|group| group.name))
                .collect();
            format!("no group `{name}`; the groups are: {}", names.join(", "))
        })
}

impl Command {
    fn run(self, groups: &[Group], latencies: &[Latency]) -> Result<(), String> {
        match self {
            Command::Help => println!("{USAGE}"),
            Command::List => {
                for group in groups {
                    println!("{} {}", group.name, group.variants.join(" "));
                }
                for group in latencies {
                    println!("{} {}", group.name, group.variants.join(" "));
                }
            }
            Command::ListLatency => {
                for group in latencies {
                    println!("{}", group.name);
                }
            }
            Command::ListCallgrind => {
                for group in groups {
                    println!("{} {}", group.name, group.callgrind_iterations);
                }
            }
            Command::ListGoals => {
                for group in groups {
                    for goal in group.goals {
                        check_variant(group.name, group.variants, goal.variant)?;
                        check_variant(group.name, group.variants, goal.versus)?;
                        println!(
                            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                            group.name,
                            goal.variant,
                            goal.versus,
                            goal.measure,
                            goal.bound.operator(),
                            goal.bound.value(),
                            goal.source
                        );
                    }
                }
                for group in latencies {
                    for goal in group.goals {
                        check_variant(group.name, group.variants, goal.variant)?;
                        println!(
                            "{}\t{}\t-\tp{}\t<=\t{}\t{}",
                            group.name,
                            goal.variant,
                            goal.percentile,
                            goal.at_most.as_secs_f64() * 1e6,
                            goal.source
                        );
                    }
                }
            }
            Command::Callgrind {
                group,
                variant,
                iterations,
            } => {
                let group = match find(groups, latencies, &group)? {
                    Any::Time(group) => group,
                    Any::Latency(group) => {
                        return Err(format!(
                            "group `{}` measures latency: it has no instruction counts",
                            group.name
                        ));
                    }
                };
                let index = group
                    .variants
                    .iter()
                    .position(|name| *name == variant)
                    .ok_or_else(|| {
                        format!(
                            "group `{}` has no variant `{variant}`; its variants are: {}",
                            group.name,
                            group.variants.join(", ")
                        )
                    })?;
                (group.setup)().run(index, iterations);
            }
            Command::Time {
                groups: names,
                measure,
                settings,
            } => {
                let selected: Vec<Any<'_>> = if names.is_empty() {
                    groups
                        .iter()
                        .map(Any::Time)
                        .chain(latencies.iter().map(Any::Latency))
                        .collect()
                } else {
                    names
                        .iter()
                        .map(|name| find(groups, latencies, name))
                        .collect::<Result<_, _>>()?
                };
                for group in selected {
                    match (group, measure) {
                        (Any::Time(group), true) => compare(group, settings).print(),
                        (Any::Time(group), false) => smoke(group),
                        (Any::Latency(group), true) => sample(group).print(),
                        (Any::Latency(group), false) => smoke_latency(group),
                    }
                }
            }
        }
        Ok(())
    }
}

/// Runs every variant of `group` a little, to check that it works.
fn smoke(group: &Group) {
    let mut runner = (group.setup)();
    for (variant, name) in group.variants.iter().enumerate() {
        runner.run(variant, SMOKE_ITERATIONS);
        println!(
            "{}/{name}: ok ({SMOKE_ITERATIONS} iterations; pass --bench to measure)",
            group.name
        );
    }
}

/// Iterations of each variant in a smoke test.
const SMOKE_ITERATIONS: u64 = 100;

/// Times `iterations` iterations of one variant.
fn time(runner: &mut dyn Runner, variant: usize, iterations: u64) -> Duration {
    let start = Instant::now();
    runner.run(variant, iterations);
    start.elapsed()
}

/// The iterations per batch that make the slowest variant's batch last about
/// `settings.batch`; warms every variant up on the way.
fn calibrate(runner: &mut dyn Runner, variants: usize, settings: TimeSettings) -> u64 {
    let probe = (settings.batch * 2).max(Duration::from_millis(10));
    let mut slowest = Duration::ZERO;
    for variant in 0..variants {
        let mut iterations = 1_u64;
        loop {
            let took = time(runner, variant, iterations);
            if took >= probe || iterations >= 1 << 40 {
                slowest = slowest.max(took / u32::try_from(iterations).unwrap_or(u32::MAX));
                break;
            }
            iterations *= 2;
        }
    }
    let per_iteration = slowest.as_nanos().max(1);
    u64::try_from(settings.batch.as_nanos() / per_iteration)
        .unwrap_or(u64::MAX)
        .max(1)
}

/// The time comparison of one group.
struct Comparison {
    group: Group,
    iterations: u64,
    rounds: usize,
    /// Per variant, per round: nanoseconds per iteration.
    per_iteration: Vec<Vec<f64>>,
}

fn compare(group: &Group, settings: TimeSettings) -> Comparison {
    let mut runner = (group.setup)();
    let variants = group.variants.len();
    let iterations = calibrate(runner.as_mut(), variants, settings);
    let mut per_iteration = vec![Vec::with_capacity(settings.rounds); variants];
    for round in 0..settings.rounds {
        // ABAB… then BABA…: neither variant always runs first.
        let order: Vec<usize> = if round.is_multiple_of(2) {
            (0..variants).collect()
        } else {
            (0..variants).rev().collect()
        };
        for variant in order {
            let took = time(runner.as_mut(), variant, iterations);
            per_iteration[variant].push(took.as_nanos() as f64 / iterations as f64);
        }
    }
    Comparison {
        group: *group,
        iterations,
        rounds: settings.rounds,
        per_iteration,
    }
}

impl Comparison {
    fn print(&self) {
        let group = &self.group;
        let baseline = &self.per_iteration[0];
        println!("group `{}`: {}", group.name, group.about);
        println!(
            "  {} rounds x {} iterations per variant, interleaved; p10..p90 over rounds",
            self.rounds, self.iterations
        );
        println!();
        println!(
            "  {:<14} {:>10} {:>21} {:>13}   {:>13} {:>15}",
            "variant", "ns/iter", "p10..p90", "iter/s", "ratio", "p10..p90"
        );
        let mut ratios = Vec::new();
        let mut medians = Vec::new();
        for (name, times) in group.variants.iter().zip(&self.per_iteration) {
            let per_round: Vec<f64> = times.iter().zip(baseline).map(|(t, b)| t / b).collect();
            let ratio = Summary::of(&per_round);
            let time = Summary::of(times);
            println!(
                "  {:<14} {:>10.1} {:>21} {:>13.0}   {:>12.3}x {:>15}",
                name,
                time.median,
                format!("{:.1}..{:.1}", time.p10, time.p90),
                1e9 / time.median,
                ratio.median,
                format!("{:.3}..{:.3}", ratio.p10, ratio.p90),
            );
            ratios.push((name, ratio.median));
            medians.push((name, time.median, ratio));
        }
        println!();
        for (name, ratio) in ratios.iter().skip(1) {
            println!(
                "{}: {} overhead (time): {:.2}x {}",
                group.name, name, ratio, group.variants[0]
            );
        }
        for (name, other) in group.versus {
            let index = |variant: &str| {
                group
                    .variants
                    .iter()
                    .position(|name| *name == variant)
                    .unwrap_or_else(|| panic!("group `{}` has no variant `{variant}`", group.name))
            };
            let (a, b) = (
                &self.per_iteration[index(name)],
                &self.per_iteration[index(other)],
            );
            let per_round: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
            let ratio = Summary::of(&per_round);
            println!(
                "{}: {name} vs {other} (time): {:.3}x (p10..p90 {:.3}..{:.3})",
                group.name, ratio.median, ratio.p10, ratio.p90
            );
        }
        // For scripts, one line per variant:
        // `GROUP: VARIANT median (time): NS ns/iter, RATIOx BASELINE (p10..p90 P10..P90)`.
        for (name, median, ratio) in medians {
            println!(
                "{}: {} median (time): {:.1} ns/iter, {:.3}x {} (p10..p90 {:.3}..{:.3})",
                group.name, name, median, ratio.median, group.variants[0], ratio.p10, ratio.p90
            );
        }
        println!();
    }
}

/// Takes a few samples of every variant of `group`, to check that it works.
fn smoke_latency(group: &Latency) {
    let mut sampler = (group.setup)();
    for (variant, name) in group.variants.iter().enumerate() {
        let samples = sampler.sample(variant, LATENCY_WARM_UP);
        assert_eq!(samples.len(), LATENCY_WARM_UP, "{}/{name}", group.name);
        println!(
            "{}/{name}: ok ({LATENCY_WARM_UP} samples; pass --bench to measure)",
            group.name
        );
    }
}

/// The samples of one latency group.
struct Sampled {
    group: Latency,
    /// Per variant: every sample.
    samples: Vec<Vec<Duration>>,
}

fn sample(group: &Latency) -> Sampled {
    let mut sampler = (group.setup)();
    let variants = group.variants.len();
    for variant in 0..variants {
        sampler.sample(variant, LATENCY_WARM_UP);
    }
    let per_round = group.samples.div_ceil(LATENCY_ROUNDS).max(1);
    let mut samples = vec![Vec::with_capacity(per_round * LATENCY_ROUNDS); variants];
    for round in 0..LATENCY_ROUNDS {
        let order: Vec<usize> = if round.is_multiple_of(2) {
            (0..variants).collect()
        } else {
            (0..variants).rev().collect()
        };
        for variant in order {
            samples[variant].extend(sampler.sample(variant, per_round));
        }
    }
    Sampled {
        group: *group,
        samples,
    }
}

/// Percentiles of latencies, in microseconds.
struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Percentiles {
    fn of(samples: &[Duration]) -> Percentiles {
        let mut us: Vec<f64> = samples
            .iter()
            .map(|sample| sample.as_secs_f64() * 1e6)
            .collect();
        us.sort_by(f64::total_cmp);
        // The nearest-rank percentile: the smallest sample at or above
        // `quantile` of them.
        let at = |quantile: f64| {
            let rank = (quantile * us.len() as f64).ceil() as usize;
            us.get(rank.saturating_sub(1)).copied().unwrap_or(f64::NAN)
        };
        Percentiles {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// Microseconds as a person reads them: `812 us`, `1.25 ms`, `50.1 ms`.
fn human(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} us")
    } else if us < 10_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.1} ms", us / 1000.0)
    }
}

impl Sampled {
    fn print(&self) {
        let group = &self.group;
        let n = self.samples.first().map_or(0, Vec::len);
        println!("group `{}`: {}", group.name, group.about);
        println!(
            "  {n} samples per variant, in {LATENCY_ROUNDS} interleaved rounds \
             (after {LATENCY_WARM_UP} thrown away)"
        );
        println!();
        println!(
            "  {:<14} {:>10} {:>10} {:>10} {:>10}",
            "variant", "p50", "p90", "p99", "max"
        );
        let percentiles: Vec<Percentiles> = self
            .samples
            .iter()
            .map(|samples| Percentiles::of(samples))
            .collect();
        for (name, p) in group.variants.iter().zip(&percentiles) {
            println!(
                "  {:<14} {:>10} {:>10} {:>10} {:>10}",
                name,
                human(p.p50),
                human(p.p90),
                human(p.p99),
                human(p.max)
            );
        }
        println!();
        let baseline = &percentiles[0];
        for (name, p) in group.variants.iter().zip(&percentiles).skip(1) {
            println!(
                "{}: {name} vs {} (latency): p50 {} vs {} ({:.3}x), p99 {} vs {} ({:.3}x)",
                group.name,
                group.variants[0],
                human(p.p50),
                human(baseline.p50),
                p.p50 / baseline.p50,
                human(p.p99),
                human(baseline.p99),
                p.p99 / baseline.p99,
            );
        }
        // For scripts, one line per variant.
        for (name, p) in group.variants.iter().zip(&percentiles) {
            println!(
                "{}: {name} latency: p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, max {:.1} us",
                group.name, p.p50, p.p90, p.p99, p.max
            );
        }
        println!();
    }
}

/// Median and 10th / 90th percentiles.
struct Summary {
    p10: f64,
    median: f64,
    p90: f64,
}

impl Summary {
    fn of(values: &[f64]) -> Summary {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let at = |quantile: f64| {
            let last = sorted.len().saturating_sub(1);
            sorted[(last as f64 * quantile).round() as usize]
        };
        Summary {
            p10: at(0.1),
            median: at(0.5),
            p90: at(0.9),
        }
    }
}
