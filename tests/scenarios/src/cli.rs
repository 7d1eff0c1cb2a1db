//! The tour's command line: `cargo run --example tour -- --runtime smol`.
//!
//! The program (`examples/tour.rs`, and the `tour` binary the tests run) is
//! [`main`]: it parses the arguments, installs the [panic hook](install_panic_hook),
//! runs [`tour::run`](crate::tour::run) on the chosen runtime and turns its
//! report into an exit code: 0 when every release ran exactly once, 1 when
//! not, 2 for a bad argument.

use std::any::Any;
use std::io::Write as _;
use std::panic::PanicHookInfo;
use std::process::ExitCode;
use std::sync::Arc;

use crate::out;
use crate::runtimes::Choice;
use crate::timeline::Timeline;
use crate::tour::PROVOKED;

/// The usage line, printed with `--help` and after a bad argument.
pub const USAGE: &str = "usage: cargo run --example tour -- [--runtime tokio|async-std|smol] \
                          [--redis URL] [--postgres URL]";

/// What the command line asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Run the tour on this runtime; `chosen` is false when it is the default.
    Run {
        /// The runtime.
        choice: Choice,
        /// Whether `--runtime` named it.
        chosen: bool,
        /// `--redis URL`: scenario 9 on that Redis server.
        redis: Option<String>,
        /// `--postgres URL`: scenario 10 on that PostgreSQL server.
        postgres: Option<String>,
    },
    /// Print the help and exit.
    Help,
}

/// Parses the arguments after the program's name.
///
/// # Errors
///
/// An unknown argument, a `--runtime` without a value or with an unknown
/// runtime, a `--redis` or `--postgres` without a URL.
pub fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut choice = None;
    let mut redis = None;
    let mut postgres = None;
    while let Some(arg) = args.next() {
        if let Some(url) = arg.strip_prefix("--redis=") {
            redis = Some(url.to_owned());
            continue;
        }
        if let Some(url) = arg.strip_prefix("--postgres=") {
            postgres = Some(url.to_owned());
            continue;
        }
        let value = match arg.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--redis" => {
                redis = Some(args.next().ok_or("--redis needs a URL")?);
                continue;
            }
            "--postgres" => {
                postgres = Some(args.next().ok_or("--postgres needs a URL")?);
                continue;
            }
            "--runtime" | "-r" => args.next().ok_or("--runtime needs a value")?,
            other => match other.strip_prefix("--runtime=") {
                Some(value) => value.to_owned(),
                None => return Err(format!("unknown argument {other:?}")),
            },
        };
        choice = Some(value.parse::<Choice>()?);
    }
    Ok(match choice {
        Some(choice) => Command::Run {
            choice,
            chosen: true,
            redis,
            postgres,
        },
        None => Command::Run {
            choice: default_choice(),
            chosen: false,
            redis,
            postgres,
        },
    })
}

/// The runtime the tour runs on when none is named: tokio when this build
/// includes it, else the first runtime it includes.
pub fn default_choice() -> Choice {
    Choice::enabled().first().copied().unwrap_or(Choice::Tokio)
}

/// The help text (`--help`, `-h`).
pub fn help() -> String {
    let enabled: Vec<&str> = Choice::enabled().into_iter().map(Choice::name).collect();
    format!(
        "The awith tour: resource scopes that succeed, suppress an error, panic, get\n\
         cancelled, fan out, use a pool, take a lock and run transactions, with a\n\
         printed timeline.\n\
         \n\
         {USAGE}\n\
         \n\
         options:\n  \
           -r, --runtime <name>  the runtime to run on: tokio, async-std or smol\n                        \
           (default: {default}; this build includes: {enabled})\n  \
           --redis <url>         scenario 9's lock on this Redis server, e.g.\n                        \
           redis://127.0.0.1:6390 (default: the in-process backend)\n  \
           --postgres <url>      scenario 10's transfers on this PostgreSQL server, e.g.\n                        \
           postgres://postgres@127.0.0.1:5433/postgres, in a schema of\n                        \
           the run's own, dropped at the end (default: SQLite, a file\n                        \
           in a temporary directory)\n  \
           -h, --help            print this help and exit\n\
         \n\
         exit code: 0 when every release ran exactly once, nothing leaked and every\n\
         scenario ended as it should (scenario 10: no money lost), 1 when not, 2 for\n\
         a bad argument.",
        default = default_choice(),
        enabled = enabled.join(", "),
    )
}

/// The first line the tour prints: the runtime, and why it was chosen.
pub fn first_line(choice: Choice, chosen: bool) -> String {
    if chosen {
        return format!("awith tour on {choice} (chosen with --runtime)");
    }
    let others: Vec<&str> = Choice::enabled()
        .into_iter()
        .filter(|other| *other != choice)
        .map(Choice::name)
        .collect();
    if others.is_empty() {
        format!("awith tour on {choice} (the default: the only runtime this build includes)")
    } else {
        format!(
            "awith tour on {choice} (the default; --runtime {} for another)",
            others.join("|")
        )
    }
}

/// The message of a panic the tour provokes on purpose (it starts with
/// [`PROVOKED`]), without that prefix; `None` for any other panic.
pub fn provoked_message(payload: &(dyn Any + Send)) -> Option<&str> {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))?;
    message.strip_prefix(PROVOKED)
}

