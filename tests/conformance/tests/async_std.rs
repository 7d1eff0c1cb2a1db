//! The conformance suite on async_std only (`cargo test -p awith-conformance --test async_std`;
//! not run by a plain `cargo test`, which runs every runtime in `conformance`).
#![allow(missing_docs)]

awith_conformance::conformance_suite!(async_std);
