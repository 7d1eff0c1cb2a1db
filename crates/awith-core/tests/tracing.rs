//! The `tracing` feature: the spans of a scope's phases, with its exit; a
//! cleanup task's span; a pool checkout's; a `WARN` event per incident. A
//! hand-written subscriber records them, on the reference runtime.
#![cfg(feature = "tracing")]
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use awith_core::pool::{Manager, ObjectMetrics, Pool};
use awith_core::reference::Reference;
use awith_core::rt::{Incident, Runtime};
use awith_core::{ExitKind, ResourceExt, resource};
use futures::FutureExt;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_core::span::Current;

/// A span or an event, as recorded.
#[derive(Clone, Debug)]
struct Node {
    name: &'static str,
    metadata: &'static Metadata<'static>,
    level: Level,
    parent: Option<u64>,
    fields: BTreeMap<&'static str, String>,
}

impl Node {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

#[derive(Default, Debug)]
struct Log {
    /// By id (ids start at 1).
    spans: Vec<Node>,
    events: Vec<Node>,
    /// The spans entered on this thread (the reference runtime runs every
    /// task on the thread that blocks on it).
    entered: Vec<u64>,
}

impl Log {
    fn span(&self, id: u64) -> &Node {
        &self.spans[id as usize - 1]
    }

    /// The ids of the spans named `name`.
    fn named(&self, name: &str) -> Vec<u64> {
        (1..=self.spans.len() as u64)
            .filter(|&id| self.span(id).name == name)
            .collect()
    }

    /// The one span named `name`.
    fn one(&self, name: &str) -> u64 {
        let ids = self.named(name);
        assert_eq!(ids.len(), 1, "one `{name}` span expected: {self:#?}");
        ids[0]
    }

    /// The names of the spans whose parent is `id`, in the order made.
    fn children(&self, id: u64) -> Vec<&'static str> {
        self.spans
            .iter()
            .filter(|span| span.parent == Some(id))
            .map(|span| span.name)
            .collect()
    }

    /// The events whose message is `message`.
    fn events_saying(&self, message: &str) -> Vec<&Node> {
        self.events
            .iter()
            .filter(|event| event.field("message") == Some(message))
            .collect()
    }
}

/// Records every span and event, with its fields and its parent.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Log>>);

struct Fields<'a>(&'a mut BTreeMap<&'static str, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name(), format!("{value:?}"));
    }
}

impl Recorder {
    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.0.lock().expect("no test panics holding the log")
    }

    /// Runs `test` with this recorder as the thread's subscriber.
    fn record<T>(&self, test: impl FnOnce() -> T) -> T {
        tracing::subscriber::with_default(self.clone(), test)
    }

    fn parent(&self, explicit: Option<&Id>, contextual: bool) -> Option<u64> {
        match explicit {
            Some(id) => Some(id.into_u64()),
            None if contextual => self.log().entered.last().copied(),
            None => None,
        }
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let parent = self.parent(attrs.parent(), attrs.is_contextual());
        let mut node = Node {
            name: attrs.metadata().name(),
            metadata: attrs.metadata(),
            level: *attrs.metadata().level(),
            parent,
            fields: BTreeMap::new(),
        };
        attrs.record(&mut Fields(&mut node.fields));
        let mut log = self.log();
        log.spans.push(node);
        Id::from_u64(log.spans.len() as u64)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut log = self.log();
        let node = &mut log.spans[span.into_u64() as usize - 1];
        values.record(&mut Fields(&mut node.fields));
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let parent = self.parent(event.parent(), event.is_contextual());
        let mut node = Node {
            name: event.metadata().name(),
            metadata: event.metadata(),
            level: *event.metadata().level(),
            parent,
            fields: BTreeMap::new(),
        };
        event.record(&mut Fields(&mut node.fields));
        self.log().events.push(node);
    }

    fn enter(&self, span: &Id) {
        self.log().entered.push(span.into_u64());
    }

    fn exit(&self, span: &Id) {
        let mut log = self.log();
        let last = log.entered.pop();
        assert_eq!(
            last,
            Some(span.into_u64()),
            "spans exit in the order entered"
        );
    }

    /// `Span::current()`, which the scope's exit is recorded in.
    fn current_span(&self) -> Current {
        let log = self.log();
        match log.entered.last() {
            Some(&id) => Current::new(Id::from_u64(id), log.span(id).metadata),
            None => Current::none(),
        }
    }
}

