//! Property tests: random programs of nested scopes, `and_then`, `zip` and
//! `ExitStack`, where every acquire, body and release randomly succeeds,
//! fails, panics or hangs, and the whole program is randomly cancelled.
//!
//! A program is a stack of layers, outermost first — each a scope over a
//! resource tree (leaves are probes, inner nodes `and_then` or `zip`) or an
//! exit stack entering several trees — around a body.
//!
//! - A program that neither hangs nor is cancelled is checked against a
//!   **model** of awith's rules: the result (value, error — exactly, nested
//!   `ScopeError`s and `Failure`s included — or panic), the exit each
//!   acquired leaf's release was told, the number of incidents, and that
//!   nothing was handed to the runtime.
//! - Every program, cancelled or not, is checked for the invariants: every
//!   acquired value dropped exactly once, released at most once and only
//!   before that drop; released exactly once unless a cleanup timed out (and
//!   said so); a release decided before the cancellation not told
//!   `Cancelled`; dependants released before what they depend on (nested
//!   layers, `and_then`, stack entries); incidents only where the program has
//!   faults.
//!
//! Hangs: on the reference runtime a hang is real (only the cleanup timeout,
//! on the virtual clock, ends it); on real runtimes it waits behind a gate the
//! test opens once the program has been dropped, so no case waits for a
//! real-time cleanup timeout.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use awith::rt::{Binding, Incident};
use awith::stack::ExitStack;
use awith::{Cancel, Exit, ExitKind, Failure, Resource, ResourceExt, Runtime, ScopeError};
use futures::FutureExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::{Polled, Stepper};
use crate::harness::{Harness, recording_runtime};
use crate::probe::{Event, Gate, Log, Plan, Probe, ProbeError, Step, yield_now};

/// What a phase does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Succeeds.
    Ok,
    /// Fails.
    Err,
    /// Panics.
    Panic,
    /// Never finishes (or, on real runtimes, not until the gate opens).
    Hang,
}

/// A probe: its acquire and release faults, its await points, its tag.
#[derive(Clone, Debug)]
pub struct Leaf {
    acquire: Fault,
    release: Fault,
    awaits: u32,
    tag: u32,
}

/// A resource tree.
#[derive(Clone, Debug)]
pub enum Node {
    /// A probe.
    Leaf(Leaf),
    /// `first.and_then(|_| second)`.
    AndThen(Box<Node>, Box<Node>),
    /// `a.zip(b)`.
    Zip(Box<Node>, Box<Node>),
}

/// One layer of a program.
#[derive(Clone, Debug)]
pub enum Layer {
    /// `tree.with(rt, |_| inner)`.
    Scope(Node),
    /// `ExitStack::with(rt, |stack| { enter each tree; inner })`.
    Stack(Vec<Node>),
}

/// A random program.
#[derive(Clone, Debug)]
pub struct Program {
    layers: Vec<Layer>,
    body: Fault,
    /// Drop the program after this many steps.
    drop_after: Option<u32>,
}

impl Program {
    fn leaves(&self) -> Vec<&Leaf> {
        fn walk<'a>(node: &'a Node, out: &mut Vec<&'a Leaf>) {
            match node {
                Node::Leaf(leaf) => out.push(leaf),
                Node::AndThen(a, b) | Node::Zip(a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
            }
        }
        let mut out = Vec::new();
        for layer in &self.layers {
            match layer {
                Layer::Scope(node) => walk(node, &mut out),
                Layer::Stack(nodes) => nodes.iter().for_each(|n| walk(n, &mut out)),
            }
        }
        out
    }

    fn hangs(&self) -> bool {
        self.body == Fault::Hang
            || self
                .leaves()
                .iter()
                .any(|l| l.acquire == Fault::Hang || l.release == Fault::Hang)
    }

    fn has_faults(&self) -> bool {
        self.body != Fault::Ok
            || self
                .leaves()
                .iter()
                .any(|l| l.acquire != Fault::Ok || l.release != Fault::Ok)
    }

    /// Gives the leaves their tags, in program order.
    fn numbered(mut self) -> Self {
        fn walk(node: &mut Node, next: &mut u32) {
            match node {
                Node::Leaf(leaf) => {
                    leaf.tag = *next;
                    *next += 1;
                }
                Node::AndThen(a, b) | Node::Zip(a, b) => {
                    walk(a, next);
                    walk(b, next);
                }
            }
        }
        let mut next = 0;
        for layer in &mut self.layers {
            match layer {
                Layer::Scope(node) => walk(node, &mut next),
                Layer::Stack(nodes) => nodes.iter_mut().for_each(|n| walk(n, &mut next)),
            }
        }
        self
    }
}

