//! [`RedisLocks`]: the [`LockBackend`] over one Redis server.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use awith_core::lock::{LockBackend, Token};
use futures::FutureExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{
    Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, ProtocolVersion, PushInfo,
    PushKind, RedisResult, Script, Value,
};

use crate::error::RedisLockError;
use crate::waiters::{RedisWaiter, Registry};

/// The longest time to live a lock may ask for: about 4,400 years, well
/// inside what Redis's `PX` accepts.
pub const MAX_TTL: Duration = Duration::from_millis(1 << 47);

/// `SET lock token NX PX ttl` and, only when it was set, `INCR fence`: the
/// new fencing token, or nil when someone holds the lock.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return redis.call('INCR', KEYS[2])
end
return false",
    )
});

/// Deletes the lock if `token` holds it, and then publishes its key on the
/// key's release channel (`ARGV[2]`, the key `ARGV[3]` and `}`): 1 if it
/// deleted, 0 if not.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('DEL', KEYS[1])
    redis.call('PUBLISH', ARGV[2] .. ARGV[3] .. '}', ARGV[3])
    return 1
end
return 0",
    )
});

/// Sets the lock's time to live if `token` holds it: 1 if it did, 0 if not.
static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0",
    )
});

/// Locks kept in one Redis server: a [`LockBackend`] for awith's lock
/// scope. Cheap to clone: clones share one reconnecting connection, its
/// pub/sub subscriptions and one table of waiters.
///
/// See the [crate docs](crate) for the key layout, the scripts and what a
/// cancellation leaves behind.
///
/// ```no_run
/// # async fn demo() -> Result<(), awith_redis::RedisLockError> {
/// use std::time::Duration;
/// use awith_core::lock::{LockBackend, Token};
///
/// let locks = awith_redis::RedisLocks::connect("redis://127.0.0.1:6390").await?;
/// let token = Token::random();
/// if let Some(fence) = locks.try_acquire("orders", &token, Duration::from_secs(5)).await? {
///     // ... write to storage, passing `fence` along ...
///     # let _ = fence;
///     assert!(locks.release("orders", &token).await?);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisLocks {
    inner: Arc<Inner>,
}

struct Inner {
    manager: ConnectionManager,
    registry: Arc<Registry>,
    prefix: String,
    /// `{prefix}released:{`: a key's channel is this, the key and `}`.
    channel_prefix: String,
    server: String,
}

/// Options for [`RedisLocks`]: made by [`RedisLocks::builder`], ended by
/// [`connect`](Self::connect).
///
/// ```no_run
/// # async fn demo() -> Result<(), awith_redis::RedisLockError> {
/// use std::time::Duration;
///
/// let locks = awith_redis::RedisLocks::builder("redis://127.0.0.1:6390/2")
///     .prefix("billing:")
///     .connect_timeout(Duration::from_millis(500))
///     .response_timeout(Duration::from_secs(1))
///     .connect()
///     .await?;
/// assert_eq!(locks.lock_key("orders"), "billing:lock:{orders}");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct RedisLocksBuilder {
    url: String,
    prefix: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    reconnect_retries: usize,
    max_reconnect_delay: Duration,
}

impl RedisLocks {
    /// The default prefix of every key and channel: `awith:`.
    pub const DEFAULT_PREFIX: &'static str = "awith:";

    /// Connects to the server at `url` (`redis://[user:password@]host[:port][/db]`,
    /// `rediss://` needs redis's TLS features, `unix:///path`) with the
    /// default options.
    ///
    /// # Errors
    ///
    /// [`RedisLockError::InvalidUrl`] for a URL redis cannot read;
    /// [`RedisLockError::Connect`] when the server cannot be reached (or
    /// refuses the connection's setup) within the connect timeout and
    /// its retries; [`RedisLockError::Runtime`] outside tokio when
    /// `tokio` is the only runtime feature, or on a tokio runtime without
    /// I/O.
    pub async fn connect(url: impl Into<String>) -> Result<RedisLocks, RedisLockError> {
        RedisLocks::builder(url).connect().await
    }

    /// Options for a connection to `url`: see [`RedisLocksBuilder`].
    pub fn builder(url: impl Into<String>) -> RedisLocksBuilder {
        RedisLocksBuilder {
            url: url.into(),
            prefix: RedisLocks::DEFAULT_PREFIX.to_owned(),
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
            reconnect_retries: 3,
            max_reconnect_delay: Duration::from_secs(1),
        }
    }

    /// The server, as errors name it: `redis://127.0.0.1:6390/0`.
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    /// The prefix of every key and channel.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The Redis key that holds lock `key`: `{prefix}lock:{key}` in braces
    /// (a hash tag, so that it and its fence counter share a cluster slot).
    pub fn lock_key(&self, key: &str) -> String {
        self.key_in("lock:{", key)
    }

    /// The Redis key of `key`'s fencing counter: `{prefix}fence:{key}` in
    /// braces. It has no time to live: it outlives every lease, so that
    /// fencing tokens never repeat.
    pub fn fence_key(&self, key: &str) -> String {
        self.key_in("fence:{", key)
    }

