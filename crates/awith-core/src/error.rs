//! What a scope returns when something failed: [`ScopeError`], built from
//! [`Failure`]s of acquires and releases; and [`Elapsed`], the error of a
//! free-standing timeout.

use std::fmt;
use std::time::Duration;

use crate::exit::Cancel;

/// Why a scope failed: `E` is the body's error, `R` the resource's own
/// (acquire and release) error.
///
/// No error is dropped on the way: when the body fails and its release fails
/// too, the body's error is primary and the release's failure travels with it
/// in [`ScopeError::Body::release`] — like Java's suppressed exceptions.
///
/// # Examples
///
/// ```
/// use awith::{Failure, ScopeError};
///
/// let err: ScopeError<&str, &str> = ScopeError::Body {
///     error: "query failed",
///     release: Some(Failure::Error("connection reset")),
/// };
/// assert_eq!(err.body_error(), Some(&"query failed"));
/// assert_eq!(
///     err.to_string(),
///     "query failed (and the release failed too: connection reset)"
/// );
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeError<E, R> {
    /// Acquiring the resource failed (or timed out): the body never ran and
    /// nothing is left to release.
    Acquire(Failure<R>),
    /// The body failed. The release ran and saw [`Exit::Failed`](crate::Exit::Failed);
    /// if the release failed as well, that failure is kept here.
    Body {
        /// The body's error: the primary error of the scope.
        error: E,
        /// The release's own failure, if it failed too.
        release: Option<Failure<R>>,
    },
    /// The body did not finish within its timeout and was dropped; the release
    /// ran and saw `Exit::Cancelled(Cancel::Timeout)`.
    BodyTimeout {
        /// The body's timeout.
        after: Duration,
        /// The release's own failure, if it failed too.
        release: Option<Failure<R>>,
    },
    /// The body was cancelled from outside while it ran — a
    /// [`Tripwire`](crate::Tripwire) was tripped, e.g. a
    /// [`Lock`](crate::lock::Lock)'s lease was lost (`Cancel::LockLost`) —
    /// and dropped; the release ran and saw `Exit::Cancelled(reason)`.
    BodyCancelled {
        /// Why the body was cancelled.
        reason: Cancel,
        /// The release's own failure, if it failed too.
        release: Option<Failure<R>>,
    },
    /// The body succeeded but the release failed. The body's value is dropped:
    /// a scope whose release failed did not complete.
    Release(Failure<R>),
}

impl<E, R> ScopeError<E, R> {
    /// The body's error, for [`ScopeError::Body`].
    pub fn body_error(&self) -> Option<&E> {
        match self {
            ScopeError::Body { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The release's failure, from [`ScopeError::Release`] or carried by
    /// [`ScopeError::Body`], [`ScopeError::BodyTimeout`] or
    /// [`ScopeError::BodyCancelled`].
    pub fn release_failure(&self) -> Option<&Failure<R>> {
        match self {
            ScopeError::Body { release, .. }
            | ScopeError::BodyTimeout { release, .. }
            | ScopeError::BodyCancelled { release, .. } => release.as_ref(),
            ScopeError::Release(failure) => Some(failure),
            ScopeError::Acquire(_) => None,
        }
    }

    /// The acquire's failure, for [`ScopeError::Acquire`].
    pub fn acquire_failure(&self) -> Option<&Failure<R>> {
        match self {
            ScopeError::Acquire(failure) => Some(failure),
            _ => None,
        }
    }

    /// `true` when a deadline ended the scope: its acquire, body or release
    /// timed out.
    ///
    /// ```
    /// use std::time::Duration;
    /// use awith::{Failure, ScopeError};
    ///
    /// let err: ScopeError<(), ()> = ScopeError::Acquire(Failure::TimedOut(Duration::from_secs(1)));
    /// assert!(err.is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        match self {
            ScopeError::BodyTimeout { .. } => true,
            ScopeError::Acquire(failure) | ScopeError::Release(failure) => failure.is_timeout(),
            ScopeError::Body { .. } | ScopeError::BodyCancelled { .. } => false,
        }
    }

    /// Converts the body's error, keeping everything else.
    ///
    /// ```
    /// use awith::ScopeError;
    ///
    /// let err: ScopeError<u8, ()> = ScopeError::Body { error: 7, release: None };
    /// assert_eq!(err.map_body(u32::from).body_error(), Some(&7u32));
    /// ```
    pub fn map_body<F>(self, f: impl FnOnce(E) -> F) -> ScopeError<F, R> {
        match self {
            ScopeError::Acquire(failure) => ScopeError::Acquire(failure),
            ScopeError::Body { error, release } => ScopeError::Body {
                error: f(error),
                release,
            },
            ScopeError::BodyTimeout { after, release } => {
                ScopeError::BodyTimeout { after, release }
            }
            ScopeError::BodyCancelled { reason, release } => {
                ScopeError::BodyCancelled { reason, release }
            }
            ScopeError::Release(failure) => ScopeError::Release(failure),
        }
    }
}

impl<E: fmt::Display, R: fmt::Display> fmt::Display for ScopeError<E, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeError::Acquire(failure) => write!(f, "acquiring the resource failed: {failure}"),
            ScopeError::Body {
                error,
                release: None,
            } => write!(f, "{error}"),
            ScopeError::Body {
                error,
                release: Some(failure),
            } => write!(f, "{error} (and the release failed too: {failure})"),
            ScopeError::BodyTimeout {
                after,
                release: None,
            } => write!(f, "the scope's body did not finish within {after:?}"),
            ScopeError::BodyTimeout {
                after,
                release: Some(failure),
            } => write!(
                f,
                "the scope's body did not finish within {after:?} (and the release failed too: {failure})"
            ),
            ScopeError::BodyCancelled {
                reason,
                release: None,
            } => write!(f, "the scope's body was cancelled: {reason}"),
            ScopeError::BodyCancelled {
                reason,
                release: Some(failure),
            } => write!(
                f,
                "the scope's body was cancelled: {reason} (and the release failed too: {failure})"
            ),
            ScopeError::Release(failure) => {
                write!(
                    f,
                    "the body completed but releasing the resource failed: {failure}"
                )
            }
        }
    }
}

