//! Locks whose holding is a scope: the body runs only while the lease is
//! held.

mod backend;

pub use backend::{LockBackend, Polling, Token, Waiter};