fn fault(hang: bool) -> impl Strategy<Value = Fault> {
    let hang_weight = if hang { 1 } else { 0 };
    prop_oneof![
        32 => Just(Fault::Ok),
        4 => Just(Fault::Err),
        4 => Just(Fault::Panic),
        hang_weight => Just(Fault::Hang),
    ]
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = (fault(true), fault(true), 0u32..3).prop_map(|(acquire, release, awaits)| {
        Node::Leaf(Leaf {
            acquire,
            release,
            awaits,
            tag: 0,
        })
    });
    leaf.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| Node::AndThen(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Node::Zip(Box::new(a), Box::new(b))),
        ]
    })
}

/// Random programs of one to three layers.
pub fn program() -> impl Strategy<Value = Program> {
    let layer = prop_oneof![
        3 => node().prop_map(Layer::Scope),
        1 => prop::collection::vec(node(), 1..4).prop_map(Layer::Stack),
    ];
    (
        prop::collection::vec(layer, 1..4),
        fault(true),
        prop_oneof![7 => Just(None), 3 => (0u32..40).prop_map(Some)],
    )
        .prop_map(|(layers, body, drop_after)| {
            Program {
                layers,
                body,
                drop_after,
            }
            .numbered()
        })
}

/// The error every layer's body fails with.
#[derive(Clone, Debug, PartialEq)]
pub enum PErr {
    /// The innermost body failed.
    Body,
    /// A stack entry failed to acquire.
    Probe(Failure<ProbeError>),
    /// A nested scope failed.
    Scope(Box<ScopeError<PErr, ProbeError>>),
    /// A nested exit stack failed.
    Stack(Box<ScopeError<PErr, PErr>>),
}

impl From<Failure<ProbeError>> for PErr {
    fn from(failure: Failure<ProbeError>) -> Self {
        PErr::Probe(failure)
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// A value of any resource tree (a struct, so that closures over it stay
/// general over its borrow's lifetime).
pub struct DynValue(Box<dyn std::any::Any + Send>);

impl std::fmt::Debug for DynValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DynValue")
    }
}
type DynReleaser = Box<
    dyn for<'x> FnOnce(
            DynValue,
            &Exit<'x, PErr>,
            &Runtime,
        ) -> BoxFuture<'static, Result<(), Failure<ProbeError>>>
        + Send,
>;
type DynAcquire = Box<
    dyn FnOnce(&Runtime) -> BoxFuture<'static, Result<(DynValue, DynReleaser), Failure<ProbeError>>>
        + Send,
>;

/// A resource tree of any shape, as one type.
struct DynRes(DynAcquire);

impl Resource<PErr> for DynRes {
    type Value = DynValue;
    type Error = ProbeError;
    type Verdict = ();
    type Releaser = DynReleaser;

    fn acquire(
        self,
        rt: &Runtime,
    ) -> impl Future<Output = Result<(DynValue, DynReleaser), Failure<ProbeError>>> + Send + 'static
    {
        (self.0)(rt)
    }

    fn release(
        releaser: DynReleaser,
        value: DynValue,
        exit: &Exit<'_, PErr>,
        rt: &Runtime,
    ) -> impl Future<Output = Result<(), Failure<ProbeError>>> + Send + 'static {
        releaser(value, exit, rt)
    }
}

fn erase<R>(resource: R) -> DynRes
where
    R: Resource<PErr, Error = ProbeError, Verdict = ()> + Send + 'static,
{
    DynRes(Box::new(move |rt: &Runtime| {
        let acquire = resource.acquire(rt);
        Box::pin(async move {
            let (value, releaser) = acquire.await?;
            let release: DynReleaser = Box::new(move |value: DynValue, exit, rt| {
                let value = *value
                    .0
                    .downcast::<R::Value>()
                    .unwrap_or_else(|_| unreachable!("the value of this resource"));
                Box::pin(R::release(releaser, value, exit, rt))
            });
            Ok((DynValue(Box::new(value)), release))
        })
    }))
}

/// What a program runs with.
#[derive(Clone)]
struct Ctx {
    rt: Runtime,
    log: Log,
    gate: Option<Gate>,
}

