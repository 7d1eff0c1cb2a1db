//! Property tests: random programs of nested scopes, `and_then`, `zip` and
//! `ExitStack`, where every acquire, body, release and pushed exit randomly
//! succeeds, fails, panics or hangs, releases and exits randomly suppress
//! what they are shown, values and acquire or release futures randomly panic
//! when dropped, and the whole program is randomly cancelled.
//!
//! A program is a stack of layers, outermost first — each a scope over a
//! resource tree (leaves are probes, inner nodes `and_then` or `zip`) or an
//! exit stack entering trees and pushing exits — around a body.
//!
//! Every failure and panic is named (`L3:Release`, `Exit(5)`, `Boom`,
//! `probe: release #3 panicked!`) and logged where it is raised, so each can
//! be followed to where it ended. For every program:
//!
//! - **Nothing lost, nothing invented**: each failure raised is returned (in
//!   the program's result, or as the panic it resumes), reported in exactly
//!   one incident, or suppressed by an exit that was shown it — and nothing
//!   is returned or reported that was not raised, nor twice.
//! - The invariants: every acquired value dropped exactly once, released at
//!   most once and only before that drop; released exactly once unless a
//!   cleanup timed out (and said so); a release decided before the
//!   cancellation not told `Cancelled`; dependants released before what
//!   they depend on (nested layers, `and_then`, stack entries); incidents
//!   only where the program has faults.
//!
//! A program that neither hangs nor is cancelled is also checked against a
//! **model** of awith's rules: the result exactly (nested `ScopeError`s and
//! `Failure`s included, or the panic's message), the exit each leaf's release
//! and each pushed exit was told, the incidents (how many, and which
//! failures they report), which failures were suppressed, and that nothing
//! was handed to the runtime.
//!
//! Hangs: on the reference runtime a hang is real (only the cleanup timeout,
//! on the virtual clock, ends it); on real runtimes it waits behind a gate the
//! test opens once the program has been dropped, so no case waits for a
//! real-time cleanup timeout.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use awith::rt::{Binding, Incident};
use awith::stack::ExitStack;
use awith::{
    Cancel, Exit, ExitKind, Failure, PartError, Resource, ResourceExt, Runtime, ScopeError, Verdict,
};
use futures::FutureExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::{Polled, Stepper, panic_message};
use crate::probe::{Conn, Event, Gate, Log, Plan, Probe, ProbeError, Step, yield_now};
use awith::test::harness::Harness;
use awith::test::recording_runtime;

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

/// A probe: its acquire and release faults, its await points, what it
/// suppresses, what panics when dropped, its tag.
#[derive(Clone, Debug)]
pub struct Leaf {
    acquire: Fault,
    release: Fault,
    awaits: u32,
    /// Its release, when it succeeds, suppresses what it was shown.
    suppress: bool,
    /// Its value panics when dropped.
    value_drop_panics: bool,
    /// Its acquire future panics when dropped unfinished.
    acquire_drop_panics: bool,
    /// Its release future panics when dropped unfinished.
    release_drop_panics: bool,
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

/// An exit pushed onto a stack.
#[derive(Clone, Debug)]
pub struct PushedExit {
    fault: Fault,
    /// When it succeeds, it suppresses what it was shown.
    suppress: bool,
    tag: u32,
}

/// What a stack's body puts on it, in order.
#[derive(Clone, Debug)]
pub enum Item {
    /// `stack.enter(tree)`.
    Enter(Node),
    /// `stack.push_exit(..)`.
    Exit(PushedExit),
}

/// One layer of a program.
#[derive(Clone, Debug)]
pub enum Layer {
    /// `tree.with(rt, |_| inner)`.
    Scope(Node),
    /// `ExitStack::with(rt, |stack| { enter or push each item; inner })`.
    Stack(Vec<Item>),
}

/// A random program.
#[derive(Clone, Debug)]
pub struct Program {
    layers: Vec<Layer>,
    body: Fault,
    /// Drop the program after this many steps.
    drop_after: Option<u32>,
}

fn walk<'a>(node: &'a Node, out: &mut Vec<&'a Leaf>) {
    match node {
        Node::Leaf(leaf) => out.push(leaf),
        Node::AndThen(a, b) | Node::Zip(a, b) => {
            walk(a, out);
            walk(b, out);
        }
    }
}

impl Program {
    fn leaves(&self) -> Vec<&Leaf> {
        let mut out = Vec::new();
        for layer in &self.layers {
            match layer {
                Layer::Scope(node) => walk(node, &mut out),
                Layer::Stack(items) => items.iter().for_each(|item| {
                    if let Item::Enter(node) = item {
                        walk(node, &mut out);
                    }
                }),
            }
        }
        out
    }

    fn exits(&self) -> Vec<&PushedExit> {
        self.layers
            .iter()
            .flat_map(|layer| match layer {
                Layer::Stack(items) => items.iter().collect(),
                Layer::Scope(_) => Vec::new(),
            })
            .filter_map(|item| match item {
                Item::Exit(exit) => Some(exit),
                Item::Enter(_) => None,
            })
            .collect()
    }

    fn hangs(&self) -> bool {
        self.body == Fault::Hang
            || self
                .leaves()
                .iter()
                .any(|l| l.acquire == Fault::Hang || l.release == Fault::Hang)
            || self.exits().iter().any(|x| x.fault == Fault::Hang)
    }

