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
        let sibling_failed = ExitKind::Cancelled(Cancel::SiblingFailed);
        assert_eq!(
            exits,
            [
                ("conn#1", ExitKind::Completed),
                ("conn#2", ExitKind::Failed),
                ("conn#3", ExitKind::Panicked),
                ("conn#4", ExitKind::Cancelled(Cancel::Dropped)),
                ("conn#5", ExitKind::Failed),
                ("conn#6", ExitKind::Failed),
                // Scenario 6: the three items of the gather.
                ("conn#7", ExitKind::Completed),
                ("conn#8", ExitKind::Completed),
                ("conn#9", ExitKind::Completed),
                // Scenario 7: which item got which connection depends on the
                // runtime's scheduling; the item that failed is checked below.
                ("conn#10", exits[6 + 3].1),
                ("conn#11", exits[6 + 4].1),
                ("conn#12", exits[6 + 5].1),
                // Scenario 8: checked below.
                ("conn#13", exits[12].1),
                ("conn#14", exits[13].1),
                ("db pool", ExitKind::Completed),
                ("manager (gather)", ExitKind::Completed),
                ("manager (group)", ExitKind::Failed),
                ("pool", ExitKind::Failed),
            ],
            "{choice}: the exit each resource's release saw"
        );
        let mut group_exits: Vec<ExitKind> = exits[9..12].iter().map(|(_, exit)| *exit).collect();
        group_exits.sort_by_key(|exit| exit.to_string());
        assert_eq!(
            group_exits,
            [sibling_failed, sibling_failed, ExitKind::Failed],
            "{choice}: scenario 7, one item failed and two were cancelled"
        );

        let mut pooled: Vec<ExitKind> = exits[12..14].iter().map(|(_, exit)| *exit).collect();
        pooled.sort_by_key(|exit| exit.to_string());
        assert_eq!(
            pooled,
            [ExitKind::Cancelled(Cancel::Timeout), ExitKind::Completed],
            "{choice}: scenario 8, the cancelled query's connection destroyed, told why"
        );

        let text = timeline.lines().join("\n");
        let at = |line: &str| {
            text.find(line)
                .unwrap_or_else(|| panic!("{choice}: no {line:?} in\n{text}"))
        };
        // Scenario 5: item 2's connection before item 1's, both before the pool.
        assert!(
            at("conn#6: closed") < at("conn#5: closed")
                && at("conn#5: closed") < at("pool: closed"),
            "{text}"
        );
        // Scenario 8: both connections close before the pool is closed.
        for conn in [13, 14] {
            assert!(
                at(&format!("conn#{conn}: closed")) < at("db pool: closed"),
                "{text}"
            );
        }
        // Scenarios 6 and 7: every item's connection closes before its
        // manager's release starts.
        for (conns, manager) in [(7..=9, "manager (gather)"), (10..=12, "manager (group)")] {
            let released = at(&format!("{manager}: told the scope"));
            for conn in conns {
                assert!(
                    at(&format!("conn#{conn}: closed")) < released,
                    "{choice}: {text}"
                );
            }
        }
        let text = timeline.lines().join("\n");
        assert!(
            text.contains(&format!("runtime: {}", choice.name())),
            "{text}"
        );
        // Scenario 10, on SQLite: the cancelled transfer's debit was rolled
        // back before the connection was read again; no money lost.
        assert!(
            at("alice has 70, read next on the same connection") < at("balances after")
                && text.contains("balances after: alice 70, bob 30, carol 50 (total 150)")
                && text.contains("result: total 150 before and after"),
            "{choice}: {text}"
        );
    }
}
