//! The tour of awith: resource scopes that succeed, suppress an error, panic
//! and get cancelled, on the runtime you choose, with a printed timeline.
//!
//! ```text
//! cargo run --example tour -- --runtime tokio      # or async-std, or smol
//! ```
//!
//! Exits non-zero if any release was missed or ran twice, a connection
//! leaked, or the runtime reported an incident.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::sync::Arc;

use awith_scenarios::runtimes::Choice;
use awith_scenarios::timeline::Timeline;

fn main() -> ExitCode {
    let choice = match parse_args(std::env::args().skip(1)) {
        Ok(choice) => choice,
        Err(message) => {
            eprintln!("{message}");
            eprintln!("usage: cargo run --example tour -- --runtime tokio|async-std|smol");
            return ExitCode::from(2);
        }
    };
    // The body of scenario 3 panics on purpose: print it as a timeline line.
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        println!("  {:>9}  panic!   {message:?} (caught by the tour)", "");
    }));
    println!("awith tour on {choice}");
    let timeline = Arc::new(Timeline::new(false));
    let report = match choice.block_on(awith_scenarios::tour::run(timeline)) {
        Ok(Ok(report)) => report,
        Ok(Err(message)) | Err(message) => {
            eprintln!("the tour could not run: {message}");
            return ExitCode::FAILURE;
        }
    };
    if report.ok() {
        println!("\nOK: every release ran exactly once on {choice}");
        ExitCode::SUCCESS
    } else {
        println!("\nFAILED on {choice}: {report:#?}");
        ExitCode::FAILURE
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Choice, String> {
    let mut choice = None;
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "--runtime" | "-r" => args.next().ok_or("--runtime needs a value")?,
            other => match other.strip_prefix("--runtime=") {
                Some(value) => value.to_owned(),
                None => return Err(format!("unknown argument {other:?}")),
            },
        };
        choice = Some(value.parse::<Choice>()?);
    }
    Ok(choice.unwrap_or(Choice::Tokio))
}