    fn has_faults(&self) -> bool {
        self.body != Fault::Ok
            || self.leaves().iter().any(|l| {
                l.acquire != Fault::Ok
                    || l.release != Fault::Ok
                    || l.value_drop_panics
                    || l.acquire_drop_panics
                    || l.release_drop_panics
            })
            || self.exits().iter().any(|x| x.fault != Fault::Ok)
    }

    /// Gives the leaves and the pushed exits their tags, in program order.
    fn numbered(mut self) -> Self {
        fn number(node: &mut Node, next: &mut u32) {
            match node {
                Node::Leaf(leaf) => {
                    leaf.tag = *next;
                    *next += 1;
                }
                Node::AndThen(a, b) | Node::Zip(a, b) => {
                    number(a, next);
                    number(b, next);
                }
            }
        }
        let mut next = 0;
        for layer in &mut self.layers {
            match layer {
                Layer::Scope(node) => number(node, &mut next),
                Layer::Stack(items) => {
                    for item in items {
                        match item {
                            Item::Enter(node) => number(node, &mut next),
                            Item::Exit(exit) => {
                                exit.tag = next;
                                next += 1;
                            }
                        }
                    }
                }
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

/// `true` once in `n`.
fn one_in(n: u32) -> impl Strategy<Value = bool> {
    (0..n).prop_map(|x| x == 0)
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = (
        fault(true),
        fault(true),
        0u32..3,
        one_in(6),
        (one_in(16), one_in(8), one_in(8)),
    )
        .prop_map(
            |(acquire, release, awaits, suppress, (value, acquiring, releasing))| {
                Node::Leaf(Leaf {
                    acquire,
                    release,
                    awaits,
                    suppress,
                    value_drop_panics: value,
                    acquire_drop_panics: acquiring,
                    release_drop_panics: releasing,
                    tag: 0,
                })
            },
        );
    leaf.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| Node::AndThen(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Node::Zip(Box::new(a), Box::new(b))),
        ]
    })
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        3 => node().prop_map(Item::Enter),
        1 => (fault(true), one_in(3)).prop_map(|(fault, suppress)| Item::Exit(PushedExit {
            fault,
            suppress,
            tag: 0,
        })),
    ]
}

/// Random programs of one to three layers.
pub fn program() -> impl Strategy<Value = Program> {
    let layer = prop_oneof![
        3 => node().prop_map(Layer::Scope),
        1 => prop::collection::vec(item(), 1..5).prop_map(Layer::Stack),
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

// ---------------------------------------------------------------------------
// Errors, and the names of failures.

/// A leaf's failure: which leaf, which phase.
#[derive(Clone, PartialEq)]
pub struct LeafErr {
    tag: u32,
    what: ProbeError,
}

impl fmt::Debug for LeafErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "L{}:{:?}", self.tag, self.what)
    }
}

/// The error every layer's body fails with.
#[derive(Clone, Debug, PartialEq)]
pub enum PErr {
    /// The innermost body failed.
    Boom,
    /// Pushed exit `n` failed.
    Exit(u32),
    /// A stack entry failed (to acquire, or to release).
    Probe(Failure<LeafErr>),
    /// A nested scope failed.
    Scope(Box<ScopeError<PErr, LeafErr>>),
    /// A nested exit stack failed.
    Stack(Box<ScopeError<PErr, PErr>>),
}

impl From<Failure<LeafErr>> for PErr {
    fn from(failure: Failure<LeafErr>) -> Self {
        PErr::Probe(failure)
    }
}

/// The failures and panics named in `text` (an error's `Debug`, an
/// incident's text): `Boom`, `Exit(n)`, `L<n>:<phase>`, and the probes'
/// panic messages, `probe: … #n …!`.
pub fn names(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let rest = &text[at..];
        let taken = if rest.starts_with("probe: ") {
            rest.find('!').map(|end| end + 1)
        } else if rest.starts_with("Boom") {
            Some(4)
        } else if rest.starts_with("Exit(") {
            rest.find(')').map(|end| end + 1)
        } else if let Some(number) = rest.strip_prefix('L') {
            let digits = number.chars().take_while(char::is_ascii_digit).count();
            let phase = number[digits..]
                .strip_prefix(':')
                .map(|phase| phase.chars().take_while(char::is_ascii_alphabetic).count());
            match phase {
                Some(letters) if digits > 0 && letters > 0 => Some(1 + digits + 1 + letters),
                _ => None,
            }
        } else {
            None
        };
        match taken {
            Some(len) => {
                found.push(rest[..len].to_owned());
                at += len;
            }
            None => at += rest.chars().next().map_or(1, char::len_utf8),
        }
    }
    found
}

/// The names of the failures an error holds.
fn named<T: fmt::Debug>(error: &T) -> Vec<String> {
    names(&format!("{error:?}"))
}

/// What an exit was shown, by name.
pub trait Shows {
    /// The failures in flight, by name.
    fn shows(&self) -> Vec<String>;
}

impl Shows for PErr {
    fn shows(&self) -> Vec<String> {
        named(self)
    }
}

impl Shows for Failure<PErr> {
    fn shows(&self) -> Vec<String> {
        named(self)
    }
}