/// Installs the tour's panic hook over the current one.
///
/// A panic the tour provokes on purpose (scenario 3's body) is printed as a
/// timeline line on stdout, through [`out::line()`], so it never writes to a
/// closed pipe. Any other panic is a bug, in the tour or in awith: it goes
/// to the hook that was installed before (the default one prints the thread,
/// the message and the location on stderr).
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(
        move |info: &PanicHookInfo<'_>| match provoked_message(info.payload()) {
            Some(message) => {
                out::line(&format!(
                    "  {:>9}  panic!   {message:?} (provoked by the tour, which catches it)",
                    ""
                ));
            }
            None => previous(info),
        },
    ));
}

/// The tour's `main`: parses `args` (without the program's name), runs the
/// tour and returns its exit code.
pub fn main(args: impl Iterator<Item = String>) -> ExitCode {
    let (choice, chosen, options) = match parse_args(args) {
        Ok(Command::Run {
            choice,
            chosen,
            redis,
            postgres,
        }) => (choice, chosen, crate::tour::Options { redis, postgres }),
        Ok(Command::Help) => {
            out::line(&help());
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            let _ = writeln!(
                std::io::stderr(),
                "tour: {message}\n{USAGE}\n(--help for more)"
            );
            return ExitCode::from(2);
        }
    };
    install_panic_hook();
    out::line(&first_line(choice, chosen));
    let timeline = Arc::new(Timeline::new(false));
    let report = match choice.block_on(crate::tour::run_with(timeline, options)) {
        Ok(Ok(report)) => report,
        Ok(Err(message)) | Err(message) => {
            let _ = writeln!(std::io::stderr(), "tour: the tour could not run: {message}");
            return ExitCode::FAILURE;
        }
    };
    if report.ok() {
        out::line(&format!("\nOK: every release ran exactly once on {choice}"));
        ExitCode::SUCCESS
    } else {
        let failed = format!("\nFAILED on {choice}: {report:#?}");
        if !out::line(&failed) {
            let _ = writeln!(std::io::stderr(), "{failed}");
        }
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(args.iter().map(|arg| (*arg).to_owned()))
    }

    #[test]
    fn arguments() {
        assert_eq!(parse(&["--help"]), Ok(Command::Help));
        assert_eq!(parse(&["-h"]), Ok(Command::Help));
        assert_eq!(parse(&["--runtime", "smol", "--help"]), Ok(Command::Help));
        assert_eq!(
            parse(&[]),
            Ok(Command::Run {
                choice: default_choice(),
                chosen: false,
                redis: None,
                postgres: None,
            })
        );
        assert_eq!(
            parse(&["--redis", "redis://127.0.0.1:7000", "-r", "smol"]),
            Ok(Command::Run {
                choice: Choice::Smol,
                chosen: true,
                redis: Some("redis://127.0.0.1:7000".into()),
                postgres: None,
            })
        );
        assert_eq!(
            parse(&["--redis=redis://127.0.0.1:7000"]),
            Ok(Command::Run {
                choice: default_choice(),
                chosen: false,
                redis: Some("redis://127.0.0.1:7000".into()),
                postgres: None,
            })
        );
        assert!(parse(&["--redis"]).is_err());
        let pg = "postgres://postgres@127.0.0.1:7001/postgres";
        for args in [&["--postgres", pg][..], &[&format!("--postgres={pg}")]] {
            assert_eq!(
                parse(args),
                Ok(Command::Run {
                    choice: default_choice(),
                    chosen: false,
                    redis: None,
                    postgres: Some(pg.into()),
                }),
                "{args:?}"
            );
        }
        assert_eq!(
            parse(&[
                "--postgres",
                pg,
                "--redis",
                "redis://127.0.0.1:7000",
                "-r",
                "smol"
            ]),
            Ok(Command::Run {
                choice: Choice::Smol,
                chosen: true,
                redis: Some("redis://127.0.0.1:7000".into()),
                postgres: Some(pg.into()),
            })
        );
        assert_eq!(parse(&["--postgres"]), Err("--postgres needs a URL".into()));
        for args in [
            &["--runtime", "smol"][..],
            &["-r", "smol"],
            &["--runtime=smol"],
        ] {
            assert_eq!(
                parse(args),
                Ok(Command::Run {
                    choice: Choice::Smol,
                    chosen: true,
                    redis: None,
                    postgres: None,
                }),
                "{args:?}"
            );
        }
        assert_eq!(
            parse(&["--bogus"]),
            Err("unknown argument \"--bogus\"".into())
        );
        assert!(parse(&["--runtime"]).is_err());
        assert!(
            parse(&["--runtime", "glommio"])
                .unwrap_err()
                .contains("glommio")
        );
    }

    #[test]
    fn provoked_panics_are_recognised_by_their_prefix() {
        let provoked: Box<dyn Any + Send> = Box::new(format!("{PROVOKED}query planner bug"));
        assert_eq!(provoked_message(&*provoked), Some("query planner bug"));
        let literal: Box<dyn Any + Send> = Box::new("tour: provoked: x");
        assert_eq!(provoked_message(&*literal), Some("x"));
        for other in ["query planner bug", "index out of bounds", ""] {
            let bug: Box<dyn Any + Send> = Box::new(other);
            assert_eq!(provoked_message(&*bug), None, "{other:?}");
        }
        let opaque: Box<dyn Any + Send> = Box::new(42_u32);
        assert_eq!(provoked_message(&*opaque), None);
    }

    #[test]
    fn first_line_says_why() {
        let line = first_line(default_choice(), false);
        assert!(line.starts_with(&format!("awith tour on {}", default_choice())));
        assert!(line.contains("default"), "{line}");
        assert!(first_line(Choice::Smol, true).contains("chosen with --runtime"));
    }
}
