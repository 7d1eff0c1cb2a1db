//! # awith-redis
//!
//! A Redis [`LockBackend`](awith_core::lock::LockBackend) for
//! [awith](https://docs.rs/awith)'s lock scope: [`RedisLocks`]. Locks that
//! several processes (or machines) share, taken and given back by token,
//! with a fencing token per lease and a pub/sub hand-off to waiters.
//!
//! ```no_run
//! use std::time::Duration;
//! use awith::lock::Lock;
//! use awith_redis::RedisLocks;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//!     let rt = awith::runtime()?;
//!     let locks = RedisLocks::connect("redis://127.0.0.1:6379").await?;
//!     let orders = Lock::builder(locks, "orders")
//!         .ttl(Duration::from_secs(10)) // renewed every ttl/3 while the body runs
//!         .wait(Duration::from_secs(5))
//!         .build(&rt)?;
//!     orders
//!         .with(async |lease| {
//!             // Held: pass the fencing token to the storage, which refuses
//!             // a token smaller than the largest it has seen.
//!             println!("orders is mine, fencing token {}", lease.fence());
//!             Ok::<_, std::io::Error>(())
//!         })
//!         .await?;
//!     Ok(())
//! }
//! ```
//!
//! The lock scope (`awith::lock::Lock`, in awith-core) does the retrying,
//! renews the lease while the body runs, cancels (or signals) the body when
//! the lease is lost, and gives the key back by token. A backend call is one
//! attempt:
//!
//! ```no_run
//! # async fn demo() -> Result<(), awith_redis::RedisLockError> {
//! use std::time::Duration;
//! use awith_core::lock::{LockBackend, Token};
//!
//! let locks = awith_redis::RedisLocks::connect("redis://127.0.0.1:6379").await?;
//! let token = Token::random();
//! if let Some(fence) = locks.try_acquire("orders", &token, Duration::from_secs(5)).await? {
//!     # let _ = fence;
//!     assert!(locks.release("orders", &token).await?);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # What it stores
//!
//! With the default prefix `awith:` (see [`RedisLocksBuilder::prefix`]),
//! lock `orders` is:
//!
//! | Redis key or channel       | what                                           | expires                |
//! |----------------------------|------------------------------------------------|------------------------|
//! | `awith:lock:{orders}`      | the holder's [`Token`](awith_core::lock::Token) (32 hex digits) | after the lease's TTL  |
//! | `awith:fence:{orders}`     | the last fencing token given out (an integer)  | **never**: fencing tokens must not repeat, so the counter outlives every lease; delete it only when no holder of `orders` can still write |
//! | `awith:released:{orders}`  | channel: the key (`orders`) of each release    | —                      |
//!
//! The braces are a hash tag: a lock and its counter live in one cluster
//! slot. Each command is one Lua script (run by `EVALSHA`, loaded again
//! after a restart or `SCRIPT FLUSH`):
//!
//! - `try_acquire`: `SET lock token NX PX ttl`, and only if that set it,
//!   `INCR fence`: the new fencing token. So fencing tokens strictly
//!   increase per key, across holders, processes and — if the server
//!   persists its data (`appendonly yes`) — restarts.
//! - `release`: deletes the lock if it holds `token`, and then publishes
//!   the key on the key's release channel (a PUBLISH nobody listens to is
//!   cheap, and nothing comes back to the releaser unless it waits for the
//!   key itself).
//! - `extend`: `PEXPIRE lock ttl` if it holds `token`.
//!
//! A TTL is rounded up to whole milliseconds; zero or more than
//! [`MAX_TTL`] is an [`InvalidTtl`](RedisLockError::InvalidTtl) error.
//!
//! # Connection and hand-off
//!
//! One `RedisLocks` (and all its clones) has one multiplexed RESP3
//! connection (redis's `ConnectionManager`, so Redis ≥ 6): it reconnects
//! by itself when the server goes away, including while nothing is being
//! sent, with bounded retries; every command is bounded by the response
//! timeout. The same connection subscribes to a key's release channel
//! while this process has a waiter that waits for the key, and the
//! subscriptions are made again after each reconnect. A release message
//! wakes this process's [`RedisWaiter`]s of that key at once — the hand-off
//! does not wait for the scope's next retry. A lost connection wakes every
//! waiter, and each (re)subscription of a key's channel wakes that key's
//! (a release may have gone unheard); the scope's backoff retries remain
//! the fallback. A waiter is registered when
//! [`waiter`](awith_core::lock::LockBackend::waiter) returns, before the
//! scope's first try; dropping it unregisters it.
//!
//! The subscriptions are lazy, so that an acquire that does not wait sends
//! no SUBSCRIBE: a key's channel is subscribed the first time one of its
//! waiters is polled (the scope polls it while it backs off between
//! tries), by one SUBSCRIBE for every key that needs one, and its
//! waiters are woken when the server confirms it (so that they try again:
//! a release before it is not missed). After the last waiter of a key has
//! gone, its subscription is idle; every idle subscription is dropped, by
//! one UNSUBSCRIBE, at the next poll of any waiter of this `RedisLocks` or
//! its next `release`. So a long-running process holds at most the
//! subscriptions of the keys it waited for at once, plus those idle since
//! its last poll or release; [`RedisLocks::subscribed`] lists them.
//!
//! When the last clone of a `RedisLocks` is dropped, its connection and
//! redis's tasks for it end.
//!
//! # Runtimes
//!
//! The connection runs on redis's own runtime support, chosen by this
//! crate's features:
//!
//! - `tokio` (default): redis's `tokio-comp`; the connection's tasks are
//!   spawned on the tokio runtime that calls `connect`, which needs I/O
//!   enabled (`enable_all`). Outside one, or on one without I/O,
//!   `connect` returns [`RedisLockError::Runtime`] rather than letting
//!   redis panic (tokio's panic message is still printed by the panic
//!   hook).
//! - `smol`: redis's `smol-comp`; the tasks run on smol's global executor
//!   and the async-io reactor, whoever calls.
//! - `async-std`: the same as `smol` (async-std runs on the same async-io
//!   reactor): an alias, tested on async-std's executor.
//!
//! With both `tokio` and `smol` (an `--all-features` build), redis picks a
//! runtime at `connect`: tokio if a tokio runtime is running the caller,
//! else smol. This crate leaves that choice to redis per connection and
//! never calls redis's `prefer_tokio`/`prefer_smol`, which fix one runtime
//! for the whole process: an application on one runtime that wants to pin
//! it may call one of them itself, before its first connection.
//!
//! # Cancellation
//!
//! Each backend method is one Redis command.
//!
//! - A `try_acquire` dropped before its answer may still have taken the
//!   lock: the lock scope then releases it by token, as a cleanup. Without
//!   the scope, the lock expires after its TTL.
//! - A `release` or `extend` dropped before its answer may or may not have
//!   taken effect; an unreleased lock expires after its TTL.
//! - A dropped [`RedisWaiter`] leaves the table at once.
//! - An error ([`RedisLockError::Command`]) says the same: the command's
//!   effect is unknown. A `release` that cannot reach the server is an
//!   error, never `Ok(false)`.
//!
//! `std::mem::forget` on a waiter leaves it registered (and woken) until
//! its `RedisLocks` is dropped; on a future, it skips what it would have
//! done when dropped.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(any(feature = "tokio", feature = "smol")))]
compile_error!("awith-redis needs a runtime feature: `tokio`, `smol` or `async-std`");

mod error;
mod locks;
mod waiters;

pub use error::RedisLockError;
pub use locks::{MAX_TTL, RedisLocks, RedisLocksBuilder};
pub use waiters::RedisWaiter;