/// The exit a part of a resource tree is told: what kind, and the failures
/// shown.
#[derive(Clone, Debug)]
pub struct Shown {
    kind: ExitKind,
    names: Vec<String>,
}

impl Shows for Shown {
    fn shows(&self) -> Vec<String> {
        self.names.clone()
    }
}

impl Shown {
    fn of<E: Shows>(exit: &Exit<'_, E>) -> Self {
        Shown {
            kind: exit.kind(),
            names: exit.error().map(Shows::shows).unwrap_or_default(),
        }
    }

    fn exit(&self) -> Exit<'_, Shown> {
        match self.kind {
            ExitKind::Completed => Exit::Completed,
            ExitKind::Failed => Exit::Failed(self),
            ExitKind::Panicked => Exit::Panicked,
            ExitKind::Cancelled(reason) => Exit::Cancelled(reason),
        }
    }
}

// ---------------------------------------------------------------------------
// Building and running programs.

/// What a program runs with, and what it notes as it runs.
#[derive(Clone)]
struct Ctx {
    rt: Runtime,
    log: Log,
    gate: Option<Gate>,
    /// What each suppressing exit was shown when it suppressed.
    suppressors: Arc<Mutex<Vec<Vec<String>>>>,
    /// The exit each pushed exit was told, by tag.
    pushed: Arc<Mutex<BTreeMap<u32, ExitKind>>>,
}

impl Ctx {
    fn suppressing(&self, shown: &Shown) {
        if shown.kind == ExitKind::Failed {
            self.suppressors
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(shown.names.clone());
        }
    }

    async fn hang(&self) {
        match &self.gate {
            Some(gate) => gate.wait().await,
            None => std::future::pending::<()>().await,
        }
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// A value of any resource tree (a struct, so that closures over it stay
/// general over its borrow's lifetime).
pub struct DynValue(Box<dyn std::any::Any + Send>);

impl fmt::Debug for DynValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DynValue")
    }
}
type DynReleaser = Box<
    dyn FnOnce(DynValue, &Shown, &Runtime) -> BoxFuture<'static, Result<Verdict, Failure<LeafErr>>>
        + Send,
>;
type DynAcquire = Box<
    dyn FnOnce(&Runtime) -> BoxFuture<'static, Result<(DynValue, DynReleaser), Failure<LeafErr>>>
        + Send,
>;

/// A resource tree of any shape, as one type, for a body of any error type
/// that can show its failures.
struct DynRes(DynAcquire);

impl<E: Shows> Resource<E> for DynRes {
    type Value = DynValue;
    type Error = LeafErr;
    type Releaser = DynReleaser;

    fn acquire(
        self,
        rt: &Runtime,
    ) -> impl Future<Output = Result<(DynValue, DynReleaser), Failure<LeafErr>>> + Send + 'static
    {
        (self.0)(rt)
    }

    fn release(
        releaser: DynReleaser,
        value: DynValue,
        exit: &Exit<'_, E>,
        rt: &Runtime,
    ) -> impl Future<Output = Result<Verdict, Failure<LeafErr>>> + Send + 'static {
        releaser(value, &Shown::of(exit), rt)
    }
}

fn erase<R>(resource: R) -> DynRes
where
    R: Resource<Shown, Error = LeafErr> + Send + 'static,
{
    DynRes(Box::new(move |rt: &Runtime| {
        let acquire = resource.acquire(rt);
        Box::pin(async move {
            let (value, releaser) = acquire.await?;
            let release: DynReleaser = Box::new(move |value: DynValue, shown: &Shown, rt| {
                let value = *value
                    .0
                    .downcast::<R::Value>()
                    .unwrap_or_else(|_| unreachable!("the value of this resource"));
                Box::pin(R::release(releaser, value, &shown.exit(), rt))
            });
            Ok((DynValue(Box::new(value)), release))
        })
    }))
}

/// A probe whose release may suppress, its errors named by its tag.
struct LeafRes {
    probe: Probe,
    tag: u32,
    suppress: bool,
    ctx: Ctx,
}

impl Resource<Shown> for LeafRes {
    type Value = Conn;
    type Error = LeafErr;
    type Releaser = (Probe, u32, bool, Ctx);

    fn acquire(
        self,
        rt: &Runtime,
    ) -> impl Future<Output = Result<(Conn, Self::Releaser), Failure<LeafErr>>> + Send + 'static
    {
        let LeafRes {
            probe,
            tag,
            suppress,
            ctx,
        } = self;
        let acquire = Resource::<Shown>::acquire(probe, rt);
        async move {
            match acquire.await {
                Ok((conn, probe)) => Ok((conn, (probe, tag, suppress, ctx))),
                Err(failure) => Err(failure.map(|what| LeafErr { tag, what })),
            }
        }
    }

