//! The event timeline the tour prints, and the [`Ledger`] that checks that
//! every acquired resource was released exactly once.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use awith::ExitKind;

/// Timestamped lines, printed as they happen (unless quiet) and kept.
#[derive(Debug)]
pub struct Timeline {
    start: Instant,
    quiet: bool,
    lines: Mutex<Vec<String>>,
}

impl Timeline {
    /// A timeline starting now; `quiet` keeps the lines without printing.
    pub fn new(quiet: bool) -> Self {
        Timeline {
            start: Instant::now(),
            quiet,
            lines: Mutex::new(Vec::new()),
        }
    }

    /// A section heading.
    pub fn heading(&self, text: &str) {
        self.line(format!("\n── {text}"));
    }

    /// An event of `who`, stamped with the time since the start.
    pub fn event(&self, who: &str, text: impl AsRef<str>) {
        let at = self.start.elapsed();
        self.line(format!("  {:>9}  {who:<8} {}", stamp(at), text.as_ref()));
    }

    /// A line without a stamp (results, summaries).
    pub fn note(&self, text: impl AsRef<str>) {
        self.line(format!("  {:>9}  {}", "", text.as_ref()));
    }

    fn line(&self, line: String) {
        if !self.quiet {
            crate::out::line(&line);
        }
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn stamp(at: Duration) -> String {
    let mut out = String::new();
    let _ = write!(out, "+{:.1}ms", at.as_secs_f64() * 1000.0);
    out
}

/// Which resources were acquired and how each was released.
#[derive(Debug, Default)]
pub struct Ledger {
    entries: Mutex<BTreeMap<String, Vec<ExitKind>>>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Ledger::default()
    }

    /// `name` was acquired.
    pub fn acquired(&self, name: &str) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), Vec::new());
    }

    /// `name` was released, told `exit`.
    pub fn released(&self, name: &str, exit: ExitKind) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.to_owned())
            .or_default()
            .push(exit);
    }

    /// The exit each resource's release saw, by name in natural order
    /// (`conn#2` before `conn#10`).
    pub fn exits(&self) -> Vec<(String, Vec<ExitKind>)> {
        let mut exits: Vec<_> = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .into_iter()
            .collect();
        exits.sort_by_cached_key(|(name, _)| natural(name));
        exits
    }

    /// `Ok(count)` when every acquired resource was released exactly once;
    /// otherwise the resources that were not, one per line.
    pub fn check(&self) -> Result<usize, String> {
        let entries = self.exits();
        let wrong: Vec<String> = entries
            .iter()
            .filter(|(_, exits)| exits.len() != 1)
            .map(|(name, exits)| match exits.len() {
                0 => format!("{name}: never released"),
                n => format!("{name}: released {n} times ({exits:?})"),
            })
            .collect();
        if wrong.is_empty() {
            Ok(entries.len())
        } else {
            Err(wrong.join("\n"))
        }
    }
}

/// A name's sort key: its text, with a trailing number compared as a number.
fn natural(name: &str) -> (String, u64) {
    let text = name.trim_end_matches(|c: char| c.is_ascii_digit());
    (text.to_owned(), name[text.len()..].parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use awith::Cancel;

    #[test]
    fn ledger_finds_missed_and_repeated_releases() {
        let ledger = Ledger::new();
        ledger.acquired("a");
        ledger.acquired("b");
        ledger.acquired("c");
        ledger.released("a", ExitKind::Completed);
        ledger.released("c", ExitKind::Failed);
        ledger.released("c", ExitKind::Cancelled(Cancel::Dropped));
        let wrong = ledger.check().unwrap_err();
        assert!(wrong.contains("b: never released"), "{wrong}");
        assert!(wrong.contains("c: released 2 times"), "{wrong}");
        assert!(!wrong.contains("a:"), "{wrong}");

        for name in ["conn#10", "pool", "conn#2", "conn#1"] {
            ledger.acquired(name);
        }
        let order: Vec<String> = ledger.exits().into_iter().map(|(name, _)| name).collect();
        assert_eq!(
            order,
            ["a", "b", "c", "conn#1", "conn#2", "conn#10", "pool"]
        );

        let fine = Ledger::new();
        fine.acquired("a");
        fine.released("a", ExitKind::Panicked);
        assert_eq!(fine.check(), Ok(1));
    }
}