/// A scope that completes: `awith.scope` with `acquire`, `body` and
/// `release` under it, each entered while its phase runs, and the exit.
#[test]
fn a_completed_scope_has_its_phases_and_exit_completed() {
    let recorder = Recorder::default();
    let reference = Reference::new();
    let rt = reference.runtime();
    let out = recorder.record(|| {
        reference.block_on(async {
            resource(
                || async {
                    tracing::info!("acquiring");
                    Ok::<_, String>(7)
                },
                |_, _| {
                    // Building the release (no future yet) is in its span too.
                    tracing::info!("starting the release");
                    async {
                        tracing::info!("releasing");
                        Ok(())
                    }
                },
            )
            .with(&rt, async |value| {
                tracing::info!("in the body");
                Ok::<_, String>(*value)
            })
            .await
        })
    });
    assert_eq!(out.unwrap().unwrap(), 7);
    let log = recorder.log();
    let scope = log.one("awith.scope");
    let node = log.span(scope);
    assert_eq!(node.parent, None);
    assert_eq!(node.level, Level::DEBUG);
    assert_eq!(node.field("exit"), Some("completed"));
    assert!(node.field("resource").unwrap().contains("FromFn"));
    assert_eq!(log.children(scope), ["acquire", "body", "release"]);
    assert_eq!(
        log.span(log.one("release")).field("exit"),
        Some("completed")
    );
    // Each phase's span is entered while its user code runs.
    for (message, phase) in [
        ("acquiring", "acquire"),
        ("in the body", "body"),
        ("starting the release", "release"),
        ("releasing", "release"),
    ] {
        let events = log.events_saying(message);
        assert_eq!(events.len(), 1, "{message}");
        assert_eq!(events[0].parent, Some(log.one(phase)), "{message}");
    }
    assert!(log.entered.is_empty());
}

/// A body that fails: the release and the scope say `failed`.
#[test]
fn a_failed_body_exits_failed() {
    let recorder = Recorder::default();
    let reference = Reference::new();
    let rt = reference.runtime();
    let out = recorder.record(|| {
        reference.block_on(async {
            resource(|| async { Ok::<_, String>(()) }, |(), _| async { Ok(()) })
                .with(&rt, async |()| Err::<(), _>("no".to_owned()))
                .await
        })
    });
    assert!(out.unwrap().is_err());
    let log = recorder.log();
    let scope = log.one("awith.scope");
    assert_eq!(log.span(scope).field("exit"), Some("failed"));
    assert_eq!(log.span(log.one("release")).field("exit"), Some("failed"));
    assert_eq!(log.children(scope), ["acquire", "body", "release"]);
}

/// A scope dropped in its body: `cancelled` (dropped), and its release runs
/// in an `awith.cleanup` span, a child of the scope's.
#[test]
fn a_scope_dropped_in_its_body_is_released_in_a_cleanup_span() {
    let recorder = Recorder::default();
    let reference = Reference::new();
    let rt = reference.runtime();
    let released = Arc::new(Mutex::new(None));
    let seen = Arc::clone(&released);
    let drained = recorder.record(|| {
        reference.block_on(async {
            let mut scope = Box::pin(
                resource(
                    || async { Ok::<_, String>(()) },
                    move |(), exit| async move {
                        tracing::info!("releasing");
                        *seen.lock().unwrap() = Some(exit);
                        Ok(())
                    },
                )
                .with(&rt, async |()| {
                    std::future::pending::<()>().await;
                    Ok::<_, String>(())
                }),
            );
            assert!(scope.as_mut().now_or_never().is_none(), "in the body");
            drop(scope);
            rt.drain(Duration::from_secs(5)).await
        })
    });
    assert!(drained.unwrap().is_ok());
    assert_eq!(
        *released.lock().unwrap(),
        Some(ExitKind::Cancelled(awith_core::Cancel::Dropped))
    );
    let log = recorder.log();
    let scope = log.one("awith.scope");
    assert_eq!(log.span(scope).field("exit"), Some("cancelled"));
    assert_eq!(log.span(scope).field("reason"), Some("dropped"));
    // No release phase in the scope: its release is the cleanup's.
    assert_eq!(log.children(scope), ["acquire", "body", "awith.cleanup"]);
    let cleanup = log.one("awith.cleanup");
    assert_eq!(log.span(cleanup).field("kind"), Some("Release"));
    let events = log.events_saying("releasing");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].parent, Some(cleanup));
}