/// `ScopeError` is transparent over its primary failure, as `std::io::Error`
/// is over a wrapped error: its `Display` starts with that failure's message
/// and adds what else went wrong (the release's failure beside a body's
/// error), so it tells the whole story once; its
/// [`source`](std::error::Error::source) is the primary error's source. So
/// `?` into `Box<dyn Error>` or `anyhow::Error` keeps the chain without
/// repeating a message.
///
/// It needs `E: Error` and `R: Error`. A body that fails with
/// `Box<dyn Error + Send + Sync>` or `anyhow::Error` (neither is an `Error`)
/// converts with [`ScopeError::into_dyn`].
impl<E, R> std::error::Error for ScopeError<E, R>
where
    E: std::error::Error + 'static,
    R: std::error::Error + 'static,
{
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ScopeError::Body { error, .. } => error.source(),
            ScopeError::Acquire(failure) | ScopeError::Release(failure) => failure.source(),
            ScopeError::BodyTimeout { .. } | ScopeError::BodyCancelled { .. } => None,
        }
    }
}

impl<E, R> ScopeError<E, R> {
    /// Every failure in this error, oldest first, each with the stage it
    /// came from: the acquire's, then the body's error (or its timeout),
    /// then the release's. A failure of several parts (a combined resource,
    /// an exit stack) is flattened into its parts, in order.
    ///
    /// ```
    /// use awith::{Failure, ScopeError, Stage};
    ///
    /// let err: ScopeError<&str, &str> = ScopeError::Body {
    ///     error: "query failed",
    ///     release: Some(Failure::Error("reset").and(Failure::Error("closed"))),
    /// };
    /// let story: Vec<_> = err.failures().iter().map(|f| (f.stage, f.to_string())).collect();
    /// assert_eq!(story, [
    ///     (Stage::Body, "query failed".to_string()),
    ///     (Stage::Release, "reset".to_string()),
    ///     (Stage::Release, "closed".to_string()),
    /// ]);
    /// ```
    pub fn failures(&self) -> Vec<Located<'_, E, R>> {
        fn push<'a, E, R>(stage: Stage, failure: &'a Failure<R>, all: &mut Vec<Located<'a, E, R>>) {
            for leaf in failure.leaves() {
                all.push(Located {
                    stage,
                    cause: match leaf {
                        Failure::Error(error) => Cause::Resource(error),
                        Failure::TimedOut(after) => Cause::TimedOut(*after),
                        Failure::NoBodyToBound(after) => Cause::NoBodyToBound(*after),
                        Failure::Many(_) => unreachable!("leaves are never `Many`"),
                    },
                });
            }
        }
        let mut all = Vec::new();
        match self {
            ScopeError::Acquire(failure) => push(Stage::Acquire, failure, &mut all),
            ScopeError::Body { error, release } => {
                all.push(Located {
                    stage: Stage::Body,
                    cause: Cause::Body(error),
                });
                if let Some(failure) = release {
                    push(Stage::Release, failure, &mut all);
                }
            }
            ScopeError::BodyTimeout { after, release } => {
                all.push(Located {
                    stage: Stage::Body,
                    cause: Cause::TimedOut(*after),
                });
                if let Some(failure) = release {
                    push(Stage::Release, failure, &mut all);
                }
            }
            ScopeError::BodyCancelled { reason, release } => {
                all.push(Located {
                    stage: Stage::Body,
                    cause: Cause::Cancelled(*reason),
                });
                if let Some(failure) = release {
                    push(Stage::Release, failure, &mut all);
                }
            }
            ScopeError::Release(failure) => push(Stage::Release, failure, &mut all),
        }
        all
    }

    /// This error as a `Box<dyn Error + Send + Sync>`, for bodies and
    /// resources whose errors are not `std::error::Error` themselves
    /// (`Box<dyn Error + Send + Sync>`, `anyhow::Error`, `String`): the box
    /// tells the same story, and its source chain is the primary error's.
    ///
    /// ```
    /// use awith::{Failure, ScopeError};
    ///
    /// type BoxError = Box<dyn std::error::Error + Send + Sync>;
    /// let err: ScopeError<BoxError, BoxError> = ScopeError::Acquire(Failure::Error("refused".into()));
    /// let boxed: BoxError = err.into_dyn();
    /// assert_eq!(boxed.to_string(), "acquiring the resource failed: refused");
    /// ```
    pub fn into_dyn(self) -> Box<dyn std::error::Error + Send + Sync + 'static>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
        R: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        let boxed = self.map_body(|error| Dyn(error.into()));
        Box::new(boxed.map_resource(|error| Dyn(error.into())))
    }

    /// Converts the resource's error (of acquire and release), keeping
    /// everything else.
    pub fn map_resource<S>(self, mut f: impl FnMut(R) -> S) -> ScopeError<E, S> {
        match self {
            ScopeError::Acquire(failure) => ScopeError::Acquire(failure.map(f)),
            ScopeError::Body { error, release } => ScopeError::Body {
                error,
                release: release.map(|failure| failure.map(&mut f)),
            },
            ScopeError::BodyTimeout { after, release } => ScopeError::BodyTimeout {
                after,
                release: release.map(|failure| failure.map(&mut f)),
            },
            ScopeError::BodyCancelled { reason, release } => ScopeError::BodyCancelled {
                reason,
                release: release.map(|failure| failure.map(&mut f)),
            },
            ScopeError::Release(failure) => ScopeError::Release(failure.map(f)),
        }
    }
}

