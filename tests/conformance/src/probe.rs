//! [`Probe`]: an instrumented resource that logs every event of its scope.
//!
//! Each phase (acquire, body, release) passes `awaits` await points — each a
//! yield, logged — and then succeeds, fails or panics as its [`Step`] says.
//! The value ([`Conn`]) logs its own drop, so a test sees every release, its
//! [`ExitKind`], and whether a value leaked or was released twice.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use awith::{Exit, ExitKind, Failure, Resource, Runtime, Verdict};

/// What a phase does after its await points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// Succeeds.
    Ok,
    /// Returns an error.
    Err,
    /// Panics (with a message starting `probe:`, which the quiet panic hook
    /// does not print).
    Panic,
}

impl Step {
    /// All three steps.
    pub const ALL: [Step; 3] = [Step::Ok, Step::Err, Step::Panic];
}

/// What a probe scope does, phase by phase.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// The acquire's ending.
    pub acquire: Step,
    /// The body's ending.
    pub body: Step,
    /// The release's ending.
    pub release: Step,
    /// Await points (yields) in each phase.
    pub awaits: u32,
    /// A runtime sleep in the acquire, after its yields.
    pub acquire_sleep: Option<Duration>,
    /// The acquire never finishes (it waits forever after its yields).
    pub acquire_hangs: bool,
    /// A runtime sleep in the release, after its yields (the release then
    /// really waits for the runtime's timer).
    pub release_sleep: Option<Duration>,
    /// The release never finishes (it waits forever after its yields).
    pub release_hangs: bool,
    /// The value's `Drop` panics (after logging `Dropped`).
    pub value_drop_panics: bool,
    /// The acquire future panics when dropped before it finished.
    pub acquire_drop_panics: bool,
    /// The release future panics when dropped before it finished.
    pub release_drop_panics: bool,
}

impl Plan {
    /// Every phase succeeds, with `awaits` await points each.
    pub fn ok(awaits: u32) -> Self {
        Plan {
            acquire: Step::Ok,
            body: Step::Ok,
            release: Step::Ok,
            awaits,
            acquire_sleep: None,
            acquire_hangs: false,
            release_sleep: None,
            release_hangs: false,
            value_drop_panics: false,
            acquire_drop_panics: false,
            release_drop_panics: false,
        }
    }

    /// The phases end as given, with `awaits` await points each.
    pub fn steps(acquire: Step, body: Step, release: Step, awaits: u32) -> Self {
        Plan {
            acquire,
            body,
            release,
            ..Plan::ok(awaits)
        }
    }
}

/// The probe's errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeError {
    /// The acquire failed.
    Acquire,
    /// The body failed.
    Body,
    /// The release failed.
    Release,
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProbeError::Acquire => "probe acquire failed",
            ProbeError::Body => "probe body failed",
            ProbeError::Release => "probe release failed",
        })
    }
}

impl std::error::Error for ProbeError {}

/// One logged event. Ids are unique per acquired value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The acquire started.
    AcquireStart,
    /// The acquire passed await point `n`.
    AcquireAwait(u32),
    /// The acquire yielded value `id`.
    Acquired(u64),
    /// The acquire failed.
    AcquireFailed,
    /// The body started with value `id`.
    BodyStart(u64),
    /// The body passed await point `n`.
    BodyAwait(u32),
    /// The body finished (`Ok` or `Err`; a panic logs nothing).
    BodyEnd(u64),
    /// The release of `id` started, told this exit.
    ReleaseStart(u64, ExitKind),
    /// The release passed await point `n`.
    ReleaseAwait(u32),
    /// The release of `id` succeeded.
    Released(u64),
    /// The release of `id` failed.
    ReleaseFailed(u64),
    /// Value `id` was dropped.
    Dropped(u64),
    /// Value `id` belongs to the probe tagged `tag`.
    Tag(u64, u32),
    /// An acquire future was dropped before it finished.
    AcquireDropped,
    /// The release future of `id` was dropped before it finished.
    ReleaseDropped(u64),
    /// A tagged probe raised a failure or a panic: `L<tag>:Acquire`,
    /// `L<tag>:Release`, or the panic's message (`probe: … #<tag> …!`).
    Raised(String),
}

