//! The conformance suite on the smol runtime.
#![allow(missing_docs)]

awith_conformance::conformance_suite!(awith_conformance::harness::Smol);
