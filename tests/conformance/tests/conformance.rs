//! The conformance suite on every runtime the features enable, and on the
//! reference runtime: each test is `name::runtime`.
#![allow(missing_docs)]

awith_conformance::conformance_suite!();
