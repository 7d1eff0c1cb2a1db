//! The tour passes on every runtime this build includes: each scenario ends
//! as expected and every release runs exactly once, with the right exit.

use std::sync::Arc;

use awith::{Cancel, ExitKind};
use awith_scenarios::runtimes::Choice;
use awith_scenarios::timeline::Timeline;

#[test]
fn tour_on_every_runtime() {
    let choices = Choice::enabled();
    assert!(!choices.is_empty());
    for choice in choices {
        let timeline = Arc::new(Timeline::new(true));
        let report = choice
            .block_on(awith_scenarios::tour::run(Arc::clone(&timeline)))
            .expect("the runtime starts")
            .expect("the tour finds its runtime");
        assert!(
            report.ok(),
            "{choice}: {report:#?}\n{}",
            timeline.lines().join("\n")
        );
        let exits: Vec<ExitKind> = report.exits.iter().map(|(_, exits)| exits[0]).collect();
        assert_eq!(
            exits,
            [
                ExitKind::Completed,
                ExitKind::Failed,
                ExitKind::Panicked,
                ExitKind::Cancelled(Cancel::Dropped)
            ],
            "{choice}: the exit each scenario's release saw"
        );
        let text = timeline.lines().join("\n");
        assert!(
            text.contains(&format!("runtime: {}", choice.name())),
            "{text}"
        );
    }
}