    /// `{prefix}{kind}{key}}`, in one allocation.
    fn key_in(&self, kind: &str, key: &str) -> String {
        let prefix = &self.inner.prefix;
        let mut name = String::with_capacity(prefix.len() + kind.len() + key.len() + 1);
        name.push_str(prefix);
        name.push_str(kind);
        name.push_str(key);
        name.push('}');
        name
    }

    /// The channel the releases of `key` are published on:
    /// `{prefix}released:{key}` in braces (the hash tag of the lock's keys),
    /// with the lock's key (as the caller named it) as the message. This
    /// process subscribes to it only while one of its waiters waits for
    /// `key`.
    pub fn channel(&self, key: &str) -> String {
        self.inner.registry.channel(key)
    }

    /// The keys whose release channels this `RedisLocks` (and its clones)
    /// is subscribed to, or subscribing to, now, sorted: those with a
    /// waiting waiter, and those whose last waiter has gone since the last
    /// time a waiter was polled or this process released a lock (they are
    /// unsubscribed then).
    pub fn subscribed(&self) -> Vec<String> {
        self.inner.registry.subscribed()
    }

    /// How many waiters of this `RedisLocks` (and its clones) wait for
    /// `key` now.
    pub fn waiters(&self, key: &str) -> usize {
        self.inner.registry.count(key)
    }

    /// A failed command's error: allocates only when there is one.
    #[cold]
    fn command_error(
        &self,
        op: &'static str,
        key: &str,
        source: redis::RedisError,
    ) -> RedisLockError {
        RedisLockError::Command {
            server: self.inner.server.clone(),
            op,
            key: key.to_owned(),
            source,
        }
    }
}

impl RedisLocksBuilder {
    /// The prefix of every key and channel (default `awith:`): locks of two
    /// prefixes never meet.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long one attempt to connect may take (default 2 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a command waits for the server's answer before it fails
    /// (default 2 s).
    #[must_use]
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How many times a lost connection is tried again (with exponential
    /// backoff up to [`max_reconnect_delay`](Self::max_reconnect_delay))
    /// before the command waiting for it fails (default 3). The next
    /// command tries again.
    #[must_use]
    pub fn reconnect_retries(mut self, retries: usize) -> Self {
        self.reconnect_retries = retries;
        self
    }

    /// The longest pause between two attempts to reconnect (default 1 s).
    #[must_use]
    pub fn max_reconnect_delay(mut self, delay: Duration) -> Self {
        self.max_reconnect_delay = delay;
        self
    }

    /// Connects (no channel is subscribed until a waiter waits).
    ///
    /// # Errors
    ///
    /// As [`RedisLocks::connect`].
    pub async fn connect(self) -> Result<RedisLocks, RedisLockError> {
        let info = self.url.as_str().into_connection_info().map_err(|source| {
            RedisLockError::InvalidUrl {
                url: redact(&self.url),
                source,
            }
        })?;
        // Push messages (the release channel's) need RESP3.
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let info = info.set_redis_settings(settings);
        let server = describe(&info);
        let client = Client::open(info).map_err(|source| RedisLockError::InvalidUrl {
            url: redact(&self.url),
            source,
        })?;
        check_runtime()?;

        let channel_prefix = format!("{}released:{{", self.prefix);
        let registry = Arc::new(Registry::new(channel_prefix.clone()));
        let dispatch = {
            let registry = Arc::downgrade(&registry);
            let channel_prefix = channel_prefix.clone().into_bytes();
            move |push: PushInfo| -> Result<(), ()> {
                let registry = registry.upgrade().ok_or(())?;
                dispatch(&registry, &channel_prefix, &push);
                Ok(())
            }
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout))
            .set_number_of_retries(self.reconnect_retries)
            .set_max_delay(self.max_reconnect_delay)
            .set_push_sender(dispatch)
            .set_automatic_resubscription();
        let connect_error = |source| RedisLockError::Connect {
            server: server.clone(),
            source,
        };
        // tokio panics when its runtime has no I/O driver: a typed error.
        let connected = AssertUnwindSafe(ConnectionManager::new_with_config(client, config))
            .catch_unwind()
            .await
            .map_err(|payload| RedisLockError::Runtime {
                reason: panic_message(&*payload),
            })?;
        let manager = connected.map_err(connect_error)?;
        registry.connected(manager.clone());
        Ok(RedisLocks {
            inner: Arc::new(Inner {
                manager,
                registry,
                prefix: self.prefix,
                channel_prefix,
                server,
            }),
        })
    }
}

/// Wakes the waiters a push message concerns: a release wakes its key's,
/// and so does a (re)subscription of its key's channel (a release may have
/// come before it); a lost connection wakes them all, since a release may
/// have gone unheard.
fn dispatch(registry: &Registry, channel_prefix: &[u8], push: &PushInfo) {
    match push.kind {
        PushKind::Message | PushKind::Subscribe => {
            if let Some(Value::BulkString(channel)) = push.data.first()
                && let Some(key) = Registry::key_of(channel_prefix, channel)
            {
                registry.released(key);
            }
        }
        PushKind::Disconnection => registry.wake_all(),
        _ => {}
    }
}