fn step(fault: Fault) -> Step {
    match fault {
        Fault::Ok | Fault::Hang => Step::Ok,
        Fault::Err => Step::Err,
        Fault::Panic => Step::Panic,
    }
}

fn build(node: &Node, ctx: &Ctx) -> DynRes {
    match node {
        Node::Leaf(leaf) => {
            let plan = Plan {
                acquire_hangs: leaf.acquire == Fault::Hang,
                release_hangs: leaf.release == Fault::Hang,
                ..Plan::steps(
                    step(leaf.acquire),
                    Step::Ok,
                    step(leaf.release),
                    leaf.awaits,
                )
            };
            let mut probe = Probe::new(&ctx.log, plan, &ctx.rt).tagged(leaf.tag);
            if let Some(gate) = &ctx.gate {
                probe = probe.gated(gate);
            }
            erase(probe)
        }
        Node::AndThen(a, b) => {
            let (b, ctx2) = ((**b).clone(), ctx.clone());
            erase(build(a, ctx).and_then(move |_: &mut DynValue| build(&b, &ctx2)))
        }
        Node::Zip(a, b) => erase(build(a, ctx).zip(build(b, ctx))),
    }
}

fn run_layers<'a>(
    layers: &'a [Layer],
    body: Fault,
    ctx: &'a Ctx,
) -> BoxFuture<'a, Result<u32, PErr>> {
    Box::pin(async move {
        match layers.split_first() {
            None => {
                yield_now().await;
                match body {
                    Fault::Ok => Ok(42),
                    Fault::Err => Err(PErr::Body),
                    Fault::Panic => panic!("probe: body panicked"),
                    Fault::Hang => {
                        match &ctx.gate {
                            Some(gate) => gate.wait().await,
                            None => std::future::pending::<()>().await,
                        }
                        Ok(42)
                    }
                }
            }
            Some((Layer::Scope(node), rest)) => build(node, ctx)
                .with(&ctx.rt, |_: &mut DynValue| run_layers(rest, body, ctx))
                .await
                .map_err(|e| PErr::Scope(Box::new(e))),
            Some((Layer::Stack(nodes), rest)) => ExitStack::<PErr>::with(&ctx.rt, async |stack| {
                for node in nodes {
                    stack.enter(build(node, ctx)).await?;
                }
                run_layers(rest, body, ctx).await
            })
            .await
            .map_err(|e| PErr::Stack(Box::new(e))),
        }
    })
}

// ---------------------------------------------------------------------------
// The model.

/// How a stage ends in the model.
#[derive(Debug)]
enum Outcome {
    Value(u32),
    Err(PErr),
    Panic,
}

/// How an acquire ends in the model.
enum Acq {
    Ok,
    Fail(Failure<ProbeError>),
    Panic,
}

/// How a release ends in the model.
enum Rel {
    Ok,
    Fail(Failure<ProbeError>),
    Panic,
}

#[derive(Default)]
struct Model {
    exits: BTreeMap<u32, ExitKind>,
    incidents: usize,
}

impl Model {
    fn acquire(&mut self, node: &Node) -> Acq {
        match node {
            Node::Leaf(leaf) => match leaf.acquire {
                Fault::Ok => Acq::Ok,
                Fault::Err => Acq::Fail(Failure::Error(ProbeError::Acquire)),
                Fault::Panic => Acq::Panic,
                Fault::Hang => unreachable!("the model runs programs without hangs"),
            },
            Node::AndThen(a, b) => match self.acquire(a) {
                Acq::Ok => match self.acquire(b) {
                    Acq::Ok => Acq::Ok,
                    Acq::Fail(fb) => {
                        match self.release(a, ExitKind::Cancelled(Cancel::SiblingFailed)) {
                            Rel::Ok => Acq::Fail(fb),
                            Rel::Fail(fa) => Acq::Fail(fb.and(fa)),
                            Rel::Panic => Acq::Panic,
                        }
                    }
                    Acq::Panic => {
                        self.release_during_panic(a);
                        Acq::Panic
                    }
                },
                other => other,
            },
            Node::Zip(a, b) => {
                let ra = self.acquire(a);
                let rb = self.acquire(b);
                let sibling = ExitKind::Cancelled(Cancel::SiblingFailed);
                match (ra, rb) {
                    (Acq::Ok, Acq::Ok) => Acq::Ok,
                    (Acq::Ok, Acq::Fail(fb)) => match self.release(a, sibling) {
                        Rel::Ok => Acq::Fail(fb),
                        Rel::Fail(x) => Acq::Fail(fb.and(x)),
                        Rel::Panic => Acq::Panic,
                    },
                    (Acq::Fail(fa), Acq::Ok) => match self.release(b, sibling) {
                        Rel::Ok => Acq::Fail(fa),
                        Rel::Fail(x) => Acq::Fail(fa.and(x)),
                        Rel::Panic => Acq::Panic,
                    },
                    (Acq::Fail(fa), Acq::Fail(fb)) => Acq::Fail(fa.and(fb)),
                    (Acq::Panic, Acq::Ok) => {
                        self.release_during_panic(b);
                        Acq::Panic
                    }
                    (Acq::Panic, Acq::Panic) => {
                        self.incidents += 1;
                        Acq::Panic
                    }
                    (Acq::Panic, Acq::Fail(_)) => Acq::Panic,
                    (Acq::Ok, Acq::Panic) => {
                        self.release_during_panic(a);
                        Acq::Panic
                    }
                    (Acq::Fail(_), Acq::Panic) => Acq::Panic,
                }
            }
        }
    }

