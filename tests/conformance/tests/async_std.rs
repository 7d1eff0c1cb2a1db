//! The conformance suite on the async std runtime.
#![allow(missing_docs)]

awith_conformance::conformance_suite!(awith_conformance::harness::AsyncStd);
