//! The tour of awith: resource scopes that succeed, suppress an error, panic
//! and get cancelled, pools, locks and transactions, on the runtime you
//! choose, with a printed timeline.
//!
//! ```text
//! cargo run --example tour -- --runtime tokio   # or async-std, or smol
//! cargo run --example tour -- --redis URL       # scenario 9 on Redis
//! cargo run --example tour -- --postgres URL    # scenario 10 on PostgreSQL
//! cargo run --example tour -- --help
//! ```
//!
//! Exits 1 if any release was missed or ran twice, a connection leaked, the
//! runtime reported an incident, or a scenario did not end as it should (a
//! lock that did not exclude, a transfer that lost money); 2 for a bad
//! argument. The program is
//! [`awith_scenarios::cli::main`]; the `tour` binary of this crate is the
//! same program, for the tests that run it.

fn main() -> std::process::ExitCode {
    awith_scenarios::cli::main(std::env::args().skip(1))
}
