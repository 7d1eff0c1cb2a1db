//! [`RedisLockError`]: what a connect or a lock command reports.

use std::fmt;
use std::time::Duration;

use redis::RedisError;

/// What [`RedisLocks::connect`](crate::RedisLocks::connect) or one of its
/// lock commands could not do, with the server it was talking to (its
/// address and database, never its password).
#[non_exhaustive]
#[derive(Debug)]
pub enum RedisLockError {
    /// The URL given to `connect` is not a redis URL.
    InvalidUrl {
        /// The URL, without its user name and password.
        url: String,
        /// Why redis refused it.
        source: RedisError,
    },
    /// `connect` could not reach the server, or the server refused the
    /// connection's setup (a wrong password, RESP3 not spoken: Redis < 6),
    /// within the connect timeout and its retries.
    Connect {
        /// The server: `redis://127.0.0.1:6390/0`.
        server: String,
        /// What went wrong.
        source: RedisError,
    },
    /// A lock command (`try_acquire`, `release`, `extend`) failed: the
    /// server could not be reached, did not answer within the response
    /// timeout, or refused the script. Whether the command took effect is
    /// unknown.
    Command {
        /// The server: `redis://127.0.0.1:6390/0`.
        server: String,
        /// Which command: `"try_acquire"`, `"release"` or `"extend"`.
        op: &'static str,
        /// The lock's key, as the caller named it.
        key: String,
        /// What went wrong.
        source: RedisError,
    },
    /// A time to live Redis cannot store: under a millisecond after
    /// rounding up (zero), or more than [`MAX_TTL`](crate::MAX_TTL).
    InvalidTtl {
        /// The lock's key.
        key: String,
        /// The time to live asked for.
        ttl: Duration,
    },
    /// The runtime calling `connect` cannot run a redis connection: no
    /// tokio runtime runs the caller while `tokio` is the only runtime
    /// feature, or the tokio runtime was built without I/O
    /// (`enable_io`/`enable_all`).
    Runtime {
        /// What is missing, and what to do.
        reason: String,
    },
}

impl RedisLockError {
    /// The server this error is about, if it is about one.
    pub fn server(&self) -> Option<&str> {
        match self {
            RedisLockError::Connect { server, .. } | RedisLockError::Command { server, .. } => {
                Some(server)
            }
            _ => None,
        }
    }

    /// The underlying redis error, if there is one.
    pub fn redis_error(&self) -> Option<&RedisError> {
        match self {
            RedisLockError::InvalidUrl { source, .. }
            | RedisLockError::Connect { source, .. }
            | RedisLockError::Command { source, .. } => Some(source),
            RedisLockError::InvalidTtl { .. } | RedisLockError::Runtime { .. } => None,
        }
    }
}

/// A short reason a person can act on: "connection refused", "timed out".
fn reason(error: &RedisError) -> String {
    if error.is_connection_refusal() {
        "connection refused".into()
    } else if error.is_timeout() {
        "timed out (no answer within the timeout)".into()
    } else if error.is_connection_dropped() {
        "connection lost".into()
    } else {
        error.to_string()
    }
}

impl fmt::Display for RedisLockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisLockError::InvalidUrl { url, source } => {
                write!(f, "invalid redis URL `{url}`: {source}")
            }
            RedisLockError::Connect { server, source } => {
                write!(f, "redis at {server}: {}", reason(source))
            }
            RedisLockError::Command {
                server,
                op,
                key,
                source,
            } => write!(
                f,
                "redis at {server}: {op} of lock `{key}` failed: {}",
                reason(source)
            ),
            RedisLockError::InvalidTtl { key, ttl } => write!(
                f,
                "lock `{key}`: a time to live of {ttl:?} cannot be stored in redis \
                 (at least 1 ms, at most {:?})",
                crate::MAX_TTL
            ),
            RedisLockError::Runtime { reason } => {
                write!(
                    f,
                    "awith-redis: cannot run a redis connection here: {reason}"
                )
            }
        }
    }
}

impl std::error::Error for RedisLockError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.redis_error()
            .map(|error| error as &(dyn std::error::Error + 'static))
    }
}