    fn release(
        (probe, tag, suppress, ctx): Self::Releaser,
        conn: Conn,
        exit: &Exit<'_, Shown>,
        rt: &Runtime,
    ) -> impl Future<Output = Result<Verdict, Failure<LeafErr>>> + Send + 'static {
        let shown = Shown::of(exit);
        let release = <Probe as Resource<Shown>>::release(probe, conn, exit, rt);
        async move {
            match release.await {
                Ok(_) if suppress => {
                    ctx.suppressing(&shown);
                    Ok(Verdict::Suppress)
                }
                Ok(_) => Ok(Verdict::Propagate),
                Err(failure) => Err(failure.map(|what| LeafErr { tag, what })),
            }
        }
    }
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
                value_drop_panics: leaf.value_drop_panics,
                acquire_drop_panics: leaf.acquire_drop_panics,
                release_drop_panics: leaf.release_drop_panics,
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
            erase(LeafRes {
                probe,
                tag: leaf.tag,
                suppress: leaf.suppress,
                ctx: ctx.clone(),
            })
        }
        Node::AndThen(a, b) => {
            let (b, ctx2) = ((**b).clone(), ctx.clone());
            // Both parts fail with `LeafErr`: the part that failed is in the
            // error's tag already.
            let composed = build(a, ctx).and_then(move |_: &mut DynValue| build(&b, &ctx2));
            erase(composed.map_err(PartError::into_inner))
        }
        Node::Zip(a, b) => erase(
            build(a, ctx)
                .zip(build(b, ctx))
                .map_err(PartError::into_inner),
        ),
    }
}

/// Pushes exit `exit` onto `stack`.
fn push(stack: &mut ExitStack<PErr, Verdict>, exit: &PushedExit, ctx: &Ctx) {
    let (exit, ctx) = (exit.clone(), ctx.clone());
    stack.push_exit(move |told: &Exit<'_, Failure<PErr>>| {
        let shown = Shown::of(told);
        ctx.pushed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(exit.tag, shown.kind);
        async move {
            yield_now().await;
            match exit.fault {
                Fault::Ok | Fault::Hang => {
                    if exit.fault == Fault::Hang {
                        ctx.hang().await;
                    }
                    if exit.suppress {
                        ctx.suppressing(&shown);
                        Ok(Verdict::Suppress)
                    } else {
                        Ok(Verdict::Propagate)
                    }
                }
                Fault::Err => {
                    ctx.log
                        .push(Event::Raised(format!("{:?}", PErr::Exit(exit.tag))));
                    Err(PErr::Exit(exit.tag))
                }
                Fault::Panic => {
                    let message = format!("probe: exit #{} panicked!", exit.tag);
                    ctx.log.push(Event::Raised(message.clone()));
                    std::panic::panic_any(message)
                }
            }
        }
    });
}

/// What the innermost body panics with.
const BODY_PANIC: &str = "probe: body panicked!";

fn run_layers<'a>(
    layers: &'a [Layer],
    body: Fault,
    ctx: &'a Ctx,
) -> BoxFuture<'a, Result<Option<u32>, PErr>> {
    Box::pin(async move {
        match layers.split_first() {
            None => {
                yield_now().await;
                match body {
                    Fault::Ok => Ok(Some(42)),
                    Fault::Err => {
                        ctx.log.push(Event::Raised("Boom".into()));
                        Err(PErr::Boom)
                    }
                    Fault::Panic => {
                        ctx.log.push(Event::Raised(BODY_PANIC.into()));
                        std::panic::panic_any(BODY_PANIC.to_owned())
                    }
                    Fault::Hang => {
                        ctx.hang().await;
                        Ok(Some(42))
                    }
                }
            }
            Some((Layer::Scope(node), rest)) => build(node, ctx)
                .with_suppression(&ctx.rt, |_: &mut DynValue| run_layers(rest, body, ctx))
                .await
                .map(Option::flatten)
                .map_err(|e| PErr::Scope(Box::new(e))),
            Some((Layer::Stack(items), rest)) => {
                ExitStack::<PErr, Verdict>::with(&ctx.rt, async |stack| {
                    for item in items {
                        match item {
                            Item::Enter(node) => {
                                stack.enter(build(node, ctx)).await?;
                            }
                            Item::Exit(exit) => push(stack, exit, ctx),
                        }
                    }
                    run_layers(rest, body, ctx).await
                })
                .await
                .map(Option::flatten)
                .map_err(|e| PErr::Stack(Box::new(e)))
            }
        }
    })
}

// ---------------------------------------------------------------------------
// The model.

/// How a stage ends in the model.
#[derive(Debug, PartialEq)]
enum Outcome {
    Value(Option<u32>),
    Err(PErr),
    Panic(String),
}

/// How an acquire ends in the model.
enum Acq {
    Ok,
    Fail(Failure<LeafErr>),
    Panic(String),
}

/// How a release (or a pushed exit) ends in the model: `Ok(suppresses)`.
enum Rel<F> {
    Ok(bool),
    Fail(F),
    Panic(String),
}

fn leaf_error(tag: u32, what: ProbeError) -> Failure<LeafErr> {
    Failure::Error(LeafErr { tag, what })
}

#[derive(Default)]
struct Model {
    exits: BTreeMap<u32, ExitKind>,
    incidents: usize,
    /// The failures the incidents report, by name.
    reported: Vec<String>,
    /// The failures suppressed, by name.
    suppressed: Vec<String>,
}

impl Model {
    fn report(&mut self, names: Vec<String>) {
        self.incidents += 1;
        self.reported.extend(names);
    }

