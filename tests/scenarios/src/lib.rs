//! # awith-scenarios
//!
//! The scenarios awith was built for, end to end, on every runtime — and the
//! tour (`cargo run --example tour -- --runtime smol`) that walks through them
//! with a printed timeline.
//!
//! - [`timeline`]: the event timeline the tour prints, and the ledger that
//!   checks every acquired resource was released exactly once;
//! - [`runtimes`]: choosing and starting tokio, async-std or smol by name;
//! - [`tour`]: the scenarios themselves.
#![allow(clippy::print_stdout)]

pub mod runtimes;
pub mod timeline;
pub mod tour;