/// A boxed error as an `Error`: transparent.
struct Dyn(Box<dyn std::error::Error + Send + Sync + 'static>);

impl fmt::Debug for Dyn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Dyn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Dyn {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Where a failure in a [`ScopeError`] came from; see
/// [`ScopeError::failures`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The acquire.
    Acquire,
    /// The body.
    Body,
    /// The release.
    Release,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Acquire => "acquire",
            Stage::Body => "body",
            Stage::Release => "release",
        })
    }
}

/// One failure of a [`ScopeError`], and where it came from; see
/// [`ScopeError::failures`]. Its `Display` is the failure's.
#[derive(Debug)]
pub struct Located<'a, E, R> {
    /// The stage it came from.
    pub stage: Stage,
    /// What it was.
    pub cause: Cause<'a, E, R>,
}

impl<E: fmt::Display, R: fmt::Display> fmt::Display for Located<'_, E, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            Cause::Body(error) => fmt::Display::fmt(error, f),
            Cause::Resource(error) => fmt::Display::fmt(error, f),
            Cause::TimedOut(after) => write!(f, "timed out after {after:?}"),
            Cause::Cancelled(reason) => write!(f, "cancelled: {reason}"),
            Cause::NoBodyToBound(after) => {
                fmt::Display::fmt(&Failure::<R>::NoBodyToBound(*after), f)
            }
        }
    }
}