    /// What a part's release did while a panic is about to resume.
    fn report_during_panic<F: fmt::Debug>(&mut self, released: Rel<F>) {
        match released {
            Rel::Ok(_) => {}
            Rel::Fail(failure) => self.report(named(&failure)),
            Rel::Panic(message) => self.report(vec![message]),
        }
    }

    fn acquire(&mut self, node: &Node) -> Acq {
        match node {
            Node::Leaf(leaf) => match leaf.acquire {
                Fault::Ok => Acq::Ok,
                Fault::Err => Acq::Fail(leaf_error(leaf.tag, ProbeError::Acquire)),
                Fault::Panic => Acq::Panic(format!("probe: acquire #{} panicked!", leaf.tag)),
                Fault::Hang => unreachable!("the model runs programs without hangs"),
            },
            Node::AndThen(a, b) => match self.acquire(a) {
                Acq::Ok => match self.acquire(b) {
                    Acq::Ok => Acq::Ok,
                    Acq::Fail(fb) => self.release_sibling(a, fb),
                    Acq::Panic(message) => {
                        self.release_during_panic(a);
                        Acq::Panic(message)
                    }
                },
                other => other,
            },
            Node::Zip(a, b) => {
                let ra = self.acquire(a);
                let rb = self.acquire(b);
                match (ra, rb) {
                    (Acq::Ok, Acq::Ok) => Acq::Ok,
                    (Acq::Ok, Acq::Fail(fb)) => self.release_sibling(a, fb),
                    (Acq::Fail(fa), Acq::Ok) => self.release_sibling(b, fa),
                    (Acq::Fail(fa), Acq::Fail(fb)) => Acq::Fail(fa.and(fb)),
                    (Acq::Panic(pa), Acq::Ok) => {
                        self.release_during_panic(b);
                        Acq::Panic(pa)
                    }
                    (Acq::Panic(pa), Acq::Fail(fb)) => {
                        self.report(named(&fb));
                        Acq::Panic(pa)
                    }
                    (Acq::Panic(pa), Acq::Panic(pb)) => {
                        self.report(vec![pb]);
                        Acq::Panic(pa)
                    }
                    (Acq::Ok, Acq::Panic(pb)) => {
                        self.release_during_panic(a);
                        Acq::Panic(pb)
                    }
                    (Acq::Fail(fa), Acq::Panic(pb)) => {
                        self.report(named(&fa));
                        Acq::Panic(pb)
                    }
                }
            }
        }
    }

    /// Releases `node`, whose sibling failed to acquire with `failure`.
    fn release_sibling(&mut self, node: &Node, failure: Failure<LeafErr>) -> Acq {
        match self.release(node, ExitKind::Cancelled(Cancel::SiblingFailed)) {
            Rel::Ok(_) => Acq::Fail(failure),
            Rel::Fail(released) => Acq::Fail(failure.and(released)),
            Rel::Panic(message) => {
                self.report(named(&failure));
                Acq::Panic(message)
            }
        }
    }

    fn release_during_panic(&mut self, node: &Node) {
        let released = self.release(node, ExitKind::Panicked);
        self.report_during_panic(released);
    }