/// A runtime on `reference` whose incidents are collected, not printed.
fn collecting(reference: &Reference) -> (Runtime, Arc<Mutex<Vec<Incident>>>) {
    let incidents = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&incidents);
    let rt = Runtime::builder(reference.binding())
        .on_incident(move |incident| {
            seen.lock()
                .expect("no test panics holding the incidents")
                .push(incident.clone());
        })
        .build()
        .expect("a runtime with the reference binding");
    (rt, incidents)
}

/// A cancelled scope's release panics in its cleanup: the incident is a
/// `WARN` event in the cleanup's span, as well as the hook's.
#[test]
fn an_incident_is_a_warn_event() {
    let recorder = Recorder::default();
    let reference = Reference::new();
    let (rt, incidents) = collecting(&reference);
    let drained = recorder.record(|| {
        reference.block_on(async {
            let mut scope = Box::pin(
                resource(
                    || async { Ok::<_, String>(()) },
                    |(), _| async { panic!("the release broke") },
                )
                .with(&rt, async |()| {
                    std::future::pending::<()>().await;
                    Ok::<_, String>(())
                }),
            );
            assert!(scope.as_mut().now_or_never().is_none(), "in the body");
            drop(scope);
            rt.drain(Duration::from_secs(5)).await
        })
    });
    assert!(drained.unwrap().is_ok());
    let incidents = incidents.lock().unwrap();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    let log = recorder.log();
    let warnings: Vec<_> = log
        .events
        .iter()
        .filter(|event| event.level == Level::WARN)
        .collect();
    assert_eq!(warnings.len(), 1, "{:#?}", log.events);
    let warning = warnings[0];
    assert_eq!(warning.field("incident"), Some("cleanup_panicked"));
    assert_eq!(warning.field("cleanup"), Some("Release"));
    assert_eq!(warning.field("message"), Some(&*incidents[0].to_string()));
    assert!(
        warning
            .field("message")
            .unwrap()
            .contains("the release broke")
    );
    assert_eq!(warning.parent, Some(log.one("awith.cleanup")));
}

/// A body that panics and a release that panics too: the second panic is
/// an incident, a `WARN` event in the scope's release span.
#[test]
fn a_release_panicking_after_the_body_did_is_a_warn_event() {
    let recorder = Recorder::default();
    let reference = Reference::new();
    let (rt, incidents) = collecting(&reference);
    let ran = recorder.record(|| {
        reference.block_on(async {
            let scope = resource(
                || async { Ok::<_, String>(()) },
                |(), _| async { panic!("the release broke") },
            )
            .with(&rt, async |()| -> Result<(), String> {
                panic!("the body broke")
            });
            std::panic::AssertUnwindSafe(scope).catch_unwind().await
        })
    });
    assert!(ran.unwrap().is_err(), "the body's panic resumes");
    assert_eq!(incidents.lock().unwrap().len(), 1);
    let log = recorder.log();
    let scope = log.one("awith.scope");
    assert_eq!(log.span(scope).field("exit"), Some("panicked"));
    let warnings: Vec<_> = log
        .events
        .iter()
        .filter(|event| event.level == Level::WARN)
        .collect();
    assert_eq!(warnings.len(), 1, "{:#?}", log.events);
    assert_eq!(
        warnings[0].field("incident"),
        Some("release_panicked_during_panic")
    );
    assert_eq!(warnings[0].field("cleanup"), None);
    assert_eq!(warnings[0].parent, Some(scope));
}

/// Counts its objects; every object recycles.
struct Counter(AtomicU64);

impl Manager for Counter {
    type Object = u64;
    type Error = String;

    async fn create(&self) -> Result<u64, String> {
        tracing::info!("creating");
        Ok(self.0.fetch_add(1, Ordering::Relaxed))
    }