    fn release_during_panic(&mut self, node: &Node) {
        match self.release(node, ExitKind::Panicked) {
            Rel::Ok => {}
            Rel::Fail(_) | Rel::Panic => self.incidents += 1,
        }
    }

    fn release(&mut self, node: &Node, exit: ExitKind) -> Rel {
        match node {
            Node::Leaf(leaf) => {
                self.exits.insert(leaf.tag, exit);
                match leaf.release {
                    Fault::Ok => Rel::Ok,
                    Fault::Err => Rel::Fail(Failure::Error(ProbeError::Release)),
                    Fault::Panic => Rel::Panic,
                    Fault::Hang => unreachable!("the model runs programs without hangs"),
                }
            }
            Node::AndThen(a, b) => {
                let second = self.release(b, exit);
                let first = self.release(a, exit);
                self.combine(second, first)
            }
            Node::Zip(a, b) => {
                let ra = self.release(a, exit);
                let rb = self.release(b, exit);
                self.combine(ra, rb)
            }
        }
    }

    /// `combine_releases`: in release order.
    fn combine(&mut self, first: Rel, second: Rel) -> Rel {
        match (first, second) {
            (Rel::Ok, Rel::Ok) => Rel::Ok,
            (Rel::Fail(a), Rel::Ok) => Rel::Fail(a),
            (Rel::Ok, Rel::Fail(b)) => Rel::Fail(b),
            (Rel::Fail(a), Rel::Fail(b)) => Rel::Fail(a.and(b)),
            (Rel::Panic, Rel::Ok) | (Rel::Ok, Rel::Panic) => Rel::Panic,
            (Rel::Panic, Rel::Fail(_) | Rel::Panic) | (Rel::Fail(_), Rel::Panic) => {
                self.incidents += 1;
                Rel::Panic
            }
        }
    }

    fn run(&mut self, layers: &[Layer], body: Fault) -> Outcome {
        let Some((layer, rest)) = layers.split_first() else {
            return match body {
                Fault::Ok => Outcome::Value(42),
                Fault::Err => Outcome::Err(PErr::Body),
                Fault::Panic => Outcome::Panic,
                Fault::Hang => unreachable!("the model runs programs without hangs"),
            };
        };
        match layer {
            Layer::Scope(node) => self.scope(node, rest, body),
            Layer::Stack(nodes) => self.stack(nodes, rest, body),
        }
    }

    fn scope(&mut self, node: &Node, rest: &[Layer], body: Fault) -> Outcome {
        match self.acquire(node) {
            Acq::Fail(failure) => {
                return Outcome::Err(PErr::Scope(Box::new(ScopeError::Acquire(failure))));
            }
            Acq::Panic => return Outcome::Panic,
            Acq::Ok => {}
        }
        let inner = self.run(rest, body);
        let exit = match inner {
            Outcome::Value(_) => ExitKind::Completed,
            Outcome::Err(_) => ExitKind::Failed,
            Outcome::Panic => ExitKind::Panicked,
        };
        let released = self.release(node, exit);
        let scope = |e: ScopeError<PErr, ProbeError>| Outcome::Err(PErr::Scope(Box::new(e)));
        match (inner, released) {
            (Outcome::Value(v), Rel::Ok) => Outcome::Value(v),
            (Outcome::Value(_), Rel::Fail(f)) => scope(ScopeError::Release(f)),
            (Outcome::Err(error), Rel::Ok) => scope(ScopeError::Body {
                error,
                release: None,
            }),
            (Outcome::Err(error), Rel::Fail(f)) => scope(ScopeError::Body {
                error,
                release: Some(f),
            }),
            (Outcome::Value(_) | Outcome::Err(_), Rel::Panic) => Outcome::Panic,
            (Outcome::Panic, Rel::Ok) => Outcome::Panic,
            (Outcome::Panic, Rel::Fail(_) | Rel::Panic) => {
                self.incidents += 1;
                Outcome::Panic
            }
        }
    }

