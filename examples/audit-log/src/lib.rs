//! # audit-log
//!
//! An audit log of scoped actions: [`AuditLog::scope`] is an awith resource
//! that writes [`Entry::Began`] when its scope starts and
//! [`Entry::Ended`] with the [`ExitKind`] — completed, failed, panicked or
//! cancelled — when it ends, whatever ends it.
//!
//! This crate is an example: the pattern of a **runtime-agnostic library** on
//! awith, tested on every runtime with `#[awith::test]`. Copy it.
//!
//! - The library depends on `awith` without a runtime feature, and takes the
//!   [`Runtime`] from its caller ([`AuditLog::new`]): the same code runs on
//!   tokio, smol, async-std, or the reference runtime with its virtual clock.
//! - Its tests (`tests/matrix.rs`) depend on `awith` with the runtimes the
//!   library supports and the `test` feature. Each `#[awith::test]` function
//!   becomes one test per runtime (`name::reference`,
//!   `name::tokio_current_thread`, `name::tokio_multi_thread`, `name::smol`),
//!   and each fails if a cleanup leaked or the runtime reported an incident.
//!
//! ```
//! use awith::reference::Reference;
//! use awith::{ExitKind, ResourceExt};
//! use audit_log::{AuditLog, Entry};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A test of your own code would take the runtime it runs on; this one
//! // runs on the reference runtime, which `awith` always has.
//! let reference = Reference::new();
//! let rt = reference.runtime();
//! let log = AuditLog::new(&rt);
//! let refunded = reference.block_on(log.scope("refund #7").with(&rt, async |action| {
//!     action.note("amount: 12.50");
//!     Ok::<_, std::io::Error>(true)
//! }))??;
//! assert!(refunded);
//! assert_eq!(
//!     log.entries(),
//!     [
//!         Entry::Began("refund #7".into()),
//!         Entry::Note("refund #7".into(), "amount: 12.50".into()),
//!         Entry::Ended("refund #7".into(), ExitKind::Completed),
//!     ]
//! );
//! # Ok(())
//! # }
//! ```
//!
//! # Cancellation
//!
//! Dropping a scope's future (a timeout, a `select!` that another branch
//! won):
//!
//! | dropped while | what the log shows |
//! |---|---|
//! | not yet polled | nothing |
//! | acquiring | the acquire writes [`Entry::Began`] and is ready at once: it is never dropped half-way |
//! | in the body | [`Entry::Ended`] with `ExitKind::Cancelled(..)`, written by a cleanup task on the runtime: await [`Runtime::drain`] before reading the log |
//! | releasing | the release writes [`Entry::Ended`] and is ready at once: it is never dropped half-way |
//!
//! `std::mem::forget` on a scope's future skips its release: the log then
//! shows a [`Entry::Began`] that never ends.
//!
//! # When not to use it
//!
//! The log lives in memory and grows without bound; a real one would write
//! to durable storage in its release (an `.await` there is fine: awith runs
//! the release to its end, bounded by the runtime's cleanup timeout).
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use awith::{ExitKind, Resource, Runtime, resource};

/// A line of an [`AuditLog`]. Each names its action.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Entry {
    /// The action's scope began: its resource was acquired.
    Began(String),
    /// The action's body noted something ([`Action::note`]).
    Note(String, String),
    /// The action's scope ended, and how.
    Ended(String, ExitKind),
}

/// An [`Entry`] and when it was written: the time since its log was made, on
/// the log's runtime's clock.
///
/// ```
/// use std::time::Duration;
/// use awith::reference::Reference;
/// use awith::ResourceExt;
/// use audit_log::AuditLog;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let reference = Reference::new();
/// let rt = reference.runtime();
/// let log = AuditLog::new(&rt);
/// reference.block_on(log.scope("backup").with(&rt, async |_| {
///     rt.sleep(Duration::from_secs(90)).await; // virtual: returns at once
///     Ok::<_, std::io::Error>(())
/// }))??;
/// let records = log.records();
/// assert_eq!(records[1].at - records[0].at, Duration::from_secs(90));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Record {
    /// What was written.
    pub entry: Entry,
    /// When: the time since the log was made.
    pub at: Duration,
}

/// An audit log: a list of [`Record`]s that [scopes](AuditLog::scope)
/// write. Cheap to clone; clones share the list.
///
/// ```
/// use awith::reference::Reference;
/// use audit_log::AuditLog;
///
/// let log = AuditLog::new(&Reference::new().runtime());
/// assert!(log.entries().is_empty());
/// ```
#[derive(Clone, Debug)]
pub struct AuditLog {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The runtime whose clock times the records.
    rt: Runtime,
    made: Instant,
    records: Mutex<Vec<Record>>,
}