    fn release(&mut self, node: &Node, exit: ExitKind) -> Rel<Failure<LeafErr>> {
        match node {
            Node::Leaf(leaf) => {
                self.exits.insert(leaf.tag, exit);
                let value_panic = || format!("probe: value #{} panicked when dropped!", leaf.tag);
                match leaf.release {
                    Fault::Ok | Fault::Err if leaf.value_drop_panics => Rel::Panic(value_panic()),
                    Fault::Ok => Rel::Ok(leaf.suppress),
                    Fault::Err => Rel::Fail(leaf_error(leaf.tag, ProbeError::Release)),
                    Fault::Panic => Rel::Panic(format!("probe: release #{} panicked!", leaf.tag)),
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
    fn combine(
        &mut self,
        first: Rel<Failure<LeafErr>>,
        second: Rel<Failure<LeafErr>>,
    ) -> Rel<Failure<LeafErr>> {
        match (first, second) {
            (Rel::Ok(a), Rel::Ok(b)) => Rel::Ok(a || b),
            (Rel::Fail(a), Rel::Ok(_)) => Rel::Fail(a),
            (Rel::Ok(_), Rel::Fail(b)) => Rel::Fail(b),
            (Rel::Fail(a), Rel::Fail(b)) => Rel::Fail(a.and(b)),
            (Rel::Panic(message), other) | (other, Rel::Panic(message)) => {
                self.report_during_panic(other);
                Rel::Panic(message)
            }
        }
    }

    fn run(&mut self, layers: &[Layer], body: Fault) -> Outcome {
        let Some((layer, rest)) = layers.split_first() else {
            return match body {
                Fault::Ok => Outcome::Value(Some(42)),
                Fault::Err => Outcome::Err(PErr::Boom),
                Fault::Panic => Outcome::Panic(BODY_PANIC.into()),
                Fault::Hang => unreachable!("the model runs programs without hangs"),
            };
        };
        match layer {
            Layer::Scope(node) => self.scope(node, rest, body),
            Layer::Stack(items) => self.stack(items, rest, body),
        }
    }

    fn scope(&mut self, node: &Node, rest: &[Layer], body: Fault) -> Outcome {
        match self.acquire(node) {
            Acq::Fail(failure) => {
                return Outcome::Err(PErr::Scope(Box::new(ScopeError::Acquire(failure))));
            }
            Acq::Panic(message) => return Outcome::Panic(message),
            Acq::Ok => {}
        }
        let inner = self.run(rest, body);
        let exit = kind_of(&inner);
        let released = self.release(node, exit);
        let scope = |e: ScopeError<PErr, LeafErr>| Outcome::Err(PErr::Scope(Box::new(e)));
        match (inner, released) {
            (Outcome::Value(v), Rel::Ok(_)) => Outcome::Value(v),
            (Outcome::Value(_), Rel::Fail(f)) => scope(ScopeError::Release(f)),
            (Outcome::Value(_), Rel::Panic(message)) => Outcome::Panic(message),
            (Outcome::Err(error), Rel::Ok(true)) => {
                self.suppressed.extend(named(&error));
                Outcome::Value(None)
            }
            (Outcome::Err(error), Rel::Ok(false)) => scope(ScopeError::Body {
                error,
                release: None,
            }),
            (Outcome::Err(error), Rel::Fail(f)) => scope(ScopeError::Body {
                error,
                release: Some(f),
            }),
            (Outcome::Err(error), Rel::Panic(message)) => {
                self.report(named(&error));
                Outcome::Panic(message)
            }
            (Outcome::Panic(message), released) => {
                self.report_during_panic(released);
                Outcome::Panic(message)
            }
        }
    }

    fn stack(&mut self, items: &[Item], rest: &[Layer], body: Fault) -> Outcome {
        let mut entered = Vec::new();
        let mut outcome = None;
        for item in items {
            match item {
                Item::Exit(_) => entered.push(item),
                Item::Enter(node) => match self.acquire(node) {
                    Acq::Ok => entered.push(item),
                    Acq::Fail(failure) => {
                        outcome = Some(Outcome::Err(PErr::Probe(failure)));
                        break;
                    }
                    Acq::Panic(message) => {
                        outcome = Some(Outcome::Panic(message));
                        break;
                    }
                },
            }
        }
        let outcome = outcome.unwrap_or_else(|| self.run(rest, body));
        // What is in flight, as `stack/unwind.rs` keeps it.
        let mut failures: Option<Failure<PErr>> = None;
        let mut body_error = false;
        let mut output_lost = false;
        let mut panic: Option<String> = None;
        let output = match outcome {
            Outcome::Value(v) => Some(v),
            Outcome::Err(error) => {
                failures = Some(Failure::Error(error));
                body_error = true;
                None
            }
            Outcome::Panic(message) => {
                panic = Some(message);
                None
            }
        };
        for item in entered.into_iter().rev() {
            let exit = if panic.is_some() {
                ExitKind::Panicked
            } else if failures.is_some() {
                ExitKind::Failed
            } else {
                ExitKind::Completed
            };
            let ended: Rel<PErr> = match item {
                Item::Enter(node) => match self.release(node, exit) {
                    Rel::Ok(suppress) => Rel::Ok(suppress),
                    Rel::Fail(f) => Rel::Fail(PErr::Probe(f)),
                    Rel::Panic(message) => Rel::Panic(message),
                },
                Item::Exit(pushed) => {
                    self.exits.insert(pushed.tag, exit);
                    match pushed.fault {
                        Fault::Ok => Rel::Ok(pushed.suppress),
                        Fault::Err => Rel::Fail(PErr::Exit(pushed.tag)),
                        Fault::Panic => {
                            Rel::Panic(format!("probe: exit #{} panicked!", pushed.tag))
                        }
                        Fault::Hang => unreachable!("the model runs programs without hangs"),
                    }
                }
            };
            match ended {
                Rel::Ok(true) if panic.is_none() => {
                    if let Some(suppressed) = failures.take() {
                        self.suppressed.extend(named(&suppressed));
                        body_error = false;
                    }
                }
                Rel::Ok(_) => {}
                Rel::Fail(error) if panic.is_some() => self.report(named(&error)),
                Rel::Fail(error) => {
                    output_lost = true;
                    failures = Some(match failures {
                        None => Failure::Error(error),
                        Some(before) => before.and(Failure::Error(error)),
                    });
                }
                Rel::Panic(message) if panic.is_some() => self.report(vec![message]),
                Rel::Panic(message) => {
                    panic = Some(message);
                    if let Some(lost) = failures.take() {
                        body_error = false;
                        self.report(named(&lost));
                    }
                }
            }
        }
        let stack = |e: ScopeError<PErr, PErr>| Outcome::Err(PErr::Stack(Box::new(e)));
        if let Some(message) = panic {
            return Outcome::Panic(message);
        }
        match (output, failures) {
            (Some(v), None) if !output_lost => Outcome::Value(v),
            (Some(_), None) | (None, None) => Outcome::Value(None),
            (Some(_), Some(f)) => stack(ScopeError::Release(f)),
            (None, Some(f)) if body_error => {
                let mut all: Vec<PErr> = f.errors().cloned().collect();
                let error = all.remove(0);
                let release = all.into_iter().map(Failure::Error).reduce(Failure::and);
                stack(ScopeError::Body { error, release })
            }
            (None, Some(f)) => stack(ScopeError::Release(f)),
        }
    }
}

fn kind_of(outcome: &Outcome) -> ExitKind {
    match outcome {
        Outcome::Value(_) => ExitKind::Completed,
        Outcome::Err(_) => ExitKind::Failed,
        Outcome::Panic(_) => ExitKind::Panicked,
    }
}

// ---------------------------------------------------------------------------
// Running and checking.

/// How long a cancellation program may be stuck before it is dropped (on the
/// runtime's clock: virtual on the reference runtime).
const STUCK: Duration = Duration::from_millis(10);

/// The cleanup timeout of the reference runtime's programs (virtual).
const REFERENCE_CLEANUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How a program ended, if it did.
type Ran = Result<Result<Option<u32>, PErr>, Box<dyn std::any::Any + Send>>;

/// Runs one program on `harness` and checks it.
fn check_program<H: Harness>(
    harness: &H,
    binding: &Arc<dyn Binding>,
    program: &Program,
    counts: &Counts,
) -> Result<(), TestCaseError> {
    let real_hangs = H::VIRTUAL_TIME;
    let cleanup_timeout = if H::VIRTUAL_TIME {
        REFERENCE_CLEANUP_TIMEOUT
    } else {
        awith::test::CLEANUP_TIMEOUT
    };
    let (rt, incidents) = recording_runtime(Arc::clone(binding), cleanup_timeout);
    let log = Log::new();
    let gate = (!real_hangs).then(Gate::default);
    let ctx = Ctx {
        rt: rt.clone(),
        log: log.clone(),
        gate: gate.clone(),
        suppressors: Arc::default(),
        pushed: Arc::default(),
    };
    let cancelled = program.drop_after.is_some() || program.hangs();
    let count = if cancelled {
        &counts.cancelled
    } else {
        &counts.modelled
    };
    count.set(count.get() + 1);
    let (ran, drop_at, drained) = harness.block_on(async {
        let (ran, drop_at) = if cancelled {
            let (ran, drop_at) = drive_and_drop(&ctx, program).await;
            if let Some(gate) = &gate {
                gate.open();
            }
            (ran, Some(drop_at))
        } else {
            let ran = AssertUnwindSafe(run_layers(&program.layers, program.body, &ctx))
                .catch_unwind()
                .await;
            (Some(ran), None)
        };
        let drained = rt.drain(Duration::from_secs(3600)).await;
        (ran, drop_at, drained.map(|_| ()).map_err(|e| e.to_string()))
    });
    prop_assert!(drained.is_ok(), "cleanups did not drain: {drained:?}");
    let incidents = incidents.all();
    check_invariants(program, &log, &incidents, drop_at, real_hangs)?;
    let suppressed = check_accounting(&log, &incidents, &ctx, ran.as_ref())?;
    if !cancelled {
        let ran = ran.unwrap_or_else(|| unreachable!("a program that is not cancelled ends"));
        check_model(program, &log, &incidents, &ctx, &ran, &suppressed)?;
    }
    Ok(())
}

/// Steps the program until `drop_after` steps, or until it is stuck; drops
/// it (as a timeout when it was stuck). Returns how it ended, if it did,
/// and how many events the log had at the drop.
async fn drive_and_drop(ctx: &Ctx, program: &Program) -> (Option<Ran>, (usize, Cancel)) {
    let mut stepper = Stepper::new(run_layers(&program.layers, program.body, ctx));
    let limit = program.drop_after.unwrap_or(u32::MAX);
    let mut reason = Cancel::Dropped;
    let mut steps = 0;
    let mut ran = None;
    while steps < limit {
        let step = ctx.rt.timeout(STUCK, stepper.step()).await;
        match step {
            Ok(Polled::Pending) => steps += 1,
            Ok(Polled::Ready(result)) => {
                ran = Some(Ok(result));
                break;
            }
            Ok(Polled::Panicked(panic)) => {
                ran = Some(Err(panic));
                break;
            }
            Err(_) => {
                reason = Cancel::Timeout;
                break;
            }
        }
    }
    let drop_at = ctx.log.events().len();
    awith::time::cancel_with(reason, stepper);
    (ran, (drop_at, reason))
}

/// The failures named in each incident, and the incident's kind.
fn incident_names(incident: &Incident) -> (&'static str, Vec<String>) {
    match incident {
        Incident::ErrorLostToPanic { error } => ("lost to a panic", names(error)),
        Incident::ReleaseFailedDuringPanic { error } => ("failed during a panic", names(error)),
        Incident::ReleasePanickedDuringPanic { message } => {
            ("panicked during a panic", names(message))
        }
        Incident::CleanupFailed { error, .. } => ("cleanup failed", names(error)),
        Incident::CleanupPanicked { message, .. } => ("cleanup panicked", names(message)),
        Incident::Unreturned { failure, .. } => ("unreturned", names(failure)),
        Incident::BackgroundPanicked { message, .. } => ("background panicked", names(message)),
        Incident::BackgroundFailed { error, .. } => ("background failed", names(error)),
        _ => ("other", Vec::new()),
    }
}

/// Removes one of each of `names` from `pool`; the ones not found.
fn take_from(pool: &mut Vec<String>, names: &[String]) -> Vec<String> {
    let mut missing = Vec::new();
    for name in names {
        match pool.iter().position(|n| n == name) {
            Some(at) => {
                pool.swap_remove(at);
            }
            None => missing.push(name.clone()),
        }
    }
    missing
}

/// Nothing lost, nothing invented: every failure and panic raised is
/// returned, reported once, or suppressed by an exit that was shown it; and
/// nothing is returned or reported that was not raised. Returns the names of
/// the failures that were suppressed.
fn check_accounting(
    log: &Log,
    incidents: &[Incident],
    ctx: &Ctx,
    ran: Option<&Ran>,
) -> Result<Vec<String>, TestCaseError> {
    let events = log.events();
    let raised: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Raised(name) => Some(name.clone()),
            _ => None,
        })
        .collect();
    let returned = match ran {
        None | Some(Ok(Ok(_))) => Vec::new(),
        Some(Ok(Err(error))) => named(error),
        Some(Err(panic)) => names(panic_message(&**panic)),
    };
    let mut left = raised.clone();
    let invented = take_from(&mut left, &returned);
    prop_assert!(
        invented.is_empty(),
        "returned but never raised (or returned twice): {:?}; raised {:?}; {:?}",
        invented,
        raised,
        events
    );
    for incident in incidents {
        let (_, named) = incident_names(incident);
        let invented = take_from(&mut left, &named);
        prop_assert!(
            invented.is_empty(),
            "reported but never raised, or already returned or reported: {:?} in {:?}; raised {:?}; returned {:?}; incidents {:?}",
            invented,
            incident,
            raised,
            returned,
            incidents
        );
    }
    // What is left was neither returned nor reported: each must have been
    // suppressed by an exit that was shown it.
    let suppressors = ctx
        .suppressors
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for name in &left {
        prop_assert!(
            !name.starts_with("probe: "),
            "a panic neither resumed nor reported: {:?}; incidents {:?}; {:?}",
            name,
            incidents,
            events
        );
        prop_assert!(
            suppressors.iter().any(|shown| shown.contains(name)),
            "a failure lost: {:?} was neither returned, nor reported, nor shown to an exit that suppressed; returned {:?}; incidents {:?}; suppressors {:?}; {:?}",
            name,
            returned,
            incidents,
            suppressors,
            events
        );
    }
    Ok(left)
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
            Layer::Stack(items) => {
                let nodes: Vec<&Node> = items
                    .iter()
                    .filter_map(|item| match item {
                        Item::Enter(node) => Some(node),
                        Item::Exit(_) => None,
                    })
                    .collect();
                nodes.iter().for_each(|n| within(n, &mut out));
                let entries: Vec<Vec<u32>> = nodes.iter().map(|n| tags(n)).collect();
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
    ctx: &Ctx,
    ran: &Ran,
    suppressed: &[String],
) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    let expected = model.run(&program.layers, program.body);
    match (ran, &expected) {
        (Ok(Ok(got)), Outcome::Value(want)) => prop_assert_eq!(got, want),
        (Ok(Err(got)), Outcome::Err(want)) => prop_assert_eq!(got, want),
        (Err(panic), Outcome::Panic(want)) => prop_assert_eq!(panic_message(&**panic), want),
        (got, want) => prop_assert!(
            false,
            "the program returned {:?}, the model says {:?}",
            got.as_ref().map_err(|panic| panic_message(&**panic)),
            want
        ),
    }
    let tags = log.tags();
    let mut got: BTreeMap<u32, ExitKind> = tags
        .iter()
        .filter_map(|(&tag, &id)| log.release_exits(id).first().map(|exit| (tag, *exit)))
        .collect();
    got.extend(
        ctx.pushed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter(),
    );
    prop_assert_eq!(
        &got,
        &model.exits,
        "exits, per leaf and exit: {:?}",
        log.events()
    );
    prop_assert_eq!(
        incidents.len(),
        model.incidents,
        "incidents: {:?}, the model reports {:?}",
        incidents,
        model.reported
    );
    let mut reported: Vec<String> = incidents
        .iter()
        .flat_map(|incident| incident_names(incident).1)
        .collect();
    reported.sort();
    model.reported.sort();
    prop_assert_eq!(reported, model.reported, "reported: {:?}", incidents);
    let mut suppressed = suppressed.to_vec();
    suppressed.sort();
    model.suppressed.sort();
    prop_assert_eq!(suppressed, model.suppressed, "suppressed");
    prop_assert_eq!(
        ctx.rt.cleanup_stats().spawned,
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

/// The programs one run checked: against the model, or cancelled. Each run
/// (each runtime's test) counts its own: the runtimes' tests share a process.
#[derive(Default)]
struct Counts {
    modelled: std::cell::Cell<usize>,
    cancelled: std::cell::Cell<usize>,
}

/// Runs [`cases`] random programs on a fresh instance of `H`.
pub fn random_programs<H: Harness>() {
    crate::quiet_probe_panics();
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
    let counts = Counts::default();
    let result = runner.run(&program(), |program| {
        check_program(&harness, &binding, &program, &counts)
    });
    if let Err(error) = result {
        panic!("{error}");
    }
    let (modelled, cancelled) = (counts.modelled.get(), counts.cancelled.get());
    eprintln!(
        "property: {} random programs on {}: {modelled} checked against the model, {cancelled} cancelled",
        modelled + cancelled,
        H::LABEL,
    );
}
