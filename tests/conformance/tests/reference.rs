//! The conformance suite on reference only (`cargo test -p awith-conformance --test reference`;
//! not run by a plain `cargo test`, which runs every runtime in `conformance`).
#![allow(missing_docs)]

awith_conformance::conformance_suite!(reference);