/// With `tokio` as the only runtime feature, redis spawns its connection
/// on the current tokio runtime, and panics without one.
fn check_runtime() -> Result<(), RedisLockError> {
    #[cfg(all(feature = "tokio", not(feature = "smol")))]
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(RedisLockError::Runtime {
            reason: "no tokio runtime runs the caller, and `tokio` is awith-redis's only \
                     runtime feature: connect from tokio, or enable the `smol` feature"
                .into(),
        });
    }
    Ok(())
}

/// A panic's message, if it is text.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "redis panicked while connecting".into())
}

/// `redis://host:port/db`, without the user name and password.
fn describe(info: &ConnectionInfo) -> String {
    let db = info.redis_settings().db();
    match info.addr() {
        ConnectionAddr::Tcp(host, port) => format!("redis://{host}:{port}/{db}"),
        ConnectionAddr::TcpTls { host, port, .. } => format!("rediss://{host}:{port}/{db}"),
        ConnectionAddr::Unix(path) => format!("unix://{}?db={db}", path.display()),
        #[allow(unreachable_patterns)]
        other => format!("{other} (db {db})"),
    }
}

/// `url` without what stands between `://` and `@` (a user and password).
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

/// `ttl` in whole milliseconds, rounded up.
fn ttl_ms(key: &str, ttl: Duration) -> Result<u64, RedisLockError> {
    let ms = ttl.as_nanos().div_ceil(1_000_000);
    match u64::try_from(ms) {
        Ok(ms) if ms > 0 && ttl <= MAX_TTL => Ok(ms),
        _ => Err(RedisLockError::InvalidTtl {
            key: key.to_owned(),
            ttl,
        }),
    }
}

impl LockBackend for RedisLocks {
    type Error = RedisLockError;
    type Waiter = RedisWaiter;

    async fn try_acquire(
        &self,
        key: &str,
        token: &Token,
        ttl: Duration,
    ) -> Result<Option<u64>, RedisLockError> {
        let ms = ttl_ms(key, ttl)?;
        // Both keys in one buffer: `{prefix}lock:{key}{prefix}fence:{key}`.
        let prefix = &self.inner.prefix;
        let mut keys = String::with_capacity(2 * (prefix.len() + key.len()) + 15);
        for kind in ["lock:{", "fence:{"] {
            keys.push_str(prefix);
            keys.push_str(kind);
            keys.push_str(key);
            keys.push('}');
        }
        let (lock, fence) = keys.split_at(prefix.len() + key.len() + 7);
        let mut conn = self.inner.manager.clone();
        let fence: RedisResult<Option<u64>> = ACQUIRE
            .key(lock)
            .key(fence)
            .arg(token.as_str())
            .arg(ms)
            .invoke_async(&mut conn)
            .await;
        fence.map_err(|source| self.command_error("try_acquire", key, source))
    }

    async fn release(&self, key: &str, token: &Token) -> Result<bool, RedisLockError> {
        let mut conn = self.inner.manager.clone();
        let deleted: RedisResult<bool> = RELEASE
            .key(self.lock_key(key))
            .arg(token.as_str())
            .arg(&self.inner.channel_prefix)
            .arg(key)
            .invoke_async(&mut conn)
            .await;
        // Then drops the subscriptions no waiter needs any more, if there
        // are (after the release, so as not to delay its hand-off).
        self.inner.registry.nudge();
        deleted.map_err(|source| self.command_error("release", key, source))
    }

    async fn extend(
        &self,
        key: &str,
        token: &Token,
        ttl: Duration,
    ) -> Result<bool, RedisLockError> {
        let ms = ttl_ms(key, ttl)?;
        let mut conn = self.inner.manager.clone();
        let extended: RedisResult<bool> = EXTEND
            .key(self.lock_key(key))
            .arg(token.as_str())
            .arg(ms)
            .invoke_async(&mut conn)
            .await;
        extended.map_err(|source| self.command_error("extend", key, source))
    }

    fn waiter(&self, key: &str, _token: &Token) -> RedisWaiter {
        self.inner.registry.register(key)
    }
}

impl fmt::Debug for RedisLocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLocks")
            .field("server", &self.inner.server)
            .field("prefix", &self.inner.prefix)
            .field("waiters", &self.inner.registry)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_TTL, redact, ttl_ms};
    use std::time::Duration;

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(redact("redis://u:secret@h:1/2"), "redis://***@h:1/2");
        assert_eq!(redact("redis://h:1/2"), "redis://h:1/2");
        assert_eq!(redact("nonsense"), "nonsense");
    }

    #[test]
    fn ttls_round_up_to_milliseconds() {
        assert_eq!(ttl_ms("k", Duration::from_micros(1)).ok(), Some(1));
        assert_eq!(ttl_ms("k", Duration::from_micros(1500)).ok(), Some(2));
        assert!(ttl_ms("k", Duration::ZERO).is_err());
        assert!(ttl_ms("k", MAX_TTL + Duration::from_millis(1)).is_err());
        assert_eq!(ttl_ms("k", MAX_TTL).ok(), Some(1 << 47));
    }
}