    fn stack(&mut self, nodes: &[Node], rest: &[Layer], body: Fault) -> Outcome {
        let mut entered = Vec::new();
        let mut outcome = None;
        for node in nodes {
            match self.acquire(node) {
                Acq::Ok => entered.push(node),
                Acq::Fail(failure) => {
                    outcome = Some(Outcome::Err(PErr::Probe(failure)));
                    break;
                }
                Acq::Panic => {
                    outcome = Some(Outcome::Panic);
                    break;
                }
            }
        }
        let outcome = outcome.unwrap_or_else(|| self.run(rest, body));
        let body_exit = match &outcome {
            Outcome::Value(_) => ExitKind::Completed,
            Outcome::Err(_) => ExitKind::Failed,
            Outcome::Panic => ExitKind::Panicked,
        };
        let mut in_flight: Option<PErr> = None;
        let mut chained: Vec<Failure<PErr>> = Vec::new();
        let mut panicked = false;
        for node in entered.into_iter().rev() {
            let exit = if panicked {
                ExitKind::Panicked
            } else if in_flight.is_some() {
                ExitKind::Failed
            } else {
                body_exit
            };
            match self.release(node, exit) {
                Rel::Ok => {}
                Rel::Fail(f) => {
                    if exit == ExitKind::Completed {
                        in_flight = Some(PErr::Probe(f));
                    } else {
                        chained.push(Failure::Error(PErr::Probe(f)));
                    }
                }
                Rel::Panic => {
                    if panicked {
                        self.incidents += 1;
                    }
                    panicked = true;
                }
            }
        }
        let stack = |e: ScopeError<PErr, PErr>| Outcome::Err(PErr::Stack(Box::new(e)));
        let failures = usize::from(in_flight.is_some()) + chained.len();
        match outcome {
            Outcome::Panic => {
                if panicked {
                    self.incidents += 1;
                }
                self.incidents += failures;
                Outcome::Panic
            }
            _ if panicked => {
                self.incidents += failures;
                Outcome::Panic
            }
            Outcome::Value(v) => match in_flight {
                None => Outcome::Value(v),
                Some(x) => stack(ScopeError::Release(
                    chained.into_iter().fold(Failure::Error(x), Failure::and),
                )),
            },
            Outcome::Err(error) => stack(ScopeError::Body {
                error,
                release: chained.into_iter().reduce(Failure::and),
            }),
        }
    }
}

// ---------------------------------------------------------------------------
// Running and checking.

/// How long a cancellation program may be stuck before it is dropped (on the
/// runtime's clock: virtual on the reference runtime).
const STUCK: Duration = Duration::from_millis(10);

