//! Locks whose holding is a scope: the body runs only while the lease is
//! held.
//!
//! A [`Lock`] is one key of a [`LockBackend`] — [`LocalLocks`] in this
//! process, or a server (`awith-redis`). Holding it is a scope:
//!
//! 1. **acquire**: try to take the key with a fresh random [`Token`] and a
//!    time to live; while someone else holds it, wait for the backend's
//!    release signal or a backoff with jitter (5 ms doubling to 250 ms by
//!    default), up to the lock's `wait`; then fail with
//!    [`LockError::Timeout`], naming the key and how long it waited;
//! 2. **body**: runs with a [`Lease`] — the key, the fencing token (larger
//!    than every earlier holder's), the time left, and a future that ends
//!    if the lease is lost. Meanwhile a runtime task extends the lease every
//!    `ttl / 3`. If the backend refuses (the key ran out, was deleted or
//!    taken) or no extension succeeds before the lease runs out, the lease
//!    is **lost**: by default ([`OnLost::Cancel`]) the body is cancelled,
//!    the scope's releases are told `Exit::Cancelled(Cancel::LockLost)`,
//!    and the scope fails with `ScopeError::BodyCancelled`;
//! 3. **release**: the renewal stops and the key is given back *by token*:
//!    a holder whose lease ran out never deletes the next holder's lock. A
//!    release that cannot reach the backend is an error, never silent.
//!
//! ```
//! use std::time::Duration;
//! use awith::lock::{LocalLocks, Lock};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = awith::runtime()?;
//! let lock = Lock::builder(LocalLocks::new(&rt), "orders")
//!     .ttl(Duration::from_secs(10))
//!     .wait(Duration::from_secs(5))
//!     .build(&rt)?;
//! let fence = lock
//!     .with(async |lease| {
//!         assert_eq!(lease.key(), "orders");
//!         assert!(lease.time_left() <= Duration::from_secs(10));
//!         Ok::<_, std::io::Error>(lease.fence()) // pass it to what you write
//!     })
//!     .await?;
//! assert!(fence > 0);
//! # rt.drain(Duration::from_secs(5)).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Fencing
//!
//! No lock can stop a holder that is paused (a stopped process, a long
//! pause, a slow network) from acting after its lease ran out and another
//! took the key. The fencing token can: give it with every write to the
//! guarded store, and have the store refuse a token smaller than the
//! largest it has seen.
//!
//! # Cancellation
//!
//! | dropped while | what happens |
//! |---|---|
//! | waiting for the lock | the acquire is dropped at once and leaves the backend's queue |
//! | a try is in flight | its answer will never be seen: the key is given back by token as a runtime cleanup (a no-op if the try took nothing) |
//! | in the body | the renewal stops and the key is given back by token as a runtime cleanup, told `Exit::Cancelled(Cancel::Dropped)` |
//! | releasing | the release finishes as a runtime cleanup |
//!
//! `std::mem::forget` on the scope's future skips the release, and leaks
//! the renewal's stop switch with it: the lease is then renewed for as
//! long as the runtime runs.

mod backend;
mod config;
mod error;
mod lease;
mod local;
mod renew;
mod scope;

pub use backend::{LockBackend, Polling, Token, Waiter};
pub use config::{LockBuilder, LockConfigError, MAX_TTL, OnLost};
pub use error::{LockError, LostReason};
pub use lease::{Lease, Lost};
pub use local::{LocalLocks, LocalWaiter};
use scope::Shared;
pub use scope::{Lock, LockReleaser, LockScope};
