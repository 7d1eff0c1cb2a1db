//! The conformance suite on the tokio current thread runtime.
#![allow(missing_docs)]

awith_conformance::conformance_suite!(awith_conformance::harness::TokioCurrentThread);