/// What one failure of a [`ScopeError`] was.
#[non_exhaustive]
#[derive(Debug)]
pub enum Cause<'a, E, R> {
    /// The body's error.
    Body(&'a E),
    /// The resource's own error (of its acquire or release).
    Resource(&'a R),
    /// A deadline passed (the body's, the acquire's or the release's).
    TimedOut(Duration),
    /// A body timeout that an exit stack without a body could not keep
    /// ([`Failure::NoBodyToBound`]).
    NoBodyToBound(Duration),
    /// The body was cancelled from outside ([`ScopeError::BodyCancelled`]).
    Cancelled(Cancel),
}

/// The error of a resource made of two ([`zip`](crate::ResourceExt::zip),
/// [`and_then`](crate::ResourceExt::and_then)) whose parts fail with
/// different errors: which part failed, and how. No conversion is needed to
/// compose resources; a part's failure keeps its own type.
///
/// Transparent: its `Display` and `source` are the part's error's.
///
/// ```
/// use awith::PartError;
///
/// let err: PartError<std::io::Error, std::fmt::Error> = PartError::Second(std::fmt::Error);
/// assert_eq!(err.to_string(), "an error occurred when formatting an argument");
/// assert!(err.second().is_some());
/// // Parts with one error type give it back as it was.
/// assert_eq!(PartError::<u8, u8>::First(7).into_inner(), 7);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartError<A, B> {
    /// The first part failed: `zip`'s left, `and_then`'s outer (acquired
    /// first, released last).
    First(A),
    /// The second part failed: `zip`'s right, `and_then`'s inner.
    Second(B),
}

impl<A, B> PartError<A, B> {
    /// The first part's error, if it was that part.
    pub fn first(&self) -> Option<&A> {
        match self {
            PartError::First(error) => Some(error),
            PartError::Second(_) => None,
        }
    }

    /// The second part's error, if it was that part.
    pub fn second(&self) -> Option<&B> {
        match self {
            PartError::First(_) => None,
            PartError::Second(error) => Some(error),
        }
    }
}

impl<T> PartError<T, T> {
    /// The error, whichever part failed (both parts fail with `T`).
    pub fn into_inner(self) -> T {
        match self {
            PartError::First(error) | PartError::Second(error) => error,
        }
    }
}

impl<A: fmt::Display, B: fmt::Display> fmt::Display for PartError<A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartError::First(error) => fmt::Display::fmt(error, f),
            PartError::Second(error) => fmt::Display::fmt(error, f),
        }
    }
}

impl<A, B> std::error::Error for PartError<A, B>
where
    A: std::error::Error,
    B: std::error::Error,
{
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PartError::First(error) => error.source(),
            PartError::Second(error) => error.source(),
        }
    }
}

/// How an acquire or a release failed: with the resource's error, at a
/// deadline, or — for resources made of several — in several ways at once.
///
/// Implementations of [`Resource`](crate::Resource) return it from their
/// futures; `?` converts a plain error into [`Failure::Error`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure<R> {
    /// The resource's own error.
    Error(R),
    /// It did not finish within its timeout and was dropped.
    TimedOut(Duration),
    /// Several parts failed (a composite resource, an exit stack), in the
    /// order they failed or were released: the first is the primary one.
    /// Never empty, never nested.
    Many(Vec<Failure<R>>),
    /// The resource bounds the body of its scope (a
    /// [`body_timeout`](crate::ResourceExt::body_timeout), here the
    /// duration), but it was entered into an
    /// [`ExitStack`](crate::stack::ExitStack) that has no body to bound —
    /// one made with [`ExitStack::new`](crate::stack::ExitStack::new) or
    /// moved out by [`pop_all`](crate::stack::ExitStack::pop_all). The bound
    /// is not dropped silently: the enter fails (what its acquire yielded, if
    /// the bound was only known then, is released at once, told
    /// `Exit::Cancelled(Cancel::Timeout)`).
    NoBodyToBound(Duration),
}

impl<R> Failure<R> {
    /// The first error, if any part failed with an error rather than a timeout.
    ///
    /// ```
    /// use awith::Failure;
    ///
    /// assert_eq!(Failure::Error(5).error(), Some(&5));
    /// ```
    pub fn error(&self) -> Option<&R> {
        self.errors().next()
    }

    /// Every error, in order (timeouts skipped). In the failures an
    /// [`ExitStack`](crate::stack::ExitStack) shows an exit, the last is the
    /// one most recently put in flight.
    pub fn errors(&self) -> impl Iterator<Item = &R> {
        self.leaves().filter_map(|failure| match failure {
            Failure::Error(error) => Some(error),
            _ => None,
        })
    }

