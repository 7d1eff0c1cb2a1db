//! The conformance suite on the tokio multi thread runtime.
#![allow(missing_docs)]

awith_conformance::conformance_suite!(awith_conformance::harness::TokioMultiThread);