/// A shared, thread-safe event log.
#[derive(Clone, Debug, Default)]
pub struct Log {
    events: Arc<Mutex<Vec<Event>>>,
}

impl Log {
    /// An empty log.
    pub fn new() -> Self {
        Log::default()
    }

    /// Appends an event.
    pub fn push(&self, event: Event) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event);
    }

    /// A copy of the events so far.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many events match.
    pub fn count(&self, matches: impl Fn(&Event) -> bool) -> usize {
        self.events().iter().filter(|e| matches(e)).count()
    }

    /// The ids of all acquired values.
    pub fn acquired(&self) -> Vec<u64> {
        self.events()
            .iter()
            .filter_map(|e| match e {
                Event::Acquired(id) => Some(*id),
                _ => None,
            })
            .collect()
    }

    /// The id of the value acquired by the probe tagged `tag`, per tag.
    pub fn tags(&self) -> std::collections::BTreeMap<u32, u64> {
        self.events()
            .iter()
            .filter_map(|e| match e {
                Event::Tag(id, tag) => Some((*tag, *id)),
                _ => None,
            })
            .collect()
    }

    /// The exits the releases of `id` were told, in order.
    pub fn release_exits(&self, id: u64) -> Vec<ExitKind> {
        self.events()
            .iter()
            .filter_map(|e| match e {
                Event::ReleaseStart(i, exit) if *i == id => Some(*exit),
                _ => None,
            })
            .collect()
    }

    /// Checks the invariant that must hold once every cleanup has finished:
    /// every acquired value was released exactly once, dropped exactly once,
    /// and no release ran for a value that was never acquired. Returns the
    /// exit each value's release saw.
    pub fn check_released_once(&self) -> Result<Vec<(u64, ExitKind)>, String> {
        let events = self.events();
        let mut exits = Vec::new();
        for id in self.acquired() {
            let starts = self.release_exits(id);
            let drops = events.iter().filter(|e| **e == Event::Dropped(id)).count();
            if starts.len() != 1 {
                return Err(format!(
                    "value {id} released {} times: {events:?}",
                    starts.len()
                ));
            }
            if drops != 1 {
                return Err(format!("value {id} dropped {drops} times: {events:?}"));
            }
            let start = events
                .iter()
                .position(|e| matches!(e, Event::ReleaseStart(i, _) if *i == id));
            let drop = events.iter().position(|e| *e == Event::Dropped(id));
            if drop < start {
                return Err(format!("value {id} dropped before its release: {events:?}"));
            }
            exits.push((id, starts[0]));
        }
        let acquired = self.acquired();
        if let Some(stray) = events.iter().find_map(|e| match e {
            Event::ReleaseStart(id, _) if !acquired.contains(id) => Some(*id),
            _ => None,
        }) {
            return Err(format!("release of {stray}, never acquired: {events:?}"));
        }
        Ok(exits)
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The instrumented resource.
#[derive(Debug)]
pub struct Probe {
    log: Log,
    plan: Plan,
    rt: Runtime,
    tag: Option<u32>,
    gate: Option<Gate>,
}

impl Probe {
    /// A probe that logs to `log`, follows `plan`, and sleeps on `rt`.
    pub fn new(log: &Log, plan: Plan, rt: &Runtime) -> Self {
        Probe {
            log: log.clone(),
            plan,
            rt: rt.clone(),
            tag: None,
            gate: None,
        }
    }

    /// Logs `Event::Tag(id, tag)` when acquired.
    pub fn tagged(mut self, tag: u32) -> Self {
        self.tag = Some(tag);
        self
    }

    /// Makes a hanging phase wait for `gate` instead of forever.
    pub fn gated(mut self, gate: &Gate) -> Self {
        self.gate = Some(gate.clone());
        self
    }
}

/// A gate hanging phases wait behind until a test opens it.
#[derive(Clone, Debug, Default)]
pub struct Gate(Arc<GateState>);

#[derive(Debug, Default)]
struct GateState {
    open: AtomicBool,
    wakers: Mutex<Vec<std::task::Waker>>,
}

impl Gate {
    /// Opens the gate: every waiter goes on.
    pub fn open(&self) {
        self.0.open.store(true, Ordering::SeqCst);
        let wakers =
            std::mem::take(&mut *self.0.wakers.lock().unwrap_or_else(PoisonError::into_inner));
        wakers.into_iter().for_each(std::task::Waker::wake);
    }

    /// Waits until the gate is open.
    pub async fn wait(&self) {
        std::future::poll_fn(|cx| {
            if self.0.open.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            self.0
                .wakers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(cx.waker().clone());
            if self.0.open.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

/// Waits forever, or until `gate` opens.
async fn hang(gate: Option<&Gate>) {
    match gate {
        Some(gate) => gate.wait().await,
        None => std::future::pending::<()>().await,
    }
}

/// The probe's value: logs its drop.
#[derive(Debug)]
pub struct Conn {
    /// Unique per acquired value.
    pub id: u64,
    log: Log,
    panic_on_drop: bool,
    tag: Option<u32>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.log.push(Event::Dropped(self.id));
        if self.panic_on_drop && !std::thread::panicking() {
            match self.tag {
                Some(tag) => raise(
                    &self.log,
                    format!("probe: value #{tag} panicked when dropped!"),
                ),
                None => panic!("probe: value {} panicked when dropped", self.id),
            }
        }
    }
}

/// What a probe panics with: `what` with its `#` replaced by `#<tag>` and
/// a closing `!` when tagged (so it can be found inside any report), or by
/// nothing.
fn message(tag: Option<u32>, what: &str) -> String {
    match tag {
        Some(tag) => format!("probe: {}!", what.replace('#', &format!("#{tag}"))),
        None => format!("probe: {}", what.replace(" #", "")),
    }
}

/// Logs a panic as raised, then panics with it.
fn raise(log: &Log, message: String) -> ! {
    log.push(Event::Raised(message.clone()));
    std::panic::panic_any(message)
}

/// Logs a tagged probe's failure as raised.
fn raised(log: &Log, tag: Option<u32>, error: ProbeError) {
    if let Some(tag) = tag {
        log.push(Event::Raised(format!("L{tag}:{error:?}")));
    }
}

/// Logs `event` and panics with `message` when dropped armed (unless a
/// panic is already unwinding: a second one would abort): what the probe's
/// futures hold to notice being dropped before they finished.
struct Bomb {
    armed: Option<(Log, Event, bool, String)>,
}

impl Bomb {
    fn new(log: &Log, event: Event, panics: bool, message: String) -> Self {
        Bomb {
            armed: Some((log.clone(), event, panics, message)),
        }
    }

    fn defuse(&mut self) {
        self.armed = None;
    }
}

impl Drop for Bomb {
    fn drop(&mut self) {
        if let Some((log, event, panics, message)) = self.armed.take() {
            log.push(event);
            if panics && !std::thread::panicking() {
                if message.ends_with('!') {
                    raise(&log, message)
                }
                std::panic::panic_any(message)
            }
        }
    }
}

impl<E> Resource<E> for Probe {
    type Value = Conn;
    type Error = ProbeError;
    /// The recipe is its own releaser: the log, the plan, the runtime.
    type Releaser = Probe;

    // Not an `async fn`: that would borrow `rt`, and the future is `'static`.
    #[allow(clippy::manual_async_fn)]
    fn acquire(
        self,
        _rt: &Runtime,
    ) -> impl Future<Output = Result<(Conn, Probe), Failure<ProbeError>>> + Send + 'static {
        async move {
            let log = self.log.clone();
            let plan = self.plan;
            let mut bomb = Bomb::new(
                &log,
                Event::AcquireDropped,
                plan.acquire_drop_panics,
                message(self.tag, "acquire # dropped unfinished"),
            );
            log.push(Event::AcquireStart);
            for n in 0..plan.awaits {
                yield_now().await;
                log.push(Event::AcquireAwait(n));
            }
            if let Some(nap) = plan.acquire_sleep {
                self.rt.sleep(nap).await;
            }
            if plan.acquire_hangs {
                hang(self.gate.as_ref()).await;
            }
            bomb.defuse();
            match plan.acquire {
                Step::Ok => {
                    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
                    log.push(Event::Acquired(id));
                    if let Some(tag) = self.tag {
                        log.push(Event::Tag(id, tag));
                    }
                    let conn = Conn {
                        id,
                        log,
                        panic_on_drop: plan.value_drop_panics,
                        tag: self.tag,
                    };
                    Ok((conn, self))
                }
                Step::Err => {
                    log.push(Event::AcquireFailed);
                    raised(&log, self.tag, ProbeError::Acquire);
                    Err(Failure::Error(ProbeError::Acquire))
                }
                Step::Panic if self.tag.is_some() => {
                    raise(&log, message(self.tag, "acquire # panicked"))
                }
                Step::Panic => panic!("probe: acquire panicked"),
            }
        }
    }

    fn release(
        probe: Probe,
        conn: Conn,
        exit: &Exit<'_, E>,
        _rt: &Runtime,
    ) -> impl Future<Output = Result<Verdict, Failure<ProbeError>>> + Send + 'static {
        let exit = exit.kind();
        let Probe {
            log,
            plan,
            rt,
            gate,
            tag,
        } = probe;
        async move {
            // Own the whole value (not just the fields used) until the end.
            let conn = conn;
            let mut bomb = Bomb::new(
                &log,
                Event::ReleaseDropped(conn.id),
                plan.release_drop_panics,
                message(tag, "release # dropped unfinished"),
            );
            log.push(Event::ReleaseStart(conn.id, exit));
            for n in 0..plan.awaits {
                yield_now().await;
                log.push(Event::ReleaseAwait(n));
            }
            if let Some(nap) = plan.release_sleep {
                rt.sleep(nap).await;
            }
            if plan.release_hangs {
                hang(gate.as_ref()).await;
            }
            bomb.defuse();
            match plan.release {
                Step::Ok => {
                    log.push(Event::Released(conn.id));
                    drop(conn);
                    Ok(Verdict::Propagate)
                }
                Step::Err => {
                    log.push(Event::ReleaseFailed(conn.id));
                    drop(conn);
                    raised(&log, tag, ProbeError::Release);
                    Err(Failure::Error(ProbeError::Release))
                }
                Step::Panic if tag.is_some() => raise(&log, message(tag, "release # panicked")),
                Step::Panic => panic!("probe: release panicked"),
            }
        }
    }
}

/// The probe body: logs, passes `plan.awaits` await points, then ends as
/// `plan.body` says; `Ok(42)` on success.
pub async fn body(conn: &mut Conn, plan: Plan) -> Result<u32, ProbeError> {
    conn.log.push(Event::BodyStart(conn.id));
    for n in 0..plan.awaits {
        yield_now().await;
        conn.log.push(Event::BodyAwait(n));
    }
    match plan.body {
        Step::Ok => {
            conn.log.push(Event::BodyEnd(conn.id));
            Ok(42)
        }
        Step::Err => {
            conn.log.push(Event::BodyEnd(conn.id));
            Err(ProbeError::Body)
        }
        Step::Panic => panic!("probe: body panicked"),
    }
}

/// Yields once: wakes itself and returns `Pending` the first time it is polled.
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future of [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
/// Installs (once) a panic hook that stays quiet for the probe's deliberate
/// panics (`probe: …`) and prints every other panic as usual.
pub fn quiet_probe_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            if !message.is_some_and(|m| m.starts_with("probe:")) {
                default(info);
            }
        }));
    });
}
