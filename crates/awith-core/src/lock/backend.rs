//! [`LockBackend`]: where a lock lives (this process, a Redis server), and
//! what it must do: take a key with a token and a time to live, give it back
//! and extend it only for that token, and (optionally) say when it may have
//! been given back.

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

/// Where a lock lives: the in-process [`LocalLocks`](super::LocalLocks), or a
/// server (`awith-redis`'s `RedisLocks`). A [`Lock`](super::Lock) scope asks
/// it to take, extend and give back one key, always with the holder's
/// [`Token`], so that a holder whose lease ran out can never give back or
/// extend the lease of the next holder.
///
/// Each method is one attempt: the lock scope does the retrying, the backing
/// off and the bounding in time. A backend need not be fair; one that can
/// wake waiters when a key is given back says so through
/// [`waiter`](Self::waiter).
///
/// Every method is user code to the scope: it may fail, panic or hang, and
/// the scope bounds it in time and reports what it could not return.
pub trait LockBackend: Send + Sync + 'static {
    /// What a failed attempt reports (a lost connection, a refused script).
    type Error: std::error::Error + Send + Sync + 'static;

    /// What a waiter holds while it waits for `key` to be given back.
    type Waiter: Waiter;

    /// Takes `key` for `token` for `ttl` if nobody holds it: `Some(fence)`,
    /// the lease's fencing token, strictly larger than the fencing token of
    /// every earlier holder of `key`; `None` if someone else holds it.
    ///
    /// If this future is dropped before it ends, the scope cannot tell
    /// whether the key was taken: it gives it back by `token` (a
    /// [`release`](Self::release) that only deletes the key if `token`
    /// holds it), as a cleanup task.
    fn try_acquire(
        &self,
        key: &str,
        token: &Token,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<u64>, Self::Error>> + Send;

    /// Gives `key` back if `token` holds it: `true` if it did, `false` if
    /// `token` did not hold it (its lease ran out, and perhaps someone else
    /// holds it now, whose lease stays).
    fn release(
        &self,
        key: &str,
        token: &Token,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// Sets the time `key` has left to `ttl` if `token` holds it: `true` if
    /// it did, `false` if `token` no longer holds it (the lease is lost).
    fn extend(
        &self,
        key: &str,
        token: &Token,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// A waiter for `key`, made by `token`'s acquire before its first
    /// attempt and kept until the acquire ends (taken, given up, or
    /// dropped). It is registered when this returns: a release that happens
    /// after this call wakes it, even before it is first polled.
    ///
    /// A backend without such a signal returns [`Polling`]: the scope then
    /// retries on its backoff alone.
    fn waiter(&self, key: &str, token: &Token) -> Self::Waiter;
}

/// A registered wish for a key that someone else holds: ready when that key
/// may have been given back. A hint: the lock scope still tries, and goes
/// on waiting if it was wrong. Dropping it leaves the queue, if the backend
/// keeps one.
pub trait Waiter: Send + 'static {
    /// `Ready` once a release may have let this waiter in since the last
    /// time it was `Ready` (or since it was made); then it re-arms.
    fn poll_released(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}

/// The [`Waiter`] of a backend that cannot tell when a key is given back:
/// never ready, so the lock scope retries on its backoff alone.
#[derive(Clone, Copy, Debug, Default)]
pub struct Polling;

impl Waiter for Polling {
    fn poll_released(&mut self, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

/// Who holds a lock: 128 random bits, written as 32 hexadecimal digits (the
/// value a backend stores under the key). Every acquire makes a new one;
/// only its holder can give back or extend the lock.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token {
    hex: [u8; 32],
}

impl Token {
    /// A new token, unique in this process and unpredictable outside it:
    /// two keyed SipHash outputs over a counter and the time (std's
    /// `RandomState` keys come from the operating system's randomness, once
    /// per thread, and differ for every hasher).
    pub fn random() -> Self {
        let bits = [random_u64(), random_u64()];
        let mut hex = [0u8; 32];
        for (i, byte) in bits[0]
            .to_be_bytes()
            .into_iter()
            .chain(bits[1].to_be_bytes())
            .enumerate()
        {
            const DIGITS: &[u8; 16] = b"0123456789abcdef";
            hex[2 * i] = DIGITS[usize::from(byte >> 4)];
            hex[2 * i + 1] = DIGITS[usize::from(byte & 0xf)];
        }
        Token { hex }
    }

    /// The token as text: 32 lowercase hexadecimal digits.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.hex).unwrap_or_else(|_| unreachable!("hex digits are ASCII"))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Token").field(&self.as_str()).finish()
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// 64 random bits: keyed SipHash over a counter and the time (for tokens
/// and jitter).
pub(super) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::Token;

    #[test]
    fn tokens_are_hex_and_distinct() {
        let a = Token::random();
        let b = Token::random();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