/// The cleanup timeout of the reference runtime's programs (virtual).
const REFERENCE_CLEANUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs one program on `harness` and checks it.
fn check_program<H: Harness>(
    harness: &H,
    binding: &Arc<dyn Binding>,
    program: &Program,
) -> Result<(), TestCaseError> {
    let real_hangs = H::VIRTUAL_TIME;
    let cleanup_timeout = if H::VIRTUAL_TIME {
        REFERENCE_CLEANUP_TIMEOUT
    } else {
        crate::harness::CLEANUP_TIMEOUT
    };
    let (rt, incidents) = recording_runtime(Arc::clone(binding), cleanup_timeout);
    let log = Log::new();
    let gate = (!real_hangs).then(Gate::default);
    let ctx = Ctx {
        rt: rt.clone(),
        log: log.clone(),
        gate: gate.clone(),
    };
    let cancelled = program.drop_after.is_some() || program.hangs();
    if cancelled {
        CANCELLED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    } else {
        MODELLED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let outcome = harness.block_on(async {
        if cancelled {
            let drop_at = drive_and_drop(&ctx, program).await;
            if let Some(gate) = &gate {
                gate.open();
            }
            let drained = rt.drain(Duration::from_secs(3600)).await;
            (
                None,
                Some(drop_at),
                drained.map(|_| ()).map_err(|e| e.to_string()),
            )
        } else {
            let result = AssertUnwindSafe(run_layers(&program.layers, program.body, &ctx))
                .catch_unwind()
                .await;
            let drained = rt.drain(Duration::from_secs(3600)).await;
            (
                Some(result),
                None,
                drained.map(|_| ()).map_err(|e| e.to_string()),
            )
        }
    });
    let (result, drop_at, drained) = outcome;
    prop_assert!(drained.is_ok(), "cleanups did not drain: {drained:?}");
    let incidents = incidents.all();
    check_invariants(program, &log, &incidents, drop_at, real_hangs)?;
    if let Some(result) = result {
        check_model(program, &log, &incidents, &rt, result)?;
    }
    Ok(())
}

/// Steps the program until `drop_after` steps, or until it is stuck; drops
/// it (as a timeout when it was stuck). Returns how many events the log had
/// at the drop.
async fn drive_and_drop(ctx: &Ctx, program: &Program) -> (usize, Cancel) {
    let mut stepper = Stepper::new(run_layers(&program.layers, program.body, ctx));
    let limit = program.drop_after.unwrap_or(u32::MAX);
    let mut reason = Cancel::Dropped;
    let mut steps = 0;
    while steps < limit {
        let step = ctx.rt.timeout(STUCK, stepper.step()).await;
        match step {
            Ok(Polled::Pending) => steps += 1,
            Ok(Polled::Ready(_) | Polled::Panicked(_)) => break,
            Err(_) => {
                reason = Cancel::Timeout;
                break;
            }
        }
    }
    let drop_at = ctx.log.events().len();
    awith::time::cancel_with(reason, stepper);
    (drop_at, reason)
}

fn check_invariants(
    program: &Program,
    log: &Log,
    incidents: &[Incident],
    drop_at: Option<(usize, Cancel)>,
    real_hangs: bool,
) -> Result<(), TestCaseError> {
    let events = log.events();
    let tags = log.tags();
    let pos = |event: &Event| events.iter().position(|e| e == event);
    let start_of = |id: u64| {
        events
            .iter()
            .position(|e| matches!(e, Event::ReleaseStart(i, _) if *i == id))
    };
    // A release that hangs (really, on the reference runtime) is abandoned at
    // the cleanup timeout, and with it the releases that were to run after it
    // in the same task (the parts of one composite resource): only then may
    // an acquired value go unreleased.
    let hung_release = program.leaves().iter().any(|leaf| {
        leaf.release == Fault::Hang
            && tags
                .get(&leaf.tag)
                .is_some_and(|&id| start_of(id).is_some() && !events.contains(&Event::Released(id)))
    });
    for (&tag, &id) in &tags {
        let drops = events.iter().filter(|e| **e == Event::Dropped(id)).count();
        prop_assert_eq!(
            drops,
            1,
            "leaf {} (value {}) dropped {} times: {:?}",
            tag,
            id,
            drops,
            events
        );
        let starts = log.release_exits(id);
        prop_assert!(
            starts.len() <= 1,
            "leaf {} released {} times: {:?}",
            tag,
            starts.len(),
            events
        );
        match start_of(id) {
            Some(start) => prop_assert!(start < pos(&Event::Dropped(id)).unwrap_or(usize::MAX)),
            None => prop_assert!(
                real_hangs && hung_release,
                "leaf {} acquired but never released, and no release hung: {:?} {:?}",
                tag,
                events,
                incidents
            ),
        }
        // A release decided before the cancellation was not told of it.
        if let (Some((drop_at, reason)), Some(start), Some(exit)) =
            (drop_at, start_of(id), starts.first())
        {
            if start < drop_at {
                prop_assert!(
                    *exit != ExitKind::Cancelled(reason),
                    "leaf {} released before the drop, told {:?}: {:?}",
                    tag,
                    exit,
                    events
                );
            }
        }
    }
    // Dependants are released before what they depend on.
    for (earlier, later) in dependencies(program) {
        for e in &earlier {
            for l in &later {
                let (Some(&eid), Some(&lid)) = (tags.get(e), tags.get(l)) else {
                    continue;
                };
                let (Some(e_start), Some(l_end)) = (start_of(eid), pos(&Event::Dropped(lid)))
                else {
                    continue;
                };
                prop_assert!(
                    l_end < e_start,
                    "leaf {} (needing {}) must be released before {}: {:?}",
                    l,
                    e,
                    e,
                    events
                );
            }
        }
    }
    if !program.has_faults() {
        prop_assert!(incidents.is_empty(), "no faults, yet: {:?}", incidents);
    }
    Ok(())
}

/// Pairs (held first, held later and released first) of leaf tag sets.
fn dependencies(program: &Program) -> Vec<(Vec<u32>, Vec<u32>)> {
    fn tags(node: &Node) -> Vec<u32> {
        match node {
            Node::Leaf(leaf) => vec![leaf.tag],
            Node::AndThen(a, b) | Node::Zip(a, b) => {
                let mut all = tags(a);
                all.extend(tags(b));
                all
            }
        }
    }
    fn within(node: &Node, out: &mut Vec<(Vec<u32>, Vec<u32>)>) {
        match node {
            Node::Leaf(_) => {}
            Node::AndThen(a, b) => {
                out.push((tags(a), tags(b)));
                within(a, out);
                within(b, out);
            }
            Node::Zip(a, b) => {
                within(a, out);
                within(b, out);
            }
        }
    }
    let mut out = Vec::new();
    let mut outer: Vec<u32> = Vec::new();
    for layer in &program.layers {
        let mine: Vec<Vec<u32>> = match layer {
            Layer::Scope(node) => {
                within(node, &mut out);
                vec![tags(node)]
            }
            Layer::Stack(nodes) => {
                nodes.iter().for_each(|n| within(n, &mut out));
                let entries: Vec<Vec<u32>> = nodes.iter().map(tags).collect();
                for (i, earlier) in entries.iter().enumerate() {
                    for later in &entries[i + 1..] {
                        out.push((earlier.clone(), later.clone()));
                    }
                }
                entries
            }
        };
        let all: Vec<u32> = mine.into_iter().flatten().collect();
        if !outer.is_empty() {
            out.push((outer.clone(), all.clone()));
        }
        outer.extend(all);
    }
    out
}

fn check_model(
    program: &Program,
    log: &Log,
    incidents: &[Incident],
    rt: &Runtime,
    result: Result<Result<u32, PErr>, Box<dyn std::any::Any + Send>>,
) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    let expected = model.run(&program.layers, program.body);
    match (&result, &expected) {
        (Ok(Ok(got)), Outcome::Value(want)) => prop_assert_eq!(got, want),
        (Ok(Err(got)), Outcome::Err(want)) => prop_assert_eq!(got, want),
        (Err(_), Outcome::Panic) => {}
        (got, want) => prop_assert!(
            false,
            "the program returned {:?}, the model says {:?}",
            got.as_ref().map_err(|_| "a panic"),
            want
        ),
    }
    let tags = log.tags();
    let got: BTreeMap<u32, ExitKind> = tags
        .iter()
        .filter_map(|(&tag, &id)| log.release_exits(id).first().map(|exit| (tag, *exit)))
        .collect();
    prop_assert_eq!(&got, &model.exits, "exits, per leaf: {:?}", log.events());
    prop_assert_eq!(
        incidents.len(),
        model.incidents,
        "incidents: {:?}",
        incidents
    );
    prop_assert_eq!(
        rt.cleanup_stats().spawned,
        0,
        "nothing handed to the runtime"
    );
    Ok(())
}

/// The number of cases: `AWITH_PROPTEST_CASES`, or 2,000.
pub fn cases() -> u32 {
    std::env::var("AWITH_PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000)
}

static MODELLED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static CANCELLED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Runs [`cases`] random programs on a fresh instance of `H`.
pub fn random_programs<H: Harness>() {
    crate::harness::quiet_probe_panics();
    let harness = H::new();
    let binding: Arc<dyn Binding> = Arc::new(harness.binding());
    let identity = harness.identity();
    harness.block_on(async { identity().expect("runs on the runtime under test") });
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&program(), |program| {
        check_program(&harness, &binding, &program)
    });
    if let Err(error) = result {
        panic!("{error}");
    }
    let load = |n: &std::sync::atomic::AtomicUsize| n.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "property: {} random programs on {}: {} checked against the model, {} cancelled",
        load(&MODELLED) + load(&CANCELLED),
        H::LABEL,
        load(&MODELLED),
        load(&CANCELLED)
    );
}
