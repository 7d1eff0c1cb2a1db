//! # awith-scenarios
//!
//! The scenarios awith was built for, end to end, on every runtime — and the
//! tour (`cargo run --example tour -- --runtime smol`) that walks through them
//! with a printed timeline.
//!
//! - [`timeline`]: the event timeline the tour prints, and the ledger that
//!   checks every acquired resource was released exactly once;
//! - [`runtimes`]: choosing and starting tokio, async-std or smol by name;
//! - [`tour`]: the scenarios themselves;
//! - [`locks`]: scenario 9, workers contending for a lock, in-process
//!   or on Redis (`--redis`);
//! - [`transactions`]: scenario 10, the source's `transfer_funds` on
//!   SQLite, or on PostgreSQL (`--postgres`);
//! - [`cli`]: the tour's command line (`--help`, `--runtime`), its panic
//!   hook, and [`out`]: its printing, which stops quietly at a closed pipe
//!   (`tour | head -1`).

pub mod cli;
pub mod locks;
pub mod out;
pub mod runtimes;
pub mod timeline;
pub mod tour;
pub mod transactions;
