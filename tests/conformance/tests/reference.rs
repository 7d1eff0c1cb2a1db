//! The conformance suite on the reference runtime.
#![allow(missing_docs)]

awith_conformance::conformance_suite!(awith_conformance::harness::Reference);
