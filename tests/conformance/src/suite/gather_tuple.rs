//! `gather!` and `gather_all!`: a tuple of *different* futures on the current
//! task — outputs in order, concurrently, the first error (or a panic)
//! cancelling the siblings with `Cancel::SiblingFailed`; and a sibling whose
//! `Drop` panics while it is cancelled, in the tuple and the iterable forms.

use std::time::Duration;

use awith::rt::Incident;
use awith::{Cancel, ExitKind, ResourceExt, ScopeError, gather, gather_all};
use futures::FutureExt;

use super::structured::{PanicOnDrop, at, caught, unit, work};
use super::{drain, panic_message};
use crate::probe::{Event, Log, Plan, Probe, ProbeError, Step, yield_now};
use awith::test::Env;

/// A probe scope whose body sleeps `naps` units, then ends as `body` says;
/// its value: `make(id)` of the probe's value.
async fn scoped<T>(
    env: &Env,
    log: &Log,
    naps: u32,
    body: Step,
    make: impl FnOnce(u64) -> T,
) -> Result<T, ProbeError> {
    work(env, log, naps, body).await.map(make)
}

/// Never finishes; panics when dropped.
async fn bomb() -> Result<(), u32> {
    let _bomb = PanicOnDrop("probe: the cancelled sibling's drop");
    std::future::pending::<()>().await;
    Ok(())
}

/// Fails with `7` after a unit.
async fn fails_later(env: &Env) -> Result<char, u32> {
    env.rt.sleep(unit(env)).await;
    Err(7)
}

/// Three futures of different types: outputs in order, whatever order they
/// finish in; run at once (the virtual clock shows the longest, not the sum).
pub async fn tuple_keeps_order_and_runs_at_once(env: Env) {
    let log = Log::new();
    let start = env.rt.now();
    let (text, number, list) = gather!(
        scoped(&env, &log, 3, Step::Ok, |id| format!("#{id}")),
        scoped(&env, &log, 1, Step::Ok, |id| u32::try_from(id).unwrap()),
        scoped(&env, &log, 2, Step::Ok, |id| vec![id; 2]),
    )
    .await
    .unwrap();
    let elapsed = env.rt.now() - start;
    let ids = log.acquired();
    assert_eq!(text, format!("#{}", ids[0]));
    assert_eq!(u64::from(number), ids[1]);
    assert_eq!(list, vec![ids[2]; 2]);
    if env.virtual_time {
        assert_eq!(elapsed, 3 * unit(&env), "at once: the longest, not the sum");
    } else {
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    }
    let released = log.check_released_once().unwrap();
    assert_eq!(released.len(), 3);
    assert!(
        released
            .iter()
            .all(|(_, exit)| *exit == ExitKind::Completed)
    );
    assert_eq!(drain(&env).await.spawned, 0);
}

/// The first error is returned; the siblings still running are dropped,
/// their scopes told `Cancelled(SiblingFailed)` and dropped before the gather
/// returns (so before the scope around it releases).
pub async fn tuple_error_cancels_siblings(env: Env) {
    let log = Log::new();
    let outer = Probe::new(&log, Plan::ok(1), &env.rt);
    let result = outer
        .with(&env.rt, async |_| {
            let (text, list) = gather!(
                scoped(&env, &log, 5, Step::Ok, |id| id.to_string()),
                scoped(&env, &log, 1, Step::Err, |_| 0u8),
                scoped(&env, &log, 5, Step::Ok, |id| vec![id]),
            )
            .await
            .map(|(text, _, list)| (text, list))?;
            Ok((text, list))
        })
        .await;
    assert_eq!(
        result,
        Err(ScopeError::Body {
            error: ProbeError::Body,
            release: None
        })
    );
    drain(&env).await;
    let ids = log.acquired();
    let released: std::collections::BTreeMap<u64, ExitKind> =
        log.check_released_once().unwrap().into_iter().collect();
    let (outer_id, failed) = (ids[0], ids[2]);
    assert_eq!(released[&outer_id], ExitKind::Failed);
    assert_eq!(released[&failed], ExitKind::Failed);
    let events = log.events();
    let outer_release = at(
        &events,
        |e| matches!(e, Event::ReleaseStart(i, _) if *i == outer_id),
    );
    for sibling in [ids[1], ids[3]] {
        assert_eq!(
            released[&sibling],
            ExitKind::Cancelled(Cancel::SiblingFailed),
            "{events:?}"
        );
        assert!(
            at(&events, |e| *e == Event::Dropped(sibling)) < outer_release,
            "inside-out: {events:?}"
        );
    }
}

