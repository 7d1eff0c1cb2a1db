//! Printing the tour's lines to stdout without ever panicking.
//!
//! `println!` panics when stdout is gone — `tour | head -1` closes the pipe
//! after the first line — and a panic hook that prints the same way then
//! aborts the process (exit code 134). Every line the tour prints goes
//! through [`line()`] instead: the first write that fails (a closed pipe, most
//! often) silences stdout for the rest of the run, and the tour goes on to
//! its verdict, which its exit code carries.

use std::io::{ErrorKind, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the first write to stdout that failed.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Prints `text` and a newline to stdout, unless stdout has failed before.
///
/// Returns whether the line was written. A closed pipe (`EPIPE`) stops the
/// printing quietly; any other error is told once on stderr.
pub fn line(text: &str) -> bool {
    if CLOSED.load(Ordering::Relaxed) {
        return false;
    }
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Ok(()) => true,
        Err(error) => {
            if !CLOSED.swap(true, Ordering::Relaxed) && error.kind() != ErrorKind::BrokenPipe {
                // The default panic hook and eprintln! differ: eprintln!
                // panics on a failed write, so write by hand and ignore it.
                let _ = writeln!(
                    std::io::stderr(),
                    "tour: cannot write to stdout ({error}); printing stops"
                );
            }
            false
        }
    }
}

/// Whether stdout failed (and the tour stopped printing).
pub fn closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}
