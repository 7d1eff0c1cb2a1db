//! The tour's panic hook keeps quiet only about the panics the tour provokes
//! on purpose; any other panic — a bug — goes to the hook installed before
//! it (by default Rust's, which prints the message and the location).
//!
//! One test in its own binary: a panic hook is global to the process.

use std::panic::{self, PanicHookInfo};
use std::sync::{Arc, Mutex, PoisonError};

use awith_scenarios::cli::install_panic_hook;
use awith_scenarios::tour::PROVOKED;

fn message<'a>(info: &'a PanicHookInfo<'_>) -> &'a str {
    let payload = info.payload();
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("?")
}

#[test]
fn only_provoked_panics_are_kept_quiet() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = Arc::clone(&seen);
    // Stands for the default hook: records what it is shown, with the location.
    panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
        let location = info
            .location()
            .map(|at| format!("{}:{}", at.file(), at.line()));
        record
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(format!("{} at {location:?}", message(info)));
    }));
    install_panic_hook();

    let provoked = panic::catch_unwind(|| panic!("{PROVOKED}query planner bug"));
    assert!(provoked.is_err());
    let literal = panic::catch_unwind(|| panic!("tour: provoked: a literal"));
    assert!(literal.is_err());
    assert!(
        seen.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty(),
        "a provoked panic went to the default hook"
    );

    let bug_line = line!() + 1;
    let bug = panic::catch_unwind(|| panic!("index out of bounds: a real bug"));
    assert!(bug.is_err());
    let bare = panic::catch_unwind(|| panic!("query planner bug"));
    assert!(bare.is_err());

    let _ = panic::take_hook();
    let seen = seen.lock().unwrap_or_else(PoisonError::into_inner).clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen[0].starts_with("index out of bounds: a real bug at "),
        "{seen:?}"
    );
    assert!(
        seen[0].contains(&format!("tour_panic_hook.rs:{bug_line}")),
        "{seen:?}"
    );
    assert!(seen[1].starts_with("query planner bug at "), "{seen:?}");
}