/// A panic in one future drops the others (`SiblingFailed`), then resumes.
pub async fn tuple_panic_cancels_siblings(env: Env) {
    let log = Log::new();
    let result = caught(gather!(
        scoped(&env, &log, 5, Step::Ok, |id| id.to_string()),
        scoped(&env, &log, 1, Step::Panic, |_| 0u8),
        scoped(&env, &log, 5, Step::Ok, |id| vec![id]),
    ))
    .await;
    let panic = result.expect_err("the panic resumes");
    assert_eq!(panic_message(&*panic), "probe: body panicked");
    drain(&env).await;
    let ids = log.acquired();
    let released: std::collections::BTreeMap<u64, ExitKind> =
        log.check_released_once().unwrap().into_iter().collect();
    assert_eq!(released[&ids[1]], ExitKind::Panicked);
    for sibling in [ids[0], ids[2]] {
        assert_eq!(
            released[&sibling],
            ExitKind::Cancelled(Cancel::SiblingFailed),
            "{:?}",
            log.events()
        );
    }
    assert!(env.incidents.all().is_empty(), "{:?}", env.incidents.all());
}

/// Twelve futures of different types: compiles, in order.
pub async fn tuple_of_twelve(env: Env) {
    let u = unit(&env);
    let nap = |n: u32| env.rt.sleep(u * (12 - n));
    let out = gather!(
        async {
            nap(0).await;
            Ok::<_, ()>(0u8)
        },
        async {
            nap(1).await;
            Ok(1u16)
        },
        async {
            nap(2).await;
            Ok(2u32)
        },
        async {
            nap(3).await;
            Ok(3u64)
        },
        async {
            nap(4).await;
            Ok(4i8)
        },
        async {
            nap(5).await;
            Ok(5i16)
        },
        async {
            nap(6).await;
            Ok(6i32)
        },
        async {
            nap(7).await;
            Ok(7i64)
        },
        async {
            nap(8).await;
            Ok("8")
        },
        async {
            nap(9).await;
            Ok(String::from("9"))
        },
        async {
            nap(10).await;
            Ok('a')
        },
        async {
            nap(11).await;
            Ok(vec![11])
        },
    )
    .await;
    assert_eq!(
        out,
        Ok((0, 1, 2, 3, 4, 5, 6, 7, "8", "9".to_owned(), 'a', vec![11]))
    );
    // And the other arities, down to one.
    assert_eq!(gather!(async { Ok::<_, ()>(1) }).await, Ok((1,)));
    assert_eq!(
        gather_all!(async { 1 }, async { "2" }, async { Err::<(), _>(3) }).await,
        (1, "2", Err(3))
    );
}

/// `gather_all!`: every output, in order; an error stops nothing; nothing is
/// cancelled. A panic drops the others (`SiblingFailed`) and resumes.
pub async fn tuple_gather_all(env: Env) {
    let log = Log::new();
    let start = env.rt.now();
    let (text, failed, list) = gather_all!(
        scoped(&env, &log, 2, Step::Ok, |id| id.to_string()),
        scoped(&env, &log, 1, Step::Err, |_| 0u8),
        scoped(&env, &log, 3, Step::Ok, |id| vec![id]),
    )
    .await;
    let ids = log.acquired();
    assert_eq!(text, Ok(ids[0].to_string()));
    assert_eq!(failed, Err(ProbeError::Body));
    assert_eq!(list, Ok(vec![ids[2]]));
    if env.virtual_time {
        assert_eq!(env.rt.now() - start, 3 * unit(&env));
    }
    let released = log.check_released_once().unwrap();
    assert!(released.iter().all(|(_, exit)| !exit.is_cancelled()));

    let log = Log::new();
    let result = caught(gather_all!(
        scoped(&env, &log, 5, Step::Ok, |id| id.to_string()),
        scoped(&env, &log, 1, Step::Panic, |_| 0u8),
        scoped(&env, &log, 5, Step::Ok, |id| vec![id]),
    ))
    .await;
    assert_eq!(
        panic_message(&*result.expect_err("resumes")),
        "probe: body panicked"
    );
    drain(&env).await;
    let ids = log.acquired();
    let released: std::collections::BTreeMap<u64, ExitKind> =
        log.check_released_once().unwrap().into_iter().collect();
    for sibling in [ids[0], ids[2]] {
        assert_eq!(
            released[&sibling],
            ExitKind::Cancelled(Cancel::SiblingFailed)
        );
    }
}