    async fn recycle(&self, _: &mut u64, _: &ObjectMetrics) -> Result<(), String> {
        tracing::info!("recycling");
        Ok(())
    }
}

/// A pool checkout: `awith.pool.checkout` in the scope's acquire, with
/// `wait` and then `create` (the first) or `recycle` (the second), and its
/// outcome.
#[test]
fn a_pool_checkout_has_its_span() {
    let recorder = Recorder::default();
    let reference = Reference::new();
    let rt = reference.runtime();
    let pool = Pool::builder(Counter(AtomicU64::new(0)))
        .max_size(1)
        .build(&rt)
        .unwrap();
    let objects = recorder.record(|| {
        reference.block_on(async {
            let first = pool.with(async |n| Ok::<_, String>(*n)).await.unwrap();
            let second = pool.with(async |n| Ok::<_, String>(*n)).await.unwrap();
            pool.close(Duration::from_secs(5)).await.unwrap();
            (first, second)
        })
    });
    assert_eq!(objects.unwrap(), (0, 0));
    let log = recorder.log();
    let checkouts = log.named("awith.pool.checkout");
    assert_eq!(checkouts.len(), 2);
    let acquires = log.named("acquire");
    for (checkout, acquire, made) in [
        (checkouts[0], acquires[0], "create"),
        (checkouts[1], acquires[1], "recycle"),
    ] {
        let node = log.span(checkout);
        assert_eq!(node.parent, Some(acquire));
        assert_eq!(node.field("outcome"), Some("ready"));
        assert_eq!(log.children(checkout), ["wait", made]);
    }
    assert_eq!(
        log.events_saying("creating")[0].parent,
        Some(log.one("create"))
    );
    assert_eq!(
        log.events_saying("recycling")[0].parent,
        Some(log.one("recycle"))
    );
}

/// A checkout that fails says why.
#[test]
fn a_failed_pool_checkout_has_its_error() {
    struct Failing;
    impl Manager for Failing {
        type Object = ();
        type Error = String;

        async fn create(&self) -> Result<(), String> {
            Err("no database".to_owned())
        }

        async fn recycle(&self, _: &mut (), _: &ObjectMetrics) -> Result<(), String> {
            Ok(())
        }
    }
    let recorder = Recorder::default();
    let reference = Reference::new();
    let rt = reference.runtime();
    let pool = Pool::builder(Failing).build(&rt).unwrap();
    let out = recorder.record(|| {
        reference.block_on(async {
            let out = pool.with(async |()| Ok::<_, String>(())).await;
            pool.close(Duration::from_secs(5)).await.unwrap();
            out
        })
    });
    assert!(out.unwrap().is_err());
    let log = recorder.log();
    let checkout = log.span(log.one("awith.pool.checkout"));
    assert_eq!(checkout.field("outcome"), Some("failed"));
    assert!(checkout.field("error").unwrap().contains("no database"));
    // Its scope never started a body.
    assert_eq!(log.children(log.one("awith.scope")), ["acquire"]);
}

/// A subscriber whose `WARN` events panic (user code, like any layer).
struct PanicsOnWarn;

impl Subscriber for PanicsOnWarn {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        if *event.metadata().level() == Level::WARN {
            panic!("the subscriber broke");
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Reporting an incident never unwinds into the code that noticed it, also
/// when the subscriber's `WARN` panics: the hook still gets the incident,
/// and the body's panic (not the subscriber's) is the one that resumes.
#[test]
fn a_panicking_subscriber_does_not_unwind_from_an_incident() {
    let reference = Reference::new();
    let (rt, incidents) = collecting(&reference);
    let ran = tracing::subscriber::with_default(PanicsOnWarn, || {
        reference.block_on(async {
            let scope = resource(
                || async { Ok::<_, String>(()) },
                |(), _| async { panic!("the release broke") },
            )
            .with(&rt, async |()| -> Result<(), String> {
                panic!("the body broke")
            });
            std::panic::AssertUnwindSafe(scope).catch_unwind().await
        })
    });
    let panic = ran.unwrap().expect_err("the body's panic resumes");
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"the body broke"));
    let incidents = incidents.lock().unwrap();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert!(matches!(
        incidents[0],
        Incident::ReleasePanickedDuringPanic { .. }
    ));
}
