//! The conformance suite on tokio_current_thread only (`cargo test -p awith-conformance --test tokio_current_thread`;
//! not run by a plain `cargo test`, which runs every runtime in `conformance`).
#![allow(missing_docs)]

awith_conformance::conformance_suite!(tokio_current_thread);