/// A future that keeps waking itself does not starve the others: every
/// future still running is polled each time the gather is.
pub async fn tuple_no_starvation(env: Env) {
    let flag = std::cell::Cell::new(false);
    let spins = std::cell::Cell::new(0u32);
    let out = gather!(
        async {
            while !flag.get() {
                spins.set(spins.get() + 1);
                assert!(spins.get() < 1000, "the other future starved");
                yield_now().await;
            }
            Ok::<_, ()>(spins.get())
        },
        async {
            yield_now().await;
            flag.set(true);
            Ok(())
        },
    )
    .await;
    assert_eq!(out, Ok((2, ())));
    drop(env);
}

/// A sibling whose `Drop` panics as it is cancelled after another failed:
/// the panic resumes; the error it replaces is reported
/// (`ErrorLostToPanic`), not silently lost; every other sibling is still
/// dropped as `SiblingFailed`. For `gather!` and `gather`.
pub async fn sibling_drop_panics(env: Env) {
    // The tuple form.
    let log = Log::new();
    let result = caught(
        gather!(bomb(), fails_later(&env), async {
            scoped(&env, &log, 5, Step::Ok, |_| ()).await.map_err(|_| 0)
        },)
        .report_to(&env.rt),
    )
    .await;
    let panic = result.expect_err("the drop's panic resumes");
    assert_eq!(
        panic_message(&*panic),
        "probe: the cancelled sibling's drop"
    );
    assert_eq!(
        env.incidents.all(),
        [Incident::ErrorLostToPanic { error: "7".into() }]
    );
    env.incidents.clear();
    drain(&env).await;
    let released = log.check_released_once().unwrap();
    assert_eq!(
        released.iter().map(|(_, exit)| *exit).collect::<Vec<_>>(),
        [ExitKind::Cancelled(Cancel::SiblingFailed)],
        "{:?}",
        log.events()
    );

    // The iterable form.
    let log = Log::new();
    let result = caught(
        gather([
            bomb().map(|r| r.map(|()| 'x')).boxed_local(),
            fails_later(&env).boxed_local(),
            async {
                scoped(&env, &log, 5, Step::Ok, |_| 'y')
                    .await
                    .map_err(|_| 0)
            }
            .boxed_local(),
            bomb().map(|r| r.map(|()| 'z')).boxed_local(),
        ])
        .report_to(&env.rt),
    )
    .await;
    let panic = result.expect_err("the drop's panic resumes");
    assert_eq!(
        panic_message(&*panic),
        "probe: the cancelled sibling's drop"
    );
    let incidents = env.incidents.all();
    assert_eq!(
        incidents.first(),
        Some(&Incident::ErrorLostToPanic { error: "7".into() }),
        "{incidents:?}"
    );
    assert!(
        matches!(&incidents[1..], [Incident::ReleasePanickedDuringPanic { message }] if message == "probe: the cancelled sibling's drop"),
        "the second drop's panic is reported: {incidents:?}"
    );
    env.incidents.clear();
    drain(&env).await;
    let released = log.check_released_once().unwrap();
    assert_eq!(
        released.iter().map(|(_, exit)| *exit).collect::<Vec<_>>(),
        [ExitKind::Cancelled(Cancel::SiblingFailed)],
        "{:?}",
        log.events()
    );
}

/// A panic, then a sibling's `Drop` panics as it is cancelled: the first
/// panic resumes, the second is reported; `gather_all!` likewise.
pub async fn sibling_drop_panics_after_a_panic(env: Env) {
    let log = Log::new();
    let result = caught(
        gather_all!(
            async {
                env.rt.sleep(unit(&env)).await;
                panic!("probe: the first panic")
            },
            bomb(),
            scoped(&env, &log, 5, Step::Ok, |_| ()),
        )
        .report_to(&env.rt),
    )
    .await;
    let panic = result.expect_err("the first panic resumes");
    assert_eq!(panic_message(&*panic), "probe: the first panic");
    assert_eq!(
        env.incidents.all(),
        [Incident::ReleasePanickedDuringPanic {
            message: "probe: the cancelled sibling's drop".into()
        }]
    );
    env.incidents.clear();
    drain(&env).await;
    let released = log.check_released_once().unwrap();
    assert_eq!(
        released.iter().map(|(_, exit)| *exit).collect::<Vec<_>>(),
        [ExitKind::Cancelled(Cancel::SiblingFailed)]
    );
}
