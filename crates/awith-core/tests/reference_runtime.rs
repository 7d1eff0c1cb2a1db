//! The reference runtime itself: FIFO order, virtual time, stalls, shutdown.
#![allow(missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use awith_core::reference::{Reference, STALL_TIMEOUT, current_id};

#[test]
fn tasks_run_in_spawn_order() {
    let reference = Reference::new();
    let rt = reference.runtime();
    let order = Arc::new(Mutex::new(Vec::new()));
    let done = reference.block_on(async {
        for n in 0..5 {
            let order = Arc::clone(&order);
            rt.spawn(async move { order.lock().unwrap().push(n) })
                .unwrap();
        }
        let (tx, rx) = futures::channel::oneshot::channel();
        rt.spawn(async move { tx.send(()).unwrap() }).unwrap();
        rx.await
    });
    assert_eq!(done, Ok(Ok(())));
    assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
    assert_eq!(reference.spawned(), 6);
}

#[test]
fn timers_fire_in_deadline_order_on_the_virtual_clock() {
    let reference = Reference::new();
    let rt = reference.runtime();
    let fired = Arc::new(Mutex::new(Vec::new()));
    let result = reference.block_on(async {
        let mut done = Vec::new();
        for secs in [30u64, 10, 20, 10] {
            let fired = Arc::clone(&fired);
            let sleeper = rt.clone();
            let (tx, rx) = futures::channel::oneshot::channel();
            done.push(rx);
            rt.spawn(async move {
                sleeper.sleep(Duration::from_secs(secs)).await;
                fired.lock().unwrap().push((secs, sleeper.now()));
                tx.send(()).unwrap();
            })
            .unwrap();
        }
        futures::future::join_all(done).await
    });
    assert!(result.is_ok());
    let fired = fired.lock().unwrap();
    let order: Vec<u64> = fired.iter().map(|(secs, _)| *secs).collect();
    assert_eq!(order, [10, 10, 20, 30]);
    let start = fired[0].1 - Duration::from_secs(10);
    for (secs, at) in fired.iter() {
        assert_eq!(*at - start, Duration::from_secs(*secs));
    }
    assert_eq!(reference.elapsed(), Duration::from_secs(30));
}

#[test]
fn a_main_future_that_can_never_finish_stalls_instead_of_hanging() {
    let reference = Reference::new();
    let started = std::time::Instant::now();
    let stalled = reference.block_on(std::future::pending::<()>());
    assert_eq!(stalled.unwrap_err().at, Duration::ZERO);
    assert!(started.elapsed() >= STALL_TIMEOUT);
}

#[test]
fn a_wake_from_another_thread_is_not_a_stall() {
    let reference = Reference::new();
    let (tx, rx) = futures::channel::oneshot::channel();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        tx.send(7).unwrap();
    });
    assert_eq!(reference.block_on(rx), Ok(Ok(7)));
    sender.join().unwrap();
}

#[test]
fn a_panicking_task_is_counted_and_the_rest_go_on() {
    let reference = Reference::new();
    let rt = reference.runtime();
    let result = reference.block_on(async {
        rt.spawn(async { panic!("a task panics") }).unwrap();
        let (tx, rx) = futures::channel::oneshot::channel();
        rt.spawn(async move { tx.send(1).unwrap() }).unwrap();
        rx.await
    });
    assert_eq!(result, Ok(Ok(1)));
    assert_eq!(reference.panicked(), 1);
}

#[test]
fn spawning_after_shutdown_fails_and_gives_the_task_back() {
    let reference = Reference::new();
    let rt = reference.runtime();
    drop(reference);
    let error = rt.spawn(async {}).unwrap_err();
    assert_eq!(error.runtime(), "reference");
    assert!(error.into_task().is_some());
}

#[test]
fn unfinished_tasks_are_dropped_at_shutdown() {
    struct Flag(Arc<Mutex<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = true;
        }
    }
    let dropped = Arc::new(Mutex::new(false));
    let reference = Reference::new();
    let rt = reference.runtime();
    let flag = Flag(Arc::clone(&dropped));
    reference
        .block_on(async {
            rt.spawn(async move {
                let _flag = flag;
                std::future::pending::<()>().await;
            })
            .unwrap();
        })
        .unwrap();
    assert!(!*dropped.lock().unwrap());
    drop(reference);
    assert!(*dropped.lock().unwrap());
}

#[test]
fn nested_block_on_is_refused() {
    let outer = Reference::new();
    let inner = Reference::new();
    let result = outer.block_on(async { inner.block_on(async { 1 }).is_err() });
    assert_eq!(result, Ok(true));
    assert_eq!(current_id(), None);
}

/// A timer past the end of representable time never fires, so the virtual
/// clock never jumps there: racing one against work on another thread, the
/// work wins and the clock stays usable.
#[test]
fn a_timer_past_the_end_of_time_never_fires() {
    let reference = Reference::new();
    let rt = reference.runtime();
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    let signal = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        tx.send(()).unwrap();
    });
    let won = reference.block_on(async {
        let forever = rt.sleep(Duration::MAX);
        let almost = rt.sleep(Duration::from_secs(u64::MAX / 2));
        match futures::future::select(futures::future::join(forever, almost), rx).await {
            futures::future::Either::Left(_) => "a timer",
            futures::future::Either::Right(_) => "the other thread",
        }
    });
    signal.join().unwrap();
    assert_eq!(won, Ok("the other thread"));
    assert_eq!(reference.elapsed(), Duration::ZERO);
    let _ = rt.now();
}
