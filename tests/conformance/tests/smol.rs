//! The conformance suite on smol only (`cargo test -p awith-conformance --test smol`;
//! not run by a plain `cargo test`, which runs every runtime in `conformance`).
#![allow(missing_docs)]

awith_conformance::conformance_suite!(smol);
