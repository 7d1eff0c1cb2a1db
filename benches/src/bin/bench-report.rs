//! Renders the report of `ci/bench.sh` from the `results.tsv` it wrote (see
//! `awith_benches::report` for its format):
//!
//! ```text
//! bench-report RESULTS.tsv OUT_DIR      writes OUT_DIR/report.md and OUT_DIR/ratios.svg
//! ```
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;

use awith_benches::report::Results;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [results, out] = args.as_slice() else {
        eprintln!("usage: bench-report RESULTS.tsv OUT_DIR");
        return ExitCode::from(2);
    };
    match render(results.into(), out.into()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn render(results: PathBuf, out: PathBuf) -> Result<(), String> {
    let tsv = std::fs::read_to_string(&results)
        .map_err(|error| format!("cannot read {}: {error}", results.display()))?;
    let results =
        Results::parse(&tsv).map_err(|error| format!("{}: {error}", results.display()))?;
    std::fs::create_dir_all(&out)
        .map_err(|error| format!("cannot create {}: {error}", out.display()))?;
    for (name, text) in [
        ("report.md", results.markdown()),
        ("ratios.svg", results.svg()),
    ] {
        let path = out.join(name);
        std::fs::write(&path, text)
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}
