//! The tour of awith: resource scopes that succeed, suppress an error, panic
//! and get cancelled, on the runtime you choose, with a printed timeline.
//!
//! ```text
//! cargo run --example tour -- --runtime tokio      # or async-std, or smol
//! cargo run --example tour -- --help
//! ```
//!
//! Exits 1 if any release was missed or ran twice, a connection leaked, or
//! the runtime reported an incident; 2 for a bad argument. The program is
//! [`awith_scenarios::cli::main`]; the `tour` binary of this crate is the
//! same program, for the tests that run it.

fn main() -> std::process::ExitCode {
    awith_scenarios::cli::main(std::env::args().skip(1))
}
