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
        let exits: Vec<(&str, ExitKind)> = report
            .exits
            .iter()
            .map(|(name, exits)| (name.as_str(), exits[0]))
            .collect();
        assert_eq!(
            exits,
            [
                ("conn#1", ExitKind::Completed),
                ("conn#2", ExitKind::Failed),
                ("conn#3", ExitKind::Panicked),
                ("conn#4", ExitKind::Cancelled(Cancel::Dropped)),
                ("conn#5", ExitKind::Failed),
                ("conn#6", ExitKind::Failed),
                ("pool", ExitKind::Failed),
            ],
            "{choice}: the exit each resource's release saw"
        );
        // Scenario 5: item 2's connection before item 1's, both before the pool.
        let text = timeline.lines().join("\n");
        let closed = |what: &str| text.find(&format!("{what}: closed")).unwrap();
        assert!(
            closed("conn#6") < closed("conn#5") && closed("conn#5") < closed("pool"),
            "{text}"
        );
        let text = timeline.lines().join("\n");
        assert!(
            text.contains(&format!("runtime: {}", choice.name())),
            "{text}"
        );
    }
}