impl AuditLog {
    /// An empty log that times its records on `rt`'s clock.
    ///
    /// ```
    /// use std::time::Duration;
    /// use awith::reference::Reference;
    /// use audit_log::AuditLog;
    ///
    /// let reference = Reference::new();
    /// let log = AuditLog::new(&reference.runtime());
    /// assert_eq!(log.records(), []);
    /// ```
    pub fn new(rt: &Runtime) -> Self {
        AuditLog {
            shared: Arc::new(Shared {
                rt: rt.clone(),
                made: rt.now(),
                records: Mutex::new(Vec::new()),
            }),
        }
    }

    /// A resource for one `action`: acquiring it writes
    /// [`Entry::Began`]`(action)`; the body gets an [`Action`] to write
    /// notes with; releasing it writes [`Entry::Ended`]`(action, exit)`,
    /// told how the scope ended.
    ///
    /// Run it with [`ResourceExt::with`](awith::ResourceExt::with), or
    /// combine it with other resources; it works with a body of any error
    /// type `E`. It never fails itself (its error is [`Infallible`]).
    ///
    /// ```
    /// use awith::reference::Reference;
    /// use awith::{ExitKind, ResourceExt};
    /// use audit_log::{AuditLog, Entry};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let reference = Reference::new();
    /// let rt = reference.runtime();
    /// let log = AuditLog::new(&rt);
    /// let result = reference.block_on(log.scope("delete user 42").with(&rt, async |_| {
    ///     Err::<(), _>(std::io::Error::other("permission denied"))
    /// }))?;
    /// assert!(result.is_err());
    /// assert_eq!(
    ///     log.entries().last(),
    ///     Some(&Entry::Ended("delete user 42".into(), ExitKind::Failed))
    /// );
    /// # Ok(())
    /// # }
    /// ```
    #[must_use = "a resource does nothing until a scope runs it: `.with(&rt, body)`"]
    pub fn scope<E>(
        &self,
        action: &str,
    ) -> impl Resource<E, Value = Action, Error = Infallible> + use<E> {
        let log = self.clone();
        let name = action.to_owned();
        resource(
            move || async move {
                log.write(Entry::Began(name.clone()));
                Ok(Action { name, log })
            },
            |action: Action, exit| async move {
                // A log on disk or over the network would await its write here.
                action.log.write(Entry::Ended(action.name, exit));
                Ok(())
            },
        )
    }

    /// The entries so far, oldest first.
    ///
    /// ```
    /// use awith::reference::Reference;
    /// use audit_log::AuditLog;
    ///
    /// let log = AuditLog::new(&Reference::new().runtime());
    /// assert_eq!(log.entries(), []);
    /// ```
    pub fn entries(&self) -> Vec<Entry> {
        self.lock()
            .iter()
            .map(|record| record.entry.clone())
            .collect()
    }

    /// The entries so far with their times, oldest first.
    ///
    /// ```
    /// use awith::reference::Reference;
    /// use audit_log::AuditLog;
    ///
    /// let log = AuditLog::new(&Reference::new().runtime());
    /// assert_eq!(log.records(), []);
    /// ```
    pub fn records(&self) -> Vec<Record> {
        self.lock().clone()
    }

    fn write(&self, entry: Entry) {
        let at = self
            .shared
            .rt
            .now()
            .saturating_duration_since(self.shared.made);
        self.lock().push(Record { entry, at });
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Record>> {
        // Nothing panics while the lock is held: a poisoned list is whole.
        self.shared
            .records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the body of an [`AuditLog::scope`] gets: its action.
///
/// ```
/// use awith::reference::Reference;
/// use awith::ResourceExt;
/// use audit_log::{AuditLog, Entry};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let reference = Reference::new();
/// let rt = reference.runtime();
/// let log = AuditLog::new(&rt);
/// reference.block_on(log.scope("import").with(&rt, async |action| {
///     assert_eq!(action.name(), "import");
///     action.note("120 rows");
///     Ok::<_, std::io::Error>(())
/// }))??;
/// assert_eq!(log.entries()[1], Entry::Note("import".into(), "120 rows".into()));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Action {
    name: String,
    log: AuditLog,
}

impl Action {
    /// The action's name, as given to [`AuditLog::scope`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Writes [`Entry::Note`]`(action, text)` to the log.
    pub fn note(&self, text: impl Into<String>) {
        self.log.write(Entry::Note(self.name.clone(), text.into()));
    }
}
