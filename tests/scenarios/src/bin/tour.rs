//! The tour as a binary target, so that the tests can run it
//! (`env!("CARGO_BIN_EXE_tour")`): the same program as `examples/tour.rs`,
//! [`awith_scenarios::cli::main`].

fn main() -> std::process::ExitCode {
    awith_scenarios::cli::main(std::env::args().skip(1))
}