    /// Every failure, flattened, in order: never `Many`.
    pub(crate) fn leaves(&self) -> impl Iterator<Item = &Failure<R>> {
        let mut stack = vec![self];
        std::iter::from_fn(move || {
            while let Some(failure) = stack.pop() {
                match failure {
                    Failure::Many(all) => stack.extend(all.iter().rev()),
                    leaf => return Some(leaf),
                }
            }
            None
        })
    }

    /// `true` when the (first) failure is a timeout.
    pub fn is_timeout(&self) -> bool {
        match self {
            Failure::TimedOut(_) => true,
            Failure::Error(_) | Failure::NoBodyToBound(_) => false,
            Failure::Many(all) => all.first().is_some_and(Failure::is_timeout),
        }
    }

    /// Converts the error type.
    ///
    /// ```
    /// use awith::Failure;
    ///
    /// assert_eq!(Failure::Error(5u8).map(u32::from), Failure::Error(5u32));
    /// ```
    pub fn map<S>(self, mut f: impl FnMut(R) -> S) -> Failure<S> {
        self.map_inner(&mut f)
    }

    fn map_inner<S>(self, f: &mut impl FnMut(R) -> S) -> Failure<S> {
        match self {
            Failure::Error(error) => Failure::Error(f(error)),
            Failure::TimedOut(after) => Failure::TimedOut(after),
            Failure::NoBodyToBound(after) => Failure::NoBodyToBound(after),
            Failure::Many(all) => Failure::Many(all.into_iter().map(|x| x.map_inner(f)).collect()),
        }
    }

    /// Both failures, `self` first, flattened into one.
    ///
    /// ```
    /// use awith::Failure;
    ///
    /// let both = Failure::Error("a").and(Failure::Many(vec![Failure::Error("b"), Failure::Error("c")]));
    /// assert_eq!(both.errors().copied().collect::<Vec<_>>(), ["a", "b", "c"]);
    /// assert_eq!(both.to_string(), "3 failures: a; b; c");
    /// ```
    pub fn and(self, other: Failure<R>) -> Failure<R> {
        let mut all = self.into_vec();
        all.extend(other.into_vec());
        Failure::Many(all)
    }

    /// Joins two optional failures.
    pub(crate) fn join(first: Option<Self>, second: Option<Self>) -> Option<Self> {
        match (first, second) {
            (Some(first), Some(second)) => Some(first.and(second)),
            (first, second) => first.or(second),
        }
    }

    fn into_vec(self) -> Vec<Failure<R>> {
        match self {
            Failure::Many(all) => all,
            single => vec![single],
        }
    }
}

impl<R> From<R> for Failure<R> {
    fn from(error: R) -> Self {
        Failure::Error(error)
    }
}

impl<R: fmt::Display> fmt::Display for Failure<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Error(error) => fmt::Display::fmt(error, f),
            Failure::TimedOut(after) => write!(f, "timed out after {after:?}"),
            Failure::NoBodyToBound(after) => write!(
                f,
                "a body timeout of {after:?} cannot be kept: this exit stack has no body to \
                 bound (enter the resource in `ExitStack::with`)"
            ),
            Failure::Many(all) => {
                write!(f, "{} failures: ", all.len())?;
                for (n, failure) in all.iter().enumerate() {
                    if n > 0 {
                        f.write_str("; ")?;
                    }
                    fmt::Display::fmt(failure, f)?;
                }
                Ok(())
            }
        }
    }
}

/// Transparent over a single error (its `source` is the error's source); a
/// timeout or several failures have none, their `Display` tells them all.
impl<R: std::error::Error> std::error::Error for Failure<R> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Failure::Error(error) => error.source(),
            Failure::TimedOut(_) | Failure::NoBodyToBound(_) | Failure::Many(_) => None,
        }
    }
}

/// A [`Runtime::timeout`](crate::Runtime::timeout) expired: the future was
/// dropped unfinished.
///
/// ```
/// use std::time::Duration;
/// use awith::Elapsed;
///
/// assert_eq!(Elapsed::new(Duration::from_secs(5)).to_string(), "deadline of 5s elapsed");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Elapsed {
    after: Duration,
}

impl Elapsed {
    /// The deadline `after` elapsed.
    pub fn new(after: Duration) -> Self {
        Elapsed { after }
    }

    /// The timeout that elapsed.
    pub fn after(&self) -> Duration {
        self.after
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "deadline of {:?} elapsed", self.after)
    }
}

impl std::error::Error for Elapsed {}
